/* Reference kernels: float against double on random data, hand-computed
 * cases, sentinels around every float output (nothing written outside its
 * range, every element inside written), error reporting, the "ref" backend
 * vtable and the dropout masks. */
#include "dcl/nn.h"
#include "check.h"

static dcl_rng g_rng;

/* ---- guarded float buffers ---- */
#define GUARD 16
#define SENT (-7777.25f)

static float *galloc(int64_t n) {
    float *b = malloc((size_t)(n + 2 * GUARD) * sizeof *b);
    for (int64_t i = 0; i < n + 2 * GUARD; i++) b[i] = SENT;
    for (int64_t i = 0; i < n; i++) b[GUARD + i] = NAN; /* must be overwritten */
    return b + GUARD;
}
static void gfree(float *p) { if (p) free(p - GUARD); }
static void gcheck_(const char *file, int line, const char *what, const float *p, int64_t n) {
    int bad = 0;
    for (int i = 1; i <= GUARD; i++) bad |= p[-i] != SENT;
    for (int64_t i = 0; i < GUARD; i++) bad |= p[n + i] != SENT;
    check_count_++;
    if (bad) {
        check_failed_++;
        fprintf(stderr, "%s:%d: %s: write outside the %lld-element output\n", file, line, what, (long long)n);
    }
}
#define GCHECK(what, p, n) gcheck_(__FILE__, __LINE__, what, p, n)

/* paired random inputs: the same values in float (guarded) and double */
static float *rnd(int64_t n, double scale, double **dout) {
    float *f = galloc(n);
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)(scale * dcl_rng_normal(&g_rng));
        d[i] = f[i];
    }
    *dout = d;
    return f;
}
static double *dalloc(int64_t n) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = NAN;
    return d;
}

/* float result against the double result, rounded */
static void cmp_(const char *file, int line, const char *what, const float *f, const double *d, int64_t n,
                 double tol) {
    float *r = malloc((size_t)(n > 0 ? n : 1) * sizeof *r);
    double mx = 0;
    for (int64_t i = 0; i < n; i++) { r[i] = (float)d[i]; mx = fmax(mx, fabs(d[i])); }
    /* relative to the element, with an absolute floor relative to the output's scale */
    check_close_(file, line, what, f, r, n, tol * (mx > 1 ? mx : 1) * 0.1, tol);
    free(r);
}
#define CMP(what, f, d, n) cmp_(__FILE__, __LINE__, what, f, d, n, 1e-5)

/* ------------------------------------------------------------------------ */
/* float against double                                                     */
/* ------------------------------------------------------------------------ */

static void fd_conv(const char *name, int n, int ci, int hi, int wi, int co, int k, int s, int dil, int groups,
                    int bias, int same) {
    dcl_conv_desc d = {.n = n, .ci = ci, .hi = hi, .wi = wi, .co = co, .kh = k, .kw = k, .sh = s, .sw = s,
                       .dh = dil, .dw = dil, .groups = groups, .has_bias = bias};
    if (same) {
        dcl_same_pad(hi, k, s, dil, &d.pt, &d.pb);
        dcl_same_pad(wi, k, s, dil, &d.pl, &d.pr);
    } else {
        d.pt = d.pb = d.pl = d.pr = (k - 1) / 2 * dil;
    }
    CHECK_OK(dcl_conv_desc_finish(&d));
    const int64_t nx = (int64_t)n * hi * wi * ci, nw = (int64_t)co * (ci / groups) * k * k;
    const int64_t ny = (int64_t)n * d.ho * d.wo * co;
    double *xd, *wd, *bd, *dyd;
    float *x = rnd(nx, 1, &xd), *w = rnd(nw, 0.5, &wd), *b = rnd(co, 1, &bd), *dy = rnd(ny, 1, &dyd);
    float *y = galloc(ny), *dx = galloc(nx), *dw = galloc(nw), *db = galloc(co);
    double *yd = dalloc(ny), *dxd = dalloc(nx), *dwd = dalloc(nw), *dbd = dalloc(co);
    /* accumulation targets start from the same values */
    for (int64_t i = 0; i < nw; i++) { dw[i] = 0.25f * (float)(i % 7); dwd[i] = dw[i]; }
    for (int64_t i = 0; i < co; i++) { db[i] = -1.5f; dbd[i] = -1.5; }
    char what[128];
    CHECK_OK(dcl_ref_conv_fwd_f32(&d, y, x, w, bias ? b : NULL));
    CHECK_OK(dcl_ref_conv_fwd_f64(&d, yd, xd, wd, bias ? bd : NULL));
    snprintf(what, sizeof what, "conv %s y", name);
    CMP(what, y, yd, ny); GCHECK(what, y, ny);
    CHECK_OK(dcl_ref_conv_bwd_data_f32(&d, dx, dy, w));
    CHECK_OK(dcl_ref_conv_bwd_data_f64(&d, dxd, dyd, wd));
    snprintf(what, sizeof what, "conv %s dx", name);
    CMP(what, dx, dxd, nx); GCHECK(what, dx, nx);
    CHECK_OK(dcl_ref_conv_bwd_weights_f32(&d, dw, db, dy, x));
    CHECK_OK(dcl_ref_conv_bwd_weights_f64(&d, dwd, dbd, dyd, xd));
    snprintf(what, sizeof what, "conv %s dw", name);
    CMP(what, dw, dwd, nw); GCHECK(what, dw, nw);
    snprintf(what, sizeof what, "conv %s db", name);
    CMP(what, db, dbd, co); GCHECK(what, db, co);
    gfree(x); gfree(w); gfree(b); gfree(dy); gfree(y); gfree(dx); gfree(dw); gfree(db);
    free(xd); free(wd); free(bd); free(dyd); free(yd); free(dxd); free(dwd); free(dbd);
}

static void fd_bn(int64_t M, int C) {
    double *xd, *gd, *bd, *dyd, *rmd, *rvd;
    float *x = rnd(M * C, 2, &xd), *g = rnd(C, 1, &gd), *b = rnd(C, 1, &bd), *dy = rnd(M * C, 1, &dyd);
    float *rm = rnd(C, 1, &rmd), *rv = rnd(C, 1, &rvd);
    for (int c = 0; c < C; c++) { rv[c] = fabsf(rv[c]) + 0.1f; rvd[c] = rv[c]; }
    float *y = galloc(M * C), *mean = galloc(C), *var = galloc(C), *is = galloc(C), *dx = galloc(M * C);
    float *dg = galloc(C), *dbt = galloc(C);
    double *yd = dalloc(M * C), *meand = dalloc(C), *vard = dalloc(C), *isd = dalloc(C), *dxd = dalloc(M * C);
    double *dgd = dalloc(C), *dbtd = dalloc(C);
    for (int c = 0; c < C; c++) { dg[c] = dbt[c] = 0.5f; dgd[c] = dbtd[c] = 0.5; }
    CHECK_OK(dcl_ref_bn_fwd_train_f32(M, C, y, mean, var, is, x, g, b, 1e-5f));
    CHECK_OK(dcl_ref_bn_fwd_train_f64(M, C, yd, meand, vard, isd, xd, gd, bd, (double)1e-5f));
    CMP("bn train y", y, yd, M * C); GCHECK("bn train y", y, M * C);
    CMP("bn mean", mean, meand, C); GCHECK("bn mean", mean, C);
    CMP("bn var", var, vard, C); GCHECK("bn var", var, C);
    CMP("bn invstd", is, isd, C); GCHECK("bn invstd", is, C);
    CHECK_OK(dcl_ref_bn_bwd_f32(M, C, dx, dg, dbt, dy, x, mean, is, g));
    CHECK_OK(dcl_ref_bn_bwd_f64(M, C, dxd, dgd, dbtd, dyd, xd, meand, isd, gd));
    CMP("bn dx", dx, dxd, M * C); GCHECK("bn dx", dx, M * C);
    CMP("bn dgamma", dg, dgd, C); GCHECK("bn dgamma", dg, C);
    CMP("bn dbeta", dbt, dbtd, C); GCHECK("bn dbeta", dbt, C);
    CHECK_OK(dcl_ref_bn_fwd_infer_f32(M, C, y, x, g, b, rm, rv, 1e-3f));
    CHECK_OK(dcl_ref_bn_fwd_infer_f64(M, C, yd, xd, gd, bd, rmd, rvd, (double)1e-3f));
    CMP("bn infer y", y, yd, M * C); GCHECK("bn infer y", y, M * C);
    gfree(x); gfree(g); gfree(b); gfree(dy); gfree(rm); gfree(rv); gfree(y); gfree(mean); gfree(var);
    gfree(is); gfree(dx); gfree(dg); gfree(dbt);
    free(xd); free(gd); free(bd); free(dyd); free(rmd); free(rvd); free(yd); free(meand); free(vard);
    free(isd); free(dxd); free(dgd); free(dbtd);
}

static void fd_act(void) {
    const int64_t n = 301;
    static const char *names[] = {"none", "relu", "silu", "sigmoid"};
    for (int a = DCL_ACT_NONE; a <= DCL_ACT_SIGMOID; a++) {
        double *xd, *dyd;
        float *x = rnd(n, 4, &xd), *dy = rnd(n, 1, &dyd), *y = galloc(n), *dx = galloc(n);
        double *yd = dalloc(n), *dxd = dalloc(n);
        char what[64];
        CHECK_OK(dcl_ref_act_fwd_f32((dcl_act)a, n, y, x));
        CHECK_OK(dcl_ref_act_fwd_f64((dcl_act)a, n, yd, xd));
        snprintf(what, sizeof what, "act %s y", names[a]);
        CMP(what, y, yd, n); GCHECK(what, y, n);
        CHECK_OK(dcl_ref_act_bwd_f32((dcl_act)a, n, dx, dy, x, y));
        CHECK_OK(dcl_ref_act_bwd_f64((dcl_act)a, n, dxd, dyd, xd, yd));
        snprintf(what, sizeof what, "act %s dx", names[a]);
        CMP(what, dx, dxd, n); GCHECK(what, dx, n);
        gfree(x); gfree(dy); gfree(y); gfree(dx); free(xd); free(dyd); free(yd); free(dxd);
    }
}

static void fd_prelu(int64_t M, int C) {
    double *xd, *ad, *dyd;
    float *x = rnd(M * C, 1, &xd), *a = rnd(C, 0.3, &ad), *dy = rnd(M * C, 1, &dyd);
    float *y = galloc(M * C), *dx = galloc(M * C), *da = galloc(C);
    double *yd = dalloc(M * C), *dxd = dalloc(M * C), *dad = dalloc(C);
    for (int c = 0; c < C; c++) { da[c] = 1; dad[c] = 1; }
    CHECK_OK(dcl_ref_prelu_fwd_f32(M, C, y, x, a));
    CHECK_OK(dcl_ref_prelu_fwd_f64(M, C, yd, xd, ad));
    CMP("prelu y", y, yd, M * C); GCHECK("prelu y", y, M * C);
    CHECK_OK(dcl_ref_prelu_bwd_f32(M, C, dx, da, dy, x, a));
    CHECK_OK(dcl_ref_prelu_bwd_f64(M, C, dxd, dad, dyd, xd, ad));
    CMP("prelu dx", dx, dxd, M * C); GCHECK("prelu dx", dx, M * C);
    CMP("prelu dalpha", da, dad, C); GCHECK("prelu dalpha", da, C);
    gfree(x); gfree(a); gfree(dy); gfree(y); gfree(dx); gfree(da);
    free(xd); free(ad); free(dyd); free(yd); free(dxd); free(dad);
}

static void fd_pool(const char *name, dcl_pool_kind kind, int k, int s, int p, int ceil_mode, int cip) {
    dcl_pool_desc d = {.n = 2, .c = 5, .hi = 9, .wi = 8, .kh = k, .kw = k, .sh = s, .sw = s,
                       .pt = p, .pb = p, .pl = p, .pr = p, .ceil_mode = ceil_mode, .count_include_pad = cip,
                       .kind = kind};
    CHECK_OK(dcl_pool_desc_finish(&d));
    const int64_t nx = (int64_t)d.n * d.hi * d.wi * d.c, ny = (int64_t)d.n * d.ho * d.wo * d.c;
    double *xd, *dyd;
    float *x = rnd(nx, 1, &xd), *dy = rnd(ny, 1, &dyd), *y = galloc(ny), *dx = galloc(nx);
    double *yd = dalloc(ny), *dxd = dalloc(nx);
    char what[96];
    CHECK_OK(dcl_ref_pool_fwd_f32(&d, y, x));
    CHECK_OK(dcl_ref_pool_fwd_f64(&d, yd, xd));
    snprintf(what, sizeof what, "pool %s y", name);
    CMP(what, y, yd, ny); GCHECK(what, y, ny);
    CHECK_OK(dcl_ref_pool_bwd_f32(&d, dx, dy, x, y));
    CHECK_OK(dcl_ref_pool_bwd_f64(&d, dxd, dyd, xd, yd));
    snprintf(what, sizeof what, "pool %s dx", name);
    CMP(what, dx, dxd, nx); GCHECK(what, dx, nx);
    gfree(x); gfree(dy); gfree(y); gfree(dx); free(xd); free(dyd); free(yd); free(dxd);
}

static void fd_small_ops(void) {
    const int N = 3, HW = 7, C = 6, K = 9, O = 4;
    double *xd, *dyd, *sd, *dgd, *wd, *bd, *xld, *dyld;
    float *x = rnd(N * HW * C, 1, &xd), *dy = rnd(N * HW * C, 1, &dyd), *s = rnd(N * C, 1, &sd);
    float *dg = rnd(N * C, 1, &dgd);
    float *w = rnd(O * K, 1, &wd), *b = rnd(O, 1, &bd), *xl = rnd(N * K, 1, &xld), *dyl = rnd(N * O, 1, &dyld);
    float *y = galloc(N * HW * C), *dx = galloc(N * HW * C), *ds = galloc(N * C), *g = galloc(N * C);
    double *yd = dalloc(N * HW * C), *dxd = dalloc(N * HW * C), *dsd = dalloc(N * C), *gd = dalloc(N * C);

    CHECK_OK(dcl_ref_gap_fwd_f32(N, HW, C, g, x));
    CHECK_OK(dcl_ref_gap_fwd_f64(N, HW, C, gd, xd));
    CMP("gap y", g, gd, N * C); GCHECK("gap y", g, N * C);
    CHECK_OK(dcl_ref_gap_bwd_f32(N, HW, C, dx, dg));
    CHECK_OK(dcl_ref_gap_bwd_f64(N, HW, C, dxd, dgd));
    CMP("gap dx", dx, dxd, N * HW * C); GCHECK("gap dx", dx, N * HW * C);

    CHECK_OK(dcl_ref_mul_bcast_fwd_f32(N, HW, C, y, x, s));
    CHECK_OK(dcl_ref_mul_bcast_fwd_f64(N, HW, C, yd, xd, sd));
    CMP("mul_bcast y", y, yd, N * HW * C); GCHECK("mul_bcast y", y, N * HW * C);
    CHECK_OK(dcl_ref_mul_bcast_bwd_f32(N, HW, C, dx, ds, dy, x, s));
    CHECK_OK(dcl_ref_mul_bcast_bwd_f64(N, HW, C, dxd, dsd, dyd, xd, sd));
    CMP("mul_bcast dx", dx, dxd, N * HW * C); GCHECK("mul_bcast dx", dx, N * HW * C);
    CMP("mul_bcast ds", ds, dsd, N * C); GCHECK("mul_bcast ds", ds, N * C);

    CHECK_OK(dcl_ref_add_f32(N * HW * C, y, x, dy));
    CHECK_OK(dcl_ref_add_f64(N * HW * C, yd, xd, dyd));
    CMP("add y", y, yd, N * HW * C); GCHECK("add y", y, N * HW * C);

    float *mask = galloc(N * HW * C);
    double *maskd = dalloc(N * HW * C);
    for (int i = 0; i < N * HW * C; i++) { mask[i] = (float)(i % 3 != 0); maskd[i] = mask[i]; }
    CHECK_OK(dcl_ref_scale_mask_f32(N, HW * C, y, x, mask, 0, 1.25f));
    CHECK_OK(dcl_ref_scale_mask_f64(N, HW * C, yd, xd, maskd, 0, 1.25));
    CMP("scale_mask y", y, yd, N * HW * C); GCHECK("scale_mask y", y, N * HW * C);
    CHECK_OK(dcl_ref_scale_mask_f32(N, HW * C, y, x, mask, 1, 1.25f));
    CHECK_OK(dcl_ref_scale_mask_f64(N, HW * C, yd, xd, maskd, 1, 1.25));
    CMP("scale_mask per row y", y, yd, N * HW * C);
    for (int i = 0; i < HW * C; i++) CHECK(y[i] == 0.0f, "scale_mask per row: row 0 (mask 0) not zeroed");
    for (int i = HW * C; i < N * HW * C; i++) CHECK(y[i] == x[i] * 1.25f, "scale_mask per row: row 1/2 (mask 1) not scaled");

    float *yl = galloc(N * O), *dxl = galloc(N * K), *dw = galloc(O * K), *db = galloc(O);
    double *yld = dalloc(N * O), *dxld = dalloc(N * K), *dwd = dalloc(O * K), *dbd = dalloc(O);
    for (int i = 0; i < O * K; i++) { dw[i] = 0.125f; dwd[i] = 0.125; }
    for (int i = 0; i < O; i++) { db[i] = 2; dbd[i] = 2; }
    CHECK_OK(dcl_ref_linear_fwd_f32(N, K, O, yl, xl, w, b));
    CHECK_OK(dcl_ref_linear_fwd_f64(N, K, O, yld, xld, wd, bd));
    CMP("linear y", yl, yld, N * O); GCHECK("linear y", yl, N * O);
    CHECK_OK(dcl_ref_linear_bwd_f32(N, K, O, dxl, dw, db, dyl, xl, w));
    CHECK_OK(dcl_ref_linear_bwd_f64(N, K, O, dxld, dwd, dbd, dyld, xld, wd));
    CMP("linear dx", dxl, dxld, N * K); GCHECK("linear dx", dxl, N * K);
    CMP("linear dw", dw, dwd, O * K); GCHECK("linear dw", dw, O * K);
    CMP("linear db", db, dbd, O); GCHECK("linear db", db, O);

    gfree(x); gfree(dy); gfree(s); gfree(dg); gfree(w); gfree(b); gfree(xl); gfree(dyl); gfree(y); gfree(dx);
    gfree(ds); gfree(g); gfree(mask); gfree(yl); gfree(dxl); gfree(dw); gfree(db);
    free(xd); free(dyd); free(sd); free(dgd); free(wd); free(bd); free(xld); free(dyld); free(yd); free(dxd);
    free(dsd); free(gd); free(maskd); free(yld); free(dxld); free(dwd); free(dbd);
}

static void fd_losses(void) {
    const int64_t M = 6;
    const int K = 7;
    double *xd, *dyd, *td;
    float *x = rnd(M * K, 3, &xd), *dy = rnd(M * K, 1, &dyd), *t = rnd(M, 1, &td);
    for (int i = 0; i < M; i++) { t[i] = i < 3 ? (float)(i & 1) : 0.3f; td[i] = t[i]; }
    float *y = galloc(M * K), *dx = galloc(M * K);
    double *yd = dalloc(M * K), *dxd = dalloc(M * K);
    CHECK_OK(dcl_softmax_fwd_f32(M, K, y, x));
    CHECK_OK(dcl_softmax_fwd_f64(M, K, yd, xd));
    CMP("softmax y", y, yd, M * K); GCHECK("softmax y", y, M * K);
    CHECK_OK(dcl_softmax_bwd_f32(M, K, dx, dy, y));
    CHECK_OK(dcl_softmax_bwd_f64(M, K, dxd, dyd, yd));
    CMP("softmax dx", dx, dxd, M * K); GCHECK("softmax dx", dx, M * K);
    CHECK_OK(dcl_log_softmax_fwd_f32(M, K, y, x));
    CHECK_OK(dcl_log_softmax_fwd_f64(M, K, yd, xd));
    CMP("log_softmax y", y, yd, M * K); GCHECK("log_softmax y", y, M * K);
    CHECK_OK(dcl_log_softmax_bwd_f32(M, K, dx, dy, y));
    CHECK_OK(dcl_log_softmax_bwd_f64(M, K, dxd, dyd, yd));
    CMP("log_softmax dx", dx, dxd, M * K); GCHECK("log_softmax dx", dx, M * K);

    static const int tg[6] = {0, 6, 3, DCL_IGNORE_INDEX, 2, 2};
    float *loss = galloc(1);
    double lossd;
    CHECK_OK(dcl_cross_entropy_fwd_f32(M, K, loss, x, tg));
    CHECK_OK(dcl_cross_entropy_fwd_f64(M, K, &lossd, xd, tg));
    CMP("cross_entropy loss", loss, &lossd, 1); GCHECK("cross_entropy loss", loss, 1);
    CHECK_OK(dcl_cross_entropy_bwd_f32(M, K, dx, 0.5f, x, tg));
    CHECK_OK(dcl_cross_entropy_bwd_f64(M, K, dxd, 0.5, xd, tg));
    CMP("cross_entropy dlogits", dx, dxd, M * K); GCHECK("cross_entropy dlogits", dx, M * K);

    CHECK_OK(dcl_bce_logits_fwd_f32(M, loss, x, t));
    CHECK_OK(dcl_bce_logits_fwd_f64(M, &lossd, xd, td));
    CMP("bce loss", loss, &lossd, 1); GCHECK("bce loss", loss, 1);
    float *dxb = galloc(M);
    CHECK_OK(dcl_bce_logits_bwd_f32(M, dxb, 2.0f, x, t));
    CHECK_OK(dcl_bce_logits_bwd_f64(M, dxd, 2.0, xd, td));
    CMP("bce dlogits", dxb, dxd, M); GCHECK("bce dlogits", dxb, M);
    gfree(dxb);

    CHECK_OK(dcl_l2norm_fwd_f32(M, K, y, x, 1e-12f));
    CHECK_OK(dcl_l2norm_fwd_f64(M, K, yd, xd, (double)1e-12f));
    CMP("l2norm y", y, yd, M * K); GCHECK("l2norm y", y, M * K);
    CHECK_OK(dcl_l2norm_bwd_f32(M, K, dx, dy, x, 1e-12f));
    CHECK_OK(dcl_l2norm_bwd_f64(M, K, dxd, dyd, xd, (double)1e-12f));
    CMP("l2norm dx", dx, dxd, M * K); GCHECK("l2norm dx", dx, M * K);

    gfree(x); gfree(dy); gfree(t); gfree(y); gfree(dx); gfree(loss);
    free(xd); free(dyd); free(td); free(yd); free(dxd);
}

/* ------------------------------------------------------------------------ */
/* hand-computed cases                                                      */
/* ------------------------------------------------------------------------ */

/* 4x4 input holding 1..16 row by row (one channel) */
static void fill_1_16(float *x) { for (int i = 0; i < 16; i++) x[i] = (float)(i + 1); }

static void hand_conv(void) {
    /* all-ones 3x3 kernel, padding 1, bias 0.5: neighbourhood sums */
    dcl_conv_desc d = {.n = 1, .ci = 1, .hi = 4, .wi = 4, .co = 1, .kh = 3, .kw = 3, .pt = 1, .pb = 1,
                       .pl = 1, .pr = 1, .has_bias = 1};
    CHECK_OK(dcl_conv_desc_finish(&d));
    CHECK(d.ho == 4 && d.wo == 4, "conv 3x3 p1 output %dx%d", d.ho, d.wo);
    float x[16], w[9], b = 0.5f, *y = galloc(16);
    fill_1_16(x);
    for (int i = 0; i < 9; i++) w[i] = 1;
    CHECK_OK(dcl_ref_conv_fwd_f32(&d, y, x, w, &b));
    static const float want[16] = {14, 24, 30, 22, 33, 54, 63, 45, 57, 90, 99, 69, 46, 72, 78, 54};
    float want_b[16];
    for (int i = 0; i < 16; i++) want_b[i] = want[i] + 0.5f;
    CHECK_CLOSE("conv 3x3 ones", y, want_b, 16, 1e-6, 1e-6);
    GCHECK("conv 3x3 ones", y, 16);

    /* a kernel that is not symmetric, to pin the OIHW orientation:
     * w[i][j] = 1 only at (0,2): y(h,w) = x(h-1, w+1), zero outside */
    for (int i = 0; i < 9; i++) w[i] = 0;
    w[2] = 1;
    d.has_bias = 0;
    CHECK_OK(dcl_ref_conv_fwd_f32(&d, y, x, w, NULL));
    static const float shift[16] = {0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0};
    CHECK_CLOSE("conv 3x3 corner tap", y, shift, 16, 1e-6, 1e-6);
    /* its data gradient shifts back: dx(h,w) = dy(h+1, w-1) */
    float *dx = galloc(16);
    CHECK_OK(dcl_ref_conv_bwd_data_f32(&d, dx, x, w));
    static const float back[16] = {0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 0, 0, 0};
    CHECK_CLOSE("conv 3x3 corner tap dx", dx, back, 16, 1e-6, 1e-6);
    GCHECK("conv 3x3 corner tap dx", dx, 16);

    /* stride 2 without padding: a single window */
    dcl_conv_desc d2 = {.n = 1, .ci = 1, .hi = 4, .wi = 4, .co = 1, .kh = 3, .kw = 3, .sh = 2, .sw = 2};
    CHECK_OK(dcl_conv_desc_finish(&d2));
    CHECK(d2.ho == 1 && d2.wo == 1, "conv 3x3 s2 output %dx%d", d2.ho, d2.wo);
    for (int i = 0; i < 9; i++) w[i] = 1;
    float *y1 = galloc(1);
    CHECK_OK(dcl_ref_conv_fwd_f32(&d2, y1, x, w, NULL));
    CHECK(y1[0] == 54, "conv 3x3 s2: got %g want 54", y1[0]);
    GCHECK("conv 3x3 s2", y1, 1);

    /* weight gradient of the single window with dy = 2: dw = 2 * window */
    float dw[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, g2 = 2, dbias = 10;
    CHECK_OK(dcl_ref_conv_bwd_weights_f32(&d2, dw, &dbias, &g2, x));
    static const float wantdw[9] = {3, 5, 7, 11, 13, 15, 19, 21, 23};
    CHECK_CLOSE("conv 3x3 s2 dw (accumulated onto 1)", dw, wantdw, 9, 1e-6, 1e-6);
    CHECK(dbias == 12, "conv db: got %g want 12 (10 + 2)", dbias);

    /* NHWC channel order and grouping: 1x1 conv, 2 pixels, ci=4, co=2, groups=2:
     * out0 = x0 + 2 x1, out1 = 3 x2 + 4 x3 */
    dcl_conv_desc d3 = {.n = 1, .ci = 4, .hi = 1, .wi = 2, .co = 2, .kh = 1, .kw = 1, .groups = 2};
    CHECK_OK(dcl_conv_desc_finish(&d3));
    float x3[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w3[4] = {1, 2, 3, 4}, *y3 = galloc(4);
    CHECK_OK(dcl_ref_conv_fwd_f32(&d3, y3, x3, w3, NULL));
    static const float want3[4] = {5, 25, 17, 53};
    CHECK_CLOSE("conv 1x1 grouped NHWC", y3, want3, 4, 1e-6, 1e-6);
    GCHECK("conv 1x1 grouped NHWC", y3, 4);

    /* depthwise: channel 0 passes through (centre tap), channel 1 sums its 3x3 */
    dcl_conv_desc d4 = {.n = 1, .ci = 2, .hi = 4, .wi = 4, .co = 2, .kh = 3, .kw = 3, .pt = 1, .pb = 1,
                        .pl = 1, .pr = 1, .groups = 2};
    CHECK_OK(dcl_conv_desc_finish(&d4));
    float x4[32], w4[18] = {0}, *y4 = galloc(32), got0[16], got1[16];
    for (int i = 0; i < 16; i++) { x4[2 * i] = (float)(100 + i); x4[2 * i + 1] = (float)(i + 1); }
    w4[4] = 1;
    for (int i = 9; i < 18; i++) w4[i] = 1;
    CHECK_OK(dcl_ref_conv_fwd_f32(&d4, y4, x4, w4, NULL));
    for (int i = 0; i < 16; i++) { got0[i] = y4[2 * i]; got1[i] = y4[2 * i + 1]; x[i] = (float)(100 + i); }
    CHECK_CLOSE("depthwise channel 0 (identity)", got0, x, 16, 1e-6, 1e-6);
    CHECK_CLOSE("depthwise channel 1 (ones)", got1, want, 16, 1e-6, 1e-6);
    GCHECK("depthwise", y4, 32);

    gfree(y); gfree(dx); gfree(y1); gfree(y3); gfree(y4);
}

static void hand_pool(void) {
    float x[16], *y = galloc(4), *dx = galloc(16);
    fill_1_16(x);
    dcl_pool_desc d = {.n = 1, .c = 1, .hi = 4, .wi = 4, .kh = 2, .kw = 2, .kind = DCL_POOL_MAX};
    CHECK_OK(dcl_pool_desc_finish(&d));
    CHECK(d.ho == 2 && d.wo == 2 && d.sh == 2, "max 2x2: output %dx%d stride %d", d.ho, d.wo, d.sh);
    CHECK_OK(dcl_ref_pool_fwd_f32(&d, y, x));
    static const float m22[4] = {6, 8, 14, 16};
    CHECK_CLOSE("max 2x2", y, m22, 4, 1e-6, 1e-6);
    GCHECK("max 2x2", y, 4);
    float dy[4] = {1, 2, 3, 4};
    CHECK_OK(dcl_ref_pool_bwd_f32(&d, dx, dy, x, y));
    static const float dm22[16] = {0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4};
    CHECK_CLOSE("max 2x2 dx", dx, dm22, 16, 1e-6, 1e-6);
    GCHECK("max 2x2 dx", dx, 16);

    /* 3x3 stride 2 padding 1 on negative values: padding never wins */
    for (int i = 0; i < 16; i++) x[i] = -(float)(i + 1);
    dcl_pool_desc e = {.n = 1, .c = 1, .hi = 4, .wi = 4, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                       .pt = 1, .pb = 1, .pl = 1, .pr = 1, .kind = DCL_POOL_MAX};
    CHECK_OK(dcl_pool_desc_finish(&e));
    CHECK(e.ho == 2 && e.wo == 2, "max 3x3 s2 p1: output %dx%d", e.ho, e.wo);
    CHECK_OK(dcl_ref_pool_fwd_f32(&e, y, x));
    static const float mneg[4] = {-1, -2, -5, -6};
    CHECK_CLOSE("max 3x3 s2 p1 negative", y, mneg, 4, 1e-6, 1e-6);

    /* ties: the gradient goes to the first maximum in scan order */
    for (int i = 0; i < 16; i++) x[i] = 5;
    CHECK_OK(dcl_ref_pool_bwd_f32(&d, dx, dy, x, NULL));
    static const float dtie[16] = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    CHECK_CLOSE("max 2x2 ties dx", dx, dtie, 16, 1e-6, 1e-6);

    /* average 3x3 s2 p1 on 1..16: divisor 9 with padding counted, else the
     * number of input positions */
    fill_1_16(x);
    e.kind = DCL_POOL_AVG;
    e.count_include_pad = 1;
    CHECK_OK(dcl_ref_pool_fwd_f32(&e, y, x));
    /* windows: rows {0,1} cols {0,1}: 14;  rows {0,1} cols {1,2,3}: 2+3+4+6+7+8 = 30;
     *          rows {1,2,3} cols {0,1}: 5+6+9+10+13+14 = 57;  rows/cols {1,2,3}: 99 */
    const float acip[4] = {14.f / 9, 30.f / 9, 57.f / 9, 99.f / 9};
    CHECK_CLOSE("avg 3x3 s2 p1 count_include_pad", y, acip, 4, 0, 1e-6);
    e.count_include_pad = 0;
    CHECK_OK(dcl_ref_pool_fwd_f32(&e, y, x));
    const float axp[4] = {14.f / 4, 30.f / 6, 57.f / 6, 99.f / 9};
    CHECK_CLOSE("avg 3x3 s2 p1 exclude pad", y, axp, 4, 0, 1e-6);
    float dya[4] = {9, 18, 6, 12};
    e.count_include_pad = 1;
    CHECK_OK(dcl_ref_pool_bwd_f32(&e, dx, dya, x, y));
    /* each window spreads dy/9 over its input positions; (1,1) is in all four */
    CHECK(fabsf(dx[0] - 1) < 1e-6 && fabsf(dx[5] - (1 + 2 + 6.f / 9 + 12.f / 9)) < 1e-5 &&
          fabsf(dx[15] - 12.f / 9) < 1e-6 && fabsf(dx[3] - 2) < 1e-6,
          "avg bwd: dx[0]=%g dx[5]=%g dx[15]=%g dx[3]=%g", dx[0], dx[5], dx[15], dx[3]);

    /* ceil_mode: 6x6 ones, 3x3 s2 p1: 4x4 output; the last window covers
     * input row 5 and one padded row, so its divisor is 2x2 with padding
     * counted (the part beyond the padding is not counted) */
    float ones[36], *y16 = galloc(16);
    for (int i = 0; i < 36; i++) ones[i] = 1;
    dcl_pool_desc c = {.n = 1, .c = 1, .hi = 6, .wi = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pt = 1, .pb = 1,
                       .pl = 1, .pr = 1, .ceil_mode = 1, .count_include_pad = 1, .kind = DCL_POOL_AVG};
    CHECK_OK(dcl_pool_desc_finish(&c));
    CHECK(c.ho == 4 && c.wo == 4, "avg ceil: output %dx%d want 4x4", c.ho, c.wo);
    CHECK_OK(dcl_ref_pool_fwd_f32(&c, y16, ones));
    CHECK(fabsf(y16[0] - 4.f / 9) < 1e-6 && fabsf(y16[1] - 6.f / 9) < 1e-6 && fabsf(y16[15] - 0.25f) < 1e-6 &&
          fabsf(y16[3] - 2.f / 6) < 1e-6,
          "avg ceil: got %g %g %g %g want 4/9 6/9 1/4 1/3", y16[0], y16[1], y16[15], y16[3]);
    GCHECK("avg ceil", y16, 16);
    /* ceil_mode without padding: the partial last window averages what it has */
    dcl_pool_desc c2 = {.n = 1, .c = 1, .hi = 5, .wi = 5, .kh = 2, .kw = 2, .ceil_mode = 1, .count_include_pad = 1,
                        .kind = DCL_POOL_AVG};
    CHECK_OK(dcl_pool_desc_finish(&c2));
    CHECK(c2.ho == 3 && c2.wo == 3, "avg 2x2 ceil on 5x5: output %dx%d", c2.ho, c2.wo);
    float *y9 = galloc(9);
    CHECK_OK(dcl_ref_pool_fwd_f32(&c2, y9, ones));
    float nine_ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_CLOSE("avg 2x2 ceil ones", y9, nine_ones, 9, 0, 1e-6);
    GCHECK("avg 2x2 ceil ones", y9, 9);

    /* NaN wins a max, as in PyTorch */
    fill_1_16(x);
    x[0] = NAN;
    CHECK_OK(dcl_ref_pool_fwd_f32(&d, y, x));
    CHECK(isnan(y[0]) && y[1] == 8, "max with NaN: got %g %g", y[0], y[1]);

    /* gap */
    fill_1_16(x);
    float *g = galloc(4);
    CHECK_OK(dcl_ref_gap_fwd_f32(2, 4, 2, g, x));
    static const float wantg[4] = {4, 5, 12, 13};
    CHECK_CLOSE("gap", g, wantg, 4, 1e-6, 1e-6);
    GCHECK("gap", g, 4);
    gfree(y); gfree(dx); gfree(y16); gfree(y9); gfree(g);
}

static void hand_misc(void) {
    /* batch norm of 1,2,3,4 */
    float x[4] = {1, 2, 3, 4}, y[4], mean, var, is, gamma = 2, beta = 1;
    CHECK_OK(dcl_ref_bn_fwd_train_f32(4, 1, y, &mean, &var, &is, x, &gamma, &beta, 0));
    CHECK(mean == 2.5f && var == 1.25f && fabsf(is - 1 / sqrtf(1.25f)) < 1e-7,
          "bn stats: mean %g var %g invstd %g", mean, var, is);
    const float sd = sqrtf(1.25f);
    const float wb[4] = {1 - 3 / sd, 1 - 1 / sd, 1 + 1 / sd, 1 + 3 / sd};
    CHECK_CLOSE("bn y", y, wb, 4, 1e-6, 1e-6);
    /* inference with running stats */
    float rm = 1, rv = 4;
    CHECK_OK(dcl_ref_bn_fwd_infer_f32(4, 1, y, x, &gamma, &beta, &rm, &rv, 0));
    const float wi[4] = {1, 2, 3, 4};
    CHECK_CLOSE("bn infer y", y, wi, 4, 1e-6, 1e-6);
    /* constant dy gives zero dx (mean removed); dbeta accumulates sum dy */
    float dy[4] = {1, 1, 1, 1}, dx[4], dg = 0, db = 1;
    CHECK_OK(dcl_ref_bn_fwd_train_f32(4, 1, y, &mean, &var, &is, x, &gamma, &beta, 0));
    CHECK_OK(dcl_ref_bn_bwd_f32(4, 1, dx, &dg, &db, dy, x, &mean, &is, &gamma));
    CHECK(fabsf(dx[0]) < 1e-6 && fabsf(dx[3]) < 1e-6 && fabsf(dg) < 1e-6 && db == 5,
          "bn bwd constant dy: dx %g %g dgamma %g dbeta %g", dx[0], dx[3], dg, db);

    /* activations */
    float a[4] = {-1, 0, 1, 2}, r[4];
    CHECK_OK(dcl_ref_act_fwd_f32(DCL_ACT_RELU, 4, r, a));
    CHECK(r[0] == 0 && r[1] == 0 && r[2] == 1 && r[3] == 2, "relu");
    CHECK_OK(dcl_ref_act_fwd_f32(DCL_ACT_SIGMOID, 4, r, a));
    CHECK(r[1] == 0.5f && fabsf(r[2] - 0.7310585786f) < 1e-7, "sigmoid: %g %g", r[1], r[2]);
    CHECK_OK(dcl_ref_act_fwd_f32(DCL_ACT_SILU, 4, r, a));
    CHECK(fabsf(r[0] + 0.2689414214f) < 1e-7 && r[1] == 0 && fabsf(r[3] - 1.7615941560f) < 1e-6,
          "silu: %g %g %g", r[0], r[1], r[3]);
    float big[3] = {-1000, 1000, -90}, rb[3];
    CHECK_OK(dcl_ref_act_fwd_f32(DCL_ACT_SILU, 3, rb, big));
    CHECK(rb[0] == 0 && rb[1] == 1000 && fabsf(rb[2]) < 1e-30, "silu extremes: %g %g %g", rb[0], rb[1], rb[2]);
    /* relu gradient at exactly 0 is 0 (PyTorch) */
    float g1[4] = {1, 1, 1, 1}, gr[4];
    CHECK_OK(dcl_ref_act_bwd_f32(DCL_ACT_RELU, 4, gr, g1, a, NULL));
    CHECK(gr[0] == 0 && gr[1] == 0 && gr[2] == 1, "relu bwd: %g %g %g", gr[0], gr[1], gr[2]);
    /* in place */
    float ip[4] = {-1, 0, 1, 2};
    CHECK_OK(dcl_ref_act_fwd_f32(DCL_ACT_RELU, 4, ip, ip));
    CHECK(ip[0] == 0 && ip[3] == 2, "relu in place");

    /* prelu shared slope */
    float al = 0.25f, pr[4];
    CHECK_OK(dcl_ref_prelu_fwd_f32(4, 1, pr, a, &al));
    CHECK(pr[0] == -0.25f && pr[3] == 2, "prelu: %g %g", pr[0], pr[3]);

    /* linear */
    float lx[2] = {1, 2}, lw[6] = {1, 0, 0, 1, 1, 1}, lb[3] = {0, 0, 1}, ly[3];
    CHECK_OK(dcl_ref_linear_fwd_f32(1, 2, 3, ly, lx, lw, lb));
    CHECK(ly[0] == 1 && ly[1] == 2 && ly[2] == 4, "linear: %g %g %g", ly[0], ly[1], ly[2]);
    CHECK_OK(dcl_ref_linear_fwd_f32(1, 2, 3, ly, lx, lw, NULL));
    CHECK(ly[2] == 3, "linear without bias: %g", ly[2]);

    /* softmax of log(1), log(2), log(3) */
    float sx[3] = {0, logf(2), logf(3)}, sy[3];
    CHECK_OK(dcl_softmax_fwd_f32(1, 3, sy, sx));
    const float swant[3] = {1.f / 6, 2.f / 6, 3.f / 6};
    CHECK_CLOSE("softmax", sy, swant, 3, 0, 1e-6);
    /* shift invariance with huge logits (no overflow) */
    float hx[3] = {1000, 1000 + logf(2), 1000 + logf(3)};
    CHECK_OK(dcl_softmax_fwd_f32(1, 3, sy, hx));
    CHECK_CLOSE("softmax large logits", sy, swant, 3, 0, 2e-4);
    CHECK_OK(dcl_log_softmax_fwd_f32(1, 3, sy, sx));
    const float lwant[3] = {logf(1.f / 6), logf(2.f / 6), logf(3.f / 6)};
    CHECK_CLOSE("log_softmax", sy, lwant, 3, 0, 1e-6);

    /* cross-entropy: rows (target 2, target 0, ignored) -> mean of two rows */
    float cx[9] = {0, logf(2), logf(3), 0, logf(2), logf(3), 5, 5, 5}, loss;
    int ct[3] = {2, 0, DCL_IGNORE_INDEX};
    CHECK_OK(dcl_cross_entropy_fwd_f32(3, 3, &loss, cx, ct));
    CHECK(fabsf(loss - (-logf(0.5f) - logf(1.f / 6)) / 2) < 1e-6, "cross_entropy: got %g", loss);
    float cd[9];
    CHECK_OK(dcl_cross_entropy_bwd_f32(3, 3, cd, 1, cx, ct));
    CHECK(fabsf(cd[2] - (0.5f - 1) / 2) < 1e-6 && fabsf(cd[3] - (1.f / 6 - 1) / 2) < 1e-6 && cd[8] == 0,
          "cross_entropy bwd: %g %g %g", cd[2], cd[3], cd[8]);
    int all_ignored[3] = {DCL_IGNORE_INDEX, DCL_IGNORE_INDEX, DCL_IGNORE_INDEX};
    CHECK_OK(dcl_cross_entropy_fwd_f32(3, 3, &loss, cx, all_ignored));
    CHECK(isnan(loss), "cross_entropy with every row ignored: got %g want NaN (PyTorch)", loss);

    /* BCE with logits: stable at extremes */
    float bx[4] = {0, 100, -100, 2}, bt[4] = {1, 0, 1, 0.25f};
    CHECK_OK(dcl_bce_logits_fwd_f32(1, &loss, bx, bt));
    CHECK(fabsf(loss - logf(2)) < 1e-6, "bce(0,1): %g", loss);
    CHECK_OK(dcl_bce_logits_fwd_f32(1, &loss, bx + 1, bt + 1));
    CHECK(fabsf(loss - 100) < 1e-4, "bce(100,0): %g", loss);
    CHECK_OK(dcl_bce_logits_fwd_f32(1, &loss, bx + 2, bt + 2));
    CHECK(fabsf(loss - 100) < 1e-4, "bce(-100,1): %g", loss);
    CHECK_OK(dcl_bce_logits_fwd_f32(1, &loss, bx + 3, bt + 3));
    CHECK(fabsf(loss - (0.75f * 2 + log1pf(expf(-2)))) < 1e-6, "bce(2,0.25): %g", loss);
    float bd[4];
    CHECK_OK(dcl_bce_logits_bwd_f32(4, bd, 1, bx, bt));
    CHECK(fabsf(bd[0] + 0.125f) < 1e-7 && fabsf(bd[1] - 0.25f) < 1e-7 && fabsf(bd[2] + 0.25f) < 1e-7,
          "bce bwd: %g %g %g", bd[0], bd[1], bd[2]);

    /* L2 normalisation, including an all-zero row (clamped by eps) */
    float nx[4] = {3, 4, 0, 0}, ny[4], ndy[4] = {1, 0, 2, -1}, ndx[4];
    CHECK_OK(dcl_l2norm_fwd_f32(2, 2, ny, nx, 1e-12f));
    CHECK(fabsf(ny[0] - 0.6f) < 1e-7 && fabsf(ny[1] - 0.8f) < 1e-7 && ny[2] == 0 && ny[3] == 0,
          "l2norm: %g %g %g %g", ny[0], ny[1], ny[2], ny[3]);
    CHECK_OK(dcl_l2norm_bwd_f32(2, 2, ndx, ndy, nx, 1e-12f));
    /* row 0: (dy - y (y.dy)) / 5 = ((1,0) - 0.6 (0.6,0.8)) / 5 */
    CHECK(fabsf(ndx[0] - 0.64f / 5) < 1e-7 && fabsf(ndx[1] + 0.48f / 5) < 1e-7 &&
          fabsf(ndx[2] - 2e12f) < 2e12f * 1e-6 && fabsf(ndx[3] + 1e12f) < 1e12f * 1e-6,
          "l2norm bwd: %g %g %g %g", ndx[0], ndx[1], ndx[2], ndx[3]);

    /* a row with 0 < norm < eps is divided by eps, and so is its gradient */
    float tx[2] = {3e-13f, 4e-13f}, ty[2], tdy[2] = {1, 1}, tdx[2];
    CHECK_OK(dcl_l2norm_fwd_f32(1, 2, ty, tx, 1e-12f));
    CHECK(fabsf(ty[0] - 0.3f) < 1e-6 && fabsf(ty[1] - 0.4f) < 1e-6, "l2norm tiny row: %g %g", ty[0], ty[1]);
    CHECK_OK(dcl_l2norm_bwd_f32(1, 2, tdx, tdy, tx, 1e-12f));
    CHECK(fabsf(tdx[0] - 1e12f) < 1e6f && fabsf(tdx[1] - 1e12f) < 1e6f, "l2norm tiny row bwd: %g %g", tdx[0], tdx[1]);

    /* add may alias */
    float ax[3] = {1, 2, 3}, bx2[3] = {10, 20, 30};
    CHECK_OK(dcl_ref_add_f32(3, ax, ax, bx2));
    CHECK(ax[0] == 11 && ax[2] == 33, "add in place");
}

/* ------------------------------------------------------------------------ */
/* errors, vtable, dropout masks, speed                                     */
/* ------------------------------------------------------------------------ */

static void errors(void) {
    float buf[64] = {0};
    dcl_conv_desc d = {.n = 1, .ci = 2, .hi = 4, .wi = 4, .co = 2, .kh = 3, .kw = 3, .pt = 1, .pb = 1, .pl = 1, .pr = 1};
    CHECK_OK(dcl_conv_desc_finish(&d));
    dcl_conv_desc bad = d;
    bad.ho = 3;
    CHECK(dcl_ref_conv_fwd_f32(&bad, buf, buf, buf, NULL) == DCL_ERR_SHAPE, "conv with wrong ho accepted");
    CHECK(strstr(dcl_last_error(), "conv_fwd") && strstr(dcl_last_error(), "expected 4x4"),
          "message: %s", dcl_last_error());
    bad = d;
    bad.groups = 3;
    CHECK(dcl_ref_conv_bwd_data_f32(&bad, buf, buf, buf) == DCL_ERR_SHAPE, "conv with bad groups accepted");
    CHECK(strstr(dcl_last_error(), "groups"), "message: %s", dcl_last_error());
    bad = d;
    bad.has_bias = 1;
    CHECK(dcl_ref_conv_fwd_f32(&bad, buf, buf, buf, NULL) == DCL_ERR_ARG, "conv with has_bias and no b accepted");
    CHECK(dcl_ref_conv_bwd_weights_f32(&d, NULL, NULL, buf, buf) == DCL_ERR_ARG, "NULL dw accepted");
    CHECK(strstr(dcl_last_error(), "dw is NULL"), "message: %s", dcl_last_error());
    CHECK(dcl_ref_conv_fwd_f64(NULL, NULL, NULL, NULL, NULL) == DCL_ERR_ARG, "NULL descriptor accepted");

    dcl_pool_desc p = {.n = 1, .c = 1, .hi = 4, .wi = 4, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .pt = 2, .kind = DCL_POOL_MAX};
    p.ho = p.wo = 3;
    CHECK(dcl_ref_pool_fwd_f32(&p, buf, buf) == DCL_ERR_SHAPE, "pool padding >= window accepted");
    CHECK(strstr(dcl_last_error(), "padding"), "message: %s", dcl_last_error());
    p.pt = 0;
    p.kind = (dcl_pool_kind)7;
    CHECK(dcl_ref_pool_fwd_f32(&p, buf, buf) == DCL_ERR_ARG, "unknown pool kind accepted");

    CHECK(dcl_ref_act_fwd_f32((dcl_act)9, 4, buf, buf) == DCL_ERR_ARG, "unknown activation accepted");
    CHECK(dcl_ref_bn_fwd_train_f32(0, 3, buf, buf, buf, buf, buf, buf, buf, 1e-5f) == DCL_ERR_SHAPE, "bn M=0 accepted");
    CHECK(dcl_ref_linear_fwd_f32(2, -1, 3, buf, buf, buf, NULL) == DCL_ERR_SHAPE, "linear K<0 accepted");

    int t[2] = {0, 5};
    float loss = 123;
    CHECK(dcl_cross_entropy_fwd_f32(2, 3, &loss, buf, t) == DCL_ERR_ARG, "target out of range accepted");
    CHECK(strstr(dcl_last_error(), "target 5 of row 1"), "message: %s", dcl_last_error());
    CHECK(loss == 123, "loss written on error");

    dcl_rng r;
    dcl_rng_seed(&r, 1);
    float sc;
    CHECK(dcl_dropout_mask(&r, 4, 1.5f, buf, &sc) == DCL_ERR_ARG, "dropout p=1.5 accepted");
    CHECK(dcl_drop_path_mask(&r, 4, NAN, buf, &sc) == DCL_ERR_ARG, "drop path p=NaN accepted");
}

static void vtable(void) {
    dcl_backend *be = dcl_backend_ref();
    CHECK(be != NULL && be == dcl_backend_ref(), "dcl_backend_ref: not a singleton");
    if (!be) return;
    CHECK(strcmp(be->name, "ref") == 0 && be->is_host == 1, "ref backend name %s is_host %d", be->name, be->is_host);
    dcl_conv_desc d = {.n = 1, .ci = 1, .hi = 4, .wi = 4, .co = 1, .kh = 3, .kw = 3};
    CHECK_OK(dcl_conv_desc_finish(&d));
    for (int op = 0; op < DCL_OP_COUNT; op++) CHECK(be->supports(be, (dcl_op)op, op == DCL_OP_CONV ? &d : NULL), "op %d", op);
    dcl_backend f;
    memset(&f, 0, sizeof f);
    f.name = "test";
    dcl_backend_ref_fill(&f);
    /* every function pointer is filled, except the memory ones of a host backend */
#define FILLED(field) CHECK(f.field != NULL && be->field != NULL, "entry " #field " not filled")
    FILLED(supports); FILLED(destroy); FILLED(conv_fwd); FILLED(conv_bwd_data); FILLED(conv_bwd_weights);
    FILLED(bn_fwd_train); FILLED(bn_fwd_infer); FILLED(bn_bwd); FILLED(act_fwd); FILLED(act_bwd);
    FILLED(prelu_fwd); FILLED(prelu_bwd); FILLED(pool_fwd); FILLED(pool_bwd); FILLED(gap_fwd); FILLED(gap_bwd);
    FILLED(linear_fwd); FILLED(linear_bwd); FILLED(mul_bcast_fwd); FILLED(mul_bcast_bwd); FILLED(add);
    FILLED(scale_mask);
#undef FILLED
    CHECK(f.mem_alloc == NULL && f.sync == NULL && strcmp(f.name, "test") == 0, "fill changed memory entries or name");
    /* vtable calls run the same kernels */
    float x[16], w[9], *y = galloc(16), y2[16];
    fill_1_16(x);
    for (int i = 0; i < 9; i++) w[i] = (float)i - 4;
    d.pt = d.pb = d.pl = d.pr = 1;
    CHECK_OK(dcl_conv_desc_finish(&d));
    CHECK_OK(f.conv_fwd(&f, &d, y, x, w, NULL));
    CHECK_OK(dcl_ref_conv_fwd_f32(&d, y2, x, w, NULL));
    CHECK_CLOSE("vtable conv", y, y2, 16, 1e-6, 1e-6);
    GCHECK("vtable conv", y, 16);
    be->destroy(be); /* a no-op for the shared instance */
    CHECK(dcl_backend_ref()->conv_fwd != NULL, "ref backend unusable after destroy");
    gfree(y);
}

static void dropout(void) {
    const int64_t n = 200000;
    float *m = galloc(n), sc;
    dcl_rng r;
    dcl_rng_seed(&r, 42);
    CHECK_OK(dcl_dropout_mask(&r, n, 0.3f, m, &sc));
    GCHECK("dropout mask", m, n);
    int64_t kept = 0, other = 0;
    for (int64_t i = 0; i < n; i++) { kept += m[i] == 1; other += m[i] != 0 && m[i] != 1; }
    CHECK(other == 0, "dropout mask has %lld values other than 0/1", (long long)other);
    CHECK(fabs((double)kept / n - 0.7) < 0.005, "dropout keep fraction %g want 0.7", (double)kept / n);
    CHECK(fabsf(sc - 1 / 0.7f) < 1e-6, "dropout scale %g want %g", sc, 1 / 0.7);
    /* reproducible from the seed */
    float *m2 = galloc(n);
    dcl_rng_seed(&r, 42);
    CHECK_OK(dcl_dropout_mask(&r, n, 0.3f, m2, &sc));
    CHECK(memcmp(m, m2, n * sizeof *m) == 0, "dropout mask not reproducible");
    CHECK_OK(dcl_dropout_mask(&r, n, 0.0f, m, &sc));
    int64_t ones = 0;
    for (int64_t i = 0; i < n; i++) ones += m[i] == 1;
    CHECK(ones == n && sc == 1, "p=0 must keep everything (kept %lld, scale %g)", (long long)ones, sc);
    CHECK_OK(dcl_dropout_mask(&r, n, 1.0f, m, &sc));
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) zeros += m[i] == 0;
    CHECK(zeros == n && sc == 0, "p=1 must drop everything (dropped %lld, scale %g)", (long long)zeros, sc);

    /* drop path: one value per sample, scale 1/keep_prob */
    float rows[1000];
    CHECK_OK(dcl_drop_path_mask(&r, 1000, 0.2f, rows, &sc));
    kept = 0;
    for (int i = 0; i < 1000; i++) kept += rows[i] == 1;
    CHECK(kept > 740 && kept < 860, "drop path kept %lld of 1000 want about 800", (long long)kept);
    CHECK(fabsf(sc - 1.25f) < 1e-6, "drop path scale %g want 1.25", sc);
    /* applied with scale_mask per row: E[y] = x */
    float xs[1000 * 2], ys[1000 * 2];
    for (int i = 0; i < 2000; i++) xs[i] = 1;
    CHECK_OK(dcl_ref_scale_mask_f32(1000, 2, ys, xs, rows, 1, sc));
    double mean = 0;
    for (int i = 0; i < 2000; i++) mean += ys[i];
    mean /= 2000;
    CHECK(fabs(mean - 1) < 0.08, "drop path mean %g want about 1", mean);
    gfree(m); gfree(m2);
}

static void speed(void) {
    /* the reference must stay usable: 1x1 conv 2x64x32x32 -> 64 */
    dcl_conv_desc d = {.n = 2, .ci = 64, .hi = 32, .wi = 32, .co = 64, .kh = 1, .kw = 1};
    CHECK_OK(dcl_conv_desc_finish(&d));
    const int64_t nx = 2 * 64 * 32 * 32;
    float *x = calloc(nx, 4), *y = calloc(nx, 4), *w = calloc(64 * 64, 4), *dw = calloc(64 * 64, 4);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)(i % 13) * 0.1f;
    for (int i = 0; i < 64 * 64; i++) w[i] = (float)(i % 7) * 0.01f;
    double t0 = dcl_now();
    CHECK_OK(dcl_ref_conv_fwd_f32(&d, y, x, w, NULL));
    double t1 = dcl_now();
    CHECK_OK(dcl_ref_conv_bwd_data_f32(&d, x, y, w));
    double t2 = dcl_now();
    CHECK_OK(dcl_ref_conv_bwd_weights_f32(&d, dw, NULL, y, x));
    double t3 = dcl_now();
    printf("ref conv 1x1 2x64x32x32: fwd %.1f ms, bwd data %.1f ms, bwd weights %.1f ms\n",
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3);
    CHECK(t3 - t0 < 2.0, "reference 1x1 conv too slow: %.2f s", t3 - t0);
    free(x); free(y); free(w); free(dw);
}

int main(void) {
    dcl_rng_seed(&g_rng, 7);
    /*      name              n ci hi  wi co  k s d  g bias same */
    fd_conv("3x3 s1",         2, 8, 9, 10, 16, 3, 1, 1, 1, 1, 0);
    fd_conv("1x1",            2, 24, 5, 6, 40, 1, 1, 1, 1, 1e-6, 1e-6);
    fd_conv("dw3x3 s2 same",  2, 16, 9, 10, 16, 3, 2, 1, 16, 0, 1);
    fd_conv("dw5x5 s1 same",  1, 12, 8, 7, 12, 5, 1, 1, 12, 0, 1);
    fd_conv("dw5x5 s2 same",  2, 8, 11, 12, 8, 5, 2, 1, 8, 1, 1);
    fd_conv("grouped dil2",   1, 8, 9, 9, 12, 3, 1, 2, 4, 1, 0);
    fd_conv("stem s2 same",   2, 3, 16, 15, 8, 3, 2, 1, 1, 0, 1);
    fd_bn(50, 7);
    fd_bn(3, 33);
    fd_act();
    fd_prelu(20, 6);
    fd_prelu(31, 1);
    fd_pool("max 3x3 s2 p1", DCL_POOL_MAX, 3, 2, 1, 0, 1);
    fd_pool("max 2x2 ceil", DCL_POOL_MAX, 2, 2, 0, 1, 1);
    fd_pool("avg 3x3 s2 p1", DCL_POOL_AVG, 3, 2, 1, 0, 1);
    fd_pool("avg 3x3 s2 p1 xpad ceil", DCL_POOL_AVG, 3, 2, 1, 1, 0);
    fd_pool("avg 3x3 s1 p1", DCL_POOL_AVG, 3, 1, 1, 0, 1);
    fd_small_ops();
    fd_losses();
    hand_conv();
    hand_pool();
    hand_misc();
    errors();
    vtable();
    dropout();
    speed();
    CHECK_DONE();
}
