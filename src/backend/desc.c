#include "backend/backend.h"
#include <string.h>

void dcl_same_pad(int in, int k, int s, int d, int *before, int *after) {
    int out = (in + s - 1) / s;
    int total = (out - 1) * s + (k - 1) * d + 1 - in;
    if (total < 0) total = 0;
    *before = total / 2;
    *after = total - *before;
}

dcl_status dcl_conv_desc_finish(dcl_conv_desc *d) {
    if (d->groups <= 0) d->groups = 1;
    if (d->sh <= 0) d->sh = 1;
    if (d->sw <= 0) d->sw = 1;
    if (d->dh <= 0) d->dh = 1;
    if (d->dw <= 0) d->dw = 1;
    if (d->ci % d->groups || d->co % d->groups)
        return dcl_fail(DCL_ERR_SHAPE, "conv: channels %d->%d not divisible by groups %d", d->ci, d->co, d->groups);
    d->ho = (d->hi + d->pt + d->pb - d->dh * (d->kh - 1) - 1) / d->sh + 1;
    d->wo = (d->wi + d->pl + d->pr - d->dw * (d->kw - 1) - 1) / d->sw + 1;
    if (d->ho <= 0 || d->wo <= 0 || d->n <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "conv: input %dx%d too small for kernel %dx%d", d->hi, d->wi, d->kh, d->kw);
    return DCL_OK;
}

static int pool_out(int in, int k, int s, int p0, int p1, int ceil_mode) {
    int num = in + p0 + p1 - k;
    int o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    /* PyTorch: last window must start inside the input or left padding */
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

dcl_status dcl_pool_desc_finish(dcl_pool_desc *d) {
    if (d->sh <= 0) d->sh = d->kh;
    if (d->sw <= 0) d->sw = d->kw;
    d->ho = pool_out(d->hi, d->kh, d->sh, d->pt, d->pb, d->ceil_mode);
    d->wo = pool_out(d->wi, d->kw, d->sw, d->pl, d->pr, d->ceil_mode);
    if (d->ho <= 0 || d->wo <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "pool: input %dx%d too small for window %dx%d", d->hi, d->wi, d->kh, d->kw);
    return DCL_OK;
}
