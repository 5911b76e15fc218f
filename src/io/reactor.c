/* The backend-independent half of the reactor: the per-fd table of readiness and waiters,
 * weft_fd_wait/forget/close, and the worker's calls into the backend. Readiness is kept as
 * edges not yet consumed (a wait returns at once if one arrived since the last wait), which
 * is what makes edge-triggered registration lose no wake-up. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

/* Which backend: the configuration, else WEFT_BACKEND, else epoll (the conservative
 * default libuv, Tokio and Go make). io_uring falls back to epoll, with one line on stderr,
 * when the kernel (or a seccomp policy) refuses it or lacks an operation weft needs. */
static const weft__io_ops *choose(int want, int *fell_back_from)
{
    if (want == WEFT_BACKEND_DEFAULT) {
        const char *env = getenv("WEFT_BACKEND");
        want = env && strcmp(env, "io_uring") == 0 ? WEFT_BACKEND_IO_URING : WEFT_BACKEND_EPOLL;
    }
    *fell_back_from = 0;
    if (want == WEFT_BACKEND_IO_URING) {
#ifdef WEFT_HAVE_URING
        return &weft__io_uring;
#else
        *fell_back_from = -ENOSYS;
#endif
    }
    return &weft__io_epoll;
}

static void io_ready(weft__io *io, int fd, unsigned mask);

/* The worker's doorbell: makes a blocking poll return. */
static void ring_doorbell(void *arg)
{
    weft__io *io = arg;
    io->ops->notify(io);
}

int weft__io_init(weft__worker *w, int backend)
{
    weft__io *io = weft__calloc(w, 1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->w = w;
    io->ready = io_ready;
    int unbuilt;
    io->ops = choose(backend, &unbuilt);
    int r = io->ops->init(io);
    if (r < 0 && io->ops != &weft__io_epoll) {
        fprintf(stderr, "weft: io_uring unavailable (%s): using epoll\n", weft_strerror(r));
        io->ops = &weft__io_epoll;
        r = io->ops->init(io);
    } else if (unbuilt) {
        fprintf(stderr, "weft: built without io_uring (liburing): using epoll\n");
    }
    if (r < 0) {
        weft__free(w, io);
        return r;
    }
    w->io = io;
    w->doorbell = (weft__doorbell){ring_doorbell, io};
    return 0;
}

const char *weft_backend(void)
{
    weft__worker *w = weft__worker_current();
    return w && w->io ? w->io->ops->name : NULL;
}

void weft__io_fini(weft__worker *w)
{
    weft__io *io = w->io;
    if (!io)
        return;
    w->doorbell = (weft__doorbell){NULL, NULL};
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

size_t weft__io_nwaiters(weft__worker *w)
{
    return w->io->nwaiters;
}

static void io_ready(weft__io *io, int fd, unsigned mask)
{
    if (fd < 0 || (size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    rec->ready |= (uint8_t)(mask & (WEFT_READABLE | WEFT_WRITABLE));
    if (mask & WEFT_READABLE)
        rec->drained = 0;
    if (mask & WEFT__HUP)
        rec->hup = 1; /* end of stream: reads return at once from now on */
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
    if (((events & WEFT_READABLE) && rec->rd.task && rec->rd.task != t) ||
        ((events & WEFT_WRITABLE) && rec->wr.task && rec->wr.task != t))
        return -EBUSY;
    if (io->ops->submit) {
        /* A poll operation; the slots only record who waits, for the -EBUSY rule. */
        weft_waker me = {t, 0};
        if (events & WEFT_READABLE)
            rec->rd = me;
        if (events & WEFT_WRITABLE)
            rec->wr = me;
        weft__ioreq q = {.op = WEFT__IO_POLL, .fd = fd, .flags = events};
        int m = (int)io->ops->submit(io, &q, deadline);
        rec = &io->fds[fd]; /* the table may have moved while we were parked */
        if (rec->rd.task == t)
            rec->rd = (weft_waker){NULL, 0};
        if (rec->wr.task == t)
            rec->wr = (weft_waker){NULL, 0};
        return m;
    }
    if (!rec->watched) {
        r = io->ops->watch(io, fd);
        if (r < 0)
            return r;
        rec->watched = 1;
    }
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
        weft__wait wr = {.kind = WEFT__WAIT_FD, .what = (const void *)(intptr_t)fd,
                         .deadline = deadline};
        r = weft__park(w, &wr);
        w = t->worker;
        io = w->io;
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

/* Forgets everything known about an fd number: a new generation, so waiters notice. */
static void reset_rec(weft__fdrec *rec)
{
    rec->watched = 0;
    rec->ready = 0;
    rec->drained = 0;
    rec->hup = 0;
    rec->gen++;
    weft_waker_wake(rec->rd);
    weft_waker_wake(rec->wr);
}

void weft__io_fd_fresh(weft__worker *w, int fd)
{
    weft__io *io = w->io;
    if ((size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    if (rec->watched || rec->ready || rec->drained || rec->hup || rec->rd.task || rec->wr.task)
        reset_rec(rec);
}

/* Drained reads (epoll). A read that returned less than it asked for emptied the socket's
 * receive queue at that moment; with edge-triggered epoll, any byte that arrives later brings
 * a new readable edge. So until such an edge comes, the next read can skip the system call
 * that would only say EAGAIN and wait first (Tokio's reasoning too): one syscall fewer per
 * message on a request/response connection. */
int weft__io_read_drained(weft__worker *w, int fd)
{
    weft__io *io = w->io;
    if (fd < 0 || (size_t)fd >= io->nfds)
        return 0;
    weft__fdrec *rec = &io->fds[fd];
    /* After a hang-up no edge will come again, so never wait then: read() reports it. */
    return rec->drained && rec->watched && !rec->hup && !(rec->ready & WEFT_READABLE);
}

void weft__io_mark_drained(weft__worker *w, int fd)
{
    weft__io *io = w->io;
    if (fd >= 0 && (size_t)fd < io->nfds && io->fds[fd].watched)
        io->fds[fd].drained = 1;
}

int weft_fd_forget(int fd)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__io *io = w->io;
    if (fd < 0)
        return 0;
    weft__fdrec *rec;
    if (fdrec_get(io, fd, &rec) < 0)
        return -ENOMEM;
    if (rec->watched)
        io->ops->unwatch(io, fd);
    if (io->ops->cancel_fd)
        io->ops->cancel_fd(io, fd);
    reset_rec(rec);
    return 0;
}

int weft_fd_close(int fd)
{
    int r = weft_fd_forget(fd);
    if (r < 0)
        return r;
    return close(fd) == 0 ? 0 : -errno;
}
