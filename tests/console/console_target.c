/* The program the console test (tests/console/check.sh) loads /debug/ from: a runtime of two
 * workers with the debug endpoint on, and tasks set up so that each panel and each lint of
 * the console has something known to show:
 *
 *   worker 0: holder (holds `lock`, then sleeps), sleeper (sleeps), rx-a and rx-b (both
 *             receive on `shared_chan`), main (waits for SIGTERM)
 *   worker 1: locker (waits for `lock`, held by holder), orphan-rx (receives on
 *             `lonely_chan`, which no other task waits on or holds), spinner (runs until
 *             the stall detector has caught it, then sleeps), deep (touches most of its
 *             64 KiB stack, then sleeps)
 *
 * So the console must list the stall of spinner, the stack of deep, and the lonely park of
 * orphan-rx (with the test's park_s=1), and no lonely park for locker (its mutex is held) nor
 * for rx-a and rx-b (each has a fellow waiter). Prints "ready PORT" once every task is in
 * place and the lonely wait is over LONELY_MS old; ends cleanly on SIGTERM (or after 120 s).
 * With CONSOLE_TARGET_BUSY set (for docs/console.png) it also keeps its workers busy: ping and
 * pong pass a value between the workers, and spawner starts short tasks, so that the charts
 * and histograms have something to draw. */
#include <alloca.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#define DEEP_STACK   (64 * 1024)
#define DEEP_TOUCH   (52 * 1024) /* about 85% of the stack with what lies above it */
#define LONELY_MS    1300        /* the test asks for park_s=1: some margin above it */
#define SPIN_MAX_SEC 20          /* the stall detector catches a spin in about 10 to 125 ms */

static weft_mutex lock = WEFT_MUTEX_INIT;
static weft_chan *shared_chan, *lonely_chan;
static atomic_int stall_seen; /* set by the log hook when the stall report comes */

static void on_log(void *arg, int level, const char *text)
{
    (void)arg, (void)level;
    /* The report that names the spinner is written once its record holds the stall. */
    if (strstr(text, "stall: task") && strstr(text, "\"spinner\""))
        atomic_store(&stall_seen, 1);
    fputs(text, stderr);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *holder_body(void *arg)
{
    (void)arg;
    int r = weft_mutex_lock(&lock, WEFT_FOREVER);
    if (r < 0)
        return NULL;
    weft_sleep(3600 * WEFT_SEC);
    weft_mutex_unlock(&lock);
    return NULL;
}

static void *locker_body(void *arg)
{
    (void)arg;
    if (weft_mutex_lock(&lock, WEFT_FOREVER) == 0)
        weft_mutex_unlock(&lock);
    return NULL;
}

static void *sleeper_body(void *arg)
{
    (void)arg;
    weft_sleep(3600 * WEFT_SEC);
    return NULL;
}

static void *recv_body(void *arg)
{
    long v;
    weft_chan_recv(arg, &v, WEFT_FOREVER);
    return NULL;
}

/* Runs without a switch until the stall detector has reported it, then sleeps. */
static void *spinner_body(void *arg)
{
    (void)arg;
    int64_t end = mono_ns() + SPIN_MAX_SEC * 1000000000LL;
    while (!atomic_load(&stall_seen) && mono_ns() < end)
        ;
    weft_sleep(3600 * WEFT_SEC);
    return NULL;
}

/* Touches DEEP_TOUCH bytes of its stack, then sleeps with them still resident. */
static void *deep_body(void *arg)
{
    (void)arg;
    volatile char *p = alloca(DEEP_TOUCH);
    memset((char *)p, 1, DEEP_TOUCH);
    weft_sleep(3600 * WEFT_SEC + p[0]);
    return NULL;
}

/* CONSOLE_TARGET_BUSY's load: a value passed to and fro between the workers. */
static weft_chan *ball, *back;

static void *ping_body(void *arg)
{
    (void)arg;
    for (long v = 0;; v++) {
        if (weft_chan_send(ball, &v, WEFT_FOREVER) < 0 ||
            weft_chan_recv(back, &v, WEFT_FOREVER) < 0 || weft_sleep(200 * WEFT_USEC) < 0)
            return NULL;
    }
}

static void *pong_body(void *arg)
{
    (void)arg;
    long v;
    while (weft_chan_recv(ball, &v, WEFT_FOREVER) == 0 &&
           weft_chan_send(back, &v, WEFT_FOREVER) == 0)
        ;
    return NULL;
}

static void *short_body(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        weft_yield();
    return NULL;
}

static void *spawner_body(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.name = "short", .flags = WEFT_SPAWN_DETACHED};
    while (weft_sleep(2 * WEFT_MSEC) == 0)
        for (int i = 0; i < 8; i++)
            weft_spawn(NULL, short_body, NULL, &o);
    return NULL;
}

static int spawn_named(unsigned worker, weft_fn fn, void *arg, const char *name, size_t stack)
{
    weft_spawn_opts o = {.name = name, .flags = WEFT_SPAWN_DETACHED, .stack_size = stack};
    return weft_spawn_on(worker, NULL, fn, arg, &o);
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_addr at;
    int r = weft_debug_serve(NULL, &at);
    if (r < 0) {
        fprintf(stderr, "console_target: weft_debug_serve: %s\n", weft_strerror(r));
        return (void *)1;
    }
    if ((r = weft_chan_create(&shared_chan, sizeof(long), 0)) < 0 ||
        (r = weft_chan_create(&lonely_chan, sizeof(long), 0)) < 0) {
        fprintf(stderr, "console_target: weft_chan_create: %s\n", weft_strerror(r));
        return (void *)1;
    }
    /* holder first, and given time to take the lock, so that locker waits for it. */
    r = spawn_named(0, holder_body, NULL, "holder", 0);
    weft_sleep(20 * WEFT_MSEC);
    if (r == 0)
        r = spawn_named(1, locker_body, NULL, "locker", 0);
    if (r == 0)
        r = spawn_named(0, sleeper_body, NULL, "sleeper", 0);
    if (r == 0)
        r = spawn_named(0, recv_body, shared_chan, "rx-a", 0);
    if (r == 0)
        r = spawn_named(0, recv_body, shared_chan, "rx-b", 0);
    if (r == 0)
        r = spawn_named(1, recv_body, lonely_chan, "orphan-rx", 0);
    if (r == 0)
        r = spawn_named(1, deep_body, NULL, "deep", DEEP_STACK);
    if (r == 0)
        r = spawn_named(1, spinner_body, NULL, "spinner", 0);
    if (r == 0 && getenv("CONSOLE_TARGET_BUSY")) {
        if ((r = weft_chan_create(&ball, sizeof(long), 0)) == 0 &&
            (r = weft_chan_create(&back, sizeof(long), 0)) == 0 &&
            (r = spawn_named(0, ping_body, NULL, "ping", 0)) == 0 &&
            (r = spawn_named(1, pong_body, NULL, "pong", 0)) == 0)
            r = spawn_named(0, spawner_body, NULL, "spawner", 0);
    }
    if (r < 0) {
        fprintf(stderr, "console_target: spawn: %s\n", weft_strerror(r));
        return (void *)1;
    }
    /* The stall first (the detector reports within about 125 ms), then the lonely wait's age:
     * orphan-rx parked when it first ran, just after its spawn. */
    int64_t start = mono_ns();
    while (!atomic_load(&stall_seen) && mono_ns() - start < SPIN_MAX_SEC * 1000000000LL)
        weft_sleep(10 * WEFT_MSEC);
    if (!atomic_load(&stall_seen)) {
        fprintf(stderr, "console_target: the stall detector did not report the spinner\n");
        return (void *)1;
    }
    weft_sleep(LONELY_MS * WEFT_MSEC);
    printf("ready %d\n", weft_addr_port(&at));
    fflush(stdout);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    r = weft_signal_wait(&set, weft_deadline_in(120 * WEFT_SEC));
    /* Everything still parked is cancelled as the main task returns; the channels go then. */
    weft_chan_release(shared_chan);
    weft_chan_release(lonely_chan);
    weft_chan_release(ball);
    weft_chan_release(back);
    return r == SIGTERM ? NULL : (void *)1;
}

int main(void)
{
    /* Blocked in every thread the runtime starts, so that SIGTERM reaches the main task. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.mode = WEFT_MODE_SHARDED;
    cfg.stall_ms = 10;
    cfg.log = on_log;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, NULL, &result);
    if (r < 0) {
        fprintf(stderr, "console_target: weft_run: %s\n", weft_strerror(r));
        return 1;
    }
    return result ? 1 : 0;
}
