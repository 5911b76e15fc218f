/* Intrusive containers used across the runtime: a doubly linked circular list (O(1) unlink)
 * and a singly linked FIFO queue. Nodes live inside the objects they link; nothing here
 * allocates. */
#ifndef WEFT_UTIL_LIST_H
#define WEFT_UTIL_LIST_H

#include <stddef.h>

#define weft__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A circular list; an empty head points at itself. */
typedef struct weft__list {
    struct weft__list *prev, *next;
} weft__list;

static inline void weft__list_init(weft__list *h)
{
    h->prev = h->next = h;
}

static inline int weft__list_empty(const weft__list *h)
{
    return h->next == h;
}

static inline void weft__list_push_back(weft__list *h, weft__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void weft__list_remove(weft__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Unlinks n and leaves it as it was: for a node that nobody unlinks again (a second remove
 * would corrupt the list, where weft__list_remove's reset makes it a no-op). */
static inline void weft__list_unlink(weft__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
}

/* A FIFO of objects linked through a `next` pointer at offset `off`: push at the tail, pop
 * at the head, both O(1). Used for the ready queue, where a task is in at most one queue. */
typedef struct weft__fifo {
    void *head, *tail;
    size_t len;
} weft__fifo;

#define WEFT__FIFO_NEXT(obj, off) (*(void **)((char *)(obj) + (off)))

static inline void weft__fifo_push(weft__fifo *q, void *obj, size_t off)
{
    WEFT__FIFO_NEXT(obj, off) = NULL;
    if (q->tail)
        WEFT__FIFO_NEXT(q->tail, off) = obj;
    else
        q->head = obj;
    q->tail = obj;
    q->len++;
}

static inline void *weft__fifo_pop(weft__fifo *q, size_t off)
{
    void *obj = q->head;
    if (obj) {
        q->head = WEFT__FIFO_NEXT(obj, off);
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return obj;
}

static inline void weft__fifo_push_front(weft__fifo *q, void *obj, size_t off)
{
    WEFT__FIFO_NEXT(obj, off) = q->head;
    q->head = obj;
    if (!q->tail)
        q->tail = obj;
    q->len++;
}

/* Moves the objects pushed since the tail was `mark` to the head, in their order. `mark` is
 * the tail read before those pushes (NULL: the queue was empty, so they lead already), and
 * nothing may have been popped since. O(1). */
static inline void weft__fifo_to_front(weft__fifo *q, void *mark, size_t off)
{
    if (!mark || mark == q->tail)
        return;
    void *first = WEFT__FIFO_NEXT(mark, off);
    WEFT__FIFO_NEXT(q->tail, off) = q->head;
    q->head = first;
    WEFT__FIFO_NEXT(mark, off) = NULL;
    q->tail = mark;
}

/* Moves the objects pushed since the tail was `mark` (as weft__fifo_to_front) to just after
 * the first k objects of the queue, in their order; k = 0 is weft__fifo_to_front. O(k). */
static inline void weft__fifo_to_nth(weft__fifo *q, void *mark, size_t k, size_t off)
{
    if (k == 0) {
        weft__fifo_to_front(q, mark, off);
        return;
    }
    if (!mark || mark == q->tail)
        return;        /* nothing pushed, or the queue was empty and they lead already */
    void *p = q->head; /* the k-th object, or mark if the pushed ones follow them already */
    for (size_t i = 1; i < k && p != mark; i++)
        p = WEFT__FIFO_NEXT(p, off);
    if (p == mark)
        return;
    void *first = WEFT__FIFO_NEXT(mark, off), *last = q->tail;
    WEFT__FIFO_NEXT(mark, off) = NULL; /* cut them off the end */
    q->tail = mark;
    WEFT__FIFO_NEXT(last, off) = WEFT__FIFO_NEXT(p, off); /* and in after p */
    WEFT__FIFO_NEXT(p, off) = first;
}

#endif
