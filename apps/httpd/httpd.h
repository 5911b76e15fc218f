/* httpd.h: what weft-httpd's modules share: the configuration (set once by main before any
 * worker runs, read-only afterwards) and the per-worker state (one instance per shard,
 * touched by that worker's thread only). */
#ifndef WEFT_HTTPD_H
#define WEFT_HTTPD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <weft.h>

#include "filecache.h"

/* Read-only once the server runs. */
typedef struct httpd_config {
    const char *root;          /* the document root, as given */
    int rootfd;                /* O_PATH|O_DIRECTORY fd of the root: lookups start here */
    int autoindex;             /* --autoindex: list directories without an index.html */
    int64_t header_timeout;    /* whole request head, from its first byte (10 s) */
    int64_t keepalive_timeout; /* idle between requests (75 s, nginx's) */
    int64_t send_timeout;      /* each write step must progress within it (60 s, nginx's) */
    int64_t body_timeout;      /* a whole request body, from the end of its head (60 s) */
    int64_t drain_timeout;     /* graceful shutdown: in-flight work gets this long (30 s) */
    int64_t max_body;          /* a request body over it is 413 (1 MiB, nginx's) */
    int64_t file_cache_ttl;    /* how long an open file is reused (1 s); 0: no cache */
    unsigned max_conns;        /* open connections over all workers (10000) */
    int access_log_fd;         /* -1: no access log */
    int quiet;                 /* no startup line */
    struct weft_tls_ctx *tls;  /* --tls-cert/--tls-key: the TLS port's context, else NULL */
} httpd_config;

extern httpd_config httpd_cfg;

/* A connection, on its task's stack, linked in its worker's list for the shutdown. */
typedef struct httpd_conn_rec {
    struct httpd_conn_rec *prev, *next;
    weft_task *task;
    int fd;
    int idle; /* 1 while waiting for the first byte of a request: ended at shutdown */
} httpd_conn_rec;

/* The access log's buffer of one worker: lines are appended to `buf`; the flusher swaps it
 * with `spare` and writes the spare out while connections fill the other. */
#define HTTPD_LOG_BUF (64 * 1024)
/* The most a log buffer grows to while the flusher's write of the other one is in flight. */
#define HTTPD_LOG_BUF_MAX (4 * 1024 * 1024)
typedef struct httpd_log {
    char *buf, *spare;
    size_t len;
    size_t cap, spare_cap; /* their sizes: HTTPD_LOG_BUF, grown up to HTTPD_LOG_BUF_MAX */
    uint64_t ndropped; /* lines dropped because a buffer at its largest was full */
    weft_event kick;   /* set when buf is half full, or at the shutdown */
    int stopping;
    weft_task *flusher;
} httpd_log;

/* One worker's state. */
typedef struct httpd_shard {
    httpd_conn_rec live; /* list head */
    size_t nlive;
    int draining;          /* shutdown: finish the response in flight, then close */
    weft_promise *drained; /* resolved by the last connection to go, once draining */
    httpd_log log;
    httpd_filecache fc; /* this worker's open files (filecache.h) */
} httpd_shard;

extern weft_sharded *httpd_shards;
/* Open connections over all workers, for the cap. */
extern atomic_uint httpd_nconns;

/* The connection handlers given to weft_serve (conn.c): plain HTTP, and HTTP over TLS with
 * httpd_cfg.tls (only listened for when the build has OpenSSL and a certificate was given). */
void httpd_serve_conn(int fd, void *arg);
void httpd_serve_tls_conn(int fd, void *arg);

#endif
