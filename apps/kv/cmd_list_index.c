/* List commands by position and by value: LINDEX, LSET, LINSERT, LREM, LTRIM and LPOS. Each
 * runs on its key's shard. Arguments, checks and errors come in Redis 7.0's order, which
 * differs per command (LINDEX looks at the key before its index, LREM and LTRIM parse their
 * integers first); a list they empty is deleted, as Redis keeps no empty list. */
#include <limits.h>
#include <string.h>

#include "cmd.h"
#include "server.h"

static int blob_is(const kv_blob *b, const char *p, size_t n)
{
    return b->len == n && memcmp(b->data, p, n) == 0;
}

/* A negative index counts from the end. Returns 0 with the position in *pos, or -1 when out
 * of the list. */
static int list_index(const kv_list *l, long long index, size_t *pos)
{
    if (index < 0)
        index += (long long)l->len;
    if (index < 0 || index >= (long long)l->len)
        return -1;
    *pos = (size_t)index;
    return 0;
}

void cmd_lindex(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong);
    if (wrong)
        return;
    if (!e) {
        reply_null(c->out);
        return;
    }
    long long index;
    if (arg_ll(c, 2, &index) < 0)
        return;
    size_t pos;
    if (list_index(e->v.list, index, &pos) < 0) {
        reply_null(c->out);
        return;
    }
    kv_blob *b = list_at(e->v.list, pos);
    reply_bulk(c->out, b->data, b->len);
}

void cmd_lset(kv_ctx *c)
{
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong); /* WRONGTYPE replied */
    if (wrong)
        return;
    if (!e) {
        reply_error(c->out, ERR_NOKEY);
        return;
    }
    long long index;
    if (arg_ll(c, 2, &index) < 0)
        return;
    size_t pos;
    if (list_index(e->v.list, index, &pos) < 0) {
        reply_error(c->out, "ERR index out of range");
        return;
    }
    kv_blob *b = kv_malloc(sizeof *b + c->argl[3]);
    if (!b) {
        reply_error(c->out, "ERR out of memory");
        return;
    }
    b->len = c->argl[3];
    memcpy(b->data, c->argv[3], c->argl[3]);
    kv_blob **slot = list_ref(e->v.list, pos);
    kv_free(*slot);
    *slot = b;
    reply_ok(c->out);
}

/* LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot, 0 without
 * the key. */
void cmd_linsert(kv_ctx *c)
{
    int after;
    if (arg_is(c, 2, "after"))
        after = 1;
    else if (arg_is(c, 2, "before"))
        after = 0;
    else {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong); /* WRONGTYPE replied */
    if (wrong)
        return;
    if (!e) {
        reply_int(c->out, 0);
        return;
    }
    kv_list *l = e->v.list;
    for (size_t i = 0; i < l->len; i++) {
        if (!blob_is(list_at(l, i), c->argv[3], c->argl[3]))
            continue;
        if (list_insert(l, i + (size_t)after, c->argv[4], c->argl[4]) < 0) {
            reply_error(c->out, "ERR out of memory");
            return;
        }
        reply_int(c->out, (long long)l->len);
        return;
    }
    reply_int(c->out, -1);
}

/* LREM key count element: removes the first |count| matches from the head (count > 0) or the
 * tail (count < 0), or all of them (0). The kept elements are packed toward the end the walk
 * started from, so the walk is one pass whatever the number removed. */
void cmd_lrem(kv_ctx *c)
{
    long long count;
    if (arg_ll(c, 2, &count) < 0)
        return;
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong); /* WRONGTYPE replied */
    if (wrong)
        return;
    if (!e) {
        reply_int(c->out, 0);
        return;
    }
    kv_list *l = e->v.list;
    int from_tail = count < 0;
    unsigned long long limit = count == 0  ? ULLONG_MAX
                               : count < 0 ? 0ull - (unsigned long long)count
                                           : (unsigned long long)count;
    unsigned long long removed = 0;
    size_t len = l->len, kept = 0;
    for (size_t k = 0; k < len; k++) {
        size_t i = from_tail ? len - 1 - k : k;
        kv_blob *b = *list_ref(l, i);
        if (removed < limit && blob_is(b, c->argv[3], c->argl[3])) {
            kv_free(b);
            removed++;
            continue;
        }
        *list_ref(l, from_tail ? len - 1 - kept : kept) = b;
        kept++;
    }
    if (from_tail)
        list_cut(l, len - kept, 0);
    else
        list_cut(l, 0, len - kept);
    db_delete_if_empty(c->db, e);
    reply_int(c->out, (long long)removed);
}

void cmd_ltrim(kv_ctx *c)
{
    long long start, stop;
    if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &stop) < 0)
        return;
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong); /* WRONGTYPE replied */
    if (wrong)
        return;
    if (!e) {
        reply_ok(c->out);
        return;
    }
    kv_list *l = e->v.list;
    size_t len = l->len;
    long long n = index_range(&start, stop, (long long)len);
    size_t front = n ? (size_t)start : len, back = n ? len - front - (size_t)n : 0;
    for (size_t i = 0; i < front; i++)
        kv_free(list_at(l, i));
    for (size_t i = len - back; i < len; i++)
        kv_free(list_at(l, i));
    list_cut(l, front, back);
    db_delete_if_empty(c->db, e);
    reply_ok(c->out);
}

/* An LPOS option's count: an integer >= 0, else Redis's message for the option. */
static int arg_nonneg(kv_ctx *c, int i, long long *v, const char *err)
{
    if (resp_strtoll(c->argv[i], c->argl[i], v) < 0 || *v < 0) {
        reply_error(c->out, err);
        return -1;
    }
    return 0;
}

/* LPOS key element [RANK rank] [COUNT num] [MAXLEN len]: the index of the rank-th match (from
 * the tail for a negative rank), or with COUNT an array of up to num of them (0: all), looking
 * at the first len elements only (0: all). */
void cmd_lpos(kv_ctx *c)
{
    long long rank = 1, count = -1, maxlen = 0; /* count -1: no COUNT */
    for (int j = 3; j < c->argc; j++) {
        int more = j + 1 < c->argc;
        if (more && arg_is(c, j, "rank")) {
            j++;
            if (arg_ll(c, j, &rank) < 0)
                return;
            if (rank == 0) {
                reply_error(c->out, "ERR RANK can't be zero: use 1 to start from the first "
                                    "match, 2 from the second ... or use negative to start "
                                    "from the end of the list");
                return;
            }
        } else if (more && arg_is(c, j, "count")) {
            if (arg_nonneg(c, ++j, &count, "ERR COUNT can't be negative") < 0)
                return;
        } else if (more && arg_is(c, j, "maxlen")) {
            if (arg_nonneg(c, ++j, &maxlen, "ERR MAXLEN can't be negative") < 0)
                return;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    int from_tail = rank < 0;
    /* Redis 7.0.15 takes a rank of LONG_MIN and answers as for -1 (its -rank overflows and
     * stays negative, below any match count): the first match from the tail, without the
     * overflow here. */
    if (from_tail)
        rank = rank == LLONG_MIN ? 1 : -rank;
    int wrong;
    kv_entry *e = get_typed(c, KV_LIST, 0, &wrong);
    if (wrong)
        return;
    if (!e) {
        if (count != -1)
            reply_array(c->out, 0);
        else
            reply_null(c->out);
        return;
    }
    kv_list *l = e->v.list;
    long long len = (long long)l->len, matches = 0, found = -1, nfound = 0;
    sbuf list = sbuf_like(c->out); /* COUNT's elements, counted before the header goes out */
    for (long long k = 0; k < len && (maxlen == 0 || k < maxlen); k++) {
        long long i = from_tail ? len - 1 - k : k;
        if (!blob_is(list_at(l, (size_t)i), c->argv[2], c->argl[2]) || ++matches < rank)
            continue;
        if (count == -1) {
            found = i;
            break;
        }
        reply_int(&list, i);
        if (++nfound == count) /* count 0: never, all the matches */
            break;
    }
    if (count == -1) {
        if (found >= 0)
            reply_int(c->out, found);
        else
            reply_null(c->out);
    } else {
        reply_array(c->out, nfound);
        sbuf_add(c->out, list.data, list.len);
        if (list.oom)
            c->out->oom = 1;
    }
    sbuf_free(&list);
}
