/* libFuzzer target: the HTTP service's request path (route, method, token,
 * declared length, Content-Type, multipart parsing, sniffing, job slots,
 * result JSON, /healthz, /metrics) with the scorer mocked.
 *
 * Input: an HTTP-like head, then the body:
 *   METHOD PATH\n
 *   Header: value\n        (Content-Type, Authorization, Content-Length)
 *   \n
 *   body bytes
 * The mock scorer derives a result (error kind, faces, NaN scores, video
 * frames) from the body's bytes, so that every answer shape is produced.
 * Every answer must have a status in 200..599 and a body; every JSON answer
 * must parse and sit on one line; every error answer is {"error": "..."}. */
#include "dcl/deploy.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static dcl_status mock_analyze(void *engine, const void *data, size_t len, const dcl_analyze_opts *o, dcl_media_result *r) {
    (void)engine;
    (void)o;
    const uint8_t *p = data;
    memset(r, 0, sizeof *r);
    r->prob = r->prob_max = NAN;
    uint8_t h = 0;
    for (size_t i = 0; i < len && i < 64; i++) h = (uint8_t)(h * 31 + p[i]);
    if (h % 9 == 0) {
        r->err = (dcl_media_error)(1 + (h / 9) % 6);
        /* an error text with bytes that need escaping */
        size_t n = len < 40 ? len : 40;
        memcpy(r->error, p, n);
        r->error[n] = 0;
        return DCL_OK;
    }
    if (h % 17 == 1) return dcl_fail(DCL_ERR_INTERNAL, "mock failure\nwith a newline");
    r->kind = dcl_media_sniff(data, len) == DCL_MEDIA_VIDEO ? DCL_MEDIA_VIDEO : DCL_MEDIA_IMAGE;
    r->width = 1 + h;
    r->height = 1 + (h >> 1);
    int nframes = r->kind == DCL_MEDIA_VIDEO ? 1 + h % 5 : 1;
    r->frames = calloc((size_t)nframes, sizeof *r->frames);
    if (!r->frames) return dcl_fail(DCL_ERR_NOMEM, "mock");
    r->nframes = nframes;
    double sum = 0;
    int with = 0;
    for (int f = 0; f < nframes; f++) {
        dcl_frame_result *fr = &r->frames[f];
        fr->index = f * 3;
        fr->time = f * 0.1;
        fr->prob = NAN;
        int nf = (h + f) % 4;
        fr->faces = nf ? calloc((size_t)nf, sizeof *fr->faces) : NULL;
        fr->nfaces = fr->faces ? nf : 0;
        for (int k = 0; k < fr->nfaces; k++) {
            uint8_t b = len ? p[(size_t)(f * 4 + k) % len] : 0;
            fr->faces[k] = (dcl_face_result){-b, b, 2.0f * b, 1e30f, b / 255.0f, b == 7 ? NAN : b / 255.0f};
            if (!isnan(fr->faces[k].prob) && (isnan(fr->prob) || fr->faces[k].prob > fr->prob)) fr->prob = fr->faces[k].prob;
        }
        if (!isnan(fr->prob)) { sum += fr->prob; with++; }
        r->faces += fr->nfaces;
    }
    r->frames_with_faces = with;
    if (with) r->prob = (float)(sum / with);
    r->fps = h % 3 ? 25 : 0;
    r->frames_total = h * 100;
    memcpy(r->codec, "h\"264\x01", 7);
    return DCL_OK;
}

static dcl_server *g_server;
static int g_engine;

static void check_answer(const dcl_http_response *r, int is_metrics) {
    if (r->status < 200 || r->status > 599 || !r->body || !r->len || !r->content_type) __builtin_trap();
    if (is_metrics && r->status == 200) return;
    /* JSON on one line, ending with a newline */
    if (r->body[r->len - 1] != '\n' || memchr(r->body, '\n', r->len - 1)) __builtin_trap();
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (!j || !cJSON_IsObject(j)) __builtin_trap();
    if (r->status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(e) || cJSON_GetArraySize(j) != 1) __builtin_trap();
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_server) {
        dcl_server_opts o;
        dcl_server_opts_default(&o);
        o.token = "tok";
        o.max_body = 4096;
        o.queue = 0;
        o.timeout = 1000;
        o.quiet = 1;
        void *engines[1] = {&g_engine};
        if (dcl_server_create(&g_server, &o, engines, 1, mock_analyze, NULL)) __builtin_trap();
    }
    /* split the head from the body */
    size_t hlen = 0;
    while (hlen + 1 < size && !(data[hlen] == '\n' && data[hlen + 1] == '\n')) hlen++;
    if (hlen + 1 >= size) hlen = size;
    char *head = malloc(hlen + 1);
    if (!head) return 0;
    memcpy(head, data, hlen);
    head[hlen] = 0;
    const uint8_t *body = hlen + 2 <= size ? data + hlen + 2 : data + size;
    size_t blen = (size_t)(data + size - body);
    /* body copy of its exact size, so that ASan sees overreads */
    uint8_t *b = malloc(blen ? blen : 1);
    if (!b) { free(head); return 0; }
    memcpy(b, body, blen);

    dcl_http_request rq;
    memset(&rq, 0, sizeof rq);
    rq.content_length = -1;
    char *save = NULL, *line = strtok_r(head, "\n", &save);
    char method[32] = "", path[256] = "";
    if (line) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = 0;
            snprintf(method, sizeof method, "%s", line);
            snprintf(path, sizeof path, "%s", sp + 1);
        } else {
            snprintf(path, sizeof path, "%s", line);
        }
        line = strtok_r(NULL, "\n", &save);
    }
    rq.method = method;
    rq.path = path;
    for (; line; line = strtok_r(NULL, "\n", &save)) {
        char *c = strchr(line, ':');
        if (!c) continue;
        *c = 0;
        char *v = c + 1;
        while (*v == ' ') v++;
        if (!strcasecmp(line, "Content-Type")) rq.content_type = v;
        else if (!strcasecmp(line, "Authorization")) rq.authorization = v;
        else if (!strcasecmp(line, "Content-Length")) rq.content_length = strtoll(v, NULL, 10);
    }
    rq.body = b;
    rq.body_len = blen;
    rq.t_start = dcl_now();

    dcl_http_response r;
    memset(&r, 0, sizeof r);
    int is_metrics = !strcmp(path, "/metrics");
    if (dcl_server_begin(g_server, &rq, &r)) {
        check_answer(&r, is_metrics);
        dcl_server_record(g_server, r.status, rq.t_start);
        dcl_http_response_free(&r);
    }
    rq.content_length = (int64_t)blen;
    dcl_server_handle(g_server, &rq, &r);
    check_answer(&r, is_metrics);
    dcl_server_record(g_server, r.status, rq.t_start);
    dcl_http_response_free(&r);

    /* the multipart parser on its own */
    if (rq.content_type) {
        const uint8_t *d = NULL;
        size_t n = 0;
        char pt[64], fn[64];
        if (dcl_multipart_find(b, blen, rq.content_type, "file", &d, &n, pt, sizeof pt, fn, sizeof fn) == DCL_OK) {
            if (d < b || d + n > b + blen) __builtin_trap();
        } else if (d || n || !dcl_last_error()[0]) {
            __builtin_trap();
        }
    }
    free(b);
    free(head);
    return 0;
}
