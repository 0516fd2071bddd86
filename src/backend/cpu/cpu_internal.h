/* Internal declarations of the optimised CPU backend ("cpu"): oneDNN for
 * convolutions, OpenMP-parallel vector loops for everything else.  Not part
 * of the public API. */
#ifndef DCL_BACKEND_CPU_INTERNAL_H
#define DCL_BACKEND_CPU_INTERNAL_H
#include "backend/backend.h"
#include <pthread.h>
#include <oneapi/dnnl/dnnl.h>

/* Memory-format policy for one convolution direction. */
typedef enum cpu_layout {
    CPU_LAYOUT_AUTO = 0,    /* per-kind table measured on the target machines */
    CPU_LAYOUT_NHWC = 1,    /* primitive works directly on the NHWC user memory */
    CPU_LAYOUT_BLOCKED = 2, /* primitive picks its layout (format any) + reorders */
    CPU_LAYOUT_DIRECT = 3   /* own NHWC kernels (depthwise only; others as NHWC) */
} cpu_layout;

enum { CPU_CONV_FWD = 0, CPU_CONV_BWD_DATA = 1, CPU_CONV_BWD_W = 2 };

/* How a pointwise convolution (1x1, stride 1, no padding, one group) runs:
 * the rule of cpu_conv.c (AUTO), always oneDNN's convolution, or always a
 * matrix product on the NHWC data (oneDNN's sgemm). */
enum { CPU_PW_AUTO = 0, CPU_PW_CONV = 1, CPU_PW_GEMM = 2 };

typedef struct cpu_conv_plan cpu_conv_plan;

typedef struct cpu_impl {
    int nt;                       /* OpenMP threads used by every kernel */
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    cpu_layout layout_force;      /* DCL_CPU_CONV_LAYOUT override, AUTO = table */
    int pw_force;                 /* DCL_CPU_1X1 override: CPU_PW_AUTO, _CONV or _GEMM */
    size_t stream_min;            /* outputs of at least this many bytes use streaming stores (0: never) */
    int stem_own;                 /* the stem's weight gradient on cpu_stem.c (default; DCL_CPU_STEM=onednn: oneDNN) */
    pthread_mutex_t lock;         /* serialises convolutions (shared caches) */
    cpu_conv_plan *buckets[256];  /* primitive cache, hashed by descriptor */
    int nplans;
    void *ws;                     /* shared workspace: scratchpads, reordered tensors */
    size_t ws_cap;
} cpu_impl;

static inline cpu_impl *cpu_of(dcl_backend *be) { return (cpu_impl *)be->impl; }

/* convolutions (cpu_conv.c) */
dcl_status cpu_conv_fwd(dcl_backend *be, const dcl_conv_desc *d,
                        float *y, const float *x, const float *w, const float *b);
dcl_status cpu_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act,
                            float *y, const float *x, const float *w, const float *b);
dcl_status cpu_conv_fwd_add(dcl_backend *be, const dcl_conv_desc *d,
                            float *y, const float *x, const float *w, const float *b);
dcl_status cpu_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d,
                             float *dx, const float *dy, const float *w);
dcl_status cpu_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d,
                                float *dw, float *db, const float *dy, const float *x);
void cpu_conv_cache_free(cpu_impl *c);
/* Name of the oneDNN implementation and the chosen layouts for a descriptor
 * and direction (creates the plan when needed); for benchmarks and logs. */
const char *cpu_conv_plan_info(dcl_backend *be, const dcl_conv_desc *d, int dir);
/* How a convolution in direction dir runs: CPU_PW_GEMM (a pointwise one
 * as oneDNN's sgemm on the NHWC data) or CPU_PW_CONV (oneDNN's convolution
 * or the other kernels of cpu_conv.c): its rule or the DCL_CPU_1X1
 * override. */
int cpu_conv_pw_impl(const cpu_impl *c, const dcl_conv_desc *d, int dir, int bias);
/* Layout chosen for a descriptor and direction (after the override); may
 * build the oneDNN plan to see which implementation it gets. */
cpu_layout cpu_conv_layout(cpu_impl *c, const dcl_conv_desc *d, int dir);

/* depthwise convolutions on NHWC without oneDNN (cpu_dwconv.c) */
int cpu_dw_handles(const dcl_conv_desc *d);
dcl_status cpu_dw_fwd(int nt, const dcl_conv_desc *d, float *y, const float *x, const float *w, const float *b);
dcl_status cpu_dw_bwd_data(int nt, const dcl_conv_desc *d, float *dx, const float *dy, const float *w);
dcl_status cpu_dw_bwd_weights(int nt, const dcl_conv_desc *d, float *dw, float *db, const float *dy,
                              const float *x);
/* stride 1, 5x5, padding at most 4 per side: the register-blocked kernel
 * cpu_dw_fwd and cpu_dw_bwd_data use for these shapes */
int cpu_dw_s1_handles(const dcl_conv_desc *d);
/* cpu_dw_fwd_rows' input: row `row` (sample n * Hi + input row) of the
 * convolution's input into ring (normal stores) and, where a is not NULL,
 * into a (streaming stores when st) */
typedef void (*cpu_dw_in_fn)(const void *arg, int64_t row, float *ring, float *a, int st);
dcl_status cpu_dw_fwd_rows(int nt, const dcl_conv_desc *d, float *y, float *a, const float *w, const float *b,
                           cpu_dw_in_fn fn, const void *arg);
/* an output (n, h, w, C) large enough (4 MB) for the own depthwise kernels'
 * streaming stores and prefetch of the rows ahead */
int cpu_dw_big(int n, int h, int w, int C);
/* cpu_stem.c: weight gradient of dense convolutions with few input taps
 * (ci <= 4, ci * kh * kw <= 48, co a multiple of the vector width, <= 128):
 * the EfficientNet stem */
int cpu_stem_handles(const dcl_conv_desc *d);
dcl_status cpu_stem_bwd_weights(int nt, const dcl_conv_desc *d, float *dw, float *db, const float *dy,
                                const float *x);

/* elementwise, normalisation, pooling, linear (cpu_kernels.c) */
/* y (m, n) = op(a) op(b) + beta y split over nt threads by y's rows (cols 0)
 * or columns (cols 1), one single-threaded oneDNN sgemm each */
dcl_status cpu_sgemm_split(int nt, int cols, char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float beta, float *y, int64_t ldy);
dcl_status cpu_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                            float *invstd, const float *x, const float *gamma, const float *beta, float eps);
dcl_status cpu_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                            const float *gamma, const float *beta, const float *rmean,
                            const float *rvar, float eps);
dcl_status cpu_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                      const float *dy, const float *x, const float *mean, const float *invstd,
                      const float *gamma);
/* fused batch norm + activation (the backend vtable's bn_stats, bn_act_*) */
dcl_status cpu_bn_stats(dcl_backend *be, int64_t M, int C, float *mean, float *var, float *invstd,
                        const float *x, float eps);
dcl_status cpu_bn_act_fwd(dcl_backend *be, int N, int HW, int C, dcl_act act, float *y, float *gmean,
                          const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta, const float *s);
dcl_status cpu_bn_act_bwd_reduce(dcl_backend *be, int N, int HW, int C, dcl_act act, float *sdy, float *sdyx,
                                 float *dgamma, float *dbeta, float *d, const float *dy, const float *x, const float *mean,
                                 const float *invstd, const float *gamma, const float *beta, const float *s,
                                 const float *dgap);
dcl_status cpu_bn_act_bwd_dx(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx, const float *d, const float *dy,
                             const float *x, const float *mean, const float *invstd, const float *gamma,
                             const float *beta, const float *s, const float *dgap, const float *sdy,
                             const float *sdyx, int64_t Mt);
dcl_status cpu_bn_act_se_sums(dcl_backend *be, int N, int HW, int C, dcl_act act, float *ds, float *t,
                              const float *dy, const float *x, const float *mean, const float *invstd,
                              const float *gamma, const float *beta);
int cpu_pw_fused_pays(dcl_backend *be, int what, int64_t rows, int C, int K);
dcl_status cpu_bn_stats_pw(dcl_backend *be, int64_t rows, int Ci, int C, float *mean, float *var, float *invstd,
                           const float *xin, const float *w, float eps);
int cpu_bn_act_dw_pays(dcl_backend *be, const dcl_conv_desc *d);
dcl_status cpu_bn_act_dw_fwd(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y, float *a, const float *x,
                             const float *mean, const float *invstd, const float *gamma, const float *beta,
                             const float *w, const float *bias);
dcl_status cpu_se_pw_bwd(dcl_backend *be, int N, int HW, int C, int O, dcl_act act, float *dm, float *dw, float *ds,
                         float *t, const float *dy, const float *w, const float *x, const float *mean,
                         const float *invstd, const float *gamma, const float *beta, const float *s);
dcl_status cpu_bn_dx_pw_bwd(dcl_backend *be, int64_t rows, int C, int Ci, float *dxin, int acc, float *dw,
                            const float *d, const float *x, const float *mean, const float *invstd,
                            const float *gamma, const float *sdy, const float *sdyx, int64_t Mt, const float *w,
                            const float *xin);
dcl_status cpu_bn_act_dot(dcl_backend *be, int N, int HW, int C, dcl_act act, float *out, const float *dy,
                          const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta);
dcl_status cpu_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x);
dcl_status cpu_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy,
                       const float *x, const float *y);
dcl_status cpu_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha);
dcl_status cpu_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha,
                         const float *dy, const float *x, const float *alpha);
dcl_status cpu_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x);
dcl_status cpu_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy,
                        const float *x, const float *y);
dcl_status cpu_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x);
dcl_status cpu_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy);
dcl_status cpu_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x,
                          const float *w, const float *b);
dcl_status cpu_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                          const float *dy, const float *x, const float *w);
dcl_status cpu_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x,
                             const float *s);
dcl_status cpu_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds,
                             const float *dy, const float *x, const float *s);
dcl_status cpu_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b);
dcl_status cpu_scale_mask(dcl_backend *be, int64_t rows, int64_t cols, float *y, const float *x,
                          const float *mask, int per_row, float scale);

/* optimiser steps (cpu_optim.c): the backend vtable's adam and sgd */
dcl_status cpu_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad, float lr,
                    float b1, float b2, float eps, float wd, int decoupled, float bc1, float bc2);
dcl_status cpu_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad, float lr,
                   float momentum, float wd, int nesterov, int first_step);

/* Small dense helpers shared by the kernels and the convolution code.
 * y (M,O) = x (M,K) W^T (+ b) ; W (O,K).  Used for 1x1 convolutions on 1x1
 * maps (squeeze-excitation) where a oneDNN primitive costs more than the work. */
void cpu_small_gemm_xwt(int nt, int M, int K, int O, float *y, const float *x, const float *w,
                        const float *b);
/* dx (M,K) = dy (M,O) W (O,K) */
void cpu_small_gemm_dyw(int nt, int M, int K, int O, float *dx, const float *dy, const float *w);
/* dw (O,K) += dy^T (O,M) x (M,K) ; db (O) += column sums of dy (when db) */
void cpu_small_gemm_dw(int nt, int M, int K, int O, float *dw, float *db, const float *dy,
                       const float *x);

/* exp(x) for x in float range with relative error below 1e-6 (vectorisable) */
float cpu_expf_ref(float x);

#endif
