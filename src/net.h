/* What net.c offers the rest of weft beyond the public API. */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include "internal.h"

/* One write of what the fd takes now (> 0 bytes), parking while it is full. */
ssize_t weft__write_some(int fd, const void *buf, size_t len, int64_t deadline);

#endif
