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
    fx_start_cfg(f, hb_timeout_ms, NULL, 0, 0);
}

const char *fx_db_mode;
int64_t fx_db_max_records;
const char *fx_db_file;
int fx_recover;
int64_t fx_recover_grace_ms;

void
fx_start_cfg(fx *f, int hb_timeout_ms, const char *scheme, int hwm, int max_records)
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
        .scheme = scheme,
        .hwm = hwm,
        .max_records = max_records,
        .db = fx_db_mode,
        .db_max_records = fx_db_max_records,
        .db_file = fx_db_file,
        .cluster_id = "fx",
        .recover = fx_recover,
        .recover_grace_ms = fx_recover_grace_ms,
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
    return fx_engine_try_why(f, sock, requested, pid, id, NULL, 0);
}

int
fx_engine_try_why(fx *f, void **sock, int32_t requested, int pid, int32_t *id, char *why,
                  size_t whylen)
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
    } else {
        char text[512];
        /* A refusal says why: "error=<why>\n". */
        ASSERT_EQ(m.nframes, 1);
        th_frame_str(&m, 0, text, sizeof(text));
        ASSERT(strncmp(text, "error=", 6) == 0);
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "%s", text + 6);
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

/* ---- load-balanced tasks ------------------------------------------------------------ */

static void
fx_put32(uint8_t *p, uint32_t v)
{
    for (int b = 0; b < 4; b++)
        p[b] = (uint8_t)(v >> (8 * b));
}

size_t
fx_spec_encode(const fx_spec *sp, uint8_t *buf, size_t cap)
{
    size_t need =
        FX_SPEC_HEADER + 4 * sp->ntargets + CPAR_WIRE_ID_SIZE * (sp->nafter + sp->nfollow);
    uint8_t *p = buf;
    ASSERT_LE(need, cap);
    fx_put32(p, sp->version ? sp->version : 1);
    fx_put32(p + 4, (uint32_t)sp->retries);
    fx_put32(p + 8, sp->timeout_ms);
    p[12] = (uint8_t)sp->after_flags;
    p[13] = (uint8_t)(sp->after_flags >> 8);
    p[14] = (uint8_t)sp->follow_flags;
    p[15] = (uint8_t)(sp->follow_flags >> 8);
    fx_put32(p + 16, (uint32_t)sp->ntargets);
    fx_put32(p + 20, (uint32_t)sp->nafter);
    fx_put32(p + 24, (uint32_t)sp->nfollow);
    p += FX_SPEC_HEADER;
    for (size_t i = 0; i < sp->ntargets; i++, p += 4)
        fx_put32(p, (uint32_t)sp->targets[i]);
    if (sp->nafter) {
        memcpy(p, sp->after, CPAR_WIRE_ID_SIZE * sp->nafter);
        p += CPAR_WIRE_ID_SIZE * sp->nafter;
    }
    if (sp->nfollow)
        memcpy(p, sp->follow, CPAR_WIRE_ID_SIZE * sp->nfollow);
    return need;
}

void
fx_task_raw(fx *f, void *client, const void *spec, size_t speclen, const char *body,
            const uint8_t *use_id, uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_TASK);
    if (use_id)
        memcpy(m.h.msg_id, use_id, CPAR_WIRE_ID_SIZE);
    ASSERT_OK(cpar_msg_add_copy(&m, spec, speclen));
    th_add_str(&m, body);
    if (mid)
        memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    th_send(client, f->s, &m);
}

void
fx_task(fx *f, void *client, const fx_spec *spec, const char *body, uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    static const fx_spec none = {0};
    uint8_t buf[FX_SPEC_HEADER + 4 * 64 + CPAR_WIRE_ID_SIZE * 32];
    size_t len = fx_spec_encode(spec ? spec : &none, buf, sizeof(buf));
    fx_task_raw(f, client, buf, len, body, NULL, mid);
}

void
fx_engine_task(fx *f, void *engine, const char *body, uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    char text[256];
    th_expect(engine, f->s, CPAR_MSG_TASK, &m);
    ASSERT_EQ(m.nframes, 2);
    ASSERT_GE(zmq_msg_size(&m.frames[0]), FX_SPEC_HEADER);
    ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), body) == 0);
    if (mid)
        memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    cpar_msg_close(&m);
}

int
fx_engine_task_any(fx *f, void *const *engines, size_t n, const char *body,
                   uint8_t mid[CPAR_WIRE_ID_SIZE])
{
    zmq_pollitem_t items[16];
    uint64_t deadline = cpar_now_ns() + (uint64_t)TH_WAIT_MS * 1000000u;
    ASSERT_LE(n, 16);
    for (;;) {
        int64_t left = ((int64_t)deadline - (int64_t)cpar_now_ns()) / 1000000;
        int rc;
        if (left <= 0)
            CPAR_TEST_FAIL("no engine received the task \"%s\"", body);
        for (size_t i = 0; i < n; i++) {
            items[i].socket = engines[i];
            items[i].fd = 0;
            items[i].events = ZMQ_POLLIN;
            items[i].revents = 0;
        }
        rc = zmq_poll(items, (int)n, (long)left);
        ASSERT(rc >= 0);
        for (size_t i = 0; i < n; i++) {
            cpar_msg m;
            char text[256];
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            ASSERT_OK(th_recv(engines[i], f->s, &m, 0));
            if (m.h.type == CPAR_MSG_HEARTBEAT || m.h.type == CPAR_MSG_ENGINE_EVENT) {
                cpar_msg_close(&m);
                continue;
            }
            if (m.h.type != CPAR_MSG_TASK)
                CPAR_TEST_FAIL("engine socket %zu: expected a TASK, got type %d", i, m.h.type);
            ASSERT_EQ(m.nframes, 2);
            ASSERT(strcmp(th_frame_str(&m, 1, text, sizeof(text)), body) == 0);
            if (mid)
                memcpy(mid, m.h.msg_id, CPAR_WIRE_ID_SIZE);
            cpar_msg_close(&m);
            return (int)i;
        }
    }
}

void
fx_engine_reply_status(fx *f, void *engine, int32_t id, const uint8_t *parent, int status,
                       const char *body)
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = id;
    m.h.status = status;
    memcpy(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    th_add_str(&m, body);
    th_send(engine, f->s, &m);
}

void
fx_quiet(fx *f, void *sock, int ms)
{
    uint64_t deadline = cpar_now_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        int64_t left = ((int64_t)deadline - (int64_t)cpar_now_ns()) / 1000000;
        cpar_msg m;
        int rc;
        if (left <= 0)
            return;
        rc = th_recv(sock, f->s, &m, (int)left);
        if (rc == CPAR_ETIMEOUT)
            return;
        ASSERT_OK(rc);
        if (m.h.type != CPAR_MSG_HEARTBEAT && m.h.type != CPAR_MSG_ENGINE_EVENT)
            CPAR_TEST_FAIL("expected nothing for %d ms, got a type %d message (status %d)", ms,
                           m.h.type, m.h.status);
        cpar_msg_close(&m);
    }
}

void
fx_abort(fx *f, void *client, const uint8_t *ids, size_t n)
{
    cpar_msg m;
    th_msg(&m, CPAR_MSG_ABORT);
    ASSERT_OK(cpar_msg_add_copy(&m, ids, CPAR_WIRE_ID_SIZE * n));
    th_send(client, f->s, &m);
}

const char *
fx_query(fx *f, void *client, const char *what, const uint8_t *ids, size_t n)
{
    static char text[8192];
    cpar_msg m;
    uint8_t mid[CPAR_WIRE_ID_SIZE];
    th_msg(&m, CPAR_MSG_QUERY);
    memcpy(mid, m.h.msg_id, sizeof(mid));
    th_add_str(&m, what);
    if (ids)
        ASSERT_OK(cpar_msg_add_copy(&m, ids, CPAR_WIRE_ID_SIZE * n));
    th_send(client, f->s, &m);
    th_expect(client, f->s, CPAR_MSG_QUERY_REPLY, &m);
    ASSERT_MEM_EQ(m.h.parent, mid, sizeof(mid));
    ASSERT_EQ(m.nframes, 1);
    th_frame_str(&m, 0, text, sizeof(text));
    cpar_msg_close(&m);
    return text;
}

void
fx_hex(const uint8_t *id, char out[2 * CPAR_WIRE_ID_SIZE + 1])
{
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

uint64_t
fx_now_ms(void)
{
    return cpar_now_ns() / 1000000u;
}

void
fx_client_error_within(fx *f, void *client, int code, const uint8_t *parent, int ms)
{
    uint64_t deadline = fx_now_ms() + (uint64_t)ms;
    for (;;) {
        cpar_msg m;
        int64_t left = (int64_t)deadline - (int64_t)fx_now_ms();
        int rc;
        if (left <= 0)
            CPAR_TEST_FAIL("no ERROR %d within %d ms", code, ms);
        rc = th_recv(client, f->s, &m, (int)left);
        if (rc == CPAR_ETIMEOUT)
            CPAR_TEST_FAIL("no ERROR %d within %d ms", code, ms);
        ASSERT_OK(rc);
        if (m.h.type == CPAR_MSG_HEARTBEAT || m.h.type == CPAR_MSG_ENGINE_EVENT) {
            cpar_msg_close(&m);
            continue;
        }
        ASSERT_EQ(m.h.type, CPAR_MSG_ERROR);
        ASSERT_EQ(m.h.status, code);
        ASSERT_MEM_EQ(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
        cpar_msg_close(&m);
        return;
    }
}

void *
fx_two_engines(fx *f, void *e[2])
{
    ASSERT_EQ(fx_engine(f, &e[0], 100), 0);
    ASSERT_EQ(fx_engine(f, &e[1], 101), 1);
    return fx_client(f, NULL, NULL);
}

void
fx_engine_abort(fx *f, void *engine, const uint8_t id[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    th_expect(engine, f->s, CPAR_MSG_ABORT, &m);
    ASSERT_GE(m.nframes, 1);
    ASSERT_EQ(zmq_msg_size(&m.frames[0]), CPAR_WIRE_ID_SIZE);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[0]), id, CPAR_WIRE_ID_SIZE);
    cpar_msg_close(&m);
}
