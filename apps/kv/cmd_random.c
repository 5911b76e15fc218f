/* Random members: SRANDMEMBER and ZRANDMEMBER, one picker for both (a set's and a sorted
 * set's members are dicts alike). Redis 7.0's cases: no count, one member (null without the
 * key); a negative count, that many picks with repeats; a count of at least the size, every
 * member; below it, that many distinct members. Which members is the shard's generator's
 * choice, not Redis's. Replies and errors, and their order, are Redis's. */
#include <limits.h>
#include <stdlib.h>

#include "cmd.h"
#include "server.h"
#include "zset.h"

/* Negative counts past this many picks are refused: each pick is a reply element, and a
 * count near -2^63 would only exhaust memory (redis-server 7.0.15 tries, and dies). */
#define MAX_PICKS (1ll << 24)

#define ERR_COUNT_RANGE                                                                            \
    "ERR value is out of range, value must between -9223372036854775807 and "                      \
    "9223372036854775807"

/* One pick: the member, and with scores (a sorted set's node) its score; a pair in RESP3. */
static void reply_pick(sbuf *b, const dnode *n, int withscores)
{
    if (withscores && b->resp3)
        reply_array(b, 2);
    reply_bulk(b, n->key, n->klen);
    if (withscores)
        reply_double(b, ((const kv_znode *)n)->score);
}

static void reply_picks_header(sbuf *b, long long n, int withscores)
{
    reply_array(b, withscores && !b->resp3 ? n * 2 : n);
}

/* The count's cases over d's members (count != 0, d not empty). */
static void reply_random(kv_ctx *c, const dict *d, long long count, int withscores)
{
    if (count < 0 || count == 1) {
        long long n = count < 0 ? -count : 1;
        reply_picks_header(c->out, n, withscores);
        for (long long i = 0; i < n; i++)
            reply_pick(c->out, dict_random(d, &c->db->rng), withscores);
        return;
    }
    if ((unsigned long long)count >= d->size) { /* an array in RESP3 too, unlike SMEMBERS */
        reply_picks_header(c->out, (long long)d->size, withscores);
        for (size_t b = 0; b <= d->mask; b++)
            for (const dnode *n = d->buckets[b]; n; n = n->next)
                reply_pick(c->out, n, withscores);
        return;
    }
    /* count distinct members: the first count places of a partial Fisher-Yates shuffle. */
    const dnode **all = malloc(d->size * sizeof *all);
    if (!all) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    size_t k = 0;
    for (size_t b = 0; b <= d->mask; b++)
        for (const dnode *n = d->buckets[b]; n; n = n->next)
            all[k++] = n;
    reply_picks_header(c->out, count, withscores);
    for (size_t i = 0; i < (size_t)count; i++) {
        size_t j = i + (size_t)(db_rand(c->db) % (d->size - i));
        const dnode *t = all[i];
        all[i] = all[j];
        all[j] = t;
        reply_pick(c->out, all[i], withscores);
    }
    free(all);
}

/* The key's members if it has `type` (NULL when missing); -1 with WRONGTYPE replied. */
static int members_of(kv_ctx *c, int type, const dict **d)
{
    int wrong;
    kv_entry *e = get_typed(c, type, 0, &wrong);
    if (wrong)
        return -1;
    *d = !e ? NULL : type == KV_SET ? e->v.set : &e->v.zset->members;
    return 0;
}

/* After the count's checks: the key's type, then the cases. */
static void random_members(kv_ctx *c, int type, int given, long long count, int withscores)
{
    const dict *d;
    if (members_of(c, type, &d) < 0)
        return;
    if (!given) {
        const dnode *n = d ? dict_random(d, &c->db->rng) : NULL;
        if (n)
            reply_bulk(c->out, n->key, n->klen);
        else
            reply_null(c->out);
    } else if (!d || count == 0) {
        reply_array(c->out, 0);
    } else {
        reply_random(c, d, count, withscores);
    }
}

/* SRANDMEMBER key [count]: the argument count first, then the count. */
void cmd_srandmember(kv_ctx *c)
{
    if (c->argc > 3) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    long long count = 1;
    int given = c->argc == 3;
    if (given) {
        if (arg_ll(c, 2, &count) < 0)
            return;
        if (count == LLONG_MIN) {
            reply_error(c->out, ERR_COUNT_RANGE);
            return;
        }
        if (count < -MAX_PICKS) {
            reply_error(c->out, "ERR weft-kv: SRANDMEMBER count is too large");
            return;
        }
    }
    random_members(c, KV_SET, given, count, 0);
}

/* ZRANDMEMBER key [count [WITHSCORES]]: the count first, then the syntax, then WITHSCORES'
 * tighter range (Redis refuses counts past ±2^62 with scores: their reply's length would
 * overflow). */
void cmd_zrandmember(kv_ctx *c)
{
    long long count = 1;
    int given = c->argc >= 3, withscores = 0;
    if (given) {
        if (arg_ll(c, 2, &count) < 0)
            return;
        if (count == LLONG_MIN) {
            reply_error(c->out, ERR_COUNT_RANGE);
            return;
        }
        if (c->argc > 4 || (c->argc == 4 && !arg_is(c, 3, "withscores"))) {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
        withscores = c->argc == 4;
        if (withscores && (count < -LLONG_MAX / 2 || count > LLONG_MAX / 2)) {
            reply_error(c->out, "ERR value is out of range");
            return;
        }
        if (count < -MAX_PICKS) {
            reply_error(c->out, "ERR weft-kv: ZRANDMEMBER count is too large");
            return;
        }
    }
    random_members(c, KV_ZSET, given, count, withscores);
}
