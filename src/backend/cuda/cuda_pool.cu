/* Max / average pooling, NHWC, PyTorch semantics (own kernels).
 *
 * Window of output (oh,ow): rows oh*sh-pt .. +kh-1, columns ow*sw-pl ..
 * +kw-1, clipped to the input; padded positions never win a max.  Average
 * divisor: with count_include_pad the window clipped to the padded extent
 * [-pt, hi+pb) x [-pl, wi+pr) (ceil_mode windows may stick out further),
 * else the number of input positions in the window.
 *
 * Backward is a gather (one thread per input element, no atomics, so it is
 * deterministic): it visits every output window covering the element; for
 * max it recomputes that window's first maximum in scan order (NaN counts
 * as a maximum, like PyTorch) and takes dy when it is this element.
 */
#include "backend/cuda/cuda_internal.cuh"

struct pool_geom {
    int n, c, hi, wi, ho, wo, kh, kw, sh, sw, pt, pb, pl, pr, include_pad;
};

__device__ __forceinline__ void pool_window(const pool_geom &g, int oh, int ow, int &h0, int &h1, int &w0,
                                            int &w1, int &div) {
    int hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
    int he = hs + g.kh, we = ws + g.kw;
    if (he > g.hi + g.pb) he = g.hi + g.pb;
    if (we > g.wi + g.pr) we = g.wi + g.pr;
    const int padded = (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > g.hi) he = g.hi;
    if (we > g.wi) we = g.wi;
    h0 = hs; h1 = he; w0 = ws; w1 = we;
    div = g.include_pad ? padded : (he > hs ? he - hs : 0) * (we > ws ? we - ws : 0);
}

template <typename T, int MAX>
__global__ void k_pool_fwd(int64_t total, pool_geom g, T *y, const T *x) {
    CU_FOR(i, total) {
        const int c = (int)(i % g.c);
        int64_t t = i / g.c;
        const int ow = (int)(t % g.wo); t /= g.wo;
        const int oh = (int)(t % g.ho);
        const int64_t n = t / g.ho;
        int h0, h1, w0, w1, div;
        pool_window(g, oh, ow, h0, h1, w0, w1, div);
        const T *xp = x + n * g.hi * g.wi * g.c + c;
        if (MAX) {
            float m = -INFINITY;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++) {
                    const float v = cu_ld(xp, ((int64_t)h * g.wi + w) * g.c);
                    if (v > m || isnan(v)) m = v;
                }
            cu_st(y, i, m);
        } else {
            float s = 0.f;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++) s += cu_ld(xp, ((int64_t)h * g.wi + w) * g.c);
            cu_st(y, i, div > 0 ? s / (float)div : 0.f);
        }
    }
}

template <typename T, int MAX>
__global__ void k_pool_bwd(int64_t total, pool_geom g, T *dx, const T *dy, const T *x) {
    CU_FOR(i, total) {
        const int c = (int)(i % g.c);
        int64_t t = i / g.c;
        const int w = (int)(t % g.wi); t /= g.wi;
        const int h = (int)(t % g.hi);
        const int64_t n = t / g.hi;
        /* outputs whose window rows oh*sh-pt .. oh*sh-pt+kh-1 contain h */
        const int ah = h + g.pt - g.kh + 1, aw = w + g.pl - g.kw + 1;
        int oh0 = ah <= 0 ? 0 : (ah + g.sh - 1) / g.sh;
        int oh1 = (h + g.pt) / g.sh;
        int ow0 = aw <= 0 ? 0 : (aw + g.sw - 1) / g.sw;
        int ow1 = (w + g.pl) / g.sw;
        if (oh1 > g.ho - 1) oh1 = g.ho - 1;
        if (ow1 > g.wo - 1) ow1 = g.wo - 1;
        const T *xp = x ? x + n * g.hi * g.wi * g.c + c : NULL;
        const T *dyp = dy + n * g.ho * g.wo * g.c + c;
        float acc = 0.f;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                int h0, h1, w0, w1, div;
                pool_window(g, oh, ow, h0, h1, w0, w1, div);
                if (h < h0 || h >= h1 || w < w0 || w >= w1) continue;
                const float gy = cu_ld(dyp, ((int64_t)oh * g.wo + ow) * g.c);
                if (MAX) {
                    float m = -INFINITY;
                    int ah_ = -1, aw_ = -1;
                    for (int hh = h0; hh < h1; hh++)
                        for (int ww = w0; ww < w1; ww++) {
                            const float v = cu_ld(xp, ((int64_t)hh * g.wi + ww) * g.c);
                            if (ah_ < 0 || v > m || isnan(v)) { m = v; ah_ = hh; aw_ = ww; }
                        }
                    if (ah_ == h && aw_ == w) acc += gy;
                } else if (div > 0) {
                    acc += gy / (float)div;
                }
            }
        cu_st(dx, i, acc);
    }
}

static dcl_status pool_check(const char *op, const dcl_pool_desc *d, pool_geom *g) {
    if (!d) return dcl_fail(DCL_ERR_ARG, "cuda %s: descriptor is NULL", op);
    if (d->kind != DCL_POOL_MAX && d->kind != DCL_POOL_AVG)
        return dcl_fail(DCL_ERR_ARG, "cuda %s: unknown pooling kind %d", op, (int)d->kind);
    if (d->n <= 0 || d->c <= 0 || d->hi <= 0 || d->wi <= 0 || d->ho <= 0 || d->wo <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: sizes must be positive (input n=%d c=%d h=%d w=%d, output %dx%d)",
                        op, d->n, d->c, d->hi, d->wi, d->ho, d->wo);
    if (d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: window %dx%d, stride %dx%d, padding %d/%d/%d/%d invalid", op,
                        d->kh, d->kw, d->sh, d->sw, d->pt, d->pb, d->pl, d->pr);
    dcl_pool_desc e = *d;
    if (dcl_pool_desc_finish(&e) != DCL_OK || e.ho != d->ho || e.wo != d->wo)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: output %dx%d does not match input %dx%d with window %dx%d, "
                        "stride %dx%d, padding %d/%d/%d/%d, ceil_mode %d (call dcl_pool_desc_finish)", op,
                        d->ho, d->wo, d->hi, d->wi, d->kh, d->kw, d->sh, d->sw, d->pt, d->pb, d->pl, d->pr,
                        d->ceil_mode);
    pool_geom t = {d->n, d->c, d->hi, d->wi, d->ho, d->wo, d->kh, d->kw, d->sh, d->sw,
                   d->pt, d->pb, d->pl, d->pr, d->count_include_pad ? 1 : 0};
    *g = t;
    return DCL_OK;
}

static dcl_status cu_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) {
    const char *op = "pool_fwd";
    CU_ENTER(be, op);
    pool_geom g;
    DCL_TRY(pool_check(op, d, &g));
    CU_NEED(op, y); CU_NEED(op, x);
    const int64_t total = (int64_t)g.n * g.ho * g.wo * g.c;
    if (d->kind == DCL_POOL_MAX) k_pool_fwd<float, 1><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, g, y, x);
    else k_pool_fwd<float, 0><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, g, y, x);
    CU_LAUNCHED(op, "k_pool_fwd");
    return DCL_OK;
}

static dcl_status cu_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy,
                              const float *x, const float *y) {
    const char *op = "pool_bwd";
    (void)y;
    CU_ENTER(be, op);
    pool_geom g;
    DCL_TRY(pool_check(op, d, &g));
    CU_NEED(op, dx); CU_NEED(op, dy);
    if (d->kind == DCL_POOL_MAX && !x)
        return dcl_fail(DCL_ERR_ARG, "cuda %s: max pooling needs its input x (NULL)", op);
    if (dx == dy || (x && dx == x))
        return dcl_fail(DCL_ERR_ARG, "cuda %s: dx must not alias dy or x", op);
    const int64_t total = (int64_t)g.n * g.hi * g.wi * g.c;
    if (d->kind == DCL_POOL_MAX) k_pool_bwd<float, 1><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, g, dx, dy, x);
    else k_pool_bwd<float, 0><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, g, dx, dy, x);
    CU_LAUNCHED(op, "k_pool_bwd");
    return DCL_OK;
}

void cu_install_pool(dcl_backend *be) {
    be->pool_fwd = cu_pool_fwd;
    be->pool_bwd = cu_pool_bwd;
}
