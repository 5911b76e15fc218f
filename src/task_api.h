/* What task_api.c offers the rest of weft beyond the public API. */
#ifndef WEFT_TASK_API_H
#define WEFT_TASK_API_H

#include "internal.h"

/* Waits for t to finish whatever the caller's deadline or cancel flag, then reaps it. For
 * owners that must not return before what they own is gone (weft_gen_close). */
void weft__join_uncancellable(weft__worker *w, weft_task *t);

#endif
