/* t-SNE (van der Maaten & Hinton 2008) with exact gradients for small n and
 * the Barnes-Hut approximation (van der Maaten 2014) for large n.  Schedule
 * and defaults follow scikit-learn's TSNE.
 *
 * Determinism: every per-point quantity is computed by one thread in a fixed
 * order, and sums over points run serially afterwards, so the output does not
 * depend on the number of OpenMP threads. */
#include "dcl/eval.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TSNE_EXACT_MAX 8192
#define PERP_TOL 1e-5
#define PERP_STEPS 100
#define CHECK_EVERY 50

void dcl_tsne_default_opts(dcl_tsne_opts *o) {
    memset(o, 0, sizeof *o);
    o->perplexity = 30.0;
    o->theta = 0.5;
    o->early_exaggeration = 12.0;
    o->exaggeration_iters = 250;
    o->n_iter = 1000;
    o->learning_rate = 0.0;
    o->momentum_early = 0.5;
    o->momentum_final = 0.8;
    o->min_grad_norm = 1e-7;
    o->n_iter_without_progress = 300;
    o->method = DCL_TSNE_AUTO;
    o->exact_max_n = 500;
    o->init = DCL_TSNE_INIT_PCA;
    o->seed = 0;
    o->verbose = 0;
}

void dcl_sparse_free(dcl_sparse *s) {
    if (!s) return;
    free(s->rowptr); free(s->col); free(s->val);
    memset(s, 0, sizeof *s);
}

static dcl_status check_finite(const float *x, int n, int d) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            if (!isfinite(x[(size_t)i * d + j]))
                return dcl_fail(DCL_ERR_ARG, "t-SNE: input row %d, column %d is not finite", i, j);
    return DCL_OK;
}

static inline double sqdist(const float *a, const float *b, int d) {
    double s = 0.0;
    for (int j = 0; j < d; j++) { double t = (double)a[j] - (double)b[j]; s += t * t; }
    return s;
}

/* Conditional probabilities of one point over m candidates with squared
 * distances d2, matching the perplexity by binary search on beta = 1/(2 s^2).
 * Distances are shifted by their minimum (which cancels) to avoid underflow. */
static void calibrate_row(double *p, const double *d2, int m, double perplexity) {
    if (m <= 0) return;
    double dmin = d2[0];
    for (int j = 1; j < m; j++) if (d2[j] < dmin) dmin = d2[j];
    const double target = log(perplexity);
    double beta = 1.0, lo = -INFINITY, hi = INFINITY;
    for (int step = 0; step < PERP_STEPS; step++) {
        double sum = 0.0;
        for (int j = 0; j < m; j++) { p[j] = exp(-(d2[j] - dmin) * beta); sum += p[j]; }
        double sdp = 0.0;
        for (int j = 0; j < m; j++) { p[j] /= sum; sdp += (d2[j] - dmin) * p[j]; }
        double h = log(sum) + beta * sdp;
        double diff = h - target;
        if (fabs(diff) <= PERP_TOL) break;
        if (diff > 0) {
            lo = beta;
            beta = isinf(hi) ? beta * 2.0 : (beta + hi) / 2.0;
        } else {
            hi = beta;
            beta = isinf(lo) ? beta / 2.0 : (beta + lo) / 2.0;
        }
    }
}

dcl_status dcl_tsne_p_exact(double *p, const float *x, int n, int d, double perplexity) {
    if (!p || !x || n < 2 || d < 1)
        return dcl_fail(DCL_ERR_ARG, "t-SNE: need at least 2 points of dimension >= 1 (n=%d, d=%d)", n, d);
    if (n > TSNE_EXACT_MAX)
        return dcl_fail(DCL_ERR_ARG, "t-SNE: exact method needs n x n memory; n=%d exceeds %d, use Barnes-Hut",
                        n, TSNE_EXACT_MAX);
    if (!(perplexity > 0) || !(perplexity < n))
        return dcl_fail(DCL_ERR_ARG, "t-SNE: perplexity %g must be in (0, n=%d)", perplexity, n);
    DCL_TRY(check_finite(x, n, d));
    const size_t nn = (size_t)n;
    int bad = 0;
#pragma omp parallel
    {
        double *d2 = malloc(nn * sizeof *d2), *row = malloc(nn * sizeof *row);
        if (!d2 || !row) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            if (!d2 || !row) continue;
            int m = 0;
            for (int j = 0; j < n; j++)
                if (j != i) d2[m++] = sqdist(x + (size_t)i * d, x + (size_t)j * d, d);
            calibrate_row(row, d2, m, perplexity);
            m = 0;
            for (int j = 0; j < n; j++) p[(size_t)i * nn + j] = (j == i) ? 0.0 : row[m++];
        }
        free(d2); free(row);
    }
    if (bad) return dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory");
    /* symmetrise, normalise, floor */
    double sum = 0.0;
    for (size_t i = 0; i < nn; i++)
        for (size_t j = i + 1; j < nn; j++) {
            double v = p[i * nn + j] + p[j * nn + i];
            p[i * nn + j] = p[j * nn + i] = v;
            sum += 2.0 * v;
        }
    if (sum < DBL_EPSILON) sum = DBL_EPSILON;
    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; j < nn; j++)
            if (i != j) { double v = p[i * nn + j] / sum; p[i * nn + j] = v < DBL_EPSILON ? DBL_EPSILON : v; }
    return DCL_OK;
}

/* ------------------------------------------------------------ vantage-point tree */

typedef struct { int idx; double thr; int left, right; } vp_node;
typedef struct { double d; int i; } dist_item;

typedef struct {
    const float *x;
    int d;
    vp_node *node;
    int nnode;
    int *item;
} vp_tree;

static void select_nth(dist_item *a, int lo, int hi, int k) { /* [lo,hi), k-th smallest at a[k] */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        /* median of three as pivot */
        dist_item A = a[lo], B = a[mid], C = a[hi - 1], piv;
        if ((A.d <= B.d) == (B.d <= C.d)) piv = B;
        else if ((B.d <= A.d) == (A.d <= C.d)) piv = A;
        else piv = C;
        int i = lo, j = hi - 1;
        while (i <= j) {
            while (a[i].d < piv.d) i++;
            while (a[j].d > piv.d) j--;
            if (i <= j) { dist_item t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (k <= j) hi = j + 1;
        else if (k >= i) lo = i;
        else return;
    }
}

/* builds the subtree over items[lo,hi); returns its node index (-1 if empty) */
static int vp_build(vp_tree *t, int lo, int hi, dist_item *tmp, dcl_rng *rng) {
    if (hi <= lo) return -1;
    int id = t->nnode++;
    vp_node *nd = &t->node[id];
    nd->left = nd->right = -1;
    nd->thr = 0.0;
    int r = lo + (int)dcl_rng_below(rng, (uint32_t)(hi - lo));
    int tmpi = t->item[lo]; t->item[lo] = t->item[r]; t->item[r] = tmpi;
    nd->idx = t->item[lo];
    if (hi - lo == 1) return id;
    const float *vp = t->x + (size_t)nd->idx * t->d;
    for (int i = lo + 1; i < hi; i++) {
        tmp[i].i = t->item[i];
        tmp[i].d = sqrt(sqdist(vp, t->x + (size_t)t->item[i] * t->d, t->d));
    }
    int median = (lo + 1 + hi) / 2;
    select_nth(tmp, lo + 1, hi, median);
    for (int i = lo + 1; i < hi; i++) t->item[i] = tmp[i].i;
    double thr = tmp[median].d;
    int left = vp_build(t, lo + 1, median, tmp, rng);
    int right = vp_build(t, median, hi, tmp, rng);
    nd = &t->node[id];
    nd->thr = thr;
    nd->left = left;
    nd->right = right;
    return id;
}

typedef struct { dist_item *h; int n, k; double tau; } knn_heap; /* max-heap on d */

static void heap_push(knn_heap *q, double dd, int i) {
    if (q->n == q->k) { /* replace the top */
        if (!(dd < q->h[0].d)) return;
        int pos = 0;
        for (;;) {
            int l = 2 * pos + 1, r = l + 1, big = pos;
            double bd = dd;
            if (l < q->n && q->h[l].d > bd) { big = l; bd = q->h[l].d; }
            if (r < q->n && q->h[r].d > bd) { big = r; }
            if (big == pos) break;
            q->h[pos] = q->h[big];
            pos = big;
        }
        q->h[pos].d = dd; q->h[pos].i = i;
    } else {
        int pos = q->n++;
        while (pos > 0) {
            int par = (pos - 1) / 2;
            if (!(q->h[par].d < dd)) break;
            q->h[pos] = q->h[par];
            pos = par;
        }
        q->h[pos].d = dd; q->h[pos].i = i;
    }
    if (q->n == q->k) q->tau = q->h[0].d;
}

static void vp_search(const vp_tree *t, int id, const float *target, knn_heap *q) {
    while (id >= 0) {
        const vp_node *nd = &t->node[id];
        double dd = sqrt(sqdist(t->x + (size_t)nd->idx * t->d, target, t->d));
        if (dd < q->tau) heap_push(q, dd, nd->idx);
        if (nd->left < 0 && nd->right < 0) return;
        if (dd < nd->thr) {
            if (dd + q->tau >= nd->thr) { /* both may hold neighbours: inside first */
                vp_search(t, nd->left, target, q);
                if (dd + q->tau >= nd->thr) { id = nd->right; continue; }
                return;
            }
            id = nd->left;
        } else {
            if (dd - q->tau <= nd->thr) {
                vp_search(t, nd->right, target, q);
                if (dd - q->tau <= nd->thr) { id = nd->left; continue; }
                return;
            }
            id = nd->right;
        }
    }
}

static int cmp_dist_item(const void *a, const void *b) {
    const dist_item *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

dcl_status dcl_knn_vptree(int *idx, double *d2, const float *x, int n, int d, int k, uint64_t seed) {
    if (!idx || !d2 || !x || n < 2 || d < 1)
        return dcl_fail(DCL_ERR_ARG, "kNN: need at least 2 points of dimension >= 1 (n=%d, d=%d)", n, d);
    if (k < 1 || k > n - 1) return dcl_fail(DCL_ERR_ARG, "kNN: k=%d must be in [1, n-1=%d]", k, n - 1);
    DCL_TRY(check_finite(x, n, d));
    vp_tree t = {.x = x, .d = d, .nnode = 0};
    t.node = malloc((size_t)n * sizeof *t.node);
    t.item = malloc((size_t)n * sizeof *t.item);
    dist_item *tmp = malloc((size_t)n * sizeof *tmp);
    if (!t.node || !t.item || !tmp) {
        free(t.node); free(t.item); free(tmp);
        return dcl_fail(DCL_ERR_NOMEM, "kNN: out of memory for %d points", n);
    }
    for (int i = 0; i < n; i++) t.item[i] = i;
    dcl_rng rng;
    dcl_rng_seed(&rng, seed ^ 0x7470736e65ULL);
    vp_build(&t, 0, n, tmp, &rng);
    free(tmp);
    int bad = 0;
#pragma omp parallel
    {
        dist_item *h = malloc((size_t)(k + 1) * sizeof *h);
        if (!h) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(dynamic, 32)
        for (int i = 0; i < n; i++) {
            if (!h) continue;
            knn_heap q = {.h = h, .n = 0, .k = k + 1, .tau = INFINITY};
            vp_search(&t, 0, x + (size_t)i * d, &q);
            qsort(h, (size_t)q.n, sizeof *h, cmp_dist_item);
            /* drop the point itself (or, among duplicates, the farthest) */
            int self = -1;
            for (int j = 0; j < q.n; j++) if (h[j].i == i) { self = j; break; }
            if (self < 0) self = q.n - 1;
            int m = 0;
            for (int j = 0; j < q.n && m < k; j++) {
                if (j == self) continue;
                idx[(size_t)i * k + m] = h[j].i;
                d2[(size_t)i * k + m] = h[j].d * h[j].d;
                m++;
            }
        }
        free(h);
    }
    free(t.node); free(t.item);
    if (bad) return dcl_fail(DCL_ERR_NOMEM, "kNN: out of memory");
    return DCL_OK;
}

typedef struct { int col; double v; } sp_entry;
static int cmp_sp_entry(const void *a, const void *b) {
    const sp_entry *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

dcl_status dcl_tsne_p_knn(dcl_sparse *p, const float *x, int n, int d, double perplexity, int k,
                          uint64_t seed) {
    if (!p) return dcl_fail(DCL_ERR_ARG, "t-SNE: NULL output");
    memset(p, 0, sizeof *p);
    if (!(perplexity > 0)) return dcl_fail(DCL_ERR_ARG, "t-SNE: perplexity %g must be > 0", perplexity);
    int *idx = malloc((size_t)n * (size_t)(k > 0 ? k : 1) * sizeof *idx);
    double *d2 = malloc((size_t)n * (size_t)(k > 0 ? k : 1) * sizeof *d2);
    double *cond = malloc((size_t)n * (size_t)(k > 0 ? k : 1) * sizeof *cond);
    int64_t *cnt = calloc((size_t)n + 1, sizeof *cnt);
    sp_entry *ent = NULL;
    dcl_status st = DCL_OK;
    if (!idx || !d2 || !cond || !cnt) { st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for %d points", n); goto out; }
    st = dcl_knn_vptree(idx, d2, x, n, d, k, seed);
    if (st) goto out;
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < n; i++) calibrate_row(cond + (size_t)i * k, d2 + (size_t)i * k, k, perplexity);
    /* symmetrise: entries (i, j, c) and (j, i, c), then merge duplicates */
    for (int i = 0; i < n; i++)
        for (int m = 0; m < k; m++) { cnt[i + 1]++; cnt[idx[(size_t)i * k + m] + 1]++; }
    for (int i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    ent = malloc((size_t)cnt[n] * sizeof *ent);
    int64_t *fill = malloc((size_t)n * sizeof *fill);
    if (!ent || !fill) { free(fill); st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for P"); goto out; }
    for (int i = 0; i < n; i++) fill[i] = cnt[i];
    for (int i = 0; i < n; i++)
        for (int m = 0; m < k; m++) {
            int j = idx[(size_t)i * k + m];
            double c = cond[(size_t)i * k + m];
            ent[fill[i]++] = (sp_entry){j, c};
            ent[fill[j]++] = (sp_entry){i, c};
        }
    free(fill);
    p->n = n;
    p->rowptr = malloc(((size_t)n + 1) * sizeof *p->rowptr);
    p->col = malloc((size_t)cnt[n] * sizeof *p->col);
    p->val = malloc((size_t)cnt[n] * sizeof *p->val);
    if (!p->rowptr || !p->col || !p->val) { dcl_sparse_free(p); st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for P"); goto out; }
    int64_t w = 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p->rowptr[i] = w;
        sp_entry *e = ent + cnt[i];
        int64_t m = cnt[i + 1] - cnt[i];
        qsort(e, (size_t)m, sizeof *e, cmp_sp_entry);
        for (int64_t a = 0; a < m;) {
            int64_t b = a + 1;
            double v = e[a].v;
            while (b < m && e[b].col == e[a].col) v += e[b++].v;
            p->col[w] = e[a].col;
            p->val[w] = v;
            sum += v;
            w++;
            a = b;
        }
    }
    p->rowptr[n] = w;
    if (sum < DBL_EPSILON) sum = DBL_EPSILON;
    for (int64_t q = 0; q < w; q++) p->val[q] /= sum;
out:
    free(idx); free(d2); free(cond); free(cnt); free(ent);
    return st;
}

/* ---------------------------------------------------------------- gradients */

/* p_scale multiplies P (early exaggeration) without touching it */
static dcl_status grad_exact(double *grad, double *kl, const double *y, const double *p, double p_scale, int n) {
    double *zrow = malloc((size_t)n * sizeof *zrow), *klrow = malloc((size_t)n * sizeof *klrow);
    if (!zrow || !klrow) { free(zrow); free(klrow); return dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory"); }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double z = 0.0, yi0 = y[2 * i], yi1 = y[2 * i + 1];
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double a = yi0 - y[2 * j], b = yi1 - y[2 * j + 1];
            z += 1.0 / (1.0 + a * a + b * b);
        }
        zrow[i] = z;
    }
    double Z = 0.0;
    for (int i = 0; i < n; i++) Z += zrow[i];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double g0 = 0.0, g1 = 0.0, c = 0.0, yi0 = y[2 * i], yi1 = y[2 * i + 1];
        const double *pi = p + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double a = yi0 - y[2 * j], b = yi1 - y[2 * j + 1];
            double w = 1.0 / (1.0 + a * a + b * b);
            double q = w / Z;
            if (q < DBL_EPSILON) q = DBL_EPSILON;
            double pij = pi[j] * p_scale;
            double f = (pij - q) * w;
            g0 += f * a; g1 += f * b;
            if (kl) {
                double pv = pij < DBL_EPSILON ? DBL_EPSILON : pij;
                c += pij * log(pv / q);
            }
        }
        grad[2 * i] = 4.0 * g0;
        grad[2 * i + 1] = 4.0 * g1;
        klrow[i] = c;
    }
    if (kl) { double s = 0.0; for (int i = 0; i < n; i++) s += klrow[i]; *kl = s; }
    free(zrow); free(klrow);
    return DCL_OK;
}

dcl_status dcl_tsne_grad_exact(double *grad, double *kl, const double *y, const double *p, int n) {
    if (!grad || !y || !p || n < 2) return dcl_fail(DCL_ERR_ARG, "t-SNE gradient: bad arguments (n=%d)", n);
    return grad_exact(grad, kl, y, p, 1.0, n);
}

/* quadtree over the embedding; leaves keep linked lists of their points */
#define QT_MAX_DEPTH 48
typedef struct {
    double cx, cy, hw;   /* cell centre and half width */
    double mx, my;       /* centre of mass (sums while building) */
    int count, child, head, depth;
} qt_node;

typedef struct {
    qt_node *node;
    int nnode, cap;
    int *next;           /* next point in the same leaf */
} quadtree;

static int qt_new(quadtree *t, double cx, double cy, double hw, int depth) {
    if (t->nnode == t->cap) {
        int nc = t->cap * 2;
        qt_node *nn = realloc(t->node, (size_t)nc * sizeof *nn);
        if (!nn) return -1;
        t->node = nn;
        t->cap = nc;
    }
    qt_node *q = &t->node[t->nnode];
    q->cx = cx; q->cy = cy; q->hw = hw; q->mx = q->my = 0.0;
    q->count = 0; q->child = -1; q->head = -1; q->depth = depth;
    return t->nnode++;
}

static inline int qt_quadrant(const qt_node *q, double px, double py) {
    return (px >= q->cx) + 2 * (py >= q->cy);
}

static dcl_status qt_build(quadtree *t, const double *y, int n) {
    double x0 = y[0], x1 = y[0], y0 = y[1], y1 = y[1];
    for (int i = 1; i < n; i++) {
        double a = y[2 * i], b = y[2 * i + 1];
        x0 = fmin(x0, a); x1 = fmax(x1, a);
        y0 = fmin(y0, b); y1 = fmax(y1, b);
    }
    double hw = 0.5 * fmax(x1 - x0, y1 - y0);
    hw = hw * (1.0 + 1e-5) + 1e-12;
    t->nnode = 0;
    qt_new(t, 0.5 * (x0 + x1), 0.5 * (y0 + y1), hw, 0);
    for (int p = 0; p < n; p++) {
        double px = y[2 * p], py = y[2 * p + 1];
        int id = 0;
        for (;;) {
            qt_node *q = &t->node[id];
            q->count++; q->mx += px; q->my += py;
            if (q->child >= 0) { id = q->child + qt_quadrant(q, px, py); continue; }
            if (q->head < 0) { q->head = p; t->next[p] = -1; break; }
            int h = q->head;
            if ((y[2 * h] == px && y[2 * h + 1] == py) || q->depth >= QT_MAX_DEPTH) {
                t->next[p] = q->head; q->head = p; break;
            }
            /* split: the existing points are identical, so they move together */
            double cx = q->cx, cy = q->cy, chw = 0.5 * q->hw;
            int depth = q->depth + 1;
            int first = -1;
            for (int c = 0; c < 4; c++) {
                int nid = qt_new(t, cx + ((c & 1) ? chw : -chw), cy + ((c & 2) ? chw : -chw), chw, depth);
                if (nid < 0) return dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for the quadtree");
                if (c == 0) first = nid;
            }
            q = &t->node[id];
            q->child = first;
            qt_node *dst = &t->node[first + qt_quadrant(q, y[2 * h], y[2 * h + 1])];
            dst->head = q->head;
            q->head = -1;
            for (int e = dst->head; e >= 0; e = t->next[e]) { dst->count++; dst->mx += y[2 * e]; dst->my += y[2 * e + 1]; }
            id = first + qt_quadrant(q, px, py);
        }
    }
    for (int i = 0; i < t->nnode; i++) {
        qt_node *q = &t->node[i];
        if (q->count > 0) { q->mx /= q->count; q->my /= q->count; }
    }
    return DCL_OK;
}

/* repulsive forces on point i: sum over cells N w^2 (y_i - y_cell) and sum N w */
static void qt_repulse(const quadtree *t, const double *y, int i, double theta2, double *f0, double *f1,
                       double *sq) {
    int stack[4 * QT_MAX_DEPTH + 8];
    int sp = 0;
    double yi0 = y[2 * i], yi1 = y[2 * i + 1], a0 = 0.0, a1 = 0.0, s = 0.0;
    stack[sp++] = 0;
    while (sp > 0) {
        const qt_node *q = &t->node[stack[--sp]];
        if (q->count == 0) continue;
        if (q->child < 0) {
            for (int e = q->head; e >= 0; e = t->next[e]) {
                if (e == i) continue;
                double a = yi0 - y[2 * e], b = yi1 - y[2 * e + 1];
                double w = 1.0 / (1.0 + a * a + b * b);
                s += w; a0 += w * w * a; a1 += w * w * b;
            }
            continue;
        }
        double a = yi0 - q->mx, b = yi1 - q->my, dd = a * a + b * b;
        int inside = fabs(yi0 - q->cx) <= q->hw && fabs(yi1 - q->cy) <= q->hw;
        double width = 2.0 * q->hw;
        if (!inside && width * width < theta2 * dd) {
            double w = 1.0 / (1.0 + dd), nw = q->count * w;
            s += nw; a0 += nw * w * a; a1 += nw * w * b;
        } else {
            for (int c = 3; c >= 0; c--)
                if (t->node[q->child + c].count > 0) stack[sp++] = q->child + c;
        }
    }
    *f0 = a0; *f1 = a1; *sq = s;
}

typedef struct {
    quadtree qt;
    double *neg, *sq, *klrow, *psum;
} bh_work;

static void bh_work_free(bh_work *w) {
    free(w->qt.node); free(w->qt.next); free(w->neg); free(w->sq); free(w->klrow); free(w->psum);
    memset(w, 0, sizeof *w);
}

static dcl_status bh_work_init(bh_work *w, int n) {
    memset(w, 0, sizeof *w);
    w->qt.cap = 2 * n + 16;
    w->qt.node = malloc((size_t)w->qt.cap * sizeof *w->qt.node);
    w->qt.next = malloc((size_t)n * sizeof *w->qt.next);
    w->neg = malloc((size_t)n * 2 * sizeof *w->neg);
    w->sq = malloc((size_t)n * sizeof *w->sq);
    w->klrow = malloc((size_t)n * sizeof *w->klrow);
    w->psum = malloc((size_t)n * sizeof *w->psum);
    if (!w->qt.node || !w->qt.next || !w->neg || !w->sq || !w->klrow || !w->psum) {
        bh_work_free(w);
        return dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for %d points", n);
    }
    return DCL_OK;
}

/* p_scale multiplies P (early exaggeration) without touching it.  One pass
 * per point gathers the attraction, the repulsion and the normaliser's share;
 * with q_ij = w_ij / Z the KL is  sum p log p - sum p log w + log Z sum p. */
static dcl_status bh_grad(double *grad, double *kl, const double *y, const dcl_sparse *p, double p_scale,
                          double theta, bh_work *w) {
    const int n = p->n;
    DCL_TRY(qt_build(&w->qt, y, n));
    const double theta2 = theta * theta;
    const int want_kl = kl != NULL;
#pragma omp parallel for schedule(dynamic, 32)
    for (int i = 0; i < n; i++) {
        qt_repulse(&w->qt, y, i, theta2, &w->neg[2 * i], &w->neg[2 * i + 1], &w->sq[i]);
        double a0 = 0.0, a1 = 0.0, c = 0.0, ps = 0.0, yi0 = y[2 * i], yi1 = y[2 * i + 1];
        for (int64_t e = p->rowptr[i]; e < p->rowptr[i + 1]; e++) {
            int j = p->col[e];
            double a = yi0 - y[2 * j], b = yi1 - y[2 * j + 1];
            double wij = 1.0 / (1.0 + a * a + b * b);
            double pij = p->val[e] * p_scale;
            a0 += pij * wij * a; a1 += pij * wij * b;
            if (want_kl) {
                double pv = pij < DBL_EPSILON ? DBL_EPSILON : pij;
                c += pij * (log(pv) - log(wij));
                ps += pij;
            }
        }
        grad[2 * i] = a0;
        grad[2 * i + 1] = a1;
        w->klrow[i] = c;
        w->psum[i] = ps;
    }
    double Z = 0.0;
    for (int i = 0; i < n; i++) Z += w->sq[i];
    if (Z < DBL_EPSILON) Z = DBL_EPSILON;
    for (int i = 0; i < n; i++) {
        grad[2 * i] = 4.0 * (grad[2 * i] - w->neg[2 * i] / Z);
        grad[2 * i + 1] = 4.0 * (grad[2 * i + 1] - w->neg[2 * i + 1] / Z);
    }
    if (want_kl) {
        double s = 0.0, ps = 0.0;
        for (int i = 0; i < n; i++) { s += w->klrow[i]; ps += w->psum[i]; }
        *kl = s + log(Z) * ps;
    }
    return DCL_OK;
}

dcl_status dcl_tsne_grad_bh(double *grad, double *kl, const double *y, const dcl_sparse *p, double theta) {
    if (!grad || !y || !p || p->n < 2) return dcl_fail(DCL_ERR_ARG, "t-SNE gradient: bad arguments");
    if (!(theta >= 0)) return dcl_fail(DCL_ERR_ARG, "t-SNE: theta %g must be >= 0", theta);
    bh_work w;
    DCL_TRY(bh_work_init(&w, p->n));
    dcl_status st = bh_grad(grad, kl, y, p, 1.0, theta, &w);
    bh_work_free(&w);
    return st;
}

/* -------------------------------------------------------------- PCA init */

/* Cyclic Jacobi eigen-decomposition of a small symmetric matrix a (m x m,
 * destroyed); eigenvalues into ev, eigenvectors into columns of v. */
static void jacobi_eig(double *a, double *v, double *ev, int m) {
    for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) v[i * m + j] = (i == j);
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) { tot += a[i * m + j] * a[i * m + j]; if (i != j) off += a[i * m + j] * a[i * m + j]; }
        if (off <= 1e-30 * tot || off == 0.0) break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = a[p * m + q];
                if (apq == 0.0) continue;
                double tau = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                double t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
                double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
                for (int k = 0; k < m; k++) { /* columns p, q */
                    double akp = a[k * m + p], akq = a[k * m + q];
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* rows p, q */
                    double apk = a[p * m + k], aqk = a[q * m + k];
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) {
                    double vkp = v[k * m + p], vkq = v[k * m + q];
                    v[k * m + p] = c * vkp - s * vkq;
                    v[k * m + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < m; i++) ev[i] = a[i * m + i];
}

/* orthonormalises the m columns of q (d x m) by modified Gram-Schmidt */
static void orthonormalise(double *q, int d, int m) {
    for (int c = 0; c < m; c++) {
        for (int pass = 0; pass < 2; pass++)
            for (int b = 0; b < c; b++) {
                double dot = 0.0;
                for (int j = 0; j < d; j++) dot += q[(size_t)j * m + b] * q[(size_t)j * m + c];
                for (int j = 0; j < d; j++) q[(size_t)j * m + c] -= dot * q[(size_t)j * m + b];
            }
        double nrm = 0.0;
        for (int j = 0; j < d; j++) nrm += q[(size_t)j * m + c] * q[(size_t)j * m + c];
        nrm = sqrt(nrm);
        if (nrm > 0) for (int j = 0; j < d; j++) q[(size_t)j * m + c] /= nrm;
    }
}

/* First two principal component scores of x (n x d, d >= 2) into y (n x 2),
 * by randomized subspace iteration; the largest-magnitude score of each
 * component is made positive. Returns 0, or -1 when out of memory. */
static int pca2(double *y, const float *x, int n, int d, dcl_rng *rng) {
    const int m = d < 12 ? d : 12, iters = 8;
    double *mu = calloc((size_t)d, sizeof *mu), *q = malloc((size_t)d * m * sizeof *q);
    double *a = malloc((size_t)n * m * sizeof *a), *b = malloc((size_t)m * m * sizeof *b);
    double *v = malloc((size_t)m * m * sizeof *v), *ev = malloc((size_t)m * sizeof *ev);
    double *qmu = malloc((size_t)m * sizeof *qmu);
    int rc = -1;
    if (!mu || !q || !a || !b || !v || !ev || !qmu) goto out;
    for (int j = 0; j < d; j++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += x[(size_t)i * d + j];
        mu[j] = s / n;
    }
    for (size_t k = 0; k < (size_t)d * m; k++) q[k] = dcl_rng_normal(rng);
    orthonormalise(q, d, m);
    for (int it = 0; it <= iters; it++) {
        /* a = (x - mu) q */
        for (int c = 0; c < m; c++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) s += mu[j] * q[(size_t)j * m + c];
            qmu[c] = s;
        }
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * d;
            for (int c = 0; c < m; c++) {
                double s = 0.0;
                for (int j = 0; j < d; j++) s += (double)xi[j] * q[(size_t)j * m + c];
                a[(size_t)i * m + c] = s - qmu[c];
            }
        }
        if (it == iters) break;
        /* q = (x - mu)^T a, then orthonormalise */
        double *colsum = qmu; /* reuse: sum_i a[i][c] */
        for (int c = 0; c < m; c++) {
            double s = 0.0;
            for (int i = 0; i < n; i++) s += a[(size_t)i * m + c];
            colsum[c] = s;
        }
        /* blocks of columns; each (j, c) sums over i in order */
#pragma omp parallel for schedule(static)
        for (int j0 = 0; j0 < d; j0 += 32) {
            const int j1 = j0 + 32 < d ? j0 + 32 : d;
            double acc[32 * 12];
            for (int t = 0; t < (j1 - j0) * m; t++) acc[t] = 0.0;
            for (int i = 0; i < n; i++) {
                const float *xi = x + (size_t)i * d;
                const double *ai = a + (size_t)i * m;
                for (int j = j0; j < j1; j++) {
                    double xv = xi[j];
                    double *r = acc + (j - j0) * m;
                    for (int c = 0; c < m; c++) r[c] += xv * ai[c];
                }
            }
            for (int j = j0; j < j1; j++)
                for (int c = 0; c < m; c++) q[(size_t)j * m + c] = acc[(j - j0) * m + c] - mu[j] * colsum[c];
        }
        orthonormalise(q, d, m);
    }
    /* Rayleigh-Ritz: b = a^T a = q^T C q (times n) */
    for (int r = 0; r < m; r++)
        for (int c = 0; c < m; c++) {
            double s = 0.0;
            for (int i = 0; i < n; i++) s += a[(size_t)i * m + r] * a[(size_t)i * m + c];
            b[r * m + c] = s;
        }
    jacobi_eig(b, v, ev, m);
    int e1 = 0;
    for (int k = 1; k < m; k++) if (ev[k] > ev[e1]) e1 = k;
    int e2 = e1 == 0 ? 1 : 0;
    for (int k = 0; k < m; k++) if (k != e1 && ev[k] > ev[e2]) e2 = k;
    int sel[2] = {e1, e2};
    for (int c = 0; c < 2; c++) {
        double best = 0.0;
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int r = 0; r < m; r++) s += a[(size_t)i * m + r] * v[r * m + sel[c]];
            y[2 * i + c] = s;
            if (fabs(s) > fabs(best)) best = s;
        }
        if (best < 0) for (int i = 0; i < n; i++) y[2 * i + c] = -y[2 * i + c];
    }
    rc = 0;
out:
    free(mu); free(q); free(a); free(b); free(v); free(ev); free(qmu);
    return rc;
}

/* ------------------------------------------------------------------- driver */

dcl_status dcl_tsne(float *y, const float *x, int n, int d, const dcl_tsne_opts *opts) {
    return dcl_tsne_run(y, NULL, x, n, d, opts);
}

dcl_status dcl_tsne_run(float *yout, dcl_tsne_info *info, const float *x, int n, int d,
                        const dcl_tsne_opts *opts) {
    dcl_tsne_opts o;
    if (opts) o = *opts; else dcl_tsne_default_opts(&o);
    if (!yout || !x) return dcl_fail(DCL_ERR_ARG, "t-SNE: NULL input or output");
    if (n < 2) return dcl_fail(DCL_ERR_ARG, "t-SNE: need at least 2 points (n=%d)", n);
    if (d < 1) return dcl_fail(DCL_ERR_ARG, "t-SNE: input dimension must be >= 1 (d=%d)", d);
    if (!(o.perplexity > 0) || !(o.perplexity < n))
        return dcl_fail(DCL_ERR_ARG, "t-SNE: perplexity %g must be in (0, n=%d)", o.perplexity, n);
    if (!(o.theta >= 0) || !isfinite(o.theta)) return dcl_fail(DCL_ERR_ARG, "t-SNE: theta %g must be >= 0", o.theta);
    if (!(o.early_exaggeration > 0) || !isfinite(o.early_exaggeration))
        return dcl_fail(DCL_ERR_ARG, "t-SNE: early exaggeration %g must be > 0", o.early_exaggeration);
    if (o.n_iter < 0 || o.exaggeration_iters < 0)
        return dcl_fail(DCL_ERR_ARG, "t-SNE: iteration counts must be >= 0 (n_iter=%d, exaggeration_iters=%d)",
                        o.n_iter, o.exaggeration_iters);
    if (!isfinite(o.learning_rate)) return dcl_fail(DCL_ERR_ARG, "t-SNE: learning rate is not finite");
    if (!(o.momentum_early >= 0 && o.momentum_early < 1) || !(o.momentum_final >= 0 && o.momentum_final < 1))
        return dcl_fail(DCL_ERR_ARG, "t-SNE: momentum must be in [0, 1) (got %g and %g)", o.momentum_early,
                        o.momentum_final);
    dcl_tsne_method method = o.method;
    if (method == DCL_TSNE_AUTO)
        method = (n <= o.exact_max_n && n <= TSNE_EXACT_MAX) ? DCL_TSNE_EXACT : DCL_TSNE_BARNES_HUT;
    if (method != DCL_TSNE_EXACT && method != DCL_TSNE_BARNES_HUT)
        return dcl_fail(DCL_ERR_ARG, "t-SNE: unknown method %d", (int)o.method);
    if (method == DCL_TSNE_EXACT && n > TSNE_EXACT_MAX)
        return dcl_fail(DCL_ERR_ARG, "t-SNE: exact method needs n x n memory; n=%d exceeds %d, use Barnes-Hut",
                        n, TSNE_EXACT_MAX);
    int k = 0;
    if (method == DCL_TSNE_BARNES_HUT) {
        if ((double)(n - 1) < 3.0 * o.perplexity)
            return dcl_fail(DCL_ERR_ARG,
                            "t-SNE: Barnes-Hut needs n - 1 >= 3 * perplexity (n=%d, perplexity %g); "
                            "lower the perplexity or use the exact method", n, o.perplexity);
        k = (int)(3.0 * o.perplexity + 1.0);
        if (k > n - 1) k = n - 1;
    }
    DCL_TRY(check_finite(x, n, d));
    const double lr = o.learning_rate > 0 ? o.learning_rate : fmax(n / o.early_exaggeration / 4.0, 50.0);

    dcl_rng rng;
    dcl_rng_seed(&rng, o.seed);
    dcl_rng rng_init = dcl_rng_split(&rng), rng_knn = dcl_rng_split(&rng);

    const size_t n2 = (size_t)n * 2;
    double *y = malloc(n2 * sizeof *y), *g = malloc(n2 * sizeof *g);
    double *upd = calloc(n2, sizeof *upd), *gain = malloc(n2 * sizeof *gain);
    double *pd = NULL;
    dcl_sparse ps = {0};
    bh_work work = {0};
    dcl_status st = DCL_OK;
    if (!y || !g || !upd || !gain) { st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for %d points", n); goto out; }

    /* affinities */
    if (method == DCL_TSNE_EXACT) {
        pd = malloc((size_t)n * n * sizeof *pd);
        if (!pd) { st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for the %d x %d affinity matrix", n, n); goto out; }
        st = dcl_tsne_p_exact(pd, x, n, d, o.perplexity);
    } else {
        st = dcl_tsne_p_knn(&ps, x, n, d, o.perplexity, k, dcl_rng_u64(&rng_knn));
        if (!st) st = bh_work_init(&work, n);
    }
    if (st) goto out;

    /* initial embedding */
    int pca_ok = 0;
    if (o.init == DCL_TSNE_INIT_PCA && d >= 2) {
        if (pca2(y, x, n, d, &rng_init)) { st = dcl_fail(DCL_ERR_NOMEM, "t-SNE: out of memory for PCA"); goto out; }
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < n; i++) mean += y[2 * i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (y[2 * i] - mean) * (y[2 * i] - mean);
        double sd = sqrt(var / n);
        if (sd > 0 && isfinite(sd)) {
            for (size_t k2 = 0; k2 < n2; k2++) y[k2] = y[k2] / sd * 1e-4;
            pca_ok = 1;
        }
    }
    if (!pca_ok)
        for (size_t k2 = 0; k2 < n2; k2++) y[k2] = 1e-4 * dcl_rng_normal(&rng_init);

    /* gradient descent with momentum and per-parameter gains, two stages */
    double kl = NAN;
    int it = 0;
    for (int stage = 0; stage < 2; stage++) {
        const int stop = stage == 0 ? (o.exaggeration_iters < o.n_iter ? o.exaggeration_iters : o.n_iter) : o.n_iter;
        const double mom = stage == 0 ? o.momentum_early : o.momentum_final;
        const double pscale = stage == 0 ? o.early_exaggeration : 1.0;
        const int patience = stage == 0 ? o.exaggeration_iters : o.n_iter_without_progress;
        if (stage == 1 && it >= stop) break;
        for (size_t k2 = 0; k2 < n2; k2++) { upd[k2] = 0.0; gain[k2] = 1.0; }
        double best_err = DBL_MAX;
        int best_it = it;
        for (; it < stop; it++) {
            const int check = (it + 1) % CHECK_EVERY == 0 || it == stop - 1;
            double err = NAN;
            if (method == DCL_TSNE_EXACT) {
                st = grad_exact(g, check ? &err : NULL, y, pd, pscale, n);
            } else {
                st = bh_grad(g, check ? &err : NULL, y, &ps, pscale, o.theta, &work);
            }
            if (st) goto out;
            double gn = 0.0;
            for (size_t q = 0; q < n2; q++) {
                if (upd[q] * g[q] < 0.0) gain[q] += 0.2;
                else gain[q] *= 0.8;
                if (gain[q] < 0.01) gain[q] = 0.01;
                g[q] *= gain[q];
                upd[q] = mom * upd[q] - lr * g[q];
                y[q] += upd[q];
                gn += g[q] * g[q];
            }
            if (check) kl = err;
            if ((it + 1) % CHECK_EVERY == 0) {
                gn = sqrt(gn);
                if (o.verbose > 0) dcl_log(2, "t-SNE: iteration %d: KL %.6f, gradient norm %.3g", it + 1, err, gn);
                if (err < best_err) { best_err = err; best_it = it; }
                else if (it - best_it > patience) { it++; break; }
                if (gn <= o.min_grad_norm) { it++; break; }
            }
        }
    }
    for (size_t q = 0; q < n2; q++) yout[q] = (float)y[q];
    if (info) {
        info->method = method;
        info->iters = it;
        info->kl = kl;
        info->learning_rate = lr;
    }
out:
    free(y); free(g); free(upd); free(gain); free(pd);
    dcl_sparse_free(&ps);
    bh_work_free(&work);
    return st;
}

/* ----------------------------------------------------------- trustworthiness */

dcl_status dcl_trustworthiness(double *out, const float *x, int n, int d, const float *y, int dy, int k) {
    if (!out || !x || !y || n < 3 || d < 1 || dy < 1)
        return dcl_fail(DCL_ERR_ARG, "trustworthiness: bad arguments (n=%d, d=%d, dy=%d)", n, d, dy);
    if (k < 1 || !(k < n / 2.0))
        return dcl_fail(DCL_ERR_ARG, "trustworthiness: n_neighbors=%d must be in [1, n/2) (n=%d)", k, n);
    DCL_TRY(check_finite(x, n, d));
    DCL_TRY(check_finite(y, n, dy));
    double *acc = calloc((size_t)n, sizeof *acc);
    if (!acc) return dcl_fail(DCL_ERR_NOMEM, "trustworthiness: out of memory");
    int bad = 0;
#pragma omp parallel
    {
        dist_item *dx = malloc((size_t)n * sizeof *dx), *dyv = malloc((size_t)n * sizeof *dyv);
        int *rank = malloc((size_t)n * sizeof *rank);
        if (!dx || !dyv || !rank) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            if (!dx || !dyv || !rank) continue;
            int m = 0;
            for (int j = 0; j < n; j++) {
                if (j == i) continue;
                dx[m].d = sqdist(x + (size_t)i * d, x + (size_t)j * d, d); dx[m].i = j;
                dyv[m].d = sqdist(y + (size_t)i * dy, y + (size_t)j * dy, dy); dyv[m].i = j;
                m++;
            }
            qsort(dx, (size_t)m, sizeof *dx, cmp_dist_item);
            for (int r = 0; r < m; r++) rank[dx[r].i] = r + 1;
            qsort(dyv, (size_t)m, sizeof *dyv, cmp_dist_item);
            double s = 0.0;
            for (int r = 0; r < k; r++) { int pen = rank[dyv[r].i] - k; if (pen > 0) s += pen; }
            acc[i] = s;
        }
        free(dx); free(dyv); free(rank);
    }
    if (bad) { free(acc); return dcl_fail(DCL_ERR_NOMEM, "trustworthiness: out of memory"); }
    double t = 0.0;
    for (int i = 0; i < n; i++) t += acc[i];
    *out = 1.0 - t * (2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0)));
    free(acc);
    return DCL_OK;
}
