/* safetensors reader/writer: a file written by Python `safetensors`
 * (tools/make_io_fixtures.py) read against PyTorch's float conversions,
 * round trips, float16/bfloat16 conversions against the compiler's, every
 * kind of malformed file, truncation and corruption, atomic replacement. */
#include "dcl/io.h"
#include "check.h"
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256];

static const char *fixture(const char *name) {
    static char buf[512];
    const char *dirs[] = {"tests/fixtures/io", "../tests/fixtures/io", "../../tests/fixtures/io"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%s/%s", dirs[i], name);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, sizeof buf, "tests/fixtures/io/%s", name);
    return buf;
}

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, name);
    return buf[k];
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static void *read_bytes(const char *path, size_t *n) {
    void *p;
    if (dcl_read_file(&p, n, path, 0) != DCL_OK) return NULL;
    return p;
}

/* file = u64 len(header) + header + buffer */
static const char *make_st(const char *name, const char *header, const void *buf, size_t buflen) {
    const char *path = tmp_path(name);
    size_t hl = strlen(header);
    uint8_t *p = malloc(8 + hl + buflen + 1);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(((uint64_t)hl >> (8 * i)) & 0xff);
    memcpy(p + 8, header, hl);
    if (buflen) memcpy(p + 8 + hl, buf, buflen);
    write_bytes(path, p, 8 + hl + buflen);
    free(p);
    return path;
}

static int count_tmp_files(void) {
    DIR *d = opendir(g_tmp);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

/* ---------------------------------------------------------------- Python file */

static void test_python_file(void) {
    dcl_st *st = NULL;
    const char *path = fixture("py_dtypes.safetensors");
    CHECK_OK(dcl_st_open(&st, path));
    if (!st) return;
    CHECK(dcl_st_count(st) == 12, "count %d", dcl_st_count(st));
    CHECK(dcl_st_meta(st, "format") && !strcmp(dcl_st_meta(st, "format"), "pt"), "format meta");
    CHECK(dcl_st_meta(st, "note") && !strcmp(dcl_st_meta(st, "note"), "dcl fixture"), "note meta");
    CHECK(dcl_st_meta(st, "absent") == NULL, "absent meta");
    CHECK(dcl_st_meta_count(st) == 2, "meta count");

    static const struct { const char *name; dcl_dtype dt; int ndim; int64_t shape[4]; } want[] = {
        {"a.f32", DCL_F32, 2, {2, 3}}, {"b.f16", DCL_F16, 1, {13}}, {"c.bf16", DCL_BF16, 1, {15}},
        {"d.f64", DCL_F64, 2, {2, 2}}, {"e.i64", DCL_I64, 1, {3}}, {"empty", DCL_F32, 2, {0, 4}},
        {"f.i32", DCL_I32, 2, {2, 1}}, {"g.u8", DCL_U8, 1, {3}}, {"h.i8", DCL_I8, 1, {2}},
        {"i.bool", DCL_BOOL, 1, {3}}, {"scalar", DCL_F32, 0, {0}}, {"x.nchw", DCL_F32, 4, {2, 3, 2, 2}},
    };
    size_t exp_len = 0;
    float *expect = read_bytes(fixture("py_dtypes.f32"), &exp_len);
    CHECK(expect != NULL, "expected values file");
    size_t at = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const dcl_st_entry *e = dcl_st_find(st, want[i].name);
        CHECK(e != NULL, "tensor %s missing", want[i].name);
        if (!e) continue;
        CHECK(e->dtype == want[i].dt, "%s dtype %d", want[i].name, e->dtype);
        CHECK(e->ndim == want[i].ndim, "%s ndim %d", want[i].name, e->ndim);
        int64_t numel = dcl_shape_numel(want[i].ndim, want[i].shape);
        for (int d = 0; d < e->ndim && d < want[i].ndim; d++)
            CHECK(e->shape[d] == want[i].shape[d], "%s shape[%d]", want[i].name, d);
        CHECK(e->numel == numel, "%s numel", want[i].name);
        CHECK(e->nbytes == (size_t)numel * dcl_dtype_size(want[i].dt), "%s nbytes", want[i].name);
        float *got = malloc(sizeof(float) * (size_t)(numel + 1));
        CHECK_OK(dcl_st_read_f32(st, want[i].name, got, want[i].ndim, want[i].shape));
        if (expect && (at + (size_t)numel) * 4 <= exp_len)
            CHECK(!memcmp(got, expect + at, (size_t)numel * 4), "%s values differ from PyTorch's float32", want[i].name);
        at += (size_t)numel;
        free(got);
    }
    CHECK(at * 4 == exp_len, "expected file has %zu bytes, used %zu", exp_len, at * 4);

    /* f32 -> f16 / bf16 rounding agrees with PyTorch's bytes for the same values */
    const dcl_st_entry *h = dcl_st_find(st, "b.f16"), *b = dcl_st_find(st, "c.bf16");
    static const double specials[] = {0.0, -0.0, 0.5, -2.0, 3.25, 1024.0, 5.9604644775390625e-08,
                                      6.103515625e-05, 65504.0, INFINITY, -INFINITY, 1.0 / 3.0, 1e-3, 3.0e38, 1.0e-38};
    for (int i = 0; h && i < 13; i++) {
        uint16_t raw;
        memcpy(&raw, (const uint8_t *)h->data + 2 * i, 2);
        CHECK(dcl_f32_to_f16((float)specials[i]) == raw, "f16 of %g: %04x vs torch %04x", specials[i],
              dcl_f32_to_f16((float)specials[i]), raw);
    }
    for (int i = 0; b && i < 15; i++) {
        uint16_t raw;
        memcpy(&raw, (const uint8_t *)b->data + 2 * i, 2);
        CHECK(dcl_f32_to_bf16((float)specials[i]) == raw, "bf16 of %g: %04x vs torch %04x", specials[i],
              dcl_f32_to_bf16((float)specials[i]), raw);
    }

    /* shape check message names tensor, expected and found */
    float tmp[6];
    int64_t bad[2] = {3, 2};
    CHECK(dcl_st_read_f32(st, "a.f32", tmp, 2, bad) == DCL_ERR_SHAPE, "shape mismatch status");
    const char *msg = dcl_last_error();
    CHECK(strstr(msg, "a.f32") && strstr(msg, "expected shape [3, 2]") && strstr(msg, "found [2, 3]") &&
              strstr(msg, "py_dtypes.safetensors"),
          "message: %s", msg);
    CHECK(dcl_st_read_f32(st, "nope", tmp, 0, NULL) == DCL_ERR_NOTFOUND, "missing tensor");
    CHECK(strstr(dcl_last_error(), "'nope'") != NULL, "message: %s", dcl_last_error());
    CHECK_OK(dcl_st_read_f32(st, "a.f32", tmp, 0, NULL)); /* no shape check */

    /* entries come in file order, i.e. increasing offsets */
    const uint8_t *prev = NULL;
    for (int i = 0; i < dcl_st_count(st); i++) {
        const dcl_st_entry *e = dcl_st_get(st, i);
        CHECK(!prev || (const uint8_t *)e->data >= prev, "file order at %d", i);
        prev = e->data;
    }
    CHECK(dcl_st_get(st, -1) == NULL && dcl_st_get(st, 12) == NULL, "get out of range");
    free(expect);
    dcl_st_close(st);
}

/* ------------------------------------------------------------- conversions */

static void test_half_conversions(void) {
    int bad16 = 0, badb = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dcl_f16_to_f32((uint16_t)h);
        uint16_t back = dcl_f32_to_f16(f);
        int nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan ? !isnan(f) || ((back >> 10) & 0x1f) != 0x1f || !(back & 0x3ff) : back != h) bad16++;
        float g = dcl_bf16_to_f32((uint16_t)h);
        uint16_t bb = dcl_f32_to_bf16(g);
        int bnan = ((h >> 7) & 0xff) == 0xff && (h & 0x7f);
        if (bnan ? !isnan(g) || !isnan(dcl_bf16_to_f32(bb)) : bb != h) badb++;
    }
    CHECK(bad16 == 0, "%d f16 values do not round-trip", bad16);
    CHECK(badb == 0, "%d bf16 values do not round-trip", badb);
#ifdef __FLT16_MAX__
    /* rounding of arbitrary floats against the compiler's own conversion */
    dcl_rng r;
    dcl_rng_seed(&r, 7);
    int mism = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t bits = dcl_rng_u32(&r);
        if (i & 1) bits = (bits & 0x807fffffu) | ((uint32_t)(100 + dcl_rng_below(&r, 60)) << 23); /* near half range */
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f)) continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (dcl_f32_to_f16(f) != rb) {
            if (mism++ < 5) fprintf(stderr, "f16(%a): %04x vs %04x\n", (double)f, dcl_f32_to_f16(f), rb);
        }
    }
    CHECK(mism == 0, "%d f32->f16 conversions differ from the compiler's", mism);
#endif
    /* bf16 rounding: ties to even */
    float one_and_half_ulp;
    uint32_t x = 0x3f808000u; /* exactly halfway between bf16 0x3f80 and 0x3f81 */
    memcpy(&one_and_half_ulp, &x, 4);
    CHECK(dcl_f32_to_bf16(one_and_half_ulp) == 0x3f80, "bf16 tie to even");
    x = 0x3f818000u;
    memcpy(&one_and_half_ulp, &x, 4);
    CHECK(dcl_f32_to_bf16(one_and_half_ulp) == 0x3f82, "bf16 tie to even (odd)");
}

/* --------------------------------------------------------------- round trip */

static void test_round_trip(void) {
    dcl_st_writer *w;
    CHECK_OK(dcl_st_writer_new(&w));
    float a[24], c[5] = {1.5f, -2.25f, 65504.0f, 1e-8f, 3.0f};
    for (int i = 0; i < 24; i++) a[i] = (float)i * 0.25f - 3.0f;
    int64_t sa[4] = {2, 3, 2, 2}, sc[1] = {5}, sl[1] = {3};
    int64_t lv[3] = {-1, 0, 1234567890123LL};
    double dv[2] = {1.0 / 3.0, -7.5};
    int64_t sd[2] = {1, 2};
    uint8_t u[3] = {0, 7, 255};
    CHECK_OK(dcl_st_writer_add(w, "layer.weight", DCL_F32, 4, sa, a));
    CHECK_OK(dcl_st_writer_add_copy(w, "bn.num_batches_tracked", DCL_I64, 1, sl, lv));
    CHECK_OK(dcl_st_writer_add_f32(w, "half", DCL_F16, 1, sc, c));
    CHECK_OK(dcl_st_writer_add_f32(w, "brain", DCL_BF16, 1, sc, c));
    CHECK_OK(dcl_st_writer_add(w, "dbl", DCL_F64, 2, sd, dv));
    CHECK_OK(dcl_st_writer_add(w, "bytes", DCL_U8, 1, sl, u));
    CHECK_OK(dcl_st_writer_add(w, "scalar", DCL_F32, 0, NULL, a + 5));
    int64_t s0[2] = {0, 7};
    CHECK_OK(dcl_st_writer_add(w, "Zero", DCL_F32, 2, s0, NULL));
    CHECK_OK(dcl_st_writer_add_f32(w, "counter", DCL_I64, 0, NULL, c + 4));
    CHECK_OK(dcl_st_writer_meta(w, "format", "pt"));
    CHECK_OK(dcl_st_writer_meta(w, "arch", "x"));
    CHECK_OK(dcl_st_writer_meta(w, "arch", "tf_efficientnet_b4 \"quoted\"\n\\ ü"));
    lv[0] = 99; /* add_copy must have copied */

    /* writer refuses bad input */
    CHECK(dcl_st_writer_add(w, "layer.weight", DCL_F32, 4, sa, a) == DCL_ERR_ARG, "duplicate name");
    CHECK(strstr(dcl_last_error(), "layer.weight") != NULL, "msg %s", dcl_last_error());
    CHECK(dcl_st_writer_add(w, "__metadata__", DCL_F32, 4, sa, a) == DCL_ERR_ARG, "reserved name");
    int64_t neg[1] = {-1};
    CHECK(dcl_st_writer_add(w, "neg", DCL_F32, 1, neg, a) == DCL_ERR_ARG, "negative dim");
    CHECK(dcl_st_writer_add(w, "nine", DCL_F32, 9, sa, a) == DCL_ERR_ARG, "too many dims");
    CHECK(dcl_st_writer_add(w, "null", DCL_F32, 1, sc, NULL) == DCL_ERR_ARG, "NULL data");
    CHECK(dcl_st_writer_add(w, "\xff\xfe", DCL_F32, 1, sc, c) == DCL_ERR_ARG, "bad UTF-8 name");

    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(dcl_st_write_file(w, path));
    CHECK(count_tmp_files() == 0, "temporary files left behind");
    void *mem;
    size_t mlen, flen;
    CHECK_OK(dcl_st_write_mem(w, &mem, &mlen));
    uint8_t *file = read_bytes(path, &flen);
    CHECK(file && flen == mlen && !memcmp(file, mem, mlen), "write_mem and write_file differ");
    free(mem);
    dcl_st_writer_free(w);

    if (file) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | file[i];
        CHECK(n % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)n);
        CHECK(file[8] == '{' && strncmp((char *)file + 9, "\"__metadata__\"", 14) == 0, "metadata first");
        /* keys sorted by name */
        char *hdr = strndup((char *)file + 8, (size_t)n);
        const char *order[] = {"\"Zero\"", "\"brain\"", "\"bytes\"", "\"counter\"", "\"dbl\"", "\"half\"",
                               "\"layer.weight\"", "\"scalar\""};
        const char *last = hdr;
        for (int i = 0; i < 8; i++) {
            const char *p = strstr(hdr, order[i]);
            CHECK(p && p > last, "key %s out of order in %s", order[i], hdr);
            if (p) last = p;
        }
        CHECK(hdr[n - 1] == ' ' || hdr[n - 1] == '}', "padding");
        free(hdr);
    }

    dcl_st *st;
    CHECK_OK(dcl_st_open(&st, path));
    if (st) {
        CHECK(dcl_st_count(st) == 9, "count %d", dcl_st_count(st));
        float got[24];
        CHECK_OK(dcl_st_read_f32(st, "layer.weight", got, 4, sa));
        CHECK(!memcmp(got, a, sizeof a), "f32 round trip");
        const dcl_st_entry *e = dcl_st_find(st, "bn.num_batches_tracked");
        CHECK(e && e->dtype == DCL_I64 && e->nbytes == 24, "i64 entry");
        if (e) {
            int64_t back[3];
            memcpy(back, e->data, 24);
            CHECK(back[0] == -1 && back[1] == 0 && back[2] == 1234567890123LL, "i64 values");
        }
        CHECK_OK(dcl_st_read_f32(st, "half", got, 1, sc));
        float hw[5] = {1.5f, -2.25f, 65504.0f, 0.0f, 3.0f}; /* 1e-8 underflows to 0 in f16 */
        CHECK(!memcmp(got, hw, sizeof hw), "f16 values %g %g %g %g %g", got[0], got[1], got[2], got[3], got[4]);
        CHECK_OK(dcl_st_read_f32(st, "brain", got, 1, sc));
        CHECK(got[0] == 1.5f && got[1] == -2.25f && got[2] == 65536.0f && fabsf(got[3] - 1e-8f) < 1e-10f &&
                  got[4] == 3.0f,
              "bf16 values");
        CHECK_OK(dcl_st_read_f32(st, "dbl", got, 2, sd));
        CHECK(got[0] == (float)(1.0 / 3.0) && got[1] == -7.5f, "f64 values");
        CHECK_OK(dcl_st_read_f32(st, "bytes", got, 1, sl));
        CHECK(got[0] == 0 && got[1] == 7 && got[2] == 255, "u8 values");
        CHECK_OK(dcl_st_read_f32(st, "scalar", got, 0, NULL));
        CHECK(got[0] == a[5], "scalar");
        CHECK_OK(dcl_st_read_f32(st, "counter", got, 0, NULL));
        CHECK(got[0] == 3.0f, "counter");
        e = dcl_st_find(st, "Zero");
        CHECK(e && e->numel == 0 && e->nbytes == 0 && e->ndim == 2 && e->shape[1] == 7, "empty tensor");
        CHECK(dcl_st_meta(st, "arch") && !strcmp(dcl_st_meta(st, "arch"), "tf_efficientnet_b4 \"quoted\"\n\\ ü"),
              "escaped metadata");
        const char *v;
        CHECK(!strcmp(dcl_st_meta_get(st, 0, &v), "arch") && !strcmp(dcl_st_meta_get(st, 1, &v), "format") &&
                  !strcmp(v, "pt"),
              "metadata order");
        /* data is laid out 8-byte types first, so aligned relative to the buffer */
        for (int i = 0; i < dcl_st_count(st); i++) {
            const dcl_st_entry *x = dcl_st_get(st, i);
            size_t off = (size_t)((const uint8_t *)x->data - (const uint8_t *)dcl_st_get(st, 0)->data);
            CHECK(off % dcl_dtype_size(x->dtype) == 0, "%s misaligned", x->name);
        }
        dcl_st_close(st);
    }

    /* truncation at every length fails cleanly (the tensors must cover the file) */
    if (file) {
        int ok = 0;
        for (size_t len = 0; len < flen; len++) {
            dcl_st *t = NULL;
            if (dcl_st_open_mem(&t, file, len, "trunc") == DCL_OK) { ok++; dcl_st_close(t); }
            else if (!strstr(dcl_last_error(), "trunc")) { ok += 1000; }
        }
        CHECK(ok == 0, "%d truncated buffers accepted / unnamed", ok);
        /* also through the file path */
        const char *tp = tmp_path("trunc.safetensors");
        int fok = 0;
        for (size_t len = 0; len < flen; len += 7) {
            write_bytes(tp, file, len);
            dcl_st *t = NULL;
            if (dcl_st_open(&t, tp) == DCL_OK) { fok++; dcl_st_close(t); }
            else if (!strstr(dcl_last_error(), "trunc.safetensors")) fok += 1000;
        }
        CHECK(fok == 0, "%d truncated files accepted / unnamed", fok);
        unlink(tp);
        /* corruption: flip bytes everywhere; must never crash */
        uint8_t *cp = malloc(flen);
        int accepted = 0;
        for (size_t i = 0; i < flen; i++)
            for (int bit = 0; bit < 8; bit += 3) {
                memcpy(cp, file, flen);
                cp[i] ^= (uint8_t)(1u << bit);
                dcl_st *t = NULL;
                if (dcl_st_open_mem(&t, cp, flen, "flip") == DCL_OK) {
                    accepted++;
                    for (int k = 0; k < dcl_st_count(t); k++) {
                        const dcl_st_entry *x = dcl_st_get(t, k);
                        float *tmp = malloc(sizeof(float) * (size_t)(x->numel + 1));
                        dcl_st_entry_to_f32(tmp, t, x);
                        free(tmp);
                    }
                    dcl_st_close(t);
                }
            }
        CHECK(accepted > 0, "no flip in the data region was accepted");
        free(cp);
    }
    free(file);
}

/* ------------------------------------------------------------ malformed */

typedef struct bad_case {
    const char *header;
    size_t buflen;
    dcl_status status;
    const char *msg;
} bad_case;

static void test_malformed(void) {
    uint8_t buf[64] = {0};
#define T(n) "\"" n "\""
    static const bad_case cases[] = {
        {"not json", 0, DCL_ERR_FORMAT, "invalid JSON"},
        {"[1, 2]", 0, DCL_ERR_FORMAT, "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, DCL_ERR_FORMAT, "unexpected text"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, DCL_ERR_FORMAT, "invalid JSON"},
        {"{\"w.bad\":5}", 0, DCL_ERR_FORMAT, "tensor 'w.bad': entry is not an object"},
        {"{\"w.bad\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "tensor 'w.bad': missing \"dtype\""},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "missing \"shape\""},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, DCL_ERR_FORMAT, "missing \"data_offsets\""},
        {"{\"w.bad\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "unknown dtype 'F33'"},
        {"{\"w.bad\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, DCL_ERR_UNSUPPORTED, "dtype U16 is not supported"},
        {"{\"w.bad\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "\"dtype\" is not a string"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "shape[0] is not a non-negative integer"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2, 1.5],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "shape[1] is not"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "shape[0] is not"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "shape[0] is not"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "\"shape\" is not an array"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_UNSUPPORTED, "9 dimensions"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "too large"},
        {"{\"w.bad\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,4096],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "too large"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "needs 12 bytes but data_offsets [0, 8] span 8"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, DCL_ERR_FORMAT, "reversed"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, DCL_ERR_FORMAT, "run past the end of the 8-byte data buffer"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, DCL_ERR_FORMAT, "not an array of two integers"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, DCL_ERR_FORMAT, "not non-negative integers"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", 8, DCL_ERR_FORMAT, "not non-negative integers"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":1}}}", 8, DCL_ERR_FORMAT, "not an array of two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w.bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, DCL_ERR_FORMAT, "tensor 'w.bad' [4, 12) overlaps tensor 'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w.bad\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, DCL_ERR_FORMAT, "bytes [4, 8) before it belong to no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, DCL_ERR_FORMAT, "data buffer has 8 bytes but the tensors cover 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, DCL_ERR_FORMAT, "tensor 'a' appears twice"},
        {"{\"w.bad\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "field 'dtype' appears twice"},
        {"{\"__metadata__\":{\"k\":1}}", 0, DCL_ERR_FORMAT, "__metadata__ value of 'k' is not a string"},
        {"{\"__metadata__\":[\"k\"]}", 0, DCL_ERR_FORMAT, "__metadata__ is not an object"},
        {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, DCL_ERR_FORMAT, "duplicate __metadata__ key 'k'"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, DCL_ERR_FORMAT, "__metadata__ appears twice"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "\\u0000"},
        {"{\"a\xc3\x28\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "not valid UTF-8 (byte 3)"},
        {"{\"\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DCL_ERR_FORMAT, "not valid UTF-8"},
        {"{}", 4, DCL_ERR_FORMAT, "data buffer has 4 bytes but the tensors cover 0"},
        {"{", 0, DCL_ERR_FORMAT, "too short"},
    };
#undef T
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%02zu.safetensors", i);
        const char *path = make_st(name, cases[i].header, buf, cases[i].buflen);
        dcl_st *st = NULL;
        dcl_status s = dcl_st_open(&st, path);
        const char *msg = dcl_last_error();
        CHECK(s == cases[i].status, "case %zu (%s): status %d want %d (%s)", i, cases[i].header, s, cases[i].status, msg);
        CHECK(strstr(msg, cases[i].msg) && strstr(msg, name) && !strchr(msg, '\n'), "case %zu: message '%s' lacks '%s'",
              i, msg, cases[i].msg);
        CHECK(st == NULL, "case %zu: handle returned on error", i);
        if (strstr(cases[i].header, "w.bad") && s != DCL_OK)
            CHECK(strstr(msg, "'w.bad'") != NULL, "case %zu: message does not name the tensor: %s", i, msg);
        dcl_st_close(st);
        unlink(path);
    }
    /* header with a NUL byte inside */
    {
        const char *path = tmp_path("nul.safetensors");
        uint8_t f[8 + 8] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ', ' ', ' ', ' ', ' '};
        write_bytes(path, f, sizeof f);
        dcl_st *st;
        CHECK(dcl_st_open(&st, path) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "NUL"), "NUL in header: %s",
              dcl_last_error());
        unlink(path);
    }
    /* size problems */
    struct { uint64_t hlen; size_t flen; const char *msg; } sz[] = {
        {0, 0, "too short for a safetensors header (0 bytes"},
        {0, 7, "too short for a safetensors header (7 bytes"},
        {(uint64_t)1 << 62, 64, "header length 4611686018427387904 is absurd"},
        {UINT64_MAX, 64, "is absurd"},
        {1000, 50, "header length 1000 exceeds the file size (50 bytes)"},
        {43, 50, "header length 43 exceeds"},
        {0, 8, "header length 0 is too short"},
    };
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        uint8_t f[64];
        memset(f, ' ', sizeof f);
        for (int k = 0; k < 8; k++) f[k] = (uint8_t)((sz[i].hlen >> (8 * k)) & 0xff);
        const char *path = tmp_path("size.safetensors");
        write_bytes(path, f, sz[i].flen);
        dcl_st *st;
        dcl_status s = dcl_st_open(&st, path);
        CHECK(s == DCL_ERR_FORMAT && strstr(dcl_last_error(), sz[i].msg) && strstr(dcl_last_error(), "size.safetensors"),
              "size case %zu: %s", i, dcl_last_error());
        unlink(path);
    }
    dcl_st *st;
    CHECK(dcl_st_open(&st, tmp_path("does-not-exist.safetensors")) == DCL_ERR_NOTFOUND, "missing file");
    CHECK(strstr(dcl_last_error(), "does-not-exist.safetensors") != NULL, "missing file message");
    CHECK(dcl_st_open(&st, g_tmp) == DCL_ERR_IO && strstr(dcl_last_error(), "directory"), "directory: %s",
          dcl_last_error());
    /* a valid file with unusual but legal features: extra fields, null metadata, zero-size tensors at one offset */
    const char *ok = make_st("ok.safetensors",
                             "{\"__metadata__\":null,\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                             "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4],\"extra\":[1]},"
                             "\"z2\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[4,4]}}   ",
                             buf, 4);
    CHECK_OK(dcl_st_open(&st, ok));
    if (st) {
        CHECK(dcl_st_count(st) == 3 && dcl_st_meta_count(st) == 0, "unusual file");
        CHECK(!strcmp(dcl_st_get(st, 0)->name, "a"), "file order");
        dcl_st_close(st);
    }
}

/* ---------------------------------------------------------------- atomic */

static void test_atomic(void) {
    const char *path = tmp_path("model.safetensors");
    float small[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    dcl_st_writer *w;
    CHECK_OK(dcl_st_writer_new(&w));
    CHECK_OK(dcl_st_writer_add(w, "small", DCL_F32, 1, s4, small));
    umask(022);
    CHECK_OK(dcl_st_write_file(w, path));
    dcl_st_writer_free(w);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o", (unsigned)(sb.st_mode & 0777));
    size_t olen;
    uint8_t *old = read_bytes(path, &olen);

    /* a write that fails half-way (file size limit, like a full disk) */
    size_t nbig = 1 << 16;
    float *big = calloc(nbig, sizeof(float));
    int64_t sb1[1] = {(int64_t)nbig};
    CHECK_OK(dcl_st_writer_new(&w));
    CHECK_OK(dcl_st_writer_add(w, "big", DCL_F32, 1, sb1, big));
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 8192;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    int limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
    if (limited) {
        dcl_status s = dcl_st_write_file(w, path);
        setrlimit(RLIMIT_FSIZE, &saved);
        CHECK(s == DCL_ERR_IO && strstr(dcl_last_error(), "model.safetensors"), "failed write status %d: %s", s,
              dcl_last_error());
        size_t nlen;
        uint8_t *now = read_bytes(path, &nlen);
        CHECK(now && nlen == olen && !memcmp(now, old, olen), "old file changed by a failed write");
        free(now);
        CHECK(count_tmp_files() == 0, "temporary file left after a failed write");
    }
    signal(SIGXFSZ, prev);
    /* unwritable destination */
    CHECK(dcl_st_write_file(w, "/nonexistent-dir-dcl/x.safetensors") == DCL_ERR_IO, "bad dir");
    CHECK(strstr(dcl_last_error(), "/nonexistent-dir-dcl/x.safetensors") != NULL, "msg %s", dcl_last_error());
    /* succeeds without the limit and replaces the file */
    CHECK_OK(dcl_st_write_file(w, path));
    dcl_st *st;
    CHECK_OK(dcl_st_open(&st, path));
    CHECK(st && dcl_st_count(st) == 1 && dcl_st_find(st, "big"), "replaced file");
    dcl_st_close(st);
    CHECK(count_tmp_files() == 0, "temporary files left");
    dcl_st_writer_free(w);
    free(big);
    free(old);

    /* generic helpers */
    CHECK_OK(dcl_write_file_atomic(tmp_path("blob"), "hello", 5));
    void *p;
    size_t n;
    CHECK_OK(dcl_read_file(&p, &n, tmp_path("blob"), 0));
    CHECK(n == 5 && !memcmp(p, "hello", 5) && ((char *)p)[5] == 0, "read back");
    free(p);
    CHECK(dcl_read_file(&p, &n, tmp_path("blob"), 4) == DCL_ERR_FORMAT, "size limit");
    CHECK(dcl_read_file(&p, &n, tmp_path("absent"), 0) == DCL_ERR_IO, "absent");
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/dcl_test_st_XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_python_file();
    test_half_conversions();
    test_round_trip();
    test_malformed();
    test_atomic();
    rm_tree(g_tmp);
    CHECK_DONE();
}
