/* A stress test of reading wait records across threads, run under ThreadSanitizer (a plain
 * program: Criterion cannot start under TSan). A task parks and wakes on a channel thousands
 * of times while another thread snapshots its wait record; every snapshot that succeeds must
 * describe that park (the kind, the channel, no deadline), and TSan must see no race.
 * Prints "N passed, N failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <weft.h>

#include "scheduler.h"
#include "task.h"

enum { ROUNDS = 5000 };

static weft_task *pinger_task;
static weft_chan *chan;
static atomic_int stop;
static long nseen, nbad;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int kind;
        const void *what;
        int64_t deadline, since;
        if (weft__task_wait_snapshot(pinger_task, &kind, &what, &deadline, &since) == 0) {
            nseen++;
            if (kind != WEFT__WAIT_CHAN_RECV || what != (const void *)chan ||
                deadline != WEFT_FOREVER)
                nbad++;
        }
    }
    return NULL;
}

static void *pinger(void *arg)
{
    (void)arg;
    long v;
    for (int i = 0; i < ROUNDS; i++)
        if (weft_chan_recv(chan, &v, WEFT_FOREVER) < 0)
            return (void *)1;
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    if (weft_chan_create(&chan, sizeof(long), 0) < 0)
        return (void *)1;
    weft_spawn(&pinger_task, pinger, NULL, NULL);
    weft_yield();
    pthread_t th;
    pthread_create(&th, NULL, reader, NULL);
    long v = 1;
    for (int i = 0; i < ROUNDS; i++) {
        weft_chan_send(chan, &v, WEFT_FOREVER);
        if (i % 64 == 0)
            weft_sleep(10 * WEFT_USEC); /* let the reader catch the pinger parked */
    }
    void *r;
    weft_join(pinger_task, &r, WEFT_FOREVER);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    weft_chan_release(chan);
    return r;
}

int main(void)
{
    void *r = (void *)1;
    int rc = weft_run(NULL, main_task, NULL, &r);
    int passed = 0, failed = 0;
    if (rc == 0 && r == NULL)
        passed++;
    else
        failed++, fprintf(stderr, "run: %s, result %p\n", weft_strerror(rc), r);
    if (nbad == 0)
        passed++;
    else
        failed++, fprintf(stderr, "%ld of %ld snapshots were inconsistent\n", nbad, nseen);
    printf("%d passed, %d failed (%ld snapshots of a parked task)\n", passed, failed, nseen);
    return failed ? 1 : 0;
}
