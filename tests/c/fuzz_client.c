/* A fuzzer of the client I/O thread (cext/core/clientio.c, clientshm.c), built with
 * ASan/UBSan: this program is a fake controller (a ROUTER over TCP) that a real
 * cpar_clientio connects to, and it answers the client with validly signed random
 * messages chosen by a seeded PRNG: CONNECT_REPLY and ENGINE_EVENT with odd engine ids
 * and locality tokens (ours, foreign, empty, lines without a space or newline), REPLYs
 * with shared-memory descriptor tables made with cpar_shm_entry_encode (good ones into
 * this process's memory, wild addresses, huge lengths, foreign pids, bad indices, tables
 * of a bad size), ERRORs about pending requests (engine died or not), STREAMs, other
 * types, and unsigned or garbage frames; meanwhile the client posts requests (large
 * frames go by descriptor to engines it believes local) and takes what arrives.
 *
 * Asserted: no sanitizer report; everything the client sends parses and is signed; the
 * client still answers at the end (a CONNECT reaches us and our CONNECT_REPLY reaches its
 * inbox); after close nothing stays pinned and no item leaks. Usage and output as
 * fuzz_controller.c (corpus lines "seed=N steps=N"). Test code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clientio.h"
#include "errors.h"
#include "fuzzkit.h"
#include "helpers.h"
#include "shm.h"
#include "test.h"

#define FC_REQS 64          /* request ids remembered */
#define FC_BUF (512u << 10) /* our memory that good descriptors point into */
#define FC_BIG (80u << 10)  /* request frames of this size go by descriptor */

typedef struct fc {
    uint64_t rng;
    void *ctx, *router;
    cpar_signer *s;
    cpar_signer *other; /* a wrong key: parts signed with it must be dropped */
    cpar_clientio *io;
    uint8_t ident[CPAR_WIRE_MAX_IDENT];
    size_t identlen;
    char token[CPAR_SHM_TOKEN_SIZE];
    uint8_t reqs[FC_REQS][CPAR_WIRE_ID_SIZE];
    int nreqs;
    uint8_t connect_id[CPAR_WIRE_ID_SIZE]; /* the last CONNECT we got */
    int got_connect;
    unsigned long sent, from_client, taken, errors_taken;
} fc;

static uint8_t fc_buf[FC_BUF];

static int32_t
fc_engine(fc *z)
{
    static const int32_t odd[] = {-1, -2, 65535, 65536, 1 << 20, INT32_MAX, INT32_MIN};
    if (fk_chance(&z->rng, 85))
        return (int32_t)fk_below(&z->rng, 8);
    return odd[fk_below(&z->rng, sizeof(odd) / sizeof(odd[0]))];
}

static void
fc_send(fc *z, cpar_msg *m)
{
    ASSERT_OK(cpar_wire_send(z->router, z->s, z->ident, z->identlen, m, 0));
    cpar_msg_close(m);
    z->sent++;
}

static void
fc_add(cpar_msg *m, const void *p, size_t n)
{
    ASSERT_OK(cpar_msg_add_copy(m, p, n));
}

/* "id token" lines: mostly ours, some foreign, some broken. */
static void
fc_token_lines(fc *z, cpar_msg *m)
{
    char text[2048];
    size_t len = 0;
    int n = (int)fk_below(&z->rng, 10);
    for (int i = 0; i < n && len < sizeof(text) - 400; i++) {
        int w;
        switch (fk_below(&z->rng, 8)) {
        case 0:
            w = snprintf(text + len, sizeof(text) - len, "%d other-host\n", (int)fc_engine(z));
            break;
        case 1:
            w = snprintf(text + len, sizeof(text) - len, "abc %s", z->token);
            break;
        case 2:
            w = snprintf(text + len, sizeof(text) - len, " %s\n\n", z->token);
            break;
        case 3:
            w = snprintf(text + len, sizeof(text) - len, "%d\n", (int)fc_engine(z));
            break;
        default:
            w = snprintf(text + len, sizeof(text) - len, "%d %s\n", (int)fc_engine(z), z->token);
            break;
        }
        if (w > 0)
            len += (size_t)w < sizeof(text) - len ? (size_t)w : 0;
    }
    fc_add(m, text, len);
}

static cpar_shm_seal fc_seal; /* named by good tables; made once, never broken */

/* Encodes the seal entry of a table into out: good, or (corrupt) stale or misplaced. */
static void
fc_seal_entry(fc *z, int corrupt, uint8_t out[CPAR_SHM_ENTRY_SIZE])
{
    cpar_shm_entry se = {CPAR_SHM_SEAL_INDEX, (uint32_t)getpid(), 0, 0};
    if (fc_seal.slot == NULL)
        cpar_shm_seal_new(&fc_seal);
    se.addr = (uint64_t)(uintptr_t)fc_seal.slot;
    se.len = fc_seal.value;
    if (corrupt && fk_chance(&z->rng, 30)) {
        switch (fk_below(&z->rng, 3)) {
        case 0:
            se.len++; /* stale */
            break;
        case 1:
            se.addr = fk_rand(&z->rng) & ~(uint64_t)7;
            break;
        default:
            se.pid = 1;
            break;
        }
    }
    cpar_shm_entry_encode(&se, out);
}

static void
fc_pick_parent(fc *z, uint8_t out[CPAR_WIRE_ID_SIZE])
{
    if (z->nreqs > 0 && fk_chance(&z->rng, 80))
        memcpy(out, z->reqs[fk_below(&z->rng, (uint32_t)(z->nreqs < FC_REQS ? z->nreqs : FC_REQS))],
               CPAR_WIRE_ID_SIZE);
    else
        th_id(out);
}

/* A REPLY whose frames [first, n) may go by descriptor, good or corrupt, into m. */
static void
fc_reply_build(fc *z, cpar_msg *m_out)
{
    uint8_t table[7 * CPAR_SHM_ENTRY_SIZE];
    size_t nent = 1, nframes = 1 + fk_below(&z->rng, 4), tlen;
    size_t at = fk_below(&z->rng, FC_BUF / 2);
    cpar_msg m;
    int shm = fk_chance(&z->rng, 60), corrupt = fk_chance(&z->rng, 50);

    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = fc_engine(z);
    m.h.status = fk_chance(&z->rng, 80) ? 0 : (int32_t)fk_below(&z->rng, 3);
    fc_pick_parent(z, m.h.parent);
    fc_seal_entry(z, corrupt, table);
    for (size_t i = 0; i < nframes; i++) {
        if (shm && fk_chance(&z->rng, 70) && nent < 7) {
            cpar_shm_entry en = {.index = (uint32_t)i,
                                 .pid = (uint32_t)getpid(),
                                 .addr = (uint64_t)(uintptr_t)(fc_buf + at),
                                 .len = 1 + fk_below(&z->rng, FC_BUF / 2 - 1)};
            if (corrupt && fk_chance(&z->rng, 50)) {
                switch (fk_below(&z->rng, 5)) {
                case 0:
                    en.addr = fk_chance(&z->rng, 50) ? 0 : fk_rand(&z->rng);
                    break;
                case 1:
                    en.len = fk_chance(&z->rng, 50) ? CPAR_SHM_MAX_LEN + fk_below(&z->rng, 2)
                                                    : fk_rand(&z->rng);
                    break;
                case 2:
                    en.pid = fk_chance(&z->rng, 50) ? 1 : (uint32_t)fk_rand(&z->rng);
                    break;
                case 3:
                    en.index =
                        fk_chance(&z->rng, 50) ? (uint32_t)nframes : (uint32_t)fk_rand(&z->rng);
                    break;
                default:
                    en.len = FC_BUF; /* runs past the end of fc_buf: a short read or not */
                    break;
                }
            }
            cpar_shm_entry_encode(&en, table + nent * CPAR_SHM_ENTRY_SIZE);
            nent++;
            if (corrupt && fk_chance(&z->rng, 10))
                fc_add(&m, "x", 1); /* a placeholder that is not empty */
            else
                fc_add(&m, "", 0);
        } else {
            uint8_t b[64];
            size_t n = fk_below(&z->rng, sizeof(b));
            for (size_t j = 0; j < n; j++)
                b[j] = (uint8_t)fk_rand(&z->rng);
            fc_add(&m, b, n);
        }
    }
    if (shm && (nent > 1 || corrupt)) {
        tlen = nent * CPAR_SHM_ENTRY_SIZE;
        if (corrupt && fk_chance(&z->rng, 15))
            tlen = fk_below(&z->rng, (uint32_t)tlen + 30);
        m.h.flags |= CPAR_FLAG_SHM;
        fc_add(&m, table, tlen);
    }
    *m_out = m;
}

static void
fc_reply(fc *z)
{
    cpar_msg m;
    fc_reply_build(z, &m);
    fc_send(z, &m);
}

/* A coalesced REPLY (docs/protocol.md, "Coalesced replies"): parts that are REPLYs (with
 * descriptors or not), ERRORs or other types, signed or not, about the outer parent or
 * another; an index that is right or not; header frames that are whole or cut. */
static void
fc_coalesced(fc *z)
{
    cpar_msg out, part;
    uint32_t count = fk_below(&z->rng, 5), index[1 + 5];
    int bad_index = fk_chance(&z->rng, 10);

    th_msg(&out, CPAR_MSG_REPLY);
    out.h.flags = CPAR_FLAG_COALESCE;
    fc_pick_parent(z, out.h.parent);
    index[0] = count;
    fc_add(&out, index, 4); /* replaced below */
    for (uint32_t k = 0; k < count; k++) {
        uint32_t kind = fk_below(&z->rng, 10);
        if (kind < 6) {
            fc_reply_build(z, &part);
        } else {
            th_msg(&part, kind < 8 ? CPAR_MSG_ERROR : CPAR_MSG_STREAM);
            part.h.engine = fc_engine(z);
            part.h.status = CPAR_EENGINEDEAD;
            th_add_str(&part, "engine died");
        }
        if (fk_chance(&z->rng, 85))
            memcpy(part.h.parent, out.h.parent, CPAR_WIRE_ID_SIZE);
        if (fk_chance(&z->rng, 5))
            part.h.flags |= CPAR_FLAG_COALESCE;
        ASSERT_OK(cpar_wire_seal(fk_chance(&z->rng, 95) ? z->s : z->other, &part));
        if (fk_chance(&z->rng, 5))
            part.raw[fk_below(&z->rng, CPAR_WIRE_HEADER_SIZE)] ^= 1;
        index[1 + k] = (uint32_t)part.nframes;
        if (bad_index && fk_chance(&z->rng, 50))
            index[1 + k] = fk_chance(&z->rng, 50) ? (uint32_t)fk_rand(&z->rng) : index[1 + k] + 1;
        fc_add(&out, part.raw,
               fk_chance(&z->rng, 97) ? CPAR_WIRE_HEADER_SIZE : fk_below(&z->rng, 112));
        for (size_t f = 0; f < part.nframes; f++)
            ASSERT_OK(cpar_msg_add_move(&out, &part.frames[f]));
        cpar_msg_close(&part);
    }
    if (bad_index && fk_chance(&z->rng, 50))
        index[0] = fk_chance(&z->rng, 50) ? (uint32_t)fk_rand(&z->rng) : count + 1;
    zmq_msg_close(&out.frames[0]);
    zmq_msg_init_size(&out.frames[0], 4 + 4 * (size_t)count);
    memcpy(zmq_msg_data(&out.frames[0]), index, 4 + 4 * (size_t)count);
    fc_send(z, &out);
}

static void
fc_other(fc *z)
{
    cpar_msg m;
    switch (fk_below(&z->rng, 7)) {
    case 0: {
        int32_t ids[4] = {0, 1, 2, fc_engine(z)};
        int nf = (int)fk_below(&z->rng, 5);
        th_msg(&m, CPAR_MSG_CONNECT_REPLY);
        fc_pick_parent(z, m.h.parent);
        if (nf > 0)
            fc_add(&m, ids, fk_below(&z->rng, sizeof(ids) + 1));
        if (nf > 1)
            th_add_str(&m, "0 1 h\n1 2 h\n");
        if (nf > 2)
            fc_token_lines(z, &m);
        if (nf > 3)
            fc_add(&m, "", 0);
        break;
    }
    case 1:
        th_msg(&m, CPAR_MSG_ENGINE_EVENT);
        m.h.engine = fc_engine(z);
        m.h.status =
            fk_chance(&z->rng, 60) ? 1 : (fk_chance(&z->rng, 80) ? 0 : (int32_t)fk_rand(&z->rng));
        if (fk_chance(&z->rng, 80))
            th_add_str(&m, fk_chance(&z->rng, 70) ? z->token : "foreign-token");
        if (fk_chance(&z->rng, 50))
            th_add_str(&m, "123 host");
        break;
    case 2:
        th_msg(&m, CPAR_MSG_ERROR);
        fc_pick_parent(z, m.h.parent);
        m.h.engine = fc_engine(z);
        m.h.status = fk_chance(&z->rng, 50) ? CPAR_EENGINEDEAD : -(int32_t)fk_below(&z->rng, 20);
        th_add_str(&m, "fuzz error");
        break;
    case 3:
        th_msg(&m, CPAR_MSG_STREAM);
        fc_pick_parent(z, m.h.parent);
        m.h.engine = fc_engine(z);
        m.h.flags = (uint16_t)fk_rand(&z->rng) & (uint16_t) ~(CPAR_FLAG_SHM | CPAR_FLAG_TARGETED);
        th_add_str(&m, "text");
        break;
    case 4: {
        static const int types[] = {CPAR_MSG_QUERY_REPLY, CPAR_MSG_SHUTDOWN_REPLY,
                                    CPAR_MSG_HEARTBEAT,   CPAR_MSG_REGISTER_REPLY,
                                    CPAR_MSG_EXECUTE,     CPAR_MSG_RELEASE};
        th_msg(&m, types[fk_below(&z->rng, sizeof(types) / sizeof(types[0]))]);
        fc_pick_parent(z, m.h.parent);
        m.h.engine = fc_engine(z);
        if (fk_chance(&z->rng, 50))
            th_add_str(&m, "{}");
        break;
    }
    default: { /* not signed, or not a message */
        uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
        size_t hlen = fk_chance(&z->rng, 80) ? sizeof(hdr) : fk_below(&z->rng, sizeof(hdr));
        th_msg(&m, CPAR_MSG_REPLY);
        cpar_wire_header_encode(&m.h, hdr);
        cpar_msg_close(&m);
        if (fk_chance(&z->rng, 40))
            for (size_t i = 0; i < sizeof(hdr); i++)
                hdr[i] = (uint8_t)fk_rand(&z->rng);
        ASSERT(zmq_send(z->router, z->ident, z->identlen, ZMQ_SNDMORE) >= 0);
        ASSERT(zmq_send(z->router, hdr, hlen, 0) >= 0);
        return;
    }
    }
    fc_send(z, &m);
}

/* ---- the client side ---------------------------------------------------------------- */

static void
fc_post(fc *z)
{
    static uint8_t big[FC_BIG];
    cpar_clientio_item *it = cpar_clientio_item_new(CPAR_MSG_APPLY);
    int32_t t[3] = {fc_engine(z), fc_engine(z), fc_engine(z)};
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    memcpy(z->reqs[z->nreqs % FC_REQS], it->m.h.msg_id, CPAR_WIRE_ID_SIZE);
    z->nreqs++;
    th_targets(&it->m, t, 1 + fk_below(&z->rng, 3));
    th_add_str(&it->m, "pickle");
    if (fk_chance(&z->rng, 50)) {
        memset(big, (int)fk_below(&z->rng, 256), sizeof(big));
        fc_add(&it->m, big, sizeof(big));
    }
    ASSERT_OK(cpar_clientio_post(z->io, it));
}

static void
fc_take(fc *z, int ms)
{
    cpar_clientio_item *list = NULL;
    size_t n = 0;
    ASSERT_OK(cpar_clientio_take(z->io, ms, 64, &list, &n));
    for (cpar_clientio_item *it = list; it; it = it->next) {
        z->taken++;
        z->errors_taken += it->m.h.type == CPAR_MSG_ERROR;
    }
    cpar_clientio_list_free(list);
}

/* Answers the client's shared-memory PROBE as its engine would: mostly "ok" and our
 * pattern by a good descriptor, so that the client offers and reads shared-memory replies;
 * sometimes a denial or a bad descriptor. */
static void
fc_probe_answer(fc *z, const cpar_msg *probe)
{
    static uint8_t pattern[CPAR_SHM_PROBE_SIZE];
    uint8_t table[2 * CPAR_SHM_ENTRY_SIZE];
    cpar_shm_entry e = {1, (uint32_t)getpid(), 0, CPAR_SHM_PROBE_SIZE};
    int corrupt = fk_chance(&z->rng, 20);
    cpar_msg m;

    if (probe->nframes < 1 || zmq_msg_size((zmq_msg_t *)&probe->frames[0]) < 4)
        return;
    cpar_shm_probe_fill(pattern);
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = cpar_wire_target_at(probe, 0);
    memcpy(m.h.parent, probe->h.msg_id, CPAR_WIRE_ID_SIZE);
    th_add_str(&m, fk_chance(&z->rng, 85) ? "ok" : "denied: fuzz");
    fc_add(&m, "", 0);
    fc_seal_entry(z, corrupt, table);
    e.addr = (uint64_t)(uintptr_t)pattern;
    if (corrupt && fk_chance(&z->rng, 50))
        e.addr = (uint64_t)(uintptr_t)fc_buf; /* readable, not the pattern */
    cpar_shm_entry_encode(&e, table + CPAR_SHM_ENTRY_SIZE);
    m.h.flags |= CPAR_FLAG_SHM;
    fc_add(&m, table, sizeof(table));
    fc_send(z, &m);
}

/* Reads what the client sent us; it must parse and be signed by the key. */
static void
fc_drain(fc *z, int ms)
{
    zmq_pollitem_t item = {.socket = z->router, .events = ZMQ_POLLIN};
    while (zmq_poll(&item, 1, ms) > 0) {
        uint8_t ident[CPAR_WIRE_MAX_IDENT];
        size_t identlen = 0;
        cpar_msg m;
        int rc = cpar_wire_recv(z->router, z->s, 1, ident, &identlen, &m, 0);
        if (rc != 0)
            CPAR_TEST_FAIL("the client sent a bad message: %s", cpar_strerror(rc));
        z->from_client++;
        if (m.h.type == CPAR_MSG_PROBE)
            fc_probe_answer(z, &m);
        if (m.h.type == CPAR_MSG_CONNECT) {
            memcpy(z->ident, ident, identlen);
            z->identlen = identlen;
            memcpy(z->connect_id, m.h.msg_id, CPAR_WIRE_ID_SIZE);
            z->got_connect = 1;
        }
        cpar_msg_close(&m);
        ms = 0;
    }
}

static void
fc_connect_reply(fc *z)
{
    char lines[2 * CPAR_SHM_TOKEN_SIZE + 16];
    int32_t ids[3] = {0, 1, 2};
    cpar_msg m;
    th_msg(&m, CPAR_MSG_CONNECT_REPLY);
    memcpy(m.h.parent, z->connect_id, CPAR_WIRE_ID_SIZE);
    fc_add(&m, ids, sizeof(ids));
    {
        char pids[96];
        int pid = (int)getpid(); /* engines 0 and 1 are "us": good descriptors name us */
        snprintf(pids, sizeof(pids), "0 %d h\n1 %d h\n2 1 h\n", pid, pid);
        th_add_str(&m, pids);
    }
    snprintf(lines, sizeof(lines), "0 %s\n1 %s\n", z->token, z->token);
    th_add_str(&m, lines);
    fc_send(z, &m);
}

static int
fc_run_case(uint64_t seed, long steps)
{
    static fc z;
    char endpoint[128], err[256] = "";
    size_t eplen = sizeof(endpoint);
    int zero = 0;
    cpar_clientio_item *it;
    uint64_t deadline;

    memset(&z, 0, sizeof(z));
    z.rng = seed * 0x9E3779B97F4A7C15ULL + 3;
    if (cpar_shm_token(z.token, sizeof(z.token)) != 0)
        snprintf(z.token, sizeof(z.token), "no-token");
    for (size_t i = 0; i < FC_BUF; i++)
        fc_buf[i] = (uint8_t)i;
    z.ctx = zmq_ctx_new();
    z.router = zmq_socket(z.ctx, ZMQ_ROUTER);
    ASSERT_OK(zmq_setsockopt(z.router, ZMQ_LINGER, &zero, sizeof(zero)));
    ASSERT_OK(zmq_bind(z.router, "tcp://127.0.0.1:*"));
    ASSERT_OK(zmq_getsockopt(z.router, ZMQ_LAST_ENDPOINT, endpoint, &eplen));
    z.s = th_signer();
    z.other = th_signer_key("0000000000000000000000000000000000000000000000000000000000000000");
    ASSERT_OK(cpar_clientio_new(endpoint, (const uint8_t *)TH_KEY, strlen(TH_KEY), NULL, &z.io, err,
                                sizeof(err)));
    it = cpar_clientio_item_new(CPAR_MSG_CONNECT);
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    ASSERT_OK(cpar_clientio_post(z.io, it));
    deadline = cpar_mono_ns() + 10000000000ull;
    while (!z.got_connect) {
        ASSERT_LT(cpar_mono_ns(), deadline);
        fc_drain(&z, 100);
    }
    fc_connect_reply(&z); /* engines 0 and 1 share our host */

    for (long s = 0; s < steps; s++) {
        uint32_t r = fk_below(&z.rng, 100);
        if (r < 30)
            fc_post(&z);
        else if (r < 56)
            fc_reply(&z);
        else if (r < 60)
            fc_coalesced(&z);
        else if (r < 85)
            fc_other(&z);
        else
            fc_take(&z, (int)fk_below(&z.rng, 5));
        fc_drain(&z, 0);
    }

    /* still answering: a CONNECT reaches us and our reply reaches the inbox */
    z.got_connect = 0;
    it = cpar_clientio_item_new(CPAR_MSG_CONNECT);
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    ASSERT_OK(cpar_clientio_post(z.io, it));
    deadline = cpar_mono_ns() + 10000000000ull;
    while (!z.got_connect) {
        ASSERT_LT(cpar_mono_ns(), deadline);
        fc_drain(&z, 100);
        fc_take(&z, 0);
    }
    fc_connect_reply(&z);
    for (int found = 0; !found;) {
        cpar_clientio_item *list = NULL;
        size_t n = 0;
        ASSERT_LT(cpar_mono_ns(), deadline);
        ASSERT_OK(cpar_clientio_take(z.io, 100, 64, &list, &n));
        for (cpar_clientio_item *x = list; x; x = x->next)
            found |= x->m.h.type == CPAR_MSG_CONNECT_REPLY &&
                     memcmp(x->m.h.parent, z.connect_id, CPAR_WIRE_ID_SIZE) == 0;
        cpar_clientio_list_free(list);
        fc_drain(&z, 0);
    }
    {
        cpar_clientio_stats st;
        cpar_clientio_get_stats(z.io, &st);
        printf("# seed %llu: %lu sent to the client, %lu from it, %lu taken (%lu errors); "
               "shm: %llu request frames sent, %llu reply frames read, %llu replies failed\n",
               (unsigned long long)seed, z.sent, z.from_client, z.taken, z.errors_taken,
               (unsigned long long)st.shm_sent, (unsigned long long)st.shm_received,
               (unsigned long long)st.shm_failed);
    }
    cpar_clientio_close(z.io);
    ASSERT_EQ(cpar_clientio_shm_pinned(), 0);
    cpar_clientio_free(z.io);
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    zmq_close(z.router);
    zmq_ctx_term(z.ctx);
    cpar_signer_free(z.s);
    cpar_signer_free(z.other);
    return 0;
}

/* ---- driver ------------------------------------------------------------------------- */

typedef struct fc_case {
    uint64_t seed;
    long steps;
} fc_case;

static void
fc_parse(const char *text, void *kv)
{
    fc_case *k = kv;
    k->seed = fk_field_u64(text, "seed=", 1);
    k->steps = fk_field(text, "steps=", 2000);
}

static void
fc_random(uint64_t seed, void *kv)
{
    fc_parse("", kv);
    ((fc_case *)kv)->seed = seed;
}

static void
fc_case_line(const void *kv, char *out, size_t len)
{
    const fc_case *k = kv;
    snprintf(out, len, "seed=%llu steps=%ld", (unsigned long long)k->seed, k->steps);
}

static int
fc_run(const void *kv)
{
    const fc_case *k = kv;
    return fc_run_case(k->seed, k->steps);
}

int
main(int argc, char **argv)
{
    static const fk_fuzzer fuzzer = {sizeof(fc_case), CPAR_TEST_TIMEOUT_S, fc_parse, fc_random,
                                     fc_run,          fc_case_line};
    return fk_main(&fuzzer, argc, argv);
}
