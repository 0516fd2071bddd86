/* FaceForensics++ and its DeepFakeDetection part (DFD), as released by the
 * download script of github.com/ondyari/FaceForensics:
 *
 *   original_sequences/youtube/<q>/videos/NNN.mp4
 *   manipulated_sequences/<method>/<q>/videos/TTT_SSS.mp4   (target TTT, source SSS)
 *   manipulated_sequences/<method>/masks/videos/TTT_SSS.mp4
 *   original_sequences/actors/<q>/videos/AA__scene.mp4                       (DFD real)
 *   manipulated_sequences/DeepFakeDetection/<q>/videos/AA_BB__scene__ID.mp4   (DFD fake)
 *   manipulated_sequences/DeepFakeDetection/masks/videos/AA_BB__scene__ID.mp4
 *   splits: {train,val,test}.json, each a list of id pairs [["953","974"], ...]
 *
 * q is raw, c23 or c40.  A fake TTT_SSS keeps the scene of original TTT and
 * carries the face of SSS: its pixel-aligned real is original TTT.  A real id
 * belongs to the split of any pair that holds it; fakes TTT_SSS and SSS_TTT
 * belong to the split of their pair.  DFD has no official split. */
#include "data/dataset_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* SelfBlended: self-blended images (made by `dcl synth`; not part of FF++) */
static const char *const k_methods[] = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "SelfBlended"};
static const char *const k_short[] = {"DF", "F2F", "FS", "NT", "FSh", "SBI"};
#define NMETH 6

typedef struct split_map {
    char **key;
    int *split;
    int n, cap;
} split_map;

static int sm_find(const split_map *m, const char *k) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], k)) return i;
    return -1;
}

/* adds k -> s; reports a conflict when k already maps to another split */
static void sm_put(dcl_dataset *ds, split_map *m, const char *k, int s, const char *file) {
    int i = sm_find(m, k);
    if (i >= 0) {
        if (m->split[i] != s)
            ds_issue(ds, DCL_ISSUE_CONFLICT, file, "id %s is in both the %s and the %s split; keeping %s", k,
                     dcl_split_name((dcl_split)m->split[i]), dcl_split_name((dcl_split)s), dcl_split_name((dcl_split)m->split[i]));
        return;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 256;
        char **nk = realloc(m->key, cap * sizeof *nk);
        if (!nk) return;
        m->key = nk;
        int *ns = realloc(m->split, cap * sizeof *ns);
        if (!ns) return;
        m->split = ns;
        m->cap = cap;
    }
    m->key[m->n] = strdup(k);
    if (!m->key[m->n]) return;
    m->split[m->n++] = s;
}

static void sm_free(split_map *m) {
    for (int i = 0; i < m->n; i++) free(m->key[i]);
    free(m->key);
    free(m->split);
}

/* Reads the three split files; returns the number found. */
static int read_splits(dcl_dataset *ds, const char *dir, split_map *ids, split_map *pairs) {
    static const char *const files[] = {"train.json", "val.json", "test.json"};
    static const int sp[] = {DCL_SPLIT_TRAIN, DCL_SPLIT_VAL, DCL_SPLIT_TEST};
    int found = 0;
    for (int f = 0; f < 3; f++) {
        const char *path = ds_strf(ds, "%s/%s", dir, files[f]);
        if (!ds_is_file(path)) continue;
        found++;
        cJSON *j = ds_read_json(ds, path);
        if (!j) continue;
        if (!cJSON_IsArray(j)) {
            ds_issue(ds, DCL_ISSUE_METADATA, path, "expected a JSON list of id pairs");
            cJSON_Delete(j);
            continue;
        }
        int k = 0;
        cJSON *p;
        cJSON_ArrayForEach(p, j) {
            cJSON *a = cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2 ? cJSON_GetArrayItem(p, 0) : NULL;
            cJSON *b = a ? cJSON_GetArrayItem(p, 1) : NULL;
            if (!a || !b || !cJSON_IsString(a) || !cJSON_IsString(b) || !ds_all_digits(a->valuestring) ||
                !ds_all_digits(b->valuestring)) {
                ds_issue(ds, DCL_ISSUE_METADATA, path, "element %d is not a pair of numeric id strings like [\"953\", \"974\"]", k);
                k++;
                continue;
            }
            char key[64];
            sm_put(ds, ids, a->valuestring, sp[f], path);
            sm_put(ds, ids, b->valuestring, sp[f], path);
            snprintf(key, sizeof key, "%s_%s", a->valuestring, b->valuestring);
            sm_put(ds, pairs, key, sp[f], path);
            snprintf(key, sizeof key, "%s_%s", b->valuestring, a->valuestring);
            sm_put(ds, pairs, key, sp[f], path);
            k++;
        }
        cJSON_Delete(j);
    }
    return found;
}

/* "TTT_SSS" -> t, s (both numeric) */
static int parse_pair_name(const char *stem, char *t, char *s, size_t n) {
    const char *u = strchr(stem, '_');
    if (!u || strchr(u + 1, '_')) return 0;
    size_t lt = (size_t)(u - stem);
    if (lt == 0 || lt >= n || strlen(u + 1) >= n) return 0;
    memcpy(t, stem, lt);
    t[lt] = 0;
    snprintf(s, n, "%s", u + 1);
    return ds_all_digits(t) && ds_all_digits(s);
}

/* DFD fake "AA_BB__scene__ID" -> AA, BB, scene; real "AA__scene" -> AA, scene */
static int parse_dfd_name(const char *stem, int fake, char *t, char *s, char *scene, size_t n) {
    const char *d1 = strstr(stem, "__");
    if (!d1) return 0;
    size_t lp = (size_t)(d1 - stem);
    if (lp == 0 || lp >= n) return 0;
    char ids[64];
    if (lp >= sizeof ids) return 0;
    memcpy(ids, stem, lp);
    ids[lp] = 0;
    const char *rest = d1 + 2;
    const char *d2 = strstr(rest, "__");
    if (fake) {
        if (!d2 || d2 == rest || !d2[2]) return 0;
        size_t ls = (size_t)(d2 - rest);
        if (ls >= n) return 0;
        memcpy(scene, rest, ls);
        scene[ls] = 0;
        return parse_pair_name(ids, t, s, n);
    }
    if (d2 || !*rest || strlen(rest) >= n) return 0;
    snprintf(scene, n, "%s", rest);
    snprintf(t, n, "%s", ids);
    s[0] = 0;
    return ds_all_digits(t);
}

/* One folder of videos: calls back per video file, reports everything else. */
typedef void (*video_fn)(dcl_dataset *ds, const char *rel, const char *stem, void *ctx);

static int scan_videos(dcl_dataset *ds, const char *reldir, video_fn fn, void *ctx) {
    const char *dir = ds_path(ds, reldir);
    char **names = NULL;
    int n = ds_list(dir, &names);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        const char *rel = ds_strf(ds, "%s/%s", reldir, names[i]);
        if (!ds_is_video_name(names[i]) || !ds_is_file(ds_path(ds, rel))) {
            ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "not a video file");
            continue;
        }
        char stem[512];
        ds_stem(stem, sizeof stem, names[i]);
        fn(ds, rel, stem, ctx);
    }
    ds_free_names(names, n);
    return n;
}

typedef struct ff_ctx {
    const char *q;
    const char *method;     /* NULL for reals */
    const char *mask_dir;   /* rel dir of masks, NULL when absent */
    int dfd;
} ff_ctx;

static void add_youtube(dcl_dataset *ds, const char *rel, const char *stem, void *vc) {
    ff_ctx *c = vc;
    if (!ds_all_digits(stem)) {
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "original video name is not a numeric id like 000.mp4");
        return;
    }
    dcl_entry *e = ds_add_item(ds, ds_strf(ds, "youtube/%s/%s", c->q, stem), rel, DCL_MEDIA_VIDEO, 0, "real", DCL_SPLIT_NONE);
    if (!e) return;
    e->quality = ds_str(ds, c->q);
    e->target_id = ds_str(ds, stem);
}

static void set_mask(dcl_dataset *ds, dcl_entry *e, const ff_ctx *c, const char *stem, const char *rel) {
    if (!c->mask_dir) return;
    const char *mrel = ds_strf(ds, "%s/%s.mp4", c->mask_dir, stem);
    if (ds_is_file(ds_path(ds, mrel))) e->mask_path = ds_path(ds, mrel);
    else ds_issue(ds, DCL_ISSUE_MISSING, ds_path(ds, mrel), "mask video of %s is missing (the method's masks folder exists)",
                  ds_path(ds, rel));
}

static void add_fake(dcl_dataset *ds, const char *rel, const char *stem, void *vc) {
    ff_ctx *c = vc;
    char t[64], s[64];
    if (!parse_pair_name(stem, t, s, sizeof t)) {
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "fake video name is not TTT_SSS (target_source ids)");
        return;
    }
    dcl_entry *e = ds_add_item(ds, ds_strf(ds, "%s/%s/%s", c->method, c->q, stem), rel, DCL_MEDIA_VIDEO, 1, c->method,
                               DCL_SPLIT_NONE);
    if (!e) return;
    e->quality = ds_str(ds, c->q);
    e->target_id = ds_str(ds, t);
    e->source_id = ds_str(ds, s);
    e->pair_id = ds_strf(ds, "youtube/%s/%s", c->q, t); /* resolved after indexing */
    set_mask(ds, e, c, stem, rel);
}

static void add_actor(dcl_dataset *ds, const char *rel, const char *stem, void *vc) {
    ff_ctx *c = vc;
    char t[64], s[64], scene[256];
    if (!parse_dfd_name(stem, 0, t, s, scene, sizeof scene)) {
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "DFD actor video name is not AA__scene");
        return;
    }
    dcl_entry *e = ds_add_item(ds, ds_strf(ds, "actors/%s/%s", c->q, stem), rel, DCL_MEDIA_VIDEO, 0, "real", DCL_SPLIT_NONE);
    if (!e) return;
    e->quality = ds_str(ds, c->q);
    e->target_id = ds_str(ds, t);
}

static void add_dfd_fake(dcl_dataset *ds, const char *rel, const char *stem, void *vc) {
    ff_ctx *c = vc;
    char t[256], s[256], scene[256];
    if (!parse_dfd_name(stem, 1, t, s, scene, sizeof scene)) {
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "DFD fake video name is not AA_BB__scene__ID");
        return;
    }
    dcl_entry *e = ds_add_item(ds, ds_strf(ds, "DeepFakeDetection/%s/%s", c->q, stem), rel, DCL_MEDIA_VIDEO, 1, "DFD",
                               DCL_SPLIT_NONE);
    if (!e) return;
    e->quality = ds_str(ds, c->q);
    e->target_id = ds_str(ds, t);
    e->source_id = ds_str(ds, s);
    e->pair_id = ds_strf(ds, "actors/%s/%s__%s", c->q, t, scene);
    set_mask(ds, e, c, stem, rel);
}

static dcl_status parse_methods(const char *list, int use[NMETH], int *dfd) {
    for (int m = 0; m < NMETH; m++) use[m] = list ? 0 : 1;
    if (!list) return DCL_OK;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int hit = 0;
        for (int m = 0; m < NMETH; m++)
            if (!strcasecmp(tok, k_methods[m]) || !strcasecmp(tok, k_short[m])) { use[m] = 1; hit = 1; }
        if (!strcasecmp(tok, "DFD") || !strcasecmp(tok, "DeepFakeDetection")) { *dfd = 1; hit = 1; }
        if (!strcasecmp(tok, "all")) { for (int m = 0; m < NMETH; m++) use[m] = 1; hit = 1; }
        if (!hit)
            return dcl_fail(DCL_ERR_ARG, "unknown FaceForensics++ method '%s' (known: Deepfakes/DF, Face2Face/F2F, "
                            "FaceSwap/FS, NeuralTextures/NT, FaceShifter/FSh, SelfBlended/SBI, DFD)", tok);
    }
    return DCL_OK;
}

dcl_status ds_open_ffpp(dcl_dataset *ds, const dcl_dataset_opts *o, int dfd_only) {
    const char *qs[3];
    int nq = 0;
    const char *qual = o->quality ? o->quality : "c23";
    if (!strcasecmp(qual, "all")) { qs[0] = "raw"; qs[1] = "c23"; qs[2] = "c40"; nq = 3; }
    else if (!strcmp(qual, "raw") || !strcmp(qual, "c23") || !strcmp(qual, "c40")) { qs[0] = qual; nq = 1; }
    else return dcl_fail(DCL_ERR_ARG, "unknown FaceForensics++ quality '%s' (raw, c23, c40 or all)", qual);
    int use[NMETH], dfd = dfd_only;
    if (dfd_only) { /* "dfd": DeepFakeDetection only (methods, if given, are only checked) */
        int d2 = 0;
        DCL_TRY(parse_methods(o->methods, use, &d2));
        for (int m = 0; m < NMETH; m++) use[m] = 0;
    } else {
        DCL_TRY(parse_methods(o->methods, use, &dfd)); /* "DFD" alone: only DeepFakeDetection */
    }
    if (!ds_is_dir(ds_path(ds, "original_sequences")) && !ds_is_dir(ds_path(ds, "manipulated_sequences")))
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: no original_sequences/ or manipulated_sequences/ folder: not a FaceForensics++ root",
                        ds->root);

    for (int qi = 0; qi < nq; qi++) {
        const char *q = qs[qi];
        ff_ctx c = {q, NULL, NULL, 0};
        int any_fake_method = 0;
        for (int m = 0; m < NMETH; m++) any_fake_method |= use[m];
        if (any_fake_method) {
            const char *rd = ds_strf(ds, "original_sequences/youtube/%s/videos", q);
            if (scan_videos(ds, rd, add_youtube, &c) < 0)
                ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, rd), "no original (real) videos of quality %s", q);
        }
        for (int m = 0; m < NMETH; m++) {
            if (!use[m]) continue;
            c.method = k_methods[m];
            const char *md = ds_strf(ds, "manipulated_sequences/%s/masks/videos", k_methods[m]);
            c.mask_dir = ds_is_dir(ds_path(ds, md)) ? md : NULL;
            const char *vd = ds_strf(ds, "manipulated_sequences/%s/%s/videos", k_methods[m], q);
            if (scan_videos(ds, vd, add_fake, &c) < 0) {
                /* SelfBlended exists only in synthetic sets: its absence is news only when asked for */
                if (m != NMETH - 1 || o->methods)
                    ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, vd), "no %s videos of quality %s", k_methods[m], q);
                continue;
            }
            if (!c.mask_dir && m != 4 && qi == 0)
                ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, md), "no masks folder: %s fakes have no mask videos", k_methods[m]);
        }
        if (dfd) {
            c.method = "DFD";
            const char *ad = ds_strf(ds, "original_sequences/actors/%s/videos", q);
            if (scan_videos(ds, ad, add_actor, &c) < 0)
                ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, ad), "no DFD actor (real) videos of quality %s", q);
            const char *md = "manipulated_sequences/DeepFakeDetection/masks/videos";
            c.mask_dir = ds_is_dir(ds_path(ds, md)) ? md : NULL;
            const char *vd = ds_strf(ds, "manipulated_sequences/DeepFakeDetection/%s/videos", q);
            if (scan_videos(ds, vd, add_dfd_fake, &c) < 0)
                ds_issue(ds, DCL_ISSUE_NOTE, ds_path(ds, vd), "no DFD fake videos of quality %s", q);
        }
    }
    /* method folders this adapter does not know */
    {
        char **names = NULL;
        int n = ds_list(ds_path(ds, "manipulated_sequences"), &names);
        for (int i = 0; i < n; i++) {
            int known = !strcmp(names[i], "DeepFakeDetection");
            for (int m = 0; m < NMETH; m++) known |= !strcmp(names[i], k_methods[m]);
            if (!known)
                ds_issue(ds, DCL_ISSUE_IGNORED, ds_strf(ds, "%s/manipulated_sequences/%s", ds->root, names[i]),
                         "unknown manipulation method folder");
        }
        if (n > 0) ds_free_names(names, n);
    }

    /* splits (FaceForensics++ proper; DFD has none) */
    if (!dfd_only) {
        const char *sdir = o->splits_dir ? o->splits_dir : ds_path(ds, "splits");
        split_map ids = {0}, pairs = {0};
        int found = read_splits(ds, sdir, &ids, &pairs);
        if (found == 0) {
            ds_issue(ds, DCL_ISSUE_NOTE, sdir, "no train.json / val.json / test.json: every entry has split none");
        } else {
            if (found < 3)
                ds_issue(ds, DCL_ISSUE_METADATA, sdir, "only %d of train.json, val.json, test.json present", found);
            for (int i = 0; i < ds->n; i++) {
                dcl_entry *e = &ds->e[i];
                if (!strcmp(e->method, "DFD") || !strncmp(e->id, "actors/", 7)) continue;
                int k = e->label ? sm_find(&pairs, ds_strf(ds, "%s_%s", e->target_id, e->source_id))
                                 : sm_find(&ids, e->target_id);
                if (k >= 0) e->split = (dcl_split)(e->label ? pairs.split[k] : ids.split[k]);
                else ds_issue(ds, DCL_ISSUE_NO_SPLIT, e->path, "%s is in no split file", e->label ? "pair" : "id");
            }
        }
        sm_free(&ids);
        sm_free(&pairs);
    }
    if (dfd)
        ds_issue(ds, DCL_ISSUE_NOTE, ds->root, "DeepFakeDetection has no official split: its entries have split none");

    ds_index(ds);
    for (int i = 0; i < ds->n; i++) {
        dcl_entry *e = &ds->e[i];
        if (!e->label || !e->pair_id) continue;
        const char *want = e->pair_id;
        e->pair_id = NULL;
        int j = ds_lookup(ds, want);
        if (j >= 0) ds_set_pair(ds, e, j);
        else ds_issue(ds, DCL_ISSUE_NO_PAIR, e->path, "its real video (id %s) is not in the dataset", want);
    }
    if (ds->n == 0) ds_issue(ds, DCL_ISSUE_NOTE, ds->root, "no videos found for the chosen quality and methods");
    return DCL_OK;
}
