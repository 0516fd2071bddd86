/* Small RFC 4180 CSV reader: the whole input is loaded and parsed in place. */
#include "dcl/eval.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static dcl_status csv_init(dcl_csv *c, char *buf, size_t len, const char *name) {
    memset(c, 0, sizeof *c);
    c->buf = buf;
    c->len = len;
    c->cur_line = 1;
    snprintf(c->name, sizeof c->name, "%s", name);
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        c->pos = 3;
    return DCL_OK;
}

dcl_status dcl_csv_open_mem(dcl_csv *c, const char *text, size_t len, const char *name) {
    memset(c, 0, sizeof *c);
    char *buf = malloc(len + 1);
    if (!buf) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %zu bytes", name, len + 1);
    if (len) memcpy(buf, text, len);
    buf[len] = 0;
    return csv_init(c, buf, len, name);
}

dcl_status dcl_csv_open(dcl_csv *c, const char *path) {
    memset(c, 0, sizeof *c);
    int is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return dcl_fail(DCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        if (!is_stdin) fclose(f);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                if (!is_stdin) fclose(f);
                return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory after %zu bytes", path, len);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    if (!is_stdin) fclose(f);
    if (err) {
        free(buf);
        return dcl_fail(DCL_ERR_IO, "%s: read error", is_stdin ? "<stdin>" : path);
    }
    buf[len] = 0;
    return csv_init(c, buf, len, is_stdin ? "<stdin>" : path);
}

void dcl_csv_close(dcl_csv *c) {
    free(c->buf);
    free(c->field);
    memset(c, 0, sizeof *c);
}

static dcl_status push_field(dcl_csv *c, char *f) {
    if (c->nfield == c->cap) {
        int nc = c->cap ? c->cap * 2 : 16;
        char **nf = realloc(c->field, (size_t)nc * sizeof *nf);
        if (!nf) return dcl_fail(DCL_ERR_NOMEM, "%s: line %lld: out of memory", c->name, (long long)c->line);
        c->field = nf;
        c->cap = nc;
    }
    c->field[c->nfield++] = f;
    return DCL_OK;
}

/* Consumes a line end at c->pos if present; returns 1 if one was consumed. */
static int eat_eol(dcl_csv *c) {
    char ch = c->buf[c->pos];
    if (ch == '\n') { c->pos++; c->cur_line++; return 1; }
    if (ch == '\r') {
        c->pos++;
        if (c->pos < c->len && c->buf[c->pos] == '\n') c->pos++;
        c->cur_line++;
        return 1;
    }
    return 0;
}

dcl_status dcl_csv_next(dcl_csv *c) {
    c->nfield = 0;
    /* skip blank lines */
    while (c->pos < c->len && (c->buf[c->pos] == '\n' || c->buf[c->pos] == '\r')) eat_eol(c);
    if (c->pos >= c->len) return DCL_OK;
    c->line = c->cur_line;
    char *b = c->buf;
    for (;;) { /* one field per pass */
        size_t start = c->pos;
        char *w = b + start; /* write pointer, in place */
        if (c->pos < c->len && b[c->pos] == '"') {
            int64_t open_line = c->cur_line;
            c->pos++;
            for (;;) {
                if (c->pos >= c->len)
                    return dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: unterminated quoted field (its closing quote is missing)",
                                    c->name, (long long)open_line);
                char ch = b[c->pos];
                if (ch == 0)
                    return dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: NUL byte in input", c->name, (long long)c->cur_line);
                if (ch == '"') {
                    if (c->pos + 1 < c->len && b[c->pos + 1] == '"') { *w++ = '"'; c->pos += 2; continue; }
                    c->pos++;
                    break;
                }
                if (ch == '\n') c->cur_line++;
                else if (ch == '\r' && !(c->pos + 1 < c->len && b[c->pos + 1] == '\n')) c->cur_line++;
                *w++ = ch;
                c->pos++;
            }
            if (c->pos < c->len && b[c->pos] != ',' && b[c->pos] != '\n' && b[c->pos] != '\r')
                return dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: unexpected character '%c' after a closing quote",
                                c->name, (long long)c->cur_line, b[c->pos]);
        } else {
            while (c->pos < c->len) {
                char ch = b[c->pos];
                if (ch == ',' || ch == '\n' || ch == '\r') break;
                if (ch == '"')
                    return dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: stray quote inside an unquoted field",
                                    c->name, (long long)c->cur_line);
                if (ch == 0)
                    return dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: NUL byte in input", c->name, (long long)c->cur_line);
                c->pos++;
            }
            w = b + c->pos;
        }
        /* terminate the field: the separator is read before being overwritten */
        char sep = c->pos < c->len ? b[c->pos] : 0;
        if (sep == ',') {
            c->pos++;
            *w = 0;
            DCL_TRY(push_field(c, b + start));
            continue;
        }
        if (sep == '\n' || sep == '\r') eat_eol(c);
        *w = 0;
        DCL_TRY(push_field(c, b + start));
        return DCL_OK;
    }
}
