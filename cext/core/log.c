/* Timestamped line logging (log.h). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "errors.h"

int
cpar_log_open(cpar_log *lg, const char *path, const char *tag, char *err, size_t errlen)
{
    FILE *f;
    if (path == NULL) {
        cpar_log_use(lg, stderr, tag);
        return CPAR_OK;
    }
    f = fopen(path, "a");
    if (f == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        cpar_log_use(lg, NULL, tag);
        return CPAR_EIO;
    }
    cpar_log_use(lg, f, tag);
    lg->owned = 1;
    return CPAR_OK;
}

void
cpar_log_use(cpar_log *lg, FILE *f, const char *tag)
{
    lg->f = f;
    lg->owned = 0;
    snprintf(lg->tag, sizeof(lg->tag), "%s", tag ? tag : "cpar");
}

void
cpar_log_close(cpar_log *lg)
{
    if (lg->f && lg->owned)
        fclose(lg->f);
    lg->f = NULL;
    lg->owned = 0;
}

void
cpar_log_write(cpar_log *lg, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    va_list ap;

    if (lg == NULL || lg->f == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    flockfile(lg->f);
    fprintf(lg->f, "%s.%03ld [%s] ", stamp, ts.tv_nsec / 1000000L, lg->tag);
    va_start(ap, fmt);
    vfprintf(lg->f, fmt, ap);
    va_end(ap);
    fputc('\n', lg->f);
    fflush(lg->f);
    funlockfile(lg->f);
}

int
cpar_log_ratelimit(uint64_t n)
{
    return n <= 10 || n % 1000 == 0;
}
