/* Dataset adapters on miniature replicas of the published layouts
 * (tests/datautil.h lists what each replica holds): counts, labels, methods,
 * splits, pairs, masks, ids, and every planted defect in the issue list. */
#include "check.h"
#include "datautil.h"
#include "dcl/dataset.h"
#include "dcl/video.h"

#include <string.h>
#include <unistd.h>

static char g_dir[1024];

static const dcl_entry *get(const dcl_dataset *ds, const char *id) {
    int i = dcl_dataset_find(ds, id);
    CHECK(i >= 0, "%s: no entry '%s'", dcl_dataset_name(ds), id);
    return i >= 0 ? dcl_dataset_get(ds, i) : NULL;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = s ? strlen(s) : 0, b = strlen(suf);
    return s && a >= b && !strcmp(s + a - b, suf);
}

/* issues of kind whose item contains needle */
static int issues_matching(const dcl_dataset *ds, dcl_issue_kind k, const char *needle) {
    int c = 0;
    for (int i = 0; i < dcl_dataset_issue_count(ds); i++) {
        const dcl_issue *is = dcl_dataset_issue(ds, i);
        if (is->kind == k && (!needle || strstr(is->item, needle) || strstr(is->reason, needle))) c++;
    }
    return c;
}

static int count_where(const dcl_dataset *ds, const char *method, int split, int label) {
    int c = 0;
    for (int i = 0; i < dcl_dataset_count(ds); i++) {
        const dcl_entry *e = dcl_dataset_get(ds, i);
        if (method && strcmp(e->method, method)) continue;
        if (split >= 0 && (int)e->split != split) continue;
        if (label >= 0 && e->label != label) continue;
        c++;
    }
    return c;
}

static void check_sane(const dcl_dataset *ds) {
    for (int i = 0; i < dcl_dataset_count(ds); i++) {
        const dcl_entry *e = dcl_dataset_get(ds, i);
        CHECK(e->id && *e->id && e->path && e->method && e->group && e->dataset, "%s entry %d has its basic fields",
              dcl_dataset_name(ds), i);
        CHECK(e->label == 0 || e->label == 1, "label 0/1");
        CHECK(dcl_dataset_find(ds, e->id) == i, "%s: find(%s) = %d, want %d", dcl_dataset_name(ds), e->id,
              dcl_dataset_find(ds, e->id), i);
        if (e->pair >= 0) {
            const dcl_entry *p = dcl_dataset_get(ds, e->pair);
            CHECK(e->label == 1 && p && p->label == 0 && !strcmp(p->id, e->pair_id) && !strcmp(p->path, e->pair_path),
                  "%s: pair of %s is a real entry with matching id/path", dcl_dataset_name(ds), e->id);
        }
    }
    for (int i = 0; i < dcl_dataset_issue_count(ds); i++) {
        const dcl_issue *is = dcl_dataset_issue(ds, i);
        CHECK(is->item && *is->item && is->reason && *is->reason, "issue %d has an item and a reason", i);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dcl_dataset_report(ds, f);
    fclose(f);
    char head[64];
    snprintf(head, sizeof head, "dataset %s at ", dcl_dataset_name(ds));
    CHECK(buf && strstr(buf, head), "report starts with the dataset line");
    int n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += buf[i] == '\n';
    CHECK(n_lines >= 2 + dcl_dataset_issue_count(ds), "report lists every issue (%d lines, %d issues)", n_lines,
          dcl_dataset_issue_count(ds));
    free(buf);
}

static dcl_dataset *open_ok(const char *name, const char *root, const dcl_dataset_opts *o) {
    dcl_dataset *ds = NULL;
    CHECK_OK(dcl_dataset_open(&ds, name, root, o));
    if (ds) check_sane(ds);
    return ds;
}

static void test_ffpp(const char *root) {
    dcl_dataset *ds = open_ok("ffpp", root, NULL);
    if (!ds) return;
    CHECK(!strcmp(dcl_dataset_name(ds), "ffpp"), "name");
    dcl_dataset_stats st;
    dcl_dataset_stats_get(ds, &st);
    CHECK(st.n == 49 && st.real == 8 && st.fake == 41, "ffpp c23: %d entries, %d real, %d fake (want 49/8/41)", st.n, st.real,
          st.fake);
    CHECK(count_where(ds, "Deepfakes", -1, 1) == 9, "Deepfakes: %d", count_where(ds, "Deepfakes", -1, 1));
    static const char *ms[] = {"Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"};
    for (int m = 0; m < 4; m++) {
        CHECK(count_where(ds, ms[m], -1, 1) == 8, "%s: %d", ms[m], count_where(ds, ms[m], -1, 1));
        CHECK(count_where(ds, ms[m], DCL_SPLIT_TRAIN, 1) == 4 && count_where(ds, ms[m], DCL_SPLIT_VAL, 1) == 2 &&
                  count_where(ds, ms[m], DCL_SPLIT_TEST, 1) == 2, "%s splits 4/2/2", ms[m]);
    }
    CHECK(count_where(ds, "real", DCL_SPLIT_TRAIN, 0) == 4 && count_where(ds, "real", DCL_SPLIT_VAL, 0) == 2 &&
              count_where(ds, "real", DCL_SPLIT_TEST, 0) == 2, "real splits 4/2/2");
    CHECK(count_where(ds, "DFD", -1, -1) == 0, "no DFD unless asked");
    const dcl_entry *e = get(ds, "Deepfakes/c23/000_001");
    if (e) {
        CHECK(e->label == 1 && e->split == DCL_SPLIT_TRAIN && !strcmp(e->quality, "c23"), "000_001 label/split/quality");
        CHECK(!strcmp(e->target_id, "000") && !strcmp(e->source_id, "001"), "target 000 source 001");
        CHECK(e->pair >= 0 && !strcmp(e->pair_id, "youtube/c23/000") &&
                  ends_with(e->pair_path, "original_sequences/youtube/c23/videos/000.mp4"), "paired with original 000: %s",
              e->pair_path ? e->pair_path : "(none)");
        CHECK(ends_with(e->mask_path, "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4"), "mask %s",
              e->mask_path ? e->mask_path : "(none)");
        CHECK(ends_with(e->path, "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"), "path %s", e->path);
        CHECK(!strcmp(e->rel, "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"), "rel %s", e->rel);
        CHECK(e->media == DCL_MEDIA_VIDEO && !strcmp(e->dataset, "ffpp"), "media/dataset");
        /* the replica video decodes: 8 frames of 96x64 */
        dcl_video *v = NULL;
        CHECK_OK(dcl_video_open(&v, e->path));
        if (v) {
            int64_t n = 0;
            CHECK_OK(dcl_video_count_frames(v, &n));
            CHECK(n == 8 && dcl_video_get_info(v)->width == 96 && dcl_video_get_info(v)->height == 64,
                  "replica clip: %lld frames %dx%d", (long long)n, dcl_video_get_info(v)->width, dcl_video_get_info(v)->height);
            dcl_video_close(v);
        }
    }
    e = get(ds, "Face2Face/c23/005_004");
    if (e) CHECK(e->split == DCL_SPLIT_VAL && !strcmp(e->pair_id, "youtube/c23/005"), "005_004: val, pair 005");
    e = get(ds, "FaceShifter/c23/006_007");
    if (e) CHECK(e->split == DCL_SPLIT_TEST && e->mask_path == NULL && e->pair >= 0, "FaceShifter: no masks, test, paired");
    e = get(ds, "NeuralTextures/c23/007_006");
    if (e) CHECK(e->mask_path == NULL, "NT 007_006 mask removed");
    e = get(ds, "youtube/c23/003");
    if (e) CHECK(e->label == 0 && e->split == DCL_SPLIT_TRAIN && !strcmp(e->method, "real") && !strcmp(e->target_id, "003") &&
                     e->pair < 0, "real 003");
    /* defects */
    e = get(ds, "Deepfakes/c23/008_009");
    if (e) CHECK(e->pair < 0 && e->pair_id == NULL && e->split == DCL_SPLIT_NONE, "008_009 unpaired, no split");
    CHECK(issues_matching(ds, DCL_ISSUE_NO_PAIR, "008_009") == 1, "no-pair issue for 008_009");
    CHECK(issues_matching(ds, DCL_ISSUE_NO_SPLIT, "008_009") == 1, "no-split issue for 008_009");
    CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "notes.txt") == 1, "notes.txt ignored and reported");
    CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "bad_name.mp4") == 1, "bad_name.mp4 reported");
    CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "NeuralTextures/masks/videos/007_006.mp4") == 1, "missing mask reported");
    CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "Deepfakes/masks/videos/008_009.mp4") == 1, "stray fake's mask reported");
    CHECK(dcl_dataset_issue_count_kind(ds, DCL_ISSUE_NO_PAIR) == 1 && dcl_dataset_issue_count_kind(ds, DCL_ISSUE_MISSING) == 2 &&
              dcl_dataset_issue_count_kind(ds, DCL_ISSUE_NO_SPLIT) == 1 && dcl_dataset_issue_count_kind(ds, DCL_ISSUE_CONFLICT) == 0,
          "exactly the planted defects (no-pair %d, missing %d, no-split %d, conflict %d)",
          dcl_dataset_issue_count_kind(ds, DCL_ISSUE_NO_PAIR), dcl_dataset_issue_count_kind(ds, DCL_ISSUE_MISSING),
          dcl_dataset_issue_count_kind(ds, DCL_ISSUE_NO_SPLIT), dcl_dataset_issue_count_kind(ds, DCL_ISSUE_CONFLICT));

    /* CSV export read back by the generic adapter */
    char csv[2048];
    snprintf(csv, sizeof csv, "%s/ffpp_index.csv", g_dir);
    CHECK_OK(dcl_dataset_write_csv(ds, csv));
    dcl_dataset_opts co = {0};
    co.csv = csv;
    dcl_dataset *back = open_ok("generic", g_dir, &co);
    if (back) {
        CHECK(dcl_dataset_count(back) == dcl_dataset_count(ds), "csv round trip: %d entries, want %d", dcl_dataset_count(back),
              dcl_dataset_count(ds));
        CHECK(dcl_dataset_issue_count_kind(back, DCL_ISSUE_NO_PAIR) == 0, "round trip: pairs resolve");
        for (int i = 0; i < dcl_dataset_count(ds); i++) {
            const dcl_entry *a = dcl_dataset_get(ds, i);
            int j = dcl_dataset_find(back, a->id);
            const dcl_entry *b = dcl_dataset_get(back, j);
            CHECK(b && b->label == a->label && b->split == a->split && !strcmp(b->method, a->method) && !strcmp(b->path, a->path) &&
                      !strcmp(b->dataset, "ffpp") && (a->pair < 0) == (b->pair < 0) &&
                      (!a->mask_path) == (!b->mask_path) && (!a->pair_id || !strcmp(a->pair_id, b->pair_id)),
                  "round trip of %s", a->id);
        }
        dcl_dataset_close(back);
    }
    dcl_dataset_close(ds);

    /* other quality, method subsets, a splits folder, DFD */
    dcl_dataset_opts o = {0};
    o.quality = "c40";
    ds = open_ok("ff++", root, &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 3 && count_where(ds, "real", -1, 0) == 2 && get(ds, "Deepfakes/c40/000_001"), "c40: 3 entries");
        CHECK(issues_matching(ds, DCL_ISSUE_NOTE, "Face2Face") >= 1, "c40: missing method noted");
        dcl_dataset_close(ds);
    }
    o.quality = NULL;
    o.methods = "DF,NT";
    ds = open_ok("ffpp", root, &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 8 + 9 + 8 && count_where(ds, "Face2Face", -1, -1) == 0, "DF,NT subset: %d",
              dcl_dataset_count(ds));
        dcl_dataset_close(ds);
    }
    o.methods = "NeuralTextures,bogus";
    dcl_dataset *bad = NULL;
    CHECK(dcl_dataset_open(&bad, "ffpp", root, &o) == DCL_ERR_ARG && !bad && strstr(dcl_last_error(), "bogus"),
          "unknown method refused: %s", dcl_last_error());
    o.methods = NULL;
    o.quality = "c99";
    CHECK(dcl_dataset_open(&bad, "ffpp", root, &o) == DCL_ERR_ARG && strstr(dcl_last_error(), "c99"), "bad quality refused");
    o.quality = NULL;
    char sdir[2048], p[2048];
    snprintf(sdir, sizeof sdir, "%s/othersplits", g_dir);
    du_write_text(du_join(p, sizeof p, sdir, "train.json"), "[[\"002\",\"003\"],[\"004\",\"005\"]]");
    du_write_text(du_join(p, sizeof p, sdir, "val.json"), "[[\"006\",\"007\"]]");
    du_write_text(du_join(p, sizeof p, sdir, "test.json"), "[[\"000\",\"001\"], [\"000\"], [\"002\",\"003\"]]");
    o.splits_dir = sdir;
    ds = open_ok("ffpp", root, &o);
    if (ds) {
        const dcl_entry *x = get(ds, "FaceSwap/c23/001_000");
        if (x) CHECK(x->split == DCL_SPLIT_TEST, "--splits: 001_000 in test");
        x = get(ds, "youtube/c23/006");
        if (x) CHECK(x->split == DCL_SPLIT_VAL, "--splits: 006 in val");
        CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "test.json") == 1, "malformed pair reported");
        CHECK(issues_matching(ds, DCL_ISSUE_CONFLICT, "002") >= 1, "id in two splits reported");
        dcl_dataset_close(ds);
    }
    o.splits_dir = NULL;
    ds = open_ok("dfd", root, &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 7 && count_where(ds, "DFD", -1, 1) == 4 && count_where(ds, "real", -1, 0) == 3,
              "dfd: %d entries", dcl_dataset_count(ds));
        CHECK(count_where(ds, NULL, DCL_SPLIT_NONE, -1) == 7, "dfd has no split");
        const dcl_entry *x = get(ds, "DeepFakeDetection/c23/01_02__exit_phone_room__YVGY8LOK");
        if (x) {
            CHECK(!strcmp(x->target_id, "01") && !strcmp(x->source_id, "02") && !strcmp(x->method, "DFD"), "dfd ids");
            CHECK(x->pair >= 0 && !strcmp(x->pair_id, "actors/c23/01__exit_phone_room"), "dfd pair %s", x->pair_id ? x->pair_id : "-");
            CHECK(ends_with(x->mask_path, "DeepFakeDetection/masks/videos/01_02__exit_phone_room__YVGY8LOK.mp4"), "dfd mask");
        }
        x = get(ds, "DeepFakeDetection/c23/02_01__exit_phone_room__ABCDEFGH");
        if (x) CHECK(x->pair >= 0 && !strcmp(x->pair_id, "actors/c23/02__exit_phone_room"), "dfd pair by target actor");
        x = get(ds, "DeepFakeDetection/c23/01_02__kitchen_pan__QWERTYUI");
        if (x) CHECK(x->pair >= 0 && !strcmp(x->pair_id, "actors/c23/01__kitchen_pan"), "dfd pair by scene");
        CHECK(issues_matching(ds, DCL_ISSUE_NO_PAIR, "03_01__hallway") == 1, "dfd fake without actor video reported");
        CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "DeepFakeDetection/masks") == 3, "dfd missing masks reported");
        dcl_dataset_close(ds);
    }
    o.methods = "DFD";
    ds = open_ok("ffpp", root, &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 7, "ffpp with methods=DFD: %d", dcl_dataset_count(ds));
        dcl_dataset_close(ds);
    }
}

static void test_celebdf(const char *root) {
    dcl_dataset *ds = open_ok("celeb-df", root, NULL);
    if (!ds) return;
    dcl_dataset_stats st;
    dcl_dataset_stats_get(ds, &st);
    CHECK(st.n == 12 && st.real == 7 && st.fake == 5, "celebdf: %d / %d / %d", st.n, st.real, st.fake);
    CHECK(st.by_split[DCL_SPLIT_TEST][0] == 3 && st.by_split[DCL_SPLIT_TEST][1] == 1, "test: %d real %d fake",
          st.by_split[DCL_SPLIT_TEST][0], st.by_split[DCL_SPLIT_TEST][1]);
    CHECK(st.by_split[DCL_SPLIT_TRAIN][0] == 4 && st.by_split[DCL_SPLIT_TRAIN][1] == 4, "train: %d real %d fake",
          st.by_split[DCL_SPLIT_TRAIN][0], st.by_split[DCL_SPLIT_TRAIN][1]);
    const dcl_entry *e = get(ds, "YouTube-real/00170");
    if (e) CHECK(e->label == 0 && e->split == DCL_SPLIT_TEST, "list label 1 means real");
    e = get(ds, "Celeb-synthesis/id2_id1_0000");
    if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TEST && !strcmp(e->method, "Celeb-synthesis"), "list label 0 means fake");
    e = get(ds, "Celeb-synthesis/id0_id2_0001");
    if (e) {
        CHECK(!strcmp(e->target_id, "id0") && !strcmp(e->source_id, "id2"), "idX_idY: target idX, source idY");
        CHECK(e->pair >= 0 && !strcmp(e->pair_id, "Celeb-real/id0_0001") && ends_with(e->pair_path, "Celeb-real/id0_0001.mp4"),
              "synthesis paired with Celeb-real/idX_NNNN");
        CHECK(e->split == DCL_SPLIT_TRAIN, "unlisted is train");
    }
    e = get(ds, "Celeb-real/id1_0000");
    if (e) CHECK(!strcmp(e->target_id, "id1") && e->split == DCL_SPLIT_TRAIN, "real identity");
    e = get(ds, "Celeb-real/id0_0001");
    if (e) CHECK(e->label == 0 && e->split == DCL_SPLIT_TEST, "conflicting list line: folder label kept, split test");
    CHECK(issues_matching(ds, DCL_ISSUE_CONFLICT, "id0_0001") == 1, "label conflict reported");
    CHECK(issues_matching(ds, DCL_ISSUE_NO_PAIR, "id3_id0_0000") == 1, "unpaired synthesis reported");
    CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "id9_id8_0000") == 1, "listed but missing reported");
    CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "List_of_testing_videos.txt:5") == 1, "garbage line reported with its number");
    dcl_dataset_close(ds);

    /* no test list: split none, reported */
    char p[2048];
    du_join(p, sizeof p, root, "List_of_testing_videos.txt");
    char *keep = du_read_file(p, NULL);
    unlink(p);
    ds = open_ok("celebdf", root, NULL);
    if (ds) {
        CHECK(count_where(ds, NULL, DCL_SPLIT_NONE, -1) == 12, "without the list every split is none");
        CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "List_of_testing_videos.txt") == 1, "missing list reported");
        dcl_dataset_close(ds);
    }
    if (keep) { du_write_text(p, keep); free(keep); }
}

static void test_dfdc(const char *root) {
    dcl_dataset *ds = open_ok("dfdc", root, NULL);
    if (!ds) return;
    dcl_dataset_stats st;
    dcl_dataset_stats_get(ds, &st);
    CHECK(st.n == 8 && st.real == 3 && st.fake == 5, "dfdc: %d / %d / %d", st.n, st.real, st.fake);
    CHECK(st.by_split[DCL_SPLIT_TRAIN][0] + st.by_split[DCL_SPLIT_TRAIN][1] == 6 &&
              st.by_split[DCL_SPLIT_TEST][0] == 1 && st.by_split[DCL_SPLIT_TEST][1] == 1, "dfdc splits");
    const dcl_entry *e = get(ds, "cccccccccc");
    if (e) CHECK(e->label == 1 && e->pair >= 0 && !strcmp(e->pair_id, "aaaaaaaaaa") && !strcmp(e->target_id, "aaaaaaaaaa") &&
                     !strcmp(e->method, "DFDC"), "fake paired with its original");
    e = get(ds, "eeeeeeeeee");
    if (e) CHECK(e->pair >= 0 && ends_with(e->pair_path, "dfdc_train_part_1/dddddddddd.mp4"), "part 1 pair");
    e = get(ds, "testbbbbbb");
    if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TEST && ends_with(e->path, "test/videos/testbbbbbb.mp4"), "labels.csv 1 = fake");
    e = get(ds, "testaaaaaa");
    if (e) CHECK(e->label == 0, "labels.csv 0 = real");
    CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "ffffffffff.mp4") == 1, "missing listed video reported");
    CHECK(issues_matching(ds, DCL_ISSUE_NO_PAIR, "gggggggggg") == 1, "absent original reported");
    CHECK(issues_matching(ds, DCL_ISSUE_UNLISTED, "hhhhhhhhhh.mp4") == 1, "unlisted video reported");
    CHECK(dcl_dataset_issue_count_kind(ds, DCL_ISSUE_UNLISTED) == 1, "nothing else unlisted");
    CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "dfdc_train_part_2") == 1, "part without metadata reported");
    CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "labels.csv:4") == 1, "bad label row reported");
    dcl_dataset_close(ds);
}

static void test_dfdcp(const char *root) {
    dcl_dataset *ds = open_ok("dfdcp", root, NULL);
    if (!ds) return;
    CHECK(dcl_dataset_count(ds) == 4, "dfdcp: %d", dcl_dataset_count(ds));
    const dcl_entry *e = get(ds, "method_A/1255229/1255229_1224068_A/1255229_1224068_A_001");
    if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TRAIN && !strcmp(e->method, "method_A") && !strcmp(e->target_id, "1255229"),
                 "dfdcp fake A");
    e = get(ds, "method_B/1224068/1224068_1255229_B/1224068_1255229_B_001");
    if (e) CHECK(e->split == DCL_SPLIT_TEST && !strcmp(e->method, "method_B") && e->target_id && !strcmp(e->target_id, "1224068"),
                 "dfdcp fake B, numeric target_id");
    e = get(ds, "original_videos/1224068/1224068_A_001");
    if (e) CHECK(e->label == 0 && e->split == DCL_SPLIT_TEST && !strcmp(e->method, "real"), "dfdcp real");
    CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "9999999_1_A_001.mp4") == 1, "dfdcp missing reported");
    CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "odd_001.mp4") == 1, "dfdcp bad label reported");
    CHECK(dcl_dataset_issue_count_kind(ds, DCL_ISSUE_UNLISTED) == 0, "listed files are not also unlisted");
    dcl_dataset_close(ds);
}

static void test_wild(const char *root) {
    dcl_dataset *ds = open_ok("wilddeepfake", root, NULL);
    if (!ds) return;
    dcl_dataset_stats st;
    dcl_dataset_stats_get(ds, &st);
    CHECK(st.n == 7 && st.by_split[DCL_SPLIT_TRAIN][0] == 3 && st.by_split[DCL_SPLIT_TRAIN][1] == 1 &&
              st.by_split[DCL_SPLIT_TEST][0] == 1 && st.by_split[DCL_SPLIT_TEST][1] == 2, "wild counts");
    const dcl_entry *e = get(ds, "real_train/0/0");
    if (e) {
        CHECK(e->media == DCL_MEDIA_FRAMES && e->faces_only && e->label == 0 && !strcmp(e->group, "real_train/0"), "sequence entry");
        CHECK(e->nframes == 3 && e->frame_numbers[0] == 10 && e->frame_numbers[2] == 12 && !strcmp(e->frames[1], "11.png"),
              "frames in order");
        dcl_image im = {0};
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", e->path, e->frames[0]);
        CHECK_OK(dcl_image_load(&im, p));
        CHECK(im.w == 64 && im.h == 64, "frame image readable");
        dcl_image_free(&im);
    }
    e = get(ds, "fake_test/0/1");
    if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TEST && !strcmp(e->method, "WildDeepfake") && e->nframes == 1, "fake seq");
    CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "5.tar.gz") == 1, "archive not unpacked reported");
    CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "real_test/0/2") == 1, "empty folder reported");
    dcl_dataset_close(ds);
}

static void test_generic(const char *root) {
    dcl_dataset *ds = open_ok("generic", root, NULL);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 5, "generic folders: %d", dcl_dataset_count(ds));
        const dcl_entry *e = get(ds, "real/sub/r2");
        if (e) CHECK(e->media == DCL_MEDIA_IMAGE && e->label == 0 && !strcmp(e->group, "real/sub"), "image entry grouped by folder");
        e = get(ds, "fake/train/f3");
        if (e) CHECK(e->split == DCL_SPLIT_TRAIN && e->label == 1, "split from folder name");
        e = get(ds, "fake/f1");
        if (e) CHECK(e->media == DCL_MEDIA_VIDEO && e->split == DCL_SPLIT_NONE, "video entry");
        CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "readme.txt") == 1, "non-media file reported");
        CHECK(issues_matching(ds, DCL_ISSUE_IGNORED, "list.csv") == 1, "stray top-level file reported");
        dcl_dataset_close(ds);
    }
    dcl_dataset_opts o = {0};
    o.csv = "list.csv";
    ds = open_ok("generic", root, &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 3, "generic csv: %d", dcl_dataset_count(ds));
        const dcl_entry *e = get(ds, "real/sub/r2");
        if (e) CHECK(e->label == 0 && e->split == DCL_SPLIT_VAL && !strcmp(e->group, "r2") && e->media == DCL_MEDIA_IMAGE, "csv row");
        e = get(ds, "fake/f1");
        if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TEST && ends_with(e->path, "/fake/f1.mp4"), "csv path relative to csv");
        CHECK(issues_matching(ds, DCL_ISSUE_MISSING, "missing.mp4") == 1, "csv missing file reported");
        CHECK(issues_matching(ds, DCL_ISSUE_METADATA, "list.csv:6") == 1, "csv bad label reported");
        dcl_dataset_close(ds);
    }
    /* positional CSV without header, given by absolute path */
    char p[2048];
    du_join(p, sizeof p, root, "pos.csv");
    du_write_text(p, "real/r1.mp4,0\nfake/f2.png,fake,test,vid7\n");
    o.csv = p;
    ds = open_ok("generic", "/nonexistent-root", &o);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 2, "positional csv: %d", dcl_dataset_count(ds));
        const dcl_entry *e = get(ds, "fake/f2");
        if (e) CHECK(e->label == 1 && e->split == DCL_SPLIT_TEST && !strcmp(e->group, "vid7"), "positional columns");
        dcl_dataset_close(ds);
    }
}

/* damaged metadata never crashes an adapter: it indexes what it can and
 * reports the rest (replicas with empty placeholder videos) */
static void test_fuzz_metadata(void) {
    static const struct { const char *dataset, *file; dcl_status (*make)(const char *, const du_replica_opts *); } t[] = {
        {"ffpp", "splits/train.json", du_make_ffpp},
        {"celebdf", "List_of_testing_videos.txt", du_make_celebdf},
        {"dfdc", "dfdc_train_part_0/metadata.json", du_make_dfdc},
        {"dfdc", "test/labels.csv", du_make_dfdc},
        {"dfdcp", "dataset.json", du_make_dfdcp},
        {"generic", "list.csv", du_make_generic},
    };
    du_replica_opts o = du_replica_defaults();
    o.videos = 0;
    dcl_rng r;
    dcl_rng_seed(&r, 2024);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char root[2048], p[2048];
        snprintf(root, sizeof root, "%s/fuzz%zu", g_dir, i);
        CHECK_OK(t[i].make(root, &o));
        du_join(p, sizeof p, root, t[i].file);
        size_t n = 0;
        char *orig = du_read_file(p, &n);
        if (!orig || !n) { CHECK(0, "fuzz: cannot read %s", p); free(orig); continue; }
        char *buf = malloc(n);
        for (int k = 0; k < 40; k++) {
            memcpy(buf, orig, n);
            size_t len = n;
            if (k % 4 == 3) len = dcl_rng_below(&r, (uint32_t)n); /* truncated */
            else
                for (int m = 0, nm = 1 + (int)dcl_rng_below(&r, 8); m < nm; m++)
                    buf[dcl_rng_below(&r, (uint32_t)n)] = (char)(k % 4 == 2 ? "\",[]{}:\n 01"[dcl_rng_below(&r, 12)] : dcl_rng_u32(&r));
            du_write_bytes(p, buf, len);
            dcl_dataset_opts opts = {0};
            if (!strcmp(t[i].dataset, "generic")) opts.csv = "list.csv";
            dcl_dataset *ds = NULL;
            dcl_status s = dcl_dataset_open(&ds, t[i].dataset, root, &opts);
            CHECK(s == DCL_OK || (!ds && strlen(dcl_last_error()) > 0), "fuzz %s #%d: status %d", t[i].file, k, (int)s);
            if (ds) { check_sane(ds); dcl_dataset_close(ds); }
        }
        free(buf);
        free(orig);
    }
}

static void test_errors(void) {
    dcl_dataset *ds = NULL;
    CHECK(dcl_dataset_open(&ds, "imagenet", g_dir, NULL) == DCL_ERR_ARG && !ds && strstr(dcl_last_error(), "imagenet"),
          "unknown dataset name: %s", dcl_last_error());
    CHECK(dcl_dataset_open(&ds, "ffpp", "/no/such/root", NULL) == DCL_ERR_IO && strstr(dcl_last_error(), "/no/such/root"),
          "missing root: %s", dcl_last_error());
    char empty[2048];
    snprintf(empty, sizeof empty, "%s/empty", g_dir);
    du_mkdirs(empty);
    static const char *names[] = {"ffpp", "celebdf", "dfdc", "dfdcp", "wild", "generic"};
    for (int i = 0; i < 6; i++) {
        dcl_status s = dcl_dataset_open(&ds, names[i], empty, NULL);
        CHECK(s == DCL_ERR_NOTFOUND && !ds && strstr(dcl_last_error(), empty), "%s on an empty folder: %d %s", names[i], (int)s,
              dcl_last_error());
    }
    /* broken JSON is reported, not fatal */
    char p[2048], root[2048];
    snprintf(root, sizeof root, "%s/badjson", g_dir);
    du_write_text(du_join(p, sizeof p, root, "dfdc_train_part_0/metadata.json"), "{\"a.mp4\": {\"label\": \"FAKE\",,}");
    ds = open_ok("dfdc", root, NULL);
    if (ds) {
        CHECK(dcl_dataset_count(ds) == 0 && issues_matching(ds, DCL_ISSUE_METADATA, "metadata.json") == 1 &&
                  strstr(dcl_dataset_issue(ds, 0)->reason, "JSON"), "bad JSON reported");
        dcl_dataset_close(ds);
    }
    CHECK(dcl_split_parse("Validation") == DCL_SPLIT_VAL && dcl_split_parse("x") == -1 && !strcmp(dcl_split_name(DCL_SPLIT_TEST), "test"),
          "split names");
}

int main(void) {
    if (du_tmpdir(g_dir, sizeof g_dir, "datasets") != 0) { fprintf(stderr, "cannot create temp dir\n"); return 1; }
    du_replica_opts o = du_replica_defaults();
    char root[2048];
    struct { const char *name; dcl_status (*make)(const char *, const du_replica_opts *); void (*test)(const char *); } t[] = {
        {"ffpp", du_make_ffpp, test_ffpp},       {"celebdf", du_make_celebdf, test_celebdf},
        {"dfdc", du_make_dfdc, test_dfdc},       {"dfdcp", du_make_dfdcp, test_dfdcp},
        {"wild", du_make_wild, test_wild},       {"generic", du_make_generic, test_generic},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        du_join(root, sizeof root, g_dir, t[i].name);
        dcl_status s = t[i].make(root, &o);
        CHECK(s == DCL_OK, "building the %s replica: %s", t[i].name, dcl_last_error());
        if (s == DCL_OK) t[i].test(root);
    }
    test_errors();
    test_fuzz_metadata();
    if (check_failed_ == 0) du_rmtree(g_dir);
    else fprintf(stderr, "files kept in %s\n", g_dir);
    CHECK_DONE();
}
