/* Figures of a trained DCL run and `dcl report`, one self-contained HTML page
 * (docs/REPORT.md).
 *
 *  - ROC curves of several score sets (AUC in the legend);
 *  - training curves from a run's log.jsonl;
 *  - Figure 2 of the paper: histograms of per-image self-similarity, real vs
 *    fake, one panel per model;
 *  - Figure 3: crops that the hard-sample test selects at a low and a high
 *    threshold (cosine similarity of the key to the opposite prototype);
 *  - Figure 4: t-SNE of pooled features, coloured by class and by method;
 *  - Grad-CAM heat maps on face crops.
 *
 * Every figure function allocates its output image (free it with
 * dcl_image_free; on failure it is zeroed).
 */
#ifndef DCL_REPORT_H
#define DCL_REPORT_H
#include "dcl/detector.h"
#include "dcl/io.h"
#include "dcl/plot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- figures */

/* One set of binary scores (label 1 = fake, score = confidence of fake). */
typedef struct dcl_score_set {
    const char *name;
    const double *score;
    const int *label;
    int64_t n;
} dcl_score_set;
/* ROC curves of every set on one plot, the chance diagonal dashed, legend
 * "name (AUC 0.9531)" in the lower right.  Sets with only one class or a
 * non-finite score fail (the message names the set). */
dcl_status dcl_fig_roc(dcl_image *out, const char *title, const dcl_score_set *sets, int nsets);

/* A run's log.jsonl: per-step lines {"step", "loss", "ce", "inter", "intra",
 * ...} and per-epoch lines {"epoch_end", "val_auc", "val_acc", ...}.  Values
 * written as nan / inf are read as NaN. */
typedef struct dcl_train_log {
    int n;                       /* step lines */
    double *step, *loss, *ce, *inter, *intra;
    int ne;                      /* epoch lines */
    double *epoch, *val_auc, *val_acc;
    int bad_lines;               /* lines that are not JSON objects (skipped) */
} dcl_train_log;
dcl_status dcl_train_log_load(dcl_train_log *log, const char *path);
void dcl_train_log_free(dcl_train_log *log);
/* Two panels: the loss terms against the step (a running mean over about
 * 1/50 of the steps is drawn over the raw values when there are many), and
 * the validation AUC per epoch.  baseline (may be NULL) adds its validation
 * AUC, dashed.  Fails when the log has neither step nor epoch lines. */
dcl_status dcl_fig_training(dcl_image *out, const dcl_train_log *log, const char *name,
                            const dcl_train_log *baseline, const char *baseline_name);

/* Per-image self-similarity (Figure 2): for each of B feature maps F_b
 * (L x C, locations by channels, i.e. NHWC), the mean over all (i, j) of
 * the Gram matrix S = U U^T of the L2-normalised location vectors U (the S
 * of the intra-instance loss); equals ||sum_i u_i||^2 / L^2, in [0, 1]. */
void dcl_self_similarity(double *out, const float *F, int B, int L, int C);

typedef struct dcl_hist_panel {
    const char *title;
    const double *value;
    const int *label;            /* 1 fake, 0 real */
    int n;
    const double *vline;         /* nvline x positions marked by dashed lines (thresholds), or NULL */
    int nvline;
    const char *real_name, *fake_name; /* legend names (NULL: "real", "fake") */
} dcl_hist_panel;
/* One histogram panel per entry, side by side, real and fake overlaid with
 * their own colours, normalised to densities; every panel uses the same bins
 * over the range of all values, so the panels compare. */
dcl_status dcl_fig_histograms(dcl_image *out, const dcl_hist_panel *panels, int np, int bins, const char *xlabel);

typedef struct dcl_scatter_panel {
    const char *title;
    const float *xy;             /* n x 2 */
    const int *cat;              /* category of each point, 0..ncat-1 */
    int n;
    const char *const *names;    /* ncat legend names */
    int ncat;
} dcl_scatter_panel;
/* Scatter panels (t-SNE maps) in a grid of `cols` columns; category k gets
 * palette colour k. */
dcl_status dcl_fig_scatter(dcl_image *out, const dcl_scatter_panel *panels, int np, int cols);

typedef struct dcl_gallery_row {
    const char *title;
    const dcl_image *img;        /* n images (any size; scaled to the cell) */
    const char *const *caption;  /* n captions (or NULL) */
    int n;                       /* 0: the row shows "(none)" */
} dcl_gallery_row;
/* Rows of images under their titles, each image scaled to cell x cell,
 * at most max_cols per line. */
dcl_status dcl_fig_gallery(dcl_image *out, const char *title, const dcl_gallery_row *rows, int nrows, int cell,
                           int max_cols);

/* Cosine similarity of each of n keys (n x L) to prototype p (L); NaN when
 * the prototype or key is zero. */
void dcl_proto_similarity(double *sim, const float *keys, int n, int L, const float *p);

/* ------------------------------------------------------------- Grad-CAM */

typedef struct dcl_gradcam_result {
    int B, C, Hf, Wf;            /* images, channels and size of the last feature map */
    float *score;                /* B: the explained logit (z, or z_fake - z_real for a softmax head) */
    float *weights;              /* B x C: w_c = mean over locations of dScore/dA_c */
    float *cam;                  /* B x Hf x Wf: ReLU(sum_c w_c A_c) */
    float *features;             /* B x Hf x Wf x C: A (eval mode) */
} dcl_gradcam_result;

/* Grad-CAM of the query encoder of d for B host NHWC images x (H x W,
 * normalised as the model expects).  The activations A and the score come
 * from an evaluation-mode forward pass (running BN statistics); dScore/dA
 * comes from a training-plan backward pass seeded with 1 on the logit (the
 * classifier after A is pooling and a linear layer, so the gradient does not
 * depend on the BN mode).  The detector must have no dropout before its
 * classifier (models opened with dcl_detector_open_model have none); its BN
 * running statistics are restored afterwards.  Leaves the query network
 * planned for training: call dcl_detector_plan before predicting again. */
dcl_status dcl_gradcam(dcl_gradcam_result *out, dcl_detector *d, const float *x, int B, int H, int W);
void dcl_gradcam_free(dcl_gradcam_result *r);
/* Heat map over a crop: cam (hf x wf) upsampled bilinearly (half-pixel
 * centres) to the crop, divided by vmax (<= 0: the map's own maximum),
 * coloured with the jet map and alpha-blended (alpha in [0, 1]). */
dcl_status dcl_gradcam_overlay(dcl_image *out, const dcl_image *crop, const float *cam, int hf, int wf, float vmax,
                               float alpha);

/* ------------------------------------------------------------- report */

typedef struct dcl_report_opts {
    const char *run_dir;         /* required */
    const char *data;            /* face cache: computed figures; NULL: only what the run holds */
    const char *split;           /* "test" */
    const char *out;             /* NULL: RUN_DIR/report.html */
    const char *baseline;        /* another run directory (Figures 2 and 4 side by side), or NULL */
    int max_images;              /* crops drawn from the split, half real half fake when possible (1000) */
    int gradcam_per_class;       /* Grad-CAM examples per class (4) */
    int gallery_per_row;         /* crops per Figure 3 row (8) */
    double theta_low, theta_high;/* Figure 3 thresholds (0.3, 0.7); NaN: auto, the median and the 90th
                                    percentile of the drawn crops' similarities */
    int batch;                   /* 16 */
    int workers;                 /* decoding threads; 0: auto (dcl_loader_workers) */
    const char *device;          /* "cpu" */
    int threads;                 /* 0: default */
    int tsne_iters;              /* 1000 */
    uint64_t seed;               /* 0 */
} dcl_report_opts;
void dcl_report_default_opts(dcl_report_opts *o);

/* Writes the report (atomically) and its path into path_out (may be NULL).
 * Parts whose inputs are missing are left out with a note on the page;
 * missing RUN_DIR, an unreadable model or cache when --data is given, or an
 * empty split are errors. */
dcl_status dcl_report_write(const dcl_report_opts *o, char *path_out, size_t n);

/* Helpers used by the report (exposed for tests). */
/* Standard base64 (RFC 4648, with padding) of len bytes appended to b. */
dcl_status dcl_base64_append(dcl_buf *b, const void *data, size_t len);
/* Appends "data:image/png;base64,..." for img. */
dcl_status dcl_png_data_uri(dcl_buf *b, const dcl_image *img);
/* Appends text with &, <, >, " and ' escaped. */
dcl_status dcl_html_escape(dcl_buf *b, const char *text);
/* Renders Markdown text (headings, pipe tables with an optional alignment
 * row, paragraphs, `code`, **bold**) as HTML, everything else escaped. */
dcl_status dcl_markdown_to_html(dcl_buf *b, const char *md);

#ifdef __cplusplus
}
#endif
#endif
