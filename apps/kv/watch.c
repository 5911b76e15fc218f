/* WATCH and UNWATCH. A connection that watches keys has one record (kv_watch) with an atomic
 * dirty flag, shared by reference count with the shards of its keys. Each shard keeps, per
 * watched key, the list of the records watching it (kv_db.watched, touched by that shard's
 * worker only). When a key changes on a shard (a write command that modified it, a deletion,
 * an expiry, an eviction, FLUSHDB), the shard sets the dirty flag of every record watching it,
 * the connection's own included (Redis does the same). EXEC reads the flag once the shards of
 * the watched keys are held (multi.c): a change that comes later cannot sneak in between.
 *
 * Expiry follows Redis 7.0: a key already expired at WATCH does not fail the EXEC by being
 * deleted, only by coming back (wnode.expired); a key live at WATCH fails it once its expiry
 * time has passed, deleted or not. For the latter the connection keeps the earliest expiry
 * time among its keys: any change of a key's TTL is a change that marks the record, so while
 * the record is clean each key still has the TTL it had at WATCH.
 *
 * WATCH registers on each remote shard by a message it awaits (a change after the reply must
 * be seen); the drop is fire and forget (a late one finds a record nobody reads any more). */
#include "watch.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

typedef struct kv_watch {
    atomic_int refs;  /* the connection's, and one per wnode on the shards */
    atomic_int dirty; /* set by any shard; read by the connection */
} kv_watch;

/* One connection watching one key, on the key's shard. */
typedef struct wnode {
    struct wnode *prev, *next; /* in the key's list */
    kv_watch *w;
    int expired; /* the key was expired when watched (until its deletion) */
} wnode;

typedef struct wkey {
    dnode node; /* in kv_db.watched */
    wnode head; /* list head of the watchers */
    char key[];
} wkey;

/* The connection's side: its keys (copies) and where they live. */
typedef struct watched_key {
    char *key;
    size_t klen;
    unsigned shard;
} watched_key;

struct kv_watchset {
    kv_watch *w;
    int64_t deadline_ms; /* earliest expiry time of the keys live at WATCH, -1: none */
    watched_key *keys;
    size_t n, cap;
};

static void watch_release(kv_watch *w)
{
    /* acq_rel: the last owner frees after every other's last touch. */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
        free(w);
}

/* ---- The shard's side ---- */

void kv_watch_touch(kv_db *db, const char *key, size_t klen, int gone)
{
    wkey *wk = (wkey *)dict_find(&db->watched, key, klen, kv_hash(key, klen));
    if (!wk)
        return;
    for (wnode *n = wk->head.next; n != &wk->head; n = n->next) {
        if (n->expired && gone) { /* the expired key's deletion: no change */
            n->expired = 0;
            continue;
        }
        /* release: pairs with kv_watch_failed's acquire (the hold already orders it). */
        atomic_store_explicit(&n->w->dirty, 1, memory_order_release);
    }
}

/* Watches keys[0 .. n) of this shard for w. Returns the earliest expiry time of those that
 * are live with a TTL, or -1. Out of memory, the record is marked dirty: EXEC fails safe. */
static int64_t watch_here(kv_db *db, kv_watch *w, const char *const *keys, const size_t *klens,
                          size_t n)
{
    int64_t now = kv_unix_ms(), deadline = -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = kv_hash(keys[i], klens[i]);
        wkey *wk = (wkey *)dict_find(&db->watched, keys[i], klens[i], h);
        if (!wk && (wk = malloc(sizeof *wk + klens[i] + 1))) {
            memcpy(wk->key, keys[i], klens[i]);
            wk->key[klens[i]] = 0;
            wk->node = (dnode){NULL, h, klens[i], wk->key};
            wk->head.prev = wk->head.next = &wk->head;
            if (dict_add(&db->watched, &wk->node) < 0 &&
                !dict_find(&db->watched, keys[i], klens[i], h)) {
                free(wk);
                wk = NULL;
            }
        }
        wnode *node = wk ? malloc(sizeof *node) : NULL;
        if (!node) {
            atomic_store_explicit(&w->dirty, 1, memory_order_release);
            continue;
        }
        const kv_entry *e = (const kv_entry *)dict_find(&db->keys, keys[i], klens[i], h);
        node->w = w;
        node->expired = e && kv_expired_at(e->expire_ms, now);
        if (e && !node->expired && e->expire_ms >= 0 && (deadline < 0 || e->expire_ms < deadline))
            deadline = e->expire_ms;
        atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
        node->next = wk->head.next;
        node->prev = &wk->head;
        wk->head.next->prev = node;
        wk->head.next = node;
    }
    return deadline;
}

static void unwatch_here(kv_db *db, kv_watch *w, const char *const *keys, const size_t *klens,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wkey *wk = (wkey *)dict_find(&db->watched, keys[i], klens[i], kv_hash(keys[i], klens[i]));
        if (!wk)
            continue;
        for (wnode *node = wk->head.next; node != &wk->head; node = node->next)
            if (node->w == w) {
                node->prev->next = node->next;
                node->next->prev = node->prev;
                free(node);
                watch_release(w);
                break;
            }
        if (wk->head.next == &wk->head) {
            dict_remove(&db->watched, &wk->node);
            free(wk);
        }
    }
}

static void touch_if_present(dnode *n, void *arg)
{
    kv_db *db = arg;
    if (dict_find(&db->keys, n->key, n->klen, n->hash))
        kv_watch_touch(db, n->key, n->klen, 1);
}

void kv_watch_flushing(kv_db *db)
{
    size_t cursor = 0;
    do
        cursor = dict_scan(&db->watched, cursor, touch_if_present, db);
    while (cursor);
}

static void free_wkey(dnode *n, void *arg)
{
    (void)arg;
    wkey *wk = (wkey *)n;
    for (wnode *node = wk->head.next, *next; node != &wk->head; node = next) {
        next = node->next;
        watch_release(node->w);
        free(node);
    }
    free(wk);
}

void kv_watch_fini(kv_db *db)
{
    dict_clear(&db->watched, free_wkey, NULL);
}

/* Whether a write command's reply (r, at least 3 bytes), or the command itself (c->unchanged),
 * says it changed no key, or that the changes were reported already (db_delete touches each
 * key it deletes). When in doubt it says changed: a needless EXEC failure costs a retry, a
 * missed change breaks the lock. */
static int changed_nothing(const kv_command *cmd, const kv_ctx *c, const char *r)
{
    kv_proc p = cmd->proc;
    int null = r[0] == '_' || ((r[0] == '$' || r[0] == '*') && r[1] == '-');
    int empty = (r[0] == '*' || r[0] == '~') && r[1] == '0' && r[2] == '\r';
    int zero = r[0] == ':' && r[1] == '0' && r[2] == '\r';
    if (r[0] == '-' || p == cmd_del || p == cmd_getdel || c->unchanged)
        return 1;
    if (p == cmd_getex) /* no key, or no option: nothing set (PERSIST: c->unchanged) */
        return null || c->argc == 2;
    if (p == cmd_smove && c->argl[1] == c->argl[2] &&
        memcmp(c->argv[1], c->argv[2], c->argl[1]) == 0) /* onto its own set: Redis's no-op */
        return 1;
    if (p == cmd_lpop || p == cmd_rpop || p == cmd_spop || p == cmd_zpopmin || p == cmd_zpopmax ||
        p == cmd_rpoplpush || p == cmd_lmove)
        return null || empty;
    if (p == cmd_expire || p == cmd_pexpire || p == cmd_expireat || p == cmd_pexpireat ||
        p == cmd_persist || p == cmd_setnx || p == cmd_msetnx || p == cmd_hdel || p == cmd_srem ||
        p == cmd_zrem || p == cmd_sadd || p == cmd_hsetnx || p == cmd_lrem || p == cmd_smove ||
        p == cmd_zremrangebyscore || p == cmd_zremrangebylex || p == cmd_zremrangebyrank)
        return zero;
    /* A store of an empty result: its DEL touched the destination if there was one. */
    if (p == cmd_zunionstore || p == cmd_zinterstore || p == cmd_zdiffstore ||
        p == cmd_zrangestore || p == cmd_sinterstore || p == cmd_sunionstore || p == cmd_sdiffstore)
        return zero;
    if (p == cmd_linsert) /* 0: no key; -1: no pivot */
        return zero || (r[0] == ':' && r[1] == '-');
    if (p == cmd_setrange) /* an empty value changes nothing, nor creates the key */
        return c->argl[3] == 0;
    if (p == cmd_rename) /* onto itself: nothing moves */
        return c->argl[1] == c->argl[2] && memcmp(c->argv[1], c->argv[2], c->argl[1]) == 0;
    if (p == cmd_set) {
        int nx = 0, xx = 0, get = 0;
        for (int i = 3; i < c->argc; i++) {
            nx |= arg_is(c, i, "nx");
            xx |= arg_is(c, i, "xx");
            get |= arg_is(c, i, "get");
        }
        if (!get) /* null: NX or XX not met */
            return null;
        return nx ? !null : xx ? null : 0; /* GET answers the old value, set or not */
    }
    return 0;
}

void kv_watch_after_write(kv_db *db, const kv_command *cmd, const kv_ctx *ctx, size_t reply_off)
{
    if (cmd->first <= 0 || ctx->out->len < reply_off + 3 ||
        changed_nothing(cmd, ctx, ctx->out->data + reply_off))
        return;
    int last = cmd->last < 0 ? ctx->argc + cmd->last : cmd->last;
    kv_proc p = cmd->proc;
    if (p == cmd_sinterstore || p == cmd_sunionstore || p == cmd_sdiffstore || p == cmd_zrangestore)
        last = cmd->first; /* the sources are only read */
    for (int k = cmd->first; k <= last && k < ctx->argc; k += cmd->step) {
        int gone =
            !dict_find(&db->keys, ctx->argv[k], ctx->argl[k], kv_hash(ctx->argv[k], ctx->argl[k]));
        kv_watch_touch(db, ctx->argv[k], ctx->argl[k], gone);
    }
}

/* ---- Messages to the other shards ---- */

typedef struct watch_msg {
    kv_watch *w; /* a reference of the message's */
    int add;     /* 1: watch the keys, 0: drop w's watches on them */
    size_t nkeys;
    const char **keys;
    size_t *klens;
} watch_msg;

/* The message for shard s's keys among ws->keys[from ..), copied. */
static watch_msg *build_msg(struct kv_watchset *ws, size_t from, unsigned s, int add)
{
    size_t k = 0, bytes = 0;
    for (size_t i = from; i < ws->n; i++)
        if (ws->keys[i].shard == s) {
            k++;
            bytes += ws->keys[i].klen;
        }
    watch_msg *m = malloc(sizeof *m + k * (sizeof(char *) + sizeof(size_t)) + bytes + 1);
    if (!m)
        return NULL;
    m->w = ws->w;
    m->add = add;
    m->nkeys = k;
    m->keys = (const char **)(m + 1);
    m->klens = (size_t *)(m->keys + k);
    char *p = (char *)(m->klens + k);
    k = 0;
    for (size_t i = from; i < ws->n; i++)
        if (ws->keys[i].shard == s) {
            memcpy(p, ws->keys[i].key, ws->keys[i].klen);
            m->keys[k] = p;
            m->klens[k++] = ws->keys[i].klen;
            p += ws->keys[i].klen;
        }
    return m;
}

static void *watch_task(void *arg)
{
    watch_msg *m = arg;
    kv_shard *sh = kv_local();
    int64_t deadline = -1;
    if (m->add) {
        kv_wait_unheld(sh); /* a transaction's changes are seen whole or not at all */
        deadline = watch_here(&sh->db, m->w, m->keys, m->klens, m->nkeys);
    } else {
        unwatch_here(&sh->db, m->w, m->keys, m->klens, m->nkeys);
    }
    watch_release(m->w);
    free(m);
    atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_release);
    return (void *)(intptr_t)deadline;
}

static int submit(unsigned s, watch_msg *m, weft_future **fut)
{
    atomic_fetch_add_explicit(&m->w->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&kv_inflight, 1, memory_order_relaxed);
    int r = weft_submit_to(s, watch_task, m, fut);
    if (r < 0) {
        atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_relaxed);
        watch_release(m->w);
        free(m);
    }
    return r;
}

/* ---- The connection's side ---- */

static int is_watched(const struct kv_watchset *ws, const char *key, size_t klen)
{
    for (size_t i = 0; i < ws->n; i++)
        if (ws->keys[i].klen == klen && memcmp(ws->keys[i].key, key, klen) == 0)
            return 1;
    return 0;
}

static struct kv_watchset *watchset_create(void)
{
    struct kv_watchset *ws = calloc(1, sizeof *ws);
    kv_watch *w = malloc(sizeof *w);
    if (!ws || !w) {
        free(ws);
        free(w);
        return NULL;
    }
    atomic_init(&w->refs, 1);
    atomic_init(&w->dirty, 0);
    ws->w = w;
    ws->deadline_ms = -1;
    return ws;
}

/* Appends the keys of WATCH not watched yet to ws. Returns 0 or -1 (out of memory). */
static int add_keys(struct kv_watchset *ws, const kv_ctx *c)
{
    for (int i = 1; i < c->argc; i++) {
        if (is_watched(ws, c->argv[i], c->argl[i]))
            continue;
        if (ws->n == ws->cap) {
            size_t cap = ws->cap ? ws->cap * 2 : 8;
            watched_key *k = realloc(ws->keys, cap * sizeof *k);
            if (!k)
                return -1;
            ws->keys = k;
            ws->cap = cap;
        }
        char *copy = malloc(c->argl[i] + 1);
        if (!copy)
            return -1;
        memcpy(copy, c->argv[i], c->argl[i]);
        ws->keys[ws->n++] = (watched_key){copy, c->argl[i], kv_key_shard(c->argv[i], c->argl[i])};
    }
    return 0;
}

static void earliest(struct kv_watchset *ws, int64_t t)
{
    if (t >= 0 && (ws->deadline_ms < 0 || t < ws->deadline_ms))
        ws->deadline_ms = t;
}

void multi_watch(kv_ctx *c)
{
    kv_conn *conn = c->conn;
    if (conn->multi) {
        reply_error(c->out, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    if (!conn->watch && !(conn->watch = watchset_create())) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    struct kv_watchset *ws = conn->watch;
    size_t from = ws->n;
    if (add_keys(ws, c) < 0)
        atomic_store_explicit(&ws->w->dirty, 1, memory_order_relaxed); /* EXEC fails safe */
    kv_shard *sh = kv_local();
    unsigned nsh = kv_nshards();
    weft_future *futs[WEFT_WORKERS_MAX];
    size_t nf = 0;
    for (unsigned s = 0; s < nsh; s++) {
        watch_msg *m = build_msg(ws, from, s, 1);
        if (!m || m->nkeys == 0) {
            if (m == NULL)
                atomic_store_explicit(&ws->w->dirty, 1, memory_order_relaxed);
            free(m);
            continue;
        }
        if (s == sh->index) {
            kv_wait_unheld(sh);
            earliest(ws, watch_here(&sh->db, ws->w, m->keys, m->klens, m->nkeys));
            free(m);
        } else if (submit(s, m, &futs[nf]) == 0) {
            nf++;
        } else {
            atomic_store_explicit(&ws->w->dirty, 1, memory_order_relaxed);
        }
    }
    for (size_t i = 0; i < nf; i++) {
        void *v = NULL;
        if (weft_await(futs[i], &v, WEFT_FOREVER) == 0)
            earliest(ws, (int64_t)(intptr_t)v);
        else
            atomic_store_explicit(&ws->w->dirty, 1, memory_order_relaxed);
        weft_future_destroy(futs[i]);
    }
    reply_ok(c->out);
}

void multi_unwatch(kv_ctx *c)
{
    if (!c->conn->in_exec) /* inside EXEC: the watches go when it ends */
        kv_watch_clear(c->conn);
    reply_ok(c->out);
}

int kv_watch_failed(const kv_conn *c)
{
    const struct kv_watchset *ws = c->watch;
    if (!ws)
        return 0;
    /* acquire: pairs with the release store of the shard that changed a key. */
    return atomic_load_explicit(&ws->w->dirty, memory_order_acquire) ||
           kv_expired_at(ws->deadline_ms, kv_unix_ms());
}

void kv_watch_shards(const kv_conn *c, unsigned char *involved)
{
    if (c->watch)
        for (size_t i = 0; i < c->watch->n; i++)
            involved[c->watch->keys[i].shard] = 1;
}

void kv_watch_clear(kv_conn *c)
{
    struct kv_watchset *ws = c->watch;
    if (!ws)
        return;
    kv_shard *sh = kv_local();
    for (unsigned s = 0; s < kv_nshards(); s++) {
        watch_msg *m = build_msg(ws, 0, s, 0);
        if (!m || m->nkeys == 0) { /* out of memory: the nodes stay until the shard's end */
            free(m);
            continue;
        }
        if (s == sh->index) {
            unwatch_here(&sh->db, ws->w, m->keys, m->klens, m->nkeys);
            free(m);
        } else {
            weft_future *f;
            if (submit(s, m, &f) == 0)
                weft_future_destroy(f); /* fire and forget: kv_inflight covers it */
        }
    }
    watch_release(ws->w);
    for (size_t i = 0; i < ws->n; i++)
        free(ws->keys[i].key);
    free(ws->keys);
    free(ws);
    c->watch = NULL;
}
