/* Dropout and drop-path masks drawn from dcl_rng. */
#include "nn/ref_common.h"

static dcl_status bernoulli_mask(const char *op, dcl_rng *rng, int64_t n, float p, float *mask, float *scale) {
    NN_NEED(op, rng); NN_NEED(op, mask); NN_NEED(op, scale);
    if (n < 0) return dcl_fail(DCL_ERR_SHAPE, "%s: negative element count %lld", op, (long long)n);
    if (!(p >= 0.0f && p <= 1.0f)) return dcl_fail(DCL_ERR_ARG, "%s: drop probability %g is outside [0, 1]", op, (double)p);
    const double keep = 1.0 - (double)p;
    for (int64_t i = 0; i < n; i++) mask[i] = dcl_rng_uniform(rng) < keep ? 1.0f : 0.0f;
    *scale = keep > 0 ? (float)(1.0 / keep) : 0.0f;
    return DCL_OK;
}

dcl_status dcl_dropout_mask(dcl_rng *rng, int64_t n, float p, float *mask, float *scale) {
    return bernoulli_mask("dropout_mask", rng, n, p, mask, scale);
}

dcl_status dcl_drop_path_mask(dcl_rng *rng, int64_t rows, float p, float *mask, float *scale) {
    return bernoulli_mask("drop_path_mask", rng, rows, p, mask, scale);
}
