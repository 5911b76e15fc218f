/* Hash commands: HSET HMSET HSETNX HGET HMGET HDEL HGETALL HKEYS HVALS HLEN HSTRLEN HEXISTS
 * HINCRBY HINCRBYFLOAT. A hash is a dict of kv_field records on its key's shard; replies and
 * errors, and their order, are Redis 7.0's. */
#include <stdbool.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

/* The hash at key, or NULL; replies WRONGTYPE (and sets *wrong) for another type. */
static kv_entry *get_hash(kv_ctx *c, int create, int *wrong)
{
    kv_entry *e =
        create ? db_lookup(c->db, c->argv[1], c->argl[1]) : db_find(c->db, c->argv[1], c->argl[1]);
    *wrong = 0;
    if (e && e->type != KV_HASH) {
        *wrong = 1;
        reply_wrongtype(c);
        return NULL;
    }
    if (!e && create) {
        e = db_create(c->db, c->argv[1], c->argl[1], KV_HASH);
        if (!e) {
            *wrong = 1;
            reply_error(c->out, "ERR out of memory");
        }
    }
    return e;
}

static kv_field *find_field(kv_entry *e, const char *f, size_t flen)
{
    return (kv_field *)dict_find(e->v.hash, f, flen, kv_hash(f, flen));
}

int hash_set(kv_entry *e, const char *f, size_t flen, const char *v, size_t vlen)
{
    kv_blob *b = kv_malloc(sizeof *b + vlen);
    if (!b)
        return -1;
    b->len = vlen;
    memcpy(b->data, v, vlen);
    kv_field *fl = find_field(e, f, flen);
    if (fl) {
        kv_free(fl->val);
        fl->val = b;
        return 0;
    }
    fl = kv_malloc(sizeof *fl + flen + 1);
    if (!fl) {
        kv_free(b);
        return -1;
    }
    memcpy(fl->name, f, flen);
    fl->name[flen] = 0;
    fl->node.key = fl->name;
    fl->node.klen = flen;
    fl->node.hash = kv_hash(f, flen);
    fl->val = b;
    dict_add(e->v.hash, &fl->node);
    return 1;
}

/* HSET's and HMSET's work: sets every field-value pair; false (the reply written) on a
 * misuse or no memory, else true with the count of new fields in *added. */
static bool set_fields(kv_ctx *c, long long *added)
{
    if (c->argc % 2 == 1) {
        reply_arity(c->out, c->argv[0], c->argl[0]);
        return false;
    }
    int wrong;
    kv_entry *e = get_hash(c, 1, &wrong);
    if (!e)
        return false;
    *added = 0;
    for (int i = 2; i < c->argc; i += 2) {
        int r = hash_set(e, c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1]);
        if (r < 0) {
            db_delete_if_empty(c->db, e);
            reply_error(c->out, "ERR out of memory");
            return false;
        }
        *added += r;
    }
    return true;
}

void cmd_hset(kv_ctx *c)
{
    long long added;
    if (set_fields(c, &added))
        reply_int(c->out, added);
}

/* HMSET: HSET's older form (deprecated in Redis 4, still sent by many clients): +OK. */
void cmd_hmset(kv_ctx *c)
{
    long long added;
    if (set_fields(c, &added))
        reply_ok(c->out);
}

void cmd_hget(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    kv_field *f = e ? find_field(e, c->argv[2], c->argl[2]) : NULL;
    if (f)
        reply_bulk(c->out, f->val->data, f->val->len);
    else
        reply_null(c->out);
}

void cmd_hdel(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    long long n = 0;
    for (int i = 2; e && i < c->argc; i++) {
        kv_field *f = find_field(e, c->argv[i], c->argl[i]);
        if (f) {
            dict_remove(e->v.hash, &f->node);
            kv_free(f->val);
            kv_free(f);
            n++;
        }
    }
    if (e)
        db_delete_if_empty(c->db, e);
    reply_int(c->out, n);
}

static void add_field(dnode *n, void *arg)
{
    kv_field *f = (kv_field *)n;
    reply_bulk(arg, f->name, f->node.klen);
    reply_bulk(arg, f->val->data, f->val->len);
}

void cmd_hgetall(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    if (!e) {
        reply_map(c->out, 0);
        return;
    }
    reply_map(c->out, (long long)e->v.hash->size);
    size_t cur = 0;
    do
        cur = dict_scan(e->v.hash, cur, add_field, c->out);
    while (cur);
}

void cmd_hlen(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (!wrong)
        reply_int(c->out, e ? (long long)e->v.hash->size : 0);
}

void cmd_hexists(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (!wrong)
        reply_int(c->out, e && find_field(e, c->argv[2], c->argl[2]) ? 1 : 0);
}

void cmd_hincrby(kv_ctx *c)
{
    long long by;
    if (arg_ll(c, 3, &by) < 0)
        return;
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    long long v = 0;
    kv_field *f = e ? find_field(e, c->argv[2], c->argl[2]) : NULL;
    if (f && resp_strtoll(f->val->data, f->val->len, &v) < 0) {
        reply_error(c->out, "ERR hash value is not an integer");
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(c->out, ERR_OVERFLOW);
        return;
    }
    v += by;
    if (!e && !(e = get_hash(c, 1, &wrong)))
        return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (hash_set(e, c->argv[2], c->argl[2], buf, (size_t)n) < 0) {
        db_delete_if_empty(c->db, e);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_int(c->out, v);
}

void cmd_hsetnx(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 1, &wrong);
    if (!e)
        return;
    if (find_field(e, c->argv[2], c->argl[2])) {
        reply_int(c->out, 0);
        return;
    }
    if (hash_set(e, c->argv[2], c->argl[2], c->argv[3], c->argl[3]) < 0) {
        db_delete_if_empty(c->db, e);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_int(c->out, 1);
}

void cmd_hmget(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    reply_array(c->out, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        kv_field *f = e ? find_field(e, c->argv[i], c->argl[i]) : NULL;
        if (f)
            reply_bulk(c->out, f->val->data, f->val->len);
        else
            reply_null(c->out);
    }
}

static void add_name(dnode *n, void *arg)
{
    reply_bulk(arg, n->key, n->klen);
}

static void add_value(dnode *n, void *arg)
{
    kv_field *f = (kv_field *)n;
    reply_bulk(arg, f->val->data, f->val->len);
}

/* HKEYS and HVALS: a plain array in RESP3 too (Redis's), in the dict's order. */
static void reply_column(kv_ctx *c, dict_scan_fn add)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    reply_array(c->out, e ? (long long)e->v.hash->size : 0);
    size_t cur = 0;
    if (e)
        do
            cur = dict_scan(e->v.hash, cur, add, c->out);
        while (cur);
}

void cmd_hkeys(kv_ctx *c)
{
    reply_column(c, add_name);
}

void cmd_hvals(kv_ctx *c)
{
    reply_column(c, add_value);
}

void cmd_hstrlen(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    kv_field *f = e ? find_field(e, c->argv[2], c->argl[2]) : NULL;
    reply_int(c->out, f ? (long long)f->val->len : 0);
}

/* HINCRBYFLOAT: Redis's checks in its order (the increment, its finiteness, the type, the
 * field's value, the result), the result formatted as INCRBYFLOAT's. */
void cmd_hincrbyfloat(kv_ctx *c)
{
    long double by, v = 0;
    if (str_to_ld(c->argv[3], c->argl[3], &by) < 0) {
        reply_error(c->out, ERR_NOTFLOAT);
        return;
    }
    if (isnan(by) || isinf(by)) {
        reply_error(c->out, "ERR value is NaN or Infinity");
        return;
    }
    int wrong;
    kv_entry *e = get_hash(c, 0, &wrong);
    if (wrong)
        return;
    kv_field *f = e ? find_field(e, c->argv[2], c->argl[2]) : NULL;
    if (f && str_to_ld(f->val->data, f->val->len, &v) < 0) {
        reply_error(c->out, "ERR hash value is not a float");
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        reply_error(c->out, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[5120]; /* %.17Lf of LDBL_MAX: about 4,950 digits */
    size_t n = ld_format(buf, sizeof buf, v);
    if (!e && !(e = get_hash(c, 1, &wrong)))
        return;
    if (hash_set(e, c->argv[2], c->argl[2], buf, n) < 0) {
        db_delete_if_empty(c->db, e);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_bulk(c->out, buf, n);
}
