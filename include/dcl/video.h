/* Video decoding and encoding (FFmpeg: libavformat, libavcodec, libswscale).
 *
 * Frames come out as HWC RGB u8 images (dcl_image, c == 3).
 *
 * Frame index: the position of a frame in presentation order, starting at 0,
 * exactly as a plain sequential decode numbers them.  Sampling seeks to the
 * keyframe before a wanted frame and decodes forward to it, matching frames by
 * timestamp against a table of every packet's timestamp (built once, by
 * reading packets without decoding them); a file whose timestamps cannot be
 * trusted is decoded sequentially instead, so indices stay exact.
 *
 * Damaged input never crashes: packets that fail to read or decode are
 * skipped and counted (dcl_video_warnings); the first problem is kept as a
 * one-line message (dcl_video_first_warning).
 *
 * Memory of dcl_image.data: malloc'ed, as everywhere (dcl_image_free); pass
 * an image whose data is NULL (zero-initialised) or one filled earlier (its
 * buffer is reused when the size matches, else freed and reallocated).
 */
#ifndef DCL_VIDEO_H
#define DCL_VIDEO_H
#include "dcl/core.h"
#include "dcl/io.h" /* dcl_image */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcl_video dcl_video;

typedef struct dcl_video_info {
    int width, height;        /* size of the frames handed out (after rotation) */
    int coded_width, coded_height; /* size stored in the stream */
    int64_t nframes;          /* number of frames (see nframes_estimated) */
    int nframes_estimated;    /* 1: the container does not store a count; nframes
                               * is duration * fps.  dcl_video_count_frames() gives
                               * the exact number. */
    double fps;               /* average frame rate (0 if unknown) */
    double duration;          /* seconds (0 if unknown) */
    int rotation;             /* display rotation stored in the file, degrees
                               * clockwise: 0, 90, 180 or 270 */
    char codec[32];           /* decoder name, e.g. "h264" */
    char container[32];       /* demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" (cut) */
} dcl_video_info;

/* Opens a video file.  Errors name the file and the problem: missing file
 * (DCL_ERR_IO), empty file, not a media file / still image / no video stream /
 * corrupt or truncated header (DCL_ERR_FORMAT), no decoder for the codec
 * (DCL_ERR_UNSUPPORTED). */
dcl_status dcl_video_open(dcl_video **v, const char *path);
void dcl_video_close(dcl_video *v);
const dcl_video_info *dcl_video_get_info(const dcl_video *v);

/* Rotate frames by the stored display rotation (default on, like players). */
void dcl_video_set_autorotate(dcl_video *v, int on);

/* Exact frame count (reads every packet once, without decoding; cached). */
dcl_status dcl_video_count_frames(dcl_video *v, int64_t *n);

/* Next frame in presentation order.  *index receives its frame index; at the
 * end of the stream returns DCL_OK with *index = -1 and leaves out untouched. */
dcl_status dcl_video_read_frame(dcl_video *v, dcl_image *out, int64_t *index);

/* Back to the first frame. */
dcl_status dcl_video_rewind(dcl_video *v);

typedef enum dcl_sample_mode {
    DCL_SAMPLE_EVEN = 0,    /* evenly spaced over the video: floor((i + 0.5) * N / n) */
    DCL_SAMPLE_RANDOM = 1   /* n distinct indices uniformly at random, sorted */
} dcl_sample_mode;

/* Chooses min(n, nframes) distinct sorted frame indices in [0, nframes).
 * RANDOM needs rng.  *count receives the number written to idx. */
dcl_status dcl_video_plan(int64_t *idx, int *count, int64_t nframes, int n,
                          dcl_sample_mode mode, dcl_rng *rng);

/* Called once per decoded frame asked for; k is the position in the request.
 * The image is only valid during the call.  Return non-zero to stop early. */
typedef int (*dcl_frame_cb)(void *user, const dcl_image *frame, int64_t index, int k);

/* Decodes the frames whose indices are listed (ascending, distinct), seeking
 * where a keyframe lies between the current position and the next wanted
 * frame, decoding forward otherwise.  *found (may be NULL) receives how many
 * frames were delivered; indices past the real end are skipped. */
dcl_status dcl_video_read_frames(dcl_video *v, const int64_t *idx, int n,
                                 dcl_frame_cb cb, void *user, int *found);

/* Convenience: plans n indices over the exact frame count and decodes them
 * into frames[0..*got) (zero-initialised or reusable images) with their
 * indices in indices[0..*got). */
dcl_status dcl_video_sample(dcl_video *v, int n, dcl_sample_mode mode, dcl_rng *rng,
                            dcl_image *frames, int64_t *indices, int *got);

/* Damage seen so far: packets that could not be read or decoded, frames the
 * decoder marked corrupt. */
int64_t dcl_video_warnings(const dcl_video *v);
const char *dcl_video_first_warning(const dcl_video *v); /* "" when none */
/* Seeks done / frames decoded so far (for tests and benchmarks). */
int64_t dcl_video_seeks(const dcl_video *v);
int64_t dcl_video_decoded(const dcl_video *v);

/* ---- writer ---- */
typedef struct dcl_video_writer dcl_video_writer;

typedef struct dcl_video_writer_opts {
    const char *codec;  /* "libx264", "libx265", "libvpx-vp9", "mpeg4", ...; NULL:
                         * libvpx-vp9 for .webm, libx264 otherwise.  An encoder
                         * this FFmpeg lacks falls back to mpeg4 (with a warning). */
    int quality;        /* CRF-like 0 (best) .. 51 (worst); < 0: 23.  Mapped to the
                         * codec's scale (vp9 CRF 0..63, mpeg4 qscale 1..31). */
    int gop;            /* keyframe interval in frames; <= 0: codec default */
    int bframes;        /* max consecutive B-frames; < 0: codec default */
    int rotation;       /* display rotation to store: 0, 90, 180, 270 */
} dcl_video_writer_opts;

/* Container from the extension: .mp4 .mov .mkv .webm .avi.  Frames are
 * encoded as yuv420p (full range for mjpeg); an odd width or height is cropped to even (the last
 * column / row is dropped).  fps > 0. */
dcl_status dcl_video_writer_open(dcl_video_writer **w, const char *path, int width, int height,
                                 double fps, const dcl_video_writer_opts *opts);
/* frame: width x height RGB (c == 3) or grey (c == 1), as given to open. */
dcl_status dcl_video_writer_write(dcl_video_writer *w, const dcl_image *frame);
/* Flushes, writes the trailer, frees.  w may be NULL. */
dcl_status dcl_video_writer_close(dcl_video_writer *w);
/* Closes without finishing the file (after an error); w may be NULL. */
void dcl_video_writer_abort(dcl_video_writer *w);
const char *dcl_video_writer_codec(const dcl_video_writer *w); /* encoder actually used */
int dcl_video_writer_width(const dcl_video_writer *w);   /* encoded size (even) */
int dcl_video_writer_height(const dcl_video_writer *w);
/* 1 if this FFmpeg has the named encoder. */
int dcl_video_have_encoder(const char *name);

#ifdef __cplusplus
}
#endif
#endif
