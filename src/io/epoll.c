/* The epoll backend: one epoll instance per worker, fds registered once edge-triggered for
 * both directions (Go's netpoller model), and an eventfd that other threads write to wake a
 * blocked worker. Waits with nanosecond timeouts through epoll_pwait2 where the kernel has
 * it, else epoll_wait with the timeout rounded up to whole milliseconds (never early). */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "../hooks.h"

#define MAX_EVENTS 256 /* events taken per wait: enough to drain a busy tick in one call */

typedef struct epoll_state {
    int epfd;
    int evfd;
    int have_pwait2; /* 1 until the kernel says ENOSYS */
    struct epoll_event events[MAX_EVENTS];
} epoll_state;

static int ep_init(weft__io *io)
{
    epoll_state *s = weft__malloc(io->w, sizeof *s);
    if (!s)
        return -ENOMEM;
    /* Valgrind does not know epoll_pwait2 (it warns on every call): epoll_wait there. */
    s->have_pwait2 = !weft__hook_on_valgrind();
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = errno;
        weft__free(io->w, s);
        return -e;
    }
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->evfd};
    if (s->evfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev) < 0) {
        int e = errno;
        if (s->evfd >= 0)
            close(s->evfd);
        close(s->epfd);
        weft__free(io->w, s);
        return -e;
    }
    io->backend = s;
    return 0;
}

static void ep_fini(weft__io *io)
{
    epoll_state *s = io->backend;
    if (!s)
        return;
    close(s->evfd);
    close(s->epfd);
    weft__free(io->w, s);
    io->backend = NULL;
}

static int ep_watch(weft__io *io, int fd)
{
    epoll_state *s = io->backend;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno == EEXIST && epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    return -errno;
}

static void ep_unwatch(weft__io *io, int fd)
{
    epoll_state *s = io->backend;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT/EBADF: already gone, fine */
}

static int ep_wait(epoll_state *s, int64_t timeout_ns)
{
    if (s->have_pwait2) {
        struct timespec ts, *tp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / WEFT_SEC;
            ts.tv_nsec = timeout_ns % WEFT_SEC;
            tp = &ts;
        }
#ifdef SYS_epoll_pwait2
        long n = syscall(SYS_epoll_pwait2, s->epfd, s->events, MAX_EVENTS, tp, NULL, 0);
        if (n >= 0 || errno != ENOSYS)
            return n >= 0 ? (int)n : -errno;
#endif
        s->have_pwait2 = 0;
    }
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t m = (timeout_ns + WEFT_MSEC - 1) / WEFT_MSEC;
        ms = m > INT32_MAX ? INT32_MAX : (int)m;
    }
    int n = epoll_wait(s->epfd, s->events, MAX_EVENTS, ms);
    return n >= 0 ? n : -errno;
}

static int ep_poll(weft__io *io, int64_t timeout_ns)
{
    epoll_state *s = io->backend;
    int n = ep_wait(s, timeout_ns);
    if (n < 0)
        return n == -EINTR ? 0 : n;
    for (int i = 0; i < n; i++) {
        struct epoll_event *ev = &s->events[i];
        if (ev->data.fd == s->evfd) {
            uint64_t v;
            while (read(s->evfd, &v, sizeof v) > 0)
                ;
            continue;
        }
        unsigned mask = 0;
        if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            mask |= WEFT_READABLE;
        if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            mask |= WEFT_WRITABLE;
        if (ev->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            mask |= WEFT__HUP;
        io->ready(io, ev->data.fd, mask);
    }
    return n;
}

static void ep_notify(weft__io *io)
{
    epoll_state *s = io->backend;
    uint64_t one = 1;
    ssize_t r = write(s->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is already non-zero, the worker will wake anyway */
}

const weft__io_ops weft__io_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .poll = ep_poll,
    .notify = ep_notify,
};
