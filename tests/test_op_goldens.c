/* Every operator against PyTorch.
 *
 * tools/make_goldens.py writes one safetensors file per operator case under
 * tests/fixtures/ops/ (inputs, parameters, output, a random upstream
 * gradient dy and the gradients of every input and parameter, computed by
 * PyTorch in float64 and stored as float32).  Each case runs through
 *   - the reference backend (float; must implement every op),
 *   - the reference kernels in double ("ref64", a vtable over the _f64
 *     kernels: agreement to float32 rounding),
 *   - the cpu backend and the cuda backend when they can be created
 *     (entries they leave NULL or refuse through supports() are skipped),
 * and the losses / normalisation functions of dcl/nn.h run in float and
 * double.
 *
 * Semantics checked besides the values: activation gradients are assigned
 * (their buffers start as NaN), parameter gradients accumulate (a second
 * backward call must double them), nothing is written outside an output
 * buffer (guard words around every host buffer), and the batch-norm running
 * statistics follow PyTorch's update
 *   running_mean = (1-m) running_mean + m mean
 *   running_var  = (1-m) running_var  + m var_biased M/(M-1).
 */
#include "dcl/nn.h"
#include "dcl/io.h"
#include "dcl/tensor.h"
#include "golden.h"
#include "check.h"
#include <dirent.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* backends under test and their tolerances                                 */
/* ------------------------------------------------------------------------ */

typedef struct tb {
    const char *label;
    dcl_backend *be;
    double atol, rtol;
    int must_have_all;   /* reference backends: a NULL entry or refusal is a failure */
    int ncases, nskipped;
} tb;

/* float32 kernels against float64 references rounded to float32 */
#define ATOL_F32 1e-5
#define RTOL_F32 1e-4
/* double kernels: only the two float32 roundings differ */
#define ATOL_F64 1e-7
#define RTOL_F64 1e-6

/* ------------------------------------------------------------------------ */
/* buffers: host buffers carry guard words; device buffers go through the   */
/* backend's memory entries                                                 */
/* ------------------------------------------------------------------------ */

#define GUARD 16           /* floats before and after each host buffer (64 bytes keeps alignment) */
#define GUARD_BITS 0x7fa5a5a5u
#define MAX_BUFS 48

typedef struct mem {
    tb *b;
    char ctx[320];         /* "backend/case" for messages */
    int n;
    struct { float *p; void *base; int64_t len; char what[24]; } a[MAX_BUFS];
    int nhost;
    float *host[MAX_BUFS]; /* downloaded copies */
} mem;

static int is_dev(const tb *b) { return b->be->mem_alloc != NULL; }

static float guard_value(void) {
    uint32_t u = GUARD_BITS;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float *m_alloc(mem *m, const char *what, int64_t n) {
    if (m->n >= MAX_BUFS) { CHECK(0, "%s: too many buffers", m->ctx); return NULL; }
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    float *p;
    void *base;
    if (is_dev(m->b)) {
        base = p = m->b->be->mem_alloc(m->b->be, bytes);
        if (!p) { CHECK(0, "%s: device allocation of %zu bytes for %s failed: %s", m->ctx, bytes, what, dcl_last_error()); return NULL; }
    } else {
        float *h = dcl_alloc(bytes + 2 * GUARD * sizeof(float));
        if (!h) { CHECK(0, "%s: out of memory", m->ctx); return NULL; }
        float gv = guard_value();
        for (int i = 0; i < GUARD; i++) { h[i] = gv; h[GUARD + (n > 0 ? n : 1) + i] = gv; }
        base = h;
        p = h + GUARD;
    }
    m->a[m->n].p = p;
    m->a[m->n].base = base;
    m->a[m->n].len = n > 0 ? n : 1;
    snprintf(m->a[m->n].what, sizeof m->a[m->n].what, "%s", what);
    m->n++;
    return p;
}

static int m_put(mem *m, float *dst, const float *src, int64_t n) {
    if (!dst) return 0;
    if (is_dev(m->b)) {
        dcl_status s = m->b->be->to_device(m->b->be, dst, src, (size_t)n * sizeof(float));
        CHECK(s == DCL_OK, "%s: to_device: %s", m->ctx, dcl_last_error());
        return s == DCL_OK;
    }
    memcpy(dst, src, (size_t)n * sizeof(float));
    return 1;
}

static float *m_upload(mem *m, const char *what, const float *src, int64_t n) {
    float *p = m_alloc(m, what, n);
    if (p && !m_put(m, p, src, n)) return NULL;
    return p;
}

/* n copies of v */
static float *m_filled(mem *m, const char *what, int64_t n, float v) {
    float *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    for (int64_t i = 0; i < n; i++) tmp[i] = v;
    float *p = m_upload(m, what, tmp, n);
    free(tmp);
    return p;
}
static float *m_nan(mem *m, const char *what, int64_t n) { return m_filled(m, what, n, NAN); }
static float *m_zero(mem *m, const char *what, int64_t n) { return m_filled(m, what, n, 0.0f); }

/* host view of a buffer (a copy for device backends, freed by m_done) */
static const float *m_host(mem *m, const float *p, int64_t n) {
    if (!is_dev(m->b)) return p;
    if (m->nhost >= MAX_BUFS) return NULL;
    if (m->b->be->sync) m->b->be->sync(m->b->be);
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h);
    dcl_status s = m->b->be->to_host(m->b->be, h, p, (size_t)n * sizeof(float));
    CHECK(s == DCL_OK, "%s: to_host: %s", m->ctx, dcl_last_error());
    m->host[m->nhost++] = h;
    return h;
}

static void m_done(mem *m) {
    float gv = guard_value();
    for (int i = 0; i < m->n; i++) {
        if (is_dev(m->b)) {
            m->b->be->mem_free(m->b->be, m->a[i].base);
            continue;
        }
        const uint32_t *h = m->a[i].base;
        int64_t len = m->a[i].len;
        int64_t bad = 0;
        int found = 0;
        uint32_t gbits;
        memcpy(&gbits, &gv, sizeof gbits);
        for (int j = 0; j < GUARD && !found; j++)
            if (h[j] != gbits) { found = 1; bad = j - GUARD; }
        for (int j = 0; j < GUARD && !found; j++)
            if (h[GUARD + len + j] != gbits) { found = 1; bad = len + j; }
        CHECK(!found, "%s: write outside buffer '%s' (%lld floats) at index %lld",
              m->ctx, m->a[i].what, (long long)len, (long long)bad);
        dcl_free(m->a[i].base);
    }
    for (int i = 0; i < m->nhost; i++) free(m->host[i]);
    m->n = m->nhost = 0;
}

/* compare a backend buffer with a golden array */
static void m_cmp(mem *m, const char *what, const float *p, const float *want, int64_t n, double scale) {
    if (!p || !want) { CHECK(0, "%s: %s: missing buffer", m->ctx, what); return; }
    const float *h = m_host(m, p, n);
    if (!h) { CHECK(0, "%s: %s: download failed", m->ctx, what); return; }
    char lbl[400];
    snprintf(lbl, sizeof lbl, "%s: %s", m->ctx, what);
    if (scale == 1.0) {
        CHECK_CLOSE(lbl, h, want, n, m->b->atol, m->b->rtol);
    } else {
        float *w2 = malloc((size_t)n * sizeof *w2);
        for (int64_t i = 0; i < n; i++) w2[i] = (float)(scale * want[i]);
        CHECK_CLOSE(lbl, h, w2, n, m->b->atol * scale, m->b->rtol);
        free(w2);
    }
}

#define RUN(m, expr) run_ok_((m), #expr, (expr))
static int run_ok_(mem *m, const char *e, dcl_status s) {
    CHECK(s == DCL_OK, "%s: %s returned %s: %s", m->ctx, e, dcl_status_name(s), dcl_last_error());
    return s == DCL_OK;
}

/* An entry is usable: present (and, for reference backends, required). */
static int have(mem *m, const void *fn, const char *entry) {
    if (fn) return 1;
    if (m->b->must_have_all) CHECK(0, "%s: backend has no %s", m->ctx, entry);
    else m->b->nskipped++;
    return 0;
}
static int supported(mem *m, dcl_op op, const void *desc) {
    dcl_backend *be = m->b->be;
    if (!be->supports || be->supports(be, op, desc)) return 1;
    if (m->b->must_have_all) CHECK(0, "%s: backend refuses the op", m->ctx);
    else m->b->nskipped++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* fixtures                                                                  */
/* ------------------------------------------------------------------------ */

/* tensor or NULL with a failed check naming the problem */
static const golden_tensor *get(golden *g, const char *name, int layout) {
    const golden_tensor *t = golden_get(g, name, layout);
    CHECK(t != NULL, "%s", dcl_last_error());
    return t;
}

static int meta_ints(golden *g, const char *key, int *out, int n) {
    int got = golden_meta_ints(g, key, out, n);
    CHECK(got == n, "%s: metadata '%s': expected %d integers (%s)", golden_name(g), key, n,
          got < 0 ? dcl_last_error() : "wrong count");
    return got == n;
}
static int meta_int(golden *g, const char *key, int *out) {
    int r = golden_meta_int(g, key, out);
    CHECK(r == 0, "%s", dcl_last_error());
    return r == 0;
}
static int meta_double(golden *g, const char *key, double *out) {
    int r = golden_meta_double(g, key, out);
    CHECK(r == 0, "%s", dcl_last_error());
    return r == 0;
}

static int shape_is(const golden_tensor *t, int ndim, const int64_t *s, const char *ctx, const char *name) {
    int ok = t && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == s[i];
    if (t) {
        char a[96], b[96];
        CHECK(ok, "%s: '%s' has shape %s, expected %s", ctx, name, dcl_shape_str(a, sizeof a, t->ndim, t->shape),
              dcl_shape_str(b, sizeof b, ndim, s));
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* backend op cases                                                          */
/* ------------------------------------------------------------------------ */

static void case_conv(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *w = get(g, "w", GOLDEN_AS_IS),
                        *y = get(g, "y", GOLDEN_NHWC), *dy = get(g, "dy", GOLDEN_NHWC),
                        *dx = get(g, "dx", GOLDEN_NHWC), *dw = get(g, "dw", GOLDEN_AS_IS);
    int k[2], s[2], p[4], d[2], groups, bias;
    if (!x || !w || !y || !dy || !dx || !dw) return;
    if (!meta_ints(g, "kernel", k, 2) || !meta_ints(g, "stride", s, 2) || !meta_ints(g, "padding", p, 4) ||
        !meta_ints(g, "dilation", d, 2) || !meta_int(g, "groups", &groups) || !meta_int(g, "bias", &bias))
        return;
    const golden_tensor *b = NULL, *db = NULL;
    if (bias && (!(b = get(g, "b", GOLDEN_AS_IS)) || !(db = get(g, "db", GOLDEN_AS_IS)))) return;

    dcl_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.n = (int)x->shape[0]; cd.ci = (int)x->shape[1]; cd.hi = (int)x->shape[2]; cd.wi = (int)x->shape[3];
    cd.co = (int)w->shape[0];
    cd.kh = k[0]; cd.kw = k[1]; cd.sh = s[0]; cd.sw = s[1]; cd.dh = d[0]; cd.dw = d[1];
    cd.pt = p[0]; cd.pb = p[1]; cd.pl = p[2]; cd.pr = p[3];
    cd.groups = groups; cd.has_bias = bias;
    if (!RUN(m, dcl_conv_desc_finish(&cd))) return;
    int64_t ws[4] = {cd.co, cd.ci / groups, cd.kh, cd.kw};
    int64_t ys[4] = {cd.n, cd.co, cd.ho, cd.wo};
    if (!shape_is(w, 4, ws, m->ctx, "w") || !shape_is(y, 4, ys, m->ctx, "y")) return;
    if (!supported(m, DCL_OP_CONV, &cd)) return;

    float *X = m_upload(m, "x", x->data, x->numel), *W = m_upload(m, "w", w->data, w->numel);
    float *B = bias ? m_upload(m, "b", b->data, b->numel) : NULL;
    float *Y = m_nan(m, "y", y->numel);
    if (have(m, be->conv_fwd, "conv_fwd") && RUN(m, be->conv_fwd(be, &cd, Y, X, W, B)))
        m_cmp(m, "y", Y, y->data, y->numel, 1);

    float *DY = m_upload(m, "dy", dy->data, dy->numel);
    float *DX = m_nan(m, "dx", dx->numel);
    if (have(m, be->conv_bwd_data, "conv_bwd_data") && RUN(m, be->conv_bwd_data(be, &cd, DX, DY, W)))
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);

    float *DW = m_zero(m, "dw", dw->numel);
    float *DB = bias ? m_zero(m, "db", db->numel) : NULL;
    if (have(m, be->conv_bwd_weights, "conv_bwd_weights")) {
        if (RUN(m, be->conv_bwd_weights(be, &cd, DW, DB, DY, X))) {
            m_cmp(m, "dw", DW, dw->data, dw->numel, 1);
            if (bias) m_cmp(m, "db", DB, db->data, db->numel, 1);
        }
        if (RUN(m, be->conv_bwd_weights(be, &cd, DW, DB, DY, X))) {
            m_cmp(m, "dw accumulated twice", DW, dw->data, dw->numel, 2);
            if (bias) m_cmp(m, "db accumulated twice", DB, db->data, db->numel, 2);
        }
    }
}

static void case_bn(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *ga = get(g, "weight", GOLDEN_AS_IS),
                        *be_ = get(g, "bias", GOLDEN_AS_IS), *y = get(g, "y", GOLDEN_NHWC),
                        *rm = get(g, "running_mean", GOLDEN_AS_IS), *rv = get(g, "running_var", GOLDEN_AS_IS);
    int training;
    double eps, mom;
    if (!x || !ga || !be_ || !y || !rm || !rv) return;
    if (!meta_int(g, "training", &training) || !meta_double(g, "eps", &eps) || !meta_double(g, "momentum", &mom))
        return;
    int C = (int)x->shape[1];
    int64_t M = x->shape[0] * x->shape[2] * x->shape[3];
    int64_t cs[1] = {C};
    if (!shape_is(ga, 1, cs, m->ctx, "weight") || !shape_is(be_, 1, cs, m->ctx, "bias") ||
        !shape_is(rm, 1, cs, m->ctx, "running_mean") || !shape_is(rv, 1, cs, m->ctx, "running_var"))
        return;
    if (!supported(m, DCL_OP_BN, NULL)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *G = m_upload(m, "gamma", ga->data, C),
          *Bt = m_upload(m, "beta", be_->data, C), *Y = m_nan(m, "y", y->numel);

    if (!training) {
        float *RM = m_upload(m, "rmean", rm->data, C), *RV = m_upload(m, "rvar", rv->data, C);
        if (have(m, be->bn_fwd_infer, "bn_fwd_infer") &&
            RUN(m, be->bn_fwd_infer(be, M, C, Y, X, G, Bt, RM, RV, (float)eps)))
            m_cmp(m, "y (eval)", Y, y->data, y->numel, 1);
        return;
    }

    const golden_tensor *mean = get(g, "mean", GOLDEN_AS_IS), *var = get(g, "var", GOLDEN_AS_IS),
                        *invstd = get(g, "invstd", GOLDEN_AS_IS), *rm1 = get(g, "running_mean_after", GOLDEN_AS_IS),
                        *rv1 = get(g, "running_var_after", GOLDEN_AS_IS), *dy = get(g, "dy", GOLDEN_NHWC),
                        *dx = get(g, "dx", GOLDEN_NHWC), *dga = get(g, "dweight", GOLDEN_AS_IS),
                        *dbe = get(g, "dbias", GOLDEN_AS_IS);
    if (!mean || !var || !invstd || !rm1 || !rv1 || !dy || !dx || !dga || !dbe) return;
    float *MEAN = m_nan(m, "mean", C), *VAR = m_nan(m, "var", C), *INV = m_nan(m, "invstd", C);
    if (!have(m, be->bn_fwd_train, "bn_fwd_train") ||
        !RUN(m, be->bn_fwd_train(be, M, C, Y, MEAN, VAR, INV, X, G, Bt, (float)eps)))
        return;
    m_cmp(m, "y (train)", Y, y->data, y->numel, 1);
    m_cmp(m, "batch mean", MEAN, mean->data, C, 1);
    m_cmp(m, "batch var (biased)", VAR, var->data, C, 1);
    m_cmp(m, "invstd", INV, invstd->data, C, 1);

    /* running statistics: the caller's update, exactly as PyTorch does it */
    const float *hm = m_host(m, MEAN, C), *hv = m_host(m, VAR, C);
    float *nrm = malloc(C * sizeof *nrm), *nrv = malloc(C * sizeof *nrv), *uv = malloc(C * sizeof *uv);
    for (int c = 0; c < C; c++) {
        uv[c] = (float)((double)hv[c] * (double)M / (double)(M - 1));
        nrm[c] = (float)((1.0 - mom) * rm->data[c] + mom * hm[c]);
        nrv[c] = (float)((1.0 - mom) * rv->data[c] + mom * uv[c]);
    }
    char lbl[400];
    snprintf(lbl, sizeof lbl, "%s: running_mean after the step", m->ctx);
    CHECK_CLOSE(lbl, nrm, rm1->data, C, m->b->atol, m->b->rtol);
    snprintf(lbl, sizeof lbl, "%s: running_var after the step (unbiased update)", m->ctx);
    CHECK_CLOSE(lbl, nrv, rv1->data, C, m->b->atol, m->b->rtol);
    /* the same update through the backend's axpby, when it has one */
    if (be->axpby) {
        float *RM = m_upload(m, "rmean", rm->data, C), *RV = m_upload(m, "rvar", rv->data, C);
        float *UV = m_upload(m, "var_unbiased", uv, C);
        if (RUN(m, be->axpby(be, C, RM, (float)mom, MEAN, (float)(1.0 - mom))))
            m_cmp(m, "running_mean via axpby", RM, rm1->data, C, 1);
        if (RUN(m, be->axpby(be, C, RV, (float)mom, UV, (float)(1.0 - mom))))
            m_cmp(m, "running_var via axpby", RV, rv1->data, C, 1);
    }
    free(nrm); free(nrv); free(uv);

    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel);
    float *DG = m_zero(m, "dgamma", C), *DBt = m_zero(m, "dbeta", C);
    if (!have(m, be->bn_bwd, "bn_bwd")) return;
    if (RUN(m, be->bn_bwd(be, M, C, DX, DG, DBt, DY, X, MEAN, INV, G))) {
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
        m_cmp(m, "dgamma", DG, dga->data, C, 1);
        m_cmp(m, "dbeta", DBt, dbe->data, C, 1);
    }
    if (RUN(m, be->bn_bwd(be, M, C, DX, DG, DBt, DY, X, MEAN, INV, G))) {
        m_cmp(m, "dx (second call, assigned)", DX, dx->data, dx->numel, 1);
        m_cmp(m, "dgamma accumulated twice", DG, dga->data, C, 2);
        m_cmp(m, "dbeta accumulated twice", DBt, dbe->data, C, 2);
    }
}

static void case_act(mem *m, golden *g, dcl_act a) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_AS_IS), *y = get(g, "y", GOLDEN_AS_IS),
                        *dy = get(g, "dy", GOLDEN_AS_IS), *dx = get(g, "dx", GOLDEN_AS_IS);
    if (!x || !y || !dy || !dx) return;
    if (!supported(m, DCL_OP_ACT, NULL)) return;
    int64_t n = x->numel;
    float *X = m_upload(m, "x", x->data, n), *Y = m_nan(m, "y", n);
    if (!have(m, be->act_fwd, "act_fwd") || !RUN(m, be->act_fwd(be, a, n, Y, X))) return;
    m_cmp(m, "y", Y, y->data, n, 1);
    float *DY = m_upload(m, "dy", dy->data, n), *DX = m_nan(m, "dx", n);
    if (have(m, be->act_bwd, "act_bwd") && RUN(m, be->act_bwd(be, a, n, DX, DY, X, Y)))
        m_cmp(m, "dx", DX, dx->data, n, 1);
}

static void case_prelu(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *al = get(g, "weight", GOLDEN_AS_IS),
                        *y = get(g, "y", GOLDEN_NHWC), *dy = get(g, "dy", GOLDEN_NHWC),
                        *dx = get(g, "dx", GOLDEN_NHWC), *dal = get(g, "dweight", GOLDEN_AS_IS);
    if (!x || !al || !y || !dy || !dx || !dal) return;
    int C = (int)x->shape[1];
    int64_t M = x->numel / C;
    int64_t cs[1] = {C};
    if (!shape_is(al, 1, cs, m->ctx, "weight")) return;
    if (!supported(m, DCL_OP_PRELU, NULL)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *A = m_upload(m, "alpha", al->data, C),
          *Y = m_nan(m, "y", y->numel);
    if (have(m, be->prelu_fwd, "prelu_fwd") && RUN(m, be->prelu_fwd(be, M, C, Y, X, A)))
        m_cmp(m, "y", Y, y->data, y->numel, 1);
    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel),
          *DA = m_zero(m, "dalpha", C);
    if (!have(m, be->prelu_bwd, "prelu_bwd")) return;
    if (RUN(m, be->prelu_bwd(be, M, C, DX, DA, DY, X, A))) {
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
        m_cmp(m, "dalpha", DA, dal->data, C, 1);
    }
    if (RUN(m, be->prelu_bwd(be, M, C, DX, DA, DY, X, A)))
        m_cmp(m, "dalpha accumulated twice", DA, dal->data, C, 2);
}

static void case_pool(mem *m, golden *g, dcl_pool_kind kind) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *y = get(g, "y", GOLDEN_NHWC),
                        *dy = get(g, "dy", GOLDEN_NHWC), *dx = get(g, "dx", GOLDEN_NHWC);
    int k[2], s[2], p[4], ceil_mode, cip = 1;
    if (!x || !y || !dy || !dx) return;
    if (!meta_ints(g, "kernel", k, 2) || !meta_ints(g, "stride", s, 2) || !meta_ints(g, "padding", p, 4) ||
        !meta_int(g, "ceil_mode", &ceil_mode))
        return;
    if (kind == DCL_POOL_AVG && !meta_int(g, "count_include_pad", &cip)) return;
    dcl_pool_desc pd;
    memset(&pd, 0, sizeof pd);
    pd.n = (int)x->shape[0]; pd.c = (int)x->shape[1]; pd.hi = (int)x->shape[2]; pd.wi = (int)x->shape[3];
    pd.kh = k[0]; pd.kw = k[1]; pd.sh = s[0]; pd.sw = s[1];
    pd.pt = p[0]; pd.pb = p[1]; pd.pl = p[2]; pd.pr = p[3];
    pd.ceil_mode = ceil_mode; pd.count_include_pad = cip; pd.kind = kind;
    if (!RUN(m, dcl_pool_desc_finish(&pd))) return;
    int64_t ys[4] = {pd.n, pd.c, pd.ho, pd.wo};
    if (!shape_is(y, 4, ys, m->ctx, "y (output size from dcl_pool_desc_finish)")) return;
    if (!supported(m, DCL_OP_POOL, &pd)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *Y = m_nan(m, "y", y->numel);
    if (!have(m, be->pool_fwd, "pool_fwd") || !RUN(m, be->pool_fwd(be, &pd, Y, X))) return;
    m_cmp(m, "y", Y, y->data, y->numel, 1);
    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel);
    if (have(m, be->pool_bwd, "pool_bwd") && RUN(m, be->pool_bwd(be, &pd, DX, DY, X, Y)))
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
}

static void case_gap(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *y = get(g, "y", GOLDEN_AS_IS),
                        *dy = get(g, "dy", GOLDEN_AS_IS), *dx = get(g, "dx", GOLDEN_NHWC);
    if (!x || !y || !dy || !dx) return;
    int N = (int)x->shape[0], C = (int)x->shape[1], HW = (int)(x->shape[2] * x->shape[3]);
    int64_t ys[4] = {N, C, 1, 1};
    if (!shape_is(y, 4, ys, m->ctx, "y")) return;   /* (N,C,1,1) is (N,C) in memory */
    if (!supported(m, DCL_OP_GAP, NULL)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *Y = m_nan(m, "y", y->numel);
    if (have(m, be->gap_fwd, "gap_fwd") && RUN(m, be->gap_fwd(be, N, HW, C, Y, X)))
        m_cmp(m, "y", Y, y->data, y->numel, 1);
    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel);
    if (have(m, be->gap_bwd, "gap_bwd") && RUN(m, be->gap_bwd(be, N, HW, C, DX, DY)))
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
}

static void case_linear(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_AS_IS), *w = get(g, "w", GOLDEN_AS_IS),
                        *b = get(g, "b", GOLDEN_AS_IS), *y = get(g, "y", GOLDEN_AS_IS),
                        *dy = get(g, "dy", GOLDEN_AS_IS), *dx = get(g, "dx", GOLDEN_AS_IS),
                        *dw = get(g, "dw", GOLDEN_AS_IS), *db = get(g, "db", GOLDEN_AS_IS);
    if (!x || !w || !b || !y || !dy || !dx || !dw || !db) return;
    int Mr = (int)x->shape[0], K = (int)x->shape[1], O = (int)w->shape[0];
    int64_t ws[2] = {O, K}, ys[2] = {Mr, O};
    if (!shape_is(w, 2, ws, m->ctx, "w") || !shape_is(y, 2, ys, m->ctx, "y")) return;
    if (!supported(m, DCL_OP_LINEAR, NULL)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *W = m_upload(m, "w", w->data, w->numel),
          *B = m_upload(m, "b", b->data, O), *Y = m_nan(m, "y", y->numel);
    if (have(m, be->linear_fwd, "linear_fwd") && RUN(m, be->linear_fwd(be, Mr, K, O, Y, X, W, B)))
        m_cmp(m, "y", Y, y->data, y->numel, 1);
    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel),
          *DW = m_zero(m, "dw", dw->numel), *DB = m_zero(m, "db", O);
    if (!have(m, be->linear_bwd, "linear_bwd")) return;
    if (RUN(m, be->linear_bwd(be, Mr, K, O, DX, DW, DB, DY, X, W))) {
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
        m_cmp(m, "dw", DW, dw->data, dw->numel, 1);
        m_cmp(m, "db", DB, db->data, O, 1);
    }
    /* dx and db are optional outputs */
    if (RUN(m, be->linear_bwd(be, Mr, K, O, NULL, DW, NULL, DY, X, W))) {
        m_cmp(m, "dw accumulated twice", DW, dw->data, dw->numel, 2);
        m_cmp(m, "db untouched when NULL", DB, db->data, O, 1);
    }
}

static void case_mul_bcast(mem *m, golden *g) {
    dcl_backend *be = m->b->be;
    const golden_tensor *x = get(g, "x", GOLDEN_NHWC), *s = get(g, "s", GOLDEN_AS_IS),
                        *y = get(g, "y", GOLDEN_NHWC), *dy = get(g, "dy", GOLDEN_NHWC),
                        *dx = get(g, "dx", GOLDEN_NHWC), *ds = get(g, "ds", GOLDEN_AS_IS);
    if (!x || !s || !y || !dy || !dx || !ds) return;
    int N = (int)x->shape[0], C = (int)x->shape[1], HW = (int)(x->shape[2] * x->shape[3]);
    int64_t ss[4] = {N, C, 1, 1};
    if (!shape_is(s, 4, ss, m->ctx, "s")) return;
    if (!supported(m, DCL_OP_MUL_BCAST, NULL)) return;
    float *X = m_upload(m, "x", x->data, x->numel), *S = m_upload(m, "s", s->data, s->numel),
          *Y = m_nan(m, "y", y->numel);
    if (have(m, be->mul_bcast_fwd, "mul_bcast_fwd") && RUN(m, be->mul_bcast_fwd(be, N, HW, C, Y, X, S)))
        m_cmp(m, "y", Y, y->data, y->numel, 1);
    float *DY = m_upload(m, "dy", dy->data, dy->numel), *DX = m_nan(m, "dx", dx->numel),
          *DS = m_nan(m, "ds", ds->numel);
    if (have(m, be->mul_bcast_bwd, "mul_bcast_bwd") && RUN(m, be->mul_bcast_bwd(be, N, HW, C, DX, DS, DY, X, S))) {
        m_cmp(m, "dx", DX, dx->data, dx->numel, 1);
        m_cmp(m, "ds (assigned)", DS, ds->data, ds->numel, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* losses and normalisation (host functions of dcl/nn.h), float and double  */
/* ------------------------------------------------------------------------ */

static double *to_d(const float *a, int64_t n) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}
static float *to_f(const double *a, int64_t n) {
    float *f = calloc((size_t)(n > 0 ? n : 1), sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)a[i];
    return f;
}
static float *nans(int64_t n) {
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = NAN;
    return f;
}
static double *nans_d(int64_t n) {
    double *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = NAN;
    return f;
}

static void cmp_host(const char *ctx, const char *what, const float *got, const float *want, int64_t n,
                     double atol, double rtol) {
    char lbl[400];
    snprintf(lbl, sizeof lbl, "%s: %s", ctx, what);
    CHECK_CLOSE(lbl, got, want, n, atol, rtol);
}
static void cmp_host_d(const char *ctx, const char *what, const double *got, const float *want, int64_t n) {
    float *f = to_f(got, n);
    cmp_host(ctx, what, f, want, n, ATOL_F64, RTOL_F64);
    free(f);
}

#define LCALL(ctx, expr) do { dcl_status s_ = (expr); CHECK(s_ == DCL_OK, "%s: %s: %s", ctx, #expr, dcl_last_error()); } while (0)

enum { L_SOFTMAX, L_LOG_SOFTMAX, L_CE, L_BCE, L_L2NORM };

static void case_loss(golden *g, const char *name, int kind) {
    char ctx[320], ctx64[320];
    snprintf(ctx, sizeof ctx, "host-f32/%s", name);
    snprintf(ctx64, sizeof ctx64, "host-f64/%s", name);
    const golden_tensor *x = get(g, "x", GOLDEN_AS_IS), *y = get(g, "y", GOLDEN_AS_IS),
                        *dy = get(g, "dy", GOLDEN_AS_IS), *dx = get(g, "dx", GOLDEN_AS_IS);
    if (!x || !y || !dy || !dx) return;
    int64_t n = x->numel;
    double *xd = to_d(x->data, n), *dyd = to_d(dy->data, dy->numel);

    if (kind == L_SOFTMAX || kind == L_LOG_SOFTMAX || kind == L_L2NORM) {
        if (x->ndim != 2) { CHECK(0, "%s: x must be 2-D", ctx); free(xd); free(dyd); return; }
        int64_t M = x->shape[0];
        int K = (int)x->shape[1];
        double eps = DCL_L2NORM_EPS;
        if (kind == L_L2NORM && !meta_double(g, "eps", &eps)) { free(xd); free(dyd); return; }
        float *yf = nans(n), *dxf = nans(n);
        double *yd = nans_d(n), *dxd = nans_d(n);
        if (kind == L_SOFTMAX) {
            LCALL(ctx, dcl_softmax_fwd_f32(M, K, yf, x->data));
            LCALL(ctx, dcl_softmax_bwd_f32(M, K, dxf, dy->data, yf));
            LCALL(ctx64, dcl_softmax_fwd_f64(M, K, yd, xd));
            LCALL(ctx64, dcl_softmax_bwd_f64(M, K, dxd, dyd, yd));
        } else if (kind == L_LOG_SOFTMAX) {
            LCALL(ctx, dcl_log_softmax_fwd_f32(M, K, yf, x->data));
            LCALL(ctx, dcl_log_softmax_bwd_f32(M, K, dxf, dy->data, yf));
            LCALL(ctx64, dcl_log_softmax_fwd_f64(M, K, yd, xd));
            LCALL(ctx64, dcl_log_softmax_bwd_f64(M, K, dxd, dyd, yd));
        } else {
            LCALL(ctx, dcl_l2norm_fwd_f32(M, K, yf, x->data, (float)eps));
            LCALL(ctx, dcl_l2norm_bwd_f32(M, K, dxf, dy->data, x->data, (float)eps));
            LCALL(ctx64, dcl_l2norm_fwd_f64(M, K, yd, xd, eps));
            LCALL(ctx64, dcl_l2norm_bwd_f64(M, K, dxd, dyd, xd, eps));
        }
        cmp_host(ctx, "y", yf, y->data, n, ATOL_F32, RTOL_F32);
        cmp_host(ctx, "dx", dxf, dx->data, n, ATOL_F32, RTOL_F32);
        cmp_host_d(ctx64, "y", yd, y->data, n);
        cmp_host_d(ctx64, "dx", dxd, dx->data, n);
        free(yf); free(dxf); free(yd); free(dxd);
    } else {
        const golden_tensor *t = get(g, "target", GOLDEN_AS_IS);
        if (!t || y->numel != 1 || dy->numel != 1) {
            CHECK(t != NULL && y->numel == 1 && dy->numel == 1, "%s: loss must be a scalar", ctx);
            free(xd); free(dyd);
            return;
        }
        float lf = NAN;
        double ld = NAN;
        float *dxf = nans(n);
        double *dxd = nans_d(n);
        if (kind == L_CE) {
            if (x->ndim != 2 || t->numel != x->shape[0]) { CHECK(0, "%s: logits (M,K) and M targets expected", ctx); }
            else {
                int64_t M = x->shape[0];
                int K = (int)x->shape[1];
                int *tg = malloc(M * sizeof *tg);
                for (int64_t i = 0; i < M; i++) tg[i] = (int)t->data[i];
                LCALL(ctx, dcl_cross_entropy_fwd_f32(M, K, &lf, x->data, tg));
                LCALL(ctx, dcl_cross_entropy_bwd_f32(M, K, dxf, dy->data[0], x->data, tg));
                LCALL(ctx64, dcl_cross_entropy_fwd_f64(M, K, &ld, xd, tg));
                LCALL(ctx64, dcl_cross_entropy_bwd_f64(M, K, dxd, dyd[0], xd, tg));
                free(tg);
            }
        } else {
            if (t->numel != n) { CHECK(0, "%s: one target per logit expected", ctx); }
            else {
                double *td = to_d(t->data, n);
                LCALL(ctx, dcl_bce_logits_fwd_f32(n, &lf, x->data, t->data));
                LCALL(ctx, dcl_bce_logits_bwd_f32(n, dxf, dy->data[0], x->data, t->data));
                LCALL(ctx64, dcl_bce_logits_fwd_f64(n, &ld, xd, td));
                LCALL(ctx64, dcl_bce_logits_bwd_f64(n, dxd, dyd[0], xd, td));
                free(td);
            }
        }
        cmp_host(ctx, "loss", &lf, y->data, 1, ATOL_F32, RTOL_F32);
        cmp_host(ctx, "dlogits", dxf, dx->data, n, ATOL_F32, RTOL_F32);
        cmp_host_d(ctx64, "loss", &ld, y->data, 1);
        cmp_host_d(ctx64, "dlogits", dxd, dx->data, n);
        free(dxf); free(dxd);
    }
    free(xd); free(dyd);
}

/* ------------------------------------------------------------------------ */
/* "ref64": the double-precision reference kernels behind a float vtable    */
/* ------------------------------------------------------------------------ */

static double *D(const float *a, int64_t n) { return a ? to_d(a, n) : NULL; }
static void back(float *dst, double *src, int64_t n) {
    if (dst) for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
    free(src);
}
static int64_t conv_nx(const dcl_conv_desc *d) { return (int64_t)d->n * d->hi * d->wi * d->ci; }
static int64_t conv_ny(const dcl_conv_desc *d) { return (int64_t)d->n * d->ho * d->wo * d->co; }
static int64_t conv_nw(const dcl_conv_desc *d) { return (int64_t)d->co * (d->ci / d->groups) * d->kh * d->kw; }

static dcl_status r64_conv_fwd(dcl_backend *be, const dcl_conv_desc *d, float *y, const float *x,
                               const float *w, const float *b) {
    double *X = D(x, conv_nx(d)), *W = D(w, conv_nw(d)), *B = D(b, d->co), *Y = nans_d(conv_ny(d));
    dcl_status s = dcl_ref_conv_fwd_f64(d, Y, X, W, B);
    back(y, Y, conv_ny(d)); free(X); free(W); free(B);
    return s;
}
static dcl_status r64_conv_bwd_data(dcl_backend *be, const dcl_conv_desc *d, float *dx, const float *dy,
                                    const float *w) {
    double *DY = D(dy, conv_ny(d)), *W = D(w, conv_nw(d)), *DX = nans_d(conv_nx(d));
    dcl_status s = dcl_ref_conv_bwd_data_f64(d, DX, DY, W);
    back(dx, DX, conv_nx(d)); free(DY); free(W);
    return s;
}
static dcl_status r64_conv_bwd_weights(dcl_backend *be, const dcl_conv_desc *d, float *dw, float *db,
                                       const float *dy, const float *x) {
    double *DY = D(dy, conv_ny(d)), *X = D(x, conv_nx(d)), *DW = D(dw, conv_nw(d)), *DB = D(db, d->co);
    dcl_status s = dcl_ref_conv_bwd_weights_f64(d, DW, DB, DY, X);
    back(dw, DW, conv_nw(d));
    if (DB) back(db, DB, d->co);
    free(DY); free(X);
    return s;
}
/* The training forward keeps its double statistics; a backward that is
 * handed the float statistics that forward wrote uses the double ones, so
 * the whole chain stays in double. */
static struct { const float *mean, *invstd; double *Mn, *I; int C; } g_bn64;

static dcl_status r64_bn_fwd_train(dcl_backend *be, int64_t M, int C, float *y, float *mean, float *var,
                                   float *invstd, const float *x, const float *gamma, const float *beta,
                                   float eps) {
    double *X = D(x, M * C), *G = D(gamma, C), *Bt = D(beta, C), *Y = nans_d(M * C), *Mn = nans_d(C),
           *V = nans_d(C), *I = nans_d(C);
    dcl_status s = dcl_ref_bn_fwd_train_f64(M, C, Y, Mn, V, I, X, G, Bt, eps);
    back(y, Y, M * C); back(var, V, C);
    for (int c = 0; c < C; c++) { mean[c] = (float)Mn[c]; invstd[c] = (float)I[c]; }
    free(g_bn64.Mn); free(g_bn64.I);
    g_bn64.mean = mean; g_bn64.invstd = invstd; g_bn64.Mn = Mn; g_bn64.I = I; g_bn64.C = C;
    free(X); free(G); free(Bt);
    return s;
}
static dcl_status r64_bn_fwd_infer(dcl_backend *be, int64_t M, int C, float *y, const float *x,
                                   const float *gamma, const float *beta, const float *rmean,
                                   const float *rvar, float eps) {
    double *X = D(x, M * C), *G = D(gamma, C), *Bt = D(beta, C), *RM = D(rmean, C), *RV = D(rvar, C),
           *Y = nans_d(M * C);
    dcl_status s = dcl_ref_bn_fwd_infer_f64(M, C, Y, X, G, Bt, RM, RV, eps);
    back(y, Y, M * C); free(X); free(G); free(Bt); free(RM); free(RV);
    return s;
}
static dcl_status r64_bn_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dgamma, float *dbeta,
                             const float *dy, const float *x, const float *mean, const float *invstd,
                             const float *gamma) {
    int cached = mean == g_bn64.mean && invstd == g_bn64.invstd && C == g_bn64.C;
    double *X = D(x, M * C), *DY = D(dy, M * C), *G = D(gamma, C), *DG = D(dgamma, C), *DB = D(dbeta, C),
           *DX = nans_d(M * C);
    double *Mn = cached ? g_bn64.Mn : D(mean, C), *I = cached ? g_bn64.I : D(invstd, C);
    dcl_status s = dcl_ref_bn_bwd_f64(M, C, DX, DG, DB, DY, X, Mn, I, G);
    back(dx, DX, M * C); back(dgamma, DG, C); back(dbeta, DB, C);
    free(X); free(DY); free(G);
    if (!cached) { free(Mn); free(I); }
    return s;
}
static dcl_status r64_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    double *X = D(x, n), *Y = nans_d(n);
    dcl_status s = dcl_ref_act_fwd_f64(a, n, Y, X);
    back(y, Y, n); free(X);
    return s;
}
static dcl_status r64_act_bwd(dcl_backend *be, dcl_act a, int64_t n, float *dx, const float *dy,
                              const float *x, const float *y) {
    double *DY = D(dy, n), *X = D(x, n), *Y = NULL, *DX = nans_d(n);
    if (x) { Y = nans_d(n); dcl_ref_act_fwd_f64(a, n, Y, X); }   /* y of the double forward */
    else Y = D(y, n);
    dcl_status s = dcl_ref_act_bwd_f64(a, n, DX, DY, X, Y);
    back(dx, DX, n); free(DY); free(X); free(Y);
    return s;
}
static dcl_status r64_prelu_fwd(dcl_backend *be, int64_t M, int C, float *y, const float *x, const float *alpha) {
    double *X = D(x, M * C), *A = D(alpha, C), *Y = nans_d(M * C);
    dcl_status s = dcl_ref_prelu_fwd_f64(M, C, Y, X, A);
    back(y, Y, M * C); free(X); free(A);
    return s;
}
static dcl_status r64_prelu_bwd(dcl_backend *be, int64_t M, int C, float *dx, float *dalpha, const float *dy,
                                const float *x, const float *alpha) {
    double *X = D(x, M * C), *A = D(alpha, C), *DY = D(dy, M * C), *DA = D(dalpha, C), *DX = nans_d(M * C);
    dcl_status s = dcl_ref_prelu_bwd_f64(M, C, DX, DA, DY, X, A);
    back(dx, DX, M * C); back(dalpha, DA, C); free(X); free(A); free(DY);
    return s;
}
static dcl_status r64_pool_fwd(dcl_backend *be, const dcl_pool_desc *d, float *y, const float *x) {
    int64_t nx = (int64_t)d->n * d->hi * d->wi * d->c, ny = (int64_t)d->n * d->ho * d->wo * d->c;
    double *X = D(x, nx), *Y = nans_d(ny);
    dcl_status s = dcl_ref_pool_fwd_f64(d, Y, X);
    back(y, Y, ny); free(X);
    return s;
}
static dcl_status r64_pool_bwd(dcl_backend *be, const dcl_pool_desc *d, float *dx, const float *dy,
                               const float *x, const float *y) {
    int64_t nx = (int64_t)d->n * d->hi * d->wi * d->c, ny = (int64_t)d->n * d->ho * d->wo * d->c;
    double *X = D(x, nx), *DY = D(dy, ny), *Y = nans_d(ny), *DX = nans_d(nx);
    dcl_ref_pool_fwd_f64(d, Y, X);
    dcl_status s = dcl_ref_pool_bwd_f64(d, DX, DY, X, Y);
    back(dx, DX, nx); free(X); free(DY); free(Y);
    return s;
}
static dcl_status r64_gap_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x) {
    double *X = D(x, (int64_t)N * HW * C), *Y = nans_d((int64_t)N * C);
    dcl_status s = dcl_ref_gap_fwd_f64(N, HW, C, Y, X);
    back(y, Y, (int64_t)N * C); free(X);
    return s;
}
static dcl_status r64_gap_bwd(dcl_backend *be, int N, int HW, int C, float *dx, const float *dy) {
    double *DY = D(dy, (int64_t)N * C), *DX = nans_d((int64_t)N * HW * C);
    dcl_status s = dcl_ref_gap_bwd_f64(N, HW, C, DX, DY);
    back(dx, DX, (int64_t)N * HW * C); free(DY);
    return s;
}
static dcl_status r64_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x,
                                 const float *w, const float *b) {
    double *X = D(x, (int64_t)M * K), *W = D(w, (int64_t)O * K), *B = D(b, O), *Y = nans_d((int64_t)M * O);
    dcl_status s = dcl_ref_linear_fwd_f64(M, K, O, Y, X, W, B);
    back(y, Y, (int64_t)M * O); free(X); free(W); free(B);
    return s;
}
static dcl_status r64_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                                 const float *dy, const float *x, const float *w) {
    double *X = D(x, (int64_t)M * K), *W = D(w, (int64_t)O * K), *DY = D(dy, (int64_t)M * O),
           *DW = D(dw, (int64_t)O * K), *DB = D(db, O), *DX = dx ? nans_d((int64_t)M * K) : NULL;
    dcl_status s = dcl_ref_linear_bwd_f64(M, K, O, DX, DW, DB, DY, X, W);
    if (DX) back(dx, DX, (int64_t)M * K);
    back(dw, DW, (int64_t)O * K);
    if (DB) back(db, DB, O);
    free(X); free(W); free(DY);
    return s;
}
static dcl_status r64_mul_bcast_fwd(dcl_backend *be, int N, int HW, int C, float *y, const float *x,
                                    const float *sc) {
    int64_t n = (int64_t)N * HW * C;
    double *X = D(x, n), *S = D(sc, (int64_t)N * C), *Y = nans_d(n);
    dcl_status s = dcl_ref_mul_bcast_fwd_f64(N, HW, C, Y, X, S);
    back(y, Y, n); free(X); free(S);
    return s;
}
static dcl_status r64_mul_bcast_bwd(dcl_backend *be, int N, int HW, int C, float *dx, float *ds,
                                    const float *dy, const float *x, const float *sc) {
    int64_t n = (int64_t)N * HW * C;
    double *X = D(x, n), *S = D(sc, (int64_t)N * C), *DY = D(dy, n), *DX = nans_d(n), *DS = nans_d((int64_t)N * C);
    dcl_status s = dcl_ref_mul_bcast_bwd_f64(N, HW, C, DX, DS, DY, X, S);
    back(dx, DX, n); back(ds, DS, (int64_t)N * C); free(X); free(S); free(DY);
    return s;
}

static dcl_backend g_ref64 = {
    .name = "ref64", .is_host = 1,
    .conv_fwd = r64_conv_fwd, .conv_bwd_data = r64_conv_bwd_data, .conv_bwd_weights = r64_conv_bwd_weights,
    .bn_fwd_train = r64_bn_fwd_train, .bn_fwd_infer = r64_bn_fwd_infer, .bn_bwd = r64_bn_bwd,
    .act_fwd = r64_act_fwd, .act_bwd = r64_act_bwd, .prelu_fwd = r64_prelu_fwd, .prelu_bwd = r64_prelu_bwd,
    .pool_fwd = r64_pool_fwd, .pool_bwd = r64_pool_bwd, .gap_fwd = r64_gap_fwd, .gap_bwd = r64_gap_bwd,
    .linear_fwd = r64_linear_fwd, .linear_bwd = r64_linear_bwd,
    .mul_bcast_fwd = r64_mul_bcast_fwd, .mul_bcast_bwd = r64_mul_bcast_bwd,
};

/* ------------------------------------------------------------------------ */
/* driver                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const k_ops[] = {
    "conv2d", "batch_norm", "silu", "sigmoid", "relu", "prelu", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "linear", "mul_bcast", "softmax", "log_softmax", "cross_entropy",
    "bce_with_logits", "normalize", NULL
};
static int g_seen[32];

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void run_backend_case(tb *b, golden *g, const char *name, const char *op) {
    mem m;
    memset(&m, 0, sizeof m);
    m.b = b;
    snprintf(m.ctx, sizeof m.ctx, "%s/%s", b->label, name);
    b->ncases++;
    if (!strcmp(op, "conv2d")) case_conv(&m, g);
    else if (!strcmp(op, "batch_norm")) case_bn(&m, g);
    else if (!strcmp(op, "silu")) case_act(&m, g, DCL_ACT_SILU);
    else if (!strcmp(op, "sigmoid")) case_act(&m, g, DCL_ACT_SIGMOID);
    else if (!strcmp(op, "relu")) case_act(&m, g, DCL_ACT_RELU);
    else if (!strcmp(op, "prelu")) case_prelu(&m, g);
    else if (!strcmp(op, "max_pool2d")) case_pool(&m, g, DCL_POOL_MAX);
    else if (!strcmp(op, "avg_pool2d")) case_pool(&m, g, DCL_POOL_AVG);
    else if (!strcmp(op, "adaptive_avg_pool2d")) case_gap(&m, g);
    else if (!strcmp(op, "linear")) case_linear(&m, g);
    else if (!strcmp(op, "mul_bcast")) case_mul_bcast(&m, g);
    else b->ncases--;
    m_done(&m);
}

static void run_file(tb *bks, int nb, const char *file) {
    char rel[512];
    snprintf(rel, sizeof rel, "ops/%s", file);
    golden *g = NULL;
    dcl_status s = golden_open(&g, rel);
    CHECK(s == DCL_OK, "opening %s: %s", rel, dcl_last_error());
    if (s != DCL_OK) return;
    const char *op = golden_meta(g, "op");
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(file) - strlen(".safetensors")), file);
    CHECK(op != NULL, "%s: no 'op' metadata", golden_name(g));
    if (op) {
        int known = -1;
        for (int i = 0; k_ops[i]; i++) if (!strcmp(k_ops[i], op)) known = i;
        CHECK(known >= 0, "%s: unknown op '%s'", golden_name(g), op);
        if (known >= 0) g_seen[known]++;
        if (!strcmp(op, "softmax")) case_loss(g, name, L_SOFTMAX);
        else if (!strcmp(op, "log_softmax")) case_loss(g, name, L_LOG_SOFTMAX);
        else if (!strcmp(op, "cross_entropy")) case_loss(g, name, L_CE);
        else if (!strcmp(op, "bce_with_logits")) case_loss(g, name, L_BCE);
        else if (!strcmp(op, "normalize")) case_loss(g, name, L_L2NORM);
        else if (known >= 0)
            for (int i = 0; i < nb; i++) run_backend_case(&bks[i], g, name, op);
    }
    golden_close(g);
}

int main(int argc, char **argv) {
    tb bks[4];
    int nb = 0;
    dcl_backend *ref = dcl_backend_ref();
    CHECK(ref != NULL, "dcl_backend_ref: %s", dcl_last_error());
    if (!ref) CHECK_DONE();
    bks[nb++] = (tb){"ref", ref, ATOL_F32, RTOL_F32, 1, 0, 0};
    bks[nb++] = (tb){"ref64", &g_ref64, ATOL_F64, RTOL_F64, 1, 0, 0};
    dcl_backend *cpu = dcl_backend_cpu(0);
    if (cpu) bks[nb++] = (tb){"cpu", cpu, ATOL_F32, RTOL_F32, 0, 0, 0};
    else printf("cpu backend not available: %s\n", dcl_last_error());
    dcl_backend *cuda = NULL;
#ifdef DCL_HAVE_CUDA
    cuda = dcl_backend_cuda(0);
    if (cuda) bks[nb++] = (tb){"cuda", cuda, ATOL_F32, RTOL_F32, 0, 0, 0};
    else printf("cuda backend not available: %s\n", dcl_last_error());
#endif

    /* the cases: every file in fixtures/ops, or those named on the command line */
    char dir[1024];
    golden_path(dir, sizeof dir, "ops");
    char **files = NULL;
    int nf = 0, cap = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            if (nf == cap) { cap = cap ? 2 * cap : 64; files = realloc(files, cap * sizeof *files); }
            char f[512];
            snprintf(f, sizeof f, "%s.safetensors", argv[i]);
            files[nf++] = strdup(f);
        }
    } else {
        DIR *dp = opendir(dir);
        CHECK(dp != NULL, "cannot open fixture directory %s (run from the repository root or set DCL_FIXTURES)", dir);
        if (!dp) CHECK_DONE();
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t l = strlen(e->d_name);
            if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
            if (nf == cap) { cap = cap ? 2 * cap : 64; files = realloc(files, cap * sizeof *files); }
            files[nf++] = strdup(e->d_name);
        }
        closedir(dp);
        qsort(files, nf, sizeof *files, cmp_str);
        CHECK(nf >= 30, "%s: expected the full set of operator fixtures, found %d files", dir, nf);
    }
    for (int i = 0; i < nf; i++) run_file(bks, nb, files[i]);
    if (argc <= 1)
        for (int i = 0; k_ops[i]; i++) CHECK(g_seen[i] > 0, "no fixture for op '%s'", k_ops[i]);

    for (int i = 0; i < nb; i++) {
        printf("%-6s %d cases", bks[i].label, bks[i].ncases);
        if (bks[i].nskipped) printf(", %d entries skipped (absent or refused)", bks[i].nskipped);
        printf("\n");
    }
    for (int i = 0; i < nf; i++) free(files[i]);
    free(files);
    if (cpu) dcl_backend_destroy(cpu);
    if (cuda) dcl_backend_destroy(cuda);
    free(g_bn64.Mn); free(g_bn64.I);
    CHECK_DONE();
}
