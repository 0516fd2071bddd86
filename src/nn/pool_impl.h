/* Max / average pooling and global average pooling, for scalar type T.
 * Window of output (oh,ow): rows oh*sh - pt .. +kh-1, columns ow*sw - pl ..
 * +kw-1, clipped to the input (padded positions never win a max). Average
 * divisor (PyTorch): with count_include_pad the window clipped to the padded
 * extent [-pt, hi+pb) x [-pl, wi+pr), else the number of input positions. */

static void FN(nn_pool_window)(const dcl_pool_desc *d, int oh, int ow, int *h0, int *h1,
                               int *w0, int *w1, int64_t *divisor) {
    int hs = oh * d->sh - d->pt, ws = ow * d->sw - d->pl;
    int he = hs + d->kh, we = ws + d->kw;
    if (he > d->hi + d->pb) he = d->hi + d->pb;
    if (we > d->wi + d->pr) we = d->wi + d->pr;
    const int64_t padded = (int64_t)(he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > d->hi) he = d->hi;
    if (we > d->wi) we = d->wi;
    *h0 = hs; *h1 = he; *w0 = ws; *w1 = we;
    *divisor = d->count_include_pad ? padded : (int64_t)(he > hs ? he - hs : 0) * (we > ws ? we - ws : 0);
}

dcl_status FN(dcl_ref_pool_fwd)(const dcl_pool_desc *d, T *y, const T *x) {
    DCL_TRY(dcl_nn_check_pool("pool_fwd", d));
    NN_NEED("pool_fwd", y); NN_NEED("pool_fwd", x);
    const int C = d->c;
    for (int n = 0; n < d->n; n++)
        for (int oh = 0; oh < d->ho; oh++)
            for (int ow = 0; ow < d->wo; ow++) {
                int h0, h1, w0, w1;
                int64_t div;
                FN(nn_pool_window)(d, oh, ow, &h0, &h1, &w0, &w1, &div);
                T *yp = y + (((int64_t)n * d->ho + oh) * d->wo + ow) * C;
                for (int c = 0; c < C; c++) {
                    if (d->kind == DCL_POOL_MAX) {
                        T m = -(T)INFINITY;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++) {
                                const T v = x[(((int64_t)n * d->hi + h) * d->wi + w) * C + c];
                                if (v > m || isnan(v)) m = v;
                            }
                        yp[c] = m;
                    } else {
                        dcl_acc s = 0;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++)
                                s += x[(((int64_t)n * d->hi + h) * d->wi + w) * C + c];
                        yp[c] = div > 0 ? (T)(s / (dcl_acc)div) : (T)0;
                    }
                }
            }
    return DCL_OK;
}

/* max: each dy goes to the first maximum of its window (recomputed from x);
 * avg: each dy is spread as dy / divisor over its window.  Windows may
 * overlap, so dx is cleared first and then summed into. */
dcl_status FN(dcl_ref_pool_bwd)(const dcl_pool_desc *d, T *dx, const T *dy, const T *x, const T *y) {
    DCL_TRY(dcl_nn_check_pool("pool_bwd", d));
    NN_NEED("pool_bwd", dx); NN_NEED("pool_bwd", dy);
    if (d->kind == DCL_POOL_MAX && !x) return dcl_fail(DCL_ERR_ARG, "pool_bwd: max pooling needs its input x (NULL)");
    const int C = d->c;
    memset(dx, 0, (size_t)d->n * d->hi * d->wi * C * sizeof *dx);
    for (int n = 0; n < d->n; n++)
        for (int oh = 0; oh < d->ho; oh++)
            for (int ow = 0; ow < d->wo; ow++) {
                int h0, h1, w0, w1;
                int64_t div;
                FN(nn_pool_window)(d, oh, ow, &h0, &h1, &w0, &w1, &div);
                const T *dyp = dy + (((int64_t)n * d->ho + oh) * d->wo + ow) * C;
                for (int c = 0; c < C; c++) {
                    if (d->kind == DCL_POOL_MAX) {
                        T m = -(T)INFINITY;
                        int64_t at = -1;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++) {
                                const int64_t k = (((int64_t)n * d->hi + h) * d->wi + w) * C + c;
                                if (at < 0 || x[k] > m || isnan(x[k])) { m = x[k]; at = k; }
                            }
                        if (at >= 0) dx[at] += dyp[c];
                    } else if (div > 0) {
                        const T g = (T)((dcl_acc)dyp[c] / (dcl_acc)div);
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++)
                                dx[(((int64_t)n * d->hi + h) * d->wi + w) * C + c] += g;
                    }
                }
            }
    return DCL_OK;
}

dcl_status FN(dcl_ref_gap_fwd)(int N, int HW, int C, T *y, const T *x) {
    const char *op = "gap_fwd";
    NN_POS(op, N); NN_POS(op, HW); NN_POS(op, C);
    NN_NEED(op, y); NN_NEED(op, x);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            dcl_acc s = 0;
            for (int p = 0; p < HW; p++) s += x[((int64_t)n * HW + p) * C + c];
            y[(int64_t)n * C + c] = (T)(s / HW);
        }
    return DCL_OK;
}

dcl_status FN(dcl_ref_gap_bwd)(int N, int HW, int C, T *dx, const T *dy) {
    const char *op = "gap_bwd";
    NN_POS(op, N); NN_POS(op, HW); NN_POS(op, C);
    NN_NEED(op, dx); NN_NEED(op, dy);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++)
                dx[((int64_t)n * HW + p) * C + c] = (T)((dcl_acc)dy[(int64_t)n * C + c] / HW);
    return DCL_OK;
}
