/* Files through weft_file_*: regular files go to the blocking pool (epoll) or the ring
 * (io_uring); a FIFO or a device opened by path is not a regular file, and takes the
 * readiness path, where deadlines and cancellation work. Run once per backend. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

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
