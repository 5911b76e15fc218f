/* main.c: weft-httpd's command line, start-up and graceful shutdown. The server runs on
 * every core by default: each worker (shard) has its own SO_REUSEPORT listener, serves the
 * connections the kernel gives it and keeps the list of its own connections. On SIGTERM or
 * SIGINT it stops accepting, closes idle keep-alive connections, lets responses in flight
 * finish (up to --drain-timeout), flushes the access log and exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "accesslog.h"
#include "httpd.h"

#ifdef WEFT_HAVE_TLS
#include <weft_tls.h>
#endif

httpd_config httpd_cfg;
weft_sharded *httpd_shards;
atomic_uint httpd_nconns;

typedef struct options {
    const char *host;
    int port;
    unsigned workers;
    const char *tls_cert, *tls_key;
    int tls_port;
    int debug_port; /* -1: none */
} options;

static void shard_init(void *value, unsigned worker, void *arg)
{
    (void)worker, (void)arg;
    httpd_shard *sh = value;
    sh->live.prev = sh->live.next = &sh->live;
    memset(&sh->fc, 0, sizeof sh->fc);
    if (httpd_cfg.access_log_fd >= 0 && httpd_log_start(&sh->log) < 0)
        fprintf(stderr, "weft-httpd: worker %u: no memory for the access log\n", worker);
}

/* On each worker when the shards are destroyed: drain_shard has cleared the cache, unless it
 * could not be spawned there; then the sweeper is let go of before the memory goes. */
static void shard_fini(void *value, unsigned worker, void *arg)
{
    (void)worker, (void)arg;
    httpd_shard *sh = value;
    httpd_fc_abandon(&sh->fc);
}

/* On each worker at the shutdown: idle connections are closed now, busy ones close after
 * their response; past the deadline whatever is left is cancelled. Then the log is flushed.
 * An idle connection's read is ended by shutting its reading side (it reads the end of the
 * stream), not by a cancel: its last response may still be in flight behind it (io_uring's
 * sends behind), and a plain close waits for it before the process goes on to exit (the
 * close of a cancelled task lets it go on behind, and the runtime's end would cut it). */
static void *drain_shard(void *arg)
{
    int64_t deadline = *(const int64_t *)arg;
    httpd_shard *sh = weft_sharded_local(httpd_shards);
    sh->draining = 1;
    for (httpd_conn_rec *c = sh->live.next; c != &sh->live; c = c->next)
        if (c->idle && weft_shutdown(c->fd, SHUT_RD) < 0)
            weft_cancel(c->task);
    if (sh->nlive > 0 && weft_promise_create(&sh->drained) == 0) {
        weft_future *f = weft_promise_future(sh->drained);
        if (weft_await(f, NULL, deadline) < 0) {
            fprintf(stderr, "weft-httpd: worker %d: cancelling %zu connections\n",
                    weft_worker_index(), sh->nlive);
            for (httpd_conn_rec *c = sh->live.next; c != &sh->live; c = c->next)
                weft_cancel(c->task);
            weft_await(f, NULL, WEFT_FOREVER);
        }
        weft_promise_release(sh->drained);
        sh->drained = NULL;
    }
    httpd_log_stop(&sh->log);
    httpd_fc_clear(&sh->fc); /* no request is left to use a cached fd */
    return NULL;
}

static void *main_task(void *arg)
{
    const options *o = arg;
    weft_addr addr;
    if (weft_addr_ip(&addr, o->host, o->port) < 0) {
        fprintf(stderr, "weft-httpd: bad address %s port %d\n", o->host, o->port);
        return (void *)1;
    }
    int r = weft_sharded_create(&httpd_shards, sizeof(httpd_shard), shard_init, shard_fini, NULL);
    weft_server *srv = NULL;
    if (r == 0 && (r = weft_serve(&srv, &addr, 0, httpd_serve_conn, NULL)) < 0)
        weft_sharded_destroy(httpd_shards);
    if (r < 0) {
        fprintf(stderr, "weft-httpd: listen on %s:%d: %s\n", o->host, o->port, weft_strerror(r));
        return (void *)1;
    }
    weft_server *tls_srv = NULL;
    if (httpd_cfg.tls) {
        weft_addr taddr;
        r = weft_addr_ip(&taddr, o->host, o->tls_port);
        if (r == 0)
            r = weft_serve(&tls_srv, &taddr, 0, httpd_serve_tls_conn, NULL);
        if (r < 0) {
            fprintf(stderr, "weft-httpd: listen on %s:%d (TLS): %s\n", o->host, o->tls_port,
                    weft_strerror(r));
            weft_server_close(srv);
            weft_sharded_destroy(httpd_shards);
            return (void *)1;
        }
    }
    weft_addr bound;
    weft_server_addr(srv, &bound);
    unsigned n = weft_worker_count();
    if (!httpd_cfg.quiet) {
        int v6 = strchr(o->host, ':') != NULL && o->host[0] != '[';
        printf("weft-httpd: serving %s on http://%s%s%s:%d/ (%u worker%s)\n", httpd_cfg.root,
               v6 ? "[" : "", o->host, v6 ? "]" : "", weft_addr_port(&bound), n, n == 1 ? "" : "s");
        if (tls_srv) {
            weft_server_addr(tls_srv, &bound);
            printf("weft-httpd: TLS on https://%s%s%s:%d/\n", v6 ? "[" : "", o->host, v6 ? "]" : "",
                   weft_addr_port(&bound));
        }
        fflush(stdout);
    }
    if (o->debug_port >= 0) { /* /metrics, /debug/ (the console), /debug/tasks, on 127.0.0.1 */
        weft_addr dbg;
        weft_addr_ip(&dbg, "127.0.0.1", o->debug_port);
        int e = weft_debug_serve(&dbg, &dbg);
        if (e < 0)
            fprintf(stderr, "weft-httpd: debug endpoint: %s\n", weft_strerror(e));
        else if (!httpd_cfg.quiet)
            printf("weft-httpd: debug endpoint on http://127.0.0.1:%d/debug/ (and /metrics)\n",
                   weft_addr_port(&dbg));
        fflush(stdout);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = weft_signal_wait(&set, WEFT_FOREVER);
    fprintf(stderr, "weft-httpd: signal %d: stopping (%u connections open)\n", sig,
            atomic_load(&httpd_nconns));
    weft_server_close(srv);
    if (tls_srv)
        weft_server_close(tls_srv);
    int64_t deadline = weft_deadline_in(httpd_cfg.drain_timeout);
    weft_task *drainers[WEFT_WORKERS_MAX];
    for (unsigned k = 0; k < n; k++)
        if (weft_spawn_on(k, &drainers[k], drain_shard, &deadline, NULL) < 0)
            drainers[k] = NULL;
    for (unsigned k = 0; k < n; k++)
        if (drainers[k])
            weft_join(drainers[k], NULL, WEFT_FOREVER);
    weft_sharded_destroy(httpd_shards);
    fprintf(stderr, "weft-httpd: bye\n");
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-httpd [options] [DIR]\n"
               "\n"
               "Serves the files under DIR (default: the current directory) over HTTP/1.1, on\n"
               "every core. To serve a folder on http://127.0.0.1:8080/:\n"
               "\n"
               "    weft-httpd /path/to/folder\n"
               "    weft-httpd --listen 0.0.0.0 --port 8000 --autoindex ~/public\n"
               "\n"
               "options:\n"
               "  --listen HOST          address to listen on (127.0.0.1; 0.0.0.0 or :: for all)\n"
               "  --port N               TCP port (8080; 0 picks a free one, printed at start)\n"
               "  --workers N            worker threads (default: every CPU; WEFT_WORKERS too)\n"
               "  --autoindex            list directories that have no index.html\n"
               "  --access-log FILE      append a common-log-format line per request (off)\n"
               "  --header-timeout SEC   time for a whole request head, then 408 (10)\n"
               "  --keepalive-timeout SEC  idle time between requests before closing (75)\n"
               "  --send-timeout SEC     time each write step may take (60)\n"
               "  --body-timeout SEC     time for a whole request body, then 408, close (60)\n"
               "  --drain-timeout SEC    at SIGTERM/SIGINT, time left to responses in flight (30)\n"
               "  --max-conns N          open connections at most, over all workers (10000)\n"
               "  --max-body BYTES       larger request bodies are refused with 413 (1048576)\n"
               "  --file-cache SEC       reuse an open file (fd and stat) this long; 0: off (1)\n"
               "  --tls-cert FILE        certificate chain (PEM): serve HTTPS on --tls-port too\n"
               "  --tls-key FILE         its private key (PEM)\n"
               "  --tls-port N           the HTTPS port (8443; 0 picks a free one)\n"
               "  --debug-port N         weft's /metrics, /debug/ console and /debug/tasks on\n"
               "                         127.0.0.1:N (off; 0 picks a free one)\n"
               "  --quiet                no start-up line\n"
               "  -h, --help             this text\n");
}

/* Seconds as a decimal ("0.5") to nanoseconds; -1 when not a positive number. */
static int64_t seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || v > 1e6)
        return -1;
    return (int64_t)(v * 1e9);
}

/* A whole number in [lo, hi] written in decimal digits only (no sign, no space, nothing
 * after it, not past long long): strtol alone took "" as 0, and an overflowing value as the
 * largest, which --max-body then read as no limit. 0, or -1 with a message. */
static int whole_number(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long n = *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : -1;
    if (n < 0 || *end || errno == ERANGE || n < lo || n > hi) {
        fprintf(stderr, "weft-httpd: %s: not a whole number from %lld to %lld: %s\n", opt, lo, hi,
                v);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *timeout = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--autoindex") == 0) {
            httpd_cfg.autoindex = 1;
            continue;
        } else if (strcmp(a, "--quiet") == 0) {
            httpd_cfg.quiet = 1;
            continue;
        } else if (a[0] != '-') {
            httpd_cfg.root = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "weft-httpd: %s needs a value\n", a);
            return -1;
        }
        i++;
        long long n;
        if (strcmp(a, "--listen") == 0) {
            o->host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (whole_number(a, v, 0, 65535, &n) < 0)
                return -1;
            o->port = (int)n;
        } else if (strcmp(a, "--workers") == 0) {
            if (whole_number(a, v, 1, WEFT_WORKERS_MAX, &n) < 0)
                return -1;
            o->workers = (unsigned)n;
        } else if (strcmp(a, "--access-log") == 0) {
            httpd_cfg.access_log_fd = open(v, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (httpd_cfg.access_log_fd < 0) {
                perror(v);
                return -1;
            }
        } else if (strcmp(a, "--max-conns") == 0) {
            if (whole_number(a, v, 1, 10000000, &n) < 0)
                return -1;
            httpd_cfg.max_conns = (unsigned)n;
        } else if (strcmp(a, "--max-body") == 0) {
            if (whole_number(a, v, 0, LLONG_MAX, &n) < 0)
                return -1;
            httpd_cfg.max_body = n;
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            o->tls_key = v;
        } else if (strcmp(a, "--debug-port") == 0) {
            if (whole_number(a, v, 0, 65535, &n) < 0)
                return -1;
            o->debug_port = (int)n;
        } else if (strcmp(a, "--tls-port") == 0) {
            if (whole_number(a, v, 0, 65535, &n) < 0)
                return -1;
            o->tls_port = (int)n;
        } else if (strcmp(a, "--file-cache") == 0) {
            if (strcmp(v, "0") == 0)
                httpd_cfg.file_cache_ttl = 0;
            else
                timeout = &httpd_cfg.file_cache_ttl;
        } else if (strcmp(a, "--header-timeout") == 0) {
            timeout = &httpd_cfg.header_timeout;
        } else if (strcmp(a, "--keepalive-timeout") == 0) {
            timeout = &httpd_cfg.keepalive_timeout;
        } else if (strcmp(a, "--send-timeout") == 0) {
            timeout = &httpd_cfg.send_timeout;
        } else if (strcmp(a, "--body-timeout") == 0) {
            timeout = &httpd_cfg.body_timeout;
        } else if (strcmp(a, "--drain-timeout") == 0) {
            timeout = &httpd_cfg.drain_timeout;
        } else {
            fprintf(stderr, "weft-httpd: unknown option %s\n", a);
            return -1;
        }
        if (timeout && (*timeout = seconds(v)) < 0) {
            fprintf(stderr, "weft-httpd: %s: not a number of seconds: %s\n", a, v);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    httpd_cfg = (httpd_config){
        .root = ".",
        .header_timeout = 10 * WEFT_SEC,
        .keepalive_timeout = 75 * WEFT_SEC,
        .send_timeout = 60 * WEFT_SEC,
        .body_timeout = 60 * WEFT_SEC,
        .drain_timeout = 30 * WEFT_SEC,
        .max_body = 1024 * 1024,
        .file_cache_ttl = 1 * WEFT_SEC,
        .max_conns = 10000,
        .access_log_fd = -1,
    };
    options o = {"127.0.0.1", 8080, 0, NULL, NULL, 8443, -1};
    if (parse_args(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    if (!o.tls_cert != !o.tls_key) {
        fprintf(stderr, "weft-httpd: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (o.tls_cert) {
#ifdef WEFT_HAVE_TLS
        char err[256];
        int tr = weft_tls_ctx_server(&httpd_cfg.tls, o.tls_cert, o.tls_key, err, sizeof err);
        if (tr < 0) {
            fprintf(stderr, "weft-httpd: TLS: %s\n", err);
            return 2;
        }
#else
        fprintf(stderr, "weft-httpd: built without OpenSSL (libssl-dev): no TLS\n");
        return 2;
#endif
    }
    httpd_cfg.rootfd = open(httpd_cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (httpd_cfg.rootfd < 0) {
        perror(httpd_cfg.root);
        return 2;
    }
    /* Connections are fds: take the hard limit (nginx's worker_rlimit_nofile). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* SIGINT and SIGTERM are blocked before any worker thread exists, so every thread
     * inherits the mask and the main task's weft_signal_wait is the one that gets them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = o.workers;
    cfg.mode = WEFT_MODE_SHARDED;
    cfg.stack_size = 128 * 1024; /* the request path's frames reach ~30 KiB; room to spare */
    void *result = NULL;
    int r = weft_run(&cfg, main_task, &o, &result);
#ifdef WEFT_HAVE_TLS
    weft_tls_ctx_release(httpd_cfg.tls);
#endif
    if (r < 0) {
        fprintf(stderr, "weft-httpd: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
