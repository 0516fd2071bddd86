#include "cli/cli.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_exit_code(dcl_status s) {
    if (s == DCL_OK) return DCL_EXIT_OK;
    if (s == DCL_ERR_ARG) return DCL_EXIT_USAGE;
    return DCL_EXIT_FAIL;
}

int cli_fail(const char *cmd, dcl_status s) {
    fprintf(stderr, "dcl %s: %s\n", cmd, dcl_last_error());
    return cli_exit_code(s);
}

int cli_parse_workers(const char *s, int *out) {
    if (!strcmp(s, "auto")) { *out = 0; return 0; }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > 256) return -1;
    *out = (int)v;
    return 0;
}
