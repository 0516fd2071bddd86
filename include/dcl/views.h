/* Data views (DCL section 3.1) and ordinary augmentations, on one face crop
 * with its manipulation mask. */
#ifndef DCL_VIEWS_H
#define DCL_VIEWS_H
#include "dcl/core.h"
#include "dcl/io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_views_cfg {
    float p_patch; int patch_k;          /* RandomPatch: k x k shuffle */
    float p_srm; float srm_scale;        /* SRM residuals added to the normalised image */
    float p_frame_shift;                 /* key view from another frame (applied by the loader) */
    float p_mixup; float mixup_min;      /* corresponding mixup, fakes only, lam ~ U(mixup_min, 1) */
    float p_flip;
    float p_crop; float crop_min;        /* random resized crop, area fraction in [crop_min, 1] */
    float p_jitter; float jitter;        /* brightness / contrast / saturation +- jitter */
    float p_blur; float blur_max;        /* Gaussian blur, sigma ~ U(0.1, blur_max) */
    float p_jpeg; int jpeg_min, jpeg_max;/* JPEG re-compression quality range */
    int patch_key;                       /* RandomPatch also on the key view (paper: both) */
} dcl_views_cfg;

/* The paper's views: every operation on, ordinary augmentations mild. */
dcl_views_cfg dcl_views_paper(void);
/* No augmentation at all (evaluation, golden tests). */
dcl_views_cfg dcl_views_none(void);

/* A working sample: RGB float HWC in [0,1] plus a mask (H x W, [0,1]). */
typedef struct dcl_sample {
    int w, h;
    float *rgb;     /* h*w*3 */
    float *mask;    /* h*w */
} dcl_sample;
dcl_status dcl_sample_from_image(dcl_sample *s, const dcl_image *img, const dcl_image *mask /*nullable*/);
void dcl_sample_free(dcl_sample *s);

/* Applies one random view in place (size stays w x h).  real: the
 * corresponding real crop for mixup (NULL when unknown or for real images).
 * key: 1 for the key view (patch_key decides RandomPatch). */
dcl_status dcl_view_apply(dcl_sample *s, const dcl_sample *real, int is_fake, int key,
                          const dcl_views_cfg *cfg, dcl_rng *rng);
/* Normalises into dst (h*w*3 NHWC floats) and adds SRM residuals with
 * probability p_srm (or always when force_srm). */
void dcl_view_finish(float *dst, const dcl_sample *s, const float mean[3], const float std[3],
                     const dcl_views_cfg *cfg, dcl_rng *rng);

/* Building blocks (exposed for tests). */
void dcl_random_patch(dcl_sample *s, int k, const int *perm /* k*k: source patch of each target */);
/* The three standard 5x5 SRM kernels on the grey image -> 3 residual maps
 * (h*w*3, channel j = kernel j), clipped to [-3,3] / 3. */
void dcl_srm_residuals(float *dst, const float *rgb, int w, int h);
/* Gaussian blur of the image in place (the blur view): separable, kernel
 * radius ceil(3 sigma), reflected borders (no-op when the radius is 0). */
void dcl_gaussian_blur(dcl_sample *s, float sigma);
extern const float dcl_srm_kernels[3][25];

#ifdef __cplusplus
}
#endif
#endif
