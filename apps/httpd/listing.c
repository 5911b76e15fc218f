/* listing.c: see listing.h. The page is built in one malloc'd buffer that never passes
 * HTTPD_LISTING_MAX; names are escaped twice (percent-encoding in the href, HTML escapes in
 * the text), so no file name can inject markup or a link elsewhere. */
#include "listing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry {
    char *name;
    int dir;
} entry;

typedef struct page_buf {
    char *p;
    size_t len, cap;
    int full;
} page_buf;

static void add(page_buf *b, const char *s, size_t n)
{
    if (b->full || b->len + n > b->cap) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void add_str(page_buf *b, const char *s)
{
    add(b, s, strlen(s));
}

static void add_html(page_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            add_str(b, "&lt;");
            break;
        case '>':
            add_str(b, "&gt;");
            break;
        case '&':
            add_str(b, "&amp;");
            break;
        case '"':
            add_str(b, "&quot;");
            break;
        case '\'':
            add_str(b, "&#39;");
            break;
        default:
            add(b, s, 1);
        }
    }
}

static void add_url(page_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            add(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            add(b, e, 3);
        }
    }
}

static int by_name(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->dir != y->dir)
        return y->dir - x->dir;
    return strcmp(x->name, y->name);
}

int httpd_listing(int dirfd, const char *path, char **page, size_t *len)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    entry *ents = NULL;
    size_t n = 0, cap = 0;
    size_t bytes = 0; /* names' bytes: stop reading once they alone would pass the limit */
    struct dirent *de;
    while ((de = readdir(d)) != NULL && bytes < HTTPD_LISTING_MAX) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            entry *grown = realloc(ents, cap * sizeof *ents);
            if (!grown)
                break;
            ents = grown;
        }
        int dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            dir = fstatat(fd, de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        ents[n].name = strdup(de->d_name);
        if (!ents[n].name)
            break;
        ents[n++].dir = dir;
        bytes += strlen(de->d_name);
    }
    closedir(d);
    qsort(ents, n, sizeof *ents, by_name);

    page_buf b = {malloc(HTTPD_LISTING_MAX), 0, HTTPD_LISTING_MAX, 0};
    if (b.p) {
        add_str(&b, "<html>\r\n<head><title>Index of ");
        add_html(&b, path);
        add_str(&b, "</title></head>\r\n<body>\r\n<h1>Index of ");
        add_html(&b, path);
        add_str(&b, "</h1><hr><pre><a href=\"../\">../</a>\r\n");
        for (size_t i = 0; i < n; i++) {
            add_str(&b, "<a href=\"");
            add_url(&b, ents[i].name);
            add_str(&b, ents[i].dir ? "/\">" : "\">");
            add_html(&b, ents[i].name);
            add_str(&b, ents[i].dir ? "/</a>\r\n" : "</a>\r\n");
        }
        add_str(&b, "</pre><hr></body>\r\n</html>\r\n");
    }
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    if (!b.p)
        return -ENOMEM;
    *page = b.p;
    *len = b.len;
    return 0;
}
