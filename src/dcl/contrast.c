/* DCL losses, queues and prototypes (docs/DCL.md). */
#include "dcl/contrast.h"
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
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
        const double inv = 1.0 / n;   /* in double: the float result is that of x / n */
        for (int i = 0; i < D; i++) y[(size_t)b * D + i] = (float)(x[(size_t)b * D + i] * inv);
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
        const double c = dot / s, inv = 1.0 / n;
        for (int i = 0; i < D; i++)
            dx[(size_t)b * D + i] = (float)((gr[i] - xr[i] * c) * inv);
    }
}

/* ---------------- inter-instance (eq. 3) ---------------- */

/* Row-major single-precision product C = alpha op(A) op(B) + beta C through
 * oneDNN's sgemm on the calling thread alone (its OpenMP thread count set
 * to 1 around the call; the setting belongs to this thread): the losses
 * parallelise over samples and blocks themselves, and a product computed
 * on one thread has the same arithmetic whatever the number of threads. */
static void mm(char ta, char tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc) {
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    omp_set_num_threads(nt);
}

/* blocks of the inter loss's products: queue entries per score block, and
 * rows x embedding columns per gradient block */
#define IL_COLS 2048
#define IL_ROWS 8
#define IL_DCOLS 32

dcl_status dcl_inter_loss(double *loss, float *dq, const float *q, const float *k, const int *y,
                          int B, int D, const dcl_queue *mr, const dcl_queue *mf, float tau, float scale) {
    if (mr->dim != D || mf->dim != D) return dcl_fail(DCL_ERR_SHAPE, "inter loss: queue dimension %d/%d, embedding %d", mr->dim, mf->dim, D);
    if (B <= 0) { *loss = 0; return DCL_OK; }
    /* The samples of one class share their negatives (the other class's
     * queue): their scores against it are one product Q N^T, their gradients
     * one product P N (P: softmax weights), each reading the queue once. */
    int qmax = mr->count > mf->count ? mr->count : mf->count;
    double *lb = malloc(sizeof(double) * B);
    int *idx = malloc(sizeof(int) * B);
    float *Qg = malloc(sizeof(float) * (size_t)B * D), *Dg = malloc(sizeof(float) * (size_t)B * D);
    float *S = malloc(sizeof(float) * (size_t)B * (qmax > 0 ? qmax : 1));
    if (!lb || !idx || !Qg || !Dg || !S) {
        free(lb); free(idx); free(Qg); free(Dg); free(S);
        return dcl_fail(DCL_ERR_NOMEM, "inter loss");
    }
    const double c = scale / (tau * (double)B);   /* d/dq = (1/tau) [ (p0 - 1) k + sum_j p_j n_j ] * scale / B */
    for (int grp = 0; grp < 2; grp++) {
        const dcl_queue *neg = grp ? mr : mf;   /* reals (grp 0) are pushed away from fakes, fakes from reals */
        int nb = 0;
        for (int b = 0; b < B; b++)
            if ((y[b] != 0) == grp) idx[nb++] = b;
        if (!nb) continue;
        const int n = neg->count;
        for (int i = 0; i < nb; i++) memcpy(Qg + (size_t)i * D, q + (size_t)idx[i] * D, D * sizeof(float));
        /* the products in fixed blocks, each on one thread: the same
         * arithmetic whatever the number of threads */
        const int nj = (n + IL_COLS - 1) / IL_COLS;
        #pragma omp parallel for schedule(static) if (nj > 1)
        for (int jb = 0; jb < nj; jb++) {
            const int j0 = jb * IL_COLS, jn = n - j0 < IL_COLS ? n - j0 : IL_COLS;
            mm('N', 'T', nb, jn, D, 1.0f, Qg, D, neg->data + (size_t)j0 * D, D, 0.0f, S + j0, n);
        }
        #pragma omp parallel for schedule(static) if (nb > 1 && n > 1000)
        for (int i = 0; i < nb; i++) {
            const int b = idx[i];
            const float *qb = q + (size_t)b * D, *kb = k + (size_t)b * D;
            float *sr = S + (size_t)i * n;
            double s0 = 0;
            for (int t = 0; t < D; t++) s0 += (double)qb[t] * kb[t];
            double m = s0 / tau;
            for (int j = 0; j < n; j++) if (sr[j] / tau > m) m = sr[j] / tau;
            double z = exp(s0 / tau - m);
            const double p0 = z;
            /* the row of scores becomes exp(s_j / tau - m), then the weights c p_j / z */
            for (int j = 0; j < n; j++) {
                double e = exp((double)sr[j] / tau - m);
                z += e;
                sr[j] = (float)e;
            }
            lb[b] = log(z) + m - s0 / tau;
            if (dq) {
                const double cz = c / z;
                for (int j = 0; j < n; j++) sr[j] = (float)(cz * sr[j]);
                float *g = dq + (size_t)b * D;
                for (int t = 0; t < D; t++) g[t] = (float)(c * (p0 / z - 1.0) * kb[t]);
            }
        }
        if (dq && n) {
            const int ni = (nb + IL_ROWS - 1) / IL_ROWS, nt = (D + IL_DCOLS - 1) / IL_DCOLS;
            #pragma omp parallel for collapse(2) schedule(static) if (ni * nt > 1)
            for (int ib = 0; ib < ni; ib++)
                for (int tb = 0; tb < nt; tb++) {
                    const int i0 = ib * IL_ROWS, in = nb - i0 < IL_ROWS ? nb - i0 : IL_ROWS;
                    const int t0 = tb * IL_DCOLS, tn = D - t0 < IL_DCOLS ? D - t0 : IL_DCOLS;
                    mm('N', 'N', in, tn, n, 1.0f, S + (size_t)i0 * n, n, neg->data + t0, D, 0.0f, Dg + (size_t)i0 * D + t0, D);
                }
            for (int i = 0; i < nb; i++) {
                float *g = dq + (size_t)idx[i] * D;
                const float *dg = Dg + (size_t)i * D;
                for (int t = 0; t < D; t++) g[t] += dg[t];
            }
        }
    }
    double total = 0;
    for (int b = 0; b < B; b++) total += lb[b];
    free(lb); free(idx); free(Qg); free(Dg); free(S);
    *loss = total / B;
    return DCL_OK;
}

/* ---------------- intra-instance (eqs. 7-9) ---------------- */

/* Samples are independent: each thread takes whole samples with its own
 * scratch (allocated once per thread: buffers this large come fresh from
 * mmap, and faulting their pages in per sample cost as much as the
 * products), per-sample losses are summed in sample order afterwards, so
 * the result does not depend on the number of threads. */
dcl_status dcl_intra_loss(double *loss, double *lr_out, double *lf_out, float *dF, const float *F, const int *y,
                          const uint8_t *cell, int B, int L, int C, float tau, int reduce_sum, float scale) {
    size_t LC = (size_t)L * C, LL = (size_t)L * L;
    double *lr = calloc(B > 0 ? B : 1, sizeof(double)), *lf = calloc(B > 0 ? B : 1, sizeof(double));
    int fail = 0;
    if (!lr || !lf) { free(lr); free(lf); return dcl_fail(DCL_ERR_NOMEM, "intra loss"); }
    double red = reduce_sum ? 1.0 : 1.0 / B;
    #pragma omp parallel if (B > 1)
    {
    float *U = malloc(LC * sizeof(float)), *S = malloc(LL * sizeof(float));
    float *G = malloc(LL * sizeof(float)), *dU = malloc(LC * sizeof(float));
    const int ok = U && S && G && dU;
    if (!ok) {
        #pragma omp atomic write
        fail = 1;
    }
    #pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        if (!ok) continue;
        const float *Fb = F + (size_t)b * LC;
        const uint8_t *cb = cell + (size_t)b * L;
        dcl_normalize_rows(U, Fb, L, C);
        mm('N', 'T', L, L, C, 1.0f, U, C, U, C, 0.0f, S, L);
        memset(G, 0, LL * sizeof(float));
        int active = 0;
        if (!y[b]) {
            /* L_r = -(LSE(S/tau) - 2 log L - 1/tau) */
            double m = -INFINITY, z = 0;
            for (size_t i = 0; i < LL; i++) if (S[i] / tau > m) m = S[i] / tau;
            for (size_t i = 0; i < LL; i++) z += exp(S[i] / tau - m);
            double lse = log(z) + m;
            lr[b] = -(lse - 2.0 * log((double)L) - 1.0 / tau);
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
                lf[b] = log(A + Bs) - log(A);
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
        if (dF) {
            float *dFb = dF + (size_t)b * LC;
            if (!active) {
                memset(dFb, 0, LC * sizeof(float));
            } else {
                /* dU = scale (G + G^T) U, then through the normalisation */
                float sc = (float)(scale * red);
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < i; j++) {
                        float t = G[(size_t)i * L + j] + G[(size_t)j * L + i];
                        G[(size_t)i * L + j] = G[(size_t)j * L + i] = t;
                    }
                for (int i = 0; i < L; i++) G[(size_t)i * L + i] *= 2;
                mm('N', 'N', L, C, L, sc, G, L, U, C, 0.0f, dU, C);
                dcl_normalize_rows_bwd(dFb, dU, Fb, L, C);
            }
        }
    }
    free(U); free(S); free(G); free(dU);
    }
    if (fail) { free(lr); free(lf); return dcl_fail(DCL_ERR_NOMEM, "intra loss"); }
    double sum_r = 0, sum_f = 0;
    for (int b = 0; b < B; b++) { sum_r += lr[b]; sum_f += lf[b]; }
    free(lr);
    free(lf);
    if (lr_out) *lr_out = sum_r * red;
    if (lf_out) *lf_out = sum_f * red;
    *loss = (sum_r + sum_f) * red;
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
