/* dcl train --config FILE [--set key=value ...] [--resume] */
#include "cli/cli.h"
#include "dcl/dist.h"
#include "dcl/trainer.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: dcl train --config FILE [--set key=value ...] [--resume]\n"
               "Trains a DCL detector on a face cache (dcl extract).  Every hyper-parameter is a\n"
               "config key (see configs/dcl_paper.yaml); --set overrides one, e.g.\n"
               "  --set train.epochs=2 --set dcl.intra=false --set train.out=runs/ablation\n"
               "Writes OUT/config.yaml, OUT/log.jsonl, OUT/last.safetensors (full state, every\n"
               "train.checkpoint_every steps and at each epoch end) and OUT/best.safetensors (the\n"
               "model with the best validation AUC).  Ctrl-C saves the state; --resume continues it.\n"
               "Data-parallel: mpirun -np N dcl train ... (docs/DISTRIBUTED.md).\n");
}

int cmd_train(int argc, char **argv) {
    const char *cfgpath = NULL;
    int resume = 0;
    dcl_config *cfg = NULL;
    dcl_status s = dcl_config_new(&cfg);
    if (s) return cli_fail("train", s);
    /* --set may come before --config: collect them */
    const char *sets[256];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); dcl_config_free(cfg); return 0; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "dcl train: %s needs a value\n", a); dcl_config_free(cfg); return DCL_EXIT_USAGE; }
        if (!strcmp(a, "--config")) cfgpath = argv[++i];
        else if (!strcmp(a, "--set")) { if (nsets < 256) sets[nsets++] = argv[++i]; else ++i; }
        else { fprintf(stderr, "dcl train: unknown option %s\n", a); usage(stderr); dcl_config_free(cfg); return DCL_EXIT_USAGE; }
    }
    if (!cfgpath) { usage(stderr); dcl_config_free(cfg); return DCL_EXIT_USAGE; }
    dcl_config_free(cfg);
    cfg = NULL;
    s = dcl_config_load(&cfg, cfgpath);
    for (int i = 0; i < nsets && !s; i++) s = dcl_config_set_arg(cfg, sets[i]);
    dcl_train_cfg t;
    if (!s) s = dcl_train_cfg_from_config(&t, cfg);
    dcl_buf dump = {0};
    if (!s) s = dcl_config_dump(&dump, cfg);
    dcl_train_result r;
    if (!s) s = dcl_train(&t, resume, dump.data, &r);
    dcl_buf_free(&dump);
    dcl_config_free(cfg);
    if (s) return cli_fail("train", s);
    if (dcl_dist_process_rank() == 0)
        printf("{\"out\": \"%s\", \"steps\": %lld, \"epochs\": %d, \"best_val_auc\": %.6f, \"best_epoch\": %d, \"interrupted\": %s}\n",
           t.out, (long long)r.steps, r.epochs_done, r.best_auc, r.best_epoch + 1, r.interrupted ? "true" : "false");
    return r.interrupted ? 130 : 0;
}
