/* clockshift: an LD_PRELOAD shim that shifts the wall clock (CLOCK_REALTIME and its
 * relatives) of every process it is loaded into by an offset the test changes at run time.
 *
 * The offset is a signed 64-bit count of nanoseconds stored at the start of the file named
 * by $CLOCKSHIFT_FILE, mapped shared, so a test steps the clock of a running controller,
 * engines and client at once by writing 8 bytes. The monotonic clocks are left alone:
 * that is what a clock step (NTP, a suspended VM, an administrator) does to a real machine.
 * Built by tests/test_clock.py with `cc -shared -fPIC`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static volatile int64_t *shift_ns; /* the shared offset; NULL: no file, no shift */
static clock_gettime_fn real_clock_gettime;

static void
shift_init(void)
{
    const char *path;
    int fd;
    void *p;

    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    path = getenv("CLOCKSHIFT_FILE");
    if (path == NULL)
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED)
        shift_ns = (volatile int64_t *)p;
}

__attribute__((constructor)) static void
shift_ctor(void)
{
    shift_init();
}

static int
is_wall(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc;
    int64_t ns;

    if (real_clock_gettime == NULL)
        shift_init();
    rc = real_clock_gettime(id, ts);
    if (rc != 0 || !is_wall(id) || shift_ns == NULL)
        return rc;
    ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + *shift_ns;
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
    return 0;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;

    (void)tz;
    if (tv == NULL)
        return 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t
time(time_t *out)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
