/* Name resolution: getaddrinfo(3) blocks, so it runs on the blocking pool, as a job that a
 * deadline or a cancel leaves behind even while it runs (its thread then frees it). EAI_*
 * codes are mapped onto the errno values the rest of the API uses. */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "io/io.h"
#include "net.h"
#include "pool.h"

/* One getaddrinfo call, allocated with copies of its strings: a deadline or a cancel leaves
 * it to its pool thread, which frees it (gai_free) when getaddrinfo returns. */
typedef struct gai_call {
    char *host, *service; /* copies in the same allocation, or NULL */
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;
    int rc;
    int sys_errno;
} gai_call;

static void *gai_run(void *arg)
{
    gai_call *c = arg;
    c->rc = getaddrinfo(c->host, c->service, c->has_hints ? &c->hints : NULL, &c->res);
    c->sys_errno = c->rc == EAI_SYSTEM ? errno : 0;
    return NULL;
}

/* Frees a call and any result it holds (weft__pool_run_abandonable's `abandon`). */
static void gai_free(void *arg)
{
    gai_call *c = arg;
    if (c->rc == 0 && c->res)
        freeaddrinfo(c->res);
    weft__free(NULL, c);
}

/* A copy of `src` at *at (moved past it), or NULL for NULL. */
static char *copy_str(char **at, const char *src)
{
    if (!src)
        return NULL;
    size_t n = strlen(src) + 1;
    char *dst = memcpy(*at, src, n);
    *at += n;
    return dst;
}

static int map_eai(int rc, int sys_errno)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
        return -EINVAL;
    case EAI_SYSTEM:
        return sys_errno ? -sys_errno : -EIO;
    default:
        return -EIO;
    }
}

/* Whether `service` is a port number past 65535, which glibc's getaddrinfo takes modulo
 * 65536 instead of refusing. A number as getaddrinfo reads it (strtoul, base 10, the whole
 * string): blanks and a sign may come before the digits ("+70000" would be port 4464), and a
 * negative one other than 0 is no port either. */
static bool port_out_of_range(const char *service)
{
    if (!service)
        return false;
    const char *c = service;
    while (*c && strchr(" \t\n\v\f\r", *c))
        c++;
    bool neg = *c == '-';
    if (*c == '+' || *c == '-')
        c++;
    if (*c < '0' || *c > '9')
        return false; /* no digits: a name (or ""), which getaddrinfo looks up */
    unsigned long v = 0;
    for (; *c; c++) {
        if (*c < '0' || *c > '9')
            return false; /* a name: getaddrinfo looks it up */
        if (v <= 65535)
            v = v * 10 + (unsigned long)(*c - '0');
    }
    return v > 65535 || (neg && v != 0);
}

int weft_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res, int64_t deadline)
{
    if (!res || (!host && !service) || port_out_of_range(service))
        return -EINVAL;
    size_t len =
        sizeof(gai_call) + (host ? strlen(host) + 1 : 0) + (service ? strlen(service) + 1 : 0);
    gai_call *c = weft__malloc(weft__worker_current(), len);
    if (!c)
        return weft__worker_current() ? -ENOMEM : -EPERM;
    *c = (gai_call){.rc = EAI_FAIL};
    char *at = (char *)(c + 1);
    c->host = copy_str(&at, host);
    c->service = copy_str(&at, service);
    if (hints) {
        /* The fields getaddrinfo reads; the pointers must be NULL (POSIX). */
        c->hints.ai_flags = hints->ai_flags;
        c->hints.ai_family = hints->ai_family;
        c->hints.ai_socktype = hints->ai_socktype;
        c->hints.ai_protocol = hints->ai_protocol;
        c->has_hints = true;
    }
    /* A resolver may wait for a name server for many seconds (resolv.conf's timeout times
     * its attempts): a deadline or a cancel leaves the call to its thread, which frees it. */
    int r = weft__pool_run_abandonable(gai_run, c, gai_free, deadline);
    if (r < 0)
        return r; /* c is gai_free's */
    r = map_eai(c->rc, c->sys_errno);
    if (r == 0) {
        *res = c->res;
        c->res = NULL;
    }
    gai_free(c);
    return r;
}

int weft_resolve(weft_addr *out, const char *host, int port, int64_t deadline)
{
    if (!out || !host || port < 0 || port > 65535)
        return -EINVAL;
    if (weft_addr_ip(out, host, port) == 0)
        return 0; /* numeric: no thread needed */
    char svc[8];
    snprintf(svc, sizeof svc, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    struct addrinfo *res;
    int r = weft_getaddrinfo(host, svc, &hints, &res, deadline);
    if (r < 0)
        return r;
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
