/* Directory listing in batches: one getdents64 on the blocking pool (through the reactor's
 * entry point, as every file call) fills the listing's buffer, and weft_dir_next hands the
 * records out one at a time from it. Invariant: [pos, len) of buf holds whole records not yet
 * handed out; a refill happens only when it is empty, so a refill withdrawn by a deadline or a
 * cancellation loses nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>

#include "core.h"
#include "io/backend.h"

/* 32 KiB: a few hundred entries of ordinary names per pool round trip (glibc's readdir takes
 * the same), and still a small allocation. */
#define DIR_BUF (32 * 1024)

struct weft_dir {
    int fd;
    bool eof;      /* getdents64 said 0: the end, for good */
    size_t pos;    /* the next record in buf */
    size_t len;    /* bytes of records in buf */
    uint64_t *buf; /* DIR_BUF bytes, 8-aligned as the records are */
};

int weft_dir_open(weft_dir **out, const char *path, int64_t deadline)
{
    if (!out || !path)
        return -EINVAL;
    *out = NULL;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return -ETIMEDOUT; /* the open needs a wait: as weft_fs_* */
    weft_dir *d = weft__malloc(w, sizeof *d);
    uint64_t *buf = d ? weft__malloc(w, DIR_BUF) : NULL;
    if (!buf) {
        weft__free(w, d);
        return -ENOMEM;
    }
    int fd = weft_file_open(path, O_RDONLY | O_DIRECTORY, 0, deadline);
    if (fd < 0) {
        w = weft__worker_current(); /* the open may have parked: the task's worker now */
        weft__free(w, buf);
        weft__free(w, d);
        return fd;
    }
    *d = (weft_dir){.fd = fd, .buf = buf};
    *out = d;
    return 0;
}

/* Takes the record at pos into *ent and moves past it. Returns whether it was an entry to
 * report ("." and ".." are not). */
static bool take(weft_dir *d, weft_dirent *ent)
{
    const char *rec = (const char *)d->buf + d->pos;
    unsigned short reclen;
    memcpy(&reclen, rec + offsetof(struct dirent64, d_reclen), sizeof reclen);
    d->pos += reclen;
    const char *name = rec + offsetof(struct dirent64, d_name);
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
        return false;
    uint64_t ino;
    memcpy(&ino, rec + offsetof(struct dirent64, d_ino), sizeof ino);
    ent->ino = ino;
    ent->type = (unsigned char)rec[offsetof(struct dirent64, d_type)];
    /* The kernel NUL-terminates d_name within the record; a name is at most NAME_MAX. */
    size_t n = strnlen(name, reclen - offsetof(struct dirent64, d_name));
    if (n >= sizeof ent->name)
        n = sizeof ent->name - 1;
    memcpy(ent->name, name, n);
    ent->name[n] = '\0';
    return true;
}

int weft_dir_next(weft_dir *d, weft_dirent *ent, int64_t deadline)
{
    if (!d || !ent)
        return -EINVAL;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    for (;;) {
        while (d->pos < d->len)
            if (take(d, ent))
                return 1;
        if (d->eof)
            return 0;
        /* Empty: a refill. It cannot complete without a pool job, so a passed deadline ends
         * it before it starts (the outcome would otherwise depend on the pool's speed). */
        if (deadline != WEFT_FOREVER && deadline <= weft_now())
            return -ETIMEDOUT;
        weft__ioreq q = {.op = WEFT__IO_GETDENTS,
                         .fd = d->fd,
                         .opts = WEFT__IOQ_FILE,
                         .buf = d->buf,
                         .len = DIR_BUF};
        ssize_t n = weft__io_submit(w, &q, deadline);
        if (n < 0)
            return (int)n; /* pos == len still: the next call refills from the same place */
        w = weft__worker_current();
        d->pos = 0;
        d->len = (size_t)n;
        d->eof = n == 0;
    }
}

void weft_dir_close(weft_dir *d)
{
    if (!d)
        return;
    weft_close(d->fd); /* forgets what weft knew of the fd, on a runtime's thread */
    weft__worker *w = weft__worker_current(); /* the seam's free needs no worker */
    weft__free(w, d->buf);
    weft__free(w, d);
}
