/* The training loader: class-balanced batches, the same batches whatever the
 * number of workers (content of batch i depends on (seed, i) only), frame
 * shift takes the key view from another frame of the same video (and a fake
 * key blends with the real crop of that frame under corresponding mixup), and an
 * unreadable crop is replaced and reported instead of stopping training. */
#include "check.h"
#include "synthcache.h"
#include "dcl/loader.h"
#include <unistd.h>

static dcl_loader_cfg base_cfg(void) {
    dcl_loader_cfg c;
    memset(&c, 0, sizeof c);
    c.batch = 8; c.size = 32; c.workers = 1; c.prefetch = 2; c.train = 1; c.balance = 1; c.two_views = 1; c.seed = 9;
    for (int k = 0; k < 3; k++) { c.mean[k] = 0.5f; c.std[k] = 0.25f; }
    c.views = dcl_views_none();
    return c;
}

/* normalised pixels of a cache image given by its relative path */
static float *norm_path(const dcl_cache *c, const char *rel, int S) {
    char p[4096];
    dcl_image im = {0};
    if (dcl_image_load(&im, dcl_cache_path(c, rel, p, sizeof p))) return NULL;
    float *v = malloc((size_t)S * S * 3 * sizeof(float));
    for (int i = 0; i < S * S * 3; i++) v[i] = (im.data[i] / 255.0f - 0.5f) / 0.25f;
    dcl_image_free(&im);
    return v;
}

/* normalised pixels of a crop, as the loader would give them without views */
static float *norm_crop(const dcl_cache *c, int e, int S) { return norm_path(c, c->e[e].crop, S); }

/* largest |v - (lam x + (1 - lam) p)| with lam fitted by least squares */
static double blend_residual(const float *v, const float *x, const float *p, int n, double *lam_out) {
    double num = 0, den = 0, worst = 0;
    for (int i = 0; i < n; i++) { double d = x[i] - p[i]; num += (v[i] - p[i]) * d; den += d * d; }
    double lam = den > 0 ? num / den : 1.0;
    for (int i = 0; i < n; i++) {
        double e = fabs(v[i] - (lam * x[i] + (1 - lam) * p[i]));
        if (e > worst) worst = e;
    }
    *lam_out = lam;
    return worst;
}

static int same(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++) if (fabsf(a[i] - b[i]) > 1e-5f) return 0;
    return 1;
}

int main(void) {
    char dir[] = "/tmp/dcl_loader_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(make_synth_cache(dir, 6, 4, 32, 5) == 0, "cache: %s", dcl_last_error());
    dcl_cache *c = NULL;
    CHECK_OK(dcl_cache_open(&c, dir));
    if (!c) CHECK_DONE();
    /* 0. the entries do not depend on the order of the index lines (workers
     * append them in the order they finish) */
    {
        char ip[4200], bak[4200];
        snprintf(ip, sizeof ip, "%s/index.jsonl", dir);
        snprintf(bak, sizeof bak, "%s/index.orig", dir);
        void *buf = NULL;
        size_t len = 0;
        CHECK_OK(dcl_read_file(&buf, &len, ip, 0));
        CHECK(rename(ip, bak) == 0, "rename index");
        /* the lines in reverse order */
        char *txt = buf, **ln = malloc((len + 1) * sizeof(char *));
        int nl = 0;
        for (char *q = txt; q < txt + len;) {
            char *e = memchr(q, '\n', txt + len - q);
            if (!e) break;
            *e = 0;
            ln[nl++] = q;
            q = e + 1;
        }
        FILE *f = fopen(ip, "w");
        for (int i = nl - 1; f && i >= 0; i--) fprintf(f, "%s\n", ln[i]);
        if (f) fclose(f);
        dcl_cache *r = NULL;
        CHECK_OK(dcl_cache_open(&r, dir));
        CHECK(r && r->n == c->n && r->nvideos == c->nvideos, "reversed index: %d entries / %d videos vs %d / %d",
              r ? r->n : -1, r ? r->nvideos : -1, c->n, c->nvideos);
        for (int i = 0; r && i < c->n && i < r->n; i++)
            if (strcmp(r->e[i].crop, c->e[i].crop) || r->e[i].video_idx != c->e[i].video_idx) {
                CHECK(0, "reversed index: entry %d is %s (video %d), expected %s (video %d)", i, r->e[i].crop,
                      r->e[i].video_idx, c->e[i].crop, c->e[i].video_idx);
                break;
            }
        for (int i = 1; i < c->n; i++)
            if (strcmp(c->e[i - 1].crop, c->e[i].crop) > 0) { CHECK(0, "entries not in crop order at %d", i); break; }
        dcl_cache_free(r);
        free(ln);
        free(buf);
        CHECK(rename(bak, ip) == 0, "restore index");
    }
    int *idx, n;
    CHECK_OK(dcl_cache_select(c, "train", &idx, &n));
    const int S = 32, B = 8, px = S * S * 3;

    /* 1. balance, and identical batches with 1 and 2 workers */
    dcl_loader_cfg lc = base_cfg();
    lc.views = dcl_views_paper();
    lc.views.p_frame_shift = 0.5f;
    float *snap = malloc((size_t)3 * B * px * sizeof(float));
    for (int w = 1; w <= 2; w++) {
        lc.workers = w;
        dcl_loader *l = NULL;
        CHECK_OK(dcl_loader_create(&l, c, idx, n, &lc));
        for (int bi = 0; l && bi < 3; bi++) {
            dcl_batch *b = NULL;
            CHECK_OK(dcl_loader_next(l, &b));
            if (!b) break;
            int fakes = 0;
            for (int j = 0; j < B; j++) { fakes += b->label[j]; CHECK(b->label[j] == c->e[b->entry[j]].label, "label of slot %d", j); }
            CHECK(fakes == B / 2, "batch %d: %d fakes of %d (balanced)", bi, fakes, B);
            if (w == 1) memcpy(snap + (size_t)bi * B * px, b->v1, (size_t)B * px * sizeof(float));
            else CHECK(!memcmp(snap + (size_t)bi * B * px, b->v1, (size_t)B * px * sizeof(float)), "batch %d differs with 2 workers", bi);
        }
        dcl_loader_free(l);
    }
    free(snap);

    /* 2. frame shift: v2 is another frame of the same video */
    lc = base_cfg();
    lc.views.p_frame_shift = 1.0f;
    dcl_loader *l = NULL;
    CHECK_OK(dcl_loader_create(&l, c, idx, n, &lc));
    int checked = 0;
    for (int bi = 0; l && bi < 2; bi++) {
        dcl_batch *b = NULL;
        CHECK_OK(dcl_loader_next(l, &b));
        for (int j = 0; b && j < B; j++) {
            int e = b->entry[j];
            float *v1 = norm_crop(c, e, S);
            CHECK(v1 && same(b->v1 + (size_t)j * px, v1, px), "v1 of slot %d is its crop", j);
            CHECK(!same(b->v2 + (size_t)j * px, b->v1 + (size_t)j * px, px), "frame shift: v2 of slot %d equals v1", j);
            int found = -1;
            for (int k = 0; k < n && found < 0; k++) {
                int o = idx[k];
                if (o == e || strcmp(c->e[o].video, c->e[e].video)) continue;
                float *v2 = norm_crop(c, o, S);
                if (v2 && same(b->v2 + (size_t)j * px, v2, px)) found = o;
                free(v2);
            }
            CHECK(found >= 0, "frame shift: v2 of slot %d is not another frame of video %s", j, c->e[e].video);
            if (found >= 0) CHECK(c->e[found].frame != c->e[e].frame, "frame shift picked the same frame");
            checked++;
            free(v1);
        }
    }
    CHECK(checked == 2 * B, "checked %d slots", checked);
    dcl_loader_free(l);

    /* 2b. frame shift with corresponding mixup: a fake key view is its
     * shifted frame blended with the real crop of that same frame */
    lc = base_cfg();
    lc.views.p_frame_shift = 1.0f;
    lc.views.p_mixup = 1.0f;
    lc.views.mixup_min = 0.3f;
    l = NULL;
    CHECK_OK(dcl_loader_create(&l, c, idx, n, &lc));
    int fakes_checked = 0;
    for (int bi = 0; l && bi < 2; bi++) {
        dcl_batch *b = NULL;
        CHECK_OK(dcl_loader_next(l, &b));
        for (int j = 0; b && j < B; j++) {
            int e = b->entry[j];
            if (!c->e[e].label) continue;
            const float *v2 = b->v2 + (size_t)j * px;
            int found = -1;
            double lam = 0;
            for (int k = 0; k < n && found < 0; k++) {
                int o = idx[k];
                if (o == e || strcmp(c->e[o].video, c->e[e].video)) continue;
                float *xo = norm_crop(c, o, S), *po = norm_path(c, c->e[o].pair, S);
                if (xo && po && blend_residual(v2, xo, po, px, &lam) < 1e-3) found = o;
                free(xo); free(po);
            }
            CHECK(found >= 0, "mixup + frame shift: v2 of fake slot %d is no blend of another frame with that frame's real crop", j);
            if (found >= 0) CHECK(lam >= 0.3 - 1e-3 && lam <= 1 + 1e-3, "mixup weight %g outside [0.3, 1]", lam);
            fakes_checked++;
        }
    }
    CHECK(fakes_checked == B, "checked %d fake slots", fakes_checked);
    dcl_loader_free(l);

    /* 3. an unreadable crop: replaced by another image of its class, counted */
    char p[4096];
    dcl_cache_path(c, c->e[idx[0]].crop, p, sizeof p);
    FILE *f = fopen(p, "w");
    if (f) { fputs("not a png", f); fclose(f); }
    lc = base_cfg();
    lc.workers = 2;
    l = NULL;
    CHECK_OK(dcl_loader_create(&l, c, idx, n, &lc));
    int lg = dcl_log_level;
    dcl_log_level = 0;
    int64_t bpe = l ? dcl_loader_batches_per_epoch(l) : 0;
    for (int64_t bi = 0; l && bi < bpe; bi++) {
        dcl_batch *b = NULL;
        CHECK_OK(dcl_loader_next(l, &b));
        for (int j = 0; b && j < B; j++) CHECK(b->entry[j] != idx[0], "the broken crop was delivered");
    }
    dcl_log_level = lg;
    CHECK(l && dcl_loader_errors(l) >= 1, "the broken crop should be counted (%d)", l ? dcl_loader_errors(l) : -1);
    dcl_loader_free(l);

    free(idx);
    dcl_cache_free(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    CHECK_DONE();
}
