/* Reader for NumPy's .npy format (used for scikit-image's lfw_subset.npy).
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 LE for 1.x, u32 LE
 * for 2.x/3.x), an ASCII (3.x: UTF-8) Python dict literal
 * {'descr': '<f8', 'fortran_order': False, 'shape': (200, 25, 25), }
 * padded with spaces and a newline, then the raw data. */
#include "dcl/synth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void dcl_npy_free(dcl_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* finds 'key' followed by ':' in the dict text; returns the position after ':' */
static const char *dict_value(const char *h, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = h; (p = strchr(p, '\'')) != NULL; p++) {
        if (!strncmp(p + 1, key, kl) && p[1 + kl] == '\'') {
            const char *q = p + 2 + kl;
            while (*q == ' ') q++;
            if (*q == ':') {
                q++;
                while (*q == ' ') q++;
                return q;
            }
        }
    }
    return NULL;
}

dcl_status dcl_npy_parse(dcl_npy *out, const void *buf, size_t len, const char *name) {
    if (!out || (!buf && len)) return dcl_fail(DCL_ERR_ARG, "dcl_npy_parse: NULL argument");
    memset(out, 0, sizeof *out);
    if (!name) name = "<npy>";
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return dcl_fail(DCL_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | ((size_t)b[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return dcl_fail(DCL_ERR_FORMAT, "%s: truncated .npy header", name);
        hl = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        off = 12;
    } else {
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0 to 3.0)", name, major, b[7]);
    }
    if (hl > len - off || hl > 1u << 20) return dcl_fail(DCL_ERR_FORMAT, "%s: .npy header of %zu bytes runs past the file (%zu bytes)", name, hl, len);
    char *h = malloc(hl + 1);
    if (!h) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    memcpy(h, b + off, hl);
    h[hl] = 0;
    off += hl;
    dcl_status st = DCL_OK;
    /* descr */
    const char *d = dict_value(h, "descr");
    char descr[8] = {0};
    if (!d || *d != '\'') { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy header has no 'descr' string", name); goto done; }
    {
        const char *e = strchr(d + 1, '\'');
        if (!e || e - d - 1 >= (long)sizeof descr || e - d - 1 < 2) {
            st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy 'descr' is malformed", name);
            goto done;
        }
        memcpy(descr, d + 1, (size_t)(e - d - 1));
    }
    int isz = 0, kind = 0; /* kind: 'u' 'i' 'f' 'b' */
    if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") || !strcmp(descr, "u1")) { isz = 1; kind = 'u'; }
    else if (!strcmp(descr, "|i1") || !strcmp(descr, "<i1") || !strcmp(descr, "i1")) { isz = 1; kind = 'i'; }
    else if (!strcmp(descr, "|b1") || !strcmp(descr, "b1")) { isz = 1; kind = 'b'; }
    else if (!strcmp(descr, "<u2")) { isz = 2; kind = 'u'; }
    else if (!strcmp(descr, "<i2")) { isz = 2; kind = 'i'; }
    else if (!strcmp(descr, "<i4")) { isz = 4; kind = 'i'; }
    else if (!strcmp(descr, "<f4")) { isz = 4; kind = 'f'; }
    else if (!strcmp(descr, "<f8")) { isz = 8; kind = 'f'; }
    else { st = dcl_fail(DCL_ERR_UNSUPPORTED, "%s: .npy dtype '%s' is not supported (u1 i1 b1 <u2 <i2 <i4 <f4 <f8)", name, descr); goto done; }
    /* fortran_order */
    const char *fo = dict_value(h, "fortran_order");
    int fortran;
    if (fo && !strncmp(fo, "False", 5)) fortran = 0;
    else if (fo && !strncmp(fo, "True", 4)) fortran = 1;
    else { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy header has no 'fortran_order' True/False", name); goto done; }
    /* shape */
    const char *sp = dict_value(h, "shape");
    if (!sp || *sp != '(') { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy header has no 'shape' tuple", name); goto done; }
    sp++;
    int nd = 0;
    int64_t numel = 1;
    for (;;) {
        while (*sp == ' ') sp++;
        if (*sp == ')') break;
        if (!isdigit((unsigned char)*sp)) { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy 'shape' is malformed", name); goto done; }
        char *end;
        long long v = strtoll(sp, &end, 10);
        if (nd == DCL_MAX_DIMS) { st = dcl_fail(DCL_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions", name, DCL_MAX_DIMS); goto done; }
        if (v < 0 || (v > 0 && numel > ((int64_t)1 << 40) / v)) { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy shape is too large", name); goto done; }
        out->shape[nd++] = v;
        numel *= v;
        sp = end;
        while (*sp == ' ' || *sp == 'L') sp++;
        if (*sp == ',') sp++;
        else if (*sp != ')') { st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy 'shape' is malformed", name); goto done; }
    }
    out->ndim = nd;
    out->numel = numel;
    snprintf(out->dtype, sizeof out->dtype, "%s", descr);
    if ((uint64_t)numel * (uint64_t)isz > len - off) {
        st = dcl_fail(DCL_ERR_FORMAT, "%s: .npy data is truncated: %lld values of %d bytes need %llu bytes, %zu present", name,
                      (long long)numel, isz, (unsigned long long)numel * (unsigned long long)isz, len - off);
        goto done;
    }
    out->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!out->data) { st = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory for %lld values", name, (long long)numel); goto done; }
    const unsigned char *src = b + off;
    for (int64_t i = 0; i < numel; i++) {
        /* element i in C order; its storage index in Fortran order reverses the strides */
        int64_t k = i;
        if (fortran && nd > 1) {
            int64_t rem = i, idx = 0, stride = 1;
            int64_t coord[DCL_MAX_DIMS] = {0};
            for (int a = nd - 1; a >= 0; a--) { coord[a] = rem % out->shape[a]; rem /= out->shape[a]; }
            for (int a = 0; a < nd; a++) { idx += coord[a] * stride; stride *= out->shape[a]; }
            k = idx;
        }
        const unsigned char *p = src + (size_t)k * isz;
        float v;
        switch (kind * 16 + isz) {
        case 'u' * 16 + 1: v = p[0]; break;
        case 'i' * 16 + 1: v = (signed char)p[0]; break;
        case 'b' * 16 + 1: v = p[0] ? 1.0f : 0.0f; break;
        case 'u' * 16 + 2: v = (uint16_t)(p[0] | (p[1] << 8)); break;
        case 'i' * 16 + 2: v = (int16_t)(uint16_t)(p[0] | (p[1] << 8)); break;
        case 'i' * 16 + 4: {
            uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
            v = (float)(int32_t)u;
            break;
        }
        case 'f' * 16 + 4: {
            uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
            memcpy(&v, &u, 4);
            break;
        }
        default: { /* f8 */
            uint64_t u = 0;
            for (int j = 7; j >= 0; j--) u = (u << 8) | p[j];
            double dv;
            memcpy(&dv, &u, 8);
            v = (float)dv;
            break;
        }
        }
        out->data[i] = v;
    }
done:
    free(h);
    if (st != DCL_OK) dcl_npy_free(out);
    return st;
}

dcl_status dcl_npy_load(dcl_npy *out, const char *path) {
    if (!out || !path) return dcl_fail(DCL_ERR_ARG, "dcl_npy_load: NULL argument");
    memset(out, 0, sizeof *out);
    void *buf = NULL;
    size_t len = 0;
    DCL_TRY(dcl_read_file(&buf, &len, path, (size_t)1 << 31));
    dcl_status s = dcl_npy_parse(out, buf, len, path);
    free(buf);
    return s;
}
