/* Atomic steps across shards: MSET, MSETNX, RENAME, MGET, DEL, UNLINK, EXISTS, LMOVE, SMOVE
 * and the set algebra whose keys span shards. A transaction holds every shard it touches, runs its
 * phases there, and lets them go:
 * 1. It takes the global transaction lock: one transaction at a time, so two can never hold
 *    shards in opposite orders and wait for each other.
 * 2. It submits a holder task to each other shard involved. A holder marks its shard held
 *    (kv_shard.held_by) and parks; from then on any other command about to run there
 *    (kv_run_proc: a connection's, a message's) parks until the hold ends (kv_shard.thaw).
 *    The coordinator holds its own shard the same way once every holder has reported in.
 * 3. Each phase: the coordinator hands each held shard its part (core->work) and wakes its
 *    holder (go), which runs it and reports (nacks, acked); the coordinator runs its own
 *    shard's part and waits for the reports. A phase's replies can decide the next (MSETNX's
 *    check, RENAME's dump).
 * 4. The end (phase -1) releases the holders, which let their shards go; the coordinator lets
 *    its own go and unlocks. No command runs on a held shard but the transaction's, so no
 *    client sees one half done; the shards involved wait meanwhile (a few cross-thread
 *    wake-ups). The shared part lives on the heap, freed by the last of the coordinator and
 *    the holders to drop it; once holders are submitted the coordinator finishes the
 *    protocol whatever happens (cancellation included): the holders wait for it.
 * Nesting: EXEC over several shards (multi.c) holds every shard its commands need before the
 * first runs, and a command inside it that would start a transaction of its own (MSET across
 * shards, RENAME, ...) runs its phases as phases of EXEC's instead (kv_tx.outer): taking the
 * lock again, or holding a shard already held, would wait for ever. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "server.h"

static weft_mutex tx_lock = WEFT_MUTEX_INIT;

typedef struct tx_core {
    atomic_int refs;                /* the coordinator's and each holder's */
    atomic_int phase;               /* the coordinator's: a bump starts a phase, -1 ends */
    atomic_int nacks;               /* holders: reported in, then once per phase run */
    weft_event acked;               /* auto-reset: set by each report */
    kv_msg *work[WEFT_WORKERS_MAX]; /* each held shard's part of the current phase */
    weft_event go[]; /* per shard, auto-reset: the coordinator wakes that shard's holder */
} tx_core;

typedef struct holder {
    tx_core *core;
    unsigned shard;
} holder;

static void core_release(tx_core *core)
{
    /* acq_rel: the last to drop it frees it after every other's last touch. */
    if (atomic_fetch_sub_explicit(&core->refs, 1, memory_order_acq_rel) == 1)
        free(core);
}

/* A wait that must end (the other side counts on it): a cancelled task's waits return at
 * once, so it then polls with weft_yield, which lets this worker's other tasks run (it
 * switches even when cancelled). sched_yield did not: the shard's holder task, on this same
 * worker, never ran to let go, and a shutdown under cross-shard load spun for ever. */
static void wait_event(weft_event *e)
{
    if (weft_event_wait(e, WEFT_FOREVER) < 0)
        weft_yield();
}

static void hold(kv_shard *sh)
{
    sh->held_by = weft_self();
    weft_event_reset(&sh->thaw);
}

static void let_go(kv_shard *sh)
{
    sh->held_by = NULL;
    if (sh->db.ready && !sh->in_exec)
        kv_block_serve(sh); /* the clients the transaction's pushes woke, after all of it */
    weft_event_set(&sh->thaw);
}

void kv_wait_unheld(kv_shard *sh)
{
    while (sh->held_by && sh->held_by != weft_self())
        wait_event(&sh->thaw);
}

static void report(tx_core *core)
{
    /* release: the coordinator's acquire of nacks sees this shard's part done. */
    atomic_fetch_add_explicit(&core->nacks, 1, memory_order_release);
    weft_event_set(&core->acked);
}

/* On another shard: holds it while the transaction runs its phases. */
static void *holder_task(void *arg)
{
    holder *h = arg;
    tx_core *core = h->core;
    unsigned s = h->shard;
    free(h);
    kv_shard *sh = kv_local();
    kv_wait_unheld(sh); /* the previous transaction's holder may not have let go yet */
    hold(sh);
    /* acquire: pairs with the coordinator's release store of phase 1 (work[] built before
     * the submission, which orders it anyway). */
    int seen = atomic_load_explicit(&core->phase, memory_order_acquire);
    if (core->work[s])
        kv_msg_run(core->work[s]); /* the first phase runs as soon as the shard is held */
    kv_aof_wait(sh);
    report(core);
    for (;;) {
        /* acquire: pairs with the coordinator's release store of phase, after work[]. */
        int ph = atomic_load_explicit(&core->phase, memory_order_acquire);
        if (ph < 0)
            break;
        if (ph == seen) {
            wait_event(&core->go[s]);
            continue;
        }
        seen = ph;
        if (core->work[s])
            kv_msg_run(core->work[s]);
        kv_aof_wait(sh);
        report(core);
    }
    let_go(sh);
    core_release(core);
    atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_release);
    return NULL;
}

static void wait_acks(tx_core *core, int target)
{
    while (atomic_load_explicit(&core->nacks, memory_order_acquire) < target)
        wait_event(&core->acked);
}

/* Builds each remote shard's part of items (those with a command) into core->work, replies in
 * like's protocol. */
static int build_work(kv_tx *tx, const kv_item *items, size_t n, const sbuf *like)
{
    tx_core *core = tx->core;
    unsigned self = kv_local()->index, nsh = kv_nshards();
    for (size_t i = 0; i < n; i++)
        if (items[i].cmd && items[i].shard != self && !tx->remote[items[i].shard])
            return -EINVAL;
    kv_item *real = malloc((n ? n : 1) * sizeof *real);
    if (!real)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].cmd)
            real[m++] = items[i];
    int err = 0;
    for (unsigned s = 0; s < nsh && !err; s++) {
        core->work[s] = NULL;
        int any = 0;
        for (size_t i = 0; i < m && !any; i++)
            any = real[i].shard == s && s != self;
        if (any && !(core->work[s] = kv_msg_build(real, m, s, like)))
            err = -ENOMEM;
    }
    free(real);
    return err;
}

/* Runs the local items of the phase, waits for the holders' reports up to target, merges the
 * replies in item order into dst, and frees the phase's work. */
static void finish_phase(kv_tx *tx, kv_item *items, size_t n, sbuf *dst, int target)
{
    tx_core *core = tx->core;
    unsigned self = kv_local()->index, nsh = kv_nshards();
    sbuf local = sbuf_like(dst);
    for (size_t i = 0; i < n; i++)
        if (items[i].cmd && items[i].shard == self) {
            kv_shard *sh = kv_local();
            kv_ctx ctx = {&sh->db, items[i].argc, items[i].argv, items[i].argl,
                          &local,  NULL,          items[i].cmd,  0};
            items[i].off = local.len;
            kv_run_proc(items[i].cmd, &ctx);
            items[i].len = local.len - items[i].off;
        }
    wait_acks(core, target);
    size_t next[WEFT_WORKERS_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        if (!items[i].cmd)
            continue;
        unsigned s = items[i].shard;
        const char *src;
        size_t l;
        if (s == self) {
            src = local.data + items[i].off;
            l = items[i].len;
        } else {
            kv_msg_item *mi = &core->work[s]->items[next[s]++];
            src = core->work[s]->out.data + mi->off;
            l = mi->len;
        }
        items[i].off = dst->len;
        sbuf_add(dst, src, l);
        items[i].len = l;
    }
    sbuf_free(&local);
    for (unsigned s = 0; s < nsh; s++)
        if (core->work[s]) {
            /* Built with two references, for a task of its own; the holder took none. */
            kv_msg_release(core->work[s]);
            kv_msg_release(core->work[s]);
            core->work[s] = NULL;
        }
}

int kv_tx_begin(kv_tx *tx, kv_conn *c, kv_item *items, size_t n, sbuf *dst)
{
    memset(tx, 0, sizeof *tx);
    if (c && c->exec_tx) {
        tx->outer = c->exec_tx;
        return kv_tx_run(tx->outer, items, n, dst);
    }
    unsigned self = kv_local()->index, nsh = kv_nshards();
    for (size_t i = 0; i < n; i++)
        if (items[i].shard != self)
            tx->remote[items[i].shard] = 1;
    tx_core *core = calloc(1, sizeof *core + nsh * sizeof(weft_event));
    if (!core)
        return -ENOMEM;
    atomic_init(&core->refs, 1);
    core->acked = (weft_event)WEFT_EVENT_AUTO_INIT;
    for (unsigned s = 0; s < nsh; s++)
        core->go[s] = (weft_event)WEFT_EVENT_AUTO_INIT;
    tx->core = core;
    int r = build_work(tx, items, n, dst);
    if (r < 0) {
        free(core);
        return r;
    }
    tx->nphase = 1;
    atomic_store_explicit(&core->phase, 1, memory_order_release);
    r = weft_mutex_lock(&tx_lock, WEFT_FOREVER);
    if (r < 0 && r != -EOWNERDEAD) {
        for (unsigned s = 0; s < nsh; s++)
            if (core->work[s]) {
                kv_msg_release(core->work[s]);
                kv_msg_release(core->work[s]);
            }
        free(core);
        return r;
    }
    r = 0;
    for (unsigned s = 0; s < nsh; s++) {
        if (!tx->remote[s])
            continue;
        holder *h = malloc(sizeof *h);
        if (!h) {
            r = -ENOMEM;
            break;
        }
        *h = (holder){core, s};
        atomic_fetch_add_explicit(&core->refs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&kv_inflight, 1, memory_order_relaxed);
        r = weft_submit_to(s, holder_task, h, &tx->futs[s]);
        if (r < 0) {
            atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&core->refs, 1, memory_order_relaxed);
            free(h);
            break;
        }
        tx->nremote++;
    }
    if (r < 0) {
        wait_acks(core, tx->nremote);
        finish_phase(tx, items, 0, dst, tx->nremote);
        kv_tx_end(tx);
        return r;
    }
    kv_shard *sh = kv_local();
    kv_wait_unheld(sh);
    hold(sh);
    finish_phase(tx, items, n, dst, tx->nremote);
    return 0;
}

int kv_tx_run(kv_tx *tx, kv_item *items, size_t n, sbuf *dst)
{
    if (tx->outer)
        return kv_tx_run(tx->outer, items, n, dst);
    tx_core *core = tx->core;
    int err = build_work(tx, items, n, dst);
    if (err < 0)
        return err;
    int target = atomic_load_explicit(&core->nacks, memory_order_relaxed) + tx->nremote;
    /* release: the holders' acquire of phase sees work[]. */
    atomic_store_explicit(&core->phase, ++tx->nphase, memory_order_release);
    for (unsigned s = 0; s < kv_nshards(); s++)
        if (tx->remote[s])
            weft_event_set(&core->go[s]);
    finish_phase(tx, items, n, dst, target);
    return 0;
}

void kv_tx_end(kv_tx *tx)
{
    if (tx->outer) { /* the outer transaction lets the shards go */
        tx->outer = NULL;
        return;
    }
    tx_core *core = tx->core;
    kv_shard *sh = kv_local();
    if (sh->held_by == weft_self())
        let_go(sh);
    /* release: pairs with the holders' acquire of phase. */
    atomic_store_explicit(&core->phase, -1, memory_order_release);
    for (unsigned s = 0; s < kv_nshards(); s++)
        if (tx->remote[s])
            weft_event_set(&core->go[s]);
    weft_mutex_unlock(&tx_lock);
    for (unsigned s = 0; s < kv_nshards(); s++)
        if (tx->futs[s])
            weft_future_destroy(tx->futs[s]);
    core_release(core);
    tx->core = NULL;
}
