/* DCL detector: encoders, heads, one training step (docs/DCL.md). */
#include "dcl/detector.h"
#include "dcl/dist.h"
#include "dcl/nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

dcl_method_cfg dcl_method_defaults(void) {
    dcl_method_cfg c;
    memset(&c, 0, sizeof c);
    c.tau = 0.07f;
    c.alpha = 0.9f;
    c.theta = 0.5f;
    c.beta = 0.99f;
    c.queue_size = 30000;
    c.hard_mode = DCL_HARD_THRESHOLD;
    c.topk = 5;
    c.pix_thr = 0.1f;
    c.cell_thr = 0.5f;
    c.intra_sum = 0;
    c.softmax_head = 0;
    return c;
}

static dcl_status build_encoder(dcl_model **m, int *embed, dcl_backend *be, const dcl_effnet_cfg *ecfg, int classes) {
    dcl_effnet_cfg c = *ecfg;
    c.num_classes = classes;
    c.with_classifier = 1;
    DCL_TRY(dcl_effnet_build(m, be, &c));
    *embed = dcl_net_conv((*m)->net, "embed", (*m)->features, 1, 1, 1, 1, 1, 0, 0, 1);
    if (*embed < 0) return dcl_fail_ctx(DCL_ERR_INTERNAL, "embedding head");
    DCL_TRY(dcl_net_mark_output((*m)->net, (*m)->logits));
    DCL_TRY(dcl_net_mark_output((*m)->net, *embed));
    DCL_TRY(dcl_net_mark_output((*m)->net, (*m)->features));
    return dcl_net_finalize((*m)->net);
}

dcl_status dcl_detector_create(dcl_detector **out, dcl_backend *be, const dcl_effnet_cfg *ecfg,
                               const dcl_method_cfg *cfg, int with_key) {
    if (cfg->tau <= 0 || cfg->queue_size <= 0 || !(cfg->beta >= 0 && cfg->beta <= 1) ||
        !(cfg->alpha >= 0 && cfg->alpha <= 1) || cfg->topk < 1)
        return dcl_fail(DCL_ERR_ARG, "dcl: invalid method settings (tau %g, queue %d, beta %g, alpha %g, topk %d)",
                        cfg->tau, cfg->queue_size, cfg->beta, cfg->alpha, cfg->topk);
    dcl_detector *d = calloc(1, sizeof *d);
    if (!d) return dcl_fail(DCL_ERR_NOMEM, "detector");
    d->cfg = *cfg;
    d->be = be;
    int classes = cfg->softmax_head ? 2 : 1;
    dcl_status s = build_encoder(&d->q, &d->q_embed, be, ecfg, classes);
    if (!s && with_key) s = build_encoder(&d->k, &d->k_embed, be, ecfg, classes);
    if (s) { dcl_detector_free(d); return s; }
    *out = d;
    return DCL_OK;
}

static void free_scratch(dcl_detector *d) {
    float **p[] = {&d->h_logits, &d->h_dlogits, &d->h_eq, &d->h_q, &d->h_dq, &d->h_deq, &d->h_k, &d->h_F, &d->h_dF, &d->h_zero};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) { dcl_free(*p[i]); *p[i] = NULL; }
}

/* Scratch of data-parallel steps, for the whole batch of G = world * B
 * images.  Image j of rank r is slot j*world + r of the batch (the loader's
 * strided shards); all-gathers return "gathered order" r*B + j. */
struct dcl_detector_dist {
    int G, L;
    size_t img;          /* floats per key-view image (shuffle BN) */
    float *kg;           /* (G, L) keys in gathered order */
    float *kall;         /* (G, L) keys in slot order */
    float *kperm;        /* (G, L) keys in shuffled order */
    int *yg, *yall, *perm; /* (G) */
    uint8_t *enq;        /* (G) */
    float *v2all, *v2in; /* shuffle BN: (G, img), (B, img) */
    int64_t steps;
};

static void free_dd(dcl_detector *d) {
    struct dcl_detector_dist *x = d->dd;
    if (!x) return;
    dcl_free(x->kg); dcl_free(x->kall); dcl_free(x->kperm); free(x->yg); free(x->yall); free(x->perm); free(x->enq);
    dcl_free(x->v2all); dcl_free(x->v2in);
    free(x);
    d->dd = NULL;
}

void dcl_detector_free(dcl_detector *d) {
    if (!d) return;
    free_dd(d);
    dcl_model_free(d->q);
    dcl_model_free(d->k);
    dcl_queue_free(&d->mr);
    dcl_queue_free(&d->mf);
    dcl_protos_free(&d->protos);
    free_scratch(d);
    free(d);
}

static dcl_status copy_dev(dcl_backend *be, float *dst, const float *src, size_t n) {
    if (be->axpby) return be->axpby(be, (int64_t)n, dst, 1.0f, src, 0.0f);
    memcpy(dst, src, n * sizeof(float));
    return DCL_OK;
}

dcl_status dcl_detector_sync_key(dcl_detector *d) {
    if (!d->k) return DCL_OK;
    const dcl_table *P = dcl_net_params(d->q->net), *B = dcl_net_buffers(d->q->net);
    DCL_TRY(copy_dev(d->be, dcl_net_param_data(d->k->net), dcl_net_param_data(d->q->net), P->total));
    return copy_dev(d->be, dcl_net_buffer_data(d->k->net), dcl_net_buffer_data(d->q->net), B->total);
}

dcl_status dcl_detector_plan(dcl_detector *d, int B, int H, int W, int mode) {
    DCL_TRY(dcl_net_plan(d->q->net, B, H, W, mode));
    int shp[4];
    dcl_net_value_shape(d->q->net, d->q->features, shp);
    int L = shp[2] * shp[3], C = shp[1];
    if (mode == DCL_PLAN_TRAIN) {
        if (!d->k) return dcl_fail(DCL_ERR_ARG, "dcl: training needs the key encoder");
        DCL_TRY(dcl_net_plan(d->k->net, B, H, W, DCL_PLAN_TRAIN_NOGRAD));
        if (d->mr.data && d->mr.dim != L)
            return dcl_fail(DCL_ERR_SHAPE, "dcl: the queues hold %d-value embeddings but %dx%d input gives %d", d->mr.dim, H, W, L);
        if (!d->mr.data) {
            DCL_TRY(dcl_queue_init(&d->mr, d->cfg.queue_size, L));
            DCL_TRY(dcl_queue_init(&d->mf, d->cfg.queue_size, L));
            DCL_TRY(dcl_protos_init(&d->protos, L));
        }
    }
    if (d->B != B || d->L != L || d->C != C) {
        free_scratch(d);
        int K = d->cfg.softmax_head ? 2 : 1;
        size_t BL = (size_t)B * L, BLC = BL * C;
        d->h_logits = dcl_alloc(B * K * sizeof(float));
        d->h_dlogits = dcl_alloc(B * K * sizeof(float));
        d->h_eq = dcl_alloc(BL * sizeof(float));
        d->h_q = dcl_alloc(BL * sizeof(float));
        d->h_dq = dcl_alloc(BL * sizeof(float));
        d->h_deq = dcl_alloc(BL * sizeof(float));
        d->h_k = dcl_alloc(BL * sizeof(float));
        d->h_F = dcl_alloc(BLC * sizeof(float));
        d->h_dF = dcl_alloc(BLC * sizeof(float));
        d->h_zero = dcl_calloc(BLC * sizeof(float));
        if (!d->h_logits || !d->h_dlogits || !d->h_eq || !d->h_q || !d->h_dq || !d->h_deq || !d->h_k ||
            !d->h_F || !d->h_dF || !d->h_zero)
            return dcl_fail(DCL_ERR_NOMEM, "dcl: step buffers for batch %d", B);
    }
    d->B = B; d->H = H; d->W = W; d->L = L; d->C = C;
    d->mode = mode;
    return DCL_OK;
}

dcl_status dcl_detector_set_dist(dcl_detector *d, struct dcl_dist *dist) {
    d->dist = dist;
    int sync = dist && dcl_dist_world(dist) > 1 && d->cfg.dist.sync_bn;
    dcl_net *nets[2] = {d->q->net, d->k ? d->k->net : NULL};
    for (int i = 0; i < 2; i++)
        if (nets[i]) DCL_TRY(dcl_net_set_bn_sync(nets[i], sync ? dcl_dist_gather_f64 : NULL, sync ? dcl_dist_world(dist) : 0, dist));
    if (dist && dcl_dist_world(dist) > 1 && d->cfg.dist.shuffle_bn && d->cfg.dist.sync_bn)
        dcl_log(1, "dcl: shuffle_bn has no effect with sync_bn (the key encoder already normalises over the whole batch)");
    return DCL_OK;
}

static dcl_status ensure_dd(dcl_detector *d, int G, int shuffle) {
    struct dcl_detector_dist *x = d->dd;
    size_t img = (size_t)d->H * d->W * 3;
    if (x && x->G == G && x->L == d->L && (!shuffle || (x->v2all && x->img == img))) return DCL_OK;
    free_dd(d);
    x = d->dd = calloc(1, sizeof *x);
    if (!x) return dcl_fail(DCL_ERR_NOMEM, "dcl: distributed step buffers");
    x->G = G;
    x->L = d->L;
    x->img = img;
    x->kg = dcl_alloc((size_t)G * d->L * sizeof(float));
    x->kall = dcl_alloc((size_t)G * d->L * sizeof(float));
    x->kperm = dcl_alloc((size_t)G * d->L * sizeof(float));
    x->yg = malloc(G * sizeof(int));
    x->yall = malloc(G * sizeof(int));
    x->perm = malloc(G * sizeof(int));
    x->enq = malloc(G);
    int ok = x->kg && x->kall && x->kperm && x->yg && x->yall && x->perm && x->enq;
    if (ok && shuffle) {
        x->v2all = dcl_alloc((size_t)G * img * sizeof(float));
        x->v2in = dcl_alloc((size_t)d->B * img * sizeof(float));
        ok = x->v2all && x->v2in;
    }
    if (!ok) { free_dd(d); return dcl_fail(DCL_ERR_NOMEM, "dcl: distributed step buffers for %d images", G); }
    return DCL_OK;
}

/* Key forward pass and normalised keys of the whole batch into kg (G, L),
 * gathered order.  Shuffle BN: the key batch is permuted across ranks by a
 * permutation common to all ranks, each rank encodes its share of the
 * permuted batch, and the gathered keys are put back in gathered order. */
static dcl_status key_forward_dist(dcl_detector *d, const float *v2, int shuffle, uint64_t stamp, dcl_rng *rng) {
    struct dcl_detector_dist *x = d->dd;
    dcl_net *kn = d->k->net;
    int B = d->B, L = d->L, G = x->G, r = dcl_dist_rank(d->dist);
    if (!shuffle) {
        DCL_TRY(dcl_net_set_input(kn, v2));
        DCL_TRY(dcl_net_forward(kn, rng));
        DCL_TRY(dcl_net_value_to_host(kn, d->k_embed, d->h_k));
        dcl_normalize_rows(d->h_k, d->h_k, B, L);
        return dcl_dist_allgather(d->dist, x->kg, d->h_k, (size_t)B * L * sizeof(float));
    }
    DCL_TRY(dcl_dist_allgather(d->dist, x->v2all, v2, (size_t)B * x->img * sizeof(float)));
    dcl_rng pr;
    dcl_rng_seed(&pr, 0x5348554646424eULL ^ (stamp * 0x9e3779b97f4a7c15ULL));
    for (int i = 0; i < G; i++) x->perm[i] = i;
    for (int i = G - 1; i > 0; i--) {
        int j = (int)dcl_rng_below(&pr, (uint32_t)(i + 1));
        int t = x->perm[i]; x->perm[i] = x->perm[j]; x->perm[j] = t;
    }
    for (int j = 0; j < B; j++)
        memcpy(x->v2in + (size_t)j * x->img, x->v2all + (size_t)x->perm[r * B + j] * x->img, x->img * sizeof(float));
    DCL_TRY(dcl_net_set_input(kn, x->v2in));
    DCL_TRY(dcl_net_forward(kn, rng));
    DCL_TRY(dcl_net_value_to_host(kn, d->k_embed, d->h_k));
    dcl_normalize_rows(d->h_k, d->h_k, B, L);
    DCL_TRY(dcl_dist_allgather(d->dist, x->kperm, d->h_k, (size_t)B * L * sizeof(float)));
    for (int i = 0; i < G; i++) memcpy(x->kg + (size_t)x->perm[i] * L, x->kperm + (size_t)i * L, L * sizeof(float));
    return DCL_OK;
}

dcl_status dcl_detector_step(dcl_detector *d, const float *v1, const float *v2, const int *y,
                             const uint8_t *cell, dcl_step_weights w, dcl_optim *opt, float lr,
                             dcl_rng *rng, dcl_step_stats *st) {
    if (d->mode != DCL_PLAN_TRAIN) return dcl_fail(DCL_ERR_ARG, "dcl: step needs a training plan");
    int B = d->B, L = d->L, C = d->C, K = d->cfg.softmax_head ? 2 : 1;
    dcl_net *qn = d->q->net, *kn = d->k->net;
    memset(st, 0, sizeof *st);
    /* data-parallel: image j of this rank is slot j*R + rank of a batch of G */
    int R = d->dist ? dcl_dist_world(d->dist) : 1, rank = d->dist ? dcl_dist_rank(d->dist) : 0;
    int G = B * R;
    int shuffle = R > 1 && d->cfg.dist.shuffle_bn && !d->cfg.dist.sync_bn;
    if (d->dist) DCL_TRY(ensure_dd(d, G, shuffle));
    /* 1. query forward */
    DCL_TRY(dcl_net_set_input(qn, v1));
    DCL_TRY(dcl_net_forward(qn, rng));
    DCL_TRY(dcl_net_value_to_host(qn, d->q->logits, d->h_logits));
    if (d->cfg.no_keys && w.inter > 0)
        return dcl_fail(DCL_ERR_ARG, "dcl: the inter loss needs the key encoder (no_keys is set)");
    /* 2-3. momentum update of the key encoder, key forward (keys feed the
     * inter loss and the queues / prototypes).  Without data parallelism the
     * key forward is only queued here and its keys fetched after the losses
     * that need only the query (cross-entropy, intra): on a device backend
     * the GPU runs the key encoder while the host computes them.  The order
     * of the work and of the random draws is the same either way. */
    if (!d->cfg.no_keys)
        DCL_TRY(dcl_ema_update(d->be, dcl_net_params(qn)->total, dcl_net_param_data(kn), dcl_net_param_data(qn), d->cfg.beta));
    const float *kloc = d->h_k, *kall = d->h_k;
    const int *yall = y;
    const int keys_pending = !d->cfg.no_keys && !d->dist;
    if (d->cfg.no_keys) {
        /* no keys: the inter loss is off and the queues are not read */
    } else if (d->dist) {
        struct dcl_detector_dist *x = d->dd;
        DCL_TRY(key_forward_dist(d, v2, shuffle, (uint64_t)(opt ? opt->step : x->steps), rng));
        DCL_TRY(dcl_dist_allgather(d->dist, x->yg, y, (size_t)B * sizeof(int)));
        x->steps++;
        /* gathered order r*B + j -> slot j*R + r */
        for (int r = 0; r < R; r++)
            for (int j = 0; j < B; j++) {
                int g = r * B + j, slot = j * R + r;
                memcpy(x->kall + (size_t)slot * L, x->kg + (size_t)g * L, L * sizeof(float));
                x->yall[slot] = x->yg[g];
            }
        kall = x->kall;
        kloc = x->kg + (size_t)rank * B * L;
        yall = x->yall;
    } else {
        DCL_TRY(dcl_net_set_input(kn, v2));
        DCL_TRY(dcl_net_forward(kn, rng));
    }
    /* A summed intra loss over the whole batch is the sum of the ranks' sums:
     * scale each rank's gradient by R since gradients are averaged. */
    float w_intra = w.intra * ((R > 1 && d->cfg.intra_sum) ? (float)R : 1.0f);
    /* 4. losses and their gradients: cross-entropy and intra first (the
     * query's outputs only), then inter (the keys) */
    float lce;
    if (K == 1) {
        float *t = d->h_dq; /* targets as floats (reuses a scratch row) */
        for (int b = 0; b < B; b++) t[b] = (float)(y[b] != 0);
        DCL_TRY(dcl_bce_logits_fwd_f32(B, &lce, d->h_logits, t));
        DCL_TRY(dcl_bce_logits_bwd_f32(B, d->h_dlogits, w.ce, d->h_logits, t));
    } else {
        DCL_TRY(dcl_cross_entropy_fwd_f32(B, 2, &lce, d->h_logits, y));
        DCL_TRY(dcl_cross_entropy_bwd_f32(B, 2, d->h_dlogits, w.ce, d->h_logits, y));
    }
    st->ce = lce;
    DCL_TRY(dcl_net_seed_from_host(qn, d->q->logits, d->h_dlogits));
    if (w.intra > 0) {
        uint8_t *nocell = NULL;
        if (!cell) {
            nocell = calloc((size_t)B * L, 1);
            if (!nocell) return dcl_fail(DCL_ERR_NOMEM, "cell masks");
        }
        dcl_status s = dcl_net_value_to_host(qn, d->q->features, d->h_F);
        if (!s) s = dcl_intra_loss(&st->intra, &st->intra_real, &st->intra_fake, d->h_dF, d->h_F, y,
                                   cell ? cell : nocell, B, L, C, d->cfg.tau, d->cfg.intra_sum, w_intra);
        free(nocell);
        DCL_TRY(s);
        DCL_TRY(dcl_net_seed_from_host(qn, d->q->features, d->h_dF));
    } else {
        DCL_TRY(dcl_net_seed_from_host(qn, d->q->features, d->h_zero));
    }
    if (keys_pending) {
        DCL_TRY(dcl_net_value_to_host(kn, d->k_embed, d->h_k));
        dcl_normalize_rows(d->h_k, d->h_k, B, L);
    }
    if (w.inter > 0) {
        DCL_TRY(dcl_net_value_to_host(qn, d->q_embed, d->h_eq));
        dcl_normalize_rows(d->h_q, d->h_eq, B, L);
        DCL_TRY(dcl_inter_loss(&st->inter, d->h_dq, d->h_q, kloc, y, B, L, &d->mr, &d->mf, d->cfg.tau, w.inter));
        dcl_normalize_rows_bwd(d->h_deq, d->h_dq, d->h_eq, B, L);
        DCL_TRY(dcl_net_seed_from_host(qn, d->q_embed, d->h_deq));
    } else {
        DCL_TRY(dcl_net_seed_from_host(qn, d->q_embed, d->h_zero));
    }
    if (R > 1) {
        /* losses of the whole batch: means of the ranks' means (equal shards);
         * a summed intra loss is the sum of the ranks' sums */
        double v[5] = {st->ce, st->inter, st->intra, st->intra_real, st->intra_fake};
        DCL_TRY(dcl_dist_allreduce_sum_f64(d->dist, v, 5));
        double isum = d->cfg.intra_sum ? 1.0 : 1.0 / R;
        st->ce = v[0] / R;
        st->inter = v[1] / R;
        st->intra = v[2] * isum;
        st->intra_real = v[3] * isum;
        st->intra_fake = v[4] * isum;
    }
    st->loss = w.ce * st->ce + w.inter * st->inter + w.intra * st->intra;
    if (!isfinite(st->loss))
        return dcl_fail(DCL_ERR_INTERNAL, "dcl: loss is not finite (ce %g, inter %g, intra %g); lower the learning rate",
                        st->ce, st->inter, st->intra);
    /* 5. backward, gradients averaged over ranks, optimiser */
    DCL_TRY(dcl_net_zero_grad(qn));
    DCL_TRY(dcl_net_backward(qn));
    if (d->dist) DCL_TRY(dcl_dist_allreduce_mean(d->dist, d->be, dcl_net_grad_data(qn), dcl_net_params(qn)->total));
    if (opt) DCL_TRY(dcl_optim_step(opt, dcl_net_param_data(qn), dcl_net_grad_data(qn), lr));
    if (R > 1 && !d->cfg.dist.sync_bn) {
        /* per-rank batch norm: every rank keeps the mean of the running statistics */
        DCL_TRY(dcl_dist_allreduce_mean(d->dist, d->be, dcl_net_buffer_data(qn), dcl_net_buffers(qn)->total));
        DCL_TRY(dcl_dist_allreduce_mean(d->dist, d->be, dcl_net_buffer_data(kn), dcl_net_buffers(kn)->total));
    }
    /* 6. prototypes and queues, with the keys of the whole batch in slot order */
    if (d->cfg.no_keys) return DCL_OK;
    uint8_t *enq = d->dist ? d->dd->enq : calloc(B, 1);
    if (!enq) return dcl_fail(DCL_ERR_NOMEM, "queue update");
    dcl_status s = dcl_queue_update(&d->mr, &d->mf, &d->protos, kall, yall, G, d->cfg.alpha, d->cfg.theta,
                                    d->cfg.hard_mode, d->cfg.topk, enq);
    for (int b = 0; b < G; b++) {
        if (!enq[b]) continue;
        if (yall[b]) st->enqueued_fake++; else st->enqueued_real++;
    }
    if (!d->dist) free(enq);
    return s;
}

static uint64_t hash_dev(uint64_t h, dcl_backend *be, const float *p, size_t n, float *tmp, dcl_status *s) {
    if (*s || !n) return h;
    if (be->to_host) *s = be->to_host(be, tmp, p, n * sizeof(float));
    else memcpy(tmp, p, n * sizeof(float));
    return *s ? h : dcl_dist_hash(h, tmp, n * sizeof(float));
}

dcl_status dcl_detector_state_hash(dcl_detector *d, dcl_optim *opt, uint64_t *hash) {
    dcl_net *nets[2] = {d->q->net, d->k ? d->k->net : NULL};
    size_t mx = opt ? opt->n : 0;
    for (int i = 0; i < 2; i++) {
        if (!nets[i]) continue;
        if (dcl_net_params(nets[i])->total > mx) mx = dcl_net_params(nets[i])->total;
        if (dcl_net_buffers(nets[i])->total > mx) mx = dcl_net_buffers(nets[i])->total;
    }
    float *tmp = malloc((mx ? mx : 1) * sizeof(float));
    if (!tmp) return dcl_fail(DCL_ERR_NOMEM, "state hash");
    dcl_status s = DCL_OK;
    uint64_t h = 0;
    for (int i = 0; i < 2; i++) {
        if (!nets[i]) continue;
        h = hash_dev(h, d->be, dcl_net_param_data(nets[i]), dcl_net_params(nets[i])->total, tmp, &s);
        h = hash_dev(h, d->be, dcl_net_buffer_data(nets[i]), dcl_net_buffers(nets[i])->total, tmp, &s);
    }
    if (opt) {
        h = hash_dev(h, d->be, opt->m, opt->n, tmp, &s);
        if (opt->v) h = hash_dev(h, d->be, opt->v, opt->n, tmp, &s);
        h = dcl_dist_hash(h, &opt->step, sizeof opt->step);
    }
    free(tmp);
    dcl_queue *qs[2] = {&d->mr, &d->mf};
    for (int i = 0; i < 2; i++)
        if (qs[i]->data) {
            h = dcl_dist_hash(h, qs[i]->data, (size_t)qs[i]->cap * qs[i]->dim * sizeof(float));
            h = dcl_dist_hash(h, &qs[i]->count, sizeof(int));
            h = dcl_dist_hash(h, &qs[i]->ptr, sizeof(int));
        }
    if (d->protos.real) {
        h = dcl_dist_hash(h, d->protos.real, d->protos.dim * sizeof(float));
        h = dcl_dist_hash(h, d->protos.fake, d->protos.dim * sizeof(float));
        h = dcl_dist_hash(h, &d->protos.real_set, sizeof(int));
        h = dcl_dist_hash(h, &d->protos.fake_set, sizeof(int));
    }
    *hash = h;
    return s;
}

dcl_status dcl_detector_predict(dcl_detector *d, const float *x, float *prob) {
    int K = d->cfg.softmax_head ? 2 : 1;
    DCL_TRY(dcl_net_set_input(d->q->net, x));
    DCL_TRY(dcl_net_forward(d->q->net, NULL));
    DCL_TRY(dcl_net_value_to_host(d->q->net, d->q->logits, d->h_logits));
    for (int b = 0; b < d->B; b++) {
        if (K == 1) prob[b] = 1.0f / (1.0f + expf(-d->h_logits[b]));
        else {
            float a = d->h_logits[2 * b], c = d->h_logits[2 * b + 1], m = a > c ? a : c;
            prob[b] = expf(c - m) / (expf(a - m) + expf(c - m));
        }
    }
    return DCL_OK;
}
