/* Synthetic face-forgery data set in the FaceForensics++ layout.
 *
 * Real "videos" are made from face photographs that Debian packages ship
 * (scikit-image's astronaut, camera and LFW subset; matplotlib's Grace
 * Hopper portrait; see docs/SYNTH.md for the list and the licences): each
 * photograph becomes one or more identities (colour, tone and shape
 * variations, deterministic from the seed), filmed by a moving camera (pan,
 * zoom, roll) under drifting light with sensor noise.  Each real video is
 * then manipulated by five families modelled on FF++'s methods (identity
 * swap as Deepfakes and FaceSwap, expression warps as Face2Face, a
 * re-rendered lower face as NeuralTextures, and self-blended images as
 * SelfBlended); every fake is aligned pixel for pixel with its target real
 * video and comes with a mask video that is white exactly where pixels were
 * altered.  Everything is encoded with H.264 at FF++-like qualities (c23:
 * CRF 23, c40: CRF 40, raw: lossless) and laid out as
 *
 *   original_sequences/youtube/<q>/videos/NNN.mp4
 *   manipulated_sequences/<Method>/<q>/videos/TTT_SSS.mp4
 *   manipulated_sequences/<Method>/masks/videos/TTT_SSS.mp4   (lossless H.264)
 *   splits/{train,val,test}.json      identity-disjoint lists of [TTT, SSS] pairs
 *   synth.json                        the settings and which photograph each video shows
 *
 * The same settings and seed give the same frames; with the same FFmpeg
 * build (x264 runs single-threaded) the files are byte-identical.  Faces and
 * their five landmarks are located with the MTCNN detector (dcl/face.h), so
 * the weights file is needed to build a set.
 */
#ifndef DCL_SYNTH_H
#define DCL_SYNTH_H
#include "dcl/core.h"
#include "dcl/io.h"
#include "dcl/dataset.h" /* dcl_split */

#ifdef __cplusplus
extern "C" {
#endif

/* Manipulation families; the value is the bit index in dcl_synth_opts.methods. */
typedef enum dcl_synth_method {
    DCL_SYNTH_REAL = -1,
    DCL_SYNTH_DEEPFAKES = 0,      /* identity swap, soft wide blend, partial colour match, low-res face */
    DCL_SYNTH_FACE2FACE = 1,      /* mouth and eye warps driven by the source's expression */
    DCL_SYNTH_FACESWAP = 2,       /* identity swap, tight hard-edged blend, colour mismatch, jitter */
    DCL_SYNTH_NEURALTEXTURES = 3, /* re-rendered lower face: low-pass, noise, up-sampling pattern */
    DCL_SYNTH_SELFBLENDED = 4,    /* face blended with a colour/frequency-transformed copy of itself */
    DCL_SYNTH_NMETHODS = 5
} dcl_synth_method;
#define DCL_SYNTH_ALL_METHODS 0x1fu

/* Folder name ("Deepfakes", ...; "real" for DCL_SYNTH_REAL); NULL when out of range. */
const char *dcl_synth_method_name(int method);
/* "Deepfakes,FaceSwap" / "DF,FS,SBI" / "all" (case-insensitive) -> bit mask. */
dcl_status dcl_synth_parse_methods(unsigned *mask, const char *list);

enum { DCL_SYNTH_Q_RAW = 1, DCL_SYNTH_Q_C23 = 2, DCL_SYNTH_Q_C40 = 4 };
/* "c23,c40", "raw", "all" -> bit mask of DCL_SYNTH_Q_*. */
dcl_status dcl_synth_parse_qualities(unsigned *mask, const char *list);

typedef struct dcl_synth_opts {
    uint64_t seed;              /* 1 */
    int identities;             /* 12 (2..1000; identities * videos_per_identity <= 1000) */
    int videos_per_identity;    /* 1 */
    int frames;                 /* 32 (2..1000) */
    int width, height;          /* 256 x 256 (even, 64..1920) */
    double fps;                 /* 25 */
    unsigned qualities;         /* DCL_SYNTH_Q_C23 | DCL_SYNTH_Q_C40 */
    unsigned methods;           /* DCL_SYNTH_ALL_METHODS */
    const char *mtcnn_weights;  /* "models/mtcnn.safetensors" */
    int threads;                /* threads of the face detector (1: its images are small) */
    /* Folders searched for the photographs (NULL: where Debian installs them;
     * see docs/SYNTH.md).  A missing photograph is skipped; none at all is an error. */
    const char *skimage_dir;    /* .../skimage/data */
    const char *matplotlib_dir; /* .../mpl-data/sample_data */
} dcl_synth_opts;

void dcl_synth_opts_default(dcl_synth_opts *o);

typedef struct dcl_synth dcl_synth;

/* One video of the set (a real one; its fakes are TTT_SSS with TTT = id
 * and SSS = the id of video `source`). */
typedef struct dcl_synth_video {
    char id[8];            /* "007" */
    int identity;          /* 0 .. identities-1 */
    dcl_split split;       /* identity-disjoint */
    int source;            /* video index whose face / expression drives this video's fakes */
    const char *face;      /* photograph the identity comes from, e.g. "astronaut", "lfw_subset[17]" */
} dcl_synth_video;

/* Checks the options, loads the photographs, locates their faces with MTCNN
 * (on a CPU backend of o->threads threads; the process's OpenMP and OpenBLAS
 * thread counts are restored afterwards) and plans identities, videos, pairs
 * and splits.  Nothing is written.  Errors: bad options (DCL_ERR_ARG), the
 * weights file missing (DCL_ERR_IO), no photograph found or no face found in
 * any (DCL_ERR_NOTFOUND). */
dcl_status dcl_synth_open(dcl_synth **out, const dcl_synth_opts *o);
void dcl_synth_close(dcl_synth *s);

/* The options the set was planned with (their string fields are NULL: the
 * caller's strings are not kept). */
const dcl_synth_opts *dcl_synth_get_opts(const dcl_synth *s);
int dcl_synth_video_count(const dcl_synth *s);
const dcl_synth_video *dcl_synth_video_get(const dcl_synth *s, int v); /* NULL when out of range */
int dcl_synth_find_video(const dcl_synth *s, const char *id);         /* -1 when absent */

/* Comma-separated names of the photograph files found, e.g.
 * "astronaut.png,grace_hopper.jpg,camera.png,lfw_subset.npy". */
const char *dcl_synth_sources(const dcl_synth *s);

/* Renders frame t of video v: the real frame (method DCL_SYNTH_REAL) or the
 * fake of `method` whose target is v (source dcl_synth_video_get(s, v)->source),
 * before compression.  frame (and mask, which may be NULL) are allocated or
 * reused like dcl_video_read_frame's images: width x height RGB.  The mask is
 * 255 (on every channel) where the fake may differ from the real frame and 0
 * where it is guaranteed identical; for the real frame it is all 0. */
dcl_status dcl_synth_render(dcl_synth *s, dcl_image *frame, dcl_image *mask, int v, int method, int t);

/* The five landmarks (dcl_face order) of video v's face in frame t, in frame
 * pixel coordinates, as the generator places them. */
dcl_status dcl_synth_landmarks(const dcl_synth *s, float lm[5][2], int v, int t);

typedef struct dcl_synth_summary {
    int videos;              /* real videos in the plan */
    int fakes;               /* fake videos per quality (all methods) */
    int files_written;       /* .mp4 files encoded by this call */
    int files_kept;          /* .mp4 files already complete from an earlier run */
    int64_t bytes_written;
    int by_split[4];         /* real videos per dcl_split */
    double seconds;
} dcl_synth_summary;

/* Called after each target video; return non-zero to stop (the call then
 * fails with DCL_ERR_INTERRUPTED, leaving only complete files behind). */
typedef int (*dcl_synth_progress_fn)(void *user, int done, int total, const dcl_synth_video *v);

/* Writes the set under dir (created when missing).  Every file is written
 * to a hidden temporary name and renamed when complete, so an interrupted
 * run leaves no partial file; running again with the same settings keeps
 * the complete files and writes the rest.  A dir holding a synth.json made
 * with other settings, or a non-empty dir without synth.json, is refused. */
dcl_status dcl_synth_write(dcl_synth *s, const char *dir, dcl_synth_summary *sum,
                           dcl_synth_progress_fn progress, void *user);

/* ---- .npy arrays (the LFW subset ships as one) ----
 * Version 1.0-3.0 headers, C or Fortran order; dtypes u1, i1, b1, <u2, <i2,
 * <i4, <f4, <f8 (little-endian).  Values are converted to float, data laid
 * out in C order. */
typedef struct dcl_npy {
    int ndim;
    int64_t shape[DCL_MAX_DIMS];
    int64_t numel;
    char dtype[8];       /* as in the header, e.g. "<f8" */
    float *data;         /* malloc'ed */
} dcl_npy;
dcl_status dcl_npy_load(dcl_npy *out, const char *path);
dcl_status dcl_npy_parse(dcl_npy *out, const void *buf, size_t len, const char *name);
void dcl_npy_free(dcl_npy *a);

#ifdef __cplusplus
}
#endif
#endif
