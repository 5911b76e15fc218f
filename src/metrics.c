/* Metrics. Every worker publishes its counters once a tick and before it sleeps (loop.c):
 * relaxed stores of plain figures, so any thread reads a worker's as of its last tick without
 * a lock, and the sum of all as a consistent-enough picture for monitoring. The Prometheus
 * names, types and help texts are one table here, in weft_stats' terms. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alien.h"
#include "metrics.h"
#include "pool.h"
#include "runtime.h"
#include "watchdog.h"
#include "worker.h"

/* One worker's published counters into the weft_stats fields they feed. */
static void worker_stats(const weft__worker *x, weft_stats *s)
{
    uint64_t v[WEFT__NPUB];
    for (int k = 0; k < WEFT__NPUB; k++)
        v[k] = atomic_load_explicit(&x->published[k], memory_order_relaxed);
    int k = 0;
#define SET_ONE(field, expr) s->field = v[k++];
    WEFT__COUNTERS(SET_ONE)
#undef SET_ONE
    s->nstuck = weft__watch_stuck(&x->watch); /* live: a stuck worker publishes nothing */
}

static void add_stats(weft_stats *sum, const weft_stats *s)
{
#define ADD_ONE(field, expr) sum->field += s->field;
    WEFT__COUNTERS(ADD_ONE)
#undef ADD_ONE
    sum->nstuck += s->nstuck;
}

int weft_runtime_stats(weft_runtime *a, int worker, weft_stats *out, size_t size)
{
    if (!a || !out || size < offsetof(weft_stats, reserved_) || worker < -1)
        return -EINVAL;
    weft__runtime *rt = weft__anchor_lock(a);
    int r = 0;
    weft_stats s;
    memset(&s, 0, sizeof s);
    if (!rt) {
        r = -ESHUTDOWN;
    } else if (worker >= (int)rt->nworkers) {
        r = -EINVAL;
    } else if (worker >= 0) {
        worker_stats(&rt->workers[worker], &s);
    } else {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            weft_stats one;
            worker_stats(&rt->workers[i], &one);
            add_stats(&s, &one);
        }
        weft__pool_stats(rt, &s);
    }
    weft__anchor_unlock(a);
    if (r < 0)
        return r;
    s.size = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, s.size);
    return 0;
}

/* Histogram `which` summed over rt's workers. */
static int sum_histogram(const weft__runtime *rt, int which, weft_histogram *out)
{
    if (which != WEFT_HIST_SCHEDULE_LATENCY && which != WEFT_HIST_POLL_TIME)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const weft__worker *x = &rt->workers[i];
        const weft__hist *h = which == WEFT_HIST_SCHEDULE_LATENCY ? &x->sched_hist : &x->poll_hist;
        for (int k = 0; k < WEFT_HIST_BUCKETS; k++) {
            uint64_t n = atomic_load_explicit(&h->buckets[k], memory_order_relaxed);
            out->buckets[k] += n;
            out->count += n;
        }
        out->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    }
    return 0;
}

int weft_runtime_histogram(weft_runtime *a, int which, weft_histogram *out)
{
    if (!a || !out)
        return -EINVAL;
    weft__runtime *rt = weft__anchor_lock(a);
    int r = rt ? sum_histogram(rt, which, out) : -ESHUTDOWN;
    weft__anchor_unlock(a);
    return r;
}

/* A bucket's upper bound, `ns` nanoseconds, in seconds written exactly ("0.000001023"): %g's
 * rounding would move an edge (2^39 - 1 ns printed as 549.755814 s takes in samples up to
 * 549.755814 s that the bucket does not hold). */
static void put_seconds(weft__dumpbuf *b, uint64_t ns)
{
    char frac[16];
    int n = snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(ns % 1000000000u));
    while (n > 1 && frac[n - 1] == '0')
        frac[--n] = '\0';
    weft__dumpbuf_printf(b, "%llu.%s", (unsigned long long)(ns / 1000000000u), frac);
}

/* A Prometheus histogram: cumulative buckets, each `le` (less than or equal) the largest
 * sample its buckets hold. Bucket k holds [2^k, 2^(k+1)) ns and samples are whole
 * nanoseconds, so buckets 0..k hold exactly the samples of at most 2^(k+1) - 1 ns: that is
 * the edge, not 2^(k+1), which a sample of exactly 2^(k+1) ns (counted in bucket k + 1) would
 * wrongly fall under. */
static void put_histogram(weft__dumpbuf *b, const weft_histogram *hist, const char *name,
                          const char *help)
{
    const weft_histogram h = *hist;
    weft__dumpbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int k = 0; k < WEFT_HIST_BUCKETS - 1; k++) {
        cum += h.buckets[k];
        weft__dumpbuf_printf(b, "%s_bucket{le=\"", name);
        put_seconds(b, ((uint64_t)1 << (k + 1)) - 1);
        weft__dumpbuf_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    weft__dumpbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
                         (unsigned long long)h.count, name, (double)h.sum_ns / 1e9, name,
                         (unsigned long long)h.count);
}

/* The exposition: name, type, help, and where the figure is in weft_stats. */
static const struct metric {
    const char *name, *type, *help;
    size_t off;
} metrics[] = {
#define M(field, name, type, help)                                                                 \
    {                                                                                              \
        name, type, help, offsetof(weft_stats, field)                                              \
    }
    M(nspawned, "weft_tasks_spawned_total", "counter", "Tasks spawned (stackful and stackless)."),
    M(ntasks, "weft_tasks_alive", "gauge", "Tasks not yet reaped."),
    M(nfinished, "weft_tasks_finished_total", "counter", "Tasks finished."),
    M(nready, "weft_tasks_ready", "gauge", "Tasks in the ready queue."),
    M(nresumes, "weft_resumes_total", "counter", "Task resumes."),
    M(nswitches, "weft_switches_total", "counter", "Context switches."),
    M(nparks, "weft_parks_total", "counter", "Parks: a task waited."),
    M(nticks, "weft_ticks_total", "counter", "Loop ticks."),
    M(npolls, "weft_reactor_polls_total", "counter", "Reactor polls."),
    M(nevents, "weft_reactor_events_total", "counter",
      "Reactor events (epoll events, io_uring completions)."),
    M(nsyscalls, "weft_syscalls_total", "counter", "System calls made by the runtime."),
    M(ntimers, "weft_timers_armed", "gauge", "Armed timers."),
    M(nwakes_remote, "weft_remote_wakes_total", "counter", "Wakes of another worker's tasks."),
    M(nmsgs, "weft_messages_total", "counter", "Messages sent to other workers."),
    M(nsteals, "weft_steals_total", "counter", "Tasks taken from another worker."),
    M(nhandoffs, "weft_handoffs_total", "counter",
      "weft_block_in_place calls whose worker a relief thread took."),
    M(busy_ns, "weft_busy_seconds_total", "counter", "Time out of the reactor's sleep."),
    M(nstuck, "weft_workers_stuck", "gauge", "Workers stuck in one task past the stall threshold."),
    M(nstacks_live, "weft_stacks_live", "gauge", "Stacks bound to tasks."),
    M(nstacks_pooled, "weft_stacks_pooled", "gauge", "Free stacks kept for reuse."),
    M(stack_bytes_live, "weft_stack_bytes_live", "gauge",
      "Sizes of the stacks bound to tasks (address space)."),
    M(stack_bytes_pooled, "weft_stack_bytes_pooled", "gauge",
      "Sizes of the warm stacks kept for reuse."),
    M(nguarded_live, "weft_stacks_guarded", "gauge", "Guarded stacks in existence."),
    M(nmallocs, "weft_mallocs_total", "counter", "Heap allocations made by the runtime."),
    M(nmmaps, "weft_mmaps_total", "counter", "mmap calls made for stacks."),
#undef M
};

static void put_value(weft__dumpbuf *b, const struct metric *m, const char *labels,
                      const weft_stats *s)
{
    uint64_t v;
    memcpy(&v, (const char *)s + m->off, sizeof v);
    if (m->off == offsetof(weft_stats, busy_ns))
        weft__dumpbuf_printf(b, "%s%s %.9f\n", m->name, labels, (double)v / 1e9);
    else
        weft__dumpbuf_printf(b, "%s%s %llu\n", m->name, labels, (unsigned long long)v);
}

/* The figures of the Prometheus text, read at once so that the text is written from them
 * alone: weft_metrics_text reads them under the runtime handle's lock, which keeps the
 * runtime alive, and writes the text after letting it go (a spawn from outside takes that
 * lock: it must not wait for the formatting, or for its allocations). */
typedef struct metrics_snap {
    unsigned nworkers;
    weft_stats *per;     /* nworkers of them, allocated by the caller */
    weft_histogram lat;  /* WEFT_HIST_SCHEDULE_LATENCY over all workers */
    weft_histogram poll; /* WEFT_HIST_POLL_TIME */
    weft_stats pool;     /* weft__pool_stats' fields only */
} metrics_snap;

#ifdef WEFT_TESTING
void (*weft__metrics_format_hook)(void);
#endif

/* Reads rt's figures into `m`, whose `per` holds rt->nworkers records. */
static void snap_take(weft__runtime *rt, metrics_snap *m)
{
    m->nworkers = rt->nworkers;
    for (unsigned i = 0; i < m->nworkers; i++)
        worker_stats(&rt->workers[i], &m->per[i]);
    sum_histogram(rt, WEFT_HIST_SCHEDULE_LATENCY, &m->lat);
    sum_histogram(rt, WEFT_HIST_POLL_TIME, &m->poll);
    memset(&m->pool, 0, sizeof m->pool);
    weft__pool_stats(rt, &m->pool);
}

/* The Prometheus text of a snapshot, which touches no runtime. */
static void snap_format(const metrics_snap *m, weft__dumpbuf *b)
{
#ifdef WEFT_TESTING
    if (weft__metrics_format_hook)
        weft__metrics_format_hook();
#endif
    unsigned n = m->nworkers;
    const weft_stats *per = m->per;
    weft__dumpbuf_printf(b,
                         "# HELP weft_workers Worker threads of the runtime.\n"
                         "# TYPE weft_workers gauge\nweft_workers %u\n",
                         n);
    for (size_t k = 0; k < sizeof metrics / sizeof metrics[0]; k++) {
        const struct metric *x = &metrics[k];
        weft__dumpbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, x->type);
        for (unsigned i = 0; i < n; i++) {
            char labels[32];
            snprintf(labels, sizeof labels, "{worker=\"%u\"}", i);
            put_value(b, x, labels, &per[i]);
        }
    }
    /* Tasks by state: in the ready queue; waiting (parked, or woken from another thread
     * and not queued yet, or running); finished and not yet joined or reaped. */
    weft__dumpbuf_printf(b, "# HELP weft_tasks Tasks by state.\n# TYPE weft_tasks gauge\n");
    for (unsigned i = 0; i < n; i++) {
        const weft_stats *s = &per[i];
        uint64_t ready = s->nready < s->nunfinished ? s->nready : s->nunfinished;
        uint64_t done = s->ntasks > s->nunfinished ? s->ntasks - s->nunfinished : 0;
        weft__dumpbuf_printf(b,
                             "weft_tasks{worker=\"%u\",state=\"ready\"} %llu\n"
                             "weft_tasks{worker=\"%u\",state=\"waiting\"} %llu\n"
                             "weft_tasks{worker=\"%u\",state=\"finished\"} %llu\n",
                             i, (unsigned long long)ready, i,
                             (unsigned long long)(s->nunfinished - ready), i,
                             (unsigned long long)done);
    }
    put_histogram(b, &m->lat, "weft_schedule_latency_seconds",
                  "From a wake to the woken task's resume (one in 256 sampled).");
    put_histogram(b, &m->poll, "weft_poll_seconds",
                  "The length of one resume (one in 256 sampled).");
    weft__dumpbuf_printf(b,
                         "# HELP weft_pool_threads Blocking-pool threads.\n"
                         "# TYPE weft_pool_threads gauge\nweft_pool_threads %llu\n"
                         "# HELP weft_pool_jobs_total Jobs the blocking pool has run.\n"
                         "# TYPE weft_pool_jobs_total counter\nweft_pool_jobs_total %llu\n",
                         (unsigned long long)m->pool.npool_threads,
                         (unsigned long long)m->pool.npool_jobs);
}

void weft__metrics_render(weft__runtime *rt, weft__dumpbuf *b)
{
    metrics_snap m;
    m.per = calloc(rt->nworkers, sizeof *m.per); /* not on a coroutine's small stack */
    if (!m.per) {
        b->truncated = true;
        return;
    }
    snap_take(rt, &m);
    snap_format(&m, b);
    free(m.per);
}

/* ---- The same figures as JSON, for the console (/debug/stats) ------------------------ */

/* weft_stats' counters as JSON members, named after their fields ("nspawned": 12, ...). */
static void put_stats_json(weft__dumpbuf *b, const weft_stats *s)
{
    const char *sep = "";
#define PUT_ONE(field, expr)                                                                       \
    weft__dumpbuf_printf(b, "%s\"" #field "\":%llu", sep, (unsigned long long)s->field);           \
    sep = ",";
    WEFT__COUNTERS(PUT_ONE)
#undef PUT_ONE
}

static void put_histogram_json(weft__dumpbuf *b, const weft__runtime *rt, int which)
{
    weft_histogram h;
    if (sum_histogram(rt, which, &h) < 0)
        return;
    weft__dumpbuf_printf(b, "{\"count\":%llu,\"sum_ns\":%llu,\"buckets\":[",
                         (unsigned long long)h.count, (unsigned long long)h.sum_ns);
    for (int k = 0; k < WEFT_HIST_BUCKETS; k++)
        weft__dumpbuf_printf(b, "%s%llu", k ? "," : "", (unsigned long long)h.buckets[k]);
    weft__dumpbuf_printf(b, "]}");
}

void weft__metrics_render_json(weft__runtime *rt, weft__dumpbuf *b, int64_t now)
{
    unsigned n = rt->nworkers;
    weft_stats *per = calloc(n + 1, sizeof *per); /* the last one: the total */
    if (!per) {
        b->truncated = true;
        return;
    }
    weft_stats *total = &per[n];
    for (unsigned i = 0; i < n; i++) {
        worker_stats(&rt->workers[i], &per[i]);
        add_stats(total, &per[i]);
    }
    weft__pool_stats(rt, total);
    weft__dumpbuf_printf(b,
                         "{\"now_ns\":%lld,\"mode\":\"%s\",\"stall_ns\":%lld,"
                         "\"pool_threads\":%llu,\"pool_jobs\":%llu,\"total\":{",
                         (long long)now,
                         rt->cfg.mode == WEFT_MODE_STEALING ? "stealing" : "sharded",
                         (long long)rt->stall_ns, (unsigned long long)total->npool_threads,
                         (unsigned long long)total->npool_jobs);
    put_stats_json(b, total);
    weft__dumpbuf_printf(b, "},\"workers\":[");
    for (unsigned i = 0; i < n; i++) {
        /* Asleep in its reactor (relaxed: a figure; the watchdog reads it the same way). */
        bool asleep = atomic_load_explicit(&rt->workers[i].inbox.sleeping, memory_order_relaxed);
        weft__dumpbuf_printf(b, "%s{\"index\":%u,\"asleep\":%s,\"stuck\":%s,", i ? "," : "", i,
                             asleep ? "true" : "false",
                             weft__watch_stuck(&rt->workers[i].watch) ? "true" : "false");
        put_stats_json(b, &per[i]);
        weft__dumpbuf_printf(b, "}");
    }
    free(per);
    weft__dumpbuf_printf(b, "],\"histograms\":{\"schedule_latency\":");
    put_histogram_json(b, rt, WEFT_HIST_SCHEDULE_LATENCY);
    weft__dumpbuf_printf(b, ",\"poll_time\":");
    put_histogram_json(b, rt, WEFT_HIST_POLL_TIME);
    weft__dumpbuf_printf(b, "}}\n");
}

int weft_metrics_text(weft_runtime *a, char *buf, size_t len)
{
    if (!a || (!buf && len))
        return -EINVAL;
    /* The lock is held only to read the figures (the runtime is alive while it is held):
     * the allocation before and the formatting after go without it. A runtime's nworkers is
     * fixed, and the handle never names another runtime (only NULL, once it stopped). */
    weft__runtime *rt = weft__anchor_lock(a);
    unsigned nworkers = rt ? rt->nworkers : 0;
    weft__anchor_unlock(a);
    if (!rt)
        return -ESHUTDOWN;
    metrics_snap m;
    if ((m.per = calloc(nworkers, sizeof *m.per)) == NULL)
        return -ENOMEM;
    rt = weft__anchor_lock(a);
    if (rt)
        snap_take(rt, &m);
    weft__anchor_unlock(a);
    if (!rt) {
        free(m.per);
        return -ESHUTDOWN;
    }
    weft__dumpbuf b = {0};
    snap_format(&m, &b);
    free(m.per);
    if (b.truncated) {
        free(b.p);
        return -ENOMEM;
    }
    int need = (int)b.len;
    if (len) {
        size_t n = b.len < len - 1 ? b.len : len - 1;
        memcpy(buf, b.p, n);
        buf[n] = '\0';
    }
    free(b.p);
    return need;
}
