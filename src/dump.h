/* Task dumps (dump.c): every task of a runtime in text a person reads at a glance (Go's
 * goroutine dump): id, name, state, what it waits on and for how long, its worker, its stack
 * and the backtrace of a coroutine that is switched out (walked along its saved frame
 * pointers). Also the report of a runtime whose tasks are all asleep (deadlock.c). */
#ifndef WEFT_DUMP_H
#define WEFT_DUMP_H

#include "internal.h"

/* A growing text buffer; on allocation failure it stops growing and says so at the end. */
typedef struct weft__dumpbuf {
    char *p;
    size_t len, cap;
    bool truncated;
} weft__dumpbuf;

void weft__dumpbuf_printf(weft__dumpbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s (up to `max` bytes or its NUL) for a line of text, escaped by the rule of
 * util/text.h: a byte below 0x20 and DEL as \xHH, a backslash and a double quote with a
 * backslash before them, others as they are, so a task's name or spawn site can neither end
 * its line nor close its quotes (a tab or a newline in it used to reach a reader's terminal
 * as it was). */
void weft__dumpbuf_text(weft__dumpbuf *b, const char *s, size_t max);
/* Appends frame #i of a backtrace: "symbol+offset (module+offset)" where the symbol is
 * known, "module+offset" where it is not. `exact`: pc is where the code stood (an interrupted
 * one), not a return address. */
void weft__dumpbuf_frame(weft__dumpbuf *b, int i, uintptr_t pc, bool exact);
/* Writes the buffer to fd (all of it, retrying short writes) and frees it; 0 or -errno. */
int weft__dumpbuf_flush(weft__dumpbuf *b, int fd);

/* Appends the tasks whose worker is w (all of the runtime's with w NULL), skipping `skip`
 * (the dumping task itself). With backtraces, walks the saved frames of the switched-out
 * ones: only for a caller that knows none of them can run meanwhile (a task of w dumping its
 * own worker; every worker asleep). Returns the number of tasks listed. */
size_t weft__dump_tasks(weft__dumpbuf *b, weft__runtime *rt, const weft__worker *w,
                        const weft_task *skip, bool backtraces, int64_t now);
/* The same, leaving out as well the tasks for which leave_out(t) is true. */
size_t weft__dump_tasks_but(weft__dumpbuf *b, weft__runtime *rt, const weft__worker *w,
                            bool (*leave_out)(const weft_task *t), bool backtraces, int64_t now);

/* The whole dump of the caller's runtime, appended to `out`: weft_dump_tasks' text, or with
 * `json` one JSON object (the debug endpoint's /debug/tasks). From a stackful task: each
 * worker lists its own, as a task of its own; one whose part has not come by `deadline` (a
 * worker stuck in a task) is listed from here, without backtraces. Returns 0 or -EPERM,
 * -ENOMEM. */
int weft__dump_render(weft__dumpbuf *out, bool json, int64_t deadline);

#endif
