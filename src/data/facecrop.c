/* Square face crops: the detector's box enlarged by a factor around its
 * centre, zero outside the image, resized to size x size (bilinear).  The
 * window is returned so that masks can be cropped the same way. */
#include "dcl/face.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CROP_MAX_SIDE (1 << 16)   /* windows beyond this are refused */

void dcl_facecrop_opts_default(dcl_facecrop_opts *o) {
    o->scale = 1.3f;
    o->size = 299;
    o->all_faces = 0;
}

dcl_status dcl_face_crop_rect(dcl_crop_rect *r, float x1, float y1, float x2, float y2, float scale) {
    if (!r) return dcl_fail(DCL_ERR_ARG, "face crop: NULL rectangle");
    if (!(isfinite(x1) && isfinite(y1) && isfinite(x2) && isfinite(y2)))
        return dcl_fail(DCL_ERR_ARG, "face crop: box (%g, %g, %g, %g) is not finite", x1, y1, x2, y2);
    if (!(x2 >= x1 && y2 >= y1))
        return dcl_fail(DCL_ERR_ARG, "face crop: box (%g, %g, %g, %g) has x2 < x1 or y2 < y1", x1, y1, x2, y2);
    if (!(scale > 0.0f && scale <= 100.0f))
        return dcl_fail(DCL_ERR_ARG, "face crop: scale %g must be in (0, 100]", scale);
    double bw = (double)x2 - x1, bh = (double)y2 - y1;
    double side = floor((bw > bh ? bw : bh) * scale + 0.5);
    if (side < 1) side = 1;
    if (side > CROP_MAX_SIDE)
        return dcl_fail(DCL_ERR_ARG, "face crop: window side %.0f exceeds %d pixels", side, CROP_MAX_SIDE);
    double cx = 0.5 * ((double)x1 + x2), cy = 0.5 * ((double)y1 + y2);
    double x0 = floor(cx - side / 2 + 0.5), y0 = floor(cy - side / 2 + 0.5);
    if (fabs(x0) > 1e9 || fabs(y0) > 1e9)
        return dcl_fail(DCL_ERR_ARG, "face crop: box (%g, %g, %g, %g) is too far out", x1, y1, x2, y2);
    r->x0 = (int)x0;
    r->y0 = (int)y0;
    r->side = (int)side;
    return DCL_OK;
}

static dcl_status check_apply(const dcl_crop_rect *r, int size) {
    if (!r || r->side < 1 || r->side > CROP_MAX_SIDE)
        return dcl_fail(DCL_ERR_ARG, "face crop: bad window (side %d)", r ? r->side : 0);
    if (size < 1 || size > CROP_MAX_SIDE)
        return dcl_fail(DCL_ERR_ARG, "face crop: output size %d must be in [1, %d]", size, CROP_MAX_SIDE);
    return DCL_OK;
}

dcl_status dcl_face_crop_apply(dcl_image *dst, const dcl_image *src, const dcl_crop_rect *r, int size) {
    if (!dst) return dcl_fail(DCL_ERR_ARG, "face crop: NULL output");
    memset(dst, 0, sizeof *dst);
    if (!src || !src->data || src->c != 3 || src->w <= 0 || src->h <= 0)
        return dcl_fail(DCL_ERR_ARG, "face crop: not a valid RGB source image");
    DCL_TRY(check_apply(r, size));
    dcl_image win = {0};
    DCL_TRY(dcl_image_crop(&win, src, r->x0, r->y0, r->side, r->side));
    if (r->side == size) {
        *dst = win;
        return DCL_OK;
    }
    dcl_status s = dcl_image_resize_bilinear(dst, size, size, &win);
    dcl_image_free(&win);
    return s;
}

dcl_status dcl_face_crop_apply_f32(float *dst, const float *src, int w, int h, int c,
                                   const dcl_crop_rect *r, int size) {
    if (!dst || !src || w <= 0 || h <= 0 || c <= 0)
        return dcl_fail(DCL_ERR_ARG, "face crop: bad float source (%dx%dx%d)", w, h, c);
    DCL_TRY(check_apply(r, size));
    size_t n = (size_t)r->side * r->side * c;
    float *win = calloc(n, sizeof(float));
    if (!win) return dcl_fail(DCL_ERR_NOMEM, "face crop: cannot allocate a %d x %d window", r->side, r->side);
    long long xa = r->x0 > 0 ? r->x0 : 0, xb = (long long)r->x0 + r->side < w ? (long long)r->x0 + r->side : w;
    if (xb > xa)
        for (int y = 0; y < r->side; y++) {
            long long sy = (long long)r->y0 + y;
            if (sy < 0 || sy >= h) continue;
            memcpy(win + ((size_t)y * r->side + (size_t)(xa - r->x0)) * c, src + ((size_t)sy * w + (size_t)xa) * c,
                   (size_t)(xb - xa) * c * sizeof(float));
        }
    dcl_status s = DCL_OK;
    if (r->side == size) memcpy(dst, win, n * sizeof(float));
    else s = dcl_resize_bilinear_f32(dst, size, size, win, r->side, r->side, c);
    free(win);
    return s;
}

int dcl_face_largest(const dcl_face *faces, int n) {
    int best = -1;
    float ba = 0;
    for (int i = 0; i < n; i++) {
        float a = (faces[i].x2 - faces[i].x1) * (faces[i].y2 - faces[i].y1);
        if (best < 0 || a > ba) { best = i; ba = a; }
    }
    return best;
}

void dcl_face_crops_free(dcl_image *crops, dcl_crop_rect *rects, int ncrops) {
    if (crops)
        for (int i = 0; i < ncrops; i++) dcl_image_free(&crops[i]);
    free(crops);
    free(rects);
}

dcl_status dcl_face_crops(dcl_image **crops, dcl_crop_rect **rects, int *ncrops,
                          const dcl_image *src, const dcl_face *faces, int nfaces,
                          const dcl_facecrop_opts *opts) {
    if (!crops || !ncrops) return dcl_fail(DCL_ERR_ARG, "face crops: NULL output");
    *crops = NULL;
    *ncrops = 0;
    if (rects) *rects = NULL;
    if (nfaces < 0 || (nfaces > 0 && !faces)) return dcl_fail(DCL_ERR_ARG, "face crops: bad face list (%d)", nfaces);
    dcl_facecrop_opts def;
    if (!opts) {
        dcl_facecrop_opts_default(&def);
        opts = &def;
    }
    if (nfaces == 0) return DCL_OK;
    int first = 0, count = nfaces;
    if (!opts->all_faces) {
        first = dcl_face_largest(faces, nfaces);
        count = 1;
    }
    dcl_image *out = calloc((size_t)count, sizeof *out);
    dcl_crop_rect *rr = calloc((size_t)count, sizeof *rr);
    if (!out || !rr) {
        free(out);
        free(rr);
        return dcl_fail(DCL_ERR_NOMEM, "face crops: out of memory");
    }
    for (int k = 0; k < count; k++) {
        const dcl_face *f = &faces[first + k];
        dcl_status s = dcl_face_crop_rect(&rr[k], f->x1, f->y1, f->x2, f->y2, opts->scale);
        if (!s) s = dcl_face_crop_apply(&out[k], src, &rr[k], opts->size);
        if (s) {
            dcl_face_crops_free(out, rr, count);
            return dcl_fail_ctx(s, "face %d", first + k);
        }
    }
    *crops = out;
    *ncrops = count;
    if (rects) *rects = rr;
    else free(rr);
    return DCL_OK;
}
