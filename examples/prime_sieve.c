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
    if (o->debug_port >= 0) {
        weft_addr dbg;
        weft_addr_ip(&dbg, "127.0.0.1", o->debug_port);
        int e = weft_debug_serve(&dbg, &dbg);
        if (e < 0)
            fprintf(stderr, "prime_sieve: debug endpoint: %s\n", weft_strerror(e));
        else
            printf("prime_sieve: debug endpoint on http://127.0.0.1:%d/debug/\n",
                   weft_addr_port(&dbg));
    }
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
    options o = {100, -1};
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--debug-port") == 0) {
        char *end;
        long p = strtol(argv[i + 1], &end, 10);
        if (*end || p < 0 || p > 65535) {
            fprintf(stderr, "usage: prime_sieve [--debug-port P] [N]\n");
            return 2;
        }
        o.debug_port = (int)p;
        i += 2;
    }
    if (i < argc && atoi(argv[i]) > 0)
        o.n = atoi(argv[i]);
    return weft_run(NULL, main_task, &o, NULL) < 0;
}
