/* files.h: from a request path to an open file under the document root: percent-decoding,
 * normalisation (no way above the root), a lookup that never leaves the root (openat2
 * RESOLVE_BENEATH, else a realpath check), MIME types, validators (ETag, Last-Modified) and
 * HTTP dates. */
#ifndef WEFT_HTTPD_FILES_H
#define WEFT_HTTPD_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "parser.h"

/* Decodes and normalises `path` (as sent, without its query) into out[0 .. cap): a path
 * that starts with '/', with %XX decoded (%2F too, as nginx does), "//" merged, "." and
 * ".." segments resolved; it ends in '/' when the decoded path names a directory (ends in
 * '/', "." or ".."). Returns the length, -400 for a bad escape, a NUL byte or a ".."
 * that climbs above the root, or -414 when the decoded path (before its segments are
 * resolved) is longer than cap - 2 bytes. out is NUL-terminated. */
int httpd_normalize_path(http_view path, char *out, size_t cap);

/* Opens the normalised path `norm` (starting with '/') below the root fd, read-only and
 * non-blocking (a FIFO cannot hang the worker), refusing any symlink that leads out.
 * Returns the fd (close it) with *st filled, or -404 (missing), -403 (outside the root,
 * permission, not a regular file or directory). */
int httpd_open_beneath(int rootfd, const char *norm, struct stat *st);

/* The MIME type for a file name, from its extension (application/octet-stream if unknown). */
const char *httpd_mime_type(const char *name, size_t len);

/* Writes an ETag for st (nginx's form: "mtime-size" in hex, quoted) into out (>= 40 bytes);
 * returns its length. */
int httpd_etag(const struct stat *st, char *out, size_t cap);

/* Writes `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes) into out
 * (>= 30 bytes); returns 29. A time outside years 0000..9999 (an mtime of 2^62 s on tmpfs)
 * writes the nearer end of that range. */
int httpd_http_date(time_t t, char *out, size_t cap);

/* Parses an HTTP-date in any of its three forms (RFC 9110 5.6.7): IMF-fixdate, and the
 * obsolete rfc850-date and asctime-date. `now` places rfc850-date's two-digit year (within
 * 50 years of it). Returns 0 and *t, or -1 when `v` is none of them. */
int httpd_parse_http_date(http_view v, time_t now, time_t *t);

/* Whether an entity-tag list (If-None-Match, If-Match) matches `etag`, a strong tag: the
 * weak comparison (If-None-Match) when `strong` is 0, the strong one (If-Match) otherwise;
 * "*" matches either way (the file exists) when it is the whole value; in a list it is
 * malformed and matches nothing, as any malformed list. */
int httpd_etag_match(http_view inm, const char *etag, size_t etag_len, int strong);

/* The byte ranges of a file of `size` bytes asked for by a Range value (RFC 9110 14.1.2:
 * "bytes=" and a comma-separated list of first-last, first- and -suffix). */
typedef struct httpd_range {
    int64_t first, last; /* inclusive, within the file */
} httpd_range;

/* At most this many ranges are served as parts of one multipart/byteranges response; a
 * longer list gets the whole file (RFC 9110 14.2 lets a server ignore a Range). */
#define HTTPD_MAX_RANGES 16

/* Fills out[] with the satisfiable ranges of `v`, in the order sent (unsatisfiable ones are
 * left out). Returns their count, 1 to `max`; 0 when the header is to be ignored and the
 * whole file sent (not "bytes=", bad syntax anywhere, more than `max` satisfiable ranges,
 * or ranges whose lengths add up to more than the file: overlapping or repeated ones,
 * nginx's rule against a small request that asks for many copies of a file); or -416 when
 * none can be satisfied. Positions too large for an int64 are past any end: a last-pos is
 * clamped, a first-pos makes its range unsatisfiable. */
int httpd_parse_ranges(http_view v, int64_t size, httpd_range *out, int max);

#endif
