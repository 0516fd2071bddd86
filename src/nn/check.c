/* Descriptor validation shared by the reference kernels. */
#include "nn/ref_common.h"

dcl_status dcl_nn_check_conv(const char *op, const dcl_conv_desc *d) {
    if (!d) return dcl_fail(DCL_ERR_ARG, "%s: descriptor is NULL", op);
    if (d->n <= 0 || d->ci <= 0 || d->hi <= 0 || d->wi <= 0 || d->co <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: sizes must be positive (input n=%d c=%d h=%d w=%d, output c=%d)",
                        op, d->n, d->ci, d->hi, d->wi, d->co);
    if (d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->dh <= 0 || d->dw <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: kernel %dx%d, stride %dx%d and dilation %dx%d must be positive",
                        op, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw);
    if (d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: negative padding (top %d bottom %d left %d right %d)",
                        op, d->pt, d->pb, d->pl, d->pr);
    if (d->groups <= 0 || d->ci % d->groups || d->co % d->groups)
        return dcl_fail(DCL_ERR_SHAPE, "%s: channels %d->%d not divisible by groups %d",
                        op, d->ci, d->co, d->groups);
    dcl_conv_desc e = *d;
    dcl_status s = dcl_conv_desc_finish(&e);
    if (s != DCL_OK) return dcl_fail_ctx(s, "%s", op);
    if (e.ho != d->ho || e.wo != d->wo)
        return dcl_fail(DCL_ERR_SHAPE, "%s: output %dx%d does not match input %dx%d with kernel %dx%d, stride %dx%d, "
                        "dilation %dx%d, padding %d/%d/%d/%d (expected %dx%d; call dcl_conv_desc_finish)",
                        op, d->ho, d->wo, d->hi, d->wi, d->kh, d->kw, d->sh, d->sw, d->dh, d->dw,
                        d->pt, d->pb, d->pl, d->pr, e.ho, e.wo);
    return DCL_OK;
}

dcl_status dcl_nn_check_pool(const char *op, const dcl_pool_desc *d) {
    if (!d) return dcl_fail(DCL_ERR_ARG, "%s: descriptor is NULL", op);
    if (d->kind != DCL_POOL_MAX && d->kind != DCL_POOL_AVG)
        return dcl_fail(DCL_ERR_ARG, "%s: unknown pooling kind %d", op, (int)d->kind);
    if (d->n <= 0 || d->c <= 0 || d->hi <= 0 || d->wi <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: sizes must be positive (input n=%d c=%d h=%d w=%d)",
                        op, d->n, d->c, d->hi, d->wi);
    if (d->kh <= 0 || d->kw <= 0 || d->sh <= 0 || d->sw <= 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: window %dx%d and stride %dx%d must be positive",
                        op, d->kh, d->kw, d->sh, d->sw);
    if (d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0 ||
        d->pt >= d->kh || d->pb >= d->kh || d->pl >= d->kw || d->pr >= d->kw)
        return dcl_fail(DCL_ERR_SHAPE, "%s: padding (top %d bottom %d left %d right %d) must be "
                        "non-negative and smaller than the window %dx%d",
                        op, d->pt, d->pb, d->pl, d->pr, d->kh, d->kw);
    dcl_pool_desc e = *d;
    dcl_status s = dcl_pool_desc_finish(&e);
    if (s != DCL_OK) return dcl_fail_ctx(s, "%s", op);
    if (e.ho != d->ho || e.wo != d->wo)
        return dcl_fail(DCL_ERR_SHAPE, "%s: output %dx%d does not match input %dx%d with window %dx%d, stride %dx%d, "
                        "padding %d/%d/%d/%d, ceil_mode %d (expected %dx%d; call dcl_pool_desc_finish)",
                        op, d->ho, d->wo, d->hi, d->wi, d->kh, d->kw, d->sh, d->sw,
                        d->pt, d->pb, d->pl, d->pr, d->ceil_mode, e.ho, e.wo);
    return DCL_OK;
}
