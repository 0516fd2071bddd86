/* The DCL method's losses, queues and prototypes (docs/DCL.md).  Host
 * memory, float32 storage, double accumulation. */
#ifndef DCL_CONTRAST_H
#define DCL_CONTRAST_H
#include "dcl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- FIFO ring of normalised keys ---- */
typedef struct dcl_queue {
    int cap, dim;
    int count;      /* valid rows (<= cap) */
    int ptr;        /* next write row */
    float *data;    /* cap x dim */
} dcl_queue;
dcl_status dcl_queue_init(dcl_queue *q, int cap, int dim);
void dcl_queue_free(dcl_queue *q);
void dcl_queue_push(dcl_queue *q, const float *v);

/* ---- class prototypes (eqs. 4-5) ---- */
typedef struct dcl_protos {
    int dim;
    float *real, *fake;
    int real_set, fake_set;
} dcl_protos;
dcl_status dcl_protos_init(dcl_protos *p, int dim);
void dcl_protos_free(dcl_protos *p);

typedef enum dcl_hard_mode { DCL_HARD_THRESHOLD = 0, DCL_HARD_TOPK, DCL_HARD_NONE } dcl_hard_mode;
int dcl_hard_mode_from_name(const char *s, dcl_hard_mode *out);

/* Prototype EMA with the batch's keys, then hard-sample selection into the
 * queues (eq. 6).  k: (B, dim) normalised keys; y: labels (1 fake).
 * enqueued (optional, B): 1 where the key was pushed. */
dcl_status dcl_queue_update(dcl_queue *mr, dcl_queue *mf, dcl_protos *p, const float *k, const int *y,
                            int B, float alpha, float theta, dcl_hard_mode mode, int topk, uint8_t *enqueued);

/* ---- losses; each returns the loss and ASSIGNS the gradient of (scale * loss) ---- */

/* Inter-instance InfoNCE (eq. 3), mean over the batch.  q, k: (B, D)
 * normalised; real queries use mf as negatives, fake queries mr.  dq may be NULL. */
dcl_status dcl_inter_loss(double *loss, float *dq, const float *q, const float *k, const int *y,
                          int B, int D, const dcl_queue *mr, const dcl_queue *mf, float tau, float scale);

/* Intra-instance contrast (eqs. 7-9) on the query's last feature map
 * F (B, L, C) (NHWC with L = H'W'), cell masks (B, L) 0/1 (1 = fake
 * location).  lr / lf: the real and fake parts (each already divided by B
 * when mean).  dF may be NULL. */
dcl_status dcl_intra_loss(double *loss, double *lr, double *lf, float *dF, const float *F, const int *y,
                          const uint8_t *cell, int B, int L, int C, float tau, int reduce_sum, float scale);

/* Pixel masks (B, H, W) in [0,1] -> cell masks (B, Hc, Wc): binarise at
 * pix_thr, average over each cell as adaptive average pooling does, fake when
 * the fraction exceeds cell_thr. */
void dcl_cell_masks(uint8_t *cell, const float *mask, int B, int H, int W, int Hc, int Wc,
                    float pix_thr, float cell_thr);

/* Rows of x (B, D) L2-normalised (eps 1e-12) into y; y may alias x. */
void dcl_normalize_rows(float *y, const float *x, int B, int D);
/* Backward of normalize: dx = (dy - y (y.dy)) / max(||x||, eps). */
void dcl_normalize_rows_bwd(float *dx, const float *dy, const float *x, int B, int D);

#ifdef __cplusplus
}
#endif
#endif
