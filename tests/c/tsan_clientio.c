/* Threads around the client I/O thread (cext/core/clientio.c, clientshm.c), built with
 * ThreadSanitizer by `make tsan` (and with ASan by ctest-asan's rules when asked): a real
 * controller in a thread, a fake engine in another thread that answers every request
 * (STREAM then REPLY, its large reply frames by shared-memory descriptor when offered,
 * pins kept until the client's RELEASE), and a cpar_clientio used at once by several
 * posting threads, several taking threads, a thread reading the counters, and finally a
 * thread closing it while the others still wait or post. No Python: this is the C the
 * extension runs with the GIL released.
 *
 * Asserted: every request gets its REPLY (with the right bytes, also when they came by
 * descriptor), close wakes every waiter and makes posts fail cleanly, no item leaks
 * (cpar_clientio_items_alive), nothing stays pinned, and TSan reports nothing (it exits
 * the process non-zero on a report: halt_on_error in make tsan). Test code. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clientio.h"
#include "ctlfx.h"
#include "errors.h"
#include "shm.h"
#include "test.h"

#define TC_POSTERS 3
#define TC_TAKERS 2
#define TC_PER_POSTER 150
#define TC_BIG (96u << 10) /* a frame of this size goes by descriptor */

/* ---- the fake engine ---------------------------------------------------------------- */

typedef struct tc_engine {
    fx *f;
    cpar_signer *s; /* the engine thread's own */
    void *sock;
    int32_t id;
    atomic_int stop;
    cpar_shm_pins pins; /* reply frames the client may still read */
    unsigned long answered, shm_in, released, stale;
} tc_engine;

static void
tc_engine_answer(tc_engine *e, cpar_msg *req)
{
    char err[256];
    cpar_msg m;
    size_t body = (req->h.flags & CPAR_FLAG_TARGETED) ? 1 : 0;

    if (req->h.flags & CPAR_FLAG_SHM)
        e->shm_in++;
    {
        int rc = cpar_shm_resolve(req, 0, err, sizeof(err));
        if (rc == CPAR_ESTALE) { /* the client closed and let go first: a clean refusal */
            e->stale++;
            return;
        }
        ASSERT_OK(rc);
    }
    ASSERT_LT(body, req->nframes);
    /* a STREAM first, as an engine does */
    th_msg(&m, CPAR_MSG_STREAM);
    m.h.engine = e->id;
    m.h.flags = CPAR_FLAG_STDOUT;
    memcpy(m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    th_add_str(&m, "out");
    th_send(e->sock, e->s, &m);
    /* the REPLY echoes the request's frames after the target list */
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = e->id;
    memcpy(m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    for (size_t i = body; i < req->nframes; i++)
        ASSERT_OK(
            cpar_msg_add_copy(&m, zmq_msg_data(&req->frames[i]), zmq_msg_size(&req->frames[i])));
    if (req->h.flags & CPAR_FLAG_SHM_OK) {
        zmq_msg_t *pinned = NULL;
        size_t npinned = 0;
        cpar_shm_seal seal;
        int n = cpar_shm_offload(&m, 0, CPAR_SHM_MIN_SIZE, &pinned, &npinned, &seal);
        ASSERT_GE(n, 0);
        if (n > 0)
            ASSERT_OK(cpar_shm_pins_add(&e->pins, req->h.msg_id, pinned, npinned, &seal, NULL, 0));
    }
    th_send(e->sock, e->s, &m);
    e->answered++;
}

/* Answers the client's shared-memory PROBE as an engine's I/O thread does: "ok" when its
 * pattern could be read, and our own pattern by descriptor. */
static void
tc_engine_probe(tc_engine *e, cpar_msg *req)
{
    char err[256];
    uint8_t pattern[CPAR_SHM_PROBE_SIZE];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0;
    cpar_shm_seal seal;
    cpar_msg m;

    ASSERT_OK(cpar_shm_resolve(req, 0, err, sizeof(err)));
    ASSERT(req->nframes >= 2 && cpar_shm_probe_check(&req->frames[1]));
    th_msg(&m, CPAR_MSG_REPLY);
    m.h.engine = e->id;
    memcpy(m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    th_add_str(&m, "ok");
    cpar_shm_probe_fill(pattern);
    ASSERT_OK(cpar_msg_add_copy(&m, pattern, sizeof(pattern)));
    ASSERT_EQ(cpar_shm_offload(&m, 1, CPAR_SHM_PROBE_SIZE, &pinned, &npinned, &seal), 1);
    ASSERT_OK(cpar_shm_pins_add(&e->pins, req->h.msg_id, pinned, npinned, &seal, NULL, 0));
    th_send(e->sock, e->s, &m);
}

static void *
tc_engine_main(void *arg)
{
    tc_engine *e = arg;
    uint64_t next_beat = 0;
    while (!atomic_load(&e->stop)) {
        cpar_msg m;
        int rc;
        if (fx_now_ms() >= next_beat) {
            cpar_msg hb;
            th_msg(&hb, CPAR_MSG_HEARTBEAT);
            hb.h.engine = e->id;
            th_send(e->sock, e->s, &hb);
            next_beat = fx_now_ms() + 50;
        }
        rc = th_recv(e->sock, e->s, &m, 20);
        if (rc == CPAR_ETIMEOUT)
            continue;
        ASSERT_OK(rc);
        if (m.h.type == CPAR_MSG_EXECUTE || m.h.type == CPAR_MSG_APPLY) {
            tc_engine_answer(e, &m);
        } else if (m.h.type == CPAR_MSG_PROBE) {
            tc_engine_probe(e, &m);
        } else if (m.h.type == CPAR_MSG_RELEASE) {
            size_t len = m.nframes > 1 ? zmq_msg_size(&m.frames[1]) : 0;
            const uint8_t *p = len ? zmq_msg_data(&m.frames[1]) : NULL;
            for (size_t i = 0; i + CPAR_WIRE_ID_SIZE <= len; i += CPAR_WIRE_ID_SIZE)
                e->released += cpar_shm_pins_answered(&e->pins, p + i, -1);
        }
        cpar_msg_close(&m);
    }
    return NULL;
}

/* Registers a fake engine that says it shares our host (our own locality token), and
 * starts its thread. */
static void
tc_engine_start(fx *f, tc_engine *e, pthread_t *t)
{
    char token[CPAR_SHM_TOKEN_SIZE], payload[CPAR_SHM_TOKEN_SIZE + 64];
    cpar_msg m;
    memset(e, 0, sizeof(*e));
    e->f = f;
    e->s = th_signer();
    cpar_shm_pins_init(&e->pins);
    e->sock = fx_dealer(f, 1);
    th_msg(&m, CPAR_MSG_REGISTER);
    m.h.target = -1;
    if (cpar_shm_token(token, sizeof(token)) == 0)
        snprintf(payload, sizeof(payload), "pid=%d\nhost=tsan\nshm=%s\n", (int)getpid(), token);
    else
        snprintf(payload, sizeof(payload), "pid=%d\nhost=tsan\n", (int)getpid());
    th_add_str(&m, payload);
    th_send(e->sock, f->s, &m);
    th_expect(e->sock, f->s, CPAR_MSG_REGISTER_REPLY, &m);
    ASSERT_OK(m.h.status);
    e->id = m.h.engine;
    cpar_msg_close(&m);
    ASSERT_OK(pthread_create(t, NULL, tc_engine_main, e));
}

static void
tc_engine_stop(tc_engine *e, pthread_t t)
{
    atomic_store(&e->stop, 1);
    ASSERT_OK(pthread_join(t, NULL));
    cpar_shm_pins_free(&e->pins);
    cpar_signer_free(e->s);
}

/* ---- the client side ---------------------------------------------------------------- */

typedef struct tc_client {
    cpar_clientio *io;
    int32_t engine;
    atomic_int posted, replies, streams, errors, bad;
    atomic_int stop_stats;
    int expect; /* replies expected in all */
} tc_client;

/* Request k of poster p: its body frame's bytes (k, p) and length (small or big). */
static size_t
tc_body(int p, int k, uint8_t *buf, size_t cap)
{
    size_t n = (k % 5 == 0) ? TC_BIG : 16 + (size_t)(k % 7);
    ASSERT_LE(n, cap);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(p * 31 + k + (int)(i % 251));
    return n;
}

typedef struct tc_poster {
    tc_client *c;
    int p;
} tc_poster;

static void *
tc_post_main(void *arg)
{
    tc_poster *ps = arg;
    static _Thread_local uint8_t buf[TC_BIG];
    for (int k = 0; k < TC_PER_POSTER; k++) {
        cpar_clientio_item *it = cpar_clientio_item_new(CPAR_MSG_APPLY);
        size_t n = tc_body(ps->p, k, buf, sizeof(buf));
        uint8_t tag[8] = {(uint8_t)ps->p, (uint8_t)k, (uint8_t)(k >> 8)};
        ASSERT(it != NULL);
        th_id(it->m.h.msg_id);
        th_targets(&it->m, &ps->c->engine, 1);
        ASSERT_OK(cpar_msg_add_copy(&it->m, tag, sizeof(tag)));
        ASSERT_OK(cpar_msg_add_copy(&it->m, buf, n));
        ASSERT_OK(cpar_clientio_post(ps->c->io, it));
        atomic_fetch_add(&ps->c->posted, 1);
    }
    return NULL;
}

/* Checks a REPLY's frames: the tag (poster, k) and the body bytes it implies. */
static int
tc_reply_ok(const cpar_msg *m)
{
    static _Thread_local uint8_t want[TC_BIG];
    const uint8_t *tag;
    size_t n;
    if (m->nframes != 2 || zmq_msg_size((zmq_msg_t *)&m->frames[0]) != 8)
        return 0;
    tag = zmq_msg_data((zmq_msg_t *)&m->frames[0]);
    n = tc_body(tag[0], tag[1] | (tag[2] << 8), want, sizeof(want));
    return zmq_msg_size((zmq_msg_t *)&m->frames[1]) == n &&
           memcmp(zmq_msg_data((zmq_msg_t *)&m->frames[1]), want, n) == 0;
}

static void *
tc_take_main(void *arg)
{
    tc_client *c = arg;
    for (;;) {
        cpar_clientio_item *list = NULL;
        size_t n = 0;
        int rc = cpar_clientio_take(c->io, 100, 16, &list, &n);
        if (rc == CPAR_ECLOSED)
            return NULL;
        ASSERT_OK(rc);
        for (cpar_clientio_item *it = list; it; it = it->next) {
            if (it->m.h.type == CPAR_MSG_REPLY) {
                if (!tc_reply_ok(&it->m))
                    atomic_fetch_add(&c->bad, 1);
                atomic_fetch_add(&c->replies, 1);
            } else if (it->m.h.type == CPAR_MSG_STREAM) {
                atomic_fetch_add(&c->streams, 1);
            } else if (it->m.h.type == CPAR_MSG_ERROR) {
                atomic_fetch_add(&c->errors, 1);
            }
        }
        cpar_clientio_list_free(list);
        if (atomic_load(&c->replies) >= c->expect)
            return NULL;
    }
}

static void *
tc_stats_main(void *arg)
{
    tc_client *c = arg;
    uint64_t sum = 0;
    while (!atomic_load(&c->stop_stats)) {
        cpar_clientio_stats st;
        int64_t a, b, d;
        cpar_clientio_get_stats(c->io, &st);
        cpar_clientio_shm_totals(&a, &b, &d);
        sum += st.sent + st.received + (uint64_t)cpar_clientio_shm_pinned() + (uint64_t)a;
        (void)cpar_clientio_closed(c->io);
    }
    (void)sum;
    return NULL;
}

static void
tc_connect(tc_client *c, fx *f)
{
    char err[256] = "";
    cpar_clientio_item *it, *list = NULL;
    size_t n = 0;
    uint64_t deadline = fx_now_ms() + TH_WAIT_MS;
    ASSERT_OK(cpar_clientio_new(cpar_controller_client_endpoint(f->c), (const uint8_t *)TH_KEY,
                                strlen(TH_KEY), NULL, &c->io, err, sizeof(err)));
    /* CONNECT first: the I/O thread learns from the reply which engines share our host */
    it = cpar_clientio_item_new(CPAR_MSG_CONNECT);
    ASSERT(it != NULL);
    th_id(it->m.h.msg_id);
    {
        char hello[32];
        int len = snprintf(hello, sizeof(hello), "pid=%d", (int)getpid());
        ASSERT_OK(cpar_msg_add_copy(&it->m, hello, (size_t)len)); /* descriptors name us */
    }
    ASSERT_OK(cpar_clientio_post(c->io, it));
    for (;;) {
        int got = 0;
        ASSERT_LT(fx_now_ms(), deadline);
        ASSERT_OK(cpar_clientio_take(c->io, 200, 1, &list, &n));
        for (cpar_clientio_item *x = list; x; x = x->next)
            got |= x->m.h.type == CPAR_MSG_CONNECT_REPLY;
        cpar_clientio_list_free(list);
        if (got)
            break;
    }
    /* The probes of the fake engine come back before the first request. */
    for (;;) {
        cpar_clientio_stats st;
        cpar_clientio_get_stats(c->io, &st);
        if (st.shm_probing == 0)
            return;
        ASSERT_LT(fx_now_ms(), deadline);
        usleep(1000);
    }
}

/* Posters, takers and a stats reader at once; every REPLY comes back with its bytes. */
TEST_IMPL(clientio_threads)
{
    fx f;
    tc_engine e;
    tc_client c;
    tc_poster ps[TC_POSTERS];
    pthread_t et, pt[TC_POSTERS], tt[TC_TAKERS], st;
    cpar_clientio_stats stats;

    fx_start(&f, FX_HB_LONG);
    tc_engine_start(&f, &e, &et);
    memset(&c, 0, sizeof(c));
    c.engine = e.id;
    c.expect = TC_POSTERS * TC_PER_POSTER;
    tc_connect(&c, &f);
    ASSERT_OK(pthread_create(&st, NULL, tc_stats_main, &c));
    for (int i = 0; i < TC_TAKERS; i++)
        ASSERT_OK(pthread_create(&tt[i], NULL, tc_take_main, &c));
    for (int i = 0; i < TC_POSTERS; i++) {
        ps[i].c = &c;
        ps[i].p = i;
        ASSERT_OK(pthread_create(&pt[i], NULL, tc_post_main, &ps[i]));
    }
    for (int i = 0; i < TC_POSTERS; i++)
        ASSERT_OK(pthread_join(pt[i], NULL));
    for (int i = 0; i < TC_TAKERS; i++)
        ASSERT_OK(pthread_join(tt[i], NULL));
    ASSERT_EQ(atomic_load(&c.replies), c.expect);
    ASSERT_EQ(atomic_load(&c.bad), 0);
    ASSERT_EQ(atomic_load(&c.errors), 0);
    cpar_clientio_get_stats(c.io, &stats);
    printf("# %d replies, %d streams; %llu frames sent and %llu received by descriptor\n",
           atomic_load(&c.replies), atomic_load(&c.streams), (unsigned long long)stats.shm_sent,
           (unsigned long long)stats.shm_received);
    if (stats.shm) { /* the shared-memory path really ran, both ways */
        ASSERT_GT(stats.shm_sent, 0);
        ASSERT_GT(stats.shm_received, 0);
        ASSERT_GT(e.shm_in, 0);
    }
    /* close from this thread while the stats thread still reads */
    cpar_clientio_close(c.io);
    atomic_store(&c.stop_stats, 1);
    ASSERT_OK(pthread_join(st, NULL));
    ASSERT_EQ(cpar_clientio_shm_pinned(), 0);
    cpar_clientio_free(c.io);
    tc_engine_stop(&e, et);
    free(fx_stop(&f));
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

typedef struct tc_closer {
    cpar_clientio *io;
    atomic_int *go;
} tc_closer;

static void *
tc_close_main(void *arg)
{
    tc_closer *cl = arg;
    while (!atomic_load(cl->go))
        ;
    cpar_clientio_close(cl->io);
    return NULL;
}

static void *
tc_post_until_closed(void *arg)
{
    tc_client *c = arg;
    for (int k = 0;; k++) {
        cpar_clientio_item *it = cpar_clientio_item_new(CPAR_MSG_APPLY);
        uint8_t tag[8] = {0, (uint8_t)k, (uint8_t)(k >> 8)};
        static _Thread_local uint8_t buf[TC_BIG];
        size_t n = tc_body(0, k, buf, sizeof(buf));
        int rc;
        ASSERT(it != NULL);
        th_id(it->m.h.msg_id);
        th_targets(&it->m, &c->engine, 1);
        ASSERT_OK(cpar_msg_add_copy(&it->m, tag, sizeof(tag)));
        ASSERT_OK(cpar_msg_add_copy(&it->m, buf, n));
        rc = cpar_clientio_post(c->io, it);
        if (rc == CPAR_ECLOSED)
            return NULL;
        ASSERT_OK(rc);
    }
}

/* Close from one thread while two close at once, one posts and two wait in take: every
 * waiter wakes, the poster gets CPAR_ECLOSED, nothing leaks or stays pinned. */
TEST_IMPL(clientio_close_races)
{
    fx f;
    tc_engine e;
    tc_client c;
    atomic_int go = 0;
    tc_closer cl;
    pthread_t et, pt, tt[2], ct[2];

    fx_start(&f, FX_HB_LONG);
    tc_engine_start(&f, &e, &et);
    for (int round = 0; round < 3; round++) {
        memset(&c, 0, sizeof(c));
        c.engine = e.id;
        c.expect = 1 << 30; /* takers run until closed */
        tc_connect(&c, &f);
        atomic_store(&go, 0);
        cl.io = c.io;
        cl.go = &go;
        for (int i = 0; i < 2; i++)
            ASSERT_OK(pthread_create(&tt[i], NULL, tc_take_main, &c));
        ASSERT_OK(pthread_create(&pt, NULL, tc_post_until_closed, &c));
        for (int i = 0; i < 2; i++)
            ASSERT_OK(pthread_create(&ct[i], NULL, tc_close_main, &cl));
        while (atomic_load(&c.replies) < 10)
            ;
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++)
            ASSERT_OK(pthread_join(ct[i], NULL));
        ASSERT_OK(pthread_join(pt, NULL));
        for (int i = 0; i < 2; i++)
            ASSERT_OK(pthread_join(tt[i], NULL));
        ASSERT(cpar_clientio_closed(c.io));
        ASSERT_EQ(cpar_clientio_shm_pinned(), 0);
        cpar_clientio_free(c.io);
    }
    tc_engine_stop(&e, et);
    free(fx_stop(&f));
    ASSERT_EQ(cpar_clientio_items_alive(), 0);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(clientio_threads),
        TEST_ENTRY(clientio_close_races),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
