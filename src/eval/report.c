/* `dcl report`: one self-contained HTML page for a run (docs/REPORT.md). */
#include "dcl/report.h"
#include "dcl/cache.h"
#include "dcl/eval.h"
#include "dcl/loader.h"
#include "dcl/modelfile.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void dcl_report_default_opts(dcl_report_opts *o) {
    memset(o, 0, sizeof *o);
    o->split = "test";
    o->max_images = 1000;
    o->gradcam_per_class = 4;
    o->gallery_per_row = 8;
    o->theta_low = 0.3;
    o->theta_high = 0.7;
    o->batch = 16;
    o->workers = 0;   /* auto */
    o->device = "cpu";
    o->tsne_iters = 1000;
}

/* ------------------------------------------------------------------ */
/* text helpers                                                          */
/* ------------------------------------------------------------------ */

dcl_status dcl_base64_append(dcl_buf *b, const void *data, size_t len) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    char q[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len) v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < len ? tab[v & 63] : '=';
        DCL_TRY(dcl_buf_append(b, q, 4));
    }
    if (len == 0) DCL_TRY(dcl_buf_append(b, "", 0));
    return DCL_OK;
}

dcl_status dcl_png_data_uri(dcl_buf *b, const dcl_image *img) {
    uint8_t *png = NULL;
    size_t n = 0;
    DCL_TRY(dcl_image_encode_png_mem(&png, &n, img));
    dcl_status s = dcl_buf_puts(b, "data:image/png;base64,");
    if (!s) s = dcl_base64_append(b, png, n);
    free(png);
    return s;
}

dcl_status dcl_html_escape(dcl_buf *b, const char *text) {
    if (!text) return dcl_buf_append(b, "", 0);
    const char *run = text;
    for (const char *p = text;; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (!rep && *p) continue;
        DCL_TRY(dcl_buf_append(b, run, (size_t)(p - run)));
        if (!*p) break;
        DCL_TRY(dcl_buf_puts(b, rep));
        run = p + 1;
    }
    return DCL_OK;
}

/* inline Markdown: `code`, **bold**; everything else escaped */
static dcl_status md_inline(dcl_buf *b, const char *s, size_t n) {
    char *t = malloc(n + 1);
    if (!t) return dcl_fail(DCL_ERR_NOMEM, "markdown");
    dcl_status st = DCL_OK;
    size_t i = 0;
    while (i < n && !st) {
        if (s[i] == '`') {
            const char *e = memchr(s + i + 1, '`', n - i - 1);
            if (e) {
                size_t k = (size_t)(e - (s + i + 1));
                memcpy(t, s + i + 1, k);
                t[k] = 0;
                st = dcl_buf_puts(b, "<code>");
                if (!st) st = dcl_html_escape(b, t);
                if (!st) st = dcl_buf_puts(b, "</code>");
                i += k + 2;
                continue;
            }
        }
        if (s[i] == '*' && i + 1 < n && s[i + 1] == '*') {
            size_t j = i + 2;
            while (j + 1 < n && !(s[j] == '*' && s[j + 1] == '*')) j++;
            if (j + 1 < n && j > i + 2) {
                st = dcl_buf_puts(b, "<strong>");
                if (!st) st = md_inline(b, s + i + 2, j - i - 2);
                if (!st) st = dcl_buf_puts(b, "</strong>");
                i = j + 2;
                continue;
            }
        }
        /* a run of ordinary characters */
        size_t j = i + 1;
        while (j < n && s[j] != '`' && s[j] != '*') j++;
        memcpy(t, s + i, j - i);
        t[j - i] = 0;
        st = dcl_html_escape(b, t);
        i = j;
    }
    free(t);
    return st;
}

static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* splits a pipe-table row into cells (leading/trailing pipes dropped, "\|"
 * is a literal pipe); cells are trimmed copies in *cells (free each) */
static int md_cells(const char *line, char ***cells) {
    const char *p = skip_ws(line);
    if (*p == '|') p++;
    int n = 0, cap = 8;
    char **c = malloc(cap * sizeof *c);
    if (!c) return -1;
    size_t len = strlen(p);
    char *cur = malloc(len + 1);
    if (!cur) { free(c); return -1; }
    size_t k = 0;
    int closed = 0;
    for (size_t i = 0;; i++) {
        char ch = p[i];
        if (ch == '\\' && p[i + 1] == '|') { cur[k++] = '|'; i++; continue; }
        if (ch == '|' || ch == 0) {
            cur[k] = 0;
            /* trim */
            char *a = cur;
            while (*a == ' ' || *a == '\t') a++;
            char *e = a + strlen(a);
            while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
            if (ch == 0 && closed && !*a) break; /* nothing after the last pipe */
            if (n == cap) {
                char **nc = realloc(c, 2 * cap * sizeof *nc);
                if (!nc) break;
                c = nc;
                cap *= 2;
            }
            c[n++] = strdup(a);
            k = 0;
            closed = ch == '|';
            if (ch == 0) break;
            continue;
        }
        cur[k++] = ch;
        closed = 0;
    }
    free(cur);
    *cells = c;
    return n;
}

static void free_cells(char **c, int n) {
    for (int i = 0; i < n; i++) free(c[i]);
    free(c);
}

static int is_sep_cell(const char *c) {
    if (*c == ':') c++;
    int dashes = 0;
    while (*c == '-') { c++; dashes++; }
    if (*c == ':') c++;
    return dashes > 0 && *c == 0;
}

static dcl_status md_table(dcl_buf *b, char **lines, int nl) {
    char **hdr = NULL;
    int nh = md_cells(lines[0], &hdr);
    if (nh < 0) return dcl_fail(DCL_ERR_NOMEM, "markdown");
    int start = 0, has_head = 0;
    char align[64] = {0};
    if (nl >= 2) {
        char **sep = NULL;
        int ns = md_cells(lines[1], &sep);
        int ok = ns > 0;
        for (int i = 0; i < ns && ok; i++) ok = is_sep_cell(sep[i]);
        if (ok) {
            has_head = 1;
            for (int i = 0; i < ns && i < 64; i++) {
                size_t l = strlen(sep[i]);
                int left = sep[i][0] == ':', right = l > 0 && sep[i][l - 1] == ':';
                align[i] = left && right ? 'c' : right ? 'r' : left ? 'l' : 0;
            }
        }
        if (ns >= 0) free_cells(sep, ns);
    }
    dcl_status s = dcl_buf_puts(b, "<table class=\"md\">\n");
    if (has_head) {
        s = s ? s : dcl_buf_puts(b, "<thead><tr>");
        for (int i = 0; i < nh && !s; i++) {
            s = dcl_buf_puts(b, "<th>");
            if (!s) s = md_inline(b, hdr[i], strlen(hdr[i]));
            if (!s) s = dcl_buf_puts(b, "</th>");
        }
        if (!s) s = dcl_buf_puts(b, "</tr></thead>\n");
        start = 2;
    } else {
        start = 0;
    }
    free_cells(hdr, nh);
    if (!s) s = dcl_buf_puts(b, "<tbody>\n");
    for (int r = start; r < nl && !s; r++) {
        char **c = NULL;
        int nc = md_cells(lines[r], &c);
        if (nc < 0) return dcl_fail(DCL_ERR_NOMEM, "markdown");
        s = dcl_buf_puts(b, "<tr>");
        for (int i = 0; i < nc && !s; i++) {
            char a = i < 64 ? align[i] : 0;
            s = dcl_buf_puts(b, a == 'r' ? "<td class=\"r\">" : a == 'c' ? "<td class=\"c\">" : "<td>");
            if (!s) s = md_inline(b, c[i], strlen(c[i]));
            if (!s) s = dcl_buf_puts(b, "</td>");
        }
        if (!s) s = dcl_buf_puts(b, "</tr>\n");
        free_cells(c, nc);
    }
    if (!s) s = dcl_buf_puts(b, "</tbody></table>\n");
    return s;
}

dcl_status dcl_markdown_to_html(dcl_buf *b, const char *md) {
    char *text = strdup(md ? md : "");
    if (!text) return dcl_fail(DCL_ERR_NOMEM, "markdown");
    int nl = 0, cap = 64;
    char **lines = malloc(cap * sizeof *lines);
    if (!lines) { free(text); return dcl_fail(DCL_ERR_NOMEM, "markdown"); }
    for (char *p = text; p;) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[l - 1] = 0;
        if (nl == cap) {
            char **n2 = realloc(lines, 2 * cap * sizeof *n2);
            if (!n2) { free(lines); free(text); return dcl_fail(DCL_ERR_NOMEM, "markdown"); }
            lines = n2;
            cap *= 2;
        }
        lines[nl++] = p;
        p = e ? e + 1 : NULL;
    }
    dcl_status s = DCL_OK;
    int i = 0;
    while (i < nl && !s) {
        const char *l = skip_ws(lines[i]);
        if (!*l) { i++; continue; }
        if (*l == '#') {
            int lev = 0;
            while (l[lev] == '#') lev++;
            if (lev <= 6 && (l[lev] == ' ' || l[lev] == 0)) {
                int h = lev + 3 > 6 ? 6 : lev + 3; /* below the page's own h2 / h3 */
                const char *t = skip_ws(l + lev);
                s = dcl_buf_printf(b, "<h%d>", h);
                if (!s) s = md_inline(b, t, strlen(t));
                if (!s) s = dcl_buf_printf(b, "</h%d>\n", h);
                i++;
                continue;
            }
        }
        if (*l == '|') {
            int j = i;
            while (j < nl && *skip_ws(lines[j]) == '|') j++;
            s = md_table(b, lines + i, j - i);
            i = j;
            continue;
        }
        if ((l[0] == '-' || l[0] == '*') && l[1] == ' ') {
            s = dcl_buf_puts(b, "<ul>\n");
            while (i < nl && !s) {
                const char *m = skip_ws(lines[i]);
                if (!((m[0] == '-' || m[0] == '*') && m[1] == ' ')) break;
                s = dcl_buf_puts(b, "<li>");
                if (!s) s = md_inline(b, m + 2, strlen(m + 2));
                if (!s) s = dcl_buf_puts(b, "</li>\n");
                i++;
            }
            if (!s) s = dcl_buf_puts(b, "</ul>\n");
            continue;
        }
        /* paragraph: up to a blank line or another block */
        s = dcl_buf_puts(b, "<p>");
        int first = 1;
        while (i < nl && !s) {
            const char *m = skip_ws(lines[i]);
            /* the first line is known to start a paragraph */
            if (!first && (!*m || *m == '|' || *m == '#' || ((m[0] == '-' || m[0] == '*') && m[1] == ' '))) break;
            if (!first) s = dcl_buf_puts(b, " ");
            if (!s) s = md_inline(b, m, strlen(m));
            first = 0;
            i++;
        }
        if (!s) s = dcl_buf_puts(b, "</p>\n");
    }
    free(lines);
    free(text);
    return s;
}

/* ------------------------------------------------------------------ */
/* files                                                                 */
/* ------------------------------------------------------------------ */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *base_name(const char *p, char *buf, size_t n) {
    snprintf(buf, n, "%s", p);
    size_t l = strlen(buf);
    while (l > 1 && buf[l - 1] == '/') buf[--l] = 0;
    const char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static dcl_status strlist_add(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, nc * sizeof *v);
        if (!v) return dcl_fail(DCL_ERR_NOMEM, "file list");
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n] = strdup(s);
    if (!l->v[l->n]) return dcl_fail(DCL_ERR_NOMEM, "file list");
    l->n++;
    return DCL_OK;
}
static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* files below root (depth <= 3, hidden entries skipped) whose name is one of
 * metrics.json, table.md, or ends in .csv; paths relative to root */
static dcl_status scan_results(strlist *out, const char *root, const char *rel, int depth) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return DCL_OK;
    struct dirent *e;
    dcl_status s = DCL_OK;
    strlist sub = {0};
    while ((e = readdir(d)) && !s) {
        if (e->d_name[0] == '.') continue;
        char r[4096], full[8192];
        snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r);
        if (is_dir(full)) {
            if (depth < 3) s = strlist_add(&sub, r);
            continue;
        }
        size_t l = strlen(e->d_name);
        if (!strcmp(e->d_name, "metrics.json") || !strcmp(e->d_name, "table.md") ||
            (l > 4 && !strcmp(e->d_name + l - 4, ".csv")))
            s = strlist_add(out, r);
    }
    closedir(d);
    if (sub.n) qsort(sub.v, sub.n, sizeof *sub.v, cmp_str);
    for (int i = 0; i < sub.n && !s; i++) s = scan_results(out, root, sub.v[i], depth + 1);
    strlist_free(&sub);
    return s;
}

/* ------------------------------------------------------------------ */
/* html pieces                                                           */
/* ------------------------------------------------------------------ */

static const char *g_css =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;"
    "padding:0 16px;color:#222;line-height:1.45}\n"
    "h1{font-size:1.7em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}\n"
    "h3{margin-top:1.5em}.meta{color:#666;margin-top:0}\n"
    "table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}\n"
    "th{background:#f3f3f3}td.r,td.num{text-align:right;font-variant-numeric:tabular-nums}td.c{text-align:center}\n"
    "figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}\n"
    "figcaption{color:#444;font-size:.93em;margin-top:6px;max-width:1000px}\n"
    "pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:10px;overflow-x:auto;font-size:.88em}\n"
    ".note{color:#8a5300;background:#fff8e6;border-left:4px solid #f0b400;padding:6px 10px}\n"
    "nav a{margin-right:14px}code{background:#f3f3f3;padding:0 3px}\n";

static dcl_status h_text(dcl_buf *b, const char *tag, const char *text) {
    DCL_TRY(dcl_buf_printf(b, "<%s>", tag));
    DCL_TRY(dcl_html_escape(b, text));
    const char *sp = strchr(tag, ' ');
    return dcl_buf_printf(b, "</%.*s>\n", sp ? (int)(sp - tag) : (int)strlen(tag), tag);
}

static dcl_status h_note(dcl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dcl_status h_note(dcl_buf *b, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return h_text(b, "p class=\"note\"", msg);
}

/* <figure> with the image inline and an escaped caption */
static dcl_status h_figure(dcl_buf *b, const dcl_image *img, const char *alt, const char *caption) {
    DCL_TRY(dcl_buf_puts(b, "<figure><img alt=\""));
    DCL_TRY(dcl_html_escape(b, alt));
    DCL_TRY(dcl_buf_printf(b, "\" width=\"%d\" height=\"%d\" src=\"", img->w, img->h));
    DCL_TRY(dcl_png_data_uri(b, img));
    DCL_TRY(dcl_buf_puts(b, "\">"));
    if (caption && *caption) {
        DCL_TRY(dcl_buf_puts(b, "<figcaption>"));
        DCL_TRY(dcl_html_escape(b, caption));
        DCL_TRY(dcl_buf_puts(b, "</figcaption>"));
    }
    return dcl_buf_puts(b, "</figure>\n");
}

static void fmt_num(char *buf, size_t n, double v, int dec) {
    if (isnan(v)) snprintf(buf, n, "-");
    else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else snprintf(buf, n, "%.*f", dec, v);
}

static const char *g_metric_head =
    "<tr><th>set</th><th>n</th><th>real</th><th>fake</th><th>AUC</th><th>AP</th><th>EER</th><th>ACC@0.5</th>"
    "<th>best ACC</th><th>TPR@FPR1%</th></tr>\n";

static dcl_status h_metric_row(dcl_buf *b, const char *name, const dcl_metrics *m) {
    char v[8][32];
    fmt_num(v[0], 32, m->auc, 4);
    fmt_num(v[1], 32, m->ap, 4);
    fmt_num(v[2], 32, m->eer, 4);
    fmt_num(v[3], 32, m->acc, 4);
    fmt_num(v[4], 32, m->acc_best, 4);
    fmt_num(v[5], 32, m->tpr_at_fpr_1pct, 4);
    DCL_TRY(dcl_buf_puts(b, "<tr><td>"));
    DCL_TRY(dcl_html_escape(b, name));
    return dcl_buf_printf(b,
                          "</td><td class=\"num\">%lld</td><td class=\"num\">%lld</td><td class=\"num\">%lld</td>"
                          "<td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
                          "<td class=\"num\">%s</td><td class=\"num\">%s</td></tr>\n",
                          (long long)m->n, (long long)m->n_real, (long long)m->n_fake, v[0], v[1], v[2], v[3], v[4], v[5]);
}

/* ------------------------------------------------------------------ */
/* results found in the run directory                                    */
/* ------------------------------------------------------------------ */

static dcl_status json_rows(dcl_buf *b, const cJSON *j, const char *prefix, int *rows) {
    for (const cJSON *c = j->child; c && *rows < 400; c = c->next) {
        char key[512];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string ? c->string : "?");
        if (cJSON_IsObject(c)) { DCL_TRY(json_rows(b, c, key, rows)); continue; }
        DCL_TRY(dcl_buf_puts(b, "<tr><td>"));
        DCL_TRY(dcl_html_escape(b, key));
        DCL_TRY(dcl_buf_puts(b, cJSON_IsNumber(c) ? "</td><td class=\"num\">" : "</td><td>"));
        if (cJSON_IsNumber(c)) {
            char v[64];
            double x = c->valuedouble;
            if (x == floor(x) && fabs(x) < 1e15) snprintf(v, sizeof v, "%.0f", x);
            else snprintf(v, sizeof v, "%.6g", x);
            DCL_TRY(dcl_buf_puts(b, v));
        } else if (cJSON_IsString(c)) {
            DCL_TRY(dcl_html_escape(b, c->valuestring));
        } else {
            char *t = cJSON_PrintUnformatted(c);
            dcl_status s = dcl_html_escape(b, t ? t : "?");
            free(t);
            DCL_TRY(s);
        }
        DCL_TRY(dcl_buf_puts(b, "</td></tr>\n"));
        (*rows)++;
    }
    return DCL_OK;
}

typedef struct score_file {
    int n;
    double *score;
    int *label;
    int *ds;            /* dataset id per row */
    char **dsname;
    int nds;
    int skipped;        /* rows without a finite score */
} score_file;

static void score_file_free(score_file *f) {
    free(f->score);
    free(f->label);
    free(f->ds);
    for (int i = 0; i < f->nds; i++) free(f->dsname[i]);
    free(f->dsname);
    memset(f, 0, sizeof *f);
}

/* reads a CSV with label and score columns; DCL_ERR_NOTFOUND when the header
 * has no such columns (not a score table) */
static dcl_status score_file_read(score_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    dcl_csv c;
    DCL_TRY(dcl_csv_open(&c, path));
    dcl_status s = dcl_csv_next(&c);
    int il = -1, is = -1, id = -1;
    for (int i = 0; !s && i < c.nfield; i++) {
        if (!strcmp(c.field[i], "label")) il = i;
        else if (!strcmp(c.field[i], "score")) is = i;
        else if (!strcmp(c.field[i], "dataset")) id = i;
    }
    if (!s && (il < 0 || is < 0)) s = DCL_ERR_NOTFOUND;
    int cap = 0;
    while (!s) {
        s = dcl_csv_next(&c);
        if (s || c.nfield == 0) break;
        if (c.nfield <= il || c.nfield <= is) { s = dcl_fail(DCL_ERR_FORMAT, "%s:%lld: %d fields", path, (long long)c.line, c.nfield); break; }
        const char *ls = c.field[il];
        if (strcmp(ls, "0") && strcmp(ls, "1")) { s = dcl_fail(DCL_ERR_FORMAT, "%s:%lld: label '%s' is not 0 or 1", path, (long long)c.line, ls); break; }
        char *end;
        double sc = strtod(c.field[is], &end);
        if (!*c.field[is] || *end || !isfinite(sc)) { f->skipped++; continue; }
        if (f->n == cap) {
            cap = cap ? 2 * cap : 1024;
            double *a = realloc(f->score, cap * sizeof *a);
            if (a) f->score = a;
            int *b = realloc(f->label, cap * sizeof *b);
            if (b) f->label = b;
            int *d = realloc(f->ds, cap * sizeof *d);
            if (d) f->ds = d;
            if (!a || !b || !d) { s = dcl_fail(DCL_ERR_NOMEM, "%s", path); break; }
        }
        const char *dn = id >= 0 && c.nfield > id ? c.field[id] : "";
        int k = 0;
        while (k < f->nds && strcmp(f->dsname[k], dn)) k++;
        if (k == f->nds) {
            char **nn = realloc(f->dsname, (f->nds + 1) * sizeof *nn);
            if (!nn) { s = dcl_fail(DCL_ERR_NOMEM, "%s", path); break; }
            f->dsname = nn;
            f->dsname[f->nds] = strdup(dn);
            if (!f->dsname[f->nds]) { s = dcl_fail(DCL_ERR_NOMEM, "%s", path); break; }
            f->nds++;
        }
        f->score[f->n] = sc;
        f->label[f->n] = ls[0] == '1';
        f->ds[f->n] = k;
        f->n++;
    }
    dcl_csv_close(&c);
    if (s) score_file_free(f);
    return s;
}

/* metrics table and ROC figure of a score table, one set per dataset (and
 * all rows when there are several) */
static dcl_status section_score_file(dcl_buf *b, const char *rel, const score_file *f) {
    int nsets = f->nds > 1 ? f->nds + 1 : 1;
    if (nsets > 9) nsets = 9;
    dcl_score_set *sets = calloc(nsets, sizeof *sets);
    double **sc = calloc(nsets, sizeof *sc);
    int **lb = calloc(nsets, sizeof *lb);
    if (!sets || !sc || !lb) { free(sets); free(sc); free(lb); return dcl_fail(DCL_ERR_NOMEM, "score table"); }
    int good = 0;
    dcl_status s = dcl_buf_puts(b, "<table>");
    if (!s) s = dcl_buf_puts(b, g_metric_head);
    char lname[300];
    for (int k = 0; k < nsets && !s; k++) {
        int all = f->nds > 1 ? k == nsets - 1 : 1;
        int ds = all ? -1 : k;
        sc[k] = malloc((f->n ? f->n : 1) * sizeof(double));
        lb[k] = malloc((f->n ? f->n : 1) * sizeof(int));
        if (!sc[k] || !lb[k]) { s = dcl_fail(DCL_ERR_NOMEM, "score table"); break; }
        int m = 0;
        for (int i = 0; i < f->n; i++)
            if (ds < 0 || f->ds[i] == ds) { sc[k][m] = f->score[i]; lb[k][m++] = f->label[i]; }
        const char *name = all ? (f->nds > 1 ? "all rows" : (*f->dsname[0] ? f->dsname[0] : "all rows")) : (*f->dsname[ds] ? f->dsname[ds] : "(no dataset)");
        dcl_metrics mt;
        if (dcl_metrics_compute(&mt, sc[k], lb[k], m, 0.5)) {
            s = dcl_buf_puts(b, "<tr><td>");
            if (!s) s = dcl_html_escape(b, name);
            if (!s) s = dcl_buf_puts(b, "</td><td colspan=\"9\">");
            if (!s) s = dcl_html_escape(b, dcl_last_error());
            if (!s) s = dcl_buf_puts(b, "</td></tr>\n");
            continue;
        }
        s = h_metric_row(b, name, &mt);
        sets[good].name = strdup(name);
        sets[good].score = sc[k];
        sets[good].label = lb[k];
        sets[good].n = m;
        good++;
    }
    if (!s) s = dcl_buf_puts(b, "</table>\n");
    if (!s && f->skipped)
        s = h_note(b, "%d row%s without a score (unreadable crops) left out.", f->skipped, f->skipped == 1 ? "" : "s");
    if (!s && good > 0) {
        dcl_image img;
        snprintf(lname, sizeof lname, "ROC: %s", rel);
        if (dcl_fig_roc(&img, lname, sets, good) == DCL_OK) {
            s = h_figure(b, &img, lname, "ROC curves of the score table (frame level), one curve per dataset.");
            dcl_image_free(&img);
        } else {
            s = h_note(b, "ROC figure: %s", dcl_last_error());
        }
    }
    for (int k = 0; k < nsets; k++) { free(sc[k]); free(lb[k]); }
    for (int k = 0; k < good; k++) free((char *)sets[k].name);
    free(sc);
    free(lb);
    free(sets);
    return s;
}

static dcl_status section_results(dcl_buf *b, const char *run_dir) {
    strlist files = {0};
    DCL_TRY(scan_results(&files, run_dir, "", 0));
    dcl_status s = dcl_buf_puts(b, "<section id=\"results\"><h2>Results in the run directory</h2>\n");
    int shown = 0, ncsv = 0, skipped_csv = 0;
    for (int i = 0; i < files.n && !s; i++) {
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", run_dir, files.v[i]);
        const char *name = strrchr(files.v[i], '/');
        name = name ? name + 1 : files.v[i];
        if (!strcmp(name, "metrics.json")) {
            cJSON *j = NULL;
            s = h_text(b, "h3", files.v[i]);
            if (s) break;
            if (dcl_json_load(&j, full) != DCL_OK) { s = h_note(b, "could not read it: %s", dcl_last_error()); continue; }
            int rows = 0;
            dcl_buf tb = {0};
            s = dcl_buf_puts(&tb, "<table><tr><th>metric</th><th>value</th></tr>\n");
            if (!s && cJSON_IsObject(j)) s = json_rows(&tb, j, "", &rows);
            if (!s) s = dcl_buf_puts(&tb, "</table>\n");
            /* a long table starts folded */
            if (!s && rows > 24) s = dcl_buf_printf(b, "<details><summary>%d values</summary>\n", rows);
            if (!s) s = dcl_buf_append(b, tb.data, tb.len);
            if (!s && rows > 24) s = dcl_buf_puts(b, "</details>\n");
            dcl_buf_free(&tb);
            cJSON_Delete(j);
            shown++;
        } else if (!strcmp(name, "table.md")) {
            char *t = NULL;
            size_t len = 0;
            s = h_text(b, "h3", files.v[i]);
            if (s) break;
            if (dcl_read_file((void **)&t, &len, full, 16u << 20) != DCL_OK) { s = h_note(b, "could not read it: %s", dcl_last_error()); continue; }
            s = dcl_buf_puts(b, "<div class=\"md\">\n");
            if (!s) s = dcl_markdown_to_html(b, t);
            if (!s) s = dcl_buf_puts(b, "</div>\n");
            free(t);
            shown++;
        } else {
            if (ncsv >= 24) { skipped_csv++; continue; }
            score_file f;
            dcl_status r = score_file_read(&f, full);
            if (r == DCL_ERR_NOTFOUND) continue; /* some other CSV */
            s = h_text(b, "h3", files.v[i]);
            if (s) break;
            if (r) { s = h_note(b, "could not read it: %s", dcl_last_error()); continue; }
            s = section_score_file(b, files.v[i], &f);
            score_file_free(&f);
            shown++;
            ncsv++;
        }
    }
    if (!s && skipped_csv) s = h_note(b, "%d more CSV files were not examined (at most 24 score tables per page).", skipped_csv);
    if (!s && !shown)
        s = h_text(b, "p", "No metrics.json, score table or table.md was found in the run directory (run dcl eval to make them).");
    if (!s) s = dcl_buf_puts(b, "</section>\n");
    strlist_free(&files);
    return s;
}

/* ------------------------------------------------------------------ */
/* model passes over a cache subset                                      */
/* ------------------------------------------------------------------ */

typedef struct model_pass {
    dcl_detector *d;
    dcl_model_info info;
    char name[256];
    char path[4096];
    int size;
    int n;              /* readable images */
    int *entry;         /* cache entry of each row */
    int *label;
    double *score;      /* probability of fake */
    double *selfsim;
    float *pooled;      /* n x F */
    int F;
    float *keys;        /* n x L, L2-normalised embeddings */
    int L;
    int unreadable;
} model_pass;

static void pass_free(model_pass *p) {
    dcl_detector_free(p->d);
    free(p->entry);
    free(p->label);
    free(p->score);
    free(p->selfsim);
    free(p->pooled);
    free(p->keys);
    memset(p, 0, sizeof *p);
}

/* best.safetensors of a run, else last.safetensors */
static dcl_status run_model_path(char *out, size_t n, const char *run_dir) {
    snprintf(out, n, "%s/best.safetensors", run_dir);
    if (is_file(out)) return DCL_OK;
    snprintf(out, n, "%s/last.safetensors", run_dir);
    if (is_file(out)) return DCL_OK;
    return dcl_fail(DCL_ERR_NOTFOUND, "%s holds neither best.safetensors nor last.safetensors", run_dir);
}

static dcl_status pass_open(model_pass *p, dcl_backend *be, const char *run_dir) {
    char tmp[1024];
    snprintf(p->name, sizeof p->name, "%s", base_name(run_dir, tmp, sizeof tmp));
    DCL_TRY(run_model_path(p->path, sizeof p->path, run_dir));
    DCL_TRY(dcl_detector_open_model(&p->d, be, p->path, &p->info));
    p->size = p->info.size;
    if (p->size <= 0) {
        dcl_effnet_cfg ec;
        DCL_TRY(dcl_effnet_config(&ec, p->info.arch));
        p->size = ec.default_res;
        dcl_log(1, "report: %s records no input size; using %d", p->path, p->size);
    }
    return DCL_OK;
}

static dcl_status pass_run(model_pass *p, const dcl_cache *c, const int *idx, int n, const dcl_report_opts *o) {
    dcl_detector *d = p->d;
    int B = o->batch > 0 ? o->batch : 16;
    dcl_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.batch = B;
    lc.size = p->size;
    lc.workers = dcl_loader_workers(o->workers, p->d->be->is_host, 1);
    lc.prefetch = 2;
    lc.train = 0;
    memcpy(lc.mean, p->info.mean, sizeof lc.mean);
    memcpy(lc.std, p->info.std, sizeof lc.std);
    lc.views = dcl_views_none();
    DCL_TRY(dcl_detector_plan(d, B, p->size, p->size, DCL_PLAN_EVAL));
    int fs[4], es[4], ps[4];
    dcl_net *net = d->q->net;
    dcl_net_value_shape(net, d->q->features, fs);
    dcl_net_value_shape(net, d->q_embed, es);
    dcl_net_value_shape(net, d->q->pooled, ps);
    int L = fs[2] * fs[3], C = fs[1];
    p->F = ps[1];
    p->L = es[1] * es[2] * es[3];
    p->entry = malloc(n * sizeof(int));
    p->label = malloc(n * sizeof(int));
    p->score = malloc(n * sizeof(double));
    p->selfsim = malloc(n * sizeof(double));
    p->pooled = malloc((size_t)n * p->F * sizeof(float));
    p->keys = malloc((size_t)n * p->L * sizeof(float));
    float *F = malloc((size_t)B * L * C * sizeof(float)), *pool = malloc((size_t)B * p->F * sizeof(float));
    float *emb = malloc((size_t)B * p->L * sizeof(float)), *prob = malloc(B * sizeof(float));
    double *ss = malloc(B * sizeof(double));
    dcl_status s = DCL_OK;
    if (!p->entry || !p->label || !p->score || !p->selfsim || !p->pooled || !p->keys || !F || !pool || !emb || !prob || !ss)
        s = dcl_fail(DCL_ERR_NOMEM, "report: features of %d images", n);
    dcl_loader *l = NULL;
    if (!s) s = dcl_loader_create(&l, c, idx, n, &lc);
    if (!s) s = dcl_loader_start(l, 0);
    int done = 0;
    double t0 = dcl_now();
    while (!s) {
        dcl_batch *bt = NULL;
        s = dcl_loader_next(l, &bt);
        if (s || !bt) break;
        s = dcl_detector_predict(d, bt->v1, prob);
        if (!s) s = dcl_net_value_to_host(net, d->q->features, F);
        if (!s) s = dcl_net_value_to_host(net, d->q->pooled, pool);
        if (!s) s = dcl_net_value_to_host(net, d->q_embed, emb);
        if (s) break;
        dcl_self_similarity(ss, F, B, L, C);
        dcl_normalize_rows(emb, emb, B, p->L);
        for (int i = 0; i < bt->n; i++) {
            if (bt->entry[i] < 0) { p->unreadable++; continue; }
            int k = p->n++;
            p->entry[k] = bt->entry[i];
            p->label[k] = c->e[bt->entry[i]].label;
            p->score[k] = prob[i];
            p->selfsim[k] = ss[i];
            memcpy(p->pooled + (size_t)k * p->F, pool + (size_t)i * p->F, p->F * sizeof(float));
            memcpy(p->keys + (size_t)k * p->L, emb + (size_t)i * p->L, p->L * sizeof(float));
        }
        done += bt->n;
        if (isatty(2)) fprintf(stderr, "\r  %s: %d/%d images  %.1f img/s  ", p->name, done, n, done / fmax(dcl_now() - t0, 1e-9));
    }
    if (isatty(2)) fprintf(stderr, "\n");
    dcl_loader_free(l);
    free(F);
    free(pool);
    free(emb);
    free(prob);
    free(ss);
    return s;
}

/* up to max entries of the split, half real and half fake when both are
 * there, drawn at random (seeded), in cache order */
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static dcl_status pick_subset(int **out, int *nout, const dcl_cache *c, const int *idx, int n, int max, uint64_t seed) {
    int *r = malloc((n + 1) * sizeof(int)), *f = malloc((n + 1) * sizeof(int));
    if (!r || !f) { free(r); free(f); return dcl_fail(DCL_ERR_NOMEM, "report: subset"); }
    int nr = 0, nf = 0;
    for (int i = 0; i < n; i++) {
        if (c->e[idx[i]].label) f[nf++] = idx[i];
        else r[nr++] = idx[i];
    }
    dcl_rng rng;
    dcl_rng_seed(&rng, seed ^ 0x5eed5eedULL);
    int *lists[2] = {r, f}, cnt[2] = {nr, nf};
    for (int k = 0; k < 2; k++)
        for (int i = cnt[k] - 1; i > 0; i--) {
            int j = (int)dcl_rng_below(&rng, (uint32_t)i + 1);
            int t = lists[k][i]; lists[k][i] = lists[k][j]; lists[k][j] = t;
        }
    if (max <= 0 || max > n) max = n;
    int tr = max / 2, tf = max - tr;
    if (tr > nr) { tf += tr - nr; tr = nr; }
    if (tf > nf) { tr += tf - nf; tf = nf; }
    if (tr > nr) tr = nr;
    int *o = malloc((tr + tf + 1) * sizeof(int));
    if (!o) { free(r); free(f); return dcl_fail(DCL_ERR_NOMEM, "report: subset"); }
    memcpy(o, r, tr * sizeof(int));
    memcpy(o + tr, f, tf * sizeof(int));
    qsort(o, tr + tf, sizeof(int), cmp_int);
    free(r);
    free(f);
    *out = o;
    *nout = tr + tf;
    return DCL_OK;
}

/* ------------------------------------------------------------------ */
/* the computed sections                                                 */
/* ------------------------------------------------------------------ */

static dcl_status metrics_of(dcl_metrics *m, const model_pass *p) {
    int *lab = p->label;
    return dcl_metrics_compute(m, p->score, lab, p->n, 0.5);
}

static double mean_of(const double *v, const int *lab, int n, int cls, double *sd) {
    double s = 0, s2 = 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (lab[i] == cls && isfinite(v[i])) { s += v[i]; s2 += v[i] * v[i]; c++; }
    double m = c ? s / c : NAN;
    if (sd) *sd = c > 1 ? sqrt(fmax(0, (s2 - c * m * m) / (c - 1))) : NAN;
    return m;
}

static dcl_status section_metrics(dcl_buf *b, const dcl_cache *c, model_pass *const *ps, int np) {
    dcl_status s = h_text(b, "h3", "Metrics on the drawn crops");
    if (!s) s = dcl_buf_puts(b, "<table>");
    if (!s) s = dcl_buf_puts(b, g_metric_head);
    for (int k = 0; k < np && !s; k++) {
        const model_pass *p = ps[k];
        dcl_metrics m;
        char nm[320];
        snprintf(nm, sizeof nm, "%s (frames)", p->name);
        if (metrics_of(&m, p) == DCL_OK) s = h_metric_row(b, nm, &m);
        else {
            s = dcl_buf_puts(b, "<tr><td>");
            if (!s) s = dcl_html_escape(b, nm);
            if (!s) s = dcl_buf_puts(b, "</td><td colspan=\"9\">metrics undefined (one class only)</td></tr>\n");
        }
        /* video level: mean of the frames' scores */
        int64_t *vid = malloc((p->n + 1) * sizeof(int64_t));
        if (!vid) return dcl_fail(DCL_ERR_NOMEM, "report");
        for (int i = 0; i < p->n; i++) vid[i] = c->e[p->entry[i]].video_idx;
        snprintf(nm, sizeof nm, "%s (videos, mean)", p->name);
        if (!s && dcl_metrics_video(&m, p->score, p->label, vid, NULL, p->n, DCL_VIDEO_MEAN, 0.5) == DCL_OK &&
            m.n < p->n)
            s = h_metric_row(b, nm, &m);
        free(vid);
    }
    if (!s) s = dcl_buf_puts(b, "</table>\n");
    return s;
}

static dcl_status section_roc(dcl_buf *b, model_pass *const *ps, int np, const char *split) {
    dcl_score_set sets[2];
    for (int k = 0; k < np; k++) {
        sets[k].name = ps[k]->name;
        sets[k].score = ps[k]->score;
        sets[k].label = ps[k]->label;
        sets[k].n = ps[k]->n;
    }
    dcl_image img;
    char title[160];
    snprintf(title, sizeof title, "ROC on the %s crops", split);
    if (dcl_fig_roc(&img, title, sets, np) != DCL_OK) return h_note(b, "ROC: %s", dcl_last_error());
    dcl_status s = h_figure(b, &img, "ROC curves", "Frame-level ROC curves of the models on the same crops.");
    dcl_image_free(&img);
    return s;
}

static dcl_status section_selfsim(dcl_buf *b, model_pass *const *ps, int np) {
    dcl_status s = h_text(b, "h3", "Figure 2: self-similarity of the last feature map");
    dcl_hist_panel pan[2];
    char titles[2][320];
    for (int k = 0; k < np; k++) {
        snprintf(titles[k], sizeof titles[k], "%s", ps[k]->name);
        memset(&pan[k], 0, sizeof pan[k]);
        pan[k].title = titles[k];
        pan[k].value = ps[k]->selfsim;
        pan[k].label = ps[k]->label;
        pan[k].n = ps[k]->n;
    }
    dcl_image img;
    if (!s && dcl_fig_histograms(&img, pan, np, 40, "mean self-similarity of the feature map") == DCL_OK) {
        s = h_figure(b, &img, "Figure 2: self-similarity histograms",
                     "For every crop, the mean over all pairs of locations of the Gram matrix of the L2-normalised "
                     "location vectors of the last feature map (the S of the intra-instance loss), real and fake "
                     "crops separately, as densities. Intra-instance contrast should separate the two.");
        dcl_image_free(&img);
    } else if (!s) {
        s = h_note(b, "Figure 2: %s", dcl_last_error());
    }
    if (!s) s = dcl_buf_puts(b, "<table><tr><th>model</th><th>real: mean (sd)</th><th>fake: mean (sd)</th><th>AUC of self-similarity as a fake score</th></tr>\n");
    for (int k = 0; k < np && !s; k++) {
        double sr, sf, mr = mean_of(ps[k]->selfsim, ps[k]->label, ps[k]->n, 0, &sr);
        double mf = mean_of(ps[k]->selfsim, ps[k]->label, ps[k]->n, 1, &sf);
        dcl_metrics m;
        double auc = dcl_metrics_compute(&m, ps[k]->selfsim, ps[k]->label, ps[k]->n, 0.5) == DCL_OK ? m.auc : NAN;
        char a[32], c1[32], c2[32], d1[32], d2[32];
        fmt_num(a, 32, auc, 4); fmt_num(c1, 32, mr, 4); fmt_num(c2, 32, mf, 4); fmt_num(d1, 32, sr, 4); fmt_num(d2, 32, sf, 4);
        s = dcl_buf_puts(b, "<tr><td>");
        if (!s) s = dcl_html_escape(b, ps[k]->name);
        if (!s) s = dcl_buf_printf(b, "</td><td class=\"num\">%s (%s)</td><td class=\"num\">%s (%s)</td><td class=\"num\">%s</td></tr>\n", c1, d1, c2, d2, a);
    }
    if (!s) s = dcl_buf_puts(b, "</table>\n");
    return s;
}

/* a crop as the model sees it: loaded and resized to size x size */
static dcl_status load_crop(dcl_image *img, const dcl_cache *c, int entry, int size) {
    char path[4096];
    DCL_TRY(dcl_image_load(img, dcl_cache_path(c, c->e[entry].crop, path, sizeof path)));
    if (size > 0 && (img->w != size || img->h != size)) {
        dcl_image t;
        dcl_status s = dcl_image_resize_bilinear(&t, size, size, img);
        dcl_image_free(img);
        if (s) return s;
        *img = t;
    }
    return DCL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct simrow { double sim; int row; } simrow;
static int cmp_sim_desc(const void *a, const void *b) {
    const simrow *x = a, *y = b;
    return x->sim > y->sim ? -1 : x->sim < y->sim ? 1 : x->row - y->row;
}

static dcl_status section_hard(dcl_buf *b, const dcl_cache *c, const model_pass *p, const char *run_dir,
                               const dcl_report_opts *o) {
    dcl_status s = h_text(b, "h3", "Figure 3: hard samples against the prototypes");
    if (s) return s;
    char path[4096];
    snprintf(path, sizeof path, "%s/last.safetensors", run_dir);
    if (!is_file(path)) return h_note(b, "Figure 3 needs the prototypes of %s, which is missing.", path);
    dcl_st *st = NULL;
    if (dcl_st_open(&st, path)) return h_note(b, "Figure 3: %s", dcl_last_error());
    const dcl_st_entry *er = dcl_st_find(st, "prototype.real"), *ef = dcl_st_find(st, "prototype.fake");
    const char *set = dcl_st_meta(st, "prototypes_set");
    int rs = 0, fset = 0;
    if (set) sscanf(set, "%d,%d", &rs, &fset);
    if (!er || !ef) { dcl_st_close(st); return h_note(b, "Figure 3: %s holds no prototypes (contrastive terms off?).", path); }
    if (er->numel != p->L || ef->numel != p->L) {
        dcl_st_close(st);
        return h_note(b, "Figure 3: the prototypes of %s have %lld values but the model's embedding at %dx%d has %d.",
                      path, (long long)er->numel, p->size, p->size, p->L);
    }
    if (!rs || !fset) { dcl_st_close(st); return h_note(b, "Figure 3: the prototypes of %s were never set.", path); }
    float *pr = malloc(p->L * sizeof(float)), *pf = malloc(p->L * sizeof(float));
    double *sim = malloc((p->n + 1) * sizeof(double));
    simrow *rows[2] = {malloc((p->n + 1) * sizeof(simrow)), malloc((p->n + 1) * sizeof(simrow))};
    if (!pr || !pf || !sim || !rows[0] || !rows[1]) s = dcl_fail(DCL_ERR_NOMEM, "Figure 3");
    if (!s) s = dcl_st_entry_to_f32(pr, st, er);
    if (!s) s = dcl_st_entry_to_f32(pf, st, ef);
    dcl_st_close(st);
    /* similarity of each key to the prototype of the opposite class */
    int nr[2] = {0, 0};
    double *allsim = malloc((p->n + 1) * sizeof(double));
    if (!s && !allsim) s = dcl_fail(DCL_ERR_NOMEM, "Figure 3");
    for (int i = 0; i < p->n && !s; i++) {
        int y = p->label[i];
        dcl_proto_similarity(&sim[i], p->keys + (size_t)i * p->L, 1, p->L, y ? pr : pf);
        allsim[i] = sim[i];
        if (!isfinite(sim[i])) continue;
        rows[y][nr[y]].sim = sim[i];
        rows[y][nr[y]++].row = i;
    }
    /* thresholds: given, or percentiles of the similarities (auto) */
    double tl = o->theta_low, thh = o->theta_high;
    int auto_l = isnan(tl), auto_h = isnan(thh);
    if (!s && (auto_l || auto_h)) {
        int m = 0;
        double *v = malloc((p->n + 1) * sizeof(double));
        if (!v) s = dcl_fail(DCL_ERR_NOMEM, "Figure 3");
        for (int i = 0; v && i < p->n; i++)
            if (isfinite(allsim[i])) v[m++] = allsim[i];
        if (v && m > 0) {
            qsort(v, m, sizeof(double), cmp_double);
            if (auto_l) tl = v[(int)(0.5 * (m - 1))];
            if (auto_h) thh = v[(int)(0.9 * (m - 1))];
        }
        free(v);
        if (!(tl < thh)) { if (auto_h) thh = tl + 1e-6; else tl = thh - 1e-6; }
    }
    /* the distribution with both thresholds */
    if (!s) {
        double th[2] = {tl, thh};
        dcl_hist_panel hp;
        memset(&hp, 0, sizeof hp);
        hp.title = "Similarity of each key to the opposite prototype";
        hp.value = allsim;
        hp.label = p->label;
        hp.n = p->n;
        hp.vline = th;
        hp.nvline = 2;
        hp.real_name = "real: cos(k, P_fake)";
        hp.fake_name = "fake: cos(k, P_real)";
        dcl_image img;
        if (dcl_fig_histograms(&img, &hp, 1, 40, "cosine similarity") == DCL_OK) {
            char cap[600];
            snprintf(cap, sizeof cap,
                     "Keys from the model's embedding head on the drawn crops; prototypes from last.safetensors. A key "
                     "is a hard sample (enters its queue) when its similarity exceeds theta; dashed lines: theta = "
                     "%.2f%s and %.2f%s.",
                     tl, auto_l ? " (auto: the median similarity)" : "", thh, auto_h ? " (auto: the 90th percentile)" : "");
            s = h_figure(b, &img, "similarity to the opposite prototype", cap);
            dcl_image_free(&img);
        }
    }
    /* galleries: selected at the high threshold, and selected at the low one only */
    int per = o->gallery_per_row > 0 ? o->gallery_per_row : 8;
    dcl_image *imgs = calloc(4 * per, sizeof *imgs);
    char (*caps)[32] = calloc(4 * per, sizeof *caps);
    const char **capp = calloc(4 * per, sizeof *capp);
    dcl_gallery_row gr[4];
    char gt[4][200];
    int count[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0};
    if (!s && (!imgs || !caps || !capp)) s = dcl_fail(DCL_ERR_NOMEM, "Figure 3");
    for (int y = 1; y >= 0 && !s; y--) {
        qsort(rows[y], nr[y], sizeof(simrow), cmp_sim_desc);
        for (int band = 0; band < 2 && !s; band++) {
            int g = (1 - y) * 2 + band; /* fake high, fake low, real high, real low */
            /* members of the band, most similar first */
            int a = 0, e = 0;
            for (int i = 0; i < nr[y]; i++) {
                double v = rows[y][i].sim;
                int in = band == 0 ? v > thh : (v > tl && v <= thh);
                if (in) { if (!e) a = i; e = i + 1; }
            }
            total[g] = e > a ? e - a : 0;
            /* an even spread over the band */
            int take = total[g] < per ? total[g] : per;
            for (int t = 0; t < take && !s; t++) {
                int i = a + (int)((long long)t * total[g] / take);
                int row = rows[y][i].row;
                dcl_image *im = &imgs[g * per + count[g]];
                if (load_crop(im, c, p->entry[row], 0) != DCL_OK) continue;
                snprintf(caps[g * per + count[g]], 32, "cos %.3f", rows[y][i].sim);
                capp[g * per + count[g]] = caps[g * per + count[g]];
                count[g]++;
            }
            const char *cls = y ? "Fake" : "Real", *proto = y ? "P_real" : "P_fake";
            if (band == 0)
                snprintf(gt[g], sizeof gt[g], "%s crops selected at θ = %.2f: cos(k, %s) > %.2f (%d of %d)", cls,
                         thh, proto, thh, total[g], nr[y]);
            else
                snprintf(gt[g], sizeof gt[g], "%s crops selected at θ = %.2f only: %.2f < cos(k, %s) <= %.2f (%d of %d)",
                         cls, tl, tl, proto, thh, total[g], nr[y]);
            gr[g].title = gt[g];
            gr[g].img = &imgs[g * per];
            gr[g].caption = &capp[g * per];
            gr[g].n = count[g];
        }
    }
    if (!s) {
        dcl_image img;
        if (dcl_fig_gallery(&img, "Hard samples at a high and a low threshold", gr, 4, 112, per) == DCL_OK) {
            s = h_figure(b, &img, "Figure 3: hard samples",
                         "Crops whose key is similar to the prototype of the other class: the ones the hard-sample "
                         "test enqueues. Each row shows up to a row's worth spread evenly over the band, most similar "
                         "first.");
            dcl_image_free(&img);
        } else {
            s = h_note(b, "Figure 3: %s", dcl_last_error());
        }
    }
    for (int i = 0; imgs && i < 4 * per; i++) dcl_image_free(&imgs[i]);
    free(imgs);
    free(caps);
    free(capp);
    free(pr);
    free(pf);
    free(sim);
    free(allsim);
    free(rows[0]);
    free(rows[1]);
    return s;
}

/* category of each row: 0 real, then the fake methods by frequency (at most 9) */
static dcl_status method_categories(int *cat, char names[10][64], int *ncat, const dcl_cache *c, const model_pass *p) {
    char (*m)[64] = calloc(p->n + 1, sizeof *m);
    int *cnt = calloc(p->n + 1, sizeof(int)), nm = 0;
    int *mid = malloc((p->n + 1) * sizeof(int));
    if (!m || !cnt || !mid) { free(m); free(cnt); free(mid); return dcl_fail(DCL_ERR_NOMEM, "Figure 4"); }
    for (int i = 0; i < p->n; i++) {
        mid[i] = -1;
        if (!p->label[i]) continue;
        const char *meth = c->e[p->entry[i]].method;
        if (!meth || !*meth) meth = "fake";
        int k = 0;
        while (k < nm && strcmp(m[k], meth)) k++;
        if (k == nm) snprintf(m[nm++], 64, "%s", meth);
        cnt[k]++;
        mid[i] = k;
    }
    /* rank methods by count (then name) */
    int order[10], no = 0;
    int *used = calloc(nm + 1, sizeof(int));
    if (!used) { free(m); free(cnt); free(mid); return dcl_fail(DCL_ERR_NOMEM, "Figure 4"); }
    int keep = nm <= 9 ? nm : 8;
    for (int r = 0; r < keep; r++) {
        int best = -1;
        for (int k = 0; k < nm; k++)
            if (!used[k] && (best < 0 || cnt[k] > cnt[best] || (cnt[k] == cnt[best] && strcmp(m[k], m[best]) < 0))) best = k;
        used[best] = 1;
        order[no++] = best;
    }
    snprintf(names[0], 64, "real");
    for (int r = 0; r < no; r++) snprintf(names[r + 1], 64, "%s", m[order[r]]);
    *ncat = no + 1;
    if (nm > keep) snprintf(names[(*ncat)++], 64, "other fakes");
    for (int i = 0; i < p->n; i++) {
        if (mid[i] < 0) { cat[i] = 0; continue; }
        cat[i] = *ncat - 1;
        for (int r = 0; r < no; r++)
            if (order[r] == mid[i]) { cat[i] = r + 1; break; }
    }
    free(m);
    free(cnt);
    free(mid);
    free(used);
    return DCL_OK;
}

static dcl_status section_tsne(dcl_buf *b, const dcl_cache *c, model_pass *const *ps, int np, const dcl_report_opts *o) {
    dcl_status s = h_text(b, "h3", "Figure 4: t-SNE of the pooled features");
    if (s) return s;
    int n = ps[0]->n;
    if (n < 10) return h_note(b, "Figure 4 needs at least 10 crops (%d drawn).", n);
    dcl_scatter_panel pan[4];
    float *ys[2] = {NULL, NULL};
    int *cats[2] = {NULL, NULL};
    char names[2][10][64];
    const char *nameptr[2][10];
    static const char *cls_names[2] = {"real", "fake"};
    char titles[4][320];
    double secs = 0;
    int npan = 0;
    for (int k = 0; k < np && !s; k++) {
        model_pass *p = ps[k];
        ys[k] = malloc((size_t)p->n * 2 * sizeof(float));
        cats[k] = malloc((p->n + 1) * sizeof(int));
        if (!ys[k] || !cats[k]) { s = dcl_fail(DCL_ERR_NOMEM, "Figure 4"); break; }
        dcl_tsne_opts to;
        dcl_tsne_default_opts(&to);
        to.perplexity = fmin(30.0, (p->n - 1) / 3.0 - 0.01);
        to.n_iter = o->tsne_iters > 0 ? o->tsne_iters : 1000;
        if (to.exaggeration_iters > to.n_iter / 2) to.exaggeration_iters = to.n_iter / 2;
        to.seed = o->seed;
        double t0 = dcl_now();
        dcl_tsne_info ti;
        s = dcl_tsne_run(ys[k], &ti, p->pooled, p->n, p->F, &to);
        secs += dcl_now() - t0;
        if (s) { s = h_note(b, "Figure 4 (%s): %s", p->name, dcl_last_error()); break; }
        int ncat = 0;
        s = method_categories(cats[k], names[k], &ncat, c, p);
        if (s) break;
        for (int j = 0; j < ncat; j++) nameptr[k][j] = names[k][j];
        snprintf(titles[2 * k], sizeof titles[0], "%s: real vs fake", p->name);
        snprintf(titles[2 * k + 1], sizeof titles[0], "%s: by method", p->name);
        pan[npan].title = titles[2 * k];
        pan[npan].xy = ys[k];
        pan[npan].cat = p->label;
        pan[npan].n = p->n;
        pan[npan].names = cls_names;
        pan[npan++].ncat = 2;
        pan[npan].title = titles[2 * k + 1];
        pan[npan].xy = ys[k];
        pan[npan].cat = cats[k];
        pan[npan].n = p->n;
        pan[npan].names = nameptr[k];
        pan[npan++].ncat = ncat;
    }
    if (!s && npan == 2 * np) {
        dcl_image img;
        if (dcl_fig_scatter(&img, pan, npan, 2) == DCL_OK) {
            char cap[600];
            snprintf(cap, sizeof cap,
                     "t-SNE (perplexity %.0f, %d iterations, %s) of the globally pooled last feature maps of %d crops, "
                     "coloured by class (left) and by manipulation method (right). Computed in %.1f s.",
                     fmin(30.0, (n - 1) / 3.0 - 0.01), o->tsne_iters, n > 500 ? "Barnes-Hut" : "exact", n, secs);
            s = h_figure(b, &img, "Figure 4: t-SNE of features", cap);
            dcl_image_free(&img);
        } else {
            s = h_note(b, "Figure 4: %s", dcl_last_error());
        }
    }
    for (int k = 0; k < 2; k++) { free(ys[k]); free(cats[k]); }
    return s;
}

static dcl_status section_gradcam(dcl_buf *b, const dcl_cache *c, model_pass *p, const dcl_report_opts *o) {
    dcl_status s = h_text(b, "h3", "Grad-CAM");
    if (s) return s;
    int per = o->gradcam_per_class;
    if (per <= 0) return DCL_OK;
    /* random rows of each class (seeded) */
    int *pick = malloc(2 * per * sizeof(int)), np = 0, npc[2] = {0, 0};
    int *perm = malloc((p->n + 1) * sizeof(int));
    if (!pick || !perm) { free(pick); free(perm); return dcl_fail(DCL_ERR_NOMEM, "Grad-CAM"); }
    for (int i = 0; i < p->n; i++) perm[i] = i;
    dcl_rng rng;
    dcl_rng_seed(&rng, o->seed ^ 0x9c9cULL);
    for (int i = p->n - 1; i > 0; i--) {
        int j = (int)dcl_rng_below(&rng, (uint32_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    for (int cls = 1; cls >= 0; cls--)
        for (int i = 0; i < p->n && npc[cls] < per; i++)
            if (p->label[perm[i]] == cls) { pick[np++] = perm[i]; npc[cls]++; }
    free(perm);
    int S = p->size;
    dcl_image *crops = calloc(np + 1, sizeof *crops), *ov = calloc(np + 1, sizeof *ov);
    float *x = malloc((size_t)(np ? np : 1) * S * S * 3 * sizeof(float));
    if (!crops || !ov || !x) s = dcl_fail(DCL_ERR_NOMEM, "Grad-CAM");
    for (int i = 0; i < np && !s; i++) {
        s = load_crop(&crops[i], c, p->entry[pick[i]], S);
        if (!s) dcl_image_to_tensor(x + (size_t)i * S * S * 3, &crops[i], p->info.mean, p->info.std);
    }
    /* one image at a time: a training plan keeps every activation */
    float *camax = calloc(np + 1, sizeof(float));
    int Hf = 0, Wf = 0;
    if (!camax && !s) s = dcl_fail(DCL_ERR_NOMEM, "Grad-CAM");
    for (int i = 0; i < np && !s; i++) {
        dcl_gradcam_result r;
        s = dcl_gradcam(&r, p->d, x + (size_t)i * S * S * 3, 1, S, S);
        if (s) break;
        Hf = r.Hf;
        Wf = r.Wf;
        for (int k = 0; k < Hf * Wf; k++) camax[i] = fmaxf(camax[i], r.cam[k]);
        s = dcl_gradcam_overlay(&ov[i], &crops[i], r.cam, Hf, Wf, 0, 0.45f);
        dcl_gradcam_free(&r);
    }
    if (s) {
        dcl_status n = h_note(b, "Grad-CAM: %s", dcl_last_error());
        s = n;
    } else if (np > 0) {
        char (*caps)[40] = calloc(2 * np, sizeof *caps);
        const char **cp = calloc(2 * np, sizeof *cp);
        if (!caps || !cp) s = dcl_fail(DCL_ERR_NOMEM, "Grad-CAM");
        for (int i = 0; i < np && !s; i++) {
            snprintf(caps[i], sizeof caps[i], "p(fake) %.3f", p->score[pick[i]]);
            cp[i] = caps[i];
            snprintf(caps[np + i], sizeof caps[0], "max %.3g", camax[i]);
            cp[np + i] = caps[np + i];
        }
        dcl_gallery_row gr[4];
        char t[4][96];
        int ng = 0, off = 0;
        for (int cls = 1; cls >= 0 && !s; cls--) {
            int k = npc[cls];
            snprintf(t[ng], sizeof t[0], "%s crops (%dx%d input)", cls ? "Fake" : "Real", S, S);
            gr[ng].title = t[ng]; gr[ng].img = crops + off; gr[ng].caption = cp + off; gr[ng++].n = k;
            snprintf(t[ng], sizeof t[0], "Grad-CAM of the fake score (%dx%d map)", Hf, Wf);
            gr[ng].title = t[ng]; gr[ng].img = ov + off; gr[ng].caption = cp + np + off; gr[ng++].n = k;
            off += k;
        }
        dcl_image img;
        if (!s && dcl_fig_gallery(&img, "Grad-CAM on random crops", gr, ng, 128, per) == DCL_OK) {
            s = h_figure(b, &img, "Grad-CAM heat maps",
                         "Grad-CAM of the logit of 'fake' on the last feature map A: ReLU(sum_c w_c A_c) with w_c the "
                         "spatial mean of dScore/dA_c, upsampled bilinearly to the crop and scaled to its own maximum "
                         "(jet colours, 45% opacity; under each map its maximum, 0 when no location raises the "
                         "score). Red regions raise the fake score.");
            dcl_image_free(&img);
        } else if (!s) {
            s = h_note(b, "Grad-CAM: %s", dcl_last_error());
        }
        free(caps);
        free(cp);
    }
    free(camax);
    for (int i = 0; crops && i < np; i++) dcl_image_free(&crops[i]);
    for (int i = 0; ov && i < np; i++) dcl_image_free(&ov[i]);
    free(crops);
    free(ov);
    free(x);
    free(pick);
    return s;
}

static dcl_status section_data(dcl_buf *b, const dcl_report_opts *o, dcl_backend *be) {
    dcl_cache *c = NULL;
    DCL_TRY(dcl_cache_open(&c, o->data));
    int *idx = NULL, n = 0, *sub = NULL, ns = 0;
    dcl_status s = dcl_cache_select(c, o->split, &idx, &n);
    if (!s && n == 0) {
        /* name the splits that exist */
        char have[512] = "";
        size_t u = 0;
        for (int i = 0; i < c->n && u < sizeof have - 40; i++) {
            const char *sp = c->e[i].split ? c->e[i].split : "";
            char pat[80];
            snprintf(pat, sizeof pat, "'%s'", sp);
            if (!strstr(have, pat)) u += snprintf(have + u, sizeof have - u, "%s%s", u ? ", " : "", pat);
        }
        s = dcl_fail(DCL_ERR_ARG, "cache %s has no images in split '%s' (it has %s); choose one with --split",
                     o->data, o->split, u ? have : "none");
    }
    if (!s) s = pick_subset(&sub, &ns, c, idx, n, o->max_images, o->seed);
    model_pass mp[2];
    memset(mp, 0, sizeof mp);
    model_pass *ps[2] = {NULL, NULL};
    int np = 0;
    if (!s && o->baseline) {
        s = pass_open(&mp[0], be, o->baseline);
        if (!s) ps[np++] = &mp[0];
    }
    if (!s) {
        s = pass_open(&mp[1], be, o->run_dir);
        if (!s) ps[np++] = &mp[1];
    }
    if (!s && o->baseline && !strcmp(mp[0].name, mp[1].name)) {
        snprintf(mp[0].name + strlen(mp[0].name), sizeof mp[0].name - strlen(mp[0].name), " (baseline)");
    }
    for (int k = 0; k < np && !s; k++) {
        dcl_log(2, "report: features of %d crops with %s", ns, ps[k]->path);
        s = pass_run(ps[k], c, sub, ns, o);
    }
    if (!s) {
        for (int k = 0; k < np && !s; k++)
            if (ps[k]->n < 2) s = dcl_fail(DCL_ERR_ARG, "only %d readable crops in split '%s' of %s", ps[k]->n, o->split, o->data);
    }
    if (!s) {
        char sp[512];
        snprintf(sp, sizeof sp, "Evaluation on %s (split %s)", o->data, o->split);
        s = dcl_buf_puts(b, "<section id=\"data\">");
        if (!s) s = h_text(b, "h2", sp);
        int nreal = 0;
        for (int i = 0; i < ps[np - 1]->n; i++) nreal += !ps[np - 1]->label[i];
        if (!s) s = dcl_buf_printf(b, "<p>%d crops drawn at random from %d in the split (%d real, %d fake)", ns, n, nreal,
                                   ps[np - 1]->n - nreal);
        if (!s && ps[np - 1]->unreadable) s = dcl_buf_printf(b, "; %d could not be read", ps[np - 1]->unreadable);
        if (!s) s = dcl_buf_puts(b, ". Models: ");
        for (int k = 0; k < np && !s; k++) {
            char info[300];
            s = dcl_buf_puts(b, k ? "; <b>" : "<b>");
            if (!s) s = dcl_html_escape(b, ps[k]->name);
            if (!s) s = dcl_buf_puts(b, "</b> ");
            if (!s) s = dcl_html_escape(b, dcl_model_info_str(&ps[k]->info, info, sizeof info));
        }
        if (!s) s = dcl_buf_puts(b, ".</p>\n");
    }
    if (!s) s = section_metrics(b, c, ps, np);
    if (!s) s = section_roc(b, ps, np, o->split);
    if (!s) dcl_log(2, "report: figure 2");
    if (!s) s = section_selfsim(b, ps, np);
    if (!s) dcl_log(2, "report: figure 3");
    if (!s) s = section_hard(b, c, ps[np - 1], o->run_dir, o);
    if (!s) dcl_log(2, "report: figure 4 (t-SNE)");
    if (!s) s = section_tsne(b, c, ps, np, o);
    if (!s) dcl_log(2, "report: Grad-CAM");
    if (!s) s = section_gradcam(b, c, ps[np - 1], o);
    if (!s) s = dcl_buf_puts(b, "</section>\n");
    for (int k = 0; k < 2; k++) pass_free(&mp[k]);
    free(idx);
    free(sub);
    dcl_cache_free(c);
    return s;
}

/* ------------------------------------------------------------------ */
/* the page                                                              */
/* ------------------------------------------------------------------ */

static dcl_status section_training(dcl_buf *b, const dcl_report_opts *o, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/log.jsonl", o->run_dir);
    dcl_status s = dcl_buf_puts(b, "<section id=\"training\"><h2>Training</h2>\n");
    if (s) return s;
    if (!is_file(path)) {
        DCL_TRY(h_note(b, "No log.jsonl in the run directory."));
        return dcl_buf_puts(b, "</section>\n");
    }
    dcl_train_log lg, bl;
    memset(&bl, 0, sizeof bl);
    if (dcl_train_log_load(&lg, path)) {
        DCL_TRY(h_note(b, "%s", dcl_last_error()));
        return dcl_buf_puts(b, "</section>\n");
    }
    char bname[256] = "";
    int have_b = 0;
    if (o->baseline) {
        char bp[4096], tmp[1024];
        snprintf(bp, sizeof bp, "%s/log.jsonl", o->baseline);
        snprintf(bname, sizeof bname, "%s", base_name(o->baseline, tmp, sizeof tmp));
        if (!strcmp(bname, name)) snprintf(bname + strlen(bname), sizeof bname - strlen(bname), " (baseline)");
        have_b = is_file(bp) && dcl_train_log_load(&bl, bp) == DCL_OK;
    }
    if (lg.n == 0 && lg.ne == 0) {
        s = h_note(b, "log.jsonl holds no step or epoch lines yet.");
    } else {
        int best = -1;
        for (int i = 0; i < lg.ne; i++)
            if (isfinite(lg.val_auc[i]) && (best < 0 || lg.val_auc[i] > lg.val_auc[best])) best = i;
        s = dcl_buf_printf(b, "<p>%d logged steps (last step %.0f), %d epochs", lg.n, lg.n ? lg.step[lg.n - 1] : 0.0, lg.ne);
        if (!s && best >= 0) s = dcl_buf_printf(b, "; best validation AUC <b>%.4f</b> at epoch %.0f", lg.val_auc[best], lg.epoch[best]);
        if (!s && lg.bad_lines) s = dcl_buf_printf(b, "; %d unreadable lines skipped", lg.bad_lines);
        if (!s) s = dcl_buf_puts(b, ".</p>\n");
        dcl_image img;
        if (!s && dcl_fig_training(&img, &lg, name, have_b ? &bl : NULL, bname) == DCL_OK) {
            s = h_figure(b, &img, "training curves",
                         "Left: loss terms per logged step (total, cross-entropy, inter-instance InfoNCE, intra-instance "
                         "contrast; a running mean over the raw values when there are many steps). Right: validation "
                         "AUC at the end of each epoch.");
            dcl_image_free(&img);
        } else if (!s) {
            s = h_note(b, "training curves: %s", dcl_last_error());
        }
        if (!s && lg.ne > 0) {
            s = dcl_buf_puts(b, "<details><summary>Validation per epoch</summary><table><tr><th>epoch</th><th>val AUC</th><th>val ACC</th></tr>\n");
            for (int i = 0; i < lg.ne && !s; i++) {
                char a[32], c[32];
                fmt_num(a, 32, lg.val_auc[i], 4);
                fmt_num(c, 32, lg.val_acc[i], 4);
                s = dcl_buf_printf(b, "<tr><td class=\"num\">%.0f</td><td class=\"num\">%s</td><td class=\"num\">%s</td></tr>\n",
                                   lg.epoch[i], a, c);
            }
            if (!s) s = dcl_buf_puts(b, "</table></details>\n");
        }
    }
    dcl_train_log_free(&lg);
    dcl_train_log_free(&bl);
    if (!s) s = dcl_buf_puts(b, "</section>\n");
    return s;
}

static dcl_status section_config(dcl_buf *b, const char *run_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.yaml", run_dir);
    dcl_status s = dcl_buf_puts(b, "<section id=\"config\"><h2>Configuration</h2>\n");
    if (s) return s;
    char *t = NULL;
    size_t len = 0;
    if (!is_file(path)) s = h_note(b, "No config.yaml in the run directory.");
    else if (dcl_read_file((void **)&t, &len, path, 4u << 20)) s = h_note(b, "%s", dcl_last_error());
    else {
        s = dcl_buf_puts(b, "<pre>");
        if (!s) s = dcl_html_escape(b, t);
        if (!s) s = dcl_buf_puts(b, "</pre>\n");
    }
    free(t);
    if (!s) s = dcl_buf_puts(b, "</section>\n");
    return s;
}

static dcl_status section_summary(dcl_buf *b, const dcl_report_opts *o) {
    dcl_status s = dcl_buf_puts(b, "<section id=\"summary\"><h2>Model</h2>\n<table>\n");
    const char *files[] = {"best.safetensors", "last.safetensors"};
    for (int i = 0; i < 2 && !s; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->run_dir, files[i]);
        if (!is_file(path)) continue;
        dcl_model_info info;
        char desc[400];
        s = dcl_buf_printf(b, "<tr><th>%s</th><td>", files[i]);
        if (!s) {
            if (dcl_model_info_read(&info, path) == DCL_OK) s = dcl_html_escape(b, dcl_model_info_str(&info, desc, sizeof desc));
            else s = dcl_html_escape(b, dcl_last_error());
        }
        if (!s) s = dcl_buf_puts(b, "</td></tr>\n");
    }
    if (!s) s = dcl_buf_puts(b, "</table></section>\n");
    return s;
}

dcl_status dcl_report_write(const dcl_report_opts *o, char *path_out, size_t n) {
    if (!o || !o->run_dir || !*o->run_dir) return dcl_fail(DCL_ERR_ARG, "no run directory given");
    if (!is_dir(o->run_dir)) return dcl_fail(DCL_ERR_NOTFOUND, "run directory %s does not exist", o->run_dir);
    if (o->baseline && !is_dir(o->baseline))
        return dcl_fail(DCL_ERR_NOTFOUND, "baseline run directory %s does not exist", o->baseline);
    if (o->data && !is_dir(o->data)) return dcl_fail(DCL_ERR_NOTFOUND, "cache %s does not exist", o->data);
    if (!isnan(o->theta_low) && !isnan(o->theta_high) && !(o->theta_low < o->theta_high))
        return dcl_fail(DCL_ERR_ARG, "the low threshold %g must be below the high one %g", o->theta_low, o->theta_high);
    char out[4096];
    if (o->out && *o->out) snprintf(out, sizeof out, "%s", o->out);
    else snprintf(out, sizeof out, "%s/report.html", o->run_dir);
    char tmp[1024];
    const char *name = base_name(o->run_dir, tmp, sizeof tmp);
    char runname[256];
    snprintf(runname, sizeof runname, "%s", name);
    dcl_backend *be = NULL;
    if (o->data) {
        if (o->threads > 0) dcl_set_num_threads(o->threads);
        be = dcl_backend_create(o->device ? o->device : "cpu", o->threads);
        if (!be) return dcl_fail_ctx(DCL_ERR_UNSUPPORTED, "device %s", o->device ? o->device : "cpu");
    }
    dcl_buf b = {0};
    time_t now = time(NULL);
    struct tm tmv;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime_r(&now, &tmv));
    dcl_status s = dcl_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>dcl report: ");
    if (!s) s = dcl_html_escape(&b, runname);
    if (!s) s = dcl_buf_printf(&b, "</title>\n<style>\n%s</style></head>\n<body>\n<h1>DCL run report: ", g_css);
    if (!s) s = dcl_html_escape(&b, runname);
    if (!s) s = dcl_buf_puts(&b, "</h1>\n<p class=\"meta\">Run directory <code>");
    if (!s) s = dcl_html_escape(&b, o->run_dir);
    if (!s) s = dcl_buf_puts(&b, "</code>");
    if (!s && o->baseline) {
        s = dcl_buf_puts(&b, " &middot; baseline <code>");
        if (!s) s = dcl_html_escape(&b, o->baseline);
        if (!s) s = dcl_buf_puts(&b, "</code>");
    }
    if (!s) s = dcl_buf_printf(&b, " &middot; generated %s</p>\n<nav><a href=\"#summary\">Model</a><a href=\"#training\">Training</a>"
                                   "<a href=\"#config\">Configuration</a><a href=\"#results\">Results</a>%s</nav>\n",
                               when, o->data ? "<a href=\"#data\">Figures</a>" : "");
    if (!s) s = section_summary(&b, o);
    if (!s) { dcl_log(2, "report: training curves"); s = section_training(&b, o, runname); }
    if (!s) s = section_config(&b, o->run_dir);
    if (!s) s = section_results(&b, o->run_dir);
    if (!s && o->data) s = section_data(&b, o, be);
    if (!s && !o->data)
        s = h_text(&b, "p class=\"meta\"", "Figures 2-4, ROC curves and Grad-CAM are computed when a face cache is given (dcl report RUN_DIR --data CACHE).");
    if (!s) s = dcl_buf_puts(&b, "</body></html>\n");
    if (!s) s = dcl_write_file_atomic(out, b.data, b.len);
    dcl_buf_free(&b);
    if (be) dcl_backend_destroy(be);
    if (!s && path_out && n) snprintf(path_out, n, "%s", out);
    return s;
}
