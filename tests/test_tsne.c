/* t-SNE: affinities, gradients and trustworthiness against scikit-learn
 * goldens (tools/make_metric_goldens.py); kNN against brute force; embedding
 * quality, determinism across runs and thread counts, speed, bad arguments. */
#include "check.h"
#include "dcl/eval.h"
#include <cjson/cJSON.h>
#include <omp.h>

#define FIX "tests/fixtures/metrics/"

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(n + 1);
    size_t got = fread(b, 1, n, f);
    fclose(f);
    b[got] = 0;
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

static double *jarr(const cJSON *o, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItem(o, key);
    int m = cJSON_GetArraySize(a);
    double *v = malloc((m ? m : 1) * sizeof *v);
    for (int i = 0; i < m; i++) v[i] = cJSON_GetArrayItem(a, i)->valuedouble;
    if (n) *n = m;
    return v;
}

/* max |a - b| / max |b| */
static double rel_err(const double *a, const double *b, int n) {
    double md = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

/* fraction of points whose k nearest neighbours in the embedding mostly share their label */
static double knn_agreement(const float *y, const int *lab, int n, int k) {
    int good = 0;
    double *d = malloc(n * sizeof *d);
    int *used = malloc(n * sizeof *used);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double a = y[2 * i] - y[2 * j], b = y[2 * i + 1] - y[2 * j + 1];
            d[j] = a * a + b * b;
            used[j] = j == i;
        }
        int same = 0;
        for (int t = 0; t < k; t++) {
            int best = -1;
            for (int j = 0; j < n; j++) if (!used[j] && (best < 0 || d[j] < d[best])) best = j;
            used[best] = 1;
            same += lab[best] == lab[i];
        }
        good += 2 * same > k;
    }
    free(d); free(used);
    return (double)good / n;
}

static float *clusters(int *lab, int nc, int per, int d, double spread, uint64_t seed) {
    dcl_rng r;
    dcl_rng_seed(&r, seed);
    double *c = malloc((size_t)nc * d * sizeof *c);
    for (int i = 0; i < nc * d; i++) c[i] = spread * dcl_rng_normal(&r);
    float *x = malloc((size_t)nc * per * d * sizeof *x);
    for (int i = 0; i < nc * per; i++) {
        lab[i] = i % nc;
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = (float)(c[lab[i] * d + j] + dcl_rng_normal(&r));
    }
    free(c);
    return x;
}

static void test_goldens(void) {
    cJSON *g = load_json(FIX "tsne.json");
    CHECK(g != NULL, "tsne.json parses");
    if (!g) return;
    const int n = cJSON_GetObjectItem(g, "n")->valueint, d = cJSON_GetObjectItem(g, "d")->valueint;
    const int k = cJSON_GetObjectItem(g, "k")->valueint, tk = cJSON_GetObjectItem(g, "trust_k")->valueint;
    const double perp = cJSON_GetObjectItem(g, "perplexity")->valuedouble;
    int m;
    double *xd = jarr(g, "x", &m), *pe = jarr(g, "p_exact", NULL), *pk = jarr(g, "p_knn", NULL);
    double *yg = jarr(g, "y", NULL), *ge = jarr(g, "grad", NULL);
    float *x = malloc(m * sizeof *x), *yf = malloc(2 * n * sizeof *yf);
    for (int i = 0; i < m; i++) x[i] = (float)xd[i];
    for (int i = 0; i < 2 * n; i++) yf[i] = (float)yg[i];
    CHECK(m == n * d, "x has n*d values");

    /* sklearn calibrates on float32 distances to an entropy tolerance of 1e-5 */
    double *p = malloc((size_t)n * n * sizeof *p);
    CHECK_OK(dcl_tsne_p_exact(p, x, n, d, perp));
    double e = rel_err(p, pe, n * n), sum = 0;
    for (int i = 0; i < n * n; i++) sum += p[i];
    CHECK(e < 1e-4, "exact P vs sklearn: relative error %g", e);
    CHECK(fabs(sum - 1) < 1e-12, "exact P sums to 1 (%.17g)", sum);

    dcl_sparse sp;
    CHECK_OK(dcl_tsne_p_knn(&sp, x, n, d, perp, k, 1));
    double *dense = calloc((size_t)n * n, sizeof *dense);
    int sym = 1;
    for (int i = 0; i < n; i++)
        for (int64_t q = sp.rowptr[i]; q < sp.rowptr[i + 1]; q++) dense[(size_t)i * n + sp.col[q]] = sp.val[q];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) sym &= dense[(size_t)i * n + j] == dense[(size_t)j * n + i];
    e = rel_err(dense, pk, n * n);
    CHECK(e < 1e-4, "kNN P vs sklearn: relative error %g", e);
    CHECK(sym, "kNN P is exactly symmetric");
    dcl_sparse_free(&sp);

    /* exact gradient and KL at a fixed embedding, with sklearn's P */
    double *grad = malloc(2 * n * sizeof *grad), *gbh = malloc(2 * n * sizeof *gbh), kl, klbh;
    CHECK_OK(dcl_tsne_grad_exact(grad, &kl, yg, pe, n));
    e = rel_err(grad, ge, 2 * n);
    double klw = cJSON_GetObjectItem(g, "kl")->valuedouble;
    CHECK(e < 1e-10, "exact gradient vs sklearn: relative error %g", e);
    CHECK(fabs(kl - klw) < 1e-10 * fabs(klw), "KL %.17g vs sklearn %.17g", kl, klw);

    /* Barnes-Hut with every P entry: theta 0 is exact, theta 0.5 close */
    dcl_sparse full = {.n = n};
    full.rowptr = malloc((n + 1) * sizeof *full.rowptr);
    full.col = malloc((size_t)n * n * sizeof *full.col);
    full.val = malloc((size_t)n * n * sizeof *full.val);
    int64_t w = 0;
    for (int i = 0; i < n; i++) {
        full.rowptr[i] = w;
        for (int j = 0; j < n; j++) if (j != i) { full.col[w] = j; full.val[w++] = pe[(size_t)i * n + j]; }
    }
    full.rowptr[n] = w;
    CHECK_OK(dcl_tsne_grad_bh(gbh, &klbh, yg, &full, 0.0));
    e = rel_err(gbh, ge, 2 * n);
    CHECK(e < 1e-10, "Barnes-Hut theta=0 vs sklearn exact gradient: relative error %g", e);
    CHECK(fabs(klbh - klw) < 1e-9 * fabs(klw), "Barnes-Hut theta=0 KL %.17g vs %.17g", klbh, klw);
    CHECK_OK(dcl_tsne_grad_bh(gbh, NULL, yg, &full, 0.5));
    double num = 0, den = 0;
    for (int i = 0; i < 2 * n; i++) { num += (gbh[i] - ge[i]) * (gbh[i] - ge[i]); den += ge[i] * ge[i]; }
    CHECK(sqrt(num / den) < 0.05, "Barnes-Hut theta=0.5 gradient within 5%% (%.3g)", sqrt(num / den));
    CHECK(dcl_tsne_grad_bh(gbh, NULL, yg, &full, -1) == DCL_ERR_ARG, "negative theta rejected");
    dcl_sparse_free(&full);

    /* trustworthiness of a fixed embedding */
    double tw;
    CHECK_OK(dcl_trustworthiness(&tw, x, n, d, yf, 2, tk));
    double tww = cJSON_GetObjectItem(g, "trust_fixed")->valuedouble;
    CHECK(fabs(tw - tww) < 1e-12, "trustworthiness %.17g vs sklearn %.17g", tw, tww);
    CHECK(dcl_trustworthiness(&tw, x, n, d, yf, 2, n / 2) == DCL_ERR_ARG, "trustworthiness k >= n/2 rejected");

    /* our embeddings are as trustworthy as sklearn's */
    const cJSON *tsk = cJSON_GetObjectItem(g, "trust_sklearn_tsne");
    const char *names[] = {"exact", "barnes_hut"};
    for (int mth = 0; mth < 2; mth++) {
        dcl_tsne_opts o;
        dcl_tsne_default_opts(&o);
        o.perplexity = perp;
        o.method = mth ? DCL_TSNE_BARNES_HUT : DCL_TSNE_EXACT;
        dcl_tsne_info info;
        CHECK_OK(dcl_tsne_run(yf, &info, x, n, d, &o));
        CHECK_OK(dcl_trustworthiness(&tw, x, n, d, yf, 2, tk));
        double ref = cJSON_GetObjectItem(tsk, names[mth])->valuedouble;
        CHECK(tw >= ref - 0.02, "%s t-SNE trustworthiness %.4f vs sklearn %.4f", names[mth], tw, ref);
        CHECK(info.method == o.method && info.iters > 250 && isfinite(info.kl) && info.learning_rate == 50,
              "info: method %d iters %d kl %g lr %g", info.method, info.iters, info.kl, info.learning_rate);
        printf("%s: trustworthiness %.4f (sklearn %.4f), KL %.4f after %d iterations\n", names[mth], tw, ref,
               info.kl, info.iters);
    }
    /* PCA initialisation (n_iter = 0 returns it) against sklearn's PCA */
    {
        const int pn = cJSON_GetObjectItem(g, "pca_n")->valueint, pdim = cJSON_GetObjectItem(g, "pca_d")->valueint;
        double *px = jarr(g, "pca_x", NULL), *pz = jarr(g, "pca_init", NULL);
        float *pxf = malloc((size_t)pn * pdim * sizeof *pxf), *py = malloc(2 * pn * sizeof *py);
        double *pyd = malloc(2 * pn * sizeof *pyd);
        for (int i = 0; i < pn * pdim; i++) pxf[i] = (float)px[i];
        dcl_tsne_opts o;
        dcl_tsne_default_opts(&o);
        o.n_iter = 0;
        CHECK_OK(dcl_tsne(py, pxf, pn, pdim, &o));
        for (int i = 0; i < 2 * pn; i++) pyd[i] = py[i];
        e = rel_err(pyd, pz, 2 * pn);
        CHECK(e < 1e-5, "PCA initialisation vs sklearn PCA: relative error %g", e);
        free(px); free(pz); free(pxf); free(py); free(pyd);
    }
    free(xd); free(pe); free(pk); free(yg); free(ge); free(x); free(yf); free(p); free(dense);
    free(grad); free(gbh);
    cJSON_Delete(g);
}

static void test_knn(void) {
    const int n = 600, d = 12, k = 9;
    dcl_rng r;
    dcl_rng_seed(&r, 11);
    float *x = malloc(n * d * sizeof *x);
    for (int i = 0; i < n * d; i++) x[i] = (float)dcl_rng_normal(&r);
    for (int i = 0; i < 40; i++) memcpy(x + (size_t)(i + 100) * d, x + (size_t)i * d, d * sizeof *x); /* duplicates */
    for (int i = 200; i < 260; i++) for (int j = 0; j < d; j++) x[i * d + j] = (float)(int)(x[i * d + j] * 2); /* ties */
    int *idx = malloc(n * k * sizeof *idx);
    double *d2 = malloc(n * k * sizeof *d2), *all = malloc(n * sizeof *all);
    CHECK_OK(dcl_knn_vptree(idx, d2, x, n, d, k, 5));
    int bad = 0, self = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < d; t++) { double a = (double)x[i * d + t] - x[j * d + t]; s += a * a; }
            all[j] = j == i ? INFINITY : s;
        }
        /* k smallest by selection */
        for (int t = 0; t < k; t++) {
            int best = 0;
            for (int j = 1; j < n; j++) if (all[j] < all[best]) best = j;
            if (fabs(sqrt(all[best]) - sqrt(d2[i * k + t])) > 1e-9 * (1 + sqrt(all[best]))) bad++;
            all[best] = INFINITY;
            self += idx[i * k + t] == i;
        }
    }
    CHECK(bad == 0, "vantage-point tree kNN distances equal brute force (%d mismatches)", bad);
    CHECK(self == 0, "a point is never its own neighbour");
    CHECK(dcl_knn_vptree(idx, d2, x, n, d, n, 5) == DCL_ERR_ARG, "k = n rejected");
    free(x); free(idx); free(d2); free(all);
}

static void test_clusters_and_determinism(void) {
    const int nc = 4, per = 250, n = nc * per, d = 50;
    int *lab = malloc(n * sizeof *lab);
    float *x = clusters(lab, nc, per, d, 1.5, 42);
    float *y1 = malloc(2 * n * sizeof *y1), *y2 = malloc(2 * n * sizeof *y2), *y3 = malloc(2 * n * sizeof *y3);
    dcl_tsne_opts o;
    dcl_tsne_default_opts(&o);
    o.seed = 9;
    o.n_iter = 500;
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    double t0 = dcl_now();
    dcl_tsne_info info;
    CHECK_OK(dcl_tsne_run(y1, &info, x, n, d, &o));
    double t1 = dcl_now();
    CHECK(info.method == DCL_TSNE_BARNES_HUT, "n=1000 uses Barnes-Hut by default");
    double agree = knn_agreement(y1, lab, n, 10);
    CHECK(agree > 0.95, "4 clusters in 50-D stay separated: kNN label agreement %.4f", agree);
    printf("clusters: n=%d, %d iterations in %.2fs, kNN agreement %.4f, KL %.4f\n", n, info.iters, t1 - t0, agree,
           info.kl);
    omp_set_num_threads(1);
    CHECK_OK(dcl_tsne(y2, x, n, d, &o));
    CHECK(!memcmp(y1, y2, 2 * n * sizeof *y1), "same seed, 1 vs 2 threads: identical bytes");
    omp_set_num_threads(2);
    o.n_iter = 60;
    o.init = DCL_TSNE_INIT_RANDOM;
    CHECK_OK(dcl_tsne(y2, x, n, d, &o));
    CHECK_OK(dcl_tsne(y3, x, n, d, &o));
    CHECK(!memcmp(y2, y3, 2 * n * sizeof *y1), "random init, same seed twice: identical bytes");
    o.seed = 11;
    CHECK_OK(dcl_tsne(y3, x, n, d, &o));
    CHECK(memcmp(y2, y3, 2 * n * sizeof *y1) != 0, "random init: another seed gives another embedding");

    /* exact method on a subset: deterministic too */
    dcl_tsne_default_opts(&o);
    o.n_iter = 400;
    CHECK_OK(dcl_tsne_run(y1, &info, x, 200, d, &o));
    CHECK(info.method == DCL_TSNE_EXACT, "n=200 uses the exact method by default");
    omp_set_num_threads(1);
    CHECK_OK(dcl_tsne(y2, x, 200, d, &o));
    CHECK(!memcmp(y1, y2, 2 * 200 * sizeof *y1), "exact: 1 vs 2 threads identical");
    agree = knn_agreement(y1, lab, 200, 5);
    CHECK(agree > 0.95, "exact: clusters separated (%.4f)", agree);
    omp_set_num_threads(threads);
    free(lab); free(x); free(y1); free(y2); free(y3);
}

static void test_speed(void) {
    const int n = 2000, d = 50;
    int *lab = malloc(n * sizeof *lab);
    float *x = clusters(lab, 10, n / 10, d, 1.0, 7), *y = malloc(2 * n * sizeof *y);
    double t0 = dcl_now();
    CHECK_OK(dcl_tsne(y, x, n, d, NULL));
    double t = dcl_now() - t0;
    printf("2000 x 50 points, 1000 iterations: %.2fs on %d threads\n", t, omp_get_max_threads());
#if defined(__SANITIZE_ADDRESS__)
    const double limit = 600.0; /* instrumented build */
#else
    const double limit = 60.0;  /* a few seconds on two idle cores; generous for busy machines */
#endif
    CHECK(t < limit, "2000 points took %.2fs", t);
    double agree = knn_agreement(y, lab, n, 10);
    CHECK(agree > 0.9, "10 clusters: kNN agreement %.4f", agree);
    free(lab); free(x); free(y);
}

static void test_bad_args(void) {
    float x[40 * 3] = {0}, y[80];
    for (int i = 0; i < 120; i++) x[i] = (float)(i % 7);
    dcl_tsne_opts o;
    dcl_tsne_default_opts(&o);
    CHECK(dcl_tsne(y, x, 20, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "perplexity 30"),
          "default perplexity with n=20: %s", dcl_last_error());
    o.perplexity = 50;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "perplexity 50"),
          "perplexity >= n: %s", dcl_last_error());
    o.perplexity = 20;
    o.method = DCL_TSNE_BARNES_HUT;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "3 * perplexity"),
          "Barnes-Hut with n < 3 perplexity: %s", dcl_last_error());
    dcl_tsne_default_opts(&o);
    o.perplexity = 5;
    x[7] = NAN;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "row 2"),
          "NaN input names its row: %s", dcl_last_error());
    x[7] = 1;
    CHECK(dcl_tsne(y, x, 1, 3, &o) == DCL_ERR_ARG, "n=1 rejected");
    CHECK(dcl_tsne(y, x, 40, 0, &o) == DCL_ERR_ARG, "d=0 rejected");
    o.theta = -0.5;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "theta"), "negative theta");
    o.theta = 0.5;
    o.n_iter = -1;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG, "negative n_iter");
    o.n_iter = 1000;
    o.momentum_final = 1.5;
    CHECK(dcl_tsne(y, x, 40, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "momentum"), "momentum >= 1");
    o.momentum_final = 0.8;
    o.method = DCL_TSNE_EXACT;
    CHECK(dcl_tsne(y, x, 9000, 3, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "exact"),
          "exact beyond its size limit: %s", dcl_last_error());
    /* all points identical: finishes, stays finite */
    float same[30 * 2];
    for (int i = 0; i < 60; i++) same[i] = 1.0f;
    o.method = DCL_TSNE_AUTO;
    CHECK_OK(dcl_tsne(y, same, 30, 2, &o));
    int fin = 1;
    for (int i = 0; i < 60; i++) fin &= isfinite(y[i]);
    CHECK(fin, "identical points give a finite embedding");
    CHECK(dcl_tsne(NULL, x, 40, 3, &o) == DCL_ERR_ARG, "NULL output rejected");
}

int main(void) {
    test_goldens();
    test_knn();
    test_bad_args();
    test_clusters_and_determinism();
    test_speed();
    CHECK_DONE();
}
