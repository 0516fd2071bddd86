/* `dcl train`: the DCL trainer (configs/dcl_paper.yaml documents every key). */
#ifndef DCL_TRAINER_H
#define DCL_TRAINER_H
#include "dcl/detector.h"
#include "dcl/io.h"
#include "dcl/loader.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_train_cfg {
    /* model */
    char arch[48];
    char pretrained[1024];      /* ImageNet weights (safetensors), "" = random init */
    int size;
    float width, depth;         /* 0 = the architecture's own multipliers */
    float drop_rate, drop_path_rate;
    /* data */
    char cache[1024];
    char train_split[32], val_split[32];
    int workers, prefetch, balance;  /* workers 0: auto (dcl_loader_workers) */
    int max_val_images;         /* 0 = all */
    /* optimisation */
    int epochs;
    int batch;
    int64_t steps_per_epoch;    /* 0 = one pass over the training images */
    dcl_optim_cfg optim;
    dcl_sched_kind schedule;
    int step_epochs;            /* step decay every N epochs */
    float gamma, min_lr;
    int lr_warmup_epochs;
    uint64_t seed;
    char device[32];
    int threads;
    char out[1024];
    int64_t checkpoint_every;   /* steps; 0 = only at epoch ends */
    int log_every;              /* steps */
    /* DCL */
    dcl_method_cfg method;
    int use_inter, use_intra, use_views, use_hard;
    int loss_paper;             /* 1: phi form (eq. 10); 0: weighted */
    float phi_warmup, phi;
    int warmup_epochs;          /* phi_warmup for these epochs */
    float w_ce, w_inter, w_intra;
    int ce_only_epochs;         /* weighted form: only CE for these epochs */
    dcl_views_cfg views;
} dcl_train_cfg;

/* Defaults = the paper.  Then every key present in cfg overrides; unknown keys
 * are errors naming the key. */
dcl_status dcl_train_cfg_from_config(dcl_train_cfg *t, const dcl_config *cfg);
dcl_train_cfg dcl_train_cfg_defaults(void);
/* Loss weights of an epoch. */
dcl_step_weights dcl_train_weights(const dcl_train_cfg *t, int epoch);

typedef struct dcl_train_result {
    int64_t steps;
    int epochs_done;
    double best_auc;
    int best_epoch;
    double last_loss;
    int interrupted;
} dcl_train_result;

/* Trains into t->out (config.yaml, log.jsonl, last.safetensors, best.safetensors).
 * resume: continue from out/last.safetensors. config_text: the YAML saved with the run. */
dcl_status dcl_train(const dcl_train_cfg *t, int resume, const char *config_text, dcl_train_result *res);

/* Scores every image of `idx` with the query encoder (eval mode):
 * probabilities of fake into prob[n]. */
dcl_status dcl_score_cache(dcl_detector *d, const dcl_cache *c, const int *idx, int n, int batch,
                           int size, int workers, const float mean[3], const float std[3], float *prob,
                           int progress);

/* Checkpoints: the whole training state in one safetensors file. */
typedef struct dcl_train_state {
    int64_t step;
    int epoch;
    double best_auc;
    int best_epoch;
    uint64_t rng[4];    /* the trainer's random stream (dropout, drop-path) */
    int has_rng;
} dcl_train_state;
dcl_status dcl_checkpoint_save(const char *path, dcl_detector *d, dcl_optim *opt, const dcl_train_state *st,
                               const char *config_text);
dcl_status dcl_checkpoint_load(const char *path, dcl_detector *d, dcl_optim *opt, dcl_train_state *st);
/* Model-only file (query encoder + classifier + embedding) with metadata. */
dcl_status dcl_detector_save_model(const char *path, dcl_detector *d, int nmeta, const char *const *kv);

#ifdef __cplusplus
}
#endif
#endif
