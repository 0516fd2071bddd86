/* The executor's fusions (docs/SPEED.md) and the backend entries behind them.
 *  1. The cpu backend's fused entries against the reference backend's
 *     unfused ops composed the same way: bn_stats against bn_fwd_train's
 *     statistics; bn_act_fwd against bn -> act -> mul / gap; the fused
 *     backward (bn_act_bwd_reduce + bn_act_bwd_dx, bn_act_dot) against
 *     mul_bcast_bwd + gap_bwd + act_bwd + bn_bwd; every activation, with and
 *     without the squeeze-excitation terms (also bn_act_se_sums' one-pass
 *     sums), channel counts with and without
 *     a vector tail, sizes below and above the threading threshold, with
 *     sentinels after every output, also with streaming stores forced on.
 *  2. Whole networks (a narrow tf_efficientnet_b0 with dropout and
 *     drop-path): evaluation logits with the batch norms folded into the
 *     convolutions against the unfolded plan (cpu and ref backends) and
 *     against the ref backend; a training step (logits, features, every
 *     parameter gradient, running statistics) and a second step after an
 *     Adam update with fused batch norm + activation and squeeze-excitation
 *     against the unfused plan; the key encoder's no-gradient plan; a
 *     fused-away value is refused by dcl_net_value_to_host; the fused
 *     training plan needs less activation memory.
 *  3. Synchronised batch norm on the fused path: two nets on the halves of
 *     a batch, run by two threads that exchange statistics, give the whole
 *     batch's logits, averaged gradients and running statistics.
 */
#include "check.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include "backend/backend.h"
#include <pthread.h>

static dcl_rng RNG;
static dcl_backend *CPU, *REF;
#define SENT 16
static const float SENTV = -9876.5f;

static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (n + SENT));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)dcl_rng_uniform(&RNG);
    for (int i = 0; i < SENT; i++) p[n + i] = SENTV;
    return p;
}
/* output buffer: garbage inside, sentinels after */
static float *outbuf(size_t n) {
    float *p = malloc(sizeof(float) * (n + SENT));
    for (size_t i = 0; i < n; i++) p[i] = 12345.0f;
    for (int i = 0; i < SENT; i++) p[n + i] = SENTV;
    return p;
}
static int sent_ok(const float *p, size_t n) {
    for (int i = 0; i < SENT; i++) if (p[n + i] != SENTV) return 0;
    return 1;
}
static double rms(const float *p, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return n ? sqrt(s / n) : 0;
}
#define CLOSE_RMS(what, got, want, n, rtol) \
    CHECK_CLOSE(what, got, want, (long)(n), (rtol) * fmax(1.0, rms(want, n)), rtol)

/* ------------------------------------------------------ 1. the entries -- */

static const char *ACTN[] = {"none", "relu", "silu", "sigmoid"};

static void check_ops(int N, int HW, int C, dcl_act act, int se) {
    char what[160];
    int64_t M = (int64_t)N * HW;
    size_t nx = (size_t)M * C, nc = (size_t)N * C;
    float *x = rnd(nx, -2.0f, 3.0f), *gamma = rnd(C, 0.5f, 1.5f), *beta = rnd(C, -0.5f, 0.5f);
    float *s = rnd(nc, 0.1f, 1.0f), *dy = rnd(nx, -1.0f, 1.0f), *dg = rnd(nc, -1.0f, 1.0f);
    const float eps = 1e-3f;
    /* reference: bn_fwd_train -> act -> (mul by s, gap) */
    float *ry = outbuf(nx), *rmean = outbuf(C), *rvar = outbuf(C), *ris = outbuf(C), *ra = outbuf(nx);
    float *rm = outbuf(nx), *rg = outbuf(nc);
    CHECK_OK(REF->bn_fwd_train(REF, M, C, ry, rmean, rvar, ris, x, gamma, beta, eps));
    CHECK_OK(REF->act_fwd(REF, act, nx, ra, ry));
    CHECK_OK(REF->mul_bcast_fwd(REF, N, HW, C, rm, ra, s));
    CHECK_OK(REF->gap_fwd(REF, N, HW, C, rg, ra));
    /* statistics */
    float *mean = outbuf(C), *var = outbuf(C), *is = outbuf(C);
    CHECK_OK(CPU->bn_stats(CPU, M, C, mean, var, is, x, eps));
    snprintf(what, sizeof what, "bn_stats N=%d HW=%d C=%d", N, HW, C);
    CHECK_CLOSE(what, mean, rmean, C, 1e-6, 1e-5);
    CHECK_CLOSE(what, var, rvar, C, 1e-6, 1e-5);
    CHECK_CLOSE(what, is, ris, C, 1e-6, 1e-5);
    CHECK(sent_ok(mean, C) && sent_ok(var, C) && sent_ok(is, C), "%s: write past the end", what);
    /* forward with the reference statistics */
    float *y = outbuf(nx), *gm = outbuf(nc);
    CHECK_OK(CPU->bn_act_fwd(CPU, N, HW, C, act, y, se ? gm : NULL, x, rmean, ris, gamma, beta, se ? s : NULL));
    snprintf(what, sizeof what, "bn_act_fwd %s%s N=%d HW=%d C=%d", ACTN[act], se ? "+se" : "", N, HW, C);
    CHECK_CLOSE(what, y, se ? rm : ra, nx, 1e-5, 1e-5);
    if (se) CHECK_CLOSE(what, gm, rg, nc, 1e-5, 1e-5);
    CHECK(sent_ok(y, nx) && sent_ok(gm, nc), "%s: write past the end", what);
    if (se) {  /* pooled means alone */
        float *gm2 = outbuf(nc);
        CHECK_OK(CPU->bn_act_fwd(CPU, N, HW, C, act, NULL, gm2, x, rmean, ris, gamma, beta, NULL));
        CHECK_CLOSE(what, gm2, rg, nc, 1e-5, 1e-5);
        free(gm2);
    }
    {   /* without normalisation: act(x) (* s), pooled act(x) */
        float *ax = outbuf(nx), *axs = outbuf(nx), *gx = outbuf(nc), *y2 = outbuf(nx), *g2 = outbuf(nc);
        CHECK_OK(REF->act_fwd(REF, act, nx, ax, x));
        CHECK_OK(REF->mul_bcast_fwd(REF, N, HW, C, axs, ax, s));
        CHECK_OK(REF->gap_fwd(REF, N, HW, C, gx, ax));
        CHECK_OK(CPU->bn_act_fwd(CPU, N, HW, C, act, y2, g2, x, NULL, NULL, NULL, NULL, se ? s : NULL));
        snprintf(what, sizeof what, "bn_act_fwd %s%s without normalisation N=%d HW=%d C=%d", ACTN[act], se ? "+se" : "", N, HW, C);
        CHECK_CLOSE(what, y2, se ? axs : ax, nx, 1e-5, 1e-5);
        CHECK_CLOSE(what, g2, gx, nc, 1e-5, 1e-5);
        CHECK(sent_ok(y2, nx) && sent_ok(g2, nc), "%s: write past the end", what);
        free(ax); free(axs); free(gx); free(y2); free(g2);
    }
    /* backward.  reference: dm = dy;  da = dm * s (+ dg / HW);  ds = sum dm * a;
     * dz = act_bwd(da);  bn_bwd(dz) */
    float *rda = outbuf(nx), *rds = outbuf(nc), *rdz = outbuf(nx), *rdx = outbuf(nx), *tmp = outbuf(nx);
    float *rdgam = rnd(C, -1, 1), *rdbet = rnd(C, -1, 1);
    float *dgam = malloc(C * sizeof(float)), *dbet = malloc(C * sizeof(float));
    memcpy(dgam, rdgam, C * sizeof(float));
    memcpy(dbet, rdbet, C * sizeof(float));
    if (se) {
        CHECK_OK(REF->mul_bcast_bwd(REF, N, HW, C, rda, rds, dy, ra, s));
        CHECK_OK(REF->gap_bwd(REF, N, HW, C, tmp, dg));
        CHECK_OK(REF->add(REF, nx, rda, rda, tmp));
    } else {
        memcpy(rda, dy, nx * sizeof(float));
    }
    CHECK_OK(REF->act_bwd(REF, act, nx, rdz, rda, ry, ra));
    CHECK_OK(REF->bn_bwd(REF, M, C, rdx, rdgam, rdbet, rdz, x, rmean, ris, gamma));
    float *sdy = outbuf(C), *sdyx = outbuf(C), *dx = outbuf(nx), *ds = outbuf(nc), *dx2 = outbuf(nx);
    /* d left in dx by the reduce pass, finished in place ... */
    CHECK_OK(CPU->bn_act_bwd_reduce(CPU, N, HW, C, act, sdy, sdyx, dgam, dbet, dx, dy, x, rmean, ris, gamma, beta,
                                    se ? s : NULL, se ? dg : NULL));
    CHECK_OK(CPU->bn_act_bwd_dx(CPU, N, HW, C, act, dx, dx, NULL, x, rmean, ris, gamma, NULL, NULL, NULL, sdy, sdyx, M));
    /* ... or recomputed from dy */
    CHECK_OK(CPU->bn_act_bwd_dx(CPU, N, HW, C, act, dx2, NULL, dy, x, rmean, ris, gamma, beta, se ? s : NULL,
                                se ? dg : NULL, sdy, sdyx, M));
    snprintf(what, sizeof what, "bn_act_bwd %s%s N=%d HW=%d C=%d", ACTN[act], se ? "+se" : "", N, HW, C);
    CLOSE_RMS(what, dx, rdx, nx, 1e-4);
    CLOSE_RMS(what, dx2, rdx, nx, 1e-4);
    CHECK(sent_ok(dx2, nx), "%s: write past the end", what);
    CLOSE_RMS(what, dgam, rdgam, C, 1e-4);
    CLOSE_RMS(what, dbet, rdbet, C, 1e-4);
    CHECK(sent_ok(dx, nx) && sent_ok(sdy, C) && sent_ok(sdyx, C), "%s: write past the end", what);
    /* the sums themselves: sdy = dbeta increment */
    for (int c = 0; c < C; c++) tmp[c] = rdbet[c] - dbet[c] + sdy[c];
    CLOSE_RMS(what, sdy, tmp, C, 1e-4);
    if (se) {
        CHECK_OK(CPU->bn_act_dot(CPU, N, HW, C, act, ds, dy, x, rmean, ris, gamma, beta));
        snprintf(what, sizeof what, "bn_act_dot %s N=%d HW=%d C=%d", ACTN[act], N, HW, C);
        CLOSE_RMS(what, ds, rds, nc, 1e-4);
        CHECK(sent_ok(ds, nc), "%s: write past the end", what);
        /* the one-pass sums: ds, and the reduce's sums once s and dgap are applied */
        float *ds2 = outbuf(nc), *t = outbuf(4 * nc), *s2 = malloc(C * sizeof(float)), *q2 = malloc(C * sizeof(float));
        CHECK_OK(CPU->bn_act_se_sums(CPU, N, HW, C, act, ds2, t, dy, x, rmean, ris, gamma, beta));
        for (int c = 0; c < C; c++) {
            double a = 0, q = 0;
            for (int n = 0; n < N; n++) {
                size_t i = (size_t)n * C + c;
                a += s[i] * (double)t[i] + dg[i] / (double)HW * t[nc + i];
                q += s[i] * (double)t[2 * nc + i] + dg[i] / (double)HW * t[3 * nc + i];
            }
            s2[c] = (float)a;
            q2[c] = (float)q;
        }
        snprintf(what, sizeof what, "bn_act_se_sums %s N=%d HW=%d C=%d", ACTN[act], N, HW, C);
        CLOSE_RMS(what, ds2, rds, nc, 1e-4);
        CLOSE_RMS(what, s2, sdy, C, 1e-4);
        CLOSE_RMS(what, q2, sdyx, C, 1e-4);
        CHECK(sent_ok(ds2, nc) && sent_ok(t, 4 * nc), "%s: write past the end", what);
        free(ds2); free(t); free(s2); free(q2);
    }
    float *bufs[] = {x, gamma, beta, s, dy, dg, ry, rmean, rvar, ris, ra, rm, rg, mean, var, is, y, gm, rda, rds,
                     rdz, rdx, tmp, rdgam, rdbet, dgam, dbet, sdy, sdyx, dx, ds, dx2};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

static void check_conv_fwd_act(void) {
    /* conv_fwd_act against ref conv + ref act, conv_fwd_add against ref conv
     * + ref add: 1x1, depthwise 3x3, 1x1 on a 1x1 map */
    dcl_conv_desc ds[3] = {
        {.n = 2, .ci = 16, .hi = 9, .wi = 7, .co = 24, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .has_bias = 1},
        {.n = 2, .ci = 16, .hi = 9, .wi = 7, .co = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
         .pt = 1, .pb = 1, .pl = 1, .pr = 1, .groups = 16, .has_bias = 1},
        {.n = 3, .ci = 40, .hi = 1, .wi = 1, .co = 10, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .has_bias = 1},
    };
    for (int k = 0; k < 3; k++) {
        dcl_conv_desc d = ds[k];
        CHECK_OK(dcl_conv_desc_finish(&d));
        size_t nx = (size_t)d.n * d.ci * d.hi * d.wi, ny = (size_t)d.n * d.co * d.ho * d.wo;
        size_t nw = (size_t)d.co * (d.ci / d.groups) * d.kh * d.kw;
        float *x = rnd(nx, -1, 1), *w = rnd(nw, -0.5f, 0.5f), *b = rnd(d.co, -0.5f, 0.5f);
        for (int a = 0; a < 4; a++) {
            float *want = outbuf(ny), *got = outbuf(ny);
            CHECK_OK(REF->conv_fwd(REF, &d, want, x, w, b));
            CHECK_OK(REF->act_fwd(REF, (dcl_act)a, ny, want, want));
            CHECK_OK(CPU->conv_fwd_act(CPU, &d, (dcl_act)a, got, x, w, b));
            char what[96];
            snprintf(what, sizeof what, "conv_fwd_act shape %d %s", k, ACTN[a]);
            CLOSE_RMS(what, got, want, ny, 1e-4);
            CHECK(sent_ok(got, ny), "%s: write past the end", what);
            free(want);
            free(got);
        }
        /* conv_fwd_add: y += conv(x) + b */
        float *y0 = rnd(ny, -1, 1), *want = outbuf(ny), *got = outbuf(ny);
        CHECK_OK(REF->conv_fwd(REF, &d, want, x, w, b));
        CHECK_OK(REF->add(REF, ny, want, want, y0));
        memcpy(got, y0, ny * sizeof(float));
        CHECK_OK(CPU->conv_fwd_add(CPU, &d, got, x, w, b));
        char what[96];
        snprintf(what, sizeof what, "conv_fwd_add shape %d", k);
        CLOSE_RMS(what, got, want, ny, 1e-4);
        CHECK(sent_ok(got, ny), "%s: write past the end", what);
        free(y0); free(want); free(got);
        free(x); free(w); free(b);
    }
}

/* --------------------------------------------------- 2. whole networks -- */

static dcl_model *make_model(dcl_backend *be, int fuse, int drop) {
    dcl_effnet_cfg cfg;
    dcl_effnet_config(&cfg, "tf_efficientnet_b0");
    dcl_effnet_set_scale(&cfg, 0.25f, 0.34f);
    cfg.num_classes = 3;
    cfg.drop_rate = drop ? 0.2f : 0.0f;
    cfg.drop_path_rate = drop ? 0.2f : 0.0f;
    dcl_model *m = NULL;
    if (dcl_effnet_build(&m, be, &cfg)) return NULL;
    dcl_rng r;
    dcl_rng_seed(&r, 5);
    if (dcl_net_init_params(m->net, &r) || dcl_net_set_fuse(m->net, fuse)) { dcl_model_free(m); return NULL; }
    /* non-trivial batch-norm parameters and running statistics */
    const dcl_table *P = dcl_net_params(m->net), *B = dcl_net_buffers(m->net);
    for (int i = 0; i < P->n; i++) {
        const dcl_named *e = &P->v[i];
        if (e->ndim != 1 || !strstr(e->name, "bn")) continue;
        float *v = malloc(e->numel * sizeof(float));
        int w = strstr(e->name, "weight") != NULL;
        for (int64_t j = 0; j < e->numel; j++) v[j] = w ? 0.5f + (float)dcl_rng_uniform(&r) : 0.3f * (float)dcl_rng_normal(&r);
        dcl_net_set_tensor(m->net, e->name, v, e->numel);
        free(v);
    }
    for (int i = 0; i < B->n; i++) {
        const dcl_named *e = &B->v[i];
        if (e->flags & DCL_PF_COUNTER) continue;
        float *v = malloc(e->numel * sizeof(float));
        int var = strstr(e->name, "running_var") != NULL;
        for (int64_t j = 0; j < e->numel; j++) v[j] = var ? 0.5f + (float)dcl_rng_uniform(&r) : 0.2f * (float)dcl_rng_normal(&r);
        dcl_net_set_tensor(m->net, e->name, v, e->numel);
        free(v);
    }
    return m;
}

static int close_rel_max(const char *what, const float *a, const float *b, int64_t n, double tol, double floor) {
    double mb = 0, md = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
        if (!(d <= md)) { md = d; wi = i; }
    }
    int ok = md <= tol * mb + floor;
    CHECK(ok, "%s: max abs diff %.3g at %lld (got %.6g want %.6g), max |ref| %.3g", what, md, (long long)wi, a[wi], b[wi], mb);
    return ok;
}

enum { NB = 3, HH = 48, WW = 40, K = 3 };

static void eval_logits(dcl_model *m, const float *x, float *out) {
    CHECK_OK(dcl_net_plan(m->net, NB, HH, WW, DCL_PLAN_EVAL));
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, NULL));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, out));
}

static void check_eval_fold(const float *x) {
    float lf[NB * K], lu[NB * K], lr[NB * K], lrf[NB * K];
    dcl_model *f = make_model(CPU, DCL_FUSE_ALL, 1), *u = make_model(CPU, 0, 1);
    dcl_model *r = make_model(REF, 0, 1), *rf = make_model(REF, DCL_FUSE_ALL, 1);
    CHECK(f && u && r && rf, "building the models: %s", dcl_last_error());
    if (!f || !u || !r || !rf) return;
    eval_logits(f, x, lf);
    eval_logits(u, x, lu);
    eval_logits(r, x, lr);
    eval_logits(rf, x, lrf);
    CHECK_CLOSE("eval logits, cpu: folded vs unfolded", lf, lu, NB * K, 1e-4, 1e-3);
    CHECK_CLOSE("eval logits: cpu folded vs ref unfolded", lf, lr, NB * K, 1e-4, 1e-3);
    CHECK_CLOSE("eval logits, ref: folded vs unfolded", lrf, lr, NB * K, 1e-4, 1e-3);
    double spread = 0;
    for (int i = 1; i < NB * K; i++) spread = fmax(spread, fabs(lr[i] - lr[0]));
    CHECK(spread > 1e-3, "the test logits should differ between images (spread %g)", spread);
    /* the stem convolution's output (value 1) is folded away, the features are kept */
    float *buf = malloc(sizeof(float) * NB * 1280 * HH * WW);
    dcl_status s = dcl_net_value_to_host(f->net, 1, buf);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "fused away"), "reading a fused-away value: %d %s", s, dcl_last_error());
    CHECK_OK(dcl_net_value_to_host(f->net, f->features, buf));
    /* a second forward after the parameters change sees the new parameters */
    const dcl_table *P = dcl_net_params(f->net);
    for (int i = 0; i < P->n; i++)
        if (strstr(P->v[i].name, "bn1.weight") || strstr(P->v[i].name, "conv_stem")) {
            float *p = malloc(P->v[i].numel * sizeof(float));
            CHECK_OK(dcl_net_get_tensor(f->net, P->v[i].name, p, P->v[i].numel));
            for (int64_t j = 0; j < P->v[i].numel; j++) p[j] *= 1.5f;
            CHECK_OK(dcl_net_set_tensor(f->net, P->v[i].name, p, P->v[i].numel));
            CHECK_OK(dcl_net_set_tensor(r->net, P->v[i].name, p, P->v[i].numel));
            free(p);
        }
    eval_logits(f, x, lf);
    eval_logits(r, x, lr);
    CHECK_CLOSE("eval logits after a parameter change: cpu folded vs ref", lf, lr, NB * K, 1e-4, 1e-3);
    free(buf);
    dcl_model_free(f); dcl_model_free(u); dcl_model_free(r); dcl_model_free(rf);
}

static void train_step(dcl_model *m, const float *x, const int *tg, dcl_rng *rng, float *logits, float *feat,
                       float *grads) {
    float dl[NB * K], loss;
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, rng));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    CHECK_OK(dcl_net_value_to_host(m->net, m->features, feat));
    CHECK_OK(dcl_cross_entropy_fwd_f32(NB, K, &loss, logits, tg));
    CHECK_OK(dcl_cross_entropy_bwd_f32(NB, K, dl, 1.0f, logits, tg));
    CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dl));
    CHECK_OK(dcl_net_zero_grad(m->net));
    CHECK_OK(dcl_net_backward(m->net));
    memcpy(grads, dcl_net_grad_data(m->net), dcl_net_params(m->net)->total * sizeof(float));
}

static void check_train(const float *x) {
    dcl_model *f = make_model(CPU, DCL_FUSE_ALL, 1), *u = make_model(CPU, 0, 1);
    CHECK(f && u, "building the models: %s", dcl_last_error());
    if (!f || !u) return;
    int tg[NB] = {0, 2, 1};
    const dcl_table *P = dcl_net_params(f->net), *B = dcl_net_buffers(f->net);
    size_t nf = (size_t)NB * 1280 * 2 * 2;  /* upper bound of the feature map at 48x40 */
    float lf[NB * K], lu[NB * K], *ff = malloc(nf * 4 * sizeof(float)), *fu = malloc(nf * 4 * sizeof(float));
    float *gf = malloc(P->total * sizeof(float)), *gu = malloc(P->total * sizeof(float));
    CHECK_OK(dcl_net_mark_output(f->net, f->logits));
    CHECK_OK(dcl_net_mark_output(u->net, u->logits));
    CHECK_OK(dcl_net_plan(f->net, NB, HH, WW, DCL_PLAN_TRAIN));
    CHECK_OK(dcl_net_plan(u->net, NB, HH, WW, DCL_PLAN_TRAIN));
    CHECK(dcl_net_arena_bytes(f->net) < dcl_net_arena_bytes(u->net), "fused training arena %zu should be below the unfused %zu",
          dcl_net_arena_bytes(f->net), dcl_net_arena_bytes(u->net));
    int shp[4];
    dcl_net_value_shape(f->net, f->features, shp);
    size_t nfe = (size_t)shp[0] * shp[1] * shp[2] * shp[3];
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    dcl_optim *ou = NULL;
    CHECK_OK(dcl_optim_create(&ou, CPU, P->total, &oc));
    for (int step = 0; step < 2 && ou; step++) {
        dcl_rng r1, r2;
        dcl_rng_seed(&r1, 100 + step);
        dcl_rng_seed(&r2, 100 + step);
        train_step(f, x, tg, &r1, lf, ff, gf);
        train_step(u, x, tg, &r2, lu, fu, gu);
        char what[256];
        snprintf(what, sizeof what, "train step %d: logits fused vs unfused", step);
        CHECK_CLOSE(what, lf, lu, NB * K, 1e-4, 1e-3);
        snprintf(what, sizeof what, "train step %d: features fused vs unfused", step);
        CHECK_CLOSE(what, ff, fu, (long)nfe, 1e-4, 1e-3);
        double gmax = 0;
        for (size_t i = 0; i < P->total; i++) gmax = fmax(gmax, fabs(gu[i]));
        CHECK(gmax > 1e-4, "gradients should not vanish (max %g)", gmax);
        int nbad = 0;
        for (int i = 0; i < P->n; i++) {
            snprintf(what, sizeof what, "train step %d: grad %s fused vs unfused", step, P->v[i].name);
            if (!close_rel_max(what, gf + P->v[i].offset, gu + P->v[i].offset, P->v[i].numel, 2e-3, 1e-4 * gmax)) nbad++;
        }
        CHECK(nbad == 0, "step %d: %d parameter gradients differ", step, nbad);
        snprintf(what, sizeof what, "train step %d: running statistics fused vs unfused", step);
        CHECK_CLOSE(what, dcl_net_buffer_data(f->net), dcl_net_buffer_data(u->net), (long)B->total, 1e-6, 1e-4);
        /* Adam turns rounding-level differences of near-zero gradients
         * into whole steps: update one net and copy its state to the other */
        CHECK_OK(dcl_optim_step(ou, dcl_net_param_data(u->net), dcl_net_grad_data(u->net), 1e-3f));
        memcpy(dcl_net_param_data(f->net), dcl_net_param_data(u->net), P->total * sizeof(float));
        memcpy(dcl_net_buffer_data(f->net), dcl_net_buffer_data(u->net), B->total * sizeof(float));
    }
    /* the key encoder's plan: batch statistics, no backward */
    CHECK_OK(dcl_net_plan(f->net, NB, HH, WW, DCL_PLAN_TRAIN_NOGRAD));
    CHECK_OK(dcl_net_plan(u->net, NB, HH, WW, DCL_PLAN_TRAIN_NOGRAD));
    dcl_rng r1, r2;
    dcl_rng_seed(&r1, 9);
    dcl_rng_seed(&r2, 9);
    CHECK_OK(dcl_net_set_input(f->net, x));
    CHECK_OK(dcl_net_forward(f->net, &r1));
    CHECK_OK(dcl_net_value_to_host(f->net, f->logits, lf));
    CHECK_OK(dcl_net_set_input(u->net, x));
    CHECK_OK(dcl_net_forward(u->net, &r2));
    CHECK_OK(dcl_net_value_to_host(u->net, u->logits, lu));
    CHECK_CLOSE("no-gradient plan: logits fused vs unfused", lf, lu, NB * K, 1e-4, 1e-3);
    CHECK_CLOSE("no-gradient plan: running statistics fused vs unfused", dcl_net_buffer_data(f->net),
                dcl_net_buffer_data(u->net), (long)B->total, 1e-6, 1e-4);
    dcl_optim_free(ou);
    free(ff); free(fu); free(gf); free(gu);
    dcl_model_free(f);
    dcl_model_free(u);
}

/* ------------------------------------- 3. synchronised batch norm, fused -- */

typedef struct tshare { pthread_barrier_t bar; double buf[2 * 4096]; } tshare;
typedef struct tjob { tshare *sh; int rank; dcl_model *m; const float *x, *seed; dcl_status s; } tjob;

static dcl_status gather2(void *ctx, double *recv, const double *send, int n) {
    tjob *j = ctx;
    if (n > 4096) return dcl_fail(DCL_ERR_ARG, "test gather: %d values", n);
    memcpy(j->sh->buf + (size_t)j->rank * n, send, n * sizeof(double));
    pthread_barrier_wait(&j->sh->bar);
    memcpy(recv, j->sh->buf, 2 * (size_t)n * sizeof(double));
    pthread_barrier_wait(&j->sh->bar);
    return DCL_OK;
}

static dcl_status step_seeded(dcl_model *m, const float *x, const float *seed) {
    DCL_TRY(dcl_net_set_input(m->net, x));
    DCL_TRY(dcl_net_forward(m->net, NULL));
    DCL_TRY(dcl_net_zero_grad(m->net));
    DCL_TRY(dcl_net_seed_from_host(m->net, m->logits, seed));
    return dcl_net_backward(m->net);
}

static void *run_job(void *arg) {
    tjob *j = arg;
    j->s = step_seeded(j->m, j->x, j->seed);
    return NULL;
}

static dcl_model *sync_model(int batch) {
    /* no dropout: the halves and the whole batch must see the same network */
    dcl_model *m = make_model(CPU, DCL_FUSE_ALL, 0);
    if (!m) return NULL;
    if (dcl_net_mark_output(m->net, m->logits) || dcl_net_plan(m->net, batch, HH, WW, DCL_PLAN_TRAIN)) {
        dcl_model_free(m);
        return NULL;
    }
    return m;
}

static void check_sync_bn(void) {
    enum { B = 4 };
    size_t px = (size_t)HH * WW * 3;
    float *x = malloc(B * px * sizeof(float));
    for (size_t i = 0; i < B * px; i++) x[i] = (float)dcl_rng_normal(&RNG);
    dcl_model *full = sync_model(B), *half[2] = {sync_model(B / 2), sync_model(B / 2)};
    CHECK(full && half[0] && half[1], "building the models: %s", dcl_last_error());
    if (!full || !half[0] || !half[1]) goto out;
    float seed_full[B * K], seed_half[B * K], lf[B * K], lh[B * K];
    for (int i = 0; i < B * K; i++) {
        float g = (float)dcl_rng_normal(&RNG);
        seed_full[i] = g / B;
        seed_half[i] = g / (B / 2);
    }
    CHECK_OK(step_seeded(full, x, seed_full));
    CHECK_OK(dcl_net_value_to_host(full->net, full->logits, lf));
    tshare sh;
    pthread_barrier_init(&sh.bar, NULL, 2);
    tjob jobs[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (tjob){&sh, k, half[k], x + (size_t)k * (B / 2) * px, seed_half + k * (B / 2) * K, DCL_OK};
        CHECK_OK(dcl_net_set_bn_sync(half[k]->net, gather2, 2, &jobs[k]));
    }
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, run_job, &jobs[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&sh.bar);
    for (int k = 0; k < 2; k++) {
        CHECK(jobs[k].s == DCL_OK, "rank %d failed", k);
        CHECK_OK(dcl_net_value_to_host(half[k]->net, half[k]->logits, lh + k * (B / 2) * K));
    }
    /* oneDNN may take other kernels for batches of 2 and 4: rounding-level
     * differences through the network, hence test_model's logit tolerance */
    CHECK_CLOSE("fused sync BN: logits of the halves vs the whole batch", lh, lf, B * K, 1e-4, 1e-3);
    const dcl_table *t = dcl_net_params(full->net), *bt = dcl_net_buffers(full->net);
    float *g0 = dcl_net_grad_data(half[0]->net), *g1 = dcl_net_grad_data(half[1]->net), *gf = dcl_net_grad_data(full->net);
    float *avg = malloc(t->total * sizeof(float));
    double gmax = 0;
    for (size_t i = 0; i < t->total; i++) { avg[i] = 0.5f * (g0[i] + g1[i]); gmax = fmax(gmax, fabs(gf[i])); }
    CHECK(gmax > 1e-3, "the test gradients should not vanish (max %g)", gmax);
    CHECK_CLOSE("fused sync BN: averaged gradients vs the whole batch", avg, gf, (long)t->total, 1e-5 * gmax, 1e-3);
    CHECK_CLOSE("fused sync BN: running statistics (rank 0)", dcl_net_buffer_data(half[0]->net),
                dcl_net_buffer_data(full->net), (long)bt->total, 1e-6, 1e-4);
    CHECK_CLOSE("fused sync BN: running statistics (rank 1)", dcl_net_buffer_data(half[1]->net),
                dcl_net_buffer_data(full->net), (long)bt->total, 1e-6, 1e-4);
    free(avg);
out:
    free(x);
    dcl_model_free(full);
    dcl_model_free(half[0]);
    dcl_model_free(half[1]);
}

int main(void) {
    dcl_rng_seed(&RNG, 12345);
    REF = dcl_backend_ref();
    CPU = dcl_backend_cpu(2);
    if (!CPU) { fprintf(stderr, "no cpu backend: %s\n", dcl_last_error()); return 1; }
    CHECK(CPU->bn_stats && CPU->bn_act_fwd && CPU->bn_act_bwd_reduce && CPU->bn_act_bwd_dx && CPU->bn_act_dot &&
          CPU->bn_act_se_sums && CPU->conv_fwd_act && CPU->conv_fwd_add, "the cpu backend fills the fused entries");
    CHECK(!REF->bn_stats && !REF->conv_fwd_act && !REF->conv_fwd_add, "the ref backend leaves them NULL (the executor falls back)");
    int shapes[][3] = {{2, 37, 24}, {3, 1000, 24}, {2, 50, 20}, {1, 7, 3}, {2, 2000, 36}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int a = 0; a < 4; a++)
            for (int se = 0; se < 2; se++) check_ops(shapes[k][0], shapes[k][1], shapes[k][2], (dcl_act)a, se);
    /* the same with streaming stores forced on for every output */
    setenv("DCL_CPU_STREAM_MB", "0.0001", 1);
    dcl_backend *plain = CPU;
    CPU = dcl_backend_cpu(2);
    unsetenv("DCL_CPU_STREAM_MB");
    if (CPU) {
        for (int a = 0; a < 4; a++)
            for (int se = 0; se < 2; se++) { check_ops(3, 1000, 24, (dcl_act)a, se); check_ops(2, 50, 20, (dcl_act)a, se); }
        dcl_backend_destroy(CPU);
    }
    CPU = plain;
    check_conv_fwd_act();
    size_t px = (size_t)HH * WW * 3;
    float *x = malloc(NB * px * sizeof(float));
    for (size_t i = 0; i < NB * px; i++) x[i] = (float)dcl_rng_normal(&RNG);
    check_eval_fold(x);
    check_train(x);
    check_sync_bn();
    free(x);
    dcl_backend_destroy(CPU);
    CHECK_DONE();
}
