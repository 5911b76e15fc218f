/* Cross-shard messages: a batch of commands for one shard, with copies of their arguments
 * and a buffer for their replies, in one allocation. Shared by reference count between the
 * sender (a connection) and the task that runs it on the shard, so that either may go first:
 * a connection cancelled while it waits drops its reference, and the task still has its
 * arguments and a buffer to write to. */
#ifndef KV_MSG_H
#define KV_MSG_H

#include <stdatomic.h>

#include "server.h"

typedef struct kv_msg_item {
    const kv_command *cmd;
    int argc;
    const char **argv;
    size_t *argl;
    size_t off, len; /* the reply in out, once run */
} kv_msg_item;

typedef struct kv_msg {
    atomic_int refs; /* 2 from kv_msg_build: the sender's and the running task's */
    /* The sender gave up waiting (its connection was cancelled: a shutdown, a kill): a
     * pipelined segment stops between two commands, rather than run up to SEGMENT_MAX of them
     * (each perhaps copying a large value) for nobody. Set by the sender, read by the running
     * task (relaxed: a hint, and the reference count orders the record's end). */
    atomic_int abandoned;
    size_t n;
    sbuf out; /* written by the running shard, read by the sender after completion */
    kv_msg_item items[];
} kv_msg;

/* A message for the items of `shard` among items[0 .. n), its replies written in `like`'s
 * protocol, or NULL (out of memory). */
kv_msg *kv_msg_build(const kv_item *items, size_t n, unsigned shard, const sbuf *like);
/* Drops a reference; the last one frees. Any thread. */
void kv_msg_release(kv_msg *m);
/* Runs m's commands on the calling worker's shard, replies into m->out. */
void kv_msg_run(kv_msg *m);
/* Gives up on m's replies (the sender's side): its segment stops at the next command. */
void kv_msg_abandon(kv_msg *m);
/* The weft_submit_to function: kv_msg_run, then drops the task's reference and the
 * in-flight count. */
void *kv_msg_task(void *arg);

#endif
