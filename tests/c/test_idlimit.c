/* The engine-id limit at the controller, reached for real: this binary is built with
 * -DCPAR_ENGINE_ID_LIMIT=8 (tests/c/build.mk), so the registry, the scheduler and the
 * registration path all use 8 instead of 65,536 (registry.h), with no other change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "registry.h"
#include "test.h"

#if CPAR_ENGINE_ID_LIMIT != 8
#error "test_idlimit must be built with -DCPAR_ENGINE_ID_LIMIT=8"
#endif

/* Eight registrations take ids 0..7 (some engines leave: their ids are not reused); the
 * ninth is refused with a reason naming the limit. The engine with the last id takes
 * tasks (the scheduler knows it). Requested ids above the limit or taken are refused,
 * each with its reason. */
TEST_IMPL(registration_refused_at_the_limit)
{
    fx f;
    void *e[8], *extra, *cl;
    int32_t id = -1, last[1] = {7};
    char why[512];
    uint8_t tid[16], got[16];
    fx_spec sp = {.targets = last, .ntargets = 1};
    char *log;

    fx_start(&f, FX_HB_LONG);
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(fx_engine(&f, &e[i], 100 + i), i);
        if (i == 2 || i == 5) { /* gone engines keep their ids used */
            fx_close(&f, e[i]);
            e[i] = NULL;
        }
    }
    ASSERT_EQ(fx_engine_try_why(&f, &extra, -1, 200, &id, why, sizeof(why)), CPAR_EINVAL);
    ASSERT_EQ(id, CPAR_NO_ENGINE);
    ASSERT_STR_CONTAINS(why, "no engine id left: this controller has used all 8 engine ids");
    ASSERT_EQ(fx_engine_try_why(&f, &extra, 8, 201, &id, why, sizeof(why)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(why, "requested engine id 8 is above the limit: ids are below 8");
    ASSERT_EQ(fx_engine_try_why(&f, &extra, 3, 202, &id, why, sizeof(why)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(why, "requested engine id 3 is taken by a live engine");
    /* The highest id works like any other: a task for it arrives and is answered. */
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "for seven", tid);
    fx_engine_task(&f, e[7], "for seven", got);
    ASSERT_MEM_EQ(got, tid, 16);
    fx_engine_reply_status(&f, e[7], 7, tid, CPAR_STATUS_OK, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 7, tid, "done");
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "registration refused: no engine id left: this controller has used "
                             "all 8 engine ids");
    free(log);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(registration_refused_at_the_limit),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
