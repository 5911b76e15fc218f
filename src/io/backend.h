/* The I/O seam. net.c and fs.c describe each operation as one request (weft__ioreq) and hand
 * it to weft__io_submit(), once per attempt; the backend behind the worker runs it to
 * completion for the current task. A readiness backend (epoll) makes the system call through
 * the sys layer and waits on the fd table on EAGAIN; a completion backend (io_uring) runs the
 * operation on its ring. Both send regular-file operations they cannot do well to the
 * blocking pool (exec.c).
 *
 * Layers, top down: reactor.c (the worker's calls, weft_fd_*) -> a backend (epoll.c,
 * uring.c) -> exec.c (one plain system call per request) and fdtable.c (per-fd readiness and
 * waiters) -> sys.c. Nothing calls upwards. */
#ifndef WEFT_IO_BACKEND_H
#define WEFT_IO_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../core.h"
#include "../probes.h"
#include "../sys.h"
#include "io.h"

/* What a request does. Fields an op does not list are ignored. */
enum {
    WEFT__IO_READ,     /* fd, buf, len, off (-1: the file position) */
    WEFT__IO_WRITE,    /* fd, buf, len, off */
    WEFT__IO_READV,    /* fd, iov, iovcnt */
    WEFT__IO_WRITEV,   /* fd, iov, iovcnt */
    WEFT__IO_RECV,     /* fd, buf, len, flags */
    WEFT__IO_SEND,     /* fd, buf, len, flags (MSG_NOSIGNAL added) */
    WEFT__IO_RECVMSG,  /* fd, msg, flags */
    WEFT__IO_SENDMSG,  /* fd, msg, flags (MSG_NOSIGNAL added) */
    WEFT__IO_ACCEPT,   /* fd, addr, addrlen: result is the new fd (non-blocking, cloexec) */
    WEFT__IO_CONNECT,  /* fd, addr, alen: 0 once connected, or the connection's error */
    WEFT__IO_POLL,     /* fd, flags = WEFT_READABLE|WEFT_WRITABLE: result is the ready mask */
    WEFT__IO_OPEN,     /* path, flags (O_CLOEXEC added), mode: result is the fd */
    WEFT__IO_FSYNC,    /* fd */
    WEFT__IO_STAT,     /* path, st */
    WEFT__IO_SENDFILE, /* fd = out, fd2 = in, offp (NULL: in's file position), len: one
                        * transfer of at most len bytes; result is its byte count */
    WEFT__IO_SPLICE,   /* io_uring only: fd, fd2 = a pipe end, off (fd's offset or -1),
                        * len, flags = WEFT__SPLICE_*: one splice(2) */
    /* The file-system tree (fs.c): named by path, no fd. Ring operations where the kernel
     * has them (uring.c probes), else blocking-pool calls. */
    WEFT__IO_MKDIR,     /* path, mode */
    WEFT__IO_UNLINK,    /* path, flags (0, or AT_REMOVEDIR: rmdir) */
    WEFT__IO_RENAME,    /* path (from), path2 (to), flags (renameat2's) */
    WEFT__IO_LINK,      /* path (from), path2 (to) */
    WEFT__IO_SYMLINK,   /* path (the target), path2 (the link made) */
    WEFT__IO_READLINK,  /* path, out, len: blocking pool only */
    WEFT__IO_TRUNCATE,  /* path, off (the new length): blocking pool only */
    WEFT__IO_FTRUNCATE, /* fd, off (the new length): blocking pool only */
    WEFT__IO_GETDENTS,  /* fd (a directory), buf, len: one getdents64; blocking pool only */
};

/* WEFT__IO_SPLICE directions. */
enum { WEFT__SPLICE_TO_PIPE = 0, WEFT__SPLICE_FROM_PIPE = 1 };

/* Request options. */
enum {
    WEFT__IOQ_FILE = 0x1, /* a regular-file operation: readiness means nothing for it */
};

typedef struct weft__ioreq {
    int op;
    int fd;
    int flags;
    unsigned opts; /* WEFT__IOQ_* */
    int fd2;
    int64_t off;
    size_t len;
    /* The fields no op uses together share memory: the request is built on the caller's
     * stack at every call, and a small one is a few stores and one cache line there. */
    union {
        void *buf;
        const struct iovec *iov;
        struct msghdr *msg;
        struct sockaddr *addr;
        const char *path;
    };
    union {
        int iovcnt;
        /* WEFT__IO_SPLICE on io_uring: the caller's fd as given to the kernel, a duplicate
         * of fd made for the transfer. The kernel looks a splice's fds up by number when
         * an io-wq thread starts it, which may be after weft_close and the number's reuse;
         * fd itself keeps the generation checks. */
        int kfd;
        socklen_t *addrlen;
        socklen_t alen;
        mode_t mode;
        struct stat *st;
        off_t *offp;
        const char *path2;
        char *out;
    };
} weft__ioreq;

/* Whether a request names a file by path, its fd field unused (no fd to classify or
 * forget). */
static inline bool weft__io_by_path(const weft__ioreq *q)
{
    switch (q->op) {
    case WEFT__IO_OPEN:
    case WEFT__IO_STAT:
    case WEFT__IO_MKDIR:
    case WEFT__IO_UNLINK:
    case WEFT__IO_RENAME:
    case WEFT__IO_LINK:
    case WEFT__IO_SYMLINK:
    case WEFT__IO_READLINK:
    case WEFT__IO_TRUNCATE:
        return true;
    default:
        return false;
    }
}

/* A receive or send the caller asked not to wait (MSG_DONTWAIT, the system call's one
 * non-blocking attempt): its EAGAIN is the answer, never a reason to wait for readiness. Both
 * backends test it where they would wait, so that the flag means the same on each (on
 * io_uring, bytes already held by the armed receive are still returned: uring.c's recv_flags;
 * a send behind one still in flight is -EAGAIN: send_after; and the attempt itself is a plain
 * system call, not a ring operation that parks: ring_run, send_after). Only these ops: others use
 * `flags` for other things (open's O_CREAT is MSG_DONTWAIT's bit). */
static inline bool weft__io_nowait(const weft__ioreq *q)
{
    /* The flag first: clear on almost every request, it settles the test in one branch. */
    return (q->flags & MSG_DONTWAIT) && (q->op == WEFT__IO_RECV || q->op == WEFT__IO_RECVMSG ||
                                         q->op == WEFT__IO_SEND || q->op == WEFT__IO_SENDMSG);
}

/* The direction a request waits for when the kernel says EAGAIN. */
static inline int weft__io_dir(const weft__ioreq *q)
{
    switch (q->op) {
    case WEFT__IO_READ:
    case WEFT__IO_READV:
    case WEFT__IO_RECV:
    case WEFT__IO_RECVMSG:
    case WEFT__IO_ACCEPT:
        return WEFT_READABLE;
    case WEFT__IO_SPLICE:
        return q->flags == WEFT__SPLICE_TO_PIPE ? WEFT_READABLE : WEFT_WRITABLE;
    default:
        return WEFT_WRITABLE;
    }
}

typedef struct weft__io_ops {
    const char *name;
    /* Sets up io->backend. Returns 0 or -errno. WEFT_COLD. */
    int (*init)(weft__io *io);
    void (*fini)(weft__io *io);
    /* Waits up to timeout_ns (-1 forever, 0 not at all) and wakes the tasks whose fds or
     * operations are ready, taking at most about max_events (>= 1) events from the kernel:
     * the others wait there, in its order, for the next poll. Returns the number of events
     * or -errno. Worker thread. */
    int (*poll)(weft__io *io, int64_t timeout_ns, int max_events);
    /* Makes a poll in progress return soon. Any thread; async-signal-safe. */
    void (*notify)(weft__io *io);
    /* Runs `req` for the current (stackful, blocking) task, parking as long as it needs.
     * Returns the operation's result (>= 0 or -errno), -ETIMEDOUT, -ECANCELED, or -EBADF if
     * the fd was forgotten meanwhile. The caller's buffers stay in use until it returns,
     * which it does only once the kernel is done with them. Worker thread. */
    ssize_t (*submit)(weft__io *io, const weft__ioreq *req, int64_t deadline);
    /* Forgets fd before it is closed: stops watching it, cancels operations in flight.
     * The fd table's record is reset by the caller. `fd_held`: the number still names the
     * file it named when the forget was asked for (a forget on the caller's own worker, or
     * one a close sends, which closes the number only after every worker forgot it), so the
     * backend may still use it now; false for another worker's weft_fd_forget, whose caller
     * may have closed the number and got it back for another file meanwhile. Worker thread. */
    void (*forget)(weft__io *io, int fd, bool fd_held);
    /* Waits, parking the current task, until the writes the backend took for fd without
     * waiting (io_uring's write-behind sends) are over, or until the deadline they were
     * written with; weft_close calls it from a task before the forget. NULL: the backend
     * writes nothing behind. Worker thread. */
    void (*flush)(weft__io *io, int fd);
    /* Told of every weft_shutdown(fd, SHUT_WR or SHUT_RDWR) (writes must not be taken
     * behind any more); takes shutdown(fd, SHUT_WR) to run once the writes taken are over.
     * Returns false when none is in flight (the caller shuts down now). NULL: never. Worker
     * thread. */
    bool (*defer_shutdown)(weft__io *io, int fd);
    /* Whether a read of fd would return at once from what the backend holds for it (bytes
     * its armed receive took, their end, or an error), which a poll(2) of the fd cannot see:
     * weft__io_fd_ready_now's look. NULL: the backend holds nothing. Worker thread. */
    bool (*held)(weft__io *io, int fd);
    /* Whether the backend's own receive takes fd's bytes (armed, or holding some): a reader
     * must then go through its reads, not splice(2) the socket, which would miss what it holds
     * and race it for the rest. NULL: never. Worker thread. */
    bool (*takes_reads)(weft__io *io, int fd);
} weft__io_ops;

/* What an fd is, decided once when weft first meets it (weft__fdtable_kind) and kept until
 * it is forgotten. 0: not known yet. */
enum {
    WEFT__FD_STREAM = 1, /* a SOCK_STREAM socket or a pipe: a short read empties it */
    WEFT__FD_POLLED = 2, /* any other pollable fd (datagram and seqpacket sockets, ttys and
                          * other character devices, eventfd, signalfd...): reads take one
                          * record each, so a short read says nothing about what is left */
    WEFT__FD_FILE = 3,   /* a regular file, block device or directory: never waits for
                          * readiness; file operations on it go to the blocking pool (epoll) */
};

/* A task waiting for one direction of an fd: on the task's stack, queued in the record.
 * Only the first of a queue is woken by an edge; when it leaves having used one, the next
 * is woken in turn (see fdtable.c). */
typedef struct weft__fdwaiter {
    weft_waker waker; /* refreshed before each park */
    struct weft__fdwaiter *next;
} weft__fdwaiter;

/* A FIFO of waiters. The record holds only these two pointers and no node points back at
 * the record, so the table may move (grow) while tasks wait. */
typedef struct weft__fdq {
    weft__fdwaiter *head, *tail;
} weft__fdq;

/* Per-fd readiness state. owner: worker. */
typedef struct weft__fdrec {
    weft__fdq rd, wr; /* the tasks waiting for each direction, in arrival order */
    uint32_t gen;     /* bumped when the fd is forgotten, so parked waiters notice */
    uint8_t watched;  /* registered with the readiness backend */
    uint8_t ready;    /* WEFT_READABLE|WEFT_WRITABLE edges not yet consumed */
    uint8_t drained;  /* a short read emptied a stream; no readable edge since */
    uint8_t hup;      /* the peer hung up or the fd errored: sticky, no edge follows it */
    uint8_t kind;     /* WEFT__FD_*, 0 until classified */
    uint8_t nowait;   /* a regular file without O_DIRECT: reads try the page cache first */
    uint8_t sock;     /* a socket (with kind WEFT__FD_STREAM: a stream socket, not a pipe) */
    uint8_t direct;   /* a regular file opened O_DIRECT: its reads at an offset go to Linux
                       * AIO on epoll (aio.c) */
    uint8_t wshut;    /* weft_shutdown closed the write half: io_uring sends nothing behind
                       * (its writes get the kernel's answer), whenever its first read came */
} weft__fdrec;

struct weft__io {
    const weft__io_ops *ops;
    void *backend; /* the backend's private state */
    weft__worker *w;
    weft__fdrec *fds; /* indexed by fd, grown on demand (fdtable.c) */
    size_t nfds;
    size_t nwaiters; /* tasks parked on an fd or an operation */
    /* Set while the backend holds operations it has not handed to the kernel yet (io_uring:
     * set at every SQE prepared, and by a poll that handed over only part of the SQ, its
     * submissions paced to the nearest timer, uring_pace.h): only a poll hands them over,
     * so ticks poll while it is set, as for waiters (loop.c); the poll that leaves nothing
     * behind clears it. owner: the worker's driver. */
    bool held;
    /* The runtime's pages of which workers used each fd (fdshare.c), or NULL in a runtime of
     * one worker; fixed. */
    _Atomic(_Atomic uint64_t *) *fdshare;
    unsigned w_index; /* w->index, for the mask's bit */
    /* Set before init: the worker may change threads (the runtime's hand-off is on, so
     * relief.c may hand it to another thread). The backend then avoids what ties it to the
     * thread that made it, at a price (uring.c). A worker with requests_tied_to_thread and
     * not movable is bound to its thread: only it may poll or submit (handoff.c). */
    bool movable;
    /* Set by init: a request's completion work runs on the thread that submitted it, and
     * the request is cancelled when that thread exits (io_uring), so a thread that drove this
     * worker must not exit before the runtime ends, nor sleep long in the kernel while
     * another drives it (in_place.c). */
    bool requests_tied_to_thread;
};

/* The most one read or write moves in the kernel (Linux's MAX_RW_COUNT: INT_MAX rounded
 * down to a page): a longer read returns that much, as read(2) does. */
#define WEFT__MAX_RW ((size_t)0x7ffff000)

/* ---- Fds shared between workers (fdshare.c) ------------------------------------------ */

/* fds per page of the runtime's masks, and pages: fds from 2^20 up are not tracked. */
#define WEFT__FDSHARE_PAGE  4096u
#define WEFT__FDSHARE_PAGES 256u

/* Each fd has two masks in its page: the workers that did I/O on it (`used`: io_uring's
 * sends behind want no other), and the workers that keep a record of it without I/O (`known`:
 * weft_socket, weft_accept and weft_server's hand-over record the kind on the worker that made
 * or took the fd). A close forgets the fd on the workers of either mask. */
#define WEFT__FDSHARE_USED(fd)  (2u * ((unsigned)(fd) % WEFT__FDSHARE_PAGE))
#define WEFT__FDSHARE_KNOWN(fd) (2u * ((unsigned)(fd) % WEFT__FDSHARE_PAGE) + 1u)

/* Marks fd as used by w. */
void weft__fdshare_add(weft__worker *w, int fd);
/* Sets (known) or clears w's mark of keeping a record of fd without I/O. Worker thread. */
void weft__fdshare_know(weft__worker *w, int fd, bool known);
/* Forgets fd on every other worker that used or knows it (their records reset, their waiters
 * woken with -EBADF). From a task it waits for all of them and returns 0; elsewhere it returns
 * 1 if it left `close_after`'s close to the last of them (the caller must not close), else 0.
 * Worker thread. */
int weft__fdshare_forget_others(weft__worker *w, int fd, bool close_after);
/* weft_shutdown of fd's write half from a task of w: every other worker that used fd defers
 * it behind a send of its own still in flight (io_uring), or notes it, so that it sends
 * nothing behind from then on. Waits for all of them; returns how many deferred it (they
 * shut the write half when their send is over: the caller must not, yet). Worker thread. */
unsigned weft__fdshare_shutdown_others(weft__worker *w, int fd);

/* Marks fd as used by io's worker, in a runtime of several workers: a load and a test once
 * it is marked. */
static inline void weft__fdshare_note(weft__io *io, int fd)
{
    if (__builtin_expect(io->fdshare == NULL, 1) || fd < 0 ||
        (unsigned)fd / WEFT__FDSHARE_PAGE >= WEFT__FDSHARE_PAGES)
        return;
    _Atomic uint64_t *page =
        atomic_load_explicit(&io->fdshare[(unsigned)fd / WEFT__FDSHARE_PAGE], memory_order_acquire);
    uint64_t bit = 1ull << (io->w_index % 64);
    if (!page || !(atomic_load_explicit(&page[WEFT__FDSHARE_USED(fd)], memory_order_relaxed) & bit))
        weft__fdshare_add(io->w, fd);
}

/* Whether no worker but io's has used fd (always, in a runtime of one worker). An fd past
 * the pages is not tracked: false. */
static inline bool weft__fdshare_only(const weft__io *io, int fd)
{
    if (__builtin_expect(io->fdshare == NULL, 1))
        return true;
    if (fd < 0 || (unsigned)fd / WEFT__FDSHARE_PAGE >= WEFT__FDSHARE_PAGES)
        return false;
    _Atomic uint64_t *page =
        atomic_load_explicit(&io->fdshare[(unsigned)fd / WEFT__FDSHARE_PAGE], memory_order_acquire);
    /* Relaxed: another worker's bit seen late lets one more write go behind, the race weft.h
     * describes; nothing else is read through this load. A worker that only knows the fd
     * (made or accepted it) writes nothing: its mark does not count. */
    return page && atomic_load_explicit(&page[WEFT__FDSHARE_USED(fd)], memory_order_relaxed) ==
                       1ull << (io->w_index % 64);
}

/* Whether [buf, buf + len) runs past the user address space (or wraps), which read(2) and
 * its kin refuse with EFAULT before touching anything (access_ok on the whole range). The
 * ring is given at most MAX_RW_COUNT bytes and the buffered receives copy what came, and
 * preadv2 and Linux AIO clamp the length to MAX_RW_COUNT before they check the range: each
 * would write on past the caller's memory until a fault instead. The top is 47 bits on
 * x86-64 (56 for a buffer mapped above, with LA57) and 48 on aarch64 (52 above). */
static inline bool weft__io_range_faults(const void *buf, size_t len)
{
    uintptr_t b = (uintptr_t)buf, end = b + len;
    if (end < b)
        return true;
#if defined(__x86_64__)
    uintptr_t top =
        b < ((uintptr_t)1 << 47) ? ((uintptr_t)1 << 47) - 4096 : ((uintptr_t)1 << 56) - 4096;
#elif defined(__aarch64__)
    uintptr_t top = b < ((uintptr_t)1 << 48) ? ((uintptr_t)1 << 48) : ((uintptr_t)1 << 52);
#else
    uintptr_t top = UINTPTR_MAX;
#endif
    return end > top;
}

/* Internal event bit beside WEFT_READABLE/WEFT_WRITABLE: hang-up or error seen. */
#define WEFT__HUP 0x4

/* ---- The single entry point (reactor.c) ---------------------------------------------- */

/* Runs one attempt of `req` on the worker's backend (see weft__io_ops.submit). The caller
 * has checked that the current task may block. Inline: it is on every operation's path. */
static inline __attribute__((always_inline)) ssize_t
weft__io_submit(weft__worker *w, const weft__ioreq *req, int64_t deadline)
{
    WEFT_PROBE2(io_submit, req->fd, req->op);
    weft__fdshare_note(w->io, req->fd);
    return w->io->ops->submit(w->io, req, deadline);
}

/* ---- The fd table (fdtable.c) --------------------------------------------------------- */

/* Grows the table to hold fd, once the kernel confirms that fd is open (so that a garbage
 * number cannot grow it). Returns 0, -EBADF or -ENOMEM. */
int weft__fdtable_grow(weft__io *io, int fd);

/* fd's record, growing the table if needed. Returns 0, -EBADF or -ENOMEM. The pointer is good
 * until the next park (the table may move meanwhile). */
static inline int weft__fdtable_get(weft__io *io, int fd, weft__fdrec **out)
{
    if (__builtin_expect((size_t)fd >= io->nfds, 0)) {
        int r = weft__fdtable_grow(io, fd);
        if (r < 0)
            return r;
    }
    *out = &io->fds[fd];
    return 0;
}

/* Classifies fd at its first use (fstat, and SO_TYPE for a socket) and sets O_NONBLOCK on
 * it unless it is a file (WEFT__FD_FILE). Returns the kind or -errno (-EBADF: not open). */
int weft__fdtable_classify(weft__io *io, int fd);

/* fd's kind (WEFT__FD_*), classifying it at its first use. Returns the kind or -errno. */
static inline int weft__fdtable_kind(weft__io *io, int fd)
{
    if (__builtin_expect((size_t)fd < io->nfds && io->fds[fd].kind, 1))
        return io->fds[fd].kind;
    return weft__fdtable_classify(io, fd);
}
/* Current generation of fd's record (bumped when it is forgotten); 0 if it has none. */
uint32_t weft__fdtable_gen(weft__io *io, int fd);
/* Records edges reported by a readiness backend and wakes their waiters. */
void weft__fdtable_ready(weft__io *io, int fd, unsigned mask);
/* Whether tasks are queued waiting for fd in any direction of `dirs`. Owner thread. */
bool weft__fdtable_waited(const weft__io *io, int fd, unsigned dirs);
/* Drops the edges of `dirs` recorded for fd and not yet taken by a wait: weft_fd_wait has just
 * asked the fd itself (poll), whose answer supersedes them. Only with nobody queued in those
 * directions (an edge handed on to a queued waiter is that waiter's). Owner thread. */
void weft__fdtable_drop_edges(weft__io *io, int fd, unsigned dirs);
/* fd was just seen readable by a look at the fd itself (poll): it is no longer drained (a
 * short read emptied it and no edge came since), so the next read tries the call instead of
 * waiting for an edge the loop has not taken yet. Owner thread. */
void weft__fdtable_undrain(weft__io *io, int fd);
/* weft__fdtable_wait's two halves. `alone`: the commonest wait (one direction `dir`, rec's
 * queue in it empty and no edge recorded, no deadline), with a small frame of its own, which
 * matters because under a backlog each parked task's frames are cold lines its resume walks
 * back through. `queued`: every other wait. */
int weft__fdtable_wait_alone(weft__io **iop, weft__fdrec *rec, int fd, unsigned dir);
int weft__fdtable_wait_queued(weft__io **iop, int fd, int events, int64_t deadline);

/* Readiness wait on a watched fd: consumes and returns the ready part of `events`
 * (WEFT_READABLE|WEFT_WRITABLE), parking until an edge, the deadline or cancellation.
 * Several tasks may wait in one direction: they queue, and are served in arrival order.
 * Returns the mask, -EBADF (forgotten meanwhile), -ETIMEDOUT or -ECANCELED. Inline, so that
 * the common wait is one call, whose frame is the only one it leaves on the parked stack
 * (measured: 2 cache misses a message fewer at 5,000 connections than one function with
 * both halves, whose frame was 224 bytes). */
/* Whether a wait for `events` on rec until `deadline` is the common one that
 * weft__fdtable_wait_alone serves: one direction, nobody queued in it, no edge recorded, no
 * deadline. */
static inline bool weft__fdtable_alone(const weft__fdrec *rec, int events, int64_t deadline)
{
    return deadline == WEFT_FOREVER && (events == WEFT_READABLE || events == WEFT_WRITABLE) &&
           !(events == WEFT_READABLE ? rec->rd.head : rec->wr.head) &&
           !(rec->ready & (unsigned)events);
}

static inline int weft__fdtable_wait(weft__io **iop, int fd, int events, int64_t deadline)
{
    weft__io *io = *iop;
    if ((size_t)fd < io->nfds && weft__fdtable_alone(&io->fds[fd], events, deadline))
        return weft__fdtable_wait_alone(iop, &io->fds[fd], fd, (unsigned)events);
    return weft__fdtable_wait_queued(iop, fd, events, deadline);
}
/* Forgets everything known about fd: a new generation, and its waiters are woken. */
void weft__fdtable_reset(weft__io *io, int fd);
/* The same for an fd number the kernel just handed out, skipped when there is nothing to
 * forget; `kind` (0: unknown) is what its creator knows it to be (non-blocking already). */
void weft__fdtable_fresh(weft__io *io, int fd, int kind);
void weft__fdtable_fini(weft__io *io);

/* ---- Plain execution (exec.c) --------------------------------------------------------- */

/* weft__io_exec(), the plain system call of a request, is inline in exec.h. */
/* The sys kind (WEFT__SYS_*) of the call `req` stands for, or -1 for a POLL. */
int weft__io_kind(const weft__ioreq *req);
/* Runs `req` on the blocking pool (EINTR retried there), for the current task. The call is
 * counted in (or failed by) w's sys record on the worker's thread before it is handed over.
 * Returns the call's result, or weft_blocking's -ETIMEDOUT/-ECANCELED/-ENOMEM. */
ssize_t weft__io_exec_blocking(weft__worker *w, const weft__ioreq *req, int64_t deadline);
/* A use of an fd by its number that may outlast a weft_close from another task (a pool job
 * of weft__io_exec_blocking, io_uring's sendfile splices): while it is registered, a close
 * leaves the number open, and the use's end closes it. On the user's stack; any thread. */
typedef struct weft__io_fduse {
    struct weft__io_fduse *next; /* exec.c's list of uses */
    int fd;
    bool close_pending; /* a weft_close came meanwhile: the last use of the number closes it */
} weft__io_fduse;
void weft__io_fduse_begin(weft__io_fduse *u, int fd);
/* Ends u, closing its fd if a close was left to it; w: the calling worker or NULL. */
void weft__io_fduse_end(weft__worker *w, weft__io_fduse *u);
/* close(2) of fd for weft_close, once every worker forgot it: at once, or, while uses of the
 * number are registered, by the last of them as it ends (the number stays the file's until
 * then, so none acts on a successor). Returns close's result, or 0 when left to a use. Any
 * thread. */
int weft__io_close_after_jobs(weft__sys *s, int fd);

extern const weft__io_ops weft__io_epoll;
#ifdef WEFT_HAVE_URING
extern const weft__io_ops weft__io_uring;
#endif

#endif
