/* The shared mode and the revocation of a biased lock (bias_lock.h). */
#include <errno.h>
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
static WEFT_COLD void bias_revoke(weft__bias *b)
{
    atomic_store_explicit(&b->owner, NULL, memory_order_relaxed);
    b->never = true;
    /* Biased only where the owner's runtime registered the process for this command
     * (worker.h's bias_after), and a registered command fails only for want of memory for
     * its CPU mask (kernels built with CPUMASK_OFFSTACK): tried again then, since going on
     * without the fence could let the owner's plain store of `busy` come too late. */
    int r;
    while ((r = weft__sys_membarrier(NULL, MEMBARRIER_CMD_PRIVATE_EXPEDITED)) == -ENOMEM ||
           r == -EINTR || r == -EAGAIN)
        sched_yield();
    /* acquire: the owner's last section (its release of `busy`) happens before ours. */
    for (unsigned spins = 0; atomic_load_explicit(&b->busy, memory_order_acquire);)
        if (++spins % 128 == 0)
            sched_yield(); /* the owner's thread was preempted inside its section */
        else
            weft__cpu_relax();
}

void weft__bias_other(weft__bias *b, weft__worker *w)
{
    weft__worker *owner = atomic_load_explicit(&b->owner, memory_order_relaxed);
    if (owner != NULL && owner != w) {
        bias_revoke(b);
        return;
    }
    if (w && w->bias_after == 0) { /* this worker's runtime cannot revoke: never biased */
        b->never = true;
        return;
    }
    if (b->last != NULL && ++b->breaks >= WEFT__BIAS_MAX_BREAKS) {
        b->never = true;
        return;
    }
    b->last = w; /* a plain thread (NULL) starts no streak */
    b->streak = 1;
    if (w && b->streak >= w->bias_after)
        atomic_store_explicit(&b->owner, w, memory_order_relaxed);
}
