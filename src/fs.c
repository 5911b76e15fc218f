/* File operations, one request each through the reactor's entry point, marked as regular-file
 * operations: the epoll backend runs them on the blocking pool (epoll calls a file always
 * ready, so a read would block the worker), io_uring on its ring (stat excepted, which stays
 * on the pool). The file-system tree's calls (weft_fs_*) and truncate go the same way: on the
 * ring where the kernel has the opcode (mkdir, unlink, rmdir, rename, link, symlink), else on
 * the pool. Unlike the older weft_file_* calls, these end before they start when the deadline
 * has passed, so that the outcome never depends on which thread got to the request first. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
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
    /* A buffer in the first page (NULL) with a length: -EFAULT before any I/O, on both
     * backends, as the socket calls answer it (weft.h). read(2) at the end of a file answers 0
     * without looking at the buffer, and so did epoll's page-cache read, where io_uring's
     * checks said -EFAULT. */
    if ((q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE) && q->len && (uintptr_t)q->buf < 4096)
        return -EFAULT;
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

/* The tree's calls: fs() after the deadline check. None of them can complete without a wait
 * (a pool job or a ring round trip), so a deadline that has passed is -ETIMEDOUT before
 * anything is done; after that, -ETIMEDOUT or -ECANCELED still means not done (a pool job is
 * withdrawn only while queued; a ring operation that completed despite its cancel returns
 * its own result). */
static int fs_tree(weft__ioreq *q, int64_t deadline)
{
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        weft_task *t;
        int err;
        /* -EPERM outside a task and -ECANCELED in a cancelled one still come first. */
        if (!weft__blocking_begin(&t, true, &err))
            return err;
        return -ETIMEDOUT;
    }
    return (int)fs(q, deadline);
}

int weft_fs_mkdir(const char *path, mode_t mode, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_MKDIR, .path = path, .mode = mode};
    return fs_tree(&q, deadline);
}

int weft_fs_rmdir(const char *path, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_UNLINK, .path = path, .flags = AT_REMOVEDIR};
    return fs_tree(&q, deadline);
}

int weft_fs_unlink(const char *path, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_UNLINK, .path = path};
    return fs_tree(&q, deadline);
}

int weft_fs_rename(const char *from, const char *to, unsigned flags, int64_t deadline)
{
    if (!from || !to || (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)))
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_RENAME, .path = from, .path2 = to, .flags = (int)flags};
    return fs_tree(&q, deadline);
}

int weft_fs_link(const char *from, const char *to, int64_t deadline)
{
    if (!from || !to)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_LINK, .path = from, .path2 = to};
    return fs_tree(&q, deadline);
}

int weft_fs_symlink(const char *target, const char *linkpath, int64_t deadline)
{
    if (!target || !linkpath)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_SYMLINK, .path = target, .path2 = linkpath};
    return fs_tree(&q, deadline);
}

ssize_t weft_fs_readlink(const char *path, char *buf, size_t len, int64_t deadline)
{
    if (!path || !buf || len == 0)
        return -EINVAL;
    /* The kernel takes the length as an int (readlinkat's bufsiz: EINVAL when it is not
     * positive, a cut target when it wraps): a larger buffer is used up to INT_MAX bytes,
     * which holds any target (PATH_MAX). */
    if (len > INT_MAX)
        len = INT_MAX;
    weft__ioreq q = {.op = WEFT__IO_READLINK, .path = path, .out = buf, .len = len};
    int r = fs_tree(&q, deadline);
    if (r < 0)
        return r;
    /* readlink(2) cuts a long target silently: one that fills the buffer may have been cut,
     * and leaves no room for the terminating NUL either way. */
    if ((size_t)r >= len)
        return -ENAMETOOLONG;
    buf[r] = '\0';
    return r;
}

int weft_fs_truncate(const char *path, off_t len, int64_t deadline)
{
    if (!path || len < 0)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_TRUNCATE, .path = path, .off = len};
    return fs_tree(&q, deadline);
}

int weft_file_truncate(int fd, off_t len, int64_t deadline)
{
    if (fd < 0)
        return -EBADF;
    if (len < 0)
        return -EINVAL;
    weft__ioreq q = {.op = WEFT__IO_FTRUNCATE, .fd = fd, .off = len};
    return fs_tree(&q, deadline);
}
