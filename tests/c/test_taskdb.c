/* Tests of the task database layer alone (cext/controller/taskdb.h): a real cpar_taskdb
 * with its thread and SQLite (in memory, or a file), fed the events the loop would queue
 * (arrivals, STREAMs, REPLYs, ERRORs) as real cpar_msg messages, and asked DB_REQUESTs
 * whose DB_REPLY answers are checked: each op, each query operator, read-your-writes
 * order, frames of `get`, purge rules, the bounds, keep-bytes, refused files, bad input. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zmq.h>

#include "errors.h"
#include "taskdb.h"
#include "test.h"

typedef struct tdb {
    void *zctx;
    cpar_taskdb *db;
    char json[65536]; /* the last answer's frame 0 */
    int status;
    cpar_taskdb_answer *last; /* the last answer (frames, tasks), freed by the next ask */
} tdb;

static void
tdb_open(tdb *t, const char *mode, const char *path, int64_t records, int64_t keep)
{
    cpar_taskdb_config cfg = {
        .mode = mode, .path = path, .max_records = records, .keep_bytes = keep};
    char err[512];
    memset(t, 0, sizeof(*t));
    t->zctx = zmq_ctx_new();
    ASSERT(t->zctx != NULL);
    if (cpar_taskdb_open(&cfg, t->zctx, &t->db, err, sizeof(err)) != 0)
        CPAR_TEST_FAIL("open: %s", err);
}

static void
tdb_close(tdb *t)
{
    cpar_taskdb_answer_free(t->last);
    cpar_taskdb_close(t->db);
    zmq_ctx_term(t->zctx);
}

/* Sends a DB_REQUEST with frame 0 `json`; waits for its answer. */
static const char *
ask(tdb *t, const char *json)
{
    cpar_msg m;
    cpar_taskdb_answer *a;
    size_t n;
    cpar_msg_init(&m, CPAR_MSG_DB_REQUEST);
    memset(m.h.msg_id, 0x5a, CPAR_WIRE_ID_SIZE);
    ASSERT_OK(cpar_msg_add_copy(&m, json, strlen(json)));
    ASSERT_OK(cpar_taskdb_request(t->db, 7, &m));
    cpar_msg_close(&m);
    ASSERT_EQ(cpar_taskdb_answer_next(t->db, 10000, &a), 1);
    ASSERT_EQ(a->slot, 7);
    ASSERT_EQ(a->reply.h.parent[0], 0x5a);
    ASSERT_GE(a->reply.nframes, 1);
    n = zmq_msg_size(&a->reply.frames[0]);
    ASSERT_LT(n, sizeof(t->json));
    memcpy(t->json, zmq_msg_data(&a->reply.frames[0]), n);
    t->json[n] = '\0';
    t->status = a->reply.h.status;
    cpar_taskdb_answer_free(t->last);
    t->last = a;
    return t->json;
}

static void
ok(tdb *t, const char *json)
{
    ask(t, json);
    if (t->status != 0)
        CPAR_TEST_FAIL("%s -> %s", json, t->json);
}

static void
fails(tdb *t, const char *json, const char *ename, const char *says)
{
    char want[64];
    ask(t, json);
    ASSERT_NE(t->status, 0);
    snprintf(want, sizeof(want), "\"ename\":\"%s\"", ename);
    ASSERT_STR_CONTAINS(t->json, want);
    if (says != NULL)
        ASSERT_STR_CONTAINS(t->json, says);
}

static int
count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void
id_of(uint8_t id[CPAR_WIRE_ID_SIZE], int k)
{
    memset(id, 0xab, 8);
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

/* A TASK k (spec: no targets) with one payload frame of len bytes. */
static void
task_arrives(tdb *t, int k, size_t len, uint16_t flags)
{
    uint8_t spec[28] = {1};
    char *body = malloc(len + 1);
    cpar_msg m;
    memset(body, 'p', len);
    cpar_msg_init(&m, CPAR_MSG_TASK);
    id_of(m.h.msg_id, k);
    m.h.flags = flags;
    ASSERT_OK(cpar_msg_add_copy(&m, spec, sizeof(spec)));
    ASSERT_OK(cpar_msg_add_copy(&m, body, len));
    cpar_taskdb_arrival(t->db, &m);
    cpar_msg_close(&m);
    free(body);
}

/* An APPLY k to engines e[0..n). */
static void
apply_arrives(tdb *t, int k, const int32_t *e, int n)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    id_of(m.h.msg_id, k);
    m.h.flags = CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(&m, e, 4 * (size_t)n));
    ASSERT_OK(cpar_msg_add_copy(&m, "call", 4));
    cpar_taskdb_arrival(t->db, &m);
    cpar_msg_close(&m);
}

static void
reply(tdb *t, int k, int32_t engine, int status, const char *payload)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    id_of(m.h.parent, k);
    m.h.engine = engine;
    m.h.status = status;
    m.h.t0 = 5000;
    m.h.t1 = 9999;
    ASSERT_OK(cpar_msg_add_copy(&m, payload, strlen(payload)));
    cpar_taskdb_reply(t->db, &m);
    cpar_msg_close(&m);
}

static void
stream(tdb *t, int k, int32_t engine, uint16_t flags, const char *text)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_STREAM);
    id_of(m.h.parent, k);
    m.h.engine = engine;
    m.h.flags = flags;
    ASSERT_OK(cpar_msg_add_copy(&m, text, strlen(text)));
    cpar_taskdb_stream(t->db, &m);
    cpar_msg_close(&m);
}

static const char *
frame(tdb *t, size_t i, char *buf, size_t cap)
{
    size_t n;
    ASSERT_LT(i, t->last->reply.nframes);
    n = zmq_msg_size(&t->last->reply.frames[i]);
    ASSERT_LT(n, cap);
    memcpy(buf, zmq_msg_data(&t->last->reply.frames[i]), n);
    buf[n] = '\0';
    return buf;
}

TEST_IMPL(parts_reply_output_and_get_frames)
{
    tdb t;
    int32_t engines[2] = {3, 5};
    char q[256], h[33], buf[64];
    tdb_open(&t, "memory", NULL, 0, 0);
    apply_arrives(&t, 1, engines, 2);
    stream(&t, 1, 5, CPAR_FLAG_STDOUT, "hello\n");
    reply(&t, 1, 5, 0, "five");
    hex_of(h, 1);
    snprintf(q, sizeof(q), "{\"op\": \"get\", \"msg_ids\": [\"%s\"]}", h);
    ok(&t, q); /* queued right after the writes: they are seen (read-your-writes) */
    ASSERT_EQ(count(t.json, "\"msg_id\":"), 2);
    snprintf(buf, sizeof(buf), "\"msg_id\":\"%s:3\"", h);
    ASSERT_STR_CONTAINS(t.json, buf);
    ASSERT_STR_CONTAINS(t.json, "\"status\":\"pending\"");
    ASSERT_STR_CONTAINS(t.json, "\"status\":\"ok\"");
    ASSERT_STR_CONTAINS(t.json, "\"stdout\":\"hello\\n\"");
    ASSERT_STR_CONTAINS(t.json, "\"started\":5,\"completed\":9,");
    ASSERT_STR_CONTAINS(t.json, "\"outputs\":[{\"flags\":1,\"frame\":2}]");
    ASSERT_STR_CONTAINS(t.json, "\"reply\":{\"status\":0,\"frames\":[1]}");
    ASSERT_STR_CONTAINS(t.json, "\"targets\":[3,5]");
    ASSERT_EQ(t.last->reply.nframes, 3);
    ASSERT(strcmp(frame(&t, 1, buf, sizeof(buf)), "five") == 0);
    ASSERT(strcmp(frame(&t, 2, buf, sizeof(buf)), "hello\n") == 0);
    /* a part id alone */
    snprintf(q, sizeof(q), "{\"op\": \"get\", \"msg_ids\": [\"%s:5\"]}", h);
    ok(&t, q);
    ASSERT_EQ(count(t.json, "\"msg_id\":"), 1);
    fails(&t, "{\"op\": \"get\", \"msg_ids\": [\"00000000000000000000000000000000\"]}", "KeyError",
          "00000000000000000000000000000000");
    tdb_close(&t);
    return 0;
}

/* How many records a query selects. */
static int
nq(tdb *t, const char *query)
{
    char q[1024];
    snprintf(q, sizeof(q), "{\"op\": \"query\", \"query\": %s, \"keys\": [\"status\"]}", query);
    ok(t, q);
    return count(t->json, "\"msg_id\":");
}

TEST_IMPL(query_operators)
{
    tdb t;
    char q[512], a[33], b[33];
    tdb_open(&t, "memory", NULL, 0, 0);
    for (int k = 1; k <= 4; k++)
        task_arrives(&t, k, 10, 0);
    reply(&t, 1, 0, 0, "r");
    reply(&t, 2, 1, 1, "r");
    hex_of(a, 1);
    hex_of(b, 2);
    snprintf(q, sizeof(q), "{\"op\": \"label\", \"msg_ids\": [\"%s\", \"%s\"], \"label\": \"L\"}",
             a, b);
    ok(&t, q);
    ASSERT_EQ(nq(&t, "{}"), 4);
    ASSERT_EQ(nq(&t, "{\"status\": \"pending\"}"), 2);
    ASSERT_EQ(nq(&t, "{\"status\": {\"$ne\": \"pending\"}}"), 2);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$ne\": \"L\"}}"), 2); /* null labels match */
    ASSERT_EQ(nq(&t, "{\"label\": {\"$ne\": null}}"), 2);
    ASSERT_EQ(nq(&t, "{\"label\": null}"), 2);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$in\": [\"L\", null]}}"), 4);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$in\": [\"L\"]}}"), 2);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$nin\": [\"L\"]}}"), 2);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$nin\": [\"L\", null]}}"), 0);
    ASSERT_EQ(nq(&t, "{\"label\": {\"$in\": []}}"), 0);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$exists\": true}}"), 2);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$exists\": false}}"), 2);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$gte\": 0, \"$lt\": 1}}"), 1);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$gt\": 0}}"), 1);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$lte\": 1}}"), 2);
    ASSERT_EQ(nq(&t, "{\"engine_id\": {\"$eq\": 1}, \"status\": \"error\"}"), 1);
    ASSERT_EQ(nq(&t, "{\"request_kept\": true, \"reply_kept\": false}"), 2);
    ASSERT_EQ(nq(&t, "{\"targets\": []}"), 4);
    /* keys select columns; msg_id is always there */
    ok(&t, "{\"op\": \"query\", \"query\": {\"status\": \"ok\"}, \"keys\": [\"engine_id\"]}");
    ASSERT_STR_CONTAINS(t.json, "{\"records\":[{\"msg_id\":\"");
    ASSERT_STR_CONTAINS(t.json, "\",\"engine_id\":0}]}");
    ok(&t, "{\"op\": \"history\"}");
    ASSERT_EQ(count(t.json, "\"abab"), 4);
    tdb_close(&t);
    return 0;
}

TEST_IMPL(bad_requests_are_clear_errors)
{
    tdb t;
    tdb_open(&t, "memory", NULL, 0, 0);
    task_arrives(&t, 1, 10, 0);
    fails(&t, "not json", "ValueError", "JSON object");
    fails(&t, "[1]", "ValueError", "JSON object");
    fails(&t, "{}", "ValueError", "op");
    fails(&t, "{\"op\": \"drop\"}", "ValueError", "unknown op");
    fails(&t, "{\"op\": \"query\", \"query\": {\"nope\": 1}}", "ValueError", "unknown key 'nope'");
    fails(&t, "{\"op\": \"query\", \"query\": {\"seq) OR 1=1; DROP TABLE records; --\": 1}}",
          "ValueError", "unknown key");
    fails(&t, "{\"op\": \"query\", \"query\": {\"seq\": {\"$where\": 1}}}", "ValueError",
          "operator");
    fails(&t, "{\"op\": \"query\", \"query\": {\"seq\": {\"$in\": 1}}}", "ValueError", "list");
    fails(&t, "{\"op\": \"query\", \"query\": {\"seq\": {\"$exists\": \"x\"}}}", "ValueError",
          "$exists");
    fails(&t, "{\"op\": \"query\", \"query\": 3}", "ValueError", "query");
    fails(&t, "{\"op\": \"query\", \"query\": {}, \"keys\": [\"x\"]}", "ValueError", "keys");
    fails(&t, "{\"op\": \"query\", \"query\": {}, \"keys\": [1]}", "ValueError", "strings");
    fails(&t, "{\"op\": \"get\"}", "ValueError", "msg_ids");
    fails(&t, "{\"op\": \"purge\", \"msg_ids\": \"some\"}", "ValueError", "all");
    fails(&t, "{\"op\": \"purge\", \"engines\": [\"x\"]}", "ValueError", "engine");
    fails(&t, "{\"op\": \"purge\", \"msg_ids\": \"all\", \"client\": \"zz\"}", "ValueError",
          "client");
    fails(&t, "{\"op\": \"label\", \"msg_ids\": [], \"label\": 3}", "ValueError", "label");
    /* everything is still there, and a value with quotes is only a value */
    ASSERT_EQ(nq(&t, "{\"status\": \"x' OR '1'='1\"}"), 0);
    ASSERT_EQ(nq(&t, "{}"), 1);
    tdb_close(&t);
    return 0;
}

TEST_IMPL(purge_rules)
{
    tdb t;
    char q[256], a[33], b[33];
    tdb_open(&t, "memory", NULL, 0, 0);
    task_arrives(&t, 1, 10, 0);
    task_arrives(&t, 2, 10, 0);
    task_arrives(&t, 3, 10, 0);
    reply(&t, 1, 4, 0, "r");
    reply(&t, 3, 6, 0, "r");
    hex_of(a, 1);
    hex_of(b, 2);
    snprintf(q, sizeof(q), "{\"op\": \"purge\", \"msg_ids\": [\"%s\", \"%s\"]}", a, b);
    fails(&t, q, "IndexError", b);
    ASSERT_EQ(nq(&t, "{}"), 3); /* nothing went */
    ok(&t, "{\"op\": \"purge\", \"msg_ids\": \"all\", \"client\": \"0000000000000000\"}");
    ASSERT_STR_CONTAINS(t.json, "{\"purged\":0}");
    ok(&t, "{\"op\": \"purge\", \"msg_ids\": [], \"engines\": [6]}");
    ASSERT_STR_CONTAINS(t.json, "{\"purged\":1}");
    ok(&t, "{\"op\": \"purge\", \"msg_ids\": \"all\", \"client\": \"abababababababab\"}");
    ASSERT_STR_CONTAINS(t.json, "{\"purged\":1}");
    ASSERT_EQ(nq(&t, "{}"), 1); /* the pending one */
    tdb_close(&t);
    return 0;
}

TEST_IMPL(bounds_purge_the_oldest_ended_and_keep_bytes)
{
    tdb t;
    char q[256], h[33];
    tdb_open(&t, "memory", NULL, 3, 100);
    task_arrives(&t, 1, 10, 0); /* stays pending */
    for (int k = 2; k <= 6; k++) {
        task_arrives(&t, k, k == 6 ? 500 : 10, 0);
        reply(&t, k, 0, 0, "r");
    }
    ok(&t, "{\"op\": \"history\"}");
    /* three kept: the pending 1 and the newest ended 5 and 6 */
    hex_of(h, 1);
    ASSERT_STR_CONTAINS(t.json, h);
    hex_of(h, 2);
    if (strstr(t.json, h) != NULL)
        CPAR_TEST_FAIL("%s", t.json);
    hex_of(h, 5);
    ASSERT_STR_CONTAINS(t.json, h);
    ASSERT_EQ(count(t.json, "\"abab"), 3);
    hex_of(h, 6);
    snprintf(q, sizeof(q), "{\"op\": \"get\", \"msg_ids\": [\"%s\"]}", h);
    ok(&t, q);
    ASSERT_STR_CONTAINS(t.json, "\"request_bytes\":528"); /* 28 spec + 500 */
    ASSERT_STR_CONTAINS(t.json, "\"request_kept\":false");
    snprintf(q, sizeof(q),
             "{\"op\": \"resubmit\", \"msg_ids\": [\"%s\"], \"new_ids\": "
             "[\"11111111111111111111111111111111\"]}",
             h);
    fails(&t, q, "ValueError", "not kept");
    /* a frame that went by shared memory is never kept */
    task_arrives(&t, 7, 10, CPAR_FLAG_SHM);
    hex_of(h, 7);
    snprintf(q, sizeof(q), "{\"op\": \"get\", \"msg_ids\": [\"%s\"]}", h);
    ok(&t, q);
    ASSERT_STR_CONTAINS(t.json, "\"request_kept\":false");
    tdb_close(&t);
    return 0;
}

TEST_IMPL(errors_end_records)
{
    tdb t;
    char q[256], h[33];
    uint8_t id[CPAR_WIRE_ID_SIZE];
    int32_t e[1] = {2};
    tdb_open(&t, "memory", NULL, 0, 0);
    apply_arrives(&t, 1, e, 1);
    id_of(id, 1);
    cpar_taskdb_error(t.db, id, 2, CPAR_EENGINEDEAD, "engine 2 died", 13);
    hex_of(h, 1);
    snprintf(q, sizeof(q), "{\"op\": \"get\", \"msg_ids\": [\"%s\"]}", h);
    ok(&t, q);
    ASSERT_STR_CONTAINS(t.json, "\"status\":\"error\"");
    ASSERT_STR_CONTAINS(t.json, "\"error_code\":-11,\"error_message\":\"engine 2 died\"");
    ASSERT(strstr(t.json, "\"reply\"") == NULL);
    tdb_close(&t);
    return 0;
}

TEST_IMPL(resubmit_makes_tasks)
{
    tdb t;
    char q[512], a[33], b[33];
    int32_t e[1] = {0};
    tdb_open(&t, "memory", NULL, 0, 0);
    task_arrives(&t, 1, 10, 0);
    reply(&t, 1, 0, 0, "r");
    apply_arrives(&t, 2, e, 1);
    reply(&t, 2, 0, 0, "r");
    hex_of(a, 1);
    hex_of(b, 2);
    snprintf(q, sizeof(q),
             "{\"op\": \"resubmit\", \"msg_ids\": [\"%s\", \"%s\"], \"new_ids\": "
             "[\"%s\", \"22222222222222222222222222222222\"]}",
             a, b, b);
    fails(&t, q, "ValueError", "in use");
    ASSERT_EQ(t.last->ntasks, 0);
    snprintf(q, sizeof(q),
             "{\"op\": \"resubmit\", \"msg_ids\": [\"%s\", \"%s\"], \"new_ids\": "
             "[\"11111111111111111111111111111111\", "
             "\"22222222222222222222222222222222\"]}",
             a, b);
    ok(&t, q);
    ASSERT_STR_CONTAINS(t.json, "\"msg_ids\":{");
    ASSERT_STR_CONTAINS(t.json, "\":\"11111111111111111111111111111111\"");
    ASSERT_EQ(t.last->ntasks, 2);
    for (int k = 0; k < 2; k++) {
        cpar_msg *m = &t.last->tasks[k];
        ASSERT_EQ(m->h.type, CPAR_MSG_TASK);
        ASSERT_EQ(m->h.msg_id[0], k ? 0x22 : 0x11);
        ASSERT_EQ(m->nframes, 2);
        ASSERT_EQ(zmq_msg_size(&m->frames[0]), 28);
        ASSERT_EQ(zmq_msg_size(&m->frames[1]), k ? 4 : 10);
    }
    ASSERT_EQ(nq(&t, "{\"resubmitted\": {\"$exists\": true}, \"status\": \"pending\"}"), 2);
    tdb_close(&t);
    return 0;
}

/* The records remembered since their arrival (taskdb_seqs.c) never outlive them: a REPLY for
 * a record purged (by the op, by the bounds) or never committed (a resubmit undone) finds
 * nothing and changes nothing, and an id recorded anew is found as its new record. */
TEST_IMPL(remembered_records_follow_purges_and_rollbacks)
{
    tdb t;
    char q[512], a[33], b[33];
    uint8_t id[CPAR_WIRE_ID_SIZE];
    cpar_msg m;
    tdb_open(&t, "memory", NULL, 3, 0);
    /* purged by the op, then a stale REPLY, then the same id again */
    task_arrives(&t, 1, 10, 0);
    reply(&t, 1, 0, 0, "r");
    hex_of(a, 1);
    snprintf(q, sizeof(q), "{\"op\": \"purge\", \"msg_ids\": [\"%s\"]}", a);
    ok(&t, q);
    ASSERT_STR_CONTAINS(t.json, "{\"purged\":1}");
    reply(&t, 1, 0, 1, "stale");
    ASSERT_EQ(nq(&t, "{}"), 0);
    task_arrives(&t, 1, 10, 0);
    id_of(id, 1);
    cpar_taskdb_dispatch(t.db, id, 4);
    ASSERT_EQ(nq(&t, "{\"engine_id\": 4, \"status\": \"pending\"}"), 1);
    reply(&t, 1, 4, 1, "again");
    ASSERT_EQ(nq(&t, "{}"), 1);
    ASSERT_EQ(nq(&t, "{\"engine_id\": 4, \"status\": \"error\"}"), 1);
    /* purged by the bounds (3 records): 1 and 2 go as 4 and 5 end */
    for (int k = 2; k <= 5; k++) {
        task_arrives(&t, k, 10, 0);
        reply(&t, k, 0, 0, "r");
    }
    ASSERT_EQ(nq(&t, "{}"), 3);
    task_arrives(&t, 6, 10, 0); /* pending: stays; 3 goes */
    ASSERT_EQ(nq(&t, "{}"), 3);
    reply(&t, 2, 1, 1, "stale");
    reply(&t, 3, 1, 1, "stale");
    stream(&t, 3, 1, CPAR_FLAG_STDOUT, "stale");
    ASSERT_EQ(nq(&t, "{}"), 3);
    ASSERT_EQ(nq(&t, "{\"status\": \"pending\"}"), 1);
    ASSERT_EQ(nq(&t, "{\"status\": \"error\"}"), 0);
    ASSERT_EQ(nq(&t, "{\"stdout\": \"stale\"}"), 0);
    /* a resubmit undone (its second new id is in use): its first new id was never
     * recorded, so a REPLY naming it leaves the next arrival (which may take its seq) alone */
    hex_of(a, 4);
    hex_of(b, 5);
    snprintf(q, sizeof(q),
             "{\"op\": \"resubmit\", \"msg_ids\": [\"%s\", \"%s\"], \"new_ids\": "
             "[\"11111111111111111111111111111111\", \"%s\"]}",
             a, b, b);
    fails(&t, q, "ValueError", "in use");
    task_arrives(&t, 7, 10, 0);
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    memset(m.h.parent, 0x11, CPAR_WIRE_ID_SIZE);
    m.h.engine = 1;
    m.h.status = 1;
    ASSERT_OK(cpar_msg_add_copy(&m, "x", 1));
    cpar_taskdb_reply(t.db, &m);
    cpar_msg_close(&m);
    ASSERT_EQ(nq(&t, "{\"status\": \"pending\"}"), 2); /* 6 and 7 */
    ASSERT_EQ(nq(&t, "{\"status\": \"error\"}"), 0);
    tdb_close(&t);
    return 0;
}

TEST_IMPL(a_file_persists_and_foreign_files_are_refused)
{
    char dir[] = "/tmp/cpar-taskdb-XXXXXX", path[128], err[512];
    tdb t;
    cpar_taskdb *db = NULL;
    cpar_taskdb_config cfg = {.mode = "sqlite"};
    sqlite3 *s;
    FILE *f;
    void *z;
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    tdb_open(&t, "sqlite", path, 0, 0);
    task_arrives(&t, 1, 10, 0);
    tdb_close(&t);
    tdb_open(&t, "sqlite", path, 0, 0);
    ASSERT_EQ(nq(&t, "{}"), 1);
    tdb_close(&t);
    z = zmq_ctx_new();
    snprintf(path, sizeof(path), "%s/junk.sqlite", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 200; i++)
        fputs("not a database at all ", f);
    fclose(f);
    cfg.path = path;
    ASSERT_EQ(cpar_taskdb_open(&cfg, z, &db, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "corrupt or not a SQLite database");
    snprintf(path, sizeof(path), "%s/other.sqlite", dir);
    ASSERT_EQ(sqlite3_open(path, &s), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(s, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    ASSERT_EQ(cpar_taskdb_open(&cfg, z, &db, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "not a cpar task database");
    cfg.mode = "mongo";
    ASSERT_EQ(cpar_taskdb_open(&cfg, z, &db, err, sizeof(err)), CPAR_EINVAL);
    cfg.mode = "sqlite";
    cfg.path = NULL;
    ASSERT_EQ(cpar_taskdb_open(&cfg, z, &db, err, sizeof(err)), CPAR_EINVAL);
    ASSERT(db == NULL);
    zmq_ctx_term(z);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    ASSERT_OK(system(path));
    return 0;
}

TEST_IMPL(many_events_one_batch_in_order)
{
    tdb t;
    tdb_open(&t, "memory", NULL, 0, 0);
    for (int k = 1; k <= 200; k++) {
        task_arrives(&t, k, 10, 0);
        stream(&t, k, 0, CPAR_FLAG_STDERR, "e");
        reply(&t, k, 0, 0, "r");
    }
    ASSERT_EQ(nq(&t, "{\"status\": \"ok\", \"stderr\": \"e\"}"), 200);
    tdb_close(&t);
    return 0;
}

/* Events queued together are applied together: the database thread waits a moment for the
 * ones after the first (CPAR__DB_GATHER_NS) instead of a transaction per event; a request
 * sees them all. */
TEST_IMPL(events_gather_into_few_transactions)
{
    tdb t;
    cpar_taskdb_stats st;
    tdb_open(&t, "memory", NULL, 0, 0);
    for (int k = 1; k <= 100; k++) {
        task_arrives(&t, k, 10, 0);
        reply(&t, k, 0, 0, "r");
    }
    ASSERT_EQ(nq(&t, "{\"status\": \"ok\"}"), 100);
    cpar_taskdb_get_stats(t.db, &st);
    /* 200 events and a request: a handful of batches, not one per event (the pushes take
     * microseconds; a very slow machine may split them over a few 2 ms windows) */
    ASSERT_GE(st.batches, 1);
    ASSERT_LE(st.batches, 20);
    tdb_close(&t);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(parts_reply_output_and_get_frames),
        TEST_ENTRY(query_operators),
        TEST_ENTRY(bad_requests_are_clear_errors),
        TEST_ENTRY(purge_rules),
        TEST_ENTRY(bounds_purge_the_oldest_ended_and_keep_bytes),
        TEST_ENTRY(errors_end_records),
        TEST_ENTRY(resubmit_makes_tasks),
        TEST_ENTRY(remembered_records_follow_purges_and_rollbacks),
        TEST_ENTRY(a_file_persists_and_foreign_files_are_refused),
        TEST_ENTRY(many_events_one_batch_in_order),
        TEST_ENTRY(events_gather_into_few_transactions),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
