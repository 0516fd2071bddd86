/* DCL detector: encoders, heads, one training step (docs/DCL.md). */
#include "dcl/detector.h"
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

void dcl_detector_free(dcl_detector *d) {
    if (!d) return;
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

dcl_status dcl_detector_step(dcl_detector *d, const float *v1, const float *v2, const int *y,
                             const uint8_t *cell, dcl_step_weights w, dcl_optim *opt, float lr,
                             dcl_rng *rng, dcl_step_stats *st) {
    if (d->mode != DCL_PLAN_TRAIN) return dcl_fail(DCL_ERR_ARG, "dcl: step needs a training plan");
    int B = d->B, L = d->L, C = d->C, K = d->cfg.softmax_head ? 2 : 1;
    dcl_net *qn = d->q->net, *kn = d->k->net;
    memset(st, 0, sizeof *st);
    /* 1. query forward */
    DCL_TRY(dcl_net_set_input(qn, v1));
    DCL_TRY(dcl_net_forward(qn, rng));
    DCL_TRY(dcl_net_value_to_host(qn, d->q->logits, d->h_logits));
    /* 2-3. momentum update of the key encoder, key forward (keys feed the
     * inter loss and the queues / prototypes) */
    DCL_TRY(dcl_ema_update(d->be, dcl_net_params(qn)->total, dcl_net_param_data(kn), dcl_net_param_data(qn), d->cfg.beta));
    DCL_TRY(dcl_net_set_input(kn, v2));
    DCL_TRY(dcl_net_forward(kn, rng));
    DCL_TRY(dcl_net_value_to_host(kn, d->k_embed, d->h_k));
    dcl_normalize_rows(d->h_k, d->h_k, B, L);
    /* 4. losses and their gradients */
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
    if (w.inter > 0) {
        DCL_TRY(dcl_net_value_to_host(qn, d->q_embed, d->h_eq));
        dcl_normalize_rows(d->h_q, d->h_eq, B, L);
        DCL_TRY(dcl_inter_loss(&st->inter, d->h_dq, d->h_q, d->h_k, y, B, L, &d->mr, &d->mf, d->cfg.tau, w.inter));
        dcl_normalize_rows_bwd(d->h_deq, d->h_dq, d->h_eq, B, L);
        DCL_TRY(dcl_net_seed_from_host(qn, d->q_embed, d->h_deq));
    } else {
        DCL_TRY(dcl_net_seed_from_host(qn, d->q_embed, d->h_zero));
    }
    if (w.intra > 0) {
        uint8_t *nocell = NULL;
        if (!cell) {
            nocell = calloc((size_t)B * L, 1);
            if (!nocell) return dcl_fail(DCL_ERR_NOMEM, "cell masks");
        }
        DCL_TRY(dcl_net_value_to_host(qn, d->q->features, d->h_F));
        dcl_status s = dcl_intra_loss(&st->intra, &st->intra_real, &st->intra_fake, d->h_dF, d->h_F, y,
                                      cell ? cell : nocell, B, L, C, d->cfg.tau, d->cfg.intra_sum, w.intra);
        free(nocell);
        DCL_TRY(s);
        DCL_TRY(dcl_net_seed_from_host(qn, d->q->features, d->h_dF));
    } else {
        DCL_TRY(dcl_net_seed_from_host(qn, d->q->features, d->h_zero));
    }
    st->loss = w.ce * st->ce + w.inter * st->inter + w.intra * st->intra;
    if (!isfinite(st->loss))
        return dcl_fail(DCL_ERR_INTERNAL, "dcl: loss is not finite (ce %g, inter %g, intra %g); lower the learning rate",
                        st->ce, st->inter, st->intra);
    /* 5. backward and optimiser */
    DCL_TRY(dcl_net_zero_grad(qn));
    DCL_TRY(dcl_net_backward(qn));
    if (opt) DCL_TRY(dcl_optim_step(opt, dcl_net_param_data(qn), dcl_net_grad_data(qn), lr));
    /* 6. prototypes and queues */
    uint8_t *enq = calloc(B, 1);
    if (!enq) return dcl_fail(DCL_ERR_NOMEM, "queue update");
    dcl_status s = dcl_queue_update(&d->mr, &d->mf, &d->protos, d->h_k, y, B, d->cfg.alpha, d->cfg.theta,
                                    d->cfg.hard_mode, d->cfg.topk, enq);
    for (int b = 0; b < B; b++) {
        if (!enq[b]) continue;
        if (y[b]) st->enqueued_fake++; else st->enqueued_real++;
    }
    free(enq);
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
