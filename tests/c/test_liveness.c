/* Tests of the controller's liveness and robustness: heartbeats, engine death by silence
 * or closed connection, shutdown, stop, signals, and hostile input (ctlfx.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

TEST_IMPL(heartbeat_echo)
{
    fx f;
    void *e0;
    cpar_msg m;
    uint8_t mid[16];

    fx_start(&f, 10000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    th_msg(&m, CPAR_MSG_HEARTBEAT);
    m.h.engine = 0;
    memcpy(mid, m.h.msg_id, 16);
    th_send(e0, f.s, &m);
    th_expect(e0, f.s, CPAR_MSG_HEARTBEAT, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, 16);
    ASSERT_EQ(m.h.engine, 0);
    cpar_msg_close(&m);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(heartbeat_silence_kills)
{
    fx f;
    void *e0, *cl;
    uint8_t a[16], got[16];
    int32_t t[1] = {0};
    const char *text;
    cpar_msg m;
    char *log;

    fx_start(&f, 1000);
    cl = fx_client(&f, NULL, NULL);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    fx_client_event(&f, cl, 0, 1);
    fx_heartbeat(&f, e0, 0);
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "slow", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "slow", got);
    /* The engine never beats: its request fails, then clients hear it is gone. */
    text = fx_client_error(&f, cl, CPAR_EENGINEDEAD, a);
    ASSERT_STR_CONTAINS(text, "engine 0 died (heartbeat silent for");
    fx_client_event(&f, cl, 0, 0);
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "late", a);
    fx_client_error(&f, cl, CPAR_ENOENGINE, a);
    /* The dead engine speaks again: its heartbeat is answered with SHUTDOWN and its late
     * REPLY is dropped. */
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, got, "late reply");
    th_msg(&m, CPAR_MSG_HEARTBEAT);
    m.h.engine = 0;
    th_send(e0, f.s, &m);
    th_expect(e0, f.s, CPAR_MSG_SHUTDOWN, &m);
    ASSERT_EQ(m.h.status, CPAR_EENGINEDEAD);
    cpar_msg_close(&m);
    /* The next engine gets a new id. */
    ASSERT_EQ(fx_engine(&f, &e0, 2), 1);
    fx_client_event(&f, cl, 1, 1);
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "engine 0 (pid 1, host fakehost) died: heartbeat silent for");
    free(log);
    return 0;
}

TEST_IMPL(connection_close_kills)
{
    fx f;
    void *e0, *e1, *cl;
    uint8_t a[16], got[16];
    int32_t both[2] = {0, 1}, t1[1] = {1};
    const char *text;

    fx_start(&f, 60000); /* heartbeats cannot be the reason */
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_APPLY, both, 2, "work", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "work", got);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "work", got);
    fx_close(&f, e0);
    text = fx_client_error(&f, cl, CPAR_EENGINEDEAD, a);
    ASSERT_STR_CONTAINS(text, "engine 0 died (connection closed)");
    fx_client_event(&f, cl, 0, 0);
    /* Engine 1 is unaffected. */
    fx_engine_reply(&f, e1, CPAR_MSG_REPLY, 1, a, "fine");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 1, a, "fine");
    fx_request(&f, cl, CPAR_MSG_APPLY, t1, 1, "more", a);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "more", got);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(last_reply_before_close_delivered)
{
    fx f;
    void *e0, *cl;
    uint8_t a[16], got[16];
    int32_t t[1] = {0};
    int linger = 5000;

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    for (int round = 0; round < 20; round++) {
        void *e;
        int32_t id = fx_engine(&f, &e, 10 + round);
        t[0] = id;
        fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "last", a);
        fx_engine_take(&f, e, CPAR_MSG_APPLY, "last", got);
        /* The engine answers and closes at once: the answer still arrives, no error. */
        fx_engine_reply(&f, e, CPAR_MSG_REPLY, id, a, "final");
        ASSERT_OK(zmq_setsockopt(e, ZMQ_LINGER, &linger, sizeof(linger)));
        fx_close(&f, e);
        fx_client_get(&f, cl, CPAR_MSG_REPLY, id, a, "final");
        fx_client_event(&f, cl, id, 0);
    }
    fx_client(&f, NULL, NULL);
    free(fx_stop(&f));
    return 0;
}

/* Sends raw frames as one multipart message. */
static void
send_raw(void *sock, const void *const *frames, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ASSERT(zmq_send(sock, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

/* A signed header of `type` over the given frames, with header fields then overridden. */
static void
make_header(cpar_signer *s, uint8_t hdr[CPAR_WIRE_HEADER_SIZE], int type, uint32_t nframes,
            uint64_t paylen, const void *const *frames, const size_t *lens, size_t n,
            uint8_t mid[16])
{
    cpar_header h;
    memset(&h, 0, sizeof(h));
    h.type = (uint8_t)type;
    h.nframes = nframes;
    h.paylen = paylen;
    h.target = h.engine = -1;
    th_id(h.msg_id);
    if (mid)
        memcpy(mid, h.msg_id, 16);
    cpar_wire_header_encode(&h, hdr);
    ASSERT_OK(cpar_signer_begin(s));
    ASSERT_OK(cpar_signer_update(s, hdr, CPAR_WIRE_SIGNED_SIZE));
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(cpar_signer_update(s, frames[i], lens[i]));
    ASSERT_OK(cpar_signer_finish(s, hdr + CPAR_WIRE_SIGNED_SIZE));
}

/* The next message on a client socket is the controller's unsigned "bad signature" notice:
 * an ERROR with status CPAR_ESIG, no parent and an all-zero tag (nothing signed). */
static void
expect_unsigned_notice(void *sock)
{
    uint8_t buf[CPAR_WIRE_HEADER_SIZE + 1], zero[CPAR_SIGN_SIZE] = {0}, none[16] = {0};
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    cpar_header h;
    int more = 0;
    size_t more_len = sizeof(more);
    ASSERT_EQ(zmq_poll(&item, 1, TH_WAIT_MS), 1);
    ASSERT_EQ(zmq_recv(sock, buf, sizeof(buf), 0), CPAR_WIRE_HEADER_SIZE);
    ASSERT_OK(zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len));
    ASSERT_EQ(more, 0);
    ASSERT_OK(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &h));
    ASSERT_EQ(h.type, CPAR_MSG_ERROR);
    ASSERT_EQ(h.status, CPAR_ESIG);
    ASSERT_EQ(h.nframes, 0);
    ASSERT_MEM_EQ(h.parent, none, 16);
    ASSERT_MEM_EQ(buf + CPAR_WIRE_SIGNED_SIZE, zero, CPAR_SIGN_SIZE);
}

/* Nothing came back for the garbage: a CONNECT on the same socket is answered first. */
static void
expect_only_connect_reply(fx *f, void *sock)
{
    cpar_msg m;
    uint8_t mid[16];
    th_msg(&m, CPAR_MSG_CONNECT);
    memcpy(mid, m.h.msg_id, 16);
    th_send(sock, f->s, &m);
    ASSERT_OK(th_recv(sock, f->s, &m, TH_WAIT_MS));
    ASSERT_EQ(m.h.type, CPAR_MSG_CONNECT_REPLY);
    ASSERT_MEM_EQ(m.h.parent, mid, 16);
    cpar_msg_close(&m);
}

static void
send_garbage(fx *f, void *sock, int is_client)
{
    uint8_t rnd[4096], hdr[CPAR_WIRE_HEADER_SIZE], mid[16];
    const void *fr[4];
    size_t ln[4];
    cpar_signer *other = th_signer_key("another key");
    const char *pay = "print(1)";
    uint8_t tgt[4] = {0, 0, 0, 0};

    srand(42);
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)rand();
    /* Random blobs of many sizes, one and three frames. */
    for (size_t k = 0; k < 40; k++) {
        size_t sizes[3] = {k * 37 % 300, 112, k * 101 % 4096};
        fr[0] = rnd + k;
        ln[0] = sizes[0];
        send_raw(sock, fr, ln, 1);
        fr[0] = rnd;
        fr[1] = rnd + 7;
        fr[2] = rnd + 13;
        ln[0] = sizes[1];
        ln[1] = 3;
        ln[2] = sizes[2] < 4000 ? sizes[2] : 4000;
        send_raw(sock, fr, ln, 3);
    }
    /* Truncated and over-long headers of a valid CONNECT. */
    make_header(f->s, hdr, CPAR_MSG_CONNECT, 0, 0, NULL, NULL, 0, NULL);
    fr[0] = hdr;
    ln[0] = 50;
    send_raw(sock, fr, ln, 1);
    memcpy(rnd, hdr, sizeof(hdr));
    fr[0] = rnd;
    ln[0] = sizeof(hdr) + 1;
    send_raw(sock, fr, ln, 1);
    /* Signed with another key: a client gets an unsigned notice (nothing about its id). */
    fr[1] = tgt;
    ln[1] = 4;
    fr[2] = pay;
    ln[2] = strlen(pay);
    make_header(other, hdr, CPAR_MSG_EXECUTE, 2, 4 + ln[2], fr + 1, ln + 1, 2, mid);
    hdr[6] = CPAR_FLAG_TARGETED;
    fr[0] = hdr;
    ln[0] = sizeof(hdr);
    send_raw(sock, fr, ln, 3);
    if (is_client)
        expect_unsigned_notice(sock);
    /* paylen and nframes that lie; a frame missing; a zeroed tag: no answer (a second bad
     * signature from the same identity gets no second notice). */
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 2, (uint64_t)1 << 62, fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 3);
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 0x80000000u, 4 + ln[2], fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 3);
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 2, 4 + ln[2], fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 2);
    memset(hdr + CPAR_WIRE_SIGNED_SIZE, 0, CPAR_SIGN_SIZE);
    send_raw(sock, fr, ln, 3);
    /* Unknown type and version, signed correctly. */
    make_header(f->s, hdr, CPAR_MSG_CONNECT, 0, 0, NULL, NULL, 0, mid);
    hdr[5] = 200;
    send_raw(sock, fr, ln, 1);
    hdr[5] = CPAR_MSG_CONNECT;
    hdr[4] = 9;
    send_raw(sock, fr, ln, 1);
    if (is_client)
        expect_only_connect_reply(f, sock);
    cpar_signer_free(other);
}

TEST_IMPL(garbage_from_clients_and_engines)
{
    fx f;
    void *e0, *cl, *bad, *ebad;
    uint8_t a[16], got[16];
    int32_t t[1] = {0};
    size_t n = 0;
    char *log;

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cl = fx_client(&f, NULL, NULL);
    bad = fx_dealer(&f, 0);
    ebad = fx_dealer(&f, 1);
    send_garbage(&f, bad, 1);
    send_garbage(&f, ebad, 0);
    send_garbage(&f, cl, 1);
    /* A forged REPLY from an unknown engine identity is dropped. */
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "real", a);
    fx_engine_reply(&f, ebad, CPAR_MSG_REPLY, 0, a, "forged");
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "real", got);
    fx_engine_reply(&f, e0, CPAR_MSG_REPLY, 0, a, "genuine");
    fx_client_get(&f, cl, CPAR_MSG_REPLY, 0, a, "genuine");
    /* Old and new clients are served. */
    fx_client(&f, &n, NULL);
    ASSERT_EQ(n, 1);
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "dropped a message from a client (identity ");
    ASSERT_STR_CONTAINS(log, "dropped a message from an engine (identity ");
    ASSERT_STR_CONTAINS(log, "): malformed message (1 of this kind so far)");
    ASSERT_STR_CONTAINS(log, "): missing or wrong message signature");
    free(log);
    return 0;
}

TEST_IMPL(shutdown_targeted)
{
    fx f;
    void *e0, *e1, *cl;
    cpar_msg m;
    uint8_t mid[16], got[16];
    int32_t t[1] = {1}, t0[1] = {0};

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    th_msg(&m, CPAR_MSG_SHUTDOWN);
    memcpy(mid, m.h.msg_id, 16);
    th_targets(&m, t, 1);
    th_send(cl, f.s, &m);
    th_expect(e1, f.s, CPAR_MSG_SHUTDOWN, &m);
    ASSERT_EQ(m.h.target, 1);
    cpar_msg_close(&m);
    th_expect(cl, f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, 16);
    cpar_msg_close(&m);
    /* A stopping engine takes no new work; the other one does. */
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "x", mid);
    fx_client_error(&f, cl, CPAR_ENOENGINE, mid);
    fx_close(&f, e1);
    fx_client_event(&f, cl, 1, 0);
    fx_request(&f, cl, CPAR_MSG_APPLY, t0, 1, "y", mid);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "y", got);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(shutdown_hub_ends_run)
{
    fx f;
    void *e0, *e1, *cl;
    cpar_msg m;
    uint8_t mid[16], a[16], got[16];
    int32_t t[1] = {1};
    char *log;

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    ASSERT_EQ(fx_engine(&f, &e1, 2), 1);
    cl = fx_client(&f, NULL, NULL);
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "unfinished", a);
    fx_engine_take(&f, e1, CPAR_MSG_APPLY, "unfinished", got);
    th_msg(&m, CPAR_MSG_SHUTDOWN);
    m.h.flags = CPAR_FLAG_HUB;
    memcpy(mid, m.h.msg_id, 16);
    th_send(cl, f.s, &m);
    th_expect(cl, f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, 16);
    cpar_msg_close(&m);
    th_expect(e0, f.s, CPAR_MSG_SHUTDOWN, &m);
    cpar_msg_close(&m);
    th_expect(e1, f.s, CPAR_MSG_SHUTDOWN, &m);
    cpar_msg_close(&m);
    /* New engines are refused while the hub stops. */
    {
        void *late;
        int32_t id;
        ASSERT_EQ(fx_engine_try(&f, &late, -1, 9, &id), CPAR_ESHUTDOWN);
    }
    /* Engines leave; the unanswered request fails; run() returns by itself. */
    fx_close(&f, e0);
    fx_close(&f, e1);
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, a);
    ASSERT_OK(fx_join(&f));
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "controller stopping");
    ASSERT_STR_CONTAINS(log, "engine 1 (pid 2, host fakehost) stopped");
    free(log);
    return 0;
}

TEST_IMPL(stop_tells_engines)
{
    fx f;
    void *e0;
    cpar_msg m;

    fx_start(&f, 60000);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    cpar_controller_stop(f.c);
    ASSERT_OK(fx_join(&f));
    th_expect(e0, f.s, CPAR_MSG_SHUTDOWN, &m);
    cpar_msg_close(&m);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(shutdown_hub_grace)
{
    fx f;
    void *e0, *cl;
    cpar_msg m;
    uint8_t a[16], got[16];
    int32_t t[1] = {0};

    fx_start(&f, 1000);
    cl = fx_client(&f, NULL, NULL);
    ASSERT_EQ(fx_engine(&f, &e0, 1), 0);
    fx_client_event(&f, cl, 0, 1);
    fx_heartbeat(&f, e0, 0);
    fx_request(&f, cl, CPAR_MSG_APPLY, t, 1, "stuck", a);
    fx_engine_take(&f, e0, CPAR_MSG_APPLY, "stuck", got);
    th_msg(&m, CPAR_MSG_SHUTDOWN);
    m.h.flags = CPAR_FLAG_HUB;
    th_send(cl, f.s, &m);
    th_expect(cl, f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
    cpar_msg_close(&m);
    /* The engine neither answers nor leaves: the controller ends after its grace period
     * and the request it owed fails. */
    fx_client_error(&f, cl, CPAR_EENGINEDEAD, a);
    ASSERT_OK(fx_join(&f));
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(signal_stops)
{
    fx f;
    struct sigaction before, after;

    fx_start(&f, 60000);
    sigaction(SIGTERM, NULL, &before);
    cpar_controller_install_signal_stop(f.c);
    ASSERT_OK(raise(SIGTERM)); /* handled: the process lives, the loop ends */
    ASSERT_OK(fx_join(&f));
    free(fx_stop(&f));
    /* Freeing the controller put the previous handler back. */
    sigaction(SIGTERM, NULL, &after);
    ASSERT(after.sa_handler == before.sa_handler);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(heartbeat_echo),
    TEST_ENTRY(heartbeat_silence_kills),
    TEST_ENTRY(connection_close_kills),
    TEST_ENTRY(last_reply_before_close_delivered),
    TEST_ENTRY(garbage_from_clients_and_engines),
    TEST_ENTRY(shutdown_targeted),
    TEST_ENTRY(shutdown_hub_ends_run),
    TEST_ENTRY(stop_tells_engines),
    TEST_ENTRY(shutdown_hub_grace),
    TEST_ENTRY(signal_stops),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
