/* A task dump on a signal (weft_config.dump_signal, dumpsig.c): the signal's handler asks
 * worker 0, through a flag and its doorbell (both async-signal-safe), and worker 0 starts a
 * task that dumps every worker's tasks, each worker listing its own (weft_dump_tasks). */
#ifndef WEFT_DUMPSIG_H
#define WEFT_DUMPSIG_H

#include "internal.h"

/* Whether `sig` may be configured: 0 or negative (none), or a signal a handler can catch
 * that is not one weft uses, a fault's (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGURG) or the C
 * library's own (between 31 and SIGRTMIN). */
bool weft__dump_signal_valid(int sig);
/* WEFT_DUMP_SIGNAL's value: a number, or a name with or without "SIG" ("QUIT", "SIGUSR1");
 * -1 (none) for NULL, empty or not a valid signal. */
int weft__dump_signal_from_env(const char *v);

/* Installs the handler (over the default action only) and registers rt; 0, or a warning
 * logged and nothing done. Before rt's loop runs; weft__dumpsig_stop before rt is freed. */
void weft__dumpsig_start(weft__runtime *rt);
void weft__dumpsig_stop(weft__runtime *rt);

/* On worker 0, at each tick where its `dump_asked` flag is set: starts the dump task. */
void weft__dumpsig_serve(weft__worker *w);

#endif
