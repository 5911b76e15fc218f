/* What group.c offers the rest of weft beyond the public API: for the cycle checker
 * (cycles.c), the group a task belongs to and the object its group's waiters park on. */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include "task.h"

/* Copies len bytes from addr to out without faulting (false if addr cannot be read). */
typedef bool weft__peek(void *ctx, const void *addr, void *out, size_t len);

/* The group whose member carries `node` as its spawn cleanup, or NULL if it is no member's.
 * `node` is the checker's copy of a task's spawn-cleanup node (weft__task_spawn_cleanup), read
 * from another thread: the member record behind it is read only through peek, since it may be
 * freed at any moment (the member's finish). The answer is to be trusted only if the task was
 * parked throughout (its state word unchanged): a member stays in its group until it finishes.
 * Any thread. */
const weft_group *weft__group_of_node(const weft__node *node, weft__peek *peek, void *ctx);

/* The wait object that g's waiters and its closer park on (WEFT__WAIT_WAITGROUP). Computes an
 * address only: g is not read. Any thread. */
const void *weft__group_wait_object(const weft_group *g);

#endif
