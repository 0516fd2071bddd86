/* Timing of the cpu backend's convolutions and vector kernels at the shapes
 * of EfficientNet-b4 (tf_efficientnet_b4, 299x299, batch 8).
 *
 * For every distinct convolution shape and direction (forward, backward data,
 * backward weights) it times the oneDNN primitive working on NHWC directly, on
 * its preferred blocked layout with reorders to and from NHWC, and (depthwise
 * shapes) the backend's own NHWC depthwise kernels, and reports GFLOPS, the per-kind totals weighted by how often each shape occurs in the
 * network, and what the backend's own per-kind choice gives.
 *
 * Build and run (after `make BUILD=build-cpu build-cpu/libdcl.a`):
 *   gcc -O3 -march=native -fopenmp -Iinclude -Isrc bench/ops_bench.c build-cpu/libdcl.a \
 *       -ldnnl -lopenblas -lm -lpthread -o build-cpu/ops_bench
 *   build-cpu/ops_bench [threads] [filter]
 * filter: only kinds whose name contains it (1x1, dw3, dw5, stem, se, kernels).
 */
#include "dcl/core.h"
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
            double ta = ch == CPU_LAYOUT_BLOCKED ? t[1] : ch == CPU_LAYOUT_DIRECT ? t[2] : t[0];
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
                   ch == CPU_LAYOUT_BLOCKED ? "blk" : ch == CPU_LAYOUT_DIRECT ? "dir" : "nhw", dirs[dir], t[0] * 1e3,
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

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *filter = argc > 2 ? argv[2] : NULL;
    dcl_log_level = 1;
    printf("ops_bench: %d threads, EfficientNet-b4 299x299 batch 8 shapes\n", threads);
    if (!filter || strcmp(filter, "kernels")) bench_convs(threads, filter);
    if (!filter || !strcmp(filter, "kernels")) bench_kernels(threads);
    return 0;
}
