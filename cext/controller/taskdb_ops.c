/* The task database's DB_REQUEST dispatch and its writing ops (docs/taskdb.md,
 * "Messages"): the request's op is read, run in a savepoint (an op that fails changes
 * nothing) and answered with a DB_REPLY: purge, label and resubmit here, query, history and
 * get in taskdb_query.c. A resubmit also makes the new TASK messages, which the loop enters
 * after sending the answer. Called by taskdb.c's thread; calls taskdb_query.c and
 * taskdb_sql.c.
 *
 * Threads: the database thread only (taskdb_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"

/* ---- purge, label ------------------------------------------------------------------- */

/* Runs st (its parameters bound) to the end; -1 after recording a failure. */
static int
cpar__run(cpar__op *op, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return cpar__sqlfail(op);
    return 0;
}

/* A "client" field: NULL, or 16 hex digits (a client's id prefix) into out. */
static int
cpar__client_field(cpar__op *op, char out[17], int *given)
{
    const char *type;
    char *v = NULL;
    int rc = 0;
    *given = 0;
    if (cpar__field(op, "$.client", &type, &v) != 0)
        return -1;
    if (type != NULL && strcmp(type, "null") != 0) {
        if (strcmp(type, "text") != 0 || strlen(v) != 16 || strspn(v, "0123456789abcdef") != 16)
            rc = cpar__fail(op, "ValueError", "client must be 16 lower-case hex digits or null");
        else {
            memcpy(out, v, 17);
            *given = 1;
        }
    }
    sqlite3_free(v);
    return rc;
}

static int
cpar__op_purge(cpar__op *op)
{
    const char *mtype, *etype;
    char *ids = NULL, *engines = NULL, client[17] = "";
    int64_t *seqs = NULL;
    size_t n = 0;
    int rc = -1, has_client;
    sqlite3_stmt *st = NULL;

    if (cpar__client_field(op, client, &has_client) != 0 ||
        cpar__field(op, "$.msg_ids", &mtype, &ids) != 0 ||
        cpar__field(op, "$.engines", &etype, &engines) != 0)
        goto error;
    if (cpar__db_exec(op->db, "DELETE FROM temp.sel") != 0) {
        cpar__sqlfail(op);
        goto error;
    }
    if (mtype != NULL && strcmp(mtype, "text") == 0) {
        if (strcmp(ids, "all") != 0) {
            cpar__fail(op, "ValueError", "msg_ids must be a list of ids or \"all\"");
            goto error;
        }
        st = cpar__prep(op, "INSERT OR IGNORE INTO temp.sel SELECT seq FROM records"
                            " WHERE status != 'pending' AND (?1 IS NULL OR client_uuid = ?1)");
        if (st == NULL)
            goto error;
        if (has_client)
            sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
        if (cpar__run(op, st) != 0)
            goto error;
        sqlite3_finalize(st);
        st = NULL;
    } else if (mtype != NULL && strcmp(mtype, "null") != 0) {
        sqlite3_free(ids);
        ids = NULL;
        if (cpar__str_array(op, "$.msg_ids", "msg_ids", 1, &ids) != 0 ||
            cpar__resolve_all(op, ids, 0, &seqs, &n) != 0)
            goto error;
        st = cpar__prep(op, "INSERT OR IGNORE INTO temp.sel SELECT seq FROM records"
                            " WHERE seq = ?1 AND (?2 IS NULL OR client_uuid = ?2)");
        if (st == NULL)
            goto error;
        for (size_t i = 0; i < n; i++) {
            sqlite3_bind_int64(st, 1, seqs[i]);
            if (has_client)
                sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
            if (cpar__run(op, st) != 0)
                goto error;
        }
        sqlite3_finalize(st);
        st = NULL;
        /* A pending record named by id: refused, and nothing is purged. */
        st = cpar__prep(op, "SELECT msg_id FROM records WHERE status = 'pending' AND seq IN"
                            " (SELECT seq FROM temp.sel) ORDER BY seq LIMIT 1");
        if (st == NULL)
            goto error;
        if (sqlite3_step(st) == SQLITE_ROW) {
            cpar__fail(op, "IndexError", "cannot purge pending record '%s': it has not ended",
                       (const char *)sqlite3_column_text(st, 0));
            goto error;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (etype != NULL && strcmp(etype, "null") != 0) {
        sqlite3_stmt *each;
        if (strcmp(etype, "array") != 0) {
            cpar__fail(op, "ValueError", "engines must be a list of engine ids");
            goto error;
        }
        st = cpar__prep(op, "INSERT OR IGNORE INTO temp.sel SELECT seq FROM records WHERE"
                            " engine_id = ?1 AND status != 'pending' AND"
                            " (?2 IS NULL OR client_uuid = ?2)");
        if (st == NULL || (each = cpar__each(op, engines)) == NULL)
            goto error;
        while (rc != -2 && sqlite3_step(each) == SQLITE_ROW) {
            if (strcmp((const char *)sqlite3_column_text(each, 1), "integer") != 0) {
                cpar__fail(op, "ValueError", "engines must be a list of engine ids (ints)");
                rc = -2;
                break;
            }
            sqlite3_bind_int64(st, 1, sqlite3_column_int64(each, 2));
            if (has_client)
                sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
            if (cpar__run(op, st) != 0)
                rc = -2;
        }
        sqlite3_finalize(each);
        if (rc == -2) {
            rc = -1;
            goto error;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    /* The bounds' accounting, then the purge (the trigger drops frames and outputs). */
    st = cpar__prep(op, "SELECT count(*), total(stored) FROM records WHERE seq IN"
                        " (SELECT seq FROM temp.sel)");
    if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
        cpar__sqlfail(op);
        goto error;
    }
    {
        int64_t count = sqlite3_column_int64(st, 0);
        int64_t bytes = (int64_t)sqlite3_column_double(st, 1);
        sqlite3_finalize(st);
        st = NULL;
        if (cpar__db_exec(op->db, "DELETE FROM records WHERE seq IN (SELECT seq FROM temp.sel)") !=
            0) {
            cpar__sqlfail(op);
            goto error;
        }
        cpar__db_account(op->db, -count, -bytes);
        op->out = sqlite3_mprintf("{\"purged\":%lld}", (long long)count);
    }
    rc = op->out ? 0 : cpar__fail(op, "RuntimeError", "task database out of memory");
error:
    sqlite3_finalize(st);
    sqlite3_free(ids);
    sqlite3_free(engines);
    free(seqs);
    cpar__db_exec(op->db, "DELETE FROM temp.sel");
    return rc;
}

static int
cpar__op_label(cpar__op *op)
{
    const char *type;
    char *label = NULL, *ids = NULL;
    int64_t *seqs = NULL;
    size_t n = 0;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (cpar__field(op, "$.label", &type, &label) != 0)
        goto error;
    if (type == NULL || (strcmp(type, "text") != 0 && strcmp(type, "null") != 0)) {
        cpar__fail(op, "ValueError", "label must be a string or null");
        goto error;
    }
    if (cpar__str_array(op, "$.msg_ids", "msg_ids", 0, &ids) != 0 ||
        cpar__resolve_all(op, ids, 1, &seqs, &n) != 0)
        goto error;
    st = cpar__prep(op, "UPDATE records SET label = ?2 WHERE seq = ?1");
    if (st == NULL)
        goto error;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, seqs[i]);
        if (strcmp(type, "text") == 0)
            sqlite3_bind_text(st, 2, label, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 2);
        if (cpar__run(op, st) != 0)
            goto error;
    }
    op->out = sqlite3_mprintf("{}");
    rc = 0;
error:
    sqlite3_finalize(st);
    sqlite3_free(label);
    sqlite3_free(ids);
    free(seqs);
    return rc;
}

/* ---- resubmit ----------------------------------------------------------------------- */

/* 32 hex digits into 16 bytes: 0, or -1. */
static int
cpar__unhex(const char *s, uint8_t out[CPAR_WIRE_ID_SIZE])
{
    if (s == NULL || strlen(s) != 2 * CPAR_WIRE_ID_SIZE)
        return -1;
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
            !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* 1 after a ValueError when a record has id (or parts of a request with that id). */
static int
cpar__id_in_use(cpar__op *op, const char *id)
{
    /* Part ids "<id>:<engine>" sort between "<id>:" and "<id>;" (the msg_id index). */
    sqlite3_stmt *st = cpar__prep(op, "SELECT 1 FROM records WHERE msg_id = lower(?1) OR"
                                      " (msg_id > lower(?1) || ':' AND msg_id < lower(?1) || ';')"
                                      " LIMIT 1");
    int used;
    if (st == NULL)
        return 1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    used = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (used)
        cpar__fail(op, "ValueError", "new id '%.80s' is already in use", id);
    return used;
}

/* The one record old id `old` names (a part or task id) for a resubmit: its seq, or 0
 * after recording why not. */
static int64_t
cpar__resub_source(cpar__op *op, const char *old)
{
    sqlite3_stmt *st = cpar__prep(op, "SELECT seq, msg_type, request_kept FROM records"
                                      " WHERE msg_id = ?1");
    int64_t seq = 0;
    if (st == NULL)
        return 0;
    sqlite3_bind_text(st, 1, old, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        st = cpar__prep(op, "SELECT count(*) FROM records WHERE msg_id > ?1 || ':' AND"
                            " msg_id < ?1 || ';'");
        if (st == NULL)
            return 0;
        sqlite3_bind_text(st, 1, old, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
            cpar__fail(op, "ValueError",
                       "'%.80s' is a request to %d engines: resubmit its parts (\"<id>:<engine>\")",
                       old, sqlite3_column_int(st, 0));
        else
            cpar__fail(op, "KeyError", "no record of msg_id '%.80s' in the task database", old);
    } else if (strcmp((const char *)sqlite3_column_text(st, 1), "execute_request") == 0) {
        cpar__fail(op, "ValueError",
                   "'%.80s' is an EXECUTE: only APPLY requests and tasks can be "
                   "resubmitted",
                   old);
    } else if (!sqlite3_column_int(st, 2)) {
        cpar__fail(op, "ValueError",
                   "the request frames of '%.80s' were not kept (too large, or sent by shared "
                   "memory): it cannot be resubmitted",
                   old);
    } else {
        seq = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return seq;
}

/* Records the new task `nid` made from record `seq` (old id `old`) and builds its TASK in
 * *m. */
static int
cpar__resub_one(cpar__op *op, int64_t seq, const char *old, const char *nid, cpar_msg *m)
{
    static const uint8_t plain_spec[CPAR__DB_SPEC_HEADER] = {1}; /* version 1, no limits */
    sqlite3_stmt *src = cpar__prep(op, "SELECT queue, targets, label, request_bytes,"
                                       " request_frames FROM records WHERE seq = ?1");
    char uuid[17];
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    int task, rc = -1;

    cpar_msg_init(m, CPAR_MSG_TASK);
    if (src == NULL)
        return -1;
    sqlite3_bind_int64(src, 1, seq);
    if (sqlite3_step(src) != SQLITE_ROW) {
        cpar__sqlfail(op);
        goto error;
    }
    task = strcmp((const char *)sqlite3_column_text(src, 0), "task") == 0;
    if (cpar__unhex(nid, m->h.msg_id) != 0)
        goto error;
    /* A direct APPLY part becomes a task any engine may run: a plain spec first. */
    if (!task && cpar_msg_add_copy(m, plain_spec, sizeof(plain_spec)) != 0)
        goto nomem;
    if (cpar__db_unpack(sqlite3_column_blob(src, 4), (size_t)sqlite3_column_bytes(src, 4), m) < 0) {
        cpar__fail(op, "RuntimeError", "the stored request of '%.80s' is damaged", old);
        goto error;
    }
    blob = cpar__db_pack(m->frames, m->nframes, &bloblen);
    if (blob == NULL)
        goto nomem;
    cpar__db_hex(m->h.msg_id, 8, uuid);
    if (cpar__db_insert_record(
            op->db, nid, nid, -1, uuid, "task", "apply_request",
            task ? (const char *)sqlite3_column_text(src, 1) : "[]", cpar_now_ns() / 1000, NULL, 0,
            sqlite3_column_int64(src, 3) + (task ? 0 : CPAR__DB_SPEC_HEADER), blob, bloblen, old,
            (const char *)sqlite3_column_text(src, 2)) <= 0) {
        cpar__fail(op, "ValueError", "new id '%.80s' is already in use", nid);
        goto error;
    }
    rc = 0;
    goto error;
nomem:
    cpar__fail(op, "RuntimeError", "task database out of memory");
error:
    sqlite3_finalize(src);
    free(blob);
    return rc;
}

static int
cpar__op_resubmit(cpar__op *op)
{
    char *olds = NULL, *news = NULL;
    sqlite3_stmt *a = NULL, *b = NULL, *pairs = NULL;
    size_t n = 0, nnew = 0;
    int rc = -1;

    if (cpar__str_array(op, "$.msg_ids", "msg_ids", 0, &olds) != 0 ||
        cpar__str_array(op, "$.new_ids", "new_ids", 0, &news) != 0)
        goto error;
    /* Checked first, all of them: nothing is resubmitted when one is wrong. */
    pairs = cpar__prep(op, "SELECT o.value, n.value, (SELECT count(*) FROM json_each(?2) d"
                           " WHERE lower(d.value) = lower(n.value)), json_array_length(?1),"
                           " json_array_length(?2) FROM json_each(?1) o JOIN json_each(?2) n"
                           " ON o.key = n.key ORDER BY o.key");
    if (pairs == NULL)
        goto error;
    sqlite3_bind_text(pairs, 1, olds, -1, SQLITE_STATIC);
    sqlite3_bind_text(pairs, 2, news, -1, SQLITE_STATIC);
    while (sqlite3_step(pairs) == SQLITE_ROW) {
        const char *old = (const char *)sqlite3_column_text(pairs, 0);
        const char *nid = (const char *)sqlite3_column_text(pairs, 1);
        uint8_t raw[CPAR_WIRE_ID_SIZE];
        n = (size_t)sqlite3_column_int64(pairs, 3);
        nnew = (size_t)sqlite3_column_int64(pairs, 4);
        if (n != nnew)
            break;
        if (cpar__unhex(nid, raw) != 0) {
            cpar__fail(op, "ValueError", "new id '%.80s' is not 32 hex digits", nid);
            goto error;
        }
        if (sqlite3_column_int(pairs, 2) > 1) {
            cpar__fail(op, "ValueError", "new id '%.80s' is given twice", nid);
            goto error;
        }
        if (cpar__resub_source(op, old) == 0 || cpar__id_in_use(op, nid))
            goto error;
    }
    sqlite3_reset(pairs);
    a = cpar__prep(op, "SELECT json_array_length(?1), json_array_length(?2)");
    if (a == NULL)
        goto error;
    sqlite3_bind_text(a, 1, olds, -1, SQLITE_STATIC);
    sqlite3_bind_text(a, 2, news, -1, SQLITE_STATIC);
    if (sqlite3_step(a) != SQLITE_ROW || sqlite3_column_int64(a, 0) != sqlite3_column_int64(a, 1)) {
        cpar__fail(op, "ValueError", "new_ids must have as many ids as msg_ids");
        goto error;
    }
    n = (size_t)sqlite3_column_int64(a, 0);
    op->a->tasks = calloc(n ? n : 1, sizeof(cpar_msg));
    if (op->a->tasks == NULL) {
        cpar__fail(op, "RuntimeError", "task database out of memory");
        goto error;
    }
    while (sqlite3_step(pairs) == SQLITE_ROW) {
        const char *old = (const char *)sqlite3_column_text(pairs, 0);
        char nid[2 * CPAR_WIRE_ID_SIZE + 1];
        uint8_t raw[CPAR_WIRE_ID_SIZE];
        int64_t seq = cpar__resub_source(op, old);
        cpar__unhex((const char *)sqlite3_column_text(pairs, 1), raw);
        cpar__db_hex(raw, CPAR_WIRE_ID_SIZE, nid);
        if (seq == 0 || cpar__resub_one(op, seq, old, nid, &op->a->tasks[op->a->ntasks++]) != 0)
            goto error;
    }
    /* The answer: {"msg_ids": {old: new}}, made by SQLite from the request's own lists. */
    b = cpar__prep(op, "SELECT json_object('msg_ids', json_group_object(o.value, lower(n.value)))"
                       " FROM json_each(?1) o JOIN json_each(?2) n ON o.key = n.key");
    if (b == NULL)
        goto error;
    sqlite3_bind_text(b, 1, olds, -1, SQLITE_STATIC);
    sqlite3_bind_text(b, 2, news, -1, SQLITE_STATIC);
    if (sqlite3_step(b) != SQLITE_ROW) {
        cpar__sqlfail(op);
        goto error;
    }
    op->out = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(b, 0));
    rc = 0;
error:
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    sqlite3_finalize(pairs);
    sqlite3_free(olds);
    sqlite3_free(news);
    return rc;
}

/* ---- dispatch ----------------------------------------------------------------------- */

static int
cpar__dispatch(cpar__op *op)
{
    static const struct {
        const char *name;
        int (*run)(cpar__op *);
    } ops[] = {{"query", cpar__op_query}, {"history", cpar__op_history},
               {"get", cpar__op_get},     {"purge", cpar__op_purge},
               {"label", cpar__op_label}, {"resubmit", cpar__op_resubmit}};
    char *ok = cpar__sql_text(op, "SELECT json_valid(?1) AND json_type(?1) = 'object'", op->json,
                              op->jsonlen);
    const char *type;
    char *name = NULL;
    int rc = -1;

    if (ok == NULL || strcmp(ok, "1") != 0) {
        op->ename = NULL;
        cpar__fail(op, "ValueError", "a DB_REQUEST's frame 0 must be a UTF-8 JSON object");
        goto error;
    }
    if (cpar__field(op, "$.op", &type, &name) != 0)
        goto error;
    if (type == NULL || strcmp(type, "text") != 0) {
        cpar__fail(op, "ValueError", "the DB_REQUEST has no \"op\" string");
        goto error;
    }
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(name, ops[i].name) == 0) {
            rc = ops[i].run(op);
            goto error;
        }
    cpar__fail(op, "ValueError", "unknown op '%.40s' (query, history, get, purge, label, resubmit)",
               name);
error:
    sqlite3_free(ok);
    sqlite3_free(name);
    return op->ename != NULL ? -1 : rc;
}

/* {"ename": ..., "evalue": ...} made by SQLite (sqlite3_free), or NULL. */
static char *
cpar__error_body(cpar_taskdb *db, const char *ename, const char *evalue)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(db->sql, "SELECT json_object('ename', ?1, 'evalue', ?2)", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ename, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, evalue, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
            out = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return out;
}

cpar_taskdb_answer *
cpar__db_answer(cpar_taskdb *db, cpar__dbitem *it)
{
    static const char fallback[] = "{\"ename\": \"RuntimeError\", \"evalue\": \"task database "
                                   "failure\"}";
    cpar_taskdb_answer *a = calloc(1, sizeof(*a));
    cpar__op op;
    char *body = NULL;
    int rc;

    if (a == NULL)
        return NULL;
    memset(&op, 0, sizeof(op));
    op.db = db;
    op.a = a;
    cpar_msg_init(&op.extra, CPAR_MSG_DB_REPLY);
    a->slot = it->slot;
    cpar_msg_init(&a->reply, CPAR_MSG_DB_REPLY);
    memcpy(a->reply.h.parent, it->id, CPAR_WIRE_ID_SIZE);
    op.json = it->nframes > 0 ? zmq_msg_data(&it->frames[0]) : "";
    op.jsonlen = it->nframes > 0 && zmq_msg_size(&it->frames[0]) < (1u << 30)
                     ? (int)zmq_msg_size(&it->frames[0])
                     : 0;
    if (cpar__db_exec(db, "SAVEPOINT op") != 0) {
        rc = cpar__sqlfail(&op);
    } else {
        rc = cpar__dispatch(&op);
        if (rc != 0)
            cpar__db_exec(db, "ROLLBACK TO op");
        cpar__db_exec(db, "RELEASE op");
    }
    if (rc == 0 && op.out != NULL && cpar_msg_add_copy(&a->reply, op.out, strlen(op.out)) == 0) {
        for (size_t i = 0; i < op.extra.nframes && rc == 0; i++)
            rc = cpar_msg_add_move(&a->reply, &op.extra.frames[i]);
    } else if (rc == 0) {
        rc = cpar__fail(&op, "RuntimeError", "task database out of memory");
    }
    if (rc != 0) {
        /* Nothing of a failed op leaves: no frames, no tasks; an error body. */
        for (size_t i = 0; i < a->ntasks; i++)
            cpar_msg_close(&a->tasks[i]);
        free(a->tasks);
        a->tasks = NULL;
        a->ntasks = 0;
        cpar_msg_close(&a->reply);
        cpar_msg_init(&a->reply, CPAR_MSG_DB_REPLY);
        memcpy(a->reply.h.parent, it->id, CPAR_WIRE_ID_SIZE);
        if (op.ename == NULL)
            cpar__fail(&op, "RuntimeError", "task database failure");
        a->reply.h.status = strcmp(op.ename, "RuntimeError") == 0 ? CPAR_EIO : CPAR_EINVAL;
        body = cpar__error_body(db, op.ename, op.evalue);
        if (cpar_msg_add_copy(&a->reply, body ? body : fallback,
                              body ? strlen(body) : sizeof(fallback) - 1) != 0) {
            cpar_msg_close(&a->reply); /* no tasks left: freed above */
            free(a);
            a = NULL;
        }
        sqlite3_free(body);
    }
    sqlite3_free(op.out);
    cpar_msg_close(&op.extra);
    return a;
}
