/* The runtime's log (log.c): the lines weft writes of its own accord (a fallback from
 * io_uring to epoll, a task that got no stack, a stall, a deadlock) go to the program's log
 * function when the configuration has one, else to stderr, at or above the configured level. */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include "internal.h"

/* Logs `len` bytes of `text` (one or more lines, each ending in '\n') at `level`
 * (WEFT_LOG_*). Any thread of the runtime, the watchdog's included. With rt NULL (a call
 * outside every runtime, where the object's own runtime may be gone): stderr, at the default
 * level (warnings and errors). */
void weft__log(const weft__runtime *rt, int level, const char *text, size_t len);
/* The same, formatted (at most 1 KiB: a longer message is cut, ending in "...\n"). */
void weft__logf(const weft__runtime *rt, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* weft__logf before the runtime exists (weft_run reading the environment): through `cfg`'s
 * log function and at its level, which must be resolved already (not 0). */
void weft__logf_cfg(const weft_config *cfg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* write(2) of up to `len` bytes of `buf` to `fd` that raises no SIGPIPE, whatever the
 * program made of the signal (weft_config.ignore_sigpipe off): a socket is written with
 * MSG_NOSIGNAL, anything else with SIGPIPE blocked on the calling thread meanwhile, and the
 * SIGPIPE a write to a pipe without readers raised is taken back. Returns the bytes written,
 * or -errno (-EPIPE: the reader has gone). Any thread (not a signal handler). */
ssize_t weft__write_quiet(int fd, const void *buf, size_t len);

#endif
