/* Tests of the controller's load-balanced tasks, scheduling (cext/controller/controller_tasks.c;
 * behaviour in docs/protocol.md, "Load-balanced tasks"): routing of TASK and its replies,
 * high-water marks, schemes, targets, retries and engine deaths, with a real controller in a
 * thread and fake engines and clients (ctlfx.h). Dependencies: test_task_deps.c; abort,
 * queries and lifecycle: test_task_control.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

/* A TASK goes to the one engine unchanged; its STREAM and REPLY come back unchanged. */
TEST_IMPL(task_round_trip)
{
    fx f;
    void *e0, *cl;
    cpar_msg m, r;
    uint8_t spec[FX_SPEC_HEADER];
    fx_spec sp = {.retries = 0};
    uint8_t tid[16], rid[16];
    char text[256];
    size_t speclen;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    speclen = fx_spec_encode(&sp, spec, sizeof(spec));
    fx_task_raw(&f, cl, spec, speclen, "call-1", NULL, tid);

    th_expect(e0, f.s, CPAR_MSG_TASK, &m);
    ASSERT_MEM_EQ(m.h.msg_id, tid, 16);
    ASSERT_EQ(m.nframes, 2);
    ASSERT_EQ(zmq_msg_size(&m.frames[0]), speclen);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[0]), spec, speclen);
    ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), "call-1") == 0);
    cpar_msg_close(&m);

    fx_engine_reply(&f, e0, CPAR_MSG_STREAM, 0, tid, "printed\n");
    fx_client_get(&f, cl, CPAR_MSG_STREAM, 0, tid, "printed\n");

    th_msg(&r, CPAR_MSG_REPLY);
    r.h.engine = 0;
    r.h.status = CPAR_STATUS_OK;
    r.h.t0 = 1234567;
    memcpy(r.h.parent, tid, 16);
    memcpy(rid, r.h.msg_id, 16);
    th_add_str(&r, "result-1");
    th_send(e0, f.s, &r);

    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_MEM_EQ(m.h.msg_id, rid, 16);
    ASSERT_MEM_EQ(m.h.parent, tid, 16);
    ASSERT_EQ(m.h.engine, 0);
    ASSERT_EQ(m.h.status, CPAR_STATUS_OK);
    ASSERT_EQ(m.h.t0, 1234567);
    ASSERT_EQ(m.nframes, 1);
    ASSERT(strcmp(th_frame_str(&m, 0, text, sizeof(text)), "result-1") == 0);
    cpar_msg_close(&m);
    /* A second REPLY about the ended task goes nowhere. */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, tid, "again");
    fx_quiet(&f, cl, FX_QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

/* With no engine the task waits; it goes out when one registers. */
TEST_IMPL(task_waits_for_an_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t tid[16], got[16];

    fx_start(&f, FX_HB_LONG);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "early", tid);
    fx_quiet(&f, cl, 200);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    fx_engine_task(&f, e0, "early", got);
    ASSERT_MEM_EQ(got, tid, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, tid, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, tid, "done");
    free(fx_stop(&f));
    return 0;
}

/* hwm=1 with one engine: the second task waits until the first one's REPLY. */
TEST_IMPL(hwm_one_engine_holds_second)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], got[16];
    const char *q;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "first", t1);
    fx_task(&f, cl, NULL, "second", t2);
    fx_engine_task(&f, e0, "first", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e0, FX_QUIET_MS);
    q = fx_query(&f, cl, "queue_status", NULL, 0);
    ASSERT_STR_CONTAINS(q, "\"unassigned\": 1");
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_engine_task(&f, e0, "second", got);
    ASSERT_MEM_EQ(got, t2, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t2, "r2");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t2, "r2");
    free(fx_stop(&f));
    return 0;
}

/* hwm=1: one task per engine at a time, spread over both; the third waits for a reply. */
TEST_IMPL(hwm_holds_and_spreads)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], t2[16], t3[16], got[16], got2[16];
    int a, b, c;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, NULL, "task", t1);
    fx_task(&f, cl, NULL, "task", t2);
    fx_task(&f, cl, NULL, "task", t3);
    a = fx_engine_task_any(&f, e, 2, "task", got);
    b = fx_engine_task_any(&f, e, 2, "task", got2);
    ASSERT_NE(a, b); /* spread */
    ASSERT_MEM_EQ(got, t1, 16);
    ASSERT_MEM_EQ(got2, t2, 16);
    fx_quiet(&f, e[0], FX_QUIET_MS);
    fx_quiet(&f, e[1], 0);
    /* The engine with t2 answers: t3 goes there (the other one is still full). */
    fx_engine_reply(&f, e[b], CPAR_MSG_REPLY, b, t2, "r2");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, b, t2, "r2");
    c = fx_engine_task_any(&f, e, 2, "task", got);
    ASSERT_EQ(c, b);
    ASSERT_MEM_EQ(got, t3, 16);
    fx_engine_reply(&f, e[a], CPAR_MSG_REPLY, a, t1, "r1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, a, t1, "r1");
    fx_engine_reply(&f, e[c], CPAR_MSG_REPLY, c, t3, "r3");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, c, t3, "r3");
    free(fx_stop(&f));
    return 0;
}

/* Many tasks over two engines with hwm=2 and the lru scheme: every one runs once. */
TEST_IMPL(many_tasks_lru)
{
    enum { N = 40 };
    fx f;
    void *e[2], *cl;
    uint8_t ids[N][16], got[16];
    int seen[N] = {0}, per[2] = {0}, replies = 0;

    fx_start_cfg(&f, FX_HB_LONG, "lru", 2, 0);
    cl = fx_two_engines(&f, e);
    for (int i = 0; i < N; i++)
        fx_task(&f, cl, NULL, "job", ids[i]);
    while (replies < N) {
        int k = fx_engine_task_any(&f, e, 2, "job", got), i;
        for (i = 0; i < N && memcmp(ids[i], got, 16) != 0; i++)
            ;
        ASSERT_LT(i, N);
        ASSERT_EQ(seen[i], 0);
        seen[i] = 1;
        per[k]++;
        fx_engine_reply(&f, e[k], CPAR_MSG_REPLY, k, got, "ok");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, k, got, "ok");
        replies++;
    }
    ASSERT_GT(per[0], 0);
    ASSERT_GT(per[1], 0);
    free(fx_stop(&f));
    return 0;
}

/* targets: only the allowed engines are used. */
TEST_IMPL(targets_restrict)
{
    fx f;
    void *e[3], *cl;
    uint8_t t[16], got[16];
    int32_t only1[1] = {1}, zero_two[2] = {0, 2};
    fx_spec sp = {.targets = only1, .ntargets = 1};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e[0], 1), 0);
    ASSERT_EQ(fx_engine(&f, &e[1], 2), 1);
    ASSERT_EQ(fx_engine(&f, &e[2], 3), 2);
    cl = fx_client(&f, NULL, NULL);
    for (int i = 0; i < 4; i++)
        fx_task(&f, cl, &sp, "on-1", NULL);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(fx_engine_task_any(&f, e, 3, "on-1", got), 1);
    sp.targets = zero_two;
    sp.ntargets = 2;
    for (int i = 0; i < 6; i++) {
        int k;
        fx_task(&f, cl, &sp, "on-0-or-2", t);
        k = fx_engine_task_any(&f, e, 3, "on-0-or-2", got);
        ASSERT(k == 0 || k == 2);
        ASSERT_MEM_EQ(got, t, 16);
    }
    fx_quiet(&f, e[1], 100);
    free(fx_stop(&f));
    return 0;
}

/* Targets naming no registered engine: -16. */
TEST_IMPL(targets_unknown_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t t[16];
    int32_t nine[1] = {9};
    fx_spec sp = {.targets = nine, .ntargets = 1};

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "nowhere", t);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t);
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* Queued tasks restricted to an engine that dies end with -16 while another engine
 * lives. */
TEST_IMPL(targets_gone_other_alive)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], t2[16], got[16];
    int32_t only0[1] = {0};
    fx_spec sp = {.targets = only0, .ntargets = 1};

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "on-0", t1);
    fx_task(&f, cl, &sp, "on-0", t2);
    fx_engine_task(&f, e[0], "on-0", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_close(&f, e[0]);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t1);
    fx_client_error(&f, cl, CPAR_EIMPOSSIBLE, t2);
    fx_quiet(&f, e[1], 100);
    free(fx_stop(&f));
    return 0;
}

/* The same when the dying engine was the last one (docs: a task whose allowed engines are
 * all gone ends with -16; only unrestricted tasks wait for engines). */
TEST_IMPL(targets_gone_last_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], got[16];
    int32_t only0[1] = {0};
    fx_spec sp = {.targets = only0, .ntargets = 1};

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "on-0", t1);
    fx_task(&f, cl, &sp, "on-0", t2);
    fx_engine_task(&f, e0, "on-0", got);
    fx_close(&f, e0);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t1);
    fx_client_error_within(&f, cl, CPAR_EIMPOSSIBLE, t2, 2000);
    free(fx_stop(&f));
    return 0;
}

/* retries=1: a failure sends the task to the other engine, never the same; the second
 * failure reaches the client. */
TEST_IMPL(retry_goes_elsewhere)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    cpar_msg m;
    char text[64];
    int x, y;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "flaky", t);
    x = fx_engine_task_any(&f, e, 2, "flaky", got);
    ASSERT_MEM_EQ(got, t, 16);
    fx_engine_reply_status(&f, e[x], x, t, CPAR_STATUS_ERROR, "fail-1");
    y = fx_engine_task_any(&f, e, 2, "flaky", got);
    ASSERT_EQ(y, 1 - x);
    ASSERT_MEM_EQ(got, t, 16);
    fx_quiet(&f, cl, 100); /* the first failure was not forwarded */
    fx_engine_reply_status(&f, e[y], y, t, CPAR_STATUS_ERROR, "fail-2");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.engine, y);
    ASSERT_EQ(m.h.status, CPAR_STATUS_ERROR);
    ASSERT_MEM_EQ(m.h.parent, t, 16);
    ASSERT(strcmp(th_frame_str(&m, 0, text, sizeof(text)), "fail-2") == 0);
    cpar_msg_close(&m);
    fx_quiet(&f, e[x], 100);
    fx_quiet(&f, cl, 0);
    free(fx_stop(&f));
    return 0;
}

/* retries=1 but a single engine: the failure is forwarded (no engine left to retry on). */
TEST_IMPL(retry_without_other_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 3};
    cpar_msg m;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "flaky", t);
    fx_engine_task(&f, e0, "flaky", got);
    fx_engine_reply_status(&f, e0, 0, t, CPAR_STATUS_ERROR, "fail");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.status, CPAR_STATUS_ERROR);
    ASSERT_MEM_EQ(m.h.parent, t, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* The engine with a task dies (connection closed): retries=1 resends it to the other
 * engine; without retries the client gets -11. */
TEST_IMPL(engine_death_close)
{
    fx f;
    void *e[3], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    int x, y;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "survivor", t);
    x = fx_engine_task_any(&f, e, 2, "survivor", got);
    fx_close(&f, e[x]);
    y = 1 - x;
    fx_engine_task(&f, e[y], "survivor", got);
    ASSERT_MEM_EQ(got, t, 16);
    fx_engine_reply(&f, e[y], CPAR_MSG_REPLY, y, t, "made it");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, y, t, "made it");
    /* No retries: -11. */
    ASSERT_EQ(fx_engine(&f, &e[2], 102), 2);
    fx_task(&f, cl, NULL, "victim", t);
    {
        void *live[2] = {e[y], e[2]};
        int k = fx_engine_task_any(&f, live, 2, "victim", got);
        fx_close(&f, live[k]);
        fx_client_error(&f, cl, CPAR_EENGINEDEAD, t);
        fx_quiet(&f, live[1 - k], 100);
    }
    free(fx_stop(&f));
    return 0;
}

/* The engine with a task goes silent (heartbeat timeout) while the other keeps beating:
 * the task moves to the beating engine. */
TEST_IMPL(engine_death_heartbeat)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    uint64_t deadline;
    int moved = 0, x;

    fx_start(&f, 600);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "hb", t);
    x = fx_engine_task_any(&f, e, 2, "hb", got);
    /* e[x] holds the task and stays silent; the other engine beats. */
    deadline = fx_now_ms() + 5000;
    while (fx_now_ms() < deadline && !moved) {
        cpar_msg m;
        int rc;
        fx_heartbeat(&f, e[1 - x], 1 - x);
        rc = th_recv(e[1 - x], f.s, &m, 100);
        if (rc == CPAR_ETIMEOUT)
            continue;
        ASSERT_OK(rc);
        if (m.h.type == CPAR_MSG_TASK) {
            ASSERT_MEM_EQ(m.h.msg_id, t, 16);
            moved = 1;
        }
        cpar_msg_close(&m);
    }
    ASSERT(moved);
    free(fx_stop(&f));
    return 0;
}

/* hwm -1 (adaptive): one task per engine until one finished; after quick tasks, more go
 * out at once. */
TEST_IMPL(adaptive_hwm)
{
    fx f;
    void *e0, *cl;
    uint8_t ids[4][16], got[16];
    cpar_msg r;
    const char *q;

    fx_start_cfg(&f, FX_HB_LONG, NULL, -1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    for (int i = 0; i < 4; i++)
        fx_task(&f, cl, NULL, "quick", ids[i]);
    fx_engine_task(&f, e0, "quick", got);
    ASSERT_MEM_EQ(got, ids[0], 16);
    fx_quiet(&f, e0, FX_QUIET_MS);
    q = fx_query(&f, cl, "queue_status", NULL, 0);
    ASSERT_STR_CONTAINS(q, "\"hwm\": -1");
    ASSERT_STR_CONTAINS(q, "\"unassigned\": 3");
    th_msg(&r, CPAR_MSG_REPLY);
    r.h.engine = 0;
    memcpy(r.h.parent, ids[0], 16);
    r.h.t0 = 1000000000;
    r.h.t1 = r.h.t0 + 10000; /* ran 10 us */
    th_add_str(&r, "r");
    th_send(e0, f.s, &r);
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, ids[0], "r");
    for (int i = 1; i < 4; i++) {
        fx_engine_task(&f, e0, "quick", got);
        ASSERT_MEM_EQ(got, ids[i], 16);
    }
    free(fx_stop(&f));
    return 0;
}

/* A task restricted to a busy engine (hwm) waits for it rather than using another. */
TEST_IMPL(targets_wait_for_busy_engine)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], t2[16], got[16];
    int32_t only0[1] = {0};
    fx_spec sp = {.targets = only0, .ntargets = 1};

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "on-0", t1);
    fx_task(&f, cl, &sp, "on-0", t2);
    fx_engine_task(&f, e[0], "on-0", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e[1], FX_QUIET_MS);
    fx_quiet(&f, cl, 0);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, t1, "r1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_engine_task(&f, e[0], "on-0", got);
    ASSERT_MEM_EQ(got, t2, 16);
    free(fx_stop(&f));
    return 0;
}

/* retries=1 and both engines die in turn: -11 after the second death. */
TEST_IMPL(engine_death_retries_exhausted)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    int x;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "doomed", t);
    x = fx_engine_task_any(&f, e, 2, "doomed", got);
    fx_close(&f, e[x]);
    fx_engine_task(&f, e[1 - x], "doomed", got);
    fx_quiet(&f, cl, 100);
    fx_close(&f, e[1 - x]);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t);
    free(fx_stop(&f));
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(task_round_trip),
    TEST_ENTRY(task_waits_for_an_engine),
    TEST_ENTRY(hwm_one_engine_holds_second),
    TEST_ENTRY(hwm_holds_and_spreads),
    TEST_ENTRY(many_tasks_lru),
    TEST_ENTRY(targets_restrict),
    TEST_ENTRY(targets_unknown_engine),
    TEST_ENTRY(targets_gone_other_alive),
    TEST_ENTRY(targets_gone_last_engine),
    TEST_ENTRY(retry_goes_elsewhere),
    TEST_ENTRY(retry_without_other_engine),
    TEST_ENTRY(engine_death_close),
    TEST_ENTRY(engine_death_heartbeat),
    TEST_ENTRY(adaptive_hwm),
    TEST_ENTRY(targets_wait_for_busy_engine),
    TEST_ENTRY(engine_death_retries_exhausted),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
