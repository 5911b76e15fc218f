/* The epoll backend: one epoll instance per worker, fds registered once edge-triggered for
 * both directions (Go's netpoller model), and an eventfd that other threads write to wake a
 * blocked worker. An operation is its system call, tried first (a ready fd costs one call and
 * no wait), then a wait for readiness on EAGAIN; regular-file operations go to the blocking
 * pool, since epoll calls a file always ready (a FIFO or a device opened by path is not a
 * file: it takes the readiness path, where deadlines work), except what the page cache holds
 * (file_read) and O_DIRECT calls at an offset (Linux AIO, aio.c). Every fd is classified at its
 * first operation (fdtable.c), before its first system call, which is what lets weft set
 * O_NONBLOCK on it before a read could block the thread. Waits with nanosecond timeouts
 * through epoll_pwait2 where the kernel has it (not under valgrind, which does not know it),
 * else epoll_wait rounded up to whole milliseconds. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "aio.h"
#include "backend.h"
#include "exec.h"
#include "../hooks.h"

#define MAX_EVENTS 256 /* events taken per wait: enough to drain a busy tick in one call */

/* The event data of the AIO eventfd (aio.c): the doorbell's fd number in `data.fd`, so that
 * the one test per event that finds the doorbell finds it too, and 1 in the upper half, which
 * no other registration has (they store an fd in `data.fd`, zero above it). `data.fd` is the
 * low half of `data.u64` on a little-endian CPU. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "AIO_TAG reads data.fd as the low half");
#define AIO_TAG(s) ((uint64_t)1 << 32 | (uint32_t)(s)->evfd)

typedef struct epoll_state {
    int epfd;
    int evfd;
    int have_pwait2; /* 1 until the kernel says ENOSYS */
    weft__aio aio;   /* O_DIRECT reads (aio.c) */
    struct epoll_event events[MAX_EVENTS];
} epoll_state;

WEFT_COLD static int ep_init(weft__io *io)
{
    weft__sys *sys = &io->w->sys;
    epoll_state *s = weft__malloc(io->w, sizeof *s);
    if (!s)
        return -ENOMEM;
    /* Valgrind does not know epoll_pwait2 (it warns on every call): epoll_wait there. */
    s->have_pwait2 = !weft__hook_on_valgrind();
    s->epfd = weft__sys_epoll_create(sys, EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = s->epfd;
        weft__free(io->w, s);
        return e;
    }
    s->evfd = weft__sys_eventfd(sys, 0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN,
                             .data.u64 = (uint32_t)s->evfd}; /* 0 above: see AIO_TAG */
    int r = s->evfd < 0 ? s->evfd : weft__sys_epoll_ctl(sys, s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);
    if (r < 0) {
        if (s->evfd >= 0)
            weft__sys_close(sys, s->evfd);
        weft__sys_close(sys, s->epfd);
        weft__free(io->w, s);
        return r;
    }
    weft__aio_init(&s->aio);
    io->backend = s;
    return 0;
}

WEFT_COLD static void ep_fini(weft__io *io)
{
    epoll_state *s = io->backend;
    if (!s)
        return;
    weft__aio_fini(io, &s->aio);
    weft__sys_close(&io->w->sys, s->evfd);
    weft__sys_close(&io->w->sys, s->epfd);
    weft__free(io->w, s);
    io->backend = NULL;
}

/* Starts watching fd for both directions, edge-triggered. Returns 0 or -errno (-EPERM for
 * files that cannot be polled). */
static int watch(weft__io *io, int fd)
{
    epoll_state *s = io->backend;
    weft__sys *sys = &io->w->sys;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    int r = weft__sys_epoll_ctl(sys, s->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (r == -EEXIST)
        r = weft__sys_epoll_ctl(sys, s->epfd, EPOLL_CTL_MOD, fd, &ev);
    return r;
}

static void ep_forget(weft__io *io, int fd, bool fd_held)
{
    (void)fd_held;
    epoll_state *s = io->backend;
    if ((size_t)fd < io->nfds && io->fds[fd].watched)
        /* ENOENT/EBADF: already gone, fine. */
        weft__sys_epoll_ctl(&io->w->sys, s->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* Waits for `events` on a classified fd, registering it first if this is its first wait.
 * Registration fails cleanly: the record stays unwatched, and the next wait tries again. */
static inline __attribute__((always_inline)) int wait_ready(weft__io **iop, int fd, int events,
                                                            int64_t deadline)
{
    /* Every caller classified fd first, so the table holds it. *iop is re-read by the wait
     * (the migration rule), so callers keep using it afterwards. */
    weft__io *io = *iop;
    weft__fdrec *rec = &io->fds[fd];
    if (!rec->watched) {
        int r = watch(io, fd);
        if (r < 0)
            return r;
        rec->watched = 1;
    }
    /* weft__fdtable_wait's test, with the record in hand (a classified fd is in the table). */
    if (weft__fdtable_alone(rec, events, deadline))
        return weft__fdtable_wait_alone(iop, rec, fd, (unsigned)events);
    return weft__fdtable_wait_queued(iop, fd, events, deadline);
}

/* Drained reads. A read that returned less than it asked for emptied a byte stream's
 * receive queue at that moment; with edge-triggered epoll, any byte that arrives later brings
 * a new readable edge. So until such an edge comes, the next read can skip the system call
 * that would only say EAGAIN and wait first (Tokio's reasoning too): one syscall fewer per
 * message on a request/response connection. Only for byte streams (WEFT__FD_STREAM): a
 * datagram, a seqpacket record or a tty line is one read each, and a burst of them comes
 * under one edge, so a short read there says nothing about what is still queued. */
static inline void mark_drained(weft__io *io, int fd)
{
    if (fd >= 0 && (size_t)fd < io->nfds && io->fds[fd].watched &&
        io->fds[fd].kind == WEFT__FD_STREAM)
        io->fds[fd].drained = 1;
}

/* connect(2) on a non-blocking socket: EINPROGRESS, wait writable, then SO_ERROR. Not
 * EAGAIN: a TCP connect says it when no local port is free, and nothing is in progress (an
 * unconnected socket is writable at once, and SO_ERROR would have said 0); a Unix-domain one
 * never comes here (net.c). */
static ssize_t ep_connect(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    weft__sys *sys = &io->w->sys;
    int r = weft__sys_connect(sys, q->fd, q->addr, q->alen);
    if (r == 0)
        return 0;
    if (r != -EINPROGRESS && r != -EINTR)
        return r;
    if (deadline != WEFT_FOREVER && deadline <= weft__clock_ns()) {
        /* A passed deadline: a look, not a wait (weft.h), since a loopback handshake (or its
         * refusal) is over by now, and io_uring's connect reports it: the fd's registration
         * would see no edge before the deadline check. */
        r = weft__sys_poll1(sys, q->fd, POLLOUT, 0);
        if (r <= 0)
            return r < 0 ? r : -ETIMEDOUT;
    } else {
        r = wait_ready(&io, q->fd, WEFT_WRITABLE, deadline);
        if (r < 0)
            return r;
        sys = &io->w->sys;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    r = weft__sys_getsockopt(sys, q->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (r < 0)
        return r;
    if (soerr) {
        /* Refused, reset, unreachable: Linux leaves the socket "connecting" until the next
         * connect(2), which says -ECONNABORTED and only then makes it unconnected (it starts
         * nothing). Made here, so that the caller's own next connect tries again, as after a
         * blocking connect(2) and on io_uring (said -ECONNABORTED, where both said the
         * refusal again). Cold: a failed connect only. */
        (void)weft__sys_connect(sys, q->fd, q->addr, q->alen);
        return -soerr;
    }
    /* Connected. Linux marks the socket so only at the next connect(2), which says 0: made
     * here, so that the caller's own later connect says -EISCONN, as io_uring's does (its
     * connect completes through that call itself). One call per connection. */
    (void)weft__sys_connect(sys, q->fd, q->addr, q->alen);
    return 0;
}

/* A regular file's read: what the page cache holds is read on the worker's thread
 * (preadv2 with RWF_NOWAIT: no pool hand-off, two thread switches and a wake fewer), the
 * rest by the blocking pool. A short RWF_NOWAIT read is what was cached: the rest is tried
 * again (0 then means the end of the file) and, if not cached, read by the pool, so a read
 * still returns short only at the end of the file, as pread does. A file system that
 * refuses RWF_NOWAIT turns the try off for that fd. O_DIRECT fds come here only for what
 * Linux AIO did not take (aio.c), and go to the pool (their read would wait for the device
 * on the worker's thread: fdtable.c). */
static ssize_t file_read(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    weft__fdrec *rec = &io->fds[q->fd];
    if (!rec->nowait || q->len == 0)
        return weft__io_exec_blocking(io->w, q, deadline);
    /* At most what one read(2) moves (0x7ffff000 bytes), as pread answers (weft.h). The
     * first call is given the whole length, so that the kernel checks the whole range as
     * pread's would (-EFAULT past the address space), and clamps it itself. */
    size_t most = q->len < WEFT__MAX_RW ? q->len : WEFT__MAX_RW;
    size_t done = 0;
    while (done < most) {
        off_t off = q->off < 0 ? -1 : (off_t)(q->off + (int64_t)done);
        ssize_t n = weft__sys_pread_nowait(&io->w->sys, q->fd, (char *)q->buf + done,
                                           done ? most - done : q->len, off);
        if (n == 0)
            return (ssize_t)done; /* the end of the file */
        if (n > 0) {
            done += (size_t)n; /* a short one: what was cached; try the rest (EOF says 0) */
            continue;
        }
        /* -EINVAL for a length past SSIZE_MAX is the caller's, not the file system's: the
         * pool's pread answers it as pread(2) does (-EFAULT first). */
        if (n == -EINVAL && q->len > (size_t)SSIZE_MAX)
            break;
        if (n == -EOPNOTSUPP || n == -EINVAL || n == -EPERM || n == -ENOSYS)
            rec->nowait = 0; /* no RWF_NOWAIT here (the file system, or a seccomp filter) */
        else if (n != -EAGAIN)
            return done ? (ssize_t)done : n; /* the read's own error (EBADF, EISDIR, ...) */
        break;
    }
    if (done >= most)
        return (ssize_t)done;
    weft__ioreq rest = *q; /* the part not cached: from the blocking pool */
    rest.buf = (char *)q->buf + done;
    rest.len = done ? most - done : q->len; /* untouched: the pool's pread checks it all */
    if (q->off >= 0)
        rest.off = q->off + (int64_t)done; /* -1 stays: the file position moved already */
    ssize_t m = weft__io_exec_blocking(io->w, &rest, deadline);
    if (m < 0)
        return done ? (ssize_t)done : m;
    return (ssize_t)done + m;
}

/* What ep_submit_other returns for "classified now: go on with the plain path". */
#define EP_PLAIN ((ssize_t)INT64_MIN)

/* The requests that are not "try the call, wait on EAGAIN" on a known fd: kept out of
 * ep_submit so that its hot path (reads and writes on sockets) stays small. */
WEFT_NOINLINE static ssize_t ep_submit_other(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    if (weft__io_by_path(q))
        return weft__io_exec_blocking(io->w, q, deadline); /* open, stat, the tree's calls */
    /* The first operation on an fd classifies it (and makes it non-blocking) before any
     * system call is made on it. */
    int kind = weft__fdtable_kind(io, q->fd);
    if (kind < 0)
        return kind;
    if ((q->opts & WEFT__IOQ_FILE) && kind == WEFT__FD_FILE) {
        /* pread(2) refuses such a range before touching it; the RWF_NOWAIT try and Linux AIO
         * would clamp it and write past the caller's buffer (reads) first. */
        if ((q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE) && q->len &&
            weft__io_range_faults(q->buf, q->len))
            return -EFAULT;
        if ((q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE) && io->fds[q->fd].direct &&
            q->off >= 0 && q->len > 0) {
            epoll_state *s = io->backend;
            ssize_t r = weft__aio_rw(io, &s->aio, s->epfd, AIO_TAG(s), q, deadline);
            if (r != WEFT__AIO_POOL)
                return r;
        }
        return q->op == WEFT__IO_READ ? file_read(io, q, deadline)
                                      : weft__io_exec_blocking(io->w, q, deadline);
    }
    if (q->op == WEFT__IO_POLL)
        return wait_ready(&io, q->fd, q->flags, deadline);
    if (q->op == WEFT__IO_CONNECT)
        return ep_connect(io, q, deadline);
    return EP_PLAIN; /* a FIFO's file request, or a first read or write */
}

/* A read or write with a NULL buffer (one in the first page) and a length, about to wait:
 * -EFAULT now, as on io_uring (weft.h), rather than from the system call once the fd is
 * ready. Only on the way to a wait: a call that finds the fd ready gets the kernel's answer. */
static inline bool null_buffer(const weft__ioreq *q)
{
    if (q->op == WEFT__IO_READV || q->op == WEFT__IO_WRITEV) {
        /* The same for any buffer of a vector (the array itself was checked: net.c). */
        for (int i = 0; i < q->iovcnt; i++)
            if (q->iov[i].iov_len && (uintptr_t)q->iov[i].iov_base < 4096)
                return true;
        return false;
    }
    return q->len && (uintptr_t)q->buf < 4096 &&
           (q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE || q->op == WEFT__IO_RECV ||
            q->op == WEFT__IO_SEND);
}

/* Whether a readable edge answers this read or receive: not a read at an offset (a pread on
 * a pipe is -ESPIPE at once), nor an urgent byte's receive (MSG_OOB raises EPOLLPRI): the
 * drained-read shortcut waited for ever for either. */
static inline bool edge_answers(const weft__ioreq *q)
{
    return q->op == WEFT__IO_READ ? q->off < 0 : !(q->flags & MSG_OOB);
}

static ssize_t ep_submit(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    /* One look at the record serves the classification test and the drained shortcut. */
    weft__fdrec *rec;
    if (weft_unlikely((size_t)q->fd >= io->nfds || !(rec = &io->fds[q->fd])->kind ||
                      (q->opts & WEFT__IOQ_FILE) || q->op == WEFT__IO_POLL ||
                      q->op == WEFT__IO_CONNECT)) {
        ssize_t r = ep_submit_other(io, q, deadline);
        if (r != EP_PLAIN)
            return r;
        rec = &io->fds[q->fd]; /* classified: the table holds it now (and may have moved) */
    }
    /* weft_read and weft_recv: the drained-read shortcut (MSG_PEEK leaves data queued, so
     * a short peek says nothing about the queue). After a hang-up no edge will come again,
     * so never wait then: read() reports it. */
    /* Not with a deadline already passed: the call must complete if it can at once (weft.h),
     * and bytes may have come whose edge the loop has not taken yet (a select's look saw
     * them; the read gave up without trying, and a loop of the two never parked). */
    /* Nor a read no readable edge answers (edge_answers), tested last: only a drained fd's
     * read about to wait pays for it. */
    int plain_read = q->op == WEFT__IO_READ || q->op == WEFT__IO_RECV;
    if (plain_read && q->len > 0 && rec->drained && rec->watched && !rec->hup &&
        !(rec->ready & WEFT_READABLE) && !weft__io_nowait(q) &&
        (deadline == WEFT_FOREVER || deadline > weft__clock_ns()) && edge_answers(q)) {
        if (null_buffer(q))
            return -EFAULT;
        int r = wait_ready(&io, q->fd, WEFT_READABLE, deadline);
        if (r < 0)
            return r;
    }
    for (;;) {
        ssize_t n = weft__io_exec(&io->w->sys, q);
        if (n >= 0) {
            /* Not after a peek (the bytes stay queued) nor an urgent byte (the stream's queue
             * is another matter), whose short reads say nothing of the queue. */
            if (plain_read && n > 0 && (size_t)n < q->len && !(q->flags & (MSG_PEEK | MSG_OOB)))
                mark_drained(io, q->fd); /* looked up again: a wait may have moved it */
            return n;
        }
        if (n == -EINTR)
            continue;
        if ((n != -EAGAIN && n != -EWOULDBLOCK) || weft__io_nowait(q))
            return n;
        if (null_buffer(q))
            return -EFAULT;
        int r = wait_ready(&io, q->fd, weft__io_dir(q), deadline);
        if (r < 0)
            return r;
    }
}

/* The record of an event's fd, or NULL (the eventfd, or a number the table does not hold). */
static inline const weft__fdrec *event_rec(const weft__io *io, const struct epoll_event *ev)
{
    return (size_t)ev->data.fd < io->nfds ? &io->fds[ev->data.fd] : NULL;
}

/* Waking a reader touches three cold lines, each found through the one before: its fd record,
 * its waiter node (on its stack) and its task record (the state word). Walked one event at a
 * time the misses come one after another; fetched ahead in three stages, those of several
 * events are in flight at once. Only loads of lines an earlier stage asked for, and a
 * prefetch of a stale pointer cannot fault. */
static inline void prefetch_wakes(const weft__io *io, const struct epoll_event *evs, int i, int n)
{
    const weft__fdrec *rec;
    if (i + 8 < n && (rec = event_rec(io, &evs[i + 8])) != NULL)
        weft__prefetch(rec);
    if (i + 4 < n && (rec = event_rec(io, &evs[i + 4])) != NULL && rec->rd.head)
        weft__prefetch(rec->rd.head);
    if (i + 2 < n && (rec = event_rec(io, &evs[i + 2])) != NULL && rec->rd.head &&
        rec->rd.head->waker.task)
        weft__prefetch(rec->rd.head->waker.task);
}

static int ep_poll(weft__io *io, int64_t timeout_ns, int max_events)
{
    epoll_state *s = io->backend;
    weft__sys *sys = &io->w->sys;
    if (max_events > MAX_EVENTS)
        max_events = MAX_EVENTS;
    if (weft_unlikely(s->aio.npend) && weft__aio_flush(io, &s->aio))
        timeout_ns = 0; /* it woke a task: the loop must come back to run it */
    int n = weft__sys_epoll_wait(sys, s->epfd, s->events, max_events, timeout_ns, &s->have_pwait2);
    if (n < 0)
        return n == -EINTR ? 0 : n;
    for (int i = 0; i < n; i++) {
        struct epoll_event *ev = &s->events[i];
        if (n > 8)
            prefetch_wakes(io, s->events, i, n);
        if (ev->data.fd == s->evfd) { /* the doorbell, or AIO's completions (AIO_TAG) */
            if (weft_unlikely(ev->data.u64 >> 32)) {
                weft__aio_reap(io, &s->aio);
                continue;
            }
            uint64_t v;
            while (weft__sys_read(sys, s->evfd, &v, sizeof v) > 0)
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
        weft__fdtable_ready(io, ev->data.fd, mask);
    }
    return n;
}

static void ep_notify(weft__io *io)
{
    epoll_state *s = io->backend;
    uint64_t one = 1;
    /* Any thread: NULL record, uncounted. EAGAIN: the counter is already non-zero, the
     * worker will wake anyway. */
    weft__sys_write(NULL, s->evfd, &one, sizeof one);
}

const weft__io_ops weft__io_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .poll = ep_poll,
    .notify = ep_notify,
    .submit = ep_submit,
    .forget = ep_forget,
};
