/* load.c: weft-http-load, the HTTP client's demo: fetches a URL N times over C pooled
 * keep-alive connections (C tasks on one worker, one shared pool) and prints the latency
 * percentiles; or, with --get, fetches it once and writes the body to stdout.
 *
 *   weft-http-load [-n 1000] [-c 50] [--timeout SEC] http://127.0.0.1:8080/path
 *   weft-http-load --get http://127.0.0.1:8080/path > body
 *
 * --pause SEC makes each task sleep between its requests (the test uses it to let the server
 * close a pooled connection, which the client must then retry on a new one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "httpc.h"

typedef struct load {
    char host[256];
    int port;
    const char *path;
    long n, c;
    int get;
    int64_t timeout;
    int64_t pause; /* each task sleeps this long between its requests */
    httpc_pool *pool;
    long next;       /* the next request to start (one worker: plain fields) */
    long nok, nfail; /* 2xx responses, and the rest (errors or other statuses) */
    int64_t *lat;    /* ns per request, by index */
    int64_t bytes;
} load;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int to_stdout(void *arg, const char *data, size_t len)
{
    (void)arg;
    return fwrite(data, 1, len, stdout) == len ? 0 : -EIO;
}

static void *client(void *arg)
{
    load *l = arg;
    for (int first = 1; l->next < l->n; first = 0) {
        if (!first && l->pause > 0)
            weft_sleep(l->pause);
        if (l->next >= l->n)
            break;
        long i = l->next++;
        httpc_response resp;
        int64_t t0 = mono_ns();
        int r = httpc_request(l->pool, "GET", l->path, NULL, NULL, 0, NULL, NULL, &resp,
                              weft_deadline_in(l->timeout));
        l->lat[i] = mono_ns() - t0;
        if (r == 0 && resp.status >= 200 && resp.status < 300) {
            l->nok++;
            l->bytes += resp.body_bytes;
        } else {
            if (l->nfail++ < 5)
                fprintf(stderr, "weft-http-load: request %ld: %s (status %d)\n", i,
                        r < 0 ? weft_strerror(r) : "ok", r < 0 ? 0 : resp.status);
        }
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void *main_task(void *arg)
{
    load *l = arg;
    if (httpc_pool_create(&l->pool, l->host, l->port, l->get ? 1 : (unsigned)l->c) < 0)
        return (void *)2;
    if (l->get) {
        httpc_response resp;
        int r = httpc_request(l->pool, "GET", l->path, NULL, NULL, 0, to_stdout, NULL, &resp,
                              weft_deadline_in(l->timeout));
        fflush(stdout);
        httpc_pool_destroy(l->pool);
        if (r < 0) {
            fprintf(stderr, "weft-http-load: %s\n", weft_strerror(r));
            return (void *)1;
        }
        fprintf(stderr, "status %d, %lld bytes%s\n", resp.status, (long long)resp.body_bytes,
                resp.chunked ? ", chunked" : "");
        return resp.status >= 200 && resp.status < 300 ? NULL : (void *)1;
    }
    l->lat = calloc((size_t)l->n, sizeof *l->lat);
    weft_task **tasks = calloc((size_t)l->c, sizeof *tasks);
    if (!l->lat || !tasks)
        return (void *)2;
    int64_t t0 = mono_ns();
    for (long k = 0; k < l->c; k++)
        if (weft_spawn(&tasks[k], client, l, NULL) < 0)
            tasks[k] = NULL;
    for (long k = 0; k < l->c; k++)
        if (tasks[k])
            weft_join(tasks[k], NULL, WEFT_FOREVER);
    double secs = (double)(mono_ns() - t0) / 1e9;
    qsort(l->lat, (size_t)l->n, sizeof *l->lat, cmp_i64);
#define PCT(p) ((double)l->lat[(size_t)((double)(l->n - 1) * (p))] / 1e6)
    printf("requests %ld ok %ld failed %ld connections %ld time %.3f s rate %.0f/s bytes %lld\n",
           l->n, l->nok, l->nfail, l->c, secs, (double)l->n / secs, (long long)l->bytes);
    printf("latency ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n", PCT(0.50), PCT(0.90), PCT(0.99),
           PCT(1.0));
#undef PCT
    httpc_pool_destroy(l->pool);
    free(tasks);
    free(l->lat);
    return l->nfail ? (void *)1 : NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: weft-http-load [-n N] [-c CONNS] [--timeout SEC] [--pause SEC] [--get] "
                    "http://HOST[:PORT]/PATH\n");
    return 2;
}

/* http://host[:port][/path] into l; 0 or -1. */
static int parse_url(load *l, const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    l->path = slash ? slash : "/";
    const char *colon = memchr(h, ':', hl);
    l->port = 80;
    if (colon) {
        l->port = atoi(colon + 1);
        hl = (size_t)(colon - h);
    }
    if (hl == 0 || hl >= sizeof l->host || l->port <= 0 || l->port > 65535)
        return -1;
    memcpy(l->host, h, hl);
    l->host[hl] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    load l = {.n = 1000, .c = 50, .timeout = 10 * WEFT_SEC};
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            l.n = atol(argv[++i]);
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            l.c = atol(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            l.timeout = (int64_t)(atof(argv[++i]) * 1e9);
        else if (strcmp(argv[i], "--pause") == 0 && i + 1 < argc)
            l.pause = (int64_t)(atof(argv[++i]) * 1e9);
        else if (strcmp(argv[i], "--get") == 0)
            l.get = 1;
        else if (argv[i][0] != '-' && !url)
            url = argv[i];
        else
            return usage();
    }
    if (!url || parse_url(&l, url) < 0 || l.n <= 0 || l.c <= 0 || l.timeout <= 0)
        return usage();
    if (l.c > l.n)
        l.c = l.n;
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, &l, &result);
    if (r < 0) {
        fprintf(stderr, "weft-http-load: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
