/* The shared mode and the revocation of a biased lock (bias_lock.h). */
#include <linux/membarrier.h>
#include <sched.h>

#include "bias_lock.h"
#include "sys.h"
#include "util/spinlock.h"
#include "worker.h"

/* Called with `spin` held, by a thread that is not the owner's: takes the bias back for
 * good. The owner is never blocked by this (it never waits for `spin` while it holds the
 * lock biased: a select takes its channels' locks in address order, and a revocation is part
 * of taking one of them), so the wait below ends once the owner's section does. */
static WEFT_COLD void bias_revoke(weft__bias_lock *l)
{
    atomic_store_explicit(&l->owner, NULL, memory_order_relaxed);
    l->never = true;
    /* Biased only where the owner's runtime registered the process for this command
     * (worker.h's bias_after), and a registered command does not fail. */
    (void)weft__sys_membarrier(NULL, MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    /* acquire: the owner's last section (its release of `busy`) happens before ours. */
    for (unsigned spins = 0; atomic_load_explicit(&l->busy, memory_order_acquire);)
        if (++spins % 128 == 0)
            sched_yield(); /* the owner's thread was preempted inside its section */
        else
            weft__cpu_relax();
}

_Atomic uint32_t *weft__bias_acquire_shared(weft__bias_lock *l, weft__worker *w)
{
    weft__spin_lock(&l->spin);
    weft__worker *owner = atomic_load_explicit(&l->owner, memory_order_relaxed);
    if (weft_unlikely(owner != NULL)) {
        if (owner != w)
            bias_revoke(l);
        return &l->spin;
    }
    if (l->never)
        return &l->spin;
    if (!w || w->bias_after == 0) {
        l->last = NULL; /* a plain thread (or a worker that never biases) breaks the streak */
        return &l->spin;
    }
    if (l->last != w) {
        l->last = w;
        l->streak = 0;
    }
    /* Biased from the next acquisition on: this one releases `spin`. Set by the owner's own
     * thread, so its fast path reads what it wrote; `spin`'s release publishes it to the
     * others, whose next acquisition then revokes it. */
    if (++l->streak >= w->bias_after)
        atomic_store_explicit(&l->owner, w, memory_order_relaxed);
    return &l->spin;
}
