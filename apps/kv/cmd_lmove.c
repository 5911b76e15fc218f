/* RPOPLPUSH and LMOVE: an element popped off one list and pushed onto another, in one step.
 * With both keys on one shard the proc does it there. Across shards the move is a transaction
 * over both (tx.c), as RENAME's: with the two shards held, the first phase reads what Redis
 * checks (the source's end element, the destination's type), the second pops and pushes with
 * the ordinary LPOP/RPOP and LPUSH/RPUSH, so each shard logs, signals its watchers and serves
 * its blocked clients as for any pop and push. No client sees the element in both lists or in
 * neither. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

/* LMOVE's LEFT|RIGHT at argv[i]: 1 left, 0 right, or -1 with the syntax error replied. */
static int arg_end(kv_ctx *c, int i)
{
    if (arg_is(c, i, "left"))
        return 1;
    if (arg_is(c, i, "right"))
        return 0;
    reply_error(c->out, ERR_SYNTAX);
    return -1;
}

/* Both keys on this shard: Redis's lmoveGenericCommand. The source is checked first (missing:
 * null), then the destination's type; the same key rotates its list. */
static void move_here(kv_ctx *c, int from_left, int to_left)
{
    int wrong;
    kv_entry *src = get_typed(c, KV_LIST, 0, &wrong);
    if (wrong)
        return;
    if (!src) {
        reply_null(c->out);
        return;
    }
    kv_entry *dst = db_lookup(c->db, c->argv[2], c->argl[2]);
    if (dst && dst->type != KV_LIST) {
        reply_wrongtype(c);
        return;
    }
    if (!dst && !(dst = db_create(c->db, c->argv[2], c->argl[2], KV_LIST))) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    /* The element stays allocated until its copy is pushed: src may be dst. */
    kv_blob *b = list_pop(src->v.list, from_left);
    if (list_push(dst->v.list, b->data, b->len, to_left) < 0) {
        list_push(src->v.list, b->data, b->len, from_left); /* room: it was just there */
        kv_free(b);
        db_delete_if_empty(c->db, dst);
        reply_error(c->out, "ERR out of memory");
        return;
    }
    reply_bulk(c->out, b->data, b->len);
    kv_free(b);
    db_delete_if_empty(c->db, src);
    db_signal_key(c->db, c->argv[2], c->argl[2]);
}

void cmd_rpoplpush(kv_ctx *c)
{
    move_here(c, 0, 1);
}

void cmd_lmove(kv_ctx *c)
{
    int from_left = arg_end(c, 3), to_left = from_left < 0 ? -1 : arg_end(c, 4);
    if (to_left >= 0)
        move_here(c, from_left, to_left);
}

/* The keys on two shards (see the top of the file). */
static void move_across(kv_ctx *c, int from_left, int to_left)
{
    unsigned ssrc = kv_key_shard(c->argv[1], c->argl[1]);
    unsigned sdst = kv_key_shard(c->argv[2], c->argl[2]);
    const char *peek[3] = {"lindex", c->argv[1], from_left ? "0" : "-1"};
    size_t peekl[3] = {6, c->argl[1], from_left ? 1u : 2u};
    const char *type[2] = {"type", c->argv[2]};
    size_t typel[2] = {4, c->argl[2]};
    kv_item check[2] = {
        {kv_command_find("lindex", 6, 0), 3, peek, peekl, 0, ssrc, 0, 0},
        {kv_command_find("type", 4, 0), 2, type, typel, 0, sdst, 0, 0},
    };
    kv_tx tx;
    sbuf tmp = {0}, tmp2 = {0}; /* RESP2 whatever the client's: only parsed here */
    if (kv_tx_begin(&tx, c->conn, check, 2, &tmp) < 0) {
        c->conn->close_after = 1;
        sbuf_free(&tmp);
        return;
    }
    sbuf_add(&tmp, "", 1); /* a terminator for the parsing below */
    const char *elem = tmp.data + check[0].off, *dtype = tmp.data + check[1].off;
    int r = 0;
    if (elem[0] == '-') { /* WRONGTYPE */
        sbuf_add(c->out, elem, check[0].len);
    } else if (elem[1] == '-') { /* no source */
        reply_null(c->out);
    } else if (strncmp(dtype, "+none\r", 6) != 0 && strncmp(dtype, "+list\r", 6) != 0) {
        reply_wrongtype(c);
    } else {
        const char *body = strchr(elem, '\n') + 1;
        size_t blen = (size_t)atoll(elem + 1);
        const char *pop[2] = {from_left ? "lpop" : "rpop", c->argv[1]};
        size_t popl[2] = {4, c->argl[1]};
        const char *push[3] = {to_left ? "lpush" : "rpush", c->argv[2], body};
        size_t pushl[3] = {5, c->argl[2], blen};
        kv_item move[2] = {
            {kv_command_find(pop[0], 4, 0), 2, pop, popl, 0, ssrc, 0, 0},
            {kv_command_find(push[0], 5, 0), 3, push, pushl, 0, sdst, 0, 0},
        };
        r = kv_tx_run(&tx, move, 2, &tmp2);
        if (r == 0)
            reply_bulk(c->out, body, blen);
    }
    kv_tx_end(&tx);
    if (r < 0)
        c->conn->close_after = 1;
    sbuf_free(&tmp);
    sbuf_free(&tmp2);
}

void multi_rpoplpush(kv_ctx *c)
{
    move_across(c, 0, 1);
}

void multi_lmove(kv_ctx *c)
{
    int from_left = arg_end(c, 3), to_left = from_left < 0 ? -1 : arg_end(c, 4);
    if (to_left >= 0)
        move_across(c, from_left, to_left);
}
