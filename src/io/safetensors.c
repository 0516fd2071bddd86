/* safetensors reader (memory-mapped, fully validated) and atomic writer. */
#include "dcl/io.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define MAX_EXACT_INT 9007199254740992LL /* 2^53 */

/* ------------------------------------------------------------ conversions */

float dcl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return (h & 0x8000) ? -f : f;
    }
    if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t dcl_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00;                                 /* >= 65520: inf */
    uint32_t e = ax >> 23;
    if (ax < 0x38800000u) { /* below 2^-14: half subnormal or zero */
        if (e < 102) return sign; /* < 2^-25 rounds to zero */
        uint32_t m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t mant = ax & 0x7fffff;
    uint32_t hbits = ((e - 112) << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (hbits & 1))) hbits++;
    return sign | (uint16_t)hbits;
}

float dcl_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t dcl_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---------------------------------------------------------------- helpers */

/* Printable, bounded copy of a name for error messages. */
static const char *pname(char *buf, size_t n, const char *s) {
    size_t k = 0, i = 0;
    for (; s[i] && k + 4 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) { buf[k++] = '.'; buf[k++] = '.'; buf[k++] = '.'; }
    buf[k] = 0;
    return buf;
}

/* Returns the offset of the first invalid byte, or len when valid. */
static size_t utf8_check(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return i;
        if (len - i <= n) return i; /* sequence cut short */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

static int utf8_ok(const char *s) { size_t n = strlen(s); return utf8_check((const unsigned char *)s, n) == n; }

static const char *g_other_dtypes[] = {"U16", "I16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                       "F6_E2M3", "F6_E3M2", "F4", "C64", NULL};

/* ------------------------------------------------------------------ reader */

struct dcl_st {
    char *path;
    const uint8_t *base;   /* whole file */
    size_t size;
    void *map;             /* mmap'ed region (NULL for memory buffers) */
    size_t map_len;
    void *owned;           /* heap copy for files that cannot be mapped (pipes) */
    dcl_st_entry *e;       /* in offset order */
    int n;
    int *by_name;          /* indices sorted by name */
    char **mk, **mv;       /* metadata, sorted by key */
    int nmeta;
};

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct { const char *name; int idx; } name_idx;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

typedef struct { uint64_t begin, end; int idx; } off_idx;
static int cmp_off(const void *a, const void *b) {
    const off_idx *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

void dcl_st_close(dcl_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->e[i].name);
    for (int i = 0; i < st->nmeta; i++) { free(st->mk[i]); free(st->mv[i]); }
    free(st->e);
    free(st->by_name);
    free(st->mk);
    free(st->mv);
    if (st->map) munmap(st->map, st->map_len);
    free(st->owned);
    free(st->path);
    free(st);
}

static dcl_status parse_meta(dcl_st *st, const cJSON *m, const char *label) {
    if (cJSON_IsNull(m)) return DCL_OK;
    if (!cJSON_IsObject(m))
        return dcl_fail(DCL_ERR_FORMAT, "%s: __metadata__ is not an object", label);
    int n = cJSON_GetArraySize(m);
    st->mk = calloc((size_t)n + 1, sizeof *st->mk);
    st->mv = calloc((size_t)n + 1, sizeof *st->mv);
    if (!st->mk || !st->mv) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    char nb[96];
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return dcl_fail(DCL_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", label,
                            pname(nb, sizeof nb, c->string ? c->string : ""));
        int i = st->nmeta;
        st->mk[i] = strdup(c->string ? c->string : "");
        st->mv[i] = strdup(c->valuestring);
        if (!st->mk[i] || !st->mv[i]) {
            free(st->mk[i]);
            free(st->mv[i]);
            return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
        }
        st->nmeta++;
    }
    /* sort keys (carrying values) and refuse duplicates */
    name_idx *ix = malloc(((size_t)st->nmeta + 1) * sizeof *ix);
    char **k2 = malloc(((size_t)st->nmeta + 1) * sizeof *k2), **v2 = malloc(((size_t)st->nmeta + 1) * sizeof *v2);
    if (!ix || !k2 || !v2) {
        free(ix); free(k2); free(v2);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    }
    for (int i = 0; i < st->nmeta; i++) ix[i] = (name_idx){st->mk[i], i};
    qsort(ix, (size_t)st->nmeta, sizeof *ix, cmp_name_idx);
    for (int i = 0; i < st->nmeta; i++) { k2[i] = st->mk[ix[i].idx]; v2[i] = st->mv[ix[i].idx]; }
    memcpy(st->mk, k2, (size_t)st->nmeta * sizeof *k2);
    memcpy(st->mv, v2, (size_t)st->nmeta * sizeof *v2);
    free(ix); free(k2); free(v2);
    for (int i = 1; i < st->nmeta; i++)
        if (!strcmp(st->mk[i - 1], st->mk[i]))
            return dcl_fail(DCL_ERR_FORMAT, "%s: duplicate __metadata__ key '%s'", label,
                            pname(nb, sizeof nb, st->mk[i]));
    return DCL_OK;
}

/* Validates one tensor entry; fills e (name not set). */
static dcl_status parse_entry(dcl_st_entry *e, uint64_t *begin, const cJSON *t, const char *label,
                              const char *name, uint64_t buflen) {
    char nb[96];
    pname(nb, sizeof nb, name);
    if (!cJSON_IsObject(t))
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': entry is not an object", label, nb);
    const cJSON *dt = NULL, *sh = NULL, *of = NULL;
    for (const cJSON *c = t->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (!c->string) continue;
        if (!strcmp(c->string, "dtype")) slot = &dt;
        else if (!strcmp(c->string, "shape")) slot = &sh;
        else if (!strcmp(c->string, "data_offsets")) slot = &of;
        if (!slot) continue;
        if (*slot)
            return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice", label, nb, c->string);
        *slot = c;
    }
    if (!dt) return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", label, nb);
    if (!sh) return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", label, nb);
    if (!of) return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': missing \"data_offsets\"", label, nb);

    if (!cJSON_IsString(dt) || !dt->valuestring)
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", label, nb);
    if (dcl_dtype_from_name(dt->valuestring, &e->dtype) != 0) {
        char db[40];
        pname(db, sizeof db, dt->valuestring);
        for (int i = 0; g_other_dtypes[i]; i++)
            if (!strcmp(dt->valuestring, g_other_dtypes[i]))
                return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", label, nb, db);
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", label, nb, db);
    }

    if (!cJSON_IsArray(sh))
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", label, nb);
    int nd = cJSON_GetArraySize(sh);
    if (nd > DCL_MAX_DIMS)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", label,
                        nb, nd, DCL_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0, d = 0;
    for (const cJSON *c = sh->child; c; c = c->next, d++) {
        int64_t v;
        if (!dcl_json_int(c, 0, MAX_EXACT_INT, &v))
            return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", label,
                            nb, d);
        e->shape[d] = v;
        if (__builtin_mul_overflow(numel, (uint64_t)v, &numel)) overflow = 1;
    }
    uint64_t nbytes = 0;
    if (overflow || numel > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow(numel, (uint64_t)dcl_dtype_size(e->dtype), &nbytes)) {
        char sb[200];
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': shape %s is too large", label, nb,
                        dcl_shape_str(sb, sizeof sb, nd, e->shape));
    }
    e->numel = (int64_t)numel;

    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not an array of two integers",
                        label, nb);
    int64_t b, en;
    if (!dcl_json_int(of->child, 0, MAX_EXACT_INT, &b) || !dcl_json_int(of->child->next, 0, MAX_EXACT_INT, &en))
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" are not non-negative integers",
                        label, nb);
    if (en < b)
        return dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are reversed", label, nb,
                        (long long)b, (long long)en);
    if ((uint64_t)en > buflen)
        return dcl_fail(DCL_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the %llu-byte data buffer",
                        label, nb, (long long)b, (long long)en, (unsigned long long)buflen);
    if ((uint64_t)(en - b) != nbytes) {
        char sb[200];
        return dcl_fail(DCL_ERR_FORMAT,
                        "%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets [%lld, %lld] span %lld",
                        label, nb, dcl_shape_str(sb, sizeof sb, nd, e->shape), dcl_dtype_name(e->dtype),
                        (unsigned long long)nbytes, (long long)b, (long long)en, (long long)(en - b));
    }
    e->nbytes = (size_t)nbytes;
    *begin = (uint64_t)b;
    return DCL_OK;
}

static dcl_status st_parse(dcl_st *st, const char *label) {
    const uint8_t *p = st->base;
    size_t size = st->size;
    if (size < 8)
        return dcl_fail(DCL_ERR_FORMAT, "%s: file too short for a safetensors header (%zu bytes, need at least 8)",
                        label, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > DCL_ST_MAX_HEADER)
        return dcl_fail(DCL_ERR_FORMAT, "%s: header length %llu is absurd (limit %u); not a safetensors file?",
                        label, (unsigned long long)n, DCL_ST_MAX_HEADER);
    if (n > size - 8)
        return dcl_fail(DCL_ERR_FORMAT, "%s: header length %llu exceeds the file size (%zu bytes); truncated file?",
                        label, (unsigned long long)n, size);
    if (n < 2) return dcl_fail(DCL_ERR_FORMAT, "%s: header length %llu is too short", label, (unsigned long long)n);
    const char *hdr = (const char *)p + 8;
    size_t bad = utf8_check((const unsigned char *)hdr, (size_t)n);
    if (bad != n)
        return dcl_fail(DCL_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu)", label, bad);
    /* \u0000 would truncate names silently */
    for (size_t i = 0; i + 6 <= n; i++)
        if (hdr[i] == '\\') {
            if (hdr[i + 1] == 'u' && hdr[i + 2] == '0' && hdr[i + 3] == '0' && hdr[i + 4] == '0' && hdr[i + 5] == '0')
                return dcl_fail(DCL_ERR_FORMAT, "%s: header contains a \\u0000 escape", label);
            i++; /* skip the escaped character */
        }
    char *text = malloc((size_t)n + 1);
    if (!text) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %llu bytes for the header", label,
                               (unsigned long long)n);
    memcpy(text, hdr, (size_t)n);
    text[n] = 0;
    char what[600];
    snprintf(what, sizeof what, "%s: header", label);
    cJSON *root = NULL;
    dcl_status s = dcl_json_parse(&root, text, (size_t)n, what);
    free(text);
    if (s != DCL_OK) return s;
    uint64_t buflen = size - 8 - n;
    const uint8_t *buf = p + 8 + n;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dcl_fail(DCL_ERR_FORMAT, "%s: header is not a JSON object", label);
    }
    int total = cJSON_GetArraySize(root);
    st->e = calloc((size_t)total + 1, sizeof *st->e);
    off_idx *oi = calloc((size_t)total + 1, sizeof *oi);
    if (!st->e || !oi) {
        free(oi);
        cJSON_Delete(root);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    }
    int seen_meta = 0;
    for (const cJSON *c = root->child; c && s == DCL_OK; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (seen_meta++) s = dcl_fail(DCL_ERR_FORMAT, "%s: __metadata__ appears twice", label);
            else s = parse_meta(st, c, label);
            continue;
        }
        dcl_st_entry *e = &st->e[st->n];
        uint64_t begin = 0;
        s = parse_entry(e, &begin, c, label, name, buflen);
        if (s != DCL_OK) break;
        e->data = buf + begin;
        e->name = strdup(name);
        if (!e->name) { s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label); break; }
        oi[st->n] = (off_idx){begin, begin + e->nbytes, st->n};
        st->n++;
    }
    cJSON_Delete(root);
    if (s != DCL_OK) { free(oi); return s; }

    /* duplicates */
    char nb[96], nb2[96];
    name_idx *ni = malloc(((size_t)st->n + 1) * sizeof *ni);
    st->by_name = malloc(((size_t)st->n + 1) * sizeof *st->by_name);
    if (!ni || !st->by_name) {
        free(ni); free(oi);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    }
    for (int i = 0; i < st->n; i++) ni[i] = (name_idx){st->e[i].name, i};
    qsort(ni, (size_t)st->n, sizeof *ni, cmp_name_idx);
    for (int i = 0; i < st->n; i++) {
        st->by_name[i] = ni[i].idx;
        if (i && !strcmp(ni[i - 1].name, ni[i].name)) {
            s = dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", label,
                         pname(nb, sizeof nb, ni[i].name));
            break;
        }
    }
    free(ni);
    if (s != DCL_OK) { free(oi); return s; }

    /* offsets: sorted, contiguous, covering the buffer */
    qsort(oi, (size_t)st->n, sizeof *oi, cmp_off);
    uint64_t at = 0;
    for (int i = 0; i < st->n && s == DCL_OK; i++) {
        if (oi[i].begin < at)
            s = dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s' [%llu, %llu) overlaps tensor '%s' (ends at %llu)", label,
                         pname(nb, sizeof nb, st->e[oi[i].idx].name), (unsigned long long)oi[i].begin,
                         (unsigned long long)oi[i].end, pname(nb2, sizeof nb2, st->e[oi[i - 1].idx].name),
                         (unsigned long long)at);
        else if (oi[i].begin > at)
            s = dcl_fail(DCL_ERR_FORMAT, "%s: tensor '%s': data buffer bytes [%llu, %llu) before it belong to no tensor",
                         label, pname(nb, sizeof nb, st->e[oi[i].idx].name), (unsigned long long)at,
                         (unsigned long long)oi[i].begin);
        if (oi[i].end > at) at = oi[i].end;
    }
    if (s == DCL_OK && at != buflen)
        s = dcl_fail(DCL_ERR_FORMAT, "%s: data buffer has %llu bytes but the tensors cover %llu", label,
                     (unsigned long long)buflen, (unsigned long long)at);
    if (s == DCL_OK) {
        /* entries in file order */
        dcl_st_entry *sorted = malloc(((size_t)st->n + 1) * sizeof *sorted);
        int *inv = malloc(((size_t)st->n + 1) * sizeof *inv);
        if (!sorted || !inv) {
            free(sorted); free(inv);
            s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
        } else {
            for (int i = 0; i < st->n; i++) { sorted[i] = st->e[oi[i].idx]; inv[oi[i].idx] = i; }
            for (int i = 0; i < st->n; i++) st->by_name[i] = inv[st->by_name[i]];
            free(st->e);
            free(inv);
            st->e = sorted;
        }
    }
    free(oi);
    return s;
}

static dcl_status st_new(dcl_st **out, const char *label) {
    *out = calloc(1, sizeof **out);
    if (!*out) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    (*out)->path = strdup(label);
    if (!(*out)->path) {
        free(*out);
        *out = NULL;
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", label);
    }
    return DCL_OK;
}

dcl_status dcl_st_open_mem(dcl_st **out, const void *buf, size_t len, const char *name) {
    *out = NULL;
    if (!name) name = "<memory>";
    if (!buf && len) return dcl_fail(DCL_ERR_ARG, "%s: NULL buffer", name);
    dcl_st *st;
    DCL_TRY(st_new(&st, name));
    st->base = buf;
    st->size = len;
    dcl_status s = st_parse(st, name);
    if (s != DCL_OK) { dcl_st_close(st); return s; }
    *out = st;
    return DCL_OK;
}

dcl_status dcl_st_open(dcl_st **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dcl_fail(errno == ENOENT ? DCL_ERR_NOTFOUND : DCL_ERR_IO, "%s: cannot open: %s", path,
                                strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dcl_fail(DCL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return dcl_fail(DCL_ERR_IO, "%s: is a directory", path);
    }
    dcl_st *st;
    dcl_status s = st_new(&st, path);
    if (s != DCL_OK) { close(fd); return s; }
    if (S_ISREG(sb.st_mode) && sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            int e = errno;
            dcl_st_close(st);
            return dcl_fail(DCL_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size, strerror(e));
        }
        st->map = m;
        st->map_len = (size_t)sb.st_size;
        st->base = m;
        st->size = (size_t)sb.st_size;
    } else {
        close(fd);
        size_t len;
        s = dcl_read_file(&st->owned, &len, path, 0);
        if (s != DCL_OK) { dcl_st_close(st); return s; }
        st->base = st->owned;
        st->size = len;
    }
    s = st_parse(st, path);
    if (s != DCL_OK) { dcl_st_close(st); return s; }
    *out = st;
    return DCL_OK;
}

int dcl_st_count(const dcl_st *st) { return st ? st->n : 0; }
const char *dcl_st_path(const dcl_st *st) { return st ? st->path : NULL; }

const dcl_st_entry *dcl_st_get(const dcl_st *st, int i) {
    return (st && i >= 0 && i < st->n) ? &st->e[i] : NULL;
}

const dcl_st_entry *dcl_st_find(const dcl_st *st, const char *name) {
    if (!st || !name) return NULL;
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const dcl_st_entry *e = &st->e[st->by_name[mid]];
        int c = strcmp(name, e->name);
        if (!c) return e;
        if (c < 0) hi = mid - 1; else lo = mid + 1;
    }
    return NULL;
}

const char *dcl_st_meta(const dcl_st *st, const char *key) {
    if (!st || !key) return NULL;
    const char *const *hit = st->nmeta ? bsearch(&key, st->mk, (size_t)st->nmeta, sizeof *st->mk, cmp_str_ptr) : NULL;
    return hit ? st->mv[hit - (const char *const *)st->mk] : NULL;
}

int dcl_st_meta_count(const dcl_st *st) { return st ? st->nmeta : 0; }

const char *dcl_st_meta_get(const dcl_st *st, int i, const char **value) {
    if (!st || i < 0 || i >= st->nmeta) { if (value) *value = NULL; return NULL; }
    if (value) *value = st->mv[i];
    return st->mk[i];
}

dcl_status dcl_st_entry_to_f32(float *dst, const dcl_st *st, const dcl_st_entry *e) {
    const uint8_t *p = e->data;
    int64_t n = e->numel;
    switch (e->dtype) {
    case DCL_F32: if (n) memcpy(dst, p, (size_t)n * 4); break;
    case DCL_F64: for (int64_t i = 0; i < n; i++) { double v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; } break;
    case DCL_F16: for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = dcl_f16_to_f32(v); } break;
    case DCL_BF16: for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = dcl_bf16_to_f32(v); } break;
    case DCL_I64: for (int64_t i = 0; i < n; i++) { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; } break;
    case DCL_I32: for (int64_t i = 0; i < n; i++) { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = (float)v; } break;
    case DCL_U8: for (int64_t i = 0; i < n; i++) dst[i] = (float)p[i]; break;
    case DCL_I8: for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i]; break;
    case DCL_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = p[i] ? 1.0f : 0.0f; break;
    default: {
        char nb[96];
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: tensor '%s': cannot convert dtype %s to float",
                        st ? st->path : "?", pname(nb, sizeof nb, e->name), dcl_dtype_name(e->dtype));
    }
    }
    return DCL_OK;
}

dcl_status dcl_st_read_f32(const dcl_st *st, const char *name, float *dst, int ndim, const int64_t *expect_shape) {
    if (!st || !name) return dcl_fail(DCL_ERR_ARG, "dcl_st_read_f32: NULL argument");
    char nb[96];
    const dcl_st_entry *e = dcl_st_find(st, name);
    if (!e) return dcl_fail(DCL_ERR_NOTFOUND, "%s: tensor '%s' not found", st->path, pname(nb, sizeof nb, name));
    if (expect_shape) {
        int same = e->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = e->shape[i] == expect_shape[i];
        if (!same) {
            char a[200], b[200];
            return dcl_fail(DCL_ERR_SHAPE, "%s: tensor '%s': expected shape %s, found %s", st->path,
                            pname(nb, sizeof nb, name), dcl_shape_str(a, sizeof a, ndim, expect_shape),
                            dcl_shape_str(b, sizeof b, e->ndim, e->shape));
        }
    }
    return dcl_st_entry_to_f32(dst, st, e);
}

/* ------------------------------------------------------------------ writer */

typedef struct wtensor {
    char *name;
    dcl_dtype dtype;
    int ndim;
    int64_t shape[DCL_MAX_DIMS];
    const void *data;
    void *owned;
    size_t nbytes;
    uint64_t offset;
} wtensor;

struct dcl_st_writer {
    wtensor *t;
    int n, cap;
    char **mk, **mv;
    int nmeta, mcap;
};

dcl_status dcl_st_writer_new(dcl_st_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
}

void dcl_st_writer_free(dcl_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].owned); }
    for (int i = 0; i < w->nmeta; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

static dcl_status writer_add(dcl_st_writer *w, wtensor **out, const char *name, dcl_dtype dtype, int ndim,
                             const int64_t *shape) {
    char nb[96];
    if (!w || !name) return dcl_fail(DCL_ERR_ARG, "safetensors writer: NULL argument");
    pname(nb, sizeof nb, name);
    if (!utf8_ok(name)) return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor name '%s' is not valid UTF-8", nb);
    if (!strcmp(name, "__metadata__"))
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: '__metadata__' is reserved");
    if ((unsigned)dtype > DCL_BOOL) return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': bad dtype %d", nb, (int)dtype);
    if (ndim < 0 || ndim > DCL_MAX_DIMS || (ndim && !shape))
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': bad ndim %d", nb, ndim);
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > MAX_EXACT_INT || __builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
            return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': bad shape", nb);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)dcl_dtype_size(dtype), &nbytes) || nbytes > (uint64_t)MAX_EXACT_INT)
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': too large", nb);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s' added twice", nb);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = (size_t)nbytes;
    w->n++;
    *out = t;
    return DCL_OK;
}

dcl_status dcl_st_writer_add(dcl_st_writer *w, const char *name, dcl_dtype dtype, int ndim, const int64_t *shape,
                             const void *data) {
    wtensor *t;
    DCL_TRY(writer_add(w, &t, name, dtype, ndim, shape));
    if (!data && t->nbytes) {
        char nb[96];
        w->n--;
        free(t->name);
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': NULL data", pname(nb, sizeof nb, name));
    }
    t->data = data;
    return DCL_OK;
}

dcl_status dcl_st_writer_add_copy(dcl_st_writer *w, const char *name, dcl_dtype dtype, int ndim,
                                  const int64_t *shape, const void *data) {
    wtensor *t;
    DCL_TRY(writer_add(w, &t, name, dtype, ndim, shape));
    char nb[96];
    if (!data && t->nbytes) {
        w->n--;
        free(t->name);
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: tensor '%s': NULL data", pname(nb, sizeof nb, name));
    }
    t->owned = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->owned) {
        w->n--;
        free(t->name);
        return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: tensor '%s': out of memory", pname(nb, sizeof nb, name));
    }
    if (t->nbytes) memcpy(t->owned, data, t->nbytes);
    t->data = t->owned;
    return DCL_OK;
}

dcl_status dcl_st_writer_add_f32(dcl_st_writer *w, const char *name, dcl_dtype dtype, int ndim,
                                 const int64_t *shape, const float *src) {
    wtensor *t;
    DCL_TRY(writer_add(w, &t, name, dtype, ndim, shape));
    char nb[96];
    int64_t n = (int64_t)(t->nbytes / dcl_dtype_size(dtype));
    uint8_t *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p || (!src && n)) {
        free(p);
        w->n--;
        free(t->name);
        return dcl_fail(p ? DCL_ERR_ARG : DCL_ERR_NOMEM, "safetensors writer: tensor '%s': %s",
                        pname(nb, sizeof nb, name), p ? "NULL data" : "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        float f = src[i];
        double r = nearbyint((double)f);
        switch (dtype) {
        case DCL_F32: memcpy(p + 4 * i, &f, 4); break;
        case DCL_F64: { double d = f; memcpy(p + 8 * i, &d, 8); } break;
        case DCL_F16: { uint16_t h = dcl_f32_to_f16(f); memcpy(p + 2 * i, &h, 2); } break;
        case DCL_BF16: { uint16_t h = dcl_f32_to_bf16(f); memcpy(p + 2 * i, &h, 2); } break;
        case DCL_I64: { int64_t v = isnan(r) ? 0 : r >= 9.2e18 ? INT64_MAX : r <= -9.2e18 ? INT64_MIN : (int64_t)r;
                        memcpy(p + 8 * i, &v, 8); } break;
        case DCL_I32: { int32_t v = isnan(r) ? 0 : r >= 2147483647.0 ? INT32_MAX : r <= -2147483648.0 ? INT32_MIN : (int32_t)r;
                        memcpy(p + 4 * i, &v, 4); } break;
        case DCL_U8: p[i] = isnan(r) ? 0 : r >= 255 ? 255 : r <= 0 ? 0 : (uint8_t)r; break;
        case DCL_I8: p[i] = (uint8_t)(int8_t)(isnan(r) ? 0 : r >= 127 ? 127 : r <= -128 ? -128 : (int)r); break;
        case DCL_BOOL: p[i] = f != 0.0f; break;
        }
    }
    t->owned = p;
    t->data = p;
    return DCL_OK;
}

dcl_status dcl_st_writer_meta(dcl_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return dcl_fail(DCL_ERR_ARG, "safetensors writer: NULL metadata argument");
    if (!utf8_ok(key) || !utf8_ok(value))
        return dcl_fail(DCL_ERR_ARG, "safetensors writer: metadata '%s' is not valid UTF-8", key);
    for (int i = 0; i < w->nmeta; i++)
        if (!strcmp(w->mk[i], key)) {
            char *v = strdup(value);
            if (!v) return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return DCL_OK;
        }
    if (w->nmeta == w->mcap) {
        int nc = w->mcap ? w->mcap * 2 : 8;
        char **k = realloc(w->mk, (size_t)nc * sizeof *k);
        if (!k) return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
        w->mk = k;
        char **v = realloc(w->mv, (size_t)nc * sizeof *v);
        if (!v) return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
        w->mv = v;
        w->mcap = nc;
    }
    w->mk[w->nmeta] = strdup(key);
    w->mv[w->nmeta] = strdup(value);
    if (!w->mk[w->nmeta] || !w->mv[w->nmeta]) {
        free(w->mk[w->nmeta]);
        free(w->mv[w->nmeta]);
        return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->nmeta++;
    return DCL_OK;
}

static int cmp_wt_name(const void *a, const void *b) {
    return strcmp((*(const wtensor *const *)a)->name, (*(const wtensor *const *)b)->name);
}
static int cmp_wt_layout(const void *a, const void *b) {
    const wtensor *x = *(const wtensor *const *)a, *y = *(const wtensor *const *)b;
    size_t sx = dcl_dtype_size(x->dtype), sy = dcl_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Lays the tensors out, builds the padded header; *order gets the data order. */
static dcl_status build_header(dcl_st_writer *w, dcl_buf *hdr, wtensor ***order) {
    wtensor **by_name = malloc(((size_t)w->n + 1) * sizeof *by_name);
    wtensor **lay = malloc(((size_t)w->n + 1) * sizeof *lay);
    int *mi = malloc(((size_t)w->nmeta + 1) * sizeof *mi);
    if (!by_name || !lay || !mi) {
        free(by_name); free(lay); free(mi);
        return dcl_fail(DCL_ERR_NOMEM, "safetensors writer: out of memory");
    }
    for (int i = 0; i < w->n; i++) by_name[i] = lay[i] = &w->t[i];
    qsort(by_name, (size_t)w->n, sizeof *by_name, cmp_wt_name);
    qsort(lay, (size_t)w->n, sizeof *lay, cmp_wt_layout);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) { lay[i]->offset = off; off += lay[i]->nbytes; }
    /* metadata keys sorted (insertion sort on indices; few keys) */
    for (int i = 0; i < w->nmeta; i++) {
        int j = i;
        while (j > 0 && strcmp(w->mk[mi[j - 1]], w->mk[i]) > 0) { mi[j] = mi[j - 1]; j--; }
        mi[j] = i;
    }
    dcl_status s = dcl_buf_append(hdr, "{", 1);
    int first = 1;
    if (w->nmeta) {
        s = s ? s : dcl_buf_puts(hdr, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta && !s; i++) {
            if (i) s = dcl_buf_append(hdr, ",", 1);
            s = s ? s : dcl_buf_json_str(hdr, w->mk[mi[i]]);
            s = s ? s : dcl_buf_append(hdr, ":", 1);
            s = s ? s : dcl_buf_json_str(hdr, w->mv[mi[i]]);
        }
        s = s ? s : dcl_buf_append(hdr, "}", 1);
        first = 0;
    }
    for (int i = 0; i < w->n && !s; i++) {
        const wtensor *t = by_name[i];
        if (!first) s = dcl_buf_append(hdr, ",", 1);
        first = 0;
        s = s ? s : dcl_buf_json_str(hdr, t->name);
        s = s ? s : dcl_buf_printf(hdr, ":{\"dtype\":\"%s\",\"shape\":[", dcl_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim && !s; d++) s = dcl_buf_printf(hdr, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        s = s ? s : dcl_buf_printf(hdr, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->offset,
                                   (unsigned long long)(t->offset + t->nbytes));
    }
    s = s ? s : dcl_buf_append(hdr, "}", 1);
    while (!s && hdr->len % 8) s = dcl_buf_append(hdr, " ", 1);
    free(by_name);
    free(mi);
    if (s) { free(lay); return s; }
    *order = lay;
    return DCL_OK;
}

dcl_status dcl_st_write_mem(dcl_st_writer *w, void **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!w) return dcl_fail(DCL_ERR_ARG, "safetensors writer: NULL");
    dcl_buf b = {0};
    wtensor **lay = NULL;
    dcl_status s = dcl_buf_append(&b, "\0\0\0\0\0\0\0\0", 8);
    s = s ? s : build_header(w, &b, &lay);
    if (!s) {
        uint64_t n = b.len - 8;
        for (int i = 0; i < 8; i++) b.data[i] = (char)((n >> (8 * i)) & 0xff);
    }
    for (int i = 0; i < w->n && !s; i++) s = dcl_buf_append(&b, lay[i]->data, lay[i]->nbytes);
    free(lay);
    if (s) { dcl_buf_free(&b); return s; }
    *out = b.data;
    *len = b.len;
    return DCL_OK;
}

dcl_status dcl_st_write_file(dcl_st_writer *w, const char *path) {
    if (!w || !path) return dcl_fail(DCL_ERR_ARG, "safetensors writer: NULL argument");
    dcl_buf hdr = {0};
    wtensor **lay = NULL;
    DCL_TRY(build_header(w, &hdr, &lay));
    uint8_t lenb[8];
    uint64_t n = hdr.len;
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((n >> (8 * i)) & 0xff);
    dcl_atomic_file af;
    dcl_status s = dcl_atomic_open(&af, path);
    if (s) { dcl_buf_free(&hdr); free(lay); return s; }
    s = dcl_atomic_write(&af, lenb, 8);
    s = s ? s : dcl_atomic_write(&af, hdr.data, hdr.len);
    for (int i = 0; i < w->n && !s; i++) s = dcl_atomic_write(&af, lay[i]->data, lay[i]->nbytes);
    dcl_buf_free(&hdr);
    free(lay);
    if (s) { dcl_atomic_abort(&af); return s; }
    return dcl_atomic_commit(&af);
}
