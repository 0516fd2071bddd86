#define _GNU_SOURCE
/* Threaded, prefetching, reproducible batch loader over a face cache. */
#include "dcl/loader.h"
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_EMPTY = 0, SLOT_FILLING, SLOT_READY, SLOT_OUT };

typedef struct slot {
    int state;
    dcl_batch b;
    int next_item, remaining;
} slot;

struct dcl_loader {
    const dcl_cache *c;
    dcl_loader_cfg cfg;
    int *idx, n;
    int *real, nreal, *fake, nfake;
    int *vid_start, *vid_items;   /* entries of each video (positions in idx order) */
    int64_t bpe, total;           /* batches per epoch; total (eval) */
    int bl, shards, srank;        /* images per produced batch; shard count and rank */
    /* epoch permutations (planner only) */
    int64_t perm_epoch;
    int *perm_all, *perm_real, *perm_fake;
    slot *slots;
    int nslots;
    int64_t next_plan, next_out;
    int out_slot;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    int nthreads, stop, started;
    int errors;
    char **bad;                   /* crops already reported */
    int nbad, capbad;
};

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static void shuffle(int *v, int n, dcl_rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dcl_rng_below(r, (uint32_t)(i + 1));
        int t = v[i]; v[i] = v[j]; v[j] = t;
    }
}

static void make_perms(dcl_loader *l, int64_t epoch) {
    if (l->perm_epoch == epoch) return;
    dcl_rng r;
    dcl_rng_seed(&r, mix64(l->cfg.seed * 1000003ULL + (uint64_t)epoch));
    for (int i = 0; i < l->n; i++) l->perm_all[i] = l->idx[i];
    memcpy(l->perm_real, l->real, l->nreal * sizeof(int));
    memcpy(l->perm_fake, l->fake, l->nfake * sizeof(int));
    shuffle(l->perm_all, l->n, &r);
    shuffle(l->perm_real, l->nreal, &r);
    shuffle(l->perm_fake, l->nfake, &r);
    l->perm_epoch = epoch;
}

/* entries of batch bi into b->entry (planner thread, lock held) */
static void plan_batch(dcl_loader *l, dcl_batch *b, int64_t bi) {
    int B = l->cfg.batch;
    b->index = bi;
    b->errors = 0;
    if (!l->cfg.train) {
        int64_t start = bi * B;
        b->n = (int)(l->n - start < B ? l->n - start : B);
        for (int s = 0; s < B; s++) b->entry[s] = s < b->n ? l->idx[start + s] : -1;
        return;
    }
    int64_t e = bi / l->bpe, p = bi % l->bpe;
    make_perms(l, e);
    b->n = l->bl;
    int half = B / 2;
    int balanced = l->cfg.balance && l->nreal && l->nfake;
    for (int j = 0; j < l->bl; j++) {
        int s = j * l->shards + l->srank; /* slot in the whole batch */
        if (balanced) {
            if (s < half) b->entry[j] = l->perm_real[(p * half + s) % l->nreal];
            else b->entry[j] = l->perm_fake[(p * (B - half) + (s - half)) % l->nfake];
        } else {
            b->entry[j] = l->perm_all[(p * B + s) % l->n];
        }
    }
}

static void report_bad(dcl_loader *l, const char *crop, const char *why) {
    pthread_mutex_lock(&l->mu);
    l->errors++;
    int seen = 0;
    for (int i = 0; i < l->nbad && !seen; i++) seen = !strcmp(l->bad[i], crop);
    if (!seen) {
        if (l->nbad == l->capbad) {
            l->capbad = l->capbad ? 2 * l->capbad : 16;
            char **nb = realloc(l->bad, l->capbad * sizeof(char *));
            if (nb) l->bad = nb;
        }
        if (l->nbad < l->capbad) l->bad[l->nbad++] = strdup(crop);
        dcl_log(1, "skipping unreadable training image %s: %s", crop, why);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Loads entry e as a sample at the loader's size (mask: dataset mask, or
 * |crop - pair| when only the pair is known). */
static dcl_status load_sample(dcl_loader *l, int e, dcl_sample *s, dcl_sample *pair_out) {
    const dcl_cache_entry *ce = &l->c->e[e];
    char path[4096];
    dcl_image img = {0}, m = {0}, pr = {0}, t = {0};
    dcl_status st = dcl_image_load(&img, dcl_cache_path(l->c, ce->crop, path, sizeof path));
    if (!st && (img.w != l->cfg.size || img.h != l->cfg.size)) {
        st = dcl_image_resize_bilinear(&t, l->cfg.size, l->cfg.size, &img);
        dcl_image_free(&img);
        img = t;
        memset(&t, 0, sizeof t);
    }
    if (st) return st;
    int have_mask = 0;
    if (ce->label && *ce->mask && !dcl_image_load(&m, dcl_cache_path(l->c, ce->mask, path, sizeof path))) {
        if (m.w != img.w || m.h != img.h) {
            if (!dcl_image_resize_bilinear(&t, img.w, img.h, &m)) { dcl_image_free(&m); m = t; memset(&t, 0, sizeof t); }
        }
        have_mask = m.w == img.w && m.h == img.h;
    }
    int need_pair = ce->label && *ce->pair && (pair_out || !have_mask);
    if (need_pair && !dcl_image_load(&pr, dcl_cache_path(l->c, ce->pair, path, sizeof path))) {
        if (pr.w != img.w || pr.h != img.h) {
            if (!dcl_image_resize_bilinear(&t, img.w, img.h, &pr)) { dcl_image_free(&pr); pr = t; memset(&t, 0, sizeof t); }
        }
        if (pr.w != img.w || pr.h != img.h) dcl_image_free(&pr);
    }
    if (!have_mask && pr.data) {
        /* m = |x - x'| (mean over channels), the paper's mask */
        if (!dcl_image_alloc(&m, img.w, img.h)) {
            for (size_t i = 0; i < (size_t)img.w * img.h; i++) {
                int d = 0;
                for (int k = 0; k < 3; k++) d += abs((int)img.data[3 * i + k] - (int)pr.data[3 * i + k]);
                m.data[3 * i] = m.data[3 * i + 1] = m.data[3 * i + 2] = (uint8_t)(d / 3);
            }
            have_mask = 1;
        }
    }
    st = dcl_sample_from_image(s, &img, have_mask ? &m : NULL);
    if (!st && pair_out) {
        memset(pair_out, 0, sizeof *pair_out);
        if (pr.data) st = dcl_sample_from_image(pair_out, &pr, NULL);
    }
    dcl_image_free(&img);
    dcl_image_free(&m);
    dcl_image_free(&pr);
    return st;
}

static void fill_item(dcl_loader *l, dcl_batch *b, int j) {
    int S = l->cfg.size;
    size_t px = (size_t)S * S;
    float *v1 = b->v1 + px * 3 * j, *v2 = b->v2 ? b->v2 + px * 3 * j : NULL, *mask = b->mask + px * j;
    int e = b->entry[j];
    if (e < 0) { /* padding of a short eval batch */
        memset(v1, 0, px * 3 * sizeof(float));
        if (v2) memset(v2, 0, px * 3 * sizeof(float));
        memset(mask, 0, px * sizeof(float));
        b->label[j] = 0;
        return;
    }
    dcl_rng r;
    dcl_rng_seed(&r, mix64(l->cfg.seed ^ mix64((uint64_t)b->index * 7919ULL + (uint64_t)(j * l->shards + l->srank) + 1)));
    dcl_sample s = {0}, pair = {0}, s2 = {0}, pair2 = {0};
    int want_pair = l->cfg.train && l->cfg.views.p_mixup > 0;
    dcl_status st = DCL_ERR_IO;
    for (int attempt = 0; attempt < 8; attempt++) {
        st = load_sample(l, e, &s, want_pair ? &pair : NULL);
        if (!st) break;
        report_bad(l, l->c->e[e].crop, dcl_last_error());
        b->errors++;
        /* substitute another image of the same class (train) */
        if (!l->cfg.train) break;
        const int *pool = l->c->e[e].label ? l->fake : l->real;
        int np = l->c->e[e].label ? l->nfake : l->nreal;
        if (!np) break;
        e = pool[dcl_rng_below(&r, (uint32_t)np)];
        b->entry[j] = e;
    }
    const dcl_cache_entry *ce = &l->c->e[e];
    b->label[j] = ce->label;
    if (st) {
        memset(v1, 0, px * 3 * sizeof(float));
        if (v2) memset(v2, 0, px * 3 * sizeof(float));
        memset(mask, 0, px * sizeof(float));
        b->entry[j] = -1;
        return;
    }
    dcl_views_cfg none = dcl_views_none();
    const dcl_views_cfg *vc = l->cfg.train ? &l->cfg.views : &none;
    int key_shifted = 0;
    if (v2) {
        /* key view: another frame of the same video (frame shift), else the same image */
        int other = -1;
        int vi = ce->video_idx;
        if (l->cfg.train && vc->p_frame_shift > 0 && l->vid_items[vi] > 1 && dcl_rng_uniform(&r) < vc->p_frame_shift) {
            int k = (int)dcl_rng_below(&r, (uint32_t)(l->vid_items[vi] - 1));
            other = l->idx[l->vid_start[vi] + k];
            if (other == e) other = l->idx[l->vid_start[vi] + l->vid_items[vi] - 1];
        }
        /* the key's corresponding mixup blends with the real crop of the
         * key's own frame (pair2), not of the query's */
        if (other >= 0 && !load_sample(l, other, &s2, want_pair ? &pair2 : NULL)) {
            key_shifted = 1;
        } else {
            dcl_sample_free(&s2);
            dcl_sample_free(&pair2);
            s2.w = s.w; s2.h = s.h;
            s2.rgb = malloc(px * 3 * sizeof(float));
            s2.mask = malloc(px * sizeof(float));
            if (s2.rgb && s2.mask) { memcpy(s2.rgb, s.rgb, px * 3 * sizeof(float)); memcpy(s2.mask, s.mask, px * sizeof(float)); }
        }
    }
    dcl_view_apply(&s, pair.rgb ? &pair : NULL, ce->label, 0, vc, &r);
    dcl_view_finish(v1, &s, l->cfg.mean, l->cfg.std, vc, &r);
    memcpy(mask, s.mask, px * sizeof(float));
    if (v2 && s2.rgb && s2.mask) {
        const dcl_sample *kpair = key_shifted ? (pair2.rgb ? &pair2 : NULL) : (pair.rgb ? &pair : NULL);
        dcl_view_apply(&s2, kpair, ce->label, 1, vc, &r);
        dcl_view_finish(v2, &s2, l->cfg.mean, l->cfg.std, vc, &r);
    } else if (v2) {
        memcpy(v2, v1, px * 3 * sizeof(float));
    }
    dcl_sample_free(&s);
    dcl_sample_free(&s2);
    dcl_sample_free(&pair);
    dcl_sample_free(&pair2);
}

static int plan_next_locked(dcl_loader *l) {
    if (!l->cfg.train && l->next_plan >= l->total) return 0;
    for (int i = 0; i < l->nslots; i++) {
        slot *sl = &l->slots[i];
        if (sl->state != SLOT_EMPTY) continue;
        plan_batch(l, &sl->b, l->next_plan++);
        sl->state = SLOT_FILLING;
        sl->next_item = 0;
        sl->remaining = l->bl;
        return 1;
    }
    return 0;
}

static void *worker(void *arg) {
    dcl_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        slot *work = NULL;
        int j = -1;
        /* the oldest filling batch first, so batches complete in order */
        for (int i = 0; i < l->nslots; i++) {
            slot *sl = &l->slots[i];
            if (sl->state == SLOT_FILLING && sl->next_item < l->bl && (!work || sl->b.index < work->b.index)) work = sl;
        }
        if (!work && plan_next_locked(l)) continue;
        if (!work) { pthread_cond_wait(&l->cv, &l->mu); continue; }
        j = work->next_item++;
        pthread_mutex_unlock(&l->mu);
        fill_item(l, &work->b, j);
        pthread_mutex_lock(&l->mu);
        if (--work->remaining == 0) { work->state = SLOT_READY; pthread_cond_broadcast(&l->cv); }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void stop_threads(dcl_loader *l) {
    if (!l->started) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
    l->started = 0;
    l->stop = 0;
}

void dcl_loader_free(dcl_loader *l) {
    if (!l) return;
    stop_threads(l);
    for (int i = 0; i < l->nslots; i++) {
        dcl_batch *b = &l->slots[i].b;
        dcl_free(b->v1); dcl_free(b->v2); dcl_free(b->mask); free(b->label); free(b->entry);
    }
    for (int i = 0; i < l->nbad; i++) free(l->bad[i]);
    free(l->bad);
    free(l->slots); free(l->threads);
    free(l->idx); free(l->real); free(l->fake); free(l->vid_start); free(l->vid_items);
    free(l->perm_all); free(l->perm_real); free(l->perm_fake);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

static int cmp_by_video(const void *a, const void *b, void *ctx) {
    const dcl_cache *c = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    const dcl_cache_entry *ea = &c->e[x], *eb = &c->e[y];
    if (ea->video_idx != eb->video_idx) return ea->video_idx < eb->video_idx ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The workers allocate and free megabyte-sized buffers for every image
 * (decoded crops, samples, views).  With glibc's defaults such blocks go
 * back to the kernel when freed (the mmap threshold, then the trimming of
 * each thread's heap), so every image faulted its pages in again: one
 * worker at 299x299 took 947k page faults for 544 images and spent about a
 * third of its time there.  Keeping freed memory in the process (blocks
 * below 64 MB from the heap, heaps trimmed above 256 MB free) leaves 42k
 * faults and makes a worker 1.46x faster; the peak RSS of training did not
 * move.  Process-wide, set once when the first loader is made, unless
 * GLIBC_TUNABLES sets malloc parameters or DCL_LOADER_MALLOC=default. */
static void malloc_tune(void) {
    const char *e = getenv("DCL_LOADER_MALLOC"), *t = getenv("GLIBC_TUNABLES");
    if ((e && !strcmp(e, "default")) || (t && strstr(t, "glibc.malloc."))) return;
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

dcl_status dcl_loader_create(dcl_loader **out, const dcl_cache *c, const int *idx, int n, const dcl_loader_cfg *cfg) {
    static pthread_once_t tuned = PTHREAD_ONCE_INIT;
    pthread_once(&tuned, malloc_tune);
    if (n <= 0) return dcl_fail(DCL_ERR_ARG, "loader: no images selected");
    if (cfg->batch <= 0 || cfg->size < 16 || cfg->workers <= 0)
        return dcl_fail(DCL_ERR_ARG, "loader: batch %d, size %d, workers %d", cfg->batch, cfg->size, cfg->workers);
    int shards = cfg->shard_count > 0 ? cfg->shard_count : 1;
    if (shards > 1 && !cfg->train)
        return dcl_fail(DCL_ERR_ARG, "loader: batch shards (shard_count %d) need a training loader", shards);
    if (cfg->batch % shards || cfg->shard_rank < 0 || cfg->shard_rank >= shards)
        return dcl_fail(DCL_ERR_ARG, "loader: batch %d cannot be split into %d equal shards (shard %d)", cfg->batch, shards,
                        cfg->shard_rank);
    dcl_loader *l = calloc(1, sizeof *l);
    if (!l) return dcl_fail(DCL_ERR_NOMEM, "loader");
    l->c = c;
    l->cfg = *cfg;
    l->bl = cfg->batch / shards;
    l->shards = shards;
    l->srank = shards > 1 ? cfg->shard_rank : 0;
    if (l->cfg.prefetch < 1) l->cfg.prefetch = 2;
    l->n = n;
    l->perm_epoch = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->idx = malloc(n * sizeof(int));
    l->real = malloc(n * sizeof(int));
    l->fake = malloc(n * sizeof(int));
    l->perm_all = malloc(n * sizeof(int));
    l->perm_real = malloc(n * sizeof(int));
    l->perm_fake = malloc(n * sizeof(int));
    l->vid_start = calloc(c->nvideos + 1, sizeof(int));
    l->vid_items = calloc(c->nvideos + 1, sizeof(int));
    if (!l->idx || !l->real || !l->fake || !l->perm_all || !l->perm_real || !l->perm_fake || !l->vid_start || !l->vid_items) {
        dcl_loader_free(l);
        return dcl_fail(DCL_ERR_NOMEM, "loader");
    }
    memcpy(l->idx, idx, n * sizeof(int));
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= c->n) { dcl_loader_free(l); return dcl_fail(DCL_ERR_ARG, "loader: entry %d out of range", idx[i]); }
        if (c->e[idx[i]].label) l->fake[l->nfake++] = idx[i]; else l->real[l->nreal++] = idx[i];
    }
    if (cfg->train && cfg->balance && (!l->nreal || !l->nfake))
        dcl_log(1, "loader: only %s images selected; class balancing is off", l->nreal ? "real" : "fake");
    /* group by video for frame shift: idx sorted by video keeps positions */
    if (cfg->train) {
        qsort_r(l->idx, n, sizeof(int), cmp_by_video, (void *)c);
        for (int i = n - 1; i >= 0; i--) {
            int v = c->e[l->idx[i]].video_idx;
            l->vid_start[v] = i;
            l->vid_items[v]++;
        }
    }
    l->bpe = (n + cfg->batch - 1) / cfg->batch;
    l->total = l->bpe;
    l->nslots = l->cfg.prefetch + 1;
    l->slots = calloc(l->nslots, sizeof(slot));
    l->nthreads = cfg->workers;
    l->threads = calloc(l->nthreads, sizeof(pthread_t));
    if (!l->slots || !l->threads) { dcl_loader_free(l); return dcl_fail(DCL_ERR_NOMEM, "loader"); }
    size_t px = (size_t)cfg->size * cfg->size;
    for (int i = 0; i < l->nslots; i++) {
        dcl_batch *b = &l->slots[i].b;
        b->v1 = dcl_alloc(px * 3 * l->bl * sizeof(float));
        b->v2 = cfg->two_views ? dcl_alloc(px * 3 * l->bl * sizeof(float)) : NULL;
        b->mask = dcl_alloc(px * l->bl * sizeof(float));
        b->label = calloc(l->bl, sizeof(int));
        b->entry = calloc(l->bl, sizeof(int));
        if (!b->v1 || (cfg->two_views && !b->v2) || !b->mask || !b->label || !b->entry) {
            dcl_loader_free(l);
            return dcl_fail(DCL_ERR_NOMEM, "loader: %d batches of %d images at %d px", l->nslots, l->bl, cfg->size);
        }
    }
    *out = l;
    return DCL_OK;
}

int64_t dcl_loader_batches_per_epoch(const dcl_loader *l) { return l->bpe; }
int dcl_loader_errors(const dcl_loader *l) { return l->errors; }

dcl_status dcl_loader_start(dcl_loader *l, int64_t start) {
    stop_threads(l);
    for (int i = 0; i < l->nslots; i++) l->slots[i].state = SLOT_EMPTY;
    l->next_plan = l->next_out = start;
    l->out_slot = -1;
    for (int i = 0; i < l->nthreads; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
            l->nthreads = i;
            l->started = i > 0;
            if (!i) return dcl_fail(DCL_ERR_INTERNAL, "loader: cannot start threads");
            break;
        }
    }
    l->started = 1;
    return DCL_OK;
}

dcl_status dcl_loader_next(dcl_loader *l, dcl_batch **out) {
    if (!l->started) DCL_TRY(dcl_loader_start(l, 0));
    pthread_mutex_lock(&l->mu);
    if (l->out_slot >= 0) { l->slots[l->out_slot].state = SLOT_EMPTY; l->out_slot = -1; pthread_cond_broadcast(&l->cv); }
    if (!l->cfg.train && l->next_out >= l->total) { pthread_mutex_unlock(&l->mu); *out = NULL; return DCL_OK; }
    for (;;) {
        for (int i = 0; i < l->nslots; i++) {
            slot *sl = &l->slots[i];
            if (sl->state == SLOT_READY && sl->b.index == l->next_out) {
                sl->state = SLOT_OUT;
                l->out_slot = i;
                l->next_out++;
                *out = &sl->b;
                pthread_mutex_unlock(&l->mu);
                return DCL_OK;
            }
        }
        pthread_cond_wait(&l->cv, &l->mu);
    }
}

int dcl_loader_workers(int workers, int host_backend, int local_processes) {
    if (workers > 0) return workers;
    if (host_backend) return 2;
    cpu_set_t set;
    int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (local_processes < 1) local_processes = 1;
    int w = ncpu / local_processes - 1;
    return w < 2 ? 2 : w > 32 ? 32 : w;
}
