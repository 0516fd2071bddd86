/* YAML configs (libyaml event parser) as a small tree with dotted-path
 * lookups, typed getters with clear errors, overrides and a block dumper. */
#include "dcl/io.h"
#include <yaml.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_MAX_DEPTH 256          /* nesting in the text */
#define CFG_MAX_TREE_DEPTH 1024    /* nesting after alias expansion / --set paths */
#define CFG_MAX_NODES 1000000      /* guards against alias bombs */
#define CFG_MAX_FILE ((size_t)64 << 20)

typedef struct cfg_doc {
    char *name;
    long nodes;
} cfg_doc;

struct dcl_config {
    dcl_cfg_kind kind;
    int line;                 /* 1-based; 0 = created by an override */
    char *text;               /* scalars and nulls: the text as written */
    int n, cap;
    char **keys;              /* mappings */
    int *klines;              /* line of each key */
    dcl_config **kids;        /* mapping values / sequence items */
    char *path;               /* dotted path from the root ("" for the root) */
    cfg_doc *doc;             /* owned by the root */
};

/* ----------------------------------------------------------- node basics */

static void node_free(dcl_config *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        node_free(c->kids[i]);
        if (c->keys) free(c->keys[i]);
    }
    free(c->kids);
    free(c->keys);
    free(c->klines);
    free(c->text);
    free(c->path);
    free(c);
}

void dcl_config_free(dcl_config *root) {
    if (!root) return;
    cfg_doc *d = root->doc;
    node_free(root);
    if (d) {
        free(d->name);
        free(d);
    }
}

static dcl_config *node_new(cfg_doc *doc, dcl_cfg_kind kind, int line) {
    if (doc && doc->nodes >= CFG_MAX_NODES) return NULL;
    dcl_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->line = line;
    c->doc = doc;
    if (doc) doc->nodes++;
    return c;
}

static int is_null_word(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Appends a child (and key for mappings); takes ownership of key. 0 / -1. */
static int node_push(dcl_config *c, char *key, int kline, dcl_config *kid) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 4;
        dcl_config **nk = realloc(c->kids, (size_t)nc * sizeof *nk);
        if (!nk) return -1;
        c->kids = nk;
        if (c->kind == DCL_CFG_MAP) {
            char **ks = realloc(c->keys, (size_t)nc * sizeof *ks);
            if (!ks) return -1;
            c->keys = ks;
            int *kl = realloc(c->klines, (size_t)nc * sizeof *kl);
            if (!kl) return -1;
            c->klines = kl;
        }
        c->cap = nc;
    }
    if (c->kind == DCL_CFG_MAP) {
        c->keys[c->n] = key;
        c->klines[c->n] = kline;
    }
    c->kids[c->n++] = kid;
    return 0;
}

static int map_find(const dcl_config *c, const char *key) {
    if (c->kind != DCL_CFG_MAP) return -1;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->keys[i], key)) return i;
    return -1;
}

/* Deep copy into doc; NULL on failure (*why explains). */
static dcl_config *node_copy(const dcl_config *src, cfg_doc *doc, int depth, const char **why) {
    if (depth > CFG_MAX_TREE_DEPTH) { *why = "nesting too deep after alias expansion"; return NULL; }
    dcl_config *c = node_new(doc, src->kind, src->line);
    if (!c) { *why = doc && doc->nodes >= CFG_MAX_NODES ? "too many nodes after alias expansion" : "out of memory"; return NULL; }
    if (src->text && !(c->text = strdup(src->text))) { *why = "out of memory"; node_free(c); return NULL; }
    for (int i = 0; i < src->n; i++) {
        dcl_config *k = node_copy(src->kids[i], doc, depth + 1, why);
        char *key = NULL;
        if (!k || (src->kind == DCL_CFG_MAP && !(key = strdup(src->keys[i])))) {
            if (k && !*why) *why = "out of memory";
            node_free(k);
            node_free(c);
            return NULL;
        }
        if (node_push(c, key, src->kind == DCL_CFG_MAP ? src->klines[i] : 0, k) != 0) {
            *why = "out of memory";
            free(key);
            node_free(k);
            node_free(c);
            return NULL;
        }
    }
    return c;
}

/* Recomputes the dotted paths of a subtree. */
static int set_paths(dcl_config *c, const char *path) {
    free(c->path);
    c->path = strdup(path);
    if (!c->path) return -1;
    size_t pl = strlen(path);
    for (int i = 0; i < c->n; i++) {
        char idx[24];
        const char *k = c->kind == DCL_CFG_MAP ? c->keys[i] : (snprintf(idx, sizeof idx, "%d", i), idx);
        size_t kl = strlen(k);
        char *p = malloc(pl + kl + 2);
        if (!p) return -1;
        if (pl) { memcpy(p, path, pl); p[pl] = '.'; memcpy(p + pl + 1, k, kl + 1); }
        else memcpy(p, k, kl + 1);
        int r = set_paths(c->kids[i], p);
        free(p);
        if (r) return r;
    }
    return 0;
}

static const char *doc_name(const dcl_config *c) {
    return c && c->doc && c->doc->name ? c->doc->name : "config";
}

static const char *show_path(const dcl_config *c) { return c->path && *c->path ? c->path : "(top level)"; }

/* "'abc' at line 3", "a mapping at line 3", "'x' (set by override)" */
static const char *describe(char *buf, size_t n, const dcl_config *c) {
    char what[100];
    if (c->kind == DCL_CFG_MAP) snprintf(what, sizeof what, "a mapping");
    else if (c->kind == DCL_CFG_SEQ) snprintf(what, sizeof what, "a sequence");
    else {
        const char *t = c->text ? c->text : "";
        size_t k = 0;
        what[k++] = '\'';
        for (size_t i = 0; t[i] && k < 60; i++) what[k++] = ((unsigned char)t[i] < 0x20) ? '?' : t[i];
        if (strlen(t) > 58) { what[k++] = '.'; what[k++] = '.'; what[k++] = '.'; }
        what[k++] = '\'';
        what[k] = 0;
    }
    if (c->line > 0) snprintf(buf, n, "%s at line %d", what, c->line);
    else snprintf(buf, n, "%s (set by override)", what);
    return buf;
}

static dcl_status type_error(const dcl_config *c, const char *expected) {
    char d[160];
    return dcl_fail(DCL_ERR_FORMAT, "%s: %s: expected %s, found %s", doc_name(c), show_path(c), expected,
                    describe(d, sizeof d, c));
}

/* ----------------------------------------------------------------- parse */

typedef struct anchor {
    char *name;
    dcl_config *node;
    int done;
} anchor;

typedef struct frame {
    dcl_config *node;
    char *key;            /* pending key of a mapping */
    int kline;
} frame;

typedef struct pstate {
    cfg_doc *doc;
    const char *name;
    frame stack[CFG_MAX_DEPTH + 1];
    int depth;
    dcl_config *root;
    anchor *anchors;
    int nanchors, acap;
    dcl_config **spare;   /* anchored key scalars, freed at the end */
    int nspare, scap;
} pstate;

static dcl_status perr(pstate *ps, int line, const char *fmt, const char *arg) {
    char msg[300];
    snprintf(msg, sizeof msg, fmt, arg);
    return dcl_fail(DCL_ERR_FORMAT, "%s: %s at line %d", ps->name, msg, line);
}

static dcl_status add_anchor(pstate *ps, const yaml_char_t *name, dcl_config *node, int done) {
    if (!name) return DCL_OK;
    if (ps->nanchors == ps->acap) {
        int nc = ps->acap ? ps->acap * 2 : 8;
        anchor *na = realloc(ps->anchors, (size_t)nc * sizeof *na);
        if (!na) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name);
        ps->anchors = na;
        ps->acap = nc;
    }
    char *s = strdup((const char *)name);
    if (!s) return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name);
    ps->anchors[ps->nanchors++] = (anchor){s, node, done};
    return DCL_OK;
}

static void finish_anchor(pstate *ps, dcl_config *node) {
    for (int i = ps->nanchors - 1; i >= 0; i--)
        if (ps->anchors[i].node == node) ps->anchors[i].done = 1;
}

/* Attaches a finished-or-started node to the current container.  On error
 * the node is freed. */
static dcl_status attach(pstate *ps, dcl_config *node, int line, int anchored) {
    if (ps->depth == 0) {
        if (ps->root) { node_free(node); return perr(ps, line, "%s", "more than one top-level node"); }
        ps->root = node;
        return DCL_OK;
    }
    frame *f = &ps->stack[ps->depth - 1];
    dcl_config *top = f->node;
    if (top->kind == DCL_CFG_SEQ) {
        if (node_push(top, NULL, 0, node) != 0) { node_free(node); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name); }
        return DCL_OK;
    }
    if (!f->key) { /* this node is a key */
        if (node->kind != DCL_CFG_SCALAR && node->kind != DCL_CFG_NULL) {
            node_free(node);
            return perr(ps, line, "%s", "mapping keys must be plain values (complex keys are not supported)");
        }
        char *k = strdup(node->text ? node->text : "");
        if (!k) { node_free(node); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name); }
        int j = map_find(top, k);
        if (j >= 0) {
            char msg[300], kb[80];
            snprintf(kb, sizeof kb, "%.60s", k);
            snprintf(msg, sizeof msg, "duplicate key '%s' (first at line %d)", kb, top->klines[j]);
            free(k);
            node_free(node);
            return perr(ps, line, "%s", msg);
        }
        f->key = k;
        f->kline = line;
        if (anchored) { /* keep it alive for later aliases */
            if (ps->nspare == ps->scap) {
                int nc = ps->scap ? ps->scap * 2 : 8;
                dcl_config **ns = realloc(ps->spare, (size_t)nc * sizeof *ns);
                if (!ns) { node_free(node); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name); }
                ps->spare = ns;
                ps->scap = nc;
            }
            ps->spare[ps->nspare++] = node;
        } else {
            node_free(node);
        }
        return DCL_OK;
    }
    if (node_push(top, f->key, f->kline, node) != 0) {
        node_free(node);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name);
    }
    f->key = NULL;
    return DCL_OK;
}

static dcl_status handle_event(pstate *ps, yaml_event_t *ev, int *ndocs) {
    int line = (int)ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*ndocs > 1) return perr(ps, line, "%s", "more than one YAML document");
        return DCL_OK;
    case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        dcl_config *c = node_new(ps->doc, DCL_CFG_SCALAR, line);
        if (!c) return perr(ps, line, "%s", ps->doc->nodes >= CFG_MAX_NODES ? "too many nodes" : "out of memory");
        c->text = strndup(v ? v : "", v ? len : 0);
        if (!c->text) { node_free(c); return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", ps->name); }
        if (plain && is_null_word(c->text)) c->kind = DCL_CFG_NULL;
        dcl_status s = add_anchor(ps, ev->data.scalar.anchor, c, 1);
        if (s) { node_free(c); return s; }
        return attach(ps, c, line, ev->data.scalar.anchor != NULL);
    }
    case YAML_ALIAS_EVENT: {
        const char *a = (const char *)ev->data.alias.anchor;
        int i = ps->nanchors - 1;
        while (i >= 0 && strcmp(ps->anchors[i].name, a)) i--;
        if (i < 0) return perr(ps, line, "unknown alias '*%.80s'", a);
        if (!ps->anchors[i].done) return perr(ps, line, "recursive alias '*%.80s'", a);
        const char *why = NULL;
        dcl_config *c = node_copy(ps->anchors[i].node, ps->doc, ps->depth, &why);
        if (!c) return perr(ps, line, "%s", why ? why : "out of memory");
        return attach(ps, c, line, 0);
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        if (ps->depth >= CFG_MAX_DEPTH) return perr(ps, line, "nesting deeper than %s levels", "256");
        dcl_config *c = node_new(ps->doc, map ? DCL_CFG_MAP : DCL_CFG_SEQ, line);
        if (!c) return perr(ps, line, "%s", ps->doc->nodes >= CFG_MAX_NODES ? "too many nodes" : "out of memory");
        const yaml_char_t *anc = map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        /* containers cannot be keys: attach refuses before the node is referenced */
        DCL_TRY(attach(ps, c, line, 0));
        DCL_TRY(add_anchor(ps, anc, c, 0));
        ps->stack[ps->depth++] = (frame){c, NULL, 0};
        return DCL_OK;
    }
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        if (ps->depth > 0) {
            frame *f = &ps->stack[--ps->depth];
            free(f->key);
            f->key = NULL;
            finish_anchor(ps, f->node);
        }
        return DCL_OK;
    default:
        return DCL_OK;
    }
}

/* Parses any YAML value (root may be a scalar or sequence); *out NULL for an
 * empty document. */
static dcl_status parse_any(dcl_config **out, cfg_doc *doc, const char *text, size_t len, const char *name) {
    *out = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return dcl_fail(DCL_ERR_NOMEM, "%s: cannot create a YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    pstate *ps = calloc(1, sizeof *ps);
    if (!ps) {
        yaml_parser_delete(&parser);
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    }
    ps->doc = doc;
    ps->name = name;
    dcl_status s = DCL_OK;
    int ndocs = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            int line = (int)(parser.problem_mark.line + 1);
            if (parser.error == YAML_MEMORY_ERROR) s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
            else
                s = dcl_fail(DCL_ERR_FORMAT, "%s: YAML syntax error at line %d: %s%s%s", name, line,
                             parser.problem ? parser.problem : "unknown problem", parser.context ? " " : "",
                             parser.context ? parser.context : "");
            break;
        }
        int end = ev.type == YAML_STREAM_END_EVENT;
        s = handle_event(ps, &ev, &ndocs);
        yaml_event_delete(&ev);
        if (s != DCL_OK || end) break;
    }
    yaml_parser_delete(&parser);
    for (int i = 0; i < ps->depth; i++) free(ps->stack[i].key);
    for (int i = 0; i < ps->nanchors; i++) free(ps->anchors[i].name);
    free(ps->anchors);
    for (int i = 0; i < ps->nspare; i++) node_free(ps->spare[i]);
    free(ps->spare);
    if (s == DCL_OK) *out = ps->root;
    else node_free(ps->root);
    free(ps);
    return s;
}

static dcl_status new_doc(cfg_doc **out, const char *name) {
    *out = calloc(1, sizeof **out);
    if (!*out || !((*out)->name = strdup(name))) {
        free(*out);
        *out = NULL;
        return dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    }
    return DCL_OK;
}

dcl_status dcl_config_parse(dcl_config **out, const char *text, size_t len, const char *name) {
    *out = NULL;
    if (!name) name = "config";
    if (!text && len) return dcl_fail(DCL_ERR_ARG, "%s: NULL text", name);
    cfg_doc *doc;
    DCL_TRY(new_doc(&doc, name));
    dcl_config *root;
    dcl_status s = parse_any(&root, doc, text ? text : "", len, name);
    if (s == DCL_OK && root && root->kind == DCL_CFG_NULL) {
        node_free(root);
        root = NULL;
    }
    if (s == DCL_OK && root && root->kind != DCL_CFG_MAP) {
        char d[160];
        s = dcl_fail(DCL_ERR_FORMAT, "%s: the top level must be a mapping, found %s", name, describe(d, sizeof d, root));
        node_free(root);
        root = NULL;
    }
    if (s == DCL_OK && !root && !(root = node_new(doc, DCL_CFG_MAP, 1)))
        s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    if (s == DCL_OK && set_paths(root, "") != 0) s = dcl_fail(DCL_ERR_NOMEM, "%s: out of memory", name);
    if (s != DCL_OK) {
        node_free(root);
        free(doc->name);
        free(doc);
        return s;
    }
    *out = root;
    return DCL_OK;
}

dcl_status dcl_config_load(dcl_config **out, const char *path) {
    *out = NULL;
    void *buf;
    size_t len;
    DCL_TRY(dcl_read_file(&buf, &len, path, CFG_MAX_FILE));
    dcl_status s = dcl_config_parse(out, buf, len, path);
    free(buf);
    return s;
}

dcl_status dcl_config_new(dcl_config **out) { return dcl_config_parse(out, "", 0, "config"); }

/* ---------------------------------------------------------------- lookup */

static int parse_index(const char *s, size_t n, int *out) {
    if (n == 0 || n > 9) return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Finds the node at path.  *out NULL when absent (a null value on the way
 * counts as absent).  Errors when the path is malformed or runs into a
 * scalar or a sequence with a non-numeric component. */
static dcl_status lookup(const dcl_config **out, const dcl_config *node, const char *path) {
    *out = NULL;
    if (!node) return dcl_fail(DCL_ERR_ARG, "config lookup on NULL");
    if (!path) return dcl_fail(DCL_ERR_ARG, "config lookup: NULL path");
    const dcl_config *cur = node;
    const char *p = path;
    if (!*p) { *out = cur; return DCL_OK; }
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) return dcl_fail(DCL_ERR_ARG, "%s: bad config path '%s'", doc_name(node), path);
        if (cur->kind == DCL_CFG_NULL) return DCL_OK;
        const dcl_config *next = NULL;
        if (cur->kind == DCL_CFG_MAP) {
            for (int i = 0; i < cur->n; i++)
                if (strlen(cur->keys[i]) == n && !memcmp(cur->keys[i], p, n)) { next = cur->kids[i]; break; }
        } else if (cur->kind == DCL_CFG_SEQ) {
            int idx;
            if (!parse_index(p, n, &idx)) {
                char d[160];
                return dcl_fail(DCL_ERR_FORMAT, "%s: %s: expected a mapping (looking up '%s'), found a sequence%s",
                                doc_name(cur), show_path(cur), path,
                                cur->line ? (snprintf(d, sizeof d, " at line %d", cur->line), d) : "");
            }
            if (idx < cur->n) next = cur->kids[idx];
        } else {
            char d[160];
            return dcl_fail(DCL_ERR_FORMAT, "%s: %s: expected a mapping (looking up '%s'), found %s", doc_name(cur),
                            show_path(cur), path, describe(d, sizeof d, cur));
        }
        if (!next) return DCL_OK;
        cur = next;
        if (!dot) break;
        p = dot + 1;
    }
    *out = cur;
    return DCL_OK;
}

const dcl_config *dcl_config_find(const dcl_config *node, const char *path) {
    const dcl_config *c = NULL;
    if (!node || !path) return NULL;
    /* keep the caller's error message intact */
    char saved[1024];
    const char *prev = dcl_last_error();
    int had = strcmp(prev, "no error recorded") != 0;
    snprintf(saved, sizeof saved, "%s", prev);
    if (lookup(&c, node, path) != DCL_OK) {
        if (had) dcl_fail(DCL_OK, "%s", saved);
        else dcl_clear_error();
        return NULL;
    }
    return c;
}

dcl_cfg_kind dcl_config_kind(const dcl_config *c) { return c ? c->kind : DCL_CFG_NULL; }
int dcl_config_len(const dcl_config *c) { return c && (c->kind == DCL_CFG_MAP || c->kind == DCL_CFG_SEQ) ? c->n : 0; }
const char *dcl_config_key(const dcl_config *c, int i) {
    return c && c->kind == DCL_CFG_MAP && i >= 0 && i < c->n ? c->keys[i] : NULL;
}
const dcl_config *dcl_config_at(const dcl_config *c, int i) {
    return c && (c->kind == DCL_CFG_MAP || c->kind == DCL_CFG_SEQ) && i >= 0 && i < c->n ? c->kids[i] : NULL;
}
const char *dcl_config_scalar(const dcl_config *c) { return c && c->kind == DCL_CFG_SCALAR ? c->text : NULL; }
int dcl_config_line(const dcl_config *c) { return c ? c->line : 0; }
const char *dcl_config_path(const dcl_config *c) { return c && c->path ? c->path : ""; }

/* Scalar at path, or NULL (absent / null) */
static dcl_status get_scalar(const dcl_config **out, const dcl_config *cfg, const char *path) {
    DCL_TRY(lookup(out, cfg, path));
    if (*out && (*out)->kind == DCL_CFG_NULL) *out = NULL;
    return DCL_OK;
}

dcl_status dcl_config_get_str(const dcl_config *cfg, const char *path, const char *def, const char **out) {
    const dcl_config *c;
    DCL_TRY(get_scalar(&c, cfg, path));
    if (!c) { *out = def; return DCL_OK; }
    if (c->kind != DCL_CFG_SCALAR) return type_error(c, "a string");
    *out = c->text;
    return DCL_OK;
}

static int parse_i64(const char *s, int64_t *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) { base = 16; p += 2; }
    else if (p[0] == '0' && p[1] == 'o') { base = 8; p += 2; }
    if (!*p) return 0;
    uint64_t v = 0;
    for (; *p; p++) {
        int d;
        if (*p >= '0' && *p <= '9') d = *p - '0';
        else if (base == 16 && isxdigit((unsigned char)*p)) d = tolower((unsigned char)*p) - 'a' + 10;
        else return 0;
        if (d >= base) return 0;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return 0;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

dcl_status dcl_config_get_i64(const dcl_config *cfg, const char *path, int64_t def, int64_t *out) {
    const dcl_config *c;
    DCL_TRY(get_scalar(&c, cfg, path));
    if (!c) { *out = def; return DCL_OK; }
    int64_t v;
    if (c->kind != DCL_CFG_SCALAR || !parse_i64(c->text, &v)) return type_error(c, "an integer");
    *out = v;
    return DCL_OK;
}

dcl_status dcl_config_get_int(const dcl_config *cfg, const char *path, int def, int *out) {
    const dcl_config *c;
    DCL_TRY(get_scalar(&c, cfg, path));
    if (!c) { *out = def; return DCL_OK; }
    int64_t v;
    if (c->kind != DCL_CFG_SCALAR || !parse_i64(c->text, &v) || v < INT_MIN || v > INT_MAX)
        return type_error(c, "an integer (32-bit)");
    *out = (int)v;
    return DCL_OK;
}

static int parse_double(const char *s, double *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p == '-';
    const char *q = (*p == '+' || *p == '-') ? p + 1 : p;
    if (!strcmp(q, ".inf") || !strcmp(q, ".Inf") || !strcmp(q, ".INF")) { *out = neg ? -INFINITY : INFINITY; return 1; }
    if (p == q && (!strcmp(q, ".nan") || !strcmp(q, ".NaN") || !strcmp(q, ".NAN"))) { *out = NAN; return 1; }
    if (!*q || isspace((unsigned char)*q)) return 0;
    int64_t iv;
    if (parse_i64(s, &iv)) { *out = (double)iv; return 1; }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return 0;
    if (errno == ERANGE && isinf(v)) return 0;
    *out = v;
    return 1;
}

dcl_status dcl_config_get_double(const dcl_config *cfg, const char *path, double def, double *out) {
    const dcl_config *c;
    DCL_TRY(get_scalar(&c, cfg, path));
    if (!c) { *out = def; return DCL_OK; }
    double v;
    if (c->kind != DCL_CFG_SCALAR || !parse_double(c->text, &v)) return type_error(c, "a number");
    *out = v;
    return DCL_OK;
}

dcl_status dcl_config_get_bool(const dcl_config *cfg, const char *path, int def, int *out) {
    const dcl_config *c;
    DCL_TRY(get_scalar(&c, cfg, path));
    if (!c) { *out = def; return DCL_OK; }
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    if (c->kind == DCL_CFG_SCALAR)
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(c->text, yes[i])) { *out = 1; return DCL_OK; }
            if (!strcasecmp(c->text, no[i])) { *out = 0; return DCL_OK; }
        }
    return type_error(c, "a boolean (true/false)");
}

dcl_status dcl_config_check_keys(const dcl_config *map, const char *const *known) {
    if (!map || map->kind == DCL_CFG_NULL) return DCL_OK;
    if (map->kind != DCL_CFG_MAP) return type_error(map, "a mapping");
    for (int i = 0; i < map->n; i++) {
        int ok = 0;
        for (int j = 0; known && known[j] && !ok; j++) ok = !strcmp(map->keys[i], known[j]);
        if (!ok) {
            char loc[40];
            if (map->klines[i] > 0) snprintf(loc, sizeof loc, " at line %d", map->klines[i]);
            else snprintf(loc, sizeof loc, " (set by override)");
            return dcl_fail(DCL_ERR_FORMAT, "%s: %s: unknown key '%.80s'%s", doc_name(map), show_path(map), map->keys[i],
                            loc);
        }
    }
    return DCL_OK;
}

/* ------------------------------------------------------------- overrides */

static int utf8_valid(const char *s);


static void mark_override(dcl_config *c) {
    c->line = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->klines) c->klines[i] = 0;
        mark_override(c->kids[i]);
    }
}

static void set_doc(dcl_config *c, cfg_doc *d) {
    c->doc = d;
    for (int i = 0; i < c->n; i++) set_doc(c->kids[i], d);
}

dcl_status dcl_config_set(dcl_config *root, const char *path, const char *value) {
    if (!root || !path || !value) return dcl_fail(DCL_ERR_ARG, "config set: NULL argument");
    if (!*path) return dcl_fail(DCL_ERR_ARG, "config set: empty key");
    if (!utf8_valid(path) || !utf8_valid(value))
        return dcl_fail(DCL_ERR_ARG, "config set %.80s: not valid UTF-8", path);
    /* build the value node */
    dcl_config *val = NULL;
    if (value[0] == '[' || value[0] == '{' || value[0] == '"' || value[0] == '\'') {
        char label[200];
        snprintf(label, sizeof label, "--set %.150s", path);
        cfg_doc tmp = {label, 0};
        DCL_TRY(parse_any(&val, &tmp, value, strlen(value), label));
        if (!val && !(val = node_new(NULL, DCL_CFG_NULL, 0))) return dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
        if (!val->text && val->kind == DCL_CFG_NULL && !(val->text = strdup(""))) {
            node_free(val);
            return dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
        }
    } else {
        val = node_new(NULL, is_null_word(value) ? DCL_CFG_NULL : DCL_CFG_SCALAR, 0);
        if (!val || !(val->text = strdup(value))) {
            node_free(val);
            return dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
        }
    }
    mark_override(val);
    set_doc(val, root->doc);

    dcl_config *cur = root;
    const char *p = path;
    int depth = 0;
    dcl_status s = DCL_OK;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) { s = dcl_fail(DCL_ERR_ARG, "%s: bad config path '%.200s'", doc_name(root), path); break; }
        if (++depth > CFG_MAX_TREE_DEPTH) { s = dcl_fail(DCL_ERR_ARG, "%s: config path too deep", doc_name(root)); break; }
        if (cur->kind == DCL_CFG_NULL) { /* a null placeholder becomes a mapping */
            cur->kind = DCL_CFG_MAP;
            free(cur->text);
            cur->text = NULL;
        }
        dcl_config **slot = NULL;
        int idx = -1;
        if (cur->kind == DCL_CFG_MAP) {
            for (int i = 0; i < cur->n; i++)
                if (strlen(cur->keys[i]) == n && !memcmp(cur->keys[i], p, n)) { slot = &cur->kids[i]; break; }
        } else if (cur->kind == DCL_CFG_SEQ) {
            if (!parse_index(p, n, &idx) || idx > cur->n) {
                char d[160];
                s = dcl_fail(DCL_ERR_ARG, "%s: cannot set %.200s: %s is a sequence of %d items%s", doc_name(cur), path,
                             show_path(cur), cur->n, cur->line ? (snprintf(d, sizeof d, " at line %d", cur->line), d) : "");
                break;
            }
            if (idx < cur->n) slot = &cur->kids[idx];
        } else {
            char d[160];
            s = dcl_fail(DCL_ERR_ARG, "%s: cannot set %.200s: %s is %s, not a mapping", doc_name(cur), path,
                         show_path(cur), describe(d, sizeof d, cur));
            break;
        }
        if (!slot) { /* create: the value itself, or an intermediate mapping */
            dcl_config *kid = dot ? node_new(NULL, DCL_CFG_MAP, 0) : val;
            char *key = cur->kind == DCL_CFG_MAP ? strndup(p, n) : NULL;
            if (!kid || (cur->kind == DCL_CFG_MAP && !key) || node_push(cur, key, 0, kid) != 0) {
                if (kid != val) node_free(kid);
                free(key);
                s = dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
                break;
            }
            if (kid != val) kid->doc = root->doc;
            slot = &cur->kids[cur->n - 1];
            if (!dot) { val = NULL; break; }
        } else if (!dot) {
            node_free(*slot);
            *slot = val;
            val = NULL;
            break;
        }
        cur = *slot;
        p = dot + 1;
    }
    node_free(val);
    if (s == DCL_OK && set_paths(root, "") != 0) s = dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
    return s;
}

dcl_status dcl_config_set_arg(dcl_config *root, const char *kv) {
    if (!kv) return dcl_fail(DCL_ERR_ARG, "config set: NULL argument");
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return dcl_fail(DCL_ERR_ARG, "--set %.200s: expected key=value", kv);
    char *key = strndup(kv, (size_t)(eq - kv));
    if (!key) return dcl_fail(DCL_ERR_NOMEM, "config set: out of memory");
    dcl_status s = dcl_config_set(root, key, eq + 1);
    free(key);
    return s;
}

/* ------------------------------------------------------------------ dump */

static int plain_ok(const char *s) {
    if (!*s || is_null_word(s)) return 0;
    if (s[0] == '-' && !(s[1] >= '0' && s[1] <= '9') && s[1] != '.') return 0;
    if (s[0] == '.' && s[1] == 0) return 1;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_./+-", *p)) return 0;
    return 1;
}

/* Decodes one UTF-8 sequence; returns its length (0 when invalid). */
static int utf8_decode(const unsigned char *p, unsigned *cp) {
    if (p[0] < 0x80) { *cp = p[0]; return 1; }
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 1 : p[0] >= 0xe0 && p[0] <= 0xef ? 2 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 3 : -1;
    if (n < 0) return 0;
    unsigned v = p[0] & (0x3f >> n);
    for (int k = 1; k <= n; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[k] & 0x3f);
    }
    if ((n == 2 && v < 0x800) || (n == 3 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n + 1;
}

/* YAML double-quoted scalar; escapes everything outside YAML's printable set. */
static dcl_status yaml_quote(dcl_buf *b, const char *s) {
    DCL_TRY(dcl_buf_puts(b, "\""));
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp;
        int n = utf8_decode(p, &cp);
        if (!n) { cp = 0xfffd; n = 1; }
        if (cp == '"' || cp == '\\') DCL_TRY(dcl_buf_printf(b, "\\%c", (char)cp));
        else if (cp == '\n') DCL_TRY(dcl_buf_puts(b, "\\n"));
        else if (cp == '\t') DCL_TRY(dcl_buf_puts(b, "\\t"));
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0xfeff || cp == 0xfffe || cp == 0xffff ||
                 (p[0] >= 0x80 && n == 1))
            DCL_TRY(dcl_buf_printf(b, "\\u%04x", cp));
        else DCL_TRY(dcl_buf_append(b, p, (size_t)n));
        p += n;
    }
    return dcl_buf_puts(b, "\"");
}

static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp;
        int n = utf8_decode(p, &cp);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

static dcl_status dump_scalar(dcl_buf *b, const char *s) {
    if (plain_ok(s)) return dcl_buf_puts(b, s);
    return yaml_quote(b, s);
}

/* Block style.  `inline_first`: the cursor already sits at the column of the
 * first entry (after "- "), so that entry gets no indentation. */
static dcl_status dump_node(dcl_buf *b, const dcl_config *c, int indent, int inline_first) {
    if (c->kind == DCL_CFG_NULL) return dcl_buf_puts(b, "null\n");
    if (c->kind == DCL_CFG_SCALAR) {
        DCL_TRY(dump_scalar(b, c->text));
        return dcl_buf_puts(b, "\n");
    }
    if (c->n == 0) return dcl_buf_puts(b, c->kind == DCL_CFG_MAP ? "{}\n" : "[]\n");
    for (int i = 0; i < c->n; i++) {
        if (i || !inline_first) DCL_TRY(dcl_buf_printf(b, "%*s", indent, ""));
        const dcl_config *k = c->kids[i];
        int container = (k->kind == DCL_CFG_MAP || k->kind == DCL_CFG_SEQ) && k->n > 0;
        if (c->kind == DCL_CFG_MAP) {
            DCL_TRY(dump_scalar(b, c->keys[i]));
            DCL_TRY(dcl_buf_puts(b, container ? ":\n" : ": "));
            DCL_TRY(dump_node(b, k, indent + 2, 0));
        } else {
            DCL_TRY(dcl_buf_puts(b, "- "));
            DCL_TRY(dump_node(b, k, indent + 2, 1));
        }
    }
    return DCL_OK;
}

dcl_status dcl_config_dump(dcl_buf *out, const dcl_config *node) {
    if (!out || !node) return dcl_fail(DCL_ERR_ARG, "config dump: NULL argument");
    return dump_node(out, node, 0, 0);
}
