/* Backend vtable.  A backend implements the engine's ops on one kind of
 * device.  "ref" (plain C, the ground truth of tests), "cpu" (oneDNN + vector
 * kernels, OpenMP) and "cuda" (cuDNN/cuBLAS) fill it; any entry may be NULL
 * and supports() may refuse a configuration: callers then fall back to the
 * reference backend (CPU memory only).
 *
 * All float pointers point into the backend's memory (host for CPU
 * backends).  4-D activations are NHWC; conv weights OIHW; linear weights
 * (out,in).  Outputs first, then inputs.  Parameter gradients (dw, db,
 * dgamma, dbeta, dalpha) ACCUMULATE (+=); activation gradients (dx) are
 * ASSIGNED.
 *
 * Threads: several threads may call one backend at once (on different
 * buffers).  The cpu backend locks its caches; the cuda backend holds a
 * lock while an entry queues its work, which then runs on its one stream
 * in the order the calls took the lock; the bf16 adapter gives each call
 * its own temporaries.
 */
#ifndef DCL_BACKEND_H
#define DCL_BACKEND_H
#include "dcl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_conv_desc {
    int n, ci, hi, wi;        /* input  (logical N,C,H,W) */
    int co, ho, wo;           /* output channels / size */
    int kh, kw, sh, sw, dh, dw;
    int pt, pb, pl, pr;       /* padding top/bottom/left/right (asymmetric for TF "same") */
    int groups;
    int has_bias;
} dcl_conv_desc;
/* Fill ho/wo from the rest; returns DCL_ERR_SHAPE when output would be empty. */
dcl_status dcl_conv_desc_finish(dcl_conv_desc *d);
/* TF "same" padding for one dimension: total = max((ceil(i/s)-1)*s + (k-1)*d + 1 - i, 0),
 * before = total/2, after = total - before. */
void dcl_same_pad(int in, int k, int s, int d, int *before, int *after);

typedef enum dcl_pool_kind { DCL_POOL_MAX = 0, DCL_POOL_AVG = 1 } dcl_pool_kind;
typedef struct dcl_pool_desc {
    int n, c, hi, wi, ho, wo;
    int kh, kw, sh, sw;
    int pt, pb, pl, pr;
    int ceil_mode;            /* PyTorch ceil_mode when computing ho/wo */
    int count_include_pad;    /* avg only (PyTorch default true) */
    dcl_pool_kind kind;
} dcl_pool_desc;
dcl_status dcl_pool_desc_finish(dcl_pool_desc *d);

typedef enum dcl_act {
    DCL_ACT_NONE = 0, DCL_ACT_RELU, DCL_ACT_SILU, DCL_ACT_SIGMOID
} dcl_act;

typedef enum dcl_op {
    DCL_OP_CONV = 0, DCL_OP_BN, DCL_OP_ACT, DCL_OP_PRELU, DCL_OP_POOL, DCL_OP_GAP,
    DCL_OP_LINEAR, DCL_OP_MUL_BCAST, DCL_OP_ADD, DCL_OP_COUNT
} dcl_op;

typedef struct dcl_backend dcl_backend;
struct dcl_backend {
    const char *name;
    void *impl;
    int is_host;   /* 1: pointers are ordinary host memory */
    /* Bytes per element of activations and their gradients: 4 (fp32; 0 is
     * read as 4) or 2 (bf16, a backend made by dcl_backend_bf16).  With 2,
     * every pointer this header marks [A] holds bf16 values (uint16, the
     * upper half of an fp32) although it is typed float*; parameters, their
     * gradients, optimiser state, statistics and other [P] arguments stay
     * fp32.  Unmarked float pointers are [P]. */
    int act_bytes;
    dcl_backend *inner;   /* an adapter (dcl_backend_bf16): the backend it wraps; else NULL */
    /* desc: dcl_conv_desc* for CONV, dcl_pool_desc* for POOL, NULL otherwise */
    int (*supports)(dcl_backend *be, dcl_op op, const void *desc);
    void (*destroy)(dcl_backend *be);

    /* memory (device backends; NULL on host backends = use dcl_alloc / memcpy) */
    void *(*mem_alloc)(dcl_backend *be, size_t bytes);
    void (*mem_free)(dcl_backend *be, void *p);
    dcl_status (*to_device)(dcl_backend *be, void *dst, const void *src, size_t bytes);
    dcl_status (*to_host)(dcl_backend *be, void *dst, const void *src, size_t bytes);
    dcl_status (*mem_zero)(dcl_backend *be, void *p, size_t bytes);
    dcl_status (*sync)(dcl_backend *be);
    /* Optional (NULL: memcpy on host backends): copy bytes within the
     * backend's memory. */
    dcl_status (*mem_copy)(dcl_backend *be, void *dst, const void *src, size_t bytes);
    /* Optional (NULL: done on the host, host backends only): conversions in
     * the backend's memory between fp32 and bf16 (round to nearest even,
     * NaN stays NaN). */
    dcl_status (*cvt_f32_bf16)(dcl_backend *be, int64_t n, uint16_t *dst, const float *src);
    dcl_status (*cvt_bf16_f32)(dcl_backend *be, int64_t n, float *dst, const uint16_t *src);

    /* convolution (any kernel, stride, dilation, padding, groups incl. depthwise) */
    dcl_status (*conv_fwd)(dcl_backend *be, const dcl_conv_desc *d,
                           float *y, const float *x, const float *w, const float *b);
    dcl_status (*conv_bwd_data)(dcl_backend *be, const dcl_conv_desc *d,
                                float *dx, const float *dy, const float *w);
    dcl_status (*conv_bwd_weights)(dcl_backend *be, const dcl_conv_desc *d,
                                   float *dw, float *db /*nullable*/,
                                   const float *dy, const float *x);

    /* batch norm over M = N*H*W rows of C channels (NHWC).  Training forward
     * writes batch mean and 1/sqrt(biased var + eps) for the backward pass;
     * running statistics are updated by the caller from mean/var. */
    dcl_status (*bn_fwd_train)(dcl_backend *be, int64_t M, int C,
                               float *y, float *mean, float *var /*biased*/, float *invstd,
                               const float *x, const float *gamma, const float *beta, float eps);
    dcl_status (*bn_fwd_infer)(dcl_backend *be, int64_t M, int C, float *y,
                               const float *x, const float *gamma, const float *beta,
                               const float *rmean, const float *rvar, float eps);
    dcl_status (*bn_bwd)(dcl_backend *be, int64_t M, int C,
                         float *dx, float *dgamma, float *dbeta,
                         const float *dy, const float *x, const float *mean,
                         const float *invstd, const float *gamma);

    /* elementwise activations; bwd gets both x and y (either may be used) */
    dcl_status (*act_fwd)(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x);
    dcl_status (*act_bwd)(dcl_backend *be, dcl_act a, int64_t n, float *dx,
                          const float *dy, const float *x, const float *y);
    /* PReLU with one slope per channel (C innermost); C==1 for a shared slope */
    dcl_status (*prelu_fwd)(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha);
    dcl_status (*prelu_bwd)(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha,
                            const float *dy, const float *x, const float *alpha);

    dcl_status (*pool_fwd)(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x);
    dcl_status (*pool_bwd)(dcl_backend *be, const dcl_pool_desc *d, float *dx,
                           const float *dy, const float *x, const float *y);

    /* global average pooling: x (N, HW, C) -> y (N, C) */
    dcl_status (*gap_fwd)(dcl_backend *be, int N, int HW, int C, float *y, const float *x);
    dcl_status (*gap_bwd)(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy);

    /* linear: y (M, O) = x (M, K) W^T + b, W (O, K) */
    dcl_status (*linear_fwd)(dcl_backend *be, int M, int K, int O, float *y,
                             const float *x, const float *w, const float *b);
    dcl_status (*linear_bwd)(dcl_backend *be, int M, int K, int O,
                             float *dx /*nullable, assigned*/, float *dw, float *db /*nullable*/,
                             const float *dy, const float *x, const float *w);

    /* squeeze-excitation scaling: y (N,HW,C) = x (N,HW,C) * s (N,C) */
    dcl_status (*mul_bcast_fwd)(dcl_backend *be, int N, int HW, int C, float *y,
                                const float *x, const float *s);
    dcl_status (*mul_bcast_bwd)(dcl_backend *be, int N, int HW, int C,
                                float *dx /*assigned*/, float *ds /*assigned*/,
                                const float *dy, const float *x, const float *s);

    /* y = a + b (n elements) ; used for residuals.  y may alias a or b. */
    dcl_status (*add)(dcl_backend *be, int64_t n, float *y, const float *a, const float *b);
    /* y = x * mask * scale (dropout / drop-path: mask per element or per sample row) */
    dcl_status (*scale_mask)(dcl_backend *be, int64_t rows, int64_t cols, float *y,
                             const float *x, const float *mask /* rows*cols, or rows when per_row */,
                             int per_row, float scale);

    /* y = a*x + b*y (n elements): running statistics, EMA of parameters.
     * b == 0 means y = a*x without reading y (BLAS convention). */
    dcl_status (*axpby)(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b);
    /* Adam / AdamW step over n parameters (PyTorch semantics):
     * g = grad + wd*p (when !decoupled); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
     * p -= lr * (m / bc1) / (sqrt(v / bc2) + eps); decoupled (AdamW): p *= 1 - lr*wd first.
     * bc1 = 1 - b1^t, bc2 = 1 - b2^t computed by the caller. */
    dcl_status (*adam)(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad,
                       float lr, float b1, float b2, float eps, float wd, int decoupled,
                       float bc1, float bc2);
    /* SGD with momentum (PyTorch semantics, dampening 0, optional nesterov) */
    dcl_status (*sgd)(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad,
                      float lr, float momentum, float wd, int nesterov, int first_step);

    /* ---- fused entries: optional.  NULL means the executor (src/models/net.c)
     * runs the unfused ops above instead; a backend fills all of a group or
     * none (conv_fwd_act and conv_fwd_add each alone; bn_stats + bn_act_fwd
     * for the training forward; bn_act_bwd_reduce + bn_act_bwd_dx +
     * bn_act_dot for the backward).  docs/SPEED.md. ---- */

    /* y = act(conv(x, w) + b) (inference: with a batch norm folded into w
     * and b, conv + bn + act in one call; the backend decides whether the
     * activation runs inside the convolution or as its own pass). */
    dcl_status (*conv_fwd_act)(dcl_backend *be, const dcl_conv_desc *d, dcl_act act,
                               float *y, const float *x, const float *w, const float *b);
    /* y += conv(x, w) + b: the convolution accumulated onto y in its pass (a
     * residual add after a convolution, done in the shortcut's buffer). */
    dcl_status (*conv_fwd_add)(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                               const float *w, const float *b);
    /* Batch statistics of M rows of C channels (NHWC) in one read of x:
     * mean, biased variance and invstd = 1/sqrt(var + eps). */
    dcl_status (*bn_stats)(dcl_backend *be, int64_t M, int C, float *mean, float *var,
                           float *invstd, const float *x, float eps);
    /* Batch norm with the given statistics, then an activation, over N
     * samples of HW rows of C channels:
     *   a = act((x - mean) * invstd * gamma + beta),  y = a * s[n][c]
     * (s nullable: y = a); gmean[n][c] (nullable) = mean of a over the HW
     * rows (the pooling of a squeeze-excitation); y may be NULL when only
     * gmean is wanted.  mean, invstd, gamma and beta all NULL: no
     * normalisation (a = act(x)).  Used for the forward pass and for
     * recomputing a value in the backward pass instead of keeping it. */
    dcl_status (*bn_act_fwd)(dcl_backend *be, int N, int HW, int C, dcl_act act,
                             float *y, float *gmean, const float *x, const float *mean,
                             const float *invstd, const float *gamma, const float *beta,
                             const float *s);
    /* Backward of bn_act_fwd with batch statistics.  With z the normalised
     * value and a = act(z) as above, the gradient reaching z is
     *   d = (dy * s[n][c] + dgap[n][c] / HW) * act'(z)
     * (s nullable: 1; dgap nullable: 0; dgap is the gradient of a
     * squeeze-excitation's pooled a).  reduce: sdy[c] = sum of d and
     * sdyx[c] = sum of d * (x - mean) over all rows (assigned); dgamma +=
     * sdyx * invstd, dbeta += sdy (both nullable); d (nullable, N*HW*C)
     * receives d itself for bn_act_bwd_dx. */
    dcl_status (*bn_act_bwd_reduce)(dcl_backend *be, int N, int HW, int C, dcl_act act,
                                    float *sdy, float *sdyx, float *dgamma, float *dbeta, float *d,
                                    const float *dy, const float *x, const float *mean,
                                    const float *invstd, const float *gamma, const float *beta,
                                    const float *s, const float *dgap);
    /* dx = gamma invstd (d - sdy / Mt - (x - mean) invstd^2 sdyx / Mt)
     * (assigned), Mt the number of rows the statistics and sums cover
     * (N*HW, more with batch norm synchronised across processes).  d: the
     * d of bn_act_bwd_reduce (may be dx itself; then dy, s, dgap and beta
     * are not read), or NULL to recompute it from dy. */
    dcl_status (*bn_act_bwd_dx)(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx,
                                const float *d, const float *dy, const float *x, const float *mean,
                                const float *invstd, const float *gamma, const float *beta,
                                const float *s, const float *dgap, const float *sdy,
                                const float *sdyx, int64_t Mt);
    /* out[n][c] = sum over the HW rows of dy * act(z) (assigned): the
     * gradient of a squeeze-excitation scale without materialising a. */
    dcl_status (*bn_act_dot)(dcl_backend *be, int N, int HW, int C, dcl_act act, float *out,
                             const float *dy, const float *x, const float *mean,
                             const float *invstd, const float *gamma, const float *beta);
    /* Optional (NULL: bn_act_dot then bn_act_bwd_reduce): the
     * squeeze-excitation's backward sums in one pass over dy and x, before
     * the pooled gradient is known.  Per sample n and channel c, summed over
     * the HW rows, with a' = act'(z) and xc = x - mean:
     *   ds[n][c] = sum dy * a  (nullable)           t[0][n][c] = sum dy * a'
     *   t[1][n][c] = sum a'     t[2][n][c] = sum dy * a' * xc     t[3][n][c] = sum a' * xc
     * (all assigned; t holds 4*N*C).  bn_act_bwd_reduce's sums for the
     * scale s and pooled gradient dgap then follow without another pass:
     * sdy[c] = sum over n of s t[0] + dgap t[1] / HW, sdyx[c] the same with
     * t[2], t[3]. */
    dcl_status (*bn_act_se_sums)(dcl_backend *be, int N, int HW, int C, dcl_act act, float *ds,
                                 float *t, const float *dy, const float *x, const float *mean,
                                 const float *invstd, const float *gamma, const float *beta);
    /* Optional (NULL: computed on the host): an evaluation-mode batch norm
     * folded into the convolution before it, computed where the parameters
     * live.  scale[c] = gamma[c] / sqrt(rvar[c] + eps) and
     * shift[c] = beta[c] + (cbias[c] - rmean[c]) * scale[c] (cbias nullable:
     * 0), in double, rounded once. */
    dcl_status (*bn_fold)(dcl_backend *be, int C, float *scale, float *shift, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, const float *cbias,
                          float eps);

    /* ---- pointwise (1x1, stride 1, groups 1, no bias) convolution
     * backward fused with the batch norm + activation next to it: optional,
     * both or neither.  Rows are N*HW (NHWC); C channels on the wide side,
     * O / Ci on the narrow side.  The backend works through blocks of rows
     * that stay in its caches, so the wide gradient and input are written
     * or read once instead of three or four times. ---- */

    /* Whether an entry of this group pays on this shape (rows, C wide and
     * K narrow channels); what: DCL_PWF_BWD (se_pw_bwd, bn_dx_pw_bwd) or
     * DCL_PWF_STATS (bn_stats_pw); NULL: always. */
    int (*pw_fused_pays)(dcl_backend *be, int what, int64_t rows, int C, int K);
    /* Backward of  m = act(bn(x)) * s[n][c],  y = conv1x1(m, w)  (the
     * squeeze-excitation's projection), m never stored:
     *   dm = dy w  (N*HW*C, assigned),  dw (O, C) += dy^T m,
     *   ds and t as bn_act_se_sums(dm, x, ...) would give them (ds nullable).
     * x, mean, invstd, gamma, beta and act as for bn_act_fwd; s (N, C). */
    dcl_status (*se_pw_bwd)(dcl_backend *be, int N, int HW, int C, int O, dcl_act act, float *dm,
                            float *dw, float *ds, float *t, const float *dy, const float *w,
                            const float *x, const float *mean, const float *invstd,
                            const float *gamma, const float *beta, const float *s);
    /* bn_act_bwd_dx with d given (g = its dx, never stored) followed by the
     * backward of the convolution that produced x:  y = conv1x1(xin, w),
     * x = y (N*HW*C), xin (N*HW*Ci), w (C, Ci):
     *   dxin = g w  (assigned, or added when acc; dxin nullable),
     *   dw (C, Ci) += g^T xin.
     * d, x, mean, invstd, gamma, sdy, sdyx and Mt as for bn_act_bwd_dx. */
    dcl_status (*bn_dx_pw_bwd)(dcl_backend *be, int64_t rows, int C, int Ci, float *dxin, int acc,
                               float *dw, const float *d, const float *x, const float *mean,
                               const float *invstd, const float *gamma, const float *sdy,
                               const float *sdyx, int64_t Mt, const float *w, const float *xin);
    /* Optional: bn_stats of y = conv1x1(xin, w) (no bias) without reading
     * y: the mean and covariance of xin's Ci channels over the rows (one
     * read of the narrow input), then mean_y = w mean_xin and var_y[c] =
     * w_c cov w_c^T (in double).  w (C, Ci). */
    dcl_status (*bn_stats_pw)(dcl_backend *be, int64_t rows, int Ci, int C, float *mean, float *var,
                              float *invstd, const float *xin, const float *w, float eps);

    /* ---- a depthwise convolution fed by bn_act_fwd: optional, both or
     * neither.  Whether the backend runs bn_act_dw_fwd on this
     * convolution (depthwise, d->ci channels) and gains by it: */
    int (*bn_act_dw_pays)(dcl_backend *be, const dcl_conv_desc *d);
    /* a = bn_act_fwd(x, ...) without s or gmean (nullable: not stored;
     * mean, invstd, gamma and beta all NULL: a = act(x)), then y =
     * conv(a, w) + bias (bias nullable), in one pass: the convolution
     * reads a from the backend's caches, not from memory. */
    dcl_status (*bn_act_dw_fwd)(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y, float *a,
                                const float *x, const float *mean, const float *invstd, const float *gamma,
                                const float *beta, const float *w, const float *bias);
};

enum { DCL_PWF_BWD = 0, DCL_PWF_STATS = 1 };   /* pw_fused_pays' what */

/* Argument classes for act_bytes == 2 ([A]: activation storage, bf16):
 *   conv_fwd, conv_fwd_act: y, x.   conv_fwd_add: y (read and written), x.
 *   conv_bwd_data: dx, dy.          conv_bwd_weights: dy, x.
 *   bn_fwd_train, bn_fwd_infer: y, x.   bn_bwd: dx, dy, x.   bn_stats: x.
 *   act_fwd: y, x.  act_bwd: dx, dy, x, y.  prelu_fwd: y, x.  prelu_bwd: dx, dy, x.
 *   pool_fwd: y, x.  pool_bwd: dx, dy, x, y.  gap_fwd: y, x.  gap_bwd: dx, dy.
 *   linear_fwd: y, x.  linear_bwd: dx, dy, x.
 *   mul_bcast_fwd: y, x, s.  mul_bcast_bwd: dx, ds, dy, x, s.  add: y, a, b.
 *   scale_mask: y, x (the mask is fp32).
 *   bn_act_fwd: y, gmean, x, s.  bn_act_bwd_reduce: d, dy, x, s, dgap.
 *   bn_act_bwd_dx: dx, d, dy, x, s, dgap.  bn_act_dot: out, dy, x.
 *   bn_act_se_sums: ds, dy, x.
 * axpby, adam, sgd and bn_fold take only [P] arguments. */

/* Constructors. */
dcl_backend *dcl_backend_ref(void);                 /* plain C */
dcl_backend *dcl_backend_cpu(int threads);          /* oneDNN + vectorised kernels; NULL if unavailable */
dcl_backend *dcl_backend_cuda(int device);          /* NULL (error set) without CUDA */
/* "ref", "cpu", "cuda", "cuda:N"; NULL with error set */
dcl_backend *dcl_backend_create(const char *spec, int threads);
void dcl_backend_destroy(dcl_backend *be);
/* bf16 storage of activations on any backend (act_bytes 2): every entry
 * widens its [A] inputs to fp32, runs inner's entry, and rounds its [A]
 * outputs to bf16 (round to nearest even); [P] arguments pass through.
 * Arithmetic stays fp32 and so do parameters, gradients of parameters and
 * optimiser state (fp32 master weights).  Takes ownership of inner (also on
 * failure); NULL with error set when inner is NULL or already bf16.
 * dcl_backend_create accepts "SPEC,bf16" for it (e.g. "cuda:0,bf16"). */
dcl_backend *dcl_backend_bf16(dcl_backend *inner);
/* Host arrays between fp32 and bf16 (round to nearest even, NaN stays NaN:
 * dcl_f32_to_bf16 of io.h), vectorised, threaded above 64 K elements. */
void dcl_bf16_pack(int64_t n, uint16_t *dst, const float *src);
void dcl_bf16_unpack(int64_t n, float *dst, const uint16_t *src);
/* The backend under any adapters (be itself when none). */
static inline dcl_backend *dcl_backend_base(dcl_backend *be) { while (be && be->inner) be = be->inner; return be; }
/* Bytes per activation element of be (4 or 2). */
static inline int dcl_backend_act_bytes(const dcl_backend *be) { return be && be->act_bytes == 2 ? 2 : 4; }

#ifdef __cplusplus
}
#endif
#endif
