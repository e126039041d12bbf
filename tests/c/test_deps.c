/* Tests of task dependencies (deps.c): after/any/all, success/failure, unknown ids,
 * graphs released through callbacks, cancellation, and the bound on ended records. */
#include <stdint.h>
#include <string.h>

#include "deps.h"
#include "errors.h"
#include "test.h"

/* Task id k: 16 bytes spelling k. */
static const uint8_t *
tid(uint32_t k)
{
    static uint8_t ids[8][CPAR_DEPS_ID_SIZE];
    static int next;
    uint8_t *id = ids[next++ % 8];
    memset(id, 0, CPAR_DEPS_ID_SIZE);
    memcpy(id, &k, sizeof(k));
    id[15] = (uint8_t)(k * 37);
    return id;
}

static void
ids_of(uint8_t *out, const uint32_t *ks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * CPAR_DEPS_ID_SIZE, tid(ks[i]), CPAR_DEPS_ID_SIZE);
}

/* Records releases: handle (as an int) -> state. */
typedef struct {
    int state[64];
    int count;
    cpar_deps *d; /* for callbacks that submit the released task */
} releases;

static void
on_release(void *arg, void *handle, int state)
{
    releases *r = arg;
    r->state[(intptr_t)handle] = state;
    r->count++;
}

static int
wait_on(cpar_deps *d, intptr_t handle, const uint32_t *ks, size_t n, int all, int success,
        int failure)
{
    uint8_t ids[16 * CPAR_DEPS_ID_SIZE];
    cpar_dep_spec spec = {ids, n, all, success, failure};
    int state = -1;
    ids_of(ids, ks, n);
    ASSERT_OK(cpar_deps_wait(d, (void *)handle, &spec, &state));
    return state;
}

TEST_IMPL(after_all_success)
{
    cpar_deps *d = NULL;
    releases r = {{0}, 0, NULL};
    uint32_t ab[] = {1, 2};
    ASSERT_OK(cpar_deps_new(100, &d));
    ASSERT_OK(cpar_deps_submitted(d, tid(1)));
    ASSERT_OK(cpar_deps_submitted(d, tid(2)));
    ASSERT_EQ(cpar_deps_submitted(d, tid(1)), CPAR_EINVAL); /* pending already */
    ASSERT_EQ(wait_on(d, 7, ab, 2, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_EQ(cpar_deps_waiting_count(d), 1);
    ASSERT_OK(cpar_deps_ended(d, tid(1), 0, 1, on_release, &r));
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(cpar_deps_ended(d, tid(2), 3, 1, on_release, &r));
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.state[7], CPAR_DEP_MET);
    ASSERT_EQ(cpar_deps_waiting_count(d), 0);
    /* Ended records answer at once, with where they ran. */
    ASSERT_EQ(wait_on(d, 8, ab, 2, 1, 1, 0), CPAR_DEP_MET);
    {
        int32_t engine = -1;
        ASSERT_EQ(cpar_deps_state(d, tid(2), &engine), CPAR_TASK_SUCCEEDED);
        ASSERT_EQ(engine, 3);
    }
    ASSERT_EQ(cpar_deps_ended(d, tid(2), 3, 1, on_release, &r), CPAR_EINVAL);
    cpar_deps_free(d);
    return 0;
}

TEST_IMPL(failure_makes_success_only_impossible)
{
    cpar_deps *d = NULL;
    releases r = {{0}, 0, NULL};
    uint32_t ab[] = {1, 2};
    ASSERT_OK(cpar_deps_new(100, &d));
    ASSERT_OK(cpar_deps_submitted(d, tid(1)));
    ASSERT_OK(cpar_deps_submitted(d, tid(2)));
    ASSERT_EQ(wait_on(d, 1, ab, 2, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_ended(d, tid(1), 0, 0, on_release, &r)); /* failed */
    ASSERT_EQ(r.state[1], CPAR_DEP_IMPOSSIBLE);                  /* before 2 ends */
    /* failure-only: met by a failure, impossible after a success */
    ASSERT_EQ(wait_on(d, 2, ab, 1, 1, 0, 1), CPAR_DEP_MET);
    ASSERT_EQ(wait_on(d, 3, ab + 1, 1, 1, 0, 1), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_ended(d, tid(2), 0, 1, on_release, &r));
    ASSERT_EQ(r.state[3], CPAR_DEP_IMPOSSIBLE);
    cpar_deps_free(d);
    return 0;
}

TEST_IMPL(any_of)
{
    cpar_deps *d = NULL;
    releases r = {{0}, 0, NULL};
    uint32_t ab[] = {1, 2}, cd[] = {3, 4};
    ASSERT_OK(cpar_deps_new(100, &d));
    for (uint32_t k = 1; k <= 4; k++)
        ASSERT_OK(cpar_deps_submitted(d, tid(k)));
    ASSERT_EQ(wait_on(d, 1, ab, 2, 0, 1, 0), CPAR_DEP_WAITING);
    ASSERT_EQ(wait_on(d, 2, cd, 2, 0, 1, 0), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_ended(d, tid(1), 0, 0, on_release, &r)); /* fails: still hope */
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(cpar_deps_ended(d, tid(2), 1, 1, on_release, &r));
    ASSERT_EQ(r.state[1], CPAR_DEP_MET);
    ASSERT_OK(cpar_deps_ended(d, tid(3), 0, 0, on_release, &r));
    ASSERT_OK(cpar_deps_ended(d, tid(4), 0, 0, on_release, &r));
    ASSERT_EQ(r.state[2], CPAR_DEP_IMPOSSIBLE); /* both failed */
    cpar_deps_free(d);
    return 0;
}

TEST_IMPL(unknown_and_empty)
{
    cpar_deps *d = NULL;
    uint32_t k[] = {99};
    ASSERT_OK(cpar_deps_new(100, &d));
    ASSERT_EQ(wait_on(d, 1, k, 1, 1, 1, 0), CPAR_DEP_IMPOSSIBLE);
    ASSERT_EQ(wait_on(d, 1, k, 0, 1, 1, 0), CPAR_DEP_MET);
    ASSERT_EQ(cpar_deps_state(d, tid(99), NULL), CPAR_TASK_UNKNOWN);
    ASSERT_EQ(cpar_deps_waiting_count(d), 0);
    cpar_deps_free(d);
    return 0;
}

/* A diamond A -> {B, C} -> D, each released task submitted and run by the callback. */
typedef struct {
    cpar_deps *d;
    int order[8];
    int n;
} graph;

static void
run_released(void *arg, void *handle, int state)
{
    graph *g = arg;
    ASSERT_EQ(state, CPAR_DEP_MET);
    g->order[g->n++] = (int)(intptr_t)handle;
    ASSERT_OK(cpar_deps_submitted(g->d, tid((uint32_t)(intptr_t)handle)));
}

TEST_IMPL(diamond_through_callbacks)
{
    graph g = {NULL, {0}, 0};
    uint32_t a[] = {1}, bc[] = {2, 3};
    ASSERT_OK(cpar_deps_new(100, &g.d));
    ASSERT_OK(cpar_deps_submitted(g.d, tid(1)));
    ASSERT_EQ(wait_on(g.d, 2, a, 1, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_EQ(wait_on(g.d, 3, a, 1, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_ended(g.d, tid(1), 0, 1, run_released, &g));
    ASSERT_EQ(g.n, 2); /* B and C released together */
    ASSERT_EQ(wait_on(g.d, 4, bc, 2, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_ended(g.d, tid(3), 1, 1, run_released, &g));
    ASSERT_EQ(g.n, 2);
    ASSERT_OK(cpar_deps_ended(g.d, tid(2), 0, 1, run_released, &g));
    ASSERT_EQ(g.n, 3);
    ASSERT_EQ(g.order[2], 4);
    ASSERT_EQ(cpar_deps_pending_count(g.d), 1); /* D itself */
    cpar_deps_free(g.d);
    return 0;
}

TEST_IMPL(cancel_and_duplicates)
{
    cpar_deps *d = NULL;
    releases r = {{0}, 0, NULL};
    uint32_t aa[] = {1, 1, 2};
    ASSERT_OK(cpar_deps_new(100, &d));
    ASSERT_OK(cpar_deps_submitted(d, tid(1)));
    ASSERT_OK(cpar_deps_submitted(d, tid(2)));
    ASSERT_EQ(wait_on(d, 5, aa, 3, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_EQ(wait_on(d, 6, aa, 3, 1, 1, 0), CPAR_DEP_WAITING);
    ASSERT_OK(cpar_deps_cancel(d, (void *)(intptr_t)6));
    ASSERT_EQ(cpar_deps_cancel(d, (void *)(intptr_t)6), CPAR_EINVAL);
    ASSERT_OK(cpar_deps_ended(d, tid(1), 0, 1, on_release, &r));
    ASSERT_OK(cpar_deps_ended(d, tid(2), 0, 1, on_release, &r));
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.state[5], CPAR_DEP_MET);
    cpar_deps_free(d);
    return 0;
}

TEST_IMPL(ended_records_are_bounded)
{
    cpar_deps *d = NULL;
    ASSERT_OK(cpar_deps_new(10, &d));
    for (uint32_t k = 0; k < 5000; k++) {
        ASSERT_OK(cpar_deps_submitted(d, tid(k)));
        ASSERT_OK(cpar_deps_ended(d, tid(k), 0, 1, NULL, NULL));
        ASSERT_LE(cpar_deps_ended_count(d), 10);
    }
    ASSERT_EQ(cpar_deps_state(d, tid(0), NULL), CPAR_TASK_UNKNOWN);
    ASSERT_EQ(cpar_deps_state(d, tid(4999), NULL), CPAR_TASK_SUCCEEDED);
    /* A resubmitted task is not forgotten by its old ring entry. */
    ASSERT_OK(cpar_deps_submitted(d, tid(4995)));
    for (uint32_t k = 6000; k < 6020; k++) {
        ASSERT_OK(cpar_deps_submitted(d, tid(k)));
        ASSERT_OK(cpar_deps_ended(d, tid(k), 0, 1, NULL, NULL));
    }
    ASSERT_EQ(cpar_deps_state(d, tid(4995), NULL), CPAR_TASK_PENDING);
    ASSERT_EQ(cpar_deps_pending_count(d), 1);
    cpar_deps_free(d);
    return 0;
}

TEST_IMPL(many_pending_grow_and_shrink)
{
    cpar_deps *d = NULL;
    releases r = {{0}, 0, NULL};
    uint32_t first[] = {0};
    ASSERT_OK(cpar_deps_new(100000, &d));
    for (uint32_t k = 0; k < 20000; k++)
        ASSERT_OK(cpar_deps_submitted(d, tid(k)));
    ASSERT_EQ(wait_on(d, 9, first, 1, 1, 1, 0), CPAR_DEP_WAITING);
    for (uint32_t k = 19999; k > 0; k--)
        ASSERT_OK(cpar_deps_ended(d, tid(k), (int32_t)(k % 4), k % 3 != 0, on_release, &r));
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(cpar_deps_ended(d, tid(0), 2, 1, on_release, &r));
    ASSERT_EQ(r.state[9], CPAR_DEP_MET);
    for (uint32_t k = 1; k < 20000; k++) {
        int32_t engine = -1;
        ASSERT_EQ(cpar_deps_state(d, tid(k), &engine),
                  k % 3 != 0 ? CPAR_TASK_SUCCEEDED : CPAR_TASK_FAILED);
        ASSERT_EQ(engine, (int32_t)(k % 4));
    }
    cpar_deps_free(d);
    return 0;
}

/* SipHash-2-4 against the reference implementation (key 00..0f, message 00..0f; the
 * same code gives the paper's a129ca6149be45e5 for message 00..0e). */
TEST_IMPL(hash_is_siphash)
{
    uint8_t k[16], m[16];
    uint64_t key[2];
    for (int i = 0; i < 16; i++)
        k[i] = m[i] = (uint8_t)i;
    memcpy(&key[0], k, 8); /* little-endian host (x86-64, aarch64) */
    memcpy(&key[1], k + 8, 8);
    ASSERT(cpar_deps_hash_id(key, m) == 0x3f2acc7f57c29bdbu);
    return 0;
}

/* Two tables (two controllers) hash the same id differently: each has its own key. */
TEST_IMPL(tables_are_keyed_apart)
{
    cpar_deps *a, *b;
    int differ = 0;
    ASSERT_OK(cpar_deps_new(10, &a));
    ASSERT_OK(cpar_deps_new(10, &b));
    for (uint32_t k = 0; k < 4; k++)
        differ += cpar_deps_hash(a, tid(k)) != cpar_deps_hash(b, tid(k));
    ASSERT_EQ(differ, 4);
    cpar_deps_free(a);
    cpar_deps_free(b);
    return 0;
}

/* The unkeyed hash this table used before (kept here only to build colliding ids). */
static uint64_t
old_hash(const uint8_t *id)
{
    uint64_t h, lo;
    memcpy(&h, id, 8);
    memcpy(&lo, id + 8, 8);
    h ^= lo * 0x9e3779b97f4a7c15u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

/* Ids all landing in one slot of the old hash (its low 24 bits are 0): its steps are
 * invertible, so a client could have chosen them. With the keyed hash the table's longest
 * probe stays short, as for random ids. */
TEST_IMPL(chosen_colliding_ids_do_not_chain)
{
    enum { N = 3000 };
    const uint64_t c = 0xff51afd7ed558ccdu;
    uint64_t inv = c; /* inverse of c mod 2^64 by Newton's iteration */
    cpar_deps *d;
    static uint8_t ids[N][CPAR_DEPS_ID_SIZE];

    for (int i = 0; i < 6; i++)
        inv *= 2 - c * inv;
    ASSERT(c * inv == 1);
    for (uint64_t k = 0; k < N; k++) {
        uint64_t y = (k + 1) << 24, x;
        y ^= y >> 33;
        y *= inv;
        x = y ^ (y >> 33);
        memcpy(ids[k], &x, 8);
        memset(ids[k] + 8, 0, 8);
        ASSERT_EQ(old_hash(ids[k]) & 0xffffffu, 0); /* one slot for any table <= 2^24 */
    }
    ASSERT_OK(cpar_deps_new(N, &d));
    for (int k = 0; k < N; k++)
        ASSERT_OK(cpar_deps_submitted(d, ids[k]));
    ASSERT_EQ(cpar_deps_pending_count(d), N);
    /* Linear probing at load <= 1/2: random ids probe a few tens at worst; the old hash
     * put all N in one chain (a probe of N - 1). */
    ASSERT_LT(cpar_deps_max_probe(d), 100);
    for (int k = 0; k < N; k++)
        ASSERT_OK(cpar_deps_ended(d, ids[k], 0, 1, NULL, NULL));
    cpar_deps_free(d);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(after_all_success),
        TEST_ENTRY(failure_makes_success_only_impossible),
        TEST_ENTRY(any_of),
        TEST_ENTRY(unknown_and_empty),
        TEST_ENTRY(diamond_through_callbacks),
        TEST_ENTRY(cancel_and_duplicates),
        TEST_ENTRY(ended_records_are_bounded),
        TEST_ENTRY(many_pending_grow_and_shrink),
        TEST_ENTRY(hash_is_siphash),
        TEST_ENTRY(tables_are_keyed_apart),
        TEST_ENTRY(chosen_colliding_ids_do_not_chain),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
