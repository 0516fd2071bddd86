/* The DCL detector: query encoder f_q with embedding head and classifier,
 * momentum key encoder f_k, real/fake queues and prototypes, and one
 * training step (docs/DCL.md). */
#ifndef DCL_DETECTOR_H
#define DCL_DETECTOR_H
#include "dcl/contrast.h"
#include "dcl/model.h"
#include "dcl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Data-parallel training settings (docs/DISTRIBUTED.md); all zero = one
 * process, or per-rank batch norm and the defaults under mpirun. */
typedef struct dcl_dist_cfg {
    int sync_bn;          /* train.sync_bn: batch-norm statistics over the whole batch of all ranks */
    int shuffle_bn;       /* dcl.shuffle_bn: MoCo's shuffle-BN, key batch permuted across ranks */
    float timeout;        /* train.dist_timeout: seconds a collective may wait (0 = 300) */
    int backend;          /* train.dist_backend: dcl_dist_kind (0 auto, 1 mpi, 2 nccl) */
    int check;            /* train.dist_check: log a hash of every rank's replicated state */
} dcl_dist_cfg;

typedef struct dcl_method_cfg {
    float tau;            /* 0.07 */
    float alpha;          /* prototype EMA, 0.9 */
    float theta;          /* hard-sample threshold, 0.5 */
    float beta;           /* key encoder EMA, 0.99 */
    int queue_size;       /* 30000 */
    dcl_hard_mode hard_mode;
    int topk;             /* 5 (topk mode) */
    float pix_thr, cell_thr; /* mask binarisation 0.1, cell fraction 0.5 */
    int intra_sum;        /* 0: mean over the batch (paper), 1: sum (official) */
    int softmax_head;     /* 0: one logit + BCE (eq. 2); 1: two logits + softmax CE */
    int no_keys;          /* 1: no key forward, momentum update or queue update in a step
                             (nothing reads them when the inter loss is off for the whole run) */
    dcl_dist_cfg dist;    /* data-parallel training (zero: one process) */
} dcl_method_cfg;
dcl_method_cfg dcl_method_defaults(void);

typedef struct dcl_detector {
    dcl_method_cfg cfg;
    dcl_backend *be;
    dcl_model *q, *k;     /* k may be NULL when contrastive terms are off (inference) */
    int q_embed, k_embed; /* value ids of the 1x1 embedding convs */
    int B, H, W, L, C;    /* current plan */
    int mode;             /* DCL_PLAN_* of the query encoder */
    dcl_queue mr, mf;
    dcl_protos protos;
    /* host scratch */
    float *h_logits, *h_dlogits, *h_eq, *h_q, *h_dq, *h_deq, *h_k, *h_F, *h_dF, *h_zero;
    /* data-parallel training (dcl_detector_set_dist); NULL: one process */
    struct dcl_dist *dist;
    struct dcl_detector_dist *dd;   /* its scratch (private) */
} dcl_detector;

/* Builds query (and key, when with_key) encoders for an EfficientNet config;
 * the classifier gets 1 or 2 outputs by cfg->softmax_head. */
dcl_status dcl_detector_create(dcl_detector **out, dcl_backend *be, const dcl_effnet_cfg *ecfg,
                               const dcl_method_cfg *cfg, int with_key);
void dcl_detector_free(dcl_detector *d);
/* Copies the query parameters into the key encoder (start of training). */
dcl_status dcl_detector_sync_key(dcl_detector *d);
/* Plans for batch B at H x W; mode DCL_PLAN_TRAIN or DCL_PLAN_EVAL.  The
 * queues are created on the first training plan (dimension L = H'W'). */
dcl_status dcl_detector_plan(dcl_detector *d, int B, int H, int W, int mode);

typedef struct dcl_step_weights { float ce, inter, intra; } dcl_step_weights;
typedef struct dcl_step_stats {
    double loss, ce, inter, intra, intra_real, intra_fake;
    int enqueued_real, enqueued_fake;
} dcl_step_stats;

/* One training step on host NHWC views v1 (query) and v2 (key), labels
 * (1 fake) and cell masks (B, L) (NULL: no fake locations known).  Runs
 * forward, losses, backward, the optimiser step at lr, then the queue
 * update.  Weights of 0 skip their term (ablation switches). */
dcl_status dcl_detector_step(dcl_detector *d, const float *v1, const float *v2, const int *y,
                             const uint8_t *cell, dcl_step_weights w, dcl_optim *opt, float lr,
                             dcl_rng *rng, dcl_step_stats *st);
/* Data-parallel training: every rank plans its own shard of B/world images
 * and calls dcl_detector_step with it; image j of rank r is slot
 * j*world + r of the batch (dcl_loader_cfg.shard_*).  The step all-gathers the keys
 * and labels (the queues and prototypes are updated with the whole batch in
 * slot order, identically on every rank), averages the parameter gradients
 * over ranks before the optimiser step, averages BN running statistics
 * (without sync BN), and reports losses and enqueue counts of the whole
 * batch.  With cfg.dist.sync_bn, batch norm uses the statistics of all
 * ranks; with cfg.dist.shuffle_bn (and no sync BN), the key batch is
 * permuted across ranks for the key forward pass (MoCo's shuffle BN).
 * dist NULL: back to one process. */
dcl_status dcl_detector_set_dist(dcl_detector *d, struct dcl_dist *dist);
/* 64-bit hash of the state every rank must hold identically (parameters and
 * buffers of both encoders, queues, prototypes; optimiser moments when opt). */
dcl_status dcl_detector_state_hash(dcl_detector *d, dcl_optim *opt, uint64_t *hash);

/* Evaluation: probabilities of "fake" for B host NHWC images (plan EVAL first). */
dcl_status dcl_detector_predict(dcl_detector *d, const float *x, float *prob);

#ifdef __cplusplus
}
#endif
#endif
