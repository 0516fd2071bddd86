#include "dcl/tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } g_dt[] = {
    [DCL_F32] = {"F32", 4}, [DCL_F64] = {"F64", 8}, [DCL_F16] = {"F16", 2},
    [DCL_BF16] = {"BF16", 2}, [DCL_I64] = {"I64", 8}, [DCL_I32] = {"I32", 4},
    [DCL_U8] = {"U8", 1}, [DCL_I8] = {"I8", 1}, [DCL_BOOL] = {"BOOL", 1},
};

size_t dcl_dtype_size(dcl_dtype t) { return (unsigned)t <= DCL_BOOL ? g_dt[t].size : 0; }
const char *dcl_dtype_name(dcl_dtype t) { return (unsigned)t <= DCL_BOOL ? g_dt[t].name : "?"; }
int dcl_dtype_from_name(const char *s, dcl_dtype *out) {
    for (int i = 0; i <= DCL_BOOL; i++)
        if (strcmp(s, g_dt[i].name) == 0) { *out = (dcl_dtype)i; return 0; }
    return -1;
}

int64_t dcl_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

const char *dcl_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

void dcl_nchw_to_nhwc(float *dst, const float *src, int n, int c, int h, int w) {
    for (int in = 0; in < n; in++)
        for (int ic = 0; ic < c; ic++)
            for (int ih = 0; ih < h; ih++)
                for (int iw = 0; iw < w; iw++)
                    dst[(((size_t)in * h + ih) * w + iw) * c + ic] = src[(((size_t)in * c + ic) * h + ih) * w + iw];
}

void dcl_nhwc_to_nchw(float *dst, const float *src, int n, int c, int h, int w) {
    for (int in = 0; in < n; in++)
        for (int ic = 0; ic < c; ic++)
            for (int ih = 0; ih < h; ih++)
                for (int iw = 0; iw < w; iw++)
                    dst[(((size_t)in * c + ic) * h + ih) * w + iw] = src[(((size_t)in * h + ih) * w + iw) * c + ic];
}

void dcl_table_init(dcl_table *t) { memset(t, 0, sizeof *t); }
void dcl_table_free(dcl_table *t) { free(t->v); memset(t, 0, sizeof *t); }

int dcl_table_add(dcl_table *t, const char *name, int ndim, const int64_t *shape, unsigned flags) {
    if (ndim < 0 || ndim > 4) { dcl_fail(DCL_ERR_ARG, "tensor %s: %d dims (max 4)", name, ndim); return -1; }
    if (strlen(name) >= DCL_NAME_MAX) { dcl_fail(DCL_ERR_ARG, "tensor name too long: %s", name); return -1; }
    if (dcl_table_find(t, name) >= 0) { dcl_fail(DCL_ERR_ARG, "duplicate tensor name %s", name); return -1; }
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 64;
        dcl_named *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv) { dcl_fail(DCL_ERR_NOMEM, "tensor table"); return -1; }
        t->v = nv; t->cap = nc;
    }
    dcl_named *e = &t->v[t->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->numel = dcl_shape_numel(ndim, shape);
    e->offset = t->total;
    e->flags = flags;
    t->total += (size_t)((e->numel + 15) / 16 * 16);
    return t->n++;
}

int dcl_table_find(const dcl_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0) return i;
    return -1;
}
