/* Optimisers and schedules against torch.optim (tools/make_optim_goldens.py):
 * Adam with L2 weight decay, AdamW, SGD with momentum / nesterov / plain,
 * over 6 steps with changing learning rates, on every backend with the
 * optimiser ops; StepLR, CosineAnnealingLR (up to T_max) and LinearLR warm-up;
 * the EMA update of the key encoder. */
#include "check.h"
#include "dcl/io.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include <cjson/cJSON.h>

static float *arr(cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    float *v = malloc(*n * sizeof(float));
    for (int i = 0; i < *n; i++) v[i] = (float)cJSON_GetArrayItem(a, i)->valuedouble;
    return v;
}

static void run_case(cJSON *j, const char *name, dcl_optim_cfg oc, dcl_backend *be, const char *bename) {
    int n, ns;
    float *p0 = arr(cJSON_GetObjectItem(j, "p0"), &n);
    cJSON *grads = cJSON_GetObjectItem(j, "grads"), *lrs = cJSON_GetObjectItem(j, "lrs");
    cJSON *traj = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "cases"), name);
    ns = cJSON_GetArraySize(traj);
    size_t bytes = n * sizeof(float);
    float *p = be->mem_alloc ? be->mem_alloc(be, bytes) : malloc(bytes);
    float *gd = be->mem_alloc ? be->mem_alloc(be, bytes) : malloc(bytes);
    float *host = malloc(bytes);
    if (be->to_device) be->to_device(be, p, p0, bytes); else memcpy(p, p0, bytes);
    dcl_optim *o = NULL;
    CHECK_OK(dcl_optim_create(&o, be, n, &oc));
    for (int s = 0; s < ns && o; s++) {
        int k;
        float *g = arr(cJSON_GetArrayItem(grads, s), &k);
        if (be->to_device) be->to_device(be, gd, g, bytes); else memcpy(gd, g, bytes);
        CHECK_OK(dcl_optim_step(o, p, gd, (float)cJSON_GetArrayItem(lrs, s)->valuedouble));
        if (be->to_host) be->to_host(be, host, p, bytes); else memcpy(host, p, bytes);
        float *want = arr(cJSON_GetArrayItem(traj, s), &k);
        char what[128];
        snprintf(what, sizeof what, "%s on %s, step %d", name, bename, s + 1);
        CHECK_CLOSE(what, host, want, n, 1e-6, 1e-5);
        free(g);
        free(want);
    }
    dcl_optim_free(o);
    if (be->mem_free) { be->mem_free(be, p); be->mem_free(be, gd); } else { free(p); free(gd); }
    free(host);
    free(p0);
}

static void check_sched(cJSON *j, const char *name, dcl_sched sc, int upto) {
    cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sched"), name);
    int n = cJSON_GetArraySize(a);
    if (upto > 0 && upto < n) n = upto;
    for (int t = 0; t < n; t++) {
        double want = cJSON_GetArrayItem(a, t)->valuedouble, got = dcl_sched_lr(&sc, t);
        CHECK(fabs(got - want) <= 1e-7 + 1e-6 * want, "%s schedule at step %d: %.9g vs PyTorch %.9g", name, t, got, want);
    }
}

int main(void) {
    cJSON *j = NULL;
    CHECK_OK(dcl_json_load(&j, "tests/fixtures/optim/optim.json"));
    if (!j) CHECK_DONE();
    dcl_backend *bes[3] = {dcl_backend_ref(), dcl_backend_cpu(0), dcl_backend_create("cuda", 0)};
    const char *names[3] = {"ref", "cpu", "cuda"};
    for (int b = 0; b < 3; b++) {
        if (!bes[b]) { printf("%s: skipped: %s\n", names[b], dcl_last_error()); continue; }
        dcl_optim_cfg c = dcl_optim_defaults(DCL_OPT_ADAM);
        c.lr = 1e-2f; c.weight_decay = 1e-2f;
        run_case(j, "adam", c, bes[b], names[b]);
        c = dcl_optim_defaults(DCL_OPT_ADAMW);
        c.beta1 = 0.8f; c.beta2 = 0.99f; c.eps = 1e-6f; c.weight_decay = 5e-2f;
        run_case(j, "adamw", c, bes[b], names[b]);
        c = dcl_optim_defaults(DCL_OPT_SGD);
        c.momentum = 0.9f; c.weight_decay = 1e-3f;
        run_case(j, "sgd_momentum", c, bes[b], names[b]);
        c.nesterov = 1; c.weight_decay = 0;
        run_case(j, "sgd_nesterov", c, bes[b], names[b]);
        c.nesterov = 0; c.momentum = 0; c.weight_decay = 1e-4f;
        run_case(j, "sgd_plain", c, bes[b], names[b]);
        /* EMA (eq. 1): ema = 0.99 ema + 0.01 x */
        float e[5] = {1, 2, 3, 4, 5}, x[5] = {0, 0, 0, 0, 10}, want[5];
        for (int i = 0; i < 5; i++) want[i] = 0.99f * e[i] + 0.01f * x[i];
        float *de = e, *dx = x;
        if (bes[b]->mem_alloc) {
            de = bes[b]->mem_alloc(bes[b], sizeof e); dx = bes[b]->mem_alloc(bes[b], sizeof x);
            bes[b]->to_device(bes[b], de, e, sizeof e); bes[b]->to_device(bes[b], dx, x, sizeof x);
        }
        CHECK_OK(dcl_ema_update(bes[b], 5, de, dx, 0.99f));
        if (bes[b]->mem_alloc) { bes[b]->to_host(bes[b], e, de, sizeof e); bes[b]->mem_free(bes[b], de); bes[b]->mem_free(bes[b], dx); }
        CHECK_CLOSE("ema", e, want, 5, 1e-6, 1e-6);
    }
    dcl_backend_destroy(bes[1]);
    dcl_backend_destroy(bes[2]);
    dcl_sched st = {DCL_SCHED_STEP, 0.1f, 0, 0, 4, 0.5f, 0, 0};
    check_sched(j, "step", st, 0);
    dcl_sched cs = {DCL_SCHED_COSINE, 0.1f, 0.01f, 10, 0, 0, 0, 0};
    check_sched(j, "cosine", cs, 11); /* dcl holds the floor after T_max; PyTorch's recursion rises again */
    dcl_sched wu = {DCL_SCHED_CONSTANT, 0.1f, 0, 0, 0, 0, 4, 0.25f};
    check_sched(j, "warmup", wu, 0);
    /* invalid settings are refused with a message */
    dcl_optim *o = NULL;
    dcl_optim_cfg bad = dcl_optim_defaults(DCL_OPT_ADAM);
    bad.beta1 = 1.5f;
    CHECK(dcl_optim_create(&o, dcl_backend_ref(), 10, &bad) == DCL_ERR_ARG && strstr(dcl_last_error(), "betas"), "bad beta: %s", dcl_last_error());
    cJSON_Delete(j);
    CHECK_DONE();
}
