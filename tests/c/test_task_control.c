/* Tests of the controller's load-balanced tasks, control (cext/controller/controller_tasks.c;
 * docs/protocol.md, "Load-balanced tasks"): configuration errors, ABORT, QUERY, bounded
 * records, malformed and duplicate TASKs, several clients, and clients or the hub going
 * away with tasks in flight, with a real controller in a thread and fake engines and
 * clients (ctlfx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

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

/* ABORT of tasks not yet sent (queued behind hwm, or waiting on `after`): -18 each, and
 * they never run. */
TEST_IMPL(abort_unsent)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], got[16], both[32];
    fx_spec sp = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    const char *text;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
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
    fx_quiet(&f, e0, FX_QUIET_MS);
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

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "long", t);
    x = fx_engine_task_any(&f, e, 2, "long", got);
    fx_abort(&f, cl, t, 1);
    fx_engine_abort(&f, e[x], t);
    fx_quiet(&f, cl, 100); /* no ERROR for a sent task */
    fx_engine_reply_status(&f, e[x], x, t, CPAR_STATUS_ERROR, "TaskAborted");
    th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
    ASSERT_EQ(m.h.status, CPAR_STATUS_ERROR);
    ASSERT_EQ(m.h.engine, x);
    ASSERT_MEM_EQ(m.h.parent, t, 16);
    cpar_msg_close(&m);
    fx_quiet(&f, e[1 - x], FX_QUIET_MS); /* not retried */
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
    int x;

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_task(&f, cl, &sp, "long", t);
    x = fx_engine_task_any(&f, e, 2, "long", got);
    fx_abort(&f, cl, t, 1);
    fx_engine_abort(&f, e[x], t);
    fx_close(&f, e[x]);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, t);
    fx_quiet(&f, e[1 - x], FX_QUIET_MS);
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

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
    fx_request(&f, cl, CPAR_MSG_APPLY, t1, 1, "direct", a);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "direct", got);
    fx_abort(&f, cl, a, 1);
    fx_engine_abort(&f, e[1], a);
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

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t0);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &a1, "w1", ids);
    fx_task(&f, cl, &a2, "w2", ids + 16);
    fx_abort(&f, cl, ids, 2);
    fx_client_error_within(&f, cl, CPAR_EABORTED, ids, 2000);
    fx_client_error_within(&f, cl, CPAR_EABORTED, ids + 16, 2000);
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

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t0);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, &a1, "w1", ids);
    fx_task(&f, cl, &a2, "w2", ids + 16);
    fx_abort(&f, cl, ids, 2);
    fx_client_error_within(&f, cl, CPAR_EABORTED, ids, 2000);
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

    fx_start_cfg(&f, FX_HB_LONG, "leastload", 1, 0);
    cl = fx_two_engines(&f, e);
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

    fx_start(&f, FX_HB_LONG);
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

    fx_start_cfg(&f, FX_HB_LONG, NULL, 0, 2);
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

    fx_start(&f, FX_HB_LONG);
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

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
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

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    cl = fx_two_engines(&f, e);
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

    fx_start(&f, FX_HB_LONG);
    cl = fx_two_engines(&f, e);
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

    fx_start(&f, FX_HB_LONG);
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

/* A hub shutdown with tasks sent, queued and waiting: run() ends by itself, sent tasks
 * fail -11 as their engines leave, nothing leaks; a TASK during the shutdown gets -15. */
TEST_IMPL(hub_shutdown_with_tasks)
{
    fx f;
    void *e0, *cl;
    uint8_t t1[16], t2[16], t3[16], t4[16], got[16], mid[16];
    fx_spec after = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1, .after = t1};
    cpar_msg m;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
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

/* Only the client that sent a task can abort it (as for direct requests). */
TEST_IMPL(abort_other_clients_task_ignored)
{
    fx f;
    void *e0, *cl, *other;
    uint8_t t1[16], t2[16], got[16];

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    other = fx_client(&f, NULL, NULL);
    fx_task(&f, cl, NULL, "running", t1);
    fx_engine_task(&f, e0, "running", got);
    fx_task(&f, cl, NULL, "queued", t2);
    fx_abort(&f, other, t2, 1);
    fx_abort(&f, other, t1, 1);
    fx_quiet(&f, e0, FX_QUIET_MS); /* no ABORT reached the engine */
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
    TEST_ENTRY(abort_other_clients_task_ignored),
    TEST_ENTRY(abort_unsent),
    TEST_ENTRY(abort_sent),
    TEST_ENTRY(abort_sent_then_engine_dies),
    TEST_ENTRY(abort_direct_request),
    TEST_ENTRY(abort_chain_in_one_message),
    TEST_ENTRY(abort_chain_success_only),
    TEST_ENTRY(query_queue_status),
    TEST_ENTRY(query_task_status),
    TEST_ENTRY(records_bounded),
    TEST_ENTRY(malformed_spec),
    TEST_ENTRY(duplicate_task_id),
    TEST_ENTRY(stop_with_tasks_in_flight),
    TEST_ENTRY(reply_from_wrong_engine_ignored),
    TEST_ENTRY(two_clients),
    TEST_ENTRY(hub_shutdown_with_tasks),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
