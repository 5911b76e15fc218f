/* The reply writer, RESP2 and RESP3 (reply.h). Numbers are formatted by hand: these calls sit on
 * every reply's path. */
#include "reply.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Writes "<c><v>\r\n". */
static void prefixed_ll(sbuf *b, char c, long long v)
{
    char tmp[32];
    char *e = tmp + sizeof tmp, *p = e;
    *--p = '\n';
    *--p = '\r';
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    *--p = c;
    sbuf_add(b, p, (size_t)(e - p));
}

void reply_status(sbuf *b, const char *s)
{
    sbuf_add(b, "+", 1);
    sbuf_adds(b, s);
    sbuf_add(b, "\r\n", 2);
}

void reply_ok(sbuf *b)
{
    sbuf_add(b, "+OK\r\n", 5);
}

void reply_error(sbuf *b, const char *s)
{
    sbuf_add(b, "-", 1);
    /* A reply line cannot carry a line break: Redis turns them into spaces too. */
    size_t n = strlen(s);
    if (sbuf_reserve(b, n + 2) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        b->data[b->len++] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    sbuf_add(b, "\r\n", 2);
}

void reply_errorf(sbuf *b, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error(b, msg);
}

void reply_int(sbuf *b, long long v)
{
    prefixed_ll(b, ':', v);
}

void reply_bulk(sbuf *b, const void *p, size_t n)
{
    prefixed_ll(b, '$', (long long)n);
    if (sbuf_reserve(b, n + 2) < 0)
        return;
    if (n) /* p may be NULL for none */
        memcpy(b->data + b->len, p, n);
    memcpy(b->data + b->len + n, "\r\n", 2);
    b->len += n + 2;
}

void reply_bulks(sbuf *b, const char *s)
{
    reply_bulk(b, s, strlen(s));
}

void reply_bulk_ll(sbuf *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    reply_bulk(b, tmp, (size_t)n);
}

void reply_null(sbuf *b)
{
    if (b->resp3)
        sbuf_add(b, "_\r\n", 3);
    else
        sbuf_add(b, "$-1\r\n", 5);
}

void reply_null_array(sbuf *b)
{
    if (b->resp3)
        sbuf_add(b, "_\r\n", 3);
    else
        sbuf_add(b, "*-1\r\n", 5);
}

void reply_array(sbuf *b, long long n)
{
    prefixed_ll(b, '*', n);
}

void reply_map(sbuf *b, long long npairs)
{
    if (b->resp3)
        prefixed_ll(b, '%', npairs);
    else
        prefixed_ll(b, '*', npairs * 2);
}

void reply_set(sbuf *b, long long n)
{
    prefixed_ll(b, b->resp3 ? '~' : '*', n);
}

void reply_double(sbuf *b, double v)
{
    /* Redis's addReplyDouble: inf and -inf spelled out, else %.17g (which round-trips). */
    char tmp[64];
    int n;
    if (isinf(v))
        n = snprintf(tmp, sizeof tmp, "%s", v > 0 ? "inf" : "-inf");
    else
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
    if (b->resp3) {
        sbuf_add(b, ",", 1);
        sbuf_add(b, tmp, (size_t)n);
        sbuf_add(b, "\r\n", 2);
    } else {
        reply_bulk(b, tmp, (size_t)n);
    }
}

void reply_bool(sbuf *b, int v)
{
    if (b->resp3)
        sbuf_add(b, v ? "#t\r\n" : "#f\r\n", 4);
    else
        sbuf_add(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void reply_verbatim(sbuf *b, const void *p, size_t n)
{
    if (!b->resp3) {
        reply_bulk(b, p, n);
        return;
    }
    prefixed_ll(b, '=', (long long)n + 4);
    sbuf_add(b, "txt:", 4);
    sbuf_add(b, p, n);
    sbuf_add(b, "\r\n", 2);
}

void reply_arity(sbuf *b, const char *name, size_t n)
{
    char low[64];
    size_t k = n < sizeof low - 1 ? n : sizeof low - 1;
    for (size_t i = 0; i < k; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[k] = 0;
    reply_errorf(b, "ERR wrong number of arguments for '%s' command", low);
}
