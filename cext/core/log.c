/* Timestamped line logging (log.h). */
#include "log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "errors.h"

/* A fresh log writing to f (borrowed) with head "[tag] ". */
static void
cpar__log_init(cpar_log *lg, FILE *f, const char *tag)
{
    pthread_mutex_init(&lg->lock, NULL);
    lg->f = f;
    lg->owned = 0;
    lg->quiet = 0;
    snprintf(lg->head, sizeof(lg->head), "[%s] ", tag ? tag : "cpar");
}

int
cpar_log_open(cpar_log *lg, const char *path, const char *tag, char *err, size_t errlen)
{
    FILE *f;
    if (path == NULL) {
        cpar__log_init(lg, stderr, tag);
        return CPAR_OK;
    }
    f = fopen(path, "a");
    cpar__log_init(lg, f, tag);
    if (f == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return CPAR_EIO;
    }
    lg->owned = 1;
    return CPAR_OK;
}

void
cpar_log_use(cpar_log *lg, FILE *f, const char *tag)
{
    cpar__log_init(lg, f, tag);
}

void
cpar_log_close_to(cpar_log *lg, FILE *then)
{
    pthread_mutex_lock(&lg->lock);
    if (lg->f && lg->owned)
        fclose(lg->f);
    lg->f = then;
    lg->owned = 0;
    pthread_mutex_unlock(&lg->lock);
}

void
cpar_log_close(cpar_log *lg)
{
    cpar_log_close_to(lg, NULL);
}

void
cpar_log_set_head(cpar_log *lg, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&lg->lock);
    va_start(ap, fmt);
    vsnprintf(lg->head, sizeof(lg->head), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&lg->lock);
}

void
cpar_log_set_quiet(cpar_log *lg, int quiet)
{
    lg->quiet = quiet;
}

int
cpar_log_fd(cpar_log *lg)
{
    int fd;
    pthread_mutex_lock(&lg->lock);
    fd = lg->f ? fileno(lg->f) : -1;
    pthread_mutex_unlock(&lg->lock);
    return fd;
}

void
cpar_log_after_fork(cpar_log *lg)
{
    pthread_mutex_init(&lg->lock, NULL);
}

void
cpar_log_vwrite(cpar_log *lg, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    if (lg == NULL)
        return;
    pthread_mutex_lock(&lg->lock);
    if (lg->f != NULL) {
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(lg->f, "%s.%03ld %s", stamp, ts.tv_nsec / 1000000L, lg->head);
        vfprintf(lg->f, fmt, ap);
        fputc('\n', lg->f);
        fflush(lg->f);
    }
    pthread_mutex_unlock(&lg->lock);
}

void
cpar_log_write(cpar_log *lg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar_log_vwrite(lg, fmt, ap);
    va_end(ap);
}

void
cpar_log_info(cpar_log *lg, const char *fmt, ...)
{
    va_list ap;
    if (lg == NULL || lg->quiet)
        return;
    va_start(ap, fmt);
    cpar_log_vwrite(lg, fmt, ap);
    va_end(ap);
}

void
cpar_log_raw(cpar_log *lg, const char *prefix, const char *text, size_t len)
{
    pthread_mutex_lock(&lg->lock);
    if (lg->f != NULL) {
        if (prefix != NULL)
            fputs(prefix, lg->f);
        fwrite(text, 1, len, lg->f);
        fflush(lg->f);
    }
    pthread_mutex_unlock(&lg->lock);
}

int
cpar_log_ratelimit(uint64_t n)
{
    return n <= 10 || n % 1000 == 0;
}
