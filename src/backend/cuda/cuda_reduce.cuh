/* Column reductions and per-channel elementwise passes over channels-last
 * data.
 *
 * ---- column reductions ----
 * Input: B independent (M, C) row-major matrices laid out one after the
 * other (B = 1 for batch norm / bias gradients, B = N for per-sample sums
 * such as global pooling).  For every (b, c) the kernels sum NOUT values
 * over the M rows and hand the NOUT double sums to G(b, c, sums); with
 * merge_b the sums also run over the B matrices and G gets b = 0 (per-channel
 * sums of a per-sample computation, e.g. a batch-norm backward whose
 * squeeze-excitation scale differs per sample).
 *
 * Element functors, two forms:
 *   plain (cu_colreduce):   f(i, c, v)  fills v[0..NOUT) for element i (the
 *                           linear index in the whole tensor) of channel c;
 *   column (cu_colreduce_cols):  f.prep(b, c) returns an object p, once per
 *                           thread and column, and p(i, v) fills v.  Per-channel
 *                           and per-sample parameters are loaded in prep, so
 *                           the row loop neither divides nor reloads them.
 *
 * Pass 1 splits the rows into chunks: block (32 columns x 8 rows) sums one
 * chunk in float and writes a partial per column.  Pass 2 adds the partials
 * in double: a block of 32 columns whose rows of threads split the chunks,
 * then a shared-memory sum.  When C divides 32 (C = 1, 2, 4, 8, 16) the
 * matrix is viewed as (M/f, C*f) so that a warp still reads 32 consecutive
 * floats; pass 2 then also adds the f column groups.
 *
 * cu_colmoments: mean and biased variance per column of one (M, C) matrix in
 * one read, robust to a mean far from zero: each chunk sums x - K and
 * (x - K)^2 in float with K the chunk's first value of that column, and
 * pass 2 moves the chunks' sums to a common value of the column in double
 * and adds them.
 *
 * ---- per-channel elementwise passes (cu_chan_run) ----
 * A pass over a (rows, C) tensor where every thread keeps one channel (or
 * one group of 4 channels with 16-byte vector accesses) for all its
 * elements: the grid stride is a multiple of the row length, so the channel
 * index and the per-channel parameters are computed once per thread and no
 * element needs a division; the sample index (rows / HW) uses a
 * multiply-shift division (cu_idiv) on the 32-bit path.
 */
#ifndef DCL_CUDA_REDUCE_CUH
#define DCL_CUDA_REDUCE_CUH
#include "backend/cuda/cuda_internal.cuh"
#include <stdint.h>
#include <stdio.h>

#define CU_RED_TX 32
#define CU_RED_TY 8
#define CU_RED_MAXZ 65535     /* gridDim.y / gridDim.z limit */

/* Resident blocks of `threads` threads of kernel K per multiprocessor
 * (asked once per kernel; 4 if the runtime cannot tell).  Grids of one
 * full wave avoid a half-empty second wave. */
template <auto K>
static int cu_blocks_per_sm(int threads) {
    static int v = 0;
    if (v <= 0) {
        int nb = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, K, threads, 0) != cudaSuccess || nb < 1) {
            (void)cudaGetLastError();
            nb = 4;
        }
        v = nb;
    }
    return v;
}

/* plain functor f(i, c, v) seen as a column functor */
template <class F>
struct cu_red_plain {
    F f;
    struct col {
        F f;
        int c;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const { f(i, c, v); }
    };
    __device__ __forceinline__ col prep(int b, int c) const {
        col k = {f, c};
        return k;
    }
};

template <int NOUT, class F>
__global__ void __launch_bounds__(CU_RED_TX * CU_RED_TY)
cu_k_colred_partial(int64_t Mr, int Cr, int C, int64_t rows_per_chunk, int nchunks, int b0, int B, F f,
                    float *part) {
    __shared__ float sh[NOUT][CU_RED_TY][CU_RED_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int cr = blockIdx.x * CU_RED_TX + tx;
    const int b = b0 + (int)blockIdx.z;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk;
    if (r1 > Mr) r1 = Mr;
    float acc[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; k++) acc[k] = 0.f;
    if (cr < Cr) {
        const auto p = f.prep(b, cr % C);
        const int64_t step = (int64_t)CU_RED_TY * Cr;
        int64_t i = ((int64_t)b * Mr + r0 + ty) * Cr + cr;
#pragma unroll(NOUT <= 2 ? 8 : NOUT <= 5 ? 4 : 1)
        for (int64_t r = r0 + ty; r < r1; r += CU_RED_TY, i += step) {
            float v[NOUT];
            p(i, v);
#pragma unroll
            for (int k = 0; k < NOUT; k++) acc[k] += v[k];
        }
    }
#pragma unroll
    for (int k = 0; k < NOUT; k++) sh[k][ty][tx] = acc[k];
    __syncthreads();
    if (ty == 0 && cr < Cr) {
#pragma unroll
        for (int k = 0; k < NOUT; k++) {
            float s = 0.f;
#pragma unroll
            for (int j = 0; j < CU_RED_TY; j++) s += sh[k][j][tx];
            /* layout [k][b][chunk][Cr] */
            part[(((int64_t)k * B + b) * nchunks + blockIdx.y) * Cr + cr] = s;
        }
    }
}

/* rows of threads of the final pass (fewer for many outputs: registers) */
template <int NOUT> struct cu_red_fin { enum { TY = NOUT <= 8 ? 32 : 8 }; };

/* Pass 2: block (32 columns x TY); the TY rows of threads split the
 * (sample, chunk, fold) partials of their column, then one sum in shared
 * memory.  Every thread reaches every __syncthreads (no early return). */
template <int NOUT, class G>
__global__ void __launch_bounds__(CU_RED_TX * cu_red_fin<NOUT>::TY)
cu_k_colred_final(int B, int C, int fold, int nchunks, int merge_b, const float *part, G g) {
    enum { TY = cu_red_fin<NOUT>::TY };
    __shared__ double sh[TY][CU_RED_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * CU_RED_TX + tx;
    const int Cr = C * fold;
    const int Bout = merge_b ? 1 : B;
    const int nb = merge_b ? B : 1;                   /* samples summed per output */
    const int64_t nbc = (int64_t)nb * nchunks;       /* (sample, chunk) pairs per output */
    for (int b = blockIdx.y; b < Bout; b += gridDim.y) {      /* uniform in the block */
        double s[NOUT];
#pragma unroll
        for (int k = 0; k < NOUT; k++) s[k] = 0;
        if (c < C) {
            const int64_t row0 = merge_b ? 0 : (int64_t)b * nchunks;
            for (int64_t bc = ty; bc < nbc; bc += TY) {   /* bc = bb * nchunks + chunk */
                const float *p = part + (row0 + bc) * Cr + c;
                for (int j = 0; j < fold; j++)
#pragma unroll
                    for (int k = 0; k < NOUT; k++) s[k] += (double)p[(int64_t)k * B * nchunks * Cr + (int64_t)j * C];
            }
        }
        double tot[NOUT];
#pragma unroll
        for (int k = 0; k < NOUT; k++) {
            sh[ty][tx] = s[k];
            __syncthreads();
            double a = 0;
            if (ty == 0)
                for (int j = 0; j < TY; j++) a += sh[j][tx];
            tot[k] = a;
            __syncthreads();
        }
        if (ty == 0 && c < C) g(b, c, tot);
    }
}

/* Chunk geometry shared by the reductions. */
typedef struct cu_red_geom {
    int fold, Cr, gx, nchunks;
    int64_t Mr, rows;
} cu_red_geom;

/* blocks: the partial kernel's resident blocks per multiprocessor */
static inline cu_red_geom cu_red_plan(const cu_impl *I, int B, int64_t M, int C, int blocks) {
    cu_red_geom q;
    q.fold = 1;
    if (C < CU_RED_TX && CU_RED_TX % C == 0) {
        q.fold = CU_RED_TX / C;
        while (q.fold > 1 && M % q.fold) q.fold /= 2;
    }
    q.Mr = M / q.fold;
    q.Cr = C * q.fold;
    q.gx = (q.Cr + CU_RED_TX - 1) / CU_RED_TX;
    const int64_t sms = I->sm_count > 0 ? I->sm_count : 80;
    int64_t want = (sms * blocks + (int64_t)q.gx * B - 1) / ((int64_t)q.gx * B);   /* chunks: one wave */
    int64_t maxchunks = (q.Mr + 63) / 64;          /* at least 64 rows (8 per thread) per chunk */
    if (want > maxchunks) want = maxchunks;
    if (want > CU_RED_MAXZ) want = CU_RED_MAXZ;
    if (want < 1) want = 1;
    q.rows = (q.Mr + want - 1) / want;
    if (q.rows < 1) q.rows = 1;
    q.nchunks = (int)((q.Mr + q.rows - 1) / q.rows);
    if (q.nchunks < 1) q.nchunks = 1;
    return q;
}

/* Column reduction with a column functor (see the top of the file). */
template <int NOUT, class F, class G>
static dcl_status cu_colreduce_cols(cu_impl *I, const char *op, int B, int64_t M, int C, F f, G g, int merge_b) {
    if (B <= 0 || C <= 0 || M <= 0) return DCL_OK;
    const cu_red_geom q = cu_red_plan(I, B, M, C, cu_blocks_per_sm<cu_k_colred_partial<NOUT, F>>(CU_RED_TX * CU_RED_TY));
    float *part;
    DCL_TRY(cu_scratch(I, CU_SCR_RED, (size_t)NOUT * B * q.nchunks * q.Cr * sizeof(float), (void **)&part, op));
    dim3 blk(CU_RED_TX, CU_RED_TY);
    for (int b0 = 0; b0 < B; b0 += CU_RED_MAXZ) {
        const int nz = B - b0 < CU_RED_MAXZ ? B - b0 : CU_RED_MAXZ;
        dim3 grd(q.gx, q.nchunks, nz);
        cu_k_colred_partial<NOUT, F><<<grd, blk, 0, I->stream>>>(q.Mr, q.Cr, C, q.rows, q.nchunks, b0, B, f, part);
        CU_LAUNCHED(op, "column reduction");
    }
    const int Bout = merge_b ? 1 : B;
    dim3 fblk(CU_RED_TX, cu_red_fin<NOUT>::TY);
    dim3 fgrd((C + CU_RED_TX - 1) / CU_RED_TX, Bout < CU_RED_MAXZ ? Bout : CU_RED_MAXZ);
    cu_k_colred_final<NOUT, G><<<fgrd, fblk, 0, I->stream>>>(B, C, q.fold, q.nchunks, merge_b, part, g);
    CU_LAUNCHED(op, "column reduction (final)");
    return DCL_OK;
}

/* Column reduction with a plain functor f(i, c, v), per (b, c). */
template <int NOUT, class F, class G>
static dcl_status cu_colreduce(cu_impl *I, const char *op, int B, int64_t M, int C, F f, G g) {
    cu_red_plain<F> w = {f};
    return cu_colreduce_cols<NOUT>(I, op, B, M, C, w, g, 0);
}

/* ---- column moments ---- */

/* Pass 1: per chunk and column, S = sum (x - K), Q = sum (x - K)^2 in float
 * with K = the chunk's first value of the column; writes S, Q, K. */
static __global__ void __launch_bounds__(CU_RED_TX * CU_RED_TY)
cu_k_colmom_partial(int64_t Mr, int Cr, int64_t rows_per_chunk, int nchunks, const float *x, float *part) {
    __shared__ float sh[2][CU_RED_TY][CU_RED_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int cr = blockIdx.x * CU_RED_TX + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk;
    if (r1 > Mr) r1 = Mr;
    float s = 0.f, sq = 0.f, K = 0.f;
    if (cr < Cr) {
        K = cu_ld(x, r0 * Cr + cr);
        const int64_t step = (int64_t)CU_RED_TY * Cr;
        int64_t i = (r0 + ty) * Cr + cr;
#pragma unroll 8
        for (int64_t r = r0 + ty; r < r1; r += CU_RED_TY, i += step) {
            const float t = cu_ld(x, i) - K;
            s += t;
            sq += t * t;
        }
    }
    sh[0][ty][tx] = s;
    sh[1][ty][tx] = sq;
    __syncthreads();
    if (ty == 0 && cr < Cr) {
        float a = 0.f, b = 0.f;
#pragma unroll
        for (int j = 0; j < CU_RED_TY; j++) { a += sh[0][j][tx]; b += sh[1][j][tx]; }
        const int64_t o = (int64_t)blockIdx.y * Cr + cr;
        const int64_t plane = (int64_t)nchunks * Cr;
        part[o] = a;
        part[plane + o] = b;
        part[2 * plane + o] = K;
    }
}

/* Pass 2: per column, the chunks' sums moved to one reference R (the first
 * chunk's K) in double: with d = K - R, sum (x - R) = S + n d and
 * sum (x - R)^2 = Q + 2 d S + n d^2; then mean = R + S'/M and
 * var = Q'/M - (S'/M)^2, where R is a value of the column (so the
 * subtraction loses few of double's digits) and the float sums S, Q are
 * relative to their own chunk's K.  g(c, mean, biased variance). */
template <class G>
__global__ void __launch_bounds__(CU_RED_TX * 32)
cu_k_colmom_final(int C, int fold, int nchunks, int64_t M, int64_t Mr, int64_t rows_per_chunk, const float *part, G g) {
    enum { TY = 32 };
    __shared__ double sh[2][TY][CU_RED_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * CU_RED_TX + tx;
    const int Cr = C * fold;
    const int64_t plane = (int64_t)nchunks * Cr;
    double s1 = 0, s2 = 0, R = 0;
    if (c < C) {
        R = part[2 * plane + c];
        for (int64_t ch = ty; ch < nchunks; ch += TY) {
            const int64_t r0 = ch * rows_per_chunk;
            const double n = (double)((r0 + rows_per_chunk < Mr ? r0 + rows_per_chunk : Mr) - r0);
            const float *p = part + ch * Cr + c;
            for (int j = 0; j < fold; j++) {
                const double S = p[(int64_t)j * C], Q = p[plane + (int64_t)j * C];
                const double d = (double)p[2 * plane + (int64_t)j * C] - R;
                s1 += S + n * d;
                s2 += Q + d * (2.0 * S + n * d);
            }
        }
    }
    sh[0][ty][tx] = s1;
    sh[1][ty][tx] = s2;
    __syncthreads();
    if (ty == 0 && c < C) {
        double t1 = 0, t2 = 0;
        for (int j = 0; j < TY; j++) { t1 += sh[0][j][tx]; t2 += sh[1][j][tx]; }
        const double m1 = t1 / (double)M;
        double var = t2 / (double)M - m1 * m1;
        if (var < 0) var = 0;
        g(c, R + m1, var);
    }
}

/* Mean and biased variance of the C columns of x (M, C), one read of x;
 * g(c, mean, var) with double values. */
template <class G>
static dcl_status cu_colmoments(cu_impl *I, const char *op, int64_t M, int C, const float *x, G g) {
    if (C <= 0 || M <= 0) return DCL_OK;
    const cu_red_geom q = cu_red_plan(I, 1, M, C, cu_blocks_per_sm<cu_k_colmom_partial>(CU_RED_TX * CU_RED_TY));
    float *part;
    DCL_TRY(cu_scratch(I, CU_SCR_RED, (size_t)3 * q.nchunks * q.Cr * sizeof(float), (void **)&part, op));
    dim3 blk(CU_RED_TX, CU_RED_TY), grd(q.gx, q.nchunks, 1);
    cu_k_colmom_partial<<<grd, blk, 0, I->stream>>>(q.Mr, q.Cr, q.rows, q.nchunks, x, part);
    CU_LAUNCHED(op, "column moments");
    dim3 fblk(CU_RED_TX, 32), fgrd((C + CU_RED_TX - 1) / CU_RED_TX, 1);
    cu_k_colmom_final<G><<<fgrd, fblk, 0, I->stream>>>(C, q.fold, q.nchunks, M, q.Mr, q.rows, part, g);
    CU_LAUNCHED(op, "column moments (final)");
    return DCL_OK;
}

/* batch statistics from cu_colmoments: mean, biased var, 1/sqrt(var + eps) */
struct cu_g_bnstats {
    float *mean, *var, *invstd;
    double eps;
    __device__ void operator()(int c, double m, double v) const {
        mean[c] = (float)m;
        var[c] = (float)v;
        invstd[c] = (float)(1.0 / sqrt(v + eps));
    }
};

/* common element functors */
struct cu_f_value {                 /* x[i] */
    const float *x;
    __device__ void operator()(int64_t i, int c, float *v) const { v[0] = cu_ld(x, i); }
};
struct cu_g_accumulate {            /* out[c] += sum (in double, rounded once) */
    float *out;
    __device__ void operator()(int b, int c, const double *s) const {
        out[c] = (float)((double)out[c] + s[0]);
    }
};

/* ---- per-channel elementwise passes ---- */

/* W consecutive floats (W = 1, or 4 with 16-byte aligned accesses) */
template <int W> struct cu_fv { float v[W]; };

template <int W>
__device__ __forceinline__ cu_fv<W> cu_ldv(const float *p, int64_t i) {
    cu_fv<W> r;
    if constexpr (W == 4) {
        const float4 t = *reinterpret_cast<const float4 *>(p + i);
        r.v[0] = t.x; r.v[1] = t.y; r.v[2] = t.z; r.v[3] = t.w;
    } else {
#pragma unroll
        for (int l = 0; l < W; l++) r.v[l] = cu_ld(p, i + l);
    }
    return r;
}
template <int W>
__device__ __forceinline__ void cu_stv(float *p, int64_t i, const cu_fv<W> &a) {
    if constexpr (W == 4) {
        *reinterpret_cast<float4 *>(p + i) = make_float4(a.v[0], a.v[1], a.v[2], a.v[3]);
    } else {
#pragma unroll
        for (int l = 0; l < W; l++) cu_st(p, i + l, a.v[l]);
    }
}
/* W values of a small per-channel array (read-only in the kernel) */
template <int W>
__device__ __forceinline__ cu_fv<W> cu_ldpv(const float *p, int64_t i) {
    cu_fv<W> r;
    if constexpr (W == 4) {
        const float4 t = __ldg(reinterpret_cast<const float4 *>(p + i));
        r.v[0] = t.x; r.v[1] = t.y; r.v[2] = t.z; r.v[3] = t.w;
    } else {
#pragma unroll
        for (int l = 0; l < W; l++) r.v[l] = __ldg(p + i + l);
    }
    return r;
}
/* W copies of one value */
template <int W>
__device__ __forceinline__ cu_fv<W> cu_fill(float a) {
    cu_fv<W> r;
#pragma unroll
    for (int l = 0; l < W; l++) r.v[l] = a;
    return r;
}

/* Thread t of S (S a multiple of the row length in vectors, L = C / W)
 * keeps column group t % L and walks rows t / L, t / L + S / L, ...:
 *   col = f.prep<W>(c)         once (c = first channel of the group)
 *   f.run<W>(col, e, n)        per vector, e = index of its first element,
 *                              n = its sample (row / HW).
 * nv: vectors in the tensor; IX: unsigned when every index fits (see
 * cu_chan_run), int64_t otherwise. */
template <typename IX, int W, class F>
__global__ void __launch_bounds__(CU_THREADS)
cu_k_chan(IX nv, IX S, IX rstep, IX L, cu_idiv<IX> hw, F f) {
    const IX t = (IX)blockIdx.x * CU_THREADS + threadIdx.x;
    if (t >= S) return;                      /* no __syncthreads in this kernel */
    const IX row0 = t / L;                   /* one division per thread */
    const int c = (int)(t - row0 * L) * W;
    const auto col = f.template prep<W>(c);
    IX row = row0;
    for (IX v = t; v < nv; v += S, row += rstep) f.template run<W>(col, (int64_t)v * W, (int)hw.div(row));
}

/* Runs f over a tensor of `rows` rows of C channels, HW rows per sample;
 * vec: 16-byte vectors allowed (every pointer f accesses per element or per
 * channel is 16-byte aligned; C % 4 == 0 is checked here). */
template <class F>
static dcl_status cu_chan_run(cu_impl *I, const char *op, const char *kname, int64_t rows, int C, int64_t HW,
                              int vec, F f) {
    if (rows <= 0 || C <= 0) return DCL_OK;
    if (HW < 1) HW = 1;
    if (HW > rows) HW = rows;
    const int W = vec && C % 4 == 0 ? 4 : 1;
    const int64_t L = C / W;                       /* vectors per row */
    const int64_t nv = rows * L;
    const int64_t sms = I->sm_count > 0 ? I->sm_count : 80;
    /* 32-bit indices: v < nv <= rows * C and S <= rows * C, so v + S stays
     * below 2^31, and so does every row index (divided by HW) */
    const int small = cu_small(2 * rows * C);
    const int bps = small ? (W == 4 ? cu_blocks_per_sm<cu_k_chan<unsigned, 4, F>>(CU_THREADS)
                                    : cu_blocks_per_sm<cu_k_chan<unsigned, 1, F>>(CU_THREADS))
                          : (W == 4 ? cu_blocks_per_sm<cu_k_chan<int64_t, 4, F>>(CU_THREADS)
                                    : cu_blocks_per_sm<cu_k_chan<int64_t, 1, F>>(CU_THREADS));
    int64_t k = sms * bps * CU_THREADS / L;        /* rows per grid stride: one full wave of threads */
    if (k < 1) k = 1;
    if (k > rows) k = rows;
    const int64_t S = k * L;                       /* threads */
    const int64_t blocks = (S + CU_THREADS - 1) / CU_THREADS;
    if (blocks > 0x7fffffff) return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda %s: %d channels are too many", op, C);
    if (small) {
        const cu_idiv<unsigned> hw = cu_idiv<unsigned>::make(HW);
        if (W == 4)
            cu_k_chan<unsigned, 4, F><<<(unsigned)blocks, CU_THREADS, 0, I->stream>>>(
                (unsigned)nv, (unsigned)S, (unsigned)k, (unsigned)L, hw, f);
        else
            cu_k_chan<unsigned, 1, F><<<(unsigned)blocks, CU_THREADS, 0, I->stream>>>(
                (unsigned)nv, (unsigned)S, (unsigned)k, (unsigned)L, hw, f);
    } else {
        const cu_idiv<int64_t> hw = cu_idiv<int64_t>::make(HW);
        if (W == 4)
            cu_k_chan<int64_t, 4, F><<<(unsigned)blocks, CU_THREADS, 0, I->stream>>>(nv, S, k, L, hw, f);
        else
            cu_k_chan<int64_t, 1, F><<<(unsigned)blocks, CU_THREADS, 0, I->stream>>>(nv, S, k, L, hw, f);
    }
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        char call[96];
        snprintf(call, sizeof call, "%s launch", kname);
        return cu_fail_rt(op, call, e);
    }
    return DCL_OK;
}

/* 16-byte aligned (NULL counts as aligned: not accessed) */
static inline int cu_al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

#endif
