/* listing.h: the HTML page that lists a directory (--autoindex), like nginx's autoindex:
 * entries sorted by name, hidden files left out, directories first with a trailing slash,
 * names HTML-escaped and percent-encoded in links. */
#ifndef WEFT_HTTPD_LISTING_H
#define WEFT_HTTPD_LISTING_H

#include <stddef.h>

/* The most bytes a listing page may take; a larger directory is listed up to it. */
#define HTTPD_LISTING_MAX (1024 * 1024)

/* Builds the page for the open directory `dirfd` whose URL path is `path` (normalised, with
 * its trailing slash). Returns 0 with *page (malloc'd: the caller frees it) and *len, or
 * -errno. Reads the directory on the calling thread (like nginx). */
int httpd_listing(int dirfd, const char *path, char **page, size_t *len);

#endif
