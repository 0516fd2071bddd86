/* Data-parallel training across processes (docs/DISTRIBUTED.md).
 *
 * One process per rank, launched by `mpirun -np N dcl train ...` (or srun).
 * dcl_dist_init reads the launcher's environment: under mpirun / a PMI
 * launcher it initialises MPI (builds with DCL_HAVE_MPI), otherwise it is a
 * single rank and every collective is a local copy.  Device buffers of a
 * CUDA backend are all-reduced with NCCL when the build has DCL_HAVE_NCCL
 * (the NCCL communicator is bootstrapped by broadcasting its unique id over
 * MPI; one rank needs no MPI); otherwise they are staged through host
 * memory.  Host backends' memory is host memory and goes to MPI directly.
 *
 * Failure: MPI calls return errors (MPI_ERRORS_RETURN) that become dcl
 * errors naming the rank and the operation; a watchdog thread ends the whole
 * job (MPI_Abort) when one collective waits longer than `timeout` seconds
 * (a peer died or hangs); a process that leaves with a failed training run
 * aborts the job at exit so that no peer waits for it.
 *
 * The MPI state is per process: MPI is initialised by the first
 * dcl_dist_init and finalised at process exit, so a process may train more
 * than once.  Collectives must be called by every rank in the same order.
 */
#ifndef DCL_DIST_H
#define DCL_DIST_H
#include "dcl/core.h"
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dcl_dist_kind {
    DCL_DIST_AUTO = 0,   /* NCCL for a CUDA backend when built with it, else MPI / host */
    DCL_DIST_HOST = 1,   /* device buffers staged through host memory, MPI collectives */
    DCL_DIST_NCCL = 2    /* device buffers through NCCL (CUDA backend; error without NCCL) */
} dcl_dist_kind;
/* "auto", "mpi" (= host staging), "nccl"; 0 ok, -1 unknown */
int dcl_dist_kind_from_name(const char *s, dcl_dist_kind *out);

typedef struct dcl_dist_opts {
    double timeout;      /* seconds one collective may wait before the job is aborted; 0 = 300 */
    dcl_dist_kind kind;  /* how device buffers are reduced */
} dcl_dist_opts;

typedef struct dcl_dist dcl_dist;

/* 1 when this build has MPI (DCL_HAVE_MPI) / NCCL (DCL_HAVE_NCCL). */
int dcl_dist_have_mpi(void);
int dcl_dist_have_nccl(void);
/* Size of the job announced by the launcher's environment
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX / Slurm variables); 0 when the
 * process was not started by an MPI launcher. */
int dcl_dist_env_world(void);
/* Rank of this process: MPI's when initialised, else the launcher's
 * environment, else 0 (e.g. to print a summary on rank 0 only). */
int dcl_dist_process_rank(void);

/* Joins the job described by the environment (MPI_Init on first use) or
 * makes a single-rank context.  opts may be NULL (defaults).  Fails with a
 * clear message when launched with several processes by a build without MPI. */
dcl_status dcl_dist_init(dcl_dist **out, const dcl_dist_opts *opts);
/* Releases the context.  `result` is the outcome of the work done with it:
 * when it is an error and the job has several ranks, the process will abort
 * the whole job when it exits (peers may be waiting in a collective). */
void dcl_dist_free(dcl_dist *d, dcl_status result);

/* Finalises MPI now instead of at process exit (aborts the job instead when
 * a run failed on this rank); no distributed context can be made afterwards. */
dcl_status dcl_dist_finalize(void);

int dcl_dist_rank(const dcl_dist *d);
int dcl_dist_world(const dcl_dist *d);
int dcl_dist_local_rank(const dcl_dist *d);   /* rank among the processes of this host */
int dcl_dist_local_size(const dcl_dist *d);   /* processes of the job on this host (1 without MPI) */
/* "single", "mpi" or "nccl" (the path device buffers take). */
const char *dcl_dist_backend_name(const dcl_dist *d);

/* Device spec for this rank: "cuda" becomes "cuda:<local rank modulo the
 * visible devices>" when the job has several ranks; other specs are copied. */
dcl_status dcl_dist_device_spec(dcl_dist *d, char *out, size_t n, const char *spec);
/* Binds the context to the backend whose buffers it will reduce (creates the
 * NCCL communicator for a CUDA backend when NCCL is chosen).  Collective. */
dcl_status dcl_dist_attach(dcl_dist *d, dcl_backend *be);

/* ---- collectives (every rank, same order) ---- */
/* buf (n floats in be's memory) = mean over ranks of buf. */
dcl_status dcl_dist_allreduce_mean(dcl_dist *d, dcl_backend *be, float *buf, size_t n);
/* host doubles: buf = sum over ranks */
dcl_status dcl_dist_allreduce_sum_f64(dcl_dist *d, double *buf, int n);
/* host ints: buf = max over ranks */
dcl_status dcl_dist_allreduce_max_int(dcl_dist *d, int *buf, int n);
/* recv (world * bytes) = every rank's `bytes` of send, in rank order. */
dcl_status dcl_dist_allgather(dcl_dist *d, void *recv, const void *send, size_t bytes);
/* host bytes from root to every rank */
dcl_status dcl_dist_bcast(dcl_dist *d, void *buf, size_t bytes, int root);
/* n floats in be's memory from root to every rank */
dcl_status dcl_dist_bcast_dev(dcl_dist *d, dcl_backend *be, float *buf, size_t n, int root);
dcl_status dcl_dist_barrier(dcl_dist *d);
/* Combines every rank's status: returns s when it is an error, an error
 * naming the failed ranks when another rank failed, DCL_OK when all succeeded. */
dcl_status dcl_dist_agree(dcl_dist *d, dcl_status s, const char *what);
/* Ends every process of the job now with exit code `code` after printing
 * msg (one line, may be NULL).  Single rank: returns (nothing to end). */
void dcl_dist_abort(dcl_dist *d, int code, const char *msg);

/* All-gather with the signature of the net's sync-BN hook (ctx = dcl_dist*):
 * recv (world * n doubles) in rank order. */
dcl_status dcl_dist_gather_f64(void *ctx, double *recv, const double *send, int n);

/* 64-bit FNV-1a of bytes, chained from h (start with 0); for comparing
 * replicated state across ranks. */
uint64_t dcl_dist_hash(uint64_t h, const void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
