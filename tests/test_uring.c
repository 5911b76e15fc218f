/* The io_uring backend's own paths: reads of stream sockets through a multishot receive into
 * provided buffers (data larger than the reader's buffer, close with data buffered, deadline
 * and cancellation while the receive waits, end of stream after data, MSG_PEEK, readiness of
 * buffered data), each run with every optional feature on and again with all of them off
 * (WEFT_URING_OFF, read at start-up by test builds), so the fallback paths stay covered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "harness.h"
#include "io/backend.h"
#include "io/uring_bufs.h"
#include "scheduler.h"
#include "sys.h"
#include "tcp_helpers.h"

#define ALL_OFF "defer,coop,bufring,regring"

/* These tests read socketpairs through the multishot receive (and send behind on them), which
 * weft otherwise keeps off AF_UNIX sockets for a kernel bug (uring.c, recv_buffered): on for
 * the whole file, in every process Criterion forks. */
__attribute__((constructor)) static void unix_multishot_on(void)
{
    setenv("WEFT_URING_UNIX_MULTISHOT", "1", 0);
}

static void pair(int fds[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
}

static uint64_t nsyscalls(void)
{
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    return st.nsyscalls;
}

/* Whether the multishot path is in use: io_uring, and the buffers not switched off. */
static bool multishot(void)
{
    const char *off = getenv("WEFT_URING_OFF");
    return !(off && strstr(off, "bufring"));
}

/* Runs fn on io_uring with the features named in `off` switched off (NULL: none). */
static void run_uring(weft_fn fn, const char *off)
{
    if (off)
        setenv("WEFT_URING_OFF", off, 1);
    else
        unsetenv("WEFT_URING_OFF");
    struct io_uring probe_ring;
    if (io_uring_queue_init(4, &probe_ring, 0) < 0)
        cr_skip_test("the kernel refuses io_uring here");
    io_uring_queue_exit(&probe_ring);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.backend = WEFT_BACKEND_IO_URING;
    cr_assert_eq(run_main_cfg(&cfg, fn, NULL), NULL);
}

/* Another task reads the same fd: the bytes the receive holds are the fd's, not a task's. */
static void *read_three(void *arg)
{
    char buf[3];
    ssize_t n = weft_read((int)(intptr_t)arg, buf, sizeof buf, WEFT_FOREVER);
    return n == 3 && memcmp(buf, "\x07\x08\x09", 3) == 0 ? NULL : (void *)1;
}

/* 100 bytes in one write, read 7 at a time: every byte in order, and with the multishot
 * receive every read after the first is served from the buffer (no system call). */
static void *larger_main(void *arg)
{
    (void)arg;
    cr_assert_str_eq(weft_backend(), "io_uring");
    int p[2];
    pair(p);
    char msg[100], got[100];
    for (int i = 0; i < 100; i++)
        msg[i] = (char)i;
    cr_assert_eq(weft_write(p[1], msg, sizeof msg, WEFT_FOREVER), 100);
    size_t n = 0;
    cr_assert_eq(weft_read(p[0], got, 7, WEFT_FOREVER), 7);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, read_three, (void *)(intptr_t)p[0], NULL), 0);
    void *res = (void *)2;
    cr_assert_eq(weft_join(t, &res, WEFT_FOREVER), 0);
    cr_assert_eq(res, NULL, "the other task read bytes 7, 8, 9");
    memcpy(got + 7, msg + 7, 3);
    n = 10;
    uint64_t before = nsyscalls();
    while (n < sizeof got) {
        size_t want = sizeof got - n < 7 ? sizeof got - n : 7;
        ssize_t k = weft_read(p[0], got + n, want, WEFT_FOREVER);
        cr_assert_gt(k, 0);
        n += (size_t)k;
    }
    if (multishot())
        cr_assert_eq(nsyscalls(), before, "the rest came from the buffer");
    cr_assert_eq(memcmp(got, msg, sizeof msg), 0);
    /* A readv across two iovecs, and a message larger than one provided buffer (2 KiB). */
    static char big[5000], back[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    cr_assert_eq(weft_write(p[1], big, sizeof big, WEFT_FOREVER), (ssize_t)sizeof big);
    n = 0;
    while (n < sizeof back) {
        size_t rest = sizeof back - n;
        struct iovec iov[2] = {{back + n, rest / 2}, {back + n + rest / 2, rest - rest / 2}};
        ssize_t k = weft_readv(p[0], iov, rest > 1 ? 2 : 1, WEFT_FOREVER);
        cr_assert_gt(k, 0);
        n += (size_t)k;
    }
    cr_assert_eq(memcmp(big, back, sizeof big), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(uring, data_larger_than_the_readers_buffer)
{
    run_uring(larger_main, NULL);
}

Test(uring, data_larger_than_the_readers_buffer_fallback)
{
    run_uring(larger_main, ALL_OFF);
}

/* Closed with data buffered: the buffers go back (LSan and the loop below would notice a
 * leak of memory or buffers), and an fd that gets the same number sees none of it. The next
 * pair usually takes the closed numbers, but not always: another thread of the process may
 * open a file in between (the stall detector reads /proc when this loop, which seldom
 * switches, runs long on a loaded machine). Such a round checks nothing about reuse; most
 * rounds must reuse the number. */
static void *close_main(void *arg)
{
    (void)arg;
    static char junk[3000];
    memset(junk, 'j', sizeof junk);
    int reused = 0;
    for (int round = 0; round < 3000; round++) {
        int p[2];
        pair(p);
        cr_assert_eq(weft_write(p[1], junk, sizeof junk, WEFT_FOREVER), (ssize_t)sizeof junk);
        char c;
        cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1);
        cr_assert_eq(c, 'j');
        int old = p[0];
        cr_assert_eq(weft_close(p[0]), 0);
        cr_assert_eq(weft_close(p[1]), 0);
        /* The next pair takes the same numbers: it must read its own bytes only. */
        pair(p);
        reused += p[0] == old;
        cr_assert_eq(weft_write(p[1], "fresh", 5, WEFT_FOREVER), 5);
        char buf[16];
        cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 5);
        cr_assert_eq(memcmp(buf, "fresh", 5), 0);
        cr_assert_eq(weft_close(p[0]), 0);
        cr_assert_eq(weft_close(p[1]), 0);
    }
    cr_assert_gt(reused, 1500, "only %d of 3000 pairs took the closed numbers", reused);
    return NULL;
}

Test(uring, close_with_data_buffered, .timeout = 120)
{
    run_uring(close_main, NULL);
}

Test(uring, close_with_data_buffered_fallback, .timeout = 120)
{
    run_uring(close_main, ALL_OFF);
}

static void *blocked_reader(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, WEFT_FOREVER);
}

/* A deadline, then a cancellation, while the reader waits on its receive: each ends the
 * wait only; bytes sent afterwards are all there for the next read, and the peer sees the
 * connection close when it is closed with the receive armed. */
static void *deadline_main(void *arg)
{
    (void)arg;
    int p[2];
    pair(p);
    char buf[8];
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, weft_deadline_in(5 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, 0), -ETIMEDOUT);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, blocked_reader, (void *)(intptr_t)p[0], NULL), 0);
    weft_yield(); /* it parks on the receive */
    weft_cancel(t);
    void *res;
    cr_assert_eq(weft_join(t, &res, WEFT_FOREVER), 0);
    cr_assert(res == WEFT_CANCELED || res == (void *)(intptr_t)-ECANCELED);
    cr_assert_eq(weft_write(p[1], "late", 4, WEFT_FOREVER), 4);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 4);
    cr_assert_eq(memcmp(buf, "late", 4), 0);
    /* Already sent, read with a deadline already passed: the bytes, not -ETIMEDOUT. */
    cr_assert_eq(weft_write(p[1], "now", 3, WEFT_FOREVER), 3);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, 0), 3);
    /* Close with the receive armed: the peer reads the end of stream. */
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(uring, deadline_and_cancel_during_a_multishot_wait)
{
    run_uring(deadline_main, NULL);
}

Test(uring, deadline_and_cancel_during_a_multishot_wait_fallback)
{
    run_uring(deadline_main, ALL_OFF);
}

/* Bytes, then the end of stream: the bytes (across reads), then 0 for every later read; a
 * peek leaves bytes in place; a readiness wait sees buffered bytes at once. */
static void *eof_main(void *arg)
{
    (void)arg;
    int p[2];
    pair(p);
    cr_assert_eq(weft_write(p[1], "abcdef", 6, WEFT_FOREVER), 6);
    char buf[8];
    cr_assert_eq(weft_read(p[0], buf, 2, WEFT_FOREVER), 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    cr_assert_eq(weft_fd_wait(p[0], WEFT_READABLE, 0), WEFT_READABLE);
    cr_assert_eq(weft_recv(p[0], buf, 2, MSG_PEEK, WEFT_FOREVER), 2);
    cr_assert_eq(memcmp(buf, "cd", 2), 0);
    cr_assert_eq(shutdown(p[1], SHUT_WR), 0);
    cr_assert_eq(weft_read(p[0], buf, 3, WEFT_FOREVER), 3);
    cr_assert_eq(memcmp(buf, "cde", 3), 0);
    cr_assert_eq(weft_recv(p[0], buf, sizeof buf, 0, WEFT_FOREVER), 1);
    cr_assert_eq(buf[0], 'f');
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 0);
    cr_assert_eq(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(uring, end_of_stream_after_data)
{
    run_uring(eof_main, NULL);
}

Test(uring, end_of_stream_after_data_fallback)
{
    run_uring(eof_main, ALL_OFF);
}

/* More bytes held than the worker has buffers (16 MiB): the kernel stops receives with
 * -ENOBUFS, those reads fall back to a single-shot recv and arm again, and every byte still
 * arrives once, in order. */
#define NPAIRS 96
static void *nobufs_main(void *arg)
{
    (void)arg;
    static int fds[NPAIRS][2];
    static size_t sent[NPAIRS];
    static unsigned char chunk[65536];
    for (int i = 0; i < NPAIRS; i++) {
        pair(fds[i]);
        sent[i] = 0;
        for (;;) { /* fill the pair: plain writes until the socket is full */
            for (size_t k = 0; k < sizeof chunk; k++)
                chunk[k] = (unsigned char)(i * 31 + sent[i] + k);
            ssize_t n = write(fds[i][1], chunk, sizeof chunk);
            if (n <= 0)
                break;
            sent[i] += (size_t)n;
        }
        cr_assert_gt(sent[i], 0);
        unsigned char c;
        cr_assert_eq(weft_read(fds[i][0], &c, 1, WEFT_FOREVER), 1); /* arms its receive */
        cr_assert_eq(c, (unsigned char)(i * 31));
    }
    for (int i = 0; i < NPAIRS; i++) {
        size_t got = 1;
        while (got < sent[i]) {
            ssize_t n = weft_read(fds[i][0], chunk, sizeof chunk, WEFT_FOREVER);
            cr_assert_gt(n, 0);
            for (ssize_t k = 0; k < n; k++)
                cr_assert_eq(chunk[k], (unsigned char)(i * 31 + got + (size_t)k));
            got += (size_t)n;
        }
        weft_close(fds[i][0]);
        weft_close(fds[i][1]);
    }
    return NULL;
}

Test(uring, more_bytes_held_than_buffers, .timeout = 120)
{
    run_uring(nobufs_main, NULL);
}

/* Each feature off alone (the modes the probe can end in on older kernels), one runtime
 * per test: the three scenarios above in turn. */
static void *all_main(void *arg)
{
    larger_main(arg);
    eof_main(arg);
    return deadline_main(arg);
}

Test(uring, without_defer_taskrun)
{
    run_uring(all_main, "defer");
}

Test(uring, without_any_taskrun_mode)
{
    run_uring(all_main, "defer,coop");
}

Test(uring, without_provided_buffers)
{
    run_uring(all_main, "bufring");
}

Test(uring, without_a_registered_ring_fd)
{
    run_uring(all_main, "regring");
}

/* A receive's generation travels in 31 bits of its tag: the record's own generation wraps
 * within them, so after 2^31 closes of one fd number its completions still count (they were
 * taken for stale ones, and its readers never woken). */
Test(uring, a_receive_generation_wraps_within_its_tag)
{
    weft__ubuf_fd recs[8];
    for (int i = 0; i < 8; i++)
        recs[i] = (weft__ubuf_fd){.head = -1, .tail = -1};
    weft__ubufs b = {.fds = recs, .nfds = 8};
    weft__ubuf_fd *f = &recs[3];
    f->gen = WEFT__UBUF_GEN_MASK; /* as after 2^31 - 1 forgets of fd 3 */
    weft__ubufs_drop(&b, f);      /* one more */
    cr_assert_eq(f->gen & ~WEFT__UBUF_GEN_MASK, 0u, "gen %#x left the tag's bits", f->gen);
    f->armed = 1;
    /* The receive's last completion (no F_MORE: the end of the stream), tagged with the
     * masked generation: taken as this receive's (a stale one is ignored, returns false). */
    cr_assert(weft__ubufs_complete(&b, 3, f->gen & WEFT__UBUF_GEN_MASK, 0, 0));
    cr_assert_eq(f->armed, 0);
    cr_assert(f->eof);
}

/* Bytes the armed receive has taken from the socket, their completion not yet reaped, are
 * there for weft_fd_wait(READABLE) and for recv(MSG_DONTWAIT): the socket itself is empty. */
static void *unreaped_main(void *arg)
{
    (void)arg;
    int p[2];
    pair(p);
    char c;
    cr_assert_eq(weft_write(p[1], "A", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(p[0], &c, 1, WEFT_FOREVER), 1); /* arms the receive */
    cr_assert_eq(write(p[1], "x", 1), 1);                  /* no tick in between */
    cr_assert_eq(weft_fd_wait(p[0], WEFT_READABLE, weft_deadline_in(5 * WEFT_SEC)), WEFT_READABLE);
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(5 * WEFT_SEC)), 1);
    cr_assert_eq(c, 'x');
    cr_assert_eq(write(p[1], "y", 1), 1);
    cr_assert_eq(weft_recv(p[0], &c, 1, MSG_DONTWAIT, WEFT_FOREVER), 1);
    cr_assert_eq(c, 'y');
    cr_assert_eq(weft_recv(p[0], &c, 1, MSG_DONTWAIT, WEFT_FOREVER), -EAGAIN, "and now empty");
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(uring, unreaped_bytes_are_readable_and_dontwait_finds_them)
{
    run_uring(unreaped_main, NULL);
}

Test(uring, unreaped_bytes_are_readable_without_defer_taskrun)
{
    run_uring(unreaped_main, "defer");
}

Test(uring, unreaped_bytes_are_readable_without_any_taskrun_mode)
{
    run_uring(unreaped_main, "defer,coop");
}

/* A peek parked on an armed receive that then stops for want of buffers (another connection
 * nobody reads took them all) peeks the socket: the bytes stay for the next read. */
static void *peeker(void *arg)
{
    char buf[16];
    ssize_t n = weft_recv((int)(intptr_t)arg, buf, sizeof buf, MSG_PEEK, WEFT_FOREVER);
    return (void *)(intptr_t)n;
}

static void *peek_nobufs_main(void *arg)
{
    (void)arg;
    int a[2], b[2];
    pair(a);
    pair(b);
    char c;
    cr_assert_eq(weft_write(a[1], "A", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(a[0], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_write(b[1], "B", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(b[0], &c, 1, WEFT_FOREVER), 1);
    weft_task *pt;
    cr_assert_eq(weft_spawn(&pt, peeker, (void *)(intptr_t)b[0], NULL), 0);
    weft_yield(); /* the peeker parks */
    static char chunk[65536];
    size_t total = 0;
    for (int idle = 0; total < (24u << 20) && idle < 50;) {
        ssize_t k = write(a[1], chunk, sizeof chunk);
        if (k > 0) {
            total += (size_t)k;
            idle = 0;
        } else {
            idle++;
            weft_sleep(WEFT_MSEC);
        }
    }
    cr_assert_eq(weft_write(b[1], "xyz", 3, WEFT_FOREVER), 3);
    void *r = NULL;
    cr_assert_eq(weft_join(pt, &r, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq((intptr_t)r, 3);
    char buf[16];
    cr_assert_eq(weft_read(b[0], buf, sizeof buf, weft_deadline_in(5 * WEFT_SEC)), 3,
                 "the peeked bytes are still there");
    cr_assert_eq(memcmp(buf, "xyz", 3), 0);
    weft_close(a[0]);
    weft_close(a[1]);
    weft_close(b[0]);
    weft_close(b[1]);
    return NULL;
}

Test(uring, a_peek_after_the_buffers_ran_out_takes_nothing, .timeout = 120)
{
    run_uring(peek_nobufs_main, NULL);
}

/* A connection nobody reads holds at most WEFT__UBUF_FD_CAP buffers: its receive stops and
 * the rest waits in its socket, so another connection's receive still has buffers, and its
 * bytes are read from them without a system call (not a single-shot recv for want of
 * buffers). Then the hog is read to its end: every byte once, in order, across the
 * receive's stops and re-arms. */
static void *cap_main(void *arg)
{
    (void)arg;
    int a[2], b[2];
    pair(a);
    pair(b);
    char c;
    cr_assert_eq(weft_write(a[1], "A", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(a[0], &c, 1, WEFT_FOREVER), 1); /* arms a's receive */
    cr_assert_eq(weft_write(b[1], "B", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(b[0], &c, 1, WEFT_FOREVER), 1); /* and b's */
    static unsigned char chunk[65536];
    size_t total = 0;
    for (int idle = 0; total < (24u << 20) && idle < 50;) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (unsigned char)((total + k) * 13 + 1);
        ssize_t k = write(a[1], chunk, sizeof chunk);
        if (k > 0) {
            total += (size_t)k;
            idle = 0;
            /* A tick between writes, as a worker serving its connections has: the cap is
             * applied when completions are reaped (without DEFER_TASKRUN the kernel runs
             * the receive on its own, so a writer that never yields could outrun it). */
            weft_sleep(WEFT_USEC);
        } else {
            idle++;
            weft_sleep(WEFT_MSEC);
        }
    }
    if (multishot())
        cr_assert_lt(total, 16u << 20, "%zu bytes went in: the receive did not stop", total);
    static char msg[20000], got[20000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)(i * 3);
    cr_assert_eq(write(b[1], msg, sizeof msg), (ssize_t)sizeof msg);
    weft_sleep(20 * WEFT_MSEC); /* ticks reap b's completions */
    uint64_t before = nsyscalls();
    size_t n = 0;
    while (n < sizeof got) {
        ssize_t k = weft_read(b[0], got + n, sizeof got - n, WEFT_FOREVER);
        cr_assert_gt(k, 0);
        n += (size_t)k;
    }
    if (multishot())
        cr_assert_eq(nsyscalls(), before, "b's bytes came from its buffers");
    cr_assert_eq(memcmp(got, msg, sizeof msg), 0);
    size_t seen = 0;
    while (seen < total) {
        ssize_t k = weft_read(a[0], chunk, sizeof chunk, weft_deadline_in(10 * WEFT_SEC));
        cr_assert_gt(k, 0, "a: %zd at %zu of %zu", k, seen, total);
        for (ssize_t i = 0; i < k; i++)
            cr_assert_eq(chunk[i], (unsigned char)((seen + (size_t)i) * 13 + 1), "a: byte %zu",
                         seen + (size_t)i);
        seen += (size_t)k;
    }
    weft_close(a[0]);
    weft_close(a[1]);
    weft_close(b[0]);
    weft_close(b[1]);
    return NULL;
}

Test(uring, an_unread_connection_cannot_take_every_buffer, .timeout = 120)
{
    run_uring(cap_main, NULL);
}

Test(uring, an_unread_connection_cannot_take_every_buffer_without_defer_taskrun, .timeout = 120)
{
    run_uring(cap_main, "defer,coop");
}

/* Many AF_UNIX streams written to their end and closed, read by tasks of which every third is
 * slow: each reader gets every byte, then the end of stream. The kernel's multishot receive
 * can miss an AF_UNIX stream's end (liburing issue #1549): with it, 1-4 of 64 readers here
 * waited until their deadline though recv(2) saw the end. weft reads such sockets with plain
 * ring operations (the test runs without this file's WEFT_URING_UNIX_MULTISHOT). */
enum { EOF_CONNS = 64, EOF_BYTES = 1024 * 1024 };

typedef struct unix_end_conn {
    int s[2];
    int idx;
    long got;
    int res;
} unix_end_conn;

static void *unix_end_writer(void *arg)
{
    unix_end_conn *c = arg;
    static __thread char buf[65536];
    size_t done = 0;
    while (done < EOF_BYTES) {
        size_t len = 1 + (done * 7 + (size_t)c->idx * 1031) % 65535;
        if (len > EOF_BYTES - done)
            len = EOF_BYTES - done;
        ssize_t n = weft_write(c->s[1], buf, len, weft_deadline_in(30 * WEFT_SEC));
        if (n < 0)
            return (void *)1;
        done += (size_t)n;
    }
    return weft_close(c->s[1]) == 0 ? NULL : (void *)1;
}

static void *unix_end_reader(void *arg)
{
    unix_end_conn *c = arg;
    static __thread char buf[16384];
    for (;;) {
        ssize_t n = weft_read(c->s[0], buf, 1000 + (size_t)c->idx * 97 % 8000,
                              weft_deadline_in(10 * WEFT_SEC));
        if (n <= 0) {
            c->res = (int)n;
            return NULL;
        }
        c->got += n;
        if (c->idx % 3 == 0)
            weft_sleep(200 * WEFT_USEC);
    }
}

static void *unix_end_main(void *arg)
{
    (void)arg;
    static unix_end_conn cs[EOF_CONNS];
    weft_task *w[EOF_CONNS], *r[EOF_CONNS];
    for (int i = 0; i < EOF_CONNS; i++) {
        cs[i] = (unix_end_conn){.idx = i};
        pair(cs[i].s);
        int b = 8192 << (i % 4);
        cr_assert_eq(setsockopt(cs[i].s[1], SOL_SOCKET, SO_SNDBUF, &b, sizeof b), 0);
        cr_assert_eq(setsockopt(cs[i].s[0], SOL_SOCKET, SO_RCVBUF, &b, sizeof b), 0);
    }
    for (int i = 0; i < EOF_CONNS; i++) {
        cr_assert_eq(weft_spawn(&w[i], unix_end_writer, &cs[i], NULL), 0);
        cr_assert_eq(weft_spawn(&r[i], unix_end_reader, &cs[i], NULL), 0);
    }
    int missed = 0;
    for (int i = 0; i < EOF_CONNS; i++) {
        void *wr = (void *)1;
        cr_assert_eq(weft_join(w[i], &wr, WEFT_FOREVER), 0);
        cr_assert_null(wr, "writer %d failed", i);
        cr_assert_eq(weft_join(r[i], NULL, WEFT_FOREVER), 0);
        cr_assert_eq(cs[i].got, EOF_BYTES, "reader %d got %ld bytes", i, cs[i].got);
        missed += cs[i].res != 0;
        weft_close(cs[i].s[0]);
    }
    cr_assert_eq(missed, 0, "%d of %d readers missed the end of stream", missed, EOF_CONNS);
    return NULL;
}

Test(uring, every_af_unix_stream_end_is_seen, .timeout = 120)
{
    unsetenv("WEFT_URING_UNIX_MULTISHOT");
    run_uring(unix_end_main, NULL);
}

/* The backend's recvmsg of a stream socket with several iovecs or with control data, as
 * net.c submits weft_recvfrom's (weft.h has no weft_recvmsg: this is what one would get).
 * Once io_uring's receive was armed, the ring's own recvmsg read the socket past the bytes
 * weft held: it waited for new bytes with "bcdef" held, or returned a later write's first.
 * On both backends: the bytes in order, held ones scattered over the iovecs with no control
 * data; with none held, the kernel's recvmsg (MSG_DONTWAIT: -EAGAIN), and a read after it
 * gets the next bytes. */
static ssize_t recvmsg_now(int fd, struct iovec *iov, size_t niov, bool ctl, int flags,
                           size_t *ctllen)
{
    char cbuf[64];
    struct msghdr msg = {.msg_iov = iov,
                         .msg_iovlen = niov,
                         .msg_control = ctl ? cbuf : NULL,
                         .msg_controllen = ctl ? sizeof cbuf : 0};
    weft__ioreq q = {.op = WEFT__IO_RECVMSG, .fd = fd, .msg = &msg, .flags = flags};
    ssize_t n = weft__io_submit(weft__worker_current(), &q, weft_deadline_in(10 * WEFT_SEC));
    *ctllen = msg.msg_controllen;
    return n;
}

static void *recvmsg_in_order_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    char a[8] = {0}, b[16] = {0};
    size_t ctllen;
    cr_assert_eq(weft_write(p[1], "abcdef", 6, WEFT_FOREVER), 6);
    cr_assert_eq(weft_read(p[0], a, 1, WEFT_FOREVER), 1); /* io_uring: "bcdef" held */
    struct iovec two[2] = {{a, 2}, {b, 10}};
    ssize_t n = recvmsg_now(p[0], two, 2, false, 0, &ctllen);
    cr_assert_eq(n, 5, "several iovecs: %zd", n);
    cr_assert(memcmp(a, "bc", 2) == 0 && memcmp(b, "def", 3) == 0);
    cr_assert_eq(weft_write(p[1], "ghi", 3, WEFT_FOREVER), 3);
    cr_assert_eq(weft_read(p[0], a, 1, WEFT_FOREVER), 1); /* io_uring: "hi" held */
    struct iovec one = {b, sizeof b};
    for (int peek = 1; peek >= 0; peek--) {
        memset(b, 0, sizeof b);
        n = recvmsg_now(p[0], &one, 1, true, peek ? MSG_PEEK : 0, &ctllen);
        cr_assert_eq(n, 2, "control data, peek %d: %zd", peek, n);
        cr_assert(memcmp(b, "hi", 2) == 0);
        cr_assert_eq(ctllen, 0);
    }
    /* Nothing held: the kernel's answer. */
    cr_assert_eq(recvmsg_now(p[0], &one, 1, true, MSG_DONTWAIT, &ctllen), -EAGAIN);
    cr_assert_eq(weft_write(p[1], "jkl", 3, WEFT_FOREVER), 3);
    memset(b, 0, sizeof b);
    cr_assert_eq(recvmsg_now(p[0], two, 2, true, 0, &ctllen), 3);
    cr_assert(memcmp(a, "jk", 2) == 0 && b[0] == 'l');
    cr_assert_eq(weft_write(p[1], "mn", 2, WEFT_FOREVER), 2);
    cr_assert_eq(weft_read(p[0], a, 2, WEFT_FOREVER), 2);
    cr_assert(memcmp(a, "mn", 2) == 0);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(uring, a_recvmsg_with_iovecs_or_control_data_keeps_the_streams_order, .timeout = 120)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.backend = WEFT_BACKEND_EPOLL;
    cr_assert_eq(run_main_cfg(&cfg, recvmsg_in_order_main, NULL), NULL);
    run_uring(recvmsg_in_order_main, NULL);
    run_uring(recvmsg_in_order_main, ALL_OFF);
}

/* ---- Submissions paced to a near timer (src/io/uring_pace.h) ---------------------------- */

/* The tests below fix the pace's time per SQE at 10 s (WEFT_TEST_URING_SQE_NS), so that what
 * goes to the kernel when depends on the timers armed alone, not on this machine's speed or
 * load: a timer 60 s away is then "near" (6 SQEs' time), and none fires during a test. */
#define PACED_PAIRS 16
#define PACE_SQE_NS "10000000000"
#define PACE_TIMER  (60 * WEFT_SEC)

/* Runs fn on io_uring with the pace's time per SQE fixed (above). */
static void run_paced(weft_fn fn)
{
    setenv("WEFT_TEST_URING_SQE_NS", PACE_SQE_NS, 1);
    run_uring(fn, NULL);
}

/* PACED_PAIRS pairs whose reads the ring follows, so that a small write to one is sent
 * behind: an SQE prepared, nothing entered. */
static void paced_pairs(int p[PACED_PAIRS][2])
{
    for (int i = 0; i < PACED_PAIRS; i++) {
        pair(p[i]);
        char c;
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(weft_write(p[i][k], "!", 1, WEFT_FOREVER), 1);
            cr_assert_eq(weft_read(p[i][1 - k], &c, 1, WEFT_FOREVER), 1);
        }
    }
}

/* Writes byte `tag + i` to pair i; returns the system calls made meanwhile. */
static uint64_t write_each(int p[PACED_PAIRS][2], char tag)
{
    uint64_t before = nsyscalls();
    for (int i = 0; i < PACED_PAIRS; i++) {
        char c = (char)(tag + i);
        cr_assert_eq(weft_write(p[i][1], &c, 1, WEFT_FOREVER), 1);
    }
    return nsyscalls() - before;
}

/* Every pair's byte arrives, the one written to it. */
static void read_each(int p[PACED_PAIRS][2], char tag)
{
    for (int i = 0; i < PACED_PAIRS; i++) {
        char c = 0;
        cr_assert_eq(weft_read(p[i][0], &c, 1, weft_deadline_in(10 * WEFT_SEC)), 1);
        cr_assert_eq(c, (char)(tag + i), "pair %d", i);
    }
}

static void close_each(int p[PACED_PAIRS][2])
{
    for (int i = 0; i < PACED_PAIRS; i++) {
        cr_assert_eq(weft_close(p[i][0]), 0);
        cr_assert_eq(weft_close(p[i][1]), 0);
    }
}

static void *sleep_for(void *arg)
{
    return (void *)(intptr_t)weft_sleep((int64_t)(intptr_t)arg);
}

/* With no timer armed a tick's sends go to the kernel in its one enter, after them; with a
 * timer 6 SQEs' time away they go in slices while they are written, each taking at most half
 * the time left (3 SQEs); and every byte arrives either way. */
static void *paced_writes_main(void *arg)
{
    (void)arg;
    if (!multishot())
        return NULL;
    int p[PACED_PAIRS][2];
    paced_pairs(p);
    cr_assert_eq(write_each(p, 'a'), 0, "no timer armed: the sends wait for the tick's enter");
    read_each(p, 'a');
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, sleep_for, (void *)(intptr_t)PACE_TIMER, NULL), 0);
    weft_yield(); /* it parks: its timer is armed */
    uint64_t entered = write_each(p, 'A');
    cr_assert_geq(entered, 4, "a near timer: the sends went in slices of 3 (%llu enters)",
                  (unsigned long long)entered);
    read_each(p, 'A');
    weft_cancel(t);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    close_each(p);
    return NULL;
}

Test(uring, sends_before_a_near_timer_go_in_slices_and_all_arrive)
{
    run_paced(paced_writes_main);
}

/* Sends prepared with no timer armed, then the task waits for the last pair's byte with a
 * deadline 6 SQEs' time away: the loop, with nothing to run, would hand the kernel all 16 and
 * wait in one enter, past the deadline; it hands over only those that fit, without waiting,
 * and comes back for the rest. Every byte arrives, and the sends went in slices. */
static void *paced_wait_main(void *arg)
{
    (void)arg;
    if (!multishot())
        return NULL;
    int p[PACED_PAIRS][2];
    paced_pairs(p);
    cr_assert_eq(write_each(p, 'k'), 0);
    uint64_t before = nsyscalls();
    char c = 0;
    cr_assert_eq(weft_read(p[PACED_PAIRS - 1][0], &c, 1, weft_deadline_in(PACE_TIMER)), 1);
    cr_assert_eq(c, (char)('k' + PACED_PAIRS - 1));
    uint64_t entered = nsyscalls() - before;
    cr_assert_geq(entered, 4, "the sends went in slices of 3 before the wait (%llu)",
                  (unsigned long long)entered);
    for (int i = 0; i < PACED_PAIRS - 1; i++) {
        cr_assert_eq(weft_read(p[i][0], &c, 1, weft_deadline_in(10 * WEFT_SEC)), 1);
        cr_assert_eq(c, (char)('k' + i), "pair %d", i);
    }
    close_each(p);
    return NULL;
}

Test(uring, a_wait_with_sends_past_the_next_deadline_submits_only_what_fits)
{
    run_paced(paced_wait_main);
}

/* A pair whose end [1] the ring follows (its small writes are sent behind) and whose end [0]
 * weft never touches: raw recv(2) on it sees what was sent, without a weft call that would
 * enter the ring or park. */
static void raw_pairs(int p[PACED_PAIRS][2])
{
    for (int i = 0; i < PACED_PAIRS; i++) {
        pair(p[i]);
        char c;
        cr_assert_eq(write(p[i][0], "!", 1), 1);
        cr_assert_eq(weft_read(p[i][1], &c, 1, WEFT_FOREVER), 1);
    }
}

/* How many of the pairs' bytes have arrived so far (each taken once, into got). */
static int raw_arrived(int p[PACED_PAIRS][2], char got[PACED_PAIRS])
{
    int n = 0;
    for (int i = 0; i < PACED_PAIRS; i++) {
        if (!got[i] && recv(p[i][0], &got[i], 1, MSG_DONTWAIT) != 1)
            got[i] = 0;
        n += got[i] != 0;
    }
    return n;
}

/* Yields until `want` of the pairs' bytes have arrived, or 2 s have passed (a bound only a
 * send left in the SQ for good reaches); returns how many have. */
static int wait_arrived(int p[PACED_PAIRS][2], char got[PACED_PAIRS], int want)
{
    int64_t until = weft__clock_ns() + 2 * WEFT_SEC;
    while (raw_arrived(p, got) < want && weft__clock_ns() < until)
        weft_yield();
    return raw_arrived(p, got);
}

/* Closes raw_pairs' pairs. */
static void close_raw(int p[PACED_PAIRS][2])
{
    for (int i = 0; i < PACED_PAIRS; i++) {
        cr_assert_eq(weft_close(p[i][1]), 0);
        close(p[i][0]);
    }
}

static void *idle_reader(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, WEFT_FOREVER);
}

/* Raw pairs with byte 'a' + i written behind to pair i and left in the SQ (no timer armed),
 * then a reader that waits on e[0] (so that the next tick polls) and a sleeper whose timer is
 * 6 SQEs' time away, spawned: they run at this task's next switch. */
static void sends_then_a_near_timer(int p[PACED_PAIRS][2], int e[2], weft_task **r, weft_task **s)
{
    raw_pairs(p);
    pair(e);
    for (int i = 0; i < PACED_PAIRS; i++) {
        char c = (char)('a' + i);
        cr_assert_eq(weft_write(p[i][1], &c, 1, WEFT_FOREVER), 1);
    }
    cr_assert_eq(weft_spawn(r, idle_reader, (void *)(intptr_t)e[0], NULL), 0);
    cr_assert_eq(weft_spawn(s, sleep_for, (void *)(intptr_t)PACE_TIMER, NULL), 0);
}

/* Sends written behind with no timer armed, then a tick's poll (a reader waits) while a timer
 * 6 SQEs' time away is armed: the poll hands the kernel only 3 of the 16. The reader and the
 * timer then go, and the task left computes, yielding, with nobody waiting for I/O: the loop
 * never polls (loop.c), yet the 13 sends held back must still reach the kernel, as they
 * did when every poll submitted the whole SQ. */
static void *held_then_busy_main(void *arg)
{
    (void)arg;
    if (!multishot())
        return NULL;
    int p[PACED_PAIRS][2], e[2];
    weft_task *r, *s;
    sends_then_a_near_timer(p, e, &r, &s);
    const weft__sys *sys = weft__sys_current();
    uint64_t before = sys->ncalls[WEFT__SYS_io_uring_enter];
    for (int k = 0; k < 1000 && sys->ncalls[WEFT__SYS_io_uring_enter] == before; k++)
        weft_yield(); /* they park; a tick's poll for the reader comes */
    cr_assert_eq(sys->ncalls[WEFT__SYS_io_uring_enter], before + 1, "one poll, which paced them");
    weft_cancel(r);
    weft_cancel(s);
    char got[PACED_PAIRS] = {0};
    cr_assert_eq(wait_arrived(p, got, PACED_PAIRS), PACED_PAIRS,
                 "every send held back reaches the kernel");
    for (int i = 0; i < PACED_PAIRS; i++)
        cr_assert_eq(got[i], (char)('a' + i), "pair %d", i);
    cr_assert_eq(weft_join(r, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(s, NULL, WEFT_FOREVER), 0);
    close_raw(p);
    cr_assert_eq(weft_close(e[0]), 0);
    close(e[1]);
    return NULL;
}

/* Sends written behind, then the task computes, yielding, with nobody waiting for I/O and
 * no timer armed: no tick would poll for a waiter, yet the sends must reach the kernel (they
 * stayed in the SQ for as long as the task computed before the SQ said it holds some). */
static void *written_then_busy_main(void *arg)
{
    (void)arg;
    if (!multishot())
        return NULL;
    int p[PACED_PAIRS][2];
    raw_pairs(p);
    for (int i = 0; i < PACED_PAIRS; i++) {
        char c = (char)('A' + i);
        cr_assert_eq(weft_write(p[i][1], &c, 1, WEFT_FOREVER), 1);
    }
    char got[PACED_PAIRS] = {0};
    cr_assert_eq(wait_arrived(p, got, PACED_PAIRS), PACED_PAIRS,
                 "every send written behind goes out");
    for (int i = 0; i < PACED_PAIRS; i++)
        cr_assert_eq(got[i], (char)('A' + i), "pair %d", i);
    close_raw(p);
    return NULL;
}

Test(uring, sends_written_behind_go_while_the_writer_computes_with_no_waiter)
{
    run_uring(written_then_busy_main, NULL);
}

Test(uring, sends_a_paced_poll_held_back_go_while_a_task_computes_with_no_waiter)
{
    run_paced(held_then_busy_main);
}

/* A paced enter that fails (a fault planned for io_uring_enter) fails the SQEs it would have
 * submitted, the first 2 sends (the timer a hair under 6 SQEs' time away: 2 fit in half of
 * it), and no others: the 14 it would have left in the SQ go at the next polls and arrive, as
 * after a real enter's failure, which submits nothing. Each of the 2 writes' error goes to its
 * fd's next write. */
static void *paced_fault_main(void *arg)
{
    (void)arg;
    if (!multishot())
        return NULL;
    int p[PACED_PAIRS][2], e[2];
    weft_task *r, *s;
    sends_then_a_near_timer(p, e, &r, &s);
    cr_assert_eq(weft__sys_fail(weft__sys_current(), WEFT__SYS_io_uring_enter, 1, ENOMEM), 0);
    char got[PACED_PAIRS] = {0};
    int n = wait_arrived(p, got, PACED_PAIRS - 2);
    cr_assert_eq(n, PACED_PAIRS - 2, "only the enter's 2 sends failed (%d arrived: %.16s)", n, got);
    for (int i = 0; i < PACED_PAIRS; i++)
        cr_assert_eq(got[i], i < 2 ? 0 : (char)('a' + i), "pair %d", i);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_write(p[i][1], "x", 1, WEFT_FOREVER), -ENOMEM, "pair %d", i);
    weft_cancel(r);
    weft_cancel(s);
    cr_assert_eq(weft_join(r, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(s, NULL, WEFT_FOREVER), 0);
    close_raw(p);
    cr_assert_eq(weft_close(e[0]), 0);
    close(e[1]);
    return NULL;
}

Test(uring, a_paced_enter_that_fails_fails_only_what_it_would_have_submitted)
{
    run_paced(paced_fault_main);
}
