/* Data pipeline throughput: `dcl extract` (decode + detect + crop + save)
 * on 1280x720 video, and the training loader's images/s at 299x299 with
 * the paper's views, against what EfficientNet-b4 training consumes.
 *
 * Build and run (from the repository root, after `make BUILD=build-extract`):
 *   gcc -O2 -fopenmp -Iinclude -Isrc -Itests bench/pipeline_bench.c tests/datautil.c \
 *       build-extract/libdcl.a -ldnnl -lopenblas -lavformat -lavcodec -lswscale -lavutil \
 *       -lpng -ljpeg -lcjson -lyaml -lmicrohttpd -lm -lpthread -o build-extract/pipeline_bench
 *   build-extract/pipeline_bench [--frames N] [--threads N] [--batches N] [--train-rate IMG_S] [--keep DIR]
 * (add -L/usr/local/cuda/lib64 -lcudnn -lcublas -lcudart -lstdc++ when the
 * library was built with CUDA.)
 *
 * The videos: two "real" clips, two "fakes" of them (colour-shifted, blurred
 * face) and their mask clips, 1280x720 at 25 fps, 60 frames, H.264 (the
 * default encoder), made from scikit-image's astronaut photograph: the face
 * zoomed 1.25x moving over mirrored tiles of the zoomed lower part of the
 * same photograph (suit and flag).  The
 * dataset is a generic CSV list naming each fake's real and mask, so the
 * fakes get pair and mask crops as FF++ fakes do.
 *
 * Wall-clock and process CPU time are both printed: on a machine shared with
 * other work, frames per CPU-second is the figure that carries over.
 *
 * Prints, with --threads compute threads in all (default 2):
 *   decode:    frames/s decoding the sampled frames only
 *   detect:    MTCNN ms per decoded 1280x720 frame, 1 thread and --threads
 *   extract A: dcl_extract with 2 workers x threads/2 each  (frames/s, crops/s)
 *   extract B: dcl_extract with 1 worker  x threads
 *   loader:    images/s of dcl_loader (batch 32, 299x299, paper views, both
 *              views, 2 workers) over the ~200 crops of extract A, and the
 *              ratio to --train-rate (default 4 img/s: EfficientNet-b4
 *              training at 299 on this 2-core machine).
 */
#include "datautil.h"
#include "dcl/cache.h"
#include "dcl/extract.h"
#include "dcl/face.h"
#include "dcl/io.h"
#include "dcl/loader.h"
#include "dcl/video.h"
#include "backend/backend.h"
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define VW 1280
#define VH 720
#define NFRAMES 60
#define ASTRONAUT "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"

static dcl_image g_src;

static void sample_bilinear(const dcl_image *im, double x, double y, double *rgb) {
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > im->w - 1) x = im->w - 1;
    if (y > im->h - 1) y = im->h - 1;
    int x0 = (int)x, y0 = (int)y, x1 = x0 + 1 < im->w ? x0 + 1 : x0, y1 = y0 + 1 < im->h ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    for (int c = 0; c < 3; c++) {
        double a = im->data[((size_t)y0 * im->w + x0) * 3 + c], b = im->data[((size_t)y0 * im->w + x1) * 3 + c];
        double d = im->data[((size_t)y1 * im->w + x0) * 3 + c], e = im->data[((size_t)y1 * im->w + x1) * 3 + c];
        rgb[c] = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy;
    }
}

static uint8_t clamp8(double v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)lround(v); }

/* kind 0 real, 1 fake, 2 mask; clip c shifts the motion */
static void render(dcl_image *fr, int t, int clip, int kind) {
    double zoom = 1.25 + 0.1 * sin(0.05 * t + clip);           /* source px -> frame px */
    double ox = 250 + 300 * (0.5 + 0.5 * sin(0.03 * t + 2 * clip)), oy = 40 + 20 * cos(0.04 * t);
    /* face ellipse in the photograph */
    const double fcx = 240, fcy = 125, frx = 78, fry = 102;
    for (int y = 0; y < VH; y++)
        for (int x = 0; x < VW; x++) {
            uint8_t *p = fr->data + ((size_t)y * VW + x) * 3;
            double u = (x - ox) / zoom, v = (y - oy) / zoom, rgb[3];
            int inside = u >= 0 && u < g_src.w && v >= 0 && v < g_src.h;
            double ex = (u - fcx) / frx, ey = (v - fcy) / fry;
            int in_face = inside && ex * ex + ey * ey < 1;
            if (kind == 2) { p[0] = p[1] = p[2] = in_face ? 255 : 0; continue; }
            if (inside) {
                sample_bilinear(&g_src, u, v, rgb);
                if (kind == 1 && in_face) {
                    double q[3], o[3];
                    for (int c = 0; c < 3; c++) q[c] = 0;
                    for (int k = 0; k < 4; k++) {
                        sample_bilinear(&g_src, u + (k & 1 ? 2.5 : -2.5), v + (k & 2 ? 2.5 : -2.5), o);
                        for (int c = 0; c < 3; c++) q[c] += o[c] / 4;
                    }
                    rgb[0] = q[0] + 20; rgb[1] = q[1]; rgb[2] = q[2] - 15;
                }
            } else {
                /* the lower part of the photograph (suit, flag: no face) zoomed 2.5x, mirrored tiles, panning */
                double tu = fmod(x + 2.0 * t, 2560.0) / 2.5, tv = fmod((double)y, 1060.0) / 2.5;
                if (tu >= 512) tu = 1023 - tu;  /* [0, 512) */
                if (tv >= 212) tv = 423 - tv;   /* [0, 212) */
                sample_bilinear(&g_src, tu, 300 + tv, rgb);
            }
            p[0] = clamp8(rgb[0]); p[1] = clamp8(rgb[1]); p[2] = clamp8(rgb[2]);
        }
}

static int write_clip(const char *path, int clip, int kind) {
    dcl_video_writer *w = NULL;
    if (dcl_video_writer_open(&w, path, VW, VH, 25.0, NULL)) return -1;
    dcl_image fr;
    if (dcl_image_alloc(&fr, VW, VH)) { dcl_video_writer_abort(w); return -1; }
    int ok = 1;
    for (int t = 0; t < NFRAMES && ok; t++) {
        render(&fr, t, clip, kind);
        ok = dcl_video_writer_write(w, &fr) == DCL_OK;
    }
    dcl_image_free(&fr);
    if (!ok) { dcl_video_writer_abort(w); return -1; }
    return dcl_video_writer_close(w) == DCL_OK ? 0 : -1;
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double g_cpu; /* CPU seconds of the last run_extract */

static int noop_cb(void *u, const dcl_image *f, int64_t i, int k) { (void)u; (void)f; (void)i; (void)k; return 0; }

static double run_extract(const char *root, const char *out, int frames, int workers, int threads, dcl_extract_report *r) {
    dcl_extract_opts o;
    dcl_extract_opts_default(&o);
    o.dataset = "generic";
    o.root = root;
    o.csv = "list.csv";
    o.out = out;
    o.frames = frames;
    o.workers = workers;
    o.threads = threads;
    o.progress = 0;
    double t0 = dcl_now(), c0 = cpu_now();
    if (dcl_extract(&o, r)) { fprintf(stderr, "extract: %s\n", dcl_last_error()); return -1; }
    g_cpu = cpu_now() - c0;
    return dcl_now() - t0;
}

int main(int argc, char **argv) {
    int frames = 50, threads = 2, batches = 6;
    double train_rate = 4.0;
    const char *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-rate") && i + 1 < argc) train_rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = argv[++i];
        else { fprintf(stderr, "usage: %s [--frames N] [--threads N] [--batches N] [--train-rate IMG_S] [--keep DIR]\n", argv[0]); return 2; }
    }
    if (frames < 1 || threads < 1 || batches < 1) { fprintf(stderr, "bad arguments\n"); return 2; }
    if (dcl_image_load(&g_src, ASTRONAUT)) {
        if (du_face_photo(&g_src) < 0) { fprintf(stderr, "no face photograph\n"); return 1; }
        fprintf(stderr, "note: %s not found; using the test portrait\n", ASTRONAUT);
    }
    char dir[1024], p[4096];
    if (keep) { snprintf(dir, sizeof dir, "%s", keep); du_mkdirs(dir); }
    else if (du_tmpdir(dir, sizeof dir, "pipeline-bench")) { fprintf(stderr, "no temporary directory\n"); return 1; }
    char root[2048];
    du_join(root, sizeof root, dir, "data");
    du_mkdirs(root);

    /* ---- videos ---- */
    double t0 = dcl_now();
    static const char *rel[2][3] = {{"real/r0.mp4", "fake/f0.mp4", "masks/m0.mp4"}, {"real/r1.mp4", "fake/f1.mp4", "masks/m1.mp4"}};
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 3; k++) {
            du_join(p, sizeof p, root, rel[c][k]);
            char d[4096];
            snprintf(d, sizeof d, "%s", p);
            *strrchr(d, '/') = 0;
            du_mkdirs(d);
            if (write_clip(p, c, k)) { fprintf(stderr, "cannot write %s: %s\n", p, dcl_last_error()); return 1; }
        }
    du_write_text(du_join(p, sizeof p, root, "list.csv"),
                  "path,label,split,id,pair,mask\n"
                  "real/r0.mp4,0,train,r0,,\nreal/r1.mp4,0,train,r1,,\n"
                  "fake/f0.mp4,1,train,f0,r0,masks/m0.mp4\nfake/f1.mp4,1,train,f1,r1,masks/m1.mp4\n");
    printf("videos: 6 clips of %d frames at %dx%d written in %.1f s (%s)\n", NFRAMES, VW, VH, dcl_now() - t0, dir);

    /* ---- decode only ---- */
    dcl_set_num_threads(threads);
    int64_t idx[1024];
    int m = 0, got = 0, total_got = 0;
    double dc0 = cpu_now();
    t0 = dcl_now();
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++) {
            dcl_video *v = NULL;
            if (dcl_video_open(&v, du_join(p, sizeof p, root, rel[c][k]))) { fprintf(stderr, "%s\n", dcl_last_error()); return 1; }
            int64_t n = 0;
            dcl_video_count_frames(v, &n);
            dcl_video_plan(idx, &m, n, frames < 1024 ? frames : 1024, DCL_SAMPLE_EVEN, NULL);
            dcl_video_read_frames(v, idx, m, noop_cb, NULL, &got);
            total_got += got;
            dcl_video_close(v);
        }
    double dec_s = dcl_now() - t0, dec_c = cpu_now() - dc0;
    printf("decode:    %d frames in %.2f s = %.1f frames/s, %.1f frames per CPU-s (sampled frames only)\n", total_got, dec_s,
           total_got / dec_s, total_got / dec_c);

    /* ---- detect only: frame 10 of r0.mp4 as decoded, 1 thread and --threads threads ---- */
    {
        dcl_image fr = {0};
        int64_t fi = -1;
        dcl_video *v = NULL;
        if (dcl_video_open(&v, du_join(p, sizeof p, root, rel[0][0]))) { fprintf(stderr, "%s\n", dcl_last_error()); return 1; }
        for (int i = 0; i <= 10; i++) dcl_video_read_frame(v, &fr, &fi);
        dcl_video_close(v);
        for (int pass = 0; pass < (threads > 1 ? 2 : 1); pass++) {
            int nt = pass ? threads : 1;
            dcl_set_num_threads(nt);
            dcl_backend *be = dcl_backend_create("cpu", nt);
            dcl_mtcnn *mt = NULL;
            if (!be || dcl_mtcnn_create(&mt, be, "models/mtcnn.safetensors")) { fprintf(stderr, "mtcnn: %s\n", dcl_last_error()); return 1; }
            dcl_mtcnn_opts mo;
            dcl_mtcnn_opts_default(&mo);
            mo.min_face_size = 40;
            dcl_face *faces = NULL;
            int nf = 0;
            dcl_mtcnn_detect(mt, &fr, &mo, &faces, &nf); /* warm-up: plans the pyramid */
            free(faces);
            int reps = 5;
            double c0 = cpu_now();
            t0 = dcl_now();
            for (int r = 0; r < reps; r++) {
                dcl_mtcnn_detect(mt, &fr, &mo, &faces, &nf);
                free(faces);
            }
            double ms = (dcl_now() - t0) / reps * 1000, cms = (cpu_now() - c0) / reps * 1000;
            printf("detect:    %.1f ms per %dx%d frame (%.1f CPU-ms; MTCNN, min face 40, %d thread%s), %d face(s)\n", ms, VW, VH,
                   cms, nt, nt > 1 ? "s" : "", nf);
            dcl_mtcnn_free(mt);
            dcl_backend_destroy(be);
        }
        dcl_image_free(&fr);
        dcl_set_num_threads(threads);
    }

    /* ---- extraction ---- */
    char outA[2048], outB[2048];
    du_join(outA, sizeof outA, dir, "cacheA");
    du_join(outB, sizeof outB, dir, "cacheB");
    du_rmtree(outA);
    du_rmtree(outB);
    dcl_extract_report r;
    int wA = threads >= 2 ? 2 : 1;
    double sA = run_extract(root, outA, frames, wA, threads / wA, &r);
    if (sA < 0) return 1;
    long crops = (long)(r.faces + r.pairs + r.masks);
    printf("extract A: %d workers x %d threads: %lld frames in %.1f s = %.2f frames/s (%.1f CPU-s, %.2f frames per CPU-s), "
           "%ld crops (%lld faces, %lld pairs, %lld masks) = %.2f crops/s\n",
           wA, threads / wA, (long long)r.frames, sA, r.frames / sA, g_cpu, r.frames / g_cpu, crops, (long long)r.faces,
           (long long)r.pairs, (long long)r.masks, crops / sA);
    printf("           peak RSS of the process so far: %.0f MB\n", dcl_peak_rss_kb() / 1024.0);
    double sB = run_extract(root, outB, frames, 1, threads, &r);
    if (sB < 0) return 1;
    printf("extract B: 1 worker  x %d threads: %lld frames in %.1f s = %.2f frames/s (%.1f CPU-s, %.2f frames per CPU-s)\n",
           threads, (long long)r.frames, sB, r.frames / sB, g_cpu, r.frames / g_cpu);

    /* ---- loader ---- */
    dcl_cache *c = NULL;
    if (dcl_cache_open(&c, outA)) { fprintf(stderr, "%s\n", dcl_last_error()); return 1; }
    int *sel = NULL, nsel = 0;
    dcl_cache_select(c, "train", &sel, &nsel);
    dcl_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.batch = 32; lc.size = 299; lc.workers = 2; lc.prefetch = 2; lc.train = 1; lc.balance = 1; lc.two_views = 1;
    lc.seed = 1;
    float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    memcpy(lc.mean, mean, sizeof mean);
    memcpy(lc.std, sd, sizeof sd);
    lc.views = dcl_views_paper();
    dcl_loader *l = NULL;
    if (dcl_loader_create(&l, c, sel, nsel, &lc) || dcl_loader_start(l, 0)) { fprintf(stderr, "loader: %s\n", dcl_last_error()); return 1; }
    dcl_batch *b = NULL;
    dcl_loader_next(l, &b); /* warm-up */
    double lc0 = cpu_now();
    t0 = dcl_now();
    int imgs = 0;
    for (int i = 0; i < batches; i++) {
        if (dcl_loader_next(l, &b) || !b) { fprintf(stderr, "loader: %s\n", dcl_last_error()); return 1; }
        imgs += b->n;
    }
    double ls = dcl_now() - t0, lcpu = cpu_now() - lc0;
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0) load[0] = -1;
    double rate = imgs / ls;
    printf("loader:    %d images (batch 32, 299x299, paper views, 2 views, 2 workers) from %d crops in %.1f s = %.1f img/s"
           " (%.1f img per CPU-s) = %.1fx the %.1f img/s of EfficientNet-b4 training\n",
           imgs, nsel, ls, rate, imgs / lcpu, rate / train_rate, train_rate);
    printf("machine:   %d CPUs online, load average %.1f at the end (timings are wall-clock: other work slows them)\n",
           (int)sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    dcl_loader_free(l);
    free(sel);
    dcl_cache_free(c);
    dcl_image_free(&g_src);
    if (!keep) du_rmtree(dir);
    return 0;
}
