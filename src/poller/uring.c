/* The poller over io_uring: each registration is an IORING_OP_POLL_ADD on the fd, tagged
 * with the fd and a generation so that completions of a poll since removed or replaced are
 * recognised and dropped.
 * - Edge: one multishot poll (IORING_POLL_ADD_MULTI, 5.13), armed for the registration's
 *   life: the kernel posts a completion at each wake-up of the file, as EPOLLET reports an
 *   edge. Probed at create; without it, edge falls back to the level path below, which
 *   reports at least every edge (spurious reports, never missed ones).
 * - Level: a single-shot poll, re-armed at the start of the next wait; a poll armed on a
 *   ready file completes at once, so each wait reports the fd while it stays ready, and a
 *   drained fd (drained before that wait) is not reported. Re-arming at the end of the wait
 *   instead would report readiness the caller then consumed.
 * - Oneshot: a single-shot poll not re-armed until weft_poller_reregister.
 * Threads: the table, the list of polls to re-arm and the submission queue are under `lock`,
 * and any thread submits its own change at once (so a deregistered fd's poll is removed
 * before deregister returns its SQE to the kernel, and a close after it frees the file). The
 * completion queue is the waiter's alone: it blocks in io_uring_wait_cqe*, which with
 * IORING_FEAT_EXT_ARG (required) never touches the submission queue, and reaps under the
 * lock. The ring has no SINGLE_ISSUER/DEFER_TASKRUN: several threads submit. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <liburing.h>

#include "poller.h"
#include "../internal.h"
#include "../sys.h"
#include "../worker.h"

#define SQ_ENTRIES 256           /* each change submits at once: a few suffice; re-arms batch */
#define CQ_ENTRIES 4096          /* beyond this, completions wait in the kernel's overflow list */
#define TAG_IGNORE ((uint64_t)0) /* removals: nobody waits for their completion */
#define TAG_WAKE   ((uint64_t)1) /* the waker's eventfd; real tags have a generation >= 1 above */

/* One fd's registration. owner: whoever holds the state's lock. */
typedef struct ureg {
    uint64_t token;
    uint32_t gen;      /* bumped by every add, modify and delete: completions tagged with an
                        * older one are stale. Never 0, so a tag never equals TAG_*. */
    uint16_t interest; /* WEFT_READABLE|WRITABLE|POLL_EDGE|POLL_ONESHOT */
    uint8_t used;      /* registered */
    uint8_t armed;     /* a poll of this generation is in the kernel (or in the SQ) */
    uint8_t queued;    /* in the re-arm list */
} ureg;

typedef struct ur_state {
    struct io_uring ring;
    pthread_mutex_t lock; /* guards everything below, and the submission queue */
    ureg *regs;           /* indexed by fd; grown by register */
    int *rearm;           /* fds to re-arm at the next wait; as long as regs, so it never fills */
    size_t nregs, nrearm;
    bool multi;      /* multishot polls work (probed at init) */
    bool wake_armed; /* the waker's poll is in the kernel */
} ur_state;

static inline uint64_t tag_of(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* An SQE, submitting what is queued when the SQ is full. NULL only if the ring refuses. */
static struct io_uring_sqe *get_sqe(ur_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    for (int i = 0; !sqe && i < 4; i++) {
        weft__sys_enter(NULL, WEFT__SYS_io_uring_enter);
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* Hands the queued SQEs to the kernel. A refusal (-EBUSY with a full completion queue)
 * leaves them queued: the next submit, at the latest the next wait's, takes them. */
static void submit(ur_state *s)
{
    if (io_uring_sq_ready(&s->ring)) {
        weft__sys_enter(NULL, WEFT__SYS_io_uring_enter);
        io_uring_submit(&s->ring);
    }
}

static unsigned poll_mask(unsigned interest)
{
    return weft__poller_epoll_mask(interest); /* POLLIN == EPOLLIN, ... on Linux */
}

static int arm(ur_state *s, int fd, ureg *r)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EAGAIN;
    unsigned mask = poll_mask(r->interest);
    if ((r->interest & WEFT_POLL_EDGE) && !(r->interest & WEFT_POLL_ONESHOT) && s->multi)
        io_uring_prep_poll_multishot(sqe, fd, mask);
    else
        io_uring_prep_poll_add(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, tag_of(fd, r->gen));
    r->armed = 1;
    return 0;
}

/* Removes r's poll, if armed. A removal that cannot be queued leaves the poll running; its
 * completions are stale by then (the caller bumps the generation) and dropped. */
static void disarm(ur_state *s, int fd, ureg *r)
{
    if (!r->armed)
        return;
    r->armed = 0;
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return;
    io_uring_prep_poll_remove(sqe, tag_of(fd, r->gen));
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

static void next_gen(ureg *r)
{
    if (++r->gen == 0)
        r->gen = 1;
}

static int arm_wake(weft_poller *p, ur_state *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EAGAIN;
    if (s->multi)
        io_uring_prep_poll_multishot(sqe, p->wakefd, POLLIN);
    else
        io_uring_prep_poll_add(sqe, p->wakefd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    s->wake_armed = true;
    return 0;
}

/* Whether a test build was told to go without multishot polls (WEFT_URING_OFF containing
 * "pollmulti"), so that the fallback runs under test. Never in other builds. */
static bool multi_off(void)
{
#ifdef WEFT_TESTING
    const char *off = getenv("WEFT_URING_OFF");
    return off && strstr(off, "pollmulti");
#else
    return false;
#endif
}

WEFT_COLD static void ur_free(ur_state *s)
{
    weft__free(NULL, s->regs);
    weft__free(NULL, s->rearm);
    pthread_mutex_destroy(&s->lock);
    weft__free(NULL, s);
}

WEFT_COLD static int ur_init(weft_poller *p)
{
    ur_state *s = weft__calloc(NULL, 1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
    weft__sys_enter(NULL, WEFT__SYS_io_uring_setup);
    int r = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &params);
    if (r < 0) {
        ur_free(s);
        return r;
    }
    /* Waits with a timeout that leave the SQ alone (5.11), and poll add/remove. */
    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    if (!(s->ring.features & IORING_FEAT_EXT_ARG) || !probe ||
        !io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) ||
        !io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE))
        r = -ENOSYS;
    if (probe)
        io_uring_free_probe(probe);
    /* The multishot probe is the waker's first arming: a kernel without it fails the SQE
     * with -EINVAL while submitting it, so the completion is there when submit returns. */
    s->multi = !multi_off();
    if (r == 0)
        r = arm_wake(p, s);
    if (r == 0) {
        submit(s);
        struct io_uring_cqe *cqe;
        if (s->multi && io_uring_peek_cqe(&s->ring, &cqe) == 0 && cqe->user_data == TAG_WAKE &&
            cqe->res == -EINVAL) {
            io_uring_cqe_seen(&s->ring, cqe);
            s->multi = false;
            s->wake_armed = false; /* armed single-shot at the first wait */
        }
    }
    if (r < 0) {
        io_uring_queue_exit(&s->ring);
        ur_free(s);
        return r;
    }
    p->backend = s;
    p->exact_edge = s->multi;
    return 0;
}

WEFT_COLD static void ur_fini(weft_poller *p)
{
    ur_state *s = p->backend;
    io_uring_queue_exit(&s->ring); /* cancels every poll still armed */
    ur_free(s);
}

/* Makes room for fd in the table (and the re-arm list). Under the lock. */
static int grow(ur_state *s, int fd)
{
    if ((size_t)fd < s->nregs)
        return 0;
    size_t n = s->nregs ? s->nregs : 64;
    while (n <= (size_t)fd)
        n *= 2;
    ureg *regs = weft__calloc(NULL, n, sizeof *regs);
    int *rearm = weft__calloc(NULL, n, sizeof *rearm);
    if (!regs || !rearm) {
        weft__free(NULL, regs);
        weft__free(NULL, rearm);
        return -ENOMEM;
    }
    if (s->nregs) {
        memcpy(regs, s->regs, s->nregs * sizeof *regs);
        memcpy(rearm, s->rearm, s->nrearm * sizeof *rearm);
    }
    weft__free(NULL, s->regs);
    weft__free(NULL, s->rearm);
    s->regs = regs;
    s->rearm = rearm;
    s->nregs = n;
    return 0;
}

static void queue(ur_state *s, int fd, ureg *r)
{
    if (!r->queued) {
        r->queued = 1;
        s->rearm[s->nrearm++] = fd;
    }
}

/* A single-shot poll reports readiness as it is when armed: armed now, between waits, it
 * would report at the next wait what was true at registration (an unconnected socket's
 * hang-up, before the connect). So it is armed by the next wait's start, as a level re-arm
 * is; or now if a wait is under way (which must watch it, as epoll's would). A multishot
 * poll reports each later wake-up as well, so an early first report is only spurious. */
static int arm_or_queue(weft_poller *p, ur_state *s, int fd, ureg *r)
{
    bool multi = (r->interest & WEFT_POLL_EDGE) && !(r->interest & WEFT_POLL_ONESHOT) && s->multi;
    /* Relaxed: the mutex orders it. A waiter stores 1 before it takes the lock to re-arm,
     * so a change made under the lock after that re-arm sees 1 and arms at once; one that
     * sees 0 is armed by the next re-arm. */
    if (multi || atomic_load_explicit(&p->waiting, memory_order_relaxed))
        return arm(s, fd, r);
    queue(s, fd, r);
    return 0;
}

/* What epoll_ctl says of fd, asked of an epoll instance made for the question: -EPERM for a
 * file that cannot be polled (a regular file, a directory, /dev/null: always ready, which a
 * poll would report at once, again and again), -EBADF for an O_PATH fd, else 0. For the fds
 * that are not sockets or pipes (ttys, eventfds, timerfds...): registering them is rare, and
 * the stat's type cannot tell /dev/null from a tty. */
static WEFT_NOINLINE int epoll_refuses(int fd)
{
    int ep = weft__sys_epoll_create(NULL, EPOLL_CLOEXEC);
    if (ep < 0)
        return 0; /* no instance to ask (out of fds): the poll will say */
    struct epoll_event ev = {.events = EPOLLIN};
    int r = weft__sys_epoll_ctl(NULL, ep, EPOLL_CTL_ADD, fd, &ev);
    weft__sys_close(NULL, ep);
    return r == -EPERM || r == -EBADF ? r : 0;
}

static int ur_ctl(weft_poller *p, int op, int fd, uint64_t token, unsigned interest)
{
    ur_state *s = p->backend;
    if (fd == p->wakefd || fd == s->ring.ring_fd)
        return op == EPOLL_CTL_ADD ? -EINVAL : -ENOENT; /* the poller's own fds */
    if (op != EPOLL_CTL_DEL) {
        /* What epoll_ctl would refuse: an fd that is not open, or a file (always ready,
         * which a poll would report at once, again and again). */
        struct stat st;
        int r = weft__sys_fstat(NULL, fd, &st);
        if (r < 0)
            return r;
        if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode) && (r = epoll_refuses(fd)) < 0)
            return r;
    }
    pthread_mutex_lock(&s->lock);
    int r = 0;
    ureg *reg = (size_t)fd < s->nregs ? &s->regs[fd] : NULL;
    if (op == EPOLL_CTL_ADD) {
        if (reg && reg->used) {
            r = -EEXIST;
        } else if ((r = grow(s, fd)) == 0) {
            reg = &s->regs[fd];
            next_gen(reg);
            reg->token = token;
            reg->interest = (uint16_t)interest;
            reg->used = 1;
            r = arm_or_queue(p, s, fd, reg);
            if (r < 0)
                reg->used = 0; /* nothing changed */
        }
    } else if (!reg || !reg->used) {
        r = -ENOENT;
    } else {
        disarm(s, fd, reg);
        next_gen(reg); /* completions of the old poll are stale from here */
        if (op == EPOLL_CTL_DEL) {
            reg->used = 0; /* a queued re-arm finds it unused and skips it */
        } else {
            reg->token = token;
            reg->interest = (uint16_t)interest;
            if (arm_or_queue(p, s, fd, reg) < 0)
                queue(s, fd, reg); /* no SQE now: the next wait arms it (nothing lost) */
        }
    }
    submit(s);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* The start of a wait: re-arm the level polls reported by the last one, and the waker's
 * single-shot poll. Under the lock. */
static void rearm_all(weft_poller *p, ur_state *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->nrearm; i++) {
        int fd = s->rearm[i];
        ureg *r = &s->regs[fd];
        if (r->used && !r->armed && arm(s, fd, r) < 0) {
            s->rearm[kept++] = fd; /* no SQE: the next wait tries again */
            continue;
        }
        r->queued = 0;
    }
    s->nrearm = kept;
    if (!s->wake_armed)
        arm_wake(p, s);
    submit(s);
}

static void drain_wake(weft_poller *p)
{
    uint64_t v;
    while (weft__sys_read(NULL, p->wakefd, &v, sizeof v) > 0)
        ;
}

/* Turns completions into events. Under the lock; the CQ is the waiter's. *requeued: a poll
 * the kernel cancelled was queued to be armed again (no event for it). */
static int reap(weft_poller *p, ur_state *s, weft_poll_event *evs, int max, bool *requeued)
{
    int n = 0;
    bool woke = false;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        if (n >= max)
            break; /* the rest stay in the CQ for the next wait */
        seen++;
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        bool more = cqe->flags & IORING_CQE_F_MORE;
        if (ud == TAG_IGNORE)
            continue;
        if (ud == TAG_WAKE) {
            if (!more)
                s->wake_armed = false;
            if (cqe->res < 0)
                continue; /* cancelled or refused: re-armed at the next wait */
            drain_wake(p);
            if (!woke) {
                evs[n++] =
                    (weft_poll_event){.token = WEFT_POLL_WAKE_TOKEN, .events = WEFT_POLL_WAKE};
                woke = true;
            }
            continue;
        }
        size_t fd = (uint32_t)ud;
        if (fd >= s->nregs)
            continue;
        ureg *r = &s->regs[fd];
        if (!r->used || r->gen != (uint32_t)(ud >> 32))
            continue; /* a poll since removed or replaced */
        if (!more)
            r->armed = 0;
        if (cqe->res == -ECANCELED) {
            /* Not ours (a removal or a change bumps the generation first): the kernel cancels
             * a poll when the thread that submitted it exits (its completion would run in
             * that thread's context), and a poll may have been submitted by any thread that
             * registered or waited. Armed again by the waiting thread, at the next wait; a
             * fd that became ready meanwhile completes the new poll at once. */
            queue(s, (int)fd, r);
            *requeued = true;
            continue;
        }
        if (cqe->res < 0) {
            /* The poll itself failed (the fd was closed under it, say): reported as an
             * error, and not re-armed; reregister or deregister it. */
            evs[n++] = (weft_poll_event){.token = r->token, .events = WEFT_POLL_ERROR};
            continue;
        }
        evs[n++] =
            (weft_poll_event){.token = r->token, .events = weft__poller_bits((uint32_t)cqe->res)};
        if (!r->armed && !(r->interest & WEFT_POLL_ONESHOT))
            queue(s, (int)fd, r);
    }
    io_uring_cq_advance(&s->ring, seen);
    return n;
}

static int ur_wait(weft_poller *p, weft_poll_event *evs, int max, int64_t timeout_ns)
{
    ur_state *s = p->backend;
    /* Saturated: a deadline near INT64_MAX (a far one, not WEFT_FOREVER) gives such a
     * timeout, and the sum must not overflow. */
    int64_t now = timeout_ns > 0 ? weft__clock_ns() : 0;
    int64_t until = timeout_ns <= 0                ? 0
                    : timeout_ns > INT64_MAX - now ? INT64_MAX
                                                   : now + timeout_ns;
    for (int tries = 0;; tries++) {
        pthread_mutex_lock(&s->lock);
        rearm_all(p, s);
        pthread_mutex_unlock(&s->lock);
        int r = 0;
        struct io_uring_cqe *cqe;
        weft__sys_enter(NULL, WEFT__SYS_io_uring_enter);
        if (timeout_ns < 0) {
            r = io_uring_wait_cqe(&s->ring, &cqe);
        } else if (timeout_ns > 0) {
            struct __kernel_timespec ts = {.tv_sec = timeout_ns / WEFT_SEC,
                                           .tv_nsec = timeout_ns % WEFT_SEC};
            r = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
        } else if (io_uring_cq_has_overflow(&s->ring)) {
            io_uring_get_events(&s->ring); /* brings the kernel's overflow list in */
        }
        bool requeued = false;
        pthread_mutex_lock(&s->lock);
        int n = reap(p, s, evs, max, &requeued);
        pthread_mutex_unlock(&s->lock);
        if (n == 0 && r < 0 && r != -ETIME)
            return r; /* -EINTR: a signal handler ran */
        /* Only polls the kernel cancelled came: armed again, the wait goes on for what is
         * left of its time (one more look when it had none: they may be ready). */
        if (n == 0 && requeued && tries < 8) {
            if (timeout_ns > 0 && (timeout_ns = until - weft__clock_ns()) <= 0)
                timeout_ns = 0;
            continue;
        }
        return n;
    }
}

const weft__poller_ops weft__poller_uring = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .ctl = ur_ctl,
    .wait = ur_wait,
};
