/* The runtime's log. The function and level are the runtime's configuration (no process-wide
 * state: each runtime logs where its program said); without a function, a line goes to
 * stderr in one write, so lines of several threads do not interleave. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"

ssize_t weft__write_quiet(int fd, const void *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno != ENOTSOCK)
        return -errno;
    /* Not a socket: a write to a pipe or FIFO whose readers have gone raises SIGPIPE, at the
     * writing thread, which the program's default action would end with the process (a dump
     * into a pipe its reader closed, the stall report into a closed stderr). Blocked here,
     * it stays pending, and is taken back, unless one was pending already: a SIGPIPE the
     * program blocked itself, which stays its own. */
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    bool had_one = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    n = write(fd, buf, len);
    int e = n < 0 ? errno : 0;
    if (e == EPIPE && !had_one) {
        const struct timespec now = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n >= 0 ? n : -e;
}

/* The level a line must be at or above: the configuration's, or without one the default's. */
static int log_limit(const weft_config *cfg)
{
    return cfg ? cfg->log_level : WEFT_LOG_WARN;
}

static void log_to(const weft_config *cfg, int level, const char *text, size_t len)
{
    if (level > log_limit(cfg))
        return;
    if (cfg && cfg->log) {
        /* The callback gets a NUL-terminated copy, without the last newline. */
        size_t n = len && text[len - 1] == '\n' ? len - 1 : len;
        char small[1024], *msg = n < sizeof small ? small : malloc(n + 1);
        if (!msg)
            return;
        memcpy(msg, text, n);
        msg[n] = '\0';
        cfg->log(cfg->log_arg, level, msg);
        if (msg != small)
            free(msg);
        return;
    }
    int saved = errno;
    for (size_t off = 0; off < len;) {
        ssize_t w = weft__write_quiet(STDERR_FILENO, text + off, len - off);
        if (w == -EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    errno = saved;
}

void weft__log(const weft__runtime *rt, int level, const char *text, size_t len)
{
    log_to(rt ? &rt->cfg : NULL, level, text, len);
}

static void vlog_to(const weft_config *cfg, int level, const char *fmt, va_list ap)
{
    if (level > log_limit(cfg))
        return;
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf) { /* cut: said, and the line still ends (every message does) */
        n = (int)sizeof buf - 1;
        memcpy(buf + n - 4, "...\n", 4);
    }
    log_to(cfg, level, buf, (size_t)n);
}

void weft__logf(const weft__runtime *rt, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(rt ? &rt->cfg : NULL, level, fmt, ap);
    va_end(ap);
}

void weft__logf_cfg(const weft_config *cfg, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(cfg, level, fmt, ap);
    va_end(ap);
}
