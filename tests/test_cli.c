/* The dcl command line: `dcl forward` against PyTorch (tools/make_cli_goldens.py:
 * a real face photo and the narrow test EfficientNets), clear errors for bad
 * input, and torchvision-named weights loading like timm-named ones. */
#include "check.h"
#include "dcl/io.h"
#include "dcl/model.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dcl[4096];

/* runs dcl with args; captures stdout (and stderr into err); returns exit code */
static int run(const char *args, char *out, size_t n, char *err, size_t en) {
    char cmd[8192], errf[] = "/tmp/dcl_cli_err_XXXXXX";
    int fd = mkstemp(errf);
    if (fd >= 0) close(fd);
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", g_dcl, args, errf);
    FILE *p = popen(cmd, "r");
    size_t k = p ? fread(out, 1, n - 1, p) : 0;
    out[k] = 0;
    int rc = p ? pclose(p) : -1;
    FILE *e = fopen(errf, "r");
    k = e ? fread(err, 1, en - 1, e) : 0;
    err[k] = 0;
    if (e) fclose(e);
    unlink(errf);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void check_forward(cJSON *gold, const char *arch, const char *norm, const char *extra) {
    char args[2048], out[4096], err[4096], key[128];
    snprintf(args, sizeof args, "forward --arch %s --weights tests/fixtures/model/%s_tiny.weights.safetensors "
             "--width 0.25 --depth 0.34 --device %s %s tests/fixtures/cli/face64.png", arch, arch, "cpu", extra);
    int rc = run(args, out, sizeof out, err, sizeof err);
    CHECK(rc == 0, "dcl %s -> %d: %s", args, rc, err);
    cJSON *j = cJSON_Parse(out), *lg = cJSON_GetObjectItem(j, "logits");
    snprintf(key, sizeof key, "%s/%s", arch, norm);
    cJSON *w = cJSON_GetObjectItem(gold, key);
    CHECK(cJSON_IsArray(lg) && cJSON_GetArraySize(lg) == 2 && cJSON_IsArray(w), "output %s", out);
    for (int i = 0; lg && w && i < 2; i++) {
        double a = cJSON_GetArrayItem(lg, i)->valuedouble, b = cJSON_GetArrayItem(w, i)->valuedouble;
        CHECK(fabs(a - b) <= 2e-5 + 1e-4 * fabs(b), "%s logit %d: dcl %.7f pytorch %.7f", key, i, a, b);
    }
    printf("%-32s dcl %s", key, out);
    cJSON_Delete(j);
}

/* torchvision name of a timm key of the b0 family (inverse of dcl_effnet_tv_to_timm) */
static int timm_to_tv(const char *timm, char *out, size_t n) {
    char cand[256];
    /* brute force: generate candidate torchvision names and map them back */
    static const char *subs[] = {"0.0", "0.1", "1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "1.fc1", "1.fc2", "2.fc1", "2.fc2"};
    const char *last = strrchr(timm, '.');
    if (!last) return -1;
    char mapped[256];
    for (int a = 0; a <= 8; a++)
        for (int b = 0; b < 8; b++)
            for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++) {
                if (a == 0 || a == 8) snprintf(cand, sizeof cand, "features.%d.%c%s", a, subs[k][0], last);
                else snprintf(cand, sizeof cand, "features.%d.%d.block.%s%s", a, b, subs[k], last);
                if (!dcl_effnet_tv_to_timm(cand, mapped, sizeof mapped) && !strcmp(mapped, timm)) { snprintf(out, n, "%s", cand); return 0; }
            }
    if (!strncmp(timm, "classifier.", 11)) { snprintf(out, n, "classifier.1.%s", timm + 11); return 0; }
    return -1;
}

static void check_torchvision_names(void) {
    /* rename the narrow b0's weights to torchvision keys; loading must give the same logits */
    dcl_st *st = NULL;
    CHECK_OK(dcl_st_open(&st, "tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors"));
    if (!st) return;
    dcl_st_writer *w = NULL;
    CHECK_OK(dcl_st_writer_new(&w));
    int bad = 0;
    for (int i = 0; i < dcl_st_count(st); i++) {
        const dcl_st_entry *e = dcl_st_get(st, i);
        char tv[256];
        if (timm_to_tv(e->name, tv, sizeof tv)) { bad++; continue; }
        CHECK_OK(dcl_st_writer_add(w, tv, e->dtype, e->ndim, e->shape, e->data));
    }
    CHECK(bad == 0, "%d keys without a torchvision name", bad);
    char path[] = "/tmp/dcl_tv_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK_OK(dcl_st_write_file(w, path));
    dcl_st_writer_free(w);
    dcl_st_close(st);
    char args[1024], out[4096], err[4096], out2[4096];
    snprintf(args, sizeof args, "forward --arch efficientnet_b0 --weights %s --width 0.25 --depth 0.34 tests/fixtures/cli/face64.png", path);
    int rc = run(args, out, sizeof out, err, sizeof err);
    CHECK(rc == 0, "torchvision-named weights: %s", err);
    snprintf(args, sizeof args, "forward --arch efficientnet_b0 --weights tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors --width 0.25 --depth 0.34 tests/fixtures/cli/face64.png");
    run(args, out2, sizeof out2, err, sizeof err);
    CHECK(!strcmp(out, out2), "torchvision names give %s, timm names %s", out, out2);
    unlink(path);
}

static void check_errors(void) {
    char out[4096], err[4096];
    struct { const char *args, *want; int rc; } cases[] = {
        {"forward --arch efficientnet_b9 --weights x tests/fixtures/cli/face64.png", "unknown architecture", 2},
        {"forward --arch efficientnet_b0 --weights /nonexistent.safetensors tests/fixtures/cli/face64.png", "/nonexistent.safetensors", 1},
        {"forward --arch efficientnet_b0 --weights tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors tests/fixtures/cli/face64.png",
         "wrong shape", 1},
        {"forward --arch efficientnet_b0 --weights tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors --width 0.25 --depth 0.34 /nonexistent.png",
         "/nonexistent.png", 1},
        {"forward --arch efficientnet_b0 --weights tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors --width 0.25 --depth 0.34 tests/fixtures/model/efficientnet_b0_tiny.weights.safetensors",
         "efficientnet_b0_tiny.weights.safetensors", 1},
        {"forward --arch efficientnet_b0 --weights w --mean 1,2 img.png", "--mean", 2},
        {"forward --arch efficientnet_b0", "usage", 2},
        {"frobnicate", "unknown command", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args, out, sizeof out, err, sizeof err);
        CHECK(rc == cases[i].rc, "dcl %s: exit %d, want %d (%s)", cases[i].args, rc, cases[i].rc, err);
        CHECK(strstr(err, cases[i].want) != NULL, "dcl %s: message should mention '%s': %s", cases[i].args, cases[i].want, err);
        /* one clear line */
        char *nl = strchr(err, '\n');
        if (rc == 1) CHECK(nl && nl[1] == 0, "dcl %s: error should be one line: %s", cases[i].args, err);
    }
}

int main(int argc, char **argv) {
    /* the dcl binary next to the tests folder */
    ssize_t n = readlink("/proc/self/exe", g_dcl, sizeof g_dcl - 16);
    g_dcl[n > 0 ? n : 0] = 0;
    char *s = strrchr(g_dcl, '/');
    if (s) { *s = 0; s = strrchr(g_dcl, '/'); }
    if (s) strcpy(s, "/dcl");
    CHECK(access(g_dcl, X_OK) == 0, "no dcl binary at %s", g_dcl);
    cJSON *gold = NULL;
    CHECK_OK(dcl_json_load(&gold, "tests/fixtures/cli/forward.json"));
    check_forward(gold, "efficientnet_b0", "imagenet", "");
    check_forward(gold, "tf_efficientnet_b0", "imagenet", "");
    check_forward(gold, "efficientnet_b0", "half", "--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5");
    check_forward(gold, "tf_efficientnet_b0", "half", "--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --threads 1");
    cJSON_Delete(gold);
    check_torchvision_names();
    check_errors();
    CHECK_DONE();
}
