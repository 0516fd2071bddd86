/* CUDA backend against the reference backend (the ground truth).
 *
 * Every op of the backend vtable runs on the GPU and on dcl_backend_ref()
 * with the same random inputs at EfficientNet-like shapes; outputs and
 * gradients must agree within
 *     |gpu - ref| <= atol + rtol * |ref|,  rtol = 1e-3,
 *     atol = 1e-4 * max(1, max |ref|)
 * (strict fp32: cuDNN limited to FMA kernels, cuBLAS default math, so the
 * only differences are summation order).  Gradient buffers of parameters
 * start non-zero to check that they accumulate; activation gradients start
 * as garbage to check that they are assigned.  A TF32 run of one conv is
 * checked at rtol 1e-2.  Four host threads share the backend (each its own
 * shapes, so plans, scratch and staging buffers are contended) and must
 * get the reference results.  A timing section prints ms per call for a few
 * EfficientNet-b4 convolutions (batch 8, 380x380 input).
 *
 * Without a usable GPU (or without CUDA in the build) it prints
 * "cuda: skipped: <reason>" and passes.
 */
#include "check.h"
#include "dcl/core.h"
#include "backend/backend.h"
#ifdef DCL_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include <stdint.h>
#include <pthread.h>

static dcl_backend *G, *R;     /* GPU, reference */
static dcl_rng rng;

enum { FILL_NORMAL, FILL_UNIFORM, FILL_GARBAGE, FILL_ZERO, FILL_POSITIVE, FILL_TIES };

/* one tensor: host copy for the reference, device copy for the GPU */
typedef struct buf { float *h, *d; size_t n; } buf;

static buf mk(size_t n, int fill, float scale, float offset) {
    buf b = {0};
    b.n = n;
    b.h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        double v;
        switch (fill) {
        case FILL_NORMAL: v = dcl_rng_normal(&rng); break;
        case FILL_UNIFORM: v = 2 * dcl_rng_uniform(&rng) - 1; break;
        case FILL_GARBAGE: v = 12345.0; break;
        case FILL_POSITIVE: v = 0.2 + dcl_rng_uniform(&rng); break;
        case FILL_TIES: v = (double)dcl_rng_below(&rng, 3); break;
        default: v = 0;
        }
        b.h[i] = (float)(v * scale + offset);
    }
    b.d = G->mem_alloc(G, (n ? n : 1) * sizeof(float));
    if (!b.d) { fprintf(stderr, "mem_alloc: %s\n", dcl_last_error()); exit(1); }
    if (n && G->to_device(G, b.d, b.h, n * sizeof(float)) != DCL_OK) {
        fprintf(stderr, "to_device: %s\n", dcl_last_error());
        exit(1);
    }
    return b;
}
#define MK(n, fill) mk((n), (fill), 1.f, 0.f)

static void rm(buf *b) {
    free(b->h);
    G->mem_free(G, b->d);
    b->h = NULL; b->d = NULL;
}

static double maxabs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* compares the GPU copy of b with its reference copy */
static int cmp(const char *what, const buf *b) {
    float *g = malloc((b->n ? b->n : 1) * sizeof(float));
    CHECK_OK(G->sync(G));
    CHECK_OK(G->to_host(G, g, b->d, b->n * sizeof(float)));
    const double atol = 1e-4 * fmax(1.0, maxabs(b->h, b->n));
    double worst = 0;
    for (size_t i = 0; i < b->n; i++) {
        double e = fabs((double)g[i] - b->h[i]) / (atol + 1e-3 * fabs(b->h[i]));
        if (e > worst || isnan(e)) worst = e;
    }
    int ok = CHECK_CLOSE(what, g, b->h, (long)b->n, atol, 1e-3);
    if (getenv("DCL_TEST_VERBOSE")) printf("  %-44s n=%-8zu err/tol %.3g\n", what, b->n, worst);
    free(g);
    return ok;
}

/* ---------------------------------------------------------------------- */

static void conv_case(const char *name, dcl_conv_desc d) {
    char what[160];
    if (dcl_conv_desc_finish(&d) != DCL_OK) { CHECK(0, "%s: %s", name, dcl_last_error()); return; }
    const size_t nx = (size_t)d.n * d.hi * d.wi * d.ci, ny = (size_t)d.n * d.ho * d.wo * d.co;
    const size_t nw = (size_t)d.co * (d.ci / d.groups) * d.kh * d.kw;
    const float wscale = 1.f / sqrtf((float)(d.ci / d.groups * d.kh * d.kw));
    buf x = MK(nx, FILL_NORMAL), w = mk(nw, FILL_UNIFORM, wscale, 0), b = MK(d.co, FILL_NORMAL);
    buf y = MK(ny, FILL_GARBAGE);
    CHECK_OK(R->conv_fwd(R, &d, y.h, x.h, w.h, b.h));
    CHECK_OK(G->conv_fwd(G, &d, y.d, x.d, w.d, b.d));
    snprintf(what, sizeof what, "%s conv_fwd", name);
    cmp(what, &y);

    buf dy = MK(ny, FILL_NORMAL), dx = MK(nx, FILL_GARBAGE);
    CHECK_OK(R->conv_bwd_data(R, &d, dx.h, dy.h, w.h));
    CHECK_OK(G->conv_bwd_data(G, &d, dx.d, dy.d, w.d));
    snprintf(what, sizeof what, "%s conv_bwd_data", name);
    cmp(what, &dx);

    buf dw = MK(nw, FILL_NORMAL), db = MK(d.co, FILL_NORMAL);   /* accumulate onto these */
    float *dbh = d.has_bias ? db.h : NULL, *dbd = d.has_bias ? db.d : NULL;
    CHECK_OK(R->conv_bwd_weights(R, &d, dw.h, dbh, dy.h, x.h));
    CHECK_OK(G->conv_bwd_weights(G, &d, dw.d, dbd, dy.d, x.d));
    snprintf(what, sizeof what, "%s conv_bwd_weights dw", name);
    cmp(what, &dw);
    snprintf(what, sizeof what, "%s conv_bwd_weights db", name);
    cmp(what, &db);

    /* fused entries: conv_fwd_act = act(conv + b) for every activation,
     * conv_fwd_add: y += conv + b (onto a non-zero y) */
    if (G->conv_fwd_act && G->conv_fwd_add) {
        static const dcl_act acts[] = {DCL_ACT_NONE, DCL_ACT_RELU, DCL_ACT_SILU, DCL_ACT_SIGMOID};
        static const char *an[] = {"none", "relu", "silu", "sigmoid"};
        for (int k = 0; k < 4; k++) {
            buf ya = MK(ny, FILL_GARBAGE);
            CHECK_OK(R->conv_fwd(R, &d, ya.h, x.h, w.h, b.h));
            CHECK_OK(R->act_fwd(R, acts[k], (int64_t)ny, ya.h, ya.h));
            CHECK_OK(G->conv_fwd_act(G, &d, acts[k], ya.d, x.d, w.d, b.d));
            snprintf(what, sizeof what, "%s conv_fwd_act %s", name, an[k]);
            cmp(what, &ya);
            rm(&ya);
        }
        buf ys = MK(ny, FILL_NORMAL), t = MK(ny, FILL_GARBAGE);
        CHECK_OK(R->conv_fwd(R, &d, t.h, x.h, w.h, b.h));
        CHECK_OK(R->add(R, (int64_t)ny, ys.h, ys.h, t.h));
        CHECK_OK(G->conv_fwd_add(G, &d, ys.d, x.d, w.d, b.d));
        snprintf(what, sizeof what, "%s conv_fwd_add", name);
        cmp(what, &ys);
        rm(&ys); rm(&t);
    } else {
        CHECK(0, "the cuda backend must fill conv_fwd_act and conv_fwd_add");
    }
#ifdef DCL_HAVE_CUDA
    if (getenv("DCL_TEST_VERBOSE")) {
        char desc[512];
        if (dcl_cuda_conv_describe(G, &d, desc, sizeof desc) == DCL_OK) printf("  %s: %s\n", name, desc);
    }
#endif
    rm(&x); rm(&w); rm(&b); rm(&y); rm(&dy); rm(&dx); rm(&dw); rm(&db);
}

static dcl_conv_desc conv_d(int n, int ci, int hi, int wi, int co, int k, int s, int dil, int groups,
                            int bias, int tf_same, int pad) {
    dcl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.n = n; d.ci = ci; d.hi = hi; d.wi = wi; d.co = co;
    d.kh = d.kw = k; d.sh = d.sw = s; d.dh = d.dw = dil; d.groups = groups; d.has_bias = bias;
    if (tf_same) {
        dcl_same_pad(hi, k, s, dil, &d.pt, &d.pb);
        dcl_same_pad(wi, k, s, dil, &d.pl, &d.pr);
    } else {
        d.pt = d.pb = d.pl = d.pr = pad;
    }
    return d;
}

#ifdef DCL_HAVE_CUDA
static int is_depthwise(const dcl_conv_desc *d) { return d->groups == d->ci && d->co == d->ci; }
#endif

static void test_conv(void) {
    struct { const char *name; dcl_conv_desc d; } cs[] = {
        {"1x1 32->48 bias", conv_d(2, 32, 14, 14, 48, 1, 1, 1, 1, 1, 0, 0)},
        {"1x1 s2 24->40", conv_d(2, 24, 15, 15, 40, 1, 2, 1, 1, 0, 0, 0)},
        {"stem 3x3 s2 same even", conv_d(2, 3, 32, 32, 16, 3, 2, 1, 1, 0, 1, 0)},
        {"stem 3x3 s2 same odd", conv_d(2, 3, 33, 33, 16, 3, 2, 1, 1, 1, 1, 0)},
        {"stem 3x3 s2 pad1", conv_d(2, 3, 32, 32, 16, 3, 2, 1, 1, 0, 0, 1)},
        {"dw 3x3 s1 pad1", conv_d(2, 24, 16, 16, 24, 3, 1, 1, 24, 0, 0, 1)},
        {"dw 3x3 s2 same", conv_d(2, 24, 16, 16, 24, 3, 2, 1, 24, 0, 1, 0)},
        {"dw 5x5 s1 same", conv_d(2, 40, 12, 12, 40, 5, 1, 1, 40, 0, 1, 0)},
        {"dw 5x5 s2 same 15x16", conv_d(2, 40, 15, 16, 40, 5, 2, 1, 40, 0, 1, 0)},   /* h 2/2, w 1/2 */
        {"dw 3x3 d2 bias C16", conv_d(2, 16, 11, 11, 16, 3, 1, 2, 16, 1, 0, 2)},
        {"dw 7x7 s1 (49 taps)", conv_d(1, 8, 10, 10, 8, 7, 1, 1, 8, 0, 0, 3)},
        {"dw mult 2 (co = 2 ci)", conv_d(2, 8, 9, 9, 16, 3, 1, 1, 8, 1, 0, 1)},
        {"grouped 3x3 g4 16->32", conv_d(2, 16, 10, 10, 32, 3, 1, 1, 4, 1, 0, 1)},
        {"dilated 3x3 d2", conv_d(2, 8, 12, 12, 8, 3, 1, 2, 1, 0, 0, 2)},
        {"asym pad t2 b0 l0 r1 g2", conv_d(1, 6, 9, 11, 10, 3, 2, 1, 2, 1, 0, 0)},
        {"dw 1x3", conv_d(2, 12, 8, 8, 12, 3, 1, 1, 12, 0, 0, 0)},
        {"dw 3x3 s2 asym t2 b0", conv_d(2, 8, 9, 10, 8, 3, 2, 1, 8, 1, 0, 0)},
        {"dw 3x3 C6 (scalar path)", conv_d(2, 6, 9, 9, 6, 3, 1, 1, 6, 1, 0, 1)},
        {"SE 1x1 on 1x1 96->24 bias", conv_d(4, 96, 1, 1, 24, 1, 1, 1, 1, 1, 0, 0)},
        {"SE 1x1 on 1x1 24->96 bias", conv_d(4, 24, 1, 1, 96, 1, 1, 1, 1, 1, 0, 0)},
        {"SE 1x1 on 1x1 n1 40->10", conv_d(1, 40, 1, 1, 10, 1, 1, 1, 1, 0, 0, 0)},
    };
    const int nc = (int)(sizeof cs / sizeof cs[0]);
    cs[14].d.pt = 2; cs[14].d.pb = 0; cs[14].d.pl = 0; cs[14].d.pr = 1;   /* top-heavy asymmetric padding */
    cs[15].d.kh = 1; cs[15].d.pl = cs[15].d.pr = 1;                        /* non-square kernel */
    cs[16].d.pt = 2; cs[16].d.pb = 0; cs[16].d.pl = 1; cs[16].d.pr = 0;
    for (int i = 0; i < nc; i++) conv_case(cs[i].name, cs[i].d);
#ifdef DCL_HAVE_CUDA
    dcl_cuda_stats st;
    CHECK_OK(dcl_cuda_get_stats(G, &st));
    CHECK(st.conv_plans > 0 && st.conv_plans <= nc, "conv plans %d for %d convs", st.conv_plans, nc);
    printf("conv plans %d, algorithm search %.2f s, workspace %.1f MiB, scratch %.1f MiB\n", st.conv_plans,
           st.plan_seconds, st.workspace_bytes / 1048576.0, st.scratch_bytes / 1048576.0);
    /* depthwise convolutions once more with each other setting of the
     * depthwise option (0 cuDNN, 1 own kernels but cuDNN backward filter,
     * 2 own kernels everywhere) */
    dcl_cuda_options o0, o;
    CHECK_OK(dcl_cuda_get_options(G, &o0));
    for (int mode = 0; mode <= 2; mode++) {
        if (mode == o0.depthwise) continue;
        o = o0;
        o.depthwise = mode;
        CHECK_OK(dcl_cuda_set_options(G, &o));
        for (int i = 0; i < nc; i++) {
            if (!is_depthwise(&cs[i].d)) continue;
            char name[128];
            snprintf(name, sizeof name, "%s [depthwise=%d]", cs[i].name, mode);
            conv_case(name, cs[i].d);
        }
    }
    /* the other path of each own-kernel choice: depthwise one channel per
     * thread, squeeze-excitation convolutions through cuDNN */
    o = o0;
    o.dw_vector = !o0.dw_vector;
    o.gemm_1x1 = !o0.gemm_1x1;
    CHECK_OK(dcl_cuda_set_options(G, &o));
    for (int i = 0; i < nc; i++) {
        const dcl_conv_desc *d = &cs[i].d;
        if (!is_depthwise(d) && !(d->hi == 1 && d->wi == 1)) continue;
        char name[128];
        snprintf(name, sizeof name, "%s [dw_vector=%d gemm_1x1=%d]", cs[i].name, o.dw_vector, o.gemm_1x1);
        conv_case(name, cs[i].d);
    }
    CHECK_OK(dcl_cuda_set_options(G, &o0));
    o = o0;
    o.depthwise = 3;
    CHECK(dcl_cuda_set_options(G, &o) == DCL_ERR_ARG, "depthwise 3 must be refused");
#endif
}

/* ---------------------------------------------------------------------- */

static void bn_case(const char *name, int64_t M, int C, float offset) {
    char what[160];
    const size_t n = (size_t)M * C;
    buf x = mk(n, FILL_NORMAL, 2.f, offset), gm = mk(C, FILL_NORMAL, 0.3f, 1.f), bt = MK(C, FILL_NORMAL);
    buf y = MK(n, FILL_GARBAGE), mean = MK(C, FILL_GARBAGE), var = MK(C, FILL_GARBAGE), is = MK(C, FILL_GARBAGE);
    const float eps = 1e-3f;
    CHECK_OK(R->bn_fwd_train(R, M, C, y.h, mean.h, var.h, is.h, x.h, gm.h, bt.h, eps));
    CHECK_OK(G->bn_fwd_train(G, M, C, y.d, mean.d, var.d, is.d, x.d, gm.d, bt.d, eps));
    snprintf(what, sizeof what, "%s bn_fwd_train y", name); cmp(what, &y);
    snprintf(what, sizeof what, "%s bn_fwd_train mean", name); cmp(what, &mean);
    snprintf(what, sizeof what, "%s bn_fwd_train var", name); cmp(what, &var);
    snprintf(what, sizeof what, "%s bn_fwd_train invstd", name); cmp(what, &is);

    /* backward from the reference's statistics on both sides */
    buf dy = MK(n, FILL_NORMAL), dx = MK(n, FILL_GARBAGE), dg = MK(C, FILL_NORMAL), dbt = MK(C, FILL_NORMAL);
    CHECK_OK(G->to_device(G, mean.d, mean.h, C * sizeof(float)));
    CHECK_OK(G->to_device(G, is.d, is.h, C * sizeof(float)));
    CHECK_OK(R->bn_bwd(R, M, C, dx.h, dg.h, dbt.h, dy.h, x.h, mean.h, is.h, gm.h));
    CHECK_OK(G->bn_bwd(G, M, C, dx.d, dg.d, dbt.d, dy.d, x.d, mean.d, is.d, gm.d));
    snprintf(what, sizeof what, "%s bn_bwd dx", name); cmp(what, &dx);
    snprintf(what, sizeof what, "%s bn_bwd dgamma", name); cmp(what, &dg);
    snprintf(what, sizeof what, "%s bn_bwd dbeta", name); cmp(what, &dbt);

    buf rmean = mk(C, FILL_NORMAL, 1.f, offset), rvar = mk(C, FILL_POSITIVE, 4.f, 0), yi = MK(n, FILL_GARBAGE);
    CHECK_OK(R->bn_fwd_infer(R, M, C, yi.h, x.h, gm.h, bt.h, rmean.h, rvar.h, eps));
    CHECK_OK(G->bn_fwd_infer(G, M, C, yi.d, x.d, gm.d, bt.d, rmean.d, rvar.d, eps));
    snprintf(what, sizeof what, "%s bn_fwd_infer", name); cmp(what, &yi);

    /* bn_fold: the folded scale and shift give bn_fwd_infer's output as
     * x * scale + shift, with and without a convolution bias */
    if (G->bn_fold) {
        for (int withb = 0; withb < 2; withb++) {
            buf sc = MK(C, FILL_GARBAGE), sh = MK(C, FILL_GARBAGE), cb = MK(C, FILL_NORMAL);
            CHECK_OK(G->bn_fold(G, C, sc.d, sh.d, gm.d, bt.d, rmean.d, rvar.d, withb ? cb.d : NULL, eps));
            for (int c = 0; c < C; c++) {
                double k = gm.h[c] / sqrt((double)rvar.h[c] + eps);
                sc.h[c] = (float)k;
                sh.h[c] = (float)(bt.h[c] + ((withb ? cb.h[c] : 0.0) - rmean.h[c]) * k);
            }
            snprintf(what, sizeof what, "%s bn_fold scale%s", name, withb ? " (conv bias)" : ""); cmp(what, &sc);
            snprintf(what, sizeof what, "%s bn_fold shift%s", name, withb ? " (conv bias)" : ""); cmp(what, &sh);
            rm(&sc); rm(&sh); rm(&cb);
        }
    } else {
        CHECK(0, "the cuda backend must fill bn_fold");
    }
    rm(&x); rm(&gm); rm(&bt); rm(&y); rm(&mean); rm(&var); rm(&is); rm(&dy); rm(&dx); rm(&dg); rm(&dbt);
    rm(&rmean); rm(&rvar); rm(&yi);
}

static void test_bn(void) {
    bn_case("bn 2x7x7x40", 98, 40, 0.f);
    bn_case("bn offset 5", 2 * 8 * 8, 24, 5.f);
    bn_case("bn C16 fold", 8 * 24 * 24, 16, 1.f);
    bn_case("bn C8 odd M", 1001, 8, 0.f);
    bn_case("bn C1", 5000, 1, 0.5f);
    bn_case("bn 8x12x12x448", 8 * 12 * 12, 448, 0.f);
}

/* ---------------------------------------------------------------------- */

static void test_act(void) {
    static const dcl_act acts[] = {DCL_ACT_NONE, DCL_ACT_RELU, DCL_ACT_SILU, DCL_ACT_SIGMOID};
    static const char *names[] = {"none", "relu", "silu", "sigmoid"};
    char what[96];
    const int64_t n = 10007;
    for (int k = 0; k < 4; k++) {
        buf x = mk(n, FILL_NORMAL, 3.f, 0), y = MK(n, FILL_GARBAGE);
        CHECK_OK(R->act_fwd(R, acts[k], n, y.h, x.h));
        CHECK_OK(G->act_fwd(G, acts[k], n, y.d, x.d));
        snprintf(what, sizeof what, "act_fwd %s", names[k]); cmp(what, &y);
        buf dy = MK(n, FILL_NORMAL), dx = MK(n, FILL_GARBAGE);
        CHECK_OK(R->act_bwd(R, acts[k], n, dx.h, dy.h, x.h, y.h));
        CHECK_OK(G->act_bwd(G, acts[k], n, dx.d, dy.d, x.d, y.d));
        snprintf(what, sizeof what, "act_bwd %s", names[k]); cmp(what, &dx);
        /* the variants with only one of x / y */
        if (acts[k] == DCL_ACT_RELU || acts[k] == DCL_ACT_SIGMOID) {
            const int use_x = acts[k] == DCL_ACT_SIGMOID;
            CHECK_OK(R->act_bwd(R, acts[k], n, dx.h, dy.h, use_x ? x.h : NULL, use_x ? NULL : y.h));
            CHECK_OK(G->act_bwd(G, acts[k], n, dx.d, dy.d, use_x ? x.d : NULL, use_x ? NULL : y.d));
            snprintf(what, sizeof what, "act_bwd %s (%s only)", names[k], use_x ? "x" : "y"); cmp(what, &dx);
        }
        /* in place */
        CHECK_OK(R->act_fwd(R, acts[k], n, x.h, x.h));
        CHECK_OK(G->act_fwd(G, acts[k], n, x.d, x.d));
        snprintf(what, sizeof what, "act_fwd %s in place", names[k]); cmp(what, &x);
        rm(&x); rm(&y); rm(&dy); rm(&dx);
    }
    /* silu without x is an error, not a crash */
    buf t = MK(16, FILL_NORMAL);
    CHECK(G->act_bwd(G, DCL_ACT_SILU, 16, t.d, t.d, NULL, t.d) == DCL_ERR_ARG, "silu bwd without x must fail");
    rm(&t);
}

static void prelu_case(int64_t M, int C) {
    char what[96];
    const size_t n = (size_t)M * C;
    buf x = MK(n, FILL_NORMAL), a = mk(C, FILL_UNIFORM, 0.5f, 0.f), y = MK(n, FILL_GARBAGE);
    CHECK_OK(R->prelu_fwd(R, M, C, y.h, x.h, a.h));
    CHECK_OK(G->prelu_fwd(G, M, C, y.d, x.d, a.d));
    snprintf(what, sizeof what, "prelu_fwd M%lld C%d", (long long)M, C); cmp(what, &y);
    buf dy = MK(n, FILL_NORMAL), dx = MK(n, FILL_GARBAGE), da = MK(C, FILL_NORMAL);
    CHECK_OK(R->prelu_bwd(R, M, C, dx.h, da.h, dy.h, x.h, a.h));
    CHECK_OK(G->prelu_bwd(G, M, C, dx.d, da.d, dy.d, x.d, a.d));
    snprintf(what, sizeof what, "prelu_bwd dx M%lld C%d", (long long)M, C); cmp(what, &dx);
    snprintf(what, sizeof what, "prelu_bwd dalpha M%lld C%d", (long long)M, C); cmp(what, &da);
    rm(&x); rm(&a); rm(&y); rm(&dy); rm(&dx); rm(&da);
}

/* ---------------------------------------------------------------------- */

static void pool_case(const char *name, dcl_pool_desc d, int ties) {
    char what[160];
    if (dcl_pool_desc_finish(&d) != DCL_OK) { CHECK(0, "%s: %s", name, dcl_last_error()); return; }
    const size_t nx = (size_t)d.n * d.hi * d.wi * d.c, ny = (size_t)d.n * d.ho * d.wo * d.c;
    buf x = MK(nx, ties ? FILL_TIES : FILL_NORMAL), y = MK(ny, FILL_GARBAGE);
    CHECK_OK(R->pool_fwd(R, &d, y.h, x.h));
    CHECK_OK(G->pool_fwd(G, &d, y.d, x.d));
    snprintf(what, sizeof what, "%s pool_fwd (%dx%d -> %dx%d)", name, d.hi, d.wi, d.ho, d.wo); cmp(what, &y);
    buf dy = MK(ny, FILL_NORMAL), dx = MK(nx, FILL_GARBAGE);
    CHECK_OK(R->pool_bwd(R, &d, dx.h, dy.h, x.h, y.h));
    CHECK_OK(G->pool_bwd(G, &d, dx.d, dy.d, x.d, y.d));
    snprintf(what, sizeof what, "%s pool_bwd", name); cmp(what, &dx);
    rm(&x); rm(&y); rm(&dy); rm(&dx);
}

static dcl_pool_desc pool_d(dcl_pool_kind kind, int n, int c, int hi, int wi, int k, int s, int pad, int ceil_mode,
                            int include_pad) {
    dcl_pool_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind; d.n = n; d.c = c; d.hi = hi; d.wi = wi; d.kh = d.kw = k; d.sh = d.sw = s;
    d.pt = d.pb = d.pl = d.pr = pad; d.ceil_mode = ceil_mode; d.count_include_pad = include_pad;
    return d;
}

static void test_pool(void) {
    pool_case("max 3x3 s2 p1", pool_d(DCL_POOL_MAX, 2, 24, 15, 16, 3, 2, 1, 0, 1), 0);
    pool_case("max 3x3 s2 ceil", pool_d(DCL_POOL_MAX, 2, 8, 16, 16, 3, 2, 0, 1, 1), 0);
    pool_case("max 2x2 s2 ceil odd", pool_d(DCL_POOL_MAX, 2, 8, 15, 15, 2, 2, 0, 1, 1), 0);
    pool_case("max 3x3 s1 p1 ties", pool_d(DCL_POOL_MAX, 2, 8, 9, 9, 3, 1, 1, 0, 1), 1);
    pool_case("max 3x3 s2 p1 ceil ties", pool_d(DCL_POOL_MAX, 1, 5, 10, 11, 3, 2, 1, 1, 1), 1);
    pool_case("avg 3x3 s1 p1 incl", pool_d(DCL_POOL_AVG, 2, 16, 12, 12, 3, 1, 1, 0, 1), 0);
    pool_case("avg 3x3 s1 p1 excl", pool_d(DCL_POOL_AVG, 2, 16, 12, 12, 3, 1, 1, 0, 0), 0);
    pool_case("avg 3x3 s2 p1 ceil incl", pool_d(DCL_POOL_AVG, 2, 8, 16, 16, 3, 2, 1, 1, 1), 0);
    pool_case("avg 3x3 s2 p1 ceil excl", pool_d(DCL_POOL_AVG, 2, 8, 16, 16, 3, 2, 1, 1, 0), 0);
    pool_case("avg 2x2 s2 ceil odd incl", pool_d(DCL_POOL_AVG, 2, 8, 15, 15, 2, 2, 0, 1, 1), 0);
    {
        dcl_pool_desc d = pool_d(DCL_POOL_AVG, 2, 4, 10, 9, 3, 2, 0, 0, 1);
        d.pb = 1; d.pr = 1;                       /* TF-same style asymmetric padding */
        pool_case("avg 3x3 s2 asym incl", d, 0);
        d.kind = DCL_POOL_MAX;
        pool_case("max 3x3 s2 asym", d, 0);
    }
}

/* ---------------------------------------------------------------------- */

static void gap_case(int N, int HW, int C) {
    char what[96];
    buf x = MK((size_t)N * HW * C, FILL_NORMAL), y = MK((size_t)N * C, FILL_GARBAGE);
    CHECK_OK(R->gap_fwd(R, N, HW, C, y.h, x.h));
    CHECK_OK(G->gap_fwd(G, N, HW, C, y.d, x.d));
    snprintf(what, sizeof what, "gap_fwd %dx%dx%d", N, HW, C); cmp(what, &y);
    buf dy = MK((size_t)N * C, FILL_NORMAL), dx = MK((size_t)N * HW * C, FILL_GARBAGE);
    CHECK_OK(R->gap_bwd(R, N, HW, C, dx.h, dy.h));
    CHECK_OK(G->gap_bwd(G, N, HW, C, dx.d, dy.d));
    snprintf(what, sizeof what, "gap_bwd %dx%dx%d", N, HW, C); cmp(what, &dx);
    rm(&x); rm(&y); rm(&dy); rm(&dx);
}

static void linear_case(int M, int K, int O, int bias) {
    char what[96];
    buf x = MK((size_t)M * K, FILL_NORMAL), w = mk((size_t)O * K, FILL_UNIFORM, 1.f / sqrtf((float)K), 0);
    buf b = MK(O, FILL_NORMAL), y = MK((size_t)M * O, FILL_GARBAGE);
    CHECK_OK(R->linear_fwd(R, M, K, O, y.h, x.h, w.h, bias ? b.h : NULL));
    CHECK_OK(G->linear_fwd(G, M, K, O, y.d, x.d, w.d, bias ? b.d : NULL));
    snprintf(what, sizeof what, "linear_fwd %dx%d->%d", M, K, O); cmp(what, &y);
    buf dy = MK((size_t)M * O, FILL_NORMAL), dx = MK((size_t)M * K, FILL_GARBAGE);
    buf dw = MK((size_t)O * K, FILL_NORMAL), db = MK(O, FILL_NORMAL);
    CHECK_OK(R->linear_bwd(R, M, K, O, dx.h, dw.h, bias ? db.h : NULL, dy.h, x.h, w.h));
    CHECK_OK(G->linear_bwd(G, M, K, O, dx.d, dw.d, bias ? db.d : NULL, dy.d, x.d, w.d));
    snprintf(what, sizeof what, "linear_bwd dx %dx%d->%d", M, K, O); cmp(what, &dx);
    snprintf(what, sizeof what, "linear_bwd dw %dx%d->%d", M, K, O); cmp(what, &dw);
    snprintf(what, sizeof what, "linear_bwd db %dx%d->%d", M, K, O); cmp(what, &db);
    /* dx NULL is allowed */
    CHECK_OK(R->linear_bwd(R, M, K, O, NULL, dw.h, NULL, dy.h, x.h, w.h));
    CHECK_OK(G->linear_bwd(G, M, K, O, NULL, dw.d, NULL, dy.d, x.d, w.d));
    snprintf(what, sizeof what, "linear_bwd dw twice %dx%d->%d", M, K, O); cmp(what, &dw);
    rm(&x); rm(&w); rm(&b); rm(&y); rm(&dy); rm(&dx); rm(&dw); rm(&db);
}

static void mul_bcast_case(int N, int HW, int C) {
    char what[96];
    const size_t n = (size_t)N * HW * C;
    buf x = MK(n, FILL_NORMAL), s = MK((size_t)N * C, FILL_UNIFORM), y = MK(n, FILL_GARBAGE);
    CHECK_OK(R->mul_bcast_fwd(R, N, HW, C, y.h, x.h, s.h));
    CHECK_OK(G->mul_bcast_fwd(G, N, HW, C, y.d, x.d, s.d));
    snprintf(what, sizeof what, "mul_bcast_fwd %dx%dx%d", N, HW, C); cmp(what, &y);
    buf dy = MK(n, FILL_NORMAL), dx = MK(n, FILL_GARBAGE), ds = MK((size_t)N * C, FILL_GARBAGE);
    CHECK_OK(R->mul_bcast_bwd(R, N, HW, C, dx.h, ds.h, dy.h, x.h, s.h));
    CHECK_OK(G->mul_bcast_bwd(G, N, HW, C, dx.d, ds.d, dy.d, x.d, s.d));
    snprintf(what, sizeof what, "mul_bcast_bwd dx %dx%dx%d", N, HW, C); cmp(what, &dx);
    snprintf(what, sizeof what, "mul_bcast_bwd ds %dx%dx%d", N, HW, C); cmp(what, &ds);
    rm(&x); rm(&s); rm(&y); rm(&dy); rm(&dx); rm(&ds);
}

static void test_elem(void) {
    prelu_case(300, 24);
    prelu_case(1000, 1);
    gap_case(3, 49, 70);
    gap_case(2, 3000, 16);
    gap_case(8, 144, 1792);
    linear_case(6, 130, 37, 1);
    linear_case(64, 1792, 2, 1);
    linear_case(5, 7, 3, 0);
    mul_bcast_case(2, 49, 40);
    mul_bcast_case(2, 900, 8);

    const int64_t n = 1001;
    buf a = MK(n, FILL_NORMAL), b = MK(n, FILL_NORMAL), y = MK(n, FILL_GARBAGE);
    CHECK_OK(R->add(R, n, y.h, a.h, b.h));
    CHECK_OK(G->add(G, n, y.d, a.d, b.d));
    cmp("add", &y);
    CHECK_OK(R->add(R, n, a.h, a.h, b.h));      /* y aliases a */
    CHECK_OK(G->add(G, n, a.d, a.d, b.d));
    cmp("add in place", &a);

    const int64_t rows = 4, cols = 250;
    buf x = MK(rows * cols, FILL_NORMAL), me = MK(rows * cols, FILL_TIES), mr = MK(rows, FILL_TIES);
    buf z = MK(rows * cols, FILL_GARBAGE);
    CHECK_OK(R->scale_mask(R, rows, cols, z.h, x.h, me.h, 0, 1.25f));
    CHECK_OK(G->scale_mask(G, rows, cols, z.d, x.d, me.d, 0, 1.25f));
    cmp("scale_mask per element", &z);
    CHECK_OK(R->scale_mask(R, rows, cols, z.h, x.h, mr.h, 1, 2.f));
    CHECK_OK(G->scale_mask(G, rows, cols, z.d, x.d, mr.d, 1, 2.f));
    cmp("scale_mask per row", &z);
    rm(&a); rm(&b); rm(&y); rm(&x); rm(&me); rm(&mr); rm(&z);
}

/* Optimizer entries: against the reference backend when it has them, else
 * against the formulas documented in backend.h computed here in double. */
static void test_optim(void) {
    const int64_t n = 1000;
    buf p = MK(n, FILL_NORMAL), m = MK(n, FILL_NORMAL), v = mk(n, FILL_POSITIVE, 1.f, 0.f), g = MK(n, FILL_NORMAL);
    if (!G->axpby || !G->adam || !G->sgd) { CHECK(0, "cuda backend lacks axpby/adam/sgd"); goto out; }
    /* axpby, b != 0 and b == 0 */
    for (int k = 0; k < 2; k++) {
        const float a = 0.9f, b = k ? 0.f : 0.1f;
        if (R->axpby) CHECK_OK(R->axpby(R, n, m.h, a, g.h, b));
        else for (int64_t i = 0; i < n; i++) m.h[i] = (float)(a * (double)g.h[i] + (b != 0 ? b * (double)m.h[i] : 0));
        CHECK_OK(G->axpby(G, n, m.d, a, g.d, b));
        cmp(k ? "axpby b=0" : "axpby", &m);
    }
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        const float bc1 = 1 - 0.9f * 0.9f * 0.9f, bc2 = 1 - 0.999f * 0.999f * 0.999f;
        if (R->adam) {
            CHECK_OK(R->adam(R, n, p.h, m.h, v.h, g.h, lr, b1, b2, eps, wd, decoupled, bc1, bc2));
        } else {
            for (int64_t i = 0; i < n; i++) {
                double pv = p.h[i], gv = g.h[i];
                if (decoupled) pv *= 1 - (double)lr * wd; else gv += (double)wd * pv;
                double mv = b1 * (double)m.h[i] + (1 - (double)b1) * gv;
                double vv = b2 * (double)v.h[i] + (1 - (double)b2) * gv * gv;
                m.h[i] = (float)mv; v.h[i] = (float)vv;
                p.h[i] = (float)(pv - lr * (mv / bc1) / (sqrt(vv / bc2) + eps));
            }
        }
        CHECK_OK(G->adam(G, n, p.d, m.d, v.d, g.d, lr, b1, b2, eps, wd, decoupled, bc1, bc2));
        cmp(decoupled ? "adamw p" : "adam p", &p);
        cmp(decoupled ? "adamw m" : "adam m", &m);
        cmp(decoupled ? "adamw v" : "adam v", &v);
    }
    for (int step = 0; step < 3; step++) {
        const float lr = 0.1f, mom = 0.9f, wd = 1e-4f;
        const int nesterov = step == 2, first = step == 0;
        if (R->sgd) {
            CHECK_OK(R->sgd(R, n, p.h, m.h, g.h, lr, mom, wd, nesterov, first));
        } else {
            for (int64_t i = 0; i < n; i++) {
                double gv = g.h[i] + (double)wd * p.h[i];
                double bv = first ? gv : mom * (double)m.h[i] + gv;
                m.h[i] = (float)bv;
                gv = nesterov ? gv + mom * bv : bv;
                p.h[i] = (float)(p.h[i] - lr * gv);
            }
        }
        CHECK_OK(G->sgd(G, n, p.d, m.d, g.d, lr, mom, wd, nesterov, first));
        cmp("sgd p", &p);
        cmp("sgd buf", &m);
    }
out:
    rm(&p); rm(&m); rm(&v); rm(&g);
}

/* ---------------------------------------------------------------------- */

static void test_memory_and_errors(void) {
    float h[1000], back[1000];
    for (int i = 0; i < 1000; i++) h[i] = (float)i - 3.5f;
    float *d = G->mem_alloc(G, sizeof h);
    CHECK(d != NULL, "mem_alloc: %s", dcl_last_error());
    if (!d) return;
    CHECK_OK(G->to_device(G, d, h, sizeof h));
    CHECK_OK(G->to_host(G, back, d, sizeof back));
    CHECK(memcmp(h, back, sizeof h) == 0, "to_device/to_host round trip differs");
    CHECK_OK(G->mem_zero(G, d + 10, 20 * sizeof(float)));
    CHECK_OK(G->to_host(G, back, d, sizeof back));
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= back[i] == ((i >= 10 && i < 30) ? 0.f : h[i]);
    CHECK(ok, "mem_zero cleared the wrong range");
    CHECK_OK(G->sync(G));

    /* bad input gives an error naming the op, never a crash */
    dcl_conv_desc cd = conv_d(1, 4, 8, 8, 4, 3, 1, 1, 1, 0, 0, 1);
    cd.ho = 0; cd.wo = 0;                 /* not finished */
    dcl_status s = G->conv_fwd(G, &cd, d, d, d, NULL);
    CHECK(s == DCL_ERR_SHAPE && strstr(dcl_last_error(), "conv_fwd"), "unfinished conv desc: %d %s", s, dcl_last_error());
    CHECK(dcl_conv_desc_finish(&cd) == DCL_OK, "finish");
    cd.has_bias = 1;
    s = G->conv_fwd(G, &cd, d, d, d, NULL);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "b is NULL"), "bias NULL: %d %s", s, dcl_last_error());
    cd.groups = 3;
    s = G->conv_fwd(G, &cd, d, d, d, NULL);
    CHECK(s == DCL_ERR_SHAPE && strstr(dcl_last_error(), "groups"), "bad groups: %d %s", s, dcl_last_error());
    s = G->gap_fwd(G, 0, 4, 4, d, d);
    CHECK(s == DCL_ERR_SHAPE && strstr(dcl_last_error(), "gap_fwd"), "gap N=0: %d %s", s, dcl_last_error());
    dcl_pool_desc pd = pool_d(DCL_POOL_MAX, 1, 2, 8, 8, 3, 2, 1, 0, 1);
    CHECK(dcl_pool_desc_finish(&pd) == DCL_OK, "pool finish");
    pd.kind = (dcl_pool_kind)7;
    s = G->pool_fwd(G, &pd, d, d);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "pooling kind"), "bad pool kind: %d %s", s, dcl_last_error());
    s = G->bn_fwd_train(G, 4, 4, NULL, d, d, d, d, d, d, 1e-5f);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "bn_fwd_train"), "bn NULL y: %d %s", s, dcl_last_error());
    CHECK_OK(G->sync(G));                 /* nothing broke the stream */
    G->mem_free(G, d);

    dcl_backend *bad = dcl_backend_cuda(4096);
    CHECK(bad == NULL && strstr(dcl_last_error(), "out of range"), "device 4096: %s", dcl_last_error());
    if (bad) bad->destroy(bad);
    CHECK(G->supports(G, DCL_OP_CONV, NULL) == 1, "supports conv");
    CHECK(G->is_host == 0, "cuda backend must not be a host backend");
}

#ifdef DCL_HAVE_CUDA
/* TF32 on: one conv at a looser tolerance, then back to strict fp32 */
static void test_tf32(void) {
    dcl_cuda_options o, o0;
    CHECK_OK(dcl_cuda_get_options(G, &o0));
    o = o0;
    o.tf32 = 1;
    CHECK_OK(dcl_cuda_set_options(G, &o));
    dcl_conv_desc d = conv_d(2, 64, 14, 14, 96, 1, 1, 1, 1, 0, 0, 0);
    CHECK(dcl_conv_desc_finish(&d) == DCL_OK, "finish");
    const size_t nx = (size_t)d.n * d.hi * d.wi * d.ci, ny = (size_t)d.n * d.ho * d.wo * d.co, nw = (size_t)d.co * d.ci;
    buf x = MK(nx, FILL_NORMAL), w = mk(nw, FILL_UNIFORM, 0.125f, 0), y = MK(ny, FILL_GARBAGE);
    CHECK_OK(R->conv_fwd(R, &d, y.h, x.h, w.h, NULL));
    CHECK_OK(G->conv_fwd(G, &d, y.d, x.d, w.d, NULL));
    float *g = malloc(ny * sizeof(float));
    CHECK_OK(G->to_host(G, g, y.d, ny * sizeof(float)));
    CHECK_CLOSE("tf32 1x1 conv_fwd", g, y.h, (long)ny, 1e-2 * fmax(1.0, maxabs(y.h, ny)), 1e-2);
    free(g);
    CHECK_OK(dcl_cuda_set_options(G, &o0));
    rm(&x); rm(&w); rm(&y);
    o = o0;
    o.filter_layout = 7;
    CHECK(dcl_cuda_set_options(G, &o) == DCL_ERR_ARG, "bad filter layout must be refused");
}
#endif

/* ---------------------------------------------------------------------- */
/* timing                                                                 */
/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* several host threads calling one backend                               */

typedef struct thr_job { int id, bad, fails; char err[200]; } thr_job;

static float lcg(uint32_t *s) { *s = *s * 1664525u + 1013904223u; return (float)(*s >> 8) / 8388608.f - 1.f; }

static void *thr_conv(void *p) {
    thr_job *j = p;
    uint32_t s = 12345u + 977u * (uint32_t)j->id;
    for (int it = 0; it < 25; it++) {
        dcl_conv_desc d = conv_d(2, 8 + 4 * j->id, 9 + j->id + it % 3, 9 + j->id, 16, 3, 1, 1, 1, 1, 0, 1);
        if (dcl_conv_desc_finish(&d) != DCL_OK) { j->fails++; continue; }
        const size_t nx = (size_t)d.n * d.hi * d.wi * d.ci, ny = (size_t)d.n * d.ho * d.wo * d.co;
        const size_t nw = (size_t)d.co * d.ci * 9;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(d.co * 4), *want = malloc(ny * 4), *got = malloc(ny * 4);
        for (size_t i = 0; i < nx; i++) x[i] = lcg(&s);
        for (size_t i = 0; i < nw; i++) w[i] = 0.1f * lcg(&s);
        for (int i = 0; i < d.co; i++) b[i] = lcg(&s);
        float *xd = G->mem_alloc(G, nx * 4), *wd = G->mem_alloc(G, nw * 4), *bd = G->mem_alloc(G, d.co * 4),
              *yd = G->mem_alloc(G, ny * 4);
        dcl_status st = xd && wd && bd && yd ? DCL_OK : DCL_ERR_NOMEM;
        if (!st) st = G->to_device(G, xd, x, nx * 4);
        if (!st) st = G->to_device(G, wd, w, nw * 4);
        if (!st) st = G->to_device(G, bd, b, d.co * 4);
        if (!st) st = G->conv_fwd(G, &d, yd, xd, wd, bd);
        if (!st) st = G->add(G, (int64_t)ny, yd, yd, yd);   /* 2 y */
        if (!st) st = G->to_host(G, got, yd, ny * 4);
        if (!st) st = R->conv_fwd(R, &d, want, x, w, b);
        if (st) {
            if (!j->fails++) snprintf(j->err, sizeof j->err, "%s", dcl_last_error());
        } else {
            const double scale = 2 * maxabs(want, ny);
            for (size_t i = 0; i < ny; i++)
                if (!(fabs(got[i] - 2 * want[i]) <= 1e-2 * scale)) { j->bad++; break; }
        }
        G->mem_free(G, xd); G->mem_free(G, wd); G->mem_free(G, bd); G->mem_free(G, yd);
        free(x); free(w); free(b); free(want); free(got);
    }
    return NULL;
}

static void test_threads(void) {
    pthread_t th[4];
    thr_job jb[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        jb[i] = (thr_job){.id = i};
        if (pthread_create(&th[i], NULL, thr_conv, &jb[i]) == 0) started++;
        else break;
    }
    CHECK(started == 4, "could start only %d threads", started);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        CHECK(jb[i].fails == 0, "thread %d: %d failed calls, first: %s", i, jb[i].fails, jb[i].err);
        CHECK(jb[i].bad == 0, "thread %d: %d of 25 convolutions wrong while other threads used the backend", i, jb[i].bad);
    }
    printf("cuda: 4 threads x 25 uploads, convolutions, adds and downloads on one backend: %s\n",
           check_failed_ ? "see failures" : "all match ref");
}

static double time_it(int reps, dcl_status (*fn)(void *), void *arg) {
    for (int i = 0; i < 2; i++) if (fn(arg) != DCL_OK) return -1;      /* warm-up, algorithm choice */
    if (G->sync(G) != DCL_OK) return -1;
    const double t0 = dcl_now();
    for (int i = 0; i < reps; i++) if (fn(arg) != DCL_OK) return -1;
    if (G->sync(G) != DCL_OK) return -1;
    return (dcl_now() - t0) * 1e3 / reps;
}

typedef struct conv_args { dcl_conv_desc d; float *x, *w, *y, *dy, *dx, *dw; } conv_args;
static dcl_status run_fwd(void *a) { conv_args *c = a; return G->conv_fwd(G, &c->d, c->y, c->x, c->w, NULL); }
static dcl_status run_bwd_data(void *a) { conv_args *c = a; return G->conv_bwd_data(G, &c->d, c->dx, c->dy, c->w); }
static dcl_status run_bwd_w(void *a) { conv_args *c = a; return G->conv_bwd_weights(G, &c->d, c->dw, NULL, c->dy, c->x); }

typedef struct bn_args { int64_t M; int C; float *x, *y, *s; } bn_args;
static dcl_status run_bn(void *a) {
    bn_args *b = a;
    return G->bn_fwd_train(G, b->M, b->C, b->y, b->s, b->s + b->C, b->s + 2 * b->C, b->x, b->s + 3 * b->C,
                           b->s + 4 * b->C, 1e-3f);
}
static dcl_status run_silu(void *a) { bn_args *b = a; return G->act_fwd(G, DCL_ACT_SILU, b->M * b->C, b->y, b->x); }

static void timing(void) {
    struct { const char *name; dcl_conv_desc d; } cs[] = {
        {"stem 3x3 s2 3->48 @380", conv_d(8, 3, 380, 380, 48, 3, 2, 1, 1, 0, 1, 0)},
        {"dw 3x3 s1 48 @190", conv_d(8, 48, 190, 190, 48, 3, 1, 1, 48, 0, 1, 0)},
        {"dw 3x3 s2 144 @190", conv_d(8, 144, 190, 190, 144, 3, 2, 1, 144, 0, 1, 0)},
        {"1x1 32->192 @95", conv_d(8, 32, 95, 95, 192, 1, 1, 1, 1, 0, 0, 0)},
        {"dw 5x5 s1 960 @24", conv_d(8, 960, 24, 24, 960, 5, 1, 1, 960, 0, 1, 0)},
        {"1x1 448->1792 @12", conv_d(8, 448, 12, 12, 1792, 1, 1, 1, 1, 0, 0, 0)},
    };
    const int nc = (int)(sizeof cs / sizeof cs[0]);
#ifdef DCL_HAVE_CUDA
    dcl_cuda_options o0;
    CHECK_OK(dcl_cuda_get_options(G, &o0));
    const int nmodes = 4;
#else
    const int nmodes = 1;
#endif
    static const char *mode_name[] = {"default", "cuDNN OIHW", "cuDNN OHWI", "dw kernels"};
    printf("timing, ms per call (batch 8, EfficientNet-b4 at 380x380, fp32):\n");
    printf("  %-26s %-11s %9s %9s %9s\n", "conv", "path", "fwd", "bwd_data", "bwd_w");
    for (int i = 0; i < nc; i++) {
        conv_args a;
        a.d = cs[i].d;
        if (dcl_conv_desc_finish(&a.d) != DCL_OK) { CHECK(0, "%s", dcl_last_error()); continue; }
        const dcl_conv_desc *d = &a.d;
        const size_t nx = (size_t)d->n * d->hi * d->wi * d->ci, ny = (size_t)d->n * d->ho * d->wo * d->co;
        const size_t nw = (size_t)d->co * (d->ci / d->groups) * d->kh * d->kw;
        a.x = G->mem_alloc(G, nx * 4); a.dx = G->mem_alloc(G, nx * 4);
        a.y = G->mem_alloc(G, ny * 4); a.dy = G->mem_alloc(G, ny * 4);
        a.w = G->mem_alloc(G, nw * 4); a.dw = G->mem_alloc(G, nw * 4);
        if (!a.x || !a.dx || !a.y || !a.dy || !a.w || !a.dw) { CHECK(0, "timing alloc: %s", dcl_last_error()); return; }
        G->mem_zero(G, a.x, nx * 4); G->mem_zero(G, a.dy, ny * 4); G->mem_zero(G, a.w, nw * 4);
        G->mem_zero(G, a.dw, nw * 4);
        for (int m = 0; m < nmodes; m++) {
#ifdef DCL_HAVE_CUDA
            /* mode 0: defaults; 1, 2: cuDNN only, OIHW or OHWI weights first;
             * 3: own depthwise kernels in all three directions */
            if (m == 1 && !is_depthwise(d) && o0.filter_layout == DCL_CUDA_FILTER_OIHW) continue;
            if (m == 3 && !is_depthwise(d)) continue;
            dcl_cuda_options o = o0;
            if (m == 1 || m == 2) { o.depthwise = 0; o.filter_layout = m == 1 ? DCL_CUDA_FILTER_OIHW : DCL_CUDA_FILTER_OHWI; }
            if (m == 3) o.depthwise = 2;
            CHECK_OK(dcl_cuda_set_options(G, &o));
#endif
            const double tf = time_it(10, run_fwd, &a), tb = time_it(10, run_bwd_data, &a), tw = time_it(10, run_bwd_w, &a);
            CHECK(tf >= 0 && tb >= 0 && tw >= 0, "timing %s: %s", cs[i].name, dcl_last_error());
            const double gfl = 2.0 * ny * (d->ci / d->groups) * d->kh * d->kw * 1e-9;
            const double mb = (nx + ny) * 4e-6;
            printf("  %-26s %-11s %9.3f %9.3f %9.3f   (%.2f GFLOP, %.0f MB in+out per call; fwd %.0f GFLOP/s %.0f GB/s)\n",
                   cs[i].name, mode_name[m], tf, tb, tw, gfl, mb, tf > 0 ? gfl / tf * 1e3 : 0, tf > 0 ? mb / tf : 0);
#ifdef DCL_HAVE_CUDA
            char desc[512];
            if (dcl_cuda_conv_describe(G, d, desc, sizeof desc) == DCL_OK) printf("      %s\n", desc);
#endif
        }
        G->mem_free(G, a.x); G->mem_free(G, a.dx); G->mem_free(G, a.y); G->mem_free(G, a.dy);
        G->mem_free(G, a.w); G->mem_free(G, a.dw);
    }
#ifdef DCL_HAVE_CUDA
    CHECK_OK(dcl_cuda_set_options(G, &o0));
#endif
    bn_args b = {8 * 190 * 190, 48, NULL, NULL, NULL};
    const size_t n = (size_t)b.M * b.C;
    b.x = G->mem_alloc(G, n * 4); b.y = G->mem_alloc(G, n * 4); b.s = G->mem_alloc(G, 5 * b.C * 4);
    if (b.x && b.y && b.s) {
        G->mem_zero(G, b.x, n * 4); G->mem_zero(G, b.s, 5 * b.C * 4);
        const double tb = time_it(10, run_bn, &b), ts = time_it(10, run_silu, &b);
        CHECK(tb >= 0 && ts >= 0, "timing bn/silu: %s", dcl_last_error());
        printf("  bn_fwd_train 8x190x190x48   %9.3f ms (%.0f GB/s)\n", tb, 4.0 * n * 4 / (tb * 1e6));
        printf("  silu         8x190x190x48   %9.3f ms (%.0f GB/s)\n", ts, 2.0 * n * 4 / (ts * 1e6));
    }
    G->mem_free(G, b.x); G->mem_free(G, b.y); G->mem_free(G, b.s);
}

/* 1 when a mapping of this process names a file containing `what` */
static int maps_have(const char *what) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
    if (f) fclose(f);
    return found;
}

int main(void) {
#ifdef DCL_HAVE_CUDA
    {   /* the depthwise kernels' per-element code, on the CPU (no GPU needed) */
        char msg[256];
        int bad = dcl_cuda_dw_host_selftest(msg, sizeof msg);
        CHECK(bad == 0, "depthwise host self-test: %d mismatches, first: %s", bad, msg);
        printf("cuda depthwise kernels on the host: %s\n", bad ? "FAIL" : "match the direct convolution");
        /* cuBLAS is not linked: it is opened on first use, with every
         * symbol the backend calls (no GPU needed to load it) */
        CHECK(!maps_have("libcublas"), "libcublas is mapped before any CUDA backend exists");
        dcl_status ls = dcl_cuda_load_blas();
        CHECK(ls == DCL_OK, "loading cuBLAS: %s", dcl_last_error());
        CHECK(ls != DCL_OK || maps_have("libcublas"), "cuBLAS loaded but not mapped");
        CHECK(dcl_cuda_load_blas() == DCL_OK, "loading cuBLAS a second time");
        printf("cuBLAS opened at run time: %s\n", ls == DCL_OK ? "ok" : dcl_last_error());
        bad = dcl_cuda_bf16_host_selftest(msg, sizeof msg);
        CHECK(bad == 0, "bf16 conversion host self-test: %d mismatches, first: %s", bad, msg);
        printf("cuda bf16 conversion on the host: %s\n", bad ? "FAIL" : "matches dcl_f32_to_bf16");
    }
#endif
    G = dcl_backend_cuda(0);
    if (!G) {
        printf("cuda: skipped: %s\n", dcl_last_error());
        CHECK_DONE();
    }
    R = dcl_backend_ref();
    if (!R) {
        fprintf(stderr, "reference backend: %s\n", dcl_last_error());
        G->destroy(G);
        return 1;
    }
    printf("cuda: testing %s against %s\n", G->name, R->name ? R->name : "ref");
    dcl_rng_seed(&rng, 20240607);
    test_memory_and_errors();
    test_conv();
    test_bn();
    test_act();
    test_pool();
    test_elem();
    test_optim();
    test_threads();
#ifdef DCL_HAVE_CUDA
    test_tf32();
#endif
    if (!getenv("DCL_TEST_NO_TIMING")) timing();
    if (R->destroy) R->destroy(R);
    G->destroy(G);
    CHECK_DONE();
}
