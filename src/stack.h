/* Coroutine stacks (stack.c): mmap'd, guarded, pooled per worker by size class. */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include "internal.h"

/* A stack's descriptor lives at the top of its own mapping, so pooling needs no malloc.
 * The usable stack is [lo, hi); hi is where the descriptor starts. owner: worker. */
struct weft__stack {
    weft__stack *next; /* pool link */
    char *lo, *hi;     /* usable range */
    char *map;         /* mapping start (guard page included), or slab it was carved from */
    size_t map_size;
    uint32_t size;    /* usable size class */
    uint8_t guarded;  /* a PROT_NONE page sits right below lo */
    uint8_t slab;     /* carved from a slab: freed with it */
    unsigned vg_id;   /* valgrind stack id */
    void *fiber;      /* the TSan fiber of the task running on it (NULL without TSan) */
};

#define WEFT__STACK_CLASSES 8

/* The worker's stack part. owner: worker. */
typedef struct weft__stack_pool {
    struct {
        size_t size;
        weft__stack *free; /* warm: pages still committed */
        size_t nfree;
        weft__stack *cold; /* trimmed: pages given back, reused after the warm ones */
    } cls[WEFT__STACK_CLASSES];
    struct weft__slab *slabs; /* every slab, freed at shutdown */
    size_t nguarded;          /* guarded stacks in existence (each costs 2 VMAs) */
    size_t guard_limit;       /* from vm.max_map_count / 4 */
    size_t nlive;             /* stacks bound to tasks */
    size_t npooled;           /* warm pooled stacks */
    size_t ncold;
    size_t page;
    size_t pool_max; /* warm stacks kept beyond need (the configuration's stack_pool_max) */
    int guard_mode;  /* WEFT_GUARD_* (the configuration's) */
} weft__stack_pool;

void weft__stack_init(weft__worker *w, int guard_mode, size_t pool_max);
/* A stack of `size` bytes; guarded unless `noguard` or the guard mode says otherwise.
 * Returns 0 or -ENOMEM. */
int weft__stack_alloc(weft__worker *w, size_t size, bool noguard, weft__stack **out);
void weft__stack_free(weft__worker *w, weft__stack *s);
/* Returns pooled stacks beyond pool_max to the kernel, at most max_ops of them; returns how
 * many are still in excess. Called by the loop when it is about to block. */
size_t weft__stack_trim(weft__worker *w, size_t max_ops);
void weft__stack_fini(weft__worker *w);
/* Debug builds write a canary at the bottom of each unguarded stack and check it at every
 * park and exit. Release builds do not: it would commit a second page per stack. */
#ifndef NDEBUG
#define WEFT__STACK_CANARY 1
#else
#define WEFT__STACK_CANARY 0
#endif
/* Writes the canary at the bottom of an unguarded stack / checks it (0 = intact). */
void weft__stack_canary_set(weft__stack *s);
int weft__stack_canary_check(const weft__stack *s);

#endif
