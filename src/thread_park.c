/* Plain threads that block on weft's primitives: a stand-in task record per thread, parked on
 * a futex. The state word decides every race exactly as for a task (task.h): the park CASes
 * RUNNING to PARKED, a wake CASes PARKED to READY and then wakes the futex; a deadline that
 * passes CASes PARKED back to RUNNING itself, so a wake and a timeout never both win. The
 * futex is the low half of the state word, which every transition changes (its state bits
 * are there), so a wake between the thread's check and its sleep makes the sleep return at
 * once. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "scheduler.h"
#include "thread_park.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the futex is the low half of the state word: little-endian only"
#endif

/* This thread's stand-in; zero until first used. Thread storage, not a global: each thread
 * has its own, and it goes with the thread. */
static __thread weft_task thread_task;

/* The thread's exit: the locks its stand-in still holds are orphaned (weft__hold), so that
 * none of them names storage that glibc hands to the next thread it creates (a joined
 * thread's stack, thread storage included, is reused): that thread would otherwise pass for
 * their holder. Runs as a pthread key destructor, before the storage goes. */
static void thread_exit(void *p)
{
    weft_task *t = p;
    while (t->holds) {
        weft__hold *h = t->holds;
        t->holds = h->next;
        h->abandon(h, true);
    }
}

static pthread_key_t exit_key;
static bool exit_key_made; /* written once, under exit_once */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void make_exit_key(void)
{
    exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
}

WEFT_NOINLINE weft_task *weft__thread_task(void)
{
    weft_task *t = &thread_task;
    /* Non-inlined, and the asm hides the address: no caller keeps a TLS address across a
     * park (a stand-in never moves, but the rule is the same everywhere). */
    __asm__ volatile("" : "+r"(t));
    if (weft_unlikely(atomic_load_explicit(&t->word, memory_order_relaxed) == 0)) {
        /* Epoch 1: the zero word is "not made yet", and an epoch-0 waker is never issued. */
        atomic_store_explicit(&t->word, WEFT__WORD(1, WEFT__RUNNING), memory_order_relaxed);
        memcpy(t->name, "thread", sizeof "thread");
        /* Without the key (none left: PTHREAD_KEYS_MAX) an exit leaves its holds as they
         * are, naming the storage: the holder is then the next thread to get it. */
        pthread_once(&exit_once, make_exit_key);
        if (exit_key_made)
            pthread_setspecific(exit_key, t);
    }
    return t;
}

static _Atomic uint32_t *futex_word(weft_task *t)
{
    return (_Atomic uint32_t *)(void *)&t->word; /* the low half (little-endian) */
}

/* Sleeps while the low half of t's word is `val`, at most until `deadline` (CLOCK_MONOTONIC
 * ns, or WEFT_FOREVER). Returns -ETIMEDOUT once the deadline has passed, else 0 (woken,
 * changed, interrupted: the caller looks at the word again). */
static int futex_sleep(weft_task *t, uint32_t val, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline != WEFT_FOREVER) {
        ts.tv_sec = (time_t)(deadline / 1000000000);
        ts.tv_nsec = (long)(deadline % 1000000000);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout. */
    int saved = errno; /* the thread's errno is its own: weft leaves it as it found it */
    long r = syscall(SYS_futex, futex_word(t), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, tsp,
                     NULL, FUTEX_BITSET_MATCH_ANY);
    int err = r < 0 ? errno : 0;
    errno = saved;
    return err == ETIMEDOUT ? -ETIMEDOUT : 0;
}

int weft__thread_park(weft_task *t, const weft__wait *wr)
{
    int64_t deadline = wr->uncancellable ? WEFT_FOREVER : wr->deadline;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    uint64_t e = WEFT__EPOCH(word);
    if (deadline != WEFT_FOREVER && deadline <= weft__clock_ns()) {
        if (wr->unlock)
            wr->unlock(wr->lock);
        atomic_store_explicit(&t->word, WEFT__WORD(e + 1, WEFT__RUNNING), memory_order_relaxed);
        return -ETIMEDOUT;
    }
    uint64_t parked = WEFT__WORD(e, WEFT__PARKED);
    /* acq_rel, as a task's park: a waker that saw PARKED under the caller's lock wakes us. */
    bool did_park = WEFT__STATE(word) == WEFT__RUNNING &&
                    atomic_compare_exchange_strong_explicit(
                        &t->word, &word, parked, memory_order_acq_rel, memory_order_acquire);
    if (wr->unlock)
        wr->unlock(wr->lock);
    while (did_park) {
        /* acquire: pairs with the waker's acq_rel CAS to READY, so what it wrote before the
         * wake (a grant, a copied value) is visible once we see the new word. */
        word = atomic_load_explicit(&t->word, memory_order_acquire);
        if (word != parked)
            break; /* READY@e: woken */
        if (futex_sleep(t, (uint32_t)parked, deadline) == -ETIMEDOUT) {
            /* End the park ourselves, unless a wake won the word first. */
            if (atomic_compare_exchange_strong_explicit(&t->word, &parked,
                                                        WEFT__WORD(e + 1, WEFT__RUNNING),
                                                        memory_order_acq_rel, memory_order_acquire))
                return -ETIMEDOUT;
            break;
        }
    }
    /* Woken (READY@e), or never parked (NOTIFIED@e: a wake came first): run again. */
    atomic_store_explicit(&t->word, WEFT__WORD(e + 1, WEFT__RUNNING), memory_order_relaxed);
    return 0;
}

void weft__thread_unpark(weft_task *t)
{
    /* The thread may have seen READY and left already (its stand-in lives on with the
     * thread; if the thread is gone, the wake is a no-op on an address nobody sleeps on:
     * futex waiters must, and weft's do, tolerate a spurious wake). */
    int saved = errno;
    syscall(SYS_futex, futex_word(t), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0);
    errno = saved;
}
