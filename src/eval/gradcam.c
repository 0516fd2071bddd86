/* Grad-CAM on the query encoder's last feature map (include/dcl/report.h). */
#include "dcl/report.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dcl_gradcam_free(dcl_gradcam_result *r) {
    if (!r) return;
    free(r->score);
    free(r->weights);
    free(r->cam);
    free(r->features);
    memset(r, 0, sizeof *r);
}

/* BN running statistics (and counters) of a net, saved on the host */
typedef struct saved_buffers {
    int n;
    float **v;
} saved_buffers;

static void saved_free(saved_buffers *sb) {
    for (int i = 0; i < sb->n; i++) free(sb->v[i]);
    free(sb->v);
    memset(sb, 0, sizeof *sb);
}

static dcl_status save_buffers(saved_buffers *sb, dcl_net *net) {
    const dcl_table *t = dcl_net_buffers(net);
    memset(sb, 0, sizeof *sb);
    sb->v = calloc(t->n + 1, sizeof(float *));
    if (!sb->v) return dcl_fail(DCL_ERR_NOMEM, "Grad-CAM: saving BN statistics");
    for (int i = 0; i < t->n; i++) {
        sb->v[i] = malloc((t->v[i].numel ? t->v[i].numel : 1) * sizeof(float));
        sb->n = i + 1;
        if (!sb->v[i]) { saved_free(sb); return dcl_fail(DCL_ERR_NOMEM, "Grad-CAM: saving BN statistics"); }
        dcl_status s = dcl_net_get_tensor(net, t->v[i].name, sb->v[i], t->v[i].numel);
        if (s) { saved_free(sb); return s; }
    }
    return DCL_OK;
}

static dcl_status restore_buffers(const saved_buffers *sb, dcl_net *net) {
    const dcl_table *t = dcl_net_buffers(net);
    for (int i = 0; i < t->n && i < sb->n; i++)
        DCL_TRY(dcl_net_set_tensor(net, t->v[i].name, sb->v[i], t->v[i].numel));
    return DCL_OK;
}

dcl_status dcl_gradcam(dcl_gradcam_result *out, dcl_detector *d, const float *x, int B, int H, int W) {
    memset(out, 0, sizeof *out);
    if (!d || !d->q || !x || B < 1 || H < 1 || W < 1)
        return dcl_fail(DCL_ERR_ARG, "Grad-CAM: bad arguments (batch %d, %dx%d)", B, H, W);
    if (d->q->cfg.drop_rate > 0)
        return dcl_fail(DCL_ERR_ARG, "Grad-CAM: the detector has dropout %g before its classifier, which would make "
                                     "the gradient random; open the model for inference (dcl_detector_open_model)",
                        d->q->cfg.drop_rate);
    dcl_model *m = d->q;
    dcl_net *net = m->net;
    int K = d->cfg.softmax_head ? 2 : 1;
    /* 1. evaluation-mode forward: the activations and the score */
    DCL_TRY(dcl_net_plan(net, B, H, W, DCL_PLAN_EVAL));
    int shp[4];
    dcl_net_value_shape(net, m->features, shp);
    int C = shp[1], Hf = shp[2], Wf = shp[3], L = Hf * Wf;
    int eshp[4];
    dcl_net_value_shape(net, d->q_embed, eshp);
    size_t nA = (size_t)B * L * C, nE = (size_t)B * eshp[1] * eshp[2] * eshp[3];
    out->B = B; out->C = C; out->Hf = Hf; out->Wf = Wf;
    out->score = malloc(B * sizeof(float));
    out->weights = malloc((size_t)B * C * sizeof(float));
    out->cam = malloc((size_t)B * L * sizeof(float));
    out->features = malloc(nA * sizeof(float));
    float *logits = malloc((size_t)B * K * sizeof(float)), *g = malloc(nA * sizeof(float));
    float *zeros = calloc(nA > nE ? nA : nE, sizeof(float)), *seed = malloc((size_t)B * K * sizeof(float));
    dcl_status s = DCL_OK;
    if (!out->score || !out->weights || !out->cam || !out->features || !logits || !g || !zeros || !seed)
        s = dcl_fail(DCL_ERR_NOMEM, "Grad-CAM buffers (batch %d, %d channels)", B, C);
    if (!s) s = dcl_net_set_input(net, x);
    if (!s) s = dcl_net_forward(net, NULL);
    if (!s) s = dcl_net_value_to_host(net, m->features, out->features);
    if (!s) s = dcl_net_value_to_host(net, m->logits, logits);
    for (int b = 0; b < B && !s; b++) out->score[b] = K == 1 ? logits[b] : logits[2 * b + 1] - logits[2 * b];
    /* 2. training-plan backward from the score: dScore/dA */
    saved_buffers sb = {0, NULL};
    if (!s) s = save_buffers(&sb, net);
    if (!s) s = dcl_net_plan(net, B, H, W, DCL_PLAN_TRAIN);
    dcl_rng rng;
    dcl_rng_seed(&rng, 1);
    if (!s) s = dcl_net_set_input(net, x);
    if (!s) s = dcl_net_forward(net, &rng);
    for (int b = 0; b < B && !s; b++) {
        if (K == 1) seed[b] = 1.0f;
        else { seed[2 * b] = -1.0f; seed[2 * b + 1] = 1.0f; }
    }
    if (!s) s = dcl_net_seed_from_host(net, m->logits, seed);
    if (!s) s = dcl_net_seed_from_host(net, d->q_embed, zeros);
    if (!s) s = dcl_net_seed_from_host(net, m->features, zeros);
    if (!s) s = dcl_net_zero_grad(net);
    if (!s) s = dcl_net_backward(net);
    if (!s) s = dcl_net_value_grad_to_host(net, m->features, g);
    if (sb.v) {
        dcl_status r = restore_buffers(&sb, net);
        if (!s) s = r;
        saved_free(&sb);
    }
    if (!s) s = dcl_net_zero_grad(net);
    /* 3. weights and maps */
    for (int b = 0; b < B && !s; b++) {
        float *w = out->weights + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int i = 0; i < L; i++) acc += g[((size_t)b * L + i) * C + c];
            w[c] = (float)(acc / L);
        }
        for (int i = 0; i < L; i++) {
            const float *a = out->features + ((size_t)b * L + i) * C;
            double acc = 0;
            for (int c = 0; c < C; c++) acc += (double)w[c] * a[c];
            out->cam[(size_t)b * L + i] = acc > 0 ? (float)acc : 0.0f;
        }
    }
    free(logits);
    free(g);
    free(zeros);
    free(seed);
    if (s) dcl_gradcam_free(out);
    return s;
}

dcl_status dcl_gradcam_overlay(dcl_image *out, const dcl_image *crop, const float *cam, int hf, int wf, float vmax,
                               float alpha) {
    memset(out, 0, sizeof *out);
    if (!crop || !crop->data || !cam || hf < 1 || wf < 1 || !(alpha >= 0 && alpha <= 1))
        return dcl_fail(DCL_ERR_ARG, "Grad-CAM overlay: bad arguments (map %dx%d, alpha %g)", hf, wf, alpha);
    int w = crop->w, h = crop->h;
    float *up = malloc((size_t)w * h * sizeof(float));
    if (!up) return dcl_fail(DCL_ERR_NOMEM, "Grad-CAM overlay %dx%d", w, h);
    dcl_status s = dcl_resize_bilinear_f32(up, w, h, cam, wf, hf, 1);
    if (!s && !(vmax > 0)) {
        vmax = 0;
        for (int i = 0; i < hf * wf; i++)
            if (cam[i] > vmax) vmax = cam[i];
    }
    if (!s) s = dcl_image_alloc(out, w, h);
    for (size_t i = 0; i < (size_t)w * h && !s; i++) {
        double t = vmax > 0 ? up[i] / vmax : 0;
        dcl_rgb c = dcl_plot_jet(t);
        const uint8_t *p = crop->data + 3 * i;
        uint8_t *q = out->data + 3 * i;
        const uint8_t cc[3] = {c.r, c.g, c.b};
        for (int k = 0; k < 3; k++) q[k] = (uint8_t)lrint((1 - alpha) * p[k] + alpha * cc[k]);
    }
    free(up);
    if (s) { dcl_image_free(out); memset(out, 0, sizeof *out); }
    return s;
}
