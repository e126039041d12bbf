/* Line-oriented, timestamped logging for long-running core loops (the controller).
 *
 * Ownership and threads: a cpar_log belongs to the thread that writes it (stdio locks
 * make concurrent writers safe but interleaving is not a goal). It owns the FILE it opened
 * from a path, and borrows one passed in. No Python, no GIL. Library code never prints
 * elsewhere: errors for a caller go into caller-provided buffers. */
#ifndef CPAR_CORE_LOG_H
#define CPAR_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cpar_log {
    FILE *f;      /* where lines go; NULL: logging off */
    int owned;    /* f was opened here and is closed by cpar_log_close */
    char tag[24]; /* written after the timestamp, e.g. "controller" */
} cpar_log;

/* Opens path for appending (NULL: log to stderr, borrowed). Returns 0, or CPAR_EIO with a
 * message in err. */
int cpar_log_open(cpar_log *lg, const char *path, const char *tag, char *err, size_t errlen);
/* Uses an already open FILE (borrowed: never closed here; NULL turns logging off). */
void cpar_log_use(cpar_log *lg, FILE *f, const char *tag);
void cpar_log_close(cpar_log *lg);
/* Writes one line: "YYYY-mm-dd HH:MM:SS.mmm [tag] text\n", then flushes. */
void cpar_log_write(cpar_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rate limit for repeated events: 1 when the n-th occurrence (n >= 1) should be logged
 * (the first 10, then every 1000th). */
int cpar_log_ratelimit(uint64_t n);

#endif /* CPAR_CORE_LOG_H */
