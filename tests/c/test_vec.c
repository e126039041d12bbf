/* Tests of the growing-array helper (cext/core/vec.c). */
#include <stdint.h>
#include <stdlib.h>

#include "vec.h"
#include "test.h"

TEST_IMPL(vec_grows_by_doubling)
{
    int *v = NULL, *nv;
    size_t cap = 0, n = 0;
    for (int i = 0; i < 1000; i++) {
        size_t before = cap;
        nv = cpar_vec_grow(v, &cap, n + 1, sizeof(*v), 4);
        ASSERT(nv != NULL);
        v = nv;
        ASSERT_GE(cap, n + 1);
        if (before != cap)
            ASSERT_EQ(cap, before ? before * 2 : 4);
        v[n++] = i;
    }
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(v[i], i);
    ASSERT_EQ(cap, 1024);
    /* Enough room: the same array, capacity unchanged. */
    ASSERT(cpar_vec_grow(v, &cap, 10, sizeof(*v), 4) == v);
    ASSERT_EQ(cap, 1024);
    /* A jump past double. */
    v = cpar_vec_grow(v, &cap, 5000, sizeof(*v), 4);
    ASSERT(v != NULL);
    ASSERT_EQ(cap, 8192);
    free(v);
    return 0;
}

TEST_IMPL(vec_overflow_leaves_the_array)
{
    char *v = malloc(8);
    size_t cap = 8;
    ASSERT(v != NULL);
    ASSERT(cpar_vec_grow(v, &cap, SIZE_MAX, 1, 8) == NULL);
    ASSERT(cpar_vec_grow(v, &cap, SIZE_MAX / 4, 16, 8) == NULL);
    ASSERT_EQ(cap, 8);
    free(v); /* still ours */
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(vec_grows_by_doubling),
    TEST_ENTRY(vec_overflow_leaves_the_array),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
