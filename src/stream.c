/* Buffered streams over a connected fd. Reads come from a buffer refilled with one read per
 * refill; writes go to a buffer that flush() sends. Backpressure: once the buffered output
 * reaches the high-water mark, the writer sends until it is down to the low-water mark,
 * parking while the peer does not read, so a slow reader bounds the writer's memory at
 * the high mark (a write larger than that goes straight to the fd once the buffer is empty).
 * A stream is used by one task at a time; it owns its fd. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "io/io.h"
#include "net.h"

struct weft_stream {
    weft__worker *w;
    int fd;
    int eof; /* the peer closed its side: reads return what is buffered, then 0 */
    /* An error that cut a read_exact short after some bytes: the next read returns it
     * (a socket reports a reset once, and would report the end of stream after it). 0: none. */
    int err;
    char *rbuf;
    size_t rcap, rstart, rend; /* buffered input is rbuf[rstart, rend) */
    char *wbuf;
    size_t wcap, wlen; /* buffered output is wbuf[0, wlen) */
    size_t high, low;
};

void weft_stream_opts_init(weft_stream_opts *o)
{
    if (!o)
        return;
    o->read_buf = 16 * 1024;
    o->high_water = 64 * 1024;
    o->low_water = 16 * 1024;
}

int weft_stream_open(weft_stream **out, int fd, const weft_stream_opts *opts)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    weft_stream_opts o;
    weft_stream_opts_init(&o);
    if (opts)
        o = *opts;
    if (!out || fd < 0 || o.read_buf == 0 || o.high_water == 0 || o.low_water > o.high_water)
        return -EINVAL;
    weft_stream *s = weft__calloc(w, 1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->w = w;
    s->fd = fd;
    s->rcap = o.read_buf;
    s->high = o.high_water;
    s->low = o.low_water;
    s->wcap = o.high_water;
    *out = s;
    return 0;
}

int weft_stream_fd(const weft_stream *s)
{
    return s ? s->fd : -EINVAL;
}

size_t weft_stream_buffered_out(const weft_stream *s)
{
    return s ? s->wlen : 0;
}

/* ---- Reading ------------------------------------------------------------------------- */

/* Makes room for at least `want` bytes of buffered input (growing up to `want`). */
static int reserve_read(weft_stream *s, size_t want)
{
    size_t have = s->rend - s->rstart;
    if (s->rbuf && s->rstart > 0 && (s->rend == s->rcap || want > s->rcap - s->rstart)) {
        memmove(s->rbuf, s->rbuf + s->rstart, have);
        s->rstart = 0;
        s->rend = have;
    }
    size_t cap = s->rcap > want ? s->rcap : want;
    if (!s->rbuf || cap > s->rcap) {
        char *b = weft__realloc(s->w, s->rbuf, cap);
        if (!b)
            return -ENOMEM;
        s->rbuf = b;
        s->rcap = cap;
    }
    return 0;
}

/* Reads once from the fd into the buffer. Returns bytes added, 0 at EOF, or -errno. */
/* The error a cut read_exact left for the next read, taken (0: none). */
static int take_err(weft_stream *s)
{
    int e = s->err;
    s->err = 0;
    return e;
}

static ssize_t refill(weft_stream *s, size_t want, int64_t deadline)
{
    if (s->err)
        return take_err(s);
    if (s->eof)
        return 0;
    int r = reserve_read(s, want);
    if (r < 0)
        return r;
    if (s->rend == s->rcap)
        return -ENOBUFS;
    ssize_t n = weft_read(s->fd, s->rbuf + s->rend, s->rcap - s->rend, deadline);
    if (n > 0)
        s->rend += (size_t)n;
    else if (n == 0)
        s->eof = 1;
    return n;
}

static size_t take(weft_stream *s, void *buf, size_t len)
{
    size_t have = s->rend - s->rstart;
    size_t n = have < len ? have : len;
    if (n == 0)
        return 0; /* rbuf may be NULL still (a read straight into the caller's buffer met
                   * the end of stream before any refill): memcpy must not be given it */
    memcpy(buf, s->rbuf + s->rstart, n);
    s->rstart += n;
    return n;
}

ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len, int64_t deadline)
{
    if (!s || (!buf && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (s->rend == s->rstart) {
        /* Nothing buffered: a large read goes straight into the caller's buffer. */
        if (len >= s->rcap && !s->eof) {
            if (s->err)
                return take_err(s);
            ssize_t n = weft_read(s->fd, buf, len, deadline);
            if (n == 0)
                s->eof = 1;
            return n;
        }
        ssize_t n = refill(s, s->rcap, deadline);
        if (n <= 0)
            return n;
    }
    return (ssize_t)take(s, buf, len);
}

ssize_t weft_stream_read_exact(weft_stream *s, void *buf, size_t n, int64_t deadline)
{
    if (!s || (!buf && n))
        return -EINVAL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = weft_stream_read(s, (char *)buf + got, n - got, deadline);
        if (r < 0 && got == 0)
            return r;
        if (r < 0) {
            /* What was read is not lost: it is returned, and the error kept for the next
             * call. A deadline or a cancel is this call's alone: the next one has its own. */
            if (r != -ETIMEDOUT && r != -ECANCELED)
                s->err = (int)r;
            return (ssize_t)got;
        }
        if (r == 0)
            break; /* EOF: a short count */
        got += (size_t)r;
    }
    return (ssize_t)got;
}

ssize_t weft_stream_read_until(weft_stream *s, int delim, void *buf, size_t max, int64_t deadline)
{
    if (!s || !buf || max == 0)
        return -EINVAL;
    size_t scanned = 0;
    for (;;) {
        char *start = s->rbuf ? s->rbuf + s->rstart : NULL; /* none before the first refill */
        size_t have = s->rend - s->rstart;
        size_t limit = have < max ? have : max;
        char *hit = limit > scanned ? memchr(start + scanned, delim, limit - scanned) : NULL;
        if (hit)
            return (ssize_t)take(s, buf, (size_t)(hit - start) + 1);
        scanned = limit;
        if (have >= max)
            return -ENOBUFS; /* nothing consumed: the caller may read it another way */
        /* The buffer grows only when it is full of a line without its delimiter, doubling up
         * to max: a short line read with a large max kept a buffer of max bytes (256 MiB for
         * a 6-byte line; -ENOMEM for a max the allocator could not give). */
        size_t want = s->rcap;
        if (have >= s->rcap)
            want = s->rcap > max / 2 ? max : s->rcap * 2;
        ssize_t n = refill(s, want, deadline);
        if (n == 0) {
            /* EOF: what is left has no delimiter; hand it over as the last piece. */
            return (ssize_t)take(s, buf, have);
        }
        if (n < 0)
            return n;
    }
}

ssize_t weft_stream_read_line(weft_stream *s, void *buf, size_t max, int64_t deadline)
{
    return weft_stream_read_until(s, '\n', buf, max, deadline);
}

/* ---- Writing ------------------------------------------------------------------------- */

/* Sends buffered output until at most `keep` bytes remain. */
static int drain_to(weft_stream *s, size_t keep, int64_t deadline)
{
    while (s->wlen > keep) {
        ssize_t n = weft__write_some(s->fd, s->wbuf, s->wlen, deadline);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO; /* the fd took nothing: never spin on it */
        memmove(s->wbuf, s->wbuf + n, s->wlen - (size_t)n);
        s->wlen -= (size_t)n;
    }
    return 0;
}

ssize_t weft_stream_write(weft_stream *s, const void *buf, size_t len, int64_t deadline)
{
    if (!s || (!buf && len))
        return -EINVAL;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        if (s->wlen >= s->high) {
            /* Backpressure: park until the peer has taken us down to the low mark, and at
             * least one byte (a low mark equal to the high one would leave no room, and
             * this loop would spin). */
            int r = drain_to(s, s->low < s->high ? s->low : s->high - 1, deadline);
            if (r < 0)
                return r;
        }
        if (s->wlen == 0 && left >= s->high) {
            /* Larger than the whole buffer: no point copying it. */
            ssize_t n = weft_write(s->fd, p, left, deadline);
            return n < 0 ? n : (ssize_t)len;
        }
        if (!s->wbuf) {
            s->wbuf = weft__malloc(s->w, s->wcap);
            if (!s->wbuf)
                return -ENOMEM;
        }
        size_t room = s->wcap - s->wlen;
        size_t n = left < room ? left : room;
        memcpy(s->wbuf + s->wlen, p, n);
        s->wlen += n;
        p += n;
        left -= n;
    }
    return (ssize_t)len;
}

int weft_stream_flush(weft_stream *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    return drain_to(s, 0, deadline);
}

int weft_stream_close(weft_stream *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    int r = drain_to(s, 0, deadline);
    int c = weft_close(s->fd);
    weft__free(s->w, s->rbuf);
    weft__free(s->w, s->wbuf);
    weft__free(s->w, s);
    return r < 0 ? r : c;
}
