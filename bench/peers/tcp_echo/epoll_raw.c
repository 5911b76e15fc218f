/* The practical limit for tcp_echo: an edge-triggered epoll echo server on one thread with
 * no runtime (accept4 non-blocking, TCP_NODELAY; reads until EAGAIN or a short read and
 * writes back, keeping what a short write left and waiting for EPOLLOUT).
 * Usage: epoll_raw PORT [THREADS] (127.0.0.1). Runs until killed.
 * With THREADS (tcp_echo_mt, bench/run_mt.sh: impl "epoll_raw_shards") it runs THREADS such
 * loops, each on its own thread with its own epoll and its own SO_REUSEPORT listener, so the
 * kernel spreads the connections and no state is shared: the reference for weft's shards.
 * A descriptor belongs to the thread that accepted it, so the fd-indexed table needs no lock. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

/* Per-descriptor state, indexed by fd: output a short write left behind. */
typedef struct conn {
    char *pend;     /* malloc'd, NULL when nothing is pending */
    size_t off, len;
    int out_armed;  /* EPOLLOUT is in the registered mask */
} conn;

static conn *conns;       /* entry fd: touched only by the thread that accepted fd */
static int nconns_max;
static _Thread_local int ep; /* each thread's own epoll */
static _Thread_local char buf[BUF];

static void drop(int fd)
{
    free(conns[fd].pend);
    memset(&conns[fd], 0, sizeof conns[fd]);
    close(fd); /* also removes it from the epoll set */
}

static void arm(int fd, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | (out ? EPOLLOUT : 0),
                             .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    conns[fd].out_armed = out;
}

/* Writes p[0..n) fully, or keeps the rest in c->pend. Returns -1 if the connection died. */
static int send_all(int fd, const char *p, size_t n)
{
    conn *c = &conns[fd];
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            char *q = realloc(c->pend, c->len + n);
            if (!q)
                return -1;
            memcpy(q + c->len, p, n);
            c->pend = q;
            c->len += n;
            if (!c->out_armed)
                arm(fd, 1);
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Flushes pending output. Returns 1 if all of it is gone, 0 if some is left, -1 on error. */
static int flush(int fd)
{
    conn *c = &conns[fd];
    while (c->off < c->len) {
        ssize_t w = write(fd, c->pend + c->off, c->len - c->off);
        if (w > 0)
            c->off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0 && errno == EAGAIN)
            return 0;
        else
            return -1;
    }
    free(c->pend);
    c->pend = NULL;
    c->off = c->len = 0;
    arm(fd, 0);
    return 1;
}

static void on_ready(int fd)
{
    if (conns[fd].pend) {
        int f = flush(fd);
        if (f < 0)
            return drop(fd);
        if (f == 0)
            return; /* the peer is not reading: stop reading it too until EPOLLOUT */
    }
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            if (send_all(fd, buf, (size_t)r) < 0)
                return drop(fd);
            if (conns[fd].pend)
                return; /* wait for EPOLLOUT, which also resumes reading */
            if (r < (ssize_t)sizeof buf)
                return; /* a short read emptied the socket: the next byte raises a new edge */
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && errno == EAGAIN) {
            return;
        } else {
            return drop(fd); /* EOF or error */
        }
    }
}

/* Opens a non-blocking listener on 127.0.0.1:port; SO_REUSEPORT when several share it. */
static int listen_on(int port, int reuseport)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0)
        return -1;
    return lfd;
}

/* One event loop: accepts from lfd and serves what it accepted, until the process dies. */
static void *serve(void *arg)
{
    int lfd = (int)(intptr_t)arg, one = 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                on_ready(fd);
                continue;
            }
            for (;;) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno != EAGAIN)
                        perror("epoll_raw: accept4"); /* EMFILE: left in the queue */
                    break;
                }
                if (cfd >= nconns_max) {
                    close(cfd);
                    continue;
                }
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = cfd};
                epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int nthreads = argc > 2 ? atoi(argv[2]) : 0; /* 0: one loop, no SO_REUSEPORT */
    if (port <= 0 || port > 65535 || argc > 3 || (argc > 2 && (nthreads < 1 || nthreads > 1024))) {
        fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    nconns_max = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 20) ? 1 << 20
                                                                         : (int)rl.rlim_cur;
    conns = calloc((size_t)nconns_max, sizeof *conns);

    /* Every listener is bound before any loop runs, so the kernel spreads the first
     * connections over all of them. */
    int nl = nthreads ? nthreads : 1, lfd[1024];
    for (int i = 0; i < nl; i++) {
        lfd[i] = conns ? listen_on(port, nthreads > 0) : -1;
        if (lfd[i] < 0) {
            perror("epoll_raw: listen");
            return 1;
        }
    }
    for (int i = 1; i < nl; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)lfd[i]) != 0) {
            fprintf(stderr, "epoll_raw: pthread_create failed\n");
            return 1;
        }
    }
    serve((void *)(intptr_t)lfd[0]);
    return 0;
}
