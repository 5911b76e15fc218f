/* The server's shared state: the configuration, each worker's shard (its db, its connections,
 * its counters) in a weft_sharded value, and the connection record. A shard is touched by its
 * own worker only, except the fields marked atomic. */
#ifndef KV_SERVER_H
#define KV_SERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <weft.h>

#include "aof.h"
#include "cmd.h"
#include "db.h"
#include "resp.h"
#include "sbuf.h"

enum { POLICY_NOEVICTION = 0, POLICY_ALLKEYS_LRU = 1, POLICY_VOLATILE_LRU = 2 };

typedef struct kv_config {
    int port;
    const char *bind;
    unsigned workers; /* 0: one per CPU */
    int backend;
    atomic_llong maxmemory; /* bytes, 0: no limit; CONFIG SET writes it from any worker */
    atomic_int policy;      /* POLICY_* */
    int64_t started_ms;
    atomic_int shutdown;      /* SHUTDOWN asked: main_task stops the server */
    int aof_policy;           /* AOF_OFF, _ALWAYS, _EVERYSEC, _NO (aof.h) */
    const char *dir;          /* where the AOF files are */
    atomic_int aof_replaying; /* replay at start: nothing is logged */
    /* A shard's file is rewritten when it has grown by this percentage over its size after
     * the last rewrite (0: never by itself) and is at least aof_rewrite_min bytes: Redis's
     * auto-aof-rewrite-percentage and -min-size; CONFIG SET writes them from any worker. */
    atomic_llong aof_rewrite_pct;
    atomic_llong aof_rewrite_min;
    int aof_rewrite_step; /* buckets a rewrite's walker takes between two yields (64) */
    /* A test seam, not a setting: the everysec syncer sleeps this long before each fsync, as
     * a busy disk would make it wait (CONFIG SET test-fsync-delay-ms, from any worker). */
    atomic_llong test_fsync_delay_ms;
    /* Clients at most, over all shards (Redis's maxclients, 10000): lowered at start to what
     * the process's descriptor limit allows (server.c, kv_fit_maxclients); a client past it
     * is answered "-ERR max number of clients reached" and closed. */
    long long maxclients;
    atomic_llong nclients; /* connected now, over all shards (any worker adds and takes) */
} kv_config;

extern kv_config kv_cfg;

/* One pending command of a connection's pipelined batch, or of a coordinator's fan-out. */
typedef struct kv_item {
    const struct kv_command *cmd;
    int argc;
    const char *const *argv;
    const size_t *argl;
    size_t argi;     /* batch items: where argv starts in the connection's flat arrays */
    unsigned shard;  /* where it runs */
    size_t off, len; /* its reply in the destination buffer, once run */
} kv_item;

typedef struct kv_conn {
    struct kv_conn *prev, *next; /* in the shard's list */
    weft_task *task;
    int fd;
    uint64_t id;
    char *name; /* CLIENT SETNAME, or NULL */
    char addr[64];
    char laddr[64];
    int64_t created_ms;
    int64_t last_ms;
    const char *last_cmd;
    char *qbuf; /* the query buffer: qlen bytes of qcap */
    size_t qlen, qcap;
    resp_parser parser;
    sbuf out;       /* replies of the batch, written with one write */
    sbuf tmp;       /* replies of local items while remote ones run */
    kv_item *items; /* the batch's pending segment */
    size_t nitems, items_cap;
    const char **argp; /* the segment's arguments, flat (items index them by argi) */
    size_t *argl;
    size_t nargs, args_cap;
    int close_after;        /* QUIT, a protocol error, SHUTDOWN: close once the replies are out */
    int blocked;            /* parked in BLPOP/BRPOP (CLIENT LIST's flags) */
    int replay;             /* the AOF replay's: no socket, internal commands allowed */
    unsigned replay_shard;  /* the shard whose file the replay reads */
    const char *replay_err; /* why the replay stopped: a command no file holds */
    long long replay_base;  /* the file offset of qbuf[0] while kv_process runs (replay) */
    size_t replay_at;       /* the offset in qbuf of the command being run (replay) */
    long long replay_multi; /* the file offset of the open MULTI (replay), else -1 */
    struct kv_multi *multi; /* MULTI's queue while a transaction is open, else NULL */
    struct kv_watchset *watch; /* WATCH's keys, or NULL (watch.c) */
    int in_exec;               /* EXEC is running the queue: blocking commands do not block */
    struct kv_tx *exec_tx;     /* EXEC's transaction over several shards while it runs */
} kv_conn;

typedef struct kv_shard {
    kv_db db;
    unsigned index;
    kv_conn conns; /* list head of this worker's connections */
    size_t nconns;
    uint64_t nconns_total;
    uint64_t ncommands;
    weft_task *sweeper;    /* the active expiry task */
    weft_promise *drained; /* resolved when the last connection goes, while shutting down */
    weft_task *held_by;    /* the transaction task holding the shard (tx.c), or NULL */
    /* An EXEC's queue runs here (multi.c's run_here): the clients its pushes woke in BLPOP
     * and BRPOP are served once it ends, never between two of its commands (nor while a
     * transaction holds the shard: its let_go serves them). */
    int in_exec;
    weft_event thaw; /* set when a hold ends: the commands waiting for it go on */
    kv_aof aof;
    size_t nblocked;      /* this worker's connections parked in BLPOP/BRPOP (INFO) */
    atomic_llong mem_pub; /* kv_mem_used of this worker, published for INFO */
} kv_shard;

extern weft_sharded *kv_shards;
extern atomic_uint_fast64_t kv_next_client_id;
/* Cross-shard tasks submitted and not yet finished, all workers: the shutdown waits for 0. */
extern atomic_long kv_inflight;

/* This worker's shard. */
kv_shard *kv_local(void);
/* The shard that owns key. */
unsigned kv_key_shard(const char *key, size_t klen);
unsigned kv_nshards(void);

/* Where a command runs: returns 0 with *shard the one shard holding all its keys (the
 * connection's own for keyless commands), or 1 when it needs the connection's task (a
 * `multi`: CMD_MULTI, or keys on several shards). Any thread of a worker. */
int kv_route(const kv_command *cmd, int argc, const char *const *argv, const size_t *argl,
             unsigned *shard);

/* Makes room in c's query buffer to read into (it doubles when nearly full, up to Redis's
 * 1 GB client-query-buffer-limit; it may move). Returns 0, or -1 past the limit (server.c). */
int kv_conn_room(kv_conn *c);

/* Connection: parses and runs every complete command buffered (exec.c). */
void kv_process(kv_conn *c);

/* Runs items[0 .. n) each on its shard (one message per remote shard, local ones inline),
 * and appends their replies to dst in item order, setting each item's off and len. Returns
 * 0, or -ECANCELED / -ENOMEM (replies missing: close the connection). Connection task only. */
int kv_exec_items(kv_conn *c, kv_item *items, size_t n, sbuf *dst);
/* Runs one command built by a coordinator on every shard, replies in shard order into dst;
 * items (nshards entries) receive the offsets. */
int kv_exec_all(kv_conn *c, const char *const *argv, const size_t *argl, int argc, sbuf *dst,
                kv_item *items);
/* BLPOP/BRPOP (block.c). kv_block_pop parks c's task until one of keys (nkeys of them, on any
 * shards) is handed an element by a push, the deadline (absolute weft time, or WEFT_FOREVER)
 * passes, or the client goes; it appends the reply to out (the key and the element from the
 * left or right end, or the null array at the deadline). Returns 0, or -1 when the connection
 * must close (the client went, the task was cancelled). Connection task only. */
int kv_block_pop(kv_conn *c, const char *const *keys, const size_t *klens, size_t nkeys, int left,
                 int64_t deadline, sbuf *out);
/* After a command on sh: hands the elements pushed to keys with blocked clients to those
 * clients, oldest first, before anything else runs on sh (kv_run_proc). sh's worker. */
void kv_block_serve(kv_shard *sh);
/* At sh's end (shard_fini): frees the registrations left. sh's worker. */
void kv_block_fini(kv_shard *sh);
/* Splits c's keys (every `step` arguments from 1, each with step - 1 values after it) into
 * one command per shard holding that shard's keys (same name), runs those, and returns how
 * many ran (items[0 .. m), with replies in dst), or -errno. pos[i] is request argument i's
 * index in its shard's command. arena and pos are freed with kv_split_free. */
int kv_split_keys(kv_ctx *c, int step, kv_item *items, sbuf *dst, void **arena, int **pos);
void kv_split_free(void **arena, int *pos);
/* The length of the RESP2 reply at p (bulk, null, integer, status, error: not arrays); the
 * buffer must hold a NUL somewhere after it. */
size_t kv_skip_reply(const char *p);
/* Builds kv_split_keys's per-shard commands without running them: returns how many. */
int kv_split_build(kv_ctx *c, int step, kv_item *items, void **arena, int **pos);

/* An atomic step over several shards (tx.c). begin holds every shard of items (the caller's
 * included) and runs items as the first phase (replies into dst in item order, as
 * kv_exec_items; an item with no command only names a shard to hold); run runs another phase
 * on the held shards; end releases them. Begun for connection c while c->exec_tx is set (inside
 * EXEC), it joins that transaction instead: its phases are phases of EXEC's, its end is none. While
 * a shard is held, every other command that would run there waits (kv_run_proc). Connection task
 * only. begin returns 0 or -errno (then nothing is held); run 0 or -ENOMEM, -EINVAL (an item on a
 * shard not held). */
typedef struct kv_tx {
    struct tx_core *core; /* shared with the holding tasks on the other shards */
    struct kv_tx *outer;  /* begun inside EXEC's transaction: every call goes to that one */
    int nphase;
    int nremote;
    unsigned char remote[WEFT_WORKERS_MAX];
    weft_future *futs[WEFT_WORKERS_MAX];
} kv_tx;
int kv_tx_begin(kv_tx *tx, kv_conn *c, kv_item *items, size_t n, sbuf *dst);
/* Parks until no transaction of another task holds sh. */
void kv_wait_unheld(kv_shard *sh);
int kv_tx_run(kv_tx *tx, kv_item *items, size_t n, sbuf *dst);
void kv_tx_end(kv_tx *tx);
/* The first phase of a command over the n keys at c->argv[first ..) on several shards
 * (fetch_across.c): `cmd key` for each (`hidden`: cmd is an internal command), with the shard
 * of `hold` (a STORE's destination; NULL: none) held too. replies[i] gets key i's reply
 * (RESP2, in tmp, which ends with a NUL). Returns 0; 1 once a key's error reply (WRONGTYPE)
 * is forwarded to c->out; both with tx begun for the caller to end. Or -1 with nothing held
 * (no memory, or the connection's end: close it). */
int kv_fetch_across(kv_ctx *c, kv_tx *tx, const char *cmd, int hidden, int first, int n,
                    const char *hold, size_t holdl, sbuf *tmp, const char **replies);

/* Runs a command's proc on the current shard with the memory policy checks (maxmemory). */
void kv_run_proc(const struct kv_command *cmd, kv_ctx *ctx);

#endif
