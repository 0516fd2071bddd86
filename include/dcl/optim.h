/* Optimisers over one contiguous parameter buffer, learning-rate schedules,
 * and exponential moving averages of parameters. */
#ifndef DCL_OPTIM_H
#define DCL_OPTIM_H
#include "dcl/core.h"
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_opt_kind { DCL_OPT_ADAM = 0, DCL_OPT_ADAMW, DCL_OPT_SGD } dcl_opt_kind;

typedef struct dcl_optim_cfg {
    dcl_opt_kind kind;
    float lr;            /* base learning rate */
    float beta1, beta2, eps;
    float weight_decay;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
} dcl_optim_cfg;
/* PyTorch defaults for a kind: Adam lr 1e-3 betas (0.9, 0.999) eps 1e-8 wd 0; AdamW wd 1e-2; SGD momentum 0.9 */
dcl_optim_cfg dcl_optim_defaults(dcl_opt_kind kind);
int dcl_optim_kind_from_name(const char *name, dcl_opt_kind *out);

typedef struct dcl_optim {
    dcl_optim_cfg cfg;
    dcl_backend *be;
    size_t n;
    float *m, *v;        /* device; v unused for SGD (m = momentum buffer) */
    int64_t step;        /* steps taken */
} dcl_optim;

dcl_status dcl_optim_create(dcl_optim **out, dcl_backend *be, size_t n, const dcl_optim_cfg *cfg);
void dcl_optim_free(dcl_optim *o);
/* One step at learning rate lr (from a schedule). */
dcl_status dcl_optim_step(dcl_optim *o, float *params, const float *grads, float lr);
/* State to/from host (m, v arrays of n floats each; v may be NULL for SGD). */
dcl_status dcl_optim_get_state(dcl_optim *o, float *m, float *v);
dcl_status dcl_optim_set_state(dcl_optim *o, const float *m, const float *v, int64_t step);

typedef enum dcl_sched_kind { DCL_SCHED_CONSTANT = 0, DCL_SCHED_STEP, DCL_SCHED_COSINE } dcl_sched_kind;
typedef struct dcl_sched {
    dcl_sched_kind kind;
    float base_lr;
    float min_lr;          /* cosine floor */
    int64_t total_steps;   /* cosine horizon */
    int64_t step_size;     /* step decay: every step_size steps */
    float gamma;           /* step decay factor */
    int64_t warmup_steps;  /* linear warm-up from warmup_start * base_lr */
    float warmup_start;
} dcl_sched;
int dcl_sched_kind_from_name(const char *name, dcl_sched_kind *out);
float dcl_sched_lr(const dcl_sched *s, int64_t step);

/* ema = beta * ema + (1 - beta) * x over n floats (momentum encoder, eq. 1). */
dcl_status dcl_ema_update(dcl_backend *be, size_t n, float *ema, const float *x, float beta);

#ifdef __cplusplus
}
#endif
#endif
