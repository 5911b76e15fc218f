/* Write-behind sends: the per-fd records and their lives (uring_send.h). Invariant: a record
 * is in exactly one place, its fd's slot or (forgotten while its send was in flight) the
 * orphans' list, and a record in flight is never moved or freed until its last completion.
 * The ring side (preparing and submitting the sends, waiting for them) is in uring.c. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "uring_send.h"

void weft__usends_init(weft__usends *u, weft__worker *w)
{
    memset(u, 0, sizeof *u);
    u->w = w;
}

WEFT_COLD void weft__usends_fini(weft__usends *u)
{
    for (size_t i = 0; i < u->nfds; i++)
        weft__free(u->w, u->fds[i]);
    for (weft__usend *s = u->orphans, *next; s; s = next) {
        next = s->next;
        if (s->keepfd >= 0)
            close(s->keepfd); /* the runtime's end cuts a send that went on short */
        weft__free(u->w, s);
    }
    weft__free(u->w, u->fds);
    u->fds = NULL;
    u->nfds = 0;
    u->orphans = NULL;
}

static int grow_table(weft__usends *u, int fd)
{
    size_t n = u->nfds ? u->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    weft__usend **fds = weft__realloc(u->w, u->fds, n * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    memset(fds + u->nfds, 0, (n - u->nfds) * sizeof *fds);
    u->fds = fds;
    u->nfds = n;
    return 0;
}

/* The smallest capacity worth allocating: a record is reused for every write of its fd. */
#define MIN_CAP 256u

weft__usend *weft__usends_get(weft__usends *u, int fd, uint32_t fdgen, uint32_t len)
{
    if (fd < 0 || ((size_t)fd >= u->nfds && grow_table(u, fd) < 0))
        return NULL;
    weft__usend *s = u->fds[fd];
    if (s && s->fdgen != fdgen) {
        weft__usends_forget(u, fd); /* a record of an earlier file with this number */
        s = NULL;
    }
    if (s && s->cap >= len)
        return s;
    uint32_t cap = s ? s->cap : MIN_CAP;
    while (cap < len)
        cap *= 2;
    /* Not in flight (the caller waited for it), so it may move. */
    weft__usend *n = weft__realloc(u->w, s, sizeof *n + cap);
    if (!n)
        return NULL;
    if (!s)
        *n = (weft__usend){.fd = fd, .fdgen = fdgen, .shut = -1, .keepfd = -1};
    n->cap = cap;
    u->fds[fd] = n;
    return n;
}

static void orphan_unlink(weft__usends *u, weft__usend *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        u->orphans = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

bool weft__usend_complete(weft__usends *u, weft__usend *s, int res)
{
    if (s->orphan) {
        /* Its file was forgotten: what is left of it is not sent (the forget cancelled it,
         * or the fd is closed by now). */
        orphan_unlink(u, s);
        weft__free(u->w, s);
        return false;
    }
    if (res > 0) {
        s->done += (uint32_t)res;
        if (s->done < s->len)
            return true; /* a short send: the rest goes next */
    } else {
        /* A send that took nothing of a non-empty buffer would never end: -EIO, as
         * weft_write's rule for write(2) returning 0. */
        s->err = res < 0 ? res : -EIO;
        s->failed = 1;
    }
    s->inflight = 0;
    return false;
}

void weft__usends_forget(weft__usends *u, int fd)
{
    weft__usend *s = weft__usends_find(u, fd);
    if (!s)
        return;
    u->fds[fd] = NULL;
    if (!s->inflight) {
        weft__free(u->w, s);
        return;
    }
    s->orphan = 1;
    s->prev = NULL;
    s->next = u->orphans;
    if (u->orphans)
        u->orphans->prev = s;
    u->orphans = s;
}
