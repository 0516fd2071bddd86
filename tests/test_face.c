/* MTCNN against facenet-pytorch 2.6.0's own MTCNN on real photographs
 * (tests/fixtures/face/mtcnn_goldens.json, from tools/make_face_goldens.py;
 * the photographs are read from the Debian packages that ship them), the
 * detector's robustness (tiny, flat, huge images, bad arguments, broken
 * weight files), and the geometry of the face crops.
 *
 * Per golden face: a dcl face with IoU >= 0.9, probability within 0.02 and
 * landmarks within LM_TOL pixels; no extra faces.  An image whose photograph
 * is not installed is skipped with a message (and counted); if every image
 * is skipped the test fails, since nothing would have been compared.
 * Also prints the time per 1280x720 frame (not an assertion).
 * DCL_FACE_BACKEND=ref|cuda runs everything on another backend (default cpu).
 */
#include "check.h"
#include "golden.h"
#include "dcl/face.h"
#include "dcl/io.h"
#include "backend/backend.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IOU_MIN 0.9
#define PROB_TOL 0.02
#define LM_TOL 3.0

static const char *weights_path(void) {
    const char *p = getenv("DCL_MTCNN_WEIGHTS");
    return p && *p ? p : "models/mtcnn.safetensors";
}

/* ------------------------------------------------------------ images -- */

typedef struct photo_cache {
    char name[64];
    dcl_image img;
    int loaded;        /* 1 ok, -1 missing */
} photo_cache;

static photo_cache g_photos[16];
static int g_nphotos;
static float *g_lfw;   /* lfw_subset.npy: 200 x 25 x 25 float64 -> float */
static double *g_lfw_d;
static int g_lfw_n = -2;
static const cJSON *g_photo_paths;

static const char *first_existing(const char *name) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(g_photo_paths, name);
    const cJSON *p;
    cJSON_ArrayForEach(p, list) {
        if (cJSON_IsString(p) && access(p->valuestring, R_OK) == 0) return p->valuestring;
    }
    return NULL;
}

static const dcl_image *get_photo(const char *name) {
    for (int i = 0; i < g_nphotos; i++)
        if (strcmp(g_photos[i].name, name) == 0) return g_photos[i].loaded > 0 ? &g_photos[i].img : NULL;
    if (g_nphotos == 16) return NULL;
    photo_cache *c = &g_photos[g_nphotos++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->loaded = -1;
    const char *path = first_existing(name);
    if (!path) return NULL;
    if (dcl_image_load(&c->img, path) != DCL_OK) {
        fprintf(stderr, "cannot decode %s: %s\n", path, dcl_last_error());
        return NULL;
    }
    c->loaded = 1;
    return &c->img;
}

/* Minimal .npy reader for lfw_subset.npy ('<f8', C order, (200, 25, 25)). */
static int load_lfw(void) {
    if (g_lfw_n != -2) return g_lfw_n;
    g_lfw_n = -1;
    const char *path = first_existing("lfw_subset");
    if (!path) return -1;
    void *buf = NULL;
    size_t len = 0;
    if (dcl_read_file(&buf, &len, path, 64u << 20)) return -1;
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) { free(buf); return -1; }
    size_t hl = b[8] | (b[9] << 8), off = 10 + hl;
    char hdr[512];
    size_t n = hl < sizeof hdr - 1 ? hl : sizeof hdr - 1;
    memcpy(hdr, b + 10, n);
    hdr[n] = 0;
    int cnt = 0, h = 0, w = 0;
    char *sp = strstr(hdr, "'shape': (");
    if (!strstr(hdr, "'<f8'") || !strstr(hdr, "'fortran_order': False") || !sp ||
        sscanf(sp, "'shape': (%d, %d, %d)", &cnt, &h, &w) != 3 || h != 25 || w != 25 || cnt <= 0 ||
        len < off + (size_t)cnt * 625 * 8) {
        free(buf);
        return -1;
    }
    g_lfw_d = malloc((size_t)cnt * 625 * sizeof(double));
    memcpy(g_lfw_d, b + off, (size_t)cnt * 625 * sizeof(double));
    free(buf);
    g_lfw_n = cnt;
    return cnt;
}

static void paste(dcl_image *dst, const uint8_t *src, int sw, int sh, int x0, int y0) {
    for (int y = 0; y < sh; y++) {
        int dy = y0 + y;
        if (dy < 0 || dy >= dst->h) continue;
        for (int x = 0; x < sw; x++) {
            int dx = x0 + x;
            if (dx < 0 || dx >= dst->w) continue;
            memcpy(dst->data + ((size_t)dy * dst->w + dx) * 3, src + ((size_t)y * sw + x) * 3, 3);
        }
    }
}

static int jint(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

/* Builds the image of a recipe (see tools/make_face_goldens.py).
 * Returns 1 on success, 0 when a photograph is missing (why in *missing). */
static int compose(dcl_image *img, const cJSON *rec, const char **missing) {
    int W = jint(rec, "width", 0), H = jint(rec, "height", 0), fill = jint(rec, "fill", 0);
    if (dcl_image_alloc(img, W, H)) return 0;
    memset(img->data, fill, (size_t)W * H * 3);
    const cJSON *L;
    cJSON_ArrayForEach(L, cJSON_GetObjectItemCaseSensitive(rec, "layers")) {
        int x0 = jint(L, "x", 0), y0 = jint(L, "y", 0);
        if (cJSON_GetObjectItemCaseSensitive(L, "gradient")) {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    uint8_t *p = img->data + ((size_t)y * W + x) * 3;
                    p[0] = (uint8_t)(x * 255 / (W - 1));
                    p[1] = (uint8_t)(y * 255 / (H - 1));
                    p[2] = (uint8_t)((x + y) * 255 / (W + H - 2));
                }
            continue;
        }
        if (cJSON_GetObjectItemCaseSensitive(L, "lfw")) {
            int idx = jint(L, "lfw", 0), k = jint(L, "up", 1);
            if (load_lfw() <= idx) { *missing = "lfw_subset"; dcl_image_free(img); return 0; }
            int s = 25 * k;
            uint8_t *t = malloc((size_t)s * s * 3);
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++) {
                    double v = g_lfw_d[(size_t)idx * 625 + (y / k) * 25 + x / k];
                    uint8_t u = (uint8_t)nearbyint(v * 255.0);
                    memset(t + ((size_t)y * s + x) * 3, u, 3);
                }
            paste(img, t, s, s, x0, y0);
            free(t);
            continue;
        }
        const cJSON *pn = cJSON_GetObjectItemCaseSensitive(L, "photo");
        const dcl_image *ph = cJSON_IsString(pn) ? get_photo(pn->valuestring) : NULL;
        if (!ph) { *missing = cJSON_IsString(pn) ? pn->valuestring : "?"; dcl_image_free(img); return 0; }
        if (jint(L, "down2", 0)) {
            int w2 = ph->w / 2, h2 = ph->h / 2;
            uint8_t *t = malloc((size_t)w2 * h2 * 3);
            for (int y = 0; y < h2; y++)
                for (int x = 0; x < w2; x++)
                    for (int c = 0; c < 3; c++) {
                        const uint8_t *a = ph->data + ((size_t)(2 * y) * ph->w + 2 * x) * 3 + c;
                        const uint8_t *b = a + (size_t)ph->w * 3;
                        t[((size_t)y * w2 + x) * 3 + c] = (uint8_t)((a[0] + a[3] + b[0] + b[3] + 2) >> 2);
                    }
            paste(img, t, w2, h2, x0, y0);
            free(t);
        } else {
            paste(img, ph->data, ph->w, ph->h, x0, y0);
        }
    }
    return 1;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

/* -------------------------------------------------------- comparisons -- */

static double iou(const float *a, const float *b) {
    double xx1 = fmax(a[0], b[0]), yy1 = fmax(a[1], b[1]), xx2 = fmin(a[2], b[2]), yy2 = fmin(a[3], b[3]);
    double inter = fmax(0, xx2 - xx1) * fmax(0, yy2 - yy1);
    double ua = (double)(a[2] - a[0]) * (a[3] - a[1]) + (double)(b[2] - b[0]) * (b[3] - b[1]) - inter;
    return ua > 0 ? inter / ua : 0;
}

static double g_min_iou = 1.0, g_max_dprob, g_max_dlm;
static int g_compared_faces, g_compared_images, g_skipped_images;

static void compare_image(dcl_mtcnn *m, const cJSON *rec) {
    const char *name = cJSON_GetObjectItemCaseSensitive(rec, "name")->valuestring;
    const char *missing = NULL;
    dcl_image img = {0};
    if (!compose(&img, rec, &missing)) {
        printf("  %-16s SKIPPED: photograph '%s' not installed (see tools/make_face_goldens.py)\n", name,
               missing ? missing : "?");
        g_skipped_images++;
        return;
    }
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(rec, "fnv1a64");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(img.data, (size_t)img.w * img.h * 3));
    int same_pixels = cJSON_IsString(hs) && strcmp(hs->valuestring, hex) == 0;
    if (!same_pixels)
        printf("  note: %s: pixels differ from the ones the goldens were made from (decoder version?)\n", name);

    dcl_face *f = NULL;
    int n = 0;
    dcl_mtcnn_opts o;
    dcl_mtcnn_opts_default(&o);
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(rec, "opts");
    if (jo) {
        o.min_face_size = cJSON_GetObjectItemCaseSensitive(jo, "min_face_size")->valuedouble;
        o.factor = cJSON_GetObjectItemCaseSensitive(jo, "factor")->valuedouble;
        for (int k = 0; k < 3; k++)
            o.thresholds[k] = (float)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(jo, "thresholds"), k)->valuedouble;
    }
    CHECK_OK(dcl_mtcnn_detect(m, &img, &o, &f, &n));
    const cJSON *gf = cJSON_GetObjectItemCaseSensitive(rec, "faces");
    int ng = cJSON_GetArraySize(gf);
    CHECK(n == ng, "%s: dcl found %d faces, facenet-pytorch %d", name, n, ng);
    printf("  %-16s %dx%d: %d face(s), reference %d;", name, img.w, img.h, n, ng);
    int *used = calloc((size_t)n + 1, sizeof(int));
    const cJSON *g;
    int gi = 0;
    cJSON_ArrayForEach(g, gf) {
        float gb[4], gl[5][2];
        const cJSON *box = cJSON_GetObjectItemCaseSensitive(g, "box");
        for (int k = 0; k < 4; k++) gb[k] = (float)cJSON_GetArrayItem(box, k)->valuedouble;
        double gp = cJSON_GetObjectItemCaseSensitive(g, "prob")->valuedouble;
        const cJSON *lm = cJSON_GetObjectItemCaseSensitive(g, "landmarks");
        for (int k = 0; k < 5; k++)
            for (int d = 0; d < 2; d++) gl[k][d] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(lm, k), d)->valuedouble;
        int best = -1;
        double bi = 0;
        for (int j = 0; j < n; j++) {
            if (used[j]) continue;
            float fb[4] = {f[j].x1, f[j].y1, f[j].x2, f[j].y2};
            double v = iou(fb, gb);
            if (v > bi) { bi = v; best = j; }
        }
        printf(" IoU %.6f", bi);
        CHECK(best >= 0 && bi >= IOU_MIN, "%s: reference face %d (%.1f %.1f %.1f %.1f): best IoU %.4f < %.2f",
              name, gi, gb[0], gb[1], gb[2], gb[3], bi, IOU_MIN);
        if (best >= 0) {
            used[best] = 1;
            double dp = fabs(f[best].score - gp), dl = 0;
            for (int k = 0; k < 5; k++)
                for (int d = 0; d < 2; d++) dl = fmax(dl, fabs(f[best].lm[k][d] - gl[k][d]));
            CHECK(dp <= PROB_TOL, "%s: face %d probability %.5f vs %.5f", name, gi, f[best].score, gp);
            CHECK(dl <= LM_TOL, "%s: face %d landmark off by %.2f px", name, gi, dl);
            if (bi < g_min_iou) g_min_iou = bi;
            if (dp > g_max_dprob) g_max_dprob = dp;
            if (dl > g_max_dlm) g_max_dlm = dl;
            g_compared_faces++;
        }
        gi++;
    }
    printf("\n");
    free(used);
    free(f);
    g_compared_images++;
    dcl_image_free(&img);
}

/* --------------------------------------------------------- robustness -- */

static void test_robustness(dcl_mtcnn *m, dcl_backend *be) {
    dcl_face *f = NULL;
    int n = -1;
    /* tiny images: no pyramid level at all, or just one */
    int sizes[][2] = {{1, 1}, {5, 3}, {19, 40}, {20, 20}, {24, 24}, {13, 200}};
    for (int i = 0; i < 6; i++) {
        dcl_image img;
        CHECK_OK(dcl_image_alloc(&img, sizes[i][0], sizes[i][1]));
        for (size_t k = 0; k < (size_t)img.w * img.h * 3; k++) img.data[k] = (uint8_t)(k * 37);
        n = -1;
        CHECK_OK(dcl_mtcnn_detect(m, &img, NULL, &f, &n));
        CHECK(n == 0 && f == NULL, "%dx%d: %d faces", img.w, img.h, n);
        free(f);
        dcl_image_free(&img);
    }
    /* flat image */
    dcl_image flat;
    CHECK_OK(dcl_image_alloc(&flat, 200, 150));
    memset(flat.data, 128, (size_t)200 * 150 * 3);
    CHECK_OK(dcl_mtcnn_detect(m, &flat, NULL, &f, &n));
    CHECK(n == 0, "flat image: %d faces", n);
    free(f);
    /* bad arguments: clear errors, no crash */
    dcl_image bad = flat;
    bad.c = 1;
    CHECK(dcl_mtcnn_detect(m, &bad, NULL, &f, &n) == DCL_ERR_ARG && f == NULL && n == 0, "1-channel image accepted");
    CHECK(strstr(dcl_last_error(), "RGB") != NULL, "message: %s", dcl_last_error());
    CHECK(dcl_mtcnn_detect(m, NULL, NULL, &f, &n) == DCL_ERR_ARG, "NULL image accepted");
    CHECK(dcl_mtcnn_detect(NULL, &flat, NULL, &f, &n) == DCL_ERR_ARG, "NULL detector accepted");
    dcl_mtcnn_opts o;
    dcl_mtcnn_opts_default(&o);
    o.factor = 1.0f;
    CHECK(dcl_mtcnn_detect(m, &flat, &o, &f, &n) == DCL_ERR_ARG, "factor 1 accepted");
    CHECK(strstr(dcl_last_error(), "factor") != NULL, "message: %s", dcl_last_error());
    dcl_mtcnn_opts_default(&o);
    o.min_face_size = 0;
    CHECK(dcl_mtcnn_detect(m, &flat, &o, &f, &n) == DCL_ERR_ARG, "min_face_size 0 accepted");
    dcl_mtcnn_opts_default(&o);
    o.thresholds[1] = NAN;
    CHECK(dcl_mtcnn_detect(m, &flat, &o, &f, &n) == DCL_ERR_ARG, "NaN threshold accepted");
    dcl_image_free(&flat);

    /* a huge image: the capped pyramid keeps the work bounded */
    dcl_image huge;
    CHECK_OK(dcl_image_alloc(&huge, 4000, 3000));
    for (int y = 0; y < huge.h; y++)
        for (int x = 0; x < huge.w; x++) {
            uint8_t *p = huge.data + ((size_t)y * huge.w + x) * 3;
            p[0] = (uint8_t)(x >> 4); p[1] = (uint8_t)(y >> 4); p[2] = 90;
        }
    double t0 = dcl_now();
    CHECK_OK(dcl_mtcnn_detect(m, &huge, NULL, &f, &n));
    printf("  4000x3000 gradient: %d faces in %.0f ms (pyramid capped at 2048 px)\n", n, 1e3 * (dcl_now() - t0));
    CHECK(n == 0, "huge gradient: %d faces", n);
    free(f);
    /* uncapped, a pyramid level of billions of pixels is refused up front */
    dcl_mtcnn_opts_default(&o);
    o.max_pyramid_side = 0;
    o.min_face_size = 1;
    CHECK(dcl_mtcnn_detect(m, &huge, &o, &f, &n) == DCL_ERR_ARG && n == 0, "giant pyramid level accepted");
    CHECK(strstr(dcl_last_error(), "max_pyramid_side") != NULL, "message: %s", dcl_last_error());
    dcl_image_free(&huge);

    /* weight files */
    dcl_mtcnn *m2 = NULL;
    CHECK(dcl_mtcnn_create(&m2, be, "/nonexistent/mtcnn.safetensors") != DCL_OK && m2 == NULL, "missing file accepted");
    CHECK(strstr(dcl_last_error(), "/nonexistent/mtcnn.safetensors") != NULL, "message: %s", dcl_last_error());
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open(&st, weights_path()));
    if (st) {
        /* a copy without onet.dense6_3.bias, and one with rnet.dense4.weight mis-shaped */
        for (int variant = 0; variant < 2; variant++) {
            dcl_st_writer *w = NULL;
            CHECK_OK(dcl_st_writer_new(&w));
            for (int i = 0; i < dcl_st_count(st); i++) {
                const dcl_st_entry *e = dcl_st_get(st, i);
                if (variant == 0 && strcmp(e->name, "onet.dense6_3.bias") == 0) continue;
                int64_t shape[DCL_MAX_DIMS];
                memcpy(shape, e->shape, sizeof shape);
                int nd = e->ndim;
                if (variant == 1 && strcmp(e->name, "rnet.dense4.weight") == 0) { shape[0] = 576; shape[1] = 128; }
                dcl_st_writer_add(w, e->name, e->dtype, nd, shape, e->data);
            }
            char path[] = "/tmp/dcl_test_face_XXXXXX";
            int fd = mkstemp(path);
            if (fd >= 0) close(fd);
            CHECK_OK(dcl_st_write_file(w, path));
            dcl_st_writer_free(w);
            dcl_status s = dcl_mtcnn_create(&m2, be, path);
            const char *want = variant == 0 ? "onet.dense6_3.bias" : "rnet.dense4.weight";
            CHECK(s != DCL_OK && m2 == NULL, "broken weights (variant %d) accepted", variant);
            CHECK(strstr(dcl_last_error(), want) != NULL, "message does not name %s: %s", want, dcl_last_error());
            unlink(path);
        }
        dcl_st_close(st);
    }
}

/* ------------------------------------------------------------- crops -- */

static void test_crops(void) {
    dcl_crop_rect r;
    /* box 100 x 80 at (10, 20): side round(130) = 130, centre (60, 60) */
    CHECK_OK(dcl_face_crop_rect(&r, 10, 20, 110, 100, 1.3f));
    CHECK(r.side == 130 && r.x0 == -5 && r.y0 == -5, "rect %d %d %d", r.x0, r.y0, r.side);
    /* tall box: the longer side counts; fractional centre rounds half up */
    CHECK_OK(dcl_face_crop_rect(&r, 200.25f, 100, 240.25f, 200, 1.3f));
    CHECK(r.side == 130 && r.x0 == 155 && r.y0 == 85, "rect %d %d %d", r.x0, r.y0, r.side);
    CHECK_OK(dcl_face_crop_rect(&r, 0, 0, 10, 10, 1.0f));
    CHECK(r.side == 10 && r.x0 == 0 && r.y0 == 0, "rect %d %d %d", r.x0, r.y0, r.side);
    CHECK_OK(dcl_face_crop_rect(&r, 5, 5, 5, 5, 1.3f));   /* degenerate box: one pixel */
    CHECK(r.side == 1, "side %d", r.side);
    CHECK(dcl_face_crop_rect(&r, 10, 10, 5, 20, 1.3f) == DCL_ERR_ARG, "inverted box accepted");
    CHECK(dcl_face_crop_rect(&r, NAN, 10, 5, 20, 1.3f) == DCL_ERR_ARG, "NaN box accepted");
    CHECK(dcl_face_crop_rect(&r, 0, 0, 5, 5, 0) == DCL_ERR_ARG, "scale 0 accepted");
    CHECK(dcl_face_crop_rect(&r, 0, 0, 1e7f, 1e7f, 1.3f) == DCL_ERR_ARG, "giant window accepted");

    /* pixels encode their coordinates: an unresized crop is an exact copy
     * with zeros outside the image */
    dcl_image src;
    CHECK_OK(dcl_image_alloc(&src, 64, 48));
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = src.data + ((size_t)y * 64 + x) * 3;
            p[0] = (uint8_t)(x + 1); p[1] = (uint8_t)(y + 1); p[2] = 200;
        }
    CHECK_OK(dcl_face_crop_rect(&r, 40, 30, 60, 50, 1.5f));  /* side 30, centre (50, 40) -> x0 35, y0 25 */
    CHECK(r.side == 30 && r.x0 == 35 && r.y0 == 25, "rect %d %d %d", r.x0, r.y0, r.side);
    dcl_image c = {0};
    CHECK_OK(dcl_face_crop_apply(&c, &src, &r, 30));
    int bad = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 30; x++) {
            int sx = r.x0 + x, sy = r.y0 + y, inside = sx < 64 && sy < 48;
            const uint8_t *p = c.data + ((size_t)y * 30 + x) * 3;
            if (inside ? (p[0] != sx + 1 || p[1] != sy + 1 || p[2] != 200) : (p[0] || p[1] || p[2])) bad++;
        }
    CHECK(bad == 0, "%d pixels of the unresized crop wrong", bad);
    dcl_image_free(&c);

    /* a white square exactly on the box ends up centred, 1/1.3 of the crop */
    dcl_image sq;
    CHECK_OK(dcl_image_alloc(&sq, 400, 300));
    memset(sq.data, 0, (size_t)400 * 300 * 3);
    int bx1 = 150, by1 = 90, bx2 = 250, by2 = 190;   /* 100 x 100 */
    for (int y = by1; y < by2; y++) memset(sq.data + ((size_t)y * 400 + bx1) * 3, 255, (size_t)(bx2 - bx1) * 3);
    dcl_face face = {.x1 = bx1, .y1 = by1, .x2 = bx2, .y2 = by2, .score = 1};
    dcl_image *crops = NULL;
    dcl_crop_rect *rects = NULL;
    int nc = 0;
    CHECK_OK(dcl_face_crops(&crops, &rects, &nc, &sq, &face, 1, NULL));
    CHECK(nc == 1 && crops && crops[0].w == 299 && crops[0].h == 299, "crop count %d", nc);
    if (nc == 1) {
        double sx = 0, sy = 0, cnt = 0;
        for (int y = 0; y < 299; y++)
            for (int x = 0; x < 299; x++) {
                double v = crops[0].data[((size_t)y * 299 + x) * 3] / 255.0;
                sx += v * (x + 0.5); sy += v * (y + 0.5); cnt += v;
            }
        double side = sqrt(cnt);   /* white area -> side */
        CHECK(fabs(sx / cnt - 149.5) < 0.5 && fabs(sy / cnt - 149.5) < 0.5, "centroid %.2f %.2f", sx / cnt, sy / cnt);
        CHECK(fabs(side - 299 / 1.3) < 1.5, "white side %.2f, expected %.2f", side, 299 / 1.3);
        CHECK(rects[0].side == 130 && rects[0].x0 == 135 && rects[0].y0 == 75, "rect %d %d %d",
              rects[0].x0, rects[0].y0, rects[0].side);
    }
    dcl_face_crops_free(crops, rects, nc);

    /* a face at the corner: the part outside the image is black */
    dcl_image white;
    CHECK_OK(dcl_image_alloc(&white, 100, 100));
    memset(white.data, 255, (size_t)100 * 100 * 3);
    dcl_face corner = {.x1 = -20, .y1 = -20, .x2 = 20, .y2 = 20, .score = 1};   /* centre (0,0) */
    dcl_facecrop_opts co;
    dcl_facecrop_opts_default(&co);
    co.size = 52;   /* window 52 = round(40 * 1.3): no resampling */
    CHECK_OK(dcl_face_crops(&crops, &rects, &nc, &white, &corner, 1, &co));
    if (nc == 1) {
        CHECK(rects[0].x0 == -26 && rects[0].y0 == -26 && rects[0].side == 52, "rect %d %d %d",
              rects[0].x0, rects[0].y0, rects[0].side);
        int wrong = 0;
        for (int y = 0; y < 52; y++)
            for (int x = 0; x < 52; x++) {
                int in = x >= 26 && y >= 26;
                if (crops[0].data[((size_t)y * 52 + x) * 3] != (in ? 255 : 0)) wrong++;
            }
        CHECK(wrong == 0, "%d border pixels wrong", wrong);
    }
    dcl_face_crops_free(crops, rects, nc);

    /* largest face / all faces, and the mask crop matches the image crop */
    dcl_face three[3] = {
        {.x1 = 10, .y1 = 10, .x2 = 40, .y2 = 40, .score = 0.99f},
        {.x1 = 100, .y1 = 50, .x2 = 180, .y2 = 140, .score = 0.9f},
        {.x1 = 200, .y1 = 20, .x2 = 260, .y2 = 70, .score = 0.95f},
    };
    CHECK(dcl_face_largest(three, 3) == 1, "largest %d", dcl_face_largest(three, 3));
    CHECK(dcl_face_largest(three, 0) == -1, "largest of none");
    CHECK_OK(dcl_face_crops(&crops, &rects, &nc, &sq, three, 3, NULL));
    CHECK(nc == 1 && rects && rects[0].side == 117, "largest only: %d crops", nc);
    dcl_face_crops_free(crops, rects, nc);
    co.size = 64;
    co.all_faces = 1;
    CHECK_OK(dcl_face_crops(&crops, &rects, &nc, &sq, three, 3, &co));
    CHECK(nc == 3, "all faces: %d crops", nc);
    float *mask = malloc(sizeof(float) * 400 * 300), *mc = malloc(sizeof(float) * 64 * 64);
    for (int i = 0; i < 400 * 300; i++) mask[i] = sq.data[(size_t)i * 3];
    for (int k = 0; k < nc; k++) {
        CHECK_OK(dcl_face_crop_apply_f32(mc, mask, 400, 300, 1, &rects[k], 64));
        double worst = 0;
        for (int i = 0; i < 64 * 64; i++) worst = fmax(worst, fabs(mc[i] - crops[k].data[(size_t)i * 3]));
        CHECK(worst <= 0.5001, "mask crop %d differs from the image crop by %.3f", k, worst);
    }
    free(mask);
    free(mc);
    dcl_face_crops_free(crops, rects, nc);
    CHECK_OK(dcl_face_crops(&crops, &rects, &nc, &sq, NULL, 0, NULL));
    CHECK(nc == 0 && crops == NULL, "no faces -> no crops");
    dcl_image bad_img = sq;
    bad_img.data = NULL;
    CHECK(dcl_face_crops(&crops, &rects, &nc, &bad_img, three, 3, NULL) == DCL_ERR_ARG && nc == 0, "bad image accepted");
    dcl_image_free(&white);
    dcl_image_free(&sq);
    dcl_image_free(&src);
}

/* ---------------------------------------------------------------- main -- */

int main(void) {
    test_crops();

    /* DCL_FACE_BACKEND picks another backend ("ref", "cuda") for the same checks */
    const char *bname = getenv("DCL_FACE_BACKEND");
    if (!bname || !*bname) bname = "cpu";
    dcl_backend *be = dcl_backend_create(bname, 2);
    CHECK(be != NULL, "%s backend: %s", bname, dcl_last_error());
    if (!be) CHECK_DONE();
    dcl_mtcnn *m = NULL;
    CHECK_OK(dcl_mtcnn_create(&m, be, weights_path()));
    if (!m) { dcl_backend_destroy(be); CHECK_DONE(); }

    char path[4096];
    cJSON *doc = NULL;
    CHECK_OK(dcl_json_load(&doc, golden_path(path, sizeof path, "face/mtcnn_goldens.json")));
    if (doc) {
        g_photo_paths = cJSON_GetObjectItemCaseSensitive(doc, "photos");
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(doc, "images")) compare_image(m, rec);
        printf("  compared %d faces in %d images (%d skipped): min IoU %.6f, max |dprob| %.2e, max landmark error %.2e px\n",
               g_compared_faces, g_compared_images, g_skipped_images, g_min_iou, g_max_dprob, g_max_dlm);
        CHECK(g_compared_images > 0, "no reference image could be built: install python3-skimage");
        if (g_skipped_images)
            printf("  SKIPPED %d of %d reference images: photographs missing (Debian packages python3-skimage, "
                   "python-matplotlib-data)\n", g_skipped_images, g_skipped_images + g_compared_images);

        /* time per 1280x720 frame */
        const cJSON *frame = NULL;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(doc, "images"))
            if (strcmp(cJSON_GetObjectItemCaseSensitive(rec, "name")->valuestring, "frame720") == 0) frame = rec;
        dcl_image img = {0};
        const char *missing = NULL;
        const char *what = "frame720";
        if (!frame || !compose(&img, frame, &missing)) {
            what = "synthetic";   /* photographs missing: time a noise frame */
            CHECK_OK(dcl_image_alloc(&img, 1280, 720));
            uint32_t st = 12345;
            for (size_t i = 0; img.data && i < (size_t)1280 * 720 * 3; i++) {
                st = st * 1664525u + 1013904223u;
                img.data[i] = (uint8_t)(st >> 24);
            }
        }
        if (img.data) {
            dcl_face *f = NULL;
            int n = 0;
            CHECK_OK(dcl_mtcnn_detect(m, &img, NULL, &f, &n));   /* warm-up: plans */
            free(f);
            int reps = 5;
            double t0 = dcl_now();
            for (int i = 0; i < reps; i++) {
                CHECK_OK(dcl_mtcnn_detect(m, &img, NULL, &f, &n));
                free(f);
            }
            printf("  timing: %.1f ms per 1280x720 frame (%s, %d faces, %s backend, 2 threads)\n",
                   1e3 * (dcl_now() - t0) / reps, what, n, bname);
            dcl_image_free(&img);
        }
        cJSON_Delete(doc);
    }

    test_robustness(m, be);

    dcl_mtcnn_free(m);
    dcl_backend_destroy(be);
    for (int i = 0; i < g_nphotos; i++) dcl_image_free(&g_photos[i].img);
    free(g_lfw);
    free(g_lfw_d);
    CHECK_DONE();
}
