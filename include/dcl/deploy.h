/* Deployment: model files, scoring of images and videos, annotated copies
 * and the HTTP service (`dcl export`, `dcl detect`, `dcl serve`;
 * docs/DEPLOY.md).
 *
 * A model file is one safetensors file holding the query encoder with its
 * classifier (timm state_dict names), by default the MTCNN face detector's
 * weights under the prefix "mtcnn.", and metadata describing everything
 * needed to score: architecture, width/depth multipliers, input size,
 * normalisation, head, decision threshold and face detector settings.
 * The loaders also accept a training checkpoint (last.safetensors or
 * best.safetensors) directly, with default deployment settings.
 *
 * Scoring objects (dcl_deploy) are not thread-safe: use one per thread.
 */
#ifndef DCL_DEPLOY_H
#define DCL_DEPLOY_H
#include "dcl/core.h"
#include "dcl/detector.h"
#include "dcl/face.h"
#include "dcl/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* =====================================================================
 * Model files
 * ===================================================================== */

#define DCL_DEPLOY_FORMAT "dcl-detector/1"   /* metadata "dcl_format" of an exported file */

typedef struct dcl_deploy_info {
    char arch[48];              /* e.g. "tf_efficientnet_b4" */
    float width, depth;         /* channel / depth multipliers actually used */
    int size;                   /* crops are size x size */
    float mean[3], std[3];      /* input normalisation, (pixel/255 - mean) / std */
    int softmax_head;           /* 0: one logit + sigmoid; 1: two logits + softmax */
    float threshold;            /* "fake" when P(fake) >= threshold */
    double face_min_size;       /* MTCNN: smallest face searched for, pixels */
    double face_factor;         /* MTCNN: pyramid step */
    float face_thresholds[3];   /* MTCNN: P-, R-, O-net thresholds */
    float crop_scale;           /* crop window side / longer box side */
    int face_embedded;          /* the MTCNN weights are inside the file */
    int is_checkpoint;          /* a training checkpoint, not an exported model file */
    int64_t params;             /* parameters of the query encoder (set once loaded) */
    char source[256];           /* exported from this checkpoint ("" if unknown) */
    int epoch;                  /* training epoch of the weights, -1 if unknown */
    double val_auc;             /* validation AUC recorded with them, NaN if unknown */
} dcl_deploy_info;

/* Deployment defaults: threshold 0.5, MTCNN min face 40, factor 0.709,
 * thresholds 0.6/0.7/0.7, crop scale 1.3; architecture fields empty. */
void dcl_deploy_info_default(dcl_deploy_info *info);

/* Reads and validates the metadata of an open model file or training
 * checkpoint (arch, width, depth, head, size, mean, std; deployment
 * settings when present, else defaults; a checkpoint's "config" YAML is
 * read for the model keys it lacks).  Every value is range-checked; errors
 * name the file, the key and the value. */
dcl_status dcl_deploy_info_read(dcl_deploy_info *info, const dcl_st *st);

/* The EfficientNet configuration of info (classifier included). */
dcl_status dcl_deploy_effnet_cfg(dcl_effnet_cfg *cfg, const dcl_deploy_info *info);

/* Builds the detector (query encoder, classifier and embedding; no key
 * encoder) of info on backend be and loads its tensors from st (model file
 * names, or a checkpoint's un-prefixed query tensors).  Every tensor is
 * checked by name and shape, and must be finite.  info->params is set. */
dcl_status dcl_deploy_load_detector(dcl_detector **out, dcl_backend *be, const dcl_st *st,
                                    dcl_deploy_info *info);

typedef struct dcl_export_opts {
    float threshold;            /* 0.5 */
    double face_min_size;       /* 40 */
    double face_factor;         /* 0.709 */
    float face_thresholds[3];   /* 0.6, 0.7, 0.7 */
    float crop_scale;           /* 1.3 */
    const char *mtcnn_path;     /* MTCNN weights to embed ("models/mtcnn.safetensors") */
    int embed_face;             /* 1: embed them (default); 0: the file refers to an external copy */
    const char *source;         /* metadata "source" (NULL: the checkpoint's path) */
} dcl_export_opts;
void dcl_export_opts_default(dcl_export_opts *o);

/* Writes a model file (atomically) from a training checkpoint or a model
 * file.  info (may be NULL) receives what was written. */
dcl_status dcl_deploy_export(const char *out_path, const char *checkpoint_path, const dcl_export_opts *o,
                             dcl_deploy_info *info);

/* =====================================================================
 * Scoring
 * ===================================================================== */

typedef struct dcl_deploy dcl_deploy;

typedef struct dcl_deploy_opts {
    const char *device;         /* "cpu" (default), "ref", "cuda[:N]" */
    int threads;                /* 0: all cores */
    const char *mtcnn_path;     /* MTCNN weights when the model file has none embedded
                                 * (default: models/mtcnn.safetensors) */
    int max_faces;              /* faces scored per frame, largest face score first (16) */
    int64_t max_pixels;         /* images and video frames larger than this are refused (40e6) */
} dcl_deploy_opts;
void dcl_deploy_opts_default(dcl_deploy_opts *o);

/* Opens a model file (or a checkpoint) and prepares the face detector and
 * the classifier.  opts may be NULL (defaults). */
dcl_status dcl_deploy_open(dcl_deploy **out, const char *model_path, const dcl_deploy_opts *opts);
/* Same from a file image in memory (must outlive the call only). */
dcl_status dcl_deploy_open_mem(dcl_deploy **out, const void *buf, size_t len, const char *name,
                               const dcl_deploy_opts *opts);
void dcl_deploy_free(dcl_deploy *d);
const dcl_deploy_info *dcl_deploy_get_info(const dcl_deploy *d);

typedef struct dcl_face_result {
    float x1, y1, x2, y2;       /* face box, input pixels */
    float score;                /* face detector probability */
    float prob;                 /* P(fake) of the face crop */
} dcl_face_result;

typedef struct dcl_frame_result {
    int64_t index;              /* frame index (0 for an image) */
    double time;                /* seconds from the start (index / fps) */
    int nfaces;
    dcl_face_result *faces;     /* malloc'ed, nfaces entries */
    float prob;                 /* max over the faces; NaN when there is none */
} dcl_frame_result;

typedef enum dcl_media_kind { DCL_MEDIA_UNKNOWN = 0, DCL_MEDIA_IMAGE, DCL_MEDIA_VIDEO } dcl_media_kind;

/* Why an input could not be scored (maps to HTTP statuses in the server). */
typedef enum dcl_media_error {
    DCL_MEDIA_OK = 0,
    DCL_MEDIA_UNREADABLE,       /* missing file, corrupt or truncated data (400) */
    DCL_MEDIA_UNSUPPORTED,      /* neither a JPEG/PNG image nor an accepted video (415) */
    DCL_MEDIA_TOO_LARGE,        /* more pixels than allowed (422) */
    DCL_MEDIA_TOO_LONG,         /* video longer than allowed (422) */
    DCL_MEDIA_TIMEOUT,          /* deadline passed (504) */
    DCL_MEDIA_FAILED            /* out of memory, backend failure (500) */
} dcl_media_error;

typedef struct dcl_media_result {
    dcl_media_kind kind;
    int width, height;
    double fps, duration;       /* videos; 0 when unknown */
    int64_t frames_total;       /* videos: frames in the file */
    char codec[32];             /* videos: decoder name */
    int nframes;                /* frames scored (1 for an image) */
    dcl_frame_result *frames;
    int frames_with_faces;
    int faces;                  /* faces scored over all frames */
    float prob;                 /* image: max over faces; video: mean over frames with a face; NaN: none */
    float prob_max;             /* max over frames (= prob for an image) */
    int64_t warnings;           /* damaged packets skipped while decoding */
    double seconds;             /* time spent */
    dcl_media_error err;        /* DCL_MEDIA_OK unless the input could not be scored */
    char error[320];            /* one line, without the input's name */
} dcl_media_result;
void dcl_media_result_free(dcl_media_result *r);

typedef struct dcl_analyze_opts {
    int frames;                 /* frames sampled evenly from a video (16) */
    double max_video_seconds;   /* > 0: longer videos are refused (DCL_MEDIA_TOO_LONG) */
    double deadline;            /* > 0: dcl_now() after which scoring stops (DCL_MEDIA_TIMEOUT) */
    int strict_containers;      /* 1: videos only in known container formats (see dcl_media_sniff);
                                 * for untrusted uploads */
    const char *annotate;       /* write an annotated copy here (image: .png or .jpg;
                                 * video: .mp4, .mkv, .webm, .avi, .mov) */
} dcl_analyze_opts;
void dcl_analyze_opts_default(dcl_analyze_opts *o);

/* Scores a file (JPEG/PNG image or video).  Problems with the input are
 * reported in r->err / r->error with DCL_OK returned; the return value is
 * an error only for wrong arguments.  Free r with dcl_media_result_free. */
dcl_status dcl_deploy_analyze_file(dcl_deploy *d, const char *path, const dcl_analyze_opts *o,
                                   dcl_media_result *r);
/* Same on bytes in memory (videos go through an anonymous memory file). */
dcl_status dcl_deploy_analyze_mem(dcl_deploy *d, const void *buf, size_t len, const dcl_analyze_opts *o,
                                  dcl_media_result *r);
/* Faces and their scores in one decoded image; fr->index = 0. */
dcl_status dcl_deploy_score_image(dcl_deploy *d, const dcl_image *img, dcl_frame_result *fr);
void dcl_frame_result_free(dcl_frame_result *fr);

/* Kind of data from its first bytes: JPEG or PNG -> IMAGE; a known video
 * container (MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, FLV, Ogg,
 * ASF/WMV) -> VIDEO; else UNKNOWN. */
dcl_media_kind dcl_media_sniff(const void *buf, size_t len);

/* ---- output formats ---- */
/* One JSON object on one line (no newline): the result of one input.  name
 * (may be NULL) is written as "path"; with_frames adds the per-frame list of
 * a video.  A failed input is {"path": ..., "error": ...}. */
dcl_status dcl_media_result_json(dcl_buf *out, const dcl_media_result *r, const char *name, float threshold,
                                 int with_frames);
/* CSV: the header line, then per input one row per face, per video frame
 * and one summary row (column "kind": face, frame, image, video, error). */
const char *dcl_media_csv_header(void);
dcl_status dcl_media_result_csv(dcl_buf *out, const dcl_media_result *r, const char *name, float threshold);
/* Readable table rows (header first when header != 0). */
dcl_status dcl_media_result_table(dcl_buf *out, const dcl_media_result *r, const char *name, float threshold,
                                  int header);

/* ---- drawing ---- */
/* Colour of a probability: green (0) through yellow to red (1). */
void dcl_prob_color(float p, uint8_t rgb[3]);
/* Rectangle outline (clipped to the image) of thickness t. */
void dcl_draw_rect(dcl_image *img, int x1, int y1, int x2, int y2, int t, const uint8_t rgb[3]);
/* Text in a 5x7 bitmap font (digits, '.', '%', '-', ' ', upper-case letters)
 * scaled by `scale`, top-left corner at (x, y), on a dark background. */
void dcl_draw_text(dcl_image *img, int x, int y, const char *s, int scale, const uint8_t rgb[3]);
/* Boxes coloured by P(fake) with the probability above each. */
void dcl_annotate_frame(dcl_image *img, const dcl_frame_result *fr);

/* =====================================================================
 * HTTP service
 *
 * The request path is independent of the transport: dcl_server_begin
 * (headers only: route, method, token, declared size, content type) and
 * dcl_server_handle (the whole body) turn a request into a response;
 * dcl_server_start serves them over HTTP with libmicrohttpd.
 * ===================================================================== */

typedef struct dcl_http_request {
    const char *method;         /* "GET", "POST", ... */
    const char *path;           /* without the query string */
    const char *content_type;   /* NULL when absent */
    const char *authorization;  /* NULL when absent */
    int64_t content_length;     /* -1 when not declared (chunked) */
    const uint8_t *body;
    size_t body_len;
    double t_start;             /* dcl_now() when the request arrived */
} dcl_http_request;

typedef struct dcl_http_response {
    int status;
    char *body;                 /* malloc'ed */
    size_t len;
    const char *content_type;   /* static string */
    int retry_after;            /* seconds; 0: no Retry-After header */
    const char *allow;          /* Allow header for 405, else NULL */
    int auth_challenge;         /* add WWW-Authenticate: Bearer */
} dcl_http_response;
void dcl_http_response_free(dcl_http_response *r);

/* Scores one upload with one engine (dcl_deploy_analyze_mem in the service;
 * tests and fuzzing substitute their own). */
typedef dcl_status (*dcl_server_analyze_fn)(void *engine, const void *data, size_t len,
                                            const dcl_analyze_opts *o, dcl_media_result *r);
/* The service's scorer: engine is a dcl_deploy. */
dcl_status dcl_server_analyze_deploy(void *engine, const void *data, size_t len, const dcl_analyze_opts *o,
                                     dcl_media_result *r);

typedef struct dcl_server_opts {
    const char *host;           /* "127.0.0.1" */
    int port;                   /* 8080; 0 picks a free port */
    const char *token;          /* bearer token; NULL or "": none (loopback hosts only) */
    size_t max_body;            /* bytes (32 MiB) */
    double max_video_seconds;   /* 60 */
    int queue;                  /* requests that may wait for a busy engine (8) */
    double timeout;             /* seconds per request, upload to answer (30) */
    int frames;                 /* frames sampled per video (16) */
    int max_connections;        /* 64 */
    int quiet;                  /* no access log on stderr */
} dcl_server_opts;
void dcl_server_opts_default(dcl_server_opts *o);

typedef struct dcl_server dcl_server;

/* engines[0..nengines) are handed to fn, one request at a time each (the
 * number of engines is the number of concurrent jobs).  info describes the
 * model for /healthz and /metrics.  Nothing is bound yet. */
dcl_status dcl_server_create(dcl_server **out, const dcl_server_opts *o, void *const *engines, int nengines,
                             dcl_server_analyze_fn fn, const dcl_deploy_info *info);
/* Headers-only check: returns 1 and fills resp when the request is refused
 * before its body is read (unknown route, method, token, declared size,
 * content type, server full), else 0. */
int dcl_server_begin(dcl_server *s, const dcl_http_request *rq, dcl_http_response *resp);
/* The whole request (body included); always fills resp. */
void dcl_server_handle(dcl_server *s, const dcl_http_request *rq, dcl_http_response *resp);
/* Counts a finished request for /metrics (status, seconds since t_start). */
void dcl_server_record(dcl_server *s, int status, double t_start);
/* Upload memory accounting: reserve before buffering body bytes; 0 when the
 * server-wide budget would be exceeded. */
int dcl_server_reserve(dcl_server *s, size_t bytes);
void dcl_server_release(dcl_server *s, size_t bytes);
size_t dcl_server_max_body(const dcl_server *s);
double dcl_server_timeout(const dcl_server *s);
int dcl_server_quiet(const dcl_server *s);

/* Binds and serves in background threads.  Refuses a host that is not a
 * loopback address when no token is set. */
dcl_status dcl_server_start(dcl_server *s);
int dcl_server_port(const dcl_server *s);           /* the bound port */
/* Stops accepting, lets requests in flight finish (at most grace seconds),
 * then stops; /healthz answers 503 meanwhile. */
void dcl_server_shutdown(dcl_server *s, double grace);
void dcl_server_free(dcl_server *s);

/* 1 when host is a loopback name or address (localhost, 127.0.0.0/8, ::1). */
int dcl_host_is_loopback(const char *host);

/* multipart/form-data: finds field `field` of body.  *data and *dlen point into
 * body; part_type (may be NULL) receives the part's Content-Type ("" when
 * absent), filename (may be NULL) its file name.  DCL_ERR_FORMAT names what
 * is malformed, DCL_ERR_NOTFOUND when the field is absent. */
dcl_status dcl_multipart_find(const uint8_t *body, size_t len, const char *content_type, const char *field,
                              const uint8_t **data, size_t *dlen, char *part_type, size_t part_type_n,
                              char *filename, size_t filename_n);

#ifdef __cplusplus
}
#endif
#endif
