/* Broadcast multiply (squeeze-excitation), add and masked scaling, for T. */

dcl_status FN(dcl_ref_mul_bcast_fwd)(int N, int HW, int C, T *y, const T *x, const T *s) {
    const char *op = "mul_bcast_fwd";
    NN_POS(op, N); NN_POS(op, HW); NN_POS(op, C);
    NN_NEED(op, y); NN_NEED(op, x); NN_NEED(op, s);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) {
                const int64_t i = ((int64_t)n * HW + p) * C + c;
                y[i] = x[i] * s[(int64_t)n * C + c];
            }
    return DCL_OK;
}

/* dx = dy * s (assigned); ds(n,c) = sum over HW of dy * x (assigned). */
dcl_status FN(dcl_ref_mul_bcast_bwd)(int N, int HW, int C, T *dx, T *ds, const T *dy,
                                     const T *x, const T *s) {
    const char *op = "mul_bcast_bwd";
    NN_POS(op, N); NN_POS(op, HW); NN_POS(op, C);
    NN_NEED(op, dx); NN_NEED(op, ds); NN_NEED(op, dy); NN_NEED(op, x); NN_NEED(op, s);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            dcl_acc a = 0;
            for (int p = 0; p < HW; p++) {
                const int64_t i = ((int64_t)n * HW + p) * C + c;
                a += (dcl_acc)dy[i] * x[i];
            }
            ds[(int64_t)n * C + c] = (T)a;
        }
    /* after ds: dx may alias dy or x */
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) {
                const int64_t i = ((int64_t)n * HW + p) * C + c;
                dx[i] = dy[i] * s[(int64_t)n * C + c];
            }
    return DCL_OK;
}

dcl_status FN(dcl_ref_add)(int64_t n, T *y, const T *a, const T *b) {
    const char *op = "add";
    if (n < 0) return dcl_fail(DCL_ERR_SHAPE, "%s: negative element count %lld", op, (long long)n);
    NN_NEED(op, y); NN_NEED(op, a); NN_NEED(op, b);
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return DCL_OK;
}

dcl_status FN(dcl_ref_scale_mask)(int64_t rows, int64_t cols, T *y, const T *x, const T *mask,
                                  int per_row, T scale) {
    const char *op = "scale_mask";
    if (rows < 0 || cols < 0)
        return dcl_fail(DCL_ERR_SHAPE, "%s: negative size %lldx%lld", op, (long long)rows, (long long)cols);
    NN_NEED(op, y); NN_NEED(op, x); NN_NEED(op, mask);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const int64_t i = r * cols + c;
            y[i] = x[i] * ((per_row ? mask[r] : mask[i]) * scale); /* as PyTorch: x * (mask / keep) */
        }
    return DCL_OK;
}
