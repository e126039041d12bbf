/* Tests of the task database's identity and recovery (cext/controller/taskdb_recover.c;
 * docs/recovery.md): a real cpar_taskdb on a file, fed the events the loop queues
 * (arrivals, dispatch, engine registrations, replies), closed as a dead controller would
 * leave it, then opened again: a normal start ends what was pending; a recovery checks the
 * identity (cluster id, key hash, quick_check) and loads tasks, parts, ended statuses and
 * expected engines. The file is read back with SQLite to see what was written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zmq.h>

#include "errors.h"
#include "taskdb.h"
#include "test.h"

#define ASSERT_STR_EQ(got, want)                                                                   \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (strcmp(g_, w_) != 0)                                                                   \
            CPAR_TEST_FAIL("got '%s', want '%s'", g_, w_);                                         \
    } while (0)

static const uint8_t KEY[] = "the cluster key, 32 bytes long!";

typedef struct rdb {
    void *zctx;
    cpar_taskdb *db;
    char dir[64];
    char path[128];
} rdb;

static void
rdb_dir(rdb *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/cpar-recover-XXXXXX");
    ASSERT(mkdtemp(r->dir) != NULL);
    snprintf(r->path, sizeof(r->path), "%s/db.sqlite", r->dir);
    r->zctx = zmq_ctx_new();
    ASSERT(r->zctx != NULL);
}

static void
rdb_cleanup(rdb *r)
{
    char cmd[128];
    zmq_ctx_term(r->zctx);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
    ASSERT_OK(system(cmd));
}

/* Opens r->path for cluster `cluster` with key (len); returns the code, err filled. */
static int
rdb_open(rdb *r, const char *cluster, const uint8_t *key, size_t keylen, int recover, char *err,
         size_t errlen)
{
    cpar_taskdb_config cfg = {.mode = "sqlite",
                              .path = r->path,
                              .cluster_id = cluster,
                              .key = key,
                              .keylen = keylen,
                              .recover = recover};
    return cpar_taskdb_open(&cfg, r->zctx, &r->db, err, errlen);
}

static void
rdb_open_ok(rdb *r, const char *cluster, int recover)
{
    char err[512];
    if (rdb_open(r, cluster, KEY, sizeof(KEY) - 1, recover, err, sizeof(err)) != 0)
        CPAR_TEST_FAIL("open: %s", err);
}

static void
rdb_close(rdb *r)
{
    cpar_taskdb_close(r->db);
    r->db = NULL;
}

static void
id_of(uint8_t id[CPAR_WIRE_ID_SIZE], int k)
{
    memset(id, 0xcd, 8);
    memset(id + 8, 0, 8);
    id[15] = (uint8_t)k;
}

static void
hex_of(char out[33], int k)
{
    uint8_t id[CPAR_WIRE_ID_SIZE];
    id_of(id, k);
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* TASK k with `retries` in its spec and a payload of len bytes. */
static void
task_arrives(rdb *r, int k, uint32_t retries, size_t len)
{
    uint8_t spec[28] = {1};
    char *body = malloc(len + 1);
    cpar_msg m;
    memset(body, 'p', len);
    spec[4] = (uint8_t)retries;
    cpar_msg_init(&m, CPAR_MSG_TASK);
    id_of(m.h.msg_id, k);
    ASSERT_OK(cpar_msg_add_copy(&m, spec, sizeof(spec)));
    ASSERT_OK(cpar_msg_add_copy(&m, body, len));
    cpar_taskdb_arrival(r->db, &m);
    cpar_msg_close(&m);
    free(body);
}

static void
apply_arrives(rdb *r, int k, const int32_t *e, int n)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    id_of(m.h.msg_id, k);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, e, 4 * (size_t)n));
    ASSERT_OK(cpar_msg_add_copy(&m, "call", 4));
    cpar_taskdb_arrival(r->db, &m);
    cpar_msg_close(&m);
}

static void
reply(rdb *r, int k, int32_t engine, int status)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    id_of(m.h.parent, k);
    m.h.engine = engine;
    m.h.status = status;
    ASSERT_OK(cpar_msg_add_copy(&m, "r", 1));
    cpar_taskdb_reply(r->db, &m);
    cpar_msg_close(&m);
}

static void
dispatch(rdb *r, int k, int32_t engine)
{
    uint8_t id[CPAR_WIRE_ID_SIZE];
    id_of(id, k);
    cpar_taskdb_dispatch(r->db, id, engine);
}

/* The first column of the first row of sql on the closed file, as text into out. */
static const char *
sql1(rdb *r, const char *sql, char *out, size_t cap)
{
    sqlite3 *s;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(r->path, &s), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(s);
    return out;
}

static void
sqlx(rdb *r, const char *sql)
{
    sqlite3 *s;
    ASSERT_EQ(sqlite3_open(r->path, &s), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
}

TEST_IMPL(identity_is_written_and_checked)
{
    rdb r;
    char err[512], buf[256];
    rdb_dir(&r);
    rdb_open_ok(&r, "alpha", 0);
    rdb_close(&r);
    ASSERT_STR_EQ(
        sql1(&r, "SELECT value FROM cpar_meta WHERE key = 'cluster_id'", buf, sizeof(buf)),
        "alpha");
    ASSERT_EQ(
        strlen(sql1(&r, "SELECT value FROM cpar_meta WHERE key = 'key_hash'", buf, sizeof(buf))),
        64);
    ASSERT_STR_EQ(sql1(&r, "SELECT value FROM cpar_meta WHERE key = 'version'", buf, sizeof(buf)),
                  "2");
    /* Another cluster's file is refused, normal start or recovery, naming both. */
    ASSERT_EQ(rdb_open(&r, "beta", KEY, sizeof(KEY) - 1, 0, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "belongs to cluster 'alpha', not 'beta'");
    ASSERT_STR_CONTAINS(err, r.path);
    ASSERT(r.db == NULL);
    ASSERT_EQ(rdb_open(&r, "beta", KEY, sizeof(KEY) - 1, 1, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "belongs to cluster 'alpha', not 'beta'");
    /* Another key: a normal start takes the file over; a recovery refuses it. */
    ASSERT_EQ(rdb_open(&r, "alpha", (const uint8_t *)"other key", 9, 1, err, sizeof(err)),
              CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "another key");
    ASSERT_STR_CONTAINS(err, r.path);
    rdb_open_ok(&r, "alpha", 1); /* the right key and cluster: fine */
    rdb_close(&r);
    rdb_cleanup(&r);
    return 0;
}

TEST_IMPL(recovery_refuses_missing_corrupt_and_memory)
{
    rdb r;
    char err[512], cmd[256];
    cpar_taskdb_config mem = {.mode = "memory", .recover = 1};
    FILE *f;
    rdb_dir(&r);
    /* No file: refused, and none is created. */
    ASSERT_EQ(rdb_open(&r, "", KEY, sizeof(KEY) - 1, 1, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "does not exist");
    ASSERT_NE(access(r.path, F_OK), 0);
    ASSERT_EQ(cpar_taskdb_open(&mem, r.zctx, &r.db, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "in a file");
    /* Not a database. */
    f = fopen(r.path, "w");
    for (int i = 0; i < 300; i++)
        fputs("garbage garbage ", f);
    fclose(f);
    ASSERT_EQ(rdb_open(&r, "", KEY, sizeof(KEY) - 1, 1, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, r.path);
    ASSERT_STR_CONTAINS(err, "corrupt");
    /* A real database whose pages were damaged: quick_check (or the first read) says so. */
    unlink(r.path);
    rdb_open_ok(&r, "", 0);
    for (int k = 1; k <= 200; k++)
        task_arrives(&r, k, 0, 500);
    rdb_close(&r);
    sqlx(&r, "PRAGMA wal_checkpoint(TRUNCATE)");
    snprintf(cmd, sizeof(cmd),
             "dd if=/dev/urandom of=%s bs=1024 seek=8 count=16 conv=notrunc 2>/dev/null", r.path);
    ASSERT_OK(system(cmd));
    ASSERT_EQ(rdb_open(&r, "", KEY, sizeof(KEY) - 1, 1, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, r.path);
    ASSERT(r.db == NULL);
    /* A database of the previous version (no identity): upgraded by a normal start,
     * refused by a recovery. */
    unlink(r.path);
    rdb_open_ok(&r, "", 0);
    rdb_close(&r);
    sqlx(&r, "DELETE FROM cpar_meta WHERE key IN ('cluster_id', 'key_hash');"
             "UPDATE cpar_meta SET value = '1' WHERE key = 'version'; DROP TABLE engines");
    ASSERT_EQ(rdb_open(&r, "", KEY, sizeof(KEY) - 1, 1, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "no cluster identity");
    rdb_open_ok(&r, "", 0);
    cpar_taskdb_engine(r.db, 0, 1, 42, "h");
    rdb_close(&r);
    ASSERT_STR_EQ(sql1(&r, "SELECT count(*) FROM engines", err, sizeof(err)), "1");
    rdb_cleanup(&r);
    return 0;
}

TEST_IMPL(a_normal_start_ends_stale_pending_records)
{
    rdb r;
    char buf[256];
    int32_t e[1] = {1};
    rdb_dir(&r);
    rdb_open_ok(&r, "c", 0);
    task_arrives(&r, 1, 0, 10);
    task_arrives(&r, 2, 0, 10);
    reply(&r, 2, 0, 0);
    apply_arrives(&r, 3, e, 1);
    cpar_taskdb_engine(r.db, 0, 1, 100, "hostA");
    rdb_close(&r); /* as a controller that died */
    rdb_open_ok(&r, "c", 0);
    rdb_close(&r);
    ASSERT_STR_EQ(
        sql1(&r, "SELECT count(*) FROM records WHERE status = 'pending'", buf, sizeof(buf)), "0");
    ASSERT_STR_EQ(sql1(&r,
                       "SELECT error_code || ' ' || error_message FROM records WHERE msg_id ="
                       " (SELECT msg_id FROM records ORDER BY seq LIMIT 1)",
                       buf, sizeof(buf)),
                  "-11 the controller ended before this finished (not recovered)");
    ASSERT_STR_EQ(sql1(&r, "SELECT count(*) FROM records WHERE status = 'ok'", buf, sizeof(buf)),
                  "1");
    ASSERT_STR_EQ(sql1(&r, "SELECT count(*) FROM engines WHERE gone IS NULL", buf, sizeof(buf)),
                  "0");
    rdb_cleanup(&r);
    return 0;
}

TEST_IMPL(engines_table_and_dispatch_event)
{
    rdb r;
    char buf[256], h[33], q[256];
    rdb_dir(&r);
    rdb_open_ok(&r, "c", 0);
    cpar_taskdb_engine(r.db, 0, 1, 100, "hostA");
    cpar_taskdb_engine(r.db, 1, 1, 101, "hostB");
    cpar_taskdb_engine(r.db, 1, 0, 0, NULL);
    cpar_taskdb_engine(r.db, 1, 1, 102, "hostB"); /* id 1 requested again */
    cpar_taskdb_engine(r.db, 2, 1, 103, "hostC");
    cpar_taskdb_engine(r.db, 2, 0, 0, NULL);
    task_arrives(&r, 1, 0, 10);
    dispatch(&r, 1, 0);
    dispatch(&r, 1, 1); /* retried elsewhere: the last dispatch wins */
    task_arrives(&r, 2, 0, 10);
    reply(&r, 2, 0, 0);
    dispatch(&r, 2, 1); /* ended already: unchanged */
    rdb_close(&r);
    ASSERT_STR_EQ(sql1(&r,
                       "SELECT group_concat(id || ':' || pid || ':' || host || ':' ||"
                       " (gone IS NULL), ' ') FROM (SELECT * FROM engines ORDER BY rowid)",
                       buf, sizeof(buf)),
                  "0:100:hostA:1 1:101:hostB:0 1:102:hostB:1 2:103:hostC:0");
    hex_of(h, 1);
    snprintf(q, sizeof(q), "SELECT engine_id FROM records WHERE msg_id = '%s'", h);
    ASSERT_STR_EQ(sql1(&r, q, buf, sizeof(buf)), "1");
    hex_of(h, 2);
    snprintf(q, sizeof(q), "SELECT engine_id FROM records WHERE msg_id = '%s'", h);
    ASSERT_STR_EQ(sql1(&r, q, buf, sizeof(buf)), "0");
    rdb_cleanup(&r);
    return 0;
}

TEST_IMPL(recovery_loads_what_was_pending)
{
    rdb r;
    char buf[256], h[33], q[256];
    int32_t e2[2] = {0, 3};
    cpar_taskdb_recovery *rec;
    uint8_t id[CPAR_WIRE_ID_SIZE];
    rdb_dir(&r);
    rdb_open_ok(&r, "c", 0);
    cpar_taskdb_engine(r.db, 0, 1, 100, "a");
    cpar_taskdb_engine(r.db, 3, 1, 103, "b");
    cpar_taskdb_engine(r.db, 5, 1, 105, "c");
    cpar_taskdb_engine(r.db, 5, 0, 0, NULL);
    task_arrives(&r, 1, 0, 10); /* ended ok on 0 */
    dispatch(&r, 1, 0);
    reply(&r, 1, 0, 0);
    task_arrives(&r, 2, 0, 10); /* ended failed on 3 */
    dispatch(&r, 2, 3);
    reply(&r, 2, 3, 1);
    task_arrives(&r, 3, 2, 10); /* pending, never sent */
    task_arrives(&r, 4, 0, 20); /* pending, sent to 3 */
    dispatch(&r, 4, 3);
    apply_arrives(&r, 5, e2, 2); /* two pending direct parts */
    reply(&r, 5, 0, 0);          /* ... one of which ended */
    rdb_close(&r);
    /* A task whose request was not kept (as over --db-keep-bytes). */
    rdb_open_ok(&r, "c", 1);
    task_arrives(&r, 6, 0, 10);
    rdb_close(&r);
    hex_of(h, 6);
    snprintf(q, sizeof(q),
             "UPDATE records SET request_frames = NULL, request_kept = 0, request_bytes = 4242"
             " WHERE msg_id = '%s'",
             h);
    sqlx(&r, q);

    rdb_open_ok(&r, "c", 1);
    rec = cpar_taskdb_take_recovery(r.db);
    ASSERT(rec != NULL);
    ASSERT(cpar_taskdb_take_recovery(r.db) == NULL);
    ASSERT_EQ(rec->ntasks, 2);
    id_of(id, 3);
    ASSERT_EQ(memcmp(rec->tasks[0].msg.h.msg_id, id, 16), 0);
    ASSERT_EQ(rec->tasks[0].engine, CPAR_NO_ENGINE);
    ASSERT_EQ(rec->tasks[0].msg.h.type, CPAR_MSG_TASK);
    ASSERT_EQ(rec->tasks[0].msg.nframes, 2);
    ASSERT_EQ(zmq_msg_size(&rec->tasks[0].msg.frames[0]), 28);
    ASSERT_EQ(((uint8_t *)zmq_msg_data(&rec->tasks[0].msg.frames[0]))[4], 2); /* retries */
    ASSERT_EQ(zmq_msg_size(&rec->tasks[0].msg.frames[1]), 10);
    id_of(id, 4);
    ASSERT_EQ(memcmp(rec->tasks[1].msg.h.msg_id, id, 16), 0);
    ASSERT_EQ(rec->tasks[1].engine, 3);
    ASSERT_EQ(zmq_msg_size(&rec->tasks[1].msg.frames[1]), 20);
    ASSERT_EQ(rec->nparts, 1);
    id_of(id, 5);
    ASSERT_EQ(memcmp(rec->parts[0].id, id, 16), 0);
    ASSERT_EQ(rec->parts[0].engine, 3);
    ASSERT_EQ(rec->nended, 3); /* 1, 2 and 6 (ended now: not kept) */
    id_of(id, 1);
    ASSERT_EQ(memcmp(rec->ended[0].id, id, 16), 0);
    ASSERT_EQ(rec->ended[0].ok, 1);
    ASSERT_EQ(rec->ended[0].engine, 0);
    ASSERT_EQ(rec->ended[1].ok, 0);
    ASSERT_EQ(rec->ended[1].engine, 3);
    ASSERT_EQ(rec->nengines, 2);
    ASSERT_EQ(rec->engines[0], 0);
    ASSERT_EQ(rec->engines[1], 3);
    ASSERT_EQ(rec->max_engine, 5);
    ASSERT_EQ(rec->not_kept, 1);
    cpar_taskdb_recovery_free(rec);
    rdb_close(&r);
    snprintf(q, sizeof(q),
             "SELECT status || ' ' || error_code || ' ' || error_message FROM records WHERE"
             " msg_id = '%s'",
             h);
    ASSERT_STR_EQ(sql1(&r, q, buf, sizeof(buf)),
                  "error -11 not recovered: its request was not kept in the task database "
                  "(4242 bytes)");
    /* A recovery that is not taken is freed with the database (ASan checks). */
    rdb_open_ok(&r, "c", 1);
    rdb_close(&r);
    rdb_cleanup(&r);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(identity_is_written_and_checked),
        TEST_ENTRY(recovery_refuses_missing_corrupt_and_memory),
        TEST_ENTRY(a_normal_start_ends_stale_pending_records),
        TEST_ENTRY(engines_table_and_dispatch_event),
        TEST_ENTRY(recovery_loads_what_was_pending),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
