/* A growable byte buffer (reply output, copied arguments): header-only. A reply buffer knows
 * the protocol its replies are written in (RESP2 or RESP3), so that a command's proc, wherever
 * it runs, writes its client's protocol without knowing the client. Owned by one thread at
 * a time; the memory is the holder's to free with sbuf_free. An allocation failure sets `oom`
 * and drops further appends, so writers need not check every call: the connection checks the
 * flag once per batch. */
#ifndef KV_SBUF_H
#define KV_SBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *data;
    size_t len;
    size_t cap;
    int oom;   /* an append failed: the contents are incomplete */
    int resp3; /* replies written here use RESP3 (the client sent HELLO 3); kept by sbuf_free */
} sbuf;

/* An empty buffer for replies in the same protocol as b's (a coordinator's or a message's
 * buffer whose replies go on to b). */
static inline sbuf sbuf_like(const sbuf *b)
{
    sbuf n = {0};
    n.resp3 = b->resp3;
    return n;
}

/* Makes room for `more` bytes past len. Returns 0, or -1 (and sets oom). */
static inline int sbuf_reserve(sbuf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline void sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (n == 0 || sbuf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static inline void sbuf_free(sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

#endif
