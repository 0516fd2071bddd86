/* MTCNN detection time per frame, with the library that dcl links.
 *
 * Build and run (from the repository root, after `make BUILD=build-face`):
 *   gcc -O2 -fopenmp -Iinclude -Isrc bench/face_bench.c build-face/libdcl.a \
 *       -ldnnl -lopenblas -lavformat -lavcodec -lswscale -lavutil -lpng -ljpeg -lcjson \
 *       -lyaml -lmicrohttpd -lm -lpthread -o build-face/face_bench
 *   build-face/face_bench [IMAGE] [--threads N] [--reps N] [--size WxH] [--weights F]
 * Without IMAGE a 1280x720 frame is made from scikit-image's astronaut and
 * matplotlib's Grace Hopper (as tests/test_face.c's "frame720"), or from a
 * synthetic pattern when they are not installed.  --size resizes the image
 * first (bilinear).  Prints wall-clock and CPU time per frame (CPU time / wall
 * time shows how busy the threads were, and how loaded the machine is).
 */
#include "dcl/face.h"
#include "dcl/io.h"
#include "backend/backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void paste(dcl_image *dst, const dcl_image *src, int x0, int y0) {
    for (int y = 0; y < src->h && y0 + y < dst->h; y++)
        for (int x = 0; x < src->w && x0 + x < dst->w; x++)
            memcpy(dst->data + ((size_t)(y0 + y) * dst->w + x0 + x) * 3, src->data + ((size_t)y * src->w + x) * 3, 3);
}

static int default_frame(dcl_image *img) {
    if (dcl_image_alloc(img, 1280, 720)) return -1;
    memset(img->data, 96, (size_t)1280 * 720 * 3);
    dcl_image a = {0}, g = {0};
    int ok = dcl_image_load(&a, "/usr/lib/python3/dist-packages/skimage/data/astronaut.png") == DCL_OK &&
             dcl_image_load(&g, "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg") == DCL_OK;
    if (ok) {
        paste(img, &a, 80, 110);
        paste(img, &g, 700, 60);
    } else {
        fprintf(stderr, "face_bench: photographs not installed, using a synthetic frame\n");
        for (size_t i = 0; i < (size_t)1280 * 720 * 3; i++) img->data[i] = (uint8_t)((i * 2654435761u) >> 24);
    }
    dcl_image_free(&a);
    dcl_image_free(&g);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *weights = "models/mtcnn.safetensors";
    int threads = 2, reps = 10, rw = 0, rh = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &rw, &rh) != 2 || rw <= 0 || rh <= 0) {
                fprintf(stderr, "face_bench: --size wants WxH\n");
                return 2;
            }
        } else if (argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: face_bench [IMAGE] [--threads N] [--reps N] [--size WxH] [--weights F]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    dcl_set_num_threads(threads);
    dcl_image img = {0};
    if (path ? dcl_image_load(&img, path) : default_frame(&img)) {
        fprintf(stderr, "face_bench: %s\n", dcl_last_error());
        return 1;
    }
    if (rw) {
        dcl_image r = {0};
        if (dcl_image_resize_bilinear(&r, rw, rh, &img)) { fprintf(stderr, "face_bench: %s\n", dcl_last_error()); return 1; }
        dcl_image_free(&img);
        img = r;
    }
    dcl_backend *be = dcl_backend_create("cpu", threads);
    dcl_mtcnn *m = NULL;
    if (!be || dcl_mtcnn_create(&m, be, weights)) {
        fprintf(stderr, "face_bench: %s\n", dcl_last_error());
        return 1;
    }
    dcl_face *f = NULL;
    int n = 0;
    double t0 = dcl_now();
    if (dcl_mtcnn_detect(m, &img, NULL, &f, &n)) { fprintf(stderr, "face_bench: %s\n", dcl_last_error()); return 1; }
    double first = dcl_now() - t0;
    free(f);
    double w0 = dcl_now(), c0 = cpu_now();
    for (int i = 0; i < reps; i++) {
        if (dcl_mtcnn_detect(m, &img, NULL, &f, &n)) { fprintf(stderr, "face_bench: %s\n", dcl_last_error()); return 1; }
        if (i < reps - 1) free(f);
    }
    double wall = (dcl_now() - w0) / reps, cpu = (cpu_now() - c0) / reps;
    printf("mtcnn %dx%d threads=%d: %.1f ms/frame wall, %.1f ms/frame cpu, first call %.1f ms, %d face(s)\n",
           img.w, img.h, threads, 1e3 * wall, 1e3 * cpu, 1e3 * first, n);
    for (int i = 0; i < n; i++)
        printf("  face %d: box %.1f %.1f %.1f %.1f score %.5f\n", i, f[i].x1, f[i].y1, f[i].x2, f[i].y2, f[i].score);
    free(f);
    dcl_mtcnn_free(m);
    dcl_backend_destroy(be);
    dcl_image_free(&img);
    return 0;
}
