/* The top of the I/O layer: the choice of backend, the worker's calls into it, the single
 * entry point net.c and fs.c run every operation through (weft__io_submit), and
 * weft_fd_wait/forget/close. Everything below is reached through the backend's ops table or
 * the fd table (see backend.h for the layering). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "../log.h"

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

/* The worker's doorbell: makes a blocking poll return. Any thread. */
static void ring_doorbell(void *arg)
{
    weft__io *io = arg;
    io->ops->notify(io);
}

int weft__io_init(weft__worker *w, int backend, bool movable)
{
    weft__io *io = weft__calloc(w, 1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->w = w;
    io->movable = movable;
    int unbuilt;
    io->ops = choose(backend, &unbuilt);
    int r = io->ops->init(io);
    if (r < 0 && io->ops != &weft__io_epoll) {
        /* One line for the runtime (weft.h), whichever of its workers falls back first. The
         * kernel's reason in the C library's words: weft_strerror gives a weft call's meaning
         * (-EPERM: "not inside a task?"), where a seccomp policy or io_uring_disabled is meant. */
        if (!atomic_exchange_explicit(&w->rt->uring_fallback_told, true, memory_order_relaxed))
            weft__logf(w->rt, WEFT_LOG_WARN, "weft: io_uring unavailable (%s): using epoll\n",
                       strerror(-r));
        io->ops = &weft__io_epoll;
        io->requests_tied_to_thread = false;
        r = io->ops->init(io);
    } else if (unbuilt &&
               !atomic_exchange_explicit(&w->rt->uring_fallback_told, true, memory_order_relaxed)) {
        weft__logf(w->rt, WEFT_LOG_WARN, "weft: built without io_uring (liburing): using epoll\n");
    }
    if (r < 0) {
        weft__free(w, io);
        return r;
    }
    if (w->rt->nworkers > 1)
        io->fdshare = w->rt->fdshare;
    io->w_index = w->index;
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
    weft__fdtable_fini(io);
    weft__free(w, io);
    w->io = NULL;
}

int weft__io_poll(weft__worker *w, int64_t timeout_ns, int max_events)
{
    WEFT_COUNT(w->stats.npolls++);
    int n = w->io->ops->poll(w->io, timeout_ns, max_events);
    if (n > 0)
        WEFT_COUNT(w->stats.nevents += (uint64_t)n);
    return n;
}

size_t weft__io_nwaiters(weft__worker *w)
{
    return w->io->nwaiters;
}

bool weft__io_held(weft__worker *w)
{
    return w->io->held;
}

int weft_fd_wait(int fd, int events, int64_t deadline)
{
    /* A cancelled task fails at once, as every I/O call does (net.c): without this check the
     * io_uring backend, whose poll of a ready fd completes as it is submitted, returned the
     * mask where epoll returned -ECANCELED. */
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    if (fd < 0)
        return -EBADF;
    if (events == 0 || (events & ~(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    /* The fd's state now, on both backends (weft.h): io_uring's poll reports it as it is
     * submitted; on epoll, whose edges a wait consumes, the fd is asked first, so that a
     * second wait with no EAGAIN since the first (an fd still writable, bytes left unread)
     * returns at once, as libdill's fdin/fdout and poll(2) do, instead of waiting for an edge
     * that may never come. Classified first: the first wait makes the fd non-blocking. With
     * tasks already queued on the fd, the wait queues behind them as before (an edge handed
     * on to the first is its own to take). */
    if (w->io->ops == &weft__io_epoll) {
        int kind = weft__fdtable_kind(w->io, fd);
        if (kind < 0)
            return kind;
        weft__fdshare_note(w->io, fd); /* a record here: see weft__io_fd_classify */
        /* A regular file or a directory is always looked at: epoll refuses it (EPERM), and
         * poll(2) calls it ready, as io_uring's poll does. */
        if (kind == WEFT__FD_FILE || !weft__fdtable_waited(w->io, fd, (unsigned)events)) {
            int m = weft__io_fd_ready_now(w, fd, events);
            if (m < 0)
                return m; /* -EBADF */
            /* Edges recorded before the look are stale now: the look reported them (ready),
             * or what they announced is gone (not ready); no wait may return for them later. */
            weft__fdtable_drop_edges(w->io, fd, (unsigned)events);
            if (m != 0)
                return m;
        }
    }
    weft__ioreq q = {.op = WEFT__IO_POLL, .fd = fd, .flags = events};
    return (int)weft__io_submit(w, &q, deadline);
}

void weft__io_fd_fresh(weft__worker *w, int fd)
{
    weft__fdtable_fresh(w->io, fd, 0);
    weft__fdshare_know(w, fd, false); /* no record left here for a close to forget */
}

void weft__io_fd_known(weft__worker *w, int fd, int kind)
{
    weft__fdtable_fresh(w->io, fd, kind);
    /* A record made without I/O: a weft_close on another worker must forget it here, or a
     * blocking fd given the number later passes here for this one (never made non-blocking:
     * a read blocks the worker). */
    weft__fdshare_know(w, fd, kind != 0);
}

int weft__io_fd_ready_now(weft__worker *w, int fd, int events)
{
    short want = (short)(((events & WEFT_READABLE) ? POLLIN | POLLRDHUP : 0) |
                         ((events & WEFT_WRITABLE) ? POLLOUT : 0));
    int r = weft__sys_poll1(&w->sys, fd, want, 0); /* the revents */
    if (r < 0 || (r & POLLNVAL))
        return r < 0 ? r : -EBADF;
    int m = 0;
    if ((events & WEFT_READABLE) && (r & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))) {
        m |= WEFT_READABLE;
        weft__fdtable_undrain(w->io, fd);
    }
    /* Bytes the backend took for the fd (io_uring's armed receive) leave the socket itself
     * empty to poll(2), but a read returns them at once: readable, as weft_fd_wait says. */
    if ((events & WEFT_READABLE) && !(m & WEFT_READABLE) && w->io->ops->held &&
        w->io->ops->held(w->io, fd))
        m |= WEFT_READABLE;
    if ((events & WEFT_WRITABLE) && (r & (POLLOUT | POLLHUP | POLLERR)))
        m |= WEFT_WRITABLE;
    return m;
}

bool weft__io_takes_reads(weft__worker *w, int fd)
{
    return w->io->ops->takes_reads && fd >= 0 && w->io->ops->takes_reads(w->io, fd);
}

void weft__io_fd_unconsume(weft__worker *w, int fd, unsigned mask)
{
    if (w->io->ops == &weft__io_epoll)
        weft__fdtable_ready(w->io, fd, mask & (WEFT_READABLE | WEFT_WRITABLE));
}

int weft__io_fd_kind(weft__worker *w, int fd)
{
    weft__io *io = w->io;
    return fd >= 0 && (size_t)fd < io->nfds ? io->fds[fd].kind : 0;
}

int weft__io_fd_classify(weft__worker *w, int fd)
{
    int kind = fd < 0 ? -EBADF : weft__fdtable_kind(w->io, fd);
    /* A record another worker's weft_close must forget here: classified without an I/O call
     * (weft_fd_wait's look, a Unix connect), the fd was not marked, and a blocking fd given
     * the number later passed for this one (never made non-blocking: a read blocked the
     * worker). Not in fdtable.c: fdshare calls down into it. */
    if (kind >= 0)
        weft__fdshare_note(w->io, fd);
    return kind;
}

#ifdef WEFT_TESTING
size_t weft__io_nfds(void)
{
    weft__worker *w = weft__worker_current();
    return w && w->io ? w->io->nfds : 0;
}
#endif

/* weft_fd_forget on the calling worker only. */
static int forget_here(weft__worker *w, int fd)
{
    if (!w)
        return -EPERM;
    weft__io *io = w->io;
    if (fd < 0)
        return -EBADF;
    /* A record even for an fd never waited on: its new generation tells an operation in
     * flight on it (io_uring) that it was forgotten. An fd that is not open has none, and
     * gets none (-EBADF): the table grows only for open fds. */
    weft__fdrec *rec;
    int r = weft__fdtable_get(io, fd, &rec);
    if (r < 0)
        return r;
    io->ops->forget(io, fd, true);
    weft__fdtable_reset(io, fd);
    return 0;
}

int weft_fd_forget(int fd)
{
    weft__worker *w = weft__worker_current();
    if (w && fd >= 0 && w->io->ops->flush && weft__blocking_task(w)) {
        w->io->ops->flush(w->io, fd); /* as weft_close: the writes taken go out first */
        w = weft__worker_current();
    }
    int r = forget_here(w, fd);
    if (r == 0)
        weft__fdshare_forget_others(w, fd, false); /* other workers that used it too */
    /* A number the table held but that is closed now (close(2) after an earlier use) had its
     * stale record dropped above, and is still not an open fd. */
    if (r == 0 && weft__sys_fcntl(&weft__worker_current()->sys, fd, F_GETFD, 0) < 0)
        return -EBADF;
    return r;
}

int weft_close(int fd)
{
    weft__worker *w = weft__worker_current();
    if (fd < 0)
        return -EBADF;
    if (!w)
        return weft__io_close_after_jobs(NULL, fd); /* no runtime: nothing to forget */
    /* Writes taken without waiting (io_uring) go out before the forget would cancel them:
     * from a task, which may wait for them. */
    if (fd >= 0 && w->io->ops->flush && weft__blocking_task(w)) {
        w->io->ops->flush(w->io, fd);
        w = weft__worker_current(); /* it may have parked: the migration rule */
    }
    int r = forget_here(w, fd);
    if (r < 0)
        return r;
    /* Forgotten on the other workers that used it before the number can be reused. */
    if (weft__fdshare_forget_others(w, fd, true) == 1)
        return 0; /* the last of them closes it */
    /* The wait for them may have ended on another worker (the migration rule). */
    w = weft__worker_current();
    return weft__io_close_after_jobs(&w->sys, fd);
}

bool weft__io_defer_shutdown(weft__worker *w, int fd)
{
    return w->io->ops->defer_shutdown && fd >= 0 && w->io->ops->defer_shutdown(w->io, fd);
}

bool weft__io_requests_tied_to_thread(const weft__worker *w)
{
    return w->io->requests_tied_to_thread;
}
