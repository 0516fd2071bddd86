/* Scoring images and videos: faces, crops, P(fake) per face, frame and video. */
#define _GNU_SOURCE
#include "deploy/deploy_internal.h"
#include "dcl/video.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void dcl_analyze_opts_default(dcl_analyze_opts *o) {
    memset(o, 0, sizeof *o);
    o->frames = 16;
}

void dcl_frame_result_free(dcl_frame_result *fr) {
    if (!fr) return;
    free(fr->faces);
    fr->faces = NULL;
    fr->nfaces = 0;
}

void dcl_media_result_free(dcl_media_result *r) {
    if (!r) return;
    for (int i = 0; i < r->nframes; i++) dcl_frame_result_free(&r->frames[i]);
    free(r->frames);
    r->frames = NULL;
    r->nframes = 0;
}

/* ------------------------------------------------------------ sniffing -- */

dcl_media_kind dcl_media_sniff(const void *buf, size_t len) {
    const uint8_t *p = buf;
    if (!p) return DCL_MEDIA_UNKNOWN;
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (len >= 8 && !memcmp(p, png, 8)) return DCL_MEDIA_IMAGE;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return DCL_MEDIA_IMAGE;
    if (len >= 12) {
        /* ISO base media (MP4, MOV, 3GP, M4V): a first box of a known type */
        static const char *boxes[] = {"ftyp", "moov", "mdat", "free", "wide", "skip", "pnot"};
        for (size_t i = 0; i < sizeof boxes / sizeof boxes[0]; i++)
            if (!memcmp(p + 4, boxes[i], 4)) return DCL_MEDIA_VIDEO;
        if (!memcmp(p, "RIFF", 4) && !memcmp(p + 8, "AVI ", 4)) return DCL_MEDIA_VIDEO;
    }
    if (len >= 4) {
        if (p[0] == 0x1a && p[1] == 0x45 && p[2] == 0xdf && p[3] == 0xa3) return DCL_MEDIA_VIDEO; /* Matroska, WebM */
        if (!memcmp(p, "OggS", 4)) return DCL_MEDIA_VIDEO;
        if (p[0] == 'F' && p[1] == 'L' && p[2] == 'V' && p[3] == 1) return DCL_MEDIA_VIDEO;
        if (p[0] == 0 && p[1] == 0 && p[2] == 1 && (p[3] == 0xba || p[3] == 0xb3)) return DCL_MEDIA_VIDEO; /* MPEG-PS / ES */
    }
    if (len >= 16) {
        static const uint8_t asf[16] = {0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11,
                                        0xa6, 0xd9, 0x00, 0xaa, 0x00, 0x62, 0xce, 0x6c};
        if (!memcmp(p, asf, 16)) return DCL_MEDIA_VIDEO;
    }
    /* MPEG-TS: sync bytes every 188 bytes */
    if (len >= 188 * 2 + 1 && p[0] == 0x47 && p[188] == 0x47 && p[376] == 0x47) return DCL_MEDIA_VIDEO;
    return DCL_MEDIA_UNKNOWN;
}

/* ------------------------------------------------------------- scoring -- */

static void set_err(dcl_media_result *r, dcl_media_error e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(dcl_media_result *r, dcl_media_error e, const char *fmt, ...) {
    r->err = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* The last error without a leading "NAME: " (the caller prints the name). */
static const char *strip_name(const char *msg, const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n && !strncmp(msg, name, n) && msg[n] == ':' && msg[n + 1] == ' ') return msg + n + 2;
    return msg;
}

static dcl_media_error classify(dcl_status s, const char *msg) {
    switch (s) {
    case DCL_ERR_NOMEM:
    case DCL_ERR_INTERNAL: return DCL_MEDIA_FAILED;
    case DCL_ERR_UNSUPPORTED: return DCL_MEDIA_UNSUPPORTED;
    case DCL_ERR_INTERRUPTED: return DCL_MEDIA_TIMEOUT;
    default: return strstr(msg, "more than the allowed") ? DCL_MEDIA_TOO_LARGE : DCL_MEDIA_UNREADABLE;
    }
}

static int past(double deadline) { return deadline > 0 && dcl_now() > deadline; }

/* Faces and their P(fake); stops with DCL_ERR_INTERRUPTED past the deadline. */
static dcl_status score_image(dcl_deploy *d, const dcl_image *img, dcl_frame_result *fr, double deadline) {
    memset(fr, 0, sizeof *fr);
    fr->prob = NAN;
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || img->c != 3)
        return dcl_fail(DCL_ERR_ARG, "score: not a valid RGB image");
    if ((int64_t)img->w * img->h > d->max_pixels)
        return dcl_fail(DCL_ERR_FORMAT, "image %dx%d has more than the allowed %lld pixels", img->w, img->h,
                        (long long)d->max_pixels);
    if (d->threads > 0) dcl_set_num_threads(d->threads);
    dcl_face *faces = NULL;
    int n = 0;
    DCL_TRY(dcl_mtcnn_detect(d->mtcnn, img, &d->mopts, &faces, &n));
    if (n > d->max_faces) n = d->max_faces;
    dcl_status s = DCL_OK;
    if (n > 0) {
        fr->faces = calloc((size_t)n, sizeof *fr->faces);
        if (!fr->faces) s = dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    int size = d->info.size;
    for (int i = 0; i < n && !s; i++) {
        if (past(deadline)) { s = dcl_fail(DCL_ERR_INTERRUPTED, "deadline passed"); break; }
        const dcl_face *f = &faces[i];
        dcl_crop_rect r;
        dcl_image crop = {0};
        s = dcl_face_crop_rect(&r, f->x1, f->y1, f->x2, f->y2, d->info.crop_scale);
        if (!s) s = dcl_face_crop_apply(&crop, img, &r, size);
        if (!s) {
            dcl_image_to_tensor(d->x, &crop, d->info.mean, d->info.std);
            float p = NAN;
            s = dcl_detector_predict(d->det, d->x, &p);
            dcl_face_result *o = &fr->faces[fr->nfaces++];
            o->x1 = f->x1; o->y1 = f->y1; o->x2 = f->x2; o->y2 = f->y2;
            o->score = f->score;
            o->prob = p;
            if (!s && (isnan(fr->prob) || p > fr->prob)) fr->prob = p;
        }
        dcl_image_free(&crop);
    }
    free(faces);
    if (s) dcl_frame_result_free(fr);
    return s;
}

dcl_status dcl_deploy_score_image(dcl_deploy *d, const dcl_image *img, dcl_frame_result *fr) {
    if (!d || !fr) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_score_image: NULL argument");
    return score_image(d, img, fr, 0);
}

static void aggregate(dcl_media_result *r) {
    double sum = 0;
    int k = 0;
    float mx = NAN;
    r->faces = 0;
    for (int i = 0; i < r->nframes; i++) {
        const dcl_frame_result *f = &r->frames[i];
        r->faces += f->nfaces;
        if (isnan(f->prob)) continue;
        sum += f->prob;
        k++;
        if (isnan(mx) || f->prob > mx) mx = f->prob;
    }
    r->frames_with_faces = k;
    r->prob = k ? (float)(sum / k) : NAN;
    r->prob_max = mx;
}

static int has_ext(const char *path, const char *const *exts) {
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot) return 0;
    for (int i = 0; exts[i]; i++)
        if (!strcasecmp(dot + 1, exts[i])) return 1;
    return 0;
}

static void analyze_image(dcl_deploy *d, const dcl_image *img, const dcl_analyze_opts *o, dcl_media_result *r) {
    r->kind = DCL_MEDIA_IMAGE;
    r->width = img->w;
    r->height = img->h;
    r->frames = calloc(1, sizeof *r->frames);
    if (!r->frames) { set_err(r, DCL_MEDIA_FAILED, "out of memory"); return; }
    dcl_status s = score_image(d, img, &r->frames[0], o->deadline);
    if (s) {
        set_err(r, classify(s, dcl_last_error()), "%s", s == DCL_ERR_INTERRUPTED ? "timed out" : dcl_last_error());
        return;
    }
    r->nframes = 1;
    aggregate(r);
    if (o->annotate) {
        static const char *jpg[] = {"jpg", "jpeg", NULL};
        dcl_image copy = {0};
        s = dcl_image_crop(&copy, img, 0, 0, img->w, img->h);
        if (!s) {
            dcl_annotate_frame(&copy, &r->frames[0]);
            s = has_ext(o->annotate, jpg) ? dcl_image_save_jpeg(o->annotate, &copy, 92) : dcl_image_save_png(o->annotate, &copy);
        }
        dcl_image_free(&copy);
        if (s) set_err(r, DCL_MEDIA_FAILED, "annotated copy: %s", dcl_last_error());
    }
}

typedef struct vctx {
    dcl_deploy *d;
    dcl_media_result *r;
    double deadline, fps;
    dcl_status s;
} vctx;

static int on_frame(void *user, const dcl_image *frame, int64_t index, int k) {
    vctx *c = user;
    if (past(c->deadline)) { c->s = dcl_fail(DCL_ERR_INTERRUPTED, "deadline passed"); return 1; }
    dcl_frame_result *fr = &c->r->frames[c->r->nframes];
    c->s = score_image(c->d, frame, fr, c->deadline);
    if (c->s) return 1;
    fr->index = index;
    fr->time = c->fps > 0 ? index / c->fps : 0;
    c->r->nframes++;
    (void)k;
    return 0;
}

static dcl_status annotate_video(vctx *c, dcl_video *v, const int64_t *idx, int n, const char *out, const dcl_video_info *vi) {
    dcl_video_writer *w = NULL;
    double fps = vi->fps > 0 && vi->fps < 1000 ? vi->fps : 25;
    DCL_TRY(dcl_video_writer_open(&w, out, vi->width, vi->height, fps, NULL));
    dcl_image frame = {0};
    int k = 0;
    dcl_frame_result *last = NULL;
    dcl_status s = DCL_OK;
    for (;;) {
        int64_t index;
        s = dcl_video_read_frame(v, &frame, &index);
        if (s || index < 0) break;
        if (k < n && index == idx[k]) {
            if (on_frame(c, &frame, index, k)) { s = c->s; break; }
            last = &c->r->frames[c->r->nframes - 1];
            k++;
        }
        if (frame.w != vi->width || frame.h != vi->height) {
            s = dcl_fail(DCL_ERR_FORMAT, "frame %lld is %dx%d, the video %dx%d", (long long)index, frame.w, frame.h,
                         vi->width, vi->height);
            break;
        }
        if (last) dcl_annotate_frame(&frame, last);
        s = dcl_video_writer_write(w, &frame);
        if (s) break;
    }
    dcl_image_free(&frame);
    if (s) {
        dcl_video_writer_abort(w);
        return s;
    }
    return dcl_video_writer_close(w);
}

static void analyze_video(dcl_deploy *d, const char *path, const dcl_analyze_opts *o, dcl_media_result *r) {
    r->kind = DCL_MEDIA_VIDEO;
    dcl_video *v = NULL;
    dcl_status s = dcl_video_open(&v, path);
    if (s) {
        const char *m = strip_name(dcl_last_error(), path);
        set_err(r, classify(s, m), "%s", m);
        return;
    }
    const dcl_video_info *vi = dcl_video_get_info(v);
    r->width = vi->width;
    r->height = vi->height;
    r->fps = vi->fps;
    r->duration = vi->duration;
    snprintf(r->codec, sizeof r->codec, "%s", vi->codec);
    double dur = vi->duration > 0 ? vi->duration : (vi->fps > 0 ? vi->nframes / vi->fps : 0);
    int64_t *idx = NULL;
    int n = 0;
    if ((int64_t)vi->width * vi->height > d->max_pixels) {
        set_err(r, DCL_MEDIA_TOO_LARGE, "video frames of %dx%d have more than the allowed %lld pixels", vi->width,
                vi->height, (long long)d->max_pixels);
        goto done;
    }
    if (o->max_video_seconds > 0 && dur > o->max_video_seconds) {
        set_err(r, DCL_MEDIA_TOO_LONG, "video lasts %.1f s, longer than the allowed %.1f s", dur, o->max_video_seconds);
        goto done;
    }
    s = dcl_video_count_frames(v, &r->frames_total);
    if (!s && o->max_video_seconds > 0 && dur <= 0 && vi->fps > 0 && r->frames_total / vi->fps > o->max_video_seconds) {
        set_err(r, DCL_MEDIA_TOO_LONG, "video lasts %.1f s, longer than the allowed %.1f s", r->frames_total / vi->fps,
                o->max_video_seconds);
        goto done;
    }
    if (!s && r->frames_total <= 0) {
        set_err(r, DCL_MEDIA_UNREADABLE, "video has no frames");
        goto done;
    }
    int want = o->frames > 0 ? o->frames : 16;
    if (!s) {
        idx = malloc((size_t)want * sizeof *idx);
        r->frames = calloc((size_t)want, sizeof *r->frames);
        if (!idx || !r->frames) s = dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    if (!s) s = dcl_video_plan(idx, &n, r->frames_total, want, DCL_SAMPLE_EVEN, NULL);
    if (s) {
        const char *m = strip_name(dcl_last_error(), path);
        set_err(r, classify(s, m), "%s", m);
        goto done;
    }
    vctx c = {d, r, o->deadline, vi->fps, DCL_OK};
    if (o->annotate) {
        s = annotate_video(&c, v, idx, n, o->annotate, vi);
        if (s && !c.s) {
            set_err(r, DCL_MEDIA_FAILED, "annotated copy: %s", dcl_last_error());
            goto done;
        }
    } else {
        int found = 0;
        s = dcl_video_read_frames(v, idx, n, on_frame, &c, &found);
    }
    if (c.s) s = c.s;
    r->warnings = dcl_video_warnings(v);
    if (s) {
        const char *m = strip_name(dcl_last_error(), path);
        set_err(r, classify(s, m), "%s", s == DCL_ERR_INTERRUPTED ? "timed out" : m);
        goto done;
    }
    if (r->nframes == 0) {
        const char *w = dcl_video_first_warning(v);
        set_err(r, DCL_MEDIA_UNREADABLE, "no frame could be decoded%s%s", w[0] ? ": " : "", strip_name(w, path));
        goto done;
    }
    aggregate(r);
done:
    free(idx);
    dcl_video_close(v);
}

static void begin(dcl_media_result *r) {
    memset(r, 0, sizeof *r);
    r->prob = r->prob_max = NAN;
}

static void finish(dcl_media_result *r, double t0) {
    r->seconds = dcl_now() - t0;
    if (r->err) {
        /* a failed input keeps what was learnt about it but no scores */
        dcl_media_result keep = *r;
        keep.frames = NULL;
        keep.nframes = 0;
        dcl_media_result_free(r);
        *r = keep;
        r->faces = r->frames_with_faces = 0;
        r->prob = r->prob_max = NAN;
    }
}

dcl_status dcl_deploy_analyze_file(dcl_deploy *d, const char *path, const dcl_analyze_opts *o_in, dcl_media_result *r) {
    if (!d || !path || !r) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_analyze_file: NULL argument");
    dcl_analyze_opts o;
    if (o_in) o = *o_in;
    else dcl_analyze_opts_default(&o);
    double t0 = dcl_now();
    begin(r);
    /* the first bytes decide between the image decoders and FFmpeg */
    uint8_t head[512];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(r, DCL_MEDIA_UNREADABLE, "%s", errno == ENOENT ? "no such file" : strerror(errno));
        finish(r, t0);
        return DCL_OK;
    }
    n = fread(head, 1, sizeof head, f);
    int rerr = ferror(f);
    fclose(f);
    dcl_media_kind k = rerr ? DCL_MEDIA_UNKNOWN : dcl_media_sniff(head, n);
    if (rerr) {
        set_err(r, DCL_MEDIA_UNREADABLE, "cannot read (is it a directory?)");
    } else if (k == DCL_MEDIA_IMAGE) {
        dcl_image img = {0};
        r->kind = DCL_MEDIA_IMAGE;
        dcl_status s = dcl_image_load_ex(&img, path, d->max_pixels);
        if (s) {
            const char *m = strip_name(dcl_last_error(), path);
            set_err(r, classify(s, m), "%s", m);
        } else {
            analyze_image(d, &img, &o, r);
        }
        dcl_image_free(&img);
    } else if (o.strict_containers && k != DCL_MEDIA_VIDEO) {
        set_err(r, DCL_MEDIA_UNSUPPORTED, "not a JPEG/PNG image or a video in a known container");
    } else {
        analyze_video(d, path, &o, r);
    }
    finish(r, t0);
    return DCL_OK;
}

dcl_status dcl_deploy_analyze_mem(dcl_deploy *d, const void *buf, size_t len, const dcl_analyze_opts *o_in, dcl_media_result *r) {
    if (!d || !r || (!buf && len)) return dcl_fail(DCL_ERR_ARG, "dcl_deploy_analyze_mem: NULL argument");
    dcl_analyze_opts o;
    if (o_in) o = *o_in;
    else dcl_analyze_opts_default(&o);
    double t0 = dcl_now();
    begin(r);
    dcl_media_kind k = dcl_media_sniff(buf, len);
    if (len == 0) {
        set_err(r, DCL_MEDIA_UNREADABLE, "empty data");
    } else if (k == DCL_MEDIA_IMAGE) {
        dcl_image img = {0};
        r->kind = DCL_MEDIA_IMAGE;
        dcl_status s = dcl_image_decode_ex(&img, buf, len, d->max_pixels);
        if (s) set_err(r, classify(s, dcl_last_error()), "%s", dcl_last_error());
        else analyze_image(d, &img, &o, r);
        dcl_image_free(&img);
    } else if (o.strict_containers && k != DCL_MEDIA_VIDEO) {
        set_err(r, DCL_MEDIA_UNSUPPORTED, "not a JPEG/PNG image or a video in a known container");
    } else {
        dcl_memfile mf;
        dcl_status s = dcl_memfile_create(&mf, buf, len);
        if (s) set_err(r, DCL_MEDIA_FAILED, "%s", dcl_last_error());
        else {
            analyze_video(d, mf.path, &o, r);
            dcl_memfile_close(&mf);
        }
    }
    finish(r, t0);
    return DCL_OK;
}

/* ------------------------------------------------------------- output -- */

static void put_prob(dcl_buf *b, float p) {
    if (isnan(p)) dcl_buf_puts(b, "null");
    else dcl_buf_printf(b, "%.6g", p);
}

static const char *label(float p, float thr) { return isnan(p) ? NULL : p >= thr ? "fake" : "real"; }

static const char *kind_name(dcl_media_kind k) {
    return k == DCL_MEDIA_IMAGE ? "image" : k == DCL_MEDIA_VIDEO ? "video" : "unknown";
}

static void put_faces(dcl_buf *b, const dcl_frame_result *f) {
    dcl_buf_puts(b, "[");
    for (int j = 0; j < f->nfaces; j++) {
        const dcl_face_result *x = &f->faces[j];
        dcl_buf_printf(b, "%s{\"box\": [%.1f, %.1f, %.1f, %.1f], \"score\": %.4f, \"prob\": ", j ? ", " : "", x->x1, x->y1,
                       x->x2, x->y2, x->score);
        put_prob(b, x->prob);
        dcl_buf_puts(b, "}");
    }
    dcl_buf_puts(b, "]");
}

dcl_status dcl_media_result_json(dcl_buf *b, const dcl_media_result *r, const char *name, float thr, int with_frames) {
    size_t start = b->len;
    dcl_buf_puts(b, "{");
    if (name) {
        dcl_buf_puts(b, "\"path\": ");
        dcl_buf_json_str(b, name);
        dcl_buf_puts(b, ", ");
    }
    if (r->err) {
        dcl_buf_puts(b, "\"error\": ");
        dcl_buf_json_str(b, r->error);
        dcl_buf_puts(b, "}");
        return b->data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    dcl_buf_printf(b, "\"type\": \"%s\", \"width\": %d, \"height\": %d", kind_name(r->kind), r->width, r->height);
    if (r->kind == DCL_MEDIA_IMAGE) {
        dcl_buf_puts(b, ", \"faces\": ");
        if (r->nframes > 0) put_faces(b, &r->frames[0]);
        else dcl_buf_puts(b, "[]");
    } else {
        dcl_buf_printf(b, ", \"fps\": %.6g, \"duration\": %.6g, \"frames_total\": %lld, \"codec\": ", r->fps, r->duration,
                       (long long)r->frames_total);
        dcl_buf_json_str(b, r->codec);
        dcl_buf_printf(b, ", \"frames_sampled\": %d, \"frames_with_faces\": %d, \"faces_total\": %d", r->nframes,
                       r->frames_with_faces, r->faces);
        if (with_frames) {
            dcl_buf_puts(b, ", \"frames\": [");
            for (int i = 0; i < r->nframes; i++) {
                const dcl_frame_result *f = &r->frames[i];
                dcl_buf_printf(b, "%s{\"index\": %lld, \"time\": %.3f, \"prob\": ", i ? ", " : "", (long long)f->index, f->time);
                put_prob(b, f->prob);
                dcl_buf_puts(b, ", \"faces\": ");
                put_faces(b, f);
                dcl_buf_puts(b, "}");
            }
            dcl_buf_puts(b, "]");
        }
        if (r->warnings) dcl_buf_printf(b, ", \"warnings\": %lld", (long long)r->warnings);
    }
    dcl_buf_puts(b, ", \"prob\": ");
    put_prob(b, r->prob);
    dcl_buf_puts(b, ", \"prob_max\": ");
    put_prob(b, r->prob_max);
    const char *l = label(r->prob, thr);
    dcl_buf_printf(b, ", \"label\": %s%s%s, \"threshold\": %.6g, \"seconds\": %.3f}", l ? "\"" : "", l ? l : "null",
                   l ? "\"" : "", thr, r->seconds);
    if (!b->data || b->len <= start) return dcl_fail(DCL_ERR_NOMEM, "out of memory");
    return DCL_OK;
}

const char *dcl_media_csv_header(void) {
    return "path,kind,frame,face,x1,y1,x2,y2,face_score,prob,prob_max,label,error\n";
}

static void csv_str(dcl_buf *b, const char *s) {
    int quote = strpbrk(s, ",\"\n\r") != NULL;
    if (!quote) { dcl_buf_puts(b, s); return; }
    dcl_buf_puts(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') dcl_buf_puts(b, "\"\"");
        else dcl_buf_append(b, p, 1);
    }
    dcl_buf_puts(b, "\"");
}

static void csv_prob(dcl_buf *b, float p) {
    if (!isnan(p)) dcl_buf_printf(b, "%.6g", p);
}

static void csv_faces(dcl_buf *b, const char *name, const dcl_frame_result *f, int is_video, float thr) {
    for (int j = 0; j < f->nfaces; j++) {
        const dcl_face_result *x = &f->faces[j];
        csv_str(b, name);
        if (is_video) dcl_buf_printf(b, ",face,%lld,%d,", (long long)f->index, j);
        else dcl_buf_printf(b, ",face,,%d,", j);
        dcl_buf_printf(b, "%.1f,%.1f,%.1f,%.1f,%.4f,", x->x1, x->y1, x->x2, x->y2, x->score);
        csv_prob(b, x->prob);
        dcl_buf_printf(b, ",,%s,\n", label(x->prob, thr) ? label(x->prob, thr) : "");
    }
}

dcl_status dcl_media_result_csv(dcl_buf *b, const dcl_media_result *r, const char *name, float thr) {
    if (!name) name = "";
    if (r->err) {
        csv_str(b, name);
        dcl_buf_puts(b, ",error,,,,,,,,,,,");
        csv_str(b, r->error);
        dcl_buf_puts(b, "\n");
        return b->data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    int video = r->kind == DCL_MEDIA_VIDEO;
    for (int i = 0; i < r->nframes; i++) {
        const dcl_frame_result *f = &r->frames[i];
        csv_faces(b, name, f, video, thr);
        if (video) {
            csv_str(b, name);
            dcl_buf_printf(b, ",frame,%lld,,,,,,,", (long long)f->index);
            csv_prob(b, f->prob);
            dcl_buf_printf(b, ",,%s,\n", label(f->prob, thr) ? label(f->prob, thr) : "");
        }
    }
    csv_str(b, name);
    dcl_buf_printf(b, ",%s,,,,,,,,", kind_name(r->kind));
    csv_prob(b, r->prob);
    dcl_buf_puts(b, ",");
    csv_prob(b, r->prob_max);
    dcl_buf_printf(b, ",%s,\n", label(r->prob, thr) ? label(r->prob, thr) : "");
    return b->data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "out of memory");
}

dcl_status dcl_media_result_table(dcl_buf *b, const dcl_media_result *r, const char *name, float thr, int header) {
    if (!name) name = "-";
    if (header) dcl_buf_printf(b, "%-40s %-6s %7s %6s %8s %8s  %s\n", "INPUT", "TYPE", "FRAMES", "FACES", "P(FAKE)", "MAX", "VERDICT");
    const char *shown = name;
    size_t n = strlen(name);
    char cut[48];
    if (n > 40) {
        snprintf(cut, sizeof cut, "...%s", name + n - 37);
        shown = cut;
    }
    if (r->err) {
        dcl_buf_printf(b, "%-40s %-6s error: %s\n", shown, r->kind ? kind_name(r->kind) : "-", r->error);
        return b->data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "out of memory");
    }
    char p[16] = "-", m[16] = "-";
    if (!isnan(r->prob)) snprintf(p, sizeof p, "%.3f", r->prob);
    if (!isnan(r->prob_max)) snprintf(m, sizeof m, "%.3f", r->prob_max);
    const char *l = label(r->prob, thr);
    dcl_buf_printf(b, "%-40s %-6s %7d %6d %8s %8s  %s\n", shown, kind_name(r->kind), r->nframes, r->faces, p, m,
                   l ? l : "no face");
    return b->data ? DCL_OK : dcl_fail(DCL_ERR_NOMEM, "out of memory");
}
