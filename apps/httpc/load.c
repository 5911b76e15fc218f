/* load.c: weft-http-load, the HTTP client's demo: fetches a URL N times over C pooled
 * keep-alive connections (C tasks on one worker, one shared pool) and prints the latency
 * percentiles; or, with --get, fetches it once and writes the body to stdout.
 *
 *   weft-http-load [-n 1000] [-c 50] [--timeout SEC] http://127.0.0.1:8080/path
 *   weft-http-load --get [-L] http://127.0.0.1:8080/path > body
 *   weft-http-load --get --cacert ca.pem https://localhost:8443/path > body
 *
 * https:// URLs are verified against --cacert FILE, or the system's store; -k skips the
 * check. --close asks the server to close after each response (Connection: close), so
 * that every request pays a new connection (and, over https, a full handshake).
 *
 * -L follows up to 10 redirects (GET; --max-redirs N for another limit).
 *
 * --pause SEC makes each task sleep between its requests (the test uses it to let the server
 * close a pooled connection, which the client must then retry on a new one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include <weft_http.h>

#ifdef WEFT_HAVE_TLS
#include <weft_tls.h>
#endif

typedef struct load {
    char host[256];
    int port;
    const char *path;
    long n, c;
    int get;
    int https;
    int insecure;             /* -k: no certificate check */
    int close;                /* --close: a new connection per request */
    const char *cacert;       /* NULL: the system's store */
    struct weft_tls_ctx *tls; /* made by main before the runtime: loading a store takes ms */
    int64_t timeout;
    int64_t pause;      /* each task sleeps this long between its requests */
    unsigned redirects; /* -L, --max-redirs: redirects to follow */
    weft_http_pool *pool;
    long next;       /* the next request to start (one worker: plain fields) */
    long nok, nfail; /* 2xx responses, and the rest (errors or other statuses) */
    long nresumed;   /* new https connections that resumed a TLS session */
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
        weft_http_response resp;
        int64_t t0 = mono_ns();
        int r =
            weft_http_request(l->pool, "GET", l->path, l->close ? "Connection: close\r\n" : NULL,
                              NULL, 0, NULL, NULL, &resp, weft_deadline_in(l->timeout));
        l->lat[i] = mono_ns() - t0;
        if (r == 0 && resp.status >= 200 && resp.status < 300) {
            l->nok++;
            l->nresumed += resp.tls_resumed;
            l->bytes += resp.body_bytes;
        } else {
            if (l->nfail++ < 5)
                fprintf(stderr, "weft-http-load: request %ld: %s (status %d) %s\n", i,
                        r < 0 ? strerror(-r) : "ok", r < 0 ? 0 : resp.status,
                        r < 0 ? weft_http_pool_tls_error(l->pool) : "");
        }
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void *run(load *l);

static void *main_task(void *arg)
{
    load *l = arg;
    if (weft_http_pool_create(&l->pool, l->host, l->port, l->get ? 1 : (unsigned)l->c) < 0)
        return (void *)2;
    if (l->https && weft_http_pool_set_tls(l->pool, l->tls) < 0) {
        fprintf(stderr, "weft-http-load: built without TLS\n");
        weft_http_pool_destroy(l->pool);
        return (void *)2;
    }
    weft_http_pool_set_redirects(l->pool, l->redirects);
    void *ret = run(l);
    weft_http_pool_destroy(l->pool);
    return ret;
}

/* The fetch or the load, over the pool made by main_task. */
static void *run(load *l)
{
    if (l->get) {
        weft_http_response resp;
        int r =
            weft_http_get(l->pool, l->path, to_stdout, NULL, &resp, weft_deadline_in(l->timeout));
        fflush(stdout);
        if (r < 0) {
            fprintf(stderr, "weft-http-load: %s%s%s\n", strerror(-r), l->https ? ": " : "",
                    l->https ? weft_http_pool_tls_error(l->pool) : "");
            return (void *)1;
        }
        fprintf(stderr, "status %d, %lld bytes%s, %u redirects\n", resp.status,
                (long long)resp.body_bytes, resp.chunked ? ", chunked" : "", resp.nredirects);
        return resp.status >= 200 && resp.status < 300 ? NULL : (void *)1;
    }
    l->lat = calloc((size_t)l->n, sizeof *l->lat);
    weft_task **tasks = calloc((size_t)l->c, sizeof *tasks);
    if (!l->lat || !tasks) {
        free(l->lat);
        free(tasks);
        return (void *)2;
    }
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
    if (l->https)
        printf("tls resumed %ld\n", l->nresumed);
#undef PCT
    free(tasks);
    free(l->lat);
    return l->nfail ? (void *)1 : NULL;
}

static int usage(void)
{
    /* The test looks for --cacert here to know whether https is there. */
#ifdef WEFT_HAVE_TLS
#define URL_USAGE "[--cacert FILE] [-k] http[s]://HOST[:PORT]/PATH"
#else
#define URL_USAGE "http://HOST[:PORT]/PATH (built without TLS)"
#endif
    fprintf(stderr, "usage: weft-http-load [-n N] [-c CONNS] [--timeout SEC] [--pause SEC] [--get] "
                    "[--close] [-L] [--max-redirs N] " URL_USAGE "\n");
    return 2;
}

/* http[s]://host[:port][/path] into l; 0 or -1. */
static int parse_url(load *l, const char *url)
{
    const char *h;
    if (strncmp(url, "http://", 7) == 0)
        h = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        h = url + 8, l->https = 1;
    else
        return -1;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    l->path = slash ? slash : "/";
    const char *colon = memchr(h, ':', hl);
    l->port = l->https ? 443 : 80;
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
        else if (strcmp(argv[i], "-L") == 0)
            l.redirects = 10;
        else if (strcmp(argv[i], "--max-redirs") == 0 && i + 1 < argc)
            l.redirects = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--close") == 0)
            l.close = 1;
        else if (strcmp(argv[i], "-k") == 0 || strcmp(argv[i], "--insecure") == 0)
            l.insecure = 1;
        else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc)
            l.cacert = argv[++i];
        else if (argv[i][0] != '-' && !url)
            url = argv[i];
        else
            return usage();
    }
    if (!url || parse_url(&l, url) < 0 || l.n <= 0 || l.c <= 0 || l.timeout <= 0)
        return usage();
    if (l.c > l.n)
        l.c = l.n;
    if (l.https) {
#ifdef WEFT_HAVE_TLS
        char err[256];
        if (weft_tls_ctx_client(&l.tls, l.cacert, !l.insecure, err, sizeof err) < 0) {
            fprintf(stderr, "weft-http-load: TLS: %s\n", err);
            return 2;
        }
#endif
    }
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, &l, &result);
#ifdef WEFT_HAVE_TLS
    weft_tls_ctx_release(l.tls);
#endif
    if (r < 0) {
        fprintf(stderr, "weft-http-load: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
