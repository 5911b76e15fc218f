/* Write-behind sends for the io_uring backend (uring_send.c). A small weft_write or weft_send
 * on a stream socket copies its bytes into a buffer of the fd's record, queues one send for
 * the tick's io_uring_enter and returns at once: the task does not park for the completion,
 * so an echo costs one park a message (the read's) instead of two. The record keeps at most
 * one send in flight per fd; the next call that writes to the fd waits for it first (bytes
 * keep their order), and is the one that reports an error the kernel gave it; after an
 * error nothing more is sent behind on that fd. Worker thread
 * only: the records belong to the worker whose ring the sends went to. */
#ifndef WEFT_IO_URING_SEND_H
#define WEFT_IO_URING_SEND_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

/* The largest write sent behind (copied): larger ones run on the caller's buffer, parked. */
#define WEFT__USEND_MAX (16u * 1024)
/* The largest record kept between sends: a larger one is freed when its send is over, so
 * that 10,000 idle keep-alive connections do not hold 16 KiB each. */
#define WEFT__USEND_KEEP 2048u

/* One fd's write-behind state. Its address is the in-flight send's user_data, so it never
 * moves while a send is in flight; between sends it may be reallocated (to grow buf). */
typedef struct weft__usend {
    int fd;
    uint32_t fdgen;   /* the fd table's generation it was made under: another one means the
                       * number was closed behind weft's back and reused (a stale record) */
    uint32_t cap;     /* bytes buf holds */
    uint32_t len;     /* bytes of the send in flight */
    uint32_t done;    /* of them, taken by the kernel so far (a short send goes on) */
    int op;           /* WEFT__IO_WRITE or WEFT__IO_SEND: the ring operation used */
    int flags;        /* the send's flags (MSG_MORE) */
    int32_t err;      /* a send's error, returned by the next write; 0: none */
    int64_t deadline; /* the write's: how long weft_close waits for the send (flush) */
    int8_t shut;      /* a shutdown(2) `how` to run once the send is done; -1: none */
    uint8_t inflight; /* the kernel (or the SQ) holds buf */
    uint8_t orphan;   /* forgotten while in flight: the last completion frees it */
    uint8_t failed;   /* a send failed: later writes run in place and get the kernel's own
                       * answer (EPIPE after EPIPE, as write(2)), once err is reported */
    int keepfd;       /* an orphan whose send goes on (forgotten where nobody could wait for
                       * it: outside a task, or on a worker other than the closer's): its own
                       * duplicate of the fd, which `fd` then is, closed when the send is
                       * over, so the peer sees the end of stream after the bytes; -1: none */
    struct __kernel_timespec until;  /* the deadline as the kept send's link timeout reads it
                                      * (IORING_TIMEOUT_ABS): the kernel reads it at submission */
    struct weft__usend *prev, *next; /* the orphans' list, while orphan */
    char buf[];
} weft__usend;

typedef struct weft__usends {
    weft__usend **fds; /* indexed by fd; NULL: no record */
    size_t nfds;
    weft__usend *orphans; /* forgotten records whose send is still in flight */
    weft__worker *w;
} weft__usends;

void weft__usends_init(weft__usends *u, weft__worker *w);
/* Frees every record, orphans included (closing their keepfd): the ring is gone, nothing of
 * theirs is in flight. */
void weft__usends_fini(weft__usends *u);

/* fd's record, or NULL. Good until the next call that may reallocate it (get). */
static inline weft__usend *weft__usends_find(const weft__usends *u, int fd)
{
    return fd >= 0 && (size_t)fd < u->nfds ? u->fds[fd] : NULL;
}

/* Whether a send of fd, the file of the fd table's generation fdgen, is in flight (a write
 * to fd must wait for it). A record of another generation is an earlier file's. */
static inline bool weft__usends_busy(const weft__usends *u, int fd, uint32_t fdgen)
{
    weft__usend *s = weft__usends_find(u, fd);
    return s && s->inflight && s->fdgen == fdgen;
}

/* Whether a write to fd (generation fdgen) must go through the record first: a send in
 * flight, or its error not reported yet. */
static inline bool weft__usends_pending(const weft__usends *u, int fd, uint32_t fdgen)
{
    weft__usend *s = weft__usends_find(u, fd);
    return s && (s->inflight || s->err) && s->fdgen == fdgen;
}

/* fd's record for a send of len (<= WEFT__USEND_MAX) bytes under the fd table's generation
 * fdgen, made or grown as needed; not in flight. A stale record (another generation) is
 * forgotten first. NULL without memory. */
weft__usend *weft__usends_get(weft__usends *u, int fd, uint32_t fdgen, uint32_t len);

/* Takes one completion of s's send. Returns true if more of it is to be sent (s->done tells
 * where from); false if it is over: then s is either not in flight any more (its error, if
 * any, in s->err) or, an orphan, freed. */
bool weft__usend_complete(weft__usends *u, weft__usend *s, int res);

/* Forgets fd's record: freed, or, with its send still in flight, kept as an orphan until the
 * send's last completion (the ring side, uring.c, decides whether an orphan's send goes on:
 * keepfd). */
void weft__usends_forget(weft__usends *u, int fd);

#endif
