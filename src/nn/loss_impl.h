/* Softmax, log-softmax, cross-entropy, BCE-with-logits and row L2
 * normalisation, for scalar type T.  Row sums accumulate in double. */

/* max of a row and sum of exp(x - max) */
static void FN(nn_row_lse)(int K, const T *x, dcl_acc *mx, dcl_acc *sum) {
    dcl_acc m = x[0];
    for (int k = 1; k < K; k++) if (x[k] > m) m = x[k];
    dcl_acc s = 0;
    for (int k = 0; k < K; k++) s += exp((dcl_acc)x[k] - m);
    *mx = m; *sum = s;
}

dcl_status FN(dcl_softmax_fwd)(int64_t M, int K, T *y, const T *x) {
    const char *op = "softmax_fwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, y); NN_NEED(op, x);
    for (int64_t m = 0; m < M; m++) {
        const T *xr = x + m * K;
        T *yr = y + m * K;
        dcl_acc mx, s;
        FN(nn_row_lse)(K, xr, &mx, &s);
        for (int k = 0; k < K; k++) yr[k] = (T)(exp((dcl_acc)xr[k] - mx) / s);
    }
    return DCL_OK;
}

/* dx = y * (dy - sum(dy * y)) */
dcl_status FN(dcl_softmax_bwd)(int64_t M, int K, T *dx, const T *dy, const T *y) {
    const char *op = "softmax_bwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, dx); NN_NEED(op, dy); NN_NEED(op, y);
    for (int64_t m = 0; m < M; m++) {
        const T *g = dy + m * K, *yr = y + m * K;
        T *d = dx + m * K;
        dcl_acc s = 0;
        for (int k = 0; k < K; k++) s += (dcl_acc)g[k] * yr[k];
        for (int k = 0; k < K; k++) d[k] = (T)(yr[k] * ((dcl_acc)g[k] - s));
    }
    return DCL_OK;
}

dcl_status FN(dcl_log_softmax_fwd)(int64_t M, int K, T *y, const T *x) {
    const char *op = "log_softmax_fwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, y); NN_NEED(op, x);
    for (int64_t m = 0; m < M; m++) {
        const T *xr = x + m * K;
        T *yr = y + m * K;
        dcl_acc mx, s;
        FN(nn_row_lse)(K, xr, &mx, &s);
        const dcl_acc lse = mx + log(s);
        for (int k = 0; k < K; k++) yr[k] = (T)((dcl_acc)xr[k] - lse);
    }
    return DCL_OK;
}

/* dx = dy - exp(y) * sum(dy) */
dcl_status FN(dcl_log_softmax_bwd)(int64_t M, int K, T *dx, const T *dy, const T *y) {
    const char *op = "log_softmax_bwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, dx); NN_NEED(op, dy); NN_NEED(op, y);
    for (int64_t m = 0; m < M; m++) {
        const T *g = dy + m * K, *yr = y + m * K;
        T *d = dx + m * K;
        dcl_acc s = 0;
        for (int k = 0; k < K; k++) s += g[k];
        for (int k = 0; k < K; k++) d[k] = (T)((dcl_acc)g[k] - exp((dcl_acc)yr[k]) * s);
    }
    return DCL_OK;
}

/* number of counted rows, or -1 (error set) for a target outside [0, K) */
static int64_t FN(nn_ce_count)(const char *op, int64_t M, int K, const int *t) {
    int64_t cnt = 0;
    for (int64_t m = 0; m < M; m++) {
        if (t[m] == DCL_IGNORE_INDEX) continue;
        if (t[m] < 0 || t[m] >= K) {
            dcl_fail(DCL_ERR_ARG, "%s: target %d of row %lld is outside [0, %d)", op, t[m], (long long)m, K);
            return -1;
        }
        cnt++;
    }
    return cnt;
}

dcl_status FN(dcl_cross_entropy_fwd)(int64_t M, int K, T *loss, const T *logits, const int *targets) {
    const char *op = "cross_entropy_fwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, loss); NN_NEED(op, logits); NN_NEED(op, targets);
    const int64_t cnt = FN(nn_ce_count)(op, M, K, targets);
    if (cnt < 0) return DCL_ERR_ARG;
    dcl_acc total = 0;
    for (int64_t m = 0; m < M; m++) {
        if (targets[m] == DCL_IGNORE_INDEX) continue;
        const T *xr = logits + m * K;
        dcl_acc mx, s;
        FN(nn_row_lse)(K, xr, &mx, &s);
        total += mx + log(s) - (dcl_acc)xr[targets[m]];
    }
    *loss = (T)(cnt ? total / (dcl_acc)cnt : NAN);
    return DCL_OK;
}

/* dlogits = dloss / count * (softmax(x) - onehot(t)); ignored rows get 0. */
dcl_status FN(dcl_cross_entropy_bwd)(int64_t M, int K, T *dlogits, T dloss, const T *logits,
                                     const int *targets) {
    const char *op = "cross_entropy_bwd";
    NN_POS(op, M); NN_POS(op, K); NN_NEED(op, dlogits); NN_NEED(op, logits); NN_NEED(op, targets);
    const int64_t cnt = FN(nn_ce_count)(op, M, K, targets);
    if (cnt < 0) return DCL_ERR_ARG;
    const dcl_acc sc = cnt ? (dcl_acc)dloss / (dcl_acc)cnt : 0;
    for (int64_t m = 0; m < M; m++) {
        const T *xr = logits + m * K;
        T *d = dlogits + m * K;
        if (targets[m] == DCL_IGNORE_INDEX) {
            for (int k = 0; k < K; k++) d[k] = 0;
            continue;
        }
        dcl_acc mx, s;
        FN(nn_row_lse)(K, xr, &mx, &s);
        for (int k = 0; k < K; k++)
            d[k] = (T)(sc * (exp((dcl_acc)xr[k] - mx) / s - (k == targets[m] ? 1.0 : 0.0)));
    }
    return DCL_OK;
}

dcl_status FN(dcl_bce_logits_fwd)(int64_t M, T *loss, const T *logits, const T *targets) {
    const char *op = "bce_logits_fwd";
    NN_POS(op, M); NN_NEED(op, loss); NN_NEED(op, logits); NN_NEED(op, targets);
    dcl_acc total = 0;
    for (int64_t m = 0; m < M; m++) {
        const dcl_acc x = logits[m], t = targets[m];
        const dcl_acc mv = x < 0 ? -x : 0; /* max(-x, 0) */
        total += (1 - t) * x + mv + log(exp(-mv) + exp(-x - mv));
    }
    *loss = (T)(total / (dcl_acc)M);
    return DCL_OK;
}

dcl_status FN(dcl_bce_logits_bwd)(int64_t M, T *dlogits, T dloss, const T *logits, const T *targets) {
    const char *op = "bce_logits_bwd";
    NN_POS(op, M); NN_NEED(op, dlogits); NN_NEED(op, logits); NN_NEED(op, targets);
    const dcl_acc sc = (dcl_acc)dloss / (dcl_acc)M;
    for (int64_t m = 0; m < M; m++) {
        const dcl_acc x = logits[m];
        const dcl_acc sg = 1.0 / (1.0 + exp(-x));
        dlogits[m] = (T)(sc * (sg - (dcl_acc)targets[m]));
    }
    return DCL_OK;
}

dcl_status FN(dcl_l2norm_fwd)(int64_t M, int D, T *y, const T *x, T eps) {
    const char *op = "l2norm_fwd";
    NN_POS(op, M); NN_POS(op, D); NN_NEED(op, y); NN_NEED(op, x);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "%s: eps must be non-negative (got %g)", op, (double)eps);
    for (int64_t m = 0; m < M; m++) {
        const T *xr = x + m * D;
        T *yr = y + m * D;
        dcl_acc s = 0;
        for (int k = 0; k < D; k++) s += (dcl_acc)xr[k] * xr[k];
        dcl_acc nrm = sqrt(s);
        if (nrm < (dcl_acc)eps) nrm = eps;
        for (int k = 0; k < D; k++) yr[k] = (T)((dcl_acc)xr[k] / nrm);
    }
    return DCL_OK;
}

/* ||x|| >= eps: dx = (dy - y (y . dy)) / ||x||, y = x / ||x||;  else dx = dy / eps
 * (PyTorch: the clamp passes the gradient where the norm is >= eps). */
dcl_status FN(dcl_l2norm_bwd)(int64_t M, int D, T *dx, const T *dy, const T *x, T eps) {
    const char *op = "l2norm_bwd";
    NN_POS(op, M); NN_POS(op, D); NN_NEED(op, dx); NN_NEED(op, dy); NN_NEED(op, x);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "%s: eps must be non-negative (got %g)", op, (double)eps);
    for (int64_t m = 0; m < M; m++) {
        const T *xr = x + m * D, *g = dy + m * D;
        T *d = dx + m * D;
        dcl_acc s = 0, xg = 0;
        for (int k = 0; k < D; k++) { s += (dcl_acc)xr[k] * xr[k]; xg += (dcl_acc)xr[k] * g[k]; }
        const dcl_acc nrm = sqrt(s);
        if (nrm >= (dcl_acc)eps && nrm > 0) {
            const dcl_acc c = xg / (nrm * nrm * nrm);
            for (int k = 0; k < D; k++) d[k] = (T)((dcl_acc)g[k] / nrm - (dcl_acc)xr[k] * c);
        } else {
            for (int k = 0; k < D; k++) d[k] = (T)((dcl_acc)g[k] / (dcl_acc)eps);
        }
    }
    return DCL_OK;
}
