/* Internal declarations of the CUDA backend (cuDNN 9 + cuBLAS + own kernels).
 *
 * Every entry point sets the backend's device, enqueues its work on the
 * backend's one stream and returns without waiting (sync() waits).  Every
 * CUDA / cuDNN / cuBLAS return code is checked and turned into a dcl_fail
 * message "cuda <op>: <call> failed: <reason>".
 *
 * Storage precision: the kernels store fp32.  bf16 activation storage
 * ("cuda,bf16") runs through the adapter of src/backend/bf16.c around these
 * entries, with the conversion kernels of cuda_elem.cu; the elementwise
 * kernels read and write through cu_ld / cu_st so that native bf16 storage
 * can be added by instantiating them with __nv_bfloat16.
 */
#ifndef DCL_CUDA_INTERNAL_CUH
#define DCL_CUDA_INTERNAL_CUH

#include <cuda_runtime.h>
#include <pthread.h>
#include <cudnn.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <stddef.h>
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"

/* scratch slots (device buffers that grow on demand, reused op to op) */
enum {
    CU_SCR_PAD = 0,   /* explicitly padded conv input / padded dx */
    CU_SCR_WT,        /* conv weights in OHWI order / dw in OHWI order */
    CU_SCR_RED,       /* partial sums of column reductions */
    CU_SCR_TMP,       /* per-channel temporaries (BN backward sums) */
    CU_SCR_COUNT
};

typedef struct cu_buf { void *p; size_t size; } cu_buf;

struct cu_conv_plan;

/* pinned host staging buffer of to_device (two, used in turn) */
typedef struct cu_stage { void *p; size_t size; cudaEvent_t ev; int pending; } cu_stage;

typedef struct cu_impl {
    int device;
    int sm_count;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    dcl_cuda_options opt;
    cu_buf ws;                      /* cuDNN workspace */
    cu_buf scratch[CU_SCR_COUNT];
    struct cu_conv_plan **plans;    /* hash buckets */
    int nbuckets, nplans;
    double plan_seconds;            /* time spent choosing conv algorithms */
    cu_stage stage[2];              /* to_device staging (cuda_backend.cu) */
    int stage_next;
    char name[32];
    pthread_mutex_t lock;           /* recursive; held by every entry (CU_ENTER) */
    int lock_ready;
} cu_impl;

static inline cu_impl *cu_of(dcl_backend *be) { return (cu_impl *)be->impl; }

/* ---- cuBLAS, opened at run time (cu_blas_load, cuda_backend.cu) ----
 * Linking libcublas makes every process map and relocate it at start-up,
 * about 150 MB of resident memory even when no GPU is used; the backend
 * opens it when the first CUDA backend is created instead.  Members carry
 * the library's symbol names; call them as cu_blas.cublasSgemm_v2(...). */
typedef decltype(&cublasCreate_v2) cu_cublasCreate_v2_fn;
typedef decltype(&cublasDestroy_v2) cu_cublasDestroy_v2_fn;
typedef decltype(&cublasSetStream_v2) cu_cublasSetStream_v2_fn;
typedef decltype(&cublasSetPointerMode_v2) cu_cublasSetPointerMode_v2_fn;
typedef decltype(&cublasSetMathMode) cu_cublasSetMathMode_fn;
typedef decltype(&cublasSgemm_v2) cu_cublasSgemm_v2_fn;
typedef decltype(&cublasGetStatusName) cu_cublasGetStatusName_fn;
typedef decltype(&cublasGetStatusString) cu_cublasGetStatusString_fn;
typedef struct cu_blas_api {
    cu_cublasCreate_v2_fn cublasCreate_v2;
    cu_cublasDestroy_v2_fn cublasDestroy_v2;
    cu_cublasSetStream_v2_fn cublasSetStream_v2;
    cu_cublasSetPointerMode_v2_fn cublasSetPointerMode_v2;
    cu_cublasSetMathMode_fn cublasSetMathMode;
    cu_cublasSgemm_v2_fn cublasSgemm_v2;
    cu_cublasGetStatusName_fn cublasGetStatusName;
    cu_cublasGetStatusString_fn cublasGetStatusString;
} cu_blas_api;
extern cu_blas_api cu_blas;
/* Opens cuBLAS once per process (thread-safe); an error names the library
 * and the loader's reason. */
dcl_status cu_blas_load(void);

/* ---- error reporting (cuda_backend.cu) ---- */
dcl_status cu_fail_rt(const char *op, const char *call, cudaError_t e);
dcl_status cu_fail_dnn(const char *op, const char *call, cudnnStatus_t s);
dcl_status cu_fail_blas(const char *op, const char *call, cublasStatus_t s);

#define CU_RT(op, call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) return cu_fail_rt(op, #call, e_); } while (0)
#define CU_DNN(op, call) do { cudnnStatus_t s_ = (call); \
    if (s_ != CUDNN_STATUS_SUCCESS) return cu_fail_dnn(op, #call, s_); } while (0)
#define CU_BLAS(op, call) do { cublasStatus_t s_ = (call); \
    if (s_ != CUBLAS_STATUS_SUCCESS) return cu_fail_blas(op, #call, s_); } while (0)
/* after a kernel launch */
#define CU_LAUNCHED(op, kname) do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) return cu_fail_rt(op, kname " launch", e_); } while (0)
/* argument checks */
#define CU_NEED(op, p) do { if (!(p)) return dcl_fail(DCL_ERR_ARG, "cuda %s: %s is NULL", op, #p); } while (0)
#define CU_NONNEG(op, v) do { if ((v) < 0) return dcl_fail(DCL_ERR_SHAPE, \
    "cuda %s: %s must not be negative (got %lld)", op, #v, (long long)(v)); } while (0)
#define CU_POS(op, v) do { if ((v) <= 0) return dcl_fail(DCL_ERR_SHAPE, \
    "cuda %s: %s must be positive (got %lld)", op, #v, (long long)(v)); } while (0)

/* Makes the backend's device current; every entry point starts with this. */
dcl_status cu_enter(cu_impl *I, const char *op);
/* Several host threads may call one backend: every entry holds the
 * backend's lock while it checks its arguments and queues its work (the
 * scratch and staging buffers, the plan cache and the library handles are
 * shared), so the calls' work runs on the one stream in the order they took
 * the lock.  Recursive: an entry may call another. */
struct cu_guard {
    pthread_mutex_t *m;
    explicit cu_guard(cu_impl *I) : m(I && I->lock_ready ? &I->lock : NULL) { if (m) pthread_mutex_lock(m); }
    ~cu_guard() { if (m) pthread_mutex_unlock(m); }
    cu_guard(const cu_guard &) = delete;
    cu_guard &operator=(const cu_guard &) = delete;
};
#define CU_ENTER(be, op) cu_impl *I = cu_of(be); cu_guard cu_guard_(I); DCL_TRY(cu_enter(I, op))

/* Scratch buffer of at least `bytes` (contents undefined). */
dcl_status cu_scratch(cu_impl *I, int slot, size_t bytes, void **out, const char *op);
/* cuDNN workspace of at least `bytes`. */
dcl_status cu_workspace(cu_impl *I, size_t bytes, void **out, const char *op);

/* ---- launch geometry ---- */
#define CU_THREADS 256
static inline unsigned cu_grid(const cu_impl *I, int64_t n) {
    int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
    int64_t cap = (int64_t)(I->sm_count > 0 ? I->sm_count : 80) * 16;
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    return (unsigned)b;
}
#define CU_FOR(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                          i += (int64_t)gridDim.x * blockDim.x)


/* ---- division by a runtime constant without a divide instruction ----
 * Elementwise kernels over NHWC tensors need i / C and i % C per element;
 * 64-bit (and even 32-bit) integer division is emulated in tens of
 * instructions on the GPU and made such kernels compute-bound.  cu_divmod
 * holds a multiplier and shift (round-up method of Granlund and Montgomery)
 * chosen on the host: q = (umulhi(n, m) + n) >> s is exact for every
 * 0 <= n < 2^31 and divisor 1 <= d < 2^31.  Kernels that use it index with
 * 32 bits, so their callers check cu_small(n) and fall back otherwise. */
typedef struct cu_divmod { unsigned d, m, s; } cu_divmod;

static inline cu_divmod cu_divmod_make(unsigned d) {
    cu_divmod r;
    unsigned s = 0;
    while (s < 32 && (1ull << s) < d) s++;
    r.d = d;
    r.s = s;
    r.m = (unsigned)((((1ull << 32) * ((1ull << s) - d)) / d) + 1);
    return r;
}
__host__ __device__ __forceinline__ unsigned cu_div(const cu_divmod &v, unsigned n) {
#ifdef __CUDA_ARCH__
    const unsigned t = __umulhi(n, v.m);
#else
    const unsigned t = (unsigned)(((unsigned long long)n * v.m) >> 32);
#endif
    return (t + n) >> v.s;
}
__host__ __device__ __forceinline__ unsigned cu_mod(const cu_divmod &v, unsigned n) {
    return n - cu_div(v, n) * v.d;
}
/* 32-bit indexing applies (n elements, plus slack for vector tails) */
static inline int cu_small(int64_t n) { return n >= 0 && n < ((int64_t)1 << 31) - 64; }
#define CU_FOR32(i, n) for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)(n); \
                            i += gridDim.x * blockDim.x)

/* Index type IX of a kernel: unsigned (32-bit, division by cu_divmod) when
 * cu_small(n), int64_t (plain division) otherwise; launch sites pick one. */
template <typename IX> struct cu_idiv;
template <> struct cu_idiv<unsigned> {
    cu_divmod v;
    static cu_idiv make(int64_t d) { cu_idiv r; r.v = cu_divmod_make((unsigned)d); return r; }
    __host__ __device__ __forceinline__ unsigned div(unsigned n) const { return cu_div(v, n); }
    __host__ __device__ __forceinline__ unsigned mod(unsigned n) const { return cu_mod(v, n); }
    __host__ __device__ __forceinline__ unsigned v_d() const { return v.d; }
};
template <> struct cu_idiv<int64_t> {
    int64_t d;
    static cu_idiv make(int64_t dd) { cu_idiv r; r.d = dd; return r; }
    __host__ __device__ __forceinline__ int64_t div(int64_t n) const { return n / d; }
    __host__ __device__ __forceinline__ int64_t mod(int64_t n) const { return n % d; }
    __host__ __device__ __forceinline__ int64_t v_d() const { return d; }
};
#define CU_FORI(IX, i, n) for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < (IX)(n); \
                               i += (IX)gridDim.x * blockDim.x)

/* ---- storage access (bf16 storage would add overloads) ---- */
__device__ __forceinline__ float cu_ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ void cu_st(float *p, int64_t i, float v) { p[i] = v; }

/* bf16 bits of an fp32 value, round to nearest even, NaN stays NaN (quiet):
 * the same function as dcl_f32_to_bf16 (io.h), callable on both sides so
 * that dcl_cuda_bf16_host_selftest checks the device code on the CPU. */
__host__ __device__ __forceinline__ unsigned short cu_f32_bf16_bits(unsigned u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

/* ---- op groups (one .cu file each) ---- */
void cu_install_conv(dcl_backend *be);
void cu_install_norm(dcl_backend *be);    /* batch norm */
void cu_install_elem(dcl_backend *be);    /* act, prelu, gap, mul_bcast, add, scale_mask, optimizers */
void cu_install_pool(dcl_backend *be);
void cu_install_linear(dcl_backend *be);
void cu_install_fused(dcl_backend *be);   /* cuda_fused.cu: bn_stats, bn_act_* (training fusion) */
void cu_conv_plans_free(cu_impl *I);

/* Depthwise convolutions with own kernels (cuda_dwconv.cu); the descriptor
 * is already checked.  cu_dw_applies: groups == ci == co, <= 25 taps, and
 * the depthwise option asks for own kernels in that direction. */
int cu_dw_applies(const cu_impl *I, const dcl_conv_desc *d, int bwd_filter);
/* y = act(conv(x, w) + b (+ y when accumulate)) */
dcl_status cu_dw_fwd(cu_impl *I, const dcl_conv_desc *d, float *y, const float *x, const float *w,
                     const float *b, dcl_act act, int accumulate, const char *op);
dcl_status cu_dw_bwd_data(cu_impl *I, const dcl_conv_desc *d, float *dx, const float *dy, const float *w,
                          const char *op);
dcl_status cu_dw_bwd_weights(cu_impl *I, const dcl_conv_desc *d, float *dw, const float *dy, const float *x,
                             const char *op);

/* Column sums of an (M, C) row-major matrix accumulated into out[c] (+=),
 * used for bias gradients (cuda_norm.cu). */
dcl_status cu_colsum_acc(cu_impl *I, const char *op, int64_t M, int C, float *out, const float *x);

#endif
