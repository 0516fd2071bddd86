/* End-to-end throughput of the DCL trainer: the loader (PNG decoding, the
 * paper's views, both views of every image), query and key encoders,
 * queues, losses and the optimiser, on a synthetic face cache
 * (tests/synthcache.c), and the share of the time the training loop spent
 * waiting for batches.  `dcl bench --mode train` times the network alone;
 * this answers whether the data pipeline keeps a device fed.
 *
 * Built by `make` (build/train_bench).
 * Run:
 *   build/train_bench DEVICE ARCH SIZE BATCH STEPS WORKERS[,WORKERS...] [CACHE_DIR]
 *   e.g. build/train_bench cuda efficientnet_b4 299 32 60 2,auto
 * WORKERS: data.workers of each run (a count or auto).  The cache (64
 * "videos" x 8 frames at SIZE, real, fake and mask crops) is written to
 * CACHE_DIR (default /tmp/dcl_train_bench_cache) unless it is there.
 * Prints per run:
 *   train_dcl ARCH SIZE bsB device=D workers=W img_s=X data_wait=F step_time=G steps=N
 * over the steps after the first 5 (cuDNN plan search, queue warm-up):
 * F and G are the shares of the time spent waiting for batches and in the
 * training steps (the rest: cell masks, logging).
 *   build/train_bench loader SIZE BATCH BATCHES WORKERS[,WORKERS...] [CACHE_DIR]
 * times the loader alone (both views, the paper's augmentations):
 *   loader SIZE bsB workers=W img_s=X
 * The synthetic crops are smooth and decode faster than real face crops. */
#include "synthcache.h"
#include "dcl/trainer.h"
#include "dcl/cache.h"
#include "dcl/loader.h"
#include "dcl/io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct { int step; double img_s, wait, busy; } row;

static int read_rows(const char *out, row *r, int max) {
    char path[4300], line[4096];
    snprintf(path, sizeof path, "%s/log.jsonl", out);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < max && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"img_s\": "), *q = strstr(line, "\"data_wait\": "), *s = strstr(line, "{\"step\": ");
        const char *u = strstr(line, "\"step_time\": ");
        if (!p || !q || !s || !u) continue;
        r[n].step = atoi(s + 9);
        r[n].img_s = atof(p + 9);
        r[n].wait = atof(q + 13);
        r[n].busy = atof(u + 13);
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* the loader alone: batches of both views with the paper's augmentations */
static int loader_only(const char *cache, int size, int batch, int nb, char *workers) {
    dcl_cache *c = NULL;
    int *idx = NULL, n = 0;
    if (dcl_cache_open(&c, cache) || dcl_cache_select(c, "train", &idx, &n)) {
        fprintf(stderr, "train_bench: %s\n", dcl_last_error());
        return 1;
    }
    int rc = 0;
    for (char *w = strtok(workers, ","); w; w = strtok(NULL, ",")) {
        dcl_loader_cfg lc;
        memset(&lc, 0, sizeof lc);
        lc.batch = batch;
        lc.size = size;
        lc.workers = dcl_loader_workers(strcmp(w, "auto") ? atoi(w) : 0, 0, 1);
        lc.prefetch = 2;
        lc.train = 1;
        lc.balance = 1;
        lc.two_views = 1;
        lc.seed = 1;
        for (int k = 0; k < 3; k++) { lc.mean[k] = 0.5f; lc.std[k] = 0.25f; }
        lc.views = dcl_views_paper();
        lc.shard_count = 1;
        dcl_loader *l = NULL;
        if (dcl_loader_create(&l, c, idx, n, &lc)) { fprintf(stderr, "train_bench: %s\n", dcl_last_error()); rc = 1; break; }
        dcl_batch *b = NULL;
        double t0 = 0;
        int ok = 1;
        for (int i = 0; i < nb + 3 && ok; i++) {
            if (i == 3) t0 = dcl_now();   /* after the pipeline has filled */
            ok = dcl_loader_next(l, &b) == DCL_OK && b;
        }
        if (ok) printf("loader %d bs%d workers=%s (%d) img_s=%.1f\n", size, batch, w, lc.workers, nb * (double)batch / (dcl_now() - t0));
        else { fprintf(stderr, "train_bench: loader: %s\n", dcl_last_error()); rc = 1; }
        fflush(stdout);
        dcl_loader_free(l);
    }
    free(idx);
    dcl_cache_free(c);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "loader")) {
        const char *cache = argc > 6 ? argv[6] : "/tmp/dcl_train_bench_cache";
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/index.jsonl", cache);
        if (access(probe, F_OK) != 0 && make_synth_cache(cache, 64, 8, atoi(argv[2]), 7)) {
            fprintf(stderr, "train_bench: cache: %s\n", dcl_last_error());
            return 1;
        }
        return loader_only(cache, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5]);
    }
    if (argc < 7) {
        fprintf(stderr, "usage: %s DEVICE ARCH SIZE BATCH STEPS WORKERS[,WORKERS...] [CACHE_DIR]\n", argv[0]);
        return 2;
    }
    const char *dev = argv[1], *arch = argv[2];
    int size = atoi(argv[3]), batch = atoi(argv[4]), steps = atoi(argv[5]);
    const char *cache = argc > 7 ? argv[7] : "/tmp/dcl_train_bench_cache";
    if (size < 32 || batch < 2 || steps < 10) { fprintf(stderr, "train_bench: size >= 32, batch >= 2, steps >= 10\n"); return 2; }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/index.jsonl", cache);
    if (access(probe, F_OK) != 0) {
        double t0 = dcl_now();
        if (make_synth_cache(cache, 64, 8, size, 7)) { fprintf(stderr, "train_bench: cache: %s\n", dcl_last_error()); return 1; }
        fprintf(stderr, "train_bench: synthetic cache at %dx%d written to %s in %.1f s\n", size, size, cache, dcl_now() - t0);
    }
    char wl[256];
    snprintf(wl, sizeof wl, "%s", argv[6]);
    int rc = 0;
    for (char *w = strtok(wl, ","); w; w = strtok(NULL, ",")) {
        char out[] = "/tmp/dcl_train_bench_XXXXXX";
        if (!mkdtemp(out)) { perror("mkdtemp"); return 1; }
        char cfg[2048];
        snprintf(cfg, sizeof cfg,
                 "model: {arch: %s, size: %d}\n"
                 "data: {cache: %s, workers: %s, max_val_images: 64}\n"
                 "train: {epochs: 1, steps_per_epoch: %d, batch: %d, device: %s, log_every: 1, checkpoint_every: 0, out: %s/run}\n",
                 arch, size, cache, w, steps, batch, dev, out);
        dcl_config *c = NULL;
        dcl_train_cfg t;
        dcl_train_result res;
        dcl_status s = dcl_config_parse(&c, cfg, strlen(cfg), "train_bench");
        if (!s) s = dcl_train_cfg_from_config(&t, c);
        dcl_config_free(c);
        if (!s) s = dcl_train(&t, 0, NULL, &res);
        if (s) { fprintf(stderr, "train_bench: %s\n", dcl_last_error()); rc = 1; continue; }
        char run[4200];
        snprintf(run, sizeof run, "%s/run", out);
        static row r[100000];
        int n = read_rows(run, r, 100000);
        const int a = 5;
        if (n < a + 5) { fprintf(stderr, "train_bench: %d logged steps\n", n); rc = 1; continue; }
        /* the log's rates and waits are cumulative over the epoch */
        const row *x = &r[a - 1], *y = &r[n - 1];
        double ea = x->step * (double)batch / x->img_s, eb = y->step * (double)batch / y->img_s;
        double rate = (y->step - x->step) * (double)batch / (eb - ea);
        double wait = (y->wait * eb - x->wait * ea) / (eb - ea), busy = (y->busy * eb - x->busy * ea) / (eb - ea);
        printf("train_dcl %s %d bs%d device=%s workers=%s img_s=%.1f data_wait=%.3f step_time=%.3f steps=%d\n", arch, size,
               batch, dev, w, rate, wait, busy, y->step - x->step);
        fflush(stdout);
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", out);
        if (system(cmd) != 0) fprintf(stderr, "train_bench: could not remove %s\n", out);
    }
    return rc;
}
