/* dcl detect: score images and videos (faces, frames, videos) from the command line. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "dcl/deploy.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcl detect [--model FILE] [--format jsonl|csv|table] [--frames N] [--annotate OUTDIR]\n"
            "                  [--device cpu] [--threads N] [--max-faces N] [--summary] [--mtcnn FILE]\n"
            "                  PATH... | -\n"
            "Finds the faces of each image (JPEG, PNG) or video (any format FFmpeg reads) and scores\n"
            "each face: P(fake).  A frame scores the max over its faces; a video the mean over its\n"
            "sampled frames that show a face (and their max).  Directories are searched recursively\n"
            "for images and videos; \"-\" reads one path per line from standard input.\n"
            "  --model FILE      model file from dcl export (or a training checkpoint); default\n"
            "                    $DCL_MODEL, then ./model.safetensors\n"
            "  --format          jsonl (default: one JSON object per input), csv (rows per face,\n"
            "                    frame and input) or table\n"
            "  --frames N        frames sampled evenly from each video (16)\n"
            "  --annotate OUTDIR write each input with its faces boxed, coloured green (real) to red\n"
            "                    (fake), with P(fake) written above (images as PNG or JPEG, videos as MP4)\n"
            "  --summary         leave out the per-frame list of videos (jsonl)\n"
            "Exit status: 0 when every input was read, 1 when some could not be (one message each on\n"
            "standard error; the others are still scored), 2 for usage errors.\n");
}

static const char *const k_media_ext[] = {"jpg", "jpeg", "png", "mp4", "m4v", "mov", "avi", "mkv", "webm", "mpg",
                                          "mpeg", "ts", "mts", "m2ts", "flv", "wmv", "3gp", "ogv", NULL};

static int media_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (int i = 0; k_media_ext[i]; i++)
        if (!strcasecmp(dot + 1, k_media_ext[i])) return 1;
    return 0;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void free_list(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Media files below dir, sorted, hidden entries skipped. */
static int walk(strlist *out, const char *dir, int depth) {
    if (depth > 64) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "dcl detect: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    strlist names = {0};
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (push(&names, e->d_name)) { bad = 1; break; }
    }
    closedir(d);
    qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    for (int i = 0; i < names.n && !bad; i++) {
        size_t n = strlen(dir) + strlen(names.v[i]) + 2;
        char *p = malloc(n);
        if (!p) { bad = 1; break; }
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names.v[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) bad |= walk(out, p, depth + 1);
        else if (media_ext(names.v[i]) && push(out, p)) bad = 1;
        free(p);
    }
    free_list(&names);
    return bad;
}

/* OUTDIR/<stem>.<ext>, made unique within the run. */
static void annotate_name(char *dst, size_t n, const char *outdir, const char *path, const char *ext, strlist *used) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", *base ? base : "input");
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    for (int k = 1;; k++) {
        if (k == 1) snprintf(dst, n, "%s/%s.%s", outdir, stem, ext);
        else snprintf(dst, n, "%s/%s-%d.%s", outdir, stem, k, ext);
        int clash = 0;
        for (int i = 0; i < used->n && !clash; i++) clash = !strcmp(used->v[i], dst);
        if (!clash) break;
    }
    push(used, dst);
}

static void progress(int done, int total, const char *name) {
    int width = 30, fill = total > 0 ? done * width / total : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (total > 0) fprintf(stderr, "\r[%s] %d/%d %-30.30s", bar, done, total, base);
    else fprintf(stderr, "\r%d done %-30.30s", done, base);
    fflush(stderr);
}

typedef struct run {
    dcl_deploy *d;
    dcl_analyze_opts ao;
    int format;       /* 0 jsonl, 1 csv, 2 table */
    int summary;
    const char *annotate;
    strlist used;
    int failed, done, header_done;
    dcl_buf out;
} run;

static void score_one(run *r, const char *path) {
    dcl_media_result res;
    char ann[4096];
    dcl_analyze_opts ao = r->ao;
    if (r->annotate) {
        /* the kind decides the container of the annotated copy */
        FILE *f = fopen(path, "rb");
        uint8_t head[512];
        size_t n = f ? fread(head, 1, sizeof head, f) : 0;
        if (f) fclose(f);
        int image = dcl_media_sniff(head, n) == DCL_MEDIA_IMAGE;
        int jpeg = image && n >= 3 && head[0] == 0xff && head[1] == 0xd8;
        annotate_name(ann, sizeof ann, r->annotate, path, image ? (jpeg ? "jpg" : "png") : "mp4", &r->used);
        ao.annotate = ann;
    }
    dcl_deploy_analyze_file(r->d, path, &ao, &res);
    float thr = dcl_deploy_get_info(r->d)->threshold;
    r->out.len = 0;
    if (r->format == 0) {
        dcl_media_result_json(&r->out, &res, path, thr, !r->summary);
        dcl_buf_puts(&r->out, "\n");
    } else if (r->format == 1) {
        dcl_media_result_csv(&r->out, &res, path, thr);
    } else {
        dcl_media_result_table(&r->out, &res, path, thr, !r->header_done);
        r->header_done = 1;
    }
    if (res.err) {
        r->failed++;
        fprintf(stderr, "%sdcl detect: %s: %s\n", isatty(2) ? "\r\033[K" : "", path, res.error);
    }
    if (r->out.data) fwrite(r->out.data, 1, r->out.len, stdout);
    fflush(stdout);
    dcl_media_result_free(&res);
    r->done++;
}

int cmd_detect(int argc, char **argv) {
    const char *model = NULL, *annotate = NULL;
    dcl_deploy_opts dopt;
    dcl_deploy_opts_default(&dopt);
    run r;
    memset(&r, 0, sizeof r);
    dcl_analyze_opts_default(&r.ao);
    strlist args = {0};
    int read_stdin = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free_list(&args); return 0; }
        if (!strcmp(a, "-")) { read_stdin = 1; continue; }
        if (!strcmp(a, "--summary")) { r.summary = 1; continue; }
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) push(&args, argv[i]);
            break;
        }
        if (a[0] == '-' && a[1] && !v) { fprintf(stderr, "dcl detect: %s needs a value\n", a); free_list(&args); return DCL_EXIT_USAGE; }
        char *end = NULL;
        if (!strcmp(a, "--model")) model = argv[++i];
        else if (!strcmp(a, "--annotate")) annotate = argv[++i];
        else if (!strcmp(a, "--device")) dopt.device = argv[++i];
        else if (!strcmp(a, "--mtcnn")) dopt.mtcnn_path = argv[++i];
        else if (!strcmp(a, "--format")) {
            v = argv[++i];
            if (!strcmp(v, "jsonl") || !strcmp(v, "json")) r.format = 0;
            else if (!strcmp(v, "csv")) r.format = 1;
            else if (!strcmp(v, "table")) r.format = 2;
            else { fprintf(stderr, "dcl detect: --format %s: expected jsonl, csv or table\n", v); free_list(&args); return DCL_EXIT_USAGE; }
        } else if (!strcmp(a, "--frames") || !strcmp(a, "--threads") || !strcmp(a, "--max-faces")) {
            long n = strtol(argv[++i], &end, 10);
            int lo = !strcmp(a, "--threads") ? 0 : 1, hi = !strcmp(a, "--frames") ? 100000 : 1024;
            if (*end || end == argv[i] || n < lo || n > hi) {
                fprintf(stderr, "dcl detect: %s %s: expected an integer in %d..%d\n", a, argv[i], lo, hi);
                free_list(&args);
                return DCL_EXIT_USAGE;
            }
            if (!strcmp(a, "--frames")) r.ao.frames = (int)n;
            else if (!strcmp(a, "--threads")) dopt.threads = (int)n;
            else dopt.max_faces = (int)n;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dcl detect: unknown option %s\n", a);
            usage(stderr);
            free_list(&args);
            return DCL_EXIT_USAGE;
        } else push(&args, a);
    }
    if (!args.n && !read_stdin) {
        fprintf(stderr, "dcl detect: no input: give image or video paths, directories, or - to read paths from standard input\n");
        usage(stderr);
        return DCL_EXIT_USAGE;
    }
    if (!model) {
        const char *env = getenv("DCL_MODEL");
        if (env && *env) model = env;
        else if (access("model.safetensors", F_OK) == 0) model = "model.safetensors";
        else {
            fprintf(stderr, "dcl detect: no model: pass --model FILE (written by dcl export), set DCL_MODEL, or put "
                            "model.safetensors in the current directory\n");
            free_list(&args);
            return DCL_EXIT_USAGE;
        }
    }
    if (annotate) {
        struct stat sb;
        if (mkdir(annotate, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "dcl detect: --annotate %s: %s\n", annotate, strerror(errno));
            free_list(&args);
            return DCL_EXIT_FAIL;
        }
        if (stat(annotate, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "dcl detect: --annotate %s: not a directory\n", annotate);
            free_list(&args);
            return DCL_EXIT_FAIL;
        }
        r.annotate = annotate;
    }
    if (dopt.threads > 0) dcl_set_num_threads(dopt.threads);
    dcl_status s = dcl_deploy_open(&r.d, model, &dopt);
    if (s) {
        free_list(&args);
        return cli_fail("detect", s);
    }
    /* expand directories first so that the progress bar knows the total */
    strlist inputs = {0};
    for (int i = 0; i < args.n; i++) {
        struct stat sb;
        if (stat(args.v[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            int before = inputs.n;
            if (walk(&inputs, args.v[i], 0)) r.failed++;
            if (inputs.n == before) fprintf(stderr, "dcl detect: %s: no images or videos in this directory\n", args.v[i]);
        } else {
            push(&inputs, args.v[i]);
        }
    }
    free_list(&args);
    int tty = isatty(2), total = read_stdin ? 0 : inputs.n;
    int show = tty && (total > 1 || read_stdin);
    if (r.format == 1) fputs(dcl_media_csv_header(), stdout);
    for (int i = 0; i < inputs.n; i++) {
        if (show) progress(r.done, total, inputs.v[i]);
        score_one(&r, inputs.v[i]);
    }
    if (read_stdin) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
            if (!n) continue;
            if (show) progress(r.done, 0, line);
            score_one(&r, line);
        }
        free(line);
    }
    if (show) {
        progress(r.done, total ? total : 0, "");
        fputc('\n', stderr);
    }
    free_list(&inputs);
    free_list(&r.used);
    dcl_buf_free(&r.out);
    dcl_deploy_free(r.d);
    return r.failed ? DCL_EXIT_FAIL : DCL_EXIT_OK;
}
