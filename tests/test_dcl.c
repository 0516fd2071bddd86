/* The DCL method against an independent PyTorch reference
 * (tools/make_dcl_goldens.py, written from docs/DCL.md):
 *  - one step: L_ce, L_inter, L_intra (real and fake parts), the total, every
 *    parameter gradient, the key encoder after its momentum update and
 *    forward, BN statistics, queues and prototypes after the update;
 *  - the queue update's top-k and unset-prototype branches;
 *  - 10 Adam steps with queues starting empty (losses within 1e-3 relative).
 * Plus unit checks of the data views, and the losses (parallel over the
 * samples) giving the same bits with 1, 2 and 3 threads. */
#include "check.h"
#include "dcl/detector.h"
#include "dcl/io.h"
#include "dcl/views.h"
#include "dcl/contrast.h"
#include <omp.h>

#define STEP "tests/fixtures/dcl/dcl_step.safetensors"
#define TRAJ "tests/fixtures/dcl/dcl_traj.safetensors"

static float *get(dcl_st *st, const char *name, int64_t *n) {
    const dcl_st_entry *e = dcl_st_find(st, name);
    if (!e) { CHECK(0, "fixture lacks %s", name); return NULL; }
    float *v = malloc((e->numel ? e->numel : 1) * sizeof(float));
    if (dcl_st_entry_to_f32(v, st, e)) { CHECK(0, "%s: %s", name, dcl_last_error()); free(v); return NULL; }
    if (n) *n = e->numel;
    return v;
}

static float *get_nhwc(dcl_st *st, const char *name) {
    const dcl_st_entry *e = dcl_st_find(st, name);
    float *v = get(st, name, NULL);
    if (!v || e->ndim != 4) return v;
    float *t = malloc(e->numel * sizeof(float));
    dcl_nchw_to_nhwc(t, v, (int)e->shape[0], (int)e->shape[1], (int)e->shape[2], (int)e->shape[3]);
    free(v);
    return t;
}

static double scalar(dcl_st *st, const char *name) {
    float *v = get(st, name, NULL);
    double r = v ? v[0] : NAN;
    free(v);
    return r;
}

static void load_prefixed(dcl_st *st, dcl_net *net, const char *prefix) {
    const dcl_table *tabs[2] = {dcl_net_params(net), dcl_net_buffers(net)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            char name[DCL_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", prefix, tabs[t]->v[i].name);
            int64_t n;
            float *v = get(st, name, &n);
            if (!v) continue;
            CHECK(n == tabs[t]->v[i].numel, "%s: %lld values, net has %lld", name, (long long)n, (long long)tabs[t]->v[i].numel);
            CHECK_OK(dcl_net_set_tensor(net, tabs[t]->v[i].name, v, n));
            free(v);
        }
}

static void compare_prefixed(dcl_st *st, dcl_net *net, const char *prefix, int buffers, const char *what) {
    const dcl_table *tab = buffers ? dcl_net_buffers(net) : dcl_net_params(net);
    int bad = 0;
    for (int i = 0; i < tab->n; i++) {
        char name[DCL_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, tab->v[i].name);
        if (!dcl_st_find(st, name)) continue;
        int64_t n;
        float *want = get(st, name, &n), *got = malloc(n * sizeof(float));
        CHECK_OK(dcl_net_get_tensor(net, tab->v[i].name, got, n));
        char msg[300];
        snprintf(msg, sizeof msg, "%s %s", what, name);
        if (!CHECK_CLOSE(msg, got, want, n, 1e-5, 1e-4)) bad++;
        free(want);
        free(got);
    }
    CHECK(bad == 0, "%s: %d tensors differ", what, bad);
}

static void set_queue(dcl_st *st, dcl_queue *q, const char *name) {
    char nm[96];
    int64_t n;
    float *v = get(st, name, &n);
    if (!v) return;
    CHECK(n == (int64_t)q->cap * q->dim, "%s size", name);
    memcpy(q->data, v, n * sizeof(float));
    free(v);
    snprintf(nm, sizeof nm, "%s_count", name);
    q->count = (int)scalar(st, nm);
    snprintf(nm, sizeof nm, "%s_ptr", name);
    q->ptr = (int)scalar(st, nm);
}

static void check_queue_tol(dcl_st *st, const dcl_queue *q, const char *prefix, const char *name, const char *sfx,
                            double atol, double rtol) {
    char nm[128];
    snprintf(nm, sizeof nm, "%s%s%s", prefix, name, sfx);
    int64_t n;
    float *v = get(st, nm, &n);
    if (v) CHECK_CLOSE(nm, q->data, v, n, atol, rtol);
    free(v);
    snprintf(nm, sizeof nm, "%s%s_count%s", prefix, name, sfx);
    CHECK(q->count == (int)scalar(st, nm), "%s: %d vs %d", nm, q->count, (int)scalar(st, nm));
    snprintf(nm, sizeof nm, "%s%s_ptr%s", prefix, name, sfx);
    CHECK(q->ptr == (int)scalar(st, nm), "%s: %d vs %d", nm, q->ptr, (int)scalar(st, nm));
}

static void check_queue(dcl_st *st, const dcl_queue *q, const char *prefix, const char *name) {
    check_queue_tol(st, q, prefix, name, "_after", 1e-6, 1e-5);
}

static dcl_detector *make_detector_on(dcl_backend *be, int queue_cap) {
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_method_cfg m = dcl_method_defaults();
    m.queue_size = queue_cap;
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, be, &e, &m, 1));
    return d;
}

static dcl_detector *make_detector(dcl_st *st, int queue_cap) {
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_method_cfg m = dcl_method_defaults();
    m.queue_size = queue_cap;
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, dcl_backend_ref(), &e, &m, 1));
    (void)st;
    return d;
}

static void test_step(void) {
    dcl_st *st = NULL;
    if (dcl_st_open(&st, STEP)) { CHECK(0, "%s", dcl_last_error()); return; }
    dcl_detector *d = make_detector(st, 12);
    if (!d) { dcl_st_close(st); return; }
    load_prefixed(st, d->q->net, "q.");
    load_prefixed(st, d->k->net, "k.");
    int B = 4, S = 96;
    CHECK_OK(dcl_detector_plan(d, B, S, S, DCL_PLAN_TRAIN));
    CHECK(d->L == 9, "L = %d", d->L);
    set_queue(st, &d->mr, "queue_real");
    set_queue(st, &d->mf, "queue_fake");
    float *pr = get(st, "proto_real", NULL), *pf = get(st, "proto_fake", NULL);
    memcpy(d->protos.real, pr, 9 * sizeof(float));
    memcpy(d->protos.fake, pf, 9 * sizeof(float));
    d->protos.real_set = (int)scalar(st, "proto_real_set");
    d->protos.fake_set = (int)scalar(st, "proto_fake_set");
    float *v1 = get_nhwc(st, "v1"), *v2 = get_nhwc(st, "v2"), *lab = get(st, "label", NULL), *mask = get(st, "mask", NULL);
    float *cell_want = get(st, "cell_mask", NULL);
    int y[4];
    for (int b = 0; b < B; b++) y[b] = (int)lab[b];
    uint8_t cell[36];
    dcl_cell_masks(cell, mask, B, S, S, 3, 3, d->cfg.pix_thr, d->cfg.cell_thr);
    int cm = 0;
    for (int i = 0; i < 36; i++) cm += cell[i] != (uint8_t)cell_want[i];
    CHECK(cm == 0, "cell masks differ at %d locations", cm);
    dcl_step_weights w = {0.9f, 0.1f, 0.1f};
    dcl_step_stats s;
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    CHECK_OK(dcl_detector_step(d, v1, v2, y, cell, w, NULL, 0, &rng, &s));
    struct { const char *name; double got; } L[] = {
        {"loss_ce", s.ce}, {"loss_inter", s.inter}, {"loss_intra", s.intra},
        {"loss_intra_real", s.intra_real}, {"loss_intra_fake", s.intra_fake}, {"loss_total", s.loss}};
    for (int i = 0; i < 6; i++) {
        double want = scalar(st, L[i].name);
        CHECK(fabs(L[i].got - want) <= 1e-5 + 1e-4 * fabs(want), "%s: %.7g vs PyTorch %.7g", L[i].name, L[i].got, want);
        printf("%-16s dcl %.7f  pytorch %.7f\n", L[i].name, L[i].got, want);
    }
    float *qw = get(st, "q", NULL), *kw = get(st, "k", NULL), *lw = get(st, "logits", NULL);
    CHECK_CLOSE("q", d->h_q, qw, B * 9, 1e-5, 1e-4);
    CHECK_CLOSE("k", d->h_k, kw, B * 9, 1e-5, 1e-4);
    CHECK_CLOSE("logits", d->h_logits, lw, B, 1e-5, 1e-4);
    /* every parameter gradient (per-tensor, relative to the model's largest) */
    const dcl_table *P = dcl_net_params(d->q->net);
    float *G = dcl_net_grad_data(d->q->net);
    double gmax = 0;
    for (int i = 0; i < P->n; i++) {
        char name[DCL_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", P->v[i].name);
        int64_t n;
        float *want = get(st, name, &n);
        for (int64_t j = 0; want && j < n; j++) if (fabs(want[j]) > gmax) gmax = fabs(want[j]);
        free(want);
    }
    int bad = 0;
    for (int i = 0; i < P->n; i++) {
        char name[DCL_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", P->v[i].name);
        int64_t n;
        float *want = get(st, name, &n);
        if (!want) { bad++; continue; }
        double md = 0, mw = 0;
        for (int64_t j = 0; j < n; j++) {
            double dd = fabs(G[P->v[i].offset + j] - want[j]);
            if (dd > md) md = dd;
            if (fabs(want[j]) > mw) mw = fabs(want[j]);
        }
        if (!(md <= 2e-3 * mw + 1e-4 * gmax)) {
            bad++;
            CHECK(0, "%s: max diff %.3g, max |ref| %.3g", name, md, mw);
        }
        free(want);
    }
    CHECK(bad == 0, "%d parameter gradients differ", bad);
    compare_prefixed(st, d->k->net, "k_after.", 0, "key params after EMA");
    compare_prefixed(st, d->k->net, "k_after.", 1, "key BN statistics");
    compare_prefixed(st, d->q->net, "q_after.", 1, "query BN statistics");
    check_queue(st, &d->mr, "", "queue_real");
    check_queue(st, &d->mf, "", "queue_fake");
    float *pra = get(st, "proto_real_after", NULL), *pfa = get(st, "proto_fake_after", NULL);
    CHECK_CLOSE("proto_real_after", d->protos.real, pra, 9, 1e-6, 1e-5);
    CHECK_CLOSE("proto_fake_after", d->protos.fake, pfa, 9, 1e-6, 1e-5);
    float *enq = get(st, "enqueued", NULL);
    int er = 0, ef = 0;
    for (int b = 0; b < B; b++) if (enq[b]) { if (y[b]) ef++; else er++; }
    CHECK(er == s.enqueued_real && ef == s.enqueued_fake, "enqueued %d/%d vs %d/%d", s.enqueued_real, s.enqueued_fake, er, ef);

    /* queue-update branches on the same keys */
    const char *variants[] = {"topk.", "unset.", "allfake."};
    for (int vi = 0; vi < 3; vi++) {
        const char *p = variants[vi];
        dcl_queue mr, mf;
        dcl_protos pp;
        dcl_queue_init(&mr, 12, 9);
        dcl_queue_init(&mf, 12, 9);
        dcl_protos_init(&pp, 9);
        set_queue(st, &mr, "queue_real");
        set_queue(st, &mf, "queue_fake");
        memcpy(pp.real, pr, 9 * sizeof(float));
        memcpy(pp.fake, pf, 9 * sizeof(float));
        pp.real_set = vi == 0;
        pp.fake_set = vi == 0;
        int yy[4];
        memcpy(yy, y, sizeof yy);
        char nm[96];
        if (vi == 2) {
            snprintf(nm, sizeof nm, "%slabel", p);
            float *al = get(st, nm, NULL);
            for (int b = 0; al && b < B; b++) yy[b] = (int)al[b];
            free(al);
        }
        uint8_t en[4];
        CHECK_OK(dcl_queue_update(&mr, &mf, &pp, kw, yy, B, 0.9f, 0.5f, vi == 0 ? DCL_HARD_TOPK : DCL_HARD_THRESHOLD, 1, en));
        check_queue(st, &mr, p, "queue_real");
        check_queue(st, &mf, p, "queue_fake");
        snprintf(nm, sizeof nm, "%senqueued", p);
        float *we = get(st, nm, NULL);
        for (int b = 0; we && b < B; b++) CHECK(en[b] == (uint8_t)we[b], "%s[%d]: %d vs %d", nm, b, en[b], (int)we[b]);
        free(we);
        snprintf(nm, sizeof nm, "%sproto_fake_after", p);
        float *pw2 = get(st, nm, NULL);
        if (pw2 && pp.fake_set) CHECK_CLOSE(nm, pp.fake, pw2, 9, 1e-6, 1e-5);
        free(pw2);
        dcl_queue_free(&mr);
        dcl_queue_free(&mf);
        dcl_protos_free(&pp);
    }
    free(pr); free(pf); free(v1); free(v2); free(lab); free(mask); free(cell_want); free(qw); free(kw); free(lw);
    free(pra); free(pfa); free(enq);
    dcl_detector_free(d);
    dcl_st_close(st);
}

static void test_trajectory(dcl_backend *be, const char *bename) {
    dcl_st *st = NULL, *sp = NULL;
    if (dcl_st_open(&st, TRAJ) || dcl_st_open(&sp, STEP)) { CHECK(0, "%s", dcl_last_error()); dcl_st_close(st); return; }
    printf("trajectory on %s:\n", bename);
    dcl_detector *d = make_detector_on(be, 12);
    if (!d) return;
    load_prefixed(sp, d->q->net, "q.");
    CHECK_OK(dcl_detector_sync_key(d));
    int B = 4, S = 96;
    CHECK_OK(dcl_detector_plan(d, B, S, S, DCL_PLAN_TRAIN));
    float *xa = get_nhwc(sp, "v1"), *v2 = get_nhwc(sp, "v2"), *la = get(sp, "label", NULL), *ma = get(sp, "mask", NULL);
    float *lb = get(st, "traj.label_b", NULL), *mb = get(st, "traj.mask_b", NULL), *ord = get(st, "traj.batch_b_order", NULL);
    float *xb = malloc((size_t)B * S * S * 3 * sizeof(float));
    for (int i = 0; i < B; i++) memcpy(xb + (size_t)i * S * S * 3, v2 + (size_t)(int)ord[i] * S * S * 3, (size_t)S * S * 3 * sizeof(float));
    int ya[4], yb[4];
    for (int b = 0; b < B; b++) { ya[b] = (int)la[b]; yb[b] = (int)lb[b]; }
    uint8_t ca[36], cb[36];
    dcl_cell_masks(ca, ma, B, S, S, 3, 3, d->cfg.pix_thr, d->cfg.cell_thr);
    dcl_cell_masks(cb, mb, B, S, S, 3, 3, d->cfg.pix_thr, d->cfg.cell_thr);
    float *wt = get(st, "traj.loss_total", NULL), *wc = get(st, "traj.loss_ce", NULL), *wi = get(st, "traj.loss_inter", NULL),
          *wa = get(st, "traj.loss_intra", NULL), *phi = get(st, "traj.phi", NULL);
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    oc.weight_decay = 1e-5f;
    dcl_optim *opt = NULL;
    CHECK_OK(dcl_optim_create(&opt, be, dcl_net_params(d->q->net)->total, &oc));
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    for (int step = 0; step < 10 && opt; step++) {
        int a = step % 2 == 0;
        dcl_step_weights w = {1.0f - phi[step], phi[step], phi[step]};
        dcl_step_stats s;
        CHECK_OK(dcl_detector_step(d, a ? xa : xb, a ? xa : xb, a ? ya : yb, a ? ca : cb, w, opt, 1e-3f, &rng, &s));
        double g[4] = {s.loss, s.ce, s.inter, s.intra}, want[4] = {wt[step], wc[step], wi[step], wa[step]};
        const char *nm[4] = {"total", "ce", "inter", "intra"};
        for (int k = 0; k < 4; k++)
            CHECK(fabs(g[k] - want[k]) <= 1e-6 + 1e-3 * fabs(want[k]), "%s step %d %s: %.7g vs PyTorch %.7g", bename, step, nm[k], g[k], want[k]);
        printf("step %d: total %.6f (pytorch %.6f)  inter %.6f (%.6f)  intra %.6f (%.6f)\n", step, s.loss, wt[step], s.inter, wi[step], s.intra, wa[step]);
    }
    /* keys after 10 optimiser steps: float32 drift allowed */
    check_queue_tol(st, &d->mr, "traj.", "queue_real", "", 1e-4, 1e-2);
    check_queue_tol(st, &d->mf, "traj.", "queue_fake", "", 1e-4, 1e-2);
    free(xa); free(v2); free(la); free(ma); free(lb); free(mb); free(ord); free(xb); free(wt); free(wc); free(wi); free(wa); free(phi);
    dcl_optim_free(opt);
    dcl_detector_free(d);
    dcl_st_close(st);
    dcl_st_close(sp);
}

/* no_keys (the trainer's setting when dcl.inter is off): the query trains
 * exactly as with keys when w.inter = 0, the key encoder and the queues are
 * left alone, and an inter weight is refused */
static void test_no_keys(void) {
    dcl_backend *be = dcl_backend_cpu(0);
    if (!be) { CHECK(0, "cpu backend: %s", dcl_last_error()); return; }
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_detector *d[2] = {NULL, NULL};
    dcl_optim *opt[2] = {NULL, NULL};
    const int B = 4, S = 64;
    for (int k = 0; k < 2; k++) {
        dcl_method_cfg m = dcl_method_defaults();
        m.queue_size = 16;
        m.no_keys = k;
        CHECK_OK(dcl_detector_create(&d[k], be, &e, &m, 1));
        if (!d[k]) { dcl_backend_destroy(be); return; }
        dcl_rng r;
        dcl_rng_seed(&r, 5);
        CHECK_OK(dcl_net_init_params(d[k]->q->net, &r));
        CHECK_OK(dcl_detector_sync_key(d[k]));
        CHECK_OK(dcl_detector_plan(d[k], B, S, S, DCL_PLAN_TRAIN));
        dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
        CHECK_OK(dcl_optim_create(&opt[k], be, dcl_net_params(d[k]->q->net)->total, &oc));
    }
    size_t np = dcl_net_params(d[0]->q->net)->total;
    float *key0 = malloc(np * sizeof(float)), *pa = malloc(np * sizeof(float)), *pb = malloc(np * sizeof(float));
    memcpy(key0, dcl_net_param_data(d[1]->k->net), np * sizeof(float));
    float *x = malloc((size_t)B * S * S * 3 * sizeof(float)), *x2 = malloc((size_t)B * S * S * 3 * sizeof(float));
    dcl_rng r;
    dcl_rng_seed(&r, 11);
    int y[4] = {0, 1, 0, 1};
    uint8_t cell[4 * 4] = {0};
    for (int b = 0; b < B; b++) if (y[b]) cell[b * 4] = cell[b * 4 + 3] = 1;
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < (size_t)B * S * S * 3; i++) { x[i] = (float)dcl_rng_normal(&r); x2[i] = (float)dcl_rng_normal(&r); }
        dcl_step_weights w = {0.6f, 0.0f, 0.4f};
        dcl_step_stats st[2];
        for (int k = 0; k < 2; k++) {
            dcl_rng rs;
            dcl_rng_seed(&rs, 100 + step);
            CHECK_OK(dcl_detector_step(d[k], x, x2, y, cell, w, opt[k], 1e-3f, &rs, &st[k]));
        }
        CHECK(st[0].loss == st[1].loss && st[0].intra == st[1].intra, "step %d: losses %.9g / %.9g differ without keys",
              step, st[0].loss, st[1].loss);
        CHECK(st[1].enqueued_real == 0 && st[1].enqueued_fake == 0, "no_keys enqueued %d/%d keys", st[1].enqueued_real,
              st[1].enqueued_fake);
    }
    memcpy(pa, dcl_net_param_data(d[0]->q->net), np * sizeof(float));
    memcpy(pb, dcl_net_param_data(d[1]->q->net), np * sizeof(float));
    CHECK(!memcmp(pa, pb, np * sizeof(float)), "query parameters differ after 3 steps without keys");
    CHECK(!memcmp(key0, dcl_net_param_data(d[1]->k->net), np * sizeof(float)), "no_keys moved the key encoder");
    CHECK(d[1]->mr.count == 0 && d[1]->mf.count == 0, "no_keys filled the queues (%d/%d)", d[1]->mr.count, d[1]->mf.count);
    CHECK(d[0]->mr.count + d[0]->mf.count > 0, "with keys the queues fill");
    dcl_step_weights wi = {0.5f, 0.5f, 0.0f};
    dcl_step_stats st;
    CHECK(dcl_detector_step(d[1], x, x2, y, cell, wi, opt[1], 1e-3f, &r, &st) == DCL_ERR_ARG,
          "an inter weight without keys must be refused");
    free(key0); free(pa); free(pb); free(x); free(x2);
    for (int k = 0; k < 2; k++) { dcl_optim_free(opt[k]); dcl_detector_free(d[k]); }
    dcl_backend_destroy(be);
}

static void test_views(void) {
    /* RandomPatch moves image and mask patches identically */
    dcl_sample s = {0};
    s.w = s.h = 9;
    s.rgb = malloc(81 * 3 * sizeof(float));
    s.mask = malloc(81 * sizeof(float));
    for (int i = 0; i < 81; i++) { s.rgb[3 * i] = s.rgb[3 * i + 1] = s.rgb[3 * i + 2] = (float)i; s.mask[i] = (float)i; }
    int perm[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    dcl_random_patch(&s, 3, perm);
    int ok = 1;
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++) {
            int t = (y / 3) * 3 + x / 3, src = perm[t];
            int sy = (src / 3) * 3 + y % 3, sx = (src % 3) * 3 + x % 3;
            float want = (float)(sy * 9 + sx);
            ok &= s.rgb[3 * (y * 9 + x)] == want && s.mask[y * 9 + x] == want;
        }
    CHECK(ok, "RandomPatch must move patch (src) to target position for image and mask alike");
    dcl_sample_free(&s);
    /* SRM kernels are zero-sum high-pass filters: a constant image gives zero residual inside */
    float img[16 * 16 * 3], res[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) img[i] = 0.4f;
    dcl_srm_residuals(res, img, 16, 16);
    for (int k = 0; k < 3; k++) {
        double sum = 0;
        for (int j = 0; j < 25; j++) sum += dcl_srm_kernels[k][j];
        CHECK(fabs(sum) < 1e-6, "SRM kernel %d sums to %g", k, sum);
    }
    CHECK(fabs(res[(8 * 16 + 8) * 3]) < 1e-4 && fabs(res[(8 * 16 + 8) * 3 + 1]) < 1e-4, "flat image residual");
    /* against a direct 5x5 convolution of the grey image (zero padding,
     * clipped to [-3, 3], divided by 3), borders and odd sizes included */
    {
        const int sz[3][2] = {{23, 17}, {3, 9}, {1, 1}};
        dcl_rng rr;
        dcl_rng_seed(&rr, 9);
        for (int t = 0; t < 3; t++) {
            const int w = sz[t][0], h = sz[t][1];
            float *im = malloc(sizeof(float) * w * h * 3), *got = malloc(sizeof(float) * w * h * 3);
            for (int i = 0; i < w * h * 3; i++) im[i] = (float)dcl_rng_uniform(&rr);
            dcl_srm_residuals(got, im, w, h);
            double worst = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < 3; k++) {
                        double a = 0;
                        for (int dy = -2; dy <= 2; dy++)
                            for (int dx = -2; dx <= 2; dx++) {
                                int yy = y + dy, xx = x + dx;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                                const float *p = im + ((size_t)yy * w + xx) * 3;
                                a += dcl_srm_kernels[k][(dy + 2) * 5 + dx + 2] * 255.0 * (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
                            }
                        a = (a < -3 ? -3 : a > 3 ? 3 : a) / 3.0;
                        double e = fabs(a - got[((size_t)y * w + x) * 3 + k]);
                        if (e > worst) worst = e;
                    }
            CHECK(worst < 1e-4, "SRM residuals of a %dx%d image differ from the direct convolution by %g", w, h, worst);
            free(im);
            free(got);
        }
    }
    /* the blur view against a direct reflected Gaussian in double */
    {
        const int sz[4][2] = {{31, 23}, {4, 9}, {1, 1}, {2, 2}};
        const float sig[4] = {1.4f, 0.9f, 1.5f, 0.4f};
        dcl_rng rr;
        dcl_rng_seed(&rr, 12);
        for (int t = 0; t < 4; t++) {
            const int w = sz[t][0], h = sz[t][1], rad = (int)ceilf(3 * sig[t]);
            dcl_sample b = {0};
            b.w = w; b.h = h;
            b.rgb = malloc(sizeof(float) * w * h * 3);
            b.mask = calloc((size_t)w * h, sizeof(float));
            double *ref = malloc(sizeof(double) * w * h * 3), *tmp = malloc(sizeof(double) * w * h * 3), kern[32], ks = 0;
            for (int i = 0; i < w * h * 3; i++) ref[i] = b.rgb[i] = (float)dcl_rng_uniform(&rr);
            for (int i = -rad; i <= rad; i++) ks += kern[i + rad] = exp(-(double)i * i / (2.0 * sig[t] * sig[t]));
            for (int pass = 0; pass < 2; pass++) {   /* x, then y */
                const int n = pass ? h : w;
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int c = 0; c < 3; c++) {
                            double a = 0;
                            for (int i = -rad; i <= rad; i++) {
                                int q = (pass ? y : x) + i;
                                q = q < 0 ? -q : q >= n ? 2 * n - 2 - q : q;
                                q = q < 0 ? 0 : q >= n ? n - 1 : q;
                                a += kern[i + rad] / ks * ref[((size_t)(pass ? q : y) * w + (pass ? x : q)) * 3 + c];
                            }
                            tmp[((size_t)y * w + x) * 3 + c] = a;
                        }
                memcpy(ref, tmp, sizeof(double) * w * h * 3);
            }
            dcl_gaussian_blur(&b, sig[t]);
            double worst = 0;
            for (int i = 0; i < w * h * 3; i++) worst = fmax(worst, fabs(b.rgb[i] - ref[i]));
            CHECK(worst < 2e-6, "blur of a %dx%d image (sigma %.1f) differs from the direct filter by %g", w, h, sig[t], worst);
            free(ref); free(tmp);
            dcl_sample_free(&b);
        }
    }
    /* mixup touches fakes only */
    dcl_views_cfg c = dcl_views_none();
    c.p_mixup = 1.0f;
    dcl_sample a = {0}, r = {0};
    a.w = a.h = r.w = r.h = 4;
    a.rgb = calloc(48, sizeof(float)); a.mask = calloc(16, sizeof(float));
    r.rgb = calloc(48, sizeof(float)); r.mask = calloc(16, sizeof(float));
    for (int i = 0; i < 48; i++) { a.rgb[i] = 1.0f; r.rgb[i] = 0.0f; }
    for (int i = 0; i < 16; i++) a.mask[i] = 1.0f;
    dcl_rng rng;
    dcl_rng_seed(&rng, 4);
    CHECK_OK(dcl_view_apply(&a, &r, 0, 0, &c, &rng));
    CHECK(a.rgb[0] == 1.0f, "mixup must not touch real images");
    CHECK_OK(dcl_view_apply(&a, &r, 1, 0, &c, &rng));
    CHECK(a.rgb[0] >= 0.5f && a.rgb[0] < 1.0f && fabsf(a.mask[0] - a.rgb[0]) < 1e-6, "fake mixed with its real: lam %g, mask %g", a.rgb[0], a.mask[0]);
    dcl_sample_free(&a);
    dcl_sample_free(&r);
}

/* the inter and intra losses and their gradients: identical bits whatever
 * the number of threads (queues larger than one product block) */
static void test_loss_threads(void) {
    const int B = 12, L = 16, C = 96, Q = 5000;
    dcl_rng r;
    dcl_rng_seed(&r, 77);
    float *F = malloc(sizeof(float) * B * L * C), *q = malloc(sizeof(float) * B * L), *k = malloc(sizeof(float) * B * L);
    for (int i = 0; i < B * L * C; i++) F[i] = (float)dcl_rng_normal(&r);
    for (int i = 0; i < B * L; i++) { q[i] = (float)dcl_rng_normal(&r); k[i] = (float)dcl_rng_normal(&r); }
    dcl_normalize_rows(q, q, B, L);
    dcl_normalize_rows(k, k, B, L);
    int y[12];
    uint8_t cell[12 * 16];
    for (int b = 0; b < B; b++) {
        y[b] = b % 3 != 0;
        for (int l = 0; l < L; l++) cell[b * L + l] = y[b] && (l * 7 + b) % 5 < 2;
    }
    dcl_queue mr, mf;
    CHECK_OK(dcl_queue_init(&mr, Q, L));
    CHECK_OK(dcl_queue_init(&mf, Q, L));
    float v[16];
    for (int i = 0; i < Q - 7; i++) {   /* not full: counts differ from the capacity */
        for (int t = 0; t < L; t++) v[t] = (float)dcl_rng_normal(&r);
        dcl_normalize_rows(v, v, 1, L);
        dcl_queue_push(&mr, v);
        if (i % 2) dcl_queue_push(&mf, v);
    }
    const int nt[3] = {1, 2, 3};
    double li[3], la[3], lr[3], lf[3];
    float *dq[3], *dF[3];
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(nt[t]);
        dq[t] = malloc(sizeof(float) * B * L);
        dF[t] = malloc(sizeof(float) * B * L * C);
        CHECK_OK(dcl_inter_loss(&li[t], dq[t], q, k, y, B, L, &mr, &mf, 0.07f, 0.5f));
        CHECK_OK(dcl_intra_loss(&la[t], &lr[t], &lf[t], dF[t], F, y, cell, B, L, C, 0.07f, 0, 0.5f));
    }
    omp_set_num_threads(saved);
    int same = 1;
    for (int t = 1; t < 3; t++) {
        same &= li[t] == li[0] && la[t] == la[0] && lr[t] == lr[0] && lf[t] == lf[0];
        same &= !memcmp(dq[t], dq[0], sizeof(float) * B * L) && !memcmp(dF[t], dF[0], sizeof(float) * B * L * C);
    }
    for (int t = 1; t < 3; t++) {
        int bq = 0, bf = 0;
        for (int i = 0; i < B * L; i++) bq += memcmp(&dq[t][i], &dq[0][i], 4) != 0;
        for (int i = 0; i < B * L * C; i++) bf += memcmp(&dF[t][i], &dF[0][i], 4) != 0;
        if (bq || bf) printf("  %d threads: %d inter and %d intra gradient values differ from 1 thread\n", nt[t], bq, bf);
    }
    CHECK(same, "losses with 1/2/3 threads: inter %.17g %.17g %.17g, intra %.17g %.17g %.17g (gradients compared bitwise)",
          li[0], li[1], li[2], la[0], la[1], la[2]);
    CHECK(isfinite(li[0]) && li[0] > 0 && isfinite(la[0]) && lf[0] != 0 && lr[0] != 0, "losses %g %g (%g real, %g fake)",
          li[0], la[0], lr[0], lf[0]);
    printf("inter / intra losses: the same bits with 1, 2 and 3 threads (%.6f, %.6f)\n", li[0], la[0]);
    for (int t = 0; t < 3; t++) { free(dq[t]); free(dF[t]); }
    dcl_queue_free(&mr);
    dcl_queue_free(&mf);
    free(F); free(q); free(k);
}

int main(void) {
    dcl_backend *cuda = dcl_backend_create("cuda", 0);
    char why[256];
    snprintf(why, sizeof why, "%s", cuda ? "" : dcl_last_error());
    if (!getenv("DCL_TEST_ONLY_CUDA")) {
        test_views();
        test_loss_threads();
        test_step();
        test_no_keys();
        test_trajectory(dcl_backend_ref(), "ref");
        dcl_backend *cpu = dcl_backend_cpu(0);
        if (cpu) test_trajectory(cpu, "cpu");
        dcl_backend_destroy(cpu);
    }
    if (cuda) test_trajectory(cuda, "cuda");
    else printf("cuda: skipped: %s\n", why);
    dcl_backend_destroy(cuda);
    CHECK_DONE();
}
