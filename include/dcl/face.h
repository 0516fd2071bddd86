/* Face detection (MTCNN) and face crops.
 *
 * The detector is MTCNN (Zhang et al. 2016: P-Net on an image pyramid, then
 * R-Net and O-Net on candidate windows) with the weights and the exact
 * procedure of facenet-pytorch 2.6.0's MTCNN (its detect_face): area
 * interpolation for the pyramid and for the 24x24 / 48x48 candidates, inputs
 * (pixel - 127.5) * 0.0078125, box regression, squaring ("rerec"), NMS
 * thresholds 0.5 (within a scale) and 0.7 (across scales) after P-Net, 0.7
 * after R-Net and 0.7 with the "Min" overlap after O-Net.  The weights file
 * is made by tools/convert_mtcnn.py (models/mtcnn.safetensors).
 *
 * A dcl_mtcnn object keeps planned networks for the pyramid levels it has
 * seen (frames of one size reuse them); it is not thread-safe: use one per
 * thread.
 */
#ifndef DCL_FACE_H
#define DCL_FACE_H
#include "dcl/core.h"
#include "dcl/io.h"
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One detected face, in pixel coordinates of the input image (x to the
 * right, y down; a pixel's centre is at integer + 0.5 in facenet-pytorch's
 * convention).  Boxes may extend beyond the image. */
typedef struct dcl_face {
    float x1, y1, x2, y2;
    float score;           /* O-Net face probability */
    /* landmarks (x, y) in O-Net's order: the two eyes, the nose tip and the
     * two mouth corners, eyes and mouth corners image-left first */
    float lm[5][2];
} dcl_face;

typedef struct dcl_mtcnn_opts {
    /* double, like Python's floats in facenet-pytorch: the pyramid's scales
     * and sizes come out identical */
    double min_face_size;    /* smallest face searched for, pixels (20) */
    double factor;           /* pyramid scale step (0.709) */
    float thresholds[3];     /* P-, R-, O-net score thresholds (0.6, 0.7, 0.7),
                                compared with float32 probabilities */
    /* Pyramid levels whose P-Net input would have a side longer than this
     * are skipped (huge images: the smallest faces searched for become
     * larger, the work and memory stay bounded).  0: no cap (a level of
     * more than 2^28 pixels is then an error).  Default 2048, which leaves
     * images up to 3413 pixels on their longest side untouched (with
     * min_face_size 20); facenet-pytorch has no cap. */
    int max_pyramid_side;
} dcl_mtcnn_opts;

void dcl_mtcnn_opts_default(dcl_mtcnn_opts *o);

typedef struct dcl_mtcnn dcl_mtcnn;

/* Loads models/mtcnn.safetensors (every tensor is checked by name and shape).
 * be: the backend the three networks run on (e.g. dcl_backend_create("cpu",
 * threads)); it must outlive the detector. */
dcl_status dcl_mtcnn_create(dcl_mtcnn **out, dcl_backend *be, const char *weights_path);
void dcl_mtcnn_free(dcl_mtcnn *m);

/* Detects the faces of an 8-bit RGB image.  opts may be NULL (defaults).
 * *faces is malloc'ed (free() it; NULL when *n == 0), ordered by decreasing
 * score.  Images too small for the smallest pyramid level give no faces. */
dcl_status dcl_mtcnn_detect(dcl_mtcnn *m, const dcl_image *img, const dcl_mtcnn_opts *opts,
                            dcl_face **faces, int *n);

/* ---- face crops ----
 *
 * The crop window of a face is the square of side
 *   side = max(1, round(max(x2 - x1, y2 - y1) * scale))
 * centred on the box centre ((x1 + x2) / 2, (y1 + y2) / 2):
 *   x0 = floor(cx - side / 2 + 0.5), y0 = floor(cy - side / 2 + 0.5).
 * Pixels of the window outside the image are zero.  The window is resized
 * to size x size with dcl_image_resize_bilinear.  The same window applied to
 * a mask (dcl_face_crop_apply / dcl_face_crop_apply_f32) crops it
 * identically. */
typedef struct dcl_crop_rect {
    int x0, y0;     /* top-left corner in the source image (may be negative) */
    int side;       /* width = height of the window in source pixels */
} dcl_crop_rect;

typedef struct dcl_facecrop_opts {
    float scale;    /* window side / longer box side (1.3) */
    int size;       /* output side in pixels (299) */
    int all_faces;  /* 0: only the largest face (box area); 1: every face */
} dcl_facecrop_opts;

void dcl_facecrop_opts_default(dcl_facecrop_opts *o);

/* The window of box (x1, y1, x2, y2) enlarged by scale (> 0). */
dcl_status dcl_face_crop_rect(dcl_crop_rect *r, float x1, float y1, float x2, float y2, float scale);
/* dst (allocated, size x size) = window r of src, zero outside, resized. */
dcl_status dcl_face_crop_apply(dcl_image *dst, const dcl_image *src, const dcl_crop_rect *r, int size);
/* Same on float HWC data with c channels (a mask, a map): dst holds
 * size*size*c floats. */
dcl_status dcl_face_crop_apply_f32(float *dst, const float *src, int w, int h, int c,
                                   const dcl_crop_rect *r, int size);
/* Index of the face with the largest box area (first on ties), -1 if n == 0. */
int dcl_face_largest(const dcl_face *faces, int n);
/* Crops of the largest face or of every face (opts may be NULL: defaults).
 * *crops and *rects are malloc'ed arrays of *ncrops entries (NULL when
 * there are none; rects may be NULL when not wanted); free each crop with
 * dcl_image_free and the arrays with free(), or use dcl_face_crops_free. */
dcl_status dcl_face_crops(dcl_image **crops, dcl_crop_rect **rects, int *ncrops,
                          const dcl_image *src, const dcl_face *faces, int nfaces,
                          const dcl_facecrop_opts *opts);
void dcl_face_crops_free(dcl_image *crops, dcl_crop_rect *rects, int ncrops);

#ifdef __cplusplus
}
#endif
#endif
