/* The poller's internal contract (weft_poller, include/weft.h): the object every backend
 * shares, and the ops table each backend exports (poller/epoll.c, poller/uring.c), in the
 * shape of io/backend.h. The poller stands apart from the runtime: it has no worker, so its
 * system calls pass a NULL sys record (neither counted nor fault-injected) and its memory
 * goes through the allocation seam with a NULL worker. */
#ifndef WEFT_POLLER_POLLER_H
#define WEFT_POLLER_POLLER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "weft.h"

/* Every interest bit weft_poller_register accepts. */
#define WEFT__POLL_INTEREST (WEFT_READABLE | WEFT_WRITABLE | WEFT_POLL_EDGE | WEFT_POLL_ONESHOT)

typedef struct weft__poller_ops {
    const char *name;
    /* Sets up p->backend and starts watching p->wakefd. Returns 0 or -errno. */
    int (*init)(weft_poller *p);
    void (*fini)(weft_poller *p);
    /* EPOLL_CTL_ADD, _MOD or _DEL of a checked (fd, token, interest). Returns 0 or -errno
     * (-EEXIST, -ENOENT, -EBADF, -EPERM, -ENOMEM). Any thread, any number at once. */
    int (*ctl)(weft_poller *p, int op, int fd, uint64_t token, unsigned interest);
    /* Waits up to timeout_ns (-1: forever, 0: not at all) and fills evs[0 .. max). Returns
     * the count or -errno. The thread holding p->waiting only. */
    int (*wait)(weft_poller *p, weft_poll_event *evs, int max, int64_t timeout_ns);
} weft__poller_ops;

struct weft_poller {
    const weft__poller_ops *ops;
    void *backend; /* the backend's private state */
    /* The waker: an eventfd any thread writes (weft_poller_wake), watched by the backend
     * under WEFT_POLL_WAKE_TOKEN; the waiting thread drains it when it reports it. Fixed
     * after create. */
    int wakefd;
    /* 1 while a thread is inside weft_poller_wait. any thread: exchanged (acquire) on
     * entry, so a second concurrent wait sees 1 and gets -EBUSY; stored 0 (release) on the
     * way out, ordering that wait's touches of the backend's waiter-only state before the
     * next waiter's. */
    atomic_int waiting;
    /* 1 when WEFT_POLL_EDGE reports only new readiness; 0 where it falls back to level
     * reports (io_uring without multishot polls). Set by the backend's init; for tests. */
    int exact_edge;
};

/* The event bits of an epoll/poll revents word (EPOLLIN == POLLIN and so on, on Linux):
 * the direction bits as the kernel gave them, and the closed/error bits derived the way the
 * header documents them. */
static inline uint32_t weft__poller_bits(uint32_t revents)
{
    uint32_t bits = 0;
    if (revents & EPOLLIN)
        bits |= WEFT_READABLE;
    if (revents & EPOLLOUT)
        bits |= WEFT_WRITABLE;
    if (revents & EPOLLERR)
        bits |= WEFT_POLL_ERROR;
    if (revents & EPOLLHUP)
        bits |= WEFT_POLL_HUP | WEFT_POLL_READ_CLOSED | WEFT_POLL_WRITE_CLOSED;
    if (revents & EPOLLRDHUP)
        bits |= WEFT_POLL_READ_CLOSED;
    /* An error alone, or with writability, means writes fail from now on (a pipe whose
     * reader went away; a connection reset). An error that comes with readability only (a
     * datagram socket's ICMP report) leaves the socket usable. */
    if ((revents & EPOLLERR) && (revents & (EPOLLOUT | EPOLLIN)) != EPOLLIN)
        bits |= WEFT_POLL_WRITE_CLOSED;
    return bits;
}

/* The epoll mask for an interest: EPOLLRDHUP with reads, so a peer's shutdown is told. */
static inline uint32_t weft__poller_epoll_mask(unsigned interest)
{
    /* EPOLLRDHUP whatever the interest: weft.h promises the closed bits (READ_CLOSED too) to
     * a registration for writing only, and epoll reports only what it was asked for. */
    uint32_t m = EPOLLRDHUP;
    if (interest & WEFT_READABLE)
        m |= EPOLLIN;
    if (interest & WEFT_WRITABLE)
        m |= EPOLLOUT;
    return m;
}

extern const weft__poller_ops weft__poller_epoll;
#ifdef WEFT_HAVE_URING
extern const weft__poller_ops weft__poller_uring;
#endif

#endif
