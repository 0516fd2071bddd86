/* DFDC (Deepfake Detection Challenge) and its preview (DFDCP).
 *
 * DFDC, as distributed by Kaggle / Meta:
 *   dfdc_train_part_N/metadata.json  {"x.mp4": {"label": "FAKE"|"REAL", "split": "train",
 *                                              "original": "y.mp4"|null}, ...}
 *   dfdc_train_part_N/x.mp4
 *   test set: labels.csv ("filename,label", label 1 = fake) beside the videos
 *   (or with them in videos/)
 * Folders are found up to two levels below the root (ROOT/train/dfdc_train_part_0
 * works too); Kaggle's train_sample_videos/metadata.json reads the same way.
 * A fake's "original" names the real video it was made from.
 *
 * DFDC preview: ROOT/dataset.json maps each video path relative to the root
 * ("original_videos/...", "method_A/...", "method_B/...") to
 * {"label": "real"|"fake", "set": "train"|"test", ...}; a "target_id" field,
 * when present, is kept.  The preview does not pair fakes with reals. */
#include "data/dataset_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* reports videos of dir (relative reldir) whose names are not in listed[] */
static void report_unlisted(dcl_dataset *ds, const char *reldir, char **listed, int nl, const char *meta) {
    char **names = NULL;
    int n = ds_list(ds_path(ds, reldir), &names);
    if (n <= 0) return;
    if (nl > 1) qsort(listed, nl, sizeof *listed, cmp_str);
    for (int i = 0; i < n; i++) {
        if (!ds_is_video_name(names[i])) continue;
        const char *key = names[i];
        if (nl > 0 && bsearch(&key, listed, nl, sizeof *listed, cmp_str)) continue;
        ds_issue(ds, DCL_ISSUE_UNLISTED, ds_strf(ds, "%s/%s", ds_path(ds, reldir), names[i]), "video not listed in %s", meta);
    }
    ds_free_names(names, n);
}

static const char *join_rel(dcl_dataset *ds, const char *dir, const char *name) {
    return *dir ? ds_strf(ds, "%s/%s", dir, name) : ds_str(ds, name);
}

static void parse_part(dcl_dataset *ds, const char *reldir) {
    const char *mpath = ds_path(ds, join_rel(ds, reldir, "metadata.json"));
    cJSON *j = ds_read_json(ds, mpath);
    if (!j) return;
    if (!cJSON_IsObject(j)) {
        ds_issue(ds, DCL_ISSUE_METADATA, mpath, "expected a JSON object mapping file names to records");
        cJSON_Delete(j);
        return;
    }
    int cap = cJSON_GetArraySize(j), nl = 0;
    char **listed = calloc(cap ? cap : 1, sizeof *listed);
    cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *file = it->string;
        if (listed) listed[nl++] = (char *)file;
        const char *rel = join_rel(ds, reldir, file);
        cJSON *lab = cJSON_GetObjectItemCaseSensitive(it, "label");
        cJSON *spl = cJSON_GetObjectItemCaseSensitive(it, "split");
        cJSON *orig = cJSON_GetObjectItemCaseSensitive(it, "original");
        int label = cJSON_IsString(lab) ? ds_parse_label(lab->valuestring) : -1;
        if (!cJSON_IsObject(it) || label < 0) {
            ds_issue(ds, DCL_ISSUE_METADATA, ds_path(ds, rel), "%s: record has no \"label\" of REAL or FAKE", mpath);
            continue;
        }
        int split = DCL_SPLIT_NONE;
        if (cJSON_IsString(spl)) {
            split = dcl_split_parse(spl->valuestring);
            if (split < 0) {
                ds_issue(ds, DCL_ISSUE_METADATA, ds_path(ds, rel), "%s: unknown split \"%s\"", mpath, spl->valuestring);
                split = DCL_SPLIT_NONE;
            }
        }
        if (!ds_is_file(ds_path(ds, rel))) {
            ds_issue(ds, DCL_ISSUE_MISSING, ds_path(ds, rel), "listed in %s but not on disk", mpath);
            continue;
        }
        char stem[512];
        ds_stem(stem, sizeof stem, file);
        dcl_entry *e = ds_add_item(ds, stem, rel, DCL_MEDIA_VIDEO, label, label ? "DFDC" : "real", (dcl_split)split);
        if (!e) break;
        if (label) {
            if (cJSON_IsString(orig) && *orig->valuestring) {
                char os[512];
                ds_stem(os, sizeof os, orig->valuestring);
                e->target_id = ds_str(ds, os);
                e->pair_id = e->target_id; /* resolved after indexing */
            } else {
                ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "%s gives no \"original\" for this fake", mpath);
            }
        } else {
            e->target_id = e->id;
        }
    }
    report_unlisted(ds, reldir, listed, nl, mpath);
    free(listed);
    cJSON_Delete(j);
}

static void parse_labels(dcl_dataset *ds, const char *reldir) {
    const char *cpath = ds_path(ds, join_rel(ds, reldir, "labels.csv"));
    FILE *f = fopen(cpath, "rb");
    if (!f) {
        ds_issue(ds, DCL_ISSUE_METADATA, cpath, "cannot open");
        return;
    }
    const char *vdir = join_rel(ds, reldir, "videos");
    int has_vdir = ds_is_dir(ds_path(ds, vdir));
    char line[4096];
    int ln = 0, nl = 0, cap = 0;
    char **listed = NULL;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *cur = line, *l = ds_next_line(&cur);
        if (!l || !*l) continue;
        char *fld[4];
        int nf = ds_csv_fields(l, fld, 4);
        if (ln == 1 && nf >= 2 && !strcasecmp(fld[0], "filename")) continue; /* header */
        if (nf < 2 || !*fld[0]) {
            ds_issue(ds, DCL_ISSUE_METADATA, ds_strf(ds, "%s:%d", cpath, ln), "expected 'filename,label'");
            continue;
        }
        if (nl == cap) {
            cap = cap ? cap * 2 : 256;
            char **nv = realloc(listed, cap * sizeof *nv);
            if (!nv) break;
            listed = nv;
        }
        listed[nl++] = (char *)ds_str(ds, fld[0]);
        int label = (!strcmp(fld[1], "0") || !strcmp(fld[1], "1")) ? fld[1][0] - '0' : -1;
        if (label < 0) {
            ds_issue(ds, DCL_ISSUE_METADATA, ds_strf(ds, "%s:%d", cpath, ln), "label '%s' is not 0 (real) or 1 (fake)", fld[1]);
            continue;
        }
        const char *rel = join_rel(ds, reldir, fld[0]);
        if (!ds_is_file(ds_path(ds, rel)) && has_vdir) rel = ds_strf(ds, "%s/%s", vdir, fld[0]);
        if (!ds_is_file(ds_path(ds, rel))) {
            ds_issue(ds, DCL_ISSUE_MISSING, ds_path(ds, rel), "listed in %s (line %d) but not on disk", cpath, ln);
            continue;
        }
        char stem[512];
        ds_stem(stem, sizeof stem, fld[0]);
        dcl_entry *e = ds_add_item(ds, stem, rel, DCL_MEDIA_VIDEO, label, label ? "DFDC" : "real", DCL_SPLIT_TEST);
        if (!e) break;
        if (!label) e->target_id = e->id;
    }
    fclose(f);
    report_unlisted(ds, has_vdir ? vdir : reldir, listed, nl, cpath);
    free(listed);
    ds_issue(ds, DCL_ISSUE_NOTE, cpath, "the test labels do not name originals: its fakes have no real pair");
}

static int count_videos(const char *dir) {
    char **names = NULL;
    int n = ds_list(dir, &names), c = 0;
    for (int i = 0; i < n; i++) c += ds_is_video_name(names[i]);
    if (n > 0) ds_free_names(names, n);
    return c;
}

/* one candidate folder */
static int visit(dcl_dataset *ds, const char *reldir) {
    const char *meta = ds_path(ds, join_rel(ds, reldir, "metadata.json"));
    const char *labels = ds_path(ds, join_rel(ds, reldir, "labels.csv"));
    if (ds_is_file(labels)) {
        if (ds_is_file(meta))
            ds_issue(ds, DCL_ISSUE_NOTE, meta, "labels.csv beside it is used for this folder");
        parse_labels(ds, reldir);
        return 1;
    }
    if (ds_is_file(meta)) {
        parse_part(ds, reldir);
        return 1;
    }
    int nv = count_videos(ds_path(ds, reldir));
    if (nv > 0)
        ds_issue(ds, DCL_ISSUE_METADATA, ds_path(ds, reldir), "%d video%s but no metadata.json or labels.csv: not indexed", nv,
                 nv == 1 ? "" : "s");
    return 0;
}

dcl_status ds_open_dfdc(dcl_dataset *ds, const dcl_dataset_opts *o) {
    (void)o;
    int found = visit(ds, "");
    char **l1 = NULL;
    int n1 = ds_list(ds->root, &l1);
    for (int i = 0; i < n1; i++) {
        if (!ds_is_dir(ds_path(ds, l1[i]))) continue;
        found += visit(ds, l1[i]);
        char **l2 = NULL;
        int n2 = ds_list(ds_path(ds, l1[i]), &l2);
        for (int k = 0; k < n2; k++) {
            const char *r2 = ds_strf(ds, "%s/%s", l1[i], l2[k]);
            if (strcmp(l2[k], "videos") && ds_is_dir(ds_path(ds, r2))) found += visit(ds, r2);
        }
        if (n2 > 0) ds_free_names(l2, n2);
    }
    if (n1 > 0) ds_free_names(l1, n1);
    if (!found)
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: no metadata.json or labels.csv within two levels: not a DFDC root", ds->root);
    ds_index(ds);
    for (int i = 0; i < ds->n; i++) {
        dcl_entry *e = &ds->e[i];
        if (!e->label || !e->pair_id) continue;
        const char *want = e->pair_id;
        e->pair_id = NULL;
        int j = ds_lookup(ds, want);
        if (j >= 0 && !ds->e[j].label) ds_set_pair(ds, e, j);
        else ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "its original %s.mp4 is not in the dataset%s", want,
                      j >= 0 ? " as a real video" : "");
    }
    return DCL_OK;
}

/* ---- DFDC preview ---- */

static void walk_unlisted(dcl_dataset *ds, const char *reldir, int depth, char **keys, int nk) {
    char **names = NULL;
    int n = ds_list(ds_path(ds, reldir), &names);
    for (int i = 0; i < n; i++) {
        const char *rel = ds_strf(ds, "%s/%s", reldir, names[i]);
        if (ds_is_dir(ds_path(ds, rel))) {
            if (depth < 4) walk_unlisted(ds, rel, depth + 1, keys, nk);
            continue;
        }
        if (!ds_is_video_name(names[i])) continue;
        if (nk > 0 && bsearch(&rel, keys, nk, sizeof *keys, cmp_str)) continue;
        ds_issue(ds, DCL_ISSUE_UNLISTED, ds_path(ds, rel), "video not listed in dataset.json");
    }
    if (n > 0) ds_free_names(names, n);
}

dcl_status ds_open_dfdcp(dcl_dataset *ds, const dcl_dataset_opts *o) {
    (void)o;
    const char *jpath = ds_path(ds, "dataset.json");
    if (!ds_is_file(jpath)) return dcl_fail(DCL_ERR_NOTFOUND, "%s: no dataset.json: not a DFDC preview root", ds->root);
    cJSON *j = ds_read_json(ds, jpath);
    if (!j) return DCL_OK; /* the issue says why */
    if (!cJSON_IsObject(j)) {
        ds_issue(ds, DCL_ISSUE_METADATA, jpath, "expected a JSON object mapping video paths to records");
        cJSON_Delete(j);
        return DCL_OK;
    }
    int nk = 0;
    char **keys = calloc((size_t)cJSON_GetArraySize(j) + 1, sizeof *keys);
    cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *rel = it->string;
        if (keys) keys[nk++] = (char *)ds_str(ds, rel);
        cJSON *lab = cJSON_GetObjectItemCaseSensitive(it, "label");
        cJSON *set = cJSON_GetObjectItemCaseSensitive(it, "set");
        cJSON *tid = cJSON_GetObjectItemCaseSensitive(it, "target_id");
        int label = cJSON_IsString(lab) ? ds_parse_label(lab->valuestring) : -1;
        if (!cJSON_IsObject(it) || label < 0) {
            ds_issue(ds, DCL_ISSUE_METADATA, ds_path(ds, rel), "dataset.json record has no \"label\" of real or fake");
            continue;
        }
        int split = DCL_SPLIT_NONE;
        if (cJSON_IsString(set)) split = dcl_split_parse(set->valuestring);
        if (!cJSON_IsString(set) || split < 0) {
            ds_issue(ds, DCL_ISSUE_METADATA, ds_path(ds, rel), "dataset.json record has no \"set\" of train or test");
            split = DCL_SPLIT_NONE;
        }
        if (!ds_is_file(ds_path(ds, rel))) {
            ds_issue(ds, DCL_ISSUE_MISSING, ds_path(ds, rel), "listed in dataset.json but not on disk");
            continue;
        }
        char id[1024], method[128];
        snprintf(id, sizeof id, "%s", rel);
        char *dot = strrchr(id, '.');
        if (dot && !strchr(dot, '/')) *dot = 0;
        snprintf(method, sizeof method, "%s", rel);
        char *sl = strchr(method, '/');
        if (sl) *sl = 0;
        else snprintf(method, sizeof method, "%s", label ? "fake" : "real");
        if (!label) snprintf(method, sizeof method, "real");
        dcl_entry *e = ds_add_item(ds, id, rel, DCL_MEDIA_VIDEO, label, method, (dcl_split)split);
        if (!e) break;
        if (cJSON_IsString(tid)) e->target_id = ds_str(ds, tid->valuestring);
        else if (cJSON_IsNumber(tid)) e->target_id = ds_strf(ds, "%.0f", tid->valuedouble);
    }
    cJSON_Delete(j);
    ds_index(ds);
    if (!keys) nk = 0;
    if (nk > 1) qsort(keys, nk, sizeof *keys, cmp_str);
    char **names = NULL;
    int n = ds_list(ds->root, &names);
    for (int i = 0; i < n; i++)
        if (ds_is_dir(ds_path(ds, names[i]))) walk_unlisted(ds, names[i], 1, keys, nk);
    if (n > 0) ds_free_names(names, n);
    free(keys);
    ds_issue(ds, DCL_ISSUE_NOTE, jpath, "the DFDC preview does not pair fakes with real videos");
    return DCL_OK;
}
