/* The soak load: C connections to an echo server on 127.0.0.1 for S seconds, every byte
 * checked. Each connection streams a pattern that depends on its number and the byte's offset,
 * in writes of varying size (1 to 1024 bytes) with at most 8 KiB in flight, and checks that
 * the echo is that pattern, byte for byte. Each interval it prints one line: the server's
 * RSS and open fds (from /proc), bytes echoed, connections alive and errors. At the end it
 * stops sending, waits up to 10 s for what is in flight, and prints the totals; bytes lost
 * are those sent and never echoed. Exit status 0 only with no error and nothing lost.
 * Plain C on level-triggered epoll, one thread.
 *
 *   soak_load --port P --conns C --seconds S --server-pid PID [--interval S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WINDOW     8192 /* bytes in flight per connection, at most */
#define MAX_WRITE  1024 /* the largest single write */
#define MAX_EVENTS 1024
#define DRAIN_NS   10000000000LL /* at the end: how long to wait for what is in flight */

typedef struct conn {
    int fd;
    int dead;       /* closed after an error: no longer counted as alive */
    uint64_t sent;  /* bytes written */
    uint64_t recvd; /* bytes echoed and checked */
    uint32_t rng;   /* drives the write sizes */
    int want_out;   /* EPOLLOUT registered */
} conn;

static conn *conns;
static int nconns, ep;
static uint64_t nerrors, nmismatch;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The pattern: byte `off` of connection `c`. Not periodic in any small window, so a byte
 * lost, duplicated or swapped between connections shows. */
static inline uint8_t pattern(uint32_t c, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)c << 32);
    return (uint8_t)(x >> 56 ^ x >> 23);
}

static void fail_conn(conn *k, const char *why)
{
    if (k->dead)
        return;
    nerrors++;
    if (nerrors <= 10)
        fprintf(stderr, "soak_load: connection %d: %s\n", (int)(k - conns), why);
    epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
    close(k->fd);
    k->dead = 1;
}

static void set_out(conn *k, int on)
{
    if (k->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = k};
    epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &ev);
    k->want_out = on;
}

static void do_write(conn *k, int sending)
{
    uint8_t buf[MAX_WRITE];
    while (sending && !k->dead && k->sent - k->recvd < WINDOW) {
        k->rng = k->rng * 1103515245u + 12345u;
        size_t n = 1 + (k->rng >> 16) % MAX_WRITE;
        if (n > WINDOW - (k->sent - k->recvd))
            n = WINDOW - (k->sent - k->recvd);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern((uint32_t)(k - conns), k->sent + i);
        ssize_t w = write(k->fd, buf, n);
        if (w < 0) {
            if (errno == EAGAIN) {
                set_out(k, 1);
                return;
            }
            fail_conn(k, strerror(errno));
            return;
        }
        /* A partial write: the rest is rewritten from the pattern next time. */
        k->sent += (uint64_t)w;
    }
    set_out(k, 0);
}

static void do_read(conn *k)
{
    uint8_t buf[WINDOW];
    for (;;) {
        ssize_t n = read(k->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno != EAGAIN)
                fail_conn(k, strerror(errno));
            return;
        }
        if (n == 0) {
            fail_conn(k, "closed by the server");
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern((uint32_t)(k - conns), k->recvd + (uint64_t)i)) {
                nmismatch++;
                fail_conn(k, "echo differs from what was sent");
                return;
            }
        }
        k->recvd += (uint64_t)n;
        if (k->recvd > k->sent) {
            fail_conn(k, "echoed more than was sent");
            return;
        }
    }
}

/* The server's resident set (kB) and open fds, or -1. */
static long server_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static long server_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void totals(uint64_t *sent, uint64_t *recvd, int *alive)
{
    *sent = *recvd = 0;
    *alive = 0;
    for (int i = 0; i < nconns; i++) {
        *sent += conns[i].sent;
        *recvd += conns[i].recvd;
        *alive += !conns[i].dead;
    }
}

static void poll_once(int timeout_ms, int sending)
{
    static struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn *k = evs[i].data.ptr;
        if (k->dead)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            do_read(k);
        if (!k->dead && (evs[i].events & EPOLLOUT))
            do_write(k, sending);
        else if (!k->dead && sending)
            do_write(k, sending); /* room in the window may have opened */
    }
}

int main(int argc, char **argv)
{
    int port = 0, seconds = 60, pid = 0, interval = 60;
    nconns = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns"))
            nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--server-pid"))
            pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval"))
            interval = atoi(argv[i + 1]);
    }
    if (port <= 0 || nconns <= 0 || seconds <= 0 || interval <= 0) {
        fprintf(stderr,
                "usage: %s --port P --conns C --seconds S --server-pid PID "
                "[--interval S]\n",
                argv[0]);
        return 2;
    }
    conns = calloc((size_t)nconns, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < nconns; i++) {
        conn *k = &conns[i];
        k->rng = (uint32_t)i * 2654435761u + 1;
        k->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Blocking connect, then non-blocking: the backlog takes them on loopback. */
        int tries = 0;
        while (connect(k->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            if (++tries > 50 || (errno != ECONNREFUSED && errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "soak_load: connect %d: %s\n", i, strerror(errno));
                return 1;
            }
            usleep(100000);
            close(k->fd);
            k->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        }
        fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
        epoll_ctl(ep, EPOLL_CTL_ADD, k->fd, &ev);
    }
    printf("soak: %d connections to 127.0.0.1:%d for %d s; server pid %d\n", nconns, port, seconds,
           pid);
    printf("soak: t_s rss_kb fds alive mb_echoed errors\n");
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        do_write(&conns[i], 1);
    int64_t start = now_ns(), next = start + (int64_t)interval * 1000000000;
    int64_t end = start + (int64_t)seconds * 1000000000;
    uint64_t sent, recvd;
    int alive;
    for (;;) {
        int64_t t = now_ns();
        if (t >= next || t >= end) {
            totals(&sent, &recvd, &alive);
            printf("soak: %3lld %ld %ld %d %.1f %llu\n", (long long)((t - start) / 1000000000),
                   server_rss_kb(pid), server_fds(pid), alive, recvd / 1e6,
                   (unsigned long long)nerrors);
            fflush(stdout);
            next += (int64_t)interval * 1000000000;
            if (t >= end)
                break;
        }
        poll_once(100, 1);
    }
    /* Stop sending; take in what is still in flight. */
    int64_t drain_end = now_ns() + DRAIN_NS;
    for (;;) {
        totals(&sent, &recvd, &alive);
        uint64_t pending = 0;
        for (int i = 0; i < nconns; i++)
            if (!conns[i].dead)
                pending += conns[i].sent - conns[i].recvd;
        if (pending == 0 || now_ns() >= drain_end)
            break;
        poll_once(100, 0);
    }
    totals(&sent, &recvd, &alive);
    uint64_t lost = sent - recvd;
    printf("soak: done: %d connections alive of %d, %.1f MB sent, %.1f MB echoed and checked, "
           "bytes lost %llu, mismatches %llu, errors %llu; server rss %ld kB, fds %ld\n",
           alive, nconns, sent / 1e6, recvd / 1e6, (unsigned long long)lost,
           (unsigned long long)nmismatch, (unsigned long long)nerrors, server_rss_kb(pid),
           server_fds(pid));
    for (int i = 0; i < nconns; i++)
        if (!conns[i].dead)
            close(conns[i].fd);
    return nerrors == 0 && lost == 0 ? 0 : 1;
}
