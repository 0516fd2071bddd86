/* The report's figures (include/dcl/report.h): ROC curves, training curves,
 * self-similarity histograms, scatter maps, image galleries. */
#include "dcl/report.h"
#include "dcl/eval.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REAL_RGB dcl_plot_palette(0)
#define FAKE_RGB dcl_plot_palette(3)

/* a framed box with a centred message, for a panel that has nothing to show */
static void empty_panel(dcl_image *img, int left, int top, int w, int h, const char *title, const char *msg) {
    dcl_plot_rect_outline(img, left + 20, top + 40, left + w - 20, top + h - 20, dcl_rgb_make(180, 180, 180));
    if (title) dcl_plot_text(img, left + w / 2, top + 10, title, 2, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_BOLD);
    dcl_plot_text(img, left + w / 2, top + h / 2, msg, 2, dcl_rgb_make(110, 110, 110), DCL_TEXT_CENTER | DCL_TEXT_MIDDLE);
}

/* ------------------------------------------------------------------ */
/* ROC                                                                   */
/* ------------------------------------------------------------------ */

dcl_status dcl_fig_roc(dcl_image *out, const char *title, const dcl_score_set *sets, int nsets) {
    memset(out, 0, sizeof *out);
    if (nsets < 1) return dcl_fail(DCL_ERR_ARG, "ROC figure: no score sets");
    dcl_roc *rocs = calloc(nsets, sizeof *rocs);
    dcl_legend_item *leg = calloc(nsets + 1, sizeof *leg);
    char (*names)[160] = calloc(nsets, sizeof *names);
    if (!rocs || !leg || !names) { free(rocs); free(leg); free(names); return dcl_fail(DCL_ERR_NOMEM, "ROC figure"); }
    dcl_status s = DCL_OK;
    for (int i = 0; i < nsets && !s; i++) {
        dcl_metrics m;
        s = dcl_metrics_compute(&m, sets[i].score, sets[i].label, sets[i].n, 0.5);
        if (!s) s = dcl_roc_curve(&rocs[i], sets[i].score, sets[i].label, sets[i].n, 1);
        if (s) { s = dcl_fail_ctx(s, "ROC figure, set '%s'", sets[i].name ? sets[i].name : ""); break; }
        snprintf(names[i], sizeof names[i], "%s (AUC %.4f)", sets[i].name ? sets[i].name : "", m.auc);
        leg[i].label = names[i];
        leg[i].color = dcl_plot_palette(i);
        leg[i].kind = DCL_LEGEND_LINE;
    }
    dcl_axes ax;
    if (!s) s = dcl_plot_canvas(out, 760, 640, DCL_RGB_WHITE);
    if (!s) s = dcl_axes_create(&ax, out, 0, 0, out->w, out->h, -0.01, 1.01, -0.01, 1.01, title ? title : "ROC",
                                "False positive rate (reals called fake)", "True positive rate (fakes caught)");
    if (!s) {
        double d[2] = {0, 1};
        s = dcl_axes_line(&ax, d, d, 2, 1.5, dcl_plot_palette(7), 1, 7);
    }
    for (int i = 0; i < nsets && !s; i++)
        s = dcl_axes_line(&ax, rocs[i].fpr, rocs[i].tpr, (int)rocs[i].n, 2.5, leg[i].color, 0.95, 0);
    if (!s) dcl_axes_legend(&ax, leg, nsets, DCL_CORNER_LOWER_RIGHT);
    for (int i = 0; i < nsets; i++) dcl_roc_free(&rocs[i]);
    free(rocs);
    free(leg);
    free(names);
    if (s) dcl_image_free(out), memset(out, 0, sizeof *out);
    return s;
}

/* ------------------------------------------------------------------ */
/* training log                                                          */
/* ------------------------------------------------------------------ */

void dcl_train_log_free(dcl_train_log *log) {
    double *p[] = {log->step, log->loss, log->ce, log->inter, log->intra, log->epoch, log->val_auc, log->val_acc};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(log, 0, sizeof *log);
}

static double num_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* printf writes non-finite doubles as nan / -nan / inf: a copy of line with
 * such values (after a ':') replaced by null; out holds 2 * strlen + 8 */
static void null_nonfinite(char *out, const char *line) {
    size_t o = 0;
    const char *p = line;
    while (*p) {
        out[o++] = *p;
        if (*p++ != ':') continue;
        while (*p == ' ') out[o++] = *p++;
        const char *t = p;
        if (*t == '-' || *t == '+') t++;
        int len = 0;
        if (!strncasecmp(t, "infinity", 8)) len = 8;
        else if (!strncasecmp(t, "nan", 3) || !strncasecmp(t, "inf", 3)) len = 3;
        if (!len || isalnum((unsigned char)t[len]) || t[len] == '_') continue;
        memcpy(out + o, "null", 4);
        o += 4;
        p = t + len;
    }
    out[o] = 0;
}

dcl_status dcl_train_log_load(dcl_train_log *log, const char *path) {
    memset(log, 0, sizeof *log);
    char *text = NULL;
    size_t len = 0;
    DCL_TRY(dcl_read_file((void **)&text, &len, path, (size_t)1 << 30));
    int cap_s = 0, cap_e = 0;
    dcl_status s = DCL_OK;
    char *line = text;
    while (line && *line && !s) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *buf = malloc(2 * strlen(line) + 8);
        if (!buf) { s = dcl_fail(DCL_ERR_NOMEM, "%s", path); break; }
        null_nonfinite(buf, line);
        char *b = buf;
        while (*b == ' ' || *b == '\t' || *b == '\r') b++;
        if (*b) {
            cJSON *j = cJSON_Parse(b);
            if (!cJSON_IsObject(j)) log->bad_lines++;
            else if (cJSON_GetObjectItemCaseSensitive(j, "epoch_end")) {
                double ep = num_field(j, "epoch_end");
                /* a resumed run repeats epochs: the later line wins */
                while (log->ne > 0 && !(log->epoch[log->ne - 1] < ep)) log->ne--;
                if (log->ne == cap_e) {
                    cap_e = cap_e ? 2 * cap_e : 64;
                    double **arr[] = {&log->epoch, &log->val_auc, &log->val_acc};
                    for (int k = 0; k < 3 && !s; k++) {
                        double *nw = realloc(*arr[k], cap_e * sizeof(double));
                        if (!nw) s = dcl_fail(DCL_ERR_NOMEM, "%s", path);
                        else *arr[k] = nw;
                    }
                }
                if (!s) {
                    log->epoch[log->ne] = ep;
                    log->val_auc[log->ne] = num_field(j, "val_auc");
                    log->val_acc[log->ne] = num_field(j, "val_acc");
                    log->ne++;
                }
            } else if (cJSON_GetObjectItemCaseSensitive(j, "step") && cJSON_GetObjectItemCaseSensitive(j, "loss")) {
                double st = num_field(j, "step");
                while (log->n > 0 && !(log->step[log->n - 1] < st)) log->n--;
                if (log->n == cap_s) {
                    cap_s = cap_s ? 2 * cap_s : 1024;
                    double **arr[] = {&log->step, &log->loss, &log->ce, &log->inter, &log->intra};
                    for (int k = 0; k < 5 && !s; k++) {
                        double *nw = realloc(*arr[k], cap_s * sizeof(double));
                        if (!nw) s = dcl_fail(DCL_ERR_NOMEM, "%s", path);
                        else *arr[k] = nw;
                    }
                }
                if (!s) {
                    log->step[log->n] = st;
                    log->loss[log->n] = num_field(j, "loss");
                    log->ce[log->n] = num_field(j, "ce");
                    log->inter[log->n] = num_field(j, "inter");
                    log->intra[log->n] = num_field(j, "intra");
                    log->n++;
                }
            }
            cJSON_Delete(j);
        }
        free(buf);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (s) dcl_train_log_free(log);
    return s;
}

/* running mean over a centred window of w values (NaNs skipped) */
static void running_mean(double *out, const double *v, int n, int w) {
    int h = w / 2;
    for (int i = 0; i < n; i++) {
        double sum = 0;
        int c = 0;
        for (int j = i - h; j <= i + h; j++) {
            if (j < 0 || j >= n || !isfinite(v[j])) continue;
            sum += v[j];
            c++;
        }
        out[i] = c ? sum / c : NAN;
    }
}

static int any_finite(const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) return 1;
    return 0;
}

static void finite_range(const double *v, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

dcl_status dcl_fig_training(dcl_image *out, const dcl_train_log *log, const char *name,
                            const dcl_train_log *baseline, const char *baseline_name) {
    memset(out, 0, sizeof *out);
    if (log->n == 0 && log->ne == 0) return dcl_fail(DCL_ERR_ARG, "training figure: the log has no step or epoch lines");
    const int PW = 760, PH = 560;
    DCL_TRY(dcl_plot_canvas(out, 2 * PW, PH, DCL_RGB_WHITE));
    dcl_status s = DCL_OK;
    /* left: loss terms */
    const double *series[4] = {log->loss, log->ce, log->inter, log->intra};
    const char *sname[4] = {"total loss", "cross-entropy", "inter (InfoNCE)", "intra"};
    int use[4] = {0}, nuse = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 4; k++) {
        if (log->n == 0 || !any_finite(series[k], log->n)) continue;
        /* a term that is zero throughout was switched off */
        int nz = 0;
        for (int i = 0; i < log->n; i++) nz |= isfinite(series[k][i]) && series[k][i] != 0;
        if (!nz && k > 0) continue;
        use[k] = 1;
        nuse++;
        finite_range(series[k], log->n, &lo, &hi);
    }
    if (nuse == 0) {
        empty_panel(out, 0, 0, PW, PH, "Training losses", "no step lines in log.jsonl");
    } else {
        double x0 = log->step[0], x1 = log->step[log->n - 1];
        if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
        dcl_plot_nice_range(&lo, &hi);
        if (lo < 0 && hi > 0 && lo > -0.05 * hi) lo = 0;
        dcl_axes ax;
        s = dcl_axes_create_ex(&ax, out, 0, 0, PW, PH, x0, x1, lo, hi, "Training losses", "step", "loss", DCL_AXES_XINT);
        double *sm = malloc(log->n * sizeof(double));
        if (!s && !sm) s = dcl_fail(DCL_ERR_NOMEM, "training figure");
        dcl_legend_item leg[4];
        int nl = 0;
        int w = log->n / 50;
        for (int k = 0; k < 4 && !s; k++) {
            if (!use[k]) continue;
            dcl_rgb c = dcl_plot_palette(k);
            if (w >= 2) {
                s = dcl_axes_line(&ax, log->step, series[k], log->n, 1, c, 0.25, 0);
                running_mean(sm, series[k], log->n, w | 1);
                if (!s) s = dcl_axes_line(&ax, log->step, sm, log->n, 2.5, c, 1, 0);
            } else {
                s = dcl_axes_line(&ax, log->step, series[k], log->n, 2, c, 1, 0);
            }
            leg[nl].label = sname[k];
            leg[nl].color = c;
            leg[nl++].kind = DCL_LEGEND_LINE;
        }
        free(sm);
        if (!s) dcl_axes_legend(&ax, leg, nl, DCL_CORNER_UPPER_RIGHT);
    }
    /* right: validation AUC per epoch */
    int have = log->ne > 0 && any_finite(log->val_auc, log->ne);
    int bhave = baseline && baseline->ne > 0 && any_finite(baseline->val_auc, baseline->ne);
    if (!s && !have && !bhave) {
        empty_panel(out, PW, 0, PW, PH, "Validation AUC", "no validation AUC in log.jsonl");
    } else if (!s) {
        double alo = INFINITY, ahi = -INFINITY, emax = 1;
        if (have) { finite_range(log->val_auc, log->ne, &alo, &ahi); emax = fmax(emax, log->epoch[log->ne - 1]); }
        if (bhave) { finite_range(baseline->val_auc, baseline->ne, &alo, &ahi); emax = fmax(emax, baseline->epoch[baseline->ne - 1]); }
        alo -= 0.02;
        ahi += 0.02;
        dcl_plot_nice_range(&alo, &ahi);
        if (ahi > 1 && alo < 1) ahi = fmax(1.0, alo + 0.01) + (ahi > 1.0 ? 0.005 : 0);
        dcl_axes ax;
        s = dcl_axes_create_ex(&ax, out, PW, 0, PW, PH, 0.5, emax + 0.5, alo, ahi, "Validation AUC per epoch", "epoch",
                               "AUC", DCL_AXES_XINT);
        dcl_legend_item leg[2];
        int nl = 0;
        if (!s && have) {
            dcl_rgb c = dcl_plot_palette(0);
            s = dcl_axes_line(&ax, log->epoch, log->val_auc, log->ne, 2.5, c, 1, 0);
            dcl_axes_points(&ax, log->epoch, log->val_auc, log->ne, 4.5, c, 1);
            leg[nl].label = name && *name ? name : "this run";
            leg[nl].color = c;
            leg[nl++].kind = DCL_LEGEND_LINE;
        }
        if (!s && bhave) {
            dcl_rgb c = dcl_plot_palette(1);
            s = dcl_axes_line(&ax, baseline->epoch, baseline->val_auc, baseline->ne, 2.5, c, 1, 8);
            dcl_axes_points(&ax, baseline->epoch, baseline->val_auc, baseline->ne, 4.5, c, 1);
            leg[nl].label = baseline_name && *baseline_name ? baseline_name : "baseline";
            leg[nl].color = c;
            leg[nl++].kind = DCL_LEGEND_LINE;
        }
        if (!s) dcl_axes_legend(&ax, leg, nl, DCL_CORNER_LOWER_RIGHT);
    }
    if (s) dcl_image_free(out), memset(out, 0, sizeof *out);
    return s;
}

/* ------------------------------------------------------------------ */
/* self-similarity histograms                                            */
/* ------------------------------------------------------------------ */

void dcl_self_similarity(double *out, const float *F, int B, int L, int C) {
    double *acc = malloc((size_t)(C > 0 ? C : 1) * sizeof(double));
    for (int b = 0; b < B; b++) {
        if (!acc || L < 1 || C < 1) { out[b] = NAN; continue; }
        for (int c = 0; c < C; c++) acc[c] = 0;
        for (int i = 0; i < L; i++) {
            const float *u = F + ((size_t)b * L + i) * C;
            double nn = 0;
            for (int c = 0; c < C; c++) nn += (double)u[c] * u[c];
            double inv = 1.0 / fmax(sqrt(nn), 1e-12);
            for (int c = 0; c < C; c++) acc[c] += u[c] * inv;
        }
        double t = 0;
        for (int c = 0; c < C; c++) t += acc[c] * acc[c];
        out[b] = t / ((double)L * L);
    }
    free(acc);
}

dcl_status dcl_fig_histograms(dcl_image *out, const dcl_hist_panel *panels, int np, int bins, const char *xlabel) {
    memset(out, 0, sizeof *out);
    if (np < 1 || bins < 1 || bins > 1000) return dcl_fail(DCL_ERR_ARG, "histogram figure: %d panels, %d bins", np, bins);
    double lo = INFINITY, hi = -INFINITY;
    int lines = 0;
    for (int p = 0; p < np; p++) {
        finite_range(panels[p].value, panels[p].n, &lo, &hi);
        if (panels[p].vline && panels[p].nvline > 0) { finite_range(panels[p].vline, panels[p].nvline, &lo, &hi); lines = 1; }
    }
    if (!isfinite(lo)) return dcl_fail(DCL_ERR_ARG, "histogram figure: no finite values");
    double pad = (hi - lo) * (lines ? 0.06 : 0.02); /* threshold lines stay off the frame */
    if (!(pad > 0)) pad = fmax(fabs(lo) * 0.05, 0.01);
    lo -= pad;
    hi += pad;
    const int PW = 700, PH = 520;
    DCL_TRY(dcl_plot_canvas(out, PW * np, PH, DCL_RGB_WHITE));
    double *edges = malloc((bins + 1) * sizeof(double)), *h = malloc(2 * bins * sizeof(double));
    dcl_status s = (edges && h) ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "histogram figure");
    for (int i = 0; i <= bins && !s; i++) edges[i] = lo + (hi - lo) * i / bins;
    double bw = (hi - lo) / bins;
    for (int p = 0; p < np && !s; p++) {
        const dcl_hist_panel *P = &panels[p];
        int cnt[2] = {0, 0};
        for (int k = 0; k < 2 * bins; k++) h[k] = 0;
        for (int i = 0; i < P->n; i++) {
            if (!isfinite(P->value[i])) continue;
            int cls = P->label[i] ? 1 : 0;
            int b = (int)((P->value[i] - lo) / bw);
            if (b < 0) b = 0;
            if (b >= bins) b = bins - 1;
            h[cls * bins + b] += 1;
            cnt[cls]++;
        }
        double ymax = 0;
        for (int cls = 0; cls < 2; cls++)
            for (int b = 0; b < bins; b++) {
                if (cnt[cls]) h[cls * bins + b] /= cnt[cls] * bw;
                if (h[cls * bins + b] > ymax) ymax = h[cls * bins + b];
            }
        if (!(ymax > 0)) ymax = 1;
        double y0 = 0, y1 = ymax * 1.22; /* room for the legend */
        dcl_plot_nice_range(&y0, &y1);
        dcl_axes ax;
        s = dcl_axes_create(&ax, out, p * PW, 0, PW, PH, lo, hi, y0, y1, P->title, xlabel, "density");
        if (s) break;
        dcl_axes_bars(&ax, edges, h, bins, REAL_RGB, 0.45);
        dcl_axes_bars(&ax, edges, h + bins, bins, FAKE_RGB, 0.45);
        char l0[96], l1[96];
        snprintf(l0, sizeof l0, "%s (%d)", P->real_name ? P->real_name : "real", cnt[0]);
        snprintf(l1, sizeof l1, "%s (%d)", P->fake_name ? P->fake_name : "fake", cnt[1]);
        dcl_legend_item leg[2] = {{l0, REAL_RGB, DCL_LEGEND_BOX}, {l1, FAKE_RGB, DCL_LEGEND_BOX}};
        /* the legend goes to the upper corner with less under it (bars, lines) */
        int lw, lh;
        dcl_plot_legend_size(leg, 2, &lw, &lh);
        double span = (double)(lw + 20) / (ax.px1 - ax.px0) * (hi - lo);
        double cover[2] = {0, 0}; /* left, right */
        for (int side = 0; side < 2; side++) {
            double a = side ? hi - span : lo, e = side ? hi : lo + span;
            for (int cls = 0; cls < 2; cls++)
                for (int k = 0; k < bins; k++)
                    if (edges[k + 1] > a && edges[k] < e) cover[side] = fmax(cover[side], h[cls * bins + k] / y1);
            for (int v = 0; v < P->nvline && P->vline; v++)
                if (P->vline[v] > a && P->vline[v] < e) cover[side] += 0.5;
        }
        dcl_corner corner = cover[1] <= cover[0] ? DCL_CORNER_UPPER_RIGHT : DCL_CORNER_UPPER_LEFT;
        for (int v = 0; v < P->nvline && P->vline && !s; v++) {
            double xs[2] = {P->vline[v], P->vline[v]}, ys[2] = {y0, y1};
            s = dcl_axes_line(&ax, xs, ys, 2, 2, dcl_rgb_make(60, 60, 60), 0.9, 6);
            char t[48];
            snprintf(t, sizeof t, "θ=%.2f", P->vline[v]);
            int xl = (int)dcl_axes_px(&ax, P->vline[v]);
            /* label beside the line, on the side with room, at the bottom of the plot */
            int tw = dcl_plot_text_width(t, 2), right = xl + 6 + tw < ax.px1 - 2;
            int tx = right ? xl + 6 : xl - 6 - tw, ty = ax.py1 - 8 - 14 - v * 22; /* staggered upwards */
            dcl_plot_rect(out, tx - 2, ty - 2, tx + tw + 2, ty + 16, DCL_RGB_WHITE, 0.85);
            dcl_plot_text(out, tx, ty, t, 2, dcl_rgb_make(60, 60, 60), DCL_TEXT_LEFT | DCL_TEXT_TOP);
        }
        dcl_axes_legend(&ax, leg, 2, corner);
    }
    free(edges);
    free(h);
    if (s) dcl_image_free(out), memset(out, 0, sizeof *out);
    return s;
}

/* ------------------------------------------------------------------ */
/* scatter maps                                                          */
/* ------------------------------------------------------------------ */

static uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}

typedef struct { uint32_t key; int i; } order_t;
static int cmp_order(const void *a, const void *b) {
    const order_t *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : x->i - y->i;
}

dcl_status dcl_fig_scatter(dcl_image *out, const dcl_scatter_panel *panels, int np, int cols) {
    memset(out, 0, sizeof *out);
    if (np < 1) return dcl_fail(DCL_ERR_ARG, "scatter figure: no panels");
    if (cols < 1) cols = 1;
    if (cols > np) cols = np;
    int rows = (np + cols - 1) / cols;
    /* one legend width for every panel */
    int legw = 0;
    for (int p = 0; p < np; p++) {
        dcl_legend_item it[12];
        int k = panels[p].ncat < 12 ? panels[p].ncat : 12;
        for (int c = 0; c < k; c++) { it[c].label = panels[p].names[c]; it[c].kind = DCL_LEGEND_DOT; }
        int w, h;
        dcl_plot_legend_size(it, k, &w, &h);
        if (w > legw) legw = w;
    }
    const int AW = 600, PH = 560;
    int PW = AW + legw + 16;
    DCL_TRY(dcl_plot_canvas(out, PW * cols, PH * rows, DCL_RGB_WHITE));
    dcl_status s = DCL_OK;
    for (int p = 0; p < np && !s; p++) {
        const dcl_scatter_panel *P = &panels[p];
        int left = (p % cols) * PW, top = (p / cols) * PH;
        if (P->n < 1) { empty_panel(out, left, top, PW, PH, P->title, "no points"); continue; }
        double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
        for (int i = 0; i < P->n; i++) {
            double x = P->xy[2 * i], y = P->xy[2 * i + 1];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x); xhi = fmax(xhi, x); ylo = fmin(ylo, y); yhi = fmax(yhi, y);
        }
        if (!isfinite(xlo)) { empty_panel(out, left, top, PW, PH, P->title, "no finite points"); continue; }
        double mx = (xhi - xlo) * 0.05 + 1e-9, my = (yhi - ylo) * 0.05 + 1e-9;
        xlo -= mx; xhi += mx; ylo -= my; yhi += my;
        /* the same scale on both axes (the plot area is nearly square) */
        double half = fmax(xhi - xlo, yhi - ylo) / 2, cx = (xlo + xhi) / 2, cy = (ylo + yhi) / 2;
        xlo = cx - half; xhi = cx + half; ylo = cy - half; yhi = cy + half;
        dcl_plot_nice_range(&xlo, &xhi);
        dcl_plot_nice_range(&ylo, &yhi);
        dcl_axes ax;
        s = dcl_axes_create(&ax, out, left, top, AW, PH, xlo, xhi, ylo, yhi, P->title, "t-SNE 1", "t-SNE 2");
        if (s) break;
        /* draw in a fixed pseudo-random order so that no class hides another */
        order_t *ord = malloc(P->n * sizeof *ord);
        if (!ord) { s = dcl_fail(DCL_ERR_NOMEM, "scatter figure"); break; }
        for (int i = 0; i < P->n; i++) { ord[i].key = mix32((uint32_t)i * 2654435761U + 17); ord[i].i = i; }
        qsort(ord, P->n, sizeof *ord, cmp_order);
        double r = P->n > 3000 ? 2.0 : P->n > 800 ? 2.8 : 3.8;
        for (int k = 0; k < P->n; k++) {
            int i = ord[k].i;
            double x = P->xy[2 * i], y = P->xy[2 * i + 1];
            int c = P->cat ? P->cat[i] : 0;
            dcl_axes_points(&ax, &x, &y, 1, r, dcl_plot_palette(c), 0.75);
        }
        free(ord);
        dcl_legend_item it[12];
        int k = P->ncat < 12 ? P->ncat : 12;
        for (int c = 0; c < k; c++) {
            it[c].label = P->names[c];
            it[c].color = dcl_plot_palette(c);
            it[c].kind = DCL_LEGEND_DOT;
        }
        dcl_plot_legend(out, left + AW + 4, ax.py0, it, k);
    }
    if (s) dcl_image_free(out), memset(out, 0, sizeof *out);
    return s;
}

/* ------------------------------------------------------------------ */
/* galleries                                                             */
/* ------------------------------------------------------------------ */

/* src scaled to fit a cell x cell box (aspect kept): area averaging down to
 * at most twice the target, then bilinear */
static dcl_status fit_image(dcl_image *dst, const dcl_image *src, int cell) {
    memset(dst, 0, sizeof *dst);
    double sc = (double)cell / (src->w > src->h ? src->w : src->h);
    int tw = (int)lrint(src->w * sc), th = (int)lrint(src->h * sc);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    int f = 1;
    while (src->w / (f + 1) >= 2 * tw && src->h / (f + 1) >= 2 * th) f++;
    dcl_image tmp = {0};
    const dcl_image *from = src;
    if (f > 1) {
        int w = src->w / f, h = src->h / f;
        DCL_TRY(dcl_image_alloc(&tmp, w, h));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int sum = 0;
                    for (int j = 0; j < f; j++)
                        for (int i = 0; i < f; i++) sum += src->data[((size_t)(y * f + j) * src->w + x * f + i) * 3 + c];
                    tmp.data[((size_t)y * w + x) * 3 + c] = (uint8_t)((sum + f * f / 2) / (f * f));
                }
        from = &tmp;
    }
    dcl_status s = dcl_image_resize_bilinear(dst, tw, th, from);
    dcl_image_free(&tmp);
    return s;
}

dcl_status dcl_fig_gallery(dcl_image *out, const char *title, const dcl_gallery_row *rows, int nrows, int cell,
                           int max_cols) {
    memset(out, 0, sizeof *out);
    if (nrows < 1 || cell < 8 || cell > 2048 || max_cols < 1)
        return dcl_fail(DCL_ERR_ARG, "gallery: %d rows, cell %d, %d columns", nrows, cell, max_cols);
    const int pad = 12, gap = 8, ts = 2, th = dcl_plot_text_height(ts), caph = dcl_plot_text_height(1) + 6;
    int any_caption = 0, cols = 1;
    for (int r = 0; r < nrows; r++) {
        if (rows[r].n > cols) cols = rows[r].n;
        if (rows[r].caption) any_caption = 1;
    }
    if (cols > max_cols) cols = max_cols;
    int cellh = cell + (any_caption ? caph : 0);
    int width = 2 * pad + cols * cell + (cols - 1) * gap;
    int tw = title && *title ? dcl_plot_text_width(title, ts) + 2 * pad : 0;
    for (int r = 0; r < nrows; r++) {
        int w = dcl_plot_text_width(rows[r].title, ts) + 2 * pad;
        if (w > width) width = w;
    }
    if (tw > width) width = tw;
    int height = pad + (title && *title ? th + pad : 0);
    for (int r = 0; r < nrows; r++) {
        int lines = rows[r].n > 0 ? (rows[r].n + cols - 1) / cols : 1;
        height += th + 6 + lines * (cellh + gap) + pad;
    }
    DCL_TRY(dcl_plot_canvas(out, width, height, DCL_RGB_WHITE));
    int y = pad;
    if (title && *title) {
        dcl_plot_text(out, width / 2, y, title, ts, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_BOLD);
        y += th + pad;
    }
    dcl_status s = DCL_OK;
    for (int r = 0; r < nrows && !s; r++) {
        dcl_plot_text(out, pad, y, rows[r].title, ts, DCL_RGB_BLACK, DCL_TEXT_LEFT);
        y += th + 6;
        if (rows[r].n <= 0) {
            dcl_plot_rect(out, pad, y, width - pad, y + cellh, dcl_rgb_make(245, 245, 245), 1);
            dcl_plot_text(out, width / 2, y + cellh / 2, "(none)", ts, dcl_rgb_make(120, 120, 120),
                          DCL_TEXT_CENTER | DCL_TEXT_MIDDLE);
            y += cellh + gap + pad;
            continue;
        }
        int lines = (rows[r].n + cols - 1) / cols;
        for (int i = 0; i < rows[r].n && !s; i++) {
            int cx = pad + (i % cols) * (cell + gap), cy = y + (i / cols) * (cellh + gap);
            dcl_image fit;
            s = fit_image(&fit, &rows[r].img[i], cell);
            if (s) break;
            dcl_plot_blit(out, &fit, cx + (cell - fit.w) / 2, cy + (cell - fit.h) / 2);
            dcl_image_free(&fit);
            if (rows[r].caption && rows[r].caption[i]) {
                /* captions are cut to the cell */
                char cap[128];
                snprintf(cap, sizeof cap, "%s", rows[r].caption[i]);
                int maxc = (cell + 1) / 6;
                if ((int)strlen(cap) > maxc && maxc < (int)sizeof cap) cap[maxc] = 0;
                dcl_plot_text(out, cx + cell / 2, cy + cell + 4, cap, 1, dcl_rgb_make(40, 40, 40), DCL_TEXT_CENTER);
            }
        }
        y += lines * (cellh + gap) + pad;
    }
    if (s) dcl_image_free(out), memset(out, 0, sizeof *out);
    return s;
}

void dcl_proto_similarity(double *sim, const float *keys, int n, int L, const float *p) {
    double pn = 0;
    for (int j = 0; j < L; j++) pn += (double)p[j] * p[j];
    pn = sqrt(pn);
    for (int i = 0; i < n; i++) {
        const float *k = keys + (size_t)i * L;
        double dot = 0, kn = 0;
        for (int j = 0; j < L; j++) { dot += (double)k[j] * p[j]; kn += (double)k[j] * k[j]; }
        kn = sqrt(kn);
        sim[i] = (pn > 0 && kn > 0) ? dot / (pn * kn) : NAN;
    }
}
