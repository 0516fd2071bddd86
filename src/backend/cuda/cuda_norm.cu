/* Batch normalisation over M = N*H*W rows of C channels (NHWC), own kernels.
 *
 * Training forward is two-pass and exact: mean = sum(x)/M, then
 * var = sum((x-mean)^2)/M (biased), invstd = 1/sqrt(var+eps), with float
 * partial sums per chunk of rows and the chunks added in double (see
 * cuda_reduce.cuh).  Running statistics are the caller's business.
 * Backward (training mode, batch statistics depend on x):
 *   dbeta += sum dy,  dgamma += sum dy*xh,  xh = (x-mean)*invstd,
 *   dx = gamma*invstd*(dy - sum(dy)/M - xh*sum(dy*xh)/M).
 */
#include "backend/cuda/cuda_reduce.cuh"

/* ---- pass functors ---- */
struct f_sqdev {                    /* (x - mean[c])^2 */
    const float *x, *mean;
    __device__ void operator()(int64_t i, int c, float *v) const {
        const float t = cu_ld(x, i) - mean[c];
        v[0] = t * t;
    }
};
struct g_mean {
    float *mean; double inv_m;
    __device__ void operator()(int b, int c, const double *s) const { mean[c] = (float)(s[0] * inv_m); }
};
struct g_var {
    float *var, *invstd; double inv_m, eps;
    __device__ void operator()(int b, int c, const double *s) const {
        const double v = s[0] * inv_m;
        var[c] = (float)v;
        invstd[c] = (float)(1.0 / sqrt(v + eps));
    }
};
struct f_bwd {                      /* dy, dy * xh */
    const float *dy, *x, *mean, *invstd;
    __device__ void operator()(int64_t i, int c, float *v) const {
        const float g = cu_ld(dy, i);
        v[0] = g;
        v[1] = g * ((cu_ld(x, i) - mean[c]) * invstd[c]);
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

/* ---- elementwise kernels ---- */
template <typename T>
__global__ void k_bn_apply(int64_t n, int C, T *y, const T *x, const float *mean, const float *invstd,
                           const float *gamma, const float *beta) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const float g = gamma ? gamma[c] : 1.f, b = beta ? beta[c] : 0.f;
        cu_st(y, i, (cu_ld(x, i) - mean[c]) * invstd[c] * g + b);
    }
}

template <typename T>
__global__ void k_bn_infer(int64_t n, int C, T *y, const T *x, const float *gamma, const float *beta,
                           const float *rmean, const float *rvar, float eps) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const float is = (float)(1.0 / sqrt((double)rvar[c] + (double)eps));
        const float g = gamma ? gamma[c] : 1.f, b = beta ? beta[c] : 0.f;
        cu_st(y, i, (cu_ld(x, i) - rmean[c]) * is * g + b);
    }
}

template <typename T>
__global__ void k_bn_bwd_dx(int64_t n, int C, float inv_m, T *dx, const T *dy, const T *x,
                            const float *mean, const float *invstd, const float *gamma,
                            const float *sdy, const float *sdyx) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const float is = invstd[c];
        const float xh = (cu_ld(x, i) - mean[c]) * is;
        const float g = gamma ? gamma[c] : 1.f;
        cu_st(dx, i, g * is * (cu_ld(dy, i) - sdy[c] * inv_m - xh * (sdyx[c] * inv_m)));
    }
}

/* ---- entries ---- */
static dcl_status cu_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                                  float *invstd, const float *x, const float *gamma, const float *beta,
                                  float eps) {
    const char *op = "bn_fwd_train";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, mean); CU_NEED(op, var); CU_NEED(op, invstd); CU_NEED(op, x);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    const double inv_m = 1.0 / (double)M;
    cu_f_value f1 = {x};
    g_mean g1 = {mean, inv_m};
    DCL_TRY((cu_colreduce<1>(I, op, 1, M, C, f1, g1)));
    f_sqdev f2 = {x, mean};
    g_var g2 = {var, invstd, inv_m, (double)eps};
    DCL_TRY((cu_colreduce<1>(I, op, 1, M, C, f2, g2)));
    const int64_t n = M * C;
    k_bn_apply<float><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, C, y, x, mean, invstd, gamma, beta);
    CU_LAUNCHED(op, "k_bn_apply");
    return DCL_OK;
}

static dcl_status cu_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                  const float *gamma, const float *beta, const float *rmean,
                                  const float *rvar, float eps) {
    const char *op = "bn_fwd_infer";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, C);
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, rmean); CU_NEED(op, rvar);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    const int64_t n = M * C;
    k_bn_infer<float><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, C, y, x, gamma, beta, rmean, rvar, eps);
    CU_LAUNCHED(op, "k_bn_infer");
    return DCL_OK;
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
    f_bwd f = {dy, x, mean, invstd};
    g_bwd g = {tmp, tmp + C, dgamma, dbeta};
    DCL_TRY((cu_colreduce<2>(I, op, 1, M, C, f, g)));
    /* after the sums: dx may alias dy */
    const int64_t n = M * C;
    k_bn_bwd_dx<float><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, C, (float)(1.0 / (double)M), dx, dy, x,
                                                                     mean, invstd, gamma, tmp, tmp + C);
    CU_LAUNCHED(op, "k_bn_bwd_dx");
    return DCL_OK;
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
