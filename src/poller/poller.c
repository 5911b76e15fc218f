/* weft_poller: readiness without coroutines (mio's shape). This file checks every argument,
 * chooses the backend and owns the waker; the backends (epoll.c, uring.c) only translate.
 * Invariant: a call that fails changes nothing, so a mistake loses no registration. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "poller.h"
#include "../sys.h"
#include "../worker.h"

/* WEFT_BACKEND_DEFAULT is the WEFT_BACKEND environment variable, as for weft_run. */
static const weft__poller_ops *choose(int want)
{
    if (want == WEFT_BACKEND_DEFAULT) {
        const char *env = getenv("WEFT_BACKEND");
        want = env && strcmp(env, "io_uring") == 0 ? WEFT_BACKEND_IO_URING : WEFT_BACKEND_EPOLL;
    }
#ifdef WEFT_HAVE_URING
    if (want == WEFT_BACKEND_IO_URING)
        return &weft__poller_uring;
#endif
    return &weft__poller_epoll;
}

WEFT_COLD int weft_poller_create(weft_poller **out, unsigned flags)
{
    if (!out || flags > WEFT_BACKEND_IO_URING)
        return -EINVAL;
    weft_poller *p = weft__calloc(NULL, 1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->wakefd = weft__sys_eventfd(NULL, 0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wakefd < 0) {
        int e = p->wakefd;
        weft__free(NULL, p);
        return e;
    }
    p->ops = choose((int)flags);
    int r = p->ops->init(p);
    if (r < 0 && p->ops != &weft__poller_epoll) {
        /* io_uring refused (old kernel, seccomp, a missing feature): epoll does it all. */
        p->ops = &weft__poller_epoll;
        r = p->ops->init(p);
    }
    if (r < 0) {
        weft__sys_close(NULL, p->wakefd);
        weft__free(NULL, p);
        return r;
    }
    *out = p;
    return 0;
}

WEFT_COLD void weft_poller_destroy(weft_poller *p)
{
    if (!p)
        return;
    p->ops->fini(p);
    weft__sys_close(NULL, p->wakefd);
    weft__free(NULL, p);
}

const char *weft_poller_backend(const weft_poller *p)
{
    return p ? p->ops->name : NULL;
}

/* The checks every registration call shares. */
static int check(const weft_poller *p, int fd, uint64_t token, unsigned interest)
{
    if (!p)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (token == WEFT_POLL_WAKE_TOKEN || (interest & ~(unsigned)WEFT__POLL_INTEREST) ||
        !(interest & (WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    return 0;
}

int weft_poller_register(weft_poller *p, int fd, uint64_t token, unsigned interest)
{
    int r = check(p, fd, token, interest);
    return r < 0 ? r : p->ops->ctl(p, EPOLL_CTL_ADD, fd, token, interest);
}

int weft_poller_reregister(weft_poller *p, int fd, uint64_t token, unsigned interest)
{
    int r = check(p, fd, token, interest);
    return r < 0 ? r : p->ops->ctl(p, EPOLL_CTL_MOD, fd, token, interest);
}

int weft_poller_deregister(weft_poller *p, int fd)
{
    if (!p)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    return p->ops->ctl(p, EPOLL_CTL_DEL, fd, 0, 0);
}

int weft_poller_wait(weft_poller *p, weft_poll_event *events, int max, int64_t deadline)
{
    if (!p || !events || max <= 0)
        return -EINVAL;
    /* One waiter at a time: the backends' reaping state is the waiter's alone. */
    if (atomic_exchange_explicit(&p->waiting, 1, memory_order_acquire))
        return -EBUSY;
    int n;
    for (;;) {
        int64_t timeout_ns = -1;
        if (deadline != WEFT_FOREVER) {
            int64_t now = weft__clock_ns();
            timeout_ns = deadline > now ? deadline - now : 0;
        }
        n = p->ops->wait(p, events, max, timeout_ns);
        /* 0 events before the deadline: a backend woke for completions it dropped (a poll
         * removed or replaced meanwhile, io_uring); wait on, so that 0 means the deadline. */
        if (n != 0 || timeout_ns == 0)
            break;
    }
    atomic_store_explicit(&p->waiting, 0, memory_order_release);
    return n;
}

int weft_poller_wake(weft_poller *p)
{
    if (!p)
        return -EINVAL;
    uint64_t one = 1;
    /* Any thread, and async-signal-safe: one write(2). -EAGAIN means the counter is near
     * its limit, so a wake is pending already: success. */
    ssize_t r = weft__sys_write(NULL, p->wakefd, &one, sizeof one);
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}
