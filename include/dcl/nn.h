/* Neural-network ops on host memory: the plain-C reference kernels (the
 * ground truth every other backend is tested against), losses,
 * normalisation and dropout masks.
 *
 * Every kernel exists in float (_f32) and double (_f64).  Both come from one
 * type-generic source, so the double version (used by finite-difference
 * gradient checks) computes exactly what the float version computes.
 * Reductions accumulate in double in both versions.
 *
 * The dcl_ref_* kernels mirror the entries of the backend vtable
 * (src/backend/backend.h) without the backend pointer and have the same
 * semantics: 4-D activations are NHWC, conv weights OIHW, linear weights
 * (out, in); outputs first, then inputs; parameter gradients (dw, db,
 * dgamma, dbeta, dalpha) ACCUMULATE (+=), activation gradients are ASSIGNED.
 * Descriptors must have been completed with dcl_conv_desc_finish /
 * dcl_pool_desc_finish.  Elementwise ops (act, prelu, add, scale_mask,
 * mul_bcast forward) may run in place (output aliasing an input).
 * All functions return DCL_OK or an error status with a message
 * (dcl_last_error) naming the op and what was wrong.
 */
#ifndef DCL_NN_H
#define DCL_NN_H
#include "dcl/core.h"
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill every function pointer of a vtable with the reference
 * implementations: supports() accepts everything, destroy() does nothing,
 * the memory entries (mem_alloc ... sync) are NULL (host memory).  name,
 * impl and is_host are left as they are.  A backend can start from this and
 * override the entries it implements better. */
void dcl_backend_ref_fill(dcl_backend *be);

/* ------------------------------------------------------------------------ */
/* Reference kernels, double precision                                      */
/* ------------------------------------------------------------------------ */

/* conv: x (n,hi,wi,ci) NHWC, w (co, ci/groups, kh, kw), b (co) used when
 * d->has_bias (required then), y (n,ho,wo,co).  bwd_weights accumulates dw,
 * and db when db is not NULL. */
dcl_status dcl_ref_conv_fwd_f64(const dcl_conv_desc *d, double *y, const double *x,
                                const double *w, const double *b);
dcl_status dcl_ref_conv_bwd_data_f64(const dcl_conv_desc *d, double *dx, const double *dy,
                                     const double *w);
dcl_status dcl_ref_conv_bwd_weights_f64(const dcl_conv_desc *d, double *dw, double *db,
                                        const double *dy, const double *x);

/* batch norm over M rows of C channels: training forward writes the batch
 * mean, BIASED variance and invstd = 1/sqrt(var + eps); bwd is PyTorch's
 * training-mode gradient (batch statistics depend on x). */
dcl_status dcl_ref_bn_fwd_train_f64(int64_t M, int C, double *y, double *mean, double *var,
                                    double *invstd, const double *x, const double *gamma,
                                    const double *beta, double eps);
dcl_status dcl_ref_bn_fwd_infer_f64(int64_t M, int C, double *y, const double *x,
                                    const double *gamma, const double *beta,
                                    const double *rmean, const double *rvar, double eps);
dcl_status dcl_ref_bn_bwd_f64(int64_t M, int C, double *dx, double *dgamma, double *dbeta,
                              const double *dy, const double *x, const double *mean,
                              const double *invstd, const double *gamma);

/* activations: relu, silu, sigmoid; NONE copies.  bwd reads x for relu and
 * silu and y for sigmoid (x when y is NULL, y for relu when x is NULL). */
dcl_status dcl_ref_act_fwd_f64(dcl_act a, int64_t n, double *y, const double *x);
dcl_status dcl_ref_act_bwd_f64(dcl_act a, int64_t n, double *dx, const double *dy,
                               const double *x, const double *y);

/* PReLU, slope per channel (C innermost) or shared when C == 1. */
dcl_status dcl_ref_prelu_fwd_f64(int64_t M, int C, double *y, const double *x,
                                 const double *alpha);
dcl_status dcl_ref_prelu_bwd_f64(int64_t M, int C, double *dx, double *dalpha,
                                 const double *dy, const double *x, const double *alpha);

/* max / average pooling with PyTorch semantics; padded positions never win a
 * max; the backward of max routes each gradient to the first maximum of its
 * window in scan order (NaN counts as a maximum, as in PyTorch). */
dcl_status dcl_ref_pool_fwd_f64(const dcl_pool_desc *d, double *y, const double *x);
dcl_status dcl_ref_pool_bwd_f64(const dcl_pool_desc *d, double *dx, const double *dy,
                                const double *x, const double *y);

/* global average pooling: x (N, HW, C) -> y (N, C) */
dcl_status dcl_ref_gap_fwd_f64(int N, int HW, int C, double *y, const double *x);
dcl_status dcl_ref_gap_bwd_f64(int N, int HW, int C, double *dx, const double *dy);

/* linear: y (M,O) = x (M,K) W^T + b; b, dx, db nullable. */
dcl_status dcl_ref_linear_fwd_f64(int M, int K, int O, double *y, const double *x,
                                  const double *w, const double *b);
dcl_status dcl_ref_linear_bwd_f64(int M, int K, int O, double *dx, double *dw, double *db,
                                  const double *dy, const double *x, const double *w);

/* y (N,HW,C) = x (N,HW,C) * s (N,C); bwd assigns dx and ds. */
dcl_status dcl_ref_mul_bcast_fwd_f64(int N, int HW, int C, double *y, const double *x,
                                     const double *s);
dcl_status dcl_ref_mul_bcast_bwd_f64(int N, int HW, int C, double *dx, double *ds,
                                     const double *dy, const double *x, const double *s);

dcl_status dcl_ref_add_f64(int64_t n, double *y, const double *a, const double *b);
/* y = x * mask * scale; mask has rows*cols entries, or rows when per_row. */
dcl_status dcl_ref_scale_mask_f64(int64_t rows, int64_t cols, double *y, const double *x,
                                  const double *mask, int per_row, double scale);

/* ------------------------------------------------------------------------ */
/* Reference kernels, single precision (what the "ref" backend runs)        */
/* ------------------------------------------------------------------------ */
dcl_status dcl_ref_conv_fwd_f32(const dcl_conv_desc *d, float *y, const float *x,
                                const float *w, const float *b);
dcl_status dcl_ref_conv_bwd_data_f32(const dcl_conv_desc *d, float *dx, const float *dy,
                                     const float *w);
dcl_status dcl_ref_conv_bwd_weights_f32(const dcl_conv_desc *d, float *dw, float *db,
                                        const float *dy, const float *x);
dcl_status dcl_ref_bn_fwd_train_f32(int64_t M, int C, float *y, float *mean, float *var,
                                    float *invstd, const float *x, const float *gamma,
                                    const float *beta, float eps);
dcl_status dcl_ref_bn_fwd_infer_f32(int64_t M, int C, float *y, const float *x,
                                    const float *gamma, const float *beta,
                                    const float *rmean, const float *rvar, float eps);
dcl_status dcl_ref_bn_bwd_f32(int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *mean,
                              const float *invstd, const float *gamma);
dcl_status dcl_ref_act_fwd_f32(dcl_act a, int64_t n, float *y, const float *x);
dcl_status dcl_ref_act_bwd_f32(dcl_act a, int64_t n, float *dx, const float *dy,
                               const float *x, const float *y);
dcl_status dcl_ref_prelu_fwd_f32(int64_t M, int C, float *y, const float *x, const float *alpha);
dcl_status dcl_ref_prelu_bwd_f32(int64_t M, int C, float *dx, float *dalpha,
                                 const float *dy, const float *x, const float *alpha);
dcl_status dcl_ref_pool_fwd_f32(const dcl_pool_desc *d, float *y, const float *x);
dcl_status dcl_ref_pool_bwd_f32(const dcl_pool_desc *d, float *dx, const float *dy,
                                const float *x, const float *y);
dcl_status dcl_ref_gap_fwd_f32(int N, int HW, int C, float *y, const float *x);
dcl_status dcl_ref_gap_bwd_f32(int N, int HW, int C, float *dx, const float *dy);
dcl_status dcl_ref_linear_fwd_f32(int M, int K, int O, float *y, const float *x,
                                  const float *w, const float *b);
dcl_status dcl_ref_linear_bwd_f32(int M, int K, int O, float *dx, float *dw, float *db,
                                  const float *dy, const float *x, const float *w);
dcl_status dcl_ref_mul_bcast_fwd_f32(int N, int HW, int C, float *y, const float *x,
                                     const float *s);
dcl_status dcl_ref_mul_bcast_bwd_f32(int N, int HW, int C, float *dx, float *ds,
                                     const float *dy, const float *x, const float *s);
dcl_status dcl_ref_add_f32(int64_t n, float *y, const float *a, const float *b);
dcl_status dcl_ref_scale_mask_f32(int64_t rows, int64_t cols, float *y, const float *x,
                                  const float *mask, int per_row, float scale);

/* ------------------------------------------------------------------------ */
/* Losses and normalisation (host memory), float and double                 */
/* ------------------------------------------------------------------------ */

/* softmax / log_softmax over the last dimension of x (M, K).
 * bwd: softmax takes its output y; log_softmax takes its output y. */
dcl_status dcl_softmax_fwd_f32(int64_t M, int K, float *y, const float *x);
dcl_status dcl_softmax_bwd_f32(int64_t M, int K, float *dx, const float *dy, const float *y);
dcl_status dcl_log_softmax_fwd_f32(int64_t M, int K, float *y, const float *x);
dcl_status dcl_log_softmax_bwd_f32(int64_t M, int K, float *dx, const float *dy, const float *y);
dcl_status dcl_softmax_fwd_f64(int64_t M, int K, double *y, const double *x);
dcl_status dcl_softmax_bwd_f64(int64_t M, int K, double *dx, const double *dy, const double *y);
dcl_status dcl_log_softmax_fwd_f64(int64_t M, int K, double *y, const double *x);
dcl_status dcl_log_softmax_bwd_f64(int64_t M, int K, double *dx, const double *dy, const double *y);

/* Cross-entropy of logits (M, K) against class indices, mean over the rows
 * whose target is not DCL_IGNORE_INDEX (PyTorch's default ignore_index;
 * the loss is NaN when every row is ignored, as in PyTorch).  Targets must
 * lie in [0, K) otherwise.  bwd assigns dlogits = dloss * d(loss)/d(logits)
 * (ignored rows get 0). */
#define DCL_IGNORE_INDEX (-100)
dcl_status dcl_cross_entropy_fwd_f32(int64_t M, int K, float *loss, const float *logits,
                                     const int *targets);
dcl_status dcl_cross_entropy_bwd_f32(int64_t M, int K, float *dlogits, float dloss,
                                     const float *logits, const int *targets);
dcl_status dcl_cross_entropy_fwd_f64(int64_t M, int K, double *loss, const double *logits,
                                     const int *targets);
dcl_status dcl_cross_entropy_bwd_f64(int64_t M, int K, double *dlogits, double dloss,
                                     const double *logits, const int *targets);

/* Binary cross-entropy with logits, mean over M, numerically stable
 * (PyTorch: (1-t)x + m + log(exp(-m) + exp(-x-m)), m = max(-x, 0)).
 * bwd: dlogits = dloss * (sigmoid(x) - t) / M. */
dcl_status dcl_bce_logits_fwd_f32(int64_t M, float *loss, const float *logits,
                                  const float *targets);
dcl_status dcl_bce_logits_bwd_f32(int64_t M, float *dlogits, float dloss,
                                  const float *logits, const float *targets);
dcl_status dcl_bce_logits_fwd_f64(int64_t M, double *loss, const double *logits,
                                  const double *targets);
dcl_status dcl_bce_logits_bwd_f64(int64_t M, double *dlogits, double dloss,
                                  const double *logits, const double *targets);

/* L2 normalisation of the rows of x (M, D) like
 * torch.nn.functional.normalize(x, dim=1, eps): y = x / max(||x||, eps).
 * bwd takes the input x.  DCL_L2NORM_EPS is PyTorch's default. */
#define DCL_L2NORM_EPS 1e-12
dcl_status dcl_l2norm_fwd_f32(int64_t M, int D, float *y, const float *x, float eps);
dcl_status dcl_l2norm_bwd_f32(int64_t M, int D, float *dx, const float *dy, const float *x,
                              float eps);
dcl_status dcl_l2norm_fwd_f64(int64_t M, int D, double *y, const double *x, double eps);
dcl_status dcl_l2norm_bwd_f64(int64_t M, int D, double *dx, const double *dy, const double *x,
                              double eps);

/* ------------------------------------------------------------------------ */
/* Dropout masks (use with the backend's scale_mask)                        */
/* ------------------------------------------------------------------------ */

/* Per element: mask[i] = 1 with probability 1-p (Bernoulli keep), else 0;
 * *scale = 1/(1-p) (0 when p == 1).  p must lie in [0, 1]. */
dcl_status dcl_dropout_mask(dcl_rng *rng, int64_t n, float p, float *mask, float *scale);
/* Per sample (drop path / stochastic depth, as timm's drop_path): one mask
 * value per row of a (rows, cols) tensor; use scale_mask with per_row = 1.
 * *scale = 1/keep_prob (0 when p == 1). */
dcl_status dcl_drop_path_mask(dcl_rng *rng, int64_t rows, float p, float *mask, float *scale);

#ifdef __cplusplus
}
#endif
#endif
