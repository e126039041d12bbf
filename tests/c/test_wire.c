/* Tests of the wire format (cext/core/wire.c): header round trip, every malformed shape,
 * signed send/receive over real sockets, forwarding, target lists. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "helpers.h"
#include "test.h"

/* A header with every field set to a distinct value. */
static void
full_header(cpar_header *h)
{
    memset(h, 0, sizeof(*h));
    h->type = CPAR_MSG_REPLY;
    h->flags = CPAR_FLAG_STDERR | CPAR_FLAG_TARGETED;
    h->nframes = 3;
    h->target = -1;
    h->engine = 123456;
    h->status = CPAR_EENGINEDEAD;
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++) {
        h->msg_id[i] = (uint8_t)(i + 1);
        h->parent[i] = (uint8_t)(0xf0 - i);
    }
    h->t0 = 0x0102030405060708ULL;
    h->t1 = 0xfffffffffffffff0ULL;
    h->paylen = 0x1122334455ULL;
}

TEST_IMPL(header_round_trip)
{
    cpar_header h, d;
    uint8_t buf[CPAR_WIRE_HEADER_SIZE];

    full_header(&h);
    cpar_wire_header_encode(&h, buf);
    ASSERT_EQ(buf[0], 'C');
    ASSERT_EQ(buf[1], 'P');
    ASSERT_EQ(buf[2], 'A');
    ASSERT_EQ(buf[3], 'R');
    ASSERT_EQ(buf[4], CPAR_WIRE_VERSION);
    ASSERT_EQ(buf[5], CPAR_MSG_REPLY);
    for (int i = CPAR_WIRE_SIGNED_SIZE; i < CPAR_WIRE_HEADER_SIZE; i++)
        ASSERT_EQ(buf[i], 0);
    memset(&d, 0xaa, sizeof(d));
    ASSERT_OK(cpar_wire_header_decode(buf, sizeof(buf), &d));
    ASSERT_EQ(d.type, h.type);
    ASSERT_EQ(d.flags, h.flags);
    ASSERT_EQ(d.nframes, h.nframes);
    ASSERT_EQ(d.target, h.target);
    ASSERT_EQ(d.engine, h.engine);
    ASSERT_EQ(d.status, h.status);
    ASSERT_MEM_EQ(d.msg_id, h.msg_id, CPAR_WIRE_ID_SIZE);
    ASSERT_MEM_EQ(d.parent, h.parent, CPAR_WIRE_ID_SIZE);
    ASSERT(d.t0 == h.t0);
    ASSERT(d.t1 == h.t1);
    ASSERT(d.paylen == h.paylen);
    /* Little-endian on the wire whatever the host. */
    ASSERT_EQ(buf[16], 0x40);
    ASSERT_EQ(buf[17], 0xe2);
    ASSERT_EQ(buf[18], 0x01);
    ASSERT_EQ(buf[19], 0x00);
    return 0;
}

TEST_IMPL(header_decode_rejects)
{
    cpar_header h, d;
    uint8_t buf[CPAR_WIRE_HEADER_SIZE + 1];
    static const int bad_types[] = {0, 6, 7, 13, 19, 23, 29, 43, 44, 200, 255};

    full_header(&h);
    cpar_wire_header_encode(&h, buf);
    ASSERT_EQ(cpar_wire_header_decode(buf, 0, &d), CPAR_EPROTO);
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE - 1, &d), CPAR_EPROTO);
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE + 1, &d), CPAR_EPROTO);
    buf[0] ^= 1;
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d), CPAR_EPROTO);
    buf[0] ^= 1;
    buf[4] = 2;
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d), CPAR_EVERSION);
    buf[4] = 0;
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d), CPAR_EVERSION);
    buf[4] = CPAR_WIRE_VERSION;
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        buf[5] = (uint8_t)bad_types[i];
        ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d), CPAR_ETYPE);
    }
    buf[5] = CPAR_MSG_APPLY;
    h.type = CPAR_MSG_APPLY;
    h.nframes = CPAR_WIRE_MAX_FRAMES + 1;
    cpar_wire_header_encode(&h, buf);
    ASSERT_EQ(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d), CPAR_EPROTO);
    h.nframes = CPAR_WIRE_MAX_FRAMES;
    cpar_wire_header_encode(&h, buf);
    ASSERT_OK(cpar_wire_header_decode(buf, CPAR_WIRE_HEADER_SIZE, &d));
    return 0;
}

/* Makes a signed header for frames (with the nframes/paylen they really have unless
 * overridden by the caller afterwards and re-signed with sign_header). */
static void
sign_header(cpar_signer *s, uint8_t hdr[CPAR_WIRE_HEADER_SIZE], const char *const *frames, size_t n)
{
    ASSERT_OK(cpar_signer_begin(s));
    ASSERT_OK(cpar_signer_update(s, hdr, CPAR_WIRE_SIGNED_SIZE));
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(cpar_signer_update(s, frames[i], strlen(frames[i])));
    ASSERT_OK(cpar_signer_finish(s, hdr + CPAR_WIRE_SIGNED_SIZE));
}

static void
make_header(cpar_signer *s, uint8_t hdr[CPAR_WIRE_HEADER_SIZE], int type, const char *const *frames,
            size_t n)
{
    cpar_header h;
    memset(&h, 0, sizeof(h));
    h.type = (uint8_t)type;
    h.target = h.engine = -1;
    h.nframes = (uint32_t)n;
    th_id(h.msg_id);
    for (size_t i = 0; i < n; i++)
        h.paylen += strlen(frames[i]);
    cpar_wire_header_encode(&h, hdr);
    sign_header(s, hdr, frames, n);
}

/* Runs cpar_wire_parse over (hdr of hdrlen bytes, frames...) and returns its code; on
 * success the message is checked against frames and closed. */
static int
parse(cpar_signer *s, const uint8_t *hdr, size_t hdrlen, const char *const *frames, size_t n)
{
    zmq_msg_t parts[8];
    cpar_msg m;
    int rc;

    ASSERT_LT(n, 8);
    zmq_msg_init_size(&parts[0], hdrlen);
    memcpy(zmq_msg_data(&parts[0]), hdr, hdrlen);
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init_size(&parts[i + 1], strlen(frames[i]));
        memcpy(zmq_msg_data(&parts[i + 1]), frames[i], strlen(frames[i]));
    }
    rc = cpar_wire_parse(s, parts, n + 1, &m);
    if (rc == 0) {
        ASSERT_EQ(m.nframes, n);
        ASSERT(m.has_raw);
        ASSERT_MEM_EQ(m.raw, hdr, CPAR_WIRE_HEADER_SIZE);
        for (size_t i = 0; i < n; i++) {
            ASSERT_EQ(zmq_msg_size(&m.frames[i]), strlen(frames[i]));
            ASSERT_MEM_EQ(zmq_msg_data(&m.frames[i]), frames[i], strlen(frames[i]));
        }
    } else {
        ASSERT_EQ(m.nframes, 0);
    }
    cpar_msg_close(&m);
    return rc;
}

TEST_IMPL(parse_valid_and_malformed)
{
    cpar_signer *s = th_signer(), *other = th_signer_key("some other key");
    const char *frames[3] = {"\x01\x00\x00\x00", "payload one", ""};
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE + 8];
    cpar_msg m;

    make_header(s, hdr, CPAR_MSG_APPLY, frames, 3);
    ASSERT_OK(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3));
    /* No parts at all. */
    ASSERT_EQ(cpar_wire_parse(s, NULL, 0, &m), CPAR_EPROTO);
    cpar_msg_close(&m);
    /* Header frame empty, short, long. */
    ASSERT_EQ(parse(s, hdr, 0, frames, 3), CPAR_EPROTO);
    ASSERT_EQ(parse(s, hdr, 50, frames, 3), CPAR_EPROTO);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE - 1, frames, 3), CPAR_EPROTO);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE + 1, frames, 3), CPAR_EPROTO);
    /* nframes disagrees with the frames present: one missing, one extra. */
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 2), CPAR_EPROTO);
    {
        const char *four[4] = {frames[0], frames[1], frames[2], "x"};
        ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, four, 4), CPAR_EPROTO);
    }
    /* paylen disagrees (frames of another size, same count), even when re-signed. */
    {
        const char *longer[3] = {frames[0], "payload one!", ""};
        ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, longer, 3), CPAR_EPROTO);
        hdr[72] ^= 0x40;
        sign_header(s, hdr, frames, 3);
        ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_EPROTO);
        hdr[72] ^= 0x40;
        sign_header(s, hdr, frames, 3);
    }
    /* A payload byte changed: same sizes, wrong tag. */
    {
        const char *changed[3] = {frames[0], "payload One", ""};
        ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, changed, 3), CPAR_ESIG);
    }
    /* A signed header byte changed (target). */
    hdr[12] ^= 1;
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_ESIG);
    hdr[12] ^= 1;
    ASSERT_OK(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3));
    /* Tag changed, zeroed (unsigned), made with another key. */
    hdr[CPAR_WIRE_HEADER_SIZE - 1] ^= 0x80;
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_ESIG);
    memset(hdr + CPAR_WIRE_SIGNED_SIZE, 0, CPAR_SIGN_SIZE);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_ESIG);
    sign_header(other, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_ESIG);
    /* Bad magic, version, type (signed correctly, so only the check itself rejects). */
    make_header(s, hdr, CPAR_MSG_APPLY, frames, 3);
    hdr[1] = 'X';
    sign_header(s, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_EPROTO);
    make_header(s, hdr, CPAR_MSG_APPLY, frames, 3);
    hdr[4] = 7;
    sign_header(s, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_EVERSION);
    make_header(s, hdr, CPAR_MSG_APPLY, frames, 3);
    hdr[5] = 99;
    sign_header(s, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_ETYPE);
    /* nframes beyond the limit. */
    make_header(s, hdr, CPAR_MSG_APPLY, frames, 3);
    hdr[8] = 0x01;
    hdr[9] = 0x10; /* 4097 */
    sign_header(s, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_EPROTO);
    hdr[8] = 0xff;
    hdr[9] = 0xff;
    hdr[10] = 0xff;
    hdr[11] = 0xff;
    sign_header(s, hdr, frames, 3);
    ASSERT_EQ(parse(s, hdr, CPAR_WIRE_HEADER_SIZE, frames, 3), CPAR_EPROTO);
    cpar_signer_free(s);
    cpar_signer_free(other);
    return 0;
}

/* Builds a message with every header field set and three frames. */
static void
full_message(cpar_msg *m)
{
    cpar_header h;
    int32_t t[2] = {3, 1};
    full_header(&h);
    cpar_msg_init(m, CPAR_MSG_APPLY);
    m->h = h;
    m->h.type = CPAR_MSG_APPLY;
    m->h.flags = 0;
    th_targets(m, t, 2);
    th_add_str(m, "pickled call");
    ASSERT_OK(cpar_msg_add_copy(m, "", 0));
}

static void
check_full(const cpar_msg *m)
{
    cpar_header h;
    char buf[64];
    full_header(&h);
    ASSERT_EQ(m->h.type, CPAR_MSG_APPLY);
    ASSERT_EQ(m->h.flags, CPAR_FLAG_TARGETED);
    ASSERT_EQ(m->h.nframes, 3);
    ASSERT_EQ(m->h.target, h.target);
    ASSERT_EQ(m->h.engine, h.engine);
    ASSERT_EQ(m->h.status, h.status);
    ASSERT_MEM_EQ(m->h.msg_id, h.msg_id, CPAR_WIRE_ID_SIZE);
    ASSERT_MEM_EQ(m->h.parent, h.parent, CPAR_WIRE_ID_SIZE);
    ASSERT(m->h.t0 == h.t0);
    ASSERT(m->h.t1 == h.t1);
    ASSERT_EQ(m->h.paylen, 8 + strlen("pickled call"));
    ASSERT_EQ(m->nframes, 3);
    ASSERT_EQ(cpar_wire_targets(m), 2);
    ASSERT_EQ(cpar_wire_target_at(m, 0), 3);
    ASSERT_EQ(cpar_wire_target_at(m, 1), 1);
    ASSERT(strcmp(th_frame_str(m, 1, buf, sizeof(buf)), "pickled call") == 0);
    ASSERT_EQ(zmq_msg_size((zmq_msg_t *)&m->frames[2]), 0);
}

TEST_IMPL(send_recv_pair)
{
    void *ctx = zmq_ctx_new(), *a, *b;
    cpar_signer *s = th_signer(), *other = th_signer_key("wrong");
    cpar_msg m;

    a = zmq_socket(ctx, ZMQ_PAIR);
    b = zmq_socket(ctx, ZMQ_PAIR);
    ASSERT_OK(zmq_bind(a, "inproc://wire-pair"));
    ASSERT_OK(zmq_connect(b, "inproc://wire-pair"));
    ASSERT_EQ(cpar_wire_recv(b, s, 0, NULL, NULL, &m, ZMQ_DONTWAIT), CPAR_EAGAIN);
    full_message(&m);
    ASSERT_OK(cpar_wire_send(a, s, NULL, 0, &m, 0));
    ASSERT_EQ(m.nframes, 0);
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(b, s, &m, TH_WAIT_MS));
    check_full(&m);
    cpar_msg_close(&m);
    /* Received with another key: dropped whole; the next message is read cleanly. */
    full_message(&m);
    ASSERT_OK(cpar_wire_send(a, s, NULL, 0, &m, 0));
    cpar_msg_close(&m);
    full_message(&m);
    ASSERT_OK(cpar_wire_send(a, other, NULL, 0, &m, 0));
    cpar_msg_close(&m);
    ASSERT_EQ(th_recv(b, other, &m, TH_WAIT_MS), CPAR_ESIG);
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(b, other, &m, TH_WAIT_MS));
    check_full(&m);
    cpar_msg_close(&m);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    cpar_signer_free(s);
    cpar_signer_free(other);
    return 0;
}

TEST_IMPL(recv_stays_in_step)
{
    void *ctx = zmq_ctx_new(), *a, *b;
    cpar_signer *s = th_signer();
    cpar_msg m;
    char junk[4] = "abc";

    a = zmq_socket(ctx, ZMQ_PAIR);
    b = zmq_socket(ctx, ZMQ_PAIR);
    ASSERT_OK(zmq_bind(a, "inproc://wire-step"));
    ASSERT_OK(zmq_connect(b, "inproc://wire-step"));
    /* A multipart of garbage, one of more frames than allowed, then a good message. */
    for (int i = 0; i < 5; i++)
        ASSERT(zmq_send(a, junk, 3, i < 4 ? ZMQ_SNDMORE : 0) == 3);
    for (int i = 0; i < CPAR_WIRE_MAX_FRAMES + 10; i++)
        ASSERT(zmq_send(a, junk, 1, i < CPAR_WIRE_MAX_FRAMES + 9 ? ZMQ_SNDMORE : 0) == 1);
    full_message(&m);
    ASSERT_OK(cpar_wire_send(a, s, NULL, 0, &m, 0));
    cpar_msg_close(&m);
    ASSERT_EQ(th_recv(b, s, &m, TH_WAIT_MS), CPAR_EPROTO);
    cpar_msg_close(&m);
    ASSERT_EQ(th_recv(b, s, &m, TH_WAIT_MS), CPAR_EPROTO);
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(b, s, &m, TH_WAIT_MS));
    check_full(&m);
    cpar_msg_close(&m);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    cpar_signer_free(s);
    return 0;
}

/* cpar_wire_send_try: a message the socket refuses stays whole (the caller may try again);
 * one it takes arrives intact and signed. */
TEST_IMPL(send_try_keeps_a_refused_message)
{
    void *ctx = zmq_ctx_new(), *d = zmq_socket(ctx, ZMQ_DEALER), *r;
    cpar_signer *s = th_signer();
    int one = 1, tries = 0, rc;
    char ep[128];
    cpar_msg m;

    /* An ipc path nobody listens on yet. */
    snprintf(ep, sizeof(ep), "ipc:///tmp/cpar-test-wire-try-%d", (int)getpid());
    r = zmq_socket(ctx, ZMQ_ROUTER);
    /* Immediate: no pipe until connected, so the DEALER refuses every message. */
    ASSERT_OK(zmq_setsockopt(d, ZMQ_IMMEDIATE, &one, sizeof(one)));
    ASSERT_OK(zmq_connect(d, ep));
    full_message(&m);
    size_t n = m.nframes;
    ASSERT(n > 0);
    ASSERT_EQ(cpar_wire_send_try(d, s, &m), CPAR_EAGAIN);
    ASSERT_EQ(m.nframes, n);
    ASSERT_EQ(cpar_wire_send_try(d, s, &m), CPAR_EAGAIN);
    ASSERT_EQ(m.nframes, n);
    ASSERT_OK(zmq_bind(r, ep));
    while ((rc = cpar_wire_send_try(d, s, &m)) == CPAR_EAGAIN && tries++ < 1000)
        usleep(1000);
    ASSERT_OK(rc);
    ASSERT_EQ(m.nframes, 0);
    cpar_msg_close(&m);
    {
        uint8_t ident[CPAR_WIRE_MAX_IDENT];
        size_t identlen = 0;
        zmq_pollitem_t item = {.socket = r, .events = ZMQ_POLLIN};
        ASSERT_EQ(zmq_poll(&item, 1, TH_WAIT_MS), 1);
        ASSERT_OK(cpar_wire_recv(r, s, 1, ident, &identlen, &m, 0));
        check_full(&m);
        cpar_msg_close(&m);
    }
    zmq_close(d);
    zmq_close(r);
    zmq_ctx_term(ctx);
    cpar_signer_free(s);
    return 0;
}

TEST_IMPL(router_dealer_and_forward)
{
    void *ctx = zmq_ctx_new(), *router, *d1, *d2, *d3;
    cpar_signer *s = th_signer();
    uint8_t ident[CPAR_WIRE_MAX_IDENT], id2[CPAR_WIRE_MAX_IDENT], id3[CPAR_WIRE_MAX_IDENT];
    size_t identlen = 0, id2len = 0, id3len = 0;
    char ep[128];
    size_t eplen = sizeof(ep);
    int one = 1, fd = -2;
    cpar_msg m;
    zmq_pollitem_t item;

    router = zmq_socket(ctx, ZMQ_ROUTER);
    ASSERT_OK(zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)));
    ASSERT_OK(zmq_bind(router, "tcp://127.0.0.1:*"));
    ASSERT_OK(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen));
    d1 = th_dealer(ctx, ep);
    d2 = th_dealer(ctx, ep);
    d3 = th_dealer(ctx, ep);
    /* d2 and d3 say hello so the router knows their identities. */
    th_msg(&m, CPAR_MSG_CONNECT);
    th_send(d2, s, &m);
    item = (zmq_pollitem_t){.socket = router, .events = ZMQ_POLLIN};
    ASSERT_EQ(zmq_poll(&item, 1, TH_WAIT_MS), 1);
    ASSERT_OK(cpar_wire_recv(router, s, 1, id2, &id2len, &m, 0));
    cpar_msg_close(&m);
    th_msg(&m, CPAR_MSG_CONNECT);
    th_send(d3, s, &m);
    ASSERT_EQ(zmq_poll(&item, 1, TH_WAIT_MS), 1);
    ASSERT_OK(cpar_wire_recv_fd(router, s, 1, id3, &id3len, &fd, &m, 0));
    cpar_msg_close(&m);
    ASSERT(id3len > 0);
    /* d1 sends a full message; the router sees its identity. */
    full_message(&m);
    ASSERT_OK(cpar_wire_send(d1, s, NULL, 0, &m, 0));
    cpar_msg_close(&m);
    ASSERT_EQ(zmq_poll(&item, 1, TH_WAIT_MS), 1);
    ASSERT_OK(cpar_wire_recv(router, s, 1, ident, &identlen, &m, 0));
    ASSERT(identlen > 0);
    check_full(&m);
    /* Forwarded unchanged (signature intact) to d2 keeping the frames, then to d3. */
    ASSERT_OK(cpar_wire_forward(router, id2, id2len, &m, 1));
    ASSERT_EQ(m.nframes, 3);
    ASSERT_OK(cpar_wire_forward(router, id3, id3len, &m, 0));
    ASSERT_EQ(m.nframes, 0);
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(d2, s, &m, TH_WAIT_MS));
    check_full(&m);
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(d3, s, &m, TH_WAIT_MS));
    check_full(&m);
    cpar_msg_close(&m);
    /* The router answers d1 by identity with a freshly signed message. */
    th_msg(&m, CPAR_MSG_ERROR);
    m.h.status = CPAR_ENOENGINE;
    th_add_str(&m, "no engine 7");
    ASSERT_OK(cpar_wire_send(router, s, ident, identlen, &m, 0));
    cpar_msg_close(&m);
    ASSERT_OK(th_recv(d1, s, &m, TH_WAIT_MS));
    ASSERT_EQ(m.h.type, CPAR_MSG_ERROR);
    ASSERT_EQ(m.h.status, CPAR_ENOENGINE);
    cpar_msg_close(&m);
    /* A forward needs a received message. */
    th_msg(&m, CPAR_MSG_ERROR);
    ASSERT_EQ(cpar_wire_forward(router, ident, identlen, &m, 0), CPAR_EINVAL);
    cpar_msg_close(&m);
    /* To an identity that is not connected: an error, not a block. */
    th_msg(&m, CPAR_MSG_ERROR);
    ASSERT_EQ(cpar_wire_send(router, s, "nobody", 6, &m, ZMQ_DONTWAIT), CPAR_EZMQ);
    ASSERT_EQ(zmq_errno(), EHOSTUNREACH);
    cpar_msg_close(&m);
    zmq_close(d1);
    zmq_close(d2);
    zmq_close(d3);
    zmq_close(router);
    zmq_ctx_term(ctx);
    cpar_signer_free(s);
    return 0;
}

TEST_IMPL(targets_parsing)
{
    cpar_msg m;
    int32_t ids[3] = {0, 65535, -1};
    uint8_t *big;
    size_t bigsz = 4 * (CPAR_WIRE_MAX_TARGETS + 1);

    cpar_msg_init(&m, CPAR_MSG_APPLY);
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO); /* no flag, no frame */
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO); /* flag, no frame */
    cpar_msg_close(&m);
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    th_targets(&m, ids, 3);
    ASSERT_EQ(cpar_wire_targets(&m), 3);
    ASSERT_EQ(cpar_wire_target_at(&m, 0), 0);
    ASSERT_EQ(cpar_wire_target_at(&m, 1), 65535);
    ASSERT_EQ(cpar_wire_target_at(&m, 2), -1);
    m.h.flags = 0;
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO); /* frame, no flag */
    cpar_msg_close(&m);
    /* Empty, not a multiple of 4, too long, longest allowed. */
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO);
    cpar_msg_close(&m);
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, "\x01\x00\x00\x00\x02", 5));
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO);
    cpar_msg_close(&m);
    big = calloc(1, bigsz);
    ASSERT(big != NULL);
    big[4 * CPAR_WIRE_MAX_TARGETS - 4] = 9;
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, big, bigsz));
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_EPROTO);
    cpar_msg_close(&m);
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, big, bigsz - 4));
    ASSERT_EQ(cpar_wire_targets(&m), CPAR_WIRE_MAX_TARGETS);
    ASSERT_EQ(cpar_wire_target_at(&m, CPAR_WIRE_MAX_TARGETS - 1), 9);
    cpar_msg_close(&m);
    free(big);
    return 0;
}

TEST_IMPL(msg_frames)
{
    cpar_msg m;
    static char data[] = "zero-copy data";
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    ASSERT_EQ(m.h.target, CPAR_NO_ENGINE);
    ASSERT_EQ(m.h.engine, CPAR_NO_ENGINE);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cpar_msg_add_copy(&m, "abc", 3));
    ASSERT_OK(cpar_msg_add_zerocopy(&m, data, sizeof(data), NULL, NULL));
    {
        zmq_msg_t src;
        zmq_msg_init_size(&src, 10);
        ASSERT_OK(cpar_msg_add_move(&m, &src));
        ASSERT_EQ(zmq_msg_size(&src), 0);
        zmq_msg_close(&src);
    }
    ASSERT_EQ(m.nframes, 102);
    cpar_msg_close(&m);
    ASSERT_EQ(m.nframes, 0);
    cpar_msg_close(&m); /* twice is fine */
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(header_round_trip),
    TEST_ENTRY(header_decode_rejects),
    TEST_ENTRY(parse_valid_and_malformed),
    TEST_ENTRY(send_recv_pair),
    TEST_ENTRY(recv_stays_in_step),
    TEST_ENTRY(router_dealer_and_forward),
    TEST_ENTRY(targets_parsing),
    TEST_ENTRY(msg_frames),
    TEST_ENTRY(send_try_keeps_a_refused_message),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
