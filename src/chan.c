/* Channels and select. A channel is a ring buffer plus two FIFO queues of waiters (senders,
 * receivers). Waiter nodes live on the waiting task's stack. Each points at a `done` record
 * it shares with the other cases of the same select (a plain send or receive is a select of
 * one), so whoever completes a waiter first claims the whole select: the other cases become
 * stale and are skipped, then unlinked by their owner. The counterpart copies the value
 * straight to or from the waiter's buffer, so a value is never lost or taken twice.
 *
 * Every state change happens between chan_lock() and chan_unlock(), no-ops today (one
 * worker); the multi-core issue makes those a spinlock per channel and `done->fired` an
 * atomic claim, without touching the rest. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_ELEM    ((size_t)65536)
#define MAX_CASES   1024
#define STACK_CASES 8 /* waiter nodes on the stack up to this many cases, else one malloc */

struct weft_chan {
    weft__worker *w;
    size_t elem_size, cap;
    size_t head, len; /* buffered values: slots head .. head+len-1 (mod cap) */
    unsigned refs;
    int closed;
    weft__list sendq; /* chan_waiter.link, oldest first */
    weft__list recvq;
    char *buf;
};

/* Shared by the cases of one select. */
typedef struct wait_done {
    int fired;        /* claimed: some case completed */
    int index;        /* which */
    int result;       /* 0 or -EPIPE */
    weft_waker waker; /* the waiting task, refreshed before each park */
} wait_done;

typedef struct chan_waiter {
    weft__list link;
    void *elem; /* send: the value; receive: where it goes */
    wait_done *done;
    int index;
} chan_waiter;

static void chan_lock(weft_chan *c)
{
    (void)c;
}

static void chan_unlock(weft_chan *c)
{
    (void)c;
}

static char *slot(weft_chan *c, size_t i)
{
    return c->buf + (i % c->cap) * c->elem_size;
}

/* The oldest waiter whose select has not fired; stale ones are unlinked on the way. */
static chan_waiter *first_live(weft__list *q)
{
    while (!weft__list_empty(q)) {
        chan_waiter *wt = weft__container_of(q->next, chan_waiter, link);
        if (!wt->done->fired)
            return wt;
        weft__list_remove(&wt->link);
    }
    return NULL;
}

static void complete(chan_waiter *wt, int result)
{
    weft__list_remove(&wt->link);
    wt->done->fired = 1;
    wt->done->index = wt->index;
    wt->done->result = result;
    weft_waker_wake(wt->done->waker);
}

/* Side-effect-free readiness, for select's uniform choice. */
static int send_ready(weft_chan *c)
{
    return c->closed || first_live(&c->recvq) || c->len < c->cap;
}

static int recv_ready(weft_chan *c)
{
    return c->len > 0 || first_live(&c->sendq) || c->closed;
}

/* Returns 0 (sent), -EPIPE (closed) or -EAGAIN (would wait). */
static int do_send(weft_chan *c, const void *elem)
{
    if (c->closed)
        return -EPIPE;
    chan_waiter *r = first_live(&c->recvq);
    if (r) {
        memcpy(r->elem, elem, c->elem_size);
        complete(r, 0);
        return 0;
    }
    if (c->len < c->cap) {
        memcpy(slot(c, c->head + c->len), elem, c->elem_size);
        c->len++;
        return 0;
    }
    return -EAGAIN;
}

/* Returns 0 (received), -EPIPE (closed and drained) or -EAGAIN (would wait). */
static int do_recv(weft_chan *c, void *elem)
{
    chan_waiter *s = first_live(&c->sendq);
    if (c->len > 0) {
        memcpy(elem, slot(c, c->head), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->len--;
        if (s) { /* a parked sender's value takes the freed slot, keeping FIFO order */
            memcpy(slot(c, c->head + c->len), s->elem, c->elem_size);
            c->len++;
            complete(s, 0);
        }
        return 0;
    }
    if (s) {
        memcpy(elem, s->elem, c->elem_size);
        complete(s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t cap)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!out || elem_size == 0 || elem_size > MAX_ELEM || cap > ((size_t)1 << 30) / elem_size)
        return -EINVAL;
    weft_chan *c = weft__calloc(w, 1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (cap) {
        c->buf = weft__malloc(w, cap * elem_size);
        if (!c->buf) {
            weft__free(w, c);
            return -ENOMEM;
        }
    }
    c->w = w;
    c->elem_size = elem_size;
    c->cap = cap;
    c->refs = 1;
    weft__list_init(&c->sendq);
    weft__list_init(&c->recvq);
    *out = c;
    return 0;
}

void weft_chan_retain(weft_chan *c)
{
    if (c)
        c->refs++;
}

void weft_chan_release(weft_chan *c)
{
    if (!c || --c->refs > 0)
        return;
    weft__free(c->w, c->buf);
    weft__free(c->w, c);
}

size_t weft_chan_len(const weft_chan *c)
{
    return c ? c->len : 0;
}

int weft_chan_close(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    chan_lock(c);
    if (c->closed) {
        chan_unlock(c);
        return -EPIPE;
    }
    c->closed = 1;
    /* Receivers get -EPIPE only when nothing is buffered, which is the case whenever some
     * are waiting; senders always do. */
    chan_waiter *wt;
    while ((wt = first_live(&c->recvq)) != NULL)
        complete(wt, -EPIPE);
    while ((wt = first_live(&c->sendq)) != NULL)
        complete(wt, -EPIPE);
    chan_unlock(c);
    return 0;
}

int weft_chan_try_send(weft_chan *c, const void *elem)
{
    if (!c || !elem)
        return -EINVAL;
    chan_lock(c);
    int r = do_send(c, elem);
    chan_unlock(c);
    return r;
}

int weft_chan_try_recv(weft_chan *c, void *elem)
{
    if (!c || !elem)
        return -EINVAL;
    chan_lock(c);
    int r = do_recv(c, elem);
    chan_unlock(c);
    return r;
}

/* Parks until `d` fires or the deadline/cancellation; unlinks the n waiters either way.
 * Returns d's index, or the park's error. */
static int wait_cases(weft__worker *w, weft_task *t, wait_done *d, chan_waiter *ws, size_t n,
                      int64_t deadline)
{
    int r = 0;
    while (!d->fired) {
        d->waker = weft__waker_of(t);
        r = weft__park_until(w, deadline);
        if (r < 0 && !d->fired)
            break;
    }
    for (size_t i = 0; i < n; i++)
        weft__list_remove(&ws[i].link); /* harmless for nodes already unlinked */
    return d->fired ? d->index : r;
}

static int blocking_op(weft_chan *c, void *elem, int is_send, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = weft__blocking_task(w);
    if (!t)
        return -EPERM;
    if (!c || !elem)
        return -EINVAL;
    if (t->flags & WEFT__T_CANCELLED)
        return -ECANCELED;
    chan_lock(c);
    int r = is_send ? do_send(c, elem) : do_recv(c, elem);
    if (r != -EAGAIN) {
        chan_unlock(c);
        return r;
    }
    wait_done d = {0};
    chan_waiter wt = {.elem = elem, .done = &d, .index = 0};
    weft__list_push_back(is_send ? &c->sendq : &c->recvq, &wt.link);
    chan_unlock(c);
    r = wait_cases(w, t, &d, &wt, 1, deadline);
    return r < 0 ? r : d.result;
}

int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline)
{
    return blocking_op(c, (void *)elem, 1, deadline);
}

int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline)
{
    return blocking_op(c, elem, 0, deadline);
}

static uint64_t next_random(weft__worker *w)
{
    /* xorshift64*, per worker: select's fair choice needs no global state. */
    uint64_t x = w->rng ? w->rng : (uint64_t)w->now | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int weft_select(weft_case *cases, size_t n, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = weft__blocking_task(w);
    if (!t)
        return -EPERM;
    if (!cases || n == 0 || n > MAX_CASES)
        return -EINVAL;
    int dflt = -1;
    for (size_t i = 0; i < n; i++) {
        int op = cases[i].op;
        if (op == WEFT_CASE_DEFAULT) {
            if (dflt >= 0)
                return -EINVAL;
            dflt = (int)i;
        } else if ((op != WEFT_CASE_SEND && op != WEFT_CASE_RECV) ||
                   (cases[i].chan && !cases[i].elem)) {
            return -EINVAL;
        }
    }
    if (t->flags & WEFT__T_CANCELLED)
        return -ECANCELED;

    /* Pick uniformly among the ready cases (reservoir sampling), then complete that one. */
    size_t nready = 0, pick = 0;
    for (size_t i = 0; i < n; i++) {
        weft_chan *c = cases[i].chan;
        if (!c || cases[i].op == WEFT_CASE_DEFAULT)
            continue;
        chan_lock(c);
        int ready = cases[i].op == WEFT_CASE_SEND ? send_ready(c) : recv_ready(c);
        chan_unlock(c);
        if (ready && next_random(w) % ++nready == 0)
            pick = i;
    }
    if (nready) {
        weft_chan *c = cases[pick].chan;
        chan_lock(c);
        int r = cases[pick].op == WEFT_CASE_SEND ? do_send(c, cases[pick].elem)
                                                 : do_recv(c, cases[pick].elem);
        chan_unlock(c);
        cases[pick].result = r; /* 0 or -EPIPE: it was ready */
        return (int)pick;
    }
    if (dflt >= 0) {
        cases[dflt].result = 0;
        return dflt;
    }

    /* Nothing ready: a waiter on every channel, all sharing one done record. */
    chan_waiter small[STACK_CASES], *ws = small;
    if (n > STACK_CASES) {
        ws = weft__malloc(w, n * sizeof *ws);
        if (!ws)
            return -ENOMEM;
    }
    wait_done d = {0};
    for (size_t i = 0; i < n; i++) {
        ws[i] = (chan_waiter){.elem = cases[i].elem, .done = &d, .index = (int)i};
        weft__list_init(&ws[i].link);
        weft_chan *c = cases[i].chan;
        if (!c)
            continue;
        chan_lock(c);
        weft__list_push_back(cases[i].op == WEFT_CASE_SEND ? &c->sendq : &c->recvq, &ws[i].link);
        chan_unlock(c);
    }
    int r = wait_cases(w, t, &d, ws, n, deadline);
    if (ws != small)
        weft__free(w, ws);
    if (r >= 0)
        cases[r].result = d.result;
    return r;
}
