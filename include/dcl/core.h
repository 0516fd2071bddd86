/* dcl core: status codes, errors, context, rng, arena.
 *
 * Conventions used across the library:
 *  - Functions return dcl_status (0 = DCL_OK). On failure they record a
 *    one-line message naming what was wrong (file, tensor, expected vs found);
 *    read it with dcl_last_error(). The message is per thread, like errno.
 *  - Library code never exits the process.
 *  - Signatures put outputs first, then inputs, then sizes (where practical).
 *  - Parameter gradients accumulate (+=); activation gradients are assigned.
 */
#ifndef DCL_CORE_H
#define DCL_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_status {
    DCL_OK = 0,
    DCL_ERR_ARG = 1,         /* bad argument from the caller */
    DCL_ERR_IO = 2,          /* file could not be opened / read / written */
    DCL_ERR_FORMAT = 3,      /* malformed file content */
    DCL_ERR_SHAPE = 4,       /* tensor shape mismatch */
    DCL_ERR_NOMEM = 5,       /* allocation failed */
    DCL_ERR_UNSUPPORTED = 6, /* op / configuration not supported */
    DCL_ERR_NOTFOUND = 7,    /* named thing missing */
    DCL_ERR_INTERNAL = 8,    /* library bug or backend failure */
    DCL_ERR_INTERRUPTED = 9  /* stopped by a signal / user request */
} dcl_status;

/* Record a formatted message for the current thread and return code. */
dcl_status dcl_fail(dcl_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context ("loading X: <old msg>"). */
dcl_status dcl_fail_ctx(dcl_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *dcl_last_error(void);
void dcl_clear_error(void);
const char *dcl_status_name(dcl_status s);

#define DCL_TRY(expr) do { dcl_status _s = (expr); if (_s != DCL_OK) return _s; } while (0)

/* ---- random numbers: xoshiro256** seeded by splitmix64; reproducible ---- */
typedef struct dcl_rng { uint64_t s[4]; } dcl_rng;
void dcl_rng_seed(dcl_rng *r, uint64_t seed);
uint64_t dcl_rng_u64(dcl_rng *r);
uint32_t dcl_rng_u32(dcl_rng *r);
double dcl_rng_uniform(dcl_rng *r);          /* [0,1) */
uint32_t dcl_rng_below(dcl_rng *r, uint32_t n); /* [0,n) unbiased */
double dcl_rng_normal(dcl_rng *r);           /* N(0,1), Box-Muller, no cached state */
/* Independent stream derived from r (r advances). */
dcl_rng dcl_rng_split(dcl_rng *r);

/* ---- arena: one aligned block, bump allocation, marks ---- */
typedef struct dcl_arena {
    uint8_t *base;
    size_t cap, used, peak;
    int owns;
} dcl_arena;
#define DCL_ALIGN 64
dcl_status dcl_arena_init(dcl_arena *a, size_t cap);
/* Use caller-provided memory (e.g. device memory); not freed by destroy. */
void dcl_arena_wrap(dcl_arena *a, void *mem, size_t cap);
void dcl_arena_destroy(dcl_arena *a);
void *dcl_arena_alloc(dcl_arena *a, size_t bytes); /* NULL when full */
size_t dcl_arena_mark(const dcl_arena *a);
void dcl_arena_reset(dcl_arena *a, size_t mark);
static inline size_t dcl_align_up(size_t x) { return (x + DCL_ALIGN - 1) & ~(size_t)(DCL_ALIGN - 1); }

/* aligned heap helpers (64 bytes) */
void *dcl_alloc(size_t bytes);
void *dcl_calloc(size_t bytes);
void dcl_free(void *p);
/* Large buffers (8 MB and more) on 2 MB boundaries, marked for transparent
 * huge pages (the kernel's "madvise" mode) unless DCL_NO_HUGEPAGE is set:
 * passes over them miss the TLB once per 2 MB instead of once per 4 KB;
 * smaller ones as dcl_alloc.  Freed with dcl_free. */
void *dcl_alloc_big(size_t bytes);

/* ---- misc ---- */
/* mkdir -p; 0 on success, -1 with errno set. */
int dcl_mkdir_p(const char *path);
double dcl_now(void);          /* monotonic seconds */
long dcl_peak_rss_kb(void);    /* peak resident set size of this process */
int dcl_num_threads(void);
void dcl_set_num_threads(int n);

/* Logging to stderr; level 0=error 1=warn 2=info 3=debug. */
void dcl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int dcl_log_level; /* the single process-wide knob: verbosity */

#ifdef __cplusplus
}
#endif
#endif
