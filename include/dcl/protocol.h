/* Evaluation: score tables (`dcl eval`) and the paper's evaluation protocols
 * (`dcl eval --protocol`, the files in configs/protocols/, docs/PROTOCOLS.md).
 *
 * Score tables
 * ------------
 * One row per face crop: crop, label (1 fake), score (probability of fake),
 * dataset, method, video, frame, face; written as scores.csv with that
 * header.  Scores are printed in the shortest form that reads back as the
 * same float, and the in-memory score is that decimal read back, so metrics
 * computed from a table in memory and from its CSV agree exactly.
 *
 * A filter picks the rows of one test set: every real of the chosen dataset
 * (all datasets when none is named) and the fakes of the chosen methods (all
 * when none) -- the usual FF++ per-manipulation evaluation, which pairs each
 * fake method with all reals.
 *
 * Protocols
 * ---------
 * A protocol file declares caches (paths, set with --set caches.NAME=PATH),
 * training runs (a training config + overrides, optionally restricted to
 * some fake methods), test sets (cache + split + filter), metrics and a
 * table with the paper's published rows.  Running it trains what is
 * missing into OUT/runs/RUN (a finished run is skipped, an interrupted one
 * resumed), scores every test source into OUT/scores/RUN/CACHE.SPLIT.csv
 * (kept while newer than the model), and writes OUT/table.md, table.csv and
 * table.json.  See docs/PROTOCOLS.md for the file format.
 */
#ifndef DCL_PROTOCOL_H
#define DCL_PROTOCOL_H
#include "dcl/cache.h"
#include "dcl/eval.h"
#include "dcl/io.h"
#include "dcl/modelfile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ score tables */

typedef struct dcl_score_row {
    char *crop, *dataset, *method, *video; /* owned by the table; never NULL */
    int label, frame, face;
    double score;                          /* NaN: the crop could not be read */
} dcl_score_row;

typedef struct dcl_scores {
    dcl_score_row *r;
    int64_t n, cap;
} dcl_scores;

void dcl_scores_free(dcl_scores *s);
/* Appends a row (strings copied; NULL means ""). */
dcl_status dcl_scores_add(dcl_scores *s, const char *crop, int label, double score, const char *dataset,
                          const char *method, const char *video, int frame, int face);
/* Reads a score CSV: the header names the columns (any order; label and score
 * required, the others optional; unknown columns ignored).  An empty score,
 * "nan" or "NaN" reads as NaN (unreadable crop); other bad values are errors
 * naming the file and line. */
dcl_status dcl_scores_read_csv(dcl_scores *s, const char *path);
/* Writes scores.csv (atomically).  Rows with a NaN score are left out
 * unless keep_nan. */
dcl_status dcl_scores_write_csv(const dcl_scores *s, const char *path, int keep_nan);
/* The float as the CSV writes it, read back ("%.9g"). */
double dcl_score_round(float p);

/* Scores the cache entries idx[0..n) with detector d (eval mode, inputs
 * size x size normalised by mean/std) and appends one row per entry.
 * Unreadable crops get a NaN score (the loader logs each); *unreadable
 * counts them (may be NULL). */
dcl_status dcl_scores_from_cache(dcl_scores *out, int *unreadable, dcl_detector *d, const dcl_cache *c,
                                 const int *idx, int n, int batch, int size, int workers, const float mean[3],
                                 const float std[3], int progress);

typedef struct dcl_score_filter {
    const char *dataset;                 /* NULL or "": any dataset */
    const char *const *methods;          /* fakes of these methods; nmethods 0: every fake */
    int nmethods;
} dcl_score_filter;
int dcl_score_filter_match(const dcl_score_filter *f, const char *dataset, const char *method, int label);

typedef enum dcl_eval_level { DCL_LEVEL_FRAME = 0, DCL_LEVEL_VIDEO = 1 } dcl_eval_level;

/* Metrics of the rows that pass f (f NULL: all), NaN scores skipped.
 * Video level groups rows by (dataset, video) and aggregates with agg; it
 * fails when the table has no video names.  *used (may be NULL) receives the
 * number of rows used. */
dcl_status dcl_scores_metrics(dcl_metrics *out, int64_t *used, const dcl_scores *s, const dcl_score_filter *f,
                              dcl_eval_level level, dcl_video_agg agg, double threshold);

/* metrics.json of `dcl eval`: {"images", "unreadable", "frame", "video",
 * "per_method": {METHOD: {"frame", "video"}}, ...}.  Per-method metrics pair
 * the fakes of each method with all reals of the same dataset (the key is
 * "DATASET/METHOD" when a method name occurs in several datasets).  A metric
 * that cannot be computed (one class only, no video names) is null, with the
 * reason under "errors".  extra: more "key": value pairs (JSON text, without
 * braces) put first, or NULL. */
dcl_status dcl_eval_metrics_json(dcl_buf *out, const dcl_scores *s, dcl_video_agg agg, double threshold,
                                 const char *extra);

/* --------------------------------------------------------------- protocols */

typedef enum dcl_pmetric {
    DCL_PM_AUC = 0,  /* area under the ROC curve, % */
    DCL_PM_EER,      /* equal error rate, % */
    DCL_PM_ACC,      /* accuracy at the threshold (0.5), % */
    DCL_PM_AP,       /* average precision, % */
    DCL_PM_COUNT
} dcl_pmetric;
const char *dcl_pmetric_name(dcl_pmetric m);   /* "AUC" "EER" "ACC" "AP" */

typedef struct dcl_proto_run {
    char *name;
    char *base;            /* training config file (resolved path) */
    char *cache;           /* name of the cache it trains on */
    char **methods;        /* fake methods kept for training (reals always); NULL: all */
    int nmethods;
    char *model;           /* an existing model file to evaluate instead of training; NULL */
    char *out;             /* run directory */
    const dcl_config *set; /* the run's own overrides (inside the protocol tree), or NULL */
} dcl_proto_run;

typedef struct dcl_proto_test {
    char *name, *label;    /* key and column header */
    char *cache, *split;   /* cache name, split ("all" = every entry) */
    char *dataset;         /* NULL: any */
    char **methods;        /* fakes kept; NULL: all */
    int nmethods;
} dcl_proto_test;

typedef struct dcl_proto_row {
    char *group;           /* group label (e.g. the training method of Table 3) or NULL */
    char *name;            /* method name shown in the table */
    char **labels;         /* one per label column (e.g. the check marks of Table 5) */
    char *run;             /* run(s) whose results fill the row ("a+b" when columns differ); NULL for a published row */
    char **col_run;        /* run of each column (NULL: none, the cell reads "-"); NULL for a published row */
    char **paper;          /* published values as written in the paper (ncols * nmetrics); NULL for a run row */
    int bold;
} dcl_proto_row;

typedef struct dcl_protocol {
    char *path;            /* the protocol file */
    char *name, *title, *out;
    dcl_config *cfg;       /* the file with every --set applied */
    int ncaches;
    char **cache_name, **cache_path;   /* path "" or NULL: not set */
    int nruns;
    dcl_proto_run *runs;
    int ntests;
    dcl_proto_test *tests;
    /* the table */
    int nmetrics;
    dcl_pmetric metrics[DCL_PM_COUNT];
    dcl_eval_level level;
    dcl_video_agg agg;
    double threshold;
    int ncols;
    int *cols;             /* test index of each column */
    char *group_header;    /* header of the group column, NULL: no group column */
    int nlabel_cols;
    char **label_cols;
    int nrows;
    dcl_proto_row *rows;
} dcl_protocol;

/* Loads and validates a protocol file, after applying sets[0..nsets)
 * ("key=value", dotted paths into the protocol file).  Relative training
 * config paths are tried from the current directory, then from the protocol
 * file's directory and its parents.  Every problem names the file and key. */
dcl_status dcl_protocol_load(dcl_protocol **out, const char *path, const char *const *sets, int nsets);
void dcl_protocol_free(dcl_protocol *p);
int dcl_protocol_find_run(const dcl_protocol *p, const char *name);   /* -1 if absent */
int dcl_protocol_find_cache(const dcl_protocol *p, const char *name); /* -1 if absent */

/* Overrides applied to every run after its own (e.g. reduced settings):
 * dotted training-config keys and values. */
typedef struct dcl_protocol_opts {
    const char *device;    /* backend for scoring ("cpu"); training uses train.device */
    int threads;           /* 0: all cores */
    int batch;             /* scoring batch (32) */
    int workers;           /* scoring decoding threads (0: auto, dcl_loader_workers) */
    const char *runs;      /* comma-separated run names to train / score; NULL: all */
    int no_train;          /* score and tabulate only what exists */
    int dry_run;           /* print the plan (to stdout) and stop */
    int progress;
    const char *const *train_sets; /* "key=value" applied to every run's training config last */
    int ntrain_sets;
} dcl_protocol_opts;
void dcl_protocol_opts_default(dcl_protocol_opts *o);

/* The full training config of run i (base file + protocol training.set + the
 * run's set + its cache and out + opts' train_sets). */
dcl_status dcl_protocol_train_config(dcl_config **out, const dcl_protocol *p, int i, const dcl_protocol_opts *o);

/* Trains, scores and tabulates (see the top of this file).  Interrupted
 * training (Ctrl-C) returns DCL_ERR_INTERRUPTED; run again to resume. */
dcl_status dcl_protocol_execute(const dcl_protocol *p, const dcl_protocol_opts *o);

/* ------------------------------------------------------------------ tables */

typedef struct dcl_ptable {
    char *title;
    int nrows, ncols;      /* ncols = ntests x nmetrics, test-major */
    int ntests, nmetrics;
    char **header;         /* ncols, e.g. "DFD AUC" */
    char **col_test, **col_label, **col_metric; /* test name, its label, metric name of each column */
    char *group_header;    /* NULL: no group column */
    int nlabel_cols;
    char **label_cols;
    char **row_group, **row_name, **row_run;  /* row_run NULL for published rows */
    char **row_labels;     /* nrows * nlabel_cols */
    int *row_bold;
    char **cell;           /* nrows * ncols: "99.30" (ours: % with 2 decimals; paper: as printed) or "-" */
    double *value;         /* the same as numbers, NaN for "-" */
    char **row_metrics;    /* nrows * ntests: cells with scores: {"run": .., "frame": {...}, "video": {...}}; else NULL */
} dcl_ptable;

/* Fills the table: published rows from the protocol, run rows from
 * SCORES_DIR/RUN/CACHE.SPLIT.csv (a missing file gives "-" cells). */
dcl_status dcl_protocol_table(dcl_ptable **out, const dcl_protocol *p, const char *scores_dir);
void dcl_ptable_free(dcl_ptable *t);
/* Markdown (methods as rows, bold rows in bold), CSV (one header line:
 * group, method, source, label columns, then the cells) and JSON. */
dcl_status dcl_ptable_markdown(dcl_buf *out, const dcl_ptable *t);
dcl_status dcl_ptable_csv(dcl_buf *out, const dcl_ptable *t);
dcl_status dcl_ptable_json(dcl_buf *out, const dcl_ptable *t);
/* DIR/table.md, DIR/table.csv, DIR/table.json (atomically). */
dcl_status dcl_ptable_write(const dcl_ptable *t, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
