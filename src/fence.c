/* The asymmetric fence of a cancel (fence.h). */
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "test_env.h"
#include "fence.h"
#include "sys.h"

bool weft__fence_setup(weft__fence *f)
{
    f->membarrier = false;
#ifdef WEFT_TESTING
    f->pause_ns = weft__test_env("WEFT_TEST_CANCEL_PAUSE_NS", 1);
    if (getenv("WEFT_TEST_NO_MEMBARRIER")) /* the fallback's own test */
        return true;
#endif
    /* Uncounted (NULL record): no worker runs yet. */
    int cmds = weft__sys_membarrier(NULL, MEMBARRIER_CMD_QUERY);
    if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        weft__sys_membarrier(NULL, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        f->membarrier = true;
    return !f->membarrier;
}

void weft__fence_cancel(const weft__fence *f)
{
    /* Registered, the command cannot fail: a failure would be a kernel that took the
     * registration back, and the fence below is then the best left. */
    if (!f->membarrier || weft__sys_membarrier(NULL, MEMBARRIER_CMD_PRIVATE_EXPEDITED) < 0)
        atomic_thread_fence(memory_order_seq_cst);
#ifdef WEFT_TESTING
    if (f->pause_ns > 0) { /* a cancel preempted between its fence and its look at the word */
        struct timespec ts = {(time_t)(f->pause_ns / 1000000000), (long)(f->pause_ns % 1000000000)};
        nanosleep(&ts, NULL);
    }
#endif
}
