/* Opening a trained detector from a file, for inference.
 *
 * Two kinds of file are accepted, both safetensors:
 *
 *  - a model file (best.safetensors of a run, or `dcl export`): the query
 *    encoder, embedding head and classifier under their timm names, with
 *    metadata arch, head, width, depth, mean, std, size (and epoch, val_auc);
 *  - a full training checkpoint (last.safetensors): the same unprefixed names
 *    for the query encoder, plus key.*, optim.*, queue.* and prototype.*,
 *    which are ignored here.  Checkpoints carry arch and the run's config
 *    (YAML) as metadata; width, depth, head and size come from that config.
 *
 * What is not recorded is worked out, in this order:
 *   width / depth: metadata, else the config (model.width / model.depth, 0
 *     meaning the architecture's own), else from the tensor shapes (stem and
 *     stage channels, blocks per stage); the architecture's own multiplier is
 *     preferred when it fits, else the simplest one that builds the same
 *     network;
 *   head: metadata, else classifier.weight (1 output: bce, 2: softmax);
 *   mean / std: metadata, else the architecture's (timm) normalisation;
 *   size: metadata, else the config's model.size (the trainer's default
 *     when the config leaves it out), else 0 = unknown (the caller decides).
 *
 * Every tensor of the network must be present with its exact shape, and the
 * file must hold no other tensor outside key.* / optim.* / queue.* /
 * prototype.*; errors name the file and the tensors concerned.
 */
#ifndef DCL_MODELFILE_H
#define DCL_MODELFILE_H
#include "dcl/detector.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_model_info {
    char arch[48];         /* e.g. "tf_efficientnet_b4" */
    int softmax_head;      /* 0: one logit + sigmoid (bce), 1: two logits + softmax */
    float width, depth;    /* the multipliers the network is built with */
    float mean[3], std[3]; /* input normalisation (RGB, on [0,1] pixels) */
    int size;              /* input side the model was trained at; 0 = not recorded */
    int epoch;             /* training epoch of the weights (1-based); 0 = not recorded */
    double val_auc;        /* validation AUC recorded with the weights; NaN = none */
    int is_checkpoint;     /* 1 for a full training checkpoint */
    char scale_from[16];   /* where width/depth came from: "metadata", "config", "shapes" */
    int64_t params;        /* number of parameter values loaded (after open) */
} dcl_model_info;

/* Reads what a model file describes (metadata, config, tensor shapes) without
 * building the network. */
dcl_status dcl_model_info_read(dcl_model_info *info, const char *path);

/* Builds an inference detector (query encoder only, no key encoder, eval
 * ready after dcl_detector_plan(d, B, size, size, DCL_PLAN_EVAL)) on backend
 * be and loads the weights of path.  info may be NULL.  On failure *d is NULL
 * and nothing needs freeing; free a success with dcl_detector_free. */
dcl_status dcl_detector_open_model(dcl_detector **d, dcl_backend *be, const char *path, dcl_model_info *info);

/* One line describing info, e.g. "efficientnet_b0 width 0.25 depth 0.34,
 * bce head, 64x64, epoch 3, val AUC 0.9312". */
const char *dcl_model_info_str(const dcl_model_info *info, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
