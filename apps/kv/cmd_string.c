/* String commands: GET, SET and its family, counters, ranges, MGET/MSET. Each proc runs on the
 * shard of its keys (cmd.h); multi_* split a command whose keys span shards. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

/* The string value of key, or NULL; *wrong is set when the key holds another type. */
static kv_entry *get_string(kv_ctx *c, int i, int *wrong)
{
    kv_entry *e = db_find(c->db, c->argv[i], c->argl[i]);
    *wrong = e && e->type != KV_STRING;
    return *wrong ? NULL : e;
}

void cmd_get(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong)
        reply_wrongtype(c);
    else if (!e)
        reply_null(c->out);
    else
        reply_bulk(c->out, e->v.str.p, e->v.str.len);
}

enum {
    SET_NX = 1,
    SET_XX = 2,
    SET_GET = 4,
    SET_KEEPTTL = 8,
    SET_EX = 16,
    SET_PX = 32,
    SET_EXAT = 64,
    SET_PXAT = 128
};

/* Turns an expire argument of unit `flags` (SET_EX ...) into an absolute Unix ms time, with
 * Redis's checks. Replies and returns -1 on error. */
static int expire_arg(kv_ctx *c, int i, unsigned flags, const char *name, int64_t *when)
{
    long long v;
    if (arg_ll(c, i, &v) < 0)
        return -1;
    int seconds = (flags & (SET_EX | SET_EXAT)) != 0;
    if (v <= 0 || (seconds && v > LLONG_MAX / 1000)) {
        reply_errorf(c->out, "ERR invalid expire time in '%s' command", name);
        return -1;
    }
    if (seconds)
        v *= 1000;
    if (flags & (SET_EX | SET_PX)) {
        long long now = kv_unix_ms();
        if (v > LLONG_MAX - now) {
            reply_errorf(c->out, "ERR invalid expire time in '%s' command", name);
            return -1;
        }
        v += now;
    }
    *when = v;
    return 0;
}

/* SET's core, shared with SETNX, SETEX, PSETEX, GETSET. */
static void set_generic(kv_ctx *c, unsigned flags, int64_t when, int val, const char *name)
{
    const char *key = c->argv[1];
    size_t klen = c->argl[1];
    kv_entry *old = db_lookup(c->db, key, klen);
    if ((flags & SET_GET) && old && old->type != KV_STRING) {
        reply_wrongtype(c);
        return;
    }
    int ok = !((flags & SET_NX) && old) && !((flags & SET_XX) && !old);
    if (flags & SET_GET) {
        if (old)
            reply_bulk(c->out, old->v.str.p, old->v.str.len);
        else
            reply_null(c->out);
    }
    if (!ok) {
        if (!(flags & SET_GET)) {
            if (strcmp(name, "setnx") == 0)
                reply_int(c->out, 0);
            else
                reply_null(c->out);
        }
        return;
    }
    kv_entry *e =
        db_set_string(c->db, key, klen, c->argv[val], c->argl[val], (flags & SET_KEEPTTL) != 0);
    if (!e) {
        if (!(flags & SET_GET))
            reply_error(c->out, "ERR out of memory");
        return;
    }
    if (when >= 0)
        db_set_expire(c->db, e, when);
    if (!(flags & SET_GET)) {
        if (strcmp(name, "setnx") == 0)
            reply_int(c->out, 1);
        else
            reply_ok(c->out);
    }
}

void cmd_set(kv_ctx *c)
{
    unsigned flags = 0;
    int exp_i = 0;
    for (int i = 3; i < c->argc; i++) {
        int more = i + 1 < c->argc;
        if (arg_is(c, i, "nx") && !(flags & SET_XX)) {
            flags |= SET_NX;
        } else if (arg_is(c, i, "xx") && !(flags & SET_NX)) {
            flags |= SET_XX;
        } else if (arg_is(c, i, "get")) {
            flags |= SET_GET;
        } else if (arg_is(c, i, "keepttl") && !(flags & (SET_EX | SET_PX | SET_EXAT | SET_PXAT))) {
            flags |= SET_KEEPTTL;
        } else if (more && (arg_is(c, i, "ex") || arg_is(c, i, "px") || arg_is(c, i, "exat") ||
                            arg_is(c, i, "pxat"))) {
            unsigned kind = arg_is(c, i, "ex")     ? SET_EX
                            : arg_is(c, i, "px")   ? SET_PX
                            : arg_is(c, i, "exat") ? SET_EXAT
                                                   : SET_PXAT;
            /* As Redis: the same kind again replaces the earlier value (the last wins);
             * another kind, or KEEPTTL, is a syntax error. */
            if (flags & ((SET_KEEPTTL | SET_EX | SET_PX | SET_EXAT | SET_PXAT) & ~kind)) {
                reply_error(c->out, ERR_SYNTAX);
                return;
            }
            flags |= kind;
            exp_i = ++i;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    int64_t when = -1;
    if (exp_i && expire_arg(c, exp_i, flags, "set", &when) < 0)
        return;
    set_generic(c, flags, when, 2, "set");
}

void cmd_setnx(kv_ctx *c)
{
    set_generic(c, SET_NX, -1, 2, "setnx");
}

void cmd_setex(kv_ctx *c)
{
    int64_t when;
    if (expire_arg(c, 2, SET_EX, "setex", &when) == 0)
        set_generic(c, 0, when, 3, "setex");
}

void cmd_psetex(kv_ctx *c)
{
    int64_t when;
    if (expire_arg(c, 2, SET_PX, "psetex", &when) == 0)
        set_generic(c, 0, when, 3, "psetex");
}

void cmd_getset(kv_ctx *c)
{
    set_generic(c, SET_GET, -1, 2, "getset");
}

void cmd_getdel(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
    } else if (!e) {
        reply_null(c->out);
    } else {
        reply_bulk(c->out, e->v.str.p, e->v.str.len);
        db_delete(c->db, e);
    }
}

/* GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]: the value, its expiry then set or
 * removed, as Redis 7.0's: the options checked first (SET's rules: one kind of expiry, the
 * same kind again replacing it; PERSIST alone), then the key, then the time (an EXAT/PXAT
 * already past deletes the key after the reply). */
void cmd_getex(kv_ctx *c)
{
    unsigned flags = 0;
    int exp_i = 0, persist = 0;
    for (int i = 2; i < c->argc; i++) {
        int more = i + 1 < c->argc;
        unsigned kind = !more                  ? 0
                        : arg_is(c, i, "ex")   ? SET_EX
                        : arg_is(c, i, "px")   ? SET_PX
                        : arg_is(c, i, "exat") ? SET_EXAT
                        : arg_is(c, i, "pxat") ? SET_PXAT
                                               : 0;
        if (arg_is(c, i, "persist") && !flags) {
            persist = 1;
        } else if (kind && !persist && !(flags & ~kind)) {
            flags |= kind;
            exp_i = ++i;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    if (!e) {
        reply_null(c->out);
        return;
    }
    int64_t when = -1;
    if (exp_i && expire_arg(c, exp_i, flags, "getex", &when) < 0)
        return;
    reply_bulk(c->out, e->v.str.p, e->v.str.len);
    if (exp_i && when <= kv_unix_ms())
        db_delete(c->db, e);
    else if (exp_i)
        db_set_expire(c->db, e, when);
    else if (persist) {
        c->unchanged = e->expire_ms < 0; /* no expiry to remove: Redis signals nothing */
        db_set_expire(c->db, e, -1);
    }
}

/* The integer a string value holds, as Redis's string2ll. */
static int value_ll(const kv_entry *e, long long *v)
{
    return resp_strtoll(e->v.str.p, e->v.str.len, v);
}

static void incr_generic(kv_ctx *c, long long by)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    long long v = 0;
    if (e && value_ll(e, &v) < 0) {
        reply_error(c->out, ERR_NOTINT);
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(c->out, ERR_OVERFLOW);
        return;
    }
    v += by;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (!db_set_string(c->db, c->argv[1], c->argl[1], buf, (size_t)n, 1)) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_int(c->out, v);
}

void cmd_incr(kv_ctx *c)
{
    incr_generic(c, 1);
}

void cmd_decr(kv_ctx *c)
{
    incr_generic(c, -1);
}

void cmd_incrby(kv_ctx *c)
{
    long long by;
    if (arg_ll(c, 2, &by) == 0)
        incr_generic(c, by);
}

void cmd_decrby(kv_ctx *c)
{
    long long by;
    if (arg_ll(c, 2, &by) < 0)
        return;
    if (by == LLONG_MIN) {
        reply_error(c->out, "ERR decrement would overflow");
        return;
    }
    incr_generic(c, -by);
}

void cmd_incrbyfloat(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    long double v = 0, by;
    if ((e && str_to_ld(e->v.str.p, e->v.str.len, &v) < 0) ||
        str_to_ld(c->argv[2], c->argl[2], &by) < 0) {
        reply_error(c->out, ERR_NOTFLOAT);
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        reply_error(c->out, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[5120];
    size_t n = ld_format(buf, sizeof buf, v);
    if (!db_set_string(c->db, c->argv[1], c->argl[1], buf, n, 1)) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_bulk(c->out, buf, n);
}

void cmd_append(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    if (!e) {
        e = db_set_string(c->db, c->argv[1], c->argl[1], c->argv[2], c->argl[2], 0);
        if (!e)
            reply_error(c->out, "ERR out of memory");
        else
            reply_int(c->out, (long long)e->v.str.len);
        return;
    }
    size_t old = e->v.str.len;
    if (old + c->argl[2] > (size_t)RESP_MAX_BULK) {
        reply_error(c->out, ERR_STRINGSIZE);
        return;
    }
    if (db_str_resize(e, old + c->argl[2]) < 0) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    memcpy(e->v.str.p + old, c->argv[2], c->argl[2]);
    reply_int(c->out, (long long)e->v.str.len);
}

void cmd_strlen(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong)
        reply_wrongtype(c);
    else
        reply_int(c->out, e ? (long long)e->v.str.len : 0);
}

void cmd_getrange(kv_ctx *c)
{
    long long start, end;
    if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &end) < 0)
        return;
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    long long len = e ? (long long)e->v.str.len : 0;
    /* Redis: both negative and start > end is empty; then clamp. */
    if (start < 0 && end < 0 && start > end) {
        reply_bulk(c->out, "", 0);
        return;
    }
    if (start < 0)
        start += len;
    if (end < 0)
        end += len;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (len == 0 || start > end)
        reply_bulk(c->out, "", 0);
    else
        reply_bulk(c->out, e->v.str.p + start, (size_t)(end - start + 1));
}

void cmd_setrange(kv_ctx *c)
{
    long long off;
    if (arg_ll(c, 2, &off) < 0)
        return;
    if (off < 0) {
        reply_error(c->out, "ERR offset is out of range");
        return;
    }
    int wrong;
    kv_entry *e = get_string(c, 1, &wrong);
    if (wrong) {
        reply_wrongtype(c);
        return;
    }
    size_t vlen = c->argl[3];
    if (vlen == 0) {
        reply_int(c->out, e ? (long long)e->v.str.len : 0);
        return;
    }
    if ((unsigned long long)off + vlen > (unsigned long long)RESP_MAX_BULK) {
        reply_error(c->out, ERR_STRINGSIZE);
        return;
    }
    if (!e)
        e = db_set_string(c->db, c->argv[1], c->argl[1], "", 0, 0);
    if (!e || ((size_t)off + vlen > e->v.str.len && db_str_resize(e, (size_t)off + vlen) < 0)) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    memcpy(e->v.str.p + off, c->argv[3], vlen);
    reply_int(c->out, (long long)e->v.str.len);
}

void cmd_mget(kv_ctx *c)
{
    reply_array(c->out, c->argc - 1);
    for (int i = 1; i < c->argc; i++) {
        kv_entry *e = db_find(c->db, c->argv[i], c->argl[i]);
        if (e && e->type == KV_STRING)
            reply_bulk(c->out, e->v.str.p, e->v.str.len);
        else
            reply_null(c->out);
    }
}

static int mset_arity(kv_ctx *c)
{
    if (c->argc % 2 == 1)
        return 0;
    reply_arity(c->out, c->argv[0], c->argl[0]);
    return -1;
}

void cmd_mset(kv_ctx *c)
{
    if (mset_arity(c) < 0)
        return;
    for (int i = 1; i < c->argc; i += 2)
        if (!db_set_string(c->db, c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1], 0)) {
            reply_error(c->out, "ERR out of memory");
            return;
        }
    reply_ok(c->out);
}

void cmd_msetnx(kv_ctx *c)
{
    if (mset_arity(c) < 0)
        return;
    for (int i = 1; i < c->argc; i += 2)
        if (db_lookup(c->db, c->argv[i], c->argl[i])) {
            reply_int(c->out, 0);
            return;
        }
    for (int i = 1; i < c->argc; i += 2)
        db_set_string(c->db, c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1], 0);
    reply_int(c->out, 1);
}

/* ---- Across shards ---- */

void multi_mget(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = sbuf_like(c->out);
    void *arena[2];
    int *pos;
    int m = kv_split_keys(c, 1, items, &tmp, arena, &pos);
    size_t *eoff = malloc((size_t)c->argc * sizeof *eoff);
    size_t *elen = malloc((size_t)c->argc * sizeof *elen);
    sbuf_add(&tmp, "", 1); /* a terminator for strchr past the last reply */
    if (m < 0 || tmp.oom || !eoff || !elen) {
        c->conn->close_after = 1;
    } else {
        /* Shard s's reply is *k then k replies in its keys' order: index them all (shard
         * s's first at base[s]), then emit them in the request's order. */
        size_t base[WEFT_WORKERS_MAX], next = 0;
        for (int k = 0; k < m; k++) {
            base[items[k].shard] = next;
            const char *p = tmp.data + items[k].off;
            p += kv_skip_reply(p); /* the *k header */
            for (int a = 1; a < items[k].argc; a++) {
                eoff[next] = (size_t)(p - tmp.data);
                elen[next] = kv_skip_reply(p);
                p += elen[next++];
            }
        }
        reply_array(c->out, c->argc - 1);
        for (int i = 1; i < c->argc; i++) {
            size_t e = base[kv_key_shard(c->argv[i], c->argl[i])] + (size_t)pos[i] - 1;
            sbuf_add(c->out, tmp.data + eoff[e], elen[e]);
        }
    }
    free(eoff);
    free(elen);
    kv_split_free(arena, pos);
    sbuf_free(&tmp);
}

void multi_mset(kv_ctx *c)
{
    if (mset_arity(c) < 0)
        return;
    /* kv_split_keys holds every shard involved while the parts run: atomic (tx.c). */
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    void *arena[2];
    int *pos;
    if (kv_split_keys(c, 2, items, &tmp, arena, &pos) < 0)
        c->conn->close_after = 1;
    else
        reply_ok(c->out);
    kv_split_free(arena, pos);
    sbuf_free(&tmp);
}

void multi_msetnx(kv_ctx *c)
{
    if (mset_arity(c) < 0)
        return;
    /* Atomic across shards: with every shard involved held, EXISTS on each shard's keys,
     * then the MSET parts if none exists. */
    int argc = c->argc;
    const char **keys = malloc((size_t)argc * sizeof *keys);
    size_t *klens = malloc((size_t)argc * sizeof *klens);
    kv_item sets[WEFT_WORKERS_MAX], checks[WEFT_WORKERS_MAX];
    void *arena_s[2] = {NULL, NULL}, *arena_c[2] = {NULL, NULL};
    int *pos_s = NULL, *pos_c = NULL;
    int ms = -ENOMEM, mc = -ENOMEM;
    if (keys && klens) {
        keys[0] = "exists";
        klens[0] = 6;
        int nk = 1;
        for (int i = 1; i < argc; i += 2) {
            keys[nk] = c->argv[i];
            klens[nk++] = c->argl[i];
        }
        kv_ctx ex = *c;
        ex.argc = nk;
        ex.argv = keys;
        ex.argl = klens;
        ex.cmd = kv_command_find("exists", 6, 0);
        mc = kv_split_build(&ex, 1, checks, arena_c, &pos_c);
        kv_ctx ms_ctx = *c;
        ms_ctx.cmd = kv_command_find("mset", 4, 0);
        ms = kv_split_build(&ms_ctx, 2, sets, arena_s, &pos_s);
    }
    kv_tx tx;
    sbuf tmp = {0};
    int r = ms < 0 ? ms : mc < 0 ? mc : kv_tx_begin(&tx, c->conn, checks, (size_t)mc, &tmp);
    long long found = 0;
    if (r == 0) {
        sbuf_add(&tmp, "", 1);
        for (int k = 0; k < mc; k++)
            found += atoll(tmp.data + checks[k].off + 1);
        if (found == 0)
            r = kv_tx_run(&tx, sets, (size_t)ms, &tmp);
        kv_tx_end(&tx);
    }
    sbuf_free(&tmp);
    if (r < 0)
        c->conn->close_after = 1;
    else
        reply_int(c->out, found ? 0 : 1);
    kv_split_free(arena_s, pos_s);
    kv_split_free(arena_c, pos_c);
    free(keys);
    free(klens);
}
