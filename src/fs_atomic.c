/* weft_file_write_atomic: write a temporary file beside the target, fsync it, rename it over
 * the target, fsync the directory. Each step is one of weft's file calls, so each waits on the
 * pool or the ring, never on the worker's thread. Invariant: until the rename succeeds, the
 * target is untouched and every failure removes the temporary file before returning. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"

/* The temporary name keeps this much of the target's name, so that a file left by a crash
 * can be traced to its target, while the name stays far below NAME_MAX (255). */
#define TMP_BASE_MAX 64
/* Tries at a fresh random name when one exists already (O_EXCL): only another writer's
 * temporary file, or a leftover, could be there. */
#define TMP_TRIES 8

/* Writes all of buf to fd, looping over short writes. Returns 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = weft_file_write(fd, buf, len, deadline);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO; /* a regular file that takes nothing: do not spin */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync of the directory `dir` (a NUL-terminated path), which makes the rename durable. The
 * rename is done by then: the deadline and a cancel no longer apply (-ETIMEDOUT and
 * -ECANCELED mean "path untouched", weft.h), so where they stop weft's calls the fsync is
 * made by plain system calls on the worker's thread, which waits for it. */
static int sync_dir(weft__worker *w, const char *dir, int64_t deadline)
{
    int fd = weft_file_open(dir, O_RDONLY | O_DIRECTORY, 0, deadline);
    int r = fd < 0 ? fd : weft_file_fsync(fd, deadline);
    if (fd >= 0) {
        int c = weft_close(fd);
        if (r == 0)
            r = c;
    }
    if (r != -ETIMEDOUT && r != -ECANCELED)
        return r;
    fd = weft__sys_open(&w->sys, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    r = weft__sys_fsync(&w->sys, fd);
    weft__sys_close(&w->sys, fd);
    return r;
}

/* Whether the temporary file holds all `len` bytes, the last check before the rename: a
 * write the kernel counted but did not make must not put a cut file over the target. (io_uring's
 * ring, past RLIMIT_FSIZE, counted bytes written and left the file position behind them, so
 * the next write overwrote them: uring.c's pos_after_short_write now moves it.) -EFBIG then. */
static int check_size(weft__worker *w, int fd, size_t len)
{
    struct stat st;
    int r = weft__sys_fstat(&w->sys, fd, &st);
    if (r < 0)
        return r;
    return (uint64_t)st.st_size == (uint64_t)len ? 0 : -EFBIG;
}

int weft_file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                           int64_t deadline)
{
    if (!path || (!buf && len > 0))
        return -EINVAL;
    /* The path is read here (its last '/') before any system call sees it: one in the first
     * page is -EFAULT, as weft_fs_* and weft_file_open answer, rather than a crash. */
    if ((uintptr_t)path < 4096)
        return -EFAULT;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return -ETIMEDOUT; /* nothing here completes without a wait: as weft_fs_* */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0; /* without the '/' */
    if (*base == '\0')
        return -EINVAL; /* "dir/" names no file */
    size_t baselen = strlen(base);
    if (baselen > TMP_BASE_MAX)
        baselen = TMP_BASE_MAX;
    /* "<dir>/.<base>.<16 hex>.tmp" and, for the directory's fsync, "<dir>" ("/" or "."). */
    char *tmp = weft__malloc(w, 2 * PATH_MAX);
    if (!tmp)
        return -ENOMEM;
    char *dir = tmp + PATH_MAX;
    if (slash && dirlen == 0)
        memcpy(dir, "/", 2); /* "/name": the root */
    else if (!slash)
        memcpy(dir, ".", 2);
    else if (dirlen < PATH_MAX) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
    } else {
        weft__free(w, tmp);
        return -ENAMETOOLONG;
    }

    int fd = -EEXIST;
    for (int i = 0; i < TMP_TRIES && fd == -EEXIST; i++) {
        uint64_t rnd = weft__worker_random(weft__worker_current());
        int n = snprintf(tmp, PATH_MAX, "%.*s.%.*s.%016llx.tmp", (int)(slash ? dirlen + 1 : 0),
                         path, (int)baselen, base, (unsigned long long)rnd);
        if (n < 0 || n >= PATH_MAX) {
            weft__free(weft__worker_current(), tmp);
            return -ENAMETOOLONG;
        }
        fd = weft_file_open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode, deadline);
    }
    int r = fd;
    if (fd >= 0) {
        r = write_all(fd, buf, len, deadline);
        if (r == 0)
            r = check_size(weft__worker_current(), fd, len);
        if (r == 0)
            r = weft_file_fsync(fd, deadline);
        int c = weft_close(fd);
        if (r == 0)
            r = c; /* a file system may report a failed write-back only at close */
        if (r == 0)
            r = weft_fs_rename(tmp, path, 0, deadline);
        if (r < 0) {
            /* Plain unlink on this thread: a cancelled task's or a late call's weft calls
             * would refuse to run, and the name must not stay behind. */
            weft__worker *now = weft__worker_current();
            weft__sys_unlinkat(&now->sys, tmp, 0);
        } else {
            r = sync_dir(weft__worker_current(), dir, deadline); /* the new contents stay */
        }
    }
    weft__free(weft__worker_current(), tmp);
    return r;
}
