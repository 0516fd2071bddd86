/* The executor's fusions (docs/SPEED.md) and the backend entries behind them.
 *  1. The fused entries of the cpu backend, and of the cuda backend when a
 *     GPU is present, against the reference backend's unfused ops composed
 *     the same way: bn_stats against bn_fwd_train's statistics (also with a
 *     mean far from zero and a small spread); bn_act_fwd against bn -> act
 *     -> mul / gap; the fused backward (bn_act_bwd_reduce + bn_act_bwd_dx,
 *     bn_act_dot) against mul_bcast_bwd + gap_bwd + act_bwd + bn_bwd; every
 *     activation, with and without the squeeze-excitation terms (also
 *     bn_act_se_sums' one-pass sums), channel counts with and without a
 *     vector tail (and, for cuda, counts that divide 32, one channel, more
 *     than 32 channels, one row per sample), sizes below and above the
 *     threading threshold, with sentinels after every output; for the cpu
 *     also with streaming stores forced on, for cuda also with every device
 *     pointer 4 bytes off 16-byte alignment (no vector accesses).  Device
 *     buffers are copies of the host buffers, sentinels included, made at
 *     their first use and read back after the call.  Tolerances, the same
 *     for both backends (float partial sums, double totals): statistics
 *     1e-5 relative (1e-6 absolute); forward values 1e-5; backward values
 *     and sums 1e-4 relative to max(1, rms of the reference).  A failure
 *     names the backend, the entry, the activation and the sizes.
 *  2. Whole networks (a narrow tf_efficientnet_b0 with dropout and
 *     drop-path): evaluation logits with the batch norms folded into the
 *     convolutions against the unfolded plan (cpu and ref backends) and
 *     against the ref backend; a training step (logits, features, every
 *     parameter gradient, running statistics) and a second step after an
 *     Adam update with fused batch norm + activation and squeeze-excitation
 *     against the unfused plan, on the cpu backend and on cuda; the key
 *     encoder's no-gradient plan; a fused-away value is refused by
 *     dcl_net_value_to_host; the fused training plan needs less activation
 *     memory.
 *  3. Synchronised batch norm on the fused path: two nets on the halves of
 *     a batch, run by two threads that exchange statistics, give the whole
 *     batch's logits, averaged gradients and running statistics.
 * With a GPU, informational timings of the cuda entries at
 * EfficientNet-b4 shapes follow section 1 (DCL_TEST_NO_TIMING=1 skips
 * them).  Without a GPU (or without CUDA in the build) the cuda parts print
 * "cuda: skipped (no GPU): <reason>".
 */
#include "check.h"
#include "dcl/model.h"
#include "dcl/nn.h"
#include "dcl/optim.h"
#include "backend/backend.h"
#include <pthread.h>
#include <time.h>

static dcl_rng RNG;
static dcl_backend *CPU, *REF;
#define SENT 16
static const float SENTV = -9876.5f;

/* The backend under test in section 1 and its name for messages. */
static dcl_backend *T;
static const char *TN = "cpu";

/* Host buffers made by rnd() / outbuf() (n floats + SENT sentinels) and,
 * for a device backend, their device copies: made and filled from the host
 * buffer at the first D(p), read back by GET(p). */
typedef struct mirror { float *h, *d; size_t n; } mirror;
#define NMIRROR 256
static mirror MIR[NMIRROR];
static int NMIR;
static int DEV_OFF;   /* floats added to every device pointer (1: not 16-byte aligned) */

static void mir_drop(int i) {
    if (MIR[i].d && T && T->mem_free) T->mem_free(T, MIR[i].d);
    MIR[i] = MIR[--NMIR];
}
static void reg(float *p, size_t n) {
    if (!T || T->is_host) return;   /* host backends use the host buffers */
    for (int i = 0; i < NMIR; i++)
        if (MIR[i].h == p) { mir_drop(i); break; }   /* an address malloc gave out again */
    if (NMIR == NMIRROR) { fprintf(stderr, "test_fused: too many buffers\n"); exit(2); }
    MIR[NMIR++] = (mirror){p, NULL, n};
}
/* frees every device copy (the host buffers stay) */
static void mir_reset(void) {
    while (NMIR > 0) mir_drop(NMIR - 1);
}
static mirror *mir_find(const float *p) {
    for (int i = 0; i < NMIR; i++)
        if (MIR[i].h == p) return &MIR[i];
    fprintf(stderr, "test_fused: buffer %p was not made by rnd/outbuf\n", (const void *)p);
    exit(2);
}
/* the pointer the backend under test gets for host buffer p (NULL stays NULL) */
static float *D(float *p) {
    if (!p || T->is_host) return p;
    mirror *m = mir_find(p);
    if (!m->d) {
        size_t bytes = sizeof(float) * (m->n + SENT + DEV_OFF);
        m->d = T->mem_alloc(T, bytes);
        if (!m->d) { fprintf(stderr, "test_fused: %s mem_alloc: %s\n", TN, dcl_last_error()); exit(2); }
        if (T->to_device(T, m->d + DEV_OFF, m->h, sizeof(float) * (m->n + SENT)) != DCL_OK) {
            fprintf(stderr, "test_fused: %s to_device: %s\n", TN, dcl_last_error());
            exit(2);
        }
    }
    return m->d + DEV_OFF;
}
/* the backend's result into host buffer p, sentinels included; what: the
 * call, for the message when the device reports an error */
static void GET(float *p, const char *what) {
    if (T->is_host) return;
    mirror *m = mir_find(p);
    if (!m->d) return;
    if (T->sync) {
        dcl_status s = T->sync(T);
        CHECK(s == DCL_OK, "%s: the device reported an error after the calls: %s", what, dcl_last_error());
    }
    if (T->to_host(T, m->h, m->d + DEV_OFF, sizeof(float) * (m->n + SENT)) != DCL_OK) {
        fprintf(stderr, "test_fused: %s: %s to_host: %s\n", what, TN, dcl_last_error());
        exit(2);
    }
}

static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (n + SENT));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)dcl_rng_uniform(&RNG);
    for (int i = 0; i < SENT; i++) p[n + i] = SENTV;
    reg(p, n);
    return p;
}
/* output buffer: garbage inside, sentinels after */
static float *outbuf(size_t n) {
    float *p = malloc(sizeof(float) * (n + SENT));
    for (size_t i = 0; i < n; i++) p[i] = 12345.0f;
    for (int i = 0; i < SENT; i++) p[n + i] = SENTV;
    reg(p, n);
    return p;
}
static int sent_ok(const float *p, size_t n) {
    for (int i = 0; i < SENT; i++) if (p[n + i] != SENTV) return 0;
    return 1;
}
static double rms(const float *p, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return n ? sqrt(s / n) : 0;
}
#define CLOSE_RMS(what, got, want, n, rtol) \
    CHECK_CLOSE(what, got, want, (long)(n), (rtol) * fmax(1.0, rms(want, n)), rtol)

/* ------------------------------------------------------ 1. the entries -- */

static const char *ACTN[] = {"none", "relu", "silu", "sigmoid"};

static void check_ops(int N, int HW, int C, dcl_act act, int se) {
    char what[200];
    int64_t M = (int64_t)N * HW;
    size_t nx = (size_t)M * C, nc = (size_t)N * C;
    float *x = rnd(nx, -2.0f, 3.0f), *gamma = rnd(C, 0.5f, 1.5f), *beta = rnd(C, -0.5f, 0.5f);
    float *s = rnd(nc, 0.1f, 1.0f), *dy = rnd(nx, -1.0f, 1.0f), *dg = rnd(nc, -1.0f, 1.0f);
    const float eps = 1e-3f;
    /* reference: bn_fwd_train -> act -> (mul by s, gap) */
    float *ry = outbuf(nx), *rmean = outbuf(C), *rvar = outbuf(C), *ris = outbuf(C), *ra = outbuf(nx);
    float *rm = outbuf(nx), *rg = outbuf(nc);
    CHECK_OK(REF->bn_fwd_train(REF, M, C, ry, rmean, rvar, ris, x, gamma, beta, eps));
    CHECK_OK(REF->act_fwd(REF, act, nx, ra, ry));
    CHECK_OK(REF->mul_bcast_fwd(REF, N, HW, C, rm, ra, s));
    CHECK_OK(REF->gap_fwd(REF, N, HW, C, rg, ra));
    /* statistics */
    float *mean = outbuf(C), *var = outbuf(C), *is = outbuf(C);
    snprintf(what, sizeof what, "%s bn_stats N=%d HW=%d C=%d", TN, N, HW, C);
    CHECK_OK(T->bn_stats(T, M, C, D(mean), D(var), D(is), D(x), eps));
    GET(mean, what); GET(var, what); GET(is, what);
    CHECK_CLOSE(what, mean, rmean, C, 1e-6, 1e-5);
    CHECK_CLOSE(what, var, rvar, C, 1e-6, 1e-5);
    CHECK_CLOSE(what, is, ris, C, 1e-6, 1e-5);
    CHECK(sent_ok(mean, C) && sent_ok(var, C) && sent_ok(is, C), "%s: write past the end", what);
    /* forward with the reference statistics */
    float *y = outbuf(nx), *gm = outbuf(nc);
    snprintf(what, sizeof what, "%s bn_act_fwd %s%s N=%d HW=%d C=%d", TN, ACTN[act], se ? "+se" : "", N, HW, C);
    CHECK_OK(T->bn_act_fwd(T, N, HW, C, act, D(y), se ? D(gm) : NULL, D(x), D(rmean), D(ris), D(gamma), D(beta),
                           se ? D(s) : NULL));
    GET(y, what); GET(gm, what);
    CHECK_CLOSE(what, y, se ? rm : ra, nx, 1e-5, 1e-5);
    if (se) CHECK_CLOSE(what, gm, rg, nc, 1e-5, 1e-5);
    CHECK(sent_ok(y, nx) && sent_ok(gm, nc), "%s: write past the end", what);
    if (se) {  /* pooled means alone */
        float *gm2 = outbuf(nc);
        snprintf(what, sizeof what, "%s bn_act_fwd %s pooled means only (y NULL) N=%d HW=%d C=%d", TN, ACTN[act], N, HW, C);
        CHECK_OK(T->bn_act_fwd(T, N, HW, C, act, NULL, D(gm2), D(x), D(rmean), D(ris), D(gamma), D(beta), NULL));
        GET(gm2, what);
        CHECK_CLOSE(what, gm2, rg, nc, 1e-5, 1e-5);
        CHECK(sent_ok(gm2, nc), "%s: write past the end", what);
        free(gm2);
    }
    {   /* without normalisation: act(x) (* s), pooled act(x); with and without the pooled means */
        float *ax = outbuf(nx), *axs = outbuf(nx), *gx = outbuf(nc), *y2 = outbuf(nx), *g2 = outbuf(nc), *y3 = outbuf(nx);
        CHECK_OK(REF->act_fwd(REF, act, nx, ax, x));
        CHECK_OK(REF->mul_bcast_fwd(REF, N, HW, C, axs, ax, s));
        CHECK_OK(REF->gap_fwd(REF, N, HW, C, gx, ax));
        snprintf(what, sizeof what, "%s bn_act_fwd %s%s without normalisation N=%d HW=%d C=%d", TN, ACTN[act], se ? "+se" : "",
                 N, HW, C);
        CHECK_OK(T->bn_act_fwd(T, N, HW, C, act, D(y2), D(g2), D(x), NULL, NULL, NULL, NULL, se ? D(s) : NULL));
        CHECK_OK(T->bn_act_fwd(T, N, HW, C, act, D(y3), NULL, D(x), NULL, NULL, NULL, NULL, se ? D(s) : NULL));
        GET(y2, what); GET(g2, what); GET(y3, what);
        CHECK_CLOSE(what, y2, se ? axs : ax, nx, 1e-5, 1e-5);
        CHECK_CLOSE(what, g2, gx, nc, 1e-5, 1e-5);
        CHECK_CLOSE(what, y3, se ? axs : ax, nx, 1e-5, 1e-5);
        CHECK(sent_ok(y2, nx) && sent_ok(g2, nc) && sent_ok(y3, nx), "%s: write past the end", what);
        free(ax); free(axs); free(gx); free(y2); free(g2); free(y3);
    }
    /* backward.  reference: dm = dy;  da = dm * s (+ dg / HW);  ds = sum dm * a;
     * dz = act_bwd(da);  bn_bwd(dz) */
    float *rda = outbuf(nx), *rds = outbuf(nc), *rdz = outbuf(nx), *rdx = outbuf(nx), *tmp = outbuf(nx);
    float *rdgam = rnd(C, -1, 1), *rdbet = rnd(C, -1, 1);
    float *dgam = outbuf(C), *dbet = outbuf(C);
    memcpy(dgam, rdgam, C * sizeof(float));
    memcpy(dbet, rdbet, C * sizeof(float));
    if (se) {
        CHECK_OK(REF->mul_bcast_bwd(REF, N, HW, C, rda, rds, dy, ra, s));
        CHECK_OK(REF->gap_bwd(REF, N, HW, C, tmp, dg));
        CHECK_OK(REF->add(REF, nx, rda, rda, tmp));
    } else {
        memcpy(rda, dy, nx * sizeof(float));
    }
    CHECK_OK(REF->act_bwd(REF, act, nx, rdz, rda, ry, ra));
    CHECK_OK(REF->bn_bwd(REF, M, C, rdx, rdgam, rdbet, rdz, x, rmean, ris, gamma));
    float *sdy = outbuf(C), *sdyx = outbuf(C), *dx = outbuf(nx), *ds = outbuf(nc), *dx2 = outbuf(nx);
    float *d3 = outbuf(nx), *dx3 = outbuf(nx), *sdy3 = outbuf(C), *sdyx3 = outbuf(C);
    snprintf(what, sizeof what, "%s bn_act_bwd_reduce + bn_act_bwd_dx %s%s N=%d HW=%d C=%d", TN, ACTN[act],
             se ? "+se" : "", N, HW, C);
    /* d left in dx by the reduce pass, finished in place ... */
    CHECK_OK(T->bn_act_bwd_reduce(T, N, HW, C, act, D(sdy), D(sdyx), D(dgam), D(dbet), D(dx), D(dy), D(x), D(rmean),
                                  D(ris), D(gamma), D(beta), se ? D(s) : NULL, se ? D(dg) : NULL));
    CHECK_OK(T->bn_act_bwd_dx(T, N, HW, C, act, D(dx), D(dx), NULL, D(x), D(rmean), D(ris), D(gamma), NULL, NULL, NULL,
                              D(sdy), D(sdyx), M));
    /* ... or recomputed from dy ... */
    CHECK_OK(T->bn_act_bwd_dx(T, N, HW, C, act, D(dx2), NULL, D(dy), D(x), D(rmean), D(ris), D(gamma), D(beta),
                              se ? D(s) : NULL, se ? D(dg) : NULL, D(sdy), D(sdyx), M));
    /* ... or d in its own buffer (the reduce without parameter gradients) */
    CHECK_OK(T->bn_act_bwd_reduce(T, N, HW, C, act, D(sdy3), D(sdyx3), NULL, NULL, D(d3), D(dy), D(x), D(rmean),
                                  D(ris), D(gamma), D(beta), se ? D(s) : NULL, se ? D(dg) : NULL));
    CHECK_OK(T->bn_act_bwd_dx(T, N, HW, C, act, D(dx3), D(d3), NULL, D(x), D(rmean), D(ris), D(gamma), NULL, NULL,
                              NULL, D(sdy3), D(sdyx3), M));
    GET(sdy, what); GET(sdyx, what); GET(dgam, what); GET(dbet, what); GET(dx, what); GET(dx2, what);
    GET(d3, what); GET(dx3, what); GET(sdy3, what); GET(sdyx3, what);
    char w2[240];
    snprintf(w2, sizeof w2, "%s: dx (d in dx, in place)", what);
    CLOSE_RMS(w2, dx, rdx, nx, 1e-4);
    snprintf(w2, sizeof w2, "%s: dx (d recomputed from dy)", what);
    CLOSE_RMS(w2, dx2, rdx, nx, 1e-4);
    snprintf(w2, sizeof w2, "%s: dx (d in its own buffer)", what);
    CLOSE_RMS(w2, dx3, rdx, nx, 1e-4);
    snprintf(w2, sizeof w2, "%s: d (the activation's gradient)", what);
    CLOSE_RMS(w2, d3, rdz, nx, 1e-4);
    snprintf(w2, sizeof w2, "%s: dgamma (accumulated)", what);
    CLOSE_RMS(w2, dgam, rdgam, C, 1e-4);
    snprintf(w2, sizeof w2, "%s: dbeta (accumulated)", what);
    CLOSE_RMS(w2, dbet, rdbet, C, 1e-4);
    CHECK(sent_ok(dx, nx) && sent_ok(dx2, nx) && sent_ok(dx3, nx) && sent_ok(d3, nx) && sent_ok(sdy, C) &&
          sent_ok(sdyx, C) && sent_ok(dgam, C) && sent_ok(dbet, C) && sent_ok(sdy3, C) && sent_ok(sdyx3, C),
          "%s: write past the end", what);
    /* the sums themselves: sdy = dbeta increment, sdyx * invstd = dgamma increment */
    for (int c = 0; c < C; c++) tmp[c] = rdbet[c] - dbet[c] + sdy[c];
    snprintf(w2, sizeof w2, "%s: sdy", what);
    CLOSE_RMS(w2, sdy, tmp, C, 1e-4);
    for (int c = 0; c < C; c++) tmp[c] = (float)((rdgam[c] - dgam[c] + (double)sdyx[c] * ris[c]) / ris[c]);
    snprintf(w2, sizeof w2, "%s: sdyx", what);
    CLOSE_RMS(w2, sdyx, tmp, C, 1e-4);
    snprintf(w2, sizeof w2, "%s: sums without parameter gradients", what);
    CLOSE_RMS(w2, sdy3, sdy, C, 1e-5);
    CLOSE_RMS(w2, sdyx3, sdyx, C, 1e-5);
    if (se) {
        snprintf(what, sizeof what, "%s bn_act_dot %s N=%d HW=%d C=%d", TN, ACTN[act], N, HW, C);
        CHECK_OK(T->bn_act_dot(T, N, HW, C, act, D(ds), D(dy), D(x), D(rmean), D(ris), D(gamma), D(beta)));
        GET(ds, what);
        CLOSE_RMS(what, ds, rds, nc, 1e-4);
        CHECK(sent_ok(ds, nc), "%s: write past the end", what);
        /* the one-pass sums: ds, and the reduce's sums once s and dgap are applied */
        float *ds2 = outbuf(nc), *t = outbuf(4 * nc), *t2 = outbuf(4 * nc), *s2 = malloc(C * sizeof(float)),
              *q2 = malloc(C * sizeof(float));
        snprintf(what, sizeof what, "%s bn_act_se_sums %s N=%d HW=%d C=%d", TN, ACTN[act], N, HW, C);
        CHECK_OK(T->bn_act_se_sums(T, N, HW, C, act, D(ds2), D(t), D(dy), D(x), D(rmean), D(ris), D(gamma), D(beta)));
        CHECK_OK(T->bn_act_se_sums(T, N, HW, C, act, NULL, D(t2), D(dy), D(x), D(rmean), D(ris), D(gamma), D(beta)));
        GET(ds2, what); GET(t, what); GET(t2, what);
        for (int c = 0; c < C; c++) {
            double a = 0, q = 0;
            for (int n = 0; n < N; n++) {
                size_t i = (size_t)n * C + c;
                a += s[i] * (double)t[i] + dg[i] / (double)HW * t[nc + i];
                q += s[i] * (double)t[2 * nc + i] + dg[i] / (double)HW * t[3 * nc + i];
            }
            s2[c] = (float)a;
            q2[c] = (float)q;
        }
        snprintf(w2, sizeof w2, "%s: ds", what);
        CLOSE_RMS(w2, ds2, rds, nc, 1e-4);
        snprintf(w2, sizeof w2, "%s: sdy from t[0], t[1]", what);
        CLOSE_RMS(w2, s2, sdy, C, 1e-4);
        snprintf(w2, sizeof w2, "%s: sdyx from t[2], t[3]", what);
        CLOSE_RMS(w2, q2, sdyx, C, 1e-4);
        snprintf(w2, sizeof w2, "%s: t with ds NULL", what);
        CLOSE_RMS(w2, t2, t, 4 * nc, 1e-5);
        CHECK(sent_ok(ds2, nc) && sent_ok(t, 4 * nc) && sent_ok(t2, 4 * nc), "%s: write past the end", what);
        free(ds2); free(t); free(t2); free(s2); free(q2);
    }
    mir_reset();
    float *bufs[] = {x, gamma, beta, s, dy, dg, ry, rmean, rvar, ris, ra, rm, rg, mean, var, is, y, gm, rda, rds,
                     rdz, rdx, tmp, rdgam, rdbet, dgam, dbet, sdy, sdyx, dx, ds, dx2, d3, dx3, sdy3, sdyx3};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

/* bn_stats with a mean far from zero and a small spread: the variance
 * must not be lost to cancellation (against the reference's two-pass
 * double-precision statistics). */
static void check_stats_offset(int64_t M, int C, float offset, float spread) {
    char what[160];
    size_t n = (size_t)M * C;
    float *x = rnd(n, -spread, spread);
    for (size_t i = 0; i < n; i++) x[i] += offset + (float)(i % C) * 0.25f * spread;
    float *g = rnd(C, 1, 1), *b = rnd(C, 0, 0), *ry = outbuf(n), *rmean = outbuf(C), *rvar = outbuf(C), *ris = outbuf(C);
    float *mean = outbuf(C), *var = outbuf(C), *is = outbuf(C);
    CHECK_OK(REF->bn_fwd_train(REF, M, C, ry, rmean, rvar, ris, x, g, b, 1e-5f));
    snprintf(what, sizeof what, "%s bn_stats with mean %g and spread %g, M=%lld C=%d", TN, offset, spread, (long long)M, C);
    CHECK_OK(T->bn_stats(T, M, C, D(mean), D(var), D(is), D(x), 1e-5f));
    GET(mean, what); GET(var, what); GET(is, what);
    CHECK_CLOSE(what, mean, rmean, C, 0, 1e-6);
    CHECK_CLOSE(what, var, rvar, C, 0, 1e-4);
    CHECK_CLOSE(what, is, ris, C, 0, 1e-4);
    CHECK(sent_ok(mean, C) && sent_ok(var, C) && sent_ok(is, C), "%s: write past the end", what);
    mir_reset();
    float *bufs[] = {x, g, b, ry, rmean, rvar, ris, mean, var, is};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

/* Bad arguments are refused with a message, not a crash. */
static void check_refusals(void) {
    float *a = outbuf(64), *b = outbuf(64), *c = outbuf(64);
    float *da = D(a), *db = D(b), *dc = D(c);
    CHECK(T->bn_act_fwd(T, 0, 4, 4, DCL_ACT_RELU, da, NULL, db, NULL, NULL, NULL, NULL, NULL) != DCL_OK,
          "%s bn_act_fwd with N=0 accepted", TN);
    CHECK(T->bn_act_fwd(T, 1, 4, 4, DCL_ACT_RELU, NULL, NULL, db, NULL, NULL, NULL, NULL, NULL) != DCL_OK,
          "%s bn_act_fwd without y and gmean accepted", TN);
    CHECK(T->bn_act_fwd(T, 1, 4, 4, DCL_ACT_RELU, da, NULL, db, dc, NULL, NULL, NULL, NULL) != DCL_OK,
          "%s bn_act_fwd with mean but no invstd accepted", TN);
    CHECK(T->bn_act_fwd(T, 1, 4, 4, (dcl_act)17, da, NULL, db, NULL, NULL, NULL, NULL, NULL) != DCL_OK,
          "%s bn_act_fwd with an unknown activation accepted", TN);
    CHECK(T->bn_stats(T, 0, 4, da, db, dc, da, 1e-5f) != DCL_OK, "%s bn_stats with M=0 accepted", TN);
    CHECK(T->bn_act_bwd_dx(T, 1, 4, 4, DCL_ACT_RELU, da, NULL, NULL, db, dc, dc, dc, dc, NULL, NULL, dc, dc, 4) != DCL_OK,
          "%s bn_act_bwd_dx without d and dy accepted", TN);
    CHECK(T->bn_act_bwd_dx(T, 1, 4, 4, DCL_ACT_RELU, da, da, NULL, db, dc, dc, dc, NULL, NULL, NULL, dc, dc, 0) != DCL_OK,
          "%s bn_act_bwd_dx with Mt=0 accepted", TN);
    CHECK(T->bn_act_bwd_reduce(T, 1, 4, 4, DCL_ACT_RELU, NULL, da, NULL, NULL, NULL, db, db, dc, dc, dc, dc, NULL, NULL) != DCL_OK,
          "%s bn_act_bwd_reduce without sdy accepted", TN);
    CHECK(T->bn_act_dot(T, 1, 4, 4, DCL_ACT_RELU, da, db, db, dc, dc, dc, NULL) != DCL_OK,
          "%s bn_act_dot without beta accepted", TN);
    CHECK(T->bn_act_se_sums(T, 1, 4, 4, DCL_ACT_RELU, da, NULL, db, db, dc, dc, dc, dc) != DCL_OK,
          "%s bn_act_se_sums without t accepted", TN);
    CHECK(strlen(dcl_last_error()) > 0, "%s: no message for a refused call", TN);
    mir_reset();
    free(a); free(b); free(c);
}

/* Section 1 on backend be. */
static void check_entries(dcl_backend *be, const char *name, int extra) {
    T = be;
    TN = name;
    int before = check_failed_;
    CHECK(be->bn_stats && be->bn_act_fwd && be->bn_act_bwd_reduce && be->bn_act_bwd_dx && be->bn_act_dot &&
          be->bn_act_se_sums, "the %s backend fills the fused training entries", name);
    if (!(be->bn_stats && be->bn_act_fwd && be->bn_act_bwd_reduce && be->bn_act_bwd_dx && be->bn_act_dot &&
          be->bn_act_se_sums))
        return;
    int shapes[][3] = {{2, 37, 24}, {3, 1000, 24}, {2, 50, 20}, {1, 7, 3}, {2, 2000, 36}};
    /* folded reductions (C divides 32), one channel, more than 32 channels
     * with and without a multiple of 4, one row per sample, many chunks */
    int more[][3] = {{2, 300, 16}, {3, 129, 8}, {2, 64, 1}, {1, 50, 2}, {4, 49, 160}, {2, 45, 37},
                     {5, 1, 40}, {2, 9000, 12}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int a = 0; a < 4; a++)
            for (int se = 0; se < 2; se++) check_ops(shapes[k][0], shapes[k][1], shapes[k][2], (dcl_act)a, se);
    if (extra)
        for (size_t k = 0; k < sizeof more / sizeof *more; k++)
            for (int a = 0; a < 4; a++)
                for (int se = 0; se < 2; se++) check_ops(more[k][0], more[k][1], more[k][2], (dcl_act)a, se);
    check_stats_offset(20000, 24, 1000.0f, 0.01f);
    check_stats_offset(3001, 13, -300.0f, 0.5f);
    check_stats_offset(4096, 16, 50.0f, 1e-3f);
    check_refusals();
    printf("%s: fused entries %s\n", name, check_failed_ == before ? "match ref" : "MISMATCHES");
}

static void check_conv_fwd_act(void) {
    /* conv_fwd_act against ref conv + ref act, conv_fwd_add against ref conv
     * + ref add: 1x1, depthwise 3x3, 1x1 on a 1x1 map */
    dcl_conv_desc ds[3] = {
        {.n = 2, .ci = 16, .hi = 9, .wi = 7, .co = 24, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .has_bias = 1},
        {.n = 2, .ci = 16, .hi = 9, .wi = 7, .co = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
         .pt = 1, .pb = 1, .pl = 1, .pr = 1, .groups = 16, .has_bias = 1},
        {.n = 3, .ci = 40, .hi = 1, .wi = 1, .co = 10, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .has_bias = 1},
    };
    for (int k = 0; k < 3; k++) {
        dcl_conv_desc d = ds[k];
        CHECK_OK(dcl_conv_desc_finish(&d));
        size_t nx = (size_t)d.n * d.ci * d.hi * d.wi, ny = (size_t)d.n * d.co * d.ho * d.wo;
        size_t nw = (size_t)d.co * (d.ci / d.groups) * d.kh * d.kw;
        float *x = rnd(nx, -1, 1), *w = rnd(nw, -0.5f, 0.5f), *b = rnd(d.co, -0.5f, 0.5f);
        for (int a = 0; a < 4; a++) {
            float *want = outbuf(ny), *got = outbuf(ny);
            CHECK_OK(REF->conv_fwd(REF, &d, want, x, w, b));
            CHECK_OK(REF->act_fwd(REF, (dcl_act)a, ny, want, want));
            CHECK_OK(CPU->conv_fwd_act(CPU, &d, (dcl_act)a, got, x, w, b));
            char what[96];
            snprintf(what, sizeof what, "conv_fwd_act shape %d %s", k, ACTN[a]);
            CLOSE_RMS(what, got, want, ny, 1e-4);
            CHECK(sent_ok(got, ny), "%s: write past the end", what);
            free(want);
            free(got);
        }
        /* conv_fwd_add: y += conv(x) + b */
        float *y0 = rnd(ny, -1, 1), *want = outbuf(ny), *got = outbuf(ny);
        CHECK_OK(REF->conv_fwd(REF, &d, want, x, w, b));
        CHECK_OK(REF->add(REF, ny, want, want, y0));
        memcpy(got, y0, ny * sizeof(float));
        CHECK_OK(CPU->conv_fwd_add(CPU, &d, got, x, w, b));
        char what[96];
        snprintf(what, sizeof what, "conv_fwd_add shape %d", k);
        CLOSE_RMS(what, got, want, ny, 1e-4);
        CHECK(sent_ok(got, ny), "%s: write past the end", what);
        free(y0); free(want); free(got);
        free(x); free(w); free(b);
    }
}

/* ------------------- 1b. pointwise backward fused with the batch norm -- */

static double act_d(int act, double z, double *da) {
    double sg = 1.0 / (1.0 + exp(-z));
    switch (act) {
    case DCL_ACT_RELU: *da = z > 0; return z > 0 ? z : 0;
    case DCL_ACT_SILU: *da = sg * (1 + z * (1 - sg)); return z * sg;
    case DCL_ACT_SIGMOID: *da = sg * (1 - sg); return sg;
    default: *da = 1; return z;
    }
}

/* max |a - b| / max(1e-3, rms(b)) over n */
static double rel_err(const float *a, const double *b, size_t n) {
    double e = 0, q = 0;
    for (size_t i = 0; i < n; i++) { e = fmax(e, fabs(a[i] - b[i])); q += b[i] * b[i]; }
    return e / fmax(1e-3, sqrt(q / (double)(n ? n : 1)));
}

/* se_pw_bwd against the same sums in double: m = act(bn(x)) * s,
 * dm = dy w, dw += dy^T m, ds = sum dm a, t = bn_act_se_sums' table */
static void check_se_pw(dcl_backend *be, int N, int HW, int C, int O, int act) {
    size_t R = (size_t)N * HW, NC = (size_t)N * C;
    float *x = rnd(R * C, -2, 2), *mean = rnd(C, -0.3f, 0.3f), *is = rnd(C, 0.5f, 1.5f), *ga = rnd(C, 0.5f, 1.5f);
    float *be_ = rnd(C, -0.5f, 0.5f), *sv = rnd(NC, 0.1f, 1.0f), *dy = rnd(R * O, -1, 1), *w = rnd((size_t)O * C, -0.3f, 0.3f);
    float *dw = rnd((size_t)O * C, -1, 1), *dm = outbuf(R * C), *ds = outbuf(NC), *t = outbuf(4 * NC);
    double *m = calloc(R * C, sizeof(double)), *ap = calloc(R * C, sizeof(double)), *a = calloc(R * C, sizeof(double));
    double *rdm = calloc(R * C, sizeof(double)), *rdw = calloc((size_t)O * C, sizeof(double));
    double *rds = calloc(NC, sizeof(double)), *rt = calloc(4 * NC, sizeof(double));
    for (size_t i = 0; i < R; i++)
        for (int c = 0; c < C; c++) {
            size_t k = i * C + c, n = i / HW;
            double z = ((double)x[k] - mean[c]) * is[c] * ga[c] + be_[c];
            a[k] = act_d(act, z, &ap[k]);
            m[k] = a[k] * sv[n * C + c];
        }
    for (size_t i = 0; i < R; i++)
        for (int c = 0; c < C; c++) {
            double q = 0;
            for (int o = 0; o < O; o++) q += (double)dy[i * O + o] * w[(size_t)o * C + c];
            rdm[i * C + c] = q;
        }
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            double q = dw[(size_t)o * C + c];
            for (size_t i = 0; i < R; i++) q += (double)dy[i * O + o] * m[i * C + c];
            rdw[(size_t)o * C + c] = q;
        }
    for (size_t i = 0; i < R; i++)
        for (int c = 0; c < C; c++) {
            size_t k = i * C + c, nc = (i / HW) * C + c;
            double g = rdm[k], xc = (double)x[k] - mean[c];
            rds[nc] += g * a[k];
            rt[nc] += g * ap[k];
            rt[NC + nc] += ap[k];
            rt[2 * NC + nc] += g * ap[k] * xc;
            rt[3 * NC + nc] += ap[k] * xc;
        }
    dcl_status st = be->se_pw_bwd(be, N, HW, C, O, (dcl_act)act, dm, dw, ds, t, dy, w, x, mean, is, ga, be_, sv);
    CHECK(st == DCL_OK, "se_pw_bwd N=%d HW=%d C=%d O=%d %s: %s", N, HW, C, O, ACTN[act], dcl_last_error());
    double e1 = rel_err(dm, rdm, R * C), e2 = rel_err(dw, rdw, (size_t)O * C), e3 = rel_err(ds, rds, NC);
    double e4 = 0;
    for (int k = 0; k < 4; k++) e4 = fmax(e4, rel_err(t + k * NC, rt + k * NC, NC));
    CHECK(e1 < 1e-4 && e2 < 1e-4 && e3 < 1e-4 && e4 < 1e-4,
          "se_pw_bwd N=%d HW=%d C=%d O=%d %s: dm %.2g dw %.2g ds %.2g t %.2g (relative to rms)", N, HW, C, O, ACTN[act],
          e1, e2, e3, e4);
    CHECK(sent_ok(dm, R * C) && sent_ok(ds, NC) && sent_ok(t, 4 * NC), "se_pw_bwd N=%d HW=%d C=%d: wrote past an output", N, HW, C);
    /* no scale gradient wanted */
    st = be->se_pw_bwd(be, N, HW, C, O, (dcl_act)act, dm, dw, NULL, t, dy, w, x, mean, is, ga, be_, sv);
    CHECK(st == DCL_OK && rel_err(t, rt, NC) < 1e-4, "se_pw_bwd without ds: %s", st ? dcl_last_error() : "sums differ");
    free(x); free(mean); free(is); free(ga); free(be_); free(sv); free(dy); free(w); free(dw); free(dm); free(ds); free(t);
    free(m); free(ap); free(a); free(rdm); free(rdw); free(rds); free(rt);
}

/* bn_dx_pw_bwd against the batch norm's dx (from d and the sums) followed by
 * the convolution's two products, in double; with and without accumulation
 * into dxin and without dxin */
static void check_bn_dx_pw(dcl_backend *be, int64_t R, int C, int Ci) {
    float *d = rnd((size_t)R * C, -1, 1), *x = rnd((size_t)R * C, -2, 2), *mean = rnd(C, -0.3f, 0.3f);
    float *is = rnd(C, 0.5f, 1.5f), *ga = rnd(C, 0.5f, 1.5f), *sdy = rnd(C, -50, 50), *sdyx = rnd(C, -50, 50);
    float *w = rnd((size_t)C * Ci, -0.3f, 0.3f), *xin = rnd((size_t)R * Ci, -1, 1);
    int64_t Mt = R + 7;
    double *g = calloc((size_t)R * C, sizeof(double)), *rdx = calloc((size_t)R * Ci, sizeof(double));
    double *rdw = calloc((size_t)C * Ci, sizeof(double));
    for (int64_t i = 0; i < R; i++)
        for (int c = 0; c < C; c++) {
            double A = (double)ga[c] * is[c], k = (double)i * C + c;
            g[(size_t)k] = A * d[(size_t)k] - A * is[c] * is[c] * sdyx[c] / Mt * ((double)x[(size_t)k] - mean[c]) - A * sdy[c] / Mt;
        }
    for (int acc = 0; acc < 3; acc++) {   /* 0: assign, 1: accumulate, 2: no dxin */
        float *dx = acc == 2 ? NULL : (acc ? rnd((size_t)R * Ci, -1, 1) : outbuf((size_t)R * Ci));
        float *dw = rnd((size_t)C * Ci, -1, 1);
        for (int64_t i = 0; i < R && dx; i++)
            for (int j = 0; j < Ci; j++) {
                double q = acc ? dx[i * Ci + j] : 0;
                for (int c = 0; c < C; c++) q += g[(size_t)i * C + c] * w[(size_t)c * Ci + j];
                rdx[i * Ci + j] = q;
            }
        for (int c = 0; c < C; c++)
            for (int j = 0; j < Ci; j++) {
                double q = dw[(size_t)c * Ci + j];
                for (int64_t i = 0; i < R; i++) q += g[(size_t)i * C + c] * xin[i * Ci + j];
                rdw[(size_t)c * Ci + j] = q;
            }
        dcl_status st = be->bn_dx_pw_bwd(be, R, C, Ci, dx, acc == 1, dw, d, x, mean, is, ga, sdy, sdyx, Mt, w, xin);
        CHECK(st == DCL_OK, "bn_dx_pw_bwd rows=%lld C=%d Ci=%d acc=%d: %s", (long long)R, C, Ci, acc, dcl_last_error());
        double e1 = dx ? rel_err(dx, rdx, (size_t)R * Ci) : 0, e2 = rel_err(dw, rdw, (size_t)C * Ci);
        CHECK(e1 < 1e-4 && e2 < 1e-4, "bn_dx_pw_bwd rows=%lld C=%d Ci=%d mode %d: dxin %.2g dw %.2g (relative to rms)",
              (long long)R, C, Ci, acc, e1, e2);
        if (dx && !acc) CHECK(sent_ok(dx, (size_t)R * Ci), "bn_dx_pw_bwd rows=%lld C=%d: wrote past dxin", (long long)R, C);
        free(dx);
        free(dw);
    }
    CHECK(be->bn_dx_pw_bwd(be, 0, C, Ci, NULL, 0, w, d, x, mean, is, ga, sdy, sdyx, Mt, w, xin) != DCL_OK,
          "bn_dx_pw_bwd refuses zero rows");
    CHECK(be->se_pw_bwd(be, 1, 4, C, 0, DCL_ACT_SILU, d, w, NULL, sdy, d, w, x, mean, is, ga, ga, ga) != DCL_OK,
          "se_pw_bwd refuses zero output channels");
    free(d); free(x); free(mean); free(is); free(ga); free(sdy); free(sdyx); free(w); free(xin);
    free(g); free(rdx); free(rdw);
}

/* bn_stats_pw against the statistics of y = x w^T computed in double from
 * y itself; inputs with a mean far from zero next to their spread (the
 * covariance must not cancel) */
static void check_stats_pw(dcl_backend *be, int64_t R, int Ci, int C, float offset) {
    float *x = rnd((size_t)R * Ci, -1, 1), *w = rnd((size_t)C * Ci, -0.5f, 0.5f);
    for (int64_t i = 0; i < R; i++)
        for (int c = 0; c < Ci; c++) x[i * Ci + c] += offset * (1 + 0.1f * c);
    float *mean = outbuf(C), *var = outbuf(C), *is = outbuf(C);
    double *rm = calloc(C, sizeof(double)), *rv = calloc(C, sizeof(double)), *ri = calloc(C, sizeof(double));
    for (int o = 0; o < C; o++) {
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < R; i++) {
            double y = 0;
            for (int c = 0; c < Ci; c++) y += (double)x[i * Ci + c] * w[(size_t)o * Ci + c];
            s1 += y;
            s2 += y * y;
        }
        rm[o] = s1 / R;
        double m2 = 0;
        for (int64_t i = 0; i < R; i++) {
            double y = 0;
            for (int c = 0; c < Ci; c++) y += (double)x[i * Ci + c] * w[(size_t)o * Ci + c];
            m2 += (y - rm[o]) * (y - rm[o]);
        }
        rv[o] = m2 / R;
        ri[o] = 1.0 / sqrt(rv[o] + 1e-3);
    }
    dcl_status st = be->bn_stats_pw(be, R, Ci, C, mean, var, is, x, w, 1e-3f);
    CHECK(st == DCL_OK, "bn_stats_pw rows=%lld Ci=%d C=%d: %s", (long long)R, Ci, C, dcl_last_error());
    double em = 0, ev = 0, ei = 0;
    for (int o = 0; o < C; o++) {
        em = fmax(em, fabs(mean[o] - rm[o]) / (fabs(rm[o]) + sqrt(rv[o])));
        ev = fmax(ev, fabs(var[o] - rv[o]) / rv[o]);
        ei = fmax(ei, fabs(is[o] - ri[o]) / ri[o]);
    }
    CHECK(em < 1e-5 && ev < 1e-4 && ei < 1e-4, "bn_stats_pw rows=%lld Ci=%d C=%d offset %g: mean %.2g var %.2g invstd %.2g",
          (long long)R, Ci, C, offset, em, ev, ei);
    CHECK(sent_ok(mean, C) && sent_ok(var, C) && sent_ok(is, C), "bn_stats_pw: wrote past an output");
    free(x); free(w); free(mean); free(var); free(is); free(rm); free(rv); free(ri);
}

static void check_pw_entries(dcl_backend *be) {
    check_stats_pw(be, 5000, 24, 144, 0.0f);
    check_stats_pw(be, 777, 13, 40, 30.0f);
    check_stats_pw(be, 3, 7, 9, 2.0f);
    CHECK(be->bn_stats_pw(be, 0, 4, 4, NULL, NULL, NULL, NULL, NULL, 1e-3f) != DCL_OK, "bn_stats_pw refuses zero rows");
    CHECK(be->pw_fused_pays(be, DCL_PWF_STATS, (int64_t)8 * 150 * 150, 144, 24) &&
          !be->pw_fused_pays(be, DCL_PWF_STATS, (int64_t)8 * 19 * 19, 672, 112),
          "covariance statistics pay for b4's 24->144 expansion, not for 112->672");
    int before = check_failed_;
    /* rows across samples and several blocks per thread (C=20: 2048 rows a
     * block), channel counts with and without a vector tail */
    for (int a = 0; a < 4; a++) check_se_pw(be, 3, 1500, 20, 13, a);
    check_se_pw(be, 2, 333, 200, 24, DCL_ACT_SILU);
    check_se_pw(be, 5, 9, 36, 8, DCL_ACT_SILU);
    check_se_pw(be, 1, 1, 8, 3, DCL_ACT_SIGMOID);
    check_bn_dx_pw(be, 4501, 24, 12);
    check_bn_dx_pw(be, 700, 200, 33);
    check_bn_dx_pw(be, 3, 8, 5);
    CHECK(be->pw_fused_pays && be->pw_fused_pays(be, DCL_PWF_BWD, (int64_t)8 * 75 * 75, 192, 32) &&
          !be->pw_fused_pays(be, DCL_PWF_BWD, (int64_t)8 * 10 * 10, 1632, 272),
          "the fusion pays on b4's 75x75 maps and not on its 10x10 ones");
    printf("cpu: fused pointwise backward entries %s\n", check_failed_ == before ? "match the double reference" : "MISMATCH");
}

/* bn_act_dw_fwd against its two halves: a element for element equal to
 * bn_act_fwd's (the same expression), y against the reference backend's
 * convolution of that a.  Shapes with channel tails, 'same' padding with
 * more at the end, stride 2, one sample (row blocks sharing their border
 * rows) and inputs of 4 MB and more (streaming stores of a and y). */
static void check_bn_act_dw_one(dcl_backend *be, int n, int C, int H, int W, int K, int S, int bias, int keep_a) {
    dcl_conv_desc d = {0};
    d.n = n; d.ci = d.co = d.groups = C; d.hi = H; d.wi = W; d.kh = d.kw = K; d.sh = d.sw = S; d.dh = d.dw = 1;
    dcl_same_pad(H, K, S, 1, &d.pt, &d.pb);
    dcl_same_pad(W, K, S, 1, &d.pl, &d.pr);
    d.has_bias = bias;
    CHECK_OK(dcl_conv_desc_finish(&d));
    size_t nx = (size_t)n * H * W * C, ny = (size_t)n * d.ho * d.wo * C;
    float *x = rnd(nx, -2, 3), *w = rnd((size_t)C * K * K, -0.5f, 0.5f), *b = bias ? rnd(C, -1, 1) : NULL;
    float *mean = rnd(C, -0.5f, 0.5f), *is = rnd(C, 0.5f, 2), *g = rnd(C, 0.5f, 1.5f), *be_ = rnd(C, -0.3f, 0.3f);
    float *a = outbuf(nx), *y = outbuf(ny), *ar = outbuf(nx), *yr = outbuf(ny);
    char what[160];
    snprintf(what, sizeof what, "bn_act_dw_fwd %dx%d s%d n%d c%d %dx%d%s%s", K, K, S, n, C, H, W, bias ? " bias" : "",
             keep_a ? "" : " (a not kept)");
    dcl_status st = be->bn_act_dw_fwd(be, &d, DCL_ACT_SILU, y, keep_a ? a : NULL, x, mean, is, g, be_, w, b);
    CHECK(st == DCL_OK, "%s: %s", what, dcl_last_error());
    CHECK_OK(be->bn_act_fwd(be, n, H * W, C, DCL_ACT_SILU, ar, NULL, x, mean, is, g, be_, NULL));
    CHECK_OK(REF->conv_fwd(REF, &d, yr, ar, w, b));
    if (keep_a) {
        size_t bad = 0;
        for (size_t i = 0; i < nx; i++) bad += a[i] != ar[i];
        CHECK(!bad, "%s: %zu elements of a differ from bn_act_fwd's", what, bad);
    }
    CLOSE_RMS(what, y, yr, ny, 1e-5);
    CHECK(sent_ok(y, ny) && sent_ok(a, nx), "%s: wrote past an output", what);
    free(x); free(w); free(b); free(mean); free(is); free(g); free(be_); free(a); free(y); free(ar); free(yr);
}

static void check_bn_act_dw(dcl_backend *be) {
    if (!be->bn_act_dw_fwd || !be->bn_act_dw_pays) {
        printf("%s: bn_act_dw_fwd not provided, skipped\n", TN);
        return;
    }
    int before = check_failed_;
    for (int K = 3; K <= 5; K += 2)
        for (int S = 1; S <= 2; S++) {
            check_bn_act_dw_one(be, 3, 20, 11, 9, K, S, 0, 1);
            check_bn_act_dw_one(be, 1, 13, 14, 15, K, S, 1, 1);   /* one sample: row blocks */
            check_bn_act_dw_one(be, 2, 8, 5, 6, K, S, 1, 0);
            check_bn_act_dw_one(be, 9, 3, 4, 4, K, S, 0, 1);
        }
    /* without normalisation (mean .. beta NULL: a = act(x)), as evaluation plans use it */
    for (int S = 1; S <= 2; S++) {
        dcl_conv_desc d = {0};
        d.n = 2; d.ci = d.co = d.groups = 20; d.hi = 13; d.wi = 12; d.kh = d.kw = 3; d.sh = d.sw = S; d.dh = d.dw = 1;
        dcl_same_pad(d.hi, 3, S, 1, &d.pt, &d.pb);
        dcl_same_pad(d.wi, 3, S, 1, &d.pl, &d.pr);
        d.has_bias = 1;
        CHECK_OK(dcl_conv_desc_finish(&d));
        size_t nx = (size_t)d.n * d.hi * d.wi * d.ci, ny = (size_t)d.n * d.ho * d.wo * d.ci;
        float *x = rnd(nx, -3, 3), *w = rnd(9 * 20, -0.5f, 0.5f), *b = rnd(20, -1, 1);
        float *y = outbuf(ny), *ar = outbuf(nx), *yr = outbuf(ny);
        CHECK_OK(be->bn_act_dw_fwd(be, &d, DCL_ACT_SILU, y, NULL, x, NULL, NULL, NULL, NULL, w, b));
        CHECK_OK(be->act_fwd(be, DCL_ACT_SILU, (int64_t)nx, ar, x));
        CHECK_OK(REF->conv_fwd(REF, &d, yr, ar, w, b));
        CLOSE_RMS(S == 1 ? "bn_act_dw_fwd without normalisation, stride 1" : "bn_act_dw_fwd without normalisation, stride 2",
                  y, yr, ny, 1e-5);
        CHECK(sent_ok(y, ny), "bn_act_dw_fwd without normalisation: wrote past y");
        free(x); free(w); free(b); free(y); free(ar); free(yr);
    }
    check_bn_act_dw_one(be, 2, 96, 110, 100, 3, 1, 0, 1);   /* 8 MB: streaming stores */
    check_bn_act_dw_one(be, 2, 96, 150, 149, 3, 2, 1, 1);
    check_bn_act_dw_one(be, 1, 40, 121, 109, 5, 2, 0, 1);
    dcl_conv_desc d = {0};
    d.n = 8; d.ci = d.co = d.groups = 192; d.hi = d.wi = 75; d.kh = d.kw = 3; d.sh = d.sw = 1; d.dh = d.dw = 1;
    d.pt = d.pb = d.pl = d.pr = 1;
    CHECK_OK(dcl_conv_desc_finish(&d));
    int big3 = be->bn_act_dw_pays(be, &d);
    d.ci = d.co = d.groups = 672; d.hi = d.wi = 19;
    CHECK_OK(dcl_conv_desc_finish(&d));
    int small3 = be->bn_act_dw_pays(be, &d);
    d.kh = d.kw = 1;
    d.pt = d.pb = d.pl = d.pr = 0;
    CHECK_OK(dcl_conv_desc_finish(&d));
    d.groups = 1;
    int pw = be->bn_act_dw_pays(be, &d);
#if defined(__AVX512F__)
    CHECK(!big3 && !small3 && !pw, "bn_act_dw_pays: off with AVX-512");
#else
    CHECK(big3 && !small3 && !pw, "bn_act_dw_pays: b4's 3x3 192@75 (%d), not 672@19 (%d) nor a 1x1 convolution (%d)",
          big3, small3, pw);
#endif
    printf("%s: bn_act_dw_fwd %s\n", TN, check_failed_ == before ? "matches bn_act_fwd + the reference convolution" : "MISMATCHES");
}

/* --------------------------------------------------- 2. whole networks -- */

static dcl_model *make_model(dcl_backend *be, int fuse, int drop) {
    dcl_effnet_cfg cfg;
    dcl_effnet_config(&cfg, "tf_efficientnet_b0");
    dcl_effnet_set_scale(&cfg, 0.25f, 0.34f);
    cfg.num_classes = 3;
    cfg.drop_rate = drop ? 0.2f : 0.0f;
    cfg.drop_path_rate = drop ? 0.2f : 0.0f;
    dcl_model *m = NULL;
    if (dcl_effnet_build(&m, be, &cfg)) return NULL;
    dcl_rng r;
    dcl_rng_seed(&r, 5);
    if (dcl_net_init_params(m->net, &r) || dcl_net_set_fuse(m->net, fuse)) { dcl_model_free(m); return NULL; }
    /* non-trivial batch-norm parameters and running statistics */
    const dcl_table *P = dcl_net_params(m->net), *B = dcl_net_buffers(m->net);
    for (int i = 0; i < P->n; i++) {
        const dcl_named *e = &P->v[i];
        if (e->ndim != 1 || !strstr(e->name, "bn")) continue;
        float *v = malloc(e->numel * sizeof(float));
        int w = strstr(e->name, "weight") != NULL;
        for (int64_t j = 0; j < e->numel; j++) v[j] = w ? 0.5f + (float)dcl_rng_uniform(&r) : 0.3f * (float)dcl_rng_normal(&r);
        dcl_net_set_tensor(m->net, e->name, v, e->numel);
        free(v);
    }
    for (int i = 0; i < B->n; i++) {
        const dcl_named *e = &B->v[i];
        if (e->flags & DCL_PF_COUNTER) continue;
        float *v = malloc(e->numel * sizeof(float));
        int var = strstr(e->name, "running_var") != NULL;
        for (int64_t j = 0; j < e->numel; j++) v[j] = var ? 0.5f + (float)dcl_rng_uniform(&r) : 0.2f * (float)dcl_rng_normal(&r);
        dcl_net_set_tensor(m->net, e->name, v, e->numel);
        free(v);
    }
    return m;
}

static int close_rel_max(const char *what, const float *a, const float *b, int64_t n, double tol, double floor) {
    double mb = 0, md = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
        if (!(d <= md)) { md = d; wi = i; }
    }
    int ok = md <= tol * mb + floor;
    CHECK(ok, "%s: max abs diff %.3g at %lld (got %.6g want %.6g), max |ref| %.3g", what, md, (long long)wi, a[wi], b[wi], mb);
    return ok;
}

enum { NB = 3, HH = 48, WW = 40, K = 3 };

static void eval_logits(dcl_model *m, const float *x, float *out) {
    CHECK_OK(dcl_net_plan(m->net, NB, HH, WW, DCL_PLAN_EVAL));
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, NULL));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, out));
}

/* The parameters of net whose names contain a or b times f, the same
 * values set in also (when not NULL). */
static void scale_named(dcl_net *net, dcl_net *also, const char *a, const char *b, float f) {
    const dcl_table *P = dcl_net_params(net);
    for (int i = 0; i < P->n; i++)
        if (strstr(P->v[i].name, a) || strstr(P->v[i].name, b)) {
            float *p = malloc(P->v[i].numel * sizeof(float));
            CHECK_OK(dcl_net_get_tensor(net, P->v[i].name, p, P->v[i].numel));
            for (int64_t j = 0; j < P->v[i].numel; j++) p[j] *= f;
            CHECK_OK(dcl_net_set_tensor(net, P->v[i].name, p, P->v[i].numel));
            if (also) CHECK_OK(dcl_net_set_tensor(also, P->v[i].name, p, P->v[i].numel));
            free(p);
        }
}

static void check_eval_fold(const float *x) {
    float lf[NB * K], lu[NB * K], lr[NB * K], lrf[NB * K];
    dcl_model *f = make_model(CPU, DCL_FUSE_ALL, 1), *u = make_model(CPU, 0, 1);
    dcl_model *r = make_model(REF, 0, 1), *rf = make_model(REF, DCL_FUSE_ALL, 1);
    CHECK(f && u && r && rf, "building the models: %s", dcl_last_error());
    if (!f || !u || !r || !rf) return;
    eval_logits(f, x, lf);
    eval_logits(u, x, lu);
    eval_logits(r, x, lr);
    eval_logits(rf, x, lrf);
    CHECK_CLOSE("eval logits, cpu: folded vs unfolded", lf, lu, NB * K, 1e-4, 1e-3);
    CHECK_CLOSE("eval logits: cpu folded vs ref unfolded", lf, lr, NB * K, 1e-4, 1e-3);
    CHECK_CLOSE("eval logits, ref: folded vs unfolded", lrf, lr, NB * K, 1e-4, 1e-3);
    double spread = 0;
    for (int i = 1; i < NB * K; i++) spread = fmax(spread, fabs(lr[i] - lr[0]));
    CHECK(spread > 1e-3, "the test logits should differ between images (spread %g)", spread);
    /* the stem convolution's output (value 1) is folded away, the features are kept */
    float *buf = malloc(sizeof(float) * NB * 1280 * HH * WW);
    dcl_status s = dcl_net_value_to_host(f->net, 1, buf);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "fused away"), "reading a fused-away value: %d %s", s, dcl_last_error());
    CHECK_OK(dcl_net_value_to_host(f->net, f->features, buf));
    /* a second forward after the parameters change sees the new parameters */
    const dcl_table *P = dcl_net_params(f->net);
    scale_named(f->net, r->net, "bn1.weight", "conv_stem", 1.5f);
    eval_logits(f, x, lf);
    eval_logits(r, x, lr);
    CHECK_CLOSE("eval logits after a parameter change: cpu folded vs ref", lf, lr, NB * K, 1e-4, 1e-3);
    /* the folded copies are kept between evaluation forwards: the same result again */
    float l2[NB * K];
    eval_logits(f, x, l2);
    CHECK(!memcmp(l2, lf, sizeof l2), "a second evaluation forward (folded weights kept) differs");
    /* a write through dcl_net_param_data, then through a pointer kept across
     * a forward with dcl_net_params_changed, then running statistics moved by
     * a training forward: each seen by the next evaluation */
    for (int step = 0; step < 3; step++) {
        float *pf = dcl_net_param_data(f->net), *pr = dcl_net_param_data(r->net);
        if (step == 1) {
            eval_logits(f, x, l2);                 /* folds, after the pointer was taken */
            for (int64_t j = 0; j < P->total; j++) { pf[j] *= 0.9f; pr[j] *= 0.9f; }
            dcl_net_params_changed(f->net);
        } else if (step == 0) {
            for (int64_t j = 0; j < P->total; j++) { pf[j] *= 1.1f; pr[j] *= 1.1f; }
        } else {
            float tl[NB * K];
            dcl_rng r1, r2;
            dcl_rng_seed(&r1, 3);
            dcl_rng_seed(&r2, 3);
            dcl_model *mm[2] = {f, r};
            dcl_rng *rr[2] = {&r1, &r2};
            for (int k = 0; k < 2; k++) {
                CHECK_OK(dcl_net_plan(mm[k]->net, NB, HH, WW, DCL_PLAN_TRAIN_NOGRAD));
                CHECK_OK(dcl_net_set_input(mm[k]->net, x));
                CHECK_OK(dcl_net_forward(mm[k]->net, rr[k]));
                CHECK_OK(dcl_net_value_to_host(mm[k]->net, mm[k]->logits, tl));
            }
        }
        eval_logits(f, x, lf);
        eval_logits(r, x, lr);
        CHECK_CLOSE(step == 0 ? "eval logits after writing through dcl_net_param_data"
                    : step == 1 ? "eval logits after dcl_net_params_changed"
                                : "eval logits after a training forward moved the running statistics",
                    lf, lr, NB * K, 1e-4, 1e-3);
        CHECK(memcmp(lf, l2, sizeof lf) != 0, "step %d: the logits did not move", step);
        memcpy(l2, lf, sizeof l2);
    }
    free(buf);
    dcl_model_free(f); dcl_model_free(u); dcl_model_free(r); dcl_model_free(rf);
}

/* n floats of backend memory p into a new host array */
static float *host_copy(dcl_backend *be, const float *p, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (be->is_host) {
        memcpy(h, p, n * sizeof(float));
    } else {
        CHECK_OK(be->sync ? be->sync(be) : DCL_OK);
        CHECK_OK(be->to_host(be, h, p, n * sizeof(float)));
    }
    return h;
}
/* dst = src, n floats of backend memory */
static void be_copy(dcl_backend *be, float *dst, const float *src, size_t n) {
    if (be->is_host) { memcpy(dst, src, n * sizeof(float)); return; }
    float *h = host_copy(be, src, n);
    CHECK_OK(be->to_device(be, dst, h, n * sizeof(float)));
    free(h);
}

static void train_step(dcl_model *m, const float *x, const int *tg, dcl_rng *rng, float *logits, float *feat,
                       float *grads) {
    float dl[NB * K], loss;
    CHECK_OK(dcl_net_set_input(m->net, x));
    CHECK_OK(dcl_net_forward(m->net, rng));
    CHECK_OK(dcl_net_value_to_host(m->net, m->logits, logits));
    CHECK_OK(dcl_net_value_to_host(m->net, m->features, feat));
    CHECK_OK(dcl_cross_entropy_fwd_f32(NB, K, &loss, logits, tg));
    CHECK_OK(dcl_cross_entropy_bwd_f32(NB, K, dl, 1.0f, logits, tg));
    CHECK_OK(dcl_net_seed_from_host(m->net, m->logits, dl));
    CHECK_OK(dcl_net_zero_grad(m->net));
    CHECK_OK(dcl_net_backward(m->net));
    size_t n = dcl_net_params(m->net)->total;
    float *g = host_copy(dcl_net_backend(m->net), dcl_net_grad_data(m->net), n);
    memcpy(grads, g, n * sizeof(float));
    free(g);
}

/* Fused against unfused training plan on backend be (named tn in messages). */
static void check_train(dcl_backend *be, const char *tn, const float *x) {
    dcl_model *f = make_model(be, DCL_FUSE_ALL, 1), *u = make_model(be, 0, 1);
    CHECK(f && u, "%s: building the models: %s", tn, dcl_last_error());
    if (!f || !u) { dcl_model_free(f); dcl_model_free(u); return; }
    int tg[NB] = {0, 2, 1};
    const dcl_table *P = dcl_net_params(f->net), *B = dcl_net_buffers(f->net);
    size_t nf = (size_t)NB * 1280 * 2 * 2;  /* upper bound of the feature map at 48x40 */
    float lf[NB * K], lu[NB * K], *ff = malloc(nf * 4 * sizeof(float)), *fu = malloc(nf * 4 * sizeof(float));
    float *gf = malloc(P->total * sizeof(float)), *gu = malloc(P->total * sizeof(float));
    char what[256];
    CHECK_OK(dcl_net_mark_output(f->net, f->logits));
    CHECK_OK(dcl_net_mark_output(u->net, u->logits));
    CHECK_OK(dcl_net_plan(f->net, NB, HH, WW, DCL_PLAN_TRAIN));
    CHECK_OK(dcl_net_plan(u->net, NB, HH, WW, DCL_PLAN_TRAIN));
    CHECK(dcl_net_arena_bytes(f->net) < dcl_net_arena_bytes(u->net), "%s: fused training arena %zu should be below the unfused %zu",
          tn, dcl_net_arena_bytes(f->net), dcl_net_arena_bytes(u->net));
    int shp[4];
    dcl_net_value_shape(f->net, f->features, shp);
    size_t nfe = (size_t)shp[0] * shp[1] * shp[2] * shp[3];
    dcl_optim_cfg oc = dcl_optim_defaults(DCL_OPT_ADAM);
    dcl_optim *ou = NULL;
    CHECK_OK(dcl_optim_create(&ou, be, P->total, &oc));
    for (int step = 0; step < 2 && ou; step++) {
        dcl_rng r1, r2;
        dcl_rng_seed(&r1, 100 + step);
        dcl_rng_seed(&r2, 100 + step);
        train_step(f, x, tg, &r1, lf, ff, gf);
        train_step(u, x, tg, &r2, lu, fu, gu);
        snprintf(what, sizeof what, "%s train step %d: logits fused vs unfused", tn, step);
        CHECK_CLOSE(what, lf, lu, NB * K, 1e-4, 1e-3);
        snprintf(what, sizeof what, "%s train step %d: features fused vs unfused", tn, step);
        CHECK_CLOSE(what, ff, fu, (long)nfe, 1e-4, 1e-3);
        double gmax = 0;
        for (size_t i = 0; i < P->total; i++) gmax = fmax(gmax, fabs(gu[i]));
        CHECK(gmax > 1e-4, "%s: gradients should not vanish (max %g)", tn, gmax);
        int nbad = 0;
        for (int i = 0; i < P->n; i++) {
            snprintf(what, sizeof what, "%s train step %d: grad %s fused vs unfused", tn, step, P->v[i].name);
            if (!close_rel_max(what, gf + P->v[i].offset, gu + P->v[i].offset, P->v[i].numel, 2e-3, 1e-4 * gmax)) nbad++;
        }
        CHECK(nbad == 0, "%s step %d: %d parameter gradients differ", tn, step, nbad);
        snprintf(what, sizeof what, "%s train step %d: running statistics fused vs unfused", tn, step);
        float *bf = host_copy(be, dcl_net_buffer_data(f->net), B->total), *bu = host_copy(be, dcl_net_buffer_data(u->net), B->total);
        CHECK_CLOSE(what, bf, bu, (long)B->total, 1e-6, 1e-4);
        free(bf); free(bu);
        /* Adam turns rounding-level differences of near-zero gradients
         * into whole steps: update one net and copy its state to the other */
        CHECK_OK(dcl_optim_step(ou, dcl_net_param_data(u->net), dcl_net_grad_data(u->net), 1e-3f));
        be_copy(be, dcl_net_param_data(f->net), dcl_net_param_data(u->net), P->total);
        be_copy(be, dcl_net_buffer_data(f->net), dcl_net_buffer_data(u->net), B->total);
    }
    /* the key encoder's plan: batch statistics, no backward */
    CHECK_OK(dcl_net_plan(f->net, NB, HH, WW, DCL_PLAN_TRAIN_NOGRAD));
    CHECK_OK(dcl_net_plan(u->net, NB, HH, WW, DCL_PLAN_TRAIN_NOGRAD));
    dcl_rng r1, r2;
    dcl_rng_seed(&r1, 9);
    dcl_rng_seed(&r2, 9);
    CHECK_OK(dcl_net_set_input(f->net, x));
    CHECK_OK(dcl_net_forward(f->net, &r1));
    CHECK_OK(dcl_net_value_to_host(f->net, f->logits, lf));
    CHECK_OK(dcl_net_set_input(u->net, x));
    CHECK_OK(dcl_net_forward(u->net, &r2));
    CHECK_OK(dcl_net_value_to_host(u->net, u->logits, lu));
    snprintf(what, sizeof what, "%s no-gradient plan: logits fused vs unfused", tn);
    CHECK_CLOSE(what, lf, lu, NB * K, 1e-4, 1e-3);
    float *bf = host_copy(be, dcl_net_buffer_data(f->net), B->total), *bu = host_copy(be, dcl_net_buffer_data(u->net), B->total);
    snprintf(what, sizeof what, "%s no-gradient plan: running statistics fused vs unfused", tn);
    CHECK_CLOSE(what, bf, bu, (long)B->total, 1e-6, 1e-4);
    free(bf); free(bu);
    dcl_optim_free(ou);
    free(ff); free(fu); free(gf); free(gu);
    dcl_model_free(f);
    dcl_model_free(u);
}

/* the profile of the net's last passes, as text (caller frees) */
static char *profile_text(dcl_net *net) {
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    if (!f) return NULL;
    dcl_net_profile_print(net, f, 1);
    fclose(f);
    return txt;
}

/* A training plan with fusion flags fuse, planned with env set to val
 * (NULL: as it is), one profiled training step: the profile's text (caller
 * frees; NULL when the model could not be built) and the plan's arena. */
static char *train_profile(const float *x, int fuse, const char *env, const char *val, size_t *arena) {
    int tg[NB] = {0, 2, 1};
    float l[NB * K], *feat = malloc((size_t)NB * 1280 * 4 * 4 * sizeof(float));
    if (val) setenv(env, val, 1);
    dcl_model *m = make_model(CPU, fuse, 0);
    CHECK(m != NULL, "%s=%s: building the model: %s", env, val ? val : "(unset)", dcl_last_error());
    char *txt = NULL;
    if (m) {
        float *g = malloc(dcl_net_params(m->net)->total * sizeof(float));
        CHECK_OK(dcl_net_mark_output(m->net, m->logits));
        CHECK_OK(dcl_net_plan(m->net, NB, HH, WW, DCL_PLAN_TRAIN));
        unsetenv(env);   /* read at plan time */
        *arena = dcl_net_arena_bytes(m->net);
        CHECK_OK(dcl_net_profile(m->net, 1));
        dcl_rng r;
        dcl_rng_seed(&r, 3);
        train_step(m, x, tg, &r, l, feat, g);
        txt = profile_text(m->net);
        free(g);
        dcl_model_free(m);
    }
    unsetenv(env);
    free(feat);
    return txt;
}

/* DCL_FUSE_PW in a whole network: with the size rule forced on
 * (DCL_CPU_PW_FUSED=always, read at plan time) both fused backward kinds
 * appear in the profile and the training step matches the unfused plan
 * (check_train); off without the flag and under the default rule on these
 * small maps; the plan never needs more activation memory. */
static void check_pw_plan(const float *x) {
    size_t arena[3] = {0, 0, 0};
    for (int v = 0; v < 3; v++) {   /* 0: forced on, 1: flag off, 2: default rule */
        char *txt = train_profile(x, v == 1 ? DCL_FUSE_ALL & ~DCL_FUSE_PW : DCL_FUSE_ALL, "DCL_CPU_PW_FUSED",
                                  v == 0 ? "always" : NULL, &arena[v]);
        if (!txt) continue;
        int se = strstr(txt, "(+SE recompute, sums)") != NULL, bnd = strstr(txt, "(+bn dx)") != NULL;
        int cs = strstr(txt, "(stats from input)") != NULL;
        if (v == 0) CHECK(se && bnd && cs, "pw plan forced on: the fused kinds in the profile (SE %d, bn dx %d, stats %d)", se, bnd, cs);
        if (v == 1) CHECK(!cs, "pw plan without the flag: statistics from the batch norm's input");
        if (v != 0) CHECK(!se && !bnd, "pw plan %s: no fused pointwise backward (SE %d, bn dx %d)", v == 1 ? "without the flag" : "default rule on small maps", se, bnd);
        /* the scaled map: recomputed inside the fused backward, kept from the forward without it (plan_keep_se) */
        int kept = strstr(txt, "SE mul fused (kept) bwd") != NULL, rec = strstr(txt, "SE mul fused (+recompute)") != NULL;
        CHECK(v == 0 ? rec && !kept : kept && !rec, "pw plan %d: the squeeze-excitation maps %s (kept %d, recomputed %d)", v,
              v == 0 ? "recomputed by the fused backward" : "kept from the forward", kept, rec);
        free(txt);
    }
    CHECK(arena[0] <= arena[1] && arena[2] == arena[1], "pw plan: arena %zu (fused) <= %zu (not), default rule %zu", arena[0], arena[1], arena[2]);
    /* the training step itself, fused pointwise backward against unfused */
    setenv("DCL_CPU_PW_FUSED", "always", 1);
    check_train(CPU, "cpu(pw fused)", x);
    unsetenv("DCL_CPU_PW_FUSED");
}

/* DCL_FUSE_DW in a whole network: forced onto the test's small maps
 * (DCL_CPU_DW_FUSED=always, read at plan time) the fused kind appears in
 * the profile and the training step matches the unfused plan
 * (check_train); absent without the flag and under the default rule; the
 * plan needs no more activation memory. */
static void check_dw_plan(const float *x) {
    size_t arena[3] = {0, 0, 0};
    for (int v = 0; v < 3; v++) {   /* 0: forced on, 1: flag off, 2: default rule */
        char *txt = train_profile(x, v == 1 ? DCL_FUSE_ALL & ~DCL_FUSE_DW : DCL_FUSE_ALL, "DCL_CPU_DW_FUSED",
                                  v < 2 ? "always" : NULL, &arena[v]);
        if (!txt) continue;
        int dw = strstr(txt, "(+depthwise conv) fwd") != NULL;
        if (v == 0) CHECK(dw, "dw plan forced on: the fused kind in the profile");
        else CHECK(!dw, "dw plan %s: no fused depthwise forward", v == 1 ? "without the flag" : "default rule on small maps");
        free(txt);
    }
    CHECK(arena[0] <= arena[1] && arena[2] == arena[1], "dw plan: arena %zu (fused) <= %zu (not), default rule %zu",
          arena[0], arena[1], arena[2]);
    setenv("DCL_CPU_DW_FUSED", "always", 1);
    check_train(CPU, "cpu(dw fused)", x);
    check_eval_fold(x);   /* the activation applied by the depthwise convolution (plan_fuse_dw_eval) */
    dcl_model *m = make_model(CPU, DCL_FUSE_ALL, 0);
    CHECK(m != NULL, "dw plan: building the model: %s", dcl_last_error());
    if (m) {
        CHECK_OK(dcl_net_mark_output(m->net, m->logits));
        CHECK_OK(dcl_net_plan(m->net, NB, HH, WW, DCL_PLAN_EVAL));
        CHECK_OK(dcl_net_profile(m->net, 1));
        CHECK_OK(dcl_net_set_input(m->net, x));
        CHECK_OK(dcl_net_forward(m->net, NULL));
        char *txt = profile_text(m->net);
        CHECK(txt && strstr(txt, "(+silu on its input)") && strstr(txt, "(silu in the next conv)"),
              "dw plan forced on, evaluation: the depthwise convolutions apply the activation before them");
        free(txt);
        /* an expansion's activated output now holds the value before the
         * activation: readable without the fusion, not with it */
        float *buf = malloc(sizeof(float) * NB * 1280 * HH * WW);
        unsetenv("DCL_CPU_DW_FUSED");
        dcl_model *u = make_model(CPU, DCL_FUSE_ALL, 0);
        int newly = 0;
        if (u) {
            CHECK_OK(dcl_net_mark_output(u->net, u->logits));
            CHECK_OK(dcl_net_plan(u->net, NB, HH, WW, DCL_PLAN_EVAL));
            CHECK_OK(dcl_net_set_input(u->net, x));
            CHECK_OK(dcl_net_forward(u->net, NULL));
            for (int v = 1; v < 1000; v++) {
                dcl_status su = dcl_net_value_to_host(u->net, v, buf);
                if (su != DCL_OK && strstr(dcl_last_error(), "bad value")) break;
                dcl_status s = dcl_net_value_to_host(m->net, v, buf);
                newly += su == DCL_OK && s == DCL_ERR_ARG && strstr(dcl_last_error(), "fused away") != NULL;
            }
            dcl_model_free(u);
        }
        free(buf);
        CHECK(newly >= 1, "dw plan forced on, evaluation: the activation left to the depthwise convolution is not readable");
        dcl_model_free(m);
    }
    unsetenv("DCL_CPU_DW_FUSED");
}

/* The squeeze-excitation scale applied to the next convolution's weights
 * sample by sample (fu_sw), forced onto every map size (DCL_SW_MIN_HW=1):
 * in the profile of both plans, evaluation logits and a training step
 * against the unfused plans, also together with the fused pointwise
 * backward. */
static void check_sw_plan(const float *x) {
    setenv("DCL_SW_MIN_HW", "1", 1);
    int tg[NB] = {0, 2, 1};
    float l[NB * K], *feat = malloc((size_t)NB * 1280 * 4 * 4 * sizeof(float));
    for (int mode = 0; mode < 2; mode++) {
        dcl_model *m = make_model(CPU, DCL_FUSE_ALL, 0);
        CHECK(m != NULL, "sw plan: building the model: %s", dcl_last_error());
        if (!m) continue;
        float *g = malloc(dcl_net_params(m->net)->total * sizeof(float));
        CHECK_OK(dcl_net_mark_output(m->net, m->logits));
        CHECK_OK(dcl_net_plan(m->net, NB, HH, WW, mode ? DCL_PLAN_TRAIN : DCL_PLAN_EVAL));
        CHECK_OK(dcl_net_profile(m->net, 1));
        dcl_rng r;
        dcl_rng_seed(&r, 3);
        if (mode) train_step(m, x, tg, &r, l, feat, g);
        else eval_logits(m, x, l);
        char *txt = profile_text(m->net);
        CHECK(txt && strstr(txt, "(+SE scale in weights)"), "sw plan (%s): the scale goes into the weights", mode ? "train" : "eval");
        free(txt);
        free(g);
        dcl_model_free(m);
    }
    free(feat);
    check_eval_fold(x);
    check_train(CPU, "cpu(SE scale in weights)", x);
    setenv("DCL_CPU_PW_FUSED", "always", 1);
    check_train(CPU, "cpu(SE scale in weights, pw fused)", x);
    unsetenv("DCL_CPU_PW_FUSED");
    unsetenv("DCL_SW_MIN_HW");
}

/* ------------------------------------- 3. synchronised batch norm, fused -- */

typedef struct tshare { pthread_barrier_t bar; double buf[2 * 4096]; } tshare;
typedef struct tjob { tshare *sh; int rank; dcl_model *m; const float *x, *seed; dcl_status s; } tjob;

static dcl_status gather2(void *ctx, double *recv, const double *send, int n) {
    tjob *j = ctx;
    if (n > 4096) return dcl_fail(DCL_ERR_ARG, "test gather: %d values", n);
    memcpy(j->sh->buf + (size_t)j->rank * n, send, n * sizeof(double));
    pthread_barrier_wait(&j->sh->bar);
    memcpy(recv, j->sh->buf, 2 * (size_t)n * sizeof(double));
    pthread_barrier_wait(&j->sh->bar);
    return DCL_OK;
}

static dcl_status step_seeded(dcl_model *m, const float *x, const float *seed) {
    DCL_TRY(dcl_net_set_input(m->net, x));
    DCL_TRY(dcl_net_forward(m->net, NULL));
    DCL_TRY(dcl_net_zero_grad(m->net));
    DCL_TRY(dcl_net_seed_from_host(m->net, m->logits, seed));
    return dcl_net_backward(m->net);
}

static void *run_job(void *arg) {
    tjob *j = arg;
    j->s = step_seeded(j->m, j->x, j->seed);
    return NULL;
}

static dcl_model *sync_model(int batch) {
    /* no dropout: the halves and the whole batch must see the same network */
    dcl_model *m = make_model(CPU, DCL_FUSE_ALL, 0);
    if (!m) return NULL;
    if (dcl_net_mark_output(m->net, m->logits) || dcl_net_plan(m->net, batch, HH, WW, DCL_PLAN_TRAIN)) {
        dcl_model_free(m);
        return NULL;
    }
    return m;
}

static void check_sync_bn(void) {
    enum { B = 4 };
    size_t px = (size_t)HH * WW * 3;
    float *x = malloc(B * px * sizeof(float));
    for (size_t i = 0; i < B * px; i++) x[i] = (float)dcl_rng_normal(&RNG);
    dcl_model *full = sync_model(B), *half[2] = {sync_model(B / 2), sync_model(B / 2)};
    CHECK(full && half[0] && half[1], "building the models: %s", dcl_last_error());
    if (!full || !half[0] || !half[1]) goto out;
    float seed_full[B * K], seed_half[B * K], lf[B * K], lh[B * K];
    for (int i = 0; i < B * K; i++) {
        float g = (float)dcl_rng_normal(&RNG);
        seed_full[i] = g / B;
        seed_half[i] = g / (B / 2);
    }
    CHECK_OK(step_seeded(full, x, seed_full));
    CHECK_OK(dcl_net_value_to_host(full->net, full->logits, lf));
    tshare sh;
    pthread_barrier_init(&sh.bar, NULL, 2);
    tjob jobs[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (tjob){&sh, k, half[k], x + (size_t)k * (B / 2) * px, seed_half + k * (B / 2) * K, DCL_OK};
        CHECK_OK(dcl_net_set_bn_sync(half[k]->net, gather2, 2, &jobs[k]));
    }
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, run_job, &jobs[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&sh.bar);
    for (int k = 0; k < 2; k++) {
        CHECK(jobs[k].s == DCL_OK, "rank %d failed", k);
        CHECK_OK(dcl_net_value_to_host(half[k]->net, half[k]->logits, lh + k * (B / 2) * K));
    }
    /* oneDNN may take other kernels for batches of 2 and 4: rounding-level
     * differences through the network, hence test_model's logit tolerance */
    CHECK_CLOSE("fused sync BN: logits of the halves vs the whole batch", lh, lf, B * K, 1e-4, 1e-3);
    const dcl_table *t = dcl_net_params(full->net), *bt = dcl_net_buffers(full->net);
    float *g0 = dcl_net_grad_data(half[0]->net), *g1 = dcl_net_grad_data(half[1]->net), *gf = dcl_net_grad_data(full->net);
    float *avg = malloc(t->total * sizeof(float));
    double gmax = 0;
    for (size_t i = 0; i < t->total; i++) { avg[i] = 0.5f * (g0[i] + g1[i]); gmax = fmax(gmax, fabs(gf[i])); }
    CHECK(gmax > 1e-3, "the test gradients should not vanish (max %g)", gmax);
    CHECK_CLOSE("fused sync BN: averaged gradients vs the whole batch", avg, gf, (long)t->total, 1e-5 * gmax, 1e-3);
    CHECK_CLOSE("fused sync BN: running statistics (rank 0)", dcl_net_buffer_data(half[0]->net),
                dcl_net_buffer_data(full->net), (long)bt->total, 1e-6, 1e-4);
    CHECK_CLOSE("fused sync BN: running statistics (rank 1)", dcl_net_buffer_data(half[1]->net),
                dcl_net_buffer_data(full->net), (long)bt->total, 1e-6, 1e-4);
    free(avg);
out:
    free(x);
    dcl_model_free(full);
    dcl_model_free(half[0]);
    dcl_model_free(half[1]);
}

/* Informational timings of the cuda entries at EfficientNet-b4 shapes
 * (batch 8, 380x380 input): ms per call and the bytes each call must move
 * at the least over the time.  Asserts only that the calls succeed. */
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static void time_cuda(dcl_backend *G) {
    const struct { int N, HW, C; } shp[] = {{8, 190 * 190, 48}, {8, 95 * 95, 144}, {8, 24 * 24, 672}, {8, 12 * 12, 1632}};
    enum { REPS = 20 };
    for (size_t k = 0; k < sizeof shp / sizeof *shp; k++) {
        const int N = shp[k].N, HW = shp[k].HW, C = shp[k].C;
        const int64_t M = (int64_t)N * HW;
        const size_t n = (size_t)M * C, nc = (size_t)N * C;
        float *h = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) h[i] = (float)dcl_rng_normal(&RNG);
        float *x = G->mem_alloc(G, n * 4), *y = G->mem_alloc(G, n * 4), *dy = G->mem_alloc(G, n * 4), *dx = G->mem_alloc(G, n * 4);
        float *pc = G->mem_alloc(G, 16 * (size_t)C * 4), *pn = G->mem_alloc(G, 8 * nc * 4);
        if (!x || !y || !dy || !dx || !pc || !pn) {
            printf("cuda timing: skipped (%s)\n", dcl_last_error());
            G->mem_free(G, x); G->mem_free(G, y); G->mem_free(G, dy); G->mem_free(G, dx); G->mem_free(G, pc); G->mem_free(G, pn);
            free(h);
            return;
        }
        CHECK_OK(G->to_device(G, x, h, n * 4));
        for (size_t i = 0; i < n; i++) h[i] *= 0.01f;
        CHECK_OK(G->to_device(G, dy, h, n * 4));
        for (int i = 0; i < 16 * C; i++) h[i] = 0.5f + 0.001f * (float)(i % 97);
        CHECK_OK(G->to_device(G, pc, h, 16 * (size_t)C * 4));
        CHECK_OK(G->to_device(G, pn, h, 8 * nc * 4 < n * 4 ? 8 * nc * 4 : n * 4));
        float *mean = pc, *var = pc + C, *is = pc + 2 * C, *gam = pc + 3 * C, *bet = pc + 4 * C, *sdy = pc + 5 * C,
              *sdyx = pc + 6 * C, *dgam = pc + 7 * C, *dbet = pc + 8 * C;
        float *s = pn, *gm = pn + nc, *ds = pn + 2 * nc, *t = pn + 4 * nc;
        printf("cuda timing N=%d HW=%d C=%d (%.1f MB per tensor):\n", N, HW, C, (double)n * 4 / 1e6);
#define TIME_OP(name, bytes, CALL)                                                              \
        do {                                                                                    \
            CHECK_OK(CALL);                                                                     \
            CHECK_OK(G->sync(G));                                                               \
            double t0_ = now_s();                                                               \
            for (int r_ = 0; r_ < REPS; r_++) CALL;                                             \
            CHECK_OK(G->sync(G));                                                               \
            double ms_ = (now_s() - t0_) / REPS * 1e3;                                          \
            printf("  %-44s %8.3f ms  %7.0f GB/s\n", name, ms_, (double)(bytes) / (ms_ * 1e-3) / 1e9); \
        } while (0)
        TIME_OP("bn_fwd_train (stats + y)", 12.0 * n, G->bn_fwd_train(G, M, C, y, mean, var, is, x, gam, bet, 1e-3f));
        TIME_OP("bn_bwd (sums + dx)", 20.0 * n, G->bn_bwd(G, M, C, dx, dgam, dbet, dy, x, mean, is, gam));
        TIME_OP("bn_fwd_infer", 8.0 * n, G->bn_fwd_infer(G, M, C, y, x, gam, bet, mean, var, 1e-3f));
        TIME_OP("act_fwd silu", 8.0 * n, G->act_fwd(G, DCL_ACT_SILU, (int64_t)n, y, x));
        TIME_OP("bn_stats", 4.0 * n, G->bn_stats(G, M, C, mean, var, is, x, 1e-3f));
        TIME_OP("bn_act_fwd silu", 8.0 * n, G->bn_act_fwd(G, N, HW, C, DCL_ACT_SILU, y, NULL, x, mean, is, gam, bet, NULL));
        TIME_OP("bn_act_fwd silu + pooled means", 8.0 * n, G->bn_act_fwd(G, N, HW, C, DCL_ACT_SILU, y, gm, x, mean, is, gam, bet, NULL));
        TIME_OP("bn_act_fwd silu * s (recompute)", 8.0 * n, G->bn_act_fwd(G, N, HW, C, DCL_ACT_SILU, y, NULL, x, mean, is, gam, bet, s));
        TIME_OP("bn_act_bwd_reduce silu (d written)", 12.0 * n, G->bn_act_bwd_reduce(G, N, HW, C, DCL_ACT_SILU, sdy, sdyx, dgam, dbet, dx, dy, x, mean, is, gam, bet, NULL, NULL));
        TIME_OP("bn_act_bwd_dx (d in dx)", 12.0 * n, G->bn_act_bwd_dx(G, N, HW, C, DCL_ACT_SILU, dx, dx, NULL, x, mean, is, gam, NULL, NULL, NULL, sdy, sdyx, M));
        TIME_OP("bn_act_bwd_dx silu + se (recomputed d)", 12.0 * n, G->bn_act_bwd_dx(G, N, HW, C, DCL_ACT_SILU, dx, NULL, dy, x, mean, is, gam, bet, s, gm, sdy, sdyx, M));
        TIME_OP("bn_act_dot silu", 8.0 * n, G->bn_act_dot(G, N, HW, C, DCL_ACT_SILU, ds, dy, x, mean, is, gam, bet));
        TIME_OP("bn_act_se_sums silu", 8.0 * n, G->bn_act_se_sums(G, N, HW, C, DCL_ACT_SILU, ds, t, dy, x, mean, is, gam, bet));
#undef TIME_OP
        G->mem_free(G, x); G->mem_free(G, y); G->mem_free(G, dy); G->mem_free(G, dx); G->mem_free(G, pc); G->mem_free(G, pn);
        free(h);
    }
}

/* Evaluation a few samples at a time over the layers on large maps
 * (plan_microbatch, DCL_EVAL_MICROBATCH read at plan time): the logits of
 * 7 images at 96x96 (the stem's and first stage's 48x48 maps in the prefix)
 * with 1, 2 and 3 samples a pass (3 + 3 + 1) match the whole batch's, also
 * after a parameter change (the weights folded again by the first pass);
 * a value kept for one micro-batch is refused, the arena shrinks; on the
 * fp32 and the bf16-storage cpu backends. */
static void check_microbatch(dcl_backend *be, const char *bn, double tol) {
    enum { MN = 7, MH = 96, MW = 96 };
    size_t px = (size_t)MH * MW * 3;
    float *x = malloc(MN * px * sizeof(float)), *buf = malloc(sizeof(float) * MN * 1280 * MH * MW);
    for (size_t i = 0; i < MN * px; i++) x[i] = (float)dcl_rng_normal(&RNG);
    float want[2][MN * K], got[MN * K];
    size_t whole = 0;
    const char *mbs[] = {"0", "1", "2", "3"};
    for (int k = 0; k < 4; k++) {
        setenv("DCL_EVAL_MICROBATCH", mbs[k], 1);
        dcl_model *m = make_model(be, DCL_FUSE_ALL, 1);
        CHECK(m != NULL, "microbatch %s: building the model: %s", bn, dcl_last_error());
        if (!m) continue;
        CHECK_OK(dcl_net_plan(m->net, MN, MH, MW, DCL_PLAN_EVAL));
        unsetenv("DCL_EVAL_MICROBATCH");
        for (int round = 0; round < 2; round++) {
            if (round == 1) scale_named(m->net, NULL, "bn1.weight", "blocks.0.0.conv_dw", 1.5f);   /* folded again */
            CHECK_OK(dcl_net_set_input(m->net, x));
            CHECK_OK(dcl_net_forward(m->net, NULL));
            CHECK_OK(dcl_net_value_to_host(m->net, m->logits, k ? got : want[round]));
            if (k) close_rel_max(round ? "microbatch: logits after a parameter change" : "microbatch: logits", got,
                                 want[round], MN * K, tol, tol / 10);
        }
        if (k == 0) {
            whole = dcl_net_arena_bytes(m->net);
        } else {
            int refused = 0;
            for (int v = 1; v < 60; v++)
                refused += dcl_net_value_to_host(m->net, v, buf) == DCL_ERR_ARG && strstr(dcl_last_error(), "a few samples at a time");
            CHECK(refused > 0, "microbatch %s on %s: no value of the prefix is kept for one micro-batch only", mbs[k], bn);
            CHECK(dcl_net_arena_bytes(m->net) < whole, "microbatch %s on %s: arena %zu not below the whole batch's %zu",
                  mbs[k], bn, dcl_net_arena_bytes(m->net), whole);
        }
        dcl_model_free(m);
    }
    free(x);
    free(buf);
}

int main(void) {
    dcl_rng_seed(&RNG, 12345);
    REF = dcl_backend_ref();
    CPU = dcl_backend_cpu(2);
    if (!CPU) { fprintf(stderr, "no cpu backend: %s\n", dcl_last_error()); return 1; }
    CHECK(CPU->bn_stats && CPU->bn_act_fwd && CPU->bn_act_bwd_reduce && CPU->bn_act_bwd_dx && CPU->bn_act_dot &&
          CPU->bn_act_se_sums && CPU->conv_fwd_act && CPU->conv_fwd_add, "the cpu backend fills the fused entries");
    CHECK(!REF->bn_stats && !REF->conv_fwd_act && !REF->conv_fwd_add, "the ref backend leaves them NULL (the executor falls back)");
    check_entries(CPU, "cpu", 1);
    /* the same with streaming stores forced on for every output */
    setenv("DCL_CPU_STREAM_MB", "0.0001", 1);
    dcl_backend *stream = dcl_backend_cpu(2);
    unsetenv("DCL_CPU_STREAM_MB");
    if (stream) {
        T = stream;
        TN = "cpu(stream)";
        for (int a = 0; a < 4; a++)
            for (int se = 0; se < 2; se++) { check_ops(3, 1000, 24, (dcl_act)a, se); check_ops(2, 50, 20, (dcl_act)a, se); }
        dcl_backend_destroy(stream);
    }
    /* the cuda backend's entries, when a GPU is present */
    dcl_backend *cuda = dcl_backend_create("cuda", 0);
    if (cuda) {
        check_entries(cuda, "cuda", 1);
        /* every device pointer 4 bytes off 16-byte alignment: no vector accesses */
        DEV_OFF = 1;
        T = cuda;
        TN = "cuda(unaligned)";
        int before = check_failed_;
        for (int a = 0; a < 4; a++)
            for (int se = 0; se < 2; se++) {
                check_ops(2, 50, 20, (dcl_act)a, se);
                check_ops(4, 49, 160, (dcl_act)a, se);
            }
        check_refusals();
        printf("cuda(unaligned): fused entries %s\n", check_failed_ == before ? "match ref" : "MISMATCHES");
        DEV_OFF = 0;
        if (!getenv("DCL_TEST_NO_TIMING")) time_cuda(cuda);
    } else {
        printf("cuda: skipped (no GPU): %s\n", dcl_last_error());
    }
    T = CPU;
    TN = "cpu";
    check_conv_fwd_act();
    check_pw_entries(CPU);
    {   /* on draws of its own: the network checks below keep their inputs */
        dcl_rng keep = RNG;
        dcl_rng_seed(&RNG, 777);
        check_bn_act_dw(CPU);
        RNG = keep;
    }
    size_t px = (size_t)HH * WW * 3;
    float *x = malloc(NB * px * sizeof(float));
    for (size_t i = 0; i < NB * px; i++) x[i] = (float)dcl_rng_normal(&RNG);
    check_eval_fold(x);
    check_train(CPU, "cpu", x);
    check_pw_plan(x);
    check_dw_plan(x);
    check_sw_plan(x);
    check_microbatch(CPU, "cpu", 1e-5);
    dcl_backend *cb16 = dcl_backend_create("cpu,bf16", 2);   /* activations in bf16: 2-byte slices */
    CHECK(cb16 != NULL, "cpu,bf16 backend: %s", dcl_last_error());
    if (cb16) check_microbatch(cb16, "cpu,bf16", 1e-5);
    dcl_backend_destroy(cb16);
    if (cuda) {
        int before = check_failed_;
        check_train(cuda, "cuda", x);
        printf("cuda: fused training plan %s the unfused one\n", check_failed_ == before ? "matches" : "DIFFERS FROM");
    }
    check_sync_bn();
    /* again with the pointwise backward fused (the batch norm's dx finished
     * in the convolution with the statistics of both halves) */
    setenv("DCL_CPU_PW_FUSED", "always", 1);
    check_sync_bn();
    unsetenv("DCL_CPU_PW_FUSED");
    free(x);
    if (cuda) dcl_backend_destroy(cuda);
    dcl_backend_destroy(CPU);
    CHECK_DONE();
}
