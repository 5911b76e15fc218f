/* MULTI/EXEC/DISCARD (multi.c): a connection's queue of commands between MULTI and EXEC, and
 * EXEC running them as one atomic step. WATCH is watch.h. All of it runs on the connection's
 * task (exec.c's dispatch calls in while c->multi is set). */
#ifndef KV_MULTI_H
#define KV_MULTI_H

#include "cmd.h"

/* Whether cmd runs at once inside MULTI instead of being queued: EXEC, DISCARD, MULTI (its
 * nesting error), WATCH (its error) and QUIT, as in Redis 7.0. */
int kv_multi_runs_now(const kv_command *cmd);
/* Inside MULTI: checks what Redis checks before queueing (CLIENT/COMMAND/CONFIG's
 * subcommand and its arity) and queues a copy of the command, answering +QUEUED; or answers
 * the error and marks the transaction failed. */
void kv_multi_queue(kv_conn *c, const kv_command *cmd, int argc, const char *const *argv,
                    const size_t *argl);
/* A command was refused inside MULTI (unknown, wrong arity): EXEC will answer EXECABORT. */
void kv_multi_flag(kv_conn *c);
/* EXEC itself was refused (its arity): Redis discards the transaction and says why. */
void kv_multi_abort(kv_conn *c, const char *why);
/* The number of commands queued, or -1 outside MULTI (CLIENT LIST's multi=). */
long kv_multi_count(const kv_conn *c);
/* The connection goes (QUIT, close): its queue and watches are dropped. */
void kv_multi_free(kv_conn *c);

#endif
