/* weft_fd_future (weft.h): weft_fd_wait as a future, for stackless tasks and combinators.
 *
 * A future cannot park, so its wait is a watcher's: a small task pinned to the future's
 * worker that calls weft_fd_wait, stores the mask and wakes the latest poll's waker. The
 * first poll looks at the fd without waiting (poll(2)) and starts the watcher only if it is
 * not ready. Owner: the worker that made it; the record and the watcher are touched on that
 * thread only, so no field is atomic. The record goes with the last of its two holders: the
 * future (until weft_future_destroy) and the watcher (until it ends). A watcher that took
 * an edge nobody will hear of (the future was destroyed first) gives it back, as the
 * general select's do (weft__io_fd_unconsume). */
#include <errno.h>
#include <poll.h>

#include "core.h"
#include "io/io.h"
#include "log.h"
#include "sys.h"

typedef struct fd_future {
    weft_future base; /* first: the public header */
    weft__worker *w;  /* the owner */
    int fd, events;
    weft_task *watcher; /* running or queued; NULL before the first wait and after its end */
    weft_waker waker;   /* the latest poll's */
    int result;         /* the watcher's weft_fd_wait result, once `got` */
    bool got;           /* the watcher has a result the future has not delivered yet */
    bool dropped;       /* weft_future_destroy was called: the watcher frees the record */
} fd_future;

static void fd_future_free(fd_future *f)
{
    weft__free(f->w, f);
}

static void *watch(void *arg)
{
    fd_future *f = arg;
    int r = weft_fd_wait(f->fd, f->events, WEFT_FOREVER);
    if (r == -ECANCELED && weft_canceled() > 0)
        return NULL; /* destroyed: took nothing */
    f->result = r;
    f->got = true;
    weft_waker_wake(f->waker);
    return NULL;
}

/* The watcher's end, however it ended (cancelled before it ran included). */
static void watch_ended(void *arg)
{
    fd_future *f = arg;
    f->watcher = NULL;
    if (!f->dropped)
        return;
    if (f->got && f->result > 0) /* an edge taken for nobody: give it back */
        weft__io_fd_unconsume(f->w, f->fd, (unsigned)f->result);
    fd_future_free(f);
}

static int fd_poll(weft_future *self, weft_context *cx)
{
    fd_future *f = (fd_future *)self;
    weft__worker *w = weft__worker_current();
    if (w != f->w) {
        weft_future_complete(self, -EPERM, NULL);
        return WEFT_READY;
    }
    if (f->got) {
        f->got = false;
        weft_future_complete(self, f->result, NULL);
        return WEFT_READY;
    }
    f->waker = cx->waker;
    if (f->watcher)
        return WEFT_PENDING;
    int m = weft__io_fd_ready_now(w, f->fd, f->events);
    if (m != 0) {
        weft_future_complete(self, m, NULL);
        return WEFT_READY;
    }
    weft_spawn_opts o = {.flags = WEFT_SPAWN_PINNED, .name = "fd-future", .cleanup = watch_ended};
    weft_task *t;
    int r = weft_spawn_at(__FILE__, __LINE__, &t, watch, f, &o);
    if (r < 0) {
        weft_future_complete(self, r, NULL);
        return WEFT_READY;
    }
    /* Nobody joins it: detached, its record lives until it has finished, and watch_ended
     * clears `watcher` first, so while `watcher` is set it names that task (a cancel's). */
    weft_detach(t);
    f->watcher = t;
    return WEFT_PENDING;
}

static void fd_drop(weft_future *self)
{
    fd_future *f = (fd_future *)self;
    weft__worker *here = weft__worker_current();
    if (here != f->w) {
        /* f->w may be gone (a destroy after weft_run returned): not read. */
        weft__logf(here ? here->rt : NULL, WEFT_LOG_WARN,
                   "weft: a weft_fd_future destroyed outside its worker's thread: leaked "
                   "rather than touched there\n");
        return;
    }
    if (f->watcher) { /* it frees the record when it ends */
        f->dropped = true;
        weft_cancel(f->watcher);
        return;
    }
    if (f->got && f->result > 0) /* taken, never delivered: give it back */
        weft__io_fd_unconsume(f->w, f->fd, (unsigned)f->result);
    fd_future_free(f);
}

static const weft_future_ops fd_ops = {fd_poll, fd_drop};

int weft_fd_future(weft_future **out, int fd, int events)
{
    if (!out || fd < 0 || !events || (events & ~(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    fd_future *f = weft__calloc(w, 1, sizeof *f);
    if (!f)
        return -ENOMEM;
    weft_future_init(&f->base, &fd_ops);
    f->w = w;
    f->fd = fd;
    f->events = events;
    *out = &f->base;
    return 0;
}
