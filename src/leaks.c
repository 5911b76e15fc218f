/* The leak report. The table of channels is the one structure here that several threads
 * share: a channel may be created on one worker and freed on another, or by a plain thread
 * after the runtime ended. So it is reference-counted (the runtime holds one reference, each
 * tracked channel one) and guarded by its mutex; an entry is removed by swapping the last one
 * into its place, whose channel is told its new index through the pointer it gave (the
 * channel is alive: it is still in the table, and its free must take the mutex first). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>

#include "debug_http.h"
#include "dump.h"
#include "io/backend.h"
#include "leaks.h"
#include "log.h"
#include "runtime.h"
#include "task.h"
#include "worker.h"

typedef struct chan_entry {
    void *chan;
    size_t *index; /* where the channel keeps its index in the table */
    uint64_t creator;
    size_t elem_size, cap;
} chan_entry;

struct weft__leaks {
    pthread_mutex_t mu; /* guards everything below but refs */
    _Atomic unsigned refs;
    chan_entry *chans;
    size_t nchans, cap;
    /* The report, built under mu: the channels at the main task's end, each worker's part. */
    weft__dumpbuf chan_part, task_part, fd_part;
    size_t nleaked_chans, ntasks, nfds;
    unsigned parts_left; /* workers yet to add their part */
};

static void unref(weft__leaks *l)
{
    /* acq_rel: every holder's last use before the free. */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->chans);
    free(l->chan_part.p);
    free(l->task_part.p);
    free(l->fd_part.p);
    free(l);
}

int weft__leaks_start(weft__runtime *rt)
{
    weft__leaks *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->refs, 1);
    l->parts_left = rt->nworkers;
    rt->leaks = l;
    return 0;
}

void weft__leaks_stop(weft__runtime *rt)
{
    if (rt->leaks)
        unref(rt->leaks);
    rt->leaks = NULL;
}

weft__leaks *weft__leaks_chan_add(weft__leaks *l, void *chan, size_t *index, uint64_t creator,
                                  size_t elem_size, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    if (l->nchans == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        chan_entry *v = realloc(l->chans, ncap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
        l->chans = v;
        l->cap = ncap;
    }
    *index = l->nchans;
    l->chans[l->nchans++] = (chan_entry){chan, index, creator, elem_size, cap};
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&l->mu);
    return l;
}

void weft__leaks_chan_remove(weft__leaks *l, size_t index)
{
    pthread_mutex_lock(&l->mu);
    if (index < l->nchans) {
        l->chans[index] = l->chans[--l->nchans];
        if (index < l->nchans)
            *l->chans[index].index = index;
    }
    pthread_mutex_unlock(&l->mu);
    unref(l);
}

void weft__leaks_main_ended(weft__runtime *rt)
{
    weft__leaks *l = rt->leaks;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nchans; i++) {
        const chan_entry *e = &l->chans[i];
        weft__dumpbuf_printf(&l->chan_part, "channel %p (elements of %zu bytes, capacity %zu)",
                             e->chan, e->elem_size, e->cap);
        if (e->creator)
            weft__dumpbuf_printf(&l->chan_part, ", created by task %llu\n",
                                 (unsigned long long)e->creator);
        else
            weft__dumpbuf_printf(&l->chan_part, ", created outside any task\n");
    }
    l->nleaked_chans = l->nchans;
    pthread_mutex_unlock(&l->mu);
}

/* The debug endpoint's tasks and sockets are weft's, not the program's: left out. */
static bool endpoint_task(const weft_task *t)
{
    int fd;
    return weft__debug_task(t, &fd);
}

/* The sockets the endpoint's live tasks on one worker hold. */
typedef struct endpoint_fds {
    const weft__worker *w;
    int *v;
    size_t n, cap;
} endpoint_fds;

static void take_endpoint_fd(weft_task *t, void *arg)
{
    endpoint_fds *e = arg;
    int fd;
    if (__atomic_load_n(&t->worker, __ATOMIC_RELAXED) != e->w ||
        WEFT__STATE(atomic_load_explicit(&t->word, memory_order_acquire)) == WEFT__DONE ||
        !weft__debug_task(t, &fd) || fd < 0)
        return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        int *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return; /* then listed */
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = fd;
}

static bool endpoint_fd(const endpoint_fds *e, size_t fd)
{
    for (size_t i = 0; i < e->n; i++)
        if ((size_t)e->v[i] == fd)
            return true;
    return false;
}

/* The fds w's reactor still knows: used through weft's calls and not given to weft_close
 * (the debug endpoint's left out). */
static size_t list_fds(weft__dumpbuf *b, weft__worker *w)
{
    weft__io *io = w->io;
    endpoint_fds ours = {.w = w};
    weft__task_each(w->rt, take_endpoint_fd, &ours);
    size_t n = 0;
    for (size_t fd = 0; io && fd < io->nfds; fd++) {
        const weft__fdrec *rec = &io->fds[fd];
        if ((!rec->kind && !rec->watched) || endpoint_fd(&ours, fd))
            continue;
        static const char *const kinds[] = {"unclassified", "stream", "pollable", "file"};
        const char *kind = rec->kind < 4 ? kinds[rec->kind] : "?";
        bool open = fcntl((int)fd, F_GETFD) >= 0;
        weft__dumpbuf_printf(b, "fd %zu on worker %u (%s%s)%s\n", fd, w->index, kind,
                             rec->watched ? ", registered for readiness" : "",
                             open ? "" : ": closed without weft_close, its record stayed");
        n++;
    }
    free(ours.v);
    return n;
}

void weft__leaks_worker_stop(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    weft__leaks *l = rt->leaks;
    /* Built outside the lock (a walk of the records, system calls), appended under it. */
    weft__dumpbuf tasks = {0}, fds = {0};
    size_t ntasks = weft__dump_tasks_but(&tasks, rt, w, endpoint_task, true, weft__clock_ns());
    size_t nfds = list_fds(&fds, w);
    pthread_mutex_lock(&l->mu);
    if (tasks.len)
        weft__dumpbuf_printf(&l->task_part, "%.*s", (int)tasks.len, tasks.p);
    if (fds.len)
        weft__dumpbuf_printf(&l->fd_part, "%.*s", (int)fds.len, fds.p);
    l->ntasks += ntasks;
    l->nfds += nfds;
    bool last = --l->parts_left == 0;
    weft__dumpbuf report = {0};
    if (last) {
        if (!l->ntasks && !l->nleaked_chans && !l->nfds) {
            weft__dumpbuf_printf(&report, "weft: leak report: nothing left behind (no task, "
                                          "channel or fd) when the main task ended\n");
        } else {
            weft__dumpbuf_printf(&report,
                                 "weft: leak report: when the main task ended, %zu tasks were "
                                 "alive, %zu channels not released, %zu fds still known to "
                                 "weft\n",
                                 l->ntasks, l->nleaked_chans, l->nfds);
            if (l->ntasks)
                weft__dumpbuf_printf(&report,
                                     "\n-- tasks still alive (the shutdown cancels them):\n%.*s",
                                     (int)l->task_part.len, l->task_part.p);
            if (l->nleaked_chans)
                weft__dumpbuf_printf(&report,
                                     "\n-- channels never released (weft_chan_release):\n%.*s",
                                     (int)l->chan_part.len, l->chan_part.p);
            if (l->nfds)
                weft__dumpbuf_printf(&report, "\n-- fds still known to weft (weft_close):\n%.*s",
                                     (int)l->fd_part.len, l->fd_part.p);
        }
    }
    pthread_mutex_unlock(&l->mu);
    free(tasks.p);
    free(fds.p);
    if (last) {
        weft__log(rt, WEFT_LOG_WARN, report.p ? report.p : "", report.len);
        free(report.p);
    }
}
