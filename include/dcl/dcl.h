/* Umbrella header of the dcl library. */
#ifndef DCL_DCL_H
#define DCL_DCL_H
#include "dcl/core.h"
#include "dcl/tensor.h"
#endif
