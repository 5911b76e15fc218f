/* Cross-shard messages (msg.h). */
#include "msg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void kv_msg_release(kv_msg *m)
{
    /* acq_rel: the last owner frees, after seeing the other's writes to out. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        sbuf_free(&m->out);
        free(m);
    }
}

/* Replies a pipelined segment writes, or commands it runs, between two yields: its shard's
 * other tasks (other connections, the shutdown's signal and drain) run in between, as they
 * would between two clients' commands in Redis. 1 MiB is the connection's own flush size
 * (OUT_FLUSH); 64 commands of a segment of at most 1,024 bound the slices of commands with
 * small replies (SETs, set algebra) to a sixteenth of it. */
#define SEGMENT_SLICE_BYTES ((size_t)1 << 20)
#define SEGMENT_SLICE_CMDS  64

/* `stoppable`: a pipelined segment, which yields now and then and which its sender may
 * abandon (kv_msg_abandon); never a transaction's phase, which runs whole. Before, a segment
 * of 1,024 GETs of a 1 MB value held its worker for seconds, and a SIGTERM waited for it. */
static void run_items(kv_msg *m, bool stoppable)
{
    kv_shard *sh = kv_local();
    size_t slice_start = m->out.len;
    for (size_t i = 0; i < m->n; i++) {
        if (stoppable && i > 0 &&
            (m->out.len - slice_start >= SEGMENT_SLICE_BYTES || i % SEGMENT_SLICE_CMDS == 0)) {
            if (weft_yield() == -ECANCELED)
                break; /* the task itself is cancelled: the runtime is stopping */
            slice_start = m->out.len;
        }
        if (stoppable && atomic_load_explicit(&m->abandoned, memory_order_relaxed))
            break;
        kv_msg_item *it = &m->items[i];
        kv_ctx ctx = {&sh->db, it->argc, it->argv, it->argl, &m->out, NULL, it->cmd, 0};
        it->off = m->out.len;
        kv_run_proc(it->cmd, &ctx);
        it->len = m->out.len - it->off;
    }
    atomic_store_explicit(&sh->mem_pub, kv_mem_used, memory_order_relaxed);
}

void kv_msg_run(kv_msg *m)
{
    run_items(m, false);
}

void kv_msg_abandon(kv_msg *m)
{
    atomic_store_explicit(&m->abandoned, 1, memory_order_relaxed);
}

void *kv_msg_task(void *arg)
{
    kv_msg *m = arg;
    run_items(m, true);
    kv_aof_wait(kv_local()); /* appendfsync always: durable before the sender replies */
    kv_msg_release(m);
    atomic_fetch_sub_explicit(&kv_inflight, 1, memory_order_release);
    return NULL;
}

kv_msg *kv_msg_build(const kv_item *items, size_t n, unsigned shard, const sbuf *like)
{
    size_t k = 0, nargs = 0, bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].shard == shard) {
            k++;
            nargs += (size_t)items[i].argc;
            for (int a = 0; a < items[i].argc; a++)
                bytes += items[i].argl[a];
        }
    size_t size = sizeof(kv_msg) + k * sizeof(kv_msg_item) +
                  nargs * (sizeof(char *) + sizeof(size_t)) + bytes;
    kv_msg *m = malloc(size);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 2);
    atomic_init(&m->abandoned, 0);
    m->n = k;
    m->out = sbuf_like(like);
    const char **argv = (const char **)(m->items + k);
    size_t *argl = (size_t *)(argv + nargs);
    char *p = (char *)(argl + nargs);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].shard != shard)
            continue;
        kv_msg_item *it = &m->items[j++];
        it->cmd = items[i].cmd;
        it->argc = items[i].argc;
        it->argv = argv;
        it->argl = argl;
        for (int a = 0; a < items[i].argc; a++) {
            if (items[i].argl[a])
                memcpy(p, items[i].argv[a], items[i].argl[a]);
            *argv++ = p;
            *argl++ = items[i].argl[a];
            p += items[i].argl[a];
        }
    }
    return m;
}
