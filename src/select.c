/* The general select (weft.h, weft_select): fd readiness, futures and timers among channel
 * cases, under the channel select's rules. Each such case stands in the select as a channel
 * case: the RECV of a private channel of one slot, which receives the case's outcome (the
 * ready mask, the future's status, 0 for a timer). chan.c's select then does the uniform
 * choice and the exactly-one completion over all of them.
 *
 * First a look that waits for nothing: each fd, future and timer is checked where it stands
 * (poll(2) with no timeout, a poll of the future, the clock), a ready one puts its outcome in
 * its channel, and the channel select runs with a DEFAULT case added. If something was ready
 * that is the end, and no task was spawned. Otherwise each case gets a watcher, a small task
 * pinned to the caller's worker that waits for it (weft_fd_wait, weft_await,
 * weft_sleep_until) and sends the outcome, and the channel select waits for real.
 *
 * Nothing is consumed by a case that loses. A future stays as it is (still the caller's);
 * poll(2) takes nothing; but on epoll a readiness wait takes the edge it returns, so a
 * watcher that saw its fd ready after the select had chosen another case gives that edge
 * back (weft__io_fd_unconsume): the fd's next wait finds it as if no select had looked. The
 * watchers are cancelled and joined before the select returns; they live on the caller's
 * worker (pinned), whose fd table the edges belong to. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "chan.h"
#include "core.h"
#include "io/io.h"
#include "sys.h"
#include "task_api.h"

#define MAX_CASES 1024

/* One fd, future or timer case. owner: the selecting task (its watcher writes only through
 * the channel). */
typedef struct watch {
    const weft_case *c; /* the caller's case */
    weft_chan *ch;      /* one slot of int: the outcome */
    weft_task *task;    /* its watcher, or NULL (ready at the look, or not started) */
    int outcome;        /* what the chosen case's channel gave */
} watch;

static bool general_op(int op)
{
    return op == WEFT_CASE_FD || op == WEFT_CASE_FUTURE || op == WEFT_CASE_TIMER;
}

/* The look that waits for nothing: 1 and *outcome if the case is ready now, else 0. */
static int ready_now(weft__worker *w, const weft_case *c, int *outcome)
{
    switch (c->op) {
    case WEFT_CASE_TIMER:
        *outcome = 0;
        return c->at != WEFT_FOREVER && c->at <= weft_now(); /* never, as a deadline */
    case WEFT_CASE_FUTURE: {
        weft_context cx = {{NULL, 0}}; /* its watcher polls again with a waker */
        if (!c->future->ready && weft_future_poll(c->future, &cx) != WEFT_READY)
            return 0;
        *outcome = c->future->status;
        return 1;
    }
    default: /* WEFT_CASE_FD */
        *outcome = weft__io_fd_ready_now(w, c->io.fd, c->io.events);
        return *outcome != 0;
    }
}

/* The watchers. Each sends its outcome once, or nothing if it was cancelled first (the
 * select is over); the send never waits: the slot is its own. */
static void *watch_fd(void *arg)
{
    watch *x = arg;
    int m = weft_fd_wait(x->c->io.fd, x->c->io.events, WEFT_FOREVER);
    if (m != -ECANCELED)
        weft_chan_try_send(x->ch, &m);
    return NULL;
}

static void *watch_future(void *arg)
{
    watch *x = arg;
    int r = weft_await(x->c->future, NULL, WEFT_FOREVER);
    if (x->c->future->ready)
        weft_chan_try_send(x->ch, &x->c->future->status);
    else if (r == -EBUSY) /* a promise another task awaits: its settle would not wake us */
        weft_chan_try_send(x->ch, &r);
    return NULL; /* else cancelled: the future is left pending */
}

static void *watch_timer(void *arg)
{
    watch *x = arg;
    if (weft_sleep_until(x->c->at) == 0) {
        int zero = 0;
        weft_chan_try_send(x->ch, &zero);
    }
    return NULL;
}

static int start_watcher(watch *x)
{
    weft_fn fn = x->c->op == WEFT_CASE_FD       ? watch_fd
                 : x->c->op == WEFT_CASE_FUTURE ? watch_future
                                                : watch_timer;
    weft_spawn_opts o = {.flags = WEFT_SPAWN_PINNED, .name = "select-watch"};
    /* Its watchers (and an fd's consumed edge, given back after) are its worker's: the
     * selecting task stays there from now on (task.h). */
    weft__task_bind(weft__worker_task(weft__worker_current()));
    return weft_spawn_at(__FILE__, __LINE__, &x->task, fn, x, &o);
}

/* Whether an earlier case of the select waits on the same future as xs[i]: that case's
 * watcher stands for both (a second await of one promise would be refused, -EBUSY, and
 * would end the select with that). */
static bool watched_before(const watch *xs, size_t i)
{
    if (xs[i].c->op != WEFT_CASE_FUTURE)
        return false;
    for (size_t k = 0; k < i; k++)
        if (xs[k].c->op == WEFT_CASE_FUTURE && xs[k].c->future == xs[i].c->future)
            return true;
    return false;
}

/* Ends the watchers, and gives back what a losing fd watcher took (see the file comment). */
static void stop_watchers(weft__worker *w, watch *xs, size_t nx, const weft_case *chosen)
{
    for (size_t i = 0; i < nx; i++)
        if (xs[i].task)
            weft_cancel(xs[i].task);
    for (size_t i = 0; i < nx; i++) {
        if (!xs[i].task)
            continue;
        weft__join_uncancellable(w, xs[i].task);
        w = weft__worker_current(); /* the migration rule: re-read after a wait */
        int m;
        if (xs[i].c != chosen && xs[i].c->op == WEFT_CASE_FD &&
            weft_chan_try_recv(xs[i].ch, &m) == 0 && m > 0)
            weft__io_fd_unconsume(w, xs[i].c->io.fd, (unsigned)m);
    }
}

static int check_cases(const weft_case *cases, size_t n, size_t *nx, bool *dflt)
{
    *nx = 0;
    *dflt = false;
    for (size_t i = 0; i < n; i++) {
        const weft_case *c = &cases[i];
        if (c->op == WEFT_CASE_DEFAULT)
            *dflt = true;
        if (!general_op(c->op))
            continue; /* the channel select checks its own */
        if (c->op == WEFT_CASE_FD &&
            (c->io.fd < 0 || !c->io.events || (c->io.events & ~(WEFT_READABLE | WEFT_WRITABLE))))
            return -EINVAL;
        /* A header never initialised answers every poll with -EINVAL, which the look and the
         * watcher's await take for "not yet": the select would wait for it for ever. */
        if (c->op == WEFT_CASE_FUTURE && (!c->future || !c->future->ops || !c->future->ops->poll))
            return -EINVAL;
        (*nx)++;
    }
    return 0;
}

static int general_select(weft_case *cases, size_t n, size_t nx, bool has_default, int64_t deadline)
{
    weft_task *self;
    int r;
    weft__worker *w = weft__blocking_begin(&self, true, &r);
    if (!w)
        return r;
    /* The caller's cases as channel cases, and one DEFAULT more for the first look. */
    weft_case *inner = weft__calloc(w, n + 1, sizeof *inner);
    watch *xs = weft__calloc(w, nx, sizeof *xs);
    if (!inner || !xs) {
        weft__free(w, inner);
        weft__free(w, xs);
        return -ENOMEM;
    }
    size_t k = 0;
    int ready = 0;
    r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!general_op(cases[i].op)) {
            inner[i] = cases[i];
            continue;
        }
        watch *x = &xs[k++];
        x->c = &cases[i];
        if ((r = weft_chan_create(&x->ch, sizeof(int), 1)) < 0)
            break;
        inner[i] = (weft_case){.op = WEFT_CASE_RECV, .chan = x->ch, .elem = &x->outcome};
        int outcome;
        if (ready_now(w, x->c, &outcome)) {
            weft_chan_try_send(x->ch, &outcome);
            ready++;
        }
    }
    if (r == 0) {
        /* The look: complete whatever is ready, else take the added DEFAULT. */
        size_t ninner = n;
        if (!has_default)
            inner[ninner++] = (weft_case){.op = WEFT_CASE_DEFAULT};
        r = weft__chan_select(inner, ninner, deadline);
        if (r == (int)n && deadline != WEFT_FOREVER && deadline <= weft_now())
            r = -ETIMEDOUT; /* nothing ready, and no time to wait: no watcher */
        if (r == (int)n) {  /* nothing ready: watch every case, then wait */
            for (size_t i = 0; i < nx && r == (int)n; i++) {
                if (watched_before(xs, i))
                    continue;
                int s = start_watcher(&xs[i]);
                if (s < 0)
                    r = s;
            }
            if (r == (int)n)
                r = weft__chan_select(inner, n, deadline);
        }
    }
    /* The worker now: the first look's channel select may have yielded (the debug mode's
     * chaos yield) while the task was not bound yet, and handed it to another worker (stealing
     * mode, move_started); w is then another worker's, whose current task is not ours. */
    w = weft__worker_current();
    stop_watchers(w, xs, nx, r >= 0 && (size_t)r < n ? &cases[r] : NULL);
    if (r >= 0) {
        weft_case *c = &cases[r];
        if (general_op(c->op)) {
            c->result = *(int *)inner[r].elem;
            if (c->op == WEFT_CASE_FUTURE && c->elem && c->future->ready)
                *(void **)c->elem = c->future->value;
        } else {
            c->result = inner[r].result;
        }
    }
    for (size_t i = 0; i < nx; i++)
        weft_chan_release(xs[i].ch);
    w = weft__worker_current();
    weft__free(w, xs);
    weft__free(w, inner);
    return r;
}

int weft_select(weft_case *cases, size_t n, int64_t deadline)
{
    if (!cases || n == 0 || n > MAX_CASES)
        return -EINVAL;
    size_t nx;
    bool has_default;
    int r = check_cases(cases, n, &nx, &has_default);
    if (r < 0)
        return r;
    if (nx == 0) /* channel cases only: no watcher, no copy */
        return weft__chan_select(cases, n, deadline);
    return general_select(cases, n, nx, has_default, deadline);
}
