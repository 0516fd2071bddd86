/* bf16 activation storage on any backend (dcl_backend_bf16).
 *
 * The adapter keeps activations and their gradients ([A] arguments, listed
 * in backend.h) as bf16 and computes in fp32 on the backend it wraps: each
 * entry widens its [A] inputs into fp32 temporaries in the inner backend's
 * memory (exact), runs the inner entry on them with the [P] arguments
 * unchanged, and rounds its [A] outputs back to bf16 (round to nearest
 * even).  Same arithmetic as the inner backend on the widened values, so the
 * only differences from fp32 storage are the roundings of stored values.
 *
 * Temporaries: a call takes a frame (up to BF_SLOTS fp32 buffers in the
 * inner backend's memory) from a free list, grows the buffers it needs and
 * returns the frame at the end, so buffers are reused across calls and
 * concurrent calls from several threads each work in their own frame (on a
 * device backend the conversions and the inner entry are queued in order
 * on its stream, so a frame given back may be taken again at once).  A
 * call's buffers are handed out largest argument first, so the first slots
 * hold the activation-sized buffers and the last ones the small per-sample
 * vectors.
 *
 * Aliasing: arguments given the same pointer share one temporary (an output
 * that is also an input receives the widened input), so the inner backend
 * sees exactly the aliasing the caller made (add's y == a, bn_act_bwd_dx's
 * d == dx, conv_fwd_add's y read and written).
 */
#include "backend/backend.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BF_SLOTS 8      /* temporaries per frame; an entry has at most 6 [A] arguments */
#define BF_ARGS 8

typedef struct bf_frame {
    struct bf_frame *next;
    float *buf[BF_SLOTS];
    size_t cap[BF_SLOTS];   /* floats */
} bf_frame;

typedef struct bf_impl {
    char name[64];
    pthread_mutex_t lock;
    bf_frame *free_frames;  /* frames not in use, chained through next */
    bf_frame **frames;      /* every frame made, for destroy */
    int nframes, frames_cap;
} bf_impl;

static bf_impl *bf_of(dcl_backend *be) { return (bf_impl *)be->impl; }

/* ------------------------------------------------------------ conversion */

/* Round to nearest even; NaN stays NaN (quiet bit set), sign kept: the same
 * result as dcl_f32_to_bf16, written without branches for vector loops. */
static inline uint16_t bf_round(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    uint32_t q = (x >> 16) | 0x40u;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
}
static inline float bf_widen(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void dcl_bf16_pack(int64_t n, uint16_t *restrict dst, const float *restrict src) {
    #pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = bf_round(src[i]);
}
void dcl_bf16_unpack(int64_t n, float *restrict dst, const uint16_t *restrict src) {
    #pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = bf_widen(src[i]);
}

static dcl_status bf_cvt_f32_bf16(dcl_backend *be, int64_t n, uint16_t *dst, const float *src) {
    dcl_backend *in = be->inner;
    if (n < 0) return dcl_fail(DCL_ERR_ARG, "%s cvt_f32_bf16: negative element count %lld", be->name, (long long)n);
    if (n == 0) return DCL_OK;
    if (!dst || !src) return dcl_fail(DCL_ERR_ARG, "%s cvt_f32_bf16: NULL buffer", be->name);
    if (in->cvt_f32_bf16) return in->cvt_f32_bf16(in, n, dst, src);
    dcl_bf16_pack(n, dst, src);
    return DCL_OK;
}
static dcl_status bf_cvt_bf16_f32(dcl_backend *be, int64_t n, float *dst, const uint16_t *src) {
    dcl_backend *in = be->inner;
    if (n < 0) return dcl_fail(DCL_ERR_ARG, "%s cvt_bf16_f32: negative element count %lld", be->name, (long long)n);
    if (n == 0) return DCL_OK;
    if (!dst || !src) return dcl_fail(DCL_ERR_ARG, "%s cvt_bf16_f32: NULL buffer", be->name);
    if (in->cvt_bf16_f32) return in->cvt_bf16_f32(in, n, dst, src);
    dcl_bf16_unpack(n, dst, src);
    return DCL_OK;
}

/* ---------------------------------------------------------------- frames */

static void *inner_alloc(dcl_backend *in, size_t bytes) {
    return in->mem_alloc ? in->mem_alloc(in, bytes) : dcl_alloc(bytes);
}
static void inner_free(dcl_backend *in, void *p) {
    if (!p) return;
    if (in->mem_free) in->mem_free(in, p);
    else dcl_free(p);
}

static bf_frame *frame_get(dcl_backend *be) {
    bf_impl *st = bf_of(be);
    pthread_mutex_lock(&st->lock);
    bf_frame *f = st->free_frames;
    if (f) {
        st->free_frames = f->next;
    } else {
        if (st->nframes == st->frames_cap) {
            int cap = st->frames_cap * 2 + 4;
            bf_frame **nf = realloc(st->frames, sizeof *nf * cap);
            if (nf) { st->frames = nf; st->frames_cap = cap; }
        }
        if (st->nframes < st->frames_cap && (f = calloc(1, sizeof *f))) st->frames[st->nframes++] = f;
    }
    pthread_mutex_unlock(&st->lock);
    if (!f) dcl_fail(DCL_ERR_NOMEM, "%s: out of memory for a frame of temporaries", be->name);
    return f;
}
static void frame_put(dcl_backend *be, bf_frame *f) {
    bf_impl *st = bf_of(be);
    pthread_mutex_lock(&st->lock);
    f->next = st->free_frames;
    st->free_frames = f;
    pthread_mutex_unlock(&st->lock);
}
/* Slot k of f with room for n floats (contents not kept when it grows). */
static float *frame_slot(dcl_backend *be, bf_frame *f, int k, int64_t n) {
    size_t need = (size_t)(n > 0 ? n : 1);
    if (f->cap[k] >= need) return f->buf[k];
    dcl_backend *in = be->inner;
    inner_free(in, f->buf[k]);
    f->buf[k] = NULL;
    f->cap[k] = 0;
    need = (need + 15) & ~(size_t)15;   /* whole 64-byte lines */
    if (need > SIZE_MAX / sizeof(float)) {
        dcl_fail(DCL_ERR_NOMEM, "%s: temporary of %zu floats is too large", be->name, need);
        return NULL;
    }
    float *p = inner_alloc(in, need * sizeof(float));
    if (!p) {
        dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate a %zu-byte fp32 temporary on %s", be->name,
                 need * sizeof(float), in->name ? in->name : "the inner backend");
        return NULL;
    }
    f->buf[k] = p;
    f->cap[k] = need;
    return p;
}

/* ------------------------------------------------------------- one call */

enum { BF_IN = 1, BF_OUT = 2 };

typedef struct bf_call {
    dcl_backend *be;
    bf_frame *fr;
    const char *op;
    int na, ng;
    dcl_status err;             /* a bad argument found while collecting */
    struct { const void *p; int g; } a[BF_ARGS];
    struct { void *p; int64_t n_in, n_out; int flags; float *t; } g[BF_ARGS];
} bf_call;

static void call_init(bf_call *c, dcl_backend *be, const char *op) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->op = op;
}

/* Registers an [A] argument of n elements; returns its index for T(). */
static int arg(bf_call *c, const void *p, int64_t n, int flags) {
    int i = c->na++;
    c->a[i].p = p;
    c->a[i].g = -1;
    if (!p) return i;
    if (n < 0) {
        if (!c->err) c->err = dcl_fail(DCL_ERR_SHAPE, "%s %s: negative size", c->be->name, c->op);
        return i;
    }
    int g = 0;
    while (g < c->ng && c->g[g].p != p) g++;
    if (g == c->ng) {
        c->ng++;
        c->g[g].p = (void *)p;
        c->g[g].n_in = c->g[g].n_out = 0;
        c->g[g].flags = 0;
    }
    c->g[g].flags |= flags;
    if ((flags & BF_IN) && n > c->g[g].n_in) c->g[g].n_in = n;
    if ((flags & BF_OUT) && n > c->g[g].n_out) c->g[g].n_out = n;
    c->a[i].g = g;
    return i;
}
static float *T(const bf_call *c, int i) { return c->a[i].g < 0 ? NULL : c->g[c->a[i].g].t; }

/* Temporaries for every argument, inputs widened. */
static dcl_status call_begin(bf_call *c) {
    if (c->err) return c->err;
    if (c->ng == 0) return DCL_OK;
    c->fr = frame_get(c->be);
    if (!c->fr) return DCL_ERR_NOMEM;
    int order[BF_ARGS];
    for (int g = 0; g < c->ng; g++) {   /* largest first */
        int64_t n = c->g[g].n_in > c->g[g].n_out ? c->g[g].n_in : c->g[g].n_out;
        int k = g;
        while (k > 0) {
            const int o = order[k - 1];
            int64_t m = c->g[o].n_in > c->g[o].n_out ? c->g[o].n_in : c->g[o].n_out;
            if (m >= n) break;
            order[k] = o;
            k--;
        }
        order[k] = g;
    }
    for (int k = 0; k < c->ng; k++) {
        const int g = order[k];
        int64_t n = c->g[g].n_in > c->g[g].n_out ? c->g[g].n_in : c->g[g].n_out;
        c->g[g].t = frame_slot(c->be, c->fr, k, n);
        if (!c->g[g].t) return DCL_ERR_NOMEM;
    }
    for (int g = 0; g < c->ng; g++)
        if (c->g[g].flags & BF_IN)
            DCL_TRY(bf_cvt_bf16_f32(c->be, c->g[g].n_in, c->g[g].t, (const uint16_t *)c->g[g].p));
    return DCL_OK;
}

/* Rounds the outputs when st is DCL_OK, gives the frame back, returns st
 * (or the rounding's error). */
static dcl_status call_end(bf_call *c, dcl_status st) {
    if (st == DCL_OK)
        for (int g = 0; g < c->ng && st == DCL_OK; g++)
            if (c->g[g].flags & BF_OUT)
                st = bf_cvt_f32_bf16(c->be, c->g[g].n_out, (uint16_t *)c->g[g].p, c->g[g].t);
    if (c->fr) frame_put(c->be, c->fr);
    c->fr = NULL;
    return st;
}

/* Begin, run EXPR (the inner call) when that worked, end. */
#define BF_RUN(c, EXPR) do { dcl_status s_ = call_begin(c); if (s_ == DCL_OK) s_ = (EXPR); \
                             return call_end(c, s_); } while (0)

static int64_t conv_x_n(const dcl_conv_desc *d) { return (int64_t)d->n * d->hi * d->wi * d->ci; }
static int64_t conv_y_n(const dcl_conv_desc *d) { return (int64_t)d->n * d->ho * d->wo * d->co; }
static int64_t pool_x_n(const dcl_pool_desc *d) { return (int64_t)d->n * d->hi * d->wi * d->c; }
static int64_t pool_y_n(const dcl_pool_desc *d) { return (int64_t)d->n * d->ho * d->wo * d->c; }

#define NEED_DESC(d, op) do { if (!(d)) return dcl_fail(DCL_ERR_ARG, "%s %s: NULL descriptor", be->name, op); } while (0)

/* ---------------------------------------------------------- forwarding */

static int bf_supports(dcl_backend *be, dcl_op op, const void *desc) {
    return be->inner->supports(be->inner, op, desc);
}
static void *bf_mem_alloc(dcl_backend *be, size_t bytes) { return be->inner->mem_alloc(be->inner, bytes); }
static void bf_mem_free(dcl_backend *be, void *p) { be->inner->mem_free(be->inner, p); }
static dcl_status bf_to_device(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    return be->inner->to_device(be->inner, dst, src, bytes);
}
static dcl_status bf_to_host(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    return be->inner->to_host(be->inner, dst, src, bytes);
}
static dcl_status bf_mem_zero(dcl_backend *be, void *p, size_t bytes) { return be->inner->mem_zero(be->inner, p, bytes); }
static dcl_status bf_sync(dcl_backend *be) { return be->inner->sync(be->inner); }
static dcl_status bf_mem_copy(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    dcl_backend *in = be->inner;
    if (in->mem_copy) return in->mem_copy(in, dst, src, bytes);
    if (bytes && dst != src) memmove(dst, src, bytes);
    return DCL_OK;
}

/* [P]-only entries: straight to the inner backend. */
static dcl_status bf_axpby(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b) {
    return be->inner->axpby(be->inner, n, y, a, x, b);
}
static dcl_status bf_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad, float lr,
                          float b1, float b2, float eps, float wd, int decoupled, float bc1, float bc2) {
    return be->inner->adam(be->inner, n, p, m, v, grad, lr, b1, b2, eps, wd, decoupled, bc1, bc2);
}
static dcl_status bf_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad, float lr,
                         float momentum, float wd, int nesterov, int first_step) {
    return be->inner->sgd(be->inner, n, p, buf, grad, lr, momentum, wd, nesterov, first_step);
}
static dcl_status bf_bn_fold(dcl_backend *be, int C, float *scale, float *shift, const float *gamma,
                             const float *beta, const float *rmean, const float *rvar, const float *cbias,
                             float eps) {
    return be->inner->bn_fold(be->inner, C, scale, shift, gamma, beta, rmean, rvar, cbias, eps);
}

/* ------------------------------------------------------------- wrappers */

static dcl_status bf_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                              const float *w, const float *b) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "conv_fwd");
    bf_call c;
    call_init(&c, be, "conv_fwd");
    int iy = arg(&c, y, conv_y_n(d), BF_OUT), ix = arg(&c, x, conv_x_n(d), BF_IN);
    BF_RUN(&c, in->conv_fwd(in, d, T(&c, iy), T(&c, ix), w, b));
}
static dcl_status bf_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d, float *dx, const float *dy,
                                   const float *w) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "conv_bwd_data");
    bf_call c;
    call_init(&c, be, "conv_bwd_data");
    int idx = arg(&c, dx, conv_x_n(d), BF_OUT), idy = arg(&c, dy, conv_y_n(d), BF_IN);
    BF_RUN(&c, in->conv_bwd_data(in, d, T(&c, idx), T(&c, idy), w));
}
static dcl_status bf_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db,
                                      const float *dy, const float *x) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "conv_bwd_weights");
    bf_call c;
    call_init(&c, be, "conv_bwd_weights");
    int idy = arg(&c, dy, conv_y_n(d), BF_IN), ix = arg(&c, x, conv_x_n(d), BF_IN);
    BF_RUN(&c, in->conv_bwd_weights(in, d, dw, db, T(&c, idy), T(&c, ix)));
}
static dcl_status bf_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y,
                                  const float *x, const float *w, const float *b) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "conv_fwd_act");
    bf_call c;
    call_init(&c, be, "conv_fwd_act");
    int iy = arg(&c, y, conv_y_n(d), BF_OUT), ix = arg(&c, x, conv_x_n(d), BF_IN);
    BF_RUN(&c, in->conv_fwd_act(in, d, act, T(&c, iy), T(&c, ix), w, b));
}
static dcl_status bf_conv_fwd_add(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                                  const float *w, const float *b) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "conv_fwd_add");
    bf_call c;
    call_init(&c, be, "conv_fwd_add");
    int iy = arg(&c, y, conv_y_n(d), BF_IN | BF_OUT), ix = arg(&c, x, conv_x_n(d), BF_IN);
    BF_RUN(&c, in->conv_fwd_add(in, d, T(&c, iy), T(&c, ix), w, b));
}

static dcl_status bf_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                                  float *invstd, const float *x, const float *gamma, const float *beta,
                                  float eps) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_fwd_train");
    int64_t n = M * C;
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->bn_fwd_train(in, M, C, T(&c, iy), mean, var, invstd, T(&c, ix), gamma, beta, eps));
}
static dcl_status bf_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                  const float *gamma, const float *beta, const float *rmean,
                                  const float *rvar, float eps) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_fwd_infer");
    int64_t n = M * C;
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->bn_fwd_infer(in, M, C, T(&c, iy), T(&c, ix), gamma, beta, rmean, rvar, eps));
}
static dcl_status bf_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *mean, const float *invstd,
                            const float *gamma) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_bwd");
    int64_t n = M * C;
    int idx = arg(&c, dx, n, BF_OUT), idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->bn_bwd(in, M, C, T(&c, idx), dgamma, dbeta, T(&c, idy), T(&c, ix), mean, invstd, gamma));
}
static dcl_status bf_bn_stats(dcl_backend *be, int64_t M, int C, float *mean, float *var, float *invstd,
                              const float *x, float eps) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_stats");
    int ix = arg(&c, x, M * C, BF_IN);
    BF_RUN(&c, in->bn_stats(in, M, C, mean, var, invstd, T(&c, ix), eps));
}

static dcl_status bf_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "act_fwd");
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->act_fwd(in, a, n, T(&c, iy), T(&c, ix)));
}
static dcl_status bf_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy,
                             const float *x, const float *y) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "act_bwd");
    /* Only the one of x and y that the backends read is widened (the other
     * is passed as NULL, which every backend accepts): none reads neither,
     * relu x (else y), silu x, sigmoid y (else x). */
    switch (a) {
    case DCL_ACT_NONE: x = NULL; y = NULL; break;
    case DCL_ACT_RELU: if (x) y = NULL; break;
    case DCL_ACT_SILU: y = NULL; break;
    case DCL_ACT_SIGMOID: if (y) x = NULL; break;
    }
    int idx = arg(&c, dx, n, BF_OUT), idy = arg(&c, dy, n, BF_IN);
    int ix = arg(&c, x, n, BF_IN), iy = arg(&c, y, n, BF_IN);
    BF_RUN(&c, in->act_bwd(in, a, n, T(&c, idx), T(&c, idy), T(&c, ix), T(&c, iy)));
}
static dcl_status bf_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "prelu_fwd");
    int64_t n = M * C;
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->prelu_fwd(in, M, C, T(&c, iy), T(&c, ix), alpha));
}
static dcl_status bf_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha, const float *dy,
                               const float *x, const float *alpha) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "prelu_bwd");
    int64_t n = M * C;
    int idx = arg(&c, dx, n, BF_OUT), idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->prelu_bwd(in, M, C, T(&c, idx), dalpha, T(&c, idy), T(&c, ix), alpha));
}

static dcl_status bf_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "pool_fwd");
    bf_call c;
    call_init(&c, be, "pool_fwd");
    int iy = arg(&c, y, pool_y_n(d), BF_OUT), ix = arg(&c, x, pool_x_n(d), BF_IN);
    BF_RUN(&c, in->pool_fwd(in, d, T(&c, iy), T(&c, ix)));
}
static dcl_status bf_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy,
                              const float *x, const float *y) {
    dcl_backend *in = be->inner;
    NEED_DESC(d, "pool_bwd");
    bf_call c;
    call_init(&c, be, "pool_bwd");
    int idx = arg(&c, dx, pool_x_n(d), BF_OUT), idy = arg(&c, dy, pool_y_n(d), BF_IN);
    int ix = arg(&c, x, pool_x_n(d), BF_IN), iy = arg(&c, y, pool_y_n(d), BF_IN);
    BF_RUN(&c, in->pool_bwd(in, d, T(&c, idx), T(&c, idy), T(&c, ix), T(&c, iy)));
}

static dcl_status bf_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "gap_fwd");
    int iy = arg(&c, y, (int64_t)N * C, BF_OUT), ix = arg(&c, x, (int64_t)N * HW * C, BF_IN);
    BF_RUN(&c, in->gap_fwd(in, N, HW, C, T(&c, iy), T(&c, ix)));
}
static dcl_status bf_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "gap_bwd");
    int idx = arg(&c, dx, (int64_t)N * HW * C, BF_OUT), idy = arg(&c, dy, (int64_t)N * C, BF_IN);
    BF_RUN(&c, in->gap_bwd(in, N, HW, C, T(&c, idx), T(&c, idy)));
}

static dcl_status bf_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x, const float *w,
                                const float *b) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "linear_fwd");
    int iy = arg(&c, y, (int64_t)M * O, BF_OUT), ix = arg(&c, x, (int64_t)M * K, BF_IN);
    BF_RUN(&c, in->linear_fwd(in, M, K, O, T(&c, iy), T(&c, ix), w, b));
}
static dcl_status bf_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                                const float *dy, const float *x, const float *w) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "linear_bwd");
    int idx = arg(&c, dx, (int64_t)M * K, BF_OUT), idy = arg(&c, dy, (int64_t)M * O, BF_IN);
    int ix = arg(&c, x, (int64_t)M * K, BF_IN);
    BF_RUN(&c, in->linear_bwd(in, M, K, O, T(&c, idx), dw, db, T(&c, idy), T(&c, ix), w));
}

static dcl_status bf_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x,
                                   const float *s) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "mul_bcast_fwd");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN), is = arg(&c, s, nc, BF_IN);
    BF_RUN(&c, in->mul_bcast_fwd(in, N, HW, C, T(&c, iy), T(&c, ix), T(&c, is)));
}
static dcl_status bf_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds,
                                   const float *dy, const float *x, const float *s) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "mul_bcast_bwd");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int idx = arg(&c, dx, n, BF_OUT), ids = arg(&c, ds, nc, BF_OUT);
    int idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN), is = arg(&c, s, nc, BF_IN);
    BF_RUN(&c, in->mul_bcast_bwd(in, N, HW, C, T(&c, idx), T(&c, ids), T(&c, idy), T(&c, ix), T(&c, is)));
}

static dcl_status bf_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "add");
    int ia = arg(&c, a, n, BF_IN), ib = arg(&c, b, n, BF_IN), iy = arg(&c, y, n, BF_OUT);
    BF_RUN(&c, in->add(in, n, T(&c, iy), T(&c, ia), T(&c, ib)));
}
static dcl_status bf_scale_mask(dcl_backend *be, int64_t rows, int64_t cols, float *y, const float *x,
                                const float *mask, int per_row, float scale) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "scale_mask");
    int64_t n = rows * cols;
    int iy = arg(&c, y, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->scale_mask(in, rows, cols, T(&c, iy), T(&c, ix), mask, per_row, scale));
}

static dcl_status bf_bn_act_fwd(dcl_backend *be, int N, int HW, int C, dcl_act act, float *y, float *gmean,
                                const float *x, const float *mean, const float *invstd, const float *gamma,
                                const float *beta, const float *s) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_act_fwd");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int iy = arg(&c, y, n, BF_OUT), ig = arg(&c, gmean, nc, BF_OUT);
    int ix = arg(&c, x, n, BF_IN), is = arg(&c, s, nc, BF_IN);
    BF_RUN(&c, in->bn_act_fwd(in, N, HW, C, act, T(&c, iy), T(&c, ig), T(&c, ix), mean, invstd, gamma, beta,
                              T(&c, is)));
}
static dcl_status bf_bn_act_bwd_reduce(dcl_backend *be, int N, int HW, int C, dcl_act act, float *sdy,
                                       float *sdyx, float *dgamma, float *dbeta, float *d, const float *dy,
                                       const float *x, const float *mean, const float *invstd,
                                       const float *gamma, const float *beta, const float *s,
                                       const float *dgap) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_act_bwd_reduce");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int id = arg(&c, d, n, BF_OUT), idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN);
    int is = arg(&c, s, nc, BF_IN), ig = arg(&c, dgap, nc, BF_IN);
    BF_RUN(&c, in->bn_act_bwd_reduce(in, N, HW, C, act, sdy, sdyx, dgamma, dbeta, T(&c, id), T(&c, idy),
                                     T(&c, ix), mean, invstd, gamma, beta, T(&c, is), T(&c, ig)));
}
static dcl_status bf_bn_act_bwd_dx(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx,
                                   const float *d, const float *dy, const float *x, const float *mean,
                                   const float *invstd, const float *gamma, const float *beta,
                                   const float *s, const float *dgap, const float *sdy, const float *sdyx,
                                   int64_t Mt) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_act_bwd_dx");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    /* With d == dx the inner entry reads neither dy, s nor dgap: they are
     * not widened (and passed as NULL). */
    const int inplace = d && (const float *)dx == d;
    int id = arg(&c, d, n, BF_IN), idx = arg(&c, dx, n, BF_OUT), ix = arg(&c, x, n, BF_IN);
    int idy = arg(&c, inplace ? NULL : dy, n, BF_IN);
    int is = arg(&c, inplace ? NULL : s, nc, BF_IN), ig = arg(&c, inplace ? NULL : dgap, nc, BF_IN);
    BF_RUN(&c, in->bn_act_bwd_dx(in, N, HW, C, act, T(&c, idx), T(&c, id), T(&c, idy), T(&c, ix), mean, invstd,
                                 gamma, beta, T(&c, is), T(&c, ig), sdy, sdyx, Mt));
}
static dcl_status bf_bn_act_dot(dcl_backend *be, int N, int HW, int C, dcl_act act, float *out,
                                const float *dy, const float *x, const float *mean, const float *invstd,
                                const float *gamma, const float *beta) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_act_dot");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int io = arg(&c, out, nc, BF_OUT), idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->bn_act_dot(in, N, HW, C, act, T(&c, io), T(&c, idy), T(&c, ix), mean, invstd, gamma, beta));
}
static dcl_status bf_bn_act_se_sums(dcl_backend *be, int N, int HW, int C, dcl_act act, float *ds, float *t,
                                    const float *dy, const float *x, const float *mean, const float *invstd,
                                    const float *gamma, const float *beta) {
    dcl_backend *in = be->inner;
    bf_call c;
    call_init(&c, be, "bn_act_se_sums");
    int64_t n = (int64_t)N * HW * C, nc = (int64_t)N * C;
    int ids = arg(&c, ds, nc, BF_OUT), idy = arg(&c, dy, n, BF_IN), ix = arg(&c, x, n, BF_IN);
    BF_RUN(&c, in->bn_act_se_sums(in, N, HW, C, act, T(&c, ids), t, T(&c, idy), T(&c, ix), mean, invstd, gamma,
                                  beta));
}

/* ---------------------------------------------------------- lifecycle */

static void bf_destroy(dcl_backend *be) {
    if (!be) return;
    bf_impl *st = bf_of(be);
    dcl_backend *in = be->inner;
    if (st) {
        for (int i = 0; i < st->nframes; i++) {
            for (int k = 0; k < BF_SLOTS; k++) inner_free(in, st->frames[i]->buf[k]);
            free(st->frames[i]);
        }
        free(st->frames);
        pthread_mutex_destroy(&st->lock);
        free(st);
    }
    dcl_backend_destroy(in);
    free(be);
}

dcl_backend *dcl_backend_bf16(dcl_backend *inner) {
    if (!inner) {
        dcl_fail(DCL_ERR_ARG, "bf16 backend: no backend to wrap (NULL)");
        return NULL;
    }
    const char *iname = inner->name ? inner->name : "(unnamed)";
    if (dcl_backend_act_bytes(inner) == 2) {
        dcl_fail(DCL_ERR_ARG, "bf16 backend: '%s' already stores activations as bf16", iname);
        dcl_backend_destroy(inner);
        return NULL;
    }
    if (!inner->is_host && (!inner->cvt_f32_bf16 || !inner->cvt_bf16_f32)) {
        dcl_fail(DCL_ERR_UNSUPPORTED,
                 "bf16 backend: '%s' keeps its data off the host and has no fp32/bf16 conversion entries",
                 iname);
        dcl_backend_destroy(inner);
        return NULL;
    }
    dcl_backend *be = calloc(1, sizeof *be);
    bf_impl *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        dcl_fail(DCL_ERR_NOMEM, "bf16 backend: out of memory");
        dcl_backend_destroy(inner);
        return NULL;
    }
    pthread_mutex_init(&st->lock, NULL);
    snprintf(st->name, sizeof st->name, "%s,bf16", iname);
    be->name = st->name;
    be->impl = st;
    be->is_host = inner->is_host;
    be->act_bytes = 2;
    be->inner = inner;
    be->destroy = bf_destroy;

#define FWD(f) be->f = inner->f ? bf_##f : NULL
    FWD(supports);
    FWD(mem_alloc); FWD(mem_free); FWD(to_device); FWD(to_host); FWD(mem_zero); FWD(sync);
    be->mem_copy = inner->mem_copy || inner->is_host ? bf_mem_copy : NULL;
    be->cvt_f32_bf16 = bf_cvt_f32_bf16;
    be->cvt_bf16_f32 = bf_cvt_bf16_f32;

    FWD(conv_fwd); FWD(conv_bwd_data); FWD(conv_bwd_weights);
    FWD(bn_fwd_train); FWD(bn_fwd_infer); FWD(bn_bwd);
    FWD(act_fwd); FWD(act_bwd); FWD(prelu_fwd); FWD(prelu_bwd);
    FWD(pool_fwd); FWD(pool_bwd); FWD(gap_fwd); FWD(gap_bwd);
    FWD(linear_fwd); FWD(linear_bwd); FWD(mul_bcast_fwd); FWD(mul_bcast_bwd);
    FWD(add); FWD(scale_mask);
    FWD(axpby); FWD(adam); FWD(sgd);
    FWD(conv_fwd_act); FWD(conv_fwd_add);
    FWD(bn_stats); FWD(bn_act_fwd); FWD(bn_act_bwd_reduce); FWD(bn_act_bwd_dx); FWD(bn_act_dot);
    FWD(bn_act_se_sums); FWD(bn_fold);
#undef FWD
    return be;
}
