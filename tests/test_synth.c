/* dcl synth: a small set is written, opened with the FaceForensics++
 * adapter and checked (every real / fake / mask present, pairs, identity-
 * disjoint splits), masks are checked to cover every altered pixel, the same
 * seed must give byte-identical files (also after an interrupted run is
 * resumed), and MTCNN must find the face of every identity in the decoded
 * real videos.  The .npy reader is checked on hand-made buffers and on
 * scikit-image's lfw_subset.npy against values numpy reads. */
#include "check.h"
#include "datautil.h"
#include "dcl/dataset.h"
#include "dcl/face.h"
#include "dcl/synth.h"
#include "dcl/video.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *weights_path(void) {
    const char *p = getenv("DCL_MTCNN_WEIGHTS");
    return p && *p ? p : "models/mtcnn.safetensors";
}

static void small_opts(dcl_synth_opts *o) {
    dcl_synth_opts_default(o);
    o->seed = 7;
    o->identities = 6;
    o->frames = 6;
    o->width = 160;
    o->height = 128;
    o->mtcnn_weights = weights_path();
}

/* ------------------------------------------------------------------ npy -- */

static size_t npy_buf(uint8_t *b, const char *dict, const void *data, size_t n) {
    size_t hl = strlen(dict);
    size_t total = 10 + hl;
    size_t pad = (64 - (total + 1) % 64) % 64;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    size_t h = hl + pad + 1;
    b[8] = (uint8_t)(h & 255);
    b[9] = (uint8_t)(h >> 8);
    memcpy(b + 10, dict, hl);
    memset(b + 10 + hl, ' ', pad);
    b[10 + hl + pad] = '\n';
    memcpy(b + 10 + h, data, n);
    return 10 + h + n;
}

static void test_npy(void) {
    uint8_t buf[512];
    dcl_npy a;
    /* float32, C order, 2 x 3 */
    float f[6] = {1.5f, -2, 3, 4.25f, 5, -6};
    size_t n = npy_buf(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    CHECK_OK(dcl_npy_parse(&a, buf, n, "f4"));
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.numel == 6, "f4 shape");
    if (a.data) CHECK(!memcmp(a.data, f, sizeof f), "f4 values");
    dcl_npy_free(&a);
    /* uint8, Fortran order, 2 x 3: storage is column-major */
    uint8_t u[6] = {1, 4, 2, 5, 3, 6};
    n = npy_buf(buf, "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }", u, sizeof u);
    CHECK_OK(dcl_npy_parse(&a, buf, n, "u1"));
    for (int i = 0; a.data && i < 6; i++) CHECK(a.data[i] == i + 1, "fortran element %d = %g", i, a.data[i]);
    dcl_npy_free(&a);
    /* float64, 1-D (5,) */
    double d[5] = {0.1, -1e10, 3, 0, 1e-3};
    n = npy_buf(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", d, sizeof d);
    CHECK_OK(dcl_npy_parse(&a, buf, n, "f8"));
    CHECK(a.ndim == 1 && a.shape[0] == 5, "f8 shape");
    for (int i = 0; a.data && i < 5; i++) CHECK(a.data[i] == (float)d[i], "f8 element %d", i);
    dcl_npy_free(&a);
    /* errors: truncated data, big-endian dtype, bad magic, missing shape */
    n = npy_buf(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", f, sizeof f);
    CHECK(dcl_npy_parse(&a, buf, n, "short") == DCL_ERR_FORMAT && strstr(dcl_last_error(), "truncated"), "truncated: %s", dcl_last_error());
    n = npy_buf(buf, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    CHECK(dcl_npy_parse(&a, buf, n, "be") == DCL_ERR_UNSUPPORTED && strstr(dcl_last_error(), ">f4"), "big-endian: %s", dcl_last_error());
    CHECK(dcl_npy_parse(&a, "NUMPY\x01\x00xxxxxxxx", 14, "magic") == DCL_ERR_FORMAT, "bad magic accepted");
    n = npy_buf(buf, "{'descr': '<f4', 'fortran_order': False}", f, sizeof f);
    CHECK(dcl_npy_parse(&a, buf, n, "noshape") == DCL_ERR_FORMAT && strstr(dcl_last_error(), "shape"), "no shape: %s", dcl_last_error());
    CHECK(dcl_npy_load(&a, "/nonexistent/x.npy") == DCL_ERR_IO, "missing file");

    /* the LFW subset as Debian ships it; values as numpy reads them */
    const char *lfw = "/usr/lib/python3/dist-packages/skimage/data/lfw_subset.npy";
    if (access(lfw, R_OK) != 0) {
        printf("note: %s absent (python3-skimage not installed): LFW check skipped\n", lfw);
        return;
    }
    CHECK_OK(dcl_npy_load(&a, lfw));
    CHECK(a.ndim == 3 && a.shape[0] == 200 && a.shape[1] == 25 && a.shape[2] == 25 && !strcmp(a.dtype, "<f8"), "lfw shape");
    if (a.data && a.numel == 200 * 625) {
        CHECK(a.data[0] == 0.28888887f, "lfw[0,0,0] = %.9g", a.data[0]);
        CHECK(a.data[17 * 625 + 12 * 25 + 5] == 0.7529412f, "lfw[17,12,5] = %.9g", a.data[17 * 625 + 12 * 25 + 5]);
        CHECK(a.data[199 * 625 + 624] == 0.04771242f, "lfw[199,24,24] = %.9g", a.data[199 * 625 + 624]);
        double sum = 0;
        for (int64_t i = 0; i < a.numel; i++) sum += a.data[i];
        CHECK(fabs(sum - 47138.23963236471) < 0.05, "lfw sum %.6f", sum);
    }
    dcl_npy_free(&a);
}

/* ------------------------------------------------------------- options -- */

static void test_opts(void) {
    unsigned m = 0;
    CHECK_OK(dcl_synth_parse_methods(&m, "DF,Face2Face, sbi"));
    CHECK(m == ((1u << DCL_SYNTH_DEEPFAKES) | (1u << DCL_SYNTH_FACE2FACE) | (1u << DCL_SYNTH_SELFBLENDED)), "methods 0x%x", m);
    CHECK_OK(dcl_synth_parse_methods(&m, "all"));
    CHECK(m == DCL_SYNTH_ALL_METHODS, "all methods");
    CHECK(dcl_synth_parse_methods(&m, "DF,DeepFaceLab") == DCL_ERR_ARG && strstr(dcl_last_error(), "DeepFaceLab"), "bad method: %s", dcl_last_error());
    CHECK_OK(dcl_synth_parse_qualities(&m, "c40,raw"));
    CHECK(m == (DCL_SYNTH_Q_C40 | DCL_SYNTH_Q_RAW), "qualities 0x%x", m);
    CHECK(dcl_synth_parse_qualities(&m, "c30") == DCL_ERR_ARG && strstr(dcl_last_error(), "c30"), "bad quality: %s", dcl_last_error());
    CHECK(!strcmp(dcl_synth_method_name(DCL_SYNTH_FACESWAP), "FaceSwap") && !dcl_synth_method_name(9), "names");

    dcl_synth_opts o;
    dcl_synth *s = NULL;
    small_opts(&o);
    o.width = 161;
    CHECK(dcl_synth_open(&s, &o) == DCL_ERR_ARG && !s && strstr(dcl_last_error(), "161x128"), "odd width: %s", dcl_last_error());
    small_opts(&o);
    o.identities = 1;
    CHECK(dcl_synth_open(&s, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "identities"), "one identity: %s", dcl_last_error());
    small_opts(&o);
    o.identities = 500;
    o.videos_per_identity = 3;
    CHECK(dcl_synth_open(&s, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "1000"), "too many videos: %s", dcl_last_error());
    small_opts(&o);
    o.mtcnn_weights = "/nonexistent/mtcnn.safetensors";
    CHECK(dcl_synth_open(&s, &o) == DCL_ERR_IO && strstr(dcl_last_error(), "/nonexistent/mtcnn.safetensors"), "no weights: %s", dcl_last_error());
    small_opts(&o);
    o.skimage_dir = o.matplotlib_dir = "/nonexistent";
    CHECK(dcl_synth_open(&s, &o) == DCL_ERR_NOTFOUND && strstr(dcl_last_error(), "python3-skimage"), "no photos: %s", dcl_last_error());
}

/* ---------------------------------------------------------- the files -- */

static int stop_after_two(void *user, int done, int total, const dcl_synth_video *v) {
    (void)user; (void)total; (void)v;
    return done >= 2;
}

/* counts files under dir whose name starts with prefix (recursive) */
static int count_named(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) n += count_named(p, prefix);
        else if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    }
    closedir(d);
    return n;
}

/* every regular file of a (relative paths) equals the same file of b; returns files compared */
static int compare_trees(const char *a, const char *b, const char *rel) {
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s%s%s", a, *rel ? "/" : "", rel);
    DIR *d = opendir(pa);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char r[2048];
        snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(pa, sizeof pa, "%s/%s", a, r);
        snprintf(pb, sizeof pb, "%s/%s", b, r);
        struct stat sb;
        if (stat(pa, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) { n += compare_trees(a, b, r); continue; }
        size_t la = 0, lb = 0;
        char *da = du_read_file(pa, &la), *db = du_read_file(pb, &lb);
        CHECK(da && db && la == lb && !memcmp(da, db, la), "%s differs between two runs with the same seed (%zu vs %zu bytes)", r, la, lb);
        free(da);
        free(db);
        n++;
    }
    closedir(d);
    return n;
}

/* decodes a whole video */
static int decode_all(const char *path, dcl_image *frames, int max) {
    dcl_video *v = NULL;
    if (dcl_video_open(&v, path) != DCL_OK) return -1;
    int n = 0;
    int64_t idx;
    dcl_image im = {0};
    while (dcl_video_read_frame(v, &im, &idx) == DCL_OK && idx >= 0) {
        if (n < max) {
            frames[n] = im;
            memset(&im, 0, sizeof im);
        }
        n++;
    }
    dcl_image_free(&im);
    dcl_video_close(v);
    return n;
}

/* the adapter's view of the set */
static void check_dataset(const dcl_synth *s, const char *root) {
    const dcl_synth_opts *o = dcl_synth_get_opts(s);
    dcl_dataset *ds = NULL;
    dcl_dataset_opts dop = {0};
    dop.quality = "all";
    CHECK_OK(dcl_dataset_open(&ds, "ffpp", root, &dop));
    if (!ds) return;
    int nv = dcl_synth_video_count(s);
    int real = 0, fake[DCL_SYNTH_NMETHODS] = {0};
    for (int i = 0; i < dcl_dataset_count(ds); i++) {
        const dcl_entry *e = dcl_dataset_get(ds, i);
        CHECK(e->quality && (!strcmp(e->quality, "c23") || !strcmp(e->quality, "c40")), "%s: quality", e->id);
        int vi = dcl_synth_find_video(s, e->target_id);
        CHECK(vi >= 0, "%s: target %s is not a planned video", e->id, e->target_id);
        if (vi < 0) continue;
        const dcl_synth_video *v = dcl_synth_video_get(s, vi);
        CHECK(e->split == v->split && e->split != DCL_SPLIT_NONE, "%s: split %s, planned %s", e->id, dcl_split_name(e->split),
              dcl_split_name(v->split));
        if (!e->label) { real++; continue; }
        int m = -1;
        for (int k = 0; k < DCL_SYNTH_NMETHODS; k++)
            if (!strcmp(e->method, dcl_synth_method_name(k))) m = k;
        CHECK(m >= 0, "%s: unexpected method %s", e->id, e->method);
        if (m < 0) continue;
        fake[m]++;
        const dcl_synth_video *sv = dcl_synth_video_get(s, v->source);
        CHECK(e->source_id && !strcmp(e->source_id, sv->id), "%s: source %s, planned %s", e->id, e->source_id ? e->source_id : "-", sv->id);
        CHECK(sv->identity != v->identity, "%s: source and target are the same person", e->id);
        CHECK(sv->split == v->split, "%s: source %s is in split %s, target in %s", e->id, sv->id, dcl_split_name(sv->split),
              dcl_split_name(v->split));
        CHECK(e->pair >= 0, "%s: no paired real video", e->id);
        if (e->pair >= 0) {
            const dcl_entry *r = dcl_dataset_get(ds, e->pair);
            CHECK(!r->label && !strcmp(r->target_id, v->id) && !strcmp(r->quality, e->quality), "%s: paired with %s", e->id, r->id);
        }
        CHECK(e->mask_path && access(e->mask_path, R_OK) == 0, "%s: mask video missing", e->id);
    }
    CHECK(real == 2 * nv, "real entries %d, want %d", real, 2 * nv);
    for (int m = 0; m < DCL_SYNTH_NMETHODS; m++)
        CHECK(fake[m] == 2 * nv, "%s: %d fake entries, want %d", dcl_synth_method_name(m), fake[m], 2 * nv);
    /* nothing missing, unpaired, unsplit, conflicting or ignored: only notes
     * about what the set does not have (FaceShifter, the raw quality) */
    for (int i = 0; i < dcl_dataset_issue_count(ds); i++) {
        const dcl_issue *is = dcl_dataset_issue(ds, i);
        CHECK(is->kind == DCL_ISSUE_NOTE && (strstr(is->item, "FaceShifter") || strstr(is->item, "/raw/")), "issue [%s] %s: %s",
              dcl_issue_kind_name(is->kind), is->item, is->reason);
    }
    /* identity-disjoint splits, and all three splits used */
    int used[4] = {0};
    for (int a = 0; a < nv; a++) {
        const dcl_synth_video *va = dcl_synth_video_get(s, a);
        used[va->split]++;
        for (int b = 0; b < nv; b++) {
            const dcl_synth_video *vb = dcl_synth_video_get(s, b);
            if (va->identity == vb->identity) CHECK(va->split == vb->split, "identity %d is in two splits", va->identity);
        }
    }
    CHECK(used[DCL_SPLIT_TRAIN] >= 2 && used[DCL_SPLIT_VAL] >= 2 && used[DCL_SPLIT_TEST] >= 2, "splits %d/%d/%d",
          used[DCL_SPLIT_TRAIN], used[DCL_SPLIT_VAL], used[DCL_SPLIT_TEST]);
    (void)o;
    dcl_dataset_close(ds);
}

/* masks: every altered pixel is under the mask; the mask is binary, one
 * value on all channels, not empty, and mostly altered */
static void check_masks(dcl_synth *s) {
    const dcl_synth_opts *o = dcl_synth_get_opts(s);
    dcl_image real = {0}, fake = {0}, mask = {0};
    long npx = (long)o->width * o->height;
    for (int m = DCL_SYNTH_REAL; m < DCL_SYNTH_NMETHODS; m++) {
        long outside = 0, bad_value = 0, empty = 0, frames = 0;
        double min_frac = 1;
        for (int vi = 0; vi < dcl_synth_video_count(s); vi++)
            for (int t = 0; t < o->frames; t++) {
                CHECK_OK(dcl_synth_render(s, &real, NULL, vi, DCL_SYNTH_REAL, t));
                CHECK_OK(dcl_synth_render(s, &fake, &mask, vi, m, t));
                if (!real.data || !fake.data || !mask.data) return;
                long on = 0, changed = 0;
                for (long i = 0; i < npx; i++) {
                    const uint8_t *r = real.data + 3 * i, *f = fake.data + 3 * i, *k = mask.data + 3 * i;
                    int diff = r[0] != f[0] || r[1] != f[1] || r[2] != f[2];
                    if ((k[0] != 0 && k[0] != 255) || k[1] != k[0] || k[2] != k[0]) bad_value++;
                    if (diff && k[0] != 255) outside++;
                    on += k[0] == 255;
                    changed += diff;
                }
                frames++;
                if (m == DCL_SYNTH_REAL) { CHECK(on == 0 && changed == 0, "real frame: mask %ld, changed %ld", on, changed); continue; }
                if (!on) empty++;
                else if ((double)changed / on < min_frac) min_frac = (double)changed / on;
            }
        const char *name = dcl_synth_method_name(m);
        CHECK(outside == 0, "%s: %ld altered pixels outside the mask", name, outside);
        CHECK(bad_value == 0, "%s: %ld mask pixels not 0/255 on every channel", name, bad_value);
        if (m != DCL_SYNTH_REAL) {
            CHECK(empty == 0, "%s: %ld of %ld frames with an empty mask", name, empty, frames);
            CHECK(min_frac >= 0.8, "%s: only %.3f of the mask altered in some frame", name, min_frac);
        }
    }
    /* the pure functions: rendering again gives the same frame */
    dcl_image again = {0};
    CHECK_OK(dcl_synth_render(s, &fake, &mask, 1, DCL_SYNTH_DEEPFAKES, 2));
    CHECK_OK(dcl_synth_render(s, &again, NULL, 3, DCL_SYNTH_FACESWAP, 0));
    CHECK_OK(dcl_synth_render(s, &again, NULL, 1, DCL_SYNTH_DEEPFAKES, 2));
    CHECK(again.data && fake.data && !memcmp(again.data, fake.data, (size_t)npx * 3), "render depends on call order");
    CHECK(dcl_synth_render(s, &again, NULL, 99, DCL_SYNTH_REAL, 0) == DCL_ERR_ARG, "video out of range accepted");
    CHECK(dcl_synth_render(s, &again, NULL, 0, 7, 0) == DCL_ERR_ARG, "method out of range accepted");
    CHECK(dcl_synth_render(s, &again, NULL, 0, DCL_SYNTH_REAL, o->frames) == DCL_ERR_ARG, "frame out of range accepted");
    dcl_image_free(&again);
    dcl_image_free(&real);
    dcl_image_free(&fake);
    dcl_image_free(&mask);
}

/* the encoded files: masks are stored losslessly, reals decode close to the
 * rendered frames (c23 closer than c40), MTCNN finds each identity's face */
static void check_videos(dcl_synth *s, const char *root) {
    const dcl_synth_opts *o = dcl_synth_get_opts(s);
    dcl_backend *be = dcl_backend_create("cpu", 1);
    dcl_mtcnn *mt = NULL;
    CHECK(be != NULL, "cpu backend: %s", dcl_last_error());
    if (be) CHECK_OK(dcl_mtcnn_create(&mt, be, weights_path()));
    dcl_image dec[16], ren = {0}, mask = {0};
    char p[4096];
    int found_ids = 0;
    for (int vi = 0; vi < dcl_synth_video_count(s); vi++) {
        const dcl_synth_video *v = dcl_synth_video_get(s, vi);
        const char *src = dcl_synth_video_get(s, v->source)->id;
        double psnr[2] = {0, 0};
        for (int q = 0; q < 2; q++) {
            snprintf(p, sizeof p, "%s/original_sequences/youtube/%s/videos/%s.mp4", root, q ? "c40" : "c23", v->id);
            int n = decode_all(p, dec, 16);
            CHECK(n == o->frames, "%s: %d frames decoded, want %d", p, n, o->frames);
            for (int t = 0; t < n && t < 16; t++) {
                if (t < o->frames && dcl_synth_render(s, &ren, NULL, vi, DCL_SYNTH_REAL, t) == DCL_OK && dec[t].w == ren.w && dec[t].h == ren.h)
                    psnr[q] += du_psnr_luma(&dec[t], &ren) / n;
                /* the face of every identity is found where it was put */
                if (q == 0 && mt && (t == 0 || t == n - 1)) {
                    dcl_face *faces = NULL;
                    int nf = 0;
                    float lm[5][2];
                    CHECK_OK(dcl_mtcnn_detect(mt, &dec[t], NULL, &faces, &nf));
                    CHECK_OK(dcl_synth_landmarks(s, lm, vi, t));
                    double ed = hypot(lm[1][0] - lm[0][0], lm[1][1] - lm[0][1]);
                    int ok = 0;
                    for (int k = 0; k < nf; k++) {
                        double err = 0;
                        for (int j = 0; j < 5; j++) err = fmax(err, hypot(faces[k].lm[j][0] - lm[j][0], faces[k].lm[j][1] - lm[j][1]));
                        if (faces[k].score >= 0.9f && err < 0.5 * ed) ok = 1;
                    }
                    CHECK(ok, "video %s (%s) frame %d: MTCNN finds no face at the planned landmarks (%d faces)", v->id, v->face, t, nf);
                    if (ok && t == 0) found_ids++;
                    free(faces);
                }
                dcl_image_free(&dec[t]);
            }
        }
        CHECK(psnr[0] > 30 && psnr[1] > 22 && psnr[0] > psnr[1] + 1, "video %s: luma PSNR c23 %.1f dB, c40 %.1f dB", v->id, psnr[0], psnr[1]);
        /* one mask video per target: decoded exactly as rendered */
        int m = vi % DCL_SYNTH_NMETHODS;
        snprintf(p, sizeof p, "%s/manipulated_sequences/%s/masks/videos/%s_%s.mp4", root, dcl_synth_method_name(m), v->id, src);
        int n = decode_all(p, dec, 16);
        CHECK(n == o->frames, "%s: %d frames", p, n);
        for (int t = 0; t < n && t < 16; t++) {
            dcl_image fk = {0};
            if (dcl_synth_render(s, &fk, &mask, vi, m, t) == DCL_OK)
                CHECK(dec[t].w == mask.w && dec[t].h == mask.h && !memcmp(dec[t].data, mask.data, (size_t)mask.w * mask.h * 3),
                      "%s frame %d: decoded mask differs from the rendered one", p, t);
            dcl_image_free(&fk);
            dcl_image_free(&dec[t]);
        }
    }
    CHECK(found_ids == dcl_synth_video_count(s), "faces found in %d of %d videos", found_ids, dcl_synth_video_count(s));
    dcl_image_free(&ren);
    dcl_image_free(&mask);
    dcl_mtcnn_free(mt);
    dcl_backend_destroy(be);
}

static void test_set(void) {
    dcl_synth_opts o;
    small_opts(&o);
    dcl_synth *s = NULL;
    dcl_status st = dcl_synth_open(&s, &o);
    if (st == DCL_ERR_NOTFOUND && strstr(dcl_last_error(), "no face photographs")) {
        printf("SKIP: %s\n", dcl_last_error());
        return;
    }
    CHECK_OK(st);
    if (!s) return;
    CHECK(dcl_synth_video_count(s) == 6, "videos %d", dcl_synth_video_count(s));
    /* distinct looks: no two identities from the same photograph while there are photographs to spare */
    for (int a = 0; a < 6; a++)
        for (int b = a + 1; b < 6; b++)
            CHECK(strcmp(dcl_synth_video_get(s, a)->face, dcl_synth_video_get(s, b)->face), "identities %d and %d share %s", a, b,
                  dcl_synth_video_get(s, a)->face);

    char d1[512], d2[512];
    CHECK(du_tmpdir(d1, sizeof d1, "synth1") == 0 && du_tmpdir(d2, sizeof d2, "synth2") == 0, "tmpdir");
    /* interrupted after two videos, then resumed */
    dcl_synth_summary sum;
    CHECK(dcl_synth_write(s, d1, &sum, stop_after_two, NULL) == DCL_ERR_INTERRUPTED, "progress stop ignored");
    CHECK(count_named(d1, ".synth-") == 0, "temporary files left after the interruption");
    int per_video = 2 * (1 + DCL_SYNTH_NMETHODS) + DCL_SYNTH_NMETHODS;
    CHECK(sum.files_written == 2 * per_video, "interrupted run wrote %d files, want %d", sum.files_written, 2 * per_video);
    CHECK_OK(dcl_synth_write(s, d1, &sum, NULL, NULL));
    CHECK(sum.files_kept == 2 * per_video && sum.files_written == 4 * per_video, "resume kept %d wrote %d", sum.files_kept,
          sum.files_written);
    /* the same settings from scratch in another folder (a fresh object): identical bytes */
    dcl_synth *s2 = NULL;
    CHECK_OK(dcl_synth_open(&s2, &o));
    if (s2) {
        CHECK_OK(dcl_synth_write(s2, d2, &sum, NULL, NULL));
        CHECK(sum.files_written == 6 * per_video, "fresh run wrote %d", sum.files_written);
        int n = compare_trees(d1, d2, "");
        CHECK(n == 6 * per_video + 4, "compared %d files", n); /* + synth.json and three splits */
        dcl_synth_close(s2);
    }
    /* another seed gives other pictures */
    dcl_synth_opts o3 = o;
    o3.seed = 8;
    dcl_synth *s3 = NULL;
    CHECK_OK(dcl_synth_open(&s3, &o3));
    if (s3) {
        dcl_image a = {0}, b = {0};
        CHECK_OK(dcl_synth_render(s, &a, NULL, 0, DCL_SYNTH_REAL, 0));
        CHECK_OK(dcl_synth_render(s3, &b, NULL, 0, DCL_SYNTH_REAL, 0));
        CHECK(a.data && b.data && memcmp(a.data, b.data, (size_t)a.w * a.h * 3), "seeds 7 and 8 give the same frame");
        /* a folder made with other settings is refused */
        CHECK(dcl_synth_write(s3, d1, &sum, NULL, NULL) == DCL_ERR_ARG && strstr(dcl_last_error(), "seed"), "other settings: %s",
              dcl_last_error());
        dcl_image_free(&a);
        dcl_image_free(&b);
        dcl_synth_close(s3);
    }
    char nonempty[600];
    snprintf(nonempty, sizeof nonempty, "%s/splits", d2);
    CHECK(dcl_synth_write(s, nonempty, &sum, NULL, NULL) == DCL_ERR_ARG && strstr(dcl_last_error(), "not empty"), "non-empty: %s",
          dcl_last_error());

    check_dataset(s, d1);
    check_masks(s);
    check_videos(s, d1);
    dcl_synth_close(s);
    du_rmtree(d1);
    du_rmtree(d2);
}

int main(void) {
    double t0 = dcl_now();
    test_npy();
    test_opts();
    test_set();
    printf("test_synth: %.1f s\n", dcl_now() - t0);
    CHECK_DONE();
}
