/* Set algebra and moves: SINTER SUNION SDIFF, their STORE forms, SINTERCARD, and SMOVE.
 *
 * Every command computes from a list of source sets, each a member dict or NULL for a missing
 * key (an empty set). With all its keys on one shard the proc reads the keys' own dicts. With
 * keys on several shards the `multi` is a transaction over them (tx.c): the first phase
 * fetches each source with SMEMBERS (its WRONGTYPE included) into temporary dicts on the
 * coordinator, the result is computed there, and a STORE's second phase writes it on the
 * destination's shard as DEL then SADD, while every shard is still held: no client sees the
 * sources and the destination out of step. SMOVE across shards checks in its first phase
 * (TYPE of both keys, SISMEMBER) and moves with SREM and SADD in its second.
 *
 * Replies and errors, and their order, are Redis 7.0's: every source's type is checked before
 * anything is computed; a STORE replaces the destination whatever its type, and deletes it
 * for an empty result. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

enum { OP_INTER, OP_UNION, OP_DIFF };

static dict *set_new(void)
{
    dict *d = kv_malloc(sizeof *d);
    if (d)
        memset(d, 0, sizeof *d);
    return d;
}

static void free_member(dnode *n, void *arg)
{
    (void)arg;
    kv_free(n);
}

static void set_destroy(dict *d)
{
    if (!d)
        return;
    dict_clear(d, free_member, NULL);
    kv_free(d);
}

static int has(const dict *d, const dnode *n)
{
    return d && dict_find(d, n->key, n->klen, n->hash) != NULL;
}

/* The walk of one source set, adding to `out` the members the operation keeps. */
typedef struct walk {
    int op;
    dict *const *sets;
    int nsets;
    int skip; /* the set walked: not tested against itself */
    dict *out;
    long long count, limit; /* count only (SINTERCARD): out NULL; limit 0: none */
    int oom;
} walk;

static void keep_member(dnode *n, void *arg)
{
    walk *w = arg;
    if (w->oom || (w->limit && w->count >= w->limit))
        return;
    if (w->op == OP_INTER) {
        for (int i = 0; i < w->nsets; i++)
            if (i != w->skip && !has(w->sets[i], n))
                return;
    } else if (w->op == OP_DIFF) {
        for (int i = 1; i < w->nsets; i++)
            if (has(w->sets[i], n))
                return;
    }
    if (!w->out) {
        w->count++;
        return;
    }
    int r = set_put(w->out, n->key, n->klen);
    if (r < 0)
        w->oom = 1;
    w->count += r > 0;
}

static void walk_set(walk *w, int i)
{
    w->skip = i;
    size_t cur = 0;
    do
        cur = dict_scan(w->sets[i], cur, keep_member, w);
    while (cur);
}

/* Runs the operation over sets[0 .. n) into w->out (or counts into w->count with out NULL).
 * Returns 0, or -1 out of memory. */
static int compute(walk *w, int op, dict *const *sets, int n)
{
    w->op = op;
    w->sets = sets;
    w->nsets = n;
    if (op == OP_UNION) {
        for (int i = 0; i < n && !w->oom; i++)
            if (sets[i])
                walk_set(w, i);
        return w->oom ? -1 : 0;
    }
    if (op == OP_DIFF) {
        if (sets[0])
            walk_set(w, 0);
        return w->oom ? -1 : 0;
    }
    /* The intersection walks the smallest set; any missing one makes it empty. */
    int smallest = 0;
    for (int i = 0; i < n; i++) {
        if (!sets[i])
            return 0;
        if (sets[i]->size < sets[smallest]->size)
            smallest = i;
    }
    walk_set(w, smallest);
    return w->oom ? -1 : 0;
}

static void add_member(dnode *n, void *arg)
{
    reply_bulk(arg, n->key, n->klen);
}

static void reply_members(sbuf *out, const dict *d)
{
    reply_set(out, (long long)d->size);
    size_t cur = 0;
    do
        cur = dict_scan(d, cur, add_member, out);
    while (cur);
}

/* The sets of keys argv[first .. first + n) of this shard into sets[]: NULL for a missing key.
 * Returns 0, or -1 with WRONGTYPE replied. */
static int gather_here(kv_ctx *c, int first, int n, dict **sets)
{
    for (int i = 0; i < n; i++) {
        kv_entry *e = db_find(c->db, c->argv[first + i], c->argl[first + i]);
        if (e && e->type != KV_SET) {
            reply_wrongtype(c);
            return -1;
        }
        sets[i] = e ? e->v.set : NULL;
    }
    return 0;
}

/* Replaces key dst of this shard with the set d (taken over), or deletes it if d is empty. */
static int store_here(kv_ctx *c, const char *dst, size_t dlen, dict *d)
{
    if (d->size == 0) {
        kv_entry *old = db_lookup(c->db, dst, dlen);
        if (old)
            db_delete(c->db, old);
        set_destroy(d);
        return 0;
    }
    kv_entry *e = db_create(c->db, dst, dlen, KV_SET);
    if (!e) {
        set_destroy(d);
        return -1;
    }
    kv_free(e->v.set); /* db_create's empty dict: no buckets yet */
    e->v.set = d;
    return 0;
}

/* SINTER SUNION SDIFF (store NULL) and their STORE forms on one shard. */
static void op_here(kv_ctx *c, int op, int store)
{
    int first = store ? 2 : 1, n = c->argc - first;
    dict **sets = malloc((size_t)n * sizeof *sets);
    walk w = {0};
    if (!sets || !(w.out = set_new())) {
        free(sets);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    if (gather_here(c, first, n, sets) < 0) {
        set_destroy(w.out);
        free(sets);
        return;
    }
    /* The result is built apart: the destination may be one of the sources. */
    if (compute(&w, op, sets, n) < 0) {
        set_destroy(w.out);
        reply_error(c->out, "ERR out of memory");
    } else if (!store) {
        reply_members(c->out, w.out);
        set_destroy(w.out);
    } else {
        long long size = (long long)w.out->size;
        if (store_here(c, c->argv[1], c->argl[1], w.out) < 0)
            reply_error(c->out, "ERR out of memory");
        else
            reply_int(c->out, size);
    }
    free(sets);
}

void cmd_sinter(kv_ctx *c)
{
    op_here(c, OP_INTER, 0);
}

void cmd_sunion(kv_ctx *c)
{
    op_here(c, OP_UNION, 0);
}

void cmd_sdiff(kv_ctx *c)
{
    op_here(c, OP_DIFF, 0);
}

void cmd_sinterstore(kv_ctx *c)
{
    op_here(c, OP_INTER, 1);
}

void cmd_sunionstore(kv_ctx *c)
{
    op_here(c, OP_UNION, 1);
}

void cmd_sdiffstore(kv_ctx *c)
{
    op_here(c, OP_DIFF, 1);
}

/* SINTERCARD numkeys key... [LIMIT n]: parses as Redis does. Returns the number of keys (at
 * argv[2 ..)) with *limit set, or -1 with the error replied. */
static int parse_intercard(kv_ctx *c, long long *limit)
{
    long long numkeys;
    if (resp_strtoll(c->argv[1], c->argl[1], &numkeys) < 0 || numkeys < 1) {
        reply_error(c->out, "ERR numkeys should be greater than 0");
        return -1;
    }
    if (numkeys > c->argc - 2) {
        reply_error(c->out, "ERR Number of keys can't be greater than number of args");
        return -1;
    }
    *limit = 0;
    for (int j = 2 + (int)numkeys; j < c->argc; j++) {
        if (j + 1 < c->argc && arg_is(c, j, "limit")) {
            j++;
            if (resp_strtoll(c->argv[j], c->argl[j], limit) < 0 || *limit < 0) {
                reply_error(c->out, "ERR LIMIT can't be negative");
                return -1;
            }
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return -1;
        }
    }
    return (int)numkeys;
}

void cmd_sintercard(kv_ctx *c)
{
    long long limit;
    int n = parse_intercard(c, &limit);
    if (n < 0)
        return;
    dict **sets = malloc((size_t)n * sizeof *sets);
    if (!sets) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    walk w = {0};
    w.limit = limit;
    if (gather_here(c, 2, n, sets) == 0) {
        compute(&w, OP_INTER, sets, n);
        reply_int(c->out, w.count);
    }
    free(sets);
}

/* ---- Across shards ---- */

/* Parses the RESP2 SMEMBERS reply at p into a new set. NULL out of memory. */
static dict *parse_members(const char *p)
{
    dict *d = set_new();
    long long n = atoll(p + 1);
    p = strchr(p, '\n') + 1;
    for (long long i = 0; d && i < n; i++) {
        size_t len = (size_t)atoll(p + 1);
        const char *body = strchr(p, '\n') + 1;
        if (set_put(d, body, len) < 0) {
            set_destroy(d);
            return NULL;
        }
        p = body + len + 2;
    }
    return d;
}

/* The coordinator's side: the n keys at argv[first ..) fetched in the first phase of tx
 * (which also holds dst's shard when dst is set), into sets[] (missing keys: NULL). Returns 0,
 * 1 with an error replied (a source's WRONGTYPE, no memory), both with tx begun for the
 * caller to end; or -1 with nothing held (the connection must close). */
static int gather_across(kv_ctx *c, kv_tx *tx, int first, int n, const char *dst, size_t dlen,
                         dict **sets)
{
    sbuf tmp = {0}; /* RESP2 whatever the client's: parsed here only */
    const char **rep = malloc((size_t)n * sizeof *rep);
    int r = rep ? kv_fetch_across(c, tx, "smembers", 0, first, n, dst, dlen, &tmp, rep) : -1;
    for (int i = 0; i < n && r == 0; i++)
        if (rep[i][1] != '0' && !(sets[i] = parse_members(rep[i]))) {
            reply_error(c->out, "ERR out of memory");
            r = 1;
        }
    free(rep);
    sbuf_free(&tmp);
    return r;
}

/* Writes d as the whole of dst on its shard (DEL, then SADD of the members) in the next phase
 * of tx. Returns 0 or -1. */
static int store_across(kv_ctx *c, kv_tx *tx, dict *d)
{
    size_t n = d->size;
    const char **argv = malloc((n + 2) * sizeof *argv);
    size_t *argl = malloc((n + 2) * sizeof *argl);
    if (!argv || !argl) {
        free(argv);
        free(argl);
        return -1;
    }
    argv[0] = "sadd";
    argl[0] = 4;
    argv[1] = c->argv[1];
    argl[1] = c->argl[1];
    size_t k = 2;
    for (size_t b = 0; d->buckets && b <= d->mask; b++)
        for (dnode *m = d->buckets[b]; m; m = m->next) {
            argv[k] = m->key;
            argl[k++] = m->klen;
        }
    const char *del[2] = {"del", c->argv[1]};
    size_t dell[2] = {3, c->argl[1]};
    unsigned s = kv_key_shard(c->argv[1], c->argl[1]);
    kv_item items[2] = {
        {kv_command_find("del", 3, 0), 2, del, dell, 0, s, 0, 0},
        {kv_command_find("sadd", 4, 0), (int)n + 2, argv, argl, 0, s, 0, 0},
    };
    sbuf tmp = {0};
    int r = kv_tx_run(tx, items, n ? 2 : 1, &tmp);
    sbuf_free(&tmp);
    free(argv);
    free(argl);
    return r;
}

/* The operation over the n keys at argv[first ..) on several shards; store: into argv[1];
 * limit >= 0: SINTERCARD's count only. */
static void op_across(kv_ctx *c, int op, int store, int first, int n, long long limit)
{
    dict **sets = calloc((size_t)n, sizeof *sets);
    kv_tx tx;
    int r =
        sets ? gather_across(c, &tx, first, n, store ? c->argv[1] : NULL, c->argl[1], sets) : -1;
    if (r < 0) {
        free(sets);
        c->conn->close_after = 1;
        return;
    }
    walk w = {0};
    w.limit = limit > 0 ? limit : 0;
    int count_only = limit >= 0;
    if (r == 0) {
        if (!count_only && !(w.out = set_new()))
            reply_error(c->out, "ERR out of memory");
        else if (compute(&w, op, sets, n) < 0)
            reply_error(c->out, "ERR out of memory");
        else if (count_only)
            reply_int(c->out, w.count);
        else if (!store)
            reply_members(c->out, w.out);
        else if (store_across(c, &tx, w.out) < 0)
            c->conn->close_after = 1;
        else
            reply_int(c->out, (long long)w.out->size);
        set_destroy(w.out);
    }
    kv_tx_end(&tx);
    for (int i = 0; i < n; i++)
        set_destroy(sets[i]);
    free(sets);
}

void multi_sinter(kv_ctx *c)
{
    op_across(c, OP_INTER, 0, 1, c->argc - 1, -1);
}

void multi_sunion(kv_ctx *c)
{
    op_across(c, OP_UNION, 0, 1, c->argc - 1, -1);
}

void multi_sdiff(kv_ctx *c)
{
    op_across(c, OP_DIFF, 0, 1, c->argc - 1, -1);
}

void multi_sinterstore(kv_ctx *c)
{
    op_across(c, OP_INTER, 1, 2, c->argc - 2, -1);
}

void multi_sunionstore(kv_ctx *c)
{
    op_across(c, OP_UNION, 1, 2, c->argc - 2, -1);
}

void multi_sdiffstore(kv_ctx *c)
{
    op_across(c, OP_DIFF, 1, 2, c->argc - 2, -1);
}

void multi_sintercard(kv_ctx *c)
{
    long long limit;
    int n = parse_intercard(c, &limit);
    if (n >= 0)
        op_across(c, OP_INTER, 0, 2, n, limit);
}

/* ---- SMOVE ---- */

/* SMOVE src dst member with both keys here: Redis's order (a missing source answers 0 before
 * any type is checked; the same key answers whether the member is there). */
void cmd_smove(kv_ctx *c)
{
    kv_entry *src = db_lookup(c->db, c->argv[1], c->argl[1]);
    kv_entry *dst = db_lookup(c->db, c->argv[2], c->argl[2]);
    const char *m = c->argv[3];
    size_t mlen = c->argl[3];
    if (!src) {
        reply_int(c->out, 0);
        return;
    }
    if (src->type != KV_SET || (dst && dst->type != KV_SET)) {
        reply_wrongtype(c);
        return;
    }
    dnode *n = dict_find(src->v.set, m, mlen, kv_hash(m, mlen));
    if (src == dst || !n) {
        reply_int(c->out, n != NULL);
        return;
    }
    if (!dst && !(dst = db_create(c->db, c->argv[2], c->argl[2], KV_SET))) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    /* The member's node moves as it is: no allocation, so nothing can fail halfway. */
    dict_remove(src->v.set, n);
    if (dict_find(dst->v.set, m, mlen, n->hash))
        kv_free(n);
    else
        dict_add(dst->v.set, n);
    db_delete_if_empty(c->db, src);
    reply_int(c->out, 1);
}

/* Across shards: TYPE of both keys and SISMEMBER in the first phase, SREM and SADD in the
 * second if the member is there. */
void multi_smove(kv_ctx *c)
{
    unsigned ssrc = kv_key_shard(c->argv[1], c->argl[1]);
    unsigned sdst = kv_key_shard(c->argv[2], c->argl[2]);
    const char *tsrc[2] = {"type", c->argv[1]}, *tdst[2] = {"type", c->argv[2]};
    size_t tsrcl[2] = {4, c->argl[1]}, tdstl[2] = {4, c->argl[2]};
    const char *ism[3] = {"sismember", c->argv[1], c->argv[3]};
    size_t isml[3] = {9, c->argl[1], c->argl[3]};
    const kv_command *type = kv_command_find("type", 4, 0);
    kv_item check[3] = {
        {type, 2, tsrc, tsrcl, 0, ssrc, 0, 0},
        {type, 2, tdst, tdstl, 0, sdst, 0, 0},
        {kv_command_find("sismember", 9, 0), 3, ism, isml, 0, ssrc, 0, 0},
    };
    kv_tx tx;
    sbuf tmp = {0}, tmp2 = {0}; /* RESP2: parsed here only */
    if (kv_tx_begin(&tx, c->conn, check, 3, &tmp) < 0) {
        c->conn->close_after = 1;
        sbuf_free(&tmp);
        return;
    }
    sbuf_add(&tmp, "", 1);
    const char *ts = tmp.data + check[0].off, *td = tmp.data + check[1].off;
    const char *is = tmp.data + check[2].off;
    int r = 0;
    if (strncmp(ts, "+none\r", 6) == 0) {
        reply_int(c->out, 0);
    } else if (strncmp(ts, "+set\r", 5) != 0 ||
               (strncmp(td, "+none\r", 6) != 0 && strncmp(td, "+set\r", 5) != 0)) {
        reply_wrongtype(c);
    } else if (is[1] == '0') {
        reply_int(c->out, 0);
    } else {
        const char *srem[3] = {"srem", c->argv[1], c->argv[3]};
        const char *sadd[3] = {"sadd", c->argv[2], c->argv[3]};
        size_t srem_l[3] = {4, c->argl[1], c->argl[3]}, sadd_l[3] = {4, c->argl[2], c->argl[3]};
        kv_item move[2] = {
            {kv_command_find("srem", 4, 0), 3, srem, srem_l, 0, ssrc, 0, 0},
            {kv_command_find("sadd", 4, 0), 3, sadd, sadd_l, 0, sdst, 0, 0},
        };
        r = kv_tx_run(&tx, move, 2, &tmp2);
        if (r == 0)
            reply_int(c->out, 1);
    }
    kv_tx_end(&tx);
    if (r < 0)
        c->conn->close_after = 1;
    sbuf_free(&tmp);
    sbuf_free(&tmp2);
}
