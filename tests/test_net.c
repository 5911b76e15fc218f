/* Sockets on loopback: echo round trips (TCP over IPv4 and IPv6, Unix stream), connection
 * refused, deadlines, cancellation and close while parked, half-close and reset, UDP and
 * Unix datagrams, sendfile, 5,000 concurrent connections, and a server that survives
 * running out of fds. Every test is bounded in count and time and uses port 0. */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* ---- An echo server: one task per connection, accepting until cancelled ---- */

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            break;
        if (weft_write(fd, buf, (size_t)n, WEFT_FOREVER) < 0)
            break;
    }
    weft_close(fd);
    return NULL;
}

/* How many connections the echo servers accepted (five_thousand_concurrent_connections
 * paces its connects by it). */
static atomic_int echo_accepted;

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (c < 0)
            break; /* cancelled */
        atomic_fetch_add(&echo_accepted, 1);
        weft_spawn(NULL, echo_conn, (void *)(intptr_t)c,
                   &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    }
    weft_close(lfd);
    return NULL;
}

/* Starts an echo server on `addr` (port 0: any), returns its task; *out gets the address. */
static weft_task *start_echo(const weft_addr *addr, weft_addr *out)
{
    int lfd = weft_listen(addr, 0, 0);
    cr_assert_geq(lfd, 0, "listen: %s", weft_strerror(lfd));
    if (addr->ss.ss_family == AF_UNIX)
        *out = *addr;
    else
        cr_assert_eq(weft_addr_local(lfd, out), 0);
    weft_task *t;
    weft_spawn(&t, echo_server, (void *)(intptr_t)lfd, NULL);
    return t;
}

static void stop(weft_task *t)
{
    weft_cancel(t);
    weft_join(t, NULL, WEFT_FOREVER);
}

static void round_trip(const weft_addr *srv)
{
    int fd = weft_dial(srv, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(fd, 0, "dial: %s", weft_strerror(fd));
    for (int i = 0; i < 100; i++) {
        char msg[64], back[64];
        memset(msg, 'a' + i % 26, sizeof msg);
        cr_assert_eq(weft_write(fd, msg, sizeof msg, WEFT_FOREVER), (ssize_t)sizeof msg);
        size_t got = 0;
        while (got < sizeof back) {
            ssize_t n = weft_read(fd, back + got, sizeof back - got, weft_deadline_in(WEFT_SEC));
            cr_assert_gt(n, 0, "read: %s", weft_strerror((int)n));
            got += (size_t)n;
        }
        cr_assert_eq(memcmp(msg, back, sizeof msg), 0);
    }
    cr_assert_eq(weft_close(fd), 0);
}

static void *echo_main(void *arg)
{
    const char *host = arg;
    weft_addr a, srv;
    cr_assert_eq(weft_addr_ip(&a, host, 0), 0);
    weft_task *t = start_echo(&a, &srv);
    cr_assert_gt(weft_addr_port(&srv), 0);
    round_trip(&srv);
    round_trip(&srv);
    stop(t);
    return NULL;
}

Test(net, tcp_echo_round_trips_ipv4)
{
    run_main(echo_main, "127.0.0.1");
}

Test(net, tcp_echo_round_trips_ipv6)
{
    run_main(echo_main, "[::1]");
}

static void *unix_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-test-%d.sock", (int)getpid());
    unlink(path);
    weft_addr a, srv;
    cr_assert_eq(weft_addr_unix(&a, path), 0);
    weft_task *t = start_echo(&a, &srv);
    round_trip(&srv);
    stop(t);
    unlink(path);
    return NULL;
}

Test(net, unix_stream_echo)
{
    run_main(unix_main, NULL);
}

static void *refused_main(void *arg)
{
    (void)arg;
    /* Bind a port, then close it: nothing listens there. */
    weft_addr a, b;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 0, 0);
    weft_addr_local(lfd, &b);
    weft_close(lfd);
    cr_assert_eq(weft_dial(&b, weft_deadline_in(WEFT_SEC)), -ECONNREFUSED);
    cr_assert_eq(weft_addr_ip(&a, "not-an-address", 1), -EINVAL);
    cr_assert_eq(weft_addr_ip(&a, "1.2.3.4", 70000), -EINVAL);
    return NULL;
}

Test(net, connect_to_a_closed_port_is_refused)
{
    run_main(refused_main, NULL);
}

/* A connected pair over loopback TCP. */
static void tcp_pair(int fds[2])
{
    weft_addr a, srv;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 0, 0);
    weft_addr_local(lfd, &srv);
    fds[0] = weft_dial(&srv, weft_deadline_in(WEFT_SEC));
    cr_assert_geq(fds[0], 0);
    fds[1] = weft_accept(lfd, NULL, NULL, weft_deadline_in(WEFT_SEC));
    cr_assert_geq(fds[1], 0);
    weft_close(lfd);
}

static void *reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    return (void *)(intptr_t)weft_read(fd, &c, 1, WEFT_FOREVER);
}

static void *deadlines_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    char buf[16];
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, 0, 0), -ETIMEDOUT);
    cr_assert_eq(weft_accept(p[0], NULL, NULL, 0), -EINVAL, "not a listener");

    /* A writer that outruns a peer that never reads fills the buffers, then times out. */
    static char big[1 << 20];
    ssize_t n = weft_write(p[0], big, sizeof big, weft_deadline_in(20 * WEFT_MSEC));
    for (int i = 0; i < 20 && n != -ETIMEDOUT; i++)
        n = weft_write(p[0], big, sizeof big, weft_deadline_in(20 * WEFT_MSEC));
    cr_assert_eq(n, -ETIMEDOUT);
    weft_close(p[0]);
    weft_close(p[1]);

    /* Cancelled while parked in read (a fresh pair: p[1] above holds unread data). */
    tcp_pair(p);
    weft_task *t;
    weft_spawn(&t, reader, (void *)(intptr_t)p[1], NULL);
    weft_yield();
    weft_cancel(t);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);

    /* Closed by another task while parked in read. */
    weft_spawn(&t, reader, (void *)(intptr_t)p[1], NULL);
    weft_yield();
    weft_close(p[1]);
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, -EBADF);
    weft_close(p[0]);
    return NULL;
}

Test(net, deadlines_cancel_and_close_while_parked)
{
    run_main(deadlines_main, NULL);
}

/* The results go back through the argument: a cancelled task's join reports WEFT_CANCELED
 * whatever it returned. */
struct cancelled_args {
    int fd;
    int rd, wr, acc;
};

static void *cancelled_calls(void *arg)
{
    struct cancelled_args *a = arg;
    weft_cancel(weft_self());
    char c = 'x';
    a->rd = (int)weft_read(a->fd, &c, 1, WEFT_FOREVER);
    a->wr = (int)weft_write(a->fd, &c, 1, WEFT_FOREVER);
    a->acc = weft_accept(a->fd, NULL, NULL, WEFT_FOREVER);
    return NULL;
}

static void *cancelled_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_task *t;
    struct cancelled_args a = {.fd = p[0], .rd = 1, .wr = 1, .acc = 1};
    weft_spawn(&t, cancelled_calls, &a, NULL);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(a.rd, -ECANCELED);
    cr_assert_eq(a.wr, -ECANCELED);
    cr_assert_eq(a.acc, -ECANCELED);
    char c;
    cr_assert_eq(weft_read(p[1], &c, 1, 0), -ETIMEDOUT, "nothing was written after cancel");
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(net, calls_in_a_cancelled_task_fail_at_once)
{
    run_main(cancelled_main, NULL);
}

static void *halfclose_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_write(p[0], "ping", 4, WEFT_FOREVER), 4);
    cr_assert_eq(weft_shutdown(p[0], SHUT_WR), 0);
    char buf[8];
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 4);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 0, "EOF after half-close");
    /* The other direction still works. */
    cr_assert_eq(weft_write(p[1], "pong", 4, WEFT_FOREVER), 4);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    weft_close(p[0]);
    weft_close(p[1]);

    /* Reset: SO_LINGER 0 then close sends RST; the peer's read reports it. */
    tcp_pair(p);
    struct linger lg = {1, 0};
    setsockopt(p[0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    weft_close(p[0]);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(WEFT_SEC)), -ECONNRESET);
    cr_assert_eq(weft_write(p[1], "x", 1, weft_deadline_in(WEFT_SEC)) < 0, 1);
    weft_close(p[1]);
    return NULL;
}

Test(net, peer_half_close_and_reset)
{
    run_main(halfclose_main, NULL);
}

static void *udp_main(void *arg)
{
    (void)arg;
    weft_addr a, sa;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int s = weft_datagram(&a, 0);
    cr_assert_geq(s, 0);
    weft_addr_local(s, &sa);
    int c = weft_datagram(NULL, AF_INET);
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_sendto(c, "hello", 5, 0, (struct sockaddr *)&sa.ss, sa.len, WEFT_FOREVER), 5);
    char buf[32];
    weft_addr from;
    from.len = sizeof from.ss;
    cr_assert_eq(weft_recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from.ss, &from.len,
                               weft_deadline_in(WEFT_SEC)),
                 5);
    cr_assert_eq(weft_sendto(s, "world", 5, 0, (struct sockaddr *)&from.ss, from.len, WEFT_FOREVER),
                 5);
    cr_assert_eq(weft_recvfrom(c, buf, sizeof buf, 0, NULL, NULL, weft_deadline_in(WEFT_SEC)), 5);
    cr_assert_eq(memcmp(buf, "world", 5), 0);
    cr_assert_eq(weft_recvfrom(c, buf, sizeof buf, 0, NULL, NULL, weft_deadline_in(WEFT_MSEC)),
                 -ETIMEDOUT);
    weft_close(s);
    weft_close(c);

    /* Unix datagrams, abstract namespace. */
    char name[64];
    snprintf(name, sizeof name, "@weft-test-dgram-%d", (int)getpid());
    weft_addr ua;
    cr_assert_eq(weft_addr_unix(&ua, name), 0);
    int us = weft_datagram(&ua, 0);
    cr_assert_geq(us, 0);
    int uc = weft_datagram(NULL, AF_UNIX);
    cr_assert_eq(weft_sendto(uc, "dgram", 5, 0, (struct sockaddr *)&ua.ss, ua.len, WEFT_FOREVER),
                 5);
    cr_assert_eq(weft_recvfrom(us, buf, sizeof buf, 0, NULL, NULL, weft_deadline_in(WEFT_SEC)), 5);
    cr_assert_eq(memcmp(buf, "dgram", 5), 0);
    weft_close(us);
    weft_close(uc);
    return NULL;
}

Test(net, udp_and_unix_datagram_round_trips)
{
    run_main(udp_main, NULL);
}

static void *sendfile_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-sendfile-XXXXXX";
    int f = mkstemp(path);
    cr_assert_geq(f, 0);
    unlink(path);
    static char data[300000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    cr_assert_eq(write(f, data, sizeof data), (ssize_t)sizeof data);
    int p[2];
    tcp_pair(p);
    static char got[sizeof data];
    off_t off = 0;
    /* The file is larger than the socket buffers: send a chunk, read what arrived, repeat. */
    size_t sent = 0, nread = 0;
    while (sent < sizeof data || nread < sizeof data) {
        if (sent < sizeof data) {
            size_t chunk = sizeof data - sent < 65536 ? sizeof data - sent : 65536;
            ssize_t n = weft_sendfile(p[0], f, &off, chunk, weft_deadline_in(WEFT_SEC));
            cr_assert_eq(n, (ssize_t)chunk, "sendfile: %zd", n);
            sent += chunk;
        }
        ssize_t n = weft_read(p[1], got + nread, sizeof got - nread, weft_deadline_in(WEFT_SEC));
        cr_assert_gt(n, 0);
        nread += (size_t)n;
    }
    cr_assert_eq(memcmp(got, data, sizeof data), 0);
    cr_assert_eq(off, (off_t)sizeof data);
    close(f);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(net, sendfile_to_a_socket)
{
    run_main(sendfile_main, NULL);
}

/* A few MiB in one call, with a reader draining the other end meanwhile: on io_uring this is
 * the splice path (in_fd -> pipe -> socket), on epoll sendfile(2) and readiness waits. */
enum { BIG = 3 * 1024 * 1024 + 1234 };

typedef struct drain_arg {
    int fd;
    char *buf;
    size_t len;
} drain_arg;

static void *drain(void *arg)
{
    drain_arg *d = arg;
    size_t got = 0;
    while (got < d->len) {
        ssize_t n = weft_read(d->fd, d->buf + got, d->len - got, weft_deadline_in(30 * WEFT_SEC));
        if (n <= 0)
            return (void *)(intptr_t)(n < 0 ? n : -EPIPE);
        got += (size_t)n;
    }
    return (void *)(intptr_t)got;
}

static void *sendfile_big_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-sendfile-big-XXXXXX";
    int f = mkstemp(path);
    cr_assert_geq(f, 0);
    unlink(path);
    char *data = malloc(BIG), *got = malloc(BIG);
    cr_assert(data && got);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (char)(i * 131 + (i >> 12));
    cr_assert_eq(write(f, data, BIG), (ssize_t)BIG);
    int p[2];
    tcp_pair(p);

    /* With an offset: the whole file from byte 1000; the offset ends at the end. */
    drain_arg d = {p[1], got, BIG - 1000};
    weft_task *t;
    weft_spawn(&t, drain, &d, NULL);
    off_t off = 1000;
    ssize_t n = weft_sendfile(p[0], f, &off, BIG - 1000, weft_deadline_in(30 * WEFT_SEC));
    cr_assert_eq(n, (ssize_t)(BIG - 1000), "sendfile: %s", weft_strerror((int)n));
    cr_assert_eq(off, (off_t)BIG);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, (intptr_t)(BIG - 1000));
    cr_assert_eq(memcmp(got, data + 1000, BIG - 1000), 0);
    cr_assert_eq(lseek(f, 0, SEEK_CUR), (off_t)BIG, "the file position was not used");

    /* Without: from the file position, which moves; asking past the end sends what is left. */
    cr_assert_eq(lseek(f, 5, SEEK_SET), 5);
    d.len = BIG - 5;
    weft_spawn(&t, drain, &d, NULL);
    n = weft_sendfile(p[0], f, NULL, BIG, weft_deadline_in(30 * WEFT_SEC));
    cr_assert_eq(n, (ssize_t)(BIG - 5));
    cr_assert_eq(lseek(f, 0, SEEK_CUR), (off_t)BIG);
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, (intptr_t)(BIG - 5));
    cr_assert_eq(memcmp(got, data + 5, BIG - 5), 0);

    /* A peer that stops reading: once the socket buffers are full, the deadline ends the
     * call with -ETIMEDOUT instead of a hang, and the offset stops inside the file. */
    for (int i = 0; i < 64; i++) {
        off = 0;
        n = weft_sendfile(p[0], f, &off, BIG, weft_deadline_in(20 * WEFT_MSEC));
        if (n != (ssize_t)BIG)
            break;
        cr_assert_eq(off, (off_t)BIG);
    }
    cr_assert_eq(n, -ETIMEDOUT);
    cr_assert(off >= 0 && off < (off_t)BIG, "offset %lld", (long long)off);
    close(f);
    weft_close(p[0]);
    weft_close(p[1]);
    free(data);
    free(got);
    return NULL;
}

Test(net, sendfile_of_megabytes_with_and_without_an_offset, .timeout = 60)
{
    run_main(sendfile_big_main, NULL);
}

/* From a pipe and from a socket, which sendfile(2) refuses (-EINVAL): io_uring's splices
 * took them, epoll answered -EINVAL. A feeder writes SRC_LEN bytes in pieces and closes its
 * end; the call asks for more than that and returns what came, byte for byte, while the
 * peer reads the socket; with an offset there is no position to read from (-ESPIPE). */
enum { SRC_LEN = 700 * 1000 + 17 };

typedef struct feed_arg {
    int fd;
    const char *data;
} feed_arg;

static void *feed(void *arg)
{
    feed_arg *f = arg;
    for (size_t done = 0; done < SRC_LEN;) {
        size_t piece = SRC_LEN - done < 9973 ? SRC_LEN - done : 9973;
        ssize_t n = weft_write(f->fd, f->data + done, piece, weft_deadline_in(30 * WEFT_SEC));
        if (n <= 0)
            return (void *)(intptr_t)(n < 0 ? n : -EPIPE);
        done += (size_t)n;
    }
    return (void *)(intptr_t)weft_close(f->fd);
}

static void *sendfile_unmappable_main(void *arg)
{
    bool from_socket = arg != NULL;
    char *data = malloc(SRC_LEN), *got = malloc(SRC_LEN);
    cr_assert(data && got);
    for (size_t i = 0; i < SRC_LEN; i++)
        data[i] = (char)(i * 7 + (i >> 9));
    int src[2];
    if (from_socket)
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, src), 0);
    else
        cr_assert_eq(pipe2(src, O_CLOEXEC), 0); /* blocking: weft's first use changes that */
    int p[2];
    tcp_pair(p);
    off_t off = 0;
    cr_assert_eq(weft_sendfile(p[0], src[0], &off, 10, weft_deadline_in(WEFT_SEC)), -ESPIPE);
    feed_arg fa = {src[1], data};
    drain_arg d = {p[1], got, SRC_LEN};
    weft_task *tf, *td;
    weft_spawn(&tf, feed, &fa, NULL);
    weft_spawn(&td, drain, &d, NULL);
    ssize_t n = weft_sendfile(p[0], src[0], NULL, SRC_LEN + 100, weft_deadline_in(30 * WEFT_SEC));
    cr_assert_eq(n, (ssize_t)SRC_LEN, "sendfile: %zd (%s)", n, weft_strerror((int)n));
    void *r;
    weft_join(tf, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, 0);
    weft_join(td, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, (intptr_t)SRC_LEN);
    cr_assert_eq(memcmp(got, data, SRC_LEN), 0);
    /* Nothing to send: the fds are still checked, as sendfile(2) does. */
    cr_assert_eq(weft_sendfile(p[0], src[0], NULL, 0, weft_deadline_in(WEFT_SEC)), 0);
    cr_assert_eq(weft_sendfile(p[0], 999999, NULL, 0, weft_deadline_in(WEFT_SEC)), -EBADF);
    cr_assert_eq(weft_sendfile(999999, src[0], NULL, 0, weft_deadline_in(WEFT_SEC)), -EBADF);
    /* Nothing left and every writer gone: the end at once. */
    cr_assert_eq(weft_sendfile(p[0], src[0], NULL, 10, weft_deadline_in(WEFT_SEC)), 0);
    weft_close(src[0]);
    weft_close(p[0]);
    weft_close(p[1]);
    free(data);
    free(got);
    return NULL;
}

Test(net, sendfile_from_a_pipe_or_a_socket, .timeout = 60)
{
    run_main(sendfile_unmappable_main, NULL);
    run_main(sendfile_unmappable_main, (void *)1);
}

/* ---- 5,000 concurrent connections ---- */

enum { NCONNS = 5000 };

static void *client(void *arg)
{
    const weft_addr *srv = arg;
    int fd = weft_dial(srv, weft_deadline_in(30 * WEFT_SEC));
    if (fd < 0)
        return (void *)(intptr_t)fd;
    weft_yield(); /* let every client connect before any finishes */
    char msg[64], back[64];
    memset(msg, 'z', sizeof msg);
    intptr_t ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        ok = weft_write(fd, msg, sizeof msg, weft_deadline_in(30 * WEFT_SEC)) == sizeof msg;
        size_t got = 0;
        while (ok && got < sizeof back) {
            ssize_t n =
                weft_read(fd, back + got, sizeof back - got, weft_deadline_in(30 * WEFT_SEC));
            ok = n > 0;
            got += n > 0 ? (size_t)n : 0;
        }
    }
    weft_close(fd);
    return (void *)ok;
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_addr a, srv;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 4096, 0);
    weft_addr_local(lfd, &srv);
    atomic_store(&echo_accepted, 0);
    weft_task *s;
    weft_spawn(&s, echo_server, (void *)(intptr_t)lfd, NULL);
    /* In batches, each started only once the server has accepted what came before: 5,000
     * connects queued at once would outrun the accept queue (net.core.somaxconn, 4096 by
     * default), and the kernel drops a SYN it has no room for, to be sent again 1 s later
     * (then 3 s, 7 s...). Every connection still stays open until all are made. */
    static weft_task *ts[NCONNS];
    for (int i = 0; i < NCONNS; i++) {
        weft_spawn(&ts[i], client, &srv, NULL);
        if (i % 500 == 499)
            while (atomic_load(&echo_accepted) <= i)
                weft_sleep(WEFT_MSEC);
    }
    int nok = 0;
    for (int i = 0; i < NCONNS; i++) {
        void *r;
        weft_join(ts[i], &r, WEFT_FOREVER);
        nok += r == (void *)1;
    }
    cr_assert_eq(nok, NCONNS);
    stop(s);
    return NULL;
}

Test(net, five_thousand_concurrent_connections, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 2 * NCONNS + 100)
        cr_skip_test("RLIMIT_NOFILE hard limit %lu < %d", (unsigned long)rl.rlim_max,
                     2 * NCONNS + 100);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    run_main(many_main, NULL);
}

/* ---- Out of fds: the server keeps its connections and accepts again later ---- */

static void *emfile_main(void *arg)
{
    (void)arg;
    weft_addr a, srv;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int lfd = weft_listen(&a, 128, 0);
    weft_addr_local(lfd, &srv);
    weft_task *s;
    weft_spawn(&s, echo_server, (void *)(intptr_t)lfd, NULL);
    int first = weft_dial(&srv, weft_deadline_in(WEFT_SEC));
    cr_assert_geq(first, 0);
    char c = 'q';
    cr_assert_eq(weft_write(first, &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(first, &c, 1, weft_deadline_in(5 * WEFT_SEC)), 1);
    /* Fill the fd table, then free one fd for the client: the kernel completes the new
     * connection, but the server has no fd left to accept it with. */
    static int dummy[128];
    int nd = 0;
    while (nd < 128 && (dummy[nd] = dup(0)) >= 0)
        nd++;
    cr_assert(nd > 0 && nd < 128, "the fd table filled up (%d dups)", nd);
    close(dummy[--nd]);
    int late = weft_dial(&srv, weft_deadline_in(WEFT_SEC));
    cr_assert_geq(late, 0, "dial: %s", weft_strerror(late));
    cr_assert_eq(weft_write(late, &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(late, &c, 1, weft_deadline_in(50 * WEFT_MSEC)), -ETIMEDOUT,
                 "not accepted yet: nothing echoes");
    /* The server kept running and kept its connection. */
    cr_assert_eq(weft_write(first, &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(first, &c, 1, weft_deadline_in(5 * WEFT_SEC)), 1);
    /* Free fds: the server accepts on its own, and the late connection echoes. */
    while (nd > 0)
        close(dummy[--nd]);
    cr_assert_eq(weft_read(late, &c, 1, weft_deadline_in(10 * WEFT_SEC)), 1);
    weft_close(late);
    weft_close(first);
    stop(s);
    return NULL;
}

Test(net, server_survives_emfile_on_accept, .timeout = 60)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    run_main(emfile_main, NULL);
}

/* ---- Signals ---- */

static void *raiser(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void *signal_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_task *t;
    weft_spawn(&t, raiser, NULL, NULL);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(10 * WEFT_SEC)), SIGUSR1);
    weft_join(t, NULL, WEFT_FOREVER);
    /* Raised while nobody waits: stays pending (blocked), and the next wait gets it. */
    kill(getpid(), SIGUSR2);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(10 * WEFT_SEC)), SIGUSR2);
    cr_assert_eq(weft_signal_wait(NULL, 0), -EINVAL);
    return NULL;
}

Test(net, signal_waits)
{
    run_main(signal_main, NULL);
}

/* ---- Reliability: bursts of records, two readers, blocking fds, huge lengths, close ---- */

#define BURST 10

typedef struct burst {
    int fd;
    int use_recv;
    int got;  /* records received */
    int last; /* the last one's result: its length, or -errno */
    char seen[BURST];
} burst;

/* Reads BURST records with one-record reads into a larger buffer (so every read is short). */
static void *burst_reader(void *arg)
{
    burst *b = arg;
    for (int i = 0; i < BURST; i++) {
        char buf[64];
        int64_t dl = weft_deadline_in(10 * WEFT_SEC); /* only a bound on a failure */
        ssize_t n = b->use_recv ? weft_recv(b->fd, buf, sizeof buf, 0, dl)
                                : weft_read(b->fd, buf, sizeof buf, dl);
        b->last = (int)n;
        if (n != 2)
            break;
        b->seen[i] = buf[1];
        b->got++;
    }
    return NULL;
}

/* Ten records written at once while the reader is parked: all ten are delivered (epoll once
 * took the first short read for "the socket is drained" and waited for an edge that a queue
 * of records never brings). */
static void check_burst(int rfd, int wfd, const struct sockaddr *to, socklen_t tolen, int use_recv)
{
    burst b = {.fd = rfd, .use_recv = use_recv};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, burst_reader, &b, NULL), 0);
    weft_yield(); /* the reader finds nothing and parks (registering the fd) */
    weft_sleep(WEFT_MSEC);
    for (int i = 0; i < BURST; i++) {
        char msg[2] = {'m', (char)('0' + i)};
        ssize_t n = to ? sendto(wfd, msg, 2, 0, to, tolen) : send(wfd, msg, 2, 0);
        cr_assert_eq(n, 2);
    }
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(b.got, BURST, "only %d of %d records arrived (last: %d)", b.got, BURST, b.last);
    for (int i = 0; i < BURST; i++)
        cr_assert_eq(b.seen[i], '0' + i, "in order");
}

static void *bursts_main(void *arg)
{
    (void)arg;
    /* UDP on loopback, read with weft_recv. */
    weft_addr a, sa;
    weft_addr_ip(&a, "127.0.0.1", 0);
    int s = weft_datagram(&a, 0);
    cr_assert_geq(s, 0);
    weft_addr_local(s, &sa);
    int c = weft_datagram(NULL, AF_INET);
    cr_assert_geq(c, 0);
    check_burst(s, c, (struct sockaddr *)&sa.ss, sa.len, 1);
    cr_assert_eq(weft_close(s), 0);
    cr_assert_eq(weft_close(c), 0);

    /* A Unix datagram pair and a seqpacket pair made by the caller (weft classifies them at
     * their first use), read with weft_read. */
    int types[] = {SOCK_DGRAM, SOCK_SEQPACKET};
    for (int i = 0; i < 2; i++) {
        int p[2];
        cr_assert_eq(socketpair(AF_UNIX, types[i] | SOCK_CLOEXEC, 0, p), 0);
        check_burst(p[0], p[1], NULL, 0, 0);
        cr_assert_eq(weft_close(p[0]), 0);
        cr_assert_eq(weft_close(p[1]), 0);
    }
    return NULL;
}

Test(net, a_burst_of_datagrams_or_records_is_delivered_whole, .timeout = 60)
{
    run_main(bursts_main, NULL);
}

typedef struct one_read {
    int fd;
    ssize_t n;
    char c;
} one_read;

static void *read_one(void *arg)
{
    one_read *r = arg;
    r->n = weft_read(r->fd, &r->c, 1, weft_deadline_in(10 * WEFT_SEC));
    return NULL;
}

/* Two tasks reading one fd: both wait (never -EBUSY), and each gets a byte. */
static void *two_readers_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    one_read a = {.fd = p[0]}, b = {.fd = p[0]};
    weft_task *ta, *tb;
    weft_spawn(&ta, read_one, &a, NULL);
    weft_spawn(&tb, read_one, &b, NULL);
    weft_yield();
    weft_sleep(WEFT_MSEC); /* both are parked now */
    cr_assert_eq(weft_write(p[1], "xy", 2, WEFT_FOREVER), 2);
    weft_join(ta, NULL, WEFT_FOREVER);
    weft_join(tb, NULL, WEFT_FOREVER);
    cr_assert_eq(a.n, 1, "first reader: %zd", a.n);
    cr_assert_eq(b.n, 1, "second reader: %zd", b.n);
    cr_assert((a.c == 'x' && b.c == 'y') || (a.c == 'y' && b.c == 'x'));
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(net, two_tasks_reading_one_fd_both_wait_and_each_is_served, .timeout = 60)
{
    run_main(two_readers_main, NULL);
}

static int ticks;

static void *ticker(void *arg)
{
    (void)arg;
    for (;;) {
        ticks++;
        if (weft_sleep(WEFT_MSEC) < 0)
            return NULL;
    }
}

/* A pipe the caller made without O_NONBLOCK: weft makes it non-blocking at its first use, so
 * a read with a deadline times out and the other tasks run meanwhile. */
static void *blocking_fd_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ticks = 0;
    weft_task *t;
    weft_spawn(&t, ticker, NULL, NULL);
    char c;
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(50 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_gt(ticks, 0, "another task ran while the read waited");
    cr_assert(fcntl(p[0], F_GETFL) & O_NONBLOCK, "weft set O_NONBLOCK");
    /* Data still flows. */
    cr_assert_eq(write(p[1], "z", 1), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(10 * WEFT_SEC)), 1);
    cr_assert_eq(c, 'z');
    weft_cancel(t);
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, a_blocking_fd_is_made_non_blocking_and_deadlines_work, .timeout = 60)
{
    run_main(blocking_fd_main, NULL);
}

#define FOUR_GIB ((size_t)1 << 32)

/* Lengths of 4 GiB and more (io_uring's SQE length is 32 bits): the read returns what is
 * there, the write fills the pipe and then honours its deadline. Nothing is allocated: the
 * buffers are reserved address space. */
static void *huge_main(void *arg)
{
    (void)arg;
    if (sizeof(size_t) < 8)
        return NULL;
    size_t span = FOUR_GIB + 4096;
    void *rbuf = mmap(NULL, span, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(rbuf, MAP_FAILED);
    void *wbuf = mmap(NULL, span, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(wbuf, MAP_FAILED);
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    cr_assert_eq(write(p[1], "hello", 5), 5);
    cr_assert_eq(weft_read(p[0], rbuf, FOUR_GIB, weft_deadline_in(10 * WEFT_SEC)), 5);
    cr_assert_eq(memcmp(rbuf, "hello", 5), 0);
    cr_assert_eq(write(p[1], "again", 5), 5);
    cr_assert_eq(weft_read(p[0], rbuf, FOUR_GIB + 7, weft_deadline_in(10 * WEFT_SEC)), 5);
    /* Nobody reads: the pipe fills, then the deadline ends the write. */
    cr_assert_eq(weft_write(p[1], wbuf, FOUR_GIB, weft_deadline_in(50 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    /* The same with send on a stream socket. */
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(weft_send(sp[1], wbuf, FOUR_GIB, 0, weft_deadline_in(50 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_close(sp[0]), 0);
    cr_assert_eq(weft_close(sp[1]), 0);
    munmap(rbuf, span);
    munmap(wbuf, span);
    return NULL;
}

Test(net, four_gib_lengths_read_what_is_there_and_writes_keep_their_deadline, .timeout = 60)
{
    run_main(huge_main, NULL);
}

/* weft_close outside a runtime closes the fd (it has nothing to forget). */
Test(net, close_outside_a_runtime_closes_the_fd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(fcntl(p[0], F_GETFD), -1);
    cr_assert_eq(weft_close(p[1]), 0);
    cr_assert_eq(weft_close(p[1]), -EBADF);
}

/* An accept in flight when its listener is closed: whether it reports the connection or
 * -EBADF, no fd is left behind (on io_uring the accept may complete after the close). */
static int race_lfd;

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void *race_accept(void *arg)
{
    (void)arg;
    int c = weft_accept(race_lfd, NULL, NULL, WEFT_FOREVER);
    if (c >= 0)
        weft_close(c);
    return (void *)(intptr_t)(c >= 0 || c == -EBADF);
}

static void *race_close(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        weft_yield(); /* let the accept's completion come in first */
    weft_close(race_lfd);
    return NULL;
}

static void *race_main(void *arg)
{
    (void)arg;
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int before = count_fds();
    for (int i = 0; i < 100; i++) {
        race_lfd = weft_listen(&a, 16, 0);
        cr_assert_geq(race_lfd, 0);
        weft_addr la;
        cr_assert_eq(weft_addr_local(race_lfd, &la), 0);
        weft_task *t, *c;
        weft_spawn(&t, race_accept, NULL, NULL);
        weft_yield();
        weft_yield(); /* the accept is in flight */
        weft_spawn(&c, race_close, NULL, NULL);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(s, 0);
        connect(s, (struct sockaddr *)&la.ss, la.len);
        void *ok;
        cr_assert_eq(weft_join(t, &ok, WEFT_FOREVER), 0);
        cr_assert_eq(weft_join(c, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(ok, (void *)1, "the accept returned a connection or -EBADF");
        close(s);
    }
    cr_assert_eq(count_fds(), before, "no fd leaked");
    return NULL;
}

Test(net, an_accept_racing_its_listeners_close_leaks_nothing, .timeout = 60)
{
    run_main(race_main, NULL);
}

/* ---- Addresses: numeric parsing, Unix paths, ports; no runtime needed ---- */

Test(net, addr_ip_parses_ipv4_ipv6_bracketed_and_wildcards)
{
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "10.1.2.3", 8080), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET);
    cr_assert_eq(a.len, sizeof(struct sockaddr_in));
    cr_assert_eq(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(0x0a010203));
    cr_assert_eq(weft_addr_port(&a), 8080);

    const char *v6[] = {"::1", "[::1]"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_addr_ip(&a, v6[i], 65535), 0, "%s", v6[i]);
        cr_assert_eq(a.ss.ss_family, AF_INET6, "%s", v6[i]);
        cr_assert_eq(a.len, sizeof(struct sockaddr_in6));
        cr_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&a.ss)->sin6_addr), "%s", v6[i]);
        cr_assert_eq(weft_addr_port(&a), 65535);
    }
    cr_assert_eq(weft_addr_ip(&a, "::", 1), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET6);
    cr_assert(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&a.ss)->sin6_addr));

    const char *wild[] = {NULL, "", "*"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_addr_ip(&a, wild[i], 0), 0);
        cr_assert_eq(a.ss.ss_family, AF_INET);
        cr_assert_eq(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(INADDR_ANY));
        cr_assert_eq(weft_addr_port(&a), 0);
    }
}

Test(net, addr_ip_rejects_bad_input)
{
    weft_addr a;
    const char *bad[] = {
        "localhost", "1.2.3", "256.0.0.1",
        "::1::2",    "[::1",  "::1]",
        "[]",        "[",     "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]",
        "1.2.3.4 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(weft_addr_ip(&a, bad[i], 80), -EINVAL, "\"%s\"", bad[i]);
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", -1), -EINVAL);
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 65536), -EINVAL);
    cr_assert_eq(weft_addr_ip(NULL, "127.0.0.1", 80), -EINVAL);
}

Test(net, addr_unix_paths_abstract_names_and_limits)
{
    weft_addr a;
    struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
    cr_assert_eq(weft_addr_unix(&a, "/tmp/sock"), 0);
    cr_assert_eq(a.ss.ss_family, AF_UNIX);
    cr_assert_str_eq(un->sun_path, "/tmp/sock");
    cr_assert_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/sock") + 1);
    cr_assert_eq(weft_addr_port(&a), -EINVAL, "a Unix address has no port");

    cr_assert_eq(weft_addr_unix(&a, "@weft-abstract"), 0);
    cr_assert_eq(un->sun_path[0], 0, "abstract: a leading NUL");
    cr_assert_eq(memcmp(un->sun_path + 1, "weft-abstract", 13), 0);
    cr_assert_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("@weft-abstract"));

    char path[sizeof un->sun_path + 1];
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = 0; /* 108 characters: no room for the NUL */
    cr_assert_eq(weft_addr_unix(&a, path), -ENAMETOOLONG);
    path[sizeof path - 2] = 0; /* 107: fits */
    cr_assert_eq(weft_addr_unix(&a, path), 0);
    cr_assert_eq(strlen(un->sun_path), sizeof un->sun_path - 1);

    cr_assert_eq(weft_addr_unix(&a, ""), -EINVAL);
    cr_assert_eq(weft_addr_unix(&a, NULL), -EINVAL);
    cr_assert_eq(weft_addr_unix(NULL, "/tmp/x"), -EINVAL);
    cr_assert_eq(weft_addr_port(NULL), -EINVAL);
}

Test(net, addr_local_and_shutdown_report_bad_fds)
{
    weft_addr a;
    cr_assert_eq(weft_addr_local(0, NULL), -EINVAL);
    cr_assert_eq(weft_addr_local(-1, &a), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(weft_addr_local(p[0], &a), -ENOTSOCK);
    cr_assert_eq(weft_shutdown(p[0], SHUT_RD), -ENOTSOCK);
    cr_assert_eq(weft_shutdown(-1, SHUT_RDWR), -EBADF);
    cr_assert_eq(weft_fd_nonblock(-1), -EBADF);
    cr_assert_eq(weft_fd_nonblock(p[1]), 0);
    cr_assert(fcntl(p[1], F_GETFL) & O_NONBLOCK);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
}

/* ---- Sockets: options, failures that must not leak the fd ---- */

static int getint(int fd, int level, int opt)
{
    int v = -1;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, level, opt, &v, &len), 0);
    return v;
}

static void *sockopts_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_tcp_keepalive(p[0], 1, 42), 0);
    cr_assert_eq(getint(p[0], SOL_SOCKET, SO_KEEPALIVE), 1);
    cr_assert_eq(getint(p[0], IPPROTO_TCP, TCP_KEEPIDLE), 42);
    cr_assert_eq(weft_tcp_keepalive(p[0], 0, 7), 0);
    cr_assert_eq(getint(p[0], SOL_SOCKET, SO_KEEPALIVE), 0);
    cr_assert_eq(getint(p[0], IPPROTO_TCP, TCP_KEEPIDLE), 42, "idle_s is ignored when off");
    cr_assert_eq(weft_tcp_keepalive(p[1], 1, 0), 0, "0: the system default");
    cr_assert_eq(getint(p[1], SOL_SOCKET, SO_KEEPALIVE), 1);
    cr_assert_eq(weft_tcp_nodelay(p[0], 1), 0);
    cr_assert_neq(getint(p[0], IPPROTO_TCP, TCP_NODELAY), 0);
    cr_assert_eq(weft_tcp_nodelay(p[0], 0), 0);
    cr_assert_eq(getint(p[0], IPPROTO_TCP, TCP_NODELAY), 0);
    cr_assert_eq(weft_tcp_keepalive(-1, 1, 1), -EBADF);
    cr_assert_eq(weft_tcp_nodelay(-1, 1), -EBADF);

    /* Half-close through weft_shutdown: the peer reads the data, then end of stream. */
    cr_assert_eq(weft_write(p[0], "bye", 3, WEFT_FOREVER), 3);
    cr_assert_eq(weft_shutdown(p[0], SHUT_WR), 0);
    char buf[8];
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(10 * WEFT_SEC)), 3);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, tcp_keepalive_nodelay_and_shutdown_set_what_they_say)
{
    run_main(sockopts_main, NULL);
}

/* The lowest free fd number: a call that failed and leaked its socket moves it up. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    cr_assert_geq(fd, 0);
    close(fd);
    return fd;
}

static void *socket_errors_main(void *arg)
{
    (void)arg;
    weft_addr a, bound;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    cr_assert_eq(weft_listen(NULL, 0, 0), -EINVAL);
    cr_assert_eq(weft_listen(&a, 0, 0x80), -EINVAL, "unknown flag");
    cr_assert_eq(weft_dial(NULL, WEFT_FOREVER), -EINVAL);

    /* A second TCP listener on a port in use fails, and closes the socket it made. */
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(weft_addr_local(lfd, &bound), 0);
    int low = lowest_free_fd();
    cr_assert_eq(weft_listen(&bound, 0, 0), -EADDRINUSE);
    cr_assert_eq(lowest_free_fd(), low, "the failed listen leaked its socket");

    /* Same for a datagram socket bound to a UDP port in use. */
    int u = weft_datagram(&a, 0);
    cr_assert_geq(u, 0);
    weft_addr ubound;
    cr_assert_eq(weft_addr_local(u, &ubound), 0);
    low = lowest_free_fd();
    cr_assert_eq(weft_datagram(&ubound, 0), -EADDRINUSE);
    cr_assert_eq(lowest_free_fd(), low, "the failed datagram leaked its socket");

    /* A family the kernel does not have: socket(2)'s error, nothing made. */
    cr_assert_eq(weft_datagram(NULL, 4321), -EAFNOSUPPORT);
    weft_addr odd = a;
    odd.ss.ss_family = 4321;
    cr_assert_eq(weft_listen(&odd, 0, 0), -EAFNOSUPPORT);
    cr_assert_eq(weft_dial(&odd, WEFT_FOREVER), -EAFNOSUPPORT);
    cr_assert_eq(lowest_free_fd(), low);

    /* An IPv6 listener with both flags: V6ONLY is set on the socket. */
    weft_addr v6;
    cr_assert_eq(weft_addr_ip(&v6, "::1", 0), 0);
    int l6 = weft_listen(&v6, 0, WEFT_LISTEN_V6ONLY | WEFT_LISTEN_REUSEPORT);
    cr_assert_geq(l6, 0, "listen: %s", weft_strerror(l6));
    cr_assert_eq(getint(l6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    cr_assert_eq(getint(l6, SOL_SOCKET, SO_REUSEPORT), 1);
    cr_assert_eq(weft_close(l6), 0);

    cr_assert_eq(weft_close(u), 0);
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(net, failed_listen_dial_and_datagram_return_the_error_and_leak_no_fd)
{
    run_main(socket_errors_main, NULL);
}

/* ---- Vectored I/O ---- */

#define NIOV    40   /* more than writev's on-stack copy holds */
#define IOV_LEN 8192 /* 40 x 8 KiB: more than a Unix socket buffer, so writev parks */

static void *writev_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p), 0);
    static unsigned char bufs[NIOV][IOV_LEN], got[NIOV * IOV_LEN];
    struct iovec iov[NIOV];
    size_t total = 0;
    for (int i = 0; i < NIOV; i++) {
        /* Lengths that do not line up with the kernel's chunks: 8192 minus a varying bit. */
        size_t len = IOV_LEN - (size_t)(i * 37 % 1000);
        for (size_t j = 0; j < len; j++)
            bufs[i][j] = (unsigned char)(i * 7 + j);
        iov[i] = (struct iovec){bufs[i], len};
        total += len;
    }
    drain_arg d = {p[1], (char *)got, total};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, drain, &d, NULL), 0);
    cr_assert_eq(weft_writev(p[0], iov, NIOV, weft_deadline_in(30 * WEFT_SEC)), (ssize_t)total);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, (intptr_t)total);
    size_t off = 0;
    for (int i = 0; i < NIOV; i++) {
        cr_assert_eq(memcmp(got + off, bufs[i], iov[i].iov_len), 0, "buffer %d", i);
        off += iov[i].iov_len;
    }
    for (int i = 0; i < NIOV; i++)
        cr_assert_eq(iov[i].iov_base, bufs[i], "the caller's array is left alone");

    /* Empty buffers write nothing and succeed; bad counts are refused. */
    struct iovec empty[3] = {{bufs[0], 0}, {bufs[1], 0}, {bufs[2], 0}};
    cr_assert_eq(weft_writev(p[0], empty, 3, WEFT_FOREVER), 0);
    cr_assert_eq(weft_writev(p[0], iov, -1, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_writev(p[0], iov, 1025, WEFT_FOREVER), -EINVAL);
    /* No array, and lengths whose sum passes SSIZE_MAX: refused as writev(2) refuses them,
     * before anything is written (the first used to read through NULL). */
    cr_assert_eq(weft_writev(p[0], NULL, 2, WEFT_FOREVER), -EFAULT);
    cr_assert_eq(weft_writev(p[0], NULL, 0, WEFT_FOREVER), 0);
    struct iovec huge[2] = {{bufs[0], (size_t)SSIZE_MAX}, {bufs[1], 2}};
    cr_assert_eq(weft_writev(p[0], huge, 2, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_readv(p[1], iov, 1, 0), -ETIMEDOUT, "nothing was written");

    /* readv scatters one write over its buffers in order. */
    cr_assert_eq(weft_write(p[0], "abcdefghij", 10, WEFT_FOREVER), 10);
    char a[3], b[4], c[8];
    struct iovec rv[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    cr_assert_eq(weft_readv(p[1], rv, 3, weft_deadline_in(10 * WEFT_SEC)), 10);
    cr_assert_eq(memcmp(a, "abc", 3), 0);
    cr_assert_eq(memcmp(b, "defg", 4), 0);
    cr_assert_eq(memcmp(c, "hij", 3), 0);
    cr_assert_eq(weft_readv(p[1], rv, 3, 0), -ETIMEDOUT, "nothing left");
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_readv(p[1], rv, 3, weft_deadline_in(10 * WEFT_SEC)), 0, "end of stream");
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, writev_of_many_buffers_and_readv_deliver_every_byte_in_order, .timeout = 60)
{
    run_main(writev_main, NULL);
}

/* ---- Name resolution ---- */

static void *dns_main(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    cr_assert_eq(weft_getaddrinfo(NULL, NULL, &hints, &res, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "80", &hints, NULL, WEFT_FOREVER), -EINVAL);

    /* A numeric lookup: no resolver involved, so the answer is fixed. */
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "8080", &hints, &res, WEFT_FOREVER), 0);
    cr_assert_not_null(res);
    cr_assert_eq(res->ai_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 8080);
    cr_assert_eq(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    freeaddrinfo(res);

    /* EAI_NONAME is -ENOENT: a name where only numbers are allowed. */
    res = NULL;
    cr_assert_eq(weft_getaddrinfo("not-a-number", "80", &hints, &res, WEFT_FOREVER), -ENOENT);
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "http", &hints, &res, WEFT_FOREVER), -ENOENT);
    cr_assert_null(res, "nothing handed out on failure");

    /* Bad hints are -EINVAL: EAI_FAMILY, EAI_SOCKTYPE, EAI_BADFLAGS. */
    struct addrinfo bad = hints;
    bad.ai_family = 4321;
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "80", &bad, &res, WEFT_FOREVER), -EINVAL);
    bad = hints;
    bad.ai_socktype = 4321;
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "80", &bad, &res, WEFT_FOREVER), -EINVAL);
    bad = hints;
    bad.ai_flags |= 0x40000000;
    cr_assert_eq(weft_getaddrinfo("127.0.0.1", "80", &bad, &res, WEFT_FOREVER), -EINVAL);
    cr_assert_null(res);

    /* weft_resolve: its own checks, and numeric hosts parsed without a thread. */
    weft_addr a;
    cr_assert_eq(weft_resolve(NULL, "127.0.0.1", 80, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_resolve(&a, NULL, 80, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_resolve(&a, "127.0.0.1", -1, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_resolve(&a, "127.0.0.1", 65536, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_resolve(&a, "[::1]", 443, WEFT_FOREVER), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET6);
    cr_assert_eq(weft_addr_port(&a), 443);

    /* A name: weft_resolve agrees with getaddrinfo(3) called directly with its documented
     * request (first SOCK_STREAM address), whatever this machine's resolver says. */
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    struct addrinfo *direct = NULL;
    int rc = getaddrinfo("localhost", "5353", &hints, &direct);
    int r = weft_resolve(&a, "localhost", 5353, weft_deadline_in(30 * WEFT_SEC));
    if (rc == 0) {
        cr_assert_eq(r, 0, "resolve: %s", weft_strerror(r));
        cr_assert_eq(a.len, direct->ai_addrlen);
        cr_assert_eq(memcmp(&a.ss, direct->ai_addr, a.len), 0);
        cr_assert_eq(weft_addr_port(&a), 5353);
        freeaddrinfo(direct);
    } else {
        cr_assert_lt(r, 0, "getaddrinfo failed (%s) but weft_resolve did not", gai_strerror(rc));
    }
    return NULL;
}

Test(net, getaddrinfo_and_resolve_map_results_and_errors, .timeout = 60)
{
    run_main(dns_main, NULL);
}

/* A cancelled task's join result is WEFT_CANCELED whatever it returns: report through arg. */
static void *dns_cancelled(void *arg)
{
    int *rc = arg;
    weft_cancel(weft_self());
    struct addrinfo *res = NULL;
    weft_addr a;
    rc[0] = weft_getaddrinfo("localhost", "80", NULL, &res, WEFT_FOREVER);
    rc[1] = res == NULL;
    rc[2] = weft_resolve(&a, "localhost", 80, WEFT_FOREVER);
    return NULL;
}

static void *dns_cancel_main(void *arg)
{
    (void)arg;
    int rc[3] = {0, 0, 0};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, dns_cancelled, rc, NULL), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(rc[0], -ECANCELED, "getaddrinfo: %s", weft_errname(rc[0]));
    cr_assert_eq(rc[1], 1, "nothing handed out");
    cr_assert_eq(rc[2], -ECANCELED, "resolve: %s", weft_errname(rc[2]));
    return NULL;
}

Test(net, lookups_in_a_cancelled_task_fail_at_once)
{
    run_main(dns_cancel_main, NULL);
}

Test(net, signal_wait_outside_a_task_is_eperm)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(weft_signal_wait(&set, 0), -EPERM);
}

/* Reads exactly len bytes, failing the test on an error or an early end. */
static void read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = weft_read(fd, (char *)buf + got, len - got, weft_deadline_in(10 * WEFT_SEC));
        cr_assert_gt(n, 0, "read after %zu of %zu: %s", got, len, weft_strerror((int)n));
        got += (size_t)n;
    }
}

/* A pair whose socket buffers are small, so that a few hundred KiB fill them. */
static void small_pair(int p[2])
{
    tcp_pair(p);
    int small = 16384;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(setsockopt(p[k], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
        cr_assert_eq(setsockopt(p[k], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    }
}

/* Two sendfiles of one worker at once, each to a reader that is slow to start: on io_uring
 * each transfer goes through a pipe (in_fd -> pipe -> socket) and parks half-way; through
 * one pipe shared by the worker, each sent the other's bytes (a hostile-client review of
 * weft-httpd found 1,756 of 4,000 bodies carrying another client's file). Every byte each
 * reader gets must be its own file's. */
enum { SF_LEN = 700 * 1000 };

typedef struct sf_job {
    int sock, file;
    ssize_t rc;
} sf_job;

static void *sf_send(void *arg)
{
    sf_job *j = arg;
    off_t off = 0;
    j->rc = weft_sendfile(j->sock, j->file, &off, SF_LEN, weft_deadline_in((10 * WEFT_SEC)));
    return NULL;
}

typedef struct sf_read {
    int sock;
    char *got;
} sf_read;

static void *sf_recv(void *arg)
{
    sf_read *r = arg;
    cr_assert_eq(weft_sleep(20 * WEFT_MSEC), 0); /* both transfers park on full sockets */
    read_all(r->sock, r->got, SF_LEN);
    return NULL;
}

static int sf_file(char seed)
{
    char path[] = "/tmp/weft-sf-XXXXXX";
    int f = mkstemp(path);
    cr_assert_geq(f, 0);
    unlink(path);
    char *d = malloc(SF_LEN);
    for (size_t i = 0; i < SF_LEN; i++)
        d[i] = (char)(seed + (char)(i % 61));
    cr_assert_eq(write(f, d, SF_LEN), (ssize_t)SF_LEN);
    free(d);
    return f;
}

static void *two_sendfiles_main(void *arg)
{
    (void)arg;
    sf_job job[2];
    sf_read rd[2];
    int peer[2];
    weft_task *ts[4];
    for (int k = 0; k < 2; k++) {
        int p[2];
        small_pair(p);
        job[k] = (sf_job){.sock = p[0], .file = sf_file(k ? 'a' : 'A'), .rc = 0};
        peer[k] = p[1];
        rd[k] = (sf_read){.sock = p[1], .got = malloc(SF_LEN)};
    }
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(weft_spawn(&ts[k], sf_send, &job[k], NULL), 0);
        cr_assert_eq(weft_spawn(&ts[2 + k], sf_recv, &rd[k], NULL), 0);
    }
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_join(ts[k], NULL, WEFT_FOREVER), 0);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(job[k].rc, SF_LEN, "sendfile %d: %zd", k, job[k].rc);
        char seed = k ? 'a' : 'A';
        for (size_t i = 0; i < SF_LEN; i++)
            if (rd[k].got[i] != (char)(seed + (char)(i % 61)))
                cr_assert_fail("reader %d: byte %zu is 0x%02x, its file has 0x%02x", k, i,
                               (unsigned char)rd[k].got[i], (unsigned char)(seed + (char)(i % 61)));
        free(rd[k].got);
        close(job[k].file);
        weft_close(job[k].sock);
        weft_close(peer[k]);
    }
    return NULL;
}

Test(net, two_sendfiles_of_one_worker_each_send_their_own_file, .timeout = 60)
{
    run_main(two_sendfiles_main, NULL);
}

/* A write to a socket whose peer has shut its side down and reads nothing: it waits for room
 * (the deadline ends it, a cancel ends it, the peer's reading lets it finish), and does not
 * spin. On io_uring every poll of such a socket reports POLLRDHUP at once: the write went
 * round a poll and a retry for ever, and neither its deadline nor a cancel ended it (weft-kv
 * hung at SIGTERM behind such a client). */
enum { HC_LEN = 4 * 1024 * 1024 };

typedef struct hc_write {
    int fd;
    int64_t deadline;
    ssize_t rc;
} hc_write;

static void *hc_writer(void *arg)
{
    hc_write *h = arg;
    static char data[HC_LEN];
    h->rc = weft_write(h->fd, data, sizeof data, h->deadline);
    return NULL;
}

static void *half_closed_main(void *arg)
{
    (void)arg;
    int p[2];
    small_pair(p);
    cr_assert_eq(weft_shutdown(p[1], SHUT_WR), 0);
    char c;
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in((10 * WEFT_SEC))), 0, "the peer's end");
    /* The deadline ends the wait. */
    hc_write h = {.fd = p[0], .deadline = weft_deadline_in(50 * WEFT_MSEC)};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, hc_writer, &h, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(h.rc, -ETIMEDOUT, "write: %s", weft_errname((int)h.rc));
    /* So does a cancel, once the writer waits. */
    h = (hc_write){.fd = p[0], .deadline = WEFT_FOREVER};
    cr_assert_eq(weft_spawn(&t, hc_writer, &h, NULL), 0);
    for (int i = 0; i < 1000 && weft_task_status(t) != WEFT_TASK_PARKED; i++)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(h.rc, -ECANCELED, "write: %s", weft_errname((int)h.rc));
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    /* And room ends it: a new pair, the peer half-closed, reading everything late. */
    small_pair(p);
    cr_assert_eq(weft_shutdown(p[1], SHUT_WR), 0);
    h = (hc_write){.fd = p[0], .deadline = weft_deadline_in((10 * WEFT_SEC))};
    cr_assert_eq(weft_spawn(&t, hc_writer, &h, NULL), 0);
    cr_assert_eq(weft_sleep(20 * WEFT_MSEC), 0);
    static char sink[HC_LEN];
    read_all(p[1], sink, sizeof sink);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(h.rc, HC_LEN, "write: %s", weft_errname((int)h.rc));
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, a_write_to_a_half_closed_peer_waits_for_room, .timeout = 60)
{
    run_main(half_closed_main, NULL);
}

/* A write of 0 bytes is still the system call's: weft_write, weft_send and weft_writev check
 * the fd as write(2), send(2) and writev(2) do, and weft_write and weft_send of 0 bytes on a
 * datagram or seqpacket socket send an empty message, as write(2) and send(2) do (the write
 * loop made no call at all: 0 for a closed fd, and the empty datagram never left); a writev
 * of 0 bytes sends nothing, as writev(2) (whose kernel path skips an empty vector). */
static void *zero_writes_main(void *arg)
{
    (void)arg;
    int64_t soon = weft_deadline_in(5 * WEFT_SEC);
    cr_assert_eq(weft_write(-1, "", 0, soon), -EBADF);
    cr_assert_eq(weft_send(-1, "", 0, 0, soon), -EBADF);
    cr_assert_eq(weft_writev(-1, NULL, 0, soon), -EBADF);
    int pf[2];
    cr_assert_eq(pipe2(pf, O_CLOEXEC), 0);
    cr_assert_eq(weft_write(pf[0], "", 0, soon), -EBADF, "the read end");
    cr_assert_eq(weft_writev(pf[0], NULL, 0, soon), -EBADF, "the read end");
    cr_assert_eq(weft_send(pf[1], "", 0, 0, soon), -ENOTSOCK);
    cr_assert_eq(weft_write(pf[1], "", 0, soon), 0);
    cr_assert_eq(weft_close(pf[0]), 0);
    cr_assert_eq(weft_close(pf[1]), 0);

    weft_addr lo, at;
    cr_assert_eq(weft_addr_ip(&lo, "127.0.0.1", 0), 0);
    int u = weft_datagram(&lo, 0), v = weft_datagram(NULL, AF_INET);
    cr_assert_geq(u, 0);
    cr_assert_geq(v, 0);
    cr_assert_eq(weft_addr_local(u, &at), 0);
    cr_assert_eq(weft_connect(v, (struct sockaddr *)&at.ss, at.len, soon), 0);
    char buf[8];
    struct iovec none = {NULL, 0};
    cr_assert_eq(weft_send(v, "", 0, 0, soon), 0);
    cr_assert_eq(weft_write(v, "", 0, soon), 0);
    cr_assert_eq(weft_writev(v, &none, 1, soon), 0); /* sends nothing */
    cr_assert_eq(weft_send(v, "end", 3, 0, soon), 3);
    cr_assert_eq(weft_recv(u, buf, sizeof buf, 0, soon), 0, "the empty datagram of send");
    cr_assert_eq(weft_read(u, buf, sizeof buf, soon), 0, "the empty datagram of write");
    cr_assert_eq(weft_recv(u, buf, sizeof buf, 0, soon), 3, "then the last one");
    cr_assert_eq(weft_recv(u, buf, sizeof buf, MSG_DONTWAIT, soon), -EAGAIN);
    cr_assert_eq(weft_close(u), 0);
    cr_assert_eq(weft_close(v), 0);

    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(weft_write(sp[0], "", 0, soon), 0);
    cr_assert_eq(weft_write(sp[0], "x", 1, soon), 1);
    cr_assert_eq(weft_read(sp[1], buf, sizeof buf, soon), 0, "the empty record");
    cr_assert_eq(weft_read(sp[1], buf, sizeof buf, soon), 1);
    cr_assert_eq(weft_close(sp[0]), 0);
    cr_assert_eq(weft_close(sp[1]), 0);

    /* On a stream socket weft has read (io_uring: its sends may be written behind), an empty
     * write between two others changes nothing of the stream. */
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_write(p[1], "a", 1, soon), 1);
    cr_assert_eq(weft_read(p[0], buf, 1, soon), 1);
    cr_assert_eq(weft_write(p[0], "x", 1, soon), 1);
    cr_assert_eq(weft_write(p[0], "", 0, soon), 0);
    cr_assert_eq(weft_send(p[0], "", 0, 0, soon), 0);
    cr_assert_eq(weft_write(p[0], "y", 1, soon), 1);
    size_t got = 0;
    while (got < 2) {
        ssize_t n = weft_read(p[1], buf + got, sizeof buf - got, soon);
        cr_assert_gt(n, 0);
        got += (size_t)n;
    }
    cr_assert(memcmp(buf, "xy", 2) == 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, a_zero_length_write_checks_the_fd_and_sends_an_empty_datagram, .timeout = 30)
{
    run_main(zero_writes_main, NULL);
}

/* A connect that was refused leaves the socket as a blocking connect(2) does: the next
 * connect tries again and is refused again, on both backends (epoll said -ECONNABORTED:
 * Linux marks the socket unconnected only at the connect(2) after the refusal). */
static void *refused_twice_main(void *arg)
{
    (void)arg;
    weft_addr a, b;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(weft_addr_local(lfd, &b), 0);
    cr_assert_eq(weft_close(lfd), 0);
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 3; i++) {
        int r = weft_connect(fd, (struct sockaddr *)&b.ss, b.len, weft_deadline_in(5 * WEFT_SEC));
        cr_assert_eq(r, -ECONNREFUSED, "connect %d: %s", i, weft_errname(r));
    }
    cr_assert_eq(weft_close(fd), 0);
    return NULL;
}

Test(net, a_connect_after_a_refused_one_is_refused_again, .timeout = 30)
{
    run_main(refused_twice_main, NULL);
}

/* MSG_WAITALL on a stream socket waits for the whole length, as a blocking recv(2) does, on
 * both backends (epoll's non-blocking recv(2), and io_uring once it held a socket's bytes,
 * returned the first piece); the end of stream or the deadline returns what came, and nothing
 * is lost. A datagram socket still gives one datagram per call. */
typedef struct {
    int fd;
    const char *piece[2];
} pieces;

static void *send_in_pieces(void *arg)
{
    pieces *p = arg;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_sleep(10 * WEFT_MSEC), 0); /* the reader parks between the pieces */
        size_t n = strlen(p->piece[i]);
        cr_assert_eq(weft_write(p->fd, p->piece[i], n, WEFT_FOREVER), (ssize_t)n);
    }
    return NULL;
}

static void waitall_pair(int a, int b, int from)
{
    int64_t soon = weft_deadline_in(10 * WEFT_SEC);
    char buf[16];
    pieces p = {.fd = b, .piece = {"abc", "defgh"}};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, send_in_pieces, &p, NULL), 0);
    ssize_t n = from ? weft_recvfrom(a, buf, 8, MSG_WAITALL, NULL, NULL, soon)
                     : weft_recv(a, buf, 8, MSG_WAITALL, soon);
    cr_assert_eq(n, 8, "recv: %zd", n);
    cr_assert(memcmp(buf, "abcdefgh", 8) == 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* The deadline: what came, and the rest stays readable. */
    cr_assert_eq(weft_write(b, "xy", 2, soon), 2);
    cr_assert_eq(weft_recv(a, buf, 8, MSG_WAITALL, weft_deadline_in(20 * WEFT_MSEC)), 2);
    /* The end of the stream: what came. */
    cr_assert_eq(weft_write(b, "end", 3, soon), 3);
    cr_assert_eq(weft_shutdown(b, SHUT_WR), 0);
    cr_assert_eq(weft_recv(a, buf, 8, MSG_WAITALL, soon), 3);
    cr_assert(memcmp(buf, "end", 3) == 0);
    cr_assert_eq(weft_recv(a, buf, 8, MSG_WAITALL, soon), 0);
    cr_assert_eq(weft_close(a), 0);
    cr_assert_eq(weft_close(b), 0);
}

static void *waitall_main(void *arg)
{
    (void)arg;
    int p[2];
    for (int from = 0; from < 2; from++) {
        tcp_pair(p); /* not read yet */
        waitall_pair(p[0], p[1], from);
        tcp_pair(p); /* read once already (io_uring: its bytes are held by weft) */
        char c;
        cr_assert_eq(weft_write(p[1], "!", 1, WEFT_FOREVER), 1);
        cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
        waitall_pair(p[0], p[1], from);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
        waitall_pair(p[0], p[1], from);
    }
    /* Datagrams: one per call, MSG_WAITALL or not. */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, p), 0);
    cr_assert_eq(weft_write(p[1], "ab", 2, WEFT_FOREVER), 2);
    cr_assert_eq(weft_write(p[1], "cd", 2, WEFT_FOREVER), 2);
    char buf[8];
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, MSG_WAITALL, WEFT_FOREVER), 2);
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, MSG_WAITALL, WEFT_FOREVER), 2);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, msg_waitall_waits_for_the_whole_length_on_a_stream, .timeout = 30)
{
    run_main(waitall_main, NULL);
}

/* A datagram sent to a Unix-domain address whose receiver's queue is full waits for room, and
 * waits without a busy loop: the sender's readiness says nothing of that queue (Linux's poll
 * of a Unix datagram socket looks at its connected peer only), so epoll's wait came back at
 * once and the send said EAGAIN again until the deadline (tens of thousands of calls in
 * 100 ms), and io_uring's sendmsg spun in the kernel. A sender waiting there gets through once
 * the receiver takes a datagram. */
static void *dgram_sender(void *arg)
{
    const weft_addr *to = arg;
    char msg[64] = {0};
    int s = weft_datagram(NULL, AF_UNIX);
    cr_assert_geq(s, 0);
    ssize_t r =
        weft_sendto(s, msg, sizeof msg, 0, (const struct sockaddr *)&to->ss, to->len, WEFT_FOREVER);
    weft_close(s);
    return (void *)(intptr_t)r;
}

static void *unix_dgram_full_main(void *arg)
{
    (void)arg;
    char name[64];
    snprintf(name, sizeof name, "@weft-dgram-full-%d", (int)getpid());
    weft_addr ua;
    cr_assert_eq(weft_addr_unix(&ua, name), 0);
    int rcv = weft_datagram(&ua, 0), snd = weft_datagram(NULL, AF_UNIX);
    cr_assert_geq(rcv, 0);
    cr_assert_geq(snd, 0);
    const struct sockaddr *to = (const struct sockaddr *)&ua.ss;
    char msg[64] = {0};
    int sent = 0;
    ssize_t r;
    while ((r = weft_sendto(snd, msg, sizeof msg, 0, to, ua.len, 0)) == (ssize_t)sizeof msg)
        cr_assert_lt(++sent, 100000, "the receiver's queue never filled");
    cr_assert_eq(r, -ETIMEDOUT, "a passed deadline on a full queue: %s", weft_errname((int)r));
    cr_assert_gt(sent, 0);
    weft_stats before, after;
    cr_assert_eq(weft_stats_get(&before), 0);
    r = weft_sendto(snd, msg, sizeof msg, 0, to, ua.len, weft_deadline_in(100 * WEFT_MSEC));
    cr_assert_eq(weft_stats_get(&after), 0);
    cr_assert_eq(r, -ETIMEDOUT, "%s", weft_errname((int)r));
    cr_assert_lt(after.nsyscalls - before.nsyscalls, 200, "a wait, not a busy loop: %llu calls",
                 (unsigned long long)(after.nsyscalls - before.nsyscalls));
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, dgram_sender, &ua, NULL), 0);
    for (int i = 0; i < 1000 && weft_task_status(t) != WEFT_TASK_PARKED; i++)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(weft_task_status(t), WEFT_TASK_PARKED, "the sender waits for room");
    char buf[64];
    cr_assert_eq(weft_recv(rcv, buf, sizeof buf, 0, WEFT_FOREVER), (ssize_t)sizeof buf);
    void *res;
    cr_assert_eq(weft_join(t, &res, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)res, (intptr_t)sizeof msg, "sent once there was room");
    cr_assert_eq(weft_close(snd), 0);
    cr_assert_eq(weft_close(rcv), 0);
    return NULL;
}

Test(net, a_datagram_to_a_full_unix_receiver_waits_without_spinning, .timeout = 30)
{
    run_main(unix_dgram_full_main, NULL);
}

/* A recv of 0 bytes answers as recv(2): once bytes are there it returns 0 and takes none, on
 * both backends, also once weft holds a socket's bytes (io_uring's recv found the kernel's
 * socket empty and waited for more: for ever with WEFT_FOREVER). With nothing there it waits
 * (the deadline), and at the end of stream it is 0. */
static void *recv_zero_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    char buf[8];
    cr_assert_eq(weft_write(p[1], "a", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(p[0], buf, 1, WEFT_FOREVER), 1); /* io_uring: its receive is armed */
    cr_assert_eq(weft_recv(p[0], buf, 0, 0, weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_write(p[1], "bcd", 3, WEFT_FOREVER), 3);
    cr_assert_eq(weft_recv(p[0], buf, 0, 0, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_recv(p[0], buf, 0, 0, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 3, "nothing was taken");
    cr_assert(memcmp(buf, "bcd", 3) == 0);
    cr_assert_eq(weft_shutdown(p[1], SHUT_WR), 0);
    cr_assert_eq(weft_recv(p[0], buf, 0, 0, weft_deadline_in(10 * WEFT_SEC)), 0, "the end");
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, a_zero_length_recv_returns_once_bytes_are_there, .timeout = 30)
{
    run_main(recv_zero_main, NULL);
}

/* MSG_PEEK | MSG_WAITALL of more than io_uring holds for one socket (128 KiB: its receive is
 * stopped there, and the rest waits in the socket): the peek waits for len bytes, as on TCP
 * recv(2) does, held and socket bytes together, in order. The receive stays stopped until a
 * read empties what is held, so a peek of the held bytes alone saw 128 KiB for ever and
 * returned them at the deadline (epoll peeks the socket: all of them at once). A read then
 * takes every byte, in order. */
#define PEEK_BIG (256 * 1024)

typedef struct {
    int fd;
    unsigned char *bytes;
} big_write;

static void *write_big(void *arg)
{
    big_write *b = arg;
    cr_assert_eq(weft_write(b->fd, b->bytes, PEEK_BIG, weft_deadline_in(10 * WEFT_SEC)), PEEK_BIG);
    return NULL;
}

static void *peek_past_held_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    int room = 4 * PEEK_BIG; /* the kernel doubles it: the whole write fits in the socket */
    cr_assert_eq(setsockopt(p[0], SOL_SOCKET, SO_RCVBUF, &room, sizeof room), 0);
    char c;
    cr_assert_eq(weft_write(p[1], "!", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1); /* io_uring: the receive is armed */
    big_write b = {.fd = p[1], .bytes = malloc(PEEK_BIG)};
    unsigned char *got = malloc(PEEK_BIG);
    cr_assert(b.bytes && got);
    for (size_t i = 0; i < PEEK_BIG; i++)
        b.bytes[i] = (unsigned char)(i * 7 + i / 251);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, write_big, &b, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    ssize_t n =
        weft_recv(p[0], got, PEEK_BIG, MSG_PEEK | MSG_WAITALL, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_eq(n, PEEK_BIG, "peek|waitall: %zd", n);
    cr_assert(memcmp(got, b.bytes, PEEK_BIG) == 0, "the peek keeps the stream's order");
    memset(got, 0, PEEK_BIG);
    read_all(p[0], got, PEEK_BIG);
    cr_assert(memcmp(got, b.bytes, PEEK_BIG) == 0, "the read takes every byte, in order");
    free(b.bytes);
    free(got);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(net, a_peek_waitall_past_what_io_uring_holds_sees_the_sockets_bytes_too, .timeout = 60)
{
    run_main(peek_past_held_main, NULL);
}
