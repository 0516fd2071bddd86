/* Opening model files and training checkpoints for inference
 * (include/dcl/modelfile.h). */
#define _GNU_SOURCE
#include "dcl/modelfile.h"
#include "dcl/io.h"
#include "dcl/trainer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* EfficientNet-b0 base channels (stem, the 7 stages, head) and repeats per
 * stage, as in timm's arch_def; scaled by width / depth. */
static const int k_base_ch[9] = {32, 16, 24, 40, 80, 112, 192, 320, 1280};
static const int k_base_rep[7] = {1, 2, 2, 3, 3, 4, 1};

static int stage_reps(int r, double d) {
    double v = ceil(r * d - 1e-9);
    return v < 1 ? 1 : (int)v;
}

/* Channels and blocks per stage found in the file; -1 where unknown. */
typedef struct found_shapes {
    int ch[9];
    int reps[7];
    int classes;
} found_shapes;

static int out_channels(const dcl_st *st, const char *name) {
    const dcl_st_entry *e = dcl_st_find(st, name);
    return e && e->ndim >= 1 ? (int)e->shape[0] : -1;
}

static void scan_shapes(found_shapes *f, const dcl_st *st) {
    char name[96];
    f->ch[0] = out_channels(st, "conv_stem.weight");
    for (int s = 0; s < 7; s++) {
        snprintf(name, sizeof name, s == 0 ? "blocks.%d.0.conv_pw.weight" : "blocks.%d.0.conv_pwl.weight", s);
        f->ch[1 + s] = out_channels(st, name);
        f->reps[s] = 0;
    }
    f->ch[8] = out_channels(st, "conv_head.weight");
    f->classes = out_channels(st, "classifier.weight");
    for (int i = 0; i < dcl_st_count(st); i++) {
        const char *n = dcl_st_get(st, i)->name;
        int s, j;
        if (strncmp(n, "blocks.", 7) || sscanf(n + 7, "%d.%d.", &s, &j) != 2) continue;
        if (s >= 0 && s < 7 && j + 1 > f->reps[s]) f->reps[s] = j + 1;
    }
}

static int width_fits(const found_shapes *f, double w) {
    if (!(w > 0)) return 0;
    for (int i = 0; i < 9; i++)
        if (f->ch[i] > 0 && dcl_make_divisible(k_base_ch[i] * w, 8) != f->ch[i]) return 0;
    return 1;
}

static int depth_fits(const found_shapes *f, double d) {
    if (!(d > 0)) return 0;
    for (int s = 0; s < 7; s++)
        if (f->reps[s] > 0 && stage_reps(k_base_rep[s], d) != f->reps[s]) return 0;
    return 1;
}

/* The simplest multiplier on a grid of 0.05, then 0.01, 0.001, 0.0001 that
 * fits; 0 when none does. */
static double search_mult(const found_shapes *f, int (*fits)(const found_shapes *, double)) {
    static const int steps[4] = {20, 100, 1000, 10000};
    for (int g = 0; g < 4; g++)
        for (int k = 1; k <= 8 * steps[g]; k++) {
            double v = (double)k / steps[g];
            if (fits(f, v)) return v;
        }
    return 0;
}

static int parse3(const char *s, float out[3]) {
    float v[3];
    char tail;
    if (!s || sscanf(s, "%f,%f,%f%c", &v[0], &v[1], &v[2], &tail) != 3) return -1;
    memcpy(out, v, sizeof v);
    return 0;
}

static int parse_float(const char *s, float *out) {
    if (!s || !*s) return -1;
    char *end;
    float v = strtof(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Fills info from an open file. */
static dcl_status read_info(dcl_model_info *info, const dcl_st *st, const char *path) {
    memset(info, 0, sizeof *info);
    info->val_auc = NAN;
    const char *arch = dcl_st_meta(st, "arch");
    if (!arch || !*arch)
        return dcl_fail(DCL_ERR_FORMAT, "%s: no 'arch' metadata: not a dcl model file or training checkpoint "
                        "(write one with dcl train or dcl export)", path);
    if (strlen(arch) >= sizeof info->arch) return dcl_fail(DCL_ERR_FORMAT, "%s: arch '%.60s...' too long", path, arch);
    snprintf(info->arch, sizeof info->arch, "%s", arch);
    dcl_effnet_cfg ec;
    dcl_status s = dcl_effnet_config(&ec, arch);
    if (s) return dcl_fail_ctx(s, "%s", path);
    info->is_checkpoint = dcl_st_find(st, "key.conv_stem.weight") != NULL || dcl_st_find(st, "optim.m") != NULL ||
                          dcl_st_meta(st, "optim_step") != NULL;

    /* the run's config, when the file carries one (checkpoints) */
    dcl_config *cfg = NULL;
    const char *ctext = dcl_st_meta(st, "config");
    if (ctext && dcl_config_parse(&cfg, ctext, strlen(ctext), path) == DCL_OK && dcl_config_kind(cfg) != DCL_CFG_MAP) {
        dcl_config_free(cfg);
        cfg = NULL;
    }
    dcl_clear_error();

    found_shapes fs;
    scan_shapes(&fs, st);

    /* head */
    const char *head = dcl_st_meta(st, "head");
    const char *chead = NULL;
    if (!head && cfg && dcl_config_get_str(cfg, "model.head", NULL, &chead) == DCL_OK) head = chead;
    if (head) {
        if (!strcmp(head, "bce")) info->softmax_head = 0;
        else if (!strcmp(head, "softmax")) info->softmax_head = 1;
        else { s = dcl_fail(DCL_ERR_FORMAT, "%s: head '%s' is neither bce nor softmax", path, head); goto out; }
    } else if (fs.classes == 1 || fs.classes == 2) {
        info->softmax_head = fs.classes == 2;
    } else {
        s = dcl_fail(DCL_ERR_FORMAT, "%s: classifier.weight %s: a detector has 1 (bce) or 2 (softmax) outputs", path,
                     fs.classes < 0 ? "missing" : "has another number of outputs");
        goto out;
    }

    /* width / depth */
    float w = 0, d = 0;
    int have_w = !parse_float(dcl_st_meta(st, "width"), &w) && w > 0;
    int have_d = !parse_float(dcl_st_meta(st, "depth"), &d) && d > 0;
    if (have_w && have_d) {
        snprintf(info->scale_from, sizeof info->scale_from, "metadata");
    } else {
        double cw = 0, cd = 0;
        if (cfg && !dcl_config_get_double(cfg, "model.width", 0, &cw) && !dcl_config_get_double(cfg, "model.depth", 0, &cd)) {
            if (!have_w) w = cw > 0 ? (float)cw : ec.width_mult;
            if (!have_d) d = cd > 0 ? (float)cd : ec.depth_mult;
            snprintf(info->scale_from, sizeof info->scale_from, "config");
        } else {
            dcl_clear_error();
            if (!have_w) {
                if (width_fits(&fs, ec.width_mult)) w = ec.width_mult;
                else w = (float)search_mult(&fs, width_fits);
            }
            if (!have_d) {
                if (depth_fits(&fs, ec.depth_mult)) d = ec.depth_mult;
                else d = (float)search_mult(&fs, depth_fits);
            }
            if (!(w > 0) || !(d > 0)) {
                s = dcl_fail(DCL_ERR_FORMAT, "%s: no width/depth metadata and the tensor shapes fit no %s scaling "
                             "(stem %d channels, head %d)", path, arch, fs.ch[0], fs.ch[8]);
                goto out;
            }
            snprintf(info->scale_from, sizeof info->scale_from, "shapes");
        }
    }
    info->width = w;
    info->depth = d;

    /* normalisation */
    memcpy(info->mean, ec.mean, sizeof info->mean);
    memcpy(info->std, ec.std, sizeof info->std);
    const char *m = dcl_st_meta(st, "mean"), *sd = dcl_st_meta(st, "std");
    if (m && parse3(m, info->mean)) { s = dcl_fail(DCL_ERR_FORMAT, "%s: metadata mean '%s' is not three numbers", path, m); goto out; }
    if (sd && parse3(sd, info->std)) { s = dcl_fail(DCL_ERR_FORMAT, "%s: metadata std '%s' is not three numbers", path, sd); goto out; }
    for (int i = 0; i < 3; i++)
        if (!(info->std[i] > 0)) { s = dcl_fail(DCL_ERR_FORMAT, "%s: std %g must be positive", path, info->std[i]); goto out; }

    /* input size, epoch, validation AUC */
    const char *v;
    if ((v = dcl_st_meta(st, "size"))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 16 || n > 4096) { s = dcl_fail(DCL_ERR_FORMAT, "%s: metadata size '%s' out of range", path, v); goto out; }
        info->size = (int)n;
    } else if (cfg) {
        int n = 0;
        if (dcl_config_get_int(cfg, "model.size", dcl_train_cfg_defaults().size, &n) == DCL_OK && n >= 16 && n <= 4096)
            info->size = n;
        dcl_clear_error();
    }
    /* model files: the 1-based epoch; checkpoints: epochs completed */
    if ((v = dcl_st_meta(st, "epoch"))) info->epoch = atoi(v);
    if ((v = dcl_st_meta(st, "val_auc"))) info->val_auc = atof(v);
    s = DCL_OK;
out:
    dcl_config_free(cfg);
    return s;
}

dcl_status dcl_model_info_read(dcl_model_info *info, const char *path) {
    if (!info || !path) return dcl_fail(DCL_ERR_ARG, "dcl_model_info_read: NULL argument");
    dcl_st *st = NULL;
    dcl_status s = dcl_st_open(&st, path);
    if (s) return dcl_fail_ctx(s, "model file");
    s = read_info(info, st, path);
    dcl_st_close(st);
    return s;
}

static int ignored_prefix(const char *n) {
    return !strncmp(n, "key.", 4) || !strncmp(n, "optim.", 6) || !strncmp(n, "queue.", 6) ||
           !strncmp(n, "prototype.", 10) || !strncmp(n, "mtcnn.", 6); /* model files embed the face detector */
}

/* "a, b, c and 4 more" */
static void name_list(char *buf, size_t n, const char *const *names, int count) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < count && i < 3; i++)
        used += snprintf(buf + used, used < n ? n - used : 0, "%s%s", i ? ", " : "", names[i]);
    if (count > 3 && used < n) snprintf(buf + used, n - used, " and %d more", count - 3);
}

static dcl_status load_weights(dcl_detector *d, const dcl_st *st, const char *path, const dcl_model_info *info,
                               int64_t *nparams) {
    dcl_net *net = d->q->net;
    const dcl_table *tabs[2] = {dcl_net_params(net), dcl_net_buffers(net)};
    int total = tabs[0]->n + tabs[1]->n, nmiss = 0, nbad = 0, nextra = 0;
    const char **miss = calloc((size_t)total + 1, sizeof *miss);
    const char **extra = calloc((size_t)dcl_st_count(st) + 1, sizeof *extra);
    char badmsg[512] = "";
    if (!miss || !extra) { free(miss); free(extra); return dcl_fail(DCL_ERR_NOMEM, "%s: loading", path); }
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            const dcl_st_entry *se = dcl_st_find(st, e->name);
            if (!se) { miss[nmiss++] = e->name; continue; }
            if (se->numel != e->numel || (e->ndim && (se->ndim != e->ndim ||
                memcmp(se->shape, e->shape, (size_t)e->ndim * sizeof(int64_t))))) {
                if (!nbad++) {
                    char a[64], b[64];
                    snprintf(badmsg, sizeof badmsg, "%s is %s, the network expects %s", e->name,
                             dcl_shape_str(a, sizeof a, se->ndim, se->shape), dcl_shape_str(b, sizeof b, e->ndim, e->shape));
                }
            }
        }
    for (int i = 0; i < dcl_st_count(st); i++) {
        const char *n = dcl_st_get(st, i)->name;
        if (ignored_prefix(n)) continue;
        if (dcl_table_find(tabs[0], n) < 0 && dcl_table_find(tabs[1], n) < 0) extra[nextra++] = n;
    }
    dcl_status s = DCL_OK;
    if (nmiss || nbad || nextra) {
        char lm[400] = "", le[400] = "";
        name_list(lm, sizeof lm, miss, nmiss);
        name_list(le, sizeof le, extra, nextra);
        s = dcl_fail(DCL_ERR_FORMAT, "%s does not match the %s detector it describes (width %g, depth %g, %s head):%s%s%s%s%s%s%s%s",
                     path, info->arch, info->width, info->depth, info->softmax_head ? "softmax" : "bce",
                     nmiss ? " missing " : "", lm, nmiss && (nbad || nextra) ? ";" : "",
                     nbad ? " " : "", badmsg, nbad && nextra ? ";" : "", nextra ? " unexpected " : "", le);
    }
    free(miss);
    free(extra);
    if (s) return s;
    int64_t count = 0;
    for (int t = 0; t < 2 && !s; t++)
        for (int i = 0; i < tabs[t]->n && !s; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            float *h = malloc((size_t)(e->numel ? e->numel : 1) * sizeof(float));
            if (!h) return dcl_fail(DCL_ERR_NOMEM, "%s: loading %s", path, e->name);
            s = dcl_st_read_f32(st, e->name, h, e->ndim, e->ndim ? e->shape : NULL);
            if (!s) s = dcl_net_set_tensor(net, e->name, h, e->numel);
            free(h);
            if (s) s = dcl_fail_ctx(s, "%s", path);
            if (t == 0) count += e->numel;
        }
    if (nparams) *nparams = count;
    return s;
}

dcl_status dcl_detector_open_model(dcl_detector **d, dcl_backend *be, const char *path, dcl_model_info *info) {
    if (!d || !be || !path) return dcl_fail(DCL_ERR_ARG, "dcl_detector_open_model: NULL argument");
    *d = NULL;
    dcl_model_info local;
    if (!info) info = &local;
    dcl_st *st = NULL;
    dcl_status s = dcl_st_open(&st, path);
    if (s) return dcl_fail_ctx(s, "model file");
    s = read_info(info, st, path);
    dcl_effnet_cfg ec;
    if (!s) s = dcl_effnet_config(&ec, info->arch);
    dcl_detector *det = NULL;
    if (!s) {
        dcl_effnet_set_scale(&ec, info->width, info->depth);
        ec.drop_rate = 0;
        ec.drop_path_rate = 0;
        memcpy(ec.mean, info->mean, sizeof ec.mean);
        memcpy(ec.std, info->std, sizeof ec.std);
        dcl_method_cfg mc = dcl_method_defaults();
        mc.softmax_head = info->softmax_head;
        s = dcl_detector_create(&det, be, &ec, &mc, 0);
        if (s) s = dcl_fail_ctx(s, "%s", path);
    }
    if (!s) s = load_weights(det, st, path, info, &info->params);
    dcl_st_close(st);
    if (s) { dcl_detector_free(det); return s; }
    *d = det;
    return DCL_OK;
}

const char *dcl_model_info_str(const dcl_model_info *info, char *buf, size_t n) {
    size_t u = (size_t)snprintf(buf, n, "%s width %g depth %g, %s head", info->arch, info->width, info->depth,
                                info->softmax_head ? "softmax" : "bce");
    if (u < n && info->size > 0) u += snprintf(buf + u, n - u, ", %dx%d", info->size, info->size);
    if (u < n && info->epoch > 0) u += snprintf(buf + u, n - u, ", epoch %d", info->epoch);
    if (u < n && !isnan(info->val_auc)) u += snprintf(buf + u, n - u, ", val AUC %.4f", info->val_auc);
    if (u < n && info->is_checkpoint) snprintf(buf + u, n - u, " (training checkpoint)");
    return buf;
}
