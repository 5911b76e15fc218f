/* Select: wait on two channels with a deadline, then poll them with a default case.
 *
 *   select [--debug-port P]       prints what each select got */
#include <stdio.h>
#include <weft.h>

#include "debug_flag.h"

static void *ticker(void *arg)
{
    weft_chan *c = arg;
    for (int i = 1; i <= 3; i++) {
        weft_sleep(10 * WEFT_MSEC);
        if (weft_chan_send(c, &i, WEFT_FOREVER) < 0)
            break;
    }
    return NULL;
}

static void *main_task(void *arg)
{
    example_debug_serve("select", (int)(intptr_t)arg); /* --debug-port P */
    weft_chan *fast, *slow;
    weft_chan_create(&fast, sizeof(int), 0);
    weft_chan_create(&slow, sizeof(int), 0);
    weft_task *t;
    weft_spawn(&t, ticker, fast, NULL);
    int a, b, got = 0;
    for (int round = 0; round < 5; round++) {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = fast, .elem = &a, .result = 0},
                          {.op = WEFT_CASE_RECV, .chan = slow, .elem = &b, .result = 0}};
        int r = weft_select(cs, 2, weft_deadline_in(25 * WEFT_MSEC));
        if (r == 0)
            printf("round %d: fast sent %d\n", round, a), got++;
        else if (r == 1)
            printf("round %d: slow sent %d\n", round, b);
        else
            printf("round %d: %s after 25 ms\n", round, weft_strerror(r));
    }
    /* Non-blocking: a default case is taken when nothing is ready. */
    weft_case poll[] = {{.op = WEFT_CASE_RECV, .chan = slow, .elem = &b, .result = 0},
                        {.op = WEFT_CASE_DEFAULT, .chan = NULL, .elem = NULL, .result = 0}};
    printf("poll: %s\n",
           weft_select(poll, 2, WEFT_FOREVER) == 1 ? "default (nothing ready)" : "slow was ready");
    weft_join(t, NULL, WEFT_FOREVER);
    weft_chan_release(fast);
    weft_chan_release(slow);
    return (void *)(intptr_t)(got != 3);
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2 || argc > 1) {
        fprintf(stderr, "usage: select [--debug-port P]\n");
        return 2;
    }
    void *r;
    return weft_run(NULL, main_task, (void *)(intptr_t)debug_port, &r) < 0 || r;
}
