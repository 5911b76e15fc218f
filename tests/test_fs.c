/* Files through weft_file_*: regular files go to the blocking pool (epoll) or the ring
 * (io_uring); a FIFO or a device opened by path is not a regular file, and takes the
 * readiness path, where deadlines and cancellation work. Run once per backend. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static bool on_epoll(void)
{
    return strcmp(weft_backend(), "epoll") == 0;
}

/* A passed deadline on a file call that would block a thread: -ETIMEDOUT with nothing done,
 * every time, or (io_uring, where the ring may finish it as it submits it) done in full. On
 * epoll the call went to the pool anyway, and ran or not as a pool thread took it before the
 * wait gave up: some writes landed behind their -ETIMEDOUT. */
static void *passed_file_main(void *arg)
{
    (void)arg;
    fifo f;
    char path[PATH_MAX + 16];
    int fd = cached_file(&f, path, sizeof path, 16);
    struct stat st;
    for (int i = 0; i < 20; i++) {
        ssize_t w = weft_file_pwrite(fd, "zz", 2, 16 + 2 * i, weft_now() - 1);
        cr_assert(w == -ETIMEDOUT || (w == 2 && !on_epoll()), "pwrite: %zd", w);
        cr_assert_eq(fstat(fd, &st), 0);
        /* io_uring: the writes before this one may have been done in full. */
        cr_assert_eq(st.st_size, 16 + 2 * i + (w == 2 ? 2 : 0), "a -ETIMEDOUT wrote nothing");
        if (w != 2)
            break;
    }
    int s = weft_file_fsync(fd, weft_now() - 1);
    cr_assert(s == -ETIMEDOUT || (s == 0 && !on_epoll()), "fsync: %d", s);
    char b[4];
    cr_assert_eq(weft_file_pread(fd, b, 4, 0, weft_now() - 1), 4, "a cached read completes");
    weft_close(fd);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, a_passed_deadline_on_a_file_call_does_nothing_or_all)
{
    run_main(passed_file_main, NULL);
}

/* O_DIRECT reads wait for the device: never on the worker's thread. On epoll those at an
 * offset go to Linux AIO (io/aio.c): queued, submitted together before the next poll, reaped
 * through an eventfd; no pool job. */
typedef struct direct_file {
    fifo f;
    char path[PATH_MAX + 16];
    int wfd, fd; /* fd: O_DIRECT, or -1 where the file system has no O_DIRECT (tmpfs) */
} direct_file;

static void direct_close(direct_file *d)
{
    if (d->fd >= 0)
        weft_close(d->fd);
    weft_close(d->wfd);
    unlink(d->path);
    fifo_remove(&d->f);
}

/* Makes the file and its O_DIRECT fd. False (everything removed again) where the file system
 * has no O_DIRECT (tmpfs), or, with `epoll_only`, on another backend: the test has nothing
 * to check then. */
static bool direct_open(direct_file *d, bool epoll_only)
{
    d->wfd = cached_file(&d->f, d->path, sizeof d->path, 65536);
    d->fd = weft_file_open(d->path, O_RDONLY | O_DIRECT, 0, WEFT_FOREVER);
    if (d->fd != -EINVAL)
        cr_assert_geq(d->fd, 0, "%s", weft_strerror(d->fd));
    else
        d->fd = -1;
    if (d->fd >= 0 && (!epoll_only || on_epoll()))
        return true;
    direct_close(d);
    return false;
}

typedef struct direct_reader {
    int fd;
    int first; /* the first of its blocks */
    int bad;   /* reads that did not return the block's bytes */
} direct_reader;

/* Reads blocks first, first + 16, ... of the 16 in the file, 4 KiB each, checking them. */
static void *direct_reads(void *arg)
{
    direct_reader *r = arg;
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    for (int k = 0; k < 4; k++) {
        int b = (r->first + k * 5) % 16;
        ssize_t n = weft_file_pread(r->fd, buf, 4096, (off_t)b * 4096, WEFT_FOREVER);
        bool ok = n == 4096;
        for (size_t i = 0; ok && i < 4096; i++)
            ok = ((char *)buf)[i] == (char)(((size_t)b * 4096 + i) % 251);
        r->bad += !ok;
    }
    free(buf);
    return NULL;
}

static void *direct_main(void *arg)
{
    (void)arg;
    direct_file d;
    if (!direct_open(&d, false))
        return NULL;
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 8192), 0);
    uint64_t jobs = pool_jobs();
    cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 4096);
    /* 16 tasks with 4 reads each in flight together. */
    direct_reader rs[16];
    weft_task *ts[16];
    for (int i = 0; i < 16; i++) {
        rs[i] = (direct_reader){.fd = d.fd, .first = i};
        cr_assert_eq(weft_spawn(&ts[i], direct_reads, &rs[i], NULL), 0);
    }
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
        cr_assert_eq(rs[i].bad, 0, "reader %d got wrong bytes", i);
    }
    /* Short only at the end of the file, as pread. */
    cr_assert_eq(weft_file_pread(d.fd, buf, 8192, 65536 - 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 65536 - 4096);
    cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 65536, WEFT_FOREVER), 0);
    if (on_epoll())
        cr_assert_eq(pool_jobs(), jobs, "an O_DIRECT read went to the pool");
    /* A misaligned buffer: pread's own answer (from AIO's completion, or from the pool where
     * io_submit refuses it). */
    ssize_t want = pread(d.fd, (char *)buf + 1, 4096, 0);
    cr_assert_eq(want, -1);
    cr_assert_eq(weft_file_pread(d.fd, (char *)buf + 1, 4096, 0, WEFT_FOREVER), -errno);
    if (on_epoll()) {
        /* A deadline already passed: nothing read. */
        memset(buf, 0, 4096);
        cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 0, weft_now() - 1), -ETIMEDOUT);
        cr_assert_eq(((char *)buf)[1], 0);
    }
    free(buf);
    direct_close(&d);
    return NULL;
}

Test(fs, direct_reads_stay_off_the_worker_thread)
{
    run_main(direct_main, NULL);
}

typedef struct cancelled_read {
    int fd;
    void *buf;
    ssize_t n;
} cancelled_read;

static void *read_once(void *arg)
{
    cancelled_read *c = arg;
    c->n = weft_file_pread(c->fd, c->buf, 4096, 8192, WEFT_FOREVER);
    return NULL;
}

static void *read_cancelled(void *arg)
{
    cr_assert_eq(weft_cancel(weft_self()), 0);
    return read_once(arg);
}

/* A cancel that comes after the read was taken does not end it: the kernel writes into the
 * buffer until the completion, so the read waits for it and returns its result. On epoll the
 * reader is parked with its read queued (submitted at the next poll) when main cancels it. */
static void *direct_cancel_main(void *arg)
{
    (void)arg;
    direct_file d;
    if (!direct_open(&d, true))
        return NULL;
    cancelled_read c = {.fd = d.fd};
    cr_assert_eq(posix_memalign(&c.buf, 4096, 4096), 0);
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, read_once, &c, &pin), 0);
    cr_assert_eq(weft_yield(), 0); /* the reader runs, queues its read and parks */
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(c.n, 4096, "the read ran to its end: %zd", c.n);
    check_bytes(c.buf, 4096, 8192);
    /* A task cancelled before its read does none. */
    memset(c.buf, 0, 4096);
    cr_assert_eq(weft_spawn(&t, read_cancelled, &c, &pin), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(c.n, -ECANCELED);
    cr_assert_eq(((char *)c.buf)[1], 0, "nothing was read");
    free(c.buf);
    direct_close(&d);
    return NULL;
}

Test(fs, a_direct_read_taken_by_the_kernel_ends_with_its_result_despite_a_cancel)
{
    run_main(direct_cancel_main, NULL);
}

typedef struct reuse_race {
    int fd; /* the O_DIRECT fd, closed by the closer while the reader's read is queued */
    const char *other;
    int reopened; /* the number the closer's open got */
} reuse_race;

static void *close_and_reopen(void *arg)
{
    reuse_race *r = arg;
    cr_assert_eq(weft_close(r->fd), 0);
    r->reopened = open(r->other, O_RDONLY | O_CLOEXEC);
    return NULL;
}

/* A read queued (epoll: submitted at the next poll) when another task closes its fd, and the
 * number is taken by another file before the poll: -EBADF, as for any waiter of a closed fd,
 * never the other file's bytes (nor, were it a pipe, a read that blocks the worker). */
static void *direct_close_race_main(void *arg)
{
    (void)arg;
    direct_file d;
    if (!direct_open(&d, false))
        return NULL;
    char other[PATH_MAX + 32];
    snprintf(other, sizeof other, "%s/other", d.f.dir);
    int ofd = open(other, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(ofd, 0);
    cr_assert_eq(write(ofd, "OTHER FILE BYTES", 16), 16);
    close(ofd);
    cancelled_read c = {.fd = d.fd};
    cr_assert_eq(posix_memalign(&c.buf, 4096, 4096), 0);
    memset(c.buf, 0, 4096);
    reuse_race r = {.fd = d.fd, .other = other, .reopened = -1};
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    weft_task *reader, *closer;
    cr_assert_eq(weft_spawn(&reader, read_once, &c, &pin), 0);
    cr_assert_eq(weft_spawn(&closer, close_and_reopen, &r, &pin), 0);
    cr_assert_eq(weft_join(closer, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(reader, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(r.reopened, d.fd, "the other file took the number");
    cr_assert_eq(c.n, -EBADF, "the read of the closed fd: %zd", c.n);
    /* io_uring submits the queued read as the close cancels it, while the number is still
     * the O_DIRECT file's: the read may land that file's bytes before the cancel finds it.
     * It never reads the file that took the number after the close. */
    const char *got = c.buf;
    bool untouched = true, original = true;
    for (size_t i = 0; i < 4096; i++) {
        untouched = untouched && got[i] == 0;
        original = original && got[i] == (char)((8192 + i) % 251);
    }
    cr_assert(untouched || original, "the buffer holds neither nothing nor the closed file's "
                                     "bytes (first: %02x)", (unsigned char)got[0]);
    cr_assert_neq(memcmp(got, "OTHER FILE BYTES", 16), 0, "none of the other file's bytes");
    close(r.reopened);
    unlink(other);
    free(c.buf);
    d.fd = -1; /* closed by the closer */
    direct_close(&d);
    return NULL;
}

Test(fs, a_direct_read_of_an_fd_closed_before_it_was_submitted_is_ebadf)
{
    run_main(direct_close_race_main, NULL);
}

/* O_DIRECT writes at an offset: on epoll through AIO with RWF_NOWAIT, so one that would wait
 * inside io_submit (extending the file, allocating blocks) is refused there and written by
 * the pool. Either way the bytes land, as pwrite's would. */
static void fill_block(char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 7 + seed) % 253);
}

typedef struct direct_writer {
    int fd;
    int block;
    ssize_t n;
} direct_writer;

static void *direct_write_one(void *arg)
{
    direct_writer *dw = arg;
    void *b = NULL;
    cr_assert_eq(posix_memalign(&b, 4096, 4096), 0);
    fill_block(b, 4096, (unsigned)dw->block + 100);
    dw->n = weft_file_pwrite(dw->fd, b, 4096, (off_t)dw->block * 4096, WEFT_FOREVER);
    free(b);
    return NULL;
}

static void *direct_write_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/direct", f.dir);
    int fd = weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600, WEFT_FOREVER);
    if (fd == -EINVAL) { /* no O_DIRECT here (tmpfs) */
        fifo_remove(&f);
        return NULL;
    }
    cr_assert_geq(fd, 0, "%s", weft_strerror(fd));
    char *b = NULL, *got = NULL;
    cr_assert_eq(posix_memalign((void **)&b, 4096, 65536), 0);
    cr_assert_eq(posix_memalign((void **)&got, 4096, 65536), 0);
    /* Appending: the file grows (refused by NOWAIT where the file system must allocate). */
    fill_block(b, 65536, 1);
    cr_assert_eq(weft_file_pwrite(fd, b, 65536, 0, WEFT_FOREVER), 65536);
    cr_assert_eq(weft_file_fsync(fd, WEFT_FOREVER), 0);
    /* Overwrites of allocated blocks from 16 tasks at once. */
    direct_writer ws[16];
    weft_task *ts[16];
    for (int i = 0; i < 16; i++) {
        ws[i] = (direct_writer){.fd = fd, .block = i};
        cr_assert_eq(weft_spawn(&ts[i], direct_write_one, &ws[i], NULL), 0);
    }
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
        cr_assert_eq(ws[i].n, 4096, "writer %d: %zd", i, ws[i].n);
    }
    cr_assert_eq(pread(fd, got, 65536, 0), 65536);
    for (int i = 0; i < 16; i++) {
        fill_block(b, 4096, (unsigned)i + 100);
        cr_assert_eq(memcmp(got + i * 4096, b, 4096), 0, "block %d", i);
    }
    /* One by main, whose worker's calls are counted: it went to io_submit on epoll. */
#ifdef WEFT_TESTING
    weft__sys *sys = weft__sys_current();
    uint64_t submits = sys->ncalls[WEFT__SYS_io_submit];
#endif
    fill_block(b, 4096, 7);
    cr_assert_eq(weft_file_pwrite(fd, b, 4096, 8192, WEFT_FOREVER), 4096);
    cr_assert_eq(pread(fd, got, 4096, 8192), 4096);
    cr_assert_eq(memcmp(got, b, 4096), 0);
#ifdef WEFT_TESTING
    if (on_epoll())
        cr_assert_gt(sys->ncalls[WEFT__SYS_io_submit], submits, "the write went to AIO first");
#endif
    /* A misaligned buffer: pwrite's own answer; the file keeps its bytes. */
    errno = 0;
    cr_assert_eq(pwrite(fd, b + 1, 4096, 0), -1);
    cr_assert_eq(weft_file_pwrite(fd, b + 1, 4096, 0, WEFT_FOREVER), -errno);
    cr_assert_eq(pread(fd, got, 4096, 0), 4096);
    fill_block(b, 4096, 100);
    cr_assert_eq(memcmp(got, b, 4096), 0, "block 0 untouched");
    free(b);
    free(got);
    weft_close(fd);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, direct_writes_land_through_aio_or_the_pool)
{
    run_main(direct_write_main, NULL);
}

#ifdef WEFT_TESTING
/* The kernel's refusals (planned faults) on epoll: the pool reads instead, and nothing is
 * lost or hangs. */
static void *direct_faults_main(void *arg)
{
    (void)arg;
    direct_file d;
    if (!direct_open(&d, true))
        return NULL;
    weft__sys *sys = weft__sys_current();
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    uint64_t jobs = pool_jobs();
    /* io_submit: EAGAIN (no room in the kernel) goes to the pool; EBADF is the fd's answer. */
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_io_submit, 1, EAGAIN), 0);
    cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 4096);
    cr_assert_eq(pool_jobs(), jobs + 1);
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_io_submit, 1, EBADF), 0);
    cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 4096, WEFT_FOREVER), -EBADF);
    /* A write refused (as RWF_NOWAIT refuses one that would wait): the pool writes it. */
    int wfd = weft_file_open(d.path, O_WRONLY | O_DIRECT, 0, WEFT_FOREVER);
    cr_assert_geq(wfd, 0);
    jobs = pool_jobs(); /* after the open, a pool job on epoll */
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_io_submit, 1, EAGAIN), 0);
    cr_assert_eq(weft_file_pwrite(wfd, buf, 4096, 4096, WEFT_FOREVER), 4096); /* its own bytes */
    cr_assert_eq(pool_jobs(), jobs + 1);
    weft_close(wfd);
    /* io_getevents failing once: the completion is reaped at the next poll. */
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_io_getevents, 1, EINTR), 0);
    cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 12288, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 12288);
    cr_assert_eq(pool_jobs(), jobs + 1, "AIO took the other reads");
    free(buf);
    direct_close(&d);
    return NULL;
}

Test(fs, direct_reads_survive_the_kernels_refusals)
{
    run_main(direct_faults_main, NULL);
}

/* No AIO context (io_setup fails: a seccomp filter, fs.aio-max-nr reached): the pool reads,
 * for every read of the worker. */
static void *direct_no_aio_main(void *arg)
{
    (void)arg;
    if (!on_epoll())
        return NULL;
    weft__sys *sys = weft__sys_current();
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_io_setup, 1, ENOSYS), 0);
    direct_file d;
    if (!direct_open(&d, false)) {
        weft__sys_fail(sys, WEFT__SYS_io_setup, 0, 0);
        return NULL;
    }
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    uint64_t jobs = pool_jobs();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_file_pread(d.fd, buf, 4096, 4096 * i, WEFT_FOREVER), 4096);
        check_bytes(buf, 4096, 4096 * (size_t)i);
    }
    cr_assert_eq(pool_jobs(), jobs + 3);
    cr_assert_eq(sys->ncalls[WEFT__SYS_io_setup], 0, "the planned failure was the one try");
    free(buf);
    direct_close(&d);
    return NULL;
}

Test(fs, direct_reads_without_aio_go_to_the_pool)
{
    run_main(direct_no_aio_main, NULL);
}
#endif

/* ---- Found by a hostile review of the file calls ---------------------------------------- */

/* O_DIRECT reads and writes at the file position move it, as read(2) and write(2) do, and two
 * tasks writing at once get a block each (io_uring's direct read and write at offset -1
 * neither used nor moved the position: two reads got the first block twice, two writes
 * overwrote each other and a file of two blocks kept one). */
typedef struct pos_writer {
    int fd;
    char c;
    ssize_t n;
} pos_writer;

static void *direct_pos_write(void *arg)
{
    pos_writer *p = arg;
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    memset(buf, p->c, 4096);
    p->n = weft_file_write(p->fd, buf, 4096, WEFT_FOREVER);
    free(buf);
    return NULL;
}

static void *direct_position_main(void *arg)
{
    (void)arg;
    fifo f;
    char path[PATH_MAX + 16];
    int wfd = cached_file(&f, path, sizeof path, 65536);
    int fd = weft_file_open(path, O_RDWR | O_DIRECT, 0, WEFT_FOREVER);
    if (fd == -EINVAL) { /* no O_DIRECT on this file system (tmpfs) */
        weft_close(wfd);
        unlink(path);
        fifo_remove(&f);
        return NULL;
    }
    cr_assert_geq(fd, 0, "%s", weft_strerror(fd));
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    cr_assert_eq(weft_file_read(fd, buf, 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 0);
    cr_assert_eq(weft_file_read(fd, buf, 4096, WEFT_FOREVER), 4096);
    check_bytes(buf, 4096, 4096);
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 8192);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    pos_writer ws[2] = {{fd, 'x', 0}, {fd, 'y', 0}};
    weft_task *ts[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_spawn(&ts[i], direct_pos_write, &ws[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
        cr_assert_eq(ws[i].n, 4096);
    }
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 8192, "each write moved the position");
    char a, b;
    cr_assert_eq(pread(wfd, &a, 1, 0), 1);
    cr_assert_eq(pread(wfd, &b, 1, 4096), 1);
    cr_assert((a == 'x' && b == 'y') || (a == 'y' && b == 'x'), "blocks %c %c", a, b);
    free(buf);
    weft_close(fd);
    weft_close(wfd);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, direct_reads_and_writes_at_the_file_position_move_it)
{
    run_main(direct_position_main, NULL);
}

/* pread and pwrite on a pipe or a socket: -ESPIPE, nothing read or written (io_uring took the
 * offset for none and read or wrote the stream). */
static void *espipe_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    char c = 'z';
    cr_assert_eq(weft_file_pwrite(p[1], &c, 1, 0, WEFT_FOREVER), -ESPIPE);
    cr_assert_eq(weft_file_pread(p[0], &c, 1, 0, weft_deadline_in(WEFT_SEC)), -ESPIPE);
    cr_assert_eq(weft_write(p[1], "q", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(c, 'q', "nothing else went through the pipe");
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_file_pwrite(sv[0], &c, 1, 0, WEFT_FOREVER), -ESPIPE);
    cr_assert_eq(weft_file_pread(sv[1], &c, 1, 0, weft_deadline_in(WEFT_SEC)), -ESPIPE);
    for (int i = 0; i < 2; i++) {
        weft_close(p[i]);
        weft_close(sv[i]);
    }
    return NULL;
}

Test(fs, pread_and_pwrite_on_a_pipe_or_a_socket_are_espipe)
{
    run_main(espipe_main, NULL);
}

/* A FIFO opened by weft_file_open waits for its other end, as open(2) does, on both
 * backends: io_uring's open tried it without blocking first, so a read end opened at once
 * (and its first read found end of file before the writer came: the writer's bytes were
 * lost) and a write end failed with -ENXIO. The other end here is a plain thread that opens
 * it a little later; the test does not depend on how much later. */
typedef struct fifo_peer {
    const char *path;
    int flags;
    char got[8];
    ssize_t n;
} fifo_peer;

static void *fifo_peer_thread(void *arg)
{
    fifo_peer *p = arg;
    usleep(50 * 1000); /* only so that the old code's open finished first and failed */
    int fd = open(p->path, p->flags | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (p->flags == O_WRONLY) {
        p->n = write(fd, "data", 4);
    } else {
        ssize_t k;
        p->n = 0;
        while (p->n < (ssize_t)sizeof p->got &&
               (k = read(fd, p->got + p->n, sizeof p->got - (size_t)p->n)) > 0)
            p->n += k;
    }
    close(fd);
    return NULL;
}

static void *fifo_open_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    /* The read end: open waits for the writer, then its bytes are read. */
    fifo_peer w = {.path = f.path, .flags = O_WRONLY, .n = -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fifo_peer_thread, &w), 0);
    int fd = weft_file_open(f.path, O_RDONLY, 0, weft_deadline_in(30 * WEFT_SEC));
    cr_assert_geq(fd, 0, "open: %d", fd);
    char buf[8];
    ssize_t n = 0, k;
    while ((k = weft_file_read(fd, buf + n, sizeof buf - (size_t)n,
                               weft_deadline_in(30 * WEFT_SEC))) > 0)
        n += k;
    cr_assert_eq(n, 4, "read %zd (last %zd)", n, k);
    cr_assert_eq(memcmp(buf, "data", 4), 0);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(w.n, 4);
    /* The write end: open waits for the reader (it was -ENXIO). */
    fifo_peer r = {.path = f.path, .flags = O_RDONLY, .n = -1};
    cr_assert_eq(pthread_create(&th, NULL, fifo_peer_thread, &r), 0);
    fd = weft_file_open(f.path, O_WRONLY, 0, weft_deadline_in(30 * WEFT_SEC));
    cr_assert_geq(fd, 0, "open: %d", fd);
    cr_assert_eq(weft_file_write(fd, "data", 4, weft_deadline_in(30 * WEFT_SEC)), 4);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(r.n, 4);
    cr_assert_eq(memcmp(r.got, "data", 4), 0);
    /* Asked not to block: open(2)'s answers, on both backends. */
    cr_assert_eq(weft_file_open(f.path, O_WRONLY | O_NONBLOCK, 0, WEFT_FOREVER), -ENXIO);
    fd = weft_file_open(f.path, O_RDONLY | O_NONBLOCK, 0, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_close(fd), 0);
    fifo_remove(&f);
    return NULL;
}

Test(fs, a_fifo_opened_waits_for_its_other_end, .timeout = 60)
{
    run_main(fifo_open_main, NULL);
}

/* A write at the file position cut short by RLIMIT_FSIZE (SIGXFSZ ignored) moves the
 * position by what it wrote, as write(2) does: the next write is -EFBIG and the bytes already
 * written stay. io_uring's ring reported the short count but left the position where the
 * write began, so each later write overwrote the start of the file and reported success.
 * (Criterion runs each test in a process of its own, whose limit this is.) */
static void *short_write_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/limited", f.dir);
    int fd = weft_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old_lim, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    lim = old_lim;
    lim.rlim_cur = 100 * 1024;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t len = 64 * 1024;
    char *a = malloc(len), *b = malloc(len);
    memset(a, 'a', len);
    memset(b, 'b', len);
    cr_assert_eq(weft_file_write(fd, a, len, WEFT_FOREVER), (ssize_t)len);
    cr_assert_eq(weft_file_write(fd, b, len, WEFT_FOREVER), 100 * 1024 - (ssize_t)len, "short");
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 100 * 1024, "the position moved by what was written");
    cr_assert_eq(weft_file_write(fd, a, len, WEFT_FOREVER), -EFBIG);
    cr_assert_eq(weft_file_write(fd, a, len, WEFT_FOREVER), -EFBIG);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
    char c;
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(rfd, 0);
    cr_assert_eq(pread(rfd, &c, 1, 0), 1);
    cr_assert_eq(c, 'a', "the first write's bytes were not overwritten");
    cr_assert_eq(pread(rfd, &c, 1, 64 * 1024), 1);
    cr_assert_eq(c, 'b');
    struct stat st;
    cr_assert_eq(fstat(rfd, &st), 0);
    cr_assert_eq(st.st_size, 100 * 1024);
    close(rfd);
    free(a);
    free(b);
    weft_close(fd);
    unlink(path);
    fifo_remove(&f);
    return NULL;
}

Test(fs, a_write_cut_short_by_the_file_size_limit_moves_the_position)
{
    run_main(short_write_main, NULL);
}

/* A file call queued for the blocking pool when its fd is closed, the number then reused by
 * another file: the call acts on the file it was given, never on the new one (it ran on the
 * number, and wrote into, read from or truncated the successor). One pool thread, held by a
 * job, so that the calls wait in its queue. */
static atomic_int pool_held_go;

static void *hold_pool(void *arg)
{
    (void)arg;
    while (!atomic_load(&pool_held_go))
        usleep(1000);
    return NULL;
}

static void *holder_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_blocking(hold_pool, NULL, NULL, WEFT_FOREVER);
}

typedef struct queued_call {
    int fd, what;
    ssize_t r;
} queued_call;

static void *queued_call_task(void *arg)
{
    queued_call *q = arg;
    char buf[4] = "AAAA";
    if (q->what == 0)
        q->r = weft_file_pwrite(q->fd, buf, 4, 0, WEFT_FOREVER);
    else
        q->r = weft_file_truncate(q->fd, 1, WEFT_FOREVER);
    return NULL;
}

static void *queued_close_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    char pa[PATH_MAX + 16], pb[PATH_MAX + 16];
    snprintf(pa, sizeof pa, "%s/a", f.dir);
    snprintf(pb, sizeof pb, "%s/b", f.dir);
    for (int what = 0; what < 2; what++) {
        /* Opened first: on epoll the open itself is a pool job. */
        int fa = weft_file_open(pa, O_RDWR | O_CREAT | O_TRUNC, 0600, WEFT_FOREVER);
        cr_assert_geq(fa, 0);
        atomic_store(&pool_held_go, 0);
        weft_task *h, *t;
        cr_assert_eq(weft_spawn(&h, holder_task, NULL, NULL), 0);
        weft_sleep(10 * WEFT_MSEC); /* the holder has the pool's thread */
        queued_call q = {.fd = fa, .what = what};
        cr_assert_eq(weft_spawn(&t, queued_call_task, &q, NULL), 0);
        weft_sleep(10 * WEFT_MSEC); /* its call waits for the pool (or is done, on a ring) */
        cr_assert_eq(weft_close(fa), 0);
        int fb = open(pb, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fb, 0);
        cr_assert_eq(write(fb, "bbbb", 4), 4);
        atomic_store(&pool_held_go, 1);
        cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
        char got[5] = {0};
        cr_assert_eq(pread(fb, got, 4, 0), 4, "file B keeps its 4 bytes (fd %d, was %d)", fb, fa);
        cr_assert_str_eq(got, "bbbb");
        close(fb);
        cr_assert(q.r == 0 || q.r == 4 || q.r == -EBADF, "the call: %zd", q.r);
    }
    unlink(pa);
    unlink(pb);
    rmdir(f.dir);
    return NULL;
}

Test(fs, a_call_queued_for_the_pool_never_acts_on_its_fds_successor, .timeout = 30)
{
    weft_config c;
    weft_config_init(&c);
    c.pool_threads = 1;
    run_main_cfg(&c, queued_close_main, NULL);
}

/* A POSIX record lock (fcntl F_SETLK, lockf) outlives weft's file calls. Closing any fd of a
 * file releases every such lock the process holds on it, and a pool job on an fd ran on a
 * duplicate that it closed when done: each write, fsync, truncate or uncached read on the pool
 * dropped the caller's lock (epoll; the truncate and sendfile on io_uring too). Found by a probe
 * that checked the lock from another process after each call. The check runs in a forked child,
 * which asks F_GETLK of its own fd (a process never sees its own locks conflict). */
static const char *lock_path(void)
{
    static char path[64]; /* made once: the checking child has another pid */
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/weft-lock-%d", (int)getpid());
    return path;
}

/* 1 if another process sees the file write-locked, 0 if not, -1 if the check failed. */
static int locked_for_others(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(lock_path(), O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0)
            _exit(2);
        _exit(fl.l_type != F_UNLCK ? 0 : 1);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) > 1)
        return -1;
    return WEXITSTATUS(st) == 0;
}

#define LOCK_CALLS 4

typedef struct lock_kept {
    int setlk;
    ssize_t calls[LOCK_CALLS];
    int locked[LOCK_CALLS];
} lock_kept;

static void *lock_kept_main(void *arg)
{
    lock_kept *k = arg;
    int fd = weft_file_open(lock_path(), O_RDWR | O_CREAT | O_TRUNC, 0600, WEFT_FOREVER);
    if (fd < 0)
        return NULL;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    k->setlk = fcntl(fd, F_SETLK, &fl);
    k->calls[0] = weft_file_write(fd, "abcd", 4, WEFT_FOREVER);
    k->locked[0] = locked_for_others();
    k->calls[1] = weft_file_fsync(fd, WEFT_FOREVER);
    k->locked[1] = locked_for_others();
    k->calls[2] = weft_file_truncate(fd, 1, WEFT_FOREVER);
    k->locked[2] = locked_for_others();
    /* io_uring's sendfile spliced through duplicates of both fds, closed at its end. */
    int sv[2];
    k->calls[3] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    if (k->calls[3] == 0) {
        off_t off = 0;
        k->calls[3] = weft_sendfile(sv[0], fd, &off, 1, WEFT_FOREVER);
        k->locked[3] = locked_for_others();
        weft_close(sv[0]);
        weft_close(sv[1]);
    }
    weft_close(fd);
    unlink(lock_path());
    return NULL;
}

Test(fs, a_record_lock_outlives_file_calls_on_the_pool)
{
    lock_kept k = {.setlk = -1};
    run_main(lock_kept_main, &k);
    cr_assert_eq(k.setlk, 0);
    const char *names[LOCK_CALLS] = {"write", "fsync", "truncate", "sendfile"};
    for (int i = 0; i < LOCK_CALLS; i++) {
        cr_assert_geq(k.calls[i], 0, "%s: %zd", names[i], k.calls[i]);
        cr_assert_eq(k.locked[i], 1, "after the %s the lock is %s", names[i],
                     k.locked[i] == 0 ? "gone" : "unknown");
    }
}
