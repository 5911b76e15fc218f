/* A task calls a C library function that blocks its thread (here: a plain blocking read of a
 * pipe that another thread fills later), on one worker, while a ticker task of the
 * same worker keeps time. Done the plain way, the call blocks the worker and the ticker
 * stops; inside weft_block_in_place, the worker goes on on a relief thread while the call
 * blocks this one, and the ticker keeps ticking. The call itself runs on the task's own
 * thread either way (what a library with thread-local state needs).
 *
 *   block_in_place [--debug-port P]
 *
 * It prints how many 10 ms ticks the ticker made during each blocking call (the second one
 * lasts until the ticker has ticked 3 times). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "debug_flag.h"

/* The ticker's count: written by the ticker (whichever thread drives the worker), read by
 * the writer thread and the main task. */
static atomic_int ticks;

static void *ticker(void *arg)
{
    (void)arg;
    while (weft_sleep(10 * WEFT_MSEC) == 0)
        atomic_fetch_add(&ticks, 1);
    return NULL;
}

/* A "library" call that blocks its thread: read(2) on a blocking pipe. */
static void *blocking_read(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return (void *)(intptr_t)read(fd, &c, 1);
}

typedef struct call {
    int fds[2];
    int before;   /* the ticks when the call began */
    int in_place; /* the writer waits for 3 ticks (at most 10 s), else for 200 ms */
} call;

/* The other end of the "library": writes once the call has blocked long enough. */
static void *writer(void *arg)
{
    call *c = arg;
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < (c->in_place ? 1000 : 20); i++) {
        if (c->in_place && atomic_load(&ticks) - c->before >= 3)
            break;
        nanosleep(&ts, NULL);
    }
    return (void *)(intptr_t)write(c->fds[1], "x", 1);
}

/* One blocking call, plainly or inside weft_block_in_place: the ticks it let happen. */
static int one_call(int in_place)
{
    call c = {.in_place = in_place};
    if (pipe(c.fds) != 0)
        return -1;
    c.before = atomic_load(&ticks);
    pthread_t th;
    pthread_create(&th, NULL, writer, &c);
    void *n = NULL;
    if (in_place)
        weft_block_in_place(blocking_read, &c.fds[0], &n);
    else
        n = blocking_read(&c.fds[0]); /* the worker, and the ticker with it, waits */
    int during = atomic_load(&ticks) - c.before;
    pthread_join(th, NULL);
    close(c.fds[0]);
    close(c.fds[1]);
    return (intptr_t)n == 1 ? during : -1;
}

static void *main_task(void *arg)
{
    example_debug_serve("block_in_place", (int)(intptr_t)arg); /* --debug-port P */
    weft_task *t;
    weft_spawn(&t, ticker, NULL, NULL);
    weft_sleep(25 * WEFT_MSEC); /* the ticker runs */
    printf("plain blocking call (200 ms): the ticker ticked %d times\n", one_call(0));
    printf("inside weft_block_in_place: the ticker ticked %d times\n", one_call(1));
    weft_cancel(t);
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2 || argc > 1) {
        fprintf(stderr, "usage: block_in_place [--debug-port P]\n");
        return 2;
    }
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    cfg.backend = WEFT_BACKEND_EPOLL; /* on io_uring fn would run on the pool instead */
    cfg.stall_ms = -1;                /* the plain call stalls the worker on purpose */
    return weft_run(&cfg, main_task, (void *)(intptr_t)debug_port, NULL) == 0 ? 0 : 1;
}
