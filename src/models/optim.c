#include "dcl/optim.h"
#include "dcl/net.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- host implementations used by host backends that lack their own ---- */

static dcl_status host_axpby(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b) {
    (void)be;
    if (b == 0.0f) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
    } else {
#pragma omp parallel for simd if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
    }
    return DCL_OK;
}

static dcl_status host_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad,
                            float lr, float b1, float b2, float eps, float wd, int decoupled,
                            float bc1, float bc2) {
    (void)be;
    const float sbc2 = sqrtf(bc2), step = lr / bc1;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i], w = p[i];
        if (decoupled) w *= 1.0f - lr * wd;
        else g += wd * w;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        /* PyTorch: denom = sqrt(v)/sqrt(bc2) + eps; p -= (lr/bc1) * m / denom */
        p[i] = w - step * mi / (sqrtf(vi) / sbc2 + eps);
    }
    return DCL_OK;
}

static dcl_status host_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad,
                           float lr, float momentum, float wd, int nesterov, int first_step) {
    (void)be;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        if (momentum != 0.0f) {
            float b = first_step ? g : momentum * buf[i] + g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        p[i] -= lr * g;
    }
    return DCL_OK;
}

void dcl_backend_fill_host_extras(dcl_backend *be) {
    if (!be || !be->is_host) return;
    if (!be->axpby) be->axpby = host_axpby;
    if (!be->adam) be->adam = host_adam;
    if (!be->sgd) be->sgd = host_sgd;
}

/* ---- optimiser ---- */

dcl_optim_cfg dcl_optim_defaults(dcl_opt_kind kind) {
    dcl_optim_cfg c = {kind, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 0};
    if (kind == DCL_OPT_ADAMW) c.weight_decay = 1e-2f;
    if (kind == DCL_OPT_SGD) { c.lr = 0.1f; c.momentum = 0.9f; }
    return c;
}

int dcl_optim_kind_from_name(const char *name, dcl_opt_kind *out) {
    if (!strcmp(name, "adam")) *out = DCL_OPT_ADAM;
    else if (!strcmp(name, "adamw")) *out = DCL_OPT_ADAMW;
    else if (!strcmp(name, "sgd")) *out = DCL_OPT_SGD;
    else return -1;
    return 0;
}

static void *dev_alloc(dcl_backend *be, size_t bytes) {
    return be->mem_alloc ? be->mem_alloc(be, bytes) : dcl_alloc(bytes);
}
/* Optimiser state (m, v): on huge pages on host backends (dcl_alloc_big),
 * as the network's parameters and gradients are; released by dev_free. */
static void *state_alloc(dcl_backend *be, size_t bytes) {
    return be->mem_alloc ? dev_alloc(be, bytes) : dcl_alloc_big(bytes);
}
static void dev_free(dcl_backend *be, void *p) {
    if (!p) return;
    if (be->mem_free) be->mem_free(be, p); else dcl_free(p);
}
static dcl_status dev_zero(dcl_backend *be, void *p, size_t bytes) {
    if (be->mem_zero) return be->mem_zero(be, p, bytes);
    memset(p, 0, bytes);
    return DCL_OK;
}

dcl_status dcl_optim_create(dcl_optim **out, dcl_backend *be, size_t n, const dcl_optim_cfg *cfg) {
    dcl_backend_fill_host_extras(be);
    if ((cfg->kind == DCL_OPT_SGD && !be->sgd) || (cfg->kind != DCL_OPT_SGD && !be->adam))
        return dcl_fail(DCL_ERR_UNSUPPORTED, "optimiser not available on backend %s", be->name);
    if (!(cfg->lr >= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
        !(cfg->eps > 0 || cfg->kind == DCL_OPT_SGD) || !(cfg->weight_decay >= 0))
        return dcl_fail(DCL_ERR_ARG, "optimiser: invalid hyper-parameters (lr %g, betas %g %g, eps %g, wd %g)",
                        cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
    dcl_optim *o = calloc(1, sizeof *o);
    if (!o) return dcl_fail(DCL_ERR_NOMEM, "optimiser");
    o->cfg = *cfg;
    o->be = be;
    o->n = n;
    o->m = state_alloc(be, n * sizeof(float));
    o->v = cfg->kind == DCL_OPT_SGD ? NULL : state_alloc(be, n * sizeof(float));
    if (!o->m || (cfg->kind != DCL_OPT_SGD && !o->v)) { dcl_optim_free(o); return dcl_fail(DCL_ERR_NOMEM, "optimiser state (%zu floats)", n); }
    dcl_status s = dev_zero(be, o->m, n * sizeof(float));
    if (!s && o->v) s = dev_zero(be, o->v, n * sizeof(float));
    if (s) { dcl_optim_free(o); return s; }
    *out = o;
    return DCL_OK;
}

void dcl_optim_free(dcl_optim *o) {
    if (!o) return;
    dev_free(o->be, o->m);
    dev_free(o->be, o->v);
    free(o);
}

dcl_status dcl_optim_step(dcl_optim *o, float *params, const float *grads, float lr) {
    const dcl_optim_cfg *c = &o->cfg;
    o->step++;
    if (c->kind == DCL_OPT_SGD)
        return o->be->sgd(o->be, (int64_t)o->n, params, o->m, grads, lr, c->momentum, c->weight_decay,
                          c->nesterov, o->step == 1);
    float bc1 = 1.0f - (float)pow(c->beta1, (double)o->step);
    float bc2 = 1.0f - (float)pow(c->beta2, (double)o->step);
    return o->be->adam(o->be, (int64_t)o->n, params, o->m, o->v, grads, lr, c->beta1, c->beta2, c->eps,
                       c->weight_decay, c->kind == DCL_OPT_ADAMW, bc1, bc2);
}

dcl_status dcl_optim_get_state(dcl_optim *o, float *m, float *v) {
    size_t b = o->n * sizeof(float);
    if (o->be->to_host) {
        DCL_TRY(o->be->to_host(o->be, m, o->m, b));
        if (v && o->v) DCL_TRY(o->be->to_host(o->be, v, o->v, b));
    } else {
        memcpy(m, o->m, b);
        if (v && o->v) memcpy(v, o->v, b);
    }
    return DCL_OK;
}

dcl_status dcl_optim_set_state(dcl_optim *o, const float *m, const float *v, int64_t step) {
    size_t b = o->n * sizeof(float);
    if (o->be->to_device) {
        DCL_TRY(o->be->to_device(o->be, o->m, m, b));
        if (v && o->v) DCL_TRY(o->be->to_device(o->be, o->v, v, b));
    } else {
        memcpy(o->m, m, b);
        if (v && o->v) memcpy(o->v, v, b);
    }
    o->step = step;
    return DCL_OK;
}

/* ---- schedules ---- */

int dcl_sched_kind_from_name(const char *name, dcl_sched_kind *out) {
    if (!strcmp(name, "constant")) *out = DCL_SCHED_CONSTANT;
    else if (!strcmp(name, "step")) *out = DCL_SCHED_STEP;
    else if (!strcmp(name, "cosine")) *out = DCL_SCHED_COSINE;
    else return -1;
    return 0;
}

float dcl_sched_lr(const dcl_sched *s, int64_t step) {
    double lr = s->base_lr;
    if (s->warmup_steps > 0 && step < s->warmup_steps) {
        double f = s->warmup_start + (1.0 - s->warmup_start) * (double)step / (double)s->warmup_steps;
        return (float)(s->base_lr * f);
    }
    switch (s->kind) {
    case DCL_SCHED_CONSTANT: break;
    case DCL_SCHED_STEP:
        if (s->step_size > 0) lr = s->base_lr * pow(s->gamma, (double)(step / s->step_size));
        break;
    case DCL_SCHED_COSINE: {
        int64_t t = step - s->warmup_steps, T = s->total_steps - s->warmup_steps;
        if (T <= 0) break;
        if (t > T) t = T;
        lr = s->min_lr + 0.5 * (s->base_lr - s->min_lr) * (1.0 + cos(3.14159265358979323846 * (double)t / (double)T));
        break;
    }
    }
    return (float)lr;
}

dcl_status dcl_ema_update(dcl_backend *be, size_t n, float *ema, const float *x, float beta) {
    dcl_backend_fill_host_extras(be);
    if (!be->axpby) return dcl_fail(DCL_ERR_UNSUPPORTED, "ema: backend %s has no axpby", be->name);
    return be->axpby(be, (int64_t)n, ema, 1.0f - beta, x, beta);
}
