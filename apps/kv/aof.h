/* The append-only file: one per shard (DIR/weft-kv-<shard>.aof), holding the writes that ran
 * on that shard as RESP commands, replayed at start-up. Each shard's writer task writes its
 * buffer through the blocking pool (the loop never waits for the disk) and fsyncs by policy:
 * always (a reply leaves only once the writes before it are on disk), everysec (a syncing
 * task fsyncs once a second while the writer goes on writing), or no. A
 * rewrite (BGREWRITEAOF, or the file grown past its base size) compacts the file without
 * stopping the shard (aof.c). All of a shard's AOF state is its worker's. */
#ifndef KV_AOF_H
#define KV_AOF_H

#include <stdint.h>
#include <weft.h>

#include "sbuf.h"

enum { AOF_OFF = 0, AOF_ALWAYS = 1, AOF_EVERYSEC = 2, AOF_NO = 3 };

/* A rewrite's walker takes this many buckets, then yields (--aof-rewrite-step): about 64 keys
 * at the tables' usual load of 1, a few microseconds for small values, as the active
 * expiry's steps. */
#define REWRITE_STEP 64

/* Under everysec, replies wait for a fsync that has run this long (Redis's 2 s, after which
 * it stops postponing its AOF write and blocks behind the fsync). */
#define AOF_FSYNC_LATE (2 * WEFT_SEC)

typedef struct kv_aof {
    int fd;            /* -1 when off */
    sbuf buf;          /* commands logged and not yet handed to the writer */
    uint64_t appended; /* bytes ever logged */
    uint64_t synced;   /* bytes written (and fsynced under always) */
    uint64_t fsynced;  /* bytes on disk: covered by a fsync of the live file */
    int dirty;         /* written since the syncer's last fsync began (everysec) */
    int stop;          /* the writer ends once the buffer is out */
    int64_t last_fsync;
    weft_event kick; /* auto-reset: wakes the writer */
    weft_mutex mu;
    weft_cond cv; /* broadcast when synced moves */
    weft_task *writer;
    int write_err; /* the writer's last write failed (aof_last_write_status) */

    /* everysec: the syncing task fsyncs the live file once a second while the writer goes on
     * writing (see aof.c, "The syncing task"). All of it is the shard's worker's, as above. */
    weft_task *syncer;
    weft_event sync_kick; /* auto-reset: the file got dirty, or the shutdown */
    weft_event halt;      /* one-shot: the shutdown (cuts the test delay short) */
    unsigned gen;         /* the live file's number: a rewrite's switch moves it */
    int syncing;          /* a fsync of the syncer's is under way (its test delay too) */
    int sync_fd;          /* the fd it is on: the live file's, or one a switch retired */
    int64_t sync_start;   /* when it began */
    int sync_late_seen;   /* it has held replies back: counted and logged once */
    int retired_fd;       /* the old file of a switch, left for the syncer to close, or -1 */
    uint64_t nsyncs;      /* fsyncs the syncer finished: delayed replies wait for a move */
    uint64_t ndelayed;    /* fsyncs that held replies back (INFO aof_delayed_fsync) */
    int fsync_err;        /* the live file's last fsync failed (aof_last_write_status) */

    /* The rewrite. The new file is written as one stream: each key's state (__restore) when
     * the walker reaches it, and the commands logged meanwhile on keys it has passed, in the
     * order they happen (see aof.c). */
    int rewriting;       /* under way: logged commands also go to rbuf */
    int walk_done;       /* the walker has passed every key: every command goes to rbuf */
    size_t walk_cursor;  /* where the walker is in the keyspace (dict_scan's cursor) */
    sbuf rbuf;           /* the new file's stream not yet written out */
    int rfd;             /* the new file (DIR/weft-kv-<shard>.aof.rewrite), or -1 */
    int switch_ready;    /* the walk is written: the writer may switch files */
    int abort;           /* the shutdown stops the rewrite */
    weft_task *rewriter; /* the walker's task, or NULL */
    uint64_t size;       /* bytes in the file (written) */
    uint64_t base_size;  /* its size after the last rewrite (or at start-up) */
    uint64_t rsize;      /* bytes written to the new file */
    uint64_t nrewrites;  /* rewrites completed */
    int last_failed;     /* the last rewrite failed */
} kv_aof;

struct kv_shard;
struct kv_command;
struct kv_ctx;

/* Opens this shard's file for appending and starts its writer. 0 or -errno. */
int kv_aof_open(struct kv_shard *sh);
/* Logs a write that ran on sh: its reply starts at reply_off in ctx->out (an error reply is
 * not logged). Strings and expiry times are logged as the key's resulting state (SET ...
 * PXAT, PEXPIREAT, DEL), so relative times replay right. */
void kv_aof_log(struct kv_shard *sh, const struct kv_command *cmd, struct kv_ctx *ctx,
                size_t reply_off);
void kv_aof_log_del(struct kv_shard *sh, const char *key, size_t klen);
/* A transaction's writes on one shard, logged between MULTI and EXEC (nothing if it wrote
 * nothing): a crash that cuts the file inside it leaves a MULTI without EXEC, which the next
 * start drops whole and cuts off (all or nothing, as Redis). begin returns the mark end
 * takes. The two bracket a run with no yield (multi.c's run_here). */
size_t kv_aof_group_begin(struct kv_shard *sh);
void kv_aof_group_end(struct kv_shard *sh, size_t mark);
/* Starts a rewrite of sh's file. Returns 0, -EBUSY (one is under way), -EINVAL (no AOF), or
 * -errno. On sh's worker. */
int kv_aof_rewrite(struct kv_shard *sh);
/* Under always: parks until everything logged on sh so far is on disk. Under everysec:
 * parks while the syncer's fsync has run for AOF_FSYNC_LATE and something logged on sh is not
 * yet on disk, until that fsync ends (Redis's bound on a slow disk). */
void kv_aof_wait(struct kv_shard *sh);
/* Writes out what is left, stops the writer, closes the file (at shutdown, on the shard). */
void kv_aof_close(struct kv_shard *sh);
/* Replays the files into the shards (main task, before serving): a truncated last command is
 * cut off the file, with a line on stderr. Returns 0, or -1 (a message was printed). */
int kv_aof_replay(void);
/* Before the shards open their files: checks (or records) the shard count the files belong
 * to. Returns 0, or -1 (a message was printed). */
int kv_aof_prepare(unsigned nshards);

#endif
