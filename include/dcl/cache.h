/* The face cache written by `dcl extract` and read by the trainer, eval and
 * report:
 *
 *   CACHE/index.jsonl   one JSON object per face crop (appended, fsync'ed)
 *   CACHE/done.jsonl    one JSON object per finished source item (resume)
 *   CACHE/crops/...     PNG crops (lossless: compression traces matter)
 *   CACHE/report.json   what was skipped and why, written at the end
 *
 * Entry fields: crop, label (1 fake), dataset, method, video, frame, face,
 * split, identity, pair (aligned crop of the corresponding real frame, for
 * fakes with a known source), mask (manipulation mask crop), box [x1,y1,x2,y2],
 * score, landmarks [x1,y1,...,x5,y5].  Paths are relative to CACHE.
 */
#ifndef DCL_CACHE_H
#define DCL_CACHE_H
#include "dcl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_cache_entry {
    char *crop, *pair, *mask;        /* relative paths ("" when absent) */
    char *dataset, *method, *video, *split, *identity;
    int label, frame, face;
    float box[4], score, landmarks[10];
    int video_idx;                   /* dense id of `video` within the cache */
} dcl_cache_entry;

typedef struct dcl_cache {
    char *root;
    dcl_cache_entry *e;
    int n, cap;
    int nvideos;
    int bad_lines;                   /* unparseable index lines (reported, skipped) */
} dcl_cache;

/* Reads CACHE/index.jsonl.  A torn last line (interrupted write) is ignored;
 * other bad lines are counted in bad_lines and reported through dcl_log.
 * Entries are in crop-path order, whatever the order of the lines. */
dcl_status dcl_cache_open(dcl_cache **out, const char *root);
void dcl_cache_free(dcl_cache *c);
/* Absolute path of a relative cache path into buf. */
const char *dcl_cache_path(const dcl_cache *c, const char *rel, char *buf, size_t n);
/* Indices of the entries of a split ("train", "val", "test"; NULL or "all" = every
 * entry); malloc'ed array in *idx. */
dcl_status dcl_cache_select(const dcl_cache *c, const char *split, int **idx, int *n);

/* Appends one entry as a JSON line to CACHE/index.jsonl and fsyncs it. */
typedef struct dcl_cache_writer dcl_cache_writer;
dcl_status dcl_cache_writer_open(dcl_cache_writer **out, const char *root);
dcl_status dcl_cache_writer_add(dcl_cache_writer *w, const dcl_cache_entry *e);
/* Marks a source item finished (status "ok" or "skipped", with a reason). */
dcl_status dcl_cache_writer_done(dcl_cache_writer *w, const char *item, const char *status,
                                 const char *reason, int faces);
/* 1 if the item is already recorded in done.jsonl (loaded at open). */
int dcl_cache_writer_is_done(const dcl_cache_writer *w, const char *item);
void dcl_cache_writer_close(dcl_cache_writer *w);

#ifdef __cplusplus
}
#endif
#endif
