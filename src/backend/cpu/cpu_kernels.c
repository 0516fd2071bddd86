/* Elementwise, normalisation, pooling and dense kernels of the cpu backend.
 *
 * The hot loops use GCC vector extensions (8 lanes, 16 with AVX-512) over
 * the channel dimension, innermost in NHWC, with plain C loops for channel
 * counts that are not a multiple of the vector width; OpenMP splits rows
 * across threads.  Per-channel statistics are summed in float over short
 * blocks of rows and the block sums accumulated in double, which keeps them
 * within ~1e-7 of a double-precision reference.  Outputs larger than
 * about half a last-level cache are written with streaming stores.
 */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_vec.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define ROWBLK 32              /* rows summed in float before a double flush */
#define PAR_MIN 32768          /* elements below which a kernel runs on one thread */
#define GEMM_PAR_MIN 262144    /* multiply-adds below which a small product runs on one thread */


static inline int nthreads_for(const cpu_impl *c, int64_t work) {
    return work < PAR_MIN ? 1 : c->nt;
}

/* Per-thread scratch rows are padded to whole cache lines (and allocated
 * 64-byte aligned with dcl_alloc): two threads updating per-channel sums in
 * the same line would bounce it between the cores at every row (that cost
 * bn_stats two thirds of its bandwidth on the Zen 3). */
static inline size_t cl_pad(int C) { return ((size_t)C + 15) & ~(size_t)15; }

/* rows [*r0, *r1) of M for thread t of T */
static inline void split_rows(int64_t M, int t, int T, int64_t *r0, int64_t *r1) {
    *r0 = M * t / T;
    *r1 = M * (t + 1) / T;
}

/* ------------------------------------------------------------ exp -------- */

static inline float f_from_bits(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t bits_from_f(float f) { int32_t i; memcpy(&i, &f, 4); return i; }

/* exp(x): clamp to [-87, 88] (normal range), x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite split of ln2), degree-7 Taylor polynomial for e^r (truncation
 * below 6e-9), scale by 2^n through the exponent bits.  Maximum relative
 * error about 1e-7 on [-87, 88] (checked by tests/test_backend_ops). */
#define EXP_LO -87.0f
#define EXP_HI 88.0f
#define EXP_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2HI 0.693145751953125f
#define EXP_LN2LO 1.428606765330187e-06f
#define EXP_LN2 0.693147180559945309f /* one FMA step: |n| * 2e-9 of error */
#define EXP_P7 1.98412698412698e-4f  /* 1/5040 */
#define EXP_P6 1.38888888888889e-3f  /* 1/720 */
#define EXP_P5 8.33333333333333e-3f  /* 1/120 */
#define EXP_P4 4.16666666666667e-2f  /* 1/24 */
#define EXP_P3 1.66666666666667e-1f  /* 1/6 */

static inline float vexp(float x) {
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    float t = x * EXP_LOG2E + EXP_MAGIC;
    float n = t - EXP_MAGIC;
    int32_t ni = bits_from_f(t) - bits_from_f(EXP_MAGIC);
    float r = x - n * EXP_LN2HI;
    r = r - n * EXP_LN2LO;
    float p = EXP_P7;
    p = p * r + EXP_P6;
    p = p * r + EXP_P5;
    p = p * r + EXP_P4;
    p = p * r + EXP_P3;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * f_from_bits((ni + 127) << 23);
}

float cpu_expf_ref(float x) { return vexp(x); }

/* Vector loops in GCC vector extensions (cpu_vec.h): gcc does not if-convert
 * the clamps of the scalar version under the default -ftrapping-math, so the
 * activation loops are written with explicit vectors. */
/* m ? a : b, lane-wise; m from a vector comparison (all ones / zeros) */
static inline vf vsel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }

/* Store; with st, a streaming (non-temporal) store where the address is
 * aligned: outputs larger than the last-level cache are written without
 * first reading their lines (about a third less memory traffic for y = f(x)).
 * Threads end their streaming with stream_fence before others read. */
static inline void vstore(float *p, vf v, int st) {
#if defined(__AVX512F__)
    if (st && !((uintptr_t)p & 63)) { _mm512_stream_ps(p, (__m512)v); return; }
#elif defined(__AVX__)
    if (st && !((uintptr_t)p & 31)) { _mm256_stream_ps(p, (__m256)v); return; }
#endif
    vst(p, v);
}
static inline void stream_fence(int st) {
#if defined(__SSE__)
    if (st) _mm_sfence();
#else
    (void)st;
#endif
}
static inline int want_stream(const cpu_impl *c, int64_t n_out) {
    return c->stream_min > 0 && (uint64_t)n_out * sizeof(float) >= c->stream_min;
}

/* rows [0, M) in parallel (i is the row); streaming stores are fenced */
#define PAR_ROWS(nt, M, st, ...)                                    \
    do {                                                            \
        _Pragma("omp parallel num_threads(nt)")                     \
        {                                                           \
            _Pragma("omp for schedule(static) nowait")              \
            for (int64_t i = 0; i < (M); i++) { __VA_ARGS__ }       \
            stream_fence(st);                                       \
        }                                                           \
    } while (0)

#define FORCE_INLINE static inline __attribute__((always_inline))

/* Zeroes thread th's slice (per doubles) of per-thread partial sums inside
 * the parallel region (in parallel, instead of a serial calloc before it),
 * and from thread 0 the slices of threads the region did not get. */
static inline void part_zero(double *part, size_t per, int th, int T, int nt) {
    memset(part + per * th, 0, per * sizeof(double));
    if (th == 0)
        for (int u = T; u < nt; u++) memset(part + per * u, 0, per * sizeof(double));
}

/* The sigmoid behind SiLU and sigmoid in vectors, made cheap (the fused
 * batch-norm backward recomputes it in both of its passes): exp with min/max
 * clamps, the argument reduced by ln 2 in one multiply-add (the rounding of
 * ln 2 to a float adds |n| * 2e-9, below the polynomial's error for the n a
 * sigmoid needs), a degree-5 polynomial (minimax for relative error on
 * [-ln2/2, ln2/2]: 7.5e-8, about 2e-7 evaluated in float), and 1/(1+e) as a
 * division on AVX2 (the divider is a unit of its own on Zen 3: the
 * multiply-add pipes, which bound this function, do not see it; 2e-7 in all)
 * or, on AVX-512, a 14-bit reciprocal estimate refined by one Newton step.
 * SiLU in the L1 on the Zen 3: 9.0 cycles a vector of 8 with a reciprocal
 * estimate + Newton and a two-step reduction, 7.8 like this.  SiLU as one
 * division z / (1 + e) is about 9% faster still, but rounds differently
 * (within an ulp) and moves tests/test_precision.c's bf16 training
 * trajectory past its bound: not used. */
#define FZ_C0 1.0000001192092896f
#define FZ_C1 0.9999997019767761f
#define FZ_C2 0.49998894333839417f
#define FZ_C3 0.16667574644088745f
#define FZ_C4 0.04191538318991661f
#define FZ_C5 0.008297654800117016f

#if defined(__AVX512F__) && VW == 16
static inline vf fz_clamp(vf x) { return (vf)_mm512_min_ps(_mm512_max_ps((__m512)x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI)); }
static inline vf fz_div1(vf a) { vf y = (vf)_mm512_rcp14_ps((__m512)a); return y * (2.0f - a * y); }
#elif defined(__AVX__) && VW == 8
static inline vf fz_clamp(vf x) { return (vf)_mm256_min_ps(_mm256_max_ps((__m256)x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI)); }
static inline vf fz_div1(vf a) { return 1.0f / a; }
#else
static inline vf fz_clamp(vf x) { x = vsel(x < EXP_LO, vbc(EXP_LO), x); return vsel(x > EXP_HI, vbc(EXP_HI), x); }
static inline vf fz_div1(vf a) { return 1.0f / a; }
#endif

/* The rounding constant carries exp's bias 127: t's bits are those of
 * 1.5 * 2^23 plus n + 127 (1..254 after the clamps), and shifted left by 23
 * they are 2^n's bits, the constant's own bits shifted out. */
FORCE_INLINE vf fz_exp(vf x) {
    x = fz_clamp(x);
    vf t = x * EXP_LOG2E + (EXP_MAGIC + 127.0f);
    vf n = t - (EXP_MAGIC + 127.0f);
    vf r = x - n * EXP_LN2;
    vf p = r * FZ_C5 + FZ_C4;
    p = p * r + FZ_C3;
    p = p * r + FZ_C2;
    p = p * r + FZ_C1;
    p = p * r + FZ_C0;
    return p * (vf)((vi)t << 23);
}
FORCE_INLINE vf fz_sig(vf z) { return fz_div1(1.0f + fz_exp(-z)); }

/* --------------------------------------------------------- batch norm ---- */

/* Per-channel sums of (x - K) and (x - K)^2 over rows [r0, r1), K = row 0:
 * row by row (x read in order), summed in float over blocks of ROWBLK rows
 * (fs, fq: C floats each) and the block sums added in double.  Row by row
 * beats summing each channel vector down a block of rows in registers by
 * about a quarter on the Zen 3 (CPU time, 8 x 112 x 112 x 96 floats). */
static void bn_partial_stats(int64_t r0, int64_t r1, int C, const float *x, const float *K,
                             double *ps, double *pq, float *fs, float *fq) {
    for (int c = 0; c < C; c++) { ps[c] = 0; pq[c] = 0; }
    for (int64_t r = r0; r < r1; r += ROWBLK) {
        int64_t re = r + ROWBLK < r1 ? r + ROWBLK : r1;
        for (int c = 0; c < C; c++) { fs[c] = 0; fq[c] = 0; }
        for (int64_t i = r; i < re; i++) {
            const float *xr = x + i * C;
            int c = 0;
            for (; c + VW <= C; c += VW) {
                vf v = vld(xr + c) - vld(K + c);
                vst(fs + c, vld(fs + c) + v);
                vst(fq + c, vld(fq + c) + v * v);
            }
            for (; c < C; c++) {
                float v = xr[c] - K[c];
                fs[c] += v;
                fq[c] += v * v;
            }
        }
        for (int c = 0; c < C; c++) { ps[c] += fs[c]; pq[c] += fq[c]; }
    }
}

dcl_status cpu_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                            float *invstd, const float *x, const float *gamma, const float *beta, float eps) {
    if (M <= 0 || C <= 0 || !y || !mean || !var || !invstd || !x || !gamma || !beta)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_fwd_train: bad arguments (M=%lld C=%d)", (long long)M, C);
    cpu_impl *ci = cpu_of(be);
    int nt = nthreads_for(ci, M * C);
    if (nt > M) nt = (int)M;
    const size_t Cs = cl_pad(C);
    double *dbuf = dcl_alloc(sizeof(double) * 2 * Cs * nt);
    float *fbuf = dcl_alloc(sizeof(float) * Cs * (2 * nt + 3));
    if (!dbuf || !fbuf) { dcl_free(dbuf); dcl_free(fbuf); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_fwd_train: out of memory"); }
    float *K = fbuf + 2 * Cs * nt, *sc = K + Cs, *mu = sc + Cs;
    memcpy(K, x, sizeof(float) * C);
    const int st = want_stream(ci, M * C);
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(M, t, T, &r0, &r1);
        double *ps = dbuf + 2 * Cs * t, *pq = ps + Cs;
        bn_partial_stats(r0, r1, C, x, K, ps, pq, fbuf + 2 * Cs * t, fbuf + 2 * Cs * t + Cs);
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int u = 0; u < T; u++) { s += dbuf[2 * Cs * u + c]; q += dbuf[2 * Cs * u + Cs + c]; }
            double m1 = s / (double)M;
            double v = q / (double)M - m1 * m1;
            if (v < 0) v = 0;
            double is = 1.0 / sqrt(v + (double)eps);
            mean[c] = (float)(K[c] + m1);
            var[c] = (float)v;
            invstd[c] = (float)is;
            mu[c] = mean[c];
            sc[c] = (float)(is * gamma[c]);
        }
        if (C % VW == 0) {
            for (int64_t i = r0; i < r1; i++) {
                const float *xr = x + i * C;
                float *yr = y + i * C;
                for (int c = 0; c < C; c += VW)
                    vstore(yr + c, (vld(xr + c) - vld(mu + c)) * vld(sc + c) + vld(beta + c), st);
            }
            stream_fence(st);
        } else {
            for (int64_t i = r0; i < r1; i++) {
                const float *xr = x + i * C;
                float *yr = y + i * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) yr[c] = (xr[c] - mu[c]) * sc[c] + beta[c];
            }
        }
    }
    dcl_free(dbuf);
    dcl_free(fbuf);
    return DCL_OK;
}

dcl_status cpu_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *gamma,
                            const float *beta, const float *rmean, const float *rvar, float eps) {
    if (M <= 0 || C <= 0 || !y || !x || !gamma || !beta || !rmean || !rvar)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_fwd_infer: bad arguments (M=%lld C=%d)", (long long)M, C);
    cpu_impl *ci = cpu_of(be);
    float *sc = malloc(sizeof(float) * C);
    if (!sc) return dcl_fail(DCL_ERR_NOMEM, "cpu bn_fwd_infer: out of memory");
    for (int c = 0; c < C; c++) sc[c] = (float)((double)gamma[c] / sqrt((double)rvar[c] + (double)eps));
    int nt = nthreads_for(ci, M * C);
    const int st = want_stream(ci, M * C);
    if (C % VW == 0) {
        PAR_ROWS(nt, M, st, {
            const float *xr = x + i * C;
            float *yr = y + i * C;
            for (int c = 0; c < C; c += VW)
                vstore(yr + c, (vld(xr + c) - vld(rmean + c)) * vld(sc + c) + vld(beta + c), st);
        });
    } else {
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < M; i++) {
            const float *xr = x + i * C;
            float *yr = y + i * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = (xr[c] - rmean[c]) * sc[c] + beta[c];
        }
    }
    free(sc);
    return DCL_OK;
}

dcl_status cpu_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                      const float *dy, const float *x, const float *mean, const float *invstd,
                      const float *gamma) {
    if (M <= 0 || C <= 0 || !dy || !x || !mean || !invstd || !gamma)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_bwd: bad arguments (M=%lld C=%d)", (long long)M, C);
    cpu_impl *ci = cpu_of(be);
    int nt = nthreads_for(ci, M * C);
    if (nt > M) nt = (int)M;
    const size_t Cs = cl_pad(C);
    double *dbuf = dcl_alloc(sizeof(double) * 2 * Cs * nt);
    float *fbuf = dcl_alloc(sizeof(float) * Cs * (2 * nt + 3));
    if (!dbuf || !fbuf) { dcl_free(dbuf); dcl_free(fbuf); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_bwd: out of memory"); }
    float *A = fbuf + 2 * Cs * nt, *B = A + Cs, *Cc = B + Cs;
    const int st = dx && want_stream(ci, M * C);
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(M, t, T, &r0, &r1);
        double *ps = dbuf + 2 * Cs * t, *pq = ps + Cs;
        float *fs = fbuf + 2 * Cs * t, *fq = fs + Cs;
        for (int c = 0; c < C; c++) { ps[c] = 0; pq[c] = 0; }
        for (int64_t r = r0; r < r1 && C % VW == 0; r += ROWBLK) {
            int64_t re = r + ROWBLK < r1 ? r + ROWBLK : r1;
            for (int c = 0; c < C; c += VW) {
                vf m = vld(mean + c), s0 = {0}, q0 = {0}, s1 = {0}, q1 = {0};
                const float *xp = x + r * C + c, *gp = dy + r * C + c;
                int64_t i = r;
                for (; i + 1 < re; i += 2, xp += 2 * C, gp += 2 * C) {
                    vf g0 = vld(gp), g1 = vld(gp + C);
                    s0 += g0; q0 += g0 * (vld(xp) - m);
                    s1 += g1; q1 += g1 * (vld(xp + C) - m);
                }
                if (i < re) { vf g0 = vld(gp); s0 += g0; q0 += g0 * (vld(xp) - m); }
                s0 += s1; q0 += q1;
                for (int l = 0; l < VW; l++) { ps[c + l] += s0[l]; pq[c + l] += q0[l]; }
            }
        }
        for (int64_t r = r0; r < r1 && C % VW != 0; r += ROWBLK) {
            int64_t re = r + ROWBLK < r1 ? r + ROWBLK : r1;
            for (int c = 0; c < C; c++) { fs[c] = 0; fq[c] = 0; }
            for (int64_t i = r; i < re; i++) {
                const float *xr = x + i * C, *gr = dy + i * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) {
                    fs[c] += gr[c];
                    fq[c] += gr[c] * (xr[c] - mean[c]);
                }
            }
            for (int c = 0; c < C; c++) { ps[c] += fs[c]; pq[c] += fq[c]; }
        }
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int u = 0; u < T; u++) { s += dbuf[2 * Cs * u + c]; q += dbuf[2 * Cs * u + Cs + c]; }
            double is = invstd[c];
            double sxh = q * is; /* sum dy * xhat */
            if (dgamma) dgamma[c] += (float)sxh;
            if (dbeta) dbeta[c] += (float)s;
            double g = (double)gamma[c] * is;
            A[c] = (float)g;
            B[c] = (float)(-g * is * sxh / (double)M);
            Cc[c] = (float)(-g * s / (double)M);
        }
        if (dx && C % VW == 0) {
            for (int64_t i = r0; i < r1; i++) {
                const float *xr = x + i * C, *gr = dy + i * C;
                float *dr = dx + i * C;
                for (int c = 0; c < C; c += VW)
                    vstore(dr + c, vld(A + c) * vld(gr + c) + vld(B + c) * (vld(xr + c) - vld(mean + c)) + vld(Cc + c), st);
            }
            stream_fence(st);
        } else if (dx) {
            for (int64_t i = r0; i < r1; i++) {
                const float *xr = x + i * C, *gr = dy + i * C;
                float *dr = dx + i * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) dr[c] = A[c] * gr[c] + B[c] * (xr[c] - mean[c]) + Cc[c];
            }
        }
    }
    dcl_free(dbuf);
    dcl_free(fbuf);
    return DCL_OK;
}

/* -------------------------------------------------------- activations ---- */

#define EW_BLOCK 16384  /* elements per parallel work item */

/* Applies BODY_V (vector) / BODY_S (scalar tail) over [0, n) in parallel
 * blocks; inside, i is the element index. */
#define EW_LOOP(nt, n, BODY_V, BODY_S)                                                  \
    do {                                                                                \
        int64_t nb_ = ((n) + EW_BLOCK - 1) / EW_BLOCK;                                  \
        _Pragma("omp parallel num_threads(nt)")                                         \
        {                                                                               \
            _Pragma("omp for schedule(static) nowait")                                  \
            for (int64_t b_ = 0; b_ < nb_; b_++) {                                      \
                int64_t i = b_ * EW_BLOCK, e_ = i + EW_BLOCK < (n) ? i + EW_BLOCK : (n); \
                for (; i + VW <= e_; i += VW) { BODY_V; }                               \
                for (; i < e_; i++) { BODY_S; }                                         \
            }                                                                           \
            stream_fence(st);                                                           \
        }                                                                               \
    } while (0)

dcl_status cpu_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    if (n < 0 || (n > 0 && (!y || !x))) return dcl_fail(DCL_ERR_ARG, "cpu act_fwd: bad arguments (n=%lld)", (long long)n);
    int nt = nthreads_for(cpu_of(be), n);
    const int st = want_stream(cpu_of(be), n);
    switch (a) {
    case DCL_ACT_NONE:
        if (y != x) memmove(y, x, sizeof(float) * n);
        break;
    case DCL_ACT_RELU:
        EW_LOOP(nt, n, { vf v = vld(x + i); vstore(y + i, vsel(v > 0.0f, v, vbc(0.0f)), st); },
                { y[i] = x[i] > 0.0f ? x[i] : 0.0f; });
        break;
    case DCL_ACT_SILU:
        EW_LOOP(nt, n, { vf v = vld(x + i); vstore(y + i, v * fz_sig(v), st); },
                { y[i] = x[i] / (1.0f + vexp(-x[i])); });
        break;
    case DCL_ACT_SIGMOID:
        EW_LOOP(nt, n, { vf v = vld(x + i); vstore(y + i, fz_sig(v), st); },
                { y[i] = 1.0f / (1.0f + vexp(-x[i])); });
        break;
    default:
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu act_fwd: unknown activation %d", (int)a);
    }
    return DCL_OK;
}

dcl_status cpu_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy, const float *x,
                       const float *y) {
    if (n < 0 || (n > 0 && (!dx || !dy))) return dcl_fail(DCL_ERR_ARG, "cpu act_bwd: bad arguments (n=%lld)", (long long)n);
    int nt = nthreads_for(cpu_of(be), n);
    const int st = want_stream(cpu_of(be), n);
    switch (a) {
    case DCL_ACT_NONE:
        if (dx != dy) memmove(dx, dy, sizeof(float) * n);
        break;
    case DCL_ACT_RELU: {
        const float *ref = x ? x : y;
        if (!ref) return dcl_fail(DCL_ERR_ARG, "cpu act_bwd: relu needs x or y");
        EW_LOOP(nt, n, { vstore(dx + i, vsel(vld(ref + i) > 0.0f, vld(dy + i), vbc(0.0f)), st); },
                { dx[i] = ref[i] > 0.0f ? dy[i] : 0.0f; });
        break;
    }
    case DCL_ACT_SILU:
        if (!x) return dcl_fail(DCL_ERR_ARG, "cpu act_bwd: silu needs x");
        EW_LOOP(nt, n, {
                    vf v = vld(x + i);
                    vf s = fz_sig(v);
                    vstore(dx + i, vld(dy + i) * s * (1.0f + v * (1.0f - s)), st);
                },
                {
                    float s = 1.0f / (1.0f + vexp(-x[i]));
                    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
                });
        break;
    case DCL_ACT_SIGMOID:
        if (y) {
            EW_LOOP(nt, n, { vf s = vld(y + i); vstore(dx + i, vld(dy + i) * s * (1.0f - s), st); },
                    { dx[i] = dy[i] * y[i] * (1.0f - y[i]); });
        } else if (x) {
            EW_LOOP(nt, n, { vf s = fz_sig(vld(x + i)); vstore(dx + i, vld(dy + i) * s * (1.0f - s), st); },
                    { float s = 1.0f / (1.0f + vexp(-x[i])); dx[i] = dy[i] * s * (1.0f - s); });
        } else return dcl_fail(DCL_ERR_ARG, "cpu act_bwd: sigmoid needs x or y");
        break;
    default:
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu act_bwd: unknown activation %d", (int)a);
    }
    return DCL_OK;
}

/* -------------------------------------------------------------- prelu ---- */

dcl_status cpu_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha) {
    if (M < 0 || C <= 0 || !y || !x || !alpha) return dcl_fail(DCL_ERR_ARG, "cpu prelu_fwd: bad arguments");
    int nt = nthreads_for(cpu_of(be), M * C);
    if (C == 1) {
        float al = alpha[0];
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (int64_t i = 0; i < M; i++) y[i] = x[i] > 0.0f ? x[i] : al * x[i];
        return DCL_OK;
    }
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * C;
        float *yr = y + i * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) yr[c] = xr[c] > 0.0f ? xr[c] : alpha[c] * xr[c];
    }
    return DCL_OK;
}

dcl_status cpu_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha, const float *dy,
                         const float *x, const float *alpha) {
    if (M < 0 || C <= 0 || !dy || !x || !alpha) return dcl_fail(DCL_ERR_ARG, "cpu prelu_bwd: bad arguments");
    if (M == 0) return DCL_OK;
    int nt = nthreads_for(cpu_of(be), M * C);
    /* a shared slope is the per-channel case with one channel */
    int64_t rows = M;
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C);
    double *part = dcl_calloc(sizeof(double) * Cs * nt);
    float *fb = dcl_alloc(sizeof(float) * Cs * nt);
    if (!part || !fb) { dcl_free(part); dcl_free(fb); return dcl_fail(DCL_ERR_NOMEM, "cpu prelu_bwd: out of memory"); }
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        double *ps = part + Cs * t;
        float *fs = fb + Cs * t;
        for (int64_t r = r0; r < r1; r += ROWBLK) {
            int64_t re = r + ROWBLK < r1 ? r + ROWBLK : r1;
            for (int c = 0; c < C; c++) fs[c] = 0;
            for (int64_t i = r; i < re; i++) {
                const float *xr = x + i * C, *gr = dy + i * C;
                float *dr = dx ? dx + i * C : NULL;
                if (dr) {
                    #pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float al = C == 1 ? alpha[0] : alpha[c];
                        dr[c] = xr[c] > 0.0f ? gr[c] : al * gr[c];
                    }
                }
                #pragma omp simd
                for (int c = 0; c < C; c++) fs[c] += xr[c] > 0.0f ? 0.0f : gr[c] * xr[c];
            }
            for (int c = 0; c < C; c++) ps[c] += fs[c];
        }
    }
    if (dalpha)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int u = 0; u < nt; u++) s += part[Cs * u + c];
            dalpha[c] += (float)s;
        }
    dcl_free(part);
    dcl_free(fb);
    return DCL_OK;
}

/* ------------------------------------------------------------ pooling ---- */

typedef struct pool_win { int hs, he, ws, we, div; } pool_win;

static inline pool_win pool_window(const dcl_pool_desc *d, int oh, int ow) {
    pool_win p;
    int h0 = oh * d->sh - d->pt, w0 = ow * d->sw - d->pl;
    int h1 = h0 + d->kh, w1 = w0 + d->kw;
    if (h1 > d->hi + d->pb) h1 = d->hi + d->pb;
    if (w1 > d->wi + d->pr) w1 = d->wi + d->pr;
    int full = (h1 - h0) * (w1 - w0);
    p.hs = h0 < 0 ? 0 : h0;
    p.ws = w0 < 0 ? 0 : w0;
    p.he = h1 > d->hi ? d->hi : h1;
    p.we = w1 > d->wi ? d->wi : w1;
    p.div = d->count_include_pad ? full : (p.he - p.hs) * (p.we - p.ws);
    if (p.div <= 0) p.div = 1;
    return p;
}

static dcl_status pool_check(const dcl_pool_desc *d, const char *what) {
    if (!d || d->n <= 0 || d->c <= 0 || d->hi <= 0 || d->wi <= 0 || d->ho <= 0 || d->wo <= 0 ||
        d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0)
        return dcl_fail(DCL_ERR_ARG, "cpu %s: invalid pooling descriptor (call dcl_pool_desc_finish first)", what);
    if (d->kind != DCL_POOL_MAX && d->kind != DCL_POOL_AVG)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu %s: unknown pooling kind %d", what, (int)d->kind);
    return DCL_OK;
}

dcl_status cpu_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) {
    DCL_TRY(pool_check(d, "pool_fwd"));
    if (!y || !x) return dcl_fail(DCL_ERR_ARG, "cpu pool_fwd: NULL tensor");
    const int C = d->c;
    int nt = nthreads_for(cpu_of(be), (int64_t)d->n * d->ho * d->wo * C * d->kh * d->kw);
    #pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int n = 0; n < d->n; n++)
        for (int oh = 0; oh < d->ho; oh++)
            for (int ow = 0; ow < d->wo; ow++) {
                pool_win p = pool_window(d, oh, ow);
                float *yr = y + (((size_t)n * d->ho + oh) * d->wo + ow) * C;
                if (d->kind == DCL_POOL_MAX) {
                    for (int c = 0; c < C; c++) yr[c] = -INFINITY;
                    for (int h = p.hs; h < p.he; h++)
                        for (int w = p.ws; w < p.we; w++) {
                            const float *xr = x + (((size_t)n * d->hi + h) * d->wi + w) * C;
                            #pragma omp simd
                            for (int c = 0; c < C; c++) yr[c] = (xr[c] > yr[c] || isnan(xr[c])) ? xr[c] : yr[c];
                        }
                } else {
                    for (int c = 0; c < C; c++) yr[c] = 0.0f;
                    for (int h = p.hs; h < p.he; h++)
                        for (int w = p.ws; w < p.we; w++) {
                            const float *xr = x + (((size_t)n * d->hi + h) * d->wi + w) * C;
                            #pragma omp simd
                            for (int c = 0; c < C; c++) yr[c] += xr[c];
                        }
                    float inv = 1.0f / (float)p.div;
                    for (int c = 0; c < C; c++) yr[c] *= inv;
                }
            }
    return DCL_OK;
}

dcl_status cpu_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy, const float *x,
                        const float *y) {
    DCL_TRY(pool_check(d, "pool_bwd"));
    if (!dx || !dy || (d->kind == DCL_POOL_MAX && !x)) return dcl_fail(DCL_ERR_ARG, "cpu pool_bwd: NULL tensor");
    const int C = d->c;
    size_t per_n = (size_t)d->hi * d->wi * C;
    int nt = nthreads_for(cpu_of(be), (int64_t)d->n * per_n);
    if (nt > d->n) nt = d->n;
    /* each sample's gradient is independent: parallel over samples */
    #pragma omp parallel num_threads(nt)
    {
        int *arg = d->kind == DCL_POOL_MAX ? malloc(sizeof(int) * C) : NULL;
        float *best = d->kind == DCL_POOL_MAX ? malloc(sizeof(float) * C) : NULL;
        #pragma omp for schedule(static)
        for (int n = 0; n < d->n; n++) {
            float *dxn = dx + n * per_n;
            memset(dxn, 0, sizeof(float) * per_n);
            for (int oh = 0; oh < d->ho; oh++)
                for (int ow = 0; ow < d->wo; ow++) {
                    pool_win p = pool_window(d, oh, ow);
                    const float *gr = dy + (((size_t)n * d->ho + oh) * d->wo + ow) * C;
                    if (p.he <= p.hs || p.we <= p.ws) continue;
                    if (d->kind == DCL_POOL_MAX) {
                        /* first maximum in window order, as PyTorch */
                        int first = p.hs * d->wi + p.ws;
                        const float *x0 = x + ((size_t)n * d->hi * d->wi + first) * C;
                        for (int c = 0; c < C; c++) { best[c] = x0[c]; arg[c] = first; }
                        for (int h = p.hs; h < p.he; h++)
                            for (int w = p.ws; w < p.we; w++) {
                                int pos = h * d->wi + w;
                                const float *xr = x + ((size_t)n * d->hi * d->wi + pos) * C;
                                #pragma omp simd
                                for (int c = 0; c < C; c++) {
                                    int better = xr[c] > best[c] || (isnan(xr[c]) && !isnan(best[c]));
                                    best[c] = better ? xr[c] : best[c];
                                    arg[c] = better ? pos : arg[c];
                                }
                            }
                        for (int c = 0; c < C; c++) dxn[(size_t)arg[c] * C + c] += gr[c];
                    } else {
                        float inv = 1.0f / (float)p.div;
                        for (int h = p.hs; h < p.he; h++)
                            for (int w = p.ws; w < p.we; w++) {
                                float *dr = dxn + ((size_t)h * d->wi + w) * C;
                                #pragma omp simd
                                for (int c = 0; c < C; c++) dr[c] += gr[c] * inv;
                            }
                    }
                }
        }
        free(arg);
        free(best);
    }
    (void)y;
    return DCL_OK;
}

/* -------------------------------------------------- global avg pooling --- */

/* out[n][c] = scale * sum over HW rows of f(n, row, c), for f = x or dy*x.
 * Threads take contiguous ranges of the N*HW rows and keep partial sums per
 * sample; also writes dx = dy * s when dx is given (fused SE backward). */
static dcl_status rowsum_nhwc(const cpu_impl *ci, int N, int HW, int C, float *out, double scale,
                              const float *a, const float *b, float *dx, const float *s) {
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C), NCs = cl_pad(N * C);
    double *part = dcl_alloc(sizeof(double) * NCs * nt);
    float *fb = dcl_alloc(sizeof(float) * Cs * nt);
    const int st = dx && want_stream(ci, rows * C);
    if (!part || !fb) { dcl_free(part); dcl_free(fb); return dcl_fail(DCL_ERR_NOMEM, "cpu: out of memory for partial sums"); }
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)NCs, t, T, nt);
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        float *fs = fb + Cs * t;
        int64_t r = r0;
        while (r < r1) {
            int n = (int)(r / HW);
            int64_t nend = (int64_t)(n + 1) * HW;
            int64_t re = r + ROWBLK;
            if (re > nend) re = nend;
            if (re > r1) re = r1;
            const float *sn = s ? s + (size_t)n * C : NULL;
            double *ps = part + NCs * t + (size_t)n * C;
            if (C % VW == 0) {
                for (int c = 0; c < C; c += VW) {
                    vf s0 = {0}, s1 = {0};
                    const float *ap = a + r * C + c;
                    int64_t i = r;
                    if (b) {
                        const float *bp = b + r * C + c;
                        for (; i + 1 < re; i += 2, ap += 2 * C, bp += 2 * C) {
                            s0 += vld(ap) * vld(bp);
                            s1 += vld(ap + C) * vld(bp + C);
                        }
                        if (i < re) s0 += vld(ap) * vld(bp);
                    } else {
                        for (; i + 1 < re; i += 2, ap += 2 * C) { s0 += vld(ap); s1 += vld(ap + C); }
                        if (i < re) s0 += vld(ap);
                    }
                    s0 += s1;
                    for (int l = 0; l < VW; l++) ps[c + l] += s0[l];
                }
                if (b && dx) /* dx = dy * s, row by row (whole lines for streaming) */
                    for (int64_t i = r; i < re; i++)
                        for (int c = 0; c < C; c += VW) vstore(dx + i * C + c, vld(a + i * C + c) * vld(sn + c), st);
                r = re;
                continue;
            }
            for (int c = 0; c < C; c++) fs[c] = 0;
            for (int64_t i = r; i < re; i++) {
                const float *ar = a + i * C;
                if (b) {
                    const float *br = b + i * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) fs[c] += ar[c] * br[c];
                    if (dx) {
                        float *dr = dx + i * C;
                        #pragma omp simd
                        for (int c = 0; c < C; c++) dr[c] = ar[c] * sn[c];
                    }
                } else {
                    #pragma omp simd
                    for (int c = 0; c < C; c++) fs[c] += ar[c];
                }
            }
            for (int c = 0; c < C; c++) ps[c] += fs[c];
            r = re;
        }
        stream_fence(st);
    }
    if (out)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int u = 0; u < nt; u++) acc += part[NCs * u + (size_t)n * C + c];
                out[(size_t)n * C + c] = (float)(acc * scale);
            }
    dcl_free(part);
    dcl_free(fb);
    return DCL_OK;
}

dcl_status cpu_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x) {
    if (N <= 0 || HW <= 0 || C <= 0 || !y || !x) return dcl_fail(DCL_ERR_ARG, "cpu gap_fwd: bad arguments (N=%d HW=%d C=%d)", N, HW, C);
    return rowsum_nhwc(cpu_of(be), N, HW, C, y, 1.0 / HW, x, NULL, NULL, NULL);
}

dcl_status cpu_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) {
    if (N <= 0 || HW <= 0 || C <= 0 || !dx || !dy) return dcl_fail(DCL_ERR_ARG, "cpu gap_bwd: bad arguments (N=%d HW=%d C=%d)", N, HW, C);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(cpu_of(be), rows * C);
    const float inv = 1.0f / (float)HW;
    const int st = want_stream(cpu_of(be), rows * C);
    if (C % VW == 0) {
        PAR_ROWS(nt, rows, st, {
            const float *g = dy + (i / HW) * C;
            float *dr = dx + i * C;
            for (int c = 0; c < C; c += VW) vstore(dr + c, vld(g + c) * inv, st);
        });
        return DCL_OK;
    }
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *g = dy + (i / HW) * C;
        float *dr = dx + i * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) dr[c] = g[c] * inv;
    }
    return DCL_OK;
}

/* ------------------------------------------------ squeeze-excitation ----- */

dcl_status cpu_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x, const float *s) {
    if (N <= 0 || HW <= 0 || C <= 0 || !y || !x || !s) return dcl_fail(DCL_ERR_ARG, "cpu mul_bcast_fwd: bad arguments (N=%d HW=%d C=%d)", N, HW, C);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(cpu_of(be), rows * C);
    const int st = want_stream(cpu_of(be), rows * C);
    if (C % VW == 0) {
        PAR_ROWS(nt, rows, st, {
            const float *sr = s + (i / HW) * C, *xr = x + i * C;
            float *yr = y + i * C;
            for (int c = 0; c < C; c += VW) vstore(yr + c, vld(xr + c) * vld(sr + c), st);
        });
        return DCL_OK;
    }
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *sr = s + (i / HW) * C, *xr = x + i * C;
        float *yr = y + i * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) yr[c] = xr[c] * sr[c];
    }
    return DCL_OK;
}

dcl_status cpu_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds, const float *dy,
                             const float *x, const float *s) {
    if (N <= 0 || HW <= 0 || C <= 0 || !dy || (ds && !x) || (dx && !s))
        return dcl_fail(DCL_ERR_ARG, "cpu mul_bcast_bwd: bad arguments (N=%d HW=%d C=%d)", N, HW, C);
    if (ds) return rowsum_nhwc(cpu_of(be), N, HW, C, ds, 1.0, dy, x, dx, s);
    if (dx) return cpu_mul_bcast_fwd(be, N, HW, C, dx, dy, s);
    return DCL_OK;
}

/* ---------------------------------------------------------- add, mask ---- */

dcl_status cpu_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) {
    if (n < 0 || (n > 0 && (!y || !a || !b))) return dcl_fail(DCL_ERR_ARG, "cpu add: bad arguments (n=%lld)", (long long)n);
    int nt = nthreads_for(cpu_of(be), n);
    const int st = want_stream(cpu_of(be), n);
    EW_LOOP(nt, n, { vstore(y + i, vld(a + i) + vld(b + i), st); }, { y[i] = a[i] + b[i]; });
    return DCL_OK;
}

dcl_status cpu_scale_mask(dcl_backend *be, int64_t rows, int64_t cols, float *y, const float *x,
                          const float *mask, int per_row, float scale) {
    if (rows < 0 || cols < 0 || (rows * cols > 0 && (!y || !x || !mask)))
        return dcl_fail(DCL_ERR_ARG, "cpu scale_mask: bad arguments (rows=%lld cols=%lld)", (long long)rows, (long long)cols);
    int nt = nthreads_for(cpu_of(be), rows * cols);
    if (per_row) {
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float m = mask[r];
            const float *xr = x + r * cols;
            float *yr = y + r * cols;
            #pragma omp simd
            for (int64_t c = 0; c < cols; c++) yr[c] = xr[c] * m * scale;
        }
    } else {
        int64_t n = rows * cols;
        const int st = want_stream(cpu_of(be), n);
        EW_LOOP(nt, n, { vstore(y + i, vld(x + i) * vld(mask + i) * scale, st); }, { y[i] = x[i] * mask[i] * scale; });
    }
    return DCL_OK;
}

/* ------------------------------------------------------------- dense ----- */

void cpu_small_gemm_xwt(int nt, int M, int K, int O, float *y, const float *x, const float *w, const float *b) {
    if ((int64_t)M * K * O < GEMM_PAR_MIN) nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int o = 0; o < O; o++) {
        const float *wr = w + (size_t)o * K;
        for (int m = 0; m < M; m++) {
            const float *xr = x + (size_t)m * K;
            float s = 0.0f;
            #pragma omp simd reduction(+ : s)
            for (int k = 0; k < K; k++) s += xr[k] * wr[k];
            y[(size_t)m * O + o] = s + (b ? b[o] : 0.0f);
        }
    }
}

void cpu_small_gemm_dyw(int nt, int M, int K, int O, float *dx, const float *dy, const float *w) {
    if ((int64_t)M * K * O < GEMM_PAR_MIN) nt = 1;
    enum { KB = 256 };
    int nkb = (K + KB - 1) / KB;
    #pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int m = 0; m < M; m++)
        for (int kb = 0; kb < nkb; kb++) {
            int k0 = kb * KB, k1 = k0 + KB < K ? k0 + KB : K;
            float *dr = dx + (size_t)m * K;
            for (int k = k0; k < k1; k++) dr[k] = 0.0f;
            for (int o = 0; o < O; o++) {
                const float g = dy[(size_t)m * O + o];
                const float *wr = w + (size_t)o * K;
                #pragma omp simd
                for (int k = k0; k < k1; k++) dr[k] += g * wr[k];
            }
        }
}

void cpu_small_gemm_dw(int nt, int M, int K, int O, float *dw, float *db, const float *dy, const float *x) {
    if ((int64_t)M * K * O < GEMM_PAR_MIN) nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int o = 0; o < O; o++) {
        float *wr = dw + (size_t)o * K;
        float bs = 0.0f;
        for (int m = 0; m < M; m++) {
            const float g = dy[(size_t)m * O + o];
            const float *xr = x + (size_t)m * K;
            bs += g;
            #pragma omp simd
            for (int k = 0; k < K; k++) wr[k] += g * xr[k];
        }
        if (db) db[o] += bs;
    }
}

/* y (m, n) = op(a) op(b) + beta y, row-major, split by hand over nt threads
 * in equal shares of y's rows (cols 0) or columns (cols 1), one
 * single-threaded oneDNN sgemm per thread (inside the parallel region
 * oneDNN's sgemm runs on the calling thread); below two rows or columns a
 * thread, one sgemm threaded by oneDNN.  Used where oneDNN's own split
 * leaves a thread waiting (the 1x1 backward products on small maps,
 * cpu_conv.c) and for the classifier's products (a few rows: the batch),
 * which OpenBLAS ran on one thread (b4's 1792 -> 1000 head at batch 8: 1.8
 * ms forward, 2.2 ms backward a step, one core idle). */
dcl_status cpu_sgemm_split(int nt, int cols, char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float beta, float *y, int64_t ldy) {
    const int64_t span = cols ? n : m;
    if (nt < 2 || span < 2 * nt)
        return dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, y, ldy) == dnnl_success
                   ? DCL_OK : dcl_fail(DCL_ERR_INTERNAL, "cpu: oneDNN sgemm failed");
    int err = 0;
    #pragma omp parallel num_threads(nt) reduction(| : err)
    {
        const int t = thr_id(), T = thr_n();
        const int64_t j0 = span * t / T, nj = span * (t + 1) / T - j0;
        if (nj > 0) {
            /* rows j0.. of op(a) (a's rows for 'N', its columns for 'T'), or
             * columns j0.. of op(b) (b's columns for 'N', its rows for 'T') */
            const float *ap = cols ? a : ta == 'N' ? a + j0 * lda : a + j0;
            const float *bp = !cols ? b : tb == 'N' ? b + j0 : b + j0 * ldb;
            float *yp = cols ? y + j0 : y + j0 * ldy;
            err |= dnnl_sgemm(ta, tb, cols ? m : nj, cols ? nj : n, k, 1.0f, ap, lda, bp, ldb, beta, yp, ldy) !=
                   dnnl_success;
        }
    }
    return err ? dcl_fail(DCL_ERR_INTERNAL, "cpu: oneDNN sgemm failed") : DCL_OK;
}

dcl_status cpu_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x, const float *w,
                          const float *b) {
    if (M <= 0 || K <= 0 || O <= 0 || !y || !x || !w)
        return dcl_fail(DCL_ERR_ARG, "cpu linear_fwd: bad arguments (M=%d K=%d O=%d)", M, K, O);
    cpu_impl *ci = cpu_of(be);
    if ((int64_t)M * K * O < 262144) {
        cpu_small_gemm_xwt(ci->nt, M, K, O, y, x, w, b);
        return DCL_OK;
    }
    if (b)
        for (int m = 0; m < M; m++) memcpy(y + (size_t)m * O, b, sizeof(float) * O);
    /* y[:, j] = x (M, K) w[j, :]^T */
    if (M <= 64) return cpu_sgemm_split(ci->nt, 1, 'N', 'T', M, O, K, x, K, w, K, b ? 1.0f : 0.0f, y, O);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, O, K, 1.0f, x, K, w, K, b ? 1.0f : 0.0f, y, O);
    return DCL_OK;
}

dcl_status cpu_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                          const float *dy, const float *x, const float *w) {
    if (M <= 0 || K <= 0 || O <= 0 || !dw || !dy || !x || (dx && !w))
        return dcl_fail(DCL_ERR_ARG, "cpu linear_bwd: bad arguments (M=%d K=%d O=%d)", M, K, O);
    cpu_impl *ci = cpu_of(be);
    if ((int64_t)M * K * O < 262144) {
        if (dx) cpu_small_gemm_dyw(ci->nt, M, K, O, dx, dy, w);
        cpu_small_gemm_dw(ci->nt, M, K, O, dw, db, dy, x);
        return DCL_OK;
    }
    if (M <= 64) {
        /* dx[:, j] = dy (M, O) w[:, j]; dw[j, :] += dy[:, j]^T x (M, K) */
        if (dx) DCL_TRY(cpu_sgemm_split(ci->nt, 1, 'N', 'N', M, K, O, dy, O, w, K, 0.0f, dx, K));
        DCL_TRY(cpu_sgemm_split(ci->nt, 0, 'T', 'N', O, K, M, dy, O, x, K, 1.0f, dw, K));
    } else {
        if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, O, 1.0f, dy, O, w, K, 0.0f, dx, K);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, M, 1.0f, dy, O, x, K, 1.0f, dw, K);
    }
    if (db)
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int m = 0; m < M; m++) s += dy[(size_t)m * O + o];
            db[o] += (float)s;
        }
    return DCL_OK;
}

/* ------------------------------------------ fused batch norm + act ------ *
 * Training-time batch norm and the activation after it in as few passes
 * over memory as the data dependencies allow: statistics (one read of x),
 * then one pass that normalises, applies the activation and writes it
 * and/or sums it per sample (squeeze-excitation pooling).  The backward
 * recomputes the normalised value from x and the saved statistics instead
 * of reading a stored copy: one pass for the per-channel sums, one for dx.
 * `act` is a compile-time constant in each instance (always_inline +
 * switch), so the activation costs no branch in the inner loops. */


FORCE_INLINE vf fz_act(const int act, vf z) {
    switch (act) {
    case DCL_ACT_RELU: return vsel(z > 0.0f, z, vbc(0.0f));
    case DCL_ACT_SILU: return z * fz_sig(z);
    case DCL_ACT_SIGMOID: return fz_sig(z);
    default: return z;
    }
}
/* g * act'(z) */
FORCE_INLINE vf fz_dact(const int act, vf z, vf g) {
    switch (act) {
    case DCL_ACT_RELU: return vsel(z > 0.0f, g, vbc(0.0f));
    case DCL_ACT_SILU: { vf s = fz_sig(z); return g * s * (1.0f + z * (1.0f - s)); }
    case DCL_ACT_SIGMOID: { vf s = fz_sig(z); return g * s * (1.0f - s); }
    default: return g;
    }
}
FORCE_INLINE float fz_act1(const int act, float z) {
    switch (act) {
    case DCL_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case DCL_ACT_SILU: return z / (1.0f + vexp(-z));
    case DCL_ACT_SIGMOID: return 1.0f / (1.0f + vexp(-z));
    default: return z;
    }
}
FORCE_INLINE float fz_dact1(const int act, float z, float g) {
    switch (act) {
    case DCL_ACT_RELU: return z > 0.0f ? g : 0.0f;
    case DCL_ACT_SILU: { float s = 1.0f / (1.0f + vexp(-z)); return g * s * (1.0f + z * (1.0f - s)); }
    case DCL_ACT_SIGMOID: { float s = 1.0f / (1.0f + vexp(-z)); return g * s * (1.0f - s); }
    default: return g;
    }
}

/* a = act(z) and act'(z) from one sigmoid */
FORCE_INLINE void fz_act_both(const int act, vf z, vf *a, vf *ap) {
    switch (act) {
    case DCL_ACT_RELU: *a = vsel(z > 0.0f, z, vbc(0.0f)); *ap = vsel(z > 0.0f, vbc(1.0f), vbc(0.0f)); break;
    case DCL_ACT_SILU: { vf s = fz_sig(z); *a = z * s; *ap = s * (1.0f + z * (1.0f - s)); break; }
    case DCL_ACT_SIGMOID: { vf s = fz_sig(z); *a = s; *ap = s * (1.0f - s); break; }
    default: *a = z; *ap = vbc(1.0f); break;
    }
}

/* The same instance of BODY for each activation (act a constant inside). */
#define ACT_DISPATCH(act, BODY)                                   \
    switch (act) {                                                \
    case DCL_ACT_NONE: { const int A_ = DCL_ACT_NONE; BODY; break; }       \
    case DCL_ACT_RELU: { const int A_ = DCL_ACT_RELU; BODY; break; }       \
    case DCL_ACT_SILU: { const int A_ = DCL_ACT_SILU; BODY; break; }       \
    case DCL_ACT_SIGMOID: { const int A_ = DCL_ACT_SIGMOID; BODY; break; } \
    default: break;                                               \
    }

static dcl_status fz_check(const char *what, int N, int HW, int C, dcl_act act) {
    if (N <= 0 || HW <= 0 || C <= 0)
        return dcl_fail(DCL_ERR_ARG, "cpu %s: bad sizes (N=%d HW=%d C=%d)", what, N, HW, C);
    if (act < DCL_ACT_NONE || act > DCL_ACT_SIGMOID)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu %s: unknown activation %d", what, (int)act);
    return DCL_OK;
}

/* The next block of rows [r, *re) of [r, r1): inside one sample, at most
 * ROWBLK rows; returns the sample. */
static inline int fz_block(int64_t r, int64_t r1, int HW, int64_t *re) {
    int n = (int)(r / HW);
    int64_t e = (int64_t)(n + 1) * HW;
    if (e > r1) e = r1;
    if (e > r + ROWBLK) e = r + ROWBLK;
    *re = e;
    return n;
}

dcl_status cpu_bn_stats(dcl_backend *be, int64_t M, int C, float *mean, float *var, float *invstd,
                        const float *x, float eps) {
    if (M <= 0 || C <= 0 || !mean || !var || !invstd || !x)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_stats: bad arguments (M=%lld C=%d)", (long long)M, C);
    cpu_impl *ci = cpu_of(be);
    int nt = nthreads_for(ci, M * C);
    if (nt > M) nt = (int)M;
    const size_t Cs = cl_pad(C);
    double *dbuf = dcl_alloc(sizeof(double) * 2 * Cs * nt);
    float *fbuf = dcl_alloc(sizeof(float) * Cs * (2 * nt + 1));
    if (!dbuf || !fbuf) { dcl_free(dbuf); dcl_free(fbuf); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_stats: out of memory"); }
    float *K = fbuf + 2 * Cs * nt;
    memcpy(K, x, sizeof(float) * C);
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(M, t, T, &r0, &r1);
        double *ps = dbuf + 2 * Cs * t, *pq = ps + Cs;
        bn_partial_stats(r0, r1, C, x, K, ps, pq, fbuf + 2 * Cs * t, fbuf + 2 * Cs * t + Cs);
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int u = 0; u < T; u++) { s += dbuf[2 * Cs * u + c]; q += dbuf[2 * Cs * u + Cs + c]; }
            double m1 = s / (double)M;
            double v = q / (double)M - m1 * m1;
            if (v < 0) v = 0;
            mean[c] = (float)(K[c] + m1);
            var[c] = (float)v;
            invstd[c] = (float)(1.0 / sqrt(v + (double)eps));
        }
    }
    dcl_free(dbuf);
    dcl_free(fbuf);
    return DCL_OK;
}

/* rows [r0, r1) of bn_act_fwd; gp: this thread's per-sample sums (N*C
 * doubles) or NULL; fb: C floats of scratch; sc = invstd * gamma. */
FORCE_INLINE void fz_fwd_rows(const int act, int64_t r0, int64_t r1, int HW, int C, float *y, double *gp,
                              float *fb, const float *x, const float *mean, const float *sc,
                              const float *beta, const float *s, int st) {
    int64_t r = r0, re;
    while (r < r1) {
        int n = fz_block(r, r1, HW, &re);
        const float *sn = s ? s + (size_t)n * C : NULL;
        if (gp) memset(fb, 0, sizeof(float) * C);
        for (int64_t i = r; i < re; i++) {
            const float *xr = x + i * C;
            float *yr = y ? y + i * C : NULL;
            int c = 0;
            for (; c + VW <= C; c += VW) {
                vf a = fz_act(act, (vld(xr + c) - vld(mean + c)) * vld(sc + c) + vld(beta + c));
                if (gp) vst(fb + c, vld(fb + c) + a);
                if (sn) a = a * vld(sn + c);
                if (yr) vstore(yr + c, a, st);
            }
            for (; c < C; c++) {
                float a = fz_act1(act, (xr[c] - mean[c]) * sc[c] + beta[c]);
                if (gp) fb[c] += a;
                if (yr) yr[c] = sn ? a * sn[c] : a;
            }
        }
        if (gp) {
            double *g = gp + (size_t)n * C;
            for (int c = 0; c < C; c++) g[c] += fb[c];
        }
        r = re;
    }
}

/* bn_act_fwd's per-channel factors: sc = invstd * gamma, or, without
 * normalisation (mean NULL), sc = 1 with *mean and *beta pointed at z
 * (C zeros): a = act((x - 0) * 1 + 0) = act(x) */
static void bn_act_scale(int C, float *sc, float *z, const float **mean, const float **beta, const float *invstd,
                         const float *gamma) {
    if (!*mean) {
        for (int c = 0; c < C; c++) { sc[c] = 1.0f; z[c] = 0.0f; }
        *mean = *beta = z;
    } else {
        for (int c = 0; c < C; c++) sc[c] = invstd[c] * gamma[c];
    }
}

dcl_status cpu_bn_act_fwd(dcl_backend *be, int N, int HW, int C, dcl_act act, float *y, float *gmean,
                          const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta, const float *s) {
    DCL_TRY(fz_check("bn_act_fwd", N, HW, C, act));
    int norm = mean || invstd || gamma || beta;
    if ((!y && !gmean) || !x || (norm && (!mean || !invstd || !gamma || !beta)))
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_fwd: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C), NCs = cl_pad(N * C);
    float *sc = dcl_alloc(sizeof(float) * Cs * (nt + 3));
    double *part = gmean ? dcl_alloc(sizeof(double) * NCs * nt) : NULL;
    if (!sc || (gmean && !part)) { dcl_free(sc); dcl_free(part); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_fwd: out of memory"); }
    bn_act_scale(C, sc, sc + Cs * (nt + 1), &mean, &beta, invstd, gamma);
    const int st = y && want_stream(ci, rows * C);
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)NCs, t, T, nt);
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        double *gp = part ? part + NCs * t : NULL;
        float *fb = sc + Cs * (t + 1);
        ACT_DISPATCH(act, fz_fwd_rows(A_, r0, r1, HW, C, y, gp, fb, x, mean, sc, beta, s, st));
        stream_fence(st);
    }
    if (gmean)
        for (size_t i = 0; i < (size_t)N * C; i++) {
            double a = 0;
            for (int u = 0; u < nt; u++) a += part[NCs * u + i];
            gmean[i] = (float)(a / HW);
        }
    dcl_free(sc);
    dcl_free(part);
    return DCL_OK;
}

/* ---- batch norm + activation feeding a depthwise convolution ---- */

typedef struct bn_row_arg {
    int act, C;
    int64_t W;   /* pixels a row */
    const float *x, *mean, *sc, *beta;
} bn_row_arg;

/* a row of bn_act_fwd (the same expression, element for element) into the
 * ring r and the stored activation a */
FORCE_INLINE void bn_act_row(const int act, int64_t W, int C, float *r, float *a, int st, const float *x,
                             const float *mean, const float *sc, const float *beta) {
    for (int64_t i = 0; i < W; i++) {
        const float *xr = x + i * C;
        float *rr = r + i * C, *ar = a ? a + i * C : NULL;
        int c = 0;
        for (; c + VW <= C; c += VW) {
            vf v = fz_act(act, (vld(xr + c) - vld(mean + c)) * vld(sc + c) + vld(beta + c));
            vst(rr + c, v);
            if (ar) vstore(ar + c, v, st);
        }
        for (; c < C; c++) {
            float v = fz_act1(act, (xr[c] - mean[c]) * sc[c] + beta[c]);
            rr[c] = v;
            if (ar) ar[c] = v;
        }
    }
}

static void bn_act_row_fn(const void *arg, int64_t row, float *r, float *a, int st) {
    const bn_row_arg *p = arg;
    const float *x = p->x + row * p->W * p->C;
    ACT_DISPATCH(p->act, bn_act_row(A_, p->W, p->C, r, a, st, x, p->mean, p->sc, p->beta));
}

/* Inputs of 16 MB and more (larger than what the L3 keeps of them between
 * the two passes), 3x3 at stride 1 and any kernel at larger strides;
 * DCL_CPU_DW_FUSED=always|never overrides (tests, benchmarks).  Measured on
 * the 2-core Zen 3 (ms, bn_act_fwd + conv_fwd / fused, batch 8 for b4 and
 * 16 for b0): stride 1 192@75 5.9-6.5 / 4.3-4.5, 48@150 4.8-4.9 / 4.2-4.3
 * (against oneDNN's kernel), 144@56 4.5-4.6 / 3.4-3.6, 32@112 3.36 /
 * 3.25-3.29; stride 2 144@150 12.0-12.2 / 8.9-9.4, 96@112 8.2-8.4 /
 * 6.7-7.0, 5x5 144@56 3.5-3.6 / 3.2, 5x5 192@75 4.2-4.3 / 4.1-4.2.  Slower
 * or even on maps that stay in the L3, and on 5x5 at stride 1: 5x5 336@38
 * 3.1-3.3 / 3.4-3.5, 672@19 0.86-0.93 / 0.96-1.04, 5x5 1632@10 1.15-1.19 /
 * 1.31-1.76, stride 2 5x5 960@19 1.55 / 1.64.  Not with AVX-512, where
 * oneDNN's 16-lane kernels run the plain forward and the fusion was not
 * measured. */
int cpu_bn_act_dw_pays(dcl_backend *be, const dcl_conv_desc *d) {
    (void)be;
    if (!cpu_dw_handles(d) || d->dh != 1 || d->dw != 1) return 0;
    const char *e = getenv("DCL_CPU_DW_FUSED");
    if (e && !strcmp(e, "always")) return 1;
    if (e && !strcmp(e, "never")) return 0;
#if defined(__AVX512F__)
    return 0;
#else
    return (d->kh == 3 || d->sh > 1 || d->sw > 1) && (double)d->n * d->hi * d->wi * d->ci * sizeof(float) >= 16.0 * 1048576.0;
#endif
}

dcl_status cpu_bn_act_dw_fwd(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y, float *a, const float *x,
                             const float *mean, const float *invstd, const float *gamma, const float *beta,
                             const float *w, const float *bias) {
    DCL_TRY(fz_check("bn_act_dw_fwd", d->n, d->hi * d->wi, d->ci, act));
    const int norm = mean || invstd || gamma || beta;
    if (!y || !x || !w || (norm && (!mean || !invstd || !gamma || !beta)))
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_dw_fwd: NULL tensor");
    const int C = d->ci;
    float *sc = dcl_alloc(sizeof(float) * 2 * cl_pad(C));
    if (!sc) return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_dw_fwd: out of memory");
    bn_act_scale(C, sc, sc + cl_pad(C), &mean, &beta, invstd, gamma);
    const bn_row_arg arg = {(int)act, C, d->wi, x, mean, sc, beta};
    dcl_status s = cpu_dw_fwd_rows(cpu_of(be)->nt, d, y, a, w, bias, bn_act_row_fn, &arg);
    dcl_free(sc);
    return s;
}

/* Per-channel sums of d and d*(x - mean) over rows [r0, r1) into ps / pq
 * (doubles, added), d = (dy * s + dgap / HW) * act'(z): row by row, block
 * sums in float arrays (fs, fq: C floats each). */
FORCE_INLINE void fz_reduce_rows(const int act, int64_t r0, int64_t r1, int HW, int C, double *ps, double *pq,
                                  float *fs, float *fq, float *dout, const float *dy, const float *x,
                                  const float *mean, const float *sc, const float *beta, const float *s,
                                  const float *dgap) {
    const float ihw = 1.0f / (float)HW;
    int64_t r = r0, re;
    while (r < r1) {
        int n = fz_block(r, r1, HW, &re);
        const float *sn = s ? s + (size_t)n * C : NULL, *gn = dgap ? dgap + (size_t)n * C : NULL;
        memset(fs, 0, sizeof(float) * C);
        memset(fq, 0, sizeof(float) * C);
        for (int64_t i = r; i < re; i++) {
            const float *xr = x + i * C, *gr = dy + i * C;
            int c = 0;
            for (; c + VW <= C; c += VW) {
                vf xc = vld(xr + c) - vld(mean + c);
                vf g = vld(gr + c);
                if (sn) g *= vld(sn + c);
                if (gn) g += vld(gn + c) * ihw;
                vf d = fz_dact(act, xc * vld(sc + c) + vld(beta + c), g);
                vst(fs + c, vld(fs + c) + d);
                vst(fq + c, vld(fq + c) + d * xc);
                if (dout) vst(dout + i * C + c, d);
            }
            for (; c < C; c++) {
                float xc = xr[c] - mean[c];
                float g = gr[c] * (sn ? sn[c] : 1.0f) + (gn ? gn[c] * ihw : 0.0f);
                float d = fz_dact1(act, xc * sc[c] + beta[c], g);
                fs[c] += d;
                fq[c] += d * xc;
                if (dout) dout[i * C + c] = d;
            }
        }
        for (int c = 0; c < C; c++) { ps[c] += fs[c]; pq[c] += fq[c]; }
        r = re;
    }
}

dcl_status cpu_bn_act_bwd_reduce(dcl_backend *be, int N, int HW, int C, dcl_act act, float *sdy, float *sdyx,
                                 float *dgamma, float *dbeta, float *d, const float *dy, const float *x, const float *mean,
                                 const float *invstd, const float *gamma, const float *beta, const float *s,
                                 const float *dgap) {
    DCL_TRY(fz_check("bn_act_bwd_reduce", N, HW, C, act));
    if (!sdy || !sdyx || !dy || !x || !mean || !invstd || !gamma || !beta)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_bwd_reduce: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C);
    double *part = dcl_alloc(sizeof(double) * 2 * Cs * nt);
    float *sc = dcl_alloc(sizeof(float) * Cs * (1 + 2 * nt));
    if (!part || !sc) { dcl_free(part); dcl_free(sc); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_bwd_reduce: out of memory"); }
    for (int c = 0; c < C; c++) sc[c] = invstd[c] * gamma[c];
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)2 * Cs, t, T, nt);
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        double *ps = part + 2 * Cs * t, *pq = ps + Cs;
        float *fs = sc + Cs * (1 + 2 * t), *fq = fs + Cs;
        ACT_DISPATCH(act, fz_reduce_rows(A_, r0, r1, HW, C, ps, pq, fs, fq, d, dy, x, mean, sc, beta, s, dgap));
    }
    for (int c = 0; c < C; c++) {
        double a = 0, q = 0;
        for (int u = 0; u < nt; u++) { a += part[2 * Cs * u + c]; q += part[2 * Cs * u + Cs + c]; }
        sdy[c] = (float)a;
        sdyx[c] = (float)q;
        if (dgamma) dgamma[c] += (float)(q * (double)invstd[c]);
        if (dbeta) dbeta[c] += (float)a;
    }
    dcl_free(part);
    dcl_free(sc);
    return DCL_OK;
}

/* dx rows [r0, r1); A = gamma*invstd, B = -A invstd^2 sdyx / Mt, Cc = -A sdy / Mt */
FORCE_INLINE void fz_dx_rows(const int act, int64_t r0, int64_t r1, int HW, int C, float *dx, const float *dy,
                             const float *x, const float *mean, const float *sc, const float *beta,
                             const float *s, const float *dgap, const float *A, const float *B,
                             const float *Cc, int st) {
    const float ihw = 1.0f / (float)HW;
    if (!dy) {   /* act == NONE here: dx holds d (written by bn_act_bwd_reduce) */
        for (int64_t i = r0; i < r1; i++) {
            const float *xr = x + i * C;
            float *dr = dx + i * C;
            int c = 0;
            for (; c + VW <= C; c += VW)
                vstore(dr + c, vld(A + c) * vld(dr + c) + vld(B + c) * (vld(xr + c) - vld(mean + c)) + vld(Cc + c), st);
            for (; c < C; c++) dr[c] = A[c] * dr[c] + B[c] * (xr[c] - mean[c]) + Cc[c];
        }
        return;
    }
    for (int64_t i = r0; i < r1; i++) {
        int n = (int)(i / HW);
        const float *sn = s ? s + (size_t)n * C : NULL, *gn = dgap ? dgap + (size_t)n * C : NULL;
        const float *xr = x + i * C, *gr = dy + i * C;
        float *dr = dx + i * C;
        int c = 0;
        for (; c + VW <= C; c += VW) {
            vf xc = vld(xr + c) - vld(mean + c);
            vf g = vld(gr + c);
            if (sn) g *= vld(sn + c);
            if (gn) g += vld(gn + c) * ihw;
            vf d = fz_dact(act, xc * vld(sc + c) + vld(beta + c), g);
            vstore(dr + c, vld(A + c) * d + vld(B + c) * xc + vld(Cc + c), st);
        }
        for (; c < C; c++) {
            float xc = xr[c] - mean[c];
            float g = gr[c] * (sn ? sn[c] : 1.0f) + (gn ? gn[c] * ihw : 0.0f);
            float d = fz_dact1(act, xc * sc[c] + beta[c], g);
            dr[c] = A[c] * d + B[c] * xc + Cc[c];
        }
    }
}

dcl_status cpu_bn_act_bwd_dx(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx, const float *d,
                             const float *dy, const float *x, const float *mean, const float *invstd,
                             const float *gamma, const float *beta, const float *s, const float *dgap,
                             const float *sdy, const float *sdyx, int64_t Mt) {
    DCL_TRY(fz_check("bn_act_bwd_dx", N, HW, C, act));
    if (!dx || (!d && (!dy || !beta)) || !x || !mean || !invstd || !gamma || !sdy || !sdyx || Mt <= 0)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_bwd_dx: bad arguments");
    if (d && d != dx) {   /* d given elsewhere: dx = d first, then in place */
        int64_t n = (int64_t)N * HW * C;
        memmove(dx, d, sizeof(float) * n);
    }
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    const size_t Cs = cl_pad(C);
    float *sc = dcl_alloc(sizeof(float) * Cs * 4);
    if (!sc) return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_bwd_dx: out of memory");
    float *A = sc + Cs, *B = A + Cs, *Cc = B + Cs;
    for (int c = 0; c < C; c++) {
        double is = invstd[c], g = (double)gamma[c] * is;
        sc[c] = invstd[c] * gamma[c];
        A[c] = (float)g;
        B[c] = (float)(-g * is * is * (double)sdyx[c] / (double)Mt);
        Cc[c] = (float)(-g * (double)sdy[c] / (double)Mt);
    }
    const int st = want_stream(ci, rows * C);
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        if (d) fz_dx_rows(DCL_ACT_NONE, r0, r1, HW, C, dx, NULL, x, mean, sc, beta, NULL, NULL, A, B, Cc, st);
        else ACT_DISPATCH(act, fz_dx_rows(A_, r0, r1, HW, C, dx, dy, x, mean, sc, beta, s, dgap, A, B, Cc, st));
        stream_fence(st);
    }
    dcl_free(sc);
    return DCL_OK;
}

/* per-sample sums of dy * act(z) over rows [r0, r1) into gp (N*C doubles,
 * added), row by row with block sums in fs (C floats) */
FORCE_INLINE void fz_dot_rows(const int act, int64_t r0, int64_t r1, int HW, int C, double *gp, float *fs,
                              const float *dy, const float *x, const float *mean, const float *sc,
                              const float *beta) {
    int64_t r = r0, re;
    while (r < r1) {
        int n = fz_block(r, r1, HW, &re);
        double *g = gp + (size_t)n * C;
        memset(fs, 0, sizeof(float) * C);
        for (int64_t i = r; i < re; i++) {
            const float *xr = x + i * C, *dr = dy + i * C;
            int c = 0;
            for (; c + VW <= C; c += VW)
                vst(fs + c, vld(fs + c) + vld(dr + c) * fz_act(act, (vld(xr + c) - vld(mean + c)) * vld(sc + c) + vld(beta + c)));
            for (; c < C; c++) fs[c] += dr[c] * fz_act1(act, (xr[c] - mean[c]) * sc[c] + beta[c]);
        }
        for (int c = 0; c < C; c++) g[c] += fs[c];
        r = re;
    }
}

dcl_status cpu_bn_act_dot(dcl_backend *be, int N, int HW, int C, dcl_act act, float *out, const float *dy,
                          const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta) {
    DCL_TRY(fz_check("bn_act_dot", N, HW, C, act));
    if (!out || !dy || !x || !mean || !invstd || !gamma || !beta)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_dot: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C), NCs = cl_pad(N * C);
    double *part = dcl_alloc(sizeof(double) * NCs * nt);
    float *sc = dcl_alloc(sizeof(float) * Cs * (1 + nt));
    if (!part || !sc) { dcl_free(part); dcl_free(sc); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_dot: out of memory"); }
    for (int c = 0; c < C; c++) sc[c] = invstd[c] * gamma[c];
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)NCs, t, T, nt);
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        ACT_DISPATCH(act, fz_dot_rows(A_, r0, r1, HW, C, part + NCs * t, sc + Cs * (1 + t), dy, x, mean, sc, beta));
    }
    for (size_t i = 0; i < (size_t)N * C; i++) {
        double a = 0;
        for (int u = 0; u < nt; u++) a += part[NCs * u + i];
        out[i] = (float)a;
    }
    dcl_free(part);
    dcl_free(sc);
    return DCL_OK;
}

/* Per-sample sums of the squeeze-excitation backward over rows [r0, r1):
 * gp[k][n][c] (k = 0..4: dy a, dy a', a', dy a' xc, a' xc with xc = x -
 * mean; 5 blocks of NCs doubles, added), block sums in fs (5 x Cs floats).
 * Channel vectors outermost, the five sums in registers down a block of
 * rows: summed row by row in fs instead, the stores of the sums and the
 * loads of the next rows alias in the store buffer on some placements of
 * the buffers (672@19, 2 threads: 0.80-0.83 ms this way, 0.91 or
 * 1.29-1.38 ms row by row depending on the run; in a b4 training step the
 * sums of the 19x19 and 10x10 stages 26.2-27.0 -> 24.4-25.0 ms). */
FORCE_INLINE void fz_se_rows(const int act, int64_t r0, int64_t r1, int HW, int C, size_t NCs, size_t Cs,
                             double *gp, float *fs, const float *dy, const float *x, const float *mean,
                             const float *sc, const float *beta) {
    int64_t r = r0, re;
    const int cv = C - C % VW;
    while (r < r1) {
        int n = fz_block(r, r1, HW, &re);
        memset(fs, 0, sizeof(float) * 5 * Cs);
        float *f0 = fs, *f1 = fs + Cs, *f2 = f1 + Cs, *f3 = f2 + Cs, *f4 = f3 + Cs;
        for (int c = 0; c < cv; c += VW) {
            const vf m = vld(mean + c), scv = vld(sc + c), bv = vld(beta + c);
            vf s0 = vbc(0.0f), s1 = s0, s2 = s0, s3 = s0, s4 = s0;
            for (int64_t i = r; i < re; i++) {
                vf xc = vld(x + i * C + c) - m, g = vld(dy + i * C + c), a, ap;
                fz_act_both(act, xc * scv + bv, &a, &ap);
                vf gap = g * ap;
                s0 += g * a;
                s1 += gap;
                s2 += ap;
                s3 += gap * xc;
                s4 += ap * xc;
            }
            vst(f0 + c, s0);
            vst(f1 + c, s1);
            vst(f2 + c, s2);
            vst(f3 + c, s3);
            vst(f4 + c, s4);
        }
        for (int64_t i = r; i < re && cv < C; i++) {
            const float *xr = x + i * C, *dr = dy + i * C;
            for (int c = cv; c < C; c++) {
                float xc = xr[c] - mean[c], z = xc * sc[c] + beta[c], g = dr[c];
                float a = fz_act1(act, z), ap = fz_dact1(act, z, 1.0f);
                f0[c] += g * a;
                f1[c] += g * ap;
                f2[c] += ap;
                f3[c] += g * ap * xc;
                f4[c] += ap * xc;
            }
        }
        for (int k = 0; k < 5; k++) {
            double *g = gp + NCs * k + (size_t)n * C;
            const float *f = fs + Cs * k;
            for (int c = 0; c < C; c++) g[c] += f[c];
        }
        r = re;
    }
}

/* The per-thread sums of fz_se_rows (5 blocks of NCs doubles per thread)
 * added up into ds (nullable) and t[0..3] */
static void se_sums_out(int nt, size_t NC, size_t NCs, const double *part, float *ds, float *t) {
    for (int k = 0; k < 5; k++) {
        float *o = k == 0 ? ds : t + NC * (k - 1);
        if (!o) continue;
        #pragma omp parallel for num_threads(nt) schedule(static) if (NC >= 4096)
        for (size_t i = 0; i < NC; i++) {
            double a = 0;
            for (int u = 0; u < nt; u++) a += part[5 * NCs * u + NCs * k + i];
            o[i] = (float)a;
        }
    }
}

dcl_status cpu_bn_act_se_sums(dcl_backend *be, int N, int HW, int C, dcl_act act, float *ds, float *t,
                              const float *dy, const float *x, const float *mean, const float *invstd,
                              const float *gamma, const float *beta) {
    DCL_TRY(fz_check("bn_act_se_sums", N, HW, C, act));
    if (!t || !dy || !x || !mean || !invstd || !gamma || !beta)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_act_se_sums: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const size_t Cs = cl_pad(C), NCs = cl_pad(N * C), NC = (size_t)N * C;
    double *part = dcl_alloc(sizeof(double) * 5 * NCs * nt);
    float *sc = dcl_alloc(sizeof(float) * Cs * (1 + 5 * nt));
    if (!part || !sc) { dcl_free(part); dcl_free(sc); return dcl_fail(DCL_ERR_NOMEM, "cpu bn_act_se_sums: out of memory"); }
    for (int c = 0; c < C; c++) sc[c] = invstd[c] * gamma[c];
    #pragma omp parallel num_threads(nt)
    {
        int th = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)5 * NCs, th, T, nt);
        int64_t r0, r1;
        split_rows(rows, th, T, &r0, &r1);
        ACT_DISPATCH(act, fz_se_rows(A_, r0, r1, HW, C, NCs, Cs, part + 5 * NCs * th, sc + Cs * (1 + 5 * th), dy, x,
                                     mean, sc, beta));
    }
    se_sums_out(nt, NC, NCs, part, ds, t);
    dcl_free(part);
    dcl_free(sc);
    return DCL_OK;
}

/* ------------- pointwise convolution backward, fused by blocks ---------- */

/* The backward of a 1x1 convolution next to a batch norm + activation, on
 * blocks of rows small enough that the block's wide values (the recomputed
 * input or the finished gradient, and the rows of x) stay in the core's L2
 * between the elementwise work and the two matrix products.  Each thread
 * takes a contiguous range of rows; the products run on one thread each
 * (oneDNN's sgemm inside a parallel region) and every thread but the first
 * sums the weight gradient into its own copy, added at the end.  The
 * activation is computed once per element (unfused: once for the
 * recomputed map, once more for the sums), which is most of the gain on
 * the Zen 3, where the sigmoid rather than memory bounds these passes.
 * Measured there (2 threads, b4 at 299 batch 8): the backward 682 -> 628 ms
 * (the pointwise layers of the 150x150 to 38x38 stages); maps below 12 MB
 * (19x19 and down) are compute-bound and left to the plain products
 * (cpu_pw_fused_pays).  The block size hardly matters (96-384 KB within
 * noise). */
#define PWF_L2_BYTES (160 * 1024)   /* bytes of each wide block (se_pw_bwd: the three of them) */
#define PWF_MIN_BYTES ((int64_t)12 << 20)   /* the wide tensor from which the fusion pays */

static int64_t pwf_rows(int C) {
    int64_t r = PWF_L2_BYTES / ((int64_t)C * 4);
    if (r < 16) r = 16;
    if (r > 1024) r = 1024;
    return r & ~(int64_t)7;
}

/* DCL_CPU_PW_FUSED=always|never overrides the rules (tests, benchmarks).
 * Statistics from the input's covariance cost 2 K^2 flops a row (sgemm on
 * blocks of 512 rows) and C K^2 for the variances, against reading 4 C
 * bytes a row.  Measured on the Zen 3 (2 threads, data in cache, ms,
 * bn_stats / bn_stats_pw): 180000 rows 24->144 3.8 / 1.8, 200704 rows
 * 16->96 2.6 / 1.2, 45000 rows 32->192 1.06 / 0.74, 11552 rows 56->336
 * 0.34 / 0.59.  They pay while K^2 <= 6 C, on outputs of 16 MB and more
 * (smaller ones are still in the L3 when their statistics are read). */
int cpu_pw_fused_pays(dcl_backend *be, int what, int64_t rows, int C, int K) {
    (void)be;
    const char *e = getenv("DCL_CPU_PW_FUSED");
    if (e && !strcmp(e, "always")) return 1;
    if (e && !strcmp(e, "never")) return 0;
    if (what == DCL_PWF_STATS) return (int64_t)K * K <= (int64_t)6 * C && rows * C * 4 >= ((int64_t)16 << 20);
    return rows * C * 4 >= PWF_MIN_BYTES;
}

static dcl_status pwf_gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *y, int64_t ldy) {
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, y, ldy);
    return st == dnnl_success ? DCL_OK : dcl_fail(DCL_ERR_INTERNAL, "cpu fused 1x1 backward: oneDNN sgemm failed (status %d)", (int)st);
}

/* Rows [r, re) of sample n, z = (x - mean) sc + beta: m = act(z) * s[n]
 * into mb, act(z) into ab and act'(z) into apb (all ld C), so that the
 * activation (a sigmoid for SiLU, the costly part on the Zen 3) is computed
 * once per element for the product and the sums. */
FORCE_INLINE void pwf_m_rows(const int act, int64_t r, int64_t re, int C, float *mb, float *ab, float *apb,
                             const float *x, const float *mean, const float *sc, const float *beta,
                             const float *sn) {
    for (int64_t i = r; i < re; i++) {
        const float *xr = x + i * C;
        size_t o = (size_t)(i - r) * C;
        int c = 0;
        for (; c + VW <= C; c += VW) {
            vf a, ap;
            fz_act_both(act, (vld(xr + c) - vld(mean + c)) * vld(sc + c) + vld(beta + c), &a, &ap);
            vst(mb + o + c, a * vld(sn + c));
            vst(ab + o + c, a);
            vst(apb + o + c, ap);
        }
        for (; c < C; c++) {
            float z = (xr[c] - mean[c]) * sc[c] + beta[c], a = fz_act1(act, z);
            mb[o + c] = a * sn[c];
            ab[o + c] = a;
            apb[o + c] = fz_dact1(act, z, 1.0f);
        }
    }
}

/* bn_act_se_sums' per-sample sums (fz_se_rows) over rows [r, re) of sample
 * n from dy and the block's stored a and a' */
static void pwf_se_rows(int64_t r, int64_t re, int n, int C, size_t NCs, size_t Cs, double *gp, float *fs,
                        const float *dy, const float *ab, const float *apb, const float *x, const float *mean) {
    memset(fs, 0, sizeof(float) * 5 * Cs);
    float *f0 = fs, *f1 = fs + Cs, *f2 = f1 + Cs, *f3 = f2 + Cs, *f4 = f3 + Cs;
    for (int64_t i = r; i < re; i++) {
        const float *xr = x + i * C, *dr = dy + i * C, *ar = ab + (size_t)(i - r) * C, *pr = apb + (size_t)(i - r) * C;
        int c = 0;
        for (; c + VW <= C; c += VW) {
            vf xc = vld(xr + c) - vld(mean + c), g = vld(dr + c), ap = vld(pr + c);
            vf gap = g * ap;
            vst(f0 + c, vld(f0 + c) + g * vld(ar + c));
            vst(f1 + c, vld(f1 + c) + gap);
            vst(f2 + c, vld(f2 + c) + ap);
            vst(f3 + c, vld(f3 + c) + gap * xc);
            vst(f4 + c, vld(f4 + c) + ap * xc);
        }
        for (; c < C; c++) {
            float xc = xr[c] - mean[c], g = dr[c], ap = pr[c];
            f0[c] += g * ar[c];
            f1[c] += g * ap;
            f2[c] += ap;
            f3[c] += g * ap * xc;
            f4[c] += ap * xc;
        }
    }
    for (int k = 0; k < 5; k++) {
        double *g = gp + NCs * k + (size_t)n * C;
        const float *f = fs + Cs * k;
        for (int c = 0; c < C; c++) g[c] += f[c];
    }
}

/* adds the per-thread weight-gradient copies 1..nt-1 (each n floats) into dw */
static void pwf_sum_dw(int nt, float *dw, const float *part, size_t n) {
    if (nt < 2) return;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float a = dw[i];
        for (int u = 1; u < nt; u++) a += part[(size_t)(u - 1) * n + i];
        dw[i] = a;
    }
}

dcl_status cpu_se_pw_bwd(dcl_backend *be, int N, int HW, int C, int O, dcl_act act, float *dm, float *dw, float *ds,
                         float *t, const float *dy, const float *w, const float *x, const float *mean,
                         const float *invstd, const float *gamma, const float *beta, const float *s) {
    DCL_TRY(fz_check("se_pw_bwd", N, HW, C, act));
    if (O <= 0) return dcl_fail(DCL_ERR_ARG, "cpu se_pw_bwd: bad sizes (O=%d)", O);
    if (!dm || !dw || !t || !dy || !w || !x || !mean || !invstd || !gamma || !beta || !s)
        return dcl_fail(DCL_ERR_ARG, "cpu se_pw_bwd: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int64_t rows = (int64_t)N * HW;
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const int64_t R = pwf_rows(3 * C);
    const size_t Cs = cl_pad(C), NCs = cl_pad(N * C), NC = (size_t)N * C, WN = (size_t)O * C;
    double *part = dcl_alloc(sizeof(double) * 5 * NCs * nt);
    float *sc = dcl_alloc(sizeof(float) * (Cs * (1 + 5 * nt) + (size_t)R * Cs * 3 * nt));
    float *wpart = nt > 1 ? dcl_calloc(sizeof(float) * WN * (nt - 1)) : NULL;
    if (!part || !sc || (nt > 1 && !wpart)) {
        dcl_free(part); dcl_free(sc); dcl_free(wpart);
        return dcl_fail(DCL_ERR_NOMEM, "cpu se_pw_bwd: out of memory");
    }
    float *mbuf = sc + Cs * (1 + 5 * nt);
    for (int c = 0; c < C; c++) sc[c] = invstd[c] * gamma[c];
    int err = 0;
    #pragma omp parallel num_threads(nt) reduction(| : err)
    {
        int th = thr_id(), T = thr_n();
        if (part) part_zero(part, (size_t)5 * NCs, th, T, nt);
        int64_t r0, r1, r = 0, re;
        split_rows(rows, th, T, &r0, &r1);
        float *wp = th == 0 ? dw : wpart + WN * (th - 1), *mb = mbuf + (size_t)R * Cs * 3 * th;
        float *ab = mb + (size_t)R * Cs, *apb = ab + (size_t)R * Cs;
        double *gp = part + 5 * NCs * th;
        float *fs = sc + Cs * (1 + 5 * th);
        for (r = r0; r < r1 && !err; r = re) {
            int n = (int)(r / HW);
            re = (int64_t)(n + 1) * HW;
            if (re > r1) re = r1;
            if (re > r + R) re = r + R;
            ACT_DISPATCH(act, pwf_m_rows(A_, r, re, C, mb, ab, apb, x, mean, sc, beta, s + (size_t)n * C));
            err |= pwf_gemm('N', 'N', re - r, C, O, dy + r * O, O, w, C, 0.0f, dm + r * C, C) != DCL_OK;
            err |= pwf_gemm('T', 'N', O, C, re - r, dy + r * O, O, mb, C, 1.0f, wp, C) != DCL_OK;
            pwf_se_rows(r, re, n, C, NCs, Cs, gp, fs, dm, ab, apb, x, mean);
        }
    }
    if (!err) {
        pwf_sum_dw(nt, dw, wpart, WN);
        se_sums_out(nt, NC, NCs, part, ds, t);
    }
    dcl_free(part);
    dcl_free(sc);
    dcl_free(wpart);
    return err ? dcl_fail(DCL_ERR_INTERNAL, "cpu se_pw_bwd: oneDNN sgemm failed") : DCL_OK;
}

dcl_status cpu_bn_dx_pw_bwd(dcl_backend *be, int64_t rows, int C, int Ci, float *dxin, int acc, float *dw,
                            const float *d, const float *x, const float *mean, const float *invstd,
                            const float *gamma, const float *sdy, const float *sdyx, int64_t Mt, const float *w,
                            const float *xin) {
    if (rows <= 0 || C <= 0 || Ci <= 0 || Mt <= 0)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_dx_pw_bwd: bad sizes (rows=%lld C=%d Ci=%d)", (long long)rows, C, Ci);
    if (!dw || !d || !x || !mean || !invstd || !gamma || !sdy || !sdyx || !w || !xin)
        return dcl_fail(DCL_ERR_ARG, "cpu bn_dx_pw_bwd: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int nt = nthreads_for(ci, rows * C);
    if (nt > rows) nt = (int)rows;
    const int64_t R = pwf_rows(C);
    const size_t Cs = cl_pad(C), WN = (size_t)C * Ci;
    float *sc = dcl_alloc(sizeof(float) * (Cs * 3 + (size_t)R * C * nt));
    float *wpart = nt > 1 ? dcl_calloc(sizeof(float) * WN * (nt - 1)) : NULL;
    if (!sc || (nt > 1 && !wpart)) {
        dcl_free(sc); dcl_free(wpart);
        return dcl_fail(DCL_ERR_NOMEM, "cpu bn_dx_pw_bwd: out of memory");
    }
    float *A = sc, *B = A + Cs, *Cc = B + Cs, *gbuf = Cc + Cs;
    for (int c = 0; c < C; c++) {
        double is = invstd[c], g = (double)gamma[c] * is;
        A[c] = (float)g;
        B[c] = (float)(-g * is * is * (double)sdyx[c] / (double)Mt);
        Cc[c] = (float)(-g * (double)sdy[c] / (double)Mt);
    }
    int err = 0;
    #pragma omp parallel num_threads(nt) reduction(| : err)
    {
        int th = thr_id(), T = thr_n();
        int64_t r0, r1, r, re;
        split_rows(rows, th, T, &r0, &r1);
        float *wp = th == 0 ? dw : wpart + WN * (th - 1), *gb = gbuf + (size_t)R * C * th;
        for (r = r0; r < r1 && !err; r = re) {
            re = r + R < r1 ? r + R : r1;
            for (int64_t i = r; i < re; i++) {
                const float *xr = x + i * C, *dr = d + i * C;
                float *gr = gb + (i - r) * C;
                int c = 0;
                for (; c + VW <= C; c += VW)
                    vst(gr + c, vld(A + c) * vld(dr + c) + vld(B + c) * (vld(xr + c) - vld(mean + c)) + vld(Cc + c));
                for (; c < C; c++) gr[c] = A[c] * dr[c] + B[c] * (xr[c] - mean[c]) + Cc[c];
            }
            if (dxin)
                err |= pwf_gemm('N', 'N', re - r, Ci, C, gb, C, w, Ci, acc ? 1.0f : 0.0f, dxin + r * Ci, Ci) != DCL_OK;
            err |= pwf_gemm('T', 'N', C, Ci, re - r, gb, C, xin + r * Ci, Ci, 1.0f, wp, Ci) != DCL_OK;
        }
    }
    if (!err) pwf_sum_dw(nt, dw, wpart, WN);
    dcl_free(sc);
    dcl_free(wpart);
    return err ? dcl_fail(DCL_ERR_INTERNAL, "cpu bn_dx_pw_bwd: oneDNN sgemm failed") : DCL_OK;
}

/* bn_stats_pw: sums of (x - K) and of its outer products over the rows (K =
 * row 0, for precision), per thread over blocks of PWS_ROWS rows (the outer
 * products of a block by one oneDNN sgemm on the thread, in float, added in
 * double), then the statistics of y = x w^T from the mean and covariance. */
#define PWS_ROWS 512

dcl_status cpu_bn_stats_pw(dcl_backend *be, int64_t rows, int Ci, int C, float *mean, float *var, float *invstd,
                           const float *xin, const float *w, float eps) {
    if (rows <= 0 || Ci <= 0 || C <= 0) return dcl_fail(DCL_ERR_ARG, "cpu bn_stats_pw: bad sizes (rows=%lld Ci=%d C=%d)", (long long)rows, Ci, C);
    if (!mean || !var || !invstd || !xin || !w) return dcl_fail(DCL_ERR_ARG, "cpu bn_stats_pw: NULL tensor");
    cpu_impl *ci = cpu_of(be);
    int nt = nthreads_for(ci, rows * Ci * 8);
    if (nt > rows) nt = (int)rows;
    const size_t K2 = (size_t)Ci * Ci, Ks = cl_pad(Ci);
    double *acc = dcl_calloc(sizeof(double) * (K2 + Ks) * nt);
    float *fb = dcl_alloc(sizeof(float) * (Ks + (K2 + (size_t)PWS_ROWS * Ci + Ks) * nt));
    double *mu = malloc(sizeof(double) * (K2 + Ci));
    if (!acc || !fb || !mu) {
        dcl_free(acc); dcl_free(fb); free(mu);
        return dcl_fail(DCL_ERR_NOMEM, "cpu bn_stats_pw: out of memory");
    }
    float *K = fb;
    memcpy(K, xin, sizeof(float) * Ci);
    int err = 0;
    #pragma omp parallel num_threads(nt) reduction(| : err)
    {
        int t = thr_id(), T = thr_n();
        int64_t r0, r1;
        split_rows(rows, t, T, &r0, &r1);
        double *S2 = acc + (K2 + Ks) * t, *S1 = S2 + K2;
        float *P = fb + Ks + (K2 + (size_t)PWS_ROWS * Ci + Ks) * t, *xb = P + K2, *s1 = xb + (size_t)PWS_ROWS * Ci;
        for (int64_t r = r0; r < r1 && !err; r += PWS_ROWS) {
            int64_t re = r + PWS_ROWS < r1 ? r + PWS_ROWS : r1;
            memset(s1, 0, sizeof(float) * Ci);
            for (int64_t i = r; i < re; i++) {
                const float *xr = xin + i * Ci;
                float *br = xb + (i - r) * Ci;
                for (int c = 0; c < Ci; c++) {
                    float v = xr[c] - K[c];
                    br[c] = v;
                    s1[c] += v;
                }
            }
            err |= dnnl_sgemm('T', 'N', Ci, Ci, re - r, 1.0f, xb, Ci, xb, Ci, 0.0f, P, Ci) != dnnl_success;
            for (size_t k = 0; k < K2; k++) S2[k] += P[k];
            for (int c = 0; c < Ci; c++) S1[c] += s1[c];
        }
    }
    if (!err) {
        /* d = mean - K; cov = S2 / M - d d^T */
        double *cv = mu + Ci;
        for (int c = 0; c < Ci; c++) {
            double a = 0;
            for (int u = 0; u < nt; u++) a += acc[(K2 + Ks) * u + K2 + c];
            mu[c] = a / (double)rows;
        }
        for (size_t k = 0; k < K2; k++) {
            double a = 0;
            for (int u = 0; u < nt; u++) a += acc[(K2 + Ks) * u + k];
            cv[k] = a / (double)rows - mu[k / Ci] * mu[k % Ci];
        }
        #pragma omp parallel for num_threads(ci->nt) schedule(static) if (C * K2 > 65536)
        for (int o = 0; o < C; o++) {
            const float *wo = w + (size_t)o * Ci;
            double wd[Ci];
            for (int c = 0; c < Ci; c++) wd[c] = wo[c];
            double m = 0, v = 0;
            for (int c = 0; c < Ci; c++) {
                m += wd[c] * ((double)K[c] + mu[c]);
                const double *cr = cv + (size_t)c * Ci;
                double q = 0;
                #pragma omp simd reduction(+ : q)
                for (int e = 0; e < Ci; e++) q += cr[e] * wd[e];
                v += q * wd[c];
            }
            if (v < 0) v = 0;
            mean[o] = (float)m;
            var[o] = (float)v;
            invstd[o] = (float)(1.0 / sqrt(v + (double)eps));
        }
    }
    dcl_free(acc);
    dcl_free(fb);
    free(mu);
    return err ? dcl_fail(DCL_ERR_INTERNAL, "cpu bn_stats_pw: oneDNN sgemm failed") : DCL_OK;
}
