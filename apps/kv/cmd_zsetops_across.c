/* Sorted-set algebra and ZRANGESTORE with keys on several shards: each a transaction over the
 * shards involved (tx.c), as SINTERSTORE's across shards (cmd_setops.c). The first phase
 * fetches every source on its shard (__zfetch: the members with their scores, or WRONGTYPE;
 * for ZRANGESTORE __zrangefetch: the range, or ZRANGE's error) while the destination's shard
 * is held too; the coordinator computes from those copies (zsetops.h), and a STORE's second
 * phase writes the result on the destination's shard as DEL then ZADD, every shard still
 * held: no client sees the sources and the destination out of step. The DEL and the ZADD run
 * as commands there, so they touch the destination's watchers and go to that shard's AOF as
 * any DEL and ZADD would.
 *
 * Scores travel as RESP2 doubles (%.17g, or inf and -inf), which strtod and ZADD read back to
 * the same double. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "zsetops.h"

/* The n bulks of the RESP2 array at p (its header line first) into argv/argl. */
static void parse_bulks(const char *p, long long n, const char **argv, size_t *argl)
{
    p = strchr(p, '\n') + 1;
    for (long long i = 0; i < n; i++) { /* $len\r\nbytes\r\n */
        argl[i] = (size_t)atoll(p + 1);
        argv[i] = strchr(p, '\n') + 1;
        p = argv[i] + argl[i] + 2;
    }
}

/* A copy of a fetched source (the RESP2 array member, score, ...) into d. 0 or -1 (OOM). */
static int parse_source(const char *p, dict *d)
{
    long long n = atoll(p + 1);
    const char **argv = malloc((size_t)(n + 1) * sizeof *argv);
    size_t *argl = malloc((size_t)(n + 1) * sizeof *argl);
    int r = argv && argl ? 0 : -1;
    if (r == 0)
        parse_bulks(p, n, argv, argl);
    for (long long i = 0; r == 0 && i + 1 < n; i += 2) {
        char num[64]; /* a %.17g double is at most 24 bytes */
        size_t k = argl[i + 1] < sizeof num ? argl[i + 1] : sizeof num - 1;
        memcpy(num, argv[i + 1], k);
        num[k] = 0;
        r = zscored_add(d, argv[i], argl[i], strtod(num, NULL));
    }
    free(argv);
    free(argl);
    return r;
}

/* Writes the (score, member) pairs pairs[0 .. 2 * n) as the whole of dst in the next phase of
 * tx: DEL, then ZADD when there is any. Returns 0 or -1 (OOM, or the phase failed). */
static int store_across(kv_ctx *c, kv_tx *tx, const char *const *pairs, const size_t *pairl,
                        long long n)
{
    const char **argv = malloc((size_t)(2 * n + 2) * sizeof *argv);
    size_t *argl = malloc((size_t)(2 * n + 2) * sizeof *argl);
    int r = -1;
    if (argv && argl) {
        argv[0] = "zadd";
        argl[0] = 4;
        argv[1] = c->argv[1];
        argl[1] = c->argl[1];
        memcpy(argv + 2, pairs, (size_t)(2 * n) * sizeof *argv);
        memcpy(argl + 2, pairl, (size_t)(2 * n) * sizeof *argl);
        const char *del[2] = {"del", c->argv[1]};
        size_t dell[2] = {3, c->argl[1]};
        unsigned s = kv_key_shard(c->argv[1], c->argl[1]);
        kv_item items[2] = {
            {kv_command_find("del", 3, 0), 2, del, dell, 0, s, 0, 0},
            {kv_command_find("zadd", 4, 0), (int)(2 * n + 2), argv, argl, 0, s, 0, 0},
        };
        sbuf tmp = {0};
        r = kv_tx_run(tx, items, n ? 2 : 1, &tmp);
        sbuf_free(&tmp);
    }
    free(argv);
    free(argl);
    return r;
}

/* A result stored across shards: z as (score, member) pairs. 0 or -1. */
static int store_result(kv_ctx *c, kv_tx *tx, const kv_zset *z)
{
    long long n = (long long)z->len;
    const char **pairs = malloc((size_t)(2 * n + 1) * sizeof *pairs);
    size_t *pairl = malloc((size_t)(2 * n + 1) * sizeof *pairl);
    char *nums = malloc((size_t)n * 32 + 1); /* each %.17g fits in 32 */
    int r = -1;
    if (pairs && pairl && nums) {
        long long i = 0;
        for (const kv_znode *x = zset_first(z); x; x = x->next[0], i++) {
            char *num = nums + i * 32;
            pairs[2 * i] = num;
            pairl[2 * i] = (size_t)snprintf(num, 32, "%.17g", x->score);
            pairs[2 * i + 1] = x->node.key;
            pairl[2 * i + 1] = x->node.klen;
        }
        r = store_across(c, tx, pairs, pairl, n);
    }
    free(pairs);
    free(pairl);
    free(nums);
    return r;
}

/* The first phase: __zfetch of every source, with dst's shard held for a STORE; the copies
 * into copies[] and srcs[]. Returns 0, 1 with an error replied (a source's WRONGTYPE, no
 * memory), both with tx begun for the caller to end; or -1 with nothing held (the connection
 * must close). */
static int gather_across(kv_ctx *c, const zop *o, kv_tx *tx, dict *copies, zsrc *srcs)
{
    int n = o->nkeys;
    sbuf tmp = {0}; /* RESP2 whatever the client's: parsed here only */
    const char **rep = malloc((size_t)n * sizeof *rep);
    int r = rep ? kv_fetch_across(c, tx, "__zfetch", 1, o->first, n, o->store ? c->argv[1] : NULL,
                                  c->argl[1], &tmp, rep)
                : -1;
    for (int i = 0; i < n && r == 0; i++) {
        srcs[i] = (zsrc){&copies[i], ZSRC_SCORED, 1.0};
        if (parse_source(rep[i], &copies[i]) < 0) {
            reply_error(c->out, "ERR out of memory");
            r = 1;
        }
    }
    free(rep);
    sbuf_free(&tmp);
    return r;
}

static void op_across(kv_ctx *c, int op, int store, int card)
{
    zop o;
    if (zop_parse(c, &o, op, store, card) < 0)
        return;
    dict *copies = calloc((size_t)o.nkeys, sizeof *copies);
    zsrc *srcs = malloc((size_t)o.nkeys * sizeof *srcs);
    kv_tx tx;
    int r = copies && srcs ? gather_across(c, &o, &tx, copies, srcs) : -1;
    if (r < 0)
        c->conn->close_after = 1;
    if (r == 0 && o.err)
        reply_error(c->out, o.err);
    if (r == 0 && !o.err) {
        dict acc = {0};
        long long count;
        kv_zset *z = NULL;
        if (zop_compute(&o, srcs, &acc, &count) < 0 ||
            (!card && !(z = zop_result(&acc, &c->db->rng))))
            reply_error(c->out, "ERR out of memory");
        else if (card)
            reply_int(c->out, count);
        else if (!store)
            zrange_reply(c, zset_first(z), (long long)z->len, 0, o.withscores);
        else if (store_result(c, &tx, z) < 0)
            c->conn->close_after = 1;
        else
            reply_int(c->out, (long long)z->len);
        if (z)
            zset_free(z);
        zscored_clear(&acc);
    }
    if (r >= 0)
        kv_tx_end(&tx);
    for (int i = 0; copies && i < o.nkeys; i++)
        zscored_clear(&copies[i]);
    free(copies);
    free(srcs);
    zop_free(&o);
}

void multi_zunion(kv_ctx *c)
{
    op_across(c, ZOP_UNION, 0, 0);
}

void multi_zinter(kv_ctx *c)
{
    op_across(c, ZOP_INTER, 0, 0);
}

void multi_zdiff(kv_ctx *c)
{
    op_across(c, ZOP_DIFF, 0, 0);
}

void multi_zunionstore(kv_ctx *c)
{
    op_across(c, ZOP_UNION, 1, 0);
}

void multi_zinterstore(kv_ctx *c)
{
    op_across(c, ZOP_INTER, 1, 0);
}

void multi_zdiffstore(kv_ctx *c)
{
    op_across(c, ZOP_DIFF, 1, 0);
}

void multi_zintercard(kv_ctx *c)
{
    op_across(c, ZOP_INTER, 0, 1);
}

/* ZRANGESTORE dst src ... with dst and src on two shards: __zrangefetch src ... on src's
 * shard (ZRANGE's parsing and errors, then the range as member, score pairs), dst's shard
 * held; then the pairs stored at dst. */
void multi_zrangestore(kv_ctx *c)
{
    int n = c->argc - 1;
    const char **fargv = malloc((size_t)n * sizeof *fargv);
    size_t *fargl = malloc((size_t)n * sizeof *fargl);
    if (!fargv || !fargl) {
        free(fargv);
        free(fargl);
        c->conn->close_after = 1;
        return;
    }
    fargv[0] = "__zrangefetch";
    fargl[0] = 13;
    memcpy(fargv + 1, c->argv + 2, (size_t)(n - 1) * sizeof *fargv);
    memcpy(fargl + 1, c->argl + 2, (size_t)(n - 1) * sizeof *fargl);
    kv_item items[2] = {
        {kv_command_find("__zrangefetch", 13, 1), n, fargv, fargl, 0,
         kv_key_shard(c->argv[2], c->argl[2]), 0, 0},
        {NULL, 0, NULL, NULL, 0, kv_key_shard(c->argv[1], c->argl[1]), 0, 0}, /* hold only */
    };
    kv_tx tx;
    sbuf tmp = {0}; /* RESP2: parsed here only */
    int r = kv_tx_begin(&tx, c->conn, items, 2, &tmp);
    if (r == 0) {
        sbuf_add(&tmp, "", 1);
        const char *p = tmp.data + items[0].off;
        long long nb = *p == '*' ? atoll(p + 1) : 0;
        const char **pairs = malloc((size_t)(nb + 1) * sizeof *pairs);
        size_t *pairl = malloc((size_t)(nb + 1) * sizeof *pairl);
        if (*p == '-') {
            sbuf_add(c->out, p, items[0].len);
        } else if (!pairs || !pairl) {
            reply_error(c->out, "ERR out of memory");
        } else {
            parse_bulks(p, nb, pairs, pairl);
            for (long long i = 0; i + 1 < nb; i += 2) { /* member, score: ZADD's score first */
                const char *m = pairs[i];
                size_t ml = pairl[i];
                pairs[i] = pairs[i + 1];
                pairl[i] = pairl[i + 1];
                pairs[i + 1] = m;
                pairl[i + 1] = ml;
            }
            r = store_across(c, &tx, pairs, pairl, nb / 2);
            if (r == 0)
                reply_int(c->out, nb / 2);
        }
        free(pairs);
        free(pairl);
        kv_tx_end(&tx);
    }
    if (r < 0)
        c->conn->close_after = 1;
    sbuf_free(&tmp);
    free(fargv);
    free(fargl);
}
