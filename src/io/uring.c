/* The io_uring backend: one ring per worker, completion-based operations. A task prepares an
 * SQE whose user_data points at a completion record on its own stack, and parks; the loop
 * submits every SQE prepared during a tick with one io_uring_enter (in poll), reaps the
 * CQEs, and wakes their tasks. A deadline or a cancellation submits an async cancel and
 * waits for the operation's own CQE, because the kernel owns the caller's buffers until
 * then. An eventfd, polled by the ring, lets other threads wake a blocked worker.
 * Operations the kernel answers with -EAGAIN (non-blocking fds, on kernels that honour
 * O_NONBLOCK in the ring) are retried after a poll for readiness. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "backend.h"

#define RING_ENTRIES 1024          /* SQEs per tick before an early submit */
#define CQ_ENTRIES   16384         /* completions the ring holds before the kernel overflow list */
#define TAG_IGNORE   ((uint64_t)0) /* CQEs nobody waits for (cancel requests) */
#define TAG_EVENTFD  ((uint64_t)1) /* the eventfd poll; real user_data are stack addresses */

/* Where a completion lands: on the waiting task's stack. owner: worker thread. */
typedef struct uop {
    weft_waker waker; /* re-set before every park */
    int32_t res;
    int done;
} uop;

typedef struct uring_state {
    struct io_uring ring;
    int evfd;
} uring_state;

static struct io_uring_sqe *get_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring); /* the SQ ring is full: hand this batch over now */
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

static int arm_eventfd(uring_state *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, s->evfd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_EVENTFD);
    return 0;
}

/* The opcodes weft needs; a kernel missing one makes weft fall back to epoll. */
static const int needed_ops[] = {
    IORING_OP_READ,   IORING_OP_WRITE,   IORING_OP_READV,    IORING_OP_WRITEV,
    IORING_OP_RECV,   IORING_OP_SEND,    IORING_OP_RECVMSG,  IORING_OP_SENDMSG,
    IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
    IORING_OP_OPENAT, IORING_OP_FSYNC,
};

static int ur_init(weft__io *io)
{
    uring_state *s = weft__calloc(io->w, 1, sizeof *s);
    if (!s)
        return -ENOMEM;
    /* A CQ much larger than the SQ: every connection may have an operation in flight, and
     * a burst of completions beyond the CQ waits in the kernel's overflow list. */
    struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
    int r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &params);
    if (r < 0) {
        weft__free(io->w, s);
        return r;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    if (!probe)
        r = -ENOSYS;
    for (size_t i = 0; r == 0 && i < sizeof needed_ops / sizeof needed_ops[0]; i++)
        if (!io_uring_opcode_supported(probe, needed_ops[i]))
            r = -ENOSYS;
    if (probe)
        io_uring_free_probe(probe);
    if (r == 0 && !(s->ring.features & IORING_FEAT_EXT_ARG))
        r = -ENOSYS; /* needed for waits with a timeout in one enter */
    if (r == 0) {
        s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r = s->evfd < 0 ? -errno : arm_eventfd(s);
    }
    if (r < 0) {
        if (s->evfd > 0)
            close(s->evfd);
        io_uring_queue_exit(&s->ring);
        weft__free(io->w, s);
        return r;
    }
    io->backend = s;
    return 0;
}

static void ur_fini(weft__io *io)
{
    uring_state *s = io->backend;
    if (!s)
        return;
    io_uring_queue_exit(&s->ring);
    close(s->evfd);
    weft__free(io->w, s);
    io->backend = NULL;
}

static int ur_watch(weft__io *io, int fd)
{
    (void)io;
    (void)fd;
    return 0; /* nothing to register: each wait is a poll operation */
}

static void ur_unwatch(weft__io *io, int fd)
{
    (void)io;
    (void)fd;
}

static unsigned poll_to_mask(int revents)
{
    unsigned m = 0;
    if (revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))
        m |= WEFT_READABLE;
    if (revents & (POLLOUT | POLLHUP | POLLERR))
        m |= WEFT_WRITABLE;
    return m;
}

static int ur_poll(weft__io *io, int64_t timeout_ns)
{
    uring_state *s = io->backend;
    struct io_uring_cqe *cqe = NULL;
    int r;
    if (timeout_ns == 0) {
        /* Enter the kernel only with something to submit, or completions parked in the
         * overflow list: those come back only through an enter with GETEVENTS, and under
         * sustained load the loop never blocks, so a plain submit would strand them. */
        r = 0;
        if (io_uring_sq_ready(&s->ring) || io_uring_cq_has_overflow(&s->ring))
            r = io_uring_submit_and_get_events(&s->ring);
    } else if (timeout_ns < 0) {
        r = io_uring_submit_and_wait(&s->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / WEFT_SEC,
                                       .tv_nsec = timeout_ns % WEFT_SEC};
        r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY)
        return r;
    unsigned head, n = 0, total = 0;
    int rearm = 0;
reap:
    n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        n++;
        if (ud == TAG_IGNORE)
            continue;
        if (ud == TAG_EVENTFD) {
            uint64_t v;
            while (read(s->evfd, &v, sizeof v) > 0)
                ;
            rearm = 1;
            continue;
        }
        uop *op = (uop *)(uintptr_t)ud;
        op->res = cqe->res;
        op->done = 1;
        weft_waker_wake(op->waker);
    }
    io_uring_cq_advance(&s->ring, n);
    total += n;
    if (io_uring_cq_has_overflow(&s->ring)) {
        /* More completions wait in the overflow list: bring them in now. */
        io_uring_get_events(&s->ring);
        goto reap;
    }
    if (rearm)
        arm_eventfd(s);
    return (int)total;
}

static void ur_notify(weft__io *io)
{
    uring_state *s = io->backend;
    uint64_t one = 1;
    ssize_t r = write(s->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is already non-zero */
}

static void prep(struct io_uring_sqe *sqe, const weft__ioreq *q)
{
    uint64_t off = q->off < 0 ? (uint64_t)-1 : (uint64_t)q->off;
    switch (q->op) {
    case WEFT__IO_READ:
        io_uring_prep_read(sqe, q->fd, q->buf, (unsigned)q->len, off);
        break;
    case WEFT__IO_WRITE:
        io_uring_prep_write(sqe, q->fd, q->buf, (unsigned)q->len, off);
        break;
    case WEFT__IO_READV:
        io_uring_prep_readv(sqe, q->fd, q->iov, (unsigned)q->iovcnt, off);
        break;
    case WEFT__IO_WRITEV:
        io_uring_prep_writev(sqe, q->fd, q->iov, (unsigned)q->iovcnt, off);
        break;
    case WEFT__IO_RECV:
        io_uring_prep_recv(sqe, q->fd, q->buf, q->len, q->flags);
        break;
    case WEFT__IO_SEND:
        io_uring_prep_send(sqe, q->fd, q->buf, q->len, q->flags | MSG_NOSIGNAL);
        break;
    case WEFT__IO_RECVMSG:
        io_uring_prep_recvmsg(sqe, q->fd, q->msg, (unsigned)q->flags);
        break;
    case WEFT__IO_SENDMSG:
        io_uring_prep_sendmsg(sqe, q->fd, q->msg, (unsigned)q->flags | MSG_NOSIGNAL);
        break;
    case WEFT__IO_ACCEPT:
        io_uring_prep_accept(sqe, q->fd, q->addr, q->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case WEFT__IO_CONNECT:
        io_uring_prep_connect(sqe, q->fd, q->addr, q->alen);
        break;
    case WEFT__IO_POLL: {
        unsigned mask = POLLRDHUP;
        if (q->flags & WEFT_READABLE)
            mask |= POLLIN;
        if (q->flags & WEFT_WRITABLE)
            mask |= POLLOUT;
        io_uring_prep_poll_add(sqe, q->fd, mask);
        break;
    }
    case WEFT__IO_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, q->path, q->flags | O_CLOEXEC, q->mode);
        break;
    default:
        io_uring_prep_fsync(sqe, q->fd, 0);
        break;
    }
}

static bool op_done(const void *op)
{
    return ((const uop *)op)->done;
}

/* Submits one operation and parks until its CQE. `*why` gets the reason we cancelled it
 * (-ETIMEDOUT or -ECANCELED), or 0. */
static int run_op(weft__io *io, const weft__ioreq *q, int64_t deadline, int *why)
{
    uring_state *s = io->backend;
    weft__worker *w = io->w;
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    uop op = {.done = 0};
    prep(sqe, q);
    io_uring_sqe_set_data(sqe, &op);
    *why = 0;
    io->nwaiters++;
    weft__wait wr = {.kind = WEFT__WAIT_IO,
                     .what = (const void *)(intptr_t)q->fd,
                     .deadline = deadline,
                     .done = op_done,
                     .done_arg = &op,
                     .waker = &op.waker};
    int r = weft__park_until(w, &wr);
    if (r < 0) {
        /* Withdraw it, then wait for its own CQE: until then the kernel may still be writing
         * into the caller's buffer. The ring is this worker's: an operation completes on the
         * ring it was submitted to (docs/architecture.md, "migration rules"). */
        *why = r;
        struct io_uring_sqe *c = get_sqe(s);
        if (c) {
            io_uring_prep_cancel64(c, (uint64_t)(uintptr_t)&op, 0);
            io_uring_sqe_set_data64(c, TAG_IGNORE);
        }
        wr.uncancellable = true;
        weft__park_until(w, &wr);
    }
    io->nwaiters--;
    return op.res;
}

static ssize_t ur_submit(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uint32_t gen = q->op == WEFT__IO_OPEN ? 0 : weft__io_fd_gen(io, q->fd);
    for (;;) {
        int why;
        int res = run_op(io, q, deadline, &why);
        if (q->op != WEFT__IO_OPEN && weft__io_fd_gen(io, q->fd) != gen)
            return -EBADF; /* forgotten (closed) while in flight */
        if (res == -ECANCELED && why)
            return why;
        if (res == -EAGAIN && q->op != WEFT__IO_POLL && q->op != WEFT__IO_OPEN &&
            q->op != WEFT__IO_FSYNC) {
            /* The kernel honoured O_NONBLOCK: wait for readiness, then try again. */
            int dir =
                (q->op == WEFT__IO_READ || q->op == WEFT__IO_READV || q->op == WEFT__IO_RECV ||
                 q->op == WEFT__IO_RECVMSG || q->op == WEFT__IO_ACCEPT)
                    ? WEFT_READABLE
                    : WEFT_WRITABLE;
            weft__ioreq pq = {.op = WEFT__IO_POLL, .fd = q->fd, .flags = dir};
            int pr = run_op(io, &pq, deadline, &why);
            if (weft__io_fd_gen(io, q->fd) != gen)
                return -EBADF;
            if (pr == -ECANCELED && why)
                return why;
            if (pr < 0)
                return pr;
            continue;
        }
        if (q->op == WEFT__IO_POLL && res >= 0)
            return (ssize_t)poll_to_mask(res);
        return res;
    }
}

static void ur_cancel_fd(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return;
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    /* Submitted now: the fd is about to be closed, and the cancel must find it open. */
    io_uring_submit(&s->ring);
}

const weft__io_ops weft__io_uring = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .watch = ur_watch,
    .unwatch = ur_unwatch,
    .poll = ur_poll,
    .notify = ur_notify,
    .submit = ur_submit,
    .cancel_fd = ur_cancel_fd,
};
