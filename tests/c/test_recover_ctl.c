/* Tests of the controller's recovery (docs/recovery.md; controller_recover.c and the
 * recover REGISTER in controller_engines.c): a controller with a task database file is
 * stopped with work pending on fake engines (its database left as a dead controller's:
 * nothing ended), and a second controller recovers from that file. Fake engines come back
 * with REGISTER recover=1 and the ids they hold, a client RECLAIMs the work, and the grace
 * period ends for the engine that does not come back. Runs under ASan in ctest-asan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

#define ID CPAR_WIRE_ID_SIZE

/* An engine back after the controller died: REGISTER target id, recover=1, frame 1 the
 * held ids. Returns REGISTER_REPLY's status; its text goes to text. */
static int
engine_back(fx *f, void **sock, int32_t id, const uint8_t *held, size_t nheld, char *text,
            size_t textlen)
{
    cpar_msg m;
    int status;
    *sock = fx_dealer(f, 1);
    th_msg(&m, CPAR_MSG_REGISTER);
    m.h.target = id;
    th_add_str(&m, "pid=4242\nhost=fakehost\nrecover=1\n");
    ASSERT_OK(cpar_msg_add_copy(&m, held != NULL ? (const void *)held : "", nheld * ID));
    th_send(*sock, f->s, &m);
    th_expect(*sock, f->s, CPAR_MSG_REGISTER_REPLY, &m);
    status = m.h.status;
    if (status == 0)
        ASSERT_EQ(m.h.engine, id);
    th_frame_str(&m, 0, text, textlen);
    cpar_msg_close(&m);
    return status;
}

/* RECLAIM with one prefix and ids; returns how many ids RECLAIM_REPLY lists (into out). */
static size_t
reclaim(fx *f, void *client, const uint8_t *prefix, const uint8_t *ids, size_t n, uint8_t *out)
{
    cpar_msg m;
    size_t got;
    th_msg(&m, CPAR_MSG_RECLAIM);
    ASSERT_OK(cpar_msg_add_copy(&m, prefix, 8));
    ASSERT_OK(cpar_msg_add_copy(&m, ids != NULL ? (const void *)ids : "", n * ID));
    th_send(client, f->s, &m);
    th_expect(client, f->s, CPAR_MSG_RECLAIM_REPLY, &m);
    ASSERT_EQ(m.nframes, 1);
    got = zmq_msg_size(&m.frames[0]);
    ASSERT_EQ(got % ID, 0);
    if (got > 0)
        memcpy(out, zmq_msg_data(&m.frames[0]), got);
    cpar_msg_close(&m);
    return got / ID;
}

static int
listed(const uint8_t *ids, size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(ids + i * ID, id, ID) == 0)
            return 1;
    return 0;
}

TEST_IMPL(recovered_work_engines_back_reclaim_and_grace)
{
    char dir[] = "/tmp/cpar-recover-ctl-XXXXXX", path[128], text[256], *log;
    fx a, b;
    void *e0, *e1, *cl, *e0b, *cl2, *w;
    int32_t id0, id1, t0[1] = {0}, t1[1] = {1};
    uint8_t held[ID], lost[ID], on1[ID], after[ID], dh[ID], dl[ID], mid[ID], prefix[8];
    uint8_t want[6 * ID], got[6 * ID], keep[2 * ID];
    fx_spec s0 = {.targets = t0, .ntargets = 1}, s1 = {.targets = t1, .ntargets = 1};
    fx_spec sa = {.after_flags = FX_DEP_ALL | FX_DEP_SUCCESS, .nafter = 1};
    size_t n;
    cpar_msg m;

    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    fx_db_mode = "sqlite";
    fx_db_file = path;
    fx_recover = 0;
    fx_recover_grace_ms = 0;
    fx_start(&a, FX_HB_LONG);
    id0 = fx_engine(&a, &e0, 100);
    id1 = fx_engine(&a, &e1, 101);
    ASSERT_EQ(id0, 0);
    ASSERT_EQ(id1, 1);
    cl = fx_client(&a, NULL, NULL);
    fx_task(&a, cl, &s0, "held", held);
    fx_engine_task(&a, e0, "held", NULL);
    fx_task(&a, cl, &s0, "lost", lost);
    fx_engine_task(&a, e0, "lost", NULL);
    fx_task(&a, cl, &s1, "on1", on1);
    fx_engine_task(&a, e1, "on1", NULL);
    sa.after = held;
    fx_task(&a, cl, &sa, "after", after); /* waits for `held` */
    fx_request(&a, cl, CPAR_MSG_APPLY, t0, 1, "dh", dh);
    fx_engine_take(&a, e0, CPAR_MSG_APPLY, "dh", mid);
    fx_request(&a, cl, CPAR_MSG_APPLY, t0, 1, "dl", dl);
    fx_engine_take(&a, e0, CPAR_MSG_APPLY, "dl", mid);
    free(fx_stop(&a)); /* the database is left as a dead controller leaves it */

    fx_recover = 1;
    fx_recover_grace_ms = 1500;
    fx_start(&b, FX_HB_LONG);
    /* A plain REGISTER may not take id 1 (expected back); a new engine gets id 2. */
    ASSERT_EQ(fx_engine_try_why(&b, &w, 1, 7, &id1, text, sizeof(text)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(text, "expected back");
    ASSERT_EQ(fx_engine(&b, &w, 102), 2);
    /* Engine 0 comes back holding `held` and `dh`. */
    memcpy(keep, held, ID);
    memcpy(keep + ID, dh, ID);
    ASSERT_OK(engine_back(&b, &e0b, 0, keep, 2, text, sizeof(text)));
    ASSERT_STR_CONTAINS(text, "recover_grace_ms=1500\n");
    /* The client (same id prefix) reclaims; `dl` was lost with engine 0's old process. */
    cl2 = fx_client(&b, NULL, NULL);
    memcpy(prefix, held, 8);
    memcpy(want, held, ID);
    memcpy(want + ID, lost, ID);
    memcpy(want + 2 * ID, on1, ID);
    memcpy(want + 3 * ID, after, ID);
    memcpy(want + 4 * ID, dh, ID);
    memcpy(want + 5 * ID, dl, ID);
    n = reclaim(&b, cl2, prefix, want, 6, got);
    ASSERT_EQ(n, 5);
    ASSERT(listed(got, n, held) && listed(got, n, lost) && listed(got, n, on1) &&
           listed(got, n, after) && listed(got, n, dh) && !listed(got, n, dl));
    /* `lost` runs again on engine 0 (its only target), with its id. */
    fx_engine_task(&b, e0b, "lost", mid);
    ASSERT_MEM_EQ(mid, lost, ID);
    fx_engine_reply(&b, e0b, CPAR_MSG_REPLY, 0, lost, "L");
    fx_client_get(&b, cl2, CPAR_MSG_REPLY, 0, lost, "L");
    fx_engine_reply(&b, e0b, CPAR_MSG_REPLY, 0, dh, "D");
    fx_client_get(&b, cl2, CPAR_MSG_REPLY, 0, dh, "D");
    fx_engine_reply(&b, e0b, CPAR_MSG_REPLY, 0, held, "H");
    fx_client_get(&b, cl2, CPAR_MSG_REPLY, 0, held, "H");
    /* `after` waited for `held` (recovered dependency), and now runs. */
    {
        void *engines[2] = {e0b, w};
        int k = fx_engine_task_any(&b, engines, 2, "after", mid);
        ASSERT_MEM_EQ(mid, after, ID);
        fx_engine_reply(&b, engines[k], CPAR_MSG_REPLY, k == 0 ? 0 : 2, after, "A");
        fx_client_get(&b, cl2, CPAR_MSG_REPLY, k == 0 ? 0 : 2, after, "A");
    }
    /* Engine 1 never comes back: at the grace period's end its task ends (-11). */
    ASSERT_STR_CONTAINS(fx_client_error(&b, cl2, CPAR_EENGINEDEAD, on1), "did not come back");
    /* A malformed RECLAIM is refused with what was wrong. */
    th_msg(&m, CPAR_MSG_RECLAIM);
    ASSERT_OK(cpar_msg_add_copy(&m, "1234567", 7));
    th_send(cl2, b.s, &m);
    ASSERT_STR_CONTAINS(fx_client_error(&b, cl2, CPAR_EPROTO, NULL), "multiple of 8");
    log = fx_stop(&b);
    ASSERT_STR_CONTAINS(log, "recovered from");
    ASSERT_STR_CONTAINS(log, "4 tasks (1 queued, 3 on engines), 2 direct parts, 2 engines");
    ASSERT_STR_CONTAINS(log, "engine 0 back: 2 request(s) it holds stay on it, 1 task(s)");
    ASSERT_STR_CONTAINS(log, "recovery grace period over: 1 engine(s) came back, 1 did not");
    free(log);
    fx_db_mode = NULL;
    fx_db_file = NULL;
    fx_recover = 0;
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    ASSERT_OK(system(path));
    return 0;
}

TEST_IMPL(a_reconnecting_engine_replaces_its_connection)
{
    char dir[] = "/tmp/cpar-recover-ctl-XXXXXX", path[128], text[256], *log;
    fx a;
    void *e0, *e0b, *cl;
    int32_t t0[1] = {0};
    uint8_t kept[ID], gone[ID], part[ID], mid[ID];
    fx_spec s0 = {.targets = t0, .ntargets = 1};

    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    fx_db_mode = "sqlite";
    fx_db_file = path;
    fx_start(&a, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&a, &e0, 100), 0);
    cl = fx_client(&a, NULL, NULL);
    fx_task(&a, cl, &s0, "kept", kept);
    fx_engine_task(&a, e0, "kept", NULL);
    fx_task(&a, cl, &s0, "gone", gone);
    fx_engine_task(&a, e0, "gone", NULL);
    fx_request(&a, cl, CPAR_MSG_APPLY, t0, 1, "part", part);
    fx_engine_take(&a, e0, CPAR_MSG_APPLY, "part", mid);
    /* The same engine on a new connection, holding only `kept`: the old connection is
     * replaced; `gone` runs again, `part` ends. */
    ASSERT_OK(engine_back(&a, &e0b, 0, kept, 1, text, sizeof(text)));
    fx_engine_task(&a, e0b, "gone", mid);
    ASSERT_MEM_EQ(mid, gone, ID);
    ASSERT_STR_CONTAINS(fx_client_error(&a, cl, CPAR_EENGINEDEAD, part), "lost this request");
    fx_engine_reply(&a, e0b, CPAR_MSG_REPLY, 0, kept, "K");
    fx_client_get(&a, cl, CPAR_MSG_REPLY, 0, kept, "K");
    fx_engine_reply(&a, e0b, CPAR_MSG_REPLY, 0, gone, "G");
    fx_client_get(&a, cl, CPAR_MSG_REPLY, 0, gone, "G");
    /* A recover REGISTER whose frame 1 is not whole ids is refused. */
    {
        void *bad = fx_dealer(&a, 1);
        cpar_msg m;
        th_msg(&m, CPAR_MSG_REGISTER);
        m.h.target = 3;
        th_add_str(&m, "pid=1\nhost=h\nrecover=1\n");
        th_add_str(&m, "short");
        th_send(bad, a.s, &m);
        th_expect(bad, a.s, CPAR_MSG_REGISTER_REPLY, &m);
        ASSERT_EQ(m.h.status, CPAR_EPROTO);
        ASSERT_STR_CONTAINS(th_frame_str(&m, 0, text, sizeof(text)), "16-byte request ids");
        cpar_msg_close(&m);
    }
    log = fx_stop(&a);
    ASSERT_STR_CONTAINS(log, "engine 0 re-registered on a new connection");
    free(log);
    fx_db_mode = NULL;
    fx_db_file = NULL;
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    ASSERT_OK(system(path));
    return 0;
}

TEST_IMPL(a_client_back_on_the_same_controller_reclaims_its_work)
{
    fx a;
    void *e0, *cl, *cl2;
    int32_t t0[1] = {0};
    uint8_t task[ID], part[ID], mid[ID], got[2 * ID], ids[2 * ID];
    fx_spec s0 = {.targets = t0, .ntargets = 1};
    char *log;

    fx_db_mode = "memory";
    fx_start(&a, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&a, &e0, 100), 0);
    cl = fx_client(&a, NULL, NULL);
    fx_task(&a, cl, &s0, "t", task);
    fx_engine_task(&a, e0, "t", mid);
    fx_request(&a, cl, CPAR_MSG_APPLY, t0, 1, "p", part);
    fx_engine_take(&a, e0, CPAR_MSG_APPLY, "p", mid);
    fx_close(&a, cl); /* the client's link drops: its work runs on, recorded */
    cl2 = fx_client(&a, NULL, NULL);
    memcpy(ids, task, ID);
    memcpy(ids + ID, part, ID);
    /* Nothing moves until the old connection is seen gone; then both move. */
    for (int tries = 0;; tries++) {
        size_t n = reclaim(&a, cl2, task, ids, 2, got);
        if (n == 2)
            break;
        ASSERT_LT(tries, 200);
        usleep(20000);
    }
    fx_engine_reply(&a, e0, CPAR_MSG_REPLY, 0, part, "P");
    fx_client_get(&a, cl2, CPAR_MSG_REPLY, 0, part, "P");
    fx_engine_reply(&a, e0, CPAR_MSG_REPLY, 0, task, "T");
    fx_client_get(&a, cl2, CPAR_MSG_REPLY, 0, task, "T");
    log = fx_stop(&a);
    ASSERT_STR_CONTAINS(log, "RECLAIM from client");
    free(log);
    fx_db_mode = NULL;
    /* Without a database, RECLAIM_REPLY lists nothing. */
    fx_start(&a, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&a, &e0, 100), 0);
    cl = fx_client(&a, NULL, NULL);
    fx_task(&a, cl, &s0, "t", task);
    ASSERT_EQ(reclaim(&a, cl, task, task, 1, got), 0);
    free(fx_stop(&a));
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(recovered_work_engines_back_reclaim_and_grace),
        TEST_ENTRY(a_reconnecting_engine_replaces_its_connection),
        TEST_ENTRY(a_client_back_on_the_same_controller_reclaims_its_work),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
