/* Tests of the page pool (cext/core/pagepool.c) and of the shared-memory receiver reusing
 * its pages (cext/core/shm.c): which kept mapping serves which request, the bounds on what
 * is kept, expiry, and frames resolved into reused pages holding exactly their bytes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "pagepool.h"
#include "shm.h"
#include "test.h"

#define MIB (1u << 20)

static cpar_pagepool_stats
stats(void)
{
    cpar_pagepool_stats s;
    cpar_pagepool_get_stats(&s);
    return s;
}

TEST_IMPL(reuse_of_a_similar_size)
{
    size_t size = 0, size2 = 0;
    uint8_t *a = cpar_pagepool_get(MIB, &size), *b;

    ASSERT(a != NULL);
    ASSERT_EQ(size, MIB);
    memset(a, 0x5a, MIB); /* the pages are ours, writable */
    ASSERT_EQ(stats().misses, 1);
    cpar_pagepool_put(a, size);
    ASSERT_EQ(stats().kept, 1);
    ASSERT_EQ(stats().bytes, MIB);
    /* A request up to 1.5 x smaller gets the kept mapping, its size unchanged. */
    b = cpar_pagepool_get(MIB - MIB / 4, &size2);
    ASSERT(b == a);
    ASSERT_EQ(size2, MIB);
    ASSERT_EQ(stats().hits, 1);
    ASSERT_EQ(stats().kept, 0);
    ASSERT_EQ(stats().bytes, 0);
    cpar_pagepool_put(b, size2);
    /* Too big for it, or so small that it would waste more than half: new pages. */
    b = cpar_pagepool_get(MIB + 1, &size2);
    ASSERT(b != a);
    ASSERT_EQ(size2, MIB + 1);
    cpar_pagepool_put(b, size2);
    b = cpar_pagepool_get(MIB / 2, &size2);
    ASSERT(b != a);
    ASSERT_EQ(stats().hits, 1);
    ASSERT_EQ(stats().misses, 3);
    cpar_pagepool_put(b, size2);
    /* The smallest fitting one is chosen. */
    b = cpar_pagepool_get(MIB, &size2);
    ASSERT(b == a);
    cpar_pagepool_put(b, size2);
    cpar_pagepool_drain();
    ASSERT_EQ(stats().kept, 0);
    ASSERT_EQ(stats().bytes, 0);
    return 0;
}

TEST_IMPL(bounds_on_what_is_kept)
{
    void *maps[CPAR_PAGEPOOL_SLOTS + 2];
    size_t sizes[CPAR_PAGEPOOL_SLOTS + 2];
    size_t n = CPAR_PAGEPOOL_SLOTS + 2, size;
    void *big;

    /* More mappings than slots: the oldest go. */
    for (size_t i = 0; i < n; i++) {
        maps[i] = cpar_pagepool_get((i + 1) * 4096, &sizes[i]);
        ASSERT(maps[i] != NULL);
    }
    for (size_t i = 0; i < n; i++)
        cpar_pagepool_put(maps[i], sizes[i]);
    ASSERT_EQ(stats().kept, CPAR_PAGEPOOL_SLOTS);
    {
        size_t newest = 0; /* the two given back first were evicted */
        for (size_t i = 2; i < n; i++)
            newest += sizes[i];
        ASSERT_EQ(stats().bytes, newest);
    }
    cpar_pagepool_drain();

    /* Never more bytes than the bound: 3 mappings of just under half of it keep 2. */
    for (size_t i = 0; i < 3; i++)
        maps[i] = cpar_pagepool_get(CPAR_PAGEPOOL_BYTES / 2 - MIB, &sizes[i]);
    for (size_t i = 0; i < 3; i++)
        cpar_pagepool_put(maps[i], sizes[i]);
    ASSERT_EQ(stats().kept, 2);
    ASSERT_LE(stats().bytes, CPAR_PAGEPOOL_BYTES);

    /* Larger than the largest kept size: unmapped at once. */
    cpar_pagepool_drain();
    big = cpar_pagepool_get(CPAR_PAGEPOOL_MAX_SIZE + 4096, &size);
    ASSERT(big != NULL);
    cpar_pagepool_put(big, size);
    ASSERT_EQ(stats().kept, 0);
    cpar_pagepool_put(NULL, 4096); /* ignored */
    ASSERT_EQ(stats().kept, 0);
    return 0;
}

TEST_IMPL(unused_mappings_expire)
{
    size_t size;
    void *a = cpar_pagepool_get(MIB, &size);

    cpar_pagepool_put(a, size);
    ASSERT_EQ(cpar_pagepool_trim(), 1); /* still young */
    usleep((useconds_t)(CPAR_PAGEPOOL_AGE_NS / 1000 + 200000));
    ASSERT_EQ(cpar_pagepool_trim(), 0);
    ASSERT_EQ(stats().bytes, 0);
    /* The same expiry at a get: an old mapping is not handed out. */
    a = cpar_pagepool_get(MIB, &size);
    cpar_pagepool_put(a, size);
    usleep((useconds_t)(CPAR_PAGEPOOL_AGE_NS / 1000 + 200000));
    ASSERT(cpar_pagepool_get(MIB, &size) != NULL);
    ASSERT_EQ(stats().hits, 0);
    ASSERT_EQ(stats().misses, 3);
    return 0;
}

static void *
close_frame(void *frame)
{
    zmq_msg_close(frame);
    return NULL;
}

/* Frames resolved one after another land in the same pages once the previous frame is
 * closed (libzmq's free callback gives them back, here from another thread), each holding
 * exactly its own bytes. */
TEST_IMPL(resolved_frames_reuse_pages)
{
    char err[256];
    void *first = NULL;

    for (int round = 0; round < 3; round++) {
        size_t len = MIB + (size_t)(2 - round) * 4096; /* close sizes share one mapping */
        uint8_t *src = malloc(len);
        zmq_msg_t *pinned = NULL;
        size_t npinned = 0;
        cpar_shm_seal seal;
        cpar_msg m;
        void *data;

        for (size_t j = 0; j < len; j++)
            src[j] = (uint8_t)(j * 13 + (size_t)round);
        cpar_msg_init(&m, CPAR_MSG_REPLY);
        ASSERT_OK(cpar_msg_add_copy(&m, src, len));
        ASSERT_EQ(cpar_shm_offload(&m, 0, CPAR_SHM_MIN_SIZE, &pinned, &npinned, &seal), 1);
        ASSERT_OK(cpar_shm_resolve(&m, 0, err, sizeof(err)));
        cpar_shm_seal_break(&seal);
        ASSERT_EQ(zmq_msg_size(&m.frames[0]), len);
        data = zmq_msg_data(&m.frames[0]);
        ASSERT_MEM_EQ(data, src, len);
        if (round == 0)
            first = data;
        else
            ASSERT(data == first);
        if (round == 1) { /* close on another thread, as the client's I/O thread may */
            zmq_msg_t moved;
            pthread_t t;
            zmq_msg_init(&moved);
            zmq_msg_move(&moved, &m.frames[0]);
            ASSERT_EQ(pthread_create(&t, NULL, close_frame, &moved), 0);
            pthread_join(t, NULL);
        }
        cpar_msg_close(&m);
        for (size_t i = 0; i < npinned; i++)
            zmq_msg_close(&pinned[i]);
        free(pinned);
        free(src);
    }
    ASSERT_EQ(stats().misses, 1);
    ASSERT_EQ(stats().hits, 2);
    ASSERT_EQ(stats().kept, 1);
    cpar_pagepool_drain();
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(reuse_of_a_similar_size),
        TEST_ENTRY(bounds_on_what_is_kept),
        TEST_ENTRY(unused_mappings_expire),
        TEST_ENTRY(resolved_frames_reuse_pages),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
