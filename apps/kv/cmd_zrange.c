/* Sorted-set ranges and ranks: ZRANGE (by index, BYSCORE, BYLEX; REV, LIMIT, WITHSCORES) and
 * ZRANGESTORE (the same range stored at a destination, replacing it), the older ZREVRANGE,
 * ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX and ZREVRANGEBYLEX, ZCOUNT, ZLEXCOUNT, ZRANK and
 * ZREVRANK, and the removals ZREMRANGEBYSCORE, ZREMRANGEBYLEX and ZREMRANGEBYRANK. Parsing, checks,
 * errors and their order are Redis 7.0's zrangeGenericCommand's: options first (a LIMIT's integers
 * as they come), then the conflicts, then the range, then the key. A lexicographic range assumes
 * what Redis assumes: members of one score (with several, which members come is unspecified there
 * too). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"
#include "zset.h"
#include "zsetops.h"

enum { BY_AUTO = -1, BY_RANK, BY_SCORE, BY_LEX };

#define ERR_LIMIT_RANK                                                                             \
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
#define ERR_LEX_SCORES  "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
#define ERR_SCORE_RANGE "ERR min or max is not a float"
#define ERR_LEX_RANGE   "ERR min or max not valid string range item"

/* ---- Score ranges (Redis's zrangespec) ---- */

typedef struct score_range {
    double min, max;
    int minex, maxex; /* exclusive ends: "(" */
} score_range;

/* One end as Redis's zslParseRange reads it: "(" for exclusive, then strtod on the rest (its
 * whole syntax: inf, hex, leading blanks; out of range gives ±inf), which must reach the
 * string's end (its first NUL, as in Redis), and no NaN. 0 or -1. */
static int parse_score_end(const char *s, size_t n, double *v, int *ex)
{
    *ex = n > 0 && s[0] == '(';
    if (*ex) {
        s++;
        n--;
    }
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    *v = strtod(buf, &end);
    int ok = *end == '\0' && !isnan(*v);
    if (buf != small)
        free(buf);
    return ok ? 0 : -1;
}

static int parse_score_range(const kv_ctx *c, int mini, int maxi, score_range *r)
{
    return parse_score_end(c->argv[mini], c->argl[mini], &r->min, &r->minex) < 0 ||
                   parse_score_end(c->argv[maxi], c->argl[maxi], &r->max, &r->maxex) < 0
               ? -1
               : 0;
}

static int score_gte_min(double v, const score_range *r)
{
    return r->minex ? v > r->min : v >= r->min;
}

static int score_lte_max(double v, const score_range *r)
{
    return r->maxex ? v < r->max : v <= r->max;
}

/* Whether no score can be in r (Redis checks this before it looks). */
static int score_range_empty(const score_range *r)
{
    return r->min > r->max || (r->min == r->max && (r->minex || r->maxex));
}

/* ---- Lexicographic ranges (Redis's zlexrangespec) ---- */

typedef struct lex_end {
    int inf;       /* -1: "-" (below every string), 1: "+" (above), 0: a string */
    const char *s; /* the string, without its "[" or "(" */
    size_t n;
} lex_end;

typedef struct lex_range {
    lex_end min, max;
    int minex, maxex;
} lex_range;

/* "-", "+", "[str" or "(str", as zslParseLexRangeItem. 0 or -1. */
static int parse_lex_end(const char *s, size_t n, lex_end *e, int *ex)
{
    if (n == 0)
        return -1;
    e->inf = 0;
    e->s = s + 1;
    e->n = n - 1;
    switch (s[0]) {
    case '+':
    case '-':
        if (n != 1)
            return -1;
        e->inf = s[0] == '+' ? 1 : -1;
        *ex = 1;
        return 0;
    case '(':
        *ex = 1;
        return 0;
    case '[':
        *ex = 0;
        return 0;
    default:
        return -1;
    }
}

/* Compares two ends as Redis's sdscmplex: "-" below and "+" above every string. */
static int lex_cmp(const lex_end *a, const lex_end *b)
{
    if (a->inf || b->inf)
        return a->inf == b->inf ? 0 : a->inf < b->inf ? -1 : 1;
    size_t n = a->n < b->n ? a->n : b->n;
    int r = memcmp(a->s, b->s, n);
    if (r)
        return r;
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

static int parse_lex_range(const kv_ctx *c, int mini, int maxi, lex_range *r)
{
    return parse_lex_end(c->argv[mini], c->argl[mini], &r->min, &r->minex) < 0 ||
                   parse_lex_end(c->argv[maxi], c->argl[maxi], &r->max, &r->maxex) < 0
               ? -1
               : 0;
}

static lex_end member_end(const kv_znode *x)
{
    return (lex_end){0, x->node.key, x->node.klen};
}

static int lex_gte_min(const kv_znode *x, const lex_range *r)
{
    lex_end m = member_end(x);
    int cmp = lex_cmp(&m, &r->min);
    return r->minex ? cmp > 0 : cmp >= 0;
}

static int lex_lte_max(const kv_znode *x, const lex_range *r)
{
    lex_end m = member_end(x);
    int cmp = lex_cmp(&m, &r->max);
    return r->maxex ? cmp < 0 : cmp <= 0;
}

static int lex_range_empty(const lex_range *r)
{
    int cmp = lex_cmp(&r->min, &r->max);
    return cmp > 0 || (cmp == 0 && (r->minex || r->maxex));
}

/* ---- Walking a range ---- */

/* The range being walked, of either kind. */
typedef struct zwalk {
    int by; /* BY_SCORE or BY_LEX */
    score_range score;
    lex_range lex;
} zwalk;

static int walk_gte_min(const kv_znode *x, const zwalk *w)
{
    return w->by == BY_SCORE ? score_gte_min(x->score, &w->score) : lex_gte_min(x, &w->lex);
}

static int walk_lte_max(const kv_znode *x, const zwalk *w)
{
    return w->by == BY_SCORE ? score_lte_max(x->score, &w->score) : lex_lte_max(x, &w->lex);
}

static int walk_empty(const zwalk *w)
{
    return w->by == BY_SCORE ? score_range_empty(&w->score) : lex_range_empty(&w->lex);
}

/* The first node in range, or NULL: down the skip list's levels to the last node below min. */
static kv_znode *first_in_range(const kv_zset *z, const zwalk *w)
{
    kv_znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->next[i] && !walk_gte_min(x->next[i], w))
            x = x->next[i];
    x = x->next[0];
    return x && walk_lte_max(x, w) ? x : NULL;
}

/* The last node in range, or NULL. */
static kv_znode *last_in_range(const kv_zset *z, const zwalk *w)
{
    kv_znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->next[i] && walk_lte_max(x->next[i], w))
            x = x->next[i];
    return x != z->head && walk_gte_min(x, w) ? x : NULL;
}

/* A member with its score: flat in RESP2, a pair in RESP3 (Redis's nested arrays). */
static void reply_scored(sbuf *b, const kv_znode *n)
{
    if (b->resp3)
        reply_array(b, 2);
    reply_bulk(b, n->node.key, n->node.klen);
    reply_double(b, n->score);
}

void zrange_reply(kv_ctx *c, const kv_znode *from, long long n, int rev, int withscores)
{
    reply_array(c->out, withscores && !c->out->resp3 ? n * 2 : n);
    for (long long i = 0; i < n; i++, from = rev ? from->back : from->next[0]) {
        if (withscores)
            reply_scored(c->out, from);
        else
            reply_bulk(c->out, from->node.key, from->node.klen);
    }
}

/* Where a range goes: to the client (with or without scores), stored at a destination
 * (ZRANGESTORE), or to ZRANGESTORE's coordinator on another shard as member, score pairs in
 * RESP2 (__zrangefetch). The last two refuse WITHSCORES, as ZRANGESTORE does. */
enum { OUT_REPLY, OUT_STORE, OUT_FETCH };

typedef struct range_out {
    int mode; /* OUT_* */
    int withscores;
    const char *dst; /* OUT_STORE: the destination */
    size_t dlen;
} range_out;

/* The n nodes from `from` (backwards with rev) to where out says. */
static void emit_range(kv_ctx *c, const kv_znode *from, long long n, int rev, const range_out *out)
{
    if (out->mode != OUT_STORE) {
        zrange_reply(c, from, n, rev, out->mode == OUT_FETCH || out->withscores);
        return;
    }
    /* A copy first: the destination may be the source. */
    kv_zset *z = zset_create();
    for (long long i = 0; z && i < n; i++, from = rev ? from->back : from->next[0])
        if (zset_set(z, from->node.key, from->node.klen, from->score, &c->db->rng) < 0) {
            zset_free(z);
            z = NULL;
        }
    if (z)
        zstore_here(c, out->dst, out->dlen, z);
    else
        reply_error(c->out, "ERR out of memory");
}

/* The value at the key if it is a sorted set; NULL if there is none, or (with *wrong set and
 * WRONGTYPE replied) another type's. */
static kv_zset *get_zset(kv_ctx *c, int *wrong)
{
    kv_entry *e = get_typed(c, KV_ZSET, 0, wrong);
    return e ? e->v.zset : NULL;
}

/* By index: Redis's rank range (negative indexes count from the end). */
static void range_by_rank(kv_ctx *c, int rev, const range_out *out)
{
    long long start, stop;
    if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &stop) < 0)
        return;
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    long long len = z ? (long long)z->len : 0;
    long long n = index_range(&start, stop, len);
    kv_znode *x = n ? zset_at(z, (size_t)(rev ? len - 1 - start : start)) : NULL;
    emit_range(c, x, n, rev, out);
}

/* By score or member: from the first (last, with rev) node in range, `offset` skipped, at
 * most `limit` (all when negative), as genericZrangebyscoreCommand/ByLex. */
static void range_by_walk(kv_ctx *c, zwalk *w, int rev, long long offset, long long limit,
                          const range_out *out)
{
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    kv_znode *x = NULL;
    if (z && !walk_empty(w) && offset >= 0)
        x = rev ? last_in_range(z, w) : first_in_range(z, w);
    while (x && offset-- > 0)
        x = rev ? x->back : x->next[0];
    long long n = 0;
    for (kv_znode *y = x; y && (limit < 0 || n < limit); y = rev ? y->back : y->next[0]) {
        if (rev ? !walk_gte_min(y, w) : !walk_lte_max(y, w))
            break;
        n++;
    }
    emit_range(c, x, n, rev, out);
}

/* Redis's zrangeGenericCommand: `by` and `rev` fixed by the older commands, BY_AUTO and -1
 * for ZRANGE, whose options choose them. The key is argv[1], the range argv[2 .. 3]. */
static void zrange_generic(kv_ctx *c, int by, int rev, range_out *out)
{
    int withscores = 0;
    long long offset = 0, limit = -1;
    for (int j = 4; j < c->argc; j++) {
        int left = c->argc - j - 1;
        if (out->mode == OUT_REPLY && arg_is(c, j, "withscores")) {
            withscores = 1;
        } else if (arg_is(c, j, "limit") && left >= 2) {
            if (arg_ll(c, j + 1, &offset) < 0 || arg_ll(c, j + 2, &limit) < 0)
                return;
            j += 2;
        } else if (rev < 0 && arg_is(c, j, "rev")) {
            rev = 1;
        } else if (by == BY_AUTO && arg_is(c, j, "bylex")) {
            by = BY_LEX;
        } else if (by == BY_AUTO && arg_is(c, j, "byscore")) {
            by = BY_SCORE;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    if (rev < 0)
        rev = 0;
    if (by == BY_AUTO)
        by = BY_RANK;
    if (limit != -1 && by == BY_RANK) {
        reply_error(c->out, ERR_LIMIT_RANK);
        return;
    }
    if (withscores && by == BY_LEX) {
        reply_error(c->out, ERR_LEX_SCORES);
        return;
    }
    out->withscores = withscores;
    if (by == BY_RANK) {
        range_by_rank(c, rev, out);
        return;
    }
    /* By score or member the range is given as max, min when reversed. */
    int mini = rev ? 3 : 2, maxi = rev ? 2 : 3;
    zwalk w = {.by = by};
    if (by == BY_SCORE && parse_score_range(c, mini, maxi, &w.score) < 0) {
        reply_error(c->out, ERR_SCORE_RANGE);
        return;
    }
    if (by == BY_LEX && parse_lex_range(c, mini, maxi, &w.lex) < 0) {
        reply_error(c->out, ERR_LEX_RANGE);
        return;
    }
    range_by_walk(c, &w, rev, offset, limit, out);
}

/* The older commands and ZRANGE: to the client. */
static void zrange_reply_generic(kv_ctx *c, int by, int rev)
{
    range_out out = {OUT_REPLY, 0, NULL, 0};
    zrange_generic(c, by, rev, &out);
}

void cmd_zrange(kv_ctx *c)
{
    zrange_reply_generic(c, BY_AUTO, -1);
}

void cmd_zrevrange(kv_ctx *c)
{
    zrange_reply_generic(c, BY_RANK, 1);
}

void cmd_zrangebyscore(kv_ctx *c)
{
    zrange_reply_generic(c, BY_SCORE, 0);
}

void cmd_zrevrangebyscore(kv_ctx *c)
{
    zrange_reply_generic(c, BY_SCORE, 1);
}

void cmd_zrangebylex(kv_ctx *c)
{
    zrange_reply_generic(c, BY_LEX, 0);
}

void cmd_zrevrangebylex(kv_ctx *c)
{
    zrange_reply_generic(c, BY_LEX, 1);
}

/* ZRANGESTORE dst src min max [options]: ZRANGE's parsing on the arguments after dst (so
 * src is argv[1] of the shifted view), the range stored at dst. Both keys on this shard. */
void cmd_zrangestore(kv_ctx *c)
{
    kv_ctx view = *c;
    view.argc--;
    view.argv++;
    view.argl++;
    range_out out = {OUT_STORE, 0, c->argv[1], c->argl[1]};
    zrange_generic(&view, BY_AUTO, -1, &out);
}

/* __zrangefetch src min max [options]: ZRANGESTORE's first half, on src's shard, for a
 * destination on another (cmd_zsetops_across.c). */
void cmd_zrangefetch(kv_ctx *c)
{
    range_out out = {OUT_FETCH, 0, NULL, 0};
    zrange_generic(c, BY_AUTO, -1, &out);
}

/* ZCOUNT and ZLEXCOUNT: the members in range. */
static void count_in_range(kv_ctx *c, zwalk *w)
{
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    long long n = 0;
    kv_znode *x = z && !walk_empty(w) ? first_in_range(z, w) : NULL;
    for (; x && walk_lte_max(x, w); x = x->next[0])
        n++;
    reply_int(c->out, n);
}

/* The score or lex range of argv[2..3] into *w (ZCOUNT, ZLEXCOUNT, ZREMRANGEBYSCORE/LEX):
 * 0, or -1 with the error replied. */
static int parse_walk(kv_ctx *c, int by, zwalk *w)
{
    *w = (zwalk){.by = by};
    int bad = by == BY_SCORE ? parse_score_range(c, 2, 3, &w->score) < 0
                             : parse_lex_range(c, 2, 3, &w->lex) < 0;
    if (bad)
        reply_error(c->out, by == BY_SCORE ? ERR_SCORE_RANGE : ERR_LEX_RANGE);
    return bad ? -1 : 0;
}

void cmd_zcount(kv_ctx *c)
{
    zwalk w;
    if (parse_walk(c, BY_SCORE, &w) == 0)
        count_in_range(c, &w);
}

void cmd_zlexcount(kv_ctx *c)
{
    zwalk w;
    if (parse_walk(c, BY_LEX, &w) == 0)
        count_in_range(c, &w);
}

/* ZRANK and ZREVRANK: the member's 0-based rank, or null. Without Redis's rank spans it is
 * counted along level 0, from the member to the end it is ranked from (O(rank)). */
static void zrank(kv_ctx *c, int rev)
{
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    kv_znode *x = z ? zset_find(z, c->argv[2], c->argl[2]) : NULL;
    if (!x) {
        reply_null(c->out);
        return;
    }
    long long rank = 0;
    if (rev)
        for (kv_znode *y = x->next[0]; y; y = y->next[0])
            rank++;
    else
        for (kv_znode *y = x->back; y; y = y->back)
            rank++;
    reply_int(c->out, rank);
}

void cmd_zrank(kv_ctx *c)
{
    zrank(c, 0);
}

void cmd_zrevrank(kv_ctx *c)
{
    zrank(c, 1);
}

/* ---- Removing ranges ---- */

/* ZREMRANGEBYSCORE and ZREMRANGEBYLEX: the members in range deleted, their count replied;
 * the key goes with its last member. */
static void remove_in_range(kv_ctx *c, zwalk *w)
{
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    long long n = 0;
    kv_znode *x = z && !walk_empty(w) ? first_in_range(z, w) : NULL;
    while (x && walk_lte_max(x, w)) {
        kv_znode *next = x->next[0];
        zset_delete(z, x);
        x = next;
        n++;
    }
    if (z)
        db_delete_if_empty(c->db, db_lookup(c->db, c->argv[1], c->argl[1]));
    reply_int(c->out, n);
}

void cmd_zremrangebyscore(kv_ctx *c)
{
    zwalk w;
    if (parse_walk(c, BY_SCORE, &w) == 0)
        remove_in_range(c, &w);
}

void cmd_zremrangebylex(kv_ctx *c)
{
    zwalk w;
    if (parse_walk(c, BY_LEX, &w) == 0)
        remove_in_range(c, &w);
}

/* ZREMRANGEBYRANK: the indexes parsed before the key is looked at, then clamped as LRANGE's. */
void cmd_zremrangebyrank(kv_ctx *c)
{
    long long start, stop;
    if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &stop) < 0)
        return;
    int wrong;
    kv_zset *z = get_zset(c, &wrong);
    if (wrong)
        return;
    long long n = z ? index_range(&start, stop, (long long)z->len) : 0;
    kv_znode *x = n ? zset_at(z, (size_t)start) : NULL;
    for (long long i = 0; i < n; i++) {
        kv_znode *next = x->next[0];
        zset_delete(z, x);
        x = next;
    }
    if (z)
        db_delete_if_empty(c->db, db_lookup(c->db, c->argv[1], c->argl[1]));
    reply_int(c->out, n);
}
