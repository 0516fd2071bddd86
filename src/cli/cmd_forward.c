/* dcl forward: run an EfficientNet on one image and print its logits as JSON. */
#include "cli/cli.h"
#include "dcl/io.h"
#include "dcl/model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl forward --arch NAME --weights FILE [--mean a,b,c] [--std a,b,c] [--size N]\n"
            "                   [--device ref|cpu|cuda[:N][,bf16]] [--threads N] [--width W --depth D] IMAGE\n"
            "Runs the network in evaluation mode on IMAGE (PNG or JPEG) and prints {\"logits\": [...]}.\n"
            "The image is fed at its own size unless --size N resizes it to NxN (bilinear).\n"
            "NAME: efficientnet_b0..b7, tf_efficientnet_b0..b7 (timm); weights with timm or\n"
            "torchvision key names are accepted.  --width/--depth scale a custom narrow network.\n");
}

int cli_parse_floats3(const char *s, float out[3]) {
    char *end;
    for (int i = 0; i < 3; i++) {
        out[i] = strtof(s, &end);
        if (end == s) return -1;
        s = end;
        if (i < 2) { if (*s != ',') return -1; s++; }
    }
    return *s ? -1 : 0;
}

int cmd_forward(int argc, char **argv) {
    const char *arch = NULL, *weights = NULL, *image = NULL, *device = "cpu";
    float mean[3], std[3];
    int have_mean = 0, have_std = 0, size = 0, threads = 0;
    float width = 0, depth = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (a[0] == '-' && a[1] && !v) { fprintf(stderr, "dcl forward: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        if (!strcmp(a, "--arch")) arch = argv[++i];
        else if (!strcmp(a, "--weights")) weights = argv[++i];
        else if (!strcmp(a, "--device")) device = argv[++i];
        else if (!strcmp(a, "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--width") || !strcmp(a, "--depth")) {
            char *end;
            float v = strtof(argv[++i], &end);
            if (*end || !(v > 0 && v <= 8)) { fprintf(stderr, "dcl forward: %s %s: expected a number in (0, 8]\n", a, argv[i]); return DCL_EXIT_USAGE; }
            if (a[2] == 'w') width = v; else depth = v;
        }
        else if (!strcmp(a, "--size")) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 8 || n > 4096) { fprintf(stderr, "dcl forward: --size %s: expected an integer in 8..4096\n", argv[i]); return DCL_EXIT_USAGE; }
            size = (int)n;
        } else if (!strcmp(a, "--mean")) {
            if (cli_parse_floats3(argv[++i], mean)) { fprintf(stderr, "dcl forward: --mean %s: expected three numbers a,b,c\n", argv[i]); return DCL_EXIT_USAGE; }
            have_mean = 1;
        } else if (!strcmp(a, "--std")) {
            if (cli_parse_floats3(argv[++i], std) || std[0] == 0 || std[1] == 0 || std[2] == 0) { fprintf(stderr, "dcl forward: --std %s: expected three non-zero numbers a,b,c\n", argv[i]); return DCL_EXIT_USAGE; }
            have_std = 1;
        } else if (a[0] == '-' && a[1]) { fprintf(stderr, "dcl forward: unknown option %s\n", a); usage(stderr); return DCL_EXIT_USAGE; }
        else if (!image) image = a;
        else { fprintf(stderr, "dcl forward: only one IMAGE is accepted (got %s and %s)\n", image, a); return DCL_EXIT_USAGE; }
    }
    if (!arch || !weights || !image) { usage(stderr); return DCL_EXIT_USAGE; }
    if (threads > 0) dcl_set_num_threads(threads);

    dcl_effnet_cfg cfg;
    dcl_status s = dcl_effnet_config(&cfg, arch);
    if (s) return cli_fail("forward", s);
    if (width > 0 || depth > 0)
        dcl_effnet_set_scale(&cfg, width > 0 ? width : cfg.width_mult, depth > 0 ? depth : cfg.depth_mult);
    if (have_mean) memcpy(cfg.mean, mean, sizeof mean);
    if (have_std) memcpy(cfg.std, std, sizeof std);

    /* the classifier's size comes from the weights */
    dcl_st *st = NULL;
    s = dcl_st_open(&st, weights);
    if (s) return cli_fail("forward", s);
    const dcl_st_entry *cw = dcl_st_find(st, "classifier.weight");
    if (!cw) cw = dcl_st_find(st, "classifier.1.weight");
    if (cw && cw->ndim == 2) cfg.num_classes = (int)cw->shape[0];
    else cfg.with_classifier = 0;
    dcl_st_close(st);

    dcl_image img = {0}, rs = {0};
    s = dcl_image_load(&img, image);
    if (s) return cli_fail("forward", s);
    if (size) {
        s = dcl_image_resize_bilinear(&rs, size, size, &img);
        dcl_image_free(&img);
        if (s) return cli_fail("forward", s);
        img = rs;
    }

    dcl_backend *be = dcl_backend_create(device, threads);
    if (!be) { dcl_image_free(&img); return cli_fail("forward", DCL_ERR_UNSUPPORTED); }
    dcl_model *m = NULL;
    float *x = NULL, *out = NULL;
    int rc = 0;
    s = dcl_effnet_build(&m, be, &cfg);
    if (!s) s = dcl_model_load(m, weights, NULL);
    if (!s) s = dcl_net_plan(m->net, 1, img.h, img.w, 0);
    if (!s) {
        x = malloc((size_t)img.w * img.h * 3 * sizeof(float));
        if (!x) s = dcl_fail(DCL_ERR_NOMEM, "image buffer");
    }
    if (!s) {
        dcl_image_to_tensor(x, &img, cfg.mean, cfg.std);
        s = dcl_net_set_input(m->net, x);
    }
    if (!s) s = dcl_net_forward(m->net, NULL);
    int outv = m && m->logits >= 0 ? m->logits : (m ? m->pooled : -1);
    int shp[4] = {0};
    if (!s) {
        dcl_net_value_shape(m->net, outv, shp);
        out = malloc(sizeof(float) * shp[1]);
        if (!out) s = dcl_fail(DCL_ERR_NOMEM, "output");
    }
    if (!s) s = dcl_net_value_to_host(m->net, outv, out);
    if (!s) {
        printf("{\"%s\": [", m->logits >= 0 ? "logits" : "features");
        for (int i = 0; i < shp[1]; i++) printf(i ? ", %.9g" : "%.9g", out[i]);
        printf("]}\n");
    } else {
        rc = cli_fail("forward", s);
    }
    free(out);
    free(x);
    dcl_model_free(m);
    dcl_backend_destroy(be);
    dcl_image_free(&img);
    return rc;
}
