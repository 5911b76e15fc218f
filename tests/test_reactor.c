/* The first reactor: fd readiness waits with deadlines, cancellation and close while
 * waiting, one waiter per direction, and edge-triggered readiness that loses no wake-up. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tcp_helpers.h"
#ifdef WEFT_TEST_HAVE_URING
#include <liburing.h>
#endif

static void *reader(void *arg)
{
    int fd = *(int *)arg;
    int r = weft_fd_wait(fd, WEFT_READABLE, WEFT_FOREVER);
    if (r < 0)
        return (void *)(intptr_t)r;
    char c;
    return read(fd, &c, 1) == 1 ? (void *)(intptr_t)c : (void *)-1;
}

static void *pipe_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    weft_task *t, *t2;
    weft_spawn(&t, reader, &fds[0], NULL);
    weft_spawn(&t2, reader, &fds[0], NULL);
    weft_yield();
    /* Two waiters in one direction: both wait (no -EBUSY), and one edge for two bytes
     * serves them both. */
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, 0), -ETIMEDOUT);
    cr_assert_eq(write(fds[1], "kl", 2), 2);
    void *r, *r2;
    weft_join(t, &r, WEFT_FOREVER);
    weft_join(t2, &r2, WEFT_FOREVER);
    cr_assert((r == (void *)'k' && r2 == (void *)'l') || (r == (void *)'l' && r2 == (void *)'k'),
              "each waiter read one byte: %p %p", r, r2);

    /* Nothing to read: the deadline passes. */
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    /* A pipe's write end is writable at once. */
    cr_assert_eq(weft_fd_wait(fds[1], WEFT_WRITABLE, WEFT_FOREVER), WEFT_WRITABLE);
    cr_assert_eq(weft_fd_wait(fds[1], 0, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fd_wait(-1, WEFT_READABLE, WEFT_FOREVER), -EBADF);

    /* Cancelled while waiting. */
    weft_spawn(&t, reader, &fds[0], NULL);
    weft_yield();
    weft_cancel(t);
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);

    /* Closed by another task while waiting: woken with -EBADF. */
    weft_spawn(&t, reader, &fds[0], NULL);
    weft_yield();
    cr_assert_eq(weft_close(fds[0]), 0);
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)(intptr_t)-EBADF);
    weft_close(fds[1]);
    return NULL;
}

Test(reactor, pipe_waits_deadlines_cancel_and_close)
{
    run_main(pipe_main, NULL);
}

static void *kick(void *arg)
{
    usleep(2000);
    uint64_t one = 1;
    ssize_t r = write(*(int *)arg, &one, sizeof one);
    (void)r;
    return NULL;
}

static void *eventfd_main(void *arg)
{
    (void)arg;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_t th;
    pthread_create(&th, NULL, kick, &efd);
    int r = weft_fd_wait(efd, WEFT_READABLE, WEFT_FOREVER);
    pthread_join(th, NULL);
    cr_assert_eq(r, WEFT_READABLE);
    uint64_t v;
    cr_assert_eq(read(efd, &v, sizeof v), (ssize_t)sizeof v);
    cr_assert_eq(v, 1);
    weft_close(efd);
    return NULL;
}

Test(reactor, eventfd_written_by_another_thread_wakes_the_waiter, .timeout = 30)
{
    run_main(eventfd_main, NULL);
}

static void *edge_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    /* The edge arrives while nobody waits; the next wait must still see it. */
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, 0), -ETIMEDOUT);
    cr_assert_eq(write(fds[1], "a", 1), 1);
    weft_yield(); /* a tick: the edge is recorded */
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, WEFT_FOREVER), WEFT_READABLE);
    weft_close(fds[0]);
    weft_close(fds[1]);
    return NULL;
}

Test(reactor, an_edge_seen_before_the_wait_is_not_lost)
{
    run_main(edge_main, NULL);
}

/* The I/O suites run once per backend (CTest sets WEFT_BACKEND): make sure the one asked
 * for is the one in use, so that a silent fallback cannot pass for io_uring coverage. */
static void *backend_main(void *arg)
{
    (void)arg;
    return (void *)weft_backend();
}

Test(reactor, the_backend_asked_for_is_the_one_in_use)
{
    const char *want = getenv("WEFT_BACKEND");
    if (want && strcmp(want, "io_uring") == 0) {
#ifdef WEFT_TEST_HAVE_URING
        struct io_uring ring;
        if (io_uring_queue_init(4, &ring, 0) < 0)
            cr_skip_test("the kernel refuses io_uring here");
        io_uring_queue_exit(&ring);
#else
        cr_skip_test("built without liburing");
#endif
    } else {
        want = "epoll";
    }
    const char *got = run_main(backend_main, NULL);
    cr_assert_str_eq(got, want);
}

/* libdill's fd.c (fdout three times in a row on a writable socket; fdin twice on unread
 * bytes): a wait reports the fd's state now, so waits with no EAGAIN between them return at
 * once on both backends. On epoll the second wait used to wait for an edge that never came
 * (the 10 s deadline below is what a hang reaches). A drained fd still waits. */
static void *level_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int64_t soon = 10 * WEFT_SEC;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_fd_wait(sv[0], WEFT_WRITABLE, weft_deadline_in(soon)), WEFT_WRITABLE,
                     "writable wait %d", i);
    cr_assert_eq(weft_write(sv[1], "ab", 2, WEFT_FOREVER), 2);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(soon)), WEFT_READABLE,
                     "readable wait %d", i);
    char buf[4];
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), 2);
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT,
                 "nothing left to read");
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

Test(reactor, waits_with_no_eagain_between_them_report_the_fd_as_it_is, .timeout = 60)
{
    run_main(level_main, NULL);
}

/* A wait for both directions on a TCP socket that has bytes to read and room to write reports
 * both, on both backends, also once io_uring holds the socket's bytes (its armed receive took
 * them, and the kernel's socket looks empty): there it answered WEFT_READABLE alone, so a
 * caller waiting to write got no writable for as long as the bytes stayed unread. */
static void *both_directions_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    int64_t soon = 10 * WEFT_SEC;
    char c;
    cr_assert_eq(weft_write(p[1], "abc", 3, weft_deadline_in(soon)), 3);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(soon)), 1); /* io_uring: 2 held */
    int both = WEFT_READABLE | WEFT_WRITABLE;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_fd_wait(p[0], both, weft_deadline_in(soon)), both, "wait %d", i);
    char rest[2];
    cr_assert_eq(weft_read(p[0], rest, 2, weft_deadline_in(soon)), 2);
    cr_assert(memcmp(rest, "bc", 2) == 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(reactor, a_wait_for_both_directions_reports_both_while_bytes_are_held, .timeout = 60)
{
    run_main(both_directions_main, NULL);
}
