/* Tests of the message id generator (cext/core/ids.c): the format (random prefix, then a
 * little-endian counter from 1 with the mark or'ed into its first byte) and uniqueness
 * under threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "test.h"

TEST_IMPL(ids_format)
{
    cpar_ids g, h;
    uint8_t a[CPAR_IDS_SIZE], b[CPAR_IDS_SIZE];
    static const uint8_t one[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t two[8] = {2, 0, 0, 0, 0, 0, 0, 0};

    cpar_ids_init(&g, 1, 0);
    cpar_ids_init(&h, 2, 0);
    cpar_ids_next(&g, a);
    cpar_ids_next(&g, b);
    ASSERT_MEM_EQ(a, g.prefix, 8);
    ASSERT_MEM_EQ(b, g.prefix, 8);
    ASSERT_MEM_EQ(a + 8, one, 8);
    ASSERT_MEM_EQ(b + 8, two, 8);
    ASSERT(memcmp(g.prefix, h.prefix, 8) != 0); /* random per generator */
    for (int i = 0; i < 300; i++)
        cpar_ids_next(&g, a);
    ASSERT_EQ(a[8], 302 & 0xff);
    ASSERT_EQ(a[9], 302 >> 8);
    return 0;
}

TEST_IMPL(ids_mark)
{
    cpar_ids g;
    uint8_t a[CPAR_IDS_SIZE];
    cpar_ids_init(&g, 3, 0x80);
    cpar_ids_next(&g, a);
    ASSERT_EQ(a[8], 0x81);
    for (int i = 9; i < CPAR_IDS_SIZE; i++)
        ASSERT_EQ(a[i], 0);
    return 0;
}

enum { NTHREADS = 4, PER_THREAD = 20000 };

typedef struct {
    cpar_ids *g;
    uint8_t (*out)[CPAR_IDS_SIZE];
} ids_job;

static void *
ids_worker(void *arg)
{
    ids_job *j = arg;
    for (int i = 0; i < PER_THREAD; i++)
        cpar_ids_next(j->g, j->out[i]);
    return NULL;
}

static int
ids_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CPAR_IDS_SIZE);
}

TEST_IMPL(ids_unique_across_threads)
{
    static uint8_t all[NTHREADS * PER_THREAD][CPAR_IDS_SIZE];
    pthread_t th[NTHREADS];
    ids_job jobs[NTHREADS];
    cpar_ids g;

    cpar_ids_init(&g, 4, 0);
    for (int t = 0; t < NTHREADS; t++) {
        jobs[t].g = &g;
        jobs[t].out = &all[t * PER_THREAD];
        ASSERT_OK(pthread_create(&th[t], NULL, ids_worker, &jobs[t]));
    }
    for (int t = 0; t < NTHREADS; t++)
        ASSERT_OK(pthread_join(th[t], NULL));
    qsort(all, NTHREADS * PER_THREAD, CPAR_IDS_SIZE, ids_cmp);
    for (int i = 1; i < NTHREADS * PER_THREAD; i++)
        ASSERT(memcmp(all[i - 1], all[i], CPAR_IDS_SIZE) != 0);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(ids_format),
    TEST_ENTRY(ids_mark),
    TEST_ENTRY(ids_unique_across_threads),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
