/* Fixture loading for the tests: see golden.h. */
#include "golden.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct golden_slot {
    char *name;
    int layout;
    golden_tensor t;
} golden_slot;

struct golden {
    dcl_st *st;
    char *path;
    golden_slot **slots;   /* each slot allocated on its own: returned pointers stay valid */
    int nslots, cap;
};

const char *golden_dir(void) {
    const char *d = getenv("DCL_FIXTURES");
    return d && *d ? d : "tests/fixtures";
}

const char *golden_path(char *buf, size_t n, const char *rel) {
    if (rel[0] == '/') snprintf(buf, n, "%s", rel);
    else snprintf(buf, n, "%s/%s", golden_dir(), rel);
    return buf;
}

dcl_status golden_open(golden **out, const char *rel) {
    *out = NULL;
    char path[4096];
    golden_path(path, sizeof path, rel);
    golden *g = calloc(1, sizeof *g);
    if (!g) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    g->path = strdup(path);
    if (!g->path) { free(g); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path); }
    dcl_status s = dcl_st_open(&g->st, path);
    if (s != DCL_OK) { free(g->path); free(g); return s; }
    *out = g;
    return DCL_OK;
}

void golden_close(golden *g) {
    if (!g) return;
    for (int i = 0; i < g->nslots; i++) {
        free(g->slots[i]->name);
        free(g->slots[i]->t.data);
        free(g->slots[i]);
    }
    free(g->slots);
    dcl_st_close(g->st);
    free(g->path);
    free(g);
}

const char *golden_name(const golden *g) { return g->path; }
const dcl_st *golden_st(const golden *g) { return g->st; }

int golden_has(const golden *g, const char *name) { return dcl_st_find(g->st, name) != NULL; }

int golden_count(const golden *g) { return dcl_st_count(g->st); }

const char *golden_tensor_name(const golden *g, int i) {
    const dcl_st_entry *e = dcl_st_get(g->st, i);
    return e ? e->name : NULL;
}

static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    return dcl_shape_str(buf, n, ndim, shape);
}

const golden_tensor *golden_get(golden *g, const char *name, int layout) {
    for (int i = 0; i < g->nslots; i++)
        if (g->slots[i]->layout == layout && strcmp(g->slots[i]->name, name) == 0) return &g->slots[i]->t;
    const dcl_st_entry *e = dcl_st_find(g->st, name);
    if (!e) {
        dcl_fail(DCL_ERR_NOTFOUND, "%s: no tensor '%s'", g->path, name);
        return NULL;
    }
    if (g->nslots == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        golden_slot **s = realloc(g->slots, (size_t)cap * sizeof *s);
        if (!s) { dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", g->path); return NULL; }
        g->slots = s;
        g->cap = cap;
    }
    golden_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = e->ndim;
    memcpy(t.shape, e->shape, sizeof t.shape);
    t.numel = e->numel;
    float *raw = malloc((size_t)(t.numel > 0 ? t.numel : 1) * sizeof(float));
    if (!raw) { dcl_fail(DCL_ERR_NOMEM, "%s: '%s': out of memory", g->path, name); return NULL; }
    if (dcl_st_entry_to_f32(raw, g->st, e) != DCL_OK) {
        dcl_fail_ctx(DCL_ERR_FORMAT, "%s: tensor '%s'", g->path, name);
        free(raw);
        return NULL;
    }
    if (layout == GOLDEN_NHWC && t.ndim == 4) {
        float *cv = malloc((size_t)(t.numel > 0 ? t.numel : 1) * sizeof(float));
        if (!cv) { free(raw); dcl_fail(DCL_ERR_NOMEM, "%s: '%s': out of memory", g->path, name); return NULL; }
        dcl_nchw_to_nhwc(cv, raw, (int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3]);
        free(raw);
        raw = cv;
        t.nhwc = 1;
    }
    t.data = raw;
    golden_slot *s = calloc(1, sizeof *s);
    if (s) s->name = strdup(name);
    if (!s || !s->name) {
        free(s); free(raw);
        dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", g->path);
        return NULL;
    }
    g->slots[g->nslots] = s;
    s->layout = layout;
    s->t = t;
    g->nslots++;
    return &s->t;
}

const golden_tensor *golden_get_shape(golden *g, const char *name, int layout,
                                      int ndim, const int64_t *shape) {
    const golden_tensor *t = golden_get(g, name, layout);
    if (!t) return NULL;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        dcl_fail(DCL_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", g->path, name,
                 shape_str(a, sizeof a, t->ndim, t->shape), shape_str(b, sizeof b, ndim, shape));
        return NULL;
    }
    return t;
}

const char *golden_meta(const golden *g, const char *key) { return dcl_st_meta(g->st, key); }

int golden_meta_ints(const golden *g, const char *key, int *out, int max) {
    const char *v = dcl_st_meta(g->st, key);
    if (!v) { dcl_fail(DCL_ERR_NOTFOUND, "%s: no metadata '%s'", g->path, key); return -1; }
    int n = 0;
    const char *p = v;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < INT_MIN || x > INT_MAX || n >= max) {
            dcl_fail(DCL_ERR_FORMAT, "%s: metadata '%s' = '%s': expected at most %d comma-separated integers",
                     g->path, key, v, max);
            return -1;
        }
        out[n++] = (int)x;
        if (*end == '\0') break;
        if (*end != ',') {
            dcl_fail(DCL_ERR_FORMAT, "%s: metadata '%s' = '%s': expected comma-separated integers",
                     g->path, key, v);
            return -1;
        }
        p = end + 1;
    }
    return n;
}

int golden_meta_int(const golden *g, const char *key, int *out) {
    int v;
    int n = golden_meta_ints(g, key, &v, 1);
    if (n != 1) return -1;
    *out = v;
    return 0;
}

int golden_meta_double(const golden *g, const char *key, double *out) {
    const char *v = dcl_st_meta(g->st, key);
    if (!v) { dcl_fail(DCL_ERR_NOTFOUND, "%s: no metadata '%s'", g->path, key); return -1; }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno) {
        dcl_fail(DCL_ERR_FORMAT, "%s: metadata '%s' = '%s': expected a number", g->path, key, v);
        return -1;
    }
    *out = x;
    return 0;
}

float *golden_dup(const float *src, int64_t n) {
    float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    if (d && n > 0) memcpy(d, src, (size_t)n * sizeof *d);
    return d;
}
