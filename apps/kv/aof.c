/* The append-only file (aof.h). Logging appends RESP to the shard's buffer and kicks the
 * writer; the writer swaps the buffer out, writes it with weft_file_write (the blocking pool
 * or the ring), fsyncs as the policy says, and moves `synced`, on which `always` replies wait.
 * Replay feeds each file through a connection record with no socket (exec.c's kv_process), so
 * the commands reach their shards as a client's would, and stops at a truncated tail, which it
 * cuts off. */
#include "aof.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "server.h"

static void path_of(unsigned shard, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/weft-kv-%u.aof", kv_cfg.dir, shard);
}

static void *writer_task(void *arg)
{
    kv_shard *sh = arg;
    kv_aof *a = &sh->aof;
    sbuf spare = {0};
    for (;;) {
        if (a->buf.len == 0) {
            if (a->stop)
                break;
            int64_t dl = kv_cfg.aof_policy == AOF_EVERYSEC && a->dirty ? a->last_fsync + WEFT_SEC
                                                                       : WEFT_FOREVER;
            int r = weft_event_wait(&a->kick, dl);
            if (r == -ETIMEDOUT) {
                weft_file_fsync(a->fd, WEFT_FOREVER);
                a->dirty = 0;
                a->last_fsync = weft_now();
            } else if (r < 0) {
                break; /* cancelled: the runtime is going */
            }
            continue;
        }
        /* Swap buffers: commands go on being logged while this one is written. */
        sbuf w = a->buf;
        a->buf = spare;
        a->buf.len = 0;
        uint64_t upto = a->appended;
        size_t done = 0;
        while (done < w.len) {
            ssize_t n = weft_file_write(a->fd, w.data + done, w.len - done, WEFT_FOREVER);
            if (n <= 0) {
                fprintf(stderr, "weft-kv: AOF of shard %u: write: %s\n", sh->index,
                        weft_strerror(n < 0 ? (int)n : -EIO));
                break;
            }
            done += (size_t)n;
        }
        spare = w;
        if (kv_cfg.aof_policy == AOF_ALWAYS) {
            weft_file_fsync(a->fd, WEFT_FOREVER);
        } else if (kv_cfg.aof_policy == AOF_EVERYSEC) {
            a->dirty = 1;
            if (weft_now() - a->last_fsync >= WEFT_SEC) {
                weft_file_fsync(a->fd, WEFT_FOREVER);
                a->dirty = 0;
                a->last_fsync = weft_now();
            }
        }
        weft_mutex_lock(&a->mu, WEFT_FOREVER);
        a->synced = upto;
        weft_cond_broadcast(&a->cv);
        weft_mutex_unlock(&a->mu);
        if (spare.cap > 4 * 1024 * 1024)
            sbuf_free(&spare);
    }
    if (a->dirty || kv_cfg.aof_policy != AOF_NO)
        weft_file_fsync(a->fd, WEFT_FOREVER);
    sbuf_free(&spare);
    return NULL;
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
    a->kick = (weft_event)WEFT_EVENT_AUTO_INIT;
    a->last_fsync = weft_now();
    weft_spawn_opts o = {0};
    o.name = "kv-aof";
    int r = weft_spawn(&a->writer, writer_task, sh, &o);
    if (r < 0) {
        close(fd);
        a->fd = -1;
    }
    return r;
}

static void log_argv(kv_aof *a, int argc, const char *const *argv, const size_t *argl)
{
    size_t before = a->buf.len;
    reply_array(&a->buf, argc);
    for (int i = 0; i < argc; i++)
        reply_bulk(&a->buf, argv[i], argl[i]);
    a->appended += a->buf.len - before;
}

/* The state of one string key, or its expiry: what it is now, as commands that set it. */
static void log_state(kv_shard *sh, const char *key, size_t klen, int value)
{
    kv_aof *a = &sh->aof;
    kv_entry *e = (kv_entry *)dict_find(&sh->db.keys, key, klen, kv_hash(key, klen));
    if (!e) {
        const char *argv[2] = {"DEL", key};
        size_t argl[2] = {3, klen};
        log_argv(a, 2, argv, argl);
        return;
    }
    if (value && e->type == KV_STRING) {
        const char *argv[3] = {"SET", key, e->v.str.p ? e->v.str.p : ""};
        size_t argl[3] = {3, klen, e->v.str.len};
        log_argv(a, 3, argv, argl);
    }
    char when[32];
    int n = snprintf(when, sizeof when, "%lld", (long long)e->expire_ms);
    const char *argv[3] = {e->expire_ms >= 0 ? "PEXPIREAT" : "PERSIST", key, when};
    size_t argl[3] = {e->expire_ms >= 0 ? 9u : 7u, klen, (size_t)n};
    log_argv(a, e->expire_ms >= 0 ? 3 : 2, argv, argl);
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
        log_argv(a, 2, argv, argl);
    } else {
        log_argv(a, ctx->argc, ctx->argv, ctx->argl);
    }
    weft_event_set(&a->kick);
}

void kv_aof_log_del(kv_shard *sh, const char *key, size_t klen)
{
    kv_aof *a = &sh->aof;
    if (a->fd < 0 || atomic_load_explicit(&kv_cfg.aof_replaying, memory_order_relaxed))
        return;
    const char *argv[2] = {"DEL", key};
    size_t argl[2] = {3, klen};
    log_argv(a, 2, argv, argl);
    weft_event_set(&a->kick);
}

void kv_aof_wait(kv_shard *sh)
{
    kv_aof *a = &sh->aof;
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
    a->stop = 1;
    weft_event_set(&a->kick);
    if (a->writer)
        weft_join(a->writer, NULL, WEFT_FOREVER);
    a->writer = NULL;
    weft_close(a->fd);
    a->fd = -1;
    sbuf_free(&a->buf);
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
        kv_process(c);
        c->out.len = 0;
        if (c->close_after) {
            fprintf(stderr, "weft-kv: AOF %s: not a valid AOF near byte %lld: %s\n", path,
                    (long long)(total - (off_t)c->qlen), c->parser.err ? c->parser.err : "");
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

int kv_aof_prepare(unsigned nshards)
{
    if (kv_cfg.aof_policy == AOF_OFF)
        return 0;
    /* A key's history must stay in one file: the shard count is written down beside the
     * files, and another count is refused (keys would change shards, and files). */
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
        return 0;
    }
    f = fopen(path, "w");
    if (!f || fprintf(f, "%u\n", nshards) < 0 || fclose(f) != 0) {
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
