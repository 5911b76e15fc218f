/* The practical limit for tcp_echo: an edge-triggered epoll echo server on one thread with
 * no runtime (accept4 non-blocking, TCP_NODELAY; reads until EAGAIN or a short read and
 * writes back, keeping what a short write left and waiting for EPOLLOUT).
 * Usage: epoll_raw PORT (127.0.0.1). Runs until killed. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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

static conn *conns;
static int nconns_max;
static int ep;
static char buf[BUF];

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

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
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

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!conns || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("epoll_raw: listen");
        return 1;
    }
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
}
