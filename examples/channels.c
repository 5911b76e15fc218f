/* Producer/consumer over a buffered channel: three producers, two consumers, and a close
 * that tells the consumers the stream has ended once they have drained it.
 *
 *   channels [--debug-port P]     prints the total the consumers summed, and the expected one */
#include <stdio.h>
#include <weft.h>

#include "debug_flag.h"

enum { NPROD = 3, PER_PROD = 1000, NCONS = 2 };

static weft_chan *work;
static weft_waitgroup producers = WEFT_WAITGROUP_INIT;

static void *producer(void *arg)
{
    int base = (int)(intptr_t)arg * PER_PROD;
    for (int i = 1; i <= PER_PROD; i++) {
        int v = base + i;
        weft_chan_send(work, &v, WEFT_FOREVER);
    }
    weft_waitgroup_done(&producers);
    return NULL;
}

static void *consumer(void *arg)
{
    long sum = 0, n = 0;
    int v;
    while (weft_chan_recv(work, &v, WEFT_FOREVER) == 0) /* -EPIPE: closed and drained */
        sum += v, n++;
    printf("consumer %d: %ld items, sum %ld\n", (int)(intptr_t)arg, n, sum);
    return (void *)sum;
}

static void *main_task(void *arg)
{
    example_debug_serve("channels", (int)(intptr_t)arg); /* --debug-port P */
    weft_chan_create(&work, sizeof(int), 16);
    weft_waitgroup_add(&producers, NPROD);
    for (int i = 0; i < NPROD; i++)
        weft_spawn(NULL, producer, (void *)(intptr_t)i,
                   &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    weft_task *c[NCONS];
    for (int i = 0; i < NCONS; i++)
        weft_spawn(&c[i], consumer, (void *)(intptr_t)i, NULL);
    weft_waitgroup_wait(&producers, WEFT_FOREVER);
    weft_chan_close(work);
    long total = 0;
    for (int i = 0; i < NCONS; i++) {
        void *s;
        weft_join(c[i], &s, WEFT_FOREVER);
        total += (long)s;
    }
    long n = (long)NPROD * PER_PROD;
    printf("total %ld (expected %ld)\n", total, n * (n + 1) / 2);
    weft_chan_release(work);
    return (void *)(intptr_t)(total != n * (n + 1) / 2);
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2 || argc > 1) {
        fprintf(stderr, "usage: channels [--debug-port P]\n");
        return 2;
    }
    void *r;
    return weft_run(NULL, main_task, (void *)(intptr_t)debug_port, &r) < 0 || r;
}
