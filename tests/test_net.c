/* Sockets on loopback: echo round trips (TCP over IPv4 and IPv6, Unix stream), connection
 * refused, deadlines, cancellation and close while parked, half-close and reset, UDP and
 * Unix datagrams, sendfile, 5,000 concurrent connections, and a server that survives
 * running out of fds. Every test is bounded in count and time and uses port 0. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (c < 0)
            break; /* cancelled */
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

static void *cancelled_calls(void *arg)
{
    int fd = (int)(intptr_t)arg;
    weft_cancel(weft_self());
    char c = 'x';
    int ok = weft_read(fd, &c, 1, WEFT_FOREVER) == -ECANCELED &&
             weft_write(fd, &c, 1, WEFT_FOREVER) == -ECANCELED &&
             weft_accept(fd, NULL, NULL, WEFT_FOREVER) == -ECANCELED;
    return (void *)(intptr_t)ok;
}

static void *cancelled_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_task *t;
    weft_spawn(&t, cancelled_calls, (void *)(intptr_t)p[0], NULL);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);
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
        ssize_t n = weft_read(d->fd, d->buf + got, d->len - got, weft_deadline_in(10 * WEFT_SEC));
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
    weft_task *s;
    weft_spawn(&s, echo_server, (void *)(intptr_t)lfd, NULL);
    static weft_task *ts[NCONNS];
    for (int i = 0; i < NCONNS; i++)
        weft_spawn(&ts[i], client, &srv, NULL);
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
