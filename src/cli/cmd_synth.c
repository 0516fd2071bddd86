/* dcl synth: write a miniature FaceForensics++-layout data set made from face
 * photographs that Debian packages ship (see docs/SYNTH.md). */
#include "cli/cli.h"
#include "dcl/synth.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl synth --out DIR [--seed S] [--identities N] [--videos-per-identity N]\n"
            "                 [--frames N] [--size WxH] [--fps F] [--qualities c23,c40]\n"
            "                 [--methods LIST] [--mtcnn FILE] [--threads N]\n"
            "                 [--skimage-dir DIR] [--matplotlib-dir DIR] [--quiet]\n"
            "Writes a small FaceForensics++-layout data set (real videos, fakes of five\n"
            "manipulation families, their mask videos and identity-disjoint splits) made from\n"
            "the face photographs of the Debian packages python3-skimage and\n"
            "python-matplotlib-data. Open it with the ffpp adapter (e.g. dcl train configs).\n"
            "  --seed S                 seed of everything (1); same seed, same files\n"
            "  --identities N           people (12; 2..1000)\n"
            "  --videos-per-identity N  videos of each person (1)\n"
            "  --frames N               frames per video (32)\n"
            "  --size WxH               frame size, even numbers (256x256)\n"
            "  --fps F                  frame rate (25)\n"
            "  --qualities LIST         raw (lossless), c23 (CRF 23), c40 (CRF 40) (c23,c40)\n"
            "  --methods LIST           Deepfakes/DF, Face2Face/F2F, FaceSwap/FS, NeuralTextures/NT,\n"
            "                           SelfBlended/SBI or all (all)\n"
            "  --mtcnn FILE             face detector weights (models/mtcnn.safetensors)\n"
            "  --threads N              threads of the face detector (1)\n"
            "  --skimage-dir DIR        where astronaut.png, camera.png, lfw_subset.npy are\n"
            "  --matplotlib-dir DIR     where grace_hopper.jpg is\n"
            "Files appear complete or not at all; running the same command again after an\n"
            "interruption (Ctrl-C stops after the current video) writes only what is missing.\n"
            "Exit status: 0 done; 130 interrupted (run again to finish); 1 error; 2 bad usage.\n");
}

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) { (void)sig; g_stop = 1; }

typedef struct { int quiet; } prog_ctx;

static int progress(void *user, int done, int total, const dcl_synth_video *v) {
    prog_ctx *c = user;
    if (!c->quiet)
        fprintf(stderr, "[%d/%d] video %s (%s, %s)\n", done, total, v->id, v->face, dcl_split_name(v->split));
    return g_stop ? 1 : 0;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "dcl synth: %s %s: expected an integer in %ld..%ld\n", opt, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_synth(int argc, char **argv) {
    dcl_synth_opts o;
    dcl_synth_opts_default(&o);
    const char *out = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        if (a[0] != '-') { fprintf(stderr, "dcl synth: unexpected argument '%s'\n", a); usage(stderr); return DCL_EXIT_USAGE; }
        if (!v) { fprintf(stderr, "dcl synth: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long sd = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') { fprintf(stderr, "dcl synth: --seed %s: expected a non-negative integer\n", v); return DCL_EXIT_USAGE; }
            o.seed = sd;
        } else if (!strcmp(a, "--identities")) { if (parse_int(a, v, 2, 1000, &o.identities)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--videos-per-identity")) { if (parse_int(a, v, 1, 1000, &o.videos_per_identity)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--frames")) { if (parse_int(a, v, 2, 1000, &o.frames)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 1, 256, &o.threads)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--size")) {
            int w, h, n = 0;
            if (sscanf(v, "%dx%d%n", &w, &h, &n) != 2 || v[n]) { fprintf(stderr, "dcl synth: --size %s: expected WxH, e.g. 256x256\n", v); return DCL_EXIT_USAGE; }
            o.width = w;
            o.height = h;
        } else if (!strcmp(a, "--fps")) {
            char *end;
            double f = strtod(v, &end);
            if (end == v || *end || !(f > 0) || f > 240) { fprintf(stderr, "dcl synth: --fps %s: expected a number in (0, 240]\n", v); return DCL_EXIT_USAGE; }
            o.fps = f;
        } else if (!strcmp(a, "--qualities")) {
            if (dcl_synth_parse_qualities(&o.qualities, v)) return cli_fail("synth", DCL_ERR_ARG);
        } else if (!strcmp(a, "--methods")) {
            if (dcl_synth_parse_methods(&o.methods, v)) return cli_fail("synth", DCL_ERR_ARG);
        } else if (!strcmp(a, "--mtcnn")) o.mtcnn_weights = v;
        else if (!strcmp(a, "--skimage-dir")) o.skimage_dir = v;
        else if (!strcmp(a, "--matplotlib-dir")) o.matplotlib_dir = v;
        else { fprintf(stderr, "dcl synth: unknown option %s\n", a); usage(stderr); return DCL_EXIT_USAGE; }
    }
    if (!out) { fprintf(stderr, "dcl synth: --out DIR is required\n"); usage(stderr); return DCL_EXIT_USAGE; }

    dcl_synth *s = NULL;
    dcl_status st = dcl_synth_open(&s, &o);
    if (st) return cli_fail("synth", st);
    if (!quiet) fprintf(stderr, "faces from: %s\n", dcl_synth_sources(s));
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    prog_ctx pc = {quiet};
    dcl_synth_summary sum;
    st = dcl_synth_write(s, out, &sum, progress, &pc);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st) {
        dcl_synth_close(s);
        int rc = cli_fail("synth", st);
        return st == DCL_ERR_INTERRUPTED ? 130 : rc;
    }
    printf("%s: %d identities, %d real videos (train %d, val %d, test %d) of %d frames at %dx%d\n", out, o.identities,
           sum.videos, sum.by_split[DCL_SPLIT_TRAIN], sum.by_split[DCL_SPLIT_VAL], sum.by_split[DCL_SPLIT_TEST], o.frames,
           o.width, o.height);
    printf("  methods:");
    for (int m = 0; m < DCL_SYNTH_NMETHODS; m++)
        if (o.methods & (1u << m)) printf(" %s", dcl_synth_method_name(m));
    printf(" (%d fakes per quality, %d mask videos)\n", sum.fakes, sum.fakes);
    printf("  qualities:%s%s%s\n", o.qualities & DCL_SYNTH_Q_RAW ? " raw" : "", o.qualities & DCL_SYNTH_Q_C23 ? " c23" : "",
           o.qualities & DCL_SYNTH_Q_C40 ? " c40" : "");
    printf("  faces: %s\n", dcl_synth_sources(s));
    printf("  files: %d written (%.1f MB), %d already complete, %.1f s\n", sum.files_written, sum.bytes_written / 1e6,
           sum.files_kept, sum.seconds);
    dcl_synth_close(s);
    return 0;
}
