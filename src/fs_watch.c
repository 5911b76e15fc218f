/* Watching files and directories: an inotify instance read as a stream of events. Its fd is
 * non-blocking; a task reads it on the worker's thread (a read of an inotify fd never waits
 * with O_NONBLOCK) and, when it is empty, waits for readability through weft_fd_wait, so the
 * wait is the backend's own (epoll, or a ring poll). Invariant: [pos, len) of buf holds whole
 * events not yet handed out, and the fd is read only when that is empty, so an interrupted
 * wait loses no event. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/inotify.h>

#include "core.h"
#include "io/backend.h"
#include "io/io.h"

/* 4 KiB: dozens of events per read; and at least one event of the longest name, so that no
 * read fails with EINVAL for want of room (inotify(7)). */
#define WATCH_BUF 4096
_Static_assert(WATCH_BUF >= sizeof(struct inotify_event) + NAME_MAX + 1,
               "the read buffer must hold the largest event");

struct weft_fswatch {
    int fd;     /* the inotify instance, non-blocking */
    size_t pos; /* the next event in buf */
    size_t len; /* bytes of events in buf */
    /* Aligned as the events the kernel writes (read via memcpy all the same). */
    _Alignas(struct inotify_event) char buf[WATCH_BUF];
};

int weft_fswatch_create(weft_fswatch **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    weft_fswatch *wt = weft__malloc(w, sizeof *wt);
    if (!wt)
        return -ENOMEM;
    int fd = weft__sys_inotify_init(&w->sys, IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        weft__free(w, wt);
        return fd;
    }
    /* Known already: pollable, record by record, and non-blocking. */
    weft__io_fd_known(w, fd, WEFT__FD_POLLED);
    wt->fd = fd;
    wt->pos = wt->len = 0;
    *out = wt;
    return 0;
}

typedef struct add_job {
    int fd;
    const char *path;
    uint32_t mask;
    int result; /* the wd or -errno, set on the pool thread */
} add_job;

static void *run_add(void *arg)
{
    add_job *j = arg;
    /* NULL record: a pool thread; the worker counted the call before handing it over. */
    j->result = weft__sys_inotify_add_watch(NULL, j->fd, j->path, j->mask);
    return NULL;
}

int weft_fswatch_add(weft_fswatch *wt, const char *path, uint32_t mask, int64_t deadline)
{
    if (!wt || !path || mask == 0)
        return -EINVAL;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    /* It resolves a path, which may wait for a device: on the pool. A passed deadline ends it
     * before it starts, as for weft_fs_*. */
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return -ETIMEDOUT;
    int fault = weft__sys_enter(&w->sys, WEFT__SYS_inotify_add_watch);
    if (fault < 0)
        return fault;
    add_job j = {.fd = wt->fd, .path = path, .mask = mask};
    int r = weft_blocking(run_add, &j, NULL, deadline);
    return r < 0 ? r : j.result;
}

int weft_fswatch_remove(weft_fswatch *wt, int wd)
{
    if (!wt)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    return weft__sys_inotify_rm_watch(w ? &w->sys : NULL, wt->fd, wd);
}

/* Takes the event at pos into *ev and moves past it. */
static void take(weft_fswatch *wt, weft_fswatch_event *ev)
{
    struct inotify_event e;
    memcpy(&e, wt->buf + wt->pos, sizeof e);
    const char *name = wt->buf + wt->pos + sizeof e;
    wt->pos += sizeof e + e.len;
    ev->wd = e.wd;
    ev->mask = e.mask;
    ev->cookie = e.cookie;
    /* The name is NUL-padded to len bytes (len 0: none); at most NAME_MAX before the NUL. */
    size_t n = strnlen(name, e.len);
    if (n >= sizeof ev->name)
        n = sizeof ev->name - 1;
    memcpy(ev->name, name, n);
    ev->name[n] = '\0';
}

int weft_fswatch_next(weft_fswatch *wt, weft_fswatch_event *ev, int64_t deadline)
{
    if (!wt || !ev)
        return -EINVAL;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    for (;;) {
        if (wt->pos < wt->len) {
            take(wt, ev);
            return 0;
        }
        ssize_t n = weft__sys_read(&w->sys, wt->fd, wt->buf, sizeof wt->buf);
        if (n > 0) {
            wt->pos = 0;
            wt->len = (size_t)n;
            continue;
        }
        if (n == -EINTR)
            continue;
        if (n == 0)
            return -EIO; /* inotify never reads 0 bytes: refuse rather than spin */
        if (n != -EAGAIN)
            return (int)n;
        /* Empty: wait for the kernel to queue one. The fd stays registered until destroy. */
        int r = weft_fd_wait(wt->fd, WEFT_READABLE, deadline);
        if (r < 0)
            return r;
        w = weft__worker_current();
    }
}

void weft_fswatch_destroy(weft_fswatch *wt)
{
    if (!wt)
        return;
    weft_close(wt->fd); /* forgets its registration; closing drops every watch */
    weft__free(weft__worker_current(), wt);
}
