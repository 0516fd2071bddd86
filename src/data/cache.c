/* Face cache index: JSON lines, append-only, resumable. */
#include "dcl/cache.h"
#include "dcl/io.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int jint(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

static void jfloats(const cJSON *o, const char *k, float *dst, int n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : NULL;
        dst[i] = cJSON_IsNumber(x) ? (float)x->valuedouble : 0.0f;
    }
}

static void entry_free(dcl_cache_entry *e) {
    free(e->crop); free(e->pair); free(e->mask); free(e->dataset); free(e->method);
    free(e->video); free(e->split); free(e->identity);
}

void dcl_cache_free(dcl_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) entry_free(&c->e[i]);
    free(c->e);
    free(c->root);
    free(c);
}

const char *dcl_cache_path(const dcl_cache *c, const char *rel, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", c->root, rel);
    return buf;
}

/* video name -> dense index (linear probing hash) */
typedef struct vmap { char **keys; int *vals; int cap, n; } vmap;
static unsigned long hash_str(const char *s) { unsigned long h = 1469598103934665603UL; while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211UL; return h; }
static int vmap_get(vmap *m, const char *key) {
    if (m->n * 2 >= m->cap) {
        int nc = m->cap ? m->cap * 2 : 1024;
        char **nk = calloc(nc, sizeof *nk);
        int *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) { free(nk); free(nv); return -1; }
        for (int i = 0; i < m->cap; i++) if (m->keys[i]) {
            unsigned long h = hash_str(m->keys[i]) % nc;
            while (nk[h]) h = (h + 1) % nc;
            nk[h] = m->keys[i]; nv[h] = m->vals[i];
        }
        free(m->keys); free(m->vals);
        m->keys = nk; m->vals = nv; m->cap = nc;
    }
    unsigned long h = hash_str(key) % m->cap;
    while (m->keys[h]) { if (!strcmp(m->keys[h], key)) return m->vals[h]; h = (h + 1) % m->cap; }
    m->keys[h] = (char *)key;
    m->vals[h] = m->n;
    return m->n++;
}

static int cmp_entry(const void *a, const void *b) {
    const dcl_cache_entry *x = a, *y = b;
    int c = strcmp(x->crop, y->crop);
    return c ? c : (x->face > y->face) - (x->face < y->face);
}

dcl_status dcl_cache_open(dcl_cache **out, const char *root) {
    char path[4096];
    snprintf(path, sizeof path, "%s/index.jsonl", root);
    void *buf = NULL;
    size_t len = 0;
    DCL_TRY(dcl_read_file(&buf, &len, path, 0));
    dcl_cache *c = calloc(1, sizeof *c);
    if (!c) { free(buf); return dcl_fail(DCL_ERR_NOMEM, "cache"); }
    c->root = strdup(root);
    vmap vm = {0};
    char *p = buf, *end = (char *)buf + len;
    int line = 0;
    dcl_status s = DCL_OK;
    while (p < end && !s) {
        char *nl = memchr(p, '\n', end - p);
        int torn = !nl;        /* last line without newline: interrupted write */
        if (!nl) nl = end;
        *nl = 0;
        line++;
        if (nl > p && !torn) {
            cJSON *o = cJSON_ParseWithLength(p, nl - p);
            if (!o || !cJSON_IsObject(o) || !*jstr(o, "crop")) {
                c->bad_lines++;
                if (c->bad_lines <= 5) dcl_log(1, "%s:%d: unreadable index line skipped", path, line);
            } else {
                if (c->n == c->cap) {
                    int nc = c->cap ? c->cap * 2 : 1024;
                    dcl_cache_entry *ne = realloc(c->e, nc * sizeof *ne);
                    if (!ne) { cJSON_Delete(o); s = dcl_fail(DCL_ERR_NOMEM, "cache index"); break; }
                    c->e = ne; c->cap = nc;
                }
                dcl_cache_entry *e = &c->e[c->n];
                memset(e, 0, sizeof *e);
                e->crop = dupstr(jstr(o, "crop"));
                e->pair = dupstr(jstr(o, "pair"));
                e->mask = dupstr(jstr(o, "mask"));
                e->dataset = dupstr(jstr(o, "dataset"));
                e->method = dupstr(jstr(o, "method"));
                e->video = dupstr(jstr(o, "video"));
                e->split = dupstr(jstr(o, "split"));
                e->identity = dupstr(jstr(o, "identity"));
                e->label = jint(o, "label", 0) ? 1 : 0;
                e->frame = jint(o, "frame", 0);
                e->face = jint(o, "face", 0);
                const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "score");
                e->score = cJSON_IsNumber(sc) ? (float)sc->valuedouble : 0.0f;
                jfloats(o, "box", e->box, 4);
                jfloats(o, "landmarks", e->landmarks, 10);
                c->n++;
            }
            cJSON_Delete(o);
        }
        p = nl + 1;
    }
    /* Extraction workers append to index.jsonl in the order they finish, so
     * the entries are put in crop-path order: everything downstream (splits,
     * batches, scores) is then the same whatever order the lines have. */
    if (!s && c->n > 1) qsort(c->e, c->n, sizeof *c->e, cmp_entry);
    for (int i = 0; i < c->n && !s; i++) {
        c->e[i].video_idx = vmap_get(&vm, c->e[i].video);
        if (c->e[i].video_idx < 0) s = dcl_fail(DCL_ERR_NOMEM, "cache index");
    }
    c->nvideos = vm.n;
    free(vm.keys);
    free(vm.vals);
    free(buf);
    if (c->bad_lines > 5) dcl_log(1, "%s: %d unreadable lines skipped in all", path, c->bad_lines);
    if (s) { dcl_cache_free(c); return s; }
    *out = c;
    return DCL_OK;
}

dcl_status dcl_cache_select(const dcl_cache *c, const char *split, int **idx, int *n) {
    int *v = malloc(sizeof(int) * (c->n + 1));
    if (!v) return dcl_fail(DCL_ERR_NOMEM, "cache selection");
    int k = 0;
    int all = !split || !*split || !strcmp(split, "all");
    for (int i = 0; i < c->n; i++)
        if (all || !strcmp(c->e[i].split, split)) v[k++] = i;
    *idx = v;
    *n = k;
    return DCL_OK;
}

/* ---------------- writer ---------------- */

struct dcl_cache_writer {
    char *root;
    FILE *index, *done;
    char **done_items;
    int ndone, capdone;
    vmap crops;            /* crop paths already in index.jsonl (no duplicates on resume) */
    char **crop_store;
    int ncrop, capcrop;
};

static int remember_crop(dcl_cache_writer *w, const char *crop) {
    if (w->ncrop == w->capcrop) {
        int nc = w->capcrop ? w->capcrop * 2 : 1024;
        char **ns = realloc(w->crop_store, nc * sizeof *ns);
        if (!ns) return -1;
        w->crop_store = ns;
        w->capcrop = nc;
    }
    char *c = strdup(crop);
    if (!c) return -1;
    int before = w->crops.n;
    int r = vmap_get(&w->crops, c);
    if (r < 0) { free(c); return -1; }
    if (w->crops.n == before) { free(c); return 1; } /* already present */
    w->crop_store[w->ncrop++] = c;
    return 0;
}


/* Drops a torn (unterminated) last line so appends start on a fresh line. */
static dcl_status repair_tail(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return DCL_OK;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t pos = size;
    char ch = '\n';
    while (pos > 0) {
        if (pread(fd, &ch, 1, pos - 1) != 1) break;
        if (ch == '\n') break;
        pos--;
    }
    if (pos != size && ftruncate(fd, pos) != 0) { close(fd); return dcl_fail(DCL_ERR_IO, "%s: cannot repair torn last line", path); }
    close(fd);
    return DCL_OK;
}

dcl_status dcl_cache_writer_open(dcl_cache_writer **out, const char *root) {
    if (dcl_mkdir_p(root) != 0) return dcl_fail(DCL_ERR_IO, "cannot create cache directory %s: %s", root, strerror(errno));
    dcl_cache_writer *w = calloc(1, sizeof *w);
    if (!w) return dcl_fail(DCL_ERR_NOMEM, "cache writer");
    w->root = strdup(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/done.jsonl", root);
    dcl_status s = repair_tail(path);
    if (!s) {
        void *buf = NULL;
        size_t len = 0;
        if (access(path, F_OK) == 0 && dcl_read_file(&buf, &len, path, 0) == DCL_OK) {
            char *p = buf, *end = p + len;
            while (p < end) {
                char *nl = memchr(p, '\n', end - p);
                if (!nl) break;
                *nl = 0;
                cJSON *o = cJSON_Parse(p);
                if (o && *jstr(o, "item")) {
                    if (w->ndone == w->capdone) {
                        w->capdone = w->capdone ? w->capdone * 2 : 256;
                        w->done_items = realloc(w->done_items, w->capdone * sizeof(char *));
                    }
                    if (w->done_items) w->done_items[w->ndone++] = strdup(jstr(o, "item"));
                }
                cJSON_Delete(o);
                p = nl + 1;
            }
            free(buf);
        }
        w->done = fopen(path, "a");
        if (!w->done) s = dcl_fail(DCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    if (!s) {
        snprintf(path, sizeof path, "%s/index.jsonl", root);
        s = repair_tail(path);
        void *buf = NULL;
        size_t len = 0;
        if (!s && access(path, F_OK) == 0 && dcl_read_file(&buf, &len, path, 0) == DCL_OK) {
            char *p = buf, *end = p + len;
            while (p < end) {
                char *nl = memchr(p, '\n', end - p);
                if (!nl) break;
                *nl = 0;
                cJSON *o = cJSON_Parse(p);
                if (o && *jstr(o, "crop") && remember_crop(w, jstr(o, "crop")) < 0) s = dcl_fail(DCL_ERR_NOMEM, "cache index");
                cJSON_Delete(o);
                p = nl + 1;
            }
            free(buf);
        }
        if (!s) {
            w->index = fopen(path, "a");
            if (!w->index) s = dcl_fail(DCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        }
    }
    if (s) { dcl_cache_writer_close(w); return s; }
    *out = w;
    return DCL_OK;
}

static dcl_status write_line(FILE *f, cJSON *o, const char *what) {
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt) return dcl_fail(DCL_ERR_NOMEM, "%s", what);
    int ok = fputs(txt, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    free(txt);
    return ok ? DCL_OK : dcl_fail(DCL_ERR_IO, "cannot append to %s: %s", what, strerror(errno));
}

dcl_status dcl_cache_writer_add(dcl_cache_writer *w, const dcl_cache_entry *e) {
    int r = remember_crop(w, e->crop ? e->crop : "");
    if (r < 0) return dcl_fail(DCL_ERR_NOMEM, "cache index");
    if (r == 1) return DCL_OK; /* written before an interruption: keep one entry */
    cJSON *o = cJSON_CreateObject();
    if (!o) return dcl_fail(DCL_ERR_NOMEM, "cache entry");
    cJSON_AddStringToObject(o, "crop", e->crop ? e->crop : "");
    cJSON_AddNumberToObject(o, "label", e->label);
    cJSON_AddStringToObject(o, "dataset", e->dataset ? e->dataset : "");
    cJSON_AddStringToObject(o, "method", e->method ? e->method : "");
    cJSON_AddStringToObject(o, "video", e->video ? e->video : "");
    cJSON_AddNumberToObject(o, "frame", e->frame);
    cJSON_AddNumberToObject(o, "face", e->face);
    cJSON_AddStringToObject(o, "split", e->split ? e->split : "");
    if (e->identity && *e->identity) cJSON_AddStringToObject(o, "identity", e->identity);
    if (e->pair && *e->pair) cJSON_AddStringToObject(o, "pair", e->pair);
    if (e->mask && *e->mask) cJSON_AddStringToObject(o, "mask", e->mask);
    cJSON *box = cJSON_CreateFloatArray(e->box, 4);
    cJSON *lm = cJSON_CreateFloatArray(e->landmarks, 10);
    if (box) cJSON_AddItemToObject(o, "box", box);
    if (lm) cJSON_AddItemToObject(o, "landmarks", lm);
    cJSON_AddNumberToObject(o, "score", e->score);
    dcl_status s = write_line(w->index, o, "index.jsonl");
    cJSON_Delete(o);
    return s;
}

dcl_status dcl_cache_writer_done(dcl_cache_writer *w, const char *item, const char *status,
                                 const char *reason, int faces) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return dcl_fail(DCL_ERR_NOMEM, "cache done record");
    cJSON_AddStringToObject(o, "item", item);
    cJSON_AddStringToObject(o, "status", status);
    if (reason && *reason) cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddNumberToObject(o, "faces", faces);
    dcl_status s = write_line(w->done, o, "done.jsonl");
    cJSON_Delete(o);
    if (!s) {
        if (w->ndone == w->capdone) {
            w->capdone = w->capdone ? w->capdone * 2 : 256;
            char **nd = realloc(w->done_items, w->capdone * sizeof(char *));
            if (!nd) return dcl_fail(DCL_ERR_NOMEM, "cache done list");
            w->done_items = nd;
        }
        w->done_items[w->ndone++] = strdup(item);
    }
    return s;
}

int dcl_cache_writer_is_done(const dcl_cache_writer *w, const char *item) {
    for (int i = 0; i < w->ndone; i++)
        if (w->done_items[i] && !strcmp(w->done_items[i], item)) return 1;
    return 0;
}

void dcl_cache_writer_close(dcl_cache_writer *w) {
    if (!w) return;
    if (w->index) fclose(w->index);
    if (w->done) fclose(w->done);
    for (int i = 0; i < w->ndone; i++) free(w->done_items[i]);
    free(w->done_items);
    for (int i = 0; i < w->ncrop; i++) free(w->crop_store[i]);
    free(w->crop_store);
    free(w->crops.keys);
    free(w->crops.vals);
    free(w->root);
    free(w);
}
