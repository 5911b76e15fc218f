/* An adversarial stress test of the state word's races (task.h): in each round several of a
 * park's enders hit one waiter in the same instant, from other workers and from plain
 * threads, and the round then checks that exactly one of them won, and that what it moved
 * was moved once. Each round: waiters (tasks of other workers, or a plain thread) wait with
 * a deadline D; a completer (a task of another worker, the same from weft_block_in_place or
 * after a busy spin that gets its worker handed over, or a plain thread) acts at about D; a
 * canceller (weft_cancel from a task, weft_handle_cancel from a task or a plain thread)
 * cancels one waiter at about D, and wakes waiters through wakers they took just before
 * their waits (wakes that complete nothing, which every wait must ride out); then every
 * waiter is cancelled and joined. The waits:
 * - channels (rendezvous and of one slot; waiters receiving and waiters sending; closed, or
 *   their last handle dropped, while waiters wait), selects of two receives and of a send
 *   and a receive, and the general select (a channel, a timer and a promise's future);
 * - mutex, condition variable, semaphore, wait group, rwlock, auto-reset event;
 * - weft_join and weft_handle_join racing the target's finish (and its cancel);
 * - a promise under weft_future_timeout, awaited by a task and by a stackless task, settled
 *   from a plain thread;
 * - sleeps cancelled from another worker;
 * - and in a bunch: waiters of one worker waiting for ever (a condition, a closing channel, a
 *   semaphore) woken together, so that idle workers take some as they queue (stealing).
 * The checks: a wait returns 0, -ETIMEDOUT (only once the clock has reached its deadline),
 * -ECANCELED (only after a cancel was issued) or -EPIPE (only once the channel closed); every
 * message sent is received exactly once (by a waiter, a completer, or the drain after the round),
 * and a send or receive that failed moved nothing; a mutex or rwlock section never overlaps
 * another, and a failed lock holds nothing (its unlock is -EPERM); each signal that woke a
 * condition waiter, each semaphore unit and each event set is taken exactly once; each task is
 * joined once, with its own result or WEFT_CANCELED. Last, the runtime is shut down while tasks
 * wait in all of these and plain threads keep completing them (and settle promises after weft_run
 * returned). Runs 2 and 4 workers, sharded and stealing (WEFT_MODE, WEFT_LIFO, WEFT_MOVE_STARTED
 * and WEFT_CHAOS from the environment apply); RACE_STORM_MS (per scenario and configuration,
 * default 40, TSan 50) and RACE_STORM_LOOPS (or argv[1]) make longer soaks, RACE_STORM_ONLY
 * runs one scenario. A round that never ends (a lost wake-up) makes a task dump, then an
 * abort. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

/* LEAD and SPREAD: how far ahead a round's D lies, time for the round's spawns; TSan's are
 * about ten times slower. */
#if defined(__SANITIZE_THREAD__)
enum { DEFAULT_MS = 50, HANG_S = 120, LEAD_US = 150, SPREAD_US = 300 };
#else
enum { DEFAULT_MS = 40, HANG_S = 60, LEAD_US = 20, SPREAD_US = 60 };
#endif

enum { NLANES = 2, NPLAIN = 3, MAXW = 3, NIDS = 4 };

static int64_t clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static atomic_uint_fast64_t seed_ctr = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t new_seed(void)
{
    return atomic_fetch_add(&seed_ctr, 0x9e3779b97f4a7c15ull) | 1;
}

/* ---- Plain threads: each runs one job at a time from its own queue ---------------------- */

typedef struct job {
    void (*fn)(void *arg);
    void *arg;
    weft_waitgroup *wg; /* done() after fn */
} job;

typedef struct plain {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job q[8];
    unsigned head, len;
    bool stop;
    atomic_int busy; /* in a job now (for the hang report) */
} plain;

static plain plains[NLANES][NPLAIN];

static void *plain_main(void *arg)
{
    plain *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->len && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->len) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        job j = p->q[p->head];
        p->head = (p->head + 1) % 8;
        p->len--;
        atomic_store(&p->busy, 1);
        pthread_mutex_unlock(&p->mu);
        j.fn(j.arg);
        atomic_store(&p->busy, 0);
        if (j.wg)
            weft_waitgroup_done(j.wg);
    }
}

static void plain_post(plain *p, void (*fn)(void *), void *arg, weft_waitgroup *wg)
{
    if (wg)
        weft_waitgroup_add(wg, 1);
    pthread_mutex_lock(&p->mu);
    if (p->len == 8) { /* never: a lane posts at most 3 jobs a round to 3 threads */
        pthread_mutex_unlock(&p->mu);
        CHECK(0, "plain queue full");
        abort();
    }
    p->q[(p->head + p->len) % 8] = (job){fn, arg, wg};
    p->len++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits until `at`: a task sleeps (uncancelled helpers only), a plain thread spins. */
static void wait_until(int64_t at)
{
    if (weft_self()) {
        while (weft_now() < at && weft_sleep_until(at) == 0)
            ;
        return;
    }
    while (clock_now() < at)
        if (at - clock_now() > 50 * WEFT_USEC)
            sched_yield();
}

/* ---- Rounds --------------------------------------------------------------------------- */

typedef struct round round;

/* One waiter. */
typedef struct part {
    round *rd;
    int idx;
    int64_t deadline; /* WEFT_FOREVER, or absolute */
    weft_task *task;  /* spawned with weft_spawn_on, or */
    weft_handle *h;   /* with weft_runtime_spawn_on, or neither: on a plain thread */
    atomic_int cancel_issued;
    atomic_int ran;
    int r;        /* the wait's result */
    long val;     /* what it got or gave */
    int64_t when; /* the clock at the wait's return */
    bool plain;
    /* The waiter's own waker, taken just before its wait (weft_waker_current): the canceller
     * wakes it too, a wake that ends the wait's park with nothing done (weft.h: a waker
     * applies to the park that follows it). Task last, with release. */
    _Atomic(weft_task *) wk_task;
    atomic_uint_fast64_t wk_epoch;
} part;

typedef struct scen {
    const char *name;
    int nwaiters;
    bool stackful_only; /* waiters must be tasks */
    void (*setup)(round *rd);
    void (*wait)(part *p);       /* the waiter's wait */
    void (*pre)(round *rd);      /* the completer, before the waiters start */
    void (*act)(round *rd);      /* the completer, at about D */
    void (*check)(round *rd);    /* after everything is joined */
    void (*teardown)(round *rd); /* on the lane's task */
    /* The waiters all on one worker, waiting for ever: the completer wakes them together,
     * and idle workers take some of them as they queue (stealing mode). */
    bool bunch;
} scen;

struct round {
    const scen *sc;
    uint64_t seed;
    int nw;
    part parts[MAXW];
    int64_t D, act_at, cancel_at;
    int victim;
    weft_event pre_done;
    /* Objects of the scenarios. */
    weft_chan *ch[2];
    weft_mutex mu;
    weft_cond cv;
    weft_sem sem;
    weft_waitgroup wg;
    weft_rwlock rw;
    weft_event ev;
    weft_promise *prom[MAXW];
    weft_task *target;
    weft_handle *target_h;
    /* Accounting. */
    atomic_int sent_ok[NIDS], recvd[NIDS];
    atomic_int readers, writers, nsections;
    atomic_int abandoned, ownerdead; /* holders that finished holding; lockers told so */
    atomic_long granted;             /* signals that woke someone, units released, sets made */
    atomic_int completer_flag, settled, resolving; /* resolving: before the resolve */
    atomic_int closed;           /* before the close (or the last release) of ch[0] */
    atomic_int target_cancelled; /* before the join target's cancel */
    bool released;               /* ch[0]'s last handle went with the completer's release */
    int64_t tag;
    /* For the hang report: where the lane is in the round, and where its completer. */
    atomic_int stage, comp_ran, pre_set;
    int comp_where; /* the completer's worker, or -1 (a plain thread) */
};

static _Atomic(round *) lane_round[NLANES]; /* each lane's round now: the hang report's */

static unsigned nworkers;
static weft_runtime *rt_handle;
static atomic_long nrounds, progress;
static atomic_long stat_ok, stat_timeout, stat_cancel;
static const char *current_scen = "";

static int64_t now_here(void)
{
    return weft_self() ? weft_now() : clock_now();
}

/* The result of a wait, checked against what happened to it. */
static void check_ret(part *p, int r, const char *what)
{
    p->r = r;
    p->when = now_here();
    if (r == 0) {
        atomic_fetch_add(&stat_ok, 1);
    } else if (r == -ETIMEDOUT) {
        atomic_fetch_add(&stat_timeout, 1);
        CHECK(p->deadline != WEFT_FOREVER && p->when >= p->deadline,
              "%s %s: -ETIMEDOUT %lld ns before its deadline", p->rd->sc->name, what,
              (long long)(p->deadline - p->when));
    } else if (r == -EPIPE) {
        CHECK(atomic_load(&p->rd->closed), "%s %s: -EPIPE on an open channel", p->rd->sc->name,
              what);
    } else if (r == -ECANCELED) {
        atomic_fetch_add(&stat_cancel, 1);
        CHECK(!p->plain && atomic_load(&p->cancel_issued), "%s %s: -ECANCELED, never cancelled",
              p->rd->sc->name, what);
    } else {
        CHECK(0, "%s %s: unexpected %d (%s)", p->rd->sc->name, what, r, weft_strerror(r));
    }
}

static atomic_long stat_moved; /* waiters that resumed on another worker */
static uint64_t nhandoffs;     /* the last runtime's workers lent to relief threads */

static void *waiter_body(void *arg)
{
    part *p = arg;
    CHECK(atomic_fetch_add(&p->ran, 1) == 0, "%s: a waiter ran twice", p->rd->sc->name);
    int first = weft_self() ? weft_worker_index() : -1;
    weft_waker wk = weft_waker_current();
    atomic_store(&p->wk_epoch, wk.epoch);
    atomic_store(&p->wk_task, wk.task);
    p->rd->sc->wait(p);
    if (first >= 0 && weft_worker_index() != first)
        atomic_fetch_add(&stat_moved, 1);
    return p;
}

static void waiter_plain(void *arg)
{
    waiter_body(arg);
}

/* The completer: pre, then act at about D. */
static void completer_run(round *rd)
{
    atomic_store(&rd->comp_ran, 1);
    if (rd->sc->pre)
        rd->sc->pre(rd);
    atomic_store(&rd->pre_set, 1);
    weft_event_set(&rd->pre_done);
    wait_until(rd->act_at);
    rd->sc->act(rd);
}

static void *completer_fn(void *arg)
{
    completer_run(arg);
    return NULL;
}

/* One completer task in four acts from weft_block_in_place: its worker goes on (its timers
 * fire, its tasks are woken) on a relief thread meanwhile, and its thread acts as a plain
 * thread does. */
static void *completer_task(void *arg)
{
    round *rd = arg;
    unsigned how = (rd->seed >> 40) % 8;
    if (how == 0) {
        CHECK(weft_block_in_place(completer_fn, rd, NULL) == 0, "block_in_place");
    } else if (how == 1) {
        /* Busy in its own code past D, long enough (1.5 ms) for the stall detector to hand
         * its worker to a relief thread in stealing mode (weft_config.handoff_us), which
         * then fires the timers and takes the wakes of that worker's waiters. */
        atomic_store(&rd->comp_ran, 1);
        if (rd->sc->pre)
            rd->sc->pre(rd);
        atomic_store(&rd->pre_set, 1);
        weft_event_set(&rd->pre_done);
        while (clock_now() < rd->act_at + 1500 * WEFT_USEC)
            ;
        rd->sc->act(rd);
    } else {
        completer_run(rd);
    }
    return NULL;
}

static void completer_plain(void *arg)
{
    completer_run(arg);
}

/* The canceller: one waiter, at about D. */
static void cancel_part(part *p)
{
    atomic_store(&p->cancel_issued, 1);
    if (p->h)
        CHECK(weft_handle_cancel(p->h) == 0, "handle_cancel");
    else if (p->task)
        CHECK(weft_cancel(p->task) == 0, "cancel");
}

/* Wakes the waiter's waker of the run that began its wait, if it has published it. */
static void spurious_wake(part *p)
{
    weft_task *t = atomic_load(&p->wk_task);
    if (t)
        weft_waker_wake((weft_waker){t, atomic_load(&p->wk_epoch)});
}

static void canceller_run(round *rd)
{
    wait_until(rd->cancel_at);
    uint64_t x = rd->seed >> 48;
    for (int i = 0; i < rd->nw; i++)
        if ((x >> i) & 1)
            spurious_wake(&rd->parts[i]);
    part *p = &rd->parts[rd->victim];
    if (!p->plain)
        cancel_part(p);
    for (int i = 0; i < rd->nw; i++)
        if ((x >> (4 + i)) & 1)
            spurious_wake(&rd->parts[i]);
}

static void *canceller_task(void *arg)
{
    canceller_run(arg);
    return NULL;
}

static void canceller_plain(void *arg)
{
    canceller_run(arg);
}

static void run_round(int lane, const scen *sc, uint64_t *seed)
{
    round *rd = calloc(1, sizeof *rd);
    rd->sc = sc;
    rd->seed = rnd(seed);
    rd->nw = sc->nwaiters;
    rd->tag = (int64_t)atomic_fetch_add(&nrounds, 1) + 1;
    weft_event e0 = WEFT_EVENT_INIT;
    rd->pre_done = e0;
    weft_mutex m0 = WEFT_MUTEX_INIT;
    weft_cond c0 = WEFT_COND_INIT;
    weft_sem s0 = WEFT_SEM_INIT(0);
    weft_waitgroup g0 = WEFT_WAITGROUP_INIT;
    weft_rwlock r0 = WEFT_RWLOCK_INIT;
    weft_event a0 = WEFT_EVENT_AUTO_INIT;
    rd->mu = m0, rd->cv = c0, rd->sem = s0, rd->wg = g0, rd->rw = r0, rd->ev = a0;
    int64_t base =
        weft_now() + LEAD_US * WEFT_USEC + (int64_t)(rnd(seed) % (SPREAD_US * WEFT_USEC));
    rd->D = base;
    /* Around D, each a little off: the actors' timers fire in the same tick or nearly. */
    rd->act_at = base + (int64_t)(rnd(seed) % (20 * WEFT_USEC)) - 10 * WEFT_USEC;
    rd->cancel_at = base + (int64_t)(rnd(seed) % (20 * WEFT_USEC)) - 10 * WEFT_USEC;
    rd->victim = (int)(rnd(seed) % (unsigned)rd->nw);
    if (sc->setup)
        sc->setup(rd);
    unsigned self = (unsigned)weft_worker_index();
    uint64_t r = rnd(seed);
    /* Where the completer and the canceller run: a task of another worker or a plain
     * thread; how the waiters are spawned (handles or tasks); where. */
    bool comp_plain = r & 1, canc_plain = (r >> 1) & 1, use_handles = (r >> 2) & 1;
    bool plain_waiter = !sc->stackful_only && ((r >> 3) & 7) == 0;
    if (!use_handles)
        canc_plain = false; /* weft_cancel is for runtime threads */
    weft_waitgroup jobs = WEFT_WAITGROUP_INIT;

    /* The completer first, so that its pre (a lock taken, ...) is there before any waiter. */
    weft_task *comp = NULL, *canc = NULL;
    atomic_store(&lane_round[lane], rd);
    rd->comp_where = comp_plain ? -1 : (int)((self + 1 + (r >> 6) % nworkers) % nworkers);
    atomic_store(&rd->stage, 1);
    if (comp_plain)
        plain_post(&plains[lane][0], completer_plain, rd, &jobs);
    else
        CHECK(weft_spawn_on((unsigned)rd->comp_where, &comp, completer_task, rd, NULL) == 0,
              "spawn completer");
    atomic_store(&rd->stage, 2);
    weft_event_wait(&rd->pre_done, WEFT_FOREVER);
    atomic_store(&rd->stage, 3);

    for (int i = 0; i < rd->nw; i++) {
        part *p = &rd->parts[i];
        p->rd = rd;
        p->idx = i;
        uint64_t x = rnd(seed);
        /* One in four waits forever: only a completion or a cancel ends it. */
        p->deadline = x % 4 == 0 || sc->bunch
                          ? WEFT_FOREVER
                          : base + (int64_t)((x >> 8) % (6 * WEFT_USEC)) - 3 * WEFT_USEC;
        unsigned where = (self + 1 + (unsigned)((sc->bunch ? r : x) >> 20) % nworkers) % nworkers;
        if (plain_waiter && i == rd->nw - 1) {
            p->plain = true;
            if (p->deadline == WEFT_FOREVER)
                p->deadline = base + 5 * WEFT_USEC;
            plain_post(&plains[lane][2], waiter_plain, p, &jobs);
        } else if (use_handles) {
            CHECK(weft_runtime_spawn_on(rt_handle, (int)where, &p->h, waiter_body, p, NULL) == 0,
                  "runtime_spawn_on");
        } else {
            CHECK(weft_spawn_on(where, &p->task, waiter_body, p, NULL) == 0, "spawn_on");
        }
    }
    if (canc_plain)
        plain_post(&plains[lane][1], canceller_plain, rd, &jobs);
    else
        CHECK(weft_spawn_on((self + 1 + (unsigned)(r >> 12) % nworkers) % nworkers, &canc,
                            canceller_task, rd, NULL) == 0,
              "spawn canceller");

    /* Join the helpers, then end every waiter still waiting (a late cancel, racing late
     * completions), and join them. */
    atomic_store(&rd->stage, 4);
    if (comp)
        CHECK(weft_join(comp, NULL, WEFT_FOREVER) == 0, "join completer");
    atomic_store(&rd->stage, 5);
    if (canc)
        CHECK(weft_join(canc, NULL, WEFT_FOREVER) == 0, "join canceller");
    atomic_store(&rd->stage, 6);
    weft_waitgroup_wait(&jobs, WEFT_FOREVER); /* the plain threads' jobs, a waiter's too */
    atomic_store(&rd->stage, 7);
    for (int i = 0; i < rd->nw; i++)
        if (!rd->parts[i].plain)
            cancel_part(&rd->parts[i]);
    for (int i = 0; i < rd->nw; i++) {
        part *p = &rd->parts[i];
        void *res = NULL;
        int jr;
        if (p->plain)
            continue;
        if (p->h) {
            jr = weft_handle_join(p->h, &res, WEFT_FOREVER);
            weft_handle_release(p->h);
        } else {
            jr = weft_join(p->task, &res, WEFT_FOREVER);
        }
        CHECK(jr == 0, "%s: join waiter: %d", sc->name, jr);
        int ran = atomic_load(&p->ran);
        CHECK(ran <= 1, "%s: ran %d times", sc->name, ran);
        CHECK(res == (void *)p || (res == WEFT_CANCELED && atomic_load(&p->cancel_issued)),
              "%s: waiter's result %p", sc->name, res);
        CHECK(ran == 1 || res == WEFT_CANCELED, "%s: never ran, not cancelled", sc->name);
        if (!ran)
            p->r = -ECANCELED; /* finished unrun: its wait never began */
    }
    atomic_store(&rd->stage, 8);
    sc->check(rd);
    if (sc->teardown)
        sc->teardown(rd);
    atomic_store(&lane_round[lane], NULL);
    free(rd);
    atomic_fetch_add(&progress, 1);
}

/* ---- Channels ------------------------------------------------------------------------- */

static long msg_of(round *rd, int id)
{
    return rd->tag * 16 + id;
}

static int id_of(round *rd, long v)
{
    if (v / 16 != rd->tag || v % 16 >= NIDS) {
        CHECK(0, "%s: a value of another round, or garbage: %ld", rd->sc->name, v);
        return -1;
    }
    return (int)(v % 16);
}

static void chan_setup(round *rd, size_t cap)
{
    CHECK(weft_chan_create(&rd->ch[0], sizeof(long), cap) == 0, "chan_create");
    CHECK(weft_chan_create(&rd->ch[1], sizeof(long), cap) == 0, "chan_create");
}

static void chan0_setup(round *rd)
{
    chan_setup(rd, 0);
}

static void chan1_setup(round *rd)
{
    chan_setup(rd, 1);
}

static void chan_teardown(round *rd)
{
    weft_chan_release(rd->ch[0]);
    weft_chan_release(rd->ch[1]);
}

/* What a receive got: counted if it succeeded; untouched if it failed. */
static void got(round *rd, int r, long v, const char *what)
{
    if (r == 0) {
        int id = id_of(rd, v);
        if (id >= 0)
            atomic_fetch_add(&rd->recvd[id], 1);
    } else {
        CHECK(v == -1, "%s %s failed (%d) but its buffer was written: %ld", rd->sc->name, what, r,
              v);
    }
}

static void recv_wait(part *p)
{
    long v = -1;
    int r = weft_chan_recv(p->rd->ch[0], &v, p->deadline);
    check_ret(p, r, "recv");
    got(p->rd, r, v, "recv");
}

/* The completer sends two values, each with a deadline about D's. */
static void send_act(round *rd)
{
    for (int id = 0; id < 2; id++) {
        long v = msg_of(rd, id);
        int r = weft_chan_send(rd->ch[0], &v, rd->D + (id + 1) * 5 * WEFT_USEC);
        CHECK(r == 0 || r == -ETIMEDOUT, "%s: completer send %d", rd->sc->name, r);
        if (r == 0)
            atomic_fetch_add(&rd->sent_ok[id], 1);
    }
}

/* Whatever is left in the channels, then every value's count. */
static void chan_check(round *rd)
{
    for (int k = 0; k < 2; k++) {
        long v = -1;
        while (weft_chan_try_recv(rd->ch[k], &v) == 0)
            got(rd, 0, v, "drain");
    }
    for (int id = 0; id < NIDS; id++)
        CHECK(atomic_load(&rd->sent_ok[id]) == atomic_load(&rd->recvd[id]),
              "%s: value %d sent %d times, received %d times", rd->sc->name, id,
              atomic_load(&rd->sent_ok[id]), atomic_load(&rd->recvd[id]));
}

/* The waiters send (values 0..2), the completer receives. */
static void send_wait(part *p)
{
    long v = msg_of(p->rd, p->idx);
    int r = weft_chan_send(p->rd->ch[0], &v, p->deadline);
    check_ret(p, r, "send");
    if (r == 0)
        atomic_fetch_add(&p->rd->sent_ok[p->idx], 1);
}

static void recv_act(round *rd)
{
    for (int k = 0; k < 2; k++) {
        long v = -1;
        int r = weft_chan_recv(rd->ch[0], &v, rd->D + (k + 1) * 5 * WEFT_USEC);
        CHECK(r == 0 || r == -ETIMEDOUT, "%s: completer recv %d", rd->sc->name, r);
        got(rd, r, v, "completer recv");
    }
}

/* A select of two receives (one case a duplicate channel now and then). */
static void select_wait(part *p)
{
    round *rd = p->rd;
    long v[2] = {-1, -1};
    weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = rd->ch[0], .elem = &v[0]},
                       {.op = WEFT_CASE_RECV, .chan = rd->ch[1], .elem = &v[1]}};
    int r = weft_select(cs, 2, p->deadline);
    check_ret(p, r < 0 ? r : 0, "select");
    if (r >= 0) {
        CHECK(r < 2 && cs[r].result == 0, "select: case %d result %d", r, cs[r].result);
        got(rd, 0, v[r], "select");
        got(rd, -1, v[1 - r], "select's other case");
    } else {
        got(rd, r, v[0], "select");
        got(rd, r, v[1], "select");
    }
}

static void select_act(round *rd)
{
    for (int id = 0; id < 3; id++) {
        long v = msg_of(rd, id);
        int r = weft_chan_send(rd->ch[id & 1], &v, rd->D + (id + 1) * 4 * WEFT_USEC);
        CHECK(r == 0 || r == -ETIMEDOUT, "%s: completer send %d", rd->sc->name, r);
        if (r == 0)
            atomic_fetch_add(&rd->sent_ok[id], 1);
    }
}

/* The general select: a receive, a timer at D and a promise's future (settled by the
 * completer from wherever it runs). */
static void gselect_setup(round *rd)
{
    chan_setup(rd, 0);
    for (int i = 0; i < rd->nw; i++) {
        CHECK(weft_promise_create(&rd->prom[i]) == 0, "promise_create");
    }
}

static void gselect_teardown(round *rd)
{
    chan_teardown(rd);
    for (int i = 0; i < rd->nw; i++)
        weft_promise_release(rd->prom[i]);
}

static void gselect_wait(part *p)
{
    round *rd = p->rd;
    long v = -1;
    void *pv = NULL;
    weft_case cs[3] = {
        {.op = WEFT_CASE_RECV, .chan = rd->ch[0], .elem = &v},
        {.op = WEFT_CASE_TIMER, .at = rd->D},
        {.op = WEFT_CASE_FUTURE, .future = weft_promise_future(rd->prom[p->idx]), .elem = &pv},
    };
    int r = weft_select(cs, 3, p->deadline);
    check_ret(p, r < 0 ? r : 0, "general select");
    got(rd, r == 0 ? 0 : -1, v, "general select's receive");
    if (r == 1)
        CHECK(weft_now() >= rd->D, "timer case before its time");
    if (r == 2) {
        CHECK(atomic_load(&rd->settled) > p->idx && cs[2].result == 0 &&
                  pv == (void *)(intptr_t)msg_of(rd, p->idx),
              "future case: result %d value %p", cs[2].result, pv);
    }
}

static void gselect_act(round *rd)
{
    long v = msg_of(rd, 0);
    int r = weft_chan_send(rd->ch[0], &v, rd->D + 5 * WEFT_USEC);
    if (r == 0)
        atomic_fetch_add(&rd->sent_ok[0], 1);
    for (int i = 0; i < rd->nw; i++) {
        atomic_fetch_add(&rd->settled, 1);
        CHECK(weft_promise_resolve(rd->prom[i], (void *)(intptr_t)msg_of(rd, i)) == 0, "resolve");
    }
}

/* The completer sends one value and closes the channel, or (a rendezvous channel) drops
 * its last handle, the waiters keeping it alive until they have left. */
static void close_act(round *rd)
{
    long v = msg_of(rd, 0);
    int r = weft_chan_send(rd->ch[0], &v, rd->D + 3 * WEFT_USEC);
    CHECK(r == 0 || r == -ETIMEDOUT, "%s: completer send %d", rd->sc->name, r);
    if (r == 0)
        atomic_fetch_add(&rd->sent_ok[0], 1);
    atomic_store(&rd->closed, 1);
    if (rd->released)
        weft_chan_release(rd->ch[0]);
    else
        CHECK(weft_chan_close(rd->ch[0]) == 0, "close");
}

/* With `released`, each waiter holds a handle of ch[0] of its own, dropped when its call
 * returns: the last of them goes while others may still wait. */
static void close_setup(round *rd)
{
    rd->released = (rd->seed >> 5) & 1;
    chan_setup(rd, rd->released ? 0 : 1);
    for (int i = 0; rd->released && i < rd->nw; i++)
        weft_chan_retain(rd->ch[0]);
}

static void close_check(round *rd)
{
    if (rd->released) { /* nothing buffered: every value sent went to a waiter */
        for (int i = 0; i < rd->nw; i++)
            if (!atomic_load(&rd->parts[i].ran)) /* finished unrun: its handle is ours */
                weft_chan_release(rd->ch[0]);
        for (int id = 0; id < NIDS; id++)
            CHECK(atomic_load(&rd->sent_ok[id]) == atomic_load(&rd->recvd[id]),
                  "%s: value %d sent %d times, received %d times", rd->sc->name, id,
                  atomic_load(&rd->sent_ok[id]), atomic_load(&rd->recvd[id]));
        long v;
        CHECK(weft_chan_try_recv(rd->ch[1], &v) == -EAGAIN, "ch[1] empty");
        weft_chan_release(rd->ch[1]);
        return;
    }
    long v;
    chan_check(rd);
    CHECK(weft_chan_try_recv(rd->ch[0], &v) == -EPIPE, "closed and drained");
    chan_teardown(rd);
}

/* Receivers and senders on a closing channel. */
static void close_wait(part *p)
{
    if (p->idx == 0) {
        long v = msg_of(p->rd, 1);
        int r = weft_chan_send(p->rd->ch[0], &v, p->deadline);
        check_ret(p, r, "send");
        if (r == 0)
            atomic_fetch_add(&p->rd->sent_ok[1], 1);
    } else {
        recv_wait(p);
    }
    if (p->rd->released)
        weft_chan_release(p->rd->ch[0]);
}

/* A select of a send and a receive; the completer receives from one channel and sends on the
 * other. */
static void mixed_wait(part *p)
{
    round *rd = p->rd;
    long out = msg_of(rd, 2 + (p->idx & 1)), in = -1;
    weft_case cs[2] = {{.op = WEFT_CASE_SEND, .chan = rd->ch[0], .elem = &out},
                       {.op = WEFT_CASE_RECV, .chan = rd->ch[1], .elem = &in}};
    int r = weft_select(cs, 2, p->deadline);
    check_ret(p, r < 0 ? r : 0, "mixed select");
    CHECK(r < 0 || cs[r].result == 0, "mixed select: result %d", r < 0 ? 0 : cs[r].result);
    if (r == 0)
        atomic_fetch_add(&rd->sent_ok[2 + (p->idx & 1)], 1);
    got(rd, r == 1 ? 0 : -1, in, "mixed select's receive");
}

static void mixed_act(round *rd)
{
    long v = msg_of(rd, 0);
    int r = weft_chan_send(rd->ch[1], &v, rd->D + 4 * WEFT_USEC);
    if (r == 0)
        atomic_fetch_add(&rd->sent_ok[0], 1);
    v = -1;
    r = weft_chan_recv(rd->ch[0], &v, rd->D + 8 * WEFT_USEC);
    got(rd, r, v, "completer recv");
}

/* ---- Locks ---------------------------------------------------------------------------- */

/* The section a lock protects: nobody else in it. */
static void section(round *rd, bool write)
{
    if (write) {
        CHECK(atomic_fetch_add(&rd->writers, 1) == 0 && atomic_load(&rd->readers) == 0,
              "%s: overlapping write sections", rd->sc->name);
    } else {
        atomic_fetch_add(&rd->readers, 1);
        CHECK(atomic_load(&rd->writers) == 0, "%s: a reader beside a writer", rd->sc->name);
    }
    atomic_fetch_add(&rd->nsections, 1);
    if (weft_self())
        weft_yield();
    else
        sched_yield();
    if (write)
        atomic_fetch_sub(&rd->writers, 1);
    else
        atomic_fetch_sub(&rd->readers, 1);
}

static void mutex_pre(round *rd)
{
    CHECK(weft_mutex_lock(&rd->mu, WEFT_FOREVER) == 0, "holder's lock");
    atomic_fetch_add(&rd->writers, 1);
}

static void mutex_act(round *rd)
{
    atomic_fetch_sub(&rd->writers, 1);
    CHECK(weft_mutex_unlock(&rd->mu) == 0, "holder's unlock");
}

static void rw_wait(part *p);

/* Now and then the first waiter finishes holding the lock it got: its next holder is told
 * (a mutex's -EOWNERDEAD) or it is simply free again (a rwlock). */
static bool abandons(part *p)
{
    return p->idx == (p->rd->sc->wait == rw_wait) && !p->plain && (p->rd->seed >> 44) & 1;
}

static void mutex_wait(part *p)
{
    round *rd = p->rd;
    int r = weft_mutex_lock(&rd->mu, p->deadline);
    if (r == -EOWNERDEAD) {
        atomic_fetch_add(&rd->ownerdead, 1);
        r = 0;
    }
    check_ret(p, r, "mutex_lock");
    if (r == 0) {
        section(p->rd, true);
        if (abandons(p)) {
            atomic_fetch_add(&rd->abandoned, 1);
            weft_exit(p);
        }
        CHECK(weft_mutex_unlock(&p->rd->mu) == 0, "unlock after lock");
    } else {
        CHECK(weft_mutex_unlock(&p->rd->mu) == -EPERM, "a failed lock (%d) holds the mutex", r);
    }
}

static void lock_check(round *rd)
{
    int left = weft_mutex_try_lock(&rd->mu); /* the news of a dead owner nobody took */
    CHECK(left == 0 || left == -EOWNERDEAD, "%s: mutex left held (%d)", rd->sc->name, left);
    CHECK(weft_mutex_unlock(&rd->mu) == 0, "unlock");
    CHECK(atomic_load(&rd->abandoned) == atomic_load(&rd->ownerdead) + (left == -EOWNERDEAD),
          "%s: %d owners died holding it, %d lockers told, %d left", rd->sc->name,
          atomic_load(&rd->abandoned), atomic_load(&rd->ownerdead), left == -EOWNERDEAD);
    CHECK(weft_rwlock_wrlock(&rd->rw, weft_now() - 1) == 0, "%s: rwlock left held", rd->sc->name);
    CHECK(weft_rwlock_unlock(&rd->rw) == 0, "rwlock unlock");
    CHECK(atomic_load(&rd->writers) == 0 && atomic_load(&rd->readers) == 0, "%s: sections left",
          rd->sc->name);
    int nok = 0;
    for (int i = 0; i < rd->nw; i++)
        nok += rd->parts[i].r == 0;
    CHECK(atomic_load(&rd->nsections) == nok, "%s: %d sections, %d locks", rd->sc->name,
          atomic_load(&rd->nsections), nok);
}

static void rw_pre(round *rd)
{
    CHECK(weft_rwlock_wrlock(&rd->rw, WEFT_FOREVER) == 0, "holder's wrlock");
    atomic_fetch_add(&rd->writers, 1);
}

static void rw_act(round *rd)
{
    atomic_fetch_sub(&rd->writers, 1);
    CHECK(weft_rwlock_unlock(&rd->rw) == 0, "holder's unlock");
}

static void rw_wait(part *p)
{
    bool write = p->idx == 1;
    int r = write ? weft_rwlock_wrlock(&p->rd->rw, p->deadline)
                  : weft_rwlock_rdlock(&p->rd->rw, p->deadline);
    check_ret(p, r, write ? "wrlock" : "rdlock");
    if (r == 0) {
        section(p->rd, write);
        if (abandons(p))
            weft_exit(p);
        CHECK(weft_rwlock_unlock(&p->rd->rw) == 0, "rw unlock after lock");
    } else {
        CHECK(weft_rwlock_unlock(&p->rd->rw) == -EPERM, "a failed rwlock (%d) holds it", r);
    }
}

/* Condition: every signal that says it woke a waiter woke one that returns 0. */
static void cond_wait_part(part *p)
{
    round *rd = p->rd;
    int r = weft_mutex_lock(&rd->mu, WEFT_FOREVER);
    if (r < 0) { /* cancelled before it got the mutex */
        check_ret(p, r, "cond's mutex_lock");
        p->r = 1; /* not a wait */
        return;
    }
    r = weft_cond_wait(&rd->cv, &rd->mu, p->deadline);
    check_ret(p, r, "cond_wait");
    CHECK(weft_mutex_unlock(&rd->mu) == 0, "cond_wait (%d) returned without the mutex", r);
}

static void cond_act(round *rd)
{
    CHECK(weft_mutex_lock(&rd->mu, WEFT_FOREVER) == 0, "signaller's lock");
    int n = (rd->seed & 1) ? weft_cond_broadcast(&rd->cv) : weft_cond_signal(&rd->cv);
    CHECK(n >= 0, "signal %d", n);
    atomic_fetch_add(&rd->granted, n);
    CHECK(weft_mutex_unlock(&rd->mu) == 0, "signaller's unlock");
}

static void count_check(round *rd)
{
    int nok = 0;
    for (int i = 0; i < rd->nw; i++)
        nok += rd->parts[i].r == 0;
    CHECK(nok == atomic_load(&rd->granted), "%s: %ld granted, %d waits returned 0", rd->sc->name,
          atomic_load(&rd->granted), nok);
}

/* Semaphore: every unit released is acquired once, or still there. */
static void sem_wait_part(part *p)
{
    check_ret(p, weft_sem_acquire(&p->rd->sem, p->deadline), "sem_acquire");
}

static void sem_act(round *rd)
{
    unsigned n = 1 + (unsigned)(rd->seed >> 3) % 2;
    CHECK(weft_sem_release(&rd->sem, n) == 0, "sem_release");
    atomic_fetch_add(&rd->granted, n);
}

static void sem_check(round *rd)
{
    int nok = 0;
    for (int i = 0; i < rd->nw; i++)
        nok += rd->parts[i].r == 0;
    int64_t left = weft_sem_value(&rd->sem);
    CHECK(nok + left == atomic_load(&rd->granted), "sem: %ld released, %d acquired, %lld left",
          atomic_load(&rd->granted), nok, (long long)left);
}

/* Wait group: a wait returns 0 only once the count reached zero. */
static void wg_setup(round *rd)
{
    weft_waitgroup_add(&rd->wg, 1);
}

static void wg_wait(part *p)
{
    int r = weft_waitgroup_wait(&p->rd->wg, p->deadline);
    check_ret(p, r, "waitgroup_wait");
    if (r == 0)
        CHECK(atomic_load(&p->rd->completer_flag), "waitgroup_wait returned 0 before done()");
}

static void wg_act(round *rd)
{
    atomic_store(&rd->completer_flag, 1);
    CHECK(weft_waitgroup_done(&rd->wg) == 0, "done");
}

static void wg_check(round *rd)
{
    CHECK(weft_waitgroup_wait(&rd->wg, WEFT_FOREVER) == 0, "wait after done");
}

/* Auto-reset event: one set, taken by exactly one waiter or left set. */
static void ev_wait(part *p)
{
    check_ret(p, weft_event_wait(&p->rd->ev, p->deadline), "event_wait");
}

static void ev_act(round *rd)
{
    atomic_fetch_add(&rd->granted, 1);
    CHECK(weft_event_set(&rd->ev) == 0, "event_set");
}

static void ev_check(round *rd)
{
    int nok = 0;
    for (int i = 0; i < rd->nw; i++)
        nok += rd->parts[i].r == 0;
    int left = weft_event_wait(&rd->ev, weft_now() - 1) == 0;
    CHECK(nok + left == 1, "event: one set, %d waits took it, %d left", nok, left);
}

/* ---- Joins ---------------------------------------------------------------------------- */

static void *target_body(void *arg)
{
    round *rd = arg;
    int r = weft_sleep_until(rd->act_at);
    atomic_store(&rd->completer_flag, 1);
    return r == 0 ? (void *)rd : NULL;
}

/* The target finishes at about D (its own sleep), and the completer cancels it then too. */
static void join_setup(round *rd)
{
    /* D is not set yet: the target sleeps to act_at, read when it runs. */
    if (rd->seed & 2)
        CHECK(weft_runtime_spawn_on(rt_handle, (int)((rd->seed >> 8) % nworkers), &rd->target_h,
                                    target_body, rd, NULL) == 0,
              "spawn target");
    else
        CHECK(weft_spawn_on((unsigned)(rd->seed >> 8) % nworkers, &rd->target, target_body, rd,
                            NULL) == 0,
              "spawn target");
}

/* The target's result: its own once it has returned, or WEFT_CANCELED after a cancel. */
static void check_target_result(round *rd, void *res)
{
    CHECK((res == (void *)rd && atomic_load(&rd->completer_flag)) ||
              (res == WEFT_CANCELED && atomic_load(&rd->target_cancelled)),
          "join: the target's result %p", res);
}

/* Whether waiter 0 joins the task target (weft_join). Not when the completer cancels it:
 * a task handle is its joiner's until the join returns, stale once the join has reaped the
 * record (weft.h), and a cancel made through it then, however late, may land on the task the
 * record was recycled for (another round's; seen under qemu, where a thread can lose its CPU
 * for long enough for the worker's free records to go round). The lane joins it then, after
 * the completer (join_check). A handle target (weft_handle) has no such limit: every waiter
 * joins it, racing its cancel. */
static bool waiter_joins_task(const round *rd)
{
    return !rd->target_h && !(rd->seed & 4);
}

static void join_wait(part *p)
{
    round *rd = p->rd;
    void *res = NULL;
    int r;
    if (rd->target_h) {
        r = weft_handle_join(rd->target_h, &res, p->deadline);
    } else if (p->idx == 0 && waiter_joins_task(rd)) {
        r = weft_join(rd->target, &res, p->deadline); /* one joiner of a task handle */
    } else {
        r = weft_sleep_until(p->deadline);
        check_ret(p, r == 0 && p->deadline != WEFT_FOREVER ? -ETIMEDOUT : r, "sleep");
        return;
    }
    check_ret(p, r, "join");
    if (r == 0)
        check_target_result(rd, res);
}

static void join_act(round *rd)
{
    if ((rd->seed & 4) && (rd->target_h || weft_self())) {
        atomic_store(&rd->target_cancelled, 1);
        if (rd->target_h)
            weft_handle_cancel(rd->target_h);
        else
            weft_cancel(rd->target);
    }
}

static void join_check(round *rd)
{
    void *res = NULL;
    if (rd->target_h) {
        int r = weft_handle_join(rd->target_h, &res, WEFT_FOREVER);
        CHECK(r == 0, "final handle join: %d", r);
        weft_handle_release(rd->target_h);
        check_target_result(rd, res);
    } else if (!waiter_joins_task(rd) || rd->parts[0].r != 0) {
        /* Not joined by waiter 0, or its join failed: the handle is still valid. */
        int r = weft_join(rd->target, &res, WEFT_FOREVER);
        CHECK(r == 0, "final join: %d, after the waiter's join gave %d", r, rd->parts[0].r);
        check_target_result(rd, res);
    }
}

/* ---- Promises and timeouts ------------------------------------------------------------- */

static void prom_setup(round *rd)
{
    CHECK(weft_promise_create(&rd->prom[0]) == 0, "promise_create");
    weft_promise_retain(rd->prom[0]); /* the completer's */
}

/* Awaits the promise under a timeout at its deadline, then (once it is settled) the promise
 * itself: the value is there, whatever the first await said. */
static void prom_wait(part *p)
{
    round *rd = p->rd;
    weft_future *tf = NULL;
    int64_t dl = p->deadline;
    CHECK(weft_future_timeout(&tf, weft_promise_future(rd->prom[0]), dl) == 0, "timeout");
    void *v = NULL;
    int r = weft_await(tf, &v, (rd->seed & 8) ? dl : WEFT_FOREVER);
    check_ret(p, r, "await timeout");
    if (r == 0)
        CHECK(v == (void *)rd && atomic_load(&rd->resolving), "await: value %p", v);
    while (!atomic_load(&rd->settled))
        weft_yield();
    v = NULL;
    r = weft_await(weft_promise_future(rd->prom[0]), &v, WEFT_FOREVER);
    CHECK(r == 0 && v == (void *)rd, "await after settle: %d %p", r, v);
    weft_future_destroy(tf);
}

static void prom_act(round *rd)
{
    atomic_store(&rd->resolving, 1);
    int r = weft_promise_resolve(rd->prom[0], rd);
    atomic_store(&rd->settled, 1);
    int r2 = weft_promise_resolve(rd->prom[0], NULL);
    CHECK(r == 0 && r2 == -EALREADY, "resolve twice: %d %d", r, r2);
    weft_promise_release(rd->prom[0]);
}

static void prom_teardown(round *rd)
{
    weft_promise_release(rd->prom[0]);
}

/* A stackless task drives a timeout of the promise: its join gives the promise's value,
 * -ETIMEDOUT's NULL, or WEFT_CANCELED. */
static void sl_wait(part *p)
{
    round *rd = p->rd;
    weft_future *tf = NULL;
    CHECK(weft_future_timeout(&tf, weft_promise_future(rd->prom[0]), rd->D) == 0, "timeout");
    weft_task *t = NULL;
    CHECK(weft_spawn_future(&t, tf, NULL) == 0, "spawn_future");
    void *v = NULL;
    int r = weft_join(t, &v, WEFT_FOREVER);
    /* The join's own cancel: t is still ours to reap, once it has finished (by D). */
    int jr = r;
    while (r == -ECANCELED)
        if ((r = weft_join(t, &v, WEFT_FOREVER)) == -ECANCELED)
            weft_yield();
    CHECK(r == 0, "stackless join %d", r);
    r = jr;
    check_ret(p, r, "stackless join");
    CHECK(v == (void *)rd || v == NULL || v == WEFT_CANCELED, "stackless value %p", v);
    if (v == (void *)rd)
        CHECK(atomic_load(&rd->resolving), "stackless value before the settle");
}

/* Sleeps: 0 only at the deadline, -ECANCELED only after a cancel. */
static void sleep_wait(part *p)
{
    int r = weft_sleep_until(p->deadline);
    check_ret(p, r == 0 && p->deadline != WEFT_FOREVER ? 0 : r, "sleep");
    if (r == 0)
        CHECK(weft_now() >= p->deadline, "sleep woke early");
}

static void nop_act(round *rd)
{
    (void)rd;
}

static void nop_check(round *rd)
{
    (void)rd;
}

static const scen scens[] = {
    {"chan0-recv", 2, false, chan0_setup, recv_wait, NULL, send_act, chan_check, chan_teardown,
     false},
    {"chan1-recv", 2, false, chan1_setup, recv_wait, NULL, send_act, chan_check, chan_teardown,
     false},
    {"chan0-send", 3, false, chan0_setup, send_wait, NULL, recv_act, chan_check, chan_teardown,
     false},
    {"chan1-send", 3, false, chan1_setup, send_wait, NULL, recv_act, chan_check, chan_teardown,
     false},
    {"select", 2, false, chan0_setup, select_wait, NULL, select_act, chan_check, chan_teardown,
     false},
    {"select-mixed", 2, false, chan0_setup, mixed_wait, NULL, mixed_act, chan_check, chan_teardown,
     false},
    {"chan-close", 3, false, close_setup, close_wait, NULL, close_act, close_check, NULL, false},
    {"gselect", 2, true, gselect_setup, gselect_wait, NULL, gselect_act, chan_check,
     gselect_teardown, false},
    {"mutex", 3, false, NULL, mutex_wait, mutex_pre, mutex_act, lock_check, NULL, false},
    {"rwlock", 3, false, NULL, rw_wait, rw_pre, rw_act, lock_check, NULL, false},
    {"cond", 3, false, NULL, cond_wait_part, NULL, cond_act, count_check, NULL, false},
    {"sem", 3, false, NULL, sem_wait_part, NULL, sem_act, sem_check, NULL, false},
    {"waitgroup", 2, false, wg_setup, wg_wait, NULL, wg_act, wg_check, NULL, false},
    {"event", 3, false, NULL, ev_wait, NULL, ev_act, ev_check, NULL, false},
    {"join", 2, true, join_setup, join_wait, NULL, join_act, join_check, NULL, false},
    {"promise", 1, true, prom_setup, prom_wait, NULL, prom_act, nop_check, prom_teardown, false},
    {"stackless", 1, true, prom_setup, sl_wait, NULL, prom_act, nop_check, prom_teardown, false},
    {"sleep", 2, true, NULL, sleep_wait, NULL, nop_act, nop_check, NULL, false},
    {"cond-bunch", 3, false, NULL, cond_wait_part, NULL, cond_act, count_check, NULL, true},
    {"close-bunch", 3, false, close_setup, close_wait, NULL, close_act, close_check, NULL, true},
    {"sem-bunch", 3, false, NULL, sem_wait_part, NULL, sem_act, sem_check, NULL, true},
};
enum { NSCENS = sizeof scens / sizeof scens[0] };

static int64_t scen_ns;

typedef struct lane_arg {
    int lane;
    const scen *sc;
} lane_arg;

static void *lane_main(void *arg)
{
    lane_arg *la = arg;
    uint64_t seed = new_seed();
    int64_t end = weft_now() + scen_ns;
    int n = 0;
    while (n < 8 || weft_now() < end) {
        run_round(la->lane, la->sc, &seed);
        n++;
    }
    return NULL;
}

/* ---- Shutdown while everything is in flight -------------------------------------------- */

enum { NSD = 48 };

static weft_chan *sd_ch;
static weft_mutex sd_mu = WEFT_MUTEX_INIT;
static weft_cond sd_cv = WEFT_COND_INIT;
static weft_sem sd_sem = WEFT_SEM_INIT(0);
static weft_event sd_ev = WEFT_EVENT_AUTO_INIT;
static weft_promise *sd_prom[NSD];
static atomic_int sd_cleanups, sd_stop;
static pthread_t sd_thread;

static void sd_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&sd_cleanups, 1);
}

static void *sd_body(void *arg)
{
    intptr_t i = (intptr_t)arg;
    long v;
    for (;;) {
        int r = 0;
        switch (i % 7) {
        case 0:
            r = weft_chan_recv(sd_ch, &v, i % 2 ? WEFT_FOREVER : weft_deadline_in(WEFT_USEC * 50));
            break;
        case 1:
            if ((r = weft_mutex_lock(&sd_mu, weft_deadline_in(WEFT_USEC * 30))) == 0) {
                weft_yield();
                r = weft_cond_wait(&sd_cv, &sd_mu, weft_deadline_in(WEFT_USEC * 40));
                weft_mutex_unlock(&sd_mu);
            }
            break;
        case 2:
            r = weft_sem_acquire(&sd_sem, i % 2 ? WEFT_FOREVER : weft_deadline_in(WEFT_USEC * 20));
            break;
        case 3:
            r = weft_event_wait(&sd_ev, weft_deadline_in(WEFT_USEC * 20));
            break;
        case 4:
            r = weft_await(weft_promise_future(sd_prom[i]), NULL, WEFT_FOREVER);
            if (r >= 0)
                return NULL;
            break;
        case 5:
            if (i % 2) { /* a promise under a timeout that passes: the promise loses */
                weft_future *tf;
                CHECK(weft_future_timeout(&tf, weft_promise_future(sd_prom[i]),
                                          weft_deadline_in(WEFT_USEC * 20)) == 0,
                      "sd timeout");
                r = weft_await(tf, NULL, WEFT_FOREVER);
                weft_future_destroy(tf);
                if (r != -ECANCELED)
                    return NULL;
                break;
            }
            r = weft_sleep(WEFT_USEC * 10);
            break;
        default:
            r = weft_yield();
            break;
        }
        if (r == -ECANCELED)
            return NULL;
    }
}

/* Keeps completing the shutdown's waits until told to stop, then (the runtime gone) settles
 * every promise: a waker left in one must not name a freed task record. */
static void *sd_plain(void *arg)
{
    (void)arg;
    long v = 1;
    while (!atomic_load(&sd_stop)) {
        weft_chan_try_send(sd_ch, &v);
        weft_sem_release(&sd_sem, 1);
        weft_event_set(&sd_ev);
        weft_cond_signal(&sd_cv);
        if (weft_mutex_lock(&sd_mu, clock_now() + 20000) == 0)
            weft_mutex_unlock(&sd_mu);
    }
    for (int i = 0; i < NSD; i++) {
        weft_promise_resolve(sd_prom[i], NULL);
        weft_promise_release(sd_prom[i]);
    }
    return NULL;
}

static void start_shutdown_storm(void)
{
    CHECK(weft_chan_create(&sd_ch, sizeof(long), 1) == 0, "sd chan");
    weft_chan_retain(sd_ch); /* the plain thread's */
    for (int i = 0; i < NSD; i++) {
        CHECK(weft_promise_create(&sd_prom[i]) == 0, "sd promise"); /* the plain thread's */
    }
    atomic_store(&sd_cleanups, 0);
    atomic_store(&sd_stop, 0);
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED, .cleanup = sd_cleanup};
    for (intptr_t i = 0; i < NSD; i++) {
        if (i % 7 == 6 && i % 2) { /* stackless: a promise under a timeout far away */
            weft_future *tf;
            CHECK(weft_future_timeout(&tf, weft_promise_future(sd_prom[i]),
                                      weft_deadline_in(WEFT_MSEC * 1000)) == 0,
                  "sd timeout");
            CHECK(weft_spawn_future(NULL, tf, &o) == 0, "sd spawn_future");
            continue;
        }
        CHECK(weft_spawn_on((unsigned)i % nworkers, NULL, sd_body, (void *)i, &o) == 0, "sd spawn");
    }
    pthread_create(&sd_thread, NULL, sd_plain, NULL);
}

static void *main_task(void *arg)
{
    (void)arg;
    nworkers = weft_worker_count();
    rt_handle = weft_runtime_current();
    const char *only = getenv("RACE_STORM_ONLY");
    for (int s = 0; s < NSCENS; s++) {
        if (only && strcmp(only, scens[s].name) != 0)
            continue;
        current_scen = scens[s].name;
        lane_arg la[NLANES];
        weft_task *lt[NLANES];
        for (int l = 0; l < NLANES; l++) {
            la[l] = (lane_arg){l, &scens[s]};
            CHECK(weft_spawn_on((unsigned)l % nworkers, &lt[l], lane_main, &la[l],
                                &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}) == 0,
                  "spawn lane");
        }
        for (int l = 0; l < NLANES; l++)
            CHECK(weft_join(lt[l], NULL, WEFT_FOREVER) == 0, "join lane");
    }
    weft_stats st;
    weft_stats_get(&st);
    nhandoffs = st.nhandoffs;
    weft_runtime_release(rt_handle);
    start_shutdown_storm();
    weft_sleep(WEFT_MSEC);
    return NULL;
}

/* A lost wake-up shows as a round that never ends. */
/* What each lane waits for, printed when no round finishes (from the watchdog's thread; a
 * round may be freed as it reads, a risk taken only on the way to an abort). */
static void hang_report(void)
{
    static const char *stages[] = {"",
                                   "spawning the completer",
                                   "waiting for the completer's pre",
                                   "spawning the waiters",
                                   "joining the completer",
                                   "joining the canceller",
                                   "waiting for the plain threads' jobs",
                                   "cancelling and joining the waiters",
                                   "checking"};
    for (int l = 0; l < NLANES; l++) {
        round *rd = atomic_load(&lane_round[l]);
        if (!rd) {
            printf("lane %d: between rounds\n", l);
            continue;
        }
        int st = atomic_load(&rd->stage);
        printf("lane %d: round %lld, %s; completer on %s %d (how %u), ran %d, pre set %d\n", l,
               (long long)rd->tag, st >= 0 && st <= 8 ? stages[st] : "?",
               rd->comp_where < 0 ? "plain thread" : "worker",
               rd->comp_where < 0 ? 0 : rd->comp_where, (unsigned)((rd->seed >> 40) % 8),
               atomic_load(&rd->comp_ran), atomic_load(&rd->pre_set));
        for (int i = 0; i < rd->nw; i++)
            printf("  waiter %d: ran %d, cancel issued %d, plain %d\n", i,
                   atomic_load(&rd->parts[i].ran), atomic_load(&rd->parts[i].cancel_issued),
                   rd->parts[i].plain);
        for (int k = 0; k < NPLAIN; k++) {
            pthread_mutex_lock(&plains[l][k].mu);
            unsigned len = plains[l][k].len;
            pthread_mutex_unlock(&plains[l][k].mu);
            printf("  plain thread %d: %u jobs queued, %s\n", k, len,
                   atomic_load(&plains[l][k].busy) ? "in one" : "idle");
        }
    }
}

static void *watchdog(void *arg)
{
    (void)arg;
    long last = -1;
    int still = 0;
    for (;;) {
        sleep(1);
        long p = atomic_load(&progress);
        if (p == last) {
            if (++still >= HANG_S) {
                printf("FAIL: no round finished for %d s (scenario %s): a lost wake-up?\n", HANG_S,
                       current_scen);
                hang_report();
                fflush(stdout);
                raise(SIGUSR1); /* the task dump (weft_config.dump_signal) */
                sleep(2);
                abort();
            }
        } else {
            still = 0;
            last = p;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *e = getenv("RACE_STORM_MS");
    scen_ns = (e ? atoll(e) : DEFAULT_MS) * WEFT_MSEC;
    int loops = argc > 1                     ? atoi(argv[1])
                : getenv("RACE_STORM_LOOPS") ? atoi(getenv("RACE_STORM_LOOPS"))
                                             : 1;
    for (int l = 0; l < NLANES; l++)
        for (int k = 0; k < NPLAIN; k++) {
            plain *p = &plains[l][k];
            pthread_mutex_init(&p->mu, NULL);
            pthread_cond_init(&p->cv, NULL);
            pthread_create(&p->th, NULL, plain_main, p);
        }
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);
    for (int loop = 0; loop < loops; loop++) {
        for (int c = 0; c < 4; c++) {
            unsigned n = c % 2 ? 4 : 2;
            int mode = c < 2 ? WEFT_MODE_SHARDED : WEFT_MODE_STEALING;
            if (getenv("WEFT_MODE")) {
                if (c >= 2)
                    break;
                mode = WEFT_MODE_DEFAULT;
            }
            weft_config cfg;
            weft_config_init(&cfg);
            cfg.workers = n;
            cfg.mode = mode;
            cfg.dump_signal = SIGUSR1; /* the watchdog's dump of a hang */
            /* Errors only: plain threads preempted in a spinlock's few instructions make
             * stall warnings on 2 CPUs. */
            cfg.log_level = WEFT_LOG_ERROR;
            long r0 = atomic_load(&nrounds);
            int r = weft_run(&cfg, main_task, NULL, NULL);
            CHECK(r == 0, "weft_run: %s", weft_strerror(r));
            atomic_store(&sd_stop, 1);
            pthread_join(sd_thread, NULL);
            weft_chan_release(sd_ch);
            weft_chan_release(sd_ch);
            CHECK(atomic_load(&sd_cleanups) == NSD, "%d of %d cleanups at shutdown",
                  atomic_load(&sd_cleanups), NSD);
            printf("N=%u %s: %ld rounds (%ld ok, %ld timed out, %ld cancelled, %ld moved, "
                   "%llu hand-offs)\n",
                   n,
                   mode == WEFT_MODE_STEALING  ? "stealing"
                   : mode == WEFT_MODE_SHARDED ? "sharded"
                                               : getenv("WEFT_MODE"),
                   atomic_load(&nrounds) - r0, atomic_load(&stat_ok), atomic_load(&stat_timeout),
                   atomic_load(&stat_cancel), atomic_load(&stat_moved),
                   (unsigned long long)nhandoffs);
            atomic_fetch_add(&progress, 1);
        }
    }
    for (int l = 0; l < NLANES; l++)
        for (int k = 0; k < NPLAIN; k++) {
            plain *p = &plains[l][k];
            pthread_mutex_lock(&p->mu);
            p->stop = true;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            pthread_join(p->th, NULL);
        }
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
