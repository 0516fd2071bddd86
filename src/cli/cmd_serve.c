/* dcl serve: the HTTP scoring service (docs/DEPLOY.md, docs/openapi.yaml). */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "dcl/deploy.h"
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl serve --model FILE [--host 127.0.0.1] [--port 8080] [--token T | --token-file F]\n"
            "                 [--max-body-mb 32] [--max-video-seconds 60] [--max-jobs 2] [--queue 8]\n"
            "                 [--timeout 30] [--frames 16] [--device cpu] [--threads N] [--mtcnn FILE]\n"
            "                 [--quiet]\n"
            "Serves POST /v1/detect (an image or video as the raw body, or multipart/form-data with a\n"
            "'file' field; answers JSON like dcl detect), GET /healthz and GET /metrics (Prometheus).\n"
            "  --token T        bearer token required on /v1/detect and /metrics (default $DCL_TOKEN);\n"
            "                   required when --host is not a loopback address\n"
            "  --max-body-mb    larger uploads are refused with 413\n"
            "  --max-video-seconds  longer videos are refused with 422\n"
            "  --max-jobs N     uploads scored at once (one model copy each); --queue more may wait,\n"
            "                   beyond that 503 with Retry-After\n"
            "  --timeout S      per request, upload to answer (504 when scoring runs past it)\n"
            "SIGINT or SIGTERM stops accepting, lets requests in flight finish, then exits.\n");
}

static int int_arg(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "dcl serve: %s %s: expected an integer in %ld..%ld\n", opt, v, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int num_arg(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "dcl serve: %s %s: expected a number in [%g, %g]\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* First line of a file, without the newline. */
static char *read_token_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dcl serve: --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 0) {
        free(line);
        fprintf(stderr, "dcl serve: --token-file %s: empty\n", path);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return line;
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *token_file = NULL;
    char *token_buf = NULL;
    const char *token = NULL;
    dcl_server_opts so;
    dcl_server_opts_default(&so);
    dcl_deploy_opts dopt;
    dcl_deploy_opts_default(&dopt);
    long jobs = 2, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { so.quiet = 1; continue; }
        if (a[0] == '-' && a[1] && !v) { fprintf(stderr, "dcl serve: %s needs a value\n", a); return DCL_EXIT_USAGE; }
        if (!strcmp(a, "--model")) model = argv[++i];
        else if (!strcmp(a, "--host")) so.host = argv[++i];
        else if (!strcmp(a, "--token")) token = argv[++i];
        else if (!strcmp(a, "--token-file")) token_file = argv[++i];
        else if (!strcmp(a, "--device")) dopt.device = argv[++i];
        else if (!strcmp(a, "--mtcnn")) dopt.mtcnn_path = argv[++i];
        else if (!strcmp(a, "--port")) {
            if (int_arg(a, argv[++i], 0, 65535, &n)) return DCL_EXIT_USAGE;
            so.port = (int)n;
        } else if (!strcmp(a, "--max-body-mb")) {
            if (num_arg(a, argv[++i], 0.001, 4096, &x)) return DCL_EXIT_USAGE;
            so.max_body = (size_t)(x * 1024 * 1024);
        } else if (!strcmp(a, "--max-video-seconds")) {
            if (num_arg(a, argv[++i], 0.1, 86400, &x)) return DCL_EXIT_USAGE;
            so.max_video_seconds = x;
        } else if (!strcmp(a, "--max-jobs")) {
            if (int_arg(a, argv[++i], 1, 64, &jobs)) return DCL_EXIT_USAGE;
        } else if (!strcmp(a, "--queue")) {
            if (int_arg(a, argv[++i], 0, 10000, &n)) return DCL_EXIT_USAGE;
            so.queue = (int)n;
        } else if (!strcmp(a, "--timeout")) {
            if (num_arg(a, argv[++i], 0.1, 86400, &x)) return DCL_EXIT_USAGE;
            so.timeout = x;
        } else if (!strcmp(a, "--frames")) {
            if (int_arg(a, argv[++i], 1, 1000, &n)) return DCL_EXIT_USAGE;
            so.frames = (int)n;
        } else if (!strcmp(a, "--threads")) {
            if (int_arg(a, argv[++i], 0, 1024, &threads)) return DCL_EXIT_USAGE;
        } else if (!strcmp(a, "--max-connections")) {
            if (int_arg(a, argv[++i], 1, 100000, &n)) return DCL_EXIT_USAGE;
            so.max_connections = (int)n;
        } else {
            fprintf(stderr, "dcl serve: unknown %s %s\n", a[0] == '-' ? "option" : "argument", a);
            usage(stderr);
            return DCL_EXIT_USAGE;
        }
    }
    if (!model) {
        const char *env = getenv("DCL_MODEL");
        if (env && *env) model = env;
        else {
            fprintf(stderr, "dcl serve: --model FILE is required (a model file written by dcl export)\n");
            return DCL_EXIT_USAGE;
        }
    }
    if (!token && token_file) {
        if (!(token_buf = read_token_file(token_file))) return DCL_EXIT_USAGE;
        token = token_buf;
    }
    if (!token) {
        const char *env = getenv("DCL_TOKEN");
        if (env && *env) token = env;
    }
    so.token = token;
    if ((!token || !*token) && !dcl_host_is_loopback(so.host)) {
        fprintf(stderr, "dcl serve: refusing to listen on %s without a token: set --token, --token-file or DCL_TOKEN "
                        "(or listen on 127.0.0.1)\n", so.host);
        free(token_buf);
        return DCL_EXIT_USAGE;
    }

#ifdef __GLIBC__
    /* a long-running process: few malloc arenas, large blocks straight from
     * the system (returned when freed), so that memory stays flat */
    mallopt(M_ARENA_MAX, (int)jobs + 2);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    /* one model copy per job; the cores are shared between the jobs */
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    dopt.threads = threads > 0 ? (int)((threads + jobs - 1) / jobs) : (ncpu / (int)jobs > 0 ? ncpu / (int)jobs : 1);
    dcl_deploy **engines = calloc((size_t)jobs, sizeof *engines);
    if (!engines) { free(token_buf); return cli_fail("serve", dcl_fail(DCL_ERR_NOMEM, "out of memory")); }
    dcl_status s = DCL_OK;
    for (long j = 0; j < jobs && !s; j++) s = dcl_deploy_open(&engines[j], model, &dopt);
    dcl_server *srv = NULL;
    if (!s) s = dcl_server_create(&srv, &so, (void *const *)engines, (int)jobs, dcl_server_analyze_deploy,
                                  dcl_deploy_get_info(engines[0]));
    /* SIGINT / SIGTERM are taken by sigwait below: block them in every thread */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!s) s = dcl_server_start(srv);
    int rc = 0;
    if (s) {
        rc = cli_fail("serve", s);
    } else {
        const dcl_deploy_info *in = dcl_deploy_get_info(engines[0]);
        fprintf(stderr, "dcl serve: listening on http://%s%s%s:%d (%s %dx%d, threshold %g; %ld job%s of %d thread%s; "
                        "body limit %.1f MB; %s)\n",
                strchr(so.host, ':') ? "[" : "", so.host, strchr(so.host, ':') ? "]" : "", dcl_server_port(srv), in->arch,
                in->size, in->size, in->threshold, jobs, jobs == 1 ? "" : "s", dopt.threads, dopt.threads == 1 ? "" : "s",
                so.max_body / 1048576.0, token && *token ? "bearer token required" : "no token");
        int sig = 0;
        sigwait(&set, &sig);
        fprintf(stderr, "dcl serve: %s: finishing the requests in flight (at most %g s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                so.timeout + 5);
        dcl_server_shutdown(srv, so.timeout + 5);
        fprintf(stderr, "dcl serve: stopped\n");
    }
    dcl_server_free(srv);
    for (long j = 0; j < jobs; j++) dcl_deploy_free(engines[j]);
    free(engines);
    free(token_buf);
    return rc;
}
