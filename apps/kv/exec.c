/* Running commands where their keys live. A connection parses its buffered batch command by
 * command; each is queued as an item tagged with its shard. A command on keys of the
 * connection's own shard, met while nothing is queued, runs at once with no message. The
 * queue is flushed (kv_exec_items) at the end of the batch, and before any command that needs
 * the connection itself (a `multi`: keys on several shards, every shard, blocking): each
 * remote shard gets one message holding all its items of the segment, the local items run
 * meanwhile, and the replies are merged in the order of the commands. So a pipelined batch
 * costs at most one message per shard it touches, per segment between two `multi` commands.
 *
 * A message owns copies of its arguments and its reply buffer, and is shared by reference
 * count between the connection and the task on the remote worker: the connection may be
 * cancelled while it waits (the runtime stops), and the remote task then still finds its
 * arguments and a buffer to write to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cmd.h"
#include "msg.h"
#include "multi.h"
#include "server.h"

/* Commands queued before a flush, and output buffered before a write: bounds on a
 * connection's memory for a huge pipeline (1,024 replies are at most a few 100 KiB for the
 * usual small values; the 1 MiB cap holds for large ones). */
#define SEGMENT_MAX 1024
#define OUT_FLUSH   ((size_t)1024 * 1024)

atomic_long kv_inflight;

static void run_local(kv_conn *c, kv_item *it, sbuf *dst)
{
    kv_shard *sh = kv_local();
    kv_ctx ctx = {&sh->db, it->argc, it->argv, it->argl, dst, NULL, it->cmd, 0};
    (void)c;
    it->off = dst->len;
    kv_run_proc(it->cmd, &ctx);
    it->len = dst->len - it->off;
}

int kv_exec_items(kv_conn *c, kv_item *items, size_t n, sbuf *dst)
{
    if (c && c->exec_tx) /* inside EXEC the shards are held: a phase of its transaction */
        return kv_tx_run(c->exec_tx, items, n, dst);
    unsigned self = kv_local()->index;
    int all_local = 1;
    for (size_t i = 0; i < n && all_local; i++)
        all_local = items[i].shard == self;
    if (all_local) {
        for (size_t i = 0; i < n; i++)
            run_local(c, &items[i], dst);
        atomic_store_explicit(&kv_local()->mem_pub, kv_mem_used, memory_order_relaxed);
        return 0;
    }

    unsigned nsh = kv_nshards();
    kv_msg *msgs[WEFT_WORKERS_MAX] = {0};
    weft_future *futs[WEFT_WORKERS_MAX] = {0};
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned s = items[i].shard;
        if (s == self || msgs[s] || s >= nsh)
            continue;
        msgs[s] = kv_msg_build(items, n, s, dst);
        if (!msgs[s]) {
            err = -ENOMEM;
            break;
        }
        atomic_fetch_add_explicit(&kv_inflight, 1, memory_order_relaxed);
        int r = weft_submit_to(s, kv_msg_task, msgs[s], &futs[s]);
        if (r < 0) {
            atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_relaxed);
            kv_msg_release(msgs[s]); /* the task's reference: it will not run */
            kv_msg_release(msgs[s]);
            msgs[s] = NULL;
            err = r;
            break;
        }
    }
    /* Local items run while the remote ones do, into tmp (their order is fixed below). */
    c->tmp.len = 0;
    c->tmp.resp3 = dst->resp3;
    if (!err)
        for (size_t i = 0; i < n; i++)
            if (items[i].shard == self)
                run_local(c, &items[i], &c->tmp);
    for (unsigned s = 0; s < nsh; s++) {
        if (!futs[s])
            continue;
        int r = weft_await(futs[s], NULL, WEFT_FOREVER);
        if (r < 0) {
            if (!err)
                err = r;
            /* Cancelled (the other awaits return at once too): the segments still running
             * stop at their next command, for the replies go nowhere. */
            for (unsigned k = 0; k < nsh; k++)
                if (msgs[k])
                    kv_msg_abandon(msgs[k]);
        }
        weft_future_destroy(futs[s]);
    }
    if (!err) {
        size_t next[WEFT_WORKERS_MAX] = {0};
        for (size_t i = 0; i < n; i++) {
            unsigned s = items[i].shard;
            const char *src;
            size_t len;
            if (s == self) {
                src = c->tmp.data + items[i].off;
                len = items[i].len;
            } else {
                kv_msg_item *mi = &msgs[s]->items[next[s]++];
                src = msgs[s]->out.data + mi->off;
                len = mi->len;
            }
            items[i].off = dst->len;
            sbuf_add(dst, src, len);
            items[i].len = len;
        }
    }
    for (unsigned s = 0; s < nsh; s++)
        if (msgs[s])
            kv_msg_release(msgs[s]);
    if (err == 0 && dst->oom)
        err = -ENOMEM;
    atomic_store_explicit(&kv_local()->mem_pub, kv_mem_used, memory_order_relaxed);
    return err;
}

int kv_exec_all(kv_conn *c, const char *const *argv, const size_t *argl, int argc, sbuf *dst,
                kv_item *items)
{
    const kv_command *cmd = kv_command_find(argv[0], argl[0], 1);
    unsigned n = kv_nshards();
    for (unsigned s = 0; s < n; s++)
        items[s] = (kv_item){cmd, argc, argv, argl, 0, s, 0, 0};
    return kv_exec_items(c, items, n, dst);
}

/* ---- The batch ---- */

static void flush_segment(kv_conn *c)
{
    if (c->nitems == 0)
        return;
    if (weft_canceled() > 0) {
        /* The connection is being cancelled (the server's shutdown): nobody will read the
         * replies, and the shutdown would wait for the segment to run. */
        c->nitems = 0;
        c->nargs = 0;
        c->close_after = 1;
        return;
    }
    for (size_t i = 0; i < c->nitems; i++) {
        c->items[i].argv = c->argp + c->items[i].argi;
        c->items[i].argl = c->argl + c->items[i].argi;
    }
    if (kv_exec_items(c, c->items, c->nitems, &c->out) < 0)
        c->close_after = 1;
    c->nitems = 0;
    c->nargs = 0;
}

static int grow_segment(kv_conn *c, size_t argc)
{
    if (c->nitems == c->items_cap) {
        size_t cap = c->items_cap ? c->items_cap * 2 : 16;
        kv_item *it = realloc(c->items, cap * sizeof *it);
        if (!it)
            return -1;
        c->items = it;
        c->items_cap = cap;
    }
    if (c->args_cap - c->nargs < argc) {
        size_t cap = c->args_cap ? c->args_cap : 64;
        while (cap - c->nargs < argc)
            cap *= 2;
        const char **ap = realloc(c->argp, cap * sizeof *ap);
        if (!ap)
            return -1;
        c->argp = ap;
        size_t *al = realloc(c->argl, cap * sizeof *al);
        if (!al)
            return -1;
        c->argl = al;
        c->args_cap = cap;
    }
    return 0;
}

int kv_route(const kv_command *cmd, int argc, const char *const *argv, const size_t *argl,
             unsigned *shard)
{
    *shard = kv_local()->index;
    if (cmd->flags & CMD_MULTI)
        return 1;
    kv_keypos k;
    kv_command_keys(cmd, argc, argv, argl, &k);
    if ((k.first <= 0 && k.dst <= 0) || kv_nshards() == 1)
        return 0;
    int first = k.dst > 0 ? k.dst : k.first;
    *shard = kv_key_shard(argv[first], argl[first]);
    for (int i = k.first; i > 0 && i <= k.last && i < argc; i += k.step)
        if (kv_key_shard(argv[i], argl[i]) != *shard)
            return 1;
    return 0;
}

/* Queues or runs the command just parsed, whose bytes start at base. */
static void dispatch(kv_conn *c, const char *base)
{
    kv_shard *sh = kv_local();
    resp_parser *p = &c->parser;
    size_t argc = p->argc;
    if (grow_segment(c, argc) < 0) {
        flush_segment(c);
        reply_error(&c->out, "ERR out of memory");
        c->close_after = 1;
        return;
    }
    const char **argv = c->argp + c->nargs;
    size_t *argl = c->argl + c->nargs;
    for (size_t i = 0; i < argc; i++) {
        argv[i] = base + p->argv[i].off;
        argl[i] = p->argv[i].len;
    }
    sh->ncommands++;
    c->last_ms = kv_mono_ms();
    const kv_command *cmd = kv_command_find(argv[0], argl[0], c->replay);
    if (!cmd && c->replay) { /* the file is damaged: no command of ours has that name */
        flush_segment(c);
        c->replay_err = "unknown command";
        c->close_after = 1;
        return;
    }
    if (!cmd) {
        flush_segment(c);
        /* Redis's text: the name cut to 128, then the arguments quoted, while their text so
         * far is under 128 characters, each cut to what is left of the 128. */
        char msg[512];
        int n = snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
                         (int)(argl[0] > 128 ? 128 : argl[0]), argv[0]);
        int args = 0; /* characters of the arguments' text so far */
        for (size_t i = 1; i < argc && args < 128; i++) {
            int room = 128 - args;
            int k = snprintf(msg + n, sizeof msg - (size_t)n, "'%.*s' ",
                             (int)(argl[i] > (size_t)room ? (size_t)room : argl[i]), argv[i]);
            n += k;
            args += k;
        }
        reply_error(&c->out, msg);
        if (c->multi) /* a command refused inside MULTI fails the EXEC to come */
            kv_multi_flag(c);
        return;
    }
    c->last_cmd = cmd->name;
    if ((cmd->arity > 0 && (int)argc != cmd->arity) || (int)argc < -cmd->arity) {
        flush_segment(c);
        if (c->multi && cmd->multi == multi_exec) {
            kv_multi_abort(c, "wrong number of arguments for 'exec' command");
            return;
        }
        reply_arity(&c->out, argv[0], argl[0]);
        if (c->multi)
            kv_multi_flag(c);
        return;
    }
    if (c->multi && (cmd->flags & CMD_NOMULTI)) { /* Redis's no-multi commands */
        flush_segment(c);
        reply_error(&c->out, "ERR Command not allowed inside a transaction");
        kv_multi_flag(c);
        return;
    }
    if (c->multi && !kv_multi_runs_now(cmd)) {
        flush_segment(c);
        kv_multi_queue(c, cmd, (int)argc, argv, argl);
        return;
    }
    unsigned shard;
    int multi = kv_route(cmd, (int)argc, argv, argl, &shard);
    if (c->replay && cmd->proc == cmd_flushdb) {
        /* A FLUSHDB in a shard's file emptied that shard (each shard logs its own): at
         * replay it must not empty the shards replayed before. */
        multi = 0;
        shard = c->replay_shard;
    }
    if (multi) {
        flush_segment(c);
        kv_ctx ctx = {&sh->db, (int)argc, argv, argl, &c->out, c, cmd, 0};
        cmd->multi(&ctx);
        return;
    }
    kv_item it = {cmd, (int)argc, argv, argl, c->nargs, shard, 0, 0};
    if (c->nitems == 0 && shard == sh->index) { /* the fast path: no queue, no message */
        run_local(c, &it, &c->out);
        return;
    }
    c->items[c->nitems++] = it;
    c->nargs += argc;
    if (c->nitems >= SEGMENT_MAX)
        flush_segment(c);
}

void kv_process(kv_conn *c)
{
    size_t start = 0;
    while (!c->close_after) {
        size_t used = 0;
        if (c->replay && c->parser.pos == 0 && start < c->qlen && c->qbuf[start] != '*') {
            /* The log holds multibulk commands only: anything else is damage, which inline
             * parsing would take for (unknown) commands. */
            c->replay_err = "not a multibulk command";
            c->close_after = 1;
            break;
        }
        int r = resp_parse(&c->parser, c->qbuf + start, c->qlen - start, &used);
        if (r == RESP_MORE)
            break;
        if (r == RESP_ERROR) {
            flush_segment(c);
            reply_error(&c->out, c->parser.err);
            c->close_after = 1;
            break;
        }
        if (r == RESP_DONE) {
            c->replay_at = start;
            dispatch(c, c->qbuf + start);
        }
        resp_reset(&c->parser);
        start += used;
        if (c->out.len >= OUT_FLUSH) {
            flush_segment(c);
            kv_aof_wait(kv_local());
            if (c->fd >= 0 && weft_write(c->fd, c->out.data, c->out.len, WEFT_FOREVER) < 0)
                c->close_after = 1;
            c->out.len = 0;
        }
    }
    flush_segment(c);
    if (start) {
        memmove(c->qbuf, c->qbuf + start, c->qlen - start);
        c->qlen -= start;
    }
}

/* ---- Helpers of the coordinators ---- */

/* Splits the keys (every `step` arguments from 1, each with step - 1 values after it) into one
 * item per shard holding that shard's keys, runs them, and returns the items (nshards, shard
 * order; an item with argc 1 had no key) with their replies in dst. The argument arrays are
 * *arena, for the caller to free. */
int kv_split_build(kv_ctx *c, int step, kv_item *items, void **arena, int **pos)
{
    unsigned n = kv_nshards();
    size_t total = (size_t)c->argc;
    const char **argv = malloc(total * n * sizeof *argv);
    size_t *argl = malloc(total * n * sizeof *argl);
    int *where = malloc(total * sizeof *where);
    arena[0] = argv;
    arena[1] = argl;
    *pos = where;
    if (!argv || !argl || !where)
        return -ENOMEM;
    for (unsigned s = 0; s < n; s++) {
        items[s] = (kv_item){c->cmd, 1, argv + s * total, argl + s * total, 0, s, 0, 0};
        argv[s * total] = c->argv[0];
        argl[s * total] = c->argl[0];
    }
    for (int i = 1; i < c->argc; i += step) {
        unsigned s = kv_key_shard(c->argv[i], c->argl[i]);
        kv_item *it = &items[s];
        where[i] = it->argc; /* the key's index in its shard's command */
        for (int k = 0; k < step; k++) {
            argv[s * total + (size_t)it->argc] = c->argv[i + k];
            argl[s * total + (size_t)it->argc] = c->argl[i + k];
            it->argc++;
        }
    }
    /* Only the shards that have keys run. */
    size_t m = 0;
    for (unsigned s = 0; s < n; s++)
        if (items[s].argc > 1)
            items[m++] = items[s];
    return (int)m;
}

int kv_split_keys(kv_ctx *c, int step, kv_item *items, sbuf *dst, void **arena, int **pos)
{
    int m = kv_split_build(c, step, items, arena, pos);
    if (m < 0)
        return m;
    if (m == 1) { /* one shard: atomic there */
        int r = kv_exec_items(c->conn, items, 1, dst);
        return r < 0 ? r : m;
    }
    kv_tx tx; /* several: held together (tx.c) */
    int r = kv_tx_begin(&tx, c->conn, items, (size_t)m, dst);
    if (r < 0)
        return r;
    kv_tx_end(&tx);
    return r < 0 ? r : m;
}

void kv_split_free(void **arena, int *pos)
{
    free(arena[0]);
    free(arena[1]);
    free(pos);
}

size_t kv_skip_reply(const char *p)
{
    const char *nl = strchr(p, '\n');
    size_t head = (size_t)(nl - p) + 1;
    if (p[0] == '$' && p[1] != '-')
        head += (size_t)atoll(p + 1) + 2;
    return head;
}
