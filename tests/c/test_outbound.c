/* Tests of the controller's outbound layer (cext/controller/outbound.h) on its own: a
 * cpar_controller holding only what the layer reads (a client ROUTER, a signer, the
 * registry), and a real DEALER client over TCP that receives and checks what it sends. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "errors.h"
#include "outbound.h"
#include "test.h"

static const uint8_t key[] = "outbound-test-key";

typedef struct ob {
    cpar_controller *c;
    void *dealer;
    int32_t slot;
} ob;

/* A controller with a bound client ROUTER and one connected client "cli" in the registry. */
static void
ob_start(ob *o)
{
    char ep[256];
    size_t len = sizeof(ep);
    zmq_msg_t part;
    cpar_controller *c = calloc(1, sizeof(*c));

    ASSERT(c != NULL);
    memset(o, 0, sizeof(*o));
    o->c = c;
    cpar_registry_init(&c->reg);
    ASSERT_OK(cpar_signer_new(key, sizeof(key) - 1, &c->signer));
    cpar_ids_init(&c->ids, 1, 0);
    c->zctx = zmq_ctx_new();
    c->csock = zmq_socket(c->zctx, ZMQ_ROUTER);
    ASSERT_OK(zmq_bind(c->csock, "tcp://127.0.0.1:*"));
    ASSERT_OK(zmq_getsockopt(c->csock, ZMQ_LAST_ENDPOINT, ep, &len));
    o->dealer = zmq_socket(c->zctx, ZMQ_DEALER);
    ASSERT_OK(zmq_setsockopt(o->dealer, ZMQ_ROUTING_ID, "cli", 3));
    ASSERT_OK(zmq_connect(o->dealer, ep));
    /* One frame each way settles the connection. */
    ASSERT_EQ(zmq_send(o->dealer, "hi", 2, 0), 2);
    zmq_msg_init(&part);
    ASSERT(zmq_msg_recv(&part, c->csock, 0) >= 0); /* identity */
    ASSERT(zmq_msg_recv(&part, c->csock, 0) >= 0); /* "hi" */
    zmq_msg_close(&part);
    o->slot = cpar_registry_client(&c->reg, "cli", 3);
    ASSERT_GE(o->slot, 0);
}

static void
ob_stop(ob *o)
{
    cpar_controller *c = o->c;
    int zero = 0;
    zmq_setsockopt(o->dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c->csock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(o->dealer);
    zmq_close(c->csock);
    zmq_ctx_term(c->zctx);
    cpar_signer_free(c->signer);
    cpar_registry_free(&c->reg);
    free(c->lost_slots);
    free(c);
}

/* Receives one signed message at the client; returns its payload frame 0 as a string. */
static void
ob_expect(ob *o, int type, cpar_msg *m, char *text, size_t textlen)
{
    int timeout = 5000;
    size_t n;
    zmq_setsockopt(o->dealer, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    ASSERT_OK(cpar_wire_recv(o->dealer, o->c->signer, 0, NULL, NULL, m, 0));
    ASSERT_EQ(m->h.type, type);
    text[0] = '\0';
    if (m->nframes >= 1) {
        n = zmq_msg_size(&m->frames[0]);
        ASSERT_LT(n, textlen);
        memcpy(text, zmq_msg_data(&m->frames[0]), n);
        text[n] = '\0';
    }
}

TEST_IMPL(error_helpers)
{
    ob o;
    cpar_msg m;
    char text[600];
    uint8_t parent[CPAR_WIRE_ID_SIZE], zeros[CPAR_WIRE_ID_SIZE] = {0};
    char longfmt[700];

    memset(parent, 0xab, sizeof(parent));
    ob_start(&o);
    cpar__ctlout_error(o.c, o.slot, parent, CPAR_EINVAL, "bad %d", 7);
    ob_expect(&o, CPAR_MSG_ERROR, &m, text, sizeof(text));
    ASSERT_EQ(m.h.status, CPAR_EINVAL);
    ASSERT_EQ(m.h.engine, CPAR_NO_ENGINE);
    ASSERT_MEM_EQ(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    ASSERT(strcmp(text, "bad 7") == 0);
    cpar_msg_close(&m);

    cpar__ctlout_error_about(o.c, o.slot, NULL, 3, CPAR_EENGINEDEAD, "engine %d died", 3);
    ob_expect(&o, CPAR_MSG_ERROR, &m, text, sizeof(text));
    ASSERT_EQ(m.h.status, CPAR_EENGINEDEAD);
    ASSERT_EQ(m.h.engine, 3);
    ASSERT_MEM_EQ(m.h.parent, zeros, CPAR_WIRE_ID_SIZE);
    ASSERT(strcmp(text, "engine 3 died") == 0);
    cpar_msg_close(&m);

    /* Straight to the identity, and a text cut at 511 bytes. */
    memset(longfmt, 'x', sizeof(longfmt) - 1);
    longfmt[sizeof(longfmt) - 1] = '\0';
    cpar__ctlout_error_ident(o.c, (const uint8_t *)"cli", 3, parent, CPAR_ENOMEM, "%s", longfmt);
    ob_expect(&o, CPAR_MSG_ERROR, &m, text, sizeof(text));
    ASSERT_EQ(m.h.status, CPAR_ENOMEM);
    ASSERT_EQ(strlen(text), 511);
    cpar_msg_close(&m);
    ASSERT_EQ(o.c->cnt.client_gone, 0);
    ob_stop(&o);
    return 0;
}

TEST_IMPL(msg_ids_and_format)
{
    ob o;
    cpar_msg a, b;

    ob_start(&o);
    cpar__ctlout_msg_new(o.c, &a, CPAR_MSG_QUERY_REPLY);
    cpar__ctlout_msg_new(o.c, &b, CPAR_MSG_QUERY_REPLY);
    ASSERT_EQ(a.h.type, CPAR_MSG_QUERY_REPLY);
    ASSERT_MEM_EQ(a.h.msg_id, b.h.msg_id, 8); /* one generator's prefix */
    ASSERT(memcmp(a.h.msg_id, b.h.msg_id, CPAR_WIRE_ID_SIZE) != 0);
    ASSERT_GT(a.h.t0, 0);
    cpar_msg_close(&a);
    cpar_msg_close(&b);
    ob_stop(&o);
    return 0;
}

static size_t
fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, f);
    n = cpar__ctlout_vformat(buf, cap, f, ap);
    va_end(ap);
    return n;
}

TEST_IMPL(vformat_truncates)
{
    char buf[8];
    ASSERT_EQ(fmt(buf, sizeof(buf), "%s", "abc"), 3);
    ASSERT(strcmp(buf, "abc") == 0);
    ASSERT_EQ(fmt(buf, sizeof(buf), "%s", "abcdefghij"), 7);
    ASSERT(strcmp(buf, "abcdefg") == 0);
    return 0;
}

TEST_IMPL(client_lost_and_gone)
{
    ob o;
    cpar_msg m;

    ob_start(&o);
    /* A send to a slot with no client is counted, not sent. */
    cpar__ctlout_msg_new(o.c, &m, CPAR_MSG_ENGINE_EVENT);
    cpar__ctlout_send_client(o.c, (uint32_t)o.slot + 5, &m);
    ASSERT_EQ(o.c->cnt.client_gone, 1);
    cpar_msg_close(&m);

    /* Lost: forgotten at once, queued for the safe point that drops its tasks and
     * coalescing (no call up from this layer). */
    cpar__ctlout_client_lost(o.c, (uint32_t)o.slot);
    ASSERT(cpar_registry_client_at(&o.c->reg, (uint32_t)o.slot) == NULL);
    ASSERT_EQ(o.c->cnt.clients_lost, 1);
    ASSERT_EQ(o.c->nlost, 1);
    ASSERT_EQ(o.c->lost_slots[0], (uint32_t)o.slot);
    /* Only once. */
    cpar__ctlout_client_lost(o.c, (uint32_t)o.slot);
    ASSERT_EQ(o.c->nlost, 1);
    ob_stop(&o);
    return 0;
}

TEST_IMPL(fds_push_grows)
{
    int *fds = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cpar__ctlout_fds_push(&fds, &n, &cap, i * 3));
    ASSERT_EQ(n, 100);
    ASSERT_GE(cap, 100);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(fds[i], i * 3);
    free(fds);
    return 0;
}

TEST_IMPL(monitor_disconnect)
{
    ob o;
    void *mon;
    int fd = -2, rc = -1, zero = 0;

    ob_start(&o);
    ASSERT_OK(zmq_socket_monitor(o.c->csock, "inproc://ob-mon", ZMQ_EVENT_DISCONNECTED));
    mon = zmq_socket(o.c->zctx, ZMQ_PAIR);
    ASSERT_OK(zmq_connect(mon, "inproc://ob-mon"));
    ASSERT_EQ(cpar__ctlout_monitor_next(mon, &fd), -1); /* nothing yet */
    zmq_setsockopt(o.dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(o.dealer);
    for (int i = 0; i < 500 && rc < 0; i++) {
        rc = cpar__ctlout_monitor_next(mon, &fd);
        if (rc < 0)
            usleep(10000);
    }
    ASSERT_EQ(rc, 1);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(cpar__ctlout_monitor_next(mon, &fd), -1);
    zmq_socket_monitor(o.c->csock, NULL, 0);
    zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(mon);
    o.dealer = zmq_socket(o.c->zctx, ZMQ_DEALER); /* for ob_stop */
    ob_stop(&o);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(error_helpers),     TEST_ENTRY(msg_ids_and_format),
        TEST_ENTRY(vformat_truncates), TEST_ENTRY(client_lost_and_gone),
        TEST_ENTRY(fds_push_grows),    TEST_ENTRY(monitor_disconnect),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
