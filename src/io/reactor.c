/* The backend-independent half of the reactor: the per-fd table of readiness and waiters,
 * weft_fd_wait/forget/close, and the worker's calls into the backend. Readiness is kept as
 * edges not yet consumed (a wait returns at once if one arrived since the last wait), which
 * is what makes edge-triggered registration lose no wake-up. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

int weft__io_init(weft__worker *w)
{
    weft__io *io = weft__calloc(w, 1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->w = w;
    io->ops = &weft__io_epoll;
    int r = io->ops->init(io);
    if (r < 0) {
        weft__free(w, io);
        return r;
    }
    w->io = io;
    return 0;
}

void weft__io_fini(weft__worker *w)
{
    weft__io *io = w->io;
    if (!io)
        return;
    io->ops->fini(io);
    weft__free(w, io->fds);
    weft__free(w, io);
    w->io = NULL;
}

int weft__io_poll(weft__worker *w, int64_t timeout_ns)
{
    w->stats.npolls++;
    return w->io->ops->poll(w->io, timeout_ns);
}

void weft__io_notify(weft__worker *w)
{
    w->io->ops->notify(w->io);
}

size_t weft__io_nwaiters(weft__worker *w)
{
    return w->io->nwaiters;
}

void weft__io_ready(weft__io *io, int fd, unsigned mask)
{
    if (fd < 0 || (size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    rec->ready |= (uint8_t)mask;
    if ((mask & WEFT_READABLE) && rec->rd.task)
        weft_waker_wake(rec->rd);
    if ((mask & WEFT_WRITABLE) && rec->wr.task)
        weft_waker_wake(rec->wr);
}

static int fdrec_get(weft__io *io, int fd, weft__fdrec **out)
{
    if ((size_t)fd >= io->nfds) {
        size_t n = io->nfds ? io->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        weft__fdrec *fds = weft__realloc(io->w, io->fds, n * sizeof *fds);
        if (!fds)
            return -ENOMEM;
        memset(fds + io->nfds, 0, (n - io->nfds) * sizeof *fds);
        io->fds = fds;
        io->nfds = n;
    }
    *out = &io->fds[fd];
    return 0;
}

int weft_fd_wait(int fd, int events, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = weft__blocking_task(w);
    if (!t)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    if (events == 0 || (events & ~(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    weft__io *io = w->io;
    weft__fdrec *rec;
    int r = fdrec_get(io, fd, &rec);
    if (r < 0)
        return r;
    if (!rec->watched) {
        r = io->ops->watch(io, fd);
        if (r < 0)
            return r;
        rec->watched = 1;
    }
    if (((events & WEFT_READABLE) && rec->rd.task && rec->rd.task != t) ||
        ((events & WEFT_WRITABLE) && rec->wr.task && rec->wr.task != t))
        return -EBUSY;
    uint32_t gen = rec->gen;
    for (;;) {
        unsigned m = rec->ready & (unsigned)events;
        if (m) {
            rec->ready &= (uint8_t)~m;
            return (int)m;
        }
        weft_waker wk = weft__waker_of(t);
        if (events & WEFT_READABLE)
            rec->rd = wk;
        if (events & WEFT_WRITABLE)
            rec->wr = wk;
        io->nwaiters++;
        r = weft__park_until(w, deadline);
        io->nwaiters--;
        rec = &io->fds[fd]; /* the table may have moved while we were parked */
        if (rec->rd.task == t)
            rec->rd = (weft_waker){NULL, 0};
        if (rec->wr.task == t)
            rec->wr = (weft_waker){NULL, 0};
        if (rec->gen != gen)
            return -EBADF;
        if (r < 0) {
            m = rec->ready & (unsigned)events;
            if (!m)
                return r;
            rec->ready &= (uint8_t)~m;
            return (int)m;
        }
    }
}

void weft__io_fd_fresh(weft__worker *w, int fd)
{
    weft__io *io = w->io;
    if ((size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    if (rec->watched || rec->ready || rec->rd.task || rec->wr.task) {
        rec->watched = 0;
        rec->ready = 0;
        rec->gen++;
        weft_waker_wake(rec->rd);
        weft_waker_wake(rec->wr);
    }
}

int weft_fd_forget(int fd)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__io *io = w->io;
    if (fd < 0 || (size_t)fd >= io->nfds)
        return 0;
    weft__fdrec *rec = &io->fds[fd];
    if (rec->watched)
        io->ops->unwatch(io, fd);
    rec->watched = 0;
    rec->ready = 0;
    rec->gen++;
    weft_waker_wake(rec->rd);
    weft_waker_wake(rec->wr);
    return 0;
}

int weft_fd_close(int fd)
{
    int r = weft_fd_forget(fd);
    if (r < 0)
        return r;
    return close(fd) == 0 ? 0 : -errno;
}
