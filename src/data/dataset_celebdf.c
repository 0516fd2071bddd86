/* Celeb-DF v1 / v2 (github.com/yuezunli/celeb-deepfakeforensics):
 *
 *   Celeb-real/idX_NNNN.mp4        real videos of celebrity idX
 *   YouTube-real/NNNNN.mp4         extra real videos
 *   Celeb-synthesis/idX_idY_NNNN.mp4
 *   List_of_testing_videos.txt     lines "<label> <folder>/<file>"
 *
 * In a synthesis name idX_idY_NNNN, idX is the original (target) identity
 * whose video idX_NNNN supplies the scene, and idY the swapped-in (source)
 * face, as the dataset's authors describe the names.  In the test list the
 * label 1 means REAL and 0 means fake (the reverse of this library's
 * convention); the folder decides the label, the list only the split, and a
 * disagreement is reported.  Videos not in the list form the training set. */
#include "data/dataset_internal.h"

#include <stdlib.h>
#include <string.h>

static void scan_folder(dcl_dataset *ds, const char *folder, int label) {
    char **names = NULL;
    int n = ds_list(ds_path(ds, folder), &names);
    if (n < 0) {
        ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, folder), "folder missing: no %s videos from it", label ? "fake" : "real");
        return;
    }
    int synth = !strcmp(folder, "Celeb-synthesis");
    for (int i = 0; i < n; i++) {
        const char *rel = ds_strf(ds, "%s/%s", folder, names[i]);
        if (!ds_is_video_name(names[i]) || !ds_is_file(ds_path(ds, rel))) {
            ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "not a video file");
            continue;
        }
        char stem[512];
        ds_stem(stem, sizeof stem, names[i]);
        dcl_entry *e = ds_add_item(ds, ds_strf(ds, "%s/%s", folder, stem), rel, DCL_MEDIA_VIDEO, label,
                                   synth ? "Celeb-synthesis" : "real", DCL_SPLIT_TRAIN);
        if (!e) break;
        /* ids: idX_NNNN (real) or idX_idY_NNNN (synthesis) */
        char *parts[4] = {0};
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", stem);
        int np = 0;
        for (char *p = tmp, *s; np < 4 && p; p = s) {
            s = strchr(p, '_');
            if (s) *s++ = 0;
            parts[np++] = p;
        }
        if (synth) {
            if (np == 3 && !strncmp(parts[0], "id", 2) && !strncmp(parts[1], "id", 2) && ds_all_digits(parts[2])) {
                e->target_id = ds_str(ds, parts[0]);
                e->source_id = ds_str(ds, parts[1]);
                e->pair_id = ds_strf(ds, "Celeb-real/%s_%s", parts[0], parts[2]); /* resolved after indexing */
            } else {
                ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "name is not idX_idY_NNNN: cannot find its real video");
            }
        } else if (!strcmp(folder, "Celeb-real") && np == 2 && !strncmp(parts[0], "id", 2)) {
            e->target_id = ds_str(ds, parts[0]);
        }
    }
    ds_free_names(names, n);
}

dcl_status ds_open_celebdf(dcl_dataset *ds, const dcl_dataset_opts *o) {
    (void)o;
    int have = ds_is_dir(ds_path(ds, "Celeb-real")) + ds_is_dir(ds_path(ds, "Celeb-synthesis")) +
               ds_is_dir(ds_path(ds, "YouTube-real"));
    if (!have)
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: no Celeb-real/, YouTube-real/ or Celeb-synthesis/ folder: not a Celeb-DF root",
                        ds->root);
    scan_folder(ds, "Celeb-real", 0);
    scan_folder(ds, "YouTube-real", 0);
    scan_folder(ds, "Celeb-synthesis", 1);
    /* anything else at the top */
    {
        char **names = NULL;
        int n = ds_list(ds->root, &names);
        for (int i = 0; i < n; i++) {
            if (!strcmp(names[i], "Celeb-real") || !strcmp(names[i], "YouTube-real") || !strcmp(names[i], "Celeb-synthesis") ||
                !strcmp(names[i], "List_of_testing_videos.txt"))
                continue;
            ds_issue(ds, DCL_ISSUE_IGNORED, ds_strf(ds, "%s/%s", ds->root, names[i]), "not part of the Celeb-DF layout");
        }
        if (n > 0) ds_free_names(names, n);
    }
    ds_index(ds);

    const char *lpath = ds_path(ds, "List_of_testing_videos.txt");
    size_t len = 0;
    char *buf = NULL;
    FILE *f = fopen(lpath, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
        if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) { buf[sz] = 0; len = (size_t)sz; }
        else { free(buf); buf = NULL; }
        fclose(f);
    }
    if (!buf) {
        ds_issue(ds, DCL_ISSUE_METADATA, lpath, "test list missing or unreadable: every entry has split none");
        for (int i = 0; i < ds->n; i++) ds->e[i].split = DCL_SPLIT_NONE;
    } else {
        (void)len;
        char *cur = buf, *line;
        int ln = 0;
        while ((line = ds_next_line(&cur))) {
            ln++;
            while (*line == ' ' || *line == '\t') line++;
            if (!*line) continue;
            char *sp = strpbrk(line, " \t");
            const char *rel = sp ? sp + 1 : NULL;
            if (sp) *sp = 0;
            while (rel && (*rel == ' ' || *rel == '\t')) rel++;
            if (!rel || !*rel || (strcmp(line, "0") && strcmp(line, "1"))) {
                ds_issue(ds, DCL_ISSUE_METADATA, ds_strf(ds, "%s:%d", lpath, ln),
                         "expected '<1|0> <folder>/<file>.mp4' (1 = real, 0 = fake)");
                continue;
            }
            int list_fake = !strcmp(line, "0"); /* Celeb-DF list: 1 = real */
            char id[1024];
            snprintf(id, sizeof id, "%s", rel);
            char *dot = strrchr(id, '.');
            char *slash = strrchr(id, '/');
            if (dot && (!slash || dot > slash)) *dot = 0;
            int j = ds_lookup(ds, id);
            if (j < 0) {
                ds_issue(ds, DCL_ISSUE_MISSING, ds_path(ds, rel), "listed in List_of_testing_videos.txt (line %d) but not on disk", ln);
                continue;
            }
            dcl_entry *e = &ds->e[j];
            e->split = DCL_SPLIT_TEST;
            if (e->label != list_fake)
                ds_issue(ds, DCL_ISSUE_CONFLICT, e->path, "test list line %d says %s, its folder says %s; the folder is kept", ln,
                         list_fake ? "fake (0)" : "real (1)", e->label ? "fake" : "real");
        }
        free(buf);
    }

    for (int i = 0; i < ds->n; i++) {
        dcl_entry *e = &ds->e[i];
        if (!e->label || !e->pair_id) continue;
        const char *want = e->pair_id;
        e->pair_id = NULL;
        int j = ds_lookup(ds, want);
        if (j >= 0) ds_set_pair(ds, e, j);
        else ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "its real video %s.mp4 is not in the dataset", want);
    }
    return DCL_OK;
}
