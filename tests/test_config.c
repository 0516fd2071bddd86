/* YAML configs: the tree of tests/fixtures/io/config.yaml against PyYAML's
 * reading of it (config.json, from tools/make_io_fixtures.py), typed getters
 * and their errors, overrides, key checks, dump/re-parse, malformed input. */
#include "dcl/io.h"
#include "check.h"
#include <cjson/cJSON.h>
#include <unistd.h>

static const char *fixture(const char *name) {
    static char buf[512];
    const char *dirs[] = {"tests/fixtures/io", "../tests/fixtures/io", "../../tests/fixtures/io"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%s/%s", dirs[i], name);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, sizeof buf, "tests/fixtures/io/%s", name);
    return buf;
}

/* Compares our tree with PyYAML's (as JSON); returns mismatches. */
static int compare_json(const dcl_config *c, const cJSON *j, const char *where) {
    char sub[512];
    if (cJSON_IsObject(j)) {
        if (dcl_config_kind(c) != DCL_CFG_MAP || dcl_config_len(c) != cJSON_GetArraySize(j)) {
            fprintf(stderr, "%s: expected a mapping of %d keys\n", where, cJSON_GetArraySize(j));
            return 1;
        }
        int bad = 0, i = 0;
        for (const cJSON *k = j->child; k; k = k->next, i++) {
            snprintf(sub, sizeof sub, "%s.%s", where, k->string);
            if (strcmp(dcl_config_key(c, i), k->string)) {
                fprintf(stderr, "%s: key %d is '%s'\n", sub, i, dcl_config_key(c, i));
                bad++;
                continue;
            }
            bad += compare_json(dcl_config_at(c, i), k, sub);
        }
        return bad;
    }
    if (cJSON_IsArray(j)) {
        if (dcl_config_kind(c) != DCL_CFG_SEQ || dcl_config_len(c) != cJSON_GetArraySize(j)) {
            fprintf(stderr, "%s: expected a sequence of %d\n", where, cJSON_GetArraySize(j));
            return 1;
        }
        int bad = 0, i = 0;
        for (const cJSON *k = j->child; k; k = k->next, i++) {
            snprintf(sub, sizeof sub, "%s.%d", where, i);
            bad += compare_json(dcl_config_at(c, i), k, sub);
        }
        return bad;
    }
    if (cJSON_IsNull(j)) {
        if (dcl_config_kind(c) != DCL_CFG_NULL) { fprintf(stderr, "%s: expected null\n", where); return 1; }
        return 0;
    }
    if (cJSON_IsBool(j)) {
        int v = -1;
        if (dcl_config_get_bool(c, "", 0, &v) != DCL_OK || v != cJSON_IsTrue(j)) {
            fprintf(stderr, "%s: expected bool %d: %s\n", where, cJSON_IsTrue(j), dcl_last_error());
            return 1;
        }
        return 0;
    }
    if (cJSON_IsNumber(j)) {
        double v = NAN;
        if (dcl_config_get_double(c, "", 0, &v) != DCL_OK || fabs(v - j->valuedouble) > 1e-12 * fabs(j->valuedouble)) {
            fprintf(stderr, "%s: expected %g, got %g\n", where, j->valuedouble, v);
            return 1;
        }
        const char *txt = dcl_config_scalar(c);
        /* PyYAML ints (its floats such as 1.0 are written with a dot or exponent) */
        if (txt && !strpbrk(txt, ".eE") && j->valuedouble == floor(j->valuedouble) && fabs(j->valuedouble) < 1e15) {
            int64_t iv;
            if (dcl_config_get_i64(c, "", 0, &iv) != DCL_OK || (double)iv != j->valuedouble) {
                fprintf(stderr, "%s: expected integer %g\n", where, j->valuedouble);
                return 1;
            }
        }
        return 0;
    }
    if (cJSON_IsString(j)) {
        const char *s = dcl_config_scalar(c);
        if (!s || strcmp(s, j->valuestring)) {
            fprintf(stderr, "%s: expected '%s', got '%s'\n", where, j->valuestring, s ? s : "(not a scalar)");
            return 1;
        }
        return 0;
    }
    return 1;
}

static int tree_equal(const dcl_config *a, const dcl_config *b) {
    if (dcl_config_kind(a) != dcl_config_kind(b) || dcl_config_len(a) != dcl_config_len(b)) return 0;
    if (dcl_config_kind(a) == DCL_CFG_SCALAR) return !strcmp(dcl_config_scalar(a), dcl_config_scalar(b));
    for (int i = 0; i < dcl_config_len(a); i++) {
        if (dcl_config_kind(a) == DCL_CFG_MAP && strcmp(dcl_config_key(a, i), dcl_config_key(b, i))) return 0;
        if (!tree_equal(dcl_config_at(a, i), dcl_config_at(b, i))) return 0;
    }
    return 1;
}

static void test_against_pyyaml(void) {
    dcl_config *cfg;
    CHECK_OK(dcl_config_load(&cfg, fixture("config.yaml")));
    cJSON *j;
    CHECK_OK(dcl_json_load(&j, fixture("config.json")));
    if (!cfg || !j) return;
    CHECK(compare_json(cfg, j, "") == 0, "tree differs from PyYAML's");
    cJSON_Delete(j);

    /* typed getters */
    const char *s;
    int i, b;
    int64_t l;
    double d;
    CHECK_OK(dcl_config_get_str(cfg, "model.name", NULL, &s));
    CHECK(s && !strcmp(s, "tf_efficientnet_b4_ns"), "model.name");
    CHECK_OK(dcl_config_get_int(cfg, "train.epochs", 0, &i));
    CHECK(i == 30, "epochs");
    CHECK_OK(dcl_config_get_double(cfg, "train.lr", 0, &d));
    CHECK(d == 0.0002, "lr");
    CHECK_OK(dcl_config_get_double(cfg, "train.weight_decay", 0, &d));
    CHECK(d == 1e-5, "weight_decay");
    CHECK_OK(dcl_config_get_bool(cfg, "model.pretrained", 0, &b));
    CHECK(b == 1, "pretrained");
    CHECK_OK(dcl_config_get_bool(cfg, "train.amp", 1, &b));
    CHECK(b == 0, "amp: no");
    CHECK_OK(dcl_config_get_double(cfg, "train.betas.1", 0, &d));
    CHECK(d == 0.999, "betas.1");
    CHECK_OK(dcl_config_get_double(cfg, "train.schedule.1.lr", 0, &d));
    CHECK(d == 5e-5, "schedule.1.lr");
    CHECK_OK(dcl_config_get_str(cfg, "data.sets.1.root", NULL, &s));
    CHECK(s && !strcmp(s, "/data/ff++"), "alias");
    CHECK_OK(dcl_config_get_i64(cfg, "data.big", 0, &l));
    CHECK(l == 123456789012LL, "big");
    CHECK_OK(dcl_config_get_int(cfg, "data.hex", 0, &i));
    CHECK(i == 31, "hex");
    CHECK_OK(dcl_config_get_int(cfg, "data.neg", 0, &i));
    CHECK(i == -17, "neg");
    /* defaults: absent, null, absent index */
    CHECK_OK(dcl_config_get_int(cfg, "train.missing", 7, &i));
    CHECK(i == 7, "default");
    CHECK_OK(dcl_config_get_double(cfg, "train.empty", 1.5, &d));
    CHECK(d == 1.5, "null -> default");
    CHECK_OK(dcl_config_get_str(cfg, "train.tilde", "dflt", &s));
    CHECK(!strcmp(s, "dflt"), "~ -> default");
    CHECK_OK(dcl_config_get_str(cfg, "train.quoted_null", NULL, &s));
    CHECK(s && !strcmp(s, "null"), "quoted null is a string");
    CHECK_OK(dcl_config_get_int(cfg, "train.quoted_num", 0, &i));
    CHECK(i == 42, "quoted number still reads as a number");
    CHECK_OK(dcl_config_get_int(cfg, "train.betas.5", -1, &i));
    CHECK(i == -1, "index past the end -> default");
    CHECK_OK(dcl_config_get_int(cfg, "nothing.at.all", 3, &i));
    CHECK(i == 3, "absent parents");

    /* errors name file, path, the value and its line */
    CHECK(dcl_config_get_double(cfg, "model.name", 0, &d) == DCL_ERR_FORMAT, "string as number");
    const char *m = dcl_last_error();
    CHECK(strstr(m, "config.yaml: model.name: expected a number, found 'tf_efficientnet_b4_ns' at line 3"), "msg: %s", m);
    CHECK(dcl_config_get_int(cfg, "train.lr", 0, &i) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "train.lr: expected an integer (32-bit), found '0.0002' at line 8"),
          "msg: %s", dcl_last_error());
    CHECK(dcl_config_get_int(cfg, "data.big", 0, &i) == DCL_ERR_FORMAT, "int overflow");
    CHECK(dcl_config_get_bool(cfg, "model.dropout", 0, &b) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "expected a boolean"),
          "msg: %s", dcl_last_error());
    CHECK(dcl_config_get_str(cfg, "train.betas", NULL, &s) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "train.betas: expected a string, found a sequence at line 12"),
          "msg: %s", dcl_last_error());
    CHECK(dcl_config_get_int(cfg, "model.name.x", 0, &i) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "model.name: expected a mapping"),
          "msg: %s", dcl_last_error());
    CHECK(dcl_config_get_int(cfg, "train.betas.x", 0, &i) == DCL_ERR_FORMAT, "seq with a key");
    CHECK(dcl_config_get_int(cfg, "train..lr", 0, &i) == DCL_ERR_ARG && strstr(dcl_last_error(), "bad config path"),
          "bad path");

    /* iteration */
    const dcl_config *sets = dcl_config_find(cfg, "data.sets");
    CHECK(sets && dcl_config_kind(sets) == DCL_CFG_SEQ && dcl_config_len(sets) == 2, "sets");
    const dcl_config *s1 = dcl_config_at(sets, 1);
    CHECK_OK(dcl_config_get_str(s1, "name", NULL, &s));
    CHECK(s && !strcmp(s, "celeb-df"), "relative lookup");
    CHECK(!strcmp(dcl_config_path(s1), "data.sets.1") && dcl_config_line(s1) == 30, "path %s line %d",
          dcl_config_path(s1), dcl_config_line(s1));
    CHECK(dcl_config_get_int(s1, "name", 0, &i) == DCL_ERR_FORMAT && strstr(dcl_last_error(), "data.sets.1.name"),
          "relative errors name the full path: %s", dcl_last_error());
    const dcl_config *model = dcl_config_find(cfg, "model");
    CHECK(dcl_config_len(model) == 4 && !strcmp(dcl_config_key(model, 3), "num_classes"), "map keys in order");
    CHECK(dcl_config_key(sets, 0) == NULL && dcl_config_at(model, 4) == NULL, "out of range");
    CHECK(dcl_config_find(cfg, "model.name.x") == NULL, "find through a scalar");

    /* unknown keys */
    const char *known[] = {"name", "pretrained", "dropout", NULL};
    CHECK(dcl_config_check_keys(model, known) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "model: unknown key 'num_classes' at line 6"),
          "check_keys: %s", dcl_last_error());
    const char *known2[] = {"name", "pretrained", "dropout", "num_classes", NULL};
    CHECK_OK(dcl_config_check_keys(model, known2));

    /* dump and re-parse gives the same tree */
    dcl_buf out = {0};
    CHECK_OK(dcl_config_dump(&out, cfg));
    dcl_config *again;
    CHECK_OK(dcl_config_parse(&again, out.data, out.len, "dump"));
    CHECK(again && tree_equal(cfg, again), "dump does not re-parse to the same tree:\n%s", out.data);
    dcl_config_free(again);
    dcl_buf_free(&out);
    dcl_config_free(cfg);
}

static void test_overrides(void) {
    const char *text = "train:\n  lr: 0.1\n  epochs: 3\nlist: [1, 2]\nnothing:\n";
    dcl_config *cfg;
    CHECK_OK(dcl_config_parse(&cfg, text, strlen(text), "o.yaml"));
    if (!cfg) return;
    double d;
    int i;
    const char *s;
    CHECK_OK(dcl_config_set(cfg, "train.lr", "0.001"));
    CHECK_OK(dcl_config_get_double(cfg, "train.lr", 0, &d));
    CHECK(d == 0.001, "override");
    CHECK_OK(dcl_config_set_arg(cfg, "model.head.dim=128"));
    CHECK_OK(dcl_config_get_int(cfg, "model.head.dim", 0, &i));
    CHECK(i == 128, "created intermediate maps");
    CHECK(!strcmp(dcl_config_path(dcl_config_find(cfg, "model.head.dim")), "model.head.dim"), "path of new node");
    CHECK_OK(dcl_config_set(cfg, "list", "[4, 5, 6]"));
    const dcl_config *l = dcl_config_find(cfg, "list");
    CHECK(dcl_config_kind(l) == DCL_CFG_SEQ && dcl_config_len(l) == 3, "flow value");
    CHECK_OK(dcl_config_set(cfg, "list.1", "50"));
    CHECK_OK(dcl_config_set(cfg, "list.3", "7"));
    CHECK_OK(dcl_config_get_int(cfg, "list.1", 0, &i));
    CHECK(i == 50 && dcl_config_len(dcl_config_find(cfg, "list")) == 4, "sequence item set / append");
    CHECK(dcl_config_set(cfg, "list.9", "1") == DCL_ERR_ARG, "index past the end");
    CHECK_OK(dcl_config_set(cfg, "nothing.sub", "x"));
    CHECK_OK(dcl_config_get_str(cfg, "nothing.sub", NULL, &s));
    CHECK(s && !strcmp(s, "x"), "null becomes a mapping");
    CHECK_OK(dcl_config_set(cfg, "q", "\"a: b # c\""));
    CHECK_OK(dcl_config_get_str(cfg, "q", NULL, &s));
    CHECK(s && !strcmp(s, "a: b # c"), "quoted value: %s", s);
    CHECK_OK(dcl_config_set(cfg, "plain", "a: b"));
    CHECK_OK(dcl_config_get_str(cfg, "plain", NULL, &s));
    CHECK(s && !strcmp(s, "a: b"), "plain value kept as text");
    CHECK_OK(dcl_config_set(cfg, "train.epochs", ""));
    CHECK_OK(dcl_config_get_int(cfg, "train.epochs", 9, &i));
    CHECK(i == 9, "empty value is null");
    CHECK(dcl_config_set(cfg, "train.lr.x", "1") == DCL_ERR_ARG &&
              strstr(dcl_last_error(), "train.lr is '0.001' (set by override), not a mapping"),
          "set through a scalar: %s", dcl_last_error());
    CHECK(dcl_config_set_arg(cfg, "noequals") == DCL_ERR_ARG, "no =");
    CHECK(dcl_config_set_arg(cfg, "=1") == DCL_ERR_ARG, "empty key");
    CHECK(dcl_config_set(cfg, "a..b", "1") == DCL_ERR_ARG, "bad path");
    CHECK(dcl_config_set(cfg, "x", "[1, 2") == DCL_ERR_FORMAT, "bad flow value");
    CHECK(dcl_config_set(cfg, "x", "\xff") == DCL_ERR_ARG, "bad UTF-8");
    CHECK_OK(dcl_config_set(cfg, "train.lr", "abc"));
    CHECK(dcl_config_get_double(cfg, "train.lr", 0, &d) == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "train.lr: expected a number, found 'abc' (set by override)"),
          "override error: %s", dcl_last_error());
    /* an empty config accepts overrides too */
    dcl_config *e;
    CHECK_OK(dcl_config_new(&e));
    CHECK_OK(dcl_config_set(e, "a.b.c", "1"));
    CHECK_OK(dcl_config_get_int(e, "a.b.c", 0, &i));
    CHECK(i == 1, "new config");
    dcl_buf out = {0};
    CHECK_OK(dcl_config_dump(&out, cfg));
    dcl_config *again;
    CHECK_OK(dcl_config_parse(&again, out.data, out.len, "dump"));
    CHECK(again && tree_equal(cfg, again), "dump after overrides:\n%s", out.data);
    dcl_config_free(again);
    dcl_buf_free(&out);
    dcl_config_free(e);
    dcl_config_free(cfg);
}

static void test_malformed(void) {
    static const struct { const char *text, *msg; } bad[] = {
        {"a: 1\nb: [1, 2\nc: 3\n", "YAML syntax error at line"},
        {"a: 1\n b: 2\n", "YAML syntax error at line 2"},
        {"a:\n  - 1\n  x: 2\n", "YAML syntax error at line 3"},
        {"a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first at line 1) at line 3"},
        {"a: *nope\n", "unknown alias '*nope' at line 1"},
        {"a: &x [1, *x]\n", "recursive alias '*x'"},
        {"a: 1\n---\nb: 2\n", "more than one YAML document at line 2"},
        {"- 1\n- 2\n", "the top level must be a mapping, found a sequence at line 1"},
        {"just text\n", "top level must be a mapping"},
        {"? [1, 2]\n: x\n", "complex keys are not supported"},
        {"a: \"unterminated\n", "YAML syntax error"},
        {"a: 'x\n\n", "YAML syntax error"},
        {"\t- x\n", "YAML syntax error"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        dcl_config *cfg = NULL;
        dcl_status s = dcl_config_parse(&cfg, bad[k].text, strlen(bad[k].text), "bad.yaml");
        CHECK(s == DCL_ERR_FORMAT && cfg == NULL, "case %zu: status %d", k, s);
        CHECK(strstr(dcl_last_error(), bad[k].msg) && strstr(dcl_last_error(), "bad.yaml") &&
                  !strchr(dcl_last_error(), '\n'),
              "case %zu: '%s' lacks '%s'", k, dcl_last_error(), bad[k].msg);
    }
    /* deep nesting */
    char deep[4000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "a: ");
    for (int k = 0; k < 1000; k++) deep[n++] = '[';
    deep[n] = 0;
    dcl_config *cfg = NULL;
    CHECK(dcl_config_parse(&cfg, deep, n, "deep.yaml") == DCL_ERR_FORMAT && strstr(dcl_last_error(), "nesting"),
          "deep: %s", dcl_last_error());
    /* alias bomb */
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    CHECK(dcl_config_parse(&cfg, bomb, strlen(bomb), "bomb.yaml") == DCL_ERR_FORMAT &&
              strstr(dcl_last_error(), "too many nodes"),
          "bomb: %s", dcl_last_error());
    /* empty / comment-only documents are empty mappings */
    CHECK_OK(dcl_config_parse(&cfg, "# nothing\n", 10, "empty.yaml"));
    CHECK(cfg && dcl_config_kind(cfg) == DCL_CFG_MAP && dcl_config_len(cfg) == 0, "empty doc");
    dcl_config_free(cfg);
    CHECK(dcl_config_load(&cfg, "/nonexistent/cfg.yaml") == DCL_ERR_IO &&
              strstr(dcl_last_error(), "/nonexistent/cfg.yaml"),
          "missing file");
    /* every prefix of the fixture parses or fails cleanly */
    void *buf;
    size_t len;
    CHECK_OK(dcl_read_file(&buf, &len, fixture("config.yaml"), 0));
    int ok = 0;
    for (size_t k = 0; buf && k <= len; k++) {
        dcl_config *c = NULL;
        if (dcl_config_parse(&c, buf, k, "prefix") == DCL_OK) ok++;
        else CHECK(c == NULL && strstr(dcl_last_error(), "prefix"), "prefix %zu", k);
        dcl_config_free(c);
    }
    CHECK(ok > 0, "no prefix parsed");
    free(buf);
}

int main(void) {
    test_against_pyyaml();
    test_overrides();
    test_malformed();
    CHECK_DONE();
}
