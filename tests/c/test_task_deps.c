/* Tests of the controller's load-balanced tasks, dependencies (cext/controller/controller_tasks.c,
 * cext/controller/deps.c; docs/protocol.md, "Load-balanced tasks"): `after` and `follow` with
 * all/any and success/failure, impossible and unmet dependencies, and timeouts, with a real
 * controller in a thread and fake engines and clients (ctlfx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

/* `after` holds a task until the named task replied; then it runs. */
TEST_IMPL(after_holds_until_reply)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], got[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "first", t1);
    sp.after = t1;
    fx_task(&f, cl, &sp, "second", t2);
    fx_engine_task(&f, e0, "first", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e0, FX_QUIET_MS); /* no limit on the engine: only `after` holds it */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_engine_task(&f, e0, "second", got);
    ASSERT_MEM_EQ(got, t2, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t2, "r2");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t2, "r2");
    free(fx_stop(&f));
    return 0;
}

/* `after` with `any`: one of two ids ending acceptably is enough. */
TEST_IMPL(after_any)
{
    fx f;
    void *e0, *cl;
    uint8_t ids[32], t3[16], got[16];
    fx_spec sp = {.after_flags = FX_DEP_SUCCESS, .nafter = 2, .after = ids};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "a", ids);
    fx_task(&f, cl, NULL, "b", ids + 16);
    fx_task(&f, cl, &sp, "c", t3);
    fx_engine_task(&f, e0, "a", got);
    fx_engine_task(&f, e0, "b", got);
    fx_quiet(&f, e0, FX_QUIET_MS);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, ids + 16, "rb");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, ids + 16, "rb");
    fx_engine_task(&f, e0, "c", got);
    ASSERT_MEM_EQ(got, t3, 16);
    free(fx_stop(&f));
    return 0;
}

/* A failed task: success-only dependants fail -16 (and theirs in turn); failure-accepting
 * ones run. */
TEST_IMPL(after_failed_success_only)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], got[16];
    fx_spec ok_only = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    fx_spec on_fail = {.after_flags = FX_DEP_ALL | FX_DEP_FAILURE, .nafter = 1};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "fails", t1);
    ok_only.after = t1;
    fx_task(&f, cl, &ok_only, "needs-success", t2);
    ok_only.after = t2;
    fx_task(&f, cl, &ok_only, "needs-t2", t3);
    on_fail.after = t1;
    fx_task(&f, cl, &on_fail, "cleanup", t4);
    fx_engine_task(&f, e0, "fails", got);
    fx_engine_reply_status(&f, e0, 0, t1, CPAR_STATUS_ERROR, "boom");
    {
        cpar_msg m;
        th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
        ASSERT_MEM_EQ(m.h.parent, t1, 16);
        cpar_msg_close(&m);
    }
    {
        /* The REPLY, then -16 for t2 and t3 (in either order). */
        int seen2 = 0, seen3 = 0;
        for (int i = 0; i < 2; i++) {
            cpar_msg m;
            th_expect(cl, f.s, CPAR_MSG_ERROR, &m);
            ASSERT_EQ(m.h.status, CPAR_EIMPOSSIBLE);
            if (memcmp(m.h.parent, t2, 16) == 0)
                seen2++;
            else if (memcmp(m.h.parent, t3, 16) == 0)
                seen3++;
            else
                CPAR_TEST_FAIL("ERROR about an unexpected id");
            cpar_msg_close(&m);
        }
        ASSERT_EQ(seen2, 1);
        ASSERT_EQ(seen3, 1);
    }
    fx_engine_task(&f, e0, "cleanup", got);
    ASSERT_MEM_EQ(got, t4, 16);
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* `after` an id the controller never saw: -16 at once. */
TEST_IMPL(after_unknown_id)
{
    fx f;
    void *e0, *cl;
    uint8_t ghost[16], t[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = ghost};
    const char *text;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    th_id(ghost);
    fx_task(&f, cl, &sp, "never", t);
    text = fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    ASSERT_STR_CONTAINS(text, "after");
    /* The same for `follow`. */
    sp = (fx_spec){.follow_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nfollow = 1, .follow = ghost};
    fx_task(&f, cl, &sp, "never", t);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* `follow` sends the task to the engine the followed task ran on (leastload alone would
 * pick the other, idle and less recently used, engine). */
TEST_IMPL(follow_same_engine)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], t[16], got[16];
    fx_spec sp = {.follow_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nfollow = 1, .follow = t1};
    int x;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, NULL, "lead", t1);
    x = fx_engine_task_any(&f, e, 2, "lead", got);
    fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t1, "r");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t1, "r");
    for (int round = 0; round < 3; round++) {
        fx_task(&f, cl, &sp, "follower", t);
        ASSERT_EQ(fx_engine_task_any(&f, e, 2, "follower", got), x);
        ASSERT_MEM_EQ(got, t, 16);
        fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t, "fr");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t, "fr");
    }
    /* Following a task that is still pending waits for it, then goes where it ran. */
    fx_task(&f, cl, NULL, "lead2", t1);
    x = fx_engine_task_any(&f, e, 2, "lead2", got);
    fx_task(&f, cl, &sp, "follower2", t);
    fx_quiet(&f, e[0], FX_QUIET_MS);
    fx_quiet(&f, e[1], 0);
    fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t1, "r");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t1, "r");
    ASSERT_EQ(fx_engine_task_any(&f, e, 2, "follower2", got), x);
    fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t, "fr");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t, "fr");
    /* Following it while restricted to the other engine: -16. */
    {
        int32_t other[1] = {1 - x};
        sp.targets = other;
        sp.ntargets = 1;
        fx_task(&f, cl, &sp, "torn", t);
        fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
        sp.targets = NULL;
        sp.ntargets = 0;
    }
    /* Following a failed task with success-only: -16. */
    fx_task(&f, cl, NULL, "lead3", t1);
    x = fx_engine_task_any(&f, e, 2, "lead3", got);
    fx_engine_reply_status(&f, e[x], x, t1, CPAR_STATUS_ERROR, "bad");
    {
        cpar_msg m;
        th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
        cpar_msg_close(&m);
    }
    fx_task(&f, cl, &sp, "follower3", t);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    fx_quiet(&f, e[0], 100);
    fx_quiet(&f, e[1], 0);
    free(fx_stop(&f));
    return 0;
}

/* Status 2 (unmet) everywhere: -16 once every engine said so; it uses no retry. */
TEST_IMPL(unmet_everywhere)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    const char *text;
    int x, y;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, NULL, "picky", t); /* retries = 0 */
    x = fx_engine_task_any(&f, e, 2, "picky", got);
    fx_engine_reply_status(&f, e[x], x, t, CPAR_STATUS_UNMET, "unmet");
    y = fx_engine_task_any(&f, e, 2, "picky", got);
    ASSERT_EQ(y, 1 - x);
    fx_engine_reply_status(&f, e[y], y, t, CPAR_STATUS_UNMET, "unmet");
    text = fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    ASSERT_STR_CONTAINS(text, "2 engine(s) tried");
    fx_quiet(&f, cl, 100); /* no REPLY forwarded */
    /* Unmet on one engine, then success on the other: the REPLY arrives. */
    fx_task(&f, cl, NULL, "picky2", t);
    x = fx_engine_task_any(&f, e, 2, "picky2", got);
    fx_engine_reply_status(&f, e[x], x, t, CPAR_STATUS_UNMET, "unmet");
    y = fx_engine_task_any(&f, e, 2, "picky2", got);
    ASSERT_EQ(y, 1 - x);
    fx_engine_reply(&f, e[y], CPAR_MSG_REPLY, y, t, "fine");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, y, t, "fine");
    free(fx_stop(&f));
    return 0;
}

/* A task waiting on `after` a task that never ends fails -17 about timeout_ms later. */
TEST_IMPL(timeout_on_after)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], got[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .timeout_ms = 300};
    uint64_t t0, dt;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "forever", t1);
    fx_engine_task(&f, e0, "forever", got);
    sp.after = t1;
    t0 = fx_now_ms();
    fx_task(&f, cl, &sp, "late", t2);
    /* Two tasks after the one that will time out: it ends as failed. */
    {
        fx_spec on_fail = {.after_flags = FX_DEP_ALL | FX_DEP_FAILURE, .nafter = 1, .after = t2};
        fx_spec on_ok = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t2};
        fx_task(&f, cl, &on_fail, "cleanup", t3);
        fx_task(&f, cl, &on_ok, "doomed", t4);
    }
    fx_client_error(&f, cl, CPAR_EDEPTIMEOUT, t2);
    dt = fx_now_ms() - t0;
    ASSERT_GE(dt, 250);
    ASSERT_LE(dt, 1500);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t4);
    fx_engine_task(&f, e0, "cleanup", got);
    ASSERT_MEM_EQ(got, t3, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t3, "cleaned");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t3, "cleaned");
    fx_quiet(&f, e0, 100);
    /* The task it waited on still ends normally. */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "done");
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* timeout_ms also bounds the wait for a free engine (hwm full); a task that started in
 * time is not cut short. */
TEST_IMPL(timeout_waiting_for_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], got[16];
    fx_spec sp = {.timeout_ms = 200};

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "running", t1);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &sp, "queued", t2);
    fx_client_error(&f, cl, CPAR_ETASKTIMEOUT, t2);
    fx_quiet(&f, cl, 300); /* t1 is not timed out: it started */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "done");
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* A task that failed on every engine with retries left: with a timeout it waits for an
 * engine it has not tried (a new one takes it), else until the timeout (-23); without a
 * timeout its failure is forwarded. */
TEST_IMPL(retries_exhausted_wait_for_engine)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t t1[16], t2[16], t3[16], got[16];
    fx_spec parked = {.timeout_ms = 60000, .retries = 2};
    fx_spec expires = {.timeout_ms = 200, .retries = 2};
    fx_spec forever = {.retries = 2};
    cpar_msg m;
    int32_t id1;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    /* no timeout: the failure comes back */
    fx_task(&f, cl, &forever, "fails", t1);
    fx_engine_task(&f, e0, "fails", got);
    fx_engine_reply_status(&f, e0, 0, t1, CPAR_STATUS_ERROR, "ValueError");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.status, CPAR_STATUS_ERROR);
    ASSERT_MEM_EQ(m.h.parent, t1, 16);
    cpar_msg_close(&m);
    /* a short timeout: TaskTimeout once it passed */
    fx_task(&f, cl, &expires, "fails", t2);
    fx_engine_task(&f, e0, "fails", got);
    fx_engine_reply_status(&f, e0, 0, t2, CPAR_STATUS_ERROR, "ValueError");
    fx_client_error(&f, cl, CPAR_ETASKTIMEOUT, t2);
    /* a long timeout: it waits, and the next engine to come runs it */
    fx_task(&f, cl, &parked, "fails", t3);
    fx_engine_task(&f, e0, "fails", got);
    fx_engine_reply_status(&f, e0, 0, t3, CPAR_STATUS_ERROR, "ValueError");
    fx_quiet(&f, cl, 100);
    id1 = fx_engine(&f, &e1, 2);
    fx_engine_task(&f, e1, "fails", got);
    ASSERT_MEM_EQ(got, t3, 16);
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, id1, t3, "done");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.status, CPAR_STATUS_OK);
    ASSERT_MEM_EQ(m.h.parent, t3, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, e0, FX_QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

/* `follow` with `any` over tasks that ran on two engines: the task runs on one of those,
 * never on the third. */
TEST_IMPL(follow_any_two_locations)
{
    fx f;
    void *e[3], *cl;
    uint8_t ids[32], t[16], got[16];
    int32_t to0[1] = {0}, to1[1] = {1};
    fx_spec on0 = {.targets = to0, .ntargets = 1}, on1 = {.targets = to1, .ntargets = 1};
    fx_spec any = {.follow_flags = FX_DEP_SUCCESS, .nfollow = 2, .follow = ids};
    fx_spec all = {.follow_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nfollow = 2, .follow = ids};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e[0], 1), 0);
    ASSERT_EQ(fx_engine(&f, &e[1], 2), 1);
    ASSERT_EQ(fx_engine(&f, &e[2], 3), 2);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &on0, "p", ids);
    fx_task(&f, cl, &on1, "q", ids + 16);
    fx_engine_task(&f, e[0], "p", got);
    fx_engine_task(&f, e[1], "q", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, ids, "rp");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, ids, "rp");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, ids + 16, "rq");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 1, ids + 16, "rq");
    for (int i = 0; i < 4; i++) {
        int k;
        fx_task(&f, cl, &any, "near", t);
        k = fx_engine_task_any(&f, e, 3, "near", got);
        ASSERT(k == 0 || k == 1);
        fx_engine_reply(&f, e[k], CPAR_MSG_REPLY, k, t, "r");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, k, t, "r");
    }
    /* `all` over tasks that ran on different engines can never be met. */
    fx_task(&f, cl, &all, "split", t);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    fx_quiet(&f, e[2], 100);
    free(fx_stop(&f));
    return 0;
}

/* Many tasks pending at once, answered in a scrambled order, then one task `after` all of
 * them: the id table grows and shrinks and every task is still found. */
TEST_IMPL(many_pending_scrambled)
{
    enum { N = 150 };
    static uint8_t ids[N][16];
    static uint8_t spec[FX_SPEC_HEADER + N * 16];
    fx f;
    void *e[2], *cl;
    int where[N], order[N];
    uint8_t got[16], last[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = N, .after = ids[0]};
    size_t len;
    const char *q;
    uint64_t r = 88172645463325252ull;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    for (int i = 0; i < N; i++)
        fx_task(&f, cl, NULL, "bulk", ids[i]);
    for (int n = 0; n < N; n++) {
        int k = fx_engine_task_any(&f, e, 2, "bulk", got), i;
        for (i = 0; i < N && memcmp(ids[i], got, 16) != 0; i++)
            ;
        ASSERT_LT(i, N);
        where[i] = k;
    }
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j, tmp;
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        j = (int)(r % (uint64_t)(i + 1));
        tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    len = fx_spec_encode(&sp, spec, sizeof(spec));
    fx_task_raw(&f, cl, spec, len, "last", NULL, last);
    for (int n = 0; n < N; n++) {
        int i = order[n];
        fx_engine_reply(&f, e[where[i]], CPAR_MSG_REPLY, where[i], ids[i], "r");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, where[i], ids[i], "r");
        if (n == N / 2) {
            q = fx_query(&f, cl, "queue_status", NULL, 0);
            ASSERT_STR_CONTAINS(q, "\"unassigned\": 1");
        }
    }
    ASSERT_LT(fx_engine_task_any(&f, e, 2, "last", got), 2);
    ASSERT_MEM_EQ(got, last, 16);
    q = fx_query(&f, cl, "task_status", ids[0], 10);
    ASSERT(strstr(q, "pending") == NULL && strstr(q, "unknown") == NULL);
    free(fx_stop(&f));
    return 0;
}

/* A task naming its own id in `after` or `follow` can never run: -16 at once. */
TEST_IMPL(self_dependency_refused)
{
    fx f;
    void *e0, *cl;
    uint8_t id[16], buf[256];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    size_t len;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    th_id(id);
    sp.after = id;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len, "me first", id, NULL);
    ASSERT_STR_CONTAINS(fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, id), "itself");
    sp.nafter = 0;
    sp.after = NULL;
    sp.follow_flags = FX_DEP_ALL | FX_DEP_SUCCESS;
    sp.nfollow = 1;
    sp.follow = id;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len, "me first", id, NULL);
    ASSERT_STR_CONTAINS(fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, id), "`follow`");
    fx_quiet(&f, e0, FX_QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(self_dependency_refused),
    TEST_ENTRY(after_holds_until_reply),
    TEST_ENTRY(after_any),
    TEST_ENTRY(after_failed_success_only),
    TEST_ENTRY(after_unknown_id),
    TEST_ENTRY(follow_same_engine),
    TEST_ENTRY(unmet_everywhere),
    TEST_ENTRY(timeout_on_after),
    TEST_ENTRY(timeout_waiting_for_engine),
    TEST_ENTRY(retries_exhausted_wait_for_engine),
    TEST_ENTRY(follow_any_two_locations),
    TEST_ENTRY(many_pending_scrambled),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
