/* Shared machinery of the dataset adapters (dataset*.c). */
#ifndef DCL_DATASET_INTERNAL_H
#define DCL_DATASET_INTERNAL_H
#include "dcl/dataset.h"
#include <cjson/cJSON.h>

typedef struct ds_chunk ds_chunk;

struct dcl_dataset {
    char name[16];
    char *root;            /* without trailing slash */
    dcl_entry *e;
    int n, cap;
    dcl_issue *iss;
    int ni, icap;
    ds_chunk *chunks;      /* string / array pool */
    int *hash;             /* open addressing over e[] by id; built by ds_index */
    int hcap;
};

/* pool */
void *ds_alloc(dcl_dataset *ds, size_t bytes);            /* 8-aligned, zeroed; NULL on OOM */
const char *ds_str(dcl_dataset *ds, const char *s);       /* copy (NULL -> NULL) */
const char *ds_strn(dcl_dataset *ds, const char *s, size_t n);
const char *ds_strf(dcl_dataset *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* entries: a zeroed entry with pair = -1 and dataset = ds->name; NULL on OOM */
dcl_entry *ds_add(dcl_dataset *ds);
/* Fills id/rel/path/label/method/split in one go (strings copied). */
dcl_entry *ds_add_item(dcl_dataset *ds, const char *id, const char *rel, dcl_media media, int label,
                       const char *method, dcl_split split);
void ds_issue(dcl_dataset *ds, dcl_issue_kind kind, const char *item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* (Re)builds the id index; duplicate ids are reported and the later ones removed. */
void ds_index(dcl_dataset *ds);
int ds_lookup(const dcl_dataset *ds, const char *id);
/* Sets pair fields of e to entry j (or leaves them unset when j < 0). */
void ds_set_pair(dcl_dataset *ds, dcl_entry *e, int j);

/* files */
const char *ds_path(dcl_dataset *ds, const char *rel);    /* root/rel (pooled) */
int ds_is_dir(const char *path);
int ds_is_file(const char *path);
/* Sorted names in a directory (no "." entries, no hidden files); returns the
 * count, -1 when it cannot be read.  Free with ds_free_names. */
int ds_list(const char *dir, char ***names);
void ds_free_names(char **names, int n);
int ds_has_ext(const char *name, const char *const *exts); /* case-insensitive; exts NULL-terminated */
int ds_is_video_name(const char *name);
int ds_is_image_name(const char *name);
/* name without directory and extension, copied into buf */
const char *ds_stem(char *buf, size_t n, const char *name);
int ds_all_digits(const char *s);

/* metadata */
/* Parses a JSON file; on failure records a METADATA issue and returns NULL. */
cJSON *ds_read_json(dcl_dataset *ds, const char *path);
/* Splits one CSV line (commas, double quotes) in place; returns field count. */
int ds_csv_fields(char *line, char **f, int maxf);
/* 0/1, real/fake (any case), REAL/FAKE; -1 otherwise */
int ds_parse_label(const char *s);
/* strtok-like line iteration over a buffer; strips \r; returns NULL at end */
char *ds_next_line(char **cursor);

/* adapters */
dcl_status ds_open_ffpp(dcl_dataset *ds, const dcl_dataset_opts *o, int dfd_only);
dcl_status ds_open_celebdf(dcl_dataset *ds, const dcl_dataset_opts *o);
dcl_status ds_open_dfdc(dcl_dataset *ds, const dcl_dataset_opts *o);
dcl_status ds_open_dfdcp(dcl_dataset *ds, const dcl_dataset_opts *o);
dcl_status ds_open_wild(dcl_dataset *ds, const dcl_dataset_opts *o);
dcl_status ds_open_generic(dcl_dataset *ds, const dcl_dataset_opts *o);
/* WildDeepfake / generic: fills the frame list of a FRAMES entry from its directory;
 * returns the number of images */
int ds_fill_frames(dcl_dataset *ds, dcl_entry *e, const char *dir);

#endif
