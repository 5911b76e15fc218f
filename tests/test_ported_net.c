/* Networking, pipe, process, signal and timer behaviours from other runtimes' own suites (mio's
 * tcp_stream/udp_socket/unix_* tests, Tokio's tcp/udp/uds/process/signal/time tests, libuv's
 * test/ programs, Go's net and os/exec tests), re-expressed against what weft.h documents; the
 * earlier ports are in test_ported.c and test_ported2.c. Each test names its source; where
 * weft.h is silent it asserts what the kernel or the peer runtime does. No pass or fail depends
 * on timing: deadlines are bounds only a hang reaches. Every test holds on epoll and io_uring,
 * sharded and stealing (the environment picks: WEFT_BACKEND, WEFT_MODE, WEFT_WORKERS). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "task_helpers.h"
#include "tcp_helpers.h"

#define SOON (10 * WEFT_SEC) /* a deadline only a hang reaches */

/* ---- MSG_PEEK | MSG_WAITALL ---------------------------------------------------------------- */

typedef struct peek_arg {
    int fd;
    size_t len;
    ssize_t n;
    char buf[16];
} peek_arg;

static void *peek_waitall_task(void *arg)
{
    peek_arg *p = arg;
    p->n = weft_recv(p->fd, p->buf, p->len, MSG_PEEK | MSG_WAITALL, weft_deadline_in(SOON));
    return NULL;
}

/* A blocking recv(2) with MSG_PEEK | MSG_WAITALL on a TCP socket waits until len bytes are
 * queued, then copies them and leaves them there (tcp_recvmsg: the target is len, the peek
 * walks the queue from its own sequence number). Here the peek parks while only 3 of 6 bytes
 * came, and then reads all 6, twice; a plain read then takes them. Before the leftover was
 * taken, weft returned the 3 that were there on epoll and on io_uring's held bytes. */
static void *peek_waitall_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    peek_arg p = {.fd = fds[0], .len = 6};
    /* First as the socket's first read, then with the socket read through weft before. */
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(weft_write(fds[1], "abc", 3, weft_deadline_in(SOON)), 3);
        weft_task *t = spawn_pinned(peek_waitall_task, &p);
        wait_parked_or_done(t);
        cr_assert_eq(weft_write(fds[1], "def", 3, weft_deadline_in(SOON)), 3);
        cr_assert_eq(join_result(t), NULL);
        cr_assert_eq(p.n, 6, "round %d: peek|waitall gave %zd", round, p.n);
        cr_assert_eq(memcmp(p.buf, "abcdef", 6), 0, "round %d: peeked %.6s", round, p.buf);
        char again[8];
        cr_assert_eq(weft_recv(fds[0], again, 6, MSG_PEEK | MSG_WAITALL, weft_deadline_in(SOON)),
                     6);
        cr_assert_eq(memcmp(again, "abcdef", 6), 0);
        read_exactly(fds[0], again, 6);
        cr_assert_eq(memcmp(again, "abcdef", 6), 0);
    }
    /* At the end of stream it returns what is queued, then 0 (recv(2) does the same). */
    cr_assert_eq(weft_write(fds[1], "xy", 2, weft_deadline_in(SOON)), 2);
    cr_assert_eq(weft_shutdown(fds[1], SHUT_WR), 0);
    char buf[8];
    cr_assert_eq(weft_recv(fds[0], buf, 6, MSG_PEEK | MSG_WAITALL, weft_deadline_in(SOON)), 2);
    read_exactly(fds[0], buf, 2);
    cr_assert_eq(weft_recv(fds[0], buf, 6, MSG_PEEK | MSG_WAITALL, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    /* weft_recvfrom takes the same path. */
    tcp_pair(fds);
    p = (peek_arg){.fd = fds[0], .len = 4};
    cr_assert_eq(weft_write(fds[1], "ab", 2, weft_deadline_in(SOON)), 2);
    weft_task *t = spawn_pinned(peek_waitall_task, &p);
    wait_parked_or_done(t);
    cr_assert_eq(weft_write(fds[1], "cd", 2, weft_deadline_in(SOON)), 2);
    cr_assert_eq(join_result(t), NULL);
    cr_assert_eq(p.n, 4);
    cr_assert_eq(
        weft_recvfrom(fds[0], buf, 4, MSG_PEEK | MSG_WAITALL, NULL, NULL, weft_deadline_in(SOON)),
        4);
    cr_assert_eq(memcmp(buf, "abcd", 4), 0);
    /* A deadline ends the wait with what is queued, still queued. */
    cr_assert_eq(weft_recv(fds[0], buf, 8, MSG_PEEK | MSG_WAITALL, weft_deadline_in(WEFT_MSEC)), 4);
    read_exactly(fds[0], buf, 4);
    cr_assert_eq(memcmp(buf, "abcd", 4), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    /* An AF_UNIX stream peeks what is queued without waiting for the rest, as recv(2) does
     * there (unix_stream_read_generic stops at the last queued buffer). */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_write(sv[1], "abc", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_recv(sv[0], buf, 6, MSG_PEEK | MSG_WAITALL, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_deadline_in(SOON)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(weft_close(sv[0]), 0);
    cr_assert_eq(weft_close(sv[1]), 0);
    return NULL;
}

Test(ported_net, peek_waitall_on_tcp_waits_for_the_whole_length, .timeout = 30)
{
    run_main(peek_waitall_main, NULL);
}

/* ---- TCP: shutdown, write-after-connect, vectored I/O, accept's address --------------------- */

/* fds[0] dialled, fds[1] accepted, over a Unix-domain path. */
static void unix_pair(int fds[2])
{
    char path[108];
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/weft-ported-net-%d", dir, (int)getpid());
    unlink(path);
    weft_addr a;
    cr_assert_eq(weft_addr_unix(&a, path), 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0, "%s", weft_strerror(lfd));
    fds[0] = weft_dial(&a, weft_deadline_in(SOON));
    cr_assert_geq(fds[0], 0, "%s", weft_strerror(fds[0]));
    fds[1] = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
    cr_assert_geq(fds[1], 0, "%s", weft_strerror(fds[1]));
    cr_assert_eq(weft_close(lfd), 0);
    unlink(path);
}

/* Tokio tcp_shutdown, mio tcp_stream shutdown_write and Go TestCloseWrite (tcp, unix): after
 * SHUT_WR the peer reads every byte then the end of stream and can still answer; a second
 * SHUT_WR is 0 (shutdown(2) is); a write after it is -EPIPE (never SIGPIPE); shutdown of a TCP
 * socket never connected is -ENOTCONN. */
static void *shutdown_main(void *arg)
{
    int family = (int)(intptr_t)arg;
    int fds[2];
    if (family == AF_UNIX)
        unix_pair(fds);
    else
        tcp_pair(fds);
    char buf[8];
    /* Read once first, so that io_uring's held receive and sends behind are in play. */
    cr_assert_eq(weft_write(fds[1], "x", 1, weft_deadline_in(SOON)), 1);
    read_exactly(fds[0], buf, 1);
    cr_assert_eq(weft_write(fds[0], "ping", 4, weft_deadline_in(SOON)), 4);
    cr_assert_eq(weft_shutdown(fds[0], SHUT_WR), 0);
    cr_assert_eq(weft_shutdown(fds[0], SHUT_WR), 0, "a second shutdown is 0, as shutdown(2)");
    read_exactly(fds[1], buf, 4);
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    cr_assert_eq(weft_read(fds[1], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_write(fds[1], "pong", 4, weft_deadline_in(SOON)), 4);
    read_exactly(fds[0], buf, 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    cr_assert_eq(weft_write(fds[0], "late", 4, weft_deadline_in(SOON)), -EPIPE);
    cr_assert_eq(weft_send(fds[0], "late", 4, 0, weft_deadline_in(SOON)), -EPIPE);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_read(fds[1], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    int s = weft_socket(family, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    /* shutdown(2) itself: -ENOTCONN on TCP, 0 on AF_UNIX (unix_shutdown does not check). */
    cr_assert_eq(weft_shutdown(s, SHUT_WR), family == AF_UNIX ? 0 : -ENOTCONN);
    cr_assert_eq(weft_shutdown(s, 7), -EINVAL);
    cr_assert_eq(weft_close(s), 0);
    return NULL;
}

Test(ported_net, shutdown_write_then_the_peer_answers_and_late_writes_are_epipe, .timeout = 30)
{
    run_main(shutdown_main, (void *)(intptr_t)AF_INET);
    run_main(shutdown_main, (void *)(intptr_t)AF_UNIX); /* Go's TestCloseWrite on "unix" */
}

/* libuv test-tcp-write-after-connect and mio tcp_stream: bytes written right after the dial,
 * before the server accepted, arrive once it does; the accepted socket reports the dialler's
 * address (accept(2)), and a too-short address buffer is cut with the full length returned. */
static void *write_after_connect_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int c = weft_dial(&srv, weft_deadline_in(SOON));
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_write(c, "early", 5, weft_deadline_in(SOON)), 5);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int a = weft_accept(lfd, (struct sockaddr *)&peer, &plen, weft_deadline_in(SOON));
    cr_assert_geq(a, 0);
    cr_assert_eq(plen, sizeof peer);
    weft_addr mine;
    cr_assert_eq(weft_addr_local(c, &mine), 0);
    cr_assert_eq(peer.sin_port, ((struct sockaddr_in *)&mine.ss)->sin_port);
    char buf[8];
    read_exactly(a, buf, 5);
    cr_assert_eq(memcmp(buf, "early", 5), 0);
    int c2 = weft_dial(&srv, weft_deadline_in(SOON));
    cr_assert_geq(c2, 0);
    char tiny[4];
    socklen_t tlen = sizeof tiny;
    int a2 = weft_accept(lfd, (struct sockaddr *)tiny, &tlen, weft_deadline_in(SOON));
    cr_assert_geq(a2, 0);
    cr_assert_eq(tlen, sizeof(struct sockaddr_in), "the full length, as accept(2)");
    cr_assert_eq(weft_close(a2), 0);
    cr_assert_eq(weft_close(c2), 0);
    cr_assert_eq(weft_close(a), 0);
    cr_assert_eq(weft_close(c), 0);
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(ported_net, bytes_written_before_the_accept_arrive, .timeout = 30)
{
    run_main(write_after_connect_main, NULL);
}

/* Hostile accepts (the address arguments libuv's and Go's wrappers never get wrong): an
 * address with no length, a negative length, or an address in the first page is refused
 * (-EFAULT, -EINVAL, as accept(2)) before the connection is taken, so the next accept still
 * gets it, whole. accept(2) itself took it first, then failed and closed it: lost to both
 * sides. */
static void *accept_bad_args_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int c = weft_dial(&srv, weft_deadline_in(SOON));
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_write(c, "kept", 4, weft_deadline_in(SOON)), 4);
    struct sockaddr_storage ss;
    socklen_t neg = (socklen_t)-1, some = sizeof ss;
    cr_assert_eq(weft_accept(lfd, (struct sockaddr *)&ss, NULL, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_accept(lfd, (struct sockaddr *)&ss, &neg, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_accept(lfd, (struct sockaddr *)8, &some, weft_deadline_in(SOON)), -EFAULT);
    int a = weft_accept(lfd, (struct sockaddr *)&ss, &some, weft_deadline_in(SOON));
    cr_assert_geq(a, 0, "the connection was lost: %s", weft_strerror(a));
    char buf[4];
    read_exactly(a, buf, 4);
    cr_assert_eq(memcmp(buf, "kept", 4), 0);
    cr_assert_eq(weft_close(a), 0);
    cr_assert_eq(weft_close(c), 0);
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(ported_net, an_accept_with_bad_address_arguments_loses_no_connection, .timeout = 30)
{
    run_main(accept_bad_args_main, NULL);
}

/* mio tcp_stream write_vectored/read_vectored and Tokio's: empty buffers among full ones are
 * skipped, an iovcnt of 0 moves nothing and returns 0, and an iovcnt past IOV_MAX is -EINVAL
 * (writev(2), readv(2)). */
static void *vectored_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char e = 0;
    struct iovec out[5] = {{"ab", 2}, {&e, 0}, {NULL, 0}, {"cde", 3}, {&e, 0}};
    cr_assert_eq(weft_writev(fds[0], out, 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(weft_writev(fds[0], out, 0, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_writev(fds[0], out + 1, 2, weft_deadline_in(SOON)), 0);
    char a[2], b[3];
    struct iovec in[4] = {{&e, 0}, {a, 2}, {NULL, 0}, {b, 3}};
    size_t got = 0;
    while (got < 5) {
        ssize_t n = weft_readv(fds[1], in, 4, weft_deadline_in(SOON));
        cr_assert_gt(n, 0, "%zd", n);
        got += (size_t)n;
        if (got < 5) { /* the rest by a plain read (it may come in two pieces) */
            char rest[5];
            read_exactly(fds[1], rest, 5 - got);
            memcpy(got < 2 ? a + got : b + (got - 2), rest, 5 - got);
            got = 5;
        }
    }
    cr_assert_eq(memcmp(a, "ab", 2), 0);
    cr_assert_eq(memcmp(b, "cde", 3), 0);
    static struct iovec many[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        many[i] = (struct iovec){&e, 1};
    cr_assert_eq(weft_readv(fds[1], many, IOV_MAX + 1, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_writev(fds[0], many, IOV_MAX + 1, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_writev(fds[0], many, -1, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, vectored_io_skips_empty_buffers_and_checks_counts, .timeout = 30)
{
    run_main(vectored_main, NULL);
}

/* ---- UDP and Unix datagrams --------------------------------------------------------------- */

/* libuv test-udp-connect and Go's TestUDPConnRefused-style checks: a datagram sent on a
 * connected UDP socket to a port nobody has bound draws an ICMP port unreachable, which Linux
 * reports on the socket: the next receive (parked before or after) is -ECONNREFUSED, not a
 * hang; after it the socket works again. */
static void *udp_refused_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8];
    return (void *)(intptr_t)weft_recv(fd, buf, sizeof buf, 0, weft_deadline_in(SOON));
}

static void *udp_refused_main(void *arg)
{
    (void)arg;
    weft_addr lo;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int gone = weft_datagram(&lo, AF_INET); /* a port that was bound and is free again */
    cr_assert_geq(gone, 0);
    weft_addr dead;
    cr_assert_eq(weft_addr_local(gone, &dead), 0);
    cr_assert_eq(weft_close(gone), 0);
    int fd = weft_datagram(&lo, AF_INET);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&dead.ss, dead.len), 0);
    weft_task *t = spawn_pinned(udp_refused_task, (void *)(intptr_t)fd);
    wait_parked(t);
    cr_assert_eq(weft_send(fd, "x", 1, 0, weft_deadline_in(SOON)), 1);
    cr_assert_eq((intptr_t)join_result(t), -ECONNREFUSED);
    /* Again, with the receive after the error came. */
    cr_assert_eq(weft_send(fd, "x", 1, 0, weft_deadline_in(SOON)), 1);
    char buf[8];
    ssize_t n = weft_recv(fd, buf, sizeof buf, 0, weft_deadline_in(SOON));
    cr_assert_eq(n, -ECONNREFUSED, "%zd", n);
    cr_assert_eq(weft_close(fd), 0);
    return NULL;
}

Test(ported_net, a_connected_udp_socket_reports_a_refused_port, .timeout = 30)
{
    run_main(udp_refused_main, NULL);
}

/* mio udp_socket peek and Tokio udp peek_from/recv_buf: MSG_PEEK leaves the datagram for the
 * next receive; MSG_TRUNC returns the datagram's real length past the buffer (recv(2) on
 * UDP); an empty buffer takes the whole datagram and returns 0. */
static void *udp_flags_main(void *arg)
{
    (void)arg;
    weft_addr lo;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int rx = weft_datagram(&lo, AF_INET);
    int tx = weft_datagram(NULL, AF_INET);
    cr_assert_geq(rx, 0);
    cr_assert_geq(tx, 0);
    weft_addr to;
    cr_assert_eq(weft_addr_local(rx, &to), 0);
    const struct sockaddr *sa = (const struct sockaddr *)&to.ss;
    char buf[16];
    cr_assert_eq(weft_sendto(tx, "0123456789", 10, 0, sa, to.len, weft_deadline_in(SOON)), 10);
    cr_assert_eq(weft_sendto(tx, "second", 6, 0, sa, to.len, weft_deadline_in(SOON)), 6);
    cr_assert_eq(weft_sendto(tx, "third", 5, 0, sa, to.len, weft_deadline_in(SOON)), 5);
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    cr_assert_eq(weft_recvfrom(rx, buf, 4, MSG_PEEK, (struct sockaddr *)&from, &flen,
                               weft_deadline_in(SOON)),
                 4);
    cr_assert_eq(flen, sizeof from);
    cr_assert_eq(memcmp(buf, "0123", 4), 0);
    cr_assert_eq(weft_recv(rx, buf, 4, MSG_PEEK | MSG_TRUNC, weft_deadline_in(SOON)), 10);
    cr_assert_eq(weft_recv(rx, buf, 4, MSG_TRUNC, weft_deadline_in(SOON)), 10);
    cr_assert_eq(memcmp(buf, "0123", 4), 0);
    cr_assert_eq(weft_recv(rx, buf, 0, 0, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_recvfrom(rx, buf, sizeof buf, 0, NULL, NULL, weft_deadline_in(SOON)), 5);
    cr_assert_eq(memcmp(buf, "third", 5), 0);
    cr_assert_eq(weft_recv(rx, buf, sizeof buf, MSG_DONTWAIT, weft_deadline_in(SOON)), -EAGAIN);
    cr_assert_eq(weft_close(rx), 0);
    cr_assert_eq(weft_close(tx), 0);
    return NULL;
}

Test(ported_net, datagram_peek_trunc_and_empty_buffers, .timeout = 30)
{
    run_main(udp_flags_main, NULL);
}

/* A receive given a NULL buffer (or recvfrom a NULL-page address) with a length is -EFAULT
 * (weft.h) and loses nothing: the datagram is there for the next receive, on both backends,
 * through weft_read, weft_readv, weft_recv and weft_recvfrom. The kernel takes the datagram
 * off the queue before it finds the bad buffer, and drops it. */
static void *bad_buffer_main(void *arg)
{
    (void)arg;
    weft_addr lo;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int rx = weft_datagram(&lo, AF_INET);
    int tx = weft_datagram(NULL, AF_INET);
    cr_assert_geq(rx, 0);
    cr_assert_geq(tx, 0);
    weft_addr to;
    cr_assert_eq(weft_addr_local(rx, &to), 0);
    cr_assert_eq(
        weft_sendto(tx, "dg", 2, 0, (struct sockaddr *)&to.ss, to.len, weft_deadline_in(SOON)), 2);
    cr_assert_eq(weft_fd_wait(rx, WEFT_READABLE, weft_deadline_in(SOON)), WEFT_READABLE);
    char buf[16];
    socklen_t flen = 16;
    struct iovec iov[2] = {{buf, 1}, {NULL, 4}};
    cr_assert_eq(weft_recv(rx, NULL, 10, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_recv(rx, NULL, 10, MSG_TRUNC, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_read(rx, NULL, 10, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_readv(rx, iov, 2, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_recvfrom(rx, NULL, 10, 0, NULL, NULL, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(
        weft_recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)8, &flen, weft_deadline_in(SOON)),
        -EFAULT);
    cr_assert_eq(
        weft_recvfrom(rx, buf, sizeof buf, 0, NULL, (socklen_t *)8, weft_deadline_in(SOON)),
        -EFAULT);
    cr_assert_eq(weft_recv(rx, buf, sizeof buf, MSG_DONTWAIT, weft_deadline_in(SOON)), 2,
                 "the datagram was lost");
    /* Addresses in the first page are -EFAULT too, as from the system calls (weft read their
     * family first, and the process died of SIGSEGV); a NULL sendto address is no address. */
    cr_assert_eq(weft_sendto(tx, "x", 1, 0, (struct sockaddr *)8, to.len, weft_deadline_in(SOON)),
                 -EFAULT);
    cr_assert_eq(weft_sendto(tx, "x", 1, 0, NULL, to.len, weft_deadline_in(SOON)), -EDESTADDRREQ);
    int s = weft_socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    cr_assert_eq(weft_connect(s, (struct sockaddr *)8, to.len, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_connect(s, NULL, to.len, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_close(s), 0);
    cr_assert_eq(memcmp(buf, "dg", 2), 0);
    cr_assert_eq(weft_close(rx), 0);
    cr_assert_eq(weft_close(tx), 0);
    return NULL;
}

Test(ported_net, a_receive_into_a_null_buffer_loses_no_datagram, .timeout = 30)
{
    run_main(bad_buffer_main, NULL);
}

/* The structures the socket calls read or fill, given as a pointer into the first page (what
 * &s->addr gives for a NULL s): -EFAULT, as the system calls answer a bad pointer, where
 * weft read the family (or the sendfile offset) first and crashed; NULL stays -EINVAL where
 * weft.h says so. */
static void *bad_struct_main(void *arg)
{
    (void)arg;
    weft_addr *bad = (weft_addr *)(uintptr_t)8;
    cr_assert_eq(weft_datagram(bad, AF_INET), -EFAULT);
    cr_assert_eq(weft_listen(bad, 0, 0), -EFAULT);
    cr_assert_eq(weft_dial(bad, SOON), -EFAULT);
    cr_assert_eq(weft_addr_port(bad), -EFAULT);
    cr_assert_eq(weft_addr_local(0, bad), -EFAULT);
    cr_assert_eq(weft_addr_ip(bad, "127.0.0.1", 80), -EFAULT);
    cr_assert_eq(weft_addr_unix(bad, "/tmp/x"), -EFAULT);
    weft_addr ok;
    cr_assert_eq(weft_addr_unix(&ok, (const char *)(uintptr_t)16), -EFAULT);
    cr_assert_eq(weft_addr_unix(&ok, NULL), -EINVAL);
    cr_assert_eq(weft_listen(NULL, 0, 0), -EINVAL);
    cr_assert_eq(weft_addr_port(NULL), -EINVAL);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_sendfile(p[1], fd, (off_t *)(uintptr_t)8, 10, SOON), -EFAULT);
    close(fd);
    close(p[0]);
    close(p[1]);
    return NULL;
}

Test(ported_net, a_socket_structure_in_the_first_page_is_efault, .timeout = 30)
{
    run_main(bad_struct_main, NULL);
}

/* Tokio uds_stream/mio unix_stream with SOCK_SEQPACKET and libuv's pipe tests: records keep
 * their bounds (a short buffer cuts one record, the rest of it is gone), a peer's SHUT_WR
 * reads as 0 after the records, and the closed peer then makes writes -EPIPE. */
static void *seqpacket_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_write(sv[1], "one", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_write(sv[1], "three", 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(weft_shutdown(sv[1], SHUT_WR), 0);
    char buf[16];
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_read(sv[0], buf, 2, weft_deadline_in(SOON)), 2);
    cr_assert_eq(memcmp(buf, "th", 2), 0);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_deadline_in(SOON)), 0, "stays at the end");
    cr_assert_eq(weft_close(sv[1]), 0);
    cr_assert_eq(weft_write(sv[0], "x", 1, weft_deadline_in(SOON)), -EPIPE);
    cr_assert_eq(weft_close(sv[0]), 0);
    return NULL;
}

Test(ported_net, seqpacket_records_keep_their_bounds_then_eof, .timeout = 30)
{
    run_main(seqpacket_main, NULL);
}

/* MSG_WAITALL on a seqpacket socket returns one record, as recv(2) does there (the flag is
 * for streams; unix_seqpacket_recvmsg reads one record whatever it says), through weft_recv
 * and weft_recvfrom. io_uring's receive retried the short record into the rest of the buffer
 * and returned "onethree", and the next receive then waited for a record that never came. */
static void *seqpacket_waitall_main(void *arg)
{
    (void)arg;
    for (int via_recvfrom = 0; via_recvfrom < 2; via_recvfrom++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(weft_write(sv[1], "one", 3, weft_deadline_in(SOON)), 3);
        cr_assert_eq(weft_write(sv[1], "three", 5, weft_deadline_in(SOON)), 5);
        const char *want[] = {"one", "three"};
        for (int i = 0; i < 2; i++) {
            char buf[16] = {0};
            ssize_t n =
                via_recvfrom
                    ? weft_recvfrom(sv[0], buf, 10, MSG_WAITALL, NULL, NULL, weft_deadline_in(SOON))
                    : weft_recv(sv[0], buf, 10, MSG_WAITALL, weft_deadline_in(SOON));
            cr_assert_eq(n, (ssize_t)strlen(want[i]), "record %d: %zd '%s'", i, n, buf);
            cr_assert_str_eq(buf, want[i]);
        }
        cr_assert_eq(weft_close(sv[0]), 0);
        cr_assert_eq(weft_close(sv[1]), 0);
    }
    return NULL;
}

Test(ported_net, waitall_on_seqpacket_returns_one_record, .timeout = 30)
{
    run_main(seqpacket_waitall_main, NULL);
}

/* ---- FIFOs ---------------------------------------------------------------------------------- */

#include "tmpdir_helpers.h"

static void *fifo_open_reader(void *arg)
{
    return (void *)(intptr_t)weft_file_open(arg, O_RDONLY | O_CLOEXEC, 0, weft_deadline_in(SOON));
}

/* Go's os TestFifoEOF and libuv's pipe tests on a named pipe: a blocking open of a FIFO waits
 * for the other end, as open(2) does (fifo_open), without holding up the worker; the reader
 * then gets every byte the writer sent, and 0 once the writer closed. An open with O_NONBLOCK
 * keeps open(2)'s answers: a reader opens at once, a writer with no reader is -ENXIO. */
static void *fifo_main(void *arg)
{
    const char *path = arg;
    cr_assert_eq(weft_file_open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0, weft_deadline_in(SOON)),
                 -ENXIO);
    weft_task *t = spawn_pinned(fifo_open_reader, (void *)path);
    wait_parked_or_done(t);
    cr_assert_eq(weft_task_status(t), WEFT_TASK_PARKED, "the reader's open waits for a writer");
    int wfd = weft_file_open(path, O_WRONLY | O_CLOEXEC, 0, weft_deadline_in(SOON));
    cr_assert_geq(wfd, 0, "%s", weft_strerror(wfd));
    int rfd = (int)(intptr_t)join_result(t);
    cr_assert_geq(rfd, 0, "%s", weft_strerror(rfd));
    cr_assert_eq(weft_file_write(wfd, "fifo", 4, weft_deadline_in(SOON)), 4);
    char buf[8];
    cr_assert_eq(weft_file_read(rfd, buf, sizeof buf, weft_deadline_in(SOON)), 4);
    cr_assert_eq(memcmp(buf, "fifo", 4), 0);
    cr_assert_eq(weft_close(wfd), 0);
    cr_assert_eq(weft_file_read(rfd, buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_close(rfd), 0);
    rfd = weft_file_open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0, weft_deadline_in(SOON));
    cr_assert_geq(rfd, 0);
    cr_assert_eq(weft_close(rfd), 0);
    return NULL;
}

Test(ported_net, a_fifo_open_waits_for_its_other_end, .timeout = 30)
{
    tmpdir_make("weft-fifo");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", at("fifo"));
    cr_assert_eq(mkfifo(path, 0600), 0);
    run_main(fifo_main, path);
    remove_tree(tmpdir_root);
}

/* ---- Processes ------------------------------------------------------------------------------ */

/* Reads fd to its end into buf (at most cap - 1 bytes, NUL-terminated); returns the count. */
static size_t read_to_end(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = weft_read(fd, buf + got, cap - 1 - got, weft_deadline_in(SOON));
        cr_assert_geq(n, 0, "%s", weft_strerror((int)n));
        if (n == 0 || got + (size_t)n == cap - 1) {
            got += (size_t)n;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = 0;
    return got;
}

/* Go's os/exec TestExtraFiles (a child inherits only the fds it is given) and libuv's
 * spawn_closed_fd tests: weft's own fds (the reactor's, the signal fd, pidfds, the ring) and
 * every fd it made for the caller (weft_socket, weft_listen, weft_dial, weft_accept,
 * weft_datagram, process pipes) are close-on-exec, so a child sees none of them. The test
 * marks the fds it inherited from the test runner close-on-exec first; the child's shell then
 * looks at each number by stat alone (a listing would open a directory fd of its own). */
static void *child_fds_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(weft_signal_wait(&set, 0), -ETIMEDOUT); /* makes the signal fd */
    int fds[2];
    tcp_pair(fds);
    weft_addr lo;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int ufd = weft_datagram(&lo, AF_INET);
    cr_assert_geq(ufd, 0);
    int sfd = weft_socket(AF_INET6, SOCK_STREAM, 0);
    cr_assert_geq(sfd, 0);
    char *sleeper_argv[] = {"/bin/sh", "-c", "exec sleep 30", NULL};
    weft_process *sleeper = NULL;
    weft_process_opts so = {.flags = WEFT_PROCESS_STDIN};
    cr_assert_eq(weft_process_spawn(&sleeper, "/bin/sh", sleeper_argv, NULL, &so), 0);
    char script[1024] = "for f in";
    for (int fd = 3; fd < 128; fd++)
        snprintf(script + strlen(script), sizeof script - strlen(script), " %d", fd);
    strcat(script, "; do if [ -e /proc/$$/fd/$f ]; then echo $f; fi; done");
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    weft_process *p = NULL;
    weft_process_opts o = {.flags = WEFT_PROCESS_STDOUT};
    cr_assert_eq(weft_process_spawn(&p, "/bin/sh", argv, NULL, &o), 0);
    char out[512];
    read_to_end(weft_process_stdio(p, 1), out, sizeof out);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert_str_eq(out, "", "the child inherited fds: %s", out);
    weft_process_free(p);
    cr_assert_eq(weft_process_kill(sleeper, SIGKILL), 0);
    cr_assert_eq(weft_process_wait(sleeper, &st, weft_deadline_in(SOON)), 0);
    weft_process_free(sleeper);
    cr_assert_eq(weft_close(sfd), 0);
    cr_assert_eq(weft_close(ufd), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, a_child_inherits_none_of_the_runtimes_fds, .timeout = 30)
{
    /* The runner's own fds (Criterion's pipes and arena) are not weft's to close. */
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (atoi(e->d_name) > 2)
            fcntl(atoi(e->d_name), F_SETFD, FD_CLOEXEC);
    closedir(d);
    run_main(child_fds_main, NULL);
}

/* libuv spawn_stdout_and_stdin and Go's os/exec TestPipes-style: a child that copies its
 * stdin to its stdout (cat) takes far more than a pipe holds, written by one task while
 * another reads: every byte comes back in order, then the end of file once stdin is closed;
 * the child exits 0. */
typedef struct feed_arg {
    weft_process *p;
    size_t len;
} feed_arg;

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

static void *feed_stdin(void *arg)
{
    feed_arg *f = arg;
    static unsigned char chunk[16384];
    int in = weft_process_stdio(f->p, 0);
    for (size_t off = 0; off < f->len; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pattern_byte(off + i);
        ssize_t n = weft_write(in, chunk, sizeof chunk, weft_deadline_in(SOON));
        if (n != (ssize_t)sizeof chunk)
            return (void *)(intptr_t)(n < 0 ? n : -EIO);
    }
    return (void *)(intptr_t)weft_process_close_stdio(f->p, 0);
}

static void *cat_main(void *arg)
{
    (void)arg;
    char *argv[] = {"/bin/cat", NULL};
    weft_process *p = NULL;
    weft_process_opts o = {.flags = WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT};
    cr_assert_eq(weft_process_spawn(&p, "/bin/cat", argv, NULL, &o), 0);
    feed_arg f = {.p = p, .len = 4u << 20};
    weft_task *t = spawn_pinned(feed_stdin, &f);
    int out = weft_process_stdio(p, 1);
    size_t got = 0;
    size_t bad = SIZE_MAX;
    static unsigned char buf[65536];
    for (;;) {
        ssize_t n = weft_read(out, buf, sizeof buf, weft_deadline_in(SOON));
        cr_assert_geq(n, 0, "%s", weft_strerror((int)n));
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n && bad == SIZE_MAX; i++)
            if (buf[i] != pattern_byte(got + (size_t)i))
                bad = got + (size_t)i;
        got += (size_t)n;
    }
    cr_assert_eq(join_result(t), NULL);
    cr_assert_eq(got, f.len);
    cr_assert_eq(bad, SIZE_MAX, "byte %zu differs", bad);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    weft_process_free(p);
    return NULL;
}

Test(ported_net, four_mib_through_cat_and_back, .timeout = 30)
{
    run_main(cat_main, NULL);
}

/* ---- Signals -------------------------------------------------------------------------------- */

/* Tokio signal_coalesce and the POSIX rules libuv's signal tests rest on: a standard signal
 * sent twice before a wait is delivered once (the second merges into the pending one), while
 * a real-time signal sent twice is queued and delivered twice. */
static void *coalesce_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN + 2);
    cr_assert_eq(weft_signal_wait(&set, 0), -ETIMEDOUT); /* blocked from here on */
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    union sigval v = {0};
    cr_assert_eq(sigqueue(getpid(), SIGRTMIN + 2, v), 0);
    cr_assert_eq(sigqueue(getpid(), SIGRTMIN + 2, v), 0);
    int got_usr1 = 0, got_rt = 0;
    for (int i = 0; i < 3; i++) {
        int s = weft_signal_wait(&set, weft_deadline_in(SOON));
        if (s == SIGUSR1)
            got_usr1++;
        else if (s == SIGRTMIN + 2)
            got_rt++;
        else
            cr_assert_fail("wait %d: %d", i, s);
    }
    cr_assert_eq(got_usr1, 1);
    cr_assert_eq(got_rt, 2);
    cr_assert_eq(weft_signal_wait(&set, 0), -ETIMEDOUT, "nothing is left");
    return NULL;
}

Test(ported_net, standard_signals_coalesce_and_realtime_ones_queue, .timeout = 30)
{
    run_main(coalesce_main, NULL);
}

/* ---- Copying between connections ------------------------------------------------------------ */

typedef struct copy_arg {
    int from, to;
} copy_arg;

/* One direction of a proxy: everything from `from` to `to` (weft_sendfile takes a socket as
 * in_fd), then the end of stream passed on. Returns the count or -errno. */
static void *copy_one_way(void *arg)
{
    copy_arg *c = arg;
    ssize_t n = weft_sendfile(c->to, c->from, NULL, SSIZE_MAX, weft_deadline_in(SOON));
    if (n < 0)
        return (void *)(intptr_t)n;
    int r = weft_shutdown(c->to, SHUT_WR);
    return (void *)(intptr_t)(r < 0 ? r : n);
}

typedef struct pump_arg {
    int fd;
    size_t len;
    unsigned char chunk[8192]; /* its own: a parked write may still be reading it */
} pump_arg;

static void *pump_out(void *arg)
{
    pump_arg *p = arg;
    unsigned char *chunk = p->chunk;
    for (size_t off = 0; off < p->len; off += sizeof p->chunk) {
        for (size_t i = 0; i < sizeof p->chunk; i++)
            chunk[i] = pattern_byte(off + i + (size_t)p->fd);
        if (weft_write(p->fd, chunk, sizeof p->chunk, weft_deadline_in(SOON)) != sizeof p->chunk)
            return (void *)(intptr_t)-EIO;
    }
    return (void *)(intptr_t)weft_shutdown(p->fd, SHUT_WR);
}

/* Reads fd to its end, checking the pattern pump_out wrote from fd `seed`; the count, or
 * SIZE_MAX at the first wrong byte or error. */
static size_t drain_checked(int fd, int seed)
{
    unsigned char buf[4096]; /* on the task's own stack: two drains may park at once */
    size_t got = 0;
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, weft_deadline_in(SOON));
        if (n < 0)
            return SIZE_MAX;
        if (n == 0)
            return got;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern_byte(got + (size_t)i + (size_t)seed))
                return SIZE_MAX;
        got += (size_t)n;
    }
}

typedef struct drain_arg {
    int fd, seed;
    size_t got;
} drain_arg;

static void *drain_task(void *arg)
{
    drain_arg *d = arg;
    d->got = drain_checked(d->fd, d->seed);
    return NULL;
}

/* Tokio io_copy_bidirectional (test_basic_transfer, test_transfer_after_close,
 * blocking_one_side_does_not_block_other): a proxy of two weft_sendfile tasks between a
 * client and a server. One side ending its stream ends that direction only (the end is passed
 * on), the other direction goes on; then 1 MiB each way at once crosses intact. */
static void *bidirectional_main(void *arg)
{
    (void)arg;
    int x[2], y[2]; /* x: client x[0] to proxy x[1]; y: proxy y[0] to server y[1] */
    tcp_pair(x);
    tcp_pair(y);
    copy_arg up = {.from = x[1], .to = y[0]}, down = {.from = y[0], .to = x[1]};
    weft_task *tu = spawn_pinned(copy_one_way, &up);
    weft_task *td = spawn_pinned(copy_one_way, &down);
    char buf[8];
    cr_assert_eq(weft_write(x[0], "hello", 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(weft_shutdown(x[0], SHUT_WR), 0);
    read_exactly(y[1], buf, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_eq(weft_read(y[1], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq((intptr_t)join_result(tu), 5);
    cr_assert_eq(weft_write(y[1], "world", 5, weft_deadline_in(SOON)), 5, "the other way goes on");
    read_exactly(x[0], buf, 5);
    cr_assert_eq(memcmp(buf, "world", 5), 0);
    cr_assert_eq(weft_shutdown(y[1], SHUT_WR), 0);
    cr_assert_eq(weft_read(x[0], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq((intptr_t)join_result(td), 5);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_close(x[i]), 0);
        cr_assert_eq(weft_close(y[i]), 0);
    }

    tcp_pair(x);
    tcp_pair(y);
    up = (copy_arg){.from = x[1], .to = y[0]};
    down = (copy_arg){.from = y[0], .to = x[1]};
    tu = spawn_pinned(copy_one_way, &up);
    td = spawn_pinned(copy_one_way, &down);
    size_t len = 1u << 20;
    static pump_arg pc, ps;
    pc.fd = x[0];
    pc.len = len;
    ps.fd = y[1];
    ps.len = len;
    weft_task *wc = spawn_pinned(pump_out, &pc);
    weft_task *ws = spawn_pinned(pump_out, &ps);
    drain_arg dc = {.fd = x[0], .seed = y[1]};
    weft_task *rc = spawn_pinned(drain_task, &dc);
    size_t at_server = drain_checked(y[1], x[0]);
    cr_assert_eq(join_result(rc), NULL);
    cr_assert_eq(at_server, len);
    cr_assert_eq(dc.got, len);
    cr_assert_eq(join_result(wc), NULL);
    cr_assert_eq(join_result(ws), NULL);
    cr_assert_eq((intptr_t)join_result(tu), (intptr_t)len);
    cr_assert_eq((intptr_t)join_result(td), (intptr_t)len);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_close(x[i]), 0);
        cr_assert_eq(weft_close(y[i]), 0);
    }
    return NULL;
}

Test(ported_net, a_sendfile_proxy_carries_both_ways_and_passes_each_end_on, .timeout = 30)
{
    run_main(bidirectional_main, NULL);
}

/* ---- Closing a child's pipes under parked calls -------------------------------------------- */

static void *write_forever(void *arg)
{
    weft_process *p = arg;
    static char chunk[65536];
    int in = weft_process_stdio(p, 0);
    for (;;) {
        ssize_t n = weft_write(in, chunk, sizeof chunk, weft_deadline_in(SOON));
        if (n < 0)
            return (void *)(intptr_t)n;
    }
}

static void *read_stdout(void *arg)
{
    weft_process *p = arg;
    char buf[64];
    return (void *)(intptr_t)weft_read(weft_process_stdio(p, 1), buf, sizeof buf,
                                       weft_deadline_in(SOON));
}

/* Go's os/exec TestStdinCloseRace and libuv's spawn_closed_process_io: closing the parent's
 * end of a child's stdin while a task is parked writing to it (the child reads nothing, so
 * the pipe is full) wakes the writer with -EBADF (weft_close wakes every waiter of the fd
 * with -EBADF, weft.h) instead of leaving it parked; weft_process_free likewise wakes a task
 * parked reading the child's stdout. The child is then killed and reaped as usual. */
static void *stdin_close_race_main(void *arg)
{
    (void)arg;
    char *argv[] = {"/bin/sh", "-c", "exec sleep 30", NULL};
    weft_process *p = NULL;
    weft_process_opts o = {.flags = WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT};
    cr_assert_eq(weft_process_spawn(&p, "/bin/sh", argv, NULL, &o), 0);
    weft_task *w = spawn_pinned(write_forever, p);
    weft_task *r = spawn_pinned(read_stdout, p);
    wait_parked(w);
    wait_parked(r);
    cr_assert_eq(weft_process_close_stdio(p, 0), 0);
    cr_assert_eq((intptr_t)join_result(w), -EBADF);
    cr_assert_eq(weft_process_close_stdio(p, 0), -EBADF, "closed already");
    cr_assert_eq(weft_process_stdio(p, 0), -EBADF);
    cr_assert_eq(weft_process_kill(p, SIGKILL), 0);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* The reader sees the end of file (the child's end closed when it died), or -EBADF if
     * the free below came first: never a hang. */
    weft_process_free(p);
    intptr_t rr = (intptr_t)join_result(r);
    cr_assert(rr == 0 || rr == -EBADF, "%ld", (long)rr);
    return NULL;
}

Test(ported_net, closing_a_childs_stdin_wakes_a_parked_writer, .timeout = 30)
{
    run_main(stdin_close_race_main, NULL);
}

/* The same with the runtime's end first: a task parked reading a child's stdout is woken
 * with -EBADF by weft_process_free from another task, while the child still runs. */
static void *free_under_reader_main(void *arg)
{
    (void)arg;
    char *argv[] = {"/bin/sh", "-c", "exec sleep 30", NULL};
    weft_process *p = NULL;
    weft_process_opts o = {.flags = WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR};
    cr_assert_eq(weft_process_spawn(&p, "/bin/sh", argv, NULL, &o), 0);
    weft_task *r = spawn_pinned(read_stdout, p);
    wait_parked(r);
    cr_assert_eq(weft_process_kill(p, SIGKILL), 0);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    weft_process_free(p);
    intptr_t rr = (intptr_t)join_result(r);
    cr_assert(rr == 0 || rr == -EBADF, "%ld", (long)rr);
    return NULL;
}

Test(ported_net, freeing_a_process_wakes_its_readers, .timeout = 30)
{
    run_main(free_under_reader_main, NULL);
}

/* ---- One fd, two directions, two deadlines -------------------------------------------------- */

typedef struct dir_arg {
    int fd;
    int64_t deadline;
    size_t wrote;
    ssize_t r;
} dir_arg;

/* Writes until the socket is full and a write parks, then that write's result. */
static void *fill_then_park(void *arg)
{
    dir_arg *d = arg;
    static char chunk[1 << 16];
    for (;;) {
        ssize_t n = weft_write(d->fd, chunk, sizeof chunk, d->deadline);
        if (n < 0) {
            d->r = n;
            return NULL;
        }
        d->wrote += (size_t)n;
        if (d->wrote >= (64u << 20)) {
            d->r = -EOVERFLOW; /* a socket that never fills: the test cannot go on */
            return NULL;
        }
    }
}

static void *read_once(void *arg)
{
    dir_arg *d = arg;
    char buf[64];
    d->r = weft_read(d->fd, buf, sizeof buf, d->deadline);
    return NULL;
}

/* Go's net/timeout_test (TestReadWriteDeadlineRace, TestReadTimeoutUnblocksRead-style) and
 * Tokio's split halves with their own timeouts: a read and a write parked on one socket at
 * once, each with its own deadline. The read timing out leaves the parked write alone (it
 * finishes once the peer drains), and a write timing out leaves a parked read alone (it gets
 * the bytes that come later). */
static void *two_deadlines_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    static dir_arg wr, rd;
    wr = (dir_arg){.fd = fds[0], .deadline = weft_deadline_in(SOON)};
    rd = (dir_arg){.fd = fds[0], .deadline = weft_deadline_in(20 * WEFT_MSEC)};
    weft_task *tw = spawn_pinned(fill_then_park, &wr);
    wait_parked(tw);
    weft_task *tr = spawn_pinned(read_once, &rd);
    cr_assert_eq(join_result(tr), NULL);
    cr_assert_eq(rd.r, -ETIMEDOUT);
    cr_assert_eq(weft_task_status(tw), WEFT_TASK_PARKED, "the write is still parked");
    /* Drain the peer until the parked write has finished and 4 MiB more went after it. */
    static char sink[1 << 16];
    size_t target = wr.wrote + (4u << 20);
    while (wr.wrote < target && wr.r == 0) {
        ssize_t n = weft_read(fds[1], sink, sizeof sink, weft_deadline_in(SOON));
        cr_assert_gt(n, 0, "%zd", n);
    }
    cr_assert_eq(wr.r, 0, "the write went on: %zd", wr.r);
    cr_assert_eq(weft_cancel(tw), 0);
    join_result(tw);
    cr_assert_eq(wr.r, -ECANCELED);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    /* The other way round: a write that times out under a parked read. */
    tcp_pair(fds);
    rd = (dir_arg){.fd = fds[0], .deadline = weft_deadline_in(SOON)};
    tr = spawn_pinned(read_once, &rd);
    wait_parked(tr);
    wr = (dir_arg){.fd = fds[0], .deadline = weft_deadline_in(20 * WEFT_MSEC)};
    tw = spawn_pinned(fill_then_park, &wr);
    cr_assert_eq(join_result(tw), NULL);
    cr_assert_eq(wr.r, -ETIMEDOUT);
    cr_assert_eq(weft_task_status(tr), WEFT_TASK_PARKED, "the read is still parked");
    cr_assert_eq(weft_write(fds[1], "late", 4, weft_deadline_in(SOON)), 4);
    cr_assert_eq(join_result(tr), NULL);
    cr_assert_eq(rd.r, 4);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, a_read_and_a_write_on_one_socket_keep_their_own_deadlines, .timeout = 30)
{
    run_main(two_deadlines_main, NULL);
}

/* ---- A signal and several runtimes --------------------------------------------------------- */

#include <pthread.h>
#include <stdatomic.h>

typedef struct loop_job {
    atomic_int calls;
    atomic_int *ready; /* runtimes whose watch is in place */
    atomic_int *stop;
    int rc;
} loop_job;

static void count_signal(weft_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    atomic_fetch_add(&((loop_job *)arg)->calls, 1);
}

static void *signal_loop_main(void *arg)
{
    loop_job *j = arg;
    weft_watch *w = NULL;
    if (weft_watch_add(&w, SIGUSR2, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0, count_signal, j) < 0)
        return (void *)(intptr_t)-1;
    atomic_fetch_add(j->ready, 1);
    int64_t end = weft_deadline_in(SOON);
    while (!atomic_load(j->stop) && weft_now() < end)
        weft_sleep(WEFT_MSEC);
    weft_watch_del(w);
    return NULL;
}

static void *signal_loop_thread(void *arg)
{
    loop_job *j = arg;
    void *r = NULL;
    j->rc = weft_run(NULL, signal_loop_main, j, &r);
    return r;
}

/* libuv test-signal-multiple-loops and Tokio's signal multi_rt: a signal watched in several
 * runtimes (each on its own thread) reaches the watch of every one of them, each time it is
 * sent, as it reaches every loop's handler in libuv and every runtime's listener in Tokio. */
Test(ported_net, a_signal_reaches_the_watches_of_every_runtime, .timeout = 30)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0); /* every thread from here on */
    enum { NLOOPS = 3 };
    atomic_int ready = 0, stop = 0;
    static loop_job jobs[NLOOPS];
    pthread_t th[NLOOPS];
    for (int i = 0; i < NLOOPS; i++) {
        jobs[i] = (loop_job){.ready = &ready, .stop = &stop};
        cr_assert_eq(pthread_create(&th[i], NULL, signal_loop_thread, &jobs[i]), 0);
    }
    while (atomic_load(&ready) < NLOOPS)
        usleep(1000);
    int all = 0;
    for (int round = 1; round <= 2; round++) {
        cr_assert_eq(kill(getpid(), SIGUSR2), 0);
        for (int spins = 0; spins < 10000; spins++) { /* 10 s: only a lost signal gets there */
            all = 1;
            for (int i = 0; i < NLOOPS; i++)
                all &= atomic_load(&jobs[i].calls) >= round;
            if (all)
                break;
            usleep(1000);
        }
        if (!all)
            break;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NLOOPS; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_eq(jobs[i].rc, 0);
        cr_assert_null(r);
    }
    for (int i = 0; i < NLOOPS; i++)
        cr_assert_eq(atomic_load(&jobs[i].calls), 2, "runtime %d saw %d of 2", i,
                     atomic_load(&jobs[i].calls));
}

/* The hub of signal watches is the process's: in a fork()'s child, a runtime's watch of a
 * signal the parent's runtime watched at the fork still gets it (the parent's watch, the
 * signal's reader in the hub, does not exist in the child; it waited for ever). */
static void *child_watch_main(void *arg)
{
    loop_job *j = arg;
    weft_watch *w = NULL;
    if (weft_watch_add(&w, SIGUSR2, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0, count_signal, j) < 0)
        return (void *)(intptr_t)-1;
    weft_yield(); /* the watch's task runs and waits */
    kill(getpid(), SIGUSR2);
    int64_t end = weft_deadline_in(5 * WEFT_SEC); /* only a lost signal gets there */
    while (atomic_load(&j->calls) < 1 && weft_now() < end)
        weft_sleep(WEFT_MSEC);
    weft_watch_del(w);
    return atomic_load(&j->calls) >= 1 ? NULL : (void *)(intptr_t)-2;
}

Test(ported_net, a_signal_watch_in_a_forked_childs_runtime_gets_its_signal, .timeout = 30)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    atomic_int ready = 0, stop = 0;
    static loop_job parent;
    parent = (loop_job){.ready = &ready, .stop = &stop};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, signal_loop_thread, &parent), 0);
    while (atomic_load(&ready) < 1)
        usleep(1000);
    /* An arrival seen by the parent's watch: it is subscribed, and the signal's reader. */
    cr_assert_eq(kill(getpid(), SIGUSR2), 0);
    for (int spins = 0; spins < 10000 && atomic_load(&parent.calls) < 1; spins++)
        usleep(1000);
    cr_assert_eq(atomic_load(&parent.calls), 1);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        static loop_job child;
        void *r = (void *)1;
        int rc = weft_run(NULL, child_watch_main, &child, &r);
        _exit(rc == 0 && r == NULL ? 0 : 1);
    }
    int status = -1;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    atomic_store(&stop, 1);
    void *r;
    pthread_join(th, &r);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's watch: status %#x",
              status);
    cr_assert_eq(parent.rc, 0);
}

static atomic_int seq_calls;

static void count_seq(weft_watch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
    atomic_fetch_add(&seq_calls, 1);
}

/* One runtime of a sequence: a watch of SIGUSR2 and a wait on SIGUSR1 both get their signal. */
static void *sequential_main(void *arg)
{
    int want = (int)(intptr_t)arg;
    weft_watch *w = NULL;
    cr_assert_eq(
        weft_watch_add(&w, SIGUSR2, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0, count_seq, NULL), 0);
    weft_yield(); /* the watch's task runs and waits */
    cr_assert_eq(kill(getpid(), SIGUSR2), 0);
    int64_t end = weft_deadline_in(SOON);
    while (atomic_load(&seq_calls) < want && weft_now() < end)
        weft_sleep(WEFT_MSEC);
    cr_assert_eq(atomic_load(&seq_calls), want);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(weft_signal_wait(&set, 0), -ETIMEDOUT);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(SOON)), SIGUSR1);
    cr_assert_eq(weft_watch_del(w), 0);
    return NULL;
}

/* Tokio's signal drop_then_get_a_signal and libuv's loops made one after another: a runtime
 * that ends leaves nothing behind that keeps the next one's watch or wait from its signal. */
Test(ported_net, signals_reach_runtimes_made_one_after_another, .timeout = 30)
{
    for (int i = 1; i <= 3; i++)
        run_main(sequential_main, (void *)(intptr_t)i);
}

/* ---- Many children at once ------------------------------------------------------------------ */

/* Spawns `/bin/sh -c 'exit N'` and waits for it: its exit status, or a negative errno. */
static void *spawn_and_wait(void *arg)
{
    int code = (int)(intptr_t)arg;
    char script[32];
    snprintf(script, sizeof script, "exit %d", code);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    weft_process *p = NULL;
    int r = weft_process_spawn(&p, "/bin/sh", argv, NULL, NULL);
    if (r < 0)
        return (void *)(intptr_t)r;
    int st = -1;
    r = weft_process_wait(p, &st, weft_deadline_in(SOON));
    weft_process_free(p);
    if (r < 0)
        return (void *)(intptr_t)r;
    return (void *)(intptr_t)(WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + st);
}

/* Tokio's process_issue_42 and libuv's spawn_exercise_sigchld_issue: many children spawned
 * from tasks on every worker, exiting at about the same time, are each reaped by their own
 * waiter with their own status; no wait is lost or given another child's status. */
static void *many_children_main(void *arg)
{
    (void)arg;
    enum { NCHILD = 32 };
    weft_task *t[NCHILD];
    unsigned n = weft_worker_count();
    for (int i = 0; i < NCHILD; i++)
        cr_assert_eq(
            weft_spawn_on((unsigned)i % n, &t[i], spawn_and_wait, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < NCHILD; i++)
        cr_assert_eq((intptr_t)join_result(t[i]), i, "child %d", i);
    return NULL;
}

Test(ported_net, many_children_exiting_together_are_each_reaped_once, .timeout = 30)
{
    run_main(many_children_main, NULL);
}

/* ---- The error queue ------------------------------------------------------------------------ */

/* recv(2) with MSG_ERRQUEUE never waits: an empty error queue is EAGAIN at once (Go's and
 * libuv's users read it for SO_TIMESTAMPING, SO_ZEROCOPY and IP_RECVERR messages after
 * POLLERR). weft waited for readability until the deadline instead (on io_uring spinning while
 * stream bytes were queued), and on io_uring, once the socket had been read, returned the
 * stream bytes it held as if they were error messages, so the next read missed them. A UDP
 * socket with IP_RECVERR does get its message (the datagram that drew the ICMP error). */
static void *errqueue_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[64];
    cr_assert_eq(weft_recv(fds[0], buf, sizeof buf, MSG_ERRQUEUE, weft_deadline_in(SOON)), -EAGAIN);
    cr_assert_eq(weft_write(fds[1], "abc", 3, weft_deadline_in(SOON)), 3);
    read_exactly(fds[0], buf, 3); /* io_uring's receive is armed from here on */
    cr_assert_eq(weft_write(fds[1], "xyz", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, weft_deadline_in(SOON)), WEFT_READABLE);
    memset(buf, 0, sizeof buf);
    cr_assert_eq(weft_recv(fds[0], buf, sizeof buf, MSG_ERRQUEUE, weft_deadline_in(SOON)), -EAGAIN,
                 "'%s'", buf);
    cr_assert_eq(
        weft_recvfrom(fds[0], buf, sizeof buf, MSG_ERRQUEUE, NULL, NULL, weft_deadline_in(SOON)),
        -EAGAIN);
    cr_assert_eq(weft_read(fds[0], buf, sizeof buf, weft_deadline_in(SOON)), 3);
    cr_assert_eq(memcmp(buf, "xyz", 3), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    weft_addr lo;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int gone = weft_datagram(&lo, AF_INET);
    cr_assert_geq(gone, 0);
    weft_addr dead;
    cr_assert_eq(weft_addr_local(gone, &dead), 0);
    cr_assert_eq(weft_close(gone), 0);
    int fd = weft_datagram(&lo, AF_INET);
    cr_assert_geq(fd, 0);
    int on = 1;
    cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&dead.ss, dead.len), 0);
    cr_assert_eq(weft_recv(fd, buf, sizeof buf, MSG_ERRQUEUE, weft_deadline_in(SOON)), -EAGAIN);
    cr_assert_eq(weft_send(fd, "q", 1, 0, weft_deadline_in(SOON)), 1);
    cr_assert_eq(weft_recv(fd, buf, sizeof buf, 0, weft_deadline_in(SOON)), -ECONNREFUSED);
    cr_assert_eq(weft_recv(fd, buf, sizeof buf, MSG_ERRQUEUE, weft_deadline_in(SOON)), 1);
    cr_assert_eq(buf[0], 'q');
    cr_assert_eq(weft_recv(fd, buf, sizeof buf, MSG_ERRQUEUE, weft_deadline_in(SOON)), -EAGAIN);
    cr_assert_eq(weft_close(fd), 0);
    return NULL;
}

Test(ported_net, the_error_queue_is_read_at_once_and_never_takes_stream_bytes, .timeout = 30)
{
    run_main(errqueue_main, NULL);
}

/* A proxy whose source connection was read through weft first (a header, say, before the
 * body is passed on with weft_sendfile, as an HTTP proxy does): the bytes that came after the
 * read reach the other side, all of them and in order. On io_uring weft's armed receive holds
 * them, and the splice of the socket found it empty (the call returned 0 and the bytes were
 * lost) or raced the receive for the rest. */
static void *sendfile_after_read_main(void *arg)
{
    (void)arg;
    int x[2], y[2];
    tcp_pair(x);
    tcp_pair(y);
    char hdr[4];
    cr_assert_eq(weft_write(x[0], "HDR:", 4, weft_deadline_in(SOON)), 4);
    read_exactly(x[1], hdr, 4);
    cr_assert_eq(weft_write(x[0], "hello", 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(weft_fd_wait(x[1], WEFT_READABLE, weft_deadline_in(SOON)), WEFT_READABLE);
    cr_assert_eq(weft_shutdown(x[0], SHUT_WR), 0);
    cr_assert_eq(weft_sendfile(y[0], x[1], NULL, 100, weft_deadline_in(SOON)), 5);
    char buf[8];
    read_exactly(y[1], buf, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_close(x[i]), 0);
        cr_assert_eq(weft_close(y[i]), 0);
    }

    /* 1 MiB written while the sendfile runs, after a first read. */
    tcp_pair(x);
    tcp_pair(y);
    cr_assert_eq(weft_write(x[0], "HDR:", 4, weft_deadline_in(SOON)), 4);
    read_exactly(x[1], hdr, 4);
    static pump_arg pa;
    pa.fd = x[0];
    pa.len = 1u << 20;
    weft_task *wt = spawn_pinned(pump_out, &pa);
    drain_arg d = {.fd = y[1], .seed = x[0]};
    weft_task *rt = spawn_pinned(drain_task, &d);
    cr_assert_eq(weft_sendfile(y[0], x[1], NULL, SSIZE_MAX, weft_deadline_in(SOON)), 1 << 20);
    cr_assert_eq(weft_shutdown(y[0], SHUT_WR), 0);
    cr_assert_eq(join_result(wt), NULL);
    cr_assert_eq(join_result(rt), NULL);
    cr_assert_eq(d.got, (size_t)1 << 20);
    off_t off = 0;
    cr_assert_eq(weft_sendfile(y[0], x[1], &off, 1, weft_deadline_in(SOON)), -ESPIPE);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_close(x[i]), 0);
        cr_assert_eq(weft_close(y[i]), 0);
    }
    return NULL;
}

Test(ported_net, sendfile_from_a_socket_read_before_sends_what_came_after, .timeout = 30)
{
    run_main(sendfile_after_read_main, NULL);
}

/* ---- The receive and send calls on both backends: buffers, MSG_TRUNC, MSG_OOB, MSG_DONTWAIT ---
 */

/* A file call given a NULL buffer (one in the first page) with a length is -EFAULT before any
 * I/O, as the socket calls are (weft.h): read(2) at the end of a file answers 0 without looking
 * at the buffer, and epoll's page-cache read did, where io_uring answered -EFAULT. Writes
 * likewise change nothing; a length of 0 is no buffer at all. weft_write, weft_send and
 * weft_sendto say the same before the kernel does: a pipe whose reader is gone said -EPIPE on
 * epoll (the kernel looks for readers first) and -EFAULT on io_uring. */
static void *file_null_buffer_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-nullbuf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(weft_file_write(fd, "abc", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_file_read(fd, NULL, 10, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_read(fd, (void *)8, 10, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_pread(fd, NULL, 10, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_pread(fd, NULL, 10, 100, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_read(fd, NULL, 0, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_file_write(fd, NULL, 10, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_pwrite(fd, NULL, 10, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_file_write(fd, NULL, 0, weft_deadline_in(SOON)), 0);
    char buf[8];
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, weft_deadline_in(SOON)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 3, "a refused call moved the file position");
    cr_assert_eq(lseek(fd, 0, SEEK_END), 3, "a refused write changed the file");
    cr_assert_eq(weft_close(fd), 0);

    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_write(p[1], NULL, 10, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_close(p[1]), 0);
    int s[2];
    tcp_pair(s);
    cr_assert_eq(weft_shutdown(s[0], SHUT_WR), 0);
    cr_assert_eq(weft_send(s[0], NULL, 10, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_sendto(s[0], NULL, 10, 0, NULL, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_close(s[0]), 0);
    cr_assert_eq(weft_close(s[1]), 0);
    return NULL;
}

Test(ported_net, file_and_write_calls_refuse_a_null_buffer_on_both_backends, .timeout = 30)
{
    run_main(file_null_buffer_main, NULL);
}

/* MSG_TRUNC on a TCP receive discards the bytes (tcp_recvmsg counts them without copying):
 * it returns the count and leaves the caller's buffer as it was; with MSG_PEEK it counts them
 * and takes none. io_uring's held bytes were copied into the buffer, as a plain read. First as
 * the socket's first receive, then once weft has read it (io_uring's receive armed). */
static void *tcp_trunc_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[8];
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(weft_write(fds[1], "abcdef", 6, weft_deadline_in(SOON)), 6);
        memset(buf, 'z', sizeof buf);
        cr_assert_eq(weft_recv(fds[0], buf, 2, MSG_TRUNC | MSG_PEEK, weft_deadline_in(SOON)), 2);
        cr_assert_eq(weft_recv(fds[0], buf, 3, MSG_TRUNC, weft_deadline_in(SOON)), 3);
        cr_assert_eq(memcmp(buf, "zzzzzzzz", 8), 0, "round %d: MSG_TRUNC copied %.8s", round, buf);
        read_exactly(fds[0], buf, 3);
        cr_assert_eq(memcmp(buf, "def", 3), 0, "round %d: read %.3s after the discard", round, buf);
    }
    /* weft_recvfrom takes the same path. */
    cr_assert_eq(weft_write(fds[1], "ghij", 4, weft_deadline_in(SOON)), 4);
    memset(buf, 'z', sizeof buf);
    cr_assert_eq(weft_recvfrom(fds[0], buf, 2, MSG_TRUNC, NULL, NULL, weft_deadline_in(SOON)), 2);
    cr_assert_eq(memcmp(buf, "zz", 2), 0);
    read_exactly(fds[0], buf, 2);
    cr_assert_eq(memcmp(buf, "ij", 2), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, msg_trunc_on_tcp_discards_the_bytes, .timeout = 30)
{
    run_main(tcp_trunc_main, NULL);
}

/* recv(2) with MSG_OOB never waits (tcp_recv_urg): with no urgent byte it says -EINVAL at
 * once. On io_uring, once weft had read the socket, it waited for the stream's next bytes and
 * returned them as if urgent; on both backends an urgent mark whose byte had not come yet
 * (-EAGAIN) waited for readability. */
static void *oob_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[8];
    cr_assert_eq(weft_recv(fds[0], buf, 1, MSG_OOB, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_write(fds[1], "a", 1, weft_deadline_in(SOON)), 1);
    read_exactly(fds[0], buf, 1); /* io_uring's receive is armed from here */
    cr_assert_eq(weft_recv(fds[0], buf, 1, MSG_OOB, weft_deadline_in(SOON)), -EINVAL);
    cr_assert_eq(weft_recvfrom(fds[0], buf, 1, MSG_OOB, NULL, NULL, weft_deadline_in(SOON)),
                 -EINVAL);
    /* With stream bytes held, the urgent receive still asks the socket, not the stream. */
    cr_assert_eq(weft_write(fds[1], "bc", 2, weft_deadline_in(SOON)), 2);
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, weft_deadline_in(SOON)), WEFT_READABLE);
    cr_assert_eq(weft_recv(fds[0], buf, 1, MSG_OOB, weft_deadline_in(SOON)), -EINVAL);
    read_exactly(fds[0], buf, 2);
    cr_assert_eq(memcmp(buf, "bc", 2), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, msg_oob_never_waits, .timeout = 30)
{
    run_main(oob_main, NULL);
}

/* A send with MSG_DONTWAIT makes one attempt, as send(2) does: what the socket took (a short
 * count), or -EAGAIN when it took nothing, whatever the deadline; weft_send waited for room
 * to write the rest, on both backends, and so did weft_sendto (a Unix-domain address whose
 * receiver is full included: it slept and tried again until the deadline). */
static void *send_dontwait_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    /* Small buffers (the kernel doubles them), so that 1 MiB is more than both hold. */
    int small = 32 << 10;
    cr_assert_eq(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    cr_assert_eq(setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    size_t big = 1u << 20;
    char *p = calloc(1, big);
    cr_assert_not_null(p);
    ssize_t n = weft_send(fds[0], p, big, MSG_DONTWAIT, weft_deadline_in(SOON));
    cr_assert(n > 0 && (size_t)n < big, "a send of 1 MiB with MSG_DONTWAIT gave %zd", n);
    /* The socket may take a little more as the receiver's queue is processed: until it takes
     * nothing, each call returns at once. */
    while ((n = weft_send(fds[0], p, big, MSG_DONTWAIT, weft_deadline_in(SOON))) > 0)
        ;
    cr_assert_eq(n, -EAGAIN);
    cr_assert_eq(weft_sendto(fds[0], p, 1, MSG_DONTWAIT, NULL, 0, weft_deadline_in(SOON)), -EAGAIN);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    /* A Unix datagram to an address whose receiver's queue is full. */
    int rx = weft_socket(AF_UNIX, SOCK_DGRAM, 0);
    int tx = weft_socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert_geq(rx, 0);
    cr_assert_geq(tx, 0);
    weft_addr a;
    char name[64];
    snprintf(name, sizeof name, "@weft-dontwait-%d", (int)getpid());
    cr_assert_eq(weft_addr_unix(&a, name), 0);
    cr_assert_eq(bind(rx, (struct sockaddr *)&a.ss, a.len), 0);
    while ((n = weft_sendto(tx, p, 64, MSG_DONTWAIT, (struct sockaddr *)&a.ss, a.len,
                            weft_deadline_in(SOON))) == 64)
        ;
    cr_assert_eq(n, -EAGAIN);
    cr_assert_eq(weft_close(rx), 0);
    cr_assert_eq(weft_close(tx), 0);
    free(p);
    return NULL;
}

Test(ported_net, send_with_msg_dontwait_never_waits, .timeout = 30)
{
    run_main(send_dontwait_main, NULL);
}

static void *mark_ran(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

/* On io_uring a small weft_write to a socket weft has read is sent behind (weft.h); a
 * weft_send with MSG_DONTWAIT right after it parked until that send was over, which let every
 * other task of the worker run. Now it takes the completions the kernel has and sends, or
 * says -EAGAIN: the task spawned before it has not run when it returns, on both backends. */
static void *send_dontwait_behind_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[4];
    cr_assert_eq(weft_write(fds[1], "x", 1, weft_deadline_in(SOON)), 1);
    read_exactly(fds[0], buf, 1); /* io_uring's receive is armed: writes may go behind */
    int ran = 0;
    weft_task *t = spawn_pinned(mark_ran, &ran);
    cr_assert_eq(weft_write(fds[0], "a", 1, weft_deadline_in(SOON)), 1);
    ssize_t n = weft_send(fds[0], "b", 1, MSG_DONTWAIT, weft_deadline_in(SOON));
    cr_assert_eq(ran, 0, "the send with MSG_DONTWAIT parked");
    cr_assert(n == 1 || n == -EAGAIN, "the send gave %zd", n);
    cr_assert_eq(join_result(t), NULL);
    read_exactly(fds[1], buf, n == 1 ? 2 : 1);
    cr_assert_eq(memcmp(buf, n == 1 ? "ab" : "a", n == 1 ? 2 : 1), 0);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, send_with_msg_dontwait_does_not_wait_for_a_send_behind, .timeout = 30)
{
    run_main(send_dontwait_behind_main, NULL);
}

/* A receive that does not wait (MSG_DONTWAIT; MSG_ERRQUEUE and MSG_OOB, which never wait) on
 * a socket with nothing to give answers at once, as recv(2) does, without letting the
 * worker's other tasks run: on io_uring it went through a ring operation, which parked the
 * task for the ring's round trip, and the task spawned just before it ran meanwhile. Each
 * call first as the socket's first receive, then with io_uring's receive armed; then a UDP
 * socket's. */
static ssize_t recv_alone(int fd, int flags, bool from)
{
    int ran = 0;
    char buf[8];
    weft_task *t = spawn_pinned(mark_ran, &ran);
    ssize_t n = from ? weft_recvfrom(fd, buf, sizeof buf, flags, NULL, NULL, weft_deadline_in(SOON))
                     : weft_recv(fd, buf, sizeof buf, flags, weft_deadline_in(SOON));
    cr_assert_eq(ran, 0, "the receive with flags %#x (recvfrom %d) parked: %zd", flags, from, n);
    cr_assert_eq(join_result(t), NULL);
    return n;
}

static void *recv_dontwait_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[4];
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(recv_alone(fds[0], MSG_DONTWAIT, false), -EAGAIN, "round %d", round);
        cr_assert_eq(recv_alone(fds[0], MSG_DONTWAIT, true), -EAGAIN, "round %d", round);
        cr_assert_eq(recv_alone(fds[0], MSG_ERRQUEUE, false), -EAGAIN, "round %d", round);
        cr_assert_eq(recv_alone(fds[0], MSG_OOB, false), -EINVAL, "round %d", round);
        cr_assert_eq(weft_write(fds[1], "x", 1, weft_deadline_in(SOON)), 1);
        read_exactly(fds[0], buf, 1); /* io_uring's receive is armed from here */
    }
    /* The bytes the armed receive holds still come first, and in order. */
    cr_assert_eq(weft_write(fds[1], "ab", 2, weft_deadline_in(SOON)), 2);
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE, weft_deadline_in(SOON)), WEFT_READABLE);
    cr_assert_eq(weft_recv(fds[0], buf, 1, MSG_DONTWAIT, weft_deadline_in(SOON)), 1);
    cr_assert_eq(buf[0], 'a');
    cr_assert_eq(weft_recv(fds[0], buf, 1, MSG_DONTWAIT, weft_deadline_in(SOON)), 1);
    cr_assert_eq(buf[0], 'b');
    cr_assert_eq(recv_alone(fds[0], MSG_DONTWAIT, false), -EAGAIN);
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);

    int u = weft_socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_geq(u, 0);
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(u, (struct sockaddr *)&a.ss, a.len), 0);
    cr_assert_eq(recv_alone(u, MSG_DONTWAIT, false), -EAGAIN);
    cr_assert_eq(recv_alone(u, MSG_DONTWAIT, true), -EAGAIN);
    cr_assert_eq(weft_close(u), 0);
    return NULL;
}

Test(ported_net, recv_with_msg_dontwait_on_an_empty_socket_lets_no_task_run, .timeout = 30)
{
    run_main(recv_dontwait_main, NULL);
}

/* recv(fd, NULL, n, MSG_TRUNC) on a TCP socket discards n bytes without copying them
 * (tcp_recvmsg), a common way to skip input; with MSG_PEEK it counts them. weft answered
 * -EFAULT under its NULL-buffer rule, which still holds for everything else: a NULL buffer
 * without MSG_TRUNC, or on a datagram socket (a_receive_into_a_null_buffer_loses_no_datagram).
 * First as the socket's first receive, then with io_uring's receive armed (its held bytes are
 * skipped). */
static void *tcp_trunc_null_main(void *arg)
{
    (void)arg;
    int fds[2];
    tcp_pair(fds);
    char buf[8];
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(weft_write(fds[1], "abcdefghij", 10, weft_deadline_in(SOON)), 10);
        cr_assert_eq(weft_recv(fds[0], NULL, 3, 0, weft_deadline_in(SOON)), -EFAULT);
        cr_assert_eq(weft_recv(fds[0], NULL, 2, MSG_TRUNC | MSG_PEEK, weft_deadline_in(SOON)), 2,
                     "round %d", round);
        cr_assert_eq(weft_recv(fds[0], NULL, 3, MSG_TRUNC, weft_deadline_in(SOON)), 3, "round %d",
                     round);
        cr_assert_eq(weft_recvfrom(fds[0], NULL, 2, MSG_TRUNC, NULL, NULL, weft_deadline_in(SOON)),
                     2, "round %d", round);
        cr_assert_eq(weft_recv(fds[0], NULL, 3, MSG_TRUNC | MSG_WAITALL, weft_deadline_in(SOON)), 3,
                     "round %d", round);
        read_exactly(fds[0], buf, 2);
        cr_assert_eq(memcmp(buf, "ij", 2), 0, "round %d: read %.2s after the skips", round, buf);
    }
    cr_assert_eq(weft_close(fds[0]), 0);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported_net, recv_with_msg_trunc_skips_tcp_input_into_a_null_buffer, .timeout = 30)
{
    run_main(tcp_trunc_null_main, NULL);
}
