/* The tracer hooks (weft_config.tracer): every task's life as the hooks report it, in order
 * (spawn, then resumes and parks in turn, then exit), with its parent, the waits named as the
 * dump names them, wakes from other workers, and the workers' sleeps; a tracer of a later
 * version refused. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define MAX_TASKS 64

typedef struct life {
    uint64_t id, parent;
    int spawns, resumes, parks, wakes, exits;
    bool running; /* between a resume and the next park or exit */
    bool out_of_order;
    char waits[256]; /* the wait names of its parks, joined by ',' */
} life;

typedef struct trace {
    pthread_mutex_t mu; /* the hooks run on every worker's thread */
    life tasks[MAX_TASKS];
    int n;
    int sleeps, wakeups;
} trace;

static life *find(trace *tr, uint64_t id)
{
    for (int i = 0; i < tr->n; i++)
        if (tr->tasks[i].id == id)
            return &tr->tasks[i];
    if (tr->n == MAX_TASKS)
        return NULL;
    life *l = &tr->tasks[tr->n++];
    memset(l, 0, sizeof *l);
    l->id = id;
    return l;
}

static void on_spawn(void *arg, uint64_t task, uint64_t parent, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    life *l = find(tr, task);
    if (l->resumes || l->spawns)
        l->out_of_order = true;
    l->spawns++;
    l->parent = parent;
    pthread_mutex_unlock(&tr->mu);
}

static void on_resume(void *arg, uint64_t task, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    life *l = find(tr, task);
    if (l->running || l->exits)
        l->out_of_order = true;
    l->running = true;
    l->resumes++;
    pthread_mutex_unlock(&tr->mu);
}

static void on_park(void *arg, uint64_t task, unsigned worker, const char *wait)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    life *l = find(tr, task);
    /* Not running: its last park was beaten by a wake and returned without a switch (weft.h's
     * on_park), so it ran on without a resume event. */
    l->parks++;
    l->running = false;
    size_t len = strlen(l->waits);
    snprintf(l->waits + len, sizeof l->waits - len, "%s,", wait);
    pthread_mutex_unlock(&tr->mu);
}

static void on_wake(void *arg, uint64_t task, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    find(tr, task)->wakes++;
    pthread_mutex_unlock(&tr->mu);
}

static void on_exit_hook(void *arg, uint64_t task, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    life *l = find(tr, task);
    if (l->exits) /* not running is fine: a beaten park (see on_park) */
        l->out_of_order = true;
    l->running = false;
    l->exits++;
    pthread_mutex_unlock(&tr->mu);
}

static void on_sleep(void *arg, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    tr->sleeps++;
    pthread_mutex_unlock(&tr->mu);
}

static void on_wakeup(void *arg, unsigned worker)
{
    (void)worker;
    trace *tr = arg;
    pthread_mutex_lock(&tr->mu);
    tr->wakeups++;
    pthread_mutex_unlock(&tr->mu);
}

static weft_chan *chan;

static void *sleeper(void *arg)
{
    (void)arg;
    weft_sleep(5 * WEFT_MSEC);
    return NULL;
}

static void *yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        weft_yield();
    return NULL;
}

static void *receiver(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(chan, &v, WEFT_FOREVER);
    return (void *)(intptr_t)v;
}

typedef struct ids {
    uint64_t main, sleeper, yielder, receiver;
} ids;

static void *traced_main(void *arg)
{
    ids *id = arg;
    id->main = weft_task_id(weft_self());
    cr_assert_eq(weft_chan_create(&chan, sizeof(int), 0), 0);
    weft_task *s, *y, *r;
    cr_assert_eq(weft_spawn(&s, sleeper, NULL, NULL), 0);
    cr_assert_eq(weft_spawn(&y, yielder, NULL, NULL), 0);
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &r, receiver, NULL, NULL), 0);
    id->sleeper = weft_task_id(s);
    id->yielder = weft_task_id(y);
    id->receiver = weft_task_id(r);
    weft_sleep(20 * WEFT_MSEC); /* the receiver parks first (its worker sleeps meanwhile) */
    int v = 7;
    cr_assert_eq(weft_chan_send(chan, &v, WEFT_FOREVER), 0);
    void *res;
    cr_assert_eq(weft_join(r, &res, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)res, 7);
    cr_assert_eq(weft_join(s, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(y, NULL, WEFT_FOREVER), 0);
    weft_chan_release(chan);
    return NULL;
}

static void check_life(const life *l, uint64_t parent, const char *wait)
{
    cr_assert_not_null(l);
    cr_assert_not(l->out_of_order, "task %llu: events out of order", (unsigned long long)l->id);
    cr_assert_eq(l->spawns, 1);
    cr_assert_eq(l->exits, 1);
    cr_assert_eq(l->parent, parent, "task %llu: parent %llu", (unsigned long long)l->id,
                 (unsigned long long)l->parent);
    /* Every resume but the last ends in a park; a park a wake beat returns without one. */
    cr_assert_geq(l->resumes, 1);
    cr_assert_leq(l->resumes, l->parks + 1);
    if (wait)
        cr_assert_not_null(strstr(l->waits, wait), "task %llu parked on '%s', not '%s'",
                           (unsigned long long)l->id, l->waits, wait);
}

Test(trace, every_task_life_in_order_with_its_parent_waits_and_wakes)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        trace tr = {.mu = PTHREAD_MUTEX_INITIALIZER};
        weft_tracer t = {.arg = &tr,
                         .on_spawn = on_spawn,
                         .on_resume = on_resume,
                         .on_park = on_park,
                         .on_wake = on_wake,
                         .on_exit = on_exit_hook,
                         .on_worker_sleep = on_sleep,
                         .on_worker_wake = on_wakeup};
        weft_config c;
        weft_config_init(&c);
        c.workers = workers;
        c.tracer = &t;
        ids id = {0};
        run_main_cfg(&c, traced_main, &id);
        pthread_mutex_lock(&tr.mu);
        check_life(find(&tr, id.main), 0, "sleep");
        check_life(find(&tr, id.sleeper), id.main, "sleep");
        check_life(find(&tr, id.yielder), id.main, "yield");
        check_life(find(&tr, id.receiver), id.main, "channel receive");
        cr_assert_geq(find(&tr, id.yielder)->parks, 3);
        cr_assert_geq(find(&tr, id.receiver)->wakes, 1);
        cr_assert_geq(find(&tr, id.sleeper)->wakes, 1);
        cr_assert_geq(tr.sleeps, 1, "a worker slept during the main task's sleep");
        cr_assert_leq(tr.wakeups, tr.sleeps);
        cr_assert_geq(tr.wakeups, tr.sleeps - (int)workers, "each sleep but the last ended");
        pthread_mutex_unlock(&tr.mu);
    }
}

/* A stackless task: spawned on a promise's future, polled (pending: it parks), woken by the
 * promise, polled again (ready). */
typedef struct stackless_scene {
    ids id;
    trace *tr;
    bool result_came;
} stackless_scene;

static int parks_of(trace *tr, uint64_t task)
{
    pthread_mutex_lock(&tr->mu);
    int n = find(tr, task)->parks;
    pthread_mutex_unlock(&tr->mu);
    return n;
}

static void *stackless_main(void *arg)
{
    stackless_scene *sc = arg;
    sc->id.main = weft_task_id(weft_self());
    weft_promise *p;
    if (weft_promise_create(&p) < 0)
        return NULL;
    weft_promise_retain(p); /* ours, to resolve it: the task owns (and drops) the first */
    weft_task *t;
    if (weft_spawn_future(&t, weft_promise_future(p), NULL) == 0) {
        sc->id.receiver = weft_task_id(t);
        while (parks_of(sc->tr, sc->id.receiver) == 0) /* its first poll found it pending */
            weft_sleep(WEFT_MSEC);
        weft_promise_resolve(p, (void *)3);
        void *res = NULL;
        sc->result_came = weft_join(t, &res, WEFT_FOREVER) == 0 && res == (void *)3;
    }
    weft_promise_release(p);
    return NULL;
}

/* A future task's polls are its resumes (on_resume is Tokio's before-poll), and a poll that
 * leaves it pending its park on the future: it had a spawn, a wake and an exit, and not one
 * resume or park. */
Test(trace, a_stackless_task_resumes_at_each_poll_and_parks_on_its_future, .timeout = 30)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        trace tr = {.mu = PTHREAD_MUTEX_INITIALIZER};
        weft_tracer t = {.arg = &tr,
                         .on_spawn = on_spawn,
                         .on_resume = on_resume,
                         .on_park = on_park,
                         .on_wake = on_wake,
                         .on_exit = on_exit_hook};
        weft_config c;
        weft_config_init(&c);
        c.workers = workers;
        c.tracer = &t;
        stackless_scene sc = {.tr = &tr};
        run_main_cfg(&c, stackless_main, &sc);
        cr_assert(sc.result_came, "the future task's result");
        pthread_mutex_lock(&tr.mu);
        const life *l = find(&tr, sc.id.receiver);
        check_life(l, sc.id.main, "future");
        /* Woken while its first poll ran, it is polled again all the same. */
        cr_assert_eq(l->resumes, 2, "two polls: %d resumes", l->resumes);
        cr_assert_eq(l->parks, 1);
        pthread_mutex_unlock(&tr.mu);
    }
}

static void *nothing(void *arg)
{
    return arg;
}

Test(trace, a_tracer_of_a_later_version_is_refused)
{
    weft_tracer t = {.on_resume = on_resume};
    t.reserved_[2] = (void *)1;
    weft_config c;
    weft_config_init(&c);
    c.tracer = &t;
    cr_assert_eq(weft_run(&c, nothing, NULL, NULL), -EINVAL);
    t.reserved_[2] = NULL;
    trace tr = {.mu = PTHREAD_MUTEX_INITIALIZER};
    t.arg = &tr;
    cr_assert_eq(weft_run(&c, nothing, NULL, NULL), 0);
    cr_assert_eq(tr.n, 1, "the main task resumed, and only it");
    cr_assert_eq(tr.tasks[0].resumes, 1);
}

/* ---- Hooks that read the metrics ---- */

/* What the hooks below read: every hook reads the metrics, as weft.h allows, from the
 * worker's thread (weft_stats_get) and through a runtime handle (the sum over the workers
 * and the pool, and the Prometheus text). */
typedef struct reading {
    weft_runtime *_Atomic rt; /* the handle, once main has one; released after the run */
    _Atomic int nstats, nsums, ntexts, nfailed;
} reading;

static void read_metrics(reading *rd)
{
    weft_stats s;
    if (weft_stats_get(&s) == 0)
        atomic_fetch_add(&rd->nstats, 1);
    weft_runtime *rt = atomic_load(&rd->rt);
    if (!rt)
        return;
    int r = weft_runtime_stats(rt, -1, &s, sizeof s);
    if (r == 0)
        atomic_fetch_add(&rd->nsums, 1);
    else if (r != -ESHUTDOWN) /* the handle outlives the runtime: then -ESHUTDOWN */
        atomic_fetch_add(&rd->nfailed, 1);
    char text[64];
    r = weft_metrics_text(rt, text, sizeof text);
    if (r > 0)
        atomic_fetch_add(&rd->ntexts, 1);
    else if (r != -ESHUTDOWN)
        atomic_fetch_add(&rd->nfailed, 1);
}

static void read_on_park(void *arg, uint64_t task, unsigned worker, const char *wait)
{
    (void)task, (void)worker, (void)wait;
    read_metrics(arg);
}

static void read_on_wake(void *arg, uint64_t task, unsigned worker)
{
    (void)task, (void)worker;
    read_metrics(arg);
}

static void *pool_job(void *arg)
{
    return arg;
}

static void *parked_for_good(void *arg)
{
    (void)arg;
    weft_sleep(3600 * WEFT_SEC); /* until the shutdown cancels it */
    return NULL;
}

static void *reading_main(void *arg)
{
    reading *rd = arg;
    atomic_store(&rd->rt, weft_runtime_current());
    void *res = NULL;
    /* The task parks with the pool's mutex held (its park lets go of it), so on_park runs
     * under it. */
    int r = weft_blocking(pool_job, (void *)7, &res, WEFT_FOREVER);
    /* Woken under the runtime's lock by the shutdown's cancel: on_wake runs under it. */
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    int s = weft_spawn(NULL, parked_for_good, NULL, &o);
    weft_sleep(WEFT_MSEC); /* it parks */
    return (void *)(intptr_t)(r == 0 && res == (void *)7 && s == 0);
}

/* The hooks may call the metrics readers (weft.h). They took the pool's mutex and the
 * runtime's lock for the pool's figures, and a hook can run with either held by its own
 * thread: the worker hung for good in weft_blocking's park, and again at the shutdown. */
Test(trace, hooks_that_read_the_metrics_under_weft_own_locks, .timeout = 30)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        reading rd = {0};
        weft_tracer t = {.arg = &rd, .on_park = read_on_park, .on_wake = read_on_wake};
        weft_config c;
        weft_config_init(&c);
        c.workers = workers;
        c.tracer = &t;
        void *ok = run_main_cfg(&c, reading_main, &rd);
        weft_runtime_release(atomic_load(&rd.rt));
        cr_assert_eq((intptr_t)ok, 1, "the pool job or the spawn failed");
        cr_assert_gt(atomic_load(&rd.nstats), 0);
        cr_assert_gt(atomic_load(&rd.nsums), 0);
        cr_assert_gt(atomic_load(&rd.ntexts), 0);
        cr_assert_eq(atomic_load(&rd.nfailed), 0);
    }
}
