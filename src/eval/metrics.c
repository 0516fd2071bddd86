/* Binary detection metrics with scikit-learn's tie handling; see dcl/eval.h. */
#include "dcl/eval.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { double s; int y; } scored;

static int cmp_desc(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x < y) - (x > y);
}

static dcl_status check_inputs(const double *scores, const int *labels, int64_t n) {
    if (n <= 0) return dcl_fail(DCL_ERR_ARG, "metrics: no samples (n = %lld)", (long long)n);
    if (!scores || !labels) return dcl_fail(DCL_ERR_ARG, "metrics: NULL scores or labels");
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] != 0 && labels[i] != 1)
            return dcl_fail(DCL_ERR_ARG, "metrics: label of row %lld is %d; expected 0 (real) or 1 (fake)",
                            (long long)i, labels[i]);
        if (!isfinite(scores[i]))
            return dcl_fail(DCL_ERR_ARG, "metrics: score of row %lld is %s; scores must be finite",
                            (long long)i, isnan(scores[i]) ? "NaN" : "infinite");
    }
    return DCL_OK;
}

/* Distinct thresholds in decreasing order with cumulative counts of fakes
 * (tps) and reals (fps) scoring >= each threshold (sklearn _binary_clf_curve). */
typedef struct { int64_t m; double *thr; int64_t *tps, *fps; } clf_curve;

static void curve_free(clf_curve *c) { free(c->thr); free(c->tps); free(c->fps); memset(c, 0, sizeof *c); }

static dcl_status clf_curve_build(clf_curve *c, const double *scores, const int *labels, int64_t n) {
    memset(c, 0, sizeof *c);
    DCL_TRY(check_inputs(scores, labels, n));
    scored *v = malloc((size_t)n * sizeof *v);
    c->thr = malloc((size_t)n * sizeof *c->thr);
    c->tps = malloc((size_t)n * sizeof *c->tps);
    c->fps = malloc((size_t)n * sizeof *c->fps);
    if (!v || !c->thr || !c->tps || !c->fps) {
        free(v); curve_free(c);
        return dcl_fail(DCL_ERR_NOMEM, "metrics: out of memory for %lld samples", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) { v[i].s = scores[i] == 0 ? 0.0 : scores[i]; v[i].y = labels[i]; }
    qsort(v, (size_t)n, sizeof *v, cmp_desc);
    int64_t tp = 0, fp = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i].y) tp++; else fp++;
        if (i == n - 1 || v[i + 1].s != v[i].s) {
            c->thr[m] = v[i].s; c->tps[m] = tp; c->fps[m] = fp; m++;
        }
    }
    c->m = m;
    free(v);
    return DCL_OK;
}

static dcl_status one_class_error(int64_t n_real, int64_t n_fake) {
    return dcl_fail(DCL_ERR_ARG, "metrics: only one class present (%lld real, %lld fake): AUC and EER are undefined",
                    (long long)n_real, (long long)n_fake);
}

static double tpr_at(const clf_curve *c, int64_t P, int64_t N, double max_fpr) {
    double best = 0.0; /* the (0,0) vertex */
    for (int64_t k = 0; k < c->m; k++) {
        if ((double)c->fps[k] / (double)N <= max_fpr) {
            double t = (double)c->tps[k] / (double)P;
            if (t > best) best = t;
        }
    }
    return best;
}

dcl_status dcl_metrics_compute(dcl_metrics *out, const double *scores, const int *labels,
                               int64_t n, double threshold) {
    if (!out) return dcl_fail(DCL_ERR_ARG, "metrics: NULL output");
    memset(out, 0, sizeof *out);
    if (isnan(threshold)) return dcl_fail(DCL_ERR_ARG, "metrics: threshold is NaN");
    clf_curve c;
    DCL_TRY(clf_curve_build(&c, scores, labels, n));
    const int64_t m = c.m, P = c.tps[m - 1], N = c.fps[m - 1];
    out->n = n; out->n_fake = P; out->n_real = N;
    if (P == 0 || N == 0) { curve_free(&c); return one_class_error(N, P); }

    /* AUC: trapezoids in integer arithmetic, one rounding at the end */
    __int128 num = 0;
    int64_t ptp = 0, pfp = 0;
    for (int64_t k = 0; k < m; k++) {
        num += (__int128)(c.fps[k] - pfp) * (c.tps[k] + ptp);
        ptp = c.tps[k]; pfp = c.fps[k];
    }
    out->auc = (double)((long double)num / ((long double)2 * (long double)P * (long double)N));

    /* AP: step sum over distinct thresholds */
    double ap = 0.0;
    ptp = 0;
    for (int64_t k = 0; k < m; k++) {
        double prec = (double)c.tps[k] / (double)(c.tps[k] + c.fps[k]);
        ap += ((double)(c.tps[k] - ptp) / (double)P) * prec;
        ptp = c.tps[k];
    }
    out->ap = ap;

    /* EER: G = P*N*(1 - tpr - fpr) = P*N - N*tps - P*fps, exact in integers */
    {
        __int128 gprev = (__int128)P * N; /* at (0,0) */
        int64_t kprev = -1;
        for (int64_t k = 0; k < m; k++) {
            __int128 g = (__int128)P * N - (__int128)N * c.tps[k] - (__int128)P * c.fps[k];
            if (g <= 0) {
                double f0 = kprev < 0 ? 0.0 : (double)c.fps[kprev], f1 = (double)c.fps[k];
                double t = (double)((long double)gprev / (long double)(gprev - g));
                out->eer = (f0 + t * (f1 - f0)) / (double)N;
                if (g == 0) out->eer = (double)c.fps[k] / (double)N;
                __int128 ag = g < 0 ? -g : g;
                if (gprev <= ag) out->eer_threshold = kprev < 0 ? INFINITY : c.thr[kprev];
                else out->eer_threshold = c.thr[k];
                break;
            }
            gprev = g; kprev = k;
        }
    }

    /* accuracy at the given threshold */
    int64_t tp = 0, tn = 0;
    for (int64_t i = 0; i < n; i++) {
        int pred = scores[i] >= threshold;
        if (labels[i]) tp += pred; else tn += !pred;
    }
    out->threshold = threshold;
    out->acc = (double)(tp + tn) / (double)n;
    out->tpr = (double)tp / (double)P;
    out->tnr = (double)tn / (double)N;

    /* best accuracy: "everything real" first, then thresholds high to low */
    int64_t best = N;
    double bthr = INFINITY;
    for (int64_t k = 0; k < m; k++) {
        int64_t correct = c.tps[k] + (N - c.fps[k]);
        if (correct > best) { best = correct; bthr = c.thr[k]; }
    }
    out->acc_best = (double)best / (double)n;
    out->threshold_best = bthr;

    out->tpr_at_fpr_1pct = tpr_at(&c, P, N, 0.01);
    out->tpr_at_fpr_01pct = tpr_at(&c, P, N, 0.001);
    curve_free(&c);
    return DCL_OK;
}

dcl_status dcl_metrics_compute_f32(dcl_metrics *out, const float *scores, const int *labels,
                                   int64_t n, double threshold) {
    if (n <= 0) return dcl_fail(DCL_ERR_ARG, "metrics: no samples (n = %lld)", (long long)n);
    if (!scores) return dcl_fail(DCL_ERR_ARG, "metrics: NULL scores");
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "metrics: out of memory for %lld samples", (long long)n);
    for (int64_t i = 0; i < n; i++) s[i] = scores[i];
    dcl_status st = dcl_metrics_compute(out, s, labels, n, threshold);
    free(s);
    return st;
}

/* ----------------------------------------------------------------------- ROC */

dcl_status dcl_roc_curve(dcl_roc *out, const double *scores, const int *labels, int64_t n,
                         int drop_intermediate) {
    if (!out) return dcl_fail(DCL_ERR_ARG, "roc: NULL output");
    memset(out, 0, sizeof *out);
    clf_curve c;
    DCL_TRY(clf_curve_build(&c, scores, labels, n));
    const int64_t m = c.m, P = c.tps[m - 1], N = c.fps[m - 1];
    if (P == 0 || N == 0) { curve_free(&c); return one_class_error(N, P); }
    out->fpr = malloc((size_t)(m + 1) * sizeof(double));
    out->tpr = malloc((size_t)(m + 1) * sizeof(double));
    out->thresholds = malloc((size_t)(m + 1) * sizeof(double));
    if (!out->fpr || !out->tpr || !out->thresholds) {
        curve_free(&c); dcl_roc_free(out);
        return dcl_fail(DCL_ERR_NOMEM, "roc: out of memory");
    }
    out->fpr[0] = 0; out->tpr[0] = 0; out->thresholds[0] = INFINITY;
    int64_t j = 1;
    for (int64_t k = 0; k < m; k++) {
        if (drop_intermediate && m > 2 && k > 0 && k < m - 1) {
            /* keep only corners: a second difference of fps or tps is non-zero */
            int64_t dfp = c.fps[k + 1] - 2 * c.fps[k] + c.fps[k - 1];
            int64_t dtp = c.tps[k + 1] - 2 * c.tps[k] + c.tps[k - 1];
            if (dfp == 0 && dtp == 0) continue;
        }
        out->fpr[j] = (double)c.fps[k] / (double)N;
        out->tpr[j] = (double)c.tps[k] / (double)P;
        out->thresholds[j] = c.thr[k];
        j++;
    }
    out->n = j;
    curve_free(&c);
    return DCL_OK;
}

void dcl_roc_free(dcl_roc *r) {
    if (!r) return;
    free(r->fpr); free(r->tpr); free(r->thresholds);
    memset(r, 0, sizeof *r);
}

double dcl_roc_tpr_at_fpr(const dcl_roc *r, double max_fpr) {
    double best = 0.0;
    for (int64_t k = 0; k < r->n; k++)
        if (r->fpr[k] <= max_fpr && r->tpr[k] > best) best = r->tpr[k];
    return best;
}

/* shortest decimal that reads back to exactly x */
static void fmt_double(char *buf, size_t n, double x) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

dcl_status dcl_roc_write_csv(const dcl_roc *r, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return dcl_fail(DCL_ERR_IO, "%s: cannot open for writing", path);
    fprintf(f, "fpr,tpr,threshold\n");
    char a[40], b[40], c[40];
    for (int64_t k = 0; k < r->n; k++) {
        fmt_double(a, sizeof a, r->fpr[k]);
        fmt_double(b, sizeof b, r->tpr[k]);
        if (isinf(r->thresholds[k])) snprintf(c, sizeof c, "%s", r->thresholds[k] > 0 ? "inf" : "-inf");
        else fmt_double(c, sizeof c, r->thresholds[k]);
        fprintf(f, "%s,%s,%s\n", a, b, c);
    }
    if (fclose(f) != 0) return dcl_fail(DCL_ERR_IO, "%s: write failed", path);
    return DCL_OK;
}

/* --------------------------------------------------------------- video level */

const char *dcl_video_agg_name(dcl_video_agg a) {
    return a == DCL_VIDEO_MAX_MEAN ? "max-mean" : "mean";
}

int dcl_video_agg_parse(const char *s, dcl_video_agg *out) {
    if (!strcmp(s, "mean")) { *out = DCL_VIDEO_MEAN; return 0; }
    if (!strcmp(s, "max-mean")) { *out = DCL_VIDEO_MAX_MEAN; return 0; }
    return -1;
}

typedef struct { int64_t video, frame; double s; int64_t row; } vrow;

static int cmp_vrow(const void *a, const void *b) {
    const vrow *x = a, *y = b;
    if (x->video != y->video) return x->video < y->video ? -1 : 1;
    if (x->frame != y->frame) return x->frame < y->frame ? -1 : 1;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

dcl_status dcl_video_scores(double *vscore, int *vlabel, int64_t *vid, int64_t *n_videos,
                            const double *scores, const int *labels, const int64_t *video,
                            const int64_t *frame, int64_t n, dcl_video_agg agg) {
    if (!vscore || !vlabel || !vid || !n_videos || !video)
        return dcl_fail(DCL_ERR_ARG, "video metrics: NULL argument");
    *n_videos = 0;
    if (agg != DCL_VIDEO_MEAN && agg != DCL_VIDEO_MAX_MEAN)
        return dcl_fail(DCL_ERR_ARG, "video metrics: unknown aggregation %d", (int)agg);
    if (agg == DCL_VIDEO_MAX_MEAN && !frame)
        return dcl_fail(DCL_ERR_ARG, "video metrics: max-mean aggregation needs frame ids");
    DCL_TRY(check_inputs(scores, labels, n));
    vrow *r = malloc((size_t)n * sizeof *r);
    double *tmp = malloc((size_t)n * sizeof *tmp);
    if (!r || !tmp) {
        free(r); free(tmp);
        return dcl_fail(DCL_ERR_NOMEM, "video metrics: out of memory for %lld rows", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        r[i].video = video[i];
        r[i].frame = (agg == DCL_VIDEO_MAX_MEAN) ? frame[i] : 0;
        r[i].s = scores[i] == 0 ? 0.0 : scores[i];
        r[i].row = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_vrow);
    int64_t nv = 0;
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b < n && r[b].video == r[a].video) b++;
        int lab = labels[r[a].row];
        for (int64_t i = a + 1; i < b; i++)
            if (labels[r[i].row] != lab) {
                int64_t r0 = r[a].row, r1 = r[i].row;
                if (r0 > r1) { int64_t t = r0; r0 = r1; r1 = t; }
                free(r); free(tmp);
                return dcl_fail(DCL_ERR_FORMAT, "video %lld: rows %lld and %lld have different labels",
                                (long long)video[r0], (long long)r0, (long long)r1);
            }
        int64_t cnt = 0;
        if (agg == DCL_VIDEO_MEAN) {
            for (int64_t i = a; i < b; i++) tmp[cnt++] = r[i].s; /* already ascending */
        } else {
            for (int64_t i = a; i < b; i++)
                if (i == b - 1 || r[i + 1].frame != r[i].frame) tmp[cnt++] = r[i].s; /* frame max */
            qsort(tmp, (size_t)cnt, sizeof *tmp, cmp_double);
        }
        double sum = 0.0;
        for (int64_t i = 0; i < cnt; i++) sum += tmp[i];
        vscore[nv] = sum / (double)cnt;
        vlabel[nv] = lab;
        vid[nv] = r[a].video;
        nv++;
        a = b;
    }
    free(r); free(tmp);
    *n_videos = nv;
    return DCL_OK;
}

dcl_status dcl_metrics_video(dcl_metrics *out, const double *scores, const int *labels,
                             const int64_t *video, const int64_t *frame, int64_t n,
                             dcl_video_agg agg, double threshold) {
    if (!out) return dcl_fail(DCL_ERR_ARG, "video metrics: NULL output");
    memset(out, 0, sizeof *out);
    if (n <= 0) return dcl_fail(DCL_ERR_ARG, "video metrics: no samples (n = %lld)", (long long)n);
    double *vs = malloc((size_t)n * sizeof *vs);
    int *vl = malloc((size_t)n * sizeof *vl);
    int64_t *vi = malloc((size_t)n * sizeof *vi);
    dcl_status st;
    if (!vs || !vl || !vi) st = dcl_fail(DCL_ERR_NOMEM, "video metrics: out of memory for %lld rows", (long long)n);
    else {
        int64_t nv = 0;
        st = dcl_video_scores(vs, vl, vi, &nv, scores, labels, video, frame, n, agg);
        if (st == DCL_OK) {
            st = dcl_metrics_compute(out, vs, vl, nv, threshold);
            if (st != DCL_OK) dcl_fail_ctx(st, "video level");
        }
    }
    free(vs); free(vl); free(vi);
    return st;
}

/* ----------------------------------------------------------------------- JSON */

static void json_num(FILE *f, double x) {
    char b[40];
    if (!isfinite(x)) { fputs("null", f); return; }
    fmt_double(b, sizeof b, x);
    fputs(b, f);
}

void dcl_metrics_write_json(FILE *f, const dcl_metrics *m) {
    fprintf(f, "{\"n\": %lld, \"n_real\": %lld, \"n_fake\": %lld", (long long)m->n,
            (long long)m->n_real, (long long)m->n_fake);
    const struct { const char *k; double v; } kv[] = {
        {"auc", m->auc}, {"eer", m->eer}, {"eer_threshold", m->eer_threshold}, {"ap", m->ap},
        {"threshold", m->threshold}, {"acc", m->acc}, {"tpr", m->tpr}, {"tnr", m->tnr},
        {"acc_best", m->acc_best}, {"threshold_best", m->threshold_best},
        {"tpr_at_fpr_1pct", m->tpr_at_fpr_1pct}, {"tpr_at_fpr_0_1pct", m->tpr_at_fpr_01pct},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        fprintf(f, ", \"%s\": ", kv[i].k);
        json_num(f, kv[i].v);
    }
    fputc('}', f);
}
