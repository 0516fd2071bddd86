/* Finite-difference gradient checks, in double, of every reference op that
 * has a backward pass.  For an op y = f(inputs) and a random weighting R the
 * scalar L = sum(R * y) has dL/dinput = backward(dy = R); central
 * differences of L with respect to each input element must agree with the
 * analytic gradient to about 1e-6 relative.  Parameter gradients are
 * pre-filled with random values to check that they accumulate. */
#include "dcl/nn.h"
#include "check.h"

#define H 1e-5            /* central difference step */
#define RTOL 1e-6
#define ATOL 1e-8

static dcl_rng g_rng;

static double *randn(int64_t n) {
    double *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    for (int64_t i = 0; i < n; i++) a[i] = dcl_rng_normal(&g_rng);
    return a;
}
static double *zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }
static double *copy(const double *a, int64_t n) {
    double *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    memcpy(b, a, (size_t)n * sizeof *b);
    return b;
}
static void check_same_d(const char *what, const double *a, const double *b, int64_t n) {
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (!(fabs(a[i] - b[i]) <= 1e-14 * (1 + fabs(b[i])))) bad = i;
    CHECK(bad < 0, "%s: variants differ at %lld: %.17g vs %.17g", what, (long long)bad,
          bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0);
}
#define CHECK_CLOSE_D(what, a, b, n) check_same_d(what, a, b, n)

/* push values away from 0 (kinks of relu / prelu) */
static void away_from_zero(double *a, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) < 0.05) a[i] = a[i] < 0 ? a[i] - 0.05 : a[i] + 0.05;
}

/* ---- the forward of each op under test, as a function of its inputs ---- */
enum { OP_CONV, OP_BN, OP_ACT, OP_PRELU, OP_POOL, OP_GAP, OP_LINEAR, OP_MUL_BCAST,
       OP_SOFTMAX, OP_LOG_SOFTMAX, OP_CE, OP_BCE, OP_L2NORM };

typedef struct gc {
    int op;
    dcl_conv_desc cd;
    dcl_pool_desc pd;
    dcl_act act;
    int64_t M;
    int C, K, N, HW, O;
    double eps;
    double *in[3];          /* perturbable inputs (x, weight, bias / ...) */
    const int *targets;
    const double *dtargets;
} gc;

static void gc_forward(gc *g, double *out) {
    dcl_status s = DCL_OK;
    switch (g->op) {
    case OP_CONV: s = dcl_ref_conv_fwd_f64(&g->cd, out, g->in[0], g->in[1], g->in[2]); break;
    case OP_BN: {
        double *mean = zeros(g->C), *var = zeros(g->C), *is = zeros(g->C);
        s = dcl_ref_bn_fwd_train_f64(g->M, g->C, out, mean, var, is, g->in[0], g->in[1], g->in[2], g->eps);
        free(mean); free(var); free(is);
        break;
    }
    case OP_ACT: s = dcl_ref_act_fwd_f64(g->act, g->M, out, g->in[0]); break;
    case OP_PRELU: s = dcl_ref_prelu_fwd_f64(g->M, g->C, out, g->in[0], g->in[1]); break;
    case OP_POOL: s = dcl_ref_pool_fwd_f64(&g->pd, out, g->in[0]); break;
    case OP_GAP: s = dcl_ref_gap_fwd_f64(g->N, g->HW, g->C, out, g->in[0]); break;
    case OP_LINEAR: s = dcl_ref_linear_fwd_f64((int)g->M, g->K, g->O, out, g->in[0], g->in[1], g->in[2]); break;
    case OP_MUL_BCAST: s = dcl_ref_mul_bcast_fwd_f64(g->N, g->HW, g->C, out, g->in[0], g->in[1]); break;
    case OP_SOFTMAX: s = dcl_softmax_fwd_f64(g->M, g->K, out, g->in[0]); break;
    case OP_LOG_SOFTMAX: s = dcl_log_softmax_fwd_f64(g->M, g->K, out, g->in[0]); break;
    case OP_CE: s = dcl_cross_entropy_fwd_f64(g->M, g->K, out, g->in[0], g->targets); break;
    case OP_BCE: s = dcl_bce_logits_fwd_f64(g->M, out, g->in[0], g->dtargets); break;
    case OP_L2NORM: s = dcl_l2norm_fwd_f64(g->M, g->K, out, g->in[0], g->eps); break;
    }
    if (s != DCL_OK) { fprintf(stderr, "forward failed: %s\n", dcl_last_error()); exit(1); }
}

/* numeric dL/dp for L = sum(R * forward) */
static void numgrad(gc *g, int64_t nout, const double *R, double *p, int64_t n, double *grad) {
    double *out = zeros(nout);
    for (int64_t i = 0; i < n; i++) {
        const double save = p[i];
        double lp = 0, lm = 0;
        p[i] = save + H;
        gc_forward(g, out);
        for (int64_t k = 0; k < nout; k++) lp += R[k] * out[k];
        p[i] = save - H;
        gc_forward(g, out);
        for (int64_t k = 0; k < nout; k++) lm += R[k] * out[k];
        p[i] = save;
        grad[i] = (lp - lm) / (2 * H);
    }
    free(out);
}

/* compare analytic gradient (of input in[idx], n elements) with numeric */
static void expect_grad(const char *what, gc *g, int64_t nout, const double *R, int idx, int64_t n,
                        const double *analytic) {
    double *num = zeros(n);
    numgrad(g, nout, R, g->in[idx], n, num);
    int64_t worst = -1;
    double wr = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs(analytic[i] - num[i]) / (ATOL + RTOL * fmax(fabs(analytic[i]), fabs(num[i])));
        if (!(r <= wr)) { wr = r; worst = i; }
    }
    CHECK(worst < 0 || wr <= 1.0, "%s: gradient mismatch at %lld of %lld: analytic %.12g numeric %.12g (ratio %.3g)",
          what, (long long)worst, (long long)n, worst >= 0 ? analytic[worst] : 0.0, worst >= 0 ? num[worst] : 0.0, wr);
    /* guard against a vacuous pass: the gradient must not be all zero */
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(num[i]));
    CHECK(mx > 1e-6, "%s: numeric gradient is identically zero (test is vacuous)", what);
    free(num);
}

/* dw after accumulation minus the pre-filled value */
static double *minus(const double *a, const double *b, int64_t n) {
    double *r = zeros(n);
    for (int64_t i = 0; i < n; i++) r[i] = a[i] - b[i];
    return r;
}

/* ---- convolution ---- */
typedef struct conv_case {
    const char *name;
    int n, ci, hi, wi, co, kh, kw, sh, sw, dh, dw, groups, bias, same;
    int pt, pb, pl, pr;
} conv_case;

static void gc_conv(const conv_case *cc) {
    gc g = {.op = OP_CONV};
    dcl_conv_desc *d = &g.cd;
    *d = (dcl_conv_desc){.n = cc->n, .ci = cc->ci, .hi = cc->hi, .wi = cc->wi, .co = cc->co,
                         .kh = cc->kh, .kw = cc->kw, .sh = cc->sh, .sw = cc->sw, .dh = cc->dh, .dw = cc->dw,
                         .pt = cc->pt, .pb = cc->pb, .pl = cc->pl, .pr = cc->pr,
                         .groups = cc->groups, .has_bias = cc->bias};
    if (cc->same) {
        dcl_same_pad(cc->hi, cc->kh, cc->sh, cc->dh, &d->pt, &d->pb);
        dcl_same_pad(cc->wi, cc->kw, cc->sw, cc->dw, &d->pl, &d->pr);
    }
    CHECK_OK(dcl_conv_desc_finish(d));
    const int64_t nx = (int64_t)d->n * d->hi * d->wi * d->ci;
    const int64_t nw = (int64_t)d->co * (d->ci / d->groups) * d->kh * d->kw;
    const int64_t ny = (int64_t)d->n * d->ho * d->wo * d->co;
    g.in[0] = randn(nx);
    g.in[1] = randn(nw);
    g.in[2] = cc->bias ? randn(d->co) : NULL;
    double *R = randn(ny), *dx = randn(nx);
    double *w0 = randn(nw), *dw = copy(w0, nw), *b0 = randn(d->co), *db = copy(b0, d->co);
    CHECK_OK(dcl_ref_conv_bwd_data_f64(d, dx, R, g.in[1]));
    CHECK_OK(dcl_ref_conv_bwd_weights_f64(d, dw, cc->bias ? db : NULL, R, g.in[0]));
    char what[128];
    snprintf(what, sizeof what, "conv %s dx", cc->name);
    expect_grad(what, &g, ny, R, 0, nx, dx);
    double *gw = minus(dw, w0, nw), *gb = minus(db, b0, d->co);
    snprintf(what, sizeof what, "conv %s dw", cc->name);
    expect_grad(what, &g, ny, R, 1, nw, gw);
    if (cc->bias) {
        snprintf(what, sizeof what, "conv %s db", cc->name);
        expect_grad(what, &g, ny, R, 2, d->co, gb);
    }
    free(g.in[0]); free(g.in[1]); free(g.in[2]); free(R); free(dx); free(w0); free(dw);
    free(b0); free(db); free(gw); free(gb);
}

static void test_conv(void) {
    static const conv_case cases[] = {
        /* name              n ci hi wi co kh kw sh sw dh dw g bias same  pt pb pl pr */
        {"3x3 s1 p1 bias",   2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 0,    1, 1, 1, 1},
        {"1x1 s1",           2, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0,    0, 0, 0, 0},
        {"1x1 s2 bias",      1, 4, 5, 5, 3, 1, 1, 2, 2, 1, 1, 1, 1, 0,    0, 0, 0, 0},
        {"dw3x3 s1 same",    2, 4, 5, 6, 4, 3, 3, 1, 1, 1, 1, 4, 0, 1,    0, 0, 0, 0},
        {"dw3x3 s2 same",    2, 3, 6, 7, 3, 3, 3, 2, 2, 1, 1, 3, 0, 1,    0, 0, 0, 0},
        {"dw5x5 s1 same",    1, 3, 6, 5, 3, 5, 5, 1, 1, 1, 1, 3, 0, 1,    0, 0, 0, 0},
        {"dw5x5 s2 same",    2, 2, 8, 9, 2, 5, 5, 2, 2, 1, 1, 2, 1, 1,    0, 0, 0, 0},
        {"dw3x3 mult2",      1, 2, 5, 5, 4, 3, 3, 1, 1, 1, 1, 2, 1, 0,    1, 1, 1, 1},
        {"3x3 dil2 p2",      1, 2, 7, 6, 3, 3, 3, 1, 1, 2, 2, 1, 1, 0,    2, 2, 2, 2},
        {"3x3 s2 dil2 same", 1, 2, 8, 7, 2, 3, 3, 2, 2, 2, 2, 1, 0, 1,    0, 0, 0, 0},
        {"grouped g2",       2, 4, 5, 4, 6, 3, 3, 1, 1, 1, 1, 2, 1, 0,    1, 1, 1, 1},
        {"2x3 s2x1 asym",    1, 3, 6, 5, 2, 2, 3, 2, 1, 1, 1, 1, 1, 0,    0, 1, 2, 0},
        {"stem 3x3 s2 same", 2, 3, 8, 9, 4, 3, 3, 2, 2, 1, 1, 1, 0, 1,    0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        if (c->same) {
            int a, b;
            dcl_same_pad(c->hi, c->kh, c->sh, c->dh, &a, &b);
            /* the stride-2 same cases are meant to exercise asymmetric padding */
            if (c->sh == 2 && c->dh == 1) CHECK(a != b, "case %s: expected asymmetric same padding (%d/%d)", c->name, a, b);
        }
        gc_conv(c);
    }
}

/* ---- batch norm (training mode) ---- */
static void test_bn(int64_t M, int C) {
    gc g = {.op = OP_BN, .M = M, .C = C, .eps = 1e-3};
    g.in[0] = randn(M * C);
    for (int64_t i = 0; i < M * C; i++) g.in[0][i] = 0.5 + 2.0 * g.in[0][i];
    g.in[1] = randn(C);
    g.in[2] = randn(C);
    double *y = zeros(M * C), *mean = zeros(C), *var = zeros(C), *is = zeros(C);
    CHECK_OK(dcl_ref_bn_fwd_train_f64(M, C, y, mean, var, is, g.in[0], g.in[1], g.in[2], g.eps));
    double *R = randn(M * C), *dx = randn(M * C);
    double *g0 = randn(C), *dg = copy(g0, C), *b0 = randn(C), *db = copy(b0, C);
    CHECK_OK(dcl_ref_bn_bwd_f64(M, C, dx, dg, db, R, g.in[0], mean, is, g.in[1]));
    double *gg = minus(dg, g0, C), *gb = minus(db, b0, C);
    expect_grad("bn dx", &g, M * C, R, 0, M * C, dx);
    expect_grad("bn dgamma", &g, M * C, R, 1, C, gg);
    expect_grad("bn dbeta", &g, M * C, R, 2, C, gb);
    free(g.in[0]); free(g.in[1]); free(g.in[2]); free(y); free(mean); free(var); free(is);
    free(R); free(dx); free(g0); free(dg); free(b0); free(db); free(gg); free(gb);
}

/* ---- activations ---- */
static void test_act(dcl_act a, const char *name) {
    const int64_t n = 40;
    gc g = {.op = OP_ACT, .act = a, .M = n};
    g.in[0] = randn(n);
    for (int64_t i = 0; i < n; i++) g.in[0][i] *= 3;
    away_from_zero(g.in[0], n);
    double *y = zeros(n), *R = randn(n), *dx = zeros(n);
    CHECK_OK(dcl_ref_act_fwd_f64(a, n, y, g.in[0]));
    CHECK_OK(dcl_ref_act_bwd_f64(a, n, dx, R, g.in[0], y));
    char what[64];
    snprintf(what, sizeof what, "act %s dx", name);
    expect_grad(what, &g, n, R, 0, n, dx);
    /* the variants that read only x or only y give the same gradient */
    double *dx2 = zeros(n);
    if (a == DCL_ACT_SIGMOID || a == DCL_ACT_RELU) {
        CHECK_OK(dcl_ref_act_bwd_f64(a, n, dx2, R, NULL, y));
        CHECK_CLOSE_D(what, dx2, dx, n);
    }
    if (a != DCL_ACT_NONE) {
        CHECK_OK(dcl_ref_act_bwd_f64(a, n, dx2, R, g.in[0], NULL));
        CHECK_CLOSE_D(what, dx2, dx, n);
    }
    free(g.in[0]); free(y); free(R); free(dx); free(dx2);
}

/* ---- prelu ---- */
static void test_prelu(int64_t M, int C) {
    gc g = {.op = OP_PRELU, .M = M, .C = C};
    g.in[0] = randn(M * C);
    away_from_zero(g.in[0], M * C);
    g.in[1] = randn(C);
    double *R = randn(M * C), *dx = zeros(M * C), *a0 = randn(C), *da = copy(a0, C);
    CHECK_OK(dcl_ref_prelu_bwd_f64(M, C, dx, da, R, g.in[0], g.in[1]));
    double *ga = minus(da, a0, C);
    char what[64];
    snprintf(what, sizeof what, "prelu C=%d dx", C);
    expect_grad(what, &g, M * C, R, 0, M * C, dx);
    snprintf(what, sizeof what, "prelu C=%d dalpha", C);
    expect_grad(what, &g, M * C, R, 1, C, ga);
    free(g.in[0]); free(g.in[1]); free(R); free(dx); free(a0); free(da); free(ga);
}

/* ---- pooling ---- */
static void test_pool(const char *name, dcl_pool_kind kind, int n, int c, int hi, int wi, int kh, int kw,
                      int sh, int sw, int pt, int pb, int pl, int pr, int ceil_mode, int cip) {
    gc g = {.op = OP_POOL};
    dcl_pool_desc *d = &g.pd;
    *d = (dcl_pool_desc){.n = n, .c = c, .hi = hi, .wi = wi, .kh = kh, .kw = kw, .sh = sh, .sw = sw,
                         .pt = pt, .pb = pb, .pl = pl, .pr = pr, .ceil_mode = ceil_mode,
                         .count_include_pad = cip, .kind = kind};
    CHECK_OK(dcl_pool_desc_finish(d));
    const int64_t nx = (int64_t)n * hi * wi * c, ny = (int64_t)n * d->ho * d->wo * c;
    /* distinct values 0.01 apart in random order, so every max is unique
     * and far from ties relative to the difference step */
    g.in[0] = zeros(nx);
    for (int64_t i = 0; i < nx; i++) g.in[0][i] = (double)i;
    for (int64_t i = nx - 1; i > 0; i--) {
        int64_t j = dcl_rng_below(&g_rng, (uint32_t)(i + 1));
        double t = g.in[0][i]; g.in[0][i] = g.in[0][j]; g.in[0][j] = t;
    }
    for (int64_t i = 0; i < nx; i++) g.in[0][i] = (g.in[0][i] - nx / 2) * 0.01;
    double *y = zeros(ny), *R = randn(ny), *dx = randn(nx);
    CHECK_OK(dcl_ref_pool_fwd_f64(d, y, g.in[0]));
    CHECK_OK(dcl_ref_pool_bwd_f64(d, dx, R, g.in[0], y));
    char what[96];
    snprintf(what, sizeof what, "pool %s dx", name);
    expect_grad(what, &g, ny, R, 0, nx, dx);
    free(g.in[0]); free(y); free(R); free(dx);
}

static void test_gap(void) {
    const int N = 2, HW = 5, C = 3;
    gc g = {.op = OP_GAP, .N = N, .HW = HW, .C = C};
    g.in[0] = randn(N * HW * C);
    double *R = randn(N * C), *dx = randn(N * HW * C);
    CHECK_OK(dcl_ref_gap_bwd_f64(N, HW, C, dx, R));
    expect_grad("gap dx", &g, N * C, R, 0, N * HW * C, dx);
    free(g.in[0]); free(R); free(dx);
}

static void test_linear(int bias) {
    const int M = 3, K = 4, O = 5;
    gc g = {.op = OP_LINEAR, .M = M, .K = K, .O = O};
    g.in[0] = randn(M * K);
    g.in[1] = randn(O * K);
    g.in[2] = bias ? randn(O) : NULL;
    double *R = randn(M * O), *dx = randn(M * K), *w0 = randn(O * K), *dw = copy(w0, O * K);
    double *b0 = randn(O), *db = copy(b0, O);
    CHECK_OK(dcl_ref_linear_bwd_f64(M, K, O, dx, dw, bias ? db : NULL, R, g.in[0], g.in[1]));
    double *gw = minus(dw, w0, O * K), *gb = minus(db, b0, O);
    expect_grad(bias ? "linear+b dx" : "linear dx", &g, M * O, R, 0, M * K, dx);
    expect_grad(bias ? "linear+b dw" : "linear dw", &g, M * O, R, 1, O * K, gw);
    if (bias) expect_grad("linear+b db", &g, M * O, R, 2, O, gb);
    else {
        /* db untouched when NULL was passed (it was never handed over) */
        for (int o = 0; o < O; o++) CHECK(db[o] == b0[o], "linear: db changed without being passed");
    }
    free(g.in[0]); free(g.in[1]); free(g.in[2]); free(R); free(dx); free(w0); free(dw);
    free(b0); free(db); free(gw); free(gb);
}

static void test_mul_bcast(void) {
    const int N = 2, HW = 4, C = 3;
    gc g = {.op = OP_MUL_BCAST, .N = N, .HW = HW, .C = C};
    g.in[0] = randn(N * HW * C);
    g.in[1] = randn(N * C);
    double *R = randn(N * HW * C), *dx = randn(N * HW * C), *ds = randn(N * C);
    CHECK_OK(dcl_ref_mul_bcast_bwd_f64(N, HW, C, dx, ds, R, g.in[0], g.in[1]));
    expect_grad("mul_bcast dx", &g, N * HW * C, R, 0, N * HW * C, dx);
    expect_grad("mul_bcast ds", &g, N * HW * C, R, 1, N * C, ds);
    free(g.in[0]); free(g.in[1]); free(R); free(dx); free(ds);
}

static void test_softmax(int logsm) {
    const int64_t M = 3;
    const int K = 5;
    gc g = {.op = logsm ? OP_LOG_SOFTMAX : OP_SOFTMAX, .M = M, .K = K};
    g.in[0] = randn(M * K);
    double *y = zeros(M * K), *R = randn(M * K), *dx = randn(M * K);
    if (logsm) {
        CHECK_OK(dcl_log_softmax_fwd_f64(M, K, y, g.in[0]));
        CHECK_OK(dcl_log_softmax_bwd_f64(M, K, dx, R, y));
    } else {
        CHECK_OK(dcl_softmax_fwd_f64(M, K, y, g.in[0]));
        CHECK_OK(dcl_softmax_bwd_f64(M, K, dx, R, y));
    }
    expect_grad(logsm ? "log_softmax dx" : "softmax dx", &g, M * K, R, 0, M * K, dx);
    free(g.in[0]); free(y); free(R); free(dx);
}

static void test_ce(void) {
    const int64_t M = 5;
    const int K = 4;
    static const int t[5] = {2, 0, DCL_IGNORE_INDEX, 3, 3};
    gc g = {.op = OP_CE, .M = M, .K = K, .targets = t};
    g.in[0] = randn(M * K);
    double R = 1.7, *dx = randn(M * K);
    CHECK_OK(dcl_cross_entropy_bwd_f64(M, K, dx, R, g.in[0], t));
    expect_grad("cross_entropy dlogits", &g, 1, &R, 0, M * K, dx);
    for (int k = 0; k < K; k++) CHECK(dx[2 * K + k] == 0, "cross_entropy: ignored row has gradient %g", dx[2 * K + k]);
    free(g.in[0]); free(dx);
}

static void test_bce(void) {
    const int64_t M = 7;
    double t[7];
    for (int i = 0; i < 7; i++) t[i] = i < 4 ? (double)(i & 1) : dcl_rng_uniform(&g_rng);
    gc g = {.op = OP_BCE, .M = M, .dtargets = t};
    g.in[0] = randn(M);
    for (int i = 0; i < M; i++) g.in[0][i] *= 4;
    double R = 0.8, *dx = randn(M);
    CHECK_OK(dcl_bce_logits_bwd_f64(M, dx, R, g.in[0], t));
    expect_grad("bce_logits dlogits", &g, 1, &R, 0, M, dx);
    free(g.in[0]); free(dx);
}

static void test_l2norm(void) {
    const int64_t M = 3;
    const int D = 6;
    gc g = {.op = OP_L2NORM, .M = M, .K = D, .eps = DCL_L2NORM_EPS};
    g.in[0] = randn(M * D);
    double *R = randn(M * D), *dx = randn(M * D);
    CHECK_OK(dcl_l2norm_bwd_f64(M, D, dx, R, g.in[0], g.eps));
    expect_grad("l2norm dx", &g, M * D, R, 0, M * D, dx);
    free(g.in[0]); free(R); free(dx);
}

int main(void) {
    dcl_rng_seed(&g_rng, 20220301);
    test_conv();
    test_bn(12, 3);
    test_bn(2, 4);
    test_act(DCL_ACT_NONE, "none");
    test_act(DCL_ACT_RELU, "relu");
    test_act(DCL_ACT_SILU, "silu");
    test_act(DCL_ACT_SIGMOID, "sigmoid");
    test_prelu(8, 3);
    test_prelu(10, 1);
    /*        name                 kind          n c hi wi kh kw sh sw pt pb pl pr ceil cip */
    test_pool("max 3x3 s2 p1",     DCL_POOL_MAX, 2, 3, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1);
    test_pool("max 2x2 s2 ceil",   DCL_POOL_MAX, 1, 2, 5, 5, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1);
    test_pool("max 3x3 s1 asym",   DCL_POOL_MAX, 1, 2, 4, 5, 3, 3, 1, 1, 0, 2, 1, 0, 0, 1);
    test_pool("max 3x2 s1x2 ovl",  DCL_POOL_MAX, 2, 1, 5, 6, 3, 2, 1, 2, 1, 1, 0, 0, 0, 1);
    test_pool("avg 3x3 s2 p1 cip", DCL_POOL_AVG, 2, 3, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1);
    test_pool("avg 3x3 s2 p1 xp",  DCL_POOL_AVG, 2, 3, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0);
    test_pool("avg 3x3 s2 ceil",   DCL_POOL_AVG, 1, 2, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
    test_pool("avg 2x2 s1",        DCL_POOL_AVG, 1, 3, 4, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0, 1);
    test_gap();
    test_linear(1);
    test_linear(0);
    test_mul_bcast();
    test_softmax(0);
    test_softmax(1);
    test_ce();
    test_bce();
    test_l2norm();
    CHECK_DONE();
}
