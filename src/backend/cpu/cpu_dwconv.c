/* Depthwise convolutions (groups == ci == co) directly on NHWC.
 *
 * Channels are innermost in NHWC, so every kernel tap is a vector operation
 * over a run of channels; weights are transposed once per call from OIHW
 * (C,1,KH,KW) to (KH,KW,C).  Forward and backward-data gather (each output
 * element is written once), backward-weights keeps per-thread partial sums
 * in registers along a row and in a small per-thread buffer across rows.
 */
#include "backend/cpu/cpu_internal.h"
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__)
#define DW_VW 16
#else
#define DW_VW 8
#endif
typedef float dvf __attribute__((vector_size(DW_VW * 4), aligned(4), may_alias));

static inline dvf dld(const float *p) { return *(const dvf *)p; }
static inline void dst_(float *p, dvf v) { *(dvf *)p = v; }

#define OW_TILE 4

int cpu_dw_handles(const dcl_conv_desc *d) {
    return d->groups > 1 && d->groups == d->ci && d->groups == d->co && d->kh * d->kw <= 121;
}

/* (C,1,KH,KW) -> (KH*KW, C) */
static void transpose_w(float *wt, const float *w, int C, int KK) {
    for (int c = 0; c < C; c++)
        for (int t = 0; t < KK; t++) wt[(size_t)t * C + c] = w[(size_t)c * KK + t];
}

/* y (n, oh, :, :) for one output row.  Interior columns (all taps inside)
 * use register tiles of OW_TILE pixels x DW_VW channels. */
static void dw_fwd_row(const dcl_conv_desc *d, int n, int oh, float *y, const float *x, const float *wt,
                       const float *b, int ow_lo, int ow_hi) {
    const int C = d->ci, H = d->hi, W = d->wi, Wo = d->wo, KW = d->kw, KH = d->kh;
    const int ih0 = oh * d->sh - d->pt;
    float *yrow = y + ((size_t)n * d->ho + oh) * Wo * C;
    const float *xn = x + (size_t)n * H * W * C;
    int kh0 = 0, kh1 = KH;
    while (kh0 < KH && ih0 + kh0 * d->dh < 0) kh0++;
    while (kh1 > kh0 && ih0 + (kh1 - 1) * d->dh >= H) kh1--;
    const int cv = C - C % DW_VW; /* channels handled by full vectors */
    int ow = 0;
    while (ow < Wo) {
        int interior = ow >= ow_lo && ow + OW_TILE <= ow_hi;
        if (interior) {
            const int iw0 = ow * d->sw - d->pl;
            for (int c = 0; c < cv; c += DW_VW) {
                dvf acc[OW_TILE];
                dvf bv = b ? dld(b + c) : (dvf){0};
                for (int t = 0; t < OW_TILE; t++) acc[t] = bv;
                for (int kh = kh0; kh < kh1; kh++) {
                    const float *xr = xn + (size_t)(ih0 + kh * d->dh) * W * C + c;
                    const float *wr = wt + (size_t)kh * KW * C + c;
                    for (int kw = 0; kw < KW; kw++) {
                        dvf wv = dld(wr + (size_t)kw * C);
                        const float *xp = xr + (size_t)(iw0 + kw * d->dw) * C;
                        for (int t = 0; t < OW_TILE; t++) acc[t] += dld(xp + (size_t)t * d->sw * C) * wv;
                    }
                }
                for (int t = 0; t < OW_TILE; t++) dst_(yrow + (size_t)(ow + t) * C + c, acc[t]);
            }
            for (int t = 0; t < OW_TILE; t++) {
                float *yp = yrow + (size_t)(ow + t) * C;
                for (int c = cv; c < C; c++) {
                    float s = b ? b[c] : 0.0f;
                    for (int kh = kh0; kh < kh1; kh++)
                        for (int kw = 0; kw < KW; kw++)
                            s += xn[((size_t)(ih0 + kh * d->dh) * W + (iw0 + t * d->sw + kw * d->dw)) * C + c] *
                                 wt[(size_t)(kh * KW + kw) * C + c];
                    yp[c] = s;
                }
            }
            ow += OW_TILE;
        } else {
            const int iw0 = ow * d->sw - d->pl;
            float *yp = yrow + (size_t)ow * C;
            for (int c = 0; c < C; c++) yp[c] = b ? b[c] : 0.0f;
            for (int kh = kh0; kh < kh1; kh++) {
                const float *xr = xn + (size_t)(ih0 + kh * d->dh) * W * C;
                for (int kw = 0; kw < KW; kw++) {
                    int iw = iw0 + kw * d->dw;
                    if (iw < 0 || iw >= W) continue;
                    const float *xp = xr + (size_t)iw * C, *wp = wt + (size_t)(kh * KW + kw) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) yp[c] += xp[c] * wp[c];
                }
            }
            ow++;
        }
    }
}

/* output columns whose taps are all inside the input: [lo, hi) */
static void interior_cols(int Wo, int W, int s, int p, int K, int dil, int *lo, int *hi) {
    int a = (p + s - 1) / s;                 /* first ow with ow*s - p >= 0 */
    int last = W - 1 + p - (K - 1) * dil;    /* ow*s <= last */
    int b = last < 0 ? 0 : last / s + 1;
    if (b > Wo) b = Wo;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

dcl_status cpu_dw_fwd(int nt, const dcl_conv_desc *d, float *y, const float *x, const float *w, const float *b) {
    const int C = d->ci, KK = d->kh * d->kw;
    float *wt = malloc(sizeof(float) * (size_t)KK * C);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    transpose_w(wt, w, C, KK);
    int lo, hi;
    interior_cols(d->wo, d->wi, d->sw, d->pl, d->kw, d->dw, &lo, &hi);
    const int rows = d->n * d->ho;
    if ((int64_t)rows * d->wo * C * KK < 65536) nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) dw_fwd_row(d, r / d->ho, r % d->ho, y, x, wt, b, lo, hi);
    free(wt);
    return DCL_OK;
}

/* dx (n, ih, :, :): gather over the taps that reach this input row. */
static void dw_bwd_data_row(const dcl_conv_desc *d, int n, int ih, float *dx, const float *dy, const float *wt) {
    const int C = d->ci, W = d->wi, Ho = d->ho, Wo = d->wo, KW = d->kw, KH = d->kh;
    float *dxrow = dx + ((size_t)n * d->hi + ih) * W * C;
    const float *dyn = dy + (size_t)n * Ho * Wo * C;
    int khs[128], ohs[128], nk = 0;
    for (int kh = 0; kh < KH; kh++) {
        int t = ih + d->pt - kh * d->dh;
        if (t < 0 || t % d->sh) continue;
        int oh = t / d->sh;
        if (oh >= Ho) continue;
        khs[nk] = kh;
        ohs[nk++] = oh;
    }
    for (int iw = 0; iw < W; iw++) {
        float *dp = dxrow + (size_t)iw * C;
        for (int c = 0; c < C; c++) dp[c] = 0.0f;
        for (int a = 0; a < nk; a++) {
            const float *dyr = dyn + (size_t)ohs[a] * Wo * C;
            const float *wr = wt + (size_t)khs[a] * KW * C;
            for (int kw = 0; kw < KW; kw++) {
                int t = iw + d->pl - kw * d->dw;
                if (t < 0 || t % d->sw) continue;
                int ow = t / d->sw;
                if (ow >= Wo) continue;
                const float *gp = dyr + (size_t)ow * C, *wp = wr + (size_t)kw * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) dp[c] += gp[c] * wp[c];
            }
        }
    }
}

dcl_status cpu_dw_bwd_data(int nt, const dcl_conv_desc *d, float *dx, const float *dy, const float *w) {
    const int C = d->ci, KK = d->kh * d->kw;
    if (d->kh > 128) return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu depthwise conv: kernel height %d too large", d->kh);
    float *wt = malloc(sizeof(float) * (size_t)KK * C);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    transpose_w(wt, w, C, KK);
    const int rows = d->n * d->hi;
    if ((int64_t)rows * d->wi * C * KK < 65536) nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) dw_bwd_data_row(d, r / d->hi, r % d->hi, dx, dy, wt);
    free(wt);
    return DCL_OK;
}

/* part (KK, C) += contributions of output row (n, oh) */
static void dw_bwd_w_row(const dcl_conv_desc *d, int n, int oh, float *part, float *pb, const float *dy,
                         const float *x) {
    const int C = d->ci, H = d->hi, W = d->wi, Wo = d->wo, KW = d->kw, KH = d->kh;
    const int ih0 = oh * d->sh - d->pt;
    const float *dyr = dy + ((size_t)n * d->ho + oh) * Wo * C;
    const float *xn = x + (size_t)n * H * W * C;
    const int cv = C - C % DW_VW;
    if (pb)
        for (int ow = 0; ow < Wo; ow++) {
            const float *gp = dyr + (size_t)ow * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) pb[c] += gp[c];
        }
    for (int kh = 0; kh < KH; kh++) {
        int ih = ih0 + kh * d->dh;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xn + (size_t)ih * W * C;
        for (int kw = 0; kw < KW; kw++) {
            /* ow range with iw = ow*sw - pl + kw*dw inside [0, W) */
            int off = kw * d->dw - d->pl;
            int o0 = off >= 0 ? 0 : (-off + d->sw - 1) / d->sw;
            int o1 = W - 1 - off < 0 ? 0 : (W - 1 - off) / d->sw + 1;
            if (o1 > Wo) o1 = Wo;
            if (o0 >= o1) continue;
            float *pr = part + (size_t)(kh * KW + kw) * C;
            for (int c = 0; c < cv; c += DW_VW) {
                dvf a0 = {0}, a1 = {0};
                int ow = o0;
                for (; ow + 1 < o1; ow += 2) {
                    a0 += dld(dyr + (size_t)ow * C + c) * dld(xr + (size_t)(ow * d->sw + off) * C + c);
                    a1 += dld(dyr + (size_t)(ow + 1) * C + c) * dld(xr + (size_t)((ow + 1) * d->sw + off) * C + c);
                }
                if (ow < o1) a0 += dld(dyr + (size_t)ow * C + c) * dld(xr + (size_t)(ow * d->sw + off) * C + c);
                dst_(pr + c, dld(pr + c) + a0 + a1);
            }
            for (int c = cv; c < C; c++) {
                float s = 0.0f;
                for (int ow = o0; ow < o1; ow++) s += dyr[(size_t)ow * C + c] * xr[(size_t)(ow * d->sw + off) * C + c];
                pr[c] += s;
            }
        }
    }
}

dcl_status cpu_dw_bwd_weights(int nt, const dcl_conv_desc *d, float *dw, float *db, const float *dy, const float *x) {
    const int C = d->ci, KK = d->kh * d->kw;
    const int rows = d->n * d->ho;
    if ((int64_t)rows * d->wo * C * KK < 65536) nt = 1;
    if (nt > rows) nt = rows;
    size_t per = (size_t)(KK + 1) * C;
    float *part = calloc(per * nt, sizeof(float));
    if (!part) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    #pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
        int t = 0, T = 1;
#endif
        float *pt = part + per * t;
        int r0 = (int)((int64_t)rows * t / T), r1 = (int)((int64_t)rows * (t + 1) / T);
        for (int r = r0; r < r1; r++) dw_bwd_w_row(d, r / d->ho, r % d->ho, pt, db ? pt + (size_t)KK * C : NULL, dy, x);
    }
    /* reduce threads, transpose back (KK, C) -> (C, KK), accumulate */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < KK; k++) {
            float s = 0.0f;
            for (int u = 0; u < nt; u++) s += part[per * u + (size_t)k * C + c];
            dw[(size_t)c * KK + k] += s;
        }
    if (db)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int u = 0; u < nt; u++) s += part[per * u + (size_t)KK * C + c];
            db[c] += s;
        }
    free(part);
    return DCL_OK;
}
