/* The runtime's entry point: weft_run() builds a worker on the calling thread, runs the main
 * task and the loop until everything has finished, then frees all it allocated. Also the
 * clock, the configuration, the counters and the allocation seam. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* The only thread-local: which worker runs on this thread. Reached through the non-inlined
 * accessors below so that no TLS address outlives a switch in a register. */
static __thread weft__worker *tls_worker;

WEFT_NOINLINE weft__worker *weft__worker_current(void)
{
    weft__worker *w = tls_worker;
    /* An empty asm that "changes" w keeps the compiler from folding calls across a switch. */
    __asm__ volatile("" : "+r"(w));
    return w;
}

WEFT_NOINLINE void weft__worker_set_current(weft__worker *w)
{
    tls_worker = w;
}

int64_t weft__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

int64_t weft_now(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->now : weft__clock_ns();
}

int64_t weft_deadline_in(int64_t ns)
{
    int64_t now = weft_now();
    if (ns < 0)
        return now > 0 ? now - 1 : 0;
    if (ns > INT64_MAX - now)
        return INT64_MAX;
    return now + ns;
}

void weft_config_init(weft_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->stack_size = WEFT_STACK_DEFAULT;
    cfg->guard = WEFT_GUARD_AUTO;
    cfg->stack_pool_max = 1024; /* 1024 x 64 KiB: at most 64 MiB of idle stacks kept */
    cfg->budget = 64;           /* I/O and timers polled at least every 64 resumes */
    cfg->report_overflow = 1;
    cfg->ignore_sigpipe = 1;
    cfg->pool_threads = 16; /* blocking jobs are mostly I/O waits: more threads than cores */
    cfg->pool_idle_ms = 10000;
}

void *weft__malloc(weft__worker *w, size_t size)
{
    w->stats.nmallocs++;
    return malloc(size);
}

void *weft__calloc(weft__worker *w, size_t n, size_t size)
{
    w->stats.nmallocs++;
    return calloc(n, size);
}

void *weft__realloc(weft__worker *w, void *p, size_t size)
{
    w->stats.nmallocs++;
    return realloc(p, size);
}

void weft__free(weft__worker *w, void *p)
{
    (void)w;
    free(p);
}

weft__node *weft__node_get(weft__worker *w)
{
    weft__node *n = w->free_nodes;
    if (n) {
        w->free_nodes = n->next;
        return n;
    }
    return weft__malloc(w, sizeof *n);
}

void weft__node_put(weft__worker *w, weft__node *n)
{
    n->next = w->free_nodes;
    w->free_nodes = n;
}

static int check_config(const weft_config *cfg)
{
    if (cfg->stack_size < WEFT_STACK_MIN || cfg->stack_size > ((size_t)1 << 30))
        return -EINVAL;
    if (cfg->guard < WEFT_GUARD_AUTO || cfg->guard > WEFT_GUARD_NEVER)
        return -EINVAL;
    if (cfg->backend < WEFT_BACKEND_DEFAULT || cfg->backend > WEFT_BACKEND_IO_URING)
        return -EINVAL;
    if (cfg->budget == 0 || cfg->pool_threads == 0 || cfg->pool_threads > 4096)
        return -EINVAL;
    return 0;
}

WEFT_COLD static void worker_fini(weft__worker *w)
{
    weft__pool_fini(w); /* first: its threads may still wake tasks through the reactor */
    weft__tasks_fini(w);
    while (w->free_nodes) {
        weft__node *n = w->free_nodes;
        w->free_nodes = n->next;
        weft__free(w, n);
    }
    weft__stack_fini(w);
    weft__timers_fini(w);
    weft__io_fini(w);
    weft__overflow_fini(w);
}

int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return -EINVAL;
    if (weft__worker_current())
        return -EBUSY;
    weft__worker *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    if (cfg)
        w->cfg = *cfg;
    else
        weft_config_init(&w->cfg);
    int r = check_config(&w->cfg);
    if (r < 0) {
        free(w);
        return r;
    }
    w->stats.nmallocs = 1;
    weft__list_init(&w->tasks);
    w->next_id = 1;
    w->now = weft__clock_ns();
    weft__worker_set_current(w);

    if (w->cfg.ignore_sigpipe) {
        /* Only over the default action: a handler or disposition the application chose stays. */
        struct sigaction old;
        if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO))
            signal(SIGPIPE, SIG_IGN);
    }
    r = weft__io_init(w);
    if (r == 0 && w->cfg.report_overflow)
        r = weft__overflow_init(w);
    weft_task *main_task = NULL;
    if (r == 0) {
        weft_spawn_opts o = {.name = "main"};
        r = weft_spawn(&main_task, main_fn, arg, &o);
    }
    if (r == 0) {
        main_task->flags |= WEFT__T_MAIN;
        w->main_task = main_task;
        r = weft__loop(w);
        if (result)
            *result = main_task->result;
    }
    worker_fini(w);
    weft__worker_set_current(NULL);
    free(w);
    return r;
}

int weft_stats_get(weft_stats *out)
{
    weft__worker *w = weft__worker_current();
    if (!w || !out)
        return w ? -EINVAL : -EPERM;
    *out = w->stats;
    out->ntasks = w->ntasks;
    out->nstacks_pooled = w->stacks.npooled;
    out->nstacks_live = w->stacks.nlive;
    out->nguarded_live = w->stacks.nguarded;
    out->ntimers = w->timers.n;
    weft__pool_stats(w, out);
    out->nsyscalls = weft__sys_total(&w->sys);
    return 0;
}
