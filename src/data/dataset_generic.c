/* Generic datasets.
 *
 * Folders: ROOT/real/... and ROOT/fake/... (or ROOT/{train,val,test}/{real,fake}/...):
 * every video file is an entry, every image file is an entry grouped by its
 * folder; a folder named train, val (validation) or test anywhere on the way
 * sets the split.
 *
 * CSV (opts.csv; a relative name is looked up under ROOT first): with a
 * header naming its columns (path, label, split, video/group, id, method,
 * dataset, quality, target, source, pair, mask, media; the columns written by
 * dcl_dataset_write_csv) or, without a header, the positional columns
 * path,label[,split][,video].  Paths are relative to the CSV's folder (or
 * absolute).  Labels: 0/1, real/fake.  A listed folder is a frame sequence. */
#include "data/dataset_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { C_PATH, C_LABEL, C_SPLIT, C_GROUP, C_ID, C_METHOD, C_DATASET, C_QUALITY, C_TARGET, C_SOURCE, C_PAIR, C_MASK, C_MEDIA, C_N };

static int column_of(const char *name) {
    static const struct { const char *n; int c; } map[] = {
        {"path", C_PATH}, {"file", C_PATH}, {"filename", C_PATH}, {"label", C_LABEL}, {"split", C_SPLIT},
        {"set", C_SPLIT}, {"video", C_GROUP}, {"group", C_GROUP}, {"id", C_ID}, {"method", C_METHOD},
        {"dataset", C_DATASET}, {"quality", C_QUALITY}, {"target", C_TARGET}, {"source", C_SOURCE},
        {"pair", C_PAIR}, {"mask", C_MASK}, {"media", C_MEDIA},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(name, map[i].n)) return map[i].c;
    return -1;
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

static dcl_status open_csv(dcl_dataset *ds, const char *csv) {
    char path[PATH_MAX];
    const char *cand = ds_strf(ds, "%s/%s", ds->root, csv);
    snprintf(path, sizeof path, "%s", (csv[0] != '/' && ds_is_file(cand)) ? cand : csv);
    FILE *f = fopen(path, "rb");
    if (!f) return dcl_fail(DCL_ERR_IO, "%s: cannot open the CSV list", path);
    /* paths are relative to the CSV's folder */
    char dir[PATH_MAX];
    char *abs = realpath(path, NULL);
    snprintf(dir, sizeof dir, "%s", abs ? abs : path);
    free(abs);
    char *sl = strrchr(dir, '/');
    if (sl && sl != dir) *sl = 0;
    else if (sl) sl[1] = 0;
    else snprintf(dir, sizeof dir, ".");
    free(ds->root);
    ds->root = strdup(dir);
    if (!ds->root) { fclose(f); return dcl_fail(DCL_ERR_NOMEM, "dataset: out of memory"); }

    int col[C_N];
    for (int c = 0; c < C_N; c++) col[c] = -1;
    col[C_PATH] = 0; col[C_LABEL] = 1; col[C_SPLIT] = 2; col[C_GROUP] = 3; /* positional default */
    char line[8192];
    int ln = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *cur = line, *l = ds_next_line(&cur);
        if (!l || !*l || *l == '#') continue;
        char *fld[32];
        int nf = ds_csv_fields(l, fld, 32);
        if (ln == 1) {
            int named = 0;
            for (int i = 0; i < nf; i++) named += column_of(fld[i]) == C_PATH;
            if (named) {
                for (int c = 0; c < C_N; c++) col[c] = -1;
                for (int i = 0; i < nf; i++) {
                    int c = column_of(fld[i]);
                    if (c >= 0 && col[c] < 0) col[c] = i;
                }
                if (col[C_LABEL] < 0) {
                    fclose(f);
                    return dcl_fail(DCL_ERR_FORMAT, "%s: the header has no label column", path);
                }
                continue;
            }
        }
        const char *v[C_N];
        for (int c = 0; c < C_N; c++) v[c] = (col[c] >= 0 && col[c] < nf) ? fld[col[c]] : NULL;
        const char *where = ds_strf(ds, "%s:%d", path, ln);
        if (!nonempty(v[C_PATH]) || !v[C_LABEL]) {
            ds_issue(ds, DCL_ISSUE_METADATA, where, "expected at least path,label");
            continue;
        }
        int label = ds_parse_label(v[C_LABEL]);
        if (label < 0) {
            ds_issue(ds, DCL_ISSUE_METADATA, where, "label '%s' is not 0/1 or real/fake", v[C_LABEL]);
            continue;
        }
        int split = DCL_SPLIT_NONE;
        if (nonempty(v[C_SPLIT])) {
            split = dcl_split_parse(v[C_SPLIT]);
            if (split < 0) {
                ds_issue(ds, DCL_ISSUE_METADATA, where, "unknown split '%s'; using none", v[C_SPLIT]);
                split = DCL_SPLIT_NONE;
            }
        }
        const char *rel = v[C_PATH];
        const char *full = ds_path(ds, rel);
        dcl_media media;
        if (ds_is_dir(full)) media = DCL_MEDIA_FRAMES;
        else if (ds_is_file(full)) media = ds_is_image_name(rel) ? DCL_MEDIA_IMAGE : DCL_MEDIA_VIDEO;
        else {
            ds_issue(ds, DCL_ISSUE_MISSING, full, "listed in %s but not on disk", where);
            continue;
        }
        char id[2048];
        if (nonempty(v[C_ID])) snprintf(id, sizeof id, "%s", v[C_ID]);
        else {
            snprintf(id, sizeof id, "%s", rel);
            char *dot = strrchr(id, '.');
            if (dot && !strchr(dot, '/') && media != DCL_MEDIA_FRAMES) *dot = 0;
        }
        const char *method = nonempty(v[C_METHOD]) ? v[C_METHOD] : (label ? "fake" : "real");
        dcl_entry *e = ds_add_item(ds, id, rel, media, label, method, (dcl_split)split);
        if (!e) break;
        rows++;
        if (nonempty(v[C_GROUP])) e->group = ds_str(ds, v[C_GROUP]);
        if (nonempty(v[C_DATASET])) e->dataset = ds_str(ds, v[C_DATASET]);
        e->quality = ds_str(ds, nonempty(v[C_QUALITY]));
        e->target_id = ds_str(ds, nonempty(v[C_TARGET]));
        e->source_id = ds_str(ds, nonempty(v[C_SOURCE]));
        e->pair_id = ds_str(ds, nonempty(v[C_PAIR])); /* resolved after indexing */
        if (nonempty(v[C_MASK])) e->mask_path = ds_path(ds, v[C_MASK]);
        if (media == DCL_MEDIA_FRAMES && ds_fill_frames(ds, e, full) == 0)
            ds_issue(ds, DCL_ISSUE_IGNORED, full, "listed folder holds no images");
    }
    fclose(f);
    (void)rows;
    ds_index(ds);
    for (int i = 0; i < ds->n; i++) {
        dcl_entry *e = &ds->e[i];
        if (!e->pair_id) continue;
        const char *want = e->pair_id;
        e->pair_id = NULL;
        int j = ds_lookup(ds, want);
        if (j >= 0) ds_set_pair(ds, e, j);
        else ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "its pair %s is not in the list", want);
    }
    return DCL_OK;
}

static void walk(dcl_dataset *ds, const char *rel, int label, int split, int depth) {
    char **names = NULL;
    int n = ds_list(ds_path(ds, rel), &names);
    if (n < 0) return;
    for (int i = 0; i < n; i++) {
        const char *r = ds_strf(ds, "%s/%s", rel, names[i]);
        const char *full = ds_path(ds, r);
        if (ds_is_dir(full)) {
            int s = dcl_split_parse(names[i]);
            if (depth < 12) walk(ds, r, label, s > 0 ? s : split, depth + 1);
            else ds_issue(ds, DCL_ISSUE_IGNORED, full, "folder nested too deep");
            continue;
        }
        int vid = ds_is_video_name(names[i]), img = ds_is_image_name(names[i]);
        if (!vid && !img) {
            ds_issue(ds, DCL_ISSUE_IGNORED, full, "not a video or image file");
            continue;
        }
        char id[2048];
        snprintf(id, sizeof id, "%s", r);
        char *dot = strrchr(id, '.');
        if (dot) *dot = 0;
        dcl_entry *e = ds_add_item(ds, id, r, vid ? DCL_MEDIA_VIDEO : DCL_MEDIA_IMAGE, label, label ? "fake" : "real",
                                   (dcl_split)split);
        if (!e) break;
        if (img) e->group = ds_str(ds, rel);
    }
    ds_free_names(names, n);
}

dcl_status ds_open_generic(dcl_dataset *ds, const dcl_dataset_opts *o) {
    if (o->csv && *o->csv) return open_csv(ds, o->csv);
    int found = 0;
    char **names = NULL;
    int n = ds_list(ds->root, &names);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        if (!ds_is_dir(ds_path(ds, nm))) {
            ds_issue(ds, DCL_ISSUE_IGNORED, ds_strf(ds, "%s/%s", ds->root, nm), "not a real/ or fake/ folder");
            continue;
        }
        if (!strcasecmp(nm, "real") || !strcasecmp(nm, "fake")) {
            walk(ds, nm, !strcasecmp(nm, "fake"), DCL_SPLIT_NONE, 1);
            found++;
            continue;
        }
        int s = dcl_split_parse(nm);
        if (s > 0) {
            for (int l = 0; l < 2; l++) {
                const char *sub = ds_strf(ds, "%s/%s", nm, l ? "fake" : "real");
                if (ds_is_dir(ds_path(ds, sub))) { walk(ds, sub, l, s, 2); found++; }
            }
            continue;
        }
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_strf(ds, "%s/%s", ds->root, nm), "not a real/ or fake/ folder");
    }
    if (n > 0) ds_free_names(names, n);
    if (!found)
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: no real/ or fake/ folder (nor train|val|test/{real,fake}); give a CSV list instead",
                        ds->root);
    ds_index(ds);
    return DCL_OK;
}
