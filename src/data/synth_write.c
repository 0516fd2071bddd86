/* Writes a planned synthetic set (dcl/synth.h) in the FaceForensics++
 * layout: every video is encoded to a hidden temporary file in its final
 * folder (".synth-NAME.mp4", which the dataset adapters skip), fsync'ed and
 * renamed when complete. */
#include "dcl/synth.h"
#include "dcl/video.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST "synth.json"
#define TMP_PREFIX ".synth-"

static const struct { unsigned bit; const char *name; int crf; } k_q[3] = {
    {DCL_SYNTH_Q_RAW, "raw", 0}, {DCL_SYNTH_Q_C23, "c23", 23}, {DCL_SYNTH_Q_C40, "c40", 40}};

static dcl_status mkdirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return dcl_fail(DCL_ERR_ARG, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return dcl_fail(DCL_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return dcl_fail(DCL_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) return dcl_fail(DCL_ERR_IO, "%s: exists and is not a folder", buf);
    return DCL_OK;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void fsync_path(const char *p, int dir) {
    int fd = open(p, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* removes temporary files left by an interrupted run */
static void remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) {
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
        }
    closedir(d);
}

/* the settings that decide the content, as a JSON object */
static cJSON *settings_json(const dcl_synth *s) {
    const dcl_synth_opts *o = dcl_synth_get_opts(s);
    cJSON *j = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "identities", o->identities);
    cJSON_AddNumberToObject(j, "videos_per_identity", o->videos_per_identity);
    cJSON_AddNumberToObject(j, "frames", o->frames);
    cJSON_AddNumberToObject(j, "width", o->width);
    cJSON_AddNumberToObject(j, "height", o->height);
    cJSON_AddNumberToObject(j, "fps", o->fps);
    cJSON *q = cJSON_AddArrayToObject(j, "qualities");
    for (int i = 0; i < 3; i++)
        if (o->qualities & k_q[i].bit) cJSON_AddItemToArray(q, cJSON_CreateString(k_q[i].name));
    cJSON *m = cJSON_AddArrayToObject(j, "methods");
    for (int i = 0; i < DCL_SYNTH_NMETHODS; i++)
        if (o->methods & (1u << i)) cJSON_AddItemToArray(m, cJSON_CreateString(dcl_synth_method_name(i)));
    cJSON_AddStringToObject(j, "sources", dcl_synth_sources(s));
    return j;
}

static dcl_status write_manifest(const dcl_synth *s, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "generator", "dcl synth");
    cJSON_AddNumberToObject(root, "format", 1);
    cJSON_AddItemToObject(root, "settings", settings_json(s));
    cJSON *vs = cJSON_AddArrayToObject(root, "videos");
    for (int i = 0; i < dcl_synth_video_count(s); i++) {
        const dcl_synth_video *v = dcl_synth_video_get(s, i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", v->id);
        cJSON_AddNumberToObject(e, "identity", v->identity);
        cJSON_AddStringToObject(e, "face", v->face);
        cJSON_AddStringToObject(e, "split", dcl_split_name(v->split));
        cJSON_AddStringToObject(e, "source", dcl_synth_video_get(s, v->source)->id);
        cJSON_AddItemToArray(vs, e);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) { free(text); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", path); }
    t2[n] = '\n';
    t2[n + 1] = 0;
    dcl_status st = dcl_write_file_atomic(path, t2, n + 1);
    free(t2);
    return st;
}

/* dir must be new, empty, or hold a synth.json with the same settings */
static dcl_status check_dir(const dcl_synth *s, const char *dir, const char *manifest) {
    if (file_exists(manifest)) {
        cJSON *old = NULL;
        DCL_TRY(dcl_json_load(&old, manifest));
        cJSON *os = cJSON_GetObjectItemCaseSensitive(old, "settings");
        cJSON *ns = settings_json(s);
        dcl_buf diff = {0};
        cJSON *it;
        cJSON_ArrayForEach(it, ns) {
            cJSON *ov = cJSON_GetObjectItemCaseSensitive(os, it->string);
            char *x = ov ? cJSON_PrintUnformatted(ov) : NULL, *y = cJSON_PrintUnformatted(it);
            if (!x || !y || strcmp(x, y))
                dcl_buf_printf(&diff, "%s%s %s there, %s now", diff.len ? "; " : "", it->string, x ? x : "absent", y ? y : "?");
            free(x);
            free(y);
        }
        cJSON_Delete(ns);
        cJSON_Delete(old);
        dcl_status st = diff.len ? dcl_fail(DCL_ERR_ARG, "%s holds a set made with other settings (%s): write to another folder",
                                            manifest, diff.data)
                                 : DCL_OK;
        dcl_buf_free(&diff);
        return st;
    }
    DIR *d = opendir(dir);
    if (!d) return DCL_OK; /* created later */
    struct dirent *e;
    int any = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) any = 1;
    closedir(d);
    if (any) return dcl_fail(DCL_ERR_ARG, "%s is not empty and holds no %s: refusing to write a data set into it", dir, MANIFEST);
    return DCL_OK;
}

static dcl_status write_splits(const dcl_synth *s, const char *dir) {
    static const dcl_split sp[3] = {DCL_SPLIT_TRAIN, DCL_SPLIT_VAL, DCL_SPLIT_TEST};
    int nv = dcl_synth_video_count(s);
    for (int k = 0; k < 3; k++) {
        dcl_buf b = {0};
        dcl_status st = dcl_buf_puts(&b, "[");
        int first = 1;
        for (int i = 0; i < nv && st == DCL_OK; i++) {
            const dcl_synth_video *v = dcl_synth_video_get(s, i);
            if (v->split != sp[k]) continue;
            /* a couple (a, b) is listed once; members of a three-cycle list their own link */
            int back = dcl_synth_video_get(s, v->source)->source;
            if (back == i && v->source < i) continue;
            st = dcl_buf_printf(&b, "%s\n  [\"%s\", \"%s\"]", first ? "" : ",", v->id, dcl_synth_video_get(s, v->source)->id);
            first = 0;
        }
        if (st == DCL_OK) st = dcl_buf_puts(&b, first ? "]\n" : "\n]\n");
        char path[4096];
        if (st == DCL_OK && snprintf(path, sizeof path, "%s/%s.json", dir, dcl_split_name(sp[k])) >= (int)sizeof path)
            st = dcl_fail(DCL_ERR_ARG, "%s: path too long", dir);
        if (st == DCL_OK) st = dcl_write_file_atomic(path, b.data, b.len);
        dcl_buf_free(&b);
        DCL_TRY(st);
    }
    return DCL_OK;
}

/* one output file of a target video */
typedef struct out_file {
    int method;              /* DCL_SYNTH_REAL or a family */
    int is_mask;
    int crf;
    char final[4096], tmp[4096];
    dcl_video_writer *w;
} out_file;

static void out_paths(out_file *f, const char *root, const char *sub, const char *stem) {
    snprintf(f->final, sizeof f->final, "%s/%s/%s.mp4", root, sub, stem);
    snprintf(f->tmp, sizeof f->tmp, "%s/%s/" TMP_PREFIX "%s.mp4", root, sub, stem);
}

static dcl_status commit(out_file *f, int64_t *bytes) {
    fsync_path(f->tmp, 0);
    struct stat sb;
    if (stat(f->tmp, &sb) == 0) *bytes += sb.st_size;
    if (rename(f->tmp, f->final) != 0) {
        dcl_status st = dcl_fail(DCL_ERR_IO, "%s: cannot rename to %s: %s", f->tmp, f->final, strerror(errno));
        unlink(f->tmp);
        return st;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", f->final);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        fsync_path(dir, 1);
    }
    return DCL_OK;
}

dcl_status dcl_synth_write(dcl_synth *s, const char *dir, dcl_synth_summary *sum, dcl_synth_progress_fn progress, void *user) {
    if (!s || !dir || !*dir) return dcl_fail(DCL_ERR_ARG, "dcl_synth_write: NULL argument");
    double t0 = dcl_now();
    dcl_synth_summary dummy;
    if (!sum) sum = &dummy;
    memset(sum, 0, sizeof *sum);
    const dcl_synth_opts *o = dcl_synth_get_opts(s);
    if (!dcl_video_have_encoder("libx264"))
        return dcl_fail(DCL_ERR_UNSUPPORTED, "this FFmpeg has no libx264 encoder: the set is H.264 like FaceForensics++ "
                        "(Debian's libavcodec provides it)");
    char manifest[4096], path[4096];
    if (snprintf(manifest, sizeof manifest, "%s/%s", dir, MANIFEST) >= (int)sizeof manifest)
        return dcl_fail(DCL_ERR_ARG, "%s: path too long", dir);
    DCL_TRY(check_dir(s, dir, manifest));
    DCL_TRY(mkdirs(dir));
    DCL_TRY(write_manifest(s, manifest));

    /* folders */
    for (int q = 0; q < 3; q++) {
        if (!(o->qualities & k_q[q].bit)) continue;
        snprintf(path, sizeof path, "%s/original_sequences/youtube/%s/videos", dir, k_q[q].name);
        DCL_TRY(mkdirs(path));
        remove_stale(path);
        for (int m = 0; m < DCL_SYNTH_NMETHODS; m++) {
            if (!(o->methods & (1u << m))) continue;
            snprintf(path, sizeof path, "%s/manipulated_sequences/%s/%s/videos", dir, dcl_synth_method_name(m), k_q[q].name);
            DCL_TRY(mkdirs(path));
            remove_stale(path);
        }
    }
    for (int m = 0; m < DCL_SYNTH_NMETHODS; m++) {
        if (!(o->methods & (1u << m))) continue;
        snprintf(path, sizeof path, "%s/manipulated_sequences/%s/masks/videos", dir, dcl_synth_method_name(m));
        DCL_TRY(mkdirs(path));
        remove_stale(path);
    }
    snprintf(path, sizeof path, "%s/splits", dir);
    DCL_TRY(mkdirs(path));
    DCL_TRY(write_splits(s, path));

    int nv = dcl_synth_video_count(s), nq = 0, nm = 0;
    for (int q = 0; q < 3; q++) nq += !!(o->qualities & k_q[q].bit);
    for (int m = 0; m < DCL_SYNTH_NMETHODS; m++) nm += !!(o->methods & (1u << m));
    sum->videos = nv;
    sum->fakes = nv * nm;
    for (int i = 0; i < nv; i++) sum->by_split[dcl_synth_video_get(s, i)->split]++;

    int maxf = nq * (1 + nm) + nm;
    out_file *f = calloc(maxf, sizeof *f);
    if (!f) return dcl_fail(DCL_ERR_NOMEM, "out of memory");
    dcl_image real = {0}, fake = {0}, mask = {0};
    dcl_status st = DCL_OK;
    for (int vi = 0; vi < nv && st == DCL_OK; vi++) {
        const dcl_synth_video *v = dcl_synth_video_get(s, vi);
        const char *src = dcl_synth_video_get(s, v->source)->id;
        char stem[32], sub[512];
        snprintf(stem, sizeof stem, "%s_%s", v->id, src);
        int n = 0, todo = 0;
        for (int q = 0; q < 3; q++) {
            if (!(o->qualities & k_q[q].bit)) continue;
            out_file *e = &f[n++];
            memset(e, 0, sizeof *e);
            e->method = DCL_SYNTH_REAL;
            e->crf = k_q[q].crf;
            snprintf(sub, sizeof sub, "original_sequences/youtube/%s/videos", k_q[q].name);
            out_paths(e, dir, sub, v->id);
            for (int m = 0; m < DCL_SYNTH_NMETHODS; m++) {
                if (!(o->methods & (1u << m))) continue;
                e = &f[n++];
                memset(e, 0, sizeof *e);
                e->method = m;
                e->crf = k_q[q].crf;
                snprintf(sub, sizeof sub, "manipulated_sequences/%s/%s/videos", dcl_synth_method_name(m), k_q[q].name);
                out_paths(e, dir, sub, stem);
            }
        }
        for (int m = 0; m < DCL_SYNTH_NMETHODS; m++) {
            if (!(o->methods & (1u << m))) continue;
            out_file *e = &f[n++];
            memset(e, 0, sizeof *e);
            e->method = m;
            e->is_mask = 1;
            e->crf = 0; /* lossless: the mask stays exactly 0 / 255 */
            snprintf(sub, sizeof sub, "manipulated_sequences/%s/masks/videos", dcl_synth_method_name(m));
            out_paths(e, dir, sub, stem);
        }
        /* open writers for the files not yet complete */
        for (int i = 0; i < n && st == DCL_OK; i++) {
            if (file_exists(f[i].final)) { sum->files_kept++; continue; }
            dcl_video_writer_opts wo = {"libx264", f[i].crf, 0, -1, 0};
            st = dcl_video_writer_open(&f[i].w, f[i].tmp, o->width, o->height, o->fps, &wo);
            todo++;
        }
        /* frames: the real one first, then each needed fake from the same state */
        for (int t = 0; t < o->frames && st == DCL_OK && todo; t++) {
            st = dcl_synth_render(s, &real, NULL, vi, DCL_SYNTH_REAL, t);
            for (int i = 0; i < n && st == DCL_OK; i++)
                if (f[i].w && f[i].method == DCL_SYNTH_REAL) st = dcl_video_writer_write(f[i].w, &real);
            for (int m = 0; m < DCL_SYNTH_NMETHODS && st == DCL_OK; m++) {
                out_file *fk[3], *mk = NULL;
                int nf = 0;
                for (int i = 0; i < n; i++)
                    if (f[i].w && f[i].method == m) {
                        if (f[i].is_mask) mk = &f[i];
                        else fk[nf++] = &f[i];
                    }
                if (!nf && !mk) continue;
                st = dcl_synth_render(s, &fake, &mask, vi, m, t);
                for (int i = 0; i < nf && st == DCL_OK; i++) st = dcl_video_writer_write(fk[i]->w, &fake);
                if (mk && st == DCL_OK) st = dcl_video_writer_write(mk->w, &mask);
            }
        }
        /* finish */
        for (int i = 0; i < n; i++) {
            if (!f[i].w) continue;
            if (st == DCL_OK) {
                st = dcl_video_writer_close(f[i].w);
                f[i].w = NULL;
                if (st == DCL_OK) st = commit(&f[i], &sum->bytes_written);
                if (st == DCL_OK) sum->files_written++;
                else unlink(f[i].tmp);
            } else {
                dcl_video_writer_abort(f[i].w);
                f[i].w = NULL;
                unlink(f[i].tmp);
            }
        }
        if (st == DCL_OK && progress && progress(user, vi + 1, nv, v))
            st = dcl_fail(DCL_ERR_INTERRUPTED, "stopped after %d of %d videos (complete files are kept; run again to finish)", vi + 1, nv);
    }
    dcl_image_free(&real);
    dcl_image_free(&fake);
    dcl_image_free(&mask);
    free(f);
    sum->seconds = dcl_now() - t0;
    return st;
}
