/* The poller over epoll: a registration is the kernel's own (epoll_event.data carries the
 * token), so this backend keeps no table and needs no lock: epoll_ctl is safe from any thread
 * while another waits, and the kernel answers -EEXIST, -ENOENT, -EBADF and -EPERM itself.
 * The waker's eventfd is registered level-triggered under WEFT_POLL_WAKE_TOKEN, which no
 * registration may use. */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "poller.h"
#include "../hooks.h"
#include "../internal.h"
#include "../sys.h"
#include "../worker.h"

/* Events taken per epoll_wait, on the waiter's stack (12 bytes each): larger `max` values
 * are served by one call of this size; the rest wait in the kernel for the next wait. */
#define EP_BATCH 256

typedef struct ep_state {
    int epfd;
    int have_pwait2; /* epoll_pwait2 until the kernel says ENOSYS. owner: the waiter */
} ep_state;

WEFT_COLD static int ep_init(weft_poller *p)
{
    ep_state *s = weft__malloc(NULL, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->have_pwait2 = !weft__hook_on_valgrind(); /* valgrind does not know epoll_pwait2 */
    s->epfd = weft__sys_epoll_create(NULL, EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WEFT_POLL_WAKE_TOKEN};
    int r =
        s->epfd < 0 ? s->epfd : weft__sys_epoll_ctl(NULL, s->epfd, EPOLL_CTL_ADD, p->wakefd, &ev);
    if (r < 0) {
        if (s->epfd >= 0)
            weft__sys_close(NULL, s->epfd);
        weft__free(NULL, s);
        return r;
    }
    p->backend = s;
    p->exact_edge = 1;
    return 0;
}

WEFT_COLD static void ep_fini(weft_poller *p)
{
    ep_state *s = p->backend;
    weft__sys_close(NULL, s->epfd);
    weft__free(NULL, s);
}

static int ep_ctl(weft_poller *p, int op, int fd, uint64_t token, unsigned interest)
{
    ep_state *s = p->backend;
    if (fd == p->wakefd || fd == s->epfd)
        return op == EPOLL_CTL_ADD ? -EINVAL : -ENOENT; /* the poller's own fds */
    struct epoll_event ev = {.events = weft__poller_epoll_mask(interest), .data.u64 = token};
    if (interest & WEFT_POLL_EDGE)
        ev.events |= EPOLLET;
    if (interest & WEFT_POLL_ONESHOT)
        ev.events |= EPOLLONESHOT;
    int r = weft__sys_epoll_ctl(NULL, s->epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
    /* A file epoll refuses (-EPERM: regular, directory, /dev/null) was never registered: its
     * removal is "not registered", as weft.h says and io_uring's table answers. */
    return op == EPOLL_CTL_DEL && r == -EPERM ? -ENOENT : r;
}

static int ep_wait(weft_poller *p, weft_poll_event *evs, int max, int64_t timeout_ns)
{
    ep_state *s = p->backend;
    struct epoll_event kev[EP_BATCH];
    int n = weft__sys_epoll_wait(NULL, s->epfd, kev, max < EP_BATCH ? max : EP_BATCH, timeout_ns,
                                 &s->have_pwait2);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        evs[i].token = kev[i].data.u64;
        evs[i].reserved_ = 0;
        if (kev[i].data.u64 == WEFT_POLL_WAKE_TOKEN) {
            /* Drained before it is reported: a wake written after this read is a new
             * one, which the level-triggered registration reports at the next wait. */
            uint64_t v;
            while (weft__sys_read(NULL, p->wakefd, &v, sizeof v) > 0)
                ;
            evs[i].events = WEFT_POLL_WAKE;
            continue;
        }
        evs[i].events = weft__poller_bits(kev[i].events);
    }
    return n;
}

const weft__poller_ops weft__poller_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .ctl = ep_ctl,
    .wait = ep_wait,
};
