/* Elementwise activations and PReLU, for scalar type T. */

static inline T FN(nn_sigmoid)(T x) { return (T)1 / ((T)1 + exp(-x)); }

dcl_status FN(dcl_ref_act_fwd)(dcl_act a, int64_t n, T *y, const T *x) {
    const char *op = "act_fwd";
    if (n < 0) return dcl_fail(DCL_ERR_SHAPE, "%s: negative element count %lld", op, (long long)n);
    NN_NEED(op, y); NN_NEED(op, x);
    switch (a) {
    case DCL_ACT_NONE:
        if (y != x) memmove(y, x, (size_t)n * sizeof *y);
        return DCL_OK;
    case DCL_ACT_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (T)0;
        return DCL_OK;
    case DCL_ACT_SILU:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * FN(nn_sigmoid)(x[i]);
        return DCL_OK;
    case DCL_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) y[i] = FN(nn_sigmoid)(x[i]);
        return DCL_OK;
    }
    return dcl_fail(DCL_ERR_ARG, "%s: unknown activation %d", op, (int)a);
}

/* relu: dy where x > 0 (PyTorch: where the output is positive), 0 elsewhere;
 * silu: dy * s * (1 + x (1 - s)), s = sigmoid(x);  sigmoid: dy * y (1 - y). */
dcl_status FN(dcl_ref_act_bwd)(dcl_act a, int64_t n, T *dx, const T *dy, const T *x, const T *y) {
    const char *op = "act_bwd";
    if (n < 0) return dcl_fail(DCL_ERR_SHAPE, "%s: negative element count %lld", op, (long long)n);
    NN_NEED(op, dx); NN_NEED(op, dy);
    switch (a) {
    case DCL_ACT_NONE:
        if (dx != dy) memmove(dx, dy, (size_t)n * sizeof *dx);
        return DCL_OK;
    case DCL_ACT_RELU: {
        const T *v = x ? x : y;
        if (!v) return dcl_fail(DCL_ERR_ARG, "%s: relu needs x or y (both NULL)", op);
        for (int64_t i = 0; i < n; i++) dx[i] = v[i] > 0 ? dy[i] : (T)0;
        return DCL_OK;
    }
    case DCL_ACT_SILU:
        if (!x) return dcl_fail(DCL_ERR_ARG, "%s: silu needs its input x (NULL)", op);
        for (int64_t i = 0; i < n; i++) {
            const T s = FN(nn_sigmoid)(x[i]);
            dx[i] = dy[i] * (s * ((T)1 + x[i] * ((T)1 - s)));
        }
        return DCL_OK;
    case DCL_ACT_SIGMOID:
        if (y) {
            for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * ((T)1 - y[i]));
        } else if (x) {
            for (int64_t i = 0; i < n; i++) {
                const T s = FN(nn_sigmoid)(x[i]);
                dx[i] = dy[i] * (s * ((T)1 - s));
            }
        } else {
            return dcl_fail(DCL_ERR_ARG, "%s: sigmoid needs x or y (both NULL)", op);
        }
        return DCL_OK;
    }
    return dcl_fail(DCL_ERR_ARG, "%s: unknown activation %d", op, (int)a);
}

dcl_status FN(dcl_ref_prelu_fwd)(int64_t M, int C, T *y, const T *x, const T *alpha) {
    const char *op = "prelu_fwd";
    NN_POS(op, M); NN_POS(op, C);
    NN_NEED(op, y); NN_NEED(op, x); NN_NEED(op, alpha);
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const T v = x[m * C + c];
            y[m * C + c] = v > 0 ? v : alpha[c] * v;
        }
    return DCL_OK;
}

/* dx = dy where x > 0, alpha * dy elsewhere; dalpha += sum over x <= 0 of x * dy. */
dcl_status FN(dcl_ref_prelu_bwd)(int64_t M, int C, T *dx, T *dalpha, const T *dy, const T *x,
                                 const T *alpha) {
    const char *op = "prelu_bwd";
    NN_POS(op, M); NN_POS(op, C);
    NN_NEED(op, dx); NN_NEED(op, dalpha); NN_NEED(op, dy); NN_NEED(op, x); NN_NEED(op, alpha);
    dcl_acc *s = dcl_calloc((size_t)C * sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %d channel sums", op, C);
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const T v = x[m * C + c], g = dy[m * C + c];
            if (v > 0) {
                dx[m * C + c] = g;
            } else {
                s[c] += (dcl_acc)v * g;
                dx[m * C + c] = alpha[c] * g;
            }
        }
    for (int c = 0; c < C; c++) dalpha[c] = (T)(dalpha[c] + s[c]);
    dcl_free(s);
    return DCL_OK;
}
