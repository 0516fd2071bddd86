/* Metrics against scikit-learn goldens (tools/make_metric_goldens.py), the CSV
 * reader, and the `dcl metrics` command. */
#include "check.h"
#include "dcl/eval.h"
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdint.h>
#include <unistd.h>

#define FIX "tests/fixtures/metrics/"
#define TOL 1e-10

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) b = realloc(b, cap *= 2);
        size_t got = fread(b + n, 1, cap - n - 1, f);
        if (!got) break;
        n += got;
    }
    fclose(f);
    b[n] = 0;
    if (len) *len = n;
    return b;
}

static cJSON *load_json(const char *path) {
    char *t = slurp(path, NULL);
    if (!t) { fprintf(stderr, "cannot read %s\n", path); return NULL; }
    cJSON *j = cJSON_Parse(t);
    free(t);
    return j;
}

/* null in the goldens stands for +inf */
static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) { fprintf(stderr, "golden has no key %s\n", key); return NAN; }
    if (cJSON_IsNull(v)) return INFINITY;
    return v->valuedouble;
}

static int same(double a, double b, double tol) {
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= tol;
}

static void check_metrics(const char *what, const dcl_metrics *m, const cJSON *e) {
    CHECK(m->n == (int64_t)jnum(e, "n"), "%s: n %lld vs %g", what, (long long)m->n, jnum(e, "n"));
    CHECK(m->n_real == (int64_t)jnum(e, "n_real"), "%s: n_real %lld", what, (long long)m->n_real);
    CHECK(m->n_fake == (int64_t)jnum(e, "n_fake"), "%s: n_fake %lld", what, (long long)m->n_fake);
    const struct { const char *k; double v; } f[] = {
        {"auc", m->auc}, {"ap", m->ap}, {"eer", m->eer}, {"eer_threshold", m->eer_threshold},
        {"threshold", m->threshold}, {"acc", m->acc}, {"tpr", m->tpr}, {"tnr", m->tnr},
        {"acc_best", m->acc_best}, {"threshold_best", m->threshold_best},
        {"tpr_at_fpr_1pct", m->tpr_at_fpr_1pct}, {"tpr_at_fpr_0_1pct", m->tpr_at_fpr_01pct},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        double want = jnum(e, f[i].k);
        CHECK(same(f[i].v, want, TOL), "%s: %s = %.17g, sklearn/numpy %.17g", what, f[i].k, f[i].v, want);
    }
}

typedef struct {
    int64_t n;
    double *score;
    int *label;
    int64_t *video, *frame;
    int has_video;
} table;

static void table_free(table *t) { free(t->score); free(t->label); free(t->video); free(t->frame); }

static int64_t lookup(char ***names, int64_t *nn, const char *s) {
    for (int64_t i = 0; i < *nn; i++) if (!strcmp((*names)[i], s)) return i;
    *names = realloc(*names, (size_t)(*nn + 1) * sizeof **names);
    (*names)[*nn] = strdup(s);
    return (*nn)++;
}

/* reads a fixture CSV with the library's reader */
static int read_table(table *t, const char *path) {
    memset(t, 0, sizeof *t);
    dcl_csv c;
    if (dcl_csv_open(&c, path) != DCL_OK) { fprintf(stderr, "%s\n", dcl_last_error()); return -1; }
    if (dcl_csv_next(&c) != DCL_OK || c.nfield == 0) { dcl_csv_close(&c); return -1; }
    int cl = -1, cs = -1, cv = -1, cf = -1, nh = c.nfield;
    for (int j = 0; j < c.nfield; j++) {
        if (!strcmp(c.field[j], "label")) cl = j;
        if (!strcmp(c.field[j], "score")) cs = j;
        if (!strcmp(c.field[j], "video")) cv = j;
        if (!strcmp(c.field[j], "frame")) cf = j;
    }
    char **vn = NULL, **fn = NULL;
    int64_t nv = 0, nf = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (dcl_csv_next(&c) != DCL_OK) { fprintf(stderr, "%s\n", dcl_last_error()); rc = -1; break; }
        if (c.nfield == 0) break;
        if (c.nfield != nh) { fprintf(stderr, "%s: line %lld: %d fields\n", path, (long long)c.line, c.nfield); rc = -1; break; }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 256;
            t->score = realloc(t->score, cap * sizeof *t->score);
            t->label = realloc(t->label, cap * sizeof *t->label);
            t->video = realloc(t->video, cap * sizeof *t->video);
            t->frame = realloc(t->frame, cap * sizeof *t->frame);
        }
        t->score[t->n] = strtod(c.field[cs], NULL);
        t->label[t->n] = atoi(c.field[cl]);
        t->video[t->n] = cv >= 0 ? lookup(&vn, &nv, c.field[cv]) : 0;
        t->frame[t->n] = cf >= 0 ? lookup(&fn, &nf, c.field[cf]) : 0;
        t->n++;
    }
    t->has_video = cv >= 0;
    for (int64_t i = 0; i < nv; i++) free(vn[i]);
    for (int64_t i = 0; i < nf; i++) free(fn[i]);
    free(vn); free(fn);
    dcl_csv_close(&c);
    return rc;
}

static void check_roc(const char *what, const dcl_roc *r, const cJSON *e) {
    const cJSON *fpr = cJSON_GetObjectItem(e, "fpr"), *tpr = cJSON_GetObjectItem(e, "tpr"),
                *thr = cJSON_GetObjectItem(e, "thresholds");
    int m = cJSON_GetArraySize(fpr);
    CHECK(r->n == m, "%s: %lld ROC vertices, sklearn %d", what, (long long)r->n, m);
    if (r->n != m) return;
    int bad = 0;
    for (int i = 0; i < m; i++) {
        const cJSON *t = cJSON_GetArrayItem(thr, i);
        double want_t = cJSON_IsNull(t) ? INFINITY : t->valuedouble;
        if (!same(r->fpr[i], cJSON_GetArrayItem(fpr, i)->valuedouble, 1e-15) ||
            !same(r->tpr[i], cJSON_GetArrayItem(tpr, i)->valuedouble, 1e-15) || r->thresholds[i] != want_t) {
            if (!bad) fprintf(stderr, "%s: vertex %d differs\n", what, i);
            bad = 1;
        }
    }
    CHECK(!bad, "%s: ROC vertices match sklearn", what);
}

static void test_goldens(void) {
    cJSON *g = load_json(FIX "expected.json");
    CHECK(g != NULL, "expected.json parses");
    if (!g) return;
    const cJSON *cases = cJSON_GetObjectItem(g, "cases"), *cs;
    int ncases = 0;
    cJSON_ArrayForEach(cs, cases) {
        char path[512], what[256];
        snprintf(path, sizeof path, FIX "%s", cJSON_GetObjectItem(cs, "file")->valuestring);
        table t;
        int rc = read_table(&t, path);
        CHECK(rc == 0, "%s: read", path);
        if (rc) { table_free(&t); continue; }
        ncases++;
        dcl_metrics m;
        snprintf(what, sizeof what, "%s frame", cs->string);
        CHECK_OK(dcl_metrics_compute(&m, t.score, t.label, t.n, 0.5));
        check_metrics(what, &m, cJSON_GetObjectItem(cs, "frame"));
        if (t.has_video) {
            snprintf(what, sizeof what, "%s video mean", cs->string);
            CHECK_OK(dcl_metrics_video(&m, t.score, t.label, t.video, NULL, t.n, DCL_VIDEO_MEAN, 0.5));
            check_metrics(what, &m, cJSON_GetObjectItem(cs, "video_mean"));
            snprintf(what, sizeof what, "%s video max-mean", cs->string);
            CHECK_OK(dcl_metrics_video(&m, t.score, t.label, t.video, t.frame, t.n, DCL_VIDEO_MAX_MEAN, 0.5));
            check_metrics(what, &m, cJSON_GetObjectItem(cs, "video_max_mean"));
        }
        const cJSON *roc = cJSON_GetObjectItem(cs, "roc");
        if (roc) {
            dcl_roc r;
            snprintf(what, sizeof what, "%s roc", cs->string);
            CHECK_OK(dcl_roc_curve(&r, t.score, t.label, t.n, 0));
            check_roc(what, &r, roc);
            double want = jnum(cJSON_GetObjectItem(cs, "frame"), "tpr_at_fpr_1pct");
            CHECK(dcl_roc_tpr_at_fpr(&r, 0.01) == want, "%s: tpr@fpr1%%", what);
            dcl_roc_free(&r);
            snprintf(what, sizeof what, "%s roc dropped", cs->string);
            CHECK_OK(dcl_roc_curve(&r, t.score, t.label, t.n, 1));
            check_roc(what, &r, cJSON_GetObjectItem(cs, "roc_dropped"));
            dcl_roc_free(&r);
        }
        table_free(&t);
    }
    CHECK(ncases >= 10, "ran %d golden cases", ncases);
    cJSON_Delete(g);
}

/* float scores: values with one decimal stay distinct, so ranking metrics agree */
static void test_f32_and_order(void) {
    table t;
    if (read_table(&t, FIX "case_ties1.csv")) { CHECK(0, "read case_ties1"); return; }
    float *sf = malloc(t.n * sizeof *sf);
    for (int64_t i = 0; i < t.n; i++) sf[i] = (float)t.score[i];
    dcl_metrics a, b;
    CHECK_OK(dcl_metrics_compute(&a, t.score, t.label, t.n, 0.5));
    CHECK_OK(dcl_metrics_compute_f32(&b, sf, t.label, t.n, 0.5));
    CHECK(a.auc == b.auc && a.ap == b.ap && a.eer == b.eer && a.acc == b.acc, "f32 ranking metrics agree");
    free(sf);

    /* video scores do not depend on row order */
    int64_t n = t.n, nv1, nv2;
    double *vs1 = malloc(n * sizeof(double)), *vs2 = malloc(n * sizeof(double));
    int *vl1 = malloc(n * sizeof(int)), *vl2 = malloc(n * sizeof(int));
    int64_t *vi1 = malloc(n * sizeof(int64_t)), *vi2 = malloc(n * sizeof(int64_t));
    CHECK_OK(dcl_video_scores(vs1, vl1, vi1, &nv1, t.score, t.label, t.video, t.frame, n, DCL_VIDEO_MAX_MEAN));
    dcl_rng r;
    dcl_rng_seed(&r, 3);
    for (int64_t i = n - 1; i > 0; i--) { /* shuffle all columns together */
        int64_t j = dcl_rng_below(&r, (uint32_t)(i + 1));
        double s = t.score[i]; t.score[i] = t.score[j]; t.score[j] = s;
        int l = t.label[i]; t.label[i] = t.label[j]; t.label[j] = l;
        int64_t v = t.video[i]; t.video[i] = t.video[j]; t.video[j] = v;
        v = t.frame[i]; t.frame[i] = t.frame[j]; t.frame[j] = v;
    }
    CHECK_OK(dcl_video_scores(vs2, vl2, vi2, &nv2, t.score, t.label, t.video, t.frame, n, DCL_VIDEO_MAX_MEAN));
    CHECK(nv1 == nv2 && !memcmp(vs1, vs2, nv1 * sizeof(double)) && !memcmp(vi1, vi2, nv1 * sizeof(int64_t)),
          "video scores are independent of row order");
    /* a hand example: max over faces then mean over frames */
    double s3[] = {0.2, 0.9, 0.4, 0.1, 0.3};
    int l3[] = {1, 1, 1, 0, 0};
    int64_t v3[] = {7, 7, 7, 2, 2}, f3[] = {0, 0, 1, 0, 1};
    CHECK_OK(dcl_video_scores(vs1, vl1, vi1, &nv1, s3, l3, v3, f3, 5, DCL_VIDEO_MAX_MEAN));
    CHECK(nv1 == 2 && vi1[0] == 2 && vi1[1] == 7 && vl1[1] == 1, "two videos in id order");
    CHECK(vs1[1] == (0.4 + 0.9) / 2 && vs1[0] == (0.1 + 0.3) / 2, "max-mean %g %g", vs1[1], vs1[0]);
    CHECK_OK(dcl_video_scores(vs1, vl1, vi1, &nv1, s3, l3, v3, f3, 5, DCL_VIDEO_MEAN));
    CHECK(fabs(vs1[1] - 0.5) < 1e-15, "mean %g", vs1[1]);
    free(vs1); free(vs2); free(vl1); free(vl2); free(vi1); free(vi2);
    table_free(&t);
}

static void test_errors(void) {
    dcl_metrics m;
    double s[] = {0.1, 0.2, NAN, 0.4};
    int y[] = {0, 1, 0, 1};
    CHECK(dcl_metrics_compute(&m, s, y, 4, 0.5) == DCL_ERR_ARG, "NaN score rejected");
    CHECK(strstr(dcl_last_error(), "row 2") && strstr(dcl_last_error(), "NaN"), "message: %s", dcl_last_error());
    s[2] = INFINITY;
    CHECK(dcl_metrics_compute(&m, s, y, 4, 0.5) == DCL_ERR_ARG && strstr(dcl_last_error(), "infinite"),
          "inf score rejected: %s", dcl_last_error());
    s[2] = 0.3;
    int one[] = {1, 1, 1, 1};
    CHECK(dcl_metrics_compute(&m, s, one, 4, 0.5) == DCL_ERR_ARG && strstr(dcl_last_error(), "one class"),
          "one class rejected: %s", dcl_last_error());
    dcl_roc r;
    CHECK(dcl_roc_curve(&r, s, one, 4, 0) == DCL_ERR_ARG, "ROC of one class rejected");
    CHECK(dcl_metrics_compute(&m, s, y, 0, 0.5) == DCL_ERR_ARG && strstr(dcl_last_error(), "no samples"),
          "empty input rejected: %s", dcl_last_error());
    int bad[] = {0, 1, 2, 1};
    CHECK(dcl_metrics_compute(&m, s, bad, 4, 0.5) == DCL_ERR_ARG && strstr(dcl_last_error(), "row 2"),
          "label 2 rejected: %s", dcl_last_error());
    int64_t vid[] = {5, 5, 6, 6}, fr[] = {0, 1, 0, 1};
    int mixed[] = {0, 1, 1, 1};
    CHECK(dcl_metrics_video(&m, s, mixed, vid, fr, 4, DCL_VIDEO_MEAN, 0.5) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "video 5"),
          "mixed labels in a video rejected: %s", dcl_last_error());
    CHECK(dcl_metrics_video(&m, s, y, vid, NULL, 4, DCL_VIDEO_MAX_MEAN, 0.5) == DCL_ERR_ARG,
          "max-mean without frames rejected");
    int vy[] = {0, 0, 0, 0};
    CHECK(dcl_metrics_video(&m, s, vy, vid, fr, 4, DCL_VIDEO_MEAN, 0.5) == DCL_ERR_ARG &&
              strstr(dcl_last_error(), "video level"),
          "one class at video level: %s", dcl_last_error());
    dcl_video_agg a;
    CHECK(dcl_video_agg_parse("max-mean", &a) == 0 && a == DCL_VIDEO_MAX_MEAN, "parse max-mean");
    CHECK(dcl_video_agg_parse("median", &a) == -1, "unknown aggregation");
}

static void test_csv(void) {
    const char *text = "\xEF\xBB\xBF" "a,b,c\r\n"
                       "1,\"x, \"\"y\"\"\",\r\n"
                       "\n"
                       "\"multi\nline\",2,3\n"
                       "last,,\"\"";
    dcl_csv c;
    CHECK_OK(dcl_csv_open_mem(&c, text, strlen(text), "mem"));
    CHECK_OK(dcl_csv_next(&c));
    CHECK(c.nfield == 3 && !strcmp(c.field[0], "a") && !strcmp(c.field[2], "c") && c.line == 1, "header");
    CHECK_OK(dcl_csv_next(&c));
    CHECK(c.nfield == 3 && !strcmp(c.field[0], "1") && !strcmp(c.field[1], "x, \"y\"") && !strcmp(c.field[2], "") &&
              c.line == 2,
          "quoted comma and escaped quotes");
    CHECK_OK(dcl_csv_next(&c));
    CHECK(c.nfield == 3 && !strcmp(c.field[0], "multi\nline") && !strcmp(c.field[2], "3") && c.line == 4,
          "newline inside quotes, blank line skipped (line %lld)", (long long)c.line);
    CHECK_OK(dcl_csv_next(&c));
    CHECK(c.nfield == 3 && !strcmp(c.field[0], "last") && !strcmp(c.field[1], "") && !strcmp(c.field[2], "") &&
              c.line == 6,
          "no final newline (line %lld)", (long long)c.line);
    CHECK_OK(dcl_csv_next(&c));
    CHECK(c.nfield == 0, "end of input");
    dcl_csv_close(&c);

    const char *bad[] = {"a,b\n1,\"open\n", "a,b\n1,x\"y\n", "a,b\n\"q\"z,1\n"};
    const char *want[] = {"unterminated", "stray quote", "after a closing quote"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dcl_csv_open_mem(&c, bad[i], strlen(bad[i]), "bad.csv"));
        dcl_status s = dcl_csv_next(&c);
        if (s == DCL_OK) s = dcl_csv_next(&c);
        CHECK(s == DCL_ERR_FORMAT && strstr(dcl_last_error(), want[i]) && strstr(dcl_last_error(), "bad.csv: line 2"),
              "malformed csv %d: %s", i, dcl_last_error());
        dcl_csv_close(&c);
    }
    const char nul[] = "a,b\n1,\0x\n";
    CHECK_OK(dcl_csv_open_mem(&c, nul, sizeof nul - 1, "nul.csv"));
    dcl_csv_next(&c);
    CHECK(dcl_csv_next(&c) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "NUL"), "NUL byte: %s", dcl_last_error());
    dcl_csv_close(&c);
    CHECK(dcl_csv_open(&c, "/nonexistent/file.csv") == DCL_ERR_IO, "missing file");
}

/* ------------------------------------------------------------- the command */

static char g_dcl[1024];
static char g_tmp[256];

/* runs the command line; returns its exit status, stdout and stderr in buffers */
static int run(const char *args, const char *input, char **out, char **err) {
    char cmd[4096], fo[300], fe[300], fi[300];
    snprintf(fo, sizeof fo, "%s/out", g_tmp);
    snprintf(fe, sizeof fe, "%s/err", g_tmp);
    snprintf(fi, sizeof fi, "%s/in.csv", g_tmp);
    if (input) { FILE *f = fopen(fi, "wb"); fwrite(input, 1, strlen(input), f); fclose(f); }
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", g_dcl, args, fo, fe);
    int st = system(cmd);
    *out = slurp(fo, NULL);
    *err = slurp(fe, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int one_line(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n == 1;
}

static void expect_fail(const char *input, const char *args, int code, const char *needle) {
    char *o, *e, a[600];
    snprintf(a, sizeof a, "%s %s/in.csv", args, g_tmp);
    int rc = run(a, input, &o, &e);
    CHECK(rc == code && strstr(e, needle) && strstr(e, "dcl metrics:") && one_line(e),
          "input %.40s...: exit %d (want %d), stderr '%s' should name '%s' on one line", input, rc, code, e, needle);
    free(o); free(e);
}

static void test_cli(const char *argv0) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", argv0);
    snprintf(g_dcl, sizeof g_dcl, "%s/../dcl", dirname(tmp));
    if (access(g_dcl, X_OK) != 0) {
        fprintf(stderr, "note: %s not built; skipping the command-line checks\n", g_dcl);
        return;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/dcl_metrics_XXXXXX");
    if (!mkdtemp(g_tmp)) { CHECK(0, "mkdtemp"); return; }
    cJSON *g = load_json(FIX "expected.json");
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    const char *names[] = {"case_ties2", "case_quoted", "case_alltied"};
    for (int i = 0; i < 3; i++) {
        const cJSON *cs = cJSON_GetObjectItem(cases, names[i]);
        int video = cJSON_GetObjectItem(cs, "video_mean") != NULL;
        for (int agg = 0; agg < (video ? 2 : 1); agg++) {
            char a[512], *o, *e;
            snprintf(a, sizeof a, "metrics %s " FIX "%s.csv", agg ? "--video-agg max-mean" : "", names[i]);
            int rc = run(a, NULL, &o, &e);
            CHECK(rc == 0, "%s: exit %d: %s", a, rc, e);
            cJSON *j = cJSON_Parse(o);
            CHECK(j != NULL, "%s: JSON output parses: %s", a, o);
            if (j) {
                const cJSON *fr = cJSON_GetObjectItem(j, "frame"), *ef = cJSON_GetObjectItem(cs, "frame");
                const char *keys[] = {"auc", "eer", "ap", "acc", "acc_best", "threshold_best", "n", "n_real", "n_fake",
                                      "eer_threshold", "tpr_at_fpr_1pct"};
                for (int k = 0; k < 11; k++)
                    CHECK(same(jnum(fr, keys[k]), jnum(ef, keys[k]), TOL), "%s: frame %s", a, keys[k]);
                const cJSON *vv = cJSON_GetObjectItem(j, "video");
                CHECK((vv != NULL) == video, "%s: video section present iff video column", a);
                if (vv && video) {
                    const cJSON *ev = cJSON_GetObjectItem(cs, agg ? "video_max_mean" : "video_mean");
                    for (int k = 0; k < 11; k++)
                        CHECK(same(jnum(vv, keys[k]), jnum(ev, keys[k]), TOL), "%s: video %s", a, keys[k]);
                    const cJSON *ag = cJSON_GetObjectItem(j, "video_agg");
                    CHECK(ag && !strcmp(ag->valuestring, agg ? "max-mean" : "mean"), "%s: video_agg", a);
                }
                cJSON_Delete(j);
            }
            free(o); free(e);
        }
    }
    /* stdin, markdown, ROC output */
    {
        char a[600], *o, *e;
        snprintf(a, sizeof a, "metrics --format md --roc %s/roc.csv - < " FIX "case_ties1.csv", g_tmp);
        int rc = run(a, NULL, &o, &e);
        CHECK(rc == 0 && strstr(o, "| frame | ") && strstr(o, "| video (mean) | ") && strstr(o, "| level |"),
              "markdown from stdin: exit %d: %s %s", rc, o, e);
        free(o); free(e);
        snprintf(a, sizeof a, "%s/roc.csv", g_tmp);
        char *roc = slurp(a, NULL);
        int lines = 0;
        for (char *p = roc; p && *p; p++) lines += *p == '\n';
        const cJSON *er = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cases, "case_ties1"), "roc"), "fpr");
        CHECK(roc && !strncmp(roc, "fpr,tpr,threshold\n0,0,inf\n", 26) && lines == cJSON_GetArraySize(er) + 1,
              "ROC file has a header and one line per vertex (%d lines)", lines);
        free(roc);
    }
    /* errors: one line on stderr, exit 1 for bad data, 2 for bad usage */
    expect_fail("label,score\n1,0.5\n0,abc\n", "metrics", 1, "line 3: score 'abc' is not a number");
    expect_fail("label,score\n1,0.5\n2,0.1\n", "metrics", 1, "line 3: label '2'");
    expect_fail("label,score\n1,0.2\n1,0.3\n", "metrics", 1, "only one class");
    expect_fail("label,score\n1,nan\n0,0.1\n", "metrics", 1, "line 2: score 'nan' is not finite");
    expect_fail("label,score\n1,0.2\n0,0.1,7\n", "metrics", 1, "line 3: expected 2 fields");
    expect_fail("label,score\n", "metrics", 1, "no data rows");
    expect_fail("", "metrics", 1, "empty file");
    expect_fail("label,prob\n1,0.2\n", "metrics", 1, "no 'score' column");
    expect_fail("score,label,score\n", "metrics", 1, "appears twice");
    expect_fail("video,label,score\na,1,0.2\nb,0,0.1\na,0,0.3\n", "metrics", 1,
                "video 'a' has both real and fake rows (lines 2 and 4)");
    expect_fail("label,score\n1,\"0.2\n0,0.1\n", "metrics", 1, "unterminated quoted field");
    expect_fail("video,label,score\na,1,0.2\n", "metrics --video-agg max-mean", 1, "needs a 'frame' column");
    expect_fail("label,score\n1,0.2\n0,0.1\n", "metrics --format xml", 2, "--format xml");
    expect_fail("label,score\n1,0.2\n0,0.1\n", "metrics --threshold nan", 2, "--threshold");
    expect_fail("label,score\n1,0.2\n0,0.1\n", "metrics --bogus 1", 2, "unknown option");
    {
        char *o, *e;
        int rc = run("metrics /nonexistent/x.csv", NULL, &o, &e);
        CHECK(rc == 1 && strstr(e, "cannot open"), "missing file: exit %d: %s", rc, e);
        free(o); free(e);
        /* quoted header names, spaces around numbers, extra columns */
        char a[400], p[300];
        snprintf(a, sizeof a, "metrics %s/in.csv", g_tmp);
        snprintf(p, sizeof p, "%s/in.csv", g_tmp);
        FILE *f = fopen(p, "w");
        fputs("\"id\",\"Score\", LABEL \nx, 0.9 ,1\ny,0.1, 0\nz,0.4,1\n", f);
        fclose(f);
        rc = run(a, NULL, &o, &e);
        cJSON *j = cJSON_Parse(o);
        const cJSON *fr = j ? cJSON_GetObjectItem(j, "frame") : NULL;
        CHECK(rc == 0 && fr && jnum(fr, "auc") == 1.0 && jnum(fr, "n") == 3 && jnum(fr, "acc") == 2.0 / 3,
              "lenient header and spaces: exit %d: %s %s", rc, o, e);
        cJSON_Delete(j);
        free(o); free(e);
        snprintf(a, sizeof a, "metrics --threshold 0.4 %s/in.csv", g_tmp);
        rc = run(a, NULL, &o, &e);
        j = cJSON_Parse(o);
        fr = j ? cJSON_GetObjectItem(j, "frame") : NULL;
        CHECK(rc == 0 && fr && jnum(fr, "acc") == 1.0 && jnum(fr, "threshold") == 0.4,
              "--threshold 0.4 (score >= T is fake): %s %s", o, e);
        cJSON_Delete(j);
        free(o); free(e);
    }
    cJSON_Delete(g);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
}

int main(int argc, char **argv) {
    (void)argc;
    test_goldens();
    test_f32_and_order();
    test_errors();
    test_csv();
    test_cli(argv[0]);
    CHECK_DONE();
}
