/* accesslog.c: see accesslog.h. Each worker owns its httpd_log: connections append to `buf`
 * and the flusher swaps it with `spare` before writing, so a write in progress never sees
 * its bytes change; all of it happens on the worker's thread, the write itself on weft's
 * blocking pool. While a write is in flight `buf` grows as lines come (to HTTPD_LOG_BUF_MAX):
 * at 64 KiB, a flood of pipelined requests filled it before the pool's thread, sharing the
 * CPUs with the load, had written the other one, and lines were dropped with the disk idle.
 * Lines of several workers interleave whole: each write is a run of complete lines to an
 * O_APPEND file. */
#include "accesslog.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Without a kick, the buffer is written at least once a second. */
#define FLUSH_PERIOD WEFT_SEC
/* Longer request lines are cut in the log (2 KiB keeps the line buffer small on the stack). */
#define LOG_LINE_MAX 2048

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = weft_file_write(httpd_cfg.access_log_fd, p, n, WEFT_FOREVER);
        if (w <= 0)
            return; /* a log that cannot be written is dropped, the server goes on */
        p += w;
        n -= (size_t)w;
    }
}

static void *flusher(void *arg)
{
    httpd_log *log = arg;
    for (;;) {
        int stopping = log->stopping;
        if (log->len > 0) {
            char *full = log->buf;
            size_t n = log->len, full_cap = log->cap;
            log->buf = log->spare;
            log->cap = log->spare_cap;
            log->spare = full;
            log->spare_cap = full_cap;
            log->len = 0;
            write_all(full, n);
            continue; /* more may have come during the write */
        }
        if (stopping)
            return NULL;
        if (weft_event_wait(&log->kick, weft_deadline_in(FLUSH_PERIOD)) == -ECANCELED)
            log->stopping = 1; /* runtime shutdown: one last pass */
    }
}

int httpd_log_start(httpd_log *log)
{
    weft_event kick = WEFT_EVENT_AUTO_INIT;
    log->kick = kick;
    log->len = 0;
    log->stopping = 0;
    log->buf = malloc(HTTPD_LOG_BUF);
    log->spare = malloc(HTTPD_LOG_BUF);
    log->cap = log->spare_cap = HTTPD_LOG_BUF;
    weft_spawn_opts opts = {.name = "log-flusher"};
    if (!log->buf || !log->spare || weft_spawn(&log->flusher, flusher, log, &opts) < 0) {
        free(log->buf);
        free(log->spare);
        log->buf = log->spare = NULL;
        log->flusher = NULL;
        return -ENOMEM;
    }
    return 0;
}

void httpd_log_stop(httpd_log *log)
{
    if (!log->flusher)
        return;
    log->stopping = 1;
    weft_event_set(&log->kick);
    weft_join(log->flusher, NULL, WEFT_FOREVER);
    log->flusher = NULL;
    if (log->ndropped)
        fprintf(stderr, "weft-httpd: access log: %llu lines dropped (its writes fell behind)\n",
                (unsigned long long)log->ndropped);
    free(log->buf);
    free(log->spare);
    log->buf = log->spare = NULL;
}

void httpd_peer_name(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(out, cap, "-");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

/* Makes `buf` hold at least `need` bytes, doubling it up to HTTPD_LOG_BUF_MAX; false when it
 * cannot (the line is then dropped). The flusher writes from `spare` only, never from `buf`,
 * so `buf` may move. */
static bool grow(httpd_log *log, size_t need)
{
    size_t cap = log->cap;
    while (cap < need && cap < HTTPD_LOG_BUF_MAX)
        cap *= 2;
    if (cap < need)
        return false;
    char *b = realloc(log->buf, cap);
    if (!b)
        return false;
    log->buf = b;
    log->cap = cap;
    return true;
}

/* "[10/Oct/2000:13:55:36 +0000]", formatted once a second per worker thread. */
static const char *log_time(void)
{
    static _Thread_local time_t cached;
    static _Thread_local char text[40];
    time_t t = time(NULL);
    if (t != cached) {
        struct tm tm;
        cached = t;
        gmtime_r(&t, &tm);
        strftime(text, sizeof text, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    }
    return text;
}

void httpd_log_request(httpd_log *log, const char *peer, http_view rl, int status, int64_t bytes)
{
    if (!log->buf)
        return;
    /* Request lines are logged up to LOG_LINE_MAX bytes, each escaped to at most 4. */
    char line[4 * LOG_LINE_MAX + 256];
    size_t n = (size_t)snprintf(line, sizeof line, "%s - - %s \"", peer, log_time());
    if (!rl.p)
        line[n++] = '-';
    size_t rlen = rl.len < LOG_LINE_MAX ? rl.len : LOG_LINE_MAX;
    for (size_t i = 0; i < rlen; i++) {
        unsigned char ch = (unsigned char)rl.p[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02X", ch);
        else
            line[n++] = (char)ch;
    }
    if (bytes > 0)
        n += (size_t)snprintf(line + n, sizeof line - n, "\" %d %lld\n", status, (long long)bytes);
    else
        n += (size_t)snprintf(line + n, sizeof line - n, "\" %d -\n", status);
    if (log->len + n > log->cap && !grow(log, log->len + n)) {
        log->ndropped++;
        weft_event_set(&log->kick);
        return;
    }
    memcpy(log->buf + log->len, line, n);
    log->len += n;
    if (log->len > HTTPD_LOG_BUF / 2)
        weft_event_set(&log->kick);
}
