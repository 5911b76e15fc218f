/* The program's tracer hooks (weft_config.tracer, tracer.c). Each hook site costs a
 * predicted branch on the worker's `tracer` pointer while none is set; the resume site costs
 * nothing more than before: a worker with a tracer runs every resume through the slow path
 * that sampled resumes take (scheduler.c's begin_run, through `run_mask`). */
#ifndef WEFT_TRACER_H
#define WEFT_TRACER_H

#include "internal.h"

WEFT_COLD void weft__trace_spawn(const weft__worker *w, const weft_task *t);
void weft__trace_resume(const weft__worker *w, const weft_task *t);
/* `wait`: the wait kind's name (scheduler.c's weft__wait_kind_name). */
void weft__trace_park(const weft__worker *w, const weft_task *t, const char *wait);
void weft__trace_wake(const weft__worker *w, const weft_task *t);
void weft__trace_exit(const weft__worker *w, const weft_task *t);
WEFT_COLD void weft__trace_sleep(const weft__worker *w, bool asleep);

#endif
