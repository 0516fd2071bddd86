/* Model weights: safetensors import (timm or torchvision names) and export. */
#include "dcl/model.h"
#include "dcl/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends a name to a comma list, keeping at most `max` names and a count. */
typedef struct name_list { dcl_buf b; int n; } name_list;

static void list_add(name_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void list_add(name_list *l, const char *fmt, ...) {
    l->n++;
    if (l->n > 8) return;
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (l->b.len) dcl_buf_puts(&l->b, ", ");
    dcl_buf_puts(&l->b, tmp);
}

static void list_emit(dcl_buf *msg, const char *what, name_list *l) {
    if (!l->n) return;
    if (msg->len) dcl_buf_puts(msg, "; ");
    dcl_buf_printf(msg, "%d %s: %s%s", l->n, what, l->b.data, l->n > 8 ? ", ..." : "");
}

static int has_prefix(const char *s, const char *p) { return p && *p && !strncmp(s, p, strlen(p)); }

dcl_status dcl_model_load(dcl_model *m, const char *path, const dcl_load_opts *opts) {
    dcl_load_opts def = {0, 0, NULL};
    if (!opts) opts = &def;
    dcl_st *st = NULL;
    DCL_TRY(dcl_st_open(&st, path));
    dcl_net *net = m->net;
    DCL_TRY(dcl_net_finalize(net));
    const dcl_table *P = dcl_net_params(net), *B = dcl_net_buffers(net);
    int ntot = P->n + B->n;
    char *seen = calloc(ntot + 1, 1);
    float *tmp = NULL;
    size_t tmp_cap = 0;
    name_list missing = {{0}, 0}, unexpected = {{0}, 0}, badshape = {{0}, 0}, baddtype = {{0}, 0};
    dcl_status s = DCL_OK;
    if (!seen) { dcl_st_close(st); return dcl_fail(DCL_ERR_NOMEM, "loading %s", path); }
    int tv = 0;
    for (int i = 0; i < dcl_st_count(st); i++)
        if (!strncmp(dcl_st_get(st, i)->name, "features.", 9)) { tv = 1; break; }
    for (int i = 0; i < dcl_st_count(st) && !s; i++) {
        const dcl_st_entry *e = dcl_st_get(st, i);
        char name[DCL_NAME_MAX];
        if (tv) {
            if (dcl_effnet_tv_to_timm(e->name, name, sizeof name) != 0) {
                if (!has_prefix(e->name, opts->skip_prefix)) list_add(&unexpected, "%s", e->name);
                continue;
            }
        } else {
            snprintf(name, sizeof name, "%s", e->name);
        }
        if (has_prefix(name, opts->skip_prefix)) continue;
        int idx = dcl_table_find(P, name);
        const dcl_named *t = NULL;
        int slot = -1;
        if (idx >= 0) { t = &P->v[idx]; slot = idx; }
        else if ((idx = dcl_table_find(B, name)) >= 0) { t = &B->v[idx]; slot = P->n + idx; }
        if (!t) { list_add(&unexpected, "%s", e->name); continue; }
        seen[slot] = 1;
        /* shapes must match exactly (a 0-dim counter may be stored as [1]) */
        int ok = e->numel == t->numel && (e->ndim == t->ndim || t->ndim == 0);
        for (int d = 0; ok && e->ndim == t->ndim && d < t->ndim; d++) ok = e->shape[d] == t->shape[d];
        if (!ok) {
            char a[96], b[96];
            list_add(&badshape, "%s (expected %s, found %s)", e->name, dcl_shape_str(a, sizeof a, t->ndim, t->shape),
                     dcl_shape_str(b, sizeof b, e->ndim, e->shape));
            continue;
        }
        if (e->dtype != DCL_F32 && e->dtype != DCL_F16 && e->dtype != DCL_BF16 && e->dtype != DCL_F64 &&
            !(t->flags & DCL_PF_COUNTER)) {
            list_add(&baddtype, "%s (%s)", e->name, dcl_dtype_name(e->dtype));
            continue;
        }
        if ((size_t)e->numel > tmp_cap) {
            free(tmp);
            tmp_cap = e->numel;
            tmp = malloc(tmp_cap * sizeof(float));
            if (!tmp) { s = dcl_fail(DCL_ERR_NOMEM, "loading %s", path); break; }
        }
        s = dcl_st_entry_to_f32(tmp, st, e);
        if (!s) s = dcl_net_set_tensor(net, name, tmp, t->numel);
    }
    if (!s) {
        for (int i = 0; i < ntot; i++) {
            if (seen[i]) continue;
            const dcl_named *t = i < P->n ? &P->v[i] : &B->v[i - P->n];
            if (has_prefix(t->name, opts->skip_prefix)) continue;
            if (t->flags & DCL_PF_COUNTER) continue; /* num_batches_tracked is optional */
            list_add(&missing, "%s", t->name);
        }
        dcl_buf msg = {0};
        if (!opts->allow_missing) list_emit(&msg, "missing", &missing);
        if (!opts->allow_unexpected) list_emit(&msg, "unexpected", &unexpected);
        list_emit(&msg, "with the wrong shape", &badshape);
        list_emit(&msg, "with a non-float dtype", &baddtype);
        if (msg.len)
            s = dcl_fail(badshape.n ? DCL_ERR_SHAPE : DCL_ERR_FORMAT, "%s does not fit %s: %s", path, m->cfg.arch, msg.data);
        dcl_buf_free(&msg);
    }
    dcl_buf_free(&missing.b);
    dcl_buf_free(&unexpected.b);
    dcl_buf_free(&badshape.b);
    dcl_buf_free(&baddtype.b);
    free(tmp);
    free(seen);
    dcl_st_close(st);
    return s;
}

dcl_status dcl_model_save(dcl_model *m, const char *path, int nmeta, const char *const *kv) {
    dcl_net *net = m->net;
    DCL_TRY(dcl_net_finalize(net));
    const dcl_table *P = dcl_net_params(net), *B = dcl_net_buffers(net);
    dcl_st_writer *w = NULL;
    DCL_TRY(dcl_st_writer_new(&w));
    float *host = malloc((P->total + B->total + 16) * sizeof(float));
    dcl_status s = host ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "saving %s", path);
    float *hb = host ? host + P->total : NULL;
    for (int i = 0; i < P->n && !s; i++) {
        const dcl_named *e = &P->v[i];
        s = dcl_net_get_tensor(net, e->name, host + e->offset, e->numel);
        if (!s) s = dcl_st_writer_add(w, e->name, DCL_F32, e->ndim, e->shape, host + e->offset);
    }
    for (int i = 0; i < B->n && !s; i++) {
        const dcl_named *e = &B->v[i];
        s = dcl_net_get_tensor(net, e->name, hb + e->offset, e->numel);
        if (!s) s = dcl_st_writer_add_f32(w, e->name, (e->flags & DCL_PF_COUNTER) ? DCL_I64 : DCL_F32,
                                          e->ndim, e->shape, hb + e->offset);
    }
    if (!s) s = dcl_st_writer_meta(w, "format", "pt");
    if (!s) s = dcl_st_writer_meta(w, "arch", m->cfg.arch);
    for (int i = 0; i < nmeta && !s; i++) s = dcl_st_writer_meta(w, kv[2 * i], kv[2 * i + 1]);
    if (!s) s = dcl_st_write_file(w, path);
    dcl_st_writer_free(w);
    free(host);
    return s;
}
