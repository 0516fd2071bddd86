/* Video decoding / encoding on FFmpeg (libavformat, libavcodec, libswscale).
 * See include/dcl/video.h for the contract (exact frame indices, seeking,
 * damage counting, writer). */
#include "dcl/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* FFmpeg prints to stderr by default; the library reports problems itself. */
static void quiet_ffmpeg(void) {
    av_log_set_level(dcl_log_level >= 3 ? AV_LOG_WARNING : AV_LOG_FATAL);
}

static const char *averr(int e, char *buf, size_t n) {
    if (av_strerror(e, buf, n) < 0) snprintf(buf, n, "error %d", e);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* image helpers                                                             */

static dcl_status image_ensure(dcl_image *im, int w, int h, int c) {
    size_t bytes = (size_t)w * h * c;
    if (im->data && im->w == w && im->h == h && im->c == c) return DCL_OK;
    free(im->data);
    im->data = malloc(bytes ? bytes : 1);
    if (!im->data) {
        im->w = im->h = im->c = 0;
        return dcl_fail(DCL_ERR_NOMEM, "video: cannot allocate a %dx%dx%d frame", w, h, c);
    }
    im->w = w; im->h = h; im->c = c;
    return DCL_OK;
}

/* dst = src rotated clockwise by rot degrees (90/180/270); dst sized here */
static dcl_status rotate_rgb(dcl_image *dst, const uint8_t *src, int w, int h, int rot) {
    int ow = (rot == 180) ? w : h, oh = (rot == 180) ? h : w;
    DCL_TRY(image_ensure(dst, ow, oh, 3));
    uint8_t *d = dst->data;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int ox, oy;
            if (rot == 90) { ox = h - 1 - y; oy = x; }
            else if (rot == 180) { ox = w - 1 - x; oy = h - 1 - y; }
            else { ox = y; oy = w - 1 - x; } /* 270 */
            const uint8_t *s = src + ((size_t)y * w + x) * 3;
            uint8_t *o = d + ((size_t)oy * ow + ox) * 3;
            o[0] = s[0]; o[1] = s[1]; o[2] = s[2];
        }
    }
    return DCL_OK;
}

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

typedef struct key_ts { int64_t pts, dts; } key_ts;

struct dcl_video {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVStream *st;
    int si;
    AVPacket *pkt;
    AVFrame *frame;
    int frame_pending;     /* frame holds a decoded, not yet consumed frame */
    int64_t pending_index;
    int pkt_held;          /* pkt was refused with EAGAIN and must be resent */
    struct SwsContext *sws;
    dcl_video_info info;
    int autorotate;

    int read_eof;          /* demuxer finished; flush packet sent */
    int flush_sent;
    int consecutive_errors;

    /* sequential counter: valid when decoding started at the first frame */
    int counter_valid;
    int64_t counter;
    int64_t pos;           /* index of the last frame taken from the decoder, -1 */

    /* timestamp table (presentation order) and keyframes, built on demand */
    int table_built, table_ok;
    int64_t *pts; int64_t npts;
    key_ts *keys; int nkeys;

    dcl_image rgb;         /* conversion result before rotation */
    dcl_image cbimg;       /* frame handed to read_frames callbacks */

    int64_t header_nframes; /* count announced by the container (or estimated) */
    int header_estimated;
    int end_checked;

    int64_t warnings, seeks, decoded;
    char first_warning[256];
};

static void warn(dcl_video *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(dcl_video *v, const char *fmt, ...) {
    v->warnings++;
    if (!v->first_warning[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->first_warning, sizeof v->first_warning, fmt, ap);
        va_end(ap);
    }
}

static int is_still_image_format(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "image2")) return 1;
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, "_pipe");
}

static void close_av(dcl_video *v) {
    if (v->dec) avcodec_free_context(&v->dec);
    if (v->fmt) avformat_close_input(&v->fmt);
    v->st = NULL;
    v->si = -1;
}

/* Opens container + decoder; fills info.  Messages name the file. */
static dcl_status open_av(dcl_video *v) {
    const char *path = v->path;
    char eb[128];
    AVFormatContext *fmt = NULL;
    AVDictionary *fopts = NULL;
    av_dict_set(&fopts, "protocol_whitelist", "file", 0); /* never follow playlists to other protocols */
    int r = avformat_open_input(&fmt, path, NULL, &fopts);
    av_dict_free(&fopts);
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory opening the container", path);
        /* the file itself was readable (checked by the caller), so a failure
         * here is about its content; demuxers report short files as EOF or EIO */
        return dcl_fail(DCL_ERR_FORMAT, "%s: not a readable video (corrupt, truncated or not a media file): %s", path,
                        averr(r, eb, sizeof eb));
    }
    v->fmt = fmt;
    const char *iname = fmt->iformat ? fmt->iformat->name : "";
    if (is_still_image_format(iname))
        return dcl_fail(DCL_ERR_FORMAT, "%s: is a still image (%s), not a video", path, iname);
    r = avformat_find_stream_info(fmt, NULL);
    if (r < 0)
        return dcl_fail(DCL_ERR_FORMAT, "%s: corrupt or truncated header (%s)", path, averr(r, eb, sizeof eb));

    int si = -1, nvideo = 0;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        AVStream *s = fmt->streams[i];
        if (s->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
        if (s->disposition & AV_DISPOSITION_ATTACHED_PIC) continue;
        nvideo++;
        if (si < 0) si = (int)i;
    }
    if (si < 0) {
        char kinds[96] = "";
        for (unsigned i = 0; i < fmt->nb_streams && strlen(kinds) < 80; i++) {
            const char *t = av_get_media_type_string(fmt->streams[i]->codecpar->codec_type);
            if (fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC) t = "cover-art";
            snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", i ? ", " : "", t ? t : "unknown");
        }
        return dcl_fail(DCL_ERR_FORMAT, "%s: no video stream (%s: %u stream%s%s%s)", path, iname,
                        fmt->nb_streams, fmt->nb_streams == 1 ? "" : "s", fmt->nb_streams ? ": " : "", kinds);
    }
    AVStream *st = fmt->streams[si];
    /* prefer the best stream when there are several */
    if (nvideo > 1) {
        int b = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (b >= 0 && !(fmt->streams[b]->disposition & AV_DISPOSITION_ATTACHED_PIC)) { si = b; st = fmt->streams[b]; }
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        fmt->streams[i]->discard = ((int)i == si) ? AVDISCARD_DEFAULT : AVDISCARD_ALL;

    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        char tag[AV_FOURCC_MAX_STRING_SIZE] = "";
        if (st->codecpar->codec_tag) av_fourcc_make_string(tag, st->codecpar->codec_tag);
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: no decoder for video codec '%s'%s%s%s in this FFmpeg", path,
                        avcodec_get_name(st->codecpar->codec_id), tag[0] ? " (FourCC " : "", tag, tag[0] ? ")" : "");
    }
    if (st->codecpar->width <= 0 || st->codecpar->height <= 0)
        return dcl_fail(DCL_ERR_FORMAT, "%s: video stream has no frame size (corrupt header)", path);
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot allocate decoder", path);
    v->dec = dec;
    r = avcodec_parameters_to_context(dec, st->codecpar);
    if (r < 0) return dcl_fail(DCL_ERR_FORMAT, "%s: bad codec parameters: %s", path, averr(r, eb, sizeof eb));
    dec->pkt_timebase = st->time_base;
    dec->thread_count = 1;
    r = avcodec_open2(dec, codec, NULL);
    if (r < 0)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: cannot open decoder '%s': %s", path, codec->name,
                        averr(r, eb, sizeof eb));
    v->st = st;
    v->si = si;

    /* metadata */
    dcl_video_info *in = &v->info;
    memset(in, 0, sizeof *in);
    in->coded_width = st->codecpar->width;
    in->coded_height = st->codecpar->height;
    AVRational fr = st->avg_frame_rate;
    if (fr.num <= 0 || fr.den <= 0) fr = st->r_frame_rate;
    in->fps = (fr.num > 0 && fr.den > 0) ? av_q2d(fr) : 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration = st->duration * av_q2d(st->time_base);
    else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        in->duration = fmt->duration / (double)AV_TIME_BASE;
    if (st->nb_frames > 0) {
        in->nframes = st->nb_frames;
    } else {
        in->nframes = (int64_t)llround(in->duration * in->fps);
        in->nframes_estimated = 1;
    }
    size_t sdsize = 0;
    const uint8_t *dm = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &sdsize);
    if (dm && sdsize >= 9 * sizeof(int32_t)) {
        double a = -av_display_rotation_get((const int32_t *)dm); /* clockwise */
        if (!isnan(a)) {
            int q = (int)lround(a / 90.0);
            q = ((q % 4) + 4) % 4;
            in->rotation = q * 90;
        }
    }
    snprintf(in->codec, sizeof in->codec, "%s", codec->name);
    snprintf(in->container, sizeof in->container, "%s", iname);
    return DCL_OK;
}

static void update_display_size(dcl_video *v) {
    int sw = v->autorotate && (v->info.rotation == 90 || v->info.rotation == 270);
    v->info.width = sw ? v->info.coded_height : v->info.coded_width;
    v->info.height = sw ? v->info.coded_width : v->info.coded_height;
}

static void reset_decode_state(dcl_video *v) {
    v->frame_pending = 0;
    v->pkt_held = 0;
    if (v->pkt) av_packet_unref(v->pkt);
    v->read_eof = 0;
    v->flush_sent = 0;
    v->consecutive_errors = 0;
}

dcl_status dcl_video_open(dcl_video **out, const char *path) {
    if (!out || !path) return dcl_fail(DCL_ERR_ARG, "dcl_video_open: NULL argument");
    *out = NULL;
    quiet_ffmpeg();
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dcl_fail(DCL_ERR_IO, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
    if (S_ISDIR(sb.st_mode)) return dcl_fail(DCL_ERR_FORMAT, "%s: is a directory, not a video file", path);
    if (S_ISREG(sb.st_mode) && sb.st_size == 0) return dcl_fail(DCL_ERR_FORMAT, "%s: empty file (0 bytes), not a video", path);
    FILE *probe = fopen(path, "rb");
    if (!probe) return dcl_fail(DCL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    fclose(probe);

    dcl_video *v = calloc(1, sizeof *v);
    if (!v) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    v->path = strdup(path);
    v->si = -1;
    v->autorotate = 1;
    v->pos = -1;
    v->counter_valid = 1;
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->path || !v->pkt || !v->frame) {
        dcl_video_close(v);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    }
    dcl_status s = open_av(v);
    if (s != DCL_OK) {
        dcl_video_close(v);
        return s;
    }
    update_display_size(v);
    v->header_nframes = v->info.nframes;
    v->header_estimated = v->info.nframes_estimated;
    *out = v;
    return DCL_OK;
}

void dcl_video_close(dcl_video *v) {
    if (!v) return;
    close_av(v);
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
    sws_freeContext(v->sws);
    free(v->pts);
    free(v->keys);
    free(v->rgb.data);
    free(v->cbimg.data);
    free(v->path);
    free(v);
}

const dcl_video_info *dcl_video_get_info(const dcl_video *v) { return &v->info; }
void dcl_video_set_autorotate(dcl_video *v, int on) { v->autorotate = on ? 1 : 0; update_display_size(v); }
int64_t dcl_video_warnings(const dcl_video *v) { return v->warnings; }
const char *dcl_video_first_warning(const dcl_video *v) { return v->first_warning; }
int64_t dcl_video_seeks(const dcl_video *v) { return v->seeks; }
int64_t dcl_video_decoded(const dcl_video *v) { return v->decoded; }

/* ---- timestamp table ---- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
static int cmp_key(const void *a, const void *b) {
    const key_ts *x = a, *y = b;
    return (x->pts > y->pts) - (x->pts < y->pts);
}

/* Reads every packet of the video stream (no decoding) through a second
 * demuxer instance, collecting presentation timestamps and keyframes. */
static dcl_status build_table(dcl_video *v) {
    if (v->table_built) return DCL_OK;
    v->table_built = 1;
    v->table_ok = 0;
    AVFormatContext *fmt = NULL;
    char eb[128];
    AVDictionary *fopts = NULL;
    av_dict_set(&fopts, "protocol_whitelist", "file", 0);
    int r = avformat_open_input(&fmt, v->path, NULL, &fopts);
    av_dict_free(&fopts);
    if (r < 0) {
        warn(v, "%s: cannot reopen to index timestamps: %s", v->path, averr(r, eb, sizeof eb));
        return DCL_OK; /* sequential decoding still works */
    }
    if ((int)fmt->nb_streams <= v->si || fmt->streams[v->si]->codecpar->codec_id != v->st->codecpar->codec_id) {
        if (avformat_find_stream_info(fmt, NULL) < 0 || (int)fmt->nb_streams <= v->si) {
            avformat_close_input(&fmt);
            return DCL_OK;
        }
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        fmt->streams[i]->discard = ((int)i == v->si) ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    AVPacket *pkt = av_packet_alloc();
    int64_t cap = 256, n = 0;
    int kcap = 16, nk = 0;
    int64_t *pts = malloc(cap * sizeof *pts);
    key_ts *keys = malloc(kcap * sizeof *keys);
    int ok = pkt && pts && keys;
    int missing_pts = 0, have_pts = 0, errors = 0;
    while (ok) {
        r = av_read_frame(fmt, pkt);
        if (r == AVERROR_EOF) break;
        if (r < 0) {
            if (++errors > 64 || (fmt->pb && avio_feof(fmt->pb))) break;
            continue;
        }
        errors = 0;
        if (pkt->stream_index == v->si && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
            int64_t t = pkt->pts;
            if (t == AV_NOPTS_VALUE) { missing_pts++; t = pkt->dts; }
            else have_pts++;
            if (t == AV_NOPTS_VALUE) { ok = 0; }
            else {
                if (n == cap) {
                    int64_t *np = realloc(pts, 2 * cap * sizeof *pts);
                    if (!np) { ok = 0; av_packet_unref(pkt); break; }
                    pts = np; cap *= 2;
                }
                pts[n++] = t;
                if (pkt->flags & AV_PKT_FLAG_KEY) {
                    if (nk == kcap) {
                        key_ts *nkp = realloc(keys, 2 * kcap * sizeof *keys);
                        if (!nkp) { ok = 0; av_packet_unref(pkt); break; }
                        keys = nkp; kcap *= 2;
                    }
                    keys[nk].pts = t;
                    keys[nk].dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : t;
                    nk++;
                }
            }
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&fmt);
    /* timestamps from dts are only presentation times when nothing is reordered */
    if (missing_pts && (have_pts || v->st->codecpar->video_delay > 0)) ok = 0;
    if (ok && n > 0) {
        qsort(pts, n, sizeof *pts, cmp_i64);
        for (int64_t i = 1; i < n; i++)
            if (pts[i] == pts[i - 1]) { ok = 0; break; }
    }
    if (!ok || n == 0) {
        free(pts); free(keys);
        return DCL_OK;
    }
    if (nk > 0) qsort(keys, nk, sizeof *keys, cmp_key);
    else { free(keys); keys = NULL; } /* exact numbering, but no seeking */
    if (v->header_nframes > 0 && n < v->header_nframes - (v->header_estimated ? 1 : 0))
        warn(v, "%s: packets for %" PRId64 " frames, the header announces %" PRId64 " (truncated or damaged)", v->path, n,
             v->header_nframes);
    v->pts = pts; v->npts = n;
    v->keys = keys; v->nkeys = nk;
    v->table_ok = 1;
    v->info.nframes = n;
    v->info.nframes_estimated = 0;
    return DCL_OK;
}

/* index of timestamp t in the table, -1 when absent */
static int64_t table_lookup(const dcl_video *v, int64_t t) {
    int64_t lo = 0, hi = v->npts - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->pts[mid] == t) return mid;
        if (v->pts[mid] < t) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

/* ---- decoding ---- */

/* Receives the next decoded frame into v->frame.  Returns 1 (frame), 0 (end). */
static int decode_next(dcl_video *v) {
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            v->decoded++;
            v->consecutive_errors = 0;
            if ((v->frame->flags & AV_FRAME_FLAG_CORRUPT) || v->frame->decode_error_flags)
                warn(v, "%s: frame near pts %" PRId64 " decoded with errors", v->path, v->frame->best_effort_timestamp);
            return 1;
        }
        if (r == AVERROR_EOF) return 0;
        if (r != AVERROR(EAGAIN)) {
            char eb[128];
            warn(v, "%s: decoder error: %s", v->path, averr(r, eb, sizeof eb));
            if (++v->consecutive_errors > 256) return 0;
            continue;
        }
        /* decoder wants input */
        if (v->read_eof) {
            if (v->flush_sent) return 0; /* should not happen: EOF expected */
            avcodec_send_packet(v->dec, NULL);
            v->flush_sent = 1;
            continue;
        }
        if (!v->pkt_held) {
            r = av_read_frame(v->fmt, v->pkt);
            if (r == AVERROR_EOF) { v->read_eof = 1; continue; }
            if (r < 0) {
                char eb[128];
                if (v->fmt->pb && avio_feof(v->fmt->pb)) { v->read_eof = 1; continue; }
                warn(v, "%s: unreadable packet skipped: %s", v->path, averr(r, eb, sizeof eb));
                if (++v->consecutive_errors > 64) v->read_eof = 1;
                continue;
            }
            if (v->pkt->stream_index != v->si) { av_packet_unref(v->pkt); continue; }
        }
        r = avcodec_send_packet(v->dec, v->pkt);
        if (r == AVERROR(EAGAIN)) { v->pkt_held = 1; continue; }
        v->pkt_held = 0;
        if (r < 0) {
            char eb[128];
            warn(v, "%s: damaged packet at pts %" PRId64 " skipped: %s", v->path, v->pkt->pts, averr(r, eb, sizeof eb));
            if (++v->consecutive_errors > 256) v->read_eof = 1;
        }
        av_packet_unref(v->pkt);
    }
}

/* Index of the frame now in v->frame; -1 when it cannot be determined. */
static int64_t frame_index(dcl_video *v) {
    if (v->table_ok) {
        int64_t t = v->frame->best_effort_timestamp;
        if (t == AV_NOPTS_VALUE) t = v->frame->pts;
        int64_t i = t == AV_NOPTS_VALUE ? -1 : table_lookup(v, t);
        if (i >= 0) {
            if (v->counter_valid) v->counter = i + 1;
            return i;
        }
        if (!v->counter_valid) return -1;
        warn(v, "%s: frame timestamp %" PRId64 " not in the packet table; numbering sequentially", v->path, t);
        v->table_ok = 0;
    }
    if (!v->counter_valid) return -1;
    return v->counter++;
}

/* Takes the next frame (pending one first). 1 = frame in v->frame with *idx. */
static int next_frame(dcl_video *v, int64_t *idx) {
    if (v->frame_pending) {
        v->frame_pending = 0;
        *idx = v->pending_index;
        v->pos = *idx;
        return 1;
    }
    for (;;) {
        if (!decode_next(v)) return 0;
        int64_t i = frame_index(v);
        if (i < 0) return -1; /* lost track (only after a seek) */
        *idx = i;
        v->pos = i;
        return 1;
    }
}

static dcl_status convert(dcl_video *v, dcl_image *out) {
    AVFrame *f = v->frame;
    int w = f->width, h = f->height;
    if (w <= 0 || h <= 0) return dcl_fail(DCL_ERR_FORMAT, "%s: decoded frame has no size", v->path);
    enum AVPixelFormat pf = (enum AVPixelFormat)f->format;
    int full = f->color_range == AVCOL_RANGE_JPEG;
    switch (pf) { /* deprecated full-range aliases */
    case AV_PIX_FMT_YUVJ420P: pf = AV_PIX_FMT_YUV420P; full = 1; break;
    case AV_PIX_FMT_YUVJ422P: pf = AV_PIX_FMT_YUV422P; full = 1; break;
    case AV_PIX_FMT_YUVJ444P: pf = AV_PIX_FMT_YUV444P; full = 1; break;
    case AV_PIX_FMT_YUVJ440P: pf = AV_PIX_FMT_YUV440P; full = 1; break;
    default: break;
    }
    v->sws = sws_getCachedContext(v->sws, w, h, pf, w, h, AV_PIX_FMT_RGB24,
                                  SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!v->sws)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB", v->path,
                        av_get_pix_fmt_name(pf) ? av_get_pix_fmt_name(pf) : "?");
    int cs = f->colorspace;
    const int *coef = sws_getCoefficients(cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : cs);
    const int *dcoef = sws_getCoefficients(SWS_CS_DEFAULT);
    sws_setColorspaceDetails(v->sws, coef, full, dcoef, 1, 0, 1 << 16, 1 << 16);

    int rot = v->autorotate ? v->info.rotation : 0;
    dcl_image *dst = rot ? &v->rgb : out;
    DCL_TRY(image_ensure(dst, w, h, 3));
    uint8_t *dd[4] = {dst->data, NULL, NULL, NULL};
    int dl[4] = {w * 3, 0, 0, 0};
    sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, h, dd, dl);
    if (rot) DCL_TRY(rotate_rgb(out, dst->data, w, h, rot));
    return DCL_OK;
}

dcl_status dcl_video_rewind(dcl_video *v) {
    /* Reopening is the one way back to the first frame that works for every
     * container, and keeps the sequential counter trustworthy. */
    close_av(v);
    reset_decode_state(v);
    dcl_video_info keep = v->info;
    dcl_status s = open_av(v);
    if (s != DCL_OK) return s;
    if (v->table_ok) { v->info.nframes = keep.nframes; v->info.nframes_estimated = 0; }
    update_display_size(v);
    v->counter_valid = 1;
    v->counter = 0;
    v->pos = -1;
    return DCL_OK;
}

dcl_status dcl_video_read_frame(dcl_video *v, dcl_image *out, int64_t *index) {
    if (!v || !out) return dcl_fail(DCL_ERR_ARG, "dcl_video_read_frame: NULL argument");
    int64_t i = -1;
    int r = next_frame(v, &i);
    if (r < 0) {
        /* after a seek whose landing could not be identified: start over */
        int64_t want = v->pos + 1;
        DCL_TRY(dcl_video_rewind(v));
        for (;;) {
            r = next_frame(v, &i);
            if (r <= 0 || i >= want) break;
        }
    }
    if (r <= 0) {
        /* a stream that stops short of what its header announced lost frames */
        if (!v->end_checked && v->counter_valid) {
            v->end_checked = 1;
            int64_t seen = v->pos + 1;
            if (v->header_nframes > 0 && seen < v->header_nframes - (v->header_estimated ? 1 : 0))
                warn(v, "%s: video ended after %" PRId64 " frames, the header announces %" PRId64 " (truncated or damaged)",
                     v->path, seen, v->header_nframes);
        }
        if (index) *index = -1;
        return DCL_OK;
    }
    if (index) *index = i;
    return convert(v, out);
}

dcl_status dcl_video_count_frames(dcl_video *v, int64_t *n) {
    DCL_TRY(build_table(v));
    if (v->table_ok) { *n = v->npts; return DCL_OK; }
    /* no trustworthy timestamps: count by decoding a second instance */
    dcl_video *c = NULL;
    DCL_TRY(dcl_video_open(&c, v->path));
    int64_t cnt = 0, i;
    for (;;) {
        int r = next_frame(c, &i);
        if (r <= 0) break;
        cnt++;
    }
    v->warnings += c->warnings;
    if (!v->first_warning[0] && c->first_warning[0]) snprintf(v->first_warning, sizeof v->first_warning, "%s", c->first_warning);
    dcl_video_close(c);
    v->info.nframes = cnt;
    v->info.nframes_estimated = 0;
    *n = cnt;
    return DCL_OK;
}

dcl_status dcl_video_plan(int64_t *idx, int *count, int64_t nframes, int n, dcl_sample_mode mode, dcl_rng *rng) {
    if (!idx || !count) return dcl_fail(DCL_ERR_ARG, "dcl_video_plan: NULL argument");
    *count = 0;
    if (n < 0) return dcl_fail(DCL_ERR_ARG, "dcl_video_plan: negative frame count %d", n);
    if (nframes <= 0 || n == 0) return DCL_OK;
    int64_t m = (int64_t)n < nframes ? n : nframes;
    if (mode == DCL_SAMPLE_EVEN) {
        for (int64_t i = 0; i < m; i++) {
            /* centre of the i-th of m equal parts; distinct because N >= m */
            idx[i] = (int64_t)(((double)i + 0.5) * (double)nframes / (double)m);
            if (idx[i] >= nframes) idx[i] = nframes - 1;
        }
    } else if (mode == DCL_SAMPLE_RANDOM) {
        if (!rng) return dcl_fail(DCL_ERR_ARG, "dcl_video_plan: random sampling needs an rng");
        /* Floyd's algorithm: m distinct values from [0, nframes) */
        int64_t k = 0;
        for (int64_t j = nframes - m; j < nframes; j++) {
            int64_t t = (int64_t)(dcl_rng_uniform(rng) * (double)(j + 1));
            if (t > j) t = j;
            int dup = 0;
            for (int64_t q = 0; q < k; q++) if (idx[q] == t) { dup = 1; break; }
            idx[k++] = dup ? j : t;
        }
        qsort(idx, (size_t)m, sizeof *idx, cmp_i64);
    } else {
        return dcl_fail(DCL_ERR_ARG, "dcl_video_plan: unknown sampling mode %d", (int)mode);
    }
    *count = (int)m;
    return DCL_OK;
}

/* last keyframe (position in v->keys) whose pts <= t; -1 if none */
static int key_before(const dcl_video *v, int64_t t) {
    int lo = 0, hi = v->nkeys - 1, best = -1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->keys[mid].pts <= t) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
}

/* Seeks so that decoding restarts at keyframe k (or earlier). */
static int seek_to_key(dcl_video *v, int k) {
    /* Demuxers index keyframes by pts (matroska) or by dts (mp4, avi); the
     * keyframe's pts is at or after both, so a backward seek to it lands on
     * this keyframe (or, rarely, the next one: the caller then steps back). */
    int64_t ts = v->keys[k].pts;
    int r = av_seek_frame(v->fmt, v->si, ts, AVSEEK_FLAG_BACKWARD);
    if (r < 0) return r;
    avcodec_flush_buffers(v->dec);
    reset_decode_state(v);
    v->counter_valid = 0; /* pos keeps the last known index until a frame is identified */
    v->seeks++;
    return 0;
}

/* Delivers frame `target` via seeking; 1 delivered (in v->frame), 0 not
 * present, -1 give up (caller switches to sequential decoding). */
static int fetch_by_seek(dcl_video *v, int64_t target) {
    int k = key_before(v, v->pts[target]);
    if (k < 0) k = 0;
    int64_t kidx = table_lookup(v, v->keys[k].pts);
    int pending_hit = v->frame_pending && v->pending_index == target;
    int need_seek = !pending_hit && (target <= v->pos || kidx > v->pos + 1);
    for (int attempt = 0; attempt < 4; attempt++) {
        int just_seeked = 0;
        if (need_seek) {
            if (seek_to_key(v, k) < 0) return -1;
            just_seeked = 1;
        }
        for (;;) {
            int64_t i;
            int r = next_frame(v, &i);
            if (r < 0) return -1;
            if (r == 0) return 0;
            if (i < target) { just_seeked = 0; continue; }
            if (i == target) return 1;
            /* went past the target */
            if (just_seeked) break; /* landed after it: try an earlier keyframe */
            v->frame_pending = 1;    /* frame `target` is missing; keep this one */
            v->pending_index = i;
            return 0;
        }
        if (k == 0) return -1;
        k--;
        need_seek = 1;
    }
    return -1;
}

/* Sequential decoding numbered from the first frame; 1 delivered, 0 not present. */
static dcl_status fetch_sequential(dcl_video *v, int64_t target, int *hit) {
    *hit = 0;
    int pending_hit = v->frame_pending && v->pending_index == target && v->counter_valid;
    if (!pending_hit && (!v->counter_valid || target <= v->pos)) DCL_TRY(dcl_video_rewind(v));
    for (;;) {
        int64_t i;
        int r = next_frame(v, &i);
        if (r <= 0) return DCL_OK;
        if (i < target) continue;
        if (i == target) { *hit = 1; return DCL_OK; }
        v->frame_pending = 1;
        v->pending_index = i;
        return DCL_OK;
    }
}

dcl_status dcl_video_read_frames(dcl_video *v, const int64_t *idx, int n, dcl_frame_cb cb, void *user, int *found) {
    if (found) *found = 0;
    if (!v || (n > 0 && !idx) || !cb) return dcl_fail(DCL_ERR_ARG, "dcl_video_read_frames: NULL argument");
    for (int k = 1; k < n; k++)
        if (idx[k] <= idx[k - 1])
            return dcl_fail(DCL_ERR_ARG, "dcl_video_read_frames: indices must be ascending and distinct (%" PRId64 " after %" PRId64 ")",
                            idx[k], idx[k - 1]);
    DCL_TRY(build_table(v));
    int delivered = 0;
    for (int k = 0; k < n; k++) {
        int64_t target = idx[k];
        if (target < 0) continue;
        if (v->table_ok && target >= v->npts) break;
        int hit = 0;
        if (v->table_ok && v->nkeys > 0) {
            int r = fetch_by_seek(v, target);
            if (r >= 0) hit = r;
            else {
                warn(v, "%s: seeking unreliable; decoding sequentially", v->path);
                v->table_ok = 0;
                DCL_TRY(dcl_video_rewind(v));
                DCL_TRY(fetch_sequential(v, target, &hit));
            }
        } else {
            DCL_TRY(fetch_sequential(v, target, &hit));
        }
        if (!hit) {
            if (!v->frame_pending) break; /* end of the video */
            continue;
        }
        DCL_TRY(convert(v, &v->cbimg));
        delivered++;
        if (cb(user, &v->cbimg, target, k)) break;
    }
    if (found) *found = delivered;
    return DCL_OK;
}

typedef struct sample_ctx {
    dcl_image *frames;
    int64_t *indices;
    int got;
    dcl_status err;
} sample_ctx;

static int sample_cb(void *user, const dcl_image *fr, int64_t index, int k) {
    sample_ctx *c = user;
    dcl_image *dst = &c->frames[c->got];
    if (image_ensure(dst, fr->w, fr->h, fr->c) != DCL_OK) { c->err = DCL_ERR_NOMEM; return 1; }
    memcpy(dst->data, fr->data, (size_t)fr->w * fr->h * fr->c);
    c->indices[c->got] = index;
    c->got++;
    return 0;
}

dcl_status dcl_video_sample(dcl_video *v, int n, dcl_sample_mode mode, dcl_rng *rng, dcl_image *frames,
                            int64_t *indices, int *got) {
    if (got) *got = 0;
    if (!v || !frames || !indices || !got) return dcl_fail(DCL_ERR_ARG, "dcl_video_sample: NULL argument");
    if (n <= 0) return DCL_OK;
    int64_t total = 0;
    DCL_TRY(dcl_video_count_frames(v, &total));
    int64_t *plan = malloc((size_t)n * sizeof *plan);
    if (!plan) return dcl_fail(DCL_ERR_NOMEM, "dcl_video_sample: out of memory");
    int m = 0;
    dcl_status s = dcl_video_plan(plan, &m, total, n, mode, rng);
    sample_ctx c = {frames, indices, 0, DCL_OK};
    if (s == DCL_OK) s = dcl_video_read_frames(v, plan, m, sample_cb, &c, NULL);
    free(plan);
    if (s != DCL_OK) return s;
    if (c.err != DCL_OK) return dcl_fail(c.err, "%s: out of memory while sampling", v->path);
    *got = c.got;
    return DCL_OK;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

struct dcl_video_writer {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int in_w, in_h;      /* size given to open */
    int w, h;            /* encoded (even) size */
    int64_t next_pts;
    int header_written;
    int io_open;
    char codec[32];
};

int dcl_video_have_encoder(const char *name) {
    quiet_ffmpeg();
    return name && avcodec_find_encoder_by_name(name) != NULL;
}

static dcl_status drain(dcl_video_writer *w, int flush) {
    char eb[128];
    int r = avcodec_send_frame(w->enc, flush ? NULL : w->frame);
    if (r < 0 && !(flush && r == AVERROR_EOF))
        return dcl_fail(DCL_ERR_INTERNAL, "%s: encoder refused a frame: %s", w->path, averr(r, eb, sizeof eb));
    for (;;) {
        r = avcodec_receive_packet(w->enc, w->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
        if (r < 0) return dcl_fail(DCL_ERR_INTERNAL, "%s: encoding failed: %s", w->path, averr(r, eb, sizeof eb));
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        r = av_interleaved_write_frame(w->fmt, w->pkt);
        av_packet_unref(w->pkt);
        if (r < 0) return dcl_fail(DCL_ERR_IO, "%s: cannot write packet: %s", w->path, averr(r, eb, sizeof eb));
    }
    return DCL_OK;
}

static void writer_free(dcl_video_writer *w) {
    if (!w) return;
    if (w->enc) avcodec_free_context(&w->enc);
    if (w->fmt) {
        if (w->io_open) avio_closep(&w->fmt->pb);
        avformat_free_context(w->fmt);
    }
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    sws_freeContext(w->sws);
    free(w->path);
    free(w);
}

void dcl_video_writer_abort(dcl_video_writer *w) { writer_free(w); }

static dcl_status writer_setup(dcl_video_writer *w, double fps, const dcl_video_writer_opts *o) {
    char eb[128];
    const char *path = w->path;
    int r = avformat_alloc_output_context2(&w->fmt, NULL, NULL, path);
    if (r < 0 || !w->fmt)
        return dcl_fail(DCL_ERR_ARG, "%s: no container for this file name extension (use .mp4 .mkv .webm .avi .mov)", path);
    const AVOutputFormat *of = w->fmt->oformat;
    const char *want = o->codec;
    if (!want || !*want) want = (of->name && strstr(of->name, "webm")) ? "libvpx-vp9" : "libx264";
    const AVCodec *codec = avcodec_find_encoder_by_name(want);
    if (!codec) {
        const AVCodec *fb = avcodec_find_encoder_by_name("mpeg4");
        if (!fb) return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: encoder '%s' is not available and mpeg4 is missing too", path, want);
        dcl_log(1, "video writer: encoder '%s' is not available in this FFmpeg; using mpeg4 for %s", want, path);
        codec = fb;
    }
    if (avformat_query_codec(of, codec->id, FF_COMPLIANCE_NORMAL) == 0)
        return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: container '%s' cannot hold %s video", path, of->name, codec->name);
    snprintf(w->codec, sizeof w->codec, "%s", codec->name);

    w->st = avformat_new_stream(w->fmt, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->st || !w->enc || !w->frame || !w->pkt) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    AVCodecContext *c = w->enc;
    AVRational fr = av_d2q(fps, 1 << 20);
    c->width = w->w;
    c->height = w->h;
    c->time_base = av_inv_q(fr);
    c->framerate = fr;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    if (codec->id == AV_CODEC_ID_MJPEG) c->pix_fmt = AV_PIX_FMT_YUVJ420P; /* full-range JPEG YUV */
    else if (codec->pix_fmts) {
        int ok420 = 0;
        for (const enum AVPixelFormat *pf = codec->pix_fmts; *pf != AV_PIX_FMT_NONE; pf++) ok420 |= *pf == AV_PIX_FMT_YUV420P;
        if (!ok420) c->pix_fmt = codec->pix_fmts[0];
    }
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->thread_count = 1;
    if (o->gop > 0) c->gop_size = o->gop;
    if (o->bframes >= 0) c->max_b_frames = o->bframes;
    if (of->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int q = o->quality < 0 ? 23 : (o->quality > 51 ? 51 : o->quality);
    char buf[64];
    if (!strcmp(codec->name, "libx264") || !strcmp(codec->name, "libx265")) {
        snprintf(buf, sizeof buf, "%d", q);
        av_opt_set(c->priv_data, "crf", buf, 0);
        av_opt_set(c->priv_data, "preset", "veryfast", 0);
        if (!strcmp(codec->name, "libx265")) av_opt_set(c->priv_data, "x265-params", "log-level=none", 0);
    } else if (!strcmp(codec->name, "libvpx-vp9") || !strcmp(codec->name, "libvpx")) {
        snprintf(buf, sizeof buf, "%d", (q * 63 + 25) / 51);
        av_opt_set(c->priv_data, "crf", buf, 0);
        c->bit_rate = 0;
        av_opt_set(c->priv_data, "deadline", "realtime", 0);
        av_opt_set(c->priv_data, "cpu-used", "8", 0);
    } else {
        int qs = 1 + (q * 30 + 25) / 51;
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * qs;
    }
    r = avcodec_open2(c, codec, NULL);
    if (r < 0) return dcl_fail(DCL_ERR_UNSUPPORTED, "%s: cannot open encoder %s: %s", path, codec->name, averr(r, eb, sizeof eb));
    r = avcodec_parameters_from_context(w->st->codecpar, c);
    if (r < 0) return dcl_fail(DCL_ERR_INTERNAL, "%s: codec parameters: %s", path, averr(r, eb, sizeof eb));
    w->st->time_base = c->time_base;
    w->st->avg_frame_rate = fr;
    if (o->rotation) {
        if (o->rotation % 90) return dcl_fail(DCL_ERR_ARG, "%s: rotation %d is not a multiple of 90", path, o->rotation);
        uint8_t *sd = av_stream_new_side_data(w->st, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
        if (!sd) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
        av_display_rotation_set((int32_t *)sd, (double)o->rotation); /* read back as -get = clockwise */
    }
    w->frame->format = c->pix_fmt;
    w->frame->width = c->width;
    w->frame->height = c->height;
    r = av_frame_get_buffer(w->frame, 0);
    if (r < 0) return dcl_fail(DCL_ERR_NOMEM, "%s: frame buffer: %s", path, averr(r, eb, sizeof eb));
    if (!(of->flags & AVFMT_NOFILE)) {
        r = avio_open(&w->fmt->pb, path, AVIO_FLAG_WRITE);
        if (r < 0) return dcl_fail(DCL_ERR_IO, "%s: cannot create: %s", path, averr(r, eb, sizeof eb));
        w->io_open = 1;
    }
    r = avformat_write_header(w->fmt, NULL);
    if (r < 0) return dcl_fail(DCL_ERR_IO, "%s: cannot write header: %s", path, averr(r, eb, sizeof eb));
    w->header_written = 1;
    return DCL_OK;
}

dcl_status dcl_video_writer_open(dcl_video_writer **out, const char *path, int width, int height, double fps,
                                 const dcl_video_writer_opts *opts) {
    if (!out || !path) return dcl_fail(DCL_ERR_ARG, "dcl_video_writer_open: NULL argument");
    *out = NULL;
    quiet_ffmpeg();
    if (width < 2 || height < 2 || width > 16384 || height > 16384)
        return dcl_fail(DCL_ERR_ARG, "%s: frame size %dx%d out of range (2..16384)", path, width, height);
    if (!(fps > 0) || fps > 1000) return dcl_fail(DCL_ERR_ARG, "%s: frame rate %g out of range", path, fps);
    dcl_video_writer_opts def = {NULL, -1, 0, -1, 0};
    const dcl_video_writer_opts *o = opts ? opts : &def;
    dcl_video_writer *w = calloc(1, sizeof *w);
    if (!w) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    w->path = strdup(path);
    w->in_w = width; w->in_h = height;
    w->w = width & ~1; w->h = height & ~1;
    if (!w->path) { writer_free(w); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path); }
    dcl_status s = writer_setup(w, fps, o);
    if (s != DCL_OK) {
        int created = w->io_open;
        writer_free(w);
        if (created) remove(path);
        return s;
    }
    *out = w;
    return DCL_OK;
}

dcl_status dcl_video_writer_write(dcl_video_writer *w, const dcl_image *im) {
    if (!w || !im || !im->data) return dcl_fail(DCL_ERR_ARG, "dcl_video_writer_write: NULL argument");
    if (im->w != w->in_w || im->h != w->in_h || (im->c != 3 && im->c != 1))
        return dcl_fail(DCL_ERR_SHAPE, "%s: frame is %dx%dx%d, writer expects %dx%dx3 (or x1)", w->path, im->w, im->h,
                        im->c, w->in_w, w->in_h);
    enum AVPixelFormat src = im->c == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    w->sws = sws_getCachedContext(w->sws, w->w, w->h, src, w->w, w->h, w->enc->pix_fmt,
                                  SWS_BILINEAR | SWS_ACCURATE_RND, NULL, NULL, NULL);
    if (!w->sws) return dcl_fail(DCL_ERR_INTERNAL, "%s: cannot set up colour conversion", w->path);
    int r = av_frame_make_writable(w->frame);
    if (r < 0) return dcl_fail(DCL_ERR_NOMEM, "%s: frame not writable", w->path);
    const uint8_t *sp[4] = {im->data, NULL, NULL, NULL};
    int sl[4] = {im->w * im->c, 0, 0, 0}; /* stride of the full (maybe odd) image: crops */
    sws_scale(w->sws, sp, sl, 0, w->h, w->frame->data, w->frame->linesize);
    w->frame->pts = w->next_pts++;
    return drain(w, 0);
}

dcl_status dcl_video_writer_close(dcl_video_writer *w) {
    if (!w) return DCL_OK;
    dcl_status s = drain(w, 1);
    if (s == DCL_OK && w->header_written) {
        int r = av_write_trailer(w->fmt);
        if (r < 0) {
            char eb[128];
            s = dcl_fail(DCL_ERR_IO, "%s: cannot finish file: %s", w->path, averr(r, eb, sizeof eb));
        }
    }
    writer_free(w);
    return s;
}

const char *dcl_video_writer_codec(const dcl_video_writer *w) { return w->codec; }
int dcl_video_writer_width(const dcl_video_writer *w) { return w->w; }
int dcl_video_writer_height(const dcl_video_writer *w) { return w->h; }
