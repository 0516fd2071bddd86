/* dcl extract --dataset NAME --root DIR --out CACHE [options]: videos to a face cache. */
#include "cli/cli.h"
#include "dcl/extract.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl extract --dataset NAME --root DIR --out CACHE [options]\n"
            "Samples frames of every video (or frame sequence, or image) of a dataset, detects faces\n"
            "with MTCNN and saves square face crops, with the aligned real crop and the mask crop of\n"
            "fakes where the dataset has them, into a face cache for dcl train / dcl eval.\n"
            "Running the same command again resumes; CACHE/report.json lists everything skipped.\n"
            "\n"
            "  --dataset NAME    ffpp | dfd | celebdf | dfdc | dfdcp | wild | generic\n"
            "  --root DIR        the dataset as published (see docs/EXTRACT.md)\n"
            "  --out CACHE       cache directory (created)\n"
            "  --quality Q       ffpp/dfd: raw | c23 | c40 | all (default c23)\n"
            "  --methods A,B     ffpp: subset of Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter[,DFD]\n"
            "  --splits DIR      ffpp: folder with train/val/test.json (default ROOT/splits)\n"
            "  --csv FILE        generic: CSV list (path,label[,split][,video])\n"
            "  --frames N        frames sampled per video (32; the paper uses 50)\n"
            "  --sample MODE     even | random (even)\n"
            "  --seed S          seed of random sampling (0)\n"
            "  --size N          crop side in pixels (299)\n"
            "  --scale F         crop window / face box side (1.3)\n"
            "  --all-faces       crop every face, not only the largest\n"
            "  --min-face N      smallest face searched for, pixels (40)\n"
            "  --workers N       worker threads, each with its own detector (2)\n"
            "  --threads N       compute threads per worker (available threads / workers)\n"
            "  --device D        cpu | ref | cuda[:N], optionally ,bf16 (cpu)\n"
            "  --weights FILE    MTCNN weights (models/mtcnn.safetensors)\n"
            "  --limit N         only the first N entries of the dataset\n"
            "  --retry-skipped   process again the entries an earlier run skipped\n"
            "  --progress        progress line even when stderr is not a terminal; --quiet: none\n"
            "\n"
            "Exit status: 0 everything extracted; 3 some entries skipped or incomplete (see\n"
            "CACHE/report.json); 130 interrupted (run again to resume); 1 error; 2 bad usage.\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "dcl extract: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cmd_extract(int argc, char **argv) {
    dcl_extract_opts o;
    dcl_extract_opts_default(&o);
    o.handle_signals = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--all-faces")) { o.all_faces = 1; continue; }
        if (!strcmp(a, "--progress")) { o.progress = 1; continue; }
        if (!strcmp(a, "--retry-skipped")) { o.retry_skipped = 1; continue; }
        if (!strcmp(a, "--quiet")) { o.progress = 0; continue; }
        if (strncmp(a, "--", 2)) { fprintf(stderr, "dcl extract: unexpected argument '%s'\n", a); usage(stderr); return DCL_EXIT_USAGE; }
        if (i + 1 >= argc) { fprintf(stderr, "dcl extract: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--dataset")) o.dataset = v;
        else if (!strcmp(a, "--root")) o.root = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--quality")) o.quality = v;
        else if (!strcmp(a, "--methods")) o.methods = v;
        else if (!strcmp(a, "--splits")) o.splits_dir = v;
        else if (!strcmp(a, "--csv")) o.csv = v;
        else if (!strcmp(a, "--frames")) bad = parse_int(a, v, 1, 100000, &o.frames);
        else if (!strcmp(a, "--size")) bad = parse_int(a, v, 8, 4096, &o.size);
        else if (!strcmp(a, "--min-face")) bad = parse_int(a, v, 12, 4096, &o.min_face);
        else if (!strcmp(a, "--workers")) bad = parse_int(a, v, 1, 256, &o.workers);
        else if (!strcmp(a, "--threads")) bad = parse_int(a, v, 1, 1024, &o.threads);
        else if (!strcmp(a, "--limit")) bad = parse_int(a, v, 1, INT_MAX, &o.limit);
        else if (!strcmp(a, "--device")) o.device = v;
        else if (!strcmp(a, "--weights")) o.weights = v;
        else if (!strcmp(a, "--sample")) {
            if (!strcmp(v, "even")) o.sample = DCL_SAMPLE_EVEN;
            else if (!strcmp(v, "random")) o.sample = DCL_SAMPLE_RANDOM;
            else { fprintf(stderr, "dcl extract: --sample expects even or random, got '%s'\n", v); bad = 1; }
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long x = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') { fprintf(stderr, "dcl extract: --seed expects a non-negative integer, got '%s'\n", v); bad = 1; }
            else o.seed = (uint64_t)x;
        } else if (!strcmp(a, "--scale")) {
            char *end;
            double x = strtod(v, &end);
            if (end == v || *end || !(x >= 0.5 && x <= 10)) { fprintf(stderr, "dcl extract: --scale expects a number in [0.5, 10], got '%s'\n", v); bad = 1; }
            else o.scale = (float)x;
        } else {
            fprintf(stderr, "dcl extract: unknown option %s\n", a);
            usage(stderr);
            return DCL_EXIT_USAGE;
        }
        if (bad) return DCL_EXIT_USAGE;
    }
    if (!o.dataset || !o.root || !o.out) {
        fprintf(stderr, "dcl extract: --dataset, --root and --out are required\n");
        usage(stderr);
        return DCL_EXIT_USAGE;
    }
    dcl_extract_report r;
    dcl_status s = dcl_extract(&o, &r);
    if (s) {
        fprintf(stderr, "dcl extract: %s\n", dcl_last_error());
        return s == DCL_ERR_ARG ? DCL_EXIT_USAGE : DCL_EXIT_FAIL;
    }
    /* summary */
    fprintf(stderr, "extract: %d entries: %d extracted before, %d processed now, %d skipped now",
            r.entries, r.already_done, r.processed, r.skipped);
    int any = 0;
    for (int k = 0; k < DCL_SKIP_COUNT; k++)
        if (r.skipped_by[k]) {
            fprintf(stderr, "%s%s %d", any ? ", " : " (", dcl_skip_reason_name((dcl_skip_reason)k), r.skipped_by[k]);
            any = 1;
        }
    fprintf(stderr, "%s; %" PRId64 " faces written (%" PRId64 " pairs, %" PRId64 " masks) from %" PRId64
                    " frames, %" PRId64 " frames without a face, %.1f s\n",
            any ? ")" : "", r.faces, r.pairs, r.masks, r.frames, r.frames_no_face, r.seconds);
    fprintf(stderr, "extract: cache %s: %d entries ok (%d faces), %d skipped, %d with problems this run, %d dataset issues; "
                    "details in %s/report.json\n",
            o.out, r.total_ok, r.total_faces, r.total_skipped, r.with_problems, r.adapter_issues, o.out);
    printf("{\"out\": \"%s\", \"entries\": %d, \"ok\": %d, \"skipped\": %d, \"faces\": %d, \"processed_now\": %d, "
           "\"skipped_now\": %d, \"report_lines\": %d, \"interrupted\": %s}\n",
           o.out, r.entries, r.total_ok, r.total_skipped, r.total_faces, r.processed, r.skipped, r.report_lines,
           r.interrupted ? "true" : "false");
    if (r.interrupted) {
        fprintf(stderr, "extract: interrupted; run the same command again to continue\n");
        return 130;
    }
    return r.report_lines > 0 ? DCL_EXIT_PARTIAL : DCL_EXIT_OK;
}
