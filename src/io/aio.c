/* Linux native AIO for O_DIRECT reads and writes on the epoll backend (aio.h).
 *
 * Why: epoll calls a file always ready, so a file call that must wait for the device went to
 * the blocking pool: a queue under a mutex, a pool thread's wake, two thread switches and the
 * result's cross-thread wake, about 13 us of CPU a read (docs/performance.md, file_randread).
 * An O_DIRECT read or write is what AIO does asynchronously (a buffered one it would do
 * inside io_submit), so those go to the worker's AIO context: one io_submit for a tick's
 * calls, and one io_getevents per batch of completions, found through an eventfd in the
 * worker's epoll set (IOCB_FLAG_RESFD). Seastar does its file I/O the same way.
 *
 * Only calls at an offset (pread, pwrite): one at the file position would need the position
 * moved by hand. Writes carry RWF_NOWAIT: ext4 does an appending or hole-filling direct write
 * synchronously inside io_submit, which would block the worker's thread; NOWAIT makes the
 * kernel refuse it (EAGAIN, before any data moves) and the pool writes it. io_submit itself
 * may wait briefly for a free request of the device queue when it is full.
 *
 * Ownership. The control block and the completion record live on the calling task's stack;
 * the task stays parked, uncancellably, until the completion is reaped, so the kernel never
 * touches a buffer or a record whose owner has gone. aio_data points to the record. */
#include <errno.h>
#include <linux/aio_abi.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h> /* RWF_NOWAIT */

#include "../scheduler.h"
#include "../sys.h"
#include "../task.h"
#include "../worker.h"
#include "aio.h"

/* An op's result when the kernel refused it: the pool reads instead. */
#define REFUSED INT64_MIN

typedef struct aio_op {
    weft_waker waker; /* re-set before every park */
    int64_t res;
    int done;
    uint32_t gen; /* the fd record's generation when the read was queued */
} aio_op;

/* Makes the context and its eventfd. 0, or -errno (the caller marks AIO unavailable). */
WEFT_COLD static int aio_setup(weft__io *io, weft__aio *a, int epfd, uint64_t tag)
{
    weft__sys *sys = &io->w->sys;
    unsigned long ctx;
    int r = weft__sys_io_setup(sys, WEFT__AIO_DEPTH, &ctx);
    if (r < 0)
        return r; /* ENOSYS (a seccomp filter), EAGAIN (fs.aio-max-nr reached) */
    int fd = weft__sys_eventfd(sys, 0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    r = fd < 0 ? fd : weft__sys_epoll_ctl(sys, epfd, EPOLL_CTL_ADD, fd, &ev);
    if (r < 0) {
        if (fd >= 0)
            weft__sys_close(sys, fd);
        weft__sys_io_destroy(ctx);
        return r;
    }
    a->ctx = ctx;
    a->evfd = fd;
    return 0;
}

static bool op_done(const void *op)
{
    return ((const aio_op *)op)->done;
}

ssize_t weft__aio_rw(weft__io *io, weft__aio *a, int epfd, uint64_t tag, const weft__ioreq *q,
                     int64_t deadline)
{
    weft__worker *w = io->w;
    weft_task *t = weft__blocking_task(w);
    if (!t || a->state < 0 || a->inflight >= WEFT__AIO_DEPTH)
        return WEFT__AIO_POOL;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    if (deadline != WEFT_FOREVER && w->now >= deadline)
        return -ETIMEDOUT;
    if (a->state == 0)
        a->state = aio_setup(io, a, epfd, tag) == 0 ? 1 : -1;
    if (a->state < 0)
        return WEFT__AIO_POOL;
    aio_op op = {.done = 0, .gen = weft__fdtable_gen(io, q->fd)};
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_data = (uint64_t)(uintptr_t)&op;
    bool write = q->op == WEFT__IO_WRITE;
    cb.aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
    /* A write that would wait inside io_submit (ext4 allocating blocks, extending the file,
     * or flushing cached pages of the range) is refused with EAGAIN instead: the pool writes
     * it. Reads do without: their NOWAIT refuses a range with cached pages, and nothing in a
     * direct read of allocated blocks waits there but the device queue. */
    cb.aio_rw_flags = write ? RWF_NOWAIT : 0;
    cb.aio_fildes = (uint32_t)q->fd;
    cb.aio_buf = (uint64_t)(uintptr_t)q->buf;
    cb.aio_nbytes = q->len;
    cb.aio_offset = q->off;
    cb.aio_flags = IOCB_FLAG_RESFD;
    cb.aio_resfd = (uint32_t)a->evfd;
    a->pend[a->npend++] = &cb;
    a->inflight++;
    io->nwaiters++;
    weft__wait wr = {.kind = WEFT__WAIT_IO,
                     .uncancellable = true,
                     .what = (const void *)(intptr_t)q->fd,
                     .deadline = WEFT_FOREVER,
                     .done = op_done,
                     .done_arg = &op,
                     .waker = &op.waker};
    weft__park_until(w, &wr);
    /* The worker that completed it is the one it was queued on: the task was parked there (an
     * I/O wait is not movable), so io is still that worker's. */
    io->nwaiters--;
    if (op.res == REFUSED || (write && op.res == -EAGAIN))
        return WEFT__AIO_POOL; /* nothing done: a NOWAIT refusal comes before any data moves */
    return (ssize_t)op.res;
}

/* Completes the read of cb with res and wakes its task. */
static void complete(weft__aio *a, struct iocb *cb, int64_t res)
{
    aio_op *op = (aio_op *)(uintptr_t)cb->aio_data;
    op->res = res;
    op->done = 1;
    a->inflight--;
    weft_waker_wake(op->waker);
}

bool weft__aio_flush(weft__io *io, weft__aio *a)
{
    bool woke = false;
    /* A read whose fd was closed (weft_close, weft_fd_forget) since it was queued gets -EBADF,
     * as a waiter of a closed fd does: its number may name another file by now, even a pipe
     * whose read would block the worker's thread inside io_submit. */
    unsigned n = 0;
    for (unsigned k = 0; k < a->npend; k++) {
        struct iocb *cb = a->pend[k];
        const aio_op *op = (const aio_op *)(uintptr_t)cb->aio_data;
        if (weft__fdtable_gen(io, (int)cb->aio_fildes) != op->gen) {
            complete(a, cb, -EBADF);
            woke = true;
        } else {
            a->pend[n++] = cb;
        }
    }
    a->npend = n;
    unsigned i = 0;
    while (i < a->npend) {
        int r = weft__sys_io_submit(&io->w->sys, a->ctx, (long)(a->npend - i), &a->pend[i]);
        if (r > 0) {
            i += (unsigned)r; /* the first r were taken; the next one's error comes next */
            continue;
        }
        /* The first one left was not taken. EAGAIN: no room in the kernel; EINVAL and the
         * like: the pool's pread will say what is wrong (a misaligned buffer is EINVAL there
         * too). EBADF is the fd's own answer. */
        complete(a, a->pend[i], r == -EBADF ? -EBADF : REFUSED);
        woke = true;
        i++;
    }
    a->npend = 0;
    return woke;
}

void weft__aio_reap(weft__io *io, weft__aio *a)
{
    weft__sys *sys = &io->w->sys;
    uint64_t v;
    /* Reset the counter first: a completion after the read below rings it again. */
    while (weft__sys_read(sys, a->evfd, &v, sizeof v) > 0)
        ;
    struct io_event evs[64];
    int n;
    do {
        n = weft__sys_io_getevents(sys, a->ctx, 64, evs);
        for (int i = 0; i < n; i++)
            complete(a, (struct iocb *)(uintptr_t)evs[i].obj, evs[i].res);
    } while (n == 64);
    if (n < 0) {
        /* Completions may be left in the ring, and the counter was reset: ring it again so
         * that the next poll comes back for them. */
        uint64_t one = 1;
        weft__sys_write(NULL, a->evfd, &one, sizeof one);
    }
}

void weft__aio_fini(weft__io *io, weft__aio *a)
{
    if (a->state == 1) {
        weft__sys_io_destroy(a->ctx);
        weft__sys_close(&io->w->sys, a->evfd);
    }
    weft__aio_init(a);
}
