/* Tests of the task database's memory of recent arrivals (cext/controller/taskdb_seqs.c):
 * hits and misses per (id, engine), a key put again, eviction of the oldest when full,
 * forgetting a deleted record (present, evicted, out of range, twice), seqs that do not
 * increase, clear and free; a long random run against a plain model; and a real
 * cpar_taskdb whose memory forgets the records its purges and bounds delete. */
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"
#include "taskdb_seqs.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static void
id_of(uint8_t id[CPAR_WIRE_ID_SIZE], uint64_t k)
{
    memset(id, 0xab, 8);
    for (int i = 0; i < 8; i++)
        id[8 + i] = (uint8_t)(k >> (8 * i));
}

static int64_t
get(const cpar__seqs *c, uint64_t k, int32_t engine)
{
    uint8_t id[CPAR_WIRE_ID_SIZE];
    id_of(id, k);
    return cpar__seqs_get(c, id, engine);
}

static void
put(cpar__seqs *c, uint64_t k, int32_t engine, int64_t seq)
{
    uint8_t id[CPAR_WIRE_ID_SIZE];
    id_of(id, k);
    cpar__seqs_put(c, id, engine, seq);
}

TEST_IMPL(seqs_hits_and_misses)
{
    cpar__seqs c;
    ASSERT_OK(cpar__seqs_init(&c, 8));
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 0); /* empty */
    put(&c, 1, CPAR_NO_ENGINE, 10);           /* a task */
    put(&c, 2, 3, 11);                        /* two parts of one request */
    put(&c, 2, 5, 12);
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 10);
    ASSERT_EQ(get(&c, 2, 3), 11);
    ASSERT_EQ(get(&c, 2, 5), 12);
    ASSERT_EQ(get(&c, 1, 0), 0); /* the engine is part of the key */
    ASSERT_EQ(get(&c, 2, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 2, 4), 0);
    ASSERT_EQ(get(&c, 3, CPAR_NO_ENGINE), 0);
    /* the same key again (an id recorded anew): the newer record wins */
    put(&c, 1, CPAR_NO_ENGINE, 13);
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 13);
    ASSERT_EQ(c.tab.count, 3);
    /* a seq that does not increase is not remembered (nor is seq 0) */
    put(&c, 4, CPAR_NO_ENGINE, 13);
    put(&c, 5, CPAR_NO_ENGINE, 0);
    ASSERT_EQ(get(&c, 4, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 5, CPAR_NO_ENGINE), 0);
    cpar__seqs_clear(&c);
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 2, 3), 0);
    ASSERT_EQ(c.tab.count, 0);
    put(&c, 6, CPAR_NO_ENGINE, 14); /* usable after a clear */
    ASSERT_EQ(get(&c, 6, CPAR_NO_ENGINE), 14);
    cpar__seqs_free(&c);
    ASSERT_EQ(get(&c, 6, CPAR_NO_ENGINE), 0);
    put(&c, 7, CPAR_NO_ENGINE, 15); /* freed: ignored, no crash */
    ASSERT_EQ(get(&c, 7, CPAR_NO_ENGINE), 0);
    return 0;
}

TEST_IMPL(seqs_evict_the_oldest)
{
    cpar__seqs c;
    ASSERT_OK(cpar__seqs_init(&c, 4));
    for (uint64_t k = 1; k <= 10; k++)
        put(&c, k, CPAR_NO_ENGINE, (int64_t)(100 + k));
    for (uint64_t k = 1; k <= 6; k++)
        ASSERT_EQ(get(&c, k, CPAR_NO_ENGINE), 0);
    for (uint64_t k = 7; k <= 10; k++)
        ASSERT_EQ(get(&c, k, CPAR_NO_ENGINE), (int64_t)(100 + k));
    ASSERT_EQ(c.tab.count, 4);
    ASSERT_EQ(c.n, 4);
    /* a replaced entry stays in the ring, dead, until its turn to go */
    put(&c, 9, CPAR_NO_ENGINE, 200);
    ASSERT_EQ(get(&c, 9, CPAR_NO_ENGINE), 200);
    ASSERT_EQ(get(&c, 7, CPAR_NO_ENGINE), 0); /* the oldest went for it */
    ASSERT_EQ(c.tab.count, 3);
    put(&c, 11, CPAR_NO_ENGINE, 201); /* 8 goes */
    put(&c, 12, CPAR_NO_ENGINE, 202); /* the dead 9 goes: 10 stays */
    ASSERT_EQ(get(&c, 8, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 9, CPAR_NO_ENGINE), 200);
    ASSERT_EQ(get(&c, 10, CPAR_NO_ENGINE), 110);
    ASSERT_EQ(get(&c, 11, CPAR_NO_ENGINE), 201);
    ASSERT_EQ(get(&c, 12, CPAR_NO_ENGINE), 202);
    ASSERT_EQ(c.tab.count, 4);
    put(&c, 13, CPAR_NO_ENGINE, 203); /* 10 goes */
    ASSERT_EQ(get(&c, 10, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 9, CPAR_NO_ENGINE), 200);
    cpar__seqs_free(&c);
    return 0;
}

TEST_IMPL(seqs_forget_deleted_records)
{
    cpar__seqs c;
    ASSERT_OK(cpar__seqs_init(&c, 4));
    put(&c, 1, CPAR_NO_ENGINE, 10);
    put(&c, 2, CPAR_NO_ENGINE, 20);
    put(&c, 3, 1, 30);
    put(&c, 3, 2, 31);
    cpar__seqs_forget(&c, 20);
    ASSERT_EQ(get(&c, 2, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 10);
    cpar__seqs_forget(&c, 20); /* twice: nothing more */
    cpar__seqs_forget(&c, 25); /* no entry of that seq */
    cpar__seqs_forget(&c, 5);  /* below the ring */
    cpar__seqs_forget(&c, 99); /* above it */
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 10);
    ASSERT_EQ(get(&c, 3, 1), 30);
    ASSERT_EQ(get(&c, 3, 2), 31);
    cpar__seqs_forget(&c, 31); /* the newest */
    cpar__seqs_forget(&c, 10); /* the oldest */
    ASSERT_EQ(get(&c, 3, 2), 0);
    ASSERT_EQ(get(&c, 1, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 3, 1), 30);
    ASSERT_EQ(c.tab.count, 1);
    /* the ring wraps: forgetting still finds entries by seq */
    for (uint64_t k = 10; k < 16; k++)
        put(&c, k, CPAR_NO_ENGINE, (int64_t)(40 + k));
    ASSERT_EQ(c.n, 4);
    cpar__seqs_forget(&c, 30); /* evicted already */
    cpar__seqs_forget(&c, 53);
    ASSERT_EQ(get(&c, 13, CPAR_NO_ENGINE), 0);
    ASSERT_EQ(get(&c, 12, CPAR_NO_ENGINE), 52);
    ASSERT_EQ(get(&c, 14, CPAR_NO_ENGINE), 54);
    ASSERT_EQ(get(&c, 15, CPAR_NO_ENGINE), 55);
    /* a key put again after its record was forgotten: the new record */
    put(&c, 13, CPAR_NO_ENGINE, 60);
    ASSERT_EQ(get(&c, 13, CPAR_NO_ENGINE), 60);
    cpar__seqs_free(&c);
    return 0;
}

/* Random puts (new and repeated keys), forgets and clears against a model that keeps
 * every (key, seq) with whether it may still be found: the cache may miss anything that
 * is not among the last `cap` puts, but a hit must always be the key's newest record,
 * never one forgotten. */
TEST_IMPL(seqs_random_against_a_model)
{
    enum { CAP = 64, KEYS = 200, OPS = 200000 };
    static int64_t newest[KEYS][3]; /* per key and engine (-1, 0, 1): its record, or 0 */
    static int64_t put_at[KEYS][3]; /* the put count when it was put */
    static int gone[KEYS][3];       /* forgotten (deleted) */
    cpar__seqs c;
    int64_t seq = 0, puts = 0;
    ASSERT_OK(cpar__seqs_init(&c, CAP));
    for (int op = 0; op < OPS; op++) {
        uint64_t r = cpar_test_xorshift(&rng_state);
        uint64_t k = r % KEYS;
        int e = (int)((r >> 20) % 3);
        int what = (int)((r >> 30) % 100);
        if (what < 60) {
            seq += 1 + (int64_t)((r >> 40) % 3);
            put(&c, k, e - 1, seq);
            newest[k][e] = seq;
            put_at[k][e] = ++puts;
            gone[k][e] = 0;
        } else if (what < 80) {
            if (newest[k][e] != 0) {
                cpar__seqs_forget(&c, newest[k][e]);
                gone[k][e] = 1;
            }
        } else if (what == 80 && (r >> 50) % 50 == 0) {
            cpar__seqs_clear(&c);
            for (int i = 0; i < KEYS; i++)
                for (int j = 0; j < 3; j++)
                    gone[i][j] = 1; /* nothing may be found any more */
        }
        for (int probe = 0; probe < 4; probe++) {
            uint64_t q = cpar_test_xorshift(&rng_state);
            uint64_t qk = q % KEYS;
            int qe = (int)((q >> 20) % 3);
            int64_t got = get(&c, qk, qe - 1);
            if (got != 0) {
                ASSERT_EQ(got, newest[qk][qe]);
                ASSERT(!gone[qk][qe]);
            } else if (newest[qk][qe] != 0 && !gone[qk][qe] && puts - put_at[qk][qe] < CAP) {
                CPAR_TEST_FAIL("key %llu/%d (seq %lld, put %lld of %lld) missed",
                               (unsigned long long)qk, qe - 1, (long long)newest[qk][qe],
                               (long long)put_at[qk][qe], (long long)puts);
            }
        }
        ASSERT_LE(c.tab.count, CAP);
    }
    cpar__seqs_free(&c);
    return 0;
}

/* A DB_REQUEST answered: every event queued before it is applied (and the thread is past
 * that batch, so its memory can be read here). Returns the answer's status. */
static int
ask(cpar_taskdb *db, const char *json)
{
    cpar_msg m;
    cpar_taskdb_answer *a;
    int status;
    cpar_msg_init(&m, CPAR_MSG_DB_REQUEST);
    memset(m.h.msg_id, 0x5a, CPAR_WIRE_ID_SIZE);
    ASSERT_OK(cpar_msg_add_copy(&m, json, strlen(json)));
    ASSERT_OK(cpar_taskdb_request(db, 1, &m));
    cpar_msg_close(&m);
    ASSERT_EQ(cpar_taskdb_answer_next(db, 10000, &a), 1);
    status = a->reply.h.status;
    cpar_taskdb_answer_free(a);
    return status;
}

static void
task_and_reply(cpar_taskdb *db, uint64_t k, int reply)
{
    uint8_t spec[28] = {1};
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_TASK);
    id_of(m.h.msg_id, k);
    ASSERT_OK(cpar_msg_add_copy(&m, spec, sizeof(spec)));
    ASSERT_OK(cpar_msg_add_copy(&m, "body", 4));
    cpar_taskdb_arrival(db, &m);
    cpar_msg_close(&m);
    if (!reply)
        return;
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    id_of(m.h.parent, k);
    ASSERT_OK(cpar_msg_add_copy(&m, "r", 1));
    cpar_taskdb_reply(db, &m);
    cpar_msg_close(&m);
}

TEST_IMPL(seqs_of_a_real_database_forget_deleted_records)
{
    cpar_taskdb_config cfg = {.mode = "memory", .max_records = 3};
    void *z = zmq_ctx_new();
    cpar_taskdb *db = NULL;
    char err[256], q[128];
    ASSERT_OK(cpar_taskdb_open(&cfg, z, &db, err, sizeof(err)));
    task_and_reply(db, 1, 1);
    task_and_reply(db, 2, 1);
    ASSERT_OK(ask(db, "{\"op\": \"history\"}"));
    ASSERT_GT(get(&db->seqs, 1, CPAR_NO_ENGINE), 0);
    ASSERT_GT(get(&db->seqs, 2, CPAR_NO_ENGINE), 0);
    /* purged by the op */
    snprintf(q, sizeof(q),
             "{\"op\": \"purge\", \"msg_ids\": [\"abababababababab%02x00000000000000\"]}", 1);
    ASSERT_OK(ask(db, q));
    ASSERT_EQ(get(&db->seqs, 1, CPAR_NO_ENGINE), 0);
    ASSERT_GT(get(&db->seqs, 2, CPAR_NO_ENGINE), 0);
    /* purged by the bounds (3 records): 2 goes when 3, 4 and 5 are recorded */
    for (uint64_t k = 3; k <= 5; k++)
        task_and_reply(db, k, 1);
    ASSERT_OK(ask(db, "{\"op\": \"history\"}"));
    ASSERT_EQ(get(&db->seqs, 2, CPAR_NO_ENGINE), 0);
    for (uint64_t k = 3; k <= 5; k++)
        ASSERT_GT(get(&db->seqs, k, CPAR_NO_ENGINE), 0);
    /* an id recorded again after its purge is remembered as its new record */
    task_and_reply(db, 1, 0);
    ASSERT_OK(ask(db, "{\"op\": \"history\"}"));
    ASSERT_GT(get(&db->seqs, 1, CPAR_NO_ENGINE), get(&db->seqs, 5, CPAR_NO_ENGINE));
    cpar_taskdb_close(db);
    zmq_ctx_term(z);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(seqs_hits_and_misses),
        TEST_ENTRY(seqs_evict_the_oldest),
        TEST_ENTRY(seqs_forget_deleted_records),
        TEST_ENTRY(seqs_random_against_a_model),
        TEST_ENTRY(seqs_of_a_real_database_forget_deleted_records),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
