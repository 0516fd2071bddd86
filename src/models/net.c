/* Static graph executor: build, plan (shapes + memory), forward, backward. */
#include "dcl/net.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#endif

typedef enum {
    NK_INPUT, NK_CONV, NK_BN, NK_ACT, NK_PRELU, NK_POOL, NK_GAP, NK_MUL, NK_ADD,
    NK_DROPOUT, NK_DROPPATH, NK_LINEAR
} node_kind;

static const char *g_kind_name[] = {"input", "conv", "bn", "act", "prelu", "pool", "gap",
                                    "mul", "add", "dropout", "droppath", "linear"};

typedef struct value {
    int c, n, h, w;
    int64_t numel;
    int producer;          /* node index */
    int last_consumer;     /* node index, -1 if none */
    int is_output;
    int needs_grad;
    size_t off, goff;      /* arena offsets (bytes) */
    float *data, *grad;
    int grad_ready;
    /* fusion (plan_fuse) */
    int elided;            /* fused away in this plan: never materialised */
    int recomp;            /* training: dropped after its forward use, recomputed in backward */
    int bwd_ready;         /* the recomputed copy is valid (during backward) */
    int nuse;              /* consumer edges */
    int first_consumer;    /* smallest consumer node, -1 none */
    int64_t ext_start, ext_end, gext_end; /* lifetime extensions for fused readers/writers (-1 none) */
    size_t boff;           /* arena offset of the recomputed copy */
    int galias;            /* training: shares the gradient buffer of this value (an add's output), -1 none */
    int dalias;            /* evaluation: lives in the buffer of this value (a residual added in place), -1 none */
    int preact;            /* evaluation: holds its producer's output before the activation (fu_acd): not readable */
    int mbv;               /* evaluation in micro-batches: made by a node of the prefix (or the input) */
    int mbs;               /* ... and used only there: one micro-batch's worth of memory, not readable after */
} value;

typedef struct node {
    node_kind kind;
    int in0, in1, out;
    char name[DCL_NAME_MAX];
    /* attributes */
    int out_ch, k, stride, dil, groups, pad, same, bias;
    float eps, momentum, p;
    dcl_act act;
    dcl_pool_kind pk;
    int ceil_mode, cip;
    /* parameter / buffer indices (-1 none) */
    int pw, pb, brm, brv, bnbt;
    /* plan */
    dcl_conv_desc cd;
    dcl_pool_desc pd;
    size_t s_off[3];       /* saved stats / mask offsets */
    float *save[3];
    float *mask_host;
    double flops;
    /* fusion in the current plan (plan_fuse) */
    int fu;                /* FU_* */
    int fu_act;            /* FU_BNX / FU_FOLD: activation node done in the same pass, -1 none */
    int fu_bn;             /* FU_FOLD: batch norm folded into the weights; FU_SEMUL: its batch norm */
    int fu_gap, fu_mul;    /* FU_BNX / FU_ACTSE: squeeze-excitation pooling / scaling of the activation, -1 none */
    int fu_add;            /* FU_FOLD: the residual add done by accumulating into the other input, -1 none */
    int fu_out;            /* value written by the fused chain */
    dcl_act fu_a;          /* activation of the chain */
    size_t fold_off;       /* FU_FOLD with a batch norm: floats into net->fold */
    int se_sums;           /* FU_BNX with a squeeze-excitation: net->se_t holds its sums (backward) */
    /* DCL_FUSE_PW (training): a 1x1 convolution's backward fused with the batch norm next to it */
    int fu_pw;             /* FU_BNX: the convolution (the node before) whose backward finishes this dx, -1 none */
    int fu_bnd;            /* conv: the FU_BNX node whose dx its backward finishes, -1 none */
    int fu_se;             /* conv: the FU_SEMUL mul whose output it reads; recomputed inside its backward, -1 none */
    int dx_pending;        /* FU_BNX, backward: the sums are done, dx is left to fu_pw */
    int64_t dx_mt;         /* ... with this many rows behind the statistics */
    int se_done;           /* FU_SEMUL, backward: the fused convolution backward did its sums */
    int fu_sw;             /* conv (host backends): the FU_SEMUL mul whose scale it applies to its weights, sample by sample, -1 none */
    int se_byw;            /* FU_SEMUL: its output is left unscaled, the consumer (fu_sw) scales its weights */
    int fu_cs;             /* FU_BNX: the 1x1 convolution before it whose input gives its batch statistics (bn_stats_pw), -1 none */
    int fu_dw;             /* FU_BNX: the depthwise convolution after it, computed in its pass (bn_act_dw_fwd), -1 none */
    int fu_dwin;           /* conv: the FU_BNX node whose pass computes its forward, -1 none */
    int fu_acd;            /* FU_FOLD (evaluation): the depthwise convolution after it that applies its activation to its input rows, -1 none */
    int fu_ain;            /* FU_FOLD depthwise conv (evaluation): the convolution whose activation it applies (bn_act_dw_fwd), -1 none */
} node;

struct dcl_net {
    dcl_backend *be;
    dcl_table params, buffers;
    float *P, *G, *B;          /* device */
    int64_t *counters;         /* host, one per buffer entry (num_batches_tracked) */
    node *nodes;
    int nn, ncap;
    value *vals;
    int nv, vcap;
    int input;
    int finalized;
    /* plan */
    int planned, training, pn, ph, pw;
    uint8_t *arena;
    size_t arena_bytes;
    int esz;                   /* bytes per activation element: 4, or 2 on a bf16 backend */
    float *scratch, *scratch2; /* accumulation scratch */
    /* sync BN (dcl_net_set_bn_sync): cross-process statistics */
    dcl_net_gather_fn bn_gather;
    void *bn_ctx;
    int bn_ranks;
    float *bn_tmp;             /* device, bn_tmp_n floats */
    size_t bn_tmp_n;
    /* fusion (dcl_net_set_fuse) */
    int fuse;                  /* DCL_FUSE_* */
    float *fold;               /* device: folded weights, biases and scales of the evaluation plan */
    float *fold_host;          /* host: per-channel scratch of the folding (5 * fold_c floats) */
    int fold_c;
    int fold_valid;            /* net->fold matches the parameters and running statistics */
    float *csum;               /* device: per-channel sums of the fused batch-norm backward (4 * max C) */
    float *se_t;               /* device: squeeze-excitation backward sums (bn_act_se_sums) */
    float *se_ds;              /* device: the scale's gradient from se_pw_bwd until the mul's backward */
    float *sw;                 /* host: one sample's scaled weights of a fu_sw convolution */
    double *prof;              /* dcl_net_profile: seconds per node, forward then backward (2 * nn) */
    long prof_steps;
    /* evaluation plans on host backends: nodes [0, mb_p) run mb samples at a time (plan_microbatch) */
    int mb_p, mb;
    int mb_pass;               /* during dcl_net_forward: which pass over the prefix (folded weights made by pass 0) */
};

/* ------------------------------------------------------------------ */

dcl_status dcl_net_create(dcl_net **out, dcl_backend *be) {
    dcl_net *n = calloc(1, sizeof *n);
    if (!n) return dcl_fail(DCL_ERR_NOMEM, "net: out of memory");
    n->be = be;
    n->esz = dcl_backend_act_bytes(be);
    n->input = -1;
    n->fuse = DCL_FUSE_ALL;
    dcl_table_init(&n->params);
    dcl_table_init(&n->buffers);
    dcl_backend_fill_host_extras(be);
    *out = n;
    return DCL_OK;
}

static void mem_free(dcl_backend *be, void *p) {
    if (!p) return;
    if (be->mem_free) be->mem_free(be, p);
    else dcl_free(p);
}

/* Large host buffers (activations, parameters, gradients) on huge pages
 * (dcl_alloc_big); device memory through the backend. */
static void *big_alloc(dcl_backend *be, size_t bytes) {
    return be->mem_alloc ? be->mem_alloc(be, bytes) : dcl_alloc_big(bytes);
}

static void *mem_alloc(dcl_backend *be, size_t bytes) {
    if (be->mem_alloc) return be->mem_alloc(be, bytes);
    return dcl_alloc(bytes);
}

static dcl_status mem_zero(dcl_backend *be, void *p, size_t bytes) {
    if (be->mem_zero) return be->mem_zero(be, p, bytes);
    memset(p, 0, bytes);
    return DCL_OK;
}

static dcl_status to_dev(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    if (be->to_device) return be->to_device(be, dst, src, bytes);
    memcpy(dst, src, bytes);
    return DCL_OK;
}

static dcl_status to_host(dcl_backend *be, void *dst, const void *src, size_t bytes) {
    if (be->to_host) return be->to_host(be, dst, src, bytes);
    memcpy(dst, src, bytes);
    return DCL_OK;
}

/* y += x over n fp32 values (parameter gradients): axpby, whose arguments
 * stay fp32 on every backend (add's are activations). */
static dcl_status p_acc(dcl_backend *be, int64_t n, float *y, const float *x) {
    return be->axpby(be, n, y, 1.0f, x, 1.0f);
}

/* Copy of n activation elements within the backend's memory. */
static dcl_status act_copy(dcl_net *net, float *dst, const float *src, int64_t n) {
    dcl_backend *be = net->be;
    if (dst == src) return DCL_OK;
    if (be->mem_copy) return be->mem_copy(be, dst, src, (size_t)n * net->esz);
    if (be->is_host) { memcpy(dst, src, (size_t)n * net->esz); return DCL_OK; }
    if (net->esz == 4) return be->axpby(be, n, dst, 1.0f, src, 0.0f);
    return dcl_fail(DCL_ERR_UNSUPPORTED, "net: backend %s cannot copy bf16 activations", be->name);
}

/* Activations between host fp32 and the backend's storage (converted on the
 * host when the storage is bf16, so half the bytes cross the bus). */
static dcl_status act_from_host(dcl_net *net, float *dst, const float *src, int64_t n) {
    if (net->esz == 4) return to_dev(net->be, dst, src, (size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * sizeof(uint16_t) + 1);
    if (!h) return dcl_fail(DCL_ERR_NOMEM, "net: out of memory converting %lld values", (long long)n);
    dcl_bf16_pack(n, h, src);
    dcl_status s = to_dev(net->be, dst, h, (size_t)n * sizeof(uint16_t));
    free(h);
    return s;
}

static dcl_status act_to_host(dcl_net *net, float *dst, const float *src, int64_t n) {
    if (net->esz == 4) return to_host(net->be, dst, src, (size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * sizeof(uint16_t) + 1);
    if (!h) return dcl_fail(DCL_ERR_NOMEM, "net: out of memory converting %lld values", (long long)n);
    dcl_status s = to_host(net->be, h, src, (size_t)n * sizeof(uint16_t));
    if (!s) dcl_bf16_unpack(n, dst, h);
    free(h);
    return s;
}

void dcl_net_free(dcl_net *net) {
    if (!net) return;
    mem_free(net->be, net->P);
    mem_free(net->be, net->G);
    mem_free(net->be, net->B);
    mem_free(net->be, net->arena);
    mem_free(net->be, net->bn_tmp);
    mem_free(net->be, net->fold);
    free(net->sw);
    mem_free(net->be, net->csum);
    mem_free(net->be, net->se_t);
    free(net->fold_host);
    free(net->prof);
    for (int i = 0; i < net->nn; i++) free(net->nodes[i].mask_host);
    free(net->counters);
    free(net->nodes);
    free(net->vals);
    dcl_table_free(&net->params);
    dcl_table_free(&net->buffers);
    free(net);
}

dcl_backend *dcl_net_backend(dcl_net *net) { return net->be; }

/* ---------------------------- building ---------------------------- */

static int new_value(dcl_net *net, int c, int producer) {
    if (net->nv == net->vcap) {
        int nc = net->vcap ? net->vcap * 2 : 256;
        value *nv = realloc(net->vals, nc * sizeof *nv);
        if (!nv) { dcl_fail(DCL_ERR_NOMEM, "net: out of memory"); return -1; }
        net->vals = nv;
        net->vcap = nc;
    }
    value *v = &net->vals[net->nv];
    memset(v, 0, sizeof *v);
    v->c = c;
    v->producer = producer;
    v->last_consumer = -1;
    return net->nv++;
}

static node *new_node(dcl_net *net, node_kind k, const char *name, int in0, int in1) {
    if (net->finalized) { dcl_fail(DCL_ERR_ARG, "net: cannot add layers after finalize"); return NULL; }
    if ((in0 >= 0 && in0 >= net->nv) || (in1 >= 0 && in1 >= net->nv) || (k != NK_INPUT && in0 < 0)) {
        dcl_fail(DCL_ERR_ARG, "net: layer %s gets an invalid input value", name ? name : g_kind_name[k]);
        return NULL;
    }
    if (net->nn == net->ncap) {
        int nc = net->ncap ? net->ncap * 2 : 256;
        node *nn = realloc(net->nodes, nc * sizeof *nn);
        if (!nn) { dcl_fail(DCL_ERR_NOMEM, "net: out of memory"); return NULL; }
        net->nodes = nn;
        net->ncap = nc;
    }
    node *d = &net->nodes[net->nn++];
    memset(d, 0, sizeof *d);
    d->kind = k;
    d->in0 = in0;
    d->in1 = in1;
    d->pw = d->pb = d->brm = d->brv = d->bnbt = -1;
    snprintf(d->name, sizeof d->name, "%s", name ? name : "");
    int idx = (int)(d - net->nodes);
    if (in0 >= 0) net->vals[in0].last_consumer = idx;
    if (in1 >= 0) net->vals[in1].last_consumer = idx;
    return d;
}

static int finish_node(dcl_net *net, node *d, int out_c) {
    int idx = (int)(d - net->nodes);
    int v = new_value(net, out_c, idx);
    if (v < 0) return -1;
    net->nodes[idx].out = v;
    return v;
}

static int add_param(dcl_net *net, const char *prefix, const char *suffix, int ndim, const int64_t *shape) {
    char name[DCL_NAME_MAX];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", suffix);
    return dcl_table_add(&net->params, name, ndim, shape, 0);
}

static int add_buffer(dcl_net *net, const char *prefix, const char *suffix, int ndim, const int64_t *shape, unsigned flags) {
    char name[DCL_NAME_MAX];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", suffix);
    return dcl_table_add(&net->buffers, name, ndim, shape, flags | DCL_PF_BUFFER);
}

int dcl_net_input(dcl_net *net, int channels) {
    if (net->input >= 0) { dcl_fail(DCL_ERR_ARG, "net: only one input is supported"); return -1; }
    node *d = new_node(net, NK_INPUT, "input", -1, -1);
    if (!d) return -1;
    int v = finish_node(net, d, channels);
    net->input = v;
    return v;
}

int dcl_net_conv(dcl_net *net, const char *name, int x, int out_ch, int k, int stride,
                 int dilation, int groups, int pad, int same_pad, int bias) {
    node *d = new_node(net, NK_CONV, name, x, -1);
    if (!d) return -1;
    int ci = net->vals[x].c;
    if (groups < 1 || ci % groups || out_ch % groups) {
        dcl_fail(DCL_ERR_SHAPE, "%s: channels %d->%d not divisible by groups %d", name, ci, out_ch, groups);
        return -1;
    }
    d->out_ch = out_ch; d->k = k; d->stride = stride; d->dil = dilation; d->groups = groups;
    d->pad = pad; d->same = same_pad; d->bias = bias;
    int64_t ws[4] = {out_ch, ci / groups, k, k};
    d->pw = add_param(net, name, "weight", 4, ws);
    if (d->pw < 0) return -1;
    if (bias) {
        int64_t bs[1] = {out_ch};
        d->pb = add_param(net, name, "bias", 1, bs);
        if (d->pb < 0) return -1;
    }
    return finish_node(net, d, out_ch);
}

int dcl_net_bn(dcl_net *net, const char *name, int x, float eps, float momentum) {
    node *d = new_node(net, NK_BN, name, x, -1);
    if (!d) return -1;
    int c = net->vals[x].c;
    int64_t s[1] = {c};
    d->eps = eps; d->momentum = momentum;
    d->pw = add_param(net, name, "weight", 1, s);
    d->pb = add_param(net, name, "bias", 1, s);
    d->brm = add_buffer(net, name, "running_mean", 1, s, 0);
    d->brv = add_buffer(net, name, "running_var", 1, s, 0);
    d->bnbt = add_buffer(net, name, "num_batches_tracked", 0, s, DCL_PF_COUNTER);
    if (d->pw < 0 || d->pb < 0 || d->brm < 0 || d->brv < 0 || d->bnbt < 0) return -1;
    return finish_node(net, d, c);
}

int dcl_net_act(dcl_net *net, int x, dcl_act a) {
    node *d = new_node(net, NK_ACT, NULL, x, -1);
    if (!d) return -1;
    d->act = a;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_prelu(dcl_net *net, const char *name, int x) {
    node *d = new_node(net, NK_PRELU, name, x, -1);
    if (!d) return -1;
    int64_t s[1] = {net->vals[x].c};
    d->pw = add_param(net, name, "weight", 1, s);
    if (d->pw < 0) return -1;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_pool(dcl_net *net, int x, dcl_pool_kind kind, int k, int stride, int pad,
                 int ceil_mode, int count_include_pad) {
    node *d = new_node(net, NK_POOL, NULL, x, -1);
    if (!d) return -1;
    d->pk = kind; d->k = k; d->stride = stride; d->pad = pad;
    d->ceil_mode = ceil_mode; d->cip = count_include_pad;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_gap(dcl_net *net, int x) {
    node *d = new_node(net, NK_GAP, NULL, x, -1);
    if (!d) return -1;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_mul(dcl_net *net, int x, int s) {
    if (s < 0 || s >= net->nv || net->vals[s].c != net->vals[x].c) {
        dcl_fail(DCL_ERR_SHAPE, "net: mul needs a per-channel scale with the same channels");
        return -1;
    }
    node *d = new_node(net, NK_MUL, NULL, x, s);
    if (!d) return -1;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_add(dcl_net *net, int a, int b) {
    if (b < 0 || b >= net->nv || net->vals[a].c != net->vals[b].c) {
        dcl_fail(DCL_ERR_SHAPE, "net: add needs inputs with the same channels");
        return -1;
    }
    node *d = new_node(net, NK_ADD, NULL, a, b);
    if (!d) return -1;
    return finish_node(net, d, net->vals[a].c);
}

int dcl_net_dropout(dcl_net *net, int x, float p) {
    if (!(p >= 0 && p < 1)) { dcl_fail(DCL_ERR_ARG, "dropout probability %g not in [0,1)", p); return -1; }
    node *d = new_node(net, NK_DROPOUT, NULL, x, -1);
    if (!d) return -1;
    d->p = p;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_droppath(dcl_net *net, int x, float p) {
    if (!(p >= 0 && p < 1)) { dcl_fail(DCL_ERR_ARG, "drop-path probability %g not in [0,1)", p); return -1; }
    node *d = new_node(net, NK_DROPPATH, NULL, x, -1);
    if (!d) return -1;
    d->p = p;
    return finish_node(net, d, net->vals[x].c);
}

int dcl_net_linear(dcl_net *net, const char *name, int x, int out_features) {
    node *d = new_node(net, NK_LINEAR, name, x, -1);
    if (!d) return -1;
    int64_t ws[2] = {out_features, net->vals[x].c}, bs[1] = {out_features};
    d->out_ch = out_features;
    d->pw = add_param(net, name, "weight", 2, ws);
    d->pb = add_param(net, name, "bias", 1, bs);
    if (d->pw < 0 || d->pb < 0) return -1;
    return finish_node(net, d, out_features);
}

int dcl_net_add_param(dcl_net *net, const char *name, int ndim, const int64_t *shape) {
    if (net->finalized) { dcl_fail(DCL_ERR_ARG, "net: cannot add %s after finalize", name); return -1; }
    return dcl_table_add(&net->params, name, ndim, shape, 0);
}

dcl_status dcl_net_mark_output(dcl_net *net, int v) {
    if (v < 0 || v >= net->nv) return dcl_fail(DCL_ERR_ARG, "net: bad output value %d", v);
    net->vals[v].is_output = 1;
    net->planned = 0;
    return DCL_OK;
}

dcl_status dcl_net_finalize(dcl_net *net) {
    if (net->finalized) return DCL_OK;
    if (net->input < 0) return dcl_fail(DCL_ERR_ARG, "net: no input");
    size_t pb = net->params.total * sizeof(float), bb = (net->buffers.total + 16) * sizeof(float);
    net->P = big_alloc(net->be, pb);
    net->G = big_alloc(net->be, pb);
    net->B = mem_alloc(net->be, bb);
    net->counters = calloc(net->buffers.n + 1, sizeof(int64_t));
    if (!net->P || !net->G || !net->B || !net->counters)
        return dcl_fail(DCL_ERR_NOMEM, "net: cannot allocate %zu bytes of parameters", 2 * pb + bb);
    DCL_TRY(mem_zero(net->be, net->P, pb));
    DCL_TRY(mem_zero(net->be, net->G, pb));
    DCL_TRY(mem_zero(net->be, net->B, bb));
    /* running_var starts at 1 */
    for (int i = 0; i < net->buffers.n; i++) {
        dcl_named *e = &net->buffers.v[i];
        if (strstr(e->name, "running_var")) {
            float *ones = malloc(e->numel * sizeof(float));
            if (!ones) return dcl_fail(DCL_ERR_NOMEM, "net: out of memory");
            for (int64_t j = 0; j < e->numel; j++) ones[j] = 1.0f;
            dcl_status s = to_dev(net->be, net->B + e->offset, ones, e->numel * sizeof(float));
            free(ones);
            DCL_TRY(s);
        }
    }
    net->finalized = 1;
    return DCL_OK;
}

/* ---------------------------- planning ---------------------------- */

typedef struct interval { int64_t start, end; size_t bytes; size_t *off; } interval;

static int cmp_iv(const void *a, const void *b) {
    const interval *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Greedy first-fit offset assignment for buffers with lifetimes. */
static size_t assign_offsets(interval *iv, int n) {
    qsort(iv, n, sizeof *iv, cmp_iv);
    size_t total = 0;
    int *placed = malloc(sizeof(int) * (n + 1));
    int np = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        for (;;) {
            int moved = 0;
            for (int j = 0; j < np; j++) {
                interval *p = &iv[placed[j]];
                if (p->end < iv[i].start || iv[i].end < p->start) continue;  /* disjoint in time */
                if (off < *p->off + p->bytes && *p->off < off + iv[i].bytes) {
                    off = *p->off + p->bytes;
                    moved = 1;
                }
            }
            if (!moved) break;
        }
        *iv[i].off = off;
        placed[np++] = i;
        if (off + iv[i].bytes > total) total = off + iv[i].bytes;
    }
    free(placed);
    return total;
}

static dcl_status shape_pass(dcl_net *net, int n, int h, int w) {
    for (int i = 0; i < net->nn; i++) {
        node *d = &net->nodes[i];
        value *o = &net->vals[d->out];
        value *x = d->in0 >= 0 ? &net->vals[d->in0] : NULL;
        o->n = n;
        d->flops = 0;
        switch (d->kind) {
        case NK_INPUT:
            o->h = h; o->w = w;
            break;
        case NK_CONV: {
            dcl_conv_desc *c = &d->cd;
            memset(c, 0, sizeof *c);
            c->n = n; c->ci = x->c; c->hi = x->h; c->wi = x->w; c->co = d->out_ch;
            c->kh = c->kw = d->k; c->sh = c->sw = d->stride; c->dh = c->dw = d->dil;
            c->groups = d->groups; c->has_bias = d->bias;
            if (d->same) {
                dcl_same_pad(x->h, d->k, d->stride, d->dil, &c->pt, &c->pb);
                dcl_same_pad(x->w, d->k, d->stride, d->dil, &c->pl, &c->pr);
            } else {
                c->pt = c->pb = c->pl = c->pr = d->pad;
            }
            dcl_status s = dcl_conv_desc_finish(c);
            if (s) return dcl_fail_ctx(s, "%s", d->name);
            o->h = c->ho; o->w = c->wo;
            d->flops = 2.0 * n * c->ho * c->wo * c->co * (double)(c->ci / c->groups) * c->kh * c->kw;
            break;
        }
        case NK_POOL: {
            dcl_pool_desc *p = &d->pd;
            memset(p, 0, sizeof *p);
            p->n = n; p->c = x->c; p->hi = x->h; p->wi = x->w;
            p->kh = p->kw = d->k; p->sh = p->sw = d->stride;
            p->pt = p->pb = p->pl = p->pr = d->pad;
            p->ceil_mode = d->ceil_mode; p->count_include_pad = d->cip; p->kind = d->pk;
            dcl_status s = dcl_pool_desc_finish(p);
            if (s) return dcl_fail_ctx(s, "pool layer %d", i);
            o->h = p->ho; o->w = p->wo;
            break;
        }
        case NK_GAP:
            o->h = o->w = 1;
            break;
        case NK_LINEAR:
            if (x->h != 1 || x->w != 1)
                return dcl_fail(DCL_ERR_SHAPE, "%s: linear layer needs a 1x1 input, got %dx%d", d->name, x->h, x->w);
            o->h = o->w = 1;
            d->flops = 2.0 * n * x->c * d->out_ch;
            break;
        case NK_MUL: {
            value *s = &net->vals[d->in1];
            if (s->h != 1 || s->w != 1) return dcl_fail(DCL_ERR_SHAPE, "mul: scale must be 1x1");
            o->h = x->h; o->w = x->w;
            break;
        }
        case NK_ADD: {
            value *b = &net->vals[d->in1];
            if (b->h != x->h || b->w != x->w)
                return dcl_fail(DCL_ERR_SHAPE, "add: %dx%d vs %dx%d", x->h, x->w, b->h, b->w);
            o->h = x->h; o->w = x->w;
            break;
        }
        default:
            o->h = x->h; o->w = x->w;
            break;
        }
        o->numel = (int64_t)o->n * o->c * o->h * o->w;
    }
    return DCL_OK;
}

/* ---- fusion: which nodes run as one pass in this plan ----
 * FU_BNX (training modes, backend with bn_stats / bn_act_*): a batch norm
 *   with batch statistics and the activation after it (when the batch
 *   norm's output has no other use) in one pass; the batch norm's output is
 *   never materialised, the backward recomputes it from the input and the
 *   saved statistics.  With a squeeze-excitation on the activation (its
 *   only uses a gap and a mul by a scale), the pass also writes the gap's
 *   per-sample means, the mul (FU_SEMUL) recomputes its output from the
 *   batch norm's input, and in training that output is recomputed again in
 *   the backward instead of being kept; the activation is never stored.
 * FU_FOLD (evaluation, host backends): conv + bn (+ act) as one
 *   convolution with the batch norm folded into the weights (the backend's
 *   conv_fwd_act applies the activation); also conv + act (the
 *   squeeze-excitation's 1x1 convolutions) where the backend has
 *   conv_fwd_act; a residual add after a convolution without activation is
 *   done by accumulating into the shortcut's buffer (conv_fwd_add).
 * FU_ACTSE (evaluation): an activation followed by a squeeze-excitation:
 *   its pass only pools, the mul (FU_SEMUL) recomputes the activation.
 * FU_SKIP: done by another node of the chain. */
enum { FU_NONE = 0, FU_SKIP, FU_BNX, FU_SEMUL, FU_FOLD, FU_ACTSE };

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* the node of the only use of value v, or -1 */
static int only_use(const dcl_net *net, int v) {
    const value *x = &net->vals[v];
    return !x->is_output && x->nuse == 1 ? x->last_consumer : -1;
}

/* A squeeze-excitation on value z: its only uses are a gap (g) and a mul of
 * z by a scale (u).  Returns 1 and the two nodes. */
static int se_pattern(const dcl_net *net, int z, int *g, int *u) {
    const value *v = &net->vals[z];
    if (v->is_output || v->nuse != 2 || v->first_consumer == v->last_consumer) return 0;
    const node *gn = &net->nodes[v->first_consumer], *un = &net->nodes[v->last_consumer];
    if (gn->kind != NK_GAP || gn->in0 != z || un->kind != NK_MUL || un->in0 != z || un->in1 == z) return 0;
    *g = v->first_consumer;
    *u = v->last_consumer;
    return 1;
}

/* node d (FU_BNX or FU_ACTSE) takes over squeeze-excitation (g, u) */
static void fuse_se(dcl_net *net, int di, int gi, int ui, int src) {
    node *d = &net->nodes[di], *g = &net->nodes[gi], *u = &net->nodes[ui];
    d->fu_gap = gi;
    d->fu_mul = ui;
    g->fu = FU_SKIP;
    u->fu = FU_SEMUL;
    u->fu_bn = di;
    net->vals[d->fu_out].elided = 1;
    net->vals[d->fu_out].gext_end = -1;
    net->vals[g->out].ext_start = di;                                  /* pooled in d's pass */
    net->vals[u->out].ext_start = di;                                  /* the activation lands in the mul's output */
    value *x = &net->vals[src];
    x->ext_end = max64(x->ext_end, ui);                                /* the mul reads d's input */
}

/* a 1x1 convolution without bias that is a plain matrix product on NHWC */
static int pw_plain(const node *d) {
    const dcl_conv_desc *c = &d->cd;
    return d->kind == NK_CONV && d->pb < 0 && c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 &&
           c->groups == 1 && c->pt == 0 && c->pb == 0 && c->pl == 0 && c->pr == 0 && c->ho == c->hi &&
           c->wo == c->wi;
}

/* DCL_FUSE_PW (training, after the FU_BNX fusion): 1x1 convolutions whose
 * backward takes over work of the batch norm next to them, where the
 * backend says it pays.
 * - fu_se: the input is a squeeze-excitation's scaled map (FU_SEMUL, not
 *   kept): se_pw_bwd recomputes it block by block for the weight gradient
 *   and does the mul's sums (bn_act_se_sums) on the fresh dm; the recomputed
 *   copy is never allocated.
 * - fu_bnd: the output goes only to a FU_BNX batch norm (no
 *   squeeze-excitation) right after it: bnx_bwd leaves d and the sums, the
 *   convolution's backward finishes dx block by block inside its two
 *   products (bn_dx_pw_bwd); the batch norm's statistics stay one step
 *   longer. */
static void plan_fuse_pw(dcl_net *net) {
    dcl_backend *be = net->be;
    for (int c = 0; c < net->nn; c++) {
        node *d = &net->nodes[c];
        if (!pw_plain(d) || d->in0 < 0) continue;
        value *x = &net->vals[d->in0], *y = &net->vals[d->out];
        int64_t rows = (int64_t)y->n * y->h * y->w;
        int u = x->producer;
        if (u >= 0 && net->nodes[u].kind == NK_MUL && net->nodes[u].fu == FU_SEMUL && x->recomp && x->needs_grad &&
            only_use(net, d->in0) == c && net->vals[net->nodes[u].in1].c == x->c && be->bn_act_se_sums &&
            (!be->pw_fused_pays || be->pw_fused_pays(be, DCL_PWF_BWD, rows, x->c, y->c))) {
            d->fu_se = u;
            continue;
        }
        int b = only_use(net, d->out);
        if (b != c + 1 || x->elided || x->recomp) continue;
        node *bn = &net->nodes[b];
        if (bn->kind != NK_BN || bn->fu != FU_BNX || bn->fu_mul >= 0 || bn->in0 != d->out) continue;
        if (be->pw_fused_pays && !be->pw_fused_pays(be, DCL_PWF_BWD, rows, y->c, x->c)) continue;
        d->fu_bnd = b;
        bn->fu_pw = c;
    }
}

static void plan_fuse_sw(dcl_net *net);

/* DCL_FUSE_PW (training modes): a FU_BNX batch norm right after a 1x1
 * convolution with few input channels takes its statistics from the
 * convolution's input (bn_stats_pw: its mean and covariance, a read of the
 * narrow input instead of the wide output) where the backend says it pays;
 * the input then lives until the batch norm's forward. */
static void plan_fuse_stats(dcl_net *net) {
    dcl_backend *be = net->be;
    for (int b = 0; b < net->nn; b++) {
        node *d = &net->nodes[b];
        if (d->kind != NK_BN || d->fu != FU_BNX || d->in0 < 0) continue;
        value *x = &net->vals[d->in0];
        int c = x->producer;
        if (c < 0 || !pw_plain(&net->nodes[c]) || net->nodes[c].in0 < 0 || only_use(net, d->in0) != b) continue;
        value *xi = &net->vals[net->nodes[c].in0];
        int64_t rows = (int64_t)x->n * x->h * x->w;
        /* not after a squeeze-excitation: its output may hold the unscaled map (fu_sw) */
        int se = xi->producer >= 0 && net->nodes[xi->producer].fu == FU_SEMUL;
        if (xi->elided || se || (be->pw_fused_pays && !be->pw_fused_pays(be, DCL_PWF_STATS, rows, x->c, xi->c))) continue;
        d->fu_cs = c;
        xi->ext_end = max64(xi->ext_end, b);
    }
}

/* DCL_FUSE_DW (training modes): a FU_BNX batch norm + activation (no
 * squeeze-excitation) whose output goes only to the depthwise convolution
 * right after it computes that convolution in its pass (bn_act_dw_fwd)
 * where the backend says it pays; the convolution's output then lives from
 * the batch norm on.  The activation is still stored: the convolution's
 * backward reads it. */
/* The depthwise convolution (fusion state fu, no residual or scaled
 * weights) that is the only reader of value v, written by node i, with
 * only nodes done elsewhere (FU_SKIP) between them, where the backend's
 * bn_act_dw_fwd pays; -1 none. */
static int dw_reader(dcl_net *net, int i, int v, int fu) {
    int c = only_use(net, v), k = i + 1;
    if (c <= i) return -1;
    while (k < c && net->nodes[k].fu == FU_SKIP) k++;
    const node *cv = &net->nodes[c];
    if (k != c || cv->kind != NK_CONV || cv->fu != fu || cv->fu_add >= 0 || cv->fu_sw >= 0 || cv->in0 != v) return -1;
    dcl_conv_desc cd = cv->cd;
    if (c < net->mb_p) cd.n = net->mb;   /* run a micro-batch at a time (plan_microbatch) */
    return cd.groups == cd.ci && cd.co == cd.ci && net->be->bn_act_dw_pays(net->be, &cd) ? c : -1;
}

static void plan_fuse_dw(dcl_net *net) {
    for (int b = 0; b < net->nn; b++) {
        node *d = &net->nodes[b];
        if (d->kind != NK_BN || d->fu != FU_BNX || d->fu_act < 0 || d->fu_mul >= 0 || d->in0 < 0) continue;
        int c = dw_reader(net, b, d->fu_out, FU_NONE);
        if (c < 0) continue;
        d->fu_dw = c;
        net->nodes[c].fu_dwin = b;
        net->vals[net->nodes[c].out].ext_start = b;
    }
}

/* DCL_FUSE_DW (evaluation, after FU_FOLD): a convolution with its
 * activation in its pass (FU_FOLD) whose output goes only to a depthwise
 * convolution right after it leaves the activation to that convolution,
 * which applies it to its input rows as it reads them (bn_act_dw_fwd
 * without normalisation): the activated map is never stored. */
static void plan_fuse_dw_eval(dcl_net *net) {
    for (int c1 = 0; c1 < net->nn; c1++) {
        node *d = &net->nodes[c1];
        if (d->kind != NK_CONV || d->fu != FU_FOLD || d->fu_act < 0 || d->fu_add >= 0 || d->fu_sw >= 0) continue;
        int c = dw_reader(net, c1, d->fu_out, FU_FOLD);
        if (c < 0) continue;
        d->fu_acd = c;
        net->nodes[c].fu_ain = c1;
        net->vals[d->fu_out].preact = 1;
    }
}

/* Host backends, training: a squeeze-excitation's scaled map m that no
 * fused convolution backward recomputes block by block (fu_se: the large
 * maps) is kept from the forward (which scales it in place) instead of
 * recomputed for the consumer's backward: a pass with a sigmoid per
 * element saved for the memory of the map (on b4 the 19x19 and 10x10
 * stages).  Not when the map holds the unscaled activation (se_byw). */
static void plan_keep_se(dcl_net *net) {
    for (int i = 0; i < net->nn; i++) {
        node *u = &net->nodes[i];
        if (u->kind != NK_MUL || u->fu != FU_SEMUL || u->se_byw) continue;
        value *m = &net->vals[u->out];
        int c = only_use(net, u->out);
        if (!m->recomp || (c >= 0 && net->nodes[c].fu_se >= 0)) continue;
        m->recomp = 0;
    }
}

static void plan_microbatch(dcl_net *net, int n, int training);

static void plan_fuse(dcl_net *net, int mode) {
    dcl_backend *be = net->be;
    int T = net->nn;
    net->mb_p = net->mb = 0;   /* set again by plan_microbatch below */
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        x->elided = x->recomp = x->bwd_ready = x->preact = 0;
        x->nuse = 0;
        x->first_consumer = -1;
        x->ext_start = x->ext_end = x->gext_end = -1;
        x->dalias = -1;
    }
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        d->fu = FU_NONE;
        d->fu_act = d->fu_bn = d->fu_gap = d->fu_mul = d->fu_add = -1;
        d->fu_pw = d->fu_bnd = d->fu_se = d->fu_sw = d->fu_cs = d->fu_dw = d->fu_dwin = d->fu_acd = d->fu_ain = -1;
        d->se_byw = 0;
        d->fu_out = d->out;
        d->fu_a = DCL_ACT_NONE;
        d->fold_off = 0;
        int in[2] = {d->in0, d->in1};
        for (int j = 0; j < 2; j++) {
            if (in[j] < 0) continue;
            value *x = &net->vals[in[j]];
            x->nuse++;
            if (x->first_consumer < 0 || i < x->first_consumer) x->first_consumer = i;
        }
    }
    int train = mode == DCL_PLAN_TRAIN;
    if (mode != DCL_PLAN_EVAL && (net->fuse & DCL_FUSE_BN_ACT) && be->bn_stats && be->bn_act_fwd &&
        (!train || (be->bn_act_bwd_reduce && be->bn_act_bwd_dx))) {
        for (int b = 0; b < T; b++) {
            node *d = &net->nodes[b];
            if (d->kind != NK_BN) continue;
            d->fu = FU_BNX;
            int a = only_use(net, d->out);
            if (a >= 0 && net->nodes[a].kind == NK_ACT) {
                node *an = &net->nodes[a];
                d->fu_act = a;
                d->fu_a = an->act;
                d->fu_out = an->out;
                an->fu = FU_SKIP;
                net->vals[d->out].elided = 1;
                net->vals[an->out].ext_start = b;
                if (train) net->vals[an->out].gext_end = 2 * T - b;  /* read by the fused backward */
            }
            int gi, ui;
            if (d->fu_act < 0 || !(net->fuse & DCL_FUSE_SE) || (train && !be->bn_act_dot) ||
                !se_pattern(net, d->fu_out, &gi, &ui))
                continue;
            fuse_se(net, b, gi, ui, d->in0);
            node *u = &net->nodes[ui];
            value *gv = &net->vals[net->nodes[gi].out], *sv = &net->vals[u->in1], *m = &net->vals[u->out];
            if (train) {
                if (!m->is_output) m->recomp = 1;
                /* the fused backward at b reads dm, the pooled gradient and the scale */
                m->gext_end = max64(m->gext_end, 2 * T - b);
                gv->gext_end = max64(gv->gext_end, 2 * T - b);
                sv->ext_end = max64(sv->ext_end, 2 * T - b);
            }
        }
    }
    if (train && (net->fuse & DCL_FUSE_PW) && be->se_pw_bwd && be->bn_dx_pw_bwd) plan_fuse_pw(net);
    if (mode != DCL_PLAN_EVAL && (net->fuse & DCL_FUSE_PW) && be->bn_stats_pw) plan_fuse_stats(net);
    if (mode != DCL_PLAN_EVAL && (net->fuse & DCL_FUSE_DW) && be->bn_act_dw_fwd && be->bn_act_dw_pays) plan_fuse_dw(net);
    if (mode == DCL_PLAN_EVAL && (net->fuse & DCL_FUSE_FOLD_BN) && (be->is_host || be->bn_fold)) {
        /* squeeze-excitation on an activation: the activation's pass only
         * pools (FU_ACTSE), the mul recomputes the activation from its input.
         * Host backends only: on a GPU the activation done in the
         * convolution's pass, a pooling pass and the multiply are faster
         * (H200, b4 at 299 batch 32: 2887 against 2664 images/s). */
        for (int a = 0; a < T && (net->fuse & DCL_FUSE_SE) && be->bn_act_fwd && be->is_host; a++) {
            node *d = &net->nodes[a];
            int gi, ui;
            if (d->kind != NK_ACT || !se_pattern(net, d->out, &gi, &ui)) continue;
            d->fu = FU_ACTSE;
            d->fu_a = d->act;
            fuse_se(net, a, gi, ui, d->in0);
        }
        for (int c = 0; c < T; c++) {
            node *d = &net->nodes[c];
            if (d->kind != NK_CONV) continue;
            int b = only_use(net, d->out);
            if (b < 0) continue;
            node *bn = &net->nodes[b];
            int a = -1;
            if (bn->kind == NK_BN) {
                a = only_use(net, bn->out);
                if (a >= 0 && (net->nodes[a].kind != NK_ACT || net->nodes[a].fu != FU_NONE)) a = -1;
                d->fu_bn = b;
                bn->fu = FU_SKIP;
                net->vals[d->out].elided = 1;
                d->fu_out = bn->out;
                if (a >= 0) net->vals[bn->out].elided = 1;
            } else if (bn->kind == NK_ACT && bn->fu == FU_NONE && be->conv_fwd_act) {
                a = b;
                net->vals[d->out].elided = 1;
            } else {
                continue;
            }
            d->fu = FU_FOLD;
            if (a >= 0) {
                d->fu_act = a;
                d->fu_a = net->nodes[a].act;
                d->fu_out = net->nodes[a].out;
                net->nodes[a].fu = FU_SKIP;
            }
            net->vals[d->fu_out].ext_start = c;
            /* a residual add after it: accumulate into the other input's
             * buffer, which becomes the add's output (when nothing else
             * reads that input after the convolution) */
            int A = d->fu_act < 0 && be->conv_fwd_add ? only_use(net, d->fu_out) : -1;
            if (A < 0 || net->nodes[A].kind != NK_ADD || net->nodes[A].in0 == net->nodes[A].in1) continue;
            node *an = &net->nodes[A];
            int q = an->in0 == d->fu_out ? an->in1 : an->in0;
            value *qv = &net->vals[q];
            int ok = !qv->is_output && q != net->input && !qv->elided && qv->last_consumer == A &&
                     !net->vals[an->out].is_output;
            for (int k = 0; k < T && ok; k++)
                if (k != A && (net->nodes[k].in0 == q || net->nodes[k].in1 == q) && k >= c) ok = 0;
            if (!ok) continue;
            d->fu_add = A;
            an->fu = FU_SKIP;
            net->vals[d->fu_out].elided = 1;
            net->vals[d->fu_out].ext_start = -1;
            d->fu_out = an->out;
            net->vals[an->out].dalias = q;
        }
    }
    if (be->is_host && !be->mem_alloc && net->esz == 4 && (net->fuse & DCL_FUSE_SE)) plan_fuse_sw(net);
    if (train && be->is_host) plan_keep_se(net);
    plan_microbatch(net, net->vals[net->input].n, mode);   /* (the fusion below elides nothing) */
    if (mode == DCL_PLAN_EVAL && (net->fuse & DCL_FUSE_DW) && be->bn_act_dw_fwd && be->bn_act_dw_pays)
        plan_fuse_dw_eval(net);
}

/* Squeeze-excitation scale in the next convolution's weights (host
 * backends, fp32 activations, DCL_FUSE_SE): a 1x1 convolution whose only input is a
 * squeeze-excitation's output m = a * s[n][c] computes conv(a, w diag(s[n]))
 * sample by sample instead, so the mul's in-place pass over m is not run
 * (conv is linear in each input channel).  Only on maps of at least 32x32,
 * where one sample's product is still large (b4 at 299: the 150x150 to
 * 38x38 stages; DCL_SW_MIN_HW overrides the 1024 pixels, for tests).  The
 * backward recomputes m from the batch norm's input either way. */
static void plan_fuse_sw(dcl_net *net) {
    const char *e = getenv("DCL_SW_MIN_HW");
    int min_hw = e && *e ? atoi(e) : 1024;
    for (int c = 0; c < net->nn; c++) {
        node *d = &net->nodes[c];
        if (d->kind != NK_CONV || d->in0 < 0 || d->cd.kh != 1 || d->cd.kw != 1 || d->cd.groups != 1) continue;
        value *x = &net->vals[d->in0];
        int u = x->producer;
        if (u < 0 || net->nodes[u].kind != NK_MUL || net->nodes[u].fu != FU_SEMUL || only_use(net, d->in0) != c ||
            x->h * x->w < min_hw || net->vals[net->nodes[u].in1].c != x->c)
            continue;
        d->fu_sw = u;
        net->nodes[u].se_byw = 1;
        value *sv = &net->vals[net->nodes[u].in1];
        sv->ext_end = max64(sv->ext_end, c);   /* the scale is read by the convolution */
    }
}

/* Training: the gradient of an add's input is the add's output gradient, so
 * an input whose first gradient contribution comes from the add (the add is
 * its last consumer) can share that buffer instead of receiving a copy.
 * When both inputs share it, an input with other consumers (a residual
 * shortcut) gets their contributions added into the buffer later; that is
 * only done when all those consumers come before the other input's
 * producer, whose backward reads the buffer first. */
static void plan_grad_alias(dcl_net *net) {
    int T = net->nn;
    for (int v = 0; v < net->nv; v++) net->vals[v].galias = -1;
    for (int A = T - 1; A >= 0; A--) {
        node *d = &net->nodes[A];
        if (d->kind != NK_ADD || d->in0 == d->in1) continue;
        value *o = &net->vals[d->out];
        if (o->is_output || !o->needs_grad || o->elided) continue;
        int in[2] = {d->in0, d->in1}, ok[2];
        for (int j = 0; j < 2; j++) {
            value *v = &net->vals[in[j]];
            ok[j] = v->needs_grad && !v->is_output && !v->elided && !v->recomp && v->last_consumer == A;
        }
        if (ok[0] && ok[1]) {
            if (net->vals[in[0]].nuse > 1 && net->vals[in[1]].nuse > 1) ok[1] = 0;
            for (int j = 0; j < 2 && ok[0] && ok[1]; j++) {
                if (net->vals[in[j]].nuse == 1) continue;
                int other = net->vals[in[1 - j]].producer;
                for (int k = 0; k < T && ok[j]; k++) {
                    node *c = &net->nodes[k];
                    if (k != A && (c->in0 == in[j] || c->in1 == in[j]) && k >= other) ok[j] = 0;
                }
            }
        }
        for (int j = 0; j < 2; j++)
            if (ok[j]) net->vals[in[j]].galias = d->out;
    }
}

static int grad_root(const dcl_net *net, int v) {
    while (net->vals[v].galias >= 0) v = net->vals[v].galias;
    return v;
}

static int data_root(const dcl_net *net, int v) {
    while (net->vals[v].dalias >= 0) v = net->vals[v].dalias;
    return v;
}

dcl_status dcl_net_set_fuse(dcl_net *net, int flags) {
    if (flags & ~DCL_FUSE_ALL) return dcl_fail(DCL_ERR_ARG, "net: unknown fusion flags 0x%x", (unsigned)flags);
    if (flags != net->fuse) net->planned = 0;
    net->fuse = flags;
    return DCL_OK;
}

int dcl_net_fuse(const dcl_net *net) { return net->fuse; }

/* Evaluation plans on host backends run the layers on large maps (nodes
 * [0, mb_p): up to the first whose input has fewer than MB_MIN_HW pixels)
 * a few samples at a time (mb, DCL_EVAL_MICROBATCH, default 2; 0 turns it
 * off), so that what one layer writes is still in the last-level cache when
 * the next one reads it; the layers on small maps run on the whole batch,
 * where their products are larger.  A value made and used only by the
 * prefix takes one micro-batch's memory (mbs) and holds only the last
 * micro-batch afterwards (not readable: mark it as an output to keep it).
 * Measured on the 2-core Zen 3 (`dcl bench --mode infer`, the settings
 * alternated): b4 at 299 batch 8 23.6-23.8 -> 24.0-24.2 images/s, RSS 394
 * -> 311 MB; b0 at 224 batch 16 151-153 -> 156-157, RSS 216 -> 150 MB (4
 * samples a pass: the same); the prefix ending at 6000 pixels instead of
 * 1600 gains less, at 1000 or 300 the same.  Whole-network batches of 1, 2
 * or 4 (per-layer profile, b4): the large-map layers 79.5 ms a batch of 8
 * at once, 73.3 two at a time, 74.4 one at a time (the stem and the
 * expansion convolutions slower there); the small-map layers slower in
 * batches of 2 or 4 than of 8.  With the last-level cache shared with a
 * busy neighbour the gain can go (one series of runs: 1% slower). */
#define MB_MIN_HW 1600
static void plan_microbatch(dcl_net *net, int n, int training) {
    net->mb_p = net->mb = net->mb_pass = 0;
    for (int v = 0; v < net->nv; v++) net->vals[v].mbv = net->vals[v].mbs = 0;
    if (training != DCL_PLAN_EVAL || !net->be->is_host) return;
    int mb = 2;
    const char *e = getenv("DCL_EVAL_MICROBATCH");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end || v < 0 || v > 1 << 20) dcl_log(1, "DCL_EVAL_MICROBATCH='%s' is not a number of samples; using %d", e, mb);
        else mb = (int)v;
    }
    if (mb <= 0 || n < 2 * mb) return;
    int P = net->nn;
    for (int i = 0; i < net->nn; i++) {
        const node *d = &net->nodes[i];
        if (d->in0 < 0) continue;
        const value *x = &net->vals[d->in0];
        int64_t hw = (int64_t)x->h * x->w;
        if (hw > 1 && hw < MB_MIN_HW) { P = i; break; }
    }
    /* a cut inside a fused chain would leave a node of the prefix writing a
     * value of the rest: move to the first cut no fused-away value crosses */
    for (; P < net->nn; P++) {
        int clean = 1;
        for (int v = 0; v < net->nv && clean; v++) {
            const value *x = &net->vals[v];
            int64_t end = x->last_consumer > x->ext_end ? x->last_consumer : x->ext_end;
            if (x->elided && x->producer < P && end >= P) clean = 0;
        }
        if (clean) break;
    }
    if (P < 2) return;
    net->mb_p = P;
    net->mb = mb;
    for (int v = 0; v < net->nv; v++)
        net->vals[v].mbv = v == net->input || (net->vals[v].producer >= 0 && net->vals[v].producer < P);
}

/* Nodes [0, mb_p) and their values as samples [s0, s0 + cnt) of the batch
 * (plan_microbatch); (0, pn) restores the whole batch. */
static void mb_view(dcl_net *net, int s0, int cnt) {
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        if (!x->mbv || x->elided) continue;
        int64_t per = (int64_t)x->c * x->h * x->w;
        x->n = cnt;
        x->numel = per * cnt;
        x->data = (float *)(net->arena + x->off + (x->mbs ? 0 : (size_t)s0 * per * net->esz));
    }
    for (int i = 0; i < net->mb_p; i++) {
        node *d = &net->nodes[i];
        if (d->kind == NK_CONV) d->cd.n = cnt;
        if (d->kind == NK_POOL) d->pd.n = cnt;
    }
}

dcl_status dcl_net_plan(dcl_net *net, int n, int h, int w, int training) {
    if (!net->finalized) DCL_TRY(dcl_net_finalize(net));
    if (n <= 0 || h <= 0 || w <= 0) return dcl_fail(DCL_ERR_ARG, "net: bad input size %dx%dx%d", n, h, w);
    if (training != DCL_PLAN_EVAL && training != DCL_PLAN_TRAIN && training != DCL_PLAN_TRAIN_NOGRAD)
        return dcl_fail(DCL_ERR_ARG, "net: unknown plan mode %d", training);
    if (net->planned && net->pn == n && net->ph == h && net->pw == w && net->training == training) return DCL_OK;
    net->planned = 0;
    DCL_TRY(shape_pass(net, n, h, w));
    int T = net->nn;
    int keep = training == DCL_PLAN_TRAIN;   /* activations kept for backward */
    /* which values need gradients: everything downstream of a parameter */
    for (int i = 0; i < net->nv; i++) net->vals[i].needs_grad = 0;
    if (keep) {
        for (int i = 0; i < T; i++) {
            node *d = &net->nodes[i];
            int ng = d->pw >= 0;
            if (d->in0 >= 0 && net->vals[d->in0].needs_grad) ng = 1;
            if (d->in1 >= 0 && net->vals[d->in1].needs_grad) ng = 1;
            net->vals[d->out].needs_grad = ng;
        }
    }
    plan_fuse(net, training);
    if (keep) plan_grad_alias(net);
    else for (int v = 0; v < net->nv; v++) net->vals[v].galias = -1;
    /* Lifetimes on one time line: forward of node i at i, backward of node i
     * at 2T - i.  Training: a value lives until the backward of its producer
     * (the last that reads it), a gradient from the backward of the value's
     * last consumer to that of its producer; a recomputed value twice: in
     * forward up to its last use, in backward from its last consumer's
     * backward to its first consumer's.  Otherwise a value dies after its
     * last consumer.  Outputs and the input live throughout. */
    int cap = 3 * net->nv + 3 * T + 4;
    interval *iv = calloc(cap, sizeof *iv);
    if (!iv) return dcl_fail(DCL_ERR_NOMEM, "net: plan");
    int ni = 0;
    size_t acc_max = 0, acc2_max = 0;   /* accumulation scratch */
    int maxc = 0;
    /* gradient lifetimes; values sharing a buffer (plan_grad_alias) extend their root's */
    int64_t *gs = malloc(2 * sizeof(int64_t) * (net->nv + 1)), *ge = gs ? gs + net->nv + 1 : NULL;
    if (!gs) { free(iv); return dcl_fail(DCL_ERR_NOMEM, "net: plan"); }
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        int64_t lc = x->last_consumer >= 0 ? x->last_consumer : x->producer;
        gs[v] = x->is_output ? T : 2 * T - lc;
        ge[v] = max64(x->is_output ? 2 * T + 2 : 2 * T - x->producer, x->gext_end); /* outputs' gradients stay readable */
    }
    for (int v = 0; v < net->nv; v++) {
        if (!keep || net->vals[v].galias < 0) continue;
        int r = grad_root(net, v);
        if (gs[v] < gs[r]) gs[r] = gs[v];
        if (ge[v] > ge[r]) ge[r] = ge[v];
    }
    /* data lifetimes; a value living in another's buffer (dalias) extends the root's */
    int64_t *ds = malloc(2 * sizeof(int64_t) * (net->nv + 1)), *de = ds ? ds + net->nv + 1 : NULL;
    if (!ds) { free(iv); free(gs); return dcl_fail(DCL_ERR_NOMEM, "net: plan"); }
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        int64_t lc = x->last_consumer >= 0 ? x->last_consumer : x->producer;
        ds[v] = x->ext_start >= 0 && x->ext_start < x->producer ? x->ext_start : x->producer;
        if (x->is_output || v == net->input) de[v] = 2 * T + 2;
        else if (keep && !x->recomp) de[v] = 2 * T - x->producer;
        else de[v] = lc;
        de[v] = max64(de[v], x->ext_end);
    }
    for (int v = 0; v < net->nv; v++) {
        if (net->vals[v].dalias < 0) continue;
        int r = data_root(net, v);
        if (ds[v] < ds[r]) ds[r] = ds[v];
        if (de[v] > de[r]) de[r] = de[v];
    }
    /* micro-batched prefix: a buffer used only there holds one micro-batch;
     * one read after it (or the input, an output) holds the whole batch and
     * lives from the first pass on, which the later passes must not overwrite */
    for (int v = 0; v < net->nv && net->mb_p; v++) {
        value *x = &net->vals[v];
        if (!x->mbv || x->dalias >= 0) continue;
        if (v == net->input || x->is_output || de[v] >= net->mb_p) ds[v] = 0;
        else x->mbs = 1;
    }
    for (int v = 0; v < net->nv && net->mb_p; v++)
        if (net->vals[v].dalias >= 0) net->vals[v].mbs = net->vals[data_root(net, v)].mbs;
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        size_t bytes = dcl_align_up((size_t)(x->mbs ? x->numel / x->n * net->mb : x->numel) * net->esz);
        x->off = x->goff = x->boff = 0;
        if (x->c > maxc) maxc = x->c;
        int64_t lc = x->last_consumer >= 0 ? x->last_consumer : x->producer;
        if (!x->elided) {
            if (x->dalias < 0) iv[ni++] = (interval){ds[v], de[v], bytes, &x->off};
            if (x->recomp && !(lc >= 0 && net->nodes[lc].fu_se >= 0))
                iv[ni++] = (interval){2 * T - lc, 2 * T - x->first_consumer, bytes, &x->boff};
        }
        if (keep && x->needs_grad && !x->elided) {
            if (x->galias < 0) iv[ni++] = (interval){gs[v], ge[v], bytes, &x->goff};
            /* a second contribution to the gradient goes through the scratch */
            if (x->nuse >= 2 || (x->is_output && x->nuse >= 1)) acc_max = bytes > acc_max ? bytes : acc_max;
        }
    }
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        for (int j = 0; j < 3; j++) d->s_off[j] = 0;
        int64_t send = keep ? 2 * T - (d->fu_pw >= 0 ? d->fu_pw : i) : T;  /* fu_pw reads them one step later */
        if (d->kind == NK_BN && training) {  /* batch statistics (train modes) */
            size_t b = dcl_align_up(net->vals[d->out].c * sizeof(float));
            for (int j = 0; j < 3; j++) iv[ni++] = (interval){i, send, b, &d->s_off[j]};
        } else if ((d->kind == NK_DROPOUT || d->kind == NK_DROPPATH) && training) {
            int64_t m = d->kind == NK_DROPOUT ? net->vals[d->out].numel : n;
            iv[ni++] = (interval){i, send, dcl_align_up(m * sizeof(float)), &d->s_off[0]};
            free(d->mask_host);
            d->mask_host = malloc(m * sizeof(float));
            if (!d->mask_host) { free(iv); free(gs); free(ds); return dcl_fail(DCL_ERR_NOMEM, "net: plan"); }
        }
        if (!keep || d->in0 < 0) continue;
        /* scratch for ops that write a gradient nobody needs, and for the
         * scale gradient of a mul; the synchronised batch norm of the
         * unfused path takes the second half as an input-sized buffer */
        size_t xb = dcl_align_up((size_t)net->vals[d->in0].numel * net->esz);
        int xg = net->vals[d->in0].needs_grad;
        if ((d->kind == NK_BN && d->fu != FU_BNX) || d->kind == NK_PRELU || d->kind == NK_MUL) {
            if (!xg) acc_max = xb > acc_max ? xb : acc_max;
            if (d->kind == NK_BN) acc2_max = xb > acc2_max ? xb : acc2_max;
        }
        if (d->kind == NK_MUL) {
            size_t sb = dcl_align_up((size_t)net->vals[d->in1].numel * net->esz);
            acc2_max = sb > acc2_max ? sb : acc2_max;
        }
    }
    size_t scratch_off = 0;
    if (keep) iv[ni++] = (interval){T, 2 * T + 2, acc_max + acc2_max + DCL_ALIGN, &scratch_off};
    size_t total = assign_offsets(iv, ni);
    free(iv);
    free(gs);
    free(ds);
    for (int v = 0; v < net->nv; v++)
        if (net->vals[v].dalias >= 0) net->vals[v].off = net->vals[data_root(net, v)].off;
    for (int v = 0; v < net->nv; v++)
        if (keep && net->vals[v].galias >= 0) net->vals[v].goff = net->vals[grad_root(net, v)].goff;
    mem_free(net->be, net->arena);
    net->arena = big_alloc(net->be, total + DCL_ALIGN);
    if (!net->arena) {
        return dcl_fail(DCL_ERR_NOMEM, "net: cannot allocate %zu MB of activations (batch %d, %dx%d)",
                        total >> 20, n, h, w);
    }
    net->arena_bytes = total;
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        x->data = x->elided ? NULL : (float *)(net->arena + x->off);
        x->grad = (keep && x->needs_grad && !x->elided) ? (float *)(net->arena + x->goff) : NULL;
    }
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        for (int j = 0; j < 3; j++) d->save[j] = (float *)(net->arena + d->s_off[j]);
    }
    net->scratch = keep ? (float *)(net->arena + scratch_off) : NULL;
    net->scratch2 = keep ? (float *)(net->arena + scratch_off + acc_max) : NULL;
    /* per-channel sums of the fused batch-norm backward; squeeze-excitation sums */
    size_t se_n = 0;
    for (int i = 0; i < T && keep; i++) {
        node *d = &net->nodes[i];
        if (d->fu == FU_BNX && d->fu_mul >= 0 && (size_t)4 * net->vals[d->in0].n * net->vals[d->in0].c > se_n)
            se_n = (size_t)4 * net->vals[d->in0].n * net->vals[d->in0].c;
    }
    mem_free(net->be, net->csum);
    mem_free(net->be, net->se_t);
    net->csum = keep ? mem_alloc(net->be, 4 * (size_t)maxc * sizeof(float) + DCL_ALIGN) : NULL;
    /* se_t, then the scale gradients se_pw_bwd leaves for the mul (N*C) */
    net->se_t = se_n && net->be->bn_act_se_sums ? mem_alloc(net->be, (se_n + se_n / 4) * sizeof(float)) : NULL;
    net->se_ds = net->se_t ? net->se_t + se_n : NULL;
    if (keep && (!net->csum || (se_n && net->be->bn_act_se_sums && !net->se_t)))
        return dcl_fail(DCL_ERR_NOMEM, "net: plan");
    /* folded weights of the evaluation plan */
    size_t fold_n = 0;
    int fold_c = 0;
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        if (d->fu != FU_FOLD || d->fu_bn < 0) continue;
        d->fold_off = fold_n;
        fold_n += (net->params.v[d->pw].numel + 15) / 16 * 16 + 2 * (size_t)(d->out_ch + 15) / 16 * 16;
        if (d->out_ch > fold_c) fold_c = d->out_ch;
    }
    mem_free(net->be, net->fold);
    free(net->fold_host);
    net->fold_valid = 0;
    net->fold = fold_n ? big_alloc(net->be, fold_n * sizeof(float)) : NULL;
    net->fold_host = fold_c ? malloc(5 * (size_t)fold_c * sizeof(float)) : NULL;
    net->fold_c = fold_c;
    if (fold_n && (!net->fold || !net->fold_host))
        return dcl_fail(DCL_ERR_NOMEM, "net: cannot allocate %zu MB of folded weights", (fold_n * sizeof(float)) >> 20);
    size_t sw_n = 0;
    for (int i = 0; i < T; i++)
        if (net->nodes[i].fu_sw >= 0 && (size_t)net->params.v[net->nodes[i].pw].numel > sw_n)
            sw_n = (size_t)net->params.v[net->nodes[i].pw].numel;
    free(net->sw);
    net->sw = sw_n ? dcl_alloc(sw_n * sizeof(float)) : NULL;
    if (sw_n && !net->sw) return dcl_fail(DCL_ERR_NOMEM, "net: plan");
    net->planned = 1;
    net->training = training;
    net->pn = n; net->ph = h; net->pw = w;
    return DCL_OK;
}

/* ---------------------------- running ---------------------------- */

dcl_status dcl_net_set_input(dcl_net *net, const float *x) {
    if (!net->planned) return dcl_fail(DCL_ERR_ARG, "net: set_input before plan");
    value *v = &net->vals[net->input];
    return act_from_host(net, v->data, x, v->numel);
}

dcl_status dcl_net_set_input_device(dcl_net *net, const float *x) {
    if (!net->planned) return dcl_fail(DCL_ERR_ARG, "net: set_input_device before plan");
    if (!x) return dcl_fail(DCL_ERR_ARG, "net: set_input_device: x is NULL");
    value *v = &net->vals[net->input];
    if (net->esz == 2) {
        if (!net->be->cvt_f32_bf16) return dcl_fail(DCL_ERR_UNSUPPORTED, "net: backend %s cannot convert to bf16", net->be->name);
        return net->be->cvt_f32_bf16(net->be, v->numel, (uint16_t *)v->data, x);
    }
    if (v->data == x) return DCL_OK;
    return net->be->axpby(net->be, v->numel, v->data, 1.0f, x, 0.0f);
}

#define PP(idx) (net->P + net->params.v[idx].offset)
#define GG(idx) (net->G + net->params.v[idx].offset)
#define BB(idx) (net->B + net->buffers.v[idx].offset)

static dcl_status fill_mask(dcl_net *net, node *d, dcl_rng *rng, int64_t m) {
    float keep = 1.0f - d->p;
    for (int64_t j = 0; j < m; j++) d->mask_host[j] = dcl_rng_uniform(rng) < keep ? 1.0f : 0.0f;
    return to_dev(net->be, d->save[0], d->mask_host, m * sizeof(float));
}

/* ---- sync BN: batch statistics and gradient sums over all processes ---- */

dcl_status dcl_net_set_bn_sync(dcl_net *net, dcl_net_gather_fn gather, int nranks, void *ctx) {
    if (gather && nranks < 1) return dcl_fail(DCL_ERR_ARG, "net: sync BN needs at least one rank (got %d)", nranks);
    net->bn_gather = gather;
    net->bn_ranks = gather ? nranks : 0;
    net->bn_ctx = ctx;
    return DCL_OK;
}

static float *bn_tmp(dcl_net *net, size_t n) {
    if (net->bn_tmp_n >= n) return net->bn_tmp;
    mem_free(net->be, net->bn_tmp);
    net->bn_tmp = mem_alloc(net->be, n * sizeof(float));
    net->bn_tmp_n = net->bn_tmp ? n : 0;
    return net->bn_tmp;
}

/* Gathers (M, a[C], b[C]) of every rank; returns the rank-ordered table in
 * *all (R * (2C+1) doubles, malloc'ed). */
static dcl_status bn_gather3(dcl_net *net, double **all, int64_t M, int C, const float *a, const float *b) {
    size_t k = 2 * (size_t)C + 1;
    double *snd = malloc(k * sizeof(double)), *rcv = malloc(k * net->bn_ranks * sizeof(double));
    if (!snd || !rcv) { free(snd); free(rcv); return dcl_fail(DCL_ERR_NOMEM, "net: sync BN"); }
    snd[0] = (double)M;
    for (int c = 0; c < C; c++) { snd[1 + c] = a[c]; snd[1 + C + c] = b[c]; }
    dcl_status s = net->bn_gather(net->bn_ctx, rcv, snd, (int)k);
    free(snd);
    if (s) { free(rcv); return dcl_fail_ctx(s, "sync BN"); }
    *all = rcv;
    return DCL_OK;
}

/* After the local bn_fwd_train: replace mean / var / invstd by the statistics
 * of the whole batch (Chan's combination, in rank order, so that every rank
 * gets the same values) and normalise again with them. */
static dcl_status bn_sync_fwd(dcl_net *net, node *d, value *x, value *o, int64_t M, int64_t *Mall) {
    dcl_backend *be = net->be;
    int C = x->c, R = net->bn_ranks;
    size_t k = 2 * (size_t)C + 1;
    float *f = malloc(3 * (size_t)C * sizeof(float));
    if (!f) return dcl_fail(DCL_ERR_NOMEM, "net: sync BN");
    double *all = NULL;
    dcl_status s = to_host(be, f, d->save[0], C * sizeof(float));
    if (!s) s = to_host(be, f + C, d->save[1], C * sizeof(float));
    if (!s) s = bn_gather3(net, &all, M, C, f, f + C);
    if (s) { free(f); return s; }
    double Mg = 0;
    for (int r = 0; r < R; r++) Mg += all[r * k];
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0;
        for (int r = 0; r < R; r++) mu += all[r * k] * all[r * k + 1 + c];
        mu /= Mg;
        for (int r = 0; r < R; r++) {
            double dm = all[r * k + 1 + c] - mu;
            v += all[r * k] * (all[r * k + 1 + C + c] + dm * dm);
        }
        v /= Mg;
        f[c] = (float)mu;
        f[C + c] = (float)v;
        f[2 * C + c] = (float)(1.0 / sqrt((double)f[C + c] + (double)d->eps));
    }
    free(all);
    *Mall = (int64_t)Mg;
    for (int j = 0; j < 3 && !s; j++) s = to_dev(be, d->save[j], f + (size_t)j * C, C * sizeof(float));
    free(f);
    if (!s) s = be->bn_fwd_infer(be, M, C, o->data, x->data, PP(d->pw), PP(d->pb), d->save[0], d->save[1], d->eps);
    return s;
}

/* Backward with the gradient sums of the whole batch: the local bn_bwd
 * (sums over this rank's rows, M local) plus the per-channel affine
 * correction gamma*invstd*((sdy_l/M - sdy_g/Mg) + xh (sdyx_l/M - sdyx_g/Mg)),
 * applied as an inference-mode batch norm of x (xh = (x - mean) invstd). */
static dcl_status bn_sync_bwd(dcl_net *net, node *d, value *x, value *o, int64_t M, float *dx, int xg) {
    dcl_backend *be = net->be;
    int C = x->c, R = net->bn_ranks;
    size_t k = 2 * (size_t)C + 1;
    float *t = bn_tmp(net, 5 * (size_t)C);
    float *f = malloc(5 * (size_t)C * sizeof(float));
    if (!t || !f) { free(f); return dcl_fail(DCL_ERR_NOMEM, "net: sync BN"); }
    double *all = NULL;
    dcl_status s = mem_zero(be, t, 2 * (size_t)C * sizeof(float));
    if (!s) s = be->bn_bwd(be, M, C, dx, t, t + C, o->grad, x->data, d->save[0], d->save[2], PP(d->pw));
    if (!s) s = p_acc(be, C, GG(d->pw), t);
    if (!s) s = p_acc(be, C, GG(d->pb), t + C);
    if (!s) s = to_host(be, f, t, 2 * (size_t)C * sizeof(float));   /* sdyx_l, sdy_l */
    if (!s) s = bn_gather3(net, &all, M, C, f + C, f);              /* (M, sdy, sdyx) */
    if (s || !xg) { free(f); free(all); return s; }
    float *g = f + 2 * C, *is = f + 3 * C;
    s = to_host(be, g, PP(d->pw), C * sizeof(float));
    if (!s) s = to_host(be, is, d->save[2], C * sizeof(float));
    if (!s) {
        double Mg = 0;
        for (int r = 0; r < R; r++) Mg += all[r * k];
        for (int c = 0; c < C; c++) {
            double sdy = 0, sdyx = 0;
            for (int r = 0; r < R; r++) { sdy += all[r * k + 1 + c]; sdyx += all[r * k + 1 + C + c]; }
            double gi = (double)g[c] * is[c];
            double a = gi * ((double)f[C + c] / (double)M - sdy / Mg);
            double b = gi * ((double)f[c] / (double)M - sdyx / Mg);
            f[c] = (float)b;                                   /* gamma' */
            f[C + c] = (float)a;                               /* beta' */
            f[4 * C + c] = (float)(1.0 / ((double)is[c] * is[c])); /* var' with eps 0 */
        }
        s = to_dev(be, t + 2 * C, f, 2 * (size_t)C * sizeof(float));
        if (!s) s = to_dev(be, t + 4 * C, f + 4 * C, C * sizeof(float));
    }
    free(all);
    free(f);
    if (!s) s = be->bn_fwd_infer(be, M, C, net->scratch2, x->data, t + 2 * C, t + 3 * C, d->save[0], t + 4 * C, 0.0f);
    if (!s) s = be->add(be, M * C, dx, dx, net->scratch2);
    return s;
}

/* ---- fused execution (plan_fuse) ---- */

/* Synchronised batch norm on the fused path: replaces this process's batch
 * statistics in d->save by those of the batches of all processes, combined
 * in rank order (every process gets the same values). */
static dcl_status bnx_sync_stats(dcl_net *net, node *d, int C, int64_t M, int64_t *Mall) {
    dcl_backend *be = net->be;
    size_t k = 2 * (size_t)C + 1;
    float *f = malloc(3 * (size_t)C * sizeof(float));
    if (!f) return dcl_fail(DCL_ERR_NOMEM, "net: sync BN");
    double *all = NULL;
    dcl_status s = to_host(be, f, d->save[0], C * sizeof(float));
    if (!s) s = to_host(be, f + C, d->save[1], C * sizeof(float));
    if (!s) s = bn_gather3(net, &all, M, C, f, f + C);
    if (s) { free(f); return s; }
    double Mg = 0;
    for (int r = 0; r < net->bn_ranks; r++) Mg += all[r * k];
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0;
        for (int r = 0; r < net->bn_ranks; r++) mu += all[r * k] * all[r * k + 1 + c];
        mu /= Mg;
        for (int r = 0; r < net->bn_ranks; r++) {
            double dm = all[r * k + 1 + c] - mu;
            v += all[r * k] * (all[r * k + 1 + C + c] + dm * dm);
        }
        v /= Mg;
        f[c] = (float)mu;
        f[C + c] = (float)v;
        f[2 * C + c] = (float)(1.0 / sqrt(v + (double)d->eps));
    }
    free(all);
    *Mall = (int64_t)Mg;
    for (int j = 0; j < 3 && !s; j++) s = to_dev(be, d->save[j], f + (size_t)j * C, C * sizeof(float));
    free(f);
    return s;
}

/* ... and the per-channel gradient sums of the fused backward. */
static dcl_status bnx_sync_sums(dcl_net *net, int C, int64_t M, float *sdy, float *sdyx, int64_t *Mt) {
    dcl_backend *be = net->be;
    size_t k = 2 * (size_t)C + 1;
    float *f = malloc(2 * (size_t)C * sizeof(float));
    if (!f) return dcl_fail(DCL_ERR_NOMEM, "net: sync BN");
    double *all = NULL;
    dcl_status s = to_host(be, f, sdy, C * sizeof(float));
    if (!s) s = to_host(be, f + C, sdyx, C * sizeof(float));
    if (!s) s = bn_gather3(net, &all, M, C, f, f + C);
    if (s) { free(f); return s; }
    double Mg = 0;
    for (int r = 0; r < net->bn_ranks; r++) Mg += all[r * k];
    for (int c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int r = 0; r < net->bn_ranks; r++) { a += all[r * k + 1 + c]; b += all[r * k + 1 + C + c]; }
        f[c] = (float)a;
        f[C + c] = (float)b;
    }
    free(all);
    *Mt = (int64_t)Mg;
    s = to_dev(be, sdy, f, C * sizeof(float));
    if (!s) s = to_dev(be, sdyx, f + C, C * sizeof(float));
    free(f);
    return s;
}

/* FU_BNX forward: statistics, running statistics, then one pass writing the
 * activation (unless fused away) and the squeeze-excitation's pooled means. */
static dcl_status bnx_fwd(dcl_net *net, node *d) {
    dcl_backend *be = net->be;
    value *x = &net->vals[d->in0], *z = &net->vals[d->fu_out];
    int C = x->c, HW = x->h * x->w;
    int64_t M = (int64_t)x->n * HW, Mall = M;
    dcl_status s;
    if (d->fu_cs >= 0) {   /* from the convolution's input (plan_fuse_stats) */
        node *cv = &net->nodes[d->fu_cs];
        value *xi = &net->vals[cv->in0];
        s = be->bn_stats_pw(be, M, xi->c, C, d->save[0], d->save[1], d->save[2], xi->data, PP(cv->pw), d->eps);
    } else {
        s = be->bn_stats(be, M, C, d->save[0], d->save[1], d->save[2], x->data, d->eps);
    }
    if (!s && net->bn_gather) s = bnx_sync_stats(net, d, C, M, &Mall);
    if (!s) {
        float m = d->momentum;
        float unb = Mall > 1 ? (float)((double)Mall / (double)(Mall - 1)) : 1.0f;
        s = be->axpby(be, C, BB(d->brm), m, d->save[0], 1.0f - m);
        if (!s) s = be->axpby(be, C, BB(d->brv), m * unb, d->save[1], 1.0f - m);
        net->counters[d->bnbt]++;
    }
    float *gm = NULL, *y = z->data;
    if (d->fu_gap >= 0) {   /* the activation goes to the mul's output, scaled there in place */
        gm = net->vals[net->nodes[d->fu_gap].out].data;
        y = net->vals[net->nodes[d->fu_mul].out].data;
    }
    if (!s && d->fu_dw >= 0) {   /* with the depthwise convolution after it (plan_fuse_dw) */
        node *cv = &net->nodes[d->fu_dw];
        return be->bn_act_dw_fwd(be, &cv->cd, d->fu_a, net->vals[cv->out].data, y, x->data, d->save[0], d->save[2],
                                 PP(d->pw), PP(d->pb), PP(cv->pw), cv->pb >= 0 ? PP(cv->pb) : NULL);
    }
    if (!s) s = be->bn_act_fwd(be, x->n, HW, C, d->fu_a, y, gm, x->data, d->save[0], d->save[2], PP(d->pw),
                               PP(d->pb), NULL);
    return s;
}

/* FU_SEMUL: y = act(bn(x)) * s straight from the batch norm's input
 * (training), or y = act(x) * s from the activation's input (evaluation):
 * the recomputation in backward.  In forward the activation is already in
 * y (the pooling pass wrote it there) and is scaled in place. */
static dcl_status semul_fwd_inplace(dcl_net *net, node *u) {
    value *o = &net->vals[u->out];
    if (u->se_byw) return DCL_OK;   /* the next convolution scales its weights instead (conv_fwd_sw) */
    return net->be->mul_bcast_fwd(net->be, o->n, o->h * o->w, o->c, o->data, o->data, net->vals[u->in1].data);
}

static dcl_status semul_fwd(dcl_net *net, node *u) {
    node *b = &net->nodes[u->fu_bn];
    value *x = &net->vals[b->in0], *o = &net->vals[u->out];
    int bn = b->kind == NK_BN;
    return net->be->bn_act_fwd(net->be, x->n, x->h * x->w, x->c, b->fu_a, o->data, NULL, x->data,
                               bn ? b->save[0] : NULL, bn ? b->save[2] : NULL, bn ? PP(b->pw) : NULL,
                               bn ? PP(b->pb) : NULL, net->vals[u->in1].data);
}

/* FU_ACTSE forward: act(x) into the mul's output and its pooled means */
static dcl_status actse_fwd(dcl_net *net, node *a) {
    value *x = &net->vals[a->in0];
    return net->be->bn_act_fwd(net->be, x->n, x->h * x->w, x->c, a->act, net->vals[net->nodes[a->fu_mul].out].data,
                               net->vals[net->nodes[a->fu_gap].out].data, x->data, NULL, NULL, NULL, NULL, NULL);
}

/* y = conv(x) with the chain's epilogue: accumulated onto y (a residual
 * add), an activation, or neither */
static dcl_status conv_fwd_epi(dcl_net *net, node *d, const dcl_conv_desc *cd, float *y, const float *x,
                               const float *w, const float *bias, int64_t ny) {
    dcl_backend *be = net->be;
    if (d->fu_add >= 0) return be->conv_fwd_add(be, cd, y, x, w, bias);
    const int act = d->fu_act >= 0 && d->fu_acd < 0;   /* fu_acd: the next convolution applies it */
    dcl_status s;
    if (d->fu_ain >= 0)   /* the activation of the convolution before, on the input rows (plan_fuse_dw_eval) */
        s = be->bn_act_dw_fwd(be, cd, net->nodes[d->fu_ain].fu_a, y, NULL, x, NULL, NULL, NULL, NULL, w, bias);
    else if (act && be->conv_fwd_act)
        return be->conv_fwd_act(be, cd, d->fu_a, y, x, w, bias);
    else
        s = be->conv_fwd(be, cd, y, x, w, bias);
    if (!s && act) s = be->act_fwd(be, d->fu_a, ny, y, y);
    return s;
}

/* fu_sw: the squeeze-excitation's scale s[n][c] in the weights, sample by
 * sample: y[n] = conv(a[n], w diag(s[n])); x holds the unscaled a (host
 * memory, fp32). */
static dcl_status conv_fwd_sw(dcl_net *net, node *d, float *y, const float *x, const float *w,
                              const float *bias) {
    const float *sv = net->vals[net->nodes[d->fu_sw].in1].data;
    dcl_conv_desc cd = d->cd;
    int C = cd.ci, O = cd.co, N = cd.n;
    size_t xs = (size_t)cd.hi * cd.wi * C, ys = (size_t)cd.ho * cd.wo * O;
    float *ws = net->sw;
    dcl_status s = DCL_OK;
    cd.n = 1;
    cd.has_bias = bias != NULL;
    for (int n = 0; n < N && !s; n++) {
        const float *sn = sv + (size_t)n * C;
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++) ws[(size_t)o * C + c] = w[(size_t)o * C + c] * sn[c];
        s = conv_fwd_epi(net, d, &cd, y + n * ys, x + n * xs, ws, bias, (int64_t)ys);
    }
    return s;
}

/* FU_FOLD forward: the batch norm folded into a copy of the weights and the
 * activation applied in the convolution's pass.  The folded copy is made
 * again only when the parameters or running statistics may have changed
 * since the last evaluation forward (net->fold_valid: cleared by every
 * training-mode forward, dcl_net_set_tensor, dcl_net_init_params, loading,
 * dcl_net_param_data / dcl_net_buffer_data and dcl_net_params_changed). */
static dcl_status fold_fwd(dcl_net *net, node *d) {
    dcl_backend *be = net->be;
    value *x = &net->vals[d->in0], *y = &net->vals[d->fu_out];
    const float *w = PP(d->pw), *bias = d->pb >= 0 ? PP(d->pb) : NULL;
    dcl_conv_desc cd = d->cd;
    dcl_status s = DCL_OK;
    if (d->fu_bn >= 0) {
        node *bn = &net->nodes[d->fu_bn];
        int O = d->out_ch;
        int64_t wn = net->params.v[d->pw].numel;
        float *fw = net->fold + d->fold_off, *fb = fw + (wn + 15) / 16 * 16, *fs = fb + (O + 15) / 16 * 16;
        if (net->fold_valid || net->mb_pass > 0) goto folded;   /* mb_pass: folded by the first pass */
        float *h = net->fold_host, *g = h, *bt = h + O, *rm = h + 2 * O, *rv = h + 3 * O, *cb = h + 4 * O;
        if (be->bn_fold) {      /* on the device: no round trip through the host */
            s = be->bn_fold(be, O, fs, fb, PP(bn->pw), PP(bn->pb), BB(bn->brm), BB(bn->brv), bias, bn->eps);
        } else {
            s = to_host(be, g, PP(bn->pw), O * sizeof(float));
            if (!s) s = to_host(be, bt, PP(bn->pb), O * sizeof(float));
            if (!s) s = to_host(be, rm, BB(bn->brm), O * sizeof(float));
            if (!s) s = to_host(be, rv, BB(bn->brv), O * sizeof(float));
            if (!s && bias) s = to_host(be, cb, bias, O * sizeof(float));
            if (s) return s;
            for (int o = 0; o < O; o++) {
                double sc = (double)g[o] / sqrt((double)rv[o] + (double)bn->eps);
                double b0 = bias ? (double)cb[o] : 0.0;
                g[o] = (float)sc;
                bt[o] = (float)((double)bt[o] + (b0 - (double)rm[o]) * sc);
            }
            s = to_dev(be, fs, g, O * sizeof(float));
            if (!s) s = to_dev(be, fb, bt, O * sizeof(float));
        }
        /* the weights are parameters (fp32 on every backend): scaled by the
         * backend under any bf16 adapter, whose scale_mask takes activations */
        dcl_backend *pb = dcl_backend_base(be);
        if (!s) s = pb->scale_mask(pb, O, wn / O, fw, w, fs, 1, 1.0f);
        if (s) return s;
    folded:
        w = fw;
        bias = fb;
    }
    cd.has_bias = bias != NULL;
    if (d->fu_sw >= 0) return conv_fwd_sw(net, d, y->data, x->data, w, bias);
    return conv_fwd_epi(net, d, &cd, y->data, x->data, w, bias, y->numel);
}

/* ---- per-layer timing (dcl_net_profile) ---- */

static double prof_now(dcl_net *net) {
    if (net->be->sync) net->be->sync(net->be);
    return dcl_now();
}

dcl_status dcl_net_profile(dcl_net *net, int on) {
    free(net->prof);
    net->prof = NULL;
    net->prof_steps = 0;
    if (!on) return DCL_OK;
    net->prof = calloc(2 * (size_t)net->nn + 1, sizeof(double));
    return net->prof ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "net: profile");
}

/* the profile's category of node d in the current plan */
static void prof_cat(const dcl_net *net, const node *d, char *buf, size_t n) {
    static const char *an[] = {"none", "relu", "silu", "sigmoid"};
    switch (d->kind) {
    case NK_CONV: {
        const dcl_conv_desc *c = &d->cd;
        const char *k = c->hi == 1 && c->wi == 1 ? "1x1 on 1x1 maps (SE)"
                      : c->groups > 1 && c->groups == c->ci ? "depthwise"
                      : c->kh == 1 && c->kw == 1 ? "1x1" : "other";
        snprintf(buf, n, "conv %s%s", k, d->fu == FU_FOLD ? (d->fu_bn >= 0 ? " +bn folded" : "") : "");
        if (d->fu == FU_FOLD && d->fu_ain >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " (+%s on its input)", an[net->nodes[d->fu_ain].fu_a]);
        if (d->fu == FU_FOLD && d->fu_act >= 0)
            snprintf(buf + strlen(buf), n - strlen(buf), d->fu_acd >= 0 ? " (%s in the next conv)" : " +%s", an[d->fu_a]);
        if (d->fu == FU_FOLD && d->fu_add >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " +residual");
        if (d->fu_se >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " (+SE recompute, sums)");
        if (d->fu_bnd >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " (+bn dx)");
        if (d->fu_sw >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " (+SE scale in weights)");
        break;
    }
    case NK_BN:
        if (d->fu != FU_BNX) snprintf(buf, n, "bn");
        else snprintf(buf, n, "bn+%s fused%s%s", an[d->fu_a], d->fu_mul >= 0 ? " (+SE pool, scale grad)" : "",
                      d->fu_cs >= 0 ? " (stats from input)" : "");
        if (d->fu == FU_BNX && d->fu_dw >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " (+depthwise conv)");
        break;
    case NK_ACT: snprintf(buf, n, d->fu == FU_ACTSE ? "act %s SE pool fused" : "act %s", an[d->act]); break;
    case NK_MUL:
        snprintf(buf, n, "%s", d->fu != FU_SEMUL ? "mul" : net->vals[d->out].recomp ? "SE mul fused (+recompute)"
                               : net->training == DCL_PLAN_TRAIN ? "SE mul fused (kept)" : "SE mul fused");
        break;
    default: snprintf(buf, n, "%s", g_kind_name[d->kind]); break;
    }
}

void dcl_net_profile_print(dcl_net *net, void *file, int steps) {
    FILE *f = file;
    if (!net->prof) return;
    if (steps < 1) steps = 1;
    char (*cat)[96] = calloc(2 * (size_t)net->nn, 96);
    double *t = calloc(2 * (size_t)net->nn, sizeof(double)), tot = 0;
    int nc = 0;
    if (!cat || !t) { free(cat); free(t); return; }
    for (int dir = 0; dir < 2; dir++)
        for (int i = 0; i < net->nn; i++) {
            double v = net->prof[(size_t)dir * net->nn + i];
            if (v <= 0) continue;
            char c[96];
            prof_cat(net, &net->nodes[i], c, sizeof c - 6);
            strcat(c, dir ? " bwd" : " fwd");
            int j = 0;
            while (j < nc && strcmp(cat[j], c)) j++;
            if (j == nc) snprintf(cat[nc++], 96, "%s", c);
            t[j] += v;
            tot += v;
        }
    for (int a = 0; a < nc; a++)   /* largest first */
        for (int b = a + 1; b < nc; b++)
            if (t[b] > t[a]) {
                double x = t[a]; t[a] = t[b]; t[b] = x;
                char c[96];
                memcpy(c, cat[a], 96); memcpy(cat[a], cat[b], 96); memcpy(cat[b], c, 96);
            }
    fprintf(f, "%-44s %10s %6s\n", "layers (per step)", "ms", "%");
    for (int a = 0; a < nc; a++) fprintf(f, "%-44s %10.1f %6.1f\n", cat[a], 1e3 * t[a] / steps, 100 * t[a] / tot);
    fprintf(f, "%-44s %10.1f\n", "total", 1e3 * tot / steps);
    free(cat);
    free(t);
}

/* One line per timed node and direction, in plan order: the node's
 * category, output shape, milliseconds per step and the GFLOPS its
 * convolution or linear layer reached (a backward counted as twice the
 * forward's work: data and weights). */
void dcl_net_profile_print_layers(dcl_net *net, void *file, int steps) {
    FILE *f = file;
    if (!net->prof) return;
    if (steps < 1) steps = 1;
    fprintf(f, "%-4s %-3s %-30s %-17s %-60s %8s %7s\n", "#", "dir", "name", "output (NCHW)", "kind", "ms", "GFLOPS");
    for (int dir = 0; dir < 2; dir++)
        for (int i = 0; i < net->nn; i++) {
            double v = net->prof[(size_t)dir * net->nn + i] / steps;
            if (v <= 0) continue;
            const node *d = &net->nodes[i];
            const value *o = &net->vals[d->out];
            char c[96], shp[40], gf[16] = "";
            prof_cat(net, d, c, sizeof c);
            snprintf(shp, sizeof shp, "%dx%dx%dx%d", o->n, o->c, o->h, o->w);
            if (d->flops > 0) snprintf(gf, sizeof gf, "%.1f", (dir ? 2 : 1) * d->flops / v / 1e9);
            fprintf(f, "%-4d %-3s %-30.30s %-17s %-60.60s %8.3f %7s\n", i, dir ? "bwd" : "fwd", d->name, shp, c, 1e3 * v, gf);
        }
}

static dcl_status fwd_node(dcl_net *net, int i, dcl_rng *rng);

dcl_status dcl_net_forward(dcl_net *net, dcl_rng *rng) {
    if (!net->planned) return dcl_fail(DCL_ERR_ARG, "net: forward before plan");
    int train = net->training;
    /* training forwards update running statistics; parameters change between them */
    if (train) net->fold_valid = 0;
    for (int v = 0; v < net->nv; v++)   /* recomputed values: their forward copy */
        if (net->vals[v].recomp) net->vals[v].data = (float *)(net->arena + net->vals[v].off);
    if (!train && net->mb_p) {   /* plan_microbatch: the prefix a few samples at a time */
        dcl_status s = DCL_OK;
        for (int s0 = 0, pass = 0; s0 < net->pn && !s; s0 += net->mb, pass++) {
            mb_view(net, s0, net->pn - s0 < net->mb ? net->pn - s0 : net->mb);
            net->mb_pass = pass;
            for (int i = 0; i < net->mb_p && !s; i++) s = fwd_node(net, i, rng);
        }
        mb_view(net, 0, net->pn);
        net->mb_pass = 0;
        if (s) return s;
    }
    for (int i = !train ? net->mb_p : 0; i < net->nn; i++) DCL_TRY(fwd_node(net, i, rng));
    if (!train) net->fold_valid = 1;   /* every folded layer ran: the copies are current */
    return DCL_OK;
}

/* The forward of node i (dcl_net_forward). */
static dcl_status fwd_node(dcl_net *net, int i, dcl_rng *rng) {
    dcl_backend *be = net->be;
    int train = net->training;
    node *d = &net->nodes[i];
    value *o = &net->vals[d->out];
    value *x = d->in0 >= 0 ? &net->vals[d->in0] : NULL;
    dcl_status s = DCL_OK;
    if (d->fu == FU_SKIP || d->fu_dwin >= 0) return DCL_OK;   /* fu_dwin: done in the batch norm's pass */
    double t0 = net->prof ? prof_now(net) : 0;
    if (d->fu == FU_BNX) s = bnx_fwd(net, d);
    else if (d->fu == FU_SEMUL) s = semul_fwd_inplace(net, d);
    else if (d->fu == FU_FOLD) s = fold_fwd(net, d);
    else if (d->fu == FU_ACTSE) s = actse_fwd(net, d);
    else switch (d->kind) {
    case NK_INPUT:
        break;
    case NK_CONV:
        if (d->fu_sw >= 0) s = conv_fwd_sw(net, d, o->data, x->data, PP(d->pw), d->pb >= 0 ? PP(d->pb) : NULL);
        else s = be->conv_fwd(be, &d->cd, o->data, x->data, PP(d->pw), d->pb >= 0 ? PP(d->pb) : NULL);
        break;
    case NK_BN: {
        int64_t M = (int64_t)x->n * x->h * x->w;
        if (train) {
            s = be->bn_fwd_train(be, M, x->c, o->data, d->save[0], d->save[1], d->save[2], x->data,
                                 PP(d->pw), PP(d->pb), d->eps);
            int64_t Mall = M;
            if (!s && net->bn_gather) s = bn_sync_fwd(net, d, x, o, M, &Mall);
            if (!s) {
                float m = d->momentum;
                float unb = Mall > 1 ? (float)((double)Mall / (double)(Mall - 1)) : 1.0f;
                s = be->axpby(be, x->c, BB(d->brm), m, d->save[0], 1.0f - m);
                if (!s) s = be->axpby(be, x->c, BB(d->brv), m * unb, d->save[1], 1.0f - m);
                net->counters[d->bnbt]++;
            }
        } else {
            s = be->bn_fwd_infer(be, M, x->c, o->data, x->data, PP(d->pw), PP(d->pb),
                                 BB(d->brm), BB(d->brv), d->eps);
        }
        break;
    }
    case NK_ACT:
        s = be->act_fwd(be, d->act, x->numel, o->data, x->data);
        break;
    case NK_PRELU:
        s = be->prelu_fwd(be, x->numel / x->c, x->c, o->data, x->data, PP(d->pw));
        break;
    case NK_POOL:
        s = be->pool_fwd(be, &d->pd, o->data, x->data);
        break;
    case NK_GAP:
        s = be->gap_fwd(be, x->n, x->h * x->w, x->c, o->data, x->data);
        break;
    case NK_MUL:
        s = be->mul_bcast_fwd(be, x->n, x->h * x->w, x->c, o->data, x->data, net->vals[d->in1].data);
        break;
    case NK_ADD:
        s = be->add(be, x->numel, o->data, x->data, net->vals[d->in1].data);
        break;
    case NK_DROPOUT:
    case NK_DROPPATH:
        if (train && d->p > 0) {
            int per_row = d->kind == NK_DROPPATH;
            int64_t rows = per_row ? x->n : 1, cols = per_row ? x->numel / x->n : x->numel;
            if (!rng) return dcl_fail(DCL_ERR_ARG, "net: dropout in training needs an rng");
            s = fill_mask(net, d, rng, per_row ? rows : x->numel);
            if (!s) s = be->scale_mask(be, rows, cols, o->data, x->data, d->save[0], per_row, 1.0f / (1.0f - d->p));
        } else {
            s = act_copy(net, o->data, x->data, x->numel);
        }
        break;
    case NK_LINEAR:
        s = be->linear_fwd(be, x->n, x->c, d->out_ch, o->data, x->data, PP(d->pw), PP(d->pb));
        break;
    }
    if (net->prof) net->prof[i] += prof_now(net) - t0;
    return s ? dcl_fail_ctx(s, "forward %s%s%s (layer %d)", g_kind_name[d->kind], d->name[0] ? " " : "", d->name, i) : DCL_OK;
}

void dcl_net_value_shape(const dcl_net *net, int v, int shape[4]) {
    const value *x = &net->vals[v];
    shape[0] = x->n; shape[1] = x->c; shape[2] = x->h; shape[3] = x->w;
}

float *dcl_net_value_data(dcl_net *net, int v) { return net->vals[v].mbs ? NULL : net->vals[v].data; }
float *dcl_net_value_seed(dcl_net *net, int v) { return net->vals[v].is_output ? net->vals[v].grad : NULL; }

dcl_status dcl_net_value_to_host(dcl_net *net, int v, float *dst) {
    if (v < 0 || v >= net->nv || !net->planned) return dcl_fail(DCL_ERR_ARG, "net: bad value %d", v);
    if (net->vals[v].elided || net->vals[v].recomp || net->vals[v].preact)
        return dcl_fail(DCL_ERR_ARG, "net: value %d (output of layer %d) is fused away in this plan; mark it as an output before planning to read it",
                        v, net->vals[v].producer);
    if (net->vals[v].mbs)
        return dcl_fail(DCL_ERR_ARG, "net: value %d (output of layer %d) is kept for a few samples at a time in this plan (DCL_EVAL_MICROBATCH); mark it as an output before planning to read it",
                        v, net->vals[v].producer);
    return act_to_host(net, dst, net->vals[v].data, net->vals[v].numel);
}

dcl_status dcl_net_value_grad_to_host(dcl_net *net, int v, float *dst) {
    if (v < 0 || v >= net->nv || !net->vals[v].is_output || !net->vals[v].grad)
        return dcl_fail(DCL_ERR_ARG, "net: value %d is not a planned training output", v);
    return act_to_host(net, dst, net->vals[v].grad, net->vals[v].numel);
}

dcl_status dcl_net_seed_from_host(dcl_net *net, int v, const float *src) {
    if (v < 0 || v >= net->nv || !net->vals[v].is_output || !net->vals[v].grad)
        return dcl_fail(DCL_ERR_ARG, "net: value %d is not a planned training output", v);
    return act_from_host(net, net->vals[v].grad, src, net->vals[v].numel);
}

/* Where to write dx for value v: its grad buffer, or scratch when it already holds a gradient. */
static float *grad_dst(dcl_net *net, value *v, int *acc) {
    if (v->grad_ready) { *acc = 1; return net->scratch; }
    *acc = 0;
    v->grad_ready = 1;
    return v->grad;
}

static dcl_status grad_finish(dcl_net *net, value *v, int acc) {
    if (!acc) return DCL_OK;
    return net->be->add(net->be, v->numel, v->grad, v->grad, net->scratch);
}

static dcl_status se_combine(dcl_net *net, node *d, int N, int HW, int C, const float *sv, const float *dg,
                             float *sdy, float *sdyx);

/* FU_BNX backward: the gradient reaching the activation (with a
 * squeeze-excitation: the scaled map's gradient times the scale plus the
 * pooled gradient spread over the map), through the activation and the
 * batch norm, recomputing the normalised value from x: one pass for the
 * per-channel sums, one for dx. */
static dcl_status bnx_bwd(dcl_net *net, node *d) {
    dcl_backend *be = net->be;
    value *x = &net->vals[d->in0];
    const float *dy, *sv = NULL, *dg = NULL;
    dcl_status s = DCL_OK;
    if (d->fu_mul >= 0) {
        node *u = &net->nodes[d->fu_mul];
        value *m = &net->vals[u->out], *g = &net->vals[net->nodes[d->fu_gap].out];
        int mr = m->needs_grad && m->grad_ready, gr = g->needs_grad && g->grad_ready;
        if (!mr && !gr) return DCL_OK;
        if (!mr) DCL_TRY(mem_zero(be, m->grad, (size_t)m->numel * net->esz));
        dy = m->grad;
        sv = net->vals[u->in1].data;
        dg = gr ? g->grad : NULL;
    } else {
        value *z = &net->vals[d->fu_out];
        if (!z->needs_grad || !z->grad_ready) return DCL_OK;
        dy = z->grad;
    }
    int C = x->c, HW = x->h * x->w;
    int64_t M = (int64_t)x->n * HW, Mt = M;
    float *sdy = net->csum, *sdyx = net->csum + C;
    int acc = 0;
    if (d->fu_mul >= 0 && d->se_sums) {
        /* squeeze-excitation: the sums came with the scale's gradient
         * (semul_bwd); one pass for dx, d recomputed from dy */
        d->se_sums = 0;
        s = se_combine(net, d, x->n, HW, C, sv, dg, sdy, sdyx);
        if (!s && net->bn_gather) s = bnx_sync_sums(net, C, M, sdy, sdyx, &Mt);
        if (!s && x->needs_grad) {
            float *dx = grad_dst(net, x, &acc);
            s = be->bn_act_bwd_dx(be, x->n, HW, C, d->fu_a, dx, NULL, dy, x->data, d->save[0], d->save[2],
                                  PP(d->pw), PP(d->pb), sv, dg, sdy, sdyx, Mt);
            if (!s) s = grad_finish(net, x, acc);
        }
        return s;
    }
    /* the reduce pass leaves d in dx's buffer; the dx pass finishes it in place */
    float *dx = x->needs_grad ? grad_dst(net, x, &acc) : NULL;
    s = be->bn_act_bwd_reduce(be, x->n, HW, C, d->fu_a, sdy, sdyx, GG(d->pw), GG(d->pb), dx, dy, x->data,
                              d->save[0], d->save[2], PP(d->pw), PP(d->pb), sv, dg);
    if (!s && net->bn_gather) s = bnx_sync_sums(net, C, M, sdy, sdyx, &Mt);
    if (!s && dx && d->fu_pw >= 0 && !acc) {   /* finished in the convolution's backward (pw_bnd_bwd) */
        d->dx_pending = 1;
        d->dx_mt = Mt;
        return DCL_OK;
    }
    if (!s && dx) {
        s = be->bn_act_bwd_dx(be, x->n, HW, C, d->fu_a, dx, dx, NULL, x->data, d->save[0], d->save[2], PP(d->pw),
                              NULL, NULL, NULL, sdy, sdyx, Mt);
        if (!s) s = grad_finish(net, x, acc);
    }
    return s;
}

/* FU_SEMUL backward: the scale's gradient, sum over the map of dy * act(bn(x))
 * without materialising the activation; the map's gradient is left to the
 * batch norm's fused backward. */
static dcl_status semul_bwd(dcl_net *net, node *u) {
    dcl_backend *be = net->be;
    node *b = &net->nodes[u->fu_bn];
    value *x = &net->vals[b->in0], *sv = &net->vals[u->in1], *m = &net->vals[u->out];
    float *ds = NULL;
    int acc = 0;
    if (sv->needs_grad) {
        acc = sv->grad_ready;
        ds = acc ? net->scratch2 : sv->grad;
        sv->grad_ready = 1;
    }
    dcl_status s = DCL_OK;
    if (u->se_done) {   /* se_pw_bwd did the sums; its scale gradient waits in se_ds */
        u->se_done = 0;
        if (ds) s = be->axpby(be, sv->numel, ds, 1.0f, net->se_ds, 0.0f);
    } else if (net->se_t) {   /* with the batch norm's sums, for its backward */
        s = be->bn_act_se_sums(be, x->n, x->h * x->w, x->c, b->fu_a, ds, net->se_t, m->grad, x->data, b->save[0],
                               b->save[2], PP(b->pw), PP(b->pb));
        b->se_sums = !s;
    } else if (ds) {
        s = be->bn_act_dot(be, x->n, x->h * x->w, x->c, b->fu_a, ds, m->grad, x->data, b->save[0], b->save[2],
                           PP(b->pw), PP(b->pb));
    }
    if (!s && acc) s = be->add(be, sv->numel, sv->grad, sv->grad, net->scratch2);
    return s;
}

/* bn_act_bwd_reduce's sums (and dgamma, dbeta) from bn_act_se_sums' table,
 * the scale and the pooled gradient: per-channel work, on the host. */
static dcl_status se_combine(dcl_net *net, node *d, int N, int HW, int C, const float *sv, const float *dg,
                             float *sdy, float *sdyx) {
    dcl_backend *be = net->be;
    size_t NC = (size_t)N * C;
    float *h = malloc(sizeof(float) * (6 * NC + 5 * (size_t)C));
    if (!h) return dcl_fail(DCL_ERR_NOMEM, "net: fused backward");
    float *t = h, *s = t + 4 * NC, *g = s + NC, *is = g + NC, *o = is + C;
    dcl_status st = to_host(be, t, net->se_t, 4 * NC * sizeof(float));
    if (!st) st = act_to_host(net, s, sv, (int64_t)NC);
    if (!st && dg) st = act_to_host(net, g, dg, (int64_t)NC);
    if (!st) st = to_host(be, is, d->save[2], C * sizeof(float));
    if (!st) {
        for (int c = 0; c < C; c++) {
            double a = 0, q = 0;
            for (int n = 0; n < N; n++) {
                size_t i = (size_t)n * C + c;
                double sn = s[i], gn = dg ? (double)g[i] / HW : 0.0;
                a += sn * t[i] + gn * t[NC + i];
                q += sn * t[2 * NC + i] + gn * t[3 * NC + i];
            }
            o[c] = (float)a;                           /* sdy */
            o[C + c] = (float)q;                       /* sdyx */
            o[3 * C + c] = (float)a;                   /* dbeta increment */
            o[2 * C + c] = (float)(q * (double)is[c]); /* dgamma increment */
        }
        st = to_dev(be, sdy, o, C * sizeof(float));
        if (!st) st = to_dev(be, sdyx, o + C, C * sizeof(float));
        if (!st) st = to_dev(be, net->csum + 2 * C, o + 2 * C, 2 * (size_t)C * sizeof(float));
        if (!st) st = p_acc(be, C, GG(d->pw), net->csum + 2 * C);
        if (!st) st = p_acc(be, C, GG(d->pb), net->csum + 3 * C);
    }
    free(h);
    return st;
}

/* DCL_FUSE_PW: the backward of 1x1 convolution d with the squeeze-excitation
 * mul before it (fu_se): dm, the weight gradient and the mul's sums in one
 * pass over the batch norm's input; the scaled map is never recomputed as a
 * whole.  The mul's backward (semul_bwd) then only moves the scale's
 * gradient, the batch norm's (bnx_bwd) finds its sums in se_t. */
static dcl_status pw_se_bwd(dcl_net *net, node *d) {
    dcl_backend *be = net->be;
    node *u = &net->nodes[d->fu_se], *b = &net->nodes[u->fu_bn];
    value *m = &net->vals[d->in0], *x = &net->vals[b->in0], *sv = &net->vals[u->in1], *o = &net->vals[d->out];
    m->grad_ready = 1;
    dcl_status s = be->se_pw_bwd(be, x->n, x->h * x->w, x->c, o->c, b->fu_a, m->grad, GG(d->pw),
                                 sv->needs_grad ? net->se_ds : NULL, net->se_t, o->grad, PP(d->pw), x->data,
                                 b->save[0], b->save[2], PP(b->pw), PP(b->pb), sv->data);
    b->se_sums = u->se_done = !s;
    return s;
}

/* DCL_FUSE_PW: the backward of 1x1 convolution d whose output's batch norm
 * (fu_bnd) left d and its sums: the batch norm's dx is finished block by
 * block inside the convolution's two products and never stored. */
static dcl_status pw_bnd_bwd(dcl_net *net, node *d) {
    dcl_backend *be = net->be;
    node *b = &net->nodes[d->fu_bnd];
    value *x = &net->vals[d->in0], *y = &net->vals[d->out];
    float *dx = NULL;
    int acc = 0;
    b->dx_pending = 0;
    if (x->needs_grad) {
        acc = x->grad_ready;
        x->grad_ready = 1;
        dx = x->grad;
    }
    return be->bn_dx_pw_bwd(be, (int64_t)y->n * y->h * y->w, y->c, x->c, dx, acc, GG(d->pw), y->grad, y->data,
                            b->save[0], b->save[2], PP(b->pw), net->csum, net->csum + y->c, b->dx_mt, PP(d->pw),
                            x->data);
}

/* A value dropped after its forward use, recomputed for the backward. */
static dcl_status materialize(dcl_net *net, int v) {
    value *x = &net->vals[v];
    if (v < 0 || !x->recomp || x->bwd_ready) return DCL_OK;
    x->data = (float *)(net->arena + x->boff);
    x->bwd_ready = 1;
    return semul_fwd(net, &net->nodes[x->producer]);
}

dcl_status dcl_net_backward(dcl_net *net) {
    if (!net->planned || net->training != DCL_PLAN_TRAIN) return dcl_fail(DCL_ERR_ARG, "net: backward needs a DCL_PLAN_TRAIN plan and a forward pass");
    dcl_backend *be = net->be;
    for (int v = 0; v < net->nv; v++) {
        net->vals[v].grad_ready = net->vals[v].is_output && net->vals[v].grad;
        net->vals[v].bwd_ready = 0;
    }
    for (int i = 0; i < net->nn; i++) {
        node *d = &net->nodes[i];
        d->se_sums = d->dx_pending = d->se_done = 0;
    }
    for (int i = net->nn - 1; i >= 0; i--) {
        node *d = &net->nodes[i];
        value *o = &net->vals[d->out];
        dcl_status s = DCL_OK;
        if (d->fu == FU_SKIP) continue;
        double t0 = net->prof ? prof_now(net) : 0;
        if (d->fu == FU_BNX) {
            s = bnx_bwd(net, d);
            if (net->prof) net->prof[net->nn + i] += prof_now(net) - t0;
            if (s) return dcl_fail_ctx(s, "backward bn %s (layer %d)", d->name, i);
            continue;
        }
        if (!o->needs_grad || !o->grad_ready || d->kind == NK_INPUT) continue;
        value *x = d->in0 >= 0 ? &net->vals[d->in0] : NULL;
        int xg = x && x->needs_grad;
        int acc = 0;
        float *dx = NULL;
        if (d->fu_se >= 0) s = pw_se_bwd(net, d);
        else if (d->fu_bnd >= 0 && net->nodes[d->fu_bnd].dx_pending) s = pw_bnd_bwd(net, d);
        else {
        if (d->in0 >= 0) s = materialize(net, d->in0);
        if (!s && d->in1 >= 0) s = materialize(net, d->in1);
        if (!s && d->fu == FU_SEMUL) s = semul_bwd(net, d);
        else if (!s) switch (d->kind) {
        case NK_CONV:
            if (xg) {
                dx = grad_dst(net, x, &acc);
                s = be->conv_bwd_data(be, &d->cd, dx, o->grad, PP(d->pw));
                if (!s) s = grad_finish(net, x, acc);
            }
            if (!s) s = be->conv_bwd_weights(be, &d->cd, GG(d->pw), d->pb >= 0 ? GG(d->pb) : NULL, o->grad, x->data);
            break;
        case NK_BN: {
            int64_t M = (int64_t)x->n * x->h * x->w;
            float *tmp = NULL;
            if (xg) dx = grad_dst(net, x, &acc);
            else dx = tmp = net->scratch; /* gamma/beta grads still needed */
            if (net->bn_gather) s = bn_sync_bwd(net, d, x, o, M, dx, xg);
            else s = be->bn_bwd(be, M, x->c, dx, GG(d->pw), GG(d->pb), o->grad, x->data, d->save[0], d->save[2], PP(d->pw));
            if (!s && xg) s = grad_finish(net, x, acc);
            (void)tmp;
            break;
        }
        case NK_ACT:
            if (xg) {
                dx = grad_dst(net, x, &acc);
                s = be->act_bwd(be, d->act, x->numel, dx, o->grad, x->data, o->data);
                if (!s) s = grad_finish(net, x, acc);
            }
            break;
        case NK_PRELU:
            dx = xg ? grad_dst(net, x, &acc) : net->scratch;
            s = be->prelu_bwd(be, x->numel / x->c, x->c, dx, GG(d->pw), o->grad, x->data, PP(d->pw));
            if (!s && xg) s = grad_finish(net, x, acc);
            break;
        case NK_POOL:
            if (xg) {
                dx = grad_dst(net, x, &acc);
                s = be->pool_bwd(be, &d->pd, dx, o->grad, x->data, o->data);
                if (!s) s = grad_finish(net, x, acc);
            }
            break;
        case NK_GAP:
            if (xg) {
                dx = grad_dst(net, x, &acc);
                s = be->gap_bwd(be, x->n, x->h * x->w, x->c, dx, o->grad);
                if (!s) s = grad_finish(net, x, acc);
            }
            break;
        case NK_MUL: {
            value *sv = &net->vals[d->in1];
            int acc_s = 0;
            float *ds;
            /* dx uses the first scratch half, ds the second, when they accumulate */
            dx = xg ? grad_dst(net, x, &acc) : net->scratch;
            if (sv->needs_grad && !sv->grad_ready) { ds = sv->grad; sv->grad_ready = 1; }
            else { ds = net->scratch2; acc_s = sv->needs_grad; }
            s = be->mul_bcast_bwd(be, x->n, x->h * x->w, x->c, dx, ds, o->grad, x->data, sv->data);
            if (!s && xg) s = grad_finish(net, x, acc);
            if (!s && acc_s) s = be->add(be, sv->numel, sv->grad, sv->grad, net->scratch2);
            break;
        }
        case NK_ADD: {
            value *b = &net->vals[d->in1];
            value *in[2] = {x, b};
            for (int j = 0; j < 2 && !s; j++) {
                if (!in[j]->needs_grad) continue;
                if (in[j]->galias == d->out) in[j]->grad_ready = 1;   /* same buffer: nothing to copy */
                else if (in[j]->grad_ready) s = be->add(be, o->numel, in[j]->grad, in[j]->grad, o->grad);
                else {
                    in[j]->grad_ready = 1;
                    s = act_copy(net, in[j]->grad, o->grad, o->numel);
                }
            }
            break;
        }
        case NK_DROPOUT:
        case NK_DROPPATH:
            if (xg) {
                dx = grad_dst(net, x, &acc);
                if (d->p > 0) {
                    int per_row = d->kind == NK_DROPPATH;
                    int64_t rows = per_row ? x->n : 1, cols = per_row ? x->numel / x->n : x->numel;
                    s = be->scale_mask(be, rows, cols, dx, o->grad, d->save[0], per_row, 1.0f / (1.0f - d->p));
                } else {
                    s = act_copy(net, dx, o->grad, x->numel);
                }
                if (!s) s = grad_finish(net, x, acc);
            }
            break;
        case NK_LINEAR:
            dx = xg ? grad_dst(net, x, &acc) : NULL;
            s = be->linear_bwd(be, x->n, x->c, d->out_ch, dx, GG(d->pw), GG(d->pb), o->grad, x->data, PP(d->pw));
            if (!s && xg) s = grad_finish(net, x, acc);
            break;
        case NK_INPUT:
            break;
        }
        }
        if (net->prof) net->prof[net->nn + i] += prof_now(net) - t0;
        if (s) return dcl_fail_ctx(s, "backward %s%s%s (layer %d)", g_kind_name[d->kind], d->name[0] ? " " : "", d->name, i);
    }
    return DCL_OK;
}

dcl_status dcl_net_zero_grad(dcl_net *net) {
    return mem_zero(net->be, net->G, net->params.total * sizeof(float));
}

/* ---------------------------- parameters ---------------------------- */

const dcl_table *dcl_net_params(const dcl_net *net) { return &net->params; }
const dcl_table *dcl_net_buffers(const dcl_net *net) { return &net->buffers; }
/* Writable pointers: the caller may change the values through them. */
float *dcl_net_param_data(dcl_net *net) { net->fold_valid = 0; return net->P; }
float *dcl_net_grad_data(dcl_net *net) { return net->G; }
float *dcl_net_buffer_data(dcl_net *net) { net->fold_valid = 0; return net->B; }
void dcl_net_params_changed(dcl_net *net) { if (net) net->fold_valid = 0; }

dcl_status dcl_net_get_tensor(dcl_net *net, const char *name, float *dst, int64_t numel) {
    int i = dcl_table_find(&net->params, name);
    if (i >= 0) {
        if (net->params.v[i].numel != numel) return dcl_fail(DCL_ERR_SHAPE, "%s: %lld values, asked for %lld", name, (long long)net->params.v[i].numel, (long long)numel);
        return to_host(net->be, dst, net->P + net->params.v[i].offset, numel * sizeof(float));
    }
    i = dcl_table_find(&net->buffers, name);
    if (i < 0) return dcl_fail(DCL_ERR_NOTFOUND, "no tensor named %s", name);
    if (net->buffers.v[i].numel != numel) return dcl_fail(DCL_ERR_SHAPE, "%s: %lld values, asked for %lld", name, (long long)net->buffers.v[i].numel, (long long)numel);
    if (net->buffers.v[i].flags & DCL_PF_COUNTER) { dst[0] = (float)net->counters[i]; return DCL_OK; }
    return to_host(net->be, dst, net->B + net->buffers.v[i].offset, numel * sizeof(float));
}

dcl_status dcl_net_set_tensor(dcl_net *net, const char *name, const float *src, int64_t numel) {
    net->fold_valid = 0;
    if (!net->finalized) DCL_TRY(dcl_net_finalize(net));
    int i = dcl_table_find(&net->params, name);
    if (i >= 0) {
        if (net->params.v[i].numel != numel) return dcl_fail(DCL_ERR_SHAPE, "%s: %lld values, given %lld", name, (long long)net->params.v[i].numel, (long long)numel);
        return to_dev(net->be, net->P + net->params.v[i].offset, src, numel * sizeof(float));
    }
    i = dcl_table_find(&net->buffers, name);
    if (i < 0) return dcl_fail(DCL_ERR_NOTFOUND, "no tensor named %s", name);
    if (net->buffers.v[i].numel != numel) return dcl_fail(DCL_ERR_SHAPE, "%s: %lld values, given %lld", name, (long long)net->buffers.v[i].numel, (long long)numel);
    if (net->buffers.v[i].flags & DCL_PF_COUNTER) { net->counters[i] = (int64_t)src[0]; return DCL_OK; }
    return to_dev(net->be, net->B + net->buffers.v[i].offset, src, numel * sizeof(float));
}

dcl_status dcl_net_init_params(dcl_net *net, dcl_rng *rng) {
    net->fold_valid = 0;
    if (!net->finalized) DCL_TRY(dcl_net_finalize(net));
    float *host = calloc(net->params.total + 1, sizeof(float));
    if (!host) return dcl_fail(DCL_ERR_NOMEM, "net: init");
    for (int i = 0; i < net->params.n; i++) {
        dcl_named *e = &net->params.v[i];
        float *p = host + e->offset;
        size_t L = strlen(e->name);
        int is_bias = L >= 5 && !strcmp(e->name + L - 5, ".bias");
        if (is_bias) continue;
        if (e->ndim == 4) {          /* conv: fan_out = k*k*out/groups */
            int64_t groups = 1;
            for (int j = 0; j < net->nn; j++) if (net->nodes[j].pw == i && net->nodes[j].kind == NK_CONV) groups = net->nodes[j].groups;
            double fan_out = (double)e->shape[2] * e->shape[3] * e->shape[0] / groups;
            double sd = sqrt(2.0 / fan_out);
            for (int64_t j = 0; j < e->numel; j++) p[j] = (float)(dcl_rng_normal(rng) * sd);
        } else if (e->ndim == 2) {   /* linear: U(-1/sqrt(out), 1/sqrt(out)) */
            double r = 1.0 / sqrt((double)e->shape[0]);
            for (int64_t j = 0; j < e->numel; j++) p[j] = (float)((2 * dcl_rng_uniform(rng) - 1) * r);
        } else {                     /* BN / PReLU weights */
            float v = 1.0f;
            for (int j = 0; j < net->nn; j++) if (net->nodes[j].pw == i && net->nodes[j].kind == NK_PRELU) v = 0.25f;
            for (int64_t j = 0; j < e->numel; j++) p[j] = v;
        }
    }
    dcl_status s = to_dev(net->be, net->P, host, net->params.total * sizeof(float));
    free(host);
    return s;
}

double dcl_net_flops(const dcl_net *net, int training) {
    double f = 0;
    for (int i = 0; i < net->nn; i++) f += net->nodes[i].flops;
    return training ? 3 * f : f;
}

size_t dcl_net_arena_bytes(const dcl_net *net) { return net->arena_bytes; }

void dcl_net_summary(dcl_net *net, void *file) {
    FILE *f = file;
    double tot = 0;
    fprintf(f, "%-4s %-9s %-34s %-18s %12s\n", "#", "op", "name", "output (NCHW)", "MFLOPs");
    for (int i = 0; i < net->nn; i++) {
        node *d = &net->nodes[i];
        value *o = &net->vals[d->out];
        char shp[64];
        snprintf(shp, sizeof shp, "%dx%dx%dx%d", o->n, o->c, o->h, o->w);
        fprintf(f, "%-4d %-9s %-34s %-18s %12.2f\n", i, g_kind_name[d->kind], d->name, shp, d->flops / 1e6);
        tot += d->flops;
    }
    int64_t np = 0;
    for (int i = 0; i < net->params.n; i++) np += net->params.v[i].numel;
    fprintf(f, "parameters: %lld   forward GFLOPs: %.3f   activation arena: %.1f MB\n",
            (long long)np, tot / 1e9, net->arena_bytes / 1048576.0);
}
