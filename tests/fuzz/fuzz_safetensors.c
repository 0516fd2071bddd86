/* libFuzzer target: safetensors reader.  Any input must either be refused
 * with a message or give entries that lie inside the input, convert to
 * float, and survive a write/re-read round trip unchanged. */
#include "dcl/io.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dcl_st *st;
    if (dcl_st_open_mem(&st, data, size, "fuzz") != DCL_OK) {
        if (!dcl_last_error()[0]) __builtin_trap();
        return 0;
    }
    dcl_st_writer *w;
    if (dcl_st_writer_new(&w) != DCL_OK) __builtin_trap();
    for (int i = 0; i < dcl_st_count(st); i++) {
        const dcl_st_entry *e = dcl_st_get(st, i);
        const uint8_t *p = e->data;
        if (p < data || p + e->nbytes > data + size) __builtin_trap();
        if ((size_t)e->numel * dcl_dtype_size(e->dtype) != e->nbytes) __builtin_trap();
        if (dcl_st_find(st, e->name) != e) __builtin_trap();
        float *f = malloc(sizeof(float) * ((size_t)e->numel + 1));
        if (dcl_st_entry_to_f32(f, st, e) != DCL_OK) __builtin_trap();
        free(f);
        if (dcl_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data) != DCL_OK) __builtin_trap();
    }
    for (int i = 0; i < dcl_st_meta_count(st); i++) {
        const char *v, *k = dcl_st_meta_get(st, i, &v);
        if (!k || !v || dcl_st_meta(st, k) != v) __builtin_trap();
        if (dcl_st_writer_meta(w, k, v) != DCL_OK) __builtin_trap();
    }
    void *buf;
    size_t len;
    if (dcl_st_write_mem(w, &buf, &len) != DCL_OK) __builtin_trap();
    dcl_st *again;
    if (dcl_st_open_mem(&again, buf, len, "again") != DCL_OK) __builtin_trap();
    if (dcl_st_count(again) != dcl_st_count(st) || dcl_st_meta_count(again) != dcl_st_meta_count(st)) __builtin_trap();
    for (int i = 0; i < dcl_st_count(st); i++) {
        const dcl_st_entry *a = dcl_st_get(st, i), *b = dcl_st_find(again, a->name);
        if (!b || b->dtype != a->dtype || b->ndim != a->ndim || b->nbytes != a->nbytes ||
            memcmp(b->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim) || (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
            __builtin_trap();
    }
    dcl_st_close(again);
    free(buf);
    dcl_st_writer_free(w);
    dcl_st_close(st);
    return 0;
}
