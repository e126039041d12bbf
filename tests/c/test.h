/* A tiny libuv-style test harness for the C core: TEST_IMPL, ASSERT*, and a runner that
 * runs each test in a forked child (so a crash, an abort or a hang fails one test only).
 *
 * Usage: define tests with TEST_IMPL(name) { ...; return 0; }, list them with
 * TEST_ENTRY(name) in a `static const cpar_test tests[]`, and end main with
 * `return cpar_test_main(tests, n, argc, argv);`. argv[1], when given, runs only the tests
 * whose name contains it. Output ends with "N passed, M failed". */
#ifndef CPAR_TESTS_C_TEST_H
#define CPAR_TESTS_C_TEST_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct cpar_test {
    const char *name;
    int (*fn)(void);
} cpar_test;

#define TEST_IMPL(name) static int cpar_test_##name(void)
#define TEST_ENTRY(name)                                                                           \
    {                                                                                              \
#name, cpar_test_##name                                                                    \
    }

#define CPAR_TEST_FAIL(...)                                                                        \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define ASSERT(expr)                                                                               \
    do {                                                                                           \
        if (!(expr))                                                                               \
            CPAR_TEST_FAIL("assertion failed: %s", #expr);                                         \
    } while (0)

#define CPAR_TEST_CMP(a, op, b)                                                                    \
    do {                                                                                           \
        long long cpar_a_ = (long long)(a), cpar_b_ = (long long)(b);                              \
        if (!(cpar_a_ op cpar_b_))                                                                 \
            CPAR_TEST_FAIL("assertion failed: %s %s %s (%lld vs %lld)", #a, #op, #b, cpar_a_,      \
                           cpar_b_);                                                               \
    } while (0)

#define ASSERT_EQ(a, b) CPAR_TEST_CMP(a, ==, b)
#define ASSERT_NE(a, b) CPAR_TEST_CMP(a, !=, b)
#define ASSERT_LT(a, b) CPAR_TEST_CMP(a, <, b)
#define ASSERT_LE(a, b) CPAR_TEST_CMP(a, <=, b)
#define ASSERT_GT(a, b) CPAR_TEST_CMP(a, >, b)
#define ASSERT_GE(a, b) CPAR_TEST_CMP(a, >=, b)
#define ASSERT_OK(expr) ASSERT_EQ((expr), 0)
#define ASSERT_MEM_EQ(a, b, n) ASSERT(memcmp((a), (b), (n)) == 0)
#define ASSERT_STR_CONTAINS(hay, needle)                                                           \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            CPAR_TEST_FAIL("\"%s\" does not contain \"%s\"", (hay), (needle));                     \
    } while (0)

#define CPAR_TEST_TIMEOUT_S 60 /* a test still running then is killed and fails */

/* A small deterministic generator (xorshift64), so failures reproduce: *state must start
 * non-zero. */
static inline uint64_t
cpar_test_xorshift(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static inline int
cpar_test_main(const cpar_test *tests, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;
    const char *filter = argc > 1 ? argv[1] : NULL;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++) {
        pid_t pid;
        int status = 0;
        if (filter && strstr(tests[i].name, filter) == NULL)
            continue;
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            alarm(CPAR_TEST_TIMEOUT_S);
            exit(tests[i].fn() == 0 ? 0 : 1);
        }
        while (waitpid(pid, &status, 0) < 0)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("ok %zu - %s\n", i + 1, tests[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(status))
                printf("not ok %zu - %s (signal %d%s)\n", i + 1, tests[i].name, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? ": timed out" : "");
            else
                printf("not ok %zu - %s (exit %d)\n", i + 1, tests[i].name, WEXITSTATUS(status));
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif /* CPAR_TESTS_C_TEST_H */
