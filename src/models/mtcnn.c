/* MTCNN face detector (P-Net, R-Net, O-Net) on the engine, following
 * facenet-pytorch 2.6.0's detect_face step by step, in float32 like it:
 *
 *  1. pyramid: scales m * factor^i (m = 12 / min_face_size) while
 *     min(h, w) * scale >= 12; each level is the image resized with area
 *     interpolation to (int(h*scale + 1), int(w*scale + 1)), then
 *     (x - 127.5) * 0.0078125.
 *  2. P-Net; cells with face probability >= threshold[0] give boxes
 *     floor((2*cell + 1) / scale) .. floor((2*cell + 12) / scale); NMS 0.5
 *     within the level, NMS 0.7 over all levels, box regression (widths
 *     without +1), squaring.
 *  3. every candidate: the part inside the image (coordinates truncated,
 *     clamped to [1, w] / [1, h], 1-based inclusive) resized to 24x24 with
 *     area interpolation; R-Net; probability > threshold[1]; NMS 0.7; box
 *     regression (widths + 1); squaring.
 *  4. the same at 48x48 with O-Net; probability > threshold[2]; landmarks
 *     from the box before regression; box regression; NMS 0.7 with the
 *     overlap measured against the smaller box ("Min", areas + 1).
 *
 * NMS with IoU follows torchvision.ops.nms (stable order by decreasing
 * score, suppress IoU > t, areas without +1); the "Min" one follows
 * facenet-pytorch's nms_numpy.
 *
 * Dense layers after a feature map: PyTorch flattens (N, W, H, C)
 * (x.permute(0, 3, 2, 1)), so dense weight column w*H*C + h*C + c is the
 * whole-map convolution's weight (o, c, h, w); the loader re-orders them.
 */
#include "dcl/face.h"
#include "dcl/net.h"
#include <float.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVEL_NETS 24   /* pyramid levels with their own planned P-Net */
#define BATCH_MAX 256       /* R-/O-Net candidates per forward pass */
#define MAX_LEVEL_PIXELS (1LL << 28)  /* refused pyramid level size (uncapped pyramids) */

typedef struct stage_net {
    dcl_net *net;
    int out_prob, out_reg, out_lm;  /* value ids (out_lm: O-Net only) */
} stage_net;

struct dcl_mtcnn {
    dcl_backend *be;
    stage_net pnet[MAX_LEVEL_NETS];
    stage_net rnet, onet;
    /* host scratch */
    float *img_f; size_t img_cap;       /* pyramid level / candidate batch input */
    float *out_a; size_t a_cap;         /* network outputs */
    float *out_b; size_t b_cap;
    float *out_c; size_t c_cap;
};

typedef struct cand {
    float x1, y1, x2, y2, score;
    float reg[4];
    float lm[10];
} cand;

typedef struct cand_vec {
    cand *v;
    int n, cap;
} cand_vec;

static dcl_status cv_push(cand_vec *c, const cand *x) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        cand *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory (%d candidates)", cap);
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = *x;
    return DCL_OK;
}

static dcl_status grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return DCL_OK;
    float *q = dcl_alloc(n * sizeof(float));
    if (!q) return dcl_fail(DCL_ERR_NOMEM, "mtcnn: cannot allocate %zu floats", n);
    dcl_free(*p);
    *p = q;
    *cap = n;
    return DCL_OK;
}

void dcl_mtcnn_opts_default(dcl_mtcnn_opts *o) {
    o->min_face_size = 20.0;
    o->thresholds[0] = 0.6f;
    o->thresholds[1] = 0.7f;
    o->thresholds[2] = 0.7f;
    o->factor = 0.709;
    o->max_pyramid_side = 2048;
}

/* ------------------------------------------------------------ networks -- */

#define NET_CHECK(v) do { if ((v) < 0) return dcl_fail_ctx(DCL_ERR_INTERNAL, "mtcnn: building %s", what); } while (0)

static int conv(dcl_net *n, const char *name, int x, int co, int k) {
    return dcl_net_conv(n, name, x, co, k, 1, 1, 1, 0, 0, 1);
}

static dcl_status build_pnet(stage_net *s, dcl_backend *be) {
    const char *what = "pnet";
    DCL_TRY(dcl_net_create(&s->net, be));
    dcl_net *n = s->net;
    int x = dcl_net_input(n, 3);                          NET_CHECK(x);
    x = conv(n, "pnet.conv1", x, 10, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "pnet.prelu1", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 2, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "pnet.conv2", x, 16, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "pnet.prelu2", x);               NET_CHECK(x);
    x = conv(n, "pnet.conv3", x, 32, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "pnet.prelu3", x);               NET_CHECK(x);
    s->out_prob = conv(n, "pnet.conv4_1", x, 2, 1);       NET_CHECK(s->out_prob);
    s->out_reg = conv(n, "pnet.conv4_2", x, 4, 1);        NET_CHECK(s->out_reg);
    s->out_lm = -1;
    DCL_TRY(dcl_net_mark_output(n, s->out_prob));
    DCL_TRY(dcl_net_mark_output(n, s->out_reg));
    return dcl_net_finalize(n);
}

static dcl_status build_rnet(stage_net *s, dcl_backend *be) {
    const char *what = "rnet";
    DCL_TRY(dcl_net_create(&s->net, be));
    dcl_net *n = s->net;
    int x = dcl_net_input(n, 3);                          NET_CHECK(x);
    x = conv(n, "rnet.conv1", x, 28, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "rnet.prelu1", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 3, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "rnet.conv2", x, 48, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "rnet.prelu2", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 3, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "rnet.conv3", x, 64, 2);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "rnet.prelu3", x);               NET_CHECK(x);
    x = conv(n, "rnet.dense4", x, 128, 3);                NET_CHECK(x);  /* 3x3x64 -> 128 */
    x = dcl_net_prelu(n, "rnet.prelu4", x);               NET_CHECK(x);
    s->out_prob = dcl_net_linear(n, "rnet.dense5_1", x, 2); NET_CHECK(s->out_prob);
    s->out_reg = dcl_net_linear(n, "rnet.dense5_2", x, 4);  NET_CHECK(s->out_reg);
    s->out_lm = -1;
    DCL_TRY(dcl_net_mark_output(n, s->out_prob));
    DCL_TRY(dcl_net_mark_output(n, s->out_reg));
    return dcl_net_finalize(n);
}

static dcl_status build_onet(stage_net *s, dcl_backend *be) {
    const char *what = "onet";
    DCL_TRY(dcl_net_create(&s->net, be));
    dcl_net *n = s->net;
    int x = dcl_net_input(n, 3);                          NET_CHECK(x);
    x = conv(n, "onet.conv1", x, 32, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "onet.prelu1", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 3, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "onet.conv2", x, 64, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "onet.prelu2", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 3, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "onet.conv3", x, 64, 3);                  NET_CHECK(x);
    x = dcl_net_prelu(n, "onet.prelu3", x);               NET_CHECK(x);
    x = dcl_net_pool(n, x, DCL_POOL_MAX, 2, 2, 0, 1, 0);  NET_CHECK(x);
    x = conv(n, "onet.conv4", x, 128, 2);                 NET_CHECK(x);
    x = dcl_net_prelu(n, "onet.prelu4", x);               NET_CHECK(x);
    x = conv(n, "onet.dense5", x, 256, 3);                NET_CHECK(x);  /* 3x3x128 -> 256 */
    x = dcl_net_prelu(n, "onet.prelu5", x);               NET_CHECK(x);
    s->out_prob = dcl_net_linear(n, "onet.dense6_1", x, 2);  NET_CHECK(s->out_prob);
    s->out_reg = dcl_net_linear(n, "onet.dense6_2", x, 4);   NET_CHECK(s->out_reg);
    s->out_lm = dcl_net_linear(n, "onet.dense6_3", x, 10);   NET_CHECK(s->out_lm);
    DCL_TRY(dcl_net_mark_output(n, s->out_prob));
    DCL_TRY(dcl_net_mark_output(n, s->out_reg));
    DCL_TRY(dcl_net_mark_output(n, s->out_lm));
    return dcl_net_finalize(n);
}

/* Loads every parameter of net from st; whole-map convolutions named
 * "*.dense*" come from (O, H*W*C) dense weights in PyTorch's (W, H, C)
 * flattening order. */
static dcl_status load_net(dcl_net *net, const dcl_st *st) {
    const dcl_table *t = dcl_net_params(net);
    for (int i = 0; i < t->n; i++) {
        const dcl_named *p = &t->v[i];
        const dcl_st_entry *e = dcl_st_find(st, p->name);
        if (!e) return dcl_fail(DCL_ERR_NOTFOUND, "%s: tensor %s missing", dcl_st_path(st), p->name);
        float *buf = malloc((size_t)p->numel * sizeof(float));
        if (!buf) return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory loading %s", p->name);
        dcl_status s;
        if (p->ndim == 4 && strstr(p->name, ".dense")) {
            int64_t O = p->shape[0], C = p->shape[1], KH = p->shape[2], KW = p->shape[3];
            int64_t want[2] = {O, C * KH * KW};
            float *d = malloc((size_t)p->numel * sizeof(float));
            s = d ? dcl_st_read_f32(st, p->name, d, 2, want)
                  : dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory loading %s", p->name);
            if (!s) {
                for (int64_t o = 0; o < O; o++)
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t h = 0; h < KH; h++)
                            for (int64_t w = 0; w < KW; w++)
                                buf[((o * C + c) * KH + h) * KW + w] = d[o * C * KH * KW + (w * KH + h) * C + c];
            }
            free(d);
        } else {
            s = dcl_st_read_f32(st, p->name, buf, p->ndim, p->shape);
        }
        if (!s) {
            for (int64_t j = 0; j < p->numel; j++)
                if (!isfinite(buf[j])) {
                    s = dcl_fail(DCL_ERR_FORMAT, "%s: tensor %s has a non-finite value at %lld",
                                 dcl_st_path(st), p->name, (long long)j);
                    break;
                }
        }
        if (!s) s = dcl_net_set_tensor(net, p->name, buf, p->numel);
        free(buf);
        DCL_TRY(s);
    }
    return DCL_OK;
}

/* A P-Net for another pyramid level: same graph, parameters copied. */
static dcl_status clone_pnet(stage_net *dst, stage_net *src, dcl_backend *be) {
    DCL_TRY(build_pnet(dst, be));
    const dcl_table *t = dcl_net_params(src->net);
    for (int i = 0; i < t->n; i++) {
        const dcl_named *p = &t->v[i];
        float *buf = malloc((size_t)p->numel * sizeof(float));
        if (!buf) return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory");
        dcl_status s = dcl_net_get_tensor(src->net, p->name, buf, p->numel);
        if (!s) s = dcl_net_set_tensor(dst->net, p->name, buf, p->numel);
        free(buf);
        DCL_TRY(s);
    }
    return DCL_OK;
}

void dcl_mtcnn_free(dcl_mtcnn *m) {
    if (!m) return;
    for (int i = 0; i < MAX_LEVEL_NETS; i++) dcl_net_free(m->pnet[i].net);
    dcl_net_free(m->rnet.net);
    dcl_net_free(m->onet.net);
    dcl_free(m->img_f);
    dcl_free(m->out_a);
    dcl_free(m->out_b);
    dcl_free(m->out_c);
    free(m);
}

dcl_status dcl_mtcnn_create(dcl_mtcnn **out, dcl_backend *be, const char *weights_path) {
    if (!out) return dcl_fail(DCL_ERR_ARG, "mtcnn: NULL output");
    *out = NULL;
    if (!be) return dcl_fail(DCL_ERR_ARG, "mtcnn: no backend");
    if (!weights_path) return dcl_fail(DCL_ERR_ARG, "mtcnn: no weights file given");
    dcl_mtcnn *m = calloc(1, sizeof *m);
    if (!m) return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory");
    m->be = be;
    dcl_st *st = NULL;
    dcl_status s = dcl_st_open(&st, weights_path);
    if (!s) s = build_pnet(&m->pnet[0], be);
    if (!s) s = build_rnet(&m->rnet, be);
    if (!s) s = build_onet(&m->onet, be);
    if (!s) s = load_net(m->pnet[0].net, st);
    if (!s) s = load_net(m->rnet.net, st);
    if (!s) s = load_net(m->onet.net, st);
    dcl_st_close(st);
    if (s) {
        dcl_mtcnn_free(m);
        return dcl_fail_ctx(s, "loading MTCNN weights %s", weights_path);
    }
    *out = m;
    return DCL_OK;
}

/* --------------------------------------------------------- resampling -- */

/* torch.nn.functional.interpolate(mode='area') (adaptive average pooling)
 * of the window [x0, x0+sw) x [y0, y0+sh) of an 8-bit RGB image into dw x dh,
 * then (v - 127.5) * 0.0078125; dst is HWC float.  Output row i averages
 * rows floor(i*sh/dh) .. ceil((i+1)*sh/dh) - 1, columns likewise.  The sums
 * of 8-bit values are integers, accumulated exactly here (rows, then
 * columns); PyTorch's float sums are the same integers while below 2^24,
 * and the mean is sum / kh / kw in float as in PyTorch. */
static dcl_status area_resize_norm(float *dst, int dw, int dh, const dcl_image *img, int x0, int y0, int sw, int sh) {
    int nt = (int64_t)dw * dh >= 16384 ? dcl_num_threads() : 1;
    if (nt < 1) nt = 1;
    int *xs = malloc(2 * (size_t)dw * sizeof(int));
    uint32_t *colbuf = malloc((size_t)nt * sw * 3 * sizeof(uint32_t));
    if (!xs || !colbuf) {
        free(xs);
        free(colbuf);
        return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory resizing %dx%d to %dx%d", sw, sh, dw, dh);
    }
    int *xe = xs + dw;
    for (int ox = 0; ox < dw; ox++) {
        xs[ox] = (int)(((int64_t)ox * sw) / dw);
        xe[ox] = (int)(((int64_t)(ox + 1) * sw + dw - 1) / dw);
    }
    const uint8_t *base = img->data + (size_t)y0 * img->w * 3 + (size_t)x0 * 3;
    size_t stride = (size_t)img->w * 3, rowlen = (size_t)sw * 3;
    #pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        uint32_t *col = colbuf + (size_t)omp_get_thread_num() * rowlen;
#else
        uint32_t *col = colbuf;
#endif
        #pragma omp for schedule(static)
        for (int oy = 0; oy < dh; oy++) {
            int ys = (int)(((int64_t)oy * sh) / dh);
            int ye = (int)(((int64_t)(oy + 1) * sh + dh - 1) / dh);
            const uint8_t *r = base + (size_t)ys * stride;
            for (size_t i = 0; i < rowlen; i++) col[i] = r[i];
            for (int y = ys + 1; y < ye; y++) {
                r += stride;
                for (size_t i = 0; i < rowlen; i++) col[i] += r[i];
            }
            float kh = (float)(ye - ys);
            float *d = dst + (size_t)oy * dw * 3;
            for (int ox = 0; ox < dw; ox++, d += 3) {
                uint32_t s0 = 0, s1 = 0, s2 = 0;
                for (int x = xs[ox]; x < xe[ox]; x++) {
                    s0 += col[3 * x];
                    s1 += col[3 * x + 1];
                    s2 += col[3 * x + 2];
                }
                float kw = (float)(xe[ox] - xs[ox]);
                d[0] = ((float)s0 / kh / kw - 127.5f) * 0.0078125f;
                d[1] = ((float)s1 / kh / kw - 127.5f) * 0.0078125f;
                d[2] = ((float)s2 / kh / kw - 127.5f) * 0.0078125f;
            }
        }
    }
    free(xs);
    free(colbuf);
    return DCL_OK;
}

/* ----------------------------------------------------------------- NMS -- */

typedef struct order_item { float s; int i; } order_item;

/* decreasing score, then increasing index (stable) */
static int cmp_desc_stable(const void *a, const void *b) {
    const order_item *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}
/* decreasing score, then decreasing index (numpy argsort taken from the end) */
static int cmp_desc_last(const void *a, const void *b) {
    const order_item *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return (x->i < y->i) - (x->i > y->i);
}

/* Keeps the survivors of c->v[from..c->n) in pick order (decreasing score)
 * and compacts them to c->v[from..).  min_mode: facenet-pytorch's numpy
 * "Min" NMS (areas + 1, suppress overlap > t); else torchvision's nms. */
static dcl_status nms(cand_vec *c, int from, float thresh, int min_mode) {
    int n = c->n - from;
    if (n <= 1) return DCL_OK;
    cand *v = c->v + from;
    order_item *ord = malloc((size_t)n * sizeof *ord);
    unsigned char *sup = calloc((size_t)n, 1);
    cand *keep = malloc((size_t)n * sizeof *keep);
    float *area = malloc((size_t)n * sizeof *area);
    if (!ord || !sup || !keep || !area) {
        free(ord); free(sup); free(keep); free(area);
        return dcl_fail(DCL_ERR_NOMEM, "mtcnn: out of memory in NMS (%d boxes)", n);
    }
    for (int i = 0; i < n; i++) {
        ord[i].s = v[i].score;
        ord[i].i = i;
        area[i] = min_mode ? (v[i].x2 - v[i].x1 + 1) * (v[i].y2 - v[i].y1 + 1)
                           : (v[i].x2 - v[i].x1) * (v[i].y2 - v[i].y1);
    }
    qsort(ord, n, sizeof *ord, min_mode ? cmp_desc_last : cmp_desc_stable);
    int nk = 0;
    for (int a = 0; a < n; a++) {
        int i = ord[a].i;
        if (sup[i]) continue;
        keep[nk++] = v[i];
        const cand *bi = &v[i];
        for (int b = a + 1; b < n; b++) {
            int j = ord[b].i;
            if (sup[j]) continue;
            float xx1 = fmaxf(bi->x1, v[j].x1), yy1 = fmaxf(bi->y1, v[j].y1);
            float xx2 = fminf(bi->x2, v[j].x2), yy2 = fminf(bi->y2, v[j].y2);
            if (min_mode) {
                float w = fmaxf(0.0f, xx2 - xx1 + 1), h = fmaxf(0.0f, yy2 - yy1 + 1);
                float inter = w * h;
                float o = inter / fminf(area[i], area[j]);
                if (!(o <= thresh)) sup[j] = 1;
            } else {
                float w = fmaxf(0.0f, xx2 - xx1), h = fmaxf(0.0f, yy2 - yy1);
                float inter = w * h;
                float o = inter / (area[i] + area[j] - inter);
                if ((double)o > (double)thresh) sup[j] = 1;
            }
        }
    }
    memcpy(v, keep, (size_t)nk * sizeof *keep);
    c->n = from + nk;
    free(ord); free(sup); free(keep); free(area);
    return DCL_OK;
}

/* ----------------------------------------------------------- geometry -- */

static void rerec(cand *b) {
    float h = b->y2 - b->y1, w = b->x2 - b->x1;
    float l = fmaxf(w, h);
    b->x1 = b->x1 + w * 0.5f - l * 0.5f;
    b->y1 = b->y1 + h * 0.5f - l * 0.5f;
    b->x2 = b->x1 + l;
    b->y2 = b->y1 + l;
}

static void bbreg(cand *b) {
    float w = b->x2 - b->x1 + 1, h = b->y2 - b->y1 + 1;
    float b1 = b->x1 + b->reg[0] * w, b2 = b->y1 + b->reg[1] * h;
    float b3 = b->x2 + b->reg[2] * w, b4 = b->y2 + b->reg[3] * h;
    b->x1 = b1; b->y1 = b2; b->x2 = b3; b->y2 = b4;
}

/* float -> int truncation toward zero, saturated (boxes far outside). */
static int trunc_i(float v) {
    if (!(v > -1e9f)) return -1000000000;
    if (v > 1e9f) return 1000000000;
    return (int)v;
}

/* facenet-pytorch's pad(): the in-image part of a box as the half-open
 * window [x-1, ex) x [y-1, ey); 0 when it is empty. */
static int box_window(const cand *b, int W, int H, int *x0, int *y0, int *sw, int *sh) {
    int x = trunc_i(b->x1), y = trunc_i(b->y1), ex = trunc_i(b->x2), ey = trunc_i(b->y2);
    if (x < 1) x = 1;
    if (y < 1) y = 1;
    if (ex > W) ex = W;
    if (ey > H) ey = H;
    if (!(ey > y - 1 && ex > x - 1)) return 0;
    *x0 = x - 1; *y0 = y - 1; *sw = ex - (x - 1); *sh = ey - (y - 1);
    return 1;
}

/* ------------------------------------------------------------- stages -- */

static float prob1(float a0, float a1) {
    float mx = fmaxf(a0, a1);
    float e0 = expf(a0 - mx), e1 = expf(a1 - mx);
    return e1 / (e0 + e1);
}

static dcl_status run_pnet_level(dcl_mtcnn *m, int level, const dcl_image *img, double scale,
                                 int hs, int ws, float thresh, cand_vec *all) {
    stage_net *s = &m->pnet[level < MAX_LEVEL_NETS ? level : MAX_LEVEL_NETS - 1];
    if (!s->net) DCL_TRY(clone_pnet(s, &m->pnet[0], m->be));
    DCL_TRY(grow(&m->img_f, &m->img_cap, (size_t)hs * ws * 3));
    DCL_TRY(area_resize_norm(m->img_f, ws, hs, img, 0, 0, img->w, img->h));
    DCL_TRY(dcl_net_plan(s->net, 1, hs, ws, DCL_PLAN_EVAL));
    DCL_TRY(dcl_net_set_input(s->net, m->img_f));
    DCL_TRY(dcl_net_forward(s->net, NULL));
    int sh[4];
    dcl_net_value_shape(s->net, s->out_prob, sh);
    int ho = sh[2], wo = sh[3];
    size_t cells = (size_t)ho * wo;
    DCL_TRY(grow(&m->out_a, &m->a_cap, cells * 2));
    DCL_TRY(grow(&m->out_b, &m->b_cap, cells * 4));
    DCL_TRY(dcl_net_value_to_host(s->net, s->out_prob, m->out_a));
    DCL_TRY(dcl_net_value_to_host(s->net, s->out_reg, m->out_b));
    int from = all->n;
    float fs = (float)scale;
    for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++) {
            size_t i = (size_t)y * wo + x;
            float p = prob1(m->out_a[2 * i], m->out_a[2 * i + 1]);
            if (!(p >= thresh)) continue;
            cand c;
            memset(&c, 0, sizeof c);
            float bx = (float)x, by = (float)y;
            c.x1 = floorf((2.0f * bx + 1.0f) / fs);
            c.y1 = floorf((2.0f * by + 1.0f) / fs);
            c.x2 = floorf((2.0f * bx + 12.0f) / fs);
            c.y2 = floorf((2.0f * by + 12.0f) / fs);
            c.score = p;
            memcpy(c.reg, m->out_b + 4 * i, 4 * sizeof(float));
            DCL_TRY(cv_push(all, &c));
        }
    return nms(all, from, 0.5f, 0);
}

static int bucket(int n) {
    int b = 4;
    while (b < n && b < BATCH_MAX) b *= 2;
    return b;
}

/* R-Net (size 24) or O-Net (size 48) on every candidate; writes score, reg
 * (and landmarks) into each and drops those whose window is empty. */
static dcl_status run_refine(dcl_mtcnn *m, stage_net *s, int size, const dcl_image *img, cand_vec *c) {
    int n = 0;
    /* candidates with an empty window are dropped first */
    for (int i = 0; i < c->n; i++) {
        int x0, y0, sw, sh;
        if (box_window(&c->v[i], img->w, img->h, &x0, &y0, &sw, &sh)) c->v[n++] = c->v[i];
    }
    c->n = n;
    size_t per = (size_t)size * size * 3;
    for (int start = 0; start < n; start += BATCH_MAX) {
        int cnt = n - start < BATCH_MAX ? n - start : BATCH_MAX;
        int nb = bucket(cnt);
        DCL_TRY(grow(&m->img_f, &m->img_cap, per * nb));
        DCL_TRY(grow(&m->out_a, &m->a_cap, (size_t)nb * 2));
        DCL_TRY(grow(&m->out_b, &m->b_cap, (size_t)nb * 4));
        DCL_TRY(grow(&m->out_c, &m->c_cap, (size_t)nb * 10));
        for (int k = 0; k < cnt; k++) {
            int x0 = 0, y0 = 0, sw = 1, sh = 1;
            box_window(&c->v[start + k], img->w, img->h, &x0, &y0, &sw, &sh);
            DCL_TRY(area_resize_norm(m->img_f + per * k, size, size, img, x0, y0, sw, sh));
        }
        if (nb > cnt) memset(m->img_f + per * cnt, 0, per * (nb - cnt) * sizeof(float));
        DCL_TRY(dcl_net_plan(s->net, nb, size, size, DCL_PLAN_EVAL));
        DCL_TRY(dcl_net_set_input(s->net, m->img_f));
        DCL_TRY(dcl_net_forward(s->net, NULL));
        DCL_TRY(dcl_net_value_to_host(s->net, s->out_prob, m->out_a));
        DCL_TRY(dcl_net_value_to_host(s->net, s->out_reg, m->out_b));
        if (s->out_lm >= 0) DCL_TRY(dcl_net_value_to_host(s->net, s->out_lm, m->out_c));
        for (int k = 0; k < cnt; k++) {
            cand *b = &c->v[start + k];
            b->score = prob1(m->out_a[2 * k], m->out_a[2 * k + 1]);
            memcpy(b->reg, m->out_b + 4 * k, 4 * sizeof(float));
            if (s->out_lm >= 0) memcpy(b->lm, m->out_c + 10 * k, 10 * sizeof(float));
        }
    }
    return DCL_OK;
}

static void keep_above(cand_vec *c, float thresh) {
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->v[i].score > thresh) c->v[n++] = c->v[i];
    c->n = n;
}

static dcl_status check_opts(const dcl_mtcnn_opts *o) {
    if (!(o->min_face_size >= 1.0 && o->min_face_size < 1e6))
        return dcl_fail(DCL_ERR_ARG, "mtcnn: min_face_size %g must be in [1, 1e6)", o->min_face_size);
    if (!(o->factor > 0.05 && o->factor < 0.99))
        return dcl_fail(DCL_ERR_ARG, "mtcnn: pyramid factor %g must be in (0.05, 0.99)", o->factor);
    for (int i = 0; i < 3; i++)
        if (!(o->thresholds[i] >= 0.0f && o->thresholds[i] <= 1.0f))
            return dcl_fail(DCL_ERR_ARG, "mtcnn: threshold %d is %g, expected a value in [0, 1]", i, o->thresholds[i]);
    if (o->max_pyramid_side < 0)
        return dcl_fail(DCL_ERR_ARG, "mtcnn: max_pyramid_side %d is negative", o->max_pyramid_side);
    return DCL_OK;
}

static dcl_status detect(dcl_mtcnn *m, const dcl_image *img, const dcl_mtcnn_opts *o, cand_vec *c) {
    int H = img->h, W = img->w;
    /* stage 1: pyramid */
    double mscale = 12.0 / o->min_face_size, factor = o->factor;
    double minl = (double)(H < W ? H : W) * mscale, scale = mscale;
    int used = 0;
    while (minl >= 12) {
        double hsd = H * scale + 1, wsd = W * scale + 1;
        double side = hsd > wsd ? hsd : wsd;
        if (o->max_pyramid_side == 0 || side < o->max_pyramid_side + 1.0) {
            if (hsd * wsd > (double)MAX_LEVEL_PIXELS)
                return dcl_fail(DCL_ERR_ARG, "mtcnn: pyramid level %.0fx%.0f of a %dx%d image is too large "
                                "(min_face_size %g); set max_pyramid_side", wsd, hsd, W, H, o->min_face_size);
            DCL_TRY(run_pnet_level(m, used, img, scale, (int)hsd, (int)wsd, o->thresholds[0], c));
            used++;
        }
        scale *= factor;
        minl *= factor;
    }
    if (c->n == 0) return DCL_OK;
    DCL_TRY(nms(c, 0, 0.7f, 0));
    for (int i = 0; i < c->n; i++) {
        cand *b = &c->v[i];
        float rw = b->x2 - b->x1, rh = b->y2 - b->y1;
        float q1 = b->x1 + b->reg[0] * rw, q2 = b->y1 + b->reg[1] * rh;
        float q3 = b->x2 + b->reg[2] * rw, q4 = b->y2 + b->reg[3] * rh;
        b->x1 = q1; b->y1 = q2; b->x2 = q3; b->y2 = q4;
        rerec(b);
    }
    /* stage 2 */
    DCL_TRY(run_refine(m, &m->rnet, 24, img, c));
    keep_above(c, o->thresholds[1]);
    DCL_TRY(nms(c, 0, 0.7f, 0));
    for (int i = 0; i < c->n; i++) {
        bbreg(&c->v[i]);
        rerec(&c->v[i]);
    }
    if (c->n == 0) return DCL_OK;
    /* stage 3 */
    DCL_TRY(run_refine(m, &m->onet, 48, img, c));
    keep_above(c, o->thresholds[2]);
    for (int i = 0; i < c->n; i++) {
        cand *b = &c->v[i];
        float wi = b->x2 - b->x1 + 1, hi = b->y2 - b->y1 + 1;
        float lm[10];
        for (int j = 0; j < 5; j++) {
            lm[2 * j] = wi * b->lm[j] + b->x1 - 1;
            lm[2 * j + 1] = hi * b->lm[5 + j] + b->y1 - 1;
        }
        memcpy(b->lm, lm, sizeof lm);
        bbreg(b);
    }
    return nms(c, 0, 0.7f, 1);
}

dcl_status dcl_mtcnn_detect(dcl_mtcnn *m, const dcl_image *img, const dcl_mtcnn_opts *opts,
                            dcl_face **faces, int *n) {
    if (!faces || !n) return dcl_fail(DCL_ERR_ARG, "mtcnn detect: NULL output");
    *faces = NULL;
    *n = 0;
    if (!m) return dcl_fail(DCL_ERR_ARG, "mtcnn detect: no detector");
    if (!img || !img->data || img->c != 3 || img->w <= 0 || img->h <= 0)
        return dcl_fail(DCL_ERR_ARG, "mtcnn detect: not a valid RGB image (%dx%dx%d)",
                        img ? img->w : 0, img ? img->h : 0, img ? img->c : 0);
    dcl_mtcnn_opts def;
    if (!opts) {
        dcl_mtcnn_opts_default(&def);
        opts = &def;
    }
    DCL_TRY(check_opts(opts));
    cand_vec c = {0};
    dcl_status s = detect(m, img, opts, &c);
    if (!s && c.n > 0) {
        dcl_face *f = malloc((size_t)c.n * sizeof *f);
        if (!f) s = dcl_fail(DCL_ERR_NOMEM, "mtcnn detect: out of memory");
        else {
            for (int i = 0; i < c.n; i++) {
                const cand *b = &c.v[i];
                f[i].x1 = b->x1; f[i].y1 = b->y1; f[i].x2 = b->x2; f[i].y2 = b->y2;
                f[i].score = b->score;
                for (int j = 0; j < 5; j++) {
                    f[i].lm[j][0] = b->lm[2 * j];
                    f[i].lm[j][1] = b->lm[2 * j + 1];
                }
            }
            *faces = f;
            *n = c.n;
        }
    }
    free(c.v);
    return s;
}
