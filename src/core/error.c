#include "dcl/core.h"
#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[1024];

dcl_status dcl_fail(dcl_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

dcl_status dcl_fail_ctx(dcl_status code, const char *fmt, ...) {
    char prev[sizeof g_err], pre[512];
    memcpy(prev, g_err, sizeof prev);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    if (prev[0]) snprintf(g_err, sizeof g_err, "%s: %s", pre, prev);
    else snprintf(g_err, sizeof g_err, "%s", pre);
    return code;
}

const char *dcl_last_error(void) { return g_err[0] ? g_err : "no error recorded"; }
void dcl_clear_error(void) { g_err[0] = 0; }

const char *dcl_status_name(dcl_status s) {
    switch (s) {
    case DCL_OK: return "ok";
    case DCL_ERR_ARG: return "invalid argument";
    case DCL_ERR_IO: return "i/o error";
    case DCL_ERR_FORMAT: return "malformed input";
    case DCL_ERR_SHAPE: return "shape mismatch";
    case DCL_ERR_NOMEM: return "out of memory";
    case DCL_ERR_UNSUPPORTED: return "unsupported";
    case DCL_ERR_NOTFOUND: return "not found";
    case DCL_ERR_INTERNAL: return "internal error";
    case DCL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
