#include "synthcache.h"
#include "dcl/cache.h"
#include "dcl/io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void put(dcl_image *im, int x, int y, float r, float g, float b) {
    uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
    float v[3] = {r, g, b};
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)(v[k] < 0 ? 0 : v[k] > 255 ? 255 : v[k]);
}

int make_synth_cache(const char *dir, int videos, int frames, int S, uint64_t seed) {
    char path[4096];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/crops", dir);
    mkdir(path, 0777);
    dcl_cache_writer *w = NULL;
    if (dcl_cache_writer_open(&w, dir)) return -1;
    dcl_rng r;
    dcl_rng_seed(&r, seed);
    for (int v = 0; v < videos; v++) {
        float skin[3] = {150 + 80 * (float)dcl_rng_uniform(&r), 100 + 60 * (float)dcl_rng_uniform(&r), 80 + 60 * (float)dcl_rng_uniform(&r)};
        float bg[3] = {255 * (float)dcl_rng_uniform(&r), 255 * (float)dcl_rng_uniform(&r), 255 * (float)dcl_rng_uniform(&r)};
        float fx = 2 + 3 * (float)dcl_rng_uniform(&r), fy = 2 + 3 * (float)dcl_rng_uniform(&r);
        const char *split = v % 4 == 3 ? "val" : "train";
        for (int f = 0; f < frames; f++) {
            float cx = S / 2 + 2 * sinf(f * 0.7f + v), cy = S / 2 + 2 * cosf(f * 0.5f + v);
            dcl_image real, fake, mask;
            dcl_image_alloc(&real, S, S);
            dcl_image_alloc(&fake, S, S);
            dcl_image_alloc(&mask, S, S);
            memset(mask.data, 0, (size_t)S * S * 3);
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    float dx = (x - cx) / (0.32f * S), dy = (y - cy) / (0.42f * S);
                    float shade = 20 * sinf(x * fx / S * 6.28f) * cosf(y * fy / S * 6.28f);
                    float noise = 6 * (float)(dcl_rng_uniform(&r) - 0.5);
                    int face = dx * dx + dy * dy < 1;
                    const float *c = face ? skin : bg;
                    put(&real, x, y, c[0] + shade + noise, c[1] + shade + noise, c[2] + shade + noise);
                    /* manipulated region: the lower-middle ellipse, blurred tone + blocky noise */
                    float mx = (x - cx) / (0.2f * S), my = (y - cy - 0.08f * S) / (0.22f * S);
                    int in = mx * mx + my * my < 1;
                    if (in) {
                        /* up-sampling-like checkerboard and a tone shift: the forgery trace */
                        float chk = ((x / 2 + y / 2) & 1) ? 22.0f : -22.0f;
                        put(&fake, x, y, c[0] * 0.9f + 25 + chk, c[1] * 0.95f + chk, c[2] * 1.05f - chk);
                        put(&mask, x, y, 255, 255, 255);
                    } else {
                        memcpy(fake.data + ((size_t)y * S + x) * 3, real.data + ((size_t)y * S + x) * 3, 3);
                    }
                }
            char rel_r[256], rel_f[256], rel_m[256], vid_r[64], vid_f[64];
            snprintf(vid_r, sizeof vid_r, "%03d", v);
            snprintf(vid_f, sizeof vid_f, "%03d_fake", v);
            snprintf(rel_r, sizeof rel_r, "crops/r%03d_%02d.png", v, f);
            snprintf(rel_f, sizeof rel_f, "crops/f%03d_%02d.png", v, f);
            snprintf(rel_m, sizeof rel_m, "crops/m%03d_%02d.png", v, f);
            int ok = 1;
            snprintf(path, sizeof path, "%s/%s", dir, rel_r); ok &= !dcl_image_save_png(path, &real);
            snprintf(path, sizeof path, "%s/%s", dir, rel_f); ok &= !dcl_image_save_png(path, &fake);
            snprintf(path, sizeof path, "%s/%s", dir, rel_m); ok &= !dcl_image_save_png(path, &mask);
            dcl_cache_entry er = {0}, ef = {0};
            er.crop = rel_r; er.pair = ""; er.mask = ""; er.dataset = "synthetic"; er.method = "real";
            er.video = vid_r; er.split = (char *)split; er.identity = vid_r; er.label = 0; er.frame = f;
            ef = er;
            ef.crop = rel_f; ef.pair = rel_r; ef.mask = rel_m; ef.method = "blend"; ef.video = vid_f; ef.label = 1;
            ok &= !dcl_cache_writer_add(w, &er);
            ok &= !dcl_cache_writer_add(w, &ef);
            dcl_image_free(&real);
            dcl_image_free(&fake);
            dcl_image_free(&mask);
            if (!ok) { dcl_cache_writer_close(w); return -1; }
        }
    }
    dcl_cache_writer_close(w);
    return 0;
}
