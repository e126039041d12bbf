/* Tests of the controller's registration and routing: a real controller in a thread, fake
 * engines and clients as DEALER sockets over TCP (ctlfx.h). */
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
        .engine_url = "not-a-url",
        .key = (const uint8_t *)TH_KEY,
        .keylen = strlen(TH_KEY),
        .log_path = "/dev/null",
    };
    ASSERT_EQ(cpar_controller_new(&cfg, &c, err, sizeof(err)), CPAR_EZMQ);
    ASSERT(c == NULL);
    ASSERT_STR_CONTAINS(err, "not-a-url");
    cfg.engine_url = "tcp://127.0.0.1:*";
    cfg.keylen = 0;
    ASSERT_EQ(cpar_controller_new(&cfg, &c, err, sizeof(err)), CPAR_EINVAL);
    cfg.keylen = strlen(TH_KEY);
    cfg.log_path = "/nonexistent-dir/x.log";
    ASSERT_EQ(cpar_controller_new(&cfg, &c, err, sizeof(err)), CPAR_EIO);
    ASSERT_STR_CONTAINS(err, "/nonexistent-dir/x.log");
    return 0;
}

TEST_IMPL(register_and_connect)
{
    fx f;
    void *e0, *e1, *cl;
    cpar_msg reply;
    char text[256];
    const uint8_t *ids;
    size_t n = 0;
    char *log;

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1000), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 1001), 1);
    cl = fx_client(&f, &n, &reply);
    ASSERT_EQ(n, 2);
    ids = zmq_msg_data(&reply.frames[0]);
    ASSERT_EQ(ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24, 0);
    ASSERT_EQ(ids[4] | ids[5] << 8 | ids[6] << 16 | ids[7] << 24, 1);
    ASSERT(strcmp(th_frame_str(&reply, 1, text, sizeof(text)),
                  "0 1000 fakehost\n1 1001 fakehost\n") == 0);
    cpar_msg_close(&reply);
    (void)cl;
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "engine 0 registered: pid 1000 host fakehost");
    ASSERT_STR_CONTAINS(log, "engine 1 registered: pid 1001 host fakehost");
    free(log);
    return 0;
}

TEST_IMPL(requested_ids)
{
    fx f;
    void *a, *b, *c, *d;
    int32_t id = -1;

    fx_start(&f, 10000);
    ASSERT_OK(fx_engine_try(&f, &a, 5, 1, &id));
    ASSERT_EQ(id, 5);
    ASSERT_EQ(fx_engine_try(&f, &b, 5, 2, &id), CPAR_EINVAL); /* taken */
    ASSERT_EQ(id, -1);
    ASSERT_EQ(fx_engine_try(&f, &b, 70000, 2, &id), CPAR_EINVAL); /* too large */
    ASSERT_OK(fx_engine_try(&f, &c, -1, 3, &id));
    ASSERT_EQ(id, 0);
    ASSERT_OK(fx_engine_try(&f, &d, -1, 4, &id));
    ASSERT_EQ(id, 1);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(events_on_register)
{
    fx f;
    void *cl, *e0;
    size_t n = 99;

    fx_start(&f, 10000);
    cl = fx_client(&f, &n, NULL);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(fx_engine(&f, &e0, 7), 0);
    fx_client_event(&f, cl, 0, 1);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(shm_token_to_clients)
{
    fx f;
    void *cl, *cl2, *e0, *e1;
    cpar_msg m;
    char text[256];

    fx_start(&f, 10000);
    cl = fx_client(&f, NULL, NULL);
    /* An engine without a token, then one with (sanitised into one printable word). */
    ASSERT_EQ(fx_engine(&f, &e0, 7), 0);
    th_expect(cl, f.s, CPAR_MSG_ENGINE_EVENT, &m);
    ASSERT_EQ(m.nframes, 2);
    ASSERT(strcmp(th_frame_str(&m, 0, text, sizeof(text)), "") == 0);
    ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), "7 fakehost") == 0);
    cpar_msg_close(&m);
    e1 = fx_dealer(&f, 1);
    th_msg(&m, CPAR_MSG_REGISTER);
    th_add_str(&m, "pid=8\nhost=h\nshm=boot/ns/0/h x\n");
    th_send(e1, f.s, &m);
    th_expect(e1, f.s, CPAR_MSG_REGISTER_REPLY, &m);
    ASSERT_EQ(m.h.engine, 1);
    cpar_msg_close(&m);
    th_expect(cl, f.s, CPAR_MSG_ENGINE_EVENT, &m);
    ASSERT_EQ(m.h.engine, 1);
    ASSERT_EQ(m.nframes, 2);
    ASSERT(strcmp(th_frame_str(&m, 0, text, sizeof(text)), "boot/ns/0/h?x") == 0);
    ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), "8 h") == 0);
    cpar_msg_close(&m);
    /* CONNECT_REPLY frame 2: "id token" lines of the engines that sent one. */
    cl2 = fx_client(&f, NULL, &m);
    (void)cl2;
    ASSERT(strcmp(th_frame_str(&m, 2, text, sizeof(text)), "1 boot/ns/0/h?x\n") == 0);
    cpar_msg_close(&m);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(apply_fan_out_two_clients)
{
    fx f;
    void *e0, *e1, *ca, *cb;
    uint8_t a[16], b[16], got[16];
    int32_t both[2] = {0, 1}, one[1] = {1};

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    ca = fx_client(&f, NULL, NULL);
    cb = fx_client(&f, NULL, NULL);
    fx_request(&f, ca, CPAR_MSG_APPLY, both, 2, "call-a", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "call-a", got);
    ASSERT_MEM_EQ(got, a, 16);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "call-a", got);
    ASSERT_MEM_EQ(got, a, 16);
    fx_request(&f, cb, CPAR_MSG_EXECUTE, one, 1, "code-b", b);
    fx_engine_take(&f, e1, CPAR_MSG_EXECUTE, "code-b", got);
    ASSERT_MEM_EQ(got, b, 16);
    /* Streams then replies, each back to the client that asked (order is kept per
     * engine, not across engines). */
    fx_engine_reply(&f, e1, CPAR_MSG_STREAM, 1, b, "out-b");
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, b, "res-b1");
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, a, "res-a1");
    fx_client_get(&f, cb, CPAR_MSG_STREAM, 1, b, "out-b");
    fx_client_get(&f, cb, CPAR_MSG_REPLY, 1, b, "res-b1");
    fx_client_get(&f, ca, CPAR_MSG_REPLY, 1, a, "res-a1");
    fx_engine_reply(&f, e0, CPAR_MSG_STREAM, 0, a, "out-a0");
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "res-a0");
    fx_client_get(&f, ca, CPAR_MSG_STREAM, 0, a, "out-a0");
    fx_client_get(&f, ca, CPAR_MSG_REPLY, 0, a, "res-a0");
    /* A second REPLY for an answered request goes nowhere: the next thing cb sees is the
     * answer to its next request. */
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, b, "again");
    fx_request(&f, cb, CPAR_MSG_APPLY, one, 1, "call-b2", b);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "call-b2", got);
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, b, "res-b2");
    fx_client_get(&f, cb, CPAR_MSG_REPLY, 1, b, "res-b2");
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(unknown_target_and_duplicates)
{
    fx f;
    void *e0, *cl;
    uint8_t a[16], got[16];
    int32_t bad[2] = {0, 7}, neg[1] = {-1}, dup[2] = {0, 0}, ok[1] = {0};
    const char *text;

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_APPLY, bad, 2, "never", a);
    text = fx_client_error(&f, cl, CPAR_ENOENGINE, a);
    ASSERT_STR_CONTAINS(text, "7");
    fx_request(&f, cl, CPAR_MSG_EXECUTE, neg, 1, "never", a);
    fx_client_error(&f, cl, CPAR_ENOENGINE, a);
    fx_request(&f, cl, CPAR_MSG_INTERRUPT, bad, 2, "never", a);
    fx_client_error(&f, cl, CPAR_ENOENGINE, a);
    fx_request(&f, cl, CPAR_MSG_APPLY, dup, 2, "never", a);
    fx_client_error(&f, cl, CPAR_EINVAL, a);
    /* The same msg id twice to one engine: the second is refused. */
    fx_request(&f, cl, CPAR_MSG_APPLY, ok, 1, "first", a);
    fx_request_id(&f, cl, CPAR_MSG_APPLY, ok, 1, "second", a, a);
    fx_client_error(&f, cl, CPAR_EINVAL, a);
    /* Nothing refused reached the engine: the first thing it gets is "first". */
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "first", got);
    ASSERT_MEM_EQ(got, a, 16);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "done");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, a, "done");
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(untargeted_and_wrong_direction)
{
    fx f;
    void *cl;
    cpar_msg m;
    uint8_t mid[16];

    fx_start(&f, 10000);
    cl = fx_client(&f, NULL, NULL);
    th_msg(&m, CPAR_MSG_APPLY); /* no TARGETED flag */
    memcpy(mid, m.h.msg_id, 16);
    th_add_str(&m, "x");
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_EINVAL, mid);
    th_msg(&m, CPAR_MSG_REPLY); /* an engine's message from a client */
    memcpy(mid, m.h.msg_id, 16);
    th_send(cl, f.s, &m);
    fx_client_error(&f, cl, CPAR_ETYPE, mid);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(interrupt_forwarded)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t a[16], got[16];
    int32_t both[2] = {1, 0};

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_INTERRUPT, both, 2, "ids", a);
    fx_engine_take(&f, e0, CPAR_MSG_INTERRUPT, "ids", got);
    ASSERT_MEM_EQ(got, a, 16);
    fx_engine_take(&f, e1, CPAR_MSG_INTERRUPT, "ids", got);
    ASSERT_MEM_EQ(got, a, 16);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(release_forwarded)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t a[16], got[16];
    int32_t one[1] = {1};

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    /* Routed like INTERRUPT: to the engine named, no reply record kept. */
    fx_request(&f, cl, CPAR_MSG_RELEASE, one, 1, "parent-ids", a);
    fx_engine_take(&f, e1, CPAR_MSG_RELEASE, "parent-ids", got);
    ASSERT_MEM_EQ(got, a, 16);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(client_gone_reply_dropped)
{
    fx f;
    void *e0, *c1, *c2;
    uint8_t a[16], got[16];
    int32_t t[1] = {0};

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    c1 = fx_client(&f, NULL, NULL);
    fx_request(&f, c1, CPAR_MSG_APPLY, t, 1, "orphan", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "orphan", got);
    fx_close(&f, c1);
    fx_engine_reply(&f, e0, CPAR_MSG_STREAM, 0, a, "to nobody");
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "to nobody");
    /* Another client is still served. */
    c2 = fx_client(&f, NULL, NULL);
    fx_request(&f, c2, CPAR_MSG_APPLY, t, 1, "next", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "next", got);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "ok");
    fx_client_get(&f, c2, CPAR_MSG_REPLY, 0, a, "ok");
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(many_requests)
{
    fx f;
    void *e0, *e1, *cl;
    int32_t both[2] = {0, 1};
    enum { N = 3000 };
    static uint8_t ids[N][16];
    size_t got0 = 0, got1 = 0, replies = 0;

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    for (int i = 0; i < N; i++)
        fx_request(&f, cl, CPAR_MSG_APPLY, both, 2, "n", ids[i]);
    /* Each engine answers everything, in order. */
    while (got0 < N || got1 < N) {
        cpar_msg m;
        void *e = got0 < N ? e0 : e1;
        size_t *k = got0 < N ? &got0 : &got1;
        th_expect(e, f.s, CPAR_MSG_APPLY, &m);
        ASSERT_MEM_EQ(m.h.msg_id, ids[*k], 16);
        cpar_msg_close(&m);
        fx_engine_reply(&f, e, CPAR_MSG_REPLY, e == e0 ? 0 : 1, ids[*k], "r");
        (*k)++;
    }
    while (replies < 2 * N) {
        cpar_msg m;
        th_expect(cl, f.s, CPAR_MSG_REPLY, &m);
        cpar_msg_close(&m);
        replies++;
    }
    free(fx_stop(&f));
    return 0;
}

/* A registration storm: 400 engines send REGISTER at once (none waits for another's
 * reply); every one gets a distinct id in 0..399, and a client then lists all 400. */
TEST_IMPL(registration_storm)
{
    enum { N = 400 };
    fx f;
    void **socks = calloc(N, sizeof(void *));
    uint8_t *seen = calloc(N, 1);
    size_t n = 0;

    ASSERT(socks != NULL && seen != NULL);
    fx_start(&f, 30000);
    for (int i = 0; i < N; i++) {
        cpar_msg m;
        char payload[64];
        socks[i] = th_dealer(f.ctx, cpar_controller_engine_endpoint(f.c));
        th_msg(&m, CPAR_MSG_REGISTER);
        m.h.target = -1;
        snprintf(payload, sizeof(payload), "pid=%d\nhost=storm\n", 10000 + i);
        th_add_str(&m, payload);
        th_send(socks[i], f.s, &m);
    }
    for (int i = 0; i < N; i++) {
        cpar_msg m;
        th_expect(socks[i], f.s, CPAR_MSG_REGISTER_REPLY, &m);
        ASSERT_EQ(m.h.status, 0);
        ASSERT(m.h.engine >= 0 && m.h.engine < N);
        ASSERT_EQ(seen[m.h.engine], 0);
        seen[m.h.engine] = 1;
        cpar_msg_close(&m);
    }
    fx_client(&f, &n, NULL);
    ASSERT_EQ(n, N);
    for (int i = 0; i < N; i++)
        zmq_close(socks[i]);
    free(socks);
    free(seen);
    free(fx_stop(&f));
    return 0;
}

/* An engine's REPLY or STREAM naming another engine in its `engine` field is dropped (a
 * client would otherwise take it as that engine's answer and unpin its buffers early);
 * the same engine's honest messages pass. */
TEST_IMPL(reply_with_another_engines_id_dropped)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t a[16], got[16];
    int32_t both[2] = {0, 1};
    char *log;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 100), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 101), 1);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_APPLY, both, 2, "work", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "work", got);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "work", got);
    /* Engine 0 claims to be engine 1, on a STREAM and on the REPLY; then it answers
     * honestly. Its messages arrive in order, so the client's first ones must be the
     * honest ones. */
    fx_engine_reply(&f, e0, CPAR_MSG_STREAM, 1, a, "forged out");
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 1, a, "forged");
    fx_engine_reply(&f, e0, CPAR_MSG_STREAM, 0, a, "out");
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "honest 0");
    fx_client_get(&f, cl, CPAR_MSG_STREAM, 0, a, "out");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, a, "honest 0");
    /* Engine 1's request is still outstanding: the forged REPLY did not answer it. */
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, a, "honest 1");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 1, a, "honest 1");
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "dropped STREAM from engine 0 claiming to be engine 1");
    ASSERT_STR_CONTAINS(log, "dropped REPLY from engine 0 claiming to be engine 1");
    free(log);
    return 0;
}

/* INTERRUPT and RELEASE get the duplicate check of every fan-out: a list naming an engine
 * twice is refused whole (ERROR EINVAL naming it) and nothing is forwarded. */
TEST_IMPL(interrupt_and_release_duplicates_refused)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t a[16], b[16], got[16];
    int32_t dup[3] = {1, 0, 1}, ok[2] = {0, 1};
    const int types[2] = {CPAR_MSG_INTERRUPT, CPAR_MSG_RELEASE};
    const char *text;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    for (int k = 0; k < 2; k++) {
        fx_request(&f, cl, types[k], dup, 3, "dup", a);
        text = fx_client_error(&f, cl, CPAR_EINVAL, a);
        ASSERT_STR_CONTAINS(text, "engine 1 is named twice in the target list");
        /* Then a valid one: the first thing each engine gets (the refused one never went). */
        fx_request(&f, cl, types[k], ok, 2, "ok", b);
        fx_engine_take(&f, e0, types[k], "ok", got);
        ASSERT_MEM_EQ(got, b, 16);
        fx_engine_take(&f, e1, types[k], "ok", got);
        ASSERT_MEM_EQ(got, b, 16);
    }
    /* The same check for APPLY: refused with the same error, before any route entry. */
    fx_request(&f, cl, CPAR_MSG_APPLY, dup, 3, "dup", a);
    text = fx_client_error(&f, cl, CPAR_EINVAL, a);
    ASSERT_STR_CONTAINS(text, "named twice");
    free(fx_stop(&f));
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(config_errors),
    TEST_ENTRY(register_and_connect),
    TEST_ENTRY(requested_ids),
    TEST_ENTRY(events_on_register),
    TEST_ENTRY(apply_fan_out_two_clients),
    TEST_ENTRY(unknown_target_and_duplicates),
    TEST_ENTRY(untargeted_and_wrong_direction),
    TEST_ENTRY(shm_token_to_clients),
    TEST_ENTRY(interrupt_forwarded),
    TEST_ENTRY(release_forwarded),
    TEST_ENTRY(client_gone_reply_dropped),
    TEST_ENTRY(many_requests),
    TEST_ENTRY(registration_storm),
    TEST_ENTRY(reply_with_another_engines_id_dropped),
    TEST_ENTRY(interrupt_and_release_duplicates_refused),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
