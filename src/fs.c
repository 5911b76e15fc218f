/* File operations, one request each through the reactor's entry point, marked as regular-file
 * operations: the epoll backend runs them on the blocking pool (epoll calls a file always
 * ready, so a read would block the worker), io_uring on its ring (stat excepted, which stays
 * on the pool). */
#include <errno.h>
#include <sys/stat.h>

#include "core.h"
#include "io/backend.h"

static ssize_t fs(weft__ioreq *q, int64_t deadline)
{
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    q->opts |= WEFT__IOQ_FILE;
    return weft__io_submit(w, q, deadline);
}

int weft_file_open(const char *path, int flags, mode_t mode, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_OPEN, .path = path, .flags = flags, .mode = mode};
    ssize_t r = fs(&q, deadline);
    weft__worker *w = weft__worker_current();
    if (r >= 0 && w)
        weft__io_fd_fresh(w, (int)r);
    return (int)r;
}

ssize_t weft_file_read(int fd, void *buf, size_t len, int64_t deadline)
{
    weft__ioreq q = {.op = WEFT__IO_READ, .fd = fd, .buf = buf, .len = len, .off = -1};
    return fs(&q, deadline);
}

ssize_t weft_file_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    weft__ioreq q = {.op = WEFT__IO_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = -1};
    return fs(&q, deadline);
}

ssize_t weft_file_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline)
{
    if (off < 0)
        return -EINVAL; /* -1 would mean "the file position" to the request */
    weft__ioreq q = {.op = WEFT__IO_READ, .fd = fd, .buf = buf, .len = len, .off = off};
    return fs(&q, deadline);
}

ssize_t weft_file_pwrite(int fd, const void *buf, size_t len, off_t off, int64_t deadline)
{
    if (off < 0)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = off};
    return fs(&q, deadline);
}

int weft_file_fsync(int fd, int64_t deadline)
{
    weft__ioreq q = {.op = WEFT__IO_FSYNC, .fd = fd};
    return (int)fs(&q, deadline);
}

int weft_file_stat(const char *path, struct stat *st, int64_t deadline)
{
    if (!path || !st)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_STAT, .path = path, .st = st};
    return (int)fs(&q, deadline);
}
