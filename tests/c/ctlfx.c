/* The controller test fixture (ctlfx.h). */
#include "ctlfx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "test.h"

static void *
fx_run(void *arg)
{
    fx *f = arg;
    f->run_rc = cpar_controller_run(f->c);
    return NULL;
}

void
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
int
fx_join(fx *f)
{
    ASSERT(f->running);
    ASSERT_OK(pthread_join(f->thread, NULL));
    f->running = 0;
    return f->run_rc;
}

void
fx_close(fx *f, void *sock)
{
    for (int i = 0; i < f->nsocks; i++)
        if (f->socks[i] == sock) {
            zmq_close(sock);
            f->socks[i] = NULL;
        }
}

/* Stops everything the fixture started. Returns the text of the log (malloc'd). */
char *
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

void *
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
int
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

int32_t
fx_engine(fx *f, void **sock, int pid)
{
    int32_t id = -1;
    ASSERT_OK(fx_engine_try(f, sock, -1, pid, &id));
    ASSERT_GE(id, 0);
    return id;
}

/* A client that has said CONNECT; returns the socket and the number of engines listed. */
void *
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
    ASSERT_EQ(m.nframes, 3); /* ids, "id pid host" lines, "id shm-token" lines */
    if (nengines)
        *nengines = zmq_msg_size(&m.frames[0]) / 4;
    if (reply)
        *reply = m;
    else
        cpar_msg_close(&m);
    return sock;
}

/* Sends a TARGETED request of `type` with one payload frame; its id goes to mid. */
void
fx_request_id(fx *f, void *client, int type, const int32_t *targets, size_t n, const char *body,
              const uint8_t *use_id, uint8_t mid[CPAR_WIRE_ID_SIZE])
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

void
fx_request(fx *f, void *client, int type, const int32_t *targets, size_t n, const char *body,
           uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    fx_request_id(f, client, type, targets, n, body, NULL, mid);
}

/* The engine side receives a request of `type` whose body is `body`; returns its id. */
void
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

void
fx_engine_reply(fx *f, void *engine, int type, int32_t id, const uint8_t *parent, const char *body)
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
void
fx_client_get(fx *f, void *client, int type, int32_t id, const uint8_t *parent, const char *body)
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
const char *
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
void
fx_heartbeat(fx *f, void *engine, int32_t id)
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_HEARTBEAT);
    m.h.engine = id;
    th_send(engine, f->s, &m);
}

/* Waits for ENGINE_EVENT about engine id with status. */
void
fx_client_event(fx *f, void *client, int32_t id, int status)
{
    cpar_msg m;
    th_expect(client, f->s, CPAR_MSG_ENGINE_EVENT, &m);
    ASSERT_EQ(m.h.engine, id);
    ASSERT_EQ(m.h.status, status);
    cpar_msg_close(&m);
}
