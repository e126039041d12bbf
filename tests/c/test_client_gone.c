/* A client that vanishes (docs/protocol.md, "Clients that vanish"): a real controller in a
 * thread, fake engines and clients (ctlfx.h). The client's connection closes with tasks
 * queued at the controller: those are cancelled unrun (dependents of other clients learn
 * it), the running one finishes, its reply is dropped and the engine is told to release
 * its shared-memory pins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

/* Waits (by asking) until the controller's queue_status contains `what`. */
static void
wait_status(fx *f, void *client, const char *what)
{
    uint64_t deadline = fx_now_ms() + 30000;
    for (;;) {
        const char *q = fx_query(f, client, "queue_status", NULL, 0);
        if (strstr(q, what) != NULL)
            return;
        if (fx_now_ms() > deadline)
            CPAR_TEST_FAIL("queue_status never showed %s: %s", what, q);
    }
}

TEST_IMPL(lost_client_queued_tasks_cancelled)
{
    fx f;
    void *e0, *cl, *watcher;
    uint8_t t[4][16], got[16], wid[16], nid[16];
    const char *bodies[4] = {"t0", "t1", "t2", "t3"};
    fx_spec after_t1 = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    cpar_msg m;
    char *log;

    fx_start_cfg(&f, FX_HB_LONG, NULL, 1, 0); /* hwm 1: the engine holds one task */
    ASSERT_EQ(fx_engine(&f, &e0, 100), 0);
    cl = fx_client(&f, NULL, NULL);
    watcher = fx_client(&f, NULL, NULL);
    for (int i = 0; i < 4; i++)
        fx_task(&f, cl, NULL, bodies[i], t[i]);
    fx_engine_task(&f, e0, "t0", got);
    ASSERT_MEM_EQ(got, t[0], 16);
    wait_status(&f, watcher, "\"unassigned\": 3");
    /* Another client's task waits for t1 to succeed. */
    after_t1.after = t[1];
    fx_task(&f, watcher, &after_t1, "after t1", wid);

    fx_close(&f, cl); /* the client vanishes (as a SIGKILLed process's socket closes) */

    /* t1 is cancelled: the dependent task can never run. */
    ASSERT_STR_CONTAINS(fx_client_error(&f, watcher, CPAR_EIMPOSSIBLE, wid), "");
    wait_status(&f, watcher, "\"unassigned\": 0");
    /* The running task ends: its REPLY (with shared-memory frames) goes nowhere, and the
     * engine gets a RELEASE for it on the vanished client's behalf. */
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = 0;
    m.h.status = CPAR_STATUS_OK;
    m.h.flags = CPAR_FLAG_SHM;
    memcpy(m.h.parent, t[0], 16);
    th_add_str(&m, "result");
    th_add_str(&m, "descriptor table");
    th_send(e0, f.s, &m);
    th_expect(e0, f.s, CPAR_MSG_RELEASE, &m);
    ASSERT_EQ(m.nframes, 2);
    ASSERT_EQ(zmq_msg_size(&m.frames[1]), 16);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[1]), t[0], 16);
    cpar_msg_close(&m);
    /* t1..t3 never reach the engine: the next task it gets is the watcher's. */
    fx_task(&f, watcher, NULL, "next", nid);
    fx_engine_task(&f, e0, "next", got);
    ASSERT_MEM_EQ(got, nid, 16);
    fx_engine_reply_status(&f, e0, 0, nid, CPAR_STATUS_OK, "ok");
    fx_client_get(&f, watcher, CPAR_MSG_REPLY, 0, nid, "ok");
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "client 0 gone: 3 queued task(s) cancelled, 1 running task(s) "
                             "left to finish");
    free(log);
    return 0;
}

/* A direct request's REPLY for a vanished client is dropped, and its pins released too;
 * a new client connecting afterwards (maybe on the same fd) is unaffected. */
TEST_IMPL(lost_client_direct_reply_released_new_client_fine)
{
    fx f;
    void *e0, *cl, *fresh;
    int32_t one[1] = {0};
    uint8_t a[16], got[16], b[16];
    cpar_msg m;
    char *log;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 100), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_APPLY, one, 1, "work", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "work", got);
    fx_close(&f, cl);
    /* Wait until the controller has noticed (it logs the loss). */
    for (uint64_t deadline = fx_now_ms() + 30000;;) {
        FILE *lf = fopen(f.logpath, "r");
        char buf[8192] = "";
        size_t n = lf ? fread(buf, 1, sizeof(buf) - 1, lf) : 0;
        if (lf)
            fclose(lf);
        buf[n] = '\0';
        if (strstr(buf, "client 0 gone: 0 queued task(s) cancelled") != NULL)
            break;
        ASSERT(fx_now_ms() < deadline);
        usleep(10000);
    }
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = 0;
    m.h.flags = CPAR_FLAG_SHM;
    memcpy(m.h.parent, a, 16);
    th_add_str(&m, "result");
    th_add_str(&m, "descriptor table");
    th_send(e0, f.s, &m);
    th_expect(e0, f.s, CPAR_MSG_RELEASE, &m);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[1]), a, 16);
    cpar_msg_close(&m);
    /* A new client works, and stays: its requests are answered. */
    fresh = fx_client(&f, NULL, NULL);
    fx_request(&f, fresh, CPAR_MSG_APPLY, one, 1, "again", b);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "again", got);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, b, "answer");
    fx_client_get(&f, fresh, CPAR_MSG_REPLY, 0, b, "answer");
    log = fx_stop(&f);
    ASSERT(strstr(log, "client 1 gone") == NULL);
    free(log);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(lost_client_queued_tasks_cancelled),
    TEST_ENTRY(lost_client_direct_reply_released_new_client_fine),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
