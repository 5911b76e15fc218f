/* eh_state.h: the C++ exception-handling state, kept per task (eh_state.c).
 *
 * The C++ runtime keeps, per thread, the exceptions being handled (a list through the
 * exception objects, innermost first: what `throw;` rethrows, std::current_exception) and
 * the count of exceptions thrown and not yet caught (std::uncaught_exceptions). A task that
 * parks inside a catch block, or in a destructor that unwinding runs, leaves its part of that
 * record on the thread; the next task to catch would link its exception in front of it, and
 * the first to leave its catch block would end the other's exception. So the scheduler keeps
 * the record per context, as it keeps errno: each switch saves the thread's record into the
 * context it leaves and loads the one it lands on (scheduler.c), on whichever thread that is.
 *
 * The record is reached through the C++ runtime's __cxa_get_globals (a weak reference: in a
 * program without the C++ runtime it is absent, the worker's pointer is NULL, and a switch
 * pays one load and an untaken branch). Its first two fields are the same in libstdc++'s
 * libsupc++ and in libc++abi on every target weft builds for (the third field, on 32-bit ARM
 * only, is not ours to keep). */
#ifndef WEFT_EH_STATE_H
#define WEFT_EH_STATE_H

typedef struct weft__eh_state {
    void *caught;      /* the exceptions being handled, innermost first */
    unsigned uncaught; /* thrown, not yet caught */
} weft__eh_state;

/* The calling thread's record, or NULL where the program has no C++ runtime. */
weft__eh_state *weft__eh_thread_record(void);

/* Ends every handler in the calling thread's record, as leaving the catch blocks would: for a
 * task that ends inside one (weft_exit), so that its exceptions are freed rather than left to
 * the next task on its stack. An exception in flight (a weft_exit from a destructor that
 * unwinding runs, a `throw;` included) is not freed: the record is dropped with the task.
 * An exception's destructor may park (the caller re-reads its worker after). */
void weft__eh_end_handlers(void);

#endif
