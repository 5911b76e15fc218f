/* TCP on 127.0.0.1 for the Criterion suites that exercise sockets (test_conformance.c,
 * test_ported.c): a listener on a port the kernel picks, a connected pair, exact reads. Each
 * blocking step has a deadline that only a hang reaches, and fails the test with the error. */
#ifndef WEFT_TEST_TCP_HELPERS_H
#define WEFT_TEST_TCP_HELPERS_H

#include <criterion/criterion.h>
#include <weft.h>

#define TCP_HELPERS_SOON (10 * WEFT_SEC)

/* A listening socket on 127.0.0.1, port 0; *bound receives its address. */
static inline int listener(weft_addr *bound)
{
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0, "listen: %s", weft_strerror(lfd));
    cr_assert_eq(weft_addr_local(lfd, bound), 0);
    return lfd;
}

/* fds[0] dialled, fds[1] accepted: the two ends of one connection. */
static inline void tcp_pair(int fds[2])
{
    weft_addr srv;
    int lfd = listener(&srv);
    fds[0] = weft_dial(&srv, weft_deadline_in(TCP_HELPERS_SOON));
    cr_assert_geq(fds[0], 0, "dial: %s", weft_strerror(fds[0]));
    fds[1] = weft_accept(lfd, NULL, NULL, weft_deadline_in(TCP_HELPERS_SOON));
    cr_assert_geq(fds[1], 0, "accept: %s", weft_strerror(fds[1]));
    cr_assert_eq(weft_close(lfd), 0);
}

/* Reads exactly len bytes, failing the test on an error or an early end. */
static inline void read_exactly(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = weft_read(fd, (char *)buf + got, len - got, weft_deadline_in(TCP_HELPERS_SOON));
        cr_assert_gt(n, 0, "read after %zu of %zu: %s", got, len, weft_strerror((int)n));
        got += (size_t)n;
    }
}

#endif
