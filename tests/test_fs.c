/* Files through weft_file_*: regular files go to the blocking pool (epoll) or the ring
 * (io_uring); a FIFO or a device opened by path is not a regular file, and takes the
 * readiness path, where deadlines and cancellation work. Run once per backend. */
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sys.h"

typedef struct fifo {
    char dir[PATH_MAX];
    char path[PATH_MAX + 16];
} fifo;

static void fifo_make(fifo *f)
{
    snprintf(f->dir, sizeof f->dir, "%s/weft-fs-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/fifo", f->dir);
    cr_assert_eq(mkfifo(f->path, 0600), 0);
}

static void fifo_remove(fifo *f)
{
    unlink(f->path);
    rmdir(f->dir);
}

typedef struct waiter {
    int fd;
    ssize_t n;
} waiter;

static void *read_forever(void *arg)
{
    waiter *w = arg;
    char buf[16];
    w->n = weft_file_read(w->fd, buf, sizeof buf, WEFT_FOREVER);
    return NULL;
}

static void *fifo_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    /* O_RDWR: opening a FIFO does not wait for a peer then (Linux). */
    int fd = weft_file_open(f.path, O_RDWR, 0, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_geq(fd, 0, "open: %s", weft_strerror(fd));
    char buf[16];
    /* Empty: the deadline ends the read. */
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, weft_deadline_in(50 * WEFT_MSEC)), -ETIMEDOUT);
    /* Cancelled while it waits. */
    waiter w = {.fd = fd, .n = 1};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, read_forever, &w, NULL), 0);
    weft_yield();
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_cancel(t), 0);
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(w.n, -ECANCELED);
    /* And data written to it is read. */
    cr_assert_eq(weft_file_write(fd, "fifo", 4, weft_deadline_in(10 * WEFT_SEC)), 4);
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, weft_deadline_in(10 * WEFT_SEC)), 4);
    cr_assert_eq(memcmp(buf, "fifo", 4), 0);
    cr_assert_eq(weft_close(fd), 0);
    fifo_remove(&f);
    return NULL;
}

Test(fs, a_fifo_read_honours_its_deadline_and_cancellation, .timeout = 60)
{
    run_main(fifo_main, NULL);
}

/* A regular file still goes where it did, and reads what was written. */
static void *regular_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/file", f.dir);
    int fd =
        weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_write(fd, "regular", 7, WEFT_FOREVER), 7);
    char buf[16];
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, WEFT_FOREVER), 7);
    cr_assert_eq(memcmp(buf, "regular", 7), 0);
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, WEFT_FOREVER), 0, "at the end");
    cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "a file is left as it was");
    cr_assert_eq(weft_close(fd), 0);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, regular_files_still_read_and_write)
{
    run_main(regular_main, NULL);
}

/* A file of `n` bytes, byte i = i % 251, just written (so in the page cache). */
static int cached_file(fifo *f, char *path, size_t pathlen, size_t n)
{
    fifo_make(f);
    snprintf(path, pathlen, "%s/cached", f->dir);
    int fd = weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)(i % 251);
    cr_assert_eq(weft_file_pwrite(fd, b, n, 0, WEFT_FOREVER), (ssize_t)n);
    free(b);
    return fd;
}

static uint64_t pool_jobs(void)
{
    weft_stats st;
    weft_stats_get(&st);
    return st.npool_jobs;
}

static void check_bytes(const char *buf, size_t n, size_t off)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(buf[i], (char)((off + i) % 251), "byte %zu", off + i);
}

/* epoll: what the page cache holds is read on the worker's thread (no blocking-pool job);
 * with the try failing (planned faults) the pool does the read and nothing is lost. */
static void *cached_main(void *arg)
{
    (void)arg;
    fifo f;
    char path[PATH_MAX + 16];
    int fd = cached_file(&f, path, sizeof path, 65536);
    static char buf[65536];
    bool epoll = strcmp(weft_backend(), "epoll") == 0;
    uint64_t jobs = pool_jobs();
    for (int i = 0; i < 16; i++) {
        size_t off = (size_t)i * 4096;
        cr_assert_eq(weft_file_pread(fd, buf, 4096, (off_t)off, WEFT_FOREVER), 4096);
        check_bytes(buf, 4096, off);
    }
    cr_assert_eq(weft_file_read(fd, buf, 1000, WEFT_FOREVER), 1000, "the file position's read");
    check_bytes(buf, 1000, 0);
    cr_assert_eq(weft_file_read(fd, buf, 1000, WEFT_FOREVER), 1000, "and it moved the position");
    check_bytes(buf, 1000, 1000);
    cr_assert_eq(weft_file_pread(fd, buf, 100, 65500, WEFT_FOREVER), 36, "short only at the end");
    if (epoll)
        cr_assert_eq(pool_jobs(), jobs, "cached reads took no pool job");
#ifdef WEFT_TESTING
    weft__sys *sys = weft__sys_current();
    if (epoll) {
        /* EAGAIN (not cached): the pool reads it. */
        cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_preadv2, 1, EAGAIN), 0);
        cr_assert_eq(weft_file_pread(fd, buf, 8192, 8192, WEFT_FOREVER), 8192);
        check_bytes(buf, 8192, 8192);
        cr_assert_eq(pool_jobs(), jobs + 1);
        /* A real error of the read is the read's result. */
        cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_preadv2, 1, EIO), 0);
        cr_assert_eq(weft_file_pread(fd, buf, 4096, 0, WEFT_FOREVER), -EIO);
        /* A file system without RWF_NOWAIT: the pool from then on, for this fd. */
        cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_preadv2, 1, EOPNOTSUPP), 0);
        cr_assert_eq(weft_file_pread(fd, buf, 4096, 4096, WEFT_FOREVER), 4096);
        check_bytes(buf, 4096, 4096);
        uint64_t before = pool_jobs();
        cr_assert_eq(weft_file_pread(fd, buf, 4096, 0, WEFT_FOREVER), 4096);
        check_bytes(buf, 4096, 0);
        cr_assert_eq(pool_jobs(), before + 1, "no more tries on this fd");
    }
#endif
    cr_assert_eq(weft_close(fd), 0);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, cached_file_reads_need_no_pool_job_on_epoll)
{
    run_main(cached_main, NULL);
}

/* O_DIRECT reads wait for the device: never on the worker's thread. */
static void *direct_main(void *arg)
{
    (void)arg;
    fifo f;
    char path[PATH_MAX + 16];
    int wfd = cached_file(&f, path, sizeof path, 65536);
    int fd = weft_file_open(path, O_RDONLY | O_DIRECT, 0, WEFT_FOREVER);
    if (fd == -EINVAL) { /* this file system has no O_DIRECT (tmpfs) */
        weft_close(wfd);
        unlink(path);
        fifo_remove(&f);
        return NULL;
    }
    cr_assert_geq(fd, 0, "%s", weft_strerror(fd));
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    uint64_t jobs = pool_jobs();
    cr_assert_eq(weft_file_pread(fd, buf, 4096, 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 4096);
    if (strcmp(weft_backend(), "epoll") == 0)
        cr_assert_eq(pool_jobs(), jobs + 1, "an O_DIRECT read went to the pool");
    free(buf);
    weft_close(fd);
    weft_close(wfd);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, direct_reads_stay_off_the_worker_thread)
{
    run_main(direct_main, NULL);
}
