/* files.c: request path -> file under the document root, and the validators of a file.
 * Invariant: every path handed to the kernel is relative, normalised (no "." or ".."
 * segment, no NUL) and resolved from the root fd with RESOLVE_BENEATH, so neither the name
 * nor a symlink met on the way can leave the root; kernels without openat2 get the same
 * guarantee from a check of the opened file's real path. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int httpd_normalize_path(http_view path, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 2)
        return -414;
    out[o++] = '/';
    size_t seg = 1; /* where the segment being written begins in out */
    /* Whether the result names a directory, decided on the decoded bytes (a "%2F" is a
     * slash, a "%2e" a dot): the path ends in '/', or in a "." or ".." segment. */
    int dir_end = path.len == 0, last = 0;
    /* The limit holds for the decoded path as sent, before its segments are resolved: a long
     * path padded with "./", "x/../" or "//" is as long as any other (it was looked up,
     * since it normalised short). The result is then never longer than the decoded path
     * and the '/' it may gain, so it fits in cap whatever the segments do. */
    size_t decoded = 0;
    for (size_t i = 0; i <= path.len; i++) {
        int c;
        if (i < path.len && ++decoded > cap - 2)
            return -414;
        if (i == path.len) {
            c = '/'; /* closes the last segment; removed again below */
            dir_end |= last == '/';
        } else {
            c = (unsigned char)path.p[i];
            if (c == '%') {
                int h = i + 2 < path.len ? hexval((unsigned char)path.p[i + 1]) : -1;
                int l = h >= 0 ? hexval((unsigned char)path.p[i + 2]) : -1;
                if (l < 0)
                    return -400;
                c = h * 16 + l;
                i += 2;
                if (c == 0)
                    return -400;
            }
            last = c;
        }
        if (c != '/') {
            if (o + 1 >= cap)
                return -414;
            out[o++] = (char)c;
            continue;
        }
        /* A segment ends: "." and ".." are resolved, empty ones merged. */
        size_t n = o - seg;
        if (i == path.len && (n == 1 || n == 2) && out[seg] == '.' && out[o - 1] == '.')
            dir_end = 1; /* "/a/." or "/a/..": a directory */
        if (n == 1 && out[seg] == '.') {
            o = seg;
        } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (seg == 1)
                return -400; /* above the root: 400, as nginx */
            o = seg - 1;     /* the '/' before ".." */
            while (out[o - 1] != '/')
                o--;
        } else if (n > 0) {
            if (o + 1 >= cap)
                return -414;
            out[o++] = '/';
        }
        seg = o;
    }
    /* The closing '/' added for the end stays only where the path names a directory. */
    if (!dir_end && o > 1 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return (int)o;
}

static int errno_status(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return -404;
    case EXDEV:
    case ELOOP:
    case EACCES:
    case EPERM:
    case ENXIO:
        return -403;
    default:
        return -500;
    }
}

/* Kernels before 5.6 (or a seccomp policy) lack openat2: open, then check that the file's
 * real path is the root or below it. */
static int open_checked(int rootfd, const char *rel, int flags)
{
    int fd = openat(rootfd, rel, flags);
    if (fd < 0)
        return -errno;
    char link[64], real[4096], root[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", rootfd);
    ssize_t rn = readlink(link, root, sizeof root - 1);
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t fn = readlink(link, real, sizeof real - 1);
    if (rn <= 0 || fn <= 0) {
        close(fd);
        return -EACCES;
    }
    size_t n = (size_t)rn;
    int inside = (size_t)fn >= n && memcmp(real, root, n) == 0 &&
                 ((size_t)fn == n || real[n] == '/' || (n == 1 && root[0] == '/'));
    if (!inside) {
        close(fd);
        return -EXDEV;
    }
    return fd;
}

int httpd_open_beneath(int rootfd, const char *norm, struct stat *st)
{
    static int no_openat2; /* written once per process, the same value by every worker */
    const char *rel = norm[1] ? norm + 1 : ".";
    int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    int fd = -ENOSYS;
    if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long r = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
        fd = r < 0 ? -errno : (int)r;
        if (fd == -ENOSYS || fd == -EPERM)
            __atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
    }
    if (fd == -ENOSYS || (fd == -EPERM && __atomic_load_n(&no_openat2, __ATOMIC_RELAXED)))
        fd = open_checked(rootfd, rel, flags);
    if (fd < 0)
        return errno_status(-fd);
    if (fstat(fd, st) < 0 || !(S_ISREG(st->st_mode) || S_ISDIR(st->st_mode))) {
        close(fd);
        return -403;
    }
    return fd;
}

const char *httpd_mime_type(const char *name, size_t len)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html"},
        {"htm", "text/html"},
        {"css", "text/css"},
        {"js", "application/javascript"},
        {"mjs", "application/javascript"},
        {"json", "application/json"},
        {"txt", "text/plain"},
        {"md", "text/markdown"},
        {"csv", "text/csv"},
        {"xml", "text/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"avif", "image/avif"},
        {"wasm", "application/wasm"},
        {"pdf", "application/pdf"},
        {"zip", "application/zip"},
        {"gz", "application/gzip"},
        {"tar", "application/x-tar"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"wav", "audio/wav"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
    };
    size_t dot = len;
    while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/')
        dot--;
    if (dot == 0 || name[dot - 1] != '.')
        return "application/octet-stream";
    http_view ext = {name + dot, len - dot};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (http_view_eq(ext, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

int httpd_etag(const struct stat *st, char *out, size_t cap)
{
    return snprintf(out, cap, "\"%llx-%llx\"", (unsigned long long)st->st_mtime,
                    (unsigned long long)st->st_size);
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int httpd_http_date(time_t t, char *out, size_t cap)
{
    /* IMF-fixdate's year has four digits, and a file's mtime may be anything a time_t holds
     * (tmpfs takes 2^62 s; ext4 clamps to 2446): outside years 0000..9999 it is clamped to the
     * nearer end. Unclamped, gmtime_r failed past its int year and left tm unset, and the day
     * and month names were read out of bounds (a crash), or a year of 10000 made the date 30
     * bytes long. */
    const long long first = -62167219200LL; /* 0000-01-01 00:00:00 */
    const long long last = 253402300799LL;  /* 9999-12-31 23:59:59 */
    if ((long long)t < first)
        t = (time_t)first;
    else if ((long long)t > last)
        t = (time_t)last;
    struct tm tm;
    gmtime_r(&t, &tm);
    return snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday,
                    months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* HTTP-date parsing (RFC 9110 5.6.7): a recipient must accept the preferred IMF-fixdate and
 * the two obsolete forms, RFC 850's and asctime's:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime-date "Sun Nov  6 08:49:37 1994"
 * Each form is matched exactly (its separators, fixed-width fields, a day name of the right
 * length); the day name is not checked against the date, as nginx does not. A cursor walks
 * the bytes: every take_* advances it past what it matched, or returns -1 and leaves the
 * parse to fail. */
typedef struct date_cursor {
    const char *p, *end;
} date_cursor;

static int take_literal(date_cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* Exactly n digits; their value, or -1. */
static int take_digits(date_cursor *c, int n)
{
    if (c->end - c->p < n)
        return -1;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (c->p[i] < '0' || c->p[i] > '9')
            return -1;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    return v;
}

/* A three-letter month name (case-sensitive, as the grammar's %s"Jan" is); 0..11, or -1. */
static int take_month(date_cursor *c)
{
    for (int i = 0; i < 12; i++)
        if (take_literal(c, months[i]) == 0)
            return i;
    return -1;
}

/* A day name: the three-letter one, or (rfc850-date) the full one. */
static int take_day_name(date_cursor *c, int full)
{
    static const char long_days[7][10] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
    for (int i = 0; i < 7; i++)
        if (take_literal(c, full ? long_days[i] : wdays[i]) == 0)
            return 0;
    return -1;
}

/* "HH:MM:SS" into tm. */
static int take_time_of_day(date_cursor *c, struct tm *tm)
{
    tm->tm_hour = take_digits(c, 2);
    if (tm->tm_hour < 0 || take_literal(c, ":") < 0)
        return -1;
    tm->tm_min = take_digits(c, 2);
    if (tm->tm_min < 0 || take_literal(c, ":") < 0)
        return -1;
    tm->tm_sec = take_digits(c, 2);
    return tm->tm_sec < 0 ? -1 : 0;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int parse_imf_fixdate(date_cursor c, struct tm *tm)
{
    if (take_day_name(&c, 0) < 0 || take_literal(&c, ", ") < 0)
        return -1;
    tm->tm_mday = take_digits(&c, 2);
    if (tm->tm_mday < 0 || take_literal(&c, " ") < 0 || (tm->tm_mon = take_month(&c)) < 0 ||
        take_literal(&c, " ") < 0)
        return -1;
    int year = take_digits(&c, 4);
    if (year < 0 || take_literal(&c, " ") < 0 || take_time_of_day(&c, tm) < 0 ||
        take_literal(&c, " GMT") < 0 || c.p != c.end)
        return -1;
    tm->tm_year = year - 1900;
    return 0;
}

/* The full year of rfc850-date's two digits: RFC 9110 5.6.7 reads a year that would be more
 * than 50 years in the future as the most recent past year with the same last two digits;
 * so the year is the one with those digits in (now - 50, now + 50]. */
static int full_year_of(int yy, time_t now)
{
    struct tm tm_now;
    gmtime_r(&now, &tm_now);
    int this_year = tm_now.tm_year + 1900;
    int year = this_year - this_year % 100 + yy;
    if (year > this_year + 50)
        year -= 100;
    else if (year <= this_year - 50)
        year += 100;
    return year;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT" */
static int parse_rfc850_date(date_cursor c, time_t now, struct tm *tm)
{
    if (take_day_name(&c, 1) < 0 || take_literal(&c, ", ") < 0)
        return -1;
    tm->tm_mday = take_digits(&c, 2);
    if (tm->tm_mday < 0 || take_literal(&c, "-") < 0 || (tm->tm_mon = take_month(&c)) < 0 ||
        take_literal(&c, "-") < 0)
        return -1;
    int yy = take_digits(&c, 2);
    if (yy < 0 || take_literal(&c, " ") < 0 || take_time_of_day(&c, tm) < 0 ||
        take_literal(&c, " GMT") < 0 || c.p != c.end)
        return -1;
    tm->tm_year = full_year_of(yy, now) - 1900;
    return 0;
}

/* "Sun Nov  6 08:49:37 1994": the day of the month is two digits or a space and one. */
static int parse_asctime_date(date_cursor c, struct tm *tm)
{
    if (take_day_name(&c, 0) < 0 || take_literal(&c, " ") < 0 ||
        (tm->tm_mon = take_month(&c)) < 0 || take_literal(&c, " ") < 0)
        return -1;
    tm->tm_mday = take_literal(&c, " ") == 0 ? take_digits(&c, 1) : take_digits(&c, 2);
    if (tm->tm_mday < 0 || take_literal(&c, " ") < 0 || take_time_of_day(&c, tm) < 0 ||
        take_literal(&c, " ") < 0)
        return -1;
    int year = take_digits(&c, 4);
    if (year < 0 || c.p != c.end)
        return -1;
    tm->tm_year = year - 1900;
    return 0;
}

/* The fields' ranges (the grammar bounds their widths only). Years before 1970 are refused:
 * no file has such a modification time, and time_t arithmetic stays positive. */
static int date_fields_ok(const struct tm *tm)
{
    return tm->tm_mday >= 1 && tm->tm_mday <= 31 && tm->tm_year >= 70 && tm->tm_hour <= 23 &&
           tm->tm_min <= 59 && tm->tm_sec <= 60;
}

int httpd_parse_http_date(http_view v, time_t now, time_t *t)
{
    date_cursor c = {v.p, v.p + v.len};
    struct tm tm = {0};
    if (parse_imf_fixdate(c, &tm) < 0 && parse_rfc850_date(c, now, &tm) < 0 &&
        parse_asctime_date(c, &tm) < 0)
        return -1;
    if (!date_fields_ok(&tm))
        return -1;
    *t = timegm(&tm);
    return 0;
}

int httpd_etag_match(http_view inm, const char *etag, size_t etag_len, int strong)
{
    /* "*" / #entity-tag (RFC 9110 13.1.1-2): a "*" is the whole value (trimmed by the
     * parser); inside a list it is malformed, and matches nothing below. */
    if (inm.len == 1 && inm.p[0] == '*')
        return 1;
    size_t i = 0;
    while (i < inm.len) {
        while (i < inm.len && (inm.p[i] == ' ' || inm.p[i] == '\t' || inm.p[i] == ','))
            i++;
        int weak = 0;
        if (i + 2 <= inm.len && inm.p[i] == 'W' && inm.p[i + 1] == '/')
            i += 2, weak = 1;
        if (i >= inm.len || inm.p[i] != '"')
            return 0; /* malformed: no match */
        size_t b = i++;
        while (i < inm.len && inm.p[i] != '"')
            i++;
        if (i == inm.len)
            return 0;
        i++;
        /* The strong comparison never matches a weak tag (RFC 9110 8.8.3.2); ours are
         * strong, so the weak one compares the opaque part alone. */
        if (!(weak && strong) && i - b == etag_len && memcmp(inm.p + b, etag, etag_len) == 0)
            return 1;
    }
    return 0;
}

/* Reads a run of digits (1*DIGIT: the grammar sets no bound on its length), its value
 * saturated at INT64_MAX: a number too large for an int64 is larger than any file, and
 * reads as such. Returns 0, or -1 when there is no digit. */
static int number(const char *s, size_t n, size_t *i, int64_t *out)
{
    size_t b = *i;
    int64_t v = 0;
    for (; *i < n && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
        int d = s[*i] - '0';
        v = v > (INT64_MAX - d) / 10 ? INT64_MAX : v * 10 + d;
    }
    if (*i == b)
        return -1;
    *out = v;
    return 0;
}

/* One range-spec at s[*i ..), up to a comma or the end (spaces before either skipped): 1
 * with [*first, *last], -416 when it is unsatisfiable, 0 when it is malformed. */
static int range_spec(const char *s, size_t n, size_t *i, int64_t size, int64_t *first,
                      int64_t *last)
{
    int64_t a = -1, b = -1;
    if (*i < n && s[*i] == '-') {
        (*i)++;
        if (number(s, n, i, &b) < 0)
            return 0;
    } else {
        if (number(s, n, i, &a) < 0 || *i >= n || s[*i] != '-')
            return 0;
        (*i)++;
        if (*i < n && s[*i] >= '0' && s[*i] <= '9')
            number(s, n, i, &b);
    }
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t'))
        (*i)++;
    if (*i < n && s[*i] != ',')
        return 0;
    if (a < 0) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -416;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (b >= 0 && b < a)
        return 0; /* invalid: the whole header is ignored */
    /* Numbers too large for an int64 are valid syntax, read as INT64_MAX (number()): a huge
     * last-pos is clamped to the file's end like any last-pos past it (RFC 9110 14.1.1), so
     * "bytes=0-99999999999999999999999" is 206 for the whole file; a huge first-pos is past
     * any file's end, so the range is unsatisfiable: 416 (14.1.1, 15.5.17), which is also
     * nginx's answer when a start overflows (ngx_http_range_parse; nginx also answers 416
     * for an overflowing last-pos, where we follow the RFC's clamp). A huge suffix-length
     * asks for more than there is: the whole file, 206. */
    if (a >= size)
        return -416;
    *first = a;
    *last = (b < 0 || b >= size) ? size - 1 : b;
    return 1;
}

int httpd_parse_ranges(http_view v, int64_t size, httpd_range *out, int max)
{
    const char *s = v.p;
    size_t n = v.len, i = 6;
    if (n < 7 || !http_view_eq((http_view){s, 6}, "bytes="))
        return 0;
    int nspecs = 0, count = 0;
    int64_t total = 0;
    for (;;) {
        /* A list may hold empty elements and spaces around its commas (RFC 9110 5.6.1). */
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        if (i == n)
            break;
        int64_t first, last;
        int r = range_spec(s, n, &i, size, &first, &last);
        if (r == 0)
            return 0;
        nspecs++;
        if (r < 0)
            continue;
        if (count == max)
            return 0;
        /* Compared before it is added: total and the length are each at most size, which
         * may be near INT64_MAX (a sparse file), so their sum may not fit. */
        if (last - first + 1 > size - total)
            return 0;
        total += last - first + 1;
        out[count++] = (httpd_range){first, last};
    }
    if (nspecs == 0)
        return 0;
    return count > 0 ? count : -416;
}
