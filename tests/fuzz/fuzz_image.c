/* libFuzzer target: PNG/JPEG decoders (pixel limit 2^18 to stay fast), then
 * resize, crop, to_tensor and a PNG encode/decode round trip of the result. */
#include "dcl/io.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dcl_image img;
    if (dcl_image_decode_ex(&img, data, size, 1 << 18) != DCL_OK) {
        if (img.data || !dcl_last_error()[0]) __builtin_trap();
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || img.c != 3 || (int64_t)img.w * img.h > (1 << 18)) __builtin_trap();
    dcl_image r, c;
    if (dcl_image_resize_bilinear(&r, 7, 5, &img) != DCL_OK) __builtin_trap();
    if (dcl_image_crop(&c, &img, -3, img.h / 2, img.w, 4) != DCL_OK) __builtin_trap();
    float *t = malloc(sizeof(float) * (size_t)img.w * img.h * 3);
    const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
    dcl_image_to_tensor(t, &img, mean, std);
    free(t);
    uint8_t *png;
    size_t n;
    if (dcl_image_encode_png_mem(&png, &n, &r) != DCL_OK) __builtin_trap();
    dcl_image back;
    if (dcl_image_decode(&back, png, n) != DCL_OK || back.w != 7 || back.h != 5 || memcmp(back.data, r.data, 7 * 5 * 3))
        __builtin_trap();
    dcl_image_free(&back);
    free(png);
    if (dcl_image_encode_jpeg_mem(&png, &n, &c, 75) != DCL_OK) __builtin_trap();
    if (dcl_image_decode(&back, png, n) != DCL_OK || back.w != c.w || back.h != c.h) __builtin_trap();
    dcl_image_free(&back);
    free(png);
    dcl_image_free(&r);
    dcl_image_free(&c);
    dcl_image_free(&img);
    return 0;
}
