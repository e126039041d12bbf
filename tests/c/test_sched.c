/* Tests of the load-balancing policies (scheduler.c): each scheme's choice, the high-water
 * mark, allowed/excluded filters, and engines coming and going. */
#include <stdint.h>
#include <time.h>

#include "errors.h"
#include "scheduler.h"
#include "test.h"

static cpar_sched *
make(int scheme, int hwm, int nengines)
{
    cpar_sched *s = NULL;
    ASSERT_OK(cpar_sched_new(scheme, hwm, 12345, &s));
    for (int i = 0; i < nengines; i++)
        ASSERT_OK(cpar_sched_engine_add(s, i));
    return s;
}

/* Picks and assigns one task; returns the engine. */
static int32_t
place(cpar_sched *s, const cpar_sched_filter *f)
{
    int32_t e = -1;
    ASSERT_OK(cpar_sched_pick(s, f, &e));
    ASSERT_OK(cpar_sched_assigned(s, e));
    return e;
}

TEST_IMPL(scheme_names)
{
    int scheme = -1;
    const char *names[] = {"leastload", "lru", "weighted", "twobin", "plainrandom"};
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(cpar_sched_scheme_parse(names[i], &scheme));
        ASSERT_EQ(scheme, i);
        ASSERT(strcmp(cpar_sched_scheme_name(i), names[i]) == 0);
    }
    ASSERT_EQ(cpar_sched_scheme_parse("fastest", &scheme), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_scheme_parse(NULL, &scheme), CPAR_EINVAL);
    return 0;
}

TEST_IMPL(bad_arguments)
{
    cpar_sched *s = NULL;
    ASSERT_EQ(cpar_sched_new(99, 0, 1, &s), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_new(CPAR_SCHED_LRU, -2, 1, &s), CPAR_EINVAL);
    s = make(CPAR_SCHED_LRU, 0, 2);
    ASSERT_EQ(cpar_sched_engine_add(s, 1), CPAR_EINVAL); /* twice */
    ASSERT_EQ(cpar_sched_engine_add(s, -3), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_engine_add(s, 1 << 20), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_engine_remove(s, 7), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_finished(s, 0), CPAR_EINVAL); /* nothing outstanding */
    ASSERT_EQ(cpar_sched_assigned(s, 9), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_load(s, 9), -1);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(leastload_fills_evenly_and_prefers_idle)
{
    cpar_sched *s = make(CPAR_SCHED_LEASTLOAD, 0, 3);
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 30; i++)
        counts[place(s, NULL)]++;
    ASSERT_EQ(counts[0], 10);
    ASSERT_EQ(counts[1], 10);
    ASSERT_EQ(counts[2], 10);
    /* Engine 1 finishes three tasks: the next three go to it. */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cpar_sched_finished(s, 1));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(place(s, NULL), 1);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(lru_is_round_robin)
{
    cpar_sched *s = make(CPAR_SCHED_LRU, 0, 4);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(place(s, NULL), i);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(random_schemes_reach_every_engine)
{
    int schemes[] = {CPAR_SCHED_PLAINRANDOM, CPAR_SCHED_TWOBIN, CPAR_SCHED_WEIGHTED};
    for (int k = 0; k < 3; k++) {
        cpar_sched *s = make(schemes[k], 0, 4);
        int counts[4] = {0, 0, 0, 0};
        for (int i = 0; i < 4000; i++) {
            int32_t e = place(s, NULL);
            ASSERT(e >= 0 && e < 4);
            counts[e]++;
            ASSERT_OK(cpar_sched_finished(s, e));
        }
        for (int e = 0; e < 4; e++)
            ASSERT_GT(counts[e], 500);
        cpar_sched_free(s);
    }
    return 0;
}

TEST_IMPL(weighted_favours_the_lighter_engine)
{
    cpar_sched *s = make(CPAR_SCHED_WEIGHTED, 0, 2);
    int to_light = 0;
    for (int i = 0; i < 20; i++)
        ASSERT_OK(cpar_sched_assigned(s, 0)); /* engine 0 carries 20 tasks */
    for (int i = 0; i < 1000; i++) {
        int32_t e = -1;
        ASSERT_OK(cpar_sched_pick(s, NULL, &e));
        to_light += e == 1;
    }
    ASSERT_GT(to_light, 900);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(high_water_mark_holds_tasks_back)
{
    cpar_sched *s = make(CPAR_SCHED_LEASTLOAD, 2, 2);
    int32_t e = -1;
    for (int i = 0; i < 4; i++)
        place(s, NULL);
    ASSERT_EQ(cpar_sched_load(s, 0), 2);
    ASSERT_EQ(cpar_sched_load(s, 1), 2);
    ASSERT_EQ(cpar_sched_pick(s, NULL, &e), CPAR_EAGAIN);
    ASSERT_OK(cpar_sched_finished(s, 1));
    ASSERT_EQ(place(s, NULL), 1);
    cpar_sched_free(s);
    return 0;
}

/* The adaptive limit: 1 before any task finished; about budget / run time after fast
 * tasks (capped); 1 after slow ones; and an engine stuck past the budget on a task gets
 * nothing more until it finishes one. */
TEST_IMPL(adaptive_high_water_mark)
{
    cpar_sched *s = make(CPAR_SCHED_LEASTLOAD, CPAR_SCHED_HWM_AUTO, 1);
    struct timespec pause = {0, (long)(CPAR_SCHED_AUTO_BUDGET_NS * 2)};
    int32_t e = -1;

    ASSERT_EQ(cpar_sched_limit(s, 0), 1);
    ASSERT_EQ(place(s, NULL), 0);
    ASSERT_EQ(cpar_sched_pick(s, NULL, &e), CPAR_EAGAIN);
    ASSERT_OK(cpar_sched_finished(s, 0));
    for (int i = 0; i < 50; i++)
        ASSERT_OK(cpar_sched_observe(s, 0, 10000)); /* 10 us tasks */
    ASSERT_EQ(cpar_sched_limit(s, 0), CPAR_SCHED_AUTO_MAX);
    for (int i = 0; i < 50; i++)
        ASSERT_OK(cpar_sched_observe(s, 0, 1000000)); /* 1 ms: 1 + 5 */
    ASSERT_EQ(cpar_sched_limit(s, 0), 6);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(place(s, NULL), 0);
    /* Nothing finishes for twice the budget: the engine is stuck on a long task. */
    nanosleep(&pause, NULL);
    ASSERT_EQ(cpar_sched_pick(s, NULL, &e), CPAR_EAGAIN);
    ASSERT_OK(cpar_sched_finished(s, 0));
    ASSERT_EQ(place(s, NULL), 0);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cpar_sched_observe(s, 0, 50000000)); /* 50 ms tasks */
    ASSERT_EQ(cpar_sched_limit(s, 0), 1);
    ASSERT_EQ(cpar_sched_observe(s, 7, 1), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_limit(s, 7), -1);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(filters_allow_and_exclude)
{
    cpar_sched *s = make(CPAR_SCHED_LRU, 0, 5);
    int32_t allowed[] = {3, 1, 3, 42}; /* a duplicate and an unknown engine */
    int32_t excluded[] = {1};
    cpar_sched_filter only = {allowed, 4, NULL, 0};
    cpar_sched_filter both = {allowed, 4, excluded, 1};
    cpar_sched_filter none = {excluded, 1, excluded, 1};
    cpar_sched_filter not_one = {NULL, 0, excluded, 1};
    int32_t e = -1;

    for (int i = 0; i < 10; i++) {
        e = place(s, &only);
        ASSERT(e == 1 || e == 3);
    }
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(place(s, &both), 3);
    ASSERT_EQ(cpar_sched_pick(s, &none, &e), CPAR_ENOENGINE);
    for (int i = 0; i < 20; i++)
        ASSERT_NE(place(s, &not_one), 1);
    cpar_sched_free(s);
    return 0;
}

TEST_IMPL(engines_come_and_go)
{
    cpar_sched *s = make(CPAR_SCHED_LEASTLOAD, 0, 0);
    int32_t e = -1;
    ASSERT_EQ(cpar_sched_pick(s, NULL, &e), CPAR_ENOENGINE);
    for (int i = 0; i < 300; i++)
        ASSERT_OK(cpar_sched_engine_add(s, i * 7));
    ASSERT_EQ(cpar_sched_engine_count(s), 300);
    for (int i = 0; i < 300; i += 2)
        ASSERT_OK(cpar_sched_engine_remove(s, i * 7));
    ASSERT_EQ(cpar_sched_engine_count(s), 150);
    for (int i = 0; i < 1500; i++) {
        e = place(s, NULL);
        ASSERT_EQ(e % 7, 0);
        ASSERT_EQ((e / 7) % 2, 1); /* only the engines still there */
    }
    for (int i = 1; i < 300; i += 2)
        ASSERT_EQ(cpar_sched_load(s, i * 7), 10);
    /* A removed engine can come back, with a clean slate. */
    ASSERT_OK(cpar_sched_engine_add(s, 0));
    ASSERT_EQ(cpar_sched_load(s, 0), 0);
    ASSERT_EQ(place(s, NULL), 0);
    cpar_sched_free(s);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(scheme_names),
        TEST_ENTRY(bad_arguments),
        TEST_ENTRY(leastload_fills_evenly_and_prefers_idle),
        TEST_ENTRY(lru_is_round_robin),
        TEST_ENTRY(random_schemes_reach_every_engine),
        TEST_ENTRY(weighted_favours_the_lighter_engine),
        TEST_ENTRY(high_water_mark_holds_tasks_back),
        TEST_ENTRY(adaptive_high_water_mark),
        TEST_ENTRY(filters_allow_and_exclude),
        TEST_ENTRY(engines_come_and_go),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
