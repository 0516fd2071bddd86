/* Tensors and named tensor tables.
 *
 * Logical dimension order is PyTorch's: (N, C, H, W) for images and feature
 * maps.  PHYSICAL storage of 4-D activations is channels-last (NHWC): element
 * (n,c,h,w) lives at ((n*H + h)*W + w)*C + c.  Weights keep PyTorch's own
 * layouts: conv weight (O, I/groups, KH, KW) contiguous, linear weight (O, I).
 */
#ifndef DCL_TENSOR_H
#define DCL_TENSOR_H
#include "dcl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DCL_MAX_DIMS 8
#define DCL_NAME_MAX 128

typedef enum dcl_dtype {
    DCL_F32 = 0, DCL_F64, DCL_F16, DCL_BF16, DCL_I64, DCL_I32, DCL_U8, DCL_I8, DCL_BOOL
} dcl_dtype;
size_t dcl_dtype_size(dcl_dtype t);
const char *dcl_dtype_name(dcl_dtype t);       /* safetensors spelling: "F32" ... */
int dcl_dtype_from_name(const char *s, dcl_dtype *out); /* 0 ok, -1 unknown */

typedef struct dcl_tensor {
    void *data;
    dcl_dtype dtype;
    int ndim;
    int64_t shape[DCL_MAX_DIMS];
} dcl_tensor;

int64_t dcl_shape_numel(int ndim, const int64_t *shape);
static inline int64_t dcl_tensor_numel(const dcl_tensor *t) { return dcl_shape_numel(t->ndim, t->shape); }
/* "[2, 3, 4]" into buf */
const char *dcl_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* NCHW <-> NHWC copies (float), used at API boundaries and in tests. */
void dcl_nchw_to_nhwc(float *dst, const float *src, int n, int c, int h, int w);
void dcl_nhwc_to_nchw(float *dst, const float *src, int n, int c, int h, int w);

/* ---- named tensor table: one contiguous float buffer, named views ---- *
 * Used for parameters, their gradients and optimizer moments (same offsets),
 * and for buffers (BN running statistics).  Names are PyTorch state_dict keys.
 */
enum {
    DCL_PF_NO_DECAY = 1,   /* excluded from weight decay (unused by default: PyTorch Adam decays all) */
    DCL_PF_BUFFER = 2,     /* not trained (running_mean / running_var) */
    DCL_PF_COUNTER = 4     /* integer counter stored as float, saved as I64 (num_batches_tracked) */
};
typedef struct dcl_named {
    char name[DCL_NAME_MAX];
    int ndim;
    int64_t shape[4];
    int64_t numel;
    size_t offset;         /* in floats from the table's base */
    unsigned flags;
} dcl_named;

typedef struct dcl_table {
    dcl_named *v;
    int n, cap;
    size_t total;          /* floats, each entry padded to 16 floats */
} dcl_table;

void dcl_table_init(dcl_table *t);
void dcl_table_free(dcl_table *t);
/* Adds an entry; returns its index or -1 (error set) */
int dcl_table_add(dcl_table *t, const char *name, int ndim, const int64_t *shape, unsigned flags);
int dcl_table_find(const dcl_table *t, const char *name); /* -1 if absent */

#ifdef __cplusplus
}
#endif
#endif
