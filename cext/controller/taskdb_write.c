/* The task database's writes (docs/taskdb.md, "What is recorded"): their prepared
 * statements, the events the loop queued (arrival, dispatch, STREAM, REPLY, ERROR) applied
 * to their records (found by the seq remembered at arrival, taskdb_seqs.h, else by msg_id),
 * and the bounds (the oldest ended records purged first; pending ones never). Called by
 * taskdb.c (open, close, its thread); calls taskdb_sql.c and taskdb_seqs.c.
 *
 * Threads: the database thread only (taskdb_int.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"

/* ---- statements (open and close, before and after the thread) ----------------------- */

/* cpar_forget(seq): the temp trigger's call when a record is deleted. */
static void
cpar__db_forget(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cpar_taskdb *db = sqlite3_user_data(ctx);
    if (argc == 1)
        cpar__seqs_forget(&db->seqs, sqlite3_value_int64(argv[0]));
    sqlite3_result_null(ctx);
}

static int
cpar__db_prepare(cpar_taskdb *db, sqlite3_stmt **st, const char *sql)
{
    return sqlite3_prepare_v3(db->sql, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
               ? CPAR_OK
               : CPAR_EIO;
}

/* Every prepared statement: where it lives in cpar_taskdb, and its SQL (prepared by
 * cpar__db_statements, finalized by cpar__db_finalize). */
static const struct {
    size_t offset;
    const char *sql;
} cpar__db_stmts[] = {
    {offsetof(cpar_taskdb, st_insert),
     "INSERT OR IGNORE INTO records(msg_id, request_id, part_engine, client_uuid, queue,"
     " msg_type, targets, submitted, execute_input, request_bytes, request_kept,"
     " resubmitted, label, status, request_frames, stored) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
     " json(?7), ?8, ?9, ?10, ?14 IS NOT NULL, ?12, ?13, 'pending', ?14, ?15)"},
    {offsetof(cpar_taskdb, st_find), "SELECT seq FROM records WHERE msg_id = ?1 UNION ALL"
                                     " SELECT seq FROM records WHERE msg_id = ?1 || ':' || ?2"},
    {offsetof(cpar_taskdb, st_stream),
     "UPDATE records SET"
     " stdout = CASE WHEN (?2 & 1) AND NOT (?2 & 64) THEN substr(stdout || ?3, 1, ?4)"
     " ELSE stdout END,"
     " stderr = CASE WHEN (?2 & 2) AND NOT (?2 & 64) THEN substr(stderr || ?3, 1, ?4)"
     " ELSE stderr END WHERE seq = ?1"},
    {offsetof(cpar_taskdb, st_output),
     "INSERT INTO outputs(rec, idx, flags, data) SELECT seq, nout, ?2,"
     " ?3 FROM records WHERE seq = ?1 AND outbytes + ?4 <= ?5"},
    {offsetof(cpar_taskdb, st_reply),
     "UPDATE records SET status = CASE WHEN ?2 = 0 THEN 'ok' ELSE 'error' END,"
     " engine_id = ?3, started = ?4, completed = ?5, received = ?6, reply_status = ?2,"
     " reply_bytes = ?7, reply_kept = ?8 IS NOT NULL, reply_frames = ?8,"
     " stored = stored + ?9 WHERE seq = ?1"},
    {offsetof(cpar_taskdb, st_error),
     "UPDATE records SET status = 'error', error_code = ?2, error_message = ?3,"
     " engine_id = CASE WHEN ?4 >= 0 THEN ?4 ELSE engine_id END, received = ?5"
     " WHERE seq = ?1 AND status = 'pending'"},
    {offsetof(cpar_taskdb, st_outcount),
     "UPDATE records SET nout = nout + 1, outbytes = outbytes + ?2,"
     " stored = stored + ?2 WHERE seq = ?1"},
    {offsetof(cpar_taskdb, st_dispatch), "UPDATE records SET engine_id = ?2 WHERE msg_id = ?1 AND"
                                         " status = 'pending'"},
    {offsetof(cpar_taskdb, st_eng_end),
     "UPDATE engines SET gone = ?2 WHERE id = ?1 AND gone IS NULL"},
    {offsetof(cpar_taskdb, st_eng_add),
     "INSERT INTO engines(id, pid, host, registered) VALUES (?1, ?2, ?3,"
     " ?4)"},
    {offsetof(cpar_taskdb, st_dispatch_seq), "UPDATE records SET engine_id = ?2 WHERE seq = ?1 AND"
                                             " status = 'pending'"},
    {offsetof(cpar_taskdb, st_pick), "SELECT seq, stored FROM records WHERE status != 'pending'"
                                     " ORDER BY seq LIMIT ?1"},
    {offsetof(cpar_taskdb, st_del), "DELETE FROM records WHERE seq = ?1"},
    {offsetof(cpar_taskdb, st_begin), "BEGIN"},
    {offsetof(cpar_taskdb, st_commit), "COMMIT"},
};

static sqlite3_stmt **
cpar__db_stmt_at(cpar_taskdb *db, size_t k)
{
    return (sqlite3_stmt **)((char *)db + cpar__db_stmts[k].offset);
}

int
cpar__db_statements(cpar_taskdb *db)
{
    int rc = CPAR_OK;
    for (size_t k = 0; k < sizeof(cpar__db_stmts) / sizeof(cpar__db_stmts[0]) && rc == 0; k++)
        rc = cpar__db_prepare(db, cpar__db_stmt_at(db, k), cpar__db_stmts[k].sql);
    if (rc == 0)
        rc = cpar__db_exec(db, "CREATE TEMP TABLE sel(seq INTEGER PRIMARY KEY)");
    /* Whatever deletes a record (the bounds, purge_results, a savepoint undone: anything)
     * makes db->seqs forget it, so a remembered seq always names the row it was put for. */
    if (rc == 0 && sqlite3_create_function_v2(db->sql, "cpar_forget", 1, SQLITE_UTF8, db,
                                              cpar__db_forget, NULL, NULL, NULL) != SQLITE_OK)
        rc = CPAR_EIO;
    if (rc == 0)
        rc = cpar__db_exec(db, "CREATE TEMP TRIGGER cpar_forget_gone AFTER DELETE ON"
                               " main.records BEGIN SELECT cpar_forget(old.seq); END");
    return rc;
}

void
cpar__db_finalize(cpar_taskdb *db)
{
    for (size_t k = 0; k < sizeof(cpar__db_stmts) / sizeof(cpar__db_stmts[0]); k++) {
        sqlite3_finalize(*cpar__db_stmt_at(db, k));
        *cpar__db_stmt_at(db, k) = NULL;
    }
}

int
cpar__db_begin(cpar_taskdb *db)
{
    return cpar__db_step_done(db, db->st_begin, "BEGIN");
}

int
cpar__db_commit(cpar_taskdb *db, int in_tx)
{
    int rc = in_tx ? cpar__db_step_done(db, db->st_commit, "COMMIT") : CPAR_OK;
    /* Not committed (a failed COMMIT, or a BEGIN that failed inside a transaction left
     * open): SQLite may yet roll those rows back and hand their seqs out again, so forget
     * every arrival rather than trust one that may go. */
    if (rc != 0 || !sqlite3_get_autocommit(db->sql))
        cpar__seqs_clear(&db->seqs);
    return rc;
}

/* The record of part `engine` of request `id` (a task matches any engine): seq or 0. The
 * msg_id `<hex>` first, then `<hex>:<engine>`, as remembered since its arrival, else as
 * the msg_id index has it. */
static int64_t
cpar__db_find(cpar_taskdb *db, const uint8_t *id, int32_t engine)
{
    char hex[2 * CPAR_WIRE_ID_SIZE + 1];
    int64_t seq = cpar__seqs_get(&db->seqs, id, CPAR_NO_ENGINE);
    if (seq == 0 && engine != CPAR_NO_ENGINE)
        seq = cpar__seqs_get(&db->seqs, id, engine);
    if (seq != 0)
        return seq;
    cpar__db_hex(id, CPAR_WIRE_ID_SIZE, hex);
    sqlite3_bind_text(db->st_find, 1, hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(db->st_find, 2, engine);
    if (sqlite3_step(db->st_find) == SQLITE_ROW)
        seq = sqlite3_column_int64(db->st_find, 0);
    sqlite3_reset(db->st_find);
    sqlite3_clear_bindings(db->st_find);
    return seq;
}

/* ---- applying events (database thread) ---------------------------------------------- */

static void
cpar__db_on_arrival(cpar_taskdb *db, cpar__dbitem *it)
{
    char hex[2 * CPAR_WIRE_ID_SIZE + 1], part[2 * CPAR_WIRE_ID_SIZE + 16], uuid[17];
    char *targets = malloc(it->ntargets * 12 + 3);
    size_t pos = 0;
    int task = it->type == CPAR_MSG_TASK;
    size_t nparts = task ? 1 : it->ntargets, bloblen = 0;
    uint8_t *blob = it->kept ? cpar__db_pack(it->frames, it->nframes, &bloblen) : NULL;

    if (targets == NULL) {
        free(blob);
        cpar__db_fail(db, "recording a request (out of memory)");
        return;
    }
    targets[pos++] = '[';
    for (size_t k = 0; k < it->ntargets; k++)
        pos += (size_t)snprintf(targets + pos, 13, "%s%d", k ? "," : "", (int)it->targets[k]);
    targets[pos++] = ']';
    targets[pos] = '\0';
    cpar__db_hex(it->id, CPAR_WIRE_ID_SIZE, hex);
    cpar__db_hex(it->id, 8, uuid);
    for (size_t k = 0; k < nparts; k++) {
        int64_t engine = task ? -1 : it->targets[k];
        if (nparts > 1)
            snprintf(part, sizeof(part), "%s:%d", hex, (int)engine);
        else
            snprintf(part, sizeof(part), "%s", hex);
        int64_t seq = cpar__db_insert_record(
            db, part, hex, engine, uuid, task ? "task" : "mux",
            it->type == CPAR_MSG_EXECUTE ? "execute_request" : "apply_request", targets, it->at_us,
            it->text, it->textlen, (int64_t)it->bytes, blob, bloblen, NULL, NULL);
        if (seq > 0) /* found by cpar__db_find as its msg_id would be */
            cpar__seqs_put(&db->seqs, it->id, nparts > 1 ? (int32_t)engine : CPAR_NO_ENGINE, seq);
    }
    free(blob);
    free(targets);
}

static void
cpar__db_on_stream(cpar_taskdb *db, cpar__dbitem *it)
{
    int64_t seq = cpar__db_find(db, it->id, it->engine);
    size_t len;
    const void *data;
    if (seq == 0 || it->nframes < 1)
        return;
    len = zmq_msg_size(&it->frames[0]);
    data = len ? zmq_msg_data(&it->frames[0]) : "";
    sqlite3_bind_int64(db->st_stream, 1, seq);
    sqlite3_bind_int(db->st_stream, 2, it->flags);
    sqlite3_bind_text64(db->st_stream, 3, data, len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_int64(db->st_stream, 4, db->keep_bytes);
    cpar__db_step_done(db, db->st_stream, "recording output");
    sqlite3_bind_int64(db->st_output, 1, seq);
    sqlite3_bind_int(db->st_output, 2, it->flags);
    sqlite3_bind_blob64(db->st_output, 3, data, len, SQLITE_STATIC);
    sqlite3_bind_int64(db->st_output, 4, (sqlite3_int64)len);
    sqlite3_bind_int64(db->st_output, 5, db->keep_bytes);
    if (cpar__db_step_done(db, db->st_output, "recording output") == 0 &&
        sqlite3_changes(db->sql) > 0) {
        sqlite3_bind_int64(db->st_outcount, 1, seq);
        sqlite3_bind_int64(db->st_outcount, 2, (sqlite3_int64)len);
        cpar__db_step_done(db, db->st_outcount, "recording output");
        cpar__db_account(db, 0, (int64_t)len);
    }
}

static void
cpar__db_on_reply(cpar_taskdb *db, cpar__dbitem *it)
{
    sqlite3_stmt *st = db->st_reply;
    int64_t seq = cpar__db_find(db, it->id, it->engine), stored = 0;
    size_t bloblen = 0;
    uint8_t *blob;
    if (seq == 0)
        return;
    blob = it->kept ? cpar__db_pack(it->frames, it->nframes, &bloblen) : NULL;
    if (blob != NULL)
        stored = (int64_t)bloblen;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, it->status);
    sqlite3_bind_int(st, 3, it->engine);
    if (it->t0)
        sqlite3_bind_int64(st, 4, (sqlite3_int64)(it->t0 / 1000));
    if (it->t1)
        sqlite3_bind_int64(st, 5, (sqlite3_int64)(it->t1 / 1000));
    sqlite3_bind_int64(st, 6, (sqlite3_int64)it->at_us);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)it->bytes);
    if (blob != NULL)
        sqlite3_bind_blob64(st, 8, blob, bloblen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, stored);
    if (cpar__db_step_done(db, st, "recording a reply") == 0 && sqlite3_changes(db->sql) > 0)
        cpar__db_account(db, 0, stored);
    free(blob);
}

static void
cpar__db_on_error(cpar_taskdb *db, cpar__dbitem *it)
{
    sqlite3_stmt *st = db->st_error;
    int64_t seq = cpar__db_find(db, it->id, it->engine);
    if (seq == 0)
        return;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, it->status);
    sqlite3_bind_text(st, 3, it->text ? it->text : "", (int)it->textlen, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, it->engine);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)it->at_us);
    cpar__db_step_done(db, st, "recording an error");
}

/* The dispatch event: a pending task's engine_id is where it runs. */
static void
cpar__db_on_dispatch(cpar_taskdb *db, cpar__dbitem *it)
{
    char hex[2 * CPAR_WIRE_ID_SIZE + 1];
    int64_t seq = cpar__seqs_get(&db->seqs, it->id, CPAR_NO_ENGINE); /* msg_id = <hex> */
    if (seq != 0) {
        sqlite3_bind_int64(db->st_dispatch_seq, 1, seq);
        sqlite3_bind_int(db->st_dispatch_seq, 2, it->engine);
        cpar__db_step_done(db, db->st_dispatch_seq, "recording where a task was sent");
        return;
    }
    cpar__db_hex(it->id, CPAR_WIRE_ID_SIZE, hex);
    sqlite3_bind_text(db->st_dispatch, 1, hex, -1, SQLITE_STATIC);
    sqlite3_bind_int(db->st_dispatch, 2, it->engine);
    cpar__db_step_done(db, db->st_dispatch, "recording where a task was sent");
}

/* An engine registered (a new row; an earlier row of that id left open is ended) or gone. */
static void
cpar__db_on_engine(cpar_taskdb *db, cpar__dbitem *it)
{
    sqlite3_bind_int(db->st_eng_end, 1, it->engine);
    sqlite3_bind_int64(db->st_eng_end, 2, (sqlite3_int64)it->at_us);
    cpar__db_step_done(db, db->st_eng_end, "recording an engine");
    if (!it->status)
        return;
    sqlite3_bind_int(db->st_eng_add, 1, it->engine);
    sqlite3_bind_int(db->st_eng_add, 2, it->pid);
    sqlite3_bind_text(db->st_eng_add, 3, it->text ? it->text : "?", -1, SQLITE_STATIC);
    sqlite3_bind_int64(db->st_eng_add, 4, (sqlite3_int64)it->at_us);
    cpar__db_step_done(db, db->st_eng_add, "recording an engine");
}

/* Purges the oldest ended records while the bounds are passed: past the record bound
 * alone (a long-running cluster, every batch), only as many as it is over are read. */
void
cpar__db_bounds(cpar_taskdb *db)
{
    sqlite3_stmt *pick = db->st_pick, *del = db->st_del;
    while (db->nrecords > db->max_records || db->total_bytes > db->max_bytes) {
        int64_t seqs[256], sizes[256];
        int n = 0, want = 256;
        if (db->total_bytes <= db->max_bytes && db->nrecords - db->max_records < want)
            want = (int)(db->nrecords - db->max_records);
        sqlite3_bind_int(pick, 1, want);
        while (n < want && sqlite3_step(pick) == SQLITE_ROW) {
            seqs[n] = sqlite3_column_int64(pick, 0);
            sizes[n++] = sqlite3_column_int64(pick, 1);
        }
        sqlite3_reset(pick);
        if (n == 0)
            break; /* only pending records left: they stay */
        for (int i = 0;
             i < n && (db->nrecords > db->max_records || db->total_bytes > db->max_bytes); i++) {
            sqlite3_bind_int64(del, 1, seqs[i]);
            if (cpar__db_step_done(db, del, "purging old records") == 0)
                cpar__db_account(db, -1, -sizes[i]);
        }
    }
}

void
cpar__db_apply(cpar_taskdb *db, cpar__dbitem *it)
{
    switch (it->kind) {
    case CPAR__DBI_ARRIVAL:
        cpar__db_on_arrival(db, it);
        break;
    case CPAR__DBI_STREAM:
        cpar__db_on_stream(db, it);
        break;
    case CPAR__DBI_REPLY:
        cpar__db_on_reply(db, it);
        break;
    case CPAR__DBI_ERROR:
        cpar__db_on_error(db, it);
        break;
    case CPAR__DBI_DISPATCH:
        cpar__db_on_dispatch(db, it);
        break;
    case CPAR__DBI_ENGINE:
        cpar__db_on_engine(db, it);
        break;
    default:
        break;
    }
}
