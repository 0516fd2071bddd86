/* CUDA backend extras beyond the backend vtable (src/backend/backend.h).
 * The functions exist only in builds with DCL_HAVE_CUDA; the backend itself
 * is created with dcl_backend_cuda(device) or dcl_backend_create("cuda:N").
 *
 * Precision policy: storage and every own kernel are fp32.  Convolutions
 * and matrix products may use TF32 tensor cores (10-bit mantissa products,
 * fp32 accumulation) by default, as PyTorch does for cuDNN convolutions;
 * tf32 = 0 restricts cuDNN to FMA kernels and cuBLAS to default math, so
 * results match the reference backend to rounding (the tests run so).
 *
 * Environment (read when the backend is created):
 *   DCL_CUDA_TF32=0|1          strict fp32 / allow TF32 (default 1)
 *   DCL_CUDA_CONV_SEARCH=0     pick conv algorithms by cuDNN's heuristics
 *                              instead of timing them (cudnnFind*)
 *   DCL_CUDA_FILTER=oihw|ohwi  weight layout handed to cuDNN first
 *   DCL_CUDA_WORKSPACE_MB=N    largest cuDNN workspace an algorithm may use
 *   DCL_CUDA_DEPTHWISE=0|1|2   depthwise convolutions: 0 cuDNN only, 1 own kernels
 *                              for forward and backward data (default), 2 own
 *                              kernels for backward filter too
 *   DCL_CUDA_DW_VECTOR=0       own depthwise kernels one channel per thread
 *   DCL_CUDA_GEMM_1X1=0        squeeze-excitation 1x1 convolutions through cuDNN
 */
#ifndef DCL_CUDA_BACKEND_H
#define DCL_CUDA_BACKEND_H
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_cuda_filter_layout {
    DCL_CUDA_FILTER_OIHW = 0,  /* weights as stored (cuDNN NCHW filter format) */
    DCL_CUDA_FILTER_OHWI = 1   /* transposed copy per call (cuDNN NHWC filter format) */
} dcl_cuda_filter_layout;

typedef struct dcl_cuda_options {
    int tf32;                  /* 1: TF32 tensor cores allowed (default); 0: strict fp32 */
    int conv_search;           /* 1: time candidate algorithms once per shape (default); 0: heuristics */
    int filter_layout;         /* dcl_cuda_filter_layout tried first; the other is the fallback */
    size_t workspace_limit;    /* bytes; algorithms needing more are skipped */
    int depthwise;             /* depthwise convs (groups == ci == co, at most 25 taps):
                                  0: cuDNN; 1: own kernels for forward and backward data
                                  (default); 2: own kernels for backward filter too */
    int dw_vector;             /* 1: own depthwise kernels read 4 channels at once where
                                  C % 4 == 0 (default); 0: one channel per thread */
    int gemm_1x1;              /* 1: 1x1 convolutions on 1x1 maps (squeeze-excitation)
                                  run as cuBLAS matrix products (default); 0: cuDNN */
} dcl_cuda_options;

/* Host-side check of the depthwise kernels' per-element code (index
 * decomposition, taps, padding, stride, dilation, the 4-channel path)
 * against a direct double-precision convolution; runs without a GPU.
 * Returns the number of mismatches (0 = pass) and describes the first in
 * msg. */
int dcl_cuda_dw_host_selftest(char *msg, size_t n);

/* Host-side check of the bf16 conversion used by the device kernels
 * (cvt_f32_bf16) against dcl_f32_to_bf16 over every 13th fp32 bit pattern;
 * runs without a GPU.  Returns the number of mismatches (0 = pass). */
int dcl_cuda_bf16_host_selftest(char *msg, size_t n);

/* Opens cuBLAS (done by dcl_backend_cuda on first use; the library is not
 * linked, so processes that never use a GPU do not load it).  Works
 * without a GPU. */
dcl_status dcl_cuda_load_blas(void);

/* 1 when be was made by dcl_backend_cuda, or is an adapter over one
 * (dcl_backend_bf16); the dcl_cuda_* functions below accept both. */
int dcl_backend_is_cuda(const dcl_backend *be);
dcl_status dcl_cuda_get_options(dcl_backend *be, dcl_cuda_options *opt);
/* Changes the options; forgets every cached convolution plan. */
dcl_status dcl_cuda_set_options(dcl_backend *be, const dcl_cuda_options *opt);

/* Statistics of the convolution plan cache. */
typedef struct dcl_cuda_stats {
    int conv_plans;            /* cached plans (one per distinct dcl_conv_desc) */
    double plan_seconds;       /* time spent choosing algorithms */
    size_t workspace_bytes;    /* current cuDNN workspace */
    size_t scratch_bytes;      /* padding / transposition / reduction scratch */
} dcl_cuda_stats;
dcl_status dcl_cuda_get_stats(dcl_backend *be, dcl_cuda_stats *st);

/* Describes how a convolution is run (algorithms, filter layout, explicit
 * padding) into buf; the plan is created when missing.  For logs and tests. */
dcl_status dcl_cuda_conv_describe(dcl_backend *be, const dcl_conv_desc *d, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
