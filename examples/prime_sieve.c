/* The concurrent prime sieve: a generator task feeds 2, 3, 4, ... into a chain of filter
 * tasks, one per prime found, connected by unbuffered channels; each filter drops the
 * multiples of its prime. Closing the source at the end unwinds the chain.
 *
 *   prime_sieve [--debug-port P] [N]     print the first N primes (default 100)
 *
 * --debug-port P turns on weft's debug endpoint on 127.0.0.1:P (0: a port the kernel picks):
 * with a large N (20000, say) the chain is long enough to watch at
 * http://127.0.0.1:P/debug/, one task per prime, each parked on its channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"
#include "debug_flag.h"

typedef struct filter {
    weft_chan *in, *out;
    int prime;
} filter;

static void *generate(void *arg)
{
    weft_chan *out = arg;
    for (int i = 2;; i++)
        if (weft_chan_send(out, &i, WEFT_FOREVER) < 0)
            break; /* the sieve closed its end */
    return NULL;
}

static void *sieve(void *arg)
{
    filter *f = arg;
    int v;
    while (weft_chan_recv(f->in, &v, WEFT_FOREVER) == 0)
        if (v % f->prime != 0 && weft_chan_send(f->out, &v, WEFT_FOREVER) < 0)
            break;
    weft_chan_close(f->in);  /* upstream's send fails: the chain unwinds */
    weft_chan_close(f->out); /* downstream sees the end */
    return NULL;
}

typedef struct options {
    int n;
    int debug_port; /* -1: no debug endpoint */
} options;

static void *main_task(void *arg)
{
    const options *o = arg;
    int n = o->n;
    example_debug_serve("prime_sieve", o->debug_port);
    weft_group *g;
    weft_group_create(&g);
    weft_chan *ch;
    weft_chan_create(&ch, sizeof(int), 0);
    weft_chan *first = ch; /* fs[i].in are the previous outs; this one is ours to free */
    weft_group_spawn(g, generate, ch, NULL);
    filter *fs = calloc((size_t)n, sizeof *fs);
    long last = 0;
    for (int i = 0; i < n; i++) {
        int prime;
        if (weft_chan_recv(ch, &prime, WEFT_FOREVER) < 0)
            break;
        printf("%d%c", prime, i % 10 == 9 ? '\n' : ' ');
        last = prime;
        fs[i].in = ch;
        fs[i].prime = prime;
        weft_chan_create(&fs[i].out, sizeof(int), 0);
        weft_group_spawn(g, sieve, &fs[i], NULL);
        ch = fs[i].out;
    }
    printf("\nprime number %d is %ld\n", n, last);
    /* Closing the group cancels the whole chain and reaps it. */
    weft_group_close(g);
    weft_chan_release(first);
    for (int i = 0; i < n; i++)
        weft_chan_release(fs[i].out);
    free(fs);
    return NULL;
}

int main(int argc, char **argv)
{
    options o = {100, example_take_debug_port(&argc, argv)};
    long n = o.n;
    /* A bad N ("abc", "0") or an extra argument is refused: it ran the default 100. */
    if (o.debug_port == -2 || argc > 2 ||
        (argc == 2 && example_parse_long(argv[1], 1, 1000000, &n) < 0)) {
        fprintf(stderr, "usage: prime_sieve [--debug-port P] [N]\n");
        return 2;
    }
    o.n = (int)n;
    return weft_run(NULL, main_task, &o, NULL) < 0;
}
