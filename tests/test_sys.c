/* The syscall layer: its counters, and the error paths of the I/O layer reached through its
 * fault injection (a WEFT_TESTING library), on whichever backend CTest asks for. A faulted
 * call is not made, so each test also checks that the failure lost nothing: the data is still
 * there for the next call, the fd still works, nothing leaks. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "io/io.h"
#include "sys.h"

static int on_uring(void)
{
    return strcmp(weft_backend(), "io_uring") == 0;
}

static weft__sys *sys(void)
{
    weft__sys *s = weft__sys_current();
    cr_assert_not_null(s);
    return s;
}

static void fail(int kind, unsigned nth, int err)
{
    cr_assert_eq(weft__sys_fail(sys(), kind, nth, err), 0);
}

/* A connected, non-blocking Unix stream pair: what one end writes is readable at once. */
static void unix_pair(int fds[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
}

static void close_pair(int fds[2])
{
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
}

/* Runs body in a runtime, on the backend CTest chose. */
#define RUN(body) run_main(body, NULL)

/* ---- Counters ---- */

static void *count_main(void *arg)
{
    (void)arg;
    int p[2];
    unix_pair(p);
    /* The first operation on an fd classifies it (fstat, SO_TYPE...): count the second. */
    cr_assert_eq(write(p[1], "w", 1), 1);
    char w;
    cr_assert_eq(weft_read(p[0], &w, 1, WEFT_FOREVER), 1);
    cr_assert_eq(write(p[1], "abcd", 4), 4);
    weft_stats before, after;
    cr_assert_eq(weft_stats_get(&before), 0);
    uint64_t reads = sys()->ncalls[WEFT__SYS_read];
    char buf[4];
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 4);
    cr_assert_eq(weft_stats_get(&after), 0);
    if (on_uring()) {
        /* The ring did the read: no read(2) at all, the submission comes later. */
        cr_assert_eq(sys()->ncalls[WEFT__SYS_read], reads);
    } else {
        cr_assert_eq(sys()->ncalls[WEFT__SYS_read], reads + 1);
        cr_assert_eq(after.nsyscalls, before.nsyscalls + 1, "one read, nothing else");
    }
    cr_assert_gt(after.nsyscalls, 0);
    close_pair(p);
    return NULL;
}

Test(sys, a_plain_read_on_a_ready_fd_is_one_counted_call)
{
    RUN(count_main);
}

static void *plan_main(void *arg)
{
    (void)arg;
    weft__sys *s = sys();
    cr_assert_eq(weft__sys_fail(s, WEFT__SYS_NKINDS, 1, EIO), -EINVAL);
    cr_assert_eq(weft__sys_fail(s, WEFT__SYS_read, 1, 0), -EINVAL);
    cr_assert_str_eq(weft__sys_name(WEFT__SYS_epoll_ctl), "epoll_ctl");
    /* The second read fails, the first and third do not; 0 clears a plan. */
    int p[2];
    unix_pair(p);
    cr_assert_eq(write(p[1], "abc", 3), 3);
    char c;
    fail(WEFT__SYS_read, 2, EIO);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), -EIO);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(c, 'b', "the failed read consumed nothing");
    fail(WEFT__SYS_read, 1, EIO);
    fail(WEFT__SYS_read, 0, 0);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(c, 'c');
    close_pair(p);
    return NULL;
}

Test(sys, the_nth_call_fails_and_a_zero_clears_the_plan)
{
    RUN(plan_main);
}

/* ---- Reads and writes ---- */

static void *rw_main(void *arg)
{
    (void)arg;
    int p[2];
    unix_pair(p);
    cr_assert_eq(write(p[1], "xy", 2), 2);
    char buf[8];
    fail(WEFT__SYS_read, 1, EIO);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), -EIO);
    fail(WEFT__SYS_recv, 1, ECONNRESET);
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, 0, WEFT_FOREVER), -ECONNRESET);
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, 0, WEFT_FOREVER), 2, "nothing was lost");
    cr_assert_eq(memcmp(buf, "xy", 2), 0);

    fail(WEFT__SYS_write, 1, EIO);
    cr_assert_eq(weft_write(p[0], "hello", 5, WEFT_FOREVER), -EIO);
    fail(WEFT__SYS_send, 1, ECONNRESET);
    cr_assert_eq(weft_send(p[0], "hello", 5, 0, WEFT_FOREVER), -ECONNRESET);
    fail(WEFT__SYS_writev, 1, EPIPE);
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    cr_assert_eq(weft_writev(p[0], iov, 2, WEFT_FOREVER), -EPIPE);
    fail(WEFT__SYS_readv, 1, EIO);
    struct iovec riov = {buf, sizeof buf};
    cr_assert_eq(weft_readv(p[0], &riov, 1, WEFT_FOREVER), -EIO);
    /* None of the failed writes wrote: the peer sees only what follows. */
    cr_assert_eq(weft_write(p[0], "ok", 2, WEFT_FOREVER), 2);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 2);
    cr_assert_eq(memcmp(buf, "ok", 2), 0);
    close_pair(p);

    /* Datagrams: sendto/recvfrom are sendmsg/recvmsg on both backends. */
    int d[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, d), 0);
    fail(WEFT__SYS_sendmsg, 1, ENOBUFS);
    cr_assert_eq(weft_sendto(d[0], "dg", 2, 0, NULL, 0, WEFT_FOREVER), -ENOBUFS);
    cr_assert_eq(weft_sendto(d[0], "dg", 2, 0, NULL, 0, WEFT_FOREVER), 2);
    fail(WEFT__SYS_recvmsg, 1, EIO);
    cr_assert_eq(weft_recvfrom(d[1], buf, sizeof buf, 0, NULL, NULL, WEFT_FOREVER), -EIO);
    cr_assert_eq(weft_recvfrom(d[1], buf, sizeof buf, 0, NULL, NULL, WEFT_FOREVER), 2);
    close_pair(d);
    return NULL;
}

Test(sys, failed_reads_and_writes_return_their_errno_and_lose_nothing)
{
    RUN(rw_main);
}

/* A spurious EAGAIN on a ready fd: the operation waits for readiness and tries again. */
static void *eagain_main(void *arg)
{
    (void)arg;
    int p[2];
    unix_pair(p);
    cr_assert_eq(write(p[1], "z", 1), 1);
    char c;
    fail(WEFT__SYS_read, 1, EAGAIN);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(10 * WEFT_SEC)), 1);
    cr_assert_eq(c, 'z');
    close_pair(p);
    return NULL;
}

Test(sys, eagain_waits_for_readiness_then_retries, .timeout = 30)
{
    RUN(eagain_main);
}

/* ---- Sockets ---- */

static void *accept_main(void *arg)
{
    (void)arg;
    weft_addr a, srv;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(weft_addr_local(lfd, &srv), 0);
    int c = weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(c, 0, "dial: %s", weft_strerror(c));
    /* The connection waits in the backlog; the first accept finds no fd to put it in. */
    weft__sys *s = sys();
    uint64_t accepts = s->ncalls[WEFT__SYS_accept];
    fail(WEFT__SYS_accept, 1, EMFILE);
    int fd = weft_accept(lfd, NULL, NULL, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_geq(fd, 0, "accept: %s", weft_strerror(fd));
    cr_assert_eq(s->fail_nth[WEFT__SYS_accept], 0, "the planned EMFILE happened");
    cr_assert_eq(s->ncalls[WEFT__SYS_accept], accepts + 1, "then one real accept4");
    cr_assert_eq(weft_write(c, "!", 1, WEFT_FOREVER), 1);
    char ch;
    cr_assert_eq(weft_read(fd, &ch, 1, weft_deadline_in(5 * WEFT_SEC)), 1);

    /* Out of fds until the deadline: -EMFILE, and the listener is intact. */
    int c2 = weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(c2, 0);
    fail(WEFT__SYS_accept, 1, ENFILE);
    cr_assert_eq(weft_accept(lfd, NULL, NULL, weft_now()), -ENFILE);
    int fd2 = weft_accept(lfd, NULL, NULL, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(fd2, 0);
    weft_close(fd2);
    weft_close(c2);
    weft_close(fd);
    weft_close(c);
    weft_close(lfd);
    return NULL;
}

Test(sys, accept_out_of_fds_backs_off_then_succeeds, .timeout = 30)
{
    RUN(accept_main);
}

static void *connect_main(void *arg)
{
    (void)arg;
    weft_addr a, srv;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_eq(weft_addr_local(lfd, &srv), 0);
    weft__sys *s = sys();

    uint64_t closes = s->ncalls[WEFT__SYS_close];
    fail(WEFT__SYS_connect, 1, ENETUNREACH);
    cr_assert_eq(weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC)), -ENETUNREACH);
    cr_assert_eq(s->ncalls[WEFT__SYS_close], closes + 1, "the socket was closed");

    if (!on_uring()) {
        /* epoll: connect says EINPROGRESS, then SO_ERROR is read; that can fail too. */
        fail(WEFT__SYS_getsockopt, 1, ENOBUFS);
        cr_assert_eq(weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC)), -ENOBUFS);
    }

    fail(WEFT__SYS_socket, 1, EMFILE);
    cr_assert_eq(weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC)), -EMFILE);
    fail(WEFT__SYS_socket, 1, ENFILE);
    cr_assert_eq(weft_listen(&a, 0, 0), -ENFILE);
    closes = s->ncalls[WEFT__SYS_close];
    fail(WEFT__SYS_bind, 1, EADDRINUSE);
    cr_assert_eq(weft_listen(&a, 0, 0), -EADDRINUSE);
    cr_assert_eq(s->ncalls[WEFT__SYS_close], closes + 1, "the socket was closed");
    fail(WEFT__SYS_listen, 1, EOPNOTSUPP);
    cr_assert_eq(weft_listen(&a, 0, 0), -EOPNOTSUPP);
    fail(WEFT__SYS_setsockopt, 1, ENOPROTOOPT);
    cr_assert_eq(weft_listen(&a, 0, 0), -ENOPROTOOPT);

    /* Everything still works afterwards. */
    int c = weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(c, 0);
    weft_close(c);
    weft_close(lfd);
    return NULL;
}

Test(sys, failed_socket_connect_bind_and_listen_return_their_errno)
{
    RUN(connect_main);
}

/* ---- The backends' own calls ---- */

static void *epoll_ctl_main(void *arg)
{
    (void)arg;
    int p[2];
    unix_pair(p);
    char c;
    /* The first wait on p[0] registers it; that fails, and the read reports it. */
    fail(WEFT__SYS_epoll_ctl, 1, ENOMEM);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(5 * WEFT_SEC)), -ENOMEM);
    fail(WEFT__SYS_epoll_ctl, 1, ENOMEM);
    cr_assert_eq(weft_fd_wait(p[0], WEFT_READABLE, weft_deadline_in(5 * WEFT_SEC)), -ENOMEM);
    /* Nothing is lost: the next wait registers it, and data written now is read. */
    cr_assert_eq(write(p[1], "q", 1), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(5 * WEFT_SEC)), 1);
    cr_assert_eq(c, 'q');
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    close_pair(p);
    return NULL;
}

Test(sys, epoll_ctl_failing_on_the_first_wait_returns_the_error, .timeout = 30)
{
    const char *b = getenv("WEFT_BACKEND");
    if (b && strcmp(b, "io_uring") == 0)
        cr_skip_test("io_uring registers nothing with epoll_ctl");
    RUN(epoll_ctl_main);
}

static void *reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    return (void *)(intptr_t)weft_read(fd, &c, 1, WEFT_FOREVER);
}

static void *enter_main(void *arg)
{
    (void)arg;
    if (!on_uring())
        return (void *)1; /* skipped: see the test */
    int p[2];
    unix_pair(p);
    char c;
    /* The read is prepared, then the loop's submit fails: the read fails with it. */
    fail(WEFT__SYS_io_uring_enter, 1, ENOMEM);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), -ENOMEM);
    /* Two tasks' reads in the same batch both get the error. */
    weft_task *t1, *t2;
    int q[2];
    unix_pair(q);
    weft_spawn(&t1, reader, (void *)(intptr_t)p[0], NULL);
    weft_spawn(&t2, reader, (void *)(intptr_t)q[0], NULL);
    fail(WEFT__SYS_io_uring_enter, 1, EBUSY);
    void *r1, *r2;
    weft_join(t1, &r1, WEFT_FOREVER);
    weft_join(t2, &r2, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r1, -EBUSY);
    cr_assert_eq((intptr_t)r2, -EBUSY);
    /* The ring still works, the eventfd wake-up included. */
    cr_assert_eq(write(p[1], "r", 1), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(5 * WEFT_SEC)), 1);
    cr_assert_eq(weft_fd_wait(q[0], WEFT_READABLE, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    close_pair(p);
    close_pair(q);
    return NULL;
}

Test(sys, io_uring_submit_failing_fails_the_operations_instead_of_hanging, .timeout = 30)
{
    void *r = RUN(enter_main);
    if (r == (void *)1)
        cr_skip_test("not the io_uring backend");
}

/* ---- Stacks ---- */

static void *child(void *arg)
{
    return arg;
}

static void *mmap_main(void *arg)
{
    (void)arg;
    weft__sys *s = sys();
    /* A fresh runtime has no pooled stack for a new task: its first run maps one. */
    fail(WEFT__SYS_mmap, 1, ENOMEM);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, child, (void *)7, NULL), 0);
    weft_yield(); /* its pick finds no stack */
    cr_assert_eq(weft_task_status(t), WEFT_TASK_FAILED);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_NOMEM, "no stack: finished unrun, joined as WEFT_NOMEM");

    /* The guard page cannot be set up: the mapping is given back, same outcome. */
    uint64_t unmaps = s->ncalls[WEFT__SYS_munmap];
    fail(WEFT__SYS_mprotect, 1, ENOMEM);
    cr_assert_eq(weft_spawn(&t, child, (void *)7, NULL), 0);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_NOMEM);
    cr_assert_eq(s->ncalls[WEFT__SYS_munmap], unmaps + 1);

    /* Then stacks come again. */
    cr_assert_eq(weft_spawn(&t, child, (void *)7, NULL), 0);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)7);
    return NULL;
}

Test(sys, mmap_failing_finishes_the_new_task_as_nomem)
{
    RUN(mmap_main);
}

/* ---- Files and sendfile ---- */

static void *file_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-sys-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert_geq(tmp, 0);
    close(tmp);
    fail(WEFT__SYS_open, 1, EACCES);
    cr_assert_eq(weft_file_open(path, O_RDWR, 0, WEFT_FOREVER), -EACCES);
    int fd = weft_file_open(path, O_RDWR, 0, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    fail(WEFT__SYS_write, 1, ENOSPC);
    cr_assert_eq(weft_file_write(fd, "data", 4, WEFT_FOREVER), -ENOSPC);
    cr_assert_eq(weft_file_write(fd, "data", 4, WEFT_FOREVER), 4);
    fail(WEFT__SYS_fsync, 1, EIO);
    cr_assert_eq(weft_file_fsync(fd, WEFT_FOREVER), -EIO);
    cr_assert_eq(weft_file_fsync(fd, WEFT_FOREVER), 0);
    char buf[8];
    /* On epoll a cached read is a preadv2 (RWF_NOWAIT) on the worker's thread. */
    fail(strcmp(weft_backend(), "epoll") == 0 ? WEFT__SYS_preadv2 : WEFT__SYS_pread, 1, EIO);
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, WEFT_FOREVER), -EIO);
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, WEFT_FOREVER), 4);
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, -1, WEFT_FOREVER), -EINVAL);
    struct stat st;
    fail(WEFT__SYS_stat, 1, ENOENT);
    cr_assert_eq(weft_file_stat(path, &st, WEFT_FOREVER), -ENOENT);
    cr_assert_eq(weft_file_stat(path, &st, WEFT_FOREVER), 0);
    cr_assert_eq(st.st_size, 4);
    weft_close(fd);
    unlink(path);
    return NULL;
}

Test(sys, failed_file_operations_return_their_errno)
{
    RUN(file_main);
}

static void *sendfile_path_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-sys-sf-XXXXXX";
    int f = mkstemp(path);
    cr_assert_geq(f, 0);
    unlink(path);
    cr_assert_eq(write(f, "0123456789", 10), 10);
    int p[2];
    unix_pair(p);
    weft__sys *s = sys();
    uint64_t calls = s->ncalls[WEFT__SYS_sendfile];
    off_t off = 2;
    cr_assert_eq(weft_sendfile(p[0], f, &off, 5, WEFT_FOREVER), 5);
    cr_assert_eq(off, 7);
    char buf[16];
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 5);
    cr_assert_eq(memcmp(buf, "23456", 5), 0);
    if (on_uring())
        cr_assert_eq(s->ncalls[WEFT__SYS_sendfile], calls, "splices on the ring, no sendfile(2)");
    else
        cr_assert_eq(s->ncalls[WEFT__SYS_sendfile], calls + 1);

    /* A failed transfer sends nothing and leaves the offset alone. */
    fail(on_uring() ? WEFT__SYS_splice : WEFT__SYS_sendfile, 1, EIO);
    cr_assert_eq(weft_sendfile(p[0], f, &off, 3, WEFT_FOREVER), -EIO);
    cr_assert_eq(off, 7);
    if (on_uring()) {
        /* The second splice (pipe -> socket) fails: the bytes in the pipe are dropped. */
        fail(WEFT__SYS_splice, 2, EIO);
        cr_assert_eq(weft_sendfile(p[0], f, &off, 3, WEFT_FOREVER), -EIO);
        cr_assert_eq(off, 7);
    }
    cr_assert_eq(weft_sendfile(p[0], f, &off, 3, WEFT_FOREVER), 3);
    cr_assert_eq(off, 10);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 3);
    cr_assert_eq(memcmp(buf, "789", 3), 0, "only what was sent arrives");
    close(f);
    close_pair(p);
    return NULL;
}

Test(sys, sendfile_runs_on_the_ring_with_io_uring_and_fails_cleanly)
{
    RUN(sendfile_path_main);
}

/* ---- The fd table ---- */

#define GARBAGE_FD 30000000 /* far beyond any fd table: 1.28 GB of records if it grew */

static void *garbage_main(void *arg)
{
    (void)arg;
    size_t before = weft__io_nfds();
    char c;
    cr_assert_eq(weft_close(GARBAGE_FD), -EBADF);
    cr_assert_eq(weft_fd_forget(GARBAGE_FD), -EBADF);
    cr_assert_eq(weft_fd_wait(GARBAGE_FD, WEFT_READABLE, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_read(GARBAGE_FD, &c, 1, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_write(GARBAGE_FD, "x", 1, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_file_read(GARBAGE_FD, &c, 1, WEFT_FOREVER), -EBADF);
    size_t after = weft__io_nfds();
    cr_assert_eq(after, before, "the table did not grow (%zu records)", after);
    /* An open fd grows it as before, and only as far as that fd. */
    int p[2];
    unix_pair(p);
    cr_assert_eq(write(p[1], "k", 1), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_gt(weft__io_nfds(), (size_t)p[0]);
    cr_assert_lt(weft__io_nfds(), (size_t)4096);
    close_pair(p);
    return NULL;
}

Test(sys, a_garbage_fd_number_is_ebadf_and_does_not_grow_the_fd_table)
{
    RUN(garbage_main);
}

/* The table's growth check (fcntl F_GETFD) goes through the sys layer like any call. */
static void *grow_fail_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    /* Far enough to need a bigger table than the first 64 records. */
    int hi = fcntl(fds[0], F_DUPFD_CLOEXEC, 200);
    cr_assert_geq(hi, 200);
    fail(WEFT__SYS_fcntl, 1, EMFILE);
    char c;
    cr_assert_eq(weft_read(hi, &c, 1, weft_deadline_in(WEFT_MSEC)), -EMFILE);
    cr_assert_eq(weft_read(hi, &c, 1, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_close(hi), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(sys, a_failed_growth_check_returns_its_error)
{
    RUN(grow_fail_main);
}
