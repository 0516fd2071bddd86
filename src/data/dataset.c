/* Dataset index: common part (pool, entries, issues, id index, files,
 * metadata helpers, report, CSV export) and the dispatch to the adapters. */
#include "data/dataset_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* pool                                                                      */

struct ds_chunk {
    ds_chunk *next;
    size_t used, cap;
    _Alignas(8) unsigned char data[];
};

void *ds_alloc(dcl_dataset *ds, size_t bytes) {
    bytes = (bytes + 7) & ~(size_t)7;
    if (!bytes) bytes = 8;
    ds_chunk *c = ds->chunks;
    if (!c || c->used + bytes > c->cap) {
        size_t cap = bytes > 60000 ? bytes : 65536 - sizeof(ds_chunk);
        c = malloc(sizeof(ds_chunk) + cap);
        if (!c) return NULL;
        c->next = ds->chunks;
        c->used = 0;
        c->cap = cap;
        ds->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

const char *ds_strn(dcl_dataset *ds, const char *s, size_t n) {
    if (!s) return NULL;
    char *p = ds_alloc(ds, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

const char *ds_str(dcl_dataset *ds, const char *s) { return s ? ds_strn(ds, s, strlen(s)) : NULL; }

const char *ds_strf(dcl_dataset *ds, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ds_str(ds, buf);
}

/* ------------------------------------------------------------------------ */
/* entries and issues                                                        */

dcl_entry *ds_add(dcl_dataset *ds) {
    if (ds->n == ds->cap) {
        int cap = ds->cap ? ds->cap * 2 : 256;
        dcl_entry *ne = realloc(ds->e, (size_t)cap * sizeof *ne);
        if (!ne) return NULL;
        ds->e = ne;
        ds->cap = cap;
    }
    dcl_entry *e = &ds->e[ds->n++];
    memset(e, 0, sizeof *e);
    e->pair = -1;
    e->dataset = ds->name;
    return e;
}

dcl_entry *ds_add_item(dcl_dataset *ds, const char *id, const char *rel, dcl_media media, int label,
                       const char *method, dcl_split split) {
    dcl_entry *e = ds_add(ds);
    if (!e) return NULL;
    e->id = ds_str(ds, id);
    e->rel = ds_str(ds, rel);
    e->path = ds_path(ds, rel);
    e->media = media;
    e->label = label;
    e->method = ds_str(ds, method);
    e->split = split;
    e->group = e->id;
    return e;
}

void ds_issue(dcl_dataset *ds, dcl_issue_kind kind, const char *item, const char *fmt, ...) {
    if (ds->ni == ds->icap) {
        int cap = ds->icap ? ds->icap * 2 : 64;
        dcl_issue *ni = realloc(ds->iss, (size_t)cap * sizeof *ni);
        if (!ni) return; /* out of memory: the report loses an item */
        ds->iss = ni;
        ds->icap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dcl_issue *is = &ds->iss[ds->ni++];
    is->kind = kind;
    is->item = ds_str(ds, item ? item : "");
    is->reason = ds_str(ds, buf);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
    return h;
}

void ds_index(dcl_dataset *ds) {
    free(ds->hash);
    ds->hash = NULL;
    int cap = 16;
    while (cap < 2 * ds->n + 2) cap *= 2;
    ds->hash = malloc((size_t)cap * sizeof *ds->hash);
    if (!ds->hash) { ds->hcap = 0; return; }
    ds->hcap = cap;
    for (int i = 0; i < cap; i++) ds->hash[i] = -1;
    int w = 0;
    for (int i = 0; i < ds->n; i++) {
        dcl_entry *e = &ds->e[i];
        uint64_t h = hash_str(e->id) & (cap - 1);
        int dup = 0;
        while (ds->hash[h] >= 0) {
            if (!strcmp(ds->e[ds->hash[h]].id, e->id)) { dup = 1; break; }
            h = (h + 1) & (cap - 1);
        }
        if (dup) {
            ds_issue(ds, DCL_ISSUE_CONFLICT, e->path, "duplicate id '%s' (also %s); this one is left out", e->id,
                     ds->e[ds->hash[h]].path);
            continue;
        }
        if (w != i) ds->e[w] = *e;
        ds->hash[h] = w++;
    }
    ds->n = w;
}

int ds_lookup(const dcl_dataset *ds, const char *id) {
    if (!ds->hcap || !id) return -1;
    uint64_t h = hash_str(id) & (ds->hcap - 1);
    while (ds->hash[h] >= 0) {
        if (!strcmp(ds->e[ds->hash[h]].id, id)) return ds->hash[h];
        h = (h + 1) & (ds->hcap - 1);
    }
    return -1;
}

void ds_set_pair(dcl_dataset *ds, dcl_entry *e, int j) {
    if (j < 0) return;
    e->pair = j;
    e->pair_id = ds->e[j].id;
    e->pair_path = ds->e[j].path;
}

/* ------------------------------------------------------------------------ */
/* files                                                                     */

const char *ds_path(dcl_dataset *ds, const char *rel) {
    if (!rel) return NULL;
    if (rel[0] == '/') return ds_str(ds, rel);
    return ds_strf(ds, "%s/%s", ds->root, rel);
}

int ds_is_dir(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int ds_is_file(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* natural order: digit runs compare by value, so 2.png < 10.png */
static int natcmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1])) a++;
            while (*b == '0' && isdigit((unsigned char)b[1])) b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) la++;
            while (isdigit((unsigned char)b[lb])) lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la; b += lb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++; b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int cmp_names(const void *x, const void *y) {
    return natcmp(*(const char *const *)x, *(const char *const *)y);
}

int ds_list(const char *dir, char ***names) {
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[n] = strdup(de->d_name);
        if (!v[n]) break;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, n, sizeof *v, cmp_names);
    *names = v;
    return n;
}

void ds_free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int ds_has_ext(const char *name, const char *const *exts) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (; *exts; exts++)
        if (!strcasecmp(dot + 1, *exts)) return 1;
    return 0;
}

int ds_is_video_name(const char *name) {
    static const char *const v[] = {"mp4", "avi", "mkv", "webm", "mov", "m4v", "mpg", "mpeg", "flv", "wmv", "ts", NULL};
    return ds_has_ext(name, v);
}

int ds_is_image_name(const char *name) {
    static const char *const v[] = {"png", "jpg", "jpeg", NULL};
    return ds_has_ext(name, v);
}

const char *ds_stem(char *buf, size_t n, const char *name) {
    const char *s = strrchr(name, '/');
    s = s ? s + 1 : name;
    snprintf(buf, n, "%s", s);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

int ds_all_digits(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* metadata helpers                                                          */

cJSON *ds_read_json(dcl_dataset *ds, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ds_issue(ds, DCL_ISSUE_METADATA, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        fclose(f);
        ds_issue(ds, DCL_ISSUE_METADATA, path, "cannot read");
        return NULL;
    }
    fclose(f);
    buf[sz] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(buf, &end, 0);
    if (!j) {
        long off = end ? (long)(end - buf) : -1;
        int line = 1;
        for (long i = 0; i < off && i < sz; i++) line += buf[i] == '\n';
        ds_issue(ds, DCL_ISSUE_METADATA, path, "not valid JSON (near line %d, byte %ld)", line, off);
    }
    free(buf);
    return j;
}

int ds_csv_fields(char *line, char **f, int maxf) {
    int n = 0;
    char *p = line;
    while (n < maxf) {
        while (*p == ' ' || *p == '\t') p++;
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            while (*p) {
                if (*p == '"' && p[1] == '"') { *out++ = '"'; p += 2; }
                else if (*p == '"') { p++; break; }
                else *out++ = *p++;
            }
            while (*p && *p != ',') p++;
        } else {
            while (*p && *p != ',') *out++ = *p++;
            while (out > start && (out[-1] == ' ' || out[-1] == '\t')) out--;
        }
        int last = (*p != ',');
        if (*p) p++;
        *out = 0;
        f[n++] = start;
        if (last) break;
    }
    return n;
}

int ds_parse_label(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "0") || !strcasecmp(s, "real")) return 0;
    if (!strcmp(s, "1") || !strcasecmp(s, "fake")) return 1;
    return -1;
}

char *ds_next_line(char **cursor) {
    char *p = *cursor;
    if (!p || !*p) return NULL;
    char *nl = strchr(p, '\n');
    if (nl) { *nl = 0; *cursor = nl + 1; }
    else *cursor = p + strlen(p);
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = 0;
    return p;
}

int ds_fill_frames(dcl_dataset *ds, dcl_entry *e, const char *dir) {
    char **names = NULL;
    int n = ds_list(dir, &names);
    if (n < 0) return 0;
    int m = 0;
    for (int i = 0; i < n; i++) m += ds_is_image_name(names[i]);
    const char **fr = m ? ds_alloc(ds, (size_t)m * sizeof *fr) : NULL;
    int *num = m ? ds_alloc(ds, (size_t)m * sizeof *num) : NULL;
    int k = 0;
    if (m && fr && num) {
        for (int i = 0; i < n; i++) {
            if (!ds_is_image_name(names[i])) continue;
            fr[k] = ds_str(ds, names[i]);
            char stem[256];
            ds_stem(stem, sizeof stem, names[i]);
            /* trailing digits of the name: "12.png", "frame_0012.png" */
            size_t L = strlen(stem), d = L;
            while (d > 0 && isdigit((unsigned char)stem[d - 1])) d--;
            num[k] = (d < L && L - d < 10) ? atoi(stem + d) : -1;
            k++;
        }
    }
    ds_free_names(names, n);
    e->frames = fr;
    e->frame_numbers = num;
    e->nframes = k;
    return k;
}

/* ------------------------------------------------------------------------ */
/* public API                                                                */

const char *dcl_split_name(dcl_split s) {
    switch (s) {
    case DCL_SPLIT_TRAIN: return "train";
    case DCL_SPLIT_VAL: return "val";
    case DCL_SPLIT_TEST: return "test";
    default: return "none";
    }
}

int dcl_split_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "train") || !strcasecmp(s, "training")) return DCL_SPLIT_TRAIN;
    if (!strcasecmp(s, "val") || !strcasecmp(s, "valid") || !strcasecmp(s, "validation")) return DCL_SPLIT_VAL;
    if (!strcasecmp(s, "test") || !strcasecmp(s, "testing")) return DCL_SPLIT_TEST;
    if (!strcasecmp(s, "none") || !*s) return DCL_SPLIT_NONE;
    return -1;
}

const char *dcl_issue_kind_name(dcl_issue_kind k) {
    switch (k) {
    case DCL_ISSUE_MISSING: return "missing";
    case DCL_ISSUE_METADATA: return "metadata";
    case DCL_ISSUE_NO_PAIR: return "no-pair";
    case DCL_ISSUE_UNLISTED: return "unlisted";
    case DCL_ISSUE_CONFLICT: return "conflict";
    case DCL_ISSUE_NO_SPLIT: return "no-split";
    case DCL_ISSUE_IGNORED: return "ignored";
    case DCL_ISSUE_NOTE: return "note";
    }
    return "?";
}

static const struct { const char *alias, *name; } g_names[] = {
    {"ffpp", "ffpp"}, {"ff++", "ffpp"}, {"faceforensics", "ffpp"}, {"faceforensics++", "ffpp"},
    {"dfd", "dfd"}, {"deepfakedetection", "dfd"},
    {"celebdf", "celebdf"}, {"celeb-df", "celebdf"}, {"celebdf-v2", "celebdf"}, {"celeb-df-v2", "celebdf"},
    {"celebdf-v1", "celebdf"}, {"celeb-df-v1", "celebdf"},
    {"dfdc", "dfdc"}, {"dfdcp", "dfdcp"}, {"dfdc-preview", "dfdcp"}, {"dfdc_preview", "dfdcp"},
    {"wild", "wild"}, {"wilddeepfake", "wild"}, {"deepfake_in_the_wild", "wild"},
    {"generic", "generic"}, {"folder", "generic"}, {"csv", "generic"},
};

dcl_status dcl_dataset_open(dcl_dataset **out, const char *name, const char *root, const dcl_dataset_opts *opts) {
    if (!out || !name || !root) return dcl_fail(DCL_ERR_ARG, "dcl_dataset_open: NULL argument");
    *out = NULL;
    const char *canon = NULL;
    for (size_t i = 0; i < sizeof g_names / sizeof g_names[0]; i++)
        if (!strcasecmp(name, g_names[i].alias)) { canon = g_names[i].name; break; }
    if (!canon)
        return dcl_fail(DCL_ERR_ARG, "unknown dataset '%s' (known: ffpp, dfd, celebdf, dfdc, dfdcp, wild, generic)", name);
    dcl_dataset_opts none = {0};
    const dcl_dataset_opts *o = opts ? opts : &none;
    int csv_only = !strcmp(canon, "generic") && o->csv && *o->csv;
    if (!csv_only && !ds_is_dir(root))
        return dcl_fail(DCL_ERR_IO, "%s dataset root %s: %s", canon, root,
                        access(root, F_OK) == 0 ? "not a directory" : "no such directory");
    dcl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return dcl_fail(DCL_ERR_NOMEM, "dataset: out of memory");
    snprintf(ds->name, sizeof ds->name, "%s", canon);
    size_t L = strlen(root);
    while (L > 1 && root[L - 1] == '/') L--;
    ds->root = strndup(root, L);
    if (!ds->root) { free(ds); return dcl_fail(DCL_ERR_NOMEM, "dataset: out of memory"); }
    dcl_status s;
    if (!strcmp(canon, "ffpp")) s = ds_open_ffpp(ds, o, 0);
    else if (!strcmp(canon, "dfd")) s = ds_open_ffpp(ds, o, 1);
    else if (!strcmp(canon, "celebdf")) s = ds_open_celebdf(ds, o);
    else if (!strcmp(canon, "dfdc")) s = ds_open_dfdc(ds, o);
    else if (!strcmp(canon, "dfdcp")) s = ds_open_dfdcp(ds, o);
    else if (!strcmp(canon, "wild")) s = ds_open_wild(ds, o);
    else s = ds_open_generic(ds, o);
    if (s != DCL_OK) {
        dcl_dataset_close(ds);
        return s;
    }
    if (!ds->hcap) ds_index(ds);
    *out = ds;
    return DCL_OK;
}

void dcl_dataset_close(dcl_dataset *ds) {
    if (!ds) return;
    ds_chunk *c = ds->chunks;
    while (c) { ds_chunk *n = c->next; free(c); c = n; }
    free(ds->e);
    free(ds->iss);
    free(ds->hash);
    free(ds->root);
    free(ds);
}

const char *dcl_dataset_name(const dcl_dataset *ds) { return ds->name; }
const char *dcl_dataset_root(const dcl_dataset *ds) { return ds->root; }
int dcl_dataset_count(const dcl_dataset *ds) { return ds ? ds->n : 0; }
const dcl_entry *dcl_dataset_get(const dcl_dataset *ds, int i) {
    return (ds && i >= 0 && i < ds->n) ? &ds->e[i] : NULL;
}
int dcl_dataset_find(const dcl_dataset *ds, const char *id) { return ds_lookup(ds, id); }
int dcl_dataset_issue_count(const dcl_dataset *ds) { return ds ? ds->ni : 0; }
const dcl_issue *dcl_dataset_issue(const dcl_dataset *ds, int i) {
    return (ds && i >= 0 && i < ds->ni) ? &ds->iss[i] : NULL;
}
int dcl_dataset_issue_count_kind(const dcl_dataset *ds, dcl_issue_kind k) {
    int c = 0;
    for (int i = 0; i < ds->ni; i++) c += ds->iss[i].kind == k;
    return c;
}

void dcl_dataset_stats_get(const dcl_dataset *ds, dcl_dataset_stats *st) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < ds->n; i++) {
        const dcl_entry *e = &ds->e[i];
        int l = e->label ? 1 : 0;
        st->n++;
        if (l) st->fake++; else st->real++;
        st->by_split[e->split & 3][l]++;
    }
}

void dcl_dataset_report(const dcl_dataset *ds, FILE *f) {
    dcl_dataset_stats st;
    dcl_dataset_stats_get(ds, &st);
    fprintf(f, "dataset %s at %s: %d entries (%d real, %d fake)\n", ds->name, ds->root, st.n, st.real, st.fake);
    for (int s = 0; s < 4; s++)
        if (st.by_split[s][0] + st.by_split[s][1])
            fprintf(f, "  %-5s %6d real %6d fake\n", dcl_split_name((dcl_split)s), st.by_split[s][0], st.by_split[s][1]);
    /* per method (first-seen order) */
    const char *seen[64];
    int cnt[64], ns = 0;
    for (int i = 0; i < ds->n; i++) {
        const char *m = ds->e[i].method ? ds->e[i].method : "?";
        int k = 0;
        while (k < ns && strcmp(seen[k], m)) k++;
        if (k == ns) { if (ns == 64) continue; seen[ns] = m; cnt[ns++] = 0; }
        cnt[k]++;
    }
    for (int k = 0; k < ns; k++) fprintf(f, "  method %-16s %6d\n", seen[k], cnt[k]);
    fprintf(f, "%d issue%s\n", ds->ni, ds->ni == 1 ? "" : "s");
    for (int i = 0; i < ds->ni; i++)
        fprintf(f, "  [%s] %s: %s\n", dcl_issue_kind_name(ds->iss[i].kind), ds->iss[i].item, ds->iss[i].reason);
}

static void csv_put(FILE *f, const char *s, int last) {
    if (!s) s = "";
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

dcl_status dcl_dataset_write_csv(const dcl_dataset *ds, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return dcl_fail(DCL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    static const char *media[] = {"video", "frames", "image"};
    fprintf(f, "id,path,label,split,method,dataset,quality,group,target,source,pair,mask,media\n");
    for (int i = 0; i < ds->n; i++) {
        const dcl_entry *e = &ds->e[i];
        csv_put(f, e->id, 0);
        csv_put(f, e->path, 0);
        csv_put(f, e->label ? "1" : "0", 0);
        csv_put(f, dcl_split_name(e->split), 0);
        csv_put(f, e->method, 0);
        csv_put(f, e->dataset, 0);
        csv_put(f, e->quality, 0);
        csv_put(f, e->group, 0);
        csv_put(f, e->target_id, 0);
        csv_put(f, e->source_id, 0);
        csv_put(f, e->pair_id, 0);
        csv_put(f, e->mask_path, 0);
        csv_put(f, media[e->media % 3], 1);
    }
    if (fclose(f) != 0) return dcl_fail(DCL_ERR_IO, "%s: write failed", path);
    return DCL_OK;
}
