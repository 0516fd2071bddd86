/* The "ref" backend: the reference kernels behind the backend vtable. */
#include "nn/ref_common.h"

static int ref_supports(dcl_backend *be, dcl_op op, const void *desc) { return 1; }
static void ref_destroy(dcl_backend *be) {}

static dcl_status ref_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                               const float *w, const float *b) {
    return dcl_ref_conv_fwd_f32(d, y, x, w, b);
}
static dcl_status ref_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d, float *dx,
                                    const float *dy, const float *w) {
    return dcl_ref_conv_bwd_data_f32(d, dx, dy, w);
}
static dcl_status ref_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db,
                                       const float *dy, const float *x) {
    return dcl_ref_conv_bwd_weights_f32(d, dw, db, dy, x);
}
static dcl_status ref_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                                   float *invstd, const float *x, const float *gamma, const float *beta,
                                   float eps) {
    return dcl_ref_bn_fwd_train_f32(M, C, y, mean, var, invstd, x, gamma, beta, eps);
}
static dcl_status ref_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                   const float *gamma, const float *beta, const float *rmean,
                                   const float *rvar, float eps) {
    return dcl_ref_bn_fwd_infer_f32(M, C, y, x, gamma, beta, rmean, rvar, eps);
}
static dcl_status ref_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                             const float *dy, const float *x, const float *mean, const float *invstd,
                             const float *gamma) {
    return dcl_ref_bn_bwd_f32(M, C, dx, dgamma, dbeta, dy, x, mean, invstd, gamma);
}
static dcl_status ref_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    return dcl_ref_act_fwd_f32(a, n, y, x);
}
static dcl_status ref_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy,
                              const float *x, const float *y) {
    return dcl_ref_act_bwd_f32(a, n, dx, dy, x, y);
}
static dcl_status ref_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                const float *alpha) {
    return dcl_ref_prelu_fwd_f32(M, C, y, x, alpha);
}
static dcl_status ref_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha,
                                const float *dy, const float *x, const float *alpha) {
    return dcl_ref_prelu_bwd_f32(M, C, dx, dalpha, dy, x, alpha);
}
static dcl_status ref_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) {
    return dcl_ref_pool_fwd_f32(d, y, x);
}
static dcl_status ref_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy,
                               const float *x, const float *y) {
    return dcl_ref_pool_bwd_f32(d, dx, dy, x, y);
}
static dcl_status ref_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x) {
    return dcl_ref_gap_fwd_f32(N, HW, C, y, x);
}
static dcl_status ref_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) {
    return dcl_ref_gap_bwd_f32(N, HW, C, dx, dy);
}
static dcl_status ref_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x,
                                 const float *w, const float *b) {
    return dcl_ref_linear_fwd_f32(M, K, O, y, x, w, b);
}
static dcl_status ref_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                                 const float *dy, const float *x, const float *w) {
    return dcl_ref_linear_bwd_f32(M, K, O, dx, dw, db, dy, x, w);
}
static dcl_status ref_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x,
                                    const float *s) {
    return dcl_ref_mul_bcast_fwd_f32(N, HW, C, y, x, s);
}
static dcl_status ref_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds,
                                    const float *dy, const float *x, const float *s) {
    return dcl_ref_mul_bcast_bwd_f32(N, HW, C, dx, ds, dy, x, s);
}
static dcl_status ref_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) {
    return dcl_ref_add_f32(n, y, a, b);
}
static dcl_status ref_scale_mask(dcl_backend *be, int64_t rows, int64_t cols, float *y, const float *x,
                                 const float *mask, int per_row, float scale) {
    return dcl_ref_scale_mask_f32(rows, cols, y, x, mask, per_row, scale);
}

void dcl_backend_ref_fill(dcl_backend *be) {
    if (!be) return;
    be->supports = ref_supports;
    be->destroy = ref_destroy;
    be->mem_alloc = NULL;
    be->mem_free = NULL;
    be->to_device = NULL;
    be->to_host = NULL;
    be->mem_zero = NULL;
    be->sync = NULL;
    be->conv_fwd = ref_conv_fwd;
    be->conv_bwd_data = ref_conv_bwd_data;
    be->conv_bwd_weights = ref_conv_bwd_weights;
    be->bn_fwd_train = ref_bn_fwd_train;
    be->bn_fwd_infer = ref_bn_fwd_infer;
    be->bn_bwd = ref_bn_bwd;
    be->act_fwd = ref_act_fwd;
    be->act_bwd = ref_act_bwd;
    be->prelu_fwd = ref_prelu_fwd;
    be->prelu_bwd = ref_prelu_bwd;
    be->pool_fwd = ref_pool_fwd;
    be->pool_bwd = ref_pool_bwd;
    be->gap_fwd = ref_gap_fwd;
    be->gap_bwd = ref_gap_bwd;
    be->linear_fwd = ref_linear_fwd;
    be->linear_bwd = ref_linear_bwd;
    be->mul_bcast_fwd = ref_mul_bcast_fwd;
    be->mul_bcast_bwd = ref_mul_bcast_bwd;
    be->add = ref_add;
    be->scale_mask = ref_scale_mask;
}

/* The vtable holds no state, so one shared instance serves every caller. */
static dcl_backend g_ref = {
    .name = "ref",
    .is_host = 1,
    .supports = ref_supports, .destroy = ref_destroy,
    .conv_fwd = ref_conv_fwd, .conv_bwd_data = ref_conv_bwd_data, .conv_bwd_weights = ref_conv_bwd_weights,
    .bn_fwd_train = ref_bn_fwd_train, .bn_fwd_infer = ref_bn_fwd_infer, .bn_bwd = ref_bn_bwd,
    .act_fwd = ref_act_fwd, .act_bwd = ref_act_bwd,
    .prelu_fwd = ref_prelu_fwd, .prelu_bwd = ref_prelu_bwd,
    .pool_fwd = ref_pool_fwd, .pool_bwd = ref_pool_bwd,
    .gap_fwd = ref_gap_fwd, .gap_bwd = ref_gap_bwd,
    .linear_fwd = ref_linear_fwd, .linear_bwd = ref_linear_bwd,
    .mul_bcast_fwd = ref_mul_bcast_fwd, .mul_bcast_bwd = ref_mul_bcast_bwd,
    .add = ref_add, .scale_mask = ref_scale_mask,
};

dcl_backend *dcl_backend_ref(void) { return &g_ref; }
