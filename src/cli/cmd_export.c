/* dcl export: a model file for dcl detect / dcl serve from a training checkpoint. */
#include "cli/cli.h"
#include "dcl/deploy.h"
#include "dcl/trainer.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl export --checkpoint RUN/best.safetensors|last.safetensors --out model.safetensors\n"
            "                  [--threshold 0.5] [--face-min 40] [--face-thresholds 0.6,0.7,0.7]\n"
            "                  [--face-factor 0.709] [--scale 1.3] [--mtcnn models/mtcnn.safetensors]\n"
            "                  [--no-embed-face]\n"
            "       dcl export --init-random ARCH [--width W] [--depth D] [--size N] [--head bce|softmax]\n"
            "                  [--seed S] --out model.safetensors [settings as above]\n"
            "Writes one safetensors file (atomically) holding the detector's weights, the MTCNN face\n"
            "detector's weights (prefix \"mtcnn.\"; --no-embed-face leaves them out, and detect/serve\n"
            "then read --mtcnn or models/mtcnn.safetensors) and the settings detect and serve need:\n"
            "architecture, width/depth, input size, normalisation, head, decision threshold (P(fake) >=\n"
            "threshold is \"fake\"), smallest face in pixels, MTCNN thresholds and the crop scale.\n"
            "The checkpoint may also be an exported model file (to change its settings).\n"
            "--init-random writes a model with random weights (timm's initialisation) instead, for\n"
            "benchmarks and smoke tests: its scores mean nothing.\n");
}

static int num_arg(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "dcl export: %s %s: expected a number in [%g, %g]\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* A detector with random weights saved as a model-only file (as the trainer's best.safetensors). */
static dcl_status random_checkpoint(const char *path, const char *arch, double width, double depth, int size, int softmax,
                                    uint64_t seed) {
    dcl_effnet_cfg ec;
    DCL_TRY(dcl_effnet_config(&ec, arch));
    if (width > 0 || depth > 0)
        dcl_effnet_set_scale(&ec, width > 0 ? (float)width : ec.width_mult, depth > 0 ? (float)depth : ec.depth_mult);
    dcl_method_cfg mc = dcl_method_defaults();
    mc.softmax_head = softmax;
    dcl_detector *d = NULL;
    DCL_TRY(dcl_detector_create(&d, dcl_backend_ref(), &ec, &mc, 0));
    dcl_rng rng;
    dcl_rng_seed(&rng, seed);
    dcl_status s = dcl_net_init_params(d->q->net, &rng);
    char sz[16];
    snprintf(sz, sizeof sz, "%d", size);
    const char *kv[] = {"size", sz};
    if (!s) s = dcl_detector_save_model(path, d, 1, kv);
    dcl_detector_free(d);
    return s;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *init_arch = NULL;
    double width = 0, depth = 0, size = 299, seed = 1;
    int softmax = 0;
    dcl_export_opts o;
    dcl_export_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-embed-face")) { o.embed_face = 0; continue; }
        if (a[0] == '-' && a[1] && !v) { fprintf(stderr, "dcl export: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        if (!strcmp(a, "--checkpoint")) ckpt = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--mtcnn")) o.mtcnn_path = argv[++i];
        else if (!strcmp(a, "--init-random")) init_arch = argv[++i];
        else if (!strcmp(a, "--width")) { if (num_arg(a, argv[++i], 0.01, 4, &width)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--depth")) { if (num_arg(a, argv[++i], 0.01, 6, &depth)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--size")) {
            if (num_arg(a, argv[++i], 32, 1024, &size) || size != (int)size) { fprintf(stderr, "dcl export: --size: an integer\n"); return DCL_EXIT_USAGE; }
        } else if (!strcmp(a, "--seed")) { if (num_arg(a, argv[++i], 0, 1e15, &seed)) return DCL_EXIT_USAGE; }
        else if (!strcmp(a, "--head")) {
            const char *h = argv[++i];
            if (strcmp(h, "bce") && strcmp(h, "softmax")) { fprintf(stderr, "dcl export: --head %s: expected bce or softmax\n", h); return DCL_EXIT_USAGE; }
            softmax = !strcmp(h, "softmax");
        }
        else if (!strcmp(a, "--threshold")) {
            if (num_arg(a, argv[++i], 0, 1, &x)) return DCL_EXIT_USAGE;
            o.threshold = (float)x;
        } else if (!strcmp(a, "--face-min")) {
            if (num_arg(a, argv[++i], 4, 100000, &x)) return DCL_EXIT_USAGE;
            o.face_min_size = x;
        } else if (!strcmp(a, "--face-factor")) {
            if (num_arg(a, argv[++i], 0.1, 0.95, &x)) return DCL_EXIT_USAGE;
            o.face_factor = x;
        } else if (!strcmp(a, "--scale")) {
            if (num_arg(a, argv[++i], 0.01, 10, &x)) return DCL_EXIT_USAGE;
            o.crop_scale = (float)x;
        } else if (!strcmp(a, "--face-thresholds")) {
            float t[3];
            if (cli_parse_floats3(argv[++i], t) || !(t[0] >= 0 && t[0] <= 1 && t[1] >= 0 && t[1] <= 1 && t[2] >= 0 && t[2] <= 1)) {
                fprintf(stderr, "dcl export: --face-thresholds %s: expected three probabilities p,r,o\n", argv[i]);
                return DCL_EXIT_USAGE;
            }
            memcpy(o.face_thresholds, t, sizeof t);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dcl export: unknown option %s\n", a);
            usage(stderr);
            return DCL_EXIT_USAGE;
        } else {
            fprintf(stderr, "dcl export: unexpected argument %s\n", a);
            usage(stderr);
            return DCL_EXIT_USAGE;
        }
    }
    if ((!ckpt == !init_arch) || !out) {
        fprintf(stderr, "dcl export: --out and one of --checkpoint or --init-random are required\n");
        usage(stderr);
        return DCL_EXIT_USAGE;
    }
    char tmp[4096], src[128];
    dcl_status s = DCL_OK;
    if (init_arch) {
        snprintf(tmp, sizeof tmp, "%s.random-init.tmp", out);
        s = random_checkpoint(tmp, init_arch, width, depth, (int)size, softmax, (uint64_t)seed);
        if (s) { remove(tmp); return cli_fail("export", s); }
        ckpt = tmp;
        snprintf(src, sizeof src, "random init (%s, seed %.0f)", init_arch, seed);
        o.source = src;
    }
    dcl_deploy_info info;
    s = dcl_deploy_export(out, ckpt, &o, &info);
    if (init_arch) remove(tmp);
    if (s) return cli_fail("export", s);
    struct stat sb;
    double mb = stat(out, &sb) == 0 ? sb.st_size / 1e6 : 0;
    printf("wrote %s (%.1f MB): %s width %g depth %g, %s head, %dx%d input, %.2fM parameters\n", out, mb, info.arch,
           info.width, info.depth, info.softmax_head ? "softmax" : "bce", info.size, info.size, info.params / 1e6);
    printf("  threshold %g; faces: MTCNN %s, min face %g px, thresholds %g/%g/%g, crop scale %g\n", info.threshold,
           info.face_embedded ? "embedded" : "external (models/mtcnn.safetensors or --mtcnn)", info.face_min_size,
           info.face_thresholds[0], info.face_thresholds[1], info.face_thresholds[2], info.crop_scale);
    return 0;
}
