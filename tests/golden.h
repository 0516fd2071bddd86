/* Loading the PyTorch reference fixtures written by tools/make_goldens.py.
 *
 * A fixture is a safetensors file (read with the library's reader,
 * include/dcl/io.h) whose tensors are in PyTorch's layouts (NCHW
 * activations) and whose __metadata__ holds the op attributes as strings.
 * golden_get() returns a tensor as floats, converted from its stored dtype,
 * and optionally re-laid out from NCHW to NHWC (4-D tensors only).  The
 * returned arrays belong to the golden handle and are freed by
 * golden_close().
 */
#ifndef DCL_TEST_GOLDEN_H
#define DCL_TEST_GOLDEN_H
#include "dcl/core.h"
#include "dcl/tensor.h"
#include "dcl/io.h"

typedef struct golden golden;

typedef struct golden_tensor {
    float *data;                 /* numel floats, owned by the golden handle */
    int ndim;
    int64_t shape[DCL_MAX_DIMS]; /* PyTorch's logical shape (N,C,H,W for 4-D) */
    int64_t numel;
    int nhwc;                    /* data was converted to NHWC */
} golden_tensor;

enum { GOLDEN_AS_IS = 0, GOLDEN_NHWC = 1 };

/* Directory of the fixtures: $DCL_FIXTURES, else "tests/fixtures" (the test
 * runner runs from the repository root). */
const char *golden_dir(void);
/* "<golden_dir()>/<rel>" into buf; returns buf. */
const char *golden_path(char *buf, size_t n, const char *rel);

/* Opens a fixture; rel is relative to golden_dir() unless it starts with '/'. */
dcl_status golden_open(golden **out, const char *rel);
void golden_close(golden *g);
const char *golden_name(const golden *g);   /* the path it was opened with */
const dcl_st *golden_st(const golden *g);   /* the underlying safetensors handle */

/* Tensors.  golden_get returns NULL (error recorded, naming file and tensor)
 * when the tensor is absent or a conversion fails; layout GOLDEN_NHWC
 * converts a 4-D tensor from NCHW to NHWC and leaves other ranks as they
 * are.  golden_get_shape additionally requires the given logical shape. */
int golden_has(const golden *g, const char *name);
const golden_tensor *golden_get(golden *g, const char *name, int layout);
const golden_tensor *golden_get_shape(golden *g, const char *name, int layout,
                                      int ndim, const int64_t *shape);
int golden_count(const golden *g);
const char *golden_tensor_name(const golden *g, int i);   /* file order; NULL past the end */

/* Metadata.  golden_meta returns NULL when absent.  golden_meta_ints parses a
 * comma-separated integer list ("1,0,1,0") and returns how many values it
 * read, or -1 (error recorded) when the key is absent, malformed, or has
 * more than max values.  golden_meta_int / golden_meta_double return 0, or
 * -1 (error recorded) when the key is absent or malformed. */
const char *golden_meta(const golden *g, const char *key);
int golden_meta_ints(const golden *g, const char *key, int *out, int max);
int golden_meta_int(const golden *g, const char *key, int *out);
int golden_meta_double(const golden *g, const char *key, double *out);

/* Fresh malloc'ed copy of n floats (free with free()). */
float *golden_dup(const float *src, int64_t n);

#endif
