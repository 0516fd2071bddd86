#include "cli/cli.h"
#include <stdio.h>

int cli_exit_code(dcl_status s) {
    if (s == DCL_OK) return DCL_EXIT_OK;
    if (s == DCL_ERR_ARG) return DCL_EXIT_USAGE;
    return DCL_EXIT_FAIL;
}

int cli_fail(const char *cmd, dcl_status s) {
    fprintf(stderr, "dcl %s: %s\n", cmd, dcl_last_error());
    return cli_exit_code(s);
}
