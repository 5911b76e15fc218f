/* A stress test of closing an fd that tasks of other workers use, run under ThreadSanitizer
 * (a plain program: Criterion cannot start under TSan). Each round makes a socket pair; tasks
 * pinned to every other worker wait to read one end (parked in the reactor: a read that
 * starts while another worker closes the fd races as two threads' read(2) and close(2) do),
 * the main task on worker 0 closes it with weft_close, and each waiter must come back with
 * -EBADF, or with the data when it came first: never a hang. The number is then reused
 * by the next round's pair, whose waiters must see its own data, not the old fd's state. The
 * last part closes from a task that is not on worker 0, and from a watch callback (which
 * cannot wait, so the last forget closes the fd).
 * Prints one line per part and exits non-zero on any failure. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

#if defined(__SANITIZE_THREAD__)
enum { ROUNDS = 200 };
#else
enum { ROUNDS = 2000 };
#endif
enum { NWORKERS = 3 };

static void *read_one(void *arg)
{
    char c;
    ssize_t n = weft_read((int)(intptr_t)arg, &c, 1, WEFT_FOREVER);
    return (void *)(intptr_t)(n == 1 ? c : n);
}

/* Until t is parked (or done: a reader that found data). */
static void wait_parked(weft_task *t)
{
    int st;
    while ((st = weft_task_status(t)) != WEFT_TASK_PARKED && st != WEFT_TASK_FINISHED)
        weft_sleep(20 * WEFT_USEC);
}

static void pair(int p[2])
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0, "socketpair: %d", errno);
}

static void *close_round(void *arg)
{
    (void)arg;
    int bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        pair(p);
        weft_task *t[NWORKERS];
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        unsigned me = (unsigned)weft_worker_index();
        int n = 0;
        for (unsigned k = 0; k < NWORKERS; k++)
            if (k != me)
                CHECK(weft_spawn_on(k, &t[n++], read_one, (void *)(intptr_t)p[1], &pin) == 0,
                      "spawn_on");
        for (int i = 0; i < n; i++)
            wait_parked(t[i]);
        /* One round in four the data comes first: a waiter that read it returns 'a'. Half the
         * rounds close at once, the others after the workers had a moment. */
        if (round % 4 == 1)
            CHECK(weft_write(p[0], "aa", 2, WEFT_FOREVER) == 2, "write");
        if (round % 2 == 0)
            weft_sleep(100 * WEFT_USEC);
        CHECK(weft_close(p[1]) == 0, "close");
        for (int i = 0; i < n; i++) {
            void *r = NULL;
            CHECK(weft_join(t[i], &r, WEFT_FOREVER) == 0, "join");
            intptr_t v = (intptr_t)r;
            if (v != -EBADF && v != 'a')
                bad++;
        }
        weft_close(p[0]);
    }
    CHECK(bad == 0, "%d waiters came back with neither -EBADF nor the data", bad);
    return NULL;
}

/* A number closed on one worker and reused: a waiter of another worker on the new socket
 * gets its byte. */
static void *reuse_round(void *arg)
{
    (void)arg;
    unsigned other = (unsigned)(weft_worker_index() + 1) % NWORKERS;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        pair(p);
        weft_task *t;
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        CHECK(weft_spawn_on(other, &t, read_one, (void *)(intptr_t)p[1], &pin) == 0, "spawn");
        wait_parked(t);
        CHECK(weft_write(p[0], "b", 1, WEFT_FOREVER) == 1, "write");
        void *r = NULL;
        CHECK(weft_join(t, &r, WEFT_FOREVER) == 0 && (intptr_t)r == 'b',
              "round %d: the reader of the new fd got %ld", round, (long)(intptr_t)r);
        weft_close(p[0]);
        weft_close(p[1]);
    }
    return NULL;
}

static atomic_int closed_from_callback;
static int watched_fd;

/* A watch's callback cannot wait: its close leaves the fd's close to the last forget. */
static void on_tick(weft_watch *wt, int fd, unsigned events, void *arg)
{
    (void)wt, (void)fd, (void)events, (void)arg;
    if (atomic_exchange(&closed_from_callback, 1) == 0)
        CHECK(weft_close(watched_fd) == 0, "close from a callback");
}

static void *main_task(void *arg)
{
    (void)arg;
    CHECK(weft_worker_count() == NWORKERS, "%u workers", weft_worker_count());
    close_round(NULL);
    printf("closes racing waiters on %d workers: %d rounds\n", NWORKERS - 1, ROUNDS);
    reuse_round(NULL);
    printf("reused numbers: %d rounds\n", ROUNDS);
    /* From a task of worker 1, waiters on workers 0 and 2. */
    weft_task *t;
    CHECK(weft_spawn_on(1, &t, close_round, NULL, NULL) == 0, "spawn");
    CHECK(weft_join(t, NULL, WEFT_FOREVER) == 0, "join");
    printf("closes from worker 1\n");
    /* From a callback: a reader on worker 2 must come back. */
    int p[2];
    pair(p);
    watched_fd = p[1];
    weft_task *r;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    CHECK(weft_spawn_on(2, &r, read_one, (void *)(intptr_t)p[1], &pin) == 0, "spawn");
    wait_parked(r);
    weft_watch *wt = NULL;
    CHECK(weft_watch_add(&wt, -1, WEFT_WATCH_TIMER | WEFT_WATCH_PERSIST, WEFT_MSEC, on_tick,
                         NULL) == 0,
          "watch");
    void *v = NULL;
    CHECK(weft_join(r, &v, WEFT_FOREVER) == 0 && (intptr_t)v == -EBADF, "reader: %ld",
          (long)(intptr_t)v);
    weft_watch_del(wt);
    close(p[0]);
    printf("close from a callback\n");
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = NWORKERS;
    int r = weft_run(&c, main_task, NULL, NULL);
    CHECK(r == 0, "weft_run: %d", r);
    printf(failures ? "FAILED\n" : "passed\n");
    return failures != 0;
}
