/* The bf16 activation-storage adapter (dcl_backend_bf16).
 *
 * 1. Conversions: known values (round to nearest even at ties, overflow to
 *    infinity, NaN stays NaN, signed zero) and agreement with
 *    dcl_f32_to_bf16 on four million random bit patterns.
 * 2. Every wrapped entry, on "ref" and on "cpu" (and "cuda" when a GPU is
 *    present and its backend converts): the inner backend's fp32 entry run on
 *    the widened bf16 inputs, its [A] outputs rounded, is the expected
 *    result; the adapter's [A] and [P] outputs must match it bit for bit
 *    (same inner backend, same values, same fp32 arithmetic; on a device
 *    backend, whose reductions may change order between calls, within one
 *    bf16 step and fp32 summation noise).  Buffers have
 *    sentinels on both sides, inputs must come back unchanged and outputs are
 *    pre-filled with different garbage in the two runs (every element must be
 *    written).  Covers aliasing (add's y == a / y == b, in-place activation,
 *    bn_act_bwd_dx's d == dx), conv_fwd_add's accumulation, NULL arguments
 *    and accumulating parameter gradients.
 * 3. Construction: act_bytes, name, dcl_backend_base, wrapping twice,
 *    NULL; a mock backend checks the ownership of inner, the refusal of a
 *    device backend without conversions, the [P]-only entries reaching the
 *    inner backend with its own handle, error propagation, temporaries in
 *    the inner backend's memory (allocation failure gives DCL_ERR_NOMEM, all
 *    freed on destroy), mem_copy, and concurrent calls from two threads.
 * 4. Precision: conv_fwd through the adapter against pure fp32.
 */
#include "check.h"
#include "dcl/core.h"
#include "dcl/io.h"
#include "backend/backend.h"
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The argument tables below give only the fields that matter (flags, size,
 * and where needed the input range and aliasing); the rest are zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static dcl_rng RNG;
static const char *TGT = "";

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static float rbf(float f) { return dcl_bf16_to_f32(dcl_f32_to_bf16(f)); }
static float urand(float lo, float hi) { return lo + (hi - lo) * (float)dcl_rng_uniform(&RNG); }

/* ------------------------------------------------- backend memory helpers */

static void *bmalloc(dcl_backend *be, size_t bytes) {
    void *p = be->mem_alloc ? be->mem_alloc(be, bytes) : dcl_alloc(bytes);
    if (!p) { fprintf(stderr, "allocation of %zu bytes on %s failed\n", bytes, be->name); exit(2); }
    return p;
}
static void bfree(dcl_backend *be, void *p) {
    if (be->mem_free) be->mem_free(be, p);
    else dcl_free(p);
}
static void bput(dcl_backend *be, void *d, const void *h, size_t bytes) {
    if (be->to_device) { if (be->to_device(be, d, h, bytes) != DCL_OK) { fprintf(stderr, "to_device failed\n"); exit(2); } }
    else memcpy(d, h, bytes);
}
static void bget(dcl_backend *be, void *h, const void *d, size_t bytes) {
    if (be->sync) be->sync(be);
    if (be->to_host) { if (be->to_host(be, h, d, bytes) != DCL_OK) { fprintf(stderr, "to_host failed\n"); exit(2); } }
    else memcpy(h, d, bytes);
}

/* ------------------------------------------------------- 1. conversions */

static void test_conversions(dcl_backend *ad) {
    static const struct { uint32_t f; uint16_t h; } known[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 */
        {0xc0200000u, 0xc020}, /* -2.5 */
        {0x3f808000u, 0x3f80}, /* tie, even stays */
        {0x3f818000u, 0x3f82}, /* tie, odd rounds up */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x3f807fffu, 0x3f80}, /* below the tie */
        {0xbf818000u, 0xbf82}, /* negative tie rounds away from zero to even */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds up to +inf */
        {0xff7fffffu, 0xff80}, /* -FLT_MAX to -inf */
        {0x7f7f8000u, 0x7f80}, /* tie at the top, odd: to inf */
        {0x7f800000u, 0x7f80}, /* +inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7fc00000u, 0x7fc0}, /* quiet NaN */
        {0x7f800001u, 0x7fc0}, /* signalling NaN with a low payload: still NaN */
        {0xff800001u, 0xffc0}, /* negative NaN keeps its sign */
        {0x7fa12345u, 0x7fe1}, /* NaN payload's upper bits kept, quiet bit set */
        {0x00000000u, 0x0000}, /* +0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x00008000u, 0x0000}, /* subnormal tie to even (0) */
        {0x00018000u, 0x0002}, /* subnormal tie to even (2) */
        {0x807fffffu, 0x8080}, /* largest negative subnormal rounds to -FLT_MIN */
    };
    const int nk = (int)(sizeof known / sizeof *known);
    float src[64];
    uint16_t dst[64];
    for (int i = 0; i < nk; i++) src[i] = bitsf(known[i].f);
    float *ds = bmalloc(ad, sizeof src);
    uint16_t *dd = bmalloc(ad, sizeof dst);
    bput(ad, ds, src, sizeof src);
    CHECK_OK(ad->cvt_f32_bf16(ad, nk, dd, ds));
    bget(ad, dst, dd, sizeof dst);
    for (int i = 0; i < nk; i++) {
        CHECK(dst[i] == known[i].h, "%s cvt_f32_bf16(0x%08x) = 0x%04x, want 0x%04x", TGT, known[i].f, dst[i], known[i].h);
        CHECK(dcl_f32_to_bf16(src[i]) == known[i].h, "dcl_f32_to_bf16(0x%08x) = 0x%04x, want 0x%04x", known[i].f,
              dcl_f32_to_bf16(src[i]), known[i].h);
    }
    /* n == 0 does nothing; a negative count is an error */
    CHECK_OK(ad->cvt_f32_bf16(ad, 0, dd, ds));
    CHECK(ad->cvt_f32_bf16(ad, -1, dd, ds) == DCL_ERR_ARG, "%s negative count accepted", TGT);
    CHECK(ad->cvt_bf16_f32(ad, -1, ds, dd) == DCL_ERR_ARG, "%s negative count accepted", TGT);
    bfree(ad, ds);
    bfree(ad, dd);

    /* widening: all 65536 patterns, exact (NaNs stay NaN) */
    {
        const int64_t n = 65536;
        uint16_t *h = malloc(n * 2);
        float *f = malloc(n * 4);
        for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)i;
        uint16_t *dh = bmalloc(ad, n * 2);
        float *df = bmalloc(ad, n * 4);
        bput(ad, dh, h, n * 2);
        CHECK_OK(ad->cvt_bf16_f32(ad, n, df, dh));
        bget(ad, f, df, n * 4);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t w = (uint32_t)i << 16;
            if (isnan(bitsf(w)) ? !isnan(f[i]) : fbits(f[i]) != w) bad++;
        }
        CHECK(bad == 0, "%s cvt_bf16_f32: %lld of 65536 patterns not widened exactly", TGT, (long long)bad);
        /* and back: every widened value rounds to itself */
        CHECK_OK(ad->cvt_f32_bf16(ad, n, dh, df));
        uint16_t *h2 = malloc(n * 2);
        bget(ad, h2, dh, n * 2);
        bad = 0;
        for (int64_t i = 0; i < n; i++)
            if (isnan(bitsf((uint32_t)i << 16)) ? (h2[i] & 0x7fff) <= 0x7f80 : h2[i] != h[i]) bad++;
        CHECK(bad == 0, "%s bf16 -> f32 -> bf16 changed %lld of 65536 patterns", TGT, (long long)bad);
        free(h); free(h2); free(f);
        bfree(ad, dh); bfree(ad, df);
    }

    /* rounding: four million random bit patterns (all exponents, NaNs and
     * infinities included), against dcl_f32_to_bf16 */
    {
        const int64_t n = (int64_t)1 << 22;
        uint32_t *u = malloc(n * 4);
        uint16_t *h = malloc(n * 2);
        for (int64_t i = 0; i < n; i++) u[i] = dcl_rng_u32(&RNG);
        for (int64_t i = 0; i < 64; i++) u[i] = (u[i] & 0xffff0000u) | 0x8000u;   /* ties */
        float *df = bmalloc(ad, n * 4);
        uint16_t *dh = bmalloc(ad, n * 2);
        bput(ad, df, u, n * 4);
        CHECK_OK(ad->cvt_f32_bf16(ad, n, dh, df));
        bget(ad, h, dh, n * 2);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (h[i] != dcl_f32_to_bf16(bitsf(u[i]))) { if (first < 0) first = i; bad++; }
        CHECK(bad == 0, "%s cvt_f32_bf16 differs from dcl_f32_to_bf16 on %lld of %lld patterns (first 0x%08x -> 0x%04x)",
              TGT, (long long)bad, (long long)n, first >= 0 ? u[first] : 0, first >= 0 ? h[first] : 0);
        free(u); free(h);
        bfree(ad, df); bfree(ad, dh);
    }
}

/* ------------------------------------------- 2. every entry, bit for bit */

enum { IN = 1, OUT = 2, ACT = 4, NUL = 8 };
/* One argument of an entry: flags, element count, range of random inputs,
 * al = 1 + the index of the argument whose pointer it shares (0: own). */
typedef struct targ { int f; int64_t n; float lo, hi; int al; } targ;

typedef struct cx {
    dcl_conv_desc cd;
    dcl_pool_desc pd;
    int64_t M, Mt;
    int C, N, HW, K, O, per_row;
    dcl_act act;
    float eps, scale;
} cx;
typedef dcl_status (*runfn)(dcl_backend *be, void **p, const cx *c);

#define PADF 16          /* 64 bytes of sentinels on each side */
#define PADH 32
static const float SENT = -7777.25f;
static const uint16_t SENTH = 0x7bad;
static const float GARB_E = 12345.5f;    /* output garbage, expected run */
static const float GARB_A = -999.0f;     /* output garbage, adapter run (a different bf16 value) */
/* Host backends compute the same way on every call: outputs must match bit
 * for bit.  A device backend may reduce in a different order from one call
 * to the next (atomics, cuDNN algorithms): outputs there may differ by one
 * bf16 step ([A]) or by fp32 summation noise ([P]). */
static int EXACT = 1;
static int bf_ord(uint16_t h) { return (h & 0x8000) ? -(int)(h & 0x7fff) : (int)h; }
static int same_a(uint16_t got, uint16_t want) {
    return got == want || (!EXACT && abs(bf_ord(got) - bf_ord(want)) <= 1);
}
static int same_p(float got, float want, double scale) {
    return fbits(got) == fbits(want) || (!EXACT && fabs((double)got - want) <= 1e-5 * (scale + fabs(want)));
}

static void run_case(dcl_backend *ad, const char *what, const targ *a, int na, runfn fn, const cx *c) {
    dcl_backend *in = ad->inner;
    int flags[16];
    float *h[16] = {0}, *e32[16] = {0};
    void *pe[16] = {0}, *pa[16] = {0};
    size_t bytes[16] = {0};
    /* roles of each buffer: the union over the arguments sharing it */
    for (int i = 0; i < na; i++) flags[i] = a[i].al ? 0 : a[i].f;
    for (int i = 0; i < na; i++)
        if (a[i].al) flags[a[i].al - 1] |= a[i].f & (IN | OUT);
    /* host data */
    for (int i = 0; i < na; i++) {
        if (a[i].al || (a[i].f & NUL)) continue;
        int64_t n = a[i].n;
        h[i] = malloc(sizeof(float) * (n ? n : 1));
        float lo = a[i].lo, hi = a[i].hi;
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        for (int64_t k = 0; k < n; k++) {
            float v = urand(lo, hi);
            if (flags[i] & ACT) v = rbf(v);
            h[i][k] = (flags[i] & IN) ? v : GARB_E;
        }
    }
    /* expected: inner entry on fp32 buffers */
    for (int i = 0; i < na; i++) {
        if (a[i].al || (a[i].f & NUL)) continue;
        bytes[i] = sizeof(float) * (size_t)a[i].n;
        pe[i] = bmalloc(in, bytes[i] ? bytes[i] : 4);
        bput(in, pe[i], h[i], bytes[i]);
    }
    for (int i = 0; i < na; i++)
        if (a[i].al) pe[i] = pe[a[i].al - 1];
    dcl_status s = fn(in, pe, c);
    CHECK(s == DCL_OK, "%s %s: inner entry failed: %s", TGT, what, dcl_last_error());
    for (int i = 0; i < na; i++) {
        if (!pe[i] || a[i].al || !(flags[i] & OUT)) continue;
        e32[i] = malloc(bytes[i] ? bytes[i] : 4);
        bget(in, e32[i], pe[i], bytes[i]);
    }
    /* adapter: [A] buffers as bf16 with sentinels, [P] as fp32 with sentinels */
    size_t abytes[16] = {0};
    void *hbuf[16] = {0};
    for (int i = 0; i < na; i++) {
        if (a[i].al || (a[i].f & NUL)) continue;
        int64_t n = a[i].n;
        if (flags[i] & ACT) {
            uint16_t *b = malloc(sizeof(uint16_t) * (n + 2 * PADH));
            for (int64_t k = 0; k < n + 2 * PADH; k++) b[k] = SENTH;
            for (int64_t k = 0; k < n; k++)
                b[PADH + k] = (flags[i] & IN) ? dcl_f32_to_bf16(h[i][k]) : dcl_f32_to_bf16(GARB_A);
            hbuf[i] = b;
            abytes[i] = sizeof(uint16_t) * (n + 2 * PADH);
        } else {
            float *b = malloc(sizeof(float) * (n + 2 * PADF));
            for (int64_t k = 0; k < n + 2 * PADF; k++) b[k] = SENT;
            for (int64_t k = 0; k < n; k++) b[PADF + k] = (flags[i] & IN) ? h[i][k] : GARB_A;
            hbuf[i] = b;
            abytes[i] = sizeof(float) * (n + 2 * PADF);
        }
        void *d = bmalloc(ad, abytes[i]);
        bput(ad, d, hbuf[i], abytes[i]);
        pa[i] = (flags[i] & ACT) ? (void *)((uint16_t *)d + PADH) : (void *)((float *)d + PADF);
    }
    for (int i = 0; i < na; i++)
        if (a[i].al) pa[i] = pa[a[i].al - 1];
    s = fn(ad, pa, c);
    CHECK(s == DCL_OK, "%s %s: adapter entry failed: %s", TGT, what, dcl_last_error());
    for (int i = 0; i < na; i++) {
        if (!pa[i] || a[i].al) continue;
        int64_t n = a[i].n;
        const int act = flags[i] & ACT;
        void *base = act ? (void *)((uint16_t *)pa[i] - PADH) : (void *)((float *)pa[i] - PADF);
        void *got = malloc(abytes[i]);
        bget(ad, got, base, abytes[i]);
        int64_t bad = 0, first = -1, sent = 0;
        if (act) {
            const uint16_t *g = got, *orig = hbuf[i];
            for (int k = 0; k < PADH; k++) sent += (g[k] != SENTH) + (g[PADH + n + k] != SENTH);
            for (int64_t k = 0; k < n; k++) {
                uint16_t want = (flags[i] & OUT) ? dcl_f32_to_bf16(e32[i][k]) : orig[PADH + k];
                if ((flags[i] & OUT) ? !same_a(g[PADH + k], want) : g[PADH + k] != want) { if (first < 0) first = k; bad++; }
            }
            if (bad)
                fprintf(stderr, "  arg %d [A]: element %lld: got %g (0x%04x) want %g\n", i, (long long)first,
                        dcl_bf16_to_f32(g[PADH + first]), g[PADH + first],
                        (flags[i] & OUT) ? rbf(e32[i][first]) : dcl_bf16_to_f32(orig[PADH + first]));
        } else {
            const float *g = got, *orig = hbuf[i];
            double scale = 1;
            for (int64_t k = 0; (flags[i] & OUT) && k < n; k++) scale = fmax(scale, fabs(e32[i][k]));
            for (int k = 0; k < PADF; k++) sent += (fbits(g[k]) != fbits(SENT)) + (fbits(g[PADF + n + k]) != fbits(SENT));
            for (int64_t k = 0; k < n; k++) {
                float want = (flags[i] & OUT) ? e32[i][k] : orig[PADF + k];
                if ((flags[i] & OUT) ? !same_p(g[PADF + k], want, scale) : fbits(g[PADF + k]) != fbits(want)) {
                    if (first < 0) first = k;
                    bad++;
                }
            }
            if (bad)
                fprintf(stderr, "  arg %d [P]: element %lld: got %.9g want %.9g\n", i, (long long)first,
                        g[PADF + first], (flags[i] & OUT) ? e32[i][first] : orig[PADF + first]);
        }
        CHECK(sent == 0, "%s %s: arg %d: %lld sentinels overwritten", TGT, what, i, (long long)sent);
        CHECK(bad == 0, "%s %s: arg %d (%s, %s): %lld of %lld elements differ", TGT, what, i,
              act ? "[A]" : "[P]", (flags[i] & OUT) ? "output" : "input, must stay unchanged",
              (long long)bad, (long long)n);
        free(got);
        bfree(ad, base);
    }
    for (int i = 0; i < na; i++) {
        if (a[i].al) continue;
        if (pe[i]) bfree(in, pe[i]);
        free(h[i]); free(e32[i]); free(hbuf[i]);
    }
}

/* runs the case when the inner backend has the entry; an entry it lacks
 * must be NULL in the adapter too (reported once per backend) */
static int have(dcl_backend *ad, const void *inner_fn, const void *ad_fn, const char *entry) {
    static const char *printed[64];
    static int nprinted;
    static const dcl_backend *printed_for;
    CHECK((inner_fn != NULL) == (ad_fn != NULL), "%s %s: adapter entry present=%d, inner's present=%d", TGT, entry,
          ad_fn != NULL, inner_fn != NULL);
    if (inner_fn) return 1;
    if (printed_for != ad) { printed_for = ad; nprinted = 0; }
    for (int i = 0; i < nprinted; i++)
        if (strcmp(printed[i], entry) == 0) return 0;
    if (nprinted < 64) printed[nprinted++] = entry;
    printf("  %s: %s not provided by the inner backend, skipped\n", TGT, entry);
    return 0;
}
#define NA(a) ((int)(sizeof(a) / sizeof *(a)))
#define CASE(ad, entry, what, a, fn, c) do { if (have(ad, (const void *)(ad)->inner->entry, (const void *)(ad)->entry, #entry)) \
    run_case(ad, what, a, NA(a), fn, c); } while (0)

/* ---- entry runners: p[] in the order of the case's targ array ---- */
static dcl_status r_conv_fwd(dcl_backend *be, void **p, const cx *c) { return be->conv_fwd(be, &c->cd, p[0], p[1], p[2], p[3]); }
static dcl_status r_conv_bwd_data(dcl_backend *be, void **p, const cx *c) { return be->conv_bwd_data(be, &c->cd, p[0], p[1], p[2]); }
static dcl_status r_conv_bwd_weights(dcl_backend *be, void **p, const cx *c) {
    return be->conv_bwd_weights(be, &c->cd, p[0], p[1], p[2], p[3]);
}
static dcl_status r_conv_fwd_act(dcl_backend *be, void **p, const cx *c) {
    return be->conv_fwd_act(be, &c->cd, c->act, p[0], p[1], p[2], p[3]);
}
static dcl_status r_conv_fwd_add(dcl_backend *be, void **p, const cx *c) { return be->conv_fwd_add(be, &c->cd, p[0], p[1], p[2], p[3]); }
static dcl_status r_bn_fwd_train(dcl_backend *be, void **p, const cx *c) {
    return be->bn_fwd_train(be, c->M, c->C, p[0], p[1], p[2], p[3], p[4], p[5], p[6], c->eps);
}
static dcl_status r_bn_fwd_infer(dcl_backend *be, void **p, const cx *c) {
    return be->bn_fwd_infer(be, c->M, c->C, p[0], p[1], p[2], p[3], p[4], p[5], c->eps);
}
static dcl_status r_bn_bwd(dcl_backend *be, void **p, const cx *c) {
    return be->bn_bwd(be, c->M, c->C, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
}
static dcl_status r_bn_stats(dcl_backend *be, void **p, const cx *c) {
    return be->bn_stats(be, c->M, c->C, p[0], p[1], p[2], p[3], c->eps);
}
static dcl_status r_act_fwd(dcl_backend *be, void **p, const cx *c) { return be->act_fwd(be, c->act, c->M, p[0], p[1]); }
static dcl_status r_act_bwd(dcl_backend *be, void **p, const cx *c) { return be->act_bwd(be, c->act, c->M, p[0], p[1], p[2], p[3]); }
static dcl_status r_prelu_fwd(dcl_backend *be, void **p, const cx *c) { return be->prelu_fwd(be, c->M, c->C, p[0], p[1], p[2]); }
static dcl_status r_prelu_bwd(dcl_backend *be, void **p, const cx *c) {
    return be->prelu_bwd(be, c->M, c->C, p[0], p[1], p[2], p[3], p[4]);
}
static dcl_status r_pool_fwd(dcl_backend *be, void **p, const cx *c) { return be->pool_fwd(be, &c->pd, p[0], p[1]); }
static dcl_status r_pool_bwd(dcl_backend *be, void **p, const cx *c) { return be->pool_bwd(be, &c->pd, p[0], p[1], p[2], p[3]); }
static dcl_status r_gap_fwd(dcl_backend *be, void **p, const cx *c) { return be->gap_fwd(be, c->N, c->HW, c->C, p[0], p[1]); }
static dcl_status r_gap_bwd(dcl_backend *be, void **p, const cx *c) { return be->gap_bwd(be, c->N, c->HW, c->C, p[0], p[1]); }
static dcl_status r_linear_fwd(dcl_backend *be, void **p, const cx *c) {
    return be->linear_fwd(be, (int)c->M, c->K, c->O, p[0], p[1], p[2], p[3]);
}
static dcl_status r_linear_bwd(dcl_backend *be, void **p, const cx *c) {
    return be->linear_bwd(be, (int)c->M, c->K, c->O, p[0], p[1], p[2], p[3], p[4], p[5]);
}
static dcl_status r_mul_bcast_fwd(dcl_backend *be, void **p, const cx *c) {
    return be->mul_bcast_fwd(be, c->N, c->HW, c->C, p[0], p[1], p[2]);
}
static dcl_status r_mul_bcast_bwd(dcl_backend *be, void **p, const cx *c) {
    return be->mul_bcast_bwd(be, c->N, c->HW, c->C, p[0], p[1], p[2], p[3], p[4]);
}
static dcl_status r_add(dcl_backend *be, void **p, const cx *c) { return be->add(be, c->M, p[0], p[1], p[2]); }
static dcl_status r_scale_mask(dcl_backend *be, void **p, const cx *c) {
    return be->scale_mask(be, c->M, c->K, p[0], p[1], p[2], c->per_row, c->scale);
}
static dcl_status r_bn_act_fwd(dcl_backend *be, void **p, const cx *c) {
    return be->bn_act_fwd(be, c->N, c->HW, c->C, c->act, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
}
static dcl_status r_bn_act_bwd_reduce(dcl_backend *be, void **p, const cx *c) {
    return be->bn_act_bwd_reduce(be, c->N, c->HW, c->C, c->act, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
                                 p[8], p[9], p[10], p[11], p[12]);
}
static dcl_status r_bn_act_bwd_dx(dcl_backend *be, void **p, const cx *c) {
    return be->bn_act_bwd_dx(be, c->N, c->HW, c->C, c->act, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                             p[9], p[10], p[11], c->Mt);
}
static dcl_status r_bn_act_dot(dcl_backend *be, void **p, const cx *c) {
    return be->bn_act_dot(be, c->N, c->HW, c->C, c->act, p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
}
static dcl_status r_bn_act_se_sums(dcl_backend *be, void **p, const cx *c) {
    return be->bn_act_se_sums(be, c->N, c->HW, c->C, c->act, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
}

static const char *act_name(dcl_act a) {
    return a == DCL_ACT_RELU ? "relu" : a == DCL_ACT_SILU ? "silu" : a == DCL_ACT_SIGMOID ? "sigmoid" : "none";
}

static void test_conv(dcl_backend *ad, dcl_conv_desc d, const char *nm) {
    if (dcl_conv_desc_finish(&d) != DCL_OK) { CHECK(0, "bad conv desc %s", nm); return; }
    if (ad->inner->supports && !ad->inner->supports(ad->inner, DCL_OP_CONV, &d)) {
        printf("  %s: conv %s not supported, skipped\n", TGT, nm);
        return;
    }
    CHECK(ad->supports(ad, DCL_OP_CONV, &d), "%s: adapter refuses a conv its inner backend supports", TGT);
    cx c = {.cd = d};
    int64_t nx = (int64_t)d.n * d.hi * d.wi * d.ci, ny = (int64_t)d.n * d.ho * d.wo * d.co;
    int64_t nw = (int64_t)d.co * (d.ci / d.groups) * d.kh * d.kw, nb = d.co;
    const int bf = d.has_bias ? IN : NUL;
    char w[96];
    {
        targ a[] = {{ACT | OUT, ny}, {ACT | IN, nx}, {IN, nw}, {bf, nb}};
        snprintf(w, sizeof w, "conv_fwd %s", nm);
        CASE(ad, conv_fwd, w, a, r_conv_fwd, &c);
    }
    {
        targ a[] = {{ACT | OUT, nx}, {ACT | IN, ny}, {IN, nw}};
        snprintf(w, sizeof w, "conv_bwd_data %s", nm);
        CASE(ad, conv_bwd_data, w, a, r_conv_bwd_data, &c);
    }
    {   /* dw, db accumulate onto non-zero values */
        targ a[] = {{IN | OUT, nw}, {d.has_bias ? IN | OUT : NUL, nb}, {ACT | IN, ny}, {ACT | IN, nx}};
        snprintf(w, sizeof w, "conv_bwd_weights %s", nm);
        CASE(ad, conv_bwd_weights, w, a, r_conv_bwd_weights, &c);
    }
    static const dcl_act acts[] = {DCL_ACT_SILU, DCL_ACT_RELU, DCL_ACT_NONE};
    for (int k = 0; k < 3; k++) {
        c.act = acts[k];
        targ a[] = {{ACT | OUT, ny}, {ACT | IN, nx}, {IN, nw}, {bf, nb}};
        snprintf(w, sizeof w, "conv_fwd_act %s %s", act_name(acts[k]), nm);
        CASE(ad, conv_fwd_act, w, a, r_conv_fwd_act, &c);
    }
    {   /* y += conv(x) + b: y read and written */
        targ a[] = {{ACT | IN | OUT, ny}, {ACT | IN, nx}, {IN, nw}, {bf, nb}};
        snprintf(w, sizeof w, "conv_fwd_add %s", nm);
        CASE(ad, conv_fwd_add, w, a, r_conv_fwd_add, &c);
    }
}

static void test_bn(dcl_backend *ad) {
    cx c = {.M = 37, .C = 6, .eps = 1e-3f};
    int64_t n = c.M * c.C, C = c.C;
    {
        targ a[] = {{ACT | OUT, n}, {OUT, C}, {OUT, C}, {OUT, C}, {ACT | IN, n, -2, 3}, {IN, C, 0.5f, 1.5f}, {IN, C}};
        CASE(ad, bn_fwd_train, "bn_fwd_train", a, r_bn_fwd_train, &c);
    }
    {
        targ a[] = {{ACT | OUT, n}, {ACT | IN, n, -2, 3}, {IN, C, 0.5f, 1.5f}, {IN, C}, {IN, C}, {IN, C, 0.2f, 2}};
        CASE(ad, bn_fwd_infer, "bn_fwd_infer", a, r_bn_fwd_infer, &c);
    }
    {   /* dgamma, dbeta accumulate */
        targ a[] = {{ACT | OUT, n}, {IN | OUT, C}, {IN | OUT, C}, {ACT | IN, n}, {ACT | IN, n, -2, 3},
                    {IN, C, 0, 1}, {IN, C, 0.5f, 2}, {IN, C, 0.5f, 1.5f}};
        CASE(ad, bn_bwd, "bn_bwd", a, r_bn_bwd, &c);
    }
    {
        targ a[] = {{OUT, C}, {OUT, C}, {OUT, C}, {ACT | IN, n, -2, 3}};
        CASE(ad, bn_stats, "bn_stats", a, r_bn_stats, &c);
    }
}

static void test_act(dcl_backend *ad) {
    static const dcl_act acts[] = {DCL_ACT_NONE, DCL_ACT_RELU, DCL_ACT_SILU, DCL_ACT_SIGMOID};
    char w[96];
    for (int k = 0; k < 4; k++) {
        cx c = {.M = 1003, .act = acts[k]};
        int64_t n = c.M;
        {
            targ a[] = {{ACT | OUT, n}, {ACT | IN, n, -4, 4}};
            snprintf(w, sizeof w, "act_fwd %s", act_name(acts[k]));
            CASE(ad, act_fwd, w, a, r_act_fwd, &c);
        }
        {   /* in place: y == x */
            targ a[] = {{ACT | OUT, n, 0, 0, 2}, {ACT | IN, n, -4, 4}};
            snprintf(w, sizeof w, "act_fwd %s in place", act_name(acts[k]));
            CASE(ad, act_fwd, w, a, r_act_fwd, &c);
        }
        /* act_bwd with x and y, x only, y only (as far as the activation allows) */
        for (int v = 0; v < 3; v++) {
            int xf = ACT | IN, yf = ACT | IN;
            if (v == 1) yf = NUL;
            if (v == 2) xf = NUL;
            if (v == 1 && acts[k] == DCL_ACT_NONE) continue;
            if (v == 2 && acts[k] == DCL_ACT_SILU) continue;   /* silu needs x */
            targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {xf, n, -4, 4}, {yf, n, 0.01f, 0.99f}};
            snprintf(w, sizeof w, "act_bwd %s %s", act_name(acts[k]), v == 0 ? "x,y" : v == 1 ? "x only" : "y only");
            CASE(ad, act_bwd, w, a, r_act_bwd, &c);
        }
    }
    cx c = {.M = 40, .C = 5};
    int64_t n = c.M * c.C;
    {
        targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {IN, c.C, 0, 0.5f}};
        CASE(ad, prelu_fwd, "prelu_fwd", a, r_prelu_fwd, &c);
    }
    {
        targ a[] = {{ACT | OUT, n}, {IN | OUT, c.C}, {ACT | IN, n}, {ACT | IN, n}, {IN, c.C, 0, 0.5f}};
        CASE(ad, prelu_bwd, "prelu_bwd", a, r_prelu_bwd, &c);
    }
}

static void test_pool(dcl_backend *ad) {
    dcl_pool_desc ds[2] = {
        {.n = 2, .c = 4, .hi = 9, .wi = 8, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pt = 1, .pb = 1, .pl = 1, .pr = 1,
         .kind = DCL_POOL_MAX},
        {.n = 2, .c = 3, .hi = 7, .wi = 7, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .ceil_mode = 1,
         .count_include_pad = 0, .kind = DCL_POOL_AVG},
    };
    char w[96];
    for (int k = 0; k < 2; k++) {
        dcl_pool_desc d = ds[k];
        CHECK_OK(dcl_pool_desc_finish(&d));
        const char *nm = k ? "avg" : "max";
        if (ad->inner->supports && !ad->inner->supports(ad->inner, DCL_OP_POOL, &d)) continue;
        cx c = {.pd = d};
        int64_t nx = (int64_t)d.n * d.hi * d.wi * d.c, ny = (int64_t)d.n * d.ho * d.wo * d.c;
        {
            targ a[] = {{ACT | OUT, ny}, {ACT | IN, nx}};
            snprintf(w, sizeof w, "pool_fwd %s", nm);
            CASE(ad, pool_fwd, w, a, r_pool_fwd, &c);
        }
        {
            targ a[] = {{ACT | OUT, nx}, {ACT | IN, ny}, {ACT | IN, nx}, {ACT | IN, ny}};
            snprintf(w, sizeof w, "pool_bwd %s", nm);
            CASE(ad, pool_bwd, w, a, r_pool_bwd, &c);
        }
        if (d.kind == DCL_POOL_AVG) {   /* average pooling reads neither x nor y */
            targ a[] = {{ACT | OUT, nx}, {ACT | IN, ny}, {NUL, nx}, {NUL, ny}};
            CASE(ad, pool_bwd, "pool_bwd avg, x and y NULL", a, r_pool_bwd, &c);
        }
    }
}

static void test_misc(dcl_backend *ad) {
    {
        cx c = {.N = 3, .HW = 10, .C = 7};
        int64_t n = (int64_t)c.N * c.HW * c.C, nc = (int64_t)c.N * c.C;
        targ a[] = {{ACT | OUT, nc}, {ACT | IN, n}};
        CASE(ad, gap_fwd, "gap_fwd", a, r_gap_fwd, &c);
        targ b[] = {{ACT | OUT, n}, {ACT | IN, nc}};
        CASE(ad, gap_bwd, "gap_bwd", b, r_gap_bwd, &c);
    }
    {
        cx c = {.M = 5, .K = 12, .O = 7};
        int64_t nx = c.M * c.K, ny = c.M * c.O, nw = (int64_t)c.O * c.K;
        targ a[] = {{ACT | OUT, ny}, {ACT | IN, nx}, {IN, nw}, {IN, c.O}};
        CASE(ad, linear_fwd, "linear_fwd", a, r_linear_fwd, &c);
        targ a2[] = {{ACT | OUT, ny}, {ACT | IN, nx}, {IN, nw}, {NUL, c.O}};
        CASE(ad, linear_fwd, "linear_fwd without bias", a2, r_linear_fwd, &c);
        targ b[] = {{ACT | OUT, nx}, {IN | OUT, nw}, {IN | OUT, c.O}, {ACT | IN, ny}, {ACT | IN, nx}, {IN, nw}};
        CASE(ad, linear_bwd, "linear_bwd", b, r_linear_bwd, &c);
        targ b2[] = {{NUL, nx}, {IN | OUT, nw}, {NUL, c.O}, {ACT | IN, ny}, {ACT | IN, nx}, {IN, nw}};
        CASE(ad, linear_bwd, "linear_bwd dx and db NULL", b2, r_linear_bwd, &c);
    }
    {
        cx c = {.N = 2, .HW = 9, .C = 6};
        int64_t n = (int64_t)c.N * c.HW * c.C, nc = (int64_t)c.N * c.C;
        targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {ACT | IN, nc, 0, 1}};
        CASE(ad, mul_bcast_fwd, "mul_bcast_fwd", a, r_mul_bcast_fwd, &c);
        targ b[] = {{ACT | OUT, n}, {ACT | OUT, nc}, {ACT | IN, n}, {ACT | IN, n}, {ACT | IN, nc, 0, 1}};
        CASE(ad, mul_bcast_bwd, "mul_bcast_bwd", b, r_mul_bcast_bwd, &c);
    }
    {
        cx c = {.M = 1001};
        int64_t n = c.M;
        targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {ACT | IN, n}};
        CASE(ad, add, "add", a, r_add, &c);
        targ ya[] = {{ACT | OUT, n, 0, 0, 2}, {ACT | IN, n}, {ACT | IN, n}};
        CASE(ad, add, "add y == a", ya, r_add, &c);
        targ yb[] = {{ACT | OUT, n, 0, 0, 3}, {ACT | IN, n}, {ACT | IN, n}};
        CASE(ad, add, "add y == b", yb, r_add, &c);
        targ yab[] = {{ACT | OUT, n, 0, 0, 2}, {ACT | IN, n}, {ACT | IN, n, 0, 0, 2}};
        CASE(ad, add, "add y == a == b", yab, r_add, &c);
    }
    for (int pr = 0; pr < 2; pr++) {
        cx c = {.M = 6, .K = 50, .per_row = pr, .scale = 1.25f};
        int64_t n = c.M * c.K;
        targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {IN, pr ? c.M : n, 0, 1}};
        CASE(ad, scale_mask, pr ? "scale_mask per row" : "scale_mask", a, r_scale_mask, &c);
    }
}

static void test_fused(dcl_backend *ad, int C) {
    static const dcl_act acts[] = {DCL_ACT_SILU, DCL_ACT_RELU, DCL_ACT_SIGMOID, DCL_ACT_NONE};
    char w[128];
    for (int k = 0; k < 4; k++) {
        cx c = {.N = 2, .HW = 12, .C = C, .act = acts[k], .eps = 1e-3f};
        c.Mt = (int64_t)c.N * c.HW;
        c.M = c.Mt;
        const int64_t n = (int64_t)c.N * c.HW * c.C, nc = (int64_t)c.N * c.C;
        const char *an = act_name(acts[k]);
        /* statistics (P): mean, invstd > 0, gamma, beta */
#define STATS {IN, C, -0.5f, 0.5f}, {IN, C, 0.5f, 2}, {IN, C, 0.5f, 1.5f}, {IN, C, -0.5f, 0.5f}
        if (k == 0) {
            targ a[] = {{OUT, C}, {OUT, C}, {OUT, C}, {ACT | IN, n, -2, 3}};
            snprintf(w, sizeof w, "bn_stats C=%d", C);
            CASE(ad, bn_stats, w, a, r_bn_stats, &c);
        }
        {   /* y, gmean and s */
            targ a[] = {{ACT | OUT, n}, {ACT | OUT, nc}, {ACT | IN, n, -2, 2}, STATS, {ACT | IN, nc, 0, 1}};
            snprintf(w, sizeof w, "bn_act_fwd %s C=%d", an, C);
            CASE(ad, bn_act_fwd, w, a, r_bn_act_fwd, &c);
        }
        {   /* s NULL and gmean NULL */
            targ a[] = {{ACT | OUT, n}, {NUL, nc}, {ACT | IN, n, -2, 2}, STATS, {NUL, nc}};
            snprintf(w, sizeof w, "bn_act_fwd %s s,gmean NULL C=%d", an, C);
            CASE(ad, bn_act_fwd, w, a, r_bn_act_fwd, &c);
        }
        {   /* y NULL: gmean only */
            targ a[] = {{NUL, n}, {ACT | OUT, nc}, {ACT | IN, n, -2, 2}, STATS, {NUL, nc}};
            snprintf(w, sizeof w, "bn_act_fwd %s gmean only C=%d", an, C);
            CASE(ad, bn_act_fwd, w, a, r_bn_act_fwd, &c);
        }
        {   /* no normalisation */
            targ a[] = {{ACT | OUT, n}, {ACT | OUT, nc}, {ACT | IN, n, -2, 2}, {NUL, C}, {NUL, C}, {NUL, C}, {NUL, C},
                        {ACT | IN, nc, 0, 1}};
            snprintf(w, sizeof w, "bn_act_fwd %s without normalisation C=%d", an, C);
            CASE(ad, bn_act_fwd, w, a, r_bn_act_fwd, &c);
        }
        /* bn_act_bwd_reduce: sdy, sdyx (assigned), dgamma, dbeta (accumulate), d, dy, x, stats, s, dgap */
        {
            targ a[] = {{OUT, C}, {OUT, C}, {IN | OUT, C}, {IN | OUT, C}, {ACT | OUT, n}, {ACT | IN, n},
                        {ACT | IN, n, -2, 2}, STATS, {ACT | IN, nc, 0, 1}, {ACT | IN, nc}};
            snprintf(w, sizeof w, "bn_act_bwd_reduce %s with d, s, dgap C=%d", an, C);
            CASE(ad, bn_act_bwd_reduce, w, a, r_bn_act_bwd_reduce, &c);
        }
        {
            targ a[] = {{OUT, C}, {OUT, C}, {IN | OUT, C}, {IN | OUT, C}, {NUL, n}, {ACT | IN, n},
                        {ACT | IN, n, -2, 2}, STATS, {NUL, nc}, {NUL, nc}};
            snprintf(w, sizeof w, "bn_act_bwd_reduce %s d, s, dgap NULL C=%d", an, C);
            CASE(ad, bn_act_bwd_reduce, w, a, r_bn_act_bwd_reduce, &c);
        }
        {
            targ a[] = {{OUT, C}, {OUT, C}, {NUL, C}, {NUL, C}, {NUL, n}, {ACT | IN, n},
                        {ACT | IN, n, -2, 2}, STATS, {ACT | IN, nc, 0, 1}, {NUL, nc}};
            snprintf(w, sizeof w, "bn_act_bwd_reduce %s dgamma, dbeta NULL C=%d", an, C);
            CASE(ad, bn_act_bwd_reduce, w, a, r_bn_act_bwd_reduce, &c);
        }
        /* bn_act_bwd_dx: dx, d, dy, x, stats, s, dgap, sdy, sdyx */
        {   /* d NULL: recomputed from dy, s, dgap */
            targ a[] = {{ACT | OUT, n}, {NUL, n}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS, {ACT | IN, nc, 0, 1},
                        {ACT | IN, nc}, {IN, C}, {IN, C}};
            snprintf(w, sizeof w, "bn_act_bwd_dx %s d NULL C=%d", an, C);
            CASE(ad, bn_act_bwd_dx, w, a, r_bn_act_bwd_dx, &c);
        }
        {   /* d == dx */
            targ a[] = {{ACT | OUT, n, 0, 0, 2}, {ACT | IN, n}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS,
                        {ACT | IN, nc, 0, 1}, {ACT | IN, nc}, {IN, C}, {IN, C}};
            snprintf(w, sizeof w, "bn_act_bwd_dx %s d == dx C=%d", an, C);
            CASE(ad, bn_act_bwd_dx, w, a, r_bn_act_bwd_dx, &c);
        }
        {   /* d elsewhere */
            targ a[] = {{ACT | OUT, n}, {ACT | IN, n}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS,
                        {ACT | IN, nc, 0, 1}, {ACT | IN, nc}, {IN, C}, {IN, C}};
            snprintf(w, sizeof w, "bn_act_bwd_dx %s d separate C=%d", an, C);
            CASE(ad, bn_act_bwd_dx, w, a, r_bn_act_bwd_dx, &c);
        }
        {
            targ a[] = {{ACT | OUT, nc}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS};
            snprintf(w, sizeof w, "bn_act_dot %s C=%d", an, C);
            CASE(ad, bn_act_dot, w, a, r_bn_act_dot, &c);
        }
        {
            targ a[] = {{ACT | OUT, nc}, {OUT, 4 * nc}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS};
            snprintf(w, sizeof w, "bn_act_se_sums %s C=%d", an, C);
            CASE(ad, bn_act_se_sums, w, a, r_bn_act_se_sums, &c);
            targ b[] = {{NUL, nc}, {OUT, 4 * nc}, {ACT | IN, n}, {ACT | IN, n, -2, 2}, STATS};
            snprintf(w, sizeof w, "bn_act_se_sums %s ds NULL C=%d", an, C);
            CASE(ad, bn_act_se_sums, w, b, r_bn_act_se_sums, &c);
        }
#undef STATS
    }
}

static void test_entries(dcl_backend *ad) {
    dcl_conv_desc strided = {.n = 2, .ci = 5, .hi = 9, .wi = 7, .co = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                             .dh = 1, .dw = 1, .groups = 1, .has_bias = 1};
    dcl_same_pad(9, 3, 2, 1, &strided.pt, &strided.pb);
    dcl_same_pad(7, 3, 2, 1, &strided.pl, &strided.pr);
    dcl_conv_desc dw = {.n = 2, .ci = 8, .hi = 6, .wi = 6, .co = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                        .dw = 1, .pt = 1, .pb = 1, .pl = 1, .pr = 1, .groups = 8, .has_bias = 0};
    dcl_conv_desc pw = {.n = 2, .ci = 12, .hi = 4, .wi = 5, .co = 10, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1,
                        .dw = 1, .groups = 1, .has_bias = 1};
    dcl_conv_desc dw5 = {.n = 1, .ci = 6, .hi = 11, .wi = 10, .co = 6, .kh = 5, .kw = 5, .sh = 2, .sw = 2, .dh = 1,
                         .dw = 1, .groups = 6, .has_bias = 1};
    dcl_same_pad(11, 5, 2, 1, &dw5.pt, &dw5.pb);
    dcl_same_pad(10, 5, 2, 1, &dw5.pl, &dw5.pr);
    test_conv(ad, strided, "3x3/2 same-padded");
    test_conv(ad, dw, "depthwise 3x3");
    test_conv(ad, dw5, "depthwise 5x5/2 same-padded");
    test_conv(ad, pw, "pointwise");
    test_bn(ad);
    test_act(ad);
    test_pool(ad);
    test_misc(ad);
    test_fused(ad, 5);
    test_fused(ad, 16);
    /* [P]-only entries are forwarded exactly when inner has them */
    CHECK((ad->axpby != NULL) == (ad->inner->axpby != NULL), "%s axpby presence", TGT);
    CHECK((ad->adam != NULL) == (ad->inner->adam != NULL), "%s adam presence", TGT);
    CHECK((ad->sgd != NULL) == (ad->inner->sgd != NULL), "%s sgd presence", TGT);
    CHECK((ad->bn_fold != NULL) == (ad->inner->bn_fold != NULL), "%s bn_fold presence", TGT);
}

/* ----------------------------------------------------- 4. precision */

/* Adapter conv_fwd (inputs rounded to bf16, output rounded) against fp32
 * throughout, relative to the largest |output|.  Measured: 2.6e-3 (ref)
 * and 3.1e-3 (cpu), i.e. about one bf16 ulp (2^-8 = 3.9e-3) of the output
 * scale: the input roundings average out over the 144 products of each
 * output and the output's own rounding dominates. */
static void test_precision(dcl_backend *ad) {
    dcl_conv_desc d = {.n = 2, .ci = 16, .hi = 10, .wi = 10, .co = 12, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                       .dw = 1, .pt = 1, .pb = 1, .pl = 1, .pr = 1, .groups = 1, .has_bias = 1};
    CHECK_OK(dcl_conv_desc_finish(&d));
    dcl_backend *in = ad->inner;
    int64_t nx = (int64_t)d.n * d.hi * d.wi * d.ci, ny = (int64_t)d.n * d.ho * d.wo * d.co;
    int64_t nw = (int64_t)d.co * d.ci * d.kh * d.kw;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(d.co * 4), *want = malloc(ny * 4);
    uint16_t *xh = malloc(nx * 2), *yh = malloc(ny * 2);
    for (int64_t i = 0; i < nx; i++) { x[i] = urand(-1, 1); xh[i] = dcl_f32_to_bf16(x[i]); }
    for (int64_t i = 0; i < nw; i++) w[i] = urand(-0.3f, 0.3f);
    for (int i = 0; i < d.co; i++) b[i] = urand(-0.5f, 0.5f);
    float *dx = bmalloc(in, nx * 4), *dw = bmalloc(in, nw * 4), *db = bmalloc(in, d.co * 4), *dy = bmalloc(in, ny * 4);
    bput(in, dx, x, nx * 4); bput(in, dw, w, nw * 4); bput(in, db, b, d.co * 4);
    CHECK_OK(in->conv_fwd(in, &d, dy, dx, dw, db));
    bget(in, want, dy, ny * 4);
    uint16_t *axh = bmalloc(ad, nx * 2), *ayh = bmalloc(ad, ny * 2);
    bput(ad, axh, xh, nx * 2);
    CHECK_OK(ad->conv_fwd(ad, &d, (float *)ayh, (const float *)axh, dw, db));
    bget(ad, yh, ayh, ny * 2);
    double scale = 0, err = 0;
    for (int64_t i = 0; i < ny; i++) scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < ny; i++) err = fmax(err, fabs((double)dcl_bf16_to_f32(yh[i]) - want[i]));
    double rel = err / scale;
    printf("  %s conv_fwd bf16 storage vs fp32: max error %.3g of output scale %.3g (relative %.3g)\n", TGT, err,
           scale, rel);
    CHECK(rel <= 1e-2, "%s conv_fwd bf16 relative error %.3g > 1e-2", TGT, rel);
    CHECK(rel > 0, "%s conv_fwd through bf16 storage is exactly fp32 (no rounding happened?)", TGT);
    free(x); free(w); free(b); free(want); free(xh); free(yh);
    bfree(in, dx); bfree(in, dw); bfree(in, db); bfree(in, dy);
    bfree(ad, axh); bfree(ad, ayh);
}

/* ------------------------------------------ concurrent calls (frames) */

typedef struct thr_arg { dcl_backend *ad; int id, bad; } thr_arg;
static void *thr_main(void *p) {
    thr_arg *t = p;
    dcl_backend *ad = t->ad;
    for (int it = 0; it < 40; it++) {
        int64_t n = 500 + 137 * t->id + 31 * it;
        uint16_t *a = malloc(n * 2), *b = malloc(n * 2), *y = malloc(n * 2);
        for (int64_t i = 0; i < n; i++) {
            a[i] = dcl_f32_to_bf16((float)(i % 97) * 0.25f + t->id);
            b[i] = dcl_f32_to_bf16((float)(it % 13) - 6.0f);
        }
        uint16_t *da = bmalloc(ad, n * 2), *db = bmalloc(ad, n * 2), *dy = bmalloc(ad, n * 2);
        bput(ad, da, a, n * 2);
        bput(ad, db, b, n * 2);
        if (ad->add(ad, n, (float *)dy, (const float *)da, (const float *)db) != DCL_OK) t->bad++;
        bget(ad, y, dy, n * 2);
        for (int64_t i = 0; i < n; i++)
            if (y[i] != dcl_f32_to_bf16(dcl_bf16_to_f32(a[i]) + dcl_bf16_to_f32(b[i]))) { t->bad++; break; }
        bfree(ad, da); bfree(ad, db); bfree(ad, dy);
        free(a); free(b); free(y);
    }
    return NULL;
}
static void test_threads(dcl_backend *ad) {
    pthread_t th[3];
    thr_arg ta[3];
    for (int i = 0; i < 3; i++) {
        ta[i] = (thr_arg){ad, i, 0};
        pthread_create(&th[i], NULL, thr_main, &ta[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(ta[i].bad == 0, "%s thread %d: %d wrong results from concurrent adds", TGT, i, ta[i].bad);
    }
}

/* ------------------------------------------------------ 3. construction */

static void test_construction(dcl_backend *ad, dcl_backend *inner) {
    CHECK(ad->act_bytes == 2 && dcl_backend_act_bytes(ad) == 2, "%s act_bytes %d", TGT, ad->act_bytes);
    CHECK(dcl_backend_act_bytes(inner) == 4, "inner act_bytes %d", dcl_backend_act_bytes(inner));
    size_t ln = strlen(ad->name), li = strlen(inner->name);
    CHECK(ln == li + 5 && strncmp(ad->name, inner->name, li) == 0 && strcmp(ad->name + li, ",bf16") == 0,
          "adapter name '%s' for inner '%s'", ad->name, inner->name);
    CHECK(ad->inner == inner && dcl_backend_base(ad) == inner && dcl_backend_base(inner) == inner,
          "%s dcl_backend_base", TGT);
    CHECK(ad->is_host == inner->is_host, "%s is_host %d vs %d", TGT, ad->is_host, inner->is_host);
    CHECK(ad->cvt_f32_bf16 && ad->cvt_bf16_f32, "%s conversion entries missing", TGT);
    CHECK((ad->mem_copy != NULL) == (inner->mem_copy != NULL || inner->is_host), "%s mem_copy presence", TGT);
    CHECK((ad->mem_alloc != NULL) == (inner->mem_alloc != NULL), "%s mem_alloc presence", TGT);
    CHECK((ad->supports != NULL) == (inner->supports != NULL), "%s supports presence", TGT);
    if (ad->mem_copy) {
        float src[37], dst[37];
        for (int i = 0; i < 37; i++) src[i] = (float)i * 1.5f;
        float *ds = bmalloc(ad, sizeof src), *dd = bmalloc(ad, sizeof dst);
        bput(ad, ds, src, sizeof src);
        CHECK_OK(ad->mem_copy(ad, dd, ds, sizeof src));
        bget(ad, dst, dd, sizeof dst);
        CHECK(memcmp(src, dst, sizeof src) == 0, "%s mem_copy", TGT);
        bfree(ad, ds); bfree(ad, dd);
    }
}

/* A mock inner backend: host memory but counted allocations, entries that
 * record the handle they were given, failures on request. */
typedef struct mock {
    int destroyed, allocs, frees, fail_alloc, fail_act, cvt_calls;
    dcl_backend *seen;
    int supports_answer;
} mock;
static mock *M_(dcl_backend *be) { return be->impl; }
static void mk_destroy(dcl_backend *be) { M_(be)->destroyed++; }
static int mk_supports(dcl_backend *be, dcl_op op, const void *d) { M_(be)->seen = be; return M_(be)->supports_answer; }
static void *mk_alloc(dcl_backend *be, size_t bytes) {
    mock *m = M_(be);
    if (m->fail_alloc) return NULL;
    m->allocs++;
    return dcl_alloc(bytes);
}
static void mk_free(dcl_backend *be, void *p) { if (p) { M_(be)->frees++; dcl_free(p); } }
static dcl_status mk_to_device(dcl_backend *be, void *d, const void *s, size_t n) { memcpy(d, s, n); return DCL_OK; }
static dcl_status mk_to_host(dcl_backend *be, void *d, const void *s, size_t n) { memcpy(d, s, n); return DCL_OK; }
static dcl_status mk_mem_zero(dcl_backend *be, void *p, size_t n) { M_(be)->seen = be; memset(p, 0, n); return DCL_OK; }
static dcl_status mk_sync(dcl_backend *be) { M_(be)->seen = be; return DCL_OK; }
static dcl_status mk_cvt_down(dcl_backend *be, int64_t n, uint16_t *d, const float *s) {
    M_(be)->cvt_calls++;
    for (int64_t i = 0; i < n; i++) d[i] = dcl_f32_to_bf16(s[i]);
    return DCL_OK;
}
static dcl_status mk_cvt_up(dcl_backend *be, int64_t n, float *d, const uint16_t *s) {
    M_(be)->cvt_calls++;
    for (int64_t i = 0; i < n; i++) d[i] = dcl_bf16_to_f32(s[i]);
    return DCL_OK;
}
static dcl_status mk_act_fwd(dcl_backend *be, dcl_act a, int64_t n, float *y, const float *x) {
    M_(be)->seen = be;
    if (M_(be)->fail_act) return dcl_fail(DCL_ERR_INTERNAL, "mock act_fwd failure 42");
    dcl_backend *r = dcl_backend_ref();
    return r->act_fwd(r, a, n, y, x);
}
static float *g_seen_p[4];
static dcl_status mk_axpby(dcl_backend *be, int64_t n, float *y, float a, const float *x, float b) {
    M_(be)->seen = be;
    for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
    return DCL_OK;
}
static dcl_status mk_adam(dcl_backend *be, int64_t n, float *p, float *m, float *v, const float *grad, float lr,
                          float b1, float b2, float eps, float wd, int decoupled, float bc1, float bc2) {
    M_(be)->seen = be;
    g_seen_p[0] = p; g_seen_p[1] = m; g_seen_p[2] = v; g_seen_p[3] = (float *)grad;
    return lr == 0.5f && b1 == 0.9f && b2 == 0.999f && eps == 1e-8f && wd == 0.01f && decoupled == 1 && bc1 == 0.1f &&
           bc2 == 0.2f && n == 7 ? DCL_OK : DCL_ERR_ARG;
}
static dcl_status mk_sgd(dcl_backend *be, int64_t n, float *p, float *buf, const float *grad, float lr,
                         float momentum, float wd, int nesterov, int first) {
    M_(be)->seen = be;
    g_seen_p[0] = p; g_seen_p[1] = buf; g_seen_p[2] = (float *)grad;
    return lr == 0.25f && momentum == 0.9f && wd == 0.5f && nesterov == 1 && first == 0 && n == 5 ? DCL_OK : DCL_ERR_ARG;
}
static dcl_status mk_bn_fold(dcl_backend *be, int C, float *scale, float *shift, const float *gamma,
                             const float *beta, const float *rmean, const float *rvar, const float *cbias, float eps) {
    M_(be)->seen = be;
    for (int c = 0; c < C; c++) { scale[c] = gamma[c]; shift[c] = beta[c] + (cbias ? cbias[c] : 0) + eps; }
    return DCL_OK;
}

/* what the inner backend saw: pointer equalities among the arguments */
static int g_add_alias[3], g_dx_alias, g_dx_unread;
static dcl_status mk_add(dcl_backend *be, int64_t n, float *y, const float *a, const float *b) {
    g_add_alias[0] = y == a; g_add_alias[1] = y == b; g_add_alias[2] = a == b;
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return DCL_OK;
}
static dcl_status mk_bn_act_bwd_dx(dcl_backend *be, int N, int HW, int C, dcl_act act, float *dx, const float *d,
                                   const float *dy, const float *x, const float *mean, const float *invstd,
                                   const float *gamma, const float *beta, const float *s, const float *dgap,
                                   const float *sdy, const float *sdyx, int64_t Mt) {
    g_dx_alias = d == dx;
    g_dx_unread = !dy && !s && !dgap;
    for (int64_t i = 0; i < (int64_t)N * HW * C; i++) dx[i] = 2 * d[i] + x[i];
    return DCL_OK;
}

static void mock_init(dcl_backend *be, mock *m, int is_host, int with_cvt) {
    memset(be, 0, sizeof *be);
    memset(m, 0, sizeof *m);
    be->name = "mock";
    be->impl = m;
    be->is_host = is_host;
    be->destroy = mk_destroy;
    be->supports = mk_supports;
    if (!is_host) {
        be->mem_alloc = mk_alloc; be->mem_free = mk_free; be->to_device = mk_to_device; be->to_host = mk_to_host;
        be->mem_zero = mk_mem_zero; be->sync = mk_sync;
    }
    if (with_cvt) { be->cvt_f32_bf16 = mk_cvt_down; be->cvt_bf16_f32 = mk_cvt_up; }
    be->act_fwd = mk_act_fwd;
    be->add = mk_add;
    be->bn_act_bwd_dx = mk_bn_act_bwd_dx;
    be->axpby = mk_axpby; be->adam = mk_adam; be->sgd = mk_sgd; be->bn_fold = mk_bn_fold;
}

static void test_mock(void) {
    TGT = "mock";
    dcl_backend mb;
    mock m;
    /* a device backend without conversions cannot be wrapped; inner destroyed */
    mock_init(&mb, &m, 0, 0);
    dcl_clear_error();
    dcl_backend *ad = dcl_backend_bf16(&mb);
    CHECK(ad == NULL, "device backend without conversions wrapped");
    CHECK(strstr(dcl_last_error(), "mock") != NULL, "error does not name the inner backend: '%s'", dcl_last_error());
    CHECK(m.destroyed == 1, "inner destroyed %d times on failure", m.destroyed);

    /* a "device" backend with conversions */
    mock_init(&mb, &m, 0, 1);
    ad = dcl_backend_bf16(&mb);
    CHECK(ad != NULL, "mock device backend not wrapped: %s", dcl_last_error());
    if (!ad) return;
    test_construction(ad, &mb);
    CHECK(ad->mem_copy == NULL, "mem_copy on a device backend without one");
    CHECK(ad->conv_fwd == NULL && ad->linear_bwd == NULL && ad->bn_act_fwd == NULL, "entries the inner lacks are not NULL");
    m.supports_answer = 0;
    CHECK(ad->supports(ad, DCL_OP_ACT, NULL) == 0 && m.seen == &mb, "supports not forwarded");
    m.supports_answer = 1;
    CHECK(ad->supports(ad, DCL_OP_ACT, NULL) == 1, "supports not forwarded");
    m.seen = NULL;
    CHECK_OK(ad->sync(ad));
    CHECK(m.seen == &mb, "sync not forwarded with the inner handle");

    const int64_t n = 3000;
    uint16_t *hx = malloc(n * 2), *hy = malloc(n * 2);
    for (int64_t i = 0; i < n; i++) hx[i] = dcl_f32_to_bf16(urand(-3, 3));
    uint16_t *x = bmalloc(ad, n * 2), *y = bmalloc(ad, n * 2);
    int user_allocs = m.allocs;
    bput(ad, x, hx, n * 2);
    m.cvt_calls = 0;
    m.seen = NULL;
    CHECK_OK(ad->act_fwd(ad, DCL_ACT_SILU, n, (float *)y, (const float *)x));
    CHECK(m.seen == &mb, "act_fwd reached the inner backend with handle %p, not %p", (void *)m.seen, (void *)&mb);
    CHECK(m.cvt_calls == 2, "inner conversions used %d times, want 2", m.cvt_calls);
    CHECK(m.allocs == user_allocs + 2, "temporaries: %d inner allocations, want 2", m.allocs - user_allocs);
    bget(ad, hy, y, n * 2);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = dcl_bf16_to_f32(hx[i]), want;
        dcl_backend *r = dcl_backend_ref();
        r->act_fwd(r, DCL_ACT_SILU, 1, &want, &v);
        bad += hy[i] != dcl_f32_to_bf16(want);
    }
    CHECK(bad == 0, "mock act_fwd: %d wrong", bad);
    /* temporaries are reused: same size again allocates nothing */
    CHECK_OK(ad->act_fwd(ad, DCL_ACT_RELU, n, (float *)y, (const float *)x));
    CHECK_OK(ad->act_fwd(ad, DCL_ACT_RELU, n / 2, (float *)y, (const float *)x));
    CHECK(m.allocs == user_allocs + 2, "temporaries not reused (%d allocations)", m.allocs - user_allocs);
    /* errors from inner propagate unchanged */
    m.fail_act = 1;
    dcl_status s = ad->act_fwd(ad, DCL_ACT_RELU, n, (float *)y, (const float *)x);
    CHECK(s == DCL_ERR_INTERNAL && strstr(dcl_last_error(), "mock act_fwd failure 42"),
          "inner error not propagated: %d '%s'", (int)s, dcl_last_error());
    m.fail_act = 0;
    /* a temporary that cannot be allocated: DCL_ERR_NOMEM, no crash; later calls work */
    uint16_t *x2 = bmalloc(ad, 2 * n * 2), *y2 = bmalloc(ad, 2 * n * 2);
    memset(x2, 0, 2 * n * 2);
    m.fail_alloc = 1;
    s = ad->act_fwd(ad, DCL_ACT_RELU, 2 * n, (float *)y2, (const float *)x2);
    CHECK(s == DCL_ERR_NOMEM, "failed temporary allocation gave %d (%s)", (int)s, dcl_last_error());
    CHECK(strstr(dcl_last_error(), "mock") != NULL, "allocation error message: '%s'", dcl_last_error());
    m.fail_alloc = 0;
    CHECK_OK(ad->act_fwd(ad, DCL_ACT_RELU, 2 * n, (float *)y2, (const float *)x2));
    CHECK_OK(ad->act_fwd(ad, DCL_ACT_RELU, n, (float *)y, (const float *)x));
    /* negative sizes are refused */
    CHECK(ad->act_fwd(ad, DCL_ACT_RELU, -5, (float *)y, (const float *)x) != DCL_OK, "negative n accepted");

    /* aliasing reaches the inner backend as the same temporary */
    {
        const int64_t k = 24;   /* N=2, HW=3, C=4 */
        uint16_t ha[24], hb[24], hc[24], hr[24];
        for (int64_t i = 0; i < k; i++) {
            ha[i] = dcl_f32_to_bf16(urand(-2, 2));
            hb[i] = dcl_f32_to_bf16(urand(-2, 2));
            hc[i] = dcl_f32_to_bf16(urand(-2, 2));
        }
        uint16_t *da = bmalloc(ad, k * 2), *db = bmalloc(ad, k * 2), *dc = bmalloc(ad, k * 2);
        static const char *names[3] = {"y == a", "y == b", "distinct"};
        for (int v = 0; v < 3; v++) {
            bput(ad, da, ha, sizeof ha); bput(ad, db, hb, sizeof hb);
            uint16_t *yy = v == 0 ? da : v == 1 ? db : dc;
            CHECK_OK(ad->add(ad, k, (float *)yy, (const float *)da, (const float *)db));
            CHECK(g_add_alias[0] == (v == 0) && g_add_alias[1] == (v == 1) && !g_add_alias[2],
                  "add %s: inner saw y==a %d, y==b %d, a==b %d", names[v], g_add_alias[0], g_add_alias[1],
                  g_add_alias[2]);
            bget(ad, hr, yy, sizeof hr);
            int wrong = 0;
            for (int64_t i = 0; i < k; i++)
                wrong += hr[i] != dcl_f32_to_bf16(dcl_bf16_to_f32(ha[i]) + dcl_bf16_to_f32(hb[i]));
            CHECK(wrong == 0, "add %s: %d wrong", names[v], wrong);
        }
        float st[4] = {0.5f, 1, 1, 0};
        for (int v = 0; v < 2; v++) {
            bput(ad, da, ha, sizeof ha); bput(ad, db, hb, sizeof hb); bput(ad, dc, hc, sizeof hc);
            /* v == 0: d == dx (dy, s, dgap are not read and not widened); v == 1: d separate */
            uint16_t *dx = v == 0 ? da : dc;
            CHECK_OK(ad->bn_act_bwd_dx(ad, 2, 3, 4, DCL_ACT_RELU, (float *)dx, (const float *)da, (const float *)dc,
                                       (const float *)db, st, st, st, st, (const float *)dc, (const float *)dc, st,
                                       st, 6));
            CHECK(g_dx_alias == (v == 0) && g_dx_unread == (v == 0), "bn_act_bwd_dx %s: inner saw d==dx %d, "
                  "dy/s/dgap NULL %d", v ? "d separate" : "d == dx", g_dx_alias, g_dx_unread);
            bget(ad, hr, dx, sizeof hr);
            int wrong = 0;
            for (int64_t i = 0; i < k; i++)
                wrong += hr[i] != dcl_f32_to_bf16(2 * dcl_bf16_to_f32(ha[i]) + dcl_bf16_to_f32(hb[i]));
            CHECK(wrong == 0, "bn_act_bwd_dx: %d wrong", wrong);
        }
        bfree(ad, da); bfree(ad, db); bfree(ad, dc);
    }

    /* [P]-only entries: forwarded with the inner handle, arguments unchanged */
    float p[7] = {1, 2, 3, 4, 5, 6, 7}, q[7] = {1, 1, 1, 1, 1, 1, 1}, mm[7], vv[7], gg[7];
    m.seen = NULL;
    CHECK_OK(ad->axpby(ad, 7, q, 2.0f, p, 0.5f));
    CHECK(m.seen == &mb && q[6] == 14.5f, "axpby not forwarded (%g)", q[6]);
    m.seen = NULL;
    CHECK_OK(ad->adam(ad, 7, p, mm, vv, gg, 0.5f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 0.1f, 0.2f));
    CHECK(m.seen == &mb && g_seen_p[0] == p && g_seen_p[1] == mm && g_seen_p[2] == vv && g_seen_p[3] == gg,
          "adam not forwarded");
    m.seen = NULL;
    CHECK_OK(ad->sgd(ad, 5, p, mm, gg, 0.25f, 0.9f, 0.5f, 1, 0));
    CHECK(m.seen == &mb && g_seen_p[0] == p && g_seen_p[1] == mm && g_seen_p[2] == gg, "sgd not forwarded");
    float sc[3], sh[3], ga[3] = {1, 2, 3}, be_[3] = {4, 5, 6}, rm[3] = {0}, rv[3] = {1, 1, 1};
    m.seen = NULL;
    CHECK_OK(ad->bn_fold(ad, 3, sc, sh, ga, be_, rm, rv, NULL, 0.5f));
    CHECK(m.seen == &mb && sc[2] == 3 && sh[2] == 6.5f, "bn_fold not forwarded");

    /* wrapping the adapter again fails and destroys it (and with it inner) */
    int allocs_before = m.allocs;
    bfree(ad, x); bfree(ad, y); bfree(ad, x2); bfree(ad, y2);
    free(hx); free(hy);
    dcl_clear_error();
    dcl_backend *twice = dcl_backend_bf16(ad);
    CHECK(twice == NULL, "an adapter was wrapped again");
    CHECK(strstr(dcl_last_error(), "bf16") != NULL, "wrapping twice: error '%s'", dcl_last_error());
    CHECK(m.destroyed == 1, "inner destroyed %d times with its adapter", m.destroyed);
    CHECK(m.frees == allocs_before, "%d allocations in inner memory, %d freed", allocs_before, m.frees);

    /* host inner without mem_copy: the adapter copies with memcpy */
    mock_init(&mb, &m, 1, 0);
    ad = dcl_backend_bf16(&mb);
    CHECK(ad != NULL, "mock host backend not wrapped: %s", dcl_last_error());
    if (ad) {
        test_construction(ad, &mb);
        CHECK(ad->mem_alloc == NULL && ad->to_device == NULL && ad->sync == NULL, "host adapter has memory entries");
        /* host conversions when inner has none */
        uint16_t h[5];
        float f[5] = {1.0f, -2.5f, bitsf(0x3f818000u), INFINITY, -0.0f};
        CHECK_OK(ad->cvt_f32_bf16(ad, 5, h, f));
        CHECK(h[0] == 0x3f80 && h[1] == 0xc020 && h[2] == 0x3f82 && h[3] == 0x7f80 && h[4] == 0x8000,
              "host conversion");
        dcl_backend_destroy(ad);
        CHECK(m.destroyed == 1, "host mock destroyed %d times", m.destroyed);
    }
}

/* ------------------------------------------------------------------ main */

static void test_backend(dcl_backend *inner, const char *label) {
    TGT = label;
    dcl_backend *ad = dcl_backend_bf16(inner);
    CHECK(ad != NULL, "%s: dcl_backend_bf16 failed: %s", label, dcl_last_error());
    if (!ad) return;
    TGT = ad->name;
    EXACT = inner->is_host;
    printf("%s\n", ad->name);
    test_construction(ad, inner);
    test_conversions(ad);
    test_entries(ad);
    test_precision(ad);
    test_threads(ad);
    dcl_backend_destroy(ad);
}

int main(void) {
    dcl_rng_seed(&RNG, 20240611);

    dcl_clear_error();
    CHECK(dcl_backend_bf16(NULL) == NULL, "dcl_backend_bf16(NULL) returned a backend");
    CHECK(strlen(dcl_last_error()) > 0, "dcl_backend_bf16(NULL): no error message");

    test_backend(dcl_backend_ref(), "ref");
    /* an adapter cannot be wrapped again */
    dcl_clear_error();
    CHECK(dcl_backend_bf16(dcl_backend_bf16(dcl_backend_ref())) == NULL, "ref,bf16 wrapped again");
    CHECK(strstr(dcl_last_error(), "ref,bf16") != NULL, "wrapping twice: error '%s'", dcl_last_error());
    /* the reference backend is a shared static instance: still usable */
    dcl_backend *r = dcl_backend_ref();
    float one = 1.0f, out = 0;
    CHECK(r->act_fwd(r, DCL_ACT_RELU, 1, &out, &one) == DCL_OK && out == 1.0f, "ref backend after its adapter");

    dcl_backend *cpu = dcl_backend_cpu(2);
    if (cpu) test_backend(cpu, "cpu");
    else printf("cpu backend unavailable (%s), skipped\n", dcl_last_error());

    dcl_backend *cuda = dcl_backend_cuda(0);
    if (cuda) {
        if (cuda->cvt_f32_bf16 && cuda->cvt_bf16_f32) {
            test_backend(cuda, "cuda");
        } else {
            dcl_clear_error();
            CHECK(dcl_backend_bf16(cuda) == NULL, "cuda backend without conversions wrapped");
            CHECK(strstr(dcl_last_error(), "cuda") != NULL, "error does not name cuda: '%s'", dcl_last_error());
        }
    } else {
        printf("cuda backend unavailable, skipped\n");
    }

    test_mock();
    CHECK_DONE();
}
