/* Tests of the controller's load-balanced tasks (cext/core/controller_tasks.c; behaviour in
 * docs/protocol.md, "Load-balanced tasks"): TASK, ABORT and QUERY from a fake client,
 * replies and deaths of fake engines, with a real controller in a thread (ctlfx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

#define HB_LONG 60000 /* heartbeats are never the reason for anything */
#define QUIET_MS 300  /* how long "nothing arrives" is watched */

static uint64_t
now_ms(void)
{
    return cpar_now_ns() / 1000000u;
}

/* The client receives an ERROR with this code about parent within ms (a shorter wait than
 * fx_client_error's, for expectations that fail by hanging). */
static void
error_within(fx *f, void *cl, int code, const uint8_t *parent, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    for (;;) {
        cpar_msg m;
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        int rc;
        if (left <= 0)
            CPAR_TEST_FAIL("no ERROR %d within %d ms", code, ms);
        rc = th_recv(cl, f->s, &m, (int)left);
        if (rc == CPAR_ETIMEOUT)
            CPAR_TEST_FAIL("no ERROR %d within %d ms", code, ms);
        ASSERT_OK(rc);
        if (m.h.type == CPAR_MSG_HEARTBEAT || m.h.type == CPAR_MSG_ENGINE_EVENT) {
            cpar_msg_close(&m);
            continue;
        }
        ASSERT_EQ(m.h.type, CPAR_MSG_ERROR);
        ASSERT_EQ(m.h.status, code);
        ASSERT_MEM_EQ(m.h.parent, parent, 16);
        cpar_msg_close(&m);
        return;
    }
}

/* Two fake engines 0 and 1 and a client. */
static void *
two_engines(fx *f, void *e[2])
{
    ASSERT_EQ(fx_engine(f, &e[0], 100), 0);
    ASSERT_EQ(fx_engine(f, &e[1], 101), 1);
    return fx_client(f, NULL, NULL);
}

TEST_IMPL(config_errors)
{
    cpar_controller *c = NULL;
    char err[256] = "";
    cpar_controller_config cfg = {
        .client_url = "tcp://127.0.0.1:*",
        .engine_url = "tcp://127.0.0.1:*",
        .key = (const uint8_t *)TH_KEY,
        .keylen = strlen(TH_KEY),
        .log_path = "/dev/null",
        .scheme = "fastest",
    };
    ASSERT_EQ(cpar_controller_new(&cfg, &c, err, sizeof(err)), CPAR_EINVAL);
    ASSERT(c == NULL);
    ASSERT_STR_CONTAINS(err, "fastest");
    cfg.scheme = "lru";
    cfg.hwm = -7;
    err[0] = '\0';
    ASSERT_EQ(cpar_controller_new(&cfg, &c, err, sizeof(err)), CPAR_EINVAL);
    ASSERT(c == NULL);
    ASSERT_STR_CONTAINS(err, "-7");
    return 0;
}

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

    fx_start(&f, HB_LONG);
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
    fx_quiet(&f, cl, QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

/* With no engine the task waits; it goes out when one registers. */
TEST_IMPL(task_waits_for_an_engine)
{
    fx f;
    void *e0, *cl;
    uint8_t tid[16], got[16];

    fx_start(&f, HB_LONG);
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "first", t1);
    fx_task(&f, cl, NULL, "second", t2);
    fx_engine_task(&f, e0, "first", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e0, QUIET_MS);
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    cl = two_engines(&f, e);
    fx_task(&f, cl, NULL, "task", t1);
    fx_task(&f, cl, NULL, "task", t2);
    fx_task(&f, cl, NULL, "task", t3);
    a = fx_engine_task_any(&f, e, 2, "task", got);
    b = fx_engine_task_any(&f, e, 2, "task", got2);
    ASSERT_NE(a, b); /* spread */
    ASSERT_MEM_EQ(got, t1, 16);
    ASSERT_MEM_EQ(got2, t2, 16);
    fx_quiet(&f, e[0], QUIET_MS);
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

    fx_start_cfg(&f, HB_LONG, "lru", 2, 0);
    cl = two_engines(&f, e);
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

/* `after` holds a task until the named task replied; then it runs. */
TEST_IMPL(after_holds_until_reply)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], got[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "first", t1);
    sp.after = t1;
    fx_task(&f, cl, &sp, "second", t2);
    fx_engine_task(&f, e0, "first", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e0, QUIET_MS); /* no limit on the engine: only `after` holds it */
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

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "a", ids);
    fx_task(&f, cl, NULL, "b", ids + 16);
    fx_task(&f, cl, &sp, "c", t3);
    fx_engine_task(&f, e0, "a", got);
    fx_engine_task(&f, e0, "b", got);
    fx_quiet(&f, e0, QUIET_MS);
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

    fx_start(&f, HB_LONG);
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

    fx_start(&f, HB_LONG);
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

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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
    fx_quiet(&f, e[0], QUIET_MS);
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

/* targets: only the allowed engines are used. */
TEST_IMPL(targets_restrict)
{
    fx f;
    void *e[3], *cl;
    uint8_t t[16], got[16];
    int32_t only1[1] = {1}, zero_two[2] = {0, 2};
    fx_spec sp = {.targets = only1, .ntargets = 1};

    fx_start(&f, HB_LONG);
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

    fx_start(&f, HB_LONG);
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    cl = two_engines(&f, e);
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "on-0", t1);
    fx_task(&f, cl, &sp, "on-0", t2);
    fx_engine_task(&f, e0, "on-0", got);
    fx_close(&f, e0);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t1);
    error_within(&f, cl, CPAR_EIMPOSSIBLE, t2, 2000);
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

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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

    fx_start(&f, HB_LONG);
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

/* Status 2 (unmet) everywhere: -16 once every engine said so; it uses no retry. */
TEST_IMPL(unmet_everywhere)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    const char *text;
    int x, y;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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

/* The engine with a task dies (connection closed): retries=1 resends it to the other
 * engine; without retries the client gets -11. */
TEST_IMPL(engine_death_close)
{
    fx f;
    void *e[3], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    int x, y;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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
    cl = two_engines(&f, e);
    fx_task(&f, cl, &sp, "hb", t);
    x = fx_engine_task_any(&f, e, 2, "hb", got);
    /* e[x] holds the task and stays silent; the other engine beats. */
    deadline = now_ms() + 5000;
    while (now_ms() < deadline && !moved) {
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

/* A task waiting on `after` a task that never ends fails -17 about timeout_ms later. */
TEST_IMPL(timeout_on_after)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], got[16];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .timeout_ms = 300};
    uint64_t t0, dt;

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "forever", t1);
    fx_engine_task(&f, e0, "forever", got);
    sp.after = t1;
    t0 = now_ms();
    fx_task(&f, cl, &sp, "late", t2);
    /* Two tasks after the one that will time out: it ends as failed. */
    {
        fx_spec on_fail = {.after_flags = FX_DEP_ALL | FX_DEP_FAILURE, .nafter = 1, .after = t2};
        fx_spec on_ok = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t2};
        fx_task(&f, cl, &on_fail, "cleanup", t3);
        fx_task(&f, cl, &on_ok, "doomed", t4);
    }
    fx_client_error(&f, cl, CPAR_EDEPTIMEOUT, t2);
    dt = now_ms() - t0;
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, &sp, "running", t1);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &sp, "queued", t2);
    fx_client_error(&f, cl, CPAR_EDEPTIMEOUT, t2);
    fx_quiet(&f, cl, 300); /* t1 is not timed out: it started */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "done");
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* ABORT of tasks not yet sent (queued behind hwm, or waiting on `after`): -18 each, and
 * they never run. */
TEST_IMPL(abort_unsent)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], got[16], both[32];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    const char *text;

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t1);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, NULL, "queued", t2);
    sp.after = t1;
    fx_task(&f, cl, &sp, "waiting", t3);
    fx_abort(&f, cl, t2, 1);
    text = fx_client_error(&f, cl, CPAR_EABORTED, t2);
    ASSERT_STR_CONTAINS(text, "aborted");
    memcpy(both, t3, 16);
    th_id(both + 16); /* an unknown id in the same ABORT is ignored */
    fx_abort(&f, cl, both, 2);
    fx_client_error(&f, cl, CPAR_EABORTED, t3);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "done");
    fx_quiet(&f, e0, QUIET_MS);
    fx_quiet(&f, cl, 0);
    /* A bad ABORT: frame 0 not a multiple of 16 bytes. */
    {
        cpar_msg m;
        uint8_t mid[16];
        th_msg(&m, CPAR_MSG_ABORT);
        memcpy(mid, m.h.msg_id, 16);
        th_add_str(&m, "fifteen bytes!!");
        th_send(cl, f.s, &m);
        fx_client_error(&f, cl, CPAR_EPROTO, mid);
    }
    free(fx_stop(&f));
    return 0;
}

/* ABORT of a sent task: its engine gets ABORT naming it; its REPLY is forwarded and no
 * retry happens. */
TEST_IMPL(abort_sent)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    cpar_msg m;
    int x;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
    fx_task(&f, cl, &sp, "long", t);
    x = fx_engine_task_any(&f, e, 2, "long", got);
    fx_abort(&f, cl, t, 1);
    th_expect(e[x], f.s, CPAR_MSG_ABORT, &m);
    ASSERT_GE(m.nframes, 1);
    ASSERT_EQ(zmq_msg_size(&m.frames[0]), 16);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[0]), t, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, cl, 100); /* no ERROR for a sent task */
    fx_engine_reply_status(&f, e[x], x, t, CPAR_STATUS_ERROR, "TaskAborted");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.status, CPAR_STATUS_ERROR);
    ASSERT_EQ(m.h.engine, x);
    ASSERT_MEM_EQ(m.h.parent, t, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, e[1 - x], QUIET_MS); /* not retried */
    free(fx_stop(&f));
    return 0;
}

/* An aborted task whose engine then dies is not retried: -11. */
TEST_IMPL(abort_sent_then_engine_dies)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 2};
    cpar_msg m;
    int x;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
    fx_task(&f, cl, &sp, "long", t);
    x = fx_engine_task_any(&f, e, 2, "long", got);
    fx_abort(&f, cl, t, 1);
    th_expect(e[x], f.s, CPAR_MSG_ABORT, &m);
    cpar_msg_close(&m);
    fx_close(&f, e[x]);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t);
    fx_quiet(&f, e[1 - x], QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

/* ABORT naming a direct APPLY passes it to the engine it is outstanding on. */
TEST_IMPL(abort_direct_request)
{
    fx f;
    void *e[2], *cl;
    uint8_t a[16], got[16];
    int32_t t1[1] = {1};
    cpar_msg m;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
    fx_request(&f, cl, CPAR_MSG_APPLY, t1, 1, "direct", a);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "direct", got);
    fx_abort(&f, cl, a, 1);
    th_expect(e[1], f.s, CPAR_MSG_ABORT, &m);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[0]), a, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, e[0], 100);
    free(fx_stop(&f));
    return 0;
}

/* One ABORT naming a waiting task and a task waiting on it: ending the first releases the
 * second (it accepts failure) before the same ABORT reaches it. Both end with -18, once. */
TEST_IMPL(abort_chain_in_one_message)
{
    fx f;
    void *e0, *cl;
    uint8_t t0[16], ids[32], got[16];
    fx_spec a1 = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t0};
    fx_spec a2 = {
        .after_flags = FX_DEP_ALL | FX_DEP_SUCCESS | FX_DEP_FAILURE, .nafter = 1, .after = ids};

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t0);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &a1, "w1", ids);
    fx_task(&f, cl, &a2, "w2", ids + 16);
    fx_abort(&f, cl, ids, 2);
    error_within(&f, cl, CPAR_EABORTED, ids, 2000);
    error_within(&f, cl, CPAR_EABORTED, ids + 16, 2000);
    fx_quiet(&f, cl, 100);
    fx_quiet(&f, e0, 0);
    /* The controller still works. */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t0, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t0, "done");
    free(fx_stop(&f));
    return 0;
}

/* The same with a success-only dependant (released as impossible, then aborted). */
TEST_IMPL(abort_chain_success_only)
{
    fx f;
    void *e0, *cl;
    uint8_t t0[16], ids[32], got[16];
    fx_spec a1 = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t0};
    fx_spec a2 = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = ids};
    cpar_msg m;
    int n = 0;

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t0);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &a1, "w1", ids);
    fx_task(&f, cl, &a2, "w2", ids + 16);
    fx_abort(&f, cl, ids, 2);
    error_within(&f, cl, CPAR_EABORTED, ids, 2000);
    /* w2: one ERROR (-16 or -18), not two. */
    while (th_recv(cl, f.s, &m, 300) == 0) {
        if (m.h.type == CPAR_MSG_ERROR) {
            ASSERT_MEM_EQ(m.h.parent, ids + 16, 16);
            ASSERT(m.h.status == CPAR_EABORTED || m.h.status == CPAR_EIMPOSSIBLE);
            n++;
        }
        cpar_msg_close(&m);
    }
    ASSERT_EQ(n, 1);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t0, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t0, "done");
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

    fx_start_cfg(&f, HB_LONG, NULL, -1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    for (int i = 0; i < 4; i++)
        fx_task(&f, cl, NULL, "quick", ids[i]);
    fx_engine_task(&f, e0, "quick", got);
    ASSERT_MEM_EQ(got, ids[0], 16);
    fx_quiet(&f, e0, QUIET_MS);
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

/* QUERY queue_status: per-engine counts and the unassigned tasks. */
TEST_IMPL(query_queue_status)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], d[16], got[16];
    int32_t to0[1] = {0};
    fx_spec after3 = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t3};
    const char *q;
    char hex[33];
    int x, y;

    fx_start_cfg(&f, HB_LONG, "leastload", 1, 0);
    cl = two_engines(&f, e);
    q = fx_query(&f, cl, "queue_status", NULL, 0);
    ASSERT_STR_CONTAINS(q, "\"unassigned\": 0");
    ASSERT_STR_CONTAINS(q, "\"0\": {");
    ASSERT_STR_CONTAINS(q, "\"1\": {");
    fx_task(&f, cl, NULL, "a", t1);
    fx_task(&f, cl, NULL, "b", t2);
    x = fx_engine_task_any(&f, e, 2, "a", got);
    y = fx_engine_task_any(&f, e, 2, "b", got);
    ASSERT_NE(x, y);
    fx_task(&f, cl, NULL, "c", t3);    /* queued: hwm */
    fx_task(&f, cl, &after3, "d", t4); /* waiting */
    fx_request(&f, cl, CPAR_MSG_APPLY, to0, 1, "direct", d);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "direct", got);
    q = fx_query(&f, cl, "queue_status", NULL, 0);
    ASSERT_STR_CONTAINS(q, "\"unassigned\": 2");
    ASSERT_STR_CONTAINS(q, "\"0\": {\"completed\": 0, \"queue\": 1, \"tasks\": 1}");
    ASSERT_STR_CONTAINS(q, "\"1\": {\"completed\": 0, \"queue\": 0, \"tasks\": 1}");
    ASSERT_STR_CONTAINS(q, "\"scheme\": \"leastload\"");
    ASSERT_STR_CONTAINS(q, "\"hwm\": 1");
    q = fx_query(&f, cl, "queue_status_verbose", NULL, 0);
    fx_hex(t1, hex);
    ASSERT_STR_CONTAINS(q, hex);
    fx_hex(d, hex);
    ASSERT_STR_CONTAINS(q, hex);
    /* Replies count as completed; the queued task moves on. */
    fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t1, "ra");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t1, "ra");
    fx_engine_task(&f, e[x], "c", got);
    q = fx_query(&f, cl, "queue_status", NULL, 0);
    ASSERT_STR_CONTAINS(q, "\"unassigned\": 1");
    ASSERT_STR_CONTAINS(q, x == 0 ? "\"0\": {\"completed\": 1" : "\"1\": {\"completed\": 1");
    free(fx_stop(&f));
    return 0;
}

/* QUERY task_status: pending / succeeded / failed / unknown with the engine. */
TEST_IMPL(query_task_status)
{
    fx f;
    void *e0, *cl;
    uint8_t ids[64], got[16];
    char hex[33], want[96];
    const char *q;
    cpar_msg m;
    uint8_t mid[16];

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "ok", ids);
    fx_task(&f, cl, NULL, "bad", ids + 16);
    fx_task(&f, cl, NULL, "running", ids + 32);
    th_id(ids + 48);
    fx_engine_task(&f, e0, "ok", got);
    fx_engine_task(&f, e0, "bad", got);
    fx_engine_task(&f, e0, "running", got);
    q = fx_query(&f, cl, "task_status", ids, 1);
    fx_hex(ids, hex);
    snprintf(want, sizeof(want), "\"%s\": [\"pending\", 0]", hex);
    ASSERT_STR_CONTAINS(q, want);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, ids, "r");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, ids, "r");
    fx_engine_reply_status(&f, e0, 0, ids + 16, CPAR_STATUS_ERROR, "x");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    cpar_msg_close(&m);
    q = fx_query(&f, cl, "task_status", ids, 4);
    fx_hex(ids, hex);
    snprintf(want, sizeof(want), "\"%s\": [\"succeeded\", 0]", hex);
    ASSERT_STR_CONTAINS(q, want);
    fx_hex(ids + 16, hex);
    snprintf(want, sizeof(want), "\"%s\": [\"failed\", 0]", hex);
    ASSERT_STR_CONTAINS(q, want);
    fx_hex(ids + 32, hex);
    snprintf(want, sizeof(want), "\"%s\": [\"pending\", 0]", hex);
    ASSERT_STR_CONTAINS(q, want);
    fx_hex(ids + 48, hex);
    snprintf(want, sizeof(want), "\"%s\": [\"unknown\", -1]", hex);
    ASSERT_STR_CONTAINS(q, want);
    /* Unknown QUERY kinds and a task_status without ids: -2. */
    th_msg(&m, CPAR_MSG_QUERY);
    memcpy(mid, m.h.msg_id, 16);
    th_add_str(&m, "gossip");
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_EINVAL, mid);
    th_msg(&m, CPAR_MSG_QUERY);
    memcpy(mid, m.h.msg_id, 16);
    th_add_str(&m, "task_status");
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_EINVAL, mid);
    free(fx_stop(&f));
    return 0;
}

/* Ended records are bounded by max_records: the oldest becomes unknown. */
TEST_IMPL(records_bounded)
{
    fx f;
    void *e0, *cl;
    uint8_t ids[3][16], got[16];
    char hex[33], want[96];
    const char *q;

    fx_start_cfg(&f, HB_LONG, NULL, 0, 2);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        fx_task(&f, cl, NULL, "t", ids[i]);
        fx_engine_task(&f, e0, "t", got);
        fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, ids[i], "r");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, ids[i], "r");
    }
    q = fx_query(&f, cl, "task_status", ids[0], 3);
    fx_hex(ids[0], hex);
    snprintf(want, sizeof(want), "\"%s\": [\"unknown\", -1]", hex);
    ASSERT_STR_CONTAINS(q, want);
    fx_hex(ids[2], hex);
    snprintf(want, sizeof(want), "\"%s\": [\"succeeded\", 0]", hex);
    ASSERT_STR_CONTAINS(q, want);
    free(fx_stop(&f));
    return 0;
}

/* Malformed specs: -3, and the controller keeps working. */
TEST_IMPL(malformed_spec)
{
    fx f;
    void *e0, *cl;
    uint8_t buf[256], t[16], got[16];
    fx_spec sp = {0};
    int32_t tg[2] = {0, 0};
    size_t len;
    cpar_msg m;

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    /* Too long. */
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len + 4, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* Too short. */
    fx_task_raw(&f, cl, buf, 10, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    fx_task_raw(&f, cl, buf, 0, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* Counts that disagree with the length. */
    sp.targets = tg;
    sp.ntargets = 2;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len - 4, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    sp.ntargets = 0;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    buf[20] = 0xff; /* nafter huge */
    buf[21] = 0xff;
    buf[22] = 0xff;
    buf[23] = 0xff;
    fx_task_raw(&f, cl, buf, len, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* More targets than any request may name. */
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    buf[16] = 0x01;
    buf[17] = 0x00;
    buf[18] = 0x01; /* 65537 */
    buf[19] = 0x00;
    fx_task_raw(&f, cl, buf, len, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* Versions other than 1. */
    sp.version = 2;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    buf[0] = 0;
    fx_task_raw(&f, cl, buf, len, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* Negative retries. */
    sp.version = 1;
    sp.retries = -1;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len, "x", NULL, t);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* No frame after the spec. */
    sp.retries = 0;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    th_msg(&m, CPAR_MSG_TASK);
    memcpy(t, m.h.msg_id, 16);
    ASSERT_OK(cpar_msg_add_copy(&m, buf, len));
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    /* No frames at all. */
    th_msg(&m, CPAR_MSG_TASK);
    memcpy(t, m.h.msg_id, 16);
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_EPROTO, t);
    fx_quiet(&f, e0, 100);
    /* Still working, and a refused id may be used again. */
    fx_task_raw(&f, cl, buf, len, "good", t, NULL);
    fx_engine_task(&f, e0, "good", got);
    ASSERT_MEM_EQ(got, t, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t, "fine");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t, "fine");
    free(fx_stop(&f));
    return 0;
}

/* A task id already pending: -2; the original task is unaffected. */
TEST_IMPL(duplicate_task_id)
{
    fx f;
    void *e0, *cl;
    uint8_t buf[64], t[16], got[16];
    fx_spec sp = {0};
    size_t len;
    const char *text;

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    fx_task_raw(&f, cl, buf, len, "orig", NULL, t);
    fx_engine_task(&f, e0, "orig", got);
    fx_task_raw(&f, cl, buf, len, "dup", t, NULL);
    text = fx_client_error(&f, cl, CPAR_EINVAL, t);
    ASSERT_STR_CONTAINS(text, "duplicate");
    /* A duplicate of a queued (unsent) task too. */
    {
        uint8_t q[16];
        fx_task_raw(&f, cl, buf, len, "queued", NULL, q);
        fx_task_raw(&f, cl, buf, len, "dup2", q, NULL);
        fx_client_error(&f, cl, CPAR_EINVAL, q);
        fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t, "orig-done");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t, "orig-done");
        fx_engine_task(&f, e0, "queued", got);
        ASSERT_MEM_EQ(got, q, 16);
        fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, q, "q-done");
        fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, q, "q-done");
    }
    fx_quiet(&f, e0, 100);
    free(fx_stop(&f));
    return 0;
}

/* A client that leaves with tasks in every state: the controller frees them (ASan checks
 * leaks) and keeps serving others. */
TEST_IMPL(stop_with_tasks_in_flight)
{
    fx f;
    void *e[2], *cl;
    uint8_t t1[16], got[16];
    fx_spec after = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t1};
    fx_spec tmo = {.timeout_ms = 60000, .retries = 2};

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    cl = two_engines(&f, e);
    fx_task(&f, cl, &tmo, "a", t1);
    fx_task(&f, cl, &tmo, "b", NULL);
    fx_engine_task_any(&f, e, 2, "a", got);
    fx_engine_task_any(&f, e, 2, "b", got);
    fx_task(&f, cl, &tmo, "queued", NULL);
    fx_task(&f, cl, &after, "waiting", NULL);
    fx_quiet(&f, cl, 100);
    free(fx_stop(&f));
    return 0;
}

/* A REPLY about a task from an engine it was not sent to is dropped; the real one passes. */
TEST_IMPL(reply_from_wrong_engine_ignored)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    int x;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
    fx_task(&f, cl, NULL, "mine", t);
    x = fx_engine_task_any(&f, e, 2, "mine", got);
    fx_engine_reply(&f, e[1 - x], CPAR_MSG_REPLY, 1 - x, t, "forged");
    fx_engine_reply(&f, e[1 - x], CPAR_MSG_STREAM, 1 - x, t, "forged stream");
    fx_quiet(&f, cl, 200);
    fx_engine_reply(&f, e[x], CPAR_MSG_REPLY, x, t, "real");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, x, t, "real");
    free(fx_stop(&f));
    return 0;
}

/* Two clients: each gets the replies and errors of its own tasks, also across `after`. */
TEST_IMPL(two_clients)
{
    fx f;
    void *e0, *ca, *cb;
    uint8_t ta[16], tb[16], tc[16], got[16];
    fx_spec after_a = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = ta};

    fx_start(&f, HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ca = fx_client(&f, NULL, NULL);
    cb = fx_client(&f, NULL, NULL);
    fx_task(&f, ca, NULL, "from-a", ta);
    fx_task(&f, cb, &after_a, "from-b", tb);
    fx_engine_task(&f, e0, "from-a", got);
    fx_engine_reply_status(&f, e0, 0, ta, CPAR_STATUS_ERROR, "a failed");
    {
        cpar_msg m;
        th_expect(ca, f.s, CPAR_MSG_REPLY, &m);
        ASSERT_MEM_EQ(m.h.parent, ta, 16);
        cpar_msg_close(&m);
    }
    fx_client_error(&f, cb, CPAR_EIMPOSSIBLE, tb);
    fx_quiet(&f, ca, 100);
    fx_task(&f, cb, NULL, "b-again", tc);
    fx_engine_task(&f, e0, "b-again", got);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, tc, "ok");
    fx_client_get(&f, cb, CPAR_MSG_REPLY, 0, tc, "ok");
    fx_quiet(&f, ca, 100);
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

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    cl = two_engines(&f, e);
    fx_task(&f, cl, &sp, "on-0", t1);
    fx_task(&f, cl, &sp, "on-0", t2);
    fx_engine_task(&f, e[0], "on-0", got);
    ASSERT_MEM_EQ(got, t1, 16);
    fx_quiet(&f, e[1], QUIET_MS);
    fx_quiet(&f, cl, 0);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, t1, "r1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "r1");
    fx_engine_task(&f, e[0], "on-0", got);
    ASSERT_MEM_EQ(got, t2, 16);
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

    fx_start(&f, HB_LONG);
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

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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

/* retries=1 and both engines die in turn: -11 after the second death. */
TEST_IMPL(engine_death_retries_exhausted)
{
    fx f;
    void *e[2], *cl;
    uint8_t t[16], got[16];
    fx_spec sp = {.retries = 1};
    int x;

    fx_start(&f, HB_LONG);
    cl = two_engines(&f, e);
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

/* A hub shutdown with tasks sent, queued and waiting: run() ends by itself, sent tasks
 * fail -11 as their engines leave, nothing leaks; a TASK during the shutdown gets -15. */
TEST_IMPL(hub_shutdown_with_tasks)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], got[16], mid[16];
    fx_spec after = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t1};
    cpar_msg m;

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "sent", t1);
    fx_engine_task(&f, e0, "sent", got);
    fx_task(&f, cl, NULL, "queued", t2);
    fx_task(&f, cl, &after, "waiting", t3);
    th_msg(&m, CPAR_MSG_SHUTDOWN);
    m.h.flags = CPAR_FLAG_HUB;
    memcpy(mid, m.h.msg_id, 16);
    th_send(cl, f.s, &m);
    th_expect(cl, f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, 16);
    cpar_msg_close(&m);
    th_expect(e0, f.s, CPAR_MSG_SHUTDOWN, &m);
    cpar_msg_close(&m);
    /* Tasks that never started end with -15 (waiting ones first, then queued ones). */
    ASSERT_STR_CONTAINS(fx_client_error(&f, cl, CPAR_ESHUTDOWN, t3), "shutting down");
    fx_client_error(&f, cl, CPAR_ESHUTDOWN, t2);
    fx_task(&f, cl, NULL, "too late", t4);
    fx_client_error(&f, cl, CPAR_ESHUTDOWN, t4);
    fx_close(&f, e0);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t1);
    ASSERT_OK(fx_join(&f));
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

    fx_start(&f, HB_LONG);
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
    fx_quiet(&f, e0, QUIET_MS);
    free(fx_stop(&f));
    return 0;
}

/* Only the client that sent a task can abort it (as for direct requests). */
TEST_IMPL(abort_other_clients_task_ignored)
{
    fx f;
    void *e0, *cl, *other;
    uint8_t t1[16], t2[16], got[16];

    fx_start_cfg(&f, HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    other = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t1);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, NULL, "queued", t2);
    fx_abort(&f, other, t2, 1);
    fx_abort(&f, other, t1, 1);
    fx_quiet(&f, e0, QUIET_MS); /* no ABORT reached the engine */
    fx_quiet(&f, cl, 0);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, t1, "one");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, t1, "one");
    fx_engine_task(&f, e0, "queued", got);
    ASSERT_MEM_EQ(got, t2, 16);
    free(fx_stop(&f));
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(config_errors),
    TEST_ENTRY(self_dependency_refused),
    TEST_ENTRY(abort_other_clients_task_ignored),
    TEST_ENTRY(task_round_trip),
    TEST_ENTRY(task_waits_for_an_engine),
    TEST_ENTRY(hwm_one_engine_holds_second),
    TEST_ENTRY(hwm_holds_and_spreads),
    TEST_ENTRY(many_tasks_lru),
    TEST_ENTRY(after_holds_until_reply),
    TEST_ENTRY(after_any),
    TEST_ENTRY(after_failed_success_only),
    TEST_ENTRY(after_unknown_id),
    TEST_ENTRY(follow_same_engine),
    TEST_ENTRY(targets_restrict),
    TEST_ENTRY(targets_unknown_engine),
    TEST_ENTRY(targets_gone_other_alive),
    TEST_ENTRY(targets_gone_last_engine),
    TEST_ENTRY(retry_goes_elsewhere),
    TEST_ENTRY(retry_without_other_engine),
    TEST_ENTRY(unmet_everywhere),
    TEST_ENTRY(engine_death_close),
    TEST_ENTRY(engine_death_heartbeat),
    TEST_ENTRY(timeout_on_after),
    TEST_ENTRY(timeout_waiting_for_engine),
    TEST_ENTRY(abort_unsent),
    TEST_ENTRY(abort_sent),
    TEST_ENTRY(abort_sent_then_engine_dies),
    TEST_ENTRY(abort_direct_request),
    TEST_ENTRY(abort_chain_in_one_message),
    TEST_ENTRY(abort_chain_success_only),
    TEST_ENTRY(adaptive_hwm),
    TEST_ENTRY(query_queue_status),
    TEST_ENTRY(query_task_status),
    TEST_ENTRY(records_bounded),
    TEST_ENTRY(malformed_spec),
    TEST_ENTRY(duplicate_task_id),
    TEST_ENTRY(stop_with_tasks_in_flight),
    TEST_ENTRY(reply_from_wrong_engine_ignored),
    TEST_ENTRY(two_clients),
    TEST_ENTRY(targets_wait_for_busy_engine),
    TEST_ENTRY(follow_any_two_locations),
    TEST_ENTRY(many_pending_scrambled),
    TEST_ENTRY(engine_death_retries_exhausted),
    TEST_ENTRY(hub_shutdown_with_tasks),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
