/* A stress test of the poller's cross-thread paths, run under ThreadSanitizer (a plain
 * program: see remote_wake.c). One thread waits in a loop while NTHREADS others register,
 * reregister and deregister their own socketpairs, write to them and wake the waiter, over
 * ROUNDS rounds, on each backend. Every event must carry a token of a live thread's range
 * or the waker's; the waiter must end when told; nothing may be left registered. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

enum { NTHREADS = 2, NFDS = 8, ROUNDS = 200 };

static weft_poller *poller;
static atomic_int stop;
static atomic_long nevents, nwakes;

static void *waiter(void *arg)
{
    (void)arg;
    weft_poll_event ev[16];
    while (!atomic_load(&stop)) {
        int n = weft_poller_wait(poller, ev, 16, WEFT_FOREVER);
        CHECK(n > 0 || n == -EINTR, "wait: %s", weft_strerror(n));
        for (int i = 0; i < n; i++) {
            if (ev[i].token == WEFT_POLL_WAKE_TOKEN) {
                CHECK(ev[i].events == WEFT_POLL_WAKE, "waker event %#x", ev[i].events);
                atomic_fetch_add(&nwakes, 1);
                continue;
            }
            CHECK(ev[i].token < NTHREADS * NFDS * 2, "token %llu", (unsigned long long)ev[i].token);
            atomic_fetch_add(&nevents, 1);
        }
    }
    return NULL;
}

static void *churn(void *arg)
{
    int id = (int)(intptr_t)arg;
    int sv[NFDS][2];
    for (int i = 0; i < NFDS; i++)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]) == 0, "socketpair");
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NFDS; i++) {
            uint64_t tok = (uint64_t)(id * NFDS + i);
            unsigned mode = (round + i) % 3 == 0   ? WEFT_POLL_LEVEL
                            : (round + i) % 3 == 1 ? WEFT_POLL_EDGE
                                                   : WEFT_POLL_ONESHOT;
            int r = weft_poller_register(poller, sv[i][0], tok, WEFT_READABLE | mode);
            CHECK(r == 0, "register: %s", weft_strerror(r));
            CHECK(write(sv[i][1], "x", 1) == 1, "write");
        }
        CHECK(weft_poller_wake(poller) == 0, "wake");
        for (int i = 0; i < NFDS; i++) {
            uint64_t tok = (uint64_t)(NTHREADS * NFDS + id * NFDS + i);
            int r = weft_poller_reregister(poller, sv[i][0], tok, WEFT_READABLE | WEFT_WRITABLE);
            CHECK(r == 0, "reregister: %s", weft_strerror(r));
            char c;
            CHECK(read(sv[i][0], &c, 1) == 1, "read");
            r = weft_poller_deregister(poller, sv[i][0]);
            CHECK(r == 0, "deregister: %s", weft_strerror(r));
        }
    }
    for (int i = 0; i < NFDS; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    return NULL;
}

static void run(unsigned backend)
{
    CHECK(weft_poller_create(&poller, backend) == 0, "create");
    atomic_store(&stop, 0);
    pthread_t w, t[NTHREADS];
    pthread_create(&w, NULL, waiter, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)(intptr_t)i);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stop, 1);
    CHECK(weft_poller_wake(poller) == 0, "wake");
    pthread_join(w, NULL);
    /* Everything was deregistered: a last wait sees at most the waker. */
    weft_poll_event ev[4];
    int n = weft_poller_wait(poller, ev, 4, 0);
    CHECK(n == 0 || (n == 1 && ev[0].events == WEFT_POLL_WAKE), "left over: %d", n);
    printf("%s: %ld events, %ld wakes\n", weft_poller_backend(poller), atomic_load(&nevents),
           atomic_load(&nwakes));
    weft_poller_destroy(poller);
}

int main(void)
{
    run(WEFT_BACKEND_EPOLL);
    run(WEFT_BACKEND_IO_URING);
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures != 0;
}
