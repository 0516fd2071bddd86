#include "backend/backend.h"
#include <stdlib.h>
#include <string.h>

static dcl_backend *create_base(const char *spec, int threads);

/* "SPEC" or "SPEC,PRECISION" with PRECISION fp32 (the default) or bf16
 * (activations stored in bf16: dcl_backend_bf16). */
dcl_backend *dcl_backend_create(const char *spec, int threads) {
    const char *comma = spec ? strchr(spec, ',') : NULL;
    if (!comma) return create_base(spec, threads);
    char base[64];
    size_t n = (size_t)(comma - spec);
    if (n == 0) { dcl_fail(DCL_ERR_ARG, "device '%s' names no backend before the comma (e.g. cpu,bf16)", spec); return NULL; }
    if (n >= sizeof base) { dcl_fail(DCL_ERR_ARG, "device '%s' is too long", spec); return NULL; }
    memcpy(base, spec, n);
    base[n] = 0;
    const char *prec = comma + 1;
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16")) {
        dcl_fail(DCL_ERR_ARG, "unknown precision '%s' in device '%s' (expected fp32 or bf16, e.g. cuda:0,bf16)", prec, spec);
        return NULL;
    }
    dcl_backend *be = create_base(base, threads);
    if (!be || strcmp(prec, "bf16")) return be;
    return dcl_backend_bf16(be);
}

static dcl_backend *create_base(const char *spec, int threads) {
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
    dcl_fail(DCL_ERR_ARG, "unknown device '%s' (expected ref, cpu, cuda or cuda:N, optionally followed by ,bf16)", spec);
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
