/* Line-oriented, timestamped logging: the controller's log and the engine's.
 *
 * A line is "YYYY-mm-dd HH:MM:SS.mmm <head><text>\n", flushed at once; the head is
 * "[tag] " unless set otherwise (the engine: "cpar-engine[pid] engine N: ").
 *
 * Ownership and threads: a cpar_log is owned by whoever embeds it; any thread may write
 * to it at once (a mutex keeps lines whole). It owns the FILE it opened from a path, and
 * borrows one passed in. After fork(), the child calls cpar_log_after_fork before logging.
 * No Python, no GIL. Library code never prints elsewhere: errors for a caller go into
 * caller-provided buffers. */
#ifndef CPAR_CORE_LOG_H
#define CPAR_CORE_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cpar_log {
    pthread_mutex_t lock; /* keeps lines whole; guards f and head */
    FILE *f;              /* where lines go; NULL: logging off */
    int owned;            /* f was opened here and is closed by cpar_log_close */
    int quiet;            /* cpar_log_info lines are skipped */
    char head[64];        /* written after the timestamp, e.g. "[controller] " */
} cpar_log;

/* Opens path for appending (NULL: log to stderr, borrowed). Returns 0, or CPAR_EIO with a
 * message in err (then logging is off). */
int cpar_log_open(cpar_log *lg, const char *path, const char *tag, char *err, size_t errlen);
/* Uses an already open FILE (borrowed: never closed here; NULL turns logging off). */
void cpar_log_use(cpar_log *lg, FILE *f, const char *tag);
/* Closes an owned FILE; then lines go to `then` (borrowed; NULL: logging off). */
void cpar_log_close_to(cpar_log *lg, FILE *then);
/* cpar_log_close_to(lg, NULL). */
void cpar_log_close(cpar_log *lg);
/* Replaces the head with a formatted one (written verbatim after the timestamp). */
void cpar_log_set_head(cpar_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Skips cpar_log_info lines from now on when quiet. */
void cpar_log_set_quiet(cpar_log *lg, int quiet);
/* The log's file descriptor, or -1 when logging is off. */
int cpar_log_fd(cpar_log *lg);
/* Re-initialises the lock in a fork() child (another thread may have held it). */
void cpar_log_after_fork(cpar_log *lg);

/* Writes one line (see above). */
void cpar_log_write(cpar_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cpar_log_vwrite(cpar_log *lg, const char *fmt, va_list ap);
/* The same for informational lines, which a quiet log skips. */
void cpar_log_info(cpar_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes prefix (when not NULL), then len bytes of text as they are: no timestamp, no
 * head, no newline added (captured output). */
void cpar_log_raw(cpar_log *lg, const char *prefix, const char *text, size_t len);
/* Rate limit for repeated events: 1 when the n-th occurrence (n >= 1) should be logged
 * (the first 10, then every 1000th). */
int cpar_log_ratelimit(uint64_t n);

#endif /* CPAR_CORE_LOG_H */
