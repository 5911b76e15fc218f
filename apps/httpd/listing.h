/* listing.h: the HTML page that lists a directory (--autoindex), like nginx's autoindex:
 * entries sorted by name, hidden files left out, directories first with a trailing slash,
 * names HTML-escaped and percent-encoded in links. */
#ifndef WEFT_HTTPD_LISTING_H
#define WEFT_HTTPD_LISTING_H

#include <stddef.h>

/* The most bytes of names a listing holds in memory to sort them; a larger directory is
 * listed up to it (1 MiB: about 30,000 typical names). The page itself is never held: it is
 * written out in pieces as it is made. */
#define HTTPD_LISTING_MAX (1024 * 1024)

typedef struct httpd_listing httpd_listing;

/* Reads and sorts the names of the open directory `dirfd`, on the calling thread (like
 * nginx). Returns 0 with *out (freed with httpd_listing_free), or -errno. */
int httpd_listing_read(int dirfd, httpd_listing **out);

/* Writes the page for the listing, whose URL path is `path` (normalised, with its trailing
 * slash), through `emit` in pieces of a few dozen bytes. Returns 0, or the first negative
 * value `emit` returned (then the page stops there). */
typedef int (*httpd_emit_fn)(void *arg, const char *p, size_t n);
int httpd_listing_write(const httpd_listing *l, const char *path, httpd_emit_fn emit, void *arg);

void httpd_listing_free(httpd_listing *l);

#endif
