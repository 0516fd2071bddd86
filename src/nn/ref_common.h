/* Shared pieces of the reference kernels.  Each *_impl.h file is written
 * once in terms of a scalar type T and a name macro FN(name), and included
 * twice by its .c file: T=float with suffix _f32, T=double with _f64. */
#ifndef DCL_NN_REF_COMMON_H
#define DCL_NN_REF_COMMON_H
#include "dcl/nn.h"
#include <math.h>
#include <string.h>

/* accumulator of every reduction, in both precisions */
typedef double dcl_acc;

/* Validate a completed descriptor (sizes positive, groups dividing the
 * channels, output size consistent with the rest). */
dcl_status dcl_nn_check_conv(const char *op, const dcl_conv_desc *d);
dcl_status dcl_nn_check_pool(const char *op, const dcl_pool_desc *d);

#define NN_NEED(op, p) do { if (!(p)) return dcl_fail(DCL_ERR_ARG, "%s: %s is NULL", op, #p); } while (0)
#define NN_POS(op, v) do { if ((v) <= 0) return dcl_fail(DCL_ERR_SHAPE, "%s: %s must be positive (got %lld)", \
                                                          op, #v, (long long)(v)); } while (0)

#endif
