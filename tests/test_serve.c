/* dcl serve in-process on an ephemeral loopback port, spoken to over plain
 * sockets: valid uploads (raw and multipart, image and video) are scored
 * exactly as the library scores them; every kind of bad request gets its
 * 4xx with a one-line JSON error; limits (413, 422, 503 + Retry-After,
 * 504), the token (401), /healthz and /metrics; the server keeps answering
 * throughout and shuts down gracefully. */
#define _GNU_SOURCE
#include "check.h"
#include "dcl/deploy.h"
#include "dcl/trainer.h"
#include "dcl/video.h"
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define ASTRONAUT "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
#define TINY "tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors"
#define TOKEN "s3cret-token"

static char g_dir[256];

/* ------------------------------------------------------------- client -- */

typedef struct reply {
    int status;
    char headers[4096];
    char *body;
    size_t len;
} reply;

static void reply_free(reply *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { close(fd); return -1; }
    return fd;
}

/* Sends head then body (a send error is tolerated: the server may answer
 * early and close), reads the answer to the end. status -1: no answer. */
static void exchange(int port, const char *head, const void *body, size_t blen, reply *r) {
    memset(r, 0, sizeof *r);
    r->status = -1;
    int fd = connect_to(port);
    if (fd < 0) return;
    size_t hl = strlen(head), off = 0;
    while (off < hl) {
        ssize_t w = send(fd, head + off, hl - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    off = 0;
    while (off < blen) {
        ssize_t w = send(fd, (const char *)body + off, blen - off > 65536 ? 65536 : blen - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (int guard = 0; buf && guard < 100000; guard++) {
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf) return;
    buf[n] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (n < 12 || strncmp(buf, "HTTP/1.", 7) || !sep) { free(buf); return; }
    r->status = atoi(buf + 9);
    size_t hn = (size_t)(sep - buf) < sizeof r->headers - 1 ? (size_t)(sep - buf) : sizeof r->headers - 1;
    memcpy(r->headers, buf, hn);
    r->headers[hn] = 0;
    r->len = n - (size_t)(sep + 4 - buf);
    r->body = malloc(r->len + 1);
    if (r->body) {
        memcpy(r->body, sep + 4, r->len);
        r->body[r->len] = 0;
    }
    free(buf);
}

static void request(int port, const char *method, const char *path, const char *ctype, const char *token,
                    const void *body, size_t blen, reply *r) {
    char head[2048], auth[256] = "", ct[256] = "";
    if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    if (ctype) snprintf(ct, sizeof ct, "Content-Type: %s\r\n", ctype);
    snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%sContent-Length: %zu\r\n\r\n",
             method, path, auth, ct, blen);
    exchange(port, head, body, blen, r);
}

static int has_header(const reply *r, const char *h) { return strcasestr(r->headers, h) != NULL; }

/* a 4xx/5xx answer: one line of JSON {"error": "..."} */
static void check_error(const reply *r, int status, const char *what, const char *want) {
    CHECK(r->status == status, "%s: status %d, want %d (%s)", what, r->status, status, r->body ? r->body : "");
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECK(cJSON_IsString(e) && cJSON_GetArraySize(j) == 1, "%s: body is not {\"error\": ...}: %s", what, r->body ? r->body : "");
    CHECK(r->body && strchr(r->body, '\n') == r->body + r->len - 1, "%s: error not on one line", what);
    if (want && cJSON_IsString(e)) CHECK(strstr(e->valuestring, want) != NULL, "%s: '%s' should mention '%s'", what, e->valuestring, want);
    cJSON_Delete(j);
}

static void check_alive(int port, const char *after) {
    reply r;
    request(port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    CHECK(r.status == 200 && r.body && strstr(r.body, "\"ok\""), "server not healthy after %s: %d", after, r.status);
    reply_free(&r);
}

/* ------------------------------------------------------------ fixtures -- */

static void make_model(const char *ckpt, const char *model) {
    dcl_backend *be = dcl_backend_ref();
    dcl_effnet_cfg ec;
    CHECK_OK(dcl_effnet_config(&ec, "efficientnet_b0"));
    dcl_effnet_set_scale(&ec, 0.25f, 0.34f);
    dcl_method_cfg mc = dcl_method_defaults();
    mc.softmax_head = 1;
    dcl_detector *d = NULL;
    CHECK_OK(dcl_detector_create(&d, be, &ec, &mc, 0));
    if (!d) return;
    dcl_rng rng;
    dcl_rng_seed(&rng, 11);
    CHECK_OK(dcl_net_init_params(d->q->net, &rng));
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open(&st, TINY));
    const dcl_table *tabs[2] = {dcl_net_params(d->q->net), dcl_net_buffers(d->q->net)};
    for (int t = 0; t < 2 && st; t++)
        for (int i = 0; i < tabs[t]->n; i++) {
            const dcl_named *e = &tabs[t]->v[i];
            if (!dcl_st_find(st, e->name)) continue;
            float *h = malloc((e->numel ? e->numel : 1) * sizeof(float));
            CHECK_OK(dcl_st_read_f32(st, e->name, h, e->ndim, e->ndim ? e->shape : NULL));
            CHECK_OK(dcl_net_set_tensor(d->q->net, e->name, h, e->numel));
            free(h);
        }
    dcl_st_close(st);
    const char *kv[] = {"size", "64"};
    CHECK_OK(dcl_detector_save_model(ckpt, d, 1, kv));
    dcl_detector_free(d);
    dcl_export_opts o;
    dcl_export_opts_default(&o);
    o.face_min_size = 30;
    CHECK_OK(dcl_deploy_export(model, ckpt, &o, NULL));
}

static uint8_t *video_bytes(const dcl_image *photo, int frames, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/v%d.mp4", g_dir, frames);
    dcl_image small = {0};
    CHECK_OK(dcl_image_resize_bilinear(&small, 256, 256, photo));
    dcl_video_writer *w = NULL;
    CHECK_OK(dcl_video_writer_open(&w, path, 256, 256, 8.0, NULL));
    for (int k = 0; k < frames && w; k++) CHECK_OK(dcl_video_writer_write(w, &small));
    CHECK_OK(dcl_video_writer_close(w));
    dcl_image_free(&small);
    void *buf = NULL;
    CHECK_OK(dcl_read_file(&buf, len, path, 0));
    return buf;
}

/* ------------------------------------------------------------ mock scorer -- */

/* Sleeps `delay` seconds (in small steps, watching the deadline), then
 * returns one fixed face. */
static double g_delay;
static dcl_status slow_analyze(void *engine, const void *data, size_t len, const dcl_analyze_opts *o, dcl_media_result *r) {
    (void)engine;
    (void)data;
    (void)len;
    memset(r, 0, sizeof *r);
    double end = dcl_now() + g_delay;
    while (dcl_now() < end) {
        if (o->deadline > 0 && dcl_now() > o->deadline) {
            r->err = DCL_MEDIA_TIMEOUT;
            snprintf(r->error, sizeof r->error, "timed out");
            return DCL_OK;
        }
        usleep(5000);
    }
    r->kind = DCL_MEDIA_IMAGE;
    r->width = r->height = 10;
    r->nframes = 1;
    r->frames = calloc(1, sizeof *r->frames);
    r->frames[0].nfaces = 1;
    r->frames[0].faces = calloc(1, sizeof *r->frames[0].faces);
    r->frames[0].faces[0] = (dcl_face_result){1, 2, 3, 4, 0.99f, 0.25f};
    r->frames[0].prob = 0.25f;
    r->prob = r->prob_max = 0.25f;
    r->faces = r->frames_with_faces = 1;
    return DCL_OK;
}

typedef struct bg_req {
    pthread_t th;
    int port;
    reply r;
} bg_req;

static void *bg_post(void *p) {
    bg_req *b = p;
    static const uint8_t png[16] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 'I', 'H', 'D', 'R'};
    request(b->port, "POST", "/v1/detect", "image/png", NULL, png, sizeof png, &b->r);
    return NULL;
}

typedef struct job {
    int port;
    const uint8_t *b;
    size_t n;
    reply r;
} job;

static void *job_run(void *p) {
    job *jb = p;
    request(jb->port, "POST", "/v1/detect", "image/png", TOKEN, jb->b, jb->n, &jb->r);
    return NULL;
}

static void test_mock_server(void) {
    int dummy = 0;
    void *engines[1] = {&dummy};
    dcl_server_opts so;
    dcl_server_opts_default(&so);
    so.port = 0;
    so.queue = 0;
    so.timeout = 0.6;
    so.quiet = 1;
    dcl_server *s = NULL;
    CHECK_OK(dcl_server_create(&s, &so, engines, 1, slow_analyze, NULL));
    CHECK_OK(dcl_server_start(s));
    int port = dcl_server_port(s);
    /* timeout -> 504 */
    g_delay = 5;
    bg_req a = {.port = port};
    double t0 = dcl_now();
    bg_post(&a);
    check_error(&a.r, 504, "slow scoring", "longer than");
    CHECK(dcl_now() - t0 < 3, "504 after %.2f s", dcl_now() - t0);
    reply_free(&a.r);
    /* one job, no queue: a second request while the first runs -> 503 + Retry-After */
    g_delay = 0.4;
    pthread_create(&a.th, NULL, bg_post, &a);
    usleep(150000);
    bg_req b = {.port = port};
    bg_post(&b);
    check_error(&b.r, 503, "busy", "busy");
    CHECK(has_header(&b.r, "Retry-After: 1"), "503 without Retry-After: %s", b.r.headers);
    pthread_join(a.th, NULL);
    CHECK(a.r.status == 200, "the running request: %d", a.r.status);
    reply_free(&a.r);
    reply_free(&b.r);
    /* graceful shutdown: the request in flight is answered */
    pthread_create(&a.th, NULL, bg_post, &a);
    usleep(150000);
    t0 = dcl_now();
    dcl_server_shutdown(s, 5);
    pthread_join(a.th, NULL);
    CHECK(a.r.status == 200 && a.r.body && strstr(a.r.body, "0.25"), "in flight during shutdown: %d", a.r.status);
    CHECK(dcl_now() - t0 < 3, "shutdown took %.2f s", dcl_now() - t0);
    reply_free(&a.r);
    int fd = connect_to(port);
    CHECK(fd < 0, "still accepting after shutdown");
    if (fd >= 0) close(fd);
    dcl_server_free(s);

    /* no token: only loopback addresses */
    so.host = "0.0.0.0";
    CHECK_OK(dcl_server_create(&s, &so, engines, 1, slow_analyze, NULL));
    CHECK(dcl_server_start(s) == DCL_ERR_ARG && strstr(dcl_last_error(), "token"), "0.0.0.0 without a token: %s", dcl_last_error());
    dcl_server_free(s);
    CHECK(dcl_host_is_loopback("127.0.0.1") && dcl_host_is_loopback("127.8.9.1") && dcl_host_is_loopback("::1") &&
              dcl_host_is_loopback("localhost") && !dcl_host_is_loopback("0.0.0.0") && !dcl_host_is_loopback("10.0.0.1") &&
              !dcl_host_is_loopback("::") && !dcl_host_is_loopback("example.com") && !dcl_host_is_loopback(""),
          "loopback addresses");
}

static void test_multipart_parser(void) {
    const char *ct = "multipart/form-data; boundary=\"XyZ\"";
    const char *body = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                       "--XyZ  \r\nContent-Disposition: form-data; filename=\"a;b.jpg\"; name=file\r\nContent-Type: image/jpeg\r\n\r\n"
                       "DATA\r\n--X\r\n--XyZ--\r\n";
    const uint8_t *d = NULL;
    size_t n = 0;
    char pt[64], fn[64];
    CHECK_OK(dcl_multipart_find((const uint8_t *)body, strlen(body), ct, "file", &d, &n, pt, sizeof pt, fn, sizeof fn));
    CHECK(d && n == 9 && !memcmp(d, "DATA\r\n--X", 9) && !strcmp(pt, "image/jpeg") && !strcmp(fn, "a;b.jpg"),
          "file field: %zu bytes, type %s, name %s", n, pt, fn);
    CHECK_OK(dcl_multipart_find((const uint8_t *)body, strlen(body), ct, "note", &d, &n, NULL, 0, NULL, 0));
    CHECK(n == 5 && !memcmp(d, "hello", 5), "note field");
    CHECK(dcl_multipart_find((const uint8_t *)body, strlen(body), ct, "other", &d, &n, NULL, 0, NULL, 0) == DCL_ERR_NOTFOUND,
          "absent field");
    CHECK(dcl_multipart_find((const uint8_t *)body, strlen(body), "multipart/form-data", "file", &d, &n, NULL, 0, NULL, 0) ==
              DCL_ERR_FORMAT && strstr(dcl_last_error(), "boundary"), "no boundary: %s", dcl_last_error());
    const char *cut = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nDATA";
    CHECK(dcl_multipart_find((const uint8_t *)cut, strlen(cut), ct, "file", &d, &n, NULL, 0, NULL, 0) == DCL_ERR_FORMAT,
          "unterminated part");
    const char *q = "--XyZ\r\nContent-Disposition: form-data; name=\"fi";
    CHECK(dcl_multipart_find((const uint8_t *)q, strlen(q), ct, "file", &d, &n, NULL, 0, NULL, 0) == DCL_ERR_FORMAT,
          "unterminated headers");
    CHECK(dcl_multipart_find(NULL, 0, ct, "file", &d, &n, NULL, 0, NULL, 0) == DCL_ERR_FORMAT, "empty body");
}

/* Prometheus text: every line a comment or `name{labels} value` */
static double metric(const char *text, const char *series, int *bad) {
    double v = NAN;
    char *copy = strdup(text);
    for (char *l = strtok(copy, "\n"); l; l = strtok(NULL, "\n")) {
        if (l[0] == '#') continue;
        char *sp = strrchr(l, ' ');
        char *end = NULL;
        double x = sp ? strtod(sp + 1, &end) : NAN;
        if (!sp || end == sp + 1 || *end) { (*bad)++; continue; }
        if ((size_t)(sp - l) == strlen(series) && !strncmp(l, series, strlen(series))) v = x;
    }
    free(copy);
    return v;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_multipart_parser();
    test_mock_server();
    struct stat sb;
    CHECK(stat(ASTRONAUT, &sb) == 0, "%s is missing: install python3-skimage", ASTRONAUT);
    if (stat(ASTRONAUT, &sb)) CHECK_DONE();
    snprintf(g_dir, sizeof g_dir, "/tmp/dcl_serve_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    char ckpt[512], model[512];
    snprintf(ckpt, sizeof ckpt, "%s/best.safetensors", g_dir);
    snprintf(model, sizeof model, "%s/model.safetensors", g_dir);
    make_model(ckpt, model);

    dcl_deploy_opts dopt;
    dcl_deploy_opts_default(&dopt);
    dopt.threads = 1;
    dcl_deploy *eng[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) CHECK_OK(dcl_deploy_open(&eng[i], model, &dopt));
    if (!eng[0] || !eng[1] || !eng[2]) CHECK_DONE();

    dcl_image photo = {0};
    CHECK_OK(dcl_image_load(&photo, ASTRONAUT));
    uint8_t *png = NULL, *jpg = NULL;
    size_t png_len = 0, jpg_len = 0, v3_len = 0, v16_len = 0;
    CHECK_OK(dcl_image_encode_png_mem(&png, &png_len, &photo));
    CHECK_OK(dcl_image_encode_jpeg_mem(&jpg, &jpg_len, &photo, 90));
    uint8_t *v3 = video_bytes(&photo, 3, &v3_len), *v16 = video_bytes(&photo, 16, &v16_len);
    /* what the library says about the same bytes (engine 2 is not the server's) */
    dcl_media_result ref;
    dcl_analyze_opts ao;
    dcl_analyze_opts_default(&ao);
    CHECK_OK(dcl_deploy_analyze_mem(eng[2], png, png_len, &ao, &ref));
    CHECK(ref.err == DCL_MEDIA_OK && ref.faces == 1, "library: %d faces (%s)", ref.faces, ref.error);
    float ref_prob = ref.prob;
    dcl_media_result_free(&ref);

    dcl_server_opts so;
    dcl_server_opts_default(&so);
    so.port = 0;
    so.token = TOKEN;
    so.max_body = 2u << 20;
    so.max_video_seconds = 1.0;
    so.queue = 1;
    so.timeout = 60;
    so.frames = 2;
    so.quiet = 1;
    dcl_server *s = NULL;
    CHECK_OK(dcl_server_create(&s, &so, (void *const *)eng, 2, dcl_server_analyze_deploy, dcl_deploy_get_info(eng[0])));
    CHECK_OK(dcl_server_start(s));
    int port = dcl_server_port(s);
    CHECK(port > 0, "port %d", port);
    reply r;

    /* health (no token needed) */
    request(port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    CHECK(r.status == 200 && j && !strcmp(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring, "ok"),
          "healthz: %d %s", r.status, r.body ? r.body : "");
    CHECK(j && cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "size")->valueint == 64, "healthz model");
    cJSON_Delete(j);
    reply_free(&r);

    /* a PNG as the raw body: the library's answer */
    request(port, "POST", "/v1/detect", "image/png", TOKEN, png, png_len, &r);
    j = r.body ? cJSON_Parse(r.body) : NULL;
    CHECK(r.status == 200 && j, "png: %d %s", r.status, r.body ? r.body : "");
    CHECK(has_header(&r, "Content-Type: application/json"), "content type: %s", r.headers);
    if (j) {
        const cJSON *faces = cJSON_GetObjectItemCaseSensitive(j, "faces");
        CHECK(cJSON_GetArraySize(faces) == 1, "png: %d faces", cJSON_GetArraySize(faces));
        double p = cJSON_GetObjectItemCaseSensitive(j, "prob")->valuedouble;
        CHECK(fabs(p - ref_prob) < 1e-6, "served P(fake) %.7f, library %.7f", p, ref_prob);
        printf("  POST png: P(fake) %.6f (library %.6f)\n", p, ref_prob);
    }
    cJSON_Delete(j);
    reply_free(&r);

    /* multipart/form-data with a 'file' field (a JPEG), other fields around it */
    {
        dcl_buf b = {0};
        dcl_buf_puts(&b, "--b0undary\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhi\r\n"
                         "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"astro.jpg\"\r\n"
                         "Content-Type: image/jpeg\r\n\r\n");
        dcl_buf_append(&b, jpg, jpg_len);
        dcl_buf_puts(&b, "\r\n--b0undary--\r\n");
        request(port, "POST", "/v1/detect", "multipart/form-data; boundary=b0undary", TOKEN, b.data, b.len, &r);
        j = r.body ? cJSON_Parse(r.body) : NULL;
        CHECK(r.status == 200 && j && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "faces")) == 1,
              "multipart: %d %s", r.status, r.body ? r.body : "");
        cJSON_Delete(j);
        reply_free(&r);
        /* the same body without the field */
        dcl_buf c = {0};
        dcl_buf_puts(&c, "--b0undary\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhi\r\n--b0undary--\r\n");
        request(port, "POST", "/v1/detect", "multipart/form-data; boundary=b0undary", TOKEN, c.data, c.len, &r);
        check_error(&r, 400, "multipart without file", "'file'");
        reply_free(&r);
        request(port, "POST", "/v1/detect", "multipart/form-data", TOKEN, c.data, c.len, &r);
        check_error(&r, 400, "multipart without boundary", "boundary");
        reply_free(&r);
        dcl_buf_free(&b);
        dcl_buf_free(&c);
    }

    /* a short video; one longer than allowed */
    request(port, "POST", "/v1/detect", "video/mp4", TOKEN, v3, v3_len, &r);
    j = r.body ? cJSON_Parse(r.body) : NULL;
    CHECK(r.status == 200 && j && !strcmp(cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring, "video") &&
              cJSON_GetObjectItemCaseSensitive(j, "frames_sampled")->valueint == 2 &&
              cJSON_GetObjectItemCaseSensitive(j, "frames_with_faces")->valueint == 2,
          "video: %d %s", r.status, r.body ? r.body : "");
    cJSON_Delete(j);
    reply_free(&r);
    request(port, "POST", "/v1/detect", "video/mp4", TOKEN, v16, v16_len, &r);
    check_error(&r, 422, "2 s video, limit 1 s", "longer than");
    reply_free(&r);

    /* limits and malformed requests */
    request(port, "POST", "/v1/detect", "image/png", "wrong", png, png_len, &r);
    check_error(&r, 401, "bad token", "invalid token");
    reply_free(&r);
    request(port, "POST", "/v1/detect", "image/png", NULL, png, png_len, &r);
    check_error(&r, 401, "no token", "missing bearer token");
    CHECK(has_header(&r, "WWW-Authenticate: Bearer"), "401 without WWW-Authenticate");
    reply_free(&r);
    request(port, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    check_error(&r, 401, "metrics without token", NULL);
    reply_free(&r);
    /* oversize: refused from the declared length, before the body is sent */
    exchange(port, "POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\nContent-Type: image/png\r\n"
                   "Content-Length: 3000000\r\n\r\n", NULL, 0, &r);
    check_error(&r, 413, "declared 3 MB", "limit");
    reply_free(&r);
    /* oversize without a declared length (chunked) */
    {
        size_t big = 3u << 20;
        dcl_buf b = {0};
        uint8_t *zeros = calloc(1, 65536);
        memcpy(zeros, png, 16);
        for (size_t sent = 0; sent < big; sent += 65536) {
            dcl_buf_printf(&b, "10000\r\n");
            dcl_buf_append(&b, zeros, 65536);
            dcl_buf_puts(&b, "\r\n");
        }
        dcl_buf_puts(&b, "0\r\n\r\n");
        exchange(port, "POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\nContent-Type: image/png\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", b.data, b.len, &r);
        check_error(&r, 413, "chunked 3 MB", "limit");
        reply_free(&r);
        dcl_buf_free(&b);
        free(zeros);
    }
    static const char garbage[] = "this is plain text, neither an image nor a video";
    request(port, "POST", "/v1/detect", "application/octet-stream", TOKEN, garbage, sizeof garbage - 1, &r);
    check_error(&r, 415, "text as octet-stream", "not a JPEG/PNG");
    reply_free(&r);
    request(port, "POST", "/v1/detect", "image/png", TOKEN, garbage, sizeof garbage - 1, &r);
    check_error(&r, 415, "text as image/png", "not a JPEG/PNG");
    reply_free(&r);
    request(port, "POST", "/v1/detect", "text/plain", TOKEN, garbage, sizeof garbage - 1, &r);
    check_error(&r, 415, "text/plain", "Content-Type");
    reply_free(&r);
    request(port, "POST", "/v1/detect", "image/png", TOKEN, png, png_len / 3, &r);
    check_error(&r, 400, "truncated PNG", "PNG");
    reply_free(&r);
    request(port, "POST", "/v1/detect", "video/mp4", TOKEN, v3, v3_len / 4, &r);
    CHECK(r.status == 400 || r.status == 200, "truncated video: %d %s", r.status, r.body ? r.body : "");
    if (r.status != 200) check_error(&r, 400, "truncated video", NULL);
    reply_free(&r);
    static const char m3u[] = "#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n";
    request(port, "POST", "/v1/detect", "video/mp4", TOKEN, m3u, sizeof m3u - 1, &r);
    check_error(&r, 415, "a playlist", NULL);
    reply_free(&r);
    request(port, "POST", "/v1/detect", "image/png", TOKEN, NULL, 0, &r);
    check_error(&r, 400, "empty body", "empty");
    reply_free(&r);
    request(port, "GET", "/v1/detect", NULL, TOKEN, NULL, 0, &r);
    check_error(&r, 405, "GET /v1/detect", "POST");
    CHECK(has_header(&r, "Allow: POST"), "405 without Allow");
    reply_free(&r);
    request(port, "GET", "/nope/../etc", NULL, TOKEN, NULL, 0, &r);
    check_error(&r, 404, "unknown path", "no such endpoint");
    reply_free(&r);
    /* not HTTP at all, a half request, a bare connection: answered or closed, never fatal */
    exchange(port, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", NULL, 0, &r);
    CHECK(r.status == -1 || (r.status >= 400 && r.status < 500), "TLS hello: %d", r.status);
    reply_free(&r);
    exchange(port, "POST /v1/detect HTTP/1.1\r\nContent-Length: 100\r\n", NULL, 0, &r);
    reply_free(&r);
    int fd = connect_to(port);
    if (fd >= 0) close(fd);
    check_alive(port, "malformed requests");

    /* concurrent uploads: 2 jobs + 1 waiting; the rest 503 with Retry-After */
    {
        enum { N = 6 };
        pthread_t th[N];
        job jobs[N];
        for (int i = 0; i < N; i++) jobs[i] = (job){port, png, png_len, {0}};
        for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, job_run, &jobs[i]);
        int ok = 0, busy = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            if (jobs[i].r.status == 200) {
                ok++;
                cJSON *x = cJSON_Parse(jobs[i].r.body);
                CHECK(x && fabs(cJSON_GetObjectItemCaseSensitive(x, "prob")->valuedouble - ref_prob) < 1e-6, "concurrent result");
                cJSON_Delete(x);
            } else {
                check_error(&jobs[i].r, 503, "concurrent", "busy");
                CHECK(has_header(&jobs[i].r, "Retry-After"), "503 without Retry-After");
                busy++;
            }
            reply_free(&jobs[i].r);
        }
        CHECK(ok >= 1 && ok + busy == N, "concurrent: %d answered, %d busy", ok, busy);
        printf("  %d concurrent uploads: %d scored, %d told to retry\n", N, ok, busy);
    }
    check_alive(port, "concurrent uploads");

    /* metrics */
    request(port, "GET", "/metrics", NULL, TOKEN, NULL, 0, &r);
    CHECK(r.status == 200 && has_header(&r, "text/plain"), "metrics: %d", r.status);
    if (r.body) {
        int bad = 0;
        double ok200 = metric(r.body, "dcl_http_requests_total{code=\"200\"}", &bad);
        double c413 = metric(r.body, "dcl_http_requests_total{code=\"413\"}", &bad);
        double c401 = metric(r.body, "dcl_http_requests_total{code=\"401\"}", &bad);
        double cnt = metric(r.body, "dcl_http_request_duration_seconds_count", &bad);
        double inf = metric(r.body, "dcl_http_request_duration_seconds_bucket{le=\"+Inf\"}", &bad);
        double jobsmax = metric(r.body, "dcl_jobs_max", &bad);
        double running = metric(r.body, "dcl_jobs_running", &bad);
        double rss = metric(r.body, "process_resident_memory_bytes", &bad);
        CHECK(bad == 0, "%d malformed metric lines", bad);
        CHECK(ok200 >= 6 && c413 == 2 && c401 == 3, "counts: 200 %g, 413 %g, 401 %g", ok200, c413, c401);
        CHECK(cnt == inf && cnt >= ok200 + c413 + c401, "histogram count %g, +Inf %g", cnt, inf);
        CHECK(jobsmax == 2 && running == 0 && rss > 1e6, "gauges: max %g running %g rss %g", jobsmax, running, rss);
        CHECK(strstr(r.body, "dcl_model_info{arch=\"efficientnet_b0\"") != NULL, "model info");
    }
    reply_free(&r);
    check_alive(port, "everything");

    dcl_server_shutdown(s, 10);
    dcl_server_free(s);
    for (int i = 0; i < 3; i++) dcl_deploy_free(eng[i]);
    free(png);
    free(jpg);
    free(v3);
    free(v16);
    dcl_image_free(&photo);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    CHECK_DONE();
}
