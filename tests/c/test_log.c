/* Tests of the logger (cext/core/log.c), shared by the controller and the engine: line
 * format, heads, quiet, raw writes, closing, and whole lines under threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "test.h"

/* Reads all of f from the start into buf (NUL-terminated). */
static void
slurp(FILE *f, char *buf, size_t cap)
{
    size_t n;
    fflush(f);
    rewind(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
}

TEST_IMPL(log_lines_and_heads)
{
    static char buf[4096];
    FILE *f = tmpfile();
    cpar_log lg;

    ASSERT(f != NULL);
    cpar_log_use(&lg, f, "controller");
    cpar_log_write(&lg, "hello %d", 42);
    cpar_log_set_head(&lg, "cpar-engine[%d] engine %d: ", 7, 3);
    cpar_log_write(&lg, "second");
    cpar_log_info(&lg, "info shown");
    cpar_log_set_quiet(&lg, 1);
    cpar_log_info(&lg, "info hidden");
    cpar_log_raw(&lg, "[out] ", "raw text", 8);
    cpar_log_raw(&lg, NULL, "!\n", 2);
    ASSERT_EQ(cpar_log_fd(&lg), fileno(f));
    slurp(f, buf, sizeof(buf));
    /* "YYYY-mm-dd HH:MM:SS.mmm " then the head. */
    ASSERT_EQ(buf[4], '-');
    ASSERT_EQ(buf[19], '.');
    ASSERT_EQ(buf[23], ' ');
    ASSERT(strncmp(buf + 24, "[controller] hello 42\n", 22) == 0);
    ASSERT_STR_CONTAINS(buf, " cpar-engine[7] engine 3: second\n");
    ASSERT_STR_CONTAINS(buf, " cpar-engine[7] engine 3: info shown\n");
    ASSERT(strstr(buf, "info hidden") == NULL);
    ASSERT_STR_CONTAINS(buf, "\n[out] raw text!\n");
    cpar_log_close(&lg); /* borrowed: not closed */
    cpar_log_write(&lg, "dropped");
    ASSERT_EQ(cpar_log_fd(&lg), -1);
    slurp(f, buf, sizeof(buf));
    ASSERT(strstr(buf, "dropped") == NULL);
    fclose(f);
    return 0;
}

TEST_IMPL(log_open_path_and_close_to)
{
    static char buf[4096];
    char path[] = "/tmp/cpar-test-log-XXXXXX", err[256] = "";
    FILE *other = tmpfile(), *f;
    cpar_log lg;
    int fd = mkstemp(path);

    ASSERT(fd >= 0 && other != NULL);
    ASSERT_EQ(cpar_log_open(&lg, "/nonexistent-dir/x.log", "t", err, sizeof(err)), CPAR_EIO);
    ASSERT_STR_CONTAINS(err, "/nonexistent-dir/x.log");
    cpar_log_write(&lg, "nowhere"); /* logging off: no crash */
    ASSERT_OK(cpar_log_open(&lg, path, "t", err, sizeof(err)));
    cpar_log_write(&lg, "to the file");
    cpar_log_close_to(&lg, other);
    cpar_log_write(&lg, "to the other");
    f = fdopen(fd, "r");
    slurp(f, buf, sizeof(buf));
    ASSERT_STR_CONTAINS(buf, "[t] to the file\n");
    ASSERT(strstr(buf, "to the other") == NULL);
    slurp(other, buf, sizeof(buf));
    ASSERT_STR_CONTAINS(buf, "[t] to the other\n");
    cpar_log_close(&lg);
    fclose(f);
    fclose(other);
    unlink(path);
    return 0;
}

enum { NTHREADS = 4, LINES = 500 };

static void *
log_worker(void *arg)
{
    cpar_log *lg = arg;
    for (int i = 0; i < LINES; i++)
        cpar_log_write(lg, "%s", "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz");
    return NULL;
}

TEST_IMPL(log_lines_stay_whole_under_threads)
{
    FILE *f = tmpfile();
    pthread_t th[NTHREADS];
    char line[256];
    int n = 0;
    cpar_log lg;

    ASSERT(f != NULL);
    cpar_log_use(&lg, f, "x");
    for (int t = 0; t < NTHREADS; t++)
        ASSERT_OK(pthread_create(&th[t], NULL, log_worker, &lg));
    for (int t = 0; t < NTHREADS; t++)
        ASSERT_OK(pthread_join(th[t], NULL));
    rewind(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        ASSERT_STR_CONTAINS(
            line, " [x] abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n");
        n++;
    }
    ASSERT_EQ(n, NTHREADS * LINES);
    fclose(f);
    return 0;
}

TEST_IMPL(log_ratelimit)
{
    int logged = 0;
    for (uint64_t n = 1; n <= 5000; n++)
        logged += cpar_log_ratelimit(n);
    ASSERT_EQ(logged, 10 + 5);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(log_lines_and_heads),
    TEST_ENTRY(log_open_path_and_close_to),
    TEST_ENTRY(log_lines_stay_whole_under_threads),
    TEST_ENTRY(log_ratelimit),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
