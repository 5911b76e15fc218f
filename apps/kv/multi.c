/* MULTI, EXEC and DISCARD (Redis 7.0's semantics). Between MULTI and EXEC a connection's
 * commands are checked as Redis checks them before queueing (name, arity, subcommand), copied
 * into the connection's queue and answered +QUEUED; a refused one fails the transaction, and
 * EXEC then answers EXECABORT. EXEC answers with the array of the queued commands' replies
 * (an error among them, such as WRONGTYPE, is one element: the rest still run), or with the
 * null array when a watched key changed (watch.c).
 *
 * EXEC is atomic: no other client's command runs between two of its commands, on any shard.
 * - When every queued command and every watched key is on the connection's own shard, EXEC
 *   waits until no cross-shard transaction holds that shard, then checks the watches and runs
 *   the whole queue inline: commands never yield, so nothing else runs on that worker
 *   meanwhile. With one worker this is every EXEC.
 * - Otherwise it holds every shard involved, as one cross-shard transaction (tx.c): the shards
 *   of the commands' keys and of the watched keys, or all of them when a command fans out or
 *   spans shards. Once they are held it checks the watches and runs the queue: a run of
 *   commands that each stay on one shard goes as one phase (each shard runs its part in
 *   order; commands on different shards touch different keys, so this is the same as running
 *   them one by one), and a command that needs the connection (MSET across shards, KEYS,
 *   ...) runs its `multi`, whose own transactions and messages become phases of EXEC's
 *   (kv_conn.exec_tx, kv_tx.outer).
 * Blocking commands (BLPOP) do not block inside EXEC: they answer the null array when no key
 * has an element, as Redis's do. */
#include "multi.h"

#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "watch.h"

typedef struct queued {
    const kv_command *cmd;
    int argc;
    const char **argv; /* argv, argl and the argument bytes: one allocation, at argv */
    size_t *argl;
} queued;

struct kv_multi {
    queued *cmds;
    size_t n, cap;
    int failed; /* a command was refused while queueing: EXEC aborts */
};

int kv_multi_runs_now(const kv_command *cmd)
{
    return cmd->multi == multi_exec || cmd->multi == multi_discard || cmd->multi == multi_multi ||
           cmd->multi == multi_watch || cmd->multi == multi_quit || cmd->multi == multi_reset;
}

static void free_queue(struct kv_multi *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->cmds[i].argv);
    free(m->cmds);
    free(m);
}

void kv_multi_free(kv_conn *c)
{
    free_queue(c->multi);
    c->multi = NULL;
    kv_watch_clear(c);
}

void kv_multi_flag(kv_conn *c)
{
    c->multi->failed = 1;
}

void kv_multi_abort(kv_conn *c, const char *why)
{
    kv_multi_free(c);
    reply_errorf(&c->out, "EXECABORT Transaction discarded because of: %s", why);
}

long kv_multi_count(const kv_conn *c)
{
    return c->multi ? (long)c->multi->n : -1;
}

/* A copy of the command in one allocation. Returns 0 or -1 (out of memory). */
static int copy_command(queued *q, const kv_command *cmd, int argc, const char *const *argv,
                        const size_t *argl)
{
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argl[i];
    size_t n = (size_t)argc;
    char *mem = malloc(n * (sizeof(char *) + sizeof(size_t)) + bytes + 1);
    if (!mem)
        return -1;
    q->cmd = cmd;
    q->argc = argc;
    q->argv = (const char **)mem;
    q->argl = (size_t *)(mem + n * sizeof(char *));
    char *p = (char *)(q->argl + n);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], argl[i]);
        q->argv[i] = p;
        q->argl[i] = argl[i];
        p += argl[i];
    }
    return 0;
}

void kv_multi_queue(kv_conn *c, const kv_command *cmd, int argc, const char *const *argv,
                    const size_t *argl)
{
    struct kv_multi *m = c->multi;
    if (kv_subcommand_check(cmd, argc, argv, argl, &c->out) < 0) {
        m->failed = 1;
        return;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        queued *q = realloc(m->cmds, cap * sizeof *q);
        if (!q) {
            reply_error(&c->out, "ERR out of memory");
            m->failed = 1;
            return;
        }
        m->cmds = q;
        m->cap = cap;
    }
    if (copy_command(&m->cmds[m->n], cmd, argc, argv, argl) < 0) {
        reply_error(&c->out, "ERR out of memory");
        m->failed = 1;
        return;
    }
    m->n++;
    reply_status(&c->out, "QUEUED");
}

void multi_multi(kv_ctx *c)
{
    if (c->conn->multi) {
        reply_error(c->out, "ERR MULTI calls can not be nested");
        return;
    }
    c->conn->multi = calloc(1, sizeof *c->conn->multi);
    if (!c->conn->multi) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    if (c->conn->replay) /* where a transaction the file holds cut short begins (aof.c) */
        c->conn->replay_multi = c->conn->replay_base + (long long)c->conn->replay_at;
    reply_ok(c->out);
}

void multi_discard(kv_ctx *c)
{
    if (!c->conn->multi) {
        reply_error(c->out, "ERR DISCARD without MULTI");
        return;
    }
    kv_multi_free(c->conn);
    reply_ok(c->out);
}

/* Runs the queue on the connection's shard, which nothing else holds: no yield from the first
 * command to the last. */
static void run_here(kv_conn *c, struct kv_multi *m)
{
    kv_shard *sh = kv_local();
    sh->in_exec++;
    size_t group = kv_aof_group_begin(sh);
    for (size_t i = 0; i < m->n; i++) {
        queued *q = &m->cmds[i];
        kv_ctx ctx = {&sh->db, q->argc, q->argv, q->argl, &c->out, NULL, q->cmd, 0};
        unsigned s;
        if (kv_route(q->cmd, q->argc, q->argv, q->argl, &s)) {
            ctx.conn = c;
            q->cmd->multi(&ctx);
        } else {
            kv_run_proc(q->cmd, &ctx);
        }
    }
    kv_aof_group_end(sh, group);
    if (--sh->in_exec == 0 && sh->db.ready && !sh->held_by)
        kv_block_serve(sh); /* the clients its pushes woke, now that it has run whole */
}

/* Runs the queue while c->exec_tx holds the shards it needs (see the top of the file). */
static void run_held(kv_conn *c, struct kv_multi *m, kv_item *items)
{
    kv_shard *sh = kv_local();
    size_t k = 0;
    for (size_t i = 0; i <= m->n; i++) {
        queued *q = i < m->n ? &m->cmds[i] : NULL;
        unsigned s = 0;
        int multi = q && kv_route(q->cmd, q->argc, q->argv, q->argl, &s);
        if (q && !multi) {
            items[k++] = (kv_item){q->cmd, q->argc, q->argv, q->argl, 0, s, 0, 0};
            continue;
        }
        if (k && kv_tx_run(c->exec_tx, items, k, &c->out) < 0)
            c->close_after = 1; /* the reply would lack elements */
        k = 0;
        if (q) {
            kv_ctx ctx = {&sh->db, q->argc, q->argv, q->argl, &c->out, c, q->cmd, 0};
            q->cmd->multi(&ctx);
        }
    }
}

void multi_exec(kv_ctx *ctx)
{
    kv_conn *c = ctx->conn;
    struct kv_multi *m = c->multi;
    if (!m) {
        reply_error(ctx->out, "ERR EXEC without MULTI");
        return;
    }
    c->multi = NULL;
    if (m->failed) {
        reply_error(ctx->out, "EXECABORT Transaction discarded because of previous errors.");
        free_queue(m);
        kv_watch_clear(c);
        return;
    }
    /* The shards involved: each command's, and the watched keys'. */
    unsigned nsh = kv_nshards(), self = kv_local()->index;
    unsigned char involved[WEFT_WORKERS_MAX] = {0};
    int all = 0;
    for (size_t i = 0; i < m->n; i++) {
        unsigned s;
        if (kv_route(m->cmds[i].cmd, m->cmds[i].argc, m->cmds[i].argv, m->cmds[i].argl, &s))
            all = 1;
        else
            involved[s] = 1;
    }
    kv_watch_shards(c, involved);
    int here = nsh == 1 || !all;
    for (unsigned s = 0; s < nsh && here; s++)
        here = !involved[s] || s == self;

    c->in_exec = 1;
    if (here) {
        kv_wait_unheld(kv_local()); /* from here to the end, no yield */
        if (kv_watch_failed(c)) {
            reply_null_array(ctx->out);
        } else {
            reply_array(ctx->out, (long long)m->n);
            run_here(c, m);
        }
    } else {
        kv_item *items = malloc((m->n > nsh ? m->n : nsh) * sizeof *items);
        kv_tx tx;
        int r = items ? 0 : -1;
        if (r == 0) {
            size_t k = 0;
            for (unsigned s = 0; s < nsh; s++)
                if (all || involved[s])
                    items[k++] = (kv_item){NULL, 0, NULL, NULL, 0, s, 0, 0}; /* hold only */
            r = kv_tx_begin(&tx, c, items, k, ctx->out);
        }
        if (r < 0) {
            reply_error(ctx->out, "ERR out of memory");
        } else {
            c->exec_tx = &tx;
            if (kv_watch_failed(c)) {
                reply_null_array(ctx->out);
            } else {
                reply_array(ctx->out, (long long)m->n);
                run_held(c, m, items);
            }
            c->exec_tx = NULL;
            kv_tx_end(&tx);
        }
        free(items);
    }
    c->in_exec = 0;
    free_queue(m);
    kv_watch_clear(c);
}
