/* dcl metrics: AUC / EER / AP / ACC from a CSV of labels and scores, at frame
 * level and (when a video column is present) at video level. */
#include "cli/cli.h"
#include "dcl/eval.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl metrics [--format json|md] [--threshold T] [--video-agg mean|max-mean]\n"
            "                   [--roc OUT.csv] [--video-roc OUT.csv] FILE.csv\n"
            "Reads a CSV whose header names the columns label (1 = fake, 0 = real) and score\n"
            "(probability of fake), optionally video, frame and face; any order, other columns\n"
            "ignored, quoted fields allowed. FILE '-' reads standard input.\n"
            "Prints AUC, EER, AP, accuracy at T (default 0.5; score >= T means fake), the best\n"
            "accuracy and its threshold, and TPR at FPR 1%% / 0.1%%, for frames and, with a video\n"
            "column, for videos: mean of the rows' scores (mean), or per frame the maximum over\n"
            "its faces, then the mean over frames (max-mean, needs a frame column).\n"
            "--roc / --video-roc write the ROC curve as fpr,tpr,threshold rows.\n");
}

/* ---- string interning: open addressing, FNV-1a ---- */
typedef struct {
    const char **key;   /* by id */
    int64_t *slot;      /* id + 1, 0 = empty */
    int64_t n, cap, nslot;
} intern_t;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void intern_free(intern_t *t) { free(t->key); free(t->slot); memset(t, 0, sizeof *t); }

static int intern_grow(intern_t *t) {
    int64_t ns = t->nslot ? t->nslot * 2 : 1024;
    int64_t *slot = calloc((size_t)ns, sizeof *slot);
    if (!slot) return -1;
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = fnv1a(t->key[i]) & (uint64_t)(ns - 1);
        while (slot[h]) h = (h + 1) & (uint64_t)(ns - 1);
        slot[h] = i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = ns;
    return 0;
}

/* id of s (kept by pointer), or -1 when out of memory */
static int64_t intern(intern_t *t, const char *s) {
    if ((t->n + 1) * 2 > t->nslot && intern_grow(t)) return -1;
    uint64_t mask = (uint64_t)(t->nslot - 1), h = fnv1a(s) & mask;
    while (t->slot[h]) {
        int64_t id = t->slot[h] - 1;
        if (!strcmp(t->key[id], s)) return id;
        h = (h + 1) & mask;
    }
    if (t->n == t->cap) {
        int64_t nc = t->cap ? t->cap * 2 : 1024;
        const char **k = realloc(t->key, (size_t)nc * sizeof *k);
        if (!k) return -1;
        t->key = k;
        t->cap = nc;
    }
    t->key[t->n] = s;
    t->slot[h] = t->n + 1;
    return t->n++;
}

/* ---- rows ---- */
typedef struct {
    double *score;
    int *label;
    int64_t *video, *frame, *line;
    int64_t n, cap;
} rows_t;

static void rows_free(rows_t *r) {
    free(r->score); free(r->label); free(r->video); free(r->frame); free(r->line);
    memset(r, 0, sizeof *r);
}

static int rows_push(rows_t *r, double s, int y, int64_t v, int64_t f, int64_t line) {
    if (r->n == r->cap) {
        int64_t nc = r->cap ? r->cap * 2 : 4096;
        double *a = realloc(r->score, (size_t)nc * sizeof *a); if (!a) return -1; r->score = a;
        int *b = realloc(r->label, (size_t)nc * sizeof *b); if (!b) return -1; r->label = b;
        int64_t *c = realloc(r->video, (size_t)nc * sizeof *c); if (!c) return -1; r->video = c;
        int64_t *d = realloc(r->frame, (size_t)nc * sizeof *d); if (!d) return -1; r->frame = d;
        int64_t *e = realloc(r->line, (size_t)nc * sizeof *e); if (!e) return -1; r->line = e;
        r->cap = nc;
    }
    r->score[r->n] = s; r->label[r->n] = y; r->video[r->n] = v; r->frame[r->n] = f; r->line[r->n] = line;
    r->n++;
    return 0;
}

/* trims in place */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

static int parse_number(const char *s, double *out) {
    if (!*s) return -1;
    char *end;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

enum { COL_LABEL, COL_SCORE, COL_VIDEO, COL_FRAME, COL_FACE, NCOL };
static const char *col_names[NCOL] = {"label", "score", "video", "frame", "face"};

static void print_md_row(const char *level, const dcl_metrics *m) {
    char thr[32];
    if (isinf(m->threshold_best)) snprintf(thr, sizeof thr, "inf");
    else snprintf(thr, sizeof thr, "%.4g", m->threshold_best);
    printf("| %s | %lld | %lld | %lld | %.4f | %.4f | %.4f | %.4f | %.4f | %s | %.4f |\n", level,
           (long long)m->n, (long long)m->n_real, (long long)m->n_fake, m->auc, m->eer, m->ap, m->acc,
           m->acc_best, thr, m->tpr_at_fpr_1pct);
}

int cmd_metrics(int argc, char **argv) {
    const char *path = NULL, *format = "json", *roc_path = NULL, *vroc_path = NULL;
    double threshold = 0.5;
    dcl_video_agg agg = DCL_VIDEO_MEAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (a[0] == '-' && a[1] && !v) { fprintf(stderr, "dcl metrics: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        if (!strcmp(a, "--format")) {
            format = argv[++i];
            if (strcmp(format, "json") && strcmp(format, "md")) {
                fprintf(stderr, "dcl metrics: --format %s: expected json or md\n", format);
                return DCL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--threshold")) {
            if (parse_number(argv[++i], &threshold) || !isfinite(threshold)) {
                fprintf(stderr, "dcl metrics: --threshold %s: expected a finite number\n", argv[i]);
                return DCL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--video-agg")) {
            if (dcl_video_agg_parse(argv[++i], &agg)) {
                fprintf(stderr, "dcl metrics: --video-agg %s: expected mean or max-mean\n", argv[i]);
                return DCL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--roc")) roc_path = argv[++i];
        else if (!strcmp(a, "--video-roc")) vroc_path = argv[++i];
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "dcl metrics: unknown option %s (see dcl metrics --help)\n", a); return DCL_EXIT_USAGE; }
        else if (!path) path = a;
        else { fprintf(stderr, "dcl metrics: only one FILE is accepted (got %s and %s)\n", path, a); return DCL_EXIT_USAGE; }
    }
    if (!path) { usage(stderr); return DCL_EXIT_USAGE; }

    dcl_csv csv;
    dcl_status s = dcl_csv_open(&csv, path);
    if (s) return cli_fail("metrics", s);
    const char *name = csv.name;
    int rc = DCL_EXIT_FAIL;
    rows_t rows = {0};
    intern_t videos = {0}, frames = {0};
    int *vlab = NULL;
    int64_t *vline = NULL;
    dcl_roc roc = {0};

    s = dcl_csv_next(&csv);
    if (s) { cli_fail("metrics", s); goto done; }
    if (csv.nfield == 0) { fprintf(stderr, "dcl metrics: %s: empty file (expected a header with label and score columns)\n", name); goto done; }
    int col[NCOL], nhead = csv.nfield;
    for (int k = 0; k < NCOL; k++) col[k] = -1;
    for (int j = 0; j < nhead; j++) {
        const char *h = trim(csv.field[j]);
        for (int k = 0; k < NCOL; k++)
            if (!strcasecmp(h, col_names[k])) {
                if (col[k] >= 0) {
                    fprintf(stderr, "dcl metrics: %s: line %lld: column '%s' appears twice in the header\n",
                            name, (long long)csv.line, col_names[k]);
                    goto done;
                }
                col[k] = j;
            }
    }
    for (int k = 0; k < 2; k++)
        if (col[k] < 0) {
            fprintf(stderr, "dcl metrics: %s: the header has no '%s' column (expected label and score; found:",
                    name, col_names[k]);
            for (int j = 0; j < nhead; j++) fprintf(stderr, "%s '%s'", j ? "," : "", csv.field[j]);
            fprintf(stderr, ")\n");
            goto done;
        }
    const int has_video = col[COL_VIDEO] >= 0, has_frame = col[COL_FRAME] >= 0;
    if (has_video && agg == DCL_VIDEO_MAX_MEAN && !has_frame) {
        fprintf(stderr, "dcl metrics: %s: --video-agg max-mean needs a 'frame' column\n", name);
        goto done;
    }
    if (vroc_path && !has_video) {
        fprintf(stderr, "dcl metrics: %s: --video-roc needs a 'video' column\n", name);
        goto done;
    }

    for (;;) {
        s = dcl_csv_next(&csv);
        if (s) { cli_fail("metrics", s); goto done; }
        if (csv.nfield == 0) break;
        const long long ln = (long long)csv.line;
        if (csv.nfield != nhead) {
            fprintf(stderr, "dcl metrics: %s: line %lld: expected %d fields like the header, found %d\n",
                    name, ln, nhead, csv.nfield);
            goto done;
        }
        double lv, sv;
        char *ls = trim(csv.field[col[COL_LABEL]]), *ss = trim(csv.field[col[COL_SCORE]]);
        if (parse_number(ls, &lv) || (lv != 0 && lv != 1)) {
            fprintf(stderr, "dcl metrics: %s: line %lld: label '%s' is not 0 (real) or 1 (fake)\n", name, ln, ls);
            goto done;
        }
        if (parse_number(ss, &sv)) {
            fprintf(stderr, "dcl metrics: %s: line %lld: score '%s' is not a number\n", name, ln, ss);
            goto done;
        }
        if (!isfinite(sv)) {
            fprintf(stderr, "dcl metrics: %s: line %lld: score '%s' is not finite\n", name, ln, ss);
            goto done;
        }
        int64_t vid = -1, fid = -1;
        if (has_video) {
            const char *vs = csv.field[col[COL_VIDEO]];
            if (!*vs) { fprintf(stderr, "dcl metrics: %s: line %lld: empty video id\n", name, ln); goto done; }
            vid = intern(&videos, vs);
            if (vid < 0) { fprintf(stderr, "dcl metrics: out of memory\n"); goto done; }
        }
        if (has_frame) {
            const char *fs = csv.field[col[COL_FRAME]];
            if (!*fs) { fprintf(stderr, "dcl metrics: %s: line %lld: empty frame id\n", name, ln); goto done; }
            fid = intern(&frames, fs);
            if (fid < 0) { fprintf(stderr, "dcl metrics: out of memory\n"); goto done; }
        }
        if (rows_push(&rows, sv, (int)lv, vid, fid, csv.line)) { fprintf(stderr, "dcl metrics: out of memory\n"); goto done; }
    }
    if (rows.n == 0) { fprintf(stderr, "dcl metrics: %s: no data rows after the header\n", name); goto done; }

    if (has_video) { /* each video must carry one label; name it when not */
        vlab = malloc((size_t)videos.n * sizeof *vlab);
        vline = malloc((size_t)videos.n * sizeof *vline);
        if (!vlab || !vline) { fprintf(stderr, "dcl metrics: out of memory\n"); goto done; }
        for (int64_t v = 0; v < videos.n; v++) vlab[v] = -1;
        for (int64_t i = 0; i < rows.n; i++) {
            int64_t v = rows.video[i];
            if (vlab[v] < 0) { vlab[v] = rows.label[i]; vline[v] = rows.line[i]; }
            else if (vlab[v] != rows.label[i]) {
                fprintf(stderr, "dcl metrics: %s: video '%s' has both real and fake rows (lines %lld and %lld)\n",
                        name, videos.key[v], (long long)vline[v], (long long)rows.line[i]);
                goto done;
            }
        }
    }

    dcl_metrics fm, vm;
    s = dcl_metrics_compute(&fm, rows.score, rows.label, rows.n, threshold);
    if (s) { fprintf(stderr, "dcl metrics: %s: %s\n", name, dcl_last_error()); goto done; }
    if (has_video) {
        s = dcl_metrics_video(&vm, rows.score, rows.label, rows.video, has_frame ? rows.frame : NULL,
                              rows.n, agg, threshold);
        if (s) { fprintf(stderr, "dcl metrics: %s: %s\n", name, dcl_last_error()); goto done; }
    }
    if (roc_path) {
        s = dcl_roc_curve(&roc, rows.score, rows.label, rows.n, 0);
        if (!s) s = dcl_roc_write_csv(&roc, roc_path);
        dcl_roc_free(&roc);
        if (s) { cli_fail("metrics", s); goto done; }
    }
    if (vroc_path) {
        double *vs = malloc((size_t)rows.n * sizeof *vs);
        int *vl = malloc((size_t)rows.n * sizeof *vl);
        int64_t *vi = malloc((size_t)rows.n * sizeof *vi), nv = 0;
        s = (vs && vl && vi) ? dcl_video_scores(vs, vl, vi, &nv, rows.score, rows.label, rows.video,
                                                has_frame ? rows.frame : NULL, rows.n, agg)
                             : dcl_fail(DCL_ERR_NOMEM, "out of memory");
        if (!s) s = dcl_roc_curve(&roc, vs, vl, nv, 0);
        if (!s) s = dcl_roc_write_csv(&roc, vroc_path);
        dcl_roc_free(&roc);
        free(vs); free(vl); free(vi);
        if (s) { cli_fail("metrics", s); goto done; }
    }

    if (!strcmp(format, "json")) {
        printf("{\n  \"frame\": ");
        dcl_metrics_write_json(stdout, &fm);
        if (has_video) {
            printf(",\n  \"video\": ");
            dcl_metrics_write_json(stdout, &vm);
            printf(",\n  \"video_agg\": \"%s\"", dcl_video_agg_name(agg));
        }
        printf("\n}\n");
    } else {
        printf("| level | n | real | fake | AUC | EER | AP | ACC@%g | best ACC | best thr | TPR@FPR1%% |\n", threshold);
        printf("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        print_md_row("frame", &fm);
        if (has_video) {
            char lvl[32];
            snprintf(lvl, sizeof lvl, "video (%s)", dcl_video_agg_name(agg));
            print_md_row(lvl, &vm);
        }
    }
    if (fflush(stdout) != 0) { fprintf(stderr, "dcl metrics: cannot write to standard output\n"); goto done; }
    rc = DCL_EXIT_OK;
done:
    free(vlab); free(vline);
    rows_free(&rows);
    intern_free(&videos);
    intern_free(&frames);
    dcl_csv_close(&csv);
    return rc;
}
