/* The optimised CPU backend: starts from the reference backend's table and
 * replaces every op with a oneDNN or OpenMP-vectorised version. */
#include "backend/cpu/cpu_internal.h"
#include "dcl/nn.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS (used for large linear layers) runs its own thread pool. */
void openblas_set_num_threads(int num_threads);

static int cpu_supports(dcl_backend *be, dcl_op op, const void *desc) {
    (void)be;
    switch (op) {
    case DCL_OP_CONV: {
        const dcl_conv_desc *d = desc;
        if (!d) return 1;
        return d->n > 0 && d->ci > 0 && d->co > 0 && d->groups > 0 && d->ci % d->groups == 0 &&
               d->co % d->groups == 0 && d->kh > 0 && d->kw > 0 && d->ho > 0 && d->wo > 0;
    }
    case DCL_OP_POOL: {
        const dcl_pool_desc *d = desc;
        if (!d) return 1;
        return d->n > 0 && d->c > 0 && d->kh > 0 && d->kw > 0 && d->ho > 0 && d->wo > 0 &&
               (d->kind == DCL_POOL_MAX || d->kind == DCL_POOL_AVG);
    }
    case DCL_OP_BN: case DCL_OP_ACT: case DCL_OP_PRELU: case DCL_OP_GAP: case DCL_OP_LINEAR:
    case DCL_OP_MUL_BCAST: case DCL_OP_ADD:
        return 1;
    default:
        return 0;
    }
}

static void cpu_destroy(dcl_backend *be) {
    if (!be) return;
    cpu_impl *c = cpu_of(be);
    if (c) {
        cpu_conv_cache_free(c);
        if (c->strm) dnnl_stream_destroy(c->strm);
        if (c->eng) dnnl_engine_destroy(c->eng);
        pthread_mutex_destroy(&c->lock);
        dcl_free(c->ws);
        free(c);
    }
    free(be);
}

static cpu_layout layout_from_env(void) {
    const char *s = getenv("DCL_CPU_CONV_LAYOUT");
    if (!s || !*s || strcasecmp(s, "auto") == 0) return CPU_LAYOUT_AUTO;
    if (strcasecmp(s, "nhwc") == 0) return CPU_LAYOUT_NHWC;
    if (strcasecmp(s, "blocked") == 0) return CPU_LAYOUT_BLOCKED;
    if (strcasecmp(s, "direct") == 0) return CPU_LAYOUT_DIRECT;
    dcl_log(1, "DCL_CPU_CONV_LAYOUT='%s' not understood (expected auto, nhwc, blocked or direct); using auto", s);
    return CPU_LAYOUT_AUTO;
}

static int pw_from_env(void) {
    const char *s = getenv("DCL_CPU_1X1");
    if (!s || !*s || strcasecmp(s, "auto") == 0) return CPU_PW_AUTO;
    if (strcasecmp(s, "conv") == 0) return CPU_PW_CONV;
    if (strcasecmp(s, "gemm") == 0) return CPU_PW_GEMM;
    dcl_log(1, "DCL_CPU_1X1='%s' not understood (expected auto, conv or gemm); using auto", s);
    return CPU_PW_AUTO;
}

dcl_backend *dcl_backend_cpu(int threads) {
    dcl_backend *be = calloc(1, sizeof *be);
    cpu_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be); free(c);
        dcl_fail(DCL_ERR_NOMEM, "cpu backend: out of memory");
        return NULL;
    }
    dcl_backend_ref_fill(be);
#ifdef _OPENMP
    c->nt = threads > 0 ? threads : omp_get_max_threads();
    /* oneDNN (OpenMP runtime) sizes its parallel regions from the calling
     * thread's OpenMP setting. */
    if (threads > 0) omp_set_num_threads(threads);
#else
    c->nt = 1;
#endif
    if (c->nt < 1) c->nt = 1;
    openblas_set_num_threads(c->nt);
    c->layout_force = layout_from_env();
    c->pw_force = pw_from_env();
    /* Outputs of at least DCL_CPU_STREAM_MB MB are written with streaming
     * stores (default 0: never).  Streaming saves memory traffic for a
     * kernel alone, but in a network the next layer reads the output right
     * away and then finds it in memory instead of the last-level cache: on
     * the 2-core Zen 3 (32 MB L3), b0 training and b4 inference steps were
     * 2% faster without (16 MB threshold: 0.507 / 0.402 s, off: 0.497 /
     * 0.394 s).  (The own depthwise kernels stream their outputs of 4 MB
     * and more whatever this says: cpu_dw_big, measured in cpu_conv.c.) */
    c->stream_min = 0;
    {
        const char *st = getenv("DCL_CPU_STEM");
        c->stem_own = !(st && strcmp(st, "onednn") == 0);
        if (st && *st && strcmp(st, "own") != 0 && strcmp(st, "onednn") != 0)
            dcl_log(1, "DCL_CPU_STEM='%s' is not own or onednn; using the own kernel", st);
    }
    const char *sm = getenv("DCL_CPU_STREAM_MB");
    if (sm && *sm) {
        char *end;
        double v = strtod(sm, &end);
        if (*end || !(v >= 0) || v > 1e6) dcl_log(1, "DCL_CPU_STREAM_MB='%s' is not a size in MB; not streaming", sm);
        else c->stream_min = v > 0 && v * 1048576.0 < 1 ? 1 : (size_t)(v * 1048576.0);
    }
    pthread_mutex_init(&c->lock, NULL);
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&c->strm, c->eng, dnnl_stream_default_flags) != dnnl_success) {
        if (c->eng) dnnl_engine_destroy(c->eng);
        pthread_mutex_destroy(&c->lock);
        free(c); free(be);
        dcl_fail(DCL_ERR_INTERNAL, "cpu backend: oneDNN engine/stream creation failed");
        return NULL;
    }

    be->name = "cpu";
    be->impl = c;
    be->is_host = 1;
    be->supports = cpu_supports;
    be->destroy = cpu_destroy;
    be->mem_alloc = NULL; be->mem_free = NULL; be->to_device = NULL; be->to_host = NULL;
    be->mem_zero = NULL; be->sync = NULL;

    be->conv_fwd = cpu_conv_fwd;
    be->conv_bwd_data = cpu_conv_bwd_data;
    be->conv_bwd_weights = cpu_conv_bwd_weights;
    be->bn_fwd_train = cpu_bn_fwd_train;
    be->bn_fwd_infer = cpu_bn_fwd_infer;
    be->bn_bwd = cpu_bn_bwd;
    be->act_fwd = cpu_act_fwd;
    be->act_bwd = cpu_act_bwd;
    be->prelu_fwd = cpu_prelu_fwd;
    be->prelu_bwd = cpu_prelu_bwd;
    be->pool_fwd = cpu_pool_fwd;
    be->pool_bwd = cpu_pool_bwd;
    be->gap_fwd = cpu_gap_fwd;
    be->gap_bwd = cpu_gap_bwd;
    be->linear_fwd = cpu_linear_fwd;
    be->linear_bwd = cpu_linear_bwd;
    be->mul_bcast_fwd = cpu_mul_bcast_fwd;
    be->mul_bcast_bwd = cpu_mul_bcast_bwd;
    be->add = cpu_add;
    be->scale_mask = cpu_scale_mask;
    be->adam = cpu_adam;
    be->sgd = cpu_sgd;
    /* fused entries */
    be->conv_fwd_act = cpu_conv_fwd_act;
    be->conv_fwd_add = cpu_conv_fwd_add;
    be->bn_stats = cpu_bn_stats;
    be->bn_act_fwd = cpu_bn_act_fwd;
    be->bn_act_bwd_reduce = cpu_bn_act_bwd_reduce;
    be->bn_act_bwd_dx = cpu_bn_act_bwd_dx;
    be->bn_act_dot = cpu_bn_act_dot;
    be->bn_act_se_sums = cpu_bn_act_se_sums;
    be->pw_fused_pays = cpu_pw_fused_pays;
    be->se_pw_bwd = cpu_se_pw_bwd;
    be->bn_dx_pw_bwd = cpu_bn_dx_pw_bwd;
    be->bn_stats_pw = cpu_bn_stats_pw;
    be->bn_act_dw_pays = cpu_bn_act_dw_pays;
    be->bn_act_dw_fwd = cpu_bn_act_dw_fwd;
    return be;
}
