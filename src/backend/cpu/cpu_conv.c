/* Convolutions of the cpu backend through oneDNN.
 *
 * User tensors are NHWC activations and OIHW (grouped: GOIHW) weights.  For
 * every descriptor and direction a plan is built once and cached: the oneDNN
 * primitive, reorders between the user layouts and the layouts the primitive
 * wants (when it does not work on NHWC), and the sizes of the temporary
 * buffers (scratchpad, reordered tensors, weight gradients before they are
 * added into dw), which live in one workspace shared by all plans.  The
 * layout is chosen from measurements (see static_layout); depthwise
 * backward-weights may go to the own kernels of cpu_dwconv.c, and 1x1
 * convolutions on 1x1 maps (squeeze-excitation) are small dense products
 * done without oneDNN.  Pointwise convolutions (1x1, stride 1) may run as
 * matrix products on the NHWC data through oneDNN's sgemm (see
 * cpu_conv_pw_impl).  DCL_CPU_CONV_LAYOUT=nhwc|blocked|direct and
 * DCL_CPU_1X1=conv|gemm force a choice (tests and benchmarks).  The fused
 * entries: conv_fwd_act (an activation after the convolution, see
 * CPU_POSTOP_MIN_K) and
 * conv_fwd_add (accumulating onto y through oneDNN's sum post-op: a
 * residual add in the shortcut's buffer).
 */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct conv_io {
    int arg;                 /* DNNL_ARG_* of the primitive */
    int used;
    int reorder;             /* user layout differs from the primitive's */
    int in_ws;               /* primitive-side buffer lives in the workspace */
    dnnl_memory_t prim_mem;  /* primitive layout; handle set per call */
    dnnl_memory_t user_mem;  /* user layout (reorder only) */
    dnnl_primitive_t rprim;  /* user->prim for inputs, prim->user for outputs */
    size_t off, bytes;       /* workspace slot */
} conv_io;

typedef struct conv_key {
    dcl_conv_desc d;
    int dir, bias, layout;
    int act;                 /* forward only: activation fused as a post-op */
    int sum;                 /* forward only: accumulate onto dst (sum post-op) */
} conv_key;

enum { IO_SRC = 0, IO_WEI = 1, IO_DST = 2, IO_BIAS = 3, IO_N = 4 };
enum { ACC_ADD = 0, ACC_REORDER_SUM = 1 };

struct cpu_conv_plan {
    conv_key k;
    dnnl_primitive_t prim;
    conv_io io[IO_N];
    dnnl_memory_t scratch_mem;
    size_t scratch_bytes;
    int acc_mode;                 /* backward weights: how dw is accumulated */
    int dw_impl;                  /* oneDNN picked a dedicated depthwise kernel */
    size_t ws_bytes;
    char info[192];
    cpu_conv_plan *next;
};

/* ---------------------------------------------------------------- kinds -- */

static int is_small(const dcl_conv_desc *d) {
    return d->hi == 1 && d->wi == 1 && d->kh == 1 && d->kw == 1 && d->groups == 1 &&
           d->pt == 0 && d->pb == 0 && d->pl == 0 && d->pr == 0;
}

/* pointwise: 1x1, stride 1, no padding, one group.  On NHWC, x is an
 * (M, ci) matrix, y an (M, co) one (M = n*h*w) and the weights (co, ci). */
static int is_pointwise(const dcl_conv_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->groups == 1 && d->pt == 0 &&
           d->pb == 0 && d->pl == 0 && d->pr == 0 && d->ho == d->hi && d->wo == d->wi;
}

/* Pointwise convolutions as matrix products (oneDNN's sgemm on the NHWC
 * data, weight gradients accumulated by the product itself, beta = 1)
 * against oneDNN's 1x1 convolution on NHWC (jit_1x1:avx2), per direction.
 * Measured on the 2-core Zen 3 at every 1x1 shape of EfficientNet-b4 (299,
 * batch 8) and -b0 (224, batch 16), each shape alone, ms per network pass,
 * convolution / product:
 * - backward weights: b4 343 / 271, b0 73 / 65; with at least 32 input
 *   channels the product is faster at all shapes but one (by up to 39%;
 *   80->480 at 14x14 3% slower), below it 4-17% slower (24->144 at
 *   150x150: 12.6 / 14.5; 16->96 at 112x112: 7.2 / 8.4).
 * - backward data: b4 287 / 271, b0 61 / 60; the product wins with many
 *   channels on small maps (the 7x7 .. 19x19 stages, 5-16%) and loses up to
 *   15% with few channels on large maps.
 * - forward: the convolution is as fast or faster at nearly every shape
 *   (b4 265 / 271, b0 57 / 63): it stays.
 * With a bias the convolution stays (its kernel sums the bias gradient).
 * In the network: b4 training step 1.472 -> 1.416 s, b0 0.484 -> 0.469 s
 * (docs/SPEED.md). */
int cpu_conv_pw_impl(const cpu_impl *c, const dcl_conv_desc *d, int dir, int bias) {
    if (!is_pointwise(d) || is_small(d)) return CPU_PW_CONV;
    if (c->pw_force == CPU_PW_GEMM) return CPU_PW_GEMM;
    if (c->pw_force == CPU_PW_CONV || c->layout_force != CPU_LAYOUT_AUTO || bias) return CPU_PW_CONV;
    int64_t M = (int64_t)d->n * d->hi * d->wi;
    switch (dir) {
    case CPU_CONV_BWD_W: return d->ci >= 32 ? CPU_PW_GEMM : CPU_PW_CONV;
    case CPU_CONV_BWD_DATA: return M <= 3000 && d->ci >= 112 && d->co >= 112 ? CPU_PW_GEMM : CPU_PW_CONV;
    default: return CPU_PW_CONV;
    }
}

static dcl_status pw_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *y, int64_t ldy) {
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, y, ldy);
    if (st != dnnl_success) return dcl_fail(DCL_ERR_INTERNAL, "cpu conv: oneDNN sgemm failed (status %d)", (int)st);
    return DCL_OK;
}

/* y (M, C) rows = b (assign) or += b */
static void bias_rows(int nt, float *y, const float *b, int64_t M, int C, int assign) {
    if (M * C < 65536) nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t m = 0; m < M; m++) {
        float *r = y + m * C;
        if (assign) memcpy(r, b, sizeof(float) * C);
        else {
            #pragma omp simd
            for (int c = 0; c < C; c++) r[c] += b[c];
        }
    }
}

/* db (C) += column sums of dy (M, C), per-thread partial sums in double */
static dcl_status col_sums_add(int nt, float *db, const float *dy, int64_t M, int C) {
    if (M * C < 65536) nt = 1;
    size_t per = ((size_t)C + 7) & ~(size_t)7;
    double *part = calloc(per * nt, sizeof(double));
    if (!part) return dcl_fail(DCL_ERR_NOMEM, "cpu conv: out of memory");
    #pragma omp parallel num_threads(nt)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        double *p = part + per * t;
        for (int64_t m = M * t / T; m < M * (t + 1) / T; m++) {
            const float *r = dy + m * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) p[c] += r[c];
        }
    }
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int t = 0; t < nt; t++) s += part[per * t + c];
        db[c] += (float)s;
    }
    free(part);
    return DCL_OK;
}

/* Layout choice, from bench/ops_bench at EfficientNet-b4 (299, batch 8)
 * shapes on 2 cores (figures in the header of bench/ops_bench.c): oneDNN on
 * NHWC directly beats its blocked layouts once the reorders to and from the
 * NHWC user memory are counted, for every kind (1x1, stem, depthwise, all
 * directions) with AVX2 and with AVX-512.  The exception is depthwise
 * backward-weights where oneDNN has no depthwise kernel for the shape (5x5
 * with NHWC falls back to its generic convolution, 7-10 GFLOPS): there the
 * own kernel (cpu_dwconv.c) is 3-8x faster.  That case is detected from the
 * implementation oneDNN picks (see dw_direct_for_bwd_w). */
static cpu_layout static_layout(const cpu_impl *c, const dcl_conv_desc *d) {
    cpu_layout f = c->layout_force;
    if (f == CPU_LAYOUT_DIRECT) return cpu_dw_handles(d) ? CPU_LAYOUT_DIRECT : CPU_LAYOUT_NHWC;
    if (f != CPU_LAYOUT_AUTO) return f;
    return CPU_LAYOUT_NHWC;
}

/* Automatic choice only: depthwise convolutions go to the own kernels
 * (cpu_dwconv.c) for
 * - stride 1, 5x5: backward data on every map, forward on maps of 100 to
 *   400 pixels (10x10 to 20x20) and on large outputs (cpu_dw_big: 4 MB
 *   and more);
 * - stride 1, 3x3: forward and backward data on large outputs with at
 *   least 96 channels;
 * - stride 2 and more: forward and backward data on large outputs (y, or
 *   dx; the gather kernels);
 * oneDNN's jit_dw (AVX2) keeps the rest.  On large outputs the own kernels
 * write with streaming stores and prefetch the rows ahead (cpu_dwconv.c);
 * the stride-1 kernel also walks tiles outer there
 * (s1_tiles_to), channel vectors outer below.  Stride 2 in a training step,
 * ms oneDNN / own, forward + backward (data + weights): b4 3x3 144@150
 * 7.6 + 13.4 / 4.9 + 7.8, 5x5 192@75 3.7 + 6.0 / 2.2 + 3.9, backward 3x3
 * 336@38 2.0 / 1.1, 5x5 960@19 1.9 / 1.5; b0 3x3 96@112 5.0 + 10.1 / 3.5 +
 * 5.1, 5x5 144@56 3.1 + 4.8 / 2.3 + 3.1; forward of small outputs as fast
 * or faster on oneDNN (b0 672@14 0.50 / 0.62).  The threshold 8 -> 4 MB took
 * b0's 480@14 and b4's 672@19 layers: all depthwise forward in a b0 step
 * 22-27 -> 19 ms, b4's 19x19 stage forward 5.3 -> 4.4 ms, backward 9.6 ->
 * 9.2 ms.
 * Measured on the 2-core Zen 3, ms oneDNN NHWC / own.  b4 (299, batch 8),
 * isolated: backward data 336@38 3.1-3.3 / 2.5-2.7, 672@19 1.28-1.31 /
 * 0.96-0.98, 960@19 2.05-2.13 / 1.67-1.68, 1632@10 0.96-0.98 / 0.70-0.71;
 * forward 672@19 1.10-1.13 / 1.00, 960@19 1.70-1.76 / 1.60, 1632@10
 * 0.86-0.88 / 0.71-0.72; in a training step (all layers of the shape)
 * forward 960@19 10.1-10.4 / 9.7-9.8, 1632@10 8.3-8.4 / 7.1-7.2.  The large
 * maps, per layer in a b4 training step, oneDNN / own tiles outer: 3x3
 * 192@75 forward 4.5-4.7 / 3.8-4.0, backward (data + weights) 9.7-9.8 /
 * 7.9-8.2; 5x5 336@38 forward 2.6 / 2.3 (the first of three layers: 2.6
 * either way), backward 6.2-6.8 / 5.1-5.6; 3x3 with few channels slower on
 * the own kernel (48@150 forward 2.6 / 3.7, 24@150 1.4 / 1.8).  b0 (224,
 * batch 16) forward, isolated: 1152@7 0.38 / 0.45, 672@14 1.01 / 0.92,
 * 480@14 0.67 / 0.62; backward data in a training step 1.5-2.1 times
 * faster on all four b0 shapes; 3x3 144@56 in a step forward 4.0-4.1 /
 * 3.0, backward 8.7 / 4.9 (with the weight gradient's prefetch).  With
 * AVX-512 oneDNN's 16-lane kernels are not compared against. */
static int dw_direct(const cpu_impl *c, const dcl_conv_desc *d, int dir) {
#if defined(__AVX512F__)
    (void)c; (void)d; (void)dir;
    return 0;
#else
    if (c->layout_force != CPU_LAYOUT_AUTO || !cpu_dw_handles(d)) return 0;
    if (dir != CPU_CONV_FWD && dir != CPU_CONV_BWD_DATA) return 0;
    const int px = d->ho * d->wo;
    /* the output of the direction: y forward, dx backward */
    const int big = dir == CPU_CONV_FWD ? cpu_dw_big(d->n, d->ho, d->wo, d->ci) : cpu_dw_big(d->n, d->hi, d->wi, d->ci);
    if (!cpu_dw_s1_handles(d)) return big && (d->sh > 1 || d->sw > 1);
    if (d->kh == 3) return big && d->ci >= 96;
    return dir == CPU_CONV_BWD_DATA || big || (px >= 100 && px <= 400);
#endif
}

/* An activation runs as a oneDNN post-op (in the convolution's registers)
 * only when each output takes at least this many multiply-adds: oneDNN's
 * eltwise code for SiLU costs about as much per element as a separate pass
 * over memory with the backend's own activation kernel (cpu_act_fwd), which
 * is cheaper than the convolution itself for few multiply-adds per output.
 * Measured on the 2-core Zen 3 (b4 shapes, batch 8, idle machine, ms):
 * with the post-op / conv then the pass: 1x1 32->192 at 75x75 6.1 / 5.2;
 * depthwise 3x3 192 at 75x75 7.5 / 6.7; depthwise 3x3 144 at 150x150
 * stride 2 11.2 / 10.3; 1x1 272->1632 at 10x10 4.1 / 3.9. */
#define CPU_POSTOP_MIN_K 2048

/* ------------------------------------------------------------ workspace -- */

static dcl_status ws_ensure(cpu_impl *c, size_t bytes) {
    if (bytes <= c->ws_cap) return DCL_OK;
    size_t cap = bytes + bytes / 8 + 4096;
    void *p = dcl_alloc(cap);
    if (!p) return dcl_fail(DCL_ERR_NOMEM, "cpu conv: cannot allocate %zu bytes of workspace", cap);
    dcl_free(c->ws);
    c->ws = p;
    c->ws_cap = cap;
    return DCL_OK;
}

/* --------------------------------------------------------------- plans -- */

static uint32_t key_hash(const conv_key *k) {
    const unsigned char *p = (const unsigned char *)k;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof *k; i++) { h ^= p[i]; h *= 16777619u; }
    return h;
}

static void io_free(conv_io *io) {
    if (io->rprim) dnnl_primitive_destroy(io->rprim);
    if (io->prim_mem) dnnl_memory_destroy(io->prim_mem);
    if (io->user_mem) dnnl_memory_destroy(io->user_mem);
    memset(io, 0, sizeof *io);
}

static void plan_free(cpu_conv_plan *p) {
    if (!p) return;
    for (int i = 0; i < IO_N; i++) io_free(&p->io[i]);
    if (p->scratch_mem) dnnl_memory_destroy(p->scratch_mem);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    free(p);
}

void cpu_conv_cache_free(cpu_impl *c) {
    for (int b = 0; b < 256; b++) {
        cpu_conv_plan *p = c->buckets[b];
        while (p) { cpu_conv_plan *n = p->next; plan_free(p); p = n; }
        c->buckets[b] = NULL;
    }
    c->nplans = 0;
}

static void user_mds(const dcl_conv_desc *d, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                     dnnl_memory_desc_t *dst, dnnl_memory_desc_t *bias) {
    dnnl_dims_t sd = {d->n, d->ci, d->hi, d->wi};
    dnnl_dims_t dd = {d->n, d->co, d->ho, d->wo};
    dnnl_memory_desc_init_by_tag(src, 4, sd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, dnnl_nhwc);
    if (d->groups == 1) {
        dnnl_dims_t wd = {d->co, d->ci, d->kh, d->kw};
        dnnl_memory_desc_init_by_tag(wei, 4, wd, dnnl_f32, dnnl_oihw);
    } else {
        dnnl_dims_t wd = {d->groups, d->co / d->groups, d->ci / d->groups, d->kh, d->kw};
        dnnl_memory_desc_init_by_tag(wei, 5, wd, dnnl_f32, dnnl_goihw);
    }
    dnnl_dims_t bd = {d->co};
    dnnl_memory_desc_init_by_tag(bias, 1, bd, dnnl_f32, dnnl_a);
}

static void any_md(dnnl_memory_desc_t *out, const dnnl_memory_desc_t *like) {
    dnnl_memory_desc_init_by_tag(out, like->ndims, like->dims, dnnl_f32, dnnl_format_tag_any);
}

/* Sets up one argument: user md vs the primitive's md, reorder if needed. */
static int io_setup(cpu_impl *c, conv_io *io, int arg, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *prim, int is_output, int force_ws,
                    const_dnnl_primitive_attr_t rattr) {
    io->arg = arg;
    io->used = 1;
    io->reorder = !dnnl_memory_desc_equal(user, prim);
    io->in_ws = io->reorder || force_ws;
    io->bytes = dnnl_memory_desc_get_size(prim);
    if (dnnl_memory_create(&io->prim_mem, prim, c->eng, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    if (io->reorder) {
        dnnl_primitive_desc_t rpd = NULL;
        if (dnnl_memory_create(&io->user_mem, user, c->eng, DNNL_MEMORY_NONE) != dnnl_success) return -1;
        dnnl_status_t st = is_output
            ? dnnl_reorder_primitive_desc_create(&rpd, prim, c->eng, user, c->eng, rattr)
            : dnnl_reorder_primitive_desc_create(&rpd, user, c->eng, prim, c->eng, rattr);
        if (st != dnnl_success) return -2;
        st = dnnl_primitive_create(&io->rprim, rpd);
        dnnl_primitive_desc_destroy(rpd);
        if (st != dnnl_success) return -1;
    }
    return 0;
}

/* short description of a layout: nhwc, plain, or the innermost block size */
static void fmt_name(const dnnl_memory_desc_t *md, char *buf, size_t n) {
    if (md->format_kind != dnnl_blocked) { snprintf(buf, n, "other"); return; }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (b->inner_nblks == 0)
        snprintf(buf, n, "%s", md->ndims == 4 && b->strides[1] == 1 ? "nhwc" : "plain");
    else
        snprintf(buf, n, "blk%d", (int)b->inner_blks[b->inner_nblks - 1]);
}

static cpu_conv_plan *plan_build(cpu_impl *c, const conv_key *k, char *err, size_t errn) {
    const dcl_conv_desc *d = &k->d;
    cpu_conv_plan *p = calloc(1, sizeof *p);
    if (!p) { snprintf(err, errn, "out of memory"); return NULL; }
    p->k = *k;

    dnnl_memory_desc_t u_src, u_wei, u_dst, u_bias, src, wei, dst, bias;
    user_mds(d, &u_src, &u_wei, &u_dst, &u_bias);
    if (k->layout == CPU_LAYOUT_BLOCKED) {
        any_md(&src, &u_src);
        any_md(&dst, &u_dst);
    } else {
        src = u_src;
        dst = u_dst;
    }
    any_md(&wei, &u_wei);
    bias = u_bias;
    dnnl_dims_t strides = {d->sh, d->sw}, dil = {d->dh - 1, d->dw - 1};
    dnnl_dims_t pl = {d->pt, d->pl}, pr = {d->pb, d->pr};

    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
    dnnl_convolution_desc_t fdesc, bdesc;
    dnnl_status_t st;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (k->dir == CPU_CONV_FWD && (k->act != DCL_ACT_NONE || k->sum)) {
        dnnl_post_ops_t po = NULL;
        dnnl_alg_kind_t alg = k->act == DCL_ACT_RELU ? dnnl_eltwise_relu
                            : k->act == DCL_ACT_SILU ? dnnl_eltwise_swish : dnnl_eltwise_logistic;
        dnnl_post_ops_create(&po);
        if (k->sum) dnnl_post_ops_append_sum(po, 1.0f);
        if (k->act != DCL_ACT_NONE) dnnl_post_ops_append_eltwise(po, 1.0f, alg, k->act == DCL_ACT_SILU ? 1.0f : 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }

    st = dnnl_dilated_convolution_forward_desc_init(
        &fdesc, k->dir == CPU_CONV_FWD ? dnnl_forward_inference : dnnl_forward_training,
        dnnl_convolution_direct, &src, &wei, k->bias ? &bias : NULL, &dst, strides, dil, pl, pr);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&fwd_pd, &fdesc, k->dir == CPU_CONV_FWD ? attr : NULL, c->eng, NULL);
    if (st != dnnl_success) { snprintf(err, errn, "forward descriptor rejected (status %d)", (int)st); goto fail; }
    if (k->dir == CPU_CONV_FWD) {
        pd = fwd_pd;
        fwd_pd = NULL;
    } else if (k->dir == CPU_CONV_BWD_DATA) {
        st = dnnl_dilated_convolution_backward_data_desc_init(&bdesc, dnnl_convolution_direct, &src, &wei,
                                                              &dst, strides, dil, pl, pr);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bdesc, attr, c->eng, fwd_pd);
        if (st != dnnl_success) { snprintf(err, errn, "backward-data descriptor rejected (status %d)", (int)st); goto fail; }
    } else {
        st = dnnl_dilated_convolution_backward_weights_desc_init(&bdesc, dnnl_convolution_direct, &src, &wei,
                                                                 k->bias ? &bias : NULL, &dst, strides, dil, pl, pr);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bdesc, attr, c->eng, fwd_pd);
        if (st != dnnl_success) { snprintf(err, errn, "backward-weights descriptor rejected (status %d)", (int)st); goto fail; }
    }

    /* arguments */
    {
        int a_src = k->dir == CPU_CONV_BWD_DATA ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC;
        int a_wei = k->dir == CPU_CONV_BWD_W ? DNNL_ARG_DIFF_WEIGHTS : DNNL_ARG_WEIGHTS;
        int a_dst = k->dir == CPU_CONV_FWD ? DNNL_ARG_DST : DNNL_ARG_DIFF_DST;
        const dnnl_memory_desc_t *m_src = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a_src);
        const dnnl_memory_desc_t *m_wei = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a_wei);
        const dnnl_memory_desc_t *m_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a_dst);
        if (!m_src || !m_wei || !m_dst) { snprintf(err, errn, "cannot query memory layouts"); goto fail; }
        int r = io_setup(c, &p->io[IO_SRC], a_src, &u_src, m_src, k->dir == CPU_CONV_BWD_DATA, 0, NULL);
        if (!r) r = io_setup(c, &p->io[IO_DST], a_dst, &u_dst, m_dst, k->dir == CPU_CONV_FWD, 0, NULL);
        if (!r && k->dir != CPU_CONV_BWD_W) {
            r = io_setup(c, &p->io[IO_WEI], a_wei, &u_wei, m_wei, 0, 0, NULL);
        } else if (!r) {
            /* diff weights land in the workspace and are added into dw */
            p->acc_mode = ACC_ADD;
            if (!dnnl_memory_desc_equal(&u_wei, m_wei)) {
                dnnl_primitive_attr_t rattr = NULL;
                dnnl_post_ops_t po = NULL;
                dnnl_primitive_attr_create(&rattr);
                dnnl_post_ops_create(&po);
                dnnl_post_ops_append_sum(po, 1.0f);
                dnnl_primitive_attr_set_post_ops(rattr, po);
                r = io_setup(c, &p->io[IO_WEI], a_wei, &u_wei, m_wei, 1, 1, rattr);
                dnnl_post_ops_destroy(po);
                dnnl_primitive_attr_destroy(rattr);
                if (r == -2) { snprintf(err, errn, "no accumulating reorder for weight gradients"); goto fail; }
                p->acc_mode = ACC_REORDER_SUM;
            } else {
                r = io_setup(c, &p->io[IO_WEI], a_wei, &u_wei, m_wei, 1, 1, NULL);
            }
        }
        if (!r && k->bias) {
            int a_b = k->dir == CPU_CONV_BWD_W ? DNNL_ARG_DIFF_BIAS : DNNL_ARG_BIAS;
            const dnnl_memory_desc_t *m_b = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a_b);
            if (!m_b) { snprintf(err, errn, "cannot query bias layout"); goto fail; }
            r = io_setup(c, &p->io[IO_BIAS], a_b, &u_bias, m_b, k->dir == CPU_CONV_BWD_W,
                         k->dir == CPU_CONV_BWD_W, NULL);
        }
        if (r) { snprintf(err, errn, "cannot set up reorders (status %d)", r); goto fail; }

        const dnnl_memory_desc_t *m_s = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        p->scratch_bytes = m_s ? dnnl_memory_desc_get_size(m_s) : 0;
        if (p->scratch_bytes &&
            dnnl_memory_create(&p->scratch_mem, m_s, c->eng, DNNL_MEMORY_NONE) != dnnl_success) {
            snprintf(err, errn, "cannot create scratchpad memory");
            goto fail;
        }
        size_t off = dcl_align_up(p->scratch_bytes);
        for (int i = 0; i < IO_N; i++) {
            if (!p->io[i].used || !p->io[i].in_ws) continue;
            p->io[i].off = off;
            off += dcl_align_up(p->io[i].bytes);
        }
        p->ws_bytes = off;

        const char *impl = "?";
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        char fs[16], fw[16], fd[16];
        fmt_name(m_src, fs, sizeof fs);
        fmt_name(m_wei, fw, sizeof fw);
        fmt_name(m_dst, fd, sizeof fd);
        snprintf(p->info, sizeof p->info, "%s src=%s wei=%s dst=%s", impl, fs, fw, fd);
        p->dw_impl = strstr(impl, "_dw") != NULL;
    }
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        snprintf(err, errn, "primitive creation failed");
        goto fail;
    }
    dnnl_primitive_desc_destroy(pd);
    if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
    dnnl_primitive_attr_destroy(attr);
    return p;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    plan_free(p);
    return NULL;
}

static dcl_status plan_get_act(cpu_impl *c, const dcl_conv_desc *d, int dir, int bias, int act, int sum,
                               cpu_conv_plan **out) {
    conv_key k;
    memset(&k, 0, sizeof k);
    k.d = *d;
    k.d.has_bias = 0;
    k.dir = dir;
    k.bias = bias;
    k.act = act;
    k.sum = sum;
    /* accumulating needs the primitive to read y itself: NHWC */
    k.layout = sum ? CPU_LAYOUT_NHWC : static_layout(c, d);
    uint32_t h = key_hash(&k) & 255u;
    for (cpu_conv_plan *p = c->buckets[h]; p; p = p->next)
        if (memcmp(&p->k, &k, sizeof k) == 0) { *out = p; return DCL_OK; }
    /* a bounded cache: shapes change rarely (new batch or image size) */
    if (c->nplans >= 4096) cpu_conv_cache_free(c);
    char err[160] = "";
    cpu_conv_plan *p = plan_build(c, &k, err, sizeof err);
    if (!p && k.layout != CPU_LAYOUT_NHWC) {
        /* NHWC as a fallback, cached under the key asked for */
        conv_key k2 = k;
        k2.layout = CPU_LAYOUT_NHWC;
        p = plan_build(c, &k2, err, sizeof err);
        if (p) p->k = k;
    }
    if (!p) {
        static const char *dn[] = {"forward", "backward-data", "backward-weights"};
        return dcl_fail(DCL_ERR_UNSUPPORTED,
                        "cpu conv %s: %s for N=%d C=%d %dx%d -> C=%d %dx%d kernel %dx%d stride %d,%d groups %d",
                        dn[dir], err, d->n, d->ci, d->hi, d->wi, d->co, d->ho, d->wo, d->kh, d->kw,
                        d->sh, d->sw, d->groups);
    }
    p->next = c->buckets[h];
    c->buckets[h] = p;
    c->nplans++;
    *out = p;
    return DCL_OK;
}

static dcl_status plan_get(cpu_impl *c, const dcl_conv_desc *d, int dir, int bias, cpu_conv_plan **out) {
    return plan_get_act(c, d, dir, bias, DCL_ACT_NONE, 0, out);
}

/* Automatic choice only: depthwise backward-weights goes to the own kernel
 * when oneDNN's NHWC primitive for it is not a dedicated depthwise one, and
 * without AVX-512 also for stride 1 (oneDNN's AVX2 depthwise
 * backward-weights is slower there: b4 shapes on the 2-core Zen 3, CPU ms,
 * oneDNN / own: 3x3 192@75 16.4 / 12.9, 672@19 3.1 / 1.7, 48@150 13.3 /
 * 12.4; stride 2 144@150 14.8 / 17.7; with AVX-512 oneDNN's 16-lane kernel
 * wins, bench/ops_bench.c), and at stride 2 on large inputs (cpu_dw_big),
 * where the own kernel prefetches the rows ahead (b4 3x3 336@38 in a
 * training step, with backward data: 2.0 / 1.1 ms; 144@150 13.4 / 7.8).
 * Call with the lock held. */
static int dw_direct_for_bwd_w(cpu_impl *c, const dcl_conv_desc *d, int bias) {
    if (c->layout_force != CPU_LAYOUT_AUTO || !cpu_dw_handles(d)) return 0;
#if !defined(__AVX512F__)
    if (d->sh == 1 && d->sw == 1) return 1;
    if (cpu_dw_big(d->n, d->hi, d->wi, d->ci)) return 1;
#endif
    cpu_conv_plan *p;
    if (plan_get(c, d, CPU_CONV_BWD_W, bias, &p) != DCL_OK) {
        dcl_clear_error();
        return 1;
    }
    return !p->dw_impl;
}

cpu_layout cpu_conv_layout(cpu_impl *c, const dcl_conv_desc *d, int dir) {
    cpu_layout l = static_layout(c, d);
    if (l == CPU_LAYOUT_NHWC && dw_direct(c, d, dir)) return CPU_LAYOUT_DIRECT;
    if (dir == CPU_CONV_BWD_W && l == CPU_LAYOUT_NHWC && cpu_dw_handles(d)) {
        pthread_mutex_lock(&c->lock);
        if (dw_direct_for_bwd_w(c, d, d->has_bias)) l = CPU_LAYOUT_DIRECT;
        pthread_mutex_unlock(&c->lock);
    }
    return l;
}

/* ---------------------------------------------------------- execution -- */

static dcl_status exec_prim(dnnl_primitive_t prim, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *args,
                            const char *what) {
    dnnl_status_t st = dnnl_primitive_execute(prim, s, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(s);
    if (st != dnnl_success) return dcl_fail(DCL_ERR_INTERNAL, "cpu conv: oneDNN %s failed (status %d)", what, (int)st);
    return DCL_OK;
}

static dcl_status reorder_exec(cpu_impl *c, conv_io *io, int is_output) {
    dnnl_exec_arg_t a[2];
    a[0].arg = DNNL_ARG_FROM;
    a[0].memory = is_output ? io->prim_mem : io->user_mem;
    a[1].arg = DNNL_ARG_TO;
    a[1].memory = is_output ? io->user_mem : io->prim_mem;
    return exec_prim(io->rprim, c->strm, 2, a, "reorder");
}

/* Binds io to the user pointer (and the workspace when reordering); runs the
 * input reorder.  */
static dcl_status io_bind_in(cpu_impl *c, conv_io *io, const void *user) {
    if (!io->used) return DCL_OK;
    if (io->reorder) {
        dnnl_memory_set_data_handle(io->user_mem, (void *)user);
        dnnl_memory_set_data_handle(io->prim_mem, (char *)c->ws + io->off);
        return reorder_exec(c, io, 0);
    }
    dnnl_memory_set_data_handle(io->prim_mem, (void *)user);
    return DCL_OK;
}
static void io_bind_out(cpu_impl *c, conv_io *io, void *user) {
    if (!io->used) return;
    if (io->reorder) dnnl_memory_set_data_handle(io->user_mem, user);
    dnnl_memory_set_data_handle(io->prim_mem, io->in_ws ? (char *)c->ws + io->off : user);
}

static dcl_status run_plan(cpu_impl *c, cpu_conv_plan *p) {
    dnnl_exec_arg_t a[6];
    int n = 0;
    for (int i = 0; i < IO_N; i++) {
        if (!p->io[i].used) continue;
        a[n].arg = p->io[i].arg;
        a[n].memory = p->io[i].prim_mem;
        n++;
    }
    if (p->scratch_mem) {
        dnnl_memory_set_data_handle(p->scratch_mem, c->ws);
        a[n].arg = DNNL_ARG_SCRATCHPAD;
        a[n].memory = p->scratch_mem;
        n++;
    }
    return exec_prim(p->prim, c->strm, n, a, "convolution");
}

static void add_into(int nt, float *dst, const float *src, size_t n) {
    #pragma omp parallel for simd num_threads(nt) if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static dcl_status check_desc(const dcl_conv_desc *d, const char *what) {
    if (!d || d->n <= 0 || d->ci <= 0 || d->co <= 0 || d->groups <= 0 || d->ci % d->groups ||
        d->co % d->groups || d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->dh <= 0 ||
        d->dw <= 0 || d->ho <= 0 || d->wo <= 0 || d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0)
        return dcl_fail(DCL_ERR_ARG, "cpu %s: invalid convolution descriptor (call dcl_conv_desc_finish first)", what);
    int eho = (d->hi + d->pt + d->pb - d->dh * (d->kh - 1) - 1) / d->sh + 1;
    int ewo = (d->wi + d->pl + d->pr - d->dw * (d->kw - 1) - 1) / d->sw + 1;
    if (eho != d->ho || ewo != d->wo)
        return dcl_fail(DCL_ERR_SHAPE, "cpu %s: output %dx%d does not match input %dx%d (expected %dx%d)", what,
                        d->ho, d->wo, d->hi, d->wi, eho, ewo);
    return DCL_OK;
}

/* The forward oneDNN plan (activation post-op, or accumulating into y with
 * a sum post-op) bound to the caller's buffers and run; a destination kept
 * in another layout is reordered back to y. */
static dcl_status fwd_plan_run(cpu_impl *c, const dcl_conv_desc *d, int bias, dcl_act act, int accumulate,
                               float *y, const float *x, const float *w, const float *b) {
    pthread_mutex_lock(&c->lock);
    cpu_conv_plan *p;
    dcl_status s = plan_get_act(c, d, CPU_CONV_FWD, bias, act, accumulate, &p);
    if (s == DCL_OK) s = ws_ensure(c, p->ws_bytes);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_SRC], x);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_WEI], w);
    if (s == DCL_OK && bias) s = io_bind_in(c, &p->io[IO_BIAS], b);
    if (s == DCL_OK) {
        io_bind_out(c, &p->io[IO_DST], y);
        s = run_plan(c, p);
    }
    if (s == DCL_OK && p->io[IO_DST].reorder) s = reorder_exec(c, &p->io[IO_DST], 1);
    pthread_mutex_unlock(&c->lock);
    return s;
}

dcl_status cpu_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y, const float *x,
                            const float *w, const float *b) {
    DCL_TRY(check_desc(d, "conv_fwd"));
    if (!y || !x || !w) return dcl_fail(DCL_ERR_ARG, "cpu conv_fwd: NULL tensor");
    if (act < DCL_ACT_NONE || act > DCL_ACT_SIGMOID)
        return dcl_fail(DCL_ERR_ARG, "cpu conv_fwd: unknown activation %d", (int)act);
    cpu_impl *c = cpu_of(be);
    int bias = d->has_bias && b;
    int64_t ny = (int64_t)d->n * d->co * d->ho * d->wo;
    if (act != DCL_ACT_NONE && (int64_t)(d->ci / d->groups) * d->kh * d->kw < CPU_POSTOP_MIN_K) {
        /* the convolution, then the activation as its own pass */
        DCL_TRY(cpu_conv_fwd_act(be, d, DCL_ACT_NONE, y, x, w, b));
        return cpu_act_fwd(be, act, ny, y, y);
    }
    if (is_small(d)) {
        cpu_small_gemm_xwt(c->nt, d->n, d->ci, d->co, y, x, w, bias ? b : NULL);
        return act == DCL_ACT_NONE ? DCL_OK : cpu_act_fwd(be, act, ny, y, y);
    }
    if (cpu_conv_pw_impl(c, d, CPU_CONV_FWD, bias) == CPU_PW_GEMM) {
        int64_t M = (int64_t)d->n * d->hi * d->wi;
        if (bias) bias_rows(c->nt, y, b, M, d->co, 1);
        DCL_TRY(pw_sgemm('N', 'T', M, d->co, d->ci, x, d->ci, w, d->ci, bias ? 1.0f : 0.0f, y, d->co));
        return act == DCL_ACT_NONE ? DCL_OK : cpu_act_fwd(be, act, ny, y, y);
    }
    if (static_layout(c, d) == CPU_LAYOUT_DIRECT || dw_direct(c, d, CPU_CONV_FWD)) {
        DCL_TRY(cpu_dw_fwd(c->nt, d, y, x, w, bias ? b : NULL));
        return act == DCL_ACT_NONE ? DCL_OK : cpu_act_fwd(be, act, ny, y, y);
    }
    return fwd_plan_run(c, d, bias, act, 0, y, x, w, b);
}

dcl_status cpu_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x, const float *w,
                        const float *b) {
    return cpu_conv_fwd_act(be, d, DCL_ACT_NONE, y, x, w, b);
}

dcl_status cpu_conv_fwd_add(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x, const float *w,
                            const float *b) {
    DCL_TRY(check_desc(d, "conv_fwd_add"));
    if (!y || !x || !w) return dcl_fail(DCL_ERR_ARG, "cpu conv_fwd_add: NULL tensor");
    cpu_impl *c = cpu_of(be);
    int bias = d->has_bias && b;
    int64_t ny = (int64_t)d->n * d->co * d->ho * d->wo;
    if (cpu_conv_pw_impl(c, d, CPU_CONV_FWD, bias) == CPU_PW_GEMM) {
        int64_t M = (int64_t)d->n * d->hi * d->wi;
        if (bias) bias_rows(c->nt, y, b, M, d->co, 0);
        return pw_sgemm('N', 'T', M, d->co, d->ci, x, d->ci, w, d->ci, 1.0f, y, d->co);
    }
    if (is_small(d) || static_layout(c, d) == CPU_LAYOUT_DIRECT) {
        /* no oneDNN primitive: into a temporary, then added */
        float *t = dcl_alloc((size_t)ny * sizeof(float));
        if (!t) return dcl_fail(DCL_ERR_NOMEM, "cpu conv_fwd_add: out of memory");
        dcl_status s = cpu_conv_fwd_act(be, d, DCL_ACT_NONE, t, x, w, b);
        if (!s) s = cpu_add(be, ny, y, y, t);
        dcl_free(t);
        return s;
    }
    return fwd_plan_run(c, d, bias, DCL_ACT_NONE, 1, y, x, w, b);
}

/* The 1x1 backward products split over the threads by the columns of
 * their outputs (the wide input side) on projections (co < ci), by rows
 * elsewhere: a projection's weight gradient has few rows (co), and halves
 * of them use oneDNN's sgemm kernels worse than halves of the columns
 * (2 threads, ms per product, rows / columns: 144->32 at 75x75 batch 8
 * 3.39 / 2.82, 2688->448 at 10x10 11.9 / 10.2, 96->24 at 56x56 batch 16
 * 1.96 / 1.45; expansions 24->144 2.83 / 3.56).  In the training step the
 * projections' backward: b0 (224, batch 16) 70.8 -> 69.2 ms, b4 (299,
 * batch 8) 259 -> 256 ms (three and two alternated runs). */
static int pw_split_cols(const dcl_conv_desc *d) { return d->co < d->ci; }

dcl_status cpu_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d, float *dx, const float *dy,
                             const float *w) {
    DCL_TRY(check_desc(d, "conv_bwd_data"));
    if (!dx || !dy || !w) return dcl_fail(DCL_ERR_ARG, "cpu conv_bwd_data: NULL tensor");
    cpu_impl *c = cpu_of(be);
    if (is_small(d)) {
        cpu_small_gemm_dyw(c->nt, d->n, d->ci, d->co, dx, dy, w);
        return DCL_OK;
    }
    /* split by hand: oneDNN's own two-thread split of these products on
     * small maps left a thread waiting 6-12% (b4 112->672 at 19x19,
     * 272->1632 at 10x10); with it the 1x1 backward layers of a b4 step 372
     * -> 366 ms, b0's thread-idle time in them 6.7 -> 2.9 ms */
    if (cpu_conv_pw_impl(c, d, CPU_CONV_BWD_DATA, 0) == CPU_PW_GEMM)
        return cpu_sgemm_split(c->nt, pw_split_cols(d), 'N', 'N', (int64_t)d->n * d->hi * d->wi, d->ci, d->co, dy,
                               d->co, w, d->ci, 0.0f, dx, d->ci);
    if (static_layout(c, d) == CPU_LAYOUT_DIRECT || dw_direct(c, d, CPU_CONV_BWD_DATA))
        return cpu_dw_bwd_data(c->nt, d, dx, dy, w);
    pthread_mutex_lock(&c->lock);
    cpu_conv_plan *p;
    dcl_status s = plan_get(c, d, CPU_CONV_BWD_DATA, 0, &p);
    if (s == DCL_OK) s = ws_ensure(c, p->ws_bytes);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_DST], dy);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_WEI], w);
    if (s == DCL_OK) {
        io_bind_out(c, &p->io[IO_SRC], dx);
        s = run_plan(c, p);
    }
    if (s == DCL_OK && p->io[IO_SRC].reorder) s = reorder_exec(c, &p->io[IO_SRC], 1);
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* Weight gradient of convolutions with few input taps (the stem) on the own
 * kernel (cpu_stem.c): whenever own kernels are forced
 * (DCL_CPU_CONV_LAYOUT=direct), and by default on maps of 1024 output
 * pixels and more (DCL_CPU_STEM=onednn keeps oneDNN).  oneDNN 2.6 on NHWC
 * runs them at 30-50 GFLOPS with AVX2; in a training step the stem's
 * weight gradient takes b4 (299, batch 8) 10.5-11.4 ms with oneDNN,
 * 5.1-5.3 with the own kernel, b0 (224, batch 16) 6.1 / 4.4. */
static int stem_direct(const cpu_impl *c, const dcl_conv_desc *d) {
    if (!cpu_stem_handles(d)) return 0;
    if (c->layout_force == CPU_LAYOUT_DIRECT) return 1;
    return c->layout_force == CPU_LAYOUT_AUTO && c->stem_own && (int64_t)d->n * d->ho * d->wo >= 1024;
}

dcl_status cpu_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db,
                                const float *dy, const float *x) {
    DCL_TRY(check_desc(d, "conv_bwd_weights"));
    if (!dw || !dy || !x) return dcl_fail(DCL_ERR_ARG, "cpu conv_bwd_weights: NULL tensor");
    cpu_impl *c = cpu_of(be);
    int bias = d->has_bias && db;
    if (is_small(d)) {
        cpu_small_gemm_dw(c->nt, d->n, d->ci, d->co, dw, bias ? db : NULL, dy, x);
        return DCL_OK;
    }
    if (cpu_conv_pw_impl(c, d, CPU_CONV_BWD_W, bias) == CPU_PW_GEMM) {
        int64_t M = (int64_t)d->n * d->hi * d->wi;
        DCL_TRY(cpu_sgemm_split(c->nt, pw_split_cols(d), 'T', 'N', d->co, d->ci, M, dy, d->co, x, d->ci, 1.0f, dw,
                                d->ci));
        return bias ? col_sums_add(c->nt, db, dy, M, d->co) : DCL_OK;
    }
    if (stem_direct(c, d)) return cpu_stem_bwd_weights(c->nt, d, dw, bias ? db : NULL, dy, x);
    if (static_layout(c, d) == CPU_LAYOUT_DIRECT) return cpu_dw_bwd_weights(c->nt, d, dw, bias ? db : NULL, dy, x);
    pthread_mutex_lock(&c->lock);
    if (dw_direct_for_bwd_w(c, d, bias)) {
        pthread_mutex_unlock(&c->lock);
        return cpu_dw_bwd_weights(c->nt, d, dw, bias ? db : NULL, dy, x);
    }
    cpu_conv_plan *p;
    dcl_status s = plan_get(c, d, CPU_CONV_BWD_W, bias, &p);
    if (s == DCL_OK) s = ws_ensure(c, p->ws_bytes);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_SRC], x);
    if (s == DCL_OK) s = io_bind_in(c, &p->io[IO_DST], dy);
    if (s == DCL_OK) {
        io_bind_out(c, &p->io[IO_WEI], dw);
        if (bias) io_bind_out(c, &p->io[IO_BIAS], db);
        s = run_plan(c, p);
    }
    if (s == DCL_OK) {
        conv_io *io = &p->io[IO_WEI];
        if (p->acc_mode == ACC_REORDER_SUM) s = reorder_exec(c, io, 1);
        else add_into(c->nt, dw, (const float *)((char *)c->ws + io->off), io->bytes / sizeof(float));
    }
    if (s == DCL_OK && bias)
        add_into(1, db, (const float *)((char *)c->ws + p->io[IO_BIAS].off), (size_t)d->co);
    pthread_mutex_unlock(&c->lock);
    return s;
}

const char *cpu_conv_plan_info(dcl_backend *be, const dcl_conv_desc *d, int dir) {
    cpu_impl *c = cpu_of(be);
    if (check_desc(d, "conv") != DCL_OK) return "invalid descriptor";
    if (is_small(d)) return "dense product (1x1 map)";
    if (cpu_conv_pw_impl(c, d, dir, dir == CPU_CONV_BWD_DATA ? 0 : d->has_bias) == CPU_PW_GEMM)
        return "matrix product (oneDNN sgemm on NHWC)";
    if (dir == CPU_CONV_BWD_W && stem_direct(c, d)) return "own few-tap weight-gradient kernel (cpu_stem.c)";
    if (cpu_conv_layout(c, d, dir) == CPU_LAYOUT_DIRECT) return "own depthwise NHWC kernel";
    cpu_conv_plan *p;
    pthread_mutex_lock(&c->lock);
    dcl_status s = plan_get(c, d, dir, d->has_bias, &p);
    pthread_mutex_unlock(&c->lock);
    return s == DCL_OK ? p->info : dcl_last_error();
}

dcl_status dcl_cpu_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act, float *y, const float *x,
                                const float *w, const float *b) {
    if (!be || !be->name || strcmp(be->name, "cpu") != 0 || !be->impl)
        return dcl_fail(DCL_ERR_ARG, "dcl_cpu_conv_fwd_act: backend %s is not the cpu backend",
                        be && be->name ? be->name : "(null)");
    return cpu_conv_fwd_act(be, d, act, y, x, w, b);
}
