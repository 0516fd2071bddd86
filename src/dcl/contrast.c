/* DCL losses, queues and prototypes (docs/DCL.md). */
#include "dcl/contrast.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- queues and prototypes ---------------- */

dcl_status dcl_queue_init(dcl_queue *q, int cap, int dim) {
    memset(q, 0, sizeof *q);
    if (cap <= 0 || dim <= 0) return dcl_fail(DCL_ERR_ARG, "queue: capacity %d and dimension %d must be positive", cap, dim);
    q->data = dcl_calloc((size_t)cap * dim * sizeof(float));
    if (!q->data) return dcl_fail(DCL_ERR_NOMEM, "queue of %d x %d", cap, dim);
    q->cap = cap;
    q->dim = dim;
    return DCL_OK;
}

void dcl_queue_free(dcl_queue *q) {
    dcl_free(q->data);
    memset(q, 0, sizeof *q);
}

void dcl_queue_push(dcl_queue *q, const float *v) {
    memcpy(q->data + (size_t)q->ptr * q->dim, v, q->dim * sizeof(float));
    q->ptr = (q->ptr + 1) % q->cap;
    if (q->count < q->cap) q->count++;
}

dcl_status dcl_protos_init(dcl_protos *p, int dim) {
    memset(p, 0, sizeof *p);
    p->real = calloc(dim, sizeof(float));
    p->fake = calloc(dim, sizeof(float));
    if (!p->real || !p->fake) { dcl_protos_free(p); return dcl_fail(DCL_ERR_NOMEM, "prototypes"); }
    p->dim = dim;
    return DCL_OK;
}

void dcl_protos_free(dcl_protos *p) {
    free(p->real);
    free(p->fake);
    memset(p, 0, sizeof *p);
}

int dcl_hard_mode_from_name(const char *s, dcl_hard_mode *out) {
    if (!strcmp(s, "threshold")) *out = DCL_HARD_THRESHOLD;
    else if (!strcmp(s, "topk")) *out = DCL_HARD_TOPK;
    else if (!strcmp(s, "none")) *out = DCL_HARD_NONE;
    else return -1;
    return 0;
}

static double cosine(const float *k, const float *p, int d) {
    double dot = 0, nk = 0, np = 0;
    for (int i = 0; i < d; i++) { dot += (double)k[i] * p[i]; nk += (double)k[i] * k[i]; np += (double)p[i] * p[i]; }
    double den = sqrt(nk) * sqrt(np);
    return den > 0 ? dot / den : 0.0;
}

dcl_status dcl_queue_update(dcl_queue *mr, dcl_queue *mf, dcl_protos *p, const float *k, const int *y,
                            int B, float alpha, float theta, dcl_hard_mode mode, int topk, uint8_t *enqueued) {
    int D = p->dim;
    if (mr->dim != D || mf->dim != D) return dcl_fail(DCL_ERR_SHAPE, "queue dimension %d/%d vs prototype %d", mr->dim, mf->dim, D);
    /* 1. prototypes: one EMA step per class with the batch mean */
    for (int c = 0; c < 2; c++) {
        double *mean = calloc(D, sizeof(double));
        if (!mean) return dcl_fail(DCL_ERR_NOMEM, "prototypes");
        int n = 0;
        for (int b = 0; b < B; b++)
            if ((y[b] != 0) == c) { n++; for (int i = 0; i < D; i++) mean[i] += k[(size_t)b * D + i]; }
        if (n) {
            float *P = c ? p->fake : p->real;
            int *set = c ? &p->fake_set : &p->real_set;
            for (int i = 0; i < D; i++) {
                double m = mean[i] / n;
                P[i] = *set ? (float)(alpha * (double)P[i] + (1.0 - alpha) * m) : (float)m;
            }
            *set = 1;
        }
        free(mean);
    }
    /* 2. selection against the opposite prototype */
    uint8_t *take = calloc(B ? B : 1, 1);
    double *sim = calloc(B ? B : 1, sizeof(double));
    if (!take || !sim) { free(take); free(sim); return dcl_fail(DCL_ERR_NOMEM, "queue update"); }
    for (int b = 0; b < B; b++) {
        int fake = y[b] != 0;
        const float *opp = fake ? p->real : p->fake;
        int opp_set = fake ? p->real_set : p->fake_set;
        sim[b] = opp_set ? cosine(k + (size_t)b * D, opp, D) : 0.0;
        if (mode == DCL_HARD_NONE || !opp_set) take[b] = 1;
        else if (mode == DCL_HARD_THRESHOLD) take[b] = sim[b] > theta;
    }
    if (mode == DCL_HARD_TOPK) {
        for (int c = 0; c < 2; c++) {
            int opp_set = c ? p->real_set : p->fake_set;
            if (!opp_set) continue; /* already all taken */
            for (int t = 0; t < topk; t++) {
                int best = -1;
                for (int b = 0; b < B; b++)
                    if ((y[b] != 0) == c && !take[b] && (best < 0 || sim[b] > sim[best])) best = b;
                if (best < 0) break;
                take[best] = 1;
            }
        }
    }
    /* 3. FIFO, in batch order */
    for (int b = 0; b < B; b++) {
        if (take[b]) dcl_queue_push(y[b] ? mf : mr, k + (size_t)b * D);
        if (enqueued) enqueued[b] = take[b];
    }
    free(take);
    free(sim);
    return DCL_OK;
}

/* ---------------- normalisation ---------------- */

void dcl_normalize_rows(float *y, const float *x, int B, int D) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)x[(size_t)b * D + i] * x[(size_t)b * D + i];
        double n = sqrt(s);
        if (n < 1e-12) n = 1e-12;
        for (int i = 0; i < D; i++) y[(size_t)b * D + i] = (float)(x[(size_t)b * D + i] / n);
    }
}

void dcl_normalize_rows_bwd(float *dx, const float *dy, const float *x, int B, int D) {
    for (int b = 0; b < B; b++) {
        const float *xr = x + (size_t)b * D, *gr = dy + (size_t)b * D;
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)xr[i] * xr[i];
        double n = sqrt(s);
        if (n < 1e-12) {
            /* below eps the op is x / eps: a plain scaling */
            for (int i = 0; i < D; i++) dx[(size_t)b * D + i] = (float)(gr[i] / 1e-12);
            continue;
        }
        double dot = 0;
        for (int i = 0; i < D; i++) dot += (double)xr[i] * gr[i];
        for (int i = 0; i < D; i++)
            dx[(size_t)b * D + i] = (float)((gr[i] - xr[i] * dot / s) / n);
    }
}

/* ---------------- inter-instance (eq. 3) ---------------- */

dcl_status dcl_inter_loss(double *loss, float *dq, const float *q, const float *k, const int *y,
                          int B, int D, const dcl_queue *mr, const dcl_queue *mf, float tau, float scale) {
    if (mr->dim != D || mf->dim != D) return dcl_fail(DCL_ERR_SHAPE, "inter loss: queue dimension %d/%d, embedding %d", mr->dim, mf->dim, D);
    int qmax = mr->count > mf->count ? mr->count : mf->count;
    float *s = malloc(sizeof(float) * (qmax + 1));
    double *pw = malloc(sizeof(double) * (qmax + 1));
    if (!s || !pw) { free(s); free(pw); return dcl_fail(DCL_ERR_NOMEM, "inter loss"); }
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *qb = q + (size_t)b * D, *kb = k + (size_t)b * D;
        const dcl_queue *neg = y[b] ? mr : mf;
        int n = neg->count;
        double s0 = 0;
        for (int i = 0; i < D; i++) s0 += (double)qb[i] * kb[i];
        if (n) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, D, 1.0f, neg->data, D, qb, 1, 0.0f, s + 1, 1);
        double m = s0 / tau;
        for (int j = 1; j <= n; j++) if (s[j] / tau > m) m = s[j] / tau;
        double z = exp(s0 / tau - m);
        pw[0] = z;
        for (int j = 1; j <= n; j++) { pw[j] = exp((double)s[j] / tau - m); z += pw[j]; }
        total += log(z) + m - s0 / tau;
        if (dq) {
            /* d/dq = (1/tau) [ (p0 - 1) k + sum_j p_j n_j ] * scale / B */
            double c = scale / (tau * (double)B);
            float *g = dq + (size_t)b * D;
            for (int i = 0; i < D; i++) g[i] = (float)(c * (pw[0] / z - 1.0) * kb[i]);
            for (int j = 1; j <= n; j++) {
                float cj = (float)(c * pw[j] / z);
                if (cj != 0.0f) cblas_saxpy(D, cj, neg->data + (size_t)(j - 1) * D, 1, g, 1);
            }
        }
    }
    *loss = B ? total / B : 0.0;
    free(s);
    free(pw);
    return DCL_OK;
}

/* ---------------- intra-instance (eqs. 7-9) ---------------- */

dcl_status dcl_intra_loss(double *loss, double *lr_out, double *lf_out, float *dF, const float *F, const int *y,
                          const uint8_t *cell, int B, int L, int C, float tau, int reduce_sum, float scale) {
    size_t LC = (size_t)L * C, LL = (size_t)L * L;
    float *U = malloc(LC * sizeof(float)), *S = malloc(LL * sizeof(float));
    float *G = malloc(LL * sizeof(float)), *dU = malloc(LC * sizeof(float));
    if (!U || !S || !G || !dU) { free(U); free(S); free(G); free(dU); return dcl_fail(DCL_ERR_NOMEM, "intra loss"); }
    double sum_r = 0, sum_f = 0;
    double red = reduce_sum ? 1.0 : 1.0 / B;
    for (int b = 0; b < B; b++) {
        const float *Fb = F + (size_t)b * LC;
        const uint8_t *cb = cell + (size_t)b * L;
        dcl_normalize_rows(U, Fb, L, C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, C, 1.0f, U, C, U, C, 0.0f, S, L);
        memset(G, 0, LL * sizeof(float));
        int active = 0;
        if (!y[b]) {
            /* L_r = -(LSE(S/tau) - 2 log L - 1/tau) */
            double m = -INFINITY, z = 0;
            for (size_t i = 0; i < LL; i++) if (S[i] / tau > m) m = S[i] / tau;
            for (size_t i = 0; i < LL; i++) z += exp(S[i] / tau - m);
            double lse = log(z) + m;
            sum_r += -(lse - 2.0 * log((double)L) - 1.0 / tau);
            for (size_t i = 0; i < LL; i++) G[i] = (float)(-exp(S[i] / tau - m) / z / tau);
            active = 1;
        } else {
            int nr = 0, nf = 0;
            for (int i = 0; i < L; i++) { if (cb[i]) nf++; else nr++; }
            if (nr && nf) {
                double m = -INFINITY;
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < L; j++)
                        if (!cb[j] && S[(size_t)i * L + j] / tau > m) m = S[(size_t)i * L + j] / tau;
                double A = 0, Bs = 0;
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < L; j++) {
                        if (cb[j]) continue; /* j must be a real location */
                        double w = exp(S[(size_t)i * L + j] / tau - m);
                        if (cb[i]) Bs += w; else A += w;
                    }
                sum_f += log(A + Bs) - log(A);
                double ca = 1.0 / (A + Bs) - 1.0 / A, cbf = 1.0 / (A + Bs);
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < L; j++) {
                        if (cb[j]) continue;
                        double w = exp(S[(size_t)i * L + j] / tau - m) / tau;
                        G[(size_t)i * L + j] = (float)(w * (cb[i] ? cbf : ca));
                    }
                active = 1;
            }
        }
        if (!dF) continue;
        float *dFb = dF + (size_t)b * LC;
        if (!active) { memset(dFb, 0, LC * sizeof(float)); continue; }
        /* dU = (G + G^T) U, scaled; then through the normalisation */
        float sc = (float)(scale * red);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, C, L, sc, G, L, U, C, 0.0f, dU, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, C, L, sc, G, L, U, C, 1.0f, dU, C);
        dcl_normalize_rows_bwd(dFb, dU, Fb, L, C);
    }
    if (lr_out) *lr_out = sum_r * red;
    if (lf_out) *lf_out = sum_f * red;
    *loss = (sum_r + sum_f) * red;
    free(U); free(S); free(G); free(dU);
    return DCL_OK;
}

void dcl_cell_masks(uint8_t *cell, const float *mask, int B, int H, int W, int Hc, int Wc,
                    float pix_thr, float cell_thr) {
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * H * W;
        for (int i = 0; i < Hc; i++) {
            int y0 = (int)((long)i * H / Hc), y1 = (int)(((long)(i + 1) * H + Hc - 1) / Hc);
            for (int j = 0; j < Wc; j++) {
                int x0 = (int)((long)j * W / Wc), x1 = (int)(((long)(j + 1) * W + Wc - 1) / Wc);
                long n = 0, on = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) { n++; on += m[(size_t)yy * W + xx] > pix_thr; }
                cell[(size_t)b * Hc * Wc + (size_t)i * Wc + j] = n && (double)on / n > cell_thr;
            }
        }
    }
}
