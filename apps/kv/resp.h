/* The RESP2 request parser: multibulk (`*N\r\n$len\r\n...`) and inline commands
 * (`SET a "b c"\n`), incremental. It keeps its place between calls, so a command that arrives
 * split at any byte parses the same as one that arrives whole, and bytes already parsed are
 * not scanned again. Arguments are offsets into the caller's buffer, counted from the start of
 * the command, so the caller may move (compact, grow) the buffer between calls as long as the
 * command's bytes keep their order from its first byte. Limits and error texts are Redis 7's. */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stddef.h>

/* Redis's proto-max-bulk-len: the largest bulk string a request may carry. */
#define RESP_MAX_BULK ((long long)512 * 1024 * 1024)
/* Redis's PROTO_INLINE_MAX_SIZE: the longest inline command, or count line, without its end. */
#define RESP_MAX_INLINE ((size_t)64 * 1024)

/* One argument: `len` bytes at `off` from the command's first byte. */
typedef struct resp_arg {
    size_t off;
    size_t len;
} resp_arg;

/* Parser state of one connection; zero it (or resp_reset it) before the first command. The
 * argv array grows with the arguments actually received, never from a declared count. */
typedef struct resp_parser {
    long long nargs;    /* arguments the multibulk header declared; 0 before the header */
    size_t argc;        /* arguments parsed so far */
    long long bulk_len; /* length of the bulk being read, -1 while its `$` line is awaited */
    size_t pos;         /* next byte to parse, from the command's first byte */
    resp_arg *argv;     /* argc entries, owned by the parser (resp_free) */
    size_t argv_cap;
    const char *err; /* after RESP_ERROR: the error reply's text, without "-" and CRLF */
} resp_parser;

enum {
    RESP_ERROR = -1, /* malformed: reply `-<err>` and close, as Redis does */
    RESP_MORE = 0,   /* incomplete: call again once more bytes have arrived */
    RESP_DONE = 1,   /* a command: argv[0 .. argc-1], *consumed bytes long */
    RESP_SKIP = 2,   /* an empty command (blank line, `*0`, `*-1`): *consumed bytes to drop */
};

/* Parses the command that starts at buf[0], of which len bytes have arrived. On RESP_DONE and
 * RESP_SKIP, *consumed is its length; call resp_reset before parsing the next one. Inline
 * commands are unescaped in place (the text of a quoted argument is rewritten in buf).
 * Returns one of the codes above; RESP_ERROR also when argv cannot grow (err says so). */
int resp_parse(resp_parser *p, char *buf, size_t len, size_t *consumed);

/* Readies the parser for the next command, keeping its argv array. */
void resp_reset(resp_parser *p);

/* Frees the argv array. */
void resp_free(resp_parser *p);

/* Strict decimal to long long as Redis's string2ll: optional '-', no '+', no spaces, no
 * leading zeros, within range. Returns 0, or -1 for anything else. Shared with the commands. */
int resp_strtoll(const char *s, size_t len, long long *out);

#endif
