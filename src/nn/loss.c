/* Softmax, losses and L2 normalisation (float and double from loss_impl.h). */
#include "nn/ref_common.h"

#define T float
#define FN(name) name##_f32
#include "nn/loss_impl.h"
#undef T
#undef FN

#define T double
#define FN(name) name##_f64
#include "nn/loss_impl.h"
#undef T
#undef FN
