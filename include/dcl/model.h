/* EfficientNet b0-b7 in the exact architectures of timm's efficientnet_bN and
 * tf_efficientnet_bN (TF "same" padding, BN eps 1e-3) and torchvision's
 * efficientnet_bN, built on dcl_net.  Parameter names are timm state_dict
 * keys; torchvision-named weights are mapped on import. */
#ifndef DCL_MODEL_H
#define DCL_MODEL_H
#include "dcl/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_effnet_family { DCL_EFF_TIMM = 0, DCL_EFF_TF, DCL_EFF_TV } dcl_effnet_family;

typedef struct dcl_effnet_cfg {
    char arch[48];              /* e.g. "tf_efficientnet_b4" */
    int variant;                /* 0..7 */
    dcl_effnet_family family;
    float width_mult, depth_mult;
    int default_res;            /* the architecture's native resolution */
    float bn_eps, bn_momentum;  /* PyTorch momentum convention */
    int num_classes;
    float drop_rate;            /* dropout before the classifier */
    float drop_path_rate;       /* stochastic depth, linear over blocks */
    float mean[3], std[3];      /* input normalisation */
    int with_classifier;        /* 0: stop after the pooled features */
} dcl_effnet_cfg;

/* Fills cfg for an architecture name: efficientnet_b0..b7, tf_efficientnet_b0..b7
 * (suffixes like _ns, .ns_jft_in1k accepted), tv_efficientnet_b0..b7 (torchvision).
 * num_classes defaults to 1000, drop_rate to the architecture's, drop_path 0. */
dcl_status dcl_effnet_config(dcl_effnet_cfg *cfg, const char *arch);
/* Scale a custom width/depth (tests use narrow nets). */
void dcl_effnet_set_scale(dcl_effnet_cfg *cfg, float width, float depth);

typedef struct dcl_model {
    dcl_effnet_cfg cfg;
    dcl_net *net;
    int input;       /* value ids */
    int features;    /* last feature map (after conv_head, bn2, act): (N, F, H', W') */
    int pooled;      /* (N, F, 1, 1) */
    int logits;      /* (N, num_classes, 1, 1), -1 without classifier */
    int num_features;
} dcl_model;

dcl_status dcl_effnet_build(dcl_model **out, dcl_backend *be, const dcl_effnet_cfg *cfg);
void dcl_model_free(dcl_model *m);

/* Round channels like timm's make_divisible(v, 8, round_limit=0.9). */
int dcl_make_divisible(double v, int divisor);

/* Map a torchvision efficientnet state_dict key to timm's; returns 0 and
 * writes out, or -1 if the key is not a torchvision EfficientNet key. */
int dcl_effnet_tv_to_timm(const char *tv, char *out, size_t n);

/* Load weights from a safetensors file into the model (timm or torchvision
 * names, detected).  Every missing, unexpected or mis-shaped tensor is named
 * in one error.  allow_missing / allow_unexpected relax the check (e.g. to
 * skip the ImageNet classifier: names listed in `skip_prefix`). */
typedef struct dcl_load_opts {
    int allow_missing;
    int allow_unexpected;
    const char *skip_prefix;   /* e.g. "classifier." */
} dcl_load_opts;
dcl_status dcl_model_load(dcl_model *m, const char *path, const dcl_load_opts *opts);
/* Save all params and buffers (timm names) as safetensors; metadata pairs may be NULL. */
dcl_status dcl_model_save(dcl_model *m, const char *path, int nmeta, const char *const *meta_kv);

#ifdef __cplusplus
}
#endif
#endif
