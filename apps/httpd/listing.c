/* listing.c: see listing.h. The names are read and sorted first (their bytes bounded by
 * HTTPD_LISTING_MAX), then the page is written out piece by piece; names are escaped twice
 * (percent-encoding in the href, HTML escapes in the text), so no file name can inject markup
 * or a link elsewhere. */
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

struct httpd_listing {
    entry *ents;
    size_t n;
};

/* The page's writer: the first failure of `emit` stops every later piece. */
typedef struct page_out {
    httpd_emit_fn emit;
    void *arg;
    int err;
} page_out;

static void add(page_out *b, const char *s, size_t n)
{
    if (b->err == 0 && n > 0)
        b->err = b->emit(b->arg, s, n);
}

static void add_str(page_out *b, const char *s)
{
    add(b, s, strlen(s));
}

/* Runs of plain bytes go out whole; each special byte goes out as its escape. */
static void add_html(page_out *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc;
        switch (*s) {
        case '<':
            esc = "&lt;";
            break;
        case '>':
            esc = "&gt;";
            break;
        case '&':
            esc = "&amp;";
            break;
        case '"':
            esc = "&quot;";
            break;
        case '\'':
            esc = "&#39;";
            break;
        default:
            continue;
        }
        add(b, run, (size_t)(s - run));
        add_str(b, esc);
        run = s + 1;
    }
    add(b, run, (size_t)(s - run));
}

static void add_url(page_out *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            continue;
        add(b, run, (size_t)(s - run));
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        add(b, e, 3);
        run = s + 1;
    }
    add(b, run, (size_t)(s - run));
}

static int by_name(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->dir != y->dir)
        return y->dir - x->dir;
    return strcmp(x->name, y->name);
}

int httpd_listing_read(int dirfd, httpd_listing **out)
{
    httpd_listing *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(l);
        return -e;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        free(l);
        return -e;
    }
    size_t cap = 0;
    size_t bytes = 0; /* names' bytes: stop reading once they pass the limit */
    struct dirent *de;
    while ((de = readdir(d)) != NULL && bytes < HTTPD_LISTING_MAX) {
        if (de->d_name[0] == '.')
            continue;
        if (l->n == cap) {
            cap = cap ? 2 * cap : 64;
            entry *grown = realloc(l->ents, cap * sizeof *l->ents);
            if (!grown)
                break;
            l->ents = grown;
        }
        int dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            dir = fstatat(fd, de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        l->ents[l->n].name = strdup(de->d_name);
        if (!l->ents[l->n].name)
            break;
        l->ents[l->n++].dir = dir;
        bytes += strlen(de->d_name);
    }
    closedir(d);
    if (l->n > 1)
        qsort(l->ents, l->n, sizeof *l->ents, by_name);
    *out = l;
    return 0;
}

int httpd_listing_write(const httpd_listing *l, const char *path, httpd_emit_fn emit, void *arg)
{
    page_out b = {emit, arg, 0};
    add_str(&b, "<html>\r\n<head><title>Index of ");
    add_html(&b, path);
    add_str(&b, "</title></head>\r\n<body>\r\n<h1>Index of ");
    add_html(&b, path);
    add_str(&b, "</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for (size_t i = 0; i < l->n && b.err == 0; i++) {
        add_str(&b, "<a href=\"");
        add_url(&b, l->ents[i].name);
        add_str(&b, l->ents[i].dir ? "/\">" : "\">");
        add_html(&b, l->ents[i].name);
        add_str(&b, l->ents[i].dir ? "/</a>\r\n" : "</a>\r\n");
    }
    add_str(&b, "</pre><hr></body>\r\n</html>\r\n");
    return b.err;
}

void httpd_listing_free(httpd_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->ents[i].name);
    free(l->ents);
    free(l);
}
