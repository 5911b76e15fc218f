/* chan_pingpong: two tasks pass an integer back and forth over two unbuffered channels,
 * 1,000,000 round trips; ns per round trip. */
#include <weft.h>

#include "bench_common.h"

typedef struct pp {
    weft_chan *ping, *pong;
    long n;
} pp;

static void *ponger(void *arg)
{
    pp *p = arg;
    long v;
    for (long i = 0; i < p->n; i++) {
        weft_chan_recv(p->ping, &v, WEFT_FOREVER);
        v++;
        weft_chan_send(p->pong, &v, WEFT_FOREVER);
    }
    return NULL;
}

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    double v[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        pp p = {NULL, NULL, n};
        weft_chan_create(&p.ping, sizeof(long), 0);
        weft_chan_create(&p.pong, sizeof(long), 0);
        weft_task *t;
        weft_spawn(&t, ponger, &p, NULL);
        long x = 0;
        int64_t t0 = bench_ns();
        for (long i = 0; i < n; i++) {
            weft_chan_send(p.ping, &x, WEFT_FOREVER);
            weft_chan_recv(p.pong, &x, WEFT_FOREVER);
        }
        v[r] = (double)(bench_ns() - t0) / (double)n;
        weft_join(t, NULL, WEFT_FOREVER);
        if (x != n)
            fprintf(stderr, "chan_pingpong: %ld != %ld\n", x, n), exit(1);
        weft_chan_release(p.ping);
        weft_chan_release(p.pong);
    }
    bench_emit("weft", "chan_pingpong", n, bench_median(v, BENCH_REPEATS), "ns/roundtrip", NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    return weft_run(NULL, bench, (void *)(intptr_t)bench_n(argc, argv, 1000000), NULL) ? 1 : 0;
}
