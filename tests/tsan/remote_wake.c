/* A stress test of cross-thread wake-ups, run under ThreadSanitizer (Criterion cannot start
 * under TSan: Snaipe/Criterion#274, so this one is a plain program that prints
 * "N passed, N failed" and exits non-zero on failure).
 *
 * NTASKS tasks each await ROUNDS futures that helper threads complete. The thread may fire
 * before the task parks (the NOTIFIED path) or after (the inbox and eventfd path), so both
 * races are exercised; every future must complete exactly once, and the last round's waker,
 * fired again after its task has finished, must do nothing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

enum { NTASKS = 8, ROUNDS = 300, NTHREADS = 2 };

typedef struct slot {
    weft_future base;
    atomic_int armed; /* 1 while a waker is published and not yet fired */
    atomic_int done;
    weft_waker waker; /* written by the task before `armed` (release), read after (acquire) */
    atomic_int completions;
} slot;

static slot slots[NTASKS];
static atomic_int stop;
static atomic_long fired;

static int slot_poll(weft_future *self, weft_context *cx)
{
    slot *s = (slot *)self;
    if (atomic_load_explicit(&s->done, memory_order_acquire)) {
        atomic_fetch_add(&s->completions, 1);
        weft_future_complete(self, 0, NULL);
        return WEFT_READY;
    }
    if (!atomic_load_explicit(&s->armed, memory_order_acquire)) {
        s->waker = cx->waker;
        atomic_store_explicit(&s->armed, 1, memory_order_release);
    }
    return WEFT_PENDING;
}

static const weft_future_ops slot_ops = {slot_poll, NULL};

static void *helper(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!atomic_load(&stop)) {
        for (int i = id; i < NTASKS; i += NTHREADS) {
            slot *s = &slots[i];
            if (atomic_load_explicit(&s->armed, memory_order_acquire)) {
                weft_waker wk = s->waker;
                atomic_store_explicit(&s->armed, 0, memory_order_relaxed);
                atomic_store_explicit(&s->done, 1, memory_order_release);
                weft_waker_wake(wk);
                atomic_fetch_add(&fired, 1);
            }
        }
    }
    return NULL;
}

static void *awaiter(void *arg)
{
    slot *s = arg;
    for (int r = 0; r < ROUNDS; r++) {
        weft_future_init(&s->base, &slot_ops);
        atomic_store(&s->done, 0);
        int rc = weft_await(&s->base, NULL, WEFT_FOREVER);
        if (rc != 0)
            return (void *)(intptr_t)rc;
        if (r % 7 == 0)
            weft_yield();
    }
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, helper, (void *)(intptr_t)i);
    weft_task *t[NTASKS];
    for (int i = 0; i < NTASKS; i++)
        weft_spawn(&t[i], awaiter, &slots[i], NULL);
    intptr_t bad = 0;
    for (int i = 0; i < NTASKS; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        bad |= (intptr_t)r;
    }
    /* Stale wakers from finished tasks, fired from this thread: nothing happens. */
    for (int i = 0; i < NTASKS; i++)
        weft_waker_wake(slots[i].waker);
    atomic_store(&stop, 1);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    return (void *)bad;
}

int main(void)
{
    void *bad = (void *)1;
    int rc = weft_run(NULL, main_task, NULL, &bad);
    int passed = 0, failed = 0;
    if (rc == 0 && bad == NULL)
        passed++;
    else
        failed++, fprintf(stderr, "run: %s, task result %p\n", weft_strerror(rc), bad);
    for (int i = 0; i < NTASKS; i++) {
        if (atomic_load(&slots[i].completions) == ROUNDS)
            passed++;
        else
            failed++, fprintf(stderr, "task %d completed %d of %d rounds\n", i,
                              atomic_load(&slots[i].completions), ROUNDS);
    }
    if (atomic_load(&fired) != (long)NTASKS * ROUNDS)
        failed++, fprintf(stderr, "fired %ld, expected %d\n", atomic_load(&fired), NTASKS * ROUNDS);
    else
        passed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
