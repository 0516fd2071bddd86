/* The HTTP transport of the service (libmicrohttpd, one thread per
 * connection): headers are checked before any body byte is stored, the body
 * streams into a buffer bounded by the body limit and a server-wide upload
 * budget, and the request path of http.c answers. */
#define _GNU_SOURCE
#include "deploy/server_internal.h"
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK_RESERVE ((size_t)1 << 20)

typedef struct req_state {
    double t_start;
    char method[16];
    char path[256];
    int route_detect;
    int64_t content_length;
    uint8_t *buf;
    size_t len, cap;
    size_t reserved;           /* bytes of the upload budget held */
    size_t discarded;          /* body bytes dropped after the limit was passed */
    int overflow;              /* the body passed the limit (answer 413 at its end) */
    int no_budget;             /* the upload budget ran out (answer 503 at its end) */
    int status;                /* answer sent, 0 if none */
    size_t sent;
} req_state;

static void logger(void *cls, const char *fmt, va_list ap) {
    dcl_server *s = cls;
    if (s->o.quiet) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    fprintf(stderr, "dcl serve: http: %s\n", msg);
}

static enum MHD_Result send_answer(struct MHD_Connection *c, req_state *st, dcl_http_response *r) {
    struct MHD_Response *resp;
    if (r->body && r->len) {
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp) r->body = NULL; /* now owned by the response */
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        dcl_http_response_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->retry_after > 0) {
        char b[16];
        snprintf(b, sizeof b, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, b);
    }
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->auth_challenge) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"dcl\"");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        st->status = r->status;
        st->sent = r->len;
    }
    dcl_http_response_free(r);
    return ok;
}

static int64_t parse_length(const char *v) {
    if (!v) return -1;
    while (*v == ' ') v++;
    if (*v < '0' || *v > '9') return -1;
    int64_t n = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (n > (INT64_MAX - 9) / 10) return INT64_MAX;
        n = n * 10 + (*v - '0');
    }
    return n;
}

static void fill_request(dcl_http_request *rq, struct MHD_Connection *c, const char *url, const char *method, req_state *st) {
    memset(rq, 0, sizeof *rq);
    rq->method = method;
    rq->path = url;
    rq->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    rq->authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    rq->content_length = st->content_length;
    rq->body = st->buf;
    rq->body_len = st->len;
    rq->t_start = st->t_start;
}

static int grow(dcl_server *s, req_state *st, size_t need) {
    if (need <= st->cap) return 1;
    size_t cap = st->cap ? st->cap : 65536;
    while (cap < need) cap *= 2;
    if (cap > s->o.max_body) cap = s->o.max_body;
    if (cap < need) return 0;
    /* the budget is reserved in steps of CHUNK_RESERVE for chunked uploads */
    if (cap > st->reserved) {
        size_t want = cap - st->reserved;
        if (st->content_length < 0 && want < CHUNK_RESERVE && st->reserved + CHUNK_RESERVE <= s->o.max_body) want = CHUNK_RESERVE;
        if (!dcl_server_reserve(s, want)) { st->no_budget = 1; return 0; }
        st->reserved += want;
    }
    uint8_t *p = realloc(st->buf, cap);
    if (!p) { st->no_budget = 1; return 0; }
    st->buf = p;
    st->cap = cap;
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    dcl_server *s = cls;
    req_state *st = *con_cls;
    (void)version;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        *con_cls = st;
        st->t_start = dcl_now();
        snprintf(st->method, sizeof st->method, "%s", method ? method : "?");
        snprintf(st->path, sizeof st->path, "%s", url ? url : "?");
        const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        st->content_length = te ? -1 : parse_length(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH));
        if (!te && st->content_length < 0 && method && strcmp(method, "POST") == 0) st->content_length = 0;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        dcl_http_request rq;
        fill_request(&rq, c, url, method, st);
        dcl_http_response r;
        if (dcl_server_begin(s, &rq, &r)) return send_answer(c, st, &r);
        st->route_detect = method && !strcmp(method, "POST");
        if (st->route_detect && st->content_length > 0) {
            if (!grow(s, st, (size_t)st->content_length)) {
                memset(&r, 0, sizeof r);
                r.status = 503;
                r.content_type = "application/json";
                r.retry_after = 1;
                static const char busy[] = "{\"error\": \"busy: too many uploads in progress\"}\n";
                r.body = strdup(busy);
                r.len = r.body ? strlen(busy) : 0;
                return send_answer(c, st, &r);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (st->status) return MHD_YES; /* answered already: drop the rest */
        if (dcl_now() - st->t_start > s->o.timeout) return MHD_NO; /* too slow an upload: close */
        if (st->overflow || st->no_budget || st->len + n > s->o.max_body) {
            /* keep reading to answer 413 at the end, within reason */
            st->overflow |= !st->no_budget;
            st->discarded += n;
            if (st->discarded > s->o.max_body + ((size_t)64 << 20)) return MHD_NO;
            return MHD_YES;
        }
        if (!grow(s, st, st->len + n)) {
            st->discarded += n;
            return MHD_YES;
        }
        memcpy(st->buf + st->len, upload_data, n);
        st->len += n;
        return MHD_YES;
    }
    if (st->status) return MHD_YES;
    dcl_http_response r;
    if (st->overflow) {
        memset(&r, 0, sizeof r);
        char msg[160];
        snprintf(msg, sizeof msg, "{\"error\": \"body exceeds the limit of %zu bytes\"}\n", s->o.max_body);
        r.status = 413;
        r.content_type = "application/json";
        r.body = strdup(msg);
        r.len = r.body ? strlen(msg) : 0;
        return send_answer(c, st, &r);
    }
    if (st->no_budget) {
        memset(&r, 0, sizeof r);
        static const char busy[] = "{\"error\": \"busy: too many uploads in progress\"}\n";
        r.status = 503;
        r.content_type = "application/json";
        r.retry_after = 1;
        r.body = strdup(busy);
        r.len = r.body ? strlen(busy) : 0;
        return send_answer(c, st, &r);
    }
    dcl_http_request rq;
    fill_request(&rq, c, url, method, st);
    dcl_server_handle(s, &rq, &r);
    return send_answer(c, st, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    dcl_server *s = cls;
    req_state *st = *con_cls;
    (void)c;
    if (!st) return;
    *con_cls = NULL;
    if (st->status) dcl_server_record(s, st->status, st->t_start);
    if (!s->o.quiet) {
        char path[96];
        size_t i = 0;
        for (; st->path[i] && i < sizeof path - 1; i++) path[i] = (unsigned char)st->path[i] < 0x20 ? '?' : st->path[i];
        path[i] = 0;
        if (st->status)
            fprintf(stderr, "dcl serve: %s %s %d %.3f s (%zu bytes in)\n", st->method, path, st->status,
                    dcl_now() - st->t_start, st->len + st->discarded);
        else
            fprintf(stderr, "dcl serve: %s %s closed without an answer (%s)\n", st->method, path,
                    toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" : "connection closed");
    }
    if (st->reserved) dcl_server_release(s, st->reserved);
    int uploaded = st->cap > 0;
    free(st->buf);
    free(st);
#ifdef __GLIBC__
    /* hand the memory of the upload and of its scoring back to the system,
     * so that the resident size stays flat between requests */
    if (uploaded) malloc_trim(0);
#else
    (void)uploaded;
#endif
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

dcl_status dcl_server_start(dcl_server *s) {
    if (!s) return dcl_fail(DCL_ERR_ARG, "server: NULL");
    if (s->mhd) return dcl_fail(DCL_ERR_ARG, "server: already started");
    if (!s->token && !dcl_host_is_loopback(s->host))
        return dcl_fail(DCL_ERR_ARG, "refusing to listen on %s without a token: set --token, --token-file or DCL_TOKEN "
                                     "(or listen on 127.0.0.1)", s->host);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    const char *host = s->host;
    if (!strcmp(host, "*")) host = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g || !ai) return dcl_fail(DCL_ERR_ARG, "cannot resolve listen address %s: %s", s->host, gai_strerror(g));
    /* prefer IPv4 when a name resolves to both */
    struct addrinfo *pick = ai;
    for (struct addrinfo *p = ai; p; p = p->ai_next)
        if (p->ai_family == AF_INET) { pick = p; break; }
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (pick->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    unsigned timeout = (unsigned)(s->o.timeout + 0.999);
    if (timeout < 1) timeout = 1;
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, logger, s,
                              MHD_OPTION_SOCK_ADDR, pick->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_END);
    int err = errno;
    freeaddrinfo(ai);
    if (!s->mhd)
        return dcl_fail(DCL_ERR_IO, "cannot listen on %s port %d: %s", s->host, s->o.port,
                        err ? strerror(err) : "libmicrohttpd refused to start");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    s->listen_fd = -1;
    return DCL_OK;
}

dcl_status dcl_server_analyze_deploy(void *engine, const void *data, size_t len, const dcl_analyze_opts *o,
                                     dcl_media_result *r) {
    return dcl_deploy_analyze_mem(engine, data, len, o, r);
}

int dcl_server_port(const dcl_server *s) { return s ? s->port : 0; }

void dcl_server_shutdown(dcl_server *s, double grace) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!s->mhd) return;
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    double end = dcl_now() + (grace > 0 ? grace : 0);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int active = s->active;
        pthread_mutex_unlock(&s->mu);
        if (active <= 0 || dcl_now() >= end) break;
        usleep(20000);
    }
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
}

void dcl_server_free(dcl_server *s) {
    if (!s) return;
    if (s->mhd) dcl_server_shutdown(s, 0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->host);
    if (s->token) {
        memset(s->token, 0, strlen(s->token));
        free(s->token);
    }
    free(s->engines);
    free(s->busy);
    free(s->hist);
    free(s);
}
