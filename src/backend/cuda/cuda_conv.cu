/* Convolutions through cuDNN (legacy convolution API of cuDNN 9).
 *
 * Activations are NHWC tensors (cudnnSetTensor4dDescriptor with
 * CUDNN_TENSOR_NHWC).  Weights are OIHW, handed to cuDNN either as they are
 * (filter format CUDNN_TENSOR_NCHW) or as a transposed OHWI copy (filter
 * format CUDNN_TENSOR_NHWC); each direction picks the layout for which an
 * algorithm exists, the configured one first.
 *
 * One plan per distinct dcl_conv_desc, kept in a hash table: descriptors,
 * and per direction (forward, backward data, backward filter) the chosen
 * algorithm, its math type and workspace size, chosen the first time that
 * direction runs (timed with cudnnFind* or from cudnnGet*_v7 heuristics).
 *
 * Asymmetric padding (TensorFlow "same": bottom/right may exceed top/left by
 * one) is not expressible in cuDNN.  The symmetric part min(pt,pb) /
 * min(pl,pr) is given to cuDNN; the excess rows/columns are materialised:
 * forward and backward-filter read an explicitly padded copy of x, backward
 * data writes a padded dx that is then cropped.  Symmetric convolutions run
 * on the caller's buffers directly.
 *
 * Depthwise convolutions (groups == ci == co) go to own kernels instead
 * (cuda_dwconv.cu) unless the depthwise option is off.
 *
 * Bias: forward adds it with a kernel; db (+=) is a column reduction of dy.
 * dw accumulates: backward filter runs with beta = 1 on OIHW weights, or
 * into scratch and is added back when the OHWI layout is in use.
 */
#include "backend/cuda/cuda_internal.cuh"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DIR_FWD = 0, DIR_BWD_DATA = 1, DIR_BWD_FILTER = 2, DIR_COUNT = 3 };
static const char *dir_name[DIR_COUNT] = {"forward", "backward data", "backward filter"};

typedef struct cu_dir {
    int ready;
    int ohwi;                   /* filter layout used */
    int algo;                   /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;
    size_t ws;
} cu_dir;

typedef struct cu_conv_plan {
    dcl_conv_desc key;
    int ph, pw;                 /* symmetric padding given to cuDNN */
    int et, eb, el, er;         /* excess padding materialised in scratch */
    int hp, wp;                 /* input size seen by cuDNN */
    int padded;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd[2];  /* [0] OIHW (NCHW format), [1] OHWI (NHWC format) */
    cudnnConvolutionDescriptor_t cd;
    cu_dir dir[DIR_COUNT];
    struct cu_conv_plan *next;
} cu_conv_plan;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------- */
/* descriptor checks and the plan cache                                   */
/* ---------------------------------------------------------------------- */

static dcl_status conv_check(const char *op, const dcl_conv_desc *d) {
    if (!d) return dcl_fail(DCL_ERR_ARG, "cuda %s: descriptor is NULL", op);
    if (d->n <= 0 || d->ci <= 0 || d->hi <= 0 || d->wi <= 0 || d->co <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: sizes must be positive (input n=%d c=%d h=%d w=%d, output c=%d)",
                        op, d->n, d->ci, d->hi, d->wi, d->co);
    if (d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->dh <= 0 || d->dw <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: kernel %dx%d, stride %dx%d and dilation %dx%d must be positive",
                        op, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw);
    if (d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: negative padding (top %d bottom %d left %d right %d)",
                        op, d->pt, d->pb, d->pl, d->pr);
    if (d->groups <= 0 || d->ci % d->groups || d->co % d->groups)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: channels %d->%d not divisible by groups %d",
                        op, d->ci, d->co, d->groups);
    const int ho = (d->hi + d->pt + d->pb - d->dh * (d->kh - 1) - 1) / d->sh + 1;
    const int wo = (d->wi + d->pl + d->pr - d->dw * (d->kw - 1) - 1) / d->sw + 1;
    if (ho != d->ho || wo != d->wo || ho <= 0 || wo <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "cuda %s: output %dx%d does not match input %dx%d with kernel %dx%d, "
                        "stride %dx%d, dilation %dx%d, padding %d/%d/%d/%d (expected %dx%d; call dcl_conv_desc_finish)",
                        op, d->ho, d->wo, d->hi, d->wi, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw,
                        d->pt, d->pb, d->pl, d->pr, ho, wo);
    return DCL_OK;
}

static int same_key(const dcl_conv_desc *a, const dcl_conv_desc *b) {
    return a->n == b->n && a->ci == b->ci && a->hi == b->hi && a->wi == b->wi && a->co == b->co &&
           a->kh == b->kh && a->kw == b->kw && a->sh == b->sh && a->sw == b->sw && a->dh == b->dh &&
           a->dw == b->dw && a->pt == b->pt && a->pb == b->pb && a->pl == b->pl && a->pr == b->pr &&
           a->groups == b->groups;
}

static uint64_t key_hash(const dcl_conv_desc *d) {
    const int v[16] = {d->n, d->ci, d->hi, d->wi, d->co, d->kh, d->kw, d->sh,
                       d->sw, d->dh, d->dw, d->pt, d->pb, d->pl, d->pr, d->groups};
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++) { h ^= (uint32_t)v[i]; h *= 1099511628211ull; }
    return h;
}

static void plan_free(cu_conv_plan *p) {
    if (!p) return;
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    for (int i = 0; i < 2; i++) if (p->wd[i]) cudnnDestroyFilterDescriptor(p->wd[i]);
    if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
    free(p);
}

void cu_conv_plans_free(cu_impl *I) {
    for (int b = 0; b < I->nbuckets; b++) {
        cu_conv_plan *p = I->plans[b];
        while (p) { cu_conv_plan *n = p->next; plan_free(p); p = n; }
        I->plans[b] = NULL;
    }
    I->nplans = 0;
}

static dcl_status plan_init(cu_conv_plan *p, const dcl_conv_desc *d, const char *op) {
    p->key = *d;
    p->ph = d->pt < d->pb ? d->pt : d->pb;
    p->pw = d->pl < d->pr ? d->pl : d->pr;
    p->et = d->pt - p->ph; p->eb = d->pb - p->ph;
    p->el = d->pl - p->pw; p->er = d->pr - p->pw;
    p->hp = d->hi + p->et + p->eb;
    p->wp = d->wi + p->el + p->er;
    p->padded = p->et || p->eb || p->el || p->er;
    const int cig = d->ci / d->groups;
    CU_DNN(op, cudnnCreateTensorDescriptor(&p->xd));
    CU_DNN(op, cudnnCreateTensorDescriptor(&p->yd));
    CU_DNN(op, cudnnCreateFilterDescriptor(&p->wd[0]));
    CU_DNN(op, cudnnCreateFilterDescriptor(&p->wd[1]));
    CU_DNN(op, cudnnCreateConvolutionDescriptor(&p->cd));
    CU_DNN(op, cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, d->n, d->ci, p->hp, p->wp));
    CU_DNN(op, cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, d->n, d->co, d->ho, d->wo));
    CU_DNN(op, cudnnSetFilter4dDescriptor(p->wd[0], CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->co, cig, d->kh, d->kw));
    CU_DNN(op, cudnnSetFilter4dDescriptor(p->wd[1], CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, d->co, cig, d->kh, d->kw));
    CU_DNN(op, cudnnSetConvolution2dDescriptor(p->cd, p->ph, p->pw, d->sh, d->sw, d->dh, d->dw,
                                               CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CU_DNN(op, cudnnSetConvolutionGroupCount(p->cd, d->groups));
    int on, oc, oh, ow;
    CU_DNN(op, cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd[0], &on, &oc, &oh, &ow));
    if (on != d->n || oc != d->co || oh != d->ho || ow != d->wo)
        return dcl_fail(DCL_ERR_INTERNAL, "cuda %s: cuDNN computes output %dx%dx%dx%d for the padded input, expected %dx%dx%dx%d",
                        op, on, oc, oh, ow, d->n, d->co, d->ho, d->wo);
    return DCL_OK;
}

static dcl_status plan_get(cu_impl *I, const dcl_conv_desc *d, const char *op, cu_conv_plan **out) {
    if (!I->plans) {
        I->nbuckets = 256;
        I->plans = (cu_conv_plan **)calloc((size_t)I->nbuckets, sizeof *I->plans);
        if (!I->plans) return dcl_fail(DCL_ERR_NOMEM, "cuda %s: out of host memory for the plan cache", op);
    }
    const uint64_t h = key_hash(d);
    cu_conv_plan **bucket = &I->plans[h % (uint64_t)I->nbuckets];
    for (cu_conv_plan *p = *bucket; p; p = p->next)
        if (same_key(&p->key, d)) { *out = p; return DCL_OK; }
    cu_conv_plan *p = (cu_conv_plan *)calloc(1, sizeof *p);
    if (!p) return dcl_fail(DCL_ERR_NOMEM, "cuda %s: out of host memory for a conv plan", op);
    dcl_status s = plan_init(p, d, op);
    if (s != DCL_OK) { plan_free(p); return s; }
    p->next = *bucket;
    *bucket = p;
    I->nplans++;
    *out = p;
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* algorithm choice                                                       */
/* ---------------------------------------------------------------------- */

/* One perf result, whatever the direction. */
typedef struct perf_row { int algo; cudnnStatus_t status; float time; size_t memory; cudnnMathType_t math; } perf_row;

static int math_allowed(const cu_impl *I, cudnnMathType_t m) {
    if (I->opt.tf32) return 1;
    return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

/* Lists candidate algorithms of one direction for one filter layout, best first. */
static cudnnStatus_t list_algos(cu_impl *I, cu_conv_plan *p, int dir, int ohwi, perf_row *rows, int *count) {
    cudnnFilterDescriptor_t wd = p->wd[ohwi];
    cudnnStatus_t st;
    int n = 0;
    *count = 0;
    if (dir == DIR_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        st = I->opt.conv_search
           ? cudnnFindConvolutionForwardAlgorithm(I->cudnn, p->xd, wd, p->cd, p->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r)
           : cudnnGetConvolutionForwardAlgorithm_v7(I->cudnn, p->xd, wd, p->cd, p->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++) {
            perf_row t = {(int)r[i].algo, r[i].status, r[i].time, r[i].memory, r[i].mathType};
            rows[i] = t;
        }
    } else if (dir == DIR_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        st = I->opt.conv_search
           ? cudnnFindConvolutionBackwardDataAlgorithm(I->cudnn, wd, p->yd, p->cd, p->xd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r)
           : cudnnGetConvolutionBackwardDataAlgorithm_v7(I->cudnn, wd, p->yd, p->cd, p->xd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++) {
            perf_row t = {(int)r[i].algo, r[i].status, r[i].time, r[i].memory, r[i].mathType};
            rows[i] = t;
        }
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        st = I->opt.conv_search
           ? cudnnFindConvolutionBackwardFilterAlgorithm(I->cudnn, p->xd, p->yd, p->cd, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r)
           : cudnnGetConvolutionBackwardFilterAlgorithm_v7(I->cudnn, p->xd, p->yd, p->cd, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++) {
            perf_row t = {(int)r[i].algo, r[i].status, r[i].time, r[i].memory, r[i].mathType};
            rows[i] = t;
        }
    }
    if (st == CUDNN_STATUS_SUCCESS) *count = n;
    return st;
}

static cudnnStatus_t ws_size(cu_impl *I, cu_conv_plan *p, int dir, int ohwi, int algo, size_t *ws) {
    cudnnFilterDescriptor_t wd = p->wd[ohwi];
    if (dir == DIR_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(I->cudnn, p->xd, wd, p->cd, p->yd,
                                                       (cudnnConvolutionFwdAlgo_t)algo, ws);
    if (dir == DIR_BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(I->cudnn, wd, p->yd, p->cd, p->xd,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, ws);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(I->cudnn, p->xd, p->yd, p->cd, wd,
                                                          (cudnnConvolutionBwdFilterAlgo_t)algo, ws);
}

/* Chooses the algorithm of one direction.  With the search on, both filter
 * layouts are timed (cudnnFind*) and the fastest usable algorithm of either
 * wins (an OHWI filter costs one small transposition per call); with
 * heuristics only, the configured layout's first usable algorithm wins and
 * the other layout is the fallback. */
static dcl_status plan_dir(cu_impl *I, cu_conv_plan *p, int dir, const char *op) {
    cu_dir *D = &p->dir[dir];
    if (D->ready) return DCL_OK;
    const double t0 = now_s();
    const int first = I->opt.filter_layout == DCL_CUDA_FILTER_OHWI ? 1 : 0;
    char why[400];
    why[0] = 0;
    cu_dir best;
    memset(&best, 0, sizeof best);
    float best_time = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (best.ready && !I->opt.conv_search) break;
        const int ohwi = attempt == 0 ? first : !first;
        const cudnnMathType_t want = I->opt.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
        CU_DNN(op, cudnnSetConvolutionMathType(p->cd, want));
        perf_row rows[8];
        int n = 0;
        cudnnStatus_t st = list_algos(I, p, dir, ohwi, rows, &n);
        if (st != CUDNN_STATUS_SUCCESS) {
            char detail[200];
            detail[0] = 0;
            cudnnGetLastErrorString(detail, sizeof detail);
            for (char *c = detail; *c; c++) if (*c == '\n') *c = ' ';
            snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s filter: %s %s", why[0] ? "; " : "",
                     ohwi ? "OHWI" : "OIHW", cudnnGetErrorString(st), detail);
            (void)cudaGetLastError();
            continue;
        }
        int found = 0;
        for (int i = 0; i < n && !found; i++) {
            if (rows[i].status != CUDNN_STATUS_SUCCESS || !math_allowed(I, rows[i].math)) continue;
            if (rows[i].memory > I->opt.workspace_limit) continue;
            const cudnnMathType_t m = I->opt.tf32 ? rows[i].math : CUDNN_FMA_MATH;
            if (cudnnSetConvolutionMathType(p->cd, m) != CUDNN_STATUS_SUCCESS) continue;
            size_t ws = 0;
            if (ws_size(I, p, dir, ohwi, rows[i].algo, &ws) != CUDNN_STATUS_SUCCESS) continue;
            if (ws > I->opt.workspace_limit) continue;
            found = 1;
            if (best.ready && rows[i].time >= best_time) break;
            best.ohwi = ohwi;
            best.algo = rows[i].algo;
            best.math = m;
            best.ws = ws;
            best.ready = 1;
            best_time = rows[i].time;
        }
        if (!found)
            snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s filter: none of %d candidates usable",
                     why[0] ? "; " : "", ohwi ? "OHWI" : "OIHW", n);
    }
    (void)cudaGetLastError();
    I->plan_seconds += now_s() - t0;
    if (best.ready) {
        *D = best;
        dcl_log(3, "cuda conv %dx%dx%dx%d -> %d k%dx%d s%dx%d g%d %s: algo %d (%s filter, %s, %zu B workspace, %.3f ms)",
                p->key.n, p->key.ci, p->key.hi, p->key.wi, p->key.co, p->key.kh, p->key.kw, p->key.sh,
                p->key.sw, p->key.groups, dir_name[dir], D->algo, D->ohwi ? "OHWI" : "OIHW",
                D->math == CUDNN_FMA_MATH ? "fma" : "tensor-op", D->ws, best_time);
        return DCL_OK;
    }
    const dcl_conv_desc *d = &p->key;
    return dcl_fail(DCL_ERR_UNSUPPORTED,
                    "cuda %s: no cuDNN %s algorithm for conv n=%d ci=%d %dx%d -> co=%d kernel %dx%d stride %dx%d "
                    "dilation %dx%d groups %d (%s)", op, dir_name[dir], d->n, d->ci, d->hi, d->wi, d->co,
                    d->kh, d->kw, d->sh, d->sw, d->dh, d->dw, d->groups, why);
}

/* ---------------------------------------------------------------------- */
/* auxiliary kernels: padding, cropping, weight transposition, bias       */
/* ---------------------------------------------------------------------- */

/* xp (n, hp, wp, c) <- x (n, hi, wi, c) placed at (et, el), zeros around */
template <typename IX> struct div3 { cu_idiv<IX> c, w, h; };
template <typename IX> static div3<IX> div3_make(int c, int w, int h) {
    div3<IX> r = {cu_idiv<IX>::make(c), cu_idiv<IX>::make(w), cu_idiv<IX>::make(h)};
    return r;
}

template <typename T, typename IX>
__global__ void k_pad(IX total, div3<IX> dv, int c, int hi, int wi, int hp, int wp, int et, int el, T *xp,
                      const T *x) {
    CU_FORI(IX, i, total) {
        const IX t = dv.c.div(i), t2 = dv.w.div(t), n = dv.h.div(t2);
        const int ch = (int)(i - t * (IX)c);
        const int w = (int)(t - t2 * (IX)wp) - el;
        const int h = (int)(t2 - n * (IX)hp) - et;
        float v = 0.f;
        if (h >= 0 && h < hi && w >= 0 && w < wi) v = cu_ld(x, (((int64_t)n * hi + h) * wi + w) * c + ch);
        cu_st(xp, i, v);
    }
}

/* dx (n, hi, wi, c) <- dxp (n, hp, wp, c) at offset (et, el) */
template <typename T, typename IX>
__global__ void k_crop(IX total, div3<IX> dv, int c, int hi, int wi, int hp, int wp, int et, int el, T *dx,
                       const T *dxp) {
    CU_FORI(IX, i, total) {
        const IX t = dv.c.div(i), t2 = dv.w.div(t), n = dv.h.div(t2);
        const int ch = (int)(i - t * (IX)c);
        const int w = (int)(t - t2 * (IX)wi);
        const int h = (int)(t2 - n * (IX)hi);
        cu_st(dx, i, cu_ld(dxp, (((int64_t)n * hp + h + et) * wp + w + el) * c + ch));
    }
}

/* wt (o, kh, kw, i) <- w (o, i, kh, kw) */
__global__ void k_oihw_to_ohwi(int64_t total, int ci, int kh, int kw, float *wt, const float *w) {
    CU_FOR(t, total) {
        const int i = (int)(t % ci);
        int64_t r = t / ci;
        const int x = (int)(r % kw); r /= kw;
        const int y = (int)(r % kh);
        const int64_t o = r / kh;
        wt[t] = w[((o * ci + i) * kh + y) * kw + x];
    }
}

/* dw (o, i, kh, kw) += dwt (o, kh, kw, i) */
__global__ void k_ohwi_acc_oihw(int64_t total, int ci, int kh, int kw, float *dw, const float *dwt) {
    CU_FOR(t, total) {
        const int x = (int)(t % kw);
        int64_t r = t / kw;
        const int y = (int)(r % kh); r /= kh;
        const int i = (int)(r % ci);
        const int64_t o = r / ci;
        dw[t] += dwt[((o * kh + y) * kw + x) * ci + i];
    }
}

/* y = act(y + b[c]) in place (b nullable), c = i mod co */
template <typename T, typename IX, int A>
__global__ void k_bias_act(IX n, cu_idiv<IX> co, T *y, const float *__restrict__ b) {
    CU_FORI(IX, i, n) {
        float v = cu_ld(y, i);
        if (b) v += b[co.mod(i)];
        if (A == DCL_ACT_RELU) v = v > 0.f ? v : 0.f;
        else if (A == DCL_ACT_SILU) v = v * (1.f / (1.f + expf(-v)));
        else if (A == DCL_ACT_SIGMOID) v = 1.f / (1.f + expf(-v));
        cu_st(y, i, v);
    }
}

template <int A>
static void bias_act_launch(cu_impl *I, int64_t n, int co, float *y, const float *b) {
    if (cu_small(n))
        k_bias_act<float, unsigned, A><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            (unsigned)n, cu_idiv<unsigned>::make(co), y, b);
    else
        k_bias_act<float, int64_t, A><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(
            n, cu_idiv<int64_t>::make(co), y, b);
}

/* y = act(y + b) over n elements of co channels (one pass) */
static dcl_status bias_act(cu_impl *I, const char *op, dcl_act act, int64_t n, int co, float *y, const float *b) {
    if (n <= 0 || (!b && act == DCL_ACT_NONE)) return DCL_OK;
    switch (act) {
    case DCL_ACT_NONE: bias_act_launch<DCL_ACT_NONE>(I, n, co, y, b); break;
    case DCL_ACT_RELU: bias_act_launch<DCL_ACT_RELU>(I, n, co, y, b); break;
    case DCL_ACT_SILU: bias_act_launch<DCL_ACT_SILU>(I, n, co, y, b); break;
    case DCL_ACT_SIGMOID: bias_act_launch<DCL_ACT_SIGMOID>(I, n, co, y, b); break;
    default: return dcl_fail(DCL_ERR_ARG, "cuda %s: unknown activation %d", op, (int)act);
    }
    CU_LAUNCHED(op, "k_bias_act");
    return DCL_OK;
}

static dcl_status pad_input(cu_impl *I, cu_conv_plan *p, const float *x, const float **xin, const char *op) {
    if (!p->padded) { *xin = x; return DCL_OK; }
    const dcl_conv_desc *d = &p->key;
    const int64_t total = (int64_t)d->n * p->hp * p->wp * d->ci;
    float *xp;
    DCL_TRY(cu_scratch(I, CU_SCR_PAD, (size_t)total * sizeof(float), (void **)&xp, op));
    if (cu_small(total))
        k_pad<float, unsigned><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(
            (unsigned)total, div3_make<unsigned>(d->ci, p->wp, p->hp), d->ci, d->hi, d->wi, p->hp, p->wp,
            p->et, p->el, xp, x);
    else
        k_pad<float, int64_t><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(
            total, div3_make<int64_t>(d->ci, p->wp, p->hp), d->ci, d->hi, d->wi, p->hp, p->wp, p->et, p->el, xp, x);
    CU_LAUNCHED(op, "k_pad");
    *xin = xp;
    return DCL_OK;
}

static dcl_status weights_for(cu_impl *I, cu_conv_plan *p, int ohwi, const float *w, const float **win, const char *op) {
    if (!ohwi) { *win = w; return DCL_OK; }
    const dcl_conv_desc *d = &p->key;
    const int cig = d->ci / d->groups;
    const int64_t total = (int64_t)d->co * cig * d->kh * d->kw;
    float *wt;
    DCL_TRY(cu_scratch(I, CU_SCR_WT, (size_t)total * sizeof(float), (void **)&wt, op));
    k_oihw_to_ohwi<<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(total, cig, d->kh, d->kw, wt, w);
    CU_LAUNCHED(op, "k_oihw_to_ohwi");
    *win = wt;
    return DCL_OK;
}

/* ---------------------------------------------------------------------- */
/* entries                                                                */
/* ---------------------------------------------------------------------- */

/* 1x1 convolutions on 1x1 maps (the squeeze-excitation's reduce and expand)
 * are matrix products of N rows: cuDNN's fixed cost per call dominates
 * there, so they go to cuBLAS like linear layers (cuda_linear.cu explains
 * the row-major / column-major mapping).  OIHW weights (co, ci, 1, 1) are
 * the (O, K) matrix of a linear layer. */
static int gemm_applies(const cu_impl *I, const dcl_conv_desc *d) {
    return I->opt.gemm_1x1 && d->hi == 1 && d->wi == 1 && d->ho == 1 && d->wo == 1 && d->kh == 1 && d->kw == 1 &&
           d->groups == 1 && !d->pt && !d->pb && !d->pl && !d->pr;
}

/* y = act(conv(x, w) + b (+ y when accumulate)): cuDNN with beta = 1 for the
 * accumulation, then one pass for bias and activation (own kernels do it
 * all in one pass for depthwise convolutions). */
static dcl_status conv_fwd_common(dcl_backend *be, const char *op, const dcl_conv_desc *d, dcl_act act,
                                  int accumulate, float *y, const float *x, const float *w, const float *b) {
    CU_ENTER(be, op);
    DCL_TRY(conv_check(op, d));
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, w);
    if (d->has_bias && !b) return dcl_fail(DCL_ERR_ARG, "cuda %s: has_bias is set but b is NULL", op);
    if (act != DCL_ACT_NONE && act != DCL_ACT_RELU && act != DCL_ACT_SILU && act != DCL_ACT_SIGMOID)
        return dcl_fail(DCL_ERR_ARG, "cuda %s: unknown activation %d", op, (int)act);
    const float *bias = d->has_bias ? b : NULL;
    if (cu_dw_applies(I, d, 0)) return cu_dw_fwd(I, d, y, x, w, bias, act, accumulate, op);
    if (gemm_applies(I, d)) {
        const float one = 1.f, beta = accumulate ? 1.f : 0.f;
        CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_T, CUBLAS_OP_N, d->co, d->n, d->ci, &one, w, d->ci, x, d->ci,
                                &beta, y, d->co));
        return bias_act(I, op, act, (int64_t)d->n * d->co, d->co, y, bias);
    }
    cu_conv_plan *p;
    DCL_TRY(plan_get(I, d, op, &p));
    DCL_TRY(plan_dir(I, p, DIR_FWD, op));
    const cu_dir *D = &p->dir[DIR_FWD];
    const float *xin, *win;
    DCL_TRY(pad_input(I, p, x, &xin, op));
    DCL_TRY(weights_for(I, p, D->ohwi, w, &win, op));
    void *ws = NULL;
    if (D->ws) DCL_TRY(cu_workspace(I, D->ws, &ws, op));
    const float one = 1.f, beta = accumulate ? 1.f : 0.f;
    CU_DNN(op, cudnnSetConvolutionMathType(p->cd, D->math));
    CU_DNN(op, cudnnConvolutionForward(I->cudnn, &one, p->xd, xin, p->wd[D->ohwi], win, p->cd,
                                       (cudnnConvolutionFwdAlgo_t)D->algo, ws, D->ws, &beta, p->yd, y));
    return bias_act(I, op, act, (int64_t)d->n * d->ho * d->wo * d->co, d->co, y, bias);
}

static dcl_status cu_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                              const float *w, const float *b) {
    return conv_fwd_common(be, "conv_fwd", d, DCL_ACT_NONE, 0, y, x, w, b);
}

static dcl_status cu_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y,
                                  const float *x, const float *w, const float *b) {
    return conv_fwd_common(be, "conv_fwd_act", d, act, 0, y, x, w, b);
}

static dcl_status cu_conv_fwd_add(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                                  const float *w, const float *b) {
    return conv_fwd_common(be, "conv_fwd_add", d, DCL_ACT_NONE, 1, y, x, w, b);
}

static dcl_status cu_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d, float *dx, const float *dy,
                                   const float *w) {
    const char *op = "conv_bwd_data";
    CU_ENTER(be, op);
    DCL_TRY(conv_check(op, d));
    CU_NEED(op, dx); CU_NEED(op, dy); CU_NEED(op, w);
    if (cu_dw_applies(I, d, 0)) return cu_dw_bwd_data(I, d, dx, dy, w, op);
    if (gemm_applies(I, d)) {
        const float one = 1.f, zero = 0.f;
        CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_N, CUBLAS_OP_N, d->ci, d->n, d->co, &one, w, d->ci, dy, d->co,
                                &zero, dx, d->ci));
        return DCL_OK;
    }
    cu_conv_plan *p;
    DCL_TRY(plan_get(I, d, op, &p));
    DCL_TRY(plan_dir(I, p, DIR_BWD_DATA, op));
    const cu_dir *D = &p->dir[DIR_BWD_DATA];
    const float *win;
    DCL_TRY(weights_for(I, p, D->ohwi, w, &win, op));
    float *dxout = dx;
    if (p->padded) {
        const size_t bytes = (size_t)d->n * p->hp * p->wp * d->ci * sizeof(float);
        DCL_TRY(cu_scratch(I, CU_SCR_PAD, bytes, (void **)&dxout, op));
    }
    void *ws = NULL;
    if (D->ws) DCL_TRY(cu_workspace(I, D->ws, &ws, op));
    const float one = 1.f, zero = 0.f;
    CU_DNN(op, cudnnSetConvolutionMathType(p->cd, D->math));
    CU_DNN(op, cudnnConvolutionBackwardData(I->cudnn, &one, p->wd[D->ohwi], win, p->yd, dy, p->cd,
                                            (cudnnConvolutionBwdDataAlgo_t)D->algo, ws, D->ws, &zero, p->xd, dxout));
    if (p->padded) {
        const int64_t total = (int64_t)d->n * d->hi * d->wi * d->ci;
        if (cu_small(total))
            k_crop<float, unsigned><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(
                (unsigned)total, div3_make<unsigned>(d->ci, d->wi, d->hi), d->ci, d->hi, d->wi, p->hp, p->wp,
                p->et, p->el, dx, dxout);
        else
            k_crop<float, int64_t><<<cu_grid(I, total), CU_THREADS, 0, I->stream>>>(
                total, div3_make<int64_t>(d->ci, d->wi, d->hi), d->ci, d->hi, d->wi, p->hp, p->wp, p->et, p->el,
                dx, dxout);
        CU_LAUNCHED(op, "k_crop");
    }
    return DCL_OK;
}

static dcl_status cu_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db,
                                      const float *dy, const float *x) {
    const char *op = "conv_bwd_weights";
    CU_ENTER(be, op);
    DCL_TRY(conv_check(op, d));
    CU_NEED(op, dy);
    if (db) DCL_TRY(cu_colsum_acc(I, op, (int64_t)d->n * d->ho * d->wo, d->co, db, dy));
    if (!dw) return DCL_OK;
    CU_NEED(op, x);
    if (cu_dw_applies(I, d, 1)) return cu_dw_bwd_weights(I, d, dw, dy, x, op);
    if (gemm_applies(I, d)) {
        const float one = 1.f;
        CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_N, CUBLAS_OP_T, d->ci, d->co, d->n, &one, x, d->ci, dy, d->co,
                                &one, dw, d->ci));
        return DCL_OK;
    }
    cu_conv_plan *p;
    DCL_TRY(plan_get(I, d, op, &p));
    DCL_TRY(plan_dir(I, p, DIR_BWD_FILTER, op));
    const cu_dir *D = &p->dir[DIR_BWD_FILTER];
    const float *xin;
    DCL_TRY(pad_input(I, p, x, &xin, op));
    const int cig = d->ci / d->groups;
    const int64_t nw = (int64_t)d->co * cig * d->kh * d->kw;
    float *dwout = dw;
    float beta = 1.f;               /* accumulate into OIHW dw directly */
    if (D->ohwi) {
        DCL_TRY(cu_scratch(I, CU_SCR_WT, (size_t)nw * sizeof(float), (void **)&dwout, op));
        beta = 0.f;
    }
    void *ws = NULL;
    if (D->ws) DCL_TRY(cu_workspace(I, D->ws, &ws, op));
    const float one = 1.f;
    CU_DNN(op, cudnnSetConvolutionMathType(p->cd, D->math));
    CU_DNN(op, cudnnConvolutionBackwardFilter(I->cudnn, &one, p->xd, xin, p->yd, dy, p->cd,
                                              (cudnnConvolutionBwdFilterAlgo_t)D->algo, ws, D->ws, &beta,
                                              p->wd[D->ohwi], dwout));
    if (D->ohwi) {
        k_ohwi_acc_oihw<<<cu_grid(I, nw), CU_THREADS, 0, I->stream>>>(nw, cig, d->kh, d->kw, dw, dwout);
        CU_LAUNCHED(op, "k_ohwi_acc_oihw");
    }
    return DCL_OK;
}

extern "C" dcl_status dcl_cuda_conv_describe(dcl_backend *be, const dcl_conv_desc *d, char *buf, size_t n) {
    const char *op = "conv_describe";
    be = dcl_backend_base(be);
    if (!dcl_backend_is_cuda(be)) return dcl_fail(DCL_ERR_ARG, "cuda %s: backend is not a CUDA backend", op);
    if (!buf || !n) return dcl_fail(DCL_ERR_ARG, "cuda %s: empty buffer", op);
    CU_ENTER(be, op);
    DCL_TRY(conv_check(op, d));
    if (gemm_applies(I, d)) {
        snprintf(buf, n, "cuBLAS matrix products in all directions (1x1 on 1x1 maps)");
        return DCL_OK;
    }
    const int own[DIR_COUNT] = {cu_dw_applies(I, d, 0), cu_dw_applies(I, d, 0), cu_dw_applies(I, d, 1)};
    if (own[0] && own[2]) {
        snprintf(buf, n, "depthwise kernels in all directions, padding t%d b%d l%d r%d", d->pt, d->pb, d->pl, d->pr);
        return DCL_OK;
    }
    cu_conv_plan *p;
    DCL_TRY(plan_get(I, d, op, &p));
    size_t len = 0;
    buf[0] = 0;
    len += snprintf(buf + len, n - len, "pad cuDNN %d/%d", p->ph, p->pw);
    if (p->padded && len < n)
        len += snprintf(buf + len, n - len, " + explicit t%d b%d l%d r%d", p->et, p->eb, p->el, p->er);
    for (int dir = 0; dir < DIR_COUNT && len < n; dir++) {
        if (own[dir]) {
            len += snprintf(buf + len, n - len, "; %s depthwise kernel", dir_name[dir]);
            continue;
        }
        DCL_TRY(plan_dir(I, p, dir, op));
        const cu_dir *D = &p->dir[dir];
        len += snprintf(buf + len, n - len, "; %s algo %d %s %s ws %zu", dir_name[dir], D->algo,
                        D->ohwi ? "OHWI" : "OIHW", D->math == CUDNN_FMA_MATH ? "fma" : "tensor-op", D->ws);
    }
    return DCL_OK;
}

void cu_install_conv(dcl_backend *be) {
    be->conv_fwd = cu_conv_fwd;
    be->conv_bwd_data = cu_conv_bwd_data;
    be->conv_bwd_weights = cu_conv_bwd_weights;
    be->conv_fwd_act = cu_conv_fwd_act;
    be->conv_fwd_add = cu_conv_fwd_add;
}
