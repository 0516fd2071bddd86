/* dcl eval and the evaluation protocols:
 *  (a) model files and training checkpoints reopen (dcl/modelfile.h) into a
 *      detector that predicts exactly what the saved one did; truncated,
 *      garbage and mismatched files give clear errors;
 *  (b) `dcl eval` on a small synthetic cache with a model trained for one
 *      epoch: one scores.csv row per image, scores equal to the detector's,
 *      metrics.json equal to dcl_metrics of scores.csv;
 *  (c) the table builder on fixed score files reproduces the tables that
 *      tests/fixtures/protocol/make_fixtures.py computed with scikit-learn,
 *      "-" for runs without scores;
 *  (d) a protocol with two tiny runs on the synthetic cache runs end to end
 *      (train, score, tabulate) and a second run reuses everything. */
#define _GNU_SOURCE
#include "check.h"
#include "synthcache.h"
#include "backend/backend.h"
#include "dcl/modelfile.h"
#include "dcl/protocol.h"
#include "dcl/trainer.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/protocol/"

static char g_dcl[4096];

static void find_dcl(void) {
    ssize_t nl = readlink("/proc/self/exe", g_dcl, sizeof g_dcl - 16);
    g_dcl[nl > 0 ? nl : 0] = 0;
    char *slash = strrchr(g_dcl, '/');
    if (slash) { *slash = 0; slash = strrchr(g_dcl, '/'); }
    if (slash) strcpy(slash, "/dcl");
}

static char *slurp(const char *path) {
    void *buf = NULL;
    size_t len = 0;
    if (dcl_read_file(&buf, &len, path, 0)) return NULL;
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

/* ------------------------------------------------------------------ (a) */

static dcl_detector *tiny_detector(dcl_backend *be, int with_key, int softmax) {
    dcl_effnet_cfg e;
    dcl_effnet_config(&e, "efficientnet_b0");
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_method_cfg mc = dcl_method_defaults();
    mc.queue_size = 16;
    mc.softmax_head = softmax;
    dcl_detector *d = NULL;
    if (dcl_detector_create(&d, be, &e, &mc, with_key)) return NULL;
    dcl_rng r;
    dcl_rng_seed(&r, 42);
    if (dcl_net_init_params(d->q->net, &r) || dcl_detector_sync_key(d)) { dcl_detector_free(d); return NULL; }
    /* non-trivial BN statistics, so that buffers are checked too */
    const dcl_table *B = dcl_net_buffers(d->q->net);
    for (int i = 0; i < B->n; i++) {
        const dcl_named *n = &B->v[i];
        if (n->flags & DCL_PF_COUNTER) continue;
        float *h = malloc(n->numel * sizeof(float));
        int var = strstr(n->name, "running_var") != NULL;
        for (int64_t k = 0; k < n->numel; k++) h[k] = var ? 0.5f + (float)dcl_rng_uniform(&r) : 0.2f * (float)dcl_rng_normal(&r);
        dcl_net_set_tensor(d->q->net, n->name, h, n->numel);
        free(h);
    }
    return d;
}

static int predict(dcl_detector *d, const float *x, float *p, int B, int S) {
    if (dcl_detector_plan(d, B, S, S, DCL_PLAN_EVAL)) return -1;
    return dcl_detector_predict(d, x, p) ? -1 : 0;
}

static void test_modelfile(const char *dir) {
    dcl_backend *be = dcl_backend_create("cpu", 2);
    CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
    if (!be) return;
    enum { B = 3, S = 64 };
    float *x = malloc(sizeof(float) * B * S * S * 3), p0[B], p1[B], p2[B], p3[B];
    dcl_rng r;
    dcl_rng_seed(&r, 7);
    for (int i = 0; i < B * S * S * 3; i++) x[i] = (float)dcl_rng_normal(&r);

    dcl_detector *d = tiny_detector(be, 1, 0);
    CHECK(d != NULL, "tiny detector: %s", dcl_last_error());
    if (!d) { free(x); dcl_backend_destroy(be); return; }
    CHECK_OK(predict(d, x, p0, B, S));
    char model[512], ck[512], ckc[512], bad[512];
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(ck, sizeof ck, "%s/last.safetensors", dir);
    snprintf(ckc, sizeof ckc, "%s/last_cfg.safetensors", dir);
    const char *kv[] = {"size", "64", "epoch", "3", "val_auc", "0.875"};
    CHECK_OK(dcl_detector_save_model(model, d, 3, kv));
    /* a full training state: key encoder, optimiser moments, queues */
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    dcl_optim *opt = NULL;
    CHECK_OK(dcl_optim_create(&opt, be, dcl_net_params(d->q->net)->total, &oc));
    CHECK_OK(dcl_detector_plan(d, 2, S, S, DCL_PLAN_TRAIN));
    dcl_train_state ts = {.step = 12, .epoch = 2, .best_auc = 0.8, .best_epoch = 1};
    CHECK_OK(dcl_checkpoint_save(ck, d, opt, &ts, NULL));
    const char *cfg = "model:\n  arch: efficientnet_b0\n  width: 0.25\n  depth: 0.34\n  size: 64\n";
    CHECK_OK(dcl_checkpoint_save(ckc, d, opt, &ts, cfg));
    dcl_optim_free(opt);

    /* model file: metadata */
    dcl_detector *m = NULL;
    dcl_model_info info;
    CHECK_OK(dcl_detector_open_model(&m, be, model, &info));
    if (m) {
        CHECK(!strcmp(info.arch, "efficientnet_b0") && info.width == 0.25f && info.depth == 0.34f && info.size == 64 &&
              info.epoch == 3 && fabs(info.val_auc - 0.875) < 1e-12 && !info.is_checkpoint && !info.softmax_head &&
              !strcmp(info.scale_from, "metadata"),
              "model info: %s w %g d %g size %d epoch %d auc %g ckpt %d from %s", info.arch, info.width, info.depth,
              info.size, info.epoch, info.val_auc, info.is_checkpoint, info.scale_from);
        CHECK(m->k == NULL, "an inference detector has no key encoder");
        int64_t np = 0;
        for (int i = 0; i < dcl_net_params(d->q->net)->n; i++) np += dcl_net_params(d->q->net)->v[i].numel;
        CHECK(info.params == np, "params %lld, the network has %lld", (long long)info.params, (long long)np);
        CHECK_OK(predict(m, x, p1, B, S));
        CHECK_CLOSE("model file predictions", p1, p0, B, 1e-6, 1e-5);
        dcl_detector_free(m);
    }
    /* checkpoint without a config: width/depth from the tensor shapes */
    CHECK_OK(dcl_detector_open_model(&m, be, ck, &info));
    if (m) {
        CHECK(info.is_checkpoint && !strcmp(info.scale_from, "shapes") && info.size == 0, "checkpoint info: ckpt %d from %s size %d",
              info.is_checkpoint, info.scale_from, info.size);
        char desc[256];
        printf("checkpoint without config opens as: %s\n", dcl_model_info_str(&info, desc, sizeof desc));
        CHECK_OK(predict(m, x, p2, B, S));
        CHECK_CLOSE("checkpoint predictions", p2, p0, B, 1e-6, 1e-5);
        dcl_detector_free(m);
    }
    /* checkpoint with its run config */
    CHECK_OK(dcl_detector_open_model(&m, be, ckc, &info));
    if (m) {
        CHECK(info.is_checkpoint && !strcmp(info.scale_from, "config") && info.size == 64 && info.width == 0.25f &&
              info.depth == 0.34f, "checkpoint+config info: from %s size %d w %g d %g", info.scale_from, info.size, info.width, info.depth);
        CHECK_OK(predict(m, x, p3, B, S));
        CHECK_CLOSE("checkpoint (config) predictions", p3, p0, B, 1e-6, 1e-5);
        dcl_detector_free(m);
    }
    CHECK_OK(dcl_model_info_read(&info, model));
    CHECK(info.size == 64 && info.width == 0.25f, "info_read: size %d width %g", info.size, info.width);

    /* a softmax head is recognised from the classifier shape */
    dcl_detector *ds = tiny_detector(be, 0, 1);
    snprintf(bad, sizeof bad, "%s/softmax.safetensors", dir);
    const char *kv2[] = {"size", "64"};
    if (ds) CHECK_OK(dcl_detector_save_model(bad, ds, 1, kv2));
    if (ds && !dcl_detector_open_model(&m, be, bad, &info)) {
        CHECK(info.softmax_head == 1, "softmax head expected");
        CHECK_OK(predict(ds, x, p0, B, S));
        CHECK_OK(predict(m, x, p1, B, S));
        CHECK_CLOSE("softmax head predictions", p1, p0, B, 1e-6, 1e-5);
        dcl_detector_free(m);
    } else {
        CHECK(0, "softmax model: %s", dcl_last_error());
    }
    dcl_detector_free(ds);

    /* bad files */
    char *buf = slurp(model);
    struct stat st;
    stat(model, &st);
    snprintf(bad, sizeof bad, "%s/truncated.safetensors", dir);
    if (buf) write_bytes(bad, buf, (size_t)st.st_size / 2);
    dcl_status s = dcl_detector_open_model(&m, be, bad, &info);
    CHECK(s != DCL_OK && m == NULL && strstr(dcl_last_error(), "truncated.safetensors"), "truncated file: %s", dcl_last_error());
    printf("truncated: %s\n", dcl_last_error());
    snprintf(bad, sizeof bad, "%s/garbage.safetensors", dir);
    char junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(dcl_rng_u32(&r) & 0xff);
    write_bytes(bad, junk, sizeof junk);
    s = dcl_detector_open_model(&m, be, bad, &info);
    CHECK(s != DCL_OK && m == NULL && strstr(dcl_last_error(), "garbage.safetensors"), "garbage file: %s", dcl_last_error());
    printf("garbage: %s\n", dcl_last_error());
    snprintf(bad, sizeof bad, "%s/missing.safetensors", dir);
    s = dcl_detector_open_model(&m, be, bad, &info);
    CHECK(s != DCL_OK && m == NULL && strstr(dcl_last_error(), "missing.safetensors"), "missing file: %s", dcl_last_error());
    /* a safetensors file that is not a dcl model */
    dcl_st_writer *w = NULL;
    float one[4] = {1, 2, 3, 4};
    int64_t shp[1] = {4};
    snprintf(bad, sizeof bad, "%s/other.safetensors", dir);
    if (!dcl_st_writer_new(&w)) {
        dcl_st_writer_add_f32(w, "weight", DCL_F32, 1, shp, one);
        dcl_st_write_file(w, bad);
        dcl_st_writer_free(w);
    }
    s = dcl_detector_open_model(&m, be, bad, &info);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "arch"), "not a model: %s", dcl_last_error());
    /* metadata that does not match the tensors */
    snprintf(bad, sizeof bad, "%s/wrongwidth.safetensors", dir);
    const char *kv3[] = {"width", "0.5"};
    CHECK_OK(dcl_detector_save_model(bad, d, 1, kv3));
    s = dcl_detector_open_model(&m, be, bad, &info);
    CHECK(s == DCL_ERR_FORMAT && strstr(dcl_last_error(), "does not match") && strstr(dcl_last_error(), "expects"),
          "wrong width: %s", dcl_last_error());
    printf("wrong width: %s\n", dcl_last_error());
    free(buf);
    dcl_detector_free(d);
    free(x);
    dcl_backend_destroy(be);
}

/* ------------------------------------------------------------------ (b) */

#define TINY_CFG "model: {arch: efficientnet_b0, width: 0.25, depth: 0.34, size: 64, drop_rate: 0.0}\n" \
                 "train: {epochs: 1, batch: 8, steps_per_epoch: 4, lr: 1.0e-3, device: cpu, threads: 2, checkpoint_every: 0, log_every: 1, seed: 3}\n" \
                 "dcl: {queue_size: 32, warmup_epochs: 1}\n" \
                 "views: {patch: 0, srm: 0, frame_shift: 0, mixup: 0, flip: 0.5, crop: 0, jitter: 0, blur: 0, jpeg: 0}\n" \
                 "data: {workers: 2, prefetch: 2}\n"

static int train_tiny(const char *cache, const char *out) {
    dcl_config *c = NULL;
    if (dcl_config_parse(&c, TINY_CFG, strlen(TINY_CFG), "tiny")) return -1;
    char kv[4200];
    snprintf(kv, sizeof kv, "data.cache=%s", cache);
    dcl_status s = dcl_config_set_arg(c, kv);
    snprintf(kv, sizeof kv, "train.out=%s", out);
    if (!s) s = dcl_config_set_arg(c, kv);
    dcl_train_cfg t;
    if (!s) s = dcl_train_cfg_from_config(&t, c);
    dcl_buf dump = {0};
    if (!s) s = dcl_config_dump(&dump, c);
    dcl_train_result r;
    if (!s) s = dcl_train(&t, 0, dump.data, &r);
    dcl_buf_free(&dump);
    dcl_config_free(c);
    return s ? -1 : 0;
}

static double jnum(const cJSON *o, const char *path1, const char *key) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, path1);
    const cJSON *v = a ? cJSON_GetObjectItemCaseSensitive(a, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static void test_eval_cli(const char *dir, const char *cache) {
    char run[512], evald[512], cmd[9000];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(evald, sizeof evald, "%s/eval", dir);
    double t0 = dcl_now();
    CHECK(train_tiny(cache, run) == 0, "training the tiny model: %s", dcl_last_error());
    printf("trained the tiny model in %.1f s\n", dcl_now() - t0);
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/best.safetensors --data %s --split val --out %s --batch 5 --workers 2 --threads 2 > %s/eval.log 2>&1",
             g_dcl, run, cache, evald, dir);
    int rc = system(cmd);
    CHECK(rc == 0, "dcl eval exited with %d (see %s/eval.log)", rc, dir);

    /* reference: the same model scored in-process */
    dcl_cache *c = NULL;
    int *idx = NULL, n = 0;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (!c) return;
    CHECK_OK(dcl_cache_select(c, "val", &idx, &n));
    dcl_backend *be = dcl_backend_create("cpu", 2);
    dcl_detector *d = NULL;
    dcl_model_info info;
    char path[600];
    snprintf(path, sizeof path, "%s/best.safetensors", run);
    CHECK_OK(dcl_detector_open_model(&d, be, path, &info));
    float *prob = malloc(sizeof(float) * (n + 1));
    if (d) CHECK_OK(dcl_score_cache(d, c, idx, n, 8, info.size, 1, info.mean, info.std, prob, 0));
    CHECK(info.size == 64, "best.safetensors size %d", info.size);

    /* scores.csv: one row per image, same scores */
    snprintf(path, sizeof path, "%s/scores.csv", evald);
    dcl_csv csv;
    int rows = 0, bad = 0;
    double *sc = malloc(sizeof(double) * (n + 1));
    int *lab = malloc(sizeof(int) * (n + 1));
    int64_t *vid = malloc(sizeof(int64_t) * (n + 1));
    char (*vname)[64] = calloc(n + 1, 64);
    int nv = 0;
    if (!dcl_csv_open(&csv, path)) {
        CHECK_OK(dcl_csv_next(&csv));
        CHECK(csv.nfield == 8 && !strcmp(csv.field[0], "crop") && !strcmp(csv.field[1], "label") && !strcmp(csv.field[2], "score") &&
              !strcmp(csv.field[5], "video") && !strcmp(csv.field[7], "face"), "scores.csv header");
        while (!dcl_csv_next(&csv) && csv.nfield == 8) {
            if (rows >= n) { rows++; continue; }
            const dcl_cache_entry *e = &c->e[idx[rows]];
            bad += strcmp(csv.field[0], e->crop) != 0 || atoi(csv.field[1]) != e->label || strcmp(csv.field[5], e->video) != 0;
            sc[rows] = strtod(csv.field[2], NULL);
            lab[rows] = atoi(csv.field[1]);
            int k = 0;
            while (k < nv && strcmp(vname[k], csv.field[5])) k++;
            if (k == nv) snprintf(vname[nv++], 64, "%s", csv.field[5]);
            vid[rows] = k;
            if (fabs(sc[rows] - prob[rows]) > 1e-6) bad++;
            rows++;
        }
        dcl_csv_close(&csv);
    } else {
        CHECK(0, "cannot read %s: %s", path, dcl_last_error());
    }
    CHECK(rows == n && n > 0, "scores.csv has %d rows, the val split %d images", rows, n);
    CHECK(bad == 0, "%d scores.csv rows differ from the cache / the detector", bad);

    /* metrics.json == dcl_metrics of scores.csv */
    snprintf(path, sizeof path, "%s/metrics.json", evald);
    char *js = slurp(path);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    CHECK(o != NULL, "metrics.json does not parse");
    if (o && rows == n) {
        dcl_metrics mf, mv;
        CHECK_OK(dcl_metrics_compute(&mf, sc, lab, n, 0.5));
        CHECK_OK(dcl_metrics_video(&mv, sc, lab, vid, NULL, n, DCL_VIDEO_MEAN, 0.5));
        CHECK(same(jnum(o, "frame", "auc"), mf.auc) && same(jnum(o, "frame", "eer"), mf.eer) &&
              same(jnum(o, "frame", "acc"), mf.acc) && same(jnum(o, "frame", "ap"), mf.ap) && jnum(o, "frame", "n") == n,
              "frame metrics: json auc %.17g eer %.17g acc %.17g, computed %.17g %.17g %.17g", jnum(o, "frame", "auc"),
              jnum(o, "frame", "eer"), jnum(o, "frame", "acc"), mf.auc, mf.eer, mf.acc);
        CHECK(same(jnum(o, "video", "auc"), mv.auc) && same(jnum(o, "video", "eer"), mv.eer) && jnum(o, "video", "n") == nv,
              "video metrics: json auc %.17g n %g, computed %.17g n %d", jnum(o, "video", "auc"), jnum(o, "video", "n"), mv.auc, nv);
        const cJSON *pm = cJSON_GetObjectItemCaseSensitive(o, "per_method");
        const cJSON *bl = pm ? cJSON_GetObjectItemCaseSensitive(pm, "blend") : NULL;
        CHECK(bl && same(jnum(bl, "frame", "auc"), mf.auc) && same(jnum(bl, "video", "auc"), mv.auc),
              "per_method.blend (the only method) equals the overall metrics");
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(o, "images");
        CHECK(cJSON_IsNumber(im) && im->valuedouble == n, "images = %d", n);
        printf("dcl eval: frame AUC %.4f, video AUC %.4f on %d images\n", mf.auc, mv.auc, n);
    }
    cJSON_Delete(o);
    free(js);

    /* an unreadable crop is reported and left out */
    if (n > 2) {
        char crop[700];
        dcl_cache_path(c, c->e[idx[1]].crop, crop, sizeof crop);
        char *orig = slurp(crop);
        struct stat cst;
        stat(crop, &cst);
        write_bytes(crop, "not a png", 9);
        snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/best.safetensors --data %s --split val --out %s/eval_bad --threads 2 > %s/eval_bad.log 2>&1",
                 g_dcl, run, cache, dir, dir);
        rc = system(cmd);
        if (orig) write_bytes(crop, orig, (size_t)cst.st_size);
        free(orig);
        CHECK(rc == 0, "dcl eval with an unreadable crop exited with %d", rc);
        dcl_scores s2 = {0};
        snprintf(path, sizeof path, "%s/eval_bad/scores.csv", dir);
        CHECK_OK(dcl_scores_read_csv(&s2, path));
        int listed = 0;
        for (int64_t i = 0; i < s2.n; i++) listed += !strcmp(s2.r[i].crop, c->e[idx[1]].crop);
        CHECK(s2.n == n - 1 && listed == 0, "scores.csv: %lld rows (want %d), bad crop listed %d times", (long long)s2.n, n - 1, listed);
        dcl_scores_free(&s2);
        snprintf(path, sizeof path, "%s/eval_bad/unreadable.txt", dir);
        char *ul = slurp(path);
        CHECK(ul && strstr(ul, c->e[idx[1]].crop), "unreadable.txt names the crop: %s", ul ? ul : "(missing)");
        free(ul);
        snprintf(path, sizeof path, "%s/eval_bad/metrics.json", dir);
        char *mj = slurp(path);
        cJSON *mo = mj ? cJSON_Parse(mj) : NULL;
        const cJSON *un = mo ? cJSON_GetObjectItemCaseSensitive(mo, "unreadable") : NULL;
        CHECK(cJSON_IsNumber(un) && un->valuedouble == 1 && jnum(mo, "frame", "n") == n - 1, "metrics.json: unreadable 1, n %d", n - 1);
        cJSON_Delete(mo);
        free(mj);
    }

    /* the training checkpoint works as well; bad inputs fail with one line */
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/last.safetensors --data %s --split val --out %s/eval_last --threads 2 > %s/eval_last.log 2>&1",
             g_dcl, run, cache, dir, dir);
    CHECK(system(cmd) == 0, "dcl eval on last.safetensors failed (see %s/eval_last.log)", dir);
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/nothere.safetensors --data %s --out %s/x > %s/err.log 2>&1", g_dcl, run, cache, dir, dir);
    rc = system(cmd);
    snprintf(path, sizeof path, "%s/err.log", dir);
    char *err = slurp(path);
    CHECK(rc != 0 && err && strstr(err, "no images in split 'test'") != NULL, "missing test split: rc %d, %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/nothere.safetensors --data %s --split val --out %s/x > %s/err.log 2>&1", g_dcl, run, cache, dir, dir);
    rc = system(cmd);
    err = slurp(path);
    CHECK(rc != 0 && err && strstr(err, "nothere.safetensors") && strchr(err, '\n') == err + strlen(err) - 1,
          "missing model: rc %d, %s", rc, err ? err : "");
    free(err);

    free(vname);
    free(vid);
    free(lab);
    free(sc);
    free(prob);
    dcl_detector_free(d);
    if (be) dcl_backend_destroy(be);
    free(idx);
    dcl_cache_free(c);
}

/* ------------------------------------------------------------------ (c) */

static void check_text(const char *what, const char *got, const char *want_path) {
    char *want = slurp(want_path);
    CHECK(want != NULL, "cannot read %s", want_path);
    if (!want || !got) { free(want); return; }
    int ok = !strcmp(got, want);
    CHECK(ok, "%s differs from %s", what, want_path);
    if (!ok) {
        /* show the first differing line */
        const char *a = got, *b = want;
        int line = 1;
        while (*a && *a == *b) { if (*a == '\n') line++; a++; b++; }
        const char *la = a, *lb = b;
        while (la > got && la[-1] != '\n') la--;
        while (lb > want && lb[-1] != '\n') lb--;
        fprintf(stderr, "line %d:\n  got:  %.*s\n  want: %.*s\n", line, (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
    }
    free(want);
}

static void test_tables(const char *dir) {
    dcl_protocol *p = NULL;
    CHECK_OK(dcl_protocol_load(&p, FIX "mini.yaml", NULL, 0));
    if (!p) return;
    CHECK(p->nruns == 3 && p->ntests == 4 && p->nrows == 5 && p->nmetrics == 3 && p->ncols == 4, "mini.yaml parsed");
    CHECK(p->tests[2].nmethods == 1 && !strcmp(p->tests[2].methods[0], "F2F"), "comma-list methods");
    dcl_ptable *t = NULL;
    CHECK_OK(dcl_protocol_table(&t, p, FIX "scores"));
    if (t) {
        CHECK(t->nrows == 5 && t->ncols == 12, "table %dx%d", t->nrows, t->ncols);
        CHECK(!strcmp(t->cell[3 * 12 + 0], "-") && isnan(t->value[3 * 12]), "missing run gives '-'");
        CHECK(!strcmp(t->cell[1 * 12 + 5], "94.9") && t->value[1 * 12 + 5] == 94.9, "paper value kept as printed");
        dcl_buf b = {0};
        CHECK_OK(dcl_ptable_csv(&b, t));
        check_text("table.csv (frame level)", b.data, FIX "expected_frame.csv");
        dcl_buf_free(&b);
        CHECK_OK(dcl_ptable_markdown(&b, t));
        check_text("table.md (frame level)", b.data, FIX "expected_frame.md");
        dcl_buf_free(&b);
        CHECK_OK(dcl_ptable_json(&b, t));
        cJSON *o = b.data ? cJSON_Parse(b.data) : NULL;
        CHECK(o != NULL, "table.json does not parse");
        const cJSON *rows = o ? cJSON_GetObjectItemCaseSensitive(o, "rows") : NULL;
        const cJSON *r2 = rows ? cJSON_GetArrayItem(rows, 2) : NULL;
        const cJSON *cells = r2 ? cJSON_GetObjectItemCaseSensitive(r2, "cells") : NULL;
        const cJSON *c0 = cells ? cJSON_GetArrayItem(cells, 0) : NULL;
        const cJSON *txt = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "text") : NULL;
        CHECK(cJSON_IsString(txt) && !strcmp(txt->valuestring, t->cell[2 * 12]), "table.json row 2 cell 0");
        const cJSON *mt = r2 ? cJSON_GetObjectItemCaseSensitive(r2, "metrics") : NULL;
        const cJSON *mff = mt ? cJSON_GetObjectItemCaseSensitive(mt, "ff") : NULL;
        CHECK(mff && fabs(jnum(mff, "frame", "auc") * 100 - t->value[2 * 12]) < 1e-9, "table.json metrics of run dcl on ff");
        cJSON_Delete(o);
        dcl_buf_free(&b);
        CHECK_OK(dcl_ptable_write(t, dir));
        char path[600];
        snprintf(path, sizeof path, "%s/table.csv", dir);
        char *csv = slurp(path);
        check_text("written table.csv", csv, FIX "expected_frame.csv");
        free(csv);
    }
    dcl_ptable_free(t);
    dcl_protocol_free(p);

    /* the same at video level, set from the command line */
    const char *sets[] = {"table.level=video"};
    CHECK_OK(dcl_protocol_load(&p, FIX "mini.yaml", sets, 1));
    if (p) {
        CHECK_OK(dcl_protocol_table(&t, p, FIX "scores"));
        dcl_buf b = {0};
        if (t) CHECK_OK(dcl_ptable_csv(&b, t));
        check_text("table.csv (video level)", b.data, FIX "expected_video.csv");
        dcl_buf_free(&b);
        dcl_ptable_free(t);
        dcl_protocol_free(p);
    }

    /* protocol file errors name the file and the problem */
    const char *bad[][2] = {
        {"table.columns=[ff, nope]", "'nope' is not a test set"},
        {"table.metrics=[AUC, F1]", "'F1' is not one of"},
        {"runs.dcl.cache=elsewhere", "unknown cache 'elsewhere'"},
        {"table.rows.0.paper=[1, 2]", "2 paper values"},
        {"table.rows.2.run=ghost", "unknown run 'ghost'"},
        {"table.rows.0.paper=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, x]", "'x' is neither"},
        {"runs.dcl.colour=red", "colour"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[1] = {bad[i][0]};
        dcl_status s = dcl_protocol_load(&p, FIX "mini.yaml", one, 1);
        CHECK(s != DCL_OK && p == NULL && strstr(dcl_last_error(), bad[i][1]) && strstr(dcl_last_error(), "mini.yaml"),
              "--set %s: %s", bad[i][0], dcl_last_error());
    }
    /* an unset cache is named with the --set that fixes it */
    CHECK_OK(dcl_protocol_load(&p, FIX "mini.yaml", NULL, 0));
    if (p) {
        dcl_protocol_opts o;
        dcl_protocol_opts_default(&o);
        char outset[600];
        snprintf(outset, sizeof outset, "%s/unset", dir);
        free(p->out);
        p->out = strdup(outset);
        free(p->runs[0].out);
        p->runs[0].out = strdup(outset);
        o.runs = "dcl";
        dcl_status s = dcl_protocol_execute(p, &o);
        CHECK(s != DCL_OK && strstr(dcl_last_error(), "--set caches.ffpp="), "unset cache: %s", dcl_last_error());
        dcl_protocol_free(p);
    }
}

/* ------------------------------------------------------------------ (d) */

static void test_protocol_run(const char *dir, const char *cache) {
    char proto[600], out[600], cmd[9000], path[700];
    snprintf(proto, sizeof proto, "%s/proto.yaml", dir);
    snprintf(out, sizeof out, "%s/proto_out", dir);
    FILE *f = fopen(proto, "w");
    if (!f) { CHECK(0, "cannot write %s", proto); return; }
    fprintf(f,
            "name: tiny\n"
            "title: \"Tiny protocol\"\n"
            "out: %s\n"
            "caches:\n  synth: \"\"\n"
            "training:\n"
            "  set:\n"
            "    model: {arch: efficientnet_b0, width: 0.25, depth: 0.34, size: 64, drop_rate: 0.0}\n"
            "    train.batch: 8\n    train.lr: 1.0e-3\n    train.seed: 5\n    train.threads: 2\n    train.checkpoint_every: 0\n"
            "    dcl: {queue_size: 32, warmup_epochs: 1}\n"
            "    views: {patch: 0, srm: 0, frame_shift: 0, mixup: 0, crop: 0, jitter: 0, blur: 0, jpeg: 0}\n"
            "runs:\n"
            "  dcl: {cache: synth}\n"
            "  ce: {cache: synth, methods: [blend], set: {dcl.inter: false, dcl.intra: false, dcl.views: false}}\n"
            "tests:\n"
            "  val: {label: Synth-val, cache: synth, split: val}\n"
            "  blend: {label: Blend, cache: synth, split: val, methods: [blend]}\n"
            "table:\n"
            "  metrics: [AUC, EER]\n"
            "  columns: [val, blend]\n"
            "  rows:\n"
            "    - {name: Ours, paper: [82.30, 26.53, \"-\", \"-\"], bold: true}\n"
            "    - {name: dcl (this run), run: dcl, bold: true}\n"
            "    - {name: CE baseline (this run), run: ce}\n",
            out);
    fclose(f);
    double t0 = dcl_now();
    snprintf(cmd, sizeof cmd, "%s eval --protocol %s --set caches.synth=%s --epochs 1 --steps 3 --batch 8 --threads 2 > %s/proto.log 2>&1",
             g_dcl, proto, cache, dir);
    int rc = system(cmd);
    CHECK(rc == 0, "dcl eval --protocol exited with %d (see %s/proto.log)", rc, dir);
    printf("protocol with 2 runs: %.1f s\n", dcl_now() - t0);
    snprintf(path, sizeof path, "%s/table.md", out);
    char *md = slurp(path);
    CHECK(md && strstr(md, "| **dcl (this run)** | **") && strstr(md, "| **Ours** | **82.30** | **26.53** | - | - |") &&
          strstr(md, "| CE baseline (this run) | "), "table.md: %s", md ? md : "(missing)");
    /* every cell of the run rows is a number */
    const char *row = md ? strstr(md, "| CE baseline (this run) | ") : NULL;
    double v[4];
    CHECK(row && sscanf(row, "| CE baseline (this run) | %lf | %lf | %lf | %lf |", &v[0], &v[1], &v[2], &v[3]) == 4 &&
          v[0] >= 0 && v[0] <= 100, "CE baseline row has 4 numbers");
    free(md);
    snprintf(path, sizeof path, "%s/runs/dcl/best.safetensors", out);
    CHECK(access(path, F_OK) == 0, "run dcl trained into %s", path);
    snprintf(path, sizeof path, "%s/scores/ce/synth.val.csv", out);
    CHECK(access(path, F_OK) == 0, "scores of run ce in %s", path);
    snprintf(path, sizeof path, "%s/caches/synth-blend/index.jsonl", out);
    CHECK(access(path, F_OK) == 0, "training view of run ce in %s", path);
    snprintf(path, sizeof path, "%s/table.json", out);
    char *js = slurp(path);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    CHECK(o != NULL, "table.json parses");
    cJSON_Delete(o);
    free(js);

    /* a second run trains nothing and reuses the scores */
    struct stat a, b;
    snprintf(path, sizeof path, "%s/scores/dcl/synth.val.csv", out);
    stat(path, &a);
    t0 = dcl_now();
    snprintf(cmd, sizeof cmd, "%s eval --protocol %s --set caches.synth=%s --epochs 1 --steps 3 --threads 2 > %s/proto2.log 2>&1",
             g_dcl, proto, cache, dir);
    rc = system(cmd);
    stat(path, &b);
    CHECK(rc == 0 && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec,
          "second protocol run: rc %d, scores rewritten", rc);
    printf("protocol again (nothing to do): %.1f s\n", dcl_now() - t0);
    /* the dry run names each run's state */
    snprintf(cmd, sizeof cmd, "%s eval --protocol %s --set caches.synth=%s --epochs 2 --dry-run > %s/dry.log 2>&1", g_dcl, proto, cache, dir);
    rc = system(cmd);
    snprintf(path, sizeof path, "%s/dry.log", dir);
    char *dry = slurp(path);
    CHECK(rc == 0 && dry && strstr(dry, "run dcl") && strstr(dry, "to resume"), "dry run: %s", dry ? dry : "");
    free(dry);
}

int main(void) {
    find_dcl();
    char dir[] = "/tmp/dcl_eval_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cache[256];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    double t0 = dcl_now();
    test_modelfile(dir);
    printf("(a) model files: %.1f s\n", dcl_now() - t0);
    t0 = dcl_now();
    test_tables(dir);
    printf("(c) tables: %.1f s\n", dcl_now() - t0);
    CHECK(access(g_dcl, X_OK) == 0, "dcl binary %s not found", g_dcl);
    CHECK(make_synth_cache(cache, 8, 3, 64, 17) == 0, "synthetic cache: %s", dcl_last_error());
    t0 = dcl_now();
    test_eval_cli(dir, cache);
    printf("(b) dcl eval: %.1f s\n", dcl_now() - t0);
    t0 = dcl_now();
    test_protocol_run(dir, cache);
    printf("(d) protocol: %.1f s\n", dcl_now() - t0);
    if (!check_failed_) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    CHECK_DONE();
}
