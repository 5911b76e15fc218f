/* BLPOP/BRPOP: clients blocked on keys are served first-come first-served, by the command that
 * pushes, before anything else runs on the key's shard (Redis's order).
 *
 * A blocked client has one wait record (bwait, on the heap, shared by reference count between
 * its connection and the shards it waits on) and, on each shard holding some of its keys, a
 * registration (kv_breg, that shard's) with a node at the tail of each key's queue (kv_bkey).
 * Queues, registrations and keys are touched by their shard's worker only. A push marks its
 * key ready (db_signal_key); when the command ends, kv_run_proc calls kv_block_serve, which
 * for each ready key takes the queue's oldest client while the list is not empty: it drops
 * the client's registration on this shard (all its keys here), claims the client with a CAS
 * of the record's state from WAITING to SERVED, and only then pops the element, logs the pop
 * (LPOP/RPOP) after the push in the AOF, and hands the element over (the record's result,
 * then the record's promise resolved). A client waiting on several shards can be claimed by
 * one of them only: the others' CAS fails and they drop it. No element is popped for a client
 * that is not claimed, and the claim and the pop happen in one run of the shard's thread, so
 * nothing is lost or served twice; the connection, which may be on another worker, only
 * reads the result after the promise.
 *
 * The connection (kv_block_pop) registers on every shard involved (its own inline, the others
 * by message, awaited: the client counts as blocked from then on), then waits for the first
 * of the promise, its socket turning readable (an end of file is a client that went) and the
 * deadline. If it gives up (deadline, client gone, cancellation) it CASes WAITING to
 * CANCELLED; when that fails a shard has claimed it, and it takes the element (a timeout then
 * replies with it). It then sends each other shard an unregistration (fire and forget), which
 * drops what is left there. An element claimed for a client found gone is given back: pushed
 * again at the end it came from (LPUSH for BLPOP, RPUSH for BRPOP), which serves the next
 * client in line. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cmd.h"
#include "server.h"

enum { WAITING = 0, SERVED = 1, CANCELLED = 2 };

/* What a shard hands a client: the key it was served by, and the element. */
typedef struct bresult {
    unsigned shard; /* where it was popped */
    size_t klen, vlen;
    char data[]; /* the key, then the element */
} bresult;

typedef struct kv_bwait {
    /* Any thread: WAITING until the one CAS that claims (a shard: SERVED) or gives up (the
     * connection: CANCELLED); acq_rel on success, so the winner sees what came before. */
    atomic_int state;
    /* Any thread: the connection's, each registration's, each message's in flight; acq_rel,
     * the last release frees after everyone's last touch. */
    atomic_int refs;
    /* Written by the claiming shard: result, then done (release), then the promise resolved;
     * read by the connection after an acquire load of done. */
    atomic_int done;
    bresult *result;
    weft_promise *wake; /* resolved (NULL) by the claiming shard */
    int left;           /* BLPOP: pop from the left; BRPOP: the right */
    unsigned nshards;
    kv_breg *regs[]; /* regs[s]: the registration on shard s, or NULL; shard s's worker only */
} bwait;

static void bwait_release(bwait *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        free(w->result);
        weft_promise_release(w->wake);
        free(w);
    }
}

static void bwait_retain(bwait *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
}

/* ---- On a key's shard ---- */

static void free_bkey_if_idle(kv_db *db, kv_bkey *bk)
{
    if (bk->queue.next == &bk->queue && !bk->ready) {
        dict_remove(&db->blocking, &bk->node);
        kv_free(bk);
    }
}

/* Drops registration r from every queue of this shard and frees it. */
static void unlink_reg(kv_shard *sh, kv_breg *r)
{
    kv_db *db = &sh->db;
    r->link.prev->next = r->link.next;
    r->link.next->prev = r->link.prev;
    for (size_t i = 0; i < r->nkeys; i++) {
        kv_bnode *n = &r->nodes[i];
        n->prev->next = n->next;
        n->next->prev = n->prev;
        free_bkey_if_idle(db, n->bk);
    }
    bwait *w = r->w;
    w->regs[sh->index] = NULL;
    kv_free(r);
    bwait_release(w);
}

static void log_pop(kv_shard *sh, int left, const char *key, size_t klen)
{
    if (sh->aof.fd < 0)
        return;
    const kv_command *pop = kv_command_find(left ? "lpop" : "rpop", 4, 0);
    const char *argv[2] = {pop->name, key};
    size_t argl[2] = {4, klen};
    sbuf none = {0}; /* no reply: kv_aof_log takes it for a success */
    kv_ctx ctx = {&sh->db, 2, argv, argl, &none, NULL, pop, 0};
    kv_aof_log(sh, pop, &ctx, 0);
}

/* Claims w and hands it one element of e (a non-empty list of key). Returns 1 if served, 0 if
 * w was claimed or given up already (or no memory for the result: w stays as it is). */
static int claim(kv_shard *sh, bwait *w, kv_entry *e, const char *key, size_t klen)
{
    kv_list *l = e->v.list;
    kv_blob *b = list_at(l, w->left ? 0 : l->len - 1);
    bresult *res = malloc(sizeof *res + klen + b->len);
    if (!res)
        return 0;
    int expect = WAITING;
    if (!atomic_compare_exchange_strong_explicit(&w->state, &expect, SERVED, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(res);
        return 0;
    }
    b = list_pop(l, w->left);
    res->shard = sh->index;
    res->klen = klen;
    res->vlen = b->len;
    memcpy(res->data, key, klen);
    memcpy(res->data + klen, b->data, b->len);
    kv_free(b);
    db_delete_if_empty(&sh->db, e);
    log_pop(sh, w->left, key, klen);
    w->result = res;
    /* release: the connection's acquire load of done sees result. */
    atomic_store_explicit(&w->done, 1, memory_order_release);
    weft_promise_resolve(w->wake, NULL);
    return 1;
}

static kv_entry *nonempty_list(kv_db *db, const char *key, size_t klen)
{
    kv_entry *e = db_lookup(db, key, klen);
    return e && e->type == KV_LIST && e->v.list->len > 0 ? e : NULL;
}

/* Serves bk's queue, oldest first, while its list has elements. */
static void serve_key(kv_shard *sh, kv_bkey *bk)
{
    kv_entry *e;
    while (bk->queue.next != &bk->queue &&
           (e = nonempty_list(&sh->db, bk->key, bk->node.klen)) != NULL) {
        kv_breg *r = bk->queue.next->reg;
        bwait *w = r->w;
        /* Out of memory for the result: the client stays first in line, the element in the
         * list, until the next push. */
        if (!claim(sh, w, e, bk->key, bk->node.klen) &&
            atomic_load_explicit(&w->state, memory_order_acquire) == WAITING)
            break;
        /* Served here, or claimed by another shard or given up: it leaves this shard's
         * queues (bk stays: it is marked ready). */
        unlink_reg(sh, r);
    }
}

void kv_block_serve(kv_shard *sh)
{
    kv_db *db = &sh->db;
    kv_bkey *bk;
    while ((bk = db->ready) != NULL) {
        db->ready = bk->next_ready;
        serve_key(sh, bk);
        bk->ready = 0;
        free_bkey_if_idle(db, bk);
    }
}

/* Registers w on this shard's keys (keys[0 .. n), all of this shard), or serves it at once
 * when one of them already has elements (a push came after the connection's first try).
 * Returns 0 or -ENOMEM. */
static int register_here(kv_shard *sh, bwait *w, const char *const *keys, const size_t *klens,
                         size_t n)
{
    kv_db *db = &sh->db;
    if (sh->held_by)
        kv_wait_unheld(sh); /* the keys are read: not in the middle of a transaction */
    /* acquire: pairs with the connection's CANCELLED (it unregisters after: see the file's
     * comment), so a late registration is never left behind. */
    if (atomic_load_explicit(&w->state, memory_order_acquire) != WAITING)
        return 0;
    for (size_t i = 0; i < n; i++) {
        kv_entry *e = nonempty_list(db, keys[i], klens[i]);
        if (e) {
            /* Nobody is queued on a key that has elements: every push served its queue. */
            if (claim(sh, w, e, keys[i], klens[i]) || atomic_load(&w->state) != WAITING)
                return 0;
            return -ENOMEM;
        }
    }
    kv_breg *r = kv_malloc(sizeof *r + n * sizeof(kv_bnode));
    if (!r)
        return -ENOMEM;
    r->w = w;
    r->nkeys = 0;
    r->link.next = &db->regs;
    r->link.prev = db->regs.prev;
    db->regs.prev->next = &r->link;
    db->regs.prev = &r->link;
    w->regs[sh->index] = r;
    bwait_retain(w);
    for (size_t i = 0; i < n; i++) {
        uint64_t h = kv_hash(keys[i], klens[i]);
        kv_bkey *bk = (kv_bkey *)dict_find(&db->blocking, keys[i], klens[i], h);
        if (!bk) {
            bk = kv_malloc(sizeof *bk + klens[i] + 1);
            if (!bk) {
                unlink_reg(sh, r);
                return -ENOMEM;
            }
            memset(bk, 0, sizeof *bk);
            memcpy(bk->key, keys[i], klens[i]);
            bk->key[klens[i]] = 0;
            bk->node.key = bk->key;
            bk->node.klen = klens[i];
            bk->node.hash = h;
            bk->queue.prev = bk->queue.next = &bk->queue;
            dict_add(&db->blocking, &bk->node); /* -1: linked all the same, longer chain */
        }
        kv_bnode *nd = &r->nodes[r->nkeys++];
        nd->reg = r;
        nd->bk = bk;
        nd->next = &bk->queue;
        nd->prev = bk->queue.prev;
        bk->queue.prev->next = nd;
        bk->queue.prev = nd;
    }
    return 0;
}

static void unregister_here(kv_shard *sh, bwait *w)
{
    if (w->regs[sh->index])
        unlink_reg(sh, w->regs[sh->index]);
}

void kv_block_fini(kv_shard *sh)
{
    kv_db *db = &sh->db;
    while (db->regs.next != &db->regs)
        unlink_reg(sh, (kv_breg *)db->regs.next);
    db->ready = NULL;
    dict_free(&db->blocking);
}

/* A message to another shard: register (keys given) or unregister (nkeys 0). Holds a
 * reference on w. */
typedef struct reg_msg {
    bwait *w;
    size_t nkeys;
    const char **keys;
    size_t *klens;
} reg_msg;

static void *reg_task(void *arg)
{
    reg_msg *m = arg;
    kv_shard *sh = kv_local();
    int r = 0;
    if (m->nkeys)
        r = register_here(sh, m->w, m->keys, m->klens, m->nkeys);
    else
        unregister_here(sh, m->w);
    bwait_release(m->w);
    free(m);
    atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_release);
    return (void *)(intptr_t)r;
}

/* Under appendfsync always: on the shard that popped, until the pop is on disk. */
static void *sync_task(void *arg)
{
    (void)arg;
    kv_aof_wait(kv_local());
    atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_release);
    return NULL;
}

/* Builds the message for shard s's keys among keys[0 .. nkeys) (none: an unregistration). */
static reg_msg *build_msg(bwait *w, unsigned s, const char *const *keys, const size_t *klens,
                          size_t nkeys)
{
    size_t k = 0, bytes = 0;
    for (size_t i = 0; i < nkeys; i++)
        if (kv_key_shard(keys[i], klens[i]) == s) {
            k++;
            bytes += klens[i];
        }
    reg_msg *m = malloc(sizeof *m + k * (sizeof(char *) + sizeof(size_t)) + bytes);
    if (!m)
        return NULL;
    m->w = w;
    m->nkeys = k;
    m->keys = (const char **)(m + 1);
    m->klens = (size_t *)(m->keys + k);
    char *p = (char *)(m->klens + k);
    size_t j = 0;
    for (size_t i = 0; i < nkeys; i++)
        if (kv_key_shard(keys[i], klens[i]) == s) {
            memcpy(p, keys[i], klens[i]);
            m->keys[j] = p;
            m->klens[j++] = klens[i];
            p += klens[i];
        }
    return m;
}

/* Submits m to shard s; the message takes a reference on m->w. 0 or -errno (m freed). */
static int submit(unsigned s, reg_msg *m, weft_future **fut)
{
    bwait_retain(m->w);
    atomic_fetch_add_explicit(&kv_inflight, 1, memory_order_relaxed);
    int r = weft_submit_to(s, reg_task, m, fut);
    if (r < 0) {
        atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_relaxed);
        bwait_release(m->w);
        free(m);
    }
    return r;
}

/* 1: the client has closed its end (or the socket failed); 0: not seen. What it sent after
 * the blocking command is read into its query buffer first, as Redis reads a blocked client's
 * socket (kv_process runs those commands once the pop has replied): its end of file comes
 * after those bytes, and only by reading them is it seen. (Peeking alone, such a client was
 * never seen to go: it stayed queued, a later push popped an element for it, lost, and then
 * ran the commands it had pipelined, long after it closed; and on io_uring the peek, a plain
 * recv(2), missed the bytes weft's receive holds, so that the wait spun.) The buffer may
 * move: nothing of the command's arguments, which point into it, is read after the
 * registration. Past the query buffer's limit the client is dropped, as Redis drops it. */
static int peek_gone(kv_conn *c)
{
    for (;;) {
        if (kv_conn_room(c) < 0)
            return 1;
        /* Through weft, which on io_uring holds the bytes its receive took off the socket (a
         * plain recv(2) there found none while weft_fd_wait said readable: the wait below
         * spun, and its worker served nobody else). MSG_DONTWAIT: one attempt. */
        ssize_t n =
            weft_recv(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen, MSG_DONTWAIT, WEFT_FOREVER);
        if (n > 0) {
            c->qlen += (size_t)n;
            continue;
        }
        if (n == -EINTR)
            continue;
        return n != -EAGAIN && n != -EWOULDBLOCK; /* 0: its end; an error; -ECANCELED */
    }
}

enum { OUT_SERVED, OUT_TIMEOUT, OUT_GONE, OUT_ERROR };

/* Waits for the promise, the client's end of file, or the deadline. */
static int wait_served(kv_conn *c, bwait *w, int64_t deadline)
{
    int watch = c->fd >= 0;
    for (;;) {
        /* acquire: pairs with claim's release store (the result is there). */
        if (atomic_load_explicit(&w->done, memory_order_acquire))
            return OUT_SERVED;
        if (watch && peek_gone(c))
            return OUT_GONE;
        int r;
        if (watch) {
            weft_case cs[2] = {{0}, {0}};
            cs[0].op = WEFT_CASE_FUTURE;
            cs[0].future = weft_promise_future(w->wake);
            cs[1].op = WEFT_CASE_FD;
            cs[1].io.fd = c->fd;
            cs[1].io.events = WEFT_READABLE;
            r = weft_select(cs, 2, deadline);
            if (r == 1 || r == 0)
                continue; /* readable (peek again) or served (done is set) */
        } else {
            r = weft_await(weft_promise_future(w->wake), NULL, deadline);
            if (r >= 0)
                continue;
        }
        if (r == -ETIMEDOUT)
            return OUT_TIMEOUT;
        if (r == -ECANCELED)
            return OUT_GONE;
        if (watch)
            watch = 0; /* the select could not be set up (no memory): the promise alone */
        else
            return OUT_GONE;
    }
}

int kv_block_pop(kv_conn *c, const char *const *keys, const size_t *klens, size_t nkeys, int left,
                 int64_t deadline, sbuf *out)
{
    kv_shard *sh = kv_local();
    unsigned nsh = kv_nshards();
    bwait *w = calloc(1, sizeof *w + nsh * sizeof(kv_breg *));
    if (!w || weft_promise_create(&w->wake) < 0) {
        free(w);
        reply_error(out, "ERR out of memory");
        return 0;
    }
    atomic_init(&w->state, WAITING);
    atomic_init(&w->refs, 1);
    atomic_init(&w->done, 0);
    w->left = left;
    w->nshards = nsh;

    /* Register on every shard involved: the others by message, this one inline. */
    unsigned char involved[WEFT_WORKERS_MAX] = {0};
    weft_future *futs[WEFT_WORKERS_MAX];
    size_t nf = 0;
    int err = 0;
    for (size_t i = 0; i < nkeys; i++)
        involved[kv_key_shard(keys[i], klens[i])] = 1;
    for (unsigned s = 0; s < nsh && !err; s++) {
        if (!involved[s] || s == sh->index)
            continue;
        reg_msg *m = build_msg(w, s, keys, klens, nkeys);
        err = m ? submit(s, m, &futs[nf]) : -ENOMEM;
        if (!err)
            nf++;
    }
    if (!err && involved[sh->index]) {
        reg_msg *m = build_msg(w, sh->index, keys, klens, nkeys);
        err = m ? register_here(sh, w, m->keys, m->klens, m->nkeys) : -ENOMEM;
        free(m);
    }
    for (size_t i = 0; i < nf; i++) {
        void *v = NULL;
        int r = weft_await(futs[i], &v, WEFT_FOREVER);
        if (r == 0)
            r = (int)(intptr_t)v;
        if (r < 0 && !err)
            err = r;
        weft_future_destroy(futs[i]);
    }

    int outcome = OUT_ERROR;
    if (!err) {
        c->blocked = 1;
        sh->nblocked++;
        outcome = wait_served(c, w, deadline);
        sh->nblocked--;
        c->blocked = 0;
    }
    /* Give up, unless a shard has claimed the client meanwhile: then take its element. */
    int expect = WAITING;
    if (!atomic_compare_exchange_strong_explicit(&w->state, &expect, CANCELLED,
                                                 memory_order_acq_rel, memory_order_acquire) &&
        !atomic_load_explicit(&w->done, memory_order_acquire))
        weft_await(weft_promise_future(w->wake), NULL, WEFT_FOREVER); /* a moment: it is popping */
    bresult *res = NULL;
    if (atomic_load_explicit(&w->done, memory_order_acquire)) {
        res = w->result;
        w->result = NULL;
    }
    /* What is left on the shards goes: this one's now, the others' by message. */
    for (unsigned s = 0; s < nsh; s++) {
        if (!involved[s] || (res && s == res->shard))
            continue;
        if (s == sh->index) {
            unregister_here(sh, w);
            continue;
        }
        reg_msg *m = malloc(sizeof *m);
        weft_future *f;
        if (m) {
            *m = (reg_msg){w, 0, NULL, NULL};
            if (submit(s, m, &f) == 0)
                weft_future_destroy(f); /* fire and forget: kv_inflight covers it */
        }
        /* Without memory the registration stays there, claimed by nobody: the next push
         * drops it (its CAS fails), or the shard's end frees it. */
    }
    /* A client that closed its end after blocking (seen or not before the hand-off) gets
     * nothing: its element goes back. */
    if (res && outcome != OUT_GONE && c->fd >= 0 && peek_gone(c))
        outcome = OUT_GONE;
    int ret = 0;
    if (res && outcome != OUT_GONE) {
        if (res->shard != sh->index && kv_cfg.aof_policy == AOF_ALWAYS) {
            /* appendfsync always: the pop is on disk before the reply leaves. */
            weft_future *f;
            atomic_fetch_add_explicit(&kv_inflight, 1, memory_order_relaxed);
            if (weft_submit_to(res->shard, sync_task, NULL, &f) == 0) {
                weft_await(f, NULL, WEFT_FOREVER);
                weft_future_destroy(f);
            } else {
                atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_relaxed);
            }
        }
        reply_array(out, 2);
        reply_bulk(out, res->data, res->klen);
        reply_bulk(out, res->data + res->klen, res->vlen);
    } else if (res) {
        /* Claimed for a client that went: the element goes back where it was. */
        const kv_command *push = kv_command_find(left ? "lpush" : "rpush", 5, 0);
        const char *argv[3] = {push->name, res->data, res->data + res->klen};
        size_t argl[3] = {5, res->klen, res->vlen};
        kv_item it = {push, 3, argv, argl, 0, res->shard, 0, 0};
        sbuf tmp = sbuf_like(out);
        kv_exec_items(c, &it, 1, &tmp);
        sbuf_free(&tmp);
        ret = -1;
    } else if (err) {
        reply_error(out, "ERR out of memory");
    } else if (outcome == OUT_TIMEOUT) {
        reply_null_array(out);
    } else {
        ret = -1;
    }
    free(res);
    bwait_release(w);
    return ret;
}
