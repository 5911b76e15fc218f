/* Coroutine stacks: mmap'd (the kernel commits pages only when touched), with a PROT_NONE
 * guard page below each guarded stack, pooled per worker by size class so that spawn/exit in
 * steady state makes no mmap or munmap.
 *
 * A guarded stack costs two VMAs (the guard and the stack), and the kernel allows
 * vm.max_map_count (65530 by default) per process. So under WEFT_GUARD_AUTO at most a quarter
 * of that limit is used for guarded stacks; past it, stacks are carved unguarded from slabs
 * of 4 MiB (one VMA for many stacks), which is what lets a million coroutines live at once.
 * In debug builds unguarded stacks carry a canary word at their lowest address, checked at
 * every park and exit (not in release builds: writing it commits a second page per stack).
 * Each stack's descriptor lives in the top bytes of its own mapping.
 *
 * Freeing a stack never makes a syscall: it goes back to its class's warm list. When the
 * pool holds more than stack_pool_max, the loop trims the excess while it is idle (guarded
 * stacks are unmapped, slab stacks have their pages given back and move to the cold list,
 * from which they are reused after the warm ones). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"
#include "stack.h"
#include "worker.h"

#define SLAB_BYTES ((size_t)4 << 20) /* 4 MiB: 64 default stacks per VMA */
#define DESC_BYTES ((size_t)64)      /* the descriptor's room at the top of a stack */
#define CANARY     ((uint64_t)0x77656674DEADC0DEull)

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
    return max_maps / 4;
}

/* Fills in the descriptor at the top of [map + guard, map + guard + bytes). */
static weft__stack *describe(char *base, size_t bytes, char *map, size_t map_size, size_t size,
                             int guarded, int slab)
{
    weft__stack *s = (weft__stack *)(base + bytes - DESC_BYTES);
    s->next = NULL;
    s->lo = base;
    s->hi = (char *)s;
    s->map = map;
    s->map_size = map_size;
    s->size = (uint32_t)size;
    s->guarded = (uint8_t)guarded;
    s->slab = (uint8_t)slab;
    s->vg_id = weft__hook_stack_register(s->lo, s->hi);
    s->fiber = NULL;
    return s;
}

static int new_guarded(weft__worker *w, size_t size, weft__stack **out)
{
    size_t page = page_size(w);
    size_t map_size = size + page;
    void *p = NULL;
    int r = weft__sys_mmap(&w->sys, &p, map_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    w->stats.nmmaps++;
    if (r < 0)
        return -ENOMEM;
    char *map = p;
    if (weft__sys_mprotect(&w->sys, map, page, PROT_NONE) < 0) {
        weft__sys_munmap(&w->sys, map, map_size);
        return -ENOMEM; /* the map count ran out: ENOMEM is what the kernel says too */
    }
    w->stacks.nguarded++;
    *out = describe(map + page, size, map, map_size, size, 1, 0);
    return 0;
}

static int new_carved(weft__worker *w, size_t size, weft__stack **out)
{
    struct weft__slab *sl = w->stacks.slabs;
    if (!sl || sl->stack_bytes != size || sl->ncarved == sl->cap) {
        size_t cap = SLAB_BYTES / size ? SLAB_BYTES / size : 1;
        sl = weft__malloc(w, sizeof *sl);
        if (!sl)
            return -ENOMEM;
        sl->map_size = cap * size;
        void *p = NULL;
        int r = weft__sys_mmap(&w->sys, &p, sl->map_size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        w->stats.nmmaps++;
        sl->map = p;
        if (r < 0) {
            weft__free(w, sl);
            return -ENOMEM;
        }
        sl->stack_bytes = size;
        sl->ncarved = 0;
        sl->cap = cap;
        sl->next = w->stacks.slabs;
        w->stacks.slabs = sl;
    }
    char *base = sl->map + sl->ncarved++ * size;
    *out = describe(base, size, sl->map, 0, size, 0, 1);
    return 0;
}

void weft__stack_canary_set(weft__stack *s)
{
    memcpy(s->lo, &(uint64_t){CANARY}, sizeof(uint64_t));
}

int weft__stack_canary_check(const weft__stack *s)
{
    uint64_t v;
    memcpy(&v, s->lo, sizeof v);
    return v == CANARY ? 0 : -1;
}

static weft__stack *pop_pooled(weft__stack_pool *p, size_t size, bool want_guard)
{
    for (int i = 0; i < WEFT__STACK_CLASSES; i++) {
        if (p->cls[i].size != size)
            continue;
        weft__stack **list = p->cls[i].free ? &p->cls[i].free : &p->cls[i].cold;
        weft__stack *s = *list;
        if (!s)
            return NULL;
        /* A guarded request takes an unguarded stack only once guards ran out. */
        if (want_guard && !s->guarded && p->nguarded < p->guard_limit)
            return NULL;
        *list = s->next;
        if (list == &p->cls[i].free) {
            p->cls[i].nfree--;
            p->npooled--;
        } else {
            p->ncold--;
        }
        return s;
    }
    return NULL;
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
    weft__stack *s = pop_pooled(p, size, want_guard);
    int r = 0;
    if (s) {
        weft__hook_stack_reuse(s->lo, (size_t)(s->hi - s->lo));
    } else if (want_guard && p->nguarded < p->guard_limit) {
        r = new_guarded(w, size, &s);
    } else if (want_guard && p->guard_mode == WEFT_GUARD_ALWAYS) {
        r = -ENOMEM;
    } else {
        r = new_carved(w, size, &s);
    }
    if (r < 0)
        return r;
    p->nlive++;
#if WEFT__STACK_CANARY
    if (!s->guarded)
        weft__stack_canary_set(s);
#endif
    *out = s;
    return 0;
}

static void unmap_stack(weft__worker *w, weft__stack *s)
{
    weft__hook_stack_deregister(s->vg_id);
    if (s->guarded) {
        w->stacks.nguarded--;
        weft__sys_munmap(&w->sys, s->map, s->map_size);
    }
}

void weft__stack_free(weft__worker *w, weft__stack *s)
{
    weft__stack_pool *p = &w->stacks;
    p->nlive--;
    int slot = -1;
    for (int i = 0; i < WEFT__STACK_CLASSES && slot < 0; i++)
        if (p->cls[i].size == s->size)
            slot = i;
    for (int i = 0; i < WEFT__STACK_CLASSES && slot < 0; i++)
        if (p->cls[i].size == 0 && !p->cls[i].free && !p->cls[i].cold) {
            p->cls[i].size = s->size;
            slot = i;
        }
    if (slot < 0) {
        /* A ninth size class: guarded stacks go back to the kernel, slab ones stay in their
         * slab until shutdown. */
        if (s->guarded)
            unmap_stack(w, s);
        return;
    }
    s->next = p->cls[slot].free;
    p->cls[slot].free = s;
    p->cls[slot].nfree++;
    p->npooled++;
}

size_t weft__stack_trim(weft__worker *w, size_t max_ops)
{
    weft__stack_pool *p = &w->stacks;
    size_t page = page_size(w), ops = 0;
    for (int i = 0; i < WEFT__STACK_CLASSES && p->npooled > p->pool_max; i++) {
        while (p->cls[i].free && p->npooled > p->pool_max && ops < max_ops) {
            weft__stack *s = p->cls[i].free;
            p->cls[i].free = s->next;
            p->cls[i].nfree--;
            p->npooled--;
            ops++;
            if (s->guarded) {
                unmap_stack(w, s);
                continue;
            }
            /* All but the top page, which holds the descriptor. */
            char *top_page = (char *)((uintptr_t)s->hi & ~(uintptr_t)(page - 1));
            if (top_page > s->lo)
                weft__sys_madvise(&w->sys, s->lo, (size_t)(top_page - s->lo), MADV_DONTNEED);
            s->next = p->cls[i].cold;
            p->cls[i].cold = s;
            p->ncold++;
        }
    }
    return p->npooled > p->pool_max ? p->npooled - p->pool_max : 0;
}

WEFT_COLD void weft__stack_fini(weft__worker *w)
{
    weft__stack_pool *p = &w->stacks;
    for (int i = 0; i < WEFT__STACK_CLASSES; i++) {
        while (p->cls[i].free) {
            weft__stack *s = p->cls[i].free;
            p->cls[i].free = s->next;
            unmap_stack(w, s);
        }
        while (p->cls[i].cold) {
            weft__stack *s = p->cls[i].cold;
            p->cls[i].cold = s->next;
            unmap_stack(w, s);
        }
        p->cls[i].nfree = 0;
    }
    p->npooled = 0;
    p->ncold = 0;
    while (p->slabs) {
        struct weft__slab *sl = p->slabs;
        p->slabs = sl->next;
        weft__sys_munmap(&w->sys, sl->map, sl->map_size);
        weft__free(w, sl);
    }
}
