/* The intrusive hash table (dict.h). */
#include "dict.h"

#include <stdlib.h>
#include <string.h>

dnode *dict_find(const dict *d, const char *key, size_t klen, uint64_t hash)
{
    if (!d->buckets)
        return NULL;
    for (dnode *n = d->buckets[hash & d->mask]; n; n = n->next)
        if (n->hash == hash && n->klen == klen && memcmp(n->key, key, klen) == 0)
            return n;
    return NULL;
}

static int grow(dict *d)
{
    size_t nb = d->buckets ? (d->mask + 1) * 2 : 8;
    dnode **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    if (d->buckets) {
        for (size_t i = 0; i <= d->mask; i++) {
            dnode *n = d->buckets[i];
            while (n) {
                dnode *next = n->next;
                size_t k = n->hash & (nb - 1);
                n->next = b[k];
                b[k] = n;
                n = next;
            }
        }
        free(d->buckets);
    }
    d->buckets = b;
    d->mask = nb - 1;
    return 0;
}

int dict_add(dict *d, dnode *n)
{
    int r = 0;
    if (!d->buckets || d->size >= d->mask + 1)
        r = grow(d);
    if (!d->buckets)
        return -1;
    dnode **slot = &d->buckets[n->hash & d->mask];
    n->next = *slot;
    *slot = n;
    d->size++;
    return r;
}

void dict_remove(dict *d, dnode *n)
{
    dnode **p = &d->buckets[n->hash & d->mask];
    while (*p != n)
        p = &(*p)->next;
    *p = n->next;
    d->size--;
}

void dict_free(dict *d)
{
    free(d->buckets);
    d->buckets = NULL;
    d->mask = 0;
    d->size = 0;
}

static size_t rev(size_t v)
{
    size_t r = 0;
    for (size_t i = 0; i < sizeof v * 8; i++) {
        r = (r << 1) | (v & 1);
        v >>= 1;
    }
    return r;
}

size_t dict_scan(const dict *d, size_t cursor, dict_scan_fn fn, void *arg)
{
    if (!d->buckets || d->size == 0)
        return 0;
    for (dnode *n = d->buckets[cursor & d->mask]; n; n = n->next)
        fn(n, arg);
    /* Increment the cursor's bits from the top (reverse binary): when the table has doubled
     * meanwhile, the buckets already visited are exactly the ones the smaller table's
     * visited slots split into, so nothing is visited twice and nothing present is missed. */
    cursor |= ~d->mask;
    cursor = rev(cursor);
    cursor++;
    cursor = rev(cursor);
    return cursor;
}

int dict_scan_passed(const dict *d, size_t cursor, uint64_t hash)
{
    return rev((size_t)hash & d->mask) < rev(cursor & d->mask);
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

dnode *dict_random(const dict *d, uint64_t *rng)
{
    if (!d->buckets || d->size == 0)
        return NULL;
    dnode *n;
    do
        n = d->buckets[rnd(rng) & d->mask];
    while (!n);
    size_t len = 0;
    for (dnode *c = n; c; c = c->next)
        len++;
    for (size_t k = rnd(rng) % len; k; k--)
        n = n->next;
    return n;
}

size_t dict_sweep(dict *d, size_t cursor, dict_sweep_fn fn, void *arg)
{
    if (!d->buckets || d->size == 0)
        return 0;
    dnode **p = &d->buckets[cursor & d->mask];
    while (*p) {
        dnode *n = *p, *next = n->next;
        if (fn(n, arg)) { /* n is gone: unlink through p, never through n */
            *p = next;
            d->size--;
        } else {
            p = &n->next;
        }
    }
    cursor |= ~d->mask;
    cursor = rev(cursor);
    cursor++;
    return rev(cursor);
}

void dict_clear(dict *d, void (*fn)(dnode *n, void *arg), void *arg)
{
    if (d->buckets)
        for (size_t i = 0; i <= d->mask; i++) {
            dnode *n = d->buckets[i];
            while (n) {
                dnode *next = n->next;
                fn(n, arg);
                n = next;
            }
        }
    dict_free(d);
}
