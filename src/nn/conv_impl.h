/* Convolution, written once for scalar type T (see ref_common.h).
 * x (n,hi,wi,ci) NHWC, w (co, ci/groups, kh, kw), y (n,ho,wo,co) NHWC.
 * Output (oh,ow) reads input rows ih = oh*sh - pt + i*dh, columns
 * iw = ow*sw - pl + j*dw; positions outside the input are zero padding. */

dcl_status FN(dcl_ref_conv_fwd)(const dcl_conv_desc *d, T *y, const T *x, const T *w, const T *b) {
    DCL_TRY(dcl_nn_check_conv("conv_fwd", d));
    NN_NEED("conv_fwd", y); NN_NEED("conv_fwd", x); NN_NEED("conv_fwd", w);
    if (d->has_bias && !b) return dcl_fail(DCL_ERR_ARG, "conv_fwd: has_bias is set but bias b is NULL");
    const int cig = d->ci / d->groups, cog = d->co / d->groups, ksz = d->kh * d->kw;
    for (int n = 0; n < d->n; n++)
        for (int oh = 0; oh < d->ho; oh++)
            for (int ow = 0; ow < d->wo; ow++) {
                T *yp = y + (((int64_t)n * d->ho + oh) * d->wo + ow) * d->co;
                for (int oc = 0; oc < d->co; oc++) {
                    const int g = oc / cog;
                    const T *wp = w + (int64_t)oc * cig * ksz;
                    dcl_acc acc = d->has_bias ? (dcl_acc)b[oc] : 0;
                    for (int i = 0; i < d->kh; i++) {
                        const int ih = oh * d->sh - d->pt + i * d->dh;
                        if (ih < 0 || ih >= d->hi) continue;
                        for (int j = 0; j < d->kw; j++) {
                            const int iw = ow * d->sw - d->pl + j * d->dw;
                            if (iw < 0 || iw >= d->wi) continue;
                            const T *xp = x + (((int64_t)n * d->hi + ih) * d->wi + iw) * d->ci + (int64_t)g * cig;
                            const T *wk = wp + i * d->kw + j;
                            for (int c = 0; c < cig; c++) acc += (dcl_acc)xp[c] * wk[(int64_t)c * ksz];
                        }
                    }
                    yp[oc] = (T)acc;
                }
            }
    return DCL_OK;
}

/* dx(ih,iw,ic) = sum over (i,j,oc in ic's group) of w(oc,ic,i,j) * dy(oh,ow,oc)
 * where ih = oh*sh - pt + i*dh (same for columns): gathered so that each
 * element of dx is written once. */
dcl_status FN(dcl_ref_conv_bwd_data)(const dcl_conv_desc *d, T *dx, const T *dy, const T *w) {
    DCL_TRY(dcl_nn_check_conv("conv_bwd_data", d));
    NN_NEED("conv_bwd_data", dx); NN_NEED("conv_bwd_data", dy); NN_NEED("conv_bwd_data", w);
    const int cig = d->ci / d->groups, cog = d->co / d->groups, ksz = d->kh * d->kw;
    for (int n = 0; n < d->n; n++)
        for (int ih = 0; ih < d->hi; ih++)
            for (int iw = 0; iw < d->wi; iw++) {
                T *dxp = dx + (((int64_t)n * d->hi + ih) * d->wi + iw) * d->ci;
                for (int ic = 0; ic < d->ci; ic++) {
                    const int g = ic / cig, icl = ic % cig;
                    dcl_acc acc = 0;
                    for (int i = 0; i < d->kh; i++) {
                        const int th = ih + d->pt - i * d->dh;
                        if (th < 0 || th % d->sh) continue;
                        const int oh = th / d->sh;
                        if (oh >= d->ho) continue;
                        for (int j = 0; j < d->kw; j++) {
                            const int tw = iw + d->pl - j * d->dw;
                            if (tw < 0 || tw % d->sw) continue;
                            const int ow = tw / d->sw;
                            if (ow >= d->wo) continue;
                            const T *dyp = dy + (((int64_t)n * d->ho + oh) * d->wo + ow) * d->co + (int64_t)g * cog;
                            const T *wk = w + ((int64_t)g * cog * cig + icl) * ksz + i * d->kw + j;
                            for (int o = 0; o < cog; o++) acc += (dcl_acc)dyp[o] * wk[(int64_t)o * cig * ksz];
                        }
                    }
                    dxp[ic] = (T)acc;
                }
            }
    return DCL_OK;
}

/* dw(oc,icl,i,j) += sum over (n,oh,ow) of dy(oh,ow,oc) * x(ih,iw,g*cig+icl);
 * db(oc) += sum of dy(.,.,oc).  Sums go into a double scratch laid out
 * (i, j, oc, icl) so the innermost loop is contiguous, then fold into dw. */
dcl_status FN(dcl_ref_conv_bwd_weights)(const dcl_conv_desc *d, T *dw, T *db, const T *dy, const T *x) {
    DCL_TRY(dcl_nn_check_conv("conv_bwd_weights", d));
    NN_NEED("conv_bwd_weights", dw); NN_NEED("conv_bwd_weights", dy); NN_NEED("conv_bwd_weights", x);
    const int cig = d->ci / d->groups, cog = d->co / d->groups, ksz = d->kh * d->kw;
    const int64_t nw = (int64_t)d->co * cig * ksz;
    dcl_acc *acc = dcl_calloc((size_t)(nw + d->co) * sizeof *acc);
    if (!acc) return dcl_fail(DCL_ERR_NOMEM, "conv_bwd_weights: cannot allocate %lld accumulators", (long long)(nw + d->co));
    dcl_acc *accb = acc + nw;
    for (int n = 0; n < d->n; n++)
        for (int oh = 0; oh < d->ho; oh++)
            for (int ow = 0; ow < d->wo; ow++) {
                const T *dyp = dy + (((int64_t)n * d->ho + oh) * d->wo + ow) * d->co;
                for (int oc = 0; oc < d->co; oc++) accb[oc] += dyp[oc];
                for (int i = 0; i < d->kh; i++) {
                    const int ih = oh * d->sh - d->pt + i * d->dh;
                    if (ih < 0 || ih >= d->hi) continue;
                    for (int j = 0; j < d->kw; j++) {
                        const int iw = ow * d->sw - d->pl + j * d->dw;
                        if (iw < 0 || iw >= d->wi) continue;
                        const T *xp = x + (((int64_t)n * d->hi + ih) * d->wi + iw) * d->ci;
                        dcl_acc *ak = acc + (int64_t)(i * d->kw + j) * d->co * cig;
                        for (int oc = 0; oc < d->co; oc++) {
                            const dcl_acc g = dyp[oc];
                            const T *xg = xp + (int64_t)(oc / cog) * cig;
                            dcl_acc *a = ak + (int64_t)oc * cig;
                            for (int c = 0; c < cig; c++) a[c] += g * xg[c];
                        }
                    }
                }
            }
    for (int oc = 0; oc < d->co; oc++)
        for (int c = 0; c < cig; c++)
            for (int k = 0; k < ksz; k++)
                {
                T *p = &dw[((int64_t)oc * cig + c) * ksz + k];
                *p = (T)(*p + acc[((int64_t)k * d->co + oc) * cig + c]);
            }
    if (db)
        for (int oc = 0; oc < d->co; oc++) db[oc] = (T)(db[oc] + accb[oc]);
    dcl_free(acc);
    return DCL_OK;
}
