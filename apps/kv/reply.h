/* The reply writer: appends replies to an sbuf (the connection's output, or a reply slot of a
 * cross-shard message) in the buffer's protocol: RESP2, or RESP3 once the client sent HELLO 3
 * (sbuf.resp3). The calls that differ between the two say how. Error texts shared by several
 * commands, byte for byte as Redis 7 sends them, are here too. */
#ifndef KV_REPLY_H
#define KV_REPLY_H

#include <stddef.h>

#include "sbuf.h"

#define ERR_SYNTAX    "ERR syntax error"
#define ERR_NOTINT    "ERR value is not an integer or out of range"
#define ERR_NOTFLOAT  "ERR value is not a valid float"
#define ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define ERR_NOKEY     "ERR no such key"
#define ERR_OVERFLOW  "ERR increment or decrement would overflow"
#define ERR_POSITIVE  "ERR value is out of range, must be positive"
#define ERR_OOM       "OOM command not allowed when used memory > 'maxmemory'."
#define ERR_MISCONF                                                                                \
    "MISCONF Errors writing to the AOF file: the write failed (see the server's log); writes "     \
    "are refused until it succeeds"
#define ERR_STRINGSIZE "ERR string exceeds maximum allowed size (proto-max-bulk-len)"

void reply_status(sbuf *b, const char *s); /* +s */
void reply_error(sbuf *b, const char *s);  /* -s (s carries its ERR/WRONGTYPE...) */
void reply_errorf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(sbuf *b, long long v);              /* :v */
void reply_bulk(sbuf *b, const void *p, size_t n); /* $n p */
void reply_bulks(sbuf *b, const char *s);          /* a C string as a bulk */
void reply_bulk_ll(sbuf *b, long long v);          /* a number as a bulk */
void reply_null(sbuf *b);                          /* $-1; RESP3: _ */
void reply_null_array(sbuf *b);                    /* *-1; RESP3: _ */
void reply_array(sbuf *b, long long n);            /* *n, then n replies */
void reply_map(sbuf *b, long long npairs);         /* *2n; RESP3: %n. Then key, value, ... */
void reply_set(sbuf *b, long long n);              /* *n; RESP3: ~n, then n replies */
void reply_double(sbuf *b, double v);              /* a bulk, %.17g; RESP3: ,v */
void reply_bool(sbuf *b, int v);                   /* :0 or :1; RESP3: #f or #t */
/* A text to be shown as is (INFO, CLIENT LIST): a bulk; RESP3: =n txt:... (verbatim). */
void reply_verbatim(sbuf *b, const void *p, size_t n);
void reply_ok(sbuf *b); /* +OK */
/* The wrong-arity error, with the command's name lowercased as Redis prints it. */
void reply_arity(sbuf *b, const char *name, size_t n);

#endif
