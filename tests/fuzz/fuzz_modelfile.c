/* libFuzzer target: opening a model file from bytes (safetensors header,
 * metadata, deployment settings, a checkpoint's YAML config, the detector's
 * tensors, embedded MTCNN weights), then scoring one small image.
 *
 * Files describing more than a narrow EfficientNet-b0 (width <= 0.25, depth
 * <= 0.34, input <= 64) stop after the metadata checks, so that each input
 * stays fast; the reference backend runs the networks.  Without embedded
 * MTCNN weights models/mtcnn.safetensors is read (run from the repository
 * root). */
#include "dcl/deploy.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dcl_st *st = NULL;
    if (dcl_st_open_mem(&st, data, size, "fuzz.safetensors") != DCL_OK) {
        if (st || !one_line(dcl_last_error())) __builtin_trap();
        return 0;
    }
    dcl_deploy_info info;
    dcl_status s = dcl_deploy_info_read(&info, st);
    dcl_st_close(st);
    if (s) {
        if (!one_line(dcl_last_error())) __builtin_trap();
        return 0;
    }
    if (!(info.width > 0 && info.width <= 4) || !(info.depth > 0 && info.depth <= 6) || info.size < 32 ||
        info.size > 1024 || !(info.threshold >= 0 && info.threshold <= 1) || !(info.crop_scale > 0) ||
        !(info.face_min_size >= 4))
        __builtin_trap();
    /* only narrow b0 detectors go further */
    if (strstr(info.arch, "efficientnet_b0") == NULL || info.width > 0.25f || info.depth > 0.34f || info.size > 64) return 0;
    dcl_deploy_opts o;
    dcl_deploy_opts_default(&o);
    o.device = "ref";
    o.threads = 1;
    o.max_pixels = 1 << 16;
    dcl_deploy *d = NULL;
    s = dcl_deploy_open_mem(&d, data, size, "fuzz.safetensors", &o);
    if (s) {
        if (d || !one_line(dcl_last_error())) __builtin_trap();
        return 0;
    }
    /* a small image: a bright square on grey */
    dcl_image img = {0};
    if (dcl_image_alloc(&img, 40, 30) == DCL_OK) {
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 40; x++) {
                uint8_t v = (x > 10 && x < 30 && y > 5 && y < 25) ? 220 : 90;
                memset(img.data + ((size_t)y * 40 + x) * 3, v, 3);
            }
        dcl_frame_result fr;
        if (dcl_deploy_score_image(d, &img, &fr) == DCL_OK) {
            for (int i = 0; i < fr.nfaces; i++)
                if (!(isnan(fr.faces[i].prob) || (fr.faces[i].prob >= 0 && fr.faces[i].prob <= 1))) __builtin_trap();
            dcl_frame_result_free(&fr);
        }
        dcl_image_free(&img);
    }
    dcl_deploy_free(d);
    return 0;
}
