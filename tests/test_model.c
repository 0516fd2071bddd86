/* EfficientNet against PyTorch:
 *  - architectures: every timm / tf_ / torchvision b0-b7 state_dict key and
 *    shape (tests/fixtures/arch/, written by tools/make_goldens.py), and
 *    feature-map / logit shapes at two input sizes;
 *  - whole-model goldens (tests/fixtures/model): a narrow b0 and tf_b0 in
 *    train mode: logits, features, loss, every parameter gradient, BN running
 *    statistics after the step, eval logits, and 5 Adam steps;
 *  - on the reference backend and on the optimised CPU backend.
 */
#include "check.h"
#include "dcl/io.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include <cjson/cJSON.h>
#include <unistd.h>

#define FIX "tests/fixtures/"

static void check_arch(const char *name) {
    char path[256];
    snprintf(path, sizeof path, FIX "arch/%s.json", name);
    cJSON *j = NULL;
    if (dcl_json_load(&j, path)) { CHECK(0, "%s", dcl_last_error()); return; }
    dcl_effnet_cfg cfg;
    CHECK_OK(dcl_effnet_config(&cfg, name));
    cJSON *nc = cJSON_GetObjectItem(j, "num_classes");
    cfg.num_classes = nc ? nc->valueint : 1000;
    cJSON *eps = cJSON_GetObjectItem(j, "bn_eps"), *mom = cJSON_GetObjectItem(j, "bn_momentum");
    if (eps) CHECK(fabs(cfg.bn_eps - eps->valuedouble) < 1e-9 + 1e-6 * eps->valuedouble, "%s: bn eps %g vs %g", name, cfg.bn_eps, eps->valuedouble);
    if (mom) CHECK(fabs(cfg.bn_momentum - mom->valuedouble) < 1e-6, "%s: bn momentum %g vs %g", name, cfg.bn_momentum, mom->valuedouble);
    dcl_model *m = NULL;
    dcl_status s = dcl_effnet_build(&m, dcl_backend_ref(), &cfg);
    CHECK_OK(s);
    if (s) { cJSON_Delete(j); return; }
    CHECK_OK(dcl_net_finalize(m->net));
    const dcl_table *P = dcl_net_params(m->net), *B = dcl_net_buffers(m->net);
    int tv = cfg.family == DCL_EFF_TV;
    cJSON *keys = cJSON_GetObjectItem(j, "keys"), *k;
    int nkeys = 0, bad = 0;
    cJSON_ArrayForEach(k, keys) {
        const char *key = cJSON_GetArrayItem(k, 0)->valuestring;
        char mapped[DCL_NAME_MAX];
        if (tv) {
            if (dcl_effnet_tv_to_timm(key, mapped, sizeof mapped)) { if (bad++ < 5) CHECK(0, "%s: cannot map %s", name, key); continue; }
        } else {
            snprintf(mapped, sizeof mapped, "%s", key);
        }
        const dcl_table *t = P;
        int i = dcl_table_find(P, mapped);
        if (i < 0) { t = B; i = dcl_table_find(B, mapped); }
        if (i < 0) { if (bad++ < 5) CHECK(0, "%s: missing %s (%s)", name, key, mapped); continue; }
        cJSON *shape = cJSON_GetArrayItem(k, 1);
        int nd = cJSON_GetArraySize(shape);
        int ok = nd == t->v[i].ndim;
        for (int d = 0; ok && d < nd; d++) ok = cJSON_GetArrayItem(shape, d)->valueint == t->v[i].shape[d];
        if (!ok && bad++ < 5) CHECK(0, "%s: shape of %s differs", name, key);
        nkeys++;
    }
    CHECK(nkeys == P->n + B->n, "%s: %d keys in PyTorch, %d in dcl", name, nkeys, P->n + B->n);
    CHECK(bad == 0, "%s: %d key problems", name, bad);
    /* output shapes at the recorded input sizes */
    cJSON *outs = cJSON_GetObjectItem(j, "outputs"), *o;
    cJSON_ArrayForEach(o, outs) {
        cJSON *in = cJSON_GetObjectItem(o, "input"), *f = cJSON_GetObjectItem(o, "features");
        int h = cJSON_GetArrayItem(in, 2)->valueint, w = cJSON_GetArrayItem(in, 3)->valueint;
        /* plan only (no forward): shapes */
        s = dcl_net_plan(m->net, 1, h, w, 0);
        CHECK_OK(s);
        if (s) continue;
        int sh[4];
        dcl_net_value_shape(m->net, m->features, sh);
        for (int d = 0; d < 4; d++)
            CHECK(sh[d] == cJSON_GetArrayItem(f, d)->valueint, "%s at %dx%d: feature dim %d is %d, PyTorch %d", name, h, w, d, sh[d], cJSON_GetArrayItem(f, d)->valueint);
    }
    dcl_model_free(m);
    cJSON_Delete(j);
}

/* tensor from the golden file as float; NCHW 4-D converted to NHWC */
static float *gget(dcl_st *st, const char *name, int64_t *numel, int nhwc) {
    const dcl_st_entry *e = dcl_st_find(st, name);
    if (!e) { CHECK(0, "golden lacks %s", name); return NULL; }
    float *v = malloc(e->numel * sizeof(float));
    if (dcl_st_entry_to_f32(v, st, e)) { CHECK(0, "%s", dcl_last_error()); free(v); return NULL; }
    if (nhwc && e->ndim == 4) {
        float *t = malloc(e->numel * sizeof(float));
        dcl_nchw_to_nhwc(t, v, (int)e->shape[0], (int)e->shape[1], (int)e->shape[2], (int)e->shape[3]);
        free(v);
        v = t;
    }
    if (numel) *numel = e->numel;
    return v;
}

/* max|a-b| <= tol * max|b| + floor: per-tensor relative check for gradients;
 * floor covers gradients that are exactly zero in exact arithmetic (a BN bias
 * followed by conv + BN) and come out as float rounding noise. */
static int close_rel_max(const char *what, const float *a, const float *b, int64_t n, double tol, double floor) {
    double mb = 0, md = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
        if (!(d <= md)) { md = d; wi = i; }
    }
    int ok = md <= tol * mb + floor;
    CHECK(ok, "%s: max abs diff %.3g at %lld (got %.6g want %.6g), max |ref| %.3g, tol %.1g", what, md, (long long)wi, a[wi], b[wi], mb, tol);
    return ok;
}

static void check_golden(const char *arch, dcl_backend *be, const char *bename) {
    char wpath[256], gpath[256], what[256];
    snprintf(wpath, sizeof wpath, FIX "model/%s_tiny.weights.safetensors", arch);
    snprintf(gpath, sizeof gpath, FIX "model/%s_tiny.golden.safetensors", arch);
    dcl_st *g = NULL;
    if (dcl_st_open(&g, gpath)) { CHECK(0, "%s", dcl_last_error()); return; }
    dcl_effnet_cfg cfg;
    CHECK_OK(dcl_effnet_config(&cfg, arch));
    dcl_effnet_set_scale(&cfg, atof(dcl_st_meta(g, "channel_multiplier")), atof(dcl_st_meta(g, "depth_multiplier")));
    cfg.num_classes = atoi(dcl_st_meta(g, "num_classes"));
    cfg.drop_rate = 0;
    cfg.drop_path_rate = 0;
    int n, c, h, w;
    CHECK(sscanf(dcl_st_meta(g, "input"), "%d,%d,%d,%d", &n, &c, &h, &w) == 4, "input meta");
    dcl_model *m = NULL;
    dcl_status s = dcl_effnet_build(&m, be, &cfg);
    CHECK_OK(s);
    if (s) { dcl_st_close(g); return; }
    s = dcl_model_load(m, wpath, NULL);
    CHECK_OK(s);
    int64_t nx, nl, nf;
    float *x = gget(g, "input", &nx, 1);
    float *tg = gget(g, "target", NULL, 0);
    float *want_logits = gget(g, "logits", &nl, 0);
    float *want_feat = gget(g, "features", &nf, 1);
    float *want_eval = gget(g, "eval_logits", NULL, 0);
    float *want_loss = gget(g, "loss", NULL, 0);
    float *adam_loss = gget(g, "adam.loss", NULL, 0);
    float *adam_eval = gget(g, "adam.eval_logits", NULL, 0);
    int K = cfg.num_classes;
    int *tgt = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) tgt[i] = (int)tg[i];
    float *logits = malloc(nl * sizeof(float)), *dlog = malloc(nl * sizeof(float)), *feat = malloc(nf * sizeof(float));

    /* eval mode first (the initial state) */
    CHECK_OK(dcl_net_plan(m->net, n, h, w, 0));
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, NULL));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    snprintf(what, sizeof what, "%s/%s eval logits", arch, bename);
    CHECK_CLOSE(what, logits, want_eval, nl, 1e-4, 1e-3);
    /* the same batch handed over in the backend's memory */
    {
        size_t nx = (size_t)n * h * w * 3;
        float *xd = be->mem_alloc ? be->mem_alloc(be, nx * sizeof(float)) : malloc(nx * sizeof(float));
        CHECK(xd != NULL, "%s: input buffer", bename);
        if (xd) {
            if (be->to_device) CHECK_OK(be->to_device(be, xd, x, nx * sizeof(float)));
            else memcpy(xd, x, nx * sizeof(float));
            for (size_t i = 0; i < nl; i++) logits[i] = -1e9f;
            CHECK_OK(dcl_net_set_input_device(m->net, xd));
            CHECK_OK(dcl_net_forward(m->net, NULL));
            CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
            snprintf(what, sizeof what, "%s/%s eval logits (input in backend memory)", arch, bename);
            CHECK_CLOSE(what, logits, want_eval, nl, 1e-4, 1e-3);
            CHECK(dcl_net_set_input_device(m->net, NULL) == DCL_ERR_ARG, "set_input_device(NULL) must be refused");
            if (be->mem_free) be->mem_free(be, xd);
            else free(xd);
        }
    }

    /* train mode: forward, loss, backward */
    CHECK_OK(dcl_net_mark_output(m->net, m->logits));
    CHECK_OK(dcl_net_plan(m->net, n, h, w, 1));
    CHECK_OK(dcl_net_set_input(m->net, x));
    dcl_rng rng;
    dcl_rng_seed(&rng, 7);
    CHECK_OK(dcl_net_forward(m->net, &rng));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    CHECK_OK(dcl_net_value_to_host(m->net, m->features, feat));
    snprintf(what, sizeof what, "%s/%s train logits", arch, bename);
    CHECK_CLOSE(what, logits, want_logits, nl, 1e-4, 1e-3);
    snprintf(what, sizeof what, "%s/%s features", arch, bename);
    CHECK_CLOSE(what, feat, want_feat, nf, 1e-4, 1e-3);
    float loss;
    CHECK_OK(dcl_cross_entropy_fwd_f32(n, K, &loss, logits, tgt));
    CHECK(fabs(loss - want_loss[0]) <= 1e-5 + 1e-4 * fabs(want_loss[0]), "%s/%s loss %.7g vs %.7g", arch, bename, loss, want_loss[0]);
    CHECK_OK(dcl_cross_entropy_bwd_f32(n, K, dlog, 1.0f, logits, tgt));
    CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dlog));
    CHECK_OK(dcl_net_zero_grad(m->net));
    CHECK_OK(dcl_net_backward(m->net));
    /* every parameter gradient */
    const dcl_table *P = dcl_net_params(m->net), *B = dcl_net_buffers(m->net);
    float *hg = malloc(P->total * sizeof(float));
    dcl_backend *dbe = dcl_net_backend(m->net);
    if (dbe->to_host) dbe->to_host(dbe, hg, dcl_net_grad_data(m->net), P->total * sizeof(float));
    else memcpy(hg, dcl_net_grad_data(m->net), P->total * sizeof(float));
    int nbad = 0;
    double gmax = 0;  /* largest gradient of the model, for the noise floor */
    for (int i = 0; i < P->n; i++) {
        char gname[DCL_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", P->v[i].name);
        int64_t gn;
        float *want = gget(g, gname, &gn, 0);
        for (int64_t j = 0; want && j < gn; j++) if (fabs(want[j]) > gmax) gmax = fabs(want[j]);
        free(want);
    }
    for (int i = 0; i < P->n; i++) {
        char gname[DCL_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", P->v[i].name);
        int64_t gn;
        float *want = gget(g, gname, &gn, 0);
        if (!want) { nbad++; continue; }
        CHECK(gn == P->v[i].numel, "%s numel", gname);
        snprintf(what, sizeof what, "%s/%s %s", arch, bename, gname);
        if (!close_rel_max(what, hg + P->v[i].offset, want, gn, 2e-3, 1e-4 * gmax)) nbad++;
        free(want);
    }
    CHECK(nbad == 0, "%s/%s: %d parameter gradients differ", arch, bename, nbad);
    /* BN running statistics after the training forward */
    for (int i = 0; i < B->n; i++) {
        char bname[DCL_NAME_MAX + 8];
        snprintf(bname, sizeof bname, "after.%s", B->v[i].name);
        int64_t bn;
        float *want = gget(g, bname, &bn, 0);
        if (!want) continue;
        float *got = malloc(bn * sizeof(float));
        CHECK_OK(dcl_net_get_tensor(m->net, B->v[i].name, got, bn));
        snprintf(what, sizeof what, "%s/%s %s", arch, bename, bname);
        CHECK_CLOSE(what, got, want, bn, 1e-5, 1e-4);
        free(got);
        free(want);
    }
    free(hg);

    /* 5 Adam steps from the initial state (reload it) */
    CHECK_OK(dcl_model_load(m, wpath, NULL));
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    oc.weight_decay = 1e-5f;
    dcl_optim *opt = NULL;
    CHECK_OK(dcl_optim_create(&opt, be, P->total, &oc));
    for (int step = 0; step < 5 && opt; step++) {
        CHECK_OK(dcl_net_set_input(m->net, x));
        CHECK_OK(dcl_net_forward(m->net, &rng));
        CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
        CHECK_OK(dcl_cross_entropy_fwd_f32(n, K, &loss, logits, tgt));
        CHECK(fabs(loss - adam_loss[step]) <= 2e-4 + 2e-3 * fabs(adam_loss[step]),
              "%s/%s Adam step %d loss %.7g vs PyTorch %.7g", arch, bename, step, loss, adam_loss[step]);
        CHECK_OK(dcl_cross_entropy_bwd_f32(n, K, dlog, 1.0f, logits, tgt));
        CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dlog));
        CHECK_OK(dcl_net_zero_grad(m->net));
        CHECK_OK(dcl_net_backward(m->net));
        CHECK_OK(dcl_optim_step(opt, dcl_net_param_data(m->net), dcl_net_grad_data(m->net), 1e-3f));
    }
    CHECK_OK(dcl_net_plan(m->net, n, h, w, 0));
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, NULL));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    snprintf(what, sizeof what, "%s/%s eval logits after 5 Adam steps", arch, bename);
    CHECK_CLOSE(what, logits, adam_eval, nl, 2e-3, 1e-2);
    dcl_optim_free(opt);

    free(x); free(tg); free(want_logits); free(want_feat); free(want_eval); free(want_loss);
    free(adam_loss); free(adam_eval); free(tgt); free(logits); free(dlog); free(feat);
    dcl_model_free(m);
    dcl_st_close(g);
}

static void check_load_errors(void) {
    /* a tiny model's weights into the wrong architecture: every problem named */
    dcl_effnet_cfg cfg;
    CHECK_OK(dcl_effnet_config(&cfg, "efficientnet_b0"));
    cfg.num_classes = 2;
    dcl_model *m = NULL;
    CHECK_OK(dcl_effnet_build(&m, dcl_backend_ref(), &cfg));
    dcl_status s = dcl_model_load(m, FIX "model/efficientnet_b0_tiny.weights.safetensors", NULL);
    CHECK(s == DCL_ERR_SHAPE, "loading narrow weights into b0 should fail with a shape error, got %d", s);
    const char *e = dcl_last_error();
    CHECK(strstr(e, "wrong shape") && strstr(e, "blocks.0.0.bn1.bias (expected [32], found [8])") && strstr(e, "missing"),
          "error should name mis-shaped and missing tensors: %s", e);
    s = dcl_model_load(m, FIX "no/such/file.safetensors", NULL);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "no/such/file"), "missing file error: %s", dcl_last_error());
    dcl_model_free(m);
    /* round trip through save/load keeps every tensor */
    CHECK_OK(dcl_effnet_config(&cfg, "tf_efficientnet_b0"));
    dcl_effnet_set_scale(&cfg, 0.25f, 0.34f);
    cfg.num_classes = 2;
    CHECK_OK(dcl_effnet_build(&m, dcl_backend_ref(), &cfg));
    CHECK_OK(dcl_model_load(m, FIX "model/tf_efficientnet_b0_tiny.weights.safetensors", NULL));
    char tmp[] = "/tmp/dcl_model_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0) close(fd);
    CHECK_OK(dcl_model_save(m, tmp, 0, NULL));
    dcl_st *a = NULL, *b = NULL;
    CHECK_OK(dcl_st_open(&a, tmp));
    CHECK_OK(dcl_st_open(&b, FIX "model/tf_efficientnet_b0_tiny.weights.safetensors"));
    if (a && b) {
        CHECK(dcl_st_count(a) == dcl_st_count(b), "saved %d tensors, source has %d", dcl_st_count(a), dcl_st_count(b));
        for (int i = 0; i < dcl_st_count(b); i++) {
            const dcl_st_entry *eb = dcl_st_get(b, i), *ea = dcl_st_find(a, eb->name);
            CHECK(ea && ea->nbytes == eb->nbytes && ea->dtype == eb->dtype && !memcmp(ea->data, eb->data, eb->nbytes),
                  "tensor %s not preserved", eb->name);
        }
    }
    dcl_st_close(a);
    dcl_st_close(b);
    unlink(tmp);
    dcl_model_free(m);
}

/* Same seed, same bytes on the reference backend: two runs of 3 training
 * steps with dropout and drop-path on give identical parameters. */
static void check_determinism(void) {
    uint8_t *snap[2] = {NULL, NULL};
    size_t bytes = 0;
    for (int run = 0; run < 2; run++) {
        dcl_effnet_cfg cfg;
        dcl_effnet_config(&cfg, "tf_efficientnet_b0");
        dcl_effnet_set_scale(&cfg, 0.25f, 0.34f);
        cfg.num_classes = 2;
        cfg.drop_rate = 0.2f;
        cfg.drop_path_rate = 0.2f;
        dcl_model *m = NULL;
        CHECK_OK(dcl_effnet_build(&m, dcl_backend_ref(), &cfg));
        if (!m) return;
        dcl_rng rng;
        dcl_rng_seed(&rng, 42);
        CHECK_OK(dcl_net_init_params(m->net, &rng));
        CHECK_OK(dcl_net_mark_output(m->net, m->logits));
        CHECK_OK(dcl_net_plan(m->net, 2, 40, 48, DCL_PLAN_TRAIN));
        dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
        dcl_optim *opt = NULL;
        const dcl_table *P = dcl_net_params(m->net);
        CHECK_OK(dcl_optim_create(&opt, dcl_backend_ref(), P->total, &oc));
        float x[2 * 40 * 48 * 3], logits[4], dl[4];
        int tg[2] = {0, 1};
        for (int st = 0; st < 3 && opt; st++) {
            for (int i = 0; i < 2 * 40 * 48 * 3; i++) x[i] = (float)dcl_rng_normal(&rng);
            float loss;
            CHECK_OK(dcl_net_set_input(m->net, x));
            CHECK_OK(dcl_net_forward(m->net, &rng));
            CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
            CHECK_OK(dcl_cross_entropy_fwd_f32(2, 2, &loss, logits, tg));
            CHECK_OK(dcl_cross_entropy_bwd_f32(2, 2, dl, 1.0f, logits, tg));
            CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dl));
            CHECK_OK(dcl_net_zero_grad(m->net));
            CHECK_OK(dcl_net_backward(m->net));
            CHECK_OK(dcl_optim_step(opt, dcl_net_param_data(m->net), dcl_net_grad_data(m->net), 1e-3f));
        }
        bytes = P->total * sizeof(float);
        snap[run] = malloc(bytes);
        memcpy(snap[run], dcl_net_param_data(m->net), bytes);
        dcl_optim_free(opt);
        dcl_model_free(m);
    }
    CHECK(snap[0] && snap[1] && !memcmp(snap[0], snap[1], bytes), "reference backend: same seed must give identical parameters");
    free(snap[0]);
    free(snap[1]);
}

int main(void) {
    check_determinism();
    static const char *fam[] = {"efficientnet_b", "tf_efficientnet_b", "tv_efficientnet_b"};
    for (int f = 0; f < 3; f++)
        for (int v = 0; v < 8; v++) {
            char name[64];
            snprintf(name, sizeof name, "%s%d", fam[f], v);
            check_arch(name);
        }
    check_load_errors();
    dcl_backend *cpu = dcl_backend_cpu(0);
    dcl_backend *cuda = dcl_backend_create("cuda", 0);
    if (!cuda) printf("cuda: skipped: %s\n", dcl_last_error());
    const char *archs[] = {"efficientnet_b0", "tf_efficientnet_b0"};
    for (int a = 0; a < 2; a++) {
        if (!getenv("DCL_TEST_ONLY_CUDA")) {
            check_golden(archs[a], dcl_backend_ref(), "ref");
            if (cpu) check_golden(archs[a], cpu, "cpu");
        }
        if (cuda) check_golden(archs[a], cuda, "cuda");
    }
    dcl_backend_destroy(cuda);
    dcl_backend_destroy(cpu);
    CHECK_DONE();
}
