/* Tests of the one id table (cext/core/idtab.c): put/first/next/remove against a simple
 * model, with hashes chosen to collide (equal full hashes, equal home slots, runs that wrap
 * around the end of the slot array), growth, and the seeded byte-string hash. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "idtab.h"
#include "test.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t
rng(void)
{
    return cpar_test_xorshift(&rng_state);
}

/* Whether item is stored under hash (walking the candidates like a caller would). */
static int
has(const cpar_idtab *t, uint64_t hash, uintptr_t item)
{
    for (size_t s = cpar_idtab_first(t, hash); s != CPAR_IDTAB_END; s = cpar_idtab_next(t, s, hash))
        if (t->slots[s].item == item)
            return 1;
    return 0;
}

TEST_IMPL(idtab_basic)
{
    cpar_idtab t;
    cpar_idtab_init(&t, 4);
    ASSERT_EQ(cpar_idtab_first(&t, 7), CPAR_IDTAB_END);
    ASSERT_EQ(cpar_idtab_remove(&t, 7, 1), 0);
    ASSERT_OK(cpar_idtab_put(&t, 7, 1));
    ASSERT_OK(cpar_idtab_put(&t, 7, 2));  /* same full hash: both are candidates */
    ASSERT_OK(cpar_idtab_put(&t, 15, 3)); /* same home slot in 8 slots, other hash */
    ASSERT_EQ(t.count, 3);
    ASSERT_EQ(t.nslots, 8);
    ASSERT(has(&t, 7, 1) && has(&t, 7, 2) && has(&t, 15, 3));
    ASSERT(!has(&t, 7, 3) && !has(&t, 15, 1));
    ASSERT_EQ(cpar_idtab_remove(&t, 7, 1), 1);
    ASSERT_EQ(cpar_idtab_remove(&t, 7, 1), 0);
    ASSERT(has(&t, 7, 2) && has(&t, 15, 3)); /* the run shifted back, still reachable */
    ASSERT_EQ(cpar_idtab_max_probe(&t), 1);
    cpar_idtab_free(&t);
    ASSERT_EQ(t.count, 0);
    ASSERT_EQ(cpar_idtab_first(&t, 7), CPAR_IDTAB_END);
    return 0;
}

TEST_IMPL(idtab_zeroed_table_works)
{
    cpar_idtab t;
    memset(&t, 0, sizeof(t));
    for (uintptr_t i = 1; i <= 100; i++)
        ASSERT_OK(cpar_idtab_put(&t, i * 0x9e3779b97f4a7c15ULL, i));
    for (uintptr_t i = 1; i <= 100; i++)
        ASSERT(has(&t, i * 0x9e3779b97f4a7c15ULL, i));
    ASSERT_LE(t.count * 2, t.nslots);
    cpar_idtab_free(&t);
    return 0;
}

/* Many operations against a model. Hashes come from a small set whose low bits crowd the
 * last slots, so runs collide, share full hashes and wrap around the end. */
TEST_IMPL(idtab_random_against_model)
{
    enum { NITEMS = 4000, OPS = 300000 };
    static uint64_t hash_of[NITEMS + 1];
    static int in[NITEMS + 1];
    cpar_idtab t;
    size_t count = 0;

    cpar_idtab_init(&t, 8);
    for (int i = 1; i <= NITEMS; i++)
        hash_of[i] = (rng() % 3 == 0) ? (uint64_t)(i % 13) - 5 : (rng() << 8) | 0xfc;
    for (int op = 0; op < OPS; op++) {
        uintptr_t i = 1 + (uintptr_t)(rng() % NITEMS);
        switch (rng() % 3) {
        case 0:
            if (!in[i]) {
                ASSERT_OK(cpar_idtab_put(&t, hash_of[i], i));
                in[i] = 1;
                count++;
            }
            break;
        case 1:
            ASSERT_EQ(cpar_idtab_remove(&t, hash_of[i], i), in[i]);
            count -= in[i];
            in[i] = 0;
            break;
        default:
            ASSERT_EQ(has(&t, hash_of[i], i), in[i]);
            break;
        }
        ASSERT_EQ(t.count, count);
    }
    /* Every item once more at the end (catches a broken backward shift). */
    for (uintptr_t i = 1; i <= NITEMS; i++)
        ASSERT_EQ(has(&t, hash_of[i], i), in[i]);
    ASSERT_LE(t.count * 2, t.nslots);
    cpar_idtab_free(&t);
    return 0;
}

TEST_IMPL(idtab_remove_at_during_walk)
{
    cpar_idtab t;
    size_t s;
    cpar_idtab_init(&t, 16);
    for (uintptr_t i = 1; i <= 6; i++)
        ASSERT_OK(cpar_idtab_put(&t, 42, i));
    /* Remove every candidate by restarting the walk after each removal. */
    while ((s = cpar_idtab_first(&t, 42)) != CPAR_IDTAB_END)
        cpar_idtab_remove_at(&t, s);
    ASSERT_EQ(t.count, 0);
    cpar_idtab_free(&t);
    return 0;
}

TEST_IMPL(idtab_hash_spreads)
{
    uint8_t id[16] = {0};
    int seen[64] = {0}, distinct = 0;
    for (int bit = 0; bit < 128; bit++) {
        memset(id, 0, sizeof(id));
        id[bit / 8] = (uint8_t)(1u << (bit % 8));
        seen[cpar_idtab_hash(id, sizeof(id), 1) & 63]++;
    }
    for (int i = 0; i < 64; i++)
        distinct += seen[i] > 0;
    ASSERT_GT(distinct, 40);
    ASSERT(cpar_idtab_hash("abc", 3, 1) != cpar_idtab_hash("abc", 3, 2));
    ASSERT(cpar_idtab_hash("", 0, 1) != cpar_idtab_hash("\0", 1, 1));
    ASSERT(cpar_idtab_seed(1) != cpar_idtab_seed(2));
    return 0;
}

typedef struct {
    int other;
    uint8_t id[16];
} keyed;

TEST_IMPL(idtab_find_key)
{
    static keyed items[3];
    cpar_idtab t;
    uint8_t probe[16];
    cpar_idtab_init(&t, 8);
    for (int i = 0; i < 3; i++) {
        memset(items[i].id, 'a' + i, 16);
        /* Items 0 and 1 share a hash: the key tells them apart. */
        ASSERT_OK(cpar_idtab_put(&t, i < 2 ? 5 : 9, (uintptr_t)&items[i]));
    }
    memset(probe, 'b', 16);
    ASSERT(cpar_idtab_find_key(&t, 5, probe, 16, offsetof(keyed, id)) == &items[1]);
    memset(probe, 'a', 16);
    ASSERT(cpar_idtab_find_key(&t, 5, probe, 16, offsetof(keyed, id)) == &items[0]);
    ASSERT(cpar_idtab_find_key(&t, 9, probe, 16, offsetof(keyed, id)) == NULL);
    memset(probe, 'c', 16);
    ASSERT(cpar_idtab_find_key(&t, 9, probe, 16, offsetof(keyed, id)) == &items[2]);
    cpar_idtab_free(&t);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(idtab_find_key),
    TEST_ENTRY(idtab_basic),
    TEST_ENTRY(idtab_zeroed_table_works),
    TEST_ENTRY(idtab_random_against_model),
    TEST_ENTRY(idtab_remove_at_during_walk),
    TEST_ENTRY(idtab_hash_spreads),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
