/* Data views generation (DCL section 3.1) and ordinary augmentations. */
#include "dcl/views.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

dcl_views_cfg dcl_views_paper(void) {
    dcl_views_cfg c;
    memset(&c, 0, sizeof c);
    c.p_patch = 0.5f; c.patch_k = 3; c.patch_key = 1;
    c.p_srm = 0.5f; c.srm_scale = 1.0f;
    c.p_frame_shift = 0.5f;
    c.p_mixup = 0.3f; c.mixup_min = 0.5f;
    c.p_flip = 0.5f;
    c.p_crop = 0.3f; c.crop_min = 0.8f;
    c.p_jitter = 0.3f; c.jitter = 0.2f;
    c.p_blur = 0.1f; c.blur_max = 1.5f;
    c.p_jpeg = 0.2f; c.jpeg_min = 60; c.jpeg_max = 95;
    return c;
}

dcl_views_cfg dcl_views_none(void) {
    dcl_views_cfg c;
    memset(&c, 0, sizeof c);
    c.patch_k = 3;
    c.srm_scale = 1.0f;
    c.mixup_min = 0.5f;
    c.crop_min = 1.0f;
    c.jpeg_min = c.jpeg_max = 95;
    return c;
}

dcl_status dcl_sample_from_image(dcl_sample *s, const dcl_image *img, const dcl_image *mask) {
    memset(s, 0, sizeof *s);
    size_t n = (size_t)img->w * img->h;
    s->rgb = malloc(n * 3 * sizeof(float));
    s->mask = calloc(n, sizeof(float));
    if (!s->rgb || !s->mask) { dcl_sample_free(s); return dcl_fail(DCL_ERR_NOMEM, "sample %dx%d", img->w, img->h); }
    s->w = img->w;
    s->h = img->h;
    for (size_t i = 0; i < n * 3; i++) s->rgb[i] = img->data[i] * (1.0f / 255.0f);
    if (mask) {
        if (mask->w != img->w || mask->h != img->h) {
            dcl_sample_free(s);
            return dcl_fail(DCL_ERR_SHAPE, "mask %dx%d does not match crop %dx%d", mask->w, mask->h, img->w, img->h);
        }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = mask->data + 3 * i;
            s->mask[i] = (p[0] + p[1] + p[2]) * (1.0f / 765.0f);
        }
    }
    return DCL_OK;
}

void dcl_sample_free(dcl_sample *s) {
    free(s->rgb);
    free(s->mask);
    memset(s, 0, sizeof *s);
}

static float uni(dcl_rng *r, float a, float b) { return a + (b - a) * (float)dcl_rng_uniform(r); }
static int coin(dcl_rng *r, float p) { return p > 0 && dcl_rng_uniform(r) < p; }

void dcl_random_patch(dcl_sample *s, int k, const int *perm) {
    int w = s->w, h = s->h;
    float *rgb = malloc((size_t)w * h * 3 * sizeof(float)), *m = malloc((size_t)w * h * sizeof(float));
    if (!rgb || !m) { free(rgb); free(m); return; }
    memcpy(rgb, s->rgb, (size_t)w * h * 3 * sizeof(float));
    memcpy(m, s->mask, (size_t)w * h * sizeof(float));
    /* patch boundaries: floor(i*h/k); patches of unequal size are resampled
     * (nearest) into the target patch, so any k works */
    for (int t = 0; t < k * k; t++) {
        int src = perm[t];
        int ty = t / k, tx = t % k, sy = src / k, sx = src % k;
        int ty0 = ty * h / k, ty1 = (ty + 1) * h / k, tx0 = tx * w / k, tx1 = (tx + 1) * w / k;
        int sy0 = sy * h / k, sy1 = (sy + 1) * h / k, sx0 = sx * w / k, sx1 = (sx + 1) * w / k;
        for (int y = ty0; y < ty1; y++) {
            int yy = sy0 + (int)((long)(y - ty0) * (sy1 - sy0) / (ty1 - ty0));
            for (int x = tx0; x < tx1; x++) {
                int xx = sx0 + (int)((long)(x - tx0) * (sx1 - sx0) / (tx1 - tx0));
                memcpy(s->rgb + ((size_t)y * w + x) * 3, rgb + ((size_t)yy * w + xx) * 3, 3 * sizeof(float));
                s->mask[(size_t)y * w + x] = m[(size_t)yy * w + xx];
            }
        }
    }
    free(rgb);
    free(m);
}

static void flip(dcl_sample *s) {
    for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w / 2; x++) {
            int x2 = s->w - 1 - x;
            for (int c = 0; c < 3; c++) {
                float *a = &s->rgb[((size_t)y * s->w + x) * 3 + c], *b = &s->rgb[((size_t)y * s->w + x2) * 3 + c];
                float t = *a; *a = *b; *b = t;
            }
            float *a = &s->mask[(size_t)y * s->w + x], *b = &s->mask[(size_t)y * s->w + x2];
            float t = *a; *a = *b; *b = t;
        }
}

static void resized_crop(dcl_sample *s, dcl_rng *r, float min_area) {
    int w = s->w, h = s->h;
    float area = uni(r, min_area, 1.0f), ratio = expf(uni(r, logf(3.0f / 4), logf(4.0f / 3)));
    int cw = (int)lroundf(sqrtf(area * w * h * ratio)), ch = (int)lroundf(sqrtf(area * w * h / ratio));
    if (cw > w) cw = w;
    if (ch > h) ch = h;
    if (cw < 2 || ch < 2) return;
    int x0 = (int)dcl_rng_below(r, (uint32_t)(w - cw + 1)), y0 = (int)dcl_rng_below(r, (uint32_t)(h - ch + 1));
    float *crop = malloc((size_t)cw * ch * 4 * sizeof(float));
    if (!crop) return;
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) {
            size_t si = (size_t)(y0 + y) * w + (x0 + x), di = (size_t)y * cw + x;
            memcpy(crop + di * 4, s->rgb + si * 3, 3 * sizeof(float));
            crop[di * 4 + 3] = s->mask[si];
        }
    float *out = malloc((size_t)w * h * 4 * sizeof(float));
    if (out) {
        dcl_resize_bilinear_f32(out, w, h, crop, cw, ch, 4);
        for (size_t i = 0; i < (size_t)w * h; i++) {
            memcpy(s->rgb + i * 3, out + i * 4, 3 * sizeof(float));
            s->mask[i] = out[i * 4 + 3];
        }
    }
    free(out);
    free(crop);
}

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static void color_jitter(dcl_sample *s, dcl_rng *r, float j) {
    float b = uni(r, 1 - j, 1 + j), c = uni(r, 1 - j, 1 + j), sat = uni(r, 1 - j, 1 + j);
    size_t n = (size_t)s->w * s->h;
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += 0.299 * s->rgb[3 * i] + 0.587 * s->rgb[3 * i + 1] + 0.114 * s->rgb[3 * i + 2];
    mean /= n ? n : 1;
    for (size_t i = 0; i < n; i++) {
        float *p = s->rgb + 3 * i;
        for (int k = 0; k < 3; k++) p[k] = clamp01(p[k] * b);
        for (int k = 0; k < 3; k++) p[k] = clamp01((float)((p[k] - mean * b) * c + mean * b));
        float g = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        for (int k = 0; k < 3; k++) p[k] = clamp01(g + (p[k] - g) * sat);
    }
}

/* index i of a row of n mirrored at the ends (-1 -> 1, n -> n-2), clamped
 * for rows too short to mirror */
static inline int reflect(int i, int n) {
    int r = i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
    return r < 0 ? 0 : r >= n ? n - 1 : r;
}

void dcl_gaussian_blur(dcl_sample *s, float sigma) {
    int rad = (int)ceilf(3 * sigma);
    if (rad < 1) return;
    int kn = 2 * rad + 1;
    float *k = malloc(kn * sizeof(float));
    float *tmp = malloc((size_t)s->w * s->h * 3 * sizeof(float));
    if (!k || !tmp) { free(k); free(tmp); return; }
    float sum = 0;
    for (int i = 0; i < kn; i++) { k[i] = expf(-(float)((i - rad) * (i - rad)) / (2 * sigma * sigma)); sum += k[i]; }
    for (int i = 0; i < kn; i++) k[i] /= sum;
    /* Separable, reflected borders, taps added in the same order as a direct
     * loop with reflected indices (results within 2 ulp of it: the compiler
     * fuses multiply-adds differently in the two): the horizontal pass reads
     * a reflected copy of the row, the vertical one reflected row pointers;
     * both run along whole interleaved rows, which vectorise. */
    int w = s->w, h = s->h;
    const size_t W3 = (size_t)w * 3;
    float *pad = malloc((W3 + (size_t)6 * rad) * sizeof(float)), *acc = malloc(W3 * sizeof(float));
    const float **rows = malloc((size_t)kn * sizeof(float *));
    if (!pad || !acc || !rows) { free(pad); free(acc); free(rows); free(k); free(tmp); return; }
    for (int y = 0; y < h; y++) {
        const float *src = s->rgb + (size_t)y * W3;
        for (int x = -rad; x < w + rad; x++)
            memcpy(pad + (size_t)(x + rad) * 3, src + (size_t)reflect(x, w) * 3, 3 * sizeof(float));
        float *o = tmp + (size_t)y * W3;
        for (size_t j = 0; j < W3; j++) o[j] = 0;
        for (int i = 0; i < kn; i++) {
            const float ki = k[i], *pr = pad + (size_t)i * 3;
            for (size_t j = 0; j < W3; j++) o[j] += ki * pr[j];
        }
    }
    for (int y = 0; y < h; y++) {
        for (int i = -rad; i <= rad; i++) rows[i + rad] = tmp + (size_t)reflect(y + i, h) * W3;
        for (size_t j = 0; j < W3; j++) acc[j] = 0;
        for (int i = 0; i < kn; i++) {
            const float ki = k[i], *pr = rows[i];
            for (size_t j = 0; j < W3; j++) acc[j] += ki * pr[j];
        }
        memcpy(s->rgb + (size_t)y * W3, acc, W3 * sizeof(float));
    }
    free(pad);
    free(acc);
    free(rows);
    free(k);
    free(tmp);
}

static void jpeg_recompress(dcl_sample *s, int q) {
    dcl_image img;
    if (dcl_image_alloc(&img, s->w, s->h)) return;
    size_t n = (size_t)s->w * s->h * 3;
    for (size_t i = 0; i < n; i++) {
        /* lroundf of v in [0, 255] (checked over every float there), vectorisable */
        const float v = clamp01(s->rgb[i]) * 255.0f;
        const int r = (int)v;
        img.data[i] = (uint8_t)(r + (v - (float)r >= 0.5f));
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    dcl_image dec = {0};
    if (!dcl_image_encode_jpeg_mem(&buf, &len, &img, q) && !dcl_image_decode(&dec, buf, len) &&
        dec.w == s->w && dec.h == s->h)
        for (size_t i = 0; i < n; i++) s->rgb[i] = dec.data[i] * (1.0f / 255.0f);
    free(buf);
    dcl_image_free(&dec);
    dcl_image_free(&img);
}

dcl_status dcl_view_apply(dcl_sample *s, const dcl_sample *real, int is_fake, int key,
                          const dcl_views_cfg *c, dcl_rng *r) {
    size_t n = (size_t)s->w * s->h;
    if (is_fake && real && real->w == s->w && real->h == s->h && coin(r, c->p_mixup)) {
        float lam = uni(r, c->mixup_min, 1.0f);
        for (size_t i = 0; i < n * 3; i++) s->rgb[i] = lam * s->rgb[i] + (1 - lam) * real->rgb[i];
        for (size_t i = 0; i < n; i++) s->mask[i] *= lam;
    }
    if (coin(r, c->p_jpeg)) {
        int lo = c->jpeg_min, hi = c->jpeg_max < lo ? lo : c->jpeg_max;
        jpeg_recompress(s, lo + (int)dcl_rng_below(r, (uint32_t)(hi - lo + 1)));
    }
    if (coin(r, c->p_flip)) flip(s);
    if (coin(r, c->p_crop)) resized_crop(s, r, c->crop_min);
    if (coin(r, c->p_jitter)) color_jitter(s, r, c->jitter);
    if (coin(r, c->p_blur)) dcl_gaussian_blur(s, uni(r, 0.1f, c->blur_max));
    if ((!key || c->patch_key) && c->patch_k >= 2 && coin(r, c->p_patch)) {
        int kk = c->patch_k * c->patch_k;
        int *perm = malloc(kk * sizeof(int));
        if (!perm) return dcl_fail(DCL_ERR_NOMEM, "patch permutation");
        for (int i = 0; i < kk; i++) perm[i] = i;
        for (int i = kk - 1; i > 0; i--) {
            int j = (int)dcl_rng_below(r, (uint32_t)(i + 1));
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        dcl_random_patch(s, c->patch_k, perm);
        free(perm);
    }
    return DCL_OK;
}

/* The standard SRM filters: second-order (1/4), "KV" 5x5 (1/12), first-order
 * horizontal second difference (1/2). */
const float dcl_srm_kernels[3][25] = {
    {0, 0, 0, 0, 0, 0, -0.25f, 0.5f, -0.25f, 0, 0, 0.5f, -1.0f, 0.5f, 0, 0, -0.25f, 0.5f, -0.25f, 0, 0, 0, 0, 0, 0},
    {-1 / 12.f, 2 / 12.f, -2 / 12.f, 2 / 12.f, -1 / 12.f, 2 / 12.f, -6 / 12.f, 8 / 12.f, -6 / 12.f, 2 / 12.f,
     -2 / 12.f, 8 / 12.f, -12 / 12.f, 8 / 12.f, -2 / 12.f, 2 / 12.f, -6 / 12.f, 8 / 12.f, -6 / 12.f, 2 / 12.f,
     -1 / 12.f, 2 / 12.f, -2 / 12.f, 2 / 12.f, -1 / 12.f},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5f, -1.0f, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

void dcl_srm_residuals(float *dst, const float *rgb, int w, int h) {
    /* the grey image with a 2-pixel zero border: every tap reads memory, the
     * rows vectorise, and a tap outside the image adds k * 0 as zero padding
     * does; zero taps are skipped (they add nothing).  Taps are added in the
     * same order as a direct loop over (dy, dx). */
    const int W = w + 4;
    float *g = calloc((size_t)W * (h + 4), sizeof(float));
    float *acc = malloc((size_t)3 * w * sizeof(float));
    if (!g || !acc) { free(g); free(acc); memset(dst, 0, (size_t)w * h * 3 * sizeof(float)); return; }
    for (int y = 0; y < h; y++) {
        float *gr = g + (size_t)(y + 2) * W + 2;
        const float *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) gr[x] = 255.0f * (0.299f * p[3 * x] + 0.587f * p[3 * x + 1] + 0.114f * p[3 * x + 2]);
    }
    for (int y = 0; y < h; y++) {
        for (int j = 0; j < 3; j++) {
            float *a = acc + (size_t)j * w;
            for (int x = 0; x < w; x++) a[x] = 0;
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) {
                    const float k = dcl_srm_kernels[j][(dy + 2) * 5 + dx + 2];
                    if (k == 0) continue;
                    const float *gr = g + (size_t)(y + 2 + dy) * W + 2 + dx;
                    for (int x = 0; x < w; x++) a[x] += k * gr[x];
                }
        }
        float *o = dst + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            for (int j = 0; j < 3; j++) {
                float v = acc[(size_t)j * w + x];
                v = v < -3 ? -3 : v > 3 ? 3 : v;
                o[3 * x + j] = v / 3.0f;
            }
    }
    free(g);
    free(acc);
}

void dcl_view_finish(float *dst, const dcl_sample *s, const float mean[3], const float std[3],
                     const dcl_views_cfg *c, dcl_rng *r) {
    size_t n = (size_t)s->w * s->h;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) dst[3 * i + k] = (s->rgb[3 * i + k] - mean[k]) / std[k];
    if (coin(r, c->p_srm)) {
        float *res = malloc(n * 3 * sizeof(float));
        if (!res) return;
        dcl_srm_residuals(res, s->rgb, s->w, s->h);
        for (size_t i = 0; i < n * 3; i++) dst[i] += c->srm_scale * res[i];
        free(res);
    }
}
