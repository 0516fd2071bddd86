/* Data-parallel collectives over MPI (DCL_HAVE_MPI) and NCCL (DCL_HAVE_NCCL
 * with DCL_HAVE_CUDA); a single-rank implementation otherwise.  See
 * include/dcl/dist.h and docs/DISTRIBUTED.md. */
#define _GNU_SOURCE
#include "dcl/dist.h"
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef DCL_HAVE_MPI
#include <mpi.h>
#endif
#if defined(DCL_HAVE_NCCL) && defined(DCL_HAVE_CUDA)
#define DIST_NCCL 1
#include <cuda_runtime.h>
#include <nccl.h>
#endif
#ifdef DCL_HAVE_CUDA
#include <cuda_runtime_api.h>
#include "backend/cuda/cuda_backend.h"
#endif

struct dcl_dist {
    int rank, world, local_rank, local_size;
    int use_mpi;              /* collectives go through MPI */
    int nccl;                 /* device buffers through NCCL */
    dcl_dist_kind kind;
    double timeout;
    int device;               /* CUDA device of this rank */
    dcl_backend *be;
    float *stage;             /* host staging of device buffers */
    size_t stage_n;
#ifdef DIST_NCCL
    ncclComm_t comm;
    cudaStream_t stream;
#endif
};

/* ------------------------------------------------------------------ */
/* process-wide state: MPI, the watchdog                               */
/* ------------------------------------------------------------------ */

static struct {
    int mpi_on;               /* MPI initialised and in use by dcl */
    int owns_mpi;             /* we called MPI_Init (and finalise it at exit) */
    int thread_level;
    int rank, world, local_rank, local_size;
    int failed;               /* a run failed on this rank: abort the job at exit */
    int finalized;
    double timeout;
    pthread_mutex_t mu;
    int wd_started;
    const char *busy_op;      /* collective in progress (NULL: none) */
    double busy_since;
#ifdef DCL_HAVE_MPI
    MPI_Comm comm;
#endif
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .world = 1, .timeout = 300};

int dcl_dist_have_mpi(void) {
#ifdef DCL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int dcl_dist_have_nccl(void) {
#ifdef DIST_NCCL
    return 1;
#else
    return 0;
#endif
}

int dcl_dist_kind_from_name(const char *s, dcl_dist_kind *out) {
    if (!s) return -1;
    if (!strcmp(s, "auto")) *out = DCL_DIST_AUTO;
    else if (!strcmp(s, "mpi") || !strcmp(s, "host")) *out = DCL_DIST_HOST;
    else if (!strcmp(s, "nccl")) *out = DCL_DIST_NCCL;
    else return -1;
    return 0;
}

static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end || x < 0 || x > INT_MAX) ? -1 : (int)x;
}

int dcl_dist_env_world(void) {
    static const char *sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE", NULL};
    for (int i = 0; sizes[i]; i++) {
        int v = env_int(sizes[i]);
        if (v > 0) return v;
    }
    if (getenv("PMIX_RANK")) { /* PMIx launchers (srun --mpi=pmix, prterun) */
        int v = env_int("SLURM_STEP_NUM_TASKS");
        if (v <= 0) v = env_int("SLURM_NTASKS");
        return v > 0 ? v : 1;
    }
    /* a task of an srun step without an MPI plugin: MPI would see singletons
     * (reported by dcl_dist_init rather than training copies side by side) */
    int v = env_int("SLURM_STEP_NUM_TASKS");
    if (v > 1 && env_int("SLURM_PROCID") >= 0 && env_int("SLURM_STEP_ID") >= 0) return v;
    return 0;
}

int dcl_dist_process_rank(void) {
    if (G.mpi_on) return G.rank;
    static const char *ranks[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", NULL};
    for (int i = 0; ranks[i]; i++) {
        int v = env_int(ranks[i]);
        if (v >= 0) return v;
    }
    return 0;
}

__attribute__((unused)) static void busy_begin(const char *op) {
    pthread_mutex_lock(&G.mu);
    G.busy_op = op;
    G.busy_since = dcl_now();
    pthread_mutex_unlock(&G.mu);
}

__attribute__((unused)) static void busy_end(void) {
    pthread_mutex_lock(&G.mu);
    G.busy_op = NULL;
    pthread_mutex_unlock(&G.mu);
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&G.mu);
        const char *op = G.busy_op;
        double waited = op ? dcl_now() - G.busy_since : 0, limit = G.timeout;
        pthread_mutex_unlock(&G.mu);
        if (!op || waited <= limit) continue;
        fprintf(stderr, "dcl: rank %d/%d: %s waited %.0f s for the other ranks (train.dist_timeout %.0f s): "
                        "a rank died or hangs; aborting the job\n", G.rank, G.world, op, waited, limit);
        fflush(stderr);
#ifdef DCL_HAVE_MPI
        if (G.thread_level >= MPI_THREAD_MULTIPLE) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
        _exit(1);
    }
    return NULL;
}

__attribute__((unused)) static void start_watchdog(void) {
    if (G.wd_started) return;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, watchdog, NULL) == 0) G.wd_started = 1;
    else dcl_log(1, "distributed: cannot start the watchdog thread; a dead rank may hang the job");
    pthread_attr_destroy(&a);
}

#ifdef DCL_HAVE_MPI
static dcl_status mpi_fail(int rc, const char *op) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = 0;
    G.failed = 1;
    return dcl_fail(DCL_ERR_IO, "rank %d/%d: MPI %s failed: %s", G.rank, G.world, op, len ? msg : "unknown error");
}
#define MPI_TRY(op, call) do { busy_begin(op); int rc_ = (call); busy_end(); \
    if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, op); } while (0)

static void at_exit(void) {
    if (!G.mpi_on || G.finalized) return;
    G.finalized = 1;
    if (G.failed && G.world > 1) {
        fprintf(stderr, "dcl: rank %d/%d failed; ending the whole job\n", G.rank, G.world);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return;
    }
    if (!G.owns_mpi) return;
    busy_begin("MPI_Finalize");
    MPI_Finalize();
    busy_end();
}

static dcl_status mpi_start(void) {
    if (G.finalized) return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: MPI was already finalised in this process");
    if (G.mpi_on) return DCL_OK;
    int flag = 0, rc;
    MPI_Initialized(&flag);
    if (!flag) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (fin) return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: MPI was already finalised in this process");
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &G.thread_level);
        if (rc != MPI_SUCCESS) return dcl_fail(DCL_ERR_IO, "distributed: MPI_Init_thread failed (code %d)", rc);
        G.owns_mpi = 1;
    } else {
        MPI_Query_thread(&G.thread_level);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &G.comm);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "Comm_dup");
    MPI_Comm_set_errhandler(G.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(G.comm, &G.rank);
    MPI_Comm_size(G.comm, &G.world);
    MPI_Comm local;
    G.local_rank = 0;
    G.local_size = 1;
    if (MPI_Comm_split_type(G.comm, MPI_COMM_TYPE_SHARED, G.rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &G.local_rank);
        MPI_Comm_size(local, &G.local_size);
        MPI_Comm_free(&local);
    }
    G.mpi_on = 1;
    atexit(at_exit);
    start_watchdog();
    return DCL_OK;
}
#endif

/* ------------------------------------------------------------------ */
/* contexts                                                             */
/* ------------------------------------------------------------------ */

dcl_status dcl_dist_init(dcl_dist **out, const dcl_dist_opts *opts) {
    *out = NULL;
    int envw = dcl_dist_env_world();
    dcl_dist *d = calloc(1, sizeof *d);
    if (!d) return dcl_fail(DCL_ERR_NOMEM, "distributed context");
    d->timeout = opts && opts->timeout > 0 ? opts->timeout : 300;
    d->kind = opts ? opts->kind : DCL_DIST_AUTO;
    d->world = 1;
    if (envw > 0) {
#ifdef DCL_HAVE_MPI
        dcl_status s = mpi_start();
        if (s) { free(d); return s; }
        d->use_mpi = 1;
        d->rank = G.rank;
        d->world = G.world;
        d->local_rank = G.local_rank;
        d->local_size = G.local_size;
        if (envw > 1 && G.world == 1) {
            free(d);
            return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: the launcher started %d processes but MPI connects only this "
                                                 "one; launch with mpirun, or srun --mpi=pmix / pmi2", envw);
        }
#else
        if (envw > 1) {
            free(d);
            return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: started as one of %d processes by an MPI launcher, but this dcl "
                                                 "was built without MPI (install an MPI, e.g. libopenmpi-dev, and rebuild: DCL_HAVE_MPI); "
                                                 "refusing to train %d independent copies", envw, envw);
        }
#endif
    }
    pthread_mutex_lock(&G.mu);
    G.timeout = d->timeout;
    pthread_mutex_unlock(&G.mu);
    *out = d;
    return DCL_OK;
}

void dcl_dist_free(dcl_dist *d, dcl_status result) {
    if (!d) return;
    if (result != DCL_OK && d->world > 1) G.failed = 1;
#ifdef DIST_NCCL
    if (d->nccl) {
        if (result != DCL_OK) ncclCommAbort(d->comm);
        else ncclCommDestroy(d->comm);
        cudaStreamDestroy(d->stream);
    }
#endif
    free(d->stage);
    free(d);
}

dcl_status dcl_dist_finalize(void) {
#ifdef DCL_HAVE_MPI
    if (!G.mpi_on || G.finalized) return DCL_OK;
    if (G.failed && G.world > 1) {
        at_exit(); /* aborts the job */
        return DCL_OK;
    }
    G.finalized = 1;
    if (!G.owns_mpi) return DCL_OK;
    busy_begin("MPI_Finalize");
    int rc = MPI_Finalize();
    busy_end();
    if (rc != MPI_SUCCESS) return dcl_fail(DCL_ERR_IO, "rank %d/%d: MPI_Finalize failed (code %d)", G.rank, G.world, rc);
#endif
    return DCL_OK;
}

int dcl_dist_rank(const dcl_dist *d) { return d ? d->rank : 0; }
int dcl_dist_world(const dcl_dist *d) { return d ? d->world : 1; }
int dcl_dist_local_rank(const dcl_dist *d) { return d ? d->local_rank : 0; }
int dcl_dist_local_size(const dcl_dist *d) { return d && d->local_size > 0 ? d->local_size : 1; }

const char *dcl_dist_backend_name(const dcl_dist *d) {
    if (!d) return "single";
    if (d->nccl) return "nccl";
    return d->use_mpi ? "mpi" : "single";
}

dcl_status dcl_dist_device_spec(dcl_dist *d, char *out, size_t n, const char *spec) {
    if (!spec) spec = "";
    d->device = 0;
    /* a precision suffix (",bf16") stays on the spec */
    const char *suffix = strchr(spec, ',');
    if (!suffix) suffix = "";
    if (!strncmp(spec, "cuda", 4) && spec[4] == ':') d->device = atoi(spec + 5);
    if (!strncmp(spec, "cuda", 4) && (spec[4] == 0 || spec[4] == ',') && d->world > 1) {
        int ndev = 1;
#ifdef DCL_HAVE_CUDA
        if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1)
            return dcl_fail(DCL_ERR_UNSUPPORTED, "rank %d/%d: no CUDA device visible", d->rank, d->world);
#endif
        d->device = d->local_rank % ndev;
        if ((size_t)snprintf(out, n, "cuda:%d%s", d->device, suffix) >= n) return dcl_fail(DCL_ERR_ARG, "device spec buffer too small");
        return DCL_OK;
    }
    if ((size_t)snprintf(out, n, "%s", spec) >= n) return dcl_fail(DCL_ERR_ARG, "device spec '%s' too long", spec);
    return DCL_OK;
}

#ifdef DIST_NCCL
static dcl_status nccl_fail(ncclResult_t r, const char *op) {
    G.failed = 1;
    return dcl_fail(DCL_ERR_IO, "rank %d/%d: NCCL %s failed: %s", G.rank, G.world, op, ncclGetErrorString(r));
}
#define NCCL_TRY(op, call) do { busy_begin(op); ncclResult_t r_ = (call); busy_end(); \
    if (r_ != ncclSuccess) return nccl_fail(r_, op); } while (0)
#define CUDA_TRY(op, call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return dcl_fail(DCL_ERR_INTERNAL, "rank %d/%d: %s: %s", d->rank, d->world, op, cudaGetErrorString(e_)); } while (0)

/* Waits for the collective queued on the communicator's stream; busy (a
 * string literal: the watchdog keeps the pointer) names the wait. */
static dcl_status nccl_wait(dcl_dist *d, const char *busy, const char *what) {
    busy_begin(busy);
    cudaError_t e = cudaStreamSynchronize(d->stream);
    busy_end();
    if (e != cudaSuccess) return dcl_fail(DCL_ERR_INTERNAL, "rank %d/%d: NCCL %s: %s", d->rank, d->world, what, cudaGetErrorString(e));
    return DCL_OK;
}

static dcl_status nccl_start(dcl_dist *d) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (d->rank == 0) NCCL_TRY("GetUniqueId", ncclGetUniqueId(&id));
    if (d->world > 1) DCL_TRY(dcl_dist_bcast(d, &id, sizeof id, 0));
    CUDA_TRY("cudaSetDevice", cudaSetDevice(d->device));
    CUDA_TRY("cudaStreamCreate", cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
    busy_begin("NCCL communicator setup");
    ncclResult_t r = ncclCommInitRank(&d->comm, d->world, id, d->rank);
    busy_end();
    if (r != ncclSuccess) { cudaStreamDestroy(d->stream); return nccl_fail(r, "CommInitRank"); }
    d->nccl = 1;
    return DCL_OK;
}
#endif

dcl_status dcl_dist_attach(dcl_dist *d, dcl_backend *be) {
    d->be = be;
    int cuda = 0;
#ifdef DCL_HAVE_CUDA
    cuda = be && dcl_backend_is_cuda(be);
#endif
    if (d->kind == DCL_DIST_NCCL) {
        if (!dcl_dist_have_nccl())
            return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: train.dist_backend nccl, but this dcl was built without NCCL "
                                                 "(needs the CUDA build and nccl.h: DCL_HAVE_NCCL)");
        if (!cuda) return dcl_fail(DCL_ERR_UNSUPPORTED, "distributed: train.dist_backend nccl needs a cuda device (found %s)", be ? be->name : "none");
    }
#ifdef DIST_NCCL
    if (cuda && d->kind != DCL_DIST_HOST && (d->kind == DCL_DIST_NCCL || d->world > 1)) {
        dcl_status s = nccl_start(d);
        int st = s != DCL_OK, any = st;
        /* every rank must agree before the communicator is used */
#ifdef DCL_HAVE_MPI
        if (d->use_mpi) {
            busy_begin("Allreduce (NCCL setup)");
            MPI_Allreduce(&st, &any, 1, MPI_INT, MPI_MAX, G.comm);
            busy_end();
        }
#endif
        if (s) return s;
        if (any) return dcl_fail(DCL_ERR_IO, "rank %d/%d: NCCL setup failed on another rank", d->rank, d->world);
    }
#else
    (void)cuda;
#endif
    return DCL_OK;
}

/* ------------------------------------------------------------------ */
/* collectives                                                          */
/* ------------------------------------------------------------------ */

static float *stage(dcl_dist *d, size_t n) {
    if (d->stage_n >= n) return d->stage;
    float *p = realloc(d->stage, n * sizeof(float));
    if (!p) return NULL;
    d->stage = p;
    d->stage_n = n;
    return p;
}

/* largest count handed to one MPI call */
#define CHUNK ((size_t)1 << 28)

static dcl_status host_allreduce_sum_f32(dcl_dist *d, float *h, size_t n) {
#ifdef DCL_HAVE_MPI
    if (d->use_mpi && d->world > 1)
        for (size_t i = 0; i < n; i += CHUNK) {
            int c = (int)(n - i < CHUNK ? n - i : CHUNK);
            MPI_TRY("Allreduce (float sum)", MPI_Allreduce(MPI_IN_PLACE, h + i, c, MPI_FLOAT, MPI_SUM, G.comm));
        }
#else
    (void)d; (void)h; (void)n;
#endif
    return DCL_OK;
}

dcl_status dcl_dist_allreduce_mean(dcl_dist *d, dcl_backend *be, float *buf, size_t n) {
    if (!n) return DCL_OK;
#ifdef DIST_NCCL
    if (d->nccl) {
        if (be->sync) DCL_TRY(be->sync(be));
        NCCL_TRY("AllReduce (mean)", ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, d->comm, d->stream));
        return nccl_wait(d, "NCCL AllReduce (wait)", "all-reduce");
    }
#endif
    if (d->world == 1) return DCL_OK;
    float *h = buf;
    if (!be->is_host) {
        h = stage(d, n);
        if (!h) return dcl_fail(DCL_ERR_NOMEM, "distributed: %zu floats of staging memory", n);
        DCL_TRY(be->to_host(be, h, buf, n * sizeof(float)));
    }
    DCL_TRY(host_allreduce_sum_f32(d, h, n));
    const float w = (float)d->world;
    for (size_t i = 0; i < n; i++) h[i] /= w;
    if (!be->is_host) DCL_TRY(be->to_device(be, buf, h, n * sizeof(float)));
    return DCL_OK;
}

dcl_status dcl_dist_allreduce_sum_f64(dcl_dist *d, double *buf, int n) {
#ifdef DCL_HAVE_MPI
    if (d->use_mpi && d->world > 1) MPI_TRY("Allreduce (double sum)", MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, G.comm));
#else
    (void)d; (void)buf; (void)n;
#endif
    return DCL_OK;
}

dcl_status dcl_dist_allreduce_max_int(dcl_dist *d, int *buf, int n) {
#ifdef DCL_HAVE_MPI
    if (d->use_mpi && d->world > 1) MPI_TRY("Allreduce (int max)", MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT, MPI_MAX, G.comm));
#else
    (void)d; (void)buf; (void)n;
#endif
    return DCL_OK;
}

dcl_status dcl_dist_allgather(dcl_dist *d, void *recv, const void *send, size_t bytes) {
    if (d->world == 1) {
        if (recv != send && bytes) memmove(recv, send, bytes);
        return DCL_OK;
    }
#ifdef DCL_HAVE_MPI
    if (bytes > INT_MAX) return dcl_fail(DCL_ERR_ARG, "distributed: all-gather of %zu bytes per rank exceeds the MPI count limit", bytes);
    if (send == (const char *)recv + (size_t)d->rank * bytes) send = MPI_IN_PLACE;
    MPI_TRY("Allgather", MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, G.comm));
    return DCL_OK;
#else
    return dcl_fail(DCL_ERR_INTERNAL, "distributed: several ranks without MPI");
#endif
}

dcl_status dcl_dist_bcast(dcl_dist *d, void *buf, size_t bytes, int root) {
    if (d->world == 1) return DCL_OK;
#ifdef DCL_HAVE_MPI
    for (size_t i = 0; i < bytes; i += CHUNK) {
        int c = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
        MPI_TRY("Bcast", MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, G.comm));
    }
    return DCL_OK;
#else
    (void)buf; (void)bytes; (void)root;
    return dcl_fail(DCL_ERR_INTERNAL, "distributed: several ranks without MPI");
#endif
}

dcl_status dcl_dist_bcast_dev(dcl_dist *d, dcl_backend *be, float *buf, size_t n, int root) {
    if (!n) return DCL_OK;
#ifdef DIST_NCCL
    if (d->nccl) {
        if (d->world == 1) return DCL_OK;
        if (be->sync) DCL_TRY(be->sync(be));
        NCCL_TRY("Broadcast", ncclBroadcast(buf, buf, n, ncclFloat, root, d->comm, d->stream));
        return nccl_wait(d, "NCCL Broadcast (wait)", "broadcast");
    }
#endif
    if (d->world == 1) return DCL_OK;
    float *h = buf;
    if (!be->is_host) {
        h = stage(d, n);
        if (!h) return dcl_fail(DCL_ERR_NOMEM, "distributed: %zu floats of staging memory", n);
        if (d->rank == root) DCL_TRY(be->to_host(be, h, buf, n * sizeof(float)));
    }
    DCL_TRY(dcl_dist_bcast(d, h, n * sizeof(float), root));
    if (!be->is_host && d->rank != root) DCL_TRY(be->to_device(be, buf, h, n * sizeof(float)));
    return DCL_OK;
}

dcl_status dcl_dist_barrier(dcl_dist *d) {
#ifdef DCL_HAVE_MPI
    if (d->use_mpi && d->world > 1) MPI_TRY("Barrier", MPI_Barrier(G.comm));
#else
    (void)d;
#endif
    return DCL_OK;
}

dcl_status dcl_dist_agree(dcl_dist *d, dcl_status s, const char *what) {
    if (d->world == 1) return s;
    char saved[512];
    snprintf(saved, sizeof saved, "%s", s ? dcl_last_error() : "");
    int *all = calloc(d->world, sizeof(int));
    if (!all) return s ? s : dcl_fail(DCL_ERR_NOMEM, "distributed: agreement");
    int mine = (int)s;
    dcl_status g = dcl_dist_allgather(d, all, &mine, sizeof(int));
    if (g) { free(all); return g; }
    if (s) { free(all); dcl_fail(s, "%s", saved); return s; }
    char list[256] = "";
    size_t len = 0;
    dcl_status first = DCL_OK;
    int nf = 0;
    for (int r = 0; r < d->world; r++) {
        if (!all[r]) continue;
        if (!first) first = (dcl_status)all[r];
        if (nf++ < 8 && len < sizeof list - 16) len += snprintf(list + len, sizeof list - len, "%s%d", nf > 1 ? ", " : "", r);
    }
    free(all);
    if (!nf) return DCL_OK;
    return dcl_fail(first, "%s failed on rank%s %s%s (see its message)", what ? what : "a step", nf > 1 ? "s" : "", list,
                    nf > 8 ? ", ..." : "");
}

void dcl_dist_abort(dcl_dist *d, int code, const char *msg) {
    if (!d || d->world == 1) return;
    if (msg) { fprintf(stderr, "dcl: rank %d/%d: %s\n", d->rank, d->world, msg); fflush(stderr); }
    G.failed = 1;
#ifdef DCL_HAVE_MPI
    G.finalized = 1;
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    _exit(code ? code : 1);
}

dcl_status dcl_dist_gather_f64(void *ctx, double *recv, const double *send, int n) {
    return dcl_dist_allgather((dcl_dist *)ctx, recv, send, (size_t)n * sizeof(double));
}

uint64_t dcl_dist_hash(uint64_t h, const void *p, size_t bytes) {
    if (!h) h = 1469598103934665603ULL;
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++) { h ^= c[i]; h *= 1099511628211ULL; }
    return h;
}
