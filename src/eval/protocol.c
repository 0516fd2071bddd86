/* Score tables, `dcl eval` metrics, and the evaluation protocols
 * (include/dcl/protocol.h, docs/PROTOCOLS.md). */
#define _GNU_SOURCE
#include "dcl/protocol.h"
#include "dcl/trainer.h"
#include "dcl/loader.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* small helpers                                                        */
/* ------------------------------------------------------------------ */

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }


static int file_exists(const char *p) { return p && access(p, F_OK) == 0; }

static double file_mtime(const char *p) {
    struct stat st;
    if (stat(p, &st) != 0) return -1;
    return (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9;
}

/* FF++ short method names (as the dataset adapter accepts them) */
static const char *canon_method(const char *m) {
    static const char *const al[][2] = {{"DF", "Deepfakes"}, {"F2F", "Face2Face"}, {"FS", "FaceSwap"},
                                        {"NT", "NeuralTextures"}, {"FSh", "FaceShifter"}};
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++)
        if (!strcmp(m, al[i][0])) return al[i][1];
    return m;
}

/* ------------------------------------------------------------------ */
/* score tables                                                         */
/* ------------------------------------------------------------------ */

void dcl_scores_free(dcl_scores *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) {
        free(s->r[i].crop);
        free(s->r[i].dataset);
        free(s->r[i].method);
        free(s->r[i].video);
    }
    free(s->r);
    memset(s, 0, sizeof *s);
}

dcl_status dcl_scores_add(dcl_scores *s, const char *crop, int label, double score, const char *dataset,
                          const char *method, const char *video, int frame, int face) {
    if (s->n == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 256;
        dcl_score_row *nr = realloc(s->r, (size_t)nc * sizeof *nr);
        if (!nr) return dcl_fail(DCL_ERR_NOMEM, "score table: %lld rows", (long long)nc);
        s->r = nr;
        s->cap = nc;
    }
    dcl_score_row *r = &s->r[s->n];
    r->crop = xstrdup(crop);
    r->dataset = xstrdup(dataset);
    r->method = xstrdup(method);
    r->video = xstrdup(video);
    if (!r->crop || !r->dataset || !r->method || !r->video) {
        free(r->crop); free(r->dataset); free(r->method); free(r->video);
        return dcl_fail(DCL_ERR_NOMEM, "score table");
    }
    r->label = label;
    r->score = score;
    r->frame = frame;
    r->face = face;
    s->n++;
    return DCL_OK;
}

double dcl_score_round(float p) {
    if (isnan(p)) return NAN;
    char buf[40];
    snprintf(buf, sizeof buf, "%.9g", (double)p);
    return strtod(buf, NULL);
}

/* shortest of %.9g / %.17g that reads back exactly */
static void fmt_score(char *buf, size_t n, double v) {
    snprintf(buf, n, "%.9g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
}

static dcl_status csv_field(dcl_buf *b, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) return dcl_buf_puts(b, s);
    DCL_TRY(dcl_buf_puts(b, "\""));
    for (const char *p = s; *p; p++) DCL_TRY(*p == '"' ? dcl_buf_puts(b, "\"\"") : dcl_buf_append(b, p, 1));
    return dcl_buf_puts(b, "\"");
}

dcl_status dcl_scores_write_csv(const dcl_scores *s, const char *path, int keep_nan) {
    dcl_buf b = {0};
    dcl_status st = dcl_buf_puts(&b, "crop,label,score,dataset,method,video,frame,face\n");
    char num[48];
    for (int64_t i = 0; i < s->n && !st; i++) {
        const dcl_score_row *r = &s->r[i];
        if (isnan(r->score) && !keep_nan) continue;
        if (isnan(r->score)) snprintf(num, sizeof num, "nan");
        else fmt_score(num, sizeof num, r->score);
        st = csv_field(&b, r->crop);
        if (!st) st = dcl_buf_printf(&b, ",%d,%s,", r->label, num);
        if (!st) st = csv_field(&b, r->dataset);
        if (!st) st = dcl_buf_puts(&b, ",");
        if (!st) st = csv_field(&b, r->method);
        if (!st) st = dcl_buf_puts(&b, ",");
        if (!st) st = csv_field(&b, r->video);
        if (!st) st = dcl_buf_printf(&b, ",%d,%d\n", r->frame, r->face);
    }
    if (!st) st = dcl_write_file_atomic(path, b.data, b.len);
    dcl_buf_free(&b);
    return st;
}

static int parse_int_field(const char *s, int *out) {
    if (!*s) { *out = 0; return 0; }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

dcl_status dcl_scores_read_csv(dcl_scores *s, const char *path) {
    dcl_csv c;
    DCL_TRY(dcl_csv_open(&c, path));
    dcl_status st = dcl_csv_next(&c);
    if (!st && c.nfield == 0) st = dcl_fail(DCL_ERR_FORMAT, "%s: empty file (expected a header with label and score)", path);
    enum { C_CROP, C_LABEL, C_SCORE, C_DATASET, C_METHOD, C_VIDEO, C_FRAME, C_FACE, C_N };
    static const char *names[C_N] = {"crop", "label", "score", "dataset", "method", "video", "frame", "face"};
    int col[C_N];
    for (int k = 0; k < C_N; k++) col[k] = -1;
    for (int i = 0; !st && i < c.nfield; i++)
        for (int k = 0; k < C_N; k++)
            if (!strcmp(c.field[i], names[k]) && col[k] < 0) col[k] = i;
    if (!st && (col[C_LABEL] < 0 || col[C_SCORE] < 0))
        st = dcl_fail(DCL_ERR_FORMAT, "%s: the header must name the columns label and score", path);
    while (!st) {
        st = dcl_csv_next(&c);
        if (st || c.nfield == 0) break;
        const char *f[C_N] = {"", "", "", "", "", "", "", ""};
        for (int k = 0; k < C_N; k++) {
            if (col[k] >= 0) {
                if (col[k] >= c.nfield) {
                    st = dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: %d fields, the header has column %s at %d", path,
                                  (long long)c.line, c.nfield, names[k], col[k] + 1);
                    break;
                }
                f[k] = c.field[col[k]];
            }
        }
        if (st) break;
        int label, frame, face;
        if (strcmp(f[C_LABEL], "0") && strcmp(f[C_LABEL], "1")) {
            st = dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: label '%.40s' must be 0 or 1", path, (long long)c.line, f[C_LABEL]);
            break;
        }
        label = f[C_LABEL][0] == '1';
        double score;
        if (!*f[C_SCORE] || !strcasecmp(f[C_SCORE], "nan")) {
            score = NAN;
        } else {
            char *end;
            score = strtod(f[C_SCORE], &end);
            if (*end || !isfinite(score)) {
                st = dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: score '%.40s' is not a number", path, (long long)c.line, f[C_SCORE]);
                break;
            }
        }
        if (parse_int_field(f[C_FRAME], &frame) || parse_int_field(f[C_FACE], &face)) {
            st = dcl_fail(DCL_ERR_FORMAT, "%s: line %lld: frame '%.20s' / face '%.20s' must be integers", path,
                          (long long)c.line, f[C_FRAME], f[C_FACE]);
            break;
        }
        st = dcl_scores_add(s, f[C_CROP], label, score, f[C_DATASET], f[C_METHOD], f[C_VIDEO], frame, face);
    }
    dcl_csv_close(&c);
    return st;
}

dcl_status dcl_scores_from_cache(dcl_scores *out, int *unreadable, dcl_detector *d, const dcl_cache *c,
                                 const int *idx, int n, int batch, int size, int workers, const float mean[3],
                                 const float std[3], int progress) {
    if (unreadable) *unreadable = 0;
    if (n <= 0) return DCL_OK;
    float *prob = malloc((size_t)n * sizeof(float));
    if (!prob) return dcl_fail(DCL_ERR_NOMEM, "scores for %d images", n);
    dcl_status s = dcl_score_cache(d, c, idx, n, batch, size, workers, mean, std, prob, progress);
    int bad = 0;
    for (int i = 0; i < n && !s; i++) {
        const dcl_cache_entry *e = &c->e[idx[i]];
        double v = dcl_score_round(prob[i]);
        bad += isnan(v);
        s = dcl_scores_add(out, e->crop, e->label, v, e->dataset, e->method, e->video, e->frame, e->face);
    }
    free(prob);
    if (unreadable) *unreadable = bad;
    return s;
}

int dcl_score_filter_match(const dcl_score_filter *f, const char *dataset, const char *method, int label) {
    if (!f) return 1;
    if (f->dataset && *f->dataset && strcmp(f->dataset, dataset ? dataset : "")) return 0;
    if (label == 0 || f->nmethods <= 0) return 1;
    const char *m = canon_method(method ? method : "");
    for (int i = 0; i < f->nmethods; i++)
        if (!strcmp(canon_method(f->methods[i]), m)) return 1;
    return 0;
}

/* string -> dense id (open addressing) */
typedef struct smap { char **key; int64_t *id; int64_t cap, n; } smap;
static void smap_free(smap *m) {
    for (int64_t i = 0; i < m->cap; i++) free(m->key[i]);
    free(m->key);
    free(m->id);
    memset(m, 0, sizeof *m);
}
static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}
static int64_t smap_get(smap *m, const char *k) {
    if ((m->n + 1) * 2 > m->cap) {
        int64_t nc = m->cap ? m->cap * 2 : 1024;
        char **nk = calloc((size_t)nc, sizeof *nk);
        int64_t *ni = calloc((size_t)nc, sizeof *ni);
        if (!nk || !ni) { free(nk); free(ni); return -1; }
        for (int64_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                uint64_t h = fnv(m->key[i]) & (uint64_t)(nc - 1);
                while (nk[h]) h = (h + 1) & (uint64_t)(nc - 1);
                nk[h] = m->key[i];
                ni[h] = m->id[i];
            }
        free(m->key);
        free(m->id);
        m->key = nk;
        m->id = ni;
        m->cap = nc;
    }
    uint64_t h = fnv(k) & (uint64_t)(m->cap - 1);
    while (m->key[h]) {
        if (!strcmp(m->key[h], k)) return m->id[h];
        h = (h + 1) & (uint64_t)(m->cap - 1);
    }
    if (!(m->key[h] = strdup(k))) return -1;
    m->id[h] = m->n;
    return m->n++;
}

dcl_status dcl_scores_metrics(dcl_metrics *out, int64_t *used, const dcl_scores *s, const dcl_score_filter *f,
                              dcl_eval_level level, dcl_video_agg agg, double threshold) {
    if (used) *used = 0;
    int64_t n = 0;
    double *sc = malloc((size_t)(s->n + 1) * sizeof *sc);
    int *lab = malloc((size_t)(s->n + 1) * sizeof *lab);
    int64_t *vid = level == DCL_LEVEL_VIDEO ? malloc((size_t)(s->n + 1) * sizeof *vid) : NULL;
    int64_t *frm = level == DCL_LEVEL_VIDEO ? malloc((size_t)(s->n + 1) * sizeof *frm) : NULL;
    smap m = {0};
    dcl_status st = (!sc || !lab || (level == DCL_LEVEL_VIDEO && (!vid || !frm))) ? dcl_fail(DCL_ERR_NOMEM, "metrics") : DCL_OK;
    char key[1024];
    for (int64_t i = 0; i < s->n && !st; i++) {
        const dcl_score_row *r = &s->r[i];
        if (isnan(r->score) || !dcl_score_filter_match(f, r->dataset, r->method, r->label)) continue;
        if (level == DCL_LEVEL_VIDEO) {
            if (!*r->video) { st = dcl_fail(DCL_ERR_ARG, "video-level metrics need video names (row %lld has none)", (long long)i + 1); break; }
            snprintf(key, sizeof key, "%s\x1f%s", r->dataset, r->video);
            vid[n] = smap_get(&m, key);
            if (vid[n] < 0) { st = dcl_fail(DCL_ERR_NOMEM, "metrics"); break; }
            frm[n] = r->frame;
        }
        sc[n] = r->score;
        lab[n] = r->label;
        n++;
    }
    if (!st && n == 0) st = dcl_fail(DCL_ERR_ARG, "no scored rows match");
    if (!st) {
        if (level == DCL_LEVEL_VIDEO) st = dcl_metrics_video(out, sc, lab, vid, frm, n, agg, threshold);
        else st = dcl_metrics_compute(out, sc, lab, n, threshold);
    }
    if (!st && used) *used = n;
    smap_free(&m);
    free(sc);
    free(lab);
    free(vid);
    free(frm);
    return st;
}

/* "frame": {...} or null (reason appended to errs) */
static void metrics_member(FILE *f, dcl_buf *errs, const char *what, const dcl_scores *s, const dcl_score_filter *flt,
                           dcl_eval_level level, dcl_video_agg agg, double thr) {
    dcl_metrics m;
    dcl_status st = dcl_scores_metrics(&m, NULL, s, flt, level, agg, thr);
    fprintf(f, "\"%s\": ", level == DCL_LEVEL_VIDEO ? "video" : "frame");
    if (st) {
        fputs("null", f);
        if (errs->len) dcl_buf_puts(errs, ", ");
        char k[700];
        snprintf(k, sizeof k, "%s%s%s", what, *what ? " " : "", level == DCL_LEVEL_VIDEO ? "video" : "frame");
        dcl_buf_json_str(errs, k);
        dcl_buf_puts(errs, ": ");
        dcl_buf_json_str(errs, dcl_last_error());
        dcl_clear_error();
    } else {
        dcl_metrics_write_json(f, &m);
    }
}

dcl_status dcl_eval_metrics_json(dcl_buf *out, const dcl_scores *s, dcl_video_agg agg, double threshold,
                                 const char *extra) {
    char *mem = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&mem, &mlen);
    if (!f) return dcl_fail(DCL_ERR_NOMEM, "metrics.json");
    dcl_buf errs = {0};
    int64_t scored = 0, bad = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (isnan(s->r[i].score)) bad++;
        else scored++;
    }
    fputs("{", f);
    if (extra && *extra) fprintf(f, "%s, ", extra);
    fprintf(f, "\"images\": %lld, \"unreadable\": %lld, \"video_agg\": \"%s\", \"threshold\": %.17g, ",
            (long long)scored, (long long)bad, dcl_video_agg_name(agg), threshold);
    metrics_member(f, &errs, "", s, NULL, DCL_LEVEL_FRAME, agg, threshold);
    fputs(", ", f);
    metrics_member(f, &errs, "", s, NULL, DCL_LEVEL_VIDEO, agg, threshold);
    fputs(", \"per_method\": {", f);
    /* distinct (dataset, method) of the fakes, in order of first appearance */
    int nm = 0, cap = 16;
    const char **ds = malloc(cap * sizeof *ds), **me = malloc(cap * sizeof *me);
    dcl_status st = ds && me ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "metrics.json");
    for (int64_t i = 0; i < s->n && !st; i++) {
        const dcl_score_row *r = &s->r[i];
        if (!r->label) continue;
        int k = 0;
        while (k < nm && (strcmp(ds[k], r->dataset) || strcmp(me[k], r->method))) k++;
        if (k < nm) continue;
        if (nm == cap) {
            cap *= 2;
            const char **a = realloc(ds, cap * sizeof *ds), **b = a ? realloc(me, cap * sizeof *me) : NULL;
            if (a) ds = a;
            if (b) me = b;
            if (!a || !b) { st = dcl_fail(DCL_ERR_NOMEM, "metrics.json"); break; }
        }
        ds[nm] = r->dataset;
        me[nm++] = r->method;
    }
    for (int k = 0; k < nm && !st; k++) {
        int shared = 0;
        for (int j = 0; j < nm; j++) shared |= j != k && !strcmp(me[j], me[k]);
        char key[600];
        if (shared) snprintf(key, sizeof key, "%s/%s", ds[k], me[k]);
        else snprintf(key, sizeof key, "%s", me[k]);
        dcl_buf kb = {0};
        dcl_buf_json_str(&kb, key);
        fprintf(f, "%s%s: {", k ? ", " : "", kb.data ? kb.data : "\"\"");
        dcl_buf_free(&kb);
        const char *one[1] = {me[k]};
        dcl_score_filter flt = {ds[k], one, 1};
        metrics_member(f, &errs, key, s, &flt, DCL_LEVEL_FRAME, agg, threshold);
        fputs(", ", f);
        metrics_member(f, &errs, key, s, &flt, DCL_LEVEL_VIDEO, agg, threshold);
        fputs("}", f);
    }
    fprintf(f, "}, \"errors\": {%s}}\n", errs.data ? errs.data : "");
    free(ds);
    free(me);
    dcl_buf_free(&errs);
    if (fclose(f) != 0 && !st) st = dcl_fail(DCL_ERR_NOMEM, "metrics.json");
    if (!st) st = dcl_buf_append(out, mem, mlen);
    free(mem);
    return st;
}

/* ------------------------------------------------------------------ */
/* protocol files                                                       */
/* ------------------------------------------------------------------ */

const char *dcl_pmetric_name(dcl_pmetric m) {
    static const char *n[] = {"AUC", "EER", "ACC", "AP"};
    return m >= 0 && m < DCL_PM_COUNT ? n[m] : "?";
}

static void free_strv(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void dcl_protocol_free(dcl_protocol *p) {
    if (!p) return;
    free(p->path);
    free(p->name);
    free(p->title);
    free(p->out);
    free_strv(p->cache_name, p->ncaches);
    free_strv(p->cache_path, p->ncaches);
    for (int i = 0; i < p->nruns; i++) {
        dcl_proto_run *r = &p->runs[i];
        free(r->name); free(r->base); free(r->cache); free(r->model); free(r->out);
        free_strv(r->methods, r->nmethods);
    }
    free(p->runs);
    for (int i = 0; i < p->ntests; i++) {
        dcl_proto_test *t = &p->tests[i];
        free(t->name); free(t->label); free(t->cache); free(t->split); free(t->dataset);
        free_strv(t->methods, t->nmethods);
    }
    free(p->tests);
    free(p->cols);
    free(p->group_header);
    free_strv(p->label_cols, p->nlabel_cols);
    for (int i = 0; i < p->nrows; i++) {
        dcl_proto_row *r = &p->rows[i];
        free(r->group); free(r->name); free(r->run);
        free_strv(r->col_run, p->ncols);
        free_strv(r->labels, p->nlabel_cols);
        free_strv(r->paper, p->ncols * p->nmetrics);
    }
    free(p->rows);
    dcl_config_free(p->cfg);
    free(p);
}

int dcl_protocol_find_run(const dcl_protocol *p, const char *name) {
    for (int i = 0; i < p->nruns; i++)
        if (!strcmp(p->runs[i].name, name)) return i;
    return -1;
}

int dcl_protocol_find_cache(const dcl_protocol *p, const char *name) {
    for (int i = 0; i < p->ncaches; i++)
        if (!strcmp(p->cache_name[i], name)) return i;
    return -1;
}

static int find_test(const dcl_protocol *p, const char *name) {
    for (int i = 0; i < p->ntests; i++)
        if (!strcmp(p->tests[i].name, name)) return i;
    return -1;
}

/* where (file, node) for messages */
static const char *where(const dcl_protocol *p, const dcl_config *node, char *buf, size_t n) {
    int line = node ? dcl_config_line(node) : 0;
    const char *path = node ? dcl_config_path(node) : "";
    if (line > 0) snprintf(buf, n, "%s: %s (line %d)", p->path, path, line);
    else snprintf(buf, n, "%s: %s", p->path, path);
    return buf;
}

/* optional scalar string; *out NULL when absent / null */
static dcl_status get_opt_str(const dcl_protocol *p, const dcl_config *node, const char *key, char **out) {
    *out = NULL;
    const dcl_config *v = dcl_config_find(node, key);
    if (!v || dcl_config_kind(v) == DCL_CFG_NULL) return DCL_OK;
    char w[600];
    if (dcl_config_kind(v) != DCL_CFG_SCALAR) return dcl_fail(DCL_ERR_FORMAT, "%s: expected a single value", where(p, v, w, sizeof w));
    if (!(*out = strdup(dcl_config_scalar(v)))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    return DCL_OK;
}

/* a list of scalars: a YAML sequence or one comma-separated scalar */
static dcl_status get_list(const dcl_protocol *p, const dcl_config *node, const char *key, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    const dcl_config *v = dcl_config_find(node, key);
    if (!v || dcl_config_kind(v) == DCL_CFG_NULL) return DCL_OK;
    char w[600];
    int cap = dcl_config_kind(v) == DCL_CFG_SEQ ? dcl_config_len(v) : 64;
    char **l = calloc((size_t)cap + 1, sizeof *l);
    if (!l) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    if (dcl_config_kind(v) == DCL_CFG_SEQ) {
        for (int i = 0; i < cap; i++) {
            const dcl_config *it = dcl_config_at(v, i);
            const char *sv = dcl_config_kind(it) == DCL_CFG_NULL ? "" : dcl_config_scalar(it);
            if (!sv) { free_strv(l, i); return dcl_fail(DCL_ERR_FORMAT, "%s: item %d: expected a value", where(p, v, w, sizeof w), i + 1); }
            if (!(l[i] = strdup(sv))) { free_strv(l, i); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        }
        *n = cap;
    } else if (dcl_config_kind(v) == DCL_CFG_SCALAR) {
        char *copy = strdup(dcl_config_scalar(v)), *save = NULL;
        if (!copy) { free(l); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        for (char *t = strtok_r(copy, ",", &save); t && *n < cap; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            char *e = t + strlen(t);
            while (e > t && e[-1] == ' ') *--e = 0;
            if (*t && !(l[(*n)++] = strdup(t))) { free(copy); free_strv(l, *n); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        }
        free(copy);
    } else {
        free(l);
        return dcl_fail(DCL_ERR_FORMAT, "%s: expected a list", where(p, v, w, sizeof w));
    }
    *out = l;
    return DCL_OK;
}

static dcl_status check_map(const dcl_protocol *p, const dcl_config *node, const char *const *known) {
    char w[600];
    if (dcl_config_kind(node) != DCL_CFG_MAP) return dcl_fail(DCL_ERR_FORMAT, "%s: expected a mapping", where(p, node, w, sizeof w));
    return dcl_config_check_keys(node, known); /* the message names the file, key and line */
}

/* a training config path: as given, then beside the protocol file and up */
static char *resolve_config(const char *proto_path, const char *rel) {
    if (rel[0] == '/' || file_exists(rel)) return strdup(rel);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", proto_path);
    for (int up = 0; up < 4; up++) {
        char *sl = strrchr(dir, '/');
        if (!sl) break;
        *sl = 0;
        char cand[8300];
        snprintf(cand, sizeof cand, "%s/%s", *dir ? dir : "/", rel);
        if (file_exists(cand)) return strdup(cand);
    }
    return strdup(rel);
}

static int valid_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *c = s; *c; c++)
        if (*c == '/' || *c == '\\' || (unsigned char)*c < 32) return 0;
    return 1;
}

static dcl_status parse_protocol(dcl_protocol *p) {
    const dcl_config *root = p->cfg;
    static const char *top[] = {"name", "title", "paper", "notes", "out", "caches", "training", "runs", "tests", "table", NULL};
    DCL_TRY(check_map(p, root, top));
    char w[600];
    DCL_TRY(get_opt_str(p, root, "name", &p->name));
    DCL_TRY(get_opt_str(p, root, "title", &p->title));
    DCL_TRY(get_opt_str(p, root, "out", &p->out));
    if (!p->name) {
        const char *b = strrchr(p->path, '/');
        p->name = strdup(b ? b + 1 : p->path);
        char *dot = p->name ? strrchr(p->name, '.') : NULL;
        if (dot) *dot = 0;
    }
    if (!p->title && !(p->title = strdup(p->name ? p->name : ""))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    if (!p->out) {
        char o[600];
        snprintf(o, sizeof o, "runs/%s", p->name ? p->name : "protocol");
        p->out = strdup(o);
    }
    if (!p->name || !p->out) return dcl_fail(DCL_ERR_NOMEM, "protocol");

    /* caches */
    const dcl_config *caches = dcl_config_find(root, "caches");
    if (caches && dcl_config_kind(caches) != DCL_CFG_NULL) {
        if (dcl_config_kind(caches) != DCL_CFG_MAP) return dcl_fail(DCL_ERR_FORMAT, "%s: expected a mapping of name: path", where(p, caches, w, sizeof w));
        p->ncaches = dcl_config_len(caches);
        p->cache_name = calloc((size_t)p->ncaches + 1, sizeof(char *));
        p->cache_path = calloc((size_t)p->ncaches + 1, sizeof(char *));
        if (!p->cache_name || !p->cache_path) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        for (int i = 0; i < p->ncaches; i++) {
            const dcl_config *v = dcl_config_at(caches, i);
            if (dcl_config_kind(v) != DCL_CFG_NULL && dcl_config_kind(v) != DCL_CFG_SCALAR)
                return dcl_fail(DCL_ERR_FORMAT, "%s: expected a cache path", where(p, v, w, sizeof w));
            p->cache_name[i] = strdup(dcl_config_key(caches, i));
            p->cache_path[i] = strdup(dcl_config_kind(v) == DCL_CFG_SCALAR ? dcl_config_scalar(v) : "");
            if (!p->cache_name[i] || !p->cache_path[i]) return dcl_fail(DCL_ERR_NOMEM, "protocol");
            if (!valid_name(p->cache_name[i])) return dcl_fail(DCL_ERR_FORMAT, "%s: cache name '%s' must not hold '/'", p->path, p->cache_name[i]);
        }
    }

    /* training defaults */
    const dcl_config *training = dcl_config_find(root, "training");
    static const char *k_training[] = {"base", "set", NULL};
    char *base_all = NULL;
    if (training && dcl_config_kind(training) != DCL_CFG_NULL) {
        DCL_TRY(check_map(p, training, k_training));
        DCL_TRY(get_opt_str(p, training, "base", &base_all));
    }

    /* runs */
    const dcl_config *runs = dcl_config_find(root, "runs");
    static const char *k_run[] = {"base", "cache", "methods", "set", "model", "out", NULL};
    dcl_status s = DCL_OK;
    if (runs && dcl_config_kind(runs) != DCL_CFG_NULL) {
        if (dcl_config_kind(runs) != DCL_CFG_MAP) { free(base_all); return dcl_fail(DCL_ERR_FORMAT, "%s: expected a mapping of run name: settings", where(p, runs, w, sizeof w)); }
        p->nruns = dcl_config_len(runs);
        p->runs = calloc((size_t)p->nruns + 1, sizeof *p->runs);
        if (!p->runs) { free(base_all); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        for (int i = 0; i < p->nruns && !s; i++) {
            dcl_proto_run *r = &p->runs[i];
            const dcl_config *v = dcl_config_at(runs, i);
            r->name = strdup(dcl_config_key(runs, i));
            if (!r->name) { s = dcl_fail(DCL_ERR_NOMEM, "protocol"); break; }
            if (!valid_name(r->name)) { s = dcl_fail(DCL_ERR_FORMAT, "%s: run name '%s' must not hold '/'", p->path, r->name); break; }
            if (dcl_config_kind(v) == DCL_CFG_NULL) v = NULL;
            if (v) s = check_map(p, v, k_run);
            char *base = NULL;
            if (!s && v) s = get_opt_str(p, v, "base", &base);
            if (!s && v) s = get_opt_str(p, v, "cache", &r->cache);
            if (!s && v) s = get_list(p, v, "methods", &r->methods, &r->nmethods);
            if (!s && v) s = get_opt_str(p, v, "model", &r->model);
            if (!s && v) s = get_opt_str(p, v, "out", &r->out);
            if (!s && v) {
                const dcl_config *set = dcl_config_find(v, "set");
                if (set && dcl_config_kind(set) != DCL_CFG_NULL) {
                    if (dcl_config_kind(set) != DCL_CFG_MAP) s = dcl_fail(DCL_ERR_FORMAT, "%s: expected a mapping of training keys", where(p, set, w, sizeof w));
                    r->set = set;
                }
            }
            if (s) { free(base); break; }
            const char *b = base ? base : base_all;
            r->base = b && *b ? resolve_config(p->path, b) : NULL;
            free(base);
            if (!r->cache && !r->model) {
                if (p->ncaches == 1) r->cache = strdup(p->cache_name[0]);
                else { s = dcl_fail(DCL_ERR_FORMAT, "%s: run %s: name the cache it trains on (cache: NAME)", p->path, r->name); break; }
            }
            if (r->cache && dcl_protocol_find_cache(p, r->cache) < 0) { s = dcl_fail(DCL_ERR_FORMAT, "%s: run %s: unknown cache '%s' (not under caches:)", p->path, r->name, r->cache); break; }
            if (!r->out) {
                char o[4200];
                snprintf(o, sizeof o, "%s/runs/%s", p->out, r->name);
                r->out = strdup(o);
            }
        }
    }
    free(base_all);
    if (s) return s;

    /* tests */
    const dcl_config *tests = dcl_config_find(root, "tests");
    static const char *k_test[] = {"label", "cache", "split", "dataset", "methods", NULL};
    if (!tests || dcl_config_kind(tests) != DCL_CFG_MAP || dcl_config_len(tests) == 0)
        return dcl_fail(DCL_ERR_FORMAT, "%s: tests: expected a mapping of test set name: {cache, split, methods}", p->path);
    p->ntests = dcl_config_len(tests);
    p->tests = calloc((size_t)p->ntests + 1, sizeof *p->tests);
    if (!p->tests) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    for (int i = 0; i < p->ntests; i++) {
        dcl_proto_test *t = &p->tests[i];
        const dcl_config *v = dcl_config_at(tests, i);
        if (!(t->name = strdup(dcl_config_key(tests, i)))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        DCL_TRY(check_map(p, v, k_test));
        DCL_TRY(get_opt_str(p, v, "label", &t->label));
        DCL_TRY(get_opt_str(p, v, "cache", &t->cache));
        DCL_TRY(get_opt_str(p, v, "split", &t->split));
        DCL_TRY(get_opt_str(p, v, "dataset", &t->dataset));
        DCL_TRY(get_list(p, v, "methods", &t->methods, &t->nmethods));
        if (!t->label && !(t->label = strdup(t->name))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        if (!t->split && !(t->split = strdup("test"))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        if (!valid_name(t->split)) return dcl_fail(DCL_ERR_FORMAT, "%s: test %s: bad split '%s'", p->path, t->name, t->split);
        if (!t->cache) {
            if (p->ncaches == 1) t->cache = strdup(p->cache_name[0]);
            else return dcl_fail(DCL_ERR_FORMAT, "%s: test %s: name its cache (cache: NAME)", p->path, t->name);
        }
        if (dcl_protocol_find_cache(p, t->cache) < 0) return dcl_fail(DCL_ERR_FORMAT, "%s: test %s: unknown cache '%s' (not under caches:)", p->path, t->name, t->cache);
    }

    /* table */
    const dcl_config *table = dcl_config_find(root, "table");
    static const char *k_table[] = {"metrics", "level", "video_agg", "threshold", "columns", "group", "labels", "rows", NULL};
    if (!table) return dcl_fail(DCL_ERR_FORMAT, "%s: table: missing", p->path);
    DCL_TRY(check_map(p, table, k_table));
    char **lst = NULL;
    int nl = 0;
    DCL_TRY(get_list(p, table, "metrics", &lst, &nl));
    if (nl == 0) { free_strv(lst, nl); nl = 0; lst = NULL; p->nmetrics = 1; p->metrics[0] = DCL_PM_AUC; }
    for (int i = 0; i < nl; i++) {
        int k = 0;
        while (k < DCL_PM_COUNT && strcasecmp(lst[i], dcl_pmetric_name((dcl_pmetric)k))) k++;
        if (k == DCL_PM_COUNT || p->nmetrics >= DCL_PM_COUNT) {
            s = dcl_fail(DCL_ERR_FORMAT, "%s: table.metrics: '%s' is not one of AUC, EER, ACC, AP", p->path, lst[i]);
            break;
        }
        p->metrics[p->nmetrics++] = (dcl_pmetric)k;
    }
    free_strv(lst, nl);
    if (s) return s;
    const char *lv = NULL, *ag = NULL;
    DCL_TRY(dcl_config_get_str(table, "level", "frame", &lv));
    if (!strcmp(lv, "frame")) p->level = DCL_LEVEL_FRAME;
    else if (!strcmp(lv, "video")) p->level = DCL_LEVEL_VIDEO;
    else return dcl_fail(DCL_ERR_FORMAT, "%s: table.level must be frame or video, found '%s'", p->path, lv);
    DCL_TRY(dcl_config_get_str(table, "video_agg", "mean", &ag));
    if (dcl_video_agg_parse(ag, &p->agg)) return dcl_fail(DCL_ERR_FORMAT, "%s: table.video_agg must be mean or max-mean, found '%s'", p->path, ag);
    DCL_TRY(dcl_config_get_double(table, "threshold", 0.5, &p->threshold));
    DCL_TRY(get_list(p, table, "columns", &lst, &nl));
    if (nl == 0) {
        free_strv(lst, 0);
        p->ncols = p->ntests;
        p->cols = calloc((size_t)p->ncols + 1, sizeof(int));
        if (!p->cols) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        for (int i = 0; i < p->ncols; i++) p->cols[i] = i;
    } else {
        p->ncols = nl;
        p->cols = calloc((size_t)nl + 1, sizeof(int));
        if (!p->cols) { free_strv(lst, nl); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        for (int i = 0; i < nl && !s; i++)
            if ((p->cols[i] = find_test(p, lst[i])) < 0) s = dcl_fail(DCL_ERR_FORMAT, "%s: table.columns: '%s' is not a test set (under tests:)", p->path, lst[i]);
        free_strv(lst, nl);
        if (s) return s;
    }
    DCL_TRY(get_opt_str(p, table, "group", &p->group_header));
    DCL_TRY(get_list(p, table, "labels", &p->label_cols, &p->nlabel_cols));

    const dcl_config *rows = dcl_config_find(table, "rows");
    static const char *k_row[] = {"group", "name", "labels", "run", "runs", "paper", "bold", NULL};
    if (!rows || dcl_config_kind(rows) != DCL_CFG_SEQ) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows: expected a list of rows", p->path);
    p->nrows = dcl_config_len(rows);
    p->rows = calloc((size_t)p->nrows + 1, sizeof *p->rows);
    if (!p->rows) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    int want = p->ncols * p->nmetrics;
    for (int i = 0; i < p->nrows; i++) {
        dcl_proto_row *r = &p->rows[i];
        const dcl_config *v = dcl_config_at(rows, i);
        DCL_TRY(check_map(p, v, k_row));
        DCL_TRY(get_opt_str(p, v, "group", &r->group));
        DCL_TRY(get_opt_str(p, v, "name", &r->name));
        DCL_TRY(get_opt_str(p, v, "run", &r->run));
        DCL_TRY(dcl_config_get_bool(v, "bold", 0, &r->bold));
        if (!r->name && !(r->name = strdup(r->run ? r->run : ""))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
        char **labels = NULL, **paper = NULL;
        int nlab = 0, npap = 0;
        DCL_TRY(get_list(p, v, "labels", &labels, &nlab));
        if (nlab != p->nlabel_cols && !(nlab == 0 && !labels)) {
            free_strv(labels, nlab);
            return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): %d labels for %d label columns", p->path, i, r->name, nlab, p->nlabel_cols);
        }
        r->labels = calloc((size_t)p->nlabel_cols + 1, sizeof(char *));
        if (!r->labels) { free_strv(labels, nlab); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
        for (int k = 0; k < p->nlabel_cols; k++) r->labels[k] = k < nlab ? labels[k] : strdup("");
        free(labels);
        const dcl_config *rm = dcl_config_find(v, "runs");
        if (rm && dcl_config_kind(rm) != DCL_CFG_NULL) {
            /* a run per column: {test: run, ...} */
            if (r->run) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): give run or runs, not both", p->path, i, r->name);
            if (dcl_config_kind(rm) != DCL_CFG_MAP) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): runs: expected a mapping of test set: run", p->path, i, r->name);
            if (!(r->col_run = calloc((size_t)p->ncols + 1, sizeof(char *)))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
            dcl_buf names = {0};
            for (int k = 0; k < dcl_config_len(rm); k++) {
                const char *tn = dcl_config_key(rm, k), *rn = dcl_config_scalar(dcl_config_at(rm, k));
                int c = 0;
                while (c < p->ncols && strcmp(p->tests[p->cols[c]].name, tn)) c++;
                dcl_status e = DCL_OK;
                if (c == p->ncols) e = dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): runs: '%s' is not a column", p->path, i, r->name, tn);
                else if (!rn || dcl_protocol_find_run(p, rn) < 0) e = dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): unknown run '%s' (not under runs:)", p->path, i, r->name, rn ? rn : "");
                else if (!(r->col_run[c] = strdup(rn))) e = dcl_fail(DCL_ERR_NOMEM, "protocol");
                else if (!strstr(names.data ? names.data : "", rn)) e = dcl_buf_printf(&names, "%s%s", names.len ? "+" : "", rn);
                if (e) { dcl_buf_free(&names); return e; }
            }
            r->run = names.data ? names.data : strdup("");
            if (dcl_config_find(v, "paper")) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): a row has runs or paper values, not both", p->path, i, r->name);
            continue;
        }
        if (r->run) {
            if (dcl_config_find(v, "paper")) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): a row has run or paper values, not both", p->path, i, r->name);
            if (dcl_protocol_find_run(p, r->run) < 0) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): unknown run '%s' (not under runs:)", p->path, i, r->name, r->run);
            if (!(r->col_run = calloc((size_t)p->ncols + 1, sizeof(char *)))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
            for (int c = 0; c < p->ncols; c++)
                if (!(r->col_run[c] = strdup(r->run))) return dcl_fail(DCL_ERR_NOMEM, "protocol");
            continue;
        }
        const dcl_config *pv = dcl_config_find(v, "paper");
        if (!pv || dcl_config_kind(pv) != DCL_CFG_SEQ) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): needs run: NAME or paper: [values]", p->path, i, r->name);
        DCL_TRY(get_list(p, v, "paper", &paper, &npap));
        r->paper = paper;
        if (npap != want) {
            /* keep the array sized for freeing */
            char **full = calloc((size_t)want + 1, sizeof(char *));
            if (full) for (int k = 0; k < npap && k < want; k++) full[k] = paper[k];
            for (int k = want; k < npap; k++) free(paper[k]);
            free(paper);
            r->paper = full;
            return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): %d paper values, the table has %d columns x %d metrics = %d",
                            p->path, i, r->name, npap, p->ncols, p->nmetrics, want);
        }
        for (int k = 0; k < want; k++) {
            char *e;
            const char *t = paper[k];
            if (!strcmp(t, "-")) continue;
            double x = strtod(t, &e);
            if (e == t || *e || !isfinite(x)) return dcl_fail(DCL_ERR_FORMAT, "%s: table.rows.%d (%s): paper value '%s' is neither a number nor '-'", p->path, i, r->name, t);
        }
    }
    return DCL_OK;
}

dcl_status dcl_protocol_load(dcl_protocol **out, const char *path, const char *const *sets, int nsets) {
    *out = NULL;
    dcl_protocol *p = calloc(1, sizeof *p);
    if (!p) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    if (!(p->path = strdup(path))) { free(p); return dcl_fail(DCL_ERR_NOMEM, "protocol"); }
    dcl_status s = dcl_config_load(&p->cfg, path);
    for (int i = 0; i < nsets && !s; i++) s = dcl_config_set_arg(p->cfg, sets[i]);
    if (!s) s = parse_protocol(p);
    if (s) { dcl_protocol_free(p); return s; }
    *out = p;
    return DCL_OK;
}

/* ------------------------------------------------------------------ */
/* training configs                                                     */
/* ------------------------------------------------------------------ */

/* Applies every leaf of a mapping as a dotted key: {train: {epochs: 2}} and
 * {train.epochs: 2} both set train.epochs. */
static dcl_status apply_set(dcl_config *dst, const dcl_config *node, const char *prefix) {
    dcl_cfg_kind k = dcl_config_kind(node);
    if (k == DCL_CFG_MAP) {
        for (int i = 0; i < dcl_config_len(node); i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", dcl_config_key(node, i));
            DCL_TRY(apply_set(dst, dcl_config_at(node, i), path));
        }
        return DCL_OK;
    }
    if (!*prefix) return dcl_fail(DCL_ERR_FORMAT, "set: expected a mapping of training keys");
    if (k == DCL_CFG_NULL) return dcl_config_set(dst, prefix, "");
    if (k == DCL_CFG_SCALAR) return dcl_config_set(dst, prefix, dcl_config_scalar(node));
    /* a sequence of scalars, as YAML flow */
    dcl_buf b = {0};
    dcl_status s = dcl_buf_puts(&b, "[");
    for (int i = 0; i < dcl_config_len(node) && !s; i++) {
        const char *v = dcl_config_scalar(dcl_config_at(node, i));
        if (!v) { s = dcl_fail(DCL_ERR_FORMAT, "set %s: only lists of plain values are supported", prefix); break; }
        s = dcl_buf_printf(&b, "%s", i ? ", " : "");
        if (!s) s = dcl_buf_json_str(&b, v);
    }
    if (!s) s = dcl_buf_puts(&b, "]");
    if (!s) s = dcl_config_set(dst, prefix, b.data);
    dcl_buf_free(&b);
    return s;
}

static void view_dir(char *buf, size_t n, const dcl_protocol *p, const dcl_proto_run *r) {
    size_t u = (size_t)snprintf(buf, n, "%s/caches/%s-", p->out, r->cache);
    for (int i = 0; i < r->nmethods && u < n; i++)
        u += snprintf(buf + u, n - u, "%s%s", i ? "+" : "", canon_method(r->methods[i]));
}

dcl_status dcl_protocol_train_config(dcl_config **out, const dcl_protocol *p, int i, const dcl_protocol_opts *o) {
    *out = NULL;
    if (i < 0 || i >= p->nruns) return dcl_fail(DCL_ERR_ARG, "protocol: run %d out of range", i);
    const dcl_proto_run *r = &p->runs[i];
    dcl_config *c = NULL;
    dcl_status s;
    if (r->base) {
        s = dcl_config_load(&c, r->base);
        if (s) return dcl_fail_ctx(s, "%s: run %s: training config", p->path, r->name);
    } else {
        DCL_TRY(dcl_config_new(&c));
    }
    const dcl_config *all = dcl_config_find(p->cfg, "training.set");
    s = DCL_OK;
    if (all && dcl_config_kind(all) == DCL_CFG_MAP) s = apply_set(c, all, "");
    else if (all && dcl_config_kind(all) != DCL_CFG_NULL) s = dcl_fail(DCL_ERR_FORMAT, "%s: training.set: expected a mapping of training keys", p->path);
    if (!s && r->set) s = apply_set(c, r->set, "");
    if (!s && r->cache) {
        int ci = dcl_protocol_find_cache(p, r->cache);
        char path[4400];
        if (r->nmethods > 0) view_dir(path, sizeof path, p, r);
        else snprintf(path, sizeof path, "%s", p->cache_path[ci]);
        if (*path) s = dcl_config_set(c, "data.cache", path);
    }
    if (!s) s = dcl_config_set(c, "train.out", r->out);
    for (int k = 0; o && k < o->ntrain_sets && !s; k++) s = dcl_config_set_arg(c, o->train_sets[k]);
    if (s) {
        dcl_config_free(c);
        return dcl_fail_ctx(s, "%s: run %s", p->path, r->name);
    }
    *out = c;
    return DCL_OK;
}

void dcl_protocol_opts_default(dcl_protocol_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "cpu";
    o->batch = 32;
    o->workers = 0;   /* auto */
    o->progress = 1;
}

/* ------------------------------------------------------------------ */
/* execution                                                            */
/* ------------------------------------------------------------------ */

static dcl_status need_cache(const dcl_protocol *p, const char *name, const char **path) {
    int ci = dcl_protocol_find_cache(p, name);
    if (ci < 0) return dcl_fail(DCL_ERR_ARG, "%s: unknown cache '%s'", p->path, name);
    const char *c = p->cache_path[ci];
    if (!c || !*c)
        return dcl_fail(DCL_ERR_ARG, "%s: cache '%s' is not set: pass --set caches.%s=PATH (a face cache written by "
                        "dcl extract; the protocol file's comments show the command)", p->path, name, name);
    char idx[4200];
    snprintf(idx, sizeof idx, "%s/index.jsonl", c);
    if (!file_exists(idx))
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: cache '%s' at %s has no index.jsonl: not a face cache (run dcl extract first)",
                        p->path, name, c);
    *path = c;
    return DCL_OK;
}

/* first path component of a cache-relative path into the symlink list */
static void add_component(char ***list, int *n, int *cap, const char *rel) {
    if (!rel || !*rel || rel[0] == '/') return;
    size_t len = strcspn(rel, "/");
    if (len == 0 || (len == 2 && !strncmp(rel, "..", 2)) || (len == 1 && rel[0] == '.')) return;
    for (int i = 0; i < *n; i++)
        if (strlen((*list)[i]) == len && !strncmp((*list)[i], rel, len)) return;
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        char **nl = realloc(*list, (size_t)nc * sizeof *nl);
        if (!nl) return;
        *list = nl;
        *cap = nc;
    }
    char *c = strndup(rel, len);
    if (c) (*list)[(*n)++] = c;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* A cache holding the reals and the fakes of some methods of another cache:
 * its index.jsonl (the kept lines, unchanged) and links to the crop folders. */
static dcl_status make_view(const dcl_protocol *p, const dcl_proto_run *r, const char *src, const char *dst) {
    char path[8800];
    snprintf(path, sizeof path, "%s/index.jsonl", src);
    char *text = NULL;
    size_t len = 0;
    DCL_TRY(dcl_read_file((void **)&text, &len, path, 0));
    dcl_buf keep = {0}, present = {0};
    char **comps = NULL;
    int ncomp = 0, capc = 0;
    int64_t nfake = 0, nreal = 0;
    const char **fl = (const char **)r->methods;
    dcl_score_filter flt = {NULL, fl, r->nmethods};
    dcl_status s = DCL_OK;
    for (char *line = text; line < text + len && !s;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl) break; /* torn last line */
        *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *lab = o ? cJSON_GetObjectItemCaseSensitive(o, "label") : NULL;
        if (o && cJSON_IsNumber(lab)) {
            int label = lab->valueint != 0;
            const char *method = jstr(o, "method");
            if (label && !strstr(present.data ? present.data : "", method)) {
                s = dcl_buf_printf(&present, "%s%s", present.len ? ", " : "", method);
            }
            if (dcl_score_filter_match(&flt, jstr(o, "dataset"), method, label)) {
                *nl = '\n';
                s = dcl_buf_append(&keep, line, (size_t)(nl - line) + 1);
                add_component(&comps, &ncomp, &capc, jstr(o, "crop"));
                add_component(&comps, &ncomp, &capc, jstr(o, "pair"));
                add_component(&comps, &ncomp, &capc, jstr(o, "mask"));
                if (label) nfake++;
                else nreal++;
            }
        }
        cJSON_Delete(o);
        line = nl + 1;
    }
    free(text);
    if (!s && nfake == 0)
        s = dcl_fail(DCL_ERR_ARG, "%s: run %s: cache %s has no fakes of the methods asked for (methods present: %s)",
                     p->path, r->name, src, present.len ? present.data : "none");
    if (!s && nreal == 0) s = dcl_fail(DCL_ERR_ARG, "%s: run %s: cache %s has no reals", p->path, r->name, src);
    if (!s && dcl_mkdir_p(dst)) s = dcl_fail(DCL_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
    if (!s) {
        snprintf(path, sizeof path, "%s/index.jsonl", dst);
        char *old = NULL;
        size_t olen = 0;
        int same = dcl_read_file((void **)&old, &olen, path, 0) == DCL_OK && olen == keep.len &&
                   (!olen || !memcmp(old, keep.data, olen));
        dcl_clear_error();
        free(old);
        if (!same) s = dcl_write_file_atomic(path, keep.data ? keep.data : "", keep.len);
    }
    char absrc[PATH_MAX];
    if (!s && !realpath(src, absrc)) s = dcl_fail(DCL_ERR_IO, "%s: %s", src, strerror(errno));
    for (int i = 0; i < ncomp && !s; i++) {
        char link[8800], target[PATH_MAX + 300];
        snprintf(link, sizeof link, "%s/%s", dst, comps[i]);
        snprintf(target, sizeof target, "%s/%s", absrc, comps[i]);
        struct stat st;
        if (lstat(link, &st) == 0) continue;
        if (symlink(target, link) != 0) s = dcl_fail(DCL_ERR_IO, "cannot link %s to %s: %s", link, target, strerror(errno));
    }
    if (!s) dcl_log(2, "run %s: training cache %s (%lld reals, %lld fakes of %d method(s))", r->name, dst,
                    (long long)nreal, (long long)nfake, r->nmethods);
    free_strv(comps, ncomp);
    dcl_buf_free(&keep);
    dcl_buf_free(&present);
    return s;
}

typedef enum { RUN_FRESH, RUN_RESUME, RUN_DONE, RUN_GIVEN } run_state;

/* epochs completed by the checkpoint at path; -1 if unreadable */
static int ckpt_epochs(const char *path) {
    dcl_st *st = NULL;
    if (dcl_st_open(&st, path)) { dcl_clear_error(); return -1; }
    const char *v = dcl_st_meta(st, "epoch");
    int e = v ? atoi(v) : -1;
    dcl_st_close(st);
    return e;
}

static run_state run_status(const dcl_proto_run *r, int epochs, char *model, size_t n) {
    if (r->model) { snprintf(model, n, "%s", r->model); return RUN_GIVEN; }
    char best[4200], last[4200];
    snprintf(best, sizeof best, "%s/best.safetensors", r->out);
    snprintf(last, sizeof last, "%s/last.safetensors", r->out);
    int hb = file_exists(best), hl = file_exists(last);
    snprintf(model, n, "%s", hb ? best : hl ? last : best);
    if (!hl) return hb ? RUN_DONE : RUN_FRESH;
    int e = ckpt_epochs(last);
    if (e >= epochs) return RUN_DONE;
    return RUN_RESUME;
}

static int run_selected(const dcl_protocol_opts *o, const char *name) {
    if (!o->runs || !*o->runs) return 1;
    size_t n = strlen(name);
    for (const char *p = o->runs; *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && !strncmp(p, name, n)) return 1;
        p += l;
        if (*p == ',') p++;
    }
    return 0;
}

static void scores_path(char *buf, size_t n, const char *dir, const char *run, const dcl_proto_test *t) {
    snprintf(buf, n, "%s/%s/%s.%s.csv", dir, run, t->cache, t->split);
}

typedef struct open_cache { const char *name; dcl_cache *c; } open_cache;

static dcl_status get_cache(const dcl_protocol *p, open_cache *oc, const char *name, dcl_cache **c) {
    int ci = dcl_protocol_find_cache(p, name);
    if (oc[ci].c) { *c = oc[ci].c; return DCL_OK; }
    const char *path;
    DCL_TRY(need_cache(p, name, &path));
    DCL_TRY(dcl_cache_open(&oc[ci].c, path));
    *c = oc[ci].c;
    return DCL_OK;
}

/* scores the test sources of one run that are missing or older than the model */
static dcl_status score_run(const dcl_protocol *p, const dcl_protocol_opts *o, const dcl_proto_run *r, const char *model,
                            int train_size, dcl_backend **be, open_cache *oc, const char *scores_dir) {
    double mt = file_mtime(model);
    dcl_detector *d = NULL;
    dcl_model_info info;
    dcl_status s = DCL_OK;
    for (int ti = 0; ti < p->ntests && !s; ti++) {
        const dcl_proto_test *t = &p->tests[ti];
        int first = 1;
        for (int k = 0; k < ti; k++)
            if (!strcmp(p->tests[k].cache, t->cache) && !strcmp(p->tests[k].split, t->split)) first = 0;
        if (!first) continue;
        char out[4400];
        scores_path(out, sizeof out, scores_dir, r->name, t);
        if (file_exists(out) && file_mtime(out) >= mt) {
            dcl_log(2, "run %s: %s is up to date", r->name, out);
            continue;
        }
        dcl_cache *c = NULL;
        s = get_cache(p, oc, t->cache, &c);
        int *idx = NULL, n = 0;
        if (!s) s = dcl_cache_select(c, t->split, &idx, &n);
        /* the entries any test of this source needs */
        int k = 0;
        for (int i = 0; i < n && !s; i++) {
            const dcl_cache_entry *e = &c->e[idx[i]];
            int want = 0;
            for (int u = ti; u < p->ntests && !want; u++) {
                const dcl_proto_test *tu = &p->tests[u];
                if (strcmp(tu->cache, t->cache) || strcmp(tu->split, t->split)) continue;
                dcl_score_filter f = {tu->dataset, (const char *const *)tu->methods, tu->nmethods};
                want = dcl_score_filter_match(&f, e->dataset, e->method, e->label);
            }
            if (want) idx[k++] = idx[i];
        }
        if (!s && k == 0)
            s = dcl_fail(DCL_ERR_ARG, "%s: cache '%s' has no images in split '%s' for the test sets on it", p->path, t->cache, t->split);
        if (!s && !*be) {
            *be = dcl_backend_create(o->device ? o->device : "cpu", o->threads);
            if (!*be) s = dcl_fail_ctx(DCL_ERR_UNSUPPORTED, "scoring backend");
        }
        if (!s && !d) {
            s = dcl_detector_open_model(&d, *be, model, &info);
            if (!s && info.size <= 0) info.size = train_size;
        }
        dcl_scores sc = {0};
        int bad = 0;
        if (!s) {
            dcl_log(2, "run %s: scoring %d images of %s/%s", r->name, k, t->cache, t->split);
            s = dcl_scores_from_cache(&sc, &bad, d, c, idx, k, o->batch > 0 ? o->batch : 32, info.size,
                                      dcl_loader_workers(o->workers, (*be)->is_host, 1), info.mean, info.std, o->progress);
        }
        if (!s && bad) dcl_log(1, "run %s: %d unreadable crops of %s/%s left out (see the messages above)", r->name, bad, t->cache, t->split);
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/%s", scores_dir, r->name);
        if (!s && dcl_mkdir_p(dir)) s = dcl_fail(DCL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        if (!s) s = dcl_scores_write_csv(&sc, out, 0);
        dcl_scores_free(&sc);
        free(idx);
    }
    dcl_detector_free(d);
    return s;
}

dcl_status dcl_protocol_execute(const dcl_protocol *p, const dcl_protocol_opts *o) {
    dcl_protocol_opts def;
    if (!o) { dcl_protocol_opts_default(&def); o = &def; }
    for (const char *q = o->runs; q && *q;) {
        size_t l = strcspn(q, ",");
        int found = 0;
        for (int i = 0; i < p->nruns; i++) found |= strlen(p->runs[i].name) == l && !strncmp(p->runs[i].name, q, l);
        if (!found) return dcl_fail(DCL_ERR_ARG, "--runs: '%.*s' is not a run of %s", (int)l, q, p->path);
        q += l;
        if (*q == ',') q++;
    }
    if (!o->dry_run && dcl_mkdir_p(p->out)) return dcl_fail(DCL_ERR_IO, "cannot create %s: %s", p->out, strerror(errno));
    char scores_dir[4200];
    snprintf(scores_dir, sizeof scores_dir, "%s/scores", p->out);
    open_cache *oc = calloc((size_t)p->ncaches + 1, sizeof *oc);
    if (!oc) return dcl_fail(DCL_ERR_NOMEM, "protocol");
    dcl_backend *be = NULL;
    dcl_status s = DCL_OK;
    int pending = 0;
    if (o->dry_run) {
        printf("protocol %s (%s): output %s\n", p->name, p->title, p->out);
        for (int i = 0; i < p->ncaches; i++) {
            const char *cp = p->cache_path[i], *state = "not set: --set caches.NAME=PATH";
            char idx[4400];
            snprintf(idx, sizeof idx, "%s/index.jsonl", cp);
            if (*cp) state = file_exists(idx) ? "ok" : "no index.jsonl there";
            printf("  cache %-22s %s (%s)\n", p->cache_name[i], *cp ? cp : "-", state);
        }
    }
    for (int i = 0; i < p->nruns && !s; i++) {
        const dcl_proto_run *r = &p->runs[i];
        if (!run_selected(o, r->name)) continue;
        dcl_config *cfg = NULL;
        dcl_train_cfg t;
        char model[4400];
        s = dcl_protocol_train_config(&cfg, p, i, o);
        int epochs = 0, size = 0;
        if (!s && !r->model) {
            /* the cache may still be unset in a dry run */
            const char *cv = NULL;
            if (dcl_config_get_str(cfg, "data.cache", "", &cv) || !cv || !*cv) {
                dcl_clear_error();
                s = dcl_config_set(cfg, "data.cache", "<unset>"); /* need_cache() names it before training */
            }
            if (!s) s = dcl_train_cfg_from_config(&t, cfg);
            if (s) s = dcl_fail_ctx(s, "%s: run %s", p->path, r->name);
            else { epochs = t.epochs; size = t.size; }
        }
        run_state rs = RUN_FRESH;
        if (!s) rs = run_status(r, epochs, model, sizeof model);
        if (!s && o->dry_run) {
            static const char *st_name[] = {"to train", "to resume", "trained", "given model"};
            printf("  run %-24s %-12s %s", r->name, st_name[rs], r->model ? r->model : r->out);
            if (!r->model) {
                printf("  (%s %dx%d, %d epochs, batch %d; cache %s", t.arch, t.size, t.size, t.epochs, t.batch, r->cache);
                for (int k = 0; k < r->nmethods; k++) printf("%s%s", k ? "+" : " fakes: ", r->methods[k]);
                printf("; inter %s, intra %s, views %s, hard %s", t.use_inter ? "on" : "off", t.use_intra ? "on" : "off",
                       t.use_views ? "on" : "off", t.use_hard ? "on" : "off");
                if (t.pretrained[0]) printf("; from %s", t.pretrained);
                printf(")");
            }
            printf("\n");
            dcl_config_free(cfg);
            continue;
        }
        if (!s && (rs == RUN_FRESH || rs == RUN_RESUME)) {
            if (o->no_train) {
                dcl_log(1, "run %s: not trained (--no-train): its cells will be '-'", r->name);
                dcl_config_free(cfg);
                pending++;
                continue;
            }
            const char *src = NULL;
            s = need_cache(p, r->cache, &src);
            if (!s && r->nmethods > 0) {
                char vd[4400];
                view_dir(vd, sizeof vd, p, r);
                s = make_view(p, r, src, vd);
            }
            dcl_buf dump = {0};
            if (!s) s = dcl_train_cfg_from_config(&t, cfg);
            if (!s) s = dcl_config_dump(&dump, cfg);
            dcl_train_result res;
            if (!s) {
                dcl_log(2, "run %s: %s %s (%d epochs) into %s", r->name, rs == RUN_RESUME ? "resuming" : "training", t.arch,
                        t.epochs, t.out);
                s = dcl_train(&t, rs == RUN_RESUME, dump.data, &res);
                if (s) s = dcl_fail_ctx(s, "run %s", r->name);
            }
            dcl_buf_free(&dump);
            if (!s && res.interrupted)
                s = dcl_fail(DCL_ERR_INTERRUPTED, "interrupted while training run %s (state saved in %s); run the same command again to resume",
                             r->name, t.out);
            if (!s) rs = run_status(r, epochs, model, sizeof model);
        } else if (!s && rs != RUN_GIVEN) {
            dcl_log(2, "run %s: trained (%s), skipping training", r->name, model);
        }
        dcl_config_free(cfg);
        if (s) break;
        if (!file_exists(model)) {
            if (rs == RUN_GIVEN) s = dcl_fail(DCL_ERR_NOTFOUND, "%s: run %s: model %s not found", p->path, r->name, model);
            else dcl_log(1, "run %s: no model file in %s", r->name, r->out);
            continue;
        }
        s = score_run(p, o, r, model, size > 0 ? size : dcl_train_cfg_defaults().size, &be, oc, scores_dir);
    }
    if (!s && !o->dry_run) {
        dcl_ptable *tab = NULL;
        s = dcl_protocol_table(&tab, p, scores_dir);
        if (!s) s = dcl_ptable_write(tab, p->out);
        if (!s) {
            dcl_buf md = {0};
            if (!dcl_ptable_markdown(&md, tab) && md.data) fputs(md.data, stdout);
            dcl_buf_free(&md);
            printf("\nwrote %s/table.md, %s/table.csv, %s/table.json\n", p->out, p->out, p->out);
            if (pending) printf("%d run(s) not trained yet (their cells are '-')\n", pending);
        }
        dcl_ptable_free(tab);
    }
    for (int i = 0; i < p->ncaches; i++) dcl_cache_free(oc[i].c);
    free(oc);
    if (be) dcl_backend_destroy(be);
    return s;
}

/* ------------------------------------------------------------------ */
/* tables                                                               */
/* ------------------------------------------------------------------ */

void dcl_ptable_free(dcl_ptable *t) {
    if (!t) return;
    int nc = t->ncols;
    free(t->title);
    free_strv(t->header, nc);
    free(t->group_header);
    free_strv(t->label_cols, t->nlabel_cols);
    free_strv(t->row_group, t->nrows);
    free_strv(t->row_name, t->nrows);
    free_strv(t->row_run, t->nrows);
    free_strv(t->row_labels, t->nrows * t->nlabel_cols);
    free(t->row_bold);
    free_strv(t->cell, t->nrows * nc);
    free(t->value);
    free_strv(t->col_test, nc);
    free_strv(t->col_label, nc);
    free_strv(t->col_metric, nc);
    free_strv(t->row_metrics, t->nrows * t->ntests);
    free(t);
}

static double metric_value(const dcl_metrics *m, dcl_pmetric k) {
    switch (k) {
    case DCL_PM_AUC: return m->auc;
    case DCL_PM_EER: return m->eer;
    case DCL_PM_ACC: return m->acc;
    case DCL_PM_AP: return m->ap;
    default: return NAN;
    }
}

static char *metrics_obj(const dcl_metrics *m) {
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    if (!f) return NULL;
    if (m) dcl_metrics_write_json(f, m);
    else fputs("null", f);
    fclose(f);
    return mem;
}

typedef struct loaded_scores { char *path; dcl_scores s; int ok; } loaded_scores;

dcl_status dcl_protocol_table(dcl_ptable **out, const dcl_protocol *p, const char *scores_dir) {
    *out = NULL;
    dcl_ptable *t = calloc(1, sizeof *t);
    if (!t) return dcl_fail(DCL_ERR_NOMEM, "table");
    int nm = p->nmetrics, nc = p->ncols * nm;
    t->nrows = p->nrows;
    t->ncols = nc;
    t->ntests = p->ncols;
    t->nmetrics = nm;
    t->nlabel_cols = p->nlabel_cols;
    t->title = xstrdup(p->title);
    t->group_header = p->group_header ? xstrdup(p->group_header) : NULL;
    t->header = calloc((size_t)nc + 1, sizeof(char *));
    t->col_test = calloc((size_t)nc + 1, sizeof(char *));
    t->col_label = calloc((size_t)nc + 1, sizeof(char *));
    t->col_metric = calloc((size_t)nc + 1, sizeof(char *));
    t->label_cols = calloc((size_t)p->nlabel_cols + 1, sizeof(char *));
    t->row_group = calloc((size_t)p->nrows + 1, sizeof(char *));
    t->row_name = calloc((size_t)p->nrows + 1, sizeof(char *));
    t->row_run = calloc((size_t)p->nrows + 1, sizeof(char *));
    t->row_labels = calloc((size_t)p->nrows * p->nlabel_cols + 1, sizeof(char *));
    t->row_bold = calloc((size_t)p->nrows + 1, sizeof(int));
    t->cell = calloc((size_t)p->nrows * nc + 1, sizeof(char *));
    t->value = calloc((size_t)p->nrows * nc + 1, sizeof(double));
    t->row_metrics = calloc((size_t)p->nrows * p->ncols + 1, sizeof(char *));
    loaded_scores *ls = calloc((size_t)p->nrows * p->ncols + 1, sizeof *ls);
    int nls = 0;
    dcl_status s = (!t->header || !t->col_test || !t->col_label || !t->col_metric || !t->label_cols || !t->row_group ||
                    !t->row_name || !t->row_run || !t->row_labels || !t->row_bold || !t->cell || !t->value ||
                    !t->row_metrics || !ls) ? dcl_fail(DCL_ERR_NOMEM, "table") : DCL_OK;
    for (int c = 0; c < p->ncols && !s; c++)
        for (int k = 0; k < nm; k++) {
            const dcl_proto_test *te = &p->tests[p->cols[c]];
            char h[600];
            snprintf(h, sizeof h, "%s %s", te->label, dcl_pmetric_name(p->metrics[k]));
            t->header[c * nm + k] = xstrdup(h);
            t->col_test[c * nm + k] = xstrdup(te->name);
            t->col_label[c * nm + k] = xstrdup(te->label);
            t->col_metric[c * nm + k] = xstrdup(dcl_pmetric_name(p->metrics[k]));
        }
    for (int k = 0; k < p->nlabel_cols && !s; k++) t->label_cols[k] = xstrdup(p->label_cols[k]);
    for (int r = 0; r < p->nrows && !s; r++) {
        const dcl_proto_row *row = &p->rows[r];
        t->row_group[r] = xstrdup(row->group);
        t->row_name[r] = xstrdup(row->name);
        t->row_run[r] = row->run ? xstrdup(row->run) : NULL;
        t->row_bold[r] = row->bold;
        for (int k = 0; k < p->nlabel_cols; k++) t->row_labels[r * p->nlabel_cols + k] = xstrdup(row->labels[k]);
        for (int c = 0; c < p->ncols; c++) {
            const dcl_proto_test *te = &p->tests[p->cols[c]];
            dcl_metrics mf, mv;
            int okf = 0, okv = 0;
            const char *crun = row->col_run ? row->col_run[c] : NULL;
            if (crun) {
                char path[4400];
                scores_path(path, sizeof path, scores_dir, crun, te);
                int li = 0;
                while (li < nls && strcmp(ls[li].path, path)) li++;
                if (li == nls) {
                    ls[nls].path = xstrdup(path);
                    nls++;
                    if (file_exists(path)) {
                        dcl_status rs = dcl_scores_read_csv(&ls[li].s, path);
                        if (rs) { dcl_log(1, "%s", dcl_last_error()); dcl_clear_error(); }
                        else ls[li].ok = 1;
                    }
                }
                if (ls[li].ok) {
                    dcl_score_filter f = {te->dataset, (const char *const *)te->methods, te->nmethods};
                    okf = dcl_scores_metrics(&mf, NULL, &ls[li].s, &f, DCL_LEVEL_FRAME, p->agg, p->threshold) == DCL_OK;
                    if (!okf && p->level == DCL_LEVEL_FRAME) dcl_log(1, "run %s on %s: %s", crun, te->name, dcl_last_error());
                    okv = dcl_scores_metrics(&mv, NULL, &ls[li].s, &f, DCL_LEVEL_VIDEO, p->agg, p->threshold) == DCL_OK;
                    if (!okv && p->level == DCL_LEVEL_VIDEO) dcl_log(1, "run %s on %s (video level): %s", crun, te->name, dcl_last_error());
                    dcl_clear_error();
                    char *a = metrics_obj(okf ? &mf : NULL), *b = metrics_obj(okv ? &mv : NULL);
                    dcl_buf j = {0};
                    dcl_buf_puts(&j, "{\"run\": ");
                    dcl_buf_json_str(&j, crun);
                    dcl_buf_printf(&j, ", \"frame\": %s, \"video\": %s}", a ? a : "null", b ? b : "null");
                    free(a);
                    free(b);
                    t->row_metrics[r * p->ncols + c] = j.data ? j.data : xstrdup("null");
                }
            }
            for (int k = 0; k < nm; k++) {
                int ci = r * nc + c * nm + k;
                char buf[64];
                double v = NAN;
                if (crun) {
                    int ok = p->level == DCL_LEVEL_VIDEO ? okv : okf;
                    if (ok) {
                        v = 100.0 * metric_value(p->level == DCL_LEVEL_VIDEO ? &mv : &mf, p->metrics[k]);
                        snprintf(buf, sizeof buf, "%.2f", v);
                    } else {
                        snprintf(buf, sizeof buf, "-");
                    }
                } else if (row->paper) {
                    const char *pv = row->paper[c * nm + k];
                    snprintf(buf, sizeof buf, "%s", pv);
                    if (strcmp(pv, "-")) v = strtod(pv, NULL);
                } else {
                    snprintf(buf, sizeof buf, "-"); /* a column without a run */
                }
                t->cell[ci] = xstrdup(buf);
                t->value[ci] = v;
            }
        }
    }
    for (int i = 0; i < nls; i++) {
        free(ls[i].path);
        dcl_scores_free(&ls[i].s);
    }
    free(ls);
    if (s) { dcl_ptable_free(t); return s; }
    *out = t;
    return DCL_OK;
}

/* Markdown cell text: '|' escaped */
static dcl_status md_text(dcl_buf *b, const char *s, int bold) {
    if (bold && *s && strcmp(s, "-")) DCL_TRY(dcl_buf_puts(b, "**"));
    for (const char *c = s; *c; c++) DCL_TRY(*c == '|' ? dcl_buf_puts(b, "\\|") : dcl_buf_append(b, c, 1));
    if (bold && *s && strcmp(s, "-")) DCL_TRY(dcl_buf_puts(b, "**"));
    return DCL_OK;
}

dcl_status dcl_ptable_markdown(dcl_buf *b, const dcl_ptable *t) {
    DCL_TRY(dcl_buf_printf(b, "### %s\n\n|", t->title));
    if (t->group_header) { DCL_TRY(dcl_buf_puts(b, " ")); DCL_TRY(md_text(b, t->group_header, 0)); DCL_TRY(dcl_buf_puts(b, " |")); }
    DCL_TRY(dcl_buf_puts(b, " Method |"));
    for (int k = 0; k < t->nlabel_cols; k++) { DCL_TRY(dcl_buf_puts(b, " ")); DCL_TRY(md_text(b, t->label_cols[k], 0)); DCL_TRY(dcl_buf_puts(b, " |")); }
    for (int c = 0; c < t->ncols; c++) {
        DCL_TRY(dcl_buf_puts(b, " "));
        DCL_TRY(md_text(b, t->nmetrics == 1 ? t->col_label[c] : t->header[c], 0));
        DCL_TRY(dcl_buf_puts(b, " |"));
    }
    DCL_TRY(dcl_buf_puts(b, "\n|"));
    int ntext = (t->group_header ? 1 : 0) + 1;
    for (int k = 0; k < ntext; k++) DCL_TRY(dcl_buf_puts(b, "---|"));
    for (int k = 0; k < t->nlabel_cols; k++) DCL_TRY(dcl_buf_puts(b, ":---:|"));
    for (int c = 0; c < t->ncols; c++) DCL_TRY(dcl_buf_puts(b, "---:|"));
    DCL_TRY(dcl_buf_puts(b, "\n"));
    for (int r = 0; r < t->nrows; r++) {
        DCL_TRY(dcl_buf_puts(b, "|"));
        if (t->group_header) {
            int first = r == 0 || strcmp(t->row_group[r], t->row_group[r - 1]);
            DCL_TRY(dcl_buf_puts(b, " "));
            DCL_TRY(md_text(b, first ? t->row_group[r] : "", 0));
            DCL_TRY(dcl_buf_puts(b, " |"));
        }
        DCL_TRY(dcl_buf_puts(b, " "));
        DCL_TRY(md_text(b, t->row_name[r], t->row_bold[r]));
        DCL_TRY(dcl_buf_puts(b, " |"));
        for (int k = 0; k < t->nlabel_cols; k++) {
            DCL_TRY(dcl_buf_puts(b, " "));
            DCL_TRY(md_text(b, t->row_labels[r * t->nlabel_cols + k], 0));
            DCL_TRY(dcl_buf_puts(b, " |"));
        }
        for (int c = 0; c < t->ncols; c++) {
            DCL_TRY(dcl_buf_puts(b, " "));
            DCL_TRY(md_text(b, t->cell[r * t->ncols + c], t->row_bold[r]));
            DCL_TRY(dcl_buf_puts(b, " |"));
        }
        DCL_TRY(dcl_buf_puts(b, "\n"));
    }
    return dcl_buf_puts(b, "\nValues in %. Rows without \"(this run)\" are the published numbers (Sun et al., AAAI 2022); "
                           "\"-\": not reported, or not run yet.\n");
}

dcl_status dcl_ptable_csv(dcl_buf *b, const dcl_ptable *t) {
    DCL_TRY(dcl_buf_puts(b, "group,method,source"));
    for (int k = 0; k < t->nlabel_cols; k++) { DCL_TRY(dcl_buf_puts(b, ",")); DCL_TRY(csv_field(b, t->label_cols[k])); }
    for (int c = 0; c < t->ncols; c++) { DCL_TRY(dcl_buf_puts(b, ",")); DCL_TRY(csv_field(b, t->header[c])); }
    DCL_TRY(dcl_buf_puts(b, "\n"));
    for (int r = 0; r < t->nrows; r++) {
        DCL_TRY(csv_field(b, t->row_group[r]));
        DCL_TRY(dcl_buf_puts(b, ","));
        DCL_TRY(csv_field(b, t->row_name[r]));
        if (t->row_run[r]) {
            DCL_TRY(dcl_buf_puts(b, ",run:"));
            DCL_TRY(csv_field(b, t->row_run[r]));
        } else {
            DCL_TRY(dcl_buf_puts(b, ",paper"));
        }
        for (int k = 0; k < t->nlabel_cols; k++) { DCL_TRY(dcl_buf_puts(b, ",")); DCL_TRY(csv_field(b, t->row_labels[r * t->nlabel_cols + k])); }
        for (int c = 0; c < t->ncols; c++) { DCL_TRY(dcl_buf_puts(b, ",")); DCL_TRY(csv_field(b, t->cell[r * t->ncols + c])); }
        DCL_TRY(dcl_buf_puts(b, "\n"));
    }
    return DCL_OK;
}

static dcl_status json_num(dcl_buf *b, double v) {
    if (!isfinite(v)) return dcl_buf_puts(b, "null");
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    return dcl_buf_puts(b, buf);
}

dcl_status dcl_ptable_json(dcl_buf *b, const dcl_ptable *t) {
    DCL_TRY(dcl_buf_puts(b, "{\"title\": "));
    DCL_TRY(dcl_buf_json_str(b, t->title));
    DCL_TRY(dcl_buf_puts(b, ",\n \"columns\": ["));
    for (int c = 0; c < t->ncols; c++) {
        DCL_TRY(dcl_buf_puts(b, c ? ", {\"test\": " : "{\"test\": "));
        DCL_TRY(dcl_buf_json_str(b, t->col_test[c]));
        DCL_TRY(dcl_buf_puts(b, ", \"label\": "));
        DCL_TRY(dcl_buf_json_str(b, t->col_label[c]));
        DCL_TRY(dcl_buf_puts(b, ", \"metric\": "));
        DCL_TRY(dcl_buf_json_str(b, t->col_metric[c]));
        DCL_TRY(dcl_buf_puts(b, "}"));
    }
    DCL_TRY(dcl_buf_puts(b, "],\n \"label_columns\": ["));
    for (int k = 0; k < t->nlabel_cols; k++) {
        if (k) DCL_TRY(dcl_buf_puts(b, ", "));
        DCL_TRY(dcl_buf_json_str(b, t->label_cols[k]));
    }
    DCL_TRY(dcl_buf_puts(b, "],\n \"group_column\": "));
    if (t->group_header) DCL_TRY(dcl_buf_json_str(b, t->group_header));
    else DCL_TRY(dcl_buf_puts(b, "null"));
    DCL_TRY(dcl_buf_puts(b, ",\n \"rows\": ["));
    for (int r = 0; r < t->nrows; r++) {
        DCL_TRY(dcl_buf_puts(b, r ? ",\n  {\"group\": " : "\n  {\"group\": "));
        DCL_TRY(dcl_buf_json_str(b, t->row_group[r]));
        DCL_TRY(dcl_buf_puts(b, ", \"method\": "));
        DCL_TRY(dcl_buf_json_str(b, t->row_name[r]));
        DCL_TRY(dcl_buf_printf(b, ", \"source\": \"%s\", \"run\": ", t->row_run[r] ? "run" : "paper"));
        if (t->row_run[r]) DCL_TRY(dcl_buf_json_str(b, t->row_run[r]));
        else DCL_TRY(dcl_buf_puts(b, "null"));
        DCL_TRY(dcl_buf_printf(b, ", \"bold\": %s, \"labels\": [", t->row_bold[r] ? "true" : "false"));
        for (int k = 0; k < t->nlabel_cols; k++) {
            if (k) DCL_TRY(dcl_buf_puts(b, ", "));
            DCL_TRY(dcl_buf_json_str(b, t->row_labels[r * t->nlabel_cols + k]));
        }
        DCL_TRY(dcl_buf_puts(b, "], \"cells\": ["));
        for (int c = 0; c < t->ncols; c++) {
            DCL_TRY(dcl_buf_puts(b, c ? ", {\"text\": " : "{\"text\": "));
            DCL_TRY(dcl_buf_json_str(b, t->cell[r * t->ncols + c]));
            DCL_TRY(dcl_buf_puts(b, ", \"value\": "));
            DCL_TRY(json_num(b, t->value[r * t->ncols + c]));
            DCL_TRY(dcl_buf_puts(b, "}"));
        }
        DCL_TRY(dcl_buf_puts(b, "]"));
        if (t->row_run[r]) {
            DCL_TRY(dcl_buf_puts(b, ", \"metrics\": {"));
            int first = 1;
            for (int c = 0; c < t->ntests; c++) {
                const char *m = t->row_metrics[r * t->ntests + c];
                if (!m) continue;
                DCL_TRY(dcl_buf_puts(b, first ? "" : ", "));
                first = 0;
                DCL_TRY(dcl_buf_json_str(b, t->col_test[c * t->nmetrics]));
                DCL_TRY(dcl_buf_printf(b, ": %s", m));
            }
            DCL_TRY(dcl_buf_puts(b, "}"));
        }
        DCL_TRY(dcl_buf_puts(b, "}"));
    }
    return dcl_buf_puts(b, "\n ]}\n");
}

dcl_status dcl_ptable_write(const dcl_ptable *t, const char *dir) {
    if (dcl_mkdir_p(dir)) return dcl_fail(DCL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    static const char *names[3] = {"table.md", "table.csv", "table.json"};
    dcl_status (*fn[3])(dcl_buf *, const dcl_ptable *) = {dcl_ptable_markdown, dcl_ptable_csv, dcl_ptable_json};
    for (int i = 0; i < 3; i++) {
        dcl_buf b = {0};
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        dcl_status s = fn[i](&b, t);
        if (!s) s = dcl_write_file_atomic(path, b.data ? b.data : "", b.len);
        dcl_buf_free(&b);
        if (s) return s;
    }
    return DCL_OK;
}
