/* PNG (libpng) and JPEG (libjpeg-turbo) decoding/encoding, bilinear resize,
 * crop and normalisation of 8-bit RGB images. */
#include "dcl/io.h"
#include <stdio.h> /* before jpeglib.h, which needs FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGE_FILE_BYTES ((size_t)1 << 30)
#define JPEG_MAX_SCANS 500

dcl_status dcl_image_alloc(dcl_image *img, int w, int h) {
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0) return dcl_fail(DCL_ERR_ARG, "image size %dx%d is empty", w, h);
    size_t n = (size_t)w * (size_t)h;
    if (n > SIZE_MAX / 3) return dcl_fail(DCL_ERR_ARG, "image size %dx%d too large", w, h);
    img->data = malloc(n * 3);
    if (!img->data) return dcl_fail(DCL_ERR_NOMEM, "cannot allocate a %dx%d image", w, h);
    img->w = w;
    img->h = h;
    img->c = 3;
    return DCL_OK;
}

void dcl_image_free(dcl_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

static dcl_status check_pixels(long long w, long long h, int64_t max_pixels, const char *fmt) {
    if (w <= 0 || h <= 0) return dcl_fail(DCL_ERR_FORMAT, "%s image has empty size %lldx%lld", fmt, w, h);
    if (w > INT32_MAX || h > INT32_MAX || (max_pixels > 0 && w * h > max_pixels))
        return dcl_fail(DCL_ERR_FORMAT, "%s image %lldx%lld has more than the allowed %lld pixels", fmt, w, h,
                        (long long)max_pixels);
    return DCL_OK;
}

/* ---------------------------------------------------------------- PNG */

typedef struct png_ctx {
    const uint8_t *p;
    size_t len, pos;
    uint8_t *data;
    png_bytep *rows;
    dcl_buf out;          /* encoder output */
    dcl_status status;    /* returned after a longjmp */
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated PNG data");
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
}

static dcl_status decode_png(dcl_image *out, const uint8_t *buf, size_t len, int64_t max_pixels) {
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.p = buf;
    ctx.len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return dcl_fail(DCL_ERR_NOMEM, "cannot create a PNG decoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dcl_fail(DCL_ERR_NOMEM, "cannot create a PNG decoder");
    }
    ctx.status = DCL_OK; /* set (with its message) when failing for another reason than corrupt data */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.rows);
        free(ctx.data);
        if (ctx.status != DCL_OK) return ctx.status;
        return dcl_fail(DCL_ERR_FORMAT, "corrupt PNG: %s", ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_mem);
#if defined(PNG_IGNORE_ADLER32) && defined(PNG_SET_OPTION_SUPPORTED)
    /* every chunk's CRC-32 still guards the compressed data; zlib's own
     * Adler-32 over the inflated bytes repeats that check (4% of a loader
     * worker's time at 299x299) */
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if ((ctx.status = check_pixels(w, h, max_pixels, "PNG")) != DCL_OK) png_longjmp(png, 1);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected pixel layout after conversion to RGB");
    ctx.data = malloc((size_t)w * h * 3);
    ctx.rows = malloc((size_t)h * sizeof *ctx.rows);
    if (!ctx.data || !ctx.rows) {
        ctx.status = dcl_fail(DCL_ERR_NOMEM, "cannot allocate a %ux%u image", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) ctx.rows[y] = ctx.data + (size_t)y * w * 3;
    png_read_image(png, ctx.rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.rows);
    out->w = (int)w;
    out->h = (int)h;
    out->c = 3;
    out->data = ctx.data;
    return DCL_OK;
}

static void png_write_mem(png_structp png, png_bytep p, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (dcl_buf_append(&c->out, p, n) != DCL_OK) png_error(png, "out of memory");
}
static void png_flush_mem(png_structp png) { (void)png; }

dcl_status dcl_image_encode_png_mem(uint8_t **out, size_t *len, const dcl_image *img) {
    *out = NULL;
    *len = 0;
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || img->c != 3)
        return dcl_fail(DCL_ERR_ARG, "PNG encoder: not a valid RGB image");
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return dcl_fail(DCL_ERR_NOMEM, "cannot create a PNG encoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return dcl_fail(DCL_ERR_NOMEM, "cannot create a PNG encoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(ctx.rows);
        dcl_buf_free(&ctx.out);
        return dcl_fail(DCL_ERR_INTERNAL, "PNG encoder: %s", ctx.msg);
    }
    png_set_write_fn(png, &ctx, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    ctx.rows = malloc((size_t)img->h * sizeof *ctx.rows);
    if (!ctx.rows) png_error(png, "out of memory");
    for (int y = 0; y < img->h; y++) ctx.rows[y] = img->data + (size_t)y * img->w * 3;
    png_write_info(png, info);
    png_write_image(png, ctx.rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(ctx.rows);
    *out = (uint8_t *)ctx.out.data;
    *len = ctx.out.len;
    return DCL_OK;
}

/* --------------------------------------------------------------- JPEG */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr err;     /* first: libjpeg hands us &err */
    struct jpeg_progress_mgr prog;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 32];
    uint8_t *data;
    uint8_t *row;
    unsigned char *outbuf;         /* encoder output */
    unsigned long outlen;
    dcl_status status;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_ctx *ctx = (jpeg_ctx *)c->err;
    (*c->err->format_message)(c, ctx->msg);
    longjmp(ctx->jb, 1);
}

/* Warnings mean corrupt or truncated data: treat them as errors, except two
 * harmless ones: extra bytes before a marker, and an unusual (but decodable)
 * progressive scan script. */
static void jpeg_on_message(j_common_ptr c, int level) {
    if (level >= 0) return;
    if (c->err->msg_code == JWRN_EXTRANEOUS_DATA || c->err->msg_code == JWRN_BOGUS_PROGRESSION) return;
    jpeg_on_error(c);
}

static void jpeg_on_progress(j_common_ptr c) {
    if (!c->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_ctx *ctx = (jpeg_ctx *)c->err;
        snprintf(ctx->msg, sizeof ctx->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(ctx->jb, 1);
    }
}

static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static dcl_status decode_jpeg(dcl_image *out, const uint8_t *buf, size_t len, int64_t max_pixels) {
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.status = DCL_OK; /* set (with its message) when failing for another reason than corrupt data */
    cinfo.err = jpeg_std_error(&ctx.err);
    ctx.err.error_exit = jpeg_on_error;
    ctx.err.emit_message = jpeg_on_message;
    if (setjmp(ctx.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(ctx.data);
        free(ctx.row);
        if (ctx.status != DCL_OK) return ctx.status;
        return dcl_fail(DCL_ERR_FORMAT, "corrupt JPEG: %s", ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    ctx.prog.progress_monitor = jpeg_on_progress;
    cinfo.progress = &ctx.prog;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if ((ctx.status = check_pixels(cinfo.image_width, cinfo.image_height, max_pixels, "JPEG")) != DCL_OK)
        longjmp(ctx.jb, 1);
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    if (cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(ctx.msg, sizeof ctx.msg, "unexpected %d output components", cinfo.output_components);
        longjmp(ctx.jb, 1);
    }
    ctx.data = malloc((size_t)w * h * 3);
    if (cmyk) ctx.row = malloc((size_t)w * 4);
    if (!ctx.data || (cmyk && !ctx.row)) {
        ctx.status = dcl_fail(DCL_ERR_NOMEM, "cannot allocate a %dx%d image", w, h);
        longjmp(ctx.jb, 1);
    }
    /* Adobe CMYK JPEGs store inverted inks */
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = ctx.data + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW row = cmyk ? ctx.row : dst;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            snprintf(ctx.msg, sizeof ctx.msg, "decoder stopped early");
            longjmp(ctx.jb, 1);
        }
        if (cmyk)
            for (int x = 0; x < w; x++) {
                const uint8_t *s = ctx.row + 4 * x;
                int k = inverted ? 255 - s[3] : s[3], nk = 255 - k;
                for (int ch = 0; ch < 3; ch++) {
                    int ink = inverted ? 255 - s[ch] : s[ch];
                    dst[3 * x + ch] = (uint8_t)(nk - muldiv255(ink, nk));
                }
            }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(ctx.row);
    out->w = w;
    out->h = h;
    out->c = 3;
    out->data = ctx.data;
    return DCL_OK;
}

dcl_status dcl_image_encode_jpeg_mem(uint8_t **out, size_t *len, const dcl_image *img, int quality) {
    *out = NULL;
    *len = 0;
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || img->c != 3)
        return dcl_fail(DCL_ERR_ARG, "JPEG encoder: not a valid RGB image");
    if (img->w > JPEG_MAX_DIMENSION || img->h > JPEG_MAX_DIMENSION)
        return dcl_fail(DCL_ERR_ARG, "JPEG encoder: %dx%d exceeds the JPEG limit of %d", img->w, img->h,
                        (int)JPEG_MAX_DIMENSION);
    if (quality < 1 || quality > 100) return dcl_fail(DCL_ERR_ARG, "JPEG quality %d not in 1..100", quality);
    struct jpeg_compress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.err);
    ctx.err.error_exit = jpeg_on_error;
    ctx.err.emit_message = jpeg_on_message;
    if (setjmp(ctx.jb)) {
        jpeg_destroy_compress(&cinfo);
        free(ctx.outbuf);
        return dcl_fail(DCL_ERR_INTERNAL, "JPEG encoder: %s", ctx.msg);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &ctx.outbuf, &ctx.outlen);
    cinfo.image_width = (JDIMENSION)img->w;
    cinfo.image_height = (JDIMENSION)img->h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->data + (size_t)cinfo.next_scanline * img->w * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = ctx.outbuf;
    *len = ctx.outlen;
    return DCL_OK;
}

/* ------------------------------------------------------- load / save */

dcl_status dcl_image_decode_ex(dcl_image *out, const void *buf, size_t len, int64_t max_pixels) {
    memset(out, 0, sizeof *out);
    const uint8_t *p = buf;
    if (!p && len) return dcl_fail(DCL_ERR_ARG, "image decode: NULL buffer");
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(p, png_sig, 8)) return decode_png(out, p, len, max_pixels);
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return decode_jpeg(out, p, len, max_pixels);
    if (len < 8) return dcl_fail(DCL_ERR_FORMAT, "image data too short (%zu bytes)", len);
    return dcl_fail(DCL_ERR_FORMAT, "unsupported image format (not PNG or JPEG; starts with %02x %02x %02x %02x)",
                    p[0], p[1], p[2], p[3]);
}

dcl_status dcl_image_decode(dcl_image *out, const void *buf, size_t len) {
    return dcl_image_decode_ex(out, buf, len, DCL_IMAGE_MAX_PIXELS_DEFAULT);
}

dcl_status dcl_image_load_ex(dcl_image *out, const char *path, int64_t max_pixels) {
    memset(out, 0, sizeof *out);
    void *buf;
    size_t len;
    DCL_TRY(dcl_read_file(&buf, &len, path, MAX_IMAGE_FILE_BYTES));
    dcl_status s = dcl_image_decode_ex(out, buf, len, max_pixels);
    free(buf);
    if (s != DCL_OK) return dcl_fail_ctx(s, "%s", path);
    return DCL_OK;
}

dcl_status dcl_image_load(dcl_image *out, const char *path) {
    return dcl_image_load_ex(out, path, DCL_IMAGE_MAX_PIXELS_DEFAULT);
}

dcl_status dcl_image_save_png(const char *path, const dcl_image *img) {
    uint8_t *buf;
    size_t len;
    dcl_status s = dcl_image_encode_png_mem(&buf, &len, img);
    if (s != DCL_OK) return dcl_fail_ctx(s, "%s", path);
    s = dcl_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}

dcl_status dcl_image_save_jpeg(const char *path, const dcl_image *img, int quality) {
    uint8_t *buf;
    size_t len;
    dcl_status s = dcl_image_encode_jpeg_mem(&buf, &len, img, quality);
    if (s != DCL_OK) return dcl_fail_ctx(s, "%s", path);
    s = dcl_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}

/* ------------------------------------------------------------ resize */

/* Source index pairs and the weight of the second one, as PyTorch computes
 * them for align_corners=False (all in float). */
static void linear_coeffs(int *i0, int *i1, float *l1, int out, int in) {
    float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int i = (int)src;
        if (i > in - 1) i = in - 1;
        float lam = src - (float)i;
        if (lam > 1) lam = 1;
        i0[o] = i;
        i1[o] = i < in - 1 ? i + 1 : i;
        l1[o] = lam;
    }
}

typedef struct resize_plan {
    int *x0, *x1, *y0, *y1;
    float *lx, *ly;
} resize_plan;

static int plan_make(resize_plan *p, int dw, int dh, int sw, int sh) {
    memset(p, 0, sizeof *p);
    p->x0 = malloc(sizeof(int) * (size_t)dw * 2);
    p->y0 = malloc(sizeof(int) * (size_t)dh * 2);
    p->lx = malloc(sizeof(float) * (size_t)dw);
    p->ly = malloc(sizeof(float) * (size_t)dh);
    if (!p->x0 || !p->y0 || !p->lx || !p->ly) return -1;
    p->x1 = p->x0 + dw;
    p->y1 = p->y0 + dh;
    linear_coeffs(p->x0, p->x1, p->lx, dw, sw);
    linear_coeffs(p->y0, p->y1, p->ly, dh, sh);
    return 0;
}

static void plan_free(resize_plan *p) {
    free(p->x0);
    free(p->y0);
    free(p->lx);
    free(p->ly);
}

dcl_status dcl_resize_bilinear_f32(float *dst, int dw, int dh, const float *src, int sw, int sh, int c) {
    if (dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0 || c <= 0)
        return dcl_fail(DCL_ERR_ARG, "resize: bad sizes %dx%d -> %dx%d (%d channels)", sw, sh, dw, dh, c);
    resize_plan p;
    if (plan_make(&p, dw, dh, sw, sh) != 0) {
        plan_free(&p);
        return dcl_fail(DCL_ERR_NOMEM, "resize: out of memory");
    }
    for (int y = 0; y < dh; y++) {
        const float *r0 = src + (size_t)p.y0[y] * sw * c, *r1 = src + (size_t)p.y1[y] * sw * c;
        float ly = p.ly[y], hy = 1.0f - ly;
        float *o = dst + (size_t)y * dw * c;
        for (int x = 0; x < dw; x++) {
            size_t a = (size_t)p.x0[x] * c, b = (size_t)p.x1[x] * c;
            float lx = p.lx[x], hx = 1.0f - lx;
            for (int ch = 0; ch < c; ch++) {
                float t = r0[a + ch] * hx + r0[b + ch] * lx;
                float u = r1[a + ch] * hx + r1[b + ch] * lx;
                o[(size_t)x * c + ch] = t * hy + u * ly;
            }
        }
    }
    plan_free(&p);
    return DCL_OK;
}

dcl_status dcl_image_resize_bilinear(dcl_image *dst, int dw, int dh, const dcl_image *src) {
    if (!src || !src->data || src->w <= 0 || src->h <= 0 || src->c != 3)
        return dcl_fail(DCL_ERR_ARG, "resize: not a valid RGB source image");
    if (dw <= 0 || dh <= 0) return dcl_fail(DCL_ERR_ARG, "resize: target size %dx%d is empty", dw, dh);
    DCL_TRY(dcl_image_alloc(dst, dw, dh));
    resize_plan p;
    if (plan_make(&p, dw, dh, src->w, src->h) != 0) {
        plan_free(&p);
        dcl_image_free(dst);
        return dcl_fail(DCL_ERR_NOMEM, "resize: out of memory");
    }
    const int sw = src->w;
    for (int y = 0; y < dh; y++) {
        const uint8_t *r0 = src->data + (size_t)p.y0[y] * sw * 3, *r1 = src->data + (size_t)p.y1[y] * sw * 3;
        float ly = p.ly[y], hy = 1.0f - ly;
        uint8_t *o = dst->data + (size_t)y * dw * 3;
        for (int x = 0; x < dw; x++) {
            size_t a = (size_t)p.x0[x] * 3, b = (size_t)p.x1[x] * 3;
            float lx = p.lx[x], hx = 1.0f - lx;
            for (int ch = 0; ch < 3; ch++) {
                float t = r0[a + ch] * hx + r0[b + ch] * lx;
                float u = r1[a + ch] * hx + r1[b + ch] * lx;
                float v = t * hy + u * ly + 0.5f;
                o[(size_t)x * 3 + ch] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
            }
        }
    }
    plan_free(&p);
    return DCL_OK;
}

void dcl_image_to_tensor(float *dst_hwc, const dcl_image *img, const float mean[3], const float std[3]) {
    size_t n = (size_t)img->w * img->h;
    float m[3], s[3];
    for (int c = 0; c < 3; c++) {
        m[c] = mean ? mean[c] : 0.0f;
        s[c] = std ? std[c] : 1.0f;
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) dst_hwc[i * 3 + c] = ((float)img->data[i * 3 + c] / 255.0f - m[c]) / s[c];
}

dcl_status dcl_image_crop(dcl_image *dst, const dcl_image *src, int x0, int y0, int w, int h) {
    if (!src || !src->data || src->c != 3) return dcl_fail(DCL_ERR_ARG, "crop: not a valid RGB source image");
    DCL_TRY(dcl_image_alloc(dst, w, h));
    memset(dst->data, 0, (size_t)w * h * 3);
    long long xa = x0 > 0 ? x0 : 0, xb = (long long)x0 + w < src->w ? (long long)x0 + w : src->w;
    if (xb <= xa) return DCL_OK;
    for (int y = 0; y < h; y++) {
        long long sy = (long long)y0 + y;
        if (sy < 0 || sy >= src->h) continue;
        memcpy(dst->data + ((size_t)y * w + (size_t)(xa - x0)) * 3, src->data + ((size_t)sy * src->w + (size_t)xa) * 3,
               (size_t)(xb - xa) * 3);
    }
    return DCL_OK;
}
