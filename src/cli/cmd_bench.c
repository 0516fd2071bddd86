/* dcl bench: time an EfficientNet training step (forward, cross-entropy,
 * backward, Adam) or inference on random data.  Prints one line per mode
 * (--mode infer,train runs both on one backend):
 *   CONFIG dcl_img_s=X dcl_step_s=S dcl_rss_mb=A dcl_arena_mb=R dcl_gflops=G dcl_cpu_s=C
 * (bench/run pairs it with PyTorch in the same run). */
#include "cli/cli.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f) {
    fprintf(f, "usage: dcl bench [--arch efficientnet_b0] [--size 224] [--batch 16] [--mode train|infer|infer,train]\n"
               "                 [--steps 5] [--warmup 2] [--threads N] [--device cpu|ref|cuda[:N][,bf16]] [--summary]\n"
               "                 [--fuse all|none|fold,bnact,se,pw,dw] [--profile] [--profile-layers]\n");
}

/* user + system CPU time of the process: with other work on the machine,
 * a steadier measure of the work per step than the wall clock */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

typedef struct bench_opts {
    const char *arch;
    const dcl_effnet_cfg *cfg;
    int size, batch, steps, warmup, summary, profile, fuse, train;
} bench_opts;

/* One mode on the given backend: warm-up, timed steps, then (with
 * profile) as many steps again timed per layer, which syncs after every
 * layer and so is kept out of the timed ones. */
static dcl_status bench_mode(dcl_backend *be, const bench_opts *o) {
    const int train = o->train, batch = o->batch, size = o->size, steps = o->steps, warmup = o->warmup;
    const dcl_effnet_cfg *cfg = o->cfg;
    const char *arch = o->arch;
    const int ncls = cfg->num_classes;
    dcl_status s = DCL_OK;
    dcl_model *m = NULL;
    dcl_optim *opt = NULL;
    float *xdev = NULL;         /* the batch in device memory (device backends) */
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    size_t nin = (size_t)batch * size * size * 3;
    float *x = malloc(nin * sizeof(float));
    float *logits = malloc((size_t)batch * ncls * sizeof(float));
    float *dlog = malloc((size_t)batch * ncls * sizeof(float));
    int *tgt = malloc(batch * sizeof(int));
    if (!x || !logits || !dlog || !tgt) { s = dcl_fail(DCL_ERR_NOMEM, "bench buffers"); goto done; }
    for (size_t i = 0; i < nin; i++) x[i] = (float)dcl_rng_normal(&rng);
    for (int i = 0; i < batch; i++) tgt[i] = (int)dcl_rng_below(&rng, ncls);
    s = dcl_effnet_build(&m, be, cfg);
    if (!s) s = dcl_net_init_params(m->net, &rng);
    if (!s) s = dcl_net_mark_output(m->net, m->logits);
    if (!s) s = dcl_net_set_fuse(m->net, o->fuse);
    if (!s) s = dcl_net_plan(m->net, batch, size, size, train);
    if (!s && train) {
        dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
        oc.weight_decay = 1e-5f;
        s = dcl_optim_create(&opt, be, dcl_net_params(m->net)->total, &oc);
    }
    if (!s && o->summary) dcl_net_summary(m->net, stderr);
    /* on a device backend the batch stays in device memory, as a training
     * loop with a prefetching loader or PyTorch's own benchmark has it */
    if (!s && !be->is_host && be->mem_alloc) {
        xdev = be->mem_alloc(be, nin * sizeof(float));
        if (!xdev) s = DCL_ERR_NOMEM;
        else s = be->to_device(be, xdev, x, nin * sizeof(float));
    }
    double t0 = 0, c0 = 0, dt = 0, ct = 0, loss = 0;
    /* warm-up, timed steps, then the profiled ones */
    const int total = warmup + steps + (o->profile ? steps : 0);
    for (int it = 0; it < total && !s; it++) {
        if (it == warmup || it == warmup + steps) {
            if (be->sync) s = be->sync(be);
            if (s) break;
            if (it == warmup) {
                t0 = dcl_now();
                c0 = cpu_seconds();
            } else {
                dt = (dcl_now() - t0) / steps;
                ct = (cpu_seconds() - c0) / steps;
                s = dcl_net_profile(m->net, 1);
                if (s) break;
            }
        }
        s = xdev ? dcl_net_set_input_device(m->net, xdev) : dcl_net_set_input(m->net, x);
        if (!s) s = dcl_net_forward(m->net, &rng);
        if (!s && train) {
            float l;
            s = dcl_net_value_to_host(m->net, m->logits, logits);
            if (!s) s = dcl_cross_entropy_fwd_f32(batch, ncls, &l, logits, tgt);
            if (!s) s = dcl_cross_entropy_bwd_f32(batch, ncls, dlog, 1.0f, logits, tgt);
            if (!s) s = dcl_net_seed_from_host(m->net, m->logits, dlog);
            if (!s) s = dcl_net_zero_grad(m->net);
            if (!s) s = dcl_net_backward(m->net);
            if (!s) s = dcl_optim_step(opt, dcl_net_param_data(m->net), dcl_net_grad_data(m->net), 1e-3f);
            loss = l;
        } else if (!s) {
            s = dcl_net_value_to_host(m->net, m->logits, logits);
        }
    }
    if (!s && be->sync) s = be->sync(be);
    if (!s) {
        if (o->profile) {
            if (o->profile == 2) dcl_net_profile_print_layers(m->net, stderr, steps);
            dcl_net_profile_print(m->net, stderr, steps);
        } else {
            dt = (dcl_now() - t0) / steps;
            ct = (cpu_seconds() - c0) / steps;
        }
        double gfl = dcl_net_flops(m->net, train) / dt / 1e9;
        printf("%s_%s_%d_bs%d dcl_img_s=%.3f dcl_step_s=%.4f dcl_rss_mb=%.0f dcl_arena_mb=%.0f dcl_gflops=%.1f dcl_cpu_s=%.4f loss=%.4f\n",
               train ? "train" : "infer", strncmp(arch, "tf_", 3) ? arch + 13 : arch + 16, size, batch,
               batch / dt, dt, dcl_peak_rss_kb() / 1024.0, dcl_net_arena_bytes(m->net) / 1048576.0, gfl, ct, loss);
        fflush(stdout);
    }
done:
    if (xdev) be->mem_free(be, xdev);
    free(x); free(logits); free(dlog); free(tgt);
    dcl_optim_free(opt);
    dcl_model_free(m);
    return s;
}

int cmd_bench(int argc, char **argv) {
    const char *arch = "efficientnet_b0", *mode = "train", *device = "cpu";
    int size = 224, batch = 16, steps = 5, warmup = 2, threads = 0, summary = 0, profile = 0, fuse = DCL_FUSE_ALL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--summary")) { summary = 1; continue; }
        if (!strcmp(a, "--profile")) { profile = 1; continue; }
        if (!strcmp(a, "--profile-layers")) { profile = 2; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "dcl bench: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        const char *v = argv[++i];
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--fuse")) {
            fuse = 0;
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (!strcmp(t, "all")) fuse |= DCL_FUSE_ALL;
                else if (!strcmp(t, "fold")) fuse |= DCL_FUSE_FOLD_BN;
                else if (!strcmp(t, "bnact")) fuse |= DCL_FUSE_BN_ACT;
                else if (!strcmp(t, "se")) fuse |= DCL_FUSE_SE;
                else if (!strcmp(t, "pw")) fuse |= DCL_FUSE_PW;
                else if (!strcmp(t, "dw")) fuse |= DCL_FUSE_DW;
                else if (strcmp(t, "none")) {
                    fprintf(stderr, "dcl bench: --fuse takes all, none or a list of fold, bnact, se, pw, dw (got %s)\n", v);
                    return DCL_EXIT_USAGE;
                }
            }
        }
        else { fprintf(stderr, "dcl bench: unknown option %s\n", a); usage(stderr); return DCL_EXIT_USAGE; }
    }
    if (size < 32 || batch < 1 || steps < 1 || warmup < 0) {
        fprintf(stderr, "dcl bench: bad arguments (size >= 32, batch >= 1, steps >= 1, warmup >= 0)\n");
        return DCL_EXIT_USAGE;
    }
    char modes[64];
    snprintf(modes, sizeof modes, "%s", mode);
    for (char *t = strtok(modes, ","); t; t = strtok(NULL, ","))
        if (strcmp(t, "train") && strcmp(t, "infer")) {
            fprintf(stderr, "dcl bench: --mode takes train, infer or a list such as infer,train (got %s)\n", mode);
            return DCL_EXIT_USAGE;
        }
    if (threads > 0) dcl_set_num_threads(threads);
    dcl_effnet_cfg cfg;
    dcl_status s = dcl_effnet_config(&cfg, arch);
    if (s) return cli_fail("bench", s);
    dcl_backend *be = dcl_backend_create(device, threads);
    if (!be) return cli_fail("bench", DCL_ERR_UNSUPPORTED);
    /* one backend for all modes: a device backend's convolution plans
     * (algorithm searches) are shared */
    snprintf(modes, sizeof modes, "%s", mode);
    char *save = NULL;
    for (char *t = strtok_r(modes, ",", &save); t && !s; t = strtok_r(NULL, ",", &save)) {
        bench_opts o = {arch, &cfg, size, batch, steps, warmup, summary, profile, fuse, !strcmp(t, "train")};
        s = bench_mode(be, &o);
    }
    dcl_backend_destroy(be);
    return s ? cli_fail("bench", s) : 0;
}
