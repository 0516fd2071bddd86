/* EfficientNet b0-b7 (timm, tf_ and torchvision variants) on dcl_net. */
#include "dcl/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The EfficientNet-b0 block table (timm's arch_def):
 * type, repeats, kernel, stride, expansion, output channels; SE ratio 0.25. */
static const struct { char type; int r, k, s, e, c; } g_stages[7] = {
    {'d', 1, 3, 1, 1, 16},
    {'i', 2, 3, 2, 6, 24},
    {'i', 2, 5, 2, 6, 40},
    {'i', 3, 3, 2, 6, 80},
    {'i', 3, 5, 1, 6, 112},
    {'i', 4, 5, 2, 6, 192},
    {'i', 1, 3, 1, 6, 320},
};

static const struct { float w, d; int res; float drop; } g_scale[8] = {
    {1.0f, 1.0f, 224, 0.2f}, {1.0f, 1.1f, 240, 0.2f}, {1.1f, 1.2f, 260, 0.3f}, {1.2f, 1.4f, 300, 0.3f},
    {1.4f, 1.8f, 380, 0.4f}, {1.6f, 2.2f, 456, 0.4f}, {1.8f, 2.6f, 528, 0.5f}, {2.0f, 3.1f, 600, 0.5f},
};

int dcl_make_divisible(double v, int divisor) {
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor) nv = divisor;
    if (nv < 0.9 * v) nv += divisor;
    return nv;
}

dcl_status dcl_effnet_config(dcl_effnet_cfg *cfg, const char *arch) {
    memset(cfg, 0, sizeof *cfg);
    const char *p = arch;
    dcl_effnet_family fam = DCL_EFF_TIMM;
    if (!strncmp(p, "tf_", 3)) { fam = DCL_EFF_TF; p += 3; }
    else if (!strncmp(p, "tv_", 3)) { fam = DCL_EFF_TV; p += 3; }
    else if (!strncmp(p, "torchvision_", 12)) { fam = DCL_EFF_TV; p += 12; }
    if (strncmp(p, "efficientnet_b", 14) || p[14] < '0' || p[14] > '7' ||
        (p[15] && p[15] != '_' && p[15] != '.'))
        return dcl_fail(DCL_ERR_ARG, "unknown architecture '%s' (expected efficientnet_b0..b7, tf_efficientnet_b0..b7 or tv_efficientnet_b0..b7)", arch);
    int v = p[14] - '0';
    snprintf(cfg->arch, sizeof cfg->arch, "%s", arch);
    cfg->variant = v;
    cfg->family = fam;
    cfg->width_mult = g_scale[v].w;
    cfg->depth_mult = g_scale[v].d;
    cfg->default_res = g_scale[v].res;
    cfg->bn_eps = fam == DCL_EFF_TF ? 1e-3f : 1e-5f;
    cfg->bn_momentum = 0.1f;
    if (fam == DCL_EFF_TV && v >= 5) { cfg->bn_eps = 1e-3f; cfg->bn_momentum = 0.01f; }
    cfg->num_classes = 1000;
    cfg->drop_rate = g_scale[v].drop;
    cfg->drop_path_rate = 0.0f;
    cfg->with_classifier = 1;
    /* timm's default configs: ImageNet mean/std for efficientnet_bN and
     * tf_efficientnet_bN (including the noisy-student _ns weights);
     * Inception (0.5) normalisation for the AdvProp _ap weights. */
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    if (strstr(arch, "_ap")) for (int i = 0; i < 3; i++) mean[i] = std[i] = 0.5f;
    memcpy(cfg->mean, mean, sizeof mean);
    memcpy(cfg->std, std, sizeof std);
    return DCL_OK;
}

void dcl_effnet_set_scale(dcl_effnet_cfg *cfg, float width, float depth) {
    cfg->width_mult = width;
    cfg->depth_mult = depth;
}

static int round_chs(const dcl_effnet_cfg *c, int ch) { return dcl_make_divisible(ch * (double)c->width_mult, 8); }

static int stage_repeats(const dcl_effnet_cfg *c, int r) {
    double v = ceil(r * (double)c->depth_mult - 1e-9);
    return v < 1 ? 1 : (int)v;
}

/* conv + bn (+ act) with timm names */
static int conv_bn(dcl_net *net, const dcl_effnet_cfg *c, const char *conv, const char *bn, int x,
                   int out, int k, int stride, int groups, int act) {
    int same = c->family == DCL_EFF_TF;
    int pad = ((stride - 1) + (k - 1)) / 2;
    int y = dcl_net_conv(net, conv, x, out, k, stride, 1, groups, pad, same, 0);
    if (y < 0) return -1;
    y = dcl_net_bn(net, bn, y, c->bn_eps, c->bn_momentum);
    if (y < 0) return -1;
    return act ? dcl_net_act(net, y, DCL_ACT_SILU) : y;
}

static int squeeze_excite(dcl_net *net, const char *prefix, int x, int chs, int rd) {
    char a[DCL_NAME_MAX], b[DCL_NAME_MAX];
    snprintf(a, sizeof a, "%s.se.conv_reduce", prefix);
    snprintf(b, sizeof b, "%s.se.conv_expand", prefix);
    int s = dcl_net_gap(net, x);
    if (s < 0) return -1;
    s = dcl_net_conv(net, a, s, rd, 1, 1, 1, 1, 0, 0, 1);
    if (s < 0) return -1;
    s = dcl_net_act(net, s, DCL_ACT_SILU);
    if (s < 0) return -1;
    s = dcl_net_conv(net, b, s, chs, 1, 1, 1, 1, 0, 0, 1);
    if (s < 0) return -1;
    s = dcl_net_act(net, s, DCL_ACT_SIGMOID);
    if (s < 0) return -1;
    return dcl_net_mul(net, x, s);
}

dcl_status dcl_effnet_build(dcl_model **out, dcl_backend *be, const dcl_effnet_cfg *cfg) {
    if (cfg->num_classes < 0 || cfg->width_mult <= 0 || cfg->depth_mult <= 0)
        return dcl_fail(DCL_ERR_ARG, "efficientnet: bad configuration");
    dcl_model *m = calloc(1, sizeof *m);
    if (!m) return dcl_fail(DCL_ERR_NOMEM, "efficientnet");
    m->cfg = *cfg;
    m->logits = -1;
    dcl_status st = dcl_net_create(&m->net, be);
    if (st) { free(m); return st; }
    dcl_net *net = m->net;
    const dcl_effnet_cfg *c = cfg;
    char n1[DCL_NAME_MAX], n2[DCL_NAME_MAX], pre[64];

    int x = m->input = dcl_net_input(net, 3);
    int stem = round_chs(c, 32);
    x = conv_bn(net, c, "conv_stem", "bn1", x, stem, 3, 2, 1, 1);
    if (x < 0) goto fail;

    int total = 0;
    for (int s = 0; s < 7; s++) total += stage_repeats(c, g_stages[s].r);
    int in = stem, bidx = 0;
    for (int s = 0; s < 7; s++) {
        int reps = stage_repeats(c, g_stages[s].r);
        int outc = round_chs(c, g_stages[s].c);
        for (int j = 0; j < reps; j++, bidx++) {
            int stride = j == 0 ? g_stages[s].s : 1;
            int k = g_stages[s].k, e = g_stages[s].e;
            int skip = stride == 1 && in == outc;
            int shortcut = x;
            snprintf(pre, sizeof pre, "blocks.%d.%d", s, j);
            if (g_stages[s].type == 'd') {
                /* depthwise-separable: conv_dw, bn1+act, se, conv_pw, bn2 */
                int rd = c->family == DCL_EFF_TV ? (in / 4 > 1 ? in / 4 : 1) : (int)nearbyint(in * 0.25);
                snprintf(n1, sizeof n1, "%s.conv_dw", pre);
                snprintf(n2, sizeof n2, "%s.bn1", pre);
                x = conv_bn(net, c, n1, n2, x, in, k, stride, in, 1);
                if (x < 0) goto fail;
                x = squeeze_excite(net, pre, x, in, rd);
                if (x < 0) goto fail;
                snprintf(n1, sizeof n1, "%s.conv_pw", pre);
                snprintf(n2, sizeof n2, "%s.bn2", pre);
                x = conv_bn(net, c, n1, n2, x, outc, 1, 1, 1, 0);
            } else {
                int mid = dcl_make_divisible((double)in * e, 8);
                int rd = c->family == DCL_EFF_TV ? (in / 4 > 1 ? in / 4 : 1) : (int)nearbyint(mid * 0.25 / e);
                snprintf(n1, sizeof n1, "%s.conv_pw", pre);
                snprintf(n2, sizeof n2, "%s.bn1", pre);
                x = conv_bn(net, c, n1, n2, x, mid, 1, 1, 1, 1);
                if (x < 0) goto fail;
                snprintf(n1, sizeof n1, "%s.conv_dw", pre);
                snprintf(n2, sizeof n2, "%s.bn2", pre);
                x = conv_bn(net, c, n1, n2, x, mid, k, stride, mid, 1);
                if (x < 0) goto fail;
                x = squeeze_excite(net, pre, x, mid, rd);
                if (x < 0) goto fail;
                snprintf(n1, sizeof n1, "%s.conv_pwl", pre);
                snprintf(n2, sizeof n2, "%s.bn3", pre);
                x = conv_bn(net, c, n1, n2, x, outc, 1, 1, 1, 0);
            }
            if (x < 0) goto fail;
            if (skip) {
                float dp = c->drop_path_rate * (float)bidx / (float)total;
                if (dp > 0) { x = dcl_net_droppath(net, x, dp); if (x < 0) goto fail; }
                x = dcl_net_add(net, x, shortcut);
                if (x < 0) goto fail;
            }
            in = outc;
        }
    }
    m->num_features = round_chs(c, 1280);
    x = conv_bn(net, c, "conv_head", "bn2", x, m->num_features, 1, 1, 1, 1);
    if (x < 0) goto fail;
    m->features = x;
    m->pooled = x = dcl_net_gap(net, x);
    if (x < 0) goto fail;
    if (c->with_classifier && c->num_classes > 0) {
        if (c->drop_rate > 0) { x = dcl_net_dropout(net, x, c->drop_rate); if (x < 0) goto fail; }
        m->logits = dcl_net_linear(net, "classifier", x, c->num_classes);
        if (m->logits < 0) goto fail;
    }
    *out = m;
    return DCL_OK;
fail:
    st = dcl_fail_ctx(DCL_ERR_INTERNAL, "building %s", c->arch);
    dcl_model_free(m);
    return st;
}

void dcl_model_free(dcl_model *m) {
    if (!m) return;
    dcl_net_free(m->net);
    free(m);
}

/* torchvision -> timm key mapping (see docs/ENGINE.md) */
int dcl_effnet_tv_to_timm(const char *tv, char *out, size_t n) {
    int a, b, k, l, used = 0;
    char rest[DCL_NAME_MAX];
    if (sscanf(tv, "features.0.%d.%127s%n", &a, rest, &used) == 2 && tv[used] == 0) {
        if (a == 0) snprintf(out, n, "conv_stem.%s", rest);
        else if (a == 1) snprintf(out, n, "bn1.%s", rest);
        else return -1;
        return 0;
    }
    if (sscanf(tv, "features.8.%d.%127s%n", &a, rest, &used) == 2 && tv[used] == 0) {
        if (a == 0) snprintf(out, n, "conv_head.%s", rest);
        else if (a == 1) snprintf(out, n, "bn2.%s", rest);
        else return -1;
        return 0;
    }
    if (sscanf(tv, "classifier.1.%127s%n", rest, &used) == 1 && tv[used] == 0) {
        snprintf(out, n, "classifier.%s", rest);
        return 0;
    }
    /* features.S.J.block.K.{0|1|fc1|fc2}.param */
    if (sscanf(tv, "features.%d.%d.block.%d.%127s%n", &a, &b, &k, rest, &used) == 4 && tv[used] == 0 &&
        a >= 1 && a <= 7) {
        char sub[16], param[DCL_NAME_MAX];
        char *dot = strchr(rest, '.');
        if (!dot || dot - rest >= (long)sizeof sub) return -1;
        memcpy(sub, rest, dot - rest);
        sub[dot - rest] = 0;
        snprintf(param, sizeof param, "%s", dot + 1);
        int s = a - 1;
        const char *mod = NULL;
        if (!strcmp(sub, "fc1")) mod = "se.conv_reduce";
        else if (!strcmp(sub, "fc2")) mod = "se.conv_expand";
        else if (sscanf(sub, "%d", &l) == 1 && (l == 0 || l == 1)) {
            static const char *ds[3][2] = {{"conv_dw", "bn1"}, {NULL, NULL}, {"conv_pw", "bn2"}};
            static const char *ir[4][2] = {{"conv_pw", "bn1"}, {"conv_dw", "bn2"}, {NULL, NULL}, {"conv_pwl", "bn3"}};
            if (s == 0) { if (k > 2) return -1; mod = ds[k][l]; }
            else { if (k > 3) return -1; mod = ir[k][l]; }
        }
        if (!mod) return -1;
        snprintf(out, n, "blocks.%d.%d.%s.%s", s, b, mod, param);
        return 0;
    }
    return -1;
}
