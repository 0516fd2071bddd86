/* Static graph executor: build, plan (shapes + memory), forward, backward. */
#include "dcl/net.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    float *scratch, *scratch2; /* accumulation scratch */
};

/* ------------------------------------------------------------------ */

dcl_status dcl_net_create(dcl_net **out, dcl_backend *be) {
    dcl_net *n = calloc(1, sizeof *n);
    if (!n) return dcl_fail(DCL_ERR_NOMEM, "net: out of memory");
    n->be = be;
    n->input = -1;
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

void dcl_net_free(dcl_net *net) {
    if (!net) return;
    mem_free(net->be, net->P);
    mem_free(net->be, net->G);
    mem_free(net->be, net->B);
    mem_free(net->be, net->arena);
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
    net->P = mem_alloc(net->be, pb);
    net->G = mem_alloc(net->be, pb);
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

dcl_status dcl_net_plan(dcl_net *net, int n, int h, int w, int training) {
    if (!net->finalized) DCL_TRY(dcl_net_finalize(net));
    if (n <= 0 || h <= 0 || w <= 0) return dcl_fail(DCL_ERR_ARG, "net: bad input size %dx%dx%d", n, h, w);
    if (net->planned && net->pn == n && net->ph == h && net->pw == w && net->training == training) return DCL_OK;
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
    int cap = 2 * net->nv + 3 * T + 4;
    interval *iv = calloc(cap, sizeof *iv);
    size_t *tmp_off = calloc(3 * T + 4, sizeof(size_t));
    if (!iv || !tmp_off) { free(iv); free(tmp_off); return dcl_fail(DCL_ERR_NOMEM, "net: plan"); }
    int ni = 0;
    size_t maxv = 0;
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        size_t bytes = dcl_align_up((size_t)x->numel * sizeof(float));
        if (bytes > maxv) maxv = bytes;
        int64_t start = x->producer, end;
        if (keep || x->is_output || v == net->input) end = 2 * T + 2;
        else end = x->last_consumer >= 0 ? x->last_consumer : x->producer;
        iv[ni++] = (interval){start, end, bytes, &x->off};
        if (keep && x->needs_grad) {
            /* gradient lives from the backward of its last consumer to that of its producer */
            int64_t gs = x->is_output ? T : 2 * T - (x->last_consumer >= 0 ? x->last_consumer : x->producer);
            int64_t ge = x->is_output ? 2 * T + 2 : 2 * T - x->producer; /* outputs' gradients stay readable */
            iv[ni++] = (interval){gs, ge, bytes, &x->goff};
        }
    }
    int nt = 0;
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        for (int j = 0; j < 3; j++) d->s_off[j] = 0;
        if (d->kind == NK_BN && training) {  /* batch statistics (train modes) */
            size_t b = dcl_align_up(net->vals[d->out].c * sizeof(float));
            for (int j = 0; j < 3; j++) iv[ni++] = (interval){i, 2 * T + 2, b, &d->s_off[j]};
        } else if ((d->kind == NK_DROPOUT || d->kind == NK_DROPPATH) && training) {
            int64_t m = d->kind == NK_DROPOUT ? net->vals[d->out].numel : n;
            iv[ni++] = (interval){i, 2 * T + 2, dcl_align_up(m * sizeof(float)), &d->s_off[0]};
            free(d->mask_host);
            d->mask_host = malloc(m * sizeof(float));
            if (!d->mask_host) { free(iv); free(tmp_off); return dcl_fail(DCL_ERR_NOMEM, "net: plan"); }
        }
    }
    size_t scratch_off = 0;
    if (keep) iv[ni++] = (interval){0, 2 * T + 2, 2 * maxv, &scratch_off};
    (void)nt;
    size_t total = assign_offsets(iv, ni);
    free(iv);
    free(tmp_off);
    mem_free(net->be, net->arena);
    net->arena = mem_alloc(net->be, total + DCL_ALIGN);
    if (!net->arena) {
        net->planned = 0;
        return dcl_fail(DCL_ERR_NOMEM, "net: cannot allocate %zu MB of activations (batch %d, %dx%d)",
                        total >> 20, n, h, w);
    }
    net->arena_bytes = total;
    for (int v = 0; v < net->nv; v++) {
        value *x = &net->vals[v];
        x->data = (float *)(net->arena + x->off);
        x->grad = (keep && x->needs_grad) ? (float *)(net->arena + x->goff) : NULL;
    }
    for (int i = 0; i < T; i++) {
        node *d = &net->nodes[i];
        for (int j = 0; j < 3; j++) d->save[j] = (float *)(net->arena + d->s_off[j]);
    }
    net->scratch = keep ? (float *)(net->arena + scratch_off) : NULL;
    net->scratch2 = keep ? (float *)(net->arena + scratch_off + maxv) : NULL;
    net->planned = 1;
    net->training = training;
    net->pn = n; net->ph = h; net->pw = w;
    return DCL_OK;
}

/* ---------------------------- running ---------------------------- */

dcl_status dcl_net_set_input(dcl_net *net, const float *x) {
    if (!net->planned) return dcl_fail(DCL_ERR_ARG, "net: set_input before plan");
    value *v = &net->vals[net->input];
    return to_dev(net->be, v->data, x, v->numel * sizeof(float));
}

#define PP(idx) (net->P + net->params.v[idx].offset)
#define GG(idx) (net->G + net->params.v[idx].offset)
#define BB(idx) (net->B + net->buffers.v[idx].offset)

static dcl_status fill_mask(dcl_net *net, node *d, dcl_rng *rng, int64_t m) {
    float keep = 1.0f - d->p;
    for (int64_t j = 0; j < m; j++) d->mask_host[j] = dcl_rng_uniform(rng) < keep ? 1.0f : 0.0f;
    return to_dev(net->be, d->save[0], d->mask_host, m * sizeof(float));
}

dcl_status dcl_net_forward(dcl_net *net, dcl_rng *rng) {
    if (!net->planned) return dcl_fail(DCL_ERR_ARG, "net: forward before plan");
    dcl_backend *be = net->be;
    int train = net->training;
    for (int i = 0; i < net->nn; i++) {
        node *d = &net->nodes[i];
        value *o = &net->vals[d->out];
        value *x = d->in0 >= 0 ? &net->vals[d->in0] : NULL;
        dcl_status s = DCL_OK;
        switch (d->kind) {
        case NK_INPUT:
            break;
        case NK_CONV:
            s = be->conv_fwd(be, &d->cd, o->data, x->data, PP(d->pw), d->pb >= 0 ? PP(d->pb) : NULL);
            break;
        case NK_BN: {
            int64_t M = (int64_t)x->n * x->h * x->w;
            if (train) {
                s = be->bn_fwd_train(be, M, x->c, o->data, d->save[0], d->save[1], d->save[2], x->data,
                                     PP(d->pw), PP(d->pb), d->eps);
                if (!s) {
                    float m = d->momentum;
                    float unb = M > 1 ? (float)((double)M / (double)(M - 1)) : 1.0f;
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
                s = be->axpby(be, x->numel, o->data, 1.0f, x->data, 0.0f);
            }
            break;
        case NK_LINEAR:
            s = be->linear_fwd(be, x->n, x->c, d->out_ch, o->data, x->data, PP(d->pw), PP(d->pb));
            break;
        }
        if (s) return dcl_fail_ctx(s, "forward %s%s%s (layer %d)", g_kind_name[d->kind], d->name[0] ? " " : "", d->name, i);
    }
    return DCL_OK;
}

void dcl_net_value_shape(const dcl_net *net, int v, int shape[4]) {
    const value *x = &net->vals[v];
    shape[0] = x->n; shape[1] = x->c; shape[2] = x->h; shape[3] = x->w;
}

float *dcl_net_value_data(dcl_net *net, int v) { return net->vals[v].data; }
float *dcl_net_value_seed(dcl_net *net, int v) { return net->vals[v].is_output ? net->vals[v].grad : NULL; }

dcl_status dcl_net_value_to_host(dcl_net *net, int v, float *dst) {
    if (v < 0 || v >= net->nv || !net->planned) return dcl_fail(DCL_ERR_ARG, "net: bad value %d", v);
    return to_host(net->be, dst, net->vals[v].data, net->vals[v].numel * sizeof(float));
}

dcl_status dcl_net_value_grad_to_host(dcl_net *net, int v, float *dst) {
    if (v < 0 || v >= net->nv || !net->vals[v].is_output || !net->vals[v].grad)
        return dcl_fail(DCL_ERR_ARG, "net: value %d is not a planned training output", v);
    return to_host(net->be, dst, net->vals[v].grad, net->vals[v].numel * sizeof(float));
}

dcl_status dcl_net_seed_from_host(dcl_net *net, int v, const float *src) {
    if (v < 0 || v >= net->nv || !net->vals[v].is_output || !net->vals[v].grad)
        return dcl_fail(DCL_ERR_ARG, "net: value %d is not a planned training output", v);
    return to_dev(net->be, net->vals[v].grad, src, net->vals[v].numel * sizeof(float));
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

dcl_status dcl_net_backward(dcl_net *net) {
    if (!net->planned || net->training != DCL_PLAN_TRAIN) return dcl_fail(DCL_ERR_ARG, "net: backward needs a DCL_PLAN_TRAIN plan and a forward pass");
    dcl_backend *be = net->be;
    for (int v = 0; v < net->nv; v++) net->vals[v].grad_ready = net->vals[v].is_output && net->vals[v].grad;
    for (int i = net->nn - 1; i >= 0; i--) {
        node *d = &net->nodes[i];
        value *o = &net->vals[d->out];
        if (!o->needs_grad || !o->grad_ready || d->kind == NK_INPUT) continue;
        value *x = d->in0 >= 0 ? &net->vals[d->in0] : NULL;
        int xg = x && x->needs_grad;
        int acc = 0;
        float *dx = NULL;
        dcl_status s = DCL_OK;
        switch (d->kind) {
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
            s = be->bn_bwd(be, M, x->c, dx, GG(d->pw), GG(d->pb), o->grad, x->data, d->save[0], d->save[2], PP(d->pw));
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
                if (in[j]->grad_ready) s = be->add(be, o->numel, in[j]->grad, in[j]->grad, o->grad);
                else {
                    in[j]->grad_ready = 1;
                    s = be->axpby(be, o->numel, in[j]->grad, 1.0f, o->grad, 0.0f);
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
                    s = be->axpby(be, x->numel, dx, 1.0f, o->grad, 0.0f);
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
float *dcl_net_param_data(dcl_net *net) { return net->P; }
float *dcl_net_grad_data(dcl_net *net) { return net->G; }
float *dcl_net_buffer_data(dcl_net *net) { return net->B; }

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
