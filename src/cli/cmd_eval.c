/* dcl eval: score a face cache with a model file, or run one of the paper's
 * evaluation protocols (configs/protocols/, docs/PROTOCOLS.md). */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "backend/backend.h"
#include "dcl/protocol.h"
#include "dcl/trainer.h"
#include "dcl/loader.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl eval --checkpoint FILE --data CACHE [--split test] [--out DIR]\n"
            "                [--batch 32] [--workers auto|N] [--device cpu] [--threads N]\n"
            "                [--video-agg mean|max-mean] [--threshold 0.5] [--size N]\n"
            "       dcl eval --protocol FILE [--set key=value ...] [--runs NAME,...]\n"
            "                [--no-train] [--dry-run] [--epochs N] [--steps N] [--size N]\n"
            "                [--arch A] [--width W] [--depth D] [--train-set key=value ...]\n"
            "                [--batch 32] [--workers auto|N] [--device cpu] [--threads N]\n"
            "\n"
            "The first form scores every image of a split of a face cache (dcl extract) with a\n"
            "model file (best.safetensors) or a training checkpoint (last.safetensors) and writes\n"
            "DIR/scores.csv (crop,label,score,dataset,method,video,frame,face) and DIR/metrics.json\n"
            "(frame and video level AUC, EER, AP, ACC at the threshold, ...; per fake method\n"
            "against all reals of its dataset).  DIR defaults to the model's folder/eval-SPLIT.\n"
            "--split all scores every entry.  Unreadable crops are reported and left out.\n"
            "\n"
            "The second form runs an evaluation protocol (configs/protocols/*.yaml): trains the\n"
            "runs it needs (a finished run is skipped, an interrupted one resumed), scores the\n"
            "test sets and writes OUT/table.md, table.csv and table.json beside the paper's\n"
            "numbers.  --set edits the protocol file (e.g. --set caches.ffpp_c23=/data/cache/ffpp_c23\n"
            "--set out=runs/t1); --epochs/--steps/--size/--arch/--width/--depth and --train-set\n"
            "override the training config of every run (reduced settings); --runs limits training\n"
            "and scoring to some runs; --no-train only scores and tabulates what exists; --dry-run\n"
            "prints the plan.  See docs/PROTOCOLS.md.\n");
}


static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static void print_metrics(const char *what, const dcl_scores *s, const dcl_score_filter *f, dcl_eval_level lv,
                          dcl_video_agg agg, double thr) {
    dcl_metrics m;
    int64_t used = 0;
    if (dcl_scores_metrics(&m, &used, s, f, lv, agg, thr)) {
        printf("  %-22s -   (%s)\n", what, dcl_last_error());
        dcl_clear_error();
        return;
    }
    printf("  %-22s n %-7lld AUC %.4f  EER %.4f  AP %.4f  ACC@%.2g %.4f\n", what, (long long)m.n, m.auc, m.eer, m.ap,
           thr, m.acc);
}

static int eval_checkpoint(const char *ckpt, const char *data, const char *split, const char *outdir, int batch,
                           int workers, const char *device, int threads, dcl_video_agg agg, double thr, int size) {
    dcl_cache *c = NULL;
    dcl_status s = dcl_cache_open(&c, data);
    if (s) return cli_fail("eval", s);
    int *idx = NULL, n = 0;
    s = dcl_cache_select(c, split, &idx, &n);
    if (!s && n == 0) {
        /* name the splits there are */
        char have[256] = "";
        size_t u = 0;
        for (int i = 0; i < c->n && u < sizeof have - 40; i++) {
            const char *sp = c->e[i].split ? c->e[i].split : "";
            char key[64];
            snprintf(key, sizeof key, "'%s'", sp);
            if (!strstr(have, key)) u += snprintf(have + u, sizeof have - u, "%s%s", u ? ", " : "", key);
        }
        s = dcl_fail(DCL_ERR_ARG, "cache %s has no images in split '%s' (splits present: %s; --split all scores every entry)",
                     data, split, u ? have : "none");
    }
    dcl_backend *be = NULL;
    dcl_detector *d = NULL;
    dcl_model_info info;
    if (!s) {
        be = dcl_backend_create(device, threads);
        if (!be) s = dcl_fail_ctx(DCL_ERR_UNSUPPORTED, "--device %s", device);
    }
    if (!s) s = dcl_detector_open_model(&d, be, ckpt, &info);
    if (!s && size > 0) info.size = size;
    if (!s && info.size <= 0)
        s = dcl_fail(DCL_ERR_ARG, "%s records no input size: pass --size N (the size it was trained at)", ckpt);
    char desc[256];
    if (!s) fprintf(stderr, "dcl eval: %s: %s\n", ckpt, dcl_model_info_str(&info, desc, sizeof desc));
    dcl_scores sc = {0};
    int bad = 0;
    double t0 = dcl_now();
    if (!s) s = dcl_scores_from_cache(&sc, &bad, d, c, idx, n, batch, info.size, dcl_loader_workers(workers, be->is_host, 1),
                                      info.mean, info.std, 1);
    double secs = dcl_now() - t0;
    char defout[4200], path[4400];
    if (!outdir) {
        const char *sl = strrchr(ckpt, '/');
        if (sl) snprintf(defout, sizeof defout, "%.*s/eval-%s", (int)(sl - ckpt), ckpt, split);
        else snprintf(defout, sizeof defout, "eval-%s", split);
        outdir = defout;
    }
    if (!s && dcl_mkdir_p(outdir)) s = dcl_fail(DCL_ERR_IO, "cannot create %s: %s", outdir, strerror(errno));
    if (!s) {
        snprintf(path, sizeof path, "%s/scores.csv", outdir);
        s = dcl_scores_write_csv(&sc, path, 0);
    }
    if (!s && bad) {
        dcl_buf b = {0};
        for (int64_t i = 0; i < sc.n; i++)
            if (isnan(sc.r[i].score)) dcl_buf_printf(&b, "%s\n", sc.r[i].crop);
        snprintf(path, sizeof path, "%s/unreadable.txt", outdir);
        s = dcl_write_file_atomic(path, b.data ? b.data : "", b.len);
        dcl_buf_free(&b);
    }
    dcl_buf js = {0}, extra = {0};
    if (!s) {
        dcl_buf_puts(&extra, "\"checkpoint\": ");
        dcl_buf_json_str(&extra, ckpt);
        dcl_buf_puts(&extra, ", \"model\": ");
        dcl_buf_json_str(&extra, dcl_model_info_str(&info, desc, sizeof desc));
        dcl_buf_puts(&extra, ", \"cache\": ");
        dcl_buf_json_str(&extra, data);
        dcl_buf_puts(&extra, ", \"split\": ");
        dcl_buf_json_str(&extra, split);
        dcl_buf_printf(&extra, ", \"size\": %d", info.size);
        s = dcl_eval_metrics_json(&js, &sc, agg, thr, extra.data);
    }
    if (!s) {
        snprintf(path, sizeof path, "%s/metrics.json", outdir);
        s = dcl_write_file_atomic(path, js.data, js.len);
    }
    if (!s) {
        printf("dcl eval: %lld images of split '%s' of %s in %.1f s (%.1f img/s)\n", (long long)(sc.n - bad), split, data,
               secs, secs > 0 ? sc.n / secs : 0.0);
        if (bad) printf("  %d unreadable crops left out (listed in %s/unreadable.txt)\n", bad, outdir);
        print_metrics("all, frames", &sc, NULL, DCL_LEVEL_FRAME, agg, thr);
        char what[200];
        snprintf(what, sizeof what, "all, videos (%s)", dcl_video_agg_name(agg));
        print_metrics(what, &sc, NULL, DCL_LEVEL_VIDEO, agg, thr);
        /* per fake method against the reals of its dataset */
        for (int64_t i = 0; i < sc.n; i++) {
            const dcl_score_row *r = &sc.r[i];
            if (!r->label) continue;
            int seen = 0;
            for (int64_t j = 0; j < i && !seen; j++)
                seen = sc.r[j].label && !strcmp(sc.r[j].method, r->method) && !strcmp(sc.r[j].dataset, r->dataset);
            if (seen) continue;
            const char *m1[1] = {r->method};
            dcl_score_filter f = {r->dataset, m1, 1};
            snprintf(what, sizeof what, "%s, frames", r->method);
            print_metrics(what, &sc, &f, DCL_LEVEL_FRAME, agg, thr);
        }
        printf("wrote %s/scores.csv and %s/metrics.json\n", outdir, outdir);
    }
    dcl_buf_free(&js);
    dcl_buf_free(&extra);
    dcl_scores_free(&sc);
    dcl_detector_free(d);
    if (be) dcl_backend_destroy(be);
    free(idx);
    dcl_cache_free(c);
    return s ? cli_fail("eval", s) : 0;
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "test", *outdir = NULL, *device = "cpu", *protocol = NULL;
    const char *runs = NULL, *aggs = "mean";
    int batch = 32, workers = 0, threads = 0, size = 0, no_train = 0, dry_run = 0, device_given = 0;
    double thr = 0.5;
    const char *sets[256], *tsets[300];
    int nsets = 0, ntsets = 0;
    char owned[8][160];
    int nowned = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-train")) { no_train = 1; continue; }
        if (!strcmp(a, "--dry-run")) { dry_run = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "dcl eval: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--checkpoint") || !strcmp(a, "--model")) ckpt = v;
        else if (!strcmp(a, "--data") || !strcmp(a, "--cache")) data = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--out")) outdir = v;
        else if (!strcmp(a, "--batch")) bad = parse_int(v, 1, 4096, &batch);
        else if (!strcmp(a, "--workers")) bad = cli_parse_workers(v, &workers);
        else if (!strcmp(a, "--threads")) bad = parse_int(v, 0, 4096, &threads);
        else if (!strcmp(a, "--device")) { device = v; device_given = 1; }
        else if (!strcmp(a, "--video-agg")) aggs = v;
        else if (!strcmp(a, "--threshold")) {
            char *e;
            thr = strtod(v, &e);
            bad = !*v || *e || !isfinite(thr);
        } else if (!strcmp(a, "--protocol")) protocol = v;
        else if (!strcmp(a, "--set")) { if (nsets < 256) sets[nsets++] = v; else bad = 1; }
        else if (!strcmp(a, "--train-set")) { if (ntsets < 256) tsets[ntsets++] = v; else bad = 1; }
        else if (!strcmp(a, "--runs")) runs = v;
        else if (!strcmp(a, "--size") || !strcmp(a, "--epochs") || !strcmp(a, "--steps") || !strcmp(a, "--arch") ||
                 !strcmp(a, "--width") || !strcmp(a, "--depth")) {
            static const char *const map[][2] = {{"--size", "model.size"}, {"--epochs", "train.epochs"},
                                                 {"--steps", "train.steps_per_epoch"}, {"--arch", "model.arch"},
                                                 {"--width", "model.width"}, {"--depth", "model.depth"}};
            if (!strcmp(a, "--size")) bad = parse_int(v, 16, 4096, &size);
            for (size_t k = 0; k < sizeof map / sizeof map[0] && !bad; k++)
                if (!strcmp(a, map[k][0]) && nowned < 8) {
                    snprintf(owned[nowned], sizeof owned[nowned], "%s=%s", map[k][1], v);
                    tsets[ntsets++] = owned[nowned++];
                }
        } else {
            fprintf(stderr, "dcl eval: unknown option %s\n", a);
            usage(stderr);
            return DCL_EXIT_USAGE;
        }
        if (bad) { fprintf(stderr, "dcl eval: bad value '%s' for %s\n", v, a); return DCL_EXIT_USAGE; }
    }
    dcl_video_agg agg;
    if (dcl_video_agg_parse(aggs, &agg)) { fprintf(stderr, "dcl eval: --video-agg must be mean or max-mean, found '%s'\n", aggs); return DCL_EXIT_USAGE; }

    if (protocol) {
        if (ckpt || data) { fprintf(stderr, "dcl eval: --protocol runs its own models and caches; drop --checkpoint/--data\n"); return DCL_EXIT_USAGE; }
        dcl_protocol *p = NULL;
        dcl_status s = dcl_protocol_load(&p, protocol, sets, nsets);
        if (s) return cli_fail("eval", s);
        char devset[200], thrset[64];
        if (device_given) { snprintf(devset, sizeof devset, "train.device=%s", device); tsets[ntsets++] = devset; }
        if (threads > 0) { snprintf(thrset, sizeof thrset, "train.threads=%d", threads); tsets[ntsets++] = thrset; }
        dcl_protocol_opts o;
        dcl_protocol_opts_default(&o);
        o.device = device;
        o.threads = threads;
        o.batch = batch;
        o.workers = workers;
        o.runs = runs;
        o.no_train = no_train;
        o.dry_run = dry_run;
        o.train_sets = tsets;
        o.ntrain_sets = ntsets;
        s = dcl_protocol_execute(p, &o);
        dcl_protocol_free(p);
        if (s == DCL_ERR_INTERRUPTED) { fprintf(stderr, "dcl eval: %s\n", dcl_last_error()); return 130; }
        return s ? cli_fail("eval", s) : 0;
    }
    if (nsets || ntsets > (size ? 1 : 0) || runs || no_train || dry_run) {
        fprintf(stderr, "dcl eval: --set, --runs, --no-train, --dry-run and the training overrides need --protocol\n");
        return DCL_EXIT_USAGE;
    }
    if (!ckpt || !data) { usage(stderr); return DCL_EXIT_USAGE; }
    return eval_checkpoint(ckpt, data, split, outdir, batch, workers, device, threads, agg, thr, size);
}
