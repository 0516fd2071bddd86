/* Small file and JSON utilities: growable buffers, whole-file reads, atomic
 * file replacement, strict JSON parsing helpers. */
#include "dcl/io.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- buffers */

static dcl_status buf_reserve(dcl_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return dcl_fail(DCL_ERR_NOMEM, "buffer size overflow");
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return DCL_OK;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need) nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    char *p = realloc(b->data, nc);
    if (!p) return dcl_fail(DCL_ERR_NOMEM, "cannot grow buffer to %zu bytes", nc);
    b->data = p;
    b->cap = nc;
    return DCL_OK;
}

dcl_status dcl_buf_append(dcl_buf *b, const void *p, size_t n) {
    DCL_TRY(buf_reserve(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return DCL_OK;
}

dcl_status dcl_buf_puts(dcl_buf *b, const char *s) { return dcl_buf_append(b, s, strlen(s)); }

dcl_status dcl_buf_printf(dcl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return dcl_fail(DCL_ERR_INTERNAL, "bad format string");
    DCL_TRY(buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DCL_OK;
}

dcl_status dcl_buf_json_str(dcl_buf *b, const char *s) {
    DCL_TRY(dcl_buf_append(b, "\"", 1));
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c && c != '"' && c != '\\' && c >= 0x20) continue;
        DCL_TRY(dcl_buf_append(b, run, (size_t)(p - run)));
        if (!c) break;
        char esc[8];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        DCL_TRY(dcl_buf_puts(b, esc));
        run = p + 1;
    }
    return dcl_buf_append(b, "\"", 1);
}

void dcl_buf_free(dcl_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------- file reads */

dcl_status dcl_read_file(void **out, size_t *len, const char *path, size_t max_bytes) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dcl_fail(DCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return dcl_fail(DCL_ERR_IO, "%s: is a directory", path);
    }
    /* grow as we read: works for pipes and files whose size changes */
    size_t cap = (st.st_size > 0 && S_ISREG(st.st_mode)) ? (size_t)st.st_size + 1 : 4096, n = 0;
    if (max_bytes && cap > max_bytes + 1) cap = max_bytes + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap + 1);
    }
    for (;;) {
        if (n == cap) {
            if (max_bytes && n > max_bytes) break;
            size_t nc = cap * 2;
            if (max_bytes && nc > max_bytes + 1) nc = max_bytes + 1;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, nc + 1);
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        return dcl_fail(DCL_ERR_IO, "%s: read error: %s", path, strerror(err));
    }
    if (max_bytes && n > max_bytes) {
        free(buf);
        return dcl_fail(DCL_ERR_FORMAT, "%s: file larger than the %zu-byte limit", path, max_bytes);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return DCL_OK;
}

/* ----------------------------------------------------------- atomic write */

static mode_t current_umask(void) {
    /* umask() can only be read by setting it, which races with other threads;
     * Linux reports it in /proc/self/status. */
    mode_t m = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return m;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned v;
        if (sscanf(line, "Umask: %o", &v) == 1) { m = (mode_t)(v & 0777); break; }
    }
    fclose(f);
    return m;
}

static void af_release(dcl_atomic_file *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

dcl_status dcl_atomic_open(dcl_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return dcl_fail(DCL_ERR_ARG, "empty output path");
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp = malloc(n + 12);
    if (!af->path || !af->tmp) {
        af_release(af);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(af->tmp, path, n);
    memcpy(af->tmp + n, ".tmp.XXXXXX", 12);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int e = errno;
        af_release(af);
        return dcl_fail(DCL_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    struct stat st;
    mode_t mode = (stat(path, &st) == 0 && S_ISREG(st.st_mode)) ? (st.st_mode & 07777)
                                                               : (0666 & ~current_umask());
    (void)fchmod(fd, mode);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        af_release(af);
        return dcl_fail(DCL_ERR_IO, "%s: cannot open temporary file: %s", path, strerror(e));
    }
    af->f = f;
    return DCL_OK;
}

dcl_status dcl_atomic_write(dcl_atomic_file *af, const void *p, size_t n) {
    if (!af->f) return dcl_fail(DCL_ERR_ARG, "write to a closed file");
    if (af->failed) return dcl_fail(DCL_ERR_IO, "%s: write failed: %s", af->path, strerror(af->err));
    if (n && fwrite(p, 1, n, (FILE *)af->f) != n) {
        af->failed = 1;
        af->err = errno ? errno : EIO;
        return dcl_fail(DCL_ERR_IO, "%s: write failed: %s", af->path, strerror(af->err));
    }
    return DCL_OK;
}

void dcl_atomic_abort(dcl_atomic_file *af) {
    if (af->f) fclose((FILE *)af->f);
    if (af->tmp) unlink(af->tmp);
    af_release(af);
}

static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd); /* some file systems refuse; the rename itself is done */
        close(fd);
    }
    free(dir);
}

dcl_status dcl_atomic_commit(dcl_atomic_file *af) {
    if (!af->f) return dcl_fail(DCL_ERR_ARG, "commit of a closed file");
    FILE *f = (FILE *)af->f;
    int e = af->failed ? af->err : 0;
    if (!e && fflush(f) != 0) e = errno ? errno : EIO;
    if (!e && ferror(f)) e = EIO;
    if (!e && fsync(fileno(f)) != 0) e = errno;
    af->f = NULL;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (e) {
        dcl_status s = dcl_fail(DCL_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
        unlink(af->tmp);
        af_release(af);
        return s;
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        dcl_status s = dcl_fail(DCL_ERR_IO, "%s: cannot rename temporary file into place: %s",
                                af->path, strerror(e));
        unlink(af->tmp);
        af_release(af);
        return s;
    }
    fsync_parent_dir(af->path);
    af_release(af);
    return DCL_OK;
}

dcl_status dcl_write_file_atomic(const char *path, const void *data, size_t len) {
    dcl_atomic_file af;
    DCL_TRY(dcl_atomic_open(&af, path));
    dcl_status s = dcl_atomic_write(&af, data, len);
    if (s != DCL_OK) {
        dcl_atomic_abort(&af);
        return s;
    }
    return dcl_atomic_commit(&af);
}

/* ------------------------------------------------------------------- JSON */

dcl_status dcl_json_parse(struct cJSON **out, const char *text, size_t len, const char *what) {
    *out = NULL;
    if (memchr(text, 0, len))
        return dcl_fail(DCL_ERR_FORMAT, "%s: JSON text contains a NUL byte", what);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    const char *p = end ? end : text;
    if (j) {
        while (p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        if (p == text + len) {
            *out = j;
            return DCL_OK;
        }
        cJSON_Delete(j);
    }
    if (p < text || p > text + len) p = text;
    int line = 1, col = 1;
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') { line++; col = 1; } else col++;
    }
    return dcl_fail(DCL_ERR_FORMAT, "%s: %s at line %d, column %d", what,
                    j ? "unexpected text after the JSON value" : "invalid JSON", line, col);
}

dcl_status dcl_json_load(struct cJSON **out, const char *path) {
    void *buf;
    size_t len;
    *out = NULL;
    DCL_TRY(dcl_read_file(&buf, &len, path, 0));
    dcl_status s = dcl_json_parse(out, buf, len, path);
    free(buf);
    return s;
}

int dcl_json_int(const struct cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!v || !cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    const double lim = 9007199254740992.0; /* 2^53 */
    if (!(d >= -lim && d <= lim) || d != floor(d)) return 0;
    int64_t x = (int64_t)d;
    if (x < lo || x > hi) return 0;
    *out = x;
    return 1;
}
