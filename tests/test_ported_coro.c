/* Behaviours the test suites of other coroutine runtimes check, re-expressed against what
 * weft.h documents: libdill's tests (go, bundle, chan, choose, sleep, fd, tcp, ipc, prefix,
 * suffix, happyeyeballs, overload, and its cancellation rule: a coroutine cancelled while
 * blocked gets ECANCELED, and so does every later blocking call), libmill's (chan, cls,
 * fdwait, overload), libco's examples (cond, poll, specific and setenv), and Seastar's unit
 * tests where weft has the primitive (semaphore, gate, timer, when_all/when_any/
 * parallel_for_each, abort_source, smp submit_to). test_ported.c, test_ported2.c,
 * test_conformance.c and test_semantics.c hold the ports made before; this file adds the
 * hostile cases: a cancellation at every kind of wait and one racing each kind of grant,
 * deadlines passed, negative and at the end of time at every kind of wait, groups cancelled
 * while their members spawn, generators abandoned half-way, combinators over empty, ready,
 * failed and duplicated inputs, selects over many and duplicated channels, channels,
 * broadcasts, promises and every sync primitive let go of by one side as the other wakes,
 * recursion close to the stack size and past it, and 100,000 coroutines in one group. Each
 * test names its source; where weft.h is silent it asserts what the peer runtime does. No
 * pass or fail depends on timing: deadlines are bounds a hang would reach. Every test holds
 * in sharded and stealing mode, on one and two workers, on epoll and on io_uring (the
 * environment picks: WEFT_MODE, WEFT_WORKERS, WEFT_BACKEND). Tasks on other workers record
 * what they saw, and the main task asserts: a failed assertion must not unwind another
 * thread's coroutine. */
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "child_helpers.h"
#include "task_helpers.h"
#include "tcp_helpers.h"
#include "tmpdir_helpers.h"

#define SOON     (10 * WEFT_SEC) /* a deadline only a hang reaches */
#define LONG_AGO ((int64_t)0)    /* an absolute deadline that has always passed */

/* ---- Helpers ---------------------------------------------------------------------------- */

/* The worker other than the main task's (worker 0) when there are two or more, else 0. */
static unsigned other_worker(void)
{
    return weft_worker_count() > 1 ? 1u : 0u;
}

/* Spawns fn(arg) pinned to `worker`, so that where it runs is known in both modes. */
static weft_task *spawn_at(unsigned worker, weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    cr_assert_eq(weft_spawn_on(worker, &t, fn, arg, &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                 0);
    return t;
}

static weft_chan *chan_new(size_t elem, size_t cap)
{
    weft_chan *c = NULL;
    cr_assert_eq(weft_chan_create(&c, elem, cap), 0);
    return c;
}

/* run_main with the stall detector off: tasks that spin on purpose (the relays) and a loaded
 * machine would only add reports to the log. */
static void *run_quiet(weft_fn fn, void *arg)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stall_ms = -1;
    return run_main_cfg(&cfg, fn, arg);
}

/* Joins t and checks that it finished cancelled. */
static void join_cancelled(weft_task *t)
{
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, weft_deadline_in(SOON)), 0);
    cr_assert_eq(r, WEFT_CANCELED);
}

/* ---- libdill go1-go4, bundle worker2, go3: closing a coroutine in every state ------------ */

/* libdill's hclose on a coroutine is weft_cancel then weft_join. */
static void close_task(weft_task *t, void **result)
{
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, result, weft_deadline_in(SOON)), 0);
}

static atomic_int go_sum;

struct yielder {
    int count, n;
};

/* go1's worker: adds n count times, yielding between. */
static void *yield_adder(void *arg)
{
    struct yielder *y = arg;
    for (int i = 0; i < y->count; i++) {
        atomic_fetch_add(&go_sum, y->n);
        if (weft_yield() != 0)
            return (void *)1;
    }
    return NULL;
}

struct sleeper {
    int rc1, rc2;
};

/* go3's worker: a long sleep cancelled, then again: both -ECANCELED, the second at once. */
static void *cancelled_sleeper(void *arg)
{
    struct sleeper *s = arg;
    s->rc1 = weft_sleep_until(weft_deadline_in(100 * WEFT_SEC));
    s->rc2 = weft_sleep_until(weft_deadline_in(100 * WEFT_SEC));
    return NULL;
}

struct spinner {
    atomic_int started;
    int rc;
};

static void *spinning_yielder(void *arg)
{
    struct spinner *s = arg;
    atomic_store(&s->started, 1);
    int r;
    while ((r = weft_yield()) == 0)
        ;
    s->rc = r;
    return NULL;
}

static atomic_int ran, cleaned;

static void *mark_ran(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return arg;
}

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleaned, 1);
}

static void *close_every_state_main(void *arg)
{
    (void)arg;
    unsigned where[] = {0, other_worker()};
    for (int k = 0; k < 2; k++) {
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        /* go1: three coroutines' yields interleave; closing finished ones keeps their result. */
        atomic_store(&go_sum, 0);
        struct yielder ys[] = {{3, 7}, {1, 11}, {2, 5}};
        weft_task *t[3];
        for (int i = 0; i < 3; i++)
            cr_assert_eq(weft_spawn_on(where[k], &t[i], yield_adder, &ys[i], &pin), 0);
        for (int i = 0; i < 3; i++) {
            cr_assert_null(join_result(t[i]));
        }
        cr_assert_eq(atomic_load(&go_sum), 42);

        /* go4: a finished coroutine closed: the cancel is harmless, the result stays. */
        weft_task *f;
        cr_assert_eq(weft_spawn_on(where[k], &f, mark_ran, (void *)42, &pin), 0);
        while (weft_task_status(f) != WEFT_TASK_FINISHED)
            cr_assert_eq(weft_yield(), 0);
        void *r = NULL;
        close_task(f, &r);
        cr_assert_eq(r, (void *)42, "a finished task closed keeps its result");

        /* Never started: it never runs, and its cleanup still runs. (On another worker it
         * may have started before the cancel arrived: then it ran to its end, once.) */
        atomic_store(&ran, 0);
        atomic_store(&cleaned, 0);
        weft_task *n;
        cr_assert_eq(
            weft_spawn_on(where[k], &n, mark_ran, (void *)7,
                          &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED, .cleanup = count_cleanup}),
            0);
        close_task(n, &r);
        if (where[k] == 0 || atomic_load(&ran) == 0) {
            cr_assert_eq(r, WEFT_CANCELED);
            cr_assert_eq(atomic_load(&ran), 0, "a task closed before it ran never runs");
        } else {
            cr_assert_eq(r, (void *)7, "it ran to its end before the cancel");
        }
        cr_assert_eq(atomic_load(&cleaned), 1, "its cleanup ran once");

        /* Runnable, never parking: its next yield returns -ECANCELED. */
        struct spinner sp = {.rc = 1};
        weft_task *y = spawn_at(where[k], spinning_yielder, &sp);
        while (!atomic_load(&sp.started))
            cr_assert_eq(weft_yield(), 0);
        close_task(y, &r);
        cr_assert_eq(r, WEFT_CANCELED);
        cr_assert_eq(sp.rc, -ECANCELED, "its yield after the cancel");

        /* go3: parked in a sleep; that sleep and the next return -ECANCELED. */
        struct sleeper s = {1, 1};
        weft_task *sl = spawn_at(where[k], cancelled_sleeper, &s);
        wait_parked(sl);
        close_task(sl, &r);
        cr_assert_eq(r, WEFT_CANCELED);
        cr_assert_eq(s.rc1, -ECANCELED);
        cr_assert_eq(s.rc2, -ECANCELED, "the next blocking call fails at once");
    }
    return NULL;
}

Test(ported_coro, closing_a_coroutine_in_every_state, .timeout = 30)
{
    run_quiet(close_every_state_main, NULL);
}

/* ---- libdill's cancellation rule, at every kind of wait ----------------------------------
 * libdill go3, chan.c `cancel`, fd.c `cancel`, tcp.c/ipc.c `client` (msleep(-1) then
 * ECANCELED): a coroutine cancelled while blocked gets ECANCELED from that call, and every
 * later blocking call fails the same way at once. Here for each kind of wait weft has, on the
 * main task's worker and on another. */

enum wait_kind {
    W_SLEEP,
    W_CHAN_RECV,
    W_CHAN_SEND,
    W_SELECT,
    W_SELECT_FD,
    W_FD_WAIT,
    W_READ,
    W_ACCEPT,
    W_MUTEX,
    W_COND,
    W_SEM,
    W_WAITGROUP,
    W_EVENT,
    W_RWLOCK,
    W_ONCE,
    W_JOIN,
    W_AWAIT,
    W_SHARED,
    W_BCAST,
    W_GEN,
    W_GROUP,
    W_NKINDS
};

static const char *const wait_names[W_NKINDS] = {
    "sleep",     "chan recv", "chan send",    "select",     "select fd+timer",
    "fd_wait",   "read",      "accept",       "mutex",      "cond",
    "sem",       "waitgroup", "event",        "rwlock",     "once",
    "join",      "await",     "shared await", "bcast recv", "gen next",
    "group wait"};

struct env {
    weft_chan *c0, *c1;
    int pair[2], lfd;
    weft_mutex m, cm;
    weft_cond cond;
    weft_sem sem;
    weft_waitgroup wg;
    weft_event ev, gate;
    weft_rwlock rw;
    weft_once once;
    weft_task *target, *once_runner;
    weft_promise *promise;
    weft_shared *shared;
    weft_bcast *bcast;
    weft_bcast_rx *rx;
    weft_gen *gen;
    weft_group *group;
};

static void once_waits_for_gate(void *arg)
{
    struct env *e = arg;
    weft_event_wait(&e->gate, WEFT_FOREVER);
}

static void *run_once(void *arg)
{
    struct env *e = arg;
    return (void *)(intptr_t)weft_once_call(&e->once, once_waits_for_gate, e, WEFT_FOREVER);
}

static void gen_after_gate(weft_gen *g, void *arg)
{
    struct env *e = arg;
    if (weft_event_wait(&e->gate, WEFT_FOREVER) != 0)
        return;
    long v = 1;
    while (weft_gen_yield(g, &v) == 0)
        v++;
}

static void *member_waits_for_gate(void *arg)
{
    struct env *e = arg;
    weft_event_wait(&e->gate, WEFT_FOREVER);
    return NULL;
}

static void env_init(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->m = (weft_mutex)WEFT_MUTEX_INIT;
    e->cm = (weft_mutex)WEFT_MUTEX_INIT;
    e->cond = (weft_cond)WEFT_COND_INIT;
    e->sem = (weft_sem)WEFT_SEM_INIT(0);
    e->wg = (weft_waitgroup)WEFT_WAITGROUP_INIT;
    e->ev = (weft_event)WEFT_EVENT_INIT;
    e->gate = (weft_event)WEFT_EVENT_INIT;
    e->rw = (weft_rwlock)WEFT_RWLOCK_INIT;
    e->once = (weft_once)WEFT_ONCE_INIT;
    e->c0 = chan_new(sizeof(long), 0);
    e->c1 = chan_new(sizeof(long), 0);
    tcp_pair(e->pair);
    weft_addr a;
    e->lfd = listener(&a);
    cr_assert_eq(weft_mutex_lock(&e->m, WEFT_FOREVER), 0);
    cr_assert_eq(weft_waitgroup_add(&e->wg, 1), 0);
    cr_assert_eq(weft_rwlock_wrlock(&e->rw, WEFT_FOREVER), 0);
    e->once_runner = spawn_pinned(run_once, e);
    wait_parked(e->once_runner);
    e->target = spawn_pinned(member_waits_for_gate, e);
    cr_assert_eq(weft_promise_create(&e->promise), 0);
    weft_future *pending;
    cr_assert_eq(weft_future_pending(&pending), 0);
    cr_assert_eq(weft_shared_create(&e->shared, pending), 0);
    cr_assert_eq(weft_bcast_create(&e->bcast, sizeof(long), 4), 0);
    cr_assert_eq(weft_bcast_subscribe(e->bcast, &e->rx), 0);
    cr_assert_eq(weft_gen_create(&e->gen, gen_after_gate, e, sizeof(long), NULL), 0);
    cr_assert_eq(weft_group_create(&e->group), 0);
    cr_assert_eq(weft_group_spawn(e->group, member_waits_for_gate, e, NULL), 0);
}

static void env_fini(struct env *e)
{
    cr_assert_eq(weft_mutex_unlock(&e->m), 0, "main still holds its mutex");
    cr_assert_eq(weft_rwlock_unlock(&e->rw), 0, "and its write lock");
    cr_assert_eq(weft_mutex_try_lock(&e->cm), 0, "the cond's mutex was given back");
    cr_assert_eq(weft_mutex_unlock(&e->cm), 0);
    cr_assert_eq(weft_event_set(&e->gate), 0);
    cr_assert_null(join_result(e->target), "the joined task is untouched");
    cr_assert_null(join_result(e->once_runner));
    cr_assert_eq(weft_group_wait(e->group, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_group_close(e->group), 0);
    long v = 0;
    cr_assert_eq(weft_gen_next(e->gen, &v, weft_deadline_in(SOON)), 0);
    cr_assert_eq(v, 1, "the generator's first value is still the first");
    cr_assert_eq(weft_gen_close(e->gen), 0);
    weft_bcast_unsubscribe(e->rx);
    weft_bcast_release(e->bcast);
    weft_shared_release(e->shared);
    weft_promise_release(e->promise);
    cr_assert_eq(weft_close(e->lfd), 0);
    cr_assert_eq(weft_close(e->pair[0]), 0);
    cr_assert_eq(weft_close(e->pair[1]), 0);
    weft_chan_release(e->c0);
    weft_chan_release(e->c1);
}

/* One wait of `kind` on e, which is set up so that it cannot complete, until `dl`. */
static int wait_until(struct env *e, int kind, int64_t dl)
{
    long v = 0;
    char b;
    switch (kind) {
    case W_SLEEP:
        return weft_sleep_until(dl == WEFT_FOREVER ? weft_deadline_in(100 * WEFT_SEC) : dl);
    case W_CHAN_RECV:
        return weft_chan_recv(e->c0, &v, dl);
    case W_CHAN_SEND:
        return weft_chan_send(e->c0, &v, dl);
    case W_SELECT: {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = e->c0, .elem = &v},
                          {.op = WEFT_CASE_SEND, .chan = e->c1, .elem = &v}};
        return weft_select(cs, 2, dl);
    }
    case W_SELECT_FD: {
        weft_case cs[] = {{.op = WEFT_CASE_FD, .io = {e->pair[1], WEFT_READABLE}},
                          {.op = WEFT_CASE_TIMER, .at = weft_deadline_in(100 * WEFT_SEC)},
                          {.op = WEFT_CASE_RECV, .chan = e->c0, .elem = &v}};
        return weft_select(cs, 3, dl);
    }
    case W_FD_WAIT:
        return weft_fd_wait(e->pair[1], WEFT_READABLE, dl);
    case W_READ:
        return (int)weft_read(e->pair[1], &b, 1, dl);
    case W_ACCEPT:
        return weft_accept(e->lfd, NULL, NULL, dl);
    case W_MUTEX:
        return weft_mutex_lock(&e->m, dl);
    case W_COND: {
        /* Uncontended, the lock needs no wait: it is taken even when cancelled (weft.h). */
        int r = weft_mutex_lock(&e->cm, WEFT_FOREVER); /* free: never waits */
        if (r != 0)
            return 1000 + r;
        r = weft_cond_wait(&e->cond, &e->cm, dl);
        int u = weft_mutex_unlock(&e->cm); /* held again, whatever the wait returned */
        return u != 0 ? 2000 + u : r;
    }
    case W_SEM:
        return weft_sem_acquire(&e->sem, dl);
    case W_WAITGROUP:
        return weft_waitgroup_wait(&e->wg, dl);
    case W_EVENT:
        return weft_event_wait(&e->ev, dl);
    case W_RWLOCK:
        return weft_rwlock_rdlock(&e->rw, dl);
    case W_ONCE:
        return weft_once_call(&e->once, once_waits_for_gate, e, dl);
    case W_JOIN:
        return weft_join(e->target, NULL, dl);
    case W_AWAIT:
        return weft_await(weft_promise_future(e->promise), NULL, dl);
    case W_SHARED:
        return weft_shared_await(e->shared, NULL, dl);
    case W_BCAST:
        return weft_bcast_recv(e->rx, &v, NULL, dl);
    case W_GEN:
        return weft_gen_next(e->gen, &v, dl);
    case W_GROUP:
        return weft_group_wait(e->group, dl);
    }
    return 9999;
}

static int wait_once(struct env *e, int kind)
{
    return wait_until(e, kind, WEFT_FOREVER);
}

struct subject {
    struct env *e;
    int kind;
    int rc[4];
};

static void *subject(void *arg)
{
    struct subject *s = arg;
    s->rc[0] = wait_once(s->e, s->kind);
    s->rc[1] = wait_once(s->e, s->kind);
    s->rc[2] = weft_sleep_until(WEFT_FOREVER);
    s->rc[3] = weft_yield();
    return NULL;
}

static void *cancel_every_wait_main(void *arg)
{
    (void)arg;
    unsigned where[] = {0, other_worker()};
    for (int k = 0; k < (where[1] ? 2 : 1); k++) {
        for (int kind = 0; kind < W_NKINDS; kind++) {
            /* A generator and a group belong to their worker's thread. */
            if (k == 1 && (kind == W_GEN || kind == W_GROUP))
                continue;
            struct env e;
            env_init(&e);
            struct subject s = {.e = &e, .kind = kind, .rc = {1, 1, 1, 1}};
            weft_task *t = spawn_at(where[k], subject, &s);
            wait_parked(t);
            cr_assert_eq(weft_cancel(t), 0);
            join_cancelled(t);
            for (int i = 0; i < 4; i++)
                cr_assert_eq(s.rc[i], -ECANCELED, "%s on worker %u, call %d: %d (%s)",
                             wait_names[kind], where[k], i, s.rc[i], weft_errname(s.rc[i]));
            env_fini(&e);
        }
    }
    return NULL;
}

Test(ported_coro, a_wait_cancelled_fails_and_so_does_every_later_one, .timeout = 60)
{
    run_quiet(cancel_every_wait_main, NULL);
}

/* ---- Seastar semaphore_test abort_after_wait, libdill chan.c: cancel, then the grant -------
 * Seastar: a waiter aborted and then signalled fails, and the unit stays. libdill: a cancelled
 * receiver is gone from the channel, so a send finds nobody. weft lets a grant that reaches a
 * parked call before it runs again win (weft.h, weft_cancel): the call then returns success
 * and the task owns what it got. Either way nothing may be lost or given twice: the task
 * reports the grant it got, or it reports -ECANCELED and the grant is still there. On the
 * main task's worker the cancel and the grant come in one turn (the subject cannot run
 * between them); on another worker they race the subject's wake. */

enum grant_kind { G_SEM, G_MUTEX, G_RECV, G_SEND, G_SEND_FULL, G_SELECT, G_RWLOCK, G_NKINDS };

static const char *const grant_names[G_NKINDS] = {"sem",       "mutex",  "chan recv", "chan send",
                                                  "send full", "select", "rwlock"};

struct grant_env {
    int kind;
    weft_sem sem;
    weft_mutex m;
    weft_rwlock rw;
    weft_chan *c;
    long got;
    int rc;
};

static void *grant_subject(void *arg)
{
    struct grant_env *g = arg;
    long v = 77;
    switch (g->kind) {
    case G_SEM:
        g->rc = weft_sem_acquire(&g->sem, WEFT_FOREVER);
        break;
    case G_MUTEX:
        g->rc = weft_mutex_lock(&g->m, WEFT_FOREVER);
        if (g->rc == 0)
            weft_mutex_unlock(&g->m);
        break;
    case G_RWLOCK:
        g->rc = weft_rwlock_rdlock(&g->rw, WEFT_FOREVER);
        if (g->rc == 0)
            weft_rwlock_unlock(&g->rw);
        break;
    case G_RECV:
        g->rc = weft_chan_recv(g->c, &g->got, WEFT_FOREVER);
        break;
    case G_SEND:
    case G_SEND_FULL:
        g->rc = weft_chan_send(g->c, &v, WEFT_FOREVER);
        break;
    case G_SELECT: {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = g->c, .elem = &g->got}};
        g->rc = weft_select(cs, 1, WEFT_FOREVER);
        break;
    }
    }
    return NULL;
}

static void cancel_then_grant(unsigned where, int kind)
{
    struct grant_env g = {.kind = kind,
                          .sem = WEFT_SEM_INIT(0),
                          .m = WEFT_MUTEX_INIT,
                          .rw = WEFT_RWLOCK_INIT,
                          .got = -1,
                          .rc = 1};
    g.c = chan_new(sizeof(long), kind == G_SEND_FULL ? 1 : 0);
    long v = 5;
    if (kind == G_SEND_FULL)
        cr_assert_eq(weft_chan_try_send(g.c, &v), 0);
    if (kind == G_MUTEX)
        cr_assert_eq(weft_mutex_lock(&g.m, WEFT_FOREVER), 0);
    if (kind == G_RWLOCK)
        cr_assert_eq(weft_rwlock_wrlock(&g.rw, WEFT_FOREVER), 0);
    weft_task *t = spawn_at(where, grant_subject, &g);
    wait_parked(t);
    cr_assert_eq(weft_cancel(t), 0);
    int granted = 0; /* what the grant call reported */
    switch (kind) {
    case G_SEM:
        cr_assert_eq(weft_sem_release(&g.sem, 1), 0);
        break;
    case G_MUTEX:
        cr_assert_eq(weft_mutex_unlock(&g.m), 0);
        break;
    case G_RWLOCK:
        cr_assert_eq(weft_rwlock_unlock(&g.rw), 0);
        break;
    case G_RECV:
    case G_SELECT:
        granted = weft_chan_try_send(g.c, &v);
        break;
    case G_SEND:
        granted = weft_chan_try_recv(g.c, &v);
        break;
    case G_SEND_FULL:
        cr_assert_eq(weft_chan_try_recv(g.c, &v), 0, "the buffered value");
        cr_assert_eq(v, 5);
        break;
    }
    join_cancelled(t);
    const char *name = grant_names[kind];
    cr_assert(g.rc == 0 || g.rc == -ECANCELED, "%s on worker %u: %d", name, where, g.rc);
    if (where == 0) /* the grant reached the parked call before it ran again: it wins */
        cr_assert_eq(g.rc, 0, "%s: the completion after the cancel wins (weft.h)", name);
    bool won = g.rc == 0;
    switch (kind) {
    case G_SEM:
        cr_assert_eq(weft_sem_value(&g.sem), won ? 0 : 1, "%s: the unit is taken once", name);
        break;
    case G_MUTEX:
        cr_assert_eq(weft_mutex_try_lock(&g.m), 0, "%s: free, not owner-dead", name);
        cr_assert_eq(weft_mutex_unlock(&g.m), 0);
        break;
    case G_RWLOCK:
        cr_assert_eq(weft_rwlock_wrlock(&g.rw, LONG_AGO), 0, "%s: free", name);
        cr_assert_eq(weft_rwlock_unlock(&g.rw), 0);
        break;
    case G_RECV:
    case G_SELECT:
        if (won) {
            cr_assert_eq(granted, 0, "%s: the receiver got a value nobody sent", name);
            cr_assert_eq(g.got, 5);
        } else {
            cr_assert_eq(granted, -EAGAIN, "%s: a send matched a cancelled receiver", name);
        }
        break;
    case G_SEND:
        if (won) {
            cr_assert_eq(granted, 0, "%s", name);
            cr_assert_eq(v, 77);
        } else {
            cr_assert_eq(granted, -EAGAIN, "%s: a receive matched a cancelled sender", name);
        }
        break;
    case G_SEND_FULL:
        cr_assert_eq(weft_chan_len(g.c), won ? 1u : 0u, "%s", name);
        if (won) {
            cr_assert_eq(weft_chan_try_recv(g.c, &v), 0);
            cr_assert_eq(v, 77);
        }
        break;
    }
    weft_chan_release(g.c);
}

static void *cancel_then_grant_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++)
        for (int kind = 0; kind < G_NKINDS; kind++) {
            cancel_then_grant(0, kind);
            cancel_then_grant(other_worker(), kind);
        }
    return NULL;
}

Test(ported_coro, a_grant_racing_a_cancel_is_taken_once_or_left, .timeout = 60)
{
    run_quiet(cancel_then_grant_main, NULL);
}

/* The cond and auto-reset event variants: a signal (one set) that lands on a waiter already
 * cancelled either wakes it (its wait returns 0) or goes to the next waiter; one of the two
 * gets it, never neither (libco example_cond's consumer would then sleep through an item). */
struct pair_waiter {
    weft_mutex *m;
    weft_cond *c;
    weft_event *e;
    int rc;
};

static void *cond_waiter(void *arg)
{
    struct pair_waiter *w = arg;
    if (w->c) {
        if (weft_mutex_lock(w->m, WEFT_FOREVER) != 0)
            return (void *)1;
        w->rc = weft_cond_wait(w->c, w->m, WEFT_FOREVER);
        weft_mutex_unlock(w->m);
    } else {
        w->rc = weft_event_wait(w->e, WEFT_FOREVER);
    }
    return NULL;
}

static void *one_signal_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++)
        for (int use_event = 0; use_event < 2; use_event++) {
            weft_mutex m = WEFT_MUTEX_INIT;
            weft_cond c = WEFT_COND_INIT;
            weft_event e = WEFT_EVENT_AUTO_INIT;
            struct pair_waiter a = {&m, use_event ? NULL : &c, &e, 1};
            struct pair_waiter b = a;
            weft_task *ta = spawn_at(round % 2 ? other_worker() : 0, cond_waiter, &a);
            wait_parked(ta);
            weft_task *tb = spawn_pinned(cond_waiter, &b);
            wait_parked(tb);
            cr_assert_eq(weft_cancel(ta), 0);
            if (use_event)
                cr_assert_eq(weft_event_set(&e), 0);
            else
                cr_assert_eq(weft_cond_signal(&c), 1);
            join_cancelled(ta);
            cr_assert(a.rc == 0 || a.rc == -ECANCELED, "%d", a.rc);
            if (a.rc == -ECANCELED) {
                /* The signal went on to b. */
                cr_assert_null(join_result(tb), "b was woken");
                cr_assert_eq(b.rc, 0);
            } else {
                wait_parked(tb);
                cr_assert_eq(weft_task_status(tb), WEFT_TASK_PARKED, "one signal woke both");
                if (use_event)
                    cr_assert_eq(weft_event_set(&e), 0);
                else
                    cr_assert_eq(weft_cond_signal(&c), 1);
                cr_assert_null(join_result(tb));
                cr_assert_eq(b.rc, 0);
            }
        }
    return NULL;
}

Test(ported_coro, a_signal_to_a_cancelled_waiter_is_never_lost, .timeout = 60)
{
    run_quiet(one_signal_main, NULL);
}

/* ---- libdill bundle.c: a group's life ------------------------------------------------------ */

static void *nothing(void *arg)
{
    (void)arg;
    return NULL;
}

/* bundle.c's worker2: a long sleep that the closing bundle cancels. */
static void *sleep_records(void *arg)
{
    atomic_int *rc = arg;
    atomic_store(rc, 2); /* started */
    atomic_store(rc, weft_sleep_until(weft_deadline_in(100 * WEFT_SEC)));
    return NULL;
}

/* Yields until both sleep_records members have started (a member cancelled before it ran
 * never runs, and records nothing). */
static void wait_started(atomic_int *rc)
{
    while (atomic_load(&rc[0]) == 1 || atomic_load(&rc[1]) == 1)
        cr_assert_eq(weft_yield(), 0);
}

static void *sleep_briefly(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC);
    return NULL;
}

static weft_group *group_new(void)
{
    weft_group *g = NULL;
    cr_assert_eq(weft_group_create(&g), 0);
    return g;
}

static void *bundle_main(void *arg)
{
    (void)arg;
    /* An empty bundle closes; waiting on one returns at once, also with a passed deadline. */
    weft_group *g = group_new();
    cr_assert_eq(weft_group_size(g), 0);
    cr_assert_eq(weft_group_wait(g, LONG_AGO), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_close(g), 0);

    /* A member that does nothing, closed before and after it ran. */
    g = group_new();
    cr_assert_eq(weft_group_spawn(g, nothing, NULL, NULL), 0);
    cr_assert_eq(weft_group_close(g), 0);
    g = group_new();
    cr_assert_eq(weft_group_spawn(g, nothing, NULL, NULL), 0);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_group_size(g), 0);
    cr_assert_eq(weft_group_close(g), 0);

    /* Two sleepers parked for ever: the close cancels both, their sleeps say -ECANCELED. */
    atomic_int rc[2] = {1, 1};
    g = group_new();
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_group_spawn(g, sleep_records, &rc[i], NULL), 0);
    wait_started(rc);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_group_size(g), 2);
    cr_assert_eq(weft_group_close(g), 0);
    cr_assert_eq(atomic_load(&rc[0]), -ECANCELED);
    cr_assert_eq(atomic_load(&rc[1]), -ECANCELED);

    /* Wait for two, then spawn again into the same bundle, then close. */
    g = group_new();
    cr_assert_eq(weft_group_spawn(g, sleep_briefly, NULL, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, sleep_briefly, NULL, NULL), 0);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_group_spawn(g, nothing, NULL, NULL), 0, "a bundle is reusable after a wait");
    cr_assert_eq(weft_group_close(g), 0);

    /* bundle_go_mem with a 4 KiB stack: weft's floor is WEFT_STACK_MIN. */
    g = group_new();
    cr_assert_eq(weft_group_spawn(g, nothing, NULL, &(weft_spawn_opts){.stack_size = 4096}),
                 -EINVAL);
    cr_assert_eq(
        weft_group_spawn(g, nothing, NULL, &(weft_spawn_opts){.stack_size = ((size_t)1 << 30) + 1}),
        -EINVAL, "above 1 GiB");
    cr_assert_eq(
        weft_group_spawn(g, nothing, NULL, &(weft_spawn_opts){.stack_size = WEFT_STACK_MIN}), 0);
    cr_assert_eq(weft_group_size(g), 1, "the refused spawn left nothing behind");
    cr_assert_eq(weft_group_close(g), 0);
    return NULL;
}

Test(ported_coro, a_bundles_life, .timeout = 30)
{
    run_quiet(bundle_main, NULL);
}

/* ---- Groups cancelled while their members spawn members ---------------------------------- */

struct spawner_env {
    weft_group *g;
    atomic_int spawned, started, finished, refused;
    int replace; /* 1: a cancelled member spawns a replacement */
};

struct spawner_arg {
    struct spawner_env *env;
    int depth;
};

static void spawner_cleanup(void *arg)
{
    struct spawner_arg *a = arg;
    atomic_fetch_add(&a->env->finished, 1);
    free(a);
}

static void *spawner(void *arg);

static int spawn_child(struct spawner_env *env, int depth, unsigned flags)
{
    struct spawner_arg *a = malloc(sizeof *a);
    if (!a)
        return -ENOMEM;
    *a = (struct spawner_arg){env, depth};
    int r = weft_group_spawn(env->g, spawner, a,
                             &(weft_spawn_opts){.cleanup = spawner_cleanup, .flags = flags});
    if (r == 0)
        atomic_fetch_add(&env->spawned, 1);
    else {
        free(a);
        if (r == -EPIPE)
            atomic_fetch_add(&env->refused, 1);
    }
    return r;
}

/* A binary tree of members, each spawning its two children (every other one child first),
 * then parking; a cancelled member may spawn a replacement on its way out. */
static void *spawner(void *arg)
{
    struct spawner_arg *a = arg;
    struct spawner_env *env = a->env;
    atomic_fetch_add(&env->started, 1);
    if (a->depth < 9) {
        for (int i = 0; i < 2; i++)
            if (spawn_child(env, a->depth + 1, i ? WEFT_SPAWN_CHILD_FIRST : 0) != 0)
                break;
    }
    int r = weft_sleep_until(WEFT_FOREVER);
    if (r == -ECANCELED && env->replace)
        spawn_child(env, 9, 0); /* a leaf: it parks, and is cancelled by the close */
    return NULL;
}

static void *group_cancel_spawning_main(void *arg)
{
    (void)arg;
    for (int replace = 0; replace < 2; replace++)
        for (int turns = 0; turns < 6; turns++) {
            struct spawner_env env = {.g = group_new(), .replace = replace};
            cr_assert_eq(spawn_child(&env, 0, 0), 0);
            /* Let the tree grow for a few turns, then cancel it mid-growth. */
            for (int i = 0; i < turns; i++)
                cr_assert_eq(weft_yield(), 0);
            int n = weft_group_cancel(env.g);
            cr_assert_geq(n, 0);
            /* A cancel reaches the members there are. Members spawned after it are not
             * cancelled by it (weft.h): a member running on another worker may still be
             * spawning its children, and a member that had started spawns a replacement on
             * its way out; those park until the close. Only a tree cancelled before any member
             * ran is over for sure. */
            int r = weft_group_wait(env.g, weft_deadline_in(WEFT_MSEC));
            cr_assert(r == 0 || r == -ETIMEDOUT, "%d", r);
            if (replace)
                cr_assert(!(r == 0 && atomic_load(&env.started) > 0),
                          "the replacements of started members are alive (turns %d)", turns);
            cr_assert_eq(weft_group_close(env.g), 0);
            cr_assert_eq(atomic_load(&env.finished), atomic_load(&env.spawned),
                         "every member spawned finished and was cleaned up once");
        }
    return NULL;
}

Test(ported_coro, a_group_cancelled_and_closed_while_its_members_spawn, .timeout = 60)
{
    run_quiet(group_cancel_spawning_main, NULL);
}

/* A member that cancels its own group cancels itself too, and the others. */
struct own_group {
    weft_group *g;
    atomic_int rc[2];
};

static void *cancels_own_group(void *arg)
{
    struct own_group *o = arg;
    weft_group *g = o->g;
    while (atomic_load(&o->rc[0]) == 1 || atomic_load(&o->rc[1]) == 1)
        weft_yield(); /* the two sleepers are under way */
    int n = weft_group_cancel(g);
    int r = weft_sleep_until(WEFT_FOREVER);
    return (void *)(intptr_t)(n == 3 && r == -ECANCELED ? 0 : 1);
}

static void *self_cancel_group_main(void *arg)
{
    (void)arg;
    struct own_group o = {.g = group_new(), .rc = {1, 1}};
    weft_group *g = o.g;
    cr_assert_eq(weft_group_spawn(g, sleep_records, &o.rc[0], NULL), 0);
    cr_assert_eq(weft_group_spawn(g, sleep_records, &o.rc[1], NULL), 0);
    cr_assert_eq(weft_group_spawn(g, cancels_own_group, &o, NULL), 0);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(SOON)), 0);
    cr_assert_eq(atomic_load(&o.rc[0]), -ECANCELED);
    cr_assert_eq(atomic_load(&o.rc[1]), -ECANCELED);
    cr_assert_eq(weft_group_close(g), 0);
    return NULL;
}

Test(ported_coro, a_member_cancelling_its_own_group, .timeout = 30)
{
    run_quiet(self_cancel_group_main, NULL);
}

/* ---- libdill and libmill overload.c: a value relayed round a ring for ever ---------------
 * Two coroutines pass one value back and forth over two rendezvous channels without end, so
 * some task is always ready. libmill: the main task's sleep still ends (timers are served
 * while the ready queue never empties). libdill: closing both relays ends them (they are
 * never parked for long, yet the cancel reaches them). */

struct relay {
    weft_chan *src, *dst;
    atomic_long hops;
    int rc;
};

static void *relay_task(void *arg)
{
    struct relay *r = arg;
    for (;;) {
        long v;
        int rc = weft_chan_recv(r->src, &v, WEFT_FOREVER);
        if (rc == 0)
            rc = weft_chan_send(r->dst, &v, WEFT_FOREVER);
        if (rc != 0) {
            r->rc = rc;
            return NULL;
        }
        atomic_fetch_add(&r->hops, 1);
    }
}

static void *overload_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        weft_chan *left = chan_new(sizeof(long), 0), *right = chan_new(sizeof(long), 0);
        struct relay a = {.src = left, .dst = right, .rc = 1};
        struct relay b = {.src = right, .dst = left, .rc = 1};
        weft_task *ta = spawn_at(0, relay_task, &a);
        weft_task *tb = spawn_at(k ? other_worker() : 0, relay_task, &b);
        long v = 42;
        cr_assert_eq(weft_chan_send(left, &v, weft_deadline_in(SOON)), 0);
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0, "a sleep ends while the relays spin");
        while (atomic_load(&a.hops) < 100)
            cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
        void *r;
        cr_assert_eq(weft_cancel(ta), 0);
        cr_assert_eq(weft_join(ta, &r, weft_deadline_in(SOON)), 0, "the relay was closed");
        cr_assert_eq(r, WEFT_CANCELED);
        cr_assert_eq(weft_cancel(tb), 0);
        cr_assert_eq(weft_join(tb, &r, weft_deadline_in(SOON)), 0);
        cr_assert_eq(r, WEFT_CANCELED);
        cr_assert_eq(a.rc, -ECANCELED);
        cr_assert_eq(b.rc, -ECANCELED);
        weft_chan_release(left);
        weft_chan_release(right);
    }
    return NULL;
}

Test(ported_coro, relays_spinning_for_ever_let_timers_fire_and_are_closed, .timeout = 30)
{
    run_quiet(overload_main, NULL);
}

/* ---- libdill/libmill choose.c: selects over many and duplicated channels ------------------ */

static void *send_one_long(void *arg)
{
    long v = 4242;
    return (void *)(intptr_t)weft_chan_send(arg, &v, weft_deadline_in(SOON));
}

/* choosesender: a select of one send case against a select of one receive case. */
static void *select_sender(void *arg)
{
    long v = 111;
    weft_case cs[] = {{.op = WEFT_CASE_SEND, .chan = arg, .elem = &v}};
    return (void *)(intptr_t)weft_select(cs, 1, weft_deadline_in(SOON));
}

struct big_select {
    weft_case *cases;
    size_t n;
    int rc;
};

static void *select_many(void *arg)
{
    struct big_select *b = arg;
    b->rc = weft_select(b->cases, b->n, WEFT_FOREVER);
    return NULL;
}

enum { NDUP = 64, NDISTINCT = 64, NWIDE = 1000 };

static void *select_many_main(void *arg)
{
    (void)arg;
    /* 64 receive cases on one channel and 64 on others: one value completes exactly one of
     * the duplicates, and nothing stays matched to the select afterwards. */
    weft_chan *dup = chan_new(sizeof(long), 0);
    weft_chan *others[NDISTINCT];
    for (int i = 0; i < NDISTINCT; i++)
        others[i] = chan_new(sizeof(long), 0);
    static weft_case cs[NDUP + NDISTINCT];
    static long vals[NDUP + NDISTINCT];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < NDUP + NDISTINCT; i++) {
            vals[i] = -1;
            cs[i] = (weft_case){
                .op = WEFT_CASE_RECV, .chan = i % 2 == 0 ? dup : others[i / 2], .elem = &vals[i]};
        }
        weft_task *t = spawn_at(round % 2 ? other_worker() : 0, send_one_long, dup);
        int r = weft_select(cs, NDUP + NDISTINCT, weft_deadline_in(SOON));
        cr_assert_geq(r, 0, "%d", r);
        cr_assert_eq(cs[r].chan, dup);
        cr_assert_eq(vals[r], 4242);
        for (int i = 0; i < NDUP + NDISTINCT; i++)
            if (i != r)
                cr_assert_eq(vals[i], -1, "case %d was written too", i);
        cr_assert_null(join_result(t));
        long v = 1;
        cr_assert_eq(weft_chan_try_send(dup, &v), -EAGAIN, "no receiver left behind");
        for (int i = 0; i < NDISTINCT; i++)
            cr_assert_eq(weft_chan_try_send(others[i], &v), -EAGAIN);
    }
    for (int i = 0; i < NDISTINCT; i++)
        weft_chan_release(others[i]);

    /* A send and a receive case on one channel of capacity 1: never matched with each other;
     * the send is taken while there is room, the receive while there is a value. */
    weft_chan *one = chan_new(sizeof(long), 1);
    for (int i = 0; i < 50; i++) {
        long out = i, in = -1;
        weft_case sr[] = {{.op = WEFT_CASE_RECV, .chan = one, .elem = &in},
                          {.op = WEFT_CASE_SEND, .chan = one, .elem = &out}};
        cr_assert_eq(weft_select(sr, 2, weft_deadline_in(SOON)), 1, "room: the send");
        cr_assert_eq(weft_chan_len(one), 1);
        cr_assert_eq(weft_select(sr, 2, weft_deadline_in(SOON)), 0, "full: the receive");
        cr_assert_eq(in, i);
        cr_assert_eq(weft_chan_len(one), 0);
    }
    weft_chan_release(one);

    /* choose vs. choose: a select of one send against a select of one receive. */
    weft_task *t = spawn_at(other_worker(), select_sender, dup);
    long v = 0;
    weft_case rc[] = {{.op = WEFT_CASE_RECV, .chan = dup, .elem = &v}};
    cr_assert_eq(weft_select(rc, 1, weft_deadline_in(SOON)), 0);
    cr_assert_eq(v, 111);
    cr_assert_null(join_result(t));
    weft_chan_release(dup);

    /* Cases whose channels are all NULL never become ready. */
    weft_case none[] = {{.op = WEFT_CASE_RECV, .chan = NULL, .elem = &v},
                        {.op = WEFT_CASE_SEND, .chan = NULL, .elem = &v}};
    cr_assert_eq(weft_select(none, 2, LONG_AGO), -ETIMEDOUT);
    cr_assert_eq(weft_select(none, 2, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);

    /* A select parked on 1000 channels, cancelled: every case is withdrawn. */
    weft_chan *wide[NWIDE];
    static weft_case wc[NWIDE];
    for (int i = 0; i < NWIDE; i++) {
        wide[i] = chan_new(sizeof(long), 0);
        wc[i] = (weft_case){
            .op = i % 3 ? WEFT_CASE_RECV : WEFT_CASE_SEND, .chan = wide[i], .elem = &vals[0]};
    }
    for (int k = 0; k < 2; k++) {
        struct big_select b = {wc, NWIDE, 1};
        weft_task *s = spawn_at(k ? other_worker() : 0, select_many, &b);
        wait_parked(s);
        cr_assert_eq(weft_cancel(s), 0);
        join_cancelled(s);
        cr_assert_eq(b.rc, -ECANCELED);
        for (int i = 0; i < NWIDE; i++) {
            long x = 9;
            int r = i % 3 ? weft_chan_try_send(wide[i], &x) : weft_chan_try_recv(wide[i], &x);
            cr_assert_eq(r, -EAGAIN, "case %d still matched after the cancel", i);
        }
    }
    for (int i = 0; i < NWIDE; i++)
        weft_chan_release(wide[i]);
    return NULL;
}

Test(ported_coro, selects_over_many_and_duplicated_channels, .timeout = 60)
{
    run_quiet(select_many_main, NULL);
}

/* ---- libdill fd.c, libmill fdwait.c: waiting on fds ---------------------------------------
 * weft_fd_wait is edge-triggered on epoll (weft.h): it is called after the syscall said
 * EAGAIN, as these ports do, except where a passed deadline makes it a look at the fd. */

static void *write_after_a_sleep(void *arg)
{
    int fd = (int)(intptr_t)arg;
    weft_sleep(WEFT_MSEC);
    return (void *)(intptr_t)weft_write(fd, "A", 1, weft_deadline_in(SOON));
}

static void *fd_wait_main(void *arg)
{
    (void)arg;
    /* An fd number that is not open: -EBADF both ways. */
    int closed = dup(0);
    cr_assert_geq(closed, 0);
    cr_assert_eq(close(closed), 0);
    cr_assert_eq(weft_fd_wait(closed, WEFT_READABLE, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_fd_wait(closed, WEFT_WRITABLE, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_fd_wait(-1, WEFT_READABLE, WEFT_FOREVER), -EBADF);

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* Out: exactly writable. In, with a passed deadline and with a short one: timed out. */
    int r = weft_fd_wait(sv[0], WEFT_WRITABLE, WEFT_FOREVER);
    cr_assert(r & WEFT_WRITABLE, "%d", r);
    cr_assert_eq(r & WEFT_READABLE, 0, "nothing to read yet: %d", r);
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_READABLE, LONG_AGO), -ETIMEDOUT);
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    /* libmill: a deadline long passed on an fd that is ready reports it. */
    r = weft_fd_wait(sv[0], WEFT_WRITABLE, weft_deadline_in(-10 * WEFT_SEC));
    cr_assert_eq(r & WEFT_WRITABLE, WEFT_WRITABLE, "%d", r);

    /* In and out together: both reported. */
    cr_assert_eq(write(sv[1], "A", 1), 1);
    r = weft_fd_wait(sv[0], WEFT_READABLE | WEFT_WRITABLE, weft_deadline_in(SOON));
    cr_assert_gt(r, 0, "%d", r);
    struct pollfd p = {.fd = sv[0], .events = POLLIN | POLLOUT};
    cr_assert_eq(poll(&p, 1, 0), 1);
    cr_assert(r & WEFT_READABLE, "%d", r);
    char c;
    cr_assert_eq(read(sv[0], &c, 1), 1);

    /* Two interleaved deadlines: a task writes after a sleep; the wait on the other end,
     * with a far deadline, sees it. */
    cr_assert_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), -1, "drained: the syscall says EAGAIN first");
    cr_assert_eq(errno, EAGAIN);
    weft_task *t = spawn_at(other_worker(), write_after_a_sleep, (void *)(intptr_t)sv[0]);
    r = weft_fd_wait(sv[1], WEFT_READABLE, weft_deadline_in(SOON));
    cr_assert(r & WEFT_READABLE, "%d", r);
    cr_assert_eq((intptr_t)join_result(t), 1);
    cr_assert_eq(read(sv[1], &c, 1), 1);

    /* The peer sends and closes: readable, the bytes, readable again, then the end. */
    cr_assert_eq(write(sv[1], "ABC", 3), 3);
    cr_assert_eq(weft_fd_forget(sv[1]), 0);
    cr_assert_eq(close(sv[1]), 0);
    r = weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(SOON));
    cr_assert(r & WEFT_READABLE, "%d", r);
    char buf[10];
    cr_assert_eq(read(sv[0], buf, sizeof buf), 3);
    r = weft_fd_wait(sv[0], WEFT_READABLE, LONG_AGO);
    cr_assert(r & WEFT_READABLE, "the end of the stream reads as readable: %d", r);
    cr_assert_eq(read(sv[0], buf, sizeof buf), 0);
    cr_assert_eq(weft_close(sv[0]), 0);

    /* A wait that timed out leaves nothing behind: data then comes, the fds are forgotten
     * and closed, and their numbers, reused at once, start afresh. */
    for (int i = 0; i < 3; i++) {
        int pp[2];
        cr_assert_eq(pipe(pp), 0);
        cr_assert_eq(weft_fd_wait(pp[0], WEFT_READABLE, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(write(pp[1], "ABC", 3), 3);
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
        cr_assert_eq(weft_fd_forget(pp[0]), 0);
        cr_assert_eq(weft_fd_forget(pp[1]), 0);
        cr_assert_eq(close(pp[0]), 0);
        cr_assert_eq(close(pp[1]), 0);
    }
    return NULL;
}

Test(ported_coro, fd_waits_in_out_deadlines_and_hang_up, .timeout = 30)
{
    run_quiet(fd_wait_main, NULL);
}

/* ---- libco example_poll: one coroutine polls many connecting sockets ----------------------
 * Half of the sockets connect to a listener, half to a port nobody listens on; a select of
 * one fd case per socket still waiting is repeated until every socket has reported once. An
 * fd case not chosen keeps its readiness for the next select (weft.h), so none is lost even
 * on epoll's edges. */
enum { NPOLL = 32 };

static void *poll_connects_main(void *arg)
{
    (void)arg;
    weft_addr srv, dead;
    int lfd = listener(&srv);
    int dfd = listener(&dead);
    cr_assert_eq(weft_close(dfd), 0); /* its port now refuses */
    int fds[NPOLL];
    bool fired[NPOLL] = {false};
    for (int i = 0; i < NPOLL; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        cr_assert_geq(fds[i], 0);
        const weft_addr *to = i % 2 ? &dead : &srv;
        int r = connect(fds[i], (const struct sockaddr *)&to->ss, to->len);
        cr_assert(r == 0 || errno == EINPROGRESS || errno == ECONNREFUSED, "connect %d", errno);
    }
    static weft_case cs[NPOLL];
    int map[NPOLL], left = NPOLL;
    while (left > 0) {
        int n = 0;
        for (int i = 0; i < NPOLL; i++)
            if (!fired[i]) {
                map[n] = i;
                cs[n++] = (weft_case){.op = WEFT_CASE_FD, .io = {fds[i], WEFT_WRITABLE}};
            }
        int r = weft_select(cs, (size_t)n, weft_deadline_in(SOON));
        cr_assert_geq(r, 0, "select with %d sockets left: %d", left, r);
        cr_assert_gt(cs[r].result, 0, "%d", cs[r].result);
        fired[map[r]] = true;
        left--;
    }
    for (int i = 0; i < NPOLL; i++) {
        int err = -1;
        socklen_t len = sizeof err;
        cr_assert_eq(getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len), 0);
        if (i % 2)
            cr_assert_eq(err, ECONNREFUSED, "socket %d: %d", i, err);
        else
            cr_assert_eq(err, 0, "socket %d: %d", i, err);
        cr_assert_eq(weft_close(fds[i]), 0);
    }
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(ported_coro, a_select_of_many_connecting_sockets_reports_each_once, .timeout = 30)
{
    run_quiet(poll_connects_main, NULL);
}

/* ---- libdill tcp.c: deadlines, a closed peer, and a proxy in the middle -------------------- */

/* tcp.c `client`: connects, then sleeps until it is cancelled, then closes. */
static void *connect_then_sleep(void *arg)
{
    weft_addr *srv = arg;
    int fd = weft_dial(srv, weft_deadline_in(SOON));
    if (fd < 0)
        return (void *)(intptr_t)fd;
    int r = weft_sleep_until(WEFT_FOREVER);
    weft_close(fd);
    return (void *)(intptr_t)r;
}

struct forwarder {
    int from, to;
    weft_chan *done;
};

/* tcp_forward: copies until the end (or an error, or a cancel), then half-closes the other
 * side and says so. */
static void *forward(void *arg)
{
    struct forwarder *f = arg;
    char buf[4096];
    ssize_t n;
    int why = 0;
    while ((n = weft_read(f->from, buf, sizeof buf, WEFT_FOREVER)) > 0) {
        ssize_t w = weft_write(f->to, buf, (size_t)n, WEFT_FOREVER);
        if (w != n) {
            why = (int)w;
            break;
        }
    }
    if (n < 0)
        why = (int)n;
    weft_shutdown(f->to, SHUT_WR);
    weft_chan_send(f->done, &why, LONG_AGO); /* the channel has room for both */
    return NULL;
}

struct proxy {
    int lfd;
    weft_addr upstream;
    int first_why, cancelled;
};

/* tcp_proxy: accepts one client, dials upstream, runs both directions in a bundle; when
 * one direction ends, the other is closed with the bundle. */
static void *proxy_task(void *arg)
{
    struct proxy *p = arg;
    int c = weft_accept(p->lfd, NULL, NULL, weft_deadline_in(SOON));
    if (c < 0)
        return (void *)1;
    int u = weft_dial(&p->upstream, weft_deadline_in(SOON));
    if (u < 0)
        return (void *)2;
    weft_chan *done = chan_new(sizeof(int), 2);
    struct forwarder up = {c, u, done}, down = {u, c, done};
    weft_group *g = group_new();
    weft_group_spawn(g, forward, &up, NULL);
    weft_group_spawn(g, forward, &down, NULL);
    weft_chan_recv(done, &p->first_why, weft_deadline_in(SOON));
    /* The echo side has seen the end and closes: the other direction ends by itself, or
     * is cancelled here. */
    weft_group_close(g);
    weft_chan_release(done);
    weft_close(c);
    weft_close(u);
    return NULL;
}

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int s = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
    if (s < 0)
        return (void *)1;
    char buf[1000];
    ssize_t n;
    intptr_t bad = 0;
    while ((n = weft_read(s, buf, sizeof buf, weft_deadline_in(SOON))) > 0)
        if (weft_write(s, buf, (size_t)n, weft_deadline_in(SOON)) != n)
            bad = 2;
    if (n < 0)
        bad = 3;
    weft_close(s);
    return (void *)bad;
}

enum { NINTS = 10000 };

static void *send_ints(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (int i = 0; i < NINTS; i++)
        if (weft_write(fd, &i, sizeof i, weft_deadline_in(SOON)) != (ssize_t)sizeof i)
            return (void *)1;
    return NULL;
}

static void *tcp_main(void *arg)
{
    (void)arg;
    /* The deadline test: a read times out; the peer, cancelled, closes; the read then sees
     * the end (libdill says ECONNRESET; weft_read's end of stream is 0). */
    weft_addr srv;
    int lfd = listener(&srv);
    weft_task *cl = spawn_at(other_worker(), connect_then_sleep, &srv);
    int as = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
    cr_assert_geq(as, 0);
    char buf[16];
    cr_assert_eq(weft_read(as, buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    wait_parked(cl);
    cr_assert_eq(weft_cancel(cl), 0);
    join_cancelled(cl);
    cr_assert_eq(weft_read(as, buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_close(as), 0);
    /* An ephemeral port reads back. */
    cr_assert_gt(weft_addr_port(&srv), 0);

    /* tcp_fromfd: a socket connected with plain connect(2) works with weft's calls. */
    int raw = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(raw, 0);
    cr_assert_eq(connect(raw, (const struct sockaddr *)&srv.ss, srv.len), 0);
    as = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
    cr_assert_geq(as, 0);
    cr_assert_eq(weft_write(as, "ABC", 3, weft_deadline_in(SOON)), 3);
    read_exactly(raw, buf, 3);
    cr_assert_eq(memcmp(buf, "ABC", 3), 0);
    cr_assert_eq(weft_close(raw), 0);
    cr_assert_eq(weft_close(as), 0);
    cr_assert_eq(weft_close(lfd), 0);

    /* tcp_concurrency_test: client -> proxy -> echo, 10,000 ints each way at once. */
    struct proxy p = {.first_why = 1};
    weft_addr front;
    p.lfd = listener(&front);
    int elfd = listener(&p.upstream);
    weft_task *echo = spawn_at(other_worker(), echo_server, (void *)(intptr_t)elfd);
    weft_task *px = spawn_at(0, proxy_task, &p);
    int s = weft_dial(&front, weft_deadline_in(SOON));
    cr_assert_geq(s, 0);
    weft_task *snd = spawn_at(other_worker(), send_ints, (void *)(intptr_t)s);
    for (int i = 0; i < NINTS; i++) {
        int v = -1;
        read_exactly(s, &v, sizeof v);
        cr_assert_eq(v, i);
    }
    cr_assert_null(join_result(snd));
    cr_assert_eq(weft_shutdown(s, SHUT_WR), 0);
    cr_assert_eq(weft_read(s, buf, 1, weft_deadline_in(SOON)), 0, "the end comes back");
    cr_assert_null(join_result(px));
    cr_assert_eq(p.first_why, 0, "a direction ended cleanly first");
    cr_assert_null(join_result(echo));
    cr_assert_eq(weft_close(s), 0);
    cr_assert_eq(weft_close(p.lfd), 0);
    cr_assert_eq(weft_close(elfd), 0);
    return NULL;
}

Test(ported_coro, tcp_deadline_fromfd_and_a_proxy_chain, .timeout = 60)
{
    run_quiet(tcp_main, NULL);
}

/* ---- libdill ipc.c: the same over a Unix socket, with the termination handshake ----------- */

static void *ipc_client(void *arg)
{
    weft_addr *a = arg;
    int s = weft_dial(a, weft_deadline_in(SOON));
    if (s < 0)
        return (void *)1;
    char buf[3];
    intptr_t bad = 0;
    if (weft_read(s, buf, 3, weft_deadline_in(SOON)) != 3 || memcmp(buf, "ABC", 3) != 0)
        bad = 2;
    /* The server said it is done: the end of its direction. */
    if (weft_read(s, buf, 3, weft_deadline_in(SOON)) != 0)
        bad = 3;
    if (weft_write(s, "DEF", 3, weft_deadline_in(SOON)) != 3)
        bad = 4;
    weft_close(s);
    return (void *)bad;
}

static void *ipc_main(void *arg)
{
    (void)arg;
    tmpdir_make("ipc");
    weft_addr a;
    cr_assert_eq(weft_addr_unix(&a, at("ipc.test")), 0);
    int ls = weft_listen(&a, 10, 0);
    cr_assert_geq(ls, 0, "%d", ls);
    cr_assert_eq(weft_listen(&a, 10, 0), -EADDRINUSE, "the path is taken");
    for (int k = 0; k < 2; k++) {
        weft_task *c = spawn_at(k ? other_worker() : 0, ipc_client, &a);
        int as = weft_accept(ls, NULL, NULL, weft_deadline_in(SOON));
        cr_assert_geq(as, 0);
        cr_assert_eq(weft_write(as, "ABC", 3, weft_deadline_in(SOON)), 3);
        cr_assert_eq(weft_shutdown(as, SHUT_WR), 0);
        char buf[16];
        read_exactly(as, buf, 3);
        cr_assert_eq(memcmp(buf, "DEF", 3), 0);
        cr_assert_eq(weft_read(as, buf, sizeof buf, weft_deadline_in(SOON)), 0);
        cr_assert_null(join_result(c));
        cr_assert_eq(weft_close(as), 0);
    }
    /* ipc_pair: a socketpair works the same. */
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    cr_assert_eq(weft_write(sp[0], "xyz", 3, weft_deadline_in(SOON)), 3);
    char b[3];
    read_exactly(sp[1], b, 3);
    cr_assert_eq(weft_read(sp[1], b, 3, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_close(sp[0]), 0);
    cr_assert_eq(weft_read(sp[1], b, 3, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_close(sp[1]), 0);
    cr_assert_eq(weft_close(ls), 0);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported_coro, unix_socket_exchange_and_termination_handshake, .timeout = 30)
{
    run_quiet(ipc_main, NULL);
}

/* ---- libdill prefix.c and suffix.c: messages framed over a byte stream --------------------
 * Length-prefixed (8 bytes big-endian; 3 bytes little-endian) and terminated ("\r\n")
 * messages over weft_stream, both ways, with one message skipped unread. */

static int frame_send(weft_stream *s, const char *msg, size_t hdr, int little)
{
    unsigned char h[8];
    size_t len = strlen(msg);
    for (size_t i = 0; i < hdr; i++)
        h[little ? i : hdr - 1 - i] = (unsigned char)(len >> (8 * i));
    if (weft_stream_write(s, h, hdr, weft_deadline_in(SOON)) != (ssize_t)hdr ||
        weft_stream_write(s, msg, len, weft_deadline_in(SOON)) != (ssize_t)len)
        return -1;
    return weft_stream_flush(s, weft_deadline_in(SOON));
}

/* Receives one message into buf (or skips it with buf NULL); its length or -1. */
static ssize_t frame_recv(weft_stream *s, char *buf, size_t cap, size_t hdr, int little)
{
    unsigned char h[8];
    if (weft_stream_read_exact(s, h, hdr, weft_deadline_in(SOON)) != (ssize_t)hdr)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < hdr; i++)
        len |= (size_t)h[little ? i : hdr - 1 - i] << (8 * i);
    char skip[64];
    if (!buf) {
        buf = skip;
        cap = sizeof skip;
    }
    if (len > cap || weft_stream_read_exact(s, buf, len, weft_deadline_in(SOON)) != (ssize_t)len)
        return -1;
    return (ssize_t)len;
}

static weft_stream *stream_on(int fd)
{
    weft_stream *s = NULL;
    cr_assert_eq(weft_stream_open(&s, fd, NULL), 0);
    return s;
}

static void *framing_main(void *arg)
{
    (void)arg;
    static const struct {
        size_t hdr;
        int little;
    } kinds[] = {{8, 0}, {3, 1}};
    for (int k = 0; k < 2; k++) {
        int fds[2];
        tcp_pair(fds);
        weft_stream *a = stream_on(fds[0]), *b = stream_on(fds[1]);
        size_t h = kinds[k].hdr;
        int le = kinds[k].little;
        char buf[16];
        cr_assert_eq(frame_send(a, "First", h, le), 0);
        cr_assert_eq(frame_send(a, "Second", h, le), 0);
        cr_assert_eq(frame_send(a, "Third", h, le), 0);
        cr_assert_eq(frame_recv(b, buf, sizeof buf, h, le), 5);
        cr_assert_eq(memcmp(buf, "First", 5), 0);
        cr_assert_eq(frame_recv(b, NULL, 0, h, le), 6, "skipped unread");
        cr_assert_eq(frame_recv(b, buf, sizeof buf, h, le), 5);
        cr_assert_eq(memcmp(buf, "Third", 5), 0);
        cr_assert_eq(frame_send(b, "Red", h, le), 0);
        cr_assert_eq(frame_send(b, "Blue", h, le), 0);
        cr_assert_eq(frame_recv(a, buf, sizeof buf, h, le), 3);
        cr_assert_eq(memcmp(buf, "Red", 3), 0);
        cr_assert_eq(frame_recv(a, buf, sizeof buf, h, le), 4);
        cr_assert_eq(memcmp(buf, "Blue", 4), 0);
        cr_assert_eq(weft_stream_close(a, weft_deadline_in(SOON)), 0);
        /* The peer has gone: the next message is the end, not a message. */
        cr_assert_eq(frame_recv(b, buf, sizeof buf, h, le), -1);
        cr_assert_eq(weft_stream_close(b, weft_deadline_in(SOON)), 0);
    }
    /* Suffix framing: "\r\n"-terminated messages, one of them split across writes. */
    int fds[2];
    tcp_pair(fds);
    weft_stream *a = stream_on(fds[0]), *b = stream_on(fds[1]);
    cr_assert_eq(weft_stream_write(a, "ABC\r\nGH", 7, weft_deadline_in(SOON)), 7);
    cr_assert_eq(weft_stream_flush(a, weft_deadline_in(SOON)), 0);
    char line[16];
    cr_assert_eq(weft_stream_read_line(b, line, sizeof line, weft_deadline_in(SOON)), 5);
    cr_assert_eq(memcmp(line, "ABC\r\n", 5), 0);
    cr_assert_eq(weft_stream_read_line(b, line, sizeof line, weft_deadline_in(WEFT_MSEC)),
                 -ETIMEDOUT, "half a message is not a message");
    cr_assert_eq(weft_stream_write(a, "I\r\n", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_stream_flush(a, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_stream_read_line(b, line, sizeof line, weft_deadline_in(SOON)), 5);
    cr_assert_eq(memcmp(line, "GHI\r\n", 5), 0, "no byte of the timed-out read was lost");
    cr_assert_eq(weft_stream_close(a, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_stream_close(b, weft_deadline_in(SOON)), 0);
    return NULL;
}

Test(ported_coro, prefix_and_suffix_framed_messages, .timeout = 30)
{
    run_quiet(framing_main, NULL);
}

/* ---- libdill happyeyeballs.c: racing connection attempts ----------------------------------
 * Attempts start in a bundle; each waits for its "resolution" (an event the test sets in a
 * chosen order) and then dials. The first connection wins; the bundle's close cancels the
 * attempts still waiting, which end with -ECANCELED and leave no fd behind. When no attempt
 * resolves before the deadline (happyeyeballs test8/test9), the caller times out and the
 * close still cancels them all. */
enum { NATTEMPTS = 4 };

struct attempt {
    weft_event resolved;
    weft_addr *to;
    weft_chan *won;
    atomic_int *started;
    atomic_int rc;
};

static void *attempt_task(void *arg)
{
    struct attempt *a = arg;
    atomic_fetch_add(a->started, 1);
    int r = weft_event_wait(&a->resolved, WEFT_FOREVER);
    if (r == 0) {
        r = weft_dial(a->to, WEFT_FOREVER);
        if (r >= 0) {
            int fd = r;
            r = weft_chan_send(a->won, &fd, LONG_AGO); /* room for every attempt */
            if (r != 0)
                weft_close(fd);
        }
    }
    atomic_store(&a->rc, r);
    return NULL;
}

static void *happy_eyeballs_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    for (int winner = -1; winner < NATTEMPTS; winner++) {
        weft_chan *won = chan_new(sizeof(int), NATTEMPTS);
        struct attempt at_[NATTEMPTS];
        weft_group *g = group_new();
        atomic_int started = 0;
        for (int i = 0; i < NATTEMPTS; i++) {
            at_[i] = (struct attempt){
                .resolved = WEFT_EVENT_INIT, .to = &srv, .won = won, .started = &started, .rc = 1};
            cr_assert_eq(weft_group_spawn(g, attempt_task, &at_[i], NULL), 0);
        }
        /* Every attempt under way first (a timer's wake may otherwise run the caller before
         * them, and a close then cancels attempts that never ran: they would report nothing). */
        while (atomic_load(&started) < NATTEMPTS)
            cr_assert_eq(weft_yield(), 0);
        int fd = -1;
        if (winner >= 0) {
            cr_assert_eq(weft_event_set(&at_[winner].resolved), 0);
            cr_assert_eq(weft_chan_recv(won, &fd, weft_deadline_in(SOON)), 0);
        } else {
            cr_assert_eq(weft_chan_recv(won, &fd, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
        }
        cr_assert_eq(weft_group_close(g), 0);
        for (int i = 0; i < NATTEMPTS; i++)
            if (i == winner)
                cr_assert_eq(atomic_load(&at_[i].rc), 0);
            else
                cr_assert_eq(atomic_load(&at_[i].rc), -ECANCELED, "winner %d, attempt %d: %d",
                             winner, i, atomic_load(&at_[i].rc));
        cr_assert_eq(weft_chan_len(won), 0, "one connection only");
        if (winner >= 0) {
            int s = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
            cr_assert_geq(s, 0);
            cr_assert_eq(weft_write(fd, "!", 1, weft_deadline_in(SOON)), 1);
            char c;
            read_exactly(s, &c, 1);
            cr_assert_eq(c, '!');
            cr_assert_eq(weft_close(s), 0);
            cr_assert_eq(weft_close(fd), 0);
        }
        weft_chan_release(won);
    }
    cr_assert_eq(weft_accept(lfd, NULL, NULL, LONG_AGO), -ETIMEDOUT, "no stray connection");
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(ported_coro, racing_connection_attempts_leave_one_winner, .timeout = 30)
{
    run_quiet(happy_eyeballs_main, NULL);
}

/* ---- libmill cls.c, libco example_specific and example_setenv: per-coroutine data --------
 * A new coroutine starts with nothing stored; what a coroutine stores survives its yields,
 * sleeps and moves between workers, and neither a spawn nor a finishing child disturbs the
 * parent's; each value's destructor runs once, when its task ends, however it ends. */

static int cls_key, cls_other_key;
static atomic_int cls_freed;

static void cls_dtor(void *v)
{
    (void)v;
    atomic_fetch_add(&cls_freed, 1);
}

struct cls_arg {
    long id;
    int ok;
};

static void *cls_task(void *arg)
{
    struct cls_arg *a = arg;
    a->ok = weft_local_get(&cls_key) == NULL;
    if (weft_local_set(&cls_key, (void *)a->id, cls_dtor) != 0)
        a->ok = 0;
    for (int i = 0; i < 20; i++) {
        if (i % 2)
            weft_yield();
        else
            weft_sleep(50 * WEFT_USEC);
        if (weft_local_get(&cls_key) != (void *)a->id)
            a->ok = 0;
    }
    if (weft_local_get(&cls_other_key) != NULL)
        a->ok = 0;
    /* Parked here until cancelled, for half of them: the destructor still runs. */
    if (a->id % 2)
        weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

enum { NCLS = 10 };

static void *cls_main(void *arg)
{
    (void)arg;
    cr_assert_null(weft_local_get(&cls_key), "the main coroutine starts with none");
    static int dummy1;
    cr_assert_eq(weft_local_set(&cls_key, &dummy1, NULL), 0);
    atomic_store(&cls_freed, 0);
    struct cls_arg args[NCLS];
    weft_task *t[NCLS];
    for (int i = 0; i < NCLS; i++) {
        args[i] = (struct cls_arg){.id = i + 1};
        cr_assert_eq(weft_spawn(&t[i], cls_task, &args[i], NULL), 0);
        cr_assert_eq(weft_local_get(&cls_key), &dummy1, "a spawn leaves the parent's alone");
    }
    cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_local_get(&cls_key), &dummy1);
    for (int i = 0; i < NCLS; i++) {
        if (args[i].id % 2) {
            wait_parked(t[i]);
            cr_assert_eq(weft_cancel(t[i]), 0);
        }
        cr_assert_eq(weft_join(t[i], NULL, weft_deadline_in(SOON)), 0);
        cr_assert(args[i].ok, "coroutine %ld saw another's value", args[i].id);
        cr_assert_eq(weft_local_get(&cls_key), &dummy1, "a finished child leaves it too");
    }
    cr_assert_eq(atomic_load(&cls_freed), NCLS, "each destructor ran once");
    /* Replacing a value runs the old one's destructor at once. */
    cr_assert_eq(weft_local_set(&cls_other_key, &dummy1, cls_dtor), 0);
    cr_assert_eq(weft_local_set(&cls_other_key, NULL, NULL), 0);
    cr_assert_eq(atomic_load(&cls_freed), NCLS + 1);
    cr_assert_eq(weft_local_set(NULL, &dummy1, NULL), -EINVAL);
    return NULL;
}

Test(ported_coro, coroutine_local_values, .timeout = 30)
{
    run_quiet(cls_main, NULL);
}

/* ---- libco example_cond: producers and consumers on a condition variable ------------------ */

enum { NITEMS = 3000, NCONSUMERS = 3, QCAP = 16 };

struct queue {
    weft_mutex m;
    weft_cond nonempty, nonfull;
    int items[QCAP];
    int head, len, done;
    atomic_long sum;
    atomic_int taken;
};

static void *producer(void *arg)
{
    struct queue *q = arg;
    for (int i = 1; i <= NITEMS; i++) {
        if (weft_mutex_lock(&q->m, WEFT_FOREVER) != 0)
            return (void *)1;
        while (q->len == QCAP)
            if (weft_cond_wait(&q->nonfull, &q->m, WEFT_FOREVER) != 0) {
                weft_mutex_unlock(&q->m);
                return (void *)2;
            }
        q->items[(q->head + q->len++) % QCAP] = i;
        weft_cond_signal(&q->nonempty);
        weft_mutex_unlock(&q->m);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct queue *q = arg;
    for (;;) {
        if (weft_mutex_lock(&q->m, WEFT_FOREVER) != 0)
            return (void *)1;
        while (q->len == 0 && !q->done) {
            int r = weft_cond_wait(&q->nonempty, &q->m, WEFT_FOREVER);
            if (r != 0) {
                /* Cancelled: the mutex is held again, and given back here. */
                int u = weft_mutex_unlock(&q->m);
                return (void *)(intptr_t)(r == -ECANCELED && u == 0 ? 3 : 4);
            }
        }
        if (q->len == 0) {
            weft_mutex_unlock(&q->m);
            return NULL;
        }
        int v = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->len--;
        weft_cond_signal(&q->nonfull);
        weft_mutex_unlock(&q->m);
        atomic_fetch_add(&q->sum, v);
        atomic_fetch_add(&q->taken, 1);
    }
}

static void *cond_queue_main(void *arg)
{
    (void)arg;
    struct queue q = {.m = WEFT_MUTEX_INIT, .nonempty = WEFT_COND_INIT, .nonfull = WEFT_COND_INIT};
    weft_task *c[NCONSUMERS + 1];
    for (int i = 0; i < NCONSUMERS; i++)
        c[i] = spawn_at(i % 2 ? other_worker() : 0, consumer, &q);
    /* One more consumer, parked on the empty queue, then cancelled: it gives the mutex back
     * and the others go on. */
    c[NCONSUMERS] = spawn_at(other_worker(), consumer, &q);
    wait_parked(c[NCONSUMERS]);
    cr_assert_eq(weft_cancel(c[NCONSUMERS]), 0);
    void *r;
    cr_assert_eq(weft_join(c[NCONSUMERS], &r, weft_deadline_in(SOON)), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    weft_task *p = spawn_at(other_worker(), producer, &q);
    cr_assert_null(join_result(p));
    cr_assert_eq(weft_mutex_lock(&q.m, weft_deadline_in(SOON)), 0);
    q.done = 1;
    cr_assert_geq(weft_cond_broadcast(&q.nonempty), 0);
    cr_assert_eq(weft_mutex_unlock(&q.m), 0);
    for (int i = 0; i < NCONSUMERS; i++)
        cr_assert_null(join_result(c[i]));
    cr_assert_eq(atomic_load(&q.taken), NITEMS, "each item consumed once");
    cr_assert_eq(atomic_load(&q.sum), (long)NITEMS * (NITEMS + 1) / 2);
    return NULL;
}

Test(ported_coro, producers_and_consumers_on_a_condition, .timeout = 60)
{
    run_quiet(cond_queue_main, NULL);
}

/* ---- Seastar semaphore_test ---------------------------------------------------------------- */

struct sem_waiter {
    weft_sem *s;
    int64_t deadline;
    int rc;
};

static void *sem_wait_task(void *arg)
{
    struct sem_waiter *w = arg;
    w->rc = weft_sem_acquire(w->s, w->deadline);
    return NULL;
}

static void *self_cancelled_acquire(void *arg)
{
    struct sem_waiter *w = arg;
    weft_cancel(weft_self());
    w->rc = weft_sem_acquire(w->s, WEFT_FOREVER);
    return NULL;
}

static void *semaphore_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        unsigned where = k ? other_worker() : 0;
        /* test_semaphore_consume / _1: nothing to take; a waiter; a signal of 2 serves it
         * and leaves 1. */
        weft_sem s = WEFT_SEM_INIT(0);
        cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
        struct sem_waiter w = {&s, WEFT_FOREVER, 1};
        weft_task *t = spawn_at(where, sem_wait_task, &w);
        wait_parked(t);
        cr_assert_eq(weft_sem_release(&s, 2), 0);
        cr_assert_null(join_result(t));
        cr_assert_eq(w.rc, 0);
        cr_assert_eq(weft_sem_value(&s), 1);

        /* test_semaphore_timeout_2: a waiter that timed out takes nothing released later. */
        s = (weft_sem)WEFT_SEM_INIT(0);
        w = (struct sem_waiter){&s, weft_deadline_in(WEFT_MSEC), 1};
        t = spawn_at(where, sem_wait_task, &w);
        cr_assert_null(join_result(t));
        cr_assert_eq(w.rc, -ETIMEDOUT);
        cr_assert_eq(weft_sem_release(&s, 1), 0);
        cr_assert_eq(weft_sem_value(&s), 1, "the unit stayed");

        /* test_semaphore_mix_1: a timed-out waiter ahead does not hold back the one behind. */
        s = (weft_sem)WEFT_SEM_INIT(0);
        struct sem_waiter w1 = {&s, weft_deadline_in(WEFT_MSEC), 1};
        struct sem_waiter w2 = {&s, WEFT_FOREVER, 1};
        weft_task *t1 = spawn_at(where, sem_wait_task, &w1);
        wait_parked_or_done(t1);
        weft_task *t2 = spawn_at(where, sem_wait_task, &w2);
        wait_parked(t2);
        cr_assert_null(join_result(t1));
        cr_assert_eq(w1.rc, -ETIMEDOUT);
        cr_assert_eq(weft_sem_release(&s, 1), 0);
        cr_assert_null(join_result(t2));
        cr_assert_eq(w2.rc, 0);
        cr_assert_eq(weft_sem_value(&s), 0);

        /* test_semaphore_abort_before_wait: cancelled before it waits on an empty semaphore:
         * -ECANCELED at once, and a later signal's unit stays. */
        s = (weft_sem)WEFT_SEM_INIT(0);
        w = (struct sem_waiter){&s, WEFT_FOREVER, 1};
        t = spawn_at(where, self_cancelled_acquire, &w);
        join_cancelled(t);
        cr_assert_eq(w.rc, -ECANCELED);
        cr_assert_eq(weft_sem_release(&s, 1), 0);
        cr_assert_eq(weft_sem_value(&s), 1);

        /* test_semaphore_try_get_units. */
        s = (weft_sem)WEFT_SEM_INIT(1);
        cr_assert_eq(weft_sem_try_acquire(&s), 0);
        cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
        cr_assert_eq(weft_sem_release(&s, 1), 0);
        cr_assert_eq(weft_sem_value(&s), 1);
        cr_assert_eq(weft_sem_acquire(&s, LONG_AGO), 0, "a passed deadline still takes a unit");
        cr_assert_eq(weft_sem_acquire(&s, LONG_AGO), -ETIMEDOUT);
    }
    return NULL;
}

Test(ported_coro, seastar_semaphore_waits_timeouts_and_aborts, .timeout = 30)
{
    run_quiet(semaphore_main, NULL);
}

/* ---- Seastar gate_test: a wait group is the gate's count, a closing group refuses ---------
 * gate.enter/leave/close map onto weft_waitgroup_add/done/wait; a gate that is closed
 * refusing new entries is a closing group refusing spawns (-EPIPE), which a member cancelled
 * by the close sees when it tries to spawn on its way out. */

struct gate_member {
    weft_group *g;
    atomic_int started, spawn_rc;
};

static void *spawns_when_cancelled(void *arg)
{
    struct gate_member *m = arg;
    atomic_store(&m->started, 1);
    if (weft_sleep_until(WEFT_FOREVER) == -ECANCELED)
        atomic_store(&m->spawn_rc, weft_group_spawn(m->g, nothing, NULL, NULL));
    return NULL;
}

static void *waits_on_wg(void *arg)
{
    return (void *)(intptr_t)weft_waitgroup_wait(arg, weft_deadline_in(SOON));
}

static void *gate_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_wait(&wg, LONG_AGO), 0, "an empty gate closes at once");
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0); /* enter */
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0); /* try_hold */
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0); /* hold */
    weft_task *closer = spawn_at(other_worker(), waits_on_wg, &wg);
    wait_parked(closer);
    cr_assert_eq(weft_waitgroup_wait(&wg, LONG_AGO), -ETIMEDOUT, "not available yet");
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_task_status(closer), WEFT_TASK_PARKED, "one holder is left");
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_null(join_result(closer));
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "one leave too many");
    cr_assert_eq(weft_waitgroup_wait(&wg, LONG_AGO), 0);

    weft_group *g = group_new();
    struct gate_member m = {.g = g, .spawn_rc = 1};
    cr_assert_eq(weft_group_spawn(g, spawns_when_cancelled, &m,
                                  &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                 0);
    while (!atomic_load(&m.started)) /* pinned here: once it has started, it has parked */
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_group_close(g), 0);
    cr_assert_eq(atomic_load(&m.spawn_rc), -EPIPE, "a closing group refuses a spawn");
    return NULL;
}

Test(ported_coro, seastar_gate_as_a_waitgroup_and_a_closing_group, .timeout = 30)
{
    run_quiet(gate_main, NULL);
}

/* ---- Seastar futures_test: when_all, when_any, parallel_for_each --------------------------- */

static weft_future *ready_future(int status, void *value)
{
    weft_future *f = NULL;
    cr_assert_eq(weft_future_ready(&f, status, value), 0);
    return f;
}

static void *double_it(void *value, void *arg)
{
    (void)arg;
    return (void *)((intptr_t)value * 2);
}

static int recover(int status, void *arg, weft_future **next, void **value)
{
    (void)arg;
    (void)next;
    *value = (void *)(intptr_t)-status;
    return 0;
}

static int chain_ready(void *value, void *arg, weft_future **next)
{
    (void)arg;
    return weft_future_ready(next, 0, (void *)((intptr_t)value + 1));
}

struct pfe {
    atomic_int ran, failed;
};

static void *pfe_item(void *arg)
{
    struct pfe *p = arg;
    int i = atomic_fetch_add(&p->ran, 1);
    weft_yield();
    if (i == 5)
        atomic_fetch_add(&p->failed, 1); /* an item that fails does not stop the others */
    return NULL;
}

static void *combinators_main(void *arg)
{
    (void)arg;
    weft_future *out = NULL;
    weft_future *one[1] = {NULL};
    /* Empty lists are refused (weft.h): Seastar's when_all() of nothing is ready at once;
     * weft asks for at least one future. */
    cr_assert_eq(weft_future_all(&out, one, 0), -EINVAL);
    cr_assert_eq(weft_future_first(&out, one, 0), -EINVAL);
    cr_assert_eq(weft_future_join(&out, one, 0, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_all(&out, one, 1), -EINVAL, "a NULL member");
    cr_assert_eq(weft_future_join(&out, one, (size_t)1 << 21, NULL, NULL), -EINVAL);

    /* when_all of futures already complete: complete at the first poll (a passed deadline). */
    weft_future *r[3] = {ready_future(0, (void *)1), ready_future(-EIO, NULL),
                         ready_future(3, (void *)3)};
    cr_assert_eq(weft_future_all(&out, r, 3), 0);
    cr_assert_eq(weft_await(out, NULL, LONG_AGO), 0, "all of ready futures is ready");
    weft_future_destroy(out);
    int st[3];
    void *vals[3];
    cr_assert_eq(weft_future_join(&out, r, 3, st, vals), 0);
    cr_assert_eq(weft_await(out, NULL, LONG_AGO), 1, "one member failed");
    cr_assert_eq(st[0], 0);
    cr_assert_eq(st[1], -EIO);
    cr_assert_eq(st[2], 3);
    cr_assert_eq(vals[2], (void *)3);
    weft_future_destroy(out);

    /* when_any over pending, ready and ready: the lowest ready index wins. */
    weft_promise *p = NULL;
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_future *any[3] = {weft_promise_future(p), r[1], r[2]};
    cr_assert_eq(weft_future_first(&out, any, 3), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(out, &v, weft_deadline_in(SOON)), 1);
    weft_future_destroy(out);

    /* The same pending future twice, in first, all and join: one resolution completes
     * each, every entry reporting it. */
    weft_future *dup[2] = {weft_promise_future(p), weft_promise_future(p)};
    weft_future *f1, *f2, *f3;
    cr_assert_eq(weft_future_first(&f1, dup, 2), 0);
    cr_assert_eq(weft_future_all(&f2, dup, 2), 0);
    cr_assert_eq(weft_future_join(&f3, dup, 2, st, vals), 0);
    cr_assert_eq(weft_await(f1, NULL, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_promise_resolve(p, (void *)9), 0);
    cr_assert_eq(weft_await(f1, &v, weft_deadline_in(SOON)), 0, "index 0 of the two");
    cr_assert_eq(v, (void *)9);
    cr_assert_eq(weft_await(f2, NULL, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_await(f3, NULL, weft_deadline_in(SOON)), 0);
    cr_assert_eq(vals[0], (void *)9);
    cr_assert_eq(vals[1], (void *)9);
    weft_future_destroy(f1);
    weft_future_destroy(f2);
    weft_future_destroy(f3);
    cr_assert_eq(weft_promise_resolve(p, NULL), -EALREADY);
    weft_promise_release(p);

    /* Nested: all(first(pending, ready), join(ready, failed)). */
    weft_future *pend;
    cr_assert_eq(weft_future_pending(&pend), 0);
    weft_future *fa[2] = {pend, r[0]}, *inner[2];
    cr_assert_eq(weft_future_first(&inner[0], fa, 2), 0);
    weft_future *fb[2] = {r[0], r[1]};
    cr_assert_eq(weft_future_join(&inner[1], fb, 2, NULL, NULL), 0);
    cr_assert_eq(weft_future_all(&out, inner, 2), 0);
    cr_assert_eq(weft_await(out, NULL, weft_deadline_in(SOON)), 0);
    cr_assert_eq(inner[0]->status, 1);
    cr_assert_eq(inner[1]->status, 1);
    weft_future_destroy(out);
    weft_future_destroy(inner[0]);
    weft_future_destroy(inner[1]);
    weft_future_destroy(pend);

    /* then / handle_exception: map skips a failure, or_else recovers it, and_then chains a
     * future that is ready at once. */
    weft_future *m;
    cr_assert_eq(weft_future_map(&m, ready_future(-EIO, NULL), double_it, NULL), 0);
    cr_assert_eq(weft_await(m, NULL, LONG_AGO), -EIO);
    weft_future_destroy(m);
    cr_assert_eq(weft_future_or_else(&m, ready_future(-EIO, NULL), recover, NULL), 0);
    cr_assert_eq(weft_await(m, &v, LONG_AGO), 0);
    cr_assert_eq(v, (void *)(intptr_t)EIO);
    weft_future_destroy(m);
    cr_assert_eq(weft_future_and_then(&m, ready_future(0, (void *)20), chain_ready, NULL), 0);
    cr_assert_eq(weft_future_map(&out, m, double_it, NULL), 0);
    cr_assert_eq(weft_await(out, &v, LONG_AGO), 0);
    cr_assert_eq(v, (void *)42);
    weft_future_destroy(out);
    for (int i = 0; i < 3; i++)
        weft_future_destroy(r[i]);

    /* parallel_for_each: every item runs though one fails, and the wait covers them all. */
    struct pfe pf = {0};
    weft_group *g = group_new();
    for (int i = 0; i < 16; i++)
        cr_assert_eq(weft_group_spawn(g, pfe_item, &pf, NULL), 0);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(SOON)), 0);
    cr_assert_eq(atomic_load(&pf.ran), 16);
    cr_assert_eq(atomic_load(&pf.failed), 1);
    cr_assert_eq(weft_group_close(g), 0);
    return NULL;
}

Test(ported_coro, seastar_combinators_over_empty_ready_failed_and_duplicated_inputs, .timeout = 30)
{
    run_quiet(combinators_main, NULL);
}

/* ---- Seastar abort_source_test: subscriptions are a task's defers, the abort its cancel ----
 * Subscribers run once when the abort is requested (the task is cancelled and finishes),
 * newest first; an unsubscribed one never runs; requesting twice runs nothing twice. */

static atomic_int abort_order[4], abort_next;

static void on_abort(void *arg)
{
    int i = atomic_fetch_add(&abort_next, 1);
    if (i < 4)
        atomic_store(&abort_order[i], (int)(intptr_t)arg);
}

static void *subscribed(void *arg)
{
    (void)arg;
    weft_defer(on_abort, (void *)1);
    weft_defer(on_abort, (void *)2);
    weft_defer(on_abort, (void *)3);
    weft_defer_pop(0); /* the subscription of 3 is dropped unrun */
    weft_defer(on_abort, (void *)4);
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *abort_source_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        atomic_store(&abort_next, 0);
        weft_task *t = spawn_at(k ? other_worker() : 0, subscribed, NULL);
        wait_parked(t);
        cr_assert_eq(atomic_load(&abort_next), 0, "nothing runs before the abort");
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(weft_cancel(t), 0, "a second request is harmless");
        join_cancelled(t);
        cr_assert_eq(atomic_load(&abort_next), 3, "each live subscription ran once");
        cr_assert_eq(atomic_load(&abort_order[0]), 4);
        cr_assert_eq(atomic_load(&abort_order[1]), 2);
        cr_assert_eq(atomic_load(&abort_order[2]), 1);
    }
    return NULL;
}

Test(ported_coro, seastar_abort_source_as_cancel_and_defers, .timeout = 30)
{
    run_quiet(abort_source_main, NULL);
}

/* ---- Seastar smp_test: submit_to, and a submitted function that submits back ------------- */

static void *where_am_i(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_worker_index();
}

static void *submit_back(void *arg)
{
    unsigned origin = (unsigned)(uintptr_t)arg;
    weft_future *f = NULL;
    if (weft_submit_to(origin, where_am_i, NULL, &f) != 0)
        return (void *)-1;
    void *v = (void *)-2;
    int r = weft_await(f, &v, weft_deadline_in(SOON));
    weft_future_destroy(f);
    if (r != 0)
        return (void *)-3;
    /* here, then there */
    return (void *)((intptr_t)weft_worker_index() * 100 + (intptr_t)v);
}

static void *smp_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    weft_future *fs[WEFT_WORKERS_MAX];
    for (unsigned k = 0; k < n; k++)
        cr_assert_eq(weft_submit_to(k, submit_back, (void *)(uintptr_t)0, &fs[k]), 0);
    int st[WEFT_WORKERS_MAX];
    void *vals[WEFT_WORKERS_MAX];
    weft_future *all;
    cr_assert_eq(weft_future_join(&all, fs, n, st, vals), 0);
    cr_assert_eq(weft_await(all, NULL, weft_deadline_in(SOON)), 0);
    for (unsigned k = 0; k < n; k++) {
        cr_assert_eq(st[k], 0);
        cr_assert_eq((intptr_t)vals[k], (intptr_t)k * 100, "worker %u then worker 0", k);
    }
    weft_future_destroy(all);
    for (unsigned k = 0; k < n; k++)
        weft_future_destroy(fs[k]);
    weft_future *x;
    cr_assert_eq(weft_submit_to(n, where_am_i, NULL, &x), -EINVAL);
    return NULL;
}

Test(ported_coro, seastar_submit_to_every_worker_and_back, .timeout = 30)
{
    run_quiet(smp_main, NULL);
}

/* ---- Generators abandoned half-way ---------------------------------------------------------
 * A consumer that stops early (closes the generator after a few values): the body's pending
 * yield returns -ECANCELED, and so does every later yield and blocking call of a body that
 * ignores it, each at once; its cleanup runs once. A generator closed before its first
 * request never runs its body. */

struct gen_state {
    atomic_int produced, cleanups, after[3];
    int stubborn;
};

static void gen_cleanup(void *arg)
{
    struct gen_state *s = arg;
    atomic_fetch_add(&s->cleanups, 1);
}

static void counting_body(weft_gen *g, void *arg)
{
    struct gen_state *s = arg;
    for (long i = 0;; i++) {
        atomic_fetch_add(&s->produced, 1);
        int r = weft_gen_yield(g, &i);
        if (r == 0)
            continue;
        if (!s->stubborn)
            return;
        /* It goes on as if nothing happened. */
        atomic_store(&s->after[0], r);
        atomic_store(&s->after[1], weft_gen_yield(g, &i));
        atomic_store(&s->after[2], weft_sleep_until(WEFT_FOREVER));
        return;
    }
}

static void *gen_abandon_main(void *arg)
{
    (void)arg;
    for (int stubborn = 0; stubborn < 2; stubborn++)
        for (int take = 0; take < 4; take++) {
            struct gen_state s = {.stubborn = stubborn};
            weft_gen *g = NULL;
            cr_assert_eq(weft_gen_create(&g, counting_body, &s, sizeof(long),
                                         &(weft_spawn_opts){.cleanup = gen_cleanup}),
                         0);
            for (long i = 0; i < take; i++) {
                long v = -1;
                cr_assert_eq(weft_gen_next(g, &v, weft_deadline_in(SOON)), 0);
                cr_assert_eq(v, i);
            }
            cr_assert_eq(weft_gen_close(g), 0);
            cr_assert_eq(atomic_load(&s.cleanups), 1, "cleanup once (took %d)", take);
            cr_assert_eq(atomic_load(&s.produced), take, "no value produced ahead");
            if (stubborn && take > 0)
                for (int i = 0; i < 3; i++)
                    cr_assert_eq(atomic_load(&s.after[i]), -ECANCELED, "call %d after", i);
        }
    return NULL;
}

Test(ported_coro, generators_abandoned_half_way, .timeout = 30)
{
    run_quiet(gen_abandon_main, NULL);
}

/* ---- Closing handles from inside their own coroutine --------------------------------------
 * libdill lets a coroutine hclose only others; weft's calls on oneself: a join is -EDEADLK
 * (weft.h), a detach lets the task finish and be recycled by itself, a cancel makes its own
 * later waits fail. A task that drops the last reference to a channel another task waits on
 * closes it: the waiter wakes with -EPIPE, and the channel is freed once it has left. */

struct self_ops {
    int join_rc, detach_rc, wait_rc;
    weft_waitgroup *wg;
};

static void *closes_itself(void *arg)
{
    struct self_ops *o = arg;
    o->join_rc = weft_join(weft_self(), NULL, WEFT_FOREVER);
    o->detach_rc = weft_detach(weft_self());
    weft_cancel(weft_self());
    o->wait_rc = weft_sleep_until(WEFT_FOREVER);
    weft_waitgroup_done(o->wg);
    return NULL;
}

static void *recv_on(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, weft_deadline_in(SOON));
}

static void *release_chan(void *arg)
{
    weft_chan_release(arg);
    return NULL;
}

static void *self_close_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        weft_waitgroup wg = WEFT_WAITGROUP_INIT;
        struct self_ops o[8];
        cr_assert_eq(weft_waitgroup_add(&wg, 8), 0);
        for (int i = 0; i < 8; i++) {
            o[i] = (struct self_ops){1, 1, 1, &wg};
            weft_task *t; /* never used again: it detaches itself */
            cr_assert_eq(weft_spawn_on(k ? other_worker() : 0, &t, closes_itself, &o[i],
                                       &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                         0);
        }
        cr_assert_eq(weft_waitgroup_wait(&wg, weft_deadline_in(SOON)), 0);
        for (int i = 0; i < 8; i++) {
            cr_assert_eq(o[i].join_rc, -EDEADLK);
            cr_assert_eq(o[i].detach_rc, 0);
            cr_assert_eq(o[i].wait_rc, -ECANCELED);
        }
    }
    weft_stats st;
    while (weft_stats_get(&st) == 0 && st.nunfinished > 1)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0); /* the self-detached tasks end on their own */

    /* The last reference dropped by another task while a receiver waits. */
    for (int k = 0; k < 2; k++) {
        weft_chan *c = chan_new(sizeof(long), 0);
        weft_task *r = spawn_at(k ? other_worker() : 0, recv_on, c);
        wait_parked(r);
        weft_task *rel = spawn_at(k ? 0 : other_worker(), release_chan, c);
        cr_assert_null(join_result(rel));
        cr_assert_eq((intptr_t)join_result(r), -EPIPE);
    }
    return NULL;
}

Test(ported_coro, handles_closed_from_inside_their_own_coroutine, .timeout = 30)
{
    run_quiet(self_close_main, NULL);
}

/* ---- Recursion close to the stack's size, and past it ------------------------------------
 * Up to three quarters of a guarded stack is the coroutine's to use, on every worker and on
 * stacks the pool hands out again; one frame too many hits the guard, and the process stops
 * with a report naming the task rather than running on over another stack. */

static __attribute__((noinline)) long deep(int depth, long acc)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = (char)(depth * 3);
    if (depth == 0) {
        weft_yield(); /* switch out and back at the deepest point */
        return acc;
    }
    long r = deep(depth - 1, acc + depth);
    return r + frame[0] - (char)depth + frame[1023] - (char)(depth * 3);
}

enum { DEEP_STACK = 256 * 1024, DEEP_LEVELS = 192 };

static void *go_deep(void *arg)
{
    (void)arg;
    return (void *)deep(DEEP_LEVELS, 0);
}

static void *deep_main(void *arg)
{
    (void)arg;
    long want = (long)DEEP_LEVELS * (DEEP_LEVELS + 1) / 2;
    weft_spawn_opts o = {.stack_size = DEEP_STACK, .flags = WEFT_SPAWN_PINNED};
    for (int round = 0; round < 10; round++) {
        weft_task *t[4];
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_spawn_on(i % 2 ? other_worker() : 0, &t[i], go_deep, NULL, &o), 0);
        for (int i = 0; i < 4; i++)
            cr_assert_eq((long)join_result(t[i]), want, "round %d task %d", round, i);
    }
    return NULL;
}

Test(ported_coro, recursion_to_three_quarters_of_the_stack, .timeout = 30)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stall_ms = -1;
    cfg.guard = WEFT_GUARD_ALWAYS;
    run_main_cfg(&cfg, deep_main, NULL);
}

static void *overflows(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void *overflow_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn_on(other_worker(), &t, overflows, NULL,
                  &(weft_spawn_opts){
                      .name = "deep-diver", .stack_size = 64 * 1024, .flags = WEFT_SPAWN_PINNED});
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_overflow(void *arg)
{
    (void)arg;
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_ALWAYS;
    cfg.stall_ms = -1;
    weft_run(&cfg, overflow_main, NULL, NULL);
}

Test(ported_coro, recursion_past_the_stack_is_reported_not_run_on, .timeout = 30)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_overflow, NULL, err, sizeof err);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan reports the overflow itself, first. */
    cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0),
              "status 0x%x, stderr: %s", status, err);
#else
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status 0x%x, stderr: %s", status,
              err);
    cr_assert(strstr(err, "stack overflow in task") && strstr(err, "\"deep-diver\""), "stderr: %s",
              err);
#endif
}

/* ---- 100,000 coroutines alive in one group ------------------------------------------------
 * All parked on one channel; closing the channel wakes every one with -EPIPE, and the
 * group's wait sees them all finish. Then as many again, parked for ever, are cancelled by
 * the group's close. Under ASan a quarter as many: the first touch of each fresh stack,
 * poisoned and faulted in, made this one test 12 of the file's 18 s there, three runs per
 * build; the release and LTO builds run the whole hundred thousand. */
#if defined(__SANITIZE_ADDRESS__)
enum { NMANY = 25000 };
#else
enum { NMANY = 100000 };
#endif

static atomic_int many_epipe;

static void *many_member(void *arg)
{
    long v;
    if (weft_chan_recv(arg, &v, WEFT_FOREVER) == -EPIPE)
        atomic_fetch_add(&many_epipe, 1);
    return NULL;
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.stack_size = WEFT_STACK_MIN};
    for (int round = 0; round < 2; round++) {
        weft_chan *c = chan_new(sizeof(long), 0);
        weft_group *g = group_new();
        atomic_store(&many_epipe, 0);
        for (int i = 0; i < NMANY; i++)
            cr_assert_eq(weft_group_spawn(g, many_member, c, &o), 0, "member %d", i);
        cr_assert_eq(weft_group_size(g), NMANY);
        weft_stats st;
        do {
            cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
            cr_assert_eq(weft_stats_get(&st), 0);
        } while (st.nready > 0); /* every one has run and parked */
        cr_assert_eq(weft_group_size(g), NMANY);
        if (round == 0) {
            cr_assert_eq(weft_chan_close(c), 0);
            cr_assert_eq(weft_group_wait(g, weft_deadline_in(60 * WEFT_SEC)), 0);
            cr_assert_eq(atomic_load(&many_epipe), NMANY);
        }
        cr_assert_eq(weft_group_close(g), 0);
        weft_chan_release(c);
    }
    return NULL;
}

Test(ported_coro, a_hundred_thousand_coroutines_in_one_group, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stall_ms = -1;
    cfg.budget = 1u << 20;
    run_main_cfg(&cfg, many_main, NULL);
}

/* ---- A channel's last handle dropped just after a parked waiter was completed --------------
 * libmill chan.c hands each coroutine its own chdup and lets it chclose when done. A waiter
 * keeps its channel alive until it has left (weft.h); here the waiter's partner completes it
 * (a send, or the close the last release makes) and drops the last handle at once, while
 * the waiter, on another worker, is waking. The channel used to be freed under it: the
 * completer had counted the waiter out before the waiter had last touched the channel. */

struct orphan {
    weft_chan *c, *c2;
    int by_close, by_select;
    int rc;
    long v;
};

static void *orphan_waiter(void *arg)
{
    struct orphan *o = arg;
    if (o->by_select) {
        long x;
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = o->c2, .elem = &x},
                          {.op = WEFT_CASE_RECV, .chan = o->c, .elem = &o->v}};
        int r = weft_select(cs, 2, weft_deadline_in(SOON));
        o->rc = r == 1 ? cs[1].result : r == 0 ? 1000 + cs[0].result : r;
        weft_chan_release(o->c2);
        return NULL;
    }
    o->rc = weft_chan_recv(o->c, &o->v, weft_deadline_in(SOON));
    return NULL;
}

static void *completes_then_drops(void *arg)
{
    struct orphan *o = arg;
    long v = 5;
    if (!o->by_close)
        weft_chan_send(o->c, &v, weft_deadline_in(SOON));
    weft_chan_release(o->c); /* the last handle */
    return NULL;
}

static void *orphan_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 400; i++) {
        struct orphan o = {.c = chan_new(sizeof(long), 0),
                           .c2 = chan_new(sizeof(long), 0),
                           .by_close = i % 2,
                           .by_select = i % 4 >= 2,
                           .rc = 1};
        if (!o.by_select)
            weft_chan_release(o.c2);
        weft_task *r = spawn_at(other_worker(), orphan_waiter, &o);
        wait_parked(r);
        weft_task *s = spawn_at(0, completes_then_drops, &o);
        cr_assert_null(join_result(s));
        cr_assert_null(join_result(r));
        if (o.by_close)
            cr_assert_eq(o.rc, -EPIPE);
        else {
            cr_assert_eq(o.rc, 0);
            cr_assert_eq(o.v, 5);
        }
    }
    return NULL;
}

Test(ported_coro, a_channel_released_as_its_waiter_wakes_outlives_the_waiter, .timeout = 60)
{
    run_quiet(orphan_main, NULL);
}

/* The same for a broadcast channel and a promise: the sender drops its last handle (or
 * reference) right after the value that wakes a waiter on another worker; the waiter's own
 * receiver (or reference) keeps what it reads alive. */
struct orphan2 {
    weft_bcast *b;
    weft_bcast_rx *rx;
    weft_promise *p;
    int rc, prc;
    long v;
    void *pv;
};

static void *orphan2_waiter(void *arg)
{
    struct orphan2 *o = arg;
    if (o->rx) {
        o->rc = weft_bcast_recv(o->rx, &o->v, NULL, weft_deadline_in(SOON));
        weft_bcast_unsubscribe(o->rx);
    } else {
        o->prc = weft_await(weft_promise_future(o->p), &o->pv, weft_deadline_in(SOON));
        weft_promise_release(o->p); /* this task's reference */
    }
    return NULL;
}

static void *orphan2_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 400; i++) {
        struct orphan2 o = {.rc = 1, .prc = 1};
        if (i % 2) {
            cr_assert_eq(weft_bcast_create(&o.b, sizeof(long), 2), 0);
            cr_assert_eq(weft_bcast_subscribe(o.b, &o.rx), 0);
        } else {
            cr_assert_eq(weft_promise_create(&o.p), 0);
            weft_promise_retain(o.p);
        }
        weft_task *r = spawn_at(other_worker(), orphan2_waiter, &o);
        wait_parked(r);
        if (i % 2) {
            long v = 8;
            if (i % 4 == 1)
                cr_assert_eq(weft_bcast_send(o.b, &v), 1);
            weft_bcast_release(o.b);
        } else {
            cr_assert_eq(weft_promise_resolve(o.p, (void *)8), 0);
            weft_promise_release(o.p);
        }
        cr_assert_null(join_result(r));
        if (i % 4 == 1)
            cr_assert(o.rc == 0 && o.v == 8, "%d", o.rc);
        else if (i % 2)
            cr_assert_eq(o.rc, -EPIPE);
        else
            cr_assert(o.prc == 0 && o.pv == (void *)8, "%d", o.prc);
    }
    return NULL;
}

Test(ported_coro, a_broadcast_or_promise_dropped_as_its_waiter_wakes, .timeout = 60)
{
    run_quiet(orphan2_main, NULL);
}

/* ---- A primitive freed by its waiter as soon as its wait returns ---------------------------
 * Go's sync.WaitGroup rule: Done may be the last touch of a wait group whose Wait then
 * returns and frees it. Here for every primitive: the waiter, on another worker, frees the
 * primitive (heap memory) the moment its wait returns, while the task that released it may
 * still be leaving the call that did. Under ASan a late touch is a use after free. */

enum { P_EVENT, P_WAITGROUP, P_SEM, P_MUTEX, P_COND, P_RWLOCK, P_NKINDS };

struct freed_by_waiter {
    int kind;
    weft_mutex *m;
    weft_cond *c;
    weft_event *e;
    weft_waitgroup *wg;
    weft_sem *s;
    weft_rwlock *rw;
    atomic_int ready;
    int rc;
};

static void *waits_then_frees(void *arg)
{
    struct freed_by_waiter *f = arg;
    int r = 0;
    switch (f->kind) {
    case P_EVENT:
        r = weft_event_wait(f->e, weft_deadline_in(SOON));
        free(f->e);
        break;
    case P_WAITGROUP:
        r = weft_waitgroup_wait(f->wg, weft_deadline_in(SOON));
        free(f->wg);
        break;
    case P_SEM:
        r = weft_sem_acquire(f->s, weft_deadline_in(SOON));
        free(f->s);
        break;
    case P_MUTEX:
        r = weft_mutex_lock(f->m, weft_deadline_in(SOON));
        if (r == 0)
            r = weft_mutex_unlock(f->m);
        free(f->m);
        break;
    case P_COND:
        r = weft_mutex_lock(f->m, weft_deadline_in(SOON));
        atomic_store(&f->ready, 1);
        if (r == 0)
            r = weft_cond_wait(f->c, f->m, weft_deadline_in(SOON));
        weft_mutex_unlock(f->m);
        free(f->c);
        free(f->m);
        break;
    case P_RWLOCK:
        r = weft_rwlock_rdlock(f->rw, weft_deadline_in(SOON));
        if (r == 0)
            r = weft_rwlock_unlock(f->rw);
        free(f->rw);
        break;
    }
    f->rc = r;
    return NULL;
}

static void *waiter_frees_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        struct freed_by_waiter f = {.kind = i % P_NKINDS, .rc = 1};
        switch (f.kind) {
        case P_EVENT:
            f.e = malloc(sizeof *f.e);
            *f.e = (weft_event)WEFT_EVENT_INIT;
            break;
        case P_WAITGROUP:
            f.wg = malloc(sizeof *f.wg);
            *f.wg = (weft_waitgroup)WEFT_WAITGROUP_INIT;
            cr_assert_eq(weft_waitgroup_add(f.wg, 1), 0);
            break;
        case P_SEM:
            f.s = malloc(sizeof *f.s);
            *f.s = (weft_sem)WEFT_SEM_INIT(0);
            break;
        case P_MUTEX:
            f.m = malloc(sizeof *f.m);
            *f.m = (weft_mutex)WEFT_MUTEX_INIT;
            cr_assert_eq(weft_mutex_lock(f.m, WEFT_FOREVER), 0);
            break;
        case P_COND:
            f.m = malloc(sizeof *f.m);
            f.c = malloc(sizeof *f.c);
            *f.m = (weft_mutex)WEFT_MUTEX_INIT;
            *f.c = (weft_cond)WEFT_COND_INIT;
            break;
        case P_RWLOCK:
            f.rw = malloc(sizeof *f.rw);
            *f.rw = (weft_rwlock)WEFT_RWLOCK_INIT;
            cr_assert_eq(weft_rwlock_wrlock(f.rw, WEFT_FOREVER), 0);
            break;
        }
        weft_task *t = spawn_at(other_worker(), waits_then_frees, &f);
        wait_parked(t);
        switch (f.kind) {
        case P_EVENT:
            cr_assert_eq(weft_event_set(f.e), 0);
            break;
        case P_WAITGROUP:
            cr_assert_eq(weft_waitgroup_done(f.wg), 0);
            break;
        case P_SEM:
            cr_assert_eq(weft_sem_release(f.s, 1), 0);
            break;
        case P_MUTEX:
            cr_assert_eq(weft_mutex_unlock(f.m), 0);
            break;
        case P_COND:
            /* The waiter holds m until its wait has released it. */
            cr_assert_eq(weft_mutex_lock(f.m, weft_deadline_in(SOON)), 0);
            cr_assert_eq(weft_cond_signal(f.c), 1);
            cr_assert_eq(weft_mutex_unlock(f.m), 0);
            break;
        case P_RWLOCK:
            cr_assert_eq(weft_rwlock_unlock(f.rw), 0);
            break;
        }
        cr_assert_null(join_result(t));
        cr_assert_eq(f.rc, 0, "kind %d: %d", f.kind, f.rc);
    }
    return NULL;
}

Test(ported_coro, a_primitive_freed_by_its_waiter_as_its_wait_returns, .timeout = 60)
{
    run_quiet(waiter_frees_main, NULL);
}

/* ---- What a cancelled task's calls do when they need not wait (weft.h, weft_cancel) -------
 * libdill fails every blocking call of a cancelled coroutine; weft lets those that need not
 * wait on a primitive complete (so that cleanup may take a free lock), and fails the others
 * at once. Pinned here as weft.h lists them. */

static void once_nothing(void *arg)
{
    (void)arg;
}

struct cancelled_calls {
    int sem, mutex, rdlock, wrlock, once, event, wg, sleep, join, await, group, try_recv;
    int recv, send, select, select_default, yield, fd_wait, read, cond, gen, blocking;
    long sem_left;
};

static void gen_counter(weft_gen *g, void *arg)
{
    (void)arg;
    long v = 0;
    while (weft_gen_yield(g, &v) == 0)
        v++;
}

static void *blocking_nothing(void *arg)
{
    return arg;
}

static void *cancelled_calls_task(void *arg)
{
    struct cancelled_calls *o = arg;
    weft_sem s = WEFT_SEM_INIT(2);
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    weft_rwlock rw = WEFT_RWLOCK_INIT;
    weft_once once = WEFT_ONCE_INIT;
    weft_event e = WEFT_EVENT_INIT;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    weft_chan *ch = NULL;
    weft_chan_create(&ch, sizeof(long), 4);
    long v = 1;
    weft_chan_try_send(ch, &v);
    weft_chan_try_send(ch, &v);
    weft_event_set(&e);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    weft_write(sv[1], "x", 1, weft_deadline_in(SOON));
    weft_task *fin = NULL;
    weft_spawn(&fin, nothing, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED});
    while (weft_task_status(fin) != WEFT_TASK_FINISHED)
        weft_yield();
    weft_gen *g = NULL;
    weft_gen_create(&g, gen_counter, NULL, sizeof(long), NULL);
    weft_group *gr = NULL;
    weft_group_create(&gr);
    weft_future *f = NULL;
    weft_future_ready(&f, 3, NULL);

    weft_cancel(weft_self());
    o->sem = weft_sem_acquire(&s, WEFT_FOREVER);
    o->sem_left = (long)weft_sem_value(&s);
    if ((o->mutex = weft_mutex_lock(&m, WEFT_FOREVER)) == 0) {
        o->cond = weft_cond_wait(&c, &m, WEFT_FOREVER);
        weft_mutex_unlock(&m);
    }
    if ((o->rdlock = weft_rwlock_rdlock(&rw, WEFT_FOREVER)) == 0)
        weft_rwlock_unlock(&rw);
    if ((o->wrlock = weft_rwlock_wrlock(&rw, WEFT_FOREVER)) == 0)
        weft_rwlock_unlock(&rw);
    o->once = weft_once_call(&once, once_nothing, NULL, WEFT_FOREVER);
    o->event = weft_event_wait(&e, WEFT_FOREVER);
    o->wg = weft_waitgroup_wait(&wg, WEFT_FOREVER);
    o->sleep = weft_sleep_until(LONG_AGO);
    o->join = weft_join(fin, NULL, WEFT_FOREVER);
    o->await = weft_await(f, NULL, WEFT_FOREVER);
    o->group = weft_group_wait(gr, WEFT_FOREVER);
    o->try_recv = weft_chan_try_recv(ch, &v);
    o->recv = weft_chan_recv(ch, &v, WEFT_FOREVER);
    o->send = weft_chan_send(ch, &v, WEFT_FOREVER);
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = ch, .elem = &v}};
    o->select = weft_select(cs, 1, WEFT_FOREVER);
    weft_case cd[] = {{.op = WEFT_CASE_DEFAULT}};
    o->select_default = weft_select(cd, 1, WEFT_FOREVER);
    o->yield = weft_yield();
    o->fd_wait = weft_fd_wait(sv[0], WEFT_READABLE, WEFT_FOREVER);
    char b;
    o->read = (int)weft_read(sv[0], &b, 1, WEFT_FOREVER);
    o->gen = weft_gen_next(g, &v, WEFT_FOREVER);
    o->blocking = weft_blocking(blocking_nothing, NULL, NULL, WEFT_FOREVER);

    weft_gen_close(g);
    weft_group_close(gr);
    weft_future_destroy(f);
    weft_chan_release(ch);
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

static void *cancelled_calls_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        struct cancelled_calls o;
        memset(&o, 0x55, sizeof o);
        weft_task *t = spawn_at(k ? other_worker() : 0, cancelled_calls_task, &o);
        join_cancelled(t);
        /* Complete: nothing to wait for. */
        cr_assert_eq(o.sem, 0);
        cr_assert_eq(o.sem_left, 1, "one unit taken");
        cr_assert_eq(o.mutex, 0);
        cr_assert_eq(o.rdlock, 0);
        cr_assert_eq(o.wrlock, 0);
        cr_assert_eq(o.once, 0);
        cr_assert_eq(o.event, 0);
        cr_assert_eq(o.wg, 0);
        cr_assert_eq(o.sleep, 0);
        cr_assert_eq(o.join, 0);
        cr_assert_eq(o.await, 3);
        cr_assert_eq(o.group, 0);
        cr_assert_eq(o.try_recv, 0);
        /* Fail at once, even where they could complete. */
        cr_assert_eq(o.cond, -ECANCELED);
        cr_assert_eq(o.recv, -ECANCELED);
        cr_assert_eq(o.send, -ECANCELED);
        cr_assert_eq(o.select, -ECANCELED);
        cr_assert_eq(o.select_default, -ECANCELED);
        cr_assert_eq(o.yield, -ECANCELED);
        cr_assert_eq(o.fd_wait, -ECANCELED);
        cr_assert_eq(o.read, -ECANCELED);
        cr_assert_eq(o.gen, -ECANCELED);
        cr_assert_eq(o.blocking, -ECANCELED);
    }
    return NULL;
}

Test(ported_coro, a_cancelled_task_completes_only_what_need_not_wait, .timeout = 30)
{
    run_quiet(cancelled_calls_main, NULL);
}

/* ---- Deadlines at the edges, at every kind of wait ------------------------------------------
 * libdill's deadlines are absolute, -1 for none. Negative ones other than WEFT_FOREVER, and
 * 0, have passed: a wait that cannot complete returns -ETIMEDOUT without parking (a sleep
 * returns 0). INT64_MAX is the end of time: the wait parks and stays parked (no overflow
 * turns it into a passed deadline) until it is cancelled. */

struct edge_subject {
    struct env *e;
    int kind;
    int64_t dl;
    int rc;
};

static void *edge_subject(void *arg)
{
    struct edge_subject *s = arg;
    s->rc = wait_until(s->e, s->kind, s->dl);
    return NULL;
}

static void *deadline_edges_main(void *arg)
{
    (void)arg;
    static const int64_t passed[] = {LONG_AGO, -2, INT64_MIN};
    for (int kind = 0; kind < W_NKINDS; kind++) {
        for (size_t d = 0; d < sizeof passed / sizeof passed[0]; d++) {
            struct env e;
            env_init(&e);
            struct edge_subject s = {&e, kind, passed[d], 1};
            weft_task *t = spawn_pinned(edge_subject, &s);
            cr_assert_null(join_result(t), "%s with deadline %" PRId64 " waited", wait_names[kind],
                           passed[d]);
            cr_assert_eq(s.rc, kind == W_SLEEP ? 0 : -ETIMEDOUT, "%s, deadline %" PRId64 ": %d",
                         wait_names[kind], passed[d], s.rc);
            env_fini(&e);
        }
        struct env e;
        env_init(&e);
        struct edge_subject s = {&e, kind, INT64_MAX, 1};
        weft_task *t = spawn_pinned(edge_subject, &s);
        wait_parked(t);
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
        cr_assert_eq(weft_task_status(t), WEFT_TASK_PARKED, "%s at INT64_MAX", wait_names[kind]);
        cr_assert_eq(weft_cancel(t), 0);
        join_cancelled(t);
        cr_assert_eq(s.rc, -ECANCELED, "%s at INT64_MAX: %d", wait_names[kind], s.rc);
        env_fini(&e);
    }
    return NULL;
}

Test(ported_coro, deadlines_passed_negative_and_at_the_end_of_time_at_every_wait, .timeout = 60)
{
    run_quiet(deadline_edges_main, NULL);
}

/* ---- Seastar timer_test: timers cancelled and re-armed from a timer's callback -------------
 * test_timer_basic: t1's callback cancels t4 and t5 and re-arms t5; here every timer has
 * expired before any callback runs (the worker is kept busy past them all), so t4 and the
 * first t5 are already due when t1, the earliest, cancels them: they must not run.
 * test_timer_cancelling: armed and cancelled twice, then armed with a new callback.
 * test_highres_periodic_cancel_in_callback: a periodic timer cancels itself in its callback,
 * and a task it spawns arms another. */

struct tbasic {
    weft_watch *t[6];
    int fired[6];
    int del4, del5, add5;
    weft_watch *periodic, *second;
    int pfired, sfired, add2;
};

static void on_fire(weft_watch *w, int fd, unsigned ev, void *arg);

static void on_t1(weft_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w, (void)fd, (void)ev;
    struct tbasic *b = arg;
    b->fired[1]++;
    b->del4 = weft_watch_del(b->t[4]);
    b->del5 = weft_watch_del(b->t[5]);
    b->t[4] = NULL;
    b->add5 = weft_watch_add(&b->t[5], -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_fire, b);
}

static void on_fire(weft_watch *w, int fd, unsigned ev, void *arg)
{
    (void)fd, (void)ev;
    struct tbasic *b = arg;
    for (int i = 2; i < 6; i++)
        if (b->t[i] == w)
            b->fired[i]++;
}

static void spin_ms(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t end = (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec + ms * WEFT_MSEC;
    do
        clock_gettime(CLOCK_MONOTONIC, &ts);
    while ((int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec < end);
}

static void on_second(weft_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w, (void)fd, (void)ev;
    ((struct tbasic *)arg)->sfired++;
}

static void *arm_second(void *arg)
{
    struct tbasic *b = arg;
    weft_yield();
    b->add2 = weft_watch_add(&b->second, -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_second, b);
    return NULL;
}

static void on_periodic(weft_watch *w, int fd, unsigned ev, void *arg)
{
    (void)fd, (void)ev;
    struct tbasic *b = arg;
    b->pfired++;
    weft_watch_del(w); /* cancels itself: the callback running now finishes */
    weft_spawn(NULL, arm_second, b, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
}

static void *timer_basic_main(void *arg)
{
    (void)arg;
    struct tbasic b = {0};
    /* t1 1 ms, t4 1 ms (the same deadline, added after: it fires after t1), t5 2 ms, t2 3 ms,
     * t3 4 ms; then the worker is busy for 6 ms. */
    cr_assert_eq(weft_watch_add(&b.t[1], -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_t1, &b), 0);
    cr_assert_eq(weft_watch_add(&b.t[4], -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_fire, &b), 0);
    cr_assert_eq(weft_watch_add(&b.t[5], -1, WEFT_WATCH_TIMER, 2 * WEFT_MSEC, on_fire, &b), 0);
    cr_assert_eq(weft_watch_add(&b.t[2], -1, WEFT_WATCH_TIMER, 3 * WEFT_MSEC, on_fire, &b), 0);
    cr_assert_eq(weft_watch_add(&b.t[3], -1, WEFT_WATCH_TIMER, 4 * WEFT_MSEC, on_fire, &b), 0);
    spin_ms(6);
    int64_t until = weft_deadline_in(SOON);
    while ((b.fired[5] == 0 || b.fired[2] == 0 || b.fired[3] == 0) && weft_now() < until)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(b.fired[1], 1);
    cr_assert_eq(b.del4, 0);
    cr_assert_eq(b.del5, 0);
    cr_assert_eq(b.add5, 0);
    cr_assert_eq(b.fired[4], 0, "a timer cancelled after it expired, before its callback ran");
    cr_assert_eq(b.fired[5], 1, "the re-armed timer fired once (the cancelled one never)");
    cr_assert_eq(b.fired[2], 1);
    cr_assert_eq(b.fired[3], 1);
    for (int i = 1; i < 6; i++)
        if (b.t[i])
            cr_assert_eq(weft_watch_del(b.t[i]), 0, "one-shot watch %d", i);

    /* test_timer_cancelling: armed and cancelled twice, then armed again. */
    struct tbasic c = {0};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_watch_add(&c.t[4], -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_fire, &c), 0);
        cr_assert_eq(weft_watch_del(c.t[4]), 0);
    }
    c.t[4] = NULL;
    cr_assert_eq(weft_watch_add(&c.t[2], -1, WEFT_WATCH_TIMER, WEFT_MSEC, on_fire, &c), 0);
    spin_ms(2);
    while (c.fired[2] == 0 && weft_now() < until)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(c.fired[2], 1);
    cr_assert_eq(c.fired[4], 0);
    cr_assert_eq(weft_watch_del(c.t[2]), 0);

    /* test_highres_periodic_cancel_in_callback. */
    struct tbasic p = {0};
    cr_assert_eq(weft_watch_add(&p.periodic, -1, WEFT_WATCH_TIMER | WEFT_WATCH_PERSIST, WEFT_MSEC,
                                on_periodic, &p),
                 0);
    while (p.sfired == 0 && weft_now() < until)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    spin_ms(3);
    cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(p.pfired, 1, "the periodic timer cancelled in its callback fired once");
    cr_assert_eq(p.add2, 0);
    cr_assert_eq(p.sfired, 1);
    cr_assert_eq(weft_watch_del(p.second), 0);
    return NULL;
}

Test(ported_coro, seastar_timers_cancelled_and_rearmed_from_callbacks, .timeout = 30)
{
    run_quiet(timer_basic_main, NULL);
}
