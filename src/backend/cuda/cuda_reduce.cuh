/* Column reductions over channels-last data.
 *
 * Input: B independent (M, C) row-major matrices laid out one after the
 * other (B = 1 for batch norm / bias gradients, B = N for per-sample global
 * pooling).  For every (b, c) the kernels sum NOUT values F(i, c) over the M
 * rows, where i is the linear element index in the whole tensor, and hand
 * the NOUT double sums to G(b, c, sums).
 *
 * Pass 1 splits the rows into chunks: block (32 columns x 8 rows) sums one
 * chunk in float and writes a partial per column.  Pass 2 adds the partials
 * in double, one thread per (b, c).  When C divides 32 (C = 1, 2, 4, 8, 16)
 * the matrix is viewed as (M/f, C*f) so that a warp still reads 32
 * consecutive floats; pass 2 then also adds the f column groups.
 */
#ifndef DCL_CUDA_REDUCE_CUH
#define DCL_CUDA_REDUCE_CUH
#include "backend/cuda/cuda_internal.cuh"

#define CU_RED_TX 32
#define CU_RED_TY 8

template <int NOUT, class F>
__global__ void cu_k_colred_partial(int64_t Mr, int Cr, int C, int64_t rows_per_chunk, int nchunks,
                                    F f, float *part) {
    __shared__ float sh[NOUT][CU_RED_TY][CU_RED_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int cr = blockIdx.x * CU_RED_TX + tx;
    const int b = blockIdx.z;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk;
    if (r1 > Mr) r1 = Mr;
    float acc[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; k++) acc[k] = 0.f;
    if (cr < Cr) {
        const int c = cr % C;
        const int64_t base = (int64_t)b * Mr * Cr + cr;
        for (int64_t r = r0 + ty; r < r1; r += CU_RED_TY) {
            float v[NOUT];
            f(base + r * Cr, c, v);
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
            part[(((int64_t)k * gridDim.z + b) * nchunks + blockIdx.y) * Cr + cr] = s;
        }
    }
}

template <int NOUT, class G>
__global__ void cu_k_colred_final(int B, int C, int fold, int nchunks, const float *part, G g) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)B * C) return;
    const int b = (int)(t / C), c = (int)(t % C);
    const int Cr = C * fold;
    double s[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; k++) {
        double a = 0;
        for (int ch = 0; ch < nchunks; ch++) {
            const float *p = part + (((int64_t)k * B + b) * nchunks + ch) * Cr + c;
            for (int j = 0; j < fold; j++) a += (double)p[(int64_t)j * C];
        }
        s[k] = a;
    }
    g(b, c, s);
}

template <int NOUT, class F, class G>
static dcl_status cu_colreduce(cu_impl *I, const char *op, int B, int64_t M, int C, F f, G g) {
    if (B <= 0 || C <= 0) return DCL_OK;
    int fold = 1;
    if (C < CU_RED_TX && CU_RED_TX % C == 0) {
        fold = CU_RED_TX / C;
        while (fold > 1 && M % fold) fold /= 2;
    }
    const int64_t Mr = M / fold;
    const int Cr = C * fold;
    const int gx = (Cr + CU_RED_TX - 1) / CU_RED_TX;
    int64_t want = ((int64_t)I->sm_count * 8 + (int64_t)gx * B - 1) / ((int64_t)gx * B);
    int64_t maxchunks = (Mr + 63) / 64;          /* at least 64 rows (8 per thread) per chunk */
    if (want > maxchunks) want = maxchunks;
    if (want > 65535) want = 65535;
    if (want < 1) want = 1;
    int64_t rows = (Mr + want - 1) / want;
    if (rows < 1) rows = 1;
    int nchunks = (int)((Mr + rows - 1) / rows);
    if (nchunks < 1) nchunks = 1;
    if (B > 65535) return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda %s: batch %d too large for one reduction", op, B);
    float *part;
    DCL_TRY(cu_scratch(I, CU_SCR_RED, (size_t)NOUT * B * nchunks * Cr * sizeof(float), (void **)&part, op));
    dim3 blk(CU_RED_TX, CU_RED_TY), grd(gx, nchunks, B);
    cu_k_colred_partial<NOUT, F><<<grd, blk, 0, I->stream>>>(Mr, Cr, C, rows, nchunks, f, part);
    CU_LAUNCHED(op, "column reduction");
    const int64_t nt = (int64_t)B * C;
    cu_k_colred_final<NOUT, G><<<(unsigned)((nt + 255) / 256), 256, 0, I->stream>>>(B, C, fold, nchunks, part, g);
    CU_LAUNCHED(op, "column reduction (final)");
    return DCL_OK;
}

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

#endif
