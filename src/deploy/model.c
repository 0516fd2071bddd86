/* Model files: metadata, loading the detector, export, opening a scorer. */
#define _GNU_SOURCE
#include "deploy/deploy_internal.h"
#include "dcl/trainer.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MTCNN_PREFIX "mtcnn."
#define DEFAULT_MTCNN "models/mtcnn.safetensors"

void dcl_deploy_info_default(dcl_deploy_info *info) {
    memset(info, 0, sizeof *info);
    info->threshold = 0.5f;
    info->face_min_size = 40;
    info->face_factor = 0.709;
    info->face_thresholds[0] = 0.6f;
    info->face_thresholds[1] = 0.7f;
    info->face_thresholds[2] = 0.7f;
    info->crop_scale = 1.3f;
    info->epoch = -1;
    info->val_auc = NAN;
}

void dcl_export_opts_default(dcl_export_opts *o) {
    dcl_deploy_info d;
    dcl_deploy_info_default(&d);
    memset(o, 0, sizeof *o);
    o->threshold = d.threshold;
    o->face_min_size = d.face_min_size;
    o->face_factor = d.face_factor;
    memcpy(o->face_thresholds, d.face_thresholds, sizeof o->face_thresholds);
    o->crop_scale = d.crop_scale;
    o->mtcnn_path = DEFAULT_MTCNN;
    o->embed_face = 1;
}

void dcl_deploy_opts_default(dcl_deploy_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "cpu";
    o->mtcnn_path = DEFAULT_MTCNN;
    o->max_faces = 16;
    o->max_pixels = 40LL * 1000 * 1000;
}

/* ------------------------------------------------------------ metadata -- */

static int parse_double(const char *s, double *v) {
    if (!s) return -1;
    while (*s == ' ') s++;
    if (!*s) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end || errno == ERANGE || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int parse_floats3(const char *s, float out[3]) {
    if (!s) return -1;
    for (int i = 0; i < 3; i++) {
        char *end;
        while (*s == ' ') s++;
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || errno == ERANGE || !isfinite(x) || fabs(x) > 1e6) return -1;
        out[i] = (float)x;
        s = end;
        while (*s == ' ') s++;
        if (i < 2) {
            if (*s != ',') return -1;
            s++;
        }
    }
    return *s ? -1 : 0;
}

/* Prints a metadata value for an error message (cut, control bytes shown as '?'). */
static const char *shown(const char *v, char *buf, size_t n) {
    size_t i = 0;
    for (; v[i] && i + 4 < n; i++) buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i]) { buf[i++] = '.'; buf[i++] = '.'; buf[i++] = '.'; }
    buf[i] = 0;
    return buf;
}

static dcl_status bad_meta(const dcl_st *st, const char *key, const char *val, const char *want) {
    char b[64];
    return dcl_fail(DCL_ERR_FORMAT, "%s: metadata %s '%s': expected %s", dcl_st_path(st), key, shown(val, b, sizeof b), want);
}

static dcl_status meta_double(const dcl_st *st, const char *key, double lo, double hi, int lo_open, double *v,
                              const char *want) {
    const char *s = dcl_st_meta(st, key);
    if (!s) return DCL_OK;
    double x;
    if (parse_double(s, &x) || x > hi || x < lo || (lo_open && x == lo)) return bad_meta(st, key, s, want);
    *v = x;
    return DCL_OK;
}

/* A number from the training config (checkpoints): absent or null leaves *v. */
static dcl_status cfg_double(const dcl_st *st, const dcl_config *cfg, const char *path, double *v) {
    if (!cfg) return DCL_OK;
    dcl_status s = dcl_config_get_double(cfg, path, *v, v);
    if (s) return dcl_fail_ctx(s, "%s: metadata config", dcl_st_path(st));
    return DCL_OK;
}

dcl_status dcl_deploy_info_read(dcl_deploy_info *info, const dcl_st *st) {
    if (!info || !st) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_info_read: NULL argument");
    dcl_deploy_info_default(info);
    const char *path = dcl_st_path(st);
    char b[64];
    const char *fmt = dcl_st_meta(st, "dcl_format");
    if (fmt && strcmp(fmt, DCL_DEPLOY_FORMAT))
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: model file format '%s' is not supported (this dcl reads %s)", path,
                        shown(fmt, b, sizeof b), DCL_DEPLOY_FORMAT);
    info->is_checkpoint = !fmt && (dcl_st_find(st, "key.conv_stem.weight") || dcl_st_meta(st, "optim_step"));

    dcl_config *cfg = NULL;
    const char *ctext = dcl_st_meta(st, "config");
    if (ctext) {
        dcl_status s = dcl_config_parse(&cfg, ctext, strlen(ctext), "config");
        if (s) return dcl_fail_ctx(s, "%s: metadata", path);
    }
    dcl_status s = DCL_OK;
    /* architecture */
    const char *arch = dcl_st_meta(st, "arch");
    if (!arch && cfg) s = dcl_config_get_str(cfg, "model.arch", NULL, &arch);
    if (!s && !arch)
        s = dcl_fail(DCL_ERR_FORMAT, "%s: no 'arch' metadata: not a dcl model file or training checkpoint "
                                     "(write one with dcl export or dcl train)", path);
    if (!s && strlen(arch) >= sizeof info->arch) s = bad_meta(st, "arch", arch, "an EfficientNet name");
    dcl_effnet_cfg ec;
    if (!s) {
        s = dcl_effnet_config(&ec, arch);
        if (s) s = dcl_fail_ctx(DCL_ERR_FORMAT, "%s: metadata arch", path);
    }
    if (s) { dcl_config_free(cfg); return s; }
    snprintf(info->arch, sizeof info->arch, "%s", arch);

    /* multipliers, input size, head: metadata, else the training config, else defaults */
    double width = 0, depth = 0, size = 0;
    s = cfg_double(st, cfg, "model.width", &width);
    if (!s) s = cfg_double(st, cfg, "model.depth", &depth);
    if (!s) s = cfg_double(st, cfg, "model.size", &size);
    if (!s && !(width >= 0 && width <= 4)) s = dcl_fail(DCL_ERR_FORMAT, "%s: config model.width %g out of range [0, 4]", path, width);
    if (!s && !(depth >= 0 && depth <= 6)) s = dcl_fail(DCL_ERR_FORMAT, "%s: config model.depth %g out of range [0, 6]", path, depth);
    if (!s && width == 0) width = ec.width_mult;
    if (!s && depth == 0) depth = ec.depth_mult;
    if (!s && size == 0) size = dcl_train_cfg_defaults().size;
    if (!s) s = meta_double(st, "width", 0, 4, 1, &width, "a number in (0, 4]");
    if (!s) s = meta_double(st, "depth", 0, 6, 1, &depth, "a number in (0, 6]");
    if (!s) s = meta_double(st, "size", 32, 1024, 0, &size, "an integer in 32..1024");
    if (!s && (size != floor(size) || size < 32 || size > 1024))
        s = dcl_fail(DCL_ERR_FORMAT, "%s: input size %g: expected an integer in 32..1024", path, size);
    const char *head = dcl_st_meta(st, "head");
    if (!s && !head && cfg) s = dcl_config_get_str(cfg, "model.head", NULL, &head);
    if (!s && !head) {
        const dcl_st_entry *cw = dcl_st_find(st, "classifier.weight");
        head = cw && cw->ndim == 2 && cw->shape[0] == 2 ? "softmax" : "bce";
    }
    if (!s && strcmp(head, "bce") && strcmp(head, "softmax")) s = bad_meta(st, "head", head, "bce or softmax");
    if (!s) info->softmax_head = !strcmp(head, "softmax"); /* head may point into cfg */
    dcl_config_free(cfg);
    if (s) return s;
    info->width = (float)width;
    info->depth = (float)depth;
    info->size = (int)size;

    /* normalisation */
    memcpy(info->mean, ec.mean, sizeof info->mean);
    memcpy(info->std, ec.std, sizeof info->std);
    const char *v;
    if ((v = dcl_st_meta(st, "mean")) && parse_floats3(v, info->mean)) return bad_meta(st, "mean", v, "three numbers a,b,c");
    if ((v = dcl_st_meta(st, "std")) && (parse_floats3(v, info->std) || !(fabsf(info->std[0]) > 1e-6f) ||
                                         !(fabsf(info->std[1]) > 1e-6f) || !(fabsf(info->std[2]) > 1e-6f)))
        return bad_meta(st, "std", v, "three non-zero numbers a,b,c");

    /* deployment settings */
    double x = info->threshold;
    DCL_TRY(meta_double(st, "threshold", 0, 1, 0, &x, "a probability in [0, 1]"));
    info->threshold = (float)x;
    DCL_TRY(meta_double(st, "face_min_size", 4, 100000, 0, &info->face_min_size, "a size in pixels, 4..100000"));
    DCL_TRY(meta_double(st, "face_factor", 0.1, 0.95, 0, &info->face_factor, "a pyramid step in [0.1, 0.95]"));
    if ((v = dcl_st_meta(st, "face_thresholds"))) {
        float t[3];
        if (parse_floats3(v, t) || !(t[0] >= 0 && t[0] <= 1 && t[1] >= 0 && t[1] <= 1 && t[2] >= 0 && t[2] <= 1))
            return bad_meta(st, "face_thresholds", v, "three probabilities p,r,o");
        memcpy(info->face_thresholds, t, sizeof t);
    }
    x = info->crop_scale;
    DCL_TRY(meta_double(st, "crop_scale", 0, 10, 1, &x, "a scale in (0, 10]"));
    info->crop_scale = (float)x;
    info->face_embedded = dcl_st_find(st, MTCNN_PREFIX "pnet.conv1.weight") != NULL;
    if ((v = dcl_st_meta(st, "source"))) snprintf(info->source, sizeof info->source, "%s", v);
    double e = -1;
    if ((v = dcl_st_meta(st, "epoch")) && !parse_double(v, &e) && e >= 0 && e < 1e6) info->epoch = (int)e;
    if ((v = dcl_st_meta(st, "val_auc")) && !parse_double(v, &e) && e >= 0 && e <= 1) info->val_auc = e;
    return DCL_OK;
}

dcl_status dcl_deploy_effnet_cfg(dcl_effnet_cfg *cfg, const dcl_deploy_info *info) {
    DCL_TRY(dcl_effnet_config(cfg, info->arch));
    dcl_effnet_set_scale(cfg, info->width, info->depth);
    memcpy(cfg->mean, info->mean, sizeof cfg->mean);
    memcpy(cfg->std, info->std, sizeof cfg->std);
    cfg->drop_rate = 0;
    cfg->drop_path_rate = 0;
    cfg->with_classifier = 1;
    return DCL_OK;
}

/* ------------------------------------------------------------- loading -- */

dcl_status dcl_deploy_load_detector(dcl_detector **out, dcl_backend *be, const dcl_st *st, dcl_deploy_info *info) {
    if (!out || !be || !st || !info) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_load_detector: NULL argument");
    *out = NULL;
    const char *path = dcl_st_path(st);
    dcl_effnet_cfg ec;
    DCL_TRY(dcl_deploy_effnet_cfg(&ec, info));
    dcl_method_cfg mc = dcl_method_defaults();
    mc.softmax_head = info->softmax_head;
    dcl_detector *d = NULL;
    dcl_status s = dcl_detector_create(&d, be, &ec, &mc, 0);
    if (s) return dcl_fail_ctx(s, "%s: building %s", path, info->arch);
    const dcl_table *tabs[2] = {dcl_net_params(d->q->net), dcl_net_buffers(d->q->net)};
    /* every tensor must be there: report the first missing one and how many */
    int missing = 0;
    const char *first = NULL;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            if (!dcl_st_find(st, e->name) && !(e->flags & DCL_PF_COUNTER)) {
                if (!missing) first = e->name;
                missing++;
            }
        }
    if (missing) {
        s = dcl_fail(DCL_ERR_FORMAT, "%s: %d tensors of the %s detector (width %g, depth %g, %s head) are missing, "
                                     "first %s: not a dcl model file or checkpoint of this architecture",
                     path, missing, info->arch, info->width, info->depth, info->softmax_head ? "softmax" : "bce", first);
        dcl_detector_free(d);
        return s;
    }
    int64_t nparams = 0;
    for (int t = 0; t < 2 && !s; t++)
        for (int i = 0; i < tabs[t]->n && !s; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            if (!dcl_st_find(st, e->name)) continue; /* a counter: not needed to score */
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            if (!h) { s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory loading %s", path, e->name); break; }
            s = dcl_st_read_f32(st, e->name, h, e->ndim, e->ndim ? e->shape : NULL);
            /* dcl_st_read_f32 names the file and the tensor */
            for (int64_t j = 0; !s && j < e->numel; j++)
                if (!isfinite(h[j]))
                    s = dcl_fail(DCL_ERR_FORMAT, "%s: tensor %s has a non-finite value at index %lld", path, e->name,
                                 (long long)j);
            if (!s) s = dcl_net_set_tensor(d->q->net, e->name, h, e->numel);
            free(h);
            if (t == 0) nparams += e->numel;
        }
    if (s) { dcl_detector_free(d); return s; }
    info->params = nparams;
    *out = d;
    return DCL_OK;
}

/* ------------------------------------------------------ memory files -- */

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

dcl_status dcl_memfile_create(dcl_memfile *m, const void *buf, size_t len) {
    memset(m, 0, sizeof *m);
    m->fd = -1;
    int fd = memfd_create("dcl-media", MFD_CLOEXEC);
    if (fd >= 0) {
        snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", fd);
        if (write_all(fd, buf, len) == 0 && access(m->path, R_OK) == 0) {
            m->fd = fd;
            return DCL_OK;
        }
        close(fd);
    }
    /* no memfd or no /proc: a private temporary file, removed on close */
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(m->path, sizeof m->path, "%s/dcl-media-XXXXXX", dir);
    fd = mkstemp(m->path);
    if (fd < 0) return dcl_fail(DCL_ERR_IO, "cannot create a temporary file in %s: %s", dir, strerror(errno));
    if (write_all(fd, buf, len)) {
        int e = errno;
        close(fd);
        unlink(m->path);
        return dcl_fail(DCL_ERR_IO, "cannot write a temporary file in %s: %s", dir, strerror(e));
    }
    m->fd = fd;
    m->unlink_on_close = 1;
    return DCL_OK;
}

void dcl_memfile_close(dcl_memfile *m) {
    if (m->fd >= 0) close(m->fd);
    if (m->unlink_on_close) unlink(m->path);
    m->fd = -1;
    m->unlink_on_close = 0;
}

dcl_status dcl_deploy_mtcnn_from_st(dcl_mtcnn **out, dcl_backend *be, const dcl_st *st) {
    dcl_st_writer *w = NULL;
    DCL_TRY(dcl_st_writer_new(&w));
    dcl_status s = DCL_OK;
    size_t np = strlen(MTCNN_PREFIX);
    for (int i = 0; i < dcl_st_count(st) && !s; i++) {
        const dcl_st_entry *e = dcl_st_get(st, i);
        if (strncmp(e->name, MTCNN_PREFIX, np)) continue;
        s = dcl_st_writer_add(w, e->name + np, e->dtype, e->ndim, e->shape, e->data);
    }
    void *img = NULL;
    size_t len = 0;
    if (!s) s = dcl_st_write_mem(w, &img, &len);
    dcl_st_writer_free(w);
    dcl_memfile mf;
    if (!s) s = dcl_memfile_create(&mf, img, len);
    free(img);
    if (s) return dcl_fail_ctx(s, "%s: embedded face detector", dcl_st_path(st));
    s = dcl_mtcnn_create(out, be, mf.path);
    if (s) {
        /* the message names the memory file: name the tensors "mtcnn.*" of st instead */
        char msg[1024], *o = msg;
        const char *m = dcl_last_error();
        size_t pl = strlen(mf.path);
        const char *pre = "loading MTCNN weights ";
        if (!strncmp(m, pre, strlen(pre))) m += strlen(pre);
        while (*m && o < msg + sizeof msg - 1) {
            if (!strncmp(m, mf.path, pl)) {
                m += pl;
                if (m[0] == ':' && m[1] == ' ') m += 2;
                continue;
            }
            *o++ = *m++;
        }
        *o = 0;
        s = dcl_fail(s, "%s: embedded face detector (tensors mtcnn.*): %s", dcl_st_path(st), msg);
    }
    dcl_memfile_close(&mf);
    return s;
}

/* -------------------------------------------------------------- export -- */

static dcl_status add_detector(dcl_st_writer *w, dcl_detector *d) {
    const dcl_table *tabs[2] = {dcl_net_params(d->q->net), dcl_net_buffers(d->q->net)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            if (!h) return dcl_fail(DCL_ERR_NOMEM, "export: out of memory");
            dcl_status s = dcl_net_get_tensor(d->q->net, e->name, h, e->numel);
            if (!s) s = dcl_st_writer_add_f32(w, e->name, (e->flags & DCL_PF_COUNTER) ? DCL_I64 : DCL_F32, e->ndim,
                                              e->shape, h);
            free(h);
            DCL_TRY(s);
        }
    return DCL_OK;
}

static dcl_status meta_f(dcl_st_writer *w, const char *key, double v) {
    char b[64];
    snprintf(b, sizeof b, "%.9g", v);
    return dcl_st_writer_meta(w, key, b);
}

static dcl_status meta_f3(dcl_st_writer *w, const char *key, const float v[3]) {
    char b[96];
    snprintf(b, sizeof b, "%.9g,%.9g,%.9g", v[0], v[1], v[2]);
    return dcl_st_writer_meta(w, key, b);
}

dcl_status dcl_deploy_export(const char *out_path, const char *ckpt, const dcl_export_opts *o_in, dcl_deploy_info *info_out) {
    if (!out_path || !ckpt) return dcl_fail(DCL_ERR_ARG, "export: NULL path");
    dcl_export_opts o;
    if (o_in) o = *o_in;
    else dcl_export_opts_default(&o);
    if (!(o.threshold >= 0 && o.threshold <= 1)) return dcl_fail(DCL_ERR_ARG, "export: threshold %g not in [0, 1]", o.threshold);
    if (!(o.face_min_size >= 4 && o.face_min_size <= 100000))
        return dcl_fail(DCL_ERR_ARG, "export: face min size %g not in 4..100000 pixels", o.face_min_size);
    if (!(o.face_factor >= 0.1 && o.face_factor <= 0.95)) return dcl_fail(DCL_ERR_ARG, "export: face pyramid factor %g not in [0.1, 0.95]", o.face_factor);
    for (int i = 0; i < 3; i++)
        if (!(o.face_thresholds[i] >= 0 && o.face_thresholds[i] <= 1))
            return dcl_fail(DCL_ERR_ARG, "export: face threshold %g not in [0, 1]", o.face_thresholds[i]);
    if (!(o.crop_scale > 0 && o.crop_scale <= 10)) return dcl_fail(DCL_ERR_ARG, "export: crop scale %g not in (0, 10]", o.crop_scale);
    if (o.embed_face && (!o.mtcnn_path || !*o.mtcnn_path)) return dcl_fail(DCL_ERR_ARG, "export: no face detector weights given");

    dcl_st *st = NULL, *mst = NULL;
    dcl_backend *be = NULL;
    dcl_detector *d = NULL;
    dcl_st_writer *w = NULL;
    dcl_deploy_info info;
    dcl_status s = dcl_st_open(&st, ckpt);
    if (!s) s = dcl_deploy_info_read(&info, st);
    if (!s) {
        be = dcl_backend_ref();
        if (!be) s = dcl_fail(DCL_ERR_INTERNAL, "export: no reference backend");
    }
    if (!s) s = dcl_deploy_load_detector(&d, be, st, &info);
    /* the face detector: embedded (checked by loading it once) or referenced */
    if (!s && o.embed_face) {
        if (info.face_embedded && strcmp(o.mtcnn_path, DEFAULT_MTCNN) == 0) {
            mst = NULL; /* re-export of a model file: keep its embedded copy */
        } else {
            dcl_mtcnn *m = NULL;
            s = dcl_mtcnn_create(&m, be, o.mtcnn_path);
            dcl_mtcnn_free(m);
            if (!s) s = dcl_st_open(&mst, o.mtcnn_path);
        }
    }
    if (!s) s = dcl_st_writer_new(&w);
    if (!s) s = add_detector(w, d);
    if (!s && o.embed_face) {
        const dcl_st *src = mst ? mst : st;
        size_t np = strlen(MTCNN_PREFIX);
        for (int i = 0; i < dcl_st_count(src) && !s; i++) {
            const dcl_st_entry *e = dcl_st_get(src, i);
            char name[DCL_NAME_MAX + 16];
            if (mst) snprintf(name, sizeof name, MTCNN_PREFIX "%s", e->name);
            else if (strncmp(e->name, MTCNN_PREFIX, np) == 0) snprintf(name, sizeof name, "%s", e->name);
            else continue;
            s = dcl_st_writer_add(w, name, e->dtype, e->ndim, e->shape, e->data);
        }
    }
    if (!s) {
        info.threshold = o.threshold;
        info.face_min_size = o.face_min_size;
        info.face_factor = o.face_factor;
        memcpy(info.face_thresholds, o.face_thresholds, sizeof info.face_thresholds);
        info.crop_scale = o.crop_scale;
        info.face_embedded = o.embed_face;
        info.is_checkpoint = 0;
        if (o.source) snprintf(info.source, sizeof info.source, "%s", o.source);
        else if (!dcl_st_meta(st, "dcl_format")) snprintf(info.source, sizeof info.source, "%s", ckpt);
        char b[64];
        s = dcl_st_writer_meta(w, "format", "pt");
        if (!s) s = dcl_st_writer_meta(w, "dcl_format", DCL_DEPLOY_FORMAT);
        if (!s) s = dcl_st_writer_meta(w, "arch", info.arch);
        if (!s) s = meta_f(w, "width", info.width);
        if (!s) s = meta_f(w, "depth", info.depth);
        snprintf(b, sizeof b, "%d", info.size);
        if (!s) s = dcl_st_writer_meta(w, "size", b);
        if (!s) s = dcl_st_writer_meta(w, "head", info.softmax_head ? "softmax" : "bce");
        if (!s) s = meta_f3(w, "mean", info.mean);
        if (!s) s = meta_f3(w, "std", info.std);
        if (!s) s = meta_f(w, "threshold", info.threshold);
        if (!s) s = dcl_st_writer_meta(w, "face_detector", "mtcnn");
        if (!s) s = dcl_st_writer_meta(w, "face_weights", o.embed_face ? "embedded" : "external");
        if (!s) s = meta_f(w, "face_min_size", info.face_min_size);
        if (!s) s = meta_f(w, "face_factor", info.face_factor);
        if (!s) s = meta_f3(w, "face_thresholds", info.face_thresholds);
        if (!s) s = meta_f(w, "crop_scale", info.crop_scale);
        if (!s) s = dcl_st_writer_meta(w, "source", info.source);
        if (!s && info.epoch >= 0) {
            snprintf(b, sizeof b, "%d", info.epoch);
            s = dcl_st_writer_meta(w, "epoch", b);
        }
        if (!s && !isnan(info.val_auc)) s = meta_f(w, "val_auc", info.val_auc);
        time_t now = time(NULL);
        struct tm tmv;
        if (!s && gmtime_r(&now, &tmv)) {
            strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tmv);
            s = dcl_st_writer_meta(w, "created", b);
        }
    }
    if (!s) s = dcl_st_write_file(w, out_path);
    dcl_st_writer_free(w);
    dcl_detector_free(d);
    dcl_backend_destroy(be);
    dcl_st_close(mst);
    dcl_st_close(st);
    if (!s && info_out) *info_out = info;
    return s;
}

/* ------------------------------------------------------------- scorer -- */

static dcl_status open_st(dcl_deploy **out, const dcl_st *st, const dcl_deploy_opts *opts_in) {
    dcl_deploy_opts o;
    if (opts_in) o = *opts_in;
    else dcl_deploy_opts_default(&o);
    if (o.max_faces <= 0) o.max_faces = 16;
    if (o.max_pixels <= 0) o.max_pixels = 40LL * 1000 * 1000;
    dcl_deploy *d = calloc(1, sizeof *d);
    if (!d) return dcl_fail(DCL_ERR_NOMEM, "out of memory");
    d->threads = o.threads;
    d->max_faces = o.max_faces;
    d->max_pixels = o.max_pixels;
    dcl_status s = dcl_deploy_info_read(&d->info, st);
    if (!s) {
        d->be = dcl_backend_create(o.device && *o.device ? o.device : "cpu", o.threads);
        if (!d->be) s = dcl_fail_ctx(DCL_ERR_UNSUPPORTED, "device %s", o.device ? o.device : "cpu");
    }
    if (!s) s = dcl_deploy_load_detector(&d->det, d->be, st, &d->info);
    if (!s) {
        if (d->info.face_embedded) {
            s = dcl_deploy_mtcnn_from_st(&d->mtcnn, d->be, st);
        } else {
            const char *mp = o.mtcnn_path && *o.mtcnn_path ? o.mtcnn_path : DEFAULT_MTCNN;
            s = dcl_mtcnn_create(&d->mtcnn, d->be, mp);
            if (s) s = dcl_fail_ctx(s, "%s has no embedded face detector (export it with dcl export to embed one)",
                                    dcl_st_path(st));
        }
    }
    if (!s) {
        dcl_mtcnn_opts_default(&d->mopts);
        d->mopts.min_face_size = d->info.face_min_size;
        d->mopts.factor = d->info.face_factor;
        memcpy(d->mopts.thresholds, d->info.face_thresholds, sizeof d->mopts.thresholds);
        s = dcl_detector_plan(d->det, 1, d->info.size, d->info.size, DCL_PLAN_EVAL);
    }
    if (!s) {
        d->x = malloc((size_t)d->info.size * d->info.size * 3 * sizeof(float));
        if (!d->x) s = dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    if (s) { dcl_deploy_free(d); return s; }
    *out = d;
    return DCL_OK;
}

dcl_status dcl_deploy_open(dcl_deploy **out, const char *model_path, const dcl_deploy_opts *opts) {
    if (!out || !model_path) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_open: NULL argument");
    *out = NULL;
    dcl_st *st = NULL;
    DCL_TRY(dcl_st_open(&st, model_path));
    dcl_status s = open_st(out, st, opts);
    dcl_st_close(st);
    return s;
}

dcl_status dcl_deploy_open_mem(dcl_deploy **out, const void *buf, size_t len, const char *name, const dcl_deploy_opts *opts) {
    if (!out || (!buf && len)) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_open_mem: NULL argument");
    *out = NULL;
    dcl_st *st = NULL;
    DCL_TRY(dcl_st_open_mem(&st, buf, len, name ? name : "model"));
    dcl_status s = open_st(out, st, opts);
    dcl_st_close(st);
    return s;
}

void dcl_deploy_free(dcl_deploy *d) {
    if (!d) return;
    dcl_mtcnn_free(d->mtcnn);
    dcl_detector_free(d->det);
    dcl_backend_destroy(d->be);
    free(d->x);
    free(d);
}

const dcl_deploy_info *dcl_deploy_get_info(const dcl_deploy *d) { return d ? &d->info : NULL; }
