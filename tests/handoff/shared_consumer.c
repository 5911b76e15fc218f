/* The involuntary hand-off in a program linked against the shared library, where weft's code
 * is told apart as libweft.so's own executable segment (src/handoff.c), not by the static
 * library's markers. A spinner waits, calling no weft function, for a flag only another task
 * of its worker sets: it sees it only if the worker was handed over. Bounded at 10 s, so a
 * missing hand-off fails instead of hanging. Exit status 0 on success. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <weft.h>

static atomic_int flag;
static int spun;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *spinner(void *arg)
{
    (void)arg;
    long long end = now_ns() + 10 * 1000000000LL;
    while (!atomic_load(&flag))
        if (now_ns() > end)
            return NULL;
    spun = 1;
    return NULL;
}

static void *setter(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *a, *b;
    if (weft_spawn(&a, spinner, NULL, NULL) || weft_spawn(&b, setter, NULL, NULL))
        return (void *)1;
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.mode = WEFT_MODE_STEALING;
    c.backend = WEFT_BACKEND_EPOLL;
    c.handoff_us = 1000;
    void *r = (void *)1;
    if (weft_run(&c, main_task, NULL, &r) != 0 || r != NULL)
        return 2;
    if (!spun) {
        fprintf(stderr, "handoff_shared: the spinner's worker was never handed over\n");
        return 1;
    }
    return 0;
}
