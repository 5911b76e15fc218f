/* Keyspace commands: DEL, EXISTS, expiry, TYPE, RENAME, and the ones over every shard (KEYS,
 * SCAN, RANDOMKEY, DBSIZE, FLUSHDB). Procs run on one shard; multi_* fan out or split. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

void cmd_del(kv_ctx *c)
{
    long long n = 0;
    for (int i = 1; i < c->argc; i++) {
        kv_entry *e = db_lookup(c->db, c->argv[i], c->argl[i]);
        if (e) {
            db_delete(c->db, e);
            n++;
        }
    }
    reply_int(c->out, n);
}

void cmd_exists(kv_ctx *c)
{
    long long n = 0;
    for (int i = 1; i < c->argc; i++)
        n += db_lookup(c->db, c->argv[i], c->argl[i]) != NULL;
    reply_int(c->out, n);
}

/* DEL, UNLINK, EXISTS across shards: the sum of the shards' counts. */
static void multi_count(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    void *arena[2];
    int *pos;
    int m = kv_split_keys(c, 1, items, &tmp, arena, &pos);
    if (m < 0) {
        c->conn->close_after = 1;
    } else {
        long long n = 0;
        for (int k = 0; k < m; k++)
            n += atoll(tmp.data + items[k].off + 1);
        reply_int(c->out, n);
    }
    kv_split_free(arena, pos);
    sbuf_free(&tmp);
}

void multi_del(kv_ctx *c)
{
    multi_count(c);
}

void multi_exists(kv_ctx *c)
{
    multi_count(c);
}

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* EXPIRE's NX/XX/GT/LT options (argv[3] on) into *flags. Redis checks them before the time
 * argument, so "EXPIRE k x FOO" is "Unsupported option FOO", not a bad integer. Returns 0,
 * or -1 with the error replied. */
static int parse_expire_flags(kv_ctx *c, unsigned *flags)
{
    *flags = 0;
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c, i, "nx"))
            *flags |= EXP_NX;
        else if (arg_is(c, i, "xx"))
            *flags |= EXP_XX;
        else if (arg_is(c, i, "gt"))
            *flags |= EXP_GT;
        else if (arg_is(c, i, "lt"))
            *flags |= EXP_LT;
        else {
            reply_errorf(c->out, "ERR Unsupported option %.*s", (int)c->argl[i], c->argv[i]);
            return -1;
        }
    }
    if ((*flags & EXP_NX) && (*flags & (EXP_XX | EXP_GT | EXP_LT))) {
        reply_error(c->out, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return -1;
    }
    if ((*flags & EXP_GT) && (*flags & EXP_LT)) {
        reply_error(c->out, "ERR GT and LT options at the same time are not compatible");
        return -1;
    }
    return 0;
}

/* The absolute expiry in Unix ms of `v` (in units of `unit_ms`, from `base_ms`: now for
 * EXPIRE and PEXPIRE, 0 for the *AT forms), with Redis 7's overflow checks and no others
 * (expireGenericCommand): seconds must convert to ms within an int64 both ways, and the sum
 * must not pass INT64_MAX. A sum below zero is no error: PEXPIRE k INT64_MIN is a time long
 * past, and deletes the key (:1), as in Redis. Returns 0, or -1 with the error replied. */
static int expire_deadline(kv_ctx *c, long long v, long long unit_ms, long long base_ms,
                           const char *name, long long *when)
{
    if (unit_ms == 1000 && (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000))
        goto invalid;
    v *= unit_ms;
    if (v > LLONG_MAX - base_ms) /* base_ms >= 0, so LLONG_MAX - base_ms cannot overflow */
        goto invalid;
    *when = v + base_ms; /* v >= LLONG_MIN and base_ms >= 0: no overflow below either */
    return 0;
invalid:
    reply_errorf(c->out, "ERR invalid expire time in '%s' command", name);
    return -1;
}

/* Whether NX/XX/GT/LT let the new expiry `when` replace `cur` (-1: none, which GT and LT
 * take for infinity). */
static int expire_allowed(unsigned flags, long long cur, long long when)
{
    if ((flags & EXP_NX) && cur >= 0)
        return 0;
    if ((flags & EXP_XX) && cur < 0)
        return 0;
    if ((flags & EXP_GT) && (cur < 0 || when <= cur))
        return 0;
    if ((flags & EXP_LT) && cur >= 0 && when >= cur)
        return 0;
    return 1;
}

/* EXPIRE and family: `unit_ms` 1000 or 1, `absolute` for the *AT forms. The checks run in
 * Redis's order (options, the integer, its overflow, then the key), so the same misuse gets
 * the same error. */
static void expire_generic(kv_ctx *c, long long unit_ms, int absolute, const char *name)
{
    unsigned flags;
    long long v, when;
    if (parse_expire_flags(c, &flags) < 0 || arg_ll(c, 2, &v) < 0)
        return;
    long long now = kv_unix_ms();
    if (expire_deadline(c, v, unit_ms, absolute ? 0 : now, name, &when) < 0)
        return;
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    if (!e || !expire_allowed(flags, e->expire_ms, when)) {
        reply_int(c->out, 0);
        return;
    }
    if (when <= now && !c->db->loading) {
        db_delete(c->db, e);
        reply_int(c->out, 1);
        return;
    }
    db_set_expire(c->db, e, when);
    reply_int(c->out, 1);
}

void cmd_expire(kv_ctx *c)
{
    expire_generic(c, 1000, 0, "expire");
}

void cmd_pexpire(kv_ctx *c)
{
    expire_generic(c, 1, 0, "pexpire");
}

void cmd_expireat(kv_ctx *c)
{
    expire_generic(c, 1000, 1, "expireat");
}

void cmd_pexpireat(kv_ctx *c)
{
    expire_generic(c, 1, 1, "pexpireat");
}

static void ttl_generic(kv_ctx *c, int ms)
{
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    if (!e) {
        reply_int(c->out, -2);
        return;
    }
    if (e->expire_ms < 0) {
        reply_int(c->out, -1);
        return;
    }
    long long left = e->expire_ms - kv_unix_ms();
    if (left < 0)
        left = 0;
    reply_int(c->out, ms ? left : (left + 500) / 1000);
}

void cmd_ttl(kv_ctx *c)
{
    ttl_generic(c, 0);
}

void cmd_pttl(kv_ctx *c)
{
    ttl_generic(c, 1);
}

void cmd_persist(kv_ctx *c)
{
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    if (!e || e->expire_ms < 0) {
        reply_int(c->out, 0);
        return;
    }
    db_set_expire(c->db, e, -1);
    reply_int(c->out, 1);
}

void cmd_type(kv_ctx *c)
{
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    static const char *const names[] = {"string", "hash", "list", "set", "zset"};
    reply_status(c->out, e ? names[e->type] : "none");
}

void cmd_rename(kv_ctx *c)
{
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    if (!e) {
        reply_error(c->out, ERR_NOKEY);
        return;
    }
    if (c->argl[1] == c->argl[2] && memcmp(c->argv[1], c->argv[2], c->argl[1]) == 0) {
        reply_ok(c->out);
        return;
    }
    /* A new entry under the new name takes the value over; the old one goes without it. */
    int type = e->type;
    int64_t exp = e->expire_ms;
    kv_entry *n = db_create(c->db, c->argv[2], c->argl[2], KV_STRING);
    if (!n) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    n->type = type;
    n->v = e->v;
    db_set_expire(c->db, n, exp);
    e->type = KV_STRING;
    memset(&e->v, 0, sizeof e->v);
    db_delete(c->db, e);
    if (type == KV_LIST)
        db_signal_key(c->db, c->argv[2], c->argl[2]);
    reply_ok(c->out);
}

/* __dumpdel key: the key's expiry (8 bytes) and dump as one bulk, and the key deleted; a null
 * when missing. The first hop of a RENAME across shards. */
void cmd_dump_del(kv_ctx *c)
{
    kv_entry *e = db_lookup(c->db, c->argv[1], c->argl[1]);
    if (!e) {
        reply_null(c->out);
        return;
    }
    sbuf d = {0};
    sbuf_add(&d, &e->expire_ms, sizeof e->expire_ms);
    db_dump(e, &d);
    if (d.oom) {
        reply_error(c->out, "ERR out of memory");
    } else {
        reply_bulk(c->out, d.data, d.len);
        db_delete(c->db, e);
    }
    sbuf_free(&d);
}

/* __restore key dump: the second hop. */
void cmd_restore_at(kv_ctx *c)
{
    int64_t exp;
    if (c->argl[2] < sizeof exp) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    memcpy(&exp, c->argv[2], sizeof exp);
    kv_entry *e =
        db_restore(c->db, c->argv[1], c->argl[1], c->argv[2] + sizeof exp, c->argl[2] - sizeof exp);
    if (!e) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    db_set_expire(c->db, e, exp);
    if (e->type == KV_LIST)
        db_signal_key(c->db, c->argv[1], c->argl[1]);
    reply_ok(c->out);
}

void multi_rename(kv_ctx *c)
{
    /* Atomic across shards: with both shards held, the value (with its TTL) is taken off the
     * source's shard, then written on the destination's (tx.c). */
    const char *argv[3] = {"__dumpdel", c->argv[1], NULL};
    size_t argl[3] = {9, c->argl[1], 0};
    kv_item both[2] = {
        {kv_command_find("__dumpdel", 9, 1), 2, argv, argl, 0, kv_key_shard(c->argv[1], c->argl[1]),
         0, 0},
        {NULL, 0, NULL, NULL, 0, kv_key_shard(c->argv[2], c->argl[2]), 0, 0}, /* hold only */
    };
    kv_tx tx;
    sbuf tmp = {0}, tmp2 = {0};
    if (kv_tx_begin(&tx, c->conn, both, 2, &tmp) < 0) {
        c->conn->close_after = 1;
        sbuf_free(&tmp);
        return;
    }
    int r = 0;
    sbuf_add(&tmp, "", 1);
    const char *d = tmp.data + both[0].off;
    if (d[0] == '$' && d[1] != '-') {
        argv[0] = "__restore";
        argl[0] = 9;
        argv[1] = c->argv[2];
        argl[1] = c->argl[2];
        argv[2] = strchr(d, '\n') + 1;
        argl[2] = (size_t)atoll(d + 1);
        kv_item it2 = {kv_command_find("__restore", 9, 1), 3, argv, argl, 0, both[1].shard, 0, 0};
        r = kv_tx_run(&tx, &it2, 1, &tmp2);
        if (r == 0)
            sbuf_add(c->out, tmp2.data + it2.off, it2.len);
    } else if (d[0] == '$') {
        reply_error(c->out, ERR_NOKEY);
    } else {
        sbuf_add(c->out, d, both[0].len);
    }
    kv_tx_end(&tx);
    if (r < 0)
        c->conn->close_after = 1;
    sbuf_free(&tmp);
    sbuf_free(&tmp2);
}

typedef struct keys_acc {
    kv_db *db;
    const char *pat;
    size_t plen;
    int all;
    int type; /* -1: any */
    sbuf body;
    long long n;
    int64_t now;
} keys_acc;

static void collect_key(dnode *n, void *arg)
{
    keys_acc *a = arg;
    kv_entry *e = (kv_entry *)n;
    if (kv_expired_at(e->expire_ms, a->now))
        return;
    if (a->type >= 0 && e->type != a->type)
        return;
    if (!a->all && !kv_glob(a->pat, a->plen, n->key, n->klen, 0))
        return;
    reply_bulk(&a->body, n->key, n->klen);
    a->n++;
}

void cmd_keys(kv_ctx *c)
{
    keys_acc a = {c->db, c->argv[1], c->argl[1], c->argl[1] == 1 && c->argv[1][0] == '*',
                  -1,    {0},        0,          kv_unix_ms()};
    size_t cur = 0;
    do
        cur = dict_scan(&c->db->keys, cur, collect_key, &a);
    while (cur);
    reply_array(c->out, a.n);
    sbuf_add(c->out, a.body.data, a.body.len);
    sbuf_free(&a.body);
}

/* The replies of a fan-out of array replies, as one array. */
static void merge_arrays(kv_ctx *c, const kv_item *items, unsigned n, sbuf *tmp)
{
    long long total = 0;
    sbuf_add(tmp, "", 1);
    for (unsigned s = 0; s < n; s++)
        total += atoll(tmp->data + items[s].off + 1);
    reply_array(c->out, total);
    for (unsigned s = 0; s < n; s++) {
        const char *p = tmp->data + items[s].off;
        const char *body = strchr(p, '\n') + 1;
        sbuf_add(c->out, body, items[s].len - (size_t)(body - p));
    }
}

void multi_keys(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (kv_exec_all(c->conn, c->argv, c->argl, c->argc, &tmp, items) < 0)
        c->conn->close_after = 1;
    else
        merge_arrays(c, items, kv_nshards(), &tmp);
    sbuf_free(&tmp);
}

/* cmd.h. Redis's cursor syntax is strtoul's: "-1" is the largest cursor. */
int scan_parse_cursor(const char *s, size_t n, unsigned long long *out)
{
    *out = 0;
    if (n == 0)
        return 0;
    int neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+') {
        s++;
        n--;
    }
    if (n == 0 || n > 20)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (~0ULL - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? 0 - v : v;
    return 0;
}

int scan_parse_opts(kv_ctx *c, int from, int with_type, scan_opts *o)
{
    *o = (scan_opts){NULL, 0, 1, -1, 10};
    for (int i = from; i < c->argc; i++) {
        int more = i + 1 < c->argc;
        if (more && arg_is(c, i, "count")) {
            if (arg_ll(c, i + 1, &o->count) < 0)
                return -1;
            if (o->count < 1) {
                reply_error(c->out, ERR_SYNTAX);
                return -1;
            }
            i++;
        } else if (more && arg_is(c, i, "match")) {
            o->pat = c->argv[i + 1];
            o->plen = c->argl[i + 1];
            o->all = o->plen == 1 && o->pat[0] == '*';
            i++;
        } else if (with_type && more && arg_is(c, i, "type")) {
            i++;
            o->type = arg_is(c, i, "string") ? KV_STRING
                      : arg_is(c, i, "hash") ? KV_HASH
                      : arg_is(c, i, "list") ? KV_LIST
                      : arg_is(c, i, "set")  ? KV_SET
                      : arg_is(c, i, "zset") ? KV_ZSET
                                             : 99; /* another Redis type: matches nothing */
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return -1;
        }
    }
    return 0;
}

/* SCAN's options after the cursor into a. Replies and returns -1 on error. */
static int scan_opts_keys(kv_ctx *c, keys_acc *a, long long *count)
{
    scan_opts o;
    if (scan_parse_opts(c, 2, 1, &o) < 0)
        return -1;
    a->pat = o.pat;
    a->plen = o.plen;
    a->all = o.all;
    a->type = o.type;
    *count = o.count;
    return 0;
}

/* SCAN on this shard alone, its cursor being this shard's table cursor. */
void cmd_scan(kv_ctx *c)
{
    unsigned long long cur;
    if (scan_parse_cursor(c->argv[1], c->argl[1], &cur) < 0) {
        reply_error(c->out, "ERR invalid cursor");
        return;
    }
    keys_acc a = {c->db, NULL, 0, 1, -1, {0}, 0, kv_unix_ms()};
    long long count;
    if (scan_opts_keys(c, &a, &count) < 0)
        return;
    /* Redis's bound on empty buckets walked per call, saturating (COUNT may be 2^63 - 1). */
    long long steps = count > LLONG_MAX / 10 ? LLONG_MAX : count * 10;
    do
        cur = dict_scan(&c->db->keys, (size_t)cur, collect_key, &a);
    while (cur && a.n < count && --steps > 0);
    reply_array(c->out, 2);
    reply_bulk_ll(c->out, (long long)cur);
    reply_array(c->out, a.n);
    sbuf_add(c->out, a.body.data, a.body.len);
    sbuf_free(&a.body);
}

void multi_scan(kv_ctx *c)
{
    /* The client's cursor: the shard in the low 8 bits, that shard's table cursor above.
     * One shard per call; its end moves the cursor to the next shard, and past the last one
     * the cursor is 0. */
    unsigned long long cur;
    if (scan_parse_cursor(c->argv[1], c->argl[1], &cur) < 0) {
        reply_error(c->out, "ERR invalid cursor");
        return;
    }
    keys_acc probe = {0};
    long long count;
    kv_ctx check = *c;
    sbuf errs = {0};
    check.out = &errs;
    probe.type = -1;
    if (scan_opts_keys(&check, &probe, &count) < 0) {
        sbuf_add(c->out, errs.data, errs.len);
        sbuf_free(&errs);
        return;
    }
    unsigned n = kv_nshards();
    unsigned shard = (unsigned)(cur & 0xff);
    if (shard >= n) {
        /* Not a cursor of ours (none names a shard past the last): the scan is over, as for
         * Redis's cursors past its table (on an empty keyspace Redis answers this for any). */
        reply_array(c->out, 2);
        reply_bulks(c->out, "0");
        reply_array(c->out, 0);
        return;
    }
    char local[32];
    snprintf(local, sizeof local, "%llu", cur >> 8);
    const char **argv = malloc((size_t)c->argc * sizeof *argv);
    size_t *argl = malloc((size_t)c->argc * sizeof *argl);
    if (!argv || !argl) {
        free(argv);
        free(argl);
        c->conn->close_after = 1;
        return;
    }
    memcpy(argv, c->argv, (size_t)c->argc * sizeof *argv);
    memcpy(argl, c->argl, (size_t)c->argc * sizeof *argl);
    argv[1] = local;
    argl[1] = strlen(local);
    kv_item it = {c->cmd, c->argc, argv, argl, 0, shard, 0, 0};
    sbuf tmp = {0};
    if (kv_exec_items(c->conn, &it, 1, &tmp) < 0) {
        c->conn->close_after = 1;
    } else {
        sbuf_add(&tmp, "", 1);
        const char *p = tmp.data + it.off;     /* *2 */
        const char *cb = strchr(p, '\n') + 1;  /* $n */
        const char *cv = strchr(cb, '\n') + 1; /* the shard's next cursor */
        unsigned long long next = strtoull(cv, NULL, 10);
        const char *keys = strchr(cv, '\n') + 1; /* *k and the keys */
        unsigned long long out;
        if (next)
            out = (next << 8) | shard;
        else
            out = shard + 1 < n ? shard + 1 : 0;
        reply_array(c->out, 2);
        reply_bulk_ll(c->out, (long long)out);
        sbuf_add(c->out, keys, it.len - (size_t)(keys - p));
    }
    sbuf_free(&tmp);
    free(argv);
    free(argl);
}

void cmd_randomkey(kv_ctx *c)
{
    for (int tries = 0; tries < 100; tries++) {
        kv_entry *e = (kv_entry *)dict_random(&c->db->keys, &c->db->rng);
        if (!e)
            break;
        if (kv_expired_at(e->expire_ms, kv_unix_ms())) {
            db_lookup(c->db, e->key, e->node.klen); /* expires it */
            continue;
        }
        reply_bulk(c->out, e->key, e->node.klen);
        return;
    }
    reply_null(c->out);
}

void multi_randomkey(kv_ctx *c)
{
    unsigned n = kv_nshards();
    unsigned first = (unsigned)(db_rand(c->db) % n);
    for (unsigned k = 0; k < n; k++) {
        kv_item it = {c->cmd, c->argc, c->argv, c->argl, 0, (first + k) % n, 0, 0};
        sbuf tmp = {0};
        if (kv_exec_items(c->conn, &it, 1, &tmp) < 0) {
            c->conn->close_after = 1;
            sbuf_free(&tmp);
            return;
        }
        int null = tmp.len >= 3 && memcmp(tmp.data + it.off, "$-1", 3) == 0;
        if (!null) {
            sbuf_add(c->out, tmp.data + it.off, it.len);
            sbuf_free(&tmp);
            return;
        }
        sbuf_free(&tmp);
    }
    reply_null(c->out);
}

void cmd_dbsize(kv_ctx *c)
{
    reply_int(c->out, (long long)c->db->keys.size);
}

static void multi_sum(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (kv_exec_all(c->conn, c->argv, c->argl, c->argc, &tmp, items) < 0) {
        c->conn->close_after = 1;
    } else {
        sbuf_add(&tmp, "", 1);
        long long n = 0;
        for (unsigned s = 0; s < kv_nshards(); s++)
            n += atoll(tmp.data + items[s].off + 1);
        reply_int(c->out, n);
    }
    sbuf_free(&tmp);
}

void multi_dbsize(kv_ctx *c)
{
    multi_sum(c);
}

void cmd_flushdb(kv_ctx *c)
{
    db_flush(c->db);
    reply_ok(c->out);
}

void multi_flushdb(kv_ctx *c)
{
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "async") && !arg_is(c, 1, "sync"))) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (kv_exec_all(c->conn, c->argv, c->argl, c->argc, &tmp, items) < 0)
        c->conn->close_after = 1;
    else
        reply_ok(c->out);
    sbuf_free(&tmp);
}

/* __shardstats: this shard's figures for INFO, as one line of numbers. */
void cmd_shardstats(kv_ctx *c)
{
    kv_shard *sh = kv_local();
    char line[512];
    const kv_aof *a = &sh->aof;
    int n =
        snprintf(line, sizeof line,
                 "%zu %zu %lld %llu %llu %llu %llu %zu %llu %llu %zu %d %llu %llu %llu %d %d %d "
                 "%llu",
                 c->db->keys.size, c->db->nexpires, kv_mem_used, (unsigned long long)c->db->nhits,
                 (unsigned long long)c->db->nmisses, (unsigned long long)c->db->nexpired,
                 (unsigned long long)c->db->nevicted, sh->nconns,
                 (unsigned long long)sh->nconns_total, (unsigned long long)sh->ncommands,
                 sh->nblocked, a->rewriting, (unsigned long long)a->nrewrites,
                 (unsigned long long)a->size, (unsigned long long)a->base_size, a->last_failed,
                 a->write_err || a->fsync_err, a->syncing, (unsigned long long)a->ndelayed);
    reply_bulk(c->out, line, (size_t)n);
}
