/* dcl export and dcl detect end to end on a narrow EfficientNet-b0 detector
 * (the weights of tests/fixtures/model, whose forward pass test_model checks
 * against PyTorch) and a real face photograph (python3-skimage's astronaut):
 *  - the exported file carries its settings and the MTCNN weights;
 *  - the face is found where facenet-pytorch finds it (tests/fixtures/face);
 *  - its P(fake) is the softmax of the plain network's logits on the 1.3x
 *    crop of that box;
 *  - a video written from the photo: frames sampled evenly, the video's
 *    score is the mean (and max) of its frames' scores;
 *  - a corrupt input gives exit status 1 and one message, the others are
 *    still scored; CSV, table, stdin and --annotate outputs. */
#define _GNU_SOURCE
#include "check.h"
#include "dcl/deploy.h"
#include "dcl/model.h"
#include "dcl/trainer.h"
#include "dcl/video.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ASTRONAUT "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
#define TINY "tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors"
#define SIZE 64

static char g_dcl[4096], g_dir[256];

/* --------------------------------------------------------------- helpers -- */

static char *slurp(const char *path, size_t *len) {
    void *p = NULL;
    size_t n = 0;
    if (dcl_read_file(&p, &n, path, 0)) return NULL;
    if (len) *len = n;
    return p;
}

/* Runs `dcl ARGS` (through sh); stdout and stderr into malloc'ed strings. */
static int run(const char *args, char **out, char **err) {
    char cmd[16384], of[512], ef[512];
    snprintf(of, sizeof of, "%s/stdout.txt", g_dir);
    snprintf(ef, sizeof ef, "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", g_dcl, args, of, ef);
    double t0 = dcl_now();
    int rc = system(cmd);
    if (getenv("DCL_TEST_VERBOSE")) fprintf(stderr, "[%.2f s] dcl %.80s\n", dcl_now() - t0, args);
    *out = slurp(of, NULL);
    *err = slurp(ef, NULL);
    if (!*out) *out = strdup("");
    if (!*err) *err = strdup("");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* --------------------------------------------------------------- fixtures -- */

/* The narrow b0 as a softmax-head DCL detector (embedding conv random),
 * saved the way the trainer saves best.safetensors. */
static void make_checkpoint(const char *path, const char *last, dcl_backend *be) {
    dcl_effnet_cfg ec;
    CHECK_OK(dcl_effnet_config(&ec, "efficientnet_b0"));
    dcl_effnet_set_scale(&ec, 0.25f, 0.34f);
    dcl_method_cfg mc = dcl_method_defaults();
    mc.softmax_head = 1;
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, be, &ec, &mc, 1));
    if (!d) return;
    dcl_rng rng;
    dcl_rng_seed(&rng, 7);
    CHECK_OK(dcl_net_init_params(d->q->net, &rng));
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open(&st, TINY));
    const dcl_table *tabs[2] = {dcl_net_params(d->q->net), dcl_net_buffers(d->q->net)};
    int loaded = 0;
    for (int t = 0; t < 2 && st; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            if (!dcl_st_find(st, e->name)) continue; /* the embedding head */
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            CHECK_OK(dcl_st_read_f32(st, e->name, h, e->ndim, e->ndim ? e->shape : NULL));
            CHECK_OK(dcl_net_set_tensor(d->q->net, e->name, h, e->numel));
            free(h);
            loaded++;
        }
    CHECK(loaded == dcl_st_count(st), "loaded %d of the %d fixture tensors", loaded, st ? dcl_st_count(st) : -1);
    dcl_st_close(st);
    const char *kv[] = {"size", "64", "epoch", "3", "val_auc", "0.75"};
    CHECK_OK(dcl_detector_save_model(path, d, 3, kv));
    /* the whole training state, as last.safetensors: the model keys only in its config */
    CHECK_OK(dcl_detector_sync_key(d));
    dcl_train_state ts;
    memset(&ts, 0, sizeof ts);
    ts.step = 120;
    ts.epoch = 3;
    ts.best_auc = 0.75;
    ts.best_epoch = 2;
    CHECK_OK(dcl_checkpoint_save(last, d, NULL, &ts,
                                 "model:\n  arch: efficientnet_b0\n  width: 0.25\n  depth: 0.34\n  size: 64\n  head: softmax\n"));
    dcl_detector_free(d);
}

/* P(fake) of the face in box b of img, computed with the plain network
 * (dcl_model on the fixture weights) on the 1.3x crop. */
static float reference_prob(dcl_backend *be, const dcl_image *img, const float b[4]) {
    dcl_effnet_cfg ec;
    CHECK_OK(dcl_effnet_config(&ec, "efficientnet_b0"));
    dcl_effnet_set_scale(&ec, 0.25f, 0.34f);
    ec.num_classes = 2;
    dcl_model *m = NULL;
    CHECK_OK(dcl_effnet_build(&m, be, &ec));
    if (!m) return NAN;
    CHECK_OK(dcl_model_load(m, TINY, NULL));
    CHECK_OK(dcl_net_plan(m->net, 1, SIZE, SIZE, DCL_PLAN_EVAL));
    dcl_crop_rect r;
    dcl_image crop = {0};
    CHECK_OK(dcl_face_crop_rect(&r, b[0], b[1], b[2], b[3], 1.3f));
    CHECK_OK(dcl_face_crop_apply(&crop, img, &r, SIZE));
    float *x = malloc(sizeof(float) * SIZE * SIZE * 3), logits[2] = {0, 0};
    dcl_image_to_tensor(x, &crop, ec.mean, ec.std);
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, NULL));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    free(x);
    dcl_image_free(&crop);
    dcl_model_free(m);
    double a = logits[0], c = logits[1], mx = a > c ? a : c;
    return (float)(exp(c - mx) / (exp(a - mx) + exp(c - mx)));
}

/* facenet-pytorch's box of the astronaut (min face 20) */
static int golden_box(float box[4]) {
    cJSON *doc = NULL;
    if (dcl_json_load(&doc, "tests/fixtures/face/mtcnn_goldens.json")) return -1;
    const cJSON *im;
    int ok = -1;
    cJSON_ArrayForEach(im, cJSON_GetObjectItemCaseSensitive(doc, "images")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(im, "name")->valuestring, "astronaut")) continue;
        const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(im, "faces"), 0);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(f, "box");
        for (int i = 0; i < 4 && b; i++) box[i] = (float)cJSON_GetArrayItem(b, i)->valuedouble;
        ok = b ? 0 : -1;
    }
    cJSON_Delete(doc);
    return ok;
}

/* 8 frames of 320x320 cut from the photo at moving offsets */
#define VFRAMES 8
static void make_video(const char *path, const dcl_image *photo) {
    dcl_image big = {0}, fr = {0};
    CHECK_OK(dcl_image_resize_bilinear(&big, 352, 352, photo));
    dcl_video_writer *w = NULL;
    dcl_video_writer_opts o = {0};
    o.quality = 18;
    o.bframes = 0;
    o.gop = 4;
    o.codec = NULL;
    CHECK_OK(dcl_video_writer_open(&w, path, 320, 320, 8.0, &o));
    for (int k = 0; k < VFRAMES && w; k++) {
        CHECK_OK(dcl_image_crop(&fr, &big, 4 * k, 3 * k, 320, 320));
        CHECK_OK(dcl_video_writer_write(w, &fr));
        dcl_image_free(&fr);
    }
    CHECK_OK(dcl_video_writer_close(w));
    dcl_image_free(&big);
}

/* ------------------------------------------------------------------ tests -- */

static void check_model_file(const char *model) {
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open(&st, model));
    if (!st) return;
    struct { const char *k, *v; } want[] = {
        {"dcl_format", DCL_DEPLOY_FORMAT}, {"arch", "efficientnet_b0"}, {"width", "0.25"}, {"depth", "0.340000004"},
        {"size", "64"}, {"head", "softmax"}, {"threshold", "0.5"}, {"face_min_size", "20"}, {"crop_scale", "1.29999995"},
        {"face_weights", "embedded"}, {"face_thresholds", "0.600000024,0.699999988,0.699999988"}, {"epoch", "3"}, {"val_auc", "0.75"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = dcl_st_meta(st, want[i].k);
        CHECK(v && !strcmp(v, want[i].v), "metadata %s = %s, want %s", want[i].k, v ? v : "(none)", want[i].v);
    }
    /* every MTCNN tensor, byte for byte */
    dcl_st *m = NULL;
    CHECK_OK(dcl_st_open(&m, "models/mtcnn.safetensors"));
    for (int i = 0; m && i < dcl_st_count(m); i++) {
        const dcl_st_entry *e = dcl_st_get(m, i);
        char name[256];
        snprintf(name, sizeof name, "mtcnn.%s", e->name);
        const dcl_st_entry *f = dcl_st_find(st, name);
        CHECK(f && f->nbytes == e->nbytes && !memcmp(f->data, e->data, e->nbytes), "embedded %s differs", name);
    }
    dcl_st_close(m);
    dcl_deploy_info info;
    CHECK_OK(dcl_deploy_info_read(&info, st));
    CHECK(info.size == SIZE && info.softmax_head == 1 && info.face_embedded && !info.is_checkpoint &&
              fabsf(info.width - 0.25f) < 1e-6f && info.face_min_size == 20 && info.epoch == 3,
          "info: size %d head %d embedded %d checkpoint %d width %g", info.size, info.softmax_head, info.face_embedded,
          info.is_checkpoint, info.width);
    dcl_st_close(st);
}

/* broken model files: clear errors, no crash */
static void check_bad_models(const char *model) {
    size_t len = 0;
    char *buf = slurp(model, &len);
    CHECK(buf != NULL, "cannot read %s", model);
    if (!buf) return;
    dcl_deploy *d = NULL;
    dcl_deploy_opts o;
    dcl_deploy_opts_default(&o);
    o.device = "ref";
    dcl_status s = dcl_deploy_open_mem(&d, buf, len / 2, "half.safetensors", &o);
    CHECK(s != DCL_OK && d == NULL && strstr(dcl_last_error(), "half.safetensors"), "truncated model: %s", dcl_last_error());
    /* metadata rewritten: bad width, unknown format, unknown arch */
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open_mem(&st, buf, len, "m"));
    struct { const char *k, *v, *want; } cases[] = {
        {"width", "abc", "metadata width"},
        {"width", "40", "metadata width"},
        {"dcl_format", "dcl-detector/9", "not supported"},
        {"arch", "resnet50", "unknown architecture"},
        {"threshold", "1.5", "metadata threshold"},
        {"size", "65536", "metadata size"},
        {"std", "1,0,1", "metadata std"},
        {"head", "svm", "metadata head"},
        {"depth", "1.0", "missing"}, /* another network than the tensors */
    };
    for (size_t c = 0; st && c < sizeof cases / sizeof cases[0]; c++) {
        dcl_st_writer *w = NULL;
        CHECK_OK(dcl_st_writer_new(&w));
        for (int i = 0; i < dcl_st_count(st); i++) {
            const dcl_st_entry *e = dcl_st_get(st, i);
            CHECK_OK(dcl_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data));
        }
        for (int i = 0; i < dcl_st_meta_count(st); i++) {
            const char *v, *k = dcl_st_meta_get(st, i, &v);
            CHECK_OK(dcl_st_writer_meta(w, k, v));
        }
        CHECK_OK(dcl_st_writer_meta(w, cases[c].k, cases[c].v));
        void *img = NULL;
        size_t n = 0;
        CHECK_OK(dcl_st_write_mem(w, &img, &n));
        dcl_st_writer_free(w);
        s = dcl_deploy_open_mem(&d, img, n, "bad.safetensors", &o);
        CHECK(s != DCL_OK && d == NULL && strstr(dcl_last_error(), cases[c].want) && !strchr(dcl_last_error(), '\n'),
              "%s=%s: %s", cases[c].k, cases[c].v, dcl_last_error());
        free(img);
    }
    dcl_st_close(st);
    free(buf);
}

static void check_sniff(void) {
    uint8_t mp4[16] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm'};
    uint8_t mkv[8] = {0x1a, 0x45, 0xdf, 0xa3};
    uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    uint8_t jpg[4] = {0xff, 0xd8, 0xff, 0xe0};
    CHECK(dcl_media_sniff(mp4, 16) == DCL_MEDIA_VIDEO, "mp4");
    CHECK(dcl_media_sniff(mkv, 8) == DCL_MEDIA_VIDEO, "mkv");
    CHECK(dcl_media_sniff(png, 8) == DCL_MEDIA_IMAGE, "png");
    CHECK(dcl_media_sniff(jpg, 4) == DCL_MEDIA_IMAGE, "jpeg");
    CHECK(dcl_media_sniff("#EXTM3U\n#EXT-X-VERSION:3\n", 25) == DCL_MEDIA_UNKNOWN, "an HLS playlist is not a video upload");
    CHECK(dcl_media_sniff("ffconcat version 1.0\n", 21) == DCL_MEDIA_UNKNOWN, "a concat list is not a video upload");
    CHECK(dcl_media_sniff("", 0) == DCL_MEDIA_UNKNOWN, "empty");
}

static void check_colours(void) {
    uint8_t a[3], b[3], c[3];
    dcl_prob_color(0, a);
    dcl_prob_color(0.5f, b);
    dcl_prob_color(1, c);
    CHECK(a[1] > 150 && a[0] < 30 && c[0] > 200 && c[1] < 30 && b[0] > 200 && b[1] > 200, "green -> yellow -> red");
}

int main(void) {
    struct stat sb;
    CHECK(stat(ASTRONAUT, &sb) == 0, "%s is missing: install python3-skimage", ASTRONAUT);
    ssize_t n = readlink("/proc/self/exe", g_dcl, sizeof g_dcl - 16);
    g_dcl[n > 0 ? n : 0] = 0;
    char *sl = strrchr(g_dcl, '/');
    if (sl) { *sl = 0; sl = strrchr(g_dcl, '/'); }
    if (sl) strcpy(sl, "/dcl");
    CHECK(access(g_dcl, X_OK) == 0, "no dcl binary at %s", g_dcl);
    snprintf(g_dir, sizeof g_dir, "/tmp/dcl_detect_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    check_sniff();
    check_colours();
    if (stat(ASTRONAUT, &sb) || access(g_dcl, X_OK)) CHECK_DONE();

    dcl_backend *be = dcl_backend_create("cpu", 2);
    CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
    char ckpt[512], last[512], model[512], model2[512], video[512], bad[512], ann[512], args[8192];
    snprintf(ckpt, sizeof ckpt, "%s/best.safetensors", g_dir);
    snprintf(last, sizeof last, "%s/last.safetensors", g_dir);
    snprintf(model2, sizeof model2, "%s/from_last.safetensors", g_dir);
    snprintf(model, sizeof model, "%s/model.safetensors", g_dir);
    snprintf(video, sizeof video, "%s/clip.mp4", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.mp4", g_dir);
    snprintf(ann, sizeof ann, "%s/annotated", g_dir);
    make_checkpoint(ckpt, last, be);

    /* export (the CLI), then its contents */
    char *out, *err;
    snprintf(args, sizeof args, "export --checkpoint %s --out %s --face-min 20", ckpt, model);
    int rc = run(args, &out, &err);
    CHECK(rc == 0 && strstr(out, "efficientnet_b0") && strstr(out, "embedded"), "dcl %s -> %d: %s%s", args, rc, out, err);
    free(out);
    free(err);
    check_model_file(model);
    check_bad_models(model);

    /* inputs: the photo, a video made from it, a corrupt file */
    dcl_image photo = {0};
    CHECK_OK(dcl_image_load(&photo, ASTRONAUT));
    make_video(video, &photo);
    FILE *f = fopen(bad, "wb");
    if (f) { fputs("this is not a video at all, just some text\n", f); fclose(f); }

    float gbox[4] = {0};
    CHECK(golden_box(gbox) == 0, "no astronaut in tests/fixtures/face/mtcnn_goldens.json");
    float pref = reference_prob(be, &photo, gbox);

    snprintf(args, sizeof args, "detect --model %s --frames 4 --threads 2 %s %s %s", model, ASTRONAUT, video, bad);
    rc = run(args, &out, &err);
    CHECK(rc == 1, "exit status %d with a corrupt input, want 1 (%s)", rc, err);
    CHECK(count_lines(err) == 1 && strstr(err, "dcl detect: ") && strstr(err, "bad.mp4: ") &&
              strstr(err, "not a readable video"), "one message for the corrupt input: %s", err);
    CHECK(count_lines(out) == 3, "three JSON lines: %s", out);
    char *line = out;
    cJSON *res[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && line && *line; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        res[i] = cJSON_Parse(line);
        CHECK(res[i] != NULL, "line %d is not JSON: %s", i, line);
        line = nl ? nl + 1 : NULL;
    }
    /* the photo: one face where facenet-pytorch puts it, P(fake) = the plain network's */
    float img_prob = NAN;
    if (res[0]) {
        const cJSON *faces = cJSON_GetObjectItemCaseSensitive(res[0], "faces");
        CHECK(cJSON_GetArraySize(faces) == 1, "astronaut: %d faces, want 1", cJSON_GetArraySize(faces));
        const cJSON *face = cJSON_GetArrayItem(faces, 0);
        const cJSON *box = cJSON_GetObjectItemCaseSensitive(face, "box");
        for (int i = 0; i < 4 && box; i++)
            CHECK(fabs(cJSON_GetArrayItem(box, i)->valuedouble - gbox[i]) < 0.06, "box[%d] %g, facenet-pytorch %g", i,
                  cJSON_GetArrayItem(box, i)->valuedouble, gbox[i]);
        CHECK(num(face, "score") > 0.99, "face score %g", num(face, "score"));
        img_prob = (float)num(face, "prob");
        CHECK(fabs(img_prob - pref) < 2e-4, "face P(fake) %.6f, the plain network on the crop %.6f", img_prob, pref);
        CHECK(fabs(num(res[0], "prob") - img_prob) < 1e-6 && fabs(num(res[0], "prob_max") - img_prob) < 1e-6, "image prob = its face's");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(res[0], "label");
        CHECK(cJSON_IsString(l) && !strcmp(l->valuestring, img_prob >= 0.5 ? "fake" : "real"), "label");
        CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(res[0], "path")->valuestring, ASTRONAUT), "path");
        CHECK(num(res[0], "width") == 512 && num(res[0], "height") == 512, "size");
        printf("  astronaut: face [%.1f %.1f %.1f %.1f], P(fake) %.6f (plain network %.6f)\n",
               cJSON_GetArrayItem(box, 0)->valuedouble, cJSON_GetArrayItem(box, 1)->valuedouble,
               cJSON_GetArrayItem(box, 2)->valuedouble, cJSON_GetArrayItem(box, 3)->valuedouble, img_prob, pref);
    }
    /* the video: frames 1, 3, 5, 7 of 8; mean and max of their scores */
    double vmean = NAN;
    if (res[1]) {
        CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(res[1], "type")->valuestring, "video"), "type");
        CHECK(num(res[1], "frames_total") == VFRAMES && num(res[1], "frames_sampled") == 4, "frames %g sampled %g",
              num(res[1], "frames_total"), num(res[1], "frames_sampled"));
        const cJSON *frames = cJSON_GetObjectItemCaseSensitive(res[1], "frames");
        CHECK(cJSON_GetArraySize(frames) == 4, "%d frames listed", cJSON_GetArraySize(frames));
        double sum = 0, mx = -1;
        int k = 0;
        const cJSON *fr;
        cJSON_ArrayForEach(fr, frames) {
            CHECK(num(fr, "index") == 2 * k + 1, "frame %d has index %g, want %d", k, num(fr, "index"), 2 * k + 1);
            CHECK(fabs(num(fr, "time") - (2 * k + 1) / 8.0) < 1e-3, "frame time %g", num(fr, "time"));
            const cJSON *ff = cJSON_GetObjectItemCaseSensitive(fr, "faces");
            CHECK(cJSON_GetArraySize(ff) == 1, "frame %d: %d faces", k, cJSON_GetArraySize(ff));
            double p = num(fr, "prob"), fmax = -1;
            const cJSON *x;
            cJSON_ArrayForEach(x, ff) if (num(x, "prob") > fmax) fmax = num(x, "prob");
            CHECK(fabs(p - fmax) < 1e-6, "frame prob %g = max over faces %g", p, fmax);
            sum += p;
            if (p > mx) mx = p;
            k++;
        }
        vmean = sum / (k ? k : 1);
        CHECK(fabs(num(res[1], "prob") - vmean) < 2e-6, "video prob %.7f, mean of frames %.7f", num(res[1], "prob"), vmean);
        CHECK(fabs(num(res[1], "prob_max") - mx) < 1e-6, "video prob_max %.7f, max of frames %.7f", num(res[1], "prob_max"), mx);
        CHECK(num(res[1], "frames_with_faces") == 4, "frames with faces");
        printf("  video: 4 of 8 frames, mean P(fake) %.6f, max %.6f\n", vmean, mx);
    }
    if (res[2]) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(res[2], "error");
        CHECK(cJSON_IsString(e) && strstr(e->valuestring, "not a readable video"), "error record for the corrupt input");
    }
    for (int i = 0; i < 3; i++) cJSON_Delete(res[i]);
    free(out);
    free(err);

    /* CSV: a face row and a summary row per input, an error row */
    snprintf(args, sizeof args, "detect --model %s --format csv --frames 4 %s %s", model, ASTRONAUT, bad);
    rc = run(args, &out, &err);
    CHECK(rc == 1, "csv exit %d", rc);
    CHECK(!strncmp(out, dcl_media_csv_header(), strlen(dcl_media_csv_header())), "csv header: %s", out);
    int rows = 0, face_rows = 0, img_rows = 0, err_rows = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        int commas = 0, quoted = 0;
        for (char *p = l; *p; p++) {
            if (*p == '"') quoted = !quoted;
            commas += *p == ',' && !quoted;
        }
        CHECK(commas == 12, "csv row with %d commas: %s", commas, l);
        rows++;
        char kind[16] = "";
        const char *c1 = strchr(l, ',');
        if (c1) sscanf(c1 + 1, "%15[^,]", kind);
        if (!strcmp(kind, "face")) {
            face_rows++;
            double x1, p;
            CHECK(sscanf(c1 + 1, "face,,0,%lf,%*f,%*f,%*f,%*f,%lf", &x1, &p) == 2 && fabs(p - img_prob) < 1e-5 &&
                      fabs(x1 - gbox[0]) < 0.06, "face row %s", l);
        }
        img_rows += !strcmp(kind, "image");
        err_rows += !strcmp(kind, "error");
    }
    CHECK(rows == 4 && face_rows == 1 && img_rows == 1 && err_rows == 1, "csv rows %d (face %d image %d error %d)", rows,
          face_rows, img_rows, err_rows);
    free(out);
    free(err);

    /* table, and paths from standard input */
    char list[600];
    snprintf(list, sizeof list, "%s/list.txt", g_dir);
    f = fopen(list, "w");
    if (f) { fprintf(f, "%s\n\n%s\n", ASTRONAUT, video); fclose(f); }
    snprintf(args, sizeof args, "detect --model %s --format table --frames 2 - <%s", model, list);
    rc = run(args, &out, &err);
    CHECK(rc == 0 && count_lines(out) == 3 && strstr(out, "P(FAKE)") && strstr(out, "astronaut.png") && strstr(out, "clip.mp4"),
          "table from stdin -> %d: %s%s", rc, out, err);
    free(out);
    free(err);

    /* --annotate: an image that decodes, boxes in the score's colour; the video */
    snprintf(args, sizeof args, "detect --model %s --summary --frames 4 --annotate %s %s %s", model, ann, ASTRONAUT, video);
    rc = run(args, &out, &err);
    CHECK(rc == 0, "annotate -> %d: %s", rc, err);
    cJSON *vj = NULL;
    char *nl = strchr(out, '\n');
    if (nl) vj = cJSON_Parse(nl + 1);
    CHECK(vj && !cJSON_GetObjectItemCaseSensitive(vj, "frames"), "--summary leaves out the frames");
    CHECK(vj && fabs(num(vj, "prob") - vmean) < 2e-6, "annotating decodes the same frames: %.7f vs %.7f",
          vj ? num(vj, "prob") : NAN, vmean);
    cJSON_Delete(vj);
    free(out);
    free(err);
    char p[600];
    snprintf(p, sizeof p, "%s/astronaut.png", ann);
    dcl_image a = {0};
    CHECK_OK(dcl_image_load(&a, p));
    if (a.data) {
        CHECK(a.w == 512 && a.h == 512, "annotated size %dx%d", a.w, a.h);
        uint8_t want[3];
        dcl_prob_color(img_prob, want);
        int x = (int)lrintf(gbox[0]), y = (int)lrintf((gbox[1] + gbox[3]) / 2);
        const uint8_t *px = a.data + ((size_t)y * a.w + x) * 3;
        CHECK(abs(px[0] - want[0]) <= 2 && abs(px[1] - want[1]) <= 2 && abs(px[2] - want[2]) <= 2,
              "box edge pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", x, y, px[0], px[1], px[2], want[0], want[1], want[2]);
        int changed = 0;
        for (size_t i = 0; i < (size_t)a.w * a.h * 3; i++) changed += a.data[i] != photo.data[i];
        CHECK(changed > 500 && changed < 60000, "%d values drawn", changed);
    }
    dcl_image_free(&a);
    snprintf(p, sizeof p, "%s/clip.mp4", ann);
    dcl_video *v = NULL;
    CHECK_OK(dcl_video_open(&v, p));
    int64_t nf = 0;
    if (v) CHECK_OK(dcl_video_count_frames(v, &nf));
    CHECK(nf == VFRAMES && v && dcl_video_get_info(v)->width == 320, "annotated video: %lld frames", (long long)nf);
    dcl_video_close(v);

    /* the library on a decoded image gives the same score; a training checkpoint loads directly */
    dcl_deploy *d = NULL;
    dcl_deploy_opts o;
    dcl_deploy_opts_default(&o);
    o.threads = 2;
    CHECK_OK(dcl_deploy_open(&d, ckpt, &o));
    if (d) {
        CHECK(!dcl_deploy_get_info(d)->face_embedded && dcl_deploy_get_info(d)->face_min_size == 40, "checkpoint defaults");
        dcl_frame_result fr;
        CHECK_OK(dcl_deploy_score_image(d, &photo, &fr));
        CHECK(fr.nfaces == 1 && fabsf(fr.faces[0].prob - pref) < 2e-4, "checkpoint: %d faces, P %.6f", fr.nfaces,
              fr.nfaces ? fr.faces[0].prob : NAN);
        dcl_frame_result_free(&fr);
        /* no face in a flat grey image */
        dcl_image grey = {0};
        CHECK_OK(dcl_image_alloc(&grey, 200, 150));
        memset(grey.data, 128, 200 * 150 * 3);
        dcl_media_result r;
        uint8_t *png = NULL;
        size_t plen = 0;
        CHECK_OK(dcl_image_encode_png_mem(&png, &plen, &grey));
        CHECK_OK(dcl_deploy_analyze_mem(d, png, plen, NULL, &r));
        CHECK(r.err == DCL_MEDIA_OK && r.faces == 0 && isnan(r.prob), "grey image: %d faces", r.faces);
        dcl_buf b = {0};
        CHECK_OK(dcl_media_result_json(&b, &r, NULL, 0.5f, 1));
        CHECK(b.data && strstr(b.data, "\"prob\": null") && strstr(b.data, "\"label\": null"), "no face -> null: %s", b.data);
        dcl_buf_free(&b);
        dcl_media_result_free(&r);
        CHECK_OK(dcl_deploy_analyze_mem(d, png, plen / 2, NULL, &r));
        CHECK(r.err == DCL_MEDIA_UNREADABLE && strstr(r.error, "PNG"), "truncated PNG: %s", r.error);
        dcl_media_result_free(&r);
        free(png);
        dcl_image_free(&grey);
        dcl_deploy_free(d);
    }

    /* a training checkpoint (last.safetensors) exports to the same detector */
    dcl_export_opts eo;
    dcl_export_opts_default(&eo);
    eo.face_min_size = 20;
    eo.threshold = 0.25f;
    dcl_deploy_info li;
    CHECK_OK(dcl_deploy_export(model2, last, &eo, &li));
    CHECK(li.size == SIZE && li.softmax_head && fabsf(li.width - 0.25f) < 1e-6f && fabsf(li.depth - 0.34f) < 1e-6f &&
              li.threshold == 0.25f && li.face_embedded, "from last.safetensors: size %d head %d width %g depth %g",
          li.size, li.softmax_head, li.width, li.depth);
    d = NULL;
    CHECK_OK(dcl_deploy_open(&d, model2, &o));
    if (d) {
        dcl_frame_result fr;
        CHECK_OK(dcl_deploy_score_image(d, &photo, &fr));
        CHECK(fr.nfaces == 1 && fabsf(fr.faces[0].prob - img_prob) < 1e-6f, "model from last.safetensors: P %.6f, want %.6f",
              fr.nfaces ? fr.faces[0].prob : NAN, img_prob);
        dcl_frame_result_free(&fr);
        dcl_deploy_free(d);
    }

    /* no model anywhere: a clear message */
    snprintf(args, sizeof args, "detect %s", ASTRONAUT);
    char cmd[20000];
    snprintf(cmd, sizeof cmd, "cd %s && env -u DCL_MODEL %s %s >/dev/null 2>%s/nomodel.txt", ann, g_dcl, args, g_dir);
    rc = system(cmd);
    snprintf(p, sizeof p, "%s/nomodel.txt", g_dir);
    err = slurp(p, NULL);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && err && strstr(err, "no model"), "no model: %s", err ? err : "");
    free(err);

    dcl_image_free(&photo);
    dcl_backend_destroy(be);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (getenv("DCL_TEST_KEEP")) printf("  kept %s\n", g_dir);
    else if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    CHECK_DONE();
}
