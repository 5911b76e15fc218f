/* List commands: pushes and pops at both ends, LLEN, LRANGE, and BLPOP/BRPOP, which park the
 * connection's task in their keys' queues until a push hands them an element (block.c). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

static kv_entry *get_list(kv_ctx *c, int *wrong)
{
    kv_entry *e = db_find(c->db, c->argv[1], c->argl[1]);
    *wrong = e && e->type != KV_LIST;
    if (*wrong)
        reply_wrongtype(c);
    return *wrong ? NULL : e;
}

static void push_generic(kv_ctx *c, int left)
{
    int wrong;
    kv_entry *e = get_list(c, &wrong);
    if (wrong)
        return;
    if (!e && !(e = db_create(c->db, c->argv[1], c->argl[1], KV_LIST))) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    for (int i = 2; i < c->argc; i++)
        if (list_push(e->v.list, c->argv[i], c->argl[i], left) < 0) {
            db_delete_if_empty(c->db, e);
            reply_error(c->out, "ERR out of memory");
            return;
        }
    reply_int(c->out, (long long)e->v.list->len);
    db_signal_key(c->db, c->argv[1], c->argl[1]);
}

void cmd_lpush(kv_ctx *c)
{
    push_generic(c, 1);
}

void cmd_rpush(kv_ctx *c)
{
    push_generic(c, 0);
}

static void pop_generic(kv_ctx *c, int left)
{
    long long count = -1;
    if (c->argc > 3) {
        reply_arity(c->out, c->argv[0], c->argl[0]);
        return;
    }
    if (c->argc == 3) {
        if (resp_strtoll(c->argv[2], c->argl[2], &count) < 0 || count < 0) {
            reply_error(c->out, ERR_POSITIVE);
            return;
        }
    }
    int wrong;
    kv_entry *e = get_list(c, &wrong);
    if (wrong)
        return;
    if (!e) {
        if (count >= 0)
            reply_null_array(c->out);
        else
            reply_null(c->out);
        return;
    }
    kv_list *l = e->v.list;
    if (count >= 0) {
        long long n = count < (long long)l->len ? count : (long long)l->len;
        reply_array(c->out, n);
        for (long long i = 0; i < n; i++) {
            kv_blob *b = list_pop(l, left);
            reply_bulk(c->out, b->data, b->len);
            kv_free(b);
        }
    } else {
        kv_blob *b = list_pop(l, left);
        reply_bulk(c->out, b->data, b->len);
        kv_free(b);
    }
    db_delete_if_empty(c->db, e);
}

void cmd_lpop(kv_ctx *c)
{
    pop_generic(c, 1);
}

void cmd_rpop(kv_ctx *c)
{
    pop_generic(c, 0);
}

void cmd_llen(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_list(c, &wrong);
    if (!wrong)
        reply_int(c->out, e ? (long long)e->v.list->len : 0);
}

void cmd_lrange(kv_ctx *c)
{
    long long start, end;
    if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &end) < 0)
        return;
    int wrong;
    kv_entry *e = get_list(c, &wrong);
    if (wrong)
        return;
    long long n = index_range(&start, end, e ? (long long)e->v.list->len : 0);
    reply_array(c->out, n);
    for (long long i = start; i < start + n; i++) {
        kv_blob *b = list_at(e->v.list, (size_t)i);
        reply_bulk(c->out, b->data, b->len);
    }
}

static void bpop_generic(kv_ctx *c, int left)
{
    long double secs;
    /* "inf" is a float (Redis's string2ld takes it), too large a timeout: out of range below,
     * as 1e400 is; "-inf" is negative. Redis 7.0.15 says "negative" for both, from a cast
     * that overflows; later versions check the range first, as here. */
    if (str_to_ld(c->argv[c->argc - 1], c->argl[c->argc - 1], &secs) < 0) {
        reply_error(c->out, "ERR timeout is not a float or out of range");
        return;
    }
    /* Redis takes the timeout in milliseconds rounded up (ceill of the same long double
     * product): above -1 ms it is 0, no timeout. */
    if (ceill(secs * 1000.0) < 0) {
        reply_error(c->out, "ERR timeout is negative");
        return;
    }
    if (secs < 0)
        secs = 0;
    if (secs * 1000 > (long double)LLONG_MAX) {
        reply_error(c->out, "ERR timeout is out of range");
        return;
    }
    /* Past a century the deadline is as good as none (and weft's clock cannot hold it). */
    int64_t deadline = secs == 0 || secs > 3.0e9L
                           ? WEFT_FOREVER
                           : weft_now() + (int64_t)(secs * (long double)WEFT_SEC);
    int nkeys = c->argc - 2;
    const char *const *keys = c->argv + 1;
    const size_t *klens = c->argl + 1;
    const kv_command *pop = kv_command_find(left ? "lpop" : "rpop", 4, 0);
    /* Try the keys in order, each on its shard. */
    for (int i = 0; i < nkeys; i++) {
        const char *argv[2] = {pop->name, keys[i]};
        size_t argl[2] = {4, klens[i]};
        kv_item it = {pop, 2, argv, argl, 0, kv_key_shard(keys[i], klens[i]), 0, 0};
        sbuf tmp = {0};
        if (kv_exec_items(c->conn, &it, 1, &tmp) < 0) {
            sbuf_free(&tmp);
            c->conn->close_after = 1;
            return;
        }
        const char *r = tmp.data + it.off;
        if (r[0] == '-') { /* WRONGTYPE */
            sbuf_add(c->out, r, it.len);
            sbuf_free(&tmp);
            return;
        }
        if (r[0] == '$' && r[1] != '-') {
            reply_array(c->out, 2);
            reply_bulk(c->out, keys[i], klens[i]);
            sbuf_add(c->out, r, it.len);
            sbuf_free(&tmp);
            return;
        }
        sbuf_free(&tmp);
    }
    /* Inside EXEC nothing blocks: no element is the timeout's reply at once (Redis's); nor
     * in an AOF's replay (a file of another server's may hold a BLPOP: Redis's loader does
     * not block either, and ours would have waited for ever, before any signal handler). */
    if (c->conn->in_exec || c->conn->replay ||
        (deadline != WEFT_FOREVER && weft_now() >= deadline)) {
        reply_null_array(c->out);
        return;
    }
    if (c->out->len && c->conn->fd >= 0) { /* the replies of the batch before go out first */
        kv_aof_wait(kv_local());
        if (weft_write(c->conn->fd, c->out->data, c->out->len, WEFT_FOREVER) < 0) {
            c->conn->close_after = 1;
            return;
        }
        c->out->len = 0;
    }
    /* Then queue up behind the clients blocked on these keys before (block.c). */
    if (kv_block_pop(c->conn, keys, klens, (size_t)nkeys, left, deadline, c->out) < 0)
        c->conn->close_after = 1;
}

void multi_blpop(kv_ctx *c)
{
    bpop_generic(c, 1);
}

void multi_brpop(kv_ctx *c)
{
    bpop_generic(c, 0);
}
