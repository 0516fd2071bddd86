/* A static computation graph ("net") of engine ops with forward and backward,
 * planned for a given batch and input size, running on one backend.
 *
 * Parameters, their gradients and the optimizer's moments each live in ONE
 * contiguous buffer (same offsets), described by a table of PyTorch
 * state_dict names; buffers (BN running statistics, counters) in another.
 * Activations and activation gradients live in one planned arena whose
 * offsets are assigned from value lifetimes.
 */
#ifndef DCL_NET_H
#define DCL_NET_H
#include "dcl/core.h"
#include "dcl/tensor.h"
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_net dcl_net;

dcl_status dcl_net_create(dcl_net **out, dcl_backend *be);
void dcl_net_free(dcl_net *net);
dcl_backend *dcl_net_backend(dcl_net *net);

/* ---- building (channel counts static, spatial size decided at plan time).
 * Each returns the id of the output value, or -1 with the error set. ---- */
int dcl_net_input(dcl_net *net, int channels);
/* conv: name is the module prefix ("conv_stem" -> "conv_stem.weight").
 * same_pad=1: TensorFlow "same" (asymmetric, from the input size);
 * otherwise symmetric padding `pad`. */
int dcl_net_conv(dcl_net *net, const char *name, int x, int out_ch, int k, int stride,
                 int dilation, int groups, int pad, int same_pad, int bias);
int dcl_net_bn(dcl_net *net, const char *name, int x, float eps, float momentum);
int dcl_net_act(dcl_net *net, int x, dcl_act a);
int dcl_net_prelu(dcl_net *net, const char *name, int x);
int dcl_net_pool(dcl_net *net, int x, dcl_pool_kind kind, int k, int stride, int pad,
                 int ceil_mode, int count_include_pad);
int dcl_net_gap(dcl_net *net, int x);                 /* (N,C,H,W) -> (N,C,1,1) */
int dcl_net_mul(dcl_net *net, int x, int s);          /* x * s, s is (N,C,1,1) */
int dcl_net_add(dcl_net *net, int a, int b);
int dcl_net_dropout(dcl_net *net, int x, float p);    /* element-wise, training only */
int dcl_net_droppath(dcl_net *net, int x, float p);   /* per sample, training only */
int dcl_net_linear(dcl_net *net, const char *name, int x, int out_features); /* (N,C,1,1) -> (N,O,1,1) */
/* Extra tensors that are not produced by an op (e.g. a head outside the graph). */
int dcl_net_add_param(dcl_net *net, const char *name, int ndim, const int64_t *shape);

/* Allocate parameter / gradient / buffer storage (after building; once). */
dcl_status dcl_net_finalize(dcl_net *net);

/* ---- planning and running ---- */
/* Plan modes. */
enum {
    DCL_PLAN_EVAL = 0,        /* BN running statistics, no dropout, activations reused */
    DCL_PLAN_TRAIN = 1,       /* BN batch statistics, dropout, kept for backward */
    DCL_PLAN_TRAIN_NOGRAD = 2 /* BN batch statistics (running ones updated), no backward (key encoder) */
};
/* Compute shapes and memory for batch n and input h x w in one of the modes. */
dcl_status dcl_net_plan(dcl_net *net, int n, int h, int w, int mode);
/* x: host NHWC float (n, h, w, C) */
dcl_status dcl_net_set_input(dcl_net *net, const float *x_nhwc);
/* x: NHWC float (n, h, w, C) already in the backend's memory (a batch kept
 * on the GPU, a loader's device buffer): copied on the device, no sync. */
dcl_status dcl_net_set_input_device(dcl_net *net, const float *x_dev_nhwc);
dcl_status dcl_net_forward(dcl_net *net, dcl_rng *rng);
/* Logical shape (N,C,H,W) of a value for the current plan. */
void dcl_net_value_shape(const dcl_net *net, int v, int shape[4]);
/* Device pointer of a value's data (valid after forward) and of its gradient
 * seed slot (write the gradient of the loss w.r.t. the value here before
 * dcl_net_backward; zeroed by dcl_net_zero_seeds). */
float *dcl_net_value_data(dcl_net *net, int v);
float *dcl_net_value_seed(dcl_net *net, int v);
dcl_status dcl_net_value_to_host(dcl_net *net, int v, float *dst_nhwc);
dcl_status dcl_net_seed_from_host(dcl_net *net, int v, const float *src_nhwc);
/* Gradient of the loss w.r.t. value v after dcl_net_backward (host NHWC);
 * v must be an output (marked) so that its gradient is kept (Grad-CAM). */
dcl_status dcl_net_value_grad_to_host(dcl_net *net, int v, float *dst_nhwc);
/* Declares v as an output whose gradient may be seeded (before plan). */
dcl_status dcl_net_mark_output(dcl_net *net, int v);
/* Backward from the seeded outputs; parameter gradients accumulate. */
dcl_status dcl_net_backward(dcl_net *net);
dcl_status dcl_net_zero_grad(dcl_net *net);

/* ---- parameters ---- */
const dcl_table *dcl_net_params(const dcl_net *net);
const dcl_table *dcl_net_buffers(const dcl_net *net);
/* Device pointers (table->total floats).  Evaluation plans keep the batch
 * norms folded into copies of the weights between forwards; taking
 * param_data or buffer_data marks those copies stale, so write through a
 * pointer taken after the last evaluation forward, or call
 * dcl_net_params_changed after writing. */
float *dcl_net_param_data(dcl_net *net);
float *dcl_net_grad_data(dcl_net *net);
float *dcl_net_buffer_data(dcl_net *net);
/* The parameters or buffers were written behind the net's back: the next
 * evaluation forward folds the batch norms again. */
void dcl_net_params_changed(dcl_net *net);
/* Copy a named tensor to/from host (params first, then buffers). */
dcl_status dcl_net_get_tensor(dcl_net *net, const char *name, float *dst, int64_t numel);
dcl_status dcl_net_set_tensor(dcl_net *net, const char *name, const float *src, int64_t numel);
/* timm's EfficientNet initialisation (goog): conv N(0, sqrt(2/fan_out)),
 * BN 1/0, linear U(-1/sqrt(out), 1/sqrt(out)), biases 0. */
dcl_status dcl_net_init_params(dcl_net *net, dcl_rng *rng);

/* Per-layer summary with FLOPs for the current plan (to FILE*). */
void dcl_net_summary(dcl_net *net, void *file);
double dcl_net_flops(const dcl_net *net, int training);   /* forward FLOPs (x3 for training) */
size_t dcl_net_arena_bytes(const dcl_net *net);

/* ---- fusion (all on by default; docs/SPEED.md) ----
 * DCL_FUSE_FOLD_BN: evaluation plans fold each batch norm into the
 *   convolution before it (a per-plan copy of the weights, refreshed at
 *   every forward, so parameters may change between forwards) and apply a
 *   following activation in the convolution's pass (host backends).
 * DCL_FUSE_BN_ACT: training plans run batch norm + activation in one pass
 *   and keep only the batch norm's input; the backward recomputes the rest
 *   (backends with the bn_stats / bn_act_* entries).
 * DCL_FUSE_SE: training plans also fold a squeeze-excitation's pooling
 *   and scaling into those passes; the scaled map is recomputed in backward.
 * DCL_FUSE_PW: training plans (with DCL_FUSE_BN_ACT) run the backward of a
 *   1x1 convolution together with the batch norm next to it, block by block
 *   (backends with pw_fused_pays / se_pw_bwd / bn_dx_pw_bwd, on the shapes
 *   where the backend says it pays): after a batch norm, the batch norm's
 *   dx is finished inside the convolution's backward; after a
 *   squeeze-excitation, the scaled map is recomputed inside it.
 * DCL_FUSE_DW: training plans (with DCL_FUSE_BN_ACT) run a batch norm +
 *   activation and the depthwise convolution reading its output as one
 *   pass, the convolution fed from the backend's caches (backends with
 *   bn_act_dw_fwd, on the shapes where the backend says it pays).
 * Values fused away are not readable (dcl_net_value_to_host fails): mark a
 * value as an output before planning to keep it.  Takes effect at the next
 * dcl_net_plan. */
enum { DCL_FUSE_FOLD_BN = 1, DCL_FUSE_BN_ACT = 2, DCL_FUSE_SE = 4, DCL_FUSE_PW = 8, DCL_FUSE_DW = 16, DCL_FUSE_ALL = 31 };
dcl_status dcl_net_set_fuse(dcl_net *net, int flags);
int dcl_net_fuse(const dcl_net *net);
/* Per-layer timing of forward and backward (benchmarks): on = 1 starts
 * accumulating (the backend is synchronised around every layer), 0 stops.
 * dcl_net_profile_print writes the totals per kind of layer and direction,
 * divided by steps, to a FILE*; dcl_net_profile_print_layers one line per
 * node and direction (shape, milliseconds, GFLOPS). */
dcl_status dcl_net_profile(dcl_net *net, int on);
void dcl_net_profile_print(dcl_net *net, void *file, int steps);
void dcl_net_profile_print_layers(dcl_net *net, void *file, int steps);

/* ---- synchronised batch norm across processes (data-parallel training) ----
 * gather(ctx, recv, send, n): every process contributes n doubles and recv
 * gets nranks * n doubles in rank order, the same on every process.  With a
 * gather function set, batch norm layers in the training modes normalise
 * with the statistics of the batch of all processes (running statistics
 * too) and their backward pass uses the gradient sums of all processes.
 * Every process must run the same layers in the same order.  NULL: off. */
typedef dcl_status (*dcl_net_gather_fn)(void *ctx, double *recv, const double *send, int n);
dcl_status dcl_net_set_bn_sync(dcl_net *net, dcl_net_gather_fn gather, int nranks, void *ctx);

/* Host fallbacks for axpby / adam / sgd (used when a host backend lacks them). */
void dcl_backend_fill_host_extras(dcl_backend *be);

#ifdef __cplusplus
}
#endif
#endif
