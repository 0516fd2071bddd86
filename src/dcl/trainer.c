/* The DCL trainer: config, loop, validation, checkpoints, resume, logging. */
#define _GNU_SOURCE
#include "dcl/trainer.h"
#include "dcl/dist.h"
#include "dcl/eval.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* configuration                                                        */
/* ------------------------------------------------------------------ */

dcl_train_cfg dcl_train_cfg_defaults(void) {
    dcl_train_cfg t;
    memset(&t, 0, sizeof t);
    snprintf(t.arch, sizeof t.arch, "tf_efficientnet_b4");
    t.size = 299;
    t.drop_rate = 0.2f;
    t.drop_path_rate = 0.0f;
    snprintf(t.train_split, sizeof t.train_split, "train");
    snprintf(t.val_split, sizeof t.val_split, "val");
    t.workers = 0;   /* auto: dcl_loader_workers */
    t.prefetch = 2;
    t.balance = 1;
    t.epochs = 20;
    t.batch = 32;
    t.optim = dcl_optim_defaults(DCL_OPT_ADAM);
    t.optim.lr = 1e-3f;
    t.optim.weight_decay = 1e-5f;
    t.schedule = DCL_SCHED_CONSTANT;
    t.step_epochs = 10;
    t.gamma = 0.1f;
    t.seed = 1;
    snprintf(t.device, sizeof t.device, "cpu");
    snprintf(t.out, sizeof t.out, "runs/dcl");
    t.checkpoint_every = 500;
    t.log_every = 10;
    t.method = dcl_method_defaults();
    t.use_inter = t.use_intra = t.use_views = t.use_hard = 1;
    t.loss_paper = 1;
    t.phi_warmup = 0.1f;
    t.phi = 0.5f;
    t.warmup_epochs = 5;
    t.w_ce = 1.0f;
    t.w_inter = 1.0f;
    t.w_intra = 0.1f;
    t.views = dcl_views_paper();
    return t;
}

static dcl_status get_strbuf(const dcl_config *c, const char *path, char *dst, size_t n) {
    const char *v = NULL;
    DCL_TRY(dcl_config_get_str(c, path, dst, &v));
    if (v != dst) snprintf(dst, n, "%s", v ? v : "");
    return DCL_OK;
}

static dcl_status get_f(const dcl_config *c, const char *path, float *dst) {
    double v;
    DCL_TRY(dcl_config_get_double(c, path, *dst, &v));
    *dst = (float)v;
    return DCL_OK;
}

static dcl_status check_section(const dcl_config *root, const char *sec, const char *const *keys) {
    const dcl_config *m = dcl_config_find(root, sec);
    if (!m) return DCL_OK;
    if (dcl_config_kind(m) != DCL_CFG_MAP) return dcl_fail(DCL_ERR_FORMAT, "config: %s must be a mapping", sec);
    return dcl_config_check_keys(m, keys);
}

dcl_status dcl_train_cfg_from_config(dcl_train_cfg *t, const dcl_config *c) {
    *t = dcl_train_cfg_defaults();
    static const char *top[] = {"model", "data", "train", "dcl", "views", "protocol", NULL};
    static const char *k_model[] = {"arch", "pretrained", "size", "width", "depth", "drop_rate", "drop_path_rate", "head", NULL};
    static const char *k_data[] = {"cache", "train_split", "val_split", "workers", "prefetch", "balance", "max_val_images", NULL};
    static const char *k_train[] = {"epochs", "batch", "steps_per_epoch", "optimizer", "lr", "weight_decay", "beta1",
                                    "beta2", "eps", "momentum", "schedule", "step_epochs", "gamma", "min_lr",
                                    "lr_warmup_epochs", "seed", "device", "threads", "out", "checkpoint_every",
                                    "log_every", "sync_bn", "dist_timeout", "dist_backend", "dist_check", NULL};
    static const char *k_dcl[] = {"tau", "alpha", "theta", "beta", "queue_size", "hard_mode", "topk", "pixel_threshold",
                                  "cell_threshold", "intra_reduction", "inter", "intra", "views", "hard", "loss",
                                  "phi_warmup", "phi", "warmup_epochs", "w_ce", "w_inter", "w_intra",
                                  "ce_only_epochs", "shuffle_bn", NULL};
    static const char *k_views[] = {"patch", "patch_k", "patch_key", "srm", "srm_scale", "frame_shift", "mixup",
                                    "mixup_min", "flip", "crop", "crop_min", "jitter", "jitter_strength", "blur",
                                    "blur_max", "jpeg", "jpeg_min", "jpeg_max", NULL};
    DCL_TRY(dcl_config_check_keys(c, top));
    DCL_TRY(check_section(c, "model", k_model));
    DCL_TRY(check_section(c, "data", k_data));
    DCL_TRY(check_section(c, "train", k_train));
    DCL_TRY(check_section(c, "dcl", k_dcl));
    DCL_TRY(check_section(c, "views", k_views));

    DCL_TRY(get_strbuf(c, "model.arch", t->arch, sizeof t->arch));
    DCL_TRY(get_strbuf(c, "model.pretrained", t->pretrained, sizeof t->pretrained));
    DCL_TRY(dcl_config_get_int(c, "model.size", t->size, &t->size));
    DCL_TRY(get_f(c, "model.width", &t->width));
    DCL_TRY(get_f(c, "model.depth", &t->depth));
    DCL_TRY(get_f(c, "model.drop_rate", &t->drop_rate));
    DCL_TRY(get_f(c, "model.drop_path_rate", &t->drop_path_rate));
    const char *head = NULL;
    DCL_TRY(dcl_config_get_str(c, "model.head", "bce", &head));
    if (!strcmp(head, "bce")) t->method.softmax_head = 0;
    else if (!strcmp(head, "softmax")) t->method.softmax_head = 1;
    else return dcl_fail(DCL_ERR_FORMAT, "config: model.head must be bce or softmax, found '%s'", head);

    DCL_TRY(get_strbuf(c, "data.cache", t->cache, sizeof t->cache));
    DCL_TRY(get_strbuf(c, "data.train_split", t->train_split, sizeof t->train_split));
    DCL_TRY(get_strbuf(c, "data.val_split", t->val_split, sizeof t->val_split));
    {   /* a positive count, or auto (0) */
        const char *w = NULL;
        DCL_TRY(dcl_config_get_str(c, "data.workers", NULL, &w));
        if (w) {
            char *end = NULL;
            long v = strtol(w, &end, 10);
            if (!strcmp(w, "auto")) t->workers = 0;
            else if (end != w && !*end && v >= 0 && v <= 1024) t->workers = (int)v;
            else return dcl_fail(DCL_ERR_FORMAT, "config: data.workers must be a count (1..1024) or auto, found '%s'", w);
        }
    }
    DCL_TRY(dcl_config_get_int(c, "data.prefetch", t->prefetch, &t->prefetch));
    DCL_TRY(dcl_config_get_bool(c, "data.balance", t->balance, &t->balance));
    DCL_TRY(dcl_config_get_int(c, "data.max_val_images", t->max_val_images, &t->max_val_images));

    DCL_TRY(dcl_config_get_int(c, "train.epochs", t->epochs, &t->epochs));
    DCL_TRY(dcl_config_get_int(c, "train.batch", t->batch, &t->batch));
    DCL_TRY(dcl_config_get_i64(c, "train.steps_per_epoch", t->steps_per_epoch, &t->steps_per_epoch));
    const char *opt = NULL, *sched = NULL;
    DCL_TRY(dcl_config_get_str(c, "train.optimizer", "adam", &opt));
    dcl_opt_kind ok;
    if (dcl_optim_kind_from_name(opt, &ok)) return dcl_fail(DCL_ERR_FORMAT, "config: train.optimizer must be adam, adamw or sgd, found '%s'", opt);
    if (ok != t->optim.kind) {
        float lr = t->optim.lr, wd = t->optim.weight_decay;
        t->optim = dcl_optim_defaults(ok);
        t->optim.lr = lr;
        t->optim.weight_decay = wd;
    }
    DCL_TRY(get_f(c, "train.lr", &t->optim.lr));
    DCL_TRY(get_f(c, "train.weight_decay", &t->optim.weight_decay));
    DCL_TRY(get_f(c, "train.beta1", &t->optim.beta1));
    DCL_TRY(get_f(c, "train.beta2", &t->optim.beta2));
    DCL_TRY(get_f(c, "train.eps", &t->optim.eps));
    DCL_TRY(get_f(c, "train.momentum", &t->optim.momentum));
    DCL_TRY(dcl_config_get_str(c, "train.schedule", "constant", &sched));
    if (dcl_sched_kind_from_name(sched, &t->schedule)) return dcl_fail(DCL_ERR_FORMAT, "config: train.schedule must be constant, step or cosine, found '%s'", sched);
    DCL_TRY(dcl_config_get_int(c, "train.step_epochs", t->step_epochs, &t->step_epochs));
    DCL_TRY(get_f(c, "train.gamma", &t->gamma));
    DCL_TRY(get_f(c, "train.min_lr", &t->min_lr));
    DCL_TRY(dcl_config_get_int(c, "train.lr_warmup_epochs", t->lr_warmup_epochs, &t->lr_warmup_epochs));
    int64_t seed = (int64_t)t->seed;
    DCL_TRY(dcl_config_get_i64(c, "train.seed", seed, &seed));
    t->seed = (uint64_t)seed;
    DCL_TRY(get_strbuf(c, "train.device", t->device, sizeof t->device));
    DCL_TRY(dcl_config_get_int(c, "train.threads", t->threads, &t->threads));
    DCL_TRY(get_strbuf(c, "train.out", t->out, sizeof t->out));
    DCL_TRY(dcl_config_get_i64(c, "train.checkpoint_every", t->checkpoint_every, &t->checkpoint_every));
    DCL_TRY(dcl_config_get_int(c, "train.log_every", t->log_every, &t->log_every));
    /* data-parallel training (docs/DISTRIBUTED.md) */
    dcl_dist_cfg *dc = &t->method.dist;
    DCL_TRY(dcl_config_get_bool(c, "train.sync_bn", dc->sync_bn, &dc->sync_bn));
    DCL_TRY(dcl_config_get_bool(c, "train.dist_check", dc->check, &dc->check));
    DCL_TRY(get_f(c, "train.dist_timeout", &dc->timeout));
    if (!(dc->timeout >= 0)) return dcl_fail(DCL_ERR_FORMAT, "config: train.dist_timeout must be a number of seconds >= 0 (0 = 300)");
    const char *dbk = NULL;
    DCL_TRY(dcl_config_get_str(c, "train.dist_backend", "auto", &dbk));
    dcl_dist_kind dk;
    if (dcl_dist_kind_from_name(dbk, &dk)) return dcl_fail(DCL_ERR_FORMAT, "config: train.dist_backend must be auto, mpi or nccl, found '%s'", dbk);
    dc->backend = (int)dk;

    dcl_method_cfg *m = &t->method;
    DCL_TRY(get_f(c, "dcl.tau", &m->tau));
    DCL_TRY(get_f(c, "dcl.alpha", &m->alpha));
    DCL_TRY(get_f(c, "dcl.theta", &m->theta));
    DCL_TRY(get_f(c, "dcl.beta", &m->beta));
    DCL_TRY(dcl_config_get_int(c, "dcl.queue_size", m->queue_size, &m->queue_size));
    const char *hm = NULL, *red = NULL, *loss = NULL;
    DCL_TRY(dcl_config_get_str(c, "dcl.hard_mode", "threshold", &hm));
    if (dcl_hard_mode_from_name(hm, &m->hard_mode)) return dcl_fail(DCL_ERR_FORMAT, "config: dcl.hard_mode must be threshold, topk or none, found '%s'", hm);
    DCL_TRY(dcl_config_get_int(c, "dcl.topk", m->topk, &m->topk));
    DCL_TRY(get_f(c, "dcl.pixel_threshold", &m->pix_thr));
    DCL_TRY(get_f(c, "dcl.cell_threshold", &m->cell_thr));
    DCL_TRY(dcl_config_get_str(c, "dcl.intra_reduction", "mean", &red));
    if (!strcmp(red, "sum")) m->intra_sum = 1;
    else if (!strcmp(red, "mean")) m->intra_sum = 0;
    else return dcl_fail(DCL_ERR_FORMAT, "config: dcl.intra_reduction must be mean or sum, found '%s'", red);
    DCL_TRY(dcl_config_get_bool(c, "dcl.inter", t->use_inter, &t->use_inter));
    DCL_TRY(dcl_config_get_bool(c, "dcl.intra", t->use_intra, &t->use_intra));
    DCL_TRY(dcl_config_get_bool(c, "dcl.views", t->use_views, &t->use_views));
    DCL_TRY(dcl_config_get_bool(c, "dcl.hard", t->use_hard, &t->use_hard));
    if (!t->use_hard) m->hard_mode = DCL_HARD_NONE;
    DCL_TRY(dcl_config_get_str(c, "dcl.loss", "paper", &loss));
    if (!strcmp(loss, "paper")) t->loss_paper = 1;
    else if (!strcmp(loss, "weighted")) t->loss_paper = 0;
    else return dcl_fail(DCL_ERR_FORMAT, "config: dcl.loss must be paper or weighted, found '%s'", loss);
    DCL_TRY(get_f(c, "dcl.phi_warmup", &t->phi_warmup));
    DCL_TRY(get_f(c, "dcl.phi", &t->phi));
    DCL_TRY(dcl_config_get_int(c, "dcl.warmup_epochs", t->warmup_epochs, &t->warmup_epochs));
    DCL_TRY(get_f(c, "dcl.w_ce", &t->w_ce));
    DCL_TRY(get_f(c, "dcl.w_inter", &t->w_inter));
    DCL_TRY(get_f(c, "dcl.w_intra", &t->w_intra));
    DCL_TRY(dcl_config_get_int(c, "dcl.ce_only_epochs", t->ce_only_epochs, &t->ce_only_epochs));
    DCL_TRY(dcl_config_get_bool(c, "dcl.shuffle_bn", m->dist.shuffle_bn, &m->dist.shuffle_bn));

    dcl_views_cfg *v = &t->views;
    DCL_TRY(get_f(c, "views.patch", &v->p_patch));
    DCL_TRY(dcl_config_get_int(c, "views.patch_k", v->patch_k, &v->patch_k));
    DCL_TRY(dcl_config_get_bool(c, "views.patch_key", v->patch_key, &v->patch_key));
    DCL_TRY(get_f(c, "views.srm", &v->p_srm));
    DCL_TRY(get_f(c, "views.srm_scale", &v->srm_scale));
    DCL_TRY(get_f(c, "views.frame_shift", &v->p_frame_shift));
    DCL_TRY(get_f(c, "views.mixup", &v->p_mixup));
    DCL_TRY(get_f(c, "views.mixup_min", &v->mixup_min));
    DCL_TRY(get_f(c, "views.flip", &v->p_flip));
    DCL_TRY(get_f(c, "views.crop", &v->p_crop));
    DCL_TRY(get_f(c, "views.crop_min", &v->crop_min));
    DCL_TRY(get_f(c, "views.jitter", &v->p_jitter));
    DCL_TRY(get_f(c, "views.jitter_strength", &v->jitter));
    DCL_TRY(get_f(c, "views.blur", &v->p_blur));
    DCL_TRY(get_f(c, "views.blur_max", &v->blur_max));
    DCL_TRY(get_f(c, "views.jpeg", &v->p_jpeg));
    DCL_TRY(dcl_config_get_int(c, "views.jpeg_min", v->jpeg_min, &v->jpeg_min));
    DCL_TRY(dcl_config_get_int(c, "views.jpeg_max", v->jpeg_max, &v->jpeg_max));
    if (!t->use_views) { /* ablation: the DCL-specific views off, ordinary augmentation kept */
        v->p_patch = v->p_srm = v->p_frame_shift = v->p_mixup = 0;
    }

    if (t->size < 32 || t->size > 2048) return dcl_fail(DCL_ERR_FORMAT, "config: model.size %d out of range 32..2048", t->size);
    if (t->batch < 2) return dcl_fail(DCL_ERR_FORMAT, "config: train.batch must be at least 2, found %d", t->batch);
    if (t->epochs < 1) return dcl_fail(DCL_ERR_FORMAT, "config: train.epochs must be at least 1");
    if (!t->cache[0]) return dcl_fail(DCL_ERR_FORMAT, "config: data.cache (a face cache written by dcl extract) is required");
    return DCL_OK;
}

dcl_step_weights dcl_train_weights(const dcl_train_cfg *t, int epoch) {
    dcl_step_weights w;
    if (t->loss_paper) {
        float phi = epoch < t->warmup_epochs ? t->phi_warmup : t->phi;
        w.ce = 1.0f - phi;
        w.inter = phi;
        w.intra = phi;
    } else {
        int ce_only = epoch < t->ce_only_epochs;
        w.ce = t->w_ce;
        w.inter = ce_only ? 0 : t->w_inter;
        w.intra = ce_only ? 0 : t->w_intra;
    }
    if (!t->use_inter) w.inter = 0;
    if (!t->use_intra) w.intra = 0;
    return w;
}

/* ------------------------------------------------------------------ */
/* checkpoints                                                           */
/* ------------------------------------------------------------------ */

static dcl_status add_net(dcl_st_writer *w, dcl_net *net, const char *prefix, float **keep, int *nkeep) {
    const dcl_table *tabs[2] = {dcl_net_params(net), dcl_net_buffers(net)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            if (!h) return dcl_fail(DCL_ERR_NOMEM, "checkpoint");
            keep[(*nkeep)++] = h;
            DCL_TRY(dcl_net_get_tensor(net, e->name, h, e->numel));
            char name[DCL_NAME_MAX + 8];
            snprintf(name, sizeof name, "%s%s", prefix, e->name);
            DCL_TRY(dcl_st_writer_add_f32(w, name, (e->flags & DCL_PF_COUNTER) ? DCL_I64 : DCL_F32, e->ndim, e->shape, h));
        }
    return DCL_OK;
}

static int count_tensors(dcl_net *net) { return dcl_net_params(net)->n + dcl_net_buffers(net)->n; }

dcl_status dcl_detector_save_model(const char *path, dcl_detector *d, int nmeta, const char *const *kv) {
    dcl_st_writer *w = NULL;
    DCL_TRY(dcl_st_writer_new(&w));
    int nk = 0;
    float **keep = calloc(count_tensors(d->q->net) + 1, sizeof(float *));
    dcl_status s = keep ? add_net(w, d->q->net, "", keep, &nk) : dcl_fail(DCL_ERR_NOMEM, "model file");
    if (!s) s = dcl_st_writer_meta(w, "format", "pt");
    if (!s) s = dcl_st_writer_meta(w, "arch", d->q->cfg.arch);
    if (!s) s = dcl_st_writer_meta(w, "head", d->cfg.softmax_head ? "softmax" : "bce");
    char buf[96];
    const dcl_effnet_cfg *ec = &d->q->cfg;
    snprintf(buf, sizeof buf, "%.9g", ec->width_mult);
    if (!s) s = dcl_st_writer_meta(w, "width", buf);
    snprintf(buf, sizeof buf, "%.9g", ec->depth_mult);
    if (!s) s = dcl_st_writer_meta(w, "depth", buf);
    snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g", ec->mean[0], ec->mean[1], ec->mean[2]);
    if (!s) s = dcl_st_writer_meta(w, "mean", buf);
    snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g", ec->std[0], ec->std[1], ec->std[2]);
    if (!s) s = dcl_st_writer_meta(w, "std", buf);
    for (int i = 0; i < nmeta && !s; i++) s = dcl_st_writer_meta(w, kv[2 * i], kv[2 * i + 1]);
    if (!s) s = dcl_st_write_file(w, path);
    for (int i = 0; i < nk; i++) free(keep[i]);
    free(keep);
    dcl_st_writer_free(w);
    return s;
}

dcl_status dcl_checkpoint_save(const char *path, dcl_detector *d, dcl_optim *opt, const dcl_train_state *st,
                               const char *config_text) {
    dcl_st_writer *w = NULL;
    DCL_TRY(dcl_st_writer_new(&w));
    int nk = 0;
    float **keep = calloc(count_tensors(d->q->net) + count_tensors(d->k->net) + 4, sizeof(float *));
    dcl_status s = keep ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "checkpoint");
    if (!s) s = add_net(w, d->q->net, "", keep, &nk);
    if (!s) s = add_net(w, d->k->net, "key.", keep, &nk);
    if (!s && opt) {
        int64_t shp[1] = {(int64_t)opt->n};
        float *m = malloc(opt->n * sizeof(float)), *v = malloc(opt->n * sizeof(float));
        keep[nk++] = m;
        keep[nk++] = v;
        if (!m || !v) s = dcl_fail(DCL_ERR_NOMEM, "checkpoint");
        if (!s) s = dcl_optim_get_state(opt, m, opt->v ? v : NULL);
        if (!s) s = dcl_st_writer_add(w, "optim.m", DCL_F32, 1, shp, m);
        if (!s && opt->v) s = dcl_st_writer_add(w, "optim.v", DCL_F32, 1, shp, v);
    }
    char buf[64];
    if (!s && d->mr.data) {
        int64_t q[2] = {d->mr.cap, d->mr.dim}, p[1] = {d->protos.dim};
        s = dcl_st_writer_add(w, "queue.real", DCL_F32, 2, q, d->mr.data);
        if (!s) s = dcl_st_writer_add(w, "queue.fake", DCL_F32, 2, q, d->mf.data);
        if (!s) s = dcl_st_writer_add(w, "prototype.real", DCL_F32, 1, p, d->protos.real);
        if (!s) s = dcl_st_writer_add(w, "prototype.fake", DCL_F32, 1, p, d->protos.fake);
        snprintf(buf, sizeof buf, "%d,%d,%d,%d", d->mr.count, d->mr.ptr, d->mf.count, d->mf.ptr);
        if (!s) s = dcl_st_writer_meta(w, "queues", buf);
        snprintf(buf, sizeof buf, "%d,%d", d->protos.real_set, d->protos.fake_set);
        if (!s) s = dcl_st_writer_meta(w, "prototypes_set", buf);
    }
    snprintf(buf, sizeof buf, "%lld", (long long)st->step);
    if (!s) s = dcl_st_writer_meta(w, "step", buf);
    snprintf(buf, sizeof buf, "%d", st->epoch);
    if (!s) s = dcl_st_writer_meta(w, "epoch", buf);
    snprintf(buf, sizeof buf, "%.17g", st->best_auc);
    if (!s) s = dcl_st_writer_meta(w, "best_auc", buf);
    snprintf(buf, sizeof buf, "%d", st->best_epoch);
    if (!s) s = dcl_st_writer_meta(w, "best_epoch", buf);
    if (st->has_rng) {
        char rb[96];
        snprintf(rb, sizeof rb, "%016llx%016llx%016llx%016llx", (unsigned long long)st->rng[0], (unsigned long long)st->rng[1],
                 (unsigned long long)st->rng[2], (unsigned long long)st->rng[3]);
        if (!s) s = dcl_st_writer_meta(w, "rng", rb);
    }
    snprintf(buf, sizeof buf, "%lld", opt ? (long long)opt->step : 0LL);
    if (!s) s = dcl_st_writer_meta(w, "optim_step", buf);
    if (!s) s = dcl_st_writer_meta(w, "arch", d->q->cfg.arch);
    if (!s) s = dcl_st_writer_meta(w, "format", "pt");
    if (!s && config_text) s = dcl_st_writer_meta(w, "config", config_text);
    if (!s) s = dcl_st_write_file(w, path);
    for (int i = 0; i < nk; i++) free(keep[i]);
    free(keep);
    dcl_st_writer_free(w);
    return s;
}

static dcl_status load_net(const dcl_st *st, dcl_net *net, const char *prefix, const char *path) {
    const dcl_table *tabs[2] = {dcl_net_params(net), dcl_net_buffers(net)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            char name[DCL_NAME_MAX + 8];
            snprintf(name, sizeof name, "%s%s", prefix, e->name);
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            if (!h) return dcl_fail(DCL_ERR_NOMEM, "checkpoint");
            dcl_status s = dcl_st_read_f32(st, name, h, e->ndim, e->ndim ? e->shape : NULL);
            if (!s) s = dcl_net_set_tensor(net, e->name, h, e->numel);
            free(h);
            if (s) return dcl_fail_ctx(s, "checkpoint %s", path);
        }
    return DCL_OK;
}

dcl_status dcl_checkpoint_load(const char *path, dcl_detector *d, dcl_optim *opt, dcl_train_state *ts) {
    dcl_st *st = NULL;
    DCL_TRY(dcl_st_open(&st, path));
    dcl_status s = load_net(st, d->q->net, "", path);
    if (!s && d->k) s = load_net(st, d->k->net, "key.", path);
    if (!s && opt) {
        float *m = malloc(opt->n * sizeof(float)), *v = malloc(opt->n * sizeof(float));
        int64_t shp[1] = {(int64_t)opt->n};
        if (!m || !v) s = dcl_fail(DCL_ERR_NOMEM, "checkpoint");
        if (!s) s = dcl_st_read_f32(st, "optim.m", m, 1, shp);
        if (!s && opt->v) s = dcl_st_read_f32(st, "optim.v", v, 1, shp);
        const char *os = dcl_st_meta(st, "optim_step");
        if (!s) s = dcl_optim_set_state(opt, m, opt->v ? v : NULL, os ? atoll(os) : 0);
        free(m);
        free(v);
    }
    if (!s && d->mr.data) {
        const dcl_st_entry *qr = dcl_st_find(st, "queue.real");
        const char *qm = dcl_st_meta(st, "queues"), *pm = dcl_st_meta(st, "prototypes_set");
        if (qr) {
            int64_t q[2] = {d->mr.cap, d->mr.dim}, p[1] = {d->protos.dim};
            s = dcl_st_read_f32(st, "queue.real", d->mr.data, 2, q);
            if (!s) s = dcl_st_read_f32(st, "queue.fake", d->mf.data, 2, q);
            if (!s) s = dcl_st_read_f32(st, "prototype.real", d->protos.real, 1, p);
            if (!s) s = dcl_st_read_f32(st, "prototype.fake", d->protos.fake, 1, p);
            if (!s && (!qm || sscanf(qm, "%d,%d,%d,%d", &d->mr.count, &d->mr.ptr, &d->mf.count, &d->mf.ptr) != 4 ||
                       !pm || sscanf(pm, "%d,%d", &d->protos.real_set, &d->protos.fake_set) != 2 ||
                       d->mr.count < 0 || d->mr.count > d->mr.cap || d->mr.ptr < 0 || d->mr.ptr >= d->mr.cap ||
                       d->mf.count < 0 || d->mf.count > d->mf.cap || d->mf.ptr < 0 || d->mf.ptr >= d->mf.cap))
                s = dcl_fail(DCL_ERR_FORMAT, "checkpoint %s: bad queue metadata", path);
        }
    }
    if (!s && ts) {
        const char *v;
        memset(ts, 0, sizeof *ts);
        ts->best_auc = -1;
        if ((v = dcl_st_meta(st, "step"))) ts->step = atoll(v);
        if ((v = dcl_st_meta(st, "epoch"))) ts->epoch = atoi(v);
        if ((v = dcl_st_meta(st, "best_auc"))) ts->best_auc = atof(v);
        if ((v = dcl_st_meta(st, "best_epoch"))) ts->best_epoch = atoi(v);
        if ((v = dcl_st_meta(st, "rng")) && strlen(v) == 64) {
            ts->has_rng = 1;
            for (int i = 0; i < 4; i++) {
                char part[17];
                memcpy(part, v + 16 * i, 16);
                part[16] = 0;
                ts->rng[i] = strtoull(part, NULL, 16);
            }
        }
    }
    dcl_st_close(st);
    return s;
}

/* ------------------------------------------------------------------ */
/* scoring                                                               */
/* ------------------------------------------------------------------ */

dcl_status dcl_score_cache(dcl_detector *d, const dcl_cache *c, const int *idx, int n, int batch,
                           int size, int workers, const float mean[3], const float std[3], float *prob,
                           int progress) {
    dcl_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.batch = batch;
    lc.size = size;
    lc.workers = workers;
    lc.prefetch = 2;
    lc.train = 0;
    memcpy(lc.mean, mean, sizeof lc.mean);
    memcpy(lc.std, std, sizeof lc.std);
    lc.views = dcl_views_none();
    dcl_loader *l = NULL;
    DCL_TRY(dcl_loader_create(&l, c, idx, n, &lc));
    dcl_status s = dcl_detector_plan(d, batch, size, size, DCL_PLAN_EVAL);
    float *p = malloc(batch * sizeof(float));
    if (!p && !s) s = dcl_fail(DCL_ERR_NOMEM, "scores");
    int done = 0;
    double t0 = dcl_now();
    while (!s) {
        dcl_batch *b = NULL;
        s = dcl_loader_next(l, &b);
        if (s || !b) break;
        s = dcl_detector_predict(d, b->v1, p);
        for (int i = 0; i < b->n && !s; i++) prob[done + i] = b->entry[i] < 0 ? NAN : p[i];
        done += b->n;
        if (progress && isatty(2)) {
            double dt = dcl_now() - t0;
            fprintf(stderr, "\r  scoring %d/%d images  %.1f img/s  ", done, n, dt > 0 ? done / dt : 0.0);
        }
    }
    if (progress && isatty(2)) fprintf(stderr, "\n");
    free(p);
    dcl_loader_free(l);
    return s;
}

/* ------------------------------------------------------------------ */
/* the loop                                                              */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }


/* Scores the validation images: rank r scores the r-th contiguous share,
 * the scores are gathered in image order, rank 0 computes the metrics and
 * every rank receives them. */
static dcl_status validate(dcl_detector *d, const dcl_train_cfg *t, int batch, dcl_dist *dist, const dcl_cache *c,
                           const int *vidx, int nv, const dcl_effnet_cfg *ecfg, double *auc, double *acc) {
    *auc = NAN;
    *acc = NAN;
    if (nv <= 0) return DCL_OK;
    int R = dcl_dist_world(dist), r = dcl_dist_rank(dist);
    int per = (nv + R - 1) / R, lo = r * per < nv ? r * per : nv, n = lo + per < nv ? per : nv - lo;
    float *prob = malloc((size_t)per * R * sizeof(float)), *mine = malloc((size_t)per * sizeof(float));
    int *lab = malloc(nv * sizeof(int));
    if (!prob || !mine || !lab) { free(prob); free(mine); free(lab); return dcl_fail(DCL_ERR_NOMEM, "validation"); }
    for (int i = 0; i < per; i++) mine[i] = NAN;
    dcl_status s = n > 0 ? dcl_score_cache(d, c, vidx + lo, n, batch, t->size, t->workers, ecfg->mean, ecfg->std, mine, r == 0)
                         : DCL_OK;
    s = dcl_dist_agree(dist, s, "validation");
    if (!s) s = dcl_dist_allgather(dist, prob, mine, (size_t)per * sizeof(float));
    double m[2] = {NAN, NAN};
    if (!s && r == 0) {
        int k = 0;
        for (int i = 0; i < nv; i++) {
            if (isnan(prob[i])) continue; /* unreadable image, logged by the loader */
            prob[k] = prob[i];
            lab[k++] = c->e[vidx[i]].label;
        }
        dcl_metrics mt;
        dcl_status ms = dcl_metrics_compute_f32(&mt, prob, lab, k, 0.5);
        if (!ms) { m[0] = mt.auc; m[1] = mt.acc; }
        else dcl_log(1, "validation: %s", dcl_last_error());
    }
    if (!s) s = dcl_dist_bcast(dist, m, sizeof m, 0);
    *auc = m[0];
    *acc = m[1];
    free(prob);
    free(mine);
    free(lab);
    return s;
}

static void progress_bar(int epoch, int epochs, int64_t i, int64_t n, double rate, double loss, double eta) {
    if (!isatty(2)) return;
    int w = 24, f = n ? (int)(w * i / n) : w;
    char bar[32];
    for (int j = 0; j < w; j++) bar[j] = j < f ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  %.2f img/s  loss %.4f  ETA %02d:%02d:%02d ", epoch + 1, epochs, bar,
            (long long)i, (long long)n, rate, loss, (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
}

/* Rank 0's training state to every rank: parameters and buffers of both
 * encoders, optimiser moments, queues, prototypes, counters and the loop
 * position.  After it every rank holds the same state (fresh or resumed). */
static dcl_status bcast_net(dcl_dist *dist, dcl_net *net) {
    dcl_backend *be = dcl_net_backend(net);
    const dcl_table *P = dcl_net_params(net), *B = dcl_net_buffers(net);
    DCL_TRY(dcl_dist_bcast_dev(dist, be, dcl_net_param_data(net), P->total, 0));
    DCL_TRY(dcl_dist_bcast_dev(dist, be, dcl_net_buffer_data(net), B->total, 0));
    /* num_batches_tracked counters live on the host side of the net */
    int nc = 0;
    for (int i = 0; i < B->n; i++) nc += (B->v[i].flags & DCL_PF_COUNTER) != 0;
    if (!nc) return DCL_OK;
    float *v = malloc(nc * sizeof(float));
    if (!v) return dcl_fail(DCL_ERR_NOMEM, "state broadcast");
    dcl_status s = DCL_OK;
    for (int i = 0, j = 0; i < B->n && !s; i++)
        if (B->v[i].flags & DCL_PF_COUNTER) s = dcl_net_get_tensor(net, B->v[i].name, &v[j++], 1);
    if (!s) s = dcl_dist_bcast(dist, v, nc * sizeof(float), 0);
    for (int i = 0, j = 0; i < B->n && !s; i++)
        if (B->v[i].flags & DCL_PF_COUNTER) s = dcl_net_set_tensor(net, B->v[i].name, &v[j++], 1);
    free(v);
    return s;
}

static dcl_status bcast_state(dcl_dist *dist, dcl_detector *d, dcl_optim *opt, dcl_train_state *ts) {
    if (dcl_dist_world(dist) == 1) return DCL_OK;
    DCL_TRY(dcl_dist_bcast(dist, ts, sizeof *ts, 0));
    DCL_TRY(bcast_net(dist, d->q->net));
    DCL_TRY(bcast_net(dist, d->k->net));
    DCL_TRY(dcl_dist_bcast_dev(dist, d->be, opt->m, opt->n, 0));
    if (opt->v) DCL_TRY(dcl_dist_bcast_dev(dist, d->be, opt->v, opt->n, 0));
    DCL_TRY(dcl_dist_bcast(dist, &opt->step, sizeof opt->step, 0));
    dcl_queue *qs[2] = {&d->mr, &d->mf};
    for (int i = 0; i < 2; i++) {
        int meta[2] = {qs[i]->count, qs[i]->ptr};
        DCL_TRY(dcl_dist_bcast(dist, qs[i]->data, (size_t)qs[i]->cap * qs[i]->dim * sizeof(float), 0));
        DCL_TRY(dcl_dist_bcast(dist, meta, sizeof meta, 0));
        qs[i]->count = meta[0];
        qs[i]->ptr = meta[1];
    }
    int set[2] = {d->protos.real_set, d->protos.fake_set};
    DCL_TRY(dcl_dist_bcast(dist, d->protos.real, d->protos.dim * sizeof(float), 0));
    DCL_TRY(dcl_dist_bcast(dist, d->protos.fake, d->protos.dim * sizeof(float), 0));
    DCL_TRY(dcl_dist_bcast(dist, set, sizeof set, 0));
    d->protos.real_set = set[0];
    d->protos.fake_set = set[1];
    return DCL_OK;
}

/* train.dist_check: every rank hashes its replicated state; rank 0 logs the
 * hashes (they must all be equal). */
static dcl_status dist_check(dcl_dist *dist, dcl_detector *d, dcl_optim *opt, FILE *log, int64_t step) {
    int R = dcl_dist_world(dist);
    uint64_t h = 0, *all = malloc(R * sizeof(uint64_t));
    if (!all) return dcl_fail(DCL_ERR_NOMEM, "state check");
    dcl_status s = dcl_detector_state_hash(d, opt, &h);
    s = dcl_dist_agree(dist, s, "state check");
    if (!s) s = dcl_dist_allgather(dist, all, &h, sizeof h);
    if (!s && log) {
        int equal = 1;
        fprintf(log, "{\"dist_check\": %lld, \"ranks\": %d, \"hashes\": [", (long long)step, R);
        for (int r = 0; r < R; r++) {
            fprintf(log, "%s\"%016llx\"", r ? ", " : "", (unsigned long long)all[r]);
            equal &= all[r] == all[0];
        }
        fprintf(log, "], \"equal\": %s}\n", equal ? "true" : "false");
        fflush(log);
        if (!equal) dcl_log(1, "distributed: the replicated training state differs between ranks at step %lld", (long long)step);
    }
    free(all);
    return s;
}

/* The stop request (Ctrl-C / SIGTERM) of any rank stops every rank at the
 * same step. */
static int agreed_stop(dcl_dist *dist, dcl_status *s) {
    int stop = g_stop ? 1 : 0;
    if (dcl_dist_world(dist) > 1 && !*s) *s = dcl_dist_allreduce_max_int(dist, &stop, 1);
    return stop;
}

static dcl_status train_run(const dcl_train_cfg *t, int resume, const char *config_text, dcl_train_result *res,
                            dcl_dist *dist) {
    memset(res, 0, sizeof *res);
    res->best_auc = -1;
    const int rank = dcl_dist_rank(dist), world = dcl_dist_world(dist), lead = rank == 0;
    if (t->batch % world)
        return dcl_fail(DCL_ERR_ARG, "train.batch %d cannot be split evenly over %d ranks: use a multiple of %d", t->batch,
                        world, world);
    const int Bl = t->batch / world; /* images per rank and step */
    char path[4096], lastp[4096], bestp[4096];
    snprintf(lastp, sizeof lastp, "%s/last.safetensors", t->out);
    snprintf(bestp, sizeof bestp, "%s/best.safetensors", t->out);
    dcl_status s = DCL_OK;
    if (lead) { /* the output directory belongs to rank 0 */
        if (dcl_mkdir_p(t->out)) s = dcl_fail(DCL_ERR_IO, "cannot create output directory %s: %s", t->out, strerror(errno));
        else if (!resume && access(lastp, F_OK) == 0)
            s = dcl_fail(DCL_ERR_ARG, "%s already holds a training run (last.safetensors); pass --resume to continue it or choose another train.out", t->out);
        else if (resume && access(lastp, F_OK) != 0)
            s = dcl_fail(DCL_ERR_NOTFOUND, "--resume: no checkpoint %s", lastp);
        else if (config_text) {
            snprintf(path, sizeof path, "%s/config.yaml", t->out);
            s = dcl_write_file_atomic(path, config_text, strlen(config_text));
        }
    }
    DCL_TRY(dcl_dist_agree(dist, s, "preparing the output directory"));
    if (t->threads > 0) dcl_set_num_threads(t->threads);

    dcl_cache *cache = NULL;
    int *tidx = NULL, *vidx = NULL, nt = 0, nv = 0;
    s = dcl_cache_open(&cache, t->cache);
    if (!s) s = dcl_cache_select(cache, t->train_split, &tidx, &nt);
    if (!s) s = dcl_cache_select(cache, t->val_split, &vidx, &nv);
    if (!s && nt == 0) s = dcl_fail(DCL_ERR_ARG, "cache %s has no images in split '%s'", t->cache, t->train_split);
    if (!s && nv == 0 && lead) dcl_log(1, "cache %s has no '%s' split: training without validation (best.safetensors is the last epoch)", t->cache, t->val_split);
    if (!s && t->max_val_images > 0 && nv > t->max_val_images) {
        /* a fixed, seeded, class-mixed subset */
        dcl_rng r;
        dcl_rng_seed(&r, t->seed ^ 0xabcdefULL);
        for (int i = nv - 1; i > 0; i--) { int j = (int)dcl_rng_below(&r, i + 1); int x = vidx[i]; vidx[i] = vidx[j]; vidx[j] = x; }
        nv = t->max_val_images;
    }

    dcl_backend *be = NULL;
    dcl_detector *d = NULL;
    dcl_optim *opt = NULL;
    dcl_loader *tl = NULL;
    FILE *log = NULL;
    dcl_effnet_cfg ecfg;
    char devspec[64];
    if (!s) s = dcl_effnet_config(&ecfg, t->arch);
    if (!s) s = dcl_dist_device_spec(dist, devspec, sizeof devspec, t->device);
    if (!s) {
        ecfg.drop_rate = t->drop_rate;
        ecfg.drop_path_rate = t->drop_path_rate;
        if (t->width > 0 || t->depth > 0)
            dcl_effnet_set_scale(&ecfg, t->width > 0 ? t->width : ecfg.width_mult, t->depth > 0 ? t->depth : ecfg.depth_mult);
        be = dcl_backend_create(devspec, t->threads);
        if (!be) s = DCL_ERR_UNSUPPORTED;
    }
    dcl_train_cfg t_resolved;
    if (!s) {
        t_resolved = *t;
        t_resolved.workers = dcl_loader_workers(t->workers, be->is_host, dcl_dist_local_size(dist));
        if (t->workers <= 0 && lead) dcl_log(2, "data.workers auto: %d decoding threads", t_resolved.workers);
        t = &t_resolved;
    }
    /* without the inter loss nothing reads the keys or the queues */
    dcl_method_cfg mcfg = t->method;
    mcfg.no_keys = !t->use_inter;
    if (!s) s = dcl_detector_create(&d, be, &ecfg, &mcfg, 1);
    dcl_rng rng;
    dcl_rng_seed(&rng, t->seed);
    if (!s) s = dcl_net_init_params(d->q->net, &rng);
    if (!s && t->pretrained[0]) {
        dcl_load_opts lo = {0, 0, "classifier."};
        /* ImageNet weights carry no embedding head */
        lo.allow_missing = 1;
        s = dcl_model_load(d->q, t->pretrained, &lo);
        if (!s && lead) dcl_log(2, "loaded pretrained weights from %s", t->pretrained);
    }
    if (!s) s = dcl_detector_sync_key(d);
    if (!s) s = dcl_detector_plan(d, Bl, t->size, t->size, DCL_PLAN_TRAIN);
    if (!s) s = dcl_optim_create(&opt, be, dcl_net_params(d->q->net)->total, &t->optim);
    dcl_train_state ts;
    memset(&ts, 0, sizeof ts);
    ts.best_auc = -1.0;
    ts.best_epoch = -1;
    if (!s && resume && lead) {
        s = dcl_checkpoint_load(lastp, d, opt, &ts);
        if (!s) dcl_log(2, "resuming %s at step %lld (epoch %d)", lastp, (long long)ts.step, ts.epoch + 1);
        if (!s && ts.has_rng) memcpy(rng.s, ts.rng, sizeof rng.s); /* exact continuation of dropout masks */
    }
    dcl_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.batch = t->batch;
    lc.size = t->size;
    lc.workers = t->workers;
    lc.prefetch = t->prefetch;
    lc.train = 1;
    lc.balance = t->balance;
    lc.two_views = 1;
    lc.seed = t->seed;
    memcpy(lc.mean, ecfg.mean, sizeof lc.mean);
    memcpy(lc.std, ecfg.std, sizeof lc.std);
    lc.views = t->views;
    lc.shard_rank = rank;
    lc.shard_count = world;
    if (!s) s = dcl_loader_create(&tl, cache, tidx, nt, &lc);
    if (!s && lead) {
        snprintf(path, sizeof path, "%s/log.jsonl", t->out);
        log = fopen(path, "a");
        if (!log) s = dcl_fail(DCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    uint8_t *cell = malloc((size_t)Bl * (d ? d->L : 1) + 1);
    if (!cell && !s) s = dcl_fail(DCL_ERR_NOMEM, "cell masks");
    s = dcl_dist_agree(dist, s, "setting up training");
    /* every rank starts from rank 0's state */
    if (!s && (world > 1 || t->method.dist.backend == DCL_DIST_NCCL)) {
        s = dcl_dist_attach(dist, be);
        if (!s) s = dcl_detector_set_dist(d, dist);
        if (!s) s = bcast_state(dist, d, opt, &ts);
        /* independent dropout / drop-path masks on each rank (a stream per
         * rank and starting step: a resumed run does not replay old masks) */
        if (world > 1)
            dcl_rng_seed(&rng, t->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1)) ^
                                   (0xd1b54a32d192ed03ULL * (uint64_t)(ts.step + 1)));
    }
    int64_t spe = 0;
    if (!s) {
        spe = t->steps_per_epoch > 0 ? t->steps_per_epoch : dcl_loader_batches_per_epoch(tl);
        s = dcl_loader_start(tl, ts.step);
    }
    dcl_sched sched = {t->schedule, t->optim.lr, t->min_lr, (int64_t)t->epochs * spe, (int64_t)t->step_epochs * spe,
                       t->gamma, (int64_t)t->lr_warmup_epochs * spe, 0.01f};
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    g_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (!s && lead) {
        dcl_log(2, "training %s on %d images (%d validation), %lld steps per epoch, batch %d at %dx%d, %s backend",
                t->arch, nt, nv, (long long)spe, t->batch, t->size, t->size, be->name);
        if (world > 1)
            dcl_log(2, "data-parallel over %d ranks (%s): %d images per rank and step, %s batch norm%s", world,
                    dcl_dist_backend_name(dist), Bl, t->method.dist.sync_bn ? "synchronised" : "per-rank",
                    t->method.dist.shuffle_bn && !t->method.dist.sync_bn ? ", shuffled key batch" : "");
    }
    int H2 = 0, W2 = 0;
    if (!s) {
        int shp[4];
        dcl_net_value_shape(d->q->net, d->q->features, shp);
        H2 = shp[2];
        W2 = shp[3];
    }
    double ema_loss = NAN;
    int stop = 0;
    for (int epoch = ts.epoch; !s && epoch < t->epochs && !stop; epoch++) {
        dcl_step_weights w = dcl_train_weights(t, epoch);
        double t0 = dcl_now(), wait = 0, busy = 0;   /* seconds waiting for batches / in the steps */
        int64_t first = ts.step - (int64_t)epoch * spe;
        for (int64_t i = first; i < spe && !s && !stop; i++) {
            dcl_batch *b = NULL;
            double tw = dcl_now();
            s = dcl_loader_next(tl, &b);
            wait += dcl_now() - tw;
            if (s) break;
            dcl_cell_masks(cell, b->mask, Bl, t->size, t->size, H2, W2, t->method.pix_thr, t->method.cell_thr);
            dcl_step_stats st;
            float lr = dcl_sched_lr(&sched, ts.step);
            double tb = dcl_now();
            s = dcl_detector_step(d, b->v1, b->v2, b->label, cell, w, opt, lr, &rng, &st);
            busy += dcl_now() - tb;
            if (s) break;
            ts.step++;
            res->last_loss = st.loss;
            ema_loss = isnan(ema_loss) ? st.loss : 0.9 * ema_loss + 0.1 * st.loss;
            double el = dcl_now() - t0, rate = (i - first + 1) * t->batch / (el > 0 ? el : 1e-9);
            double eta = (double)(spe - i - 1) * t->batch / rate + (double)(t->epochs - epoch - 1) * spe * t->batch / rate;
            if (lead) progress_bar(epoch, t->epochs, i + 1, spe, rate, ema_loss, eta);
            if (log && t->log_every > 0 && ts.step % t->log_every == 0)
                fprintf(log, "{\"step\": %lld, \"epoch\": %d, \"lr\": %.6g, \"loss\": %.6g, \"ce\": %.6g, \"inter\": %.6g, "
                             "\"intra\": %.6g, \"intra_real\": %.6g, \"intra_fake\": %.6g, \"w_ce\": %g, \"w_inter\": %g, "
                             "\"w_intra\": %g, \"queue_real\": %d, \"queue_fake\": %d, \"img_s\": %.3f, "
                             "\"data_wait\": %.4f, \"step_time\": %.4f",
                        (long long)ts.step, epoch, lr, st.loss, st.ce, st.inter, st.intra, st.intra_real, st.intra_fake,
                        w.ce, w.inter, w.intra, d->mr.count, d->mf.count, rate, el > 0 ? wait / el : 0.0,
                        el > 0 ? busy / el : 0.0),
                    fprintf(log, world > 1 ? ", \"ranks\": %d}\n" : "}\n", world), fflush(log);
            if (t->checkpoint_every > 0 && ts.step % t->checkpoint_every == 0) {
                ts.epoch = epoch;
                if (lead) s = (memcpy(ts.rng, rng.s, sizeof ts.rng), ts.has_rng = 1, dcl_checkpoint_save(lastp, d, opt, &ts, config_text));
                if (!s && t->method.dist.check) s = dist_check(dist, d, opt, log, ts.step);
            }
            stop = agreed_stop(dist, &s);
        }
        if (lead && isatty(2)) fprintf(stderr, "\n");
        if (s || stop) { ts.epoch = epoch; break; }
        const double train_s = dcl_now() - t0;
        /* a GPU waiting for the loader: say so once per epoch */
        if (lead && train_s > 10 && wait > 0.2 * train_s)
            dcl_log(1, "epoch %d: %.0f%% of the training time went to waiting for batches (data.workers %d): "
                       "raise data.workers if cores are free, or keep the cache on a faster disk",
                    epoch + 1, 100 * wait / train_s, t->workers);
        /* end of epoch: validation, best model, checkpoint */
        double auc, acc;
        s = validate(d, t, Bl, dist, cache, vidx, nv, &ecfg, &auc, &acc);
        if (s) break;
        s = dcl_detector_plan(d, Bl, t->size, t->size, DCL_PLAN_TRAIN);
        if (s) break;
        int improved = nv == 0 || (!isnan(auc) && auc > ts.best_auc);
        if (improved) {
            ts.best_auc = isnan(auc) ? ts.best_auc : auc;
            ts.best_epoch = epoch;
            char ep[16], au[32];
            snprintf(ep, sizeof ep, "%d", epoch + 1);
            snprintf(au, sizeof au, "%.6f", auc);
            const char *kv[] = {"epoch", ep, "val_auc", au, "size", NULL};
            char sz[16];
            snprintf(sz, sizeof sz, "%d", t->size);
            kv[5] = sz;
            if (lead) s = dcl_detector_save_model(bestp, d, 3, kv);
            if (s) break;
        }
        if (log) {
            fprintf(log, "{\"epoch_end\": %d, \"step\": %lld, \"val_auc\": %.6g, \"val_acc\": %.6g, \"best_auc\": %.6g, "
                         "\"best_epoch\": %d, \"seconds\": %.1f, \"train_seconds\": %.1f, \"data_wait_seconds\": %.1f, "
                         "\"loader_errors\": %d}\n",
                    epoch + 1, (long long)ts.step, auc, acc, ts.best_auc, ts.best_epoch + 1, dcl_now() - t0, train_s, wait,
                    dcl_loader_errors(tl));
            fflush(log);
        }
        if (lead)
            dcl_log(2, "epoch %d/%d: loss %.4f, validation AUC %.4f (best %.4f, epoch %d)", epoch + 1, t->epochs, ema_loss, auc,
                    ts.best_auc, ts.best_epoch + 1);
        ts.epoch = epoch + 1;
        if (lead) s = (memcpy(ts.rng, rng.s, sizeof ts.rng), ts.has_rng = 1, dcl_checkpoint_save(lastp, d, opt, &ts, config_text));
        res->epochs_done = epoch + 1;
        if (!s) stop = agreed_stop(dist, &s);
    }
    if (!s && t->method.dist.check && d && opt) s = dist_check(dist, d, opt, log, ts.step);
    if (stop && d && opt) {
        /* Ctrl-C / SIGTERM: keep the exact state */
        dcl_status s2 = lead ? (memcpy(ts.rng, rng.s, sizeof ts.rng), ts.has_rng = 1, dcl_checkpoint_save(lastp, d, opt, &ts, config_text)) : DCL_OK;
        if (!s) s = s2;
        res->interrupted = 1;
        if (lead) dcl_log(2, "interrupted at step %lld: state saved to %s (continue with --resume)", (long long)ts.step, lastp);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    res->steps = ts.step;
    res->best_auc = ts.best_auc;
    res->best_epoch = ts.best_epoch;
    if (log) fclose(log);
    free(cell);
    dcl_loader_free(tl);
    dcl_optim_free(opt);
    dcl_detector_free(d);
    dcl_backend_destroy(be);
    free(tidx);
    free(vidx);
    dcl_cache_free(cache);
    return s;
}

dcl_status dcl_train(const dcl_train_cfg *t, int resume, const char *config_text, dcl_train_result *res) {
    memset(res, 0, sizeof *res);
    res->best_auc = -1;
    dcl_dist *dist = NULL;
    dcl_dist_opts o = {t->method.dist.timeout, (dcl_dist_kind)t->method.dist.backend};
    DCL_TRY(dcl_dist_init(&dist, &o));
    dcl_status s = train_run(t, resume, config_text, res, dist);
    dcl_dist_free(dist, s);
    return s;
}
