/* The engine's log: timestamped lines to a file opened for appending (--log) or stderr.
 *
 * Threads: every function may be called from any thread; a mutex keeps lines whole.
 * No Python calls. */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t cpar__log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *cpar__log_file;  /* NULL: stderr */
static int cpar__log_quiet;   /* --quiet: informational lines are skipped */
static int cpar__log_id = -1; /* our engine id once registered */

/* A fork() child (user code) must not inherit a lock held by the I/O thread. */
static void
cpar__log_after_fork_child(void)
{
    pthread_mutex_init(&cpar__log_lock, NULL);
}

int
cpar_elog_open(const char *path, int quiet)
{
    pthread_atfork(NULL, NULL, cpar__log_after_fork_child);
    cpar__log_quiet = quiet;
    if (path == NULL)
        return 0;
    cpar__log_file = fopen(path, "a");
    if (cpar__log_file == NULL) {
        fprintf(stderr, "cpar-engine: cannot open log %s: %s\n", path, strerror(errno));
        return -1;
    }
    setvbuf(cpar__log_file, NULL, _IOLBF, 0);
    return 0;
}

void
cpar_elog_close(void)
{
    pthread_mutex_lock(&cpar__log_lock);
    if (cpar__log_file != NULL)
        fclose(cpar__log_file);
    cpar__log_file = NULL;
    pthread_mutex_unlock(&cpar__log_lock);
}

int
cpar_elog_fd(void)
{
    return cpar__log_file ? fileno(cpar__log_file) : 2;
}

void
cpar_elog_set_id(int id)
{
    cpar__log_id = id;
}

/* Writes "<time> cpar-engine[pid] id=N: " to f. Caller holds the lock. */
static void
cpar__log_prefix(FILE *f)
{
    struct timespec ts;
    struct tm tm;
    char buf[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    if (cpar__log_id >= 0)
        fprintf(f, "%s.%03ld cpar-engine[%d] engine %d: ", buf, ts.tv_nsec / 1000000L,
                (int)getpid(), cpar__log_id);
    else
        fprintf(f, "%s.%03ld cpar-engine[%d]: ", buf, ts.tv_nsec / 1000000L, (int)getpid());
}

static void
cpar__vlog(const char *fmt, va_list ap)
{
    FILE *f;

    pthread_mutex_lock(&cpar__log_lock);
    f = cpar__log_file ? cpar__log_file : stderr;
    cpar__log_prefix(f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&cpar__log_lock);
}

void
cpar_elog(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar__vlog(fmt, ap);
    va_end(ap);
}

void
cpar_elog_info(const char *fmt, ...)
{
    va_list ap;
    if (cpar__log_quiet)
        return;
    va_start(ap, fmt);
    cpar__vlog(fmt, ap);
    va_end(ap);
}

void
cpar_elog_write(const char *prefix, const char *text, size_t len)
{
    FILE *f;

    pthread_mutex_lock(&cpar__log_lock);
    f = cpar__log_file ? cpar__log_file : stderr;
    if (prefix != NULL)
        fputs(prefix, f);
    fwrite(text, 1, len, f);
    fflush(f);
    pthread_mutex_unlock(&cpar__log_lock);
}
