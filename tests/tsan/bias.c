/* A stress test of the channels' biased locks (src/bias_lock.h): a channel that two tasks of
 * one worker made that worker's is then used, at once and mid-stream, by a task of another
 * worker and by a plain thread, whose first acquisitions revoke the bias while the owner's
 * tasks keep using it. Every value must be received exactly once, in each round:
 * - rounds alternate a rendezvous and a buffered channel, and a plain receive and a select;
 * - the intruders start after a number of values that changes from round to round, so the
 *   revocation lands at different points of the owner's sections.
 * Also checks the bias itself: set after the local phase wherever the kernel offers the
 * membarrier command the revocation needs (never under ThreadSanitizer, which does not model
 * it: there this is a plain stress of the shared lock), and gone once the intruders came.
 * Prints one line per check, exits non-zero on any failure. */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <weft.h>

#include "chan.h"
#include "check.h"

#if defined(__SANITIZE_THREAD__)
enum { ROUNDS = 40 };
#else
enum { ROUNDS = 300 };
#endif
/* Per round: the local producer's values, then the other worker's task's, then the thread's. */
enum { NLOCAL = 2000, NREMOTE = 500, NTHREAD = 500, N = NLOCAL + NREMOTE + NTHREAD };
#define BIAS_AFTER "16"

typedef struct round {
    weft_chan *c, *other; /* `other`: the select's second channel, never sent to */
    int index;
    bool use_select;
    _Atomic long received; /* by the local consumer, before the intruders start */
    _Atomic bool go;       /* the intruders may start */
    _Atomic bool thread_done;
    _Atomic unsigned char seen[N];
} round;

static void send_range(round *r, long from, long to)
{
    for (long v = from; v < to; v++) {
        int e = weft_chan_send(r->c, &v, WEFT_FOREVER);
        CHECK(e == 0, "round %d: send %ld: %s", r->index, v, weft_strerror(e));
    }
}

static void take(round *r, long v)
{
    CHECK(v >= 0 && v < N, "round %d: received %ld", r->index, v);
    if (v >= 0 && v < N)
        atomic_fetch_add_explicit(&r->seen[v], 1, memory_order_relaxed);
}

/* Receives until the channel is closed; returns how many values it took. */
static long drain(round *r)
{
    long n = 0;
    for (;;) {
        long v = -1;
        int e;
        if (r->use_select) {
            long junk;
            weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = r->c, .elem = &v},
                               {.op = WEFT_CASE_RECV, .chan = r->other, .elem = &junk}};
            int i = weft_select(cs, 2, WEFT_FOREVER);
            CHECK(i == 0, "round %d: select %d", r->index, i);
            e = i == 0 ? cs[0].result : -EIO;
        } else {
            e = weft_chan_recv(r->c, &v, WEFT_FOREVER);
        }
        if (e == -EPIPE)
            return n;
        CHECK(e == 0, "round %d: recv: %s", r->index, weft_strerror(e));
        if (e != 0)
            return n;
        take(r, v);
        n++;
        atomic_store_explicit(&r->received, n, memory_order_release);
    }
}

static void *local_producer(void *arg)
{
    send_range(arg, 0, NLOCAL);
    return NULL;
}

static void *local_consumer(void *arg)
{
    return (void *)(intptr_t)drain(arg);
}

static void wait_go(round *r, bool task)
{
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        task ? (void)weft_yield() : (void)sched_yield();
}

static void *remote_producer(void *arg)
{
    round *r = arg;
    wait_go(r, true);
    send_range(r, NLOCAL, NLOCAL + NREMOTE);
    return NULL;
}

static void *remote_consumer(void *arg)
{
    round *r = arg;
    wait_go(r, true);
    return (void *)(intptr_t)drain(r);
}

static void *thread_producer(void *arg)
{
    round *r = arg;
    wait_go(r, false);
    send_range(r, NLOCAL + NREMOTE, N);
    atomic_store_explicit(&r->thread_done, true, memory_order_release);
    return NULL;
}

static bool bias_expected(void)
{
#if defined(__SANITIZE_THREAD__)
    return false;
#else
    /* As the runtime decides (src/fence.c): the command offered, and the registration
     * accepted (an emulator may offer one and refuse the other). */
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0U, 0);
    return cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0U, 0) == 0;
#endif
}

static int biased_rounds, expect_bias;

static void one_round(round *r)
{
    int e = weft_chan_create(&r->c, sizeof(long), r->index % 2 ? 4 : 0);
    CHECK(e == 0, "create: %s", weft_strerror(e));
    e = weft_chan_create(&r->other, sizeof(long), 0);
    CHECK(e == 0, "create: %s", weft_strerror(e));
    weft_task *lp, *lc, *rp, *rc;
    CHECK(weft_spawn_on(0, &lc, local_consumer, r, NULL) == 0, "spawn");
    CHECK(weft_spawn_on(0, &lp, local_producer, r, NULL) == 0, "spawn");
    CHECK(weft_spawn_on(1, &rp, remote_producer, r, NULL) == 0, "spawn");
    CHECK(weft_spawn_on(1, &rc, remote_consumer, r, NULL) == 0, "spawn");
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_producer, r) == 0, "pthread_create");

    /* The local phase: enough hand-offs for the bias (two acquisitions a value at least: 600
     * values pass 1,024, the threshold of a build without the test seam, as the cross-test's),
     * then a number that moves the intruders' first acquisitions around the owner's
     * sections. */
    long start = 600 + (r->index * 37) % 900;
    while (atomic_load_explicit(&r->received, memory_order_acquire) < start)
        weft_yield();
    if (weft__chan_bias_owner(r->c) != NULL)
        biased_rounds++;
    atomic_store_explicit(&r->go, true, memory_order_release);

    CHECK(weft_join(lp, NULL, WEFT_FOREVER) == 0, "join");
    CHECK(weft_join(rp, NULL, WEFT_FOREVER) == 0, "join");
    while (!atomic_load_explicit(&r->thread_done, memory_order_acquire))
        weft_sleep(10000); /* not pthread_join at once: the worker's other tasks would stall */
    CHECK(pthread_join(th, NULL) == 0, "pthread_join");
    CHECK(weft_chan_close(r->c) == 0, "close");
    void *n1, *n2;
    CHECK(weft_join(lc, &n1, WEFT_FOREVER) == 0, "join");
    CHECK(weft_join(rc, &n2, WEFT_FOREVER) == 0, "join");
    CHECK((intptr_t)n1 + (intptr_t)n2 == N, "round %d: %ld + %ld values received, not %d", r->index,
          (long)(intptr_t)n1, (long)(intptr_t)n2, N);
    for (long v = 0; v < N; v++)
        CHECK(r->seen[v] == 1, "round %d: value %ld received %d times", r->index, v, r->seen[v]);
    CHECK(weft__chan_bias_owner(r->c) == NULL, "round %d: still biased after the intruders",
          r->index);
    weft_chan_release(r->c);
    weft_chan_release(r->other);
}

static void *main_task(void *arg)
{
    (void)arg;
    round *r = malloc(sizeof *r);
    for (int i = 0; i < ROUNDS; i++) {
        memset(r, 0, sizeof *r);
        r->index = i;
        r->use_select = (i / 2) % 2;
        one_round(r);
    }
    free(r);
    return NULL;
}

/* A lost wake or a broken queue shows as a hang: fail it here rather than at CTest's
 * timeout, with a line that says so. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL bias: no progress in 200 s (a hang)\n";
    (void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
    _exit(1);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(200);
    /* Biased after 16 acquisitions in a row, not 1,024, where the test seam is built in (the
     * local phase then covers a bias and a long biased stretch). */
    setenv("WEFT_TEST_BIAS_AFTER", BIAS_AFTER, 1);
    expect_bias = bias_expected();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.mode = WEFT_MODE_SHARDED;
    int e = weft_run(&cfg, main_task, NULL, NULL);
    CHECK(e == 0, "weft_run: %s", weft_strerror(e));
    /* Every round's local phase is a streak of one worker's acquisitions (the intruders wait
     * for it), so each round is biased where the revocation can be made, and none where not. */
    CHECK(expect_bias ? biased_rounds == ROUNDS : biased_rounds == 0,
          "%d of %d rounds biased (expected %s)", biased_rounds, ROUNDS,
          expect_bias ? "all" : "none");
    printf("bias: %d rounds, %d biased, %s\n", ROUNDS, biased_rounds, failures ? "FAILED" : "ok");
    return failures != 0;
}
