/* Depthwise convolutions (groups == ci == co) directly on NHWC.
 *
 * Channels are innermost in NHWC, so every kernel tap is a vector operation
 * over a run of channels; weights are transposed once per call from OIHW
 * (C,1,KH,KW) to (KH,KW,C).  Forward and backward-data gather (each output
 * element is written once), backward-weights keeps per-thread partial sums
 * in registers along a row and in a small per-thread buffer across rows.
 */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_vec.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* 8 lanes with AVX (also under AVX-512: these kernels are bound by memory
 * bandwidth, and on Zen 4 a 512-bit operation runs as two 256-bit halves
 * anyway), 4 without. */
#if defined(__AVX__)
#define DW_VW 8
#else
#define DW_VW 4
#endif
typedef float dvf __attribute__((vector_size(DW_VW * 4), aligned(4), may_alias));

static inline dvf dld(const float *p) { return *(const dvf *)p; }
static inline void dst_(float *p, dvf v) { *(dvf *)p = v; }

/* Prefetch of the data the next row of a row loop reads and the current
 * one does not (the next input rows, the next dy row), a few lines per
 * step of the current row's loop, so they arrive while the current row is
 * computed: the kernels below walk rows one channel vector or one tile at a
 * time, patterns of strided reads the hardware prefetchers do not follow
 * on maps larger than the caches.  In a b4 training step (299, batch 8) the
 * backward of the 3x3 192@75 layers (data + weights) went 8.6-8.8 -> 6.6-6.8
 * ms with it, 48@150 7.7-7.9 -> 5.2-5.3 ms. */
typedef struct pf_walk {
    const char *p[4];
    size_t n[4];   /* bytes */
    int r, per;    /* current region, lines per step */
    size_t off;
} pf_walk;
static inline void pf_step(pf_walk *w) {
    for (int k = 0; k < w->per; k++) {
        while (w->r < 4 && w->off >= w->n[w->r]) { w->r++; w->off = 0; }
        if (w->r >= 4) return;
        __builtin_prefetch(w->p[w->r] + w->off, 0, 2);
        w->off += 64;
    }
}
/* add a region; lines per step for `steps` steps */
static inline void pf_add(pf_walk *w, const void *p, size_t bytes) {
    for (int k = 0; k < 4; k++)
        if (!w->n[k]) { w->p[k] = p; w->n[k] = bytes; return; }
}
static inline void pf_plan(pf_walk *w, int64_t steps) {
    size_t lines = 0;
    for (int k = 0; k < 4; k++) lines += (w->n[k] + 63) / 64;
    w->per = steps > 0 ? (int)((lines + steps - 1) / steps) : 0;
    if (w->per > 16) w->per = 16;
}

static inline void vstore_st(float *p, dvf v, int st) {
#if defined(__AVX__) && DW_VW == 8
    if (st && !((uintptr_t)p & 31)) { _mm256_stream_ps(p, (__m256)v); return; }
#endif
    (void)st;
    dst_(p, v);
}

#define MAXTAP 121
#define MAXT 8

int cpu_dw_handles(const dcl_conv_desc *d) {
    return d->groups > 1 && d->groups == d->ci && d->groups == d->co && d->kh * d->kw <= MAXTAP;
}

/* (C,1,KH,KW) -> (KH*KW, C) */
static void transpose_w(float *wt, const float *w, int C, int KK) {
    for (int c = 0; c < C; c++)
        for (int t = 0; t < KK; t++) wt[(size_t)t * C + c] = w[(size_t)c * KK + t];
}

/* One tile: T output pixels (out + t*ostep) over all channels, each the sum
 * over ntap taps of in[off[a] + t*istep] * wt[woff[a]] (+ bias).  T is a
 * constant after inlining, so the T accumulators live in registers. */
static inline __attribute__((always_inline)) void gather_tile(const int T, int C, float *out, ptrdiff_t ostep,
                                                              const float *in, ptrdiff_t istep, const ptrdiff_t *off,
                                                              const float *wt, const ptrdiff_t *woff, int ntap,
                                                              const float *bias, pf_walk *pw, int st) {
    const int cv = C - C % DW_VW;
    for (int c = 0; c < cv; c += DW_VW) {
        if (pw) pf_step(pw);
        dvf acc[MAXT];
        dvf bv = bias ? dld(bias + c) : (dvf){0};
        for (int t = 0; t < T; t++) acc[t] = bv;
        for (int a = 0; a < ntap; a++) {
            dvf wv = dld(wt + woff[a] + c);
            const float *ip = in + off[a] + c;
            for (int t = 0; t < T; t++) acc[t] += dld(ip + t * istep) * wv;
        }
        for (int t = 0; t < T; t++) vstore_st(out + t * ostep + c, acc[t], st);
    }
    for (int c = cv; c < C; c++)
        for (int t = 0; t < T; t++) {
            float sacc = bias ? bias[c] : 0.0f;
            for (int a = 0; a < ntap; a++) sacc += in[off[a] + t * istep + c] * wt[woff[a] + c];
            out[t * ostep + c] = sacc;
        }
}

/* Tiles of up to MAXT pixels over [p0, p1) of a pixel sequence where every
 * tap is valid; pixel p is at out + p*ostep and reads in + off[a] + p*istep. */
static void gather_run(int C, int p0, int p1, float *out, ptrdiff_t ostep, const float *in, ptrdiff_t istep,
                       const ptrdiff_t *off, const float *wt, const ptrdiff_t *woff, int ntap, const float *bias,
                       pf_walk *pw, int st) {
    int p = p0;
    while (p < p1) {
        int left = p1 - p;
        float *o = out + p * ostep;
        const float *i = in + p * istep;
        if (left >= 8) { gather_tile(8, C, o, ostep, i, istep, off, wt, woff, ntap, bias, pw, st); p += 8; }
        else if (left >= 4) { gather_tile(4, C, o, ostep, i, istep, off, wt, woff, ntap, bias, pw, st); p += 4; }
        else if (left >= 2) { gather_tile(2, C, o, ostep, i, istep, off, wt, woff, ntap, bias, pw, st); p += 2; }
        else { gather_tile(1, C, o, ostep, i, istep, off, wt, woff, ntap, bias, pw, st); p += 1; }
    }
}

/* Generic "valid pixels of a line" helper: for taps a with input position
 * pos = base_a + p*step (p = pixel index), the pixels where every tap is in
 * [0, lim) form [lo, hi). */
static void line_interior(int npix, int ntap, const int *base, int step, int lim, int *lo, int *hi) {
    int l = 0, h = npix;
    for (int a = 0; a < ntap; a++) {
        /* base + p*step >= 0  and  base + p*step <= lim - 1 */
        int pl = base[a] >= 0 ? 0 : (-base[a] + step - 1) / step;
        int ph = lim - 1 - base[a] < 0 ? 0 : (lim - 1 - base[a]) / step + 1;
        if (pl > l) l = pl;
        if (ph < h) h = ph;
    }
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Outputs of DW_BIG_MB and more are written with streaming stores and the
 * rows ahead prefetched (pf_walk); the stride-1 kernel below walks tiles
 * outer on them.  On the 2-core Zen 3 (32 MB L3, shared) a threshold of 4
 * MB measured better than 8 (cpu_conv.c, dw_direct): the next layer finds
 * little of such an output in the cache either way. */
#define DW_BIG_MB 4.0
int cpu_dw_big(int n, int h, int w, int C) {
    return (double)n * h * w * C * sizeof(float) >= DW_BIG_MB * 1048576.0;
}
static inline void dw_fence(int st) {
#if defined(__SSE__)
    if (st) _mm_sfence();
#endif
    (void)st;
}

/* Row of a forward-style depthwise conv: output row oh of sample n.
 * in: (Hi, Wi, C) of this sample; out: (Ho, Wo, C).  Used for the forward
 * pass and, with flipped weights and mirrored padding, for backward data at
 * stride 1. */
typedef struct dw_geom {
    int C, Hi, Wi, Ho, Wo, KH, KW, sh, sw, dh, dw, pt, pl;
    int big;   /* output larger than the caches: prefetch and streaming stores */
} dw_geom;

/* rowp (NULL: the rows of in, one after the other): input row ih at
 * rowp[ih], in then the lowest of them (cpu_dw_fwd_rows' ring) */
static void fwd_row_p(const dw_geom *g, int oh, float *out, const float *in, const float *const *rowp,
                      const float *wt, const float *bias) {
    const int C = g->C;
    ptrdiff_t off[MAXTAP], woff[MAXTAP];
    int base[MAXTAP];
    int ih0 = oh * g->sh - g->pt;
    int ntap = 0;
    for (int kh = 0; kh < g->KH; kh++) {
        int ih = ih0 + kh * g->dh;
        if (ih < 0 || ih >= g->Hi) continue;
        const ptrdiff_t ro = rowp ? rowp[ih] - in : (ptrdiff_t)ih * g->Wi * C;
        for (int kw = 0; kw < g->KW; kw++) {
            base[ntap] = kw * g->dw - g->pl;
            off[ntap] = ro + (ptrdiff_t)base[ntap] * C;
            woff[ntap] = (ptrdiff_t)(kh * g->KW + kw) * C;
            ntap++;
        }
    }
    float *orow = out + (size_t)oh * g->Wo * C;
    if (ntap == 0) {
        for (int p = 0; p < g->Wo; p++)
            for (int c = 0; c < C; c++) orow[(size_t)p * C + c] = bias ? bias[c] : 0.0f;
        return;
    }
    int lo, hi;
    line_interior(g->Wo, ntap, base, g->sw, g->Wi, &lo, &hi);
    /* the next output row's new input rows */
    pf_walk pwk = {{0}, {0}, 0, 0, 0}, *pw = NULL;
    if (g->big && !rowp && oh + 1 < g->Ho) {
        int a = ih0 + (g->KH - 1) * g->dh + 1, b = ih0 + g->sh + (g->KH - 1) * g->dh;
        if (a < 0) a = 0;
        if (b >= g->Hi) b = g->Hi - 1;
        for (int ih = a; ih <= b; ih++) pf_add(&pwk, in + (size_t)ih * g->Wi * C, (size_t)g->Wi * C * sizeof(float));
        pf_plan(&pwk, (int64_t)((hi - lo + 7) / 8) * (C / DW_VW));
        pw = &pwk;
    }
    gather_run(C, lo, hi, orow, C, in, (ptrdiff_t)g->sw * C, off, wt, woff, ntap, bias, pw, g->big);
    /* border pixels: only the taps inside the input */
    for (int p = 0; p < g->Wo; p++) {
        if (p >= lo && p < hi) continue;
        ptrdiff_t o2[MAXTAP], w2[MAXTAP];
        int n2 = 0;
        for (int a = 0; a < ntap; a++) {
            int iw = base[a] + p * g->sw;
            if (iw < 0 || iw >= g->Wi) continue;
            o2[n2] = off[a] + (ptrdiff_t)p * g->sw * C;
            w2[n2++] = woff[a];
        }
        gather_tile(1, C, orow + (size_t)p * C, C, in, 0, o2, wt, w2, n2, bias, NULL, g->big);
    }
}

static void fwd_row(const dw_geom *g, int oh, float *out, const float *in, const float *wt, const float *bias) {
    fwd_row_p(g, oh, out, in, NULL, wt, bias);
}

/* ------------------------------------------------------ stride 1, 5x5 --
 *
 * 5x5 kernels, stride 1, no dilation, padding at most 4 per side, straight
 * from the NHWC input.  An output row is computed per channel vector in
 * tiles of T <= 7 consecutive pixels held in T accumulators: per kernel row
 * and tap, one weight load and T independent multiply-adds over a window of
 * T input vectors held in registers that slides by one load per tap (T*K
 * multiply-adds per T + K - 1 input loads).  In the border tiles the window
 * positions left or right of the input row are zero vectors instead of
 * loads; the top/bottom padding is the set of kernel rows left out.  The
 * channels past the last full vector go through a scalar loop.  Work items
 * are (sample, channel chunk, row block).  Used for the forward pass and,
 * with flipped weights and mirrored padding, for backward data; 3x3 and
 * 5x5 (K a constant after inlining).  cpu_conv.c decides when it runs
 * instead of oneDNN (dw_s1_direct). */
typedef struct dw_s1 {
    int n, C, Cp, Hi, Wi, Ho, Wo, K, pt, pl;
    int to, st;   /* tiles outer, streaming stores (s1_tiles_to) */
} dw_s1;

/* Channel chunk: the K input rows a row of outputs reads, for the chunk's
 * channels, within this many bytes (kept in L2 while the rows below reuse
 * them). */
#define S1_CHUNK_BYTES (160 * 1024)
/* widest tile: T accumulators + T inputs + 1 weight in 16 vector registers */
#define S1_T 7

int cpu_dw_s1_handles(const dcl_conv_desc *d) {
    if (!cpu_dw_handles(d) || d->sh != 1 || d->sw != 1 || d->dh != 1 || d->dw != 1) return 0;
    if (!(d->kh == 5 && d->kw == 5) && !(d->kh == 3 && d->kw == 3)) return 0;
    const int m = d->kh - 1;
    return d->pt <= m && d->pb <= m && d->pl <= m && d->pr <= m;
}

/* acc[t] += sum over the nr kernel rows r and taps k of
 * in[r][io + (t + k)*ps] * w[r][k*ws], T and K constants after inlining.
 * Per kernel row, tap k is one weight load and T independent multiply-adds
 * acc[t] += x[t + k] * w[k] over a window of T input vectors held in
 * registers that slides by one load per tap (T + K - 1 input loads per row,
 * 2T + 1 vector registers).  B (border tile): only window positions q in
 * [qlo, qhi) are loaded, the others are zero. */
static inline __attribute__((always_inline)) void s1_acc(const int K, const int T, const int B, dvf *acc, int nr,
                                                         const float *const *in, ptrdiff_t io, ptrdiff_t ps,
                                                         const float *const *w, ptrdiff_t ws, int qlo, int qhi) {
    for (int r = 0; r < nr; r++) {
        const float *ip = in[r];
        dvf xv[S1_T + 4];
#pragma GCC unroll 8
        for (int q = 0; q < T - 1; q++) {
            if (!B || (q >= qlo && q < qhi)) xv[q] = dld(ip + (io + q * ps));
            else xv[q] = (dvf){0};
            VREG(xv[q]);
        }
#pragma GCC unroll 5
        for (int k = 0; k < K; k++) {
            const int q = k + T - 1;
            if (!B || (q >= qlo && q < qhi)) xv[q] = dld(ip + (io + q * ps));
            else xv[q] = (dvf){0};
            VREG(xv[q]);
            const dvf wk = dld(w[r] + k * ws);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t] += xv[t + k] * wk;
        }
    }
}

/* T outputs of one channel vector at out + t*os */
static inline __attribute__((always_inline)) void s1_tile(const int K, const int T, const int B, int nr,
                                                          const float *const *in, ptrdiff_t io, ptrdiff_t ps,
                                                          const float *const *w, ptrdiff_t ws, dvf bv, float *out,
                                                          ptrdiff_t os, int qlo, int qhi, int st) {
    dvf acc[S1_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = bv;
    s1_acc(K, T, B, acc, nr, in, io, ps, w, ws, qlo, qhi);
#if defined(__AVX__) && DW_VW == 8
    if (st) {
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) _mm256_stream_ps(out + t * os, (__m256)acc[t]);
        return;
    }
#endif
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) dst_(out + t * os, acc[t]);
}

/* One output row of a channel chunk: nv channel vectors; outputs at out +
 * ow*C; kernel rows r < nr: input rows in[r] (pixel stride C) times
 * weights w[r] (tap stride ws). */
typedef struct s1_rowargs {
    int nv, C, nr, pl, Wi;
    int to;   /* tiles outer (all channel vectors of a tile, then the next tile) */
    int st;   /* streaming stores (tiles outer only: whole lines are written) */
    float *out;
    const float *const *in;
    const float *const *w;
    ptrdiff_t ws;
    const float *bias;
} s1_rowargs;

/* channel vector c: its input rows and weights for the NR kernel rows, and
 * its bias (zero without) */
static inline __attribute__((always_inline)) dvf s1_chan(const s1_rowargs *a, const int NR, int c,
                                                         const float **ij, const float **wj) {
    for (int r = 0; r < NR; r++) {
        ij[r] = a->in[r] + c;
        wj[r] = a->w[r] + c;
    }
    return a->bias ? dld(a->bias + c) : (dvf){0};
}

/* ntl tiles of T outputs from ow0 on, for every channel vector, channel
 * vectors outer (each vector's weights and input lines reused along the
 * row; measured faster for 5x5 than tiles outer).  NR: the number of kernel
 * rows (a constant in the full-height case). */
static inline __attribute__((always_inline)) void s1_tiles(const int K, const int T, const int NR, const s1_rowargs *a,
                                                           int ntl, int ow0) {
    const int C = a->C;
    for (int j = 0; j < a->nv; j++) {
        const int c = j * DW_VW;
        const float *ij[5], *wj[5];
        const dvf bv = s1_chan(a, NR, c, ij, wj);
        float *o = a->out + c;
        for (int i = 0; i < ntl; i++) {
            const int ow = ow0 + i * T;
            /* window position q reads input column ow - pl + q */
            const int qlo = a->pl - ow, qhi = a->Wi + a->pl - ow;
            const ptrdiff_t io = (ptrdiff_t)(ow - a->pl) * C;
            if (qlo <= 0 && qhi >= T + K - 1)
                s1_tile(K, T, 0, NR, ij, io, C, wj, a->ws, bv, o + (ptrdiff_t)ow * C, C, 0, T + K - 1, 0);
            else
                s1_tile(K, T, 1, NR, ij, io, C, wj, a->ws, bv, o + (ptrdiff_t)ow * C, C, qlo, qhi, 0);
        }
    }
}

/* The same tiles, tiles outer: a tile's T pixels for every channel vector
 * before the next tile, so the input rows and the output are read and
 * written in address order (whole lines, which streaming stores need), and
 * the newest input row (the only one not read by the row above) is
 * prefetched S1_PF bytes ahead: on maps larger than the caches the hardware
 * prefetchers do not follow K rows and an output walked this way. */
#define S1_PF 2048
static inline __attribute__((always_inline)) void s1_tiles_to(const int K, const int T, const int NR,
                                                              const s1_rowargs *a, int ntl, int ow0) {
    const int C = a->C;
    for (int i = 0; i < ntl; i++) {
        const int ow = ow0 + i * T;
        const int qlo = a->pl - ow, qhi = a->Wi + a->pl - ow;
        const ptrdiff_t io = (ptrdiff_t)(ow - a->pl) * C;
        const char *pf = (const char *)(a->in[NR - 1] + io + (ptrdiff_t)(T + K - 1) * C) + S1_PF;
        const int inner = qlo <= 0 && qhi >= T + K - 1;
        for (int j = 0; j < a->nv; j++) {
            const int c = j * DW_VW;
            const float *ij[5], *wj[5];
            __builtin_prefetch(pf + (ptrdiff_t)c * sizeof(float), 0, 3);
            const dvf bv = s1_chan(a, NR, c, ij, wj);
            float *o = a->out + c + (ptrdiff_t)ow * C;
            if (inner) s1_tile(K, T, 0, NR, ij, io, C, wj, a->ws, bv, o, C, 0, T + K - 1, a->st);
            else s1_tile(K, T, 1, NR, ij, io, C, wj, a->ws, bv, o, C, qlo, qhi, a->st);
        }
    }
}

static inline __attribute__((always_inline)) void s1_tiles_nr(const int K, const int T, const s1_rowargs *a, int ntl,
                                                              int ow0) {
    if (a->to) {
        if (a->nr == K) s1_tiles_to(K, T, K, a, ntl, ow0);
        else s1_tiles_to(K, T, a->nr, a, ntl, ow0);
    } else {
        if (a->nr == K) s1_tiles(K, T, K, a, ntl, ow0);
        else s1_tiles(K, T, a->nr, a, ntl, ow0);
    }
}

static inline __attribute__((always_inline)) void s1_group(const int K, int T, const s1_rowargs *a, int ntl, int ow0) {
    switch (T) {
    case 7: s1_tiles_nr(K, 7, a, ntl, ow0); break;
    case 6: s1_tiles_nr(K, 6, a, ntl, ow0); break;
    case 5: s1_tiles_nr(K, 5, a, ntl, ow0); break;
    case 4: s1_tiles_nr(K, 4, a, ntl, ow0); break;
    case 3: s1_tiles_nr(K, 3, a, ntl, ow0); break;
    case 2: s1_tiles_nr(K, 2, a, ntl, ow0); break;
    default: s1_tiles_nr(K, 1, a, ntl, ow0); break;
    }
}

/* An output row of Wo pixels in ceil(Wo/S1_T) tiles of nearly equal size
 * (10 = 5+5, not 7+3): the first tx of them tb+1 wide, the others tb. */
static void s1_row(int K, int Wo, const s1_rowargs *a) {
    const int nt = (Wo + S1_T - 1) / S1_T, tb = Wo / nt, tx = Wo % nt;
    if (K == 3) {
        if (tx) s1_group(3, tb + 1, a, tx, 0);
        s1_group(3, tb, a, nt - tx, tx * (tb + 1));
    } else {
        if (tx) s1_group(5, tb + 1, a, tx, 0);
        s1_group(5, tb, a, nt - tx, tx * (tb + 1));
    }
}

/* Output row orow of channels [c0, c0 + cb) from its nr input rows in[r]
 * (pixel stride C, channel c0 at in[r]) and kernel rows w[r]. */
static void s1_emit_row(const dw_s1 *g, int c0, int cb, float *orow, const float *const *in, const float *const *w,
                        int nr, const float *bc) {
    const int C = g->C, K = g->K, Wi = g->Wi, Wo = g->Wo, pl = g->pl;
    const int nv = cb / DW_VW;
    if (nr > 0 && nv > 0) {
        const s1_rowargs ra = {nv, C, nr, pl, Wi, g->to, g->st, orow, in, w, g->Cp, bc};
        s1_row(K, Wo, &ra);
    }
    /* channels past the last full vector */
    for (int ow = 0; ow < Wo; ow++)
        for (int c = nv * DW_VW; c < cb; c++) {
            float acc = bc ? bc[c] : 0.0f;
            for (int r = 0; r < nr; r++)
                for (int k = 0; k < K; k++) {
                    const int iw = ow - pl + k;
                    if (iw >= 0 && iw < Wi) acc += in[r][(size_t)iw * C + c] * w[r][(size_t)k * g->Cp + c];
                }
            orow[(size_t)ow * C + c] = acc;
        }
    if (nr <= 0)
        for (int ow = 0; ow < Wo; ow++)
            for (int c = 0; c < nv * DW_VW; c++) orow[(size_t)ow * C + c] = bc ? bc[c] : 0.0f;
}

/* Output rows [o0, o1) of sample n, channels [c0, c0 + cb). */
static void s1_block(const dw_s1 *g, int n, int c0, int cb, int o0, int o1, float *y, const float *x,
                     const float *wt, const float *bias) {
    const int C = g->C, K = g->K, Wi = g->Wi, Wo = g->Wo;
    const float *xn = x + (size_t)n * g->Hi * Wi * C + c0;
    float *yn = y + (size_t)n * g->Ho * Wo * C + c0;
    const float *bc = bias ? bias + c0 : NULL;
    for (int oh = o0; oh < o1; oh++) {
        const int ih0 = oh - g->pt;
        const int a = ih0 > 0 ? ih0 : 0, b = ih0 + K < g->Hi ? ih0 + K : g->Hi;
        const float *in[5], *w[5];
        int nr = 0;
        for (int ih = a; ih < b; ih++, nr++) {
            in[nr] = xn + (size_t)ih * Wi * C;
            w[nr] = wt + (size_t)(ih - ih0) * K * g->Cp + c0;
        }
        s1_emit_row(g, c0, cb, yn + (size_t)oh * Wo * C, in, w, nr, bc);
    }
}

/* y (n, Ho, Wo, C) = x (n, Hi, Wi, C) convolved with wt ((K*K, Cp), channel
 * stride Cp = C rounded up to a vector, lanes past C zero); bias (Cp) or
 * NULL. */
static dcl_status s1_conv(int nt, const dw_s1 *g, float *y, const float *x, const float *wt, const float *bias) {
    const int K = g->K;
    int per = (int)(S1_CHUNK_BYTES / ((size_t)K * g->Wi * sizeof(float)));
    per -= per % DW_VW;
    if (per < DW_VW) per = DW_VW;
    if (g->to) per = g->Cp;   /* tiles outer: whole pixels */
    int nch = (g->Cp + per - 1) / per;
    int cbs = (g->Cp + nch - 1) / nch;
    cbs = (cbs + DW_VW - 1) / DW_VW * DW_VW;
    nch = (g->C + cbs - 1) / cbs;
    /* row blocks when samples x chunks cannot keep the threads busy */
    int nrb = 1;
    if ((int64_t)g->n * g->Ho * g->Wo * g->Cp * K * K < 65536) nt = 1;
    if (g->n * nch < 4 * nt) {
        nrb = (4 * nt + g->n * nch - 1) / (g->n * nch);
        if (nrb > g->Ho) nrb = g->Ho;
    }
    const int items = g->n * nch * nrb;
    if (nt > items) nt = items;
    #pragma omp parallel num_threads(nt)
    {
        #pragma omp for schedule(static) nowait
        for (int it = 0; it < items; it++) {
            const int n = it / (nch * nrb), rem = it % (nch * nrb), ch = rem / nrb, rb = rem % nrb;
            const int c0 = ch * cbs, cb = g->C - c0 < cbs ? g->C - c0 : cbs;
            const int o0 = (int)((int64_t)g->Ho * rb / nrb), o1 = (int)((int64_t)g->Ho * (rb + 1) / nrb);
            s1_block(g, n, c0, cb, o0, o1, y, x, wt, bias);
        }
        dw_fence(g->st);
    }
    return DCL_OK;
}

/* Weights (C,1,K,K) -> (K*K, Cp), flipped in both spatial axes when flip;
 * bias -> (Cp); lanes past C zero.  One allocation, freed by the caller. */
static float *s1_weights(const float *w, const float *b, int C, int Cp, int K, int flip, float **bias_out) {
    const int KK = K * K;
    float *wt = dcl_calloc(sizeof(float) * ((size_t)KK * Cp + Cp));
    if (!wt) return NULL;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < KK; t++) wt[(size_t)(flip ? KK - 1 - t : t) * Cp + c] = w[(size_t)c * KK + t];
    *bias_out = NULL;
    if (b) {
        float *bp = wt + (size_t)KK * Cp;
        memcpy(bp, b, sizeof(float) * C);
        *bias_out = bp;
    }
    return wt;
}

/* tiles outer with streaming stores on large outputs (cpu_dw_big); whole
 * channel vectors only */
static void s1_mode(dw_s1 *g, const float *out) {
    g->to = cpu_dw_big(g->n, g->Ho, g->Wo, g->C) && g->C % DW_VW == 0;
    g->st = g->to && !((uintptr_t)out & (DW_VW * sizeof(float) - 1));
}

/* The forward of a depthwise convolution whose input a is made one input
 * row at a time by fn (cpu_internal.h): each thread takes whole samples
 * (or blocks of output rows), keeps the last KH input rows in a ring of its
 * own and convolves them from there (the stride-1 tiles, or the gather
 * kernel of other strides), so a is written once (streaming when large;
 * the backward reads it) and never read back from memory.  An input row
 * needed by two row blocks is made by both and written by the block that
 * owns it (rows [Hi rb / nrb, Hi (rb + 1) / nrb)).  Dilation 1 only. */
dcl_status cpu_dw_fwd_rows(int nt, const dcl_conv_desc *d, float *y, float *a, const float *w, const float *b,
                           cpu_dw_in_fn fn, const void *arg) {
    if (!cpu_dw_handles(d) || d->dh != 1 || d->dw != 1)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cpu depthwise conv: a fused input needs dilation 1");
    const int s1 = cpu_dw_s1_handles(d);
    const int C = d->ci, Cp = (C + DW_VW - 1) / DW_VW * DW_VW, K = d->kh, Hi = d->hi, Wi = d->wi;
    const int Ho = d->ho, Wo = d->wo;
    float *bp = (float *)b, *wt;
    if (s1) {
        wt = s1_weights(w, b, C, Cp, K, 0, &bp);
    } else {
        wt = dcl_alloc(sizeof(float) * (size_t)K * d->kw * C);
        if (wt) transpose_w(wt, w, C, K * d->kw);
    }
    dw_s1 g = {d->n, C, Cp, Hi, Wi, Ho, Wo, K, d->pt, d->pl, 0, 0};
    dw_geom gg = {C, Hi, Wi, Ho, Wo, K, d->kw, d->sh, d->sw, 1, 1, d->pt, d->pl, cpu_dw_big(d->n, Ho, Wo, C)};
    if (s1) s1_mode(&g, y);
    const int st_y = s1 ? g.st : gg.big, st_a = cpu_dw_big(d->n, Hi, Wi, C);
    int nrb = 1;
    if ((int64_t)d->n * Ho * Wo * Cp * K * d->kw < 65536) nt = 1;
    if (d->n < 4 * nt) {
        nrb = (4 * nt + d->n - 1) / d->n;
        if (nrb > Ho) nrb = Ho;
    }
    const int items = d->n * nrb;
    if (nt > items) nt = items;
    const size_t rowf = ((size_t)Wi * C + 15) & ~(size_t)15;
    float *ring = dcl_alloc(sizeof(float) * rowf * K * nt);
    const float **rowp = s1 ? NULL : malloc(sizeof(float *) * (size_t)Hi * nt);
    if (!wt || !ring || (!s1 && !rowp)) {
        dcl_free(wt);
        dcl_free(ring);
        free(rowp);
        return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    }
    const size_t in_n = (size_t)Hi * Wi * C, out_n = (size_t)Ho * Wo * C;
    #pragma omp parallel num_threads(nt)
    {
        float *rg = ring + rowf * K * thr_id();
        const float **rp = rowp ? rowp + (size_t)Hi * thr_id() : NULL;
        if (rp)
            for (int ih = 0; ih < Hi; ih++) rp[ih] = rg + (size_t)(ih % K) * rowf;
        #pragma omp for schedule(static) nowait
        for (int it = 0; it < items; it++) {
            const int n = it / nrb, rb = it % nrb;
            const int o0 = (int)((int64_t)Ho * rb / nrb), o1 = (int)((int64_t)Ho * (rb + 1) / nrb);
            const int w0 = (int)((int64_t)Hi * rb / nrb), w1 = (int)((int64_t)Hi * (rb + 1) / nrb);
            float *yn = y + (size_t)n * out_n, *an = a ? a + (size_t)n * in_n : NULL;
            int next = o0 * d->sh - d->pt;
            if (next < 0) next = 0;
            if (next > w0) next = w0;
            for (int oh = o0; oh < o1; oh++) {
                const int ih0 = oh * d->sh - d->pt;
                const int lo = ih0 > 0 ? ih0 : 0, hi = ih0 + K < Hi ? ih0 + K : Hi;
                for (; next < hi; next++)
                    fn(arg, (int64_t)n * Hi + next, rg + (size_t)(next % K) * rowf,
                       an && next >= w0 && next < w1 ? an + (size_t)next * Wi * C : NULL, st_a);
                if (!s1) {
                    fwd_row_p(&gg, oh, yn, rg, rp, wt, b);
                    continue;
                }
                const float *in[5], *wr[5];
                int nr = 0;
                for (int ih = lo; ih < hi; ih++, nr++) {
                    in[nr] = rg + (size_t)(ih % K) * rowf;
                    wr[nr] = wt + (size_t)(ih - ih0) * K * Cp;
                }
                s1_emit_row(&g, 0, C, yn + (size_t)oh * Wo * C, in, wr, nr, bp);
            }
            for (; next < w1; next++)   /* owned rows no output row of this block reads */
                fn(arg, (int64_t)n * Hi + next, rg, an ? an + (size_t)next * Wi * C : NULL, st_a);
        }
        dw_fence(st_y || st_a);
    }
    free(rowp);
    dcl_free(ring);
    dcl_free(wt);
    return DCL_OK;
}

static dcl_status s1_fwd(int nt, const dcl_conv_desc *d, float *y, const float *x, const float *w, const float *b) {
    const int C = d->ci, Cp = (C + DW_VW - 1) / DW_VW * DW_VW;
    float *bp;
    float *wt = s1_weights(w, b, C, Cp, d->kh, 0, &bp);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    dw_s1 g = {d->n, C, Cp, d->hi, d->wi, d->ho, d->wo, d->kh, d->pt, d->pl, 0, 0};
    s1_mode(&g, y);
    dcl_status s = s1_conv(nt, &g, y, x, wt, bp);
    dcl_free(wt);
    return s;
}

/* dx = dy convolved with the flipped kernel, padding K-1-pt on top and
 * K-1-pl on the left */
static dcl_status s1_bwd_data(int nt, const dcl_conv_desc *d, float *dx, const float *dy, const float *w) {
    const int C = d->ci, Cp = (C + DW_VW - 1) / DW_VW * DW_VW, K = d->kh;
    float *bp;
    float *wt = s1_weights(w, NULL, C, Cp, K, 1, &bp);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    dw_s1 g = {d->n, C, Cp, d->ho, d->wo, d->hi, d->wi, K, K - 1 - d->pt, K - 1 - d->pl, 0, 0};
    s1_mode(&g, dx);
    dcl_status s = s1_conv(nt, &g, dx, dy, wt, NULL);
    dcl_free(wt);
    return s;
}

dcl_status cpu_dw_fwd(int nt, const dcl_conv_desc *d, float *y, const float *x, const float *w, const float *b) {
    if (cpu_dw_s1_handles(d)) return s1_fwd(nt, d, y, x, w, b);
    const int C = d->ci, KK = d->kh * d->kw;
    float *wt = malloc(sizeof(float) * (size_t)KK * C);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    transpose_w(wt, w, C, KK);
    dw_geom g = {C, d->hi, d->wi, d->ho, d->wo, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw, d->pt, d->pl, 0};
    g.big = cpu_dw_big(d->n, d->ho, d->wo, C);
    const int rows = d->n * d->ho;
    const size_t in_n = (size_t)d->hi * d->wi * C, out_n = (size_t)d->ho * d->wo * C;
    if ((int64_t)rows * d->wo * C * KK < 65536) nt = 1;
    #pragma omp parallel num_threads(nt)
    {
        #pragma omp for schedule(static) nowait
        for (int r = 0; r < rows; r++) {
            int n = r / d->ho, oh = r % d->ho;
            fwd_row(&g, oh, y + n * out_n, x + n * in_n, wt, b);
        }
        dw_fence(g.big);
    }
    free(wt);
    return DCL_OK;
}

/* Backward data, any stride: dx row ih of sample n.  Pixels of one residue
 * class iw = r + s*p share their set of kernel columns, and consecutive
 * pixels of a class read consecutive dy pixels, so a class is a gather line
 * with input step C and output step s*C. */
static void bwd_data_row(const dcl_conv_desc *d, int ih, float *dxn, const float *dyn, const float *wt, int big) {
    const int C = d->ci, W = d->wi, Wo = d->wo, s = d->sw;
    int khs[MAXTAP], ohs[MAXTAP], nkh = 0;
    for (int kh = 0; kh < d->kh; kh++) {
        int t = ih + d->pt - kh * d->dh;
        if (t < 0 || t % d->sh) continue;
        int oh = t / d->sh;
        if (oh >= d->ho) continue;
        khs[nkh] = kh;
        ohs[nkh++] = oh;
    }
    float *dxrow = dxn + (size_t)ih * W * C;
    /* the dy rows the next dx row reads and this one does not */
    pf_walk pwk = {{0}, {0}, 0, 0, 0}, *pw = NULL;
    if (big && ih + 1 < d->hi) {
        for (int kh = 0; kh < d->kh; kh++) {
            int t = ih + 1 + d->pt - kh * d->dh;
            if (t < 0 || t % d->sh || t / d->sh >= d->ho) continue;
            int seen = 0;
            for (int a = 0; a < nkh; a++) seen |= ohs[a] == t / d->sh;
            if (!seen) pf_add(&pwk, dyn + (size_t)(t / d->sh) * Wo * C, (size_t)Wo * C * sizeof(float));
        }
        pf_plan(&pwk, (int64_t)(W / 8 + 1) * (C / DW_VW));
        pw = &pwk;
    }
    for (int r = 0; r < s && r < W; r++) {
        int npix = (W - r + s - 1) / s;
        ptrdiff_t off[MAXTAP], woff[MAXTAP];
        int base[MAXTAP], ntap = 0;
        for (int kw = 0; kw < d->kw; kw++) {
            int t = r + d->pl - kw * d->dw; /* ow*s for pixel 0 of the class */
            int q = t >= 0 ? t / s : -((-t + s - 1) / s);
            if (q * s != t) continue;
            for (int a = 0; a < nkh; a++) {
                base[ntap] = q;
                off[ntap] = ((ptrdiff_t)ohs[a] * Wo + q) * C;
                woff[ntap] = (ptrdiff_t)(khs[a] * d->kw + kw) * C;
                ntap++;
            }
        }
        float *out = dxrow + (size_t)r * C;
        if (ntap == 0) {
            for (int p = 0; p < npix; p++)
                for (int c = 0; c < C; c++) out[(size_t)p * s * C + c] = 0.0f;
            continue;
        }
        int lo, hi;
        line_interior(npix, ntap, base, 1, Wo, &lo, &hi);
        gather_run(C, lo, hi, out, (ptrdiff_t)s * C, dyn, C, off, wt, woff, ntap, NULL, pw, big);
        for (int p = 0; p < npix; p++) {
            if (p >= lo && p < hi) continue;
            ptrdiff_t o2[MAXTAP], w2[MAXTAP];
            int n2 = 0;
            for (int a = 0; a < ntap; a++) {
                int ow = base[a] + p;
                if (ow < 0 || ow >= Wo) continue;
                o2[n2] = off[a] + (ptrdiff_t)p * C;
                w2[n2++] = woff[a];
            }
            gather_tile(1, C, out + (size_t)p * s * C, 0, dyn, 0, o2, wt, w2, n2, NULL, NULL, big);
        }
    }
}

dcl_status cpu_dw_bwd_data(int nt, const dcl_conv_desc *d, float *dx, const float *dy, const float *w) {
    if (cpu_dw_s1_handles(d)) return s1_bwd_data(nt, d, dx, dy, w);
    const int C = d->ci, KK = d->kh * d->kw;
    float *wt = malloc(sizeof(float) * (size_t)KK * C);
    if (!wt) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    transpose_w(wt, w, C, KK);
    const int rows = d->n * d->hi;
    const size_t in_n = (size_t)d->hi * d->wi * C, out_n = (size_t)d->ho * d->wo * C;
    if ((int64_t)rows * d->wi * C * KK < 65536) nt = 1;
    /* streaming stores only where whole lines are written together: at
     * stride 2 and more a row is written in residue classes of pixels */
    const int big = cpu_dw_big(d->n, d->hi, d->wi, C) && (d->sw == 1 || C % 16 == 0);
    #pragma omp parallel num_threads(nt)
    {
        #pragma omp for schedule(static) nowait
        for (int r = 0; r < rows; r++) {
            int n = r / d->hi, ih = r % d->hi;
            bwd_data_row(d, ih, dx + n * in_n, dy + n * out_n, wt, big);
        }
        dw_fence(big);
    }
    free(wt);
    return DCL_OK;
}

/* NR kernel rows at once (NR * KW <= 15 accumulators): the rows of the
 * weight gradient for the consecutive input rows xr[0..NR) against one dy
 * row, full channel vectors only; each dy vector is loaded once for NR * KW
 * independent multiply-adds (one accumulator chain per tap: with a single
 * kernel row the KW chains leave the multiply pipes waiting on the add
 * latency).  KW and NR are constants after inlining. */
static inline __attribute__((always_inline)) void bww_lines(const int KW, const int NR, const dcl_conv_desc *d, int cv,
                                                            float *const *pr, const float *dyr,
                                                            const float *const *xr, pf_walk *pw) {
    const int C = d->ci, W = d->wi, Wo = d->wo, sw = d->sw, dil = d->dw, pl = d->pl;
    int lo = (pl + sw - 1) / sw;
    int last = W - 1 + pl - (KW - 1) * dil;
    int hi = last < 0 ? 0 : last / sw + 1;
    if (hi > Wo) hi = Wo;
    if (lo > hi) lo = hi;
    for (int c = 0; c < cv; c += DW_VW) {
        dvf acc[15];
#pragma GCC unroll 15
        for (int k = 0; k < NR * KW; k++) acc[k] = (dvf){0};
        for (int ow = 0; ow < Wo; ow++) {
            if (pw) pf_step(pw);
            dvf g = dld(dyr + (size_t)ow * C + c);
            int base = ow * sw - pl;
            if (ow >= lo && ow < hi) {
#pragma GCC unroll 3
                for (int r = 0; r < NR; r++) {
                    const float *xp = xr[r] + (size_t)base * C + c;
#pragma GCC unroll 7
                    for (int k = 0; k < KW; k++) acc[r * KW + k] += g * dld(xp + (size_t)k * dil * C);
                }
            } else {
                for (int k = 0; k < KW; k++) {
                    int iw = base + k * dil;
                    if (iw < 0 || iw >= W) continue;
                    for (int r = 0; r < NR; r++) acc[r * KW + k] += g * dld(xr[r] + (size_t)iw * C + c);
                }
            }
        }
        for (int r = 0; r < NR; r++)
            for (int k = 0; k < KW; k++) {
                float *p = pr[r] + (size_t)k * C + c;
                dst_(p, dld(p) + acc[r * KW + k]);
            }
    }
}

/* part (KK, C) += contributions of output row (n, oh) */
static void dw_bwd_w_row(const dcl_conv_desc *d, int n, int oh, float *part, float *pb, const float *dy,
                         const float *x) {
    const int C = d->ci, H = d->hi, W = d->wi, Wo = d->wo, KW = d->kw, KH = d->kh;
    const int ih0 = oh * d->sh - d->pt;
    const float *dyr = dy + ((size_t)n * d->ho + oh) * Wo * C;
    const float *xn = x + (size_t)n * H * W * C;
    const int cv = C - C % DW_VW;
    /* the next row of the same sample: its dy row, the input rows below
     * this row's last */
    pf_walk pwk = {{0}, {0}, 0, 0, 0}, *pw = NULL;
    if (oh + 1 < d->ho) {
        pw = &pwk;
        pf_add(&pwk, dyr + (size_t)Wo * C, (size_t)Wo * C * sizeof(float));
        int a = ih0 + (KH - 1) * d->dh + 1, b = ih0 + d->sh + (KH - 1) * d->dh;
        if (a < 0) a = 0;
        if (b >= H) b = H - 1;
        for (int ih = a; ih <= b; ih++) pf_add(&pwk, xn + (size_t)ih * W * C, (size_t)W * C * sizeof(float));
        pf_plan(&pwk, (int64_t)Wo * (cv / DW_VW) * ((KH + 2) / 3));
    }
    if (pb)
        for (int ow = 0; ow < Wo; ow++) {
            const float *gp = dyr + (size_t)ow * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) pb[c] += gp[c];
        }
    /* 3x3 and 5x5: the valid kernel rows (consecutive) three at a time */
    int multi = (KW == 3 || KW == 5) && cv > 0;
    for (int kh = 0; kh < KH && multi;) {
        const float *xr[3];
        float *pr[3];
        int nr = 0;
        for (; kh < KH && nr < 3; kh++) {
            int ih = ih0 + kh * d->dh;
            if (ih < 0 || ih >= H) {
                if (nr) { kh++; break; }
                continue;
            }
            xr[nr] = xn + (size_t)ih * W * C;
            pr[nr++] = part + (size_t)kh * KW * C;
        }
        if (nr == 0) break;
        if (KW == 3) {
            if (nr == 3) bww_lines(3, 3, d, cv, pr, dyr, xr, pw);
            else if (nr == 2) bww_lines(3, 2, d, cv, pr, dyr, xr, pw);
            else bww_lines(3, 1, d, cv, pr, dyr, xr, pw);
        } else {
            if (nr == 3) bww_lines(5, 3, d, cv, pr, dyr, xr, pw);
            else if (nr == 2) bww_lines(5, 2, d, cv, pr, dyr, xr, pw);
            else bww_lines(5, 1, d, cv, pr, dyr, xr, pw);
        }
    }
    for (int kh = 0; kh < KH; kh++) {
        int ih = ih0 + kh * d->dh;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xn + (size_t)ih * W * C;
        float *prow = part + (size_t)kh * KW * C;
        int vec_done = 1;
        const float *xr1[1] = {xr};
        float *pr1[1] = {prow};
        switch (multi ? 0 : KW) {
        case 0: break;
        case 7: bww_lines(7, 1, d, cv, pr1, dyr, xr1, NULL); break;
        case 1: bww_lines(1, 1, d, cv, pr1, dyr, xr1, NULL); break;
        default: vec_done = 0;
        }
        for (int kw = 0; kw < KW; kw++) {
            /* ow range with iw = ow*sw - pl + kw*dw inside [0, W) */
            int off = kw * d->dw - d->pl;
            int o0 = off >= 0 ? 0 : (-off + d->sw - 1) / d->sw;
            int o1 = W - 1 - off < 0 ? 0 : (W - 1 - off) / d->sw + 1;
            if (o1 > Wo) o1 = Wo;
            if (o0 >= o1) continue;
            float *pr = prow + (size_t)kw * C;
            if (!vec_done)
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
    /* per-thread partial sums on their own cache lines (no false sharing) */
    size_t per = ((size_t)(KK + 1) * C + 15) & ~(size_t)15;
    float *part = dcl_calloc(per * nt * sizeof(float));
    if (!part) return dcl_fail(DCL_ERR_NOMEM, "cpu depthwise conv: out of memory");
    #pragma omp parallel num_threads(nt)
    {
        int t = thr_id(), T = thr_n();
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
    dcl_free(part);
    return DCL_OK;
}
