#include "dcl/core.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *dcl_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = DCL_ALIGN;
    if (posix_memalign(&p, DCL_ALIGN, dcl_align_up(bytes)) != 0) return NULL;
    return p;
}

void *dcl_calloc(size_t bytes) {
    void *p = dcl_alloc(bytes);
    if (p) memset(p, 0, dcl_align_up(bytes ? bytes : 1));
    return p;
}

void dcl_free(void *p) { free(p); }

void *dcl_alloc_big(size_t bytes) {
    if (bytes < ((size_t)8 << 20)) return dcl_alloc(bytes);
    size_t huge = (size_t)2 << 20, n = (bytes + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, n) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (getenv("DCL_NO_HUGEPAGE") == NULL) madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

dcl_status dcl_arena_init(dcl_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = dcl_alloc(cap);
    if (!a->base) return dcl_fail(DCL_ERR_NOMEM, "arena: cannot allocate %zu bytes", cap);
    a->cap = cap;
    a->owns = 1;
    return DCL_OK;
}

void dcl_arena_wrap(dcl_arena *a, void *mem, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = mem;
    a->cap = cap;
}

void dcl_arena_destroy(dcl_arena *a) {
    if (a->owns) dcl_free(a->base);
    memset(a, 0, sizeof *a);
}

void *dcl_arena_alloc(dcl_arena *a, size_t bytes) {
    size_t need = dcl_align_up(bytes ? bytes : 1);
    if (a->used + need > a->cap) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

size_t dcl_arena_mark(const dcl_arena *a) { return a->used; }
void dcl_arena_reset(dcl_arena *a, size_t mark) { if (mark <= a->used) a->used = mark; }
