/* The server: one shard per worker (its db, connections and counters in a weft_sharded
 * value), a task per connection on the worker that accepted it (weft_serve with SO_REUSEPORT),
 * the per-shard active expiry task, the maxmemory policy, and the orderly shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cmd.h"
#include "multi.h"
#include "server.h"
#include "watch.h"

/* Redis's client-query-buffer-limit: a request may hold a 512 MB bulk and then some. */
#define QBUF_MAX   ((size_t)1024 * 1024 * 1024)
#define QBUF_START ((size_t)16 * 1024)
/* The active expiry's period (Redis's hz 10) and its bound on steps per wake. */
#define SWEEP_PERIOD (100 * WEFT_MSEC)
#define SWEEP_STEPS  16

kv_config kv_cfg;
weft_sharded *kv_shards;
atomic_uint_fast64_t kv_next_client_id = 1;

static unsigned nshards = 1;

kv_shard *kv_local(void)
{
    return weft_sharded_local(kv_shards);
}

unsigned kv_nshards(void)
{
    return nshards;
}

unsigned kv_key_shard(const char *key, size_t klen)
{
    if (nshards == 1)
        return 0;
    return (unsigned)weft_shard_of(kv_hash_shard(key, klen));
}

/* ---- maxmemory ---- */

/* Evicts keys of this shard by sampled LRU (5 samples per pick, as Redis's default
 * maxmemory-samples) until its memory is within budget. Returns 0, or -1 when it cannot
 * (noeviction, or nothing evictable). */
static int evict(kv_db *db, long long budget)
{
    int policy = atomic_load_explicit(&kv_cfg.policy, memory_order_relaxed);
    if (policy == POLICY_NOEVICTION)
        return -1;
    while (kv_mem_used > budget) {
        kv_entry *best = NULL;
        for (int i = 0, found = 0; i < 50 && found < 5; i++) {
            kv_entry *e = (kv_entry *)dict_random(&db->keys, &db->rng);
            if (!e)
                break;
            if (policy == POLICY_VOLATILE_LRU && e->expire_ms < 0)
                continue;
            found++;
            if (!best || e->lru_ms < best->lru_ms)
                best = e;
        }
        if (!best)
            return -1;
        kv_aof_log_del((kv_shard *)db, best->key, best->node.klen);
        db_delete(db, best);
        db->nevicted++;
    }
    return 0;
}

void kv_run_proc(const kv_command *cmd, kv_ctx *ctx)
{
    /* The db is the first member of its shard. A shard held by a cross-shard transaction
     * runs the transaction's commands only (tx.c). */
    kv_shard *sh = (kv_shard *)ctx->db;
    if (sh->held_by)
        kv_wait_unheld(sh);
    long long max = atomic_load_explicit(&kv_cfg.maxmemory, memory_order_relaxed);
    /* Each shard keeps to its part of maxmemory: no shard reads another's figures. */
    if (max > 0 && (cmd->flags & CMD_DENYOOM) && kv_mem_used > max / (long long)nshards &&
        evict(ctx->db, max / (long long)nshards) < 0) {
        reply_error(ctx->out, ERR_OOM);
        return;
    }
    /* The AOF cannot be written (a full disk): writes are refused until it can, as Redis's
     * -MISCONF, rather than acknowledged and lost. */
    if (sh->aof.write_err && (cmd->flags & CMD_WRITE) && sh->aof.fd >= 0) {
        reply_error(ctx->out, ERR_MISCONF);
        return;
    }
    size_t reply_off = ctx->out->len;
    sh->db.loading = atomic_load_explicit(&kv_cfg.aof_replaying, memory_order_relaxed);
    cmd->proc(ctx);
    if (sh->db.watched.size && (cmd->flags & CMD_WRITE))
        kv_watch_after_write(&sh->db, cmd, ctx, reply_off);
    if (sh->aof.fd >= 0 && (cmd->flags & CMD_WRITE))
        kv_aof_log(sh, cmd, ctx, reply_off);
    /* A push to a key with blocked clients: served before anything else, but after the whole
     * of a transaction (Redis serves them once EXEC has run). */
    if (sh->db.ready && !sh->in_exec && !sh->held_by)
        kv_block_serve(sh);
}

/* ---- The shards ---- */

static void *sweeper(void *arg)
{
    kv_shard *sh = arg;
    /* Redis's active expiry, cut into steps: a step examines about 64 buckets; another step
     * follows, after a yield, while more than a quarter of the keys with an expiry seen were
     * expired. weft_sleep returns -ECANCELED at the shutdown. */
    while (weft_sleep(SWEEP_PERIOD) == 0) {
        if (sh->held_by) /* a transaction holds the shard: next time */
            continue;
        for (int k = 0; k < SWEEP_STEPS; k++) {
            size_t seen;
            size_t gone = db_expire_step(&sh->db, &seen);
            if (seen == 0 || gone * 4 < seen)
                break;
            if (weft_yield() < 0)
                return NULL;
        }
        atomic_store_explicit(&sh->mem_pub, kv_mem_used, memory_order_relaxed);
    }
    return NULL;
}

/* A key of the shard expired: the AOF logs its end (Redis propagates a DEL). */
static void shard_key_expired(kv_db *db, const char *key, size_t klen)
{
    kv_aof_log_del((kv_shard *)db, key, klen); /* the db is the shard's first member */
}

static void shard_init(void *value, unsigned worker, void *arg)
{
    (void)arg;
    kv_shard *sh = value;
    db_init(&sh->db, worker);
    sh->db.on_expire = shard_key_expired;
    sh->index = worker;
    sh->conns.prev = sh->conns.next = &sh->conns;
    weft_spawn_opts o = {0};
    o.name = "kv-expire";
    if (weft_spawn(&sh->sweeper, sweeper, sh, &o) < 0)
        sh->sweeper = NULL;
    int r = kv_aof_open(sh);
    if (r < 0)
        fprintf(stderr, "weft-kv: AOF of shard %u: %s\n", worker, weft_strerror(r));
}

static void shard_fini(void *value, unsigned worker, void *arg)
{
    (void)worker, (void)arg;
    kv_shard *sh = value;
    kv_block_fini(sh);
    db_flush(&sh->db);
    kv_watch_fini(&sh->db);
}

/* ---- Connections ---- */

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(buf, cap, "%s:%d", ip, port);
}

static void conn_free(kv_conn *c)
{
    resp_free(&c->parser);
    sbuf_free(&c->out);
    sbuf_free(&c->tmp);
    free(c->qbuf);
    free(c->items);
    free(c->argp);
    free(c->argl);
    free(c->name);
    free(c);
}

/* Makes room to read into: the query buffer doubles when nearly full, up to QBUF_MAX. Returns
 * 0, or -1 when the client passed the limit (Redis closes such a client too). */
int kv_conn_room(kv_conn *c)
{
    if (c->qcap - c->qlen >= 1024)
        return 0;
    if (c->qcap >= QBUF_MAX)
        return -1;
    size_t cap = c->qcap * 2 > QBUF_MAX ? QBUF_MAX : c->qcap * 2;
    char *q = realloc(c->qbuf, cap);
    if (!q)
        return -1;
    c->qbuf = q;
    c->qcap = cap;
    return 0;
}

/* Descriptors kept for what is not a client: the listeners, the AOF files and their
 * rewrites, each worker's reactor and doorbell, the standard streams (Redis keeps 32). */
#define RESERVED_FDS 64

/* Fits maxclients under the process's descriptor limit, as Redis does at its start: the soft
 * limit is raised towards maxclients + the reserve (up to the hard limit); if that is still
 * short, maxclients is lowered to what fits, and said so. */
static void kv_fit_maxclients(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)kv_cfg.maxclients + RESERVED_FDS;
    if (rl.rlim_cur < want) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur < want) {
        long long fit = rl.rlim_cur > RESERVED_FDS + 1 ? (long long)rl.rlim_cur - RESERVED_FDS : 1;
        fprintf(stderr,
                "weft-kv: the open-file limit is %llu: maxclients lowered from %lld to %lld "
                "(raise it with ulimit -n)\n",
                (unsigned long long)rl.rlim_cur, kv_cfg.maxclients, fit);
        kv_cfg.maxclients = fit;
    }
}

/* A client past maxclients: told so, as Redis tells it, and closed. What it sent is read
 * and dropped for up to 100 ms after our FIN: closed with unread bytes, the socket would
 * send a reset, which can reach the client before it has read the error. (Short, since a
 * refused client holds a descriptor meanwhile, beyond maxclients.) */
static void refuse_client(int fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    int64_t deadline = weft_deadline_in(100 * WEFT_MSEC);
    if (weft_write(fd, msg, sizeof msg - 1, deadline) == (ssize_t)(sizeof msg - 1)) {
        weft_shutdown(fd, SHUT_WR); /* after the reply, which io_uring may send behind */
        char sink[512];
        while (weft_read(fd, sink, sizeof sink, deadline) > 0)
            ;
    }
    weft_close(fd);
}

static void serve(int fd, void *arg)
{
    (void)arg;
    if (atomic_fetch_add_explicit(&kv_cfg.nclients, 1, memory_order_relaxed) >= kv_cfg.maxclients) {
        atomic_fetch_sub_explicit(&kv_cfg.nclients, 1, memory_order_relaxed);
        refuse_client(fd);
        return;
    }
    kv_shard *sh = kv_local();
    kv_conn *c = calloc(1, sizeof *c);
    char *q = malloc(QBUF_START);
    if (!c || !q) {
        free(c);
        free(q);
        weft_close(fd);
        atomic_fetch_sub_explicit(&kv_cfg.nclients, 1, memory_order_relaxed);
        return;
    }
    c->fd = fd;
    c->qbuf = q;
    c->qcap = QBUF_START;
    c->task = weft_self();
    c->id = atomic_fetch_add_explicit(&kv_next_client_id, 1, memory_order_relaxed);
    c->created_ms = c->last_ms = kv_mono_ms();
    resp_reset(&c->parser);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        format_addr(&ss, c->addr, sizeof c->addr);
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        format_addr(&ss, c->laddr, sizeof c->laddr);
    c->prev = &sh->conns;
    c->next = sh->conns.next;
    sh->conns.next->prev = c;
    sh->conns.next = c;
    sh->nconns++;
    sh->nconns_total++;
    weft_tcp_nodelay(fd, 1);

    while (kv_conn_room(c) == 0) {
        ssize_t n = weft_read(fd, c->qbuf + c->qlen, c->qcap - c->qlen, WEFT_FOREVER);
        if (n <= 0)
            break;
        c->qlen += (size_t)n;
        uint64_t logged = sh->aof.appended;
        kv_process(c);
        if (c->out.len) {
            /* appendfsync always: the writes go to disk before the replies. While the AOF
             * cannot be written, a batch that logged nothing (its writes refused, -MISCONF;
             * reads) is answered at once: it would wait for the failed write's retry. */
            if (!sh->aof.write_err || sh->aof.appended != logged)
                kv_aof_wait(sh);
            if (weft_write(fd, c->out.data, c->out.len, WEFT_FOREVER) < 0)
                break;
            c->out.len = 0;
        }
        if (c->close_after)
            break;
        /* Give back what a burst took: big reply buffers, a grown query buffer. */
        if (c->out.cap > 1024 * 1024)
            sbuf_free(&c->out);
        if (c->tmp.cap > 1024 * 1024)
            sbuf_free(&c->tmp);
        if (c->qlen < QBUF_START / 2 && c->qcap > 4 * QBUF_START) {
            char *s = realloc(c->qbuf, QBUF_START);
            if (s) {
                c->qbuf = s;
                c->qcap = QBUF_START;
            }
        }
    }
    kv_multi_free(c); /* an open transaction is discarded, the watches dropped */
    /* Closed while still listed: on io_uring weft_close waits for a reply written behind
     * (until its deadline, here none), and a shutdown's cancel (drain_shard) must reach it
     * there, or a client that stopped reading would hold the shutdown for ever. */
    weft_close(fd);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    conn_free(c);
    atomic_fetch_sub_explicit(&kv_cfg.nclients, 1, memory_order_relaxed);
    if (--sh->nconns == 0 && sh->drained)
        weft_promise_resolve(sh->drained, NULL);
}

/* On each worker at the shutdown: ends its connections (cancelled: their reads and BLPOP's
 * waits return -ECANCELED) and its expiry task. */
static void *drain_shard(void *arg)
{
    (void)arg;
    kv_shard *sh = kv_local();
    if (sh->nconns && weft_promise_create(&sh->drained) == 0) {
        for (kv_conn *c = sh->conns.next; c != &sh->conns; c = c->next)
            weft_cancel(c->task);
        weft_await(weft_promise_future(sh->drained), NULL, WEFT_FOREVER);
        weft_promise_release(sh->drained);
        sh->drained = NULL;
    }
    if (sh->sweeper) {
        weft_cancel(sh->sweeper);
        weft_join(sh->sweeper, NULL, WEFT_FOREVER);
        sh->sweeper = NULL;
    }
    return NULL;
}

static void *close_aof(void *arg)
{
    (void)arg;
    kv_aof_close(kv_local());
    return NULL;
}

/* Every shard's AOF written out and closed, each on its own worker. */
static void close_aofs(void)
{
    weft_task *t[WEFT_WORKERS_MAX];
    for (unsigned k = 0; k < nshards; k++)
        if (weft_spawn_on(k, &t[k], close_aof, NULL, NULL) < 0)
            t[k] = NULL;
    for (unsigned k = 0; k < nshards; k++)
        if (t[k])
            weft_join(t[k], NULL, WEFT_FOREVER);
}

int kv_serve_main(void);

int kv_serve_main(void)
{
    nshards = weft_worker_count();
    kv_cfg.started_ms = kv_unix_ms();
    weft_addr addr;
    if (weft_addr_ip(&addr, kv_cfg.bind, kv_cfg.port) < 0) {
        fprintf(stderr, "weft-kv: bad address %s port %d\n", kv_cfg.bind, kv_cfg.port);
        return 1;
    }
    if (kv_aof_prepare(nshards) < 0)
        return 1;
    int r = weft_sharded_create(&kv_shards, sizeof(kv_shard), shard_init, shard_fini, NULL);
    if (r < 0) {
        fprintf(stderr, "weft-kv: %s\n", weft_strerror(r));
        return 1;
    }
    if (kv_aof_replay() < 0) {
        close_aofs();
        weft_sharded_destroy(kv_shards);
        return 1;
    }
    kv_fit_maxclients();
    weft_server *srv = NULL;
    r = weft_serve(&srv, &addr, 0, serve, NULL);
    if (r < 0) {
        fprintf(stderr, "weft-kv: listen on %s:%d: %s\n", kv_cfg.bind, kv_cfg.port,
                weft_strerror(r));
        close_aofs();
        weft_sharded_destroy(kv_shards);
        return 1;
    }
    weft_addr bound;
    weft_server_addr(srv, &bound);
    printf("weft-kv: listening on %s:%d (%u shard%s, %s)\n", kv_cfg.bind, weft_addr_port(&bound),
           nshards, nshards == 1 ? "" : "s", weft_backend());
    fflush(stdout);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = weft_signal_wait(&set, WEFT_FOREVER);
    fprintf(stderr, "weft-kv: %s, shutting down\n",
            atomic_load(&kv_cfg.shutdown) ? "SHUTDOWN"
            : sig == SIGINT               ? "SIGINT"
                                          : "SIGTERM");
    weft_server_close(srv);
    weft_task *drainers[WEFT_WORKERS_MAX];
    for (unsigned k = 0; k < nshards; k++)
        if (weft_spawn_on(k, &drainers[k], drain_shard, NULL, NULL) < 0)
            drainers[k] = NULL;
    for (unsigned k = 0; k < nshards; k++)
        if (drainers[k])
            weft_join(drainers[k], NULL, WEFT_FOREVER);
    /* Tasks submitted to other shards (a cancelled connection's batch, BLPOP's
     * registrations) end on their own: the shards' data must outlive them. */
    while (atomic_load_explicit(&kv_inflight, memory_order_acquire) > 0)
        weft_sleep(WEFT_MSEC);
    close_aofs();
    weft_sharded_destroy(kv_shards);
    fprintf(stderr, "weft-kv: bye\n");
    return 0;
}
