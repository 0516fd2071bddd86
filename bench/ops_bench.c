/* Timing of the cpu backend's convolutions and vector kernels at the shapes
 * of EfficientNet-b4 (tf_efficientnet_b4, 299x299, batch 8).
 *
 * For every distinct convolution shape and direction (forward, backward data,
 * backward weights) it times the oneDNN primitive working on NHWC directly, on
 * its preferred blocked layout with reorders to and from NHWC, and (depthwise
 * shapes) the backend's own NHWC depthwise kernels, and reports GFLOPS, the
 * per-kind totals weighted by how often each shape occurs in the network,
 * and what the backend's own choice gives.
 *
 * Build and run (after `make BUILD=build-cpu build-cpu/libdcl.a`):
 *   gcc -O3 -march=native -fopenmp -Iinclude -Isrc bench/ops_bench.c build-cpu/libdcl.a \
 *       -Wl,--as-needed -ldnnl -lopenblas -lavformat -lavcodec -lswscale -lavutil -lpng \
 *       -ljpeg -lcjson -lyaml -lmicrohttpd -lm -lpthread [CUDA libraries as in the Makefile] \
 *       -o build-cpu/ops_bench
 *   build-cpu/ops_bench [threads] [filter]
 * filter: only kinds whose name contains it (1x1, dw3, dw5, stem, se, kernels).
 *   build-cpu/ops_bench [threads] net ARCH SIZE BATCH [train|infer]
 * runs the real network (dcl_effnet_build) on the cpu backend wrapped in a
 * timer and prints where a training step or inference pass spends its time
 * (OPS_BENCH_TOP=N: the N slowest convolution shapes, 14 by default).
 *
 * Measured (oneDNN 2.6.3, 2 threads pinned to 2 cores of an otherwise idle
 * 16-core Intel Xeon VM; the 2-core development VM was too loaded by
 * parallel builds to time).  ms per network pass = sum over the layers of
 * tf_efficientnet_b4 (299, batch 8), GFLOPS in brackets.  oneDNN capped at
 * AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, the ISA of the 2-core AMD Zen 3 machine):
 *
 *   kind    dir        oneDNN NHWC     oneDNN blocked+reorders   own depthwise
 *   stem    fwd          4.2 [112]        8.7 [ 54]
 *           bwd_data    20.3 [ 23]       23.6 [ 20]
 *           bwd_w        7.3 [ 64]       11.1 [ 42]
 *   1x1     fwd        319   [132]      400   [106]
 *           bwd_data   335   [126]      406   [104]
 *           bwd_w      397   [106]      469   [ 90]
 *   SE 1x1 on 1x1 maps (dense product, no oneDNN): 0.9 [36] / 0.9 [35] / 0.7 [47]
 *   dw3 s1  fwd         28.9 [ 33]       52.9 [ 18]         24.6 [ 38]
 *           bwd_data    27.9 [ 34]       61.1 [ 15]         25.8 [ 36]
 *           bwd_w       35.1 [ 27]       67.9 [ 14]         38.4 [ 24]
 *   dw3 s2  fwd          9.0 [ 15]       25.0 [  5]          8.3 [ 16]
 *           bwd_data    12.9 [ 10]       25.1 [  5]         11.1 [ 12]
 *           bwd_w       12.6 [ 11]       27.0 [  5]         10.2 [ 13]
 *   dw5 s1  fwd         25.9 [ 71]       45.0 [ 41]         47.1 [ 39]
 *           bwd_data    35.5 [ 52]       60.3 [ 30]         47.1 [ 39]
 *           bwd_w      249.9 [  7]      811   [  2]         64.0 [ 29]
 *   dw5 s2  fwd          3.2 [ 46]        9.1 [ 17]          4.1 [ 36]
 *           bwd_data     6.0 [ 25]        8.3 [ 18]          3.9 [ 38]
 *           bwd_w       36.2 [  4]       98.7 [  2]          7.3 [ 21]
 *
 * With AVX-512 (native): 1x1 fwd 159 [266] NHWC vs 156 [271] blocked,
 * bwd_data 170 [248] vs 243 [173], bwd_w 176 [240] vs 272 [155]; stem
 * bwd_data 10.8 [43] vs 23.3 [20]; dw3 s1 fwd / bwd_data / bwd_w
 * 12.8 / 15.0 / 17.2 ms NHWC (brdgmm_dw, jit_dw) vs 22.8 / 22.9 / 38.3 own;
 * dw5 s1 bwd_w 253 [7] NHWC (generic jit), 886 [2] blocked (gemm), 66.9 [27]
 * own; dw5 s2 bwd_w 55.0 [3] vs 6.9 [22] own.
 *
 * Hence the backend's choice: oneDNN on NHWC everywhere (no reorders), except
 * depthwise backward-weights when oneDNN has no depthwise kernel for it (5x5),
 * which goes to the own kernel.  Sum over a b4 training step's convolutions
 * (AVX2): 1572 ms all-NHWC, 2728 ms all-blocked, about 1380 ms as chosen.
 *
 * Vector kernels on 8 x 150 x 150 x 144 floats (104 MB), same machine, ms
 * with streaming stores (outputs >= 16 MB) / without: bn_fwd_train 23.3/23.9,
 * bn_fwd_infer 8.5/10.6, bn_bwd 31.7/32.9, silu fwd 13.0/13.7, silu bwd
 * 15.8/16.5, gap bwd 2.7/8.3, mul_bcast fwd 8.0/10.5, mul_bcast bwd
 * 18.1/19.7, add 11.0/13.7. */
#include "dcl/core.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    int count;                 /* layers with this shape in the network */
    int n, ci, hi, co, k, s, g, bias;
    const char *kind;
} shape;

/* tf_efficientnet_b4 at 299, batch 8 (square maps); TF "same" padding */
static const shape B4[] = {
    {1, 8, 3, 299, 48, 3, 2, 1, 0, "stem"},
    {1, 8, 48, 150, 48, 3, 1, 48, 0, "dw3 s1"},
    {1, 8, 24, 150, 24, 3, 1, 24, 0, "dw3 s1"},
    {3, 8, 192, 75, 192, 3, 1, 192, 0, "dw3 s1"},
    {5, 8, 672, 19, 672, 3, 1, 672, 0, "dw3 s1"},
    {1, 8, 1632, 10, 1632, 3, 1, 1632, 0, "dw3 s1"},
    {1, 8, 2688, 10, 2688, 3, 1, 2688, 0, "dw3 s1"},
    {1, 8, 144, 150, 144, 3, 2, 144, 0, "dw3 s2"},
    {1, 8, 336, 38, 336, 3, 2, 336, 0, "dw3 s2"},
    {3, 8, 336, 38, 336, 5, 1, 336, 0, "dw5 s1"},
    {1, 8, 672, 19, 672, 5, 1, 672, 0, "dw5 s1"},
    {5, 8, 960, 19, 960, 5, 1, 960, 0, "dw5 s1"},
    {7, 8, 1632, 10, 1632, 5, 1, 1632, 0, "dw5 s1"},
    {1, 8, 192, 75, 192, 5, 2, 192, 0, "dw5 s2"},
    {1, 8, 960, 19, 960, 5, 2, 960, 0, "dw5 s2"},
    {1, 8, 48, 150, 24, 1, 1, 1, 0, "1x1"},
    {1, 8, 24, 150, 24, 1, 1, 1, 0, "1x1"},
    {1, 8, 24, 150, 144, 1, 1, 1, 0, "1x1"},
    {1, 8, 144, 75, 32, 1, 1, 1, 0, "1x1"},
    {4, 8, 32, 75, 192, 1, 1, 1, 0, "1x1"},
    {3, 8, 192, 75, 32, 1, 1, 1, 0, "1x1"},
    {1, 8, 192, 38, 56, 1, 1, 1, 0, "1x1"},
    {4, 8, 56, 38, 336, 1, 1, 1, 0, "1x1"},
    {3, 8, 336, 38, 56, 1, 1, 1, 0, "1x1"},
    {1, 8, 336, 19, 112, 1, 1, 1, 0, "1x1"},
    {6, 8, 112, 19, 672, 1, 1, 1, 0, "1x1"},
    {5, 8, 672, 19, 112, 1, 1, 1, 0, "1x1"},
    {1, 8, 672, 19, 160, 1, 1, 1, 0, "1x1"},
    {6, 8, 160, 19, 960, 1, 1, 1, 0, "1x1"},
    {5, 8, 960, 19, 160, 1, 1, 1, 0, "1x1"},
    {1, 8, 960, 10, 272, 1, 1, 1, 0, "1x1"},
    {8, 8, 272, 10, 1632, 1, 1, 1, 0, "1x1"},
    {7, 8, 1632, 10, 272, 1, 1, 1, 0, "1x1"},
    {1, 8, 1632, 10, 448, 1, 1, 1, 0, "1x1"},
    {1, 8, 448, 10, 2688, 1, 1, 1, 0, "1x1"},
    {1, 8, 2688, 10, 448, 1, 1, 1, 0, "1x1"},
    {1, 8, 448, 10, 1792, 1, 1, 1, 0, "1x1"},
    {6, 8, 672, 1, 28, 1, 1, 1, 1, "se"},
    {6, 8, 28, 1, 672, 1, 1, 1, 1, "se"},
    {8, 8, 1632, 1, 68, 1, 1, 1, 1, "se"},
    {8, 8, 68, 1, 1632, 1, 1, 1, 1, "se"},
};
#define NSHAPE ((int)(sizeof B4 / sizeof B4[0]))

static float *rnd(size_t n) {
    float *p = dcl_alloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

static dcl_conv_desc make_desc(const shape *s) {
    dcl_conv_desc d = {0};
    d.n = s->n; d.ci = s->ci; d.hi = d.wi = s->hi; d.co = s->co; d.kh = d.kw = s->k;
    d.sh = d.sw = s->s; d.dh = d.dw = 1; d.groups = s->g; d.has_bias = s->bias;
    dcl_same_pad(d.hi, d.kh, d.sh, 1, &d.pt, &d.pb);
    dcl_same_pad(d.wi, d.kw, d.sw, 1, &d.pl, &d.pr);
    dcl_conv_desc_finish(&d);
    return d;
}

/* best-of-reps time of one direction (the machine may be shared) */
static double time_dir(dcl_backend *be, const dcl_conv_desc *d, int dir, float *x, float *w, float *b, float *y,
                       float *dy, float *dx, float *dw, float *db, int reps) {
    double t[9];
    for (int r = -1; r < reps; r++) {
        double t0 = dcl_now();
        dcl_status s = DCL_OK;
        if (dir == CPU_CONV_FWD) s = be->conv_fwd(be, d, y, x, w, d->has_bias ? b : NULL);
        else if (dir == CPU_CONV_BWD_DATA) s = be->conv_bwd_data(be, d, dx, dy, w);
        else s = be->conv_bwd_weights(be, d, dw, d->has_bias ? db : NULL, dy, x);
        double e = dcl_now() - t0;
        if (s != DCL_OK) { fprintf(stderr, "conv failed: %s\n", dcl_last_error()); exit(1); }
        if (r >= 0) t[r] = e;
    }
    double best = t[0];
    for (int i = 1; i < reps; i++) if (t[i] < best) best = t[i];
    return best;
}

static void bench_convs(int threads, const char *filter) {
    static const char *dirs[] = {"fwd", "bwd_data", "bwd_w"};
    /* variants: oneDNN on NHWC, oneDNN on its blocked layout + reorders, own
     * depthwise kernels (depthwise shapes only) */
    static const char *vname[] = {"nhwc", "blocked", "direct"};
    enum { NV = 3 };
    dcl_backend *bv[NV];
    for (int v = 0; v < NV; v++) {
        setenv("DCL_CPU_CONV_LAYOUT", vname[v], 1);
        bv[v] = dcl_backend_cpu(threads);
    }
    unsetenv("DCL_CPU_CONV_LAYOUT");
    dcl_backend *au = dcl_backend_cpu(threads);
    if (!bv[0] || !bv[1] || !bv[2] || !au) { fprintf(stderr, "cpu backend: %s\n", dcl_last_error()); exit(1); }
    static const char *kinds[] = {"stem", "dw3 s1", "dw3 s2", "dw5 s1", "dw5 s2", "1x1", "se"};
    enum { NK = 7 };
    /* totals [kind][dir][variant..., best, auto] weighted by count */
    double tot[NK][3][NV + 2] = {{{0}}}, fl[NK] = {0};
    printf("%-7s %5s %4s %4s %5s %2s %2s %3s | %-8s %8s %6s %8s %6s %8s %6s  %s\n", "kind", "ci", "hw", "co", "k", "s",
           "#", "use", "dir", "nhwc ms", "GF/s", "blk ms", "GF/s", "dir ms", "GF/s", "oneDNN impl (nhwc | blocked)");
    for (int i = 0; i < NSHAPE; i++) {
        const shape *s = &B4[i];
        if (filter && !strstr(s->kind, filter)) continue;
        dcl_conv_desc d = make_desc(s);
        size_t nx = (size_t)d.n * d.ci * d.hi * d.wi, ny = (size_t)d.n * d.co * d.ho * d.wo;
        size_t nw = (size_t)d.co * (d.ci / d.groups) * d.kh * d.kw;
        float *x = rnd(nx), *w = rnd(nw), *b = rnd(d.co), *y = rnd(ny), *dy = rnd(ny), *dx = rnd(nx);
        float *dw = rnd(nw), *db = rnd(d.co);
        double flops = 2.0 * ny * (d.ci / d.groups) * d.kh * d.kw;
        int ki = 0;
        while (ki < NK - 1 && strcmp(kinds[ki], s->kind)) ki++;
        fl[ki] += flops * s->count;
        int reps = flops > 2e8 ? 5 : 9;
        int dwk = cpu_dw_handles(&d);
        for (int dir = 0; dir < 3; dir++) {
            double t[NV];
            for (int v = 0; v < NV; v++)
                t[v] = (v == 2 && !dwk) ? t[0] : time_dir(bv[v], &d, dir, x, w, b, y, dy, dx, dw, db, reps);
            cpu_layout ch = cpu_conv_layout(cpu_of(au), &d, dir);
            const int gemm = cpu_conv_pw_impl(cpu_of(au), &d, dir, dir != CPU_CONV_BWD_DATA && d.has_bias) == CPU_PW_GEMM;
            /* the backend's own choice; a pointwise one run as sgemm is timed itself */
            double ta = gemm ? time_dir(au, &d, dir, x, w, b, y, dy, dx, dw, db, reps)
                      : ch == CPU_LAYOUT_BLOCKED ? t[1] : ch == CPU_LAYOUT_DIRECT ? t[2] : t[0];
            double best = t[0];
            for (int v = 0; v < NV; v++) {
                tot[ki][dir][v] += t[v] * s->count;
                if (t[v] < best) best = t[v];
            }
            tot[ki][dir][NV] += best * s->count;
            tot[ki][dir][NV + 1] += ta * s->count;
            char in[200];
            snprintf(in, sizeof in, "%s | %s", cpu_conv_plan_info(bv[0], &d, dir), cpu_conv_plan_info(bv[1], &d, dir));
            printf("%-7s %5d %4d %4d %3dx%d %2d %2d %3s | %-8s %8.3f %6.1f %8.3f %6.1f %8.3f %6.1f  %s\n", s->kind, s->ci,
                   s->hi, s->co, s->k, s->k, s->s, s->count,
                   gemm ? "gem" : ch == CPU_LAYOUT_BLOCKED ? "blk" : ch == CPU_LAYOUT_DIRECT ? "dir" : "nhw", dirs[dir], t[0] * 1e3,
                   flops / t[0] * 1e-9, t[1] * 1e3, flops / t[1] * 1e-9, t[2] * 1e3, flops / t[2] * 1e-9, in);
            fflush(stdout);
        }
        dcl_free(x); dcl_free(w); dcl_free(b); dcl_free(y); dcl_free(dy); dcl_free(dx); dcl_free(dw); dcl_free(db);
    }
    printf("\nper kind, weighted by layer count (ms per network pass; GFLOPS in brackets)\n");
    printf("%-7s %-8s %16s %16s %16s %16s %16s\n", "kind", "dir", "nhwc", "blocked", "direct", "best-of", "auto table");
    double sum[3][NV + 2] = {{0}};
    for (int k = 0; k < NK; k++) {
        if (fl[k] == 0) continue;
        for (int dir = 0; dir < 3; dir++) {
            printf("%-7s %-8s", kinds[k], dirs[dir]);
            for (int v = 0; v < NV + 2; v++) {
                printf(" %8.2f [%5.1f]", tot[k][dir][v] * 1e3, fl[k] / tot[k][dir][v] * 1e-9);
                sum[dir][v] += tot[k][dir][v];
            }
            printf("\n");
        }
    }
    for (int dir = 0; dir < 3; dir++) {
        printf("%-7s %-8s", "ALL", dirs[dir]);
        for (int v = 0; v < NV + 2; v++) printf(" %16.1f", sum[dir][v] * 1e3);
        printf("\n");
    }
    printf("%-7s %-8s", "ALL", "train");
    for (int v = 0; v < NV + 2; v++) printf(" %16.1f", (sum[0][v] + sum[1][v] + sum[2][v]) * 1e3);
    printf("  (ms, fwd+bwd_data+bwd_w)\n");
    for (int v = 0; v < NV; v++) dcl_backend_destroy(bv[v]);
    dcl_backend_destroy(au);
}

/* memory-bound kernels at the largest b4 activation (8 x 150 x 150 x 144) */
static void bench_kernels(int threads) {
    dcl_backend *be = dcl_backend_cpu(threads);
    dcl_backend *ref = dcl_backend_ref();
    const int N = 8, HW = 150 * 150, C = 144;
    const int64_t M = (int64_t)N * HW, n = M * C;
    float *x = rnd(n), *y = rnd(n), *dy = rnd(n), *dx = rnd(n), *g = rnd(C), *bb = rnd(C);
    float *mean = rnd(C), *var = rnd(C), *is = rnd(C), *s = rnd((size_t)N * C), *ds = rnd((size_t)N * C);
    for (int c = 0; c < C; c++) var[c] = 1.0f + c * 0.01f;
    printf("\nvector kernels on %d x %d x %d floats (%.0f MB per tensor): ms, GB/s moved; [reference backend ms]\n", N, HW,
           C, n * 4e-6);
    for (int pass = 0; pass < 2; pass++) {
        dcl_backend *b = pass ? ref : be;
        double t0, e;
        const char *lab = pass ? "ref" : "cpu";
#define TIME(name, bytes, call)                                                                                  \
    do {                                                                                                         \
        call;                                                                                                    \
        e = 1e30;                                                                                                \
        for (int r_ = 0; r_ < 5; r_++) {                                                                         \
            t0 = dcl_now();                                                                                      \
            call;                                                                                                \
            if (dcl_now() - t0 < e) e = dcl_now() - t0;                                                          \
        }                                                                                                        \
        printf("  %-4s %-22s %8.2f ms %6.1f GB/s\n", lab, name, e * 1e3, (double)(bytes) / e * 1e-9);           \
    } while (0)
        TIME("bn_fwd_train", 12.0 * n, b->bn_fwd_train(b, M, C, y, mean, var, is, x, g, bb, 1e-3f));
        TIME("bn_fwd_infer", 8.0 * n, b->bn_fwd_infer(b, M, C, y, x, g, bb, mean, var, 1e-3f));
        TIME("bn_bwd", 20.0 * n, b->bn_bwd(b, M, C, dx, g, bb, dy, x, mean, is, g));
        TIME("silu fwd", 8.0 * n, b->act_fwd(b, DCL_ACT_SILU, n, y, x));
        TIME("silu bwd", 12.0 * n, b->act_bwd(b, DCL_ACT_SILU, n, dx, dy, x, y));
        TIME("sigmoid fwd", 8.0 * n, b->act_fwd(b, DCL_ACT_SIGMOID, n, y, x));
        TIME("gap fwd", 4.0 * n, b->gap_fwd(b, N, HW, C, s, x));
        TIME("gap bwd", 4.0 * n, b->gap_bwd(b, N, HW, C, dx, s));
        TIME("mul_bcast fwd", 8.0 * n, b->mul_bcast_fwd(b, N, HW, C, y, x, s));
        TIME("mul_bcast bwd", 12.0 * n, b->mul_bcast_bwd(b, N, HW, C, dx, ds, dy, x, s));
        TIME("add", 12.0 * n, b->add(b, n, y, x, dy));
#undef TIME
    }
    dcl_backend_destroy(be);
    dcl_backend_destroy(ref);
    dcl_free(x); dcl_free(y); dcl_free(dy); dcl_free(dx); dcl_free(g); dcl_free(bb);
    dcl_free(mean); dcl_free(var); dcl_free(is); dcl_free(s); dcl_free(ds);
}

/* ---------------------------------------------------------- net profile -- */

enum {
    P_CONV_1X1, P_CONV_DW, P_CONV_SE, P_CONV_OTHER, P_CONVBD_1X1, P_CONVBD_DW, P_CONVBD_SE, P_CONVBD_OTHER,
    P_CONVBW_1X1, P_CONVBW_DW, P_CONVBW_SE, P_CONVBW_OTHER, P_BN_TRAIN, P_BN_INFER, P_BN_BWD, P_ACT_FWD,
    P_ACT_BWD, P_POOL, P_GAP, P_LINEAR, P_MUL_FWD, P_MUL_BWD, P_ADD, P_MASK, P_AXPBY, P_ADAM, P_OTHER, P_N
};
static const char *pname[P_N] = {
    "conv fwd 1x1", "conv fwd dw", "conv fwd se", "conv fwd other", "conv bwd_data 1x1", "conv bwd_data dw",
    "conv bwd_data se", "conv bwd_data other", "conv bwd_w 1x1", "conv bwd_w dw", "conv bwd_w se",
    "conv bwd_w other", "bn fwd train", "bn fwd infer", "bn bwd", "act fwd", "act bwd", "pool", "gap fwd+bwd",
    "linear", "mul_bcast fwd", "mul_bcast bwd", "add", "scale_mask", "axpby", "adam", "other"};
static double ptime[P_N];
static long pcalls[P_N];
static dcl_backend *INNER;

/* per-shape convolution times */
typedef struct shape_time { dcl_conv_desc d; int dir; double t; long calls; } shape_time;
static shape_time stab[512];
static int nstab;
static void shape_add(const dcl_conv_desc *d, int dir, double t) {
    for (int i = 0; i < nstab; i++)
        if (stab[i].dir == dir && !memcmp(&stab[i].d, d, sizeof *d)) { stab[i].t += t; stab[i].calls++; return; }
    if (nstab < 512) stab[nstab++] = (shape_time){*d, dir, t, 1};
}
#define PTC(slot, dir, d, call)               \
    do {                                      \
        double t0_ = dcl_now();               \
        dcl_status s_ = (call);               \
        double e_ = dcl_now() - t0_;          \
        ptime[slot] += e_;                    \
        pcalls[slot]++;                       \
        shape_add(d, dir, e_);                \
        return s_;                            \
    } while (0)

static int conv_kind(const dcl_conv_desc *d) {
    if (d->hi == 1 && d->wi == 1) return 2;
    if (d->groups > 1 && d->groups == d->ci) return 1;
    if (d->kh == 1 && d->kw == 1) return 0;
    return 3;
}
#define PT(slot, call)                        \
    do {                                      \
        double t0_ = dcl_now();               \
        dcl_status s_ = (call);               \
        ptime[slot] += dcl_now() - t0_;       \
        pcalls[slot]++;                       \
        return s_;                            \
    } while (0)

static dcl_status w_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x, const float *w,
                             const float *b) { PTC(P_CONV_1X1 + conv_kind(d), 0, d, INNER->conv_fwd(INNER, d, y, x, w, b)); }
static dcl_status w_conv_bd(dcl_backend *be, const dcl_conv_desc *d, float *dx, const float *dy, const float *w) {
    PTC(P_CONVBD_1X1 + conv_kind(d), 1, d, INNER->conv_bwd_data(INNER, d, dx, dy, w));
}
static dcl_status w_conv_bw(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db, const float *dy,
                            const float *x) { PTC(P_CONVBW_1X1 + conv_kind(d), 2, d, INNER->conv_bwd_weights(INNER, d, dw, db, dy, x)); }
static dcl_status w_bn_ft(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var, float *is,
                          const float *x, const float *g, const float *b, float eps) {
    PT(P_BN_TRAIN, INNER->bn_fwd_train(INNER, M, C, y, mean, var, is, x, g, b, eps));
}
static dcl_status w_bn_fi(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *g, const float *b,
                          const float *rm, const float *rv, float eps) {
    PT(P_BN_INFER, INNER->bn_fwd_infer(INNER, M, C, y, x, g, b, rm, rv, eps));
}
static dcl_status w_bn_b(dcl_backend *be, int64_t M, int C, float *dx, float *dg, float *db, const float *dy,
                         const float *x, const float *mean, const float *is, const float *g) {
    PT(P_BN_BWD, INNER->bn_bwd(INNER, M, C, dx, dg, db, dy, x, mean, is, g));
}
static dcl_status w_af(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) { PT(P_ACT_FWD, INNER->act_fwd(INNER, a, n, y, x)); }
static dcl_status w_ab(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy, const float *x,
                       const float *y) { PT(P_ACT_BWD, INNER->act_bwd(INNER, a, n, dx, dy, x, y)); }
static dcl_status w_pf(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) { PT(P_POOL, INNER->pool_fwd(INNER, d, y, x)); }
static dcl_status w_gf(dcl_backend *be, int N, int HW, int C, float *y, const float *x) { PT(P_GAP, INNER->gap_fwd(INNER, N, HW, C, y, x)); }
static dcl_status w_gb(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) { PT(P_GAP, INNER->gap_bwd(INNER, N, HW, C, dx, dy)); }
static dcl_status w_lf(dcl_backend *be, int M, int K, int O, float *y, const float *x, const float *w, const float *b) {
    PT(P_LINEAR, INNER->linear_fwd(INNER, M, K, O, y, x, w, b));
}
static dcl_status w_lb(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w) { PT(P_LINEAR, INNER->linear_bwd(INNER, M, K, O, dx, dw, db, dy, x, w)); }
static dcl_status w_mf(dcl_backend *be, int N, int HW, int C, float *y, const float *x, const float *sc) {
    PT(P_MUL_FWD, INNER->mul_bcast_fwd(INNER, N, HW, C, y, x, sc));
}
static dcl_status w_mb(dcl_backend *be, int N, int HW, int C, float *dx, float *ds, const float *dy, const float *x,
                       const float *sc) { PT(P_MUL_BWD, INNER->mul_bcast_bwd(INNER, N, HW, C, dx, ds, dy, x, sc)); }
static dcl_status w_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) { PT(P_ADD, INNER->add(INNER, n, y, a, b)); }
static dcl_status w_sm(dcl_backend *be, int64_t r, int64_t c, float *y, const float *x, const float *m, int pr, float sc) {
    PT(P_MASK, INNER->scale_mask(INNER, r, c, y, x, m, pr, sc));
}
static dcl_status w_axpby(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b) {
    PT(P_AXPBY, INNER->axpby(INNER, n, y, a, x, b));
}
static dcl_status w_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *g, float lr, float b1,
                         float b2, float eps, float wd, int dec, float bc1, float bc2) {
    PT(P_ADAM, INNER->adam(INNER, n, p, m, v, g, lr, b1, b2, eps, wd, dec, bc1, bc2));
}

static int bench_net(int threads, const char *arch, int size, int batch, int train) {
    INNER = dcl_backend_cpu(threads);
    if (!INNER) { fprintf(stderr, "cpu backend: %s\n", dcl_last_error()); return 1; }
    dcl_backend_fill_host_extras(INNER);
    dcl_backend wb = *INNER;
    wb.impl = INNER->impl;
    wb.conv_fwd = w_conv_fwd; wb.conv_bwd_data = w_conv_bd; wb.conv_bwd_weights = w_conv_bw;
    wb.bn_fwd_train = w_bn_ft; wb.bn_fwd_infer = w_bn_fi; wb.bn_bwd = w_bn_b; wb.act_fwd = w_af; wb.act_bwd = w_ab;
    wb.pool_fwd = w_pf; wb.gap_fwd = w_gf; wb.gap_bwd = w_gb; wb.linear_fwd = w_lf; wb.linear_bwd = w_lb;
    wb.mul_bcast_fwd = w_mf; wb.mul_bcast_bwd = w_mb; wb.add = w_add; wb.scale_mask = w_sm; wb.axpby = w_axpby;
    wb.adam = w_adam;
    wb.destroy = NULL;
    dcl_effnet_cfg cfg;
    dcl_model *m = NULL;
    dcl_optim *opt = NULL;
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    dcl_status s = dcl_effnet_config(&cfg, arch);
    if (!s) s = dcl_effnet_build(&m, &wb, &cfg);
    if (!s) s = dcl_net_init_params(m->net, &rng);
    if (!s) s = dcl_net_mark_output(m->net, m->logits);
    if (!s) s = dcl_net_plan(m->net, batch, size, size, train);
    if (!s && train) {
        dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
        oc.weight_decay = 1e-5f;
        s = dcl_optim_create(&opt, &wb, dcl_net_params(m->net)->total, &oc);
    }
    size_t nin = (size_t)batch * size * size * 3;
    float *x = malloc(nin * sizeof(float)), *logits = malloc(sizeof(float) * batch * cfg.num_classes);
    float *dlog = malloc(sizeof(float) * batch * cfg.num_classes);
    int *tgt = malloc(sizeof(int) * batch);
    for (size_t i = 0; i < nin; i++) x[i] = (float)dcl_rng_normal(&rng);
    for (int i = 0; i < batch; i++) tgt[i] = (int)dcl_rng_below(&rng, cfg.num_classes);
    const int warm = 1, steps = 3;
    double t0 = 0;
    for (int it = 0; it < warm + steps && !s; it++) {
        if (it == warm) {
            memset(ptime, 0, sizeof ptime);
            memset(pcalls, 0, sizeof pcalls);
            nstab = 0;
            t0 = dcl_now();
        }
        s = dcl_net_set_input(m->net, x);
        if (!s) s = dcl_net_forward(m->net, &rng);
        if (!s) s = dcl_net_value_to_host(m->net, m->logits, logits);
        if (!s && train) {
            float l;
            s = dcl_cross_entropy_fwd_f32(batch, cfg.num_classes, &l, logits, tgt);
            if (!s) s = dcl_cross_entropy_bwd_f32(batch, cfg.num_classes, dlog, 1.0f, logits, tgt);
            if (!s) s = dcl_net_seed_from_host(m->net, m->logits, dlog);
            if (!s) s = dcl_net_zero_grad(m->net);
            if (!s) s = dcl_net_backward(m->net);
            if (!s) s = dcl_optim_step(opt, dcl_net_param_data(m->net), dcl_net_grad_data(m->net), 1e-3f);
        }
    }
    if (s) { fprintf(stderr, "net bench: %s\n", dcl_last_error()); return 1; }
    double step = (dcl_now() - t0) / steps, sum = 0;
    for (int i = 0; i < P_N; i++) sum += ptime[i];
    ptime[P_OTHER] = step * steps - sum;
    printf("%s %dx%d batch %d %s: %.1f ms per step (%.2f img/s), %d threads\n", arch, size, size, batch,
           train ? "train" : "infer", step * 1e3, batch / step, threads);
    for (int i = 0; i < P_N; i++)
        if (ptime[i] > 0)
            printf("  %-22s %8.1f ms %5.1f%%  (%ld calls)\n", pname[i], ptime[i] / steps * 1e3,
                   100.0 * ptime[i] / (step * steps), pcalls[i] / steps);
    /* the slowest convolution shapes */
    static const char *dn[] = {"fwd", "bwd_data", "bwd_w"};
    for (int i = 0; i < nstab; i++)
        for (int j = i + 1; j < nstab; j++)
            if (stab[j].t > stab[i].t) { shape_time z = stab[i]; stab[i] = stab[j]; stab[j] = z; }
    /* OPS_BENCH_TOP=N lists N shapes instead of 14 */
    const int top = getenv("OPS_BENCH_TOP") ? atoi(getenv("OPS_BENCH_TOP")) : 14;
    printf("  slowest convolution shapes (ms per step, GFLOPS):\n");
    for (int i = 0; i < nstab && i < top; i++) {
        const dcl_conv_desc *d = &stab[i].d;
        double fl = 2.0 * d->n * d->co * d->ho * d->wo * (d->ci / d->groups) * d->kh * d->kw * stab[i].calls;
        printf("    %-8s %4d->%-4d %3dx%-3d k%d s%d g%-4d x%-2ld %7.1f ms %6.1f GF/s\n", dn[stab[i].dir], d->ci, d->co,
               d->hi, d->wi, d->kh, d->sh, d->groups, stab[i].calls / steps, stab[i].t / steps * 1e3,
               fl / stab[i].t * 1e-9);
    }
    free(x); free(logits); free(dlog); free(tgt);
    dcl_optim_free(opt);
    dcl_model_free(m);
    dcl_backend_destroy(INNER);
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *filter = argc > 2 ? argv[2] : NULL;
    dcl_log_level = 1;
    if (filter && !strcmp(filter, "net")) {
        if (argc < 6) { fprintf(stderr, "usage: ops_bench THREADS net ARCH SIZE BATCH [train|infer]\n"); return 2; }
        return bench_net(threads, argv[3], atoi(argv[4]), atoi(argv[5]), argc < 7 || strcmp(argv[6], "infer"));
    }
    printf("ops_bench: %d threads, EfficientNet-b4 299x299 batch 8 shapes\n", threads);
    if (!filter || strcmp(filter, "kernels")) bench_convs(threads, filter);
    if (!filter || !strcmp(filter, "kernels")) bench_kernels(threads);
    return 0;
}
