/* The runtime: weft_run() builds a runtime of one worker on the calling thread, runs the
 * main task and the worker's loop until everything has finished, then frees all it
 * allocated. Also the configuration, the counters summed over workers, and the version.
 * This is the top of the core: it calls every module, and none calls it. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "loop.h"
#include "overflow.h"
#include "pool.h"
#include "runtime.h"
#include "scheduler.h"
#include "stack.h"
#include "task.h"
#include "timer.h"
#include "worker.h"

unsigned weft_version(void)
{
    return WEFT_VERSION_NUMBER;
}

void weft_config_init_sized(weft_config *cfg, size_t size)
{
    if (!cfg || size < offsetof(weft_config, reserved_))
        return; /* a structure older than this library can describe: leave it alone */
    memset(cfg, 0, size);
    cfg->size = size;
    cfg->stack_size = WEFT_STACK_DEFAULT;
    cfg->guard = WEFT_GUARD_AUTO;
    cfg->stack_pool_max = 1024; /* 1024 x 64 KiB: at most 64 MiB of idle stacks kept */
    cfg->budget = 64;           /* I/O and timers polled at least every 64 resumes */
    cfg->report_overflow = 1;
    cfg->ignore_sigpipe = 1;
    cfg->pool_threads = 16; /* blocking jobs are mostly I/O waits: more threads than cores */
    cfg->pool_idle_ms = 10000;
}

/* Takes the caller's configuration into `out`: the fields this library knows, provided
 * that any the caller's (newer) structure has beyond them are zero. */
static int take_config(const weft_config *cfg, weft_config *out)
{
    if (cfg->size < offsetof(weft_config, reserved_))
        return -EINVAL; /* 0: never passed through weft_config_init */
    size_t n = cfg->size < sizeof *out ? cfg->size : sizeof *out;
    memset(out, 0, sizeof *out);
    memcpy(out, cfg, n);
    const unsigned char *extra = (const unsigned char *)cfg;
    for (size_t i = offsetof(weft_config, reserved_); i < cfg->size; i++)
        if (extra[i])
            return -EINVAL; /* a field this version does not know is set */
    out->size = sizeof *out;
    if (out->stack_size < WEFT_STACK_MIN || out->stack_size > ((size_t)1 << 30))
        return -EINVAL;
    if (out->guard < WEFT_GUARD_AUTO || out->guard > WEFT_GUARD_NEVER)
        return -EINVAL;
    if (out->backend < WEFT_BACKEND_DEFAULT || out->backend > WEFT_BACKEND_IO_URING)
        return -EINVAL;
    if (out->budget == 0 || out->pool_threads == 0 || out->pool_threads > 4096)
        return -EINVAL;
    return 0;
}

WEFT_COLD static int worker_init(weft__runtime *rt, weft__worker *w, unsigned index)
{
    w->rt = rt;
    w->index = index;
    w->now = weft__clock_ns();
    w->stats.nmallocs = 1; /* the runtime's own record */
    weft__sched_init(w, rt->cfg.budget);
    weft__tasks_init(w, rt->cfg.stack_size);
    weft__stack_init(w, rt->cfg.guard, rt->cfg.stack_pool_max);
    int r = weft__io_init(w, rt->cfg.backend);
    if (r == 0 && rt->cfg.report_overflow)
        r = weft__overflow_init(w);
    return r;
}

WEFT_COLD static void worker_fini(weft__worker *w)
{
    weft__tasks_fini(w);
    weft__nodes_fini(w);
    weft__stack_fini(w);
    weft__timers_fini(w);
    weft__io_fini(w);
    weft__overflow_fini(w);
}

WEFT_COLD static void ignore_sigpipe(void)
{
    /* Only over the default action: a handler or disposition the application chose stays. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return -EINVAL;
    if (weft__worker_current())
        return -EBUSY;
    weft__runtime *rt = calloc(1, sizeof *rt + sizeof(weft__worker));
    if (!rt)
        return -ENOMEM;
    int r = 0;
    if (cfg)
        r = take_config(cfg, &rt->cfg);
    else
        weft_config_init(&rt->cfg);
    if (r < 0) {
        free(rt);
        return r;
    }
    pthread_mutex_init(&rt->lock, NULL);
    atomic_init(&rt->next_id, 1);
    rt->workers = (weft__worker *)(rt + 1);
    rt->nworkers = 1;
    weft__worker *w = &rt->workers[0];
    weft__worker_fork_hook(); /* before the worker exists: a fork from now on sees none */
    weft__worker_set_current(w);
    if (rt->cfg.ignore_sigpipe)
        ignore_sigpipe();

    r = worker_init(rt, w, 0);
    if (r == 0) {
        weft_spawn_opts o = {.name = "main"};
        r = weft_spawn(&rt->main_task, main_fn, arg, &o);
    }
    if (r == 0) {
        rt->main_task->flags |= WEFT__T_MAIN;
        r = weft__loop(w);
        if (result)
            *result = rt->main_task->result;
    }
    /* The pool first: its threads may still wake tasks through the worker's doorbell. */
    weft__pool_fini(rt);
    worker_fini(w);
    weft__task_chunks_free(rt, w);
    weft__worker_set_current(NULL);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
    return r;
}

int weft_stats_read(weft_stats *out, size_t size)
{
    weft__worker *w = weft__worker_current();
    if (!out || size < offsetof(weft_stats, reserved_))
        return -EINVAL;
    if (!w)
        return -EPERM;
    weft__runtime *rt = w->rt;
    weft_stats s;
    memset(&s, 0, sizeof s);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const weft__worker *x = &rt->workers[i];
        s.nspawned += x->stats.nspawned;
        s.nswitches += x->stats.nswitches;
        s.nresumes += x->stats.nresumes;
        s.nticks += x->stats.nticks;
        s.npolls += x->stats.npolls;
        s.nmallocs += x->stats.nmallocs;
        s.nmmaps += x->stats.nmmaps;
        s.ntasks += x->tasks.nrecords;
        s.nstacks_pooled += x->stacks.npooled;
        s.nstacks_live += x->stacks.nlive;
        s.nguarded_live += x->stacks.nguarded;
        s.ntimers += x->timers.n;
        s.nsyscalls += weft__sys_total(&x->sys);
    }
    weft__pool_stats(rt, &s);
    s.size = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, s.size);
    return 0;
}
