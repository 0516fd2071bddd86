/* Reference pooling (float and double from pool_impl.h). */
#include "nn/ref_common.h"

#define T float
#define FN(name) name##_f32
#include "nn/pool_impl.h"
#undef T
#undef FN

#define T double
#define FN(name) name##_f64
#include "nn/pool_impl.h"
#undef T
#undef FN
