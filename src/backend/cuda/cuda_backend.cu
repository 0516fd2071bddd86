/* CUDA backend: construction, memory, scratch buffers, error reporting. */
#include "backend/cuda/cuda_internal.cuh"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dlfcn.h>
#include <pthread.h>

/* ---------------------------------------------------------------------- */
/* errors                                                                 */
/* ---------------------------------------------------------------------- */

/* "cudnnConvolutionForward(h, ...)" -> "cudnnConvolutionForward";
 * "cu_blas.cublasSgemm_v2(...)" -> "cublasSgemm_v2" */
static void call_name(char *dst, size_t n, const char *call) {
    size_t k = 0;
    if (!strncmp(call, "cu_blas.", 8)) call += 8;
    while (call[k] && call[k] != '(' && k + 1 < n) { dst[k] = call[k]; k++; }
    dst[k] = 0;
}

dcl_status cu_fail_rt(const char *op, const char *call, cudaError_t e) {
    char nm[96];
    call_name(nm, sizeof nm, call);
    return dcl_fail(e == cudaErrorMemoryAllocation ? DCL_ERR_NOMEM : DCL_ERR_INTERNAL,
                    "cuda %s: %s failed: %s (%s)", op, nm, cudaGetErrorString(e), cudaGetErrorName(e));
}

dcl_status cu_fail_dnn(const char *op, const char *call, cudnnStatus_t s) {
    char nm[96], detail[256];
    call_name(nm, sizeof nm, call);
    detail[0] = 0;
    cudnnGetLastErrorString(detail, sizeof detail);
    for (char *p = detail; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    return dcl_fail(s == CUDNN_STATUS_ALLOC_FAILED ? DCL_ERR_NOMEM :
                    s == CUDNN_STATUS_NOT_SUPPORTED ? DCL_ERR_UNSUPPORTED : DCL_ERR_INTERNAL,
                    "cuda %s: %s failed: %s%s%s", op, nm, cudnnGetErrorString(s),
                    detail[0] ? ": " : "", detail);
}

dcl_status cu_fail_blas(const char *op, const char *call, cublasStatus_t s) {
    char nm[96];
    call_name(nm, sizeof nm, call);
    return dcl_fail(s == CUBLAS_STATUS_ALLOC_FAILED ? DCL_ERR_NOMEM : DCL_ERR_INTERNAL,
                    "cuda %s: %s failed: %s (%s)", op, nm, cu_blas.cublasGetStatusString(s), cu_blas.cublasGetStatusName(s));
}

/* ---------------------------------------------------------------------- */
/* cuBLAS at run time                                                     */
/* ---------------------------------------------------------------------- */

#define CU_STR2(x) #x
#define CU_STR(x) CU_STR2(x)

cu_blas_api cu_blas;

dcl_status cu_blas_load(void) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int state;            /* 0 not tried, 1 loaded, -1 failed */
    static char why[400];
    pthread_mutex_lock(&mu);
    if (state == 0) {
        /* the major version the backend was compiled against, then the
         * development link name; dlopen searches LD_LIBRARY_PATH and the
         * executable's run path (CUDA's lib64 in this build) */
        const char *names[] = {"libcublas.so." CU_STR(CUBLAS_VER_MAJOR), "libcublas.so"};
        void *h = NULL;
        char err[256] = "";
        for (int i = 0; i < 2 && !h; i++) {
            h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            if (!h && i == 0) snprintf(err, sizeof err, "%s", dlerror());
        }
        cu_blas_api a;
        memset(&a, 0, sizeof a);
        const char *missing = NULL;
#define CU_SYM(f) do { if (h && !missing) { *(void **)&a.f = dlsym(h, #f); if (!a.f) missing = #f; } } while (0)
        CU_SYM(cublasCreate_v2);
        CU_SYM(cublasDestroy_v2);
        CU_SYM(cublasSetStream_v2);
        CU_SYM(cublasSetPointerMode_v2);
        CU_SYM(cublasSetMathMode);
        CU_SYM(cublasSgemm_v2);
        CU_SYM(cublasGetStatusName);
        CU_SYM(cublasGetStatusString);
#undef CU_SYM
        if (!h) {
            snprintf(why, sizeof why, "cannot load cuBLAS (%s): %s", names[0], err);
            state = -1;
        } else if (missing) {
            snprintf(why, sizeof why, "cuBLAS (%s) lacks %s: a different major version than %d?", names[0], missing,
                     (int)CUBLAS_VER_MAJOR);
            dlclose(h);
            state = -1;
        } else {
            cu_blas = a;         /* the library stays open for the process */
            state = 1;
        }
    }
    const int st = state;
    pthread_mutex_unlock(&mu);
    if (st < 0) return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda init: %s", why);
    return DCL_OK;
}

extern "C" dcl_status dcl_cuda_load_blas(void) { return cu_blas_load(); }

dcl_status cu_enter(cu_impl *I, const char *op) {
    if (!I) return dcl_fail(DCL_ERR_ARG, "cuda %s: backend is not a CUDA backend", op);
    CU_RT(op, cudaSetDevice(I->device));
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* scratch                                                                */
/* ---------------------------------------------------------------------- */

static dcl_status grow(cu_impl *I, cu_buf *b, size_t bytes, void **out, const char *op, const char *what) {
    if (bytes == 0) bytes = 256;
    if (b->size < bytes) {
        size_t want = bytes + bytes / 4;                /* some headroom against regrowth */
        want = (want + 4095) & ~(size_t)4095;
        if (b->p) {
            /* work queued on the stream may still read the old buffer */
            CU_RT(op, cudaStreamSynchronize(I->stream));
            CU_RT(op, cudaFree(b->p));
            b->p = NULL;
            b->size = 0;
        }
        cudaError_t e = cudaMalloc(&b->p, want);
        if (e != cudaSuccess) {
            b->p = NULL;
            (void)cudaGetLastError();
            return dcl_fail(DCL_ERR_NOMEM, "cuda %s: cudaMalloc of %zu bytes for the %s failed: %s",
                            op, want, what, cudaGetErrorString(e));
        }
        b->size = want;
    }
    *out = b->p;
    return DCL_OK;
}

dcl_status cu_scratch(cu_impl *I, int slot, size_t bytes, void **out, const char *op) {
    return grow(I, &I->scratch[slot], bytes, out, op, "scratch buffer");
}

dcl_status cu_workspace(cu_impl *I, size_t bytes, void **out, const char *op) {
    return grow(I, &I->ws, bytes, out, op, "cuDNN workspace");
}

/* ---------------------------------------------------------------------- */
/* memory entries                                                         */
/* ---------------------------------------------------------------------- */

static void *cu_mem_alloc(dcl_backend *be, size_t bytes) {
    cu_impl *I = cu_of(be);
    cu_guard guard(I);
    if (cu_enter(I, "mem_alloc") != DCL_OK) return NULL;
    void *p = NULL;
    size_t want = bytes ? bytes : 1;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        dcl_fail(DCL_ERR_NOMEM, "cuda mem_alloc: cudaMalloc of %zu bytes failed: %s (%zu of %zu MiB free on device %d)",
                 want, cudaGetErrorString(e), fr >> 20, tot >> 20, I->device);
        return NULL;
    }
    return p;
}

static void cu_mem_free(dcl_backend *be, void *p) {
    if (!p) return;
    cu_impl *I = cu_of(be);
    cu_guard guard(I);
    if (cu_enter(I, "mem_free") != DCL_OK) return;
    /* cudaFree waits for the device; kernels still queued may read p */
    cudaStreamSynchronize(I->stream);
    cudaFree(p);
    (void)cudaGetLastError();
}

/* Host to device.  The caller may reuse its buffer at once, and a pageable
 * cudaMemcpyAsync would first wait for all queued work.  Copies up to
 * CU_STAGE_MAX bytes instead go through one of two pinned staging buffers
 * (used in turn): the data is copied there on the host and the transfer is
 * queued behind the work already on the stream, so a batch or a dropout
 * mask uploaded while the GPU computes does not stall it.  A staging buffer
 * is refilled only after its previous transfer has completed (its event). */
#define CU_STAGE_MAX ((size_t)128 << 20)

static dcl_status cu_to_device(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    const char *op = "to_device";
    CU_ENTER(be, op);
    if (!bytes) return DCL_OK;
    CU_NEED(op, dst); CU_NEED(op, src);
    if (bytes <= CU_STAGE_MAX) {
        cu_stage *S = &I->stage[I->stage_next];
        if (S->pending) {
            CU_RT(op, cudaEventSynchronize(S->ev));
            S->pending = 0;
        }
        if (!S->ev) CU_RT(op, cudaEventCreateWithFlags(&S->ev, cudaEventDisableTiming));
        if (S->size < bytes) {
            if (S->p) cudaFreeHost(S->p);
            S->p = NULL;
            S->size = 0;
            size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes + bytes / 8;
            if (want > CU_STAGE_MAX) want = CU_STAGE_MAX;
            if (cudaHostAlloc(&S->p, want, cudaHostAllocDefault) == cudaSuccess) S->size = want;
            else { S->p = NULL; (void)cudaGetLastError(); }
        }
        if (S->p) {
            memcpy(S->p, src, bytes);
            CU_RT(op, cudaMemcpyAsync(dst, S->p, bytes, cudaMemcpyHostToDevice, I->stream));
            CU_RT(op, cudaEventRecord(S->ev, I->stream));
            S->pending = 1;
            I->stage_next ^= 1;
            return DCL_OK;
        }
    }
    CU_RT(op, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, I->stream));
    /* the host buffer may be reused as soon as we return */
    CU_RT(op, cudaStreamSynchronize(I->stream));
    return DCL_OK;
}

static dcl_status cu_to_host(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    const char *op = "to_host";
    CU_ENTER(be, op);
    if (!bytes) return DCL_OK;
    CU_NEED(op, dst); CU_NEED(op, src);
    CU_RT(op, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, I->stream));
    CU_RT(op, cudaStreamSynchronize(I->stream));
    return DCL_OK;
}

static dcl_status cu_mem_zero(dcl_backend *be, void *p, size_t bytes) {
    const char *op = "mem_zero";
    CU_ENTER(be, op);
    if (!bytes) return DCL_OK;
    CU_NEED(op, p);
    CU_RT(op, cudaMemsetAsync(p, 0, bytes, I->stream));
    return DCL_OK;
}

static dcl_status cu_sync(dcl_backend *be) {
    const char *op = "sync";
    CU_ENTER(be, op);
    CU_RT(op, cudaStreamSynchronize(I->stream));
    /* errors of kernels that ran asynchronously surface here */
    CU_RT(op, cudaGetLastError());
    return DCL_OK;
}

static int cu_supports(dcl_backend *be, dcl_op op, const void *desc) {
    (void)be; (void)desc;
    return op >= 0 && op < DCL_OP_COUNT;
}

static void cu_destroy(dcl_backend *be) {
    if (!be) return;
    cu_impl *I = cu_of(be);
    if (I) {
        if (cudaSetDevice(I->device) == cudaSuccess) {
            if (I->stream) cudaStreamSynchronize(I->stream);
            cu_conv_plans_free(I);
            for (int i = 0; i < CU_SCR_COUNT; i++) if (I->scratch[i].p) cudaFree(I->scratch[i].p);
            for (int i = 0; i < 2; i++) {
                if (I->stage[i].p) cudaFreeHost(I->stage[i].p);
                if (I->stage[i].ev) cudaEventDestroy(I->stage[i].ev);
            }
            if (I->ws.p) cudaFree(I->ws.p);
            if (I->cublas) cu_blas.cublasDestroy_v2(I->cublas);
            if (I->cudnn) cudnnDestroy(I->cudnn);
            if (I->stream) cudaStreamDestroy(I->stream);
        }
        (void)cudaGetLastError();
        if (I->lock_ready) pthread_mutex_destroy(&I->lock);
        free(I->plans);
        free(I);
    }
    free(be);
}

/* ---------------------------------------------------------------------- */
/* options                                                                */
/* ---------------------------------------------------------------------- */

static void options_from_env(dcl_cuda_options *o) {
    const char *s;
    o->tf32 = 1;                   /* PyTorch's default for cuDNN convolutions */
    o->conv_search = 1;
    o->filter_layout = DCL_CUDA_FILTER_OIHW;
    o->workspace_limit = (size_t)2048 << 20;
    o->depthwise = 1;
    o->dw_vector = 1;
    o->gemm_1x1 = 1;
    if ((s = getenv("DCL_CUDA_TF32")) && *s) o->tf32 = atoi(s) != 0;
    if ((s = getenv("DCL_CUDA_CONV_SEARCH")) && *s) o->conv_search = atoi(s) != 0;
    if ((s = getenv("DCL_CUDA_DW_VECTOR")) && *s) o->dw_vector = atoi(s) != 0;
    if ((s = getenv("DCL_CUDA_GEMM_1X1")) && *s) o->gemm_1x1 = atoi(s) != 0;
    if ((s = getenv("DCL_CUDA_DEPTHWISE")) && *s) {
        const int v = atoi(s);
        if (v >= 0 && v <= 2) o->depthwise = v;
        else dcl_log(1, "DCL_CUDA_DEPTHWISE='%s' not understood (expected 0, 1 or 2); using 1", s);
    }
    if ((s = getenv("DCL_CUDA_FILTER")) && *s) {
        if (strcasecmp(s, "ohwi") == 0 || strcasecmp(s, "nhwc") == 0) o->filter_layout = DCL_CUDA_FILTER_OHWI;
        else if (strcasecmp(s, "oihw") == 0 || strcasecmp(s, "nchw") == 0) o->filter_layout = DCL_CUDA_FILTER_OIHW;
        else dcl_log(1, "DCL_CUDA_FILTER='%s' not understood (expected oihw or ohwi); using oihw", s);
    }
    if ((s = getenv("DCL_CUDA_WORKSPACE_MB")) && *s) {
        long mb = atol(s);
        if (mb >= 0) o->workspace_limit = (size_t)mb << 20;
    }
}

static dcl_status apply_math(cu_impl *I, const char *op) {
    CU_BLAS(op, cu_blas.cublasSetMathMode(I->cublas, I->opt.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return DCL_OK;
}

extern "C" int dcl_backend_is_cuda(const dcl_backend *be) {
    while (be && be->inner) be = be->inner;   /* through adapters (dcl_backend_bf16) */
    return be && be->name && strncmp(be->name, "cuda", 4) == 0 && be->impl && !be->is_host;
}

extern "C" dcl_status dcl_cuda_get_options(dcl_backend *be, dcl_cuda_options *opt) {
    be = dcl_backend_base(be);
    if (!dcl_backend_is_cuda(be)) return dcl_fail(DCL_ERR_ARG, "cuda options: backend is not a CUDA backend");
    if (!opt) return dcl_fail(DCL_ERR_ARG, "cuda options: opt is NULL");
    *opt = cu_of(be)->opt;
    return DCL_OK;
}

extern "C" dcl_status dcl_cuda_set_options(dcl_backend *be, const dcl_cuda_options *opt) {
    be = dcl_backend_base(be);
    if (!dcl_backend_is_cuda(be)) return dcl_fail(DCL_ERR_ARG, "cuda options: backend is not a CUDA backend");
    if (!opt) return dcl_fail(DCL_ERR_ARG, "cuda options: opt is NULL");
    if (opt->filter_layout != DCL_CUDA_FILTER_OIHW && opt->filter_layout != DCL_CUDA_FILTER_OHWI)
        return dcl_fail(DCL_ERR_ARG, "cuda options: filter_layout %d unknown (expected 0 oihw or 1 ohwi)",
                        opt->filter_layout);
    if (opt->depthwise < 0 || opt->depthwise > 2)
        return dcl_fail(DCL_ERR_ARG, "cuda options: depthwise %d unknown (expected 0, 1 or 2)", opt->depthwise);
    CU_ENTER(be, "set_options");
    CU_RT("set_options", cudaStreamSynchronize(I->stream));
    cu_conv_plans_free(I);
    I->opt = *opt;
    I->opt.tf32 = opt->tf32 != 0;
    I->opt.conv_search = opt->conv_search != 0;
    I->opt.dw_vector = opt->dw_vector != 0;
    I->opt.gemm_1x1 = opt->gemm_1x1 != 0;
    return apply_math(I, "set_options");
}

extern "C" dcl_status dcl_cuda_get_stats(dcl_backend *be, dcl_cuda_stats *st) {
    be = dcl_backend_base(be);
    if (!dcl_backend_is_cuda(be)) return dcl_fail(DCL_ERR_ARG, "cuda stats: backend is not a CUDA backend");
    if (!st) return dcl_fail(DCL_ERR_ARG, "cuda stats: st is NULL");
    cu_impl *I = cu_of(be);
    cu_guard guard(I);
    memset(st, 0, sizeof *st);
    st->conv_plans = I->nplans;
    st->plan_seconds = I->plan_seconds;
    st->workspace_bytes = I->ws.size;
    for (int i = 0; i < CU_SCR_COUNT; i++) st->scratch_bytes += I->scratch[i].size;
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* constructor                                                            */
/* ---------------------------------------------------------------------- */

static dcl_status cu_init(cu_impl *I, int device) {
    const char *op = "init";
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return dcl_fail(DCL_ERR_UNSUPPORTED, "no CUDA device: %s", cudaGetErrorString(e));
    }
    if (count <= 0) return dcl_fail(DCL_ERR_UNSUPPORTED, "no CUDA device: cudaGetDeviceCount found none");
    if (device < 0 || device >= count)
        return dcl_fail(DCL_ERR_ARG, "no CUDA device: device %d out of range (found %d device%s, 0..%d)",
                        device, count, count == 1 ? "" : "s", count - 1);
    I->device = device;
    CU_RT(op, cudaSetDevice(device));
    cudaDeviceProp prop;
    CU_RT(op, cudaGetDeviceProperties(&prop, device));
    I->sm_count = prop.multiProcessorCount;
    size_t ver = cudnnGetVersion();
    if (ver / 10000 != CUDNN_MAJOR)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "cuda init: cuDNN runtime version %zu does not match the headers (%d.%d)",
                        ver, CUDNN_MAJOR, CUDNN_MINOR);
    CU_RT(op, cudaStreamCreateWithFlags(&I->stream, cudaStreamNonBlocking));
    CU_DNN(op, cudnnCreate(&I->cudnn));
    CU_DNN(op, cudnnSetStream(I->cudnn, I->stream));
    DCL_TRY(cu_blas_load());
    CU_BLAS(op, cu_blas.cublasCreate_v2(&I->cublas));
    CU_BLAS(op, cu_blas.cublasSetStream_v2(I->cublas, I->stream));
    CU_BLAS(op, cu_blas.cublasSetPointerMode_v2(I->cublas, CUBLAS_POINTER_MODE_HOST));
    options_from_env(&I->opt);
    DCL_TRY(apply_math(I, op));
    dcl_log(2, "cuda: device %d %s (sm_%d%d, %d SMs, %.1f GiB), cuDNN %zu, %s math", device, prop.name,
            prop.major, prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, ver,
            I->opt.tf32 ? "TF32" : "fp32");
    return DCL_OK;
}

extern "C" dcl_backend *dcl_backend_cuda(int device) {
    dcl_backend *be = (dcl_backend *)calloc(1, sizeof *be);
    cu_impl *I = (cu_impl *)calloc(1, sizeof *I);
    if (!be || !I) {
        free(be); free(I);
        dcl_fail(DCL_ERR_NOMEM, "cuda backend: out of host memory");
        return NULL;
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    I->lock_ready = pthread_mutex_init(&I->lock, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    dcl_status s = cu_init(I, device);
    if (s != DCL_OK) {
        /* keep the message of the failure; release what was made */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dcl_last_error());
        be->impl = I;
        be->name = "cuda";
        cu_destroy(be);
        dcl_fail(s, "%s", msg);
        return NULL;
    }
    snprintf(I->name, sizeof I->name, "cuda:%d", device);
    be->name = I->name;
    be->impl = I;
    be->is_host = 0;
    be->supports = cu_supports;
    be->destroy = cu_destroy;
    be->mem_alloc = cu_mem_alloc;
    be->mem_free = cu_mem_free;
    be->to_device = cu_to_device;
    be->to_host = cu_to_host;
    be->mem_zero = cu_mem_zero;
    be->sync = cu_sync;
    cu_install_conv(be);
    cu_install_norm(be);
    cu_install_elem(be);
    cu_install_pool(be);
    cu_install_linear(be);
    cu_install_fused(be);
    return be;
}
