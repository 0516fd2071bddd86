/* Face extraction: dataset entries (videos, frame sequences, images) to a
 * face cache (see dcl/cache.h for the layout).
 *
 * For each entry of a dataset (dcl/dataset.h), N frames are sampled at exact
 * indices (dcl_video_plan), faces are detected with MTCNN (the largest face,
 * or every face), and each face is cropped as a square window of `scale`
 * times the longer box side around the box centre, resized to size x size
 * and saved as a PNG:
 *
 *   CACHE/crops/<dataset>/<method>/<entry-id>/<frame>[_<face>].png
 *
 * <frame> is the frame index, zero-padded to six digits; _<face> is added
 * with all_faces (faces numbered in decreasing detector score).  For a fake
 * whose pixel-aligned real is known (dcl_entry.pair_path), the same frame
 * indices of the real video are decoded and cropped with the fake's window
 * (..._real.png, the entry's `pair`); when the dataset releases a
 * manipulation-mask video (dcl_entry.mask_path), its frames are cropped the
 * same way (..._mask.png, the entry's `mask`).
 *
 * Work is split by whole entries over `workers` threads, each with its own
 * detector and decoders.  An entry's index lines are appended together once
 * all its crops are on disk, followed by its line in done.jsonl (status "ok"
 * or "skipped").  Running the same extraction again skips the entries in
 * done.jsonl; an entry that was interrupted half-way is redone, and the
 * cache writer keeps one index line per crop.
 *
 * Nothing is dropped silently.  Skipped entries (missing, unreadable or
 * empty media, no face in any sampled frame) and problems of entries that
 * were kept (frames without a face, frames that did not decode, a pair or
 * mask video that is missing, shorter or of another size) are written to
 * the entry's done.jsonl line as "kind: text" parts joined by " | ", and
 * CACHE/report.json is rebuilt from done.jsonl and the dataset adapter's
 * issues at the end of every run, so it covers earlier runs too.
 *
 * The options that decide which crops an entry gets (frames, sampling,
 * seed, size, scale, all_faces, min_face) are recorded per dataset in
 * CACHE/extract.json; resuming with different ones is refused.
 */
#ifndef DCL_EXTRACT_H
#define DCL_EXTRACT_H
#include <stdint.h>
#include "dcl/core.h"
#include "dcl/video.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why an entry was skipped. */
typedef enum dcl_skip_reason {
    DCL_SKIP_MISSING = 0,   /* the file is not there */
    DCL_SKIP_UNREADABLE,    /* not a media file, corrupt or truncated, nothing decodes */
    DCL_SKIP_EMPTY,         /* zero-byte file, a video without frames, an empty sequence */
    DCL_SKIP_NO_FACE,       /* no face in any sampled frame */
    DCL_SKIP_COUNT
} dcl_skip_reason;
/* "missing" "unreadable" "empty" "no_face" */
const char *dcl_skip_reason_name(dcl_skip_reason r);

typedef struct dcl_extract_report dcl_extract_report;

typedef struct dcl_extract_opts {
    const char *dataset;     /* adapter: ffpp dfd celebdf dfdc dfdcp wild generic */
    const char *root;        /* dataset root */
    const char *out;         /* cache directory (created) */
    const char *quality;     /* adapter options (dcl_dataset_opts); NULL: adapter default */
    const char *methods;
    const char *splits_dir;
    const char *csv;
    int frames;              /* frames sampled per entry (32; the paper uses 50) */
    dcl_sample_mode sample;  /* DCL_SAMPLE_EVEN (default) or DCL_SAMPLE_RANDOM */
    uint64_t seed;           /* random sampling: entry e uses seed mixed with a hash of its id */
    int size;                /* crop side in pixels (299) */
    float scale;             /* window side / longer box side (1.3) */
    int all_faces;           /* 0: the largest face per frame; 1: every face */
    int min_face;            /* smallest face searched for, pixels (40) */
    int workers;             /* worker threads (<= 0: 2) */
    int threads;             /* compute threads per worker (<= 0: available threads / workers, >= 1) */
    const char *device;      /* backend of the detector: "cpu" (default), "ref", "cuda[:N]" */
    const char *weights;     /* MTCNN weights (NULL: models/mtcnn.safetensors) */
    int limit;               /* > 0: only the first `limit` entries of the dataset */
    int retry_skipped;       /* 1: process again the entries recorded as skipped */
    int handle_signals;      /* 1: SIGINT/SIGTERM stop after the current entries (a
                              * second SIGINT kills as usual) */
    int progress;            /* progress line on stderr: 1 on, 0 off, -1 when stderr is a tty */
    /* Called (serialised) after each entry is recorded; a non-zero return
     * stops the run after the entries in progress, like SIGINT.  May be NULL. */
    int (*on_entry)(void *user, const char *item, const dcl_extract_report *r);
    void *user;
} dcl_extract_opts;

void dcl_extract_opts_default(dcl_extract_opts *o);

struct dcl_extract_report {
    /* this run */
    int entries;             /* entries considered (after limit) */
    int already_done;        /* found in done.jsonl at the start (not redone) */
    int processed;           /* recorded "ok" by this run */
    int skipped;             /* recorded "skipped" by this run */
    int skipped_by[DCL_SKIP_COUNT];
    int with_problems;       /* "ok" entries with at least one problem */
    int64_t frames;          /* frames decoded and searched for faces */
    int64_t frames_no_face;  /* of which without any face */
    int64_t faces;           /* face crops written */
    int64_t pairs, masks;    /* pair / mask crops written */
    int interrupted;         /* stopped by a signal or on_entry before the end */
    double seconds;
    /* the whole cache for this dataset (this run and earlier ones), as in report.json */
    int total_ok, total_skipped, total_faces;
    int adapter_issues;      /* issues of the dataset adapter (notes excluded) */
    int report_lines;        /* problem lines in report.json (skips, problems, adapter issues) */
};

/* Runs an extraction.  Returns DCL_OK when the run went through (also when
 * entries were skipped, see the report, or when it was interrupted: then
 * r->interrupted is set); an error when nothing could be done or the cache
 * could not be written (cannot create CACHE, no entries, detector weights
 * missing, disk full, options that differ from the cache's).  r may be NULL.
 * Writes CACHE/report.json in all cases where CACHE could be opened. */
dcl_status dcl_extract(const dcl_extract_opts *o, dcl_extract_report *r);

/* Path of one crop relative to the cache: crops/<dataset>/<method>/<id>/<frame>[_<face>]<suffix>.png
 * (suffix "" for the face, "_real" for the pair, "_mask" for the mask; face < 0: no face
 * number).  Characters other than letters, digits and ._-+,=@ are replaced in the
 * dataset, method and id, with a hash of the original id appended when anything was
 * replaced.  Returns buf. */
const char *dcl_extract_crop_path(char *buf, size_t n, const char *dataset, const char *method, const char *id,
                                  int64_t frame, int face, const char *suffix);

#ifdef __cplusplus
}
#endif
#endif
