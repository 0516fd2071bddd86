/* Load generator for `dcl serve`: N connections on loopback for T seconds,
 * each sending a mix of valid uploads (a raw image, the same image as
 * multipart/form-data, a video) and invalid ones (text, a truncated image,
 * a declared size over the limit, a wrong token, an unknown path).
 *
 * Every answer is checked against what that request should get: 200 for a
 * valid upload (or 503 with Retry-After when every job slot is busy, or 504
 * when the server's timeout passed), 415 / 400 / 413 / 401 / 404 for the
 * invalid ones.  Anything else, or no answer, is an unexpected failure.
 * Prints requests/s, latency percentiles (all answers, and the scored ones),
 * answers by status, unexpected failures (exit status 1 when there are any)
 * and the server's resident memory before and after the measured period
 * (from /metrics; a warm-up period of the same load comes first, uncounted,
 * so that first-use allocations such as plans for new image sizes are not
 * mistaken for growth).
 *
 * Build (no library needed):
 *   gcc -O2 -pthread bench/serve_load.c -o build/serve_load
 * Run against a server started with e.g.
 *   dcl serve --model model.safetensors --port 8080 --token T --quiet &
 *   build/serve_load --port 8080 --token T --image face.jpg --video clip.mp4 \
 *       --connections 8 --seconds 30 --max-body-mb 32
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct payload {
    uint8_t *data;
    size_t len;
} payload;

static int read_file(const char *path, payload *p) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n <= 0) { fclose(f); return -1; }
    p->data = malloc((size_t)n);
    p->len = p->data && fread(p->data, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return p->len ? 0 : -1;
}

/* ---------------------------------------------------------------- config -- */

static const char *g_host = "127.0.0.1", *g_token = NULL;
static int g_port = 8080, g_conns = 8;
static double g_seconds = 30, g_invalid = 0.3, g_max_body_mb = 32, g_warmup = 5;
static payload g_image, g_video, g_multipart, g_truncated;
static char g_boundary[] = "----dclload7d3f";
static volatile int g_stop;

enum kind { K_IMAGE, K_MULTIPART, K_VIDEO, K_TEXT, K_TRUNCATED, K_OVERSIZE, K_BADTOKEN, K_NOTFOUND, K_COUNT };
static const char *k_names[K_COUNT] = {"image", "multipart", "video", "text", "truncated", "oversize", "bad-token", "not-found"};
static const int k_expect[K_COUNT] = {200, 200, 200, 415, 400, 413, 401, 404};

/* ----------------------------------------------------------------- stats -- */

typedef struct stats {
    double *lat;          /* every answer */
    double *lat_ok;       /* 200 answers */
    size_t n, cap, n_ok, cap_ok;
    long by_status[600];
    long by_kind[K_COUNT], ok_kind[K_COUNT];
    long unexpected, no_answer;
    char first_unexpected[256];
} stats;

static void push(double **v, size_t *n, size_t *cap, double x) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        double *nv = realloc(*v, c * sizeof *nv);
        if (!nv) return;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = x;
}

/* ---------------------------------------------------------------- client -- */

static int open_conn(void) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    if (getaddrinfo(g_host, port, &hints, &ai) || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct timeval tv = {120, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen)) { close(fd); fd = -1; }
    }
    freeaddrinfo(ai);
    return fd;
}

static int send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request on a fresh connection; returns the status (-1: no answer) and
 * whether Retry-After was present. */
static int do_request(int kind, int *retry_after, char *body_start, size_t bs) {
    *retry_after = 0;
    body_start[0] = 0;
    int fd = open_conn();
    if (fd < 0) return -1;
    char head[1024];
    const void *body = NULL;
    size_t blen = 0;
    const char *path = "/v1/detect", *ctype = "image/jpeg", *token = g_token;
    char ct[128];
    switch (kind) {
    case K_IMAGE: body = g_image.data; blen = g_image.len; ctype = "application/octet-stream"; break;
    case K_MULTIPART:
        body = g_multipart.data;
        blen = g_multipart.len;
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", g_boundary);
        ctype = ct;
        break;
    case K_VIDEO: body = g_video.data; blen = g_video.len; ctype = "video/mp4"; break;
    case K_TEXT: body = "neither an image nor a video\n"; blen = 29; ctype = "application/octet-stream"; break;
    case K_TRUNCATED: body = g_truncated.data; blen = g_truncated.len; ctype = "application/octet-stream"; break;
    case K_OVERSIZE: break;
    case K_BADTOKEN: body = g_image.data; blen = g_image.len; token = "not-the-token"; break;
    case K_NOTFOUND: path = "/v1/nothing"; body = "x"; blen = 1; break;
    }
    char auth[512] = "";
    if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    size_t declared = kind == K_OVERSIZE ? (size_t)(g_max_body_mb * 1048576) + 1 : blen;
    snprintf(head, sizeof head,
             "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", path,
             g_host, auth, ctype, declared);
    if (send_all(fd, head, strlen(head)) == 0 && blen) send_all(fd, body, blen); /* an early answer may cut the upload */
    char buf[8192];
    size_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
        if (n == sizeof buf - 1) {
            /* keep the head, drop the rest of a long body */
            char tmp[4096];
            while ((k = recv(fd, tmp, sizeof tmp, 0)) > 0) {}
            break;
        }
    }
    close(fd);
    buf[n] = 0;
    if (n < 12 || strncmp(buf, "HTTP/1.", 7)) return -1;
    *retry_after = strcasestr(buf, "\r\nRetry-After:") != NULL;
    char *b = strstr(buf, "\r\n\r\n");
    if (b) snprintf(body_start, bs, "%.200s", b + 4);
    return atoi(buf + 9);
}

typedef struct worker {
    pthread_t th;
    int id;
    stats st;
} worker;

static void *run_worker(void *p) {
    worker *w = p;
    unsigned seed = 12345u + (unsigned)w->id * 7919u;
    while (!g_stop) {
        int kind;
        double u = rand_r(&seed) / (double)RAND_MAX;
        if (u < g_invalid) kind = K_TEXT + rand_r(&seed) % 5;
        else kind = g_video.len ? rand_r(&seed) % 3 : rand_r(&seed) % 2;
        int ra = 0;
        char snippet[256];
        double t0 = now();
        int status = do_request(kind, &ra, snippet, sizeof snippet);
        double dt = now() - t0;
        stats *s = &w->st;
        s->by_kind[kind]++;
        if (status < 0) {
            s->no_answer++;
            s->unexpected++;
            if (!s->first_unexpected[0]) snprintf(s->first_unexpected, sizeof s->first_unexpected, "%s: no answer", k_names[kind]);
            continue;
        }
        if (status < 600) s->by_status[status]++;
        push(&s->lat, &s->n, &s->cap, dt);
        int ok = status == k_expect[kind];
        /* a valid upload may be told to retry (all slots busy) or time out */
        if (k_expect[kind] == 200 && ((status == 503 && ra) || status == 504)) ok = 1;
        if (status == 200) {
            push(&s->lat_ok, &s->n_ok, &s->cap_ok, dt);
            s->ok_kind[kind]++;
        }
        if (!ok) {
            s->unexpected++;
            if (!s->first_unexpected[0])
                snprintf(s->first_unexpected, sizeof s->first_unexpected, "%s: status %d (want %d): %.150s", k_names[kind],
                         status, k_expect[kind], snippet);
        }
    }
    return NULL;
}

/* process_resident_memory_bytes from /metrics, in MB (-1 if unknown) */
static double server_rss_mb(void) {
    int fd = open_conn();
    if (fd < 0) return -1;
    char head[512], auth[512] = "";
    if (g_token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", g_token);
    snprintf(head, sizeof head, "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n", g_host, auth);
    send_all(fd, head, strlen(head));
    static char buf[1 << 16];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0) n += (size_t)k;
    close(fd);
    buf[n] = 0;
    char *p = strstr(buf, "\nprocess_resident_memory_bytes ");
    return p ? atof(p + 31) / 1e6 : -1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q) {
    if (!n) return 0;
    size_t i = (size_t)(q * (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void run_load(double seconds, stats *all) {
    worker *w = calloc((size_t)g_conns, sizeof *w);
    g_stop = 0;
    double t0 = now();
    for (int i = 0; i < g_conns; i++) {
        w[i].id = i;
        pthread_create(&w[i].th, NULL, run_worker, &w[i]);
    }
    while (now() - t0 < seconds) usleep(50000);
    g_stop = 1;
    for (int i = 0; i < g_conns; i++) {
        pthread_join(w[i].th, NULL);
        stats *s = &w[i].st;
        for (size_t k = 0; k < s->n; k++) push(&all->lat, &all->n, &all->cap, s->lat[k]);
        for (size_t k = 0; k < s->n_ok; k++) push(&all->lat_ok, &all->n_ok, &all->cap_ok, s->lat_ok[k]);
        for (int c = 0; c < 600; c++) all->by_status[c] += s->by_status[c];
        for (int k = 0; k < K_COUNT; k++) { all->by_kind[k] += s->by_kind[k]; all->ok_kind[k] += s->ok_kind[k]; }
        all->unexpected += s->unexpected;
        all->no_answer += s->no_answer;
        if (!all->first_unexpected[0] && s->first_unexpected[0]) memcpy(all->first_unexpected, s->first_unexpected, sizeof all->first_unexpected);
        free(s->lat);
        free(s->lat_ok);
    }
    free(w);
}

static void usage(void) {
    fprintf(stderr, "usage: serve_load --image FILE [--video FILE] [--host 127.0.0.1] [--port 8080] [--token T]\n"
                    "                  [--connections 8] [--seconds 30] [--warmup 5] [--invalid 0.3] [--max-body-mb 32]\n");
}

int main(int argc, char **argv) {
    const char *image = NULL, *video = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { usage(); return 2; }
        if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "--video")) video = v;
        else if (!strcmp(a, "--host")) g_host = v;
        else if (!strcmp(a, "--port")) g_port = atoi(v);
        else if (!strcmp(a, "--token")) g_token = v;
        else if (!strcmp(a, "--connections")) g_conns = atoi(v);
        else if (!strcmp(a, "--seconds")) g_seconds = atof(v);
        else if (!strcmp(a, "--invalid")) g_invalid = atof(v);
        else if (!strcmp(a, "--max-body-mb")) g_max_body_mb = atof(v);
        else if (!strcmp(a, "--warmup")) g_warmup = atof(v);
        else { usage(); return 2; }
        i++;
    }
    if (!g_token) g_token = getenv("DCL_TOKEN");
    if (!image || read_file(image, &g_image)) { fprintf(stderr, "serve_load: cannot read --image %s\n", image ? image : "(none)"); return 2; }
    if (video && read_file(video, &g_video)) { fprintf(stderr, "serve_load: cannot read --video %s\n", video); return 2; }
    if (g_conns < 1 || g_conns > 1024 || !(g_seconds > 0 && g_seconds <= 3600)) { usage(); return 2; }
    signal(SIGPIPE, SIG_IGN);
    /* the multipart body and a truncated copy of the image */
    size_t cap = g_image.len + 512;
    g_multipart.data = malloc(cap);
    int h = snprintf((char *)g_multipart.data, cap,
                     "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"load.jpg\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n", g_boundary);
    memcpy(g_multipart.data + h, g_image.data, g_image.len);
    int t = snprintf((char *)g_multipart.data + h + g_image.len, cap - h - g_image.len, "\r\n--%s--\r\n", g_boundary);
    g_multipart.len = (size_t)h + g_image.len + (size_t)t;
    g_truncated.data = g_image.data;
    g_truncated.len = g_image.len / 2;

    double rss_start = server_rss_mb();
    if (rss_start < 0) { fprintf(stderr, "serve_load: no answer from http://%s:%d/metrics (wrong port or token?)\n", g_host, g_port); return 1; }
    stats all;
    memset(&all, 0, sizeof all);
    /* warm-up: the same load, not counted (first plans, caches) */
    long warm_unexpected = 0;
    if (g_warmup > 0) {
        run_load(g_warmup, &all);
        warm_unexpected = all.unexpected;
        if (warm_unexpected) fprintf(stderr, "serve_load: warm-up: %ld unexpected failures; first: %s\n", warm_unexpected, all.first_unexpected);
        free(all.lat);
        free(all.lat_ok);
        memset(&all, 0, sizeof all);
        sleep(1);
    }
    double rss0 = server_rss_mb();
    double t0 = now();
    run_load(g_seconds, &all);
    double el = now() - t0;
    sleep(1); /* let the server finish the last uploads it was reading */
    double rss1 = server_rss_mb();
    qsort(all.lat, all.n, sizeof *all.lat, cmp_d);
    qsort(all.lat_ok, all.n_ok, sizeof *all.lat_ok, cmp_d);
    long total = (long)all.n + all.no_answer;
    printf("serve_load: %d connections, %.1f s, %.0f%% invalid uploads\n", g_conns, el, 100 * g_invalid);
    printf("requests: %ld (%.1f/s); scored (200): %zu (%.2f/s)\n", total, total / el, all.n_ok, all.n_ok / el);
    printf("latency all:    p50 %.1f ms  p95 %.1f ms  p99 %.1f ms\n", 1e3 * pct(all.lat, all.n, 0.5),
           1e3 * pct(all.lat, all.n, 0.95), 1e3 * pct(all.lat, all.n, 0.99));
    printf("latency scored: p50 %.1f ms  p95 %.1f ms  p99 %.1f ms\n", 1e3 * pct(all.lat_ok, all.n_ok, 0.5),
           1e3 * pct(all.lat_ok, all.n_ok, 0.95), 1e3 * pct(all.lat_ok, all.n_ok, 0.99));
    printf("answers:");
    for (int c = 0; c < 600; c++)
        if (all.by_status[c]) printf(" %d:%ld", c, all.by_status[c]);
    printf("\nsent:");
    for (int k = 0; k < K_COUNT; k++)
        if (all.by_kind[k]) printf(" %s:%ld", k_names[k], all.by_kind[k]);
    printf("\nunexpected failures: %ld (no answer: %ld)%s%s\n", all.unexpected, all.no_answer,
           all.first_unexpected[0] ? "; first: " : "", all.first_unexpected);
    printf("server RSS: before %.1f MB, after %.1f MB (%+.1f MB)\n", rss0, rss1, rss1 - rss0);
    printf("server RSS at the start (before the warm-up): %.1f MB\n", rss_start);
    free(all.lat);
    free(all.lat_ok);
    return all.unexpected || warm_unexpected ? 1 : 0;
}
