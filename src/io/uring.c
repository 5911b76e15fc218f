/* The io_uring backend: one ring per worker, completion-based operations. A task prepares an
 * SQE whose user_data points at a completion record on its own stack, and parks; the loop
 * submits every SQE prepared during a tick with one io_uring_enter (in poll), reaps the
 * CQEs, and wakes their tasks. A deadline or a cancellation submits an async cancel and
 * waits for the operation's own CQE, because the kernel owns the caller's buffers until
 * then. An eventfd, polled by the ring, lets other threads wake a blocked worker.
 * Operations the kernel answers with -EAGAIN (non-blocking fds, on kernels that honour
 * O_NONBLOCK in the ring) are retried after a poll for readiness. weft_sendfile is two
 * splices through a pipe of the transfer's own (in_fd -> pipe -> out_fd), there being no
 * sendfile opcode. Every io_uring_enter weft makes goes through enter_ok(): counted in the worker's
 * sys record and, in test builds, subject to its fault plan; an injected failure fails every
 * operation that enter would have submitted, so no task waits for a completion that cannot
 * come. The parks of this backend are in run_op and (multishot reads) weft__fdtable_wait.
 * While a timer is armed, submissions are paced to its deadline (uring_pace.h): the kernel
 * runs sends inside the enter, and a timer due meanwhile waits for that enter to end.
 *
 * Paths that need a newer kernel, each probed at init with today's path as the fallback
 * (and each switched off in test builds by WEFT_URING_OFF, see features_off):
 * - SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG (6.1): completion work runs only when the
 *   worker reaps, in one batch; else COOP_TASKRUN|TASKRUN_FLAG (5.19); else neither.
 * - A registered ring fd (5.18): io_uring_enter skips the fd table lookup.
 * - A provided-buffer ring and multishot recv (6.0): a stream socket's reads are served from
 *   one receive armed for the connection's life (uring_bufs.c), so a read that finds bytes
 *   already delivered costs no park and no system call, and one that waits costs one park
 *   and no SQE. Without it, each read is one ring recv into the caller's buffer.
 * - mkdirat, unlinkat, renameat (5.11), symlinkat and linkat (5.15), each probed on its own:
 *   weft_fs_* on the ring; a call whose opcode is missing runs on the blocking pool. The
 *   kernel copies the path names when it takes the SQE, and run_op waits for the CQE anyway.
 * Writes are ring operations, batched into the tick's enter. A small write to a connection
 * whose receive is armed is sent behind (uring_send.h): copied, and not waited for, so an
 * echo costs one park (the read's) and almost no system calls; the next write to the fd, its
 * weft_close and its weft_shutdown come after the send. Other writes park until their CQE.
 * Trying the plain write first instead (one park and one system call per message, as on
 * epoll) measured about 2% more server CPU per message than two parks (docs/performance.md).
 * Left out, measured or considered: multishot accept (accept4 first already drains a
 * backlog with plain calls, and a task per accepted fd wants the fd at once); registered
 * (direct) files (weft's API hands out plain fds, which a direct descriptor is not); a
 * cross-thread wake through the ring (IORING_OP_MSG_RING needs a ring on the sending side,
 * which pool threads and foreign threads do not have; the eventfd stays). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "backend.h"
#include "exec.h"
#include "test_env.h"
#include "uring_bufs.h"
#include "uring_pace.h"
#include "uring_send.h"

#define RING_ENTRIES 1024          /* SQEs per tick before an early submit */
#define CQ_ENTRIES   16384         /* completions the ring holds before the kernel overflow list */
#define TAG_IGNORE   ((uint64_t)0) /* CQEs nobody waits for (cancel requests) */
/* The eventfd poll: an odd number, 1 | generation << 1 (real user_data are stack addresses,
 * 8-byte aligned, or TAG_RECV's). The generation changes when another thread drives a movable
 * ring (ur_poll): the poll is armed again from that thread, and a poll of an older generation
 * completes, whenever its thread runs the work, without being armed again. */
#define TAG_EVENTFD ((uint64_t)1)
static inline bool is_evfd_tag(uint64_t ud)
{
    return (ud & 1) && !(ud & ((uint64_t)1 << 63));
}
/* A multishot receive: bit 63 (never set in a user-space address), the fd's ring
 * generation (31 bits) in 32..62, the fd in 0..31. */
#define TAG_RECV ((uint64_t)1 << 63)
#define GEN_MASK WEFT__UBUF_GEN_MASK
/* A write-behind send (uring_send.h): bit 62 and the record's address; with bit 61, the poll
 * that waits for room after the send met a full socket (-EAGAIN). */
#define TAG_SEND      ((uint64_t)1 << 62)
#define TAG_SEND_POLL ((uint64_t)1 << 61)

/* Features probed at start-up; each one missing leaves today's path in its place. */
enum {
    FEAT_DEFER = 0x1,       /* IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN (6.1) */
    FEAT_COOP = 0x2,        /* IORING_SETUP_COOP_TASKRUN|TASKRUN_FLAG (5.19), without DEFER */
    FEAT_BUFRING = 0x4,     /* provided-buffer ring + multishot recv (6.0) */
    FEAT_REGRING = 0x8,     /* io_uring_register_ring_fd (5.18): enter skips the fd lookup */
    FEAT_PATHOPS = 0x10,    /* MKDIRAT, RENAMEAT, UNLINKAT (5.11), SYMLINKAT, LINKAT (5.15): the
                             * tree's calls on the ring; each also probed on its own (path_ops) */
    FEAT_SENDBEHIND = 0x20, /* small writes to stream sockets sent behind (uring_send.h):
                             * needs FEAT_BUFRING, whose receive follows the connection */
};

/* Where a completion lands: on the waiting task's stack. owner: worker thread. */
typedef struct uop {
    weft_waker waker; /* re-set before every park */
    int32_t res;
    int done;
} uop;

#define PIPE_BYTES (256 * 1024) /* sendfile's pipe: 4 ring round trips per MiB, if allowed */
#define PIPES_KEPT 16           /* empty pipes a worker keeps between transfers */

/* A pipe for one sendfile transfer at a time (ring_sendfile). */
typedef struct sf_pipe {
    int rd, wr;
    size_t cap; /* its capacity in bytes */
} sf_pipe;

typedef struct uring_state {
    struct io_uring ring;
    int evfd;
    int have_splice;     /* the kernel has IORING_OP_SPLICE: sendfile runs on the ring */
    bool unix_multishot; /* AF_UNIX stream sockets get multishot receives too: only in test
                          * builds, by WEFT_URING_UNIX_MULTISHOT (recv_buffered) */
    unsigned path_ops;   /* bit (op - WEFT__IO_MKDIR) set: that tree call runs on the ring,
                          * else on the blocking pool (FEAT_PATHOPS off, or an old kernel) */
    /* sendfile's pipes not in use, emptied, kept for the next transfers (at most
     * PIPES_KEPT). A transfer holds a pipe of its own from its first splice to its last:
     * two transfers of one worker interleave at every park, and through one pipe each would
     * send the other's bytes. */
    struct sf_pipe *pipes;
    unsigned npipes;
    weft__sys *sys;     /* the worker's record */
    weft__io *io;       /* the worker's I/O state, for completions that wake fd readers */
    unsigned feats;     /* FEAT_* in use */
    weft__ubufs bufs;   /* multishot receives' buffers (FEAT_BUFRING) */
    weft__usends sends; /* write-behind sends (FEAT_SENDBEHIND) */
    weft__upace pace;   /* submissions paced to the nearest timer (uring_pace.h) */
    /* A movable ring's eventfd poll: the thread that armed the current one, and its
     * generation (TAG_EVENTFD). The ring's driver only. */
    pthread_t evfd_thread;
    uint32_t evfd_gen;
    /* Whether this kernel's ring leaves the file position where it was after a write it cut
     * short (pos_after_short_write): 0 not known yet, 1 it does, -1 it moves it. */
    int8_t short_write_keeps_pos;
} uring_state;

static inline uint64_t recv_tag(int fd, uint32_t gen)
{
    return TAG_RECV | ((uint64_t)(gen & GEN_MASK) << 32) | (uint32_t)fd;
}

/* A multishot receive's completion (or its failed submission): hand it to the buffers and
 * wake the fd's readers if it brought them something. */
static struct io_uring_sqe *get_sqe_for_cancel(uring_state *s);

static void recv_complete(uring_state *s, uint64_t ud, int res, unsigned flags)
{
    int fd = (int)(uint32_t)ud;
    uint32_t gen = (uint32_t)(ud >> 32) & GEN_MASK;
    if (!weft__ubufs_complete(&s->bufs, fd, gen, res, flags))
        return;
    weft__fdtable_ready(s->io, fd, WEFT_READABLE);
    weft__ubuf_fd *f = &s->bufs.fds[fd];
    if (f->armed && !f->capped && f->nbufs >= WEFT__UBUF_FD_CAP) {
        /* A reader that does not keep up: stop the receive (its last CQE, -ECANCELED, only
         * clears `armed`); the read that empties the chain arms it again. A cancel that
         * finds it gone already answers -ENOENT, to nobody. */
        struct io_uring_sqe *c = get_sqe_for_cancel(s);
        if (c) {
            io_uring_prep_cancel64(c, f->inflight, 0);
            io_uring_sqe_set_data64(c, TAG_IGNORE);
            f->capped = 1;
        }
    }
}

static void send_complete(uring_state *s, uint64_t ud, int res);

/* Fails every operation waiting in the SQ before `end` (an SQ index: sqe_tail for all of
 * them, a paced enter's cut for those it would have submitted) with `err` and turns its SQE
 * into a no-op whose completion nobody waits for; those from `end` on stay for a later
 * enter. The eventfd poll and cancel requests stay as they are. */
static void fail_pending(uring_state *s, int err, unsigned end)
{
    struct io_uring_sq *sq = &s->ring.sq;
    /* end is fixed first: what a completion below prepares is not this call's */
    for (unsigned i = *sq->khead; i != end; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        uint64_t ud = sqe->user_data;
        if (ud == TAG_IGNORE || is_evfd_tag(ud))
            continue;
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
        if (ud & TAG_RECV) {
            recv_complete(s, ud, err, 0); /* no F_MORE: the receive is not armed */
            continue;
        }
        if (ud & (TAG_SEND | TAG_SEND_POLL)) {
            /* The send (or its wait) failed, for good: not an -EAGAIN that would prepare
             * another SQE while the SQ is being failed. */
            send_complete(s, ud & ~TAG_SEND_POLL, err == -EAGAIN ? -EIO : err);
            continue;
        }
        uop *op = (uop *)(uintptr_t)ud;
        op->res = err;
        op->done = 1;
        weft_waker_wake(op->waker);
    }
}

/* Accounts for one io_uring_enter about to be made that submits the SQ up to `end` (an SQ
 * index). Returns 0, or the planned fault after failing what the call would have submitted
 * (the call must then not be made). */
static int enter_ok_to(uring_state *s, unsigned end)
{
    int fault = weft__sys_enter(s->sys, WEFT__SYS_io_uring_enter);
    if (weft_unlikely(fault < 0))
        fail_pending(s, fault, end);
    return fault;
}

/* enter_ok_to for an enter that submits the whole SQ. */
static int enter_ok(uring_state *s)
{
    return enter_ok_to(s, s->ring.sq.sqe_tail);
}

static struct io_uring_sqe *get_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        /* The SQ ring is full: hand this batch over now. */
        if (enter_ok(s) == 0)
            io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    /* Only a poll hands it to the kernel: ticks make one while this is set (loop.c), even
     * with nobody waiting for I/O (a task that writes behind, then computes and yields). */
    s->io->held = true;
    return sqe;
}

/* An SQE for a cancel, which must go out (the canceller then waits for the operation's own
 * completion): the SQ is handed to the kernel directly, outside the fault plan, until one is
 * free. NULL only if the ring refuses submissions outright. */
static struct io_uring_sqe *get_sqe_for_cancel(uring_state *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    for (int i = 0; !sqe && i < 8; i++) {
        io_uring_submit(&s->ring);
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
    io_uring_sqe_set_data64(sqe, TAG_EVENTFD | (uint64_t)(s->evfd_gen & 0x7fffffffu) << 1);
    s->evfd_thread = pthread_self();
    return 0;
}

/* The opcodes weft needs; a kernel missing one makes weft fall back to epoll. */
static const int needed_ops[] = {
    IORING_OP_READ,   IORING_OP_WRITE,   IORING_OP_READV,    IORING_OP_WRITEV,
    IORING_OP_RECV,   IORING_OP_SEND,    IORING_OP_RECVMSG,  IORING_OP_SENDMSG,
    IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
    IORING_OP_OPENAT, IORING_OP_FSYNC,
};

/* The tree's calls the ring may run, each with the opcode the kernel must have. */
static const struct {
    int op, opcode;
} path_ring_ops[] = {
    {WEFT__IO_MKDIR, IORING_OP_MKDIRAT},     {WEFT__IO_UNLINK, IORING_OP_UNLINKAT},
    {WEFT__IO_RENAME, IORING_OP_RENAMEAT},   {WEFT__IO_LINK, IORING_OP_LINKAT},
    {WEFT__IO_SYMLINK, IORING_OP_SYMLINKAT},
};

/* The features a test build was told to go without (WEFT_URING_OFF, a list of "defer",
 * "coop", "bufring", "regring", "pathops", "sendbehind"), so that every fallback path runs under
 * test. Always none in other builds. */
WEFT_COLD static unsigned features_off(void)
{
#ifdef WEFT_TESTING
    static const struct {
        const char *name;
        unsigned feat;
    } names[] = {{"defer", FEAT_DEFER},     {"coop", FEAT_COOP},
                 {"bufring", FEAT_BUFRING}, {"regring", FEAT_REGRING},
                 {"pathops", FEAT_PATHOPS}, {"sendbehind", FEAT_SENDBEHIND}};
    const char *env = getenv("WEFT_URING_OFF");
    unsigned off = 0;
    for (size_t i = 0; env && i < sizeof names / sizeof names[0]; i++)
        if (strstr(env, names[i].name))
            off |= names[i].feat;
    return off;
#else
    return 0;
#endif
}

/* Creates the ring with the best task-running mode the kernel takes. DEFER_TASKRUN: the
 * kernel runs completion work only when this worker enters the ring to reap, batched, never
 * interrupting it in user space (the ring is only ever entered by its worker's driver, one
 * thread for a bound ring: other threads write the eventfd). COOP_TASKRUN: no IPI, the work runs at
 * the worker's next kernel exit. TASKRUN_FLAG with either: the kernel flags pending work in the SQ
 * ring, so a non-blocking tick enters only when there is some. */
WEFT_COLD static int ring_create(uring_state *s, unsigned off)
{
    static const struct {
        unsigned flags, feat;
    } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
         FEAT_DEFER},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, FEAT_COOP},
        {0, 0},
    };
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (modes[i].feat & off)
            continue;
        /* A CQ much larger than the SQ: every connection may have an operation in flight,
         * and a burst of completions beyond the CQ waits in the kernel's overflow list. */
        struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE | modes[i].flags,
                                         .cq_entries = CQ_ENTRIES};
        r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &params);
        if (r != -EINVAL)
            break; /* taken, or refused for a reason an older mode would not change */
    }
    for (size_t i = 0; r == 0 && i < sizeof modes / sizeof modes[0]; i++)
        if (s->ring.flags == (IORING_SETUP_CQSIZE | modes[i].flags))
            s->feats |= modes[i].feat;
    return r;
}

WEFT_COLD static int ur_init(weft__io *io)
{
    weft__sys *sys = &io->w->sys;
    uring_state *s = weft__calloc(io->w, 1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->sys = sys;
    s->io = io;
#ifdef WEFT_TESTING
    weft__upace_init(&s->pace, weft__test_env("WEFT_TEST_URING_SQE_NS", 1));
#else
    weft__upace_init(&s->pace, 0);
#endif
#ifdef WEFT_TESTING
    s->unix_multishot = getenv("WEFT_URING_UNIX_MULTISHOT") != NULL;
#endif
    unsigned off = features_off();
    /* A movable ring (the worker may be handed to another thread, relief.c) is entered by
     * more than one thread: no SINGLE_ISSUER (so no DEFER_TASKRUN), and no registered fd
     * (registered in one thread's table). COOP_TASKRUN stays: the completion work of the
     * requests a thread submitted runs on that thread, and after a hand-off that is the
     * thread a task holds. Asleep in a call, the kernel wakes it for the work (the call
     * restarts, or returns EINTR where it would for a signal); running, it does the work at
     * its next kernel entry, the timer tick at the latest (1/HZ). An IPI per completion
     * instead (no COOP) cost 20% more CPU per message (docs/performance.md). */
    if (io->movable)
        off |= FEAT_DEFER | FEAT_REGRING;
    int r = weft__sys_enter(sys, WEFT__SYS_io_uring_setup);
    if (r == 0)
        r = ring_create(s, off);
    if (r < 0) {
        weft__free(io->w, s);
        return r;
    }
    /* Optional features, each with today's path when missing. */
    if (!(off & FEAT_REGRING) && io_uring_register_ring_fd(&s->ring) == 1)
        s->feats |= FEAT_REGRING;
    if (!(off & FEAT_BUFRING) && weft__ubufs_init(&s->bufs, &s->ring, io->w) == 0)
        s->feats |= FEAT_BUFRING;
    weft__usends_init(&s->sends, io->w);
    if (!(off & FEAT_SENDBEHIND) && (s->feats & FEAT_BUFRING))
        s->feats |= FEAT_SENDBEHIND; /* it follows the connection through its receive */
    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    if (!probe)
        r = -ENOSYS;
    for (size_t i = 0; r == 0 && i < sizeof needed_ops / sizeof needed_ops[0]; i++)
        if (!io_uring_opcode_supported(probe, needed_ops[i]))
            r = -ENOSYS;
    /* Optional: without it, sendfile waits for readiness and calls sendfile(2). */
    s->have_splice = probe && io_uring_opcode_supported(probe, IORING_OP_SPLICE);
    /* Optional, each on its own: the tree's calls the ring lacks run on the blocking pool. */
    for (size_t i = 0;
         probe && !(off & FEAT_PATHOPS) && i < sizeof path_ring_ops / sizeof path_ring_ops[0]; i++)
        if (io_uring_opcode_supported(probe, path_ring_ops[i].opcode))
            s->path_ops |= 1u << (path_ring_ops[i].op - WEFT__IO_MKDIR);
    if (s->path_ops)
        s->feats |= FEAT_PATHOPS;
    if (probe)
        io_uring_free_probe(probe);
    if (r == 0 && !(s->ring.features & IORING_FEAT_EXT_ARG))
        r = -ENOSYS; /* needed for waits with a timeout in one enter */
    if (r == 0) {
        s->evfd = weft__sys_eventfd(sys, 0, EFD_NONBLOCK | EFD_CLOEXEC);
        r = s->evfd < 0 ? s->evfd : arm_eventfd(s);
    }
    if (r < 0) {
        if (s->evfd > 0)
            weft__sys_close(sys, s->evfd);
        io_uring_queue_exit(&s->ring);
        if (s->feats & FEAT_BUFRING)
            weft__ubufs_fini(&s->bufs, NULL);
        weft__free(io->w, s);
        return r;
    }
    io->backend = s;
    io->requests_tied_to_thread = true;
    return 0;
}

static void pipe_close(uring_state *s, const sf_pipe *p)
{
    weft__sys_close(s->sys, p->rd);
    weft__sys_close(s->sys, p->wr);
}

WEFT_COLD static void ur_fini(weft__io *io)
{
    uring_state *s = io->backend;
    if (!s)
        return;
    /* Sends written behind and not submitted yet go to the kernel: a task that wrote and
     * ended without weft_close (which waits for them) still has its bytes sent, as far as the
     * socket takes them now. */
    if (io_uring_sq_ready(&s->ring))
        io_uring_submit(&s->ring);
    io_uring_queue_exit(&s->ring); /* first: no receive may still fill a buffer */
    if (s->feats & FEAT_BUFRING)
        weft__ubufs_fini(&s->bufs, NULL);
    weft__usends_fini(&s->sends);
    weft__sys_close(s->sys, s->evfd);
    while (s->npipes)
        pipe_close(s, &s->pipes[--s->npipes]);
    weft__free(io->w, s->pipes);
    weft__free(io->w, s);
    io->backend = NULL;
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

/* Completions the kernel holds back until we enter: the overflow list, and (TASKRUN_FLAG)
 * completion work it deferred to this thread. The flags word is written by the kernel:
 * read once, relaxed (a flag seen late only delays the reap to the next tick). */
static inline bool kernel_has_work(const uring_state *s)
{
    return IO_URING_READ_ONCE(*s->ring.sq.kflags) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN);
}

/* ---- Submissions paced to the nearest timer (uring_pace.h) ------------------------------ */

/* The end (an SQ index) of the first n of the SQEs prepared, or more where the n-th is
 * linked to the next (a chain goes whole: a chain cut at a submission's end is failed), and
 * at least those the kernel was handed already (an earlier enter stopped short). */
static unsigned submit_cut(const uring_state *s, unsigned n)
{
    const struct io_uring_sq *sq = &s->ring.sq;
    unsigned head = *sq->khead, mask = *sq->kring_mask, tail = sq->sqe_tail;
    while (n < tail - head &&
           (sq->sqes[(head + n - 1) & mask].flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)))
        n++;
    unsigned cut = head + n;
    if ((int)(cut - sq->sqe_head) < 0)
        cut = sq->sqe_head; /* those are the kernel's already */
    return cut;
}

/* Hands the kernel the SQEs prepared up to `cut` (submit_cut); the rest stay in the SQ, in
 * order, for the next enter. liburing submits every SQE prepared, so its count of them
 * (sqe_tail, a field of its public struct io_uring) is lowered to the cut for the call and
 * put back after it: its own submit then does the rest, the SQ array's mapping (2.2) or the
 * tail's store (2.3 on) included. With `getevents` the enter runs the deferred completion
 * work too (liburing adds it anyway while some is pending). Returns what liburing's submit
 * returns: the SQEs submitted, or a negative errno. The caller made enter_ok_to(cut). */
static int submit_first(uring_state *s, unsigned cut, bool getevents)
{
    struct io_uring_sq *sq = &s->ring.sq;
    unsigned tail = sq->sqe_tail;
    sq->sqe_tail = cut;
    int r = getevents ? io_uring_submit_and_get_events(&s->ring) : io_uring_submit(&s->ring);
    sq->sqe_tail = tail;
    return r;
}

/* A paced enter while a timer is armed: at most as many of the prepared SQEs as fit before
 * the nearest deadline (at least one), timed for the pace's average. Returns what
 * submit_first returns, or the planned fault (enter_ok_to, `*faulted` set), which failed
 * the SQEs this enter would have submitted and only those: the rest stay for the next. */
static int submit_paced(uring_state *s, bool getevents, bool *faulted)
{
    weft__worker *w = s->io->w;
    unsigned ready = io_uring_sq_ready(&s->ring);
    unsigned n = ready ? weft__upace_fit(&s->pace, ready, weft__timers_first(&w->timers),
                                         weft__upace_now(&s->pace, w->now))
                       : 0;
    unsigned cut = submit_cut(s, n);
    int fault = enter_ok_to(s, cut);
    *faulted = fault < 0;
    if (fault < 0)
        return fault;
    int64_t t0 = weft__clock_ns();
    int r = submit_first(s, cut, getevents);
    weft__upace_record(&s->pace, r > 0 ? (unsigned)r : 0, t0, weft__clock_ns());
    return r;
}

/* Whether the SQEs prepared would take the kernel up to the nearest timer's deadline. Only
 * while a timer is armed. */
static bool pace_due(uring_state *s)
{
    weft__worker *w = s->io->w;
    return weft__upace_due(&s->pace, io_uring_sq_ready(&s->ring), weft__timers_first(&w->timers),
                           weft__upace_now(&s->pace, w->now));
}

/* Called after each operation is prepared: while a timer is armed, the SQEs go as soon as
 * the kernel would need until its deadline to run them (uring_pace.h). */
static inline void pace_submit(weft__io *io, uring_state *s)
{
    bool fault; /* a planned fault failed what the enter would have submitted, no more */
    if (weft_unlikely(io->w->timers.n) && pace_due(s))
        submit_paced(s, false, &fault);
}

static int ur_poll(weft__io *io, int64_t timeout_ns, int max_events)
{
    uring_state *s = io->backend;
    /* Another thread drives the worker now (a hand-off, or its end): the eventfd poll is
     * armed again from this thread, whose completion work the kernel runs when this thread
     * waits here. Left with the old thread, a doorbell would wait for that thread's next entry
     * into the kernel (a task spinning there: its timer tick). */
    if (s->io->movable && !pthread_equal(s->evfd_thread, pthread_self())) {
        s->evfd_gen++;
        if (arm_eventfd(s) < 0)
            s->evfd_gen--; /* no SQE: tried again at the next poll */
    }
    struct io_uring_cqe *cqe = NULL;
    int r = 0;
    /* While a timer is armed, SQEs that would take the kernel past its deadline go only as
     * far as it, without a wait: the loop comes back, fires the timer, then polls again. */
    bool paced = weft_unlikely(io->w->timers.n) && io_uring_sq_ready(&s->ring);
    if (paced && timeout_ns != 0 && !pace_due(s)) {
        /* They fit: one enter submits and waits, the wait shortened by their time (the
         * kernel starts a wait's timeout after the submission). */
        int64_t busy = (int64_t)io_uring_sq_ready(&s->ring) * s->pace.sqe_ns;
        if (timeout_ns > 0)
            timeout_ns = timeout_ns > busy ? timeout_ns - busy : 1;
        paced = false;
    }
    if (paced) {
        /* An injected failure fails what it would have submitted; reap what is there. */
        bool fault;
        r = submit_paced(s, true, &fault);
        if (fault)
            r = 0;
    } else if (timeout_ns == 0) {
        /* Enter the kernel only with something to submit, or completions parked in the
         * overflow list: those come back only through an enter with GETEVENTS, and under
         * sustained load the loop never blocks, so a plain submit would strand them. */
        if ((io_uring_sq_ready(&s->ring) || kernel_has_work(s)) && enter_ok(s) == 0)
            r = io_uring_submit_and_get_events(&s->ring);
    } else if (enter_ok(s) < 0) {
        /* Injected failure: what it would have submitted has failed; reap what is there. */
    } else if (timeout_ns < 0) {
        r = io_uring_submit_and_wait(&s->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / WEFT_SEC,
                                       .tv_nsec = timeout_ns % WEFT_SEC};
        r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) {
        io->held = io_uring_sq_ready(&s->ring) != 0; /* as below */
        return r;
    }
    unsigned head, n = 0, total = 0;
    int rearm = 0;
reap:
    n = 0;
    /* The CQEs there now, at most what max_events leaves (the rest stay in the CQ for the
     * next poll): the tail read once (acquire: the entries before it are written), where
     * liburing's io_uring_for_each_cqe reads it again, and recomputes the entry size, at
     * every entry. 16-byte entries: the ring is never made with IORING_SETUP_CQE32. Those a
     * completion below causes (a send's rest, a cancel) wait for the next poll. */
    unsigned tail = io_uring_smp_load_acquire(s->ring.cq.ktail);
    head = *s->ring.cq.khead;
    if (tail - head > (unsigned)max_events - total)
        tail = head + ((unsigned)max_events - total);
    for (; head != tail; head++) {
        cqe = &s->ring.cq.cqes[head & s->ring.cq.ring_mask];
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        n++;
        if (ud == TAG_IGNORE)
            continue;
        if (ud & TAG_RECV) {
            recv_complete(s, ud, cqe->res, cqe->flags);
            continue;
        }
        if (ud & TAG_SEND) {
            send_complete(s, ud, cqe->res);
            continue;
        }
        if (is_evfd_tag(ud)) {
            uint64_t v;
            while (weft__sys_read(s->sys, s->evfd, &v, sizeof v) > 0)
                ;
            if ((uint32_t)(ud >> 1) == (s->evfd_gen & 0x7fffffffu))
                rearm = 1; /* else an older thread's poll: the current one stays armed */
            continue;
        }
        uop *op = (uop *)(uintptr_t)ud;
        op->res = cqe->res;
        op->done = 1;
        weft_waker_wake(op->waker);
    }
    io_uring_cq_advance(&s->ring, n);
    total += n;
    if (total < (unsigned)max_events && io_uring_cq_has_overflow(&s->ring)) {
        /* More completions wait in the overflow list: bring them in now. */
        if (enter_ok(s) == 0) {
            io_uring_get_events(&s->ring);
            goto reap;
        }
    }
    if (rearm)
        arm_eventfd(s);
    /* SQEs a paced enter left in the SQ (or its own re-arm's) go at a later poll: the loop's
     * ticks make one while this is set, even with no task waiting (loop.c). */
    io->held = io_uring_sq_ready(&s->ring) != 0;
    return (int)total;
}

static void ur_notify(weft__io *io)
{
    uring_state *s = io->backend;
    uint64_t one = 1;
    /* Any thread: NULL record, uncounted. EAGAIN: the counter is already non-zero. */
    weft__sys_write(NULL, s->evfd, &one, sizeof one);
}

/* The most one read or write takes in the kernel (Linux's MAX_RW_COUNT, INT_MAX rounded down
 * to a page). An SQE's length is 32 bits: a larger request would be cut to its low bits (4 GiB
 * to 0), so each operation asks for at most this and the API's loops do the rest. */
#define MAX_RW_COUNT 0x7ffff000u

static inline unsigned rw_len(size_t len)
{
    return len > MAX_RW_COUNT ? MAX_RW_COUNT : (unsigned)len;
}

static void prep(struct io_uring_sqe *sqe, const weft__ioreq *q)
{
    uint64_t off = q->off < 0 ? (uint64_t)-1 : (uint64_t)q->off;
    unsigned len = rw_len(q->len);
    switch (q->op) {
    case WEFT__IO_READ:
        io_uring_prep_read(sqe, q->fd, q->buf, len, off);
        break;
    case WEFT__IO_WRITE:
        io_uring_prep_write(sqe, q->fd, q->buf, len, off);
        break;
    case WEFT__IO_READV:
        io_uring_prep_readv(sqe, q->fd, q->iov, (unsigned)q->iovcnt, off);
        break;
    case WEFT__IO_WRITEV:
        io_uring_prep_writev(sqe, q->fd, q->iov, (unsigned)q->iovcnt, off);
        break;
    case WEFT__IO_RECV:
        io_uring_prep_recv(sqe, q->fd, q->buf, len, q->flags);
        break;
    case WEFT__IO_SEND:
        io_uring_prep_send(sqe, q->fd, q->buf, len, q->flags | MSG_NOSIGNAL);
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
    case WEFT__IO_MKDIR:
        io_uring_prep_mkdirat(sqe, AT_FDCWD, q->path, q->mode);
        break;
    case WEFT__IO_UNLINK:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, q->path, q->flags);
        break;
    case WEFT__IO_RENAME:
        io_uring_prep_renameat(sqe, AT_FDCWD, q->path, AT_FDCWD, q->path2, (unsigned)q->flags);
        break;
    case WEFT__IO_LINK:
        io_uring_prep_linkat(sqe, AT_FDCWD, q->path, AT_FDCWD, q->path2, 0);
        break;
    case WEFT__IO_SYMLINK:
        io_uring_prep_symlinkat(sqe, q->path, AT_FDCWD, q->path2);
        break;
    case WEFT__IO_SPLICE:
        /* kfd, not fd: the kernel takes a splice's files by number only when its io-wq
         * thread starts it (ring_sendfile) */
        if (q->flags == WEFT__SPLICE_TO_PIPE)
            io_uring_prep_splice(sqe, q->kfd, q->off, q->fd2, -1, len, 0);
        else
            io_uring_prep_splice(sqe, q->fd2, -1, q->kfd, -1, len, 0);
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
    pace_submit(io, s);
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
        struct io_uring_sqe *c;
        while ((c = get_sqe_for_cancel(s)) == NULL) {
            /* The ring takes nothing now: let the loop reap completions, then try again. */
            weft__yield(w);
            w = weft__worker_task(w)->worker;
        }
        io_uring_prep_cancel64(c, (uint64_t)(uintptr_t)&op, 0);
        io_uring_sqe_set_data64(c, TAG_IGNORE);
        wr.uncancellable = true;
        weft__park_until(w, &wr);
    }
    io->nwaiters--;
    return op.res;
}

/* Waits until fd has room to write, a hang-up or an error, without the ring's POLLRDHUP:
 * through an epoll instance of the wait's own, whose readability the ring polls. Only for a
 * socket whose peer has shut its side down (ring_run), so three more system calls a wait
 * are no matter. 0, -ETIMEDOUT, -ECANCELED or -errno. */
WEFT_NOINLINE static int wait_writable_apart(weft__io *io, int fd, int64_t deadline)
{
    int ep = weft__sys_epoll_create(&io->w->sys, EPOLL_CLOEXEC);
    if (ep < 0)
        return ep;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    int r = weft__sys_epoll_ctl(&io->w->sys, ep, EPOLL_CTL_ADD, fd, &ev);
    if (r == 0) {
        weft__ioreq pq = {.op = WEFT__IO_POLL, .fd = ep, .flags = WEFT_READABLE};
        int why = 0;
        r = run_op(io, &pq, deadline, &why);
        r = why ? why : r < 0 ? r : 0;
    }
    weft__sys_close(&io->w->sys, ep); /* the task's worker's: it is bound to it (ur_submit) */
    return r;
}

WEFT_NOINLINE static ssize_t plain_run(weft__io *io, const weft__ioreq *q, int64_t deadline);

/* ring_run's receive that does not wait (below), out of line: one branch on ring_run's path.
 * Inline, its call made GCC split ring_run in two, 10 instructions more on every ring
 * operation (callgrind). */
static WEFT_NOINLINE ssize_t ring_run_nowait(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    int kind = weft__fdtable_kind(io, q->fd);
    return kind < 0 ? kind : plain_run(io, q, deadline);
}

/* Runs q on the ring until it is neither -EAGAIN nor withdrawn: the part of every ring
 * operation after its preparation. */
static ssize_t ring_run(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    /* A receive asked not to wait (MSG_DONTWAIT; MSG_ERRQUEUE and MSG_OOB, which net.c turns
     * into it; sends never come here with it: send_after) is the plain system call, once: its
     * answer, EAGAIN included, is the call's whatever the deadline, as on epoll. A ring
     * operation parked the task for the ring's round trip, and the worker's other tasks ran
     * before a call that never waits returned. The plain call reads the socket as the ring's
     * receive did, so the armed multishot receive's held bytes keep their order as before:
     * recv_flags returns them first and comes here only when none are held, or for what the
     * socket alone has (the error queue, the urgent byte); a socket that receive does not
     * read holds none. Classified first (made non-blocking), as below; the plain call takes
     * its own fault plan (weft__sys). */
    if (weft_unlikely(weft__io_nowait(q)))
        return ring_run_nowait(io, q, deadline);
        /* Test builds: the fault plan of the call the operation stands for, taken as the first
         * run's result (so that a planned EAGAIN goes through the readiness path). */
#ifdef WEFT_TESTING
    int fault = weft__sys_fault(&io->w->sys, weft__io_kind(q));
#else
    int fault = 0; /* and no kind lookup on every ring operation */
#endif
    bool has_fd = !weft__io_by_path(q);
    uint32_t gen = 0;
    if (has_fd) {
        /* The first operation on an fd classifies it and makes it non-blocking, as on
         * epoll: one rule for both backends. */
        int kind = weft__fdtable_kind(io, q->fd);
        if (kind < 0)
            return kind;
        gen = io->fds[q->fd].gen;
    }
    for (;;) {
        int why = 0;
        int res = fault < 0 ? fault : run_op(io, q, deadline, &why);
        fault = 0;
        /* The kernel's own restart codes (ERESTARTSYS 512 .. ERESTART_RESTARTBLOCK 516) leak
         * out of an io-wq operation cancelled while it blocked: an interrupted call. */
        if (res <= -512 && res >= -516)
            res = -EINTR;
        if (has_fd && weft__fdtable_gen(io, q->fd) != gen) {
            /* Forgotten (closed) while in flight. An accept that completed anyway made a
             * connection nobody will see: close it rather than leak it. */
            if (q->op == WEFT__IO_ACCEPT && res >= 0)
                weft__sys_close(&io->w->sys, res);
            return -EBADF;
        }
        /* -EINTR: a blocking operation on an io-wq thread interrupted by our cancel; -EAGAIN:
         * it did nothing, and the wait for room or data is over (deadline, cancel). */
        if (why && (res == -ECANCELED || res == -EINTR || res == -EAGAIN))
            return why;
        if (res == -EAGAIN && has_fd && q->op != WEFT__IO_POLL && q->op != WEFT__IO_FSYNC) {
            /* The kernel honoured O_NONBLOCK: wait for readiness, then try again. */
            int dir = weft__io_dir(q);
            weft__ioreq pq = {.op = WEFT__IO_POLL, .fd = q->fd, .flags = dir};
            int pr = run_op(io, &pq, deadline, &why);
            if (weft__fdtable_gen(io, q->fd) != gen)
                return -EBADF;
            if (why)
                return why; /* given up: even a poll that completed meanwhile moved nothing */
            if (pr < 0)
                return pr;
            /* The ring's poll always reports a peer's half-close (POLLRDHUP is in the mask
             * it waits for, whatever was asked): a socket whose peer shut its side down and
             * whose own buffer is full would complete every poll at once, and the write
             * would spin. Its room is waited for apart (wait_writable_apart). */
            if (dir == WEFT_WRITABLE && (pr & POLLRDHUP) && !(pr & (POLLOUT | POLLERR | POLLHUP))) {
                int r = wait_writable_apart(io, q->fd, deadline);
                if (weft__fdtable_gen(io, q->fd) != gen)
                    return -EBADF;
                if (r < 0)
                    return r;
            }
            continue;
        }
        if (q->op == WEFT__IO_POLL && res >= 0)
            return (ssize_t)poll_to_mask(res);
        return res;
    }
}

/* ---- Write-behind sends (FEAT_SENDBEHIND, uring_send.h) --------------------------------
 * weft_write and weft_send of up to WEFT__USEND_MAX bytes on a stream socket copy the bytes
 * into the fd's record, prepare one send and return: the tick's enter submits it with the
 * rest, and its completion is taken here, in the poll, without resuming anyone. What the
 * caller would have waited for moves to the next call that writes to the fd (it waits for
 * the send in flight, and returns its error), and to weft_close (weft__io_ops.flush) and
 * weft_shutdown (deferred until the send is over). */

/* The SQE of the send of what is left of u's bytes (or, `poll`, of a wait for room first),
 * not submitted; NULL if the SQ has no room. */
static struct io_uring_sqe *send_sqe(uring_state *s, weft__usend *u, bool poll)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return NULL;
    uint64_t tag = TAG_SEND | (uint64_t)(uintptr_t)u;
    if (poll) {
        io_uring_prep_poll_add(sqe, u->fd, POLLOUT);
        tag |= TAG_SEND_POLL;
    } else {
        /* A send even for weft_write: on a socket write(2) is send(2) without flags, and the
         * ring's send waits for room itself where its write may answer -EAGAIN. */
        io_uring_prep_send(sqe, u->fd, u->buf + u->done, u->len - u->done,
                           u->op == WEFT__IO_SEND ? u->flags | MSG_NOSIGNAL : 0);
    }
    io_uring_sqe_set_data64(sqe, tag);
    return sqe;
}

/* Prepares the send of what is left of u's bytes (or, `poll`, a wait for room first). */
static int send_prep(uring_state *s, weft__usend *u, bool poll)
{
    if (!send_sqe(s, u, poll))
        return -EBUSY;
    pace_submit(s->io, s);
    return 0;
}

/* An orphan whose send goes on (keepfd): its next send or wait, bounded by the write's
 * deadline through a linked timeout (which cancels it there: -ECANCELED). */
static int orphan_prep(uring_state *s, weft__usend *u, bool poll)
{
    bool timed = u->deadline != WEFT_FOREVER;
    /* The send and its timeout go out together: room for both first. */
    if (timed && io_uring_sq_space_left(&s->ring) < 2 && enter_ok(s) == 0)
        io_uring_submit(&s->ring);
    if (timed && io_uring_sq_space_left(&s->ring) < 2)
        return -EBUSY;
    struct io_uring_sqe *sqe = send_sqe(s, u, poll);
    if (!sqe)
        return -EBUSY;
    if (timed) {
        sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *lt = io_uring_get_sqe(&s->ring); /* room checked above */
        io_uring_prep_link_timeout(lt, &u->until, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(lt, TAG_IGNORE);
    }
    pace_submit(s->io, s);
    return 0;
}

/* One completion of an orphan whose send goes on. Returns true if it goes on still (another
 * send or wait is prepared), false if it is over: all sent, an error, or its deadline. */
static bool orphan_goes_on(uring_state *s, weft__usend *u, uint64_t ud, int res)
{
    bool poll = false;
    if (ud & TAG_SEND_POLL) {
        if (res < 0 && res != -ECANCELED)
            return false; /* the wait itself failed */
    } else if (res > 0) {
        u->done += (uint32_t)res;
        if (u->done >= u->len)
            return false; /* all sent */
    } else if (res == -EAGAIN) {
        poll = true;
    } else if (res != -ECANCELED) {
        return false; /* the kernel's error, which nobody is left to hear, or nothing taken */
    }
    /* -ECANCELED: the forget's cancel (the send goes on after it), or the deadline's. */
    if (u->deadline != WEFT_FOREVER && weft__clock_ns() >= u->deadline)
        return false;
    return orphan_prep(s, u, poll) == 0;
}

/* The end of an orphan: a send that went on shuts its duplicate down as asked and closes it
 * (the peer's end of stream, after every byte); then the record is freed. */
static void orphan_end(uring_state *s, weft__usend *u)
{
    if (u->keepfd >= 0) {
        if (u->shut >= 0)
            weft__sys_shutdown(s->sys, u->keepfd, u->shut);
        weft__sys_close(s->sys, u->keepfd);
        u->keepfd = -1;
    }
    weft__usend_complete(&s->sends, u, -ECANCELED); /* frees it */
}

/* A completion of a send written behind, or of its wait for room. */
static void send_complete(uring_state *s, uint64_t ud, int res)
{
    weft__usend *u = (weft__usend *)(uintptr_t)(ud & ~(TAG_SEND | TAG_SEND_POLL));
    if (u->orphan) {
        if (u->keepfd < 0 || !orphan_goes_on(s, u, ud, res))
            orphan_end(s, u);
        return;
    }
    if (ud & TAG_SEND_POLL) {
        /* Room, or an error or hang-up the send itself will report: send again. */
        if (res >= 0 && send_prep(s, u, false) == 0)
            return;
        res = res < 0 ? res : -EBUSY;
    } else if (res == -EAGAIN) {
        if (send_prep(s, u, true) == 0)
            return;
        res = -EBUSY;
    }
    if (weft__usend_complete(&s->sends, u, res)) {
        if (send_prep(s, u, false) == 0)
            return; /* a short send: the rest follows */
        weft__usend_complete(&s->sends, u, -EBUSY);
    }
    if (u->shut >= 0) {
        weft__sys_shutdown(s->sys, u->fd, u->shut); /* weft_shutdown's, deferred */
        u->shut = -1;
    }
    int fd = u->fd;
    /* A record grown for a large write is not kept for the connection's life: the next
     * write makes a small one again. One with something left to report stays. */
    if (u->cap > WEFT__USEND_KEEP && !u->err && !u->failed)
        weft__usends_forget(&s->sends, fd);
    /* A writer waits for it (send_wait): only then an edge, which nobody else on this
     * backend takes (writes here are ring operations, not readiness waits). */
    weft__io *io = s->io;
    if ((size_t)fd < io->nfds && io->fds[fd].wr.head)
        weft__fdtable_ready(io, fd, WEFT_WRITABLE);
}

/* Waits until fd has no send in flight. Returns 0, or -ETIMEDOUT, -ECANCELED, -EBADF. */
static int send_wait(weft__io **iop, int fd, int64_t deadline)
{
    for (;;) {
        uring_state *s = (*iop)->backend;
        if (!weft__usends_busy(&s->sends, fd, weft__fdtable_gen(*iop, fd)))
            return 0;
        int m = weft__fdtable_wait(iop, fd, WEFT_WRITABLE, deadline);
        if (m < 0)
            return m;
    }
}

static ssize_t ur_submit_other(weft__io *io, const weft__ioreq *q, int64_t deadline);

static bool reap_pending(weft__io *io);

/* Whether a send written behind is still in flight on fd, once the completions the kernel
 * has were taken (a send with MSG_DONTWAIT must not park for one: send_after). */
static bool send_still_busy(weft__io *io, int fd)
{
    const uring_state *s = io->backend;
    if (!weft__usends_busy(&s->sends, fd, weft__fdtable_gen(io, fd)) || !reap_pending(io))
        return weft__usends_busy(&s->sends, fd, weft__fdtable_gen(io, fd));
    s = io->backend; /* the reap may have moved the ring's state */
    return weft__usends_busy(&s->sends, fd, weft__fdtable_gen(io, fd));
}

WEFT_NOINLINE static ssize_t plain_run(weft__io *io, const weft__ioreq *q, int64_t deadline);

/* Any other write to fd: after the send in flight, whose error it returns. A send with
 * MSG_DONTWAIT (weft__io_nowait) never parks: one still in flight is -EAGAIN, as from a socket
 * with no room, and its own attempt is the plain system call (a ring operation parks the task
 * for the ring's round trip, which let the worker's other tasks run first). */
WEFT_NOINLINE static ssize_t send_after(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    bool nowait = weft__io_nowait(q);
    if (nowait && send_still_busy(io, q->fd))
        return -EAGAIN;
    int r = nowait ? 0 : send_wait(&io, q->fd, deadline);
    if (r < 0)
        return r;
    weft__usend *u = weft__usends_find(&((uring_state *)io->backend)->sends, q->fd);
    if (u && u->err && u->fdgen == weft__fdtable_gen(io, q->fd)) {
        int e = u->err;
        u->err = 0;
        return e;
    }
    if (q->op == WEFT__IO_SENDFILE)
        return ur_submit_other(io, q, deadline);
    if (nowait) {
        /* Classified first (made non-blocking), as ring_run does before any operation. */
        int kind = weft__fdtable_kind(io, q->fd);
        return kind < 0 ? kind : plain_run(io, q, deadline);
    }
    return ring_run(io, q, deadline);
}

/* Whether fd is a connection whose state the ring follows: its multishot receive is armed
 * (or holds bytes) and has met neither the end of stream nor an error. Only such a socket's
 * writes are sent behind: one whose peer is known to be gone gets the kernel's answer at
 * once (EPIPE, ECONNRESET), as from write(2), instead of a later write. What the ring cannot
 * know yet (a reset since the last reap) arrives as on TCP, where a write after the peer's
 * close is also taken before the reset is. Needs FEAT_BUFRING. And no other worker of the
 * runtime has used the fd (fdshare.c): a write there would not wait for a send in flight
 * here (what is left of that race is in weft.h). */
static inline bool send_known_alive(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    const weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
    return f && (f->armed || f->head >= 0) && !f->eof && !f->broken && !f->off && !f->wshut &&
           !io->fds[fd].wshut && f->fdgen == io->fds[fd].gen && weft__fdshare_only(io, fd);
}

static ssize_t send_behind(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    int fd = q->fd;
    int kind = weft__fdtable_kind(io, fd);
    if (kind < 0)
        return kind;
    /* A deadline already passed asks for what can be done at once (weft.h): the kernel's
     * answer, not a send that may wait. */
    if (kind != WEFT__FD_STREAM || !io->fds[fd].sock || q->len == 0 || q->len > WEFT__USEND_MAX ||
        (q->op == WEFT__IO_SEND && (q->flags & ~MSG_MORE)) || !send_known_alive(io, fd) ||
        (deadline != WEFT_FOREVER && deadline <= weft_now()))
        return send_after(io, q, deadline);
#ifdef WEFT_TESTING
    int fault = weft__sys_fault(&io->w->sys, weft__io_kind(q));
    if (fault == -EAGAIN) {
        /* A planned full socket: wait for room, as the ring's own send would. */
        weft__ioreq pq = {.op = WEFT__IO_POLL, .fd = fd, .flags = WEFT_WRITABLE};
        ssize_t pr = ring_run(io, &pq, deadline);
        if (pr < 0)
            return pr;
    } else if (fault < 0) {
        return fault;
    }
#endif
    uring_state *s = io->backend;
    uint32_t gen = io->fds[fd].gen;
    weft__usend *u = weft__usends_find(&s->sends, fd);
    if (u && u->fdgen == gen) {
        if (u->inflight) {
            int r = send_wait(&io, fd, deadline);
            if (r < 0)
                return r;
            s = io->backend;
            u = weft__usends_find(&s->sends, fd);
        }
        if (u && u->err) {
            int e = u->err; /* the last send's, reported to the next write */
            u->err = 0;
            return e;
        }
        if (u && (u->failed || u->shut >= 0))
            return ring_run(io, q, deadline); /* the kernel's own answer (EPIPE after EPIPE,
                                               * or after weft_shutdown) */
    }
    if (!u || u->fdgen != gen || u->cap < q->len) /* else the record as it is */
        u = weft__usends_get(&s->sends, fd, gen, (uint32_t)q->len);
    if (!u)
        return ring_run(io, q, deadline); /* no memory for a copy: on the caller's buffer */
    memcpy(u->buf, q->buf, q->len);
    u->len = (uint32_t)q->len;
    u->done = 0;
    u->op = q->op;
    u->flags = q->flags;
    u->deadline = deadline;
    /* In flight before the SQE exists: an enter inside send_prep (a paced one) that fails by
     * fault injection completes it at once (fail_pending), and that completion must find it
     * in flight to end it. */
    u->inflight = 1;
    if (send_prep(s, u, false) < 0) {
        u->inflight = 0;
        return -EBUSY; /* the ring takes nothing: as run_op */
    }
    if (!u->inflight) {
        int e = u->err; /* failed inside the paced enter: reported now */
        u->err = 0;
        return e < 0 ? e : (ssize_t)q->len;
    }
    return (ssize_t)q->len;
}

/* The readiness path, for what the ring cannot do: the plain call, then a poll operation on
 * EAGAIN, until it goes through. */
WEFT_NOINLINE static ssize_t plain_run(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    for (;;) {
        ssize_t n = weft__io_exec(&io->w->sys, q);
        if (n == -EINTR)
            continue;
        if ((n != -EAGAIN && n != -EWOULDBLOCK) || weft__io_nowait(q))
            return n;
        weft__ioreq pq = {.op = WEFT__IO_POLL, .fd = q->fd, .flags = weft__io_dir(q)};
        n = ring_run(io, &pq, deadline);
        if (n < 0)
            return n;
    }
}

/* Creates sendfile's pipe, as large as the system lets an unprivileged process have it. */
/* A pipe for one transfer: a kept one, or a new one. 0 or -errno. */
static int pipe_take(uring_state *s, sf_pipe *out)
{
    if (s->npipes) {
        *out = s->pipes[--s->npipes];
        return 0;
    }
    int fds[2];
    int r = weft__sys_pipe(s->sys, fds, O_CLOEXEC);
    if (r < 0)
        return r;
    int cap = weft__sys_fcntl(s->sys, fds[1], F_SETPIPE_SZ, PIPE_BYTES);
    if (cap < 0)
        cap = weft__sys_fcntl(s->sys, fds[1], F_GETPIPE_SZ, 0);
    *out = (sf_pipe){fds[0], fds[1], cap > 0 ? (size_t)cap : 4096};
    return 0;
}

/* Gives back a transfer's pipe: kept if it was emptied (and there is room), else closed,
 * with what is still in it. */
static void pipe_give(uring_state *s, const sf_pipe *p, bool empty)
{
    if (empty && !s->pipes)
        s->pipes = weft__malloc(s->io->w, PIPES_KEPT * sizeof *s->pipes);
    if (empty && s->pipes && s->npipes < PIPES_KEPT)
        s->pipes[s->npipes++] = *p;
    else
        pipe_close(s, p);
}

/* One sendfile transfer on the ring: in_fd -> pipe (at most the pipe's capacity), then
 * pipe -> out_fd until the pipe is empty, through a pipe of the transfer's own (pipe_take).
 * The offset is always explicit, so a transfer that stops half-way can put the position (or
 * *offp) right after what reached out_fd; bytes left in the pipe are thrown away with the
 * pipe. Returns the bytes sent, 0 at the end of in_fd, or -errno when nothing was sent. When
 * no pipe can be made (the process is out of fds), sendfile(2) and poll operations. */
static ssize_t splice_through_pipe(weft__io *io, const weft__ioreq *q, int64_t deadline, int kin,
                                   int kout);

/* The number a splice of the transfer names for fd. The kernel looks a splice's fds up by
 * number when an io-wq thread starts it, which can be after weft_close (whose cancel by fd does
 * not find an operation with no file yet) and after the number went to a new socket or file:
 * so a socket or pipe is named through a duplicate, which the late look still finds (and the
 * generation checks end the transfer). Not a regular file: closing a duplicate of it would
 * release the caller's POSIX record locks on it (exec.c). Its own number is registered as in
 * use instead, so that a weft_close leaves it open to the transfer's end. Returns the number
 * (`*dup` set when a duplicate, to close) or -errno (-EMFILE: out of fds). */
static int splice_fd(weft__io *io, int fd, weft__io_fduse *use, bool *dup)
{
    int kind = weft__fdtable_kind(io, fd);
    if (kind < 0)
        return kind;
    *dup = kind != WEFT__FD_FILE;
    if (*dup)
        return weft__sys_fcntl(((uring_state *)io->backend)->sys, fd, F_DUPFD_CLOEXEC, 0);
    weft__io_fduse_begin(use, fd);
    return fd;
}

static void splice_fd_done(weft__io *io, int k, weft__io_fduse *use, bool dup)
{
    if (dup)
        weft__sys_close(((uring_state *)io->backend)->sys, k);
    else
        weft__io_fduse_end(weft__worker_current(), use);
}

WEFT_NOINLINE static ssize_t ring_sendfile(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    /* A deadline already passed: one sendfile(2) attempt, as on epoll (weft.h: the call
     * completes what it can at once). The splices would go to an io-wq thread, and the
     * passed deadline cancel them before they ran: -ETIMEDOUT every time, nothing sent. */
    if (deadline != WEFT_FOREVER && deadline <= weft__clock_ns())
        return plain_run(io, q, deadline);
    /* Two dups and two closes (sockets, pipes) for up to a pipe's capacity (256 KiB). Out of
     * fds: sendfile(2) and poll operations. */
    weft__io_fduse in_use, out_use;
    bool in_dup, out_dup;
    int kin = splice_fd(io, q->fd2, &in_use, &in_dup);
    if (kin < 0)
        return kin == -EBADF ? kin : plain_run(io, q, deadline);
    int kout = splice_fd(io, q->fd, &out_use, &out_dup);
    if (kout < 0) {
        splice_fd_done(io, kin, &in_use, in_dup);
        return kout == -EBADF ? kout : plain_run(io, q, deadline);
    }
    ssize_t r = splice_through_pipe(io, q, deadline, kin, kout);
    /* No splice is in flight: ring_run waits for each one's CQE, a withdrawn one's too. */
    splice_fd_done(io, kout, &out_use, out_dup);
    splice_fd_done(io, kin, &in_use, in_dup);
    return r;
}

/* ring_sendfile's transfer, kin and kout standing for in_fd and out_fd in the splices. */
static ssize_t splice_through_pipe(weft__io *io, const weft__ioreq *q, int64_t deadline, int kin,
                                   int kout)
{
    uring_state *s = io->backend;
    weft__sys *sys = s->sys;
    /* The out fd's generation as the call found it: a close while the file's bytes were
     * spliced into the pipe leaves the number to whatever takes it next, which each splice's
     * own look (ring_run's, from its start) would take for the socket. */
    uint32_t out_gen = weft__fdtable_gen(io, q->fd);
    sf_pipe pipe;
    if (pipe_take(s, &pipe) < 0)
        return plain_run(io, q, deadline);
    off_t pos;
    if (q->offp) {
        pos = *q->offp;
    } else {
        pos = weft__sys_lseek(sys, q->fd2, 0, SEEK_CUR);
        if (pos == -ESPIPE)
            pos = -1; /* a pipe or socket: no position to honour */
        else if (pos < 0) {
            pipe_give(s, &pipe, true);
            return pos;
        }
    }
    size_t want = q->len < pipe.cap ? q->len : pipe.cap;
    weft__ioreq in = {.op = WEFT__IO_SPLICE,
                      .fd = q->fd2,
                      .fd2 = pipe.wr,
                      .off = pos,
                      .len = want,
                      .flags = WEFT__SPLICE_TO_PIPE,
                      .kfd = kin};
    ssize_t n = ring_run(io, &in, deadline);
    s = io->backend; /* the same worker's: a transfer never moves, but read it as ring_run does */
    if (n <= 0) {
        pipe_give(s, &pipe, n == 0 || n == -EAGAIN); /* nothing went in, or (an error) unsure */
        return n;
    }
    size_t sent = 0;
    ssize_t err = 0;
    while (sent < (size_t)n) {
        if (weft__fdtable_gen(io, q->fd) != out_gen) {
            err = -EBADF; /* forgotten (closed) since the call began */
            break;
        }
        weft__ioreq out = {.op = WEFT__IO_SPLICE,
                           .fd = q->fd,
                           .fd2 = pipe.rd,
                           .off = -1,
                           .len = (size_t)n - sent,
                           .flags = WEFT__SPLICE_FROM_PIPE,
                           .kfd = kout};
        ssize_t m = ring_run(io, &out, deadline);
        if (m <= 0) {
            err = m < 0 ? m : -EPIPE;
            break;
        }
        sent += (size_t)m;
    }
    s = io->backend;
    /* What is still in it was not sent: closed with it, so no transfer sends it. */
    pipe_give(s, &pipe, sent == (size_t)n);
    /* Either fd forgotten (closed) meanwhile: -EBADF whatever went out, so that
     * weft_sendfile's loop stops rather than send the rest to a file that took the number. */
    bool forgotten = err == -EBADF;
    if (sent > 0 && pos >= 0) {
        if (q->offp)
            *q->offp = pos + (off_t)sent;
        else
            weft__sys_lseek(sys, q->fd2, pos + (off_t)sent, SEEK_SET);
    }
    return sent > 0 && !forgotten ? (ssize_t)sent : err;
}

/* The operations that are not one plain ring operation: kept out of ur_submit so that its
 * hot path (reads and writes) is a tail call to ring_run. */
WEFT_NOINLINE static ssize_t ur_submit_other(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    if (q->op == WEFT__IO_ACCEPT || q->op == WEFT__IO_SENDFILE) {
        /* Plain calls come first below: classify (and make non-blocking) before them. */
        int kind = weft__fdtable_kind(io, q->fd);
        if (kind < 0)
            return kind;
    }
    switch (q->op) {
    case WEFT__IO_STAT:
    case WEFT__IO_READLINK:
    case WEFT__IO_TRUNCATE:
    case WEFT__IO_FTRUNCATE:
    case WEFT__IO_GETDENTS:
        /* No ring op needed for stat; none in the kernel (or none in Debian 12's liburing,
         * for ftruncate) for the others. */
        return weft__io_exec_blocking(io->w, q, deadline);
    case WEFT__IO_MKDIR:
    case WEFT__IO_UNLINK:
    case WEFT__IO_RENAME:
    case WEFT__IO_LINK:
    case WEFT__IO_SYMLINK:
        if (((uring_state *)io->backend)->path_ops & (1u << (q->op - WEFT__IO_MKDIR)))
            return ring_run(io, q, deadline);
        return weft__io_exec_blocking(io->w, q, deadline);
    case WEFT__IO_ACCEPT: {
        /* accept4 first, so a backlog is drained with plain system calls: through the ring
         * each accept costs a whole loop tick, and with 5,000 busy connections that held
         * accepts to a few hundred a second. */
        ssize_t c = weft__io_exec(&io->w->sys, q);
        if (c != -EAGAIN && c != -EWOULDBLOCK && c != -EINTR)
            return c;
        return ring_run(io, q, deadline);
    }
    case WEFT__IO_SENDFILE:
        return ((uring_state *)io->backend)->have_splice ? ring_sendfile(io, q, deadline)
                                                         : plain_run(io, q, deadline);
    default:
        return ring_run(io, q, deadline);
    }
}

/* ---- Multishot receives into provided buffers (FEAT_BUFRING) ---------------------------
 * A stream socket's first read arms one multishot receive; from then on the kernel receives
 * into the worker's buffer ring as data arrives, and a read copies what is buffered without
 * a park or a system call, or waits on the fd table's readable edge (which every completion
 * of the receive raises) for more. A deadline or cancellation during that wait only stops
 * the wait: the kernel never holds the reader's buffer, and the receive stays armed for the
 * next read. Buffered bytes are the fd's: weft_close (forget) gives them back. */

/* Cancels the receive armed on a file that is gone, and drops what it buffered. */
static void recv_abandon(uring_state *s, weft__ubuf_fd *f)
{
    if (f->armed) {
        struct io_uring_sqe *c = get_sqe_for_cancel(s);
        if (c) {
            io_uring_prep_cancel64(c, f->inflight, 0);
            io_uring_sqe_set_data64(c, TAG_IGNORE);
        }
    }
    weft__ubufs_drop(&s->bufs, f);
}

static int recv_arm(uring_state *s, int fd, weft__ubuf_fd *f)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = WEFT__UBUF_GROUP;
    f->inflight = recv_tag(fd, f->gen);
    io_uring_sqe_set_data64(sqe, f->inflight);
    f->armed = 1;
    f->capped = 0;
    weft__fdrec *rec = &s->io->fds[fd];
    f->fdgen = rec->gen;
    /* Marks the record in use, so that the fd table starts a new generation if the number
     * is handed out again without a weft_close (weft__fdtable_fresh), which recv_ready then
     * notices. */
    rec->watched = 1;
    return 0;
}

/* Whether the fd has something for a reader now: bytes, an error, or the end of stream. */
static inline bool recv_ready(const weft__ubuf_fd *f)
{
    return f->head >= 0 || f->err || f->eof;
}

/* A read, readv or flag-less recv of a stream socket, through its multishot receive. */
/* Runs, without waiting, the completions the kernel has for this ring (submitting what is
 * queued): a task about to report "nothing there" looks once more. Returns whether it
 * entered. The ring's state may move: callers re-read io->backend and their records. */
static bool reap_pending(weft__io *io)
{
    uring_state *s = io->backend;
    if (!(io_uring_sq_ready(&s->ring) || io_uring_cq_ready(&s->ring) || kernel_has_work(s)))
        return false;
    /* All of the SQ, paced or not (uring_pace.h): the look is for what they bring. */
    if (io_uring_sq_ready(&s->ring) && enter_ok(s) == 0)
        io_uring_submit(&s->ring);
    ur_poll(io, 0, INT_MAX);
    return true;
}

/* A flag-less recv of 0 bytes on a socket whose receive is armed or holds something. recv(2)
 * of 0 bytes waits for bytes to be queued, then answers 0 and takes none (read(2) of 0
 * answers 0 at once, and is the ring's). The bytes weft holds are queued, though the kernel's
 * socket may be empty: the ring's recv waited for more, for ever if none came. An error or the
 * end of stream held is reported as recv_buffered reports it. Cold: recv_buffered's branch
 * for nothing to read. */
WEFT_NOINLINE static ssize_t recv_zero(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uring_state *s = io->backend;
    int fd = q->fd;
    bool reaped = false;
    for (;;) {
        weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
        if (!f || !(f->armed || recv_ready(f)) || f->fdgen != io->fds[fd].gen)
            return ring_run(io, q, deadline); /* nothing held: the kernel's answer */
        if (f->head >= 0)
            return 0;
        if (f->err) {
            int e = f->err;
            f->err = 0;
            return e;
        }
        if (f->eof)
            return 0;
        int m = weft__fdtable_wait(&io, fd, WEFT_READABLE, deadline);
        s = io->backend;
        if (m == -ETIMEDOUT && !reaped) {
            reaped = true; /* as recv_buffered: what the kernel has, before a timeout */
            if (reap_pending(io)) {
                s = io->backend;
                continue;
            }
        }
        if (m < 0)
            return m;
    }
}

WEFT_NOINLINE static ssize_t recv_buffered(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uring_state *s = io->backend;
    int fd = q->fd;
    int kind = weft__fdtable_kind(io, fd);
    if (kind < 0)
        return kind;
    weft__ubuf_fd *f = kind == WEFT__FD_STREAM ? weft__ubufs_fd(&s->bufs, fd) : NULL;
    if (f && !f->probed) {
        /* The kernel's multishot receive can miss an AF_UNIX stream's end of stream for good
         * (liburing issue #1549; 1-4 of 64 connections a run here, on 6.18): a reader then
         * waits for ever. Such sockets are read with plain ring operations instead (and so
         * are not sent behind). Once per file. */
        int domain = 0;
        socklen_t dlen = sizeof domain;
        f->probed = 1;
        if (!s->unix_multishot && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
            domain == AF_UNIX)
            f->off = 1;
    }
    if (!f || f->off)
        return ring_run(io, q, deadline); /* not a socket, or no memory for its record */
    struct iovec one = {q->buf, q->len};
    const struct iovec *iov = q->op == WEFT__IO_READV ? q->iov : &one;
    int iovcnt = q->op == WEFT__IO_READV ? q->iovcnt : 1;
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    if (want == 0 || iovcnt > IOV_MAX) {
        if (want == 0 && iovcnt <= IOV_MAX && q->op == WEFT__IO_RECV)
            return recv_zero(io, q, deadline); /* what weft holds counts as queued */
        return ring_run(io, q, deadline);      /* the kernel's answer (0, or -EINVAL) */
    }
#ifdef WEFT_TESTING
    int fault = weft__sys_fault(&io->w->sys, weft__io_kind(q));
    if (fault < 0 && fault != -EAGAIN)
        return fault; /* a planned EAGAIN is what a wait for the receive stands for */
#endif
    if ((f->armed || recv_ready(f)) && f->fdgen != io->fds[fd].gen)
        recv_abandon(s, f); /* closed without weft_close and the number reused */
    bool reaped = false;
    for (;;) {
        if (f->head >= 0)
            return (ssize_t)weft__ubufs_copy(&s->bufs, f, iov, iovcnt, false);
        if (f->err) {
            int e = f->err;
            f->err = 0; /* reported once, as recv(2) reports a pending socket error */
            return e;
        }
        if (f->eof)
            return 0;
        if (!f->armed && (f->off || f->nobufs)) {
            /* Refused, or stopped for want of buffers: this read takes the caller's
             * buffer; the next arms the receive again. */
            f->nobufs = 0;
            return ring_run(io, q, deadline);
        }
        if (!f->armed) {
            int r = recv_arm(s, fd, f);
            if (r < 0)
                return r;
        }
        int m = weft__fdtable_wait(&io, fd, WEFT_READABLE, deadline);
        s = io->backend;
        if (m == -ETIMEDOUT && !reaped) {
            /* Before reporting a timeout (a deadline already passed, say), hand over the
             * arming and run what the kernel deferred: bytes already sent to the socket
             * are then read, as they would be by a plain read. */
            reaped = true;
            if (reap_pending(io)) {
                s = io->backend;
                f = &s->bufs.fds[fd];
                continue;
            }
        }
        if (m < 0)
            return m; /* -EBADF (forgotten), -ETIMEDOUT, -ECANCELED: the receive stays */
        f = &s->bufs.fds[fd];
    }
}

/* A peek that found fewer bytes held than it asked for (n of q->len), the receive stopped
 * (capped, or out of buffers; not ended by an error or the end of stream, after which the
 * socket has nothing more, and a peek there would take its error): the stream's next bytes
 * wait in the socket, and nothing takes them until a read empties the chain, so a MSG_PEEK |
 * MSG_WAITALL that waits for len bytes saw the held ones alone until its deadline, where
 * epoll's peek saw the socket's too (found by test_net). The socket is peeked as well,
 * without waiting, and what it has goes right behind the held bytes: the two are the stream
 * in order. Its EAGAIN is not the call's, which has the held bytes to return. Cold: a peek of
 * more than the cap holds. */
static WEFT_NOINLINE ssize_t peek_behind_held(weft__io *io, const weft__ioreq *q, size_t n)
{
    /* With MSG_TRUNC the kernel counts the bytes and copies none (buf may be NULL). */
    char *rest = q->flags & MSG_TRUNC ? NULL : (char *)q->buf + n;
    int flags = (q->flags & (MSG_PEEK | MSG_TRUNC)) | MSG_DONTWAIT;
    ssize_t more = weft__sys_recv(&io->w->sys, q->fd, rest, q->len - n, flags);
    return (ssize_t)n + (more > 0 ? more : 0);
}

/* The wait at the end of recv_flags' and recvmsg_held's loops, nothing held for them yet:
 * with MSG_DONTWAIT, one reap of completions the kernel has posted and we have not seen
 * (bytes it delivered are there for recv(2)), then -EAGAIN; else a wait for readability
 * (*io may change: the ring moves with its worker's thread). 0 to look again, or the error
 * to return. */
static int held_wait(weft__io **io, const weft__ioreq *q, int64_t deadline, bool *reaped)
{
    if (q->flags & MSG_DONTWAIT) {
        if (!*reaped && reap_pending(*io)) {
            *reaped = true;
            return 0;
        }
        return -EAGAIN;
    }
    int r = weft__fdtable_wait(io, q->fd, WEFT_READABLE, deadline);
    return r < 0 ? r : 0;
}

/* A recv with flags on an fd whose receive is armed or has bytes buffered: MSG_PEEK reads
 * them without taking them; MSG_TRUNC discards them (counts them, with MSG_PEEK), as
 * tcp_recvmsg does, leaving the caller's buffer as it was; MSG_DONTWAIT returns -EAGAIN rather
 * than waiting; MSG_ERRQUEUE and MSG_OOB go to the socket; other flags are served as a plain
 * read from the buffered bytes (documented in weft.h). */
WEFT_NOINLINE static ssize_t recv_flags(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uring_state *s = io->backend;
    weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, q->fd);
    /* The error queue and the urgent byte are the socket's own, never the stream bytes held
     * here (a receive of either returned them, and the next read missed them; MSG_OOB waited
     * for them when none were held; found by test_ported_net). */
    if (!f || !(f->armed || recv_ready(f)) || f->fdgen != io->fds[q->fd].gen ||
        (q->flags & (MSG_ERRQUEUE | MSG_OOB)))
        return ring_run(io, q, deadline);
    struct iovec one = {q->buf, q->len};
    bool peek = q->flags & MSG_PEEK;
    bool reaped = false;
    for (;;) {
        if (f->head >= 0) {
            size_t n = q->flags & MSG_TRUNC ? weft__ubufs_skip(&s->bufs, f, q->len, peek)
                                            : weft__ubufs_copy(&s->bufs, f, &one, 1, peek);
            if (peek && n < q->len && !f->armed && !f->err && !f->eof)
                return peek_behind_held(io, q, n);
            return (ssize_t)n;
        }
        if (f->err || f->eof) {
            weft__ioreq plain = *q;
            plain.flags = 0;
            return recv_buffered(io, &plain, deadline); /* reports them, once */
        }
        if (!f->armed)
            return ring_run(io, q, deadline); /* nothing held: the socket, with the flags */
        int m = held_wait(&io, q, deadline, &reaped);
        if (m < 0)
            return m;
        s = io->backend;
        f = &s->bufs.fds[q->fd];
    }
}

/* The mask of a poll of both directions that finds bytes (or the end, or an error) held:
 * readable, and writable too when the socket has room, as epoll's wait and the kernel's poll
 * answer. A poll of both directions answered "readable" alone while bytes were held (found by
 * test_net), and a caller that waits for both to write when it can looped on it. */
static WEFT_NOINLINE ssize_t held_ready(weft__io *io, const weft__ioreq *q)
{
    int r = weft__sys_poll1(&io->w->sys, q->fd, POLLOUT, 0); /* a look: it takes no time */
    return WEFT_READABLE | (r > 0 ? (ssize_t)(poll_to_mask(r) & WEFT_WRITABLE) : 0);
}

/* A poll for readability answers at once when the receive has something buffered: the
 * kernel's socket may be empty, its bytes already in weft's buffers. */
static ssize_t poll_buffered(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uring_state *s = io->backend;
    weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, q->fd);
    if (!(q->flags & WEFT_READABLE) || !f || !(f->armed || recv_ready(f)) ||
        f->fdgen != io->fds[q->fd].gen)
        return ring_run(io, q, deadline);
    /* The receive may have taken the socket's bytes already, its completion not yet reaped:
     * the socket itself then looks empty to a kernel poll. Reap first. */
    if (reap_pending(io)) {
        s = io->backend;
        f = &s->bufs.fds[q->fd];
    }
    /* A read now returns at once (bytes, the error, or EOF). */
    if (recv_ready(f))
        return q->flags & WEFT_WRITABLE ? held_ready(io, q) : WEFT_READABLE;
    /* Both directions, or the receive no longer armed (the kernel refused it: a pipe, whose
     * reads are plain ones; or it stopped for want of buffers): the kernel's poll, which
     * sees what a plain read would. Not "readable": nothing is held, and a read would wait. */
    if ((q->flags & WEFT_WRITABLE) || !f->armed)
        return ring_run(io, q, deadline);
    /* Readable only, the receive armed: its completions raise the fd's readable edge. */
    for (;;) {
        int m = weft__fdtable_wait(&io, q->fd, WEFT_READABLE, deadline);
        if (m < 0)
            return m;
        s = io->backend;
        f = &s->bufs.fds[q->fd];
        if (recv_ready(f))
            return WEFT_READABLE;
        if (!f->armed)
            return ring_run(io, q, deadline);
    }
}

/* What file_rw_special returns for "the ring's own path", and for "a write at the file
 * position of a regular file" (the ring's own path, then pos_after_short_write). */
#define UR_PLAIN     ((ssize_t)INT64_MIN)
#define UR_POS_WRITE ((ssize_t)INT64_MIN + 1)

/* Whether the ring leaves the file position unmoved after a write at it that it cut short:
 * a write to a memfd sealed against growing, one page long, of two pages (write(2) writes one
 * and moves the position by it). 1 yes, -1 no, 0 not known (the probe was cut off, or did
 * not end short). Costs one memfd and one ring write, once per worker. */
static int probe_short_write_pos(weft__io *io)
{
    long pg = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("weft-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    char *buf = fd >= 0 && pg > 0 ? calloc(2, (size_t)pg) : NULL;
    int verdict = 0;
    if (buf && ftruncate(fd, pg) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0) {
        weft__ioreq q = {
            .op = WEFT__IO_WRITE, .fd = fd, .buf = buf, .len = 2 * (size_t)pg, .off = -1};
        int why = 0;
        int r = run_op(io, &q, WEFT_FOREVER, &why);
        if (!why && r == pg)
            verdict = lseek(fd, 0, SEEK_CUR) == 0 ? 1 : -1;
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    return verdict;
}

/* After a write at the file position of a regular file that the ring ended short (it
 * completes short writes to regular files itself, so a short count means its last try
 * failed: EFBIG past RLIMIT_FSIZE, ENOSPC): the kernel (6.18 at least) then reports the bytes
 * written but leaves the position where the write began, and the caller's next write would
 * overwrite them. Moves the position by n, as write(2) does, where the probe says the ring
 * did not. A write racing this one on the same file description races anyway. */
static WEFT_NOINLINE void pos_after_short_write(weft__io *io, int fd, ssize_t n)
{
    uring_state *s = io->backend;
    if (s->short_write_keeps_pos == 0)
        s->short_write_keeps_pos = (int8_t)probe_short_write_pos(io);
    if (s->short_write_keeps_pos == 1)
        (void)weft__sys_lseek(&io->w->sys, fd, n, SEEK_CUR);
}

/* weft_file_* reads and writes the ring would get wrong, as the system call answers them:
 * - at the file position (off -1) of an O_DIRECT file: the ring's direct read or write
 *   neither uses nor moves the position (two reads both got the first block, two writes
 *   overwrote each other): read(2) and write(2) on the blocking pool instead;
 * - at an offset, on a pipe or a socket: the ring ignored the offset and read or wrote the
 *   stream, where pread(2) and pwrite(2) answer -ESPIPE. */
static WEFT_NOINLINE ssize_t file_rw_special(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    int kind = weft__fdtable_kind(io, q->fd);
    if (kind < 0)
        return kind;
    if (q->off < 0 && kind == WEFT__FD_FILE && io->fds[q->fd].direct)
        return weft__io_exec_blocking(io->w, q, deadline);
    /* Nothing to move: the plain call answers at once what read(2) and write(2) check
     * (-EISDIR for a directory, -EBADF for the wrong mode), where the ring answered 0. */
    if (q->len == 0 && kind == WEFT__FD_FILE)
        return weft__io_exec(&io->w->sys, q);
    if (q->off >= 0 && (kind == WEFT__FD_STREAM || io->fds[q->fd].sock))
        return -ESPIPE;
    if (q->off < 0 && q->op == WEFT__IO_WRITE && kind == WEFT__FD_FILE)
        return UR_POS_WRITE;
    return UR_PLAIN;
}

/* Whether an entry of a readv's array with bytes to take starts in the first page (NULL):
 * -EFAULT, as readv(2) answers, rather than a fault in the buffered receive's copy. */
static bool iov_in_first_page(const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len && (uintptr_t)iov[i].iov_base < 4096)
            return true;
    return false;
}

/* Whether fd's armed receive holds what a read would return at once (weft__io_ops.held).
 * From a stackful task, completions the ring has not been asked for yet are reaped first, as
 * poll_buffered does: the receive may have taken the socket's bytes already, and the socket
 * then looks empty. Not from the loop's own stack (a future's poll, a watch callback), which
 * must not run the ring's completions inside its own step. */
static bool ur_held(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    const weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
    if (!f || f->fdgen != weft__fdtable_gen(io, fd))
        return false;
    if (!recv_ready(f) && f->armed && weft__blocking_task(io->w) && reap_pending(io)) {
        s = io->backend;
        f = weft__ubufs_find(&s->bufs, fd);
        if (!f || f->fdgen != weft__fdtable_gen(io, fd))
            return false;
    }
    return recv_ready(f);
}

static bool ur_takes_reads(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    const weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
    return f && f->fdgen == weft__fdtable_gen(io, fd) && (f->armed || recv_ready(f));
}

/* A recvmsg of a stream socket with several iovecs or with control data, once its receive is
 * armed or holds bytes: the ring's own recvmsg read the socket past the held bytes (a later
 * write's bytes came out first, or the call waited for new ones with old ones held). So the
 * held bytes come first, scattered over the iovecs (MSG_PEEK leaves them, MSG_TRUNC discards
 * them), with no control data (msg_controllen 0: the multishot receive that took them has no
 * room for any); a call that finds nothing held stops the receive, serves first what its last
 * completions bring, and then is the kernel's recvmsg, control data and all: nothing is held
 * any more, so the socket's bytes are the next ones. The next read arms the receive again. A
 * deadline or cancel meanwhile leaves the receive stopped and every byte in place. */
static WEFT_NOINLINE ssize_t recvmsg_held(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    uring_state *s = io->backend;
    struct msghdr *m = q->msg;
    weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, q->fd);
    if (!f || !(f->armed || recv_ready(f)) || f->fdgen != io->fds[q->fd].gen ||
        (q->flags & (MSG_ERRQUEUE | MSG_OOB)) || m->msg_iovlen > IOV_MAX)
        return ring_run(io, q, deadline); /* nothing held or coming: the kernel's answer */
    bool peek = q->flags & MSG_PEEK;
    bool reaped = false;
    for (;;) {
        if (f->head >= 0 || f->eof) {
            size_t n = 0;
            if (f->head >= 0 && (q->flags & MSG_TRUNC)) {
                for (size_t i = 0; i < m->msg_iovlen; i++)
                    n += m->msg_iov[i].iov_len;
                n = weft__ubufs_skip(&s->bufs, f, n, peek);
            } else if (f->head >= 0) {
                n = weft__ubufs_copy(&s->bufs, f, m->msg_iov, (int)m->msg_iovlen, peek);
            }
            m->msg_namelen = 0; /* a stream socket has no sender address to give */
            m->msg_controllen = 0;
            m->msg_flags = 0;
            return (ssize_t)n; /* 0: the end of stream, after every held byte */
        }
        if (f->err) {
            int e = f->err;
            f->err = 0; /* reported once, as recv_buffered does */
            return e;
        }
        if (!f->armed)
            return ring_run(io, q, deadline); /* stopped, nothing held: the socket's turn */
        if (!f->capped) {
            /* Stop the receive; its last completion (-ECANCELED) clears `armed`. capped keeps
             * recv_complete from cancelling it again; recv_arm clears it. */
            struct io_uring_sqe *c = get_sqe_for_cancel(s);
            if (!c)
                return -EBUSY;
            io_uring_prep_cancel64(c, f->inflight, 0);
            io_uring_sqe_set_data64(c, TAG_IGNORE);
            f->capped = 1;
        }
        int r = held_wait(&io, q, deadline, &reaped);
        if (r < 0)
            return r;
        s = io->backend;
        f = &s->bufs.fds[q->fd];
    }
}

/* weft_recvfrom (a recvmsg of one buffer, no control data) of a stream socket: through the
 * socket's armed receive, as weft_recv, so that bytes it holds come first and in order (the
 * ring's own recvmsg read past them: a later write's bytes came out before them). A stream
 * socket has no sender address to give: msg_namelen 0, as recvmsg(2) leaves it. Several
 * iovecs or control data: recvmsg_held. Anything else goes to the ring as it is. */
static ssize_t ur_submit_checked(weft__io *io, const weft__ioreq *q, int64_t deadline);
static WEFT_NOINLINE ssize_t recvmsg_stream(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    int kind = weft__fdtable_kind(io, q->fd);
    if (kind < 0)
        return kind;
    struct msghdr *m = q->msg;
    if (kind != WEFT__FD_STREAM || !io->fds[q->fd].sock)
        return ring_run(io, q, deadline);
    if (m->msg_iovlen != 1 || m->msg_control)
        return recvmsg_held(io, q, deadline);
    weft__ioreq r = {.op = WEFT__IO_RECV,
                     .fd = q->fd,
                     .buf = m->msg_iov[0].iov_base,
                     .len = m->msg_iov[0].iov_len,
                     .flags = q->flags};
    ssize_t n = ur_submit_checked(io, &r, deadline);
    if (n >= 0) {
        m->msg_namelen = 0;
        m->msg_flags = 0;
    }
    return n;
}

/* An open on the ring. The kernel first tries it without blocking (O_NONBLOCK added, taken
 * off the file after), where a FIFO does not wait for its other end as open(2) does: opened
 * for reading it opened at once, and the first read found end of file before any writer
 * came; for writing it failed with -ENXIO. Those two cases are made again by open(2) on the
 * blocking pool (as epoll makes every open), unless the caller asked for O_NONBLOCK. The
 * read end the ring opened is closed only after the pool's open returns: a writer it let
 * through meanwhile must not meet a FIFO without a reader. One fstat more a ring open. */
static WEFT_NOINLINE ssize_t ring_open(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    ssize_t r = ring_run(io, q, deadline);
    int acc = q->flags & O_ACCMODE;
    if ((q->flags & (O_NONBLOCK | O_PATH)) || (r < 0 && r != -ENXIO))
        return r;
    if (r == -ENXIO)
        return acc == O_WRONLY ? weft__io_exec_blocking(io->w, q, deadline) : r;
    struct stat st;
    if (acc != O_RDONLY || weft__sys_fstat(&io->w->sys, (int)r, &st) != 0 || !S_ISFIFO(st.st_mode))
        return r;
    ssize_t again = weft__io_exec_blocking(io->w, q, deadline);
    weft__sys_close(&io->w->sys, (int)r);
    return again;
}

/* A writev, sendmsg or sendfile: behind the fd's sends still in flight (send_after), else
 * the ring's own way; a sendmsg with MSG_DONTWAIT always through send_after, which makes its
 * one attempt without a park. Out of line, so that ur_dispatch is tail calls only and ur_submit
 * keeps no frame (the call to weft__fdtable_gen would give it one). */
static WEFT_NOINLINE ssize_t send_queued(weft__io *io, const weft__ioreq *q, int64_t deadline,
                                         bool other)
{
    const uring_state *s = io->backend;
    if (weft__io_nowait(q) || weft__usends_pending(&s->sends, q->fd, weft__fdtable_gen(io, q->fd)))
        return send_after(io, q, deadline);
    return other ? ur_submit_other(io, q, deadline) : ring_run(io, q, deadline);
}

/* The backend's paths by operation, after the checks of ur_submit_checked where a request
 * needed them. Inlined into both callers: a switch of tail calls. */
static inline __attribute__((always_inline)) ssize_t ur_dispatch(weft__io *io, const weft__ioreq *q,
                                                                 int64_t deadline)
{
    const uring_state *s = io->backend;
    unsigned feats = s->feats;
    switch (q->op) {
    case WEFT__IO_WRITE:
        if ((feats & FEAT_SENDBEHIND) && q->off < 0)
            return send_behind(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_SEND:
        if (feats & FEAT_SENDBEHIND)
            return send_behind(io, q, deadline);
        return weft__io_nowait(q) ? send_after(io, q, deadline) : ring_run(io, q, deadline);
    case WEFT__IO_WRITEV:
    case WEFT__IO_SENDMSG:
        return send_queued(io, q, deadline, false);
    case WEFT__IO_READ:
        if ((feats & FEAT_BUFRING) && q->off < 0)
            return recv_buffered(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_READV:
        if (feats & FEAT_BUFRING)
            return recv_buffered(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_RECV:
        if (feats & FEAT_BUFRING)
            return q->flags ? recv_flags(io, q, deadline) : recv_buffered(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_POLL:
        if (feats & FEAT_BUFRING)
            return poll_buffered(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_SENDFILE:
        return send_queued(io, q, deadline, true);
    case WEFT__IO_OPEN:
        return ring_open(io, q, deadline);
    case WEFT__IO_RECVMSG:
        if (feats & FEAT_BUFRING)
            return recvmsg_stream(io, q, deadline);
        return ring_run(io, q, deadline);
    case WEFT__IO_STAT:
    case WEFT__IO_ACCEPT:
    case WEFT__IO_MKDIR:
    case WEFT__IO_UNLINK:
    case WEFT__IO_RENAME:
    case WEFT__IO_LINK:
    case WEFT__IO_SYMLINK:
    case WEFT__IO_READLINK:
    case WEFT__IO_TRUNCATE:
    case WEFT__IO_FTRUNCATE:
    case WEFT__IO_GETDENTS:
        return ur_submit_other(io, q, deadline);
    default:
        return ring_run(io, q, deadline);
    }
}

/* Whether q is a receive with MSG_TRUNC on a stream socket, which moves no bytes into its
 * buffer: recv(2) discards them (tcp_recvmsg), and so does recv_flags for the bytes held
 * (weft__ubufs_skip). Its buffer may be NULL (net.c's trunc_discards, weft.h). */
static WEFT_NOINLINE bool trunc_discards(weft__io *io, const weft__ioreq *q)
{
    return q->op == WEFT__IO_RECV && (q->flags & MSG_TRUNC) &&
           weft__fdtable_kind(io, q->fd) == WEFT__FD_STREAM && io->fds[q->fd].sock;
}

/* The requests ur_submit sends here, checked before they go their way:
 * - a length the ring would cut: past the user address space it is -EFAULT (below it the
 *   kernel checks the range itself, and the buffered receives copy no more than it would);
 * - a buffer in the first page (NULL) with bytes to move: -EFAULT as from the system call:
 *   the buffered receive and the send behind copy in user space, where it would fault; but
 *   not for a receive that discards (trunc_discards), which copies nothing;
 * - a readv whose array has such an entry, likewise;
 * - a file call the ring would get wrong (file_rw_special). */
static WEFT_NOINLINE ssize_t ur_submit_checked(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    bool rw = q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE || q->op == WEFT__IO_RECV ||
              q->op == WEFT__IO_SEND;
    if (rw && q->len &&
        (((uintptr_t)q->buf < 4096 && !trunc_discards(io, q)) ||
         weft__io_range_faults(q->buf, q->len)))
        return -EFAULT;
    if (q->op == WEFT__IO_READV && iov_in_first_page(q->iov, q->iovcnt))
        return -EFAULT;
    if ((q->opts & WEFT__IOQ_FILE) && (q->op == WEFT__IO_READ || q->op == WEFT__IO_WRITE)) {
        ssize_t r = file_rw_special(io, q, deadline);
        if (r == UR_POS_WRITE) {
            /* A regular file: not a send behind (send_behind would come here too) */
            r = ring_run(io, q, deadline);
            if (r > 0 && (size_t)r < q->len)
                pos_after_short_write(io, q->fd, r);
            return r;
        }
        if (r != UR_PLAIN)
            return r;
    }
    return ur_dispatch(io, q, deadline);
}

static ssize_t ur_submit(weft__io *io, const weft__ioreq *q, int64_t deadline)
{
    /* Its operations complete on this ring, and a socket's armed receive holds its bytes
     * here: the task never moves to another worker from now on (task.h, steal.c). */
    weft__task_bind(io->w->current);
    /* One test for everything ur_submit_checked looks at, so that a socket's plain read or
     * write (a buffer above the first page, a length the ring takes whole) pays a compare
     * or two and no call: requests without a buffer (a poll, an accept) go there too, and
     * are sent on unchanged. */
    if (weft_unlikely(q->len > MAX_RW_COUNT || (uintptr_t)q->buf < 4096 ||
                      (q->opts & WEFT__IOQ_FILE) || q->op == WEFT__IO_READV))
        return ur_submit_checked(io, q, deadline);
    return ur_dispatch(io, q, deadline);
}

/* weft_close's wait for the sends written behind on fd (weft__io_ops.flush). */
static void ur_flush(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    weft__usend *u = weft__usends_find(&s->sends, fd);
    if (u && u->inflight && u->fdgen == weft__fdtable_gen(io, fd))
        (void)send_wait(&io, fd, u->deadline); /* past it, the forget cancels the rest */
}

static bool ur_defer_shutdown(weft__io *io, int fd)
{
    uring_state *s = io->backend;
    weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
    if (f && f->fdgen == weft__fdtable_gen(io, fd))
        f->wshut = 1; /* from now on writes get the kernel's answer */
    /* And in the fd's record, for a receive armed only after the shutdown (the record of
     * the ring's receive is made at the first read). Without memory for the table the fd
     * was never used here, and its first use classifies it afresh. */
    weft__fdrec *rec;
    if (weft__fdtable_get(io, fd, &rec) == 0)
        rec->wshut = 1;
    weft__usend *u = weft__usends_find(&s->sends, fd);
    if (!u || !u->inflight || u->fdgen != weft__fdtable_gen(io, fd))
        return false;
    u->shut = SHUT_WR;
    return true;
}

/* How long at most a send goes on after the forget of its fd (send_goes_on): the kernel
 * likewise gives up the unsent bytes of a closed socket whose peer stops reading, after its
 * orphan retries. A peer that never reads then costs a duplicate fd and a buffer for this
 * long, not until the runtime ends. */
#define ORPHAN_SEND_MAX_NS (60 * WEFT_SEC)

/* Whether a send still in flight at fd's forget goes on after it: when nobody waited for it
 * to the end, that is, from outside a task, on a worker other than the closer's (fdshare.c's
 * message), or from a task whose wait (ur_flush: weft_close and weft_fd_forget wait first)
 * its cancellation cut: the write returned, so its bytes go out, as a kernel socket's
 * buffered bytes do after close(2). It goes on while the write's deadline lasts, and for
 * ORPHAN_SEND_MAX_NS at most; a wait the deadline cut drops the rest here. It goes on
 * through a duplicate of the fd, which the cancel below finds too, so the send is prepared
 * again once that cancel's completion comes. */
static bool send_goes_on(weft__usend *u, bool fd_held)
{
    /* Not through a number that may name another file by now (fd_held false: another
     * worker's weft_fd_forget, which does not wait for this one): the duplicate would be
     * that file's, and the rest of the send would go to it. */
    if (!u->inflight || !fd_held)
        return false;
    int64_t now = weft__clock_ns();
    if (u->deadline != WEFT_FOREVER && now >= u->deadline)
        return false;
    if (u->deadline == WEFT_FOREVER || u->deadline - now > ORPHAN_SEND_MAX_NS)
        u->deadline = now + ORPHAN_SEND_MAX_NS;
    u->until.tv_sec = u->deadline / WEFT_SEC;
    u->until.tv_nsec = u->deadline % WEFT_SEC;
    u->keepfd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0); /* -1 (out of fds): dropped, as before */
    if (u->keepfd < 0)
        return false;
    u->fd = u->keepfd;
    return true;
}

static void ur_forget(weft__io *io, int fd, bool fd_held)
{
    uring_state *s = io->backend;
    /* A send still in flight becomes an orphan: the cancel below stops it if the kernel still
     * holds it, and its completion frees it, or prepares it again on a duplicate of the fd
     * (send_goes_on). A shutdown deferred behind it runs now (the file may outlive this fd:
     * a dup, a child; and its peer must see the end of stream), or after the send that goes
     * on (orphan_end). */
    weft__usend *u = weft__usends_find(&s->sends, fd);
    if (u && u->fdgen == weft__fdtable_gen(io, fd) && !send_goes_on(u, fd_held) && u->shut >= 0)
        weft__sys_shutdown(s->sys, fd, u->shut);
    weft__usends_forget(&s->sends, fd);
    weft__ubuf_fd *f = weft__ubufs_find(&s->bufs, fd);
    if (f)
        weft__ubufs_drop(&s->bufs, f); /* the cancel below stops its receive */
    struct io_uring_sqe *sqe = get_sqe_for_cancel(s);
    if (!sqe)
        return; /* the ring refuses every submission: nothing in flight can be cancelled */
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    /* Submitted now: the fd is about to be closed, and the cancel must find it open. With
     * GETEVENTS, so that under DEFER_TASKRUN the cancelled operations finish now and drop
     * their hold on the file: the close that follows then really closes it (the peer sees
     * the end of stream) instead of waiting for the next tick. Their CQEs wait in the CQ
     * for the loop's next reap. On a movable ring an operation another thread submitted
     * finishes when that thread runs its completion work: until then the file stays open
     * (after a hand-off, up to the held thread's next timer tick). */
    if (enter_ok(s) == 0)
        io_uring_submit_and_get_events(&s->ring);
}

const weft__io_ops weft__io_uring = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .poll = ur_poll,
    .notify = ur_notify,
    .submit = ur_submit,
    .forget = ur_forget,
    .flush = ur_flush,
    .defer_shutdown = ur_defer_shutdown,
    .held = ur_held,
    .takes_reads = ur_takes_reads,
};
