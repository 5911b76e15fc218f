/* Coroutine stacks: mmap'd (the kernel commits pages only when touched), with a PROT_NONE
 * guard region (WEFT__GUARD_BYTES) below each guarded stack, pooled per worker by size class
 * (every size has one: see stack.h) so that spawn/exit in steady state makes no mmap or munmap.
 *
 * A guarded stack costs two VMAs (the guard and the stack), and the kernel allows
 * vm.max_map_count (65530 by default) per process. So under WEFT_GUARD_AUTO at most a quarter
 * of that limit is used for guarded stacks; past it, stacks are carved unguarded from slabs
 * of 4 MiB (one VMA for many stacks), which is what lets a million coroutines live at once.
 * Below every carved stack lies a canary zone (the top of the stack carved before it, or the
 * slab's first page), which the scheduler checks each time the task switches out, in every
 * build: it lives in pages that are committed anyway, so it costs no memory.
 * Each stack's descriptor lives in the top bytes of its own mapping.
 *
 * Freeing a stack never makes a syscall: it goes back to its class's warm list. When the
 * pool holds more than stack_pool_max, the loop trims the excess while it is idle (guarded
 * stacks are unmapped, slab stacks have their pages given back, all but the top one, and move
 * to the cold list, from which they are reused after the warm ones). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"
#include "runtime.h"
#include "stack.h"
#include "worker.h"

#define SLAB_BYTES ((size_t)4 << 20) /* 4 MiB: 64 default stacks per VMA */
#define DESC_BYTES ((size_t)64)      /* the descriptor's room at the top of a stack */
#define TRIM_BATCH 256               /* the most stacks one weft__stack_trim gives back */
_Static_assert(sizeof(weft__stack) <= DESC_BYTES, "a stack's descriptor fits its room");
_Static_assert(((uint64_t)1 << 30) + WEFT__GUARD_BYTES <= UINT32_MAX, "a map size fits 32 bits");

/* A slab: its first page holds only the canary zone of the first stack carved from it (at
 * the page's top); then come `cap` stacks of `stack_bytes`, each ending in its descriptor and
 * the canary zone of the stack carved above it. */
struct weft__slab {
    struct weft__slab *next;
    char *map;
    size_t map_size;
    size_t stack_bytes; /* bytes per carved stack */
    size_t ncarved, cap;
};

static size_t page_size(weft__worker *w)
{
    if (!w->stacks.page) {
        long p = sysconf(_SC_PAGESIZE);
        w->stacks.page = p > 0 ? (size_t)p : 4096;
    }
    return w->stacks.page;
}

/* The size class of `size` (16 KiB .. 1 GiB): the smallest 2^k * (4 + j) / 4 >= size. */
static unsigned class_of(size_t size, size_t *class_bytes)
{
    if (size <= WEFT_STACK_MIN) {
        *class_bytes = WEFT_STACK_MIN;
        return 0;
    }
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)size); /* 2^k <= size */
    size_t base = (size_t)1 << k;
    /* The step is base / 4 = 2^(k-2) (k >= 14 here): a shift, not a division, at every
     * stack bind. */
    size_t j = (size - base + ((size_t)1 << (k - 2)) - 1) >> (k - 2);
    if (j == 4) {
        k++;
        j = 0;
    }
    *class_bytes = ((size_t)1 << k) + j * ((size_t)1 << k) / 4;
    return (k - 14) * 4 + (unsigned)j;
}

WEFT_COLD static size_t read_guard_limit(weft__worker *w)
{
    size_t max_maps = 65530;
    int fd = weft__sys_open(&w->sys, "/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
        char buf[32];
        ssize_t n = weft__sys_read(&w->sys, fd, buf, sizeof buf - 1);
        weft__sys_close(&w->sys, fd);
        if (n > 0) {
            buf[n] = 0;
            unsigned long v = strtoul(buf, NULL, 10);
            if (v > 0)
                max_maps = v;
        }
    }
    /* A quarter of the map count for the runtime, shared evenly by its workers: each guarded
     * stack takes two mappings, and with a quarter each, two workers of a stealing runtime
     * that spread a fan-out between them ran the process out of mappings (mmap: ENOMEM). */
    return max_maps / 4 / w->rt->nworkers;
}

static void canary_fill(char *zone)
{
    weft__canary_word *z = (weft__canary_word *)zone;
    for (size_t i = 0; i < WEFT__CANARY_BYTES / sizeof *z; i++)
        z[i] = WEFT__CANARY;
}

/* Fills in the descriptor at the top of [base, base + bytes - top_reserve). */
static weft__stack *describe(char *base, size_t bytes, size_t top_reserve, char *map,
                             size_t map_size, unsigned cls, int guarded, int slab)
{
    weft__stack *s = (weft__stack *)(base + bytes - top_reserve - DESC_BYTES);
    s->next = NULL;
    s->lo = base;
    s->map = map;
    s->map_size = (uint32_t)map_size; /* at most 1 GiB and a guard (the largest class) */
    s->size = (uint32_t)bytes;
    s->guarded = (uint8_t)guarded;
    s->slab = (uint8_t)slab;
    s->cls = (uint8_t)cls;
    s->vg_id = weft__hook_stack_register(s->lo, weft__stack_hi(s));
    s->fiber = NULL;
    s->eh = (weft__eh_state){NULL, 0};
    return s;
}

static int new_guarded(weft__worker *w, size_t size, unsigned cls, weft__stack **out)
{
    size_t map_size = size + WEFT__GUARD_BYTES;
    void *p = NULL;
    int r = weft__sys_mmap(&w->sys, &p, map_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    w->stats.nmmaps++;
    if (r < 0)
        return -ENOMEM;
    char *map = p;
    if (weft__sys_mprotect(&w->sys, map, WEFT__GUARD_BYTES, PROT_NONE) < 0) {
        weft__sys_munmap(&w->sys, map, map_size);
        return -ENOMEM; /* the map count ran out: ENOMEM is what the kernel says too */
    }
    w->stacks.nguarded++;
    *out = describe(map + WEFT__GUARD_BYTES, size, 0, map, map_size, cls, 1, 0);
    return 0;
}

static int new_carved(weft__worker *w, size_t size, unsigned cls, weft__stack **out)
{
    struct weft__slab *sl = w->stacks.cls[cls].slab;
    if (!sl || sl->ncarved == sl->cap) {
        size_t page = page_size(w);
        size_t cap = SLAB_BYTES / size ? SLAB_BYTES / size : 1;
        sl = weft__malloc(w, sizeof *sl);
        if (!sl)
            return -ENOMEM;
        sl->map_size = page + cap * size;
        void *p = NULL;
        int r = weft__sys_mmap(&w->sys, &p, sl->map_size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        w->stats.nmmaps++;
        sl->map = p;
        if (r < 0) {
            weft__free(w, sl);
            return -ENOMEM;
        }
        canary_fill(sl->map + page - WEFT__CANARY_BYTES);
        sl->stack_bytes = size;
        sl->ncarved = 0;
        sl->cap = cap;
        sl->next = w->stacks.slabs;
        w->stacks.slabs = sl;
        w->stacks.cls[cls].slab = sl;
    }
    char *base = sl->map + page_size(w) + sl->ncarved++ * size;
    canary_fill(base + size - WEFT__CANARY_BYTES); /* the zone of the stack carved above */
    *out = describe(base, size, WEFT__CANARY_BYTES, sl->map, 0, cls, 0, 1);
    return 0;
}

/* A pooled stack of class cls, warm first, or NULL; *warm says which list it left (a cold
 * one is warm again once bound: nwarm). */
static weft__stack *pop_pooled(weft__stack_pool *p, unsigned cls, bool want_guard, bool *warm)
{
    weft__stack **list = p->cls[cls].free ? &p->cls[cls].free : &p->cls[cls].cold;
    weft__stack *s = *list;
    if (!s)
        return NULL;
    /* A guarded request takes an unguarded stack only once guards ran out. */
    if (want_guard && !s->guarded && p->nguarded < p->guard_limit)
        return NULL;
    *list = s->next;
    *warm = list == &p->cls[cls].free;
    if (*warm) {
        p->cls[cls].nfree--;
        p->npooled--;
        WEFT_COUNT(p->bytes_pooled -= (size_t)(weft__stack_hi(s) - s->lo));
    } else {
        p->ncold--;
    }
    return s;
}

WEFT_COLD void weft__stack_init(weft__worker *w, int guard_mode, size_t pool_max)
{
    w->stacks.guard_mode = guard_mode;
    w->stacks.pool_max = pool_max;
}

int weft__stack_alloc(weft__worker *w, size_t size, bool noguard, weft__stack **out)
{
    weft__stack_pool *p = &w->stacks;
    bool want_guard = !noguard && p->guard_mode != WEFT_GUARD_NEVER;
    if (!p->guard_limit)
        p->guard_limit = read_guard_limit(w);
    size_t bytes;
    unsigned cls = class_of(size, &bytes);
    p->memo_size = size;
    p->memo_cls = cls;
    bool warm = false;
    weft__stack *s = pop_pooled(p, cls, want_guard, &warm);
    int r = 0;
    if (!s) {
        if (want_guard && p->nguarded < p->guard_limit)
            r = new_guarded(w, bytes, cls, &s);
        else if (want_guard && p->guard_mode == WEFT_GUARD_ALWAYS)
            r = -ENOMEM;
        else
            r = new_carved(w, bytes, cls, &s);
        if (r < 0)
            return r;
    }
    /* Pooled or fresh, it starts clean. A fresh one too: ASan does not clear the shadow of
     * memory that is unmapped, so a stack mapped where an earlier one was (an earlier
     * runtime's) would inherit that one's poisoned redzones. */
    weft__hook_stack_reuse(s->lo, (size_t)(weft__stack_hi(s) - s->lo), s->vg_id);
    if (!warm) { /* fresh, or cold until now */
        p->nwarm++;
        WEFT_COUNT(p->bytes_warm += (size_t)(weft__stack_hi(s) - s->lo));
    }
    *out = s;
    return 0;
}

WEFT_NOINLINE void weft__stack_reuse_hooks(weft__stack *s)
{
    weft__hook_stack_reuse(s->lo, (size_t)(weft__stack_hi(s) - s->lo), s->vg_id);
}

/* A stack leaving the pool for good, or going cold, lets go of its TSan fiber. */
static void drop_fiber(weft__stack *s)
{
    weft__hook_fiber_destroy(s->fiber);
    s->fiber = NULL;
}

void weft__stack_give(weft__worker *from, const weft__stack *s)
{
    weft__stack_pool *p = &from->stacks;
    (void)s; /* read by the byte counts only, which a build without metrics leaves out */
    p->nwarm--;
    p->nguarded--; /* only guarded stacks move (weft__task_movable) */
    WEFT_COUNT(p->bytes_warm -= (size_t)(weft__stack_hi(s) - s->lo));
}

void weft__stack_take(weft__worker *to, const weft__stack *s)
{
    weft__stack_pool *p = &to->stacks;
    (void)s; /* as in weft__stack_give */
    p->nwarm++;
    p->nguarded++;
    WEFT_COUNT(p->bytes_warm += (size_t)(weft__stack_hi(s) - s->lo));
}

weft__stack *weft__stack_lend(weft__worker *w, unsigned cls)
{
    weft__stack_pool *p = &w->stacks;
    weft__stack *s = p->cls[cls].free;
    if (!s || !s->guarded) /* a carved stack belongs to this worker's slab: it stays */
        return NULL;
    p->cls[cls].free = s->next;
    p->cls[cls].nfree--;
    p->npooled--;
    p->nwarm--;
    p->nguarded--;
    WEFT_COUNT(p->bytes_pooled -= (size_t)(weft__stack_hi(s) - s->lo));
    WEFT_COUNT(p->bytes_warm -= (size_t)(weft__stack_hi(s) - s->lo));
    s->next = NULL;
    return s;
}

void weft__stack_pool_add(weft__worker *w, weft__stack *s)
{
    weft__stack_pool *p = &w->stacks;
    p->nguarded++;
    s->next = p->cls[s->cls].free;
    p->cls[s->cls].free = s;
    p->cls[s->cls].nfree++;
    p->npooled++;
    p->nwarm++;
    WEFT_COUNT(p->bytes_pooled += (size_t)(weft__stack_hi(s) - s->lo));
    WEFT_COUNT(p->bytes_warm += (size_t)(weft__stack_hi(s) - s->lo));
}

/* A guarded stack's mapping, noted to be unmapped with its neighbours (unmap_ranges). */
typedef struct map_range {
    char *map;
    size_t size;
} map_range;

static int by_address(const void *a, const void *b)
{
    const map_range *x = a, *y = b;
    return x->map < y->map ? -1 : x->map > y->map;
}

/* Takes s off the books (its tooling records, its guard count) and notes its mapping in r[*n]
 * if it has one of its own. Its descriptor, inside that mapping, is not read again. */
static void retire_stack(weft__worker *w, weft__stack *s, map_range *r, size_t *n)
{
    drop_fiber(s);
    weft__hook_stack_deregister(s->vg_id);
    if (s->guarded) {
        w->stacks.nguarded--;
        weft__hook_stack_unmap(s->lo, (size_t)(weft__stack_hi(s) - s->lo));
        r[(*n)++] = (map_range){s->map, s->map_size};
    }
}

/* Unmaps the n ranges, each run of adjacent ones in one munmap: the kernel places mappings of
 * one size next to each other, so the thousands of stacks a worker may end with (or trim
 * after a burst) go in a few calls, where one munmap each (and a TLB shootdown each, once the
 * process has several threads) took most of a 100,000-task program's time in exit. Only
 * ranges the pool mapped are joined, so the union unmapped is exactly theirs. */
static void unmap_ranges(weft__worker *w, map_range *r, size_t n)
{
    qsort(r, n, sizeof *r, by_address);
    for (size_t i = 0; i < n;) {
        char *lo = r[i].map;
        size_t len = r[i].size;
        for (i++; i < n && r[i].map == lo + len; i++)
            len += r[i].size;
        weft__sys_munmap(&w->sys, lo, len);
    }
}

size_t weft__stack_trim(weft__worker *w, size_t max_ops)
{
    weft__stack_pool *p = &w->stacks;
    size_t page = page_size(w), ops = 0;
    map_range unmaps[TRIM_BATCH]; /* this call's guarded stacks, unmapped together at its end */
    size_t nunmaps = 0;
    if (max_ops > TRIM_BATCH)
        max_ops = TRIM_BATCH;
    for (int i = 0; i < WEFT__STACK_CLASSES && p->npooled > p->pool_max; i++) {
        while (p->cls[i].free && p->npooled > p->pool_max && ops < max_ops) {
            weft__stack *s = p->cls[i].free;
            p->cls[i].free = s->next;
            p->cls[i].nfree--;
            p->npooled--;
            p->nwarm--;
            WEFT_COUNT(p->bytes_pooled -= (size_t)(weft__stack_hi(s) - s->lo));
            WEFT_COUNT(p->bytes_warm -= (size_t)(weft__stack_hi(s) - s->lo));
            ops++;
            if (s->guarded) {
                retire_stack(w, s, unmaps, &nunmaps);
                continue;
            }
            drop_fiber(s);
            /* All but the top page, which holds the descriptor. */
            char *top_page = (char *)((uintptr_t)weft__stack_hi(s) & ~(uintptr_t)(page - 1));
            if (top_page > s->lo)
                weft__sys_madvise(&w->sys, s->lo, (size_t)(top_page - s->lo), MADV_DONTNEED);
            s->next = p->cls[i].cold;
            p->cls[i].cold = s;
            p->ncold++;
        }
    }
    unmap_ranges(w, unmaps, nunmaps);
    return p->npooled > p->pool_max ? p->npooled - p->pool_max : 0;
}

WEFT_COLD void weft__stack_fini(weft__worker *w)
{
    weft__stack_pool *p = &w->stacks;
    size_t count = 0;
    for (int i = 0; i < WEFT__STACK_CLASSES; i++) {
        for (weft__stack *s = p->cls[i].free; s; s = s->next)
            count++;
        for (weft__stack *s = p->cls[i].cold; s; s = s->next)
            count++;
    }
    map_range *ranges = count ? weft__malloc(w, count * sizeof *ranges) : NULL;
    size_t n = 0;
    for (int i = 0; i < WEFT__STACK_CLASSES; i++) {
        weft__stack *lists[2] = {p->cls[i].free, p->cls[i].cold};
        for (int l = 0; l < 2; l++) {
            while (lists[l]) {
                weft__stack *s = lists[l];
                lists[l] = s->next;
                if (ranges) {
                    retire_stack(w, s, ranges, &n);
                } else { /* no memory for the notes: one munmap each */
                    map_range one;
                    size_t k = 0;
                    retire_stack(w, s, &one, &k);
                    unmap_ranges(w, &one, k);
                }
            }
        }
        p->cls[i].free = p->cls[i].cold = NULL;
        p->cls[i].nfree = 0;
        p->cls[i].slab = NULL;
    }
    if (ranges) {
        unmap_ranges(w, ranges, n);
        weft__free(w, ranges);
    }
    p->nwarm -= p->npooled;
    p->bytes_warm -= p->bytes_pooled;
    p->npooled = 0;
    p->bytes_pooled = 0;
    p->ncold = 0;
    while (p->slabs) {
        struct weft__slab *sl = p->slabs;
        p->slabs = sl->next;
        weft__hook_stack_unmap(sl->map, sl->map_size);
        weft__sys_munmap(&w->sys, sl->map, sl->map_size);
        weft__free(w, sl);
    }
}
