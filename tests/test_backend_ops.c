/* Every op of the optimised backends ("cpu", and "cuda" when a GPU is
 * present) against the plain-C reference backend on random inputs.
 *
 * Outputs live in buffers with sentinel floats on both sides (out-of-bounds
 * writes are caught) and are pre-filled with garbage (so every element must
 * be written).  The cpu backend's convolutions are also run with each layout
 * forced: oneDNN on NHWC, oneDNN on blocked layouts, own depthwise kernels,
 * pointwise convolutions as oneDNN sgemm products in every direction
 * (DCL_CPU_1X1=gemm; the automatic rule picks them for some directions and
 * shapes, checked too); its fused convolution + activation against ref conv
 * followed by ref act and its accumulating forward (conv_fwd_add) against
 * ref conv + add; its other kernels once more with streaming stores forced
 * on.
 *
 * Tolerances: |got - want| <= atol + rtol*|want| with rtol = 1e-4 and
 * atol = 1e-4 * max(1, rms(want)) for convolutions, linear layers, batch-norm
 * gradients and reductions (float sums in a different order); batch-norm
 * statistics 1e-5 relative; elementwise ops 1e-5 relative (1e-6 absolute);
 * the exp approximation behind SiLU/sigmoid: max relative error < 1e-6.
 */
#include "check.h"
#include "dcl/core.h"
#include "dcl/nn.h"
#include "dcl/net.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu.h"
#include <stdint.h>

#define PAD 16
static const float SENT = -7777.25f;
static const float GARB = 12345.5f;
static dcl_backend *REF;
static const char *TGT = "";  /* name of the backend under test, for messages */
static dcl_rng RNG;

/* ---------------------------------------------------------------- data -- */

static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)dcl_rng_uniform(&RNG);
    return p;
}
static float *filled(size_t n, float v) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}
static float *dup(const float *s, size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    memcpy(p, s, sizeof(float) * n);
    return p;
}
static double rms(const float *p, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return n ? sqrt(s / n) : 0;
}

/* A buffer on the backend under test with PAD sentinels on each side. */
typedef struct tbuf {
    dcl_backend *be;
    size_t n;
    float *d;   /* backend memory, PAD + n + PAD floats */
    float *h;   /* host copy of the same */
} tbuf;

static tbuf tb_new(dcl_backend *be, size_t n, const float *init) {
    tbuf b = {be, n, NULL, malloc(sizeof(float) * (n + 2 * PAD))};
    for (size_t i = 0; i < n + 2 * PAD; i++) b.h[i] = SENT;
    for (size_t i = 0; i < n; i++) b.h[PAD + i] = init ? init[i] : GARB;
    size_t bytes = sizeof(float) * (n + 2 * PAD);
    if (be->mem_alloc) {
        b.d = be->mem_alloc(be, bytes);
        if (!b.d || be->to_device(be, b.d, b.h, bytes) != DCL_OK) { fprintf(stderr, "device alloc/copy failed\n"); exit(2); }
    } else {
        b.d = dcl_alloc(bytes);
        memcpy(b.d, b.h, bytes);
    }
    return b;
}
static float *P(tbuf *b) { return b->d + PAD; }
/* Copies back, checks the sentinels, returns the host view of the data. */
static const float *tb_get(tbuf *b, const char *what) {
    size_t bytes = sizeof(float) * (b->n + 2 * PAD);
    if (b->be->mem_alloc) {
        if (b->be->sync) b->be->sync(b->be);
        if (b->be->to_host(b->be, b->h, b->d, bytes) != DCL_OK) { fprintf(stderr, "device copy failed\n"); exit(2); }
    } else {
        memcpy(b->h, b->d, bytes);
    }
    int bad = 0;
    for (int i = 0; i < PAD; i++) bad += b->h[i] != SENT || b->h[PAD + b->n + i] != SENT;
    CHECK(!bad, "%s %s: %d sentinel floats around the output were overwritten", TGT, what, bad);
    return b->h + PAD;
}
static void tb_free(tbuf *b) {
    if (b->be->mem_free) b->be->mem_free(b->be, b->d);
    else dcl_free(b->d);
    free(b->h);
}

static void close_rel(const char *what, const float *got, const float *want, size_t n, double rtol) {
    double atol = rtol * fmax(1.0, rms(want, n));
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s", TGT, what);
    CHECK_CLOSE(msg, got, want, (long)n, atol, rtol);
}
static void close_elem(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s", TGT, what);
    CHECK_CLOSE(msg, got, want, (long)n, atol, rtol);
}

static int has(dcl_backend *be, void *fn, dcl_op op, const void *desc, const char *what) {
    if (!fn || (be->supports && !be->supports(be, op, desc))) {
        printf("  %s: %s not provided, skipped\n", TGT, what);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ convs ------ */

typedef struct conv_case {
    const char *name;
    int n, ci, hi, wi, co, kh, kw, sh, sw, dh, dw, groups, bias, same;
    int pt, pb, pl, pr;
} conv_case;

static void test_conv(dcl_backend *be, const conv_case *cc) {
    dcl_conv_desc d = {0};
    d.n = cc->n; d.ci = cc->ci; d.hi = cc->hi; d.wi = cc->wi; d.co = cc->co;
    d.kh = cc->kh; d.kw = cc->kw; d.sh = cc->sh; d.sw = cc->sw; d.dh = cc->dh; d.dw = cc->dw;
    d.groups = cc->groups; d.has_bias = cc->bias;
    if (cc->same) {
        dcl_same_pad(d.hi, d.kh, d.sh, d.dh, &d.pt, &d.pb);
        dcl_same_pad(d.wi, d.kw, d.sw, d.dw, &d.pl, &d.pr);
    } else {
        d.pt = cc->pt; d.pb = cc->pb; d.pl = cc->pl; d.pr = cc->pr;
    }
    CHECK_OK(dcl_conv_desc_finish(&d));
    if (!has(be, (void *)be->conv_fwd, DCL_OP_CONV, &d, cc->name)) return;
    size_t nx = (size_t)d.n * d.ci * d.hi * d.wi, ny = (size_t)d.n * d.co * d.ho * d.wo;
    size_t nw = (size_t)d.co * (d.ci / d.groups) * d.kh * d.kw;
    float *x = rnd(nx, -1, 1), *w = rnd(nw, -0.5f, 0.5f), *b = rnd(d.co, -1, 1), *dy = rnd(ny, -1, 1);
    float *dw0 = rnd(nw, -1, 1), *db0 = rnd(d.co, -1, 1);
    char what[160];

    /* forward */
    float *y_ref = filled(ny, 0);
    CHECK_OK(REF->conv_fwd(REF, &d, y_ref, x, w, cc->bias ? b : NULL));
    tbuf tx = tb_new(be, nx, x), tw = tb_new(be, nw, w), tb = tb_new(be, d.co, b), ty = tb_new(be, ny, NULL);
    CHECK_OK(be->conv_fwd(be, &d, P(&ty), P(&tx), P(&tw), cc->bias ? P(&tb) : NULL));
    snprintf(what, sizeof what, "conv %s fwd", cc->name);
    close_rel(what, tb_get(&ty, what), y_ref, ny, 1e-4);

    /* cpu extension: forward with the activation fused */
    if (!strcmp(be->name, "cpu")) {
        static const char *an[] = {"none", "relu", "silu", "sigmoid"};
        float *ya = filled(ny, 0);
        for (int a = DCL_ACT_RELU; a <= DCL_ACT_SIGMOID; a++) {
            CHECK_OK(REF->act_fwd(REF, (dcl_act)a, ny, ya, y_ref));
            tbuf tya = tb_new(be, ny, NULL);
            CHECK_OK(dcl_cpu_conv_fwd_act(be, &d, (dcl_act)a, P(&tya), P(&tx), P(&tw), cc->bias ? P(&tb) : NULL));
            snprintf(what, sizeof what, "conv %s fwd + %s fused", cc->name, an[a]);
            close_rel(what, tb_get(&tya, what), ya, ny, 1e-4);
            tb_free(&tya);
        }
        /* y += conv(x) + b onto a random y */
        float *y0 = rnd(ny, -1, 1), *ysum = filled(ny, 0);
        for (size_t i = 0; i < ny; i++) ysum[i] = y0[i] + y_ref[i];
        tbuf tys = tb_new(be, ny, y0);
        CHECK_OK(be->conv_fwd_add(be, &d, P(&tys), P(&tx), P(&tw), cc->bias ? P(&tb) : NULL));
        snprintf(what, sizeof what, "conv %s fwd_add", cc->name);
        close_rel(what, tb_get(&tys, what), ysum, ny, 1e-4);
        tb_free(&tys);
        free(ya); free(y0); free(ysum);
    }

    /* backward data (assigned) */
    float *dx_ref = filled(nx, 0);
    CHECK_OK(REF->conv_bwd_data(REF, &d, dx_ref, dy, w));
    tbuf tdy = tb_new(be, ny, dy), tdx = tb_new(be, nx, NULL);
    if (be->conv_bwd_data) {
        CHECK_OK(be->conv_bwd_data(be, &d, P(&tdx), P(&tdy), P(&tw)));
        snprintf(what, sizeof what, "conv %s bwd_data", cc->name);
        close_rel(what, tb_get(&tdx, what), dx_ref, nx, 1e-4);
    }

    /* backward weights: accumulates onto random dw/db */
    if (be->conv_bwd_weights) {
        float *dw_ref = dup(dw0, nw), *db_ref = dup(db0, d.co);
        CHECK_OK(REF->conv_bwd_weights(REF, &d, dw_ref, cc->bias ? db_ref : NULL, dy, x));
        tbuf tdw = tb_new(be, nw, dw0), tdb = tb_new(be, d.co, db0);
        CHECK_OK(be->conv_bwd_weights(be, &d, P(&tdw), cc->bias ? P(&tdb) : NULL, P(&tdy), P(&tx)));
        snprintf(what, sizeof what, "conv %s bwd_weights dw", cc->name);
        close_rel(what, tb_get(&tdw, what), dw_ref, nw, 1e-4);
        if (cc->bias) {
            snprintf(what, sizeof what, "conv %s bwd_weights db", cc->name);
            close_rel(what, tb_get(&tdb, what), db_ref, d.co, 1e-4);
        }
        /* twice onto zero = 2 x once */
        float *z = filled(nw, 0), *zb = filled(d.co, 0);
        float *g1 = filled(nw, 0), *g1b = filled(d.co, 0);
        CHECK_OK(REF->conv_bwd_weights(REF, &d, g1, cc->bias ? g1b : NULL, dy, x));
        for (size_t i = 0; i < nw; i++) g1[i] *= 2;
        for (int i = 0; i < d.co; i++) g1b[i] *= 2;
        tbuf tz = tb_new(be, nw, z), tzb = tb_new(be, d.co, zb);
        CHECK_OK(be->conv_bwd_weights(be, &d, P(&tz), cc->bias ? P(&tzb) : NULL, P(&tdy), P(&tx)));
        CHECK_OK(be->conv_bwd_weights(be, &d, P(&tz), cc->bias ? P(&tzb) : NULL, P(&tdy), P(&tx)));
        snprintf(what, sizeof what, "conv %s bwd_weights accumulates (twice = 2x)", cc->name);
        close_rel(what, tb_get(&tz, what), g1, nw, 1e-4);
        if (cc->bias) close_rel(what, tb_get(&tzb, what), g1b, d.co, 1e-4);
        tb_free(&tz); tb_free(&tzb); free(z); free(zb); free(g1); free(g1b);
        tb_free(&tdw); tb_free(&tdb); free(dw_ref); free(db_ref);
    }
    tb_free(&tx); tb_free(&tw); tb_free(&tb); tb_free(&ty); tb_free(&tdy); tb_free(&tdx);
    free(x); free(w); free(b); free(dy); free(dw0); free(db0); free(y_ref); free(dx_ref);
}

static const conv_case CONVS[] = {
    /* name                  n  ci  hi  wi  co kh kw sh sw dh dw  g bias same pads */
    {"1x1",                  2, 16,  9,  9, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
    {"1x1+bias",             2, 16,  9,  9, 24, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {"1x1 wide",             2, 64,  7,  7, 96, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
    {"1x1 112->120",         2, 112, 5,  6, 120, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
    {"1x1 120->112 odd",     3, 120, 3,  5, 113, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
    {"1x1 40->48+bias big",  2, 40, 30, 31, 48, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {"1x1 s2",               2, 16, 10, 10, 32, 1, 1, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
    {"3x3 s1",               2,  8, 10, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1},
    /* few input taps: the weight gradient's own kernel (cpu_stem.c) in
     * automatic mode from 1024 output pixels, always with own kernels forced */
    {"stem 3x3 s2 same",     2,  3, 64, 66, 48, 3, 3, 2, 2, 1, 1, 1, 0, 1, 0, 0, 0, 0},
    {"stem 3x3 s2 c40 bias", 3,  3, 45, 47, 40, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 1, 0, 2},
    {"stem 5x5 dil2 ci1",    1,  1, 41, 50, 16, 5, 5, 1, 1, 2, 2, 1, 1, 0, 3, 4, 4, 1},
    {"3x3 s2",               2,  8, 11, 11, 16, 3, 3, 2, 2, 1, 1, 1, 0, 0, 1, 1, 1, 1},
    {"3x3 s2 same",          2, 16, 10, 12, 16, 3, 3, 2, 2, 1, 1, 1, 0, 1, 0, 0, 0, 0},
    {"dw3x3 s1 same",        2, 24, 10, 10, 24, 3, 3, 1, 1, 1, 1, 24, 0, 1, 0, 0, 0, 0},
    {"dw3x3 s2 same",        2, 24, 10, 10, 24, 3, 3, 2, 2, 1, 1, 24, 0, 1, 0, 0, 0, 0},
    {"dw5x5 s1 same",        2, 32,  9,  9, 32, 5, 5, 1, 1, 1, 1, 32, 0, 1, 0, 0, 0, 0},
    {"dw5x5 s2 same",        2, 32, 10, 10, 32, 5, 5, 2, 2, 1, 1, 32, 0, 1, 0, 0, 0, 0},
    {"dw5x5 s2 same c20",    2, 20, 11,  9, 20, 5, 5, 2, 2, 1, 1, 20, 1, 1, 0, 0, 0, 0},
    {"dw3x3 s1 same wide",   1, 16,  5, 21, 16, 3, 3, 1, 1, 1, 1, 16, 1, 1, 0, 0, 0, 0},
    {"dw7x7 s1 same c16",    2, 16, 12, 10, 16, 7, 7, 1, 1, 1, 1, 16, 1, 1, 0, 0, 0, 0},
    {"dw1x1 c24",            1, 24,  6,  7, 24, 1, 1, 1, 1, 1, 1, 24, 0, 0, 0, 0, 0, 0},
    {"dw5x5 s2 same c40",    1, 40,  7, 23, 40, 5, 5, 2, 2, 1, 1, 40, 0, 1, 0, 0, 0, 0},
    {"dw3x3 s2 dil2 pad2",   2,  8,  9,  9,  8, 3, 3, 2, 2, 2, 2, 8, 0, 0, 2, 2, 2, 2},
    {"dw3x3 s3 asym pad",    1,  8, 10, 11,  8, 3, 3, 3, 3, 1, 1, 8, 0, 0, 1, 0, 1, 2},
    {"dw3x3 s1 bias c13",    1, 13,  6,  7, 13, 3, 3, 1, 1, 1, 1, 13, 1, 0, 1, 1, 1, 1},
    {"3x3 dilation 2",       2,  8, 12, 12,  8, 3, 3, 1, 1, 2, 2, 1, 0, 0, 2, 2, 2, 2},
    {"dw3x3 dilation 2 same",2, 16, 12, 12, 16, 3, 3, 1, 1, 2, 2, 16, 0, 1, 0, 0, 0, 0},
    {"grouped g4",           2, 16,  8,  8, 32, 3, 3, 1, 1, 1, 1, 4, 1, 0, 1, 1, 1, 1},
    {"stem 3x3 s2 c3 same",  2,  3, 16, 16, 16, 3, 3, 2, 2, 1, 1, 1, 0, 1, 0, 0, 0, 0},
    {"stem 3x3 s2 c3 17",    2,  3, 17, 15, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    {"SE reduce 1x1 map",    4, 48,  1,  1, 12, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {"SE expand 1x1 map",    4, 12,  1,  1, 48, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {"SE big 1x1 map",       8, 672, 1,  1, 28, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {"7x7 s1 pad3",          1,  4,  9,  9,  8, 7, 7, 1, 1, 1, 1, 1, 1, 0, 3, 3, 3, 3},
    {"1x3 asym",             2,  8,  6,  9,  8, 1, 3, 1, 2, 1, 1, 1, 0, 0, 0, 0, 0, 2},
};

/* Depthwise stride-1 3x3 and 5x5 convolutions over maps from 1x1 to 20x20:
 * 'same' padding, asymmetric padding (all of it on one side) and partial
 * padding, channel counts with and without a partial vector, with and
 * without bias, one to three samples; one 5x5 case with a channel count the
 * cpu backend's stride-1 5x5 kernel splits into channel chunks, and cases
 * large enough for two threads. */
static void test_dw_s1(dcl_backend *be) {
    static const int sizes[][2] = {{1, 1}, {2, 3}, {3, 3}, {4, 6}, {5, 5}, {7, 2}, {9, 9},
                                   {10, 10}, {13, 11}, {16, 16}, {19, 7}, {20, 20}};
    static const int chans[] = {13, 20, 8, 36, 3, 61, 1};
    char name[96];
    int i = 0;
    for (int K = 3; K <= 5; K += 2)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int pv = 0; pv < 3; pv++, i++) {
                conv_case cc = {0};
                cc.n = 1 + i % 3;
                cc.ci = cc.co = cc.groups = chans[i % 7];
                cc.hi = sizes[s][0]; cc.wi = sizes[s][1];
                cc.kh = cc.kw = K; cc.sh = cc.sw = cc.dh = cc.dw = 1;
                cc.bias = i & 1;
                if (pv == 0) cc.same = 1;
                else if (pv == 1) { cc.pt = 0; cc.pb = K - 1; cc.pl = K - 1; cc.pr = 0; }
                else { cc.pt = K - 1; cc.pb = 1; cc.pl = 1; cc.pr = K - 2; }
                if (cc.hi + cc.pt + cc.pb < K || cc.wi + cc.pl + cc.pr < K) continue;
                snprintf(name, sizeof name, "dw%dx%d s1 %dx%d c%d n%d pad%d%s", K, K, cc.hi, cc.wi, cc.ci, cc.n, pv,
                         cc.bias ? " bias" : "");
                cc.name = name;
                test_conv(be, &cc);
            }
    static const conv_case big[] = {
        {"dw5x5 s1 same c421 chunks", 1, 421, 20, 20, 421, 5, 5, 1, 1, 1, 1, 421, 1, 1, 0, 0, 0, 0},
        {"dw3x3 s1 asym c61 threads", 2, 61, 20, 19, 61, 3, 3, 1, 1, 1, 1, 61, 0, 0, 0, 2, 2, 0},
        {"dw5x5 s1 asym c61 threads", 2, 61, 20, 19, 61, 5, 5, 1, 1, 1, 1, 61, 1, 0, 0, 4, 4, 0},
        /* outputs of 4 MB and more: the stride-1 kernel's tiles-outer walk
         * with streaming stores (cpu_dwconv.c s1_mode) */
        {"dw3x3 s1 same c96 8MB tiles outer", 2, 96, 110, 100, 96, 3, 3, 1, 1, 1, 1, 96, 1, 1, 0, 0, 0, 0},
        {"dw5x5 s1 asym c40 8MB tiles outer", 4, 40, 121, 109, 40, 5, 5, 1, 1, 1, 1, 40, 0, 0, 0, 4, 4, 0},
        /* stride 2 with inputs (backward data) or outputs of 4 MB and more:
         * the gather kernels' prefetch and streaming stores */
        {"dw3x3 s2 same c96 8MB", 2, 96, 150, 149, 96, 3, 3, 2, 2, 1, 1, 96, 1, 1, 0, 0, 0, 0},
        {"dw5x5 s2 same c64 8MB out", 4, 64, 184, 183, 64, 5, 5, 2, 2, 1, 1, 64, 0, 1, 0, 0, 0, 0},
        {"dw3x3 s2 same c40 8MB", 2, 40, 190, 191, 40, 3, 3, 2, 2, 1, 1, 40, 1, 1, 0, 0, 0, 0},
    };
    for (size_t j = 0; j < sizeof big / sizeof big[0]; j++) test_conv(be, &big[j]);
}

/* ------------------------------------------------------------ bn --------- */

static void test_bn(dcl_backend *be, int64_t M, int C, float offset) {
    if (!has(be, (void *)be->bn_fwd_train, DCL_OP_BN, NULL, "bn")) return;
    size_t n = (size_t)M * C;
    float *x = rnd(n, -2, 2), *g = rnd(C, 0.5f, 1.5f), *bt = rnd(C, -1, 1), *dy = rnd(n, -1, 1);
    for (size_t i = 0; i < n; i++) x[i] += offset + (float)(i % C) * 0.1f;
    float *rm = rnd(C, -1, 1), *rv = rnd(C, 0.5f, 2);
    float eps = 1e-3f;
    char what[128];
    float *y = filled(n, 0), *mean = filled(C, 0), *var = filled(C, 0), *is = filled(C, 0);
    CHECK_OK(REF->bn_fwd_train(REF, M, C, y, mean, var, is, x, g, bt, eps));
    tbuf tx = tb_new(be, n, x), tg = tb_new(be, C, g), tbt = tb_new(be, C, bt), ty = tb_new(be, n, NULL);
    tbuf tm = tb_new(be, C, NULL), tv = tb_new(be, C, NULL), tis = tb_new(be, C, NULL);
    CHECK_OK(be->bn_fwd_train(be, M, C, P(&ty), P(&tm), P(&tv), P(&tis), P(&tx), P(&tg), P(&tbt), eps));
    snprintf(what, sizeof what, "bn_fwd_train M=%lld C=%d y", (long long)M, C);
    close_rel(what, tb_get(&ty, what), y, n, 1e-4);
    snprintf(what, sizeof what, "bn_fwd_train M=%lld C=%d mean", (long long)M, C);
    close_elem(what, tb_get(&tm, what), mean, C, 1e-6, 1e-5);
    snprintf(what, sizeof what, "bn_fwd_train M=%lld C=%d var", (long long)M, C);
    close_elem(what, tb_get(&tv, what), var, C, 1e-7, 1e-5);
    snprintf(what, sizeof what, "bn_fwd_train M=%lld C=%d invstd", (long long)M, C);
    close_elem(what, tb_get(&tis, what), is, C, 0, 1e-5);

    if (be->bn_fwd_infer) {
        float *yi = filled(n, 0);
        CHECK_OK(REF->bn_fwd_infer(REF, M, C, yi, x, g, bt, rm, rv, eps));
        tbuf trm = tb_new(be, C, rm), trv = tb_new(be, C, rv), tyi = tb_new(be, n, NULL);
        CHECK_OK(be->bn_fwd_infer(be, M, C, P(&tyi), P(&tx), P(&tg), P(&tbt), P(&trm), P(&trv), eps));
        snprintf(what, sizeof what, "bn_fwd_infer M=%lld C=%d", (long long)M, C);
        close_elem(what, tb_get(&tyi, what), yi, n, 1e-5, 1e-5);
        tb_free(&trm); tb_free(&trv); tb_free(&tyi); free(yi);
    }
    if (be->bn_bwd) {
        float *dg0 = rnd(C, -1, 1), *db0 = rnd(C, -1, 1);
        float *dx = filled(n, 0), *dg = dup(dg0, C), *db = dup(db0, C);
        CHECK_OK(REF->bn_bwd(REF, M, C, dx, dg, db, dy, x, mean, is, g));
        tbuf tdy = tb_new(be, n, dy), tdx = tb_new(be, n, NULL), tdg = tb_new(be, C, dg0), tdb = tb_new(be, C, db0);
        tbuf tmean = tb_new(be, C, mean), tinv = tb_new(be, C, is);
        CHECK_OK(be->bn_bwd(be, M, C, P(&tdx), P(&tdg), P(&tdb), P(&tdy), P(&tx), P(&tmean), P(&tinv), P(&tg)));
        snprintf(what, sizeof what, "bn_bwd M=%lld C=%d dx", (long long)M, C);
        close_rel(what, tb_get(&tdx, what), dx, n, 1e-4);
        snprintf(what, sizeof what, "bn_bwd M=%lld C=%d dgamma (accumulated)", (long long)M, C);
        close_rel(what, tb_get(&tdg, what), dg, C, 1e-4);
        snprintf(what, sizeof what, "bn_bwd M=%lld C=%d dbeta (accumulated)", (long long)M, C);
        close_rel(what, tb_get(&tdb, what), db, C, 1e-4);
        tb_free(&tdy); tb_free(&tdx); tb_free(&tdg); tb_free(&tdb); tb_free(&tmean); tb_free(&tinv);
        free(dg0); free(db0); free(dx); free(dg); free(db);
    }
    tb_free(&tx); tb_free(&tg); tb_free(&tbt); tb_free(&ty); tb_free(&tm); tb_free(&tv); tb_free(&tis);
    free(x); free(g); free(bt); free(dy); free(rm); free(rv); free(y); free(mean); free(var); free(is);
}

/* -------------------------------------------------------- activations ---- */

static void test_act(dcl_backend *be) {
    if (!has(be, (void *)be->act_fwd, DCL_OP_ACT, NULL, "act")) return;
    const int64_t n = 100003;
    static const char *names[] = {"none", "relu", "silu", "sigmoid"};
    float *x = rnd(n, -12, 12), *dy = rnd(n, -1, 1);
    for (int i = 0; i < 64; i++) x[i] = -100.0f + 3.2f * i; /* saturated tails */
    x[100] = 0.0f;
    tbuf tx = tb_new(be, n, x), tdy = tb_new(be, n, dy);
    for (int a = DCL_ACT_NONE; a <= DCL_ACT_SIGMOID; a++) {
        char what[96];
        float *y = filled(n, 0), *dx = filled(n, 0);
        CHECK_OK(REF->act_fwd(REF, (dcl_act)a, n, y, x));
        CHECK_OK(REF->act_bwd(REF, (dcl_act)a, n, dx, dy, x, y));
        tbuf ty = tb_new(be, n, NULL), tdx = tb_new(be, n, NULL), tyr = tb_new(be, n, y);
        CHECK_OK(be->act_fwd(be, (dcl_act)a, n, P(&ty), P(&tx)));
        snprintf(what, sizeof what, "act_fwd %s", names[a]);
        close_elem(what, tb_get(&ty, what), y, n, 1e-6, 1e-5);
        if (be->act_bwd) {
            CHECK_OK(be->act_bwd(be, (dcl_act)a, n, P(&tdx), P(&tdy), P(&tx), P(&tyr)));
            snprintf(what, sizeof what, "act_bwd %s", names[a]);
            close_elem(what, tb_get(&tdx, what), dx, n, 1e-6, 1e-5);
        }
        /* in place: y = f(y) */
        tbuf tip = tb_new(be, n, x);
        CHECK_OK(be->act_fwd(be, (dcl_act)a, n, P(&tip), P(&tip)));
        snprintf(what, sizeof what, "act_fwd %s in place", names[a]);
        close_elem(what, tb_get(&tip, what), y, n, 1e-6, 1e-5);
        tb_free(&tip); tb_free(&ty); tb_free(&tdx); tb_free(&tyr); free(y); free(dx);
    }
    tb_free(&tx); tb_free(&tdy); free(x); free(dy);
}

static void test_exp_accuracy(void) {
    double worst = 0; float at = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double want = exp((double)x), got = cpu_expf_ref(x);
        double r = fabs(got - want) / want;
        if (r > worst) { worst = r; at = x; }
    }
    printf("  exp approximation: max relative error %.3g (at x=%g)\n", worst, at);
    CHECK(worst < 1e-6, "exp approximation relative error %.3g at x=%g exceeds 1e-6", worst, at);
}

/* -------------------------------------------------------------- prelu ---- */

static void test_prelu(dcl_backend *be, int64_t M, int C) {
    if (!has(be, (void *)be->prelu_fwd, DCL_OP_PRELU, NULL, "prelu")) return;
    size_t n = (size_t)M * C;
    float *x = rnd(n, -2, 2), *al = rnd(C, 0.05f, 0.5f), *dy = rnd(n, -1, 1), *da0 = rnd(C, -1, 1);
    char what[96];
    float *y = filled(n, 0), *dx = filled(n, 0), *da = dup(da0, C);
    CHECK_OK(REF->prelu_fwd(REF, M, C, y, x, al));
    CHECK_OK(REF->prelu_bwd(REF, M, C, dx, da, dy, x, al));
    tbuf tx = tb_new(be, n, x), tal = tb_new(be, C, al), tdy = tb_new(be, n, dy), ty = tb_new(be, n, NULL);
    tbuf tdx = tb_new(be, n, NULL), tda = tb_new(be, C, da0);
    CHECK_OK(be->prelu_fwd(be, M, C, P(&ty), P(&tx), P(&tal)));
    snprintf(what, sizeof what, "prelu_fwd C=%d", C);
    close_elem(what, tb_get(&ty, what), y, n, 1e-6, 1e-6);
    if (be->prelu_bwd) {
        CHECK_OK(be->prelu_bwd(be, M, C, P(&tdx), P(&tda), P(&tdy), P(&tx), P(&tal)));
        snprintf(what, sizeof what, "prelu_bwd C=%d dx", C);
        close_elem(what, tb_get(&tdx, what), dx, n, 1e-6, 1e-6);
        snprintf(what, sizeof what, "prelu_bwd C=%d dalpha (accumulated)", C);
        close_rel(what, tb_get(&tda, what), da, C, 1e-4);
    }
    tb_free(&tx); tb_free(&tal); tb_free(&tdy); tb_free(&ty); tb_free(&tdx); tb_free(&tda);
    free(x); free(al); free(dy); free(da0); free(y); free(dx); free(da);
}

/* ------------------------------------------------------------ pooling ---- */

static void test_pool(dcl_backend *be, const char *name, int n, int c, int hi, int wi, int k, int s, int pad,
                      int ceil_mode, int include_pad, dcl_pool_kind kind) {
    dcl_pool_desc d = {0};
    d.n = n; d.c = c; d.hi = hi; d.wi = wi; d.kh = d.kw = k; d.sh = d.sw = s;
    d.pt = d.pb = d.pl = d.pr = pad; d.ceil_mode = ceil_mode; d.count_include_pad = include_pad; d.kind = kind;
    CHECK_OK(dcl_pool_desc_finish(&d));
    if (!has(be, (void *)be->pool_fwd, DCL_OP_POOL, &d, name)) return;
    size_t nx = (size_t)n * c * hi * wi, ny = (size_t)n * c * d.ho * d.wo;
    float *x = rnd(nx, -3, 3), *dy = rnd(ny, -1, 1);
    float *y = filled(ny, 0), *dx = filled(nx, 0);
    CHECK_OK(REF->pool_fwd(REF, &d, y, x));
    CHECK_OK(REF->pool_bwd(REF, &d, dx, dy, x, y));
    tbuf tx = tb_new(be, nx, x), ty = tb_new(be, ny, NULL), tdy = tb_new(be, ny, dy), tdx = tb_new(be, nx, NULL);
    tbuf tyr = tb_new(be, ny, y);
    char what[128];
    CHECK_OK(be->pool_fwd(be, &d, P(&ty), P(&tx)));
    snprintf(what, sizeof what, "pool %s fwd", name);
    close_elem(what, tb_get(&ty, what), y, ny, 1e-6, 1e-5);
    if (be->pool_bwd) {
        CHECK_OK(be->pool_bwd(be, &d, P(&tdx), P(&tdy), P(&tx), P(&tyr)));
        snprintf(what, sizeof what, "pool %s bwd", name);
        close_elem(what, tb_get(&tdx, what), dx, nx, 1e-6, 1e-5);
    }
    tb_free(&tx); tb_free(&ty); tb_free(&tdy); tb_free(&tdx); tb_free(&tyr);
    free(x); free(dy); free(y); free(dx);
}

/* ---------------------------------------------------- gap, se, linear ---- */

static void test_gap_se(dcl_backend *be, int N, int HW, int C) {
    size_t n = (size_t)N * HW * C, ns = (size_t)N * C;
    float *x = rnd(n, -1, 3), *s = rnd(ns, 0, 1), *dy = rnd(n, -1, 1), *gs = rnd(ns, -1, 1);
    char what[128];
    tbuf tx = tb_new(be, n, x), ts = tb_new(be, ns, s), tdy = tb_new(be, n, dy), tgs = tb_new(be, ns, gs);
    if (has(be, (void *)be->gap_fwd, DCL_OP_GAP, NULL, "gap")) {
        float *y = filled(ns, 0), *dx = filled(n, 0);
        CHECK_OK(REF->gap_fwd(REF, N, HW, C, y, x));
        CHECK_OK(REF->gap_bwd(REF, N, HW, C, dx, gs));
        tbuf ty = tb_new(be, ns, NULL), tdx = tb_new(be, n, NULL);
        CHECK_OK(be->gap_fwd(be, N, HW, C, P(&ty), P(&tx)));
        snprintf(what, sizeof what, "gap_fwd N=%d HW=%d C=%d", N, HW, C);
        close_rel(what, tb_get(&ty, what), y, ns, 1e-5);
        if (be->gap_bwd) {
            CHECK_OK(be->gap_bwd(be, N, HW, C, P(&tdx), P(&tgs)));
            snprintf(what, sizeof what, "gap_bwd N=%d HW=%d C=%d", N, HW, C);
            close_elem(what, tb_get(&tdx, what), dx, n, 1e-7, 1e-5);
        }
        tb_free(&ty); tb_free(&tdx); free(y); free(dx);
    }
    if (has(be, (void *)be->mul_bcast_fwd, DCL_OP_MUL_BCAST, NULL, "mul_bcast")) {
        float *y = filled(n, 0), *dx = filled(n, 0), *ds = filled(ns, 0);
        CHECK_OK(REF->mul_bcast_fwd(REF, N, HW, C, y, x, s));
        CHECK_OK(REF->mul_bcast_bwd(REF, N, HW, C, dx, ds, dy, x, s));
        tbuf ty = tb_new(be, n, NULL), tdx = tb_new(be, n, NULL), tds = tb_new(be, ns, NULL);
        CHECK_OK(be->mul_bcast_fwd(be, N, HW, C, P(&ty), P(&tx), P(&ts)));
        snprintf(what, sizeof what, "mul_bcast_fwd N=%d HW=%d C=%d", N, HW, C);
        close_elem(what, tb_get(&ty, what), y, n, 1e-7, 1e-6);
        if (be->mul_bcast_bwd) {
            CHECK_OK(be->mul_bcast_bwd(be, N, HW, C, P(&tdx), P(&tds), P(&tdy), P(&tx), P(&ts)));
            snprintf(what, sizeof what, "mul_bcast_bwd N=%d HW=%d C=%d dx", N, HW, C);
            close_elem(what, tb_get(&tdx, what), dx, n, 1e-7, 1e-6);
            snprintf(what, sizeof what, "mul_bcast_bwd N=%d HW=%d C=%d ds", N, HW, C);
            close_rel(what, tb_get(&tds, what), ds, ns, 1e-4);
        }
        tb_free(&ty); tb_free(&tdx); tb_free(&tds); free(y); free(dx); free(ds);
    }
    tb_free(&tx); tb_free(&ts); tb_free(&tdy); tb_free(&tgs); free(x); free(s); free(dy); free(gs);
}

static void test_linear(dcl_backend *be, int M, int K, int O, int bias, int want_dx) {
    if (!has(be, (void *)be->linear_fwd, DCL_OP_LINEAR, NULL, "linear")) return;
    float *x = rnd((size_t)M * K, -1, 1), *w = rnd((size_t)O * K, -0.2f, 0.2f), *b = rnd(O, -1, 1);
    float *dy = rnd((size_t)M * O, -1, 1), *dw0 = rnd((size_t)O * K, -1, 1), *db0 = rnd(O, -1, 1);
    float *y = filled((size_t)M * O, 0), *dx = filled((size_t)M * K, 0), *dw = dup(dw0, (size_t)O * K), *db = dup(db0, O);
    CHECK_OK(REF->linear_fwd(REF, M, K, O, y, x, w, bias ? b : NULL));
    CHECK_OK(REF->linear_bwd(REF, M, K, O, want_dx ? dx : NULL, dw, bias ? db : NULL, dy, x, w));
    tbuf tx = tb_new(be, (size_t)M * K, x), tw = tb_new(be, (size_t)O * K, w), tb = tb_new(be, O, b);
    tbuf ty = tb_new(be, (size_t)M * O, NULL), tdy = tb_new(be, (size_t)M * O, dy), tdx = tb_new(be, (size_t)M * K, NULL);
    tbuf tdw = tb_new(be, (size_t)O * K, dw0), tdb = tb_new(be, O, db0);
    char what[128];
    CHECK_OK(be->linear_fwd(be, M, K, O, P(&ty), P(&tx), P(&tw), bias ? P(&tb) : NULL));
    snprintf(what, sizeof what, "linear_fwd %dx%dx%d bias=%d", M, K, O, bias);
    close_rel(what, tb_get(&ty, what), y, (size_t)M * O, 1e-4);
    if (be->linear_bwd) {
        CHECK_OK(be->linear_bwd(be, M, K, O, want_dx ? P(&tdx) : NULL, P(&tdw), bias ? P(&tdb) : NULL, P(&tdy), P(&tx), P(&tw)));
        snprintf(what, sizeof what, "linear_bwd %dx%dx%d dx", M, K, O);
        const float *gdx = tb_get(&tdx, what);
        if (want_dx) close_rel(what, gdx, dx, (size_t)M * K, 1e-4);
        else CHECK(gdx[0] == GARB && gdx[M * K - 1] == GARB, "%s linear_bwd wrote dx although it was NULL", TGT);
        snprintf(what, sizeof what, "linear_bwd %dx%dx%d dw (accumulated)", M, K, O);
        close_rel(what, tb_get(&tdw, what), dw, (size_t)O * K, 1e-4);
        snprintf(what, sizeof what, "linear_bwd %dx%dx%d db (accumulated)", M, K, O);
        close_rel(what, tb_get(&tdb, what), db, O, 1e-4);
    }
    tb_free(&tx); tb_free(&tw); tb_free(&tb); tb_free(&ty); tb_free(&tdy); tb_free(&tdx); tb_free(&tdw); tb_free(&tdb);
    free(x); free(w); free(b); free(dy); free(dw0); free(db0); free(y); free(dx); free(dw); free(db);
}

/* ------------------------------------------------------- add, mask ------- */

static void test_add_mask(dcl_backend *be) {
    const int64_t rows = 37, cols = 1001, n = rows * cols;
    float *a = rnd(n, -1, 1), *b = rnd(n, -1, 1), *m = rnd(n, 0, 1), *mr = rnd(rows, 0, 1);
    for (int64_t i = 0; i < n; i++) m[i] = m[i] < 0.3f ? 0.0f : 1.0f;
    for (int64_t i = 0; i < rows; i++) mr[i] = mr[i] < 0.3f ? 0.0f : 1.0f;
    char what[64];
    tbuf ta = tb_new(be, n, a), tb = tb_new(be, n, b), tm = tb_new(be, n, m), tmr = tb_new(be, rows, mr);
    if (be->add) {
        float *y = filled(n, 0);
        CHECK_OK(REF->add(REF, n, y, a, b));
        tbuf ty = tb_new(be, n, NULL);
        CHECK_OK(be->add(be, n, P(&ty), P(&ta), P(&tb)));
        snprintf(what, sizeof what, "add");
        close_elem(what, tb_get(&ty, what), y, n, 1e-7, 1e-7);
        tbuf tal = tb_new(be, n, a); /* y aliases a */
        CHECK_OK(be->add(be, n, P(&tal), P(&tal), P(&tb)));
        snprintf(what, sizeof what, "add in place");
        close_elem(what, tb_get(&tal, what), y, n, 1e-7, 1e-7);
        tb_free(&ty); tb_free(&tal); free(y);
    }
    if (be->scale_mask) {
        for (int per_row = 0; per_row <= 1; per_row++) {
            float *y = filled(n, 0);
            CHECK_OK(REF->scale_mask(REF, rows, cols, y, a, per_row ? mr : m, per_row, 1.25f));
            tbuf ty = tb_new(be, n, NULL);
            CHECK_OK(be->scale_mask(be, rows, cols, P(&ty), P(&ta), per_row ? P(&tmr) : P(&tm), per_row, 1.25f));
            snprintf(what, sizeof what, "scale_mask per_row=%d", per_row);
            close_elem(what, tb_get(&ty, what), y, n, 1e-7, 1e-6);
            tb_free(&ty); free(y);
        }
    }
    tb_free(&ta); tb_free(&tb); tb_free(&tm); tb_free(&tmr); free(a); free(b); free(m); free(mr);
}

/* ------------------------------------------------------ optimisers ----- */

/* Adam / AdamW and SGD steps against the host versions the reference backend
 * gets from dcl_backend_fill_host_extras: several steps with changing
 * gradients and learning rates, n not a multiple of the vector width (and
 * above the size where the cpu backend splits the range over threads).
 * Host backends compute the same expression in the same order, so only
 * multiply-add contraction differs: 1e-6 relative, 1e-7 * rms absolute
 * (m and v pass through zero). */
static void test_optim(dcl_backend *be) {
    if (!be->adam || !be->sgd) { printf("  %s: adam/sgd not provided, skipped\n", TGT); return; }
    const double rtol = be->is_host ? 1e-6 : 1e-5;
    static const int64_t sizes[] = {13, 100003};
    char what[128];
    for (int si = 0; si < 2; si++) {
        const int64_t n = sizes[si];
        float *p0 = rnd(n, -1, 1);
        for (int64_t i = 0; i < n; i += 97) p0[i] = 0.0f;
        for (int mode = 0; mode < 4; mode++) {
            const int decoupled = mode & 1;
            const float wd = (mode & 2) ? 0.05f : 0.0f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f;
            float *p = dup(p0, n), *m = filled(n, 0), *v = filled(n, 0);
            tbuf tp = tb_new(be, n, p0), tm = tb_new(be, n, m), tv = tb_new(be, n, v);
            for (int step = 1; step <= 5; step++) {
                float *g = rnd(n, -1, 1);
                for (int64_t i = step; i < n; i += 53) g[i] = 0.0f;
                const float lr = 1e-2f / step;
                const float bc1 = 1.0f - (float)pow(b1, step), bc2 = 1.0f - (float)pow(b2, step);
                tbuf tg = tb_new(be, n, g);
                CHECK_OK(REF->adam(REF, n, p, m, v, g, lr, b1, b2, eps, wd, decoupled, bc1, bc2));
                CHECK_OK(be->adam(be, n, P(&tp), P(&tm), P(&tv), P(&tg), lr, b1, b2, eps, wd, decoupled, bc1, bc2));
                const char *nm = decoupled ? "adamw" : "adam";
                snprintf(what, sizeof what, "%s n=%lld wd=%g step %d p", nm, (long long)n, wd, step);
                close_elem(what, tb_get(&tp, what), p, n, rtol * 0.1 * rms(p, n), rtol);
                snprintf(what, sizeof what, "%s n=%lld wd=%g step %d m", nm, (long long)n, wd, step);
                close_elem(what, tb_get(&tm, what), m, n, rtol * 0.1 * rms(m, n), rtol);
                snprintf(what, sizeof what, "%s n=%lld wd=%g step %d v", nm, (long long)n, wd, step);
                close_elem(what, tb_get(&tv, what), v, n, rtol * 0.1 * rms(v, n), rtol);
                snprintf(what, sizeof what, "%s n=%lld wd=%g grad", nm, (long long)n, wd);
                close_elem(what, tb_get(&tg, what), g, n, 1e-30, 0);
                tb_free(&tg); free(g);
            }
            tb_free(&tp); tb_free(&tm); tb_free(&tv); free(p); free(m); free(v);
        }
        /* SGD: momentum 0 (buf left as it is), momentum with and without
         * nesterov, weight decay on and off */
        for (int mode = 0; mode < 6; mode++) {
            const float mu = mode < 2 ? 0.0f : 0.9f, wd = (mode & 1) ? 1e-3f : 0.0f;
            const int nesterov = mode >= 4;
            float *p = dup(p0, n), *buf = filled(n, GARB);
            tbuf tp = tb_new(be, n, p0), tb = tb_new(be, n, NULL);
            for (int step = 1; step <= 4; step++) {
                float *g = rnd(n, -1, 1);
                const float lr = 0.1f / step;
                tbuf tg = tb_new(be, n, g);
                CHECK_OK(REF->sgd(REF, n, p, buf, g, lr, mu, wd, nesterov, step == 1));
                CHECK_OK(be->sgd(be, n, P(&tp), P(&tb), P(&tg), lr, mu, wd, nesterov, step == 1));
                snprintf(what, sizeof what, "sgd n=%lld mu=%g wd=%g nesterov=%d step %d p", (long long)n, mu, wd, nesterov, step);
                close_elem(what, tb_get(&tp, what), p, n, rtol * 0.1 * rms(p, n), rtol);
                snprintf(what, sizeof what, "sgd n=%lld mu=%g wd=%g nesterov=%d step %d buf", (long long)n, mu, wd, nesterov, step);
                close_elem(what, tb_get(&tb, what), buf, n, rtol * 0.1 * rms(buf, n), rtol);
                tb_free(&tg); free(g);
            }
            tb_free(&tp); tb_free(&tb); free(p); free(buf);
        }
        free(p0);
    }
}

/* ------------------------------------------------------------- driver ---- */

static void run_kernels(dcl_backend *be) {
    test_bn(be, 98, 24, 0.0f);
    test_bn(be, 6000, 40, 30.0f);
    test_bn(be, 5, 7, 1.0f);
    test_bn(be, 3001, 13, -4.0f);
    test_act(be);
    test_prelu(be, 4000, 10);
    test_prelu(be, 30000, 1);
    test_pool(be, "max 3x3 s2 pad1", 2, 10, 11, 11, 3, 2, 1, 0, 1, DCL_POOL_MAX);
    test_pool(be, "max 2x2 s2 ceil", 2, 16, 11, 9, 2, 2, 0, 1, 1, DCL_POOL_MAX);
    test_pool(be, "max 3x3 s2 ceil", 1, 28, 23, 23, 3, 2, 0, 1, 1, DCL_POOL_MAX);
    test_pool(be, "avg 3x3 s1 pad1 incl", 2, 12, 8, 8, 3, 1, 1, 0, 1, DCL_POOL_AVG);
    test_pool(be, "avg 3x3 s2 pad1 excl", 2, 12, 9, 9, 3, 2, 1, 0, 0, DCL_POOL_AVG);
    test_pool(be, "avg 2x2 s2 ceil incl", 2, 12, 9, 9, 2, 2, 0, 1, 1, DCL_POOL_AVG);
    test_gap_se(be, 4, 49, 40);
    test_gap_se(be, 3, 1000, 24);
    test_gap_se(be, 1, 1, 96);
    test_gap_se(be, 2, 300, 13);
    test_linear(be, 8, 1792, 2, 1, 1);
    test_linear(be, 64, 300, 200, 1, 1);
    test_linear(be, 64, 300, 200, 0, 0);
    test_linear(be, 8, 1792, 1000, 1, 1);   /* a classifier head: the split products */
    test_linear(be, 65, 300, 200, 1, 1);    /* more rows: OpenBLAS */
    test_linear(be, 3, 5, 7, 0, 1);
    test_add_mask(be);
    test_optim(be);
}

static void run_all(dcl_backend *be, const char *label) {
    TGT = label;
    int before = check_failed_;
    double t0 = dcl_now();
    for (size_t i = 0; i < sizeof CONVS / sizeof CONVS[0]; i++) test_conv(be, &CONVS[i]);
    test_dw_s1(be);
    run_kernels(be);
    printf("%s: %s (%.1fs)\n", label, check_failed_ == before ? "all ops match ref" : "MISMATCHES", dcl_now() - t0);
}

/* a depthwise descriptor: n samples, C channels, HW x HW, K x K, stride S,
 * 'same' padding */
static void dw_shape(dcl_conv_desc *dw, int n, int C, int HW, int K, int S) {
    memset(dw, 0, sizeof *dw);
    dw->n = n;
    dw->ci = dw->co = dw->groups = C;
    dw->hi = dw->wi = HW;
    dw->kh = dw->kw = K;
    dw->sh = dw->sw = S;
    dw->dh = dw->dw = 1;
    dcl_same_pad(dw->hi, dw->kh, S, 1, &dw->pt, &dw->pb);
    dcl_same_pad(dw->wi, dw->kw, S, 1, &dw->pl, &dw->pr);
    CHECK_OK(dcl_conv_desc_finish(dw));
}

int main(void) {
    dcl_rng_seed(&RNG, 20240611);
    REF = dcl_backend_ref();
    dcl_backend_fill_host_extras(REF);
    CHECK(REF != NULL, "reference backend: %s", dcl_last_error());
    if (!REF) CHECK_DONE();

    test_exp_accuracy();

    /* the automatic rule: pointwise backward weights (>= 32 input channels)
     * and backward data (many channels, small maps) as sgemm products, the
     * forward, biased and other convolutions through oneDNN's convolution */
    {
        dcl_backend *be = dcl_backend_cpu(2);
        CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
        if (be) {
            dcl_conv_desc pw = {0};
            pw.n = 8; pw.ci = 272; pw.hi = pw.wi = 10; pw.co = 1632; pw.kh = pw.kw = 1;
            pw.sh = pw.sw = pw.dh = pw.dw = 1; pw.groups = 1;
            CHECK_OK(dcl_conv_desc_finish(&pw));
            const cpu_impl *ci = cpu_of(be);
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_W, 0) == CPU_PW_GEMM, "1x1 272->1632 bwd_w: sgemm expected");
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_DATA, 0) == CPU_PW_GEMM, "1x1 272->1632 bwd_data: sgemm expected");
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_FWD, 0) == CPU_PW_CONV, "1x1 272->1632 fwd: convolution expected");
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_W, 1) == CPU_PW_CONV, "1x1 with bias: convolution expected");
            pw.ci = 24; pw.co = 144; pw.hi = pw.wi = 150;
            CHECK_OK(dcl_conv_desc_finish(&pw));
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_W, 0) == CPU_PW_CONV, "1x1 24->144 bwd_w: convolution expected");
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_DATA, 0) == CPU_PW_CONV, "1x1 24->144 bwd_data: convolution expected");
            pw.ci = 64; pw.sh = pw.sw = 2;
            CHECK_OK(dcl_conv_desc_finish(&pw));
            CHECK(cpu_conv_pw_impl(ci, &pw, CPU_CONV_BWD_W, 0) == CPU_PW_CONV, "1x1 stride 2: convolution expected");
            dcl_backend_destroy(be);
        }
    }
#if !defined(__AVX512F__)
    /* the automatic rule for depthwise stride 1 without AVX-512: 5x5
     * backward data, 5x5 forward on 10x10 to 20x20 maps and on outputs of
     * 4 MB and more, 3x3 on outputs of 4 MB and more with 96 channels or
     * more on the own kernel, the rest on oneDNN */
    {
        dcl_backend *be = dcl_backend_cpu(2);
        CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
        if (be) {
            static const struct { int n, C, HW, K, S, dir, own; const char *what; } rule[] = {
                {8, 960, 19, 5, 1, CPU_CONV_BWD_DATA, 1, "5x5 s1 960@19 bwd_data"},
                {8, 960, 19, 5, 1, CPU_CONV_FWD, 1, "5x5 s1 960@19 fwd"},
                {8, 336, 38, 5, 1, CPU_CONV_FWD, 1, "5x5 s1 336@38 (15 MB) fwd"},
                {8, 336, 38, 5, 1, CPU_CONV_BWD_DATA, 1, "5x5 s1 336@38 bwd_data"},
                {8, 336, 38, 3, 1, CPU_CONV_BWD_DATA, 1, "3x3 s1 336@38 (15 MB) bwd_data"},
                {8, 336, 38, 3, 1, CPU_CONV_FWD, 1, "3x3 s1 336@38 (15 MB) fwd"},
                {8, 48, 150, 3, 1, CPU_CONV_FWD, 0, "3x3 s1 48@150 fwd (few channels)"},
                {8, 672, 19, 3, 1, CPU_CONV_BWD_DATA, 1, "3x3 s1 672@19 (7.4 MB) bwd_data"},
                {8, 672, 10, 3, 1, CPU_CONV_BWD_DATA, 0, "3x3 s1 672@10 (2 MB) bwd_data"},
                /* stride 2: the own gather kernels for outputs of 4 MB and more */
                {8, 144, 150, 3, 2, CPU_CONV_FWD, 1, "3x3 s2 144@150 (26 MB out) fwd"},
                {8, 144, 150, 3, 2, CPU_CONV_BWD_DATA, 1, "3x3 s2 144@150 bwd_data"},
                {16, 672, 14, 3, 2, CPU_CONV_FWD, 0, "3x3 s2 672@14 (2 MB out) fwd"},
            };
            cpu_impl *ci = cpu_of(be);
            for (size_t r = 0; r < sizeof rule / sizeof rule[0]; r++) {
                dcl_conv_desc dw;
                dw_shape(&dw, rule[r].n, rule[r].C, rule[r].HW, rule[r].K, rule[r].S);
                CHECK(cpu_conv_layout(ci, &dw, rule[r].dir) == (rule[r].own ? CPU_LAYOUT_DIRECT : CPU_LAYOUT_NHWC),
                      "dw %s: %s expected", rule[r].what, rule[r].own ? "own kernel" : "oneDNN NHWC");
            }
            dcl_backend_destroy(be);
        }
    }
#endif

    static const struct { const char *env, *pw, *label; } modes[] = {
        {"auto", "auto", "cpu"}, {"nhwc", "auto", "cpu(nhwc)"}, {"blocked", "auto", "cpu(blocked)"},
        {"direct", "auto", "cpu(direct)"}, {"auto", "gemm", "cpu(1x1 gemm)"}};
    for (int m = 0; m < 5; m++) {
        setenv("DCL_CPU_CONV_LAYOUT", modes[m].env, 1);
        setenv("DCL_CPU_1X1", modes[m].pw, 1);
        dcl_backend *be = dcl_backend_cpu(2);
        CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
        if (!be) continue;
        CHECK(be->is_host == 1 && strcmp(be->name, "cpu") == 0, "cpu backend identity");
        if (m == 0) run_all(be, modes[m].label);
        else {
            /* layout variants: the convolutions only */
            TGT = modes[m].label;
            int before = check_failed_;
            for (size_t i = 0; i < sizeof CONVS / sizeof CONVS[0]; i++) test_conv(be, &CONVS[i]);
            test_dw_s1(be);
            printf("%s: %s\n", modes[m].label, check_failed_ == before ? "convolutions match ref" : "MISMATCHES");
        }
        dcl_backend_destroy(be);
    }
    unsetenv("DCL_CPU_CONV_LAYOUT");
    unsetenv("DCL_CPU_1X1");

    /* streaming (non-temporal) stores, normally only for outputs beyond the
     * cache size, forced on for every output */
    setenv("DCL_CPU_STREAM_MB", "0.0001", 1);
    {
        dcl_backend *be = dcl_backend_cpu(2);
        CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
        if (be) {
            TGT = "cpu(stream)";
            int before = check_failed_;
            run_kernels(be);
            printf("cpu(stream): %s\n", check_failed_ == before ? "kernels match ref" : "MISMATCHES");
            dcl_backend_destroy(be);
        }
    }
    unsetenv("DCL_CPU_STREAM_MB");

    /* bad input is an error, not a crash */
    {
        dcl_backend *be = dcl_backend_cpu(0);
        if (be) {
            dcl_conv_desc bad = {0};
            bad.n = 1; bad.ci = 3; bad.co = 4; bad.hi = bad.wi = 5; bad.kh = bad.kw = 3; bad.groups = 2;
            float buf[64] = {0};
            CHECK(be->conv_fwd(be, &bad, buf, buf, buf, NULL) != DCL_OK, "invalid conv descriptor accepted");
            CHECK(strlen(dcl_last_error()) > 0, "no error message for invalid conv descriptor");
            CHECK(be->bn_fwd_train(be, 0, 4, buf, buf, buf, buf, buf, buf, buf, 1e-5f) != DCL_OK, "bn with M=0 accepted");
            dcl_backend_destroy(be);
        }
    }

    dcl_backend *cuda = dcl_backend_create("cuda", 0);
    if (cuda) {
        run_all(cuda, "cuda");
        dcl_backend_destroy(cuda);
    } else {
        printf("cuda: skipped (no GPU/CUDA)\n");
    }
    dcl_backend_destroy(REF);
    CHECK_DONE();
}
