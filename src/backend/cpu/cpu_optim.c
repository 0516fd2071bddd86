/* Optimiser steps of the cpu backend: Adam / AdamW and SGD with momentum.
 *
 * Each is one pass over the parameters and their state (Adam reads p, m, v
 * and the gradient and writes p, m, v: 28 bytes per parameter), bound by
 * memory bandwidth.  The loops use GCC vector extensions (16 lanes with
 * AVX-512, 8 with AVX, else 4) with a scalar tail, and OpenMP splits the
 * range into one contiguous block per thread, cut at multiples of 16 floats
 * (64 bytes).  The arithmetic is the expression of the host version in
 * src/models/optim.c in the same order, with the square root and divisions
 * exact (vsqrtps, vdivps).  AdamW's decayed parameter p * (1 - lr*wd) is
 * rounded before the update is subtracted (PyTorch's separate p.mul_); other
 * multiply-adds are contracted by the compiler as in the host version.
 */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_vec.h"
#include <math.h>
#include <stdint.h>
#include <immintrin.h>

#define OPT_PAR_MIN 32768   /* parameters below which a step runs on one thread */

static inline vf o_sqrt(vf x) {
#if defined(__AVX512F__)
    return (vf)_mm512_sqrt_ps((__m512)x);
#elif defined(__AVX__)
    return (vf)_mm256_sqrt_ps((__m256)x);
#elif defined(__SSE__)
    return (vf)_mm_sqrt_ps((__m128)x);
#else
    vf r;
    for (int k = 0; k < VW; k++) r[k] = sqrtf(x[k]);
    return r;
#endif
}

#define FORCE_INLINE static inline __attribute__((always_inline))

/* The value of x as computed, opaque to the compiler: a product passed
 * through it is rounded to float before the next operation instead of being
 * fused into a multiply-add. */
#if defined(__SSE__)
#define ROUNDED(x) __asm__("" : "+v"(x))
#else
#define ROUNDED(x) ((void)0)
#endif

/* [*i0, *i1) of n for thread t of T, block edges at multiples of 16 */
static inline void split_range(int64_t n, int t, int T, int64_t *i0, int64_t *i1) {
    int64_t blocks = (n + 15) / 16;
    *i0 = blocks * t / T * 16;
    *i1 = blocks * (t + 1) / T * 16;
    if (*i0 > n) *i0 = n;
    if (*i1 > n) *i1 = n;
}

static inline int opt_threads(const cpu_impl *c, int64_t n) { return n < OPT_PAR_MIN ? 1 : c->nt; }


/* Adam over [i0, i1); `decoupled` is a constant in each instantiation */
FORCE_INLINE void adam_range(int64_t i0, int64_t i1, float *p, float *m, float *v, const float *grad,
                             float b1, float b2, float wd, float decay, float sbc2, float eps, float step,
                             int decoupled) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    const vf vb1 = vbc(b1), vb2 = vbc(b2), vc1 = vbc(c1), vc2 = vbc(c2), vwd = vbc(wd),
              vdecay = vbc(decay), vsbc2 = vbc(sbc2), veps = vbc(eps), vstep = vbc(step);
    int64_t i = i0;
    for (; i + VW <= i1; i += VW) {
        vf g = vld(grad + i), w = vld(p + i);
        if (decoupled) { w *= vdecay; ROUNDED(w); }
        else g += vwd * w;
        vf mi = vb1 * vld(m + i) + vc1 * g;
        vf vn = vb2 * vld(v + i) + vc2 * g * g;
        vst(m + i, mi);
        vst(v + i, vn);
        vst(p + i, w - vstep * mi / (o_sqrt(vn) / vsbc2 + veps));
    }
    for (; i < i1; i++) {
        float g = grad[i], w = p[i];
        if (decoupled) { w *= decay; ROUNDED(w); }
        else g += wd * w;
        float mi = b1 * m[i] + c1 * g;
        float vn = b2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vn;
        p[i] = w - step * mi / (sqrtf(vn) / sbc2 + eps);
    }
}

dcl_status cpu_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad, float lr,
                    float b1, float b2, float eps, float wd, int decoupled, float bc1, float bc2) {
    if (n < 0 || (n > 0 && (!p || !m || !v || !grad)))
        return dcl_fail(DCL_ERR_ARG, "cpu adam: bad arguments (n=%lld)", (long long)n);
    if (n == 0) return DCL_OK;
    /* PyTorch: denom = sqrt(v)/sqrt(bc2) + eps; p -= (lr/bc1) * m / denom */
    const float sbc2 = sqrtf(bc2), step = lr / bc1, decay = 1.0f - lr * wd;
    const int nt = opt_threads(cpu_of(be), n);
    #pragma omp parallel num_threads(nt)
    {
        int64_t i0, i1;
        split_range(n, thr_id(), thr_n(), &i0, &i1);
        if (decoupled) adam_range(i0, i1, p, m, v, grad, b1, b2, wd, decay, sbc2, eps, step, 1);
        else adam_range(i0, i1, p, m, v, grad, b1, b2, wd, decay, sbc2, eps, step, 0);
    }
    return DCL_OK;
}

/* SGD over [i0, i1); `mode` is a constant in each instantiation:
 * 0 no momentum, 1 momentum, first step (buf = g), 2 momentum (buf = mu*buf + g) */
FORCE_INLINE void sgd_range(int64_t i0, int64_t i1, float *p, float *buf, const float *grad, float lr,
                            float mu, float wd, int nesterov, int mode) {
    const vf vlr = vbc(lr), vmu = vbc(mu), vwd = vbc(wd);
    int64_t i = i0;
    for (; i + VW <= i1; i += VW) {
        vf w = vld(p + i);
        vf g = vld(grad + i) + vwd * w;
        if (mode) {
            vf b = g;
            if (mode == 2) b += vmu * vld(buf + i);
            vst(buf + i, b);
            if (nesterov) g += vmu * b;
            else g = b;
        }
        vst(p + i, w - vlr * g);
    }
    for (; i < i1; i++) {
        float g = grad[i] + wd * p[i];
        if (mode) {
            float b = mode == 1 ? g : mu * buf[i] + g;
            buf[i] = b;
            g = nesterov ? g + mu * b : b;
        }
        p[i] -= lr * g;
    }
}

dcl_status cpu_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad, float lr,
                   float momentum, float wd, int nesterov, int first_step) {
    const int mode = momentum != 0.0f ? (first_step ? 1 : 2) : 0;
    if (n < 0 || (n > 0 && (!p || !grad || (mode && !buf))))
        return dcl_fail(DCL_ERR_ARG, "cpu sgd: bad arguments (n=%lld)", (long long)n);
    if (n == 0) return DCL_OK;
    const int nt = opt_threads(cpu_of(be), n);
    nesterov = nesterov != 0;
    #pragma omp parallel num_threads(nt)
    {
        int64_t i0, i1;
        split_range(n, thr_id(), thr_n(), &i0, &i1);
        if (mode == 0) sgd_range(i0, i1, p, buf, grad, lr, momentum, wd, 0, 0);
        else if (mode == 1) sgd_range(i0, i1, p, buf, grad, lr, momentum, wd, nesterov, 1);
        else sgd_range(i0, i1, p, buf, grad, lr, momentum, wd, nesterov, 2);
    }
    return DCL_OK;
}
