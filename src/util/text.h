/* The one rule for putting a task's name or spawn site (user bytes, any bytes) in a line of
 * text: a byte below 0x20 and DEL as \xHH, a backslash and a double quote with a backslash
 * before them, any other as it is, so the text can neither end its line nor close its quotes.
 * Pure and header-only: no allocation, no libc call, so a signal handler may use it
 * (overflow.c), and any layer may include it (dump.c, scheduler.c). */
#ifndef WEFT_UTIL_TEXT_H
#define WEFT_UTIL_TEXT_H

#include <stddef.h>

/* The longest form of one byte: \xHH. */
#define WEFT__TEXT_ESC_MAX 4

/* Writes byte c in its line-of-text form into out (room for WEFT__TEXT_ESC_MAX bytes, not
 * NUL-terminated); returns its length, 1 for a byte that goes as it is. */
static inline size_t weft__text_escape_byte(char *out, unsigned char c)
{
    if (c >= 0x20 && c != 0x7f && c != '\\' && c != '"') {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\';
    if (c == '\\' || c == '"') {
        out[1] = (char)c;
        return 2;
    }
    out[1] = 'x';
    out[2] = "0123456789abcdef"[c >> 4];
    out[3] = "0123456789abcdef"[c & 0xf];
    return 4;
}

/* Writes s (up to `max` bytes or its NUL) escaped into out, which holds cap > 0 bytes, and
 * NUL-terminates it. Stops before a byte whose form does not fit whole, so a cut never leaves
 * half an escape. Returns the length written, without the NUL. A buffer of
 * WEFT__TEXT_ESC_MAX * max + 1 bytes always holds all of it. */
static inline size_t weft__text_escape(char *out, size_t cap, const char *s, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < max && s[i]; i++) {
        char one[WEFT__TEXT_ESC_MAX];
        size_t k = weft__text_escape_byte(one, (unsigned char)s[i]);
        if (n + k >= cap)
            break;
        for (size_t j = 0; j < k; j++)
            out[n++] = one[j];
    }
    out[n] = 0;
    return n;
}

#endif
