/* dcl report RUN_DIR [--data CACHE] [--split test] [--out report.html]
 *                    [--baseline OTHER_RUN_DIR] [--max-images N] ... */
#include "cli/cli.h"
#include "dcl/report.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl report RUN_DIR [--data CACHE] [--split test] [--out FILE.html]\n"
            "                  [--baseline OTHER_RUN_DIR] [--max-images N] [--gradcam N]\n"
            "                  [--theta-low T] [--theta-high T] [--tsne-iters N] [--seed S]\n"
            "                  [--batch B] [--workers auto|W] [--device cpu|ref|cuda[:N][,bf16]] [--threads T]\n"
            "Writes one self-contained HTML page (every image inline) about a training run:\n"
            "its model, training curves (log.jsonl), configuration, and the metrics.json, score\n"
            "tables (*.csv with label and score columns, with ROC curves) and table.md files found\n"
            "in RUN_DIR.  With --data it also scores up to N crops of the split (default 1000, half\n"
            "real, half fake) with RUN_DIR/best.safetensors and draws ROC curves, the paper's\n"
            "Figure 2 (self-similarity histograms), Figure 3 (hard samples above --theta-low 0.3\n"
            "and --theta-high 0.7 against the prototypes in last.safetensors; 'auto' takes the\n"
            "median and the 90th percentile of the similarities), Figure 4 (t-SNE)\n"
            "and Grad-CAM maps on --gradcam (4) crops per class.  --baseline adds a second model\n"
            "(e.g. trained with cross-entropy only) to the ROC, Figure 2 and Figure 4.\n"
            "The page goes to --out (default RUN_DIR/report.html), written atomically; its path\n"
            "is printed.  See docs/REPORT.md.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double *out) {
    if (!strcmp(s, "auto")) { *out = NAN; return 0; }
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || v != v) return -1;
    *out = v;
    return 0;
}

int cmd_report(int argc, char **argv) {
    dcl_report_opts o;
    dcl_report_default_opts(&o);
    const char *run = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (a[0] != '-' || !a[1]) {
            if (run) { fprintf(stderr, "dcl report: more than one run directory ('%s' and '%s')\n", run, a); return DCL_EXIT_USAGE; }
            run = a;
            continue;
        }
        if (i + 1 >= argc) { fprintf(stderr, "dcl report: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        const char *v = argv[++i];
        int bad = 0;
        uint64_t seed;
        if (!strcmp(a, "--data")) o.data = v;
        else if (!strcmp(a, "--split")) o.split = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--baseline")) o.baseline = v;
        else if (!strcmp(a, "--device")) o.device = v;
        else if (!strcmp(a, "--max-images")) bad = parse_int(v, 2, 1000000, &o.max_images);
        else if (!strcmp(a, "--gradcam")) bad = parse_int(v, 0, 64, &o.gradcam_per_class);
        else if (!strcmp(a, "--tsne-iters")) bad = parse_int(v, 1, 100000, &o.tsne_iters);
        else if (!strcmp(a, "--batch")) bad = parse_int(v, 1, 4096, &o.batch);
        else if (!strcmp(a, "--workers")) bad = cli_parse_workers(v, &o.workers);
        else if (!strcmp(a, "--threads")) bad = parse_int(v, 0, 1024, &o.threads);
        else if (!strcmp(a, "--theta-low")) bad = parse_double(v, &o.theta_low) || o.theta_low < -1 || o.theta_low > 1;
        else if (!strcmp(a, "--theta-high")) bad = parse_double(v, &o.theta_high) || o.theta_high < -1 || o.theta_high > 1;
        else if (!strcmp(a, "--seed")) {
            char *e;
            errno = 0;
            seed = strtoull(v, &e, 10);
            bad = errno || e == v || *e;
            if (!bad) o.seed = seed;
        } else {
            fprintf(stderr, "dcl report: unknown option %s (dcl report --help)\n", a);
            return DCL_EXIT_USAGE;
        }
        if (bad) { fprintf(stderr, "dcl report: bad value '%s' for %s\n", v, a); return DCL_EXIT_USAGE; }
    }
    if (!run) {
        usage(stderr);
        return DCL_EXIT_USAGE;
    }
    o.run_dir = run;
    char path[4096];
    dcl_status s = dcl_report_write(&o, path, sizeof path);
    if (s) return cli_fail("report", s);
    printf("%s\n", path);
    return 0;
}
