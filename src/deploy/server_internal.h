/* The HTTP service's state, shared by http.c (requests) and server.c (sockets). */
#ifndef DCL_SERVER_INTERNAL_H
#define DCL_SERVER_INTERNAL_H
#include "dcl/deploy.h"
#include <pthread.h>

struct MHD_Daemon;

struct dcl_server {
    dcl_server_opts o;
    char *host, *token;
    void **engines;
    int *busy;
    int nengines;
    dcl_server_analyze_fn fn;
    dcl_deploy_info info;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, waiting, stopping;
    int active;                     /* requests between arrival and completion */
    size_t reserved, budget;        /* upload bytes held / allowed */
    /* metrics */
    uint64_t by_status[600];
    uint64_t *hist;                 /* latency buckets + overflow */
    double lat_sum;
    uint64_t lat_count;
    uint64_t images, videos, frames, faces;
    double t_created;
    /* transport */
    struct MHD_Daemon *mhd;
    int port;
    int listen_fd;
};

#endif
