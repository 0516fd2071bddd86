/* A small raster plotting layer for the report's PNG figures: anti-aliased
 * lines, discs and rectangles with alpha, a built-in 5x9 bitmap font (ASCII
 * plus a few Greek letters), and 2-D axes with "nice" ticks, grid, labels and
 * legends.  Everything draws into an 8-bit RGB dcl_image; encode it with
 * dcl_image_encode_png_mem / dcl_image_save_png.  No global state, no
 * external font or graphics library: the output is the same bit for bit on
 * every machine (docs/REPORT.md explains the choice).
 *
 * Coordinates are in pixels with (0,0) the top-left corner of the image;
 * pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is (i+0.5, j+0.5).
 * Drawing outside the image (or outside an axes' plot area for the axes_*
 * functions) is clipped.
 */
#ifndef DCL_PLOT_H
#define DCL_PLOT_H
#include "dcl/io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_rgb { uint8_t r, g, b; } dcl_rgb;

static inline dcl_rgb dcl_rgb_make(int r, int g, int b) {
    dcl_rgb c = {(uint8_t)r, (uint8_t)g, (uint8_t)b};
    return c;
}
#define DCL_RGB_BLACK dcl_rgb_make(0, 0, 0)
#define DCL_RGB_WHITE dcl_rgb_make(255, 255, 255)

/* Ten well-separated categorical colours (blue, orange, green, red, purple,
 * brown, pink, grey, olive, cyan); i is taken modulo 10 (negative i too). */
dcl_rgb dcl_plot_palette(int i);
/* Jet-like colormap: 0 dark blue, 0.125 blue, 0.375 cyan, 0.625 yellow,
 * 0.875 red, 1 dark red; t is clamped to [0, 1] (NaN gives 0). */
dcl_rgb dcl_plot_jet(double t);

/* Allocates a w x h image filled with bg (w, h in 1..16384). */
dcl_status dcl_plot_canvas(dcl_image *img, int w, int h, dcl_rgb bg);

/* Blends colour c with opacity alpha (0..1) into pixel (x, y) by
 * dst + alpha (c - dst), rounded; ignored outside the image. */
void dcl_plot_blend(dcl_image *img, int x, int y, dcl_rgb c, double alpha);
/* Filled axis-aligned rectangle [x0,x1) x [y0,y1) (fractional edges are
 * anti-aliased by area coverage). */
void dcl_plot_rect(dcl_image *img, double x0, double y0, double x1, double y1, dcl_rgb c, double alpha);
/* One-pixel-wide crisp outline of the integer rectangle [x0,x1) x [y0,y1). */
void dcl_plot_rect_outline(dcl_image *img, int x0, int y0, int x1, int y1, dcl_rgb c);
/* Anti-aliased segment of the given width with round caps. */
void dcl_plot_line(dcl_image *img, double x0, double y0, double x1, double y1, double width, dcl_rgb c,
                   double alpha);
/* Anti-aliased polyline through n points (round joins; every pixel is
 * blended once, so a translucent line does not darken at its joints).
 * dash > 0 draws dashes and gaps of that many pixels.  Points with a
 * non-finite coordinate break the line. */
dcl_status dcl_plot_polyline(dcl_image *img, const double *x, const double *y, int n, double width, dcl_rgb c,
                             double alpha, double dash);
/* Anti-aliased filled disc. */
void dcl_plot_disc(dcl_image *img, double cx, double cy, double r, dcl_rgb c, double alpha);
/* Copies src into dst with its top-left corner at (x, y) (clipped). */
void dcl_plot_blit(dcl_image *dst, const dcl_image *src, int x, int y);

/* ---- text: the built-in 5x9 font scaled by an integer factor ----
 * A glyph cell is 6*scale wide; a line is 9*scale tall (rows 0-6 capitals,
 * 7-8 descenders).  Strings are UTF-8: printable ASCII, plus the Greek
 * letters alpha, theta, tau, and the bullet; other characters are drawn as
 * '?'.  '\n' is not special. */
enum {
    DCL_TEXT_LEFT = 0, DCL_TEXT_CENTER = 1, DCL_TEXT_RIGHT = 2,  /* horizontal anchor */
    DCL_TEXT_TOP = 0, DCL_TEXT_MIDDLE = 4, DCL_TEXT_BASELINE = 8, /* vertical anchor (middle of the capitals) */
    DCL_TEXT_BOLD = 16
};
int dcl_plot_text_width(const char *s, int scale);
static inline int dcl_plot_text_height(int scale) { return 9 * scale; }
/* Draws s anchored at (x, y) by the align flags. */
void dcl_plot_text(dcl_image *img, int x, int y, const char *s, int scale, dcl_rgb c, int align);
/* Same, rotated 90 degrees counter-clockwise (reads bottom to top); the
 * anchor flags refer to the rotated text's own directions. */
void dcl_plot_text_vertical(dcl_image *img, int x, int y, const char *s, int scale, dcl_rgb c, int align);

/* ---- axes ---- */

/* Up to max ticks at multiples of a "nice" step (1, 2, 2.5 or 5 times a power
 * of ten) inside [lo, hi], aiming at about `target` of them; returns the
 * count and the number of decimals that prints the step exactly. */
int dcl_plot_nice_ticks(double lo, double hi, int target, double *ticks, int max, int *decimals);
/* Widens [*lo, *hi] to a nice step (and to a non-empty range). */
void dcl_plot_nice_range(double *lo, double *hi);

typedef struct dcl_axes {
    dcl_image *img;
    int px0, py0, px1, py1;     /* plot area in pixels: [px0, px1) x [py0, py1) */
    double x0, x1, y0, y1;      /* data range shown */
} dcl_axes;

/* Lays out a panel in the rectangle (left, top, width, height) of img: title
 * on top, y label rotated on the left, x label at the bottom, tick labels,
 * light grid, frame.  The data range must be finite with x0 < x1, y0 < y1
 * (DCL_ERR_ARG otherwise; nothing is drawn). */
dcl_status dcl_axes_create(dcl_axes *ax, dcl_image *img, int left, int top, int width, int height, double x0,
                           double x1, double y0, double y1, const char *title, const char *xlabel,
                           const char *ylabel);
/* Same with flags: DCL_AXES_XINT / DCL_AXES_YINT put the ticks of that axis on
 * integers only (epochs, counts). */
enum { DCL_AXES_XINT = 1, DCL_AXES_YINT = 2 };
dcl_status dcl_axes_create_ex(dcl_axes *ax, dcl_image *img, int left, int top, int width, int height, double x0,
                              double x1, double y0, double y1, const char *title, const char *xlabel,
                              const char *ylabel, unsigned flags);
/* Data to pixel coordinates (continuous). */
double dcl_axes_px(const dcl_axes *ax, double x);
double dcl_axes_py(const dcl_axes *ax, double y);
/* Polyline in data coordinates, clipped to the plot area. */
dcl_status dcl_axes_line(dcl_axes *ax, const double *x, const double *y, int n, double width, dcl_rgb c,
                         double alpha, double dash);
/* Discs of radius r (pixels) at n data points, clipped to the plot area. */
void dcl_axes_points(dcl_axes *ax, const double *x, const double *y, int n, double r, dcl_rgb c, double alpha);
/* Histogram bars: bin i spans [edges[i], edges[i+1]) with height h[i]. */
void dcl_axes_bars(dcl_axes *ax, const double *edges, const double *h, int nbins, dcl_rgb c, double alpha);

typedef enum dcl_legend_kind { DCL_LEGEND_LINE = 0, DCL_LEGEND_BOX = 1, DCL_LEGEND_DOT = 2 } dcl_legend_kind;
typedef struct dcl_legend_item {
    const char *label;
    dcl_rgb color;
    dcl_legend_kind kind;
} dcl_legend_item;
typedef enum dcl_corner {
    DCL_CORNER_UPPER_LEFT = 0, DCL_CORNER_UPPER_RIGHT, DCL_CORNER_LOWER_LEFT, DCL_CORNER_LOWER_RIGHT
} dcl_corner;
/* A framed legend box inside the plot area's corner. */
void dcl_axes_legend(dcl_axes *ax, const dcl_legend_item *items, int n, dcl_corner corner);
/* Size of a legend box, and the box drawn with its top-left corner at (x, y). */
void dcl_plot_legend_size(const dcl_legend_item *items, int n, int *w, int *h);
void dcl_plot_legend(dcl_image *img, int x, int y, const dcl_legend_item *items, int n);

#ifdef __cplusplus
}
#endif
#endif
