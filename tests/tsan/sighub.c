/* A stress test of signal watches on several workers (sighub.c), run in every build and under
 * ThreadSanitizer: watches of SIGUSR1 on every worker, each called once per arrival. The
 * signal is sent again only once every watch has counted the last one, so each arrival is a
 * separate one (the kernel merges a signal sent while one is pending). Watches are deleted
 * one by one meanwhile, the reader among them, and the rest keep being called.
 * SIGUSR1 is blocked before the runtime starts, so every worker's thread inherits it. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

enum { NWATCH_PER_WORKER = 3, NSIGNALS = 60 };

static atomic_int calls[64];

static void on_signal(weft_watch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events;
    atomic_fetch_add(&calls[(intptr_t)arg], 1);
}

typedef struct adder {
    intptr_t first;
    weft_watch *w[NWATCH_PER_WORKER];
    weft_event added;
} adder;

/* On its worker: adds the watches (a watch is its worker's: deleted there too). */
static void *add_watches(void *arg)
{
    adder *a = arg;
    for (int i = 0; i < NWATCH_PER_WORKER; i++)
        CHECK(weft_watch_add(&a->w[i], SIGUSR1, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0,
                             on_signal, (void *)(a->first + i)) == 0,
              "watch_add");
    weft_event_set(&a->added);
    return NULL;
}

static void *del_watch(void *arg)
{
    CHECK(weft_watch_del(arg) == 0, "watch_del");
    return NULL;
}

/* Yields until every watch in [0, n) not deleted has counted `want`. */
static void wait_counts(const bool *gone, int n, int want)
{
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++)
            all &= gone[i] || atomic_load(&calls[i]) >= want;
        if (all)
            return;
        weft_yield();
    }
}

static void *main_task(void *arg)
{
    (void)arg;
    unsigned nw = weft_worker_count();
    int n = (int)nw * NWATCH_PER_WORKER;
    static adder adders[16];
    static bool gone[64];
    for (int i = 0; i < n; i++) {
        atomic_store(&calls[i], 0);
        gone[i] = false;
    }
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    for (unsigned k = 0; k < nw; k++) {
        adders[k] = (adder){.first = (intptr_t)k * NWATCH_PER_WORKER, .added = WEFT_EVENT_INIT};
        CHECK(weft_spawn_on(k, NULL, add_watches, &adders[k],
                            &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED | WEFT_SPAWN_DETACHED}) ==
                  0,
              "spawn adder");
        weft_event_wait(&adders[k].added, WEFT_FOREVER);
    }
    int deleted = 0;
    for (int s = 1; s <= NSIGNALS; s++) {
        CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
        wait_counts(gone, n, s);
        /* Every few signals one watch goes (its own worker deletes it), the reader too. */
        if (s % 10 == 0 && deleted < n - 1) {
            int i = deleted++;
            unsigned k = (unsigned)i / NWATCH_PER_WORKER;
            weft_task *t;
            CHECK(weft_spawn_on(k, &t, del_watch, adders[k].w[i % NWATCH_PER_WORKER], &pin) == 0,
                  "spawn deleter");
            weft_join(t, NULL, WEFT_FOREVER);
            gone[i] = true;
        }
    }
    for (int i = 0; i < n; i++)
        CHECK(gone[i] || atomic_load(&calls[i]) == NSIGNALS, "watch %d: %d calls of %d", i,
              atomic_load(&calls[i]), NSIGNALS);
    for (int i = deleted; i < n; i++) {
        unsigned k = (unsigned)i / NWATCH_PER_WORKER;
        weft_task *t;
        CHECK(weft_spawn_on(k, &t, del_watch, adders[k].w[i % NWATCH_PER_WORKER], &pin) == 0,
              "spawn deleter");
        weft_join(t, NULL, WEFT_FOREVER);
    }
    printf("signals: %d to %d watches on %u workers, %d deleted on the way\n", NSIGNALS, n, nw,
           deleted);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    unsigned counts[] = {1, 2, 4};
    for (int c = 0; c < 3; c++) {
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = counts[c];
        int r = weft_run(&cfg, main_task, NULL, NULL);
        CHECK(r == 0, "weft_run: %s", weft_strerror(r));
    }
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
