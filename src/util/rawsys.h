/* A system call made with the CPU's own instruction instead of through libc's wrapper, for
 * the calls a message makes (read, write, recv, send and their vector forms: sys.h).
 *
 * Why. libc's read(2) and write(2) are cancellation points: in a process with more than one
 * thread (every runtime has its watchdog) glibc brackets each with
 * __pthread_enable_asynccancel and __pthread_disable_asynccancel, two compare-and-swaps on
 * the thread's cancel word and about 30 instructions around each call. weft never cancels
 * its workers with pthread_cancel, so that is pure cost: 64 instructions and 4 locked
 * instructions per echoed message on epoll. The call here also returns -errno itself, so
 * errno (a TLS lookup) is not touched.
 *
 * Under AddressSanitizer and ThreadSanitizer libc's wrappers stay: their interceptors check
 * the buffers a call reads and writes, and TSan orders threads that talk through a pipe or a
 * socket by the read and the write it sees. Valgrind follows the instruction itself. On a CPU
 * other than x86_64 and aarch64 the call goes through syscall(2).
 *
 * As with Go's runtime, which never calls libc's wrappers, an LD_PRELOAD library that
 * interposes on libc's read, write, recv or send (a user-space TCP stack, a SOCKS shim) does
 * not see these calls: a build with -DWEFT_LIBC_SYSCALLS=ON (CMake) makes them through libc. */
#ifndef WEFT_UTIL_RAWSYS_H
#define WEFT_UTIL_RAWSYS_H

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(WEFT_LIBC_SYSCALLS) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEFT__RAWSYS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define WEFT__RAWSYS 0
#endif
#endif
#ifndef WEFT__RAWSYS
#define WEFT__RAWSYS 1
#endif

/* nr(a, b, c, d, e, f): the result, or -errno. Pass 0 for the arguments the call does not
 * take (recvfrom and sendto read their fifth and sixth: a NULL address). */
static inline long weft__rawsys6(long nr, long a, long b, long c, long d, long e, long f)
{
#if WEFT__RAWSYS && defined(__x86_64__)
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    /* The kernel clobbers rcx (the return address) and r11 (the flags); "memory": it reads
     * and writes the buffers the arguments point at. */
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
#elif WEFT__RAWSYS && defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
#else
    long r = syscall(nr, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
#endif
}

#endif
