/* Test helpers: see datautil.h. */
#include "datautil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *du_face_photo_path = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";

/* ------------------------------------------------------------------------ */
/* files                                                                     */

const char *du_join(char *buf, size_t n, const char *a, const char *b) {
    snprintf(buf, n, "%s/%s", a, b);
    return buf;
}

int du_tmpdir(char *out, size_t n, const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(out, n, "%s/dcl-%s-XXXXXX", base, tag);
    return mkdtemp(out) ? 0 : -1;
}

void du_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char sub[4096];
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                du_rmtree(du_join(sub, sizeof sub, path, e->d_name));
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

int du_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static int mkparent(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *s = strrchr(buf, '/');
    if (!s || s == buf) return 0;
    *s = 0;
    return du_mkdirs(buf);
}

int du_write_bytes(const char *path, const void *data, size_t n) {
    if (mkparent(path) != 0) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int ok = (w == n);
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

int du_write_text(const char *path, const char *text) { return du_write_bytes(path, text, strlen(text)); }

char *du_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(sz + 1);
    if (b && fread(b, 1, sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[sz] = 0; if (n) *n = sz; }
    return b;
}

/* ------------------------------------------------------------------------ */
/* pictures                                                                  */

int du_write_png(const char *path, const dcl_image *im) {
    if (mkparent(path) != 0) return -1;
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = im->w;
    p.height = im->h;
    p.format = im->c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    return png_image_write_to_file(&p, path, 0, im->data, im->w * im->c, NULL) ? 0 : -1;
}

/* The portrait: in the 512x512 astronaut photograph the head spans about
 * x 150..330, y 20..230; take a 280x280 square around it. */
#define CROP_X 100
#define CROP_Y 0
#define CROP_S 280
/* face ellipse in portrait coordinates (fractions of the side) */
#define FACE_CX 0.50
#define FACE_CY 0.47
#define FACE_RX 0.20
#define FACE_RY 0.27

static void draw_face(dcl_image *o) {
    int s = 160;
    o->w = o->h = s; o->c = 3;
    o->data = malloc((size_t)s * s * 3);
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            double u = (x + 0.5) / s, v = (y + 0.5) / s;
            uint8_t *p = o->data + ((size_t)y * s + x) * 3;
            /* backdrop */
            p[0] = (uint8_t)(150 + 40 * v); p[1] = (uint8_t)(160 + 30 * u); p[2] = 190;
            double fx = (u - FACE_CX) / FACE_RX, fy = (v - FACE_CY) / FACE_RY;
            double hx = (u - FACE_CX) / (FACE_RX * 1.25), hy = (v - FACE_CY + 0.06) / (FACE_RY * 1.15);
            if (hx * hx + hy * hy < 1) { p[0] = 110; p[1] = 75; p[2] = 40; }          /* hair */
            if (v > 0.72 && fabs(u - 0.5) < 0.35) { p[0] = 230; p[1] = 110; p[2] = 40; } /* shoulders */
            if (fx * fx + fy * fy < 1) {                                              /* skin */
                p[0] = (uint8_t)(225 - 20 * fy); p[1] = (uint8_t)(180 - 15 * fy); p[2] = (uint8_t)(150 - 10 * fy);
                for (int e = -1; e <= 1; e += 2) { /* eyes */
                    double ex = (u - (FACE_CX + e * 0.075)) / 0.035, ey = (v - (FACE_CY - 0.05)) / 0.02;
                    if (ex * ex + ey * ey < 1) { p[0] = 50; p[1] = 40; p[2] = 40; }
                }
                double mx = (u - FACE_CX) / 0.07, my = (v - (FACE_CY + 0.13)) / 0.02; /* mouth */
                if (mx * mx + my * my < 1) { p[0] = 170; p[1] = 60; p[2] = 70; }
                double nx = (u - FACE_CX) / 0.015, ny = (v - (FACE_CY + 0.04)) / 0.05; /* nose */
                if (nx * nx + ny * ny < 1) { p[0] = 200; p[1] = 150; p[2] = 125; }
            }
        }
}

int du_face_photo(dcl_image *out) {
    memset(out, 0, sizeof *out);
    const char *env = getenv("DCL_TEST_FACE_PHOTO"); /* another photograph, or "" for the drawing */
    if (env) du_face_photo_path = env;
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (access(du_face_photo_path, R_OK) == 0 && png_image_begin_read_from_file(&p, du_face_photo_path)) {
        p.format = PNG_FORMAT_RGB;
        size_t n = PNG_IMAGE_SIZE(p);
        uint8_t *buf = malloc(n);
        if (buf && png_image_finish_read(&p, NULL, buf, 0, NULL) && p.width >= CROP_X + CROP_S && p.height >= CROP_Y + CROP_S) {
            out->w = out->h = CROP_S; out->c = 3;
            out->data = malloc((size_t)CROP_S * CROP_S * 3);
            for (int y = 0; y < CROP_S; y++)
                memcpy(out->data + (size_t)y * CROP_S * 3, buf + ((size_t)(y + CROP_Y) * p.width + CROP_X) * 3, CROP_S * 3);
            free(buf);
            return 1;
        }
        free(buf);
        png_image_free(&p);
    }
    draw_face(out);
    return out->data ? 0 : -1;
}

static void sample_bilinear(const dcl_image *im, double x, double y, double *rgb) {
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > im->w - 1) x = im->w - 1;
    if (y > im->h - 1) y = im->h - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < im->w ? x0 + 1 : x0, y1 = y0 + 1 < im->h ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    for (int c = 0; c < 3; c++) {
        double a = im->data[((size_t)y0 * im->w + x0) * 3 + c], b = im->data[((size_t)y0 * im->w + x1) * 3 + c];
        double d = im->data[((size_t)y1 * im->w + x0) * 3 + c], e = im->data[((size_t)y1 * im->w + x1) * 3 + c];
        rgb[c] = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy;
    }
}

static uint8_t clamp8(double v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)lround(v); }

void du_render_frame(dcl_image *dst, const dcl_image *face, int t, int nframes, int variant, int mask) {
    int w = dst->w, h = dst->h;
    double a = nframes > 1 ? (double)t / (nframes - 1) : 0;
    double side = h * (0.80 + 0.30 * a);          /* zoom */
    double cx = w * (0.40 + 0.20 * a), cy = h * 0.5; /* move */
    double x0 = cx - side / 2, y0 = cy - side / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = dst->data + ((size_t)y * w + x) * 3;
            double u = (x + 0.5 - x0) / side, v = (y + 0.5 - y0) / side; /* portrait coords */
            double fx = (u - FACE_CX) / FACE_RX, fy = (v - FACE_CY) / FACE_RY;
            int in_face = fx * fx + fy * fy < 1;
            if (mask) {
                uint8_t m = in_face ? 255 : 0;
                p[0] = p[1] = p[2] = m;
                continue;
            }
            double rgb[3];
            if (u >= 0 && u < 1 && v >= 0 && v < 1) {
                double sx = u * face->w - 0.5, sy = v * face->h - 0.5;
                sample_bilinear(face, sx, sy, rgb);
                if (in_face && variant > 0) {
                    double q[3];
                    switch (variant % 4) {
                    case 1: rgb[0] += 28; rgb[2] -= 22; break;             /* colour shift */
                    case 2:                                                 /* blur */
                        for (int c = 0; c < 3; c++) q[c] = 0;
                        for (int k = 0; k < 4; k++) {
                            double o[3];
                            sample_bilinear(face, sx + (k & 1 ? 3 : -3), sy + (k & 2 ? 3 : -3), o);
                            for (int c = 0; c < 3; c++) q[c] += o[c] / 4;
                        }
                        for (int c = 0; c < 3; c++) rgb[c] = q[c];
                        break;
                    case 3: for (int c = 0; c < 3; c++) rgb[c] = 32 * floor(rgb[c] / 32) + 16; break; /* banding */
                    default: /* mirrored face */
                        sample_bilinear(face, (1 - u) * face->w - 0.5, sy, rgb);
                        rgb[1] += 12;
                        break;
                    }
                }
            } else {
                /* smooth background that drifts with t */
                rgb[0] = 90 + 60 * sin(0.07 * x + 0.3 * t);
                rgb[1] = 110 + 50 * cos(0.09 * y - 0.2 * t);
                rgb[2] = 140 + 40 * sin(0.05 * (x + y));
            }
            p[0] = clamp8(rgb[0]); p[1] = clamp8(rgb[1]); p[2] = clamp8(rgb[2]);
        }
}

static dcl_image g_face;
static int g_face_kind = -2;

static const dcl_image *cached_face(void) {
    if (g_face_kind == -2) g_face_kind = du_face_photo(&g_face);
    return g_face_kind >= 0 ? &g_face : NULL;
}

dcl_status du_write_clip(const char *path, int w, int h, int nframes, double fps, int variant, int mask,
                         const dcl_video_writer_opts *opts) {
    const dcl_image *face = cached_face();
    if (!face) return dcl_fail(DCL_ERR_NOMEM, "no face picture");
    if (mkparent(path) != 0) return dcl_fail(DCL_ERR_IO, "%s: cannot create parent directory", path);
    dcl_video_writer *wr = NULL;
    DCL_TRY(dcl_video_writer_open(&wr, path, w, h, fps, opts));
    dcl_image fr = {w, h, 3, malloc((size_t)w * h * 3)};
    dcl_status s = fr.data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "frame");
    for (int t = 0; t < nframes && s == DCL_OK; t++) {
        du_render_frame(&fr, face, t, nframes, variant, mask);
        s = dcl_video_writer_write(wr, &fr);
    }
    free(fr.data);
    if (s != DCL_OK) { dcl_video_writer_abort(wr); return s; }
    return dcl_video_writer_close(wr);
}

double du_psnr(const dcl_image *a, const dcl_image *b) {
    if (a->w != b->w || a->h != b->h || a->c != b->c) return -1;
    size_t n = (size_t)a->w * a->h * a->c;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->data[i] - b->data[i];
        se += d * d;
    }
    if (se == 0) return INFINITY;
    return 10 * log10(255.0 * 255.0 / (se / n));
}

double du_psnr_luma(const dcl_image *a, const dcl_image *b) {
    if (a->w != b->w || a->h != b->h || a->c != 3 || b->c != 3) return -1;
    size_t n = (size_t)a->w * a->h;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = a->data + 3 * i, *q = b->data + 3 * i;
        double d = 0.299 * ((double)p[0] - q[0]) + 0.587 * ((double)p[1] - q[1]) + 0.114 * ((double)p[2] - q[2]);
        se += d * d;
    }
    if (se == 0) return INFINITY;
    return 10 * log10(255.0 * 255.0 / (se / n));
}

/* ------------------------------------------------------------------------ */
/* replicas                                                                  */

du_replica_opts du_replica_defaults(void) {
    du_replica_opts o = {1, 96, 64, 8, 1};
    return o;
}

/* a clip (or an empty placeholder) at root/rel */
static dcl_status put_video(const char *root, const char *rel, const du_replica_opts *o, int variant, int mask) {
    char p[4096];
    du_join(p, sizeof p, root, rel);
    if (!o->videos) {
        if (du_write_bytes(p, "", 0) != 0) return dcl_fail(DCL_ERR_IO, "%s: cannot create", p);
        return DCL_OK;
    }
    dcl_video_writer_opts wo = {"mpeg4", 4, 4, 0, 0};
    return du_write_clip(p, o->w, o->h, o->nframes, 25.0, variant, mask, &wo);
}

static dcl_status put_text(const char *root, const char *rel, const char *text) {
    char p[4096];
    du_join(p, sizeof p, root, rel);
    if (du_write_text(p, text) != 0) return dcl_fail(DCL_ERR_IO, "%s: cannot write", p);
    return DCL_OK;
}

static dcl_status put_png(const char *root, const char *rel, int variant, int t) {
    const dcl_image *face = cached_face();
    if (!face) return dcl_fail(DCL_ERR_NOMEM, "no face picture");
    dcl_image im = {64, 64, 3, malloc(64 * 64 * 3)};
    if (!im.data) return dcl_fail(DCL_ERR_NOMEM, "png");
    du_render_frame(&im, face, t, 16, variant, 0);
    char p[4096];
    du_join(p, sizeof p, root, rel);
    int r = du_write_png(p, &im);
    free(im.data);
    return r == 0 ? DCL_OK : dcl_fail(DCL_ERR_IO, "%s: cannot write png", p);
}

dcl_status du_make_ffpp(const char *root, const du_replica_opts *o) {
    static const char *methods[] = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"};
    static const int pairs[4][2] = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
    char rel[512];
    for (int i = 0; i < 8; i++) {
        snprintf(rel, sizeof rel, "original_sequences/youtube/c23/videos/%03d.mp4", i);
        DCL_TRY(put_video(root, rel, o, 0, 0));
    }
    for (int m = 0; m < 5; m++)
        for (int p = 0; p < 4; p++)
            for (int d = 0; d < 2; d++) {
                int t = pairs[p][d], s = pairs[p][1 - d];
                snprintf(rel, sizeof rel, "manipulated_sequences/%s/c23/videos/%03d_%03d.mp4", methods[m], t, s);
                DCL_TRY(put_video(root, rel, o, m + 1, 0));
                if (m < 4 && !(o->defects && m == 3 && t == 7 && s == 6)) {
                    snprintf(rel, sizeof rel, "manipulated_sequences/%s/masks/videos/%03d_%03d.mp4", methods[m], t, s);
                    DCL_TRY(put_video(root, rel, o, 0, 1));
                }
            }
    DCL_TRY(put_video(root, "original_sequences/youtube/c40/videos/000.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "original_sequences/youtube/c40/videos/001.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "manipulated_sequences/Deepfakes/c40/videos/000_001.mp4", o, 1, 0));
    DCL_TRY(put_text(root, "splits/train.json", "[\n  [\n    \"000\",\n    \"001\"\n  ],\n  [\n    \"002\",\n    \"003\"\n  ]\n]\n"));
    DCL_TRY(put_text(root, "splits/val.json", "[[\"004\", \"005\"]]\n"));
    DCL_TRY(put_text(root, "splits/test.json", "[[\"006\", \"007\"]]\n"));
    /* DFD */
    DCL_TRY(put_video(root, "original_sequences/actors/c23/videos/01__exit_phone_room.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "original_sequences/actors/c23/videos/02__exit_phone_room.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "original_sequences/actors/c23/videos/01__kitchen_pan.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4", o, 2, 0));
    DCL_TRY(put_video(root, "manipulated_sequences/DeepFakeDetection/c23/videos/02_01__exit_phone_room__ABCDEFGH.mp4", o, 2, 0));
    DCL_TRY(put_video(root, "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen_pan__QWERTYUI.mp4", o, 2, 0));
    DCL_TRY(put_video(root, "manipulated_sequences/DeepFakeDetection/masks/videos/01_02__exit_phone_room__YVGY8LOK.mp4", o, 0, 1));
    if (o->defects) {
        DCL_TRY(put_video(root, "manipulated_sequences/Deepfakes/c23/videos/008_009.mp4", o, 1, 0));
        DCL_TRY(put_text(root, "manipulated_sequences/Face2Face/c23/videos/notes.txt", "not a video\n"));
        DCL_TRY(put_video(root, "manipulated_sequences/FaceSwap/c23/videos/bad_name.mp4", o, 3, 0));
        DCL_TRY(put_video(root, "manipulated_sequences/DeepFakeDetection/c23/videos/03_01__hallway__ZZZZZZZZ.mp4", o, 2, 0));
    }
    return DCL_OK;
}

dcl_status du_make_celebdf(const char *root, const du_replica_opts *o) {
    static const char *reals[] = {"Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4",
                                  "Celeb-real/id2_0000.mp4", "YouTube-real/00000.mp4", "YouTube-real/00001.mp4",
                                  "YouTube-real/00170.mp4"};
    static const char *fakes[] = {"Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id0_id2_0001.mp4",
                                  "Celeb-synthesis/id1_id0_0000.mp4", "Celeb-synthesis/id2_id1_0000.mp4"};
    for (int i = 0; i < 7; i++) DCL_TRY(put_video(root, reals[i], o, 0, 0));
    for (int i = 0; i < 4; i++) DCL_TRY(put_video(root, fakes[i], o, 1 + i, 0));
    const char *list = "1 YouTube-real/00170.mp4\n1 Celeb-real/id2_0000.mp4\n0 Celeb-synthesis/id2_id1_0000.mp4\n";
    if (o->defects) {
        DCL_TRY(put_video(root, "Celeb-synthesis/id3_id0_0000.mp4", o, 2, 0));
        list = "1 YouTube-real/00170.mp4\n1 Celeb-real/id2_0000.mp4\n0 Celeb-synthesis/id2_id1_0000.mp4\n"
               "0 Celeb-synthesis/id9_id8_0000.mp4\ngarbage\n0 Celeb-real/id0_0001.mp4\n";
    }
    return put_text(root, "List_of_testing_videos.txt", list);
}

dcl_status du_make_dfdc(const char *root, const du_replica_opts *o) {
    DCL_TRY(put_video(root, "dfdc_train_part_0/aaaaaaaaaa.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "dfdc_train_part_0/bbbbbbbbbb.mp4", o, 1, 0));
    DCL_TRY(put_video(root, "dfdc_train_part_0/cccccccccc.mp4", o, 2, 0));
    DCL_TRY(put_text(root, "dfdc_train_part_0/metadata.json",
                     "{\"aaaaaaaaaa.mp4\": {\"label\": \"REAL\", \"split\": \"train\", \"original\": null},"
                     " \"bbbbbbbbbb.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"aaaaaaaaaa.mp4\"},"
                     " \"cccccccccc.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"aaaaaaaaaa.mp4\"}}"));
    DCL_TRY(put_video(root, "dfdc_train_part_1/dddddddddd.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "dfdc_train_part_1/eeeeeeeeee.mp4", o, 3, 0));
    const char *meta1 =
        "{\"dddddddddd.mp4\": {\"label\": \"REAL\", \"split\": \"train\", \"original\": null},"
        " \"eeeeeeeeee.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"dddddddddd.mp4\"}}";
    DCL_TRY(put_video(root, "test/videos/testaaaaaa.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "test/videos/testbbbbbb.mp4", o, 4, 0));
    const char *labels = "filename,label\ntestaaaaaa.mp4,0\ntestbbbbbb.mp4,1\n";
    if (o->defects) {
        meta1 = "{\"dddddddddd.mp4\": {\"label\": \"REAL\", \"split\": \"train\", \"original\": null},"
                " \"eeeeeeeeee.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"dddddddddd.mp4\"},"
                " \"ffffffffff.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"dddddddddd.mp4\"},"
                " \"gggggggggg.mp4\": {\"label\": \"FAKE\", \"split\": \"train\", \"original\": \"zzzzzzzzzz.mp4\"}}";
        DCL_TRY(put_video(root, "dfdc_train_part_1/gggggggggg.mp4", o, 1, 0));
        DCL_TRY(put_video(root, "dfdc_train_part_1/hhhhhhhhhh.mp4", o, 1, 0));
        DCL_TRY(put_video(root, "dfdc_train_part_2/iiiiiiiiii.mp4", o, 1, 0));
        DCL_TRY(put_video(root, "test/videos/testcccccc.mp4", o, 0, 0));
        labels = "filename,label\ntestaaaaaa.mp4,0\ntestbbbbbb.mp4,1\ntestcccccc.mp4,maybe\n";
    }
    DCL_TRY(put_text(root, "dfdc_train_part_1/metadata.json", meta1));
    return put_text(root, "test/labels.csv", labels);
}

dcl_status du_make_dfdcp(const char *root, const du_replica_opts *o) {
    DCL_TRY(put_video(root, "original_videos/1255229/1255229_A_001.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "original_videos/1224068/1224068_A_001.mp4", o, 0, 0));
    DCL_TRY(put_video(root, "method_A/1255229/1255229_1224068_A/1255229_1224068_A_001.mp4", o, 1, 0));
    DCL_TRY(put_video(root, "method_B/1224068/1224068_1255229_B/1224068_1255229_B_001.mp4", o, 2, 0));
    const char *head =
        "{\"original_videos/1255229/1255229_A_001.mp4\": {\"label\": \"real\", \"set\": \"train\"},\n"
        " \"original_videos/1224068/1224068_A_001.mp4\": {\"label\": \"real\", \"set\": \"test\"},\n"
        " \"method_A/1255229/1255229_1224068_A/1255229_1224068_A_001.mp4\": {\"label\": \"fake\", \"set\": \"train\", \"target_id\": \"1255229\"},\n"
        " \"method_B/1224068/1224068_1255229_B/1224068_1255229_B_001.mp4\": {\"label\": \"fake\", \"set\": \"test\", \"target_id\": 1224068}";
    char buf[2048];
    if (o->defects) {
        DCL_TRY(put_video(root, "method_B/1224068/odd/odd_001.mp4", o, 2, 0));
        snprintf(buf, sizeof buf, "%s,\n \"method_A/9999999/9999999_1_A/9999999_1_A_001.mp4\": {\"label\": \"fake\", \"set\": \"train\"},\n"
                                  " \"method_B/1224068/odd/odd_001.mp4\": {\"label\": \"unknown\", \"set\": \"test\"}}\n", head);
    } else {
        snprintf(buf, sizeof buf, "%s}\n", head);
    }
    return put_text(root, "dataset.json", buf);
}

dcl_status du_make_wild(const char *root, const du_replica_opts *o) {
    static const struct { const char *dir; int variant; int frames[3]; int n; } seqs[] = {
        {"real_train/0/0", 0, {10, 11, 12}, 3}, {"real_train/0/1", 0, {5, 6}, 2}, {"real_train/1/0", 0, {1, 2, 3}, 3},
        {"fake_train/0/0", 1, {7, 8, 9}, 3},    {"real_test/0/0", 0, {0, 1}, 2},  {"fake_test/0/0", 2, {3, 4}, 2},
        {"fake_test/0/1", 3, {2}, 1},
    };
    char rel[512];
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
        for (int k = 0; k < seqs[i].n; k++) {
            snprintf(rel, sizeof rel, "%s/%d.png", seqs[i].dir, seqs[i].frames[k]);
            DCL_TRY(put_png(root, rel, seqs[i].variant, seqs[i].frames[k]));
        }
    if (o->defects) {
        DCL_TRY(put_text(root, "fake_test/5.tar.gz", "not really an archive"));
        char p[4096];
        du_join(p, sizeof p, root, "real_test/0/2");
        if (du_mkdirs(p) != 0) return dcl_fail(DCL_ERR_IO, "%s: cannot create", p);
    }
    return DCL_OK;
}

dcl_status du_make_generic(const char *root, const du_replica_opts *o) {
    DCL_TRY(put_video(root, "real/r1.mp4", o, 0, 0));
    DCL_TRY(put_png(root, "real/sub/r2.png", 0, 3));
    DCL_TRY(put_video(root, "fake/f1.mp4", o, 1, 0));
    DCL_TRY(put_png(root, "fake/f2.png", 2, 5));
    DCL_TRY(put_png(root, "fake/train/f3.png", 3, 7));
    const char *csv = "path,label,split,video\nreal/r1.mp4,0,train,r1\nfake/f1.mp4,1,test,f1\nreal/sub/r2.png,real,val,r2\n";
    if (o->defects) {
        DCL_TRY(put_text(root, "real/readme.txt", "notes\n"));
        csv = "path,label,split,video\nreal/r1.mp4,0,train,r1\nfake/f1.mp4,1,test,f1\nreal/sub/r2.png,real,val,r2\n"
              "fake/missing.mp4,1,test,m\nfake/f2.png,2,test,x\n";
    }
    return put_text(root, "list.csv", csv);
}
