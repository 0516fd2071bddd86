/* Depthwise convolutions (groups == ci == co) with own NHWC kernels.
 *
 * cuDNN's fp32 NHWC depthwise kernels run far below memory bandwidth; these
 * are direct: channels are innermost, so a warp reads consecutive channels
 * of one pixel.  Any padding (asymmetric TF "same" included), stride and
 * dilation is handled in the index arithmetic, no padded copies.
 *   forward:   one thread per output pixel and group of W channels (W = 4
 *              where C % 4 == 0 and the buffers are 16-byte aligned, else
 *              1), bias, activation and an accumulated residual fused;
 *   bwd data:  the same per input pixel, gathering the taps that saw it;
 *   bwd filter: a column reduction over the N*Ho*Wo output rows with one
 *              sum per tap (cuda_reduce.cuh), accumulated into dw (+=).
 *              Exact, but on an H200 3-46x slower than cuDNN's, so it runs
 *              only with the depthwise option at 2 (cuDNN otherwise).
 * Kernels of at most 25 taps (3x3, 5x5, 1xk, ...); larger ones use cuDNN.
 * Measured on an H200 (batch 8, b4 shapes, docs/CUDA.md): forward 4.7-8.3x
 * faster than cuDNN, backward data 4.1-7.7x.
 */
#include "backend/cuda/cuda_reduce.cuh"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct dw_geom {
    int n, c, hi, wi, ho, wo, kh, kw, sh, sw, dh, dw, pt, pl;
} dw_geom;

static dw_geom geom_of(const dcl_conv_desc *d) {
    dw_geom g = {d->n, d->ci, d->hi, d->wi, d->ho, d->wo, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw, d->pt, d->pl};
    return g;
}

int cu_dw_applies(const cu_impl *I, const dcl_conv_desc *d, int bwd_filter) {
    return I->opt.depthwise > (bwd_filter ? 1 : 0) && d->groups == d->ci && d->co == d->ci && d->kh * d->kw <= 25;
}

/* divisors of the index decomposition (channels, columns, rows) */
template <typename IX> struct dw_div { cu_idiv<IX> c, w, h; };
template <typename IX> static dw_div<IX> dw_div_make(int c, int w, int h) {
    dw_div<IX> r = {cu_idiv<IX>::make(c), cu_idiv<IX>::make(w), cu_idiv<IX>::make(h)};
    return r;
}

/* per output element i (row (n,oh,ow), channel c): dy * x at every tap */
template <int KMAX>
struct f_dw_taps {
    dw_geom g;
    const float *dy, *x;
    __device__ void operator()(int64_t i, int c, float *v) const {
        int64_t t = i / g.c;
        const int ow = (int)(t % g.wo); t /= g.wo;
        const int oh = (int)(t % g.ho);
        const int64_t n = t / g.ho;
        const float gy = cu_ld(dy, i);
        const int h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
        const float *xp = x + n * g.hi * g.wi * g.c + c;
#pragma unroll
        for (int k = 0; k < KMAX; k++) {
            float r = 0.f;
            const int a = k / g.kw, bb = k % g.kw;
            if (a < g.kh) {
                const int h = h0 + a * g.dh, ww = w0 + bb * g.dw;
                if (h >= 0 && h < g.hi && ww >= 0 && ww < g.wi) r = gy * cu_ld(xp, ((int64_t)h * g.wi + ww) * g.c);
            }
            v[k] = r;
        }
    }
};

template <int KMAX>
struct g_dw_acc {
    float *dw;
    int taps;
    __device__ void operator()(int b, int c, const double *s) const {
#pragma unroll
        for (int k = 0; k < KMAX; k++)
            if (k < taps) {
                float *p = dw + (int64_t)c * taps + k;
                *p = (float)((double)*p + s[k]);
            }
    }
};

/* ---- forward and backward data: W channels per thread ----
 * W = 4 where C % 4 == 0 and the activations are 16-byte aligned (one
 * aligned load per tap), else W = 1.  The weights are first transposed to
 * tap-major wt[k][c], so that a tap's weights of W channels are contiguous
 * and a warp's loads are too.  The per-element code is __host__ __device__
 * so that dcl_cuda_dw_host_selftest runs it on the CPU. */

template <int W> struct dw_fv { float v[W]; };

template <int W>
__host__ __device__ __forceinline__ dw_fv<W> dw_ld(const float *p) {
    dw_fv<W> r;
#ifdef __CUDA_ARCH__
    if constexpr (W == 4) {
        const float4 t = *reinterpret_cast<const float4 *>(p);
        r.v[0] = t.x; r.v[1] = t.y; r.v[2] = t.z; r.v[3] = t.w;
    } else
#endif
    {
#pragma unroll
        for (int j = 0; j < W; j++) r.v[j] = p[j];
    }
    return r;
}
template <int W>
__host__ __device__ __forceinline__ void dw_st(float *p, const dw_fv<W> &v) {
#ifdef __CUDA_ARCH__
    if constexpr (W == 4) {
        *reinterpret_cast<float4 *>(p) = make_float4(v.v[0], v.v[1], v.v[2], v.v[3]);
    } else
#endif
    {
#pragma unroll
        for (int j = 0; j < W; j++) p[j] = v.v[j];
    }
}
__host__ __device__ __forceinline__ float dw_act(float v, int act) {
    if (act == DCL_ACT_RELU) return v > 0.f ? v : 0.f;
    if (act == DCL_ACT_SILU) return v * (1.f / (1.f + expf(-v)));
    if (act == DCL_ACT_SIGMOID) return 1.f / (1.f + expf(-v));
    return v;
}

/* output group i = ((n * ho + oh) * wo + ow) * C/W + c/W; dv = (C/W, wo, ho) */
template <int W, typename IX>
__host__ __device__ __forceinline__ void dw_fwd_at(IX i, const dw_geom &g, const dw_div<IX> &dv, float *y,
                                                   const float *x, const float *wt, const float *b, int act,
                                                   int accumulate) {
    const IX t = dv.c.div(i);
    const int c = (int)(i - t * (IX)(g.c / W)) * W;
    const IX t2 = dv.w.div(t);
    const int ow = (int)(t - t2 * (IX)g.wo);
    const IX n = dv.h.div(t2);
    const int oh = (int)(t2 - n * (IX)g.ho);
    const int h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    const float *xp = x + (int64_t)n * g.hi * g.wi * g.c + c;
    dw_fv<W> acc;
#pragma unroll
    for (int j = 0; j < W; j++) acc.v[j] = 0.f;
    for (int a = 0; a < g.kh; a++) {
        const int h = h0 + a * g.dh;
        if (h < 0 || h >= g.hi) continue;
        for (int bb = 0; bb < g.kw; bb++) {
            const int ww = w0 + bb * g.dw;
            if (ww < 0 || ww >= g.wi) continue;
            const dw_fv<W> v = dw_ld<W>(xp + ((int64_t)h * g.wi + ww) * g.c);
            const dw_fv<W> k = dw_ld<W>(wt + (int64_t)(a * g.kw + bb) * g.c + c);
#pragma unroll
            for (int j = 0; j < W; j++) acc.v[j] += v.v[j] * k.v[j];
        }
    }
    float *yp = y + (int64_t)i * W;
    if (accumulate) {
        const dw_fv<W> o = dw_ld<W>(yp);
#pragma unroll
        for (int j = 0; j < W; j++) acc.v[j] += o.v[j];
    }
#pragma unroll
    for (int j = 0; j < W; j++) {
        if (b) acc.v[j] += b[c + j];
        acc.v[j] = dw_act(acc.v[j], act);
    }
    dw_st<W>(yp, acc);
}

/* input group i = ((n * hi + h) * wi + x) * C/W + c/W; dv = (C/W, wi, hi) */
template <int W, typename IX>
__host__ __device__ __forceinline__ void dw_bwd_at(IX i, const dw_geom &g, const dw_div<IX> &dv, float *dx,
                                                   const float *dy, const float *wt) {
    const IX t = dv.c.div(i);
    const int c = (int)(i - t * (IX)(g.c / W)) * W;
    const IX t2 = dv.w.div(t);
    const int xx = (int)(t - t2 * (IX)g.wi);
    const IX n = dv.h.div(t2);
    const int h = (int)(t2 - n * (IX)g.hi);
    const float *dyp = dy + (int64_t)n * g.ho * g.wo * g.c + c;
    dw_fv<W> acc;
#pragma unroll
    for (int j = 0; j < W; j++) acc.v[j] = 0.f;
    for (int a = 0; a < g.kh; a++) {
        const int th = h + g.pt - a * g.dh;
        if (th < 0) continue;
        int oh = th;                            /* stride 1 needs no division */
        if (g.sh != 1) { if (th % g.sh) continue; oh = th / g.sh; }
        if (oh >= g.ho) continue;
        for (int bb = 0; bb < g.kw; bb++) {
            const int tw = xx + g.pl - bb * g.dw;
            if (tw < 0) continue;
            int ow = tw;
            if (g.sw != 1) { if (tw % g.sw) continue; ow = tw / g.sw; }
            if (ow >= g.wo) continue;
            const dw_fv<W> v = dw_ld<W>(dyp + ((int64_t)oh * g.wo + ow) * g.c);
            const dw_fv<W> k = dw_ld<W>(wt + (int64_t)(a * g.kw + bb) * g.c + c);
#pragma unroll
            for (int j = 0; j < W; j++) acc.v[j] += v.v[j] * k.v[j];
        }
    }
    dw_st<W>(dx + (int64_t)i * W, acc);
}

template <int W, typename IX>
__global__ void k_dw_fwd(IX total, dw_geom g, dw_div<IX> dv, float *y, const float *x, const float *__restrict__ wt,
                         const float *__restrict__ b, int act, int accumulate) {
    CU_FORI(IX, i, total) dw_fwd_at<W, IX>(i, g, dv, y, x, wt, b, act, accumulate);
}

template <int W, typename IX>
__global__ void k_dw_bwd(IX total, dw_geom g, dw_div<IX> dv, float *dx, const float *dy, const float *__restrict__ wt) {
    CU_FORI(IX, i, total) dw_bwd_at<W, IX>(i, g, dv, dx, dy, wt);
}

/* wt[k][c] <- w[c][k] (taps k, C channels) */
__global__ void k_dw_tapmajor(int64_t total, int taps, int C, float *wt, const float *w) {
    CU_FOR(i, total) {
        const int c = (int)(i % C);
        const int k = (int)(i / C);
        wt[i] = w[(int64_t)c * taps + k];
    }
}

static int dw_vec_ok(const cu_impl *I, const dw_geom &g, const void *a, const void *b) {
    return I->opt.dw_vector && g.c % 4 == 0 && (((uintptr_t)a | (uintptr_t)b) & 15) == 0;
}

static dcl_status dw_tapmajor(cu_impl *I, const dw_geom &g, const float *w, const float **wt, const char *op) {
    const int taps = g.kh * g.kw;
    const int64_t total = (int64_t)taps * g.c;
    float *p;
    DCL_TRY(cu_scratch(I, CU_SCR_WT, (size_t)total * sizeof(float), (void **)&p, op));
    k_dw_tapmajor<<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, taps, g.c, p, w);
    CU_LAUNCHED(op, "k_dw_tapmajor");
    *wt = p;
    return DCL_OK;
}

/* ---- host self-test of the per-element code ---- */

static double dw_ref_fwd(const dw_geom &g, const float *x, const float *w, int n, int oh, int ow, int c) {
    double s = 0;
    for (int a = 0; a < g.kh; a++)
        for (int bb = 0; bb < g.kw; bb++) {
            const int h = oh * g.sh - g.pt + a * g.dh, ww = ow * g.sw - g.pl + bb * g.dw;
            if (h < 0 || h >= g.hi || ww < 0 || ww >= g.wi) continue;
            s += (double)x[(((int64_t)n * g.hi + h) * g.wi + ww) * g.c + c] * w[(int64_t)c * g.kh * g.kw + a * g.kw + bb];
        }
    return s;
}

/* one geometry, W channels per thread: forward (plain and accumulating,
 * with bias and SiLU) and backward data against the direct form in double */
template <int W>
static int dw_selftest_case(int t, const dw_geom &g, const float *x, const float *w, const float *wt,
                            const float *b, const float *dy, float *y, float *dx, char *msg, size_t msgn, int bad) {
    const int taps = g.kh * g.kw;
    const size_t nx = (size_t)g.n * g.hi * g.wi * g.c, ny = (size_t)g.n * g.ho * g.wo * g.c;
    int nbad = 0;
    for (int acc = 0; acc < 2; acc++) {
        for (size_t i = 0; i < ny; i++) y[i] = acc ? dy[i] : 777.f;
        const dw_div<unsigned> dv = dw_div_make<unsigned>(g.c / W, g.wo, g.ho);
        for (unsigned i = 0; i < ny / W; i++) dw_fwd_at<W, unsigned>(i, g, dv, y, x, wt, b, DCL_ACT_SILU, acc);
        for (int n = 0; n < g.n; n++)
            for (int oh = 0; oh < g.ho; oh++)
                for (int ow = 0; ow < g.wo; ow++)
                    for (int c = 0; c < g.c; c++) {
                        const size_t o = (((size_t)n * g.ho + oh) * g.wo + ow) * g.c + c;
                        double z = dw_ref_fwd(g, x, w, n, oh, ow, c) + (acc ? dy[o] : 0.0) + b[c];
                        z = z / (1.0 + exp(-z));
                        if (!(fabs(y[o] - z) <= 1e-5 + 1e-5 * fabs(z))) {
                            if (!bad && !nbad && msg)
                                snprintf(msg, msgn, "case %d, %d channel%s per thread, forward%s: y[n=%d oh=%d ow=%d c=%d] = %g, "
                                         "expected %g", t, W, W > 1 ? "s" : "", acc ? " (accumulate)" : "", n, oh, ow, c,
                                         (double)y[o], z);
                            nbad++;
                        }
                    }
    }
    double *ref = (double *)calloc(nx, sizeof(double));
    if (!ref) {
        if (msg && !bad && !nbad) snprintf(msg, msgn, "out of host memory");
        return nbad + 1;
    }
    for (int n = 0; n < g.n; n++)
        for (int oh = 0; oh < g.ho; oh++)
            for (int ow = 0; ow < g.wo; ow++)
                for (int c = 0; c < g.c; c++)
                    for (int a = 0; a < g.kh; a++)
                        for (int bb = 0; bb < g.kw; bb++) {
                            const int h = oh * g.sh - g.pt + a * g.dh, ww = ow * g.sw - g.pl + bb * g.dw;
                            if (h < 0 || h >= g.hi || ww < 0 || ww >= g.wi) continue;
                            ref[(((size_t)n * g.hi + h) * g.wi + ww) * g.c + c] +=
                                (double)dy[(((size_t)n * g.ho + oh) * g.wo + ow) * g.c + c] * w[(size_t)c * taps + a * g.kw + bb];
                        }
    const dw_div<unsigned> dv = dw_div_make<unsigned>(g.c / W, g.wi, g.hi);
    for (unsigned i = 0; i < nx / W; i++) dw_bwd_at<W, unsigned>(i, g, dv, dx, dy, wt);
    for (size_t i = 0; i < nx; i++)
        if (!(fabs(dx[i] - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]))) {
            if (!bad && !nbad && msg)
                snprintf(msg, msgn, "case %d, %d channel%s per thread, backward data: dx[%zu] = %g, expected %g", t, W,
                         W > 1 ? "s" : "", i, (double)dx[i], ref[i]);
            nbad++;
        }
    free(ref);
    return nbad;
}

extern "C" int dcl_cuda_dw_host_selftest(char *msg, size_t msgn) {
    static const int cases[][13] = {
        /* n  c  hi wi kh kw sh sw dh dw pt pl extra(bottom/right padding) */
        {2, 8, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0},
        {1, 12, 10, 10, 3, 3, 2, 2, 1, 1, 0, 0, 1},   /* TF same, stride 2 */
        {2, 4, 11, 9, 5, 5, 1, 1, 1, 1, 2, 2, 0},
        {1, 16, 12, 12, 5, 5, 2, 2, 1, 1, 1, 1, 1},
        {1, 8, 9, 9, 3, 3, 1, 1, 2, 2, 2, 2, 0},      /* dilation 2 */
        {3, 4, 5, 6, 1, 3, 1, 2, 1, 1, 0, 1, 0},      /* 1x3, unequal strides */
        {2, 6, 8, 7, 3, 3, 2, 1, 1, 1, 1, 1, 0},      /* C % 4 != 0: one channel per thread only */
    };
    int bad = 0;
    if (msg && msgn) msg[0] = 0;
    for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
        const int *q = cases[t];
        dw_geom g;
        g.n = q[0]; g.c = q[1]; g.hi = q[2]; g.wi = q[3]; g.kh = q[4]; g.kw = q[5]; g.sh = q[6]; g.sw = q[7];
        g.dh = q[8]; g.dw = q[9]; g.pt = q[10]; g.pl = q[11];
        const int pb = g.pt + q[12], pr = g.pl + q[12];
        g.ho = (g.hi + g.pt + pb - g.dh * (g.kh - 1) - 1) / g.sh + 1;
        g.wo = (g.wi + g.pl + pr - g.dw * (g.kw - 1) - 1) / g.sw + 1;
        const int taps = g.kh * g.kw;
        const size_t nx = (size_t)g.n * g.hi * g.wi * g.c, ny = (size_t)g.n * g.ho * g.wo * g.c;
        float *x = (float *)malloc(nx * sizeof(float)), *w = (float *)malloc((size_t)taps * g.c * sizeof(float));
        float *wt = (float *)malloc((size_t)taps * g.c * sizeof(float)), *b = (float *)malloc(g.c * sizeof(float));
        float *y = (float *)malloc(ny * sizeof(float)), *dy = (float *)malloc(ny * sizeof(float));
        float *dx = (float *)malloc(nx * sizeof(float));
        if (!x || !w || !wt || !b || !y || !dy || !dx) {
            free(x); free(w); free(wt); free(b); free(y); free(dy); free(dx);
            if (msg && !bad) snprintf(msg, msgn, "out of host memory");
            return bad + 1;
        }
        uint32_t r = 12345u + (uint32_t)t;
        auto rnd = [&r]() { r = r * 1664525u + 1013904223u; return (float)((r >> 8) * (1.0 / 16777216.0)) * 2.f - 1.f; };
        for (size_t i = 0; i < nx; i++) x[i] = rnd();
        for (int i = 0; i < taps * g.c; i++) w[i] = rnd();
        for (int i = 0; i < g.c; i++) b[i] = rnd();
        for (size_t i = 0; i < ny; i++) dy[i] = rnd();
        for (int k = 0; k < taps; k++)
            for (int c = 0; c < g.c; c++) wt[(size_t)k * g.c + c] = w[(size_t)c * taps + k];
        bad += dw_selftest_case<1>(t, g, x, w, wt, b, dy, y, dx, msg, msgn, bad);
        if (g.c % 4 == 0) bad += dw_selftest_case<4>(t, g, x, w, wt, b, dy, y, dx, msg, msgn, bad);
        free(x); free(w); free(wt); free(b); free(y); free(dy); free(dx);
    }
    return bad;
}

template <int W>
static void dw_fwd_launch(cu_impl *I, const dw_geom &g, int64_t total, float *y, const float *x, const float *wt,
                          const float *b, dcl_act act, int accumulate) {
    const int64_t n = total / W;
    if (cu_small(total))
        k_dw_fwd<W, unsigned><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, g, dw_div_make<unsigned>(g.c / W, g.wo, g.ho), y, x, wt, b, (int)act, accumulate);
    else
        k_dw_fwd<W, int64_t><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, g, dw_div_make<int64_t>(g.c / W, g.wo, g.ho), y, x, wt, b, (int)act, accumulate);
}

template <int W>
static void dw_bwd_launch(cu_impl *I, const dw_geom &g, int64_t total, float *dx, const float *dy, const float *wt) {
    const int64_t n = total / W;
    if (cu_small(total))
        k_dw_bwd<W, unsigned><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, g, dw_div_make<unsigned>(g.c / W, g.wi, g.hi), dx, dy, wt);
    else
        k_dw_bwd<W, int64_t><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, g, dw_div_make<int64_t>(g.c / W, g.wi, g.hi), dx, dy, wt);
}

dcl_status cu_dw_fwd(cu_impl *I, const dcl_conv_desc *d, float *y, const float *x, const float *w,
                     const float *b, dcl_act act, int accumulate, const char *op) {
    const dw_geom g = geom_of(d);
    const int64_t total = (int64_t)g.n * g.ho * g.wo * g.c;
    const float *wt;
    DCL_TRY(dw_tapmajor(I, g, w, &wt, op));
    if (dw_vec_ok(I, g, y, x)) dw_fwd_launch<4>(I, g, total, y, x, wt, b, act, accumulate);
    else dw_fwd_launch<1>(I, g, total, y, x, wt, b, act, accumulate);
    CU_LAUNCHED(op, "k_dw_fwd");
    return DCL_OK;
}

dcl_status cu_dw_bwd_data(cu_impl *I, const dcl_conv_desc *d, float *dx, const float *dy, const float *w,
                          const char *op) {
    const dw_geom g = geom_of(d);
    const int64_t total = (int64_t)g.n * g.hi * g.wi * g.c;
    const float *wt;
    DCL_TRY(dw_tapmajor(I, g, w, &wt, op));
    if (dw_vec_ok(I, g, dx, dy)) dw_bwd_launch<4>(I, g, total, dx, dy, wt);
    else dw_bwd_launch<1>(I, g, total, dx, dy, wt);
    CU_LAUNCHED(op, "k_dw_bwd");
    return DCL_OK;
}

dcl_status cu_dw_bwd_weights(cu_impl *I, const dcl_conv_desc *d, float *dw, const float *dy, const float *x,
                             const char *op) {
    const dw_geom g = geom_of(d);
    const int taps = d->kh * d->kw;
    const int64_t M = (int64_t)g.n * g.ho * g.wo;
    if (taps <= 9) {
        f_dw_taps<9> f = {g, dy, x};
        g_dw_acc<9> a = {dw, taps};
        return cu_colreduce<9>(I, op, 1, M, g.c, f, a);
    }
    f_dw_taps<25> f = {g, dy, x};
    g_dw_acc<25> a = {dw, taps};
    return cu_colreduce<25>(I, op, 1, M, g.c, f, a);
}
