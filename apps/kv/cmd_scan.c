/* SSCAN, HSCAN and ZSCAN: a cursor over one key's members (a set's, a hash's fields with their
 * values, a sorted set's members with their scores). The cursor is the member table's
 * reverse-binary one (dict_scan): the tables only grow, and a value rebuilt whole (a STORE
 * into the key) hashes its members to the same slots, so every member present from the first
 * call to the last is returned at least once, whatever was added or removed in between; one
 * added or removed meanwhile may or may not be. Parsing and its order are Redis 7.0's: the
 * cursor, then the key (missing: the empty scan; another type: WRONGTYPE), then MATCH and
 * COUNT. COUNT is Redis's hint: members visited (before MATCH) per call, at least. */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "cmd.h"
#include "zset.h"

typedef struct members_acc {
    const scan_opts *o;
    int type;
    sbuf body;      /* the reply's elements */
    long long n;    /* elements in body */
    long long seen; /* members visited, matched or not */
} members_acc;

/* A score as a bulk whatever the protocol, as Redis's ZSCAN of a skip-list sorted set. */
static void reply_score_bulk(sbuf *b, double v)
{
    char num[32];
    int n = isinf(v) ? snprintf(num, sizeof num, "%s", v > 0 ? "inf" : "-inf")
                     : snprintf(num, sizeof num, "%.17g", v);
    reply_bulk(b, num, (size_t)n);
}

static void collect_member(dnode *n, void *arg)
{
    members_acc *a = arg;
    a->seen++;
    if (!a->o->all && !kv_glob(a->o->pat, a->o->plen, n->key, n->klen, 0))
        return;
    reply_bulk(&a->body, n->key, n->klen);
    a->n++;
    if (a->type == KV_HASH) {
        const kv_blob *v = ((const kv_field *)n)->val;
        reply_bulk(&a->body, v->data, v->len);
        a->n++;
    } else if (a->type == KV_ZSET) {
        reply_score_bulk(&a->body, ((const kv_znode *)n)->score);
        a->n++;
    }
}

static void scan_members(kv_ctx *c, int type)
{
    unsigned long long cur;
    if (scan_parse_cursor(c->argv[2], c->argl[2], &cur) < 0) {
        reply_error(c->out, "ERR invalid cursor");
        return;
    }
    int wrong;
    kv_entry *e = get_typed(c, type, 0, &wrong);
    if (wrong)
        return;
    if (!e) {
        reply_array(c->out, 2);
        reply_bulks(c->out, "0");
        reply_array(c->out, 0);
        return;
    }
    scan_opts o;
    if (scan_parse_opts(c, 3, 0, &o) < 0)
        return;
    const dict *d = type == KV_SET ? e->v.set : type == KV_HASH ? e->v.hash : &e->v.zset->members;
    members_acc a = {&o, type, {0}, 0, 0};
    /* Redis's bound on buckets walked per call, saturating (COUNT may be 2^63 - 1). */
    long long steps = o.count > LLONG_MAX / 10 ? LLONG_MAX : o.count * 10;
    do
        cur = dict_scan(d, (size_t)cur, collect_member, &a);
    while (cur && a.seen < o.count && --steps > 0);
    reply_array(c->out, 2);
    reply_bulk_ll(c->out, (long long)cur);
    reply_array(c->out, a.n);
    sbuf_add(c->out, a.body.data, a.body.len);
    sbuf_free(&a.body);
}

void cmd_sscan(kv_ctx *c)
{
    scan_members(c, KV_SET);
}

void cmd_hscan(kv_ctx *c)
{
    scan_members(c, KV_HASH);
}

void cmd_zscan(kv_ctx *c)
{
    scan_members(c, KV_ZSET);
}
