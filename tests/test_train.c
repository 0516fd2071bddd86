/* End to end: the DCL trainer on a small synthetic face cache (a narrow
 * EfficientNet-b0 at 64x64): the loss falls, validation AUC exceeds 0.9;
 * the same with bf16 activation storage (cpu,bf16), and on a GPU (cuda and
 * cuda,bf16; skipped without one);
 * a run killed with SIGKILL at random moments leaves a loadable checkpoint
 * and --resume continues it; bad configs give clear errors. */
#define _GNU_SOURCE
#include "check.h"
#include <sched.h>
#include "synthcache.h"
#include "dcl/trainer.h"
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CFG_MODEL "model: {arch: efficientnet_b0, width: 0.25, depth: 0.34, size: 64, drop_rate: 0.0}\n"
#define CFG_TRAIN "train: {epochs: 12, batch: 8, lr: 1.0e-3, device: cpu, threads: 2, checkpoint_every: 3, log_every: 1, seed: 3}\n"
#define CFG_DCL "dcl: {queue_size: 64, warmup_epochs: 1}\n"
/* the random views make this tiny from-scratch problem much slower to learn;
 * they are tested separately (test_dcl) */
#define CFG_VIEWS "views: {patch: 0, srm: 0, frame_shift: 0, mixup: 0, flip: 0.5, crop: 0, jitter: 0, blur: 0, jpeg: 0}\n"
static const char *base_cfg = CFG_MODEL "data: {prefetch: 2}\n" CFG_TRAIN CFG_DCL CFG_VIEWS;

static dcl_status load_cfg(dcl_train_cfg *t, const char *cache, const char *out, const char *extra) {
    dcl_config *c = NULL;
    DCL_TRY(dcl_config_parse(&c, base_cfg, strlen(base_cfg), "test"));
    char kv[4200];
    snprintf(kv, sizeof kv, "data.cache=%s", cache);
    dcl_status s = dcl_config_set_arg(c, kv);
    snprintf(kv, sizeof kv, "train.out=%s", out);
    if (!s) s = dcl_config_set_arg(c, "data.workers=2");
    if (!s) s = dcl_config_set_arg(c, kv);
    if (!s && extra) s = dcl_config_set_arg(c, extra);
    if (!s) s = dcl_train_cfg_from_config(t, c);
    dcl_config_free(c);
    return s;
}

/* first and last logged cross-entropy (mean of the first / last 8 steps);
 * the contrastive terms grow with the queues, so CE is the falling part */
static void log_losses(const char *out, double *first, double *last) {
    char path[4200];
    snprintf(path, sizeof path, "%s/log.jsonl", out);
    FILE *f = fopen(path, "r");
    double v[4096];
    int n = 0;
    char line[2048];
    while (f && fgets(line, sizeof line, f) && n < 4096) {
        char *p = strstr(line, "\"ce\": ");
        if (p && strstr(line, "\"step\"") && !strstr(line, "epoch_end")) v[n++] = atof(p + 6);
    }
    if (f) fclose(f);
    *first = *last = NAN;
    if (n < 16) return;
    double a = 0, b = 0;
    for (int i = 0; i < 8; i++) { a += v[i]; b += v[n - 1 - i]; }
    *first = a / 8;
    *last = b / 8;
}

/* Loads a checkpoint of the narrow b0 test model into a fresh detector on
 * the reference backend; returns its step, or -1 when it does not load. */
static int64_t checkpoint_step(const char *path, const dcl_method_cfg *method) {
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_detector *d = NULL;
    int64_t step = -1;
    CHECK_OK(dcl_detector_create(&d, dcl_backend_ref(), &e, method, 1));
    if (d) {
        CHECK_OK(dcl_detector_plan(d, 8, 64, 64, DCL_PLAN_TRAIN));
        dcl_train_state ts;
        if (dcl_checkpoint_load(path, d, NULL, &ts) == DCL_OK) step = ts.step;
        else CHECK(0, "%s does not load: %s", path, dcl_last_error());
        dcl_detector_free(d);
    }
    return step;
}

/* 1c. the trainer end to end on a GPU: views, queues, loader and
 * checkpoints with a device backend; it learns as on the CPU */
static void test_cuda_training(const char *dir, const char *cache) {
    dcl_backend *be = dcl_backend_create("cuda", 0);
    if (!be) {
        printf("cuda: skipped: %s\n", dcl_last_error());
        return;
    }
    dcl_backend_destroy(be);
    const char *specs[2] = {"cuda", "cuda,bf16"};
    for (int k = 0; k < 2; k++) {
        char outc[300], dev[64];
        snprintf(outc, sizeof outc, "%s/run_%s", dir, k ? "cuda_bf16" : "cuda");
        snprintf(dev, sizeof dev, "train.device=%s", specs[k]);
        dcl_train_cfg t;
        CHECK_OK(load_cfg(&t, cache, outc, dev));
        dcl_train_result r;
        double t0 = dcl_now();
        CHECK_OK(dcl_train(&t, 0, "test", &r));
        double f, l;
        log_losses(outc, &f, &l);
        printf("%s: %lld steps in %.1f s: best validation AUC %.4f; cross-entropy %.4f -> %.4f\n", specs[k],
               (long long)r.steps, dcl_now() - t0, r.best_auc, f, l);
        CHECK(r.best_auc > 0.9, "%s: validation AUC %.4f should exceed 0.9", specs[k], r.best_auc);
        CHECK(l < f, "%s: cross-entropy should fall: %.4f -> %.4f", specs[k], f, l);
        /* the checkpoint written on the GPU loads on the CPU */
        char last[400];
        snprintf(last, sizeof last, "%s/last.safetensors", outc);
        int64_t step = checkpoint_step(last, &t.method);
        CHECK(step == r.steps, "%s: checkpoint at step %lld, trained %lld", specs[k], (long long)step, (long long)r.steps);
    }
}

int main(void) {
    char dir[] = "/tmp/dcl_train_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cache[256], out[256], out2[256];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(out2, sizeof out2, "%s/run_kill", dir);
    CHECK(make_synth_cache(cache, 40, 6, 64, 11) == 0, "synthetic cache: %s", dcl_last_error());
    test_cuda_training(dir, cache);
    if (getenv("DCL_TEST_ONLY_CUDA")) CHECK_DONE();

    /* 1. training works: loss falls, validation AUC > 0.9 */
    dcl_train_cfg t;
    CHECK_OK(load_cfg(&t, cache, out, NULL));
    dcl_train_result r;
    double t0 = dcl_now();
    dcl_status s = dcl_train(&t, 0, "test", &r);
    CHECK_OK(s);
    printf("trained %lld steps in %.1f s: best validation AUC %.4f (epoch %d)\n", (long long)r.steps, dcl_now() - t0, r.best_auc, r.best_epoch + 1);
    CHECK(r.best_auc > 0.9, "validation AUC %.4f should exceed 0.9", r.best_auc);
    double first, last;
    log_losses(out, &first, &last);
    printf("cross-entropy: first steps %.4f, last steps %.4f\n", first, last);
    {   /* every step line says how much of the time went to waiting for batches */
        char path[4200], line[4096];
        snprintf(path, sizeof path, "%s/log.jsonl", out);
        FILE *f = fopen(path, "r");
        int steps_logged = 0, with_wait = 0, bad_wait = 0, epochs = 0, epoch_wait = 0;
        while (f && fgets(line, sizeof line, f)) {
            if (strstr(line, "\"epoch_end\"")) {
                epochs++;
                epoch_wait += strstr(line, "\"data_wait_seconds\": ") != NULL && strstr(line, "\"train_seconds\": ") != NULL;
                continue;
            }
            if (!strstr(line, "{\"step\"")) continue;
            steps_logged++;
            const char *p = strstr(line, "\"data_wait\": ");
            if (!p) continue;
            with_wait++;
            double v = atof(p + 13);
            bad_wait += !(v >= 0 && v <= 1);
        }
        if (f) fclose(f);
        CHECK(steps_logged > 0 && with_wait == steps_logged && bad_wait == 0,
              "data_wait in %d of %d step lines (%d outside [0, 1])", with_wait, steps_logged, bad_wait);
        CHECK(epochs > 0 && epoch_wait == epochs, "train_seconds / data_wait_seconds in %d of %d epoch lines", epoch_wait, epochs);
    }
    CHECK(last < first, "cross-entropy should fall: %.4f -> %.4f", first, last);
    const long long steps = r.steps;
    /* the run directory refuses a second fresh run */
    s = dcl_train(&t, 0, "test", &r);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "--resume"), "second run into the same out: %s", dcl_last_error());

    /* 1b. the same run with activations stored in bf16 learns as well */
    {
        char outb[300];
        snprintf(outb, sizeof outb, "%s/run_bf16", dir);
        dcl_train_cfg tb;
        CHECK_OK(load_cfg(&tb, cache, outb, "train.device=cpu,bf16"));
        dcl_train_result rb;
        t0 = dcl_now();
        CHECK_OK(dcl_train(&tb, 0, "test", &rb));
        double fb, lb;
        log_losses(outb, &fb, &lb);
        printf("bf16 storage: %lld steps in %.1f s: best validation AUC %.4f; cross-entropy %.4f -> %.4f\n",
               (long long)rb.steps, dcl_now() - t0, rb.best_auc, fb, lb);
        CHECK(rb.steps == steps, "bf16 run: %lld steps, fp32 %lld", (long long)rb.steps, steps);
        CHECK(rb.best_auc > 0.9, "bf16 run: validation AUC %.4f should exceed 0.9", rb.best_auc);
        CHECK(lb < fb, "bf16 run: cross-entropy should fall: %.4f -> %.4f", fb, lb);
    }

    /* 2. SIGKILL at random moments: the last checkpoint loads and resume continues */
    dcl_train_cfg tk;
    CHECK_OK(load_cfg(&tk, cache, out2, "train.epochs=40"));
    /* the dcl binary next to the tests directory, and the config as a file */
    char dclbin[4096], cfgfile[300];
    ssize_t nl = readlink("/proc/self/exe", dclbin, sizeof dclbin - 16);
    dclbin[nl > 0 ? nl : 0] = 0;
    char *slash = strrchr(dclbin, '/');
    if (slash) { *slash = 0; slash = strrchr(dclbin, '/'); }
    if (slash) strcpy(slash, "/dcl");
    CHECK(access(dclbin, X_OK) == 0, "dcl binary %s not found", dclbin);
    snprintf(cfgfile, sizeof cfgfile, "%s/kill.yaml", dir);
    FILE *cf = fopen(cfgfile, "w");
    if (cf) {
        fprintf(cf, "%s%s%s", CFG_MODEL, CFG_DCL, CFG_VIEWS);
        fprintf(cf, "data: {cache: %s, workers: 2}\n", cache);
        fprintf(cf, "train: {epochs: 40, batch: 8, lr: 1.0e-3, device: cpu, threads: 2, checkpoint_every: 3, seed: 3, out: %s}\n", out2);
        fclose(cf);
    }
    dcl_rng rng;
    dcl_rng_seed(&rng, 5);
    int kills = 0;
    int64_t prev_step = -1;
    for (int round = 0; round < 3; round++) {
        /* a separate process (the dcl binary): fork() after OpenMP is unsafe */
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
            if (round > 0) execl(dclbin, dclbin, "train", "--config", cfgfile, "--resume", (char *)NULL);
            else execl(dclbin, dclbin, "train", "--config", cfgfile, (char *)NULL);
            _exit(127);
        }
        /* wait for a checkpoint of this round (up to 120 s), then kill at a random moment */
        char lastp[300];
        snprintf(lastp, sizeof lastp, "%s/last.safetensors", out2);
        struct stat st0;
        time_t before = stat(lastp, &st0) == 0 ? st0.st_mtime : 0;
        long before_ns = before ? st0.st_mtim.tv_nsec : 0;
        for (int w = 0; w < 1200; w++) {
            struct stat st1;
            if (stat(lastp, &st1) == 0 && (st1.st_mtime != before || st1.st_mtim.tv_nsec != before_ns)) break;
            if (waitpid(pid, NULL, WNOHANG) == pid) break;
            usleep(100000);
        }
        usleep((useconds_t)(dcl_rng_uniform(&rng) * 1500000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        kills += WIFSIGNALED(st);
        char last[300];
        snprintf(last, sizeof last, "%s/last.safetensors", out2);
        CHECK(access(last, F_OK) == 0, "round %d: no checkpoint after kill", round);
        /* loads into a fresh detector */
        int64_t step = checkpoint_step(last, &tk.method);
        if (step >= 0) {
            printf("round %d: killed; checkpoint at step %lld loads\n", round, (long long)step);
            CHECK(step > prev_step, "round %d: resumed run should progress past step %lld (at %lld)", round, (long long)prev_step, (long long)step);
            prev_step = step;
        }
    }
    CHECK(kills == 3, "the child should have been killed 3 times (%d)", kills);
    /* resume finishes a short continuation */
    dcl_train_cfg tr;
    CHECK_OK(load_cfg(&tr, cache, out2, "train.epochs=3"));
    s = dcl_train(&tr, 1, NULL, &r);
    CHECK(s == DCL_OK, "resume: %s", dcl_last_error());

    /* 3. bad configuration keys and values */
    dcl_config *c = NULL;
    const char *bad = "train: {lrr: 0.1}\n";
    CHECK_OK(dcl_config_parse(&c, bad, strlen(bad), "bad.yaml"));
    s = dcl_train_cfg_from_config(&t, c);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "lrr"), "unknown key should be named: %s", dcl_last_error());
    dcl_config_free(c);
    /* data.workers: a count or auto */
    const char *wauto = "data: {cache: x, workers: auto}\n", *wbad = "data: {cache: x, workers: many}\n";
    CHECK_OK(dcl_config_parse(&c, wauto, strlen(wauto), "w.yaml"));
    CHECK_OK(dcl_train_cfg_from_config(&t, c));
    CHECK(t.workers == 0, "workers auto read as %d", t.workers);
    dcl_config_free(c);
    CHECK_OK(dcl_config_parse(&c, wbad, strlen(wbad), "w.yaml"));
    s = dcl_train_cfg_from_config(&t, c);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "data.workers") && strstr(dcl_last_error(), "many"),
          "bad workers should be named: %s", dcl_last_error());
    dcl_config_free(c);
    CHECK(dcl_loader_workers(5, 0, 1) == 5 && dcl_loader_workers(5, 1, 1) == 5, "an explicit count is kept");
    CHECK(dcl_loader_workers(0, 1, 1) == 2, "auto on a host backend: %d", dcl_loader_workers(0, 1, 1));
    {
        cpu_set_t set;
        int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
        int w1 = dcl_loader_workers(0, 0, 1), w4 = dcl_loader_workers(0, 0, 4);
        int e1 = ncpu - 1 < 2 ? 2 : ncpu - 1 > 32 ? 32 : ncpu - 1;
        int e4 = ncpu / 4 - 1 < 2 ? 2 : ncpu / 4 - 1 > 32 ? 32 : ncpu / 4 - 1;
        CHECK(w1 == e1 && w4 == e4, "auto on a device backend with %d cores: %d (1 process), %d (4 processes); expected %d, %d",
              ncpu, w1, w4, e1, e4);
        CHECK(dcl_loader_workers(0, 0, 100000) == 2, "auto never below 2");
    }
    const char *bad2 = "data: {cache: x}\ndcl: {hard_mode: hardest}\n";
    CHECK_OK(dcl_config_parse(&c, bad2, strlen(bad2), "bad2.yaml"));
    s = dcl_train_cfg_from_config(&t, c);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "hardest"), "bad value should be named: %s", dcl_last_error());
    dcl_config_free(c);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
