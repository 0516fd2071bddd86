/* Shared helpers for the subcommands. */
#ifndef DCL_CLI_H
#define DCL_CLI_H
#include "dcl/core.h"

/* exit codes */
enum { DCL_EXIT_OK = 0, DCL_EXIT_FAIL = 1, DCL_EXIT_USAGE = 2, DCL_EXIT_PARTIAL = 3 };

/* Prints "dcl CMD: <last error>" and returns the exit code for status s. */
int cli_fail(const char *cmd, dcl_status s);
/* Exit code for a status. */
int cli_exit_code(dcl_status s);
/* "a,b,c" -> three floats; 0 on success. */
int cli_parse_floats3(const char *s, float out[3]);
/* --workers: "auto" -> 0 (resolved by dcl_loader_workers) or a count in
 * 1..256; 0 on success. */
int cli_parse_workers(const char *s, int *out);
#endif
