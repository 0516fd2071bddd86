/* Shared pieces of src/deploy (not part of the public API). */
#ifndef DCL_DEPLOY_INTERNAL_H
#define DCL_DEPLOY_INTERNAL_H
#include "dcl/deploy.h"

struct dcl_deploy {
    dcl_deploy_info info;
    dcl_backend *be;
    dcl_detector *det;
    dcl_mtcnn *mtcnn;
    dcl_mtcnn_opts mopts;
    int threads;
    int max_faces;
    int64_t max_pixels;
    float *x;                   /* size*size*3 input of the classifier */
};

/* An anonymous in-memory file holding bytes, reachable by a path
 * (/proc/self/fd/N of a memfd; a temporary file when that is unavailable). */
typedef struct dcl_memfile {
    int fd;
    int unlink_on_close;
    char path[4096];
} dcl_memfile;
dcl_status dcl_memfile_create(dcl_memfile *m, const void *buf, size_t len);
void dcl_memfile_close(dcl_memfile *m);

/* Opens MTCNN from the "mtcnn."-prefixed tensors of st. */
dcl_status dcl_deploy_mtcnn_from_st(dcl_mtcnn **out, dcl_backend *be, const dcl_st *st);

#endif
