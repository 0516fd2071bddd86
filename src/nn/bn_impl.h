/* Batch normalisation over M rows of C channels, for scalar type T. */

dcl_status FN(dcl_ref_bn_fwd_train)(int64_t M, int C, T *y, T *mean, T *var, T *invstd,
                                    const T *x, const T *gamma, const T *beta, T eps) {
    const char *op = "bn_fwd_train";
    NN_POS(op, M); NN_POS(op, C);
    NN_NEED(op, y); NN_NEED(op, mean); NN_NEED(op, var); NN_NEED(op, invstd);
    NN_NEED(op, x); NN_NEED(op, gamma); NN_NEED(op, beta);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "%s: eps must be non-negative (got %g)", op, (double)eps);
    dcl_acc *s = dcl_calloc((size_t)2 * C * sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %d channel sums", op, 2 * C);
    dcl_acc *mu = s, *sq = s + C;
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) mu[c] += x[m * C + c];
    for (int c = 0; c < C; c++) mu[c] /= (dcl_acc)M;
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const dcl_acc t = x[m * C + c] - mu[c];
            sq[c] += t * t;
        }
    for (int c = 0; c < C; c++) {
        const dcl_acc v = sq[c] / (dcl_acc)M;
        const dcl_acc is = 1.0 / sqrt(v + (dcl_acc)eps);
        mean[c] = (T)mu[c];
        var[c] = (T)v;
        invstd[c] = (T)is;
        sq[c] = is; /* reuse as invstd in double */
    }
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            y[m * C + c] = (T)((x[m * C + c] - mu[c]) * sq[c] * gamma[c] + beta[c]);
    dcl_free(s);
    return DCL_OK;
}

dcl_status FN(dcl_ref_bn_fwd_infer)(int64_t M, int C, T *y, const T *x, const T *gamma,
                                    const T *beta, const T *rmean, const T *rvar, T eps) {
    const char *op = "bn_fwd_infer";
    NN_POS(op, M); NN_POS(op, C);
    NN_NEED(op, y); NN_NEED(op, x); NN_NEED(op, gamma); NN_NEED(op, beta);
    NN_NEED(op, rmean); NN_NEED(op, rvar);
    if (!(eps >= 0)) return dcl_fail(DCL_ERR_ARG, "%s: eps must be non-negative (got %g)", op, (double)eps);
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const dcl_acc is = 1.0 / sqrt((dcl_acc)rvar[c] + (dcl_acc)eps);
            y[m * C + c] = (T)(((dcl_acc)x[m * C + c] - rmean[c]) * is * gamma[c] + beta[c]);
        }
    return DCL_OK;
}

/* With xh = (x - mean) * invstd:
 *   dbeta  += sum dy,  dgamma += sum dy * xh,
 *   dx = gamma * invstd * (dy - sum(dy)/M - xh * sum(dy * xh)/M). */
dcl_status FN(dcl_ref_bn_bwd)(int64_t M, int C, T *dx, T *dgamma, T *dbeta, const T *dy,
                              const T *x, const T *mean, const T *invstd, const T *gamma) {
    const char *op = "bn_bwd";
    NN_POS(op, M); NN_POS(op, C);
    NN_NEED(op, dx); NN_NEED(op, dgamma); NN_NEED(op, dbeta); NN_NEED(op, dy);
    NN_NEED(op, x); NN_NEED(op, mean); NN_NEED(op, invstd); NN_NEED(op, gamma);
    dcl_acc *s = dcl_calloc((size_t)2 * C * sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate %d channel sums", op, 2 * C);
    dcl_acc *sdy = s, *sdyx = s + C;
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const dcl_acc g = dy[m * C + c];
            sdy[c] += g;
            sdyx[c] += g * (((dcl_acc)x[m * C + c] - mean[c]) * invstd[c]);
        }
    for (int64_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const dcl_acc xh = ((dcl_acc)x[m * C + c] - mean[c]) * invstd[c];
            dx[m * C + c] = (T)((dcl_acc)gamma[c] * invstd[c] *
                                (dy[m * C + c] - sdy[c] / (dcl_acc)M - xh * sdyx[c] / (dcl_acc)M));
        }
    for (int c = 0; c < C; c++) {
        dgamma[c] = (T)(dgamma[c] + sdyx[c]);
        dbeta[c] = (T)(dbeta[c] + sdy[c]);
    }
    dcl_free(s);
    return DCL_OK;
}
