/* libFuzzer target: YAML configs.  Parses, reads every node with every
 * getter, applies overrides, and checks that the dump re-parses to the same
 * tree. */
#include "dcl/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same(const dcl_config *a, const dcl_config *b) {
    if (dcl_config_kind(a) != dcl_config_kind(b) || dcl_config_len(a) != dcl_config_len(b)) return 0;
    if (dcl_config_kind(a) == DCL_CFG_SCALAR) return !strcmp(dcl_config_scalar(a), dcl_config_scalar(b));
    for (int i = 0; i < dcl_config_len(a); i++) {
        if (dcl_config_kind(a) == DCL_CFG_MAP && strcmp(dcl_config_key(a, i), dcl_config_key(b, i))) return 0;
        if (!same(dcl_config_at(a, i), dcl_config_at(b, i))) return 0;
    }
    return 1;
}

static void visit(const dcl_config *c) {
    const char *s;
    int i;
    int64_t l;
    double d;
    dcl_config_get_str(c, "", NULL, &s);
    dcl_config_get_int(c, "", 0, &i);
    dcl_config_get_i64(c, "", 0, &l);
    dcl_config_get_double(c, "", 0, &d);
    dcl_config_get_bool(c, "", 0, &i);
    for (int k = 0; k < dcl_config_len(c); k++) {
        if (dcl_config_kind(c) == DCL_CFG_MAP) {
            const char *key = dcl_config_key(c, k);
            if (!strchr(key, '.') && *key && dcl_config_find(c, key) == NULL) __builtin_trap();
        }
        visit(dcl_config_at(c, k));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dcl_config *cfg;
    if (dcl_config_parse(&cfg, (const char *)data, size, "fuzz") != DCL_OK) {
        if (!dcl_last_error()[0]) __builtin_trap();
        return 0;
    }
    visit(cfg);
    /* the input's first line as an override value */
    char val[128];
    size_t n = 0;
    while (n < size && n < sizeof val - 1 && data[n] != '\n' && data[n]) { val[n] = (char)data[n]; n++; }
    val[n] = 0;
    dcl_config_set(cfg, "fz.v", val);
    dcl_config_set(cfg, "a.b.c", "[1, {x: y}]");
    if (dcl_config_len(cfg) > 0 && dcl_config_key(cfg, 0)[0] && !strchr(dcl_config_key(cfg, 0), '.')) {
        char path[300];
        snprintf(path, sizeof path, "%.200s.0", dcl_config_key(cfg, 0));
        dcl_config_set(cfg, path, "1");
    }
    dcl_buf out = {0};
    if (dcl_config_dump(&out, cfg) != DCL_OK) __builtin_trap();
    dcl_config *again;
    if (dcl_config_parse(&again, out.data, out.len, "dump") != DCL_OK) __builtin_trap();
    if (!same(cfg, again)) __builtin_trap();
    dcl_config_free(again);
    dcl_buf_free(&out);
    dcl_config_free(cfg);
    return 0;
}
