/* An intrusive binary min-heap shaped as a complete binary tree of linked nodes, so that
 * inserting and removing never allocate (the nodes live in the timers, often on coroutine
 * stacks). Insert and remove are O(log n); the minimum is the root. The position of the
 * next free slot is found from the node count: the path from the root follows the bits of
 * (n + 1) below the leading one. Ties are broken by the comparison function. */
#ifndef WEFT_UTIL_HEAP_H
#define WEFT_UTIL_HEAP_H

#include <stddef.h>

typedef struct weft__heap_node {
    struct weft__heap_node *left, *right, *parent;
} weft__heap_node;

/* Returns non-zero when a must sit above b. */
typedef int (*weft__heap_less)(const weft__heap_node *a, const weft__heap_node *b);

typedef struct weft__heap {
    weft__heap_node *root;
    size_t n;
} weft__heap;

static inline weft__heap_node *weft__heap_min(const weft__heap *h)
{
    return h->root;
}

/* Swaps n with its parent p, fixing every link that points at either. */
static inline void weft__heap_swap_up(weft__heap *h, weft__heap_node *n, weft__heap_node *p)
{
    weft__heap_node *pp = p->parent, *pl = p->left, *pr = p->right;
    weft__heap_node *nl = n->left, *nr = n->right;

    n->parent = pp;
    p->parent = n;
    if (pl == n) {
        n->left = p;
        n->right = pr;
        if (pr)
            pr->parent = n;
    } else {
        n->right = p;
        n->left = pl;
        if (pl)
            pl->parent = n;
    }
    p->left = nl;
    p->right = nr;
    if (nl)
        nl->parent = p;
    if (nr)
        nr->parent = p;
    if (!pp)
        h->root = n;
    else if (pp->left == p)
        pp->left = n;
    else
        pp->right = n;
}

/* Returns the address of the link that holds slot number `pos` (1-based, breadth-first) and
 * the parent of that slot in *parent. Slot 1 is the root. */
static inline weft__heap_node **weft__heap_slot(weft__heap *h, size_t pos,
                                                weft__heap_node **parent)
{
    size_t bit = (size_t)1 << (sizeof(size_t) * 8 - 1 - (size_t)__builtin_clzl(pos));
    weft__heap_node **link = &h->root;
    *parent = NULL;
    for (bit >>= 1; bit; bit >>= 1) {
        *parent = *link;
        link = (pos & bit) ? &(*link)->right : &(*link)->left;
    }
    return link;
}

static inline void weft__heap_sift_up(weft__heap *h, weft__heap_node *n, weft__heap_less less)
{
    while (n->parent && less(n, n->parent))
        weft__heap_swap_up(h, n, n->parent);
}

static inline void weft__heap_insert(weft__heap *h, weft__heap_node *n, weft__heap_less less)
{
    n->left = n->right = NULL;
    weft__heap_node *parent;
    weft__heap_node **link = weft__heap_slot(h, h->n + 1, &parent);
    *link = n;
    n->parent = parent;
    h->n++;
    weft__heap_sift_up(h, n, less);
}

static inline void weft__heap_remove(weft__heap *h, weft__heap_node *n, weft__heap_less less)
{
    if (h->n == 0)
        return;
    /* Detach the last node, then put it where n was and sift it either way. */
    weft__heap_node *parent;
    weft__heap_node **link = weft__heap_slot(h, h->n, &parent);
    weft__heap_node *last = *link;
    *link = NULL;
    h->n--;
    if (last == n) {
        if (n == h->root)
            h->root = NULL;
        return;
    }
    last->left = n->left;
    last->right = n->right;
    last->parent = n->parent;
    if (last->left)
        last->left->parent = last;
    if (last->right)
        last->right->parent = last;
    if (!n->parent)
        h->root = last;
    else if (n->parent->left == n)
        n->parent->left = last;
    else
        n->parent->right = last;
    for (;;) {
        weft__heap_node *m = last;
        if (last->left && less(last->left, m))
            m = last->left;
        if (last->right && less(last->right, m))
            m = last->right;
        if (m == last)
            break;
        weft__heap_swap_up(h, m, last);
    }
    weft__heap_sift_up(h, last, less);
}

#endif
