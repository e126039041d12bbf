/* cext/core/sock.c: socket options, binding, and monitors, on real ZMQ sockets over TCP,
 * IPC and CURVE. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "errors.h"
#include "sock.h"
#include "test.h"

#define WAIT_MS 5000

static int
intopt(void *sock, int opt)
{
    int v = -12345;
    size_t len = sizeof(v);
    ASSERT(zmq_getsockopt(sock, opt, &v, &len) == 0);
    return v;
}

/* Reads the monitor until an event in `want` arrives (others are skipped); returns it and
 * its value, or 0 after WAIT_MS. */
static uint16_t
wait_event(void *pair, unsigned want, uint32_t *value)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        uint16_t event;
        uint32_t v;
        while (cpar_sock_monitor_read(pair, &event, &v)) {
            if (event & want) {
                if (value != NULL)
                    *value = v;
                return event;
            }
        }
        usleep(10000);
    }
    return 0;
}

TEST_IMPL(sock_options)
{
    void *ctx = zmq_ctx_new();
    void *r = cpar_sock_new(ctx, ZMQ_ROUTER, 0, 4096);
    void *d = cpar_sock_new(ctx, ZMQ_DEALER, 2000, 0);
    int64_t max = 0;
    size_t len = sizeof(max);
    char ep[128], err[256];
    ASSERT(r != NULL && d != NULL);
    CPAR_TEST_CMP(intopt(r, ZMQ_SNDHWM), ==, 0);
    CPAR_TEST_CMP(intopt(r, ZMQ_RCVHWM), ==, 0);
    CPAR_TEST_CMP(intopt(r, ZMQ_LINGER), ==, 0);
    CPAR_TEST_CMP(intopt(d, ZMQ_LINGER), ==, 2000);
    CPAR_TEST_CMP(intopt(d, ZMQ_SNDHWM), ==, 0);
    ASSERT(zmq_getsockopt(r, ZMQ_MAXMSGSIZE, &max, &len) == 0);
    CPAR_TEST_CMP(max, ==, 4096);
    len = sizeof(max);
    ASSERT(zmq_getsockopt(d, ZMQ_MAXMSGSIZE, &max, &len) == 0);
    CPAR_TEST_CMP(max, ==, -1);
    /* ROUTER_MANDATORY: a send to an unknown peer fails instead of vanishing. */
    ASSERT(cpar_sock_bind(r, "tcp://127.0.0.1:*", ep, sizeof(ep), err, sizeof(err)) == CPAR_OK);
    ASSERT(zmq_send(r, "nobody", 6, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0);
    CPAR_TEST_CMP(zmq_errno(), ==, EHOSTUNREACH);
    /* A bad socket type. */
    ASSERT(cpar_sock_new(ctx, 12345, 0, 0) == NULL);
    zmq_close(r);
    zmq_close(d);
    zmq_ctx_term(ctx);
    return 0;
}

TEST_IMPL(sock_bind)
{
    void *ctx = zmq_ctx_new();
    void *a = cpar_sock_new(ctx, ZMQ_ROUTER, 0, 0), *b = cpar_sock_new(ctx, ZMQ_ROUTER, 0, 0);
    char ep[128], ep2[128], err[256], url[96];
    snprintf(url, sizeof(url), "ipc:///tmp/cpar-test-sock-%d", (int)getpid());
    ASSERT(cpar_sock_bind(a, "tcp://127.0.0.1:*", ep, sizeof(ep), err, sizeof(err)) == CPAR_OK);
    ASSERT(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && atoi(ep + 16) > 0);
    /* The same port again is refused, with the url in the message. */
    ASSERT(cpar_sock_bind(b, ep, ep2, sizeof(ep2), err, sizeof(err)) == CPAR_EZMQ);
    ASSERT(strstr(err, "cannot bind") != NULL && strstr(err, ep) != NULL);
    ASSERT(cpar_sock_bind(b, url, ep2, sizeof(ep2), err, sizeof(err)) == CPAR_OK);
    ASSERT(strcmp(ep2, url) == 0);
    /* A short endpoint buffer still ends in a NUL. */
    ASSERT(cpar_sock_bind(b, "tcp://127.0.0.1:*", ep2, 8, err, sizeof(err)) != CPAR_OK ||
           strlen(ep2) < 8);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    unlink(url + 6);
    return 0;
}

/* Connection events on both sides, over tcp or ipc. */
static void
monitor_roundtrip(const char *url)
{
    void *ctx = zmq_ctx_new();
    void *r = cpar_sock_new(ctx, ZMQ_ROUTER, 0, 0), *d = cpar_sock_new(ctx, ZMQ_DEALER, 0, 0);
    void *rmon, *dmon;
    char ep[128], err[256], buf[8];
    uint32_t fd = 0;
    ASSERT(cpar_sock_bind(r, url, ep, sizeof(ep), err, sizeof(err)) == CPAR_OK);
    rmon = cpar_sock_monitor_open(ctx, r, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED, "t-r", r);
    dmon = cpar_sock_monitor_open(
        ctx, d, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED, "t-d",
        d);
    ASSERT(rmon != NULL && dmon != NULL);
    CPAR_TEST_CMP(cpar_sock_monitor_drain(dmon), ==, 0);
    ASSERT(zmq_connect(d, ep) == 0);
    CPAR_TEST_CMP(wait_event(dmon, ZMQ_EVENT_CONNECTED, NULL), ==, ZMQ_EVENT_CONNECTED);
    CPAR_TEST_CMP(wait_event(rmon, ZMQ_EVENT_ACCEPTED, &fd), ==, ZMQ_EVENT_ACCEPTED);
    ASSERT(fd > 0);
    ASSERT(zmq_send(d, "hi", 2, 0) == 2);
    ASSERT(zmq_recv(r, buf, sizeof(buf), 0) > 0); /* the routing id */
    CPAR_TEST_CMP(zmq_recv(r, buf, sizeof(buf), 0), ==, 2);
    /* The dealer goes: the router's monitor names the connection's descriptor. */
    cpar_sock_monitor_close(d, dmon);
    zmq_close(d);
    {
        uint32_t gone = 0;
        CPAR_TEST_CMP(wait_event(rmon, ZMQ_EVENT_DISCONNECTED, &gone), ==, ZMQ_EVENT_DISCONNECTED);
        CPAR_TEST_CMP(gone, ==, fd);
    }
    CPAR_TEST_CMP(cpar_sock_monitor_drain(rmon) & ZMQ_EVENT_DISCONNECTED, ==, 0);
    cpar_sock_monitor_close(r, rmon);
    zmq_close(r);
    zmq_ctx_term(ctx);
}

TEST_IMPL(sock_monitor_tcp)
{
    monitor_roundtrip("tcp://127.0.0.1:*");
    return 0;
}

TEST_IMPL(sock_monitor_ipc)
{
    char url[96];
    snprintf(url, sizeof(url), "ipc:///tmp/cpar-test-sockmon-%d", (int)getpid());
    monitor_roundtrip(url);
    unlink(url + 6);
    return 0;
}

/* CURVE as the controller, clients and engines set it up: the right server key completes
 * the handshake, a wrong one fails it (the server's monitor says so). */
TEST_IMPL(sock_monitor_curve)
{
    void *ctx = zmq_ctx_new();
    char spub[41], ssec[41], ep[128], err[256], other[41];
    cpar_curve good, bad;
    void *r = cpar_sock_new(ctx, ZMQ_ROUTER, 0, 0), *rmon;
    void *d1 = cpar_sock_new(ctx, ZMQ_DEALER, 0, 0), *d2 = cpar_sock_new(ctx, ZMQ_DEALER, 0, 0);
    void *m1, *m2;
    ASSERT(cpar_curve_keypair(spub, ssec) == 0);
    ASSERT(cpar_curve_keypair(good.pub, good.sec) == 0);
    memcpy(good.server, spub, sizeof(spub));
    bad = good;
    ASSERT(cpar_curve_keypair(bad.server, other) == 0); /* not the server's key */
    ASSERT(cpar_curve_server(r, ssec) == 0);
    ASSERT(cpar_sock_bind(r, "tcp://127.0.0.1:*", ep, sizeof(ep), err, sizeof(err)) == CPAR_OK);
    rmon = cpar_sock_monitor_open(ctx, r,
                                  ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                      ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                                  "t-r", r);
    ASSERT(cpar_curve_client(d1, &good) == 0 && cpar_curve_client(d2, &bad) == 0);
    m1 = cpar_sock_monitor_open(ctx, d1, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, "t-d1", d1);
    m2 = cpar_sock_monitor_open(ctx, d2, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, "t-d2", d2);
    ASSERT(rmon != NULL && m1 != NULL && m2 != NULL);
    ASSERT(zmq_connect(d1, ep) == 0);
    CPAR_TEST_CMP(wait_event(m1, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, NULL), ==,
                  ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    ASSERT(zmq_connect(d2, ep) == 0);
    ASSERT(wait_event(rmon,
                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                      NULL) != 0);
    CPAR_TEST_CMP(cpar_sock_monitor_drain(m2) & ZMQ_EVENT_HANDSHAKE_SUCCEEDED, ==, 0);
    cpar_sock_monitor_close(d1, m1);
    cpar_sock_monitor_close(d2, m2);
    cpar_sock_monitor_close(r, rmon);
    zmq_close(d1);
    zmq_close(d2);
    zmq_close(r);
    zmq_ctx_term(ctx);
    return 0;
}

TEST_IMPL(sock_monitor_fail)
{
    void *ctx = zmq_ctx_new();
    void *d = cpar_sock_new(ctx, ZMQ_DEALER, 0, 0);
    /* A second monitor at the same endpoint cannot bind it. */
    void *m = cpar_sock_monitor_open(ctx, d, ZMQ_EVENT_CONNECTED, "t", d);
    void *d2 = cpar_sock_new(ctx, ZMQ_DEALER, 0, 0);
    ASSERT(m != NULL);
    ASSERT(cpar_sock_monitor_open(ctx, d2, ZMQ_EVENT_CONNECTED, "t", d) == NULL);
    ASSERT(cpar_sock_monitor_open(ctx, NULL, ZMQ_EVENT_CONNECTED, "t", ctx) == NULL);
    cpar_sock_monitor_close(NULL, NULL);
    cpar_sock_monitor_close(d, m);
    zmq_close(d);
    zmq_close(d2);
    zmq_ctx_term(ctx);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(sock_options),     TEST_ENTRY(sock_bind),          TEST_ENTRY(sock_monitor_tcp),
    TEST_ENTRY(sock_monitor_ipc), TEST_ENTRY(sock_monitor_curve), TEST_ENTRY(sock_monitor_fail),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
