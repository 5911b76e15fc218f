/* Coroutine stacks (stack.c): mmap'd, guarded or carved from slabs with canaries, pooled per
 * worker by size class. */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include "internal.h"
#include "eh_state.h"
#include "hooks.h"

/* The PROT_NONE region below each guarded stack. 256 KiB: a C frame larger than the guard
 * can jump over it into whatever lies below, and frames of tens of KiB are common enough
 * (a 64 KiB buffer on the stack, PATH_MAX arrays, big structs); 256 KiB catches any frame up
 * to 256 KiB even when it starts right at the bottom of the stack. It costs address space
 * only (never committed, one VMA however wide). Code built with -fstack-clash-protection
 * probes each page of a large frame and so never jumps a guard at all. */
#define WEFT__GUARD_BYTES ((size_t)256 * 1024)

/* The canary zone of slab stacks: CANARY_BYTES of known words right below each carved
 * stack's lowest address (the top of the neighbour below, or the slab's first page), checked
 * whenever the task switches out. Dense over 128 bytes: a frame chain of frames up to 128
 * bytes writes at least a return address inside it, wherever it crosses. It sits in a page
 * that is committed anyway (the neighbour's top page holds that neighbour's descriptor), so
 * the canary costs no memory. */
#define WEFT__CANARY_BYTES ((size_t)128)

/* A stack's descriptor lives at the top of its own mapping, so pooling needs no malloc.
 * The usable stack is [lo, hi), where hi is the descriptor itself (weft__stack_hi). It fills
 * one 64-byte line (stack.c checks it). owner: worker. */
struct weft__stack {
    weft__stack *next; /* pool link */
    char *lo;          /* the usable range's bottom */
    char *map;         /* mapping start (guard included), or slab it was carved from */
    uint32_t map_size; /* a stack of 1 GiB, the largest, and its guard fit */
    uint32_t size;     /* its size class's bytes */
    uint8_t guarded;   /* a WEFT__GUARD_BYTES PROT_NONE region sits right below lo */
    uint8_t slab;      /* carved from a slab: freed with it; a canary zone sits below lo */
    uint8_t cls;       /* index of its size class */
    unsigned vg_id;    /* valgrind stack id */
    void *fiber;       /* TSan fiber of the tasks run on it, kept while pooled (NULL without) */
    /* The C++ exception-handling record of the task running on it while that task is
     * switched out (eh_state.h; scheduler.c): here rather than in the task record, which
     * stays within 160 bytes; only a task with a stack can be switched out mid-handler.
     * Zero in a fresh stack (stack.c's describe), and cleared by the last switch of a task
     * that ended (scheduler.c's switch_general). owner: worker. */
    weft__eh_state eh;
};

/* The top of s's usable range: its descriptor starts there. */
static inline char *weft__stack_hi(const weft__stack *s)
{
    return (char *)s;
}

/* Size classes: every request is rounded up to the next of 2^k * {4,5,6,7}/4 for k = 14
 * (16 KiB, WEFT_STACK_MIN) .. 29, and 2^30 (1 GiB, the largest stack), 65 classes in all,
 * so that any size a program asks for has a class and its stacks are reused (at most 25%
 * more address space than asked, never more memory: untouched pages are never committed). */
#define WEFT__STACK_CLASSES 65

/* The worker's stack part. owner: worker. */
typedef struct weft__stack_pool {
    struct {
        weft__stack *free; /* warm: pages still committed */
        size_t nfree;
        weft__stack *cold;       /* trimmed: pages given back, reused after the warm ones */
        struct weft__slab *slab; /* the slab stacks of this class are carved from */
    } cls[WEFT__STACK_CLASSES];
    struct weft__slab *slabs; /* every slab, freed at shutdown */
    size_t nguarded;          /* guarded stacks in existence (each costs 2 VMAs) */
    size_t guard_limit;       /* from vm.max_map_count / 4 */
    /* Warm stacks: bound to tasks or pooled (nwarm), and the pooled ones (npooled); the
     * stacks bound to tasks are the difference (weft__stack_nlive). A task's first run and
     * its end move a stack between the two without touching nwarm, so they count one thing,
     * not two. */
    size_t nwarm;
    size_t npooled;
    /* Their sizes in bytes, in the same way (address space: only the pages a task touched
     * are committed), for the metrics (WEFT_COUNT). */
    size_t bytes_warm, bytes_pooled;
    size_t ncold;
    size_t page;
    size_t pool_max; /* warm stacks kept beyond need (the configuration's stack_pool_max) */
    int guard_mode;  /* WEFT_GUARD_* (the configuration's) */
    /* The size last asked for and its class (0: none yet), so that the common spawn (every
     * task of the default size) finds its class without computing it (weft__stack_alloc). */
    size_t memo_size;
    unsigned memo_cls;
} weft__stack_pool;

void weft__stack_init(weft__worker *w, int guard_mode, size_t pool_max);
/* A stack of at least `size` bytes; guarded unless `noguard` or the guard mode says
 * otherwise. Returns 0 or -ENOMEM. */
int weft__stack_alloc(weft__worker *w, size_t size, bool noguard, weft__stack **out);
/* weft__hook_stack_reuse for s, out of line (see weft__hook_stack_reuse_wanted). */
void weft__stack_reuse_hooks(weft__stack *s);
/* The hot case of weft__stack_alloc, inline for the first run of a task: a warm guarded stack
 * of the size asked for last, or NULL (then call weft__stack_alloc). It is what
 * weft__stack_alloc would pick too: the head of that class's warm list, and a guarded stack
 * suits any request. A first size, an empty list or an unguarded head go the long way. */
static inline weft__stack *weft__stack_pop_warm(weft__stack_pool *p, size_t size)
{
    weft__stack *s;
    if (weft_likely(size == p->memo_size) && (s = p->cls[p->memo_cls].free) != NULL &&
        weft_likely(s->guarded)) {
        p->cls[p->memo_cls].free = s->next;
        p->cls[p->memo_cls].nfree--;
        p->npooled--;
        WEFT_COUNT(p->bytes_pooled -= (size_t)(weft__stack_hi(s) - s->lo));
        if (weft__hook_stack_reuse_wanted(s->vg_id))
            weft__stack_reuse_hooks(s);
        return s;
    }
    return NULL;
}
/* Gives a stack a finished task was bound to back to its class's warm list (the head, so
 * that the next task of that size gets it, still in the cache). Inline: every stackful task's
 * end. */
static inline void weft__stack_free(weft__stack_pool *p, weft__stack *s)
{
    s->next = p->cls[s->cls].free;
    p->cls[s->cls].free = s;
    p->cls[s->cls].nfree++;
    p->npooled++;
    WEFT_COUNT(p->bytes_pooled += (size_t)(weft__stack_hi(s) - s->lo));
}

/* Stacks bound to tasks, and their bytes (see nwarm). */
static inline size_t weft__stack_nlive(const weft__stack_pool *p)
{
    return p->nwarm - p->npooled;
}
static inline size_t weft__stack_bytes_live(const weft__stack_pool *p)
{
    return p->bytes_warm - p->bytes_pooled;
}
/* A started task handed to another worker takes its (guarded) stack along: `from` counts it
 * out on its thread, `to` in on its own (steal.c). Its pages stay where they are; the pool it
 * returns to is the one of the worker the task finishes on. */
void weft__stack_give(weft__worker *from, const weft__stack *s);
void weft__stack_take(weft__worker *to, const weft__stack *s);
/* A thief that took started tasks sends as many warm guarded stacks of their classes back
 * (steal.c), so that moves one way (one worker spawns, another finishes) do not drain the
 * spawner's pool into the thief's: lend pops one of class `cls` from w's pool (NULL if its
 * head is not a guarded stack), add puts one into w's pool; each on its worker's thread. */
weft__stack *weft__stack_lend(weft__worker *w, unsigned cls);
void weft__stack_pool_add(weft__worker *w, weft__stack *s);
/* Returns pooled stacks beyond pool_max to the kernel, at most max_ops of them; returns how
 * many are still in excess. Called by the loop when it is about to block. */
size_t weft__stack_trim(weft__worker *w, size_t max_ops);
void weft__stack_fini(weft__worker *w);

/* The canary word, repeated over the whole zone. */
#define WEFT__CANARY ((uint64_t)0x77656674DEADC0DEull)
typedef uint64_t __attribute__((may_alias)) weft__canary_word;

/* 16-byte vectors (SSE2 on x86_64, NEON on aarch64: both baseline) for the check. */
typedef uint64_t __attribute__((vector_size(16), may_alias)) weft__canary_vec;

/* Checks the canary zone below an unguarded (slab) stack: 0 when intact or when the stack is
 * guarded, -1 when something wrote over it. In every build: an overflow of a slab stack runs
 * into its neighbour's. Eight 16-byte loads from two cache lines, XORed with the pattern and
 * OR-reduced into one branch (~25 instructions). */
static inline int weft__stack_canary_check(const weft__stack *s)
{
    if (weft_likely(s->guarded))
        return 0;
    const weft__canary_vec *z = (const weft__canary_vec *)(s->lo - WEFT__CANARY_BYTES);
    const weft__canary_vec c = {WEFT__CANARY, WEFT__CANARY};
    weft__canary_vec bad = (z[0] ^ c) | (z[1] ^ c) | (z[2] ^ c) | (z[3] ^ c) | (z[4] ^ c) |
                           (z[5] ^ c) | (z[6] ^ c) | (z[7] ^ c);
    _Static_assert(WEFT__CANARY_BYTES == 8 * sizeof(weft__canary_vec), "eight vectors");
    return (bad[0] | bad[1]) ? -1 : 0;
}

#endif
