/* The calling thread's C++ exception-handling record (eh_state.h). */
#include "eh_state.h"

#include <stddef.h>

/* The C++ ABI's accessor (libsupc++, libc++abi): defined only where the C++ runtime is
 * linked. Weak, so that a C program links without it and sees NULL. */
extern void *__cxa_get_globals(void) __attribute__((weak));
extern void __cxa_end_catch(void) __attribute__((weak));

weft__eh_state *weft__eh_thread_record(void)
{
    return __cxa_get_globals ? (weft__eh_state *)__cxa_get_globals() : NULL;
}

void weft__eh_end_handlers(void)
{
    /* Each call ends one handler of the innermost exception; the last handler's end takes
     * it off the list and destroys it, unless it is being rethrown. The record is looked up
     * at each pass: an exception's destructor may park, and the task resume on another
     * thread, whose record then holds the task's. */
    weft__eh_state *rec;
    while (__cxa_end_catch && (rec = weft__eh_thread_record()) && rec->caught)
        __cxa_end_catch();
}
