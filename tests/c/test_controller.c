/* Tests of the controller loop: a real controller in a thread, fake engines and clients as
 * DEALER sockets over TCP in the test thread. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller.h"
#include "errors.h"
#include "helpers.h"
#include "test.h"

#define FX_MAX_SOCKS 64

typedef struct fx {
    cpar_controller *c;
    pthread_t thread;
    int running;
    int run_rc;
    void *ctx;
    cpar_signer *s;
    char logpath[64];
    void *socks[FX_MAX_SOCKS]; /* closed by fx_stop unless already closed */
    int nsocks;
} fx;

static void *
fx_run(void *arg)
{
    fx *f = arg;
    f->run_rc = cpar_controller_run(f->c);
    return NULL;
}

static void
fx_start(fx *f, int hb_timeout_ms)
{
    char err[256] = "";
    int fd;
    cpar_controller_config cfg = {
        .client_url = "tcp://127.0.0.1:*",
        .engine_url = "tcp://127.0.0.1:*",
        .key = (const uint8_t *)TH_KEY,
        .keylen = strlen(TH_KEY),
        .hb_period_ms = 50,
        .hb_timeout_ms = hb_timeout_ms,
    };
    memset(f, 0, sizeof(*f));
    snprintf(f->logpath, sizeof(f->logpath), "/tmp/cpar-ctest-XXXXXX");
    fd = mkstemp(f->logpath);
    ASSERT(fd >= 0);
    close(fd);
    cfg.log_path = f->logpath;
    ASSERT_OK(cpar_controller_new(&cfg, &f->c, err, sizeof(err)));
    ASSERT(strncmp(cpar_controller_client_endpoint(f->c), "tcp://127.0.0.1:", 16) == 0);
    ASSERT(strncmp(cpar_controller_engine_endpoint(f->c), "tcp://127.0.0.1:", 16) == 0);
    ASSERT(strcmp(cpar_controller_client_endpoint(f->c), "tcp://127.0.0.1:*") != 0);
    f->ctx = zmq_ctx_new();
    f->s = th_signer();
    ASSERT_OK(pthread_create(&f->thread, NULL, fx_run, f));
    f->running = 1;
}

/* Waits for run() to return by itself (hub shutdown); returns its status. */
static int
fx_join(fx *f)
{
    ASSERT(f->running);
    ASSERT_OK(pthread_join(f->thread, NULL));
    f->running = 0;
    return f->run_rc;
}

static void
fx_close(fx *f, void *sock)
{
    for (int i = 0; i < f->nsocks; i++)
        if (f->socks[i] == sock) {
            zmq_close(sock);
            f->socks[i] = NULL;
        }
}

/* Stops everything the fixture started. Returns the text of the log (malloc'd). */
static char *
fx_stop(fx *f)
{
    FILE *lf;
    char *text;
    long len;

    if (f->running) {
        cpar_controller_stop(f->c);
        fx_join(f);
        ASSERT_OK(f->run_rc);
    }
    for (int i = 0; i < f->nsocks; i++)
        if (f->socks[i])
            zmq_close(f->socks[i]);
    cpar_controller_free(f->c);
    zmq_ctx_term(f->ctx);
    cpar_signer_free(f->s);
    lf = fopen(f->logpath, "r");
    ASSERT(lf != NULL);
    fseek(lf, 0, SEEK_END);
    len = ftell(lf);
    fseek(lf, 0, SEEK_SET);
    text = calloc(1, (size_t)len + 1);
    ASSERT(text != NULL);
    ASSERT_EQ(fread(text, 1, (size_t)len, lf), (size_t)len);
    fclose(lf);
    /* CPAR_CTEST_KEEPLOG=1 keeps the controller's log for a look. */
    if (getenv("CPAR_CTEST_KEEPLOG"))
        fprintf(stderr, "controller log: %s\n", f->logpath);
    else
        unlink(f->logpath);
    return text;
}

static void *
fx_dealer(fx *f, int engine_side)
{
    void *s;
    ASSERT_LT(f->nsocks, FX_MAX_SOCKS);
    s = th_dealer(f->ctx, engine_side ? cpar_controller_engine_endpoint(f->c)
                                      : cpar_controller_client_endpoint(f->c));
    f->socks[f->nsocks++] = s;
    return s;
}

/* A fake engine: registers (asking for `requested`) and returns the REGISTER_REPLY status;
 * the assigned id goes to *id. */
static int
fx_engine_try(fx *f, void **sock, int32_t requested, int pid, int32_t *id)
{
    cpar_msg m;
    char payload[64];
    uint8_t mid[CPAR_WIRE_ID_SIZE];
    int status;

    *sock = fx_dealer(f, 1);
    th_msg(&m, CPAR_MSG_REGISTER);
    m.h.target = requested;
    memcpy(mid, m.h.msg_id, sizeof(mid));
    snprintf(payload, sizeof(payload), "pid=%d\nhost=fakehost\n", pid);
    th_add_str(&m, payload);
    th_send(*sock, f->s, &m);
    th_expect(*sock, f->s, CPAR_MSG_REGISTER_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, sizeof(mid));
    status = m.h.status;
    *id = m.h.engine;
    if (status == 0) {
        char text[128];
        ASSERT_EQ(m.nframes, 1);
        ASSERT_STR_CONTAINS(th_frame_str(&m, 0, text, sizeof(text)), "hb_timeout_ms=");
    }
    cpar_msg_close(&m);
    return status;
}

static int32_t
fx_engine(fx *f, void **sock, int pid)
{
    int32_t id = -1;
    ASSERT_OK(fx_engine_try(f, sock, -1, pid, &id));
    ASSERT_GE(id, 0);
    return id;
}

/* A client that has said CONNECT; returns the socket and the number of engines listed. */
static void *
fx_client(fx *f, size_t *nengines, cpar_msg *reply)
{
    cpar_msg m;
    uint8_t mid[CPAR_WIRE_ID_SIZE];
    void *sock = fx_dealer(f, 0);
    th_msg(&m, CPAR_MSG_CONNECT);
    memcpy(mid, m.h.msg_id, sizeof(mid));
    th_send(sock, f->s, &m);
    th_expect(sock, f->s, CPAR_MSG_CONNECT_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, sizeof(mid));
    ASSERT_EQ(m.nframes, 2);
    if (nengines)
        *nengines = zmq_msg_size(&m.frames[0]) / 4;
    if (reply)
        *reply = m;
    else
        cpar_msg_close(&m);
    return sock;
}

/* Sends a TARGETED request of `type` with one payload frame; its id goes to mid. */
static void
fx_request_id(fx *f, void *client, int type, const int32_t *targets, size_t n,
              const char *body, const uint8_t *use_id, uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    th_msg(&m, type);
    if (use_id)
        memcpy(m.h.msg_id, use_id, CPAR_WIRE_ID_SIZE);
    th_targets(&m, targets, n);
    th_add_str(&m, body);
    if (mid)
        memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    th_send(client, f->s, &m);
}

static void
fx_request(fx *f, void *client, int type, const int32_t *targets, size_t n, const char *body,
           uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    fx_request_id(f, client, type, targets, n, body, NULL, mid);
}

/* The engine side receives a request of `type` whose body is `body`; returns its id. */
static void
fx_engine_take(fx *f, void *engine, int type, const char *body, uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    char text[256];
    th_expect(engine, f->s, type, &m);
    ASSERT(m.h.flags & CPAR_FLAG_TARGETED);
    ASSERT_EQ(m.nframes, 2);
    ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), body) == 0);
    memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    cpar_msg_close(&m);
}

static void
fx_engine_reply(fx *f, void *engine, int type, int32_t id, const uint8_t *parent,
                const char *body)
{
    cpar_msg m;
    th_msg(&m, type);
    m.h.engine = id;
    memcpy(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    if (type == CPAR_MSG_STREAM)
        m.h.flags = CPAR_FLAG_STDOUT;
    th_add_str(&m, body);
    th_send(engine, f->s, &m);
}

/* The client receives a forwarded message of `type` from engine `id` about `parent`. */
static void
fx_client_get(fx *f, void *client, int type, int32_t id, const uint8_t *parent,
              const char *body)
{
    cpar_msg m;
    char text[256];
    th_expect(client, f->s, type, &m);
    ASSERT_EQ(m.h.engine, id);
    ASSERT_MEM_EQ(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    ASSERT_EQ(m.nframes, 1);
    ASSERT(strcmp(th_frame_str(&m, 0, text, sizeof(text)), body) == 0);
    cpar_msg_close(&m);
}

/* The client receives an ERROR with this code about parent; returns its text (static). */
static const char *
fx_client_error(fx *f, void *client, int code, const uint8_t *parent)
{
    static char text[512];
    cpar_msg m;
    th_expect(client, f->s, CPAR_MSG_ERROR, &m);
    ASSERT_EQ(m.h.status, code);
    if (parent)
        ASSERT_MEM_EQ(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    ASSERT_EQ(m.nframes, 1);
    th_frame_str(&m, 0, text, sizeof(text));
    cpar_msg_close(&m);
    return text;
}

/* The fake engine beats once (its echo is skipped by th_expect later). */
static void
fx_heartbeat(fx *f, void *engine, int32_t id)
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_HEARTBEAT);
    m.h.engine = id;
    th_send(engine, f->s, &m);
}

/* Waits for ENGINE_EVENT about engine id with status. */
static void
fx_client_event(fx *f, void *client, int32_t id, int status)
{
    cpar_msg m;
    th_expect(client, f->s, CPAR_MSG_ENGINE_EVENT, &m);
    ASSERT_EQ(m.h.engine, id);
    ASSERT_EQ(m.h.status, status);
    cpar_msg_close(&m);
}

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
    /* Signed with another key: a client gets ERROR CPAR_ESIG about its msg id. */
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
        fx_client_error(f, sock, CPAR_ESIG, mid);
    /* paylen and nframes that lie; a frame missing; a zeroed tag. A client gets an ERROR
     * about each, since their headers can be read. */
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 2, (uint64_t)1 << 62, fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 3);
    if (is_client)
        fx_client_error(f, sock, CPAR_EPROTO, mid);
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 0x80000000u, 4 + ln[2], fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 3);
    if (is_client)
        fx_client_error(f, sock, CPAR_EPROTO, mid);
    make_header(f->s, hdr, CPAR_MSG_EXECUTE, 2, 4 + ln[2], fr + 1, ln + 1, 2, mid);
    send_raw(sock, fr, ln, 2);
    if (is_client)
        fx_client_error(f, sock, CPAR_EPROTO, mid);
    memset(hdr + CPAR_WIRE_SIGNED_SIZE, 0, CPAR_SIGN_SIZE);
    send_raw(sock, fr, ln, 3);
    if (is_client)
        fx_client_error(f, sock, CPAR_ESIG, mid);
    /* Unknown type and version, signed correctly. */
    make_header(f->s, hdr, CPAR_MSG_CONNECT, 0, 0, NULL, NULL, 0, mid);
    hdr[5] = 200;
    send_raw(sock, fr, ln, 1);
    if (is_client)
        fx_client_error(f, sock, CPAR_ETYPE, mid);
    hdr[5] = CPAR_MSG_CONNECT;
    hdr[4] = 9;
    send_raw(sock, fr, ln, 1);
    if (is_client)
        fx_client_error(f, sock, CPAR_EVERSION, mid);
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

static const cpar_test tests[] = {
    TEST_ENTRY(config_errors),
    TEST_ENTRY(register_and_connect),
    TEST_ENTRY(requested_ids),
    TEST_ENTRY(events_on_register),
    TEST_ENTRY(apply_fan_out_two_clients),
    TEST_ENTRY(unknown_target_and_duplicates),
    TEST_ENTRY(untargeted_and_wrong_direction),
    TEST_ENTRY(interrupt_forwarded),
    TEST_ENTRY(heartbeat_echo),
    TEST_ENTRY(heartbeat_silence_kills),
    TEST_ENTRY(connection_close_kills),
    TEST_ENTRY(last_reply_before_close_delivered),
    TEST_ENTRY(client_gone_reply_dropped),
    TEST_ENTRY(garbage_from_clients_and_engines),
    TEST_ENTRY(shutdown_targeted),
    TEST_ENTRY(shutdown_hub_ends_run),
    TEST_ENTRY(stop_tells_engines),
    TEST_ENTRY(shutdown_hub_grace),
    TEST_ENTRY(signal_stops),
    TEST_ENTRY(many_requests),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
