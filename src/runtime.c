/* The runtime: weft_run() builds a runtime of N workers (worker 0 on the calling thread,
 * the others on threads it starts), runs the main task on worker 0 and every worker's loop
 * until the main task has finished and every task everywhere with it, then joins the
 * threads and frees all it allocated. Also the configuration, the counters summed over workers, and
 * the version. This is the top of the core: it calls every module, and none calls it. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_env.h"
#include "alien.h"
#include "deadlock.h"
#include "dumpsig.h"
#include "leaks.h"
#include "io/io.h"
#include "log.h"
#include "loop.h"
#include "overflow.h"
#include "pool.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "stack.h"
#include "watch.h"
#include "handoff.h"
#include "watchdog.h"
#include "task.h"
#include "timer.h"
#include "tracer.h"
#include "worker.h"

unsigned weft_version(void)
{
    return WEFT_VERSION_NUMBER;
}

/* The largest size a weft_config of a later version may have (it holds a few hundred bytes
 * now): a size past it is refused rather than read through. */
#define WEFT__CONFIG_SIZE_MAX ((size_t)4096)

void weft_config_init_sized(weft_config *cfg, size_t size)
{
    if (!cfg || size < offsetof(weft_config, reserved_) || size > WEFT__CONFIG_SIZE_MAX)
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

/* The CPUs of the calling thread's affinity mask, in order; returns how many (at least 1). */
WEFT_COLD static unsigned affinity_cpus(cpu_set_t *set, unsigned *cpus, unsigned max)
{
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof *set, set) == 0)
        for (unsigned c = 0; c < CPU_SETSIZE && n < max; c++)
            if (CPU_ISSET(c, set))
                cpus[n++] = c;
    if (n == 0) {
        CPU_ZERO(set);
        cpus[n++] = 0;
    }
    return n;
}

/* A positive integer from the environment, or 0. */
WEFT_COLD static unsigned env_count(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return (*end || n > WEFT_WORKERS_MAX) ? 0 : (unsigned)n;
}

/* An environment variable whose value weft does not know: said in c's log (its function and
 * level: c->log_level resolved first), then the default taken (a typo such as
 * WEFT_MODE=staeling would otherwise run another mode in silence). */
WEFT_COLD static void env_unknown(const weft_config *c, const char *name, const char *v,
                                  const char *known)
{
    if (v && *v)
        weft__logf_cfg(c, WEFT_LOG_WARN, "weft: %s=%s is not one of %s: the default is taken\n",
                       name, v, known);
}

/* An int from the environment, as a whole decimal number (an optional sign, digits, nothing
 * else) within int's range: true and *out set. Absent or empty: false. Anything else ("10ms",
 * "abc", one past INT_MAX) is said in c's log and false returned: the caller takes its
 * default, as for an unknown word (atoi read "10ms" as 10, "abc" as 0 and an overflow as
 * whatever it wrapped to, all in silence). */
WEFT_COLD static bool env_int(const weft_config *c, const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return false;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || errno == ERANGE || n < INT_MIN || n > INT_MAX) {
        weft__logf_cfg(c, WEFT_LOG_WARN,
                       "weft: %s=%s is not a whole number: the default is taken\n", name, v);
        return false;
    }
    *out = (int)n;
    return true;
}

/* Whether v is absent, empty, or one of the words in `words` (NULL-terminated); if not, says so. */
WEFT_COLD static void env_check(const weft_config *c, const char *name, const char *const *words,
                                const char *known)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return;
    for (const char *const *w = words; *w; w++)
        if (strcmp(v, *w) == 0)
            return;
    env_unknown(c, name, v, known);
}

/* Takes the caller's configuration into `out`: the fields this library knows, provided
 * that any the caller's (newer) structure has beyond them are zero. */
static int take_config(const weft_config *cfg, weft_config *out)
{
    /* 0, or a size no weft_config will reach (a garbage word: never passed through
     * weft_config_init), where the look at the fields past ours below would read beyond the
     * caller's structure. */
    if (cfg->size < offsetof(weft_config, reserved_) || cfg->size > WEFT__CONFIG_SIZE_MAX)
        return -EINVAL;
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
    if (out->workers > WEFT_WORKERS_MAX || out->mode < WEFT_MODE_DEFAULT ||
        out->mode > WEFT_MODE_STEALING || out->pin_workers < 0 || out->pin_workers > 1 ||
        out->deadlock < WEFT_DEADLOCK_DEFAULT || out->deadlock > WEFT_DEADLOCK_OFF ||
        out->log_level > WEFT_LOG_INFO)
        return -EINVAL;
    if (out->report_overflow < 0 || out->report_overflow > 1 || out->ignore_sigpipe < 0 ||
        out->ignore_sigpipe > 1)
        return -EINVAL; /* switches: 0 or 1, as pin_workers */
    if (out->leak_report < 0 || out->leak_report > 1 ||
        !weft__dump_signal_valid(out->dump_signal) || out->lifo_slot > 1 || out->order < 0 ||
        out->order > WEFT_ORDER_DEPTH_FIRST || out->move_started > 1)
        return -EINVAL;
    const weft_tracer *tr = out->tracer;
    if (tr && (tr->reserved_[0] || tr->reserved_[1] || tr->reserved_[2] || tr->reserved_[3]))
        return -EINVAL; /* callbacks of a later version, set: this library cannot call them */
    return 0;
}

/* The mode and worker count the configuration leaves to the environment and the machine. */
WEFT_COLD static int resolve_workers(weft_config *c, unsigned ncpus)
{
    /* First: the warnings about the environment below go through c's log, at its level. */
    if (c->log_level == 0) {
        static const char *const levels[] = {"error", "warn", "info", "off", NULL};
        const char *l = getenv("WEFT_LOG_LEVEL");
        c->log_level = !l || !*l                 ? WEFT_LOG_WARN
                       : strcmp(l, "error") == 0 ? WEFT_LOG_ERROR
                       : strcmp(l, "info") == 0  ? WEFT_LOG_INFO
                       : strcmp(l, "off") == 0   ? -1
                                                 : WEFT_LOG_WARN;
        env_check(c, "WEFT_LOG_LEVEL", levels, "error, warn, info, off"); /* at WARN, if so */
    }
    if (c->mode == WEFT_MODE_DEFAULT) {
        static const char *const modes[] = {"sharded", "stealing", NULL};
        env_check(c, "WEFT_MODE", modes, "sharded, stealing");
        const char *m = getenv("WEFT_MODE");
        c->mode = (m && strcmp(m, "stealing") == 0) ? WEFT_MODE_STEALING : WEFT_MODE_SHARDED;
    }
    if (c->deadlock == WEFT_DEADLOCK_DEFAULT) {
        static const char *const policies[] = {"exit", "report", "off", NULL};
        env_check(c, "WEFT_DEADLOCK", policies, "exit, report, off");
        const char *d = getenv("WEFT_DEADLOCK");
        c->deadlock = !d                         ? WEFT_DEADLOCK_EXIT
                      : strcmp(d, "off") == 0    ? WEFT_DEADLOCK_OFF
                      : strcmp(d, "report") == 0 ? WEFT_DEADLOCK_REPORT
                                                 : WEFT_DEADLOCK_EXIT;
    }
    if (c->stall_ms == 0) {
        if (!env_int(c, "WEFT_STALL_MS", &c->stall_ms))
            c->stall_ms = 10;
        if (c->stall_ms == 0)
            c->stall_ms = -1; /* "0" in the environment: off */
    }
    if (c->dump_signal == 0) {
        const char *ds = getenv("WEFT_DUMP_SIGNAL");
        c->dump_signal = weft__dump_signal_from_env(ds);
        /* A value that names no signal weft can take ("KILL", "usr1", "10x"): said, not
         * ignored in silence (the program would then die of the signal it meant for dumps). */
        if (ds && *ds && c->dump_signal < 0)
            weft__logf_cfg(c, WEFT_LOG_WARN,
                           "weft: WEFT_DUMP_SIGNAL=%s is not a signal weft can take for dumps "
                           "(a name such as USR1 or SIGUSR2, or its number; not KILL, STOP, the "
                           "faults or one weft uses): no dump signal\n",
                           ds);
    }
    if (c->order == WEFT_ORDER_DEFAULT) {
        static const char *const orders[] = {"fifo", "depth_first", NULL};
        env_check(c, "WEFT_ORDER", orders, "fifo, depth_first");
        const char *o = getenv("WEFT_ORDER");
        c->order = o && strcmp(o, "depth_first") == 0 ? WEFT_ORDER_DEPTH_FIRST : WEFT_ORDER_FIFO;
    }
    static const char *const switches[] = {"0", "1", NULL};
    if (c->lifo_slot == 0) {
        env_check(c, "WEFT_LIFO", switches, "0, 1");
        const char *l = getenv("WEFT_LIFO");
        c->lifo_slot = l && strcmp(l, "1") == 0 ? 1 : -1;
    }
    if (c->move_started == 0) {
        env_check(c, "WEFT_MOVE_STARTED", switches, "0, 1");
        const char *m = getenv("WEFT_MOVE_STARTED");
        c->move_started = m && strcmp(m, "1") == 0 ? 1 : -1;
    }
    if (c->backend == WEFT_BACKEND_DEFAULT) { /* as reactor.c reads it */
        static const char *const backends[] = {"epoll", "io_uring", NULL};
        env_check(c, "WEFT_BACKEND", backends, "epoll, io_uring");
        const char *b = getenv("WEFT_BACKEND");
        c->backend = b && strcmp(b, "io_uring") == 0 ? WEFT_BACKEND_IO_URING : WEFT_BACKEND_EPOLL;
    }
    if (c->handoff_us == 0) {
        if (!env_int(c, "WEFT_HANDOFF_US", &c->handoff_us))
            c->handoff_us = c->mode == WEFT_MODE_STEALING ? 1000 : -1;
        if (c->handoff_us == 0)
            c->handoff_us = -1; /* "0" in the environment: off */
    }
    if (c->leak_report == 0) {
        env_check(c, "WEFT_LEAK_REPORT", switches, "0, 1");
        const char *l = getenv("WEFT_LEAK_REPORT");
        c->leak_report = l && strcmp(l, "1") == 0;
    }
    if (c->workers == 0) {
        c->workers = env_count("WEFT_WORKERS");
        if (c->workers == 0) {
            char known[32];
            snprintf(known, sizeof known, "1 to %u", WEFT_WORKERS_MAX);
            env_unknown(c, "WEFT_WORKERS", getenv("WEFT_WORKERS"), known);
        }
    }
    if (c->workers == 0)
        c->workers = ncpus;
    if (c->workers > WEFT_WORKERS_MAX)
        c->workers = WEFT_WORKERS_MAX;
    return 0;
}

/* The WEFT_CHAOS seed: a decimal number (0: off), else said and off (strtoull read "-3" as
 * a seed near 2^64 and "abc" as 0, in silence). */
WEFT_COLD static uint64_t chaos_seed(const weft_config *c)
{
    const char *v = getenv("WEFT_CHAOS");
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno == ERANGE) {
        weft__logf_cfg(c, WEFT_LOG_WARN, "weft: WEFT_CHAOS=%s is not a decimal seed: no chaos\n",
                       v);
        return 0;
    }
    return seed;
}

WEFT_COLD static int worker_init(weft__runtime *rt, weft__worker *w, unsigned index)
{
    w->rt = rt;
    w->index = index;
    w->tracer = rt->cfg.tracer;
    w->leaks = rt->leaks;
    w->fence_resumes = rt->fence_resumes;
    /* task.h's weft__sampled: one in 256; every one with a tracer or fence.h's fallback. */
    w->run_mask = w->tracer || w->fence_resumes ? 0 : 255;
    w->bias_after = 0; /* TSan does not model the revoker's membarrier (bias_lock.h) */
#ifndef WEFT_TSAN
    if (!w->fence_resumes) {
        w->bias_after = 1024;
#ifdef WEFT_TESTING
        const char *bias = getenv("WEFT_TEST_BIAS_AFTER"); /* the revocations' tests: often */
        if (bias)
            w->bias_after = (uint32_t)strtoul(bias, NULL, 10);
#endif
    }
#endif
    weft__watch_thread(&w->watch, weft__handoff_slots_self());
    weft__relief_worker_init(w);
    w->now = weft__clock_ns();
#ifdef WEFT_TESTING
    w->select_pause_ns = weft__test_env("WEFT_TEST_SELECT_PAUSE_NS", 1);
#endif
    w->rng = ((uint64_t)w->now | 1) + index * 0x9E3779B97F4A7C15ull;
    if (rt->chaos_seed) /* the debug mode: each worker its own sequence of the seed */
        w->sched.chaos = (rt->chaos_seed ^ ((uint64_t)(index + 1) * 0x9E3779B97F4A7C15ull)) | 1;
    if (index == 0)
        w->stats.nmallocs = 1; /* the runtime's own record */
    bool stealing = rt->cfg.mode == WEFT_MODE_STEALING && rt->nworkers > 1;
    weft__sched_init(w, rt->cfg.budget, stealing && rt->cfg.lifo_slot > 0,
                     rt->cfg.order == WEFT_ORDER_DEPTH_FIRST, stealing && rt->cfg.move_started > 0);
    weft__tasks_init(w, rt->cfg.stack_size);
    weft__stack_init(w, rt->cfg.guard, rt->cfg.stack_pool_max);
    int r = weft__io_init(w, rt->cfg.backend, rt->handoff_ns > 0);
    if (r == 0 && rt->cfg.report_overflow)
        r = weft__overflow_init(w);
    return r;
}

WEFT_COLD static void worker_fini(weft__worker *w)
{
    weft__watches_fini(w); /* records their tasks left to handles (no task is left now) */
    weft__tasks_fini(w);
    weft__nodes_fini(w);
    weft__stack_fini(w);
    weft__timers_fini(w);
    weft__io_fini(w);
    weft__overflow_fini(w);
    weft__relief_worker_fini(w);
}

WEFT_COLD static void ignore_sigpipe(void)
{
    /* Only over the default action: a handler or disposition the application chose stays. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

/* ---- Worker threads ------------------------------------------------------------------ */

typedef struct thread_start {
    weft__runtime *rt;
    unsigned index;
    int cpu; /* -1: not pinned */
} thread_start;

/* Waits for the phase to leave `from`; returns the new one. */
static int wait_phase(weft__runtime *rt, int from)
{
    pthread_mutex_lock(&rt->start_lock);
    while (rt->phase == from)
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    int p = rt->phase;
    pthread_mutex_unlock(&rt->start_lock);
    return p;
}

static void set_phase(weft__runtime *rt, int phase)
{
    pthread_mutex_lock(&rt->start_lock);
    rt->phase = phase;
    pthread_cond_broadcast(&rt->start_cond);
    pthread_mutex_unlock(&rt->start_lock);
}

WEFT_COLD static void pin_to(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET((unsigned)cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one); /* best effort */
}

/* A worker thread: its worker is built here, on its own thread (an io_uring ring created
 * SINGLE_ISSUER belongs to the thread that made it; the alternate signal stack is per
 * thread), runs its loop, and is freed here once every worker has left its loop and the
 * blocking pool is gone. Every asynchronous signal is blocked: they go to the application's
 * threads, as on the blocking pool's. */
static void *worker_thread(void *arg)
{
    thread_start st = *(thread_start *)arg;
    free(arg);
    weft__runtime *rt = st.rt;
    weft__worker *w = &rt->workers[st.index];
    pin_to(st.cpu);
    weft__worker_set_current(w);
    int r = worker_init(rt, w, st.index);
    if (r == 0)
        weft__loop_prepare(w);
    pthread_mutex_lock(&rt->start_lock);
    rt->nstarted++;
    if (r < 0 && !rt->failed)
        rt->failed = r;
    pthread_cond_broadcast(&rt->start_cond);
    pthread_mutex_unlock(&rt->start_lock);
    if (wait_phase(rt, 0) == 1) {
        weft__loop(w);
        pthread_mutex_lock(&rt->start_lock); /* its rings of the others are done (runtime.h) */
        rt->nleft++;
        pthread_cond_broadcast(&rt->start_cond);
        pthread_mutex_unlock(&rt->start_lock);
        wait_phase(rt, 1); /* until the pool is gone: its threads may still ring us */
    }
    worker_fini(w);
    weft__worker_set_current(NULL);
    return NULL;
}

/* The signal mask of every thread weft starts (workers, relief threads): every asynchronous
 * signal blocked, the synchronous faults and the stall detector's request left deliverable. */
static void thread_sigmask(const weft__runtime *rt, sigset_t *all)
{
    sigfillset(all);
    /* Synchronous faults stay deliverable (the overflow report, a crash's default action). */
    sigdelset(all, SIGSEGV);
    sigdelset(all, SIGBUS);
    sigdelset(all, SIGFPE);
    sigdelset(all, SIGILL);
    sigdelset(all, SIGTRAP);
    sigdelset(all, SIGABRT);
    if (weft__watchdog_signals(rt)) /* the stall detector's request for a backtrace */
        sigdelset(all, WEFT__WATCH_SIGNAL);
}

/* Starts workers 1 .. n-1 and waits for their inits. Returns 0, or the first error (the
 * threads started are then told to leave, and joined by the caller: rt->threads). */
WEFT_COLD static int start_threads(weft__runtime *rt, const unsigned *cpus, unsigned ncpus,
                                   unsigned *nthreads)
{
    sigset_t old;
    thread_sigmask(rt, &rt->thread_mask); /* relief threads (in_place.c) take it too */
    pthread_sigmask(SIG_SETMASK, &rt->thread_mask, &old);
    int r = 0;
    for (unsigned i = 1; i < rt->nworkers; i++) {
        thread_start *st = malloc(sizeof *st);
        if (!st) {
            r = -ENOMEM;
            break;
        }
        *st = (thread_start){rt, i, rt->cfg.pin_workers ? (int)cpus[i % ncpus] : -1};
        int e = pthread_create(&rt->threads[i - 1], NULL, worker_thread, st);
        if (e) {
            free(st);
            r = -e;
            break;
        }
        (*nthreads)++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&rt->start_lock);
    while (rt->nstarted < *nthreads)
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    if (r == 0)
        r = rt->failed;
    pthread_mutex_unlock(&rt->start_lock);
    return r;
}

WEFT_COLD static weft__runtime *runtime_new(unsigned nworkers)
{
    size_t size = sizeof(weft__runtime) + (size_t)nworkers * sizeof(weft__worker);
    void *mem = NULL;
    /* 64-aligned: each worker's hot fields, and the inbox other threads write, apart. */
    if (posix_memalign(&mem, 64, size) != 0)
        return NULL;
    memset(mem, 0, size);
    weft__runtime *rt = mem;
    rt->workers = (weft__worker *)(rt + 1);
    rt->nworkers = nworkers;
    if (nworkers > 1 && !(rt->threads = calloc(nworkers - 1, sizeof *rt->threads))) {
        free(rt);
        return NULL;
    }
    return rt;
}

int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return -EINVAL;
    if (weft__worker_current())
        return -EBUSY;
    weft_config c;
    int r = 0;
    if (cfg)
        r = take_config(cfg, &c);
    else
        weft_config_init(&c);
    if (r < 0)
        return r;
    cpu_set_t mask;
    unsigned cpus[CPU_SETSIZE]; /* 4 KiB of this thread's stack, once */
    unsigned ncpus = affinity_cpus(&mask, cpus, CPU_SETSIZE);
    if ((r = resolve_workers(&c, ncpus)) < 0)
        return r;
    weft__runtime *rt = runtime_new(c.workers);
    if (!rt)
        return -ENOMEM;
    rt->cfg = c;
    rt->affinity = mask;
    weft__relief_init(rt);
    rt->deadlock_policy = c.deadlock;
    weft__deadlock_init(rt);
    rt->stall_ns = c.stall_ms > 0 ? (int64_t)c.stall_ms * 1000000 : 0;
    /* The hand-off needs weft's code told apart (handoff.c). Not under TSan, which runs a
     * signal's handler only at the thread's next intercepted call: a spinning task would
     * never answer. */
    weft__handoff_find_code(&rt->code);
    rt->handoff_detach = weft__handoff_detach;
    rt->handoff_assign = weft__relief_assign;
    rt->handoff_seize = weft__handoff_seize;
    rt->handoff_seize_end = weft__handoff_seize_end;
    rt->handoff_slots = weft__handoff_slots_self;
#if !defined(__SANITIZE_THREAD__)
    /* On io_uring too: the rings are then made movable (uring.c), at a price per message. */
    if (c.handoff_us > 0 && rt->code.lo != rt->code.hi)
        rt->handoff_ns = (int64_t)c.handoff_us * 1000;
#endif
    atomic_init(&rt->checked_at, UINT64_MAX); /* no verdict given yet */
    atomic_init(&rt->reported_at, UINT64_MAX);
    rt->chaos_seed = chaos_seed(&c);
    rt->fence_resumes = weft__fence_setup(&rt->fence);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->start_lock, NULL);
    pthread_cond_init(&rt->start_cond, NULL);
    atomic_init(&rt->next_id, 1);
    weft__worker *w = &rt->workers[0];
    weft__worker_fork_hook(); /* before the worker exists: a fork from now on sees none */
    if (rt->cfg.pin_workers)
        pin_to((int)cpus[0]);
    weft__worker_set_current(w);

    unsigned nthreads = 0;
    r = weft__smp_init(rt);
    if (r == 0 && rt->cfg.leak_report)
        r = weft__leaks_start(rt);
    /* The watchdog first: whether its signal is weft's decides the workers' masks. */
    if (r == 0)
        r = weft__watchdog_start(rt);
    sigset_t urg, old_mask;
    sigemptyset(&urg);
    sigaddset(&urg, WEFT__WATCH_SIGNAL);
    bool unblocked =
        weft__watchdog_signals(rt) && pthread_sigmask(SIG_UNBLOCK, &urg, &old_mask) == 0;
    if (r == 0)
        r = worker_init(rt, w, 0);
    if (r == 0)
        r = start_threads(rt, cpus, ncpus, &nthreads);
    if (r == 0)
        weft__loop_prepare(w);
    if (r == 0) {
        weft_spawn_opts o = {.name = "main"};
        r = weft_spawn(&rt->main_task, main_fn, arg, &o);
    }
    if (r == 0) {
        weft__task_flags_set(rt->main_task, WEFT__T_MAIN);
        /* Only once the runtime stands, before any task runs: a start that fails leaves the
         * process's SIGPIPE as it found it (weft.h: what was set up is undone). */
        if (rt->cfg.ignore_sigpipe)
            ignore_sigpipe();
        set_phase(rt, 1);
        weft__dumpsig_start(rt);
        /* The loop's own context (futures polled there, stackless tasks) starts with no C++
         * exception being handled, whatever the caller was handling: the caller's record is
         * kept aside for the run (eh_state.h). */
        weft__eh_state *eh = weft__eh_thread_record(), outer = {NULL, 0};
        if (eh) {
            outer = *eh;
            *eh = (weft__eh_state){NULL, 0};
        }
        r = weft__loop(w);
        if (eh)
            *eh = outer;
        weft__dumpsig_stop(rt);
        if (result)
            *result = rt->main_result; /* not the record's: it may be reused by now */
    } else {
        set_phase(rt, -1);
    }
    weft__watchdog_stop(rt);
    if (unblocked)
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    /* The pool first: its threads may still wake tasks through a worker's doorbell. Then the
     * other workers free theirs, on their own threads. */
    weft__pool_fini(rt);
    weft__in_place_fini(rt); /* idle, every loop having ended */
    /* No worker frees its reactor while another may still ring it (runtime.h, nleft); after
     * a failed start (phase -1) none ran its loop. */
    pthread_mutex_lock(&rt->start_lock);
    while (rt->phase == 1 && rt->nleft < nthreads)
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    pthread_mutex_unlock(&rt->start_lock);
    set_phase(rt, 2);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(rt->threads[i], NULL);
    weft__watchdog_free(rt); /* no worker or relief thread left to poke it */
    worker_fini(w);
    weft__task_chunks_free(rt, w);
    for (unsigned i = 0; i < sizeof rt->fdshare / sizeof rt->fdshare[0]; i++)
        weft__free(w, (void *)atomic_load_explicit(&rt->fdshare[i], memory_order_relaxed));
    weft__alien_fini(rt);
    weft__smp_fini(rt);
    weft__worker_set_current(NULL);
    if (rt->cfg.pin_workers)
        sched_setaffinity(0, sizeof mask, &mask);
    pthread_cond_destroy(&rt->start_cond);
    pthread_mutex_destroy(&rt->start_lock);
    pthread_mutex_destroy(&rt->lock);
    weft__leaks_stop(rt);
    free(rt->threads);
    free(rt);
    return r;
}

unsigned weft_worker_count(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->rt->nworkers : 0;
}

int weft_worker_index(void)
{
    weft__worker *w = weft__worker_current();
    return w ? (int)w->index : -EPERM;
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
    uint64_t sum[WEFT__NPUB] = {0};
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const weft__worker *x = &rt->workers[i];
        uint64_t v[WEFT__NPUB];
        if (x == w) {
            weft__worker_counters(x, v); /* the caller's own: exact */
        } else {
            for (int k = 0; k < WEFT__NPUB; k++) /* another's: as of its last tick */
                v[k] = atomic_load_explicit(&x->published[k], memory_order_relaxed);
        }
        for (int k = 0; k < WEFT__NPUB; k++)
            sum[k] += v[k];
        s.nstuck += weft__watch_stuck(&x->watch);
    }
    int k = 0;
#define SUM_ONE(field, expr) s.field = sum[k++];
    WEFT__COUNTERS(SUM_ONE)
#undef SUM_ONE
    weft__pool_stats(rt, &s); /* lock-free: a tracer's hook may call this (pool.c) */
    s.size = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, s.size);
    return 0;
}
