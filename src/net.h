/* What net.c offers the rest of weft beyond the public API. */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include "internal.h"

/* One write of what the fd takes now (> 0 bytes), parking while it is full. */
ssize_t weft__write_some(int fd, const void *buf, size_t len, int64_t deadline);

/* weft_sendfile's transfer from a pipe or a socket, which sendfile(2) refuses with -EINVAL
 * (sendfile_spliced.c): what weft_sendfile returns. -EINVAL for other sources, -ESPIPE with
 * an offset. Task only. */
ssize_t weft__sendfile_spliced(int out_fd, int in_fd, off_t *offset, size_t count,
                               int64_t deadline);

#endif
