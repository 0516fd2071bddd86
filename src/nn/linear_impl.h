/* Fully connected layer, for scalar type T: y (M,O) = x (M,K) W^T + b, W (O,K). */

dcl_status FN(dcl_ref_linear_fwd)(int M, int K, int O, T *y, const T *x, const T *w, const T *b) {
    const char *op = "linear_fwd";
    NN_POS(op, M); NN_POS(op, K); NN_POS(op, O);
    NN_NEED(op, y); NN_NEED(op, x); NN_NEED(op, w);
    for (int m = 0; m < M; m++) {
        const T *xr = x + (int64_t)m * K;
        for (int o = 0; o < O; o++) {
            const T *wr = w + (int64_t)o * K;
            dcl_acc s = b ? (dcl_acc)b[o] : 0;
            for (int k = 0; k < K; k++) s += (dcl_acc)xr[k] * wr[k];
            y[(int64_t)m * O + o] = (T)s;
        }
    }
    return DCL_OK;
}

/* dx (M,K) = dy W (assigned, skipped when NULL); dW += dy^T x; db += sum_m dy. */
dcl_status FN(dcl_ref_linear_bwd)(int M, int K, int O, T *dx, T *dw, T *db, const T *dy,
                                  const T *x, const T *w) {
    const char *op = "linear_bwd";
    NN_POS(op, M); NN_POS(op, K); NN_POS(op, O);
    NN_NEED(op, dw); NN_NEED(op, dy); NN_NEED(op, x);
    if (dx) {
        NN_NEED(op, w);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                dcl_acc s = 0;
                for (int o = 0; o < O; o++) s += (dcl_acc)dy[(int64_t)m * O + o] * w[(int64_t)o * K + k];
                dx[(int64_t)m * K + k] = (T)s;
            }
    }
    for (int o = 0; o < O; o++)
        for (int k = 0; k < K; k++) {
            dcl_acc s = 0;
            for (int m = 0; m < M; m++) s += (dcl_acc)dy[(int64_t)m * O + o] * x[(int64_t)m * K + k];
            dw[(int64_t)o * K + k] = (T)(dw[(int64_t)o * K + k] + s);
        }
    if (db)
        for (int o = 0; o < O; o++) {
            dcl_acc s = 0;
            for (int m = 0; m < M; m++) s += dy[(int64_t)m * O + o];
            db[o] = (T)(db[o] + s);
        }
    return DCL_OK;
}
