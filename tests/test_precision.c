/* bf16 activation storage ("SPEC,bf16" backends, dcl_backend_bf16) at the
 * level of whole networks, against the fp32 PyTorch goldens:
 *  - device strings: "cpu,bf16", "ref,bf16", "cpu,fp32", bad precisions;
 *  - the narrow EfficientNet-b0 goldens of test_model (eval and train
 *    logits, loss, every parameter gradient, 5 Adam steps) within bf16
 *    tolerances, on the reference and the oneDNN backend;
 *  - what crosses the boundary is bf16 (every value read back is a bf16
 *    number), parameters stay fp32 (master weights), the activation arena
 *    is about half that of fp32;
 *  - 10 steps of DCL training against the PyTorch fp32 trajectory, bounded
 *    by how far PyTorch's own bf16 (autocast) run of them drifts;
 *  - on a GPU (skipped without one): the same goldens on "cuda,bf16".
 * The measured errors are printed; docs/CUDA.md (Precision) quotes them.
 */
#include "check.h"
#include "golden.h"
#include "backend/backend.h"
#include "dcl/detector.h"
#include "dcl/io.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include "dcl/views.h"
#include <cjson/cJSON.h>

#define STEP "dcl/dcl_step.safetensors"
#define TRAJ "dcl/dcl_traj.safetensors"

/* a fixture tensor as a fresh array (free with free()), NCHW -> NHWC when nhwc */
static float *gget(golden *g, const char *name, int64_t *numel, int nhwc) {
    const golden_tensor *t = golden_get(g, name, nhwc ? GOLDEN_NHWC : GOLDEN_AS_IS);
    if (!t) { CHECK(0, "%s", dcl_last_error()); return NULL; }
    if (numel) *numel = t->numel;
    return golden_dup(t->data, t->numel);
}

/* max|a-b| / max|b| */
static double rel_max(const float *a, const float *b, int64_t n) {
    double mb = 0, md = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
        if (!(d <= md)) md = d;
    }
    return mb > 0 ? md / mb : md;
}

static int all_bf16(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        if (u & 0xffffu) return 0;
    }
    return 1;
}

static void check_specs(void) {
    dcl_backend *b = dcl_backend_create("cpu,bf16", 1);
    CHECK(b != NULL, "cpu,bf16: %s", dcl_last_error());
    if (b) {
        CHECK(dcl_backend_act_bytes(b) == 2, "cpu,bf16 stores %d-byte activations", dcl_backend_act_bytes(b));
        CHECK(strcmp(b->name, "cpu,bf16") == 0, "name %s", b->name);
        CHECK(dcl_backend_base(b) != b && strcmp(dcl_backend_base(b)->name, "cpu") == 0, "base of cpu,bf16");
        dcl_backend_destroy(b);
    }
    b = dcl_backend_create("cpu,fp32", 1);
    CHECK(b != NULL && dcl_backend_act_bytes(b) == 4 && !b->inner, "cpu,fp32 is the plain cpu backend");
    dcl_backend_destroy(b);
    b = dcl_backend_create("ref,bf16", 1);
    CHECK(b != NULL && dcl_backend_act_bytes(b) == 2, "ref,bf16: %s", b ? "" : dcl_last_error());
    dcl_backend_destroy(b);
    const char *bad[] = {"cpu,fp16", "cpu,", "cpu,bf16,bf16", "gpu,bf16", ",bf16"};
    for (int i = 0; i < 5; i++) {
        b = dcl_backend_create(bad[i], 1);
        CHECK(b == NULL, "device '%s' must be refused", bad[i]);
        CHECK(b != NULL || strlen(dcl_last_error()) > 0, "'%s': no message", bad[i]);
        if (b) dcl_backend_destroy(b);
        else printf("  '%s': %s\n", bad[i], dcl_last_error());
    }
}

/* Against the PyTorch goldens (float64, exact to fp32) and against how far
 * PyTorch's own bf16 mixed precision (torch.autocast) lands from them on the
 * same batch (tests/fixtures/model/amp_bf16_deviation.json, written by
 * tools/make_bf16_reference.py).  Each stored activation carries a relative
 * error up to 2^-9.  In evaluation mode the narrow b0 damps such errors
 * (logits within TOL_EVAL).  In training mode, with batch 2 and 2x2 maps,
 * the batch statistics amplify any perturbation (a 0.2% change of the input
 * alone moves the fp32 logits by 4%), and autocast's deviations are large
 * (training logits 71% on efficientnet_b0): there dcl's deviation must stay
 * within AMP_FACTOR times autocast's, quantity by quantity. */
#define TOL_EVAL 2e-2
#define AMP_FACTOR 1.5

static double amp_dev(const char *arch, const char *key) {
    static cJSON *j;
    char jp[512];
    if (!j && dcl_json_load(&j, golden_path(jp, sizeof jp, "model/amp_bf16_deviation.json"))) {
        CHECK(0, "%s", dcl_last_error());
        return NAN;
    }
    char name[128];
    snprintf(name, sizeof name, "%s_tiny", arch);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, name);
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    CHECK(cJSON_IsNumber(v), "amp_bf16_deviation.json lacks %s.%s", name, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_vs_amp(const char *arch, const char *spec, const char *key, double got) {
    double amp = amp_dev(arch, key);
    CHECK(got <= AMP_FACTOR * amp, "%s/%s %s: deviation %.3g, PyTorch autocast bf16 %.3g", arch, spec, key, got, amp);
    printf("%s/%s: %-12s deviation from exact %.3e (PyTorch autocast bf16: %.3e)\n", arch, spec, key, got, amp);
}

static dcl_backend *make_be(const char *spec) {
    dcl_backend *be = dcl_backend_create(spec, 2);
    if (!be) {
        if (!strncmp(spec, "cuda", 4)) printf("%s: skipped: %s\n", spec, dcl_last_error());
        else CHECK(0, "%s: %s", spec, dcl_last_error());
    }
    return be;
}

static void check_golden(const char *arch, const char *spec) {
    dcl_backend *be = make_be(spec);
    if (!be) return;
    char wrel[256], wpath[512], grel[256];
    snprintf(wrel, sizeof wrel, "model/%s_tiny.weights.safetensors", arch);
    golden_path(wpath, sizeof wpath, wrel);
    snprintf(grel, sizeof grel, "model/%s_tiny.golden.safetensors", arch);
    golden *g = NULL;
    if (golden_open(&g, grel)) { CHECK(0, "%s", dcl_last_error()); dcl_backend_destroy(be); return; }
    dcl_effnet_cfg cfg;
    CHECK_OK(dcl_effnet_config(&cfg, arch));
    dcl_effnet_set_scale(&cfg, atof(golden_meta(g, "channel_multiplier")), atof(golden_meta(g, "depth_multiplier")));
    cfg.num_classes = atoi(golden_meta(g, "num_classes"));
    cfg.drop_rate = 0;
    cfg.drop_path_rate = 0;
    int n, c, h, w;
    CHECK(sscanf(golden_meta(g, "input"), "%d,%d,%d,%d", &n, &c, &h, &w) == 4, "input meta");
    dcl_model *m = NULL;
    CHECK_OK(dcl_effnet_build(&m, be, &cfg));
    if (!m) { golden_close(g); dcl_backend_destroy(be); return; }
    CHECK_OK(dcl_model_load(m, wpath, NULL));
    int64_t nl = 0;
    float *x = gget(g, "input", NULL, 1), *want_eval = gget(g, "eval_logits", &nl, 0);
    float *logits = malloc(nl * sizeof(float));
    for (int fuse = 0; fuse < 2 && x && want_eval; fuse++) {
        /* the evaluation plan with batch norms folded into the convolutions, and without */
        CHECK_OK(dcl_net_set_fuse(m->net, fuse ? DCL_FUSE_ALL : 0));
        CHECK_OK(dcl_net_plan(m->net, n, h, w, DCL_PLAN_EVAL));
        CHECK_OK(dcl_net_set_input(m->net, x));
        CHECK_OK(dcl_net_forward(m->net, NULL));
        CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
        double e = rel_max(logits, want_eval, nl);
        CHECK(e <= TOL_EVAL, "%s/%s eval logits (fuse %d): relative error %.3g > %.1g", arch, spec, fuse, e, TOL_EVAL);
        CHECK(all_bf16(logits, nl), "%s/%s: eval logits are not bf16 values", arch, spec);
        printf("%s/%s: eval logits (%s) against PyTorch fp32: rel err %.2e\n", arch, spec,
               fuse ? "batch norms folded" : "unfused", e);
    }
    if (x && want_eval) check_vs_amp(arch, spec, "eval_logits", rel_max(logits, want_eval, nl));

    /* one training step against the goldens, measured like autocast */
    int64_t nf = 0;
    float *want_logits = gget(g, "logits", NULL, 0), *want_feat = gget(g, "features", &nf, 1), *tg = gget(g, "target", NULL, 0);
    float *feat = malloc(nf * sizeof(float)), *dlog = malloc(nl * sizeof(float));
    const dcl_table *P = dcl_net_params(m->net);
    float *hg = malloc(P->total * sizeof(float));
    int tgt[64];
    for (int i = 0; i < n && i < 64 && tg; i++) tgt[i] = (int)tg[i];
    if (x && want_logits && want_feat && tg && n <= 64) {
        CHECK_OK(dcl_net_set_fuse(m->net, DCL_FUSE_ALL));
        CHECK_OK(dcl_net_mark_output(m->net, m->logits));
        CHECK_OK(dcl_net_plan(m->net, n, h, w, DCL_PLAN_TRAIN));
        CHECK_OK(dcl_net_set_input(m->net, x));
        dcl_rng rng;
        dcl_rng_seed(&rng, 7);
        CHECK_OK(dcl_net_forward(m->net, &rng));
        CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
        CHECK_OK(dcl_net_value_to_host(m->net, m->features, feat));
        CHECK_OK(dcl_cross_entropy_bwd_f32(n, cfg.num_classes, dlog, 1.0f, logits, tgt));
        CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dlog));
        CHECK_OK(dcl_net_zero_grad(m->net));
        CHECK_OK(dcl_net_backward(m->net));
        if (be->to_host) CHECK_OK(be->to_host(be, hg, dcl_net_grad_data(m->net), P->total * sizeof(float)));
        else memcpy(hg, dcl_net_grad_data(m->net), P->total * sizeof(float));
        check_vs_amp(arch, spec, "train_logits", rel_max(logits, want_logits, nl));
        check_vs_amp(arch, spec, "features", rel_max(feat, want_feat, nf));
        double gsum = 0, gworst = 0;
        int ng = 0;
        for (int i = 0; i < P->n; i++) {
            char gname[DCL_NAME_MAX + 8];
            snprintf(gname, sizeof gname, "grad.%s", P->v[i].name);
            int64_t gn;
            float *want = gget(g, gname, &gn, 0);
            if (!want) continue;
            double mw = 0;
            for (int64_t k = 0; k < gn; k++) if (fabs(want[k]) > mw) mw = fabs(want[k]);
            if (mw >= 1e-6 && gn == P->v[i].numel) {   /* as the reference script: not vanishing */
                double r = rel_max(hg + P->v[i].offset, want, gn);
                gsum += r;
                if (r > gworst) gworst = r;
                ng++;
            }
            free(want);
        }
        CHECK(ng == (int)amp_dev(arch, "grads"), "%s/%s: %d gradients compared, the reference %d", arch, spec, ng,
              (int)amp_dev(arch, "grads"));
        check_vs_amp(arch, spec, "grad_mean", ng ? gsum / ng : NAN);
        check_vs_amp(arch, spec, "grad_worst", gworst);
    }
    free(want_logits); free(want_feat); free(tg); free(feat); free(dlog); free(hg);
    free(x); free(want_eval); free(logits);
    dcl_model_free(m);
    golden_close(g);
    dcl_backend_destroy(be);
}

/* Training in bf16 storage against dcl's own fp32 (which test_model checks
 * against PyTorch), where batch norm sees enough rows to be stable: the
 * narrow b0 at batch 8, 96x96 (3x3 last map, 72 rows per channel), the
 * same random weights and input.  One step: logits, features, every
 * parameter gradient (within sanity bounds: a 0.2% perturbation of the
 * input alone moves this fp32 network's logits by 0.8% and its gradients by
 * 1.1% on average); then 20 Adam steps on a fixed batch, where both must
 * fit the labels; the arena is about half, parameters stay fp32. */
static void check_train(const char *spec) {
    dcl_backend *be = make_be(spec);
    if (!be) return;
    dcl_backend *b32 = dcl_backend_base(be);
    dcl_effnet_cfg cfg;
    CHECK_OK(dcl_effnet_config(&cfg, "efficientnet_b0"));
    dcl_effnet_set_scale(&cfg, 0.25f, 0.34f);
    cfg.num_classes = 2;
    cfg.drop_rate = 0;
    cfg.drop_path_rate = 0;
    const int n = 8, S = 96, K = 2;
    dcl_model *m[2] = {NULL, NULL};
    CHECK_OK(dcl_effnet_build(&m[0], b32, &cfg));
    CHECK_OK(dcl_effnet_build(&m[1], be, &cfg));
    if (!m[0] || !m[1]) { dcl_model_free(m[0]); dcl_model_free(m[1]); dcl_backend_destroy(be); return; }
    const dcl_table *P = dcl_net_params(m[0]->net);
    float *p0 = malloc(P->total * sizeof(float));
    {
        dcl_rng r;
        dcl_rng_seed(&r, 3);
        CHECK_OK(dcl_net_init_params(m[0]->net, &r));
        for (int i = 0; i < P->n; i++) {
            CHECK_OK(dcl_net_get_tensor(m[0]->net, P->v[i].name, p0 + P->v[i].offset, P->v[i].numel));
            CHECK_OK(dcl_net_set_tensor(m[1]->net, P->v[i].name, p0 + P->v[i].offset, P->v[i].numel));
        }
    }
    size_t nx = (size_t)n * S * S * 3;
    float *x = malloc(nx * sizeof(float));
    dcl_rng r;
    dcl_rng_seed(&r, 5);
    int tgt[8];
    for (int i = 0; i < n; i++) {
        tgt[i] = i % 2;
        /* a class-dependent pattern plus noise: a task both can fit */
        for (size_t j = 0; j < (size_t)S * S * 3; j++)
            x[(size_t)i * S * S * 3 + j] = (float)(dcl_rng_uniform(&r) * 2 - 1) + (tgt[i] ? 0.5f * (float)((j / 3 / S) % 8 < 4) : 0.0f);
    }
    float *lg[2], *ft[2], *gr[2], dlog[16];
    int64_t nf = 0;
    for (int k = 0; k < 2; k++) {
        dcl_net *net = m[k]->net;
        CHECK_OK(dcl_net_mark_output(net, m[k]->logits));
        CHECK_OK(dcl_net_plan(net, n, S, S, DCL_PLAN_TRAIN));
        int sh[4];
        dcl_net_value_shape(net, m[k]->features, sh);
        nf = (int64_t)sh[0] * sh[1] * sh[2] * sh[3];
        lg[k] = malloc(n * K * sizeof(float));
        ft[k] = malloc(nf * sizeof(float));
        gr[k] = malloc(P->total * sizeof(float));
        dcl_rng rr;
        dcl_rng_seed(&rr, 9);
        CHECK_OK(dcl_net_set_input(net, x));
        CHECK_OK(dcl_net_forward(net, &rr));
        CHECK_OK(dcl_net_value_to_host(net, m[k]->logits, lg[k]));
        CHECK_OK(dcl_net_value_to_host(net, m[k]->features, ft[k]));
        CHECK_OK(dcl_cross_entropy_bwd_f32(n, K, dlog, 1.0f, lg[k], tgt));
        CHECK_OK(dcl_net_seed_from_host(net, m[k]->logits, dlog));
        CHECK_OK(dcl_net_zero_grad(net));
        CHECK_OK(dcl_net_backward(net));
        dcl_backend *nb = dcl_net_backend(net);
        if (nb->to_host) CHECK_OK(nb->to_host(nb, gr[k], dcl_net_grad_data(net), P->total * sizeof(float)));
        else memcpy(gr[k], dcl_net_grad_data(net), P->total * sizeof(float));
    }
    double ar = (double)dcl_net_arena_bytes(m[1]->net) / (double)dcl_net_arena_bytes(m[0]->net);
    CHECK(ar > 0.4 && ar < 0.6, "%s: training arena %.3f of fp32's", spec, ar);
    printf("%s: training activation arena %.2f MB (fp32 %.2f MB, ratio %.3f)\n", spec,
           dcl_net_arena_bytes(m[1]->net) / 1048576.0, dcl_net_arena_bytes(m[0]->net) / 1048576.0, ar);
    double el = rel_max(lg[1], lg[0], n * K), ef = rel_max(ft[1], ft[0], nf);
    /* sanity bounds (measured: logits 3e-2, features 6e-2 to 7e-2, gradients
     * 9e-2 to 1.2e-1 on average); the accuracy yardstick is check_golden's
     * comparison with PyTorch's autocast */
    CHECK(el <= 0.1, "%s train logits: relative error %.3g against fp32", spec, el);
    CHECK(ef <= 0.15, "%s features: relative error %.3g against fp32", spec, ef);
    CHECK(all_bf16(lg[1], n * K) && all_bf16(ft[1], nf), "%s: values read back are not bf16 numbers", spec);
    double gsum = 0, gworst = 0;
    int ng = 0, nbad = 0;
    const char *gw = "";
    for (int i = 0; i < P->n; i++) {
        const float *a = gr[1] + P->v[i].offset, *b = gr[0] + P->v[i].offset;
        double mb = 0;
        for (int64_t j = 0; j < P->v[i].numel; j++) if (fabs(b[j]) > mb) mb = fabs(b[j]);
        if (mb < 1e-6) continue;   /* vanishing in exact arithmetic (a bias before a batch norm) */
        double e = rel_max(a, b, P->v[i].numel);
        gsum += e;
        ng++;
        if (e > 1.0) nbad++;
        if (e > gworst) { gworst = e; gw = P->v[i].name; }
    }
    CHECK(nbad == 0 && ng > 100, "%s: %d of %d parameter gradients off by more than 100%% (worst %.3g, %s)", spec, nbad, ng, gworst, gw);
    CHECK(ng && gsum / ng <= 0.25, "%s: parameter gradients off by %.3g on average", spec, ng ? gsum / ng : 0.0);
    printf("%s: train logits rel err %.2e, features %.2e; %d parameter gradients: rel err mean %.2e, worst %.2e (%s)\n",
           spec, el, ef, ng, ng ? gsum / ng : 0.0, gworst, gw);

    /* 20 Adam steps on the fixed batch */
    double first[2] = {0, 0}, last[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        dcl_net *net = m[k]->net;
        dcl_backend *nb = dcl_net_backend(net);
        for (int i = 0; i < P->n; i++) CHECK_OK(dcl_net_set_tensor(net, P->v[i].name, p0 + P->v[i].offset, P->v[i].numel));
        dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
        dcl_optim *opt = NULL;
        CHECK_OK(dcl_optim_create(&opt, nb, P->total, &oc));
        dcl_rng rr;
        dcl_rng_seed(&rr, 9);
        for (int step = 0; step < 20 && opt; step++) {
            float loss;
            CHECK_OK(dcl_net_set_input(net, x));
            CHECK_OK(dcl_net_forward(net, &rr));
            CHECK_OK(dcl_net_value_to_host(net, m[k]->logits, lg[k]));
            CHECK_OK(dcl_cross_entropy_fwd_f32(n, K, &loss, lg[k], tgt));
            if (step == 0) first[k] = loss;
            last[k] = loss;
            CHECK_OK(dcl_cross_entropy_bwd_f32(n, K, dlog, 1.0f, lg[k], tgt));
            CHECK_OK(dcl_net_seed_from_host(net, m[k]->logits, dlog));
            CHECK_OK(dcl_net_zero_grad(net));
            CHECK_OK(dcl_net_backward(net));
            CHECK_OK(dcl_optim_step(opt, dcl_net_param_data(net), dcl_net_grad_data(net), 3e-3f));
        }
        dcl_optim_free(opt);
    }
    CHECK(last[0] < 0.2 * first[0] && last[1] < 0.2 * first[1], "%s: 20 Adam steps: fp32 loss %.4f -> %.4f, bf16 %.4f -> %.4f",
          spec, first[0], last[0], first[1], last[1]);
    printf("%s: 20 Adam steps on a fixed batch: loss fp32 %.4f -> %.4f, bf16 %.4f -> %.4f\n", spec, first[0], last[0],
           first[1], last[1]);
    float *hp = malloc(P->total * sizeof(float));
    CHECK_OK(dcl_net_get_tensor(m[1]->net, P->v[0].name, hp, P->v[0].numel));
    CHECK(!all_bf16(hp, P->v[0].numel), "%s: parameters after Adam are all bf16 numbers (master weights must be fp32)", spec);
    free(hp);
    for (int k = 0; k < 2; k++) { free(lg[k]); free(ft[k]); free(gr[k]); dcl_model_free(m[k]); }
    free(p0);
    free(x);
    dcl_backend_destroy(be);
}

/* 10 DCL steps (both encoders, queues, all three losses) against the
 * PyTorch fp32 trajectory of test_dcl (batch 4 at 96x96) */
static void load_prefixed(golden *st, dcl_net *net, const char *prefix) {
    const dcl_table *tabs[2] = {dcl_net_params(net), dcl_net_buffers(net)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            char name[DCL_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", prefix, tabs[t]->v[i].name);
            int64_t n;
            float *v = gget(st, name, &n, 0);
            if (!v) continue;
            CHECK_OK(dcl_net_set_tensor(net, tabs[t]->v[i].name, v, n));
            free(v);
        }
}

static void check_trajectory(const char *spec) {
    dcl_backend *be = make_be(spec);
    if (!be) return;
    golden *st = NULL, *sp = NULL;
    if (golden_open(&st, TRAJ) || golden_open(&sp, STEP)) { CHECK(0, "%s", dcl_last_error()); golden_close(st); dcl_backend_destroy(be); return; }
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_method_cfg mc = dcl_method_defaults();
    mc.queue_size = 12;
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, be, &e, &mc, 1));
    if (!d) { golden_close(st); golden_close(sp); dcl_backend_destroy(be); return; }
    load_prefixed(sp, d->q->net, "q.");
    CHECK_OK(dcl_detector_sync_key(d));
    int B = 4, S = 96;
    CHECK_OK(dcl_detector_plan(d, B, S, S, DCL_PLAN_TRAIN));
    float *xa = gget(sp, "v1", NULL, 1), *v2 = gget(sp, "v2", NULL, 1), *la = gget(sp, "label", NULL, 0), *ma = gget(sp, "mask", NULL, 0);
    float *lb = gget(st, "traj.label_b", NULL, 0), *mb = gget(st, "traj.mask_b", NULL, 0), *ord = gget(st, "traj.batch_b_order", NULL, 0);
    float *xb = malloc((size_t)B * S * S * 3 * sizeof(float));
    for (int i = 0; i < B; i++) memcpy(xb + (size_t)i * S * S * 3, v2 + (size_t)(int)ord[i] * S * S * 3, (size_t)S * S * 3 * sizeof(float));
    int ya[4], yb[4];
    for (int b = 0; b < B; b++) { ya[b] = (int)la[b]; yb[b] = (int)lb[b]; }
    uint8_t ca[36], cb[36];
    dcl_cell_masks(ca, ma, B, S, S, 3, 3, d->cfg.pix_thr, d->cfg.cell_thr);
    dcl_cell_masks(cb, mb, B, S, S, 3, 3, d->cfg.pix_thr, d->cfg.cell_thr);
    float *wt = gget(st, "traj.loss_total", NULL, 0), *wc = gget(st, "traj.loss_ce", NULL, 0), *wi = gget(st, "traj.loss_inter", NULL, 0),
          *wa = gget(st, "traj.loss_intra", NULL, 0), *phi = gget(st, "traj.phi", NULL, 0);
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    oc.weight_decay = 1e-5f;
    dcl_optim *opt = NULL;
    CHECK_OK(dcl_optim_create(&opt, be, dcl_net_params(d->q->net)->total, &oc));
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    double worst[4] = {0, 0, 0, 0};
    const char *nm[4] = {"total", "ce", "inter", "intra"};
    /* The yardstick: PyTorch's own bf16 run of the same 10 steps (the
     * network in float32 under CPU autocast to bfloat16) deviates from the
     * float64 reference by up to 11% on the total loss (steps 2, 5, 6) and
     * 6.6% on the cross-entropy; a bf16 trajectory drifts that far with any
     * change of rounding (10 steps through contrastive terms at temperature
     * 0.07).  The total and the cross-entropy must stay within 1.5 times
     * PyTorch's worst deviation on that term, and within 10% in any case
     * allowed. */
    double torch_worst[4] = {0, 0, 0, 0}, bound[4];
    const char *tn[4] = {"traj.torch_bf16_loss_total", "traj.torch_bf16_loss_ce", "traj.torch_bf16_loss_inter",
                         "traj.torch_bf16_loss_intra"};
    const float *refs[4] = {wt, wc, wi, wa};
    for (int k = 0; k < 4; k++) {
        float *tb = gget(st, tn[k], NULL, 0);
        const float *ref = refs[k];
        for (int step = 0; step < 10 && tb && ref; step++)
            if (ref[step] != 0) torch_worst[k] = fmax(torch_worst[k], fabs(tb[step] - ref[step]) / fabs(ref[step]));
        bound[k] = fmax(0.1, 1.5 * torch_worst[k]);
        free(tb);
    }
    for (int step = 0; step < 10 && opt; step++) {
        int a = step % 2 == 0;
        dcl_step_weights w = {1.0f - phi[step], phi[step], phi[step]};
        dcl_step_stats s;
        CHECK_OK(dcl_detector_step(d, a ? xa : xb, a ? xa : xb, a ? ya : yb, a ? ca : cb, w, opt, 1e-3f, &rng, &s));
        double g[4] = {s.loss, s.ce, s.inter, s.intra}, want[4] = {wt[step], wc[step], wi[step], wa[step]};
        /* the total and the cross-entropy; the contrastive terms divide
         * similarities by a temperature of 0.07 and move more (printed) */
        for (int k = 0; k < 4; k++) {
            double r = fabs(g[k] - want[k]) / fabs(want[k]);
            if (r > worst[k]) worst[k] = r;
            if (k < 2) CHECK(r <= bound[k], "%s step %d %s: %.6g vs PyTorch fp32 %.6g (relative %.3f, bound %.3f)", spec,
                             step, nm[k], g[k], want[k], r, bound[k]);
            CHECK(isfinite(g[k]), "%s step %d %s: %g", spec, step, nm[k], g[k]);
        }
    }
    printf("%s: 10 DCL steps, worst relative loss error: total %.2e ce %.2e inter %.2e intra %.2e "
           "(PyTorch bf16 autocast: %.2e %.2e %.2e %.2e)\n", spec, worst[0], worst[1], worst[2], worst[3],
           torch_worst[0], torch_worst[1], torch_worst[2], torch_worst[3]);
    free(xa); free(v2); free(la); free(ma); free(lb); free(mb); free(ord); free(xb);
    free(wt); free(wc); free(wi); free(wa); free(phi);
    dcl_optim_free(opt);
    dcl_detector_free(d);
    golden_close(st);
    golden_close(sp);
    dcl_backend_destroy(be);
}

int main(void) {
    /* DCL_TEST_ONLY_CUDA (the GPU script): only the cuda checks */
    const int first = getenv("DCL_TEST_ONLY_CUDA") ? 2 : 0;
    if (!first) check_specs();
    const char *archs[2] = {"efficientnet_b0", "tf_efficientnet_b0"};
    const char *specs[3] = {"ref,bf16", "cpu,bf16", "cuda,bf16"};
    for (int a = 0; a < 2; a++)
        for (int s = first; s < 3; s++) check_golden(archs[a], specs[s]);
    for (int s = first; s < 3; s++) check_train(specs[s]);
    for (int s = first ? 2 : 1; s < 3; s++) check_trajectory(specs[s]);
    CHECK_DONE();
}
