/* WildDeepfake (github.com/deepfakeinthewild/deepfake-in-the-wild):
 *
 *   real_train/ fake_train/ real_test/ fake_test/   each holding 0.tar.gz, 1.tar.gz, ...
 *
 * Each archive holds folders of face images; the images of one folder form
 * a face sequence and each image is named by its frame number in the source
 * video.  The archives are expected unpacked in place (N.tar.gz -> N/; any
 * depth of folders below works).  Every folder that directly holds images is
 * one entry (media FRAMES, faces_only: the images are already face crops);
 * its group is the folder above it (the archive = the source video).
 * "real train" spelt with a space is accepted too. */
#include "data/dataset_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_archive(const char *name, size_t *stem_len) {
    static const char *const ext[] = {".tar.gz", ".tgz", ".tar", ".zip", NULL};
    size_t n = strlen(name);
    for (int i = 0; ext[i]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(name + n - e, ext[i])) { *stem_len = n - e; return 1; }
    }
    return 0;
}

static void walk(dcl_dataset *ds, const char *rel, int label, dcl_split split, int depth) {
    char **names = NULL;
    int n = ds_list(ds_path(ds, rel), &names);
    if (n < 0) return;
    int images = 0, dirs = 0;
    for (int i = 0; i < n; i++) {
        const char *r = ds_strf(ds, "%s/%s", rel, names[i]);
        if (ds_is_dir(ds_path(ds, r))) {
            dirs++;
            if (depth < 6) walk(ds, r, label, split, depth + 1);
            else ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, r), "folder nested too deep");
            continue;
        }
        if (ds_is_image_name(names[i])) { images++; continue; }
        size_t sl = 0;
        if (is_archive(names[i], &sl)) {
            const char *unpacked = ds_strf(ds, "%s/%.*s", rel, (int)sl, names[i]);
            if (!ds_is_dir(ds_path(ds, unpacked)))
                ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, r), "archive not unpacked (unpack it in place to %s/)",
                         ds_path(ds, unpacked));
            continue;
        }
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, r), "not an image");
    }
    ds_free_names(names, n);
    if (images) {
        dcl_entry *e = ds_add_item(ds, rel, rel, DCL_MEDIA_FRAMES, label, label ? "WildDeepfake" : "real", split);
        if (!e) return;
        e->faces_only = 1;
        const char *slash = strrchr(rel, '/');
        e->group = slash ? ds_strn(ds, rel, (size_t)(slash - rel)) : e->id;
        ds_fill_frames(ds, e, e->path);
    } else if (!dirs && depth > 1) {
        ds_issue(ds, DCL_ISSUE_IGNORED, ds_path(ds, rel), "empty folder");
    }
}

dcl_status ds_open_wild(dcl_dataset *ds, const dcl_dataset_opts *o) {
    (void)o;
    char **names = NULL;
    int n = ds_list(ds->root, &names), found = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        int label = -1, split = -1;
        if (!strncasecmp(nm, "real", 4)) label = 0;
        else if (!strncasecmp(nm, "fake", 4)) label = 1;
        if (label >= 0 && (nm[4] == '_' || nm[4] == ' ')) split = dcl_split_parse(nm + 5);
        if (label < 0 || split <= 0 || !ds_is_dir(ds_path(ds, nm))) {
            ds_issue(ds, DCL_ISSUE_IGNORED, ds_strf(ds, "%s/%s", ds->root, nm),
                     "not one of real_train, fake_train, real_test, fake_test");
            continue;
        }
        found++;
        walk(ds, nm, label, (dcl_split)split, 1);
    }
    if (n > 0) ds_free_names(names, n);
    if (!found)
        return dcl_fail(DCL_ERR_NOTFOUND, "%s: no real_train/, fake_train/, real_test/ or fake_test/ folder: not a WildDeepfake root",
                        ds->root);
    ds_index(ds);
    return DCL_OK;
}
