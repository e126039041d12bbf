/* The engine's log: the core's cpar_log (log.h), to a file opened for appending (--log) or
 * stderr, with lines headed "cpar-engine[pid]: " and, once registered,
 * "cpar-engine[pid] engine N: ".
 *
 * Threads: every function may be called from any thread (the log's mutex keeps lines
 * whole). No Python calls. */
#include "engine.h"

#include <stdio.h>
#include <unistd.h>

#include "log.h"

static pthread_once_t cpar__elog_once = PTHREAD_ONCE_INIT;
static cpar_log cpar__elog;
static int cpar__elog_id = -1; /* our engine id once registered */

/* The head for this process and id. */
static void
cpar__elog_head(void)
{
    if (cpar__elog_id >= 0)
        cpar_log_set_head(&cpar__elog, "cpar-engine[%d] engine %d: ", (int)getpid(), cpar__elog_id);
    else
        cpar_log_set_head(&cpar__elog, "cpar-engine[%d]: ", (int)getpid());
}

/* A fork() child (user code) must not inherit a lock held by the I/O thread, and logs
 * under its own pid. */
static void
cpar__elog_after_fork_child(void)
{
    cpar_log_after_fork(&cpar__elog);
    cpar__elog_head();
}

/* Until cpar_elog_open (and when it fails), lines go to stderr. */
static void
cpar__elog_init(void)
{
    cpar_log_use(&cpar__elog, stderr, "cpar-engine");
    cpar__elog_head();
    pthread_atfork(NULL, NULL, cpar__elog_after_fork_child);
}

static cpar_log *
cpar__elog_get(void)
{
    pthread_once(&cpar__elog_once, cpar__elog_init);
    return &cpar__elog;
}

int
cpar_elog_open(const char *path, int quiet)
{
    char err[512];
    cpar_log *lg = cpar__elog_get();
    int rc = 0;

    if (path != NULL) {
        /* Called once, from the main thread before any other starts. */
        if (cpar_log_open(lg, path, "cpar-engine", err, sizeof(err)) != 0) {
            fprintf(stderr, "cpar-engine: %s\n", err);
            cpar_log_use(lg, stderr, "cpar-engine");
            rc = -1;
        }
        cpar__elog_head();
    }
    cpar_log_set_quiet(lg, quiet);
    return rc;
}

void
cpar_elog_close(void)
{
    cpar_log_close_to(cpar__elog_get(), stderr);
}

int
cpar_elog_fd(void)
{
    int fd = cpar_log_fd(cpar__elog_get());
    return fd >= 0 ? fd : 2;
}

void
cpar_elog_set_id(int id)
{
    cpar__elog_get();
    cpar__elog_id = id;
    cpar__elog_head();
}

void
cpar_elog(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar_log_vwrite(cpar__elog_get(), fmt, ap);
    va_end(ap);
}

void
cpar_elog_info(const char *fmt, ...)
{
    va_list ap;
    cpar_log *lg = cpar__elog_get();
    if (lg->quiet)
        return;
    va_start(ap, fmt);
    cpar_log_vwrite(lg, fmt, ap);
    va_end(ap);
}

void
cpar_elog_write(const char *prefix, const char *text, size_t len)
{
    cpar_log_raw(cpar__elog_get(), prefix, text, len);
}
