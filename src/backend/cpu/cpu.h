/* Extensions of the cpu backend beyond the backend vtable. */
#ifndef DCL_BACKEND_CPU_H
#define DCL_BACKEND_CPU_H
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Convolution forward followed by an activation: y = act(conv(x, w) + b)
 * (the backend vtable's conv_fwd_act).  The activation runs inside the
 * convolution (oneDNN post-op) when each output takes many multiply-adds,
 * else as its own vectorised pass, which measured cheaper (cpu_conv.c).
 * For inference, where a following batch norm can be folded into w and b,
 * conv + bn + act is one call.  be must be a backend made by
 * dcl_backend_cpu. */
dcl_status dcl_cpu_conv_fwd_act(dcl_backend *be, const dcl_conv_desc *d, dcl_act act,
                                float *y, const float *x, const float *w, const float *b);

#ifdef __cplusplus
}
#endif
#endif
