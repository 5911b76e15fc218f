/* Set and sorted-set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP (algebra
 * and SMOVE: cmd_setops.c; SRANDMEMBER: cmd_random.c), and ZADD (NX XX GT LT CH INCR) ZINCRBY
 * ZSCORE ZMSCORE ZCARD ZREM ZPOPMIN ZPOPMAX (ranges and ranks: cmd_zrange.c; algebra:
 * cmd_zsetops.c). A set
 * is a dict of kv_field records without values; a sorted set is a zset.h skip list. Replies,
 * errors and their order are Redis 7.0's (the RESP3 forms included: sets, doubles, pairs). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"
#include "zset.h"

/* cmd.h */
kv_entry *get_typed(kv_ctx *c, int type, int create, int *wrong)
{
    kv_entry *e =
        create ? db_lookup(c->db, c->argv[1], c->argl[1]) : db_find(c->db, c->argv[1], c->argl[1]);
    *wrong = 0;
    if (e && e->type != type) {
        *wrong = 1;
        reply_wrongtype(c);
        return NULL;
    }
    if (!e && create) {
        e = db_create(c->db, c->argv[1], c->argl[1], type);
        if (!e) {
            *wrong = 1;
            reply_error(c->out, "ERR out of memory");
        }
    }
    return e;
}

/* A count argument as Redis's getPositiveLongFromObjectOrReply: an integer >= 0. */
static int arg_count(kv_ctx *c, int i, long long *n)
{
    if (resp_strtoll(c->argv[i], c->argl[i], n) < 0 || *n < 0) {
        reply_error(c->out, ERR_POSITIVE);
        return -1;
    }
    return 0;
}

/* ---- Sets ---- */

int set_put(dict *d, const char *m, size_t mlen)
{
    uint64_t h = kv_hash(m, mlen);
    if (dict_find(d, m, mlen, h))
        return 0;
    kv_field *f = kv_malloc(sizeof *f + mlen + 1);
    if (!f)
        return -1;
    memcpy(f->name, m, mlen);
    f->name[mlen] = 0;
    f->node.key = f->name;
    f->node.klen = mlen;
    f->node.hash = h;
    f->val = NULL;
    dict_add(d, &f->node);
    return 1;
}

int set_add(kv_entry *e, const char *m, size_t mlen)
{
    return set_put(e->v.set, m, mlen);
}

static void set_remove(kv_entry *e, kv_field *f)
{
    dict_remove(e->v.set, &f->node);
    kv_free(f);
}

void cmd_sadd(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 1, &wrong);
    if (!e)
        return;
    long long added = 0;
    for (int i = 2; i < c->argc; i++) {
        int r = set_add(e, c->argv[i], c->argl[i]);
        if (r < 0) {
            db_delete_if_empty(c->db, e);
            reply_error(c->out, "ERR out of memory");
            return;
        }
        added += r;
    }
    reply_int(c->out, added);
}

void cmd_srem(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (wrong)
        return;
    long long n = 0;
    for (int i = 2; e && i < c->argc; i++) {
        kv_field *f = (kv_field *)dict_find(e->v.set, c->argv[i], c->argl[i],
                                            kv_hash(c->argv[i], c->argl[i]));
        if (f) {
            set_remove(e, f);
            n++;
        }
    }
    if (e)
        db_delete_if_empty(c->db, e);
    reply_int(c->out, n);
}

static void add_member(dnode *n, void *arg)
{
    reply_bulk(arg, n->key, n->klen);
}

void cmd_smembers(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (wrong)
        return;
    reply_set(c->out, e ? (long long)e->v.set->size : 0);
    size_t cur = 0;
    if (e)
        do
            cur = dict_scan(e->v.set, cur, add_member, c->out);
        while (cur);
}

void cmd_sismember(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (wrong)
        return;
    reply_int(c->out,
              e && dict_find(e->v.set, c->argv[2], c->argl[2], kv_hash(c->argv[2], c->argl[2])));
}

void cmd_smismember(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (wrong)
        return;
    reply_array(c->out, c->argc - 2);
    for (int i = 2; i < c->argc; i++)
        reply_int(c->out, e && dict_find(e->v.set, c->argv[i], c->argl[i],
                                         kv_hash(c->argv[i], c->argl[i])));
}

void cmd_scard(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (!wrong)
        reply_int(c->out, e ? (long long)e->v.set->size : 0);
}

/* SPOP key [count]: random members out. The AOF logs what was popped as SREM (aof.c). */
void cmd_spop(kv_ctx *c)
{
    if (c->argc > 3) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    long long count = -1;
    if (c->argc == 3 && arg_count(c, 2, &count) < 0)
        return;
    int wrong;
    kv_entry *e = get_typed(c, KV_SET, 0, &wrong);
    if (wrong)
        return;
    if (count < 0) { /* one member, as a bulk */
        if (!e) {
            reply_null(c->out);
            return;
        }
        kv_field *f = (kv_field *)dict_random(e->v.set, &c->db->rng);
        reply_bulk(c->out, f->name, f->node.klen);
        set_remove(e, f);
        db_delete_if_empty(c->db, e);
        return;
    }
    long long n = e ? (long long)e->v.set->size : 0;
    if (count < n)
        n = count;
    reply_set(c->out, n);
    for (long long i = 0; i < n; i++) {
        kv_field *f = (kv_field *)dict_random(e->v.set, &c->db->rng);
        reply_bulk(c->out, f->name, f->node.klen);
        set_remove(e, f);
    }
    if (e)
        db_delete_if_empty(c->db, e);
}

/* ---- Sorted sets ---- */

/* cmd.h. strtod's syntax has inf and hex too. */
int str_to_d(const char *s, size_t n, double *v)
{
    char buf[256];
    if (n == 0 || n >= sizeof buf || isspace((unsigned char)s[0]))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0; /* strtod reports a range error only through errno: read right here */
    double x = strtod(buf, &end);
    if ((size_t)(end - buf) != n || isnan(x) || (errno == ERANGE && (isinf(x) || x == 0)))
        return -1;
    *v = x;
    return 0;
}

enum { Z_NX = 1, Z_XX = 2, Z_GT = 4, Z_LT = 8, Z_CH = 16, Z_INCR = 32 };

/* Redis's zaddGenericCommand, from argument scoreidx on (ZINCRBY: scoreidx 2, Z_INCR). */
static void zadd_generic(kv_ctx *c, int scoreidx, unsigned flags)
{
    for (; scoreidx < c->argc; scoreidx++) {
        unsigned f = arg_is(c, scoreidx, "nx")     ? Z_NX
                     : arg_is(c, scoreidx, "xx")   ? Z_XX
                     : arg_is(c, scoreidx, "gt")   ? Z_GT
                     : arg_is(c, scoreidx, "lt")   ? Z_LT
                     : arg_is(c, scoreidx, "ch")   ? Z_CH
                     : arg_is(c, scoreidx, "incr") ? Z_INCR
                                                   : 0;
        if (!f)
            break;
        flags |= f;
    }
    int elements = c->argc - scoreidx;
    if (elements % 2 || !elements) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    elements /= 2;
    if ((flags & Z_NX) && (flags & Z_XX)) {
        reply_error(c->out, "ERR XX and NX options at the same time are not compatible");
        return;
    }
    if (((flags & Z_GT) && (flags & Z_NX)) || ((flags & Z_LT) && (flags & Z_NX)) ||
        ((flags & Z_GT) && (flags & Z_LT))) {
        reply_error(c->out, "ERR GT, LT, and/or NX options at the same time are not compatible");
        return;
    }
    if ((flags & Z_INCR) && elements > 1) {
        reply_error(c->out, "ERR INCR option supports a single increment-element pair");
        return;
    }
    double *scores = malloc((size_t)elements * sizeof *scores);
    if (!scores) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    for (int j = 0; j < elements; j++)
        if (str_to_d(c->argv[scoreidx + 2 * j], c->argl[scoreidx + 2 * j], &scores[j]) < 0) {
            reply_error(c->out, ERR_NOTFLOAT);
            free(scores);
            return;
        }
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (wrong) {
        free(scores);
        return;
    }
    long long added = 0, updated = 0, processed = 0;
    double score = 0;
    if (!e && !(flags & Z_XX)) {
        e = db_create(c->db, c->argv[1], c->argl[1], KV_ZSET);
        if (!e) {
            reply_error(c->out, "ERR out of memory");
            free(scores);
            return;
        }
    }
    for (int j = 0; e && j < elements; j++) {
        const char *m = c->argv[scoreidx + 2 * j + 1];
        size_t mlen = c->argl[scoreidx + 2 * j + 1];
        score = scores[j];
        kv_znode *n = zset_find(e->v.zset, m, mlen);
        if (n) {
            if (flags & Z_NX)
                continue;
            if (flags & Z_INCR) {
                score += n->score;
                if (isnan(score)) {
                    reply_error(c->out, "ERR resulting score is not a number (NaN)");
                    db_delete_if_empty(c->db, e);
                    free(scores);
                    return;
                }
            }
            if (((flags & Z_LT) && score >= n->score) || ((flags & Z_GT) && score <= n->score))
                continue;
            processed++;
            if (score != n->score) {
                zset_set(e->v.zset, m, mlen, score, &c->db->rng);
                updated++;
            }
        } else if (!(flags & Z_XX)) {
            if (zset_set(e->v.zset, m, mlen, score, &c->db->rng) < 0) {
                reply_error(c->out, "ERR out of memory");
                db_delete_if_empty(c->db, e);
                free(scores);
                return;
            }
            processed++;
            added++;
        }
    }
    free(scores);
    if (e)
        db_delete_if_empty(c->db, e);
    /* No member added and no score moved: Redis signals no change (a WATCH holds). */
    c->unchanged = !added && !updated;
    if (flags & Z_INCR) {
        if (processed)
            reply_double(c->out, score);
        else
            reply_null(c->out);
    } else {
        reply_int(c->out, (flags & Z_CH) ? added + updated : added);
    }
}

void cmd_zadd(kv_ctx *c)
{
    zadd_generic(c, 2, 0);
}

void cmd_zincrby(kv_ctx *c)
{
    zadd_generic(c, 2, Z_INCR);
}

void cmd_zscore(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (wrong)
        return;
    kv_znode *n = e ? zset_find(e->v.zset, c->argv[2], c->argl[2]) : NULL;
    if (n)
        reply_double(c->out, n->score);
    else
        reply_null(c->out);
}

void cmd_zmscore(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (wrong)
        return;
    reply_array(c->out, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        kv_znode *n = e ? zset_find(e->v.zset, c->argv[i], c->argl[i]) : NULL;
        if (n)
            reply_double(c->out, n->score);
        else
            reply_null(c->out);
    }
}

void cmd_zcard(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (!wrong)
        reply_int(c->out, e ? (long long)e->v.zset->len : 0);
}

void cmd_zrem(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (wrong)
        return;
    long long n = 0;
    for (int i = 2; e && i < c->argc; i++) {
        kv_znode *z = zset_find(e->v.zset, c->argv[i], c->argl[i]);
        if (z) {
            zset_delete(e->v.zset, z);
            n++;
        }
    }
    if (e)
        db_delete_if_empty(c->db, e);
    reply_int(c->out, n);
}

/* A member with its score: flat in RESP2, a pair in RESP3 where `pairs` (Redis's nested
 * arrays: ZPOPMIN with a count; cmd_zrange.c has the ranges' own). */
static void reply_scored(sbuf *b, const kv_znode *n, int pairs)
{
    if (pairs && b->resp3)
        reply_array(b, 2);
    reply_bulk(b, n->node.key, n->node.klen);
    reply_double(b, n->score);
}

static void zpop(kv_ctx *c, int max)
{
    if (c->argc > 3) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    long long count = 1;
    int given = c->argc == 3;
    if (given && arg_count(c, 2, &count) < 0)
        return;
    /* As Redis 7.0: the type is checked before a count of 0 answers the empty array. */
    int wrong;
    kv_entry *e = get_typed(c, KV_ZSET, 0, &wrong);
    if (wrong)
        return;
    if (!e || count == 0) {
        reply_array(c->out, 0);
        return;
    }
    long long n = count < (long long)e->v.zset->len ? count : (long long)e->v.zset->len;
    int nested = given && c->out->resp3;
    reply_array(c->out, nested ? n : n * 2);
    for (long long i = 0; i < n; i++) {
        kv_znode *z = max ? e->v.zset->tail : zset_first(e->v.zset);
        reply_scored(c->out, z, nested);
        zset_delete(e->v.zset, z);
    }
    db_delete_if_empty(c->db, e);
}

void cmd_zpopmin(kv_ctx *c)
{
    zpop(c, 0);
}

void cmd_zpopmax(kv_ctx *c)
{
    zpop(c, 1);
}
