/* Dataset adapters: read the published layouts and metadata of
 * FaceForensics++ (and its DeepFakeDetection part, "dfd"), Celeb-DF v1/v2,
 * DFDC, the DFDC preview, WildDeepfake, and plain real/ fake/ folders or a
 * CSV list, into one in-memory index of videos, frame sequences or images.
 *
 * Nothing is dropped silently: every file listed in metadata but missing,
 * every unparseable metadata line, every fake whose real counterpart is not
 * there, every file that does not fit the layout is recorded as an issue
 * (item + reason).
 *
 * Layouts read (details and rules at the top of each src/data/dataset_*.c):
 *  ffpp     original_sequences/youtube/<q>/videos/NNN.mp4,
 *           manipulated_sequences/<method>/<q>/videos/TTT_SSS.mp4 (+ masks/videos/),
 *           splits/{train,val,test}.json (pairs of ids); q = raw|c23|c40
 *  dfd      original_sequences/actors/<q>/videos/AA__scene.mp4,
 *           manipulated_sequences/DeepFakeDetection/<q>/videos/AA_BB__scene__ID.mp4
 *  celebdf  Celeb-real/, YouTube-real/, Celeb-synthesis/, List_of_testing_videos.txt
 *           (in that list 1 = real, 0 = fake; unlisted videos are train)
 *  dfdc     dfdc_train_part_N/metadata.json (+ videos); test labels.csv (1 = fake)
 *  dfdcp    dataset.json ({"path": {"label": "real|fake", "set": "train|test"}})
 *  wild     {real,fake}_{train,test}/<archive>/<sequence>/<frame>.png (unpacked)
 *  generic  real/ and fake/ folders, or a CSV list (opts.csv)
 */
#ifndef DCL_DATASET_H
#define DCL_DATASET_H
#include <stdio.h>
#include "dcl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_split {
    DCL_SPLIT_NONE = 0, DCL_SPLIT_TRAIN = 1, DCL_SPLIT_VAL = 2, DCL_SPLIT_TEST = 3
} dcl_split;
const char *dcl_split_name(dcl_split s);             /* "none" "train" "val" "test" */
/* "train"/"val"/"validation"/"valid"/"test"/"none" (case-insensitive); -1 if unknown */
int dcl_split_parse(const char *s);

typedef enum dcl_media {
    DCL_MEDIA_VIDEO = 0,   /* path is a video file */
    DCL_MEDIA_FRAMES = 1,  /* path is a directory of numbered images (frames[]) */
    DCL_MEDIA_IMAGE = 2    /* path is one image file */
} dcl_media;

typedef struct dcl_entry {
    const char *id;        /* unique in the dataset, e.g. "Deepfakes/c23/000_003" */
    const char *path;      /* root joined with the relative path */
    const char *rel;       /* path relative to the dataset root */
    dcl_media media;
    int label;             /* 0 real, 1 fake */
    const char *dataset;   /* "ffpp" "dfd" "celebdf" "dfdc" "dfdcp" "wild" "generic" */
    const char *method;    /* "real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures",
                            * "FaceShifter", "DFD", "Celeb-synthesis", "DFDC", "method_A", "WildDeepfake", "fake" */
    dcl_split split;
    const char *quality;   /* "raw" "c23" "c40" (FF++ / DFD) or NULL */
    const char *group;     /* video-level unit for aggregating frame scores */
    const char *target_id; /* identity (or source video) whose scene the fake keeps; for reals their own */
    const char *source_id; /* identity whose face was put in; NULL for reals / unknown */
    const char *pair_id;   /* fakes: id of the pixel-aligned real entry; NULL when none */
    const char *pair_path; /* fakes: its path */
    int pair;              /* its index in this dataset, -1 when not indexed */
    const char *mask_path; /* manipulation-mask video when released, else NULL */
    int faces_only;        /* images are already face crops (WildDeepfake) */
    int nframes;           /* DCL_MEDIA_FRAMES: number of images, else 0 */
    const char *const *frames; /* DCL_MEDIA_FRAMES: file names in frame order */
    const int *frame_numbers;  /* the frame number in each name (-1 when it has none) */
} dcl_entry;

typedef enum dcl_issue_kind {
    DCL_ISSUE_MISSING = 0,   /* listed in metadata, not on disk */
    DCL_ISSUE_METADATA,      /* metadata missing, unreadable or with a bad line/field */
    DCL_ISSUE_NO_PAIR,       /* fake whose real counterpart is not there */
    DCL_ISSUE_UNLISTED,      /* on disk but absent from the metadata that should list it */
    DCL_ISSUE_CONFLICT,      /* sources disagree (label, split, duplicate id) */
    DCL_ISSUE_NO_SPLIT,      /* in no split although split files exist */
    DCL_ISSUE_IGNORED,       /* file or folder that does not fit the layout */
    DCL_ISSUE_NOTE           /* a fact about the whole dataset worth knowing */
} dcl_issue_kind;
const char *dcl_issue_kind_name(dcl_issue_kind k);

typedef struct dcl_issue {
    dcl_issue_kind kind;
    const char *item;      /* path (or id) concerned */
    const char *reason;    /* one line */
} dcl_issue;

typedef struct dcl_dataset_opts {
    const char *quality;    /* ffpp/dfd: "raw", "c23", "c40" or "all"; NULL: "c23" */
    const char *methods;    /* comma-separated subset of the adapter's fake methods; NULL: all.
                             * ffpp: Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter
                             * (short forms DF,F2F,FS,NT,FSh) and DFD to add DeepFakeDetection */
    const char *splits_dir; /* ffpp: folder with train/val/test.json; NULL: ROOT/splits */
    const char *csv;        /* generic: CSV list (paths relative to it); NULL: scan ROOT/real, ROOT/fake */
} dcl_dataset_opts;

typedef struct dcl_dataset dcl_dataset;

/* name: ffpp | dfd | celebdf | dfdc | dfdcp | wild | generic (a few aliases:
 * ff++, faceforensics, celeb-df, dfdc-preview, wilddeepfake).  opts may be NULL.
 * Fails only when nothing can be indexed (root missing, no layout recognised);
 * problems with single items go to the issue list. */
dcl_status dcl_dataset_open(dcl_dataset **out, const char *name, const char *root, const dcl_dataset_opts *opts);
void dcl_dataset_close(dcl_dataset *ds);

const char *dcl_dataset_name(const dcl_dataset *ds);
const char *dcl_dataset_root(const dcl_dataset *ds);
int dcl_dataset_count(const dcl_dataset *ds);
const dcl_entry *dcl_dataset_get(const dcl_dataset *ds, int i);
/* index of the entry with this id, -1 if none */
int dcl_dataset_find(const dcl_dataset *ds, const char *id);

int dcl_dataset_issue_count(const dcl_dataset *ds);
const dcl_issue *dcl_dataset_issue(const dcl_dataset *ds, int i);
/* number of issues of a kind */
int dcl_dataset_issue_count_kind(const dcl_dataset *ds, dcl_issue_kind k);

typedef struct dcl_dataset_stats {
    int n, real, fake;
    int by_split[4][2];    /* [split][label] */
} dcl_dataset_stats;
void dcl_dataset_stats_get(const dcl_dataset *ds, dcl_dataset_stats *st);

/* Human-readable summary (counts per split / label / method) and every issue. */
void dcl_dataset_report(const dcl_dataset *ds, FILE *f);

/* Writes the index as CSV with a header (id,path,label,split,method,dataset,
 * quality,group,target,source,pair,mask,media; pair is the paired entry's id);
 * paths absolute.  The generic
 * adapter reads it back (opts.csv). */
dcl_status dcl_dataset_write_csv(const dcl_dataset *ds, const char *path);

#ifdef __cplusplus
}
#endif
#endif
