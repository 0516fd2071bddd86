/* Elementwise ops: activations, PReLU, global average pooling,
 * squeeze-excitation scaling, add, masked scaling, and the optimizer
 * updates (axpby, Adam, SGD).  Own kernels, grid-stride loops. */
#include "backend/cuda/cuda_reduce.cuh"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "dcl/io.h"

__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }

/* ---------------------------------------------------------------------- */
/* activations                                                            */
/* ---------------------------------------------------------------------- */

template <typename T, int A>
__global__ void k_act_fwd(int64_t n, T *y, const T *x) {
    CU_FOR(i, n) {
        const float v = cu_ld(x, i);
        float r;
        if (A == DCL_ACT_RELU) r = v > 0.f ? v : 0.f;
        else if (A == DCL_ACT_SILU) r = v * sigmoidf_(v);
        else if (A == DCL_ACT_SIGMOID) r = sigmoidf_(v);
        else r = v;
        cu_st(y, i, r);
    }
}

/* mode: 0 relu from v (x or y), 1 silu from x, 2 sigmoid from y, 3 sigmoid from x */
template <typename T, int MODE>
__global__ void k_act_bwd(int64_t n, T *dx, const T *dy, const T *v) {
    CU_FOR(i, n) {
        const float g = cu_ld(dy, i), a = cu_ld(v, i);
        float r;
        if (MODE == 0) r = a > 0.f ? g : 0.f;
        else if (MODE == 1) { const float s = sigmoidf_(a); r = g * (s * (1.f + a * (1.f - s))); }
        else if (MODE == 2) r = g * (a * (1.f - a));
        else { const float s = sigmoidf_(a); r = g * (s * (1.f - s)); }
        cu_st(dx, i, r);
    }
}

static dcl_status cu_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    const char *op = "act_fwd";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, y); CU_NEED(op, x);
    const unsigned g = cu_grid(I, n);
    switch (a) {
    case DCL_ACT_NONE:
        if (y != x) CU_RT(op, cudaMemcpyAsync(y, x, (size_t)n * sizeof *y, cudaMemcpyDeviceToDevice, I->stream));
        return DCL_OK;
    case DCL_ACT_RELU: k_act_fwd<float, DCL_ACT_RELU><<<g, CU_THREADS, 0, I->stream>>>(n, y, x); break;
    case DCL_ACT_SILU: k_act_fwd<float, DCL_ACT_SILU><<<g, CU_THREADS, 0, I->stream>>>(n, y, x); break;
    case DCL_ACT_SIGMOID: k_act_fwd<float, DCL_ACT_SIGMOID><<<g, CU_THREADS, 0, I->stream>>>(n, y, x); break;
    default: return dcl_fail(DCL_ERR_ARG, "cuda %s: unknown activation %d", op, (int)a);
    }
    CU_LAUNCHED(op, "k_act_fwd");
    return DCL_OK;
}

static dcl_status cu_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy,
                             const float *x, const float *y) {
    const char *op = "act_bwd";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, dx); CU_NEED(op, dy);
    const unsigned g = cu_grid(I, n);
    switch (a) {
    case DCL_ACT_NONE:
        if (dx != dy) CU_RT(op, cudaMemcpyAsync(dx, dy, (size_t)n * sizeof *dx, cudaMemcpyDeviceToDevice, I->stream));
        return DCL_OK;
    case DCL_ACT_RELU: {
        const float *v = x ? x : y;
        if (!v) return dcl_fail(DCL_ERR_ARG, "cuda %s: relu needs x or y (both NULL)", op);
        k_act_bwd<float, 0><<<g, CU_THREADS, 0, I->stream>>>(n, dx, dy, v);
        break;
    }
    case DCL_ACT_SILU:
        if (!x) return dcl_fail(DCL_ERR_ARG, "cuda %s: silu needs its input x (NULL)", op);
        k_act_bwd<float, 1><<<g, CU_THREADS, 0, I->stream>>>(n, dx, dy, x);
        break;
    case DCL_ACT_SIGMOID:
        if (y) k_act_bwd<float, 2><<<g, CU_THREADS, 0, I->stream>>>(n, dx, dy, y);
        else if (x) k_act_bwd<float, 3><<<g, CU_THREADS, 0, I->stream>>>(n, dx, dy, x);
        else return dcl_fail(DCL_ERR_ARG, "cuda %s: sigmoid needs x or y (both NULL)", op);
        break;
    default: return dcl_fail(DCL_ERR_ARG, "cuda %s: unknown activation %d", op, (int)a);
    }
    CU_LAUNCHED(op, "k_act_bwd");
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* PReLU                                                                  */
/* ---------------------------------------------------------------------- */

template <typename T, typename IX>
__global__ void k_prelu_fwd(IX n, cu_idiv<IX> C, T *y, const T *x, const float *alpha) {
    CU_FORI(IX, i, n) {
        const float v = cu_ld(x, i);
        cu_st(y, i, v > 0.f ? v : alpha[C.mod(i)] * v);
    }
}

template <typename T, typename IX>
__global__ void k_prelu_bwd_dx(IX n, cu_idiv<IX> C, T *dx, const T *dy, const T *x, const float *alpha) {
    CU_FORI(IX, i, n) {
        const float v = cu_ld(x, i), g = cu_ld(dy, i);
        cu_st(dx, i, v > 0.f ? g : alpha[C.mod(i)] * g);
    }
}

struct f_prelu_da {                 /* x*dy where x <= 0 */
    const float *x, *dy;
    __device__ void operator()(int64_t i, int c, float *v) const {
        const float a = cu_ld(x, i);
        v[0] = a > 0.f ? 0.f : a * cu_ld(dy, i);
    }
};

static dcl_status cu_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha) {
    const char *op = "prelu_fwd";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, alpha);
    const int64_t n = M * C;
    if (cu_small(n))
        k_prelu_fwd<float, unsigned><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, cu_idiv<unsigned>::make(C), y, x, alpha);
    else
        k_prelu_fwd<float, int64_t><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, cu_idiv<int64_t>::make(C), y, x, alpha);
    CU_LAUNCHED(op, "k_prelu_fwd");
    return DCL_OK;
}

static dcl_status cu_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha,
                               const float *dy, const float *x, const float *alpha) {
    const char *op = "prelu_bwd";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, dx); CU_NEED(op, dy); CU_NEED(op, x); CU_NEED(op, alpha);
    if (dalpha) {
        f_prelu_da f = {x, dy};
        cu_g_accumulate g = {dalpha};
        DCL_TRY((cu_colreduce<1>(I, op, 1, M, C, f, g)));
    }
    const int64_t n = M * C;   /* after the reduction: dx may alias dy */
    if (cu_small(n))
        k_prelu_bwd_dx<float, unsigned><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, cu_idiv<unsigned>::make(C), dx, dy, x, alpha);
    else
        k_prelu_bwd_dx<float, int64_t><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, cu_idiv<int64_t>::make(C), dx, dy, x, alpha);
    CU_LAUNCHED(op, "k_prelu_bwd_dx");
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* global average pooling and squeeze-excitation scaling                  */
/* ---------------------------------------------------------------------- */

struct g_store_scaled {             /* y[b*C + c] = sum * scale */
    float *y; double scale;
    __device__ void operator()(int b, int c, const double *s) const {
        y[(int64_t)b * gridC + c] = (float)(s[0] * scale);
    }
    int gridC;
};

struct f_mul {                      /* dy * x */
    const float *dy, *x;
    __device__ void operator()(int64_t i, int c, float *v) const { v[0] = cu_ld(dy, i) * cu_ld(x, i); }
};

/* index of the per-sample, per-channel entry of element i of (N, HW, C) */
template <typename IX>
__device__ __forceinline__ IX nc_index(IX i, const cu_idiv<IX> &HWC, const cu_idiv<IX> &C) {
    return HWC.div(i) * (IX)C.v_d() + C.mod(i);
}

template <typename T, typename IX>
__global__ void k_gap_bwd(IX n, cu_idiv<IX> HWC, cu_idiv<IX> C, float inv_hw, T *dx, const T *dy) {
    CU_FORI(IX, i, n) cu_st(dx, i, dy[nc_index(i, HWC, C)] * inv_hw);
}

template <typename T, typename IX>
__global__ void k_mul_bcast(IX n, cu_idiv<IX> HWC, cu_idiv<IX> C, T *y, const T *x, const float *s) {
    CU_FORI(IX, i, n) cu_st(y, i, cu_ld(x, i) * s[nc_index(i, HWC, C)]);
}

/* launches k_mul_bcast / k_gap_bwd with the index type n allows */
#define NC_LAUNCH(I, kern, n, HW, C, ...) do { \
    if (cu_small(n)) \
        kern<float, unsigned><<<cu_grid(I, n), CU_THREADS, 0, (I)->stream>>>( \
            (unsigned)(n), cu_idiv<unsigned>::make((int64_t)(HW) * (C)), cu_idiv<unsigned>::make(C), __VA_ARGS__); \
    else \
        kern<float, int64_t><<<cu_grid(I, n), CU_THREADS, 0, (I)->stream>>>( \
            (int64_t)(n), cu_idiv<int64_t>::make((int64_t)(HW) * (C)), cu_idiv<int64_t>::make(C), __VA_ARGS__); \
} while (0)

static dcl_status cu_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x) {
    const char *op = "gap_fwd";
    CU_ENTER(be, op);
    CU_POS(op, N); CU_POS(op, HW); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, x);
    cu_f_value f = {x};
    g_store_scaled g = {y, 1.0 / (double)HW, C};
    return cu_colreduce<1>(I, op, N, HW, C, f, g);
}

static dcl_status cu_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) {
    const char *op = "gap_bwd";
    CU_ENTER(be, op);
    CU_POS(op, N); CU_POS(op, HW); CU_POS(op, C);
    CU_NEED(op, dx); CU_NEED(op, dy);
    const int64_t n = (int64_t)N * HW * C;
    NC_LAUNCH(I, k_gap_bwd, n, HW, C, (float)(1.0 / HW), dx, dy);
    CU_LAUNCHED(op, "k_gap_bwd");
    return DCL_OK;
}

static dcl_status cu_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x,
                                   const float *s) {
    const char *op = "mul_bcast_fwd";
    CU_ENTER(be, op);
    CU_POS(op, N); CU_POS(op, HW); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, s);
    const int64_t n = (int64_t)N * HW * C;
    NC_LAUNCH(I, k_mul_bcast, n, HW, C, y, x, s);
    CU_LAUNCHED(op, "k_mul_bcast");
    return DCL_OK;
}

static dcl_status cu_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds,
                                   const float *dy, const float *x, const float *s) {
    const char *op = "mul_bcast_bwd";
    CU_ENTER(be, op);
    CU_POS(op, N); CU_POS(op, HW); CU_POS(op, C);
    CU_NEED(op, dy);
    if (ds) {
        CU_NEED(op, x);
        f_mul f = {dy, x};
        g_store_scaled g = {ds, 1.0, C};
        DCL_TRY((cu_colreduce<1>(I, op, N, HW, C, f, g)));
    }
    if (dx) {                       /* after ds: dx may alias dy or x */
        CU_NEED(op, s);
        const int64_t n = (int64_t)N * HW * C;
        NC_LAUNCH(I, k_mul_bcast, n, HW, C, dx, dy, s);
        CU_LAUNCHED(op, "k_mul_bcast");
    }
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* add, masked scaling                                                    */
/* ---------------------------------------------------------------------- */

template <typename T>
__global__ void k_add(int64_t n, T *y, const T *a, const T *b) {
    CU_FOR(i, n) cu_st(y, i, cu_ld(a, i) + cu_ld(b, i));
}

template <typename T, typename IX>
__global__ void k_scale_mask(IX n, cu_idiv<IX> cols, int per_row, float scale, T *y, const T *x,
                             const float *mask) {
    CU_FORI(IX, i, n) {
        const float m = per_row ? mask[cols.div(i)] : mask[i];
        cu_st(y, i, cu_ld(x, i) * (m * scale));
    }
}

static dcl_status cu_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) {
    const char *op = "add";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, y); CU_NEED(op, a); CU_NEED(op, b);
    k_add<float><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, y, a, b);
    CU_LAUNCHED(op, "k_add");
    return DCL_OK;
}

static dcl_status cu_scale_mask(dcl_backend *be, int64_t rows, int64_t cols, float *y, const float *x,
                                const float *mask, int per_row, float scale) {
    const char *op = "scale_mask";
    CU_ENTER(be, op);
    CU_NONNEG(op, rows); CU_NONNEG(op, cols);
    const int64_t n = rows * cols;
    if (n == 0) return DCL_OK;
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, mask);
    if (cu_small(n))
        k_scale_mask<float, unsigned><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, cu_idiv<unsigned>::make(cols > 0 ? cols : 1), per_row, scale, y, x, mask);
    else
        k_scale_mask<float, int64_t><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, cu_idiv<int64_t>::make(cols > 0 ? cols : 1), per_row, scale, y, x, mask);
    CU_LAUNCHED(op, "k_scale_mask");
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* optimizer updates (parameters stay fp32)                               */
/* ---------------------------------------------------------------------- */

__global__ void k_axpby(int64_t n, float *y, float a, const float *x, float b) {
    if (b == 0.f) { CU_FOR(i, n) y[i] = a * x[i]; }
    else { CU_FOR(i, n) y[i] = a * x[i] + b * y[i]; }
}

__global__ void k_adam(int64_t n, float *p, float *m, float *v, const float *grad, float lr, float b1,
                       float b2, float eps, float wd, int decoupled, float bc1, float bc2) {
    CU_FOR(i, n) {
        float pv = p[i], g = grad[i];
        if (decoupled) pv *= 1.f - lr * wd;
        else if (wd != 0.f) g += wd * pv;
        const float mv = b1 * m[i] + (1.f - b1) * g;
        const float vv = b2 * v[i] + (1.f - b2) * g * g;
        m[i] = mv;
        v[i] = vv;
        p[i] = pv - lr * (mv / bc1) / (sqrtf(vv / bc2) + eps);
    }
}

__global__ void k_sgd(int64_t n, float *p, float *buf, const float *grad, float lr, float momentum, float wd,
                      int nesterov, int first_step) {
    CU_FOR(i, n) {
        const float pv = p[i];
        float g = grad[i];
        if (wd != 0.f) g += wd * pv;
        if (momentum != 0.f) {
            const float bv = first_step ? g : momentum * buf[i] + g;
            buf[i] = bv;
            g = nesterov ? g + momentum * bv : bv;
        }
        p[i] = pv - lr * g;
    }
}

static dcl_status cu_axpby(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b) {
    const char *op = "axpby";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, y); CU_NEED(op, x);
    k_axpby<<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, y, a, x, b);
    CU_LAUNCHED(op, "k_axpby");
    return DCL_OK;
}

static dcl_status cu_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad,
                          float lr, float b1, float b2, float eps, float wd, int decoupled, float bc1,
                          float bc2) {
    const char *op = "adam";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, p); CU_NEED(op, m); CU_NEED(op, v); CU_NEED(op, grad);
    if (!(bc1 > 0) || !(bc2 > 0))
        return dcl_fail(DCL_ERR_ARG, "cuda %s: bias corrections must be positive (bc1 %g, bc2 %g)", op,
                        (double)bc1, (double)bc2);
    k_adam<<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, p, m, v, grad, lr, b1, b2, eps, wd, decoupled, bc1, bc2);
    CU_LAUNCHED(op, "k_adam");
    return DCL_OK;
}

static dcl_status cu_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad, float lr,
                         float momentum, float wd, int nesterov, int first_step) {
    const char *op = "sgd";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, p); CU_NEED(op, grad);
    if (momentum != 0.f) CU_NEED(op, buf);
    k_sgd<<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, p, buf, grad, lr, momentum, wd, nesterov, first_step);
    CU_LAUNCHED(op, "k_sgd");
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* batch norm folded into a convolution (evaluation plans)                */
/* ---------------------------------------------------------------------- */

__global__ void k_bn_fold(int C, float *scale, float *shift, const float *gamma, const float *beta,
                          const float *rmean, const float *rvar, const float *cbias, double eps) {
    CU_FOR(c, C) {
        const double sc = (double)(gamma ? gamma[c] : 1.f) / sqrt((double)rvar[c] + eps);
        const double b0 = cbias ? (double)cbias[c] : 0.0;
        scale[c] = (float)sc;
        shift[c] = (float)((double)(beta ? beta[c] : 0.f) + (b0 - (double)rmean[c]) * sc);
    }
}

static dcl_status cu_bn_fold(dcl_backend *be, int C, float *scale, float *shift, const float *gamma,
                             const float *beta, const float *rmean, const float *rvar, const float *cbias,
                             float eps) {
    const char *op = "bn_fold";
    CU_ENTER(be, op);
    CU_POS(op, C);
    CU_NEED(op, scale); CU_NEED(op, shift); CU_NEED(op, rmean); CU_NEED(op, rvar);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    k_bn_fold<<<cu_grid(I, C), CU_THREADS, 0, I->stream>>>(C, scale, shift, gamma, beta, rmean, rvar, cbias,
                                                           (double)eps);
    CU_LAUNCHED(op, "k_bn_fold");
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* fp32 <-> bf16 storage conversions, copies                              */
/* ---------------------------------------------------------------------- */

__global__ void k_cvt_f32_bf16(int64_t n, unsigned short *dst, const float *src) {
    CU_FOR(i, n) dst[i] = cu_f32_bf16_bits(__float_as_uint(src[i]));
}

__global__ void k_cvt_bf16_f32(int64_t n, float *dst, const unsigned short *src) {
    CU_FOR(i, n) dst[i] = __uint_as_float((unsigned)src[i] << 16);
}

static dcl_status cu_cvt_f32_bf16(dcl_backend *be, int64_t n, uint16_t *dst, const float *src) {
    const char *op = "cvt_f32_bf16";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, dst); CU_NEED(op, src);
    k_cvt_f32_bf16<<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, (unsigned short *)dst, src);
    CU_LAUNCHED(op, "k_cvt_f32_bf16");
    return DCL_OK;
}

static dcl_status cu_cvt_bf16_f32(dcl_backend *be, int64_t n, float *dst, const uint16_t *src) {
    const char *op = "cvt_bf16_f32";
    CU_ENTER(be, op);
    CU_NONNEG(op, n);
    if (n == 0) return DCL_OK;
    CU_NEED(op, dst); CU_NEED(op, src);
    k_cvt_bf16_f32<<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, dst, (const unsigned short *)src);
    CU_LAUNCHED(op, "k_cvt_bf16_f32");
    return DCL_OK;
}

static dcl_status cu_mem_copy(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    const char *op = "mem_copy";
    CU_ENTER(be, op);
    if (!bytes || dst == src) return DCL_OK;
    CU_NEED(op, dst); CU_NEED(op, src);
    CU_RT(op, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, I->stream));
    return DCL_OK;
}

extern "C" int dcl_cuda_bf16_host_selftest(char *msg, size_t msgn) {
    /* every 13th bit pattern (all exponents, both signs, NaNs, infinities,
     * the rounding ties) against io.h's converter */
    int bad = 0;
    for (uint64_t k = 0; k <= 0xffffffffull; k += 13) {
        const unsigned u = (unsigned)k;
        float f;
        memcpy(&f, &u, 4);
        const unsigned short a = cu_f32_bf16_bits(u), b = dcl_f32_to_bf16(f);
        if (a != b) {
            if (!bad && msg && msgn) snprintf(msg, msgn, "0x%08x -> 0x%04x, expected 0x%04x", u, a, b);
            bad++;
        }
    }
    if (!bad && msg && msgn) snprintf(msg, msgn, "ok");
    return bad;
}

void cu_install_elem(dcl_backend *be) {
    be->cvt_f32_bf16 = cu_cvt_f32_bf16;
    be->cvt_bf16_f32 = cu_cvt_bf16_f32;
    be->mem_copy = cu_mem_copy;
    be->bn_fold = cu_bn_fold;
    be->act_fwd = cu_act_fwd;
    be->act_bwd = cu_act_bwd;
    be->prelu_fwd = cu_prelu_fwd;
    be->prelu_bwd = cu_prelu_bwd;
    be->gap_fwd = cu_gap_fwd;
    be->gap_bwd = cu_gap_bwd;
    be->mul_bcast_fwd = cu_mul_bcast_fwd;
    be->mul_bcast_bwd = cu_mul_bcast_bwd;
    be->add = cu_add;
    be->scale_mask = cu_scale_mask;
    be->axpby = cu_axpby;
    be->adam = cu_adam;
    be->sgd = cu_sgd;
}
