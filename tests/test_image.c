/* PNG/JPEG decoding against PIL's pixels, bilinear resize against
 * torch.nn.functional.interpolate, to_tensor against torchvision (fixtures
 * from tools/make_io_fixtures.py); encoders; crop; truncated and corrupt
 * inputs; the decompression-bomb guard. */
#include "dcl/io.h"
#include "check.h"
#include <dirent.h>
#include <unistd.h>

static char g_tmp[256];

static const char *fixture(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    const char *dirs[] = {"tests/fixtures/io", "../tests/fixtures/io", "../../tests/fixtures/io"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf[k], sizeof buf[k], "%s/%s", dirs[i], name);
        if (access(buf[k], R_OK) == 0) return buf[k];
    }
    snprintf(buf[k], sizeof buf[k], "tests/fixtures/io/%s", name);
    return buf[k];
}

static uint8_t *slurp(const char *path, size_t *n) {
    void *p = NULL;
    if (dcl_read_file(&p, n, path, 0) != DCL_OK) {
        fprintf(stderr, "%s\n", dcl_last_error());
        return NULL;
    }
    return p;
}

/* binary PPM written by the fixture script: "P6\n%d %d\n255\n" + RGB */
static int load_ppm(dcl_image *img, const char *path) {
    size_t n;
    uint8_t *p = slurp(path, &n);
    memset(img, 0, sizeof *img);
    if (!p) return -1;
    int w, h, mx, off = 0;
    if (sscanf((char *)p, "P6\n%d %d\n%d\n%n", &w, &h, &mx, &off) != 3 || mx != 255 || !off ||
        (size_t)off + (size_t)w * h * 3 != n) {
        free(p);
        return -1;
    }
    dcl_image_alloc(img, w, h);
    memcpy(img->data, p + off, (size_t)w * h * 3);
    free(p);
    return 0;
}

static float *load_f32(const char *path, size_t count) {
    size_t n;
    uint8_t *p = slurp(path, &n);
    if (p && n != count * 4) {
        fprintf(stderr, "%s: %zu bytes, want %zu\n", path, n, count * 4);
        free(p);
        return NULL;
    }
    return (float *)p;
}

/* ---------------------------------------------------------------- decode */

static void test_decode_fixtures(void) {
    static const struct { const char *name; int tol; } files[] = {
        {"rgb8.png", 0}, {"rgba8.png", 0}, {"gray8.png", 0}, {"pal8.png", 0}, {"gray16.png", 0},
        {"rgb16.png", 0}, {"rgba16_adam7.png", 0}, {"graya8.png", 0}, {"gray1.png", 0}, {"gray2.png", 0},
        {"gray4.png", 0}, {"pal4_adam7.png", 0}, {"rgb8_adam7.png", 0},
        {"base.jpg", 1}, {"q444.jpg", 1}, {"prog.jpg", 1}, {"gray.jpg", 1}, {"cmyk.jpg", 1},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char ppm[64];
        snprintf(ppm, sizeof ppm, "%.*s.ppm", (int)(strrchr(files[i].name, '.') - files[i].name), files[i].name);
        dcl_image want, got;
        CHECK(load_ppm(&want, fixture(ppm)) == 0, "cannot read %s", ppm);
        CHECK_OK(dcl_image_load(&got, fixture(files[i].name)));
        if (!got.data || !want.data) { dcl_image_free(&want); dcl_image_free(&got); continue; }
        CHECK(got.w == 32 && got.h == 24 && got.c == 3, "%s: %dx%dx%d", files[i].name, got.w, got.h, got.c);
        int maxd = 0;
        long nbad = 0;
        for (size_t k = 0; k < (size_t)got.w * got.h * 3 && got.w == want.w && got.h == want.h; k++) {
            int d = abs((int)got.data[k] - (int)want.data[k]);
            if (d > maxd) maxd = d;
            if (d > files[i].tol) nbad++;
        }
        CHECK(nbad == 0, "%s: %ld samples differ from PIL by more than %d (max %d)", files[i].name, nbad, files[i].tol,
              maxd);
        /* the same bytes through the memory decoder */
        size_t n;
        uint8_t *buf = slurp(fixture(files[i].name), &n);
        dcl_image m;
        CHECK_OK(dcl_image_decode(&m, buf, n));
        CHECK(m.data && !memcmp(m.data, got.data, (size_t)got.w * got.h * 3), "%s: decode != load", files[i].name);
        dcl_image_free(&m);
        free(buf);
        dcl_image_free(&want);
        dcl_image_free(&got);
    }
}

/* --------------------------------------------------------- bad inputs */

static int decode_fails(const uint8_t *p, size_t n, int64_t maxpix) {
    dcl_image img;
    dcl_status s = dcl_image_decode_ex(&img, p, n, maxpix);
    if (s == DCL_OK) {
        int ok = img.w > 0 && img.h > 0 && (int64_t)img.w * img.h <= maxpix && img.data;
        /* touch every byte so a bad buffer shows under ASan */
        unsigned sum = 0;
        for (size_t k = 0; ok && k < (size_t)img.w * img.h * 3; k++) sum += img.data[k];
        (void)sum;
        dcl_image_free(&img);
        return ok ? 0 : -1;
    }
    CHECK(img.data == NULL && img.w == 0, "image not cleared on error");
    CHECK(strlen(dcl_last_error()) > 0 && !strchr(dcl_last_error(), '\n'), "message '%s'", dcl_last_error());
    return 1;
}

static void test_truncation_and_corruption(void) {
    const char *names[] = {"rgb8.png", "pal4_adam7.png", "rgba16_adam7.png", "base.jpg", "prog.jpg", "cmyk.jpg", "gray.jpg"};
    dcl_rng r;
    dcl_rng_seed(&r, 1234);
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t n;
        uint8_t *buf = slurp(fixture(names[f]), &n);
        if (!buf) { CHECK(0, "missing %s", names[f]); continue; }
        int accepted = 0, crashed_checks = 0;
        for (size_t len = 0; len < n; len++) {
            int r1 = decode_fails(buf, len, DCL_IMAGE_MAX_PIXELS_DEFAULT);
            if (r1 == 0) accepted++;
            if (r1 < 0) crashed_checks++;
        }
        CHECK(accepted == 0, "%s: %d truncated versions decoded without error", names[f], accepted);
        CHECK(crashed_checks == 0, "%s: bad images", names[f]);
        /* single-byte corruption everywhere, then random multi-byte damage */
        uint8_t *cp = malloc(n);
        int errors = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(cp, buf, n);
            cp[i] ^= 0x55;
            int res = decode_fails(cp, n, DCL_IMAGE_MAX_PIXELS_DEFAULT);
            errors += res == 1;
            bad += res < 0;
        }
        for (int it = 0; it < 300; it++) {
            memcpy(cp, buf, n);
            int k = 1 + (int)dcl_rng_below(&r, 8);
            for (int j = 0; j < k; j++) cp[dcl_rng_below(&r, (uint32_t)n)] = (uint8_t)dcl_rng_u32(&r);
            int res = decode_fails(cp, n, 1 << 20);
            errors += res == 1;
            bad += res < 0;
        }
        CHECK(bad == 0, "%s: corrupt input produced an invalid image", names[f]);
        CHECK(errors > 0, "%s: no corruption was detected", names[f]);
        free(cp);
        free(buf);
    }
    /* not an image at all */
    dcl_image img;
    CHECK(dcl_image_decode(&img, "GIF89a\x01\x00\x01\x00", 10) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "unsupported image format"),
          "gif: %s", dcl_last_error());
    CHECK(dcl_image_decode(&img, "", 0) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "too short"), "empty");
    CHECK(dcl_image_decode(&img, "\xff\xd8\xff", 3) == DCL_ERR_FORMAT, "3-byte JPEG");
    CHECK(dcl_image_decode(&img, "\x89PNG\r\n\x1a\n", 8) == DCL_ERR_FORMAT, "bare PNG signature");
    CHECK(dcl_image_load(&img, "/nonexistent/x.png") == DCL_ERR_IO && strstr(dcl_last_error(), "/nonexistent/x.png"),
          "missing file");
    /* load names the file on decode errors */
    char path[300];
    snprintf(path, sizeof path, "%s/junk.png", g_tmp);
    dcl_write_file_atomic(path, "\x89PNG\r\n\x1a\njunkjunkjunk", 20);
    CHECK(dcl_image_load(&img, path) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "junk.png") &&
              strstr(dcl_last_error(), "PNG"),
          "junk: %s", dcl_last_error());
    unlink(path);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void test_pixel_guard(void) {
    size_t n;
    uint8_t *png = slurp(fixture("rgb8.png"), &n);
    uint8_t *jpg = NULL;
    size_t jn;
    jpg = slurp(fixture("base.jpg"), &jn);
    dcl_image img;
    if (png) {
        CHECK(dcl_image_decode_ex(&img, png, n, 32 * 24 - 1) == DCL_ERR_FORMAT &&
                  strstr(dcl_last_error(), "more than the allowed 767 pixels"),
              "limit: %s", dcl_last_error());
        CHECK_OK(dcl_image_decode_ex(&img, png, n, 32 * 24));
        dcl_image_free(&img);
        /* a header claiming 100000 x 100000 pixels, with a valid CRC */
        uint8_t *big = malloc(n);
        memcpy(big, png, n);
        put_be32(big + 16, 100000);
        put_be32(big + 20, 100000);
        put_be32(big + 29, crc32_png(big + 12, 17));
        CHECK(dcl_image_decode(&img, big, n) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "100000x100000"),
              "png bomb: %s", dcl_last_error());
        free(big);
    }
    if (jpg) {
        CHECK(dcl_image_decode_ex(&img, jpg, jn, 100) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "32x24"),
              "jpeg limit: %s", dcl_last_error());
        /* patch the SOF0 frame size to 60000 x 60000 */
        uint8_t *big = malloc(jn);
        memcpy(big, jpg, jn);
        int patched = 0;
        for (size_t i = 2; i + 9 < jn; i++)
            if (big[i] == 0xff && (big[i + 1] == 0xc0 || big[i + 1] == 0xc2)) {
                big[i + 5] = 60000 >> 8; big[i + 6] = 60000 & 0xff;
                big[i + 7] = 60000 >> 8; big[i + 8] = 60000 & 0xff;
                patched = 1;
                break;
            }
        CHECK(patched, "no SOF marker found");
        CHECK(dcl_image_decode(&img, big, jn) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "60000x60000"),
              "jpeg bomb: %s", dcl_last_error());
        free(big);
    }
    free(png);
    free(jpg);
}

/* ------------------------------------------------------------- encoders */

static void test_encoders(void) {
    dcl_image src;
    CHECK_OK(dcl_image_load(&src, fixture("base.jpg")));
    if (!src.data) return;
    uint8_t *buf;
    size_t n;
    CHECK_OK(dcl_image_encode_png_mem(&buf, &n, &src));
    dcl_image back;
    CHECK_OK(dcl_image_decode(&back, buf, n));
    CHECK(back.w == src.w && back.h == src.h && !memcmp(back.data, src.data, (size_t)src.w * src.h * 3),
          "PNG round trip not exact");
    dcl_image_free(&back);
    free(buf);

    for (int q = 50; q <= 100; q += 25) {
        CHECK_OK(dcl_image_encode_jpeg_mem(&buf, &n, &src, q));
        CHECK(n > 100 && buf[0] == 0xff && buf[1] == 0xd8, "JPEG header");
        CHECK_OK(dcl_image_decode(&back, buf, n));
        double mad = 0;
        for (size_t k = 0; back.data && k < (size_t)src.w * src.h * 3; k++)
            mad += fabs((double)back.data[k] - src.data[k]);
        mad /= (double)src.w * src.h * 3;
        CHECK(back.w == src.w && back.h == src.h && mad < (q == 100 ? 1.5 : 4.0), "JPEG q%d: mean abs diff %.2f", q, mad);
        dcl_image_free(&back);
        free(buf);
    }
    CHECK(dcl_image_encode_jpeg_mem(&buf, &n, &src, 0) == DCL_ERR_ARG, "quality 0");
    CHECK(dcl_image_encode_jpeg_mem(&buf, &n, &src, 101) == DCL_ERR_ARG, "quality 101");

    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/out.png", g_tmp);
    snprintf(p2, sizeof p2, "%s/out.jpg", g_tmp);
    CHECK_OK(dcl_image_save_png(p1, &src));
    CHECK_OK(dcl_image_save_jpeg(p2, &src, 90));
    CHECK_OK(dcl_image_load(&back, p1));
    CHECK(back.data && !memcmp(back.data, src.data, (size_t)src.w * src.h * 3), "saved PNG");
    dcl_image_free(&back);
    CHECK_OK(dcl_image_load(&back, p2));
    CHECK(back.w == 32 && back.h == 24, "saved JPEG");
    dcl_image_free(&back);
    CHECK(dcl_image_save_png("/nonexistent/dir/x.png", &src) == DCL_ERR_IO, "unwritable");
    DIR *d = opendir(g_tmp);
    struct dirent *e;
    int tmpfiles = 0;
    while (d && (e = readdir(d))) tmpfiles += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    CHECK(tmpfiles == 0, "temporary files left");
    unlink(p1);
    unlink(p2);
    dcl_image empty = {0};
    CHECK(dcl_image_encode_png_mem(&buf, &n, &empty) == DCL_ERR_ARG, "empty image");
    dcl_image_free(&src);
}

/* ------------------------------------------------------ resize / tensor */

static void test_resize(void) {
    dcl_image src;
    CHECK_OK(dcl_image_load(&src, fixture("rgb8.png")));
    if (!src.data) return;
    float *srcf = malloc(sizeof(float) * 32 * 24 * 3);
    for (int k = 0; k < 32 * 24 * 3; k++) srcf[k] = src.data[k];
    static const int sizes[][2] = {{17, 13}, {45, 37}, {50, 10}, {1, 1}};
    for (int i = 0; i < 4; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        char name[64];
        snprintf(name, sizeof name, "resize_%dx%d.f32", w, h);
        float *gold = load_f32(fixture(name), (size_t)w * h * 3);
        CHECK(gold != NULL, "missing %s", name);
        if (!gold) continue;
        float *got = malloc(sizeof(float) * (size_t)w * h * 3);
        CHECK_OK(dcl_resize_bilinear_f32(got, w, h, srcf, 32, 24, 3));
        CHECK_CLOSE(name, got, gold, (long)w * h * 3, 1e-3, 1e-5);
        dcl_image dst;
        CHECK_OK(dcl_image_resize_bilinear(&dst, w, h, &src));
        int bad = 0;
        for (int k = 0; dst.data && k < w * h * 3; k++) {
            float want = gold[k] + 0.5f;
            int lo = (int)floorf(gold[k] + 0.5f - 1e-3f), hi = (int)floorf(gold[k] + 0.5f + 1e-3f);
            (void)want;
            if (dst.data[k] < lo || dst.data[k] > hi) bad++;
        }
        CHECK(dst.w == w && dst.h == h && bad == 0, "%s: %d uint8 samples not rounded from torch's value", name, bad);
        dcl_image_free(&dst);
        free(got);
        free(gold);
    }
    dcl_image same;
    CHECK_OK(dcl_image_resize_bilinear(&same, 32, 24, &src));
    CHECK(same.data && !memcmp(same.data, src.data, 32 * 24 * 3), "identity resize");
    dcl_image_free(&same);
    CHECK(dcl_image_resize_bilinear(&same, 0, 5, &src) == DCL_ERR_ARG, "zero size");

    float *t = malloc(sizeof(float) * 32 * 24 * 3);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    dcl_image_to_tensor(t, &src, mean, std);
    float *gold = load_f32(fixture("to_tensor.f32"), 32 * 24 * 3);
    if (gold) CHECK_CLOSE("to_tensor", t, gold, 32 * 24 * 3, 1e-6, 1e-6);
    free(gold);
    free(t);
    free(srcf);
    dcl_image_free(&src);
}

static void test_crop(void) {
    dcl_image src;
    CHECK_OK(dcl_image_alloc(&src, 5, 4));
    for (int k = 0; k < 5 * 4 * 3; k++) src.data[k] = (uint8_t)(k + 1);
    static const int boxes[][4] = {{-2, -1, 4, 3}, {3, 2, 5, 5}, {0, 0, 5, 4}, {-10, 0, 3, 3}, {1, 1, 2, 2}, {-1, -1, 7, 6}};
    for (int b = 0; b < 6; b++) {
        int x0 = boxes[b][0], y0 = boxes[b][1], w = boxes[b][2], h = boxes[b][3];
        dcl_image dst;
        CHECK_OK(dcl_image_crop(&dst, &src, x0, y0, w, h));
        int bad = 0;
        for (int y = 0; dst.data && y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int sx = x0 + x, sy = y0 + y;
                    int want = (sx >= 0 && sx < 5 && sy >= 0 && sy < 4) ? src.data[(sy * 5 + sx) * 3 + c] : 0;
                    if (dst.data[(y * w + x) * 3 + c] != want) bad++;
                }
        CHECK(dst.w == w && dst.h == h && bad == 0, "crop %d: %d wrong samples", b, bad);
        dcl_image_free(&dst);
    }
    dcl_image dst;
    CHECK(dcl_image_crop(&dst, &src, 0, 0, 0, 3) == DCL_ERR_ARG, "empty crop");
    dcl_image_free(&src);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/dcl_test_img_XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_decode_fixtures();
    test_pixel_guard();
    test_truncation_and_corruption();
    test_encoders();
    test_resize();
    test_crop();
    rmdir(g_tmp);
    CHECK_DONE();
}
