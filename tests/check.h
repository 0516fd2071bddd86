/* Minimal test helpers: every failed check prints file:line and a message;
 * CHECK_DONE() prints a summary and returns non-zero when anything failed. */
#ifndef DCL_TEST_CHECK_H
#define DCL_TEST_CHECK_H
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_count_, check_failed_;

/* The tests compare against fp32 references: a CUDA backend they create
 * computes in strict fp32 (no TF32 tensor cores) unless DCL_CUDA_TF32 is set
 * in the environment already. */
__attribute__((constructor)) static void check_strict_fp32_(void) { setenv("DCL_CUDA_TF32", "0", 0); }

#define CHECK(cond, ...) do { check_count_++; if (!(cond)) { check_failed_++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

#define CHECK_OK(expr) do { int s_ = (expr); check_count_++; if (s_ != 0) { check_failed_++; \
    fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, s_, dcl_last_error()); } } while (0)

/* max |a-b| / (atol + rtol*|b|) <= 1 over n floats; reports worst index */
static inline int check_close_(const char *file, int line, const char *what, const float *a,
                               const float *b, long n, double atol, double rtol) {
    long worst = -1; double wr = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (atol + rtol * fabs((double)b[i]));
        if (!(r <= 1.0) && (worst < 0 || !(r <= wr))) { worst = i; wr = r; if (isnan(r)) break; }
        else if (r > wr) wr = r;
    }
    check_count_++;
    if (worst >= 0) {
        check_failed_++;
        fprintf(stderr, "%s:%d: %s: mismatch at %ld of %ld: got %.8g want %.8g (ratio %.3g, atol %g rtol %g)\n",
                file, line, what, worst, n, a[worst], b[worst], wr, atol, rtol);
        return 0;
    }
    return 1;
}
#define CHECK_CLOSE(what, a, b, n, atol, rtol) check_close_(__FILE__, __LINE__, what, a, b, n, atol, rtol)

#define CHECK_DONE() do { printf("%s: %d checks, %d failed\n", __FILE__, check_count_, check_failed_); \
    return check_failed_ ? 1 : 0; } while (0)

#endif
