/* The main demo (`make run`): coroutines that sleep and yield, a timer future awaited with a
 * deadline, a promise resolved by another task, a stackless task, and a cancelled sleeper,
 * each line printed with the time since start so the ordering is visible.
 *
 *   demo [--debug-port P]         (build/rel/examples/demo, which `make run` builds and runs) */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

#include "debug_flag.h"

static int64_t t0;

static void say(const char *who, const char *what)
{
    printf("%7.1f ms  %-10s %s\n", (double)(weft_now() - t0) / WEFT_MSEC, who, what);
}

static void *sleeper(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg;
    char buf[64];
    snprintf(buf, sizeof buf, "sleeps %lld ms", (long long)ms);
    say(weft_task_name(weft_self()), buf);
    weft_sleep(ms * WEFT_MSEC);
    say(weft_task_name(weft_self()), "woke up");
    return (void *)(intptr_t)(ms * 10);
}

static void *resolver(void *arg)
{
    weft_sleep(30 * WEFT_MSEC);
    say("resolver", "resolves the promise with 42");
    weft_promise_resolve(arg, (void *)(intptr_t)42);
    return NULL;
}

static void *stubborn(void *arg)
{
    (void)arg;
    say("stubborn", "sleeps for an hour");
    int r = weft_sleep(3600 * WEFT_SEC);
    say("stubborn", r == -ECANCELED ? "was cancelled" : "woke");
    return NULL;
}

static void *main_task(void *arg)
{
    example_debug_serve("demo", (int)(intptr_t)arg); /* --debug-port P */
    t0 = weft_now();
    weft_task *a, *b, *c;
    weft_spawn(&a, sleeper, (void *)(intptr_t)20, &(weft_spawn_opts){.name = "sleeper-20"});
    weft_spawn(&b, sleeper, (void *)(intptr_t)10, &(weft_spawn_opts){.name = "sleeper-10"});
    weft_spawn(&c, stubborn, NULL, &(weft_spawn_opts){.name = "stubborn"});

    /* A stackless task: a timer future driven by the scheduler, with no stack of its own
     * (about 270 bytes; the task owns the future and drops it when it finishes). */
    weft_future *sf;
    weft_task *s;
    weft_timer_future(&sf, weft_deadline_in(15 * WEFT_MSEC));
    weft_spawn_future(&s, sf, &(weft_spawn_opts){.name = "stackless"});

    /* A timer future, awaited with a deadline that passes first, then without. */
    weft_future *tf;
    weft_timer_future(&tf, weft_deadline_in(50 * WEFT_MSEC));
    int r = weft_await(tf, NULL, weft_deadline_in(5 * WEFT_MSEC));
    say("main", r == -ETIMEDOUT ? "timer future: 5 ms deadline passed first" : "?");

    weft_promise *p;
    weft_promise_create(&p);
    weft_spawn(NULL, resolver, p, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    void *v;
    weft_await(weft_promise_future(p), &v, WEFT_FOREVER);
    printf("%7.1f ms  %-10s promise gave %ld\n", (double)(weft_now() - t0) / WEFT_MSEC, "main",
           (long)(intptr_t)v);
    weft_promise_release(p);

    weft_join(s, NULL, WEFT_FOREVER);
    say("main", "stackless task (a 15 ms timer, no stack) joined");

    weft_await(tf, NULL, WEFT_FOREVER);
    say("main", "timer future (50 ms) completed");
    weft_future_destroy(tf);

    void *ra, *rb;
    weft_join(a, &ra, WEFT_FOREVER);
    weft_join(b, &rb, WEFT_FOREVER);
    printf("%7.1f ms  %-10s joined: %ld and %ld\n", (double)(weft_now() - t0) / WEFT_MSEC, "main",
           (long)(intptr_t)ra, (long)(intptr_t)rb);

    weft_cancel(c);
    void *rc;
    weft_join(c, &rc, WEFT_FOREVER);
    say("main", rc == WEFT_CANCELED ? "stubborn joined: WEFT_CANCELED" : "stubborn joined");

    weft_stats st;
    weft_stats_get(&st);
    printf("stats: %llu tasks spawned, %llu switches, %llu ticks, %llu reactor polls, "
           "%llu system calls\n",
           (unsigned long long)st.nspawned, (unsigned long long)st.nswitches,
           (unsigned long long)st.nticks, (unsigned long long)st.npolls,
           (unsigned long long)st.nsyscalls);
    return (void *)0;
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2 || argc > 1) {
        fprintf(stderr, "usage: demo [--debug-port P]\n");
        return 2;
    }
    void *result;
    int r = weft_run(NULL, main_task, (void *)(intptr_t)debug_port, &result);
    if (r < 0) {
        fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
