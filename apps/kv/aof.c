/* The append-only file (aof.h). Logging appends RESP to the shard's buffer and kicks the
 * writer; the writer swaps the buffer out, writes it with weft_file_write (the blocking pool
 * or the ring), fsyncs under always, and moves `synced`, on which `always` replies wait. Under
 * everysec a second task, the syncer, fsyncs the live file once a second, so that a slow fsync
 * never holds back the writes behind it (see "The syncing task" below).
 * Replay feeds each file through a connection record with no socket (exec.c's kv_process), so
 * the commands reach their shards as a client's would, and stops at a truncated tail, which it
 * cuts off.
 *
 * The rewrite compacts a shard's file while the shard goes on serving, with no fork and no
 * copy of the keyspace. A walker task visits the keyspace a few buckets at a time (dict_scan,
 * letting the loop poll I/O between steps) and appends each live key's state to the new
 * stream as commands that replace the key (SET and PEXPIREAT for a string, else
 * `__restore key <expiry+dump>`). Meanwhile every command logged goes
 * to the old file as before, and to the new stream too if it touches only keys whose bucket
 * the walker has passed; a command on a key not yet passed is left out of the new stream,
 * since the key's state when the walker reaches it includes its effect. So, replayed in
 * order, the new stream rebuilds each key exactly: from its dump on, every change to it
 * follows. The exceptions are the commands logged as sent that touch several keys (DEL,
 * RENAME): during a rewrite they go to the new stream as the resulting state of each passed
 * key instead. FLUSHDB goes as it is and ends the walk (everything after it is logged).
 * The walker writes the stream out as it grows (through the blocking pool or the ring); when
 * it has passed every key, the writer task (the only one that writes the live file) drains
 * the rest of the stream into the new file, fsyncs it, renames it over the old one (blocking
 * pool), and from then on writes there. The replies under `always` wait for the writer, so
 * nothing is acknowledged while the switch is under way that the new file would lack. */
#include "aof.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "multi.h"
#include "server.h"

/* A rewrite's stream goes to the file every REWRITE_CHUNK bytes; the switch waits until less
 * than that is left. */
#define REWRITE_CHUNK ((size_t)1 << 20)

static void path_of(unsigned shard, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/weft-kv-%u.aof", kv_cfg.dir, shard);
}

static void temp_path_of(unsigned shard, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/weft-kv-%u.aof.rewrite", kv_cfg.dir, shard);
}

/* Writes all of b to fd. Returns 0 or -errno. */
static int write_all(int fd, const sbuf *b)
{
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = weft_file_write(fd, b->data + done, b->len - done, WEFT_FOREVER);
        if (n <= 0)
            return n < 0 ? (int)n : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* ---- The rewrite's switch, on the writer task ---- */

typedef struct rename_job {
    char from[4096], to[4096];
    const char *dir;
    int err;
} rename_job;

/* On a pool thread: the new file takes the old one's name, and the directory is synced so
 * that the rename survives a power cut. */
static void *rename_fn(void *arg)
{
    rename_job *j = arg;
    j->err = rename(j->from, j->to) < 0 ? -errno : 0;
    if (j->err == 0) {
        int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return NULL;
}

static void *unlink_fn(void *arg)
{
    unlink(arg);
    return NULL;
}

/* On a pool thread: the last close of a renamed-over file frees its pages, which takes
 * milliseconds for a large one (measured: 10 ms for 2 MB, reported by weft's stall check). */
static void *close_fn(void *arg)
{
    close((int)(intptr_t)arg);
    return NULL;
}

/* Closes an fd weft may have used, on the pool. */
static void close_on_pool(int fd)
{
    weft_fd_forget(fd);
    weft_blocking(close_fn, (void *)(intptr_t)fd, NULL, WEFT_FOREVER);
}

/* Drops the rewrite under way: its stream, its file. */
static void rewrite_drop(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    a->switch_ready = 0;
    a->last_failed = 1;
    if (a->rfd >= 0) {
        weft_close(a->rfd);
        a->rfd = -1;
        char path[4096];
        temp_path_of(sh->index, path, sizeof path);
        weft_blocking(unlink_fn, path, NULL, WEFT_FOREVER);
    }
    /* Last: while this parked, commands went on into rbuf, and no other rewrite started. */
    a->rewriting = 0;
    sbuf_free(&a->rbuf);
}

/* The end of a rewrite, on the writer (which alone writes the live file): the rest of the
 * stream goes to the new file, which is fsynced and renamed over the old one; the commands
 * pending for the old file are dropped (they are in the new stream too), and the writer goes
 * on with the new file. While this parks, commands go on being logged to both buffers, and
 * `synced` does not move: under always, no reply leaves that the new file might lack. */
static void rewrite_switch(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    a->switch_ready = 0;
    sbuf spare = {0};
    int err = a->rbuf.oom ? -ENOMEM : 0;
    while (!err && a->rbuf.len > 0) {
        sbuf w = a->rbuf;
        a->rbuf = spare;
        a->rbuf.len = 0;
        err = w.oom ? -ENOMEM : write_all(a->rfd, &w);
        spare = w;
        spare.oom = 0;
        if (!err)
            a->rsize += w.len;
    }
    sbuf_free(&spare);
    uint64_t upto = a->appended; /* all of it is in the new file now: the fsync covers it */
    if (!err)
        err = weft_file_fsync(a->rfd, WEFT_FOREVER);
    rename_job *j = err ? NULL : malloc(sizeof *j);
    if (!err && !j)
        err = -ENOMEM;
    if (!err) {
        temp_path_of(sh->index, j->from, sizeof j->from);
        path_of(sh->index, j->to, sizeof j->to);
        j->dir = kv_cfg.dir;
        err = weft_blocking(rename_fn, j, NULL, WEFT_FOREVER);
        if (!err)
            err = j->err;
        free(j);
    }
    if (err) {
        fprintf(stderr, "weft-kv: AOF rewrite of shard %u failed: %s (the old file stays)\n",
                sh->index, weft_strerror(err));
        rewrite_drop(sh);
        return;
    }
    /* The new file is the live one. What was logged while this parked is in both buffers:
     * the new stream's copy goes on, the old file's is dropped. */
    sbuf_free(&a->buf);
    a->buf = a->rbuf;
    memset(&a->rbuf, 0, sizeof a->rbuf);
    a->rewriting = 0;
    int old = a->fd;
    a->fd = a->rfd;
    a->rfd = -1;
    a->gen++; /* a fsync under way on the old file covers nothing in this one */
    a->fsynced = upto;
    a->fsync_err = 0;
    a->dirty = 0; /* the writes from here on dirty the new file */
    a->size = a->base_size = a->rsize;
    a->nrewrites++;
    a->last_failed = 0;
    if (a->syncing && a->sync_fd == old)
        a->retired_fd = old; /* the syncer closes it when its fsync is back */
    else
        close_on_pool(old);
    if (a->buf.len == 0) {
        /* Nothing came while the new file was synced and renamed: every command logged so
         * far is in it, on disk. (Else the loop writes the rest and moves `synced`.) */
        weft_mutex_lock(&a->mu, WEFT_FOREVER);
        a->synced = a->appended;
        weft_cond_broadcast(&a->cv);
        weft_mutex_unlock(&a->mu);
    }
    fprintf(stderr, "weft-kv: AOF of shard %u rewritten: %llu bytes\n", sh->index,
            (unsigned long long)a->size);
}

/* Starts a rewrite when the file has grown by auto-aof-rewrite-percentage over its base size
 * and is at least auto-aof-rewrite-min-size (Redis's rule). */
static void maybe_rewrite(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    long long pct = atomic_load_explicit(&kv_cfg.aof_rewrite_pct, memory_order_relaxed);
    long long min = atomic_load_explicit(&kv_cfg.aof_rewrite_min, memory_order_relaxed);
    if (a->rewriting || pct <= 0 || a->size < (uint64_t)min)
        return;
    uint64_t base = a->base_size ? a->base_size : 1;
    if ((a->size - (a->size > base ? base : a->size)) * 100 / base >= (uint64_t)pct)
        kv_aof_rewrite(sh);
}

static void *writer_task(void *arg)
{
    kv_shard *sh = arg;
    kv_aof *a = &sh->aof;
    sbuf spare = {0};
    for (;;) {
        if (a->switch_ready) {
            rewrite_switch(sh);
            continue;
        }
        if (a->buf.len == 0) {
            if (a->stop)
                break;
            if (weft_event_wait(&a->kick, WEFT_FOREVER) < 0)
                break; /* cancelled: the runtime is going */
            continue;
        }
        /* Swap buffers: commands go on being logged while this one is written. */
        sbuf w = a->buf;
        a->buf = spare;
        a->buf.len = 0;
        uint64_t upto = a->appended;
        int werr = write_all(a->fd, &w);
        if (werr < 0) {
            /* Nothing of the buffer counts as written: the file is cut back to its last
             * whole command (a half-written one would end the next start's replay), the
             * buffer goes back in front of what was logged since, and the write is tried
             * again in a second. Meanwhile `synced` stays put (appendfsync always: no reply
             * to those writes goes out) and write commands are refused (-MISCONF, as Redis).
             * Before, the bytes were dropped, the replies sent, and the file left with a
             * partial command in its middle that no start could load past. */
            if (!a->write_err)
                fprintf(stderr,
                        "weft-kv: AOF of shard %u: write: %s; writes are refused until it "
                        "succeeds again\n",
                        sh->index, weft_strerror(werr));
            a->write_err = 1;
            int t = weft_file_truncate(a->fd, (off_t)a->size, WEFT_FOREVER);
            if (t < 0)
                fprintf(stderr, "weft-kv: AOF of shard %u: cannot cut it back to %llu bytes: %s\n",
                        sh->index, (unsigned long long)a->size, weft_strerror(t));
            sbuf_add(&w, a->buf.data, a->buf.len);
            spare = a->buf;
            spare.len = 0;
            a->buf = w;
            if (a->stop) {
                fprintf(stderr, "weft-kv: AOF of shard %u: %zu bytes of writes not saved\n",
                        sh->index, a->buf.len);
                break;
            }
            weft_event_wait(&a->halt, weft_deadline_in(WEFT_SEC)); /* the close sets it */
            continue;
        }
        if (a->write_err)
            fprintf(stderr, "weft-kv: AOF of shard %u: the write error looks solved\n", sh->index);
        a->write_err = 0;
        a->size += w.len;
        spare = w;
        if (kv_cfg.aof_policy == AOF_ALWAYS) {
            int ferr = weft_file_fsync(a->fd, WEFT_FOREVER);
            a->fsync_err = ferr < 0;
            if (ferr == 0)
                a->fsynced = upto;
        } else if (kv_cfg.aof_policy == AOF_EVERYSEC && !a->dirty) {
            a->dirty = 1; /* the syncer fsyncs within the second */
            weft_event_set(&a->sync_kick);
        }
        weft_mutex_lock(&a->mu, WEFT_FOREVER);
        a->synced = upto;
        weft_cond_broadcast(&a->cv);
        weft_mutex_unlock(&a->mu);
        if (spare.cap > 4 * 1024 * 1024)
            sbuf_free(&spare);
        if (!a->stop)
            maybe_rewrite(sh);
    }
    if (a->fd >= 0 && kv_cfg.aof_policy != AOF_NO) /* -1: the open failed after the spawn */
        weft_file_fsync(a->fd, WEFT_FOREVER);
    sbuf_free(&spare);
    return NULL;
}

/* ---- The syncing task (everysec) ----
 *
 * The syncer fsyncs the live file once a second at most (from the start of one to the start
 * of the next, as Redis's), whenever the writer has written since its last fsync began. The
 * writer never waits for it: it goes on writing while the fsync runs (on the pool or the
 * ring), so a slow disk holds back no writes and a crash of the process loses no more than
 * before. What a slow fsync does put at risk is what a power cut would lose, so the replies
 * are bounded as Redis bounds them: once the fsync under way has run AOF_FSYNC_LATE (2 s),
 * a reply on this shard that follows a write not yet on disk waits until it ends
 * (kv_aof_wait; counted in aof_delayed_fsync, logged once a fsync). Redis postpones its AOF
 * write for those 2 s, then writes, and the write blocks behind the fsync with the whole
 * server; here the writes go on, and only the replies wait.
 *
 * The rewrite's switch replaces the live fd while a fsync may be under way on the old one.
 * The syncer took the fd number when it began; the switch leaves the old fd open for it
 * (retired_fd) and the syncer closes it once its fsync is back, so it never fsyncs a closed
 * or reused number. The file's generation (gen) tells it that such a fsync covered the old
 * file only: it moves neither `fsynced` nor the status of the live file, which the switch
 * fsynced itself. */

/* One fsync of the live file, with the test delay before it. */
static void sync_once(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    int fd = a->fd;
    unsigned gen = a->gen;
    uint64_t upto = a->synced; /* written before the fsync begins: it covers them */
    a->dirty = 0;
    a->syncing = 1;
    a->sync_fd = fd;
    a->sync_late_seen = 0;
    a->sync_start = a->last_fsync = weft_now();
    long long delay = atomic_load_explicit(&kv_cfg.test_fsync_delay_ms, memory_order_relaxed);
    if (delay > 0)
        weft_event_wait(&a->halt, a->sync_start + delay * 1000000);
    /* At the shutdown the writer's last fsync covers everything: this one may be skipped. */
    int err = a->stop ? -ECANCELED : weft_file_fsync(fd, WEFT_FOREVER);
    a->syncing = 0;
    a->nsyncs++;
    if (a->retired_fd == fd) {
        a->retired_fd = -1;
        close_on_pool(fd);
    } else if (gen == a->gen && err != -ECANCELED) {
        if (err < 0 && !a->fsync_err)
            fprintf(stderr, "weft-kv: AOF of shard %u: fsync: %s\n", sh->index, weft_strerror(err));
        a->fsync_err = err < 0;
        if (err == 0 && upto > a->fsynced)
            a->fsynced = upto;
    }
    /* Replies held back by this fsync go. */
    weft_mutex_lock(&a->mu, WEFT_FOREVER);
    weft_cond_broadcast(&a->cv);
    weft_mutex_unlock(&a->mu);
}

static void *syncer_task(void *arg)
{
    kv_shard *sh = arg;
    kv_aof *a = &sh->aof;
    while (!a->stop) {
        int64_t due = a->last_fsync + WEFT_SEC;
        if (!a->dirty || weft_now() < due) {
            /* The writer kicks once per fsync (when the file gets dirty), so this does not
             * wake for every write. */
            int r = weft_event_wait(&a->sync_kick, a->dirty ? due : WEFT_FOREVER);
            if (r < 0 && r != -ETIMEDOUT)
                break; /* cancelled: the runtime is going */
            continue;
        }
        sync_once(sh);
    }
    return NULL;
}

/* Under everysec, for a reply about to leave sh: waits for the syncer's fsync if it has run
 * for AOF_FSYNC_LATE and something logged here is not on disk yet. */
static void wait_late_fsync(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    if (!a->syncing || a->fsynced >= a->appended)
        return;
    int64_t ran = weft_now() - a->sync_start;
    if (ran < AOF_FSYNC_LATE)
        return;
    if (!a->sync_late_seen) {
        a->sync_late_seen = 1;
        a->ndelayed++;
        fprintf(stderr,
                "weft-kv: AOF of shard %u: asynchronous AOF fsync is taking too long (disk is "
                "busy?): %.1f s so far; replies after writes wait for it\n",
                sh->index, (double)ran / WEFT_SEC);
    }
    uint64_t seq = a->nsyncs;
    if (weft_mutex_lock(&a->mu, WEFT_FOREVER) < 0)
        return;
    while (a->nsyncs == seq && !a->stop)
        if (weft_cond_wait(&a->cv, &a->mu, WEFT_FOREVER) < 0)
            break;
    weft_mutex_unlock(&a->mu);
}

int kv_aof_open(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    a->fd = -1;
    if (kv_cfg.aof_policy == AOF_OFF)
        return 0;
    char path[4096];
    path_of(sh->index, path, sizeof path);
    /* open(2) itself: this runs in the shard's init, where weft's blocking calls are
     * refused; opening a local file does not wait on the disk. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    a->fd = fd;
    a->rfd = -1;
    struct stat st;
    if (fstat(fd, &st) == 0)
        a->size = a->base_size = (uint64_t)st.st_size;
    /* A rewrite cut short by a crash left its file: the old one is whole, this goes. */
    char temp[4096];
    temp_path_of(sh->index, temp, sizeof temp);
    unlink(temp);
    a->kick = (weft_event)WEFT_EVENT_AUTO_INIT;
    a->sync_kick = (weft_event)WEFT_EVENT_AUTO_INIT;
    a->halt = (weft_event)WEFT_EVENT_INIT;
    a->retired_fd = -1;
    a->last_fsync = weft_now();
    weft_spawn_opts o = {0};
    o.name = "kv-aof";
    int r = weft_spawn(&a->writer, writer_task, sh, &o);
    if (r == 0 && kv_cfg.aof_policy == AOF_EVERYSEC) {
        o.name = "kv-aof-sync";
        r = weft_spawn(&a->syncer, syncer_task, sh, &o);
        if (r < 0) { /* the writer ends by itself, with nothing written (no join here) */
            a->syncer = NULL;
            a->stop = 1;
            weft_event_set(&a->kick);
            weft_detach(a->writer);
            a->writer = NULL;
        }
    }
    if (r < 0) {
        close(fd);
        a->fd = -1;
    }
    return r;
}

static void emit(sbuf *b, int argc, const char *const *argv, const size_t *argl)
{
    reply_array(b, argc);
    for (int i = 0; i < argc; i++)
        reply_bulk(b, argv[i], argl[i]);
}

/* Whether the rewrite under way has passed key (its state is in the new stream). */
static int passed(kv_shard *sh, const char *key, size_t klen)
{
    kv_aof *a = &sh->aof;
    return a->walk_done || dict_scan_passed(&sh->db.keys, a->walk_cursor, kv_hash(key, klen));
}

/* Logs a command about one key (or none: key NULL): to the file, and to the new stream of a
 * rewrite that has passed the key. */
static void log_argv(kv_shard *sh, const char *key, size_t klen, int argc, const char *const *argv,
                     const size_t *argl)
{
    kv_aof *a = &sh->aof;
    size_t before = a->buf.len;
    emit(&a->buf, argc, argv, argl);
    a->appended += a->buf.len - before;
    if (a->rewriting && (!key || passed(sh, key, klen)))
        emit(&a->rbuf, argc, argv, argl);
}

/* Appends e's whole state to b, as commands that replace whatever the key held at replay: a
 * string as SET (and PEXPIREAT), 25 bytes shorter a key than the general form, `__restore key
 * <expiry><dump>`. */
static void emit_restore(sbuf *b, const kv_entry *e)
{
    if (e->type == KV_STRING) {
        const char *argv[3] = {"SET", e->key, e->v.str.p ? e->v.str.p : ""};
        size_t argl[3] = {3, e->node.klen, e->v.str.len};
        emit(b, 3, argv, argl);
        if (e->expire_ms >= 0) {
            char when[32];
            int n = snprintf(when, sizeof when, "%lld", (long long)e->expire_ms);
            const char *xv[3] = {"PEXPIREAT", e->key, when};
            size_t xl[3] = {9, e->node.klen, (size_t)n};
            emit(b, 3, xv, xl);
        }
        return;
    }
    sbuf d = {0};
    sbuf_add(&d, &e->expire_ms, sizeof e->expire_ms);
    db_dump(e, &d);
    const char *argv[3] = {"__restore", e->key, d.data};
    size_t argl[3] = {9, e->node.klen, d.len};
    if (d.oom)
        b->oom = 1; /* the rewrite fails: see flush_rbuf */
    else
        emit(b, 3, argv, argl);
    sbuf_free(&d);
}

/* During a rewrite, for a command logged as sent that touched several keys: the resulting
 * state of each key the walker has passed, to the new stream only. */
static void log_keys_state(kv_shard *sh, const kv_command *cmd, const kv_ctx *ctx)
{
    kv_aof *a = &sh->aof;
    int last = cmd->last < 0 ? ctx->argc + cmd->last : cmd->last;
    for (int k = cmd->first; k <= last && k < ctx->argc; k += cmd->step) {
        const char *key = ctx->argv[k];
        size_t klen = ctx->argl[k];
        if (!passed(sh, key, klen))
            continue;
        kv_entry *e = (kv_entry *)dict_find(&sh->db.keys, key, klen, kv_hash(key, klen));
        if (e) {
            emit_restore(&a->rbuf, e);
        } else {
            const char *argv[2] = {"DEL", key};
            size_t argl[2] = {3, klen};
            emit(&a->rbuf, 2, argv, argl);
        }
    }
}

/* SPOP picks at random: it is logged as the SREM of the members its reply holds (a bulk, or
 * an array or RESP3 set of bulks; nothing for a null or an empty one). */
static void log_spop(kv_shard *sh, const kv_ctx *ctx, size_t reply_off)
{
    const char *p = ctx->out->data + reply_off;
    const char *end = ctx->out->data + ctx->out->len;
    long long n = 1;
    if (*p == '*' || *p == '~') {
        n = atoll(p + 1);
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
    } else if (*p != '$') {
        return;
    }
    if (n <= 0 || p[1] == '-')
        return;
    const char **argv = malloc((size_t)(n + 2) * sizeof *argv);
    size_t *argl = malloc((size_t)(n + 2) * sizeof *argl);
    if (argv && argl) {
        argv[0] = "SREM";
        argl[0] = 4;
        argv[1] = ctx->argv[1];
        argl[1] = ctx->argl[1];
        for (long long i = 0; i < n; i++) { /* $len\r\nbytes\r\n */
            const char *body = memchr(p, '\n', (size_t)(end - p)) + 1;
            argv[i + 2] = body;
            argl[i + 2] = (size_t)atoll(p + 1);
            p = body + argl[i + 2] + 2;
        }
        log_argv(sh, ctx->argv[1], ctx->argl[1], (int)n + 2, argv, argl);
    }
    free(argv);
    free(argl);
}

/* The state of one string key, or its expiry: what it is now, as commands that set it. */
static void log_state(kv_shard *sh, const char *key, size_t klen, int value)
{
    kv_entry *e = (kv_entry *)dict_find(&sh->db.keys, key, klen, kv_hash(key, klen));
    if (!e) {
        const char *argv[2] = {"DEL", key};
        size_t argl[2] = {3, klen};
        log_argv(sh, key, klen, 2, argv, argl);
        return;
    }
    if (value && e->type == KV_STRING) {
        const char *argv[3] = {"SET", key, e->v.str.p ? e->v.str.p : ""};
        size_t argl[3] = {3, klen, e->v.str.len};
        log_argv(sh, key, klen, 3, argv, argl);
    }
    char when[32];
    int n = snprintf(when, sizeof when, "%lld", (long long)e->expire_ms);
    const char *argv[3] = {e->expire_ms >= 0 ? "PEXPIREAT" : "PERSIST", key, when};
    size_t argl[3] = {e->expire_ms >= 0 ? 9u : 7u, klen, (size_t)n};
    log_argv(sh, key, klen, e->expire_ms >= 0 ? 3 : 2, argv, argl);
}

void kv_aof_log(kv_shard *sh, const kv_command *cmd, kv_ctx *ctx, size_t reply_off)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0 || atomic_load_explicit(&kv_cfg.aof_replaying, memory_order_relaxed))
        return;
    if (ctx->out->len > reply_off && ctx->out->data[reply_off] == '-')
        return; /* refused: nothing changed */
    if (cmd->flags & CMD_LOGSTATE) {
        int value = !(cmd->flags & CMD_LOGEXPIRE);
        int last = cmd->last < 0 ? ctx->argc + cmd->last : cmd->last;
        for (int k = cmd->first; k <= last && k < ctx->argc; k += cmd->step)
            log_state(sh, ctx->argv[k], ctx->argl[k], value);
    } else if (strcmp(cmd->name, "__dumpdel") == 0) {
        const char *argv[2] = {"DEL", ctx->argv[1]};
        size_t argl[2] = {3, ctx->argl[1]};
        log_argv(sh, ctx->argv[1], ctx->argl[1], 2, argv, argl);
    } else if (cmd->proc == cmd_spop) {
        log_spop(sh, ctx, reply_off);
    } else if (cmd->first == 0) { /* FLUSHDB, FLUSHALL */
        log_argv(sh, NULL, 0, ctx->argc, ctx->argv, ctx->argl);
        a->walk_done = 1; /* the replay's keyspace is empty here, as the shard's is */
    } else if ((cmd->last == cmd->first && !(cmd->flags & CMD_NUMKEYS)) ||
               ctx->argc <= cmd->first + 1) {
        log_argv(sh, ctx->argv[cmd->first], ctx->argl[cmd->first], ctx->argc, ctx->argv, ctx->argl);
    } else {
        /* Several keys (DEL, UNLINK, RENAME), or a destination computed from keys elsewhere in
         * the arguments (ZUNIONSTORE: its table positions are the destination alone): the new
         * stream gets each one's state, which a rewrite that has not reached the sources yet
         * could not compute at replay. */
        size_t before = a->buf.len;
        emit(&a->buf, ctx->argc, ctx->argv, ctx->argl);
        a->appended += a->buf.len - before;
        if (a->rewriting)
            log_keys_state(sh, cmd, ctx);
    }
    weft_event_set(&a->kick);
}

#define GROUP_NONE ((size_t)-1)

size_t kv_aof_group_begin(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0 || atomic_load_explicit(&kv_cfg.aof_replaying, memory_order_relaxed))
        return GROUP_NONE;
    size_t mark = a->buf.len;
    const char *argv[1] = {"MULTI"};
    size_t argl[1] = {5};
    emit(&a->buf, 1, argv, argl);
    a->appended += a->buf.len - mark;
    return mark;
}

void kv_aof_group_end(kv_shard *sh, size_t mark)
{
    kv_aof *a = &sh->aof;
    if (mark == GROUP_NONE)
        return;
    size_t multi_len = sizeof "*1\r\n$5\r\nMULTI\r\n" - 1;
    if (a->buf.len == mark + multi_len) { /* nothing written: no group */
        a->buf.len = mark;
        a->appended -= multi_len;
        return;
    }
    const char *argv[1] = {"EXEC"};
    size_t argl[1] = {4};
    size_t before = a->buf.len;
    emit(&a->buf, 1, argv, argl);
    a->appended += a->buf.len - before;
    weft_event_set(&a->kick);
}

void kv_aof_log_del(kv_shard *sh, const char *key, size_t klen)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0 || atomic_load_explicit(&kv_cfg.aof_replaying, memory_order_relaxed))
        return;
    const char *argv[2] = {"DEL", key};
    size_t argl[2] = {3, klen};
    log_argv(sh, key, klen, 2, argv, argl);
    weft_event_set(&a->kick);
}

/* ---- The rewrite's walker ---- */

static void dump_key(dnode *n, void *arg)
{
    kv_shard *sh = arg;
    kv_entry *e = (kv_entry *)n;
    if (kv_expired_at(e->expire_ms, kv_unix_ms()))
        return; /* gone already, for whoever looks: a later command logs it afresh */
    emit_restore(&sh->aof.rbuf, e);
}

/* Writes the new stream so far to the new file (parks; logging goes on into a fresh buffer).
 * Returns 0 or -errno. */
static int flush_rbuf(kv_aof *a, sbuf *spare)
{
    if (a->rbuf.oom)
        return -ENOMEM;
    sbuf w = a->rbuf;
    a->rbuf = *spare;
    a->rbuf.len = 0;
    int err = write_all(a->rfd, &w);
    a->rsize += w.len;
    *spare = w;
    spare->len = 0;
    return err;
}

static void *rewriter_task(void *arg)
{
    kv_shard *sh = arg;
    kv_aof *a = &sh->aof;
    sbuf spare = {0};
    int err = 0;
    while (!err && !a->walk_done && !a->abort) {
        for (int k = 0; k < kv_cfg.aof_rewrite_step && !a->walk_done; k++) {
            a->walk_cursor = dict_scan(&sh->db.keys, a->walk_cursor, dump_key, sh);
            if (a->walk_cursor == 0)
                a->walk_done = 1;
        }
        if (a->rbuf.len >= REWRITE_CHUNK || a->rbuf.oom)
            err = flush_rbuf(a, &spare);
        /* A sleep of 1 ns, not a yield: the loop polls I/O and timers before the next step.
         * A yield would run the walker again at once, up to the tick's budget (64 resumes,
         * some 4,000 keys): clients waited for that, and weft's stall check saw the walker
         * run 11 to 25 ms without a switch. */
        if (!err && weft_sleep(1) < 0)
            err = -ECANCELED;
    }
    /* The bulk of the stream goes out here; the writer takes the rest at the switch. */
    while (!err && !a->abort && a->rbuf.len >= REWRITE_CHUNK)
        err = flush_rbuf(a, &spare);
    if (!err && !a->abort)
        err = weft_file_fsync(a->rfd, WEFT_FOREVER);
    sbuf_free(&spare);
    if (err || a->abort) {
        if (!a->abort)
            fprintf(stderr, "weft-kv: AOF rewrite of shard %u failed: %s\n", sh->index,
                    weft_strerror(err));
        rewrite_drop(sh);
    } else {
        a->switch_ready = 1;
        weft_event_set(&a->kick);
    }
    return NULL;
}

int kv_aof_rewrite(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0 || a->stop || a->abort) /* abort: the shutdown has begun */
        return -EINVAL;
    if (a->rewriting)
        return -EBUSY;
    if (a->rewriter) { /* the last one's task, which has ended or is about to */
        weft_join(a->rewriter, NULL, WEFT_FOREVER);
        a->rewriter = NULL;
        if (a->rewriting || a->stop)
            return -EBUSY;
    }
    char path[4096];
    temp_path_of(sh->index, path, sizeof path);
    /* open(2) itself: this runs where blocking calls may be refused (a message's task);
     * creating a local file does not wait on the disk. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    a->rfd = fd;
    a->rewriting = 1;
    a->walk_done = 0;
    a->walk_cursor = 0;
    a->rsize = 0;
    a->switch_ready = 0;
    memset(&a->rbuf, 0, sizeof a->rbuf);
    weft_spawn_opts o = {0};
    o.name = "kv-aof-rewrite";
    int r = weft_spawn(&a->rewriter, rewriter_task, sh, &o);
    if (r < 0) {
        a->rewriting = 0;
        a->rewriter = NULL;
        close(fd);
        a->rfd = -1;
        unlink(path);
        return r;
    }
    return 0;
}

void kv_aof_wait(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    if (a->fd >= 0 && kv_cfg.aof_policy == AOF_EVERYSEC)
        wait_late_fsync(sh);
    if (a->fd < 0 || kv_cfg.aof_policy != AOF_ALWAYS)
        return;
    uint64_t need = a->appended;
    if (a->synced >= need)
        return;
    if (weft_mutex_lock(&a->mu, WEFT_FOREVER) < 0)
        return;
    while (a->synced < need && !a->stop)
        if (weft_cond_wait(&a->cv, &a->mu, WEFT_FOREVER) < 0)
            break;
    weft_mutex_unlock(&a->mu);
}

void kv_aof_close(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0)
        return;
    a->abort = 1;
    if (a->rewriter) {
        weft_join(a->rewriter, NULL, WEFT_FOREVER);
        a->rewriter = NULL;
    }
    a->stop = 1;
    weft_event_set(&a->kick);
    weft_event_set(&a->sync_kick);
    weft_event_set(&a->halt);
    if (a->writer)
        weft_join(a->writer, NULL, WEFT_FOREVER);
    a->writer = NULL;
    /* The syncer ends once its fsync is back (it closes a retired fd): only then may the
     * live fd close. */
    if (a->syncer)
        weft_join(a->syncer, NULL, WEFT_FOREVER);
    a->syncer = NULL;
    weft_close(a->fd);
    a->fd = -1;
    sbuf_free(&a->buf);
    if (a->rewriting) /* a switch the writer did not reach */
        rewrite_drop(sh);
}

/* Replays one file; returns 0 or -1. */
static int replay_file(unsigned shard)
{
    char path[4096];
    path_of(shard, path, sizeof path);
    int fd = weft_file_open(path, O_RDONLY | O_CLOEXEC, 0, WEFT_FOREVER);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0) {
        fprintf(stderr, "weft-kv: AOF %s: %s\n", path, weft_strerror(fd));
        return -1;
    }
    kv_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->qbuf = malloc(1 << 20))) {
        free(c);
        weft_close(fd);
        return -1;
    }
    c->fd = -1;
    c->replay = 1;
    c->replay_shard = shard;
    c->replay_multi = -1;
    c->qcap = 1 << 20;
    resp_reset(&c->parser);
    off_t total = 0;
    int rc = 0;
    for (;;) {
        if (c->qcap - c->qlen < 4096) {
            char *q = realloc(c->qbuf, c->qcap * 2);
            if (!q) {
                rc = -1;
                break;
            }
            c->qbuf = q;
            c->qcap *= 2;
        }
        ssize_t n = weft_file_read(fd, c->qbuf + c->qlen, c->qcap - c->qlen, WEFT_FOREVER);
        if (n < 0) {
            fprintf(stderr, "weft-kv: AOF %s: read: %s\n", path, weft_strerror((int)n));
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        c->qlen += (size_t)n;
        total += n;
        c->replay_base = (long long)(total - (off_t)c->qlen);
        kv_process(c);
        c->out.len = 0;
        if (c->close_after) {
            fprintf(stderr, "weft-kv: AOF %s: not a valid AOF near byte %lld: %s\n", path,
                    (long long)(total - (off_t)c->qlen),
                    c->replay_err   ? c->replay_err
                    : c->parser.err ? c->parser.err
                                    : "");
            rc = -1;
            break;
        }
    }
    weft_close(fd);
    if (rc == 0 && c->qlen > 0) {
        /* A command cut short by a crash: it was never acknowledged (under always), so it
         * goes. */
        off_t keep = total - (off_t)c->qlen;
        fprintf(stderr, "weft-kv: AOF %s: truncated last command (%zu bytes) cut off at %lld\n",
                path, c->qlen, (long long)keep);
        if (truncate(path, keep) < 0) {
            perror("weft-kv: truncate");
            rc = -1;
        }
    }
    if (rc == 0 && c->multi && c->replay_multi >= 0) {
        /* A transaction cut short by a crash (its EXEC never written, so never answered):
         * none of it was applied, and none of it stays, or the next writes would join it. */
        fprintf(stderr, "weft-kv: AOF %s: a transaction without its EXEC cut off at %lld\n", path,
                c->replay_multi);
        if (truncate(path, (off_t)c->replay_multi) < 0) {
            perror("weft-kv: truncate");
            rc = -1;
        }
    }
    kv_multi_free(c); /* a MULTI left open: its queue is dropped (all or nothing) */
    resp_free(&c->parser);
    sbuf_free(&c->out);
    sbuf_free(&c->tmp);
    free(c->qbuf);
    free(c->items);
    free(c->argp);
    free(c->argl);
    free(c);
    return rc;
}

/* Writes text to path and fsyncs it. Returns 0 or -1. */
static int write_small_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The shard key (hash.h) is kept beside the files in hex, so that every start places each key
 * on the shard whose file holds its history. Without the file: a directory that holds an AOF
 * already was written before keyed hashing, and keeps that version's unkeyed shard choice
 * (with one shard any choice will do, and the key is written); a new one gets this run's
 * random key. */
static int prepare_shard_key(unsigned nshards, int had_aof)
{
    char path[4096], hex[64];
    uint8_t key[16];
    snprintf(path, sizeof path, "%s/weft-kv-aof.shardkey", kv_cfg.dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int ok = fscanf(f, "%32s", hex) == 1 && strlen(hex) == 32;
        for (int i = 0; ok && i < 16; i++) {
            unsigned byte;
            ok = sscanf(hex + 2 * i, "%2x", &byte) == 1;
            key[i] = (uint8_t)byte;
        }
        fclose(f);
        if (!ok) {
            fprintf(stderr, "weft-kv: %s is damaged (32 hex digits expected)\n", path);
            return -1;
        }
        kv_hash_set_shard_key(key);
        return 0;
    }
    if (had_aof && nshards > 1) {
        fprintf(stderr,
                "weft-kv: the AOF in %s predates keyed hashing: its keys stay on the "
                "shards of the unkeyed hash\n",
                kv_cfg.dir);
        kv_hash_shard_legacy();
        return 0;
    }
    kv_hash_shard_key(key);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[32] = '\n';
    hex[33] = 0;
    if (write_small_file(path, hex) < 0) {
        fprintf(stderr, "weft-kv: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* The name of a non-empty shard file ("weft-kv-<n>.aof") in dir, or NULL. Static storage:
 * the start-up's one thread. */
static const char *stray_shard_file(const char *dir)
{
    static char found[256];
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    const char *r = NULL;
    for (struct dirent *e; !r && (e = readdir(d)) != NULL;) {
        unsigned n;
        char tail[8];
        if (sscanf(e->d_name, "weft-kv-%u.%7s", &n, tail) != 2 || strcmp(tail, "aof") != 0)
            continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && st.st_size > 0) {
            snprintf(found, sizeof found, "%s", e->d_name);
            r = found;
        }
    }
    closedir(d);
    return r;
}

int kv_aof_prepare(unsigned nshards)
{
    if (kv_cfg.aof_policy == AOF_OFF)
        return 0;
    /* A key's history must stay in one file: the shard count is written down beside the
     * files, and another count is refused (keys would change shards, and files); so is the
     * shard key. */
    char path[4096];
    snprintf(path, sizeof path, "%s/weft-kv-aof.shards", kv_cfg.dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned was = 0;
        int ok = fscanf(f, "%u", &was) == 1;
        fclose(f);
        if (!ok || was != nshards) {
            fprintf(stderr,
                    "weft-kv: the AOF in %s was written by %u shards: start with --workers %u "
                    "(or move it away)\n",
                    kv_cfg.dir, was, was);
            return -1;
        }
        return prepare_shard_key(nshards, 1);
    }
    /* No count: a fresh directory, unless shard files are there (copied without the count,
     * as a backup of the *.aof files would be). Their count and key unknown, replaying them
     * would drop the files past --workers or put keys on other shards than their history:
     * refused, with what to do. */
    const char *stray = stray_shard_file(kv_cfg.dir);
    if (stray) {
        fprintf(stderr,
                "weft-kv: %s/%s is there without %s: the shard count the AOF was written with "
                "is unknown; write it there (echo N > %s) or move the AOF files away\n",
                kv_cfg.dir, stray, path, path);
        return -1;
    }
    /* The key first: a start that dies between the two finds no count, and starts afresh. */
    char count[32];
    snprintf(count, sizeof count, "%u\n", nshards);
    if (prepare_shard_key(nshards, 0) < 0)
        return -1;
    if (write_small_file(path, count) < 0) {
        fprintf(stderr, "weft-kv: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int kv_aof_replay(void)
{
    if (kv_cfg.aof_policy == AOF_OFF)
        return 0;
    unsigned n = kv_nshards();
    atomic_store(&kv_cfg.aof_replaying, 1);
    int rc = 0;
    for (unsigned s = 0; s < n && rc == 0; s++)
        rc = replay_file(s);
    atomic_store(&kv_cfg.aof_replaying, 0);
    return rc;
}
