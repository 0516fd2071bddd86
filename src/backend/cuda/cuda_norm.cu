/* Batch normalisation over M = N*H*W rows of C channels (NHWC), own kernels.
 *
 * Training forward: two passes over x.  The statistics in one read
 * (cu_colmoments: per chunk of rows, float sums of x - K and (x - K)^2 with
 * K the chunk's first value, the chunks merged in double), robust to a mean
 * far from zero; then y = (x - mean) * invstd * gamma + beta.  Running
 * statistics are the caller's business.
 * Backward (training mode, batch statistics depend on x), two passes:
 *   dbeta += sum dy,  dgamma += sum dy*xh,  xh = (x-mean)*invstd,
 *   dx = gamma*invstd*(dy - sum(dy)/M - xh*sum(dy*xh)/M).
 * The elementwise passes keep one channel (group of 4 with 16-byte
 * accesses when C % 4 == 0 and the pointers allow) per thread
 * (cu_chan_run): per-channel factors are computed once per thread and no
 * element needs an integer division.
 */
#include "backend/cuda/cuda_reduce.cuh"

namespace {

/* y = (x - m) * sc + bt with sc = invstd * gamma (training) or
 * 1/sqrt(rvar + eps) * gamma (inference: rvar given) */
struct e_bn_apply {
    float *y;
    const float *x, *mean, *invstd, *rvar, *gamma, *beta;
    double eps;
    template <int W> struct col { cu_fv<W> m, sc, bt; };
    template <int W>
    __device__ col<W> prep(int c) const {
        col<W> k;
        k.m = cu_ldpv<W>(mean, c);
        const cu_fv<W> g = gamma ? cu_ldpv<W>(gamma, c) : cu_fill<W>(1.f);
        k.bt = beta ? cu_ldpv<W>(beta, c) : cu_fill<W>(0.f);
        if (rvar) {
            const cu_fv<W> v = cu_ldpv<W>(rvar, c);
#pragma unroll
            for (int l = 0; l < W; l++) k.sc.v[l] = (float)(1.0 / sqrt((double)v.v[l] + eps)) * g.v[l];
        } else {
            const cu_fv<W> is = cu_ldpv<W>(invstd, c);
#pragma unroll
            for (int l = 0; l < W; l++) k.sc.v[l] = is.v[l] * g.v[l];
        }
        return k;
    }
    template <int W>
    __device__ __forceinline__ void run(const col<W> &k, int64_t e, int n) const {
        cu_fv<W> a = cu_ldv<W>(x, e);
#pragma unroll
        for (int l = 0; l < W; l++) a.v[l] = (a.v[l] - k.m.v[l]) * k.sc.v[l] + k.bt.v[l];
        cu_stv<W>(y, e, a);
    }
};

/* backward sums: dy, dy * xh */
struct r_bn_bwd {
    const float *dy, *x, *mean, *invstd;
    struct col {
        const float *dy, *x;
        float m, is;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const {
            const float g = cu_ld(dy, i);
            v[0] = g;
            v[1] = g * ((cu_ld(x, i) - m) * is);
        }
    };
    __device__ col prep(int b, int c) const {
        col k = {dy, x, mean[c], invstd[c]};
        return k;
    }
};
struct g_bwd {                      /* keep batch sums, accumulate parameter grads */
    float *sdy, *sdyx, *dgamma, *dbeta;
    __device__ void operator()(int b, int c, const double *s) const {
        sdy[c] = (float)s[0];
        sdyx[c] = (float)s[1];
        if (dbeta) dbeta[c] = (float)((double)dbeta[c] + s[0]);
        if (dgamma) dgamma[c] = (float)((double)dgamma[c] + s[1]);
    }
};

/* dx = A (dy - cs - (x - m) q), A = gamma invstd, cs = sdy / M,
 * q = invstd sdyx / M (per channel, in double, rounded once) */
struct e_bn_bwd_dx {
    float *dx;
    const float *dy, *x, *mean, *invstd, *gamma, *sdy, *sdyx;
    double inv_m;
    template <int W> struct col { cu_fv<W> m, A, cs, q; };
    template <int W>
    __device__ col<W> prep(int c) const {
        col<W> k;
        k.m = cu_ldpv<W>(mean, c);
        const cu_fv<W> is = cu_ldpv<W>(invstd, c), s0 = cu_ldpv<W>(sdy, c), s1 = cu_ldpv<W>(sdyx, c);
        const cu_fv<W> g = gamma ? cu_ldpv<W>(gamma, c) : cu_fill<W>(1.f);
#pragma unroll
        for (int l = 0; l < W; l++) {
            k.A.v[l] = (float)((double)g.v[l] * is.v[l]);
            k.cs.v[l] = (float)((double)s0.v[l] * inv_m);
            k.q.v[l] = (float)((double)is.v[l] * s1.v[l] * inv_m);
        }
        return k;
    }
    template <int W>
    __device__ __forceinline__ void run(const col<W> &k, int64_t e, int n) const {
        const cu_fv<W> xv = cu_ldv<W>(x, e);
        cu_fv<W> g = cu_ldv<W>(dy, e);
#pragma unroll
        for (int l = 0; l < W; l++) g.v[l] = k.A.v[l] * (g.v[l] - k.cs.v[l] - (xv.v[l] - k.m.v[l]) * k.q.v[l]);
        cu_stv<W>(dx, e, g);
    }
};

}  // namespace

/* ---- entries ---- */
static dcl_status cu_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                                  float *invstd, const float *x, const float *gamma, const float *beta,
                                  float eps) {
    const char *op = "bn_fwd_train";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, mean); CU_NEED(op, var); CU_NEED(op, invstd); CU_NEED(op, x);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    cu_g_bnstats g = {mean, var, invstd, (double)eps};
    DCL_TRY(cu_colmoments(I, op, M, C, x, g));
    e_bn_apply f = {y, x, mean, invstd, NULL, gamma, beta, 0.0};
    const int vec = cu_al16(y) && cu_al16(x) && cu_al16(mean) && cu_al16(invstd) && cu_al16(gamma) && cu_al16(beta);
    return cu_chan_run(I, op, "k_bn_apply", M, C, 1, vec, f);
}

static dcl_status cu_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                  const float *gamma, const float *beta, const float *rmean,
                                  const float *rvar, float eps) {
    const char *op = "bn_fwd_infer";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, rmean); CU_NEED(op, rvar);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    e_bn_apply f = {y, x, rmean, NULL, rvar, gamma, beta, (double)eps};
    const int vec = cu_al16(y) && cu_al16(x) && cu_al16(rmean) && cu_al16(rvar) && cu_al16(gamma) && cu_al16(beta);
    return cu_chan_run(I, op, "k_bn_infer", M, C, 1, vec, f);
}

static dcl_status cu_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *mean, const float *invstd,
                            const float *gamma) {
    const char *op = "bn_bwd";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, dx); CU_NEED(op, dy); CU_NEED(op, x); CU_NEED(op, mean); CU_NEED(op, invstd);
    float *tmp;
    DCL_TRY(cu_scratch(I, CU_SCR_TMP, (size_t)2 * C * sizeof(float), (void **)&tmp, op));
    r_bn_bwd f = {dy, x, mean, invstd};
    g_bwd g = {tmp, tmp + C, dgamma, dbeta};
    DCL_TRY((cu_colreduce_cols<2>(I, op, 1, M, C, f, g, 0)));
    /* after the sums: dx may alias dy (each element is read and written by one thread) */
    e_bn_bwd_dx e = {dx, dy, x, mean, invstd, gamma, tmp, tmp + C, 1.0 / (double)M};
    const int vec = cu_al16(dx) && cu_al16(dy) && cu_al16(x) && cu_al16(mean) && cu_al16(invstd) &&
                    cu_al16(gamma) && cu_al16(tmp) && cu_al16(tmp + C);
    return cu_chan_run(I, op, "k_bn_bwd_dx", M, C, 1, vec, e);
}

dcl_status cu_colsum_acc(cu_impl *I, const char *op, int64_t M, int C, float *out, const float *x) {
    if (M <= 0 || C <= 0) return DCL_OK;
    cu_f_value f = {x};
    cu_g_accumulate g = {out};
    return cu_colreduce<1>(I, op, 1, M, C, f, g);
}

void cu_install_norm(dcl_backend *be) {
    be->bn_fwd_train = cu_bn_fwd_train;
    be->bn_fwd_infer = cu_bn_fwd_infer;
    be->bn_bwd = cu_bn_bwd;
}
