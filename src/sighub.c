/* The fan-out of signal arrivals to every watch of a signal (sighub.h). */
#include <errno.h>
#include <stdbool.h>

#include "sighub.h"

/* One hub for the process, not one per runtime: the kernel hands a process-directed signal to
 * one signalfd reader, whichever runtime that reader is in, so the watches of several
 * runtimes (each on its own thread) must share one reader and its fan-out for each of them
 * to get every arrival, as every loop's handler does in libuv (test-signal-multiple-loops)
 * and every runtime's listener in Tokio. With a hub per runtime, the runtime whose reader
 * read first took the arrival and the others never saw it (found by test_ported_net). The
 * semaphores it releases belong to tasks of any runtime: weft_sem_release is any thread's. */
static weft__sighub process_hub = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t process_hub_once = PTHREAD_ONCE_INIT;

static void process_hub_clear(void)
{
    for (int i = 0; i < NSIG; i++) {
        weft__list_init(&process_hub.subs[i]);
        process_hub.reader[i] = NULL;
    }
}

/* In a fork()'s child only the forking thread goes on: the parent's watches are not there,
 * but their records would stay subscribed, one of them each signal's reader, and the watch of
 * a runtime the child starts would wait for units that reader never hands out. The child
 * starts with an empty hub and a free lock (a thread of the parent may have held it at the
 * fork). */
static void process_hub_reset_in_child(void)
{
    pthread_mutex_init(&process_hub.lock, NULL);
    process_hub_clear();
}

static void process_hub_init(void)
{
    process_hub_clear();
    pthread_atfork(NULL, NULL, process_hub_reset_in_child);
}

weft__sighub *weft__sighub_process(void)
{
    pthread_once(&process_hub_once, process_hub_init);
    return &process_hub;
}

void weft__sighub_join(weft__sighub *h, weft__sigsub *s, int sig)
{
    s->sig = sig;
    s->role_tokens = 0;
    s->units = (weft_sem)WEFT_SEM_INIT(0);
    pthread_mutex_lock(&h->lock);
    weft__list_push_back(&h->subs[sig], &s->link);
    pthread_mutex_unlock(&h->lock);
}

void weft__sighub_leave(weft__sighub *h, weft__sigsub *s)
{
    pthread_mutex_lock(&h->lock);
    weft__list_remove(&s->link);
    if (h->reader[s->sig] == s) {
        h->reader[s->sig] = NULL;
        weft__list *first = h->subs[s->sig].next;
        if (first != &h->subs[s->sig]) {
            weft__sigsub *next = weft__container_of(first, weft__sigsub, link);
            h->reader[s->sig] = next;
            next->role_tokens++;
            weft_sem_release(&next->units, 1); /* does not block: fine under the lock */
        }
    }
    pthread_mutex_unlock(&h->lock);
}

/* A unit s took: a role token (true: nothing to deliver) or an arrival. */
static bool took_role(weft__sighub *h, weft__sigsub *s)
{
    pthread_mutex_lock(&h->lock);
    bool role = s->role_tokens > 0;
    if (role)
        s->role_tokens--;
    pthread_mutex_unlock(&h->lock);
    return role;
}

/* Whether s reads the signal: it is the reader, or becomes it when there is none. */
static bool is_reader(weft__sighub *h, weft__sigsub *s)
{
    pthread_mutex_lock(&h->lock);
    if (!h->reader[s->sig])
        h->reader[s->sig] = s;
    bool r = h->reader[s->sig] == s;
    pthread_mutex_unlock(&h->lock);
    return r;
}

/* One arrival, read by s: a unit to every other subscriber of the signal. */
static void fan_out(weft__sighub *h, const weft__sigsub *s)
{
    pthread_mutex_lock(&h->lock);
    for (weft__list *n = h->subs[s->sig].next; n != &h->subs[s->sig]; n = n->next) {
        weft__sigsub *o = weft__container_of(n, weft__sigsub, link);
        if (o != s)
            weft_sem_release(&o->units, 1);
    }
    pthread_mutex_unlock(&h->lock);
}

int weft__sighub_next(weft__sighub *h, weft__sigsub *s)
{
    for (;;) {
        /* Units first: arrivals counted to s before it became the reader are delivered
         * before it reads again. */
        if (weft_sem_try_acquire(&s->units) == 0) {
            if (took_role(h, s))
                continue;
            return 1;
        }
        if (is_reader(h, s)) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, s->sig);
            int r = weft_signal_wait(&set, WEFT_FOREVER);
            if (r < 0)
                return r;
            fan_out(h, s);
            return 1;
        }
        int r = weft_sem_acquire(&s->units, WEFT_FOREVER);
        if (r < 0)
            return r;
        if (!took_role(h, s))
            return 1;
    }
}
