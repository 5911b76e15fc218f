/* The I/O layer's interface to the rest of weft (io/reactor.c): setting up and tearing down
 * a worker's reactor, the loop's polls, and the fd-record calls net.c and fs.c make. */
#ifndef WEFT_IO_IO_H
#define WEFT_IO_IO_H

#include "../internal.h"

/* Sets up w's reactor with the backend asked for (WEFT_BACKEND_*), and installs w's
 * doorbell. Returns 0 or -errno. */
/* movable: w may be driven by other threads than this one (the hand-off is on). */
int weft__io_init(weft__worker *w, int backend, bool movable);
void weft__io_fini(weft__worker *w);
/* Polls the backend, waiting at most timeout_ns (-1: forever, 0: not at all), and wakes the
 * tasks of at most about max_events events (the rest stay with the kernel for the next poll). */
int weft__io_poll(weft__worker *w, int64_t timeout_ns, int max_events);
/* Tasks parked on fds: when non-zero, ticks must poll I/O even while tasks are ready. */
size_t weft__io_nwaiters(weft__worker *w);
/* Submissions the last poll held back (weft__io.held): when true, ticks must poll I/O even
 * while tasks are ready and none waits, or nothing would hand them to the kernel. */
bool weft__io_held(weft__worker *w);
/* Forgets any record of fd without a syscall: for an fd number the kernel just handed out,
 * which cannot be registered yet whatever the table says. */
void weft__io_fd_fresh(weft__worker *w, int fd);
/* The same, for an fd whose creator knows its kind (WEFT__FD_*, io/backend.h) and made it
 * non-blocking: it is then never classified. Every caller passing WEFT__FD_STREAM has made
 * or accepted a stream socket (not a pipe): the record says so. */
void weft__io_fd_known(weft__worker *w, int fd, int kind);
/* Takes shutdown(fd, SHUT_WR) to run once the writes w's backend took for fd without waiting
 * are over (io_uring's write-behind sends). Returns false when there are none: the caller
 * shuts down now. Worker thread. */
bool weft__io_defer_shutdown(weft__worker *w, int fd);
/* Gives back readiness a wait took that nobody used (a general select's fd case that lost,
 * select.c): on epoll the mask is marked again and the fd's next waiter woken, as an edge
 * would; io_uring's polls take nothing, so there it does nothing. Worker thread. */
void weft__io_fd_unconsume(weft__worker *w, int fd, unsigned mask);
/* fd's readiness for `events` (WEFT_READABLE|WEFT_WRITABLE) now, by one poll(2) that does
 * not wait and takes nothing: the ready mask (0: not ready; an error or hang-up counts as
 * ready in each direction asked, as the reactor's waits say it), -EBADF (not an open fd) or
 * -errno. The level look of the general select, weft_fd_future and the watches. */
int weft__io_fd_ready_now(weft__worker *w, int fd, int events);
/* Whether the backend's own receive takes fd's bytes (io_uring's armed receive, once weft
 * has read the socket): then only weft's reads see them, and a splice(2) of the socket would
 * not. Worker thread. */
bool weft__io_takes_reads(weft__worker *w, int fd);
/* fd's kind as far as the reactor knows it (0: not classified yet). */
int weft__io_fd_kind(weft__worker *w, int fd);
/* fd's kind, classifying it first if it is new (which makes it non-blocking, as any first
 * operation does), or -errno (-EBADF). */
int weft__io_fd_classify(weft__worker *w, int fd);
/* Whether the requests a thread submitted for w are tied to that thread (io_uring runs their
 * completion work there, and cancels them when it exits): a thread that drove w must outlive
 * w's I/O, and must not sleep in the kernel for long while w goes on (in_place.c). */
bool weft__io_requests_tied_to_thread(const weft__worker *w);

#ifdef WEFT_TESTING
/* The size of the current worker's fd table, in records. Tests only. */
size_t weft__io_nfds(void);
#endif

#endif
