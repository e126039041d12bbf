/* Coalesced replies (docs/protocol.md, "Coalesced replies"): a real controller in a
 * thread, fake engines and clients (ctlfx.h). An EXECUTE/APPLY with the COALESCE flag is
 * answered by one REPLY carrying each target's own message once all are in; an engine
 * that dies mid-request is in it as its ERROR; what the controller holds is bounded
 * (CPAR_COALESCE_MAX_BYTES): past it, the replies go one by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfx.h"
#include "errors.h"
#include "test.h"

#define MAX_PARTS 8

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A COALESCE request with one body frame to targets [0, n). */
static void
request(fx *f, void *client, const int32_t *targets, size_t n, const char *body,
        uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_APPLY);
    th_targets(&m, targets, n);
    m.h.flags |= CPAR_FLAG_COALESCE;
    th_add_str(&m, body);
    memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    th_send(client, f->s, &m);
}

/* Receives the coalesced REPLY about parent and checks its layout; each part (checked
 * and decoded as if received alone) goes to parts[]; returns their number. */
static size_t
get_coalesced(fx *f, void *client, const uint8_t *parent, cpar_msg parts[MAX_PARTS])
{
    cpar_msg m;
    const uint8_t *ix;
    size_t count, pos = 1;
    th_expect(client, f->s, CPAR_MSG_REPLY, &m);
    ASSERT(m.h.flags & CPAR_FLAG_COALESCE);
    ASSERT_EQ(m.h.engine, CPAR_NO_ENGINE);
    ASSERT_MEM_EQ(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    ASSERT_GE(m.nframes, 1);
    ix = zmq_msg_data(&m.frames[0]);
    count = le32(ix);
    ASSERT_LE(count, MAX_PARTS);
    ASSERT_EQ(zmq_msg_size(&m.frames[0]), 4 + 4 * count);
    for (size_t k = 0; k < count; k++) {
        size_t n = 1 + le32(ix + 4 + 4 * k);
        zmq_msg_t raw[8];
        ASSERT_LE(n, 8);
        ASSERT_LE(pos + n, m.nframes);
        for (size_t j = 0; j < n; j++) {
            zmq_msg_init(&raw[j]);
            ASSERT_OK(zmq_msg_copy(&raw[j], &m.frames[pos + j]));
        }
        pos += n;
        ASSERT_OK(cpar_wire_parse(f->s, raw, n, &parts[k]));
        ASSERT_MEM_EQ(parts[k].h.parent, parent, CPAR_WIRE_ID_SIZE);
    }
    ASSERT_EQ(pos, m.nframes);
    cpar_msg_close(&m);
    return count;
}

static void
close_parts(cpar_msg *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cpar_msg_close(&parts[i]);
}

TEST_IMPL(coalesced_reply_after_all_engines)
{
    fx f;
    void *e[2], *client;
    int32_t both[2] = {1, 0};
    uint8_t mid[16], got[16];
    cpar_msg parts[MAX_PARTS];
    char text[64];
    char *log;

    fx_start(&f, FX_HB_LONG);
    client = fx_two_engines(&f, e);
    request(&f, client, both, 2, "f", mid);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    /* Output is not held; the first reply is. */
    fx_engine_reply(&f, e[1], CPAR_MSG_STREAM, 1, mid, "out");
    fx_client_get(&f, client, CPAR_MSG_STREAM, 1, mid, "out");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid, "one");
    fx_quiet(&f, client, FX_QUIET_MS);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid, "zero");
    ASSERT_EQ(get_coalesced(&f, client, mid, parts), 2);
    /* Ordered by engine id; each is the engine's own signed REPLY. */
    ASSERT_EQ(parts[0].h.type, CPAR_MSG_REPLY);
    ASSERT_EQ(parts[0].h.engine, 0);
    ASSERT(strcmp(th_frame_str(&parts[0], 0, text, sizeof(text)), "zero") == 0);
    ASSERT_EQ(parts[1].h.type, CPAR_MSG_REPLY);
    ASSERT_EQ(parts[1].h.engine, 1);
    ASSERT(strcmp(th_frame_str(&parts[1], 0, text, sizeof(text)), "one") == 0);
    close_parts(parts, 2);
    /* The same msg id may be used again once answered; a request without the flag is
     * answered reply by reply. */
    fx_request_id(&f, client, CPAR_MSG_APPLY, both, 2, "g", mid, NULL);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "g", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "g", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid, "a");
    fx_client_get(&f, client, CPAR_MSG_REPLY, 0, mid, "a");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid, "b");
    fx_client_get(&f, client, CPAR_MSG_REPLY, 1, mid, "b");
    log = fx_stop(&f);
    free(log);
    return 0;
}

TEST_IMPL(coalesced_single_target)
{
    fx f;
    void *e[2], *client;
    int32_t one[1] = {1};
    uint8_t mid[16], got[16];
    cpar_msg parts[MAX_PARTS];

    fx_start(&f, FX_HB_LONG);
    client = fx_two_engines(&f, e);
    request(&f, client, one, 1, "f", mid);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid, "x");
    ASSERT_EQ(get_coalesced(&f, client, mid, parts), 1);
    ASSERT_EQ(parts[0].h.engine, 1);
    close_parts(parts, 1);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(engine_death_mid_request_becomes_its_error)
{
    fx f;
    void *e[3], *client;
    int32_t all[3] = {0, 1, 2};
    uint8_t mid[16], got[16];
    cpar_msg parts[MAX_PARTS];
    char text[256];
    char *log;

    fx_start(&f, FX_HB_LONG);
    ASSERT_EQ(fx_engine(&f, &e[0], 100), 0);
    ASSERT_EQ(fx_engine(&f, &e[1], 101), 1);
    ASSERT_EQ(fx_engine(&f, &e[2], 102), 2);
    client = fx_client(&f, NULL, NULL);
    request(&f, client, all, 3, "f", mid);
    for (int i = 0; i < 3; i++)
        fx_engine_take(&f, e[i], CPAR_MSG_APPLY, "f", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid, "zero");
    fx_engine_reply(&f, e[2], CPAR_MSG_REPLY, 2, mid, "two");
    fx_quiet(&f, client, FX_QUIET_MS);
    fx_close(&f, e[1]); /* engine 1 dies before answering */
    ASSERT_EQ(get_coalesced(&f, client, mid, parts), 3);
    ASSERT_EQ(parts[0].h.type, CPAR_MSG_REPLY);
    ASSERT(strcmp(th_frame_str(&parts[0], 0, text, sizeof(text)), "zero") == 0);
    ASSERT_EQ(parts[1].h.type, CPAR_MSG_ERROR);
    ASSERT_EQ(parts[1].h.engine, 1);
    ASSERT_EQ(parts[1].h.status, CPAR_EENGINEDEAD);
    ASSERT_STR_CONTAINS(th_frame_str(&parts[1], 0, text, sizeof(text)), "engine 1 died");
    ASSERT_EQ(parts[2].h.type, CPAR_MSG_REPLY);
    ASSERT(strcmp(th_frame_str(&parts[2], 0, text, sizeof(text)), "two") == 0);
    close_parts(parts, 3);
    fx_client_event(&f, client, 1, 0);
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "engine 1 (pid 101");
    free(log);
    return 0;
}

TEST_IMPL(all_engines_die)
{
    fx f;
    void *e[2], *client;
    int32_t both[2] = {0, 1};
    uint8_t mid[16], got[16];
    cpar_msg parts[MAX_PARTS];

    fx_start(&f, FX_HB_LONG);
    client = fx_two_engines(&f, e);
    request(&f, client, both, 2, "f", mid);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    fx_close(&f, e[0]);
    fx_close(&f, e[1]);
    ASSERT_EQ(get_coalesced(&f, client, mid, parts), 2);
    ASSERT_EQ(parts[0].h.type, CPAR_MSG_ERROR);
    ASSERT_EQ(parts[1].h.type, CPAR_MSG_ERROR);
    ASSERT_EQ(parts[0].h.status, CPAR_EENGINEDEAD);
    ASSERT_EQ(parts[1].h.status, CPAR_EENGINEDEAD);
    close_parts(parts, 2);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(bound_reached_replies_go_one_by_one)
{
    fx f;
    void *e[2], *client;
    int32_t both[2] = {0, 1};
    uint8_t mid[16], mid2[16], got[16];
    cpar_msg parts[MAX_PARTS];
    char big[400];
    char *log;

    /* Each reply holds its 112-byte header and its body: 300 bytes pass the bound. */
    setenv("CPAR_COALESCE_MAX_BYTES", "300", 1);
    fx_start(&f, FX_HB_LONG);
    unsetenv("CPAR_COALESCE_MAX_BYTES");
    client = fx_two_engines(&f, e);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    request(&f, client, both, 2, "f", mid);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid, big);
    {
        cpar_msg m; /* forwarded at once, unchanged: the bound is passed */
        th_expect(client, f.s, CPAR_MSG_REPLY, &m);
        ASSERT(!(m.h.flags & CPAR_FLAG_COALESCE));
        ASSERT_EQ(m.h.engine, 0);
        ASSERT_EQ(zmq_msg_size(&m.frames[0]), strlen(big));
        cpar_msg_close(&m);
    }
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid, "small");
    fx_client_get(&f, client, CPAR_MSG_REPLY, 1, mid, "small");
    /* Small replies still coalesce (what was held was given back). */
    request(&f, client, both, 2, "g", mid2);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "g", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "g", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid2, "a");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid2, "b");
    ASSERT_EQ(get_coalesced(&f, client, mid2, parts), 2);
    close_parts(parts, 2);
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "coalescing ended early");
    ASSERT_STR_CONTAINS(log, "CPAR_COALESCE_MAX_BYTES");
    free(log);
    return 0;
}

TEST_IMPL(bound_on_requests_held)
{
    fx f;
    void *e[2], *client;
    int32_t both[2] = {0, 1};
    uint8_t m1[16], m2[16], got[16];
    cpar_msg parts[MAX_PARTS];

    setenv("CPAR_COALESCE_MAX_REQUESTS", "1", 1);
    fx_start(&f, FX_HB_LONG);
    unsetenv("CPAR_COALESCE_MAX_REQUESTS");
    client = fx_two_engines(&f, e);
    request(&f, client, both, 2, "f", m1);
    request(&f, client, both, 2, "g", m2); /* over the bound: answered one by one */
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "g", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "g", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, m2, "g0");
    fx_client_get(&f, client, CPAR_MSG_REPLY, 0, m2, "g0");
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, m1, "f0");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, m2, "g1");
    fx_client_get(&f, client, CPAR_MSG_REPLY, 1, m2, "g1");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, m1, "f1");
    ASSERT_EQ(get_coalesced(&f, client, m1, parts), 2);
    close_parts(parts, 2);
    free(fx_stop(&f));
    return 0;
}

TEST_IMPL(client_gone_while_held)
{
    fx f;
    void *e[2], *client, *fresh;
    int32_t both[2] = {0, 1};
    uint8_t mid[16], mid2[16], got[16];
    cpar_msg parts[MAX_PARTS], m;
    char *log;

    fx_start(&f, FX_HB_LONG);
    client = fx_two_engines(&f, e);
    request(&f, client, both, 2, "f", mid);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "f", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "f", got);
    /* A held shared-memory reply (its seal entry names the engine's pid, 100): released on
     * the client's behalf when the client goes, not before. */
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = 0;
    m.h.flags = CPAR_FLAG_SHM;
    memcpy(m.h.parent, mid, 16);
    th_add_str(&m, "result");
    {
        /* a descriptor table naming the engine's pid (100), as the controller checks */
        uint8_t table[24] = {0xff, 0xff, 0xff, 0xff, 100};
        ASSERT_OK(cpar_msg_add_copy(&m, table, sizeof(table)));
    }
    th_send(e[0], f.s, &m);
    fx_quiet(&f, e[0], FX_QUIET_MS);
    fx_close(&f, client);
    th_expect(e[0], f.s, CPAR_MSG_RELEASE, &m);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[1]), mid, 16);
    cpar_msg_close(&m);
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid, "late");
    /* Another client's coalesced requests are unaffected. */
    fresh = fx_client(&f, NULL, NULL);
    request(&f, fresh, both, 2, "g", mid2);
    fx_engine_take(&f, e[0], CPAR_MSG_APPLY, "g", got);
    fx_engine_take(&f, e[1], CPAR_MSG_APPLY, "g", got);
    fx_engine_reply(&f, e[0], CPAR_MSG_REPLY, 0, mid2, "a");
    fx_engine_reply(&f, e[1], CPAR_MSG_REPLY, 1, mid2, "b");
    ASSERT_EQ(get_coalesced(&f, fresh, mid2, parts), 2);
    close_parts(parts, 2);
    log = fx_stop(&f);
    ASSERT_STR_CONTAINS(log, "gone");
    free(log);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(coalesced_reply_after_all_engines),
    TEST_ENTRY(coalesced_single_target),
    TEST_ENTRY(engine_death_mid_request_becomes_its_error),
    TEST_ENTRY(all_engines_die),
    TEST_ENTRY(bound_reached_replies_go_one_by_one),
    TEST_ENTRY(bound_on_requests_held),
    TEST_ENTRY(client_gone_while_held),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
