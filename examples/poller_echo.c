/* An echo server written with the poller only: no runtime, no coroutines, one thread and one
 * weft_poller (mio's shape). The listener is registered under token 0, each connection under
 * its fd, level-triggered for reads; output the peer does not take at once is kept and the
 * connection re-registered for writes until it drains. weft_poller_wake stops the loop from
 * another thread (the demo's client thread) or from a signal handler (SIGINT, SIGTERM): it is
 * async-signal-safe.
 *
 *   poller_echo [PORT]   serve on 127.0.0.1:PORT (default 7001; 0: a port the kernel picks)
 *                        until SIGINT or SIGTERM, then close every connection and exit 0
 *   poller_echo demo     serve on a port the kernel picks, run 100 echoes from a client
 *                        thread, print the count and exit (the CTest smoke test)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

#define MAX_FDS  1024
#define LISTENER 0

typedef struct conn {
    char out[4096]; /* bytes read but not yet written back */
    size_t nout;
} conn;

static conn *conns[MAX_FDS];

static void drop(weft_poller *p, int fd)
{
    weft_poller_deregister(p, fd); /* before close: see weft.h */
    close(fd);
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Writes what is pending; returns 0, or -1 when the connection is gone. */
static int flush(weft_poller *p, int fd, conn *c)
{
    while (c->nout) {
        ssize_t n = write(fd, c->out, c->nout);
        if (n < 0)
            break;
        memmove(c->out, c->out + n, c->nout - (size_t)n);
        c->nout -= (size_t)n;
    }
    /* Reads while nothing is pending; writes (only) while the peer lags. */
    unsigned want = c->nout ? WEFT_WRITABLE : WEFT_READABLE;
    return weft_poller_reregister(p, fd, (uint64_t)fd, want) == 0 ? 0 : -1;
}

static void serve(weft_poller *p, int lfd)
{
    weft_poll_event ev[64];
    for (;;) {
        int n = weft_poller_wait(p, ev, 64, WEFT_FOREVER);
        if (n < 0 && n != -EINTR) {
            fprintf(stderr, "poller_echo: wait: %s\n", weft_strerror(n));
            return;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].events & WEFT_POLL_WAKE)
                return;
            if (ev[i].token == LISTENER) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (fd >= MAX_FDS || !(conns[fd] = calloc(1, sizeof(conn))) ||
                        weft_poller_register(p, fd, (uint64_t)fd, WEFT_READABLE) < 0) {
                        free(fd < MAX_FDS ? conns[fd] : NULL);
                        if (fd < MAX_FDS)
                            conns[fd] = NULL;
                        close(fd);
                    }
                }
                continue;
            }
            int fd = (int)ev[i].token;
            conn *c = conns[fd];
            if (c->nout == 0) {
                ssize_t got = read(fd, c->out, sizeof c->out);
                if (got == 0 || (got < 0 && (ev[i].events & WEFT_POLL_ERROR))) {
                    drop(p, fd); /* the peer closed, or the connection failed */
                    continue;
                }
                if (got > 0)
                    c->nout = (size_t)got;
            }
            if (flush(p, fd, c) < 0)
                drop(p, fd);
        }
    }
}

static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("poller_echo: listen");
        exit(1);
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

typedef struct demo {
    weft_poller *p;
    int port;
    int echoed;
} demo;

/* The demo's client: plain blocking sockets on a thread of its own. */
static void *client(void *arg)
{
    demo *d = arg;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)d->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 10; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            close(fd);
            continue;
        }
        for (int k = 0; k < 10; k++) {
            char msg[32], back[32];
            int len = snprintf(msg, sizeof msg, "message %d.%d", i, k);
            size_t got = 0;
            if (write(fd, msg, (size_t)len) != len)
                break;
            while (got < (size_t)len) {
                ssize_t n = read(fd, back + got, (size_t)len - got);
                if (n <= 0)
                    break;
                got += (size_t)n;
            }
            d->echoed += got == (size_t)len && memcmp(msg, back, got) == 0;
        }
        close(fd);
    }
    weft_poller_wake(d->p); /* stop the server's loop */
    return NULL;
}

/* The poller the signal handler wakes: set before the handler is installed. */
static weft_poller *stop_poller;

static void on_signal(int sig)
{
    (void)sig;
    weft_poller_wake(stop_poller);
}

int main(int argc, char **argv)
{
    int is_demo = argc == 2 && strcmp(argv[1], "demo") == 0;
    long port = is_demo ? 0 : 7001;
    /* A bad PORT ("abc", "70000") or an extra argument is refused: atoi served "abc" on a
     * port the kernel picked, and 70000 on 4464. */
    if (argc > 2 || (argc == 2 && !is_demo && example_parse_long(argv[1], 0, 65535, &port) < 0)) {
        fprintf(stderr, "usage: poller_echo [PORT] | demo\n");
        return 2;
    }
    weft_poller *p;
    int r = weft_poller_create(&p, WEFT_BACKEND_DEFAULT);
    if (r < 0) {
        fprintf(stderr, "poller_echo: %s\n", weft_strerror(r));
        return 1;
    }
    stop_poller = p;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int bound;
    int lfd = listen_on((int)port, &bound);
    weft_poller_register(p, lfd, LISTENER, WEFT_READABLE);
    demo d = {p, bound, 0};
    pthread_t t;
    if (is_demo)
        pthread_create(&t, NULL, client, &d);
    else
        printf("poller_echo: on 127.0.0.1:%d (%s)\n", bound, weft_poller_backend(p));
    fflush(stdout);
    serve(p, lfd); /* until the demo's client or a signal wakes the poller */
    if (is_demo) {
        pthread_join(t, NULL);
        printf("poller_echo: %d of 100 echoes (%s)\n", d.echoed, weft_poller_backend(p));
    }
    for (int fd = 0; fd < MAX_FDS; fd++)
        if (conns[fd])
            drop(p, fd);
    drop(p, lfd);
    weft_poller_destroy(p);
    return is_demo && d.echoed != 100;
}
