/* The client I/O thread (cext/core/clientio.c, clientshm.c) against a real controller
 * started in-process (ctlfx.c) and a fake engine driven from the test thread: connecting,
 * a request and its reply, failures (an unknown engine, a request over the socket limit,
 * a bad URL, the controller going away) and shutdown. Test code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clientio.h"
#include "ctlfx.h"
#include "errors.h"
#include "test.h"

/* Takes messages until one of `type` (about parent when not NULL) arrives within
 * TH_WAIT_MS; returns it (the caller frees it); those before it are dropped. */
static cpar_clientio_item *
take_type(cpar_clientio *io, int type, const uint8_t *parent)
{
    uint64_t deadline = fx_now_ms() + TH_WAIT_MS;
    while (fx_now_ms() < deadline) {
        cpar_clientio_item *list = NULL, *found = NULL, *next;
        size_t n = 0;
        ASSERT_OK(cpar_clientio_take(io, 100, 1, &list, &n)); /* one: the rest stay queued */
        for (cpar_clientio_item *it = list; it; it = next) {
            next = it->next;
            it->next = NULL;
            if (found == NULL && it->m.h.type == type &&
                (parent == NULL || memcmp(it->m.h.parent, parent, CPAR_WIRE_ID_SIZE) == 0))
                found = it;
            else
                cpar_clientio_item_free(it);
        }
        if (found != NULL)
            return found;
    }
    CPAR_TEST_FAIL("no message of type %d within %d ms", type, TH_WAIT_MS);
    return NULL;
}

/* A clientio connected to f's controller (no shared memory) that has had its
 * CONNECT_REPLY; the number of engines it listed goes to *nengines when not NULL. */
static cpar_clientio *
connect_io(fx *f)
{
    char err[256] = "";
    cpar_clientio *io = NULL;
    cpar_clientio_item *it;
    cpar_clientio_stats st;
    ASSERT_OK(cpar_clientio_open(cpar_controller_client_endpoint(f->c), (const uint8_t *)TH_KEY,
                                 strlen(TH_KEY), NULL, CPAR_CLIENTIO_NO_SHM, &io, err,
                                 sizeof(err)));
    ASSERT(strcmp(err, "") == 0);
    it = cpar_clientio_item_new(CPAR_MSG_CONNECT);
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    ASSERT_OK(cpar_msg_add_copy(&it->m, "pid=1", 5));
    ASSERT_OK(cpar_clientio_post(io, it));
    it = take_type(io, CPAR_MSG_CONNECT_REPLY, NULL);
    ASSERT_OK(it->m.h.status);
    cpar_clientio_item_free(it);
    cpar_clientio_get_stats(io, &st);
    ASSERT_EQ(st.connected, 1);
    ASSERT_EQ(st.shm, 0);
    ASSERT_GE(st.sent, 1);
    ASSERT_GE(st.received, 1);
    return io;
}

/* Posts a targeted request of `type` with one body frame; its msg id goes to mid. */
static void
post_request(cpar_clientio *io, int type, int32_t target, const void *body, size_t len,
             uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_clientio_item *it = cpar_clientio_item_new(type);
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    memcpy(mid, it->m.h.msg_id, CPAR_WIRE_ID_SIZE);
    th_targets(&it->m, &target, 1);
    ASSERT_OK(cpar_msg_add_copy(&it->m, body, len));
    ASSERT_OK(cpar_clientio_post(io, it));
}

/* A request reaches the engine; its STREAM and REPLY come back in order. */
TEST_IMPL(clientio_request_reply)
{
    fx f;
    void *eng;
    int32_t id;
    uint8_t mid[CPAR_WIRE_ID_SIZE], got[CPAR_WIRE_ID_SIZE];
    char buf[64];
    cpar_clientio *io;
    cpar_clientio_item *it;
    cpar_clientio_stats st;

    fx_start(&f, FX_HB_LONG);
    id = fx_engine(&f, &eng, 11);
    io = connect_io(&f);
    post_request(io, CPAR_MSG_APPLY, id, "work", 4, mid);
    fx_engine_take(&f, eng, CPAR_MSG_APPLY, "work", got);
    ASSERT(memcmp(mid, got, CPAR_WIRE_ID_SIZE) == 0);
    fx_engine_reply(&f, eng, CPAR_MSG_STREAM, id, mid, "printed");
    fx_engine_reply(&f, eng, CPAR_MSG_REPLY, id, mid, "result");
    it = take_type(io, CPAR_MSG_STREAM, mid);
    ASSERT(strcmp(th_frame_str(&it->m, 0, buf, sizeof(buf)), "printed") == 0);
    cpar_clientio_item_free(it);
    it = take_type(io, CPAR_MSG_REPLY, mid);
    ASSERT_EQ(it->m.h.engine, id);
    ASSERT_EQ(it->m.nframes, 1);
    ASSERT(strcmp(th_frame_str(&it->m, 0, buf, sizeof(buf)), "result") == 0);
    cpar_clientio_item_free(it);
    cpar_clientio_get_stats(io, &st);
    ASSERT_GE(st.sent, 2);
    ASSERT_GE(st.received, 3);
    ASSERT_EQ(st.bad_signature, 0);
    ASSERT_EQ(st.malformed, 0);
    ASSERT_EQ(st.send_failed, 0);
    cpar_clientio_free(io);
    free(fx_stop(&f));
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

/* Refusals: the controller answers a request to an unknown engine with an ERROR, and the
 * I/O thread refuses one over CPAR_SOCKET_MAX itself without sending it. */
TEST_IMPL(clientio_refused)
{
    fx f;
    void *eng;
    int32_t id;
    uint8_t mid[CPAR_WIRE_ID_SIZE];
    char big[256], buf[512];
    cpar_clientio *io;
    cpar_clientio_item *it;
    cpar_clientio_stats st;

    ASSERT_OK(setenv("CPAR_SOCKET_MAX", "200", 1));
    fx_start(&f, FX_HB_LONG);
    id = fx_engine(&f, &eng, 12);
    io = connect_io(&f);
    post_request(io, CPAR_MSG_EXECUTE, id + 5, "nobody", 6, mid);
    it = take_type(io, CPAR_MSG_ERROR, mid);
    ASSERT_EQ(it->m.h.status, CPAR_ENOENGINE);
    cpar_clientio_item_free(it);
    memset(big, 'x', sizeof(big));
    post_request(io, CPAR_MSG_EXECUTE, id, big, sizeof(big), mid);
    it = take_type(io, CPAR_MSG_ERROR, mid);
    ASSERT_EQ(it->m.h.status, CPAR_EINVAL);
    ASSERT_STR_CONTAINS(th_frame_str(&it->m, 0, buf, sizeof(buf)), "CPAR_SOCKET_MAX");
    cpar_clientio_item_free(it);
    cpar_clientio_get_stats(io, &st);
    ASSERT_EQ(st.send_failed, 1);
    /* The connection still works. */
    post_request(io, CPAR_MSG_EXECUTE, id, "small", 5, mid);
    fx_engine_take(&f, eng, CPAR_MSG_EXECUTE, "small", mid);
    fx_engine_reply(&f, eng, CPAR_MSG_REPLY, id, mid, "ok");
    cpar_clientio_item_free(take_type(io, CPAR_MSG_REPLY, mid));
    cpar_clientio_free(io);
    free(fx_stop(&f));
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

/* A URL libzmq cannot connect to, and a key that is too long, fail at once with a
 * message. */
TEST_IMPL(clientio_bad_open)
{
    char err[256] = "";
    cpar_clientio *io = NULL;
    static uint8_t key[CPAR_SIGN_MAX_KEY + 1];
    ASSERT_EQ(cpar_clientio_new("nonsense://here", (const uint8_t *)TH_KEY, strlen(TH_KEY), NULL,
                                &io, err, sizeof(err)),
              CPAR_EZMQ);
    ASSERT(io == NULL);
    ASSERT_STR_CONTAINS(err, "nonsense://here");
    err[0] = '\0';
    ASSERT(cpar_clientio_new("tcp://127.0.0.1:1", key, sizeof(key), NULL, &io, err, sizeof(err)) !=
           CPAR_OK);
    ASSERT(io == NULL && err[0] != '\0');
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

/* The controller goes away: the inbox gets a local ERROR (CPAR_ECLOSED, parent zeros) and
 * the counters show the disconnect. */
TEST_IMPL(clientio_controller_gone)
{
    fx f;
    static const uint8_t zeros[CPAR_WIRE_ID_SIZE];
    cpar_clientio *io;
    cpar_clientio_item *it;
    cpar_clientio_stats st;

    fx_start(&f, FX_HB_LONG);
    io = connect_io(&f);
    free(fx_stop(&f));
    it = take_type(io, CPAR_MSG_ERROR, zeros);
    ASSERT_EQ(it->m.h.status, CPAR_ECLOSED);
    ASSERT_EQ(it->m.h.engine, -1);
    cpar_clientio_item_free(it);
    cpar_clientio_get_stats(io, &st);
    ASSERT_EQ(st.connected, 0);
    ASSERT_GE(st.disconnects, 1);
    cpar_clientio_free(io);
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

/* Shutdown: close is idempotent, wakes a waiter with CPAR_ECLOSED and refuses posts; the
 * messages still queued are discarded. */
TEST_IMPL(clientio_shutdown)
{
    fx f;
    void *eng;
    int32_t id;
    uint8_t mid[CPAR_WIRE_ID_SIZE];
    cpar_clientio *io;
    cpar_clientio_item *list = NULL, *it;
    size_t n = 5;

    fx_start(&f, FX_HB_LONG);
    id = fx_engine(&f, &eng, 13);
    io = connect_io(&f);
    /* A reply left unread in the inbox. */
    post_request(io, CPAR_MSG_APPLY, id, "a", 1, mid);
    fx_engine_take(&f, eng, CPAR_MSG_APPLY, "a", mid);
    fx_engine_reply(&f, eng, CPAR_MSG_REPLY, id, mid, "unread");
    for (uint64_t deadline = fx_now_ms() + TH_WAIT_MS;;) {
        cpar_clientio_stats st;
        cpar_clientio_get_stats(io, &st);
        if (st.received >= 2)
            break;
        ASSERT_LT(fx_now_ms(), deadline);
        usleep(1000);
    }
    ASSERT(!cpar_clientio_closed(io));
    cpar_clientio_close(io);
    cpar_clientio_close(io);
    ASSERT(cpar_clientio_closed(io));
    ASSERT_EQ(cpar_clientio_take(io, 1000, 8, &list, &n), CPAR_ECLOSED);
    ASSERT(list == NULL);
    ASSERT_EQ(n, 0);
    it = cpar_clientio_item_new(CPAR_MSG_EXECUTE);
    ASSERT(it != NULL);
    ASSERT_EQ(cpar_clientio_post(io, it), CPAR_ECLOSED);
    cpar_clientio_free(io);
    free(fx_stop(&f));
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(clientio_request_reply), TEST_ENTRY(clientio_refused),
    TEST_ENTRY(clientio_bad_open),      TEST_ENTRY(clientio_controller_gone),
    TEST_ENTRY(clientio_shutdown),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
