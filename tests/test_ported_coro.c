/* Behaviours the test suites of other coroutine runtimes check, re-expressed against what
 * weft.h documents: libdill's tests (go, bundle, chan, choose, sleep, fd, tcp, ipc, prefix,
 * suffix, happyeyeballs, overload, and its cancellation rule: a coroutine cancelled while
 * blocked gets ECANCELED, and so does every later blocking call), libmill's (chan, cls,
 * fdwait, overload), libco's examples (cond, poll, specific and setenv), and Seastar's unit
 * tests where weft has the primitive (semaphore, gate, when_all/when_any/parallel_for_each,
 * abort_source, smp submit_to). test_ported.c, test_ported2.c, test_conformance.c and
 * test_semantics.c hold the ports made before; this file adds the hostile cases: a
 * cancellation at every kind of wait and one racing each kind of grant, groups cancelled
 * while their members spawn, generators abandoned half-way, combinators over empty, ready,
 * failed and duplicated inputs, selects over many and duplicated channels, recursion close to
 * the stack size and past it, and 100,000 coroutines in one group. Each test names its
 * source; where weft.h is silent it asserts what the peer runtime does. No pass or fail
 * depends on timing: deadlines are bounds a hang would reach. Every test holds in sharded
 * and stealing mode, on one and two workers, on epoll and on io_uring (the environment picks:
 * WEFT_MODE, WEFT_WORKERS, WEFT_BACKEND). Tasks on other workers record what they saw, and
 * the main task asserts: a failed assertion must not unwind another thread's coroutine. */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
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

/* Joins t and checks that it finished cancelled. */
static void join_cancelled(weft_task *t)
{
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, weft_deadline_in(SOON)), 0);
    cr_assert_eq(r, WEFT_CANCELED);
}

static void *park_forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep_until(WEFT_FOREVER);
}

static void *wait_event_task(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, weft_deadline_in(SOON));
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
    run_main(close_every_state_main, NULL);
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

/* One wait of `kind` on e, which is set up so that it cannot complete. */
static int wait_once(struct env *e, int kind)
{
    long v = 0;
    char b;
    switch (kind) {
    case W_SLEEP:
        return weft_sleep_until(weft_deadline_in(100 * WEFT_SEC));
    case W_CHAN_RECV:
        return weft_chan_recv(e->c0, &v, WEFT_FOREVER);
    case W_CHAN_SEND:
        return weft_chan_send(e->c0, &v, WEFT_FOREVER);
    case W_SELECT: {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = e->c0, .elem = &v},
                          {.op = WEFT_CASE_SEND, .chan = e->c1, .elem = &v}};
        return weft_select(cs, 2, WEFT_FOREVER);
    }
    case W_SELECT_FD: {
        weft_case cs[] = {{.op = WEFT_CASE_FD, .io = {e->pair[1], WEFT_READABLE}},
                          {.op = WEFT_CASE_TIMER, .at = weft_deadline_in(100 * WEFT_SEC)},
                          {.op = WEFT_CASE_RECV, .chan = e->c0, .elem = &v}};
        return weft_select(cs, 3, WEFT_FOREVER);
    }
    case W_FD_WAIT:
        return weft_fd_wait(e->pair[1], WEFT_READABLE, WEFT_FOREVER);
    case W_READ:
        return (int)weft_read(e->pair[1], &b, 1, WEFT_FOREVER);
    case W_ACCEPT:
        return weft_accept(e->lfd, NULL, NULL, WEFT_FOREVER);
    case W_MUTEX:
        return weft_mutex_lock(&e->m, WEFT_FOREVER);
    case W_COND: {
        /* Uncontended, the lock needs no wait: it is taken even when cancelled (weft.h). */
        int r = weft_mutex_lock(&e->cm, WEFT_FOREVER);
        if (r != 0)
            return 1000 + r;
        r = weft_cond_wait(&e->cond, &e->cm, WEFT_FOREVER);
        int u = weft_mutex_unlock(&e->cm); /* held again, whatever the wait returned */
        return u != 0 ? 2000 + u : r;
    }
    case W_SEM:
        return weft_sem_acquire(&e->sem, WEFT_FOREVER);
    case W_WAITGROUP:
        return weft_waitgroup_wait(&e->wg, WEFT_FOREVER);
    case W_EVENT:
        return weft_event_wait(&e->ev, WEFT_FOREVER);
    case W_RWLOCK:
        return weft_rwlock_rdlock(&e->rw, WEFT_FOREVER);
    case W_ONCE:
        return weft_once_call(&e->once, once_waits_for_gate, e, WEFT_FOREVER);
    case W_JOIN:
        return weft_join(e->target, NULL, WEFT_FOREVER);
    case W_AWAIT:
        return weft_await(weft_promise_future(e->promise), NULL, WEFT_FOREVER);
    case W_SHARED:
        return weft_shared_await(e->shared, NULL, WEFT_FOREVER);
    case W_BCAST:
        return weft_bcast_recv(e->rx, &v, NULL, WEFT_FOREVER);
    case W_GEN:
        return weft_gen_next(e->gen, &v, WEFT_FOREVER);
    case W_GROUP:
        return weft_group_wait(e->group, WEFT_FOREVER);
    }
    return 9999;
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
    run_main(cancel_every_wait_main, NULL);
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
    run_main(cancel_then_grant_main, NULL);
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
    run_main(one_signal_main, NULL);
}
