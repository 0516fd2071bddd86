#include "backend/backend.h"
#include <stdlib.h>
#include <string.h>

dcl_backend *dcl_backend_create(const char *spec, int threads) {
    if (!spec || !*spec || strcmp(spec, "cpu") == 0) {
        dcl_backend *be = dcl_backend_cpu(threads);
        return be;
    }
    if (strcmp(spec, "ref") == 0) return dcl_backend_ref();
    if (strncmp(spec, "cuda", 4) == 0) {
        int dev = 0;
        if (spec[4] == ':') {
            char *end;
            long v = strtol(spec + 5, &end, 10);
            if (*end || v < 0 || v > 1024) { dcl_fail(DCL_ERR_ARG, "bad device '%s' (expected cuda or cuda:N)", spec); return NULL; }
            dev = (int)v;
        } else if (spec[4]) {
            dcl_fail(DCL_ERR_ARG, "unknown device '%s' (expected ref, cpu, cuda or cuda:N)", spec);
            return NULL;
        }
        return dcl_backend_cuda(dev);
    }
    dcl_fail(DCL_ERR_ARG, "unknown device '%s' (expected ref, cpu, cuda or cuda:N)", spec);
    return NULL;
}

void dcl_backend_destroy(dcl_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

#ifndef DCL_HAVE_CUDA
dcl_backend *dcl_backend_cuda(int device) {
    (void)device;
    dcl_fail(DCL_ERR_UNSUPPORTED, "this build of dcl has no CUDA support (rebuild with nvcc and cuDNN installed)");
    return NULL;
}
#endif
