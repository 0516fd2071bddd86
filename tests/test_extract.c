/* dcl_extract on miniature FaceForensics++ and Celeb-DF replicas
 * (tests/datautil.h) with planted defects: a truncated fake, a real that is
 * shorter than its fakes, a video without any face, a video whose second
 * half has no face, an empty and a garbage file.
 *
 * The crops are checked against the replica's own renderer
 * (du_render_frame): the face box lies on the drawn face, the pair crop is
 * the real frame with the same index cropped with the fake's window (it
 * matches that frame better than its neighbours), and the mask crop covers
 * the drawn manipulation ellipse.  Then: counts, splits, the report,
 * resume without duplicates, repair of a torn index after a crash, stop by
 * SIGINT and resume, and a training batch read through the loader. */
#include "check.h"
#include "datautil.h"
#include "dcl/cache.h"
#include "dcl/dataset.h"
#include "dcl/extract.h"
#include "dcl/face.h"
#include "dcl/io.h"
#include "dcl/loader.h"
#include "dcl/video.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define W 128
#define H 96
#define NF 8         /* frames per replica clip */
#define FRAMES 4     /* sampled: even -> 1, 3, 5, 7 */
#define SIZE 96      /* crop side */

static dcl_image g_face;

static int count_lines(const char *path) {
    size_t n = 0;
    char *t = du_read_file(path, &n);
    if (!t) return -1;
    int c = 0;
    for (size_t i = 0; i < n; i++) c += t[i] == '\n';
    free(t);
    return c;
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* a clip whose frames t >= face_frames show only a smooth gradient */
static dcl_status write_partial_clip(const char *path, int face_frames) {
    dcl_video_writer *w = NULL;
    dcl_video_writer_opts wo = {"mpeg4", 4, 4, 0, 0};
    DCL_TRY(dcl_video_writer_open(&w, path, W, H, 25.0, &wo));
    dcl_image fr;
    dcl_status s = dcl_image_alloc(&fr, W, H);
    for (int t = 0; t < NF && !s; t++) {
        if (t < face_frames) du_render_frame(&fr, &g_face, t, NF, 0, 0);
        else
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    uint8_t *p = fr.data + ((size_t)y * W + x) * 3;
                    p[0] = (uint8_t)(x * 2); p[1] = (uint8_t)(y * 2); p[2] = (uint8_t)(128 + t);
                }
        s = dcl_video_writer_write(w, &fr);
    }
    dcl_image_free(&fr);
    if (s) { dcl_video_writer_abort(w); return s; }
    return dcl_video_writer_close(w);
}

static void truncate_file(const char *path, double keep) {
    size_t n = 0;
    char *t = du_read_file(path, &n);
    CHECK(t != NULL, "read %s", path);
    if (t) CHECK(du_write_bytes(path, t, (size_t)(n * keep)) == 0, "truncate %s", path);
    free(t);
}

/* ---- reading the cache back ---- */

static int find_entry(const dcl_cache *c, const char *video, int frame) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].video, video) && c->e[i].frame == frame) return i;
    return -1;
}

static int count_video(const dcl_cache *c, const char *video) {
    int k = 0;
    for (int i = 0; i < c->n; i++) k += !strcmp(c->e[i].video, video);
    return k;
}

static dcl_image load_rel(const dcl_cache *c, const char *rel) {
    char p[4096];
    dcl_image im = {0};
    if (dcl_image_load(&im, dcl_cache_path(c, rel, p, sizeof p))) memset(&im, 0, sizeof im);
    return im;
}

/* the replica's frame t (variant, mask) cropped with the window of box e */
static dcl_image render_crop(const dcl_cache_entry *e, int t, int nframes, int variant, int mask) {
    dcl_image fr = {0}, out = {0};
    dcl_image_alloc(&fr, W, H);
    du_render_frame(&fr, &g_face, t, nframes, variant, mask);
    dcl_crop_rect r;
    if (dcl_face_crop_rect(&r, e->box[0], e->box[1], e->box[2], e->box[3], 1.3f) == DCL_OK)
        dcl_face_crop_apply(&out, &fr, &r, SIZE);
    dcl_image_free(&fr);
    return out;
}

/* Box of entry e against the face ellipse du_render_frame draws at frame t. */
static void check_box_on_face(const dcl_cache_entry *e, int nframes) {
    double a = nframes > 1 ? (double)e->frame / (nframes - 1) : 0;
    double side = H * (0.80 + 0.30 * a), cx = W * (0.40 + 0.20 * a), cy = H * 0.5;
    double fx = cx - side / 2 + 0.50 * side, fy = cy - side / 2 + 0.47 * side;
    double fw = 0.40 * side, fh = 0.54 * side;
    double bx = 0.5 * (e->box[0] + e->box[2]), by = 0.5 * (e->box[1] + e->box[3]);
    double bw = e->box[2] - e->box[0];
    CHECK(fabs(bx - fx) < 0.3 * fw && fabs(by - fy) < 0.3 * fh && bw > 0.5 * fw && bw < 2.0 * fw,
          "%s frame %d: box (%.1f %.1f %.1f %.1f) is not on the drawn face (centre %.1f,%.1f, %.0fx%.0f)", e->video, e->frame,
          e->box[0], e->box[1], e->box[2], e->box[3], fx, fy, fw, fh);
    CHECK(e->score > 0.9f, "%s frame %d: face score %.3f", e->video, e->frame, e->score);
}

/* pair crop = real frame t (not t +- 1); mask crop covers the drawn ellipse; the fake differs inside it */
static void check_pair_mask(const dcl_cache *c, const dcl_cache_entry *e, int fake_variant, int *checked) {
    dcl_image crop = load_rel(c, e->crop);
    CHECK(crop.w == SIZE && crop.h == SIZE, "%s: crop %dx%d", e->crop, crop.w, crop.h);
    if (*e->pair) {
        dcl_image pair = load_rel(c, e->pair);
        dcl_image ref = render_crop(e, e->frame, NF, 0, 0);
        dcl_image prev = render_crop(e, e->frame - 1, NF, 0, 0);
        dcl_image next = render_crop(e, e->frame + 1 < NF ? e->frame + 1 : e->frame - 2, NF, 0, 0);
        double p0 = du_psnr_luma(&pair, &ref), p1 = du_psnr_luma(&pair, &prev), p2 = du_psnr_luma(&pair, &next);
        CHECK(pair.w == SIZE && p0 > 24 && p0 > p1 + 1.5 && p0 > p2 + 1.5,
              "%s: pair crop vs real frame %d: %.1f dB, vs neighbours %.1f / %.1f dB", e->pair, e->frame, p0, p1, p2);
        /* the fake agrees with its real outside the manipulated face and differs inside */
        if (pair.data && crop.data) {
            dcl_image m = render_crop(e, e->frame, NF, 0, 1);
            double din = 0, dout = 0;
            long nin = 0, nout = 0;
            for (long i = 0; i < (long)SIZE * SIZE; i++) {
                double d = 0;
                for (int k = 0; k < 3; k++) d += fabs((double)crop.data[3 * i + k] - pair.data[3 * i + k]);
                if (m.data[3 * i] > 200) { din += d; nin++; }
                else if (m.data[3 * i] < 50) { dout += d; nout++; }
            }
            din /= nin > 0 ? nin : 1;
            dout /= nout > 0 ? nout : 1;
            CHECK((nin > 100 && din > dout + 10) || fake_variant == 0,
                  "%s: |fake - pair| inside the mask %.1f, outside %.1f", e->crop, din, dout);
            dcl_image_free(&m);
        }
        dcl_image_free(&pair);
        dcl_image_free(&ref);
        dcl_image_free(&prev);
        dcl_image_free(&next);
    }
    if (*e->mask) {
        dcl_image mk = load_rel(c, e->mask);
        dcl_image ref = render_crop(e, e->frame, NF, 0, 1);
        long agree = 0, on = 0, on_hit = 0;
        for (long i = 0; mk.data && ref.data && i < (long)SIZE * SIZE; i++) {
            int a = mk.data[3 * i] > 127, b = ref.data[3 * i] > 127;
            agree += a == b;
            if (b) { on++; on_hit += mk.data[3 * i] > 0; }
        }
        CHECK(mk.w == SIZE && on > 500 && on_hit == on && agree > 0.96 * SIZE * SIZE,
              "%s: mask crop agrees with the drawn mask on %ld of %d pixels; non-zero on %ld of %ld mask pixels", e->mask,
              agree, SIZE * SIZE, on_hit, on);
        dcl_image_free(&mk);
        dcl_image_free(&ref);
    }
    dcl_image_free(&crop);
    (*checked)++;
}

/* ---- report.json ---- */

static cJSON *g_report;

static cJSON *load_report(const char *cache) {
    char p[4096];
    cJSON_Delete(g_report);
    g_report = NULL;
    CHECK_OK(dcl_json_load(&g_report, du_join(p, sizeof p, cache, "report.json")));
    return g_report;
}

static int report_int(const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(g_report, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* number of issues whose item contains `item` and kind equals `kind`; reason of the last into why */
static int report_issues(const char *item, const char *kind, const char **why) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(g_report, "issues")) {
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(it, "item"), *k = cJSON_GetObjectItemCaseSensitive(it, "kind");
        if (!cJSON_IsString(i) || !cJSON_IsString(k)) continue;
        if ((!item || strstr(i->valuestring, item)) && !strcmp(k->valuestring, kind)) {
            n++;
            if (why) *why = cJSON_GetObjectItemCaseSensitive(it, "reason")->valuestring;
        }
    }
    return n;
}

/* number of frames listed in the no_face_frames problems of the report */
static int report_noface_frames(void) {
    int total = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(g_report, "issues")) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "kind"), *r = cJSON_GetObjectItemCaseSensitive(it, "reason");
        if (cJSON_IsString(k) && !strcmp(k->valuestring, "no_face_frames") && cJSON_IsString(r)) total += atoi(r->valuestring);
    }
    return total;
}

/* ---- runs ---- */

static dcl_extract_opts base_opts(const char *dataset, const char *root, const char *out) {
    dcl_extract_opts o;
    dcl_extract_opts_default(&o);
    o.dataset = dataset;
    o.root = root;
    o.out = out;
    o.frames = FRAMES;
    o.size = SIZE;
    o.min_face = 20;
    o.workers = 2;
    o.threads = 1;
    o.progress = 0;
    const char *wts = getenv("DCL_MTCNN_WEIGHTS");
    if (wts && *wts) o.weights = wts;
    return o;
}

static void test_ffpp(const char *dir) {
    char root[2048], cache[2048], p[4096];
    du_join(root, sizeof root, dir, "ffpp");
    du_join(cache, sizeof cache, dir, "cache-ffpp");
    du_replica_opts ro = du_replica_defaults();
    ro.w = W; ro.h = H; ro.nframes = NF;
    CHECK_OK(du_make_ffpp(root, &ro));
    /* defects: a truncated fake, an original shorter than its fakes (5 frames) */
    truncate_file(du_join(p, sizeof p, root, "manipulated_sequences/Deepfakes/c23/videos/004_005.mp4"), 0.5);
    dcl_video_writer_opts wo = {"mpeg4", 4, 4, 0, 0};
    CHECK_OK(du_write_clip(du_join(p, sizeof p, root, "original_sequences/youtube/c23/videos/006.mp4"), W, H, 5, 25.0, 0, 0, &wo));

    dcl_extract_opts o = base_opts("ffpp", root, cache);
    o.methods = "Deepfakes,NeuralTextures";
    dcl_extract_report r;
    double t0 = dcl_now();
    CHECK_OK(dcl_extract(&o, &r));
    printf("ffpp replica: %d entries, %d ok, %d skipped, %lld faces, %lld pairs, %lld masks, %lld frames without a face, %.1f s\n",
           r.entries, r.processed, r.skipped, (long long)r.faces, (long long)r.pairs, (long long)r.masks,
           (long long)r.frames_no_face, dcl_now() - t0);
    /* 8 reals + 9 Deepfakes (008_009 has no original) + 8 NeuralTextures */
    CHECK(r.entries == 25 && r.already_done == 0 && !r.interrupted, "entries %d", r.entries);
    CHECK(r.skipped == 1 && r.skipped_by[DCL_SKIP_UNREADABLE] == 1 && r.processed == 24, "skipped %d (unreadable %d), ok %d",
          r.skipped, r.skipped_by[DCL_SKIP_UNREADABLE], r.processed);
    CHECK(r.frames == 24 * FRAMES, "frames searched %lld", (long long)r.frames);
    CHECK(r.frames_no_face <= 2, "%lld replica frames without a face", (long long)r.frames_no_face);
    CHECK(r.faces + r.frames_no_face == 24 * FRAMES, "faces %lld + frames without face %lld = %d", (long long)r.faces,
          (long long)r.frames_no_face, 24 * FRAMES);

    /* report */
    load_report(cache);
    const char *why = NULL;
    CHECK(report_int("entries") == 25 && report_int("ok") == 24 && report_int("skipped") == 1 && report_int("pending") == 0,
          "report counts");
    CHECK(report_issues("Deepfakes/c23/004_005", "unreadable", &why) == 1, "truncated fake reported");
    if (why) printf("  truncated: %s\n", why);
    CHECK(report_issues("Deepfakes/c23/006_007", "pair_short", &why) == 1 &&
              report_issues("NeuralTextures/c23/006_007", "pair_short", NULL) == 1,
          "short pair reported for both 006_007 fakes");
    if (why) {
        printf("  short pair: %s\n", why);
        CHECK(strstr(why, "5, 7") != NULL, "frames 5 and 7 lack a pair: %s", why);
    }
    CHECK(report_issues("008_009", "no-pair", NULL) == 1, "adapter's no-pair issue carried into the report");
    CHECK(report_noface_frames() == r.frames_no_face, "every frame without a face is listed (%d vs %lld)", report_noface_frames(),
          (long long)r.frames_no_face);
    CHECK(r.report_lines >= 4, "report lines %d", r.report_lines);

    /* the cache */
    dcl_cache *c = NULL;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (!c) return;
    CHECK(c->n == r.faces && c->bad_lines == 0, "index has %d entries, %lld faces written", c->n, (long long)r.faces);
    CHECK(count_lines(du_join(p, sizeof p, cache, "index.jsonl")) == c->n, "one line per crop");
    int checked = 0, pairs = 0, masks = 0, boxes = 0;
    for (int i = 0; i < c->n; i++) {
        const dcl_cache_entry *e = &c->e[i];
        CHECK(exists(dcl_cache_path(c, e->crop, p, sizeof p)), "crop %s exists", e->crop);
        CHECK(!strncmp(e->crop, "crops/ffpp/", 11) && strstr(e->crop, e->video), "crop path %s", e->crop);
        if (!strcmp(e->video, "youtube/c23/006")) /* 5 frames: floor((i + 0.5) * 5 / 4) */
            CHECK(e->frame == 0 || e->frame == 1 || e->frame == 3 || e->frame == 4, "%s: frame %d", e->crop, e->frame);
        else
            CHECK(e->frame == 1 || e->frame == 3 || e->frame == 5 || e->frame == 7, "%s: frame %d is an even sample", e->crop,
                  e->frame);
        pairs += *e->pair != 0;
        masks += *e->mask != 0;
        CHECK(!*e->pair || e->label == 1, "%s: only fakes have pairs", e->crop);
        int short_pair = strstr(e->video, "006_007") != NULL;
        if (e->label == 1 && !strstr(e->video, "008_009"))
            CHECK(*e->pair || (short_pair && e->frame >= 5), "%s: fake frame %d has its pair", e->video, e->frame);
        if (short_pair && e->frame >= 5) CHECK(!*e->pair, "%s frame %d: no pair past the end of the real", e->video, e->frame);
        int has_mask_video = e->label == 1 && !strstr(e->video, "008_009") && strcmp(e->video, "NeuralTextures/c23/007_006");
        CHECK(!*e->mask == !has_mask_video, "%s: mask crop %s", e->video, *e->mask ? "present" : "absent");
        /* exact replica frames: not the re-encoded short 006 original and its fakes */
        if (!short_pair && strcmp(e->video, "youtube/c23/006")) {
            check_box_on_face(e, NF);
            boxes++;
            if (*e->pair || *e->mask) check_pair_mask(c, e, !strncmp(e->method, "Deepfakes", 9) ? 1 : 4, &checked);
        }
    }
    printf("  %d crops: %d with pair, %d with mask; %d boxes and %d pair/mask crops checked against the renderer\n", c->n,
           pairs, masks, boxes, checked);
    CHECK(pairs == (int)r.pairs && masks == (int)r.masks, "pair/mask counts %d/%d vs report %lld/%lld", pairs, masks,
          (long long)r.pairs, (long long)r.masks);
    CHECK(checked >= 40, "only %d fakes compared", checked);
    /* splits: FF++ splits are carried through */
    static const struct { const char *video; const char *split; } sp[] = {
        {"youtube/c23/000", "train"}, {"Deepfakes/c23/001_000", "train"}, {"NeuralTextures/c23/004_005", "val"},
        {"youtube/c23/005", "val"}, {"Deepfakes/c23/007_006", "test"}, {"Deepfakes/c23/008_009", "none"}};
    for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) {
        int i = find_entry(c, sp[k].video, 3);
        CHECK(i >= 0 && !strcmp(c->e[i].split, sp[k].split), "%s: split %s, want %s", sp[k].video, i >= 0 ? c->e[i].split : "?",
              sp[k].split);
    }
    int i = find_entry(c, "Deepfakes/c23/000_001", 3);
    if (i >= 0) {
        const dcl_cache_entry *e = &c->e[i];
        CHECK(e->label == 1 && !strcmp(e->method, "Deepfakes") && !strcmp(e->dataset, "ffpp") && !strcmp(e->identity, "000"),
              "000_001 fields: label %d method %s dataset %s identity %s", e->label, e->method, e->dataset, e->identity);
        CHECK(!strcmp(e->crop, "crops/ffpp/Deepfakes/Deepfakes/c23/000_001/000003.png"), "crop name %s", e->crop);
        CHECK(!strcmp(e->pair, "crops/ffpp/Deepfakes/Deepfakes/c23/000_001/000003_real.png") &&
                  !strcmp(e->mask, "crops/ffpp/Deepfakes/Deepfakes/c23/000_001/000003_mask.png"),
              "pair %s mask %s", e->pair, e->mask);
        CHECK(e->landmarks[0] > e->box[0] && e->landmarks[0] < e->box[2] && e->landmarks[1] > e->box[1] &&
                  e->landmarks[1] < e->box[3], "left eye inside the box");
    }
    CHECK(count_video(c, "Deepfakes/c23/004_005") == 0, "skipped video has no crops");
    int n_index = c->n;

    /* the trainer's loader reads a batch */
    int *idx = NULL, nidx = 0;
    CHECK_OK(dcl_cache_select(c, "train", &idx, &nidx));
    CHECK(nidx >= 40, "train crops: %d", nidx);
    dcl_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.batch = 8; lc.size = SIZE; lc.workers = 2; lc.prefetch = 1; lc.train = 1; lc.balance = 1; lc.two_views = 1;
    lc.seed = 7;
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(lc.mean, mean, sizeof mean);
    memcpy(lc.std, std, sizeof std);
    lc.views = dcl_views_paper();
    dcl_loader *l = NULL;
    CHECK_OK(dcl_loader_create(&l, c, idx, nidx, &lc));
    dcl_batch *b = NULL;
    if (l) CHECK_OK(dcl_loader_start(l, 0));
    if (l) CHECK_OK(dcl_loader_next(l, &b));
    if (b) {
        int fakes = 0, mask_ok = 0, finite = 1;
        for (int k = 0; k < b->n; k++) {
            fakes += b->label[k];
            double ms = 0;
            for (int q = 0; q < SIZE * SIZE; q++) ms += b->mask[(size_t)k * SIZE * SIZE + q];
            if (b->label[k]) mask_ok += ms > 50;
        }
        for (long q = 0; q < (long)b->n * SIZE * SIZE * 3; q++) finite &= isfinite(b->v1[q]) && isfinite(b->v2[q]);
        CHECK(b->n == 8 && fakes == 4 && b->errors == 0 && finite, "batch: %d images, %d fakes, %d errors", b->n, fakes, b->errors);
        CHECK(mask_ok == fakes, "every fake of the batch has a mask (%d of %d)", mask_ok, fakes);
    }
    dcl_loader_free(l);
    free(idx);
    dcl_cache_free(c);

    /* rerun: everything is done already */
    int done_lines = count_lines(du_join(p, sizeof p, cache, "done.jsonl"));
    CHECK(done_lines == 25, "done lines %d", done_lines);
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(r.already_done == 25 && r.processed == 0 && r.skipped == 0 && r.frames == 0, "rerun did work: %d done, %d processed",
          r.already_done, r.processed);
    CHECK(count_lines(du_join(p, sizeof p, cache, "index.jsonl")) == n_index &&
              count_lines(du_join(p, sizeof p, cache, "done.jsonl")) == done_lines,
          "rerun left index/done unchanged");
    CHECK(r.total_ok == 24 && r.total_skipped == 1 && r.total_faces == n_index, "totals after rerun");

    /* a crash: the last "ok" entry's done line never made it, its last index line is torn */
    size_t len = 0;
    char *done = du_read_file(du_join(p, sizeof p, cache, "done.jsonl"), &len);
    int removed = 0;
    if (done) {
        for (;;) {
            char *end = done + len - 1; /* final '\n' */
            char *start = end;
            while (start > done && start[-1] != '\n') start--;
            int was_ok = strstr(start, "\"status\":\"ok\"") != NULL;
            len = (size_t)(start - done);
            removed++;
            if (was_ok || len == 0) break;
        }
        du_write_bytes(p, done, len);
        free(done);
    }
    char *idxt = du_read_file(du_join(p, sizeof p, cache, "index.jsonl"), &len);
    if (idxt) {
        char *end = idxt + len - 1;
        char *start = end;
        while (start > idxt && start[-1] != '\n') start--;
        du_write_bytes(p, idxt, (size_t)(start - idxt) + (size_t)(end - start) / 2);
        free(idxt);
    }
    CHECK(count_lines(p) == n_index - 1, "index torn");
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(r.processed + r.skipped == removed && r.already_done == 25 - removed, "redone %d of %d removed", r.processed + r.skipped,
          removed);
    CHECK(count_lines(du_join(p, sizeof p, cache, "index.jsonl")) == n_index, "index repaired: %d lines, want %d", count_lines(p),
          n_index);
    CHECK(count_lines(du_join(p, sizeof p, cache, "done.jsonl")) == 25, "done complete again");
    c = NULL;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (c) {
        CHECK(c->n == n_index && c->bad_lines == 0, "cache after repair: %d entries, %d bad lines", c->n, c->bad_lines);
        int dup = 0;
        for (int a = 0; a < c->n; a++)
            for (int q = a + 1; q < c->n; q++) dup += !strcmp(c->e[a].crop, c->e[q].crop);
        CHECK(dup == 0, "%d duplicate crops", dup);
        dcl_cache_free(c);
    }
    /* resuming with other options is refused */
    o.frames = FRAMES + 1;
    CHECK(dcl_extract(&o, &r) == DCL_ERR_ARG && strstr(dcl_last_error(), "extract.json"), "changed --frames refused: %s",
          dcl_last_error());
}

static int g_stop_after;
static int stop_cb(void *user, const char *item, const dcl_extract_report *r) {
    (void)item;
    int *n = user;
    if (++*n == g_stop_after) raise(SIGINT);
    return 0;
}

static void test_celebdf(const char *dir) {
    char root[2048], cache[2048], p[4096];
    du_join(root, sizeof root, dir, "celebdf");
    du_join(cache, sizeof cache, dir, "cache-celebdf");
    du_replica_opts ro = du_replica_defaults();
    ro.w = W; ro.h = H; ro.nframes = NF; ro.defects = 0;
    CHECK_OK(du_make_celebdf(root, &ro));
    /* no face at all, a face in the first half only, an empty file, garbage */
    CHECK_OK(write_partial_clip(du_join(p, sizeof p, root, "YouTube-real/00000.mp4"), 0));
    CHECK_OK(write_partial_clip(du_join(p, sizeof p, root, "YouTube-real/00001.mp4"), 4));
    du_write_bytes(du_join(p, sizeof p, root, "Celeb-real/id0_0001.mp4"), "", 0);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7919 % 251);
    du_write_bytes(du_join(p, sizeof p, root, "Celeb-real/id1_0000.mp4"), junk, sizeof junk);

    /* first run stopped by SIGINT after two entries */
    dcl_extract_opts o = base_opts("celebdf", root, cache);
    o.handle_signals = 1;
    int seen = 0;
    g_stop_after = 2;
    o.on_entry = stop_cb;
    o.user = &seen;
    dcl_extract_report r;
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(r.interrupted && r.processed + r.skipped >= 2 && r.processed + r.skipped < 11,
          "SIGINT stops the run after the entries in progress (%d recorded, interrupted %d)", r.processed + r.skipped, r.interrupted);
    int first = r.processed + r.skipped;
    load_report(cache);
    CHECK(report_int("pending") == 11 - first && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g_report, "interrupted")),
          "report of the interrupted run: pending %d", report_int("pending"));
    dcl_cache *c = NULL;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (c) {
        for (int i = 0; i < c->n; i++) CHECK(exists(dcl_cache_path(c, c->e[i].crop, p, sizeof p)), "crop %s", c->e[i].crop);
        dcl_cache_free(c);
    }
    /* resume */
    o.on_entry = NULL;
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(!r.interrupted && r.already_done == first && r.processed + r.skipped == 11 - first, "resume: %d before, %d now",
          r.already_done, r.processed + r.skipped);
    /* 7 reals + 4 fakes; skipped: no face, empty, garbage */
    CHECK(r.entries == 11 && r.total_ok == 8 && r.total_skipped == 3, "celebdf: %d entries, %d ok, %d skipped", r.entries,
          r.total_ok, r.total_skipped);
    load_report(cache);
    const char *why = NULL;
    CHECK(report_issues("YouTube-real/00000", "no_face", &why) == 1, "video without a face reported");
    if (why) printf("  no face: %s\n", why);
    CHECK(report_issues("Celeb-real/id0_0001", "empty", &why) == 1, "empty video reported");
    if (why) printf("  empty: %s\n", why);
    CHECK(report_issues("Celeb-real/id1_0000", "unreadable", &why) == 1, "garbage video reported");
    if (why) printf("  garbage: %s\n", why);
    CHECK(report_issues("YouTube-real/00001", "no_face_frames", &why) == 1 && why && atoi(why) == 2 && strstr(why, "5, 7"),
          "frames 5 and 7 of the half-face video reported: %s", why ? why : "-");
    /* fakes whose real is broken keep their crops, without pair */
    CHECK(report_issues("Celeb-synthesis/id1_id0_0000", "pair_unreadable", &why) == 1, "unreadable pair reported");
    if (why) printf("  pair: %s\n", why);
    CHECK(report_issues("Celeb-synthesis/id0_id2_0001", "pair_unreadable", NULL) == 1, "empty pair reported");
    c = NULL;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (c) {
        CHECK(c->n == 8 * FRAMES - 2 && c->bad_lines == 0, "celebdf index: %d crops, want %d", c->n, 8 * FRAMES - 2);
        CHECK(count_video(c, "YouTube-real/00001") == 2 && count_video(c, "Celeb-synthesis/id1_id0_0000") == FRAMES,
              "half-face video: 2 crops; fake with broken real: all crops");
        int i = find_entry(c, "Celeb-synthesis/id1_id0_0000", 1);
        CHECK(i >= 0 && !*c->e[i].pair, "no pair crop from a broken real");
        i = find_entry(c, "Celeb-synthesis/id0_id1_0000", 1);
        CHECK(i >= 0 && *c->e[i].pair && !*c->e[i].mask, "Celeb-DF fake paired with its real, no mask");
        i = find_entry(c, "YouTube-real/00170", 5);
        CHECK(i >= 0 && !strcmp(c->e[i].split, "test") && c->e[i].label == 0, "Celeb-DF test list carried through");
        i = find_entry(c, "Celeb-real/id0_0000", 5);
        CHECK(i >= 0 && !strcmp(c->e[i].split, "train"), "unlisted Celeb-DF video is train");
        dcl_cache_free(c);
    }
    /* --retry-skipped: the three skipped entries are tried again (and skipped again), the rest stays */
    o.retry_skipped = 1;
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(r.already_done == 8 && r.skipped == 3 && r.processed == 0 && r.total_ok == 8 && r.total_skipped == 3,
          "retry: %d done before, %d skipped again, totals %d ok %d skipped", r.already_done, r.skipped, r.total_ok,
          r.total_skipped);
    CHECK(count_lines(du_join(p, sizeof p, cache, "done.jsonl")) == 14, "retried entries appended to done.jsonl");
    load_report(cache);
    CHECK(report_int("ok") == 8 && report_int("skipped") == 3 && report_issues("YouTube-real/00000", "no_face", NULL) == 1,
          "report lists each entry once after a retry");
    /* fatal errors */
    dcl_extract_opts bad = base_opts("celebdf", root, "/proc/version/cache");
    CHECK(dcl_extract(&bad, &r) == DCL_ERR_IO && strstr(dcl_last_error(), "/proc/version/cache"), "cannot create cache: %s",
          dcl_last_error());
    char empty[2048];
    du_join(empty, sizeof empty, dir, "empty");
    du_mkdirs(empty);
    du_mkdirs(du_join(p, sizeof p, empty, "real"));
    bad = base_opts("generic", empty, cache);
    CHECK(dcl_extract(&bad, &r) != DCL_OK, "no entries is an error");
    printf("  no entries: %s\n", dcl_last_error());
    bad = base_opts("celebdf", root, cache);
    bad.weights = "/nonexistent/mtcnn.safetensors";
    CHECK(dcl_extract(&bad, &r) == DCL_ERR_IO && strstr(dcl_last_error(), "/nonexistent/mtcnn.safetensors"), "missing weights: %s",
          dcl_last_error());
}

/* WildDeepfake: frame sequences of face crops (no detection; frame numbers from the file names) */
static void test_wild(const char *dir) {
    char root[2048], cache[2048];
    du_join(root, sizeof root, dir, "wild");
    du_join(cache, sizeof cache, dir, "cache-wild");
    du_replica_opts ro = du_replica_defaults();
    CHECK_OK(du_make_wild(root, &ro));
    dcl_extract_opts o = base_opts("wild", root, cache);
    o.frames = 2;
    dcl_extract_report r;
    CHECK_OK(dcl_extract(&o, &r));
    CHECK(r.entries == 7 && r.processed == 7 && r.skipped == 0 && r.faces == 13, "wild: %d entries, %d ok, %lld faces",
          r.entries, r.processed, (long long)r.faces);
    dcl_cache *c = NULL;
    CHECK_OK(dcl_cache_open(&c, cache));
    if (!c) return;
    CHECK(c->n == 13, "wild index %d", c->n);
    int a = find_entry(c, "real_train/0", 10), b = find_entry(c, "real_train/0", 12), m = find_entry(c, "real_train/0", 11);
    CHECK(a >= 0 && b >= 0 && m < 0, "sequence real_train/0/0 (frames 10 11 12): frames 10 and 12 sampled");
    if (a >= 0) {
        const dcl_cache_entry *e = &c->e[a];
        CHECK(!strcmp(e->crop, "crops/wild/real/real_train/0/0/000010.png") && e->box[0] == 0 && e->box[2] == 64 &&
                  e->box[3] == 64 && !strcmp(e->split, "train") && e->label == 0,
              "wild entry: crop %s box %g %g %g %g split %s", e->crop, e->box[0], e->box[1], e->box[2], e->box[3], e->split);
        dcl_image im = load_rel(c, e->crop);
        CHECK(im.w == SIZE && im.h == SIZE, "wild crop resized to %d: %dx%d", SIZE, im.w, im.h);
        dcl_image_free(&im);
    }
    a = find_entry(c, "fake_test/0", 2);
    CHECK(a >= 0 && c->e[a].label == 1 && !strcmp(c->e[a].split, "test") && !strcmp(c->e[a].method, "WildDeepfake"),
          "fake_test/0/1 frame 2");
    dcl_cache_free(c);
    load_report(cache);
    CHECK(report_issues("5.tar.gz", "ignored", NULL) == 1, "unpacked archive reported");
}

static void test_paths(void) {
    char b[512];
    dcl_extract_crop_path(b, sizeof b, "ffpp", "Deepfakes", "Deepfakes/c23/000_001", 12, -1, "");
    CHECK(!strcmp(b, "crops/ffpp/Deepfakes/Deepfakes/c23/000_001/000012.png"), "%s", b);
    dcl_extract_crop_path(b, sizeof b, "generic", "fake", "a b/../c", 3, 1, "_mask");
    CHECK(!strncmp(b, "crops/generic/fake/a_b/_/c~", 27) && strstr(b, "/000003_1_mask.png") && !strstr(b, ".."), "%s", b);
}

int main(void) {
    if (du_face_photo(&g_face) < 0) { fprintf(stderr, "no face picture\n"); return 1; }
    char dir[1024];
    if (du_tmpdir(dir, sizeof dir, "extract") != 0) { fprintf(stderr, "no temporary directory\n"); return 1; }
    double t0 = dcl_now();
    test_paths();
    test_ffpp(dir);
    test_celebdf(dir);
    test_wild(dir);
    printf("test_extract: %.1f s\n", dcl_now() - t0);
    cJSON_Delete(g_report);
    dcl_image_free(&g_face);
    if (!check_failed_) du_rmtree(dir);
    else fprintf(stderr, "left %s for inspection\n", dir);
    CHECK_DONE();
}
