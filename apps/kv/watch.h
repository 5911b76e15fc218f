/* WATCH and UNWATCH (watch.c): optimistic locks on keys for MULTI/EXEC. A connection's watch
 * is a record shared with the shards of its keys; a shard marks it dirty when one of those keys
 * changes there, and EXEC then answers the null array. */
#ifndef KV_WATCH_H
#define KV_WATCH_H

#include "cmd.h"
#include "db.h"

/* ---- The shard's side: on its worker ---- */

/* Key changed on db's shard: every connection watching it will fail its EXEC. gone: the key
 * has just been deleted (Redis's rule: a watch taken when the key was already expired is not
 * failed by that key's deletion, only by its coming back). Callers check db->watched.size
 * first, so that a shard nobody watches pays nothing. */
void kv_watch_touch(kv_db *db, const char *key, size_t klen, int gone);
/* After a write command ran on db (kv_run_proc): touches its keys unless its reply says it
 * changed nothing (an error, DEL's keys, which db_delete touched one by one, a pop of nothing,
 * SETNX's 0, ...), as Redis signals a key only when a command modified it. */
void kv_watch_after_write(kv_db *db, const kv_command *cmd, const kv_ctx *ctx, size_t reply_off);
/* Before db is emptied (FLUSHDB, FLUSHALL): touches the watched keys it holds. */
void kv_watch_flushing(kv_db *db);
/* At the shard's end: frees what is left of the watches there. */
void kv_watch_fini(kv_db *db);

/* ---- The connection's side: on its task ---- */

/* Whether EXEC must fail: a watched key changed, or one that was live at WATCH has reached
 * its expiry time since. Meaningful while the shards of the watched keys run nothing else. */
int kv_watch_failed(const kv_conn *c);
/* Sets involved[s] for the shard s of each watched key. */
void kv_watch_shards(const kv_conn *c, unsigned char *involved);
/* Drops every watch of c (EXEC, DISCARD, UNWATCH, the connection's end). */
void kv_watch_clear(kv_conn *c);

#endif
