/* A three-stage pipeline (numbers -> squares -> sum) connected by channels and run in a
 * group. The consumer stops early once the sum passes a limit: closing the group cancels
 * the stages that are still running, and each stage's cleanup reports it.
 *
 *   pipeline [--debug-port P]     prints each stage's end and the sum */
#include <stdio.h>
#include <weft.h>

#include "debug_flag.h"

typedef struct stage {
    const char *name;
    weft_chan *in, *out;
} stage;

static void report(void *arg)
{
    stage *s = arg;
    printf("stage %-7s stopped (%s)\n", s->name, weft_canceled() == 1 ? "cancelled" : "done");
}

static void *numbers(void *arg)
{
    stage *s = arg;
    weft_defer(report, s);
    for (long i = 1;; i++)
        if (weft_chan_send(s->out, &i, WEFT_FOREVER) < 0)
            break;
    return NULL;
}

static void *squares(void *arg)
{
    stage *s = arg;
    weft_defer(report, s);
    long v;
    while (weft_chan_recv(s->in, &v, WEFT_FOREVER) == 0) {
        v *= v;
        if (weft_chan_send(s->out, &v, WEFT_FOREVER) < 0)
            break;
    }
    return NULL;
}

static void *main_task(void *arg)
{
    example_debug_serve("pipeline", (int)(intptr_t)arg); /* --debug-port P */
    weft_chan *a, *b;
    weft_chan_create(&a, sizeof(long), 4);
    weft_chan_create(&b, sizeof(long), 4);
    stage s1 = {"numbers", NULL, a}, s2 = {"squares", a, b};
    weft_group *g;
    weft_group_create(&g);
    weft_group_spawn(g, numbers, &s1, NULL);
    weft_group_spawn(g, squares, &s2, NULL);
    long sum = 0, v, n = 0;
    while (sum <= 1000000 && weft_chan_recv(b, &v, WEFT_FOREVER) == 0)
        sum += v, n++;
    printf("sum of the first %ld squares: %ld\n", n, sum);
    weft_group_close(g); /* cancels both stages, waits for them */
    weft_chan_release(a);
    weft_chan_release(b);
    return (void *)(intptr_t)(sum != n * (n + 1) * (2 * n + 1) / 6);
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2 || argc > 1) {
        fprintf(stderr, "usage: pipeline [--debug-port P]\n");
        return 2;
    }
    void *r;
    return weft_run(NULL, main_task, (void *)(intptr_t)debug_port, &r) < 0 || r;
}
