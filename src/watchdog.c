/* The stall detector. A thread per runtime samples each worker's switch counter (`pub`):
 * one that has stayed the same, while the worker is not asleep in its reactor, for longer
 * than the threshold is a task that has not yielded, parked or finished for that long (a
 * loop calling no blocking weft function, a blocking system call, a lock held by a plain
 * thread), or the loop itself stuck in a stackless task's poll. The watchdog then
 * asks that worker's thread for its backtrace with a signal: the handler, on the stalled
 * thread, walks the frame pointers of the interrupted code within the running task's stack
 * and leaves the return addresses in the worker's part; the watchdog names them and writes
 * the report. A stall is reported when it reaches the threshold, and again, with a new
 * backtrace, each time its length doubles (2, 4, 8 ... thresholds: a long stall shows where
 * it went, in few lines); reports are capped at WATCH_PER_MINUTE a minute (a bucket of that
 * many, refilled evenly), so a program that stalls all the time costs a few lines a minute.
 *
 * Sampling period: a quarter of the threshold while some worker runs a task, doubling up to
 * 100 ms while none does, so an idle runtime costs ten wake-ups a second of one thread and a
 * busy one about 0.1% of a CPU at the 10 ms default. A stall is reported between 1 and 1.25
 * thresholds after it began (up to 100 ms more if it began while the runtime was idle). */
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_env.h"
#include "probes.h"
#include "restartable.h"
#include "cycles.h"
#include "dump.h"
#include "log.h"
#include "runtime.h"
#include "stack.h"
#include "task.h"
#include "watchdog.h"
#include "worker.h"

#define WATCH_IDLE_MAX_NS (100 * 1000000LL)
#define WATCH_CYCLES_NS   (1000 * 1000000LL) /* a walk of every record: seldom */
#define WATCH_PER_MINUTE  10
#define WATCH_REFILL_NS   (60 * 1000000000LL / WATCH_PER_MINUTE)

struct weft__watchdog {
    pthread_t thread;
    const weft__runtime *rt; /* whose workers it watches; fixed */
    /* 1 while it sleeps longer than its busy period with the hand-off on (weft__watchdog_poke):
     * set by the watchdog before it sleeps, exchanged to 0 by the first worker that wakes. */
    _Atomic int napping;
    pthread_mutex_t lock; /* guards stop, with cond: the stop wakes the sleep */
    pthread_cond_t cond;
    bool stop;
    bool own_signal;     /* the handler is weft's: worker threads unblock the signal */
    bool syscalls_known; /* /proc's system call numbers are this CPU's (restartable.h) */
    /* WEFT_TESTING builds: WEFT_TEST_SEIZE_PAUSE_US, a sleep between a seize and the second
     * look, and WEFT_TEST_SEIZE_DELAY_US, between the first look and the seize (try_seize),
     * so that a test sees sleepers wake inside those windows. Fixed. */
    int64_t test_seize_pause_ns, test_seize_delay_ns;
    weft__cycles cycles; /* circles of joins reported (cycles.c) */
    int64_t cycles_at;   /* when the last walk for them was */
    /* How often they are walked: WATCH_CYCLES_NS, or in WEFT_TESTING builds the environment's
     * WEFT_TEST_CYCLES_NS when positive (tests that wait for a walk, or for several to see
     * that none reports, shorten it). Fixed. */
    int64_t cycles_every_ns;
    int64_t threshold_ns;
    double tokens; /* reports left in the rate limit */
    int64_t refilled_at;
    struct watch_seen {
        uint64_t pub;        /* the last value seen */
        uint64_t woke;       /* and of the worker's wakes */
        int64_t since;       /* when it was first seen */
        int64_t next_ns;     /* the length at which this stall is reported next (doubling) */
        int64_t handoff_ns;  /* the length at which a hand-off is asked next */
        int64_t handoff_gap; /* and the wait after that ask: doubling, up to 8 thresholds */
    } * seen;
};

void weft__watch_thread(weft__watch *wt, struct weft__handoff_slots *slots)
{
    atomic_store_explicit(&wt->slots, slots, memory_order_relaxed);
    atomic_store_explicit(&wt->thread, pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&wt->tid, (pid_t)syscall(SYS_gettid), memory_order_relaxed);
}

/* ---- The signal handler, on the stalled worker's thread -------------------------------- */

/* The states of a worker's `npcs` besides a count: asked by the watchdog, claimed by the
 * handler (writing), or withdrawn by a watchdog that stopped waiting. */
enum { WATCH_ASKED = -1, WATCH_CLAIMED = -2, WATCH_IDLE = 0, WATCH_HANDED = 1, WATCH_REFUSED = 2 };

/* One word of the stalled task's stack, for the walk below. The walk starts from the frame
 * pointer register as the signal found it, and inside a function built without frame
 * pointers (libc's) that register may hold any address in the stack, a local's among them:
 * the walk's bounds keep every read inside the task's stack, so the read is safe, but an ASan
 * build would take a read next to a local for an overflow. Not instrumented, then; not
 * inlined, so that the attribute holds. */
__attribute__((no_sanitize("address"), noinline)) static uintptr_t stack_word(uintptr_t at)
{
    return *(const uintptr_t *)at;
}

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)sig, (void)si;
    int saved_errno = errno;
    weft__worker *w = weft__worker_tls();
    /* Asked to let go of the worker (handoff.c): claimed as the backtrace is, below. */
    int want = WATCH_ASKED;
    if (w && atomic_compare_exchange_strong_explicit(&w->watch.handoff, &want, WATCH_CLAIMED,
                                                     memory_order_acquire, memory_order_relaxed)) {
        uint64_t lent = 0;
        bool handed = w->rt->handoff_detach(w, uctx, &lent);
        w->watch.handoff_lent = lent;
        /* release: handoff_lent before the answer. After a hand-off nothing else of w is
         * touched here: another thread may drive it already. */
        atomic_store_explicit(&w->watch.handoff, handed ? WATCH_HANDED : WATCH_REFUSED,
                              memory_order_release);
        if (handed) {
            errno = saved_errno;
            return;
        }
    }
    /* Claim the request (ASKED -> CLAIMED), so that a watchdog that gave up waiting cannot
     * read the addresses while they are written: it withdraws with a CAS that then fails,
     * and waits for the count. acquire: after the watchdog's request. */
    int asked = WATCH_ASKED;
    if (!w ||
        !atomic_compare_exchange_strong_explicit(&w->watch.npcs, &asked, WATCH_CLAIMED,
                                                 memory_order_acquire, memory_order_relaxed)) {
        errno = saved_errno;
        return;
    }
    /* The run the watchdog judged stalled has ended if the worker switched since it looked
     * (this thread writes `pub`): the task running now is another run, maybe another task,
     * which must not be named or counted for that stall. */
    w->watch.ended =
        atomic_load_explicit(&w->watch.pub, memory_order_relaxed) != w->watch.asked_pub;
    if (w->watch.ended) {
        atomic_store_explicit(&w->watch.npcs, 0, memory_order_release); /* after `ended` */
        errno = saved_errno;
        return;
    }
    const ucontext_t *uc = uctx;
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.regs[29];
#endif
    /* Frames inside the running task's stack only (one without frame pointers ends it). */
    const weft_task *t = w->current;
    uintptr_t lo = 0, hi = 0;
    if (t && t->stack) {
        lo = (uintptr_t)t->stack->lo;
        hi = (uintptr_t)weft__stack_hi(t->stack);
    }
    w->watch.task_id = t ? t->id : 0;
    weft_task *cur = w->current;
    if (cur) { /* the task's record of its stalls (the dump's "stalls"): this thread owns it */
        int64_t ms = w->watch.ran_ns / 1000000;
        uint64_t run = atomic_load_explicit(&w->watch.pub, memory_order_relaxed) + 1;
        uint16_t nst = atomic_load_explicit(&cur->nstalls, memory_order_relaxed);
        if (w->watch.counted != run && nst < UINT16_MAX) /* once however often reported */
            atomic_store_explicit(&cur->nstalls, nst + 1, memory_order_relaxed);
        w->watch.counted = run;
        if (ms > atomic_load_explicit(&cur->stall_max_ms, memory_order_relaxed))
            atomic_store_explicit(&cur->stall_max_ms, ms < UINT16_MAX ? ms : UINT16_MAX,
                                  memory_order_relaxed);
    }
    for (size_t i = 0; i < sizeof w->watch.name; i++) /* no library call in a handler */
        w->watch.name[i] = t ? t->name[i] : '\0';
    int n = 0;
    w->watch.pcs[n++] = pc;
    while (n < WEFT__WATCH_FRAMES && fp >= lo && fp + 16 <= hi && !(fp & 7)) {
        uintptr_t next = stack_word(fp);
        uintptr_t ret = stack_word(fp + 8);
        if (!ret)
            break;
        w->watch.pcs[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    /* release: the addresses before the count the watchdog waits for. */
    atomic_store_explicit(&w->watch.npcs, n, memory_order_release);
    errno = saved_errno;
}

/* ---- The report ------------------------------------------------------------------------ */

/* The thread's scheduler state from /proc ('R' running, 'S' or 'D' in a system call), and in
 * the second case the system call's number (-1 if unknown) and, if `args`, its arguments. A
 * thread inside a system call is not signalled for a backtrace: the signal could end a sleep
 * or a read it made on purpose (EINTR), and its user-space frames say less than the call
 * does. */
static char thread_state_args(pid_t tid, long *syscall_nr, unsigned long args[6])
{
    char path[64], buf[512];
    *syscall_nr = -1;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    char st = p && p[1] == ' ' ? p[2] : '?';
    /* For a runnable thread too: one preempted inside a system call (on its way into a read,
     * say) shows it here ("running" for one on a CPU, -1 for one preempted in its own code:
     * no call). A signal sent to it would be pending when the call goes to sleep, and a call
     * SA_RESTART does not restart (a read with SO_RCVTIMEO) would fail with EINTR. */
    {
        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
        if ((f = fopen(path, "re")) != NULL) {
            unsigned long a[6];
            int got = fscanf(f, "%ld %lx %lx %lx %lx %lx %lx", syscall_nr, &a[0], &a[1], &a[2],
                             &a[3], &a[4], &a[5]);
            if (got < 1)
                *syscall_nr = -1;
            if (args) {
                for (int i = 0; i < 6; i++)
                    args[i] = i + 1 < got ? a[i] : 0;
                if (got < 7)
                    *syscall_nr = -1; /* arguments unknown: not a call to judge */
            }
            fclose(f);
        }
    }
    return st;
}

static char thread_state(pid_t tid, long *syscall_nr)
{
    return thread_state_args(tid, syscall_nr, NULL);
}

static WEFT_COLD void report(struct weft__watchdog *wd, weft__worker *w, unsigned index,
                             uint64_t pub, int64_t ran_ns, bool again, bool ask)
{
    int n = 0;
    long nr = -1;
    char st = thread_state(atomic_load_explicit(&w->watch.tid, memory_order_relaxed), &nr);
    if (st != 'R' || nr >= 0) /* asleep, or inside a call the signal could cut short */
        ask = false;
    if (ask) {
        w->watch.ran_ns = ran_ns; /* for the handler, published by the store below */
        w->watch.asked_pub = pub;
        w->watch.ended = false;
        /* release: pairs with the handler's claim. */
        atomic_store_explicit(&w->watch.npcs, WATCH_ASKED, memory_order_release);
        if (pthread_kill(atomic_load_explicit(&w->watch.thread, memory_order_relaxed),
                         WEFT__WATCH_SIGNAL) == 0) {
            /* The handler answers within microseconds on a running thread; 20 ms covers a
             * thread the kernel does not schedule at once. */
            for (int i = 0; i < 200; i++) {
                n = atomic_load_explicit(&w->watch.npcs, memory_order_acquire);
                if (n >= 0)
                    break;
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
        int asked = WATCH_ASKED;
        if (n < 0 &&
            !atomic_compare_exchange_strong_explicit(&w->watch.npcs, &asked, WATCH_IDLE,
                                                     memory_order_acquire, memory_order_acquire)) {
            /* Claimed meanwhile: the handler is writing; its count comes at once. */
            while ((n = atomic_load_explicit(&w->watch.npcs, memory_order_acquire)) < 0)
                sched_yield();
        }
        if (n < 0)
            n = 0;
        else if (n == 0 && w->watch.ended)
            return; /* the run ended between the look and the signal: no stall to report */
    }
    /* The task's name and id come from the handler, which read them on the task's thread. */
    weft__dumpbuf b = {0};
    if (n && w->watch.task_id) {
        weft__dumpbuf_printf(&b, "weft: stall: task %llu \"", (unsigned long long)w->watch.task_id);
        weft__dumpbuf_text(&b, w->watch.name, sizeof w->watch.name - 1);
        weft__dumpbuf_printf(&b, "\" on worker %u", index);
    } else if (n)
        weft__dumpbuf_printf(&b, "weft: stall: the loop of worker %u (no task)", index);
    else
        weft__dumpbuf_printf(&b, "weft: stall: a task on worker %u", index);
    weft__dumpbuf_printf(&b, " %s %.1f ms without a switch",
                         again ? "is still running after" : "has run for", (double)ran_ns / 1e6);
    if (n)
        weft__dumpbuf_printf(&b, "; its backtrace now:\n");
    else if (nr >= 0)
        weft__dumpbuf_printf(&b, ", %s system call %ld (thread state %c)\n",
                             st == 'R' ? "in" : "blocked in", nr, st);
    else
        weft__dumpbuf_printf(&b, " (no backtrace: %s)\n",
                             wd->own_signal ? "the thread did not answer"
                                            : "SIGURG is the program's own");
    for (int i = 0; i < n; i++)
        weft__dumpbuf_frame(&b, i, w->watch.pcs[i], i == 0);
    weft__log(wd->rt, WEFT_LOG_WARN, b.p ? b.p : "", b.len);
    free(b.p);
    WEFT_PROBE2(stall, index, ran_ns / 1000000);
}

/* Whether the rate limit lets one more report through. */
static bool take_token(struct weft__watchdog *wd, int64_t now)
{
    wd->tokens += (double)(now - wd->refilled_at) / (double)WATCH_REFILL_NS;
    wd->refilled_at = now;
    if (wd->tokens > WATCH_PER_MINUTE)
        wd->tokens = WATCH_PER_MINUTE;
    if (wd->tokens < 1)
        return false;
    wd->tokens -= 1;
    return true;
}

/* ---- The involuntary hand-off ------------------------------------------------------------ */

/* A thread's context switches so far, voluntary and not, and its state, from /proc: -1 if
 * unknown. */
static long long thread_switches(pid_t tid, char *state)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *st = strstr(buf, "\nState:");
    const char *vol = strstr(buf, "\nvoluntary_ctxt_switches:");
    const char *inv = strstr(buf, "\nnonvoluntary_ctxt_switches:");
    unsigned long long a, b;
    if (!st || !vol || !inv || sscanf(vol, " voluntary_ctxt_switches: %llu", &a) != 1 ||
        sscanf(inv, " nonvoluntary_ctxt_switches: %llu", &b) != 1 ||
        sscanf(st, " State: %c", state) != 1)
        return -1;
    return (long long)(a + b);
}

/* The system call a thread sleeps in, and the user stack pointer and pc it was made at:
 * false if the thread is not asleep in one (/proc says "running" then). */
static bool thread_call_at(pid_t tid, long *nr, uintptr_t *sp, uintptr_t *pc)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    unsigned long a[6], s, p;
    int got = fscanf(f, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", nr, &a[0], &a[1], &a[2], &a[3],
                     &a[4], &a[5], &s, &p);
    fclose(f);
    *sp = s;
    *pc = p;
    return got == 9 && *nr >= 0;
}

/* The hand-off of a thread asleep in a call the signal would cut short (handoff.h): made from
 * here, without the thread, in two steps around a second look at it. The second look must
 * find it asleep in the same call, at the same place, with as many context switches as the
 * first: then it has not run since, and what the first step changed is all it will see. The
 * first look reads the switches before the call, the second after it: /proc reads a call
 * only once the thread is off its CPU, so a thread that ran and went back to sleep in the
 * same call has switched out by then, and is counted. */
static void try_seize(struct weft__watchdog *wd, weft__worker *w, pid_t tid)
{
    char st0 = '?', st1 = '?';
    long nr0, nr1;
    uintptr_t sp0, pc0, sp1, pc1;
    weft__handoff_slots *slots;
    long long sw0 = thread_switches(tid, &st0);
    if (sw0 < 0 || !thread_call_at(tid, &nr0, &sp0, &pc0))
        return;
    if (wd->test_seize_delay_ns) { /* a slow first step: a sleeper may wake before the seize */
        struct timespec ts = {0, (long)wd->test_seize_delay_ns};
        nanosleep(&ts, NULL);
    }
    if (!wd->rt->handoff_seize(w, st0 == 'D', pc0, sp0, &slots))
        return;
    if (wd->test_seize_pause_ns) {
        struct timespec ts = {0, (long)wd->test_seize_pause_ns};
        nanosleep(&ts, NULL);
    }
    bool asleep = thread_call_at(tid, &nr1, &sp1, &pc1) && nr1 == nr0 && sp1 == sp0 && pc1 == pc0 &&
                  thread_switches(tid, &st1) == sw0 && (st1 == 'S' || st1 == 'D');
    uint64_t lent;
    if (wd->rt->handoff_seize_end(w, slots, asleep, &lent))
        wd->rt->handoff_assign(w, lent); /* -EAGAIN: it stays lent; its task takes it back */
}

/* Asks w's thread, which has run one task for the hand-off threshold, to let go of w
 * (handoff.h), and finds w a relief thread if it did. Asked by the signal: a thread running
 * on a CPU, or one asleep in a system call that the signal leaves unnoticed (restartable.h:
 * the handler is installed with SA_RESTART, so a read of a pipe or a socket, a futex wait of
 * a pthread lock, goes on blocking once the handler has let go). One asleep in any other call
 * would see EINTR from the signal (a sleep, a poll cut short): for it the watchdog lets go of
 * w itself (try_seize). A runnable thread inside such a call is left alone. The state may
 * change between the look and the signal, as it may for a running thread: the window is the
 * same microseconds. */
static void try_handoff(struct weft__watchdog *wd, weft__worker *w)
{
    long nr;
    unsigned long args[6];
    pid_t tid = atomic_load_explicit(&w->watch.tid, memory_order_relaxed);
    char st = thread_state_args(tid, &nr, args);
    /* A thread in its own code, or asleep in (or preempted inside) a call the signal leaves
     * unnoticed (restartable.c). */
    bool in_call = nr >= 0;
    if (!(st == 'R' && !in_call) && !((st == 'S' || st == 'R') && in_call && wd->syscalls_known &&
                                      weft__restartable(nr, args))) {
        if ((st == 'S' || st == 'D') && in_call && wd->syscalls_known)
            try_seize(wd, w, tid);
        return;
    }
    if (!wd->own_signal)
        return;
    /* release: pairs with the handler's claim. */
    atomic_store_explicit(&w->watch.handoff, WATCH_ASKED, memory_order_release);
    int got = WATCH_ASKED;
    if (pthread_kill(atomic_load_explicit(&w->watch.thread, memory_order_relaxed),
                     WEFT__WATCH_SIGNAL) == 0) {
        for (int i = 0; i < 200; i++) { /* 20 ms, as for a backtrace */
            got = atomic_load_explicit(&w->watch.handoff, memory_order_acquire);
            if (got >= WATCH_HANDED)
                break;
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    int asked = WATCH_ASKED;
    if (got < WATCH_HANDED &&
        !atomic_compare_exchange_strong_explicit(&w->watch.handoff, &asked, WATCH_IDLE,
                                                 memory_order_acquire, memory_order_acquire)) {
        /* Claimed meanwhile: the handler's answer comes at once. */
        while ((got = atomic_load_explicit(&w->watch.handoff, memory_order_acquire)) < WATCH_HANDED)
            sched_yield();
    }
    uint64_t lent = w->watch.handoff_lent;
    atomic_store_explicit(&w->watch.handoff, WATCH_IDLE, memory_order_relaxed);
    if (got == WATCH_HANDED)
        wd->rt->handoff_assign(w, lent); /* -EAGAIN: it stays lent; its task takes it back */
}

/* ---- The thread ------------------------------------------------------------------------ */

void weft__watchdog_poke(weft__runtime *rt)
{
    struct weft__watchdog *wd = rt->watchdog;
    if (wd && atomic_load_explicit(&wd->napping, memory_order_relaxed) &&
        atomic_exchange_explicit(&wd->napping, 0, memory_order_relaxed)) {
        /* Under the lock, which the watchdog holds from its store of `napping` until its
         * wait lets go of it: a signal without it could come before the wait and be lost,
         * and the next workers, finding `napping` 0, would not signal again. A task that
         * began to spin then waited out the whole nap (100 ms: blocked_worker on io_uring,
         * whose workers poke often, saw 46-89 ms). */
        pthread_mutex_lock(&wd->lock);
        pthread_cond_signal(&wd->cond);
        pthread_mutex_unlock(&wd->lock);
    }
}

/* The stuck-worker hint (watchdog.h): a store only when it changes. */
static void set_stuck(weft__worker *w, bool stuck)
{
    if (weft__watch_stuck(&w->watch) != stuck)
        atomic_store_explicit(&w->watch.stuck, stuck, memory_order_relaxed);
}

static void *watchdog_thread(void *arg)
{
    weft__runtime *rt = arg;
    struct weft__watchdog *wd = rt->watchdog;
    int64_t busy_period = wd->threshold_ns / 4;
    if (rt->handoff_ns && rt->handoff_ns / 2 < busy_period)
        busy_period = rt->handoff_ns / 2;
    int64_t period = busy_period;
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = (int64_t)until.tv_nsec + period;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        /* A nap (longer than the busy period, hand-off on) can be cut short by a worker. */
        if (rt->handoff_ns && period > busy_period)
            atomic_store_explicit(&wd->napping, 1, memory_order_relaxed);
        pthread_cond_timedwait(&wd->cond, &wd->lock, &until);
        atomic_store_explicit(&wd->napping, 0, memory_order_relaxed);
        if (wd->stop)
            break;
        pthread_mutex_unlock(&wd->lock);
        int64_t now = weft__clock_ns();
        bool busy = false;
        for (unsigned i = 0; i < rt->nworkers; i++) {
            weft__worker *w = &rt->workers[i];
            struct watch_seen *s = &wd->seen[i];
            uint64_t pub = atomic_load_explicit(&w->watch.pub, memory_order_relaxed);
            uint64_t woke = atomic_load_explicit(&w->watch.woke, memory_order_relaxed);
            if (pub != s->pub || woke != s->woke || !s->since) { /* a new run, or the first look */
                s->pub = pub;
                s->woke = woke;
                s->since = now;
                s->next_ns = wd->threshold_ns;
                s->handoff_ns = rt->handoff_ns;
                s->handoff_gap = rt->handoff_ns;
            }
            /* Asleep in the reactor: idle, not stuck (seq_cst, as the worker stores it); or
             * not in its loop yet, or any more. The clock restarts: a worker that wakes and
             * runs its loop a moment without a switch (a message, a timer) has not stalled
             * for the time it slept. */
            if (!atomic_load_explicit(&w->watch.active, memory_order_acquire) ||
                atomic_load_explicit(&w->inbox.sleeping, memory_order_seq_cst)) {
                s->since = now;
                s->next_ns = wd->threshold_ns;
                s->handoff_ns = rt->handoff_ns;
                s->handoff_gap = rt->handoff_ns;
                set_stuck(w, false);
                continue;
            }
            busy = true;
            int64_t ran = now - s->since;
            /* A refusal (a weft call in progress) is asked again at twice the length, and at
             * least every 8 thresholds: the body's frames change as it runs. */
            if (rt->handoff_ns && ran >= s->handoff_ns) {
                s->handoff_ns = ran + s->handoff_gap;
                if (s->handoff_gap < 8 * rt->handoff_ns)
                    s->handoff_gap *= 2;
                try_handoff(wd, w);
            }
            set_stuck(w, ran >= wd->threshold_ns);
            if (ran >= s->next_ns) {
                bool again = s->next_ns > wd->threshold_ns;
                while (s->next_ns <= ran) /* the next doubling still ahead */
                    s->next_ns *= 2;
                if (take_token(wd, now)) /* a report the cap suppresses is not made up for */
                    report(wd, w, i, s->pub, ran, again, wd->own_signal);
            }
        }
        /* About once a second, tasks that wait for each other while others run. */
        if (rt->deadlock_policy != WEFT_DEADLOCK_OFF &&
            now - wd->cycles_at >= wd->cycles_every_ns) {
            wd->cycles_at = now;
            weft__cycles_check(rt, &wd->cycles);
        }
        period =
            busy ? busy_period : (period * 2 > WATCH_IDLE_MAX_NS ? WATCH_IDLE_MAX_NS : period * 2);
        pthread_mutex_lock(&wd->lock);
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

/* Installs the handler if the signal has its default disposition (or ours already: several
 * runtimes share it). Returns whether ours is installed. */
static bool install_handler(void)
{
    struct sigaction old;
    if (sigaction(WEFT__WATCH_SIGNAL, NULL, &old) != 0)
        return false;
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_signal)
        return true;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL)
        return false; /* the program's: left alone */
    if (old.sa_flags & SA_SIGINFO)
        return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return sigaction(WEFT__WATCH_SIGNAL, &sa, NULL) == 0;
}

bool weft__watchdog_signals(const weft__runtime *rt)
{
    return rt->watchdog && rt->watchdog->own_signal;
}

WEFT_COLD int weft__watchdog_start(weft__runtime *rt)
{
    if (rt->stall_ns <= 0 && rt->handoff_ns <= 0)
        return 0;
    struct weft__watchdog *wd = calloc(1, sizeof *wd);
    if (!wd)
        return -ENOMEM;
    wd->seen = calloc(rt->nworkers, sizeof *wd->seen);
    if (!wd->seen) {
        free(wd);
        return -ENOMEM;
    }
    wd->threshold_ns = rt->stall_ns > 0 ? rt->stall_ns : INT64_MAX / 4; /* hand-offs only */
    wd->rt = rt;
    wd->tokens = WATCH_PER_MINUTE;
    wd->refilled_at = weft__clock_ns();
    wd->own_signal = install_handler();
    wd->syscalls_known = rt->handoff_ns > 0 && weft__restartable_numbering_ok();
    wd->cycles_every_ns = WATCH_CYCLES_NS;
#ifdef WEFT_TESTING
    int64_t cycles_ns = weft__test_env("WEFT_TEST_CYCLES_NS", 1);
    if (cycles_ns > 0)
        wd->cycles_every_ns = cycles_ns;
    wd->test_seize_pause_ns = weft__test_env("WEFT_TEST_SEIZE_PAUSE_US", 1000);
    wd->test_seize_delay_ns = weft__test_env("WEFT_TEST_SEIZE_DELAY_US", 1000);
#endif
    pthread_mutex_init(&wd->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->cond, &ca);
    pthread_condattr_destroy(&ca);
    rt->watchdog = wd;
    /* Every signal blocked on the watchdog's thread: none is meant for it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&wd->thread, NULL, watchdog_thread, rt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        rt->watchdog = NULL;
        pthread_cond_destroy(&wd->cond);
        pthread_mutex_destroy(&wd->lock);
        free(wd->seen);
        free(wd);
        return -e;
    }
    return 0;
}

WEFT_COLD void weft__watchdog_stop(weft__runtime *rt)
{
    struct weft__watchdog *wd = rt->watchdog;
    if (!wd)
        return;
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
}

WEFT_COLD void weft__watchdog_free(weft__runtime *rt)
{
    struct weft__watchdog *wd = rt->watchdog;
    if (!wd)
        return;
    rt->watchdog = NULL;
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
    free(wd->seen);
    free(wd);
}
