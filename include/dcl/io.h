/* File formats: safetensors, PNG/JPEG images, YAML configs, and the small
 * file / JSON utilities they share.
 *
 * Every function returns dcl_status and records a one-line message (see
 * dcl_last_error()) naming the file and the offending item.  Nothing here
 * exits, prints or keeps global state; all functions are thread-safe as long
 * as different threads use different objects.
 */
#ifndef DCL_IO_H
#define DCL_IO_H
#include "dcl/core.h"
#include "dcl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* =====================================================================
 * Files and buffers
 * ===================================================================== */

/* Growable byte buffer.  Zero-initialise ({0}) before use; data is always
 * NUL-terminated after a successful append (the NUL is not counted in len). */
typedef struct dcl_buf {
    char *data;
    size_t len, cap;
} dcl_buf;
dcl_status dcl_buf_append(dcl_buf *b, const void *p, size_t n);
dcl_status dcl_buf_puts(dcl_buf *b, const char *s);
dcl_status dcl_buf_printf(dcl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quoted, escaped; bytes >= 0x80 copied). */
dcl_status dcl_buf_json_str(dcl_buf *b, const char *s);
void dcl_buf_free(dcl_buf *b);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated; the NUL is not
 * counted in *len).  Fails with DCL_ERR_FORMAT when the file is larger than
 * max_bytes (0 = no limit).  Free with free(). */
dcl_status dcl_read_file(void **out, size_t *len, const char *path, size_t max_bytes);

/* Atomic replacement of a file: data goes to "PATH.tmp.XXXXXX" in the same
 * directory, which is flushed, fsync'ed and renamed over PATH; the directory
 * is then fsync'ed.  If anything fails, the temporary file is removed and an
 * existing PATH is left untouched.  A new file gets mode 0666 & ~umask; an
 * existing file keeps its mode. */
typedef struct dcl_atomic_file {
    void *f;        /* FILE*, for dcl_atomic_write */
    char *path;     /* final name */
    char *tmp;      /* temporary name */
    int failed;     /* a write failed (sticky) */
    int err;        /* errno of the first failure */
} dcl_atomic_file;
dcl_status dcl_atomic_open(dcl_atomic_file *af, const char *path);
dcl_status dcl_atomic_write(dcl_atomic_file *af, const void *p, size_t n);
/* Flush, fsync, rename, fsync dir.  Always releases af (on failure too). */
dcl_status dcl_atomic_commit(dcl_atomic_file *af);
/* Discard: removes the temporary file and releases af. */
void dcl_atomic_abort(dcl_atomic_file *af);
/* One-shot convenience. */
dcl_status dcl_write_file_atomic(const char *path, const void *data, size_t len);

/* ---- JSON helpers (cJSON) ---- */
/* Parses text as JSON; errors name `what` and the line:column of the problem.
 * Trailing non-whitespace after the value is an error.  Free with cJSON_Delete. */
dcl_status dcl_json_parse(struct cJSON **out, const char *text, size_t len, const char *what);
dcl_status dcl_json_load(struct cJSON **out, const char *path);
/* 1 when v is a JSON number holding an exact integer in [lo, hi] that is also
 * exactly representable as a double (|x| <= 2^53); writes it to *out. */
int dcl_json_int(const struct cJSON *v, int64_t lo, int64_t hi, int64_t *out);

/* =====================================================================
 * safetensors
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the data buffer (offsets relative to its start).
 * ===================================================================== */

#define DCL_ST_MAX_HEADER (100u * 1000u * 1000u) /* same limit as the reference reader */

typedef struct dcl_st dcl_st;
typedef struct dcl_st_entry {
    const char *name;
    dcl_dtype dtype;
    int ndim;
    int64_t shape[DCL_MAX_DIMS];
    int64_t numel;
    const void *data;   /* little-endian, NOT necessarily aligned */
    size_t nbytes;
} dcl_st_entry;

/* Opens and fully validates a file (memory-mapped, read-only; entries and
 * their data stay valid until dcl_st_close).  Everything is
 * checked: size, header length, UTF-8, JSON, each entry's fields, dtype, shape,
 * byte count, offsets (in range, non-overlapping, covering the whole data
 * buffer without gaps, as the reference reader requires), duplicate names and
 * metadata.  Tensors with more than DCL_MAX_DIMS dims or a dtype that dcl_dtype
 * lacks (U16, F8_E4M3, ...) are refused with DCL_ERR_UNSUPPORTED. */
dcl_status dcl_st_open(dcl_st **out, const char *path);
/* Same on a memory buffer, which must outlive the handle; `name` labels errors. */
dcl_status dcl_st_open_mem(dcl_st **out, const void *buf, size_t len, const char *name);
void dcl_st_close(dcl_st *st);

int dcl_st_count(const dcl_st *st);
/* Entries in header order of offsets (i.e. file order); NULL when out of range. */
const dcl_st_entry *dcl_st_get(const dcl_st *st, int i);
const dcl_st_entry *dcl_st_find(const dcl_st *st, const char *name); /* NULL if absent */
const char *dcl_st_meta(const dcl_st *st, const char *key);          /* NULL if absent */
int dcl_st_meta_count(const dcl_st *st);
/* i-th metadata pair (sorted by key); returns the key, value in *value. */
const char *dcl_st_meta_get(const dcl_st *st, int i, const char **value);
const char *dcl_st_path(const dcl_st *st);

/* Converts tensor `name` to float into dst (which holds its numel floats).
 * Accepts F32, F16, BF16, F64 and the integer / bool dtypes.  When
 * expect_shape is not NULL the tensor must have exactly that shape (error
 * names the tensor, expected and found shapes); DCL_ERR_NOTFOUND if absent. */
dcl_status dcl_st_read_f32(const dcl_st *st, const char *name, float *dst,
                           int ndim, const int64_t *expect_shape);
/* Same for an entry already looked up. */
dcl_status dcl_st_entry_to_f32(float *dst, const dcl_st *st, const dcl_st_entry *e);

/* ---- writer ---- */
typedef struct dcl_st_writer dcl_st_writer;
dcl_status dcl_st_writer_new(dcl_st_writer **out);
void dcl_st_writer_free(dcl_st_writer *w);
/* Adds a tensor whose bytes (little-endian, dtype layout) are REFERENCED:
 * `data` must stay valid until dcl_st_write_file / dcl_st_write_mem returns. */
dcl_status dcl_st_writer_add(dcl_st_writer *w, const char *name, dcl_dtype dtype,
                             int ndim, const int64_t *shape, const void *data);
/* Same, but the bytes are copied now. */
dcl_status dcl_st_writer_add_copy(dcl_st_writer *w, const char *name, dcl_dtype dtype,
                                  int ndim, const int64_t *shape, const void *data);
/* Converts floats to `dtype` (F32, F16, BF16 round-to-nearest-even, F64, or an
 * integer dtype, rounding to nearest) and stores the copy. */
dcl_status dcl_st_writer_add_f32(dcl_st_writer *w, const char *name, dcl_dtype dtype,
                                 int ndim, const int64_t *shape, const float *src);
/* Metadata string pair (copied); setting a key again replaces its value. */
dcl_status dcl_st_writer_meta(dcl_st_writer *w, const char *key, const char *value);
/* Header keys are sorted ("__metadata__" first), data is laid out by dtype
 * size (largest first) then name, the header is padded with spaces to a
 * multiple of 8.  The file is written atomically (see dcl_atomic_open). */
dcl_status dcl_st_write_file(dcl_st_writer *w, const char *path);
/* Whole file image into a malloc'ed buffer (free with free()). */
dcl_status dcl_st_write_mem(dcl_st_writer *w, void **out, size_t *len);

/* Scalar conversions used by the reader/writer (exposed for tests and kernels). */
float dcl_f16_to_f32(uint16_t h);
uint16_t dcl_f32_to_f16(float f);   /* round to nearest even, overflow -> inf */
float dcl_bf16_to_f32(uint16_t h);
uint16_t dcl_f32_to_bf16(float f);  /* round to nearest even, NaN stays NaN */

/* =====================================================================
 * Images: 8-bit RGB, HWC, rows top to bottom
 * ===================================================================== */

#define DCL_IMAGE_MAX_PIXELS_DEFAULT (100LL * 1000 * 1000)

typedef struct dcl_image {
    int w, h, c;       /* c is always 3 */
    uint8_t *data;     /* h*w*3 bytes, malloc'ed */
} dcl_image;

/* Allocates an uninitialised w x h RGB image. */
dcl_status dcl_image_alloc(dcl_image *img, int w, int h);
void dcl_image_free(dcl_image *img);

/* Decodes PNG (any colour type / bit depth / interlace; palette and gray are
 * expanded, alpha is dropped, 16-bit keeps the high byte) or JPEG (gray, RGB,
 * YCbCr, CMYK, YCCK; baseline or progressive), detected by magic bytes.
 * Truncated or corrupt data is an error (libjpeg "corrupt data" warnings
 * included, except extraneous bytes before a marker and odd progressive scan
 * scripts; at most 500 progressive scans).  Images with more than max_pixels
 * pixels are refused before any pixel memory is allocated (max_pixels <= 0:
 * no limit; the plain versions use DCL_IMAGE_MAX_PIXELS_DEFAULT).  On error
 * *out is zeroed. */
dcl_status dcl_image_decode(dcl_image *out, const void *buf, size_t len);
dcl_status dcl_image_decode_ex(dcl_image *out, const void *buf, size_t len, int64_t max_pixels);
dcl_status dcl_image_load(dcl_image *out, const char *path);
dcl_status dcl_image_load_ex(dcl_image *out, const char *path, int64_t max_pixels);

/* Encoders into malloc'ed memory (free with free()).  JPEG: quality 1..100,
 * 4:2:0 chroma subsampling, baseline (libjpeg defaults, like OpenCV/PIL). */
dcl_status dcl_image_encode_png_mem(uint8_t **out, size_t *len, const dcl_image *img);
dcl_status dcl_image_encode_jpeg_mem(uint8_t **out, size_t *len, const dcl_image *img, int quality);
/* Atomic file writes (see dcl_atomic_open). */
dcl_status dcl_image_save_png(const char *path, const dcl_image *img);
dcl_status dcl_image_save_jpeg(const char *path, const dcl_image *img, int quality);

/* Bilinear resize with half-pixel centres, i.e.
 * torch.nn.functional.interpolate(mode='bilinear', align_corners=False,
 * antialias=False) computed in float and rounded to nearest.  dst is
 * allocated (dcl_image_free it). */
dcl_status dcl_image_resize_bilinear(dcl_image *dst, int dw, int dh, const dcl_image *src);
/* Same on float HWC data with c channels (dst holds dh*dw*c floats), no rounding. */
dcl_status dcl_resize_bilinear_f32(float *dst, int dw, int dh, const float *src, int sw, int sh, int c);
/* dst[(y*w + x)*3 + ch] = (pixel/255 - mean[ch]) / std[ch]  (HWC float). */
void dcl_image_to_tensor(float *dst_hwc, const dcl_image *img, const float mean[3], const float std[3]);
/* dst = the w x h window of src whose top-left corner is (x0, y0); parts
 * outside src are zero.  dst is allocated. */
dcl_status dcl_image_crop(dcl_image *dst, const dcl_image *src, int x0, int y0, int w, int h);

/* =====================================================================
 * YAML configs
 *
 * A config is a tree of nodes; dcl_config_load returns the root (a mapping).
 * Paths are dotted: "train.lr", "data.sets.0.name" (a number indexes a
 * sequence).  Getters return DCL_OK and the default when the path is absent
 * or its value is null (`key:`, `~`, `null`); a value of the wrong type is
 * an error such as "cfg.yaml: train.lr: expected a number, found 'abc' at
 * line 12".  Aliases (*x) are expanded; merge keys (<<) are not special.
 * ===================================================================== */

typedef struct dcl_config dcl_config;
typedef enum dcl_cfg_kind {
    DCL_CFG_NULL = 0, DCL_CFG_SCALAR, DCL_CFG_MAP, DCL_CFG_SEQ
} dcl_cfg_kind;

dcl_status dcl_config_load(dcl_config **out, const char *path);
/* Parses YAML text; `name` labels errors (e.g. the file name). */
dcl_status dcl_config_parse(dcl_config **out, const char *text, size_t len, const char *name);
dcl_status dcl_config_new(dcl_config **out);   /* empty mapping */
void dcl_config_free(dcl_config *root);        /* root only */

/* Node at a dotted path below `node` ("" = node itself); NULL if absent. */
const dcl_config *dcl_config_find(const dcl_config *node, const char *path);
dcl_cfg_kind dcl_config_kind(const dcl_config *node);
int dcl_config_len(const dcl_config *node);                   /* entries / items; 0 for scalars */
const char *dcl_config_key(const dcl_config *map, int i);     /* NULL unless a mapping */
const dcl_config *dcl_config_at(const dcl_config *node, int i); /* i-th value / item */
const char *dcl_config_scalar(const dcl_config *node);        /* NULL unless a scalar */
int dcl_config_line(const dcl_config *node);                  /* 1-based; 0 if set by override */
const char *dcl_config_path(const dcl_config *node);          /* dotted path from the root */

dcl_status dcl_config_get_str(const dcl_config *cfg, const char *path, const char *def, const char **out);
dcl_status dcl_config_get_int(const dcl_config *cfg, const char *path, int def, int *out);
dcl_status dcl_config_get_i64(const dcl_config *cfg, const char *path, int64_t def, int64_t *out);
dcl_status dcl_config_get_double(const dcl_config *cfg, const char *path, double def, double *out);
/* true/false, yes/no, on/off (any case), 1/0 */
dcl_status dcl_config_get_bool(const dcl_config *cfg, const char *path, int def, int *out);

/* Sets path to value, creating intermediate mappings ("--set key=value").
 * A value starting with '[', '{', '"' or '\'' is parsed as YAML flow; any
 * other value is a plain scalar ("" / "~" / "null" give null). */
dcl_status dcl_config_set(dcl_config *root, const char *path, const char *value);
/* "key=value" form. */
dcl_status dcl_config_set_arg(dcl_config *root, const char *kv);
/* Errors on the first key of mapping `map` not in the NULL-terminated list,
 * e.g. "cfg.yaml: train: unknown key 'lrr' at line 4". */
dcl_status dcl_config_check_keys(const dcl_config *map, const char *const *known);
/* Block-style YAML of the tree (re-parses to the same tree). */
dcl_status dcl_config_dump(dcl_buf *out, const dcl_config *node);

#ifdef __cplusplus
}
#endif
#endif
