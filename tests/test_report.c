/* Figures and `dcl report`: plotting primitives give PNGs of the right size
 * that decode; base64 matches RFC 4648's vectors; the self-similarity
 * shortcut matches the Gram matrix computed directly; a perfect classifier's
 * ROC runs along the top edge; a t-SNE map of two separated clusters shows
 * both class colours; Grad-CAM on a tiny random EfficientNet agrees with a
 * finite-difference estimate of dScore/dA computed by a separate forward-only
 * network; the report of a short training run is one HTML file whose every
 * <img> is an inline PNG that decodes.
 *
 * DCL_TEST_REPORT_OUT=FILE copies the generated report there (used by
 * tests/test_report_browser.sh). */
#include "check.h"
#include "synthcache.h"
#include "dcl/eval.h"
#include "dcl/modelfile.h"
#include "dcl/report.h"
#include "dcl/trainer.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* strict decoder (independent of the encoder under test); -1 on bad input */
static long b64decode(uint8_t *out, const char *s, size_t n) {
    if (n % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=') {
                if (i + 4 != n || k < 2) return -1;
                v[k] = 0;
                pad++;
            } else {
                if (pad) return -1;
                v[k] = b64val((unsigned char)s[i + k]);
                if (v[k] < 0) return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = x >> 16;
        if (pad < 2) out[o++] = (x >> 8) & 255;
        if (pad < 1) out[o++] = x & 255;
    }
    return o;
}

static const uint8_t *px(const dcl_image *im, int x, int y) { return im->data + ((size_t)y * im->w + x) * 3; }

static int near_rgb(const uint8_t *p, dcl_rgb c, int tol) {
    return abs(p[0] - c.r) <= tol && abs(p[1] - c.g) <= tol && abs(p[2] - c.b) <= tol;
}

/* encodes and decodes; returns 1 when the round trip keeps size and pixels */
static int png_roundtrip(const dcl_image *im) {
    uint8_t *png = NULL;
    size_t n = 0;
    if (dcl_image_encode_png_mem(&png, &n, im)) return 0;
    dcl_image back;
    int ok = dcl_image_decode(&back, png, n) == DCL_OK && back.w == im->w && back.h == im->h &&
             !memcmp(back.data, im->data, (size_t)im->w * im->h * 3);
    if (ok) dcl_image_free(&back);
    free(png);
    return ok;
}

/* ------------------------------------------------------------ 1. primitives */

static void test_primitives(void) {
    dcl_image im;
    CHECK_OK(dcl_plot_canvas(&im, 320, 200, DCL_RGB_WHITE));
    CHECK(im.w == 320 && im.h == 200, "canvas %dx%d", im.w, im.h);
    dcl_rgb red = dcl_rgb_make(200, 10, 20), blue = dcl_rgb_make(10, 20, 220);
    /* a horizontal line of width 3 centred on y = 50.5 covers rows 49-51 fully */
    dcl_plot_line(&im, 20, 50.5, 300, 50.5, 3, red, 1);
    CHECK(near_rgb(px(&im, 100, 50), red, 0) && near_rgb(px(&im, 100, 49), red, 0) && near_rgb(px(&im, 100, 51), red, 0),
          "line body should be the line colour");
    CHECK(near_rgb(px(&im, 100, 46), DCL_RGB_WHITE, 0) && near_rgb(px(&im, 100, 55), DCL_RGB_WHITE, 0), "line should be 3 px wide");
    CHECK(near_rgb(px(&im, 10, 50), DCL_RGB_WHITE, 0), "nothing left of the line start");
    /* a half-transparent disc blends halfway */
    dcl_plot_disc(&im, 160.5, 130.5, 20, blue, 0.5);
    const uint8_t *c = px(&im, 160, 130);
    CHECK(abs(c[0] - (255 + 10) / 2) <= 1 && abs(c[2] - (255 + 220) / 2) <= 1, "disc centre blended 50%%: %d %d %d", c[0], c[1], c[2]);
    CHECK(near_rgb(px(&im, 160, 100), DCL_RGB_WHITE, 0), "outside the disc untouched");
    /* clipping: drawing off the canvas is harmless */
    dcl_plot_line(&im, -100, -100, 1000, 1000, 5, red, 1);
    dcl_plot_disc(&im, -50, 500, 30, red, 1);
    dcl_plot_rect(&im, 300, 190, 400, 260, red, 1);
    CHECK(near_rgb(px(&im, 319, 199), red, 0), "rect clipped to the corner");
    /* text metrics and ink */
    CHECK(dcl_plot_text_width("AB", 2) == 22, "two glyphs at scale 2 are 22 px wide (%d)", dcl_plot_text_width("AB", 2));
    CHECK(dcl_plot_text_width("θ=1", 1) == 17, "UTF-8 theta is one glyph (%d)", dcl_plot_text_width("θ=1", 1));
    dcl_image t;
    CHECK_OK(dcl_plot_canvas(&t, 40, 30, DCL_RGB_WHITE));
    dcl_plot_text(&t, 5, 5, "H", 2, DCL_RGB_BLACK, 0);
    int ink = 0, x0 = 99, x1 = -1, y0 = 99, y1 = -1;
    for (int y = 0; y < t.h; y++)
        for (int x = 0; x < t.w; x++)
            if (px(&t, x, y)[0] == 0) { ink++; x0 = x < x0 ? x : x0; x1 = x > x1 ? x : x1; y0 = y < y0 ? y : y0; y1 = y > y1 ? y : y1; }
    /* 'H' is two 7-row stems and a 3-pixel bar: 17 cells of 2x2 */
    CHECK(ink == 17 * 4, "ink of 'H' at scale 2: %d pixels", ink);
    CHECK(x0 == 5 && x1 == 14 && y0 == 5 && y1 == 18, "'H' box x %d-%d y %d-%d", x0, x1, y0, y1);
    dcl_image_free(&t);
    CHECK(png_roundtrip(&im), "canvas PNG round trip");
    dcl_image_free(&im);
    CHECK(dcl_plot_canvas(&im, 0, 10, DCL_RGB_WHITE) == DCL_ERR_ARG, "0-wide canvas refused");

    /* ticks */
    double tk[32];
    int dec;
    int n = dcl_plot_nice_ticks(0, 1, 5, tk, 32, &dec);
    CHECK(n == 6 && fabs(tk[1] - 0.2) < 1e-12 && fabs(tk[5] - 1.0) < 1e-12 && dec == 1, "ticks of [0,1]: %d, dec %d", n, dec);
    n = dcl_plot_nice_ticks(0, 0.9, 4, tk, 32, &dec);
    CHECK(n == 4 && fabs(tk[1] - 0.25) < 1e-12 && dec == 2, "ticks of [0,0.9]: %d (step %g), dec %d", n, n > 1 ? tk[1] : 0, dec);
    n = dcl_plot_nice_ticks(-130, 470, 6, tk, 32, &dec);
    CHECK(n == 6 && tk[0] == -100 && tk[5] == 400 && dec == 0, "ticks of [-130,470]: %d from %g", n, tk[0]);
    double lo = 0.137, hi = 0.861;
    dcl_plot_nice_range(&lo, &hi);
    CHECK(lo <= 0.137 && hi >= 0.861 && lo >= 0 && hi <= 1.0 + 1e-12, "nice range [%g, %g]", lo, hi);

    /* the jet map against matplotlib's 'jet' (0 -> (0,0,0.5), 0.5 -> (0.4968,1,0.4743), 1 -> (0.5,0,0)) */
    const double ref[3][4] = {{0, 0, 0, 0.5}, {0.5, 0.4968, 1.0, 0.4743}, {1, 0.5, 0, 0}};
    for (int i = 0; i < 3; i++) {
        dcl_rgb j = dcl_plot_jet(ref[i][0]);
        CHECK(fabs(j.r / 255.0 - ref[i][1]) < 0.03 && fabs(j.g / 255.0 - ref[i][2]) < 0.03 && fabs(j.b / 255.0 - ref[i][3]) < 0.03,
              "jet(%g) = %d,%d,%d", ref[i][0], j.r, j.g, j.b);
    }
}

/* ------------------------------------------------------------ 2. text helpers */

static void test_text(void) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"}; /* RFC 4648 section 10 */
    for (int i = 0; i < 7; i++) {
        dcl_buf b = {0};
        CHECK_OK(dcl_base64_append(&b, in[i], strlen(in[i])));
        CHECK(b.data && !strcmp(b.data, want[i]), "base64('%s') = '%s', want '%s'", in[i], b.data ? b.data : "(null)", want[i]);
        dcl_buf_free(&b);
    }
    /* binary round trip through the independent decoder */
    uint8_t raw[256], back[300];
    for (int i = 0; i < 256; i++) raw[i] = (uint8_t)(i * 37 + 11);
    dcl_buf b = {0};
    CHECK_OK(dcl_base64_append(&b, raw, 256));
    CHECK(b.data && b64decode(back, b.data, b.len) == 256 && !memcmp(back, raw, 256), "base64 round trip");
    dcl_buf_free(&b);

    CHECK_OK(dcl_html_escape(&b, "a<b & \"c\" 'd'>"));
    CHECK(b.data && !strcmp(b.data, "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"), "escape: %s", b.data);
    dcl_buf_free(&b);

    const char *md = "# Table 1\n\nAUC on **Celeb-DF** (`frame` level) <script>\n\n"
                     "| method | FF++ | Celeb-DF |\n|:---|---:|:-:|\n| DCL | 99.30 | 82.30 |\n| a \\| b | 1 |\n";
    CHECK_OK(dcl_markdown_to_html(&b, md));
    const char *h = b.data ? b.data : "";
    CHECK(strstr(h, "<h4>Table 1</h4>") != NULL, "heading: %s", h);
    CHECK(strstr(h, "<strong>Celeb-DF</strong>") && strstr(h, "<code>frame</code>") && strstr(h, "&lt;script&gt;") &&
              !strstr(h, "<script>"),
          "inline markup and escaping: %s", h);
    CHECK(strstr(h, "<th>method</th><th>FF++</th><th>Celeb-DF</th>") != NULL, "header row: %s", h);
    CHECK(strstr(h, "<td>DCL</td><td class=\"r\">99.30</td><td class=\"c\">82.30</td>") != NULL, "aligned body row: %s", h);
    CHECK(strstr(h, "<td>a | b</td>") != NULL, "escaped pipe: %s", h);
    dcl_buf_free(&b);
}

/* ------------------------------------------------------------ 3. figures */

static void test_figures(void) {
    /* self-similarity against the Gram matrix computed directly */
    enum { B = 3, L = 5, C = 7 };
    float F[B * L * C];
    dcl_rng r;
    dcl_rng_seed(&r, 4);
    for (int i = 0; i < B * L * C; i++) F[i] = (float)dcl_rng_normal(&r);
    for (int i = 0; i < L * C; i++) F[L * C + i] = (float)(i % C) + 1.0f; /* image 1: all locations equal */
    double ss[B];
    dcl_self_similarity(ss, F, B, L, C);
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                const float *u = F + ((size_t)b * L + i) * C, *v = F + ((size_t)b * L + j) * C;
                double d = 0, nu = 0, nv = 0;
                for (int c = 0; c < C; c++) { d += (double)u[c] * v[c]; nu += (double)u[c] * u[c]; nv += (double)v[c] * v[c]; }
                sum += d / sqrt(nu * nv);
            }
        CHECK(fabs(ss[b] - sum / (L * L)) < 1e-9, "self-similarity %d: %.12f vs Gram %.12f", b, ss[b], sum / (L * L));
    }
    CHECK(fabs(ss[1] - 1.0) < 1e-9, "identical locations give 1 (%g)", ss[1]);

    /* ROC of a perfect classifier: the curve runs along the top edge */
    double sc[40];
    int lab[40];
    for (int i = 0; i < 40; i++) { lab[i] = i % 2; sc[i] = lab[i] ? 0.6 + i * 0.005 : 0.1 + i * 0.005; }
    dcl_score_set set = {"perfect", sc, lab, 40};
    dcl_image roc;
    CHECK_OK(dcl_fig_roc(&roc, "ROC", &set, 1));
    if (roc.data) {
        CHECK(roc.w == 760 && roc.h == 640, "ROC size %dx%d", roc.w, roc.h);
        CHECK(png_roundtrip(&roc), "ROC PNG round trip");
        /* find the plot frame: the pixel column of fpr 0.5 at tpr 1 and at tpr 0.5 */
        dcl_axes ax;
        dcl_image scratch;
        CHECK_OK(dcl_plot_canvas(&scratch, roc.w, roc.h, DCL_RGB_WHITE));
        /* same layout as the figure (same call), to map data to pixels */
        CHECK_OK(dcl_axes_create(&ax, &scratch, 0, 0, roc.w, roc.h, -0.01, 1.01, -0.01, 1.01, "ROC",
                                 "False positive rate (reals called fake)", "True positive rate (fakes caught)"));
        int xm = (int)dcl_axes_px(&ax, 0.5), ytop = (int)dcl_axes_py(&ax, 1.0), ymid = (int)dcl_axes_py(&ax, 0.5);
        int xl = (int)dcl_axes_px(&ax, 0.0), yq = (int)dcl_axes_py(&ax, 0.25);
        dcl_rgb c0 = dcl_plot_palette(0);
        CHECK(near_rgb(px(&roc, xm, ytop), c0, 40), "curve at (0.5, 1): %d %d %d", px(&roc, xm, ytop)[0], px(&roc, xm, ytop)[1], px(&roc, xm, ytop)[2]);
        CHECK(near_rgb(px(&roc, xl, yq), c0, 40), "curve at (0, 0.25) (the left edge)");
        CHECK(!near_rgb(px(&roc, xm + 40, ymid + 40), c0, 60), "no curve below the diagonal");
        dcl_image_free(&scratch);
        dcl_image_free(&roc);
    }
    int one[4] = {1, 1, 1, 1};
    double s4[4] = {0.1, 0.2, 0.3, 0.4};
    dcl_score_set bad = {"only fakes", s4, one, 4};
    dcl_status s = dcl_fig_roc(&roc, "x", &bad, 1);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "only fakes"), "one-class set names the set: %s", dcl_last_error());

    /* t-SNE of two separated Gaussian clusters: both colours appear, apart */
    enum { N = 120, D = 10 };
    float *x = malloc(N * D * sizeof(float)), *y = malloc(N * 2 * sizeof(float));
    int cat[N];
    for (int i = 0; i < N; i++) {
        cat[i] = i >= N / 2;
        for (int d = 0; d < D; d++) x[i * D + d] = (float)(dcl_rng_normal(&r) + (cat[i] ? 8.0 : 0.0));
    }
    dcl_tsne_opts to;
    dcl_tsne_default_opts(&to);
    to.perplexity = 15;
    to.n_iter = 500;
    CHECK_OK(dcl_tsne(y, x, N, D, &to));
    double m[2][2] = {{0, 0}, {0, 0}};
    for (int i = 0; i < N; i++) { m[cat[i]][0] += y[2 * i] / (N / 2); m[cat[i]][1] += y[2 * i + 1] / (N / 2); }
    double sp = 0;
    for (int i = 0; i < N; i++) sp += hypot(y[2 * i] - m[cat[i]][0], y[2 * i + 1] - m[cat[i]][1]) / N;
    CHECK(hypot(m[0][0] - m[1][0], m[0][1] - m[1][1]) > 3 * sp, "clusters apart in the embedding");
    const char *names[2] = {"real", "fake"};
    dcl_scatter_panel pan = {"two clusters", y, cat, N, names, 2};
    dcl_image sc2;
    CHECK_OK(dcl_fig_scatter(&sc2, &pan, 1, 1));
    if (sc2.data) {
        CHECK(png_roundtrip(&sc2), "scatter PNG round trip");
        /* markers are 75% opaque: count pixels of the colour over white or over another marker */
        int cnt[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            dcl_rgb c = dcl_plot_palette(k);
            dcl_rgb on_white = dcl_rgb_make((3 * c.r + 255) / 4, (3 * c.g + 255) / 4, (3 * c.b + 255) / 4);
            for (int yy = 0; yy < sc2.h; yy++)
                for (int xx = 0; xx < sc2.w; xx++) {
                    const uint8_t *q = px(&sc2, xx, yy);
                    cnt[k] += near_rgb(q, c, 16) || near_rgb(q, on_white, 6);
                }
        }
        CHECK(cnt[0] > 400 && cnt[1] > 400, "pixels of both class colours: %d, %d", cnt[0], cnt[1]);
        dcl_image_free(&sc2);
    }
    free(x);
    free(y);

    /* histograms and galleries produce decodable images of the announced size */
    dcl_hist_panel hp[2] = {{"a", ss, lab, B, NULL, 0, NULL, NULL}, {"b", sc, lab, 40, NULL, 0, NULL, NULL}};
    dcl_image hi;
    CHECK_OK(dcl_fig_histograms(&hi, hp, 2, 20, "value"));
    if (hi.data) { CHECK(hi.w == 1400 && hi.h == 520 && png_roundtrip(&hi), "histograms %dx%d", hi.w, hi.h); dcl_image_free(&hi); }
    dcl_image tiles[3];
    for (int i = 0; i < 3; i++) CHECK_OK(dcl_plot_canvas(&tiles[i], 50 + 100 * i, 50 + 100 * i, dcl_plot_palette(i)));
    const char *caps[3] = {"one", "two", "three"};
    dcl_gallery_row gr[2] = {{"row", tiles, caps, 3}, {"empty row", NULL, NULL, 0}};
    dcl_image g;
    CHECK_OK(dcl_fig_gallery(&g, "gallery", gr, 2, 64, 8));
    if (g.data) {
        CHECK(g.w >= 3 * 64 && png_roundtrip(&g), "gallery %dx%d", g.w, g.h);
        dcl_image_free(&g);
    }
    for (int i = 0; i < 3; i++) dcl_image_free(&tiles[i]);
}

/* ------------------------------------------------------------ 4. Grad-CAM */

static void test_gradcam(void) {
    dcl_backend *be = dcl_backend_ref();
    dcl_effnet_cfg e;
    CHECK_OK(dcl_effnet_config(&e, "efficientnet_b0"));
    dcl_effnet_set_scale(&e, 0.25f, 0.34f);
    e.drop_rate = 0;
    dcl_method_cfg mc = dcl_method_defaults();
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, be, &e, &mc, 0));
    if (!d) return;
    dcl_rng r;
    dcl_rng_seed(&r, 9);
    CHECK_OK(dcl_net_init_params(d->q->net, &r));
    /* non-trivial running statistics so that eval and train BN differ */
    const dcl_table *bt = dcl_net_buffers(d->q->net);
    for (int i = 0; i < bt->n; i++) {
        const dcl_named *ne = &bt->v[i];
        if (ne->flags & DCL_PF_COUNTER) continue;
        float *v = malloc(ne->numel * sizeof(float));
        int var = strstr(ne->name, "running_var") != NULL;
        for (int k = 0; k < ne->numel; k++) v[k] = var ? 0.5f + (float)dcl_rng_uniform(&r) : 0.2f * (float)dcl_rng_normal(&r);
        CHECK_OK(dcl_net_set_tensor(d->q->net, ne->name, v, ne->numel));
        free(v);
    }
    enum { B = 2, S = 64 };
    float *x = malloc(B * S * S * 3 * sizeof(float));
    for (int i = 0; i < B * S * S * 3; i++) x[i] = (float)dcl_rng_normal(&r);
    float p0[B], p1[B];
    CHECK_OK(dcl_detector_plan(d, B, S, S, DCL_PLAN_EVAL));
    CHECK_OK(dcl_detector_predict(d, x, p0));

    dcl_gradcam_result g;
    CHECK_OK(dcl_gradcam(&g, d, x, B, S, S));
    if (!g.cam) { dcl_detector_free(d); free(x); return; }
    int C = g.C, L = g.Hf * g.Wf;
    CHECK(g.Hf == 2 && g.Wf == 2 && C == d->q->num_features, "map %dx%d, %d channels", g.Hf, g.Wf, C);
    int finite = 1, positive = 0;
    for (int i = 0; i < B * L; i++) { finite &= isfinite(g.cam[i]) && g.cam[i] >= 0; positive += g.cam[i] > 0; }
    CHECK(finite, "Grad-CAM maps are finite and non-negative");
    /* the BN statistics are restored: predictions are unchanged */
    CHECK_OK(dcl_detector_plan(d, B, S, S, DCL_PLAN_EVAL));
    CHECK_OK(dcl_detector_predict(d, x, p1));
    CHECK(p0[0] == p1[0] && p0[1] == p1[1], "predictions after Grad-CAM: %g %g vs %g %g", p1[0], p1[1], p0[0], p0[1]);
    for (int b = 0; b < B; b++)
        CHECK(fabsf(1.0f / (1.0f + expf(-g.score[b])) - p0[b]) < 1e-5, "score %d is the eval-mode logit", b);

    /* the classifier head alone (pooling + linear), forward only, as the
     * reference: score(A) and a central difference along one channel */
    dcl_net *h = NULL;
    CHECK_OK(dcl_net_create(&h, be));
    int in = dcl_net_input(h, C);
    int gp = dcl_net_gap(h, in);
    int lin = dcl_net_linear(h, "classifier", gp, 1);
    CHECK(lin >= 0, "head net: %s", dcl_last_error());
    CHECK_OK(dcl_net_finalize(h));
    float *wt = malloc(C * sizeof(float)), bias;
    CHECK_OK(dcl_net_get_tensor(d->q->net, "classifier.weight", wt, C));
    CHECK_OK(dcl_net_get_tensor(d->q->net, "classifier.bias", &bias, 1));
    CHECK_OK(dcl_net_set_tensor(h, "classifier.weight", wt, C));
    CHECK_OK(dcl_net_set_tensor(h, "classifier.bias", &bias, 1));
    CHECK_OK(dcl_net_plan(h, B, g.Hf, g.Wf, DCL_PLAN_EVAL));
    float z[B], zp[B], zm[B];
    CHECK_OK(dcl_net_set_input(h, g.features));
    CHECK_OK(dcl_net_forward(h, NULL));
    CHECK_OK(dcl_net_value_to_host(h, lin, z));
    CHECK_CLOSE("head(A) = score", z, g.score, B, 1e-5, 1e-5);
    /* the channel with the largest weight */
    int cbest = 0;
    for (int c = 1; c < C; c++)
        if (fabsf(g.weights[c]) > fabsf(g.weights[cbest])) cbest = c;
    const float eps = 1e-2f;
    float *Ap = malloc((size_t)B * L * C * sizeof(float));
    for (int sgn = 0; sgn < 2; sgn++) {
        memcpy(Ap, g.features, (size_t)B * L * C * sizeof(float));
        for (int i = 0; i < B * L; i++) Ap[(size_t)i * C + cbest] += sgn ? -eps : eps;
        CHECK_OK(dcl_net_set_input(h, Ap));
        CHECK_OK(dcl_net_forward(h, NULL));
        CHECK_OK(dcl_net_value_to_host(h, lin, sgn ? zm : zp));
    }
    float fd[B], wc[B];
    for (int b = 0; b < B; b++) {
        fd[b] = (float)(((double)zp[b] - zm[b]) / (2.0 * eps) / L); /* mean over locations of dScore/dA_c */
        wc[b] = g.weights[(size_t)b * C + cbest];
    }
    printf("Grad-CAM weight of channel %d: backward %.6g %.6g, finite difference %.6g %.6g\n", cbest, wc[0], wc[1], fd[0], fd[1]);
    CHECK_CLOSE("Grad-CAM weight vs finite difference", wc, fd, B, 1e-5, 2e-3);
    /* the map is ReLU(sum_c w_c A_c), recomputed here */
    float *cam = malloc(B * L * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            double acc = 0;
            for (int c = 0; c < C; c++) acc += (double)g.weights[b * C + c] * g.features[((size_t)b * L + i) * C + c];
            cam[b * L + i] = acc > 0 ? (float)acc : 0;
        }
    CHECK_CLOSE("cam = ReLU(sum w A)", g.cam, cam, B * L, 1e-6, 1e-5);
    free(cam);
    free(Ap);
    free(wt);
    dcl_net_free(h);

    /* overlay: the hot corner turns red, the cold one blue */
    dcl_image crop, ov;
    CHECK_OK(dcl_plot_canvas(&crop, S, S, dcl_rgb_make(128, 128, 128)));
    float m4[4] = {1.0f, 0.0f, 0.0f, 0.0f};
    CHECK_OK(dcl_gradcam_overlay(&ov, &crop, m4, 2, 2, 0, 0.5f));
    if (ov.data) {
        const uint8_t *hot = px(&ov, 0, 0), *cold = px(&ov, S - 1, S - 1);
        CHECK(hot[0] > hot[2] + 40 && cold[2] > cold[0] + 30, "overlay colours: hot %d,%d,%d cold %d,%d,%d", hot[0], hot[1], hot[2], cold[0], cold[1], cold[2]);
        CHECK(ov.w == S && ov.h == S && png_roundtrip(&ov), "overlay size");
        dcl_image_free(&ov);
    }
    dcl_image_free(&crop);
    dcl_gradcam_free(&g);
    dcl_detector_free(d);

    /* a detector with dropout before the classifier is refused */
    e.drop_rate = 0.2f;
    CHECK_OK(dcl_detector_create(&d, be, &e, &mc, 0));
    if (d) {
        dcl_status s = dcl_gradcam(&g, d, x, B, S, S);
        CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "dropout"), "dropout refused: %s", dcl_last_error());
        dcl_detector_free(d);
    }
    free(x);
}

/* ------------------------------------------------------------ 5. the report */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

#define CFG "model: {arch: efficientnet_b0, width: 0.25, depth: 0.34, size: 64, drop_rate: 0.0}\n" \
            "data: {prefetch: 2, workers: 2}\n" \
            "train: {epochs: 2, batch: 8, lr: 1.0e-3, device: cpu, threads: 2, log_every: 1, seed: 3}\n" \
            "dcl: {queue_size: 64, warmup_epochs: 1}\n" \
            "views: {patch: 0, srm: 0, frame_shift: 0, mixup: 0, flip: 0.5, crop: 0, jitter: 0, blur: 0, jpeg: 0}\n"

static void check_html(const char *path, int min_images) {
    char *t = NULL;
    size_t len = 0;
    CHECK_OK(dcl_read_file((void **)&t, &len, path, 0));
    if (!t) return;
    CHECK(!strncmp(t, "<!DOCTYPE html>", 15), "starts with the doctype");
    CHECK(len > 8 && strstr(t + len - 16, "</html>"), "ends with </html>");
    CHECK(!strstr(t, "<script") && !strstr(t, "<link") && !strstr(t, "http://") && !strstr(t, "https://") &&
              !strstr(t, "url("),
          "no external resources or scripts");
    int imgs = 0, ok = 0;
    for (const char *p = strstr(t, "<img"); p; p = strstr(p + 4, "<img")) {
        imgs++;
        const char *end = strchr(p, '>');
        const char *src = strstr(p, " src=\"");
        if (!end || !src || src > end) continue;
        src += 6;
        const char *pre = "data:image/png;base64,";
        if (strncmp(src, pre, strlen(pre))) continue;
        const char *d0 = src + strlen(pre), *d1 = strchr(d0, '"');
        if (!d1) continue;
        uint8_t *bin = malloc((size_t)(d1 - d0));
        long n = b64decode(bin, d0, (size_t)(d1 - d0));
        dcl_image im;
        int w = 0, h = 0;
        const char *ws = strstr(p, "width=\""), *hs = strstr(p, "height=\"");
        if (ws && ws < end) w = atoi(ws + 7);
        if (hs && hs < end) h = atoi(hs + 8);
        if (n > 8 && !memcmp(bin, "\x89PNG\r\n\x1a\n", 8) && dcl_image_decode(&im, bin, (size_t)n) == DCL_OK) {
            ok += im.w == w && im.h == h && im.w > 0;
            dcl_image_free(&im);
        }
        free(bin);
    }
    printf("%s: %zu bytes, %d images, %d inline PNGs that decode at their stated size\n", path, len, imgs, ok);
    CHECK(imgs >= min_images, "%d images, expected at least %d", imgs, min_images);
    CHECK(ok == imgs, "every <img> is an inline PNG that decodes (%d of %d)", ok, imgs);
    free(t);
}

static void test_report(void) {
    char dir[] = "/tmp/dcl_report_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cache[300], run[300], path[600], out[4096];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    CHECK(make_synth_cache(cache, 12, 4, 64, 21) == 0, "synthetic cache: %s", dcl_last_error());
    dcl_config *c = NULL;
    CHECK_OK(dcl_config_parse(&c, CFG, strlen(CFG), "test"));
    char kv[700];
    snprintf(kv, sizeof kv, "data.cache=%s", cache);
    CHECK_OK(dcl_config_set_arg(c, kv));
    snprintf(kv, sizeof kv, "train.out=%s", run);
    CHECK_OK(dcl_config_set_arg(c, kv));
    dcl_train_cfg t;
    CHECK_OK(dcl_train_cfg_from_config(&t, c));
    dcl_config_free(c);
    dcl_train_result tr;
    double t0 = dcl_now();
    CHECK_OK(dcl_train(&t, 0, CFG, &tr));
    printf("trained %lld steps in %.1f s\n", (long long)tr.steps, dcl_now() - t0);

    /* results as `dcl eval` and protocols leave them */
    snprintf(path, sizeof path, "%s/scores.csv", run);
    CHECK(write_text(path, "crop,label,score,dataset,method,video,frame,face\n"
                           "a.png,0,0.1,ffpp,real,v1,0,0\na.png,1,0.8,ffpp,df,v2,0,0\na.png,0,0.3,ffpp,real,v3,0,0\n"
                           "a.png,1,0.35,ffpp,df,v4,0,0\na.png,0,0.2,celebdf,real,v5,0,0\na.png,1,0.9,celebdf,synth,v6,0,0\n"
                           "a.png,1,,celebdf,synth,v7,0,0\n") == 0, "scores.csv");
    snprintf(path, sizeof path, "%s/metrics.json", run);
    CHECK(write_text(path, "{\"frame\": {\"auc\": 0.93, \"eer\": 0.12}, \"n\": 120, \"model\": \"best.safetensors\"}\n") == 0, "metrics.json");
    snprintf(path, sizeof path, "%s/table.md", run);
    CHECK(write_text(path, "# Cross-dataset AUC\n\n| train | test | AUC |\n|---|---|---:|\n| FF++ | Celeb-DF | 82.30 |\n") == 0, "table.md");
    /* a log line with nan (a run without validation writes that) */
    snprintf(path, sizeof path, "%s/log.jsonl", run);
    dcl_train_log lg;
    CHECK_OK(dcl_train_log_load(&lg, path));
    CHECK(lg.n == tr.steps && lg.ne == 2 && lg.bad_lines == 0, "log: %d steps, %d epochs, %d bad", lg.n, lg.ne, lg.bad_lines);
    dcl_train_log_free(&lg);
    char lp[600];
    snprintf(lp, sizeof lp, "%s/nan.jsonl", dir);
    CHECK(write_text(lp, "{\"step\": 1, \"loss\": 0.5, \"ce\": nan, \"inter\": -nan, \"intra\": inf}\n"
                         "{\"epoch_end\": 1, \"val_auc\": nan, \"val_acc\": 0.5}\nnot json\n"
                         "{\"step\": 2, \"loss\": 0.4, \"ce\": 0.4, \"inter\": 0, \"intra\": 0}\n"
                         "{\"step\": 2, \"loss\": 0.3, \"ce\": 0.3, \"inter\": 0, \"intra\": 0}\n") == 0, "nan log");
    CHECK_OK(dcl_train_log_load(&lg, lp));
    CHECK(lg.n == 2 && lg.ne == 1 && lg.bad_lines == 1 && isnan(lg.ce[0]) && isnan(lg.val_auc[0]) && lg.val_acc[0] == 0.5 &&
              lg.loss[1] == 0.3,
          "nan log: %d steps, %d epochs, %d bad", lg.n, lg.ne, lg.bad_lines);
    dcl_train_log_free(&lg);

    /* the report without data, then with data and a baseline */
    dcl_report_opts o;
    dcl_report_default_opts(&o);
    o.run_dir = run;
    CHECK_OK(dcl_report_write(&o, out, sizeof out));
    snprintf(path, sizeof path, "%s/report.html", run);
    CHECK(!strcmp(out, path), "default output %s", out);
    check_html(path, 2);

    snprintf(path, sizeof path, "%s/full.html", dir);
    o.out = path;
    o.data = cache;
    o.split = "val";
    o.baseline = run;
    o.tsne_iters = 300;
    o.gradcam_per_class = 3;
    o.theta_low = NAN; /* auto: this tiny model's similarities are low */
    o.theta_high = NAN;
    t0 = dcl_now();
    CHECK_OK(dcl_report_write(&o, out, sizeof out));
    printf("report with figures in %.1f s\n", dcl_now() - t0);
    check_html(path, 8);
    char *h = NULL;
    size_t hl = 0;
    if (dcl_read_file((void **)&h, &hl, path, 0) == DCL_OK) {
        CHECK(strstr(h, "<table class=\"md\">") && strstr(h, "<td class=\"r\">82.30</td>"), "table.md rendered");
        CHECK(strstr(h, "Figure 2") && strstr(h, "Figure 3") && strstr(h, "Figure 4") && strstr(h, "Grad-CAM"), "figure sections");
        CHECK(strstr(h, "celebdf") && strstr(h, "ffpp") && strstr(h, "frame.auc"), "score table and metrics.json rows");
        const char *parts[] = {"Figure", "ROC", "Grad-CAM", "training"};
        for (int i = 0; i < 4; i++) {
            char pat[64];
            snprintf(pat, sizeof pat, "class=\"note\">%s", parts[i]);
            CHECK(!strstr(h, pat), "%s was left out: %.200s", parts[i], strstr(h, pat));
        }
        CHECK(strstr(h, "1 row without a score") != NULL, "the empty score is reported");
        CHECK(strstr(h, "auto: the median") != NULL, "automatic thresholds stated");
        free(h);
    }
    const char *keep = getenv("DCL_TEST_REPORT_OUT");
    if (keep && *keep) {
        char *data = NULL;
        size_t n = 0;
        if (dcl_read_file((void **)&data, &n, path, 0) == DCL_OK) {
            CHECK_OK(dcl_write_file_atomic(keep, data, n));
            free(data);
        }
    }
    /* nothing temporary left beside the output */
    DIR *dd = opendir(dir);
    int tmp = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) tmp += strstr(e->d_name, ".tmp") != NULL;
    if (dd) closedir(dd);
    CHECK(tmp == 0, "temporary files left: %d", tmp);

    /* errors: a missing run, a missing split, a bad output directory */
    dcl_report_opts bad = o;
    bad.run_dir = "/nonexistent/run";
    dcl_status s = dcl_report_write(&bad, out, sizeof out);
    CHECK(s == DCL_ERR_NOTFOUND && strstr(dcl_last_error(), "/nonexistent/run"), "missing run: %s", dcl_last_error());
    bad = o;
    bad.split = "test";
    s = dcl_report_write(&bad, out, sizeof out);
    CHECK(s == DCL_ERR_ARG && strstr(dcl_last_error(), "'test'") && strstr(dcl_last_error(), "'val'"), "missing split: %s", dcl_last_error());
    bad = o;
    bad.data = NULL;
    bad.out = "/nonexistent/dir/r.html";
    s = dcl_report_write(&bad, out, sizeof out);
    CHECK(s != DCL_OK && strstr(dcl_last_error(), "/nonexistent/dir"), "unwritable output: %s", dcl_last_error());

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    dcl_set_num_threads(2);
    test_primitives();
    test_text();
    test_figures();
    test_gradcam();
    test_report();
    CHECK_DONE();
}
