/* A fuzzer of the real controller: a controller runs in a thread of this process (built
 * with ASan/UBSan) and several fake engines and clients, DEALER sockets over TCP, send it
 * validly signed random messages chosen by a seeded PRNG: registrations (requested ids
 * taken, huge, negative; re-registration; reconnection under the same id), heartbeats
 * under the wrong id, replies and streams about real, random or foreign requests (the
 * `engine` field spoofed, random statuses, shared-memory tables), direct requests with
 * good and bad target lists, load-balanced tasks with dependencies on known and unknown
 * ids, timeouts and retries, ABORT, QUERY, INTERRUPT, RELEASE, targeted SHUTDOWN, task
 * database requests (DB_REQUEST: every op, good and bad JSON, known and random ids,
 * resubmits that enter new tasks; the database in memory with a small bound), engines
 * dying (socket closed or silent past the heartbeat timeout) and coming back, and unsigned,
 * mis-signed, truncated or garbage messages mixed in.
 *
 * Asserted: the controller never crashes or trips a sanitizer; everything it sends parses
 * and is correctly signed; at the end a fresh client is answered (CONNECT and QUERY), the
 * loop stops cleanly (or by a hub SHUTDOWN), nothing leaks (LeakSanitizer at exit) and
 * the process's peak RSS stays below CPAR_FUZZ_MAX_RSS_MB (default 256; make runs it with a
 * 16 MB ASan quarantine, so the figure is the controller's memory more than ASan's).
 *
 * Usage: fuzz_controller [CORPUS_DIR_OR_FILE...]. Each corpus file is one line
 * "seed=N steps=N engines=N clients=N hb_timeout_ms=N" (any subset; defaults below). Every
 * case runs in a forked child, so a crash fails that case and names it. After the corpus,
 * new random seeds run until CPAR_FUZZ_SECONDS (default 0) have passed; a failing seed is
 * printed as a corpus line to commit. Output ends with "N passed, M failed". Test code. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ctlfx.h"
#include "errors.h"
#include "fuzzdb.h"
#include "fuzzkit.h"
#include "shm.h"
#include "test.h"

#define FZ_MAX_ENGINES 8
#define FZ_MAX_CLIENTS 6
#define FZ_IDS 128      /* remembered msg ids (requests, tasks) */
#define FZ_GOT 32       /* requests an engine remembers */
#define FZ_MAX_BODY 512 /* random body bytes */

typedef struct fz_case {
    uint64_t seed;
    long steps;
    int engines;
    int clients;
    int hb_timeout_ms;
    int scheme;      /* index into fz_schemes */
    int hwm;         /* 0: no limit, -1: adaptive */
    int max_records; /* ended task records kept (0: the default) */
    int hub_at;      /* percent of the steps after which a hub SHUTDOWN is sent (0: at the end) */
} fz_case;

static const char *const fz_schemes[] = {"leastload", "lru", "weighted", "twobin", "plainrandom"};

typedef struct fz_engine {
    void *sock;
    int32_t id; /* assigned id, or -1 */
    int pid;
    uint8_t got[FZ_GOT][CPAR_WIRE_ID_SIZE]; /* requests received */
    int ngot;
} fz_engine;

typedef struct fz {
    fx f;
    fz_case k;
    uint64_t rng;
    fz_engine e[FZ_MAX_ENGINES];
    void *c[FZ_MAX_CLIENTS];
    uint8_t ids[FZ_IDS][CPAR_WIRE_ID_SIZE];
    int nids;
    int hub_sent; /* a hub SHUTDOWN went out: the loop is ending */
    unsigned long sent, received, garbage, notices;
} fz;

/* Where the case is, for the report of a case that hangs (SIGALRM). */
static volatile long fz_at_step = -1;
static const char *volatile fz_phase = "starting";
static fz *volatile fz_live;

static void
fz_on_alarm(int sig)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "fuzz_controller: case hung in phase \"%s\" at step %ld; controller log "
                     "kept: %s\n",
                     fz_phase, fz_at_step, fz_live ? fz_live->f.logpath : "?");
    (void)sig;
    if (n > 0)
        (void)write(2, buf, (size_t)n);
    abort();
}

static void
fz_remember(fz *z, const uint8_t id[CPAR_WIRE_ID_SIZE])
{
    memcpy(z->ids[z->nids % FZ_IDS], id, CPAR_WIRE_ID_SIZE);
    z->nids++;
}

/* A msg id: mostly fresh, sometimes one already used, sometimes all zeros or random. */
static void
fz_pick_id(fz *z, uint8_t out[CPAR_WIRE_ID_SIZE], int fresh_percent)
{
    uint32_t r = fk_below(&z->rng, 100);
    if (r < (uint32_t)fresh_percent || z->nids == 0) {
        th_id(out);
    } else if (r < 96) {
        int n = z->nids < FZ_IDS ? z->nids : FZ_IDS;
        memcpy(out, z->ids[fk_below(&z->rng, (uint32_t)n)], CPAR_WIRE_ID_SIZE);
    } else if (r < 98) {
        memset(out, 0, CPAR_WIRE_ID_SIZE);
    } else {
        for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++)
            out[i] = (uint8_t)fk_rand(&z->rng);
    }
}

/* An engine id: mostly a registered one, else a random or extreme value. */
static int32_t
fz_pick_engine(fz *z)
{
    static const int32_t odd[] = {-1, -2, 0, 1, 65535, 65536, 1 << 20, INT32_MAX, INT32_MIN};
    if (fk_chance(&z->rng, 85)) {
        int i = (int)fk_below(&z->rng, (uint32_t)z->k.engines);
        if (z->e[i].id >= 0)
            return z->e[i].id;
        return (int32_t)fk_below(&z->rng, 12);
    }
    return odd[fk_below(&z->rng, sizeof(odd) / sizeof(odd[0]))];
}

static void
fz_body(fz *z, cpar_msg *m)
{
    uint8_t buf[FZ_MAX_BODY];
    size_t n = fk_chance(&z->rng, 50) ? fk_below(&z->rng, 16) : fk_below(&z->rng, FZ_MAX_BODY);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)fk_rand(&z->rng);
    ASSERT_OK(cpar_msg_add_copy(m, buf, n));
}

/* Appends a shared-memory descriptor table (CPAR_FLAG_SHM) of random entries made with
 * the encoder, for the placeholders the message may or may not have. */
static void
fz_shm_table(fz *z, cpar_msg *m)
{
    uint8_t buf[4 * CPAR_SHM_ENTRY_SIZE];
    size_t n = 1 + fk_below(&z->rng, 4);
    for (size_t i = 0; i < n; i++) {
        cpar_shm_entry en = {
            .index = fk_chance(&z->rng, 80) ? (uint32_t)i : (uint32_t)fk_rand(&z->rng),
            .pid = fk_chance(&z->rng, 50) ? (uint32_t)getpid() : (uint32_t)fk_rand(&z->rng),
            .addr = fk_rand(&z->rng),
            .len = fk_chance(&z->rng, 80) ? fk_below(&z->rng, 1u << 20) : fk_rand(&z->rng),
        };
        cpar_shm_entry_encode(&en, buf + i * CPAR_SHM_ENTRY_SIZE);
    }
    m->h.flags |= CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(m, buf, n * CPAR_SHM_ENTRY_SIZE));
}

/* Signs and sends m; a full pipe drops it (the controller may be slower than we are). */
static void
fz_send(fz *z, void *sock, cpar_msg *m)
{
    int rc = cpar_wire_send(sock, z->f.s, NULL, 0, m, ZMQ_DONTWAIT);
    ASSERT(rc == 0 || rc == CPAR_EAGAIN);
    cpar_msg_close(m);
    z->sent++;
}

/* ---- engines ------------------------------------------------------------------------ */

static void
fz_engine_close(fz *z, fz_engine *e)
{
    if (e->sock)
        zmq_close(e->sock);
    e->sock = NULL;
    e->id = -1;
    e->ngot = 0;
    (void)z;
}

static void
fz_engine_register(fz *z, fz_engine *e)
{
    static const int32_t asks[] = {0, 1, 2, 3, 65535, 65536, INT32_MAX, -7};
    char payload[256];
    cpar_msg m;
    if (e->sock == NULL || fk_chance(&z->rng, 20)) {
        /* reconnect: a new connection, often asking for the id it had */
        int32_t old = e->id;
        fz_engine_close(z, e);
        e->sock = th_dealer(z->f.ctx, cpar_controller_engine_endpoint(z->f.c));
        e->id = old;
    }
    th_msg(&m, CPAR_MSG_REGISTER);
    if (e->id >= 0 && fk_chance(&z->rng, 60))
        m.h.target = e->id;
    else if (fk_chance(&z->rng, 70))
        m.h.target = -1;
    else
        m.h.target = asks[fk_below(&z->rng, sizeof(asks) / sizeof(asks[0]))];
    switch (fk_below(&z->rng, 6)) {
    case 0:
        snprintf(payload, sizeof(payload), "host=h\n");
        break;
    case 1:
        snprintf(payload, sizeof(payload), "pid=%d\nhost=h\nshm=tok-%u\n", e->pid,
                 fk_below(&z->rng, 3));
        break;
    case 2:
        snprintf(payload, sizeof(payload), "pid=99999999999999999999\nhost=\n\n=\nshm=\n");
        break;
    default:
        snprintf(payload, sizeof(payload), "pid=%d\nhost=fuzzhost\n", e->pid);
        break;
    }
    if (fk_chance(&z->rng, 5))
        fz_body(z, &m);
    else
        th_add_str(&m, payload);
    fz_send(z, e->sock, &m);
}

/* A REPLY or STREAM about parent (NULL: a request it got, or a random id). */
static void
fz_engine_reply(fz *z, fz_engine *e, const uint8_t *parent)
{
    cpar_msg m;
    int type = fk_chance(&z->rng, 75) ? CPAR_MSG_REPLY : CPAR_MSG_STREAM;
    th_msg(&m, type);
    m.h.engine = fk_chance(&z->rng, 90) && e->id >= 0 ? e->id : fz_pick_engine(z);
    if (parent != NULL) {
        memcpy(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    } else if (e->ngot > 0 && fk_chance(&z->rng, 70)) {
        int i = (int)fk_below(&z->rng, (uint32_t)(e->ngot < FZ_GOT ? e->ngot : FZ_GOT));
        memcpy(m.h.parent, e->got[i], CPAR_WIRE_ID_SIZE);
    } else {
        fz_pick_id(z, m.h.parent, 0);
    }
    if (type == CPAR_MSG_REPLY) {
        static const int32_t st[] = {0, 0, 0, 1, 1, 2, -11, 77};
        m.h.status = st[fk_below(&z->rng, sizeof(st) / sizeof(st[0]))];
        m.h.t1 = cpar_now_ns();
    } else {
        static const uint16_t fl[] = {CPAR_FLAG_STDOUT, CPAR_FLAG_STDERR, CPAR_FLAG_DISPLAY, 0,
                                      0xffff};
        m.h.flags = fl[fk_below(&z->rng, sizeof(fl) / sizeof(fl[0]))];
    }
    fz_body(z, &m);
    if (fk_chance(&z->rng, 30))
        fz_body(z, &m);
    if (fk_chance(&z->rng, 10)) {
        ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
        fz_shm_table(z, &m);
    }
    fz_send(z, e->sock, &m);
}

static void
fz_engine_odd(fz *z, fz_engine *e)
{
    cpar_msg m;
    static const int types[] = {CPAR_MSG_HEARTBEAT, CPAR_MSG_CONNECT, CPAR_MSG_EXECUTE,
                                CPAR_MSG_TASK,      CPAR_MSG_ERROR,   CPAR_MSG_QUERY,
                                CPAR_MSG_SHUTDOWN,  CPAR_MSG_ABORT,   CPAR_MSG_ENGINE_EVENT};
    th_msg(&m, types[fk_below(&z->rng, sizeof(types) / sizeof(types[0]))]);
    m.h.engine = fz_pick_engine(z);
    m.h.target = fz_pick_engine(z);
    m.h.flags = (uint16_t)fk_rand(&z->rng) & ~CPAR_FLAG_TARGETED;
    if (fk_chance(&z->rng, 50))
        fz_body(z, &m);
    fz_send(z, e->sock, &m);
}

/* ---- clients ------------------------------------------------------------------------ */

static void
fz_client_direct(fz *z, void *sock)
{
    static const int types[] = {CPAR_MSG_EXECUTE, CPAR_MSG_APPLY, CPAR_MSG_APPLY,
                                CPAR_MSG_INTERRUPT, CPAR_MSG_RELEASE};
    int32_t targets[8];
    size_t n = fk_below(&z->rng, 6);
    cpar_msg m;
    th_msg(&m, types[fk_below(&z->rng, sizeof(types) / sizeof(types[0]))]);
    fz_pick_id(z, m.h.msg_id, 90);
    fz_remember(z, m.h.msg_id);
    for (size_t i = 0; i < n; i++)
        targets[i] = fz_pick_engine(z);
    if (fk_chance(&z->rng, 3)) { /* a long list, mostly one engine repeated */
        static uint8_t big[4 * 4096];
        size_t cnt = 1 + fk_below(&z->rng, 4096);
        int32_t t = fz_pick_engine(z);
        int same = fk_chance(&z->rng, 50); /* every entry names one engine (live, often) */
        for (size_t i = 0; i < cnt; i++) {
            int32_t v = same || fk_chance(&z->rng, 95) ? t : fz_pick_engine(z);
            memcpy(big + 4 * i, &v, 4);
        }
        m.h.flags |= CPAR_FLAG_TARGETED;
        ASSERT_OK(cpar_msg_add_copy(&m, big, 4 * cnt));
    } else if (n > 0 || fk_chance(&z->rng, 50)) {
        if (n == 0 && fk_chance(&z->rng, 50)) {
            m.h.flags |= CPAR_FLAG_TARGETED;
            ASSERT_OK(cpar_msg_add_copy(&m, targets, fk_below(&z->rng, 4))); /* not whole ids */
        } else {
            th_targets(&m, targets, n);
        }
    }
    if (m.h.type == CPAR_MSG_INTERRUPT || m.h.type == CPAR_MSG_RELEASE) {
        uint8_t ids[4 * CPAR_WIRE_ID_SIZE];
        size_t k = fk_below(&z->rng, 5);
        for (size_t i = 0; i < k; i++)
            fz_pick_id(z, ids + i * CPAR_WIRE_ID_SIZE, 10);
        ASSERT_OK(cpar_msg_add_copy(&m, ids, k * CPAR_WIRE_ID_SIZE));
    } else {
        fz_body(z, &m);
    }
    if (fk_chance(&z->rng, 20))
        m.h.flags |= CPAR_FLAG_SHM_OK;
    if (fk_chance(&z->rng, 30)) /* replies held and combined (docs/protocol.md) */
        m.h.flags |= CPAR_FLAG_COALESCE;
    if (fk_chance(&z->rng, 10)) {
        ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
        fz_shm_table(z, &m);
    }
    fz_send(z, sock, &m);
}

static void
fz_client_task(fz *z, void *sock)
{
    uint8_t after[6 * CPAR_WIRE_ID_SIZE], follow[6 * CPAR_WIRE_ID_SIZE], buf[512];
    int32_t targets[6];
    fx_spec sp = {0};
    cpar_msg m;
    size_t len;

    sp.retries = (int32_t)fk_below(&z->rng, 4) - (fk_chance(&z->rng, 5) ? 3 : 0);
    sp.timeout_ms = fk_chance(&z->rng, 50) ? 0 : 20 + fk_below(&z->rng, 400);
    sp.after_flags = (uint16_t)fk_below(&z->rng, 8);
    sp.follow_flags = (uint16_t)fk_below(&z->rng, 8);
    sp.ntargets = fk_chance(&z->rng, 70) ? 0 : fk_below(&z->rng, 6);
    for (size_t i = 0; i < sp.ntargets; i++)
        targets[i] = fz_pick_engine(z);
    sp.targets = targets;
    sp.nafter = fk_chance(&z->rng, 50) ? 0 : fk_below(&z->rng, 6);
    for (size_t i = 0; i < sp.nafter; i++)
        fz_pick_id(z, after + i * CPAR_WIRE_ID_SIZE, 5);
    sp.after = after;
    sp.nfollow = fk_chance(&z->rng, 70) ? 0 : fk_below(&z->rng, 6);
    for (size_t i = 0; i < sp.nfollow; i++)
        fz_pick_id(z, follow + i * CPAR_WIRE_ID_SIZE, 5);
    sp.follow = follow;
    if (fk_chance(&z->rng, 3))
        sp.version = 2;
    len = fx_spec_encode(&sp, buf, sizeof(buf));
    if (fk_chance(&z->rng, 5)) { /* a damaged spec */
        if (fk_chance(&z->rng, 50))
            len = fk_below(&z->rng, (uint32_t)len);
        else
            buf[fk_below(&z->rng, (uint32_t)len)] = (uint8_t)fk_rand(&z->rng);
    }
    th_msg(&m, CPAR_MSG_TASK);
    fz_pick_id(z, m.h.msg_id, 90);
    if (sp.nafter > 0 && fk_chance(&z->rng, 5)) /* names itself */
        memcpy(m.h.msg_id, after, CPAR_WIRE_ID_SIZE);
    fz_remember(z, m.h.msg_id);
    ASSERT_OK(cpar_msg_add_copy(&m, buf, len));
    if (fk_chance(&z->rng, 97))
        fz_body(z, &m);
    if (fk_chance(&z->rng, 5)) {
        ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
        fz_shm_table(z, &m);
    }
    fz_send(z, sock, &m);
}

static void
fz_db_pick_id(void *arg, uint8_t out[CPAR_WIRE_ID_SIZE])
{
    fz_pick_id(arg, out, 10);
}

static int32_t
fz_db_pick_engine(void *arg)
{
    return fz_pick_engine(arg);
}

/* A DB_REQUEST (tests/c/fuzzdb.c makes its body). */
static void
fz_db_request(fz *z, cpar_msg *m)
{
    fzdb_src src = {&z->rng, fz_db_pick_id, fz_db_pick_engine, z};
    char body[2048];
    th_msg(m, CPAR_MSG_DB_REQUEST);
    if (fzdb_body(&src, body, sizeof(body)))
        fz_body(z, m); /* bytes */
    else
        th_add_str(m, body);
}

static void
fz_client_control(fz *z, void *sock)
{
    uint8_t ids[8 * CPAR_WIRE_ID_SIZE];
    size_t k = fk_below(&z->rng, 9);
    cpar_msg m;
    for (size_t i = 0; i < k; i++)
        fz_pick_id(z, ids + i * CPAR_WIRE_ID_SIZE, 5);
    switch (fk_below(&z->rng, 7)) {
    case 4:
        fz_db_request(z, &m);
        break;
    case 5: /* RECLAIM: prefixes (the ids' first bytes), ids; now and then a bad size */
        th_msg(&m, CPAR_MSG_RECLAIM);
        ASSERT_OK(cpar_msg_add_copy(&m, ids, 8 * fk_below(&z->rng, 3) + fk_chance(&z->rng, 5)));
        ASSERT_OK(cpar_msg_add_copy(&m, ids, k * CPAR_WIRE_ID_SIZE - (k && fk_chance(&z->rng, 5))));
        break;
    case 0:
        th_msg(&m, CPAR_MSG_ABORT);
        ASSERT_OK(cpar_msg_add_copy(&m, ids,
                                    k * CPAR_WIRE_ID_SIZE - (k && fk_chance(&z->rng, 5) ? 1 : 0)));
        break;
    case 1: {
        static const char *what[] = {
            "queue_status", "queue_status_verbose", "task_status", "task_status", "", "nonsense"};
        th_msg(&m, CPAR_MSG_QUERY);
        th_add_str(&m, what[fk_below(&z->rng, sizeof(what) / sizeof(what[0]))]);
        if (fk_chance(&z->rng, 70))
            ASSERT_OK(cpar_msg_add_copy(&m, ids, k * CPAR_WIRE_ID_SIZE));
        break;
    }
    case 2: {
        /* a targeted shutdown of some engines, never the hub (that ends the run) */
        int32_t t[2] = {fz_pick_engine(z), fz_pick_engine(z)};
        th_msg(&m, CPAR_MSG_SHUTDOWN);
        th_targets(&m, t, 1 + fk_below(&z->rng, 2));
        break;
    }
    case 3:
        th_msg(&m, CPAR_MSG_CONNECT);
        break;
    default: /* a controller-to-client or engine type from a client */
        th_msg(&m, fk_chance(&z->rng, 50) ? CPAR_MSG_REPLY : CPAR_MSG_HEARTBEAT);
        m.h.engine = fz_pick_engine(z);
        fz_pick_id(z, m.h.parent, 0);
        fz_body(z, &m);
        break;
    }
    fz_send(z, sock, &m);
}

/* ---- garbage ------------------------------------------------------------------------ */

/* Something that is not a good message: raw random frames, a header with a bad or missing
 * tag, lengths that disagree, too many frames, an empty multipart part. */
static void
fz_garbage(fz *z, void *sock)
{
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
    cpar_msg m;
    int kind = (int)fk_below(&z->rng, 5);
    z->garbage++;
    th_msg(&m, (int)(1 + fk_below(&z->rng, 40)));
    m.h.nframes = fk_below(&z->rng, 3);
    m.h.paylen = fk_chance(&z->rng, 50) ? fk_rand(&z->rng) : fk_below(&z->rng, 64);
    m.h.flags = (uint16_t)fk_rand(&z->rng);
    cpar_wire_header_encode(&m.h, hdr);
    cpar_msg_close(&m);
    if (kind == 0) { /* random bytes */
        for (size_t i = 0; i < sizeof(hdr); i++)
            hdr[i] = (uint8_t)fk_rand(&z->rng);
    } else if (kind == 1) { /* consistent lengths, a wrong or missing tag */
        m.h.nframes = 0;
        m.h.paylen = 0;
        cpar_wire_header_encode(&m.h, hdr);
        if (fk_chance(&z->rng, 50))
            for (size_t i = CPAR_WIRE_SIGNED_SIZE; i < sizeof(hdr); i++)
                hdr[i] = (uint8_t)fk_rand(&z->rng);
        if (zmq_send(sock, hdr, sizeof(hdr), ZMQ_DONTWAIT) < 0)
            return;
        return;
    } else if (kind == 2) { /* a signed header whose lengths disagree with the frames */
        cpar_signer_begin(z->f.s);
        cpar_signer_update(z->f.s, hdr, CPAR_WIRE_SIGNED_SIZE);
        cpar_signer_finish(z->f.s, hdr + CPAR_WIRE_SIGNED_SIZE);
    }
    {
        size_t hlen = kind == 3 ? fk_below(&z->rng, sizeof(hdr)) : sizeof(hdr);
        int more = fk_chance(&z->rng, 60);
        if (zmq_send(sock, hdr, hlen, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0)
            return;
        if (more) {
            int nf =
                kind == 4 ? (int)(1 + fk_below(&z->rng, 300)) : (int)(1 + fk_below(&z->rng, 3));
            for (int i = 0; i < nf; i++) {
                uint8_t b[32];
                size_t n = fk_below(&z->rng, sizeof(b));
                for (size_t j = 0; j < n; j++)
                    b[j] = (uint8_t)fk_rand(&z->rng);
                if (zmq_send(sock, b, n, ZMQ_DONTWAIT | (i + 1 < nf ? ZMQ_SNDMORE : 0)) < 0)
                    return;
            }
        }
    }
}

/* ---- receiving ---------------------------------------------------------------------- */

/* Reads everything waiting on one socket; what the controller sends must always parse. */
static void
fz_drain_one(fz *z, void *sock, fz_engine *e)
{
    for (;;) {
        cpar_msg m;
        int rc = cpar_wire_recv(sock, z->f.s, 0, NULL, NULL, &m, ZMQ_DONTWAIT);
        if (rc == CPAR_EAGAIN)
            return;
        /* The one unsigned thing a controller sends: the "bad signature" notice to a
         * client that sent a mis-signed message (docs/protocol.md, an ERROR with an
         * all-zero tag, never acceptable as signed). */
        if (rc == CPAR_ESIG && e == NULL && m.h.type == CPAR_MSG_ERROR) {
            z->notices++;
            continue;
        }
        if (rc != 0)
            CPAR_TEST_FAIL("the controller sent a bad message: %s (type %d)", cpar_strerror(rc),
                           m.h.type);
        z->received++;
        if (e != NULL) {
            switch (m.h.type) {
            case CPAR_MSG_REGISTER_REPLY:
                if (m.h.status == 0)
                    e->id = m.h.engine;
                break;
            case CPAR_MSG_EXECUTE:
            case CPAR_MSG_APPLY:
            case CPAR_MSG_TASK:
                memcpy(e->got[e->ngot % FZ_GOT], m.h.msg_id, CPAR_WIRE_ID_SIZE);
                e->ngot++;
                if (fk_chance(&z->rng, 60)) /* answers at once, as a real engine mostly does */
                    fz_engine_reply(z, e, m.h.msg_id);
                break;
            case CPAR_MSG_SHUTDOWN:
                /* a real engine exits: mostly do so, sometimes linger */
                if (fk_chance(&z->rng, 80)) {
                    cpar_msg_close(&m);
                    fz_engine_close(z, e);
                    return;
                }
                break;
            default:
                break;
            }
        }
        cpar_msg_close(&m);
    }
}

static void
fz_drain(fz *z)
{
    for (int i = 0; i < z->k.engines; i++)
        if (z->e[i].sock)
            fz_drain_one(z, z->e[i].sock, &z->e[i]);
    for (int i = 0; i < z->k.clients; i++)
        if (z->c[i])
            fz_drain_one(z, z->c[i], NULL);
}

/* ---- one case ----------------------------------------------------------------------- */

static void
fz_step(fz *z)
{
    uint32_t r = fk_below(&z->rng, 1000);
    fz_engine *e = &z->e[fk_below(&z->rng, (uint32_t)z->k.engines)];
    int ci = (int)fk_below(&z->rng, (uint32_t)z->k.clients);

    if (z->c[ci] == NULL || (r < 10)) { /* a client (re)connects */
        if (z->c[ci])
            zmq_close(z->c[ci]);
        z->c[ci] = th_dealer(z->f.ctx, cpar_controller_client_endpoint(z->f.c));
        if (fk_chance(&z->rng, 80)) {
            cpar_msg m;
            th_msg(&m, CPAR_MSG_CONNECT);
            fz_send(z, z->c[ci], &m);
        }
        return;
    }
    if (r < 40) {
        if (e->sock == NULL || e->id < 0 || fk_chance(&z->rng, 30))
            fz_engine_register(z, e);
    } else if (r < 200) {
        if (e->sock) {
            cpar_msg m;
            th_msg(&m, CPAR_MSG_HEARTBEAT);
            m.h.engine = fk_chance(&z->rng, 95) ? e->id : fz_pick_engine(z);
            fz_send(z, e->sock, &m);
        }
    } else if (r < 380) {
        if (e->sock)
            fz_engine_reply(z, e, NULL);
    } else if (r < 395) {
        fz_engine_close(z, e); /* dies: its connection drops */
    } else if (r < 410) {
        if (e->sock)
            fz_engine_odd(z, e);
    } else if (r < 600) {
        fz_client_direct(z, z->c[ci]);
    } else if (r < 800) {
        fz_client_task(z, z->c[ci]);
    } else if (r < 930) {
        fz_client_control(z, z->c[ci]);
    } else if (r < 970) {
        void *sock = fk_chance(&z->rng, 50) || e->sock == NULL ? z->c[ci] : e->sock;
        fz_garbage(z, sock);
    } else {
        /* let time pass (reading what comes): heartbeats lapse, task timeouts fire */
        uint64_t until = fx_now_ms() + fk_below(&z->rng, r < 995 ? 30 : 300);
        while (fx_now_ms() < until) {
            zmq_pollitem_t items[FZ_MAX_ENGINES + FZ_MAX_CLIENTS];
            int n = 0;
            for (int i = 0; i < z->k.engines; i++)
                if (z->e[i].sock)
                    items[n++] = (zmq_pollitem_t){.socket = z->e[i].sock, .events = ZMQ_POLLIN};
            for (int i = 0; i < z->k.clients; i++)
                if (z->c[i])
                    items[n++] = (zmq_pollitem_t){.socket = z->c[i], .events = ZMQ_POLLIN};
            ASSERT(zmq_poll(items, n, (long)(until - fx_now_ms())) >= 0);
            fz_drain(z);
        }
    }
    if (fk_chance(&z->rng, 30))
        fz_drain(z);
}

static long
fz_peak_rss_kb(void)
{
    struct rusage ru;
    ASSERT_OK(getrusage(RUSAGE_SELF, &ru));
    return ru.ru_maxrss;
}

static int
fz_run_case(const fz_case *k)
{
    static fz z; /* large: keep off the stack */
    long max_rss_mb = getenv("CPAR_FUZZ_MAX_RSS_MB") ? atol(getenv("CPAR_FUZZ_MAX_RSS_MB")) : 256;
    size_t nengines = 0;
    const char *q;
    char *log;
    int hub;

    memset(&z, 0, sizeof(z));
    z.k = *k;
    z.rng = k->seed * 0x9E3779B97F4A7C15ULL + 1;
    fz_live = &z;
    signal(SIGALRM, fz_on_alarm);
    fx_db_mode = "memory"; /* DB_REQUESTs are fuzzed too, against a small bound */
    fx_db_max_records = 64;
    fx_start_cfg(&z.f, k->hb_timeout_ms, fz_schemes[k->scheme], k->hwm, k->max_records);
    for (int i = 0; i < k->engines; i++) {
        z.e[i].id = -1;
        z.e[i].pid = 4000 + i;
    }
    fz_phase = "traffic";
    for (long s = 0; s < k->steps; s++) {
        fz_at_step = s;
        fz_step(&z);
        if (k->hub_at > 0 && !z.hub_sent && s >= k->steps * k->hub_at / 100) {
            /* a hub SHUTDOWN in the middle of the traffic, which goes on until the loop
             * has ended by itself */
            cpar_msg m;
            void *c = th_dealer(z.f.ctx, cpar_controller_client_endpoint(z.f.c));
            fz_phase = "hub SHUTDOWN: waiting for SHUTDOWN_REPLY";
            th_msg(&m, CPAR_MSG_SHUTDOWN);
            m.h.flags = CPAR_FLAG_HUB;
            th_send(c, z.f.s, &m); /* blocking: it must not be dropped like traffic */
            th_expect(c, z.f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
            cpar_msg_close(&m);
            zmq_close(c);
            fz_phase = "traffic after a hub SHUTDOWN";
            z.hub_sent = 1;
        }
    }
    fz_drain(&z);
    if (z.hub_sent) {
        for (int i = 0; i < k->engines; i++)
            fz_engine_close(&z, &z.e[i]);
        for (int i = 0; i < k->clients; i++)
            if (z.c[i])
                zmq_close(z.c[i]);
        fz_phase = "waiting for the loop to end after a hub SHUTDOWN";
        ASSERT_OK(fx_join(&z.f));
        fz_phase = "stopping";
        free(fx_stop(&z.f));
        printf("# seed %llu: hub SHUTDOWN mid-run; %lu sent (%lu garbage), %lu received\n",
               (unsigned long long)k->seed, z.sent, z.garbage, z.received);
        return 0;
    }

    /* still responsive: a fresh client is answered */
    fz_phase = "final CONNECT and QUERY";
    {
        void *c = fx_client(&z.f, &nengines, NULL);
        q = fx_query(&z.f, c, "queue_status", NULL, 0);
        ASSERT_STR_CONTAINS(q, "\"unassigned\"");
        hub = (int)(k->seed & 1);
        if (hub) { /* half the cases end by a hub SHUTDOWN, the rest by stop() */
            cpar_msg m;
            th_msg(&m, CPAR_MSG_SHUTDOWN);
            m.h.flags = CPAR_FLAG_HUB;
            th_send(c, z.f.s, &m);
            th_expect(c, z.f.s, CPAR_MSG_SHUTDOWN_REPLY, &m);
            cpar_msg_close(&m);
        }
        fx_close(&z.f, c);
    }
    for (int i = 0; i < k->engines; i++)
        fz_engine_close(&z, &z.e[i]);
    for (int i = 0; i < k->clients; i++)
        if (z.c[i])
            zmq_close(z.c[i]);
    fz_phase = "stopping";
    if (hub)
        ASSERT_OK(fx_join(&z.f));
    log = fx_stop(&z.f);
    free(log);
    printf("# seed %llu: %lu sent (%lu garbage), %lu received, %zu engines live at the end, "
           "peak RSS %ld MiB\n",
           (unsigned long long)k->seed, z.sent, z.garbage, z.received, nengines,
           fz_peak_rss_kb() / 1024);
    ASSERT_LT(fz_peak_rss_kb() / 1024, max_rss_mb);
    return 0;
}

/* ---- driver ------------------------------------------------------------------------- */

static void
fz_case_line(const void *kv, char *out, size_t len)
{
    const fz_case *k = kv;
    snprintf(out, len,
             "seed=%llu steps=%ld engines=%d clients=%d hb_timeout_ms=%d scheme=%d hwm=%d "
             "max_records=%d hub_at=%d",
             (unsigned long long)k->seed, k->steps, k->engines, k->clients, k->hb_timeout_ms,
             k->scheme, k->hwm, k->max_records, k->hub_at);
}

static void
fz_parse(const char *text, void *kv)
{
    fz_case *k = kv;
    k->seed = fk_field_u64(text, "seed=", 1);
    k->steps = fk_field(text, "steps=", 3000);
    k->engines = (int)fk_field(text, "engines=", 4);
    k->clients = (int)fk_field(text, "clients=", 3);
    k->hb_timeout_ms = (int)fk_field(text, "hb_timeout_ms=", 400);
    k->scheme = (int)fk_field(text, "scheme=", 0);
    k->hwm = (int)fk_field(text, "hwm=", 0);
    k->max_records = (int)fk_field(text, "max_records=", 0);
    k->hub_at = (int)fk_field(text, "hub_at=", 0);
    if (k->scheme < 0 || k->scheme >= (int)(sizeof(fz_schemes) / sizeof(fz_schemes[0])))
        k->scheme = 0;
    if (k->hwm < -1)
        k->hwm = -1;
    if (k->engines < 1 || k->engines > FZ_MAX_ENGINES)
        k->engines = FZ_MAX_ENGINES;
    if (k->clients < 1 || k->clients > FZ_MAX_CLIENTS)
        k->clients = FZ_MAX_CLIENTS;
    if (k->hb_timeout_ms < 100)
        k->hb_timeout_ms = 100;
}

static void
fz_random(uint64_t seed, void *kv)
{
    fz_case *k = kv;
    fz_parse("", k);
    k->seed = fk_mix(seed);
    k->engines = 1 + (int)(k->seed % FZ_MAX_ENGINES);
    k->clients = 1 + (int)((k->seed >> 8) % FZ_MAX_CLIENTS);
    k->scheme = (int)((k->seed >> 16) % (sizeof(fz_schemes) / sizeof(fz_schemes[0])));
    k->hwm = (int)((k->seed >> 20) % 4) - 1;
    k->max_records = (k->seed >> 24) % 3 == 0 ? 1 + (int)((k->seed >> 26) % 16) : 0;
    k->hub_at = (k->seed >> 30) % 4 == 0 ? 1 + (int)((k->seed >> 32) % 99) : 0;
}

static int
fz_run(const void *k)
{
    return fz_run_case(k);
}

int
main(int argc, char **argv)
{
    static const fk_fuzzer fuzzer = {sizeof(fz_case), CPAR_TEST_TIMEOUT_S, fz_parse, fz_random,
                                     fz_run,          fz_case_line};
    return fk_main(&fuzzer, argc, argv);
}
