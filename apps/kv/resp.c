/* The RESP2 request parser (resp.h). Multibulk requests are parsed line by line as bytes
 * arrive, with the position kept in the parser; an inline command is parsed when its whole
 * line has arrived. The quirks follow Redis 7 (networking.c) so that clients see the same
 * replies: the two bytes after a bulk are skipped unchecked, counts are parsed strictly, and
 * `*0` / `*-1` / blank lines are empty commands. */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void resp_reset(resp_parser *p)
{
    p->nargs = 0;
    p->argc = 0;
    p->bulk_len = -1;
    p->pos = 0;
    p->err = NULL;
}

void resp_free(resp_parser *p)
{
    free(p->argv);
    p->argv = NULL;
    p->argv_cap = 0;
}

int resp_strtoll(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 20)
        return -1;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        if (++i == len)
            return -1;
    }
    if (s[i] == '0') { /* only "0" itself may start with a zero */
        if (len == 1) {
            *out = 0;
            return 0;
        }
        return -1;
    }
    unsigned long long v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return -1;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return -1;
        *out = (long long)v;
    }
    return 0;
}

static int push_arg(resp_parser *p, size_t off, size_t len)
{
    if (p->argc == p->argv_cap) {
        size_t cap = p->argv_cap ? p->argv_cap * 2 : 16;
        resp_arg *a = realloc(p->argv, cap * sizeof *a);
        if (!a) {
            p->err = "ERR out of memory parsing the request";
            return -1;
        }
        p->argv = a;
        p->argv_cap = cap;
    }
    p->argv[p->argc].off = off;
    p->argv[p->argc].len = len;
    p->argc++;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Splits line[0 .. n) into arguments the way Redis's sdssplitargs does: blanks separate,
 * "double quotes" take \n \r \t \b \a \xHH and \<c> escapes, 'single quotes' take \', and a
 * closing quote must be followed by a blank or the end. The unescaped text is written back
 * over the line (never longer than its source). Returns 0 or -1 (unbalanced quotes). */
/* What ends an unquoted word: Redis's sdssplitargs stops at a space, \n, \r or \t only, so
 * a \v or \f (which isspace() also takes, and which skip the blanks between words) is part
 * of the word. */
static int ends_word(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int split_inline(resp_parser *p, char *line, size_t n)
{
    size_t r = 0;
    while (r < n) {
        while (r < n && isspace((unsigned char)line[r]))
            r++;
        if (r == n)
            break;
        size_t start = r, w = r;
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            if (inq) {
                if (r == n)
                    return -1;
                if (line[r] == '\\' && r + 3 < n && line[r + 1] == 'x' &&
                    hexval(line[r + 2]) >= 0 && hexval(line[r + 3]) >= 0) {
                    line[w++] = (char)(hexval(line[r + 2]) * 16 + hexval(line[r + 3]));
                    r += 4;
                } else if (line[r] == '\\' && r + 1 < n) {
                    char c = line[r + 1];
                    line[w++] = c == 'n'   ? '\n'
                                : c == 'r' ? '\r'
                                : c == 't' ? '\t'
                                : c == 'b' ? '\b'
                                : c == 'a' ? '\a'
                                           : c;
                    r += 2;
                } else if (line[r] == '"') {
                    if (r + 1 < n && !isspace((unsigned char)line[r + 1]))
                        return -1;
                    r++;
                    done = 1;
                } else {
                    line[w++] = line[r++];
                }
            } else if (insq) {
                if (r == n)
                    return -1;
                if (line[r] == '\\' && r + 1 < n && line[r + 1] == '\'') {
                    line[w++] = '\'';
                    r += 2;
                } else if (line[r] == '\'') {
                    if (r + 1 < n && !isspace((unsigned char)line[r + 1]))
                        return -1;
                    r++;
                    done = 1;
                } else {
                    line[w++] = line[r++];
                }
            } else if (r == n || ends_word(line[r])) {
                done = 1;
            } else if (line[r] == '"') {
                inq = 1;
                r++;
            } else if (line[r] == '\'') {
                insq = 1;
                r++;
            } else {
                line[w++] = line[r++];
            }
        }
        if (push_arg(p, start, w - start) < 0)
            return -2;
    }
    return 0;
}

static int parse_inline(resp_parser *p, char *buf, size_t len, size_t *consumed)
{
    char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (len > RESP_MAX_INLINE) {
            p->err = "ERR Protocol error: too big inline request";
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    size_t n = (size_t)(nl - buf);
    *consumed = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    int r = split_inline(p, buf, n);
    if (r == -1) {
        p->err = "ERR Protocol error: unbalanced quotes in request";
        return RESP_ERROR;
    }
    if (r < 0)
        return RESP_ERROR;
    return p->argc ? RESP_DONE : RESP_SKIP;
}

/* Finds the line at buf[p->pos]: its '\r' must be in the buffer with one byte after it (taken
 * for the '\n', unchecked, as Redis does). Returns the line's length, -1 for more bytes, or -2
 * when RESP_MAX_INLINE bytes came with no line end. */
static long long line_at(const resp_parser *p, const char *buf, size_t len)
{
    const char *cr = memchr(buf + p->pos, '\r', len - p->pos);
    if (!cr)
        return len - p->pos > RESP_MAX_INLINE ? -2 : -1;
    size_t n = (size_t)(cr - (buf + p->pos));
    if (p->pos + n + 2 > len)
        return -1;
    return (long long)n;
}

int resp_parse(resp_parser *p, char *buf, size_t len, size_t *consumed)
{
    if (p->pos == 0) {
        if (len == 0)
            return RESP_MORE;
        if (buf[0] != '*')
            return parse_inline(p, buf, len, consumed);
        long long n = line_at(p, buf, len);
        if (n == -1)
            return RESP_MORE;
        if (n == -2) {
            p->err = "ERR Protocol error: too big mbulk count string";
            return RESP_ERROR;
        }
        long long count;
        if (resp_strtoll(buf + 1, (size_t)n - 1, &count) < 0 || count > INT_MAX) {
            p->err = "ERR Protocol error: invalid multibulk length";
            return RESP_ERROR;
        }
        p->pos = (size_t)n + 2;
        if (count <= 0) {
            *consumed = p->pos;
            return RESP_SKIP;
        }
        p->nargs = count;
        p->bulk_len = -1;
    }
    while ((long long)p->argc < p->nargs) {
        if (p->bulk_len < 0) {
            if (p->pos >= len)
                return RESP_MORE;
            long long n = line_at(p, buf, len);
            if (n == -1)
                return RESP_MORE;
            if (n == -2) {
                p->err = "ERR Protocol error: too big bulk count string";
                return RESP_ERROR;
            }
            if (buf[p->pos] != '$') {
                /* Redis's text, with the offending byte as is. */
                static _Thread_local char msg[64];
                snprintf(msg, sizeof msg, "ERR Protocol error: expected '$', got '%c'",
                         buf[p->pos]);
                p->err = msg;
                return RESP_ERROR;
            }
            long long bl;
            if (resp_strtoll(buf + p->pos + 1, (size_t)n - 1, &bl) < 0 || bl < 0 ||
                bl > RESP_MAX_BULK) {
                p->err = "ERR Protocol error: invalid bulk length";
                return RESP_ERROR;
            }
            p->bulk_len = bl;
            p->pos += (size_t)n + 2;
        }
        if (len - p->pos < (size_t)p->bulk_len + 2)
            return RESP_MORE;
        if (push_arg(p, p->pos, (size_t)p->bulk_len) < 0)
            return RESP_ERROR;
        p->pos += (size_t)p->bulk_len + 2;
        p->bulk_len = -1;
    }
    *consumed = p->pos;
    return RESP_DONE;
}
