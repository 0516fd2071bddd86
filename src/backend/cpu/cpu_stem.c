/* Weight gradient of a dense convolution with few input taps (the stem of
 * EfficientNet: 3 channels x 3x3 = 27 taps, 32-64 output channels, stride
 * 2) on NHWC.
 *
 * dw (co, ci, kh, kw) += sum over the output pixels p of
 * dy[p][o] * x[tap k of p], a product of (K x M) by (M x co) with K = ci *
 * kh * kw small and M = n * ho * wo large.  oneDNN's NHWC primitive for it
 * runs at 30-50 GFLOPS on AVX2 (b4 at 299 batch 8: 10-11 ms a step).  Here
 * the pixels go in blocks of ST_P: the block's taps are gathered into a
 * small row-major patch (zeros outside the input), then for every three
 * or four output-channel vectors and three taps, 9-12 accumulators take one
 * multiply-add per (pixel, tap, vector), with the block's dy rows in the
 * L1.  Each block's sums are added into per-thread partial sums in double,
 * so the result does not depend on how long a thread's pixel range is;
 * the threads' partial sums are added in thread order (deterministic for a
 * given thread count).
 */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_vec.h"
#include <stdlib.h>
#include <string.h>

#if defined(__AVX__)
#define ST_VW 8
#else
#define ST_VW 4
#endif
typedef float svf __attribute__((vector_size(ST_VW * 4), aligned(4), may_alias));

#define ST_P 64      /* pixels per block */
#define ST_KMAX 48   /* most taps (ci * kh * kw) */
#define ST_COMAX 128 /* most output channels */

int cpu_stem_handles(const dcl_conv_desc *d) {
    const int K = d->ci * d->kh * d->kw;
    return d->groups == 1 && K <= ST_KMAX && d->ci <= 4 && d->co % ST_VW == 0 && d->co <= ST_COMAX;
}

/* rows [0, np) of the patch: pixel m0 + i, taps k = (kh * KW + kw) * ci + c,
 * Kp columns (the ones past K zero) */
static void gather_patch(const dcl_conv_desc *d, int64_t m0, int np, int Kp, float *patch, const float *x) {
    const int ci = d->ci, Hi = d->hi, Wi = d->wi;
    const int64_t hw = (int64_t)d->ho * d->wo;
    int64_t n = m0 / hw, r = m0 % hw;
    int oh = (int)(r / d->wo), ow = (int)(r % d->wo);
    const int run = d->kw * ci;   /* a kernel row's taps: contiguous in x when dw == 1 */
    for (int i = 0; i < np; i++) {
        float *pr = patch + (size_t)i * Kp;
        const float *xn = x + (size_t)n * Hi * Wi * ci;
        int k = 0;
        const int ih0 = oh * d->sh - d->pt, iw0 = ow * d->sw - d->pl;
        if (d->dw == 1 && iw0 >= 0 && iw0 + d->kw <= Wi && ih0 >= 0 && ih0 + (d->kh - 1) * d->dh < Hi) {
            for (int kh = 0; kh < d->kh; kh++, k += run) {
                const float *xp = xn + ((size_t)(ih0 + kh * d->dh) * Wi + iw0) * ci;
                if (run == 9) {   /* 3x3 x 3 channels: one vector and one float */
                    *(svf *)(pr + k) = *(const svf *)xp;
                    for (int q = ST_VW; q < 9; q++) pr[k + q] = xp[q];
                } else {
                    for (int q = 0; q < run; q++) pr[k + q] = xp[q];
                }
            }
        } else
        for (int kh = 0; kh < d->kh; kh++) {
            const int ih = oh * d->sh - d->pt + kh * d->dh;
            for (int kw = 0; kw < d->kw; kw++, k += ci) {
                const int iw = ow * d->sw - d->pl + kw * d->dw;
                if (ih < 0 || ih >= Hi || iw < 0 || iw >= Wi) {
                    for (int c = 0; c < ci; c++) pr[k + c] = 0.0f;
                } else {
                    const float *xp = xn + ((size_t)ih * Wi + iw) * ci;
                    for (int c = 0; c < ci; c++) pr[k + c] = xp[c];
                }
            }
        }
        for (; k < Kp; k++) pr[k] = 0.0f;
        if (++ow == d->wo) {
            ow = 0;
            if (++oh == d->ho) { oh = 0; n++; }
        }
    }
}

/* part[k + t][o] += sum over the block's pixels of patch[p][k + t] *
 * dy[p][o] for t < 3 and the NV vectors of o from j; NV a constant after
 * inlining (3 x NV accumulators) */
static inline __attribute__((always_inline)) void block_taps(const int NV, int np, int Kp, int co, int k, int j,
                                                             const float *patch, const float *dyb, double *part) {
    svf acc[3][4];
    for (int t = 0; t < 3; t++)
        for (int v = 0; v < NV; v++) acc[t][v] = (svf){0};
    for (int p = 0; p < np; p++) {
        const float *dp = dyb + (size_t)p * co + j;
        svf g[4];
        for (int v = 0; v < NV; v++) {
            g[v] = *(const svf *)(dp + v * ST_VW);
            if (NV <= 3) VREG(g[v]);   /* 4: 12 accumulators + 4 would not fit */
        }
        const float *pp = patch + (size_t)p * Kp + k;
        for (int t = 0; t < 3; t++) {
            const float a = pp[t];
            for (int v = 0; v < NV; v++) acc[t][v] += a * g[v];
        }
    }
    for (int t = 0; t < 3; t++)
        for (int v = 0; v < NV; v++) {
            double *q = part + (size_t)(k + t) * co + j + v * ST_VW;
            for (int l = 0; l < ST_VW; l++) q[l] += acc[t][v][l];
        }
}

dcl_status cpu_stem_bwd_weights(int nt, const dcl_conv_desc *d, float *dw, float *db, const float *dy,
                                const float *x) {
    const int K = d->ci * d->kh * d->kw, Kp = (K + 2) / 3 * 3, co = d->co;
    const int64_t M = (int64_t)d->n * d->ho * d->wo;
    if (M * K * co < 65536) nt = 1;
    if (nt < 1) nt = 1;
    /* per thread: partial sums (Kp x co) and bias sums (co) in double,
     * each thread's on its own cache lines */
    const size_t per = ((size_t)(Kp + 1) * co + 7) & ~(size_t)7;
    double *part = calloc(per * nt, sizeof(double));
    float *patches = malloc(sizeof(float) * (size_t)ST_P * Kp * nt);
    if (!part || !patches) {
        free(part);
        free(patches);
        return dcl_fail(DCL_ERR_NOMEM, "cpu stem conv: out of memory");
    }
    #pragma omp parallel num_threads(nt)
    {
        const int t = thr_id(), T = thr_n();
        double *pt = part + per * t, *pb = pt + (size_t)Kp * co;
        float *patch = patches + (size_t)ST_P * Kp * t;
        const int64_t m0 = M * t / T, m1 = M * (t + 1) / T;
        for (int64_t m = m0; m < m1; m += ST_P) {
            const int np = m1 - m < ST_P ? (int)(m1 - m) : ST_P;
            gather_patch(d, m, np, Kp, patch, x);
            const float *dyb = dy + (size_t)m * co;
            for (int j = 0; j < co;) {
                /* output-channel vectors in chunks of up to 4 (3 x 4
                 * accumulators), 6 as 3 + 3 */
                const int rem = (co - j) / ST_VW, nv = rem == 5 || rem == 6 ? 3 : rem < 4 ? rem : 4;
                for (int k = 0; k < Kp; k += 3) {
                    if (nv == 4) block_taps(4, np, Kp, co, k, j, patch, dyb, pt);
                    else if (nv == 3) block_taps(3, np, Kp, co, k, j, patch, dyb, pt);
                    else if (nv == 2) block_taps(2, np, Kp, co, k, j, patch, dyb, pt);
                    else block_taps(1, np, Kp, co, k, j, patch, dyb, pt);
                }
                j += nv * ST_VW;
            }
            if (db)
                for (int o = 0; o < co; o++) {
                    float s = 0.0f;
                    for (int p = 0; p < np; p++) s += dyb[(size_t)p * co + o];
                    pb[o] += s;
                }
        }
    }
    /* threads in order; (Kp, co) -> (co, ci, kh, kw) */
    const int KK = d->kh * d->kw;
    for (int o = 0; o < co; o++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int u = 0; u < nt; u++) s += part[per * u + (size_t)k * co + o];
            const int tap = k / d->ci, c = k % d->ci;
            dw[((size_t)o * d->ci + c) * KK + tap] += (float)s;
        }
    if (db)
        for (int o = 0; o < co; o++) {
            double s = 0;
            for (int u = 0; u < nt; u++) s += part[per * u + (size_t)Kp * co + o];
            db[o] += (float)s;
        }
    free(part);
    free(patches);
    return DCL_OK;
}
