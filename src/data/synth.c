/* Synthetic FaceForensics++-layout data: face photographs -> identities ->
 * real videos -> five manipulation families (see dcl/synth.h and
 * docs/SYNTH.md).  This file plans the set and renders frames; writing the
 * files is in synth_write.c.
 *
 * Geometry.  Every identity has a "portrait": a float RGB image OS times
 * finer than the frame and MARGIN times larger, made from its photograph by
 * an affine map (scale, roll, flip, aspect) and colour changes.  MTCNN run on
 * the portrait gives the five landmarks every manipulation is placed with.
 * A frame samples the portrait through the video's camera (a similarity:
 * pan, zoom, roll), then drifting light and sensor noise are applied.
 * Manipulations are placed in the face's canonical frame: the affine map
 * sending (u, v) to eye midpoint + u * (right eye - left eye) + v * (mouth
 * midpoint - eye midpoint), so eyes sit at (+-0.5, 0) and the mouth at (0, 1).
 *
 * Exactness of the masks.  A fake frame starts as a copy of the real frame
 * and only pixels inside the manipulated region (where the mask is 255) are
 * recomputed, so outside the mask fake == real bit for bit. */
#include "dcl/synth.h"
#include "dcl/face.h"
#include "backend/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's thread controls (the CPU backend sets them) */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

#define OS 1.25      /* portrait pixels per frame pixel */
#define MARGIN 1.3   /* portrait side / frame side */
#define NCACHE 3     /* portraits kept in memory */
#define LFW_N 100    /* lfw_subset.npy: the first 100 of its 200 crops are faces */
#define LFW_S 25
#define PI 3.14159265358979323846

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* independent stream for (seed, tag, index) */
static dcl_rng rng_for(uint64_t seed, uint64_t tag, uint64_t idx) {
    dcl_rng r;
    dcl_rng_seed(&r, mix64(seed ^ mix64(tag ^ mix64(idx))));
    return r;
}

static double uni(dcl_rng *r, double a, double b) { return a + (b - a) * dcl_rng_uniform(r); }
static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }
static uint8_t to_u8(double v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)lrint(v); }
static double smooth01(double e0, double e1, double x) {
    if (x <= e0) return 0;
    if (x >= e1) return 1;
    double t = (x - e0) / (e1 - e0);
    return t * t * (3 - 2 * t);
}

/* affine map: x' = a x + b y + tx, y' = c x + d y + ty */
typedef struct aff2 { double a, b, c, d, tx, ty; } aff2;

static void aff_apply(const aff2 *m, double x, double y, double *ox, double *oy) {
    *ox = m->a * x + m->b * y + m->tx;
    *oy = m->c * x + m->d * y + m->ty;
}
static aff2 aff_inv(const aff2 *m) {
    double det = m->a * m->d - m->b * m->c;
    if (fabs(det) < 1e-12) det = det < 0 ? -1e-12 : 1e-12;
    aff2 r = {m->d / det, -m->b / det, -m->c / det, m->a / det, 0, 0};
    r.tx = -(r.a * m->tx + r.b * m->ty);
    r.ty = -(r.c * m->tx + r.d * m->ty);
    return r;
}
/* m after n: x -> m(n(x)) */
static aff2 aff_mul(const aff2 *m, const aff2 *n) {
    aff2 r = {m->a * n->a + m->b * n->c, m->a * n->b + m->b * n->d, m->c * n->a + m->d * n->c, m->c * n->b + m->d * n->d, 0, 0};
    r.tx = m->a * n->tx + m->b * n->ty + m->tx;
    r.ty = m->c * n->tx + m->d * n->ty + m->ty;
    return r;
}
/* canonical face frame -> image, from five landmarks */
static aff2 aff_canon(const float (*lm)[2]) {
    double ex = 0.5 * (lm[0][0] + lm[1][0]), ey = 0.5 * (lm[0][1] + lm[1][1]);
    double mx = 0.5 * (lm[3][0] + lm[4][0]), my = 0.5 * (lm[3][1] + lm[4][1]);
    aff2 r = {lm[1][0] - lm[0][0], mx - ex, lm[1][1] - lm[0][1], my - ey, ex, ey};
    return r;
}

/* float RGB image, pixel centres at integer + 0.5 */
typedef struct fimg { int w, h; float *p; } fimg;

static void samp_bilinear(const fimg *im, double x, double y, float out[3]) {
    x -= 0.5;
    y -= 0.5;
    x = clampd(x, 0, im->w - 1);
    y = clampd(y, 0, im->h - 1);
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < im->w ? x0 + 1 : x0, y1 = y0 + 1 < im->h ? y0 + 1 : y0;
    float fx = (float)(x - x0), fy = (float)(y - y0);
    const float *a = im->p + ((size_t)y0 * im->w + x0) * 3, *b = im->p + ((size_t)y0 * im->w + x1) * 3;
    const float *c = im->p + ((size_t)y1 * im->w + x0) * 3, *d = im->p + ((size_t)y1 * im->w + x1) * 3;
    for (int k = 0; k < 3; k++)
        out[k] = (a[k] * (1 - fx) + b[k] * fx) * (1 - fy) + (c[k] * (1 - fx) + d[k] * fx) * fy;
}

static double keys(double x) { /* cubic convolution, a = -0.5 */
    x = fabs(x);
    if (x < 1) return (1.5 * x - 2.5) * x * x + 1;
    if (x < 2) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
    return 0;
}

/* bicubic on a single-channel plane, clamped at the borders */
static double samp_cubic1(const float *p, int w, int h, double x, double y) {
    x -= 0.5;
    y -= 0.5;
    int ix = (int)floor(x), iy = (int)floor(y);
    double fx = x - ix, fy = y - iy, acc = 0;
    for (int j = -1; j <= 2; j++) {
        int yy = iy + j < 0 ? 0 : iy + j >= h ? h - 1 : iy + j;
        double wy = keys(j - fy), row = 0;
        for (int i = -1; i <= 2; i++) {
            int xx = ix + i < 0 ? 0 : ix + i >= w ? w - 1 : ix + i;
            row += keys(i - fx) * p[(size_t)yy * w + xx];
        }
        acc += wy * row;
    }
    return acc;
}

static dcl_status image_ensure(dcl_image *img, int w, int h) {
    if (img->data && img->w == w && img->h == h && img->c == 3) return DCL_OK;
    dcl_image_free(img);
    return dcl_image_alloc(img, w, h);
}

/* ------------------------------------------------------------------------ */
/* options                                                                   */

static const char *const k_method_names[DCL_SYNTH_NMETHODS] = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures",
                                                               "SelfBlended"};
static const char *const k_method_short[DCL_SYNTH_NMETHODS] = {"DF", "F2F", "FS", "NT", "SBI"};

const char *dcl_synth_method_name(int m) {
    if (m == DCL_SYNTH_REAL) return "real";
    return m >= 0 && m < DCL_SYNTH_NMETHODS ? k_method_names[m] : NULL;
}

dcl_status dcl_synth_parse_methods(unsigned *mask, const char *list) {
    if (!mask || !list) return dcl_fail(DCL_ERR_ARG, "dcl_synth_parse_methods: NULL argument");
    unsigned m = 0;
    char buf[512];
    if (strlen(list) >= sizeof buf) return dcl_fail(DCL_ERR_ARG, "method list is too long");
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int hit = 0;
        if (!strcasecmp(tok, "all")) { m |= DCL_SYNTH_ALL_METHODS; hit = 1; }
        for (int i = 0; i < DCL_SYNTH_NMETHODS; i++)
            if (!strcasecmp(tok, k_method_names[i]) || !strcasecmp(tok, k_method_short[i])) { m |= 1u << i; hit = 1; }
        if (!hit)
            return dcl_fail(DCL_ERR_ARG, "unknown method '%s' (known: Deepfakes/DF, Face2Face/F2F, FaceSwap/FS, "
                            "NeuralTextures/NT, SelfBlended/SBI, all)", tok);
    }
    if (!m) return dcl_fail(DCL_ERR_ARG, "empty method list '%s'", list);
    *mask = m;
    return DCL_OK;
}

dcl_status dcl_synth_parse_qualities(unsigned *mask, const char *list) {
    if (!mask || !list) return dcl_fail(DCL_ERR_ARG, "dcl_synth_parse_qualities: NULL argument");
    unsigned m = 0;
    char buf[256];
    if (strlen(list) >= sizeof buf) return dcl_fail(DCL_ERR_ARG, "quality list is too long");
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!strcasecmp(tok, "raw") || !strcasecmp(tok, "c0")) m |= DCL_SYNTH_Q_RAW;
        else if (!strcasecmp(tok, "c23")) m |= DCL_SYNTH_Q_C23;
        else if (!strcasecmp(tok, "c40")) m |= DCL_SYNTH_Q_C40;
        else if (!strcasecmp(tok, "all")) m |= DCL_SYNTH_Q_RAW | DCL_SYNTH_Q_C23 | DCL_SYNTH_Q_C40;
        else return dcl_fail(DCL_ERR_ARG, "unknown quality '%s' (raw, c23, c40 or all)", tok);
    }
    if (!m) return dcl_fail(DCL_ERR_ARG, "empty quality list '%s'", list);
    *mask = m;
    return DCL_OK;
}

void dcl_synth_opts_default(dcl_synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->identities = 12;
    o->videos_per_identity = 1;
    o->frames = 32;
    o->width = 256;
    o->height = 256;
    o->fps = 25;
    o->qualities = DCL_SYNTH_Q_C23 | DCL_SYNTH_Q_C40;
    o->methods = DCL_SYNTH_ALL_METHODS;
    o->mtcnn_weights = "models/mtcnn.safetensors";
    o->threads = 1;
}

static dcl_status check_opts(const dcl_synth_opts *o) {
    if (o->identities < 2 || o->identities > 1000)
        return dcl_fail(DCL_ERR_ARG, "identities must be in 2..1000 (got %d): a swap needs two people", o->identities);
    if (o->videos_per_identity < 1 || o->videos_per_identity > 1000)
        return dcl_fail(DCL_ERR_ARG, "videos per identity must be in 1..1000 (got %d)", o->videos_per_identity);
    if ((int64_t)o->identities * o->videos_per_identity > 1000)
        return dcl_fail(DCL_ERR_ARG, "identities x videos per identity = %lld: at most 1000 videos (ids 000..999)",
                        (long long)o->identities * o->videos_per_identity);
    if (o->frames < 2 || o->frames > 1000) return dcl_fail(DCL_ERR_ARG, "frames must be in 2..1000 (got %d)", o->frames);
    if (o->width < 64 || o->height < 64 || o->width > 1920 || o->height > 1920 || (o->width | o->height) & 1)
        return dcl_fail(DCL_ERR_ARG, "frame size %dx%d: width and height must be even and in 64..1920", o->width, o->height);
    if (!(o->fps > 0) || o->fps > 240) return dcl_fail(DCL_ERR_ARG, "fps %g out of range (0, 240]", o->fps);
    if (!o->qualities || o->qualities & ~7u) return dcl_fail(DCL_ERR_ARG, "no valid quality selected (raw, c23, c40)");
    if (o->methods & ~DCL_SYNTH_ALL_METHODS) return dcl_fail(DCL_ERR_ARG, "unknown method bits 0x%x", o->methods);
    if (!o->mtcnn_weights || !*o->mtcnn_weights) return dcl_fail(DCL_ERR_ARG, "no MTCNN weights file given");
    return DCL_OK;
}

/* ------------------------------------------------------------------------ */
/* face sources                                                              */

typedef struct base_face {
    char name[32];
    int gray;            /* single-channel photograph: colourised per identity */
    int lfw;             /* 25x25 LFW crop: placed on a backdrop */
    int w, h;
    float *px;           /* w*h*3, 0..255 */
    float *lum;          /* w*h luminance */
    float *lum_blur;     /* LFW: the luminance blurred (sigma 3 pixels) */
    int state;           /* 0 not yet located, 1 face found, -1 no face */
    float box[4], lm[5][2];
    float lref;          /* mean luminance inside the face box */
} base_face;

typedef struct backdrop { int w, h; float *px; } backdrop; /* blurred thumbnail */

static const char *const k_sk_dirs[] = {"/usr/lib/python3/dist-packages/skimage/data", NULL};
static const char *const k_mpl_dirs[] = {"/usr/share/matplotlib/mpl-data/sample_data",
                                         "/usr/lib/python3/dist-packages/matplotlib/mpl-data/sample_data", NULL};

/* first dir/file that exists, into buf; NULL when none */
static const char *find_file(char *buf, size_t n, const char *dir, const char *const *defaults, const char *file) {
    if (dir) {
        snprintf(buf, n, "%s/%s", dir, file);
        return access(buf, R_OK) == 0 ? buf : NULL;
    }
    for (int i = 0; defaults[i]; i++) {
        snprintf(buf, n, "%s/%s", defaults[i], file);
        if (access(buf, R_OK) == 0) return buf;
    }
    return NULL;
}

static dcl_status base_from_image(base_face *b, const char *name, const dcl_image *im) {
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->w = im->w;
    b->h = im->h;
    size_t n = (size_t)im->w * im->h;
    b->px = malloc(n * 3 * sizeof(float));
    b->lum = malloc(n * sizeof(float));
    if (!b->px || !b->lum) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    int gray = 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = im->data + 3 * i;
        if (p[0] != p[1] || p[1] != p[2]) gray = 0;
        for (int k = 0; k < 3; k++) b->px[3 * i + k] = p[k];
        b->lum[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
    }
    b->gray = gray;
    return DCL_OK;
}

static void base_free(base_face *b) {
    free(b->lum_blur);
    free(b->px);
    free(b->lum);
}

/* ------------------------------------------------------------------------ */
/* plan                                                                      */

typedef struct ident {
    int base, cycle;
    uint64_t seed;          /* stream of its looks (changes on retries) */
    int pw, ph;
    aff2 p2b;               /* portrait -> base photograph */
    float wb[3], sat, gamma, contrast;
    float skin[3], dark[3], light[3];   /* gray bases */
    int bd;                 /* backdrop index (LFW), -1: gradient */
    aff2 p2d;               /* portrait -> backdrop thumbnail */
    float bd_gain[3], bd_grad[2][3];
    float lm[5][2];         /* landmarks in the portrait */
    float mean[3];          /* mean colour of the inner face (portrait) */
    double eye_dist;        /* in portrait pixels */
} ident;

/* per-video motion, light, noise, expression and manipulation parameters */
typedef struct vparam {
    double pan_a[2][2], pan_f[2][2], pan_ph[2][2];
    double zoom_a; int zoom_in;
    double rot_a, rot_f, rot_ph;
    double shake_a, shake_ph[2];
    double lg_a, lg_f, lg_ph, lc_a[3], lc_f, lc_ph[3], lb_a, lb_f, lb_ph, grad_a[2], grad_f, grad_ph[2];
    double noise;
    /* expression signals (used when this video drives a Face2Face / NeuralTextures fake) */
    double ex_f[3][2], ex_ph[3][2], ex_w[3];
    /* Deepfakes / FaceSwap */
    double df_scale, df_corr, df_tint[3], df_flicker;
    double fs_scale, fs_corr, fs_tint[3], fs_jitter;
    /* NeuralTextures */
    double nt_check, nt_noise, nt_warp;
    /* SelfBlended */
    double sb_deform[16], sb_feather, sb_ratio, sb_blur, sb_sharp, sb_scale, sb_shift[2];
    double sb_shift_c[3], sb_contrast, sb_bright, sb_sat;
} vparam;

typedef struct vid {
    dcl_synth_video pub;
    vparam p;
} vid;

typedef struct pcache { int ident; uint64_t use; fimg img, blur; int blur_r; } pcache;

struct dcl_synth {
    dcl_synth_opts o;
    int W, H, T;
    base_face *bases;
    int nbases;
    backdrop *bds;
    int nbds;
    char sources[512];      /* names of the files found, for the manifest */
    ident *ids;
    int nid;
    vid *v;
    int nv;
    /* caches */
    pcache pc[NCACHE];
    uint64_t use_clock;
    int cur_v, cur_t;       /* real frame held in rf/ru/noise */
    float *rf, *noise;      /* W*H*3 */
    uint8_t *ru;
    float *tmp, *tmp2;      /* W*H*3 scratch */
};

const dcl_synth_opts *dcl_synth_get_opts(const dcl_synth *s) { return &s->o; }
int dcl_synth_video_count(const dcl_synth *s) { return s ? s->nv : 0; }
const dcl_synth_video *dcl_synth_video_get(const dcl_synth *s, int v) {
    return s && v >= 0 && v < s->nv ? &s->v[v].pub : NULL;
}
int dcl_synth_find_video(const dcl_synth *s, const char *id) {
    for (int i = 0; s && id && i < s->nv; i++)
        if (!strcmp(s->v[i].pub.id, id)) return i;
    return -1;
}

/* ---- portraits ---- */

static const float k_skin[8][3] = {{236, 188, 160}, {224, 172, 140}, {210, 160, 122}, {198, 134, 100},
                                   {170, 112, 80},  {141, 85, 54},   {110, 70, 45},   {250, 210, 185}};

/* colour of a single-channel photograph of luminance L at base (bx, by):
 * skin tone inside a soft ellipse around the face, a duotone elsewhere */
static void colourise(const ident *id, const base_face *b, double L, double bx, double by, float out[3]) {
    L = clampd(L, 0, 255);
    double cx = 0.5 * (b->box[0] + b->box[2]), cy = 0.5 * (b->box[1] + b->box[3]);
    double rx = 0.5 * (b->box[2] - b->box[0]) * 0.95, ry = 0.5 * (b->box[3] - b->box[1]) * 1.1;
    double r = hypot((bx - cx) / rx, (by - cy) / ry);
    double fw = 1 - smooth01(0.75, 1.6, r);
    double rel = L / (b->lref > 1 ? b->lref : 1);
    for (int k = 0; k < 3; k++) {
        double sk = id->skin[k] * rel;
        double bg = id->dark[k] + (id->light[k] - id->dark[k]) * (L / 255.0);
        out[k] = (float)(fw * sk + (1 - fw) * bg);
    }
}

/* colour of the base at base coordinates (bx, by) before the identity's grading */
static void base_colour(const ident *id, const base_face *b, double bx, double by, float out[3]) {
    if (b->lfw) {
        colourise(id, b, samp_cubic1(b->lum, b->w, b->h, bx, by), bx, by, out);
        return;
    }
    fimg bi = {b->w, b->h, b->px};
    samp_bilinear(&bi, bx, by, out);
    if (b->gray) colourise(id, b, out[0], bx, by, out);
}

static void backdrop_colour(const dcl_synth *s, const ident *id, double qx, double qy, int ph, float out[3]) {
    if (id->bd >= 0 && id->bd < s->nbds) {
        const backdrop *bd = &s->bds[id->bd];
        double dx, dy;
        aff_apply(&id->p2d, qx, qy, &dx, &dy);
        fimg bi = {bd->w, bd->h, bd->px};
        samp_bilinear(&bi, dx, dy, out);
        for (int k = 0; k < 3; k++) out[k] *= id->bd_gain[k];
    } else {
        double t = qy / ph;
        for (int k = 0; k < 3; k++) out[k] = (float)(id->bd_grad[0][k] * (1 - t) + id->bd_grad[1][k] * t);
    }
}

static void grade(const ident *id, float c[3]) {
    for (int k = 0; k < 3; k++) c[k] *= id->wb[k];
    double Y = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    for (int k = 0; k < 3; k++) {
        double v = Y + id->sat * (c[k] - Y);
        v = 255.0 * pow(clampd(v / 255.0, 0, 1), id->gamma);
        v = 128 + id->contrast * (v - 128);
        c[k] = (float)clampd(v, 0, 255);
    }
}

/* renders identity id's portrait into img (allocated: pw x ph x 3 floats) */
static dcl_status portrait_render(const dcl_synth *s, const ident *id, fimg *img) {
    const base_face *b = &s->bases[id->base];
    img->w = id->pw;
    img->h = id->ph;
    img->p = malloc((size_t)id->pw * id->ph * 3 * sizeof(float));
    if (!img->p) return dcl_fail(DCL_ERR_NOMEM, "portrait of %dx%d: out of memory", id->pw, id->ph);
    /* footprint of one portrait pixel in the base: supersample when it covers several */
    double sc = sqrt(fabs(id->p2b.a * id->p2b.d - id->p2b.b * id->p2b.c));
    int ns = b->lfw ? 1 : (int)ceil(sc - 1e-6);
    if (ns < 1) ns = 1;
    if (ns > 4) ns = 4;
    double ecx = 0.5 * (b->box[0] + b->box[2]), ecy = 0.5 * (b->box[1] + b->box[3]) - 0.05 * (b->box[3] - b->box[1]);
    double erx = 0.62 * (b->box[2] - b->box[0]), ery = 0.68 * (b->box[3] - b->box[1]);
    for (int y = 0; y < id->ph; y++)
        for (int x = 0; x < id->pw; x++) {
            float acc[3] = {0, 0, 0};
            for (int j = 0; j < ns; j++)
                for (int i = 0; i < ns; i++) {
                    double qx = x + (i + 0.5) / ns, qy = y + (j + 0.5) / ns, bx, by;
                    aff_apply(&id->p2b, qx, qy, &bx, &by);
                    float c[3];
                    base_colour(id, b, bx, by, c);
                    if (b->lfw) {
                        /* the crop shows inside an ellipse around the head; around it a
                         * strongly blurred continuation of the crop fades into the backdrop */
                        double r = hypot((bx - ecx) / erx, (by - ecy) / ery);
                        double of = 1 - smooth01(0.9, 1.15, r), oe = 1 - smooth01(1.2, 2.2, r);
                        if (of < 1) {
                            float e[3], bd[3];
                            double L = samp_cubic1(b->lum_blur, b->w, b->h, clampd(bx, 0, b->w), clampd(by, 0, b->h));
                            colourise(id, b, L, bx, by, e);
                            backdrop_colour(s, id, qx, qy, id->ph, bd);
                            for (int k = 0; k < 3; k++) c[k] = (float)(of * c[k] + (1 - of) * (oe * e[k] + (1 - oe) * bd[k]));
                        }
                    }
                    for (int k = 0; k < 3; k++) acc[k] += c[k];
                }
            for (int k = 0; k < 3; k++) acc[k] /= (float)(ns * ns);
            grade(id, acc);
            memcpy(img->p + ((size_t)y * id->pw + x) * 3, acc, sizeof acc);
        }
    return DCL_OK;
}

/* ---- MTCNN ---- */

static dcl_status detect_best(dcl_mtcnn *m, const dcl_image *im, double want_cx, double want_cy, double want_h,
                              dcl_face *best, int *found) {
    dcl_face *faces = NULL;
    int n = 0;
    *found = 0;
    DCL_TRY(dcl_mtcnn_detect(m, im, NULL, &faces, &n));
    double bestd = 1e30;
    for (int i = 0; i < n; i++) {
        const dcl_face *f = &faces[i];
        if (f->score < 0.9f) continue;
        double h = f->y2 - f->y1, cx = 0.5 * (f->x1 + f->x2), cy = 0.5 * (f->y1 + f->y2);
        double d;
        if (want_h > 0) {
            if (h < 0.5 * want_h || h > 2.0 * want_h) continue;
            d = hypot(cx - want_cx, cy - want_cy);
            if (d > want_h) continue;
        } else {
            d = -(double)(f->x2 - f->x1) * (f->y2 - f->y1); /* largest */
        }
        if (d < bestd) { bestd = d; *best = *f; *found = 1; }
    }
    free(faces);
    return DCL_OK;
}

/* 8-bit copy of a float image, box-averaged over f x f blocks */
static dcl_status fimg_to_image(dcl_image *out, const fimg *im, int f) {
    if (f < 1) f = 1;
    int w = im->w / f, h = im->h / f;
    if (w < 1 || h < 1) return dcl_fail(DCL_ERR_ARG, "image of %dx%d is too small to shrink %d times", im->w, im->h, f);
    DCL_TRY(image_ensure(out, w, h));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                double a = 0;
                for (int j = 0; j < f; j++)
                    for (int i = 0; i < f; i++) a += im->p[((size_t)(y * f + j) * im->w + x * f + i) * 3 + k];
                out->data[((size_t)y * w + x) * 3 + k] = to_u8(a / (f * f));
            }
    return DCL_OK;
}

static float q16(double v) { return (float)(floor(v * 16 + 0.5) / 16); }

/* locates the face of a base (once) */
static dcl_status base_locate(dcl_synth *s, dcl_mtcnn *m, int bi) {
    base_face *b = &s->bases[bi];
    if (b->state) return DCL_OK;
    b->state = -1;
    dcl_image im = {0};
    dcl_face f;
    int found = 0;
    double up = 1, off = 0;
    if (b->lfw) {
        /* 3x bicubic on a canvas with 6 crop pixels of clamped border around it */
        up = 3;
        off = 6;
        int S = (int)((b->w + 2 * off) * up);
        DCL_TRY(dcl_image_alloc(&im, S, S));
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double v = samp_cubic1(b->lum, b->w, b->h, (x + 0.5) / up - off, (y + 0.5) / up - off);
                uint8_t u = to_u8(v);
                uint8_t *p = im.data + ((size_t)y * S + x) * 3;
                p[0] = p[1] = p[2] = u;
            }
    } else {
        /* photographs: halved until the longer side is at most 320 pixels (faces stay above 20) */
        int f = 1;
        while ((b->w > b->h ? b->w : b->h) / f > 320) f *= 2;
        fimg fi = {b->w, b->h, b->px};
        DCL_TRY(fimg_to_image(&im, &fi, f));
        up = 1.0 / f;
    }
    dcl_status st = detect_best(m, &im, 0, 0, 0, &f, &found);
    dcl_image_free(&im);
    DCL_TRY(st);
    if (!found) return DCL_OK;
    /* on a 1/16-pixel grid: tiny float differences between builds rarely move them */
    b->box[0] = q16(f.x1 / up - off);
    b->box[1] = q16(f.y1 / up - off);
    b->box[2] = q16(f.x2 / up - off);
    b->box[3] = q16(f.y2 / up - off);
    for (int k = 0; k < 5; k++) {
        b->lm[k][0] = q16(f.lm[k][0] / up - off);
        b->lm[k][1] = q16(f.lm[k][1] / up - off);
    }
    /* mean luminance inside the box (reference for colourising) */
    double acc = 0;
    int cnt = 0;
    for (int y = (int)fmax(0, b->box[1]); y < (int)fmin(b->h, b->box[3]); y++)
        for (int x = (int)fmax(0, b->box[0]); x < (int)fmin(b->w, b->box[2]); x++) { acc += b->lum[(size_t)y * b->w + x]; cnt++; }
    b->lref = cnt ? (float)(acc / cnt) : 128;
    b->state = 1;
    return DCL_OK;
}

/* inner-face polygon in canonical coordinates (brows to chin, cheek to cheek) */
static const double k_face_poly[14][2] = {{-0.85, -0.35}, {-0.95, 0.2}, {-0.87, 0.75}, {-0.62, 1.2}, {-0.3, 1.45},
                                          {0, 1.52},      {0.3, 1.45},  {0.62, 1.2},   {0.87, 0.75}, {0.95, 0.2},
                                          {0.85, -0.35},  {0.45, -0.55}, {0, -0.6},    {-0.45, -0.55}};
/* lower face (under the nose to the chin) */
static const double k_lower_poly[10][2] = {{-0.35, 0.62}, {0.35, 0.62}, {0.68, 0.8}, {0.72, 1.05}, {0.55, 1.32},
                                           {0.28, 1.5},   {0, 1.55},    {-0.28, 1.5}, {-0.55, 1.32}, {-0.72, 1.05}};

/* mean colour of the inner face in a portrait */
static void face_mean(const fimg *p, const float lm[5][2], float mean[3]) {
    aff2 C = aff_canon(lm), Ci = aff_inv(&C);
    double acc[3] = {0, 0, 0};
    long n = 0;
    for (int y = 0; y < p->h; y++)
        for (int x = 0; x < p->w; x++) {
            double u, v;
            aff_apply(&Ci, x + 0.5, y + 0.5, &u, &v);
            if (fabs(u) > 0.6 || v < -0.2 || v > 1.3) continue;
            const float *q = p->p + ((size_t)y * p->w + x) * 3;
            for (int k = 0; k < 3; k++) acc[k] += q[k];
            n++;
        }
    for (int k = 0; k < 3; k++) mean[k] = n ? (float)(acc[k] / n) : 128;
}

/* draws the looks of identity k (attempt a) on base bi */
static void ident_draw(dcl_synth *s, ident *id, int k, int a, int bi, int cycle) {
    const base_face *b = &s->bases[bi];
    memset(id, 0, sizeof *id);
    id->base = bi;
    id->cycle = cycle;
    id->seed = mix64(s->o.seed ^ mix64(0x1D0000ULL + (uint64_t)k * 64 + a));
    dcl_rng r = rng_for(s->o.seed, 0x1D0000ULL, (uint64_t)k * 64 + a);
    double strong = cycle > 0 ? 1.8 : 1.0;
    int W = s->W, H = s->H;
    id->pw = 2 * (int)lround(W * OS * MARGIN / 2);
    id->ph = 2 * (int)lround(H * OS * MARGIN / 2);
    int flip = dcl_rng_uniform(&r) < 0.5;
    double roll = uni(&r, -4, 4) * strong * PI / 180;
    double asp = 1 + uni(&r, -0.07, 0.07) * strong;
    double ff = uni(&r, 0.40, 0.50);
    double jx = uni(&r, -0.04, 0.04) * W, jy = uni(&r, -0.03, 0.03) * H;
    for (int c = 0; c < 3; c++) id->wb[c] = (float)(1 + uni(&r, -0.06, 0.06) * strong);
    id->sat = (float)uni(&r, 0.8, 1.15);
    id->gamma = (float)uni(&r, 0.85, 1.15);
    id->contrast = (float)uni(&r, 0.9, 1.1);
    int tone = (int)dcl_rng_below(&r, 8);
    for (int c = 0; c < 3; c++) {
        id->skin[c] = (float)(k_skin[tone][c] * uni(&r, 0.94, 1.06));
        id->dark[c] = (float)uni(&r, 15, 75);
        id->light[c] = (float)uni(&r, 165, 245);
    }
    id->bd = s->nbds ? (int)dcl_rng_below(&r, (uint32_t)s->nbds) : -1;
    for (int c = 0; c < 3; c++) {
        id->bd_gain[c] = (float)uni(&r, 0.7, 1.1);
        id->bd_grad[0][c] = (float)uni(&r, 40, 200);
        id->bd_grad[1][c] = (float)uni(&r, 40, 200);
    }
    /* placement: face box of height ff*H centred at (W/2 + jx, 0.47 H + jy) in the frame at rest */
    double qcx = id->pw / 2.0 + jx * OS, qcy = id->ph / 2.0 + (0.47 * H + jy - 0.5 * H) * OS;
    double bcx = 0.5 * (b->box[0] + b->box[2]), bcy = 0.5 * (b->box[1] + b->box[3]), bh = b->box[3] - b->box[1];
    for (int tries = 0;; tries++) {
        double sc = bh / (ff * H * OS); /* base pixels per portrait pixel */
        double ca = cos(roll) * sc, sa = sin(roll) * sc, fx = (flip ? -1.0 : 1.0) / asp;
        aff2 m = {ca * fx, -sa, sa * fx, ca, 0, 0};
        m.tx = bcx - (m.a * qcx + m.b * qcy);
        m.ty = bcy - (m.c * qcx + m.d * qcy);
        id->p2b = m;
        if (b->lfw || tries >= 15) break;
        /* photographs: widen the face until the portrait stays within the photo (6% overflow allowed) */
        double over = 0;
        double cx[4] = {0, (double)id->pw, 0, (double)id->pw}, cy[4] = {0, 0, (double)id->ph, (double)id->ph};
        for (int i = 0; i < 4; i++) {
            double x, y;
            aff_apply(&m, cx[i], cy[i], &x, &y);
            over = fmax(over, fmax(-x / b->w, (x - b->w) / b->w));
            over = fmax(over, fmax(-y / b->h, (y - b->h) / b->h));
        }
        if (over <= 0.06 || ff >= 0.7) break;
        ff += 0.02;
    }
    /* backdrop: a random window of the thumbnail covering the portrait */
    if (id->bd >= 0) {
        const backdrop *bd = &s->bds[id->bd];
        double frac = uni(&r, 0.5, 0.9);
        double sx = bd->w * frac / id->pw, sy = bd->h * frac / id->ph, ss = fmin(sx, sy);
        aff2 d = {ss, 0, 0, ss, uni(&r, 0, bd->w - ss * id->pw), uni(&r, 0, bd->h - ss * id->ph)};
        id->p2d = d;
    }
}

/* renders the identity's portrait, checks that the detector still finds the
 * face where it was placed, and keeps the landmarks (the photograph's,
 * mapped into the portrait) and the face's mean colour */
static dcl_status ident_finish(dcl_synth *s, dcl_mtcnn *m, ident *id, int *ok) {
    *ok = 0;
    const base_face *b = &s->bases[id->base];
    aff2 b2p = aff_inv(&id->p2b);
    double gain = sqrt(fabs(b2p.a * b2p.d - b2p.b * b2p.c));
    for (int k = 0; k < 5; k++) {
        double x, y;
        aff_apply(&b2p, b->lm[k][0], b->lm[k][1], &x, &y);
        id->lm[k][0] = (float)x;
        id->lm[k][1] = (float)y;
    }
    /* a flip swaps image-left and image-right: keep dcl_face's order */
    if (id->lm[0][0] > id->lm[1][0])
        for (int c = 0; c < 2; c++) {
            float t = id->lm[0][c]; id->lm[0][c] = id->lm[1][c]; id->lm[1][c] = t;
            t = id->lm[3][c]; id->lm[3][c] = id->lm[4][c]; id->lm[4][c] = t;
        }
    double cx, cy;
    aff_apply(&b2p, 0.5 * (b->box[0] + b->box[2]), 0.5 * (b->box[1] + b->box[3]), &cx, &cy);
    double h = (b->box[3] - b->box[1]) * gain;
    id->eye_dist = hypot(id->lm[1][0] - id->lm[0][0], id->lm[1][1] - id->lm[0][1]);
    aff2 C = aff_canon(id->lm);
    if (id->eye_dist < 4 || C.a * C.d - C.b * C.c <= 0) return DCL_OK; /* eyes apart, mouth below them */
    fimg p = {0};
    DCL_TRY(portrait_render(s, id, &p));
    /* detection on a copy shrunk so that the face is about 48 pixels high */
    int f = (int)(h / 48);
    if (f < 1) f = 1;
    dcl_image im = {0};
    dcl_status st = fimg_to_image(&im, &p, f);
    dcl_face face;
    int found = 0;
    if (st == DCL_OK) st = detect_best(m, &im, cx / f, cy / f, h / f, &face, &found);
    if (st == DCL_OK && found) {
        face_mean(&p, id->lm, id->mean);
        *ok = 1;
    }
    dcl_image_free(&im);
    free(p.p);
    return st;
}

/* ---- sources ---- */

static dcl_status load_sources(dcl_synth *s) {
    char path[4096];
    const char *sk = s->o.skimage_dir, *mpl = s->o.matplotlib_dir;
    static const struct { const char *name, *file; int mpl; } photos[] = {
        {"astronaut", "astronaut.png", 0}, {"grace_hopper", "grace_hopper.jpg", 1}, {"camera", "camera.png", 0}};
    s->bases = calloc(3 + LFW_N, sizeof *s->bases);
    if (!s->bases) return dcl_fail(DCL_ERR_NOMEM, "face sources: out of memory");
    for (int i = 0; i < 3; i++) {
        const char *p = photos[i].mpl ? find_file(path, sizeof path, mpl, k_mpl_dirs, photos[i].file)
                                      : find_file(path, sizeof path, sk, k_sk_dirs, photos[i].file);
        if (!p) continue;
        dcl_image im = {0};
        DCL_TRY(dcl_image_load(&im, p));
        dcl_status st = base_from_image(&s->bases[s->nbases], photos[i].name, &im);
        dcl_image_free(&im);
        if (st != DCL_OK) return st;
        s->nbases++;
        size_t l = strlen(s->sources);
        snprintf(s->sources + l, sizeof s->sources - l, "%s%s", l ? "," : "", photos[i].file);
    }
    const char *lp = find_file(path, sizeof path, sk, k_sk_dirs, "lfw_subset.npy");
    if (lp) {
        dcl_npy a;
        DCL_TRY(dcl_npy_load(&a, lp));
        if (a.ndim != 3 || a.shape[0] < LFW_N || a.shape[1] != LFW_S || a.shape[2] != LFW_S) {
            char sh[64];
            dcl_shape_str(sh, sizeof sh, a.ndim, a.shape);
            dcl_npy_free(&a);
            return dcl_fail(DCL_ERR_FORMAT, "%s: expected shape [200, 25, 25] (faces first), found %s", lp, sh);
        }
        float mx = 0;
        for (int64_t i = 0; i < a.numel; i++) mx = fmaxf(mx, a.data[i]);
        float scale = mx <= 1.0f ? 255.0f : 1.0f; /* floats in [0, 1] (the shipped file) or bytes */
        double gw[19], gsum = 0;
        for (int i = -9; i <= 9; i++) gsum += gw[i + 9] = exp(-i * i / 18.0);
        for (int i = 0; i < 19; i++) gw[i] /= gsum;
        for (int f = 0; f < LFW_N; f++) {
            base_face *b = &s->bases[s->nbases];
            snprintf(b->name, sizeof b->name, "lfw_subset[%d]", f);
            b->w = b->h = LFW_S;
            b->lfw = b->gray = 1;
            b->px = malloc(LFW_S * LFW_S * 3 * sizeof(float));
            b->lum = malloc(LFW_S * LFW_S * sizeof(float));
            if (!b->px || !b->lum) { dcl_npy_free(&a); return dcl_fail(DCL_ERR_NOMEM, "face sources: out of memory"); }
            for (int i = 0; i < LFW_S * LFW_S; i++) {
                float v = (float)clampd(a.data[(size_t)f * LFW_S * LFW_S + i] * scale, 0, 255);
                b->lum[i] = v;
                b->px[3 * i] = b->px[3 * i + 1] = b->px[3 * i + 2] = v;
            }
            b->lum_blur = malloc(LFW_S * LFW_S * sizeof(float));
            if (!b->lum_blur) { dcl_npy_free(&a); return dcl_fail(DCL_ERR_NOMEM, "face sources: out of memory"); }
            float tmp[LFW_S * LFW_S];
            for (int pass = 0; pass < 2; pass++) /* separable Gaussian, sigma 3, clamped borders */
                for (int y = 0; y < LFW_S; y++)
                    for (int x = 0; x < LFW_S; x++) {
                        double acc = 0;
                        for (int i = -9; i <= 9; i++) {
                            int xx = x, yy = y;
                            if (pass == 0) xx = x + i < 0 ? 0 : x + i >= LFW_S ? LFW_S - 1 : x + i;
                            else yy = y + i < 0 ? 0 : y + i >= LFW_S ? LFW_S - 1 : y + i;
                            acc += gw[i + 9] * (pass == 0 ? b->lum : tmp)[yy * LFW_S + xx];
                        }
                        (pass == 0 ? tmp : b->lum_blur)[y * LFW_S + x] = (float)acc;
                    }
            s->nbases++;
        }
        dcl_npy_free(&a);
        size_t l = strlen(s->sources);
        snprintf(s->sources + l, sizeof s->sources - l, "%slfw_subset.npy", l ? "," : "");
    }
    if (s->nbases == 0)
        return dcl_fail(DCL_ERR_NOTFOUND, "no face photographs found (astronaut.png, camera.png, lfw_subset.npy in %s; "
                        "grace_hopper.jpg in %s): install the Debian packages python3-skimage and python-matplotlib-data",
                        sk ? sk : k_sk_dirs[0], mpl ? mpl : k_mpl_dirs[0]);
    /* backdrops for the LFW crops: strongly blurred thumbnails (a defocused room) */
    static const char *const bdfiles[] = {"coffee.png", "rocket.jpg", "brick.png", "grass.png", "gravel.png"};
    s->bds = calloc(5, sizeof *s->bds);
    if (!s->bds) return dcl_fail(DCL_ERR_NOMEM, "backdrops: out of memory");
    for (int i = 0; i < 5; i++) {
        const char *p = find_file(path, sizeof path, sk, k_sk_dirs, bdfiles[i]);
        if (!p) continue;
        dcl_image im = {0};
        DCL_TRY(dcl_image_load(&im, p));
        int f = (im.w > im.h ? im.w : im.h) / 40;
        if (f < 1) f = 1;
        backdrop *bd = &s->bds[s->nbds];
        bd->w = im.w / f;
        bd->h = im.h / f;
        bd->px = calloc((size_t)bd->w * bd->h * 3, sizeof(float));
        if (!bd->px || bd->w < 2 || bd->h < 2) { dcl_image_free(&im); free(bd->px); bd->px = NULL; continue; }
        for (int y = 0; y < bd->h * f; y++)
            for (int x = 0; x < bd->w * f; x++)
                for (int k = 0; k < 3; k++)
                    bd->px[((size_t)(y / f) * bd->w + x / f) * 3 + k] += im.data[((size_t)y * im.w + x) * 3 + k] / (float)(f * f);
        dcl_image_free(&im);
        s->nbds++;
    }
    return DCL_OK;
}

/* ---- videos ---- */

static void vparam_draw(vparam *p, dcl_rng *r) {
    for (int a = 0; a < 2; a++)
        for (int j = 0; j < 2; j++) {
            p->pan_a[a][j] = uni(r, 0, a ? 0.015 : 0.02);
            p->pan_f[a][j] = uni(r, 0.1, 0.6) * (j + 1);
            p->pan_ph[a][j] = uni(r, 0, 2 * PI);
        }
    p->zoom_a = uni(r, 0, 0.12);
    p->zoom_in = dcl_rng_uniform(r) < 0.5;
    p->rot_a = uni(r, 0, 2.0) * PI / 180;
    p->rot_f = uni(r, 0.1, 0.5);
    p->rot_ph = uni(r, 0, 2 * PI);
    p->shake_a = uni(r, 0, 0.4);
    p->shake_ph[0] = uni(r, 0, 2 * PI);
    p->shake_ph[1] = uni(r, 0, 2 * PI);
    p->lg_a = uni(r, 0, 0.08);
    p->lg_f = uni(r, 0.1, 0.5);
    p->lg_ph = uni(r, 0, 2 * PI);
    for (int k = 0; k < 3; k++) { p->lc_a[k] = uni(r, 0, 0.03); p->lc_ph[k] = uni(r, 0, 2 * PI); }
    p->lc_f = uni(r, 0.1, 0.4);
    p->lb_a = uni(r, 0, 6);
    p->lb_f = uni(r, 0.1, 0.4);
    p->lb_ph = uni(r, 0, 2 * PI);
    p->grad_a[0] = uni(r, -0.12, 0.12);
    p->grad_a[1] = uni(r, -0.12, 0.12);
    p->grad_f = uni(r, 0.1, 0.4);
    p->grad_ph[0] = uni(r, 0, 2 * PI);
    p->grad_ph[1] = uni(r, 0, 2 * PI);
    p->noise = uni(r, 1.0, 3.0);
    for (int e = 0; e < 3; e++) {
        p->ex_w[e] = uni(r, 0.6, 1.0);
        for (int j = 0; j < 2; j++) { p->ex_f[e][j] = uni(r, 0.4, 1.6) * (j + 1); p->ex_ph[e][j] = uni(r, 0, 2 * PI); }
    }
    p->df_scale = uni(r, 0.95, 1.05);
    p->df_corr = uni(r, 0.6, 0.85);
    for (int k = 0; k < 3; k++) p->df_tint[k] = uni(r, -5, 5);
    p->df_flicker = uni(r, 0.5, 2.0);
    p->fs_scale = uni(r, 0.86, 0.94);
    p->fs_corr = uni(r, 0.2, 0.5);
    for (int k = 0; k < 3; k++) p->fs_tint[k] = uni(r, -8, 8);
    p->fs_jitter = uni(r, 0.01, 0.025);
    p->nt_check = uni(r, 1.5, 3.5);
    p->nt_noise = uni(r, 1.0, 2.5);
    p->nt_warp = uni(r, 0.4, 0.8);
    for (int i = 0; i < 16; i++) p->sb_deform[i] = uni(r, 0.88, 1.06);
    p->sb_feather = uni(r, 0.04, 0.2);
    p->sb_ratio = uni(r, 0.5, 1.0);
    if (dcl_rng_uniform(r) < 0.5) { p->sb_blur = uni(r, 0.7, 1.6); p->sb_sharp = 0; }
    else { p->sb_blur = 0; p->sb_sharp = uni(r, 0.5, 1.2); }
    p->sb_scale = uni(r, 1.0, 1.05);
    p->sb_shift[0] = uni(r, -0.04, 0.04);
    p->sb_shift[1] = uni(r, -0.04, 0.04);
    for (int k = 0; k < 3; k++) p->sb_shift_c[k] = uni(r, -10, 10);
    p->sb_contrast = uni(r, 0.9, 1.1);
    p->sb_bright = uni(r, -8, 8);
    p->sb_sat = uni(r, 0.85, 1.15);
}

/* splits and pairs.  Identities made from the same photograph ("look-alikes",
 * only when there are more identities than photographs) form one group and
 * stay in one split.  Groups, in a seeded order, fill test, then val (each
 * to 14% of the identities and at least two groups, as FF++'s 140/140/720),
 * the rest is train; below 6 identities, or when the groups are too few to
 * give every split two identities, everything is train.  In each split the
 * identities are paired two by two (the last three in a cycle when the
 * count is odd), each video j of one with video j of the other. */
static dcl_status plan_videos(dcl_synth *s) {
    int N = s->nid, V = s->o.videos_per_identity, NB = s->nbases;
    int *perm = malloc(N * sizeof *perm), *link = malloc(N * sizeof *link), *list = malloc(N * sizeof *list);
    int *grank = malloc(NB * sizeof *grank), *gsize = calloc(NB, sizeof *gsize), *gsplit = malloc(NB * sizeof *gsplit);
    dcl_split *sp = malloc(N * sizeof *sp);
    dcl_status st = DCL_OK;
    if (!perm || !link || !list || !grank || !gsize || !gsplit || !sp) {
        st = dcl_fail(DCL_ERR_NOMEM, "plan: out of memory");
        goto done;
    }
    dcl_rng r = rng_for(s->o.seed, 0x5E11ULL, 0);
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)dcl_rng_below(&r, (uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int ng = 0;
    for (int b = 0; b < NB; b++) grank[b] = -1;
    for (int i = 0; i < N; i++) {
        int b = s->ids[perm[i]].base;
        if (grank[b] < 0) grank[b] = ng++;
        gsize[grank[b]]++;
    }
    if (ng < N)
        dcl_log(1, "synth: %d identities from %d photographs: some are look-alikes of one photograph (kept in one split)", N, ng);
    int target = N >= 6 ? (int)lround(0.14 * N) : 0;
    if (target < 2) target = 2;
    int cnt[3] = {0, 0, 0}, gcnt[3] = {0, 0, 0}, cur = 0; /* 0 test, 1 val, 2 train */
    for (int g = 0; g < ng; g++) {
        while (cur < 2 && cnt[cur] >= target && (gcnt[cur] >= 2 || ng < 6)) cur++;
        gsplit[g] = cur;
        cnt[cur] += gsize[g];
        gcnt[cur]++;
    }
    int all_train = N < 6 || cnt[0] < 2 || cnt[1] < 2 || cnt[2] < 2;
    static const dcl_split which[3] = {DCL_SPLIT_TEST, DCL_SPLIT_VAL, DCL_SPLIT_TRAIN};
    for (int k = 0; k < N; k++) sp[k] = all_train ? DCL_SPLIT_TRAIN : which[gsplit[grank[s->ids[k].base]]];
    for (int g = 0; g < 3; g++) {
        /* members in (cycle, group order): neighbours come from different photographs */
        int m = 0;
        for (int k = 0; k < N; k++)
            if (sp[k] == which[g]) list[m++] = k;
        for (int i = 1; i < m; i++)
            for (int j = i; j > 0; j--) {
                const ident *x = &s->ids[list[j - 1]], *y = &s->ids[list[j]];
                long kx = (long)x->cycle * NB + grank[x->base], ky = (long)y->cycle * NB + grank[y->base];
                if (kx <= ky) break;
                int t = list[j]; list[j] = list[j - 1]; list[j - 1] = t;
            }
        if (m == 0) continue;
        int pairs_end = m % 2 ? m - 3 : m;
        for (int i = 0; i + 1 < pairs_end; i += 2) { link[list[i]] = list[i + 1]; link[list[i + 1]] = list[i]; }
        if (m % 2) { link[list[m - 3]] = list[m - 2]; link[list[m - 2]] = list[m - 1]; link[list[m - 1]] = list[m - 3]; }
    }
    s->nv = N * V;
    s->v = calloc(s->nv, sizeof *s->v);
    if (!s->v) { st = dcl_fail(DCL_ERR_NOMEM, "plan: out of memory"); goto done; }
    for (int k = 0; k < N; k++)
        for (int j = 0; j < V; j++) {
            vid *v = &s->v[k * V + j];
            snprintf(v->pub.id, sizeof v->pub.id, "%03u", (unsigned)(k * V + j) % 1000u);
            v->pub.identity = k;
            v->pub.split = sp[k];
            v->pub.source = link[k] * V + j;
            v->pub.face = s->bases[s->ids[k].base].name;
            dcl_rng vr = rng_for(s->o.seed, 0x5D0000ULL, (uint64_t)(k * V + j));
            vparam_draw(&v->p, &vr);
        }
done:
    free(perm);
    free(link);
    free(list);
    free(grank);
    free(gsize);
    free(gsplit);
    free(sp);
    return st;
}

void dcl_synth_close(dcl_synth *s) {
    if (!s) return;
    for (int i = 0; i < s->nbases; i++) base_free(&s->bases[i]);
    free(s->bases);
    for (int i = 0; i < s->nbds; i++) free(s->bds[i].px);
    free(s->bds);
    free(s->ids);
    free(s->v);
    for (int i = 0; i < NCACHE; i++) { free(s->pc[i].img.p); free(s->pc[i].blur.p); }
    free(s->rf);
    free(s->noise);
    free(s->ru);
    free(s->tmp);
    free(s->tmp2);
    free(s);
}

dcl_status dcl_synth_open(dcl_synth **out, const dcl_synth_opts *o) {
    if (!out || !o) return dcl_fail(DCL_ERR_ARG, "dcl_synth_open: NULL argument");
    *out = NULL;
    DCL_TRY(check_opts(o));
    if (access(o->mtcnn_weights, R_OK) != 0)
        return dcl_fail(DCL_ERR_IO, "%s: MTCNN weights not found (made by tools/convert_mtcnn.py; see docs/ASSETS-face.md)",
                        o->mtcnn_weights);
    dcl_synth *s = calloc(1, sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "dcl_synth_open: out of memory");
    s->o = *o;
    s->o.skimage_dir = NULL; /* not kept: the caller's strings may go away */
    s->o.matplotlib_dir = NULL;
    s->o.mtcnn_weights = NULL;
    s->W = o->width;
    s->H = o->height;
    s->T = o->frames;
    s->cur_v = -1;
    for (int i = 0; i < NCACHE; i++) s->pc[i].ident = -1;
    size_t fb = (size_t)s->W * s->H * 3;
    s->rf = malloc(fb * sizeof(float));
    s->noise = malloc(fb * sizeof(float));
    s->tmp = malloc(fb * sizeof(float));
    s->tmp2 = malloc(fb * sizeof(float));
    s->ru = malloc(fb);
    s->ids = calloc(o->identities, sizeof *s->ids);
    if (!s->rf || !s->noise || !s->tmp || !s->tmp2 || !s->ru || !s->ids) {
        dcl_synth_close(s);
        return dcl_fail(DCL_ERR_NOMEM, "dcl_synth_open: out of memory");
    }
    s->o.skimage_dir = o->skimage_dir;
    s->o.matplotlib_dir = o->matplotlib_dir;
    dcl_status st = load_sources(s);
    s->o.skimage_dir = s->o.matplotlib_dir = NULL;
    if (st) { dcl_synth_close(s); return st; }

    /* the CPU backend sets the process's OpenMP / OpenBLAS thread counts: put them back afterwards */
#ifdef _OPENMP
    int omp_threads = omp_get_max_threads();
#endif
    int blas_threads = openblas_get_num_threads();
    dcl_backend *be = dcl_backend_create("cpu", o->threads > 0 ? o->threads : 1);
    dcl_mtcnn *m = NULL;
    st = be ? dcl_mtcnn_create(&m, be, o->mtcnn_weights) : dcl_fail_ctx(DCL_ERR_INTERNAL, "face detector backend");
    if (st) {
        dcl_backend_destroy(be);
#ifdef _OPENMP
        omp_set_num_threads(omp_threads);
#endif
        openblas_set_num_threads(blas_threads);
        dcl_synth_close(s);
        return st;
    }

    /* base order: the photographs first, then the LFW crops, each group shuffled */
    int *order = malloc(s->nbases * sizeof *order);
    if (!order) st = dcl_fail(DCL_ERR_NOMEM, "dcl_synth_open: out of memory");
    int nphoto = 0;
    for (int i = 0; order && i < s->nbases; i++) { order[i] = i; if (!s->bases[i].lfw) nphoto++; }
    dcl_rng r = rng_for(o->seed, 0xBA5EULL, 0);
    for (int g = 0; order && g < 2; g++) {
        int lo = g ? nphoto : 0, hi = g ? s->nbases : nphoto;
        for (int i = hi - 1; i > lo; i--) {
            int j = lo + (int)dcl_rng_below(&r, (uint32_t)(i - lo + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    int pos = 0, cycle = 0, usable_seen = 0;
    for (int k = 0; st == DCL_OK && k < o->identities; k++) {
        int done = 0, tried = 0;
        while (st == DCL_OK && !done) {
            if (++tried > 2 * s->nbases) {
                st = dcl_fail(DCL_ERR_NOTFOUND, "identity %d: the face detector rejected every photograph at %dx%d", k, o->width,
                              o->height);
                break;
            }
            if (pos == s->nbases) {
                if (!usable_seen) { st = dcl_fail(DCL_ERR_NOTFOUND, "the face detector found no usable face in any photograph"); break; }
                pos = 0;
                cycle++;
            }
            int bi = order[pos++];
            st = base_locate(s, m, bi);
            if (st || s->bases[bi].state != 1) continue;
            for (int a = 0; a < 4 && st == DCL_OK && !done; a++) {
                ident_draw(s, &s->ids[k], k, a, bi, cycle);
                int ok = 0;
                st = ident_finish(s, m, &s->ids[k], &ok);
                if (ok) { done = 1; usable_seen = 1; }
            }
        }
    }
    free(order);
    dcl_mtcnn_free(m);
    dcl_backend_destroy(be);
#ifdef _OPENMP
    omp_set_num_threads(omp_threads);
#endif
    openblas_set_num_threads(blas_threads);
    if (st) { dcl_synth_close(s); return st; }
    s->nid = o->identities;
    st = plan_videos(s);
    if (st) { dcl_synth_close(s); return st; }
    *out = s;
    return DCL_OK;
}

/* ------------------------------------------------------------------------ */
/* rendering                                                                 */

static dcl_status portrait_get(dcl_synth *s, int k, pcache **out) {
    int lru = 0;
    for (int i = 0; i < NCACHE; i++) {
        if (s->pc[i].ident == k) { s->pc[i].use = ++s->use_clock; *out = &s->pc[i]; return DCL_OK; }
        if (s->pc[i].use < s->pc[lru].use) lru = i;
    }
    pcache *c = &s->pc[lru];
    free(c->img.p);
    free(c->blur.p);
    memset(c, 0, sizeof *c);
    c->ident = -1;
    DCL_TRY(portrait_render(s, &s->ids[k], &c->img));
    c->ident = k;
    c->use = ++s->use_clock;
    *out = c;
    return DCL_OK;
}

/* box-blurred copy of a portrait (radius r), made once per cache slot */
static dcl_status portrait_blur(pcache *c, int r) {
    if (c->blur.p && c->blur_r == r) return DCL_OK;
    free(c->blur.p);
    int w = c->img.w, h = c->img.h;
    c->blur.w = w;
    c->blur.h = h;
    c->blur.p = malloc((size_t)w * h * 3 * sizeof(float));
    float *t = malloc((size_t)w * h * 3 * sizeof(float));
    if (!c->blur.p || !t) { free(t); free(c->blur.p); c->blur.p = NULL; return dcl_fail(DCL_ERR_NOMEM, "blur: out of memory"); }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                double a = 0;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    a += c->img.p[((size_t)y * w + xx) * 3 + k];
                }
                t[((size_t)y * w + x) * 3 + k] = (float)(a / (2 * r + 1));
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                double a = 0;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    a += t[((size_t)yy * w + x) * 3 + k];
                }
                c->blur.p[((size_t)y * w + x) * 3 + k] = (float)(a / (2 * r + 1));
            }
    free(t);
    c->blur_r = r;
    return DCL_OK;
}

/* frame -> portrait map of video v at frame t */
static aff2 camera(const dcl_synth *s, const vid *v, int t) {
    const vparam *p = &v->p;
    double tt = t / s->o.fps, T1 = s->T > 1 ? s->T - 1 : 1;
    double pan[2];
    for (int a = 0; a < 2; a++) {
        pan[a] = 0;
        for (int j = 0; j < 2; j++) pan[a] += p->pan_a[a][j] * sin(2 * PI * p->pan_f[a][j] * tt + p->pan_ph[a][j]);
        pan[a] *= a ? s->H : s->W;
        pan[a] += p->shake_a * sin(2 * PI * 4.7 * tt + p->shake_ph[a]);
    }
    double ramp = 0.5 - 0.5 * cos(PI * t / T1);
    double z = 1 + p->zoom_a * (p->zoom_in ? ramp : 1 - ramp);
    double th = p->rot_a * sin(2 * PI * p->rot_f * tt + p->rot_ph);
    const ident *id = &s->ids[v->pub.identity];
    double k = OS / z, c = cos(th) * k, sn = sin(th) * k;
    /* q = Qc + k R(th) (p - Fc - pan) */
    double fx = s->W / 2.0 + pan[0], fy = s->H / 2.0 + pan[1];
    aff2 m = {c, -sn, sn, c, 0, 0};
    m.tx = id->pw / 2.0 - (c * fx - sn * fy);
    m.ty = id->ph / 2.0 - (sn * fx + c * fy);
    return m;
}

/* light of video v at frame t: per-channel gain, bias, and a drifting gradient */
typedef struct light { double g[3], b, gx, gy; } light;

static light light_at(const dcl_synth *s, const vid *v, int t) {
    const vparam *p = &v->p;
    double tt = t / s->o.fps;
    light L;
    double g = 1 + p->lg_a * sin(2 * PI * p->lg_f * tt + p->lg_ph);
    for (int k = 0; k < 3; k++) L.g[k] = g * (1 + p->lc_a[k] * sin(2 * PI * p->lc_f * tt + p->lc_ph[k]));
    L.b = p->lb_a * sin(2 * PI * p->lb_f * tt + p->lb_ph);
    L.gx = p->grad_a[0] * sin(2 * PI * p->grad_f * tt + p->grad_ph[0]);
    L.gy = p->grad_a[1] * sin(2 * PI * p->grad_f * tt + p->grad_ph[1]);
    return L;
}

static inline double light_apply(const dcl_synth *s, const light *L, int k, int x, int y, double val) {
    double sp = 1 + L->gx * ((x + 0.5) / s->W - 0.5) + L->gy * ((y + 0.5) / s->H - 0.5);
    return L->g[k] * sp * val + L->b;
}

static dcl_status real_frame(dcl_synth *s, int vi, int t) {
    if (s->cur_v == vi && s->cur_t == t) return DCL_OK;
    s->cur_v = -1;
    vid *v = &s->v[vi];
    pcache *pc;
    DCL_TRY(portrait_get(s, v->pub.identity, &pc));
    aff2 F2P = camera(s, v, t);
    light L = light_at(s, v, t);
    dcl_rng r = rng_for(s->o.seed, 0x401CEULL, (uint64_t)vi * 4096 + t);
    size_t n = (size_t)s->W * s->H * 3;
    for (size_t i = 0; i < n; i++) s->noise[i] = (float)dcl_rng_normal(&r);
    for (int y = 0; y < s->H; y++)
        for (int x = 0; x < s->W; x++) {
            double qx, qy;
            aff_apply(&F2P, x + 0.5, y + 0.5, &qx, &qy);
            float c[3];
            samp_bilinear(&pc->img, qx, qy, c);
            size_t o = ((size_t)y * s->W + x) * 3;
            for (int k = 0; k < 3; k++) {
                double val = light_apply(s, &L, k, x, y, c[k]) + v->p.noise * s->noise[o + k];
                val = clampd(val, 0, 255);
                s->rf[o + k] = (float)val;
                s->ru[o + k] = to_u8(val);
            }
        }
    s->cur_v = vi;
    s->cur_t = t;
    return DCL_OK;
}

/* canonical -> frame map of video v at frame t */
static aff2 canon_frame(const dcl_synth *s, const vid *v, int t) {
    aff2 F2P = camera(s, v, t), P2F = aff_inv(&F2P);
    aff2 C = aff_canon(s->ids[v->pub.identity].lm);
    return aff_mul(&P2F, &C);
}

dcl_status dcl_synth_landmarks(const dcl_synth *s, float lm[5][2], int vi, int t) {
    if (!s || !lm) return dcl_fail(DCL_ERR_ARG, "dcl_synth_landmarks: NULL argument");
    if (vi < 0 || vi >= s->nv || t < 0 || t >= s->T)
        return dcl_fail(DCL_ERR_ARG, "video %d frame %d out of range (%d videos of %d frames)", vi, t, s->nv, s->T);
    const vid *v = &s->v[vi];
    aff2 F2P = camera(s, v, t), P2F = aff_inv(&F2P);
    for (int k = 0; k < 5; k++) {
        double x, y;
        aff_apply(&P2F, s->ids[v->pub.identity].lm[k][0], s->ids[v->pub.identity].lm[k][1], &x, &y);
        lm[k][0] = (float)x;
        lm[k][1] = (float)y;
    }
    return DCL_OK;
}

/* ---- regions ---- */

typedef struct poly {
    int n;
    double x[24], y[24], nx[24], ny[24], off[24];
    int bx0, by0, bx1, by1; /* pixel bounding box, clipped to the frame */
} poly;

static int cross_ok(double ox, double oy, double ax, double ay, double bx, double by) {
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox) > 0;
}

/* convex hull (counter-clockwise in a y-up sense) of canonical points
 * scaled about (0, 0.5) by sc[i], mapped to the frame */
static void poly_build(poly *P, const double (*pts)[2], int n, const double *sc, double gscale, const aff2 *CF, int W, int H) {
    double x[24], y[24];
    for (int i = 0; i < n; i++) {
        double f = gscale * (sc ? sc[i] : 1.0);
        double u = pts[i][0] * f, v = 0.5 + (pts[i][1] - 0.5) * f;
        aff_apply(CF, u, v, &x[i], &y[i]);
    }
    /* sort by x then y (insertion sort, n small) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (x[j] < x[j - 1] || (x[j] == x[j - 1] && y[j] < y[j - 1])); j--) {
            double t = x[j]; x[j] = x[j - 1]; x[j - 1] = t;
            t = y[j]; y[j] = y[j - 1]; y[j - 1] = t;
        }
    double hx[48], hy[48];
    int k = 0;
    for (int i = 0; i < n; i++) {
        while (k >= 2 && !cross_ok(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], x[i], y[i])) k--;
        hx[k] = x[i]; hy[k] = y[i]; k++;
    }
    for (int i = n - 2, lo = k + 1; i >= 0; i--) {
        while (k >= lo && !cross_ok(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], x[i], y[i])) k--;
        hx[k] = x[i]; hy[k] = y[i]; k++;
    }
    P->n = k - 1;
    double minx = 1e30, miny = 1e30, maxx = -1e30, maxy = -1e30;
    for (int i = 0; i < P->n; i++) {
        P->x[i] = hx[i];
        P->y[i] = hy[i];
        int j = (i + 1) % P->n;
        double ex = hx[j] - hx[i], ey = hy[j] - hy[i], len = hypot(ex, ey);
        if (len < 1e-9) len = 1e-9;
        /* the hull turns left (positive cross): the inside is to the left of each edge */
        P->nx[i] = -ey / len;
        P->ny[i] = ex / len;
        P->off[i] = P->nx[i] * hx[i] + P->ny[i] * hy[i];
        minx = fmin(minx, hx[i]); maxx = fmax(maxx, hx[i]);
        miny = fmin(miny, hy[i]); maxy = fmax(maxy, hy[i]);
    }
    P->bx0 = (int)fmax(0, floor(minx));
    P->by0 = (int)fmax(0, floor(miny));
    P->bx1 = (int)fmin(W, ceil(maxx) + 1);
    P->by1 = (int)fmin(H, ceil(maxy) + 1);
    if (P->n < 3) P->bx1 = P->bx0; /* degenerate: empty */
}

/* signed distance to the boundary, positive inside (exact inside a convex polygon) */
static double poly_sd(const poly *P, double x, double y) {
    double d = 1e30;
    for (int i = 0; i < P->n; i++) {
        double s = P->nx[i] * x + P->ny[i] * y - P->off[i];
        if (s < d) d = s;
    }
    return d;
}

/* ---- expression signals of a driving video (0..1 each: mouth open, smile, squint) ---- */
static void expression(const dcl_synth *s, const vid *drv, int t, double e[3]) {
    double tt = t / s->o.fps;
    for (int k = 0; k < 3; k++) {
        double a = 0;
        for (int j = 0; j < 2; j++) a += sin(2 * PI * drv->p.ex_f[k][j] * tt + drv->p.ex_ph[k][j]) / (j + 1);
        e[k] = drv->p.ex_w[k] * clampd(0.5 + 0.4 * a, 0, 1);
    }
}

static double kern(double du, double dv) { /* compact bump: (1 - r^2)^2 inside the unit disc */
    double r2 = du * du + dv * dv;
    return r2 < 1 ? (1 - r2) * (1 - r2) : 0;
}

/* Face2Face-style displacement at canonical (u, v): returns the support
 * weight (> 0 inside a warped region), displacement in du, dv. */
static double f2f_disp(const double e[3], double amp, double u, double v, double *du, double *dv) {
    double wm = kern(u / 0.62, (v - 1.0) / 0.42);
    double wl = kern((u + 0.5) / 0.34, v / 0.24), wr = kern((u - 0.5) / 0.34, v / 0.24);
    double open = e[0], smile = e[1] * 2 - 0.4, squint = e[2];
    double uu = u / 0.45;
    *du = amp * wm * smile * 0.10 * uu;
    *dv = amp * (wm * (open * 0.13 * tanh((v - 1.0) / 0.08) - smile * 0.05 * fmin(1, uu * uu)) -
                 (wl + wr) * squint * 0.06 * tanh(v / 0.06));
    return wm + wl + wr;
}

/* ---- families ---- */

static void fake_init(dcl_synth *s, dcl_image *frame, dcl_image *mask) {
    size_t n = (size_t)s->W * s->H * 3;
    memcpy(frame->data, s->ru, n);
    if (mask) memset(mask->data, 0, n);
}

static inline void put(dcl_synth *s, dcl_image *frame, dcl_image *mask, int x, int y, double alpha, const double X[3]) {
    size_t o = ((size_t)y * s->W + x) * 3;
    for (int k = 0; k < 3; k++) frame->data[o + k] = to_u8((1 - alpha) * s->rf[o + k] + alpha * X[k]);
    if (mask) mask->data[o] = mask->data[o + 1] = mask->data[o + 2] = 255;
}

static dcl_status fake_swap(dcl_synth *s, dcl_image *frame, dcl_image *mask, int vi, int t, int faceswap) {
    vid *v = &s->v[vi];
    const vparam *p = &v->p;
    const vid *sv = &s->v[v->pub.source];
    const ident *ti = &s->ids[v->pub.identity], *si = &s->ids[sv->pub.identity];
    pcache *spc;
    DCL_TRY(portrait_get(s, sv->pub.identity, &spc));
    const fimg *src = &spc->img;
    if (!faceswap) { /* the autoencoder's low-resolution face */
        int r = (int)lround(si->eye_dist / 14);
        if (r >= 1) {
            DCL_TRY(portrait_blur(spc, r));
            src = &spc->blur;
        }
    }
    aff2 CF = canon_frame(s, v, t), FC = aff_inv(&CF), CS = aff_canon(si->lm);
    double d = hypot(CF.a, CF.c);
    /* per-frame alignment jitter and flicker */
    dcl_rng r = rng_for(s->o.seed, 0x5A9ULL + faceswap, (uint64_t)vi * 4096 + t);
    double jit = faceswap ? p->fs_jitter : 0.006;
    double ju = jit * dcl_rng_normal(&r), jv = jit * dcl_rng_normal(&r);
    double flick = faceswap ? 0 : p->df_flicker * dcl_rng_normal(&r);
    double corr = faceswap ? p->fs_corr : p->df_corr;
    const double *tint = faceswap ? p->fs_tint : p->df_tint;
    double off[3];
    for (int k = 0; k < 3; k++) off[k] = corr * (ti->mean[k] - si->mean[k]) + tint[k];
    double sigma = p->noise * (faceswap ? 0.7 : 0.35);
    double feather = fmax(1.5, d * (faceswap ? 0.06 : 0.25));
    poly P;
    poly_build(&P, k_face_poly, 14, NULL, faceswap ? p->fs_scale : p->df_scale, &CF, s->W, s->H);
    light L = light_at(s, v, t);
    for (int y = P.by0; y < P.by1; y++)
        for (int x = P.bx0; x < P.bx1; x++) {
            double sd = poly_sd(&P, x + 0.5, y + 0.5);
            if (sd <= 0) continue;
            double alpha = smooth01(0, feather, sd);
            double u, vv, qx, qy;
            aff_apply(&FC, x + 0.5, y + 0.5, &u, &vv);
            aff_apply(&CS, u + ju, vv + jv, &qx, &qy);
            float c[3];
            samp_bilinear(src, qx, qy, c);
            double X[3];
            size_t o = ((size_t)y * s->W + x) * 3;
            for (int k = 0; k < 3; k++)
                X[k] = clampd(light_apply(s, &L, k, x, y, c[k] + off[k]) + flick + sigma * s->noise[o + k], 0, 255);
            put(s, frame, mask, x, y, alpha, X);
        }
    return DCL_OK;
}

static dcl_status fake_f2f(dcl_synth *s, dcl_image *frame, dcl_image *mask, int vi, int t) {
    vid *v = &s->v[vi];
    pcache *pc;
    DCL_TRY(portrait_get(s, v->pub.identity, &pc));
    double e[3];
    expression(s, &s->v[v->pub.source], t, e);
    aff2 CF = canon_frame(s, v, t), FC = aff_inv(&CF), F2P = camera(s, v, t);
    light L = light_at(s, v, t);
    /* bounding box of the supports: canonical u in [-0.84, 0.84], v in [-0.24, 1.42] */
    static const double box[8][2] = {{-0.84, -0.24}, {0.84, -0.24}, {0.84, 1.42}, {-0.84, 1.42},
                                     {0, -0.24}, {0, 1.42}, {-0.84, 0.6}, {0.84, 0.6}};
    poly P;
    poly_build(&P, box, 8, NULL, 1.0, &CF, s->W, s->H);
    double sigma = v->p.noise * 0.5; /* the re-rendered face is smoother */
    for (int y = P.by0; y < P.by1; y++)
        for (int x = P.bx0; x < P.bx1; x++) {
            double u, vv, du, dv;
            aff_apply(&FC, x + 0.5, y + 0.5, &u, &vv);
            if (f2f_disp(e, 1.0, u, vv, &du, &dv) <= 0) continue;
            double px, py, qx, qy;
            aff_apply(&CF, u - du, vv - dv, &px, &py);
            aff_apply(&F2P, px, py, &qx, &qy);
            float c[3];
            samp_bilinear(&pc->img, qx, qy, c);
            double X[3];
            size_t o = ((size_t)y * s->W + x) * 3;
            for (int k = 0; k < 3; k++) X[k] = clampd(light_apply(s, &L, k, x, y, c[k]) + sigma * s->noise[o + k], 0, 255);
            put(s, frame, mask, x, y, 1.0, X);
        }
    return DCL_OK;
}

static dcl_status fake_nt(dcl_synth *s, dcl_image *frame, dcl_image *mask, int vi, int t) {
    vid *v = &s->v[vi];
    const vparam *p = &v->p;
    pcache *pc;
    DCL_TRY(portrait_get(s, v->pub.identity, &pc));
    double e[3];
    expression(s, &s->v[v->pub.source], t, e);
    aff2 CF = canon_frame(s, v, t), FC = aff_inv(&CF), F2P = camera(s, v, t);
    double d = hypot(CF.a, CF.c);
    light L = light_at(s, v, t);
    poly P;
    poly_build(&P, k_lower_poly, 10, NULL, 1.0, &CF, s->W, s->H);
    int f = (int)lround(d / 9);
    if (f < 2) f = 2;
    /* clean (noise-free) content with the mouth moved, over the box grown to whole f x f blocks */
    int x0 = P.bx0 - P.bx0 % f, y0 = P.by0 - P.by0 % f;
    int bw = ((P.bx1 - x0 + f - 1) / f) * f, bh = ((P.by1 - y0 + f - 1) / f) * f;
    if (P.bx1 <= P.bx0 || P.by1 <= P.by0) return DCL_OK;
    int nbx = bw / f, nby = bh / f;
    float *blk = calloc((size_t)nbx * nby * 3, sizeof(float));
    if (!blk) return dcl_fail(DCL_ERR_NOMEM, "NeuralTextures: out of memory");
    for (int y = y0; y < y0 + bh; y++)
        for (int x = x0; x < x0 + bw; x++) {
            double u, vv, du, dv, px, py, qx, qy;
            aff_apply(&FC, x + 0.5, y + 0.5, &u, &vv);
            if (f2f_disp(e, p->nt_warp, u, vv, &du, &dv) <= 0) du = dv = 0;
            aff_apply(&CF, u - du, vv - dv, &px, &py);
            aff_apply(&F2P, px, py, &qx, &qy);
            float c[3];
            samp_bilinear(&pc->img, qx, qy, c);
            int xx = x < s->W ? x : s->W - 1, yy = y < s->H ? y : s->H - 1;
            for (int k = 0; k < 3; k++)
                blk[((size_t)((y - y0) / f) * nbx + (x - x0) / f) * 3 + k] += (float)(light_apply(s, &L, k, xx, yy, c[k]) / (f * f));
        }
    fimg lo = {nbx, nby, blk};
    double feather = fmax(1.5, d * 0.12);
    for (int y = P.by0; y < P.by1; y++)
        for (int x = P.bx0; x < P.bx1; x++) {
            double sd = poly_sd(&P, x + 0.5, y + 0.5);
            if (sd <= 0) continue;
            double alpha = smooth01(0, feather, sd);
            float c[3];
            samp_bilinear(&lo, (x + 0.5 - x0) / f, (y + 0.5 - y0) / f, c);
            double chk = ((x + y) & 1 ? 1.0 : -1.0) * p->nt_check * (((x >> 1) + (y >> 1)) & 1 ? 1.0 : 0.5);
            double X[3];
            size_t o = ((size_t)y * s->W + x) * 3;
            for (int k = 0; k < 3; k++) X[k] = clampd(c[k] + chk + p->nt_noise * s->noise[o + (k + 1) % 3], 0, 255);
            put(s, frame, mask, x, y, alpha, X);
        }
    free(blk);
    return DCL_OK;
}

/* separable Gaussian of the real frame over a window, into dst (same layout as rf) */
static void gauss_window(dcl_synth *s, float *dst, int x0, int y0, int x1, int y1, double sigma) {
    int R = (int)ceil(3 * sigma);
    if (R > 12) R = 12;
    double w[25], sum = 0;
    for (int i = -R; i <= R; i++) { w[i + R] = exp(-0.5 * i * i / (sigma * sigma)); sum += w[i + R]; }
    for (int i = 0; i <= 2 * R; i++) w[i] /= sum;
    int W = s->W, H = s->H;
    int ya = y0 - R < 0 ? 0 : y0 - R, yb = y1 + R > H ? H : y1 + R;
    for (int y = ya; y < yb; y++)
        for (int x = x0; x < x1; x++)
            for (int k = 0; k < 3; k++) {
                double a = 0;
                for (int i = -R; i <= R; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
                    a += w[i + R] * s->rf[((size_t)y * W + xx) * 3 + k];
                }
                s->tmp2[((size_t)y * W + x) * 3 + k] = (float)a;
            }
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int k = 0; k < 3; k++) {
                double a = 0;
                for (int i = -R; i <= R; i++) {
                    int yy = y + i < ya ? ya : y + i >= yb ? yb - 1 : y + i;
                    a += w[i + R] * s->tmp2[((size_t)yy * W + x) * 3 + k];
                }
                dst[((size_t)y * W + x) * 3 + k] = (float)a;
            }
}

static dcl_status fake_sbi(dcl_synth *s, dcl_image *frame, dcl_image *mask, int vi, int t) {
    vid *v = &s->v[vi];
    const vparam *p = &v->p;
    aff2 CF = canon_frame(s, v, t);
    double d = hypot(CF.a, CF.c);
    poly P;
    poly_build(&P, k_face_poly, 14, p->sb_deform, 1.0, &CF, s->W, s->H);
    if (P.bx1 <= P.bx0 || P.by1 <= P.by0) return DCL_OK;
    /* source: the frame itself, low-passed or sharpened, over a window around the region */
    int m = (int)ceil(d * 0.3) + 4;
    int x0 = P.bx0 - m < 0 ? 0 : P.bx0 - m, y0 = P.by0 - m < 0 ? 0 : P.by0 - m;
    int x1 = P.bx1 + m > s->W ? s->W : P.bx1 + m, y1 = P.by1 + m > s->H ? s->H : P.by1 + m;
    double sig = p->sb_blur > 0 ? p->sb_blur : 1.0;
    gauss_window(s, s->tmp, x0, y0, x1, y1, sig);
    if (p->sb_sharp > 0)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                for (int k = 0; k < 3; k++) {
                    size_t o = ((size_t)y * s->W + x) * 3 + k;
                    s->tmp[o] = s->rf[o] + (float)p->sb_sharp * (s->rf[o] - s->tmp[o]);
                }
    fimg win = {x1 - x0, y1 - y0, NULL};
    float *wp = malloc((size_t)win.w * win.h * 3 * sizeof(float));
    if (!wp) return dcl_fail(DCL_ERR_NOMEM, "SelfBlended: out of memory");
    for (int y = y0; y < y1; y++) memcpy(wp + (size_t)(y - y0) * win.w * 3, s->tmp + ((size_t)y * s->W + x0) * 3, (size_t)win.w * 3 * sizeof(float));
    win.p = wp;
    /* source geometry: scaled about the face centre and shifted */
    double fcx, fcy;
    aff_apply(&CF, 0, 0.5, &fcx, &fcy);
    double shx = p->sb_shift[0] * d, shy = p->sb_shift[1] * d;
    double feather = fmax(1.0, d * p->sb_feather);
    for (int y = P.by0; y < P.by1; y++)
        for (int x = P.bx0; x < P.bx1; x++) {
            double sd = poly_sd(&P, x + 0.5, y + 0.5);
            if (sd <= 0) continue;
            double alpha = p->sb_ratio * smooth01(0, feather, sd);
            double sx = fcx + (x + 0.5 - fcx) / p->sb_scale + shx, sy = fcy + (y + 0.5 - fcy) / p->sb_scale + shy;
            float c[3];
            samp_bilinear(&win, sx - x0, sy - y0, c);
            double Y = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2], X[3];
            for (int k = 0; k < 3; k++) {
                double val = Y + p->sb_sat * (c[k] - Y);
                val = 128 + p->sb_contrast * (val - 128) + p->sb_bright + p->sb_shift_c[k];
                X[k] = clampd(val, 0, 255);
            }
            put(s, frame, mask, x, y, alpha, X);
        }
    free(wp);
    return DCL_OK;
}

dcl_status dcl_synth_render(dcl_synth *s, dcl_image *frame, dcl_image *mask, int vi, int method, int t) {
    if (!s || !frame) return dcl_fail(DCL_ERR_ARG, "dcl_synth_render: NULL argument");
    if (vi < 0 || vi >= s->nv) return dcl_fail(DCL_ERR_ARG, "video %d out of range (%d videos)", vi, s->nv);
    if (t < 0 || t >= s->T) return dcl_fail(DCL_ERR_ARG, "frame %d out of range (%d frames)", t, s->T);
    if (method < DCL_SYNTH_REAL || method >= DCL_SYNTH_NMETHODS) return dcl_fail(DCL_ERR_ARG, "unknown method %d", method);
    DCL_TRY(image_ensure(frame, s->W, s->H));
    if (mask) DCL_TRY(image_ensure(mask, s->W, s->H));
    DCL_TRY(real_frame(s, vi, t));
    fake_init(s, frame, mask);
    switch (method) {
    case DCL_SYNTH_DEEPFAKES: return fake_swap(s, frame, mask, vi, t, 0);
    case DCL_SYNTH_FACESWAP: return fake_swap(s, frame, mask, vi, t, 1);
    case DCL_SYNTH_FACE2FACE: return fake_f2f(s, frame, mask, vi, t);
    case DCL_SYNTH_NEURALTEXTURES: return fake_nt(s, frame, mask, vi, t);
    case DCL_SYNTH_SELFBLENDED: return fake_sbi(s, frame, mask, vi, t);
    default: return DCL_OK;
    }
}

const char *dcl_synth_sources(const dcl_synth *s) { return s ? s->sources : ""; }
