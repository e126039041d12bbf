/* The task database's queue, thread and writes (taskdb.h; docs/taskdb.md): opening and
 * checking the file, the events the loop queues, the database thread that applies them in
 * one transaction per batch and answers requests in order (the ops are in taskdb_ops.c),
 * and the bounds (oldest ended records purged first).
 *
 * Threads: the event functions and open/close/answer_next run on the loop thread; the
 * rest of this file runs on the database thread, which owns the SQLite connection. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "errors.h"
#include "shm.h"
#include "taskdb_int.h"
#include "tsan.h"

/* Bytes of queued items freed since the last trim past which the database thread, once
 * its queue is empty, returns freed memory to the system (malloc_trim). */
#define CPAR__DB_TRIM_BYTES (8 << 20)

/* Version 2 added the engines table (and the identity rows of cpar_meta). */
#define CPAR__DB_ENGINES_SCHEMA                                                                    \
    "CREATE TABLE engines(id INTEGER NOT NULL, pid INTEGER, host TEXT,"                            \
    " registered INTEGER NOT NULL, gone INTEGER);"                                                 \
    "CREATE INDEX engines_id ON engines(id);"

static const char *const cpar__db_schema =
    "CREATE TABLE cpar_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT INTO cpar_meta VALUES('magic', '" CPAR__DB_MAGIC "'), ('version', '" CPAR__DB_VERSION
    "');"
    "CREATE TABLE records("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL UNIQUE,"
    " request_id TEXT NOT NULL, part_engine INTEGER, client_uuid TEXT NOT NULL,"
    " queue TEXT NOT NULL, msg_type TEXT NOT NULL, targets TEXT NOT NULL, engine_id INTEGER,"
    " label TEXT, submitted INTEGER NOT NULL, started INTEGER, completed INTEGER,"
    " received INTEGER, resubmitted TEXT, status TEXT NOT NULL, error_code INTEGER,"
    " error_message TEXT, execute_input TEXT, stdout TEXT NOT NULL DEFAULT '',"
    " stderr TEXT NOT NULL DEFAULT '', request_bytes INTEGER NOT NULL,"
    " reply_bytes INTEGER NOT NULL DEFAULT 0, request_kept INTEGER NOT NULL,"
    " reply_kept INTEGER NOT NULL DEFAULT 0, reply_status INTEGER,"
    " nout INTEGER NOT NULL DEFAULT 0, outbytes INTEGER NOT NULL DEFAULT 0,"
    " stored INTEGER NOT NULL DEFAULT 0, request_frames BLOB, reply_frames BLOB);"
    "CREATE TABLE outputs(rec INTEGER NOT NULL, idx INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (rec, idx)) WITHOUT ROWID;"
    "CREATE TRIGGER records_gone AFTER DELETE ON records BEGIN"
    " DELETE FROM outputs WHERE rec = old.seq; END;" CPAR__DB_ENGINES_SCHEMA;

/* SQLite counts its memory (sqlite3_memory_used, the soft heap limit) under a global mutex
 * taken around every allocation of every statement: a lock and an unlock per row written,
 * per bound value, per page. Nothing in the process reads those counts, so they are turned
 * off once, before SQLite starts (sqlite3_config is refused, and changes nothing, when
 * something else in the process started SQLite first). */
static pthread_once_t cpar__db_config_once = PTHREAD_ONCE_INIT;

static void
cpar__db_config(void)
{
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK)
        sqlite3_initialize();
}

static void
cpar__item_free(cpar__dbitem *it)
{
    for (size_t i = 0; i < it->nframes; i++)
        zmq_msg_close(&it->frames[i]);
    free(it->frames);
    free(it->targets);
    free(it->text);
    free(it);
}

/* Hands an answer to the loop (a pointer through the PAIR; freed here if that fails). */
static void
cpar__send_answer(cpar_taskdb *db, cpar_taskdb_answer *a)
{
    CPAR_TSAN_RELEASE(a); /* libzmq's hand-over, which TSan cannot see */
    if (zmq_send(db->pair_thread, &a, sizeof(a), 0) != (int)sizeof(a))
        cpar_taskdb_answer_free(a);
}

/* Applies one batch in one transaction; answers go out after the commit. */
static void
cpar__db_batch(cpar_taskdb *db, cpar__dbitem *batch)
{
    cpar_taskdb_answer *answers[64];
    size_t nanswers = 0;
    int in_tx = cpar__db_begin(db) == 0;

    atomic_fetch_add(&db->batches, 1); /* before its answers go out */
    for (cpar__dbitem *it = batch; it != NULL; it = it->next) {
        switch (it->kind) {
        case CPAR__DBI_REQUEST: {
            cpar_taskdb_answer *a;
            if (nanswers == sizeof(answers) / sizeof(answers[0])) {
                /* Answers wait for a commit: too many in one batch, commit now. */
                cpar__db_bounds(db);
                cpar__db_commit(db, in_tx);
                for (size_t i = 0; i < nanswers; i++)
                    cpar__send_answer(db, answers[i]);
                nanswers = 0;
                in_tx = cpar__db_begin(db) == 0;
            }
            cpar__db_bounds(db); /* a request sees the bounds applied */
            a = cpar__db_answer(db, it);
            if (a != NULL)
                answers[nanswers++] = a;
            break;
        }
        default:
            cpar__db_apply(db, it);
            break;
        }
    }
    cpar__db_bounds(db);
    cpar__db_commit(db, in_tx);
    for (size_t i = 0; i < nanswers; i++)
        cpar__send_answer(db, answers[i]);
}

/* Whether the thread may go on waiting for more events before it takes the queue (under
 * db->lock): no request waits for an answer, not stopping, the queue still small. */
static int
cpar__db_gathering(const cpar_taskdb *db)
{
    return !db->stopping && !db->urgent && db->queued_bytes < CPAR__DB_GATHER_BYTES;
}

static void *
cpar__db_main(void *arg)
{
    cpar_taskdb *db = arg;
    int64_t freed = 0; /* payload bytes freed since the last trim */
    for (;;) {
        cpar__dbitem *batch;
        int64_t bytes = 0;
        int idle;
        pthread_mutex_lock(&db->lock);
        while (db->head == NULL && !db->stopping)
            pthread_cond_wait(&db->wake, &db->lock);
        /* Events gather for CPAR__DB_GATHER_NS: at a few thousand tasks a second each one
         * would otherwise wake this thread and cost a transaction of its own, beside the
         * loop, on the cores the round trips need. A request (an answer is awaited),
         * stopping or a large queue ends the wait. */
        if (cpar__db_gathering(db)) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += CPAR__DB_GATHER_NS;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (cpar__db_gathering(db) &&
                   pthread_cond_timedwait(&db->wake, &db->lock, &until) != ETIMEDOUT)
                ;
        }
        batch = db->head;
        db->head = db->tail = NULL;
        db->urgent = 0;
        pthread_mutex_unlock(&db->lock);
        if (batch == NULL)
            break; /* stopping, and everything queued is applied */
        cpar__db_batch(db, batch);
        while (batch != NULL) {
            cpar__dbitem *next = batch->next;
            bytes += batch->cost;
            cpar__item_free(batch);
            batch = next;
        }
        pthread_mutex_lock(&db->lock);
        db->queued_bytes -= bytes;
        idle = db->head == NULL;
        pthread_mutex_unlock(&db->lock);
        /* The end of a burst (a 100,000-task map queues faster than it is written): the
         * loop trims when its tasks drain, usually before this thread has freed the
         * burst's payloads, so this thread returns them too. */
        freed += bytes;
        if (idle && freed >= CPAR__DB_TRIM_BYTES) {
            malloc_trim(0);
            freed = 0;
        }
    }
    return NULL;
}

/* ---- open and close (loop thread) ---------------------------------------------------- */

/* Checks a database that has tables is ours; creates the schema in an empty one. */
static int
cpar__db_check(cpar_taskdb *db, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc, ntables = -1;
    char magic[32] = "", version[16] = "";

    rc = sqlite3_prepare_v2(db->sql, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        ntables = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (ntables < 0) {
        snprintf(err, errlen, "the task database %s is corrupt or not a SQLite database (%s)", name,
                 sqlite3_errmsg(db->sql));
        return CPAR_EINVAL;
    }
    if (ntables == 0) {
        if (sqlite3_exec(db->sql, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db->sql, cpar__db_schema, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cannot create the task database %s: %s", name,
                     sqlite3_errmsg(db->sql));
            return CPAR_EIO;
        }
        return CPAR_OK;
    }
    if (sqlite3_prepare_v2(db->sql, "SELECT key, value FROM cpar_meta", -1, &st, NULL) ==
        SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const char *v = (const char *)sqlite3_column_text(st, 1);
            if (k != NULL && v != NULL && strcmp(k, "magic") == 0)
                snprintf(magic, sizeof(magic), "%s", v);
            if (k != NULL && v != NULL && strcmp(k, "version") == 0)
                snprintf(version, sizeof(version), "%s", v);
        }
    }
    sqlite3_finalize(st);
    if (strcmp(magic, CPAR__DB_MAGIC) != 0) {
        snprintf(err, errlen,
                 "%s is a SQLite database but not a cpar task database (no '" CPAR__DB_MAGIC
                 "' mark): refusing to use it (choose another --db-file)",
                 name);
        return CPAR_EINVAL;
    }
    if (strcmp(version, "1") == 0) {
        /* Made before recovery existed: upgraded in place (its records stay as they are). */
        if (sqlite3_exec(db->sql,
                         "BEGIN;" CPAR__DB_ENGINES_SCHEMA
                         "UPDATE cpar_meta SET value = '" CPAR__DB_VERSION
                         "' WHERE key = 'version'; COMMIT;",
                         NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen,
                     "cannot upgrade the task database %s to version " CPAR__DB_VERSION ": %s",
                     name, sqlite3_errmsg(db->sql));
            sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
            return CPAR_EIO;
        }
        return CPAR_OK;
    }
    if (strcmp(version, CPAR__DB_VERSION) != 0) {
        snprintf(err, errlen,
                 "the task database %s has version '%s', this controller reads version "
                 "'" CPAR__DB_VERSION "': refusing to use it",
                 name, version);
        return CPAR_EINVAL;
    }
    return CPAR_OK;
}

/* Counts what the database holds (the bounds' accounting). */
static int
cpar__db_count(cpar_taskdb *db, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db->sql, "SELECT count(*), total(stored) FROM records", -1, &st,
                                NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        db->nrecords = sqlite3_column_int64(st, 0);
        db->total_bytes = (int64_t)sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    if (!ok) {
        snprintf(err, errlen, "the task database %s is corrupt: %s", name, sqlite3_errmsg(db->sql));
        return CPAR_EINVAL;
    }
    return CPAR_OK;
}

int
cpar_taskdb_open(const cpar_taskdb_config *cfg, void *zctx, cpar_taskdb **out, char *err,
                 size_t errlen)
{
    cpar_taskdb *db = NULL;
    int rc = CPAR_EINVAL, memory;
    const char *name;
    char ep[64];
    int hwm = 0;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (cfg == NULL || cfg->mode == NULL ||
        (strcmp(cfg->mode, "sqlite") != 0 && strcmp(cfg->mode, "memory") != 0) ||
        cfg->max_records < 0 || cfg->max_bytes < 0 || cfg->keep_bytes < 0) {
        snprintf(err, errlen, "invalid task database configuration (mode '%s')",
                 cfg && cfg->mode ? cfg->mode : "(none)");
        return CPAR_EINVAL;
    }
    memory = strcmp(cfg->mode, "memory") == 0;
    if (!memory && (cfg->path == NULL || cfg->path[0] == '\0')) {
        snprintf(err, errlen, "the task database needs a file (--db-file) with --db sqlite");
        return CPAR_EINVAL;
    }
    name = memory ? "in memory" : cfg->path;
    if (cfg->recover && (memory || access(cfg->path, F_OK) != 0)) {
        if (memory)
            snprintf(err, errlen,
                     "recovery needs the task database in a file (--db sqlite): an "
                     "in-memory database died with its controller");
        else
            snprintf(err, errlen, "cannot recover: the task database %s does not exist (%s)", name,
                     strerror(errno));
        return CPAR_EINVAL;
    }
    pthread_once(&cpar__db_config_once, cpar__db_config);
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    if (cpar__seqs_init(&db->seqs, 0) != 0) {
        free(db);
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    pthread_mutex_init(&db->lock, NULL);
    {
        pthread_condattr_t attr; /* the gathering wait's deadline is on CLOCK_MONOTONIC */
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&db->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    db->log = cfg->log;
    db->max_records = cfg->max_records ? cfg->max_records : CPAR_TASKDB_DEFAULT_RECORDS;
    db->max_bytes = cfg->max_bytes ? cfg->max_bytes : CPAR_TASKDB_DEFAULT_BYTES;
    db->keep_bytes = cfg->keep_bytes ? cfg->keep_bytes : CPAR_TASKDB_DEFAULT_KEEP;
    if (sqlite3_open_v2(memory ? ":memory:" : cfg->path, &db->sql,
                        SQLITE_OPEN_READWRITE | (cfg->recover ? 0 : SQLITE_OPEN_CREATE) |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the task database %s: %s", name,
                 db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
        rc = CPAR_EIO;
        goto error;
    }
    sqlite3_busy_timeout(db->sql, 2000);
    rc = cpar__db_check(db, name, err, errlen);
    if (rc == 0)
        rc = cpar__db_count(db, name, err, errlen);
    if (rc != 0)
        goto error;
    if ((!memory &&
         sqlite3_exec(db->sql, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK) ||
        cpar__db_statements(db) != 0) {
        snprintf(err, errlen, "cannot set up the task database %s: %s", name,
                 sqlite3_errmsg(db->sql));
        rc = CPAR_EIO;
        goto error;
    }
    rc = cpar__db_identity(db, cfg, name, err, errlen); /* taskdb_recover.c */
    if (rc != 0)
        goto error;
    if (sqlite3_exec(db->sql, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up the task database %s: %s", name,
                 sqlite3_errmsg(db->sql));
        rc = CPAR_EIO;
        goto error;
    }
    rc = CPAR_EZMQ;
    snprintf(ep, sizeof(ep), "inproc://cpar-taskdb-%p", (void *)db);
    db->pair_loop = zmq_socket(zctx, ZMQ_PAIR);
    db->pair_thread = zmq_socket(zctx, ZMQ_PAIR);
    if (db->pair_loop == NULL || db->pair_thread == NULL ||
        zmq_setsockopt(db->pair_loop, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(db->pair_thread, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_bind(db->pair_loop, ep) != 0 || zmq_connect(db->pair_thread, ep) != 0) {
        snprintf(err, errlen, "cannot make the task database's socket: %s",
                 zmq_strerror(zmq_errno()));
        goto error;
    }
    if (pthread_create(&db->thread, NULL, cpar__db_main, db) != 0) {
        snprintf(err, errlen, "cannot start the task database's thread");
        rc = CPAR_ENOMEM;
        goto error;
    }
    db->started = 1;
    pthread_setname_np(db->thread, "cpar-taskdb"); /* for top -H, perf --comm, /proc */
    if (db->log != NULL)
        cpar_log_write(db->log,
                       "task database %s: %lld record(s), %lld payload byte(s) (bounds: %lld "
                       "records, %lld bytes; %lld bytes kept per payload)",
                       name, (long long)db->nrecords, (long long)db->total_bytes,
                       (long long)db->max_records, (long long)db->max_bytes,
                       (long long)db->keep_bytes);
    *out = db;
    return CPAR_OK;
error:
    cpar_taskdb_close(db);
    return rc;
}

void
cpar_taskdb_close(cpar_taskdb *db)
{
    int linger = 0;
    cpar_taskdb_answer *a;
    if (db == NULL)
        return;
    if (db->started) {
        pthread_mutex_lock(&db->lock);
        db->stopping = 1;
        pthread_cond_signal(&db->wake);
        pthread_mutex_unlock(&db->lock);
        pthread_join(db->thread, NULL);
        while (cpar_taskdb_answer_next(db, 0, &a) == 1)
            cpar_taskdb_answer_free(a);
    }
    while (db->head != NULL) { /* never started: nothing ran */
        cpar__dbitem *next = db->head->next;
        cpar__item_free(db->head);
        db->head = next;
    }
    if (db->pair_thread) {
        zmq_setsockopt(db->pair_thread, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(db->pair_thread);
    }
    if (db->pair_loop) {
        zmq_setsockopt(db->pair_loop, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(db->pair_loop);
    }
    cpar__db_finalize(db);
    cpar__seqs_free(&db->seqs);
    cpar_taskdb_recovery_free(db->recovery);
    if (db->sql)
        sqlite3_close_v2(db->sql);
    pthread_cond_destroy(&db->wake);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

void *
cpar_taskdb_pair(cpar_taskdb *db)
{
    return db ? db->pair_loop : NULL;
}

int
cpar_taskdb_answer_next(cpar_taskdb *db, long timeout_ms, cpar_taskdb_answer **out)
{
    zmq_pollitem_t item = {.socket = db->pair_loop, .events = ZMQ_POLLIN};
    cpar_taskdb_answer *a = NULL;
    *out = NULL;
    if (timeout_ms != 0 && zmq_poll(&item, 1, timeout_ms) <= 0)
        return 0;
    if (zmq_recv(db->pair_loop, &a, sizeof(a), ZMQ_DONTWAIT) != (int)sizeof(a) || a == NULL)
        return 0;
    CPAR_TSAN_ACQUIRE(a);
    *out = a;
    return 1;
}

void
cpar_taskdb_answer_free(cpar_taskdb_answer *a)
{
    if (a == NULL)
        return;
    cpar_msg_close(&a->reply);
    for (size_t i = 0; i < a->ntasks; i++)
        cpar_msg_close(&a->tasks[i]);
    free(a->tasks);
    free(a);
}

void
cpar_taskdb_get_stats(cpar_taskdb *db, cpar_taskdb_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (db != NULL) {
        *out = db->stats;
        out->failed += atomic_load(&db->thread_failed);
        out->batches = atomic_load(&db->batches);
    }
}

/* ---- events (loop thread) ------------------------------------------------------------ */

static void
cpar__push(cpar_taskdb *db, cpar__dbitem *it)
{
    int was_empty;
    db->stats.queued++;
    it->cost = (int64_t)(sizeof(*it) + it->nframes * sizeof(zmq_msg_t) + it->textlen +
                         it->ntargets * sizeof(int32_t)) +
               (it->kept ? (int64_t)it->bytes : 0);
    pthread_mutex_lock(&db->lock);
    db->queued_bytes += it->cost;
    was_empty = db->head == NULL;
    if (db->tail)
        db->tail->next = it;
    else
        db->head = it;
    db->tail = it;
    /* Else the thread finds it when it takes the queue next; a request, or a queue grown
     * large, ends its gathering wait. */
    if (it->kind == CPAR__DBI_REQUEST && !db->urgent) {
        db->urgent = 1;
        pthread_cond_signal(&db->wake);
    } else if (was_empty || (db->queued_bytes - it->cost < CPAR__DB_GATHER_BYTES &&
                             db->queued_bytes >= CPAR__DB_GATHER_BYTES))
        pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->lock);
}

static cpar__dbitem *
cpar__item_new(int kind, const uint8_t *id)
{
    cpar__dbitem *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return NULL;
    it->kind = kind;
    memcpy(it->id, id, CPAR_WIRE_ID_SIZE);
    it->at_us = cpar_now_ns() / 1000;
    it->engine = CPAR_NO_ENGINE;
    return it;
}

/* Shares frames [first, m->nframes) of m into it when they are to be kept: 0, or -1 when
 * out of memory (it keeps nothing). */
static int
cpar__share(cpar_taskdb *db, cpar__dbitem *it, const cpar_msg *m, size_t first)
{
    int64_t queued;
    size_t n = m->nframes > first ? m->nframes - first : 0;
    it->bytes = 0;
    for (size_t i = first; i < m->nframes; i++)
        it->bytes += zmq_msg_size((zmq_msg_t *)&m->frames[i]);
    if (m->h.flags & CPAR_FLAG_SHM)
        it->bytes += cpar_shm_described_bytes(m);
    it->kept = 0;
    if ((m->h.flags & CPAR_FLAG_SHM) || (int64_t)it->bytes > db->keep_bytes)
        return 0;
    pthread_mutex_lock(&db->lock);
    queued = db->queued_bytes;
    pthread_mutex_unlock(&db->lock);
    if (queued + (int64_t)it->bytes > CPAR__DB_QUEUE_BYTES) {
        db->stats.dropped++;
        return 0;
    }
    it->frames = calloc(n ? n : 1, sizeof(zmq_msg_t));
    if (it->frames == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&it->frames[i]);
        zmq_msg_copy(&it->frames[i], (zmq_msg_t *)&m->frames[first + i]);
    }
    it->nframes = n;
    it->kept = 1;
    return 0;
}

static uint32_t
cpar__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The engines a request names (direct: its target list; TASK: its spec's allowed list). */
static int
cpar__targets(cpar__dbitem *it, const cpar_msg *m)
{
    size_t n = 0;
    if (m->h.type == CPAR_MSG_TASK) {
        const uint8_t *p = m->nframes ? zmq_msg_data((zmq_msg_t *)&m->frames[0]) : NULL;
        size_t len = m->nframes ? zmq_msg_size((zmq_msg_t *)&m->frames[0]) : 0;
        if (len >= CPAR__DB_SPEC_HEADER)
            n = cpar__le32(p + 16);
        if (n > (len - (len >= CPAR__DB_SPEC_HEADER ? CPAR__DB_SPEC_HEADER : len)) / 4)
            n = 0;
        it->targets = malloc((n ? n : 1) * sizeof(int32_t));
        if (it->targets == NULL)
            return -1;
        for (size_t i = 0; i < n; i++)
            it->targets[i] = (int32_t)cpar__le32(p + CPAR__DB_SPEC_HEADER + 4 * i);
    } else {
        int k = cpar_wire_targets(m);
        n = k > 0 ? (size_t)k : 0;
        it->targets = malloc((n ? n : 1) * sizeof(int32_t));
        if (it->targets == NULL)
            return -1;
        for (size_t i = 0; i < n; i++)
            it->targets[i] = cpar_wire_target_at(m, i);
    }
    it->ntargets = n;
    return 0;
}

void
cpar_taskdb_arrival(cpar_taskdb *db, const cpar_msg *m)
{
    cpar__dbitem *it;
    int task = m->h.type == CPAR_MSG_TASK;
    if (db == NULL || (m->h.type != CPAR_MSG_EXECUTE && m->h.type != CPAR_MSG_APPLY && !task))
        return;
    it = cpar__item_new(CPAR__DBI_ARRIVAL, m->h.msg_id);
    if (it == NULL)
        goto nomem;
    it->type = m->h.type;
    it->flags = m->h.flags;
    if (cpar__targets(it, m) != 0 || (!task && it->ntargets == 0) ||
        cpar__share(db, it, m, task ? 0 : 1) != 0)
        goto nomem;
    if (m->h.type == CPAR_MSG_EXECUTE && m->nframes >= 2) {
        size_t len = zmq_msg_size((zmq_msg_t *)&m->frames[1]);
        if ((int64_t)len <= db->keep_bytes) {
            it->text = malloc(len + 1);
            if (it->text == NULL)
                goto nomem;
            memcpy(it->text, zmq_msg_data((zmq_msg_t *)&m->frames[1]), len);
            it->text[len] = '\0';
            it->textlen = len;
        }
    }
    cpar__push(db, it);
    return;
nomem:
    db->stats.failed++;
    if (it != NULL)
        cpar__item_free(it);
}

void
cpar_taskdb_stream(cpar_taskdb *db, const cpar_msg *m)
{
    cpar__dbitem *it;
    if (db == NULL || m->nframes < 1)
        return;
    it = cpar__item_new(CPAR__DBI_STREAM, m->h.parent);
    if (it == NULL || (it->frames = calloc(1, sizeof(zmq_msg_t))) == NULL) {
        db->stats.failed++;
        free(it);
        return;
    }
    it->engine = m->h.engine;
    it->flags = m->h.flags;
    zmq_msg_init(&it->frames[0]);
    zmq_msg_copy(&it->frames[0], (zmq_msg_t *)&m->frames[0]);
    it->nframes = 1;
    cpar__push(db, it);
}

void
cpar_taskdb_reply(cpar_taskdb *db, const cpar_msg *m)
{
    cpar__dbitem *it;
    if (db == NULL)
        return;
    it = cpar__item_new(CPAR__DBI_REPLY, m->h.parent);
    if (it == NULL || cpar__share(db, it, m, 0) != 0) {
        db->stats.failed++;
        if (it != NULL)
            cpar__item_free(it);
        return;
    }
    it->engine = m->h.engine;
    it->status = m->h.status;
    it->flags = m->h.flags;
    it->t0 = m->h.t0;
    it->t1 = m->h.t1;
    cpar__push(db, it);
}

void
cpar_taskdb_error(cpar_taskdb *db, const uint8_t *parent, int32_t engine, int code,
                  const char *text, size_t len)
{
    cpar__dbitem *it;
    if (db == NULL)
        return;
    it = cpar__item_new(CPAR__DBI_ERROR, parent);
    if (it == NULL || (it->text = malloc(len + 1)) == NULL) {
        db->stats.failed++;
        free(it);
        return;
    }
    memcpy(it->text, text, len);
    it->text[len] = '\0';
    it->textlen = len;
    it->engine = engine;
    it->status = code;
    cpar__push(db, it);
}

void
cpar_taskdb_dispatch(cpar_taskdb *db, const uint8_t *id, int32_t engine)
{
    cpar__dbitem *it;
    if (db == NULL)
        return;
    it = cpar__item_new(CPAR__DBI_DISPATCH, id);
    if (it == NULL) {
        db->stats.failed++;
        return;
    }
    it->engine = engine;
    cpar__push(db, it);
}

void
cpar_taskdb_engine(cpar_taskdb *db, int32_t id, int registered, int32_t pid, const char *host)
{
    static const uint8_t none[CPAR_WIRE_ID_SIZE];
    cpar__dbitem *it;
    if (db == NULL)
        return;
    it = cpar__item_new(CPAR__DBI_ENGINE, none);
    if (it == NULL || (registered && host != NULL && (it->text = strdup(host)) == NULL)) {
        db->stats.failed++;
        free(it);
        return;
    }
    it->textlen = it->text ? strlen(it->text) : 0;
    it->engine = id;
    it->status = registered;
    it->pid = pid;
    cpar__push(db, it);
}

int
cpar_taskdb_request(cpar_taskdb *db, uint32_t slot, cpar_msg *m)
{
    cpar__dbitem *it = cpar__item_new(CPAR__DBI_REQUEST, m->h.msg_id);
    if (it == NULL) {
        db->stats.failed++;
        return CPAR_ENOMEM;
    }
    it->slot = slot;
    it->frames = m->frames;
    it->nframes = m->nframes;
    m->frames = NULL;
    m->nframes = m->cap = 0;
    cpar__push(db, it);
    return CPAR_OK;
}
