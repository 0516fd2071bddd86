/* Raster plotting: primitives, the built-in font, axes (include/dcl/plot.h). */
#include "dcl/plot.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* colours                                                              */
/* ------------------------------------------------------------------ */

dcl_rgb dcl_plot_palette(int i) {
    static const uint8_t pal[10][3] = {
        {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
        {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    };
    int k = ((i % 10) + 10) % 10;
    return dcl_rgb_make(pal[k][0], pal[k][1], pal[k][2]);
}

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

dcl_rgb dcl_plot_jet(double t) {
    if (!(t == t)) t = 0;
    t = clamp01(t);
    /* piecewise-linear ramps of the classic jet map */
    double r = clamp01(fmin(4 * t - 1.5, -4 * t + 4.5));
    double g = clamp01(fmin(4 * t - 0.5, -4 * t + 3.5));
    double b = clamp01(fmin(4 * t + 0.5, -4 * t + 2.5));
    return dcl_rgb_make((int)lrint(255 * r), (int)lrint(255 * g), (int)lrint(255 * b));
}

/* ------------------------------------------------------------------ */
/* primitives                                                           */
/* ------------------------------------------------------------------ */

typedef struct clip { int x0, y0, x1, y1; } clip;

static clip img_clip(const dcl_image *img) { clip c = {0, 0, img->w, img->h}; return c; }

dcl_status dcl_plot_canvas(dcl_image *img, int w, int h, dcl_rgb bg) {
    memset(img, 0, sizeof *img);
    if (w < 1 || h < 1 || w > 16384 || h > 16384) return dcl_fail(DCL_ERR_ARG, "plot: bad canvas size %dx%d", w, h);
    DCL_TRY(dcl_image_alloc(img, w, h));
    for (size_t i = 0; i < (size_t)w * h; i++) {
        img->data[3 * i] = bg.r;
        img->data[3 * i + 1] = bg.g;
        img->data[3 * i + 2] = bg.b;
    }
    return DCL_OK;
}

static inline void blend_px(dcl_image *img, int x, int y, dcl_rgb c, double a) {
    if (!(a > 0)) return;
    if (a > 1) a = 1;
    uint8_t *p = img->data + ((size_t)y * img->w + x) * 3;
    const uint8_t cc[3] = {c.r, c.g, c.b};
    for (int k = 0; k < 3; k++) {
        double v = p[k] + a * ((double)cc[k] - p[k]);
        p[k] = (uint8_t)lrint(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

void dcl_plot_blend(dcl_image *img, int x, int y, dcl_rgb c, double alpha) {
    if (x < 0 || y < 0 || x >= img->w || y >= img->h) return;
    blend_px(img, x, y, c, alpha);
}

static void rect_clip(dcl_image *img, clip cl, double x0, double y0, double x1, double y1, dcl_rgb c,
                      double alpha) {
    if (!(x1 > x0) || !(y1 > y0)) return;
    int ix0 = (int)floor(fmax(x0, cl.x0)), iy0 = (int)floor(fmax(y0, cl.y0));
    int ix1 = (int)ceil(fmin(x1, cl.x1)), iy1 = (int)ceil(fmin(y1, cl.y1));
    for (int y = iy0; y < iy1; y++) {
        double cy = fmin(y + 1, y1) - fmax(y, y0);
        if (cy <= 0) continue;
        for (int x = ix0; x < ix1; x++) {
            double cx = fmin(x + 1, x1) - fmax(x, x0);
            if (cx > 0) blend_px(img, x, y, c, alpha * cx * cy);
        }
    }
}

void dcl_plot_rect(dcl_image *img, double x0, double y0, double x1, double y1, dcl_rgb c, double alpha) {
    rect_clip(img, img_clip(img), x0, y0, x1, y1, c, alpha);
}

void dcl_plot_rect_outline(dcl_image *img, int x0, int y0, int x1, int y1, dcl_rgb c) {
    if (x1 <= x0 || y1 <= y0) return;
    for (int x = x0; x < x1; x++) { dcl_plot_blend(img, x, y0, c, 1); dcl_plot_blend(img, x, y1 - 1, c, 1); }
    for (int y = y0; y < y1; y++) { dcl_plot_blend(img, x0, y, c, 1); dcl_plot_blend(img, x1 - 1, y, c, 1); }
}

/* distance from (px, py) to the segment (ax, ay)-(bx, by) */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = ax + t * dx - px, ey = ay + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

/* coverage mask over a clip box: one blend per pixel with the maximal coverage */
typedef struct mask {
    clip box;
    float *m;
} mask;

static void mask_segment(mask *mk, double ax, double ay, double bx, double by, double hw) {
    double r = hw + 1.0;
    int x0 = (int)floor(fmin(ax, bx) - r), x1 = (int)ceil(fmax(ax, bx) + r);
    int y0 = (int)floor(fmin(ay, by) - r), y1 = (int)ceil(fmax(ay, by) + r);
    if (x0 < mk->box.x0) x0 = mk->box.x0;
    if (y0 < mk->box.y0) y0 = mk->box.y0;
    if (x1 > mk->box.x1) x1 = mk->box.x1;
    if (y1 > mk->box.y1) y1 = mk->box.y1;
    int W = mk->box.x1 - mk->box.x0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            double d = seg_dist(x + 0.5, y + 0.5, ax, ay, bx, by);
            double cov = hw + 0.5 - d;
            if (cov <= 0) continue;
            if (cov > 1) cov = 1;
            float *p = &mk->m[(size_t)(y - mk->box.y0) * W + (x - mk->box.x0)];
            if (cov > *p) *p = (float)cov;
        }
}

static dcl_status polyline_clip(dcl_image *img, clip cl, const double *x, const double *y, int n, double width,
                                dcl_rgb c, double alpha, double dash) {
    if (n < 1) return DCL_OK;
    if (!(width > 0)) width = 1;
    double hw = width / 2;
    /* bounding box of the finite points, padded, intersected with the clip */
    double bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        bx0 = fmin(bx0, x[i]); bx1 = fmax(bx1, x[i]);
        by0 = fmin(by0, y[i]); by1 = fmax(by1, y[i]);
    }
    if (!isfinite(bx0)) return DCL_OK;
    mask mk;
    mk.box.x0 = (int)fmax(cl.x0, floor(bx0 - hw - 1));
    mk.box.y0 = (int)fmax(cl.y0, floor(by0 - hw - 1));
    mk.box.x1 = (int)fmin(cl.x1, ceil(bx1 + hw + 1));
    mk.box.y1 = (int)fmin(cl.y1, ceil(by1 + hw + 1));
    if (mk.box.x1 <= mk.box.x0 || mk.box.y1 <= mk.box.y0) return DCL_OK;
    size_t W = mk.box.x1 - mk.box.x0, H = mk.box.y1 - mk.box.y0;
    mk.m = calloc(W * H, sizeof(float));
    if (!mk.m) return dcl_fail(DCL_ERR_NOMEM, "plot: polyline mask %zux%zu", W, H);
    double phase = 0; /* distance along the dash pattern */
    int single = 1;
    for (int i = 0; i + 1 < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || !isfinite(x[i + 1]) || !isfinite(y[i + 1])) continue;
        single = 0;
        if (dash <= 0) { mask_segment(&mk, x[i], y[i], x[i + 1], y[i + 1], hw); continue; }
        double dx = x[i + 1] - x[i], dy = y[i + 1] - y[i], len = sqrt(dx * dx + dy * dy), t = 0;
        while (t < len) {
            double period_pos = fmod(phase, 2 * dash);
            int on = period_pos < dash;
            double step = fmin(len - t, (on ? dash : 2 * dash) - period_pos);
            if (on) mask_segment(&mk, x[i] + dx * t / len, y[i] + dy * t / len, x[i] + dx * (t + step) / len,
                                 y[i] + dy * (t + step) / len, hw);
            t += step;
            phase += step;
        }
    }
    if (single && n == 1 && isfinite(x[0]) && isfinite(y[0])) mask_segment(&mk, x[0], y[0], x[0], y[0], hw);
    for (size_t j = 0; j < H; j++)
        for (size_t i = 0; i < W; i++) {
            float v = mk.m[j * W + i];
            if (v > 0) blend_px(img, mk.box.x0 + (int)i, mk.box.y0 + (int)j, c, alpha * v);
        }
    free(mk.m);
    return DCL_OK;
}

dcl_status dcl_plot_polyline(dcl_image *img, const double *x, const double *y, int n, double width, dcl_rgb c,
                             double alpha, double dash) {
    return polyline_clip(img, img_clip(img), x, y, n, width, c, alpha, dash);
}

void dcl_plot_line(dcl_image *img, double x0, double y0, double x1, double y1, double width, dcl_rgb c,
                   double alpha) {
    double x[2] = {x0, x1}, y[2] = {y0, y1};
    (void)dcl_plot_polyline(img, x, y, 2, width, c, alpha, 0);
}

static void disc_clip(dcl_image *img, clip cl, double cx, double cy, double r, dcl_rgb c, double alpha) {
    if (!isfinite(cx) || !isfinite(cy) || !(r > 0)) return;
    int x0 = (int)floor(cx - r - 1), x1 = (int)ceil(cx + r + 1);
    int y0 = (int)floor(cy - r - 1), y1 = (int)ceil(cy + r + 1);
    if (x0 < cl.x0) x0 = cl.x0;
    if (y0 < cl.y0) y0 = cl.y0;
    if (x1 > cl.x1) x1 = cl.x1;
    if (y1 > cl.y1) y1 = cl.y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            double cov = r + 0.5 - sqrt(dx * dx + dy * dy);
            if (cov > 0) blend_px(img, x, y, c, alpha * (cov > 1 ? 1 : cov));
        }
}

void dcl_plot_disc(dcl_image *img, double cx, double cy, double r, dcl_rgb c, double alpha) {
    disc_clip(img, img_clip(img), cx, cy, r, c, alpha);
}

void dcl_plot_blit(dcl_image *dst, const dcl_image *src, int x, int y) {
    for (int j = 0; j < src->h; j++) {
        int yy = y + j;
        if (yy < 0 || yy >= dst->h) continue;
        for (int i = 0; i < src->w; i++) {
            int xx = x + i;
            if (xx < 0 || xx >= dst->w) continue;
            memcpy(dst->data + ((size_t)yy * dst->w + xx) * 3, src->data + ((size_t)j * src->w + i) * 3, 3);
        }
    }
}

/* ------------------------------------------------------------------ */
/* the font: 5 columns x 9 rows per glyph, '#' = ink; rows 0-6 hold the  */
/* capitals and digits, rows 7-8 the descenders                          */
/* ------------------------------------------------------------------ */

#define E5 "....."
static const char *const g_font[][9] = {
    /* ' ' */ {E5, E5, E5, E5, E5, E5, E5, E5, E5},
    /* '!' */ {"..#..", "..#..", "..#..", "..#..", "..#..", E5, "..#..", E5, E5},
    /* '"' */ {".#.#.", ".#.#.", ".#.#.", E5, E5, E5, E5, E5, E5},
    /* '#' */ {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.", E5, E5},
    /* '$' */ {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#..", E5, E5},
    /* '%' */ {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", E5, E5},
    /* '&' */ {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#", E5, E5},
    /* ''' */ {"..#..", "..#..", ".#...", E5, E5, E5, E5, E5, E5},
    /* '(' */ {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", E5, E5},
    /* ')' */ {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", E5, E5},
    /* '*' */ {E5, "..#..", "#.#.#", ".###.", "#.#.#", "..#..", E5, E5, E5},
    /* '+' */ {E5, "..#..", "..#..", "#####", "..#..", "..#..", E5, E5, E5},
    /* ',' */ {E5, E5, E5, E5, E5, ".##..", ".##..", "..#..", ".#..."},
    /* '-' */ {E5, E5, E5, "#####", E5, E5, E5, E5, E5},
    /* '.' */ {E5, E5, E5, E5, E5, ".##..", ".##..", E5, E5},
    /* '/' */ {E5, "....#", "...#.", "..#..", ".#...", "#....", E5, E5, E5},
    /* '0' */ {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", E5, E5},
    /* '1' */ {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", E5, E5},
    /* '2' */ {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", E5, E5},
    /* '3' */ {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", E5, E5},
    /* '4' */ {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", E5, E5},
    /* '5' */ {"#####", "#....", "####.", "....#", "....#", "#...#", ".###.", E5, E5},
    /* '6' */ {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", E5, E5},
    /* '7' */ {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", E5, E5},
    /* '8' */ {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", E5, E5},
    /* '9' */ {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", E5, E5},
    /* ':' */ {E5, ".##..", ".##..", E5, ".##..", ".##..", E5, E5, E5},
    /* ';' */ {E5, ".##..", ".##..", E5, ".##..", ".##..", "..#..", ".#...", E5},
    /* '<' */ {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", E5, E5},
    /* '=' */ {E5, E5, "#####", E5, "#####", E5, E5, E5, E5},
    /* '>' */ {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", E5, E5},
    /* '?' */ {".###.", "#...#", "....#", "...#.", "..#..", E5, "..#..", E5, E5},
    /* '@' */ {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###.", E5, E5},
    /* 'A' */ {".###.", "#...#", "#...#", "#...#", "#####", "#...#", "#...#", E5, E5},
    /* 'B' */ {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", E5, E5},
    /* 'C' */ {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", E5, E5},
    /* 'D' */ {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", E5, E5},
    /* 'E' */ {"#####", "#....", "#....", "####.", "#....", "#....", "#####", E5, E5},
    /* 'F' */ {"#####", "#....", "#....", "####.", "#....", "#....", "#....", E5, E5},
    /* 'G' */ {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", E5, E5},
    /* 'H' */ {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", E5, E5},
    /* 'I' */ {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", E5, E5},
    /* 'J' */ {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", E5, E5},
    /* 'K' */ {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", E5, E5},
    /* 'L' */ {"#....", "#....", "#....", "#....", "#....", "#....", "#####", E5, E5},
    /* 'M' */ {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", E5, E5},
    /* 'N' */ {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", E5, E5},
    /* 'O' */ {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", E5, E5},
    /* 'P' */ {"####.", "#...#", "#...#", "####.", "#....", "#....", "#....", E5, E5},
    /* 'Q' */ {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", E5, E5},
    /* 'R' */ {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", E5, E5},
    /* 'S' */ {".####", "#....", "#....", ".###.", "....#", "....#", "####.", E5, E5},
    /* 'T' */ {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", E5, E5},
    /* 'U' */ {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", E5, E5},
    /* 'V' */ {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", E5, E5},
    /* 'W' */ {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", E5, E5},
    /* 'X' */ {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", E5, E5},
    /* 'Y' */ {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", E5, E5},
    /* 'Z' */ {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", E5, E5},
    /* '[' */ {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.", E5, E5},
    /* '\' */ {E5, "#....", ".#...", "..#..", "...#.", "....#", E5, E5, E5},
    /* ']' */ {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.", E5, E5},
    /* '^' */ {"..#..", ".#.#.", "#...#", E5, E5, E5, E5, E5, E5},
    /* '_' */ {E5, E5, E5, E5, E5, E5, E5, "#####", E5},
    /* '`' */ {".#...", "..#..", E5, E5, E5, E5, E5, E5, E5},
    /* 'a' */ {E5, E5, ".###.", "....#", ".####", "#...#", ".####", E5, E5},
    /* 'b' */ {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", E5, E5},
    /* 'c' */ {E5, E5, ".###.", "#....", "#....", "#...#", ".###.", E5, E5},
    /* 'd' */ {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", E5, E5},
    /* 'e' */ {E5, E5, ".###.", "#...#", "#####", "#....", ".###.", E5, E5},
    /* 'f' */ {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", E5, E5},
    /* 'g' */ {E5, E5, ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."},
    /* 'h' */ {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", E5, E5},
    /* 'i' */ {"..#..", E5, ".##..", "..#..", "..#..", "..#..", ".###.", E5, E5},
    /* 'j' */ {"...#.", E5, "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
    /* 'k' */ {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", E5, E5},
    /* 'l' */ {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", E5, E5},
    /* 'm' */ {E5, E5, "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", E5, E5},
    /* 'n' */ {E5, E5, "#.##.", "##..#", "#...#", "#...#", "#...#", E5, E5},
    /* 'o' */ {E5, E5, ".###.", "#...#", "#...#", "#...#", ".###.", E5, E5},
    /* 'p' */ {E5, E5, "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."},
    /* 'q' */ {E5, E5, ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"},
    /* 'r' */ {E5, E5, "#.##.", "##..#", "#....", "#....", "#....", E5, E5},
    /* 's' */ {E5, E5, ".####", "#....", ".###.", "....#", "####.", E5, E5},
    /* 't' */ {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", E5, E5},
    /* 'u' */ {E5, E5, "#...#", "#...#", "#...#", "#..##", ".##.#", E5, E5},
    /* 'v' */ {E5, E5, "#...#", "#...#", "#...#", ".#.#.", "..#..", E5, E5},
    /* 'w' */ {E5, E5, "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", E5, E5},
    /* 'x' */ {E5, E5, "#...#", ".#.#.", "..#..", ".#.#.", "#...#", E5, E5},
    /* 'y' */ {E5, E5, "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."},
    /* 'z' */ {E5, E5, "#####", "...#.", "..#..", ".#...", "#####", E5, E5},
    /* '{' */ {"...##", "..#..", "..#..", ".#...", "..#..", "..#..", "...##", E5, E5},
    /* '|' */ {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", E5},
    /* '}' */ {"##...", "..#..", "..#..", "...#.", "..#..", "..#..", "##...", E5, E5},
    /* '~' */ {E5, E5, ".#...", "#.#.#", "...#.", E5, E5, E5, E5},
    /* extra glyphs, after '~' */
    /* alpha U+03B1 */ {E5, E5, ".##.#", "#..#.", "#..#.", "#..#.", ".##.#", E5, E5},
    /* theta U+03B8 */ {".###.", "#...#", "#...#", "#####", "#...#", "#...#", ".###.", E5, E5},
    /* tau U+03C4 */ {E5, E5, "#####", "..#..", "..#..", "..#..", "...##", E5, E5},
    /* bullet U+00B7 / U+2022 */ {E5, E5, E5, ".##..", ".##..", E5, E5, E5, E5},
};
#define FONT_N ((int)(sizeof g_font / sizeof g_font[0]))

/* next glyph index of a UTF-8 string (advances *s) */
static int next_glyph(const char **s) {
    const unsigned char *p = (const unsigned char *)*s;
    unsigned cp;
    int len;
    if (p[0] < 0x80) { cp = p[0]; len = 1; }
    else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) { cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu); len = 2; }
    else if ((p[0] & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
        cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
        len = 3;
    } else if ((p[0] & 0xF8) == 0xF0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
        cp = 0xFFFD;
        len = 4;
    } else { cp = 0xFFFD; len = 1; }
    *s += len;
    if (cp >= 32 && cp < 127) return (int)cp - 32;
    switch (cp) {
    case 0x03B1: return 95;
    case 0x03B8: return 96;
    case 0x03C4: return 97;
    case 0x00B7: case 0x2022: return 98;
    default: return '?' - 32;
    }
}

int dcl_plot_text_width(const char *s, int scale) {
    int n = 0;
    if (!s) return 0;
    while (*s) { next_glyph(&s); n++; }
    return n ? (6 * n - 1) * scale : 0;
}

/* draws the text with its unrotated top-left at (x, y); rot = 1 rotates CCW
 * around that point (the text then grows upwards from (x, y)) */
static void text_raw(dcl_image *img, int x, int y, const char *s, int scale, dcl_rgb c, int rot, int bold) {
    int gx = 0;
    while (*s) {
        int g = next_glyph(&s);
        if (g < 0 || g >= FONT_N) g = '?' - 32;
        for (int r = 0; r < 9; r++)
            for (int col = 0; col < 5; col++) {
                if (g_font[g][r][col] != '#') continue;
                for (int b = 0; b <= bold; b++)
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) {
                            int u = gx + col * scale + dx + b, v = r * scale + dy;
                            if (!rot) dcl_plot_blend(img, x + u, y + v, c, 1);
                            else dcl_plot_blend(img, x + v, y - u, c, 1);
                        }
            }
        gx += 6 * scale;
    }
}

static void anchor(const char *s, int scale, int align, int *du, int *dv) {
    int w = dcl_plot_text_width(s, scale);
    int h = align & DCL_TEXT_MIDDLE ? (7 * scale) / 2 : align & DCL_TEXT_BASELINE ? 7 * scale : 0;
    int hz = align & 3;
    *du = hz == DCL_TEXT_CENTER ? w / 2 : hz == DCL_TEXT_RIGHT ? w : 0;
    *dv = h;
}

void dcl_plot_text(dcl_image *img, int x, int y, const char *s, int scale, dcl_rgb c, int align) {
    if (!s || scale < 1) return;
    int du, dv;
    anchor(s, scale, align, &du, &dv);
    text_raw(img, x - du, y - dv, s, scale, c, 0, (align & DCL_TEXT_BOLD) ? 1 : 0);
}

void dcl_plot_text_vertical(dcl_image *img, int x, int y, const char *s, int scale, dcl_rgb c, int align) {
    if (!s || scale < 1) return;
    int du, dv;
    anchor(s, scale, align, &du, &dv);
    /* text direction is up (-y), its "down" is +x */
    text_raw(img, x - dv, y + du, s, scale, c, 1, (align & DCL_TEXT_BOLD) ? 1 : 0);
}

/* ------------------------------------------------------------------ */
/* ticks and axes                                                        */
/* ------------------------------------------------------------------ */

static double nice_step(double range, int target, int *decimals) {
    if (!(range > 0) || !isfinite(range)) range = 1;
    if (target < 1) target = 1;
    double raw = range / target;
    double p = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 2.5, 5, 10};
    double step = 10 * p;
    int mi = 4;
    for (int i = 0; i < 5; i++)
        if (m[i] * p >= raw * 0.999) { step = m[i] * p; mi = i; break; }
    int dec = (int)-floor(log10(step) + 1e-9);
    if (mi == 2 && dec >= -1) dec++; /* 2.5 needs one more decimal (0.25, 2.5, but 25 needs none) */
    if (dec < 0) dec = 0;
    if (decimals) *decimals = dec;
    return step;
}

static int ticks_impl(double lo, double hi, int target, double *ticks, int max, int *decimals, int integer) {
    if (decimals) *decimals = 0;
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo) || max < 1) return 0;
    int dec;
    double step = nice_step(hi - lo, target, &dec);
    if (integer && step < 1) { step = 1; dec = 0; }
    if (decimals) *decimals = dec;
    double first = ceil(lo / step - 1e-9) * step;
    int n = 0;
    for (int i = 0; n < max; i++) {
        double t = first + i * step;
        if (t > hi + step * 1e-9) break;
        if (fabs(t) < step * 1e-9) t = 0; /* no "-0" */
        ticks[n++] = t;
    }
    return n;
}

int dcl_plot_nice_ticks(double lo, double hi, int target, double *ticks, int max, int *decimals) {
    return ticks_impl(lo, hi, target, ticks, max, decimals, 0);
}

void dcl_plot_nice_range(double *lo, double *hi) {
    double a = *lo, b = *hi;
    if (!isfinite(a) || !isfinite(b)) { *lo = 0; *hi = 1; return; }
    if (b < a) { double t = a; a = b; b = t; }
    if (b - a < 1e-12 * fmax(1, fmax(fabs(a), fabs(b)))) {
        double d = fabs(a) > 0 ? fabs(a) * 0.1 : 0.5;
        a -= d;
        b += d;
    }
    double step = nice_step(b - a, 5, NULL);
    *lo = floor(a / step + 1e-9) * step;
    *hi = ceil(b / step - 1e-9) * step;
    if (!(*hi > *lo)) *hi = *lo + step;
}

#define TEXT_SCALE 2
#define GRID_RGB dcl_rgb_make(228, 228, 228)
#define FRAME_RGB dcl_rgb_make(60, 60, 60)

static void format_tick(char *buf, size_t n, double v, int dec) { snprintf(buf, n, "%.*f", dec, v); }

double dcl_axes_px(const dcl_axes *ax, double x) {
    return ax->px0 + (x - ax->x0) / (ax->x1 - ax->x0) * (ax->px1 - ax->px0);
}
double dcl_axes_py(const dcl_axes *ax, double y) {
    return ax->py1 - (y - ax->y0) / (ax->y1 - ax->y0) * (ax->py1 - ax->py0);
}

dcl_status dcl_axes_create(dcl_axes *ax, dcl_image *img, int left, int top, int width, int height, double x0,
                           double x1, double y0, double y1, const char *title, const char *xlabel,
                           const char *ylabel) {
    return dcl_axes_create_ex(ax, img, left, top, width, height, x0, x1, y0, y1, title, xlabel, ylabel, 0);
}

dcl_status dcl_axes_create_ex(dcl_axes *ax, dcl_image *img, int left, int top, int width, int height, double x0,
                              double x1, double y0, double y1, const char *title, const char *xlabel,
                              const char *ylabel, unsigned flags) {
    memset(ax, 0, sizeof *ax);
    if (!isfinite(x0) || !isfinite(x1) || !isfinite(y0) || !isfinite(y1) || !(x1 > x0) || !(y1 > y0))
        return dcl_fail(DCL_ERR_ARG, "plot: bad axes range x [%g, %g], y [%g, %g]", x0, x1, y0, y1);
    int s = TEXT_SCALE, th = dcl_plot_text_height(s);
    double yt[32], xt[32];
    int ydec, xdec;
    int nyt = ticks_impl(y0, y1, 5, yt, 32, &ydec, (flags & DCL_AXES_YINT) != 0);
    int nxt = ticks_impl(x0, x1, 6, xt, 32, &xdec, (flags & DCL_AXES_XINT) != 0);
    int maxw = 0;
    char buf[64];
    for (int i = 0; i < nyt; i++) {
        format_tick(buf, sizeof buf, yt[i], ydec);
        int w = dcl_plot_text_width(buf, s);
        if (w > maxw) maxw = w;
    }
    int pad = 8;
    int px0 = left + pad + (ylabel && *ylabel ? th + pad : 0) + maxw + 10;
    int py0 = top + pad + (title && *title ? th + 2 * pad : 0);
    int px1 = left + width - 3 * pad;
    int py1 = top + height - pad - (xlabel && *xlabel ? th + pad : 0) - th - 10;
    if (px1 - px0 < 20 || py1 - py0 < 20)
        return dcl_fail(DCL_ERR_ARG, "plot: panel %dx%d is too small for its labels", width, height);
    ax->img = img;
    ax->px0 = px0; ax->py0 = py0; ax->px1 = px1; ax->py1 = py1;
    ax->x0 = x0; ax->x1 = x1; ax->y0 = y0; ax->y1 = y1;
    dcl_plot_rect(img, px0, py0, px1, py1, DCL_RGB_WHITE, 1);
    /* grid and ticks */
    for (int i = 0; i < nyt; i++) {
        int py = (int)floor(dcl_axes_py(ax, yt[i]));
        if (py == py1) py = py1 - 1; /* the tick at the bottom edge */
        if (py < py0 || py >= py1) continue;
        if (py > py0 && py < py1 - 1) rect_clip(img, img_clip(img), px0, py, px1, py + 1, GRID_RGB, 1);
        dcl_plot_rect(img, px0 - 5, py, px0, py + 1, FRAME_RGB, 1);
        format_tick(buf, sizeof buf, yt[i], ydec);
        dcl_plot_text(img, px0 - 8, py, buf, s, DCL_RGB_BLACK, DCL_TEXT_RIGHT | DCL_TEXT_MIDDLE);
    }
    for (int i = 0; i < nxt; i++) {
        int px = (int)floor(dcl_axes_px(ax, xt[i]));
        if (px == px1) px = px1 - 1; /* the tick at the right edge */
        if (px < px0 || px >= px1) continue;
        if (px > px0 && px < px1 - 1) rect_clip(img, img_clip(img), px, py0, px + 1, py1, GRID_RGB, 1);
        dcl_plot_rect(img, px, py1, px + 1, py1 + 5, FRAME_RGB, 1);
        format_tick(buf, sizeof buf, xt[i], xdec);
        dcl_plot_text(img, px, py1 + 9, buf, s, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_TOP);
    }
    dcl_plot_rect_outline(img, px0 - 1, py0 - 1, px1 + 1, py1 + 1, FRAME_RGB);
    if (title && *title)
        dcl_plot_text(img, (px0 + px1) / 2, top + pad, title, s, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_TOP | DCL_TEXT_BOLD);
    if (xlabel && *xlabel)
        dcl_plot_text(img, (px0 + px1) / 2, py1 + 9 + th + pad, xlabel, s, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_TOP);
    if (ylabel && *ylabel)
        dcl_plot_text_vertical(img, left + pad, (py0 + py1) / 2, ylabel, s, DCL_RGB_BLACK, DCL_TEXT_CENTER | DCL_TEXT_TOP);
    return DCL_OK;
}

static clip axes_clip(const dcl_axes *ax) { clip c = {ax->px0, ax->py0, ax->px1, ax->py1}; return c; }

dcl_status dcl_axes_line(dcl_axes *ax, const double *x, const double *y, int n, double width, dcl_rgb c,
                         double alpha, double dash) {
    if (n < 1) return DCL_OK;
    double *px = malloc(2 * (size_t)n * sizeof(double));
    if (!px) return dcl_fail(DCL_ERR_NOMEM, "plot: line of %d points", n);
    double *py = px + n;
    for (int i = 0; i < n; i++) {
        px[i] = dcl_axes_px(ax, x[i]);
        py[i] = dcl_axes_py(ax, y[i]);
    }
    dcl_status s = polyline_clip(ax->img, axes_clip(ax), px, py, n, width, c, alpha, dash);
    free(px);
    return s;
}

void dcl_axes_points(dcl_axes *ax, const double *x, const double *y, int n, double r, dcl_rgb c, double alpha) {
    for (int i = 0; i < n; i++)
        disc_clip(ax->img, axes_clip(ax), dcl_axes_px(ax, x[i]), dcl_axes_py(ax, y[i]), r, c, alpha);
}

void dcl_axes_bars(dcl_axes *ax, const double *edges, const double *h, int nbins, dcl_rgb c, double alpha) {
    double base = ax->y0 > 0 ? ax->y0 : ax->y1 < 0 ? ax->y1 : 0;
    for (int i = 0; i < nbins; i++) {
        if (!isfinite(h[i]) || h[i] == base) continue;
        double xa = dcl_axes_px(ax, edges[i]), xb = dcl_axes_px(ax, edges[i + 1]);
        double ya = dcl_axes_py(ax, h[i]), yb = dcl_axes_py(ax, base);
        double t0 = fmin(ya, yb), t1 = fmax(ya, yb);
        rect_clip(ax->img, axes_clip(ax), xa, t0, xb, t1, c, alpha);
        /* a darker outline on the top and sides so adjacent bars stay readable */
        dcl_rgb dark = dcl_rgb_make(c.r * 2 / 3, c.g * 2 / 3, c.b * 2 / 3);
        rect_clip(ax->img, axes_clip(ax), xa, t0, xb, t0 + 1, dark, fmin(1, alpha + 0.3));
        rect_clip(ax->img, axes_clip(ax), xa, t0, xa + 1, t1, dark, fmin(1, alpha + 0.3) * 0.6);
        rect_clip(ax->img, axes_clip(ax), xb - 1, t0, xb, t1, dark, fmin(1, alpha + 0.3) * 0.6);
    }
}

#define LEG_PAD 8
#define LEG_SW 28
#define LEG_GAP 6

void dcl_plot_legend_size(const dcl_legend_item *items, int n, int *w, int *h) {
    int s = TEXT_SCALE, th = dcl_plot_text_height(s), row = th + 6;
    int maxw = 0;
    for (int i = 0; i < n; i++) {
        int tw = dcl_plot_text_width(items[i].label, s);
        if (tw > maxw) maxw = tw;
    }
    *w = n > 0 ? LEG_PAD + LEG_SW + LEG_GAP + maxw + LEG_PAD : 0;
    *h = n > 0 ? LEG_PAD + n * row - 6 + LEG_PAD : 0;
}

void dcl_plot_legend(dcl_image *img, int bx, int by, const dcl_legend_item *items, int n) {
    if (n < 1) return;
    int s = TEXT_SCALE, th = dcl_plot_text_height(s), row = th + 6, bw, bh;
    dcl_plot_legend_size(items, n, &bw, &bh);
    dcl_plot_rect(img, bx, by, bx + bw, by + bh, DCL_RGB_WHITE, 0.88);
    dcl_plot_rect_outline(img, bx, by, bx + bw, by + bh, dcl_rgb_make(170, 170, 170));
    for (int i = 0; i < n; i++) {
        int ty = by + LEG_PAD + i * row, cy = ty + (7 * s) / 2;
        int sx = bx + LEG_PAD;
        switch (items[i].kind) {
        case DCL_LEGEND_LINE: dcl_plot_line(img, sx, cy + 0.5, sx + LEG_SW, cy + 0.5, 3, items[i].color, 1); break;
        case DCL_LEGEND_BOX: dcl_plot_rect(img, sx + 4, cy - 6, sx + LEG_SW - 4, cy + 7, items[i].color, 0.8); break;
        case DCL_LEGEND_DOT: dcl_plot_disc(img, sx + LEG_SW / 2.0, cy + 0.5, 5, items[i].color, 1); break;
        }
        dcl_plot_text(img, sx + LEG_SW + LEG_GAP, ty, items[i].label, s, DCL_RGB_BLACK, DCL_TEXT_LEFT | DCL_TEXT_TOP);
    }
}

void dcl_axes_legend(dcl_axes *ax, const dcl_legend_item *items, int n, dcl_corner corner) {
    if (n < 1) return;
    int bw, bh, m = 10;
    dcl_plot_legend_size(items, n, &bw, &bh);
    int left = corner == DCL_CORNER_UPPER_LEFT || corner == DCL_CORNER_LOWER_LEFT;
    int upper = corner == DCL_CORNER_UPPER_LEFT || corner == DCL_CORNER_UPPER_RIGHT;
    int bx = left ? ax->px0 + m : ax->px1 - m - bw;
    int by = upper ? ax->py0 + m : ax->py1 - m - bh;
    if (bx < ax->px0 + 1) bx = ax->px0 + 1;
    dcl_plot_legend(ax->img, bx, by, items, n);
}
