/* Evaluation: detection metrics (frame and video level), ROC curves, a small
 * CSV reader, t-SNE embeddings and trustworthiness.
 *
 * Metric conventions
 * ------------------
 *  - label 1 = fake (the positive class), 0 = real; score = probability (or
 *    any monotone confidence) that the sample is fake.
 *  - A sample is predicted fake when score >= threshold (the convention of
 *    sklearn.metrics.roc_curve).
 *  - Ties are handled exactly as scikit-learn does: samples with equal scores
 *    form one ROC vertex.  AUC is roc_auc_score (trapezoids, so a tie between
 *    a real and a fake counts one half); AP is average_precision_score (the
 *    step sum  sum_k (R_k - R_{k-1}) P_k  over distinct thresholds, not
 *    interpolated).
 *  - EER is the interpolated crossing of the ROC curve with the line
 *    FPR = 1 - TPR (i.e. FPR = FNR): walking the ROC vertices in order of
 *    decreasing threshold, g = 1 - TPR - FPR falls strictly from 1 to -1; EER
 *    is the FPR of the point where the straight segment between the last
 *    vertex with g > 0 and the first with g <= 0 meets g = 0.  This is the
 *    usual  brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)  value, and
 *    it does not depend on whether collinear vertices were dropped.
 *    eer_threshold is the threshold of whichever of those two vertices has the
 *    smaller |g| (the earlier one on a tie); it is +inf when that vertex is the
 *    (0,0) start of the curve.
 *  - acc_best is the best accuracy over all thresholds (every distinct score,
 *    plus +inf meaning "everything real"); threshold_best is the highest
 *    threshold reaching it (+inf when predicting everything real is best).
 *  - tpr_at_fpr(t) is the largest TPR over ROC vertices whose FPR <= t.
 *  - Scores are doubles: parsing decimal text into float would merge or split
 *    ties differently from tools that work in double.
 *
 * Video level
 * -----------
 *  DCL_VIDEO_MEAN: video score = mean of its rows' scores.
 *  DCL_VIDEO_MAX_MEAN: per (video, frame) the maximum over its faces, then the
 *    mean over the video's frames.
 *  Every mean adds its values in ascending order before dividing by the count,
 *  so videos holding the same multiset of scores tie exactly, whatever the row
 *  order.  All rows of a video must carry the same label.
 */
#ifndef DCL_EVAL_H
#define DCL_EVAL_H
#include "dcl/core.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ metrics */

typedef struct dcl_metrics {
    int64_t n, n_real, n_fake;
    double auc;            /* area under the ROC curve */
    double ap;             /* average precision */
    double eer;            /* equal error rate (see above) */
    double eer_threshold;
    double threshold;      /* threshold used for acc / tpr / tnr */
    double acc;            /* accuracy at threshold */
    double tpr;            /* fraction of fakes predicted fake at threshold */
    double tnr;            /* fraction of reals predicted real at threshold */
    double acc_best;       /* best accuracy over all thresholds */
    double threshold_best; /* highest threshold giving acc_best (may be +inf) */
    double tpr_at_fpr_1pct;   /* TPR at FPR <= 1% */
    double tpr_at_fpr_01pct;  /* TPR at FPR <= 0.1% */
} dcl_metrics;

/* Computes all metrics.  Fails (DCL_ERR_ARG, message naming the row) on n <= 0,
 * a label other than 0/1, a NaN or infinite score, or when only one class is
 * present (AUC and EER are undefined). */
dcl_status dcl_metrics_compute(dcl_metrics *out, const double *scores, const int *labels,
                               int64_t n, double threshold);
/* Same for float scores (model outputs). */
dcl_status dcl_metrics_compute_f32(dcl_metrics *out, const float *scores, const int *labels,
                                   int64_t n, double threshold);

/* ROC vertices in order of decreasing threshold, starting at (0,0) whose
 * threshold is +inf and ending at (1,1).  drop_intermediate=1 drops collinear
 * vertices exactly like sklearn's roc_curve default; 0 keeps one vertex per
 * distinct score. */
typedef struct dcl_roc {
    int64_t n;
    double *fpr, *tpr, *thresholds;
} dcl_roc;
dcl_status dcl_roc_curve(dcl_roc *out, const double *scores, const int *labels, int64_t n,
                         int drop_intermediate);
void dcl_roc_free(dcl_roc *r);
/* Largest TPR over vertices with FPR <= max_fpr. */
double dcl_roc_tpr_at_fpr(const dcl_roc *r, double max_fpr);
/* Writes "fpr,tpr,threshold" lines (threshold "inf" for the first vertex). */
dcl_status dcl_roc_write_csv(const dcl_roc *r, const char *path);

typedef enum dcl_video_agg { DCL_VIDEO_MEAN = 0, DCL_VIDEO_MAX_MEAN = 1 } dcl_video_agg;
const char *dcl_video_agg_name(dcl_video_agg a);          /* "mean", "max-mean" */
int dcl_video_agg_parse(const char *s, dcl_video_agg *out); /* 0 ok, -1 unknown */

/* Aggregates rows into one score per video.  video[i] identifies the video of
 * row i, frame[i] its frame (frame may be NULL for DCL_VIDEO_MEAN; it is
 * required for DCL_VIDEO_MAX_MEAN).  Outputs one entry per distinct video in
 * increasing video id order: vscore, vlabel, vid (each array must hold n
 * entries); *n_videos receives the count.  Fails when a video mixes labels
 * (message names the video id and two rows) or a score is not finite. */
dcl_status dcl_video_scores(double *vscore, int *vlabel, int64_t *vid, int64_t *n_videos,
                            const double *scores, const int *labels, const int64_t *video,
                            const int64_t *frame, int64_t n, dcl_video_agg agg);
/* dcl_video_scores followed by dcl_metrics_compute (out->n = number of videos). */
dcl_status dcl_metrics_video(dcl_metrics *out, const double *scores, const int *labels,
                             const int64_t *video, const int64_t *frame, int64_t n,
                             dcl_video_agg agg, double threshold);

/* Writes the metrics as a JSON object body: {"n": .., "auc": .., ...}.
 * Numbers are printed in the shortest form that reads back exactly; an
 * infinite threshold is written as null. */
void dcl_metrics_write_json(FILE *f, const dcl_metrics *m);

/* ---------------------------------------------------------------------- CSV */
/* RFC 4180 reader: comma separated, optional double quotes ("" inside quotes
 * is a quote; quoted fields may hold commas and newlines), LF or CRLF line
 * ends, a leading UTF-8 byte order mark is skipped, blank lines are skipped.
 * Fields are not trimmed. */
typedef struct dcl_csv {
    char *buf;
    size_t len, pos;
    int64_t line;          /* line (1-based) where the last record started */
    int64_t cur_line;      /* line of the read position */
    char **field;
    int nfield, cap;
    char name[256];        /* source name used in messages */
} dcl_csv;
/* path "-" reads standard input. */
dcl_status dcl_csv_open(dcl_csv *c, const char *path);
/* Parses a copy of text[0..len). */
dcl_status dcl_csv_open_mem(dcl_csv *c, const char *text, size_t len, const char *name);
/* Reads the next record into c->field[0..nfield); nfield = 0 at end of input.
 * Fields stay valid until the reader is closed.  Malformed quoting and NUL
 * bytes fail with DCL_ERR_FORMAT naming the source and line. */
dcl_status dcl_csv_next(dcl_csv *c);
void dcl_csv_close(dcl_csv *c);

/* -------------------------------------------------------------------- t-SNE */

typedef enum dcl_tsne_method {
    DCL_TSNE_AUTO = 0,       /* exact for n <= exact_max_n, else Barnes-Hut */
    DCL_TSNE_EXACT = 1,      /* O(n^2) per iteration, dense P */
    DCL_TSNE_BARNES_HUT = 2  /* kNN P (vantage-point tree), quadtree repulsion */
} dcl_tsne_method;

typedef enum dcl_tsne_init { DCL_TSNE_INIT_PCA = 0, DCL_TSNE_INIT_RANDOM = 1 } dcl_tsne_init;

/* Defaults follow scikit-learn 1.2's TSNE. */
typedef struct dcl_tsne_opts {
    double perplexity;          /* 30 */
    double theta;               /* Barnes-Hut angle, 0.5 (0 = exact forces) */
    double early_exaggeration;  /* 12 */
    int exaggeration_iters;     /* 250, momentum_early during them */
    int n_iter;                 /* 1000 iterations in all */
    double learning_rate;       /* <= 0: auto, max(n / early_exaggeration / 4, 50) */
    double momentum_early;      /* 0.5 */
    double momentum_final;      /* 0.8 */
    double min_grad_norm;       /* 1e-7: stop when the gradient norm falls below */
    int n_iter_without_progress;/* 300: stop when the KL has not improved for this long */
    dcl_tsne_method method;     /* AUTO */
    int exact_max_n;            /* 500 */
    dcl_tsne_init init;         /* PCA: first two principal components scaled
                                   so that the first has std 1e-4 (falls back
                                   to RANDOM when d < 2 or the data has no
                                   spread); RANDOM: N(0, 1e-4^2) */
    uint64_t seed;              /* 0 */
    int verbose;                /* 0; >0 logs KL every 50 iterations */
} dcl_tsne_opts;
void dcl_tsne_default_opts(dcl_tsne_opts *o);

typedef struct dcl_tsne_info {
    dcl_tsne_method method;     /* the method actually used */
    int iters;                  /* iterations run */
    double kl;                  /* KL divergence at the last check (BH: approximate) */
    double learning_rate;       /* the learning rate used */
} dcl_tsne_info;

/* Embeds n points of dimension d (row-major x, n x d) into y (n x 2).
 * opts NULL means defaults.  The same seed and inputs give the same output
 * bit for bit, whatever the number of OpenMP threads (every per-point sum runs
 * in a fixed order and cross-point sums are serial).  Results can differ
 * between builds for different CPUs (floating-point contraction).
 * Errors: n < 2, d < 1, a non-finite input (message names the row), perplexity
 * <= 0 or >= n, Barnes-Hut with n - 1 < 3 * perplexity, exact with n > 8192,
 * theta < 0, n_iter < 0, learning_rate not finite. */
dcl_status dcl_tsne(float *y, const float *x, int n, int d, const dcl_tsne_opts *opts);
dcl_status dcl_tsne_run(float *y, dcl_tsne_info *info, const float *x, int n, int d,
                        const dcl_tsne_opts *opts);

/* Building blocks (used by dcl_tsne, exposed for tests and tools). */

/* Compressed sparse rows, square n x n. */
typedef struct dcl_sparse {
    int n;
    int64_t *rowptr;            /* n + 1 */
    int *col;
    double *val;
} dcl_sparse;
void dcl_sparse_free(dcl_sparse *s);

/* Dense joint probabilities (n x n, zero diagonal, sums to 1) from squared
 * Euclidean distances: per-point Gaussian bandwidth by binary search on the
 * entropy (natural log, tolerance 1e-5, 100 steps), P = (P_cond + P_cond^T) /
 * sum, off-diagonal entries floored at DBL_EPSILON (as sklearn). */
dcl_status dcl_tsne_p_exact(double *p, const float *x, int n, int d, double perplexity);
/* Sparse joint probabilities over the k nearest neighbours of every point
 * (vantage-point tree seeded by seed; k <= n - 1), symmetrised and normalised
 * to sum 1. */
dcl_status dcl_tsne_p_knn(dcl_sparse *p, const float *x, int n, int d, double perplexity,
                          int k, uint64_t seed);
/* k nearest neighbours (excluding the point itself) of every point, by
 * Euclidean distance: idx (n x k) and squared distances d2 (n x k), nearest
 * first. */
dcl_status dcl_knn_vptree(int *idx, double *d2, const float *x, int n, int d, int k,
                          uint64_t seed);
/* Gradient (n x 2) of KL(P || Q) for the Student-t (one degree of freedom)
 * embedding y (n x 2), and the KL itself (kl may be NULL). */
dcl_status dcl_tsne_grad_exact(double *grad, double *kl, const double *y, const double *p, int n);
/* Barnes-Hut approximation of the same with sparse P; theta = 0 gives the
 * exact repulsion.  kl (approximate) may be NULL. */
dcl_status dcl_tsne_grad_bh(double *grad, double *kl, const double *y, const dcl_sparse *p,
                            double theta);

/* Trustworthiness of an embedding (sklearn.manifold.trustworthiness, Euclidean):
 * 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in kNN_y(i)} max(0, rank_x(i,j) - k).
 * Needs 1 <= k < n / 2. O(n^2 log n). */
dcl_status dcl_trustworthiness(double *out, const float *x, int n, int d, const float *y,
                               int dy, int k);

#ifdef __cplusplus
}
#endif
#endif
