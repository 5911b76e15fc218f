/* fanout_tree (bench-workloads.md): a task spawns 2 children and joins them, to depth 20
 * (2^21 - 1 = 2,097,151 tasks), load that only stealing can spread: every task is spawned
 * with weft_spawn, so in sharded mode the whole tree stays on the first worker, and in
 * stealing mode idle workers take subtrees. Wall ms (unit ms_wall) and peak RSS, one
 * repetition per process; "off_root_pct" is the share of the tasks that ran on another
 * worker than the root's. Every task gets a 16 KiB stack (the smallest class; a node's frame
 * is tiny), as the Boost.Fiber peer's fibers do.
 * With WEFT_ORDER=depth_first in the environment the workers run their queues depth first
 * (weft.h, WEFT_ORDER_DEPTH_FIRST), and the impl is named weft_<mode>_df.
 * Usage: bench_fanout_tree [depth] [--threads N]... [--mode sharded|stealing]...
 *   (default: depth 20, 1 and 2 threads, both modes, each in its own process) */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "bench_mt_common.h"

static atomic_long nodes;
static atomic_int failed;
static const weft_spawn_opts small = {.stack_size = 16 * 1024};

static void *fan(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    atomic_fetch_add_explicit(&nodes, 1, memory_order_relaxed);
    mt_count_here();
    if (depth == 0)
        return NULL;
    weft_task *a, *b;
    int ra = weft_spawn(&a, fan, (void *)(depth - 1), &small);
    int rb = weft_spawn(&b, fan, (void *)(depth - 1), &small);
    if (ra == 0)
        weft_join(a, NULL, WEFT_FOREVER);
    if (rb == 0)
        weft_join(b, NULL, WEFT_FOREVER);
    if (ra < 0 || rb < 0)
        atomic_store(&failed, ra < 0 ? ra : rb);
    return NULL;
}

static void *bench(void *arg)
{
    const mt_run_ctx *ctx = arg;
    long depth = ctx->n;
    if (depth < 0 || depth > 40)
        return (void *)1;
    if (weft_worker_count() != ctx->threads) {
        fprintf(stderr, "fanout_tree: %u workers running, %u asked for\n", weft_worker_count(),
                ctx->threads);
        return (void *)1;
    }
    mt_count_reset();
    int home = weft_worker_index();
    int64_t t0 = bench_ns();
    fan((void *)(intptr_t)depth);
    double ms = (double)(bench_ns() - t0) / 1e6;
    long want = (2L << depth) - 1; /* the nodes of a full binary tree of that depth */
    long got = atomic_load(&nodes);
    if (atomic_load(&failed) || got != want) {
        fprintf(stderr, "fanout_tree: %ld nodes of %ld (spawn: %s)\n", got, want,
                weft_strerror(atomic_load(&failed)));
        return (void *)1;
    }
    char impl[32], extra[192];
    /* The depth-first order (WEFT_ORDER, weft.h) is its own implementation in the tables. */
    const char *order = getenv("WEFT_ORDER");
    bool df = order && strcmp(order, "depth_first") == 0;
    snprintf(impl, sizeof impl, "weft_%s%s", mt_mode_name(ctx->mode), df ? "_df" : "");
    snprintf(extra, sizeof extra,
             ",\"threads\":%u,\"mode\":\"%s\",\"depth\":%ld,\"off_root_pct\":%.1f,"
             "\"rss_bytes\":%lld",
             ctx->threads, mt_mode_name(ctx->mode), depth, mt_off_home_pct(home),
             bench_status_bytes("VmHWM"));
    bench_emit(impl, "fanout_tree", want, ms, "ms_wall", extra);
    return NULL;
}

int main(int argc, char **argv)
{
    mt_args a = mt_parse(argc, argv, 20);
    return mt_main(&a, bench);
}
