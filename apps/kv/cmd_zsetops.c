/* Sorted-set algebra: ZUNION ZINTER ZDIFF, ZUNIONSTORE ZINTERSTORE ZDIFFSTORE and ZINTERCARD,
 * their parsing and computing (zsetops.h) and the procs for keys on one shard. Sets count as
 * sorted sets whose members all score 1. Replies, errors and their order are Redis 7.0's: the
 * count first, then every source's type, then the options after the keys; a STORE replaces
 * the destination whatever its type, and deletes it for an empty result.
 *
 * Scores follow Redis's arithmetic: a weight times a score that is NaN (0 times an infinity)
 * counts as 0, for every source of a union and for the walked source of an intersection; a SUM
 * of +inf and -inf is 0; MIN and MAX keep the score so far against a NaN. A union and an
 * intersection take their sources smallest first (ties in the order given), which is the
 * order a SUM adds in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zsetops.h"

/* ---- Parsing ---- */

int zop_parse(kv_ctx *c, zop *o, int op, int store, int card)
{
    int at = store ? 2 : 1; /* the count's position */
    *o = (zop){.op = op, .store = store, .card = card, .agg = AGG_SUM, .first = at + 1};
    long long n;
    if (arg_ll(c, at, &n) < 0)
        return -1;
    if (n < 1) {
        reply_errorf(c->out, "ERR at least 1 input key is needed for '%s' command", c->cmd->name);
        return -1;
    }
    if (n > c->argc - o->first) {
        reply_error(c->out, ERR_SYNTAX);
        return -1;
    }
    o->nkeys = (int)n;
    for (int j = o->first + o->nkeys; j < c->argc && !o->err; j++) {
        int left = c->argc - j; /* the option's name included */
        if (op != ZOP_DIFF && !card && left > o->nkeys && arg_is(c, j, "weights")) {
            if (!o->weights && !(o->weights = malloc((size_t)o->nkeys * sizeof *o->weights))) {
                o->err = "ERR out of memory";
                break;
            }
            for (int i = 0; i < o->nkeys && !o->err; i++)
                if (str_to_d(c->argv[j + 1 + i], c->argl[j + 1 + i], &o->weights[i]) < 0)
                    o->err = "ERR weight value is not a float";
            j += o->nkeys;
        } else if (op != ZOP_DIFF && !card && left >= 2 && arg_is(c, j, "aggregate")) {
            j++;
            if (arg_is(c, j, "sum"))
                o->agg = AGG_SUM;
            else if (arg_is(c, j, "min"))
                o->agg = AGG_MIN;
            else if (arg_is(c, j, "max"))
                o->agg = AGG_MAX;
            else
                o->err = ERR_SYNTAX;
        } else if (!store && !card && arg_is(c, j, "withscores")) {
            o->withscores = 1;
        } else if (card && left >= 2 && arg_is(c, j, "limit")) {
            j++;
            if (resp_strtoll(c->argv[j], c->argl[j], &o->limit) < 0 || o->limit < 0)
                o->err = "ERR LIMIT can't be negative";
        } else {
            o->err = ERR_SYNTAX;
        }
    }
    return 0;
}

void zop_free(zop *o)
{
    free(o->weights);
    o->weights = NULL;
}

/* ---- Computing ---- */

static void free_scored(dnode *n, void *arg)
{
    (void)arg;
    kv_free(n);
}

void zscored_clear(dict *d)
{
    dict_clear(d, free_scored, NULL);
}

/* Adds a member not yet in d, its hash given. 0 or -1. */
static int put_scored(dict *d, const char *m, size_t mlen, uint64_t hash, double score)
{
    zscored *s = kv_malloc(sizeof *s + mlen + 1);
    if (!s)
        return -1;
    memcpy(s->name, m, mlen);
    s->name[mlen] = 0;
    s->node = (dnode){NULL, hash, mlen, s->name};
    s->score = score;
    dict_add(d, &s->node);
    return 0;
}

int zscored_add(dict *d, const char *m, size_t mlen, double score)
{
    return put_scored(d, m, mlen, kv_hash(m, mlen), score);
}

static double score_of(const zsrc *s, const dnode *n)
{
    switch (s->kind) {
    case ZSRC_SET:
        return 1.0;
    case ZSRC_ZSET:
        return ((const kv_znode *)n)->score;
    default:
        return ((const zscored *)n)->score;
    }
}

/* The same member in source s, or NULL. Every table hashes members alike (kv_hash). */
static const dnode *find_in(const zsrc *s, const dnode *n)
{
    return s->d ? dict_find(s->d, n->key, n->klen, n->hash) : NULL;
}

static size_t size_of(const zsrc *s)
{
    return s->d ? s->d->size : 0;
}

/* A weight times a score; NaN (0 times an infinity) counts as 0. */
static double weighted(const zsrc *s, const dnode *n)
{
    double v = s->weight * score_of(s, n);
    return isnan(v) ? 0 : v;
}

static void aggregate(double *target, double v, int agg)
{
    if (agg == AGG_SUM) {
        *target += v;
        if (isnan(*target)) /* +inf plus -inf */
            *target = 0;
    } else if (agg == AGG_MIN ? v < *target : v > *target) {
        *target = v;
    }
}

/* Stable, smallest first: the walked source of an intersection is the smallest one. */
static void sort_by_size(zsrc *srcs, int n)
{
    for (int i = 1; i < n; i++) {
        zsrc s = srcs[i];
        int j = i;
        for (; j > 0 && size_of(&srcs[j - 1]) > size_of(&s); j--)
            srcs[j] = srcs[j - 1];
        srcs[j] = s;
    }
}

static int compute_union(const zop *o, const zsrc *srcs, dict *acc)
{
    for (int i = 0; i < o->nkeys; i++) {
        const dict *d = srcs[i].d;
        for (size_t b = 0; d && d->buckets && b <= d->mask; b++)
            for (const dnode *n = d->buckets[b]; n; n = n->next) {
                double v = weighted(&srcs[i], n);
                zscored *a = (zscored *)dict_find(acc, n->key, n->klen, n->hash);
                if (a)
                    aggregate(&a->score, v, o->agg);
                else if (put_scored(acc, n->key, n->klen, n->hash, v) < 0)
                    return -1;
            }
    }
    return 0;
}

/* Walks the smallest source; a member counts if every other source has it. */
static int compute_inter(const zop *o, const zsrc *srcs, dict *acc, long long *count)
{
    for (int i = 0; i < o->nkeys; i++)
        if (!srcs[i].d)
            return 0;
    const dict *d = srcs[0].d;
    for (size_t b = 0; d->buckets && b <= d->mask; b++)
        for (const dnode *n = d->buckets[b]; n; n = n->next) {
            double v = weighted(&srcs[0], n);
            int in_all = 1;
            for (int j = 1; j < o->nkeys && in_all; j++) {
                const dnode *m = find_in(&srcs[j], n);
                if (m) /* not NaN-cleaned: MIN and MAX then keep v, a SUM makes it 0 */
                    aggregate(&v, srcs[j].weight * score_of(&srcs[j], m), o->agg);
                in_all = m != NULL;
            }
            if (!in_all)
                continue;
            if (o->card) {
                if (++*count == o->limit)
                    return 0;
            } else if (put_scored(acc, n->key, n->klen, n->hash, v) < 0) {
                return -1;
            }
        }
    return 0;
}

/* The first source's members that no other has, with their own scores (no weights). */
static int compute_diff(const zop *o, const zsrc *srcs, dict *acc)
{
    const dict *d = srcs[0].d;
    for (size_t b = 0; d && d->buckets && b <= d->mask; b++)
        for (const dnode *n = d->buckets[b]; n; n = n->next) {
            int elsewhere = 0;
            for (int j = 1; j < o->nkeys && !elsewhere; j++)
                elsewhere = find_in(&srcs[j], n) != NULL;
            if (!elsewhere && put_scored(acc, n->key, n->klen, n->hash, score_of(&srcs[0], n)) < 0)
                return -1;
        }
    return 0;
}

int zop_compute(const zop *o, zsrc *srcs, dict *acc, long long *count)
{
    for (int i = 0; i < o->nkeys; i++)
        srcs[i].weight = o->weights ? o->weights[i] : 1.0;
    *count = 0;
    if (o->op == ZOP_DIFF)
        return compute_diff(o, srcs, acc);
    sort_by_size(srcs, o->nkeys);
    return o->op == ZOP_UNION ? compute_union(o, srcs, acc) : compute_inter(o, srcs, acc, count);
}

kv_zset *zop_result(const dict *acc, uint64_t *rng)
{
    kv_zset *z = zset_create();
    for (size_t b = 0; z && acc->buckets && b <= acc->mask; b++)
        for (const dnode *n = acc->buckets[b]; n; n = n->next)
            if (zset_set(z, n->key, n->klen, ((const zscored *)n)->score, rng) < 0) {
                zset_free(z);
                return NULL;
            }
    return z;
}

void zstore_here(kv_ctx *c, const char *dst, size_t dlen, kv_zset *z)
{
    long long len = (long long)z->len;
    if (len == 0) {
        kv_entry *old = db_lookup(c->db, dst, dlen);
        if (old)
            db_delete(c->db, old);
        zset_free(z);
        reply_int(c->out, 0);
        return;
    }
    kv_entry *e = db_create(c->db, dst, dlen, KV_ZSET);
    if (!e) {
        zset_free(z);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    zset_free(e->v.zset); /* db_create's empty one */
    e->v.zset = z;
    reply_int(c->out, len);
}

/* ---- With every key on this shard ---- */

/* The value of key argv[i] as a source: 0, or -1 with WRONGTYPE replied. */
static int source_here(kv_ctx *c, int i, zsrc *s)
{
    kv_entry *e = db_find(c->db, c->argv[i], c->argl[i]);
    *s = (zsrc){NULL, ZSRC_SET, 1.0};
    if (e && e->type == KV_SET)
        s->d = e->v.set;
    else if (e && e->type == KV_ZSET)
        *s = (zsrc){&e->v.zset->members, ZSRC_ZSET, 1.0};
    else if (e) {
        reply_wrongtype(c);
        return -1;
    }
    return 0;
}

static void op_here(kv_ctx *c, int op, int store, int card)
{
    zop o;
    if (zop_parse(c, &o, op, store, card) < 0)
        return;
    zsrc *srcs = malloc((size_t)o.nkeys * sizeof *srcs);
    dict acc = {0};
    long long count;
    if (!srcs) {
        reply_error(c->out, "ERR out of memory");
        goto out;
    }
    for (int i = 0; i < o.nkeys; i++)
        if (source_here(c, o.first + i, &srcs[i]) < 0)
            goto out;
    if (o.err) {
        reply_error(c->out, o.err);
        goto out;
    }
    /* The result is built apart from the sources: the destination may be one of them. */
    kv_zset *z = NULL;
    if (zop_compute(&o, srcs, &acc, &count) < 0 || (!card && !(z = zop_result(&acc, &c->db->rng))))
        reply_error(c->out, "ERR out of memory");
    else if (card)
        reply_int(c->out, count);
    else if (store)
        zstore_here(c, c->argv[1], c->argl[1], z);
    else {
        zrange_reply(c, zset_first(z), (long long)z->len, 0, o.withscores);
        zset_free(z);
    }
out:
    zscored_clear(&acc);
    free(srcs);
    zop_free(&o);
}

void cmd_zunion(kv_ctx *c)
{
    op_here(c, ZOP_UNION, 0, 0);
}

void cmd_zinter(kv_ctx *c)
{
    op_here(c, ZOP_INTER, 0, 0);
}

void cmd_zdiff(kv_ctx *c)
{
    op_here(c, ZOP_DIFF, 0, 0);
}

void cmd_zunionstore(kv_ctx *c)
{
    op_here(c, ZOP_UNION, 1, 0);
}

void cmd_zinterstore(kv_ctx *c)
{
    op_here(c, ZOP_INTER, 1, 0);
}

void cmd_zdiffstore(kv_ctx *c)
{
    op_here(c, ZOP_DIFF, 1, 0);
}

void cmd_zintercard(kv_ctx *c)
{
    op_here(c, ZOP_INTER, 0, 1);
}

/* __zfetch key: a source's members for a coordinator on another shard, as the RESP2 array
 * member, score, ... (a set's members score 1; a missing key is empty), or WRONGTYPE. */
void cmd_zfetch(kv_ctx *c)
{
    zsrc s;
    if (source_here(c, 1, &s) < 0)
        return;
    reply_array(c->out, (long long)size_of(&s) * 2);
    for (size_t b = 0; s.d && s.d->buckets && b <= s.d->mask; b++)
        for (const dnode *n = s.d->buckets[b]; n; n = n->next) {
            reply_bulk(c->out, n->key, n->klen);
            reply_double(c->out, score_of(&s, n));
        }
}
