/* A fuzzer of the real engine: this program is a fake controller (a ROUTER over TCP) that
 * starts a real cpar-engine process (the ASan/UBSan build, $CPAR_ENGINE, default
 * build/asan/cpar-engine), registers it and sends it validly signed random traffic chosen
 * by a seeded PRNG: EXECUTE/APPLY/TASK requests whose shared-memory descriptor tables are
 * corrupt (wild addresses, huge lengths, foreign pids, duplicate or unsorted indices,
 * placeholders that are not empty, tables of a bad size) or good (our own memory, which
 * the engine may read), bodies that are valid or random pickles and code, INTERRUPT,
 * ABORT and RELEASE naming running, queued, finished or unknown requests, message types
 * an engine does not handle, and unsigned or garbage messages.
 *
 * Asserted: everything the engine sends parses and is correctly signed; every request is
 * answered by exactly one REPLY (an error where the request was bad), from the right
 * engine id; at the end the engine still runs code (a final EXECUTE succeeds), and after
 * SHUTDOWN it exits by itself with status 0 — no crash, no sanitizer report.
 *
 * Usage: fuzz_engine [CORPUS_DIR_OR_FILE...]; each corpus file is one line "seed=N
 * steps=N" (see fuzz_controller.c for the driver's conventions: a forked child per case,
 * CPAR_FUZZ_SECONDS of new seeds after the corpus, "N passed, M failed" last). Test code. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "fuzzkit.h"
#include "helpers.h"
#include "shm.h"
#include "test.h"

#define FE_PENDING 256          /* requests awaiting a REPLY, at most */
#define FE_WAIT_MS 60000        /* longest wait for the engine to answer everything */
#define FE_SHM_BUF (256u << 10) /* our memory that descriptors may point into */
#define FE_HB_PERIOD_MS 100
#define FE_HB_TIMEOUT_MS 3000

typedef struct fe_case {
    uint64_t seed;
    long steps;
} fe_case;

typedef struct fe {
    fe_case k;
    uint64_t rng;
    void *ctx, *router;
    cpar_signer *s;
    uint8_t ident[CPAR_WIRE_MAX_IDENT];
    size_t identlen;
    int32_t id;
    pid_t pid;
    char dir[64];
    uint8_t pending[FE_PENDING][CPAR_WIRE_ID_SIZE];
    uint8_t pending_shm[FE_PENDING]; /* the request carried a descriptor table */
    int npending;
    uint8_t done[64][CPAR_WIRE_ID_SIZE]; /* answered ids, for INTERRUPT/ABORT/RELEASE */
    int ndone;
    size_t shm_used; /* bytes of fe_shm_buf handed out (wraps around) */
    unsigned long sent, replies, errors, streams, beats;
    unsigned long shm_sent, shm_ok; /* requests with a table; of them, answered OK */
} fe;

/* A pickle (protocol 0 with protocol 5's NEXT_BUFFER) of (f, args, kwargs) calls. */
static const char *const fe_pickles[] = {
    "(cbuiltins\nabs\n(I-5\nt(dt.",    /* abs(-5) */
    "(ctime\nsleep\n(F0.05\nt(dt.",    /* a short sleep: something to interrupt */
    "(cbuiltins\nlen\n(\x97t(dt.",     /* len(out-of-band buffer 0) */
    "(cbuiltins\nbytes\n(\x97t(dt.",   /* bytes(buffer 0): its content back */
    "(cbuiltins\nmax\n(I1\nI2\nt(dt.", /* max(1, 2) */
    "(cbuiltins\nint\n(S'zz'\nt(dt.",  /* raises ValueError */
    "(cbuiltins\nabs\n(t(dt.",         /* raises TypeError */
    "(cbuiltins\nlen\n(\x97\x97t(dt.", /* two buffers */
    "I1\n.",                           /* not a 3-tuple */
    "(cnosuchmodule\nf\n(t(dt.",       /* import fails */
};

static const char *const fe_code[] = {
    "x = 1",
    "import time; time.sleep(0.05)",
    "print('out'); import sys; print('err', file=sys.stderr)",
    "raise ValueError('fuzz')",
    "raise SystemExit(3)",
    "raise KeyboardInterrupt",
    "def f(:",
    "y = [i * i for i in range(10000)]",
    "print('x' * 100000)",
    "import time\nfor _ in range(20): time.sleep(0.01)",
    "",
};

static uint8_t fe_shm_buf[FE_SHM_BUF];

static void
fe_send(fe *z, cpar_msg *m)
{
    ASSERT_OK(cpar_wire_send(z->router, z->s, z->ident, z->identlen, m, 0));
    cpar_msg_close(m);
    z->sent++;
}

static void
fe_add(cpar_msg *m, const void *data, size_t len)
{
    ASSERT_OK(cpar_msg_add_copy(m, data, len));
}

static void
fe_random_bytes(fe *z, cpar_msg *m, size_t max)
{
    uint8_t buf[512];
    size_t n = fk_below(&z->rng, (uint32_t)(max < sizeof(buf) ? max : sizeof(buf)));
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)fk_rand(&z->rng);
    fe_add(m, buf, n);
}

/* An id the engine has seen (pending or answered), else a random one. */
static void
fe_known_id(fe *z, uint8_t out[CPAR_WIRE_ID_SIZE])
{
    if (z->npending > 0 && fk_chance(&z->rng, 60))
        memcpy(out, z->pending[fk_below(&z->rng, (uint32_t)z->npending)], CPAR_WIRE_ID_SIZE);
    else if (z->ndone > 0 && fk_chance(&z->rng, 60))
        memcpy(out, z->done[fk_below(&z->rng, (uint32_t)(z->ndone < 64 ? z->ndone : 64))],
               CPAR_WIRE_ID_SIZE);
    else
        th_id(out);
}

/* ---- shared-memory tables ----------------------------------------------------------- */

/* The seal every good table names (shm.h): made once, never broken, so the engine's
 * reads of fe_shm_buf succeed; corrupt tables get a wrong value, address or pid. */
static cpar_shm_seal fe_seal;

/* Makes frames [first, nframes) of m descriptor-borne: placeholders, then a table (the
 * seal first) encoded with cpar_shm_entry_encode, good or corrupt at random. */
static void
fe_shm(fe *z, cpar_msg *m, size_t first)
{
    uint8_t table[8 * CPAR_SHM_ENTRY_SIZE];
    size_t nent = 1, tlen;
    size_t nframes = m->nframes; /* the table will be frame nframes */
    int corrupt = fk_chance(&z->rng, 70);
    cpar_shm_entry seal;

    if (fe_seal.slot == NULL && cpar_shm_seal_new(&fe_seal) != 0)
        return;
    seal.index = CPAR_SHM_SEAL_INDEX;
    seal.pid = (uint32_t)getpid();
    seal.addr = (uint64_t)(uintptr_t)fe_seal.slot;
    seal.len = fe_seal.value;
    if (corrupt && fk_chance(&z->rng, 25)) {
        switch (fk_below(&z->rng, 5)) {
        case 0:
            seal.len = fe_seal.value + 1 + fk_below(&z->rng, 3); /* a stale seal */
            break;
        case 1:
            seal.len = 0;
            break;
        case 2:
            seal.addr = fk_chance(&z->rng, 50) ? seal.addr + 4 : fk_rand(&z->rng);
            break;
        case 3:
            seal.pid = fk_chance(&z->rng, 50) ? (uint32_t)z->pid : 999999;
            break;
        default:
            seal.index = (uint32_t)fk_below(&z->rng, 4);
            break;
        }
    }
    cpar_shm_entry_encode(&seal, table);

    for (size_t i = first; i < nframes && nent < 7; i++) {
        cpar_shm_entry en;
        size_t len = zmq_msg_size(&m->frames[i]);
        if (fk_chance(&z->rng, 30))
            continue;
        /* our own memory: the frame's bytes copied into fe_shm_buf (each frame at its own
         * place, left there until the case ends), the frame emptied */
        if (len == 0)
            len = 1 + fk_below(&z->rng, 4096);
        if (len > FE_SHM_BUF / 2)
            len = FE_SHM_BUF / 2;
        if (z->shm_used + len > FE_SHM_BUF)
            z->shm_used = 0;
        memcpy(fe_shm_buf + z->shm_used, zmq_msg_data(&m->frames[i]),
               len < zmq_msg_size(&m->frames[i]) ? len : zmq_msg_size(&m->frames[i]));
        en.index = (uint32_t)i;
        en.pid = (uint32_t)getpid();
        en.addr = (uint64_t)(uintptr_t)(fe_shm_buf + z->shm_used);
        en.len = len;
        z->shm_used += len;
        if (!(corrupt && fk_chance(&z->rng, 15))) { /* else: a placeholder that is not empty */
            zmq_msg_close(&m->frames[i]);
            zmq_msg_init(&m->frames[i]);
        }
        if (corrupt && fk_chance(&z->rng, 50)) {
            static const uint64_t lens[] = {
                0,          CPAR_SHM_MAX_LEN, CPAR_SHM_MAX_LEN + 1, FE_SHM_BUF + 4096,
                UINT64_MAX, 1ull << 32};
            static const uint64_t addrs[] = {0, 1, 0xffffffffffff0000ull, 0x7ffffffff000ull,
                                             0xdead0000ull};
            switch (fk_below(&z->rng, 6)) {
            case 0:
                en.len = lens[fk_below(&z->rng, sizeof(lens) / sizeof(lens[0]))];
                break;
            case 1:
                en.addr = fk_chance(&z->rng, 50)
                              ? addrs[fk_below(&z->rng, sizeof(addrs) / sizeof(addrs[0]))]
                              : fk_rand(&z->rng);
                break;
            case 2: {
                const uint32_t pids[] = {0, 1, (uint32_t)z->pid, 999999, UINT32_MAX};
                en.pid = pids[fk_below(&z->rng, sizeof(pids) / sizeof(pids[0]))];
                break;
            }
            case 3:
                en.index = nent > 1 && fk_chance(&z->rng, 50) ? (uint32_t)(i - 1) : (uint32_t)i;
                break;
            case 4:
                en.index = fk_chance(&z->rng, 50) ? (uint32_t)nframes : (uint32_t)fk_rand(&z->rng);
                break;
            default:
                en.addr += fk_below(&z->rng, FE_SHM_BUF);
                break;
            }
        }
        cpar_shm_entry_encode(&en, table + nent * CPAR_SHM_ENTRY_SIZE);
        nent++;
    }
    if (nent == 1 && !corrupt)
        return;
    tlen = nent * CPAR_SHM_ENTRY_SIZE;
    if (corrupt && fk_chance(&z->rng, 15))
        tlen = fk_below(&z->rng, (uint32_t)tlen + 30); /* not whole entries */
    if (corrupt && nent > 2 && fk_chance(&z->rng, 15)) /* swapped: indices not increasing */
        for (size_t b = 0; b < CPAR_SHM_ENTRY_SIZE; b++) {
            uint8_t t = table[CPAR_SHM_ENTRY_SIZE + b];
            table[CPAR_SHM_ENTRY_SIZE + b] = table[2 * CPAR_SHM_ENTRY_SIZE + b];
            table[2 * CPAR_SHM_ENTRY_SIZE + b] = t;
        }
    if (corrupt && nent > 1 && fk_chance(&z->rng, 10)) /* the seal moved behind a data entry */
        for (size_t b = 0; b < CPAR_SHM_ENTRY_SIZE; b++) {
            uint8_t t = table[b];
            table[b] = table[CPAR_SHM_ENTRY_SIZE + b];
            table[CPAR_SHM_ENTRY_SIZE + b] = t;
        }
    m->h.flags |= CPAR_FLAG_SHM;
    fe_add(m, table, tlen);
}

/* ---- requests ----------------------------------------------------------------------- */

static void
fe_request(fe *z)
{
    static const int types[] = {CPAR_MSG_EXECUTE, CPAR_MSG_APPLY, CPAR_MSG_APPLY, CPAR_MSG_TASK};
    cpar_msg m;
    int type = types[fk_below(&z->rng, sizeof(types) / sizeof(types[0]))];
    size_t first;

    if (z->npending >= FE_PENDING)
        return;
    th_msg(&m, type);
    if (type == CPAR_MSG_TASK) {
        uint8_t spec[28] = {1};
        fe_add(&m, spec, fk_chance(&z->rng, 90) ? sizeof(spec) : fk_below(&z->rng, 28));
    } else if (fk_chance(&z->rng, 95)) {
        int32_t t = fk_chance(&z->rng, 95) ? z->id : (int32_t)fk_rand(&z->rng);
        th_targets(&m, &t, 1);
    }
    first = m.nframes;
    if (type == CPAR_MSG_EXECUTE) {
        if (fk_chance(&z->rng, 90))
            th_add_str(&m, fe_code[fk_below(&z->rng, sizeof(fe_code) / sizeof(fe_code[0]))]);
        else
            fe_random_bytes(z, &m, 200);
    } else {
        if (fk_chance(&z->rng, 85)) {
            const char *p =
                fe_pickles[fk_below(&z->rng, sizeof(fe_pickles) / sizeof(fe_pickles[0]))];
            fe_add(&m, p, strlen(p));
        } else {
            fe_random_bytes(z, &m, 300);
        }
        for (int b = (int)fk_below(&z->rng, 3); b > 0; b--) {
            if (fk_chance(&z->rng, 30)) {
                uint8_t big[70000];
                memset(big, (int)fk_below(&z->rng, 256), sizeof(big));
                fe_add(&m, big, sizeof(big));
            } else {
                fe_random_bytes(z, &m, 100);
            }
        }
    }
    if (fk_chance(&z->rng, 20))
        m.h.flags |= CPAR_FLAG_SHM_OK;
    if (fk_chance(&z->rng, 35))
        fe_shm(z, &m, first);
    z->pending_shm[z->npending] = (m.h.flags & CPAR_FLAG_SHM) != 0;
    z->shm_sent += z->pending_shm[z->npending];
    memcpy(z->pending[z->npending++], m.h.msg_id, CPAR_WIRE_ID_SIZE);
    fe_send(z, &m);
}

static void
fe_control(fe *z)
{
    uint8_t ids[6 * CPAR_WIRE_ID_SIZE];
    size_t n = fk_below(&z->rng, 7);
    /* the ids frame: whole ids, or (a fifth of the time) cut short inside the last one */
    size_t idlen =
        n * CPAR_WIRE_ID_SIZE - (n && fk_chance(&z->rng, 20) ? 1 + fk_below(&z->rng, 15) : 0);
    int32_t t = z->id;
    cpar_msg m;
    for (size_t i = 0; i < n; i++)
        fe_known_id(z, ids + i * CPAR_WIRE_ID_SIZE);
    switch (fk_below(&z->rng, 6)) {
    case 0:
    case 1:
        th_msg(&m, CPAR_MSG_INTERRUPT);
        if (fk_chance(&z->rng, 90))
            th_targets(&m, &t, 1);
        fe_add(&m, ids, idlen);
        break;
    case 2:
    case 3:
        th_msg(&m, CPAR_MSG_ABORT);
        if (fk_chance(&z->rng, 95))
            fe_add(&m, ids, idlen);
        break;
    case 4:
        th_msg(&m, CPAR_MSG_RELEASE);
        if (fk_chance(&z->rng, 90))
            th_targets(&m, &t, 1);
        fe_add(&m, ids, idlen);
        break;
    default: { /* a type an engine does not handle, or a stray REGISTER_REPLY */
        static const int odd[] = {
            CPAR_MSG_REGISTER,      CPAR_MSG_REGISTER_REPLY, CPAR_MSG_CONNECT,
            CPAR_MSG_CONNECT_REPLY, CPAR_MSG_REPLY,          CPAR_MSG_STREAM,
            CPAR_MSG_ERROR,         CPAR_MSG_QUERY,          CPAR_MSG_ENGINE_EVENT};
        th_msg(&m, odd[fk_below(&z->rng, sizeof(odd) / sizeof(odd[0]))]);
        m.h.engine = fk_chance(&z->rng, 50) ? z->id : (int32_t)fk_rand(&z->rng);
        m.h.status = (int32_t)fk_rand(&z->rng);
        m.h.flags = (uint16_t)fk_rand(&z->rng) & (uint16_t) ~(CPAR_FLAG_TARGETED | CPAR_FLAG_SHM);
        if (fk_chance(&z->rng, 50))
            fe_random_bytes(z, &m, 100);
        break;
    }
    }
    fe_send(z, &m);
}

/* Unsigned or mis-signed input, or frames that are not a message at all. */
static void
fe_garbage(fe *z)
{
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
    cpar_msg m;
    size_t hlen = sizeof(hdr);
    th_msg(&m, fk_chance(&z->rng, 70) ? CPAR_MSG_EXECUTE : (int)fk_below(&z->rng, 64));
    m.h.flags = (uint16_t)fk_rand(&z->rng);
    m.h.nframes = fk_below(&z->rng, 3);
    cpar_wire_header_encode(&m.h, hdr);
    cpar_msg_close(&m);
    if (fk_chance(&z->rng, 30))
        for (size_t i = 0; i < sizeof(hdr); i++)
            hdr[i] = (uint8_t)fk_rand(&z->rng);
    else if (fk_chance(&z->rng, 50))
        for (size_t i = CPAR_WIRE_SIGNED_SIZE; i < sizeof(hdr); i++)
            hdr[i] = (uint8_t)fk_rand(&z->rng);
    if (fk_chance(&z->rng, 20))
        hlen = fk_below(&z->rng, sizeof(hdr));
    ASSERT(zmq_send(z->router, z->ident, z->identlen, ZMQ_SNDMORE) >= 0);
    if (fk_chance(&z->rng, 50)) {
        ASSERT(zmq_send(z->router, hdr, hlen, 0) >= 0);
    } else { /* and a random frame after it */
        uint8_t b[64];
        size_t n = fk_below(&z->rng, sizeof(b));
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)fk_rand(&z->rng);
        ASSERT(zmq_send(z->router, hdr, hlen, ZMQ_SNDMORE) >= 0);
        ASSERT(zmq_send(z->router, b, n, 0) >= 0);
    }
}

/* ---- receiving ---------------------------------------------------------------------- */

static void
fe_answered(fe *z, const uint8_t *parent, int ok)
{
    for (int i = 0; i < z->npending; i++)
        if (memcmp(z->pending[i], parent, CPAR_WIRE_ID_SIZE) == 0) {
            memcpy(z->done[z->ndone % 64], parent, CPAR_WIRE_ID_SIZE);
            z->ndone++;
            z->shm_ok += ok && z->pending_shm[i];
            memmove(z->pending[i], z->pending[i + 1],
                    (size_t)(z->npending - i - 1) * CPAR_WIRE_ID_SIZE);
            memmove(z->pending_shm + i, z->pending_shm + i + 1, (size_t)(z->npending - i - 1));
            z->npending--;
            return;
        }
    CPAR_TEST_FAIL("a REPLY for a request not pending (answered twice, or never sent)");
}

/* Receives one message from the engine within ms; returns 0 or CPAR_ETIMEOUT. Heartbeats
 * are echoed; what the engine sends must parse and come from its own id. */
static int
fe_recv(fe *z, int ms, cpar_msg *out)
{
    zmq_pollitem_t item = {.socket = z->router, .events = ZMQ_POLLIN};
    uint8_t ident[CPAR_WIRE_MAX_IDENT];
    size_t identlen = 0;
    cpar_msg m;
    int rc;

    ASSERT(zmq_poll(&item, 1, ms) >= 0);
    if (!(item.revents & ZMQ_POLLIN))
        return CPAR_ETIMEOUT;
    rc = cpar_wire_recv(z->router, z->s, 1, ident, &identlen, &m, 0);
    if (rc != 0)
        CPAR_TEST_FAIL("the engine sent a bad message: %s (type %d)", cpar_strerror(rc), m.h.type);
    if (z->identlen == 0) {
        memcpy(z->ident, ident, identlen);
        z->identlen = identlen;
    }
    ASSERT_EQ(identlen, z->identlen);
    ASSERT_MEM_EQ(ident, z->ident, identlen);
    switch (m.h.type) {
    case CPAR_MSG_HEARTBEAT:
        z->beats++;
        {
            cpar_msg echo;
            th_msg(&echo, CPAR_MSG_HEARTBEAT);
            echo.h.engine = z->id;
            fe_send(z, &echo);
        }
        break;
    case CPAR_MSG_REPLY:
        ASSERT_EQ(m.h.engine, z->id);
        ASSERT(m.h.status == CPAR_STATUS_OK || m.h.status == CPAR_STATUS_ERROR ||
               m.h.status == CPAR_STATUS_UNMET);
        if (m.h.status != CPAR_STATUS_OK) {
            z->errors++;
            if (getenv("CPAR_FUZZ_VERBOSE") && m.nframes > 0) { /* the error's text */
                const char *p = zmq_msg_data(&m.frames[0]);
                size_t n = zmq_msg_size(&m.frames[0]);
                fprintf(stderr, "# error reply: ");
                for (size_t i = 0; i < n && i < 400; i++)
                    fputc(p[i] >= 32 && p[i] < 127 ? p[i] : '.', stderr);
                fputc('\n', stderr);
            }
        }
        z->replies++;
        fe_answered(z, m.h.parent, m.h.status == CPAR_STATUS_OK);
        break;
    case CPAR_MSG_STREAM:
        ASSERT_EQ(m.h.engine, z->id);
        z->streams++;
        break;
    case CPAR_MSG_REGISTER:
        break;
    default:
        CPAR_TEST_FAIL("the engine sent a type %d message", m.h.type);
    }
    if (out)
        *out = m;
    else
        cpar_msg_close(&m);
    return 0;
}

static void
fe_drain(fe *z)
{
    while (fe_recv(z, 0, NULL) == 0)
        ;
}

/* ---- one case ----------------------------------------------------------------------- */

static void
fe_start_engine(fe *z)
{
    char endpoint[128], path[128], log[128], errpath[128];
    size_t eplen = sizeof(endpoint);
    const char *bin = getenv("CPAR_ENGINE") ? getenv("CPAR_ENGINE") : "build/asan/cpar-engine";
    FILE *f;
    int zero = 0;

    snprintf(z->dir, sizeof(z->dir), "/tmp/cpar-fuzz-engine-XXXXXX");
    ASSERT(mkdtemp(z->dir) != NULL);
    z->ctx = zmq_ctx_new();
    z->router = zmq_socket(z->ctx, ZMQ_ROUTER);
    ASSERT_OK(zmq_setsockopt(z->router, ZMQ_LINGER, &zero, sizeof(zero)));
    ASSERT_OK(zmq_bind(z->router, "tcp://127.0.0.1:*"));
    ASSERT_OK(zmq_getsockopt(z->router, ZMQ_LAST_ENDPOINT, endpoint, &eplen));
    z->s = th_signer();
    snprintf(path, sizeof(path), "%s/conn.json", z->dir);
    snprintf(log, sizeof(log), "%s/engine.log", z->dir);
    snprintf(errpath, sizeof(errpath), "%s/engine.err", z->dir);
    f = fopen(path, "w");
    ASSERT(f != NULL);
    fprintf(f,
            "{\"engine_url\": \"%s\", \"key\": \"%s\", \"signature_scheme\": \"hmac-sha256\", "
            "\"hb_period_ms\": %d, \"hb_timeout_ms\": %d}\n",
            endpoint, TH_KEY, FE_HB_PERIOD_MS, FE_HB_TIMEOUT_MS);
    fclose(f);
    z->pid = fork();
    ASSERT(z->pid >= 0);
    if (z->pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* no stray engine if the driver dies */
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* CPython leaks at exit by design: leaks are not what this run looks for; a huge
         * allocation (a random pickle asks for one) fails as it would without ASan */
        setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1", 1);
        setenv("UBSAN_OPTIONS", "print_stacktrace=1", 1);
        execl(bin, bin, "--connection-file", path, "--log", log, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
}

/* Prints the tail of the engine's stderr and log (for a failure). */
static void
fe_show(const fe *z)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "tail -n 40 %s/engine.err 1>&2; echo '--- engine log' 1>&2; tail -n 20 "
             "%s/engine.log 1>&2",
             z->dir, z->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no engine output)\n");
}

static void
fe_cleanup(fe *z)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", z->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", z->dir);
}

static fe *fe_current; /* for the alarm: kill the engine and show its output */

static void
fe_on_alarm(int sig)
{
    (void)sig;
    if (fe_current && fe_current->pid > 0)
        kill(fe_current->pid, SIGKILL);
    fe_show(fe_current);
    _exit(3);
}

static int
fe_run_case(const fe_case *k)
{
    static fe z;
    cpar_msg m;
    uint64_t deadline;
    int status = 0;
    uint8_t probe[CPAR_WIRE_ID_SIZE];

    memset(&z, 0, sizeof(z));
    z.k = *k;
    z.rng = k->seed * 0x9E3779B97F4A7C15ULL + 7;
    z.id = (int32_t)(k->seed % 5);
    fe_current = &z;
    /* the engine (our child) may read our memory for the good descriptors */
    (void)prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    signal(SIGALRM, fe_on_alarm);
    fe_start_engine(&z);

    /* registration */
    for (;;) {
        if (fe_recv(&z, 30000, &m) != 0) {
            fe_show(&z);
            CPAR_TEST_FAIL("no REGISTER from the engine within 30 s");
        }
        if (m.h.type == CPAR_MSG_REGISTER)
            break;
        cpar_msg_close(&m);
    }
    {
        cpar_msg r;
        char text[64];
        th_msg(&r, CPAR_MSG_REGISTER_REPLY);
        memcpy(r.h.parent, m.h.msg_id, CPAR_WIRE_ID_SIZE);
        r.h.engine = z.id;
        snprintf(text, sizeof(text), "hb_period_ms=%d\nhb_timeout_ms=%d\n", FE_HB_PERIOD_MS,
                 FE_HB_TIMEOUT_MS);
        th_add_str(&r, text);
        fe_send(&z, &r);
        cpar_msg_close(&m);
    }

    for (long s = 0; s < k->steps; s++) {
        uint32_t r = fk_below(&z.rng, 100);
        if (r < 45)
            fe_request(&z);
        else if (r < 75)
            fe_control(&z);
        else if (r < 85)
            fe_garbage(&z);
        else
            (void)fe_recv(&z, (int)fk_below(&z.rng, 30), NULL);
        fe_drain(&z);
    }

    /* every request answered, then the engine still runs code */
    deadline = cpar_mono_ns() + (uint64_t)FE_WAIT_MS * 1000000u;
    while (z.npending > 0 && cpar_mono_ns() < deadline)
        (void)fe_recv(&z, 200, NULL);
    if (z.npending > 0) {
        fe_show(&z);
        CPAR_TEST_FAIL("%d request(s) never answered", z.npending);
    }
    th_msg(&m, CPAR_MSG_EXECUTE);
    th_targets(&m, &z.id, 1);
    th_add_str(&m, "fuzz_probe = 42");
    memcpy(probe, m.h.msg_id, sizeof(probe));
    z.pending_shm[z.npending] = 0;
    memcpy(z.pending[z.npending++], probe, sizeof(probe));
    fe_send(&z, &m);
    for (;;) {
        if (fe_recv(&z, 30000, &m) != 0) {
            fe_show(&z);
            CPAR_TEST_FAIL("the engine did not answer the final EXECUTE");
        }
        if (m.h.type == CPAR_MSG_REPLY && memcmp(m.h.parent, probe, sizeof(probe)) == 0) {
            if (m.h.status != CPAR_STATUS_OK)
                fe_show(&z);
            ASSERT_EQ(m.h.status, CPAR_STATUS_OK);
            cpar_msg_close(&m);
            break;
        }
        cpar_msg_close(&m);
    }

    /* SHUTDOWN: the engine exits by itself, status 0 */
    th_msg(&m, CPAR_MSG_SHUTDOWN);
    fe_send(&z, &m);
    deadline = cpar_mono_ns() + 30000000000ull;
    for (;;) {
        pid_t w = waitpid(z.pid, &status, WNOHANG);
        ASSERT(w >= 0);
        if (w == z.pid)
            break;
        if (cpar_mono_ns() > deadline) {
            kill(z.pid, SIGKILL);
            fe_show(&z);
            CPAR_TEST_FAIL("the engine did not exit within 30 s of SHUTDOWN");
        }
        (void)fe_recv(&z, 50, NULL);
    }
    z.pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fe_show(&z);
        CPAR_TEST_FAIL("the engine ended with %s %d", WIFSIGNALED(status) ? "signal" : "status",
                       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    printf("# seed %llu: %lu sent, %lu replies (%lu errors), %lu streams, %lu heartbeats; "
           "%lu requests with a descriptor table, %lu of them answered OK\n",
           (unsigned long long)k->seed, z.sent, z.replies, z.errors, z.streams, z.beats, z.shm_sent,
           z.shm_ok);
    zmq_close(z.router);
    zmq_ctx_term(z.ctx);
    cpar_signer_free(z.s);
    fe_cleanup(&z);
    return 0;
}

/* ---- driver ------------------------------------------------------------------------- */

static void
fe_parse(const char *text, void *kv)
{
    fe_case *k = kv;
    k->seed = fk_field_u64(text, "seed=", 1);
    k->steps = fk_field(text, "steps=", 400);
}

static void
fe_random(uint64_t seed, void *kv)
{
    fe_parse("", kv);
    ((fe_case *)kv)->seed = seed;
}

static void
fe_case_line(const void *kv, char *out, size_t len)
{
    const fe_case *k = kv;
    snprintf(out, len, "seed=%llu steps=%ld", (unsigned long long)k->seed, k->steps);
}

static int
fe_run(const void *k)
{
    return fe_run_case(k);
}

int
main(int argc, char **argv)
{
    static const fk_fuzzer fuzzer = {
        sizeof(fe_case), CPAR_TEST_TIMEOUT_S * 2, fe_parse, fe_random, fe_run, fe_case_line};
    return fk_main(&fuzzer, argc, argv);
}
