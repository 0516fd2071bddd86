/* Fused batch norm + activation (+ squeeze-excitation) entries for the
 * training plan (backend.h: bn_stats, bn_act_fwd, bn_act_bwd_reduce,
 * bn_act_bwd_dx, bn_act_dot, bn_act_se_sums), with the semantics of the
 * cpu backend's (src/backend/cpu/cpu_kernels.c):
 *
 *   z = (x - mean) * sc + beta,  sc = invstd * gamma (float),  a = act(z)
 *
 * - bn_stats: cu_colmoments (one read of x, chunks merged in double).
 * - passes that also sum per sample or per channel (bn_act_fwd with gmean,
 *   bn_act_bwd_reduce, bn_act_dot, bn_act_se_sums) are column reductions
 *   over N matrices of HW rows (cuda_reduce.cuh), so the sample of every
 *   element is the block's; per-channel and per-sample factors are loaded
 *   once per thread; outputs written on the way (y, d) are written by the
 *   thread that reads the element.
 * - the other passes (bn_act_fwd without gmean, bn_act_bwd_dx) keep one
 *   channel group per thread (cu_chan_run), 16-byte accesses when C % 4 == 0
 *   and the pointers are aligned.
 * In-place use: y may be x, d may be dy, dx may be d (one thread reads and
 * writes each element).
 */
#include "backend/cuda/cuda_reduce.cuh"
#include <math.h>

namespace {

__device__ __forceinline__ float fz_sig(float z) { return 1.f / (1.f + expf(-z)); }

template <int A>
__device__ __forceinline__ float fz_act(float z) {
    if (A == DCL_ACT_RELU) return z > 0.f ? z : 0.f;
    if (A == DCL_ACT_SILU) return z * fz_sig(z);
    if (A == DCL_ACT_SIGMOID) return fz_sig(z);
    return z;
}
/* g * act'(z) */
template <int A>
__device__ __forceinline__ float fz_dact(float z, float g) {
    if (A == DCL_ACT_RELU) return z > 0.f ? g : 0.f;
    if (A == DCL_ACT_SILU) { const float s = fz_sig(z); return g * s * (1.f + z * (1.f - s)); }
    if (A == DCL_ACT_SIGMOID) { const float s = fz_sig(z); return g * s * (1.f - s); }
    return g;
}
/* a = act(z) and a' = act'(z) from one sigmoid */
template <int A>
__device__ __forceinline__ void fz_both(float z, float &a, float &ap) {
    if (A == DCL_ACT_RELU) { a = z > 0.f ? z : 0.f; ap = z > 0.f ? 1.f : 0.f; }
    else if (A == DCL_ACT_SILU) { const float s = fz_sig(z); a = z * s; ap = s * (1.f + z * (1.f - s)); }
    else if (A == DCL_ACT_SIGMOID) { const float s = fz_sig(z); a = s; ap = s * (1.f - s); }
    else { a = z; ap = 1.f; }
}

/* the normalisation of W channels from c: m, sc, bt (identity without
 * statistics: mean NULL) */
template <int W> struct fz_norm { cu_fv<W> m, sc, bt; };
template <int W>
__device__ __forceinline__ fz_norm<W> fz_norm_load(const float *mean, const float *invstd, const float *gamma,
                                                   const float *beta, int c) {
    fz_norm<W> k;
    if (mean) {
        k.m = cu_ldpv<W>(mean, c);
        k.bt = cu_ldpv<W>(beta, c);
        const cu_fv<W> is = cu_ldpv<W>(invstd, c), g = cu_ldpv<W>(gamma, c);
#pragma unroll
        for (int l = 0; l < W; l++) k.sc.v[l] = is.v[l] * g.v[l];
    } else {
        k.m = cu_fill<W>(0.f);
        k.sc = cu_fill<W>(1.f);
        k.bt = cu_fill<W>(0.f);
    }
    return k;
}

/* ---- bn_act_fwd without the pooled means: y = act(z) (* s[n][c]) ---- */
template <int A>
struct e_fwd {
    float *y;
    const float *x, *mean, *invstd, *gamma, *beta, *s;
    int C;
    template <int W> struct col { fz_norm<W> p; int c; };
    template <int W>
    __device__ col<W> prep(int c) const {
        col<W> k;
        k.p = fz_norm_load<W>(mean, invstd, gamma, beta, c);
        k.c = c;
        return k;
    }
    template <int W>
    __device__ __forceinline__ void run(const col<W> &k, int64_t e, int n) const {
        cu_fv<W> a = cu_ldv<W>(x, e);
#pragma unroll
        for (int l = 0; l < W; l++) a.v[l] = fz_act<A>((a.v[l] - k.p.m.v[l]) * k.p.sc.v[l] + k.p.bt.v[l]);
        if (s) {
            const cu_fv<W> sv = cu_ldpv<W>(s, (int64_t)n * C + k.c);
#pragma unroll
            for (int l = 0; l < W; l++) a.v[l] *= sv.v[l];
        }
        cu_stv<W>(y, e, a);
    }
};

/* ---- bn_act_fwd with the pooled means (per-sample column reduction) ---- */
template <int A>
struct r_fwd {
    float *y;
    const float *x, *mean, *invstd, *gamma, *beta, *s;
    int C;
    struct col {
        float *y;
        const float *x;
        float m, sc, bt, sv;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const {
            const float a = fz_act<A>((cu_ld(x, i) - m) * sc + bt);
            v[0] = a;
            if (y) cu_st(y, i, a * sv);
        }
    };
    __device__ col prep(int b, int c) const {
        const fz_norm<1> p = fz_norm_load<1>(mean, invstd, gamma, beta, c);
        col k = {y, x, p.m.v[0], p.sc.v[0], p.bt.v[0], s ? s[(int64_t)b * C + c] : 1.f};
        return k;
    }
};
struct g_gmean {                    /* gmean[b][c] = sum / HW */
    float *gmean;
    int C;
    double hw;
    __device__ void operator()(int b, int c, const double *s) const {
        gmean[(int64_t)b * C + c] = (float)(s[0] / hw);
    }
};

/* ---- bn_act_bwd_reduce: d = (dy s + dgap / HW) act'(z); sums of d, d xc ---- */
template <int A>
struct r_bwd {
    float *d;
    const float *dy, *x, *mean, *invstd, *gamma, *beta, *s, *dgap;
    int C;
    float ihw;
    struct col {
        float *d;
        const float *dy, *x;
        float m, sc, bt, sv, gv;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const {
            const float xc = cu_ld(x, i) - m;
            const float g = cu_ld(dy, i) * sv + gv;
            const float dd = fz_dact<A>(xc * sc + bt, g);
            v[0] = dd;
            v[1] = dd * xc;
            if (d) cu_st(d, i, dd);
        }
    };
    __device__ col prep(int b, int c) const {
        const int64_t o = (int64_t)b * C + c;
        col k = {d, dy, x, mean[c], invstd[c] * gamma[c], beta[c], s ? s[o] : 1.f, dgap ? dgap[o] * ihw : 0.f};
        return k;
    }
};
struct g_bwd_sums {
    float *sdy, *sdyx, *dgamma, *dbeta;
    const float *invstd;
    __device__ void operator()(int b, int c, const double *s) const {
        sdy[c] = (float)s[0];
        sdyx[c] = (float)s[1];
        if (dgamma) dgamma[c] += (float)(s[1] * (double)invstd[c]);
        if (dbeta) dbeta[c] += (float)s[0];
    }
};

/* ---- bn_act_bwd_dx: dx = A d + B xc + Cc, A = gamma invstd,
 * B = -A invstd^2 sdyx / Mt, Cc = -A sdy / Mt (double, rounded once);
 * d read (RECOMP 0) or recomputed from dy (RECOMP 1) ---- */
template <int A, int RECOMP>
struct e_dx {
    float *dx;
    const float *d, *dy, *x, *mean, *invstd, *gamma, *beta, *s, *dgap, *sdy, *sdyx;
    int C;
    double inv_mt;
    float ihw;
    template <int W> struct col { cu_fv<W> m, a, b, cc, sc, bt; int c; };
    template <int W>
    __device__ col<W> prep(int c) const {
        col<W> k;
        k.c = c;
        k.m = cu_ldpv<W>(mean, c);
        const cu_fv<W> is = cu_ldpv<W>(invstd, c), g = cu_ldpv<W>(gamma, c);
        const cu_fv<W> s0 = cu_ldpv<W>(sdy, c), s1 = cu_ldpv<W>(sdyx, c);
#pragma unroll
        for (int l = 0; l < W; l++) {
            const double dis = is.v[l], ga = (double)g.v[l] * dis;
            k.a.v[l] = (float)ga;
            k.b.v[l] = (float)(-ga * dis * dis * (double)s1.v[l] * inv_mt);
            k.cc.v[l] = (float)(-ga * (double)s0.v[l] * inv_mt);
            k.sc.v[l] = is.v[l] * g.v[l];
        }
        k.bt = RECOMP ? cu_ldpv<W>(beta, c) : cu_fill<W>(0.f);
        return k;
    }
    template <int W>
    __device__ __forceinline__ void run(const col<W> &k, int64_t e, int n) const {
        const cu_fv<W> xv = cu_ldv<W>(x, e);
        cu_fv<W> dd;
        if (RECOMP) {
            dd = cu_ldv<W>(dy, e);
            const int64_t o = (int64_t)n * C + k.c;
            if (s) {
                const cu_fv<W> sv = cu_ldpv<W>(s, o);
#pragma unroll
                for (int l = 0; l < W; l++) dd.v[l] *= sv.v[l];
            }
            if (dgap) {
                const cu_fv<W> gv = cu_ldpv<W>(dgap, o);
#pragma unroll
                for (int l = 0; l < W; l++) dd.v[l] += gv.v[l] * ihw;
            }
#pragma unroll
            for (int l = 0; l < W; l++)
                dd.v[l] = fz_dact<A>((xv.v[l] - k.m.v[l]) * k.sc.v[l] + k.bt.v[l], dd.v[l]);
        } else {
            dd = cu_ldv<W>(d, e);
        }
        cu_fv<W> o;
#pragma unroll
        for (int l = 0; l < W; l++) o.v[l] = k.a.v[l] * dd.v[l] + k.b.v[l] * (xv.v[l] - k.m.v[l]) + k.cc.v[l];
        cu_stv<W>(dx, e, o);
    }
};

/* ---- bn_act_dot: out[n][c] = sum dy * act(z) ---- */
template <int A>
struct r_dot {
    const float *dy, *x, *mean, *invstd, *gamma, *beta;
    struct col {
        const float *dy, *x;
        float m, sc, bt;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const {
            v[0] = cu_ld(dy, i) * fz_act<A>((cu_ld(x, i) - m) * sc + bt);
        }
    };
    __device__ col prep(int b, int c) const {
        col k = {dy, x, mean[c], invstd[c] * gamma[c], beta[c]};
        return k;
    }
};
struct g_store_nc {                 /* out[b][c] = sum */
    float *out;
    int C;
    __device__ void operator()(int b, int c, const double *s) const { out[(int64_t)b * C + c] = (float)s[0]; }
};

/* ---- bn_act_se_sums: dy a, dy a', a', dy a' xc, a' xc per (n, c) ---- */
template <int A>
struct r_se {
    const float *dy, *x, *mean, *invstd, *gamma, *beta;
    struct col {
        const float *dy, *x;
        float m, sc, bt;
        __device__ __forceinline__ void operator()(int64_t i, float *v) const {
            const float xc = cu_ld(x, i) - m, g = cu_ld(dy, i);
            float a, ap;
            fz_both<A>(xc * sc + bt, a, ap);
            const float gap = g * ap;
            v[0] = g * a;
            v[1] = gap;
            v[2] = ap;
            v[3] = gap * xc;
            v[4] = ap * xc;
        }
    };
    __device__ col prep(int b, int c) const {
        col k = {dy, x, mean[c], invstd[c] * gamma[c], beta[c]};
        return k;
    }
};
struct g_se {                       /* ds (nullable) and t[0..3] */
    float *ds, *t;
    int C;
    int64_t NC;
    __device__ void operator()(int b, int c, const double *s) const {
        const int64_t o = (int64_t)b * C + c;
        if (ds) ds[o] = (float)s[0];
#pragma unroll
        for (int k = 0; k < 4; k++) t[k * NC + o] = (float)s[k + 1];
    }
};

}  // namespace

/* One instance of CALL per activation (A_ a constant inside). */
#define FZ_DISPATCH(op, act, CALL)                                                                \
    switch (act) {                                                                                \
    case DCL_ACT_NONE: { constexpr int A_ = DCL_ACT_NONE; return CALL; }                          \
    case DCL_ACT_RELU: { constexpr int A_ = DCL_ACT_RELU; return CALL; }                          \
    case DCL_ACT_SILU: { constexpr int A_ = DCL_ACT_SILU; return CALL; }                          \
    case DCL_ACT_SIGMOID: { constexpr int A_ = DCL_ACT_SIGMOID; return CALL; }                    \
    default: return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda %s: unknown activation %d", op, (int)(act)); \
    }

static dcl_status fz_check(const char *op, int N, int HW, int C, dcl_act act) {
    if (N <= 0 || HW <= 0 || C <= 0)
        return dcl_fail(DCL_ERR_ARG, "cuda %s: bad sizes (N=%d HW=%d C=%d)", op, N, HW, C);
    if (act < DCL_ACT_NONE || act > DCL_ACT_SIGMOID)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda %s: unknown activation %d", op, (int)act);
    return DCL_OK;
}

/* ---- entries ---- */

static dcl_status cu_bn_stats(dcl_backend *be, int64_t M, int C, float *mean, float *var, float *invstd,
                              const float *x, float eps) {
    const char *op = "bn_stats";
    CU_ENTER(be, op);
    if (M <= 0 || C <= 0) return dcl_fail(DCL_ERR_ARG, "cuda %s: bad sizes (M=%lld C=%d)", op, (long long)M, C);
    CU_NEED(op, mean); CU_NEED(op, var); CU_NEED(op, invstd); CU_NEED(op, x);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "cuda %s: eps must be non-negative (got %g)", op, (double)eps);
    cu_g_bnstats g = {mean, var, invstd, (double)eps};
    return cu_colmoments(I, op, M, C, x, g);
}

template <int A>
static dcl_status fwd_run(cu_impl *I, const char *op, int N, int HW, int C, float *y, float *gmean, const float *x,
                          const float *mean, const float *invstd, const float *gamma, const float *beta,
                          const float *s) {
    if (gmean) {
        r_fwd<A> f = {y, x, mean, invstd, gamma, beta, s, C};
        g_gmean g = {gmean, C, (double)HW};
        return cu_colreduce_cols<1>(I, op, N, HW, C, f, g, 0);
    }
    e_fwd<A> f = {y, x, mean, invstd, gamma, beta, s, C};
    const int vec = cu_al16(y) && cu_al16(x) && cu_al16(mean) && cu_al16(invstd) && cu_al16(gamma) &&
                    cu_al16(beta) && cu_al16(s);
    return cu_chan_run(I, op, "k_bn_act_fwd", (int64_t)N * HW, C, HW, vec, f);
}

static dcl_status cu_bn_act_fwd(dcl_backend *be, int N, int HW, int C, dcl_act act, float *y, float *gmean,
                                const float *x, const float *mean, const float *invstd, const float *gamma,
                                const float *beta, const float *s) {
    const char *op = "bn_act_fwd";
    CU_ENTER(be, op);
    DCL_TRY(fz_check(op, N, HW, C, act));
    const int norm = mean || invstd || gamma || beta;
    if (!y && !gmean) return dcl_fail(DCL_ERR_ARG, "cuda %s: y and gmean are both NULL", op);
    CU_NEED(op, x);
    if (norm && (!mean || !invstd || !gamma || !beta))
        return dcl_fail(DCL_ERR_ARG, "cuda %s: mean, invstd, gamma and beta must be all given or all NULL", op);
    FZ_DISPATCH(op, act, fwd_run<A_>(I, op, N, HW, C, y, gmean, x, mean, invstd, gamma, beta, s));
}

template <int A>
static dcl_status bwd_reduce_run(cu_impl *I, const char *op, int N, int HW, int C, float *sdy, float *sdyx,
                                 float *dgamma, float *dbeta, float *d, const float *dy, const float *x,
                                 const float *mean, const float *invstd, const float *gamma, const float *beta,
                                 const float *s, const float *dgap) {
    r_bwd<A> f = {d, dy, x, mean, invstd, gamma, beta, s, dgap, C, 1.0f / (float)HW};
    g_bwd_sums g = {sdy, sdyx, dgamma, dbeta, invstd};
    return cu_colreduce_cols<2>(I, op, N, HW, C, f, g, 1);
}

static dcl_status cu_bn_act_bwd_reduce(dcl_backend *be, int N, int HW, int C, dcl_act act, float *sdy,
                                       float *sdyx, float *dgamma, float *dbeta, float *d, const float *dy,
                                       const float *x, const float *mean, const float *invstd,
                                       const float *gamma, const float *beta, const float *s,
                                       const float *dgap) {
    const char *op = "bn_act_bwd_reduce";
    CU_ENTER(be, op);
    DCL_TRY(fz_check(op, N, HW, C, act));
    CU_NEED(op, sdy); CU_NEED(op, sdyx); CU_NEED(op, dy); CU_NEED(op, x);
    CU_NEED(op, mean); CU_NEED(op, invstd); CU_NEED(op, gamma); CU_NEED(op, beta);
    FZ_DISPATCH(op, act, bwd_reduce_run<A_>(I, op, N, HW, C, sdy, sdyx, dgamma, dbeta, d, dy, x, mean, invstd,
                                            gamma, beta, s, dgap));
}

template <int A, int RECOMP>
static dcl_status dx_run(cu_impl *I, const char *op, int N, int HW, int C, float *dx, const float *d,
                         const float *dy, const float *x, const float *mean, const float *invstd,
                         const float *gamma, const float *beta, const float *s, const float *dgap,
                         const float *sdy, const float *sdyx, int64_t Mt) {
    e_dx<A, RECOMP> f = {dx, d, dy, x, mean, invstd, gamma, beta, s, dgap, sdy, sdyx, C, 1.0 / (double)Mt,
                         1.0f / (float)HW};
    const int vec = cu_al16(dx) && cu_al16(d) && cu_al16(dy) && cu_al16(x) && cu_al16(mean) &&
                    cu_al16(invstd) && cu_al16(gamma) && cu_al16(beta) && cu_al16(s) && cu_al16(dgap) &&
                    cu_al16(sdy) && cu_al16(sdyx);
    return cu_chan_run(I, op, "k_bn_act_bwd_dx", (int64_t)N * HW, C, HW, vec, f);
}

static dcl_status cu_bn_act_bwd_dx(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx, const float *d,
                                   const float *dy, const float *x, const float *mean, const float *invstd,
                                   const float *gamma, const float *beta, const float *s, const float *dgap,
                                   const float *sdy, const float *sdyx, int64_t Mt) {
    const char *op = "bn_act_bwd_dx";
    CU_ENTER(be, op);
    DCL_TRY(fz_check(op, N, HW, C, act));
    CU_NEED(op, dx); CU_NEED(op, x); CU_NEED(op, mean); CU_NEED(op, invstd); CU_NEED(op, gamma);
    CU_NEED(op, sdy); CU_NEED(op, sdyx);
    if (Mt <= 0) return dcl_fail(DCL_ERR_ARG, "cuda %s: Mt must be positive (got %lld)", op, (long long)Mt);
    if (d) return dx_run<DCL_ACT_NONE, 0>(I, op, N, HW, C, dx, d, NULL, x, mean, invstd, gamma, NULL, NULL, NULL,
                                          sdy, sdyx, Mt);
    if (!dy || !beta) return dcl_fail(DCL_ERR_ARG, "cuda %s: without d, dy and beta are needed", op);
    FZ_DISPATCH(op, act, (dx_run<A_, 1>(I, op, N, HW, C, dx, NULL, dy, x, mean, invstd, gamma, beta, s, dgap,
                                        sdy, sdyx, Mt)));
}

template <int A>
static dcl_status dot_run(cu_impl *I, const char *op, int N, int HW, int C, float *out, const float *dy,
                          const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta) {
    r_dot<A> f = {dy, x, mean, invstd, gamma, beta};
    g_store_nc g = {out, C};
    return cu_colreduce_cols<1>(I, op, N, HW, C, f, g, 0);
}

static dcl_status cu_bn_act_dot(dcl_backend *be, int N, int HW, int C, dcl_act act, float *out, const float *dy,
                                const float *x, const float *mean, const float *invstd, const float *gamma,
                                const float *beta) {
    const char *op = "bn_act_dot";
    CU_ENTER(be, op);
    DCL_TRY(fz_check(op, N, HW, C, act));
    CU_NEED(op, out); CU_NEED(op, dy); CU_NEED(op, x);
    CU_NEED(op, mean); CU_NEED(op, invstd); CU_NEED(op, gamma); CU_NEED(op, beta);
    FZ_DISPATCH(op, act, dot_run<A_>(I, op, N, HW, C, out, dy, x, mean, invstd, gamma, beta));
}

template <int A>
static dcl_status se_run(cu_impl *I, const char *op, int N, int HW, int C, float *ds, float *t, const float *dy,
                         const float *x, const float *mean, const float *invstd, const float *gamma,
                         const float *beta) {
    r_se<A> f = {dy, x, mean, invstd, gamma, beta};
    g_se g = {ds, t, C, (int64_t)N * C};
    return cu_colreduce_cols<5>(I, op, N, HW, C, f, g, 0);
}

static dcl_status cu_bn_act_se_sums(dcl_backend *be, int N, int HW, int C, dcl_act act, float *ds, float *t,
                                    const float *dy, const float *x, const float *mean, const float *invstd,
                                    const float *gamma, const float *beta) {
    const char *op = "bn_act_se_sums";
    CU_ENTER(be, op);
    DCL_TRY(fz_check(op, N, HW, C, act));
    CU_NEED(op, t); CU_NEED(op, dy); CU_NEED(op, x);
    CU_NEED(op, mean); CU_NEED(op, invstd); CU_NEED(op, gamma); CU_NEED(op, beta);
    FZ_DISPATCH(op, act, se_run<A_>(I, op, N, HW, C, ds, t, dy, x, mean, invstd, gamma, beta));
}

void cu_install_fused(dcl_backend *be) {
    be->bn_stats = cu_bn_stats;
    be->bn_act_fwd = cu_bn_act_fwd;
    be->bn_act_bwd_reduce = cu_bn_act_bwd_reduce;
    be->bn_act_bwd_dx = cu_bn_act_bwd_dx;
    be->bn_act_dot = cu_bn_act_dot;
    be->bn_act_se_sums = cu_bn_act_se_sums;
}
