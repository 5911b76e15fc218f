/* accesslog.h: the access log in common log format, buffered per worker and written by a
 * flusher task per worker through weft_file_write, so no connection ever waits on the disk.
 * A buffer grows while the other one is being written, up to HTTPD_LOG_BUF_MAX (4 MiB); past
 * that, lines are dropped and counted (reported at exit). */
#ifndef WEFT_HTTPD_ACCESSLOG_H
#define WEFT_HTTPD_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "parser.h"

/* Sets up a worker's log buffers and starts its flusher task (on the calling worker).
 * Returns 0 or -ENOMEM. */
int httpd_log_start(httpd_log *log);

/* Stops the flusher after it has written everything buffered, waits for it, frees the
 * buffers. From a task of the log's worker. */
void httpd_log_stop(httpd_log *log);

/* Appends one line: `host - - [date] "request line" status bytes`. The request line is
 * escaped (quotes, backslashes and bytes outside printable ASCII as \xHH), so no client can
 * forge a line. A NULL request line logs as "-". */
void httpd_log_request(httpd_log *log, const char *peer, http_view request_line, int status,
                       int64_t bytes);

/* The printable address of the socket's peer into out ("-" when unknown). */
void httpd_peer_name(int fd, char *out, size_t cap);

#endif
