/* The concurrent prime sieve: a generator task feeds 2, 3, 4, ... into a chain of filter
 * tasks, one per prime found, connected by unbuffered channels; each filter drops the
 * multiples of its prime. Closing the source at the end unwinds the chain.
 *
 *   prime_sieve [N]     print the first N primes (default 100) */
#include <stdio.h>
#include <stdlib.h>
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

static void *main_task(void *arg)
{
    int n = (int)(intptr_t)arg;
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
    int n = argc > 1 ? atoi(argv[1]) : 100;
    return weft_run(NULL, main_task, (void *)(intptr_t)(n > 0 ? n : 100), NULL) < 0;
}
