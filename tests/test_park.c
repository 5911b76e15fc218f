/* The park and its wait record: a parked task's record names what it waits on (the kind,
 * the object, the deadline, since when), for every kind of wait; it is gone once the task
 * runs again; and it reads consistently from another thread while the task is parked. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "scheduler.h"
#include "task.h"

typedef struct probe {
    weft_task *t;
    int kind;
    const void *what;
    int64_t deadline;
    int64_t since;
    int rc;
} probe;

static void look(probe *p)
{
    p->rc = weft__task_wait_snapshot(p->t, &p->kind, &p->what, &p->deadline, &p->since);
}

static void *recv_forever(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, WEFT_FOREVER);
}

static void *lock_mutex(void *arg)
{
    int r = weft_mutex_lock(arg, WEFT_FOREVER);
    if (r == 0)
        weft_mutex_unlock(arg);
    return (void *)(intptr_t)r;
}

static void *sleep_long(void *arg)
{
    return (void *)(intptr_t)weft_sleep_until(*(int64_t *)arg);
}

static void *join_it(void *arg)
{
    return (void *)(intptr_t)weft_join(arg, NULL, WEFT_FOREVER);
}

static void *records_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(long), 0), 0);
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    int64_t until = weft_deadline_in(3600 * WEFT_SEC);

    probe pc = {0}, pm = {0}, ps = {0}, pj = {0};
    cr_assert_eq(weft_spawn(&pc.t, recv_forever, c, NULL), 0);
    cr_assert_eq(weft_spawn(&pm.t, lock_mutex, &m, NULL), 0);
    cr_assert_eq(weft_spawn(&ps.t, sleep_long, &until, NULL), 0);
    cr_assert_eq(weft_spawn(&pj.t, join_it, ps.t, NULL), 0);

    /* Not yet run: READY, so no record. */
    look(&pc);
    cr_assert_eq(pc.rc, -EAGAIN);
    int64_t before = weft_now();
    weft_yield(); /* they all run and park */

    look(&pc);
    cr_assert_eq(pc.rc, 0);
    cr_assert_eq(pc.kind, WEFT__WAIT_CHAN_RECV);
    cr_assert_eq(pc.what, (const void *)c);
    cr_assert_eq(pc.deadline, WEFT_FOREVER);
    cr_assert_geq(pc.since, before);

    look(&pm);
    cr_assert_eq(pm.rc, 0);
    cr_assert_eq(pm.kind, WEFT__WAIT_MUTEX);
    cr_assert_eq(pm.what, (const void *)&m);

    look(&ps);
    cr_assert_eq(ps.rc, 0);
    cr_assert_eq(ps.kind, WEFT__WAIT_SLEEP);
    cr_assert_eq(ps.deadline, until);

    look(&pj);
    cr_assert_eq(pj.rc, 0);
    cr_assert_eq(pj.kind, WEFT__WAIT_JOIN);
    cr_assert_eq(pj.what, (const void *)ps.t);

    /* Woken: the record is gone as soon as the task is queued again. */
    long v = 5;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    look(&pc);
    cr_assert_eq(pc.rc, -EAGAIN);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    look(&pm);
    cr_assert_eq(pm.rc, -EAGAIN);

    void *r;
    cr_assert_eq(weft_join(pc.t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0);
    cr_assert_eq(weft_join(pm.t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0);
    weft_cancel(ps.t);
    cr_assert_eq(weft_join(pj.t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0);
    weft_chan_release(c);
    return NULL;
}

Test(park, a_parked_task_says_what_it_waits_on)
{
    run_main(records_main, NULL);
}

/* ---- Read from another thread while tasks park and wake ---------------------------------- */

enum { ROUNDS = 20000 };

typedef struct shared {
    weft_task *pinger;
    weft_chan *c;
    atomic_int stop;
    long nparked_seen; /* snapshots that found the pinger parked */
    long nbad;         /* snapshots whose fields did not belong together */
} shared;

static void *reader_thread(void *arg)
{
    shared *s = arg;
    while (!atomic_load(&s->stop)) {
        int kind;
        const void *what;
        int64_t deadline, since;
        if (weft__task_wait_snapshot(s->pinger, &kind, &what, &deadline, &since) == 0) {
            s->nparked_seen++;
            if (kind != WEFT__WAIT_CHAN_RECV || what != (const void *)s->c ||
                deadline != WEFT_FOREVER)
                s->nbad++;
        }
    }
    return NULL;
}

static void *pinger(void *arg)
{
    shared *s = arg;
    long v;
    for (int i = 0; i < ROUNDS; i++)
        if (weft_chan_recv(s->c, &v, WEFT_FOREVER) < 0)
            return (void *)1;
    return NULL;
}

static void *cross_main(void *arg)
{
    shared *s = arg;
    cr_assert_eq(weft_chan_create(&s->c, sizeof(long), 0), 0);
    cr_assert_eq(weft_spawn(&s->pinger, pinger, s, NULL), 0);
    weft_yield();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reader_thread, s), 0);
    long v = 1;
    for (int i = 0; i < ROUNDS; i++)
        cr_assert_eq(weft_chan_send(s->c, &v, WEFT_FOREVER), 0);
    void *r;
    cr_assert_eq(weft_join(s->pinger, &r, WEFT_FOREVER), 0);
    atomic_store(&s->stop, 1);
    pthread_join(th, NULL);
    cr_assert_null(r);
    weft_chan_release(s->c);
    return NULL;
}

Test(park, the_record_reads_consistently_from_another_thread, .timeout = 60)
{
    static shared s;
    run_main(cross_main, &s);
    cr_assert_eq(s.nbad, 0, "%ld inconsistent snapshots", s.nbad);
}

/* With a million queued tasks every byte of a record is a cache miss they all share: the
 * record stays within three cache lines, 64-byte aligned, and everything a resume, a park
 * and a wake touch lies in its first line (one miss per message on a busy connection). */
Test(park, a_task_record_is_three_lines_and_its_hot_fields_one)
{
    cr_assert_leq(sizeof(struct weft_task), 192, "%zu bytes", sizeof(struct weft_task));
    cr_assert_eq(_Alignof(struct weft_task), 64);
    size_t hot[] = {
        offsetof(struct weft_task, word),       offsetof(struct weft_task, next),
        offsetof(struct weft_task, worker),     offsetof(struct weft_task, ctx),
        offsetof(struct weft_task, wait_what),  offsetof(struct weft_task, wait_deadline),
        offsetof(struct weft_task, wait_since), offsetof(struct weft_task, wait_kind),
        offsetof(struct weft_task, flags),      offsetof(struct weft_task, saved_errno)};
    for (size_t i = 0; i < sizeof hot / sizeof hot[0]; i++)
        cr_assert_lt(hot[i], 64, "hot field %zu at offset %zu", i, hot[i]);
}
