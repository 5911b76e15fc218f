/* File operations. Regular files are always "ready" to epoll, so with the epoll backend each
 * call runs the system call on a blocking-pool thread (which reads errno there, on the thread
 * that set it); with io_uring they are ring operations, stat excepted. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "io/backend.h"

typedef struct fs_call {
    int op;
    int fd;
    int flags;
    mode_t mode;
    const char *path;
    void *buf;
    size_t len;
    off_t off;
    struct stat *st;
    ssize_t result; /* >= 0 or -errno, set on the pool thread */
} fs_call;

enum { OP_OPEN, OP_READ, OP_WRITE, OP_PREAD, OP_PWRITE, OP_FSYNC, OP_STAT };

static void *fs_run(void *arg)
{
    fs_call *c = arg;
    ssize_t r;
    do {
        switch (c->op) {
        case OP_OPEN:
            r = open(c->path, c->flags | O_CLOEXEC, c->mode);
            break;
        case OP_READ:
            r = read(c->fd, c->buf, c->len);
            break;
        case OP_WRITE:
            r = write(c->fd, c->buf, c->len);
            break;
        case OP_PREAD:
            r = pread(c->fd, c->buf, c->len, c->off);
            break;
        case OP_PWRITE:
            r = pwrite(c->fd, c->buf, c->len, c->off);
            break;
        case OP_FSYNC:
            r = fsync(c->fd);
            break;
        default:
            r = stat(c->path, c->st);
            break;
        }
    } while (r < 0 && errno == EINTR);
    c->result = r < 0 ? -errno : r;
    return NULL;
}

/* With a completion backend the ring does the call (stat excepted: it stays on the pool). */
static ssize_t ring(weft__worker *w, fs_call *c, int64_t deadline)
{
    weft__ioreq q = {.fd = c->fd, .buf = c->buf, .len = c->len, .off = -1};
    switch (c->op) {
    case OP_OPEN:
        q.op = WEFT__IO_OPEN;
        q.path = c->path;
        q.flags = c->flags;
        q.mode = c->mode;
        break;
    case OP_READ:
    case OP_PREAD:
        q.op = WEFT__IO_READ;
        q.off = c->op == OP_PREAD ? (int64_t)c->off : -1;
        break;
    case OP_WRITE:
    case OP_PWRITE:
        q.op = WEFT__IO_WRITE;
        q.off = c->op == OP_PWRITE ? (int64_t)c->off : -1;
        break;
    default:
        q.op = WEFT__IO_FSYNC;
        break;
    }
    return w->io->ops->submit(w->io, &q, deadline);
}

static ssize_t fs(fs_call *c, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = weft__blocking_task(w);
    if (t && c->op != OP_STAT && w->io->ops->submit) {
        if (t->flags & WEFT__T_CANCELLED)
            return -ECANCELED;
        return ring(w, c, deadline);
    }
    int r = weft_blocking(fs_run, c, NULL, deadline);
    return r < 0 ? r : c->result;
}

int weft_file_open(const char *path, int flags, mode_t mode, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    fs_call c = {.op = OP_OPEN, .path = path, .flags = flags, .mode = mode};
    ssize_t r = fs(&c, deadline);
    weft__worker *w = weft__worker_current();
    if (r >= 0 && w)
        weft__io_fd_fresh(w, (int)r);
    return (int)r;
}

ssize_t weft_file_read(int fd, void *buf, size_t len, int64_t deadline)
{
    fs_call c = {.op = OP_READ, .fd = fd, .buf = buf, .len = len};
    return fs(&c, deadline);
}

ssize_t weft_file_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    fs_call c = {.op = OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len};
    return fs(&c, deadline);
}

ssize_t weft_file_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline)
{
    fs_call c = {.op = OP_PREAD, .fd = fd, .buf = buf, .len = len, .off = off};
    return fs(&c, deadline);
}

ssize_t weft_file_pwrite(int fd, const void *buf, size_t len, off_t off, int64_t deadline)
{
    fs_call c = {.op = OP_PWRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = off};
    return fs(&c, deadline);
}

int weft_file_fsync(int fd, int64_t deadline)
{
    fs_call c = {.op = OP_FSYNC, .fd = fd};
    return (int)fs(&c, deadline);
}

int weft_file_stat(const char *path, struct stat *st, int64_t deadline)
{
    if (!path || !st)
        return -EINVAL;
    fs_call c = {.op = OP_STAT, .path = path, .st = st};
    return (int)fs(&c, deadline);
}
