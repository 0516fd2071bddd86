/* The HTTP service's request path, independent of the transport: routes,
 * token, limits, multipart uploads, the scoring jobs, /healthz, /metrics. */
#define _GNU_SOURCE
#include "deploy/server_internal.h"
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const double g_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS ((int)(sizeof g_buckets / sizeof g_buckets[0]))

void dcl_server_opts_default(dcl_server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 32u << 20;
    o->max_video_seconds = 60;
    o->queue = 8;
    o->timeout = 30;
    o->frames = 16;
    o->max_connections = 64;
}

void dcl_http_response_free(dcl_http_response *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int dcl_host_is_loopback(const char *host) {
    if (!host || !*host) return 0;
    if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.")) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
    }
    return 0;
}

dcl_status dcl_server_create(dcl_server **out, const dcl_server_opts *o, void *const *engines, int nengines,
                             dcl_server_analyze_fn fn, const dcl_deploy_info *info) {
    if (!out || !o || !engines || nengines <= 0 || !fn) return dcl_fail(DCL_ERR_ARG, "server: bad arguments");
    *out = NULL;
    if (o->max_body < 1 || o->max_body > ((size_t)4 << 30)) return dcl_fail(DCL_ERR_ARG, "server: body limit %zu bytes out of range", o->max_body);
    if (!(o->timeout > 0 && o->timeout <= 86400)) return dcl_fail(DCL_ERR_ARG, "server: timeout %g s out of range (0, 86400]", o->timeout);
    if (o->queue < 0 || o->queue > 100000) return dcl_fail(DCL_ERR_ARG, "server: queue %d out of range 0..100000", o->queue);
    if (o->port < 0 || o->port > 65535) return dcl_fail(DCL_ERR_ARG, "server: port %d out of range 0..65535", o->port);
    dcl_server *s = calloc(1, sizeof *s);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "server: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->o = *o;
    s->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    s->token = o->token && *o->token ? strdup(o->token) : NULL;
    s->engines = calloc((size_t)nengines, sizeof *s->engines);
    s->busy = calloc((size_t)nengines, sizeof *s->busy);
    s->hist = calloc(NBUCKETS + 1, sizeof *s->hist);
    if (!s->host || (o->token && *o->token && !s->token) || !s->engines || !s->busy || !s->hist) {
        dcl_server_free(s);
        return dcl_fail(DCL_ERR_NOMEM, "server: out of memory");
    }
    s->o.host = s->host;
    s->o.token = s->token;
    memcpy(s->engines, engines, (size_t)nengines * sizeof *engines);
    s->nengines = nengines;
    s->fn = fn;
    if (info) s->info = *info;
    else dcl_deploy_info_default(&s->info);
    if (s->o.frames <= 0) s->o.frames = 16;
    if (s->o.max_connections <= 0) s->o.max_connections = 64;
    /* uploads held at once: one per job and per waiting request, plus two */
    s->budget = s->o.max_body * (size_t)(nengines + s->o.queue + 2);
    s->t_created = dcl_now();
    *out = s;
    return DCL_OK;
}

size_t dcl_server_max_body(const dcl_server *s) { return s->o.max_body; }
double dcl_server_timeout(const dcl_server *s) { return s->o.timeout; }
int dcl_server_quiet(const dcl_server *s) { return s->o.quiet; }

int dcl_server_reserve(dcl_server *s, size_t bytes) {
    pthread_mutex_lock(&s->mu);
    int ok = s->reserved + bytes <= s->budget;
    if (ok) s->reserved += bytes;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void dcl_server_release(dcl_server *s, size_t bytes) {
    pthread_mutex_lock(&s->mu);
    s->reserved = bytes > s->reserved ? 0 : s->reserved - bytes;
    pthread_mutex_unlock(&s->mu);
}

void dcl_server_record(dcl_server *s, int status, double t_start) {
    double dt = dcl_now() - t_start;
    if (!(dt >= 0)) dt = 0;
    pthread_mutex_lock(&s->mu);
    if (status >= 100 && status < 600) s->by_status[status]++;
    int b = 0;
    while (b < NBUCKETS && dt > g_buckets[b]) b++;
    s->hist[b]++;
    s->lat_sum += dt;
    s->lat_count++;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ answers -- */

static void answer(dcl_http_response *r, int status, const char *ctype, char *body, size_t len) {
    memset(r, 0, sizeof *r);
    r->status = status;
    r->content_type = ctype;
    r->body = body;
    r->len = len;
}

/* {"error": "..."} on one line */
static void error_answer(dcl_http_response *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_answer(dcl_http_response *r, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    dcl_buf b = {0};
    dcl_buf_puts(&b, "{\"error\": ");
    dcl_buf_json_str(&b, msg);
    dcl_buf_puts(&b, "}\n");
    answer(r, status, "application/json", b.data, b.data ? b.len : 0);
}

static int ct_is(const char *ct, const char *type) {
    size_t n = strlen(type);
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    return !strncasecmp(ct, type, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

static int ct_prefix(const char *ct, const char *prefix) {
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    return !strncasecmp(ct, prefix, strlen(prefix));
}

static int ct_accepted(const char *ct) {
    if (!ct) return 1;
    const char *p = ct;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 1;
    return ct_is(ct, "image/jpeg") || ct_is(ct, "image/jpg") || ct_is(ct, "image/png") || ct_prefix(ct, "video/") ||
           ct_is(ct, "application/octet-stream") || ct_is(ct, "multipart/form-data") || ct_is(ct, "application/mp4");
}

/* Constant-time comparison of the bearer token. */
static int token_ok(const dcl_server *s, const char *auth, int *missing) {
    *missing = 0;
    if (!s->token) return 1;
    if (!auth) { *missing = 1; return 0; }
    while (*auth == ' ') auth++;
    if (strncasecmp(auth, "Bearer", 6) || (auth[6] != ' ' && auth[6] != '\t')) { *missing = 1; return 0; }
    const char *t = auth + 6;
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
    size_t m = strlen(s->token);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < n ? t[i] : 0);
    return diff == 0;
}

enum { R_NONE = 0, R_DETECT, R_HEALTH, R_METRICS };

static int route(const char *path) {
    if (!path) return R_NONE;
    if (!strcmp(path, "/v1/detect")) return R_DETECT;
    if (!strcmp(path, "/healthz")) return R_HEALTH;
    if (!strcmp(path, "/metrics")) return R_METRICS;
    return R_NONE;
}

static void shown_path(char *dst, size_t n, const char *p) {
    size_t i = 0;
    for (; p && p[i] && i + 4 < n; i++) dst[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
    if (p && p[i]) { dst[i++] = '.'; dst[i++] = '.'; dst[i++] = '.'; }
    dst[i] = 0;
}

int dcl_server_begin(dcl_server *s, const dcl_http_request *rq, dcl_http_response *resp) {
    int r = route(rq->path);
    const char *m = rq->method ? rq->method : "";
    if (r == R_NONE) {
        char p[96];
        shown_path(p, sizeof p, rq->path);
        error_answer(resp, 404, "no such endpoint: %s (the API: POST /v1/detect, GET /healthz, GET /metrics)", p);
        return 1;
    }
    int is_get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if ((r == R_DETECT && strcmp(m, "POST")) || (r != R_DETECT && !is_get)) {
        error_answer(resp, 405, "method not allowed: use %s", r == R_DETECT ? "POST" : "GET");
        resp->allow = r == R_DETECT ? "POST" : "GET, HEAD";
        return 1;
    }
    if (r == R_HEALTH) return 0;
    int missing;
    if (!token_ok(s, rq->authorization, &missing)) {
        error_answer(resp, 401, "%s", missing ? "missing bearer token (send Authorization: Bearer TOKEN)" : "invalid token");
        resp->auth_challenge = 1;
        return 1;
    }
    if (r == R_METRICS) return 0;
    if (rq->content_length >= 0 && (uint64_t)rq->content_length > s->o.max_body) {
        error_answer(resp, 413, "body of %lld bytes exceeds the limit of %zu bytes", (long long)rq->content_length, s->o.max_body);
        return 1;
    }
    if (rq->content_length == 0) {
        error_answer(resp, 400, "empty body: send a JPEG or PNG image or a video (raw, or multipart/form-data with a 'file' field)");
        return 1;
    }
    if (!ct_accepted(rq->content_type)) {
        char t[96];
        shown_path(t, sizeof t, rq->content_type);
        error_answer(resp, 415, "unsupported Content-Type '%s' (send image/jpeg, image/png, video/*, "
                                "application/octet-stream or multipart/form-data)", t);
        return 1;
    }
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping, full = s->running + s->waiting >= s->nengines + s->o.queue;
    pthread_mutex_unlock(&s->mu);
    if (stopping) {
        error_answer(resp, 503, "the server is shutting down");
        resp->retry_after = 5;
        return 1;
    }
    if (full) {
        error_answer(resp, 503, "busy: all %d jobs are running and %d requests are waiting", s->nengines, s->o.queue);
        resp->retry_after = 1;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ multipart -- */

/* Value of parameter `key` in a header value such as
 * `form-data; name="file"; filename="a.jpg"` or `multipart/form-data; boundary=X`. */
static int header_param(const char *v, size_t vn, const char *key, char *out, size_t on) {
    size_t kn = strlen(key), i = 0;
    /* skip the first item (the type or disposition) */
    while (i < vn && v[i] != ';') {
        if (v[i] == '"') { /* a quoted string cannot occur here, but do not misparse one */
            i++;
            while (i < vn && v[i] != '"') i += v[i] == '\\' ? 2 : 1;
        }
        i++;
    }
    while (i < vn) {
        i++; /* ';' */
        while (i < vn && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t ks = i;
        while (i < vn && v[i] != '=' && v[i] != ';') i++;
        size_t ke = i;
        while (ke > ks && (v[ke - 1] == ' ' || v[ke - 1] == '\t')) ke--;
        int match = ke - ks == kn && !strncasecmp(v + ks, key, kn);
        if (i >= vn || v[i] == ';') continue;
        i++; /* '=' */
        while (i < vn && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t o = 0;
        int overflow = 0;
        if (i < vn && v[i] == '"') {
            i++;
            while (i < vn && v[i] != '"') {
                if (v[i] == '\\' && i + 1 < vn) i++;
                if (o + 1 < on) out[o++] = v[i];
                else overflow = 1;
                i++;
            }
            if (i >= vn) return -1; /* unterminated quote */
            i++;
            while (i < vn && v[i] != ';') i++;
        } else {
            while (i < vn && v[i] != ';') {
                if (o + 1 < on) out[o++] = v[i];
                else overflow = 1;
                i++;
            }
            while (o && (out[o - 1] == ' ' || out[o - 1] == '\t')) o--;
        }
        if (match) {
            out[o] = 0;
            return overflow ? -2 : 1;
        }
    }
    return 0;
}

dcl_status dcl_multipart_find(const uint8_t *body, size_t len, const char *content_type, const char *field,
                              const uint8_t **data, size_t *dlen, char *part_type, size_t ptn, char *filename, size_t fnn) {
    if (!data || !dlen || !field || (!body && len)) return dcl_fail(DCL_ERR_ARG, "multipart: NULL argument");
    *data = NULL;
    *dlen = 0;
    if (part_type && ptn) part_type[0] = 0;
    if (filename && fnn) filename[0] = 0;
    if (!content_type) return dcl_fail(DCL_ERR_FORMAT, "multipart: no Content-Type");
    char boundary[80];
    int r = header_param(content_type, strlen(content_type), "boundary", boundary, sizeof boundary);
    if (r <= 0 || r == -2 || !boundary[0] || strlen(boundary) > 70)
        return dcl_fail(DCL_ERR_FORMAT, "multipart/form-data needs a boundary parameter of 1 to 70 characters");
    char delim[84];
    size_t bl = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    /* the first delimiter may open the body (without the CRLF) */
    size_t p;
    if (len >= bl - 2 && !memcmp(body, delim + 2, bl - 2)) p = bl - 2;
    else {
        const uint8_t *q = len ? memmem(body, len, delim, bl) : NULL;
        if (!q) return dcl_fail(DCL_ERR_FORMAT, "multipart body does not contain its boundary");
        p = (size_t)(q - body) + bl;
    }
    for (int part = 0; part < 1000; part++) {
        if (p + 2 <= len && body[p] == '-' && body[p + 1] == '-') break; /* closing delimiter */
        while (p < len && (body[p] == ' ' || body[p] == '\t')) p++;
        if (p + 2 > len || body[p] != '\r' || body[p + 1] != '\n')
            return dcl_fail(DCL_ERR_FORMAT, "multipart: boundary line not followed by CRLF");
        p += 2;
        /* headers up to an empty line */
        char name[128] = "", ptype[128] = "", fname[256] = "";
        int have_disp = 0, name_set = 0;
        for (int h = 0;; h++) {
            if (h > 64) return dcl_fail(DCL_ERR_FORMAT, "multipart: too many part headers");
            const uint8_t *eol = p < len ? memmem(body + p, len - p, "\r\n", 2) : NULL;
            if (!eol) return dcl_fail(DCL_ERR_FORMAT, "multipart: part headers not terminated");
            size_t e = (size_t)(eol - body);
            if (e == p) { p += 2; break; }
            const char *line = (const char *)body + p;
            size_t ln = e - p;
            if (ln > 4096) return dcl_fail(DCL_ERR_FORMAT, "multipart: part header line longer than 4096 bytes");
            const char *colon = memchr(line, ':', ln);
            if (!colon) return dcl_fail(DCL_ERR_FORMAT, "multipart: part header without ':'");
            size_t hn = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vn = ln - hn - 1;
            while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
            if (hn == 19 && !strncasecmp(line, "Content-Disposition", 19)) {
                have_disp = 1;
                int a = header_param(v, vn, "name", name, sizeof name);
                if (a < 0) return dcl_fail(DCL_ERR_FORMAT, "multipart: malformed Content-Disposition name");
                name_set = a == 1;
                int b = header_param(v, vn, "filename", fname, sizeof fname);
                if (b == -1) return dcl_fail(DCL_ERR_FORMAT, "multipart: malformed Content-Disposition filename");
            } else if (hn == 12 && !strncasecmp(line, "Content-Type", 12)) {
                size_t c = vn < sizeof ptype - 1 ? vn : sizeof ptype - 1;
                memcpy(ptype, v, c);
                ptype[c] = 0;
            }
            p = e + 2;
        }
        /* content up to the next delimiter */
        const uint8_t *q = p <= len ? memmem(body + p, len - p, delim, bl) : NULL;
        if (!q) return dcl_fail(DCL_ERR_FORMAT, "multipart: part not terminated by the boundary");
        size_t end = (size_t)(q - body);
        if (have_disp && name_set && !strcmp(name, field)) {
            *data = body + p;
            *dlen = end - p;
            if (part_type && ptn) snprintf(part_type, ptn, "%s", ptype);
            if (filename && fnn) snprintf(filename, fnn, "%s", fname);
            return DCL_OK;
        }
        p = end + bl;
    }
    return dcl_fail(DCL_ERR_NOTFOUND, "multipart body has no '%s' field", field);
}

/* ------------------------------------------------------------- routes -- */

static void health(dcl_server *s, dcl_http_response *resp) {
    pthread_mutex_lock(&s->mu);
    int running = s->running, waiting = s->waiting, stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    dcl_buf b = {0};
    dcl_buf_printf(&b, "{\"status\": \"%s\", \"model\": {\"arch\": ", stopping ? "shutting down" : "ok");
    dcl_buf_json_str(&b, s->info.arch);
    dcl_buf_printf(&b, ", \"size\": %d, \"head\": \"%s\", \"threshold\": %.6g}, \"jobs\": {\"running\": %d, "
                       "\"waiting\": %d, \"max\": %d}, \"uptime\": %.1f}\n",
                   s->info.size, s->info.softmax_head ? "softmax" : "bce", s->info.threshold, running, waiting,
                   s->nengines, dcl_now() - s->t_created);
    if (!b.data) { error_answer(resp, 500, "out of memory"); return; }
    answer(resp, stopping ? 503 : 200, "application/json", b.data, b.len);
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, res = 0;
    int n = fscanf(f, "%ld %ld", &pages, &res);
    fclose(f);
    return n == 2 ? res * sysconf(_SC_PAGESIZE) : -1;
}

static void label_str(dcl_buf *b, const char *v) {
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"') dcl_buf_printf(b, "\\%c", *p);
        else if (*p == '\n') dcl_buf_puts(b, "\\n");
        else dcl_buf_append(b, p, 1);
    }
}

static void metrics(dcl_server *s, dcl_http_response *resp) {
    dcl_buf b = {0};
    pthread_mutex_lock(&s->mu);
    dcl_buf_puts(&b, "# HELP dcl_http_requests_total HTTP requests answered, by status code.\n"
                     "# TYPE dcl_http_requests_total counter\n");
    for (int c = 100; c < 600; c++)
        if (s->by_status[c]) dcl_buf_printf(&b, "dcl_http_requests_total{code=\"%d\"} %llu\n", c, (unsigned long long)s->by_status[c]);
    dcl_buf_puts(&b, "# HELP dcl_http_request_duration_seconds Time from a request's arrival to its answer.\n"
                     "# TYPE dcl_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= NBUCKETS; i++) {
        cum += s->hist[i];
        if (i < NBUCKETS) dcl_buf_printf(&b, "dcl_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", g_buckets[i], (unsigned long long)cum);
        else dcl_buf_printf(&b, "dcl_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    dcl_buf_printf(&b, "dcl_http_request_duration_seconds_sum %.6f\ndcl_http_request_duration_seconds_count %llu\n", s->lat_sum,
                   (unsigned long long)s->lat_count);
    dcl_buf_printf(&b, "# HELP dcl_jobs_running Scoring jobs running now.\n# TYPE dcl_jobs_running gauge\ndcl_jobs_running %d\n"
                       "# HELP dcl_jobs_waiting Requests waiting for a free job slot.\n# TYPE dcl_jobs_waiting gauge\ndcl_jobs_waiting %d\n"
                       "# HELP dcl_jobs_max Scoring jobs that may run at once.\n# TYPE dcl_jobs_max gauge\ndcl_jobs_max %d\n",
                   s->running, s->waiting, s->nengines);
    dcl_buf_printf(&b, "# HELP dcl_upload_bytes Bytes of uploads held in memory now.\n# TYPE dcl_upload_bytes gauge\ndcl_upload_bytes %zu\n",
                   s->reserved);
    dcl_buf_printf(&b, "# HELP dcl_media_scored_total Uploads scored, by kind.\n# TYPE dcl_media_scored_total counter\n"
                       "dcl_media_scored_total{kind=\"image\"} %llu\ndcl_media_scored_total{kind=\"video\"} %llu\n"
                       "# HELP dcl_frames_scored_total Frames searched for faces.\n# TYPE dcl_frames_scored_total counter\n"
                       "dcl_frames_scored_total %llu\n"
                       "# HELP dcl_faces_scored_total Faces scored.\n# TYPE dcl_faces_scored_total counter\n"
                       "dcl_faces_scored_total %llu\n",
                   (unsigned long long)s->images, (unsigned long long)s->videos, (unsigned long long)s->frames,
                   (unsigned long long)s->faces);
    pthread_mutex_unlock(&s->mu);
    dcl_buf_puts(&b, "# HELP dcl_model_info The model being served.\n# TYPE dcl_model_info gauge\ndcl_model_info{arch=\"");
    label_str(&b, s->info.arch);
    dcl_buf_printf(&b, "\",width=\"%g\",depth=\"%g\",size=\"%d\",head=\"%s\",threshold=\"%g\",face_min_size=\"%g\"} 1\n", s->info.width,
                   s->info.depth, s->info.size, s->info.softmax_head ? "softmax" : "bce", s->info.threshold,
                   s->info.face_min_size);
    dcl_buf_printf(&b, "# HELP dcl_uptime_seconds Seconds since the server started.\n# TYPE dcl_uptime_seconds gauge\n"
                       "dcl_uptime_seconds %.1f\n", dcl_now() - s->t_created);
    long rss = rss_bytes();
    if (rss >= 0)
        dcl_buf_printf(&b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                           "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n", rss);
    if (!b.data) { error_answer(resp, 500, "out of memory"); return; }
    answer(resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

/* Waits for a free engine until the deadline; -1 when none came free. */
static int acquire(dcl_server *s, double deadline) {
    pthread_mutex_lock(&s->mu);
    int got = -1;
    int waited = 0;
    for (;;) {
        if (s->stopping) break;
        for (int i = 0; i < s->nengines; i++)
            if (!s->busy[i]) { got = i; break; }
        if (got >= 0) break;
        if (!waited) {
            if (s->waiting >= s->o.queue) break;
            s->waiting++;
            waited = 1;
        }
        double now = dcl_now();
        if (now >= deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = deadline - now;
        if (wait > 1) wait = 1; /* re-check `stopping` now and then */
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - floor(wait)) * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    if (waited) s->waiting--;
    if (got >= 0) {
        s->busy[got] = 1;
        s->running++;
    }
    pthread_mutex_unlock(&s->mu);
    return got;
}

static void release(dcl_server *s, int i, const dcl_media_result *r) {
    pthread_mutex_lock(&s->mu);
    s->busy[i] = 0;
    s->running--;
    if (r && !r->err) {
        if (r->kind == DCL_MEDIA_IMAGE) s->images++;
        else if (r->kind == DCL_MEDIA_VIDEO) s->videos++;
        s->frames += (uint64_t)r->nframes;
        s->faces += (uint64_t)r->faces;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int media_status(dcl_media_error e) {
    switch (e) {
    case DCL_MEDIA_OK: return 200;
    case DCL_MEDIA_UNREADABLE: return 400;
    case DCL_MEDIA_UNSUPPORTED: return 415;
    case DCL_MEDIA_TOO_LARGE:
    case DCL_MEDIA_TOO_LONG: return 422;
    case DCL_MEDIA_TIMEOUT: return 504;
    case DCL_MEDIA_FAILED: return 500;
    }
    return 500;
}

static void detect(dcl_server *s, const dcl_http_request *rq, dcl_http_response *resp) {
    if (rq->body_len > s->o.max_body) {
        error_answer(resp, 413, "body of %zu bytes exceeds the limit of %zu bytes", rq->body_len, s->o.max_body);
        return;
    }
    if (rq->body_len == 0 || !rq->body) {
        error_answer(resp, 400, "empty body: send a JPEG or PNG image or a video (raw, or multipart/form-data with a 'file' field)");
        return;
    }
    const uint8_t *data = rq->body;
    size_t len = rq->body_len;
    if (ct_is(rq->content_type, "multipart/form-data")) {
        dcl_status st = dcl_multipart_find(rq->body, rq->body_len, rq->content_type, "file", &data, &len, NULL, 0, NULL, 0);
        if (st) {
            error_answer(resp, 400, "%s", dcl_last_error());
            return;
        }
        if (len == 0) {
            error_answer(resp, 400, "the 'file' field is empty");
            return;
        }
    }
    if (dcl_media_sniff(data, len) == DCL_MEDIA_UNKNOWN) {
        error_answer(resp, 415, "unsupported media: not a JPEG/PNG image or a video in a known container "
                                "(MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg, ASF)");
        return;
    }
    double deadline = rq->t_start + s->o.timeout;
    int e = acquire(s, deadline);
    if (e < 0) {
        pthread_mutex_lock(&s->mu);
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        error_answer(resp, 503, stopping ? "the server is shutting down" : "busy: no job slot came free in time");
        resp->retry_after = stopping ? 5 : 1;
        return;
    }
    dcl_analyze_opts ao;
    dcl_analyze_opts_default(&ao);
    ao.frames = s->o.frames;
    ao.max_video_seconds = s->o.max_video_seconds;
    ao.deadline = deadline;
    ao.strict_containers = 1;
    dcl_media_result r;
    memset(&r, 0, sizeof r);
    dcl_status st = s->fn(s->engines[e], data, len, &ao, &r);
    release(s, e, st ? NULL : &r);
    if (st) {
        error_answer(resp, 500, "%s", dcl_last_error());
        dcl_media_result_free(&r);
        return;
    }
    if (r.err) {
        int code = media_status(r.err);
        if (r.err == DCL_MEDIA_TIMEOUT) error_answer(resp, code, "scoring took longer than the %g s limit", s->o.timeout);
        else error_answer(resp, code, "%s", r.error);
        dcl_media_result_free(&r);
        return;
    }
    dcl_buf b = {0};
    dcl_status js = dcl_media_result_json(&b, &r, NULL, s->info.threshold, 1);
    dcl_media_result_free(&r);
    if (js || dcl_buf_puts(&b, "\n")) {
        dcl_buf_free(&b);
        error_answer(resp, 500, "out of memory");
        return;
    }
    answer(resp, 200, "application/json", b.data, b.len);
}

void dcl_server_handle(dcl_server *s, const dcl_http_request *rq, dcl_http_response *resp) {
    if (dcl_server_begin(s, rq, resp)) return;
    switch (route(rq->path)) {
    case R_HEALTH: health(s, resp); break;
    case R_METRICS: metrics(s, resp); break;
    default: detect(s, rq, resp); break;
    }
    if (!resp->body) error_answer(resp, 500, "out of memory");
}
