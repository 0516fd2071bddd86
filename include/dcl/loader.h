/* Batches from a face cache for training and evaluation: worker threads,
 * prefetching, seeded shuffling, class balancing, data views.  The content
 * of batch i is a function of (seed, i) only, not of thread timing, so runs
 * are reproducible and resumable at any batch. */
#ifndef DCL_LOADER_H
#define DCL_LOADER_H
#include "dcl/cache.h"
#include "dcl/views.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_loader_cfg {
    int batch;            /* images per batch */
    int size;             /* crops are resized to size x size when they differ */
    int workers;          /* decoding threads (>= 1) */
    int prefetch;         /* batches prepared ahead */
    int train;            /* 1: shuffled, balanced, views; 0: in order, no views, one pass */
    int balance;          /* train: half real, half fake per batch */
    int two_views;        /* produce v2 (key view) too */
    uint64_t seed;
    float mean[3], std[3];
    dcl_views_cfg views;
    /* data-parallel training (train mode): this process produces only its
     * shard of every batch: image j of the shard is slot
     * j*shard_count + shard_rank of the same batch plan, with the same per-slot
     * randomness, so the shards of all ranks together are exactly the
     * single-process batch.  The slots are strided rather than contiguous
     * so that each shard of a class-balanced batch (reals first, then fakes)
     * holds both classes, which per-rank batch norm needs.  batch must be
     * divisible by shard_count; the produced batches hold batch/shard_count
     * images.  0/0 = the whole batch. */
    int shard_rank, shard_count;
} dcl_loader_cfg;

typedef struct dcl_batch {
    int n;                /* valid images (the last eval batch may be short; the rest is padding) */
    int64_t index;        /* batch number */
    float *v1, *v2;       /* batch * size * size * 3, NHWC */
    float *mask;          /* batch * size * size, mask of v1 */
    int *label;           /* batch */
    int *entry;           /* cache entry of each image (-1 for padding) */
    int errors;           /* images that could not be read (replaced by another image, see log) */
} dcl_batch;

typedef struct dcl_loader dcl_loader;
/* idx: the cache entries to draw from (copied). */
dcl_status dcl_loader_create(dcl_loader **out, const dcl_cache *c, const int *idx, int n, const dcl_loader_cfg *cfg);
void dcl_loader_free(dcl_loader *l);
/* Batches per epoch (train) or in the single pass (eval). */
int64_t dcl_loader_batches_per_epoch(const dcl_loader *l);
/* Start (or restart) producing at global batch number `start`. */
dcl_status dcl_loader_start(dcl_loader *l, int64_t start);
/* Next batch in order; NULL *out at the end of an eval pass.  The batch stays
 * valid until the next call. */
dcl_status dcl_loader_next(dcl_loader *l, dcl_batch **out);
/* Decoding threads for a requested count (workers > 0: kept; 0: auto):
 * with a host backend 2 (the compute threads use the cores); with a device
 * backend, which consumes hundreds of images a second, this process's share
 * of the usable cores (its affinity mask) divided among local_processes,
 * less one for the thread that drives the device, in 2..32. */
int dcl_loader_workers(int workers, int host_backend, int local_processes);
/* Unreadable images met so far (each logged once with its reason). */
int dcl_loader_errors(const dcl_loader *l);

#ifdef __cplusplus
}
#endif
#endif
