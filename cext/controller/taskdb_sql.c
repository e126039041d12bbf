/* The task database's SQL helpers, below its ops and its thread (taskdb_query.c,
 * taskdb_ops.c, taskdb.c call down into this file): writing a record, reading the client's
 * JSON with SQLite's JSON1 functions (json_type, json_extract, json_each on prepared
 * statements, the text bound as a parameter), the whitelist of columns a client may name,
 * resolving ids to records, and the strings the code composes from its own parts.
 *
 * Threads: the database thread only (taskdb_int.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"

/* ---- helpers (database thread) ------------------------------------------------------ */

void
cpar__db_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void
cpar__db_fail(cpar_taskdb *db, const char *what)
{
    uint64_t n = atomic_fetch_add(&db->thread_failed, 1) + 1;
    if (db->log != NULL && cpar_log_ratelimit(n))
        cpar_log_write(db->log, "task database: %s failed: %s (%llu failures so far)", what,
                       sqlite3_errmsg(db->sql), (unsigned long long)n);
}

int
cpar__db_exec(cpar_taskdb *db, const char *sql)
{
    if (sqlite3_exec(db->sql, sql, NULL, NULL, NULL) != SQLITE_OK) {
        cpar__db_fail(db, sql);
        return CPAR_EIO;
    }
    return CPAR_OK;
}

void
cpar__db_account(cpar_taskdb *db, int64_t records, int64_t bytes)
{
    db->nrecords += records;
    db->total_bytes += bytes;
}

/* Steps a write statement to its end and resets it: 0 or CPAR_EIO (counted). */
int
cpar__db_step_done(cpar_taskdb *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        cpar__db_fail(db, what);
        return CPAR_EIO;
    }
    return CPAR_OK;
}

static void
cpar__bind_engine(sqlite3_stmt *st, int i, int64_t engine)
{
    if (engine < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, engine);
}

int64_t
cpar__db_insert_record(cpar_taskdb *db, const char *msg_id, const char *request_id,
                       int64_t part_engine, const char *client_uuid, const char *queue,
                       const char *msg_type, const char *targets_json, uint64_t at_us,
                       const char *execute_input, size_t inputlen, int64_t request_bytes,
                       const void *frames, size_t frameslen, const char *resubmitted,
                       const char *label)
{
    sqlite3_stmt *st = db->st_insert;
    /* Every buffer outlives the step (cpar__db_step_done resets and clears the bindings
     * before it returns): bound in place, not copied. */
    sqlite3_bind_text(st, 1, msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, request_id, -1, SQLITE_STATIC);
    cpar__bind_engine(st, 3, part_engine);
    sqlite3_bind_text(st, 4, client_uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, msg_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, targets_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)at_us);
    if (execute_input != NULL)
        sqlite3_bind_text(st, 9, execute_input, (int)inputlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, request_bytes);
    if (frames != NULL)
        sqlite3_bind_blob64(st, 14, frames, frameslen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, frames != NULL ? (sqlite3_int64)frameslen : 0);
    if (resubmitted != NULL)
        sqlite3_bind_text(st, 12, resubmitted, -1, SQLITE_STATIC);
    if (label != NULL)
        sqlite3_bind_text(st, 13, label, -1, SQLITE_STATIC);
    if (cpar__db_step_done(db, st, "recording a request") != 0 || sqlite3_changes(db->sql) == 0)
        return 0;
    cpar__db_account(db, 1, frames != NULL ? (int64_t)frameslen : 0);
    return sqlite3_last_insert_rowid(db->sql);
}

static void
cpar__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
cpar__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint8_t *
cpar__db_pack(const zmq_msg_t *frames, size_t n, size_t *len)
{
    size_t total = 4 + 4 * n, pos;
    uint8_t *out;
    for (size_t i = 0; i < n; i++) {
        size_t k = zmq_msg_size((zmq_msg_t *)&frames[i]);
        if (k >= UINT32_MAX)
            return NULL;
        total += k;
    }
    out = malloc(total);
    if (out == NULL)
        return NULL;
    cpar__put32(out, (uint32_t)n);
    pos = 4 + 4 * n;
    for (size_t i = 0; i < n; i++) {
        size_t k = zmq_msg_size((zmq_msg_t *)&frames[i]);
        cpar__put32(out + 4 + 4 * i, (uint32_t)k);
        if (k)
            memcpy(out + pos, zmq_msg_data((zmq_msg_t *)&frames[i]), k);
        pos += k;
    }
    *len = total;
    return out;
}

int
cpar__db_unpack(const void *blob, size_t len, cpar_msg *m)
{
    const uint8_t *p = blob;
    size_t n, pos;
    if (p == NULL || len < 4)
        return -1;
    n = cpar__get32(p);
    if (n > CPAR_WIRE_MAX_FRAMES || len < 4 + 4 * n)
        return -1;
    pos = 4 + 4 * n;
    for (size_t i = 0; i < n; i++) {
        size_t k = cpar__get32(p + 4 + 4 * i);
        if (k > len - pos || cpar_msg_add_copy(m, p + pos, k) != 0)
            return -1;
        pos += k;
    }
    return (int)n;
}

/* The columns a client may name: its key, and the SQL that reads it as JSON. */
static const struct {
    const char *name;
    const char *json;
} cpar__cols[] = {
    {"msg_id", "msg_id"},
    {"request_id", "request_id"},
    {"seq", "seq"},
    {"client_uuid", "client_uuid"},
    {"queue", "queue"},
    {"msg_type", "msg_type"},
    {"targets", "json(targets)"},
    {"engine_id", "engine_id"},
    {"label", "label"},
    {"submitted", "submitted"},
    {"started", "started"},
    {"completed", "completed"},
    {"received", "received"},
    {"resubmitted", "resubmitted"},
    {"status", "status"},
    {"error_code", "error_code"},
    {"error_message", "error_message"},
    {"execute_input", "execute_input"},
    {"stdout", "stdout"},
    {"stderr", "stderr"},
    {"request_bytes", "request_bytes"},
    {"reply_bytes", "reply_bytes"},
    {"request_kept", "json(CASE WHEN request_kept THEN 'true' ELSE 'false' END)"},
    {"reply_kept", "json(CASE WHEN reply_kept THEN 'true' ELSE 'false' END)"},
};
#define CPAR__NCOLS ((int)(sizeof(cpar__cols) / sizeof(cpar__cols[0])))

void
cpar__sb_add(cpar__sb *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        char *np;
        while (nc < b->len + n + 1)
            nc *= 2;
        np = realloc(b->p, nc);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
cpar__sb_str(cpar__sb *b, const char *s)
{
    cpar__sb_add(b, s, strlen(s));
}

void
cpar__sb_fmt(cpar__sb *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        cpar__sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

int
cpar__fail(cpar__op *op, const char *ename, const char *fmt, ...)
{
    va_list ap;
    if (op->ename != NULL)
        return -1;
    op->ename = ename;
    va_start(ap, fmt);
    vsnprintf(op->evalue, sizeof(op->evalue), fmt, ap);
    va_end(ap);
    return -1;
}

int
cpar__sqlfail(cpar__op *op)
{
    return cpar__fail(op, "RuntimeError", "task database error: %s", sqlite3_errmsg(op->db->sql));
}

sqlite3_stmt *
cpar__prep(cpar__op *op, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(op->db->sql, sql, -1, &st, NULL) != SQLITE_OK) {
        cpar__sqlfail(op);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Runs sql with ?1 = text (len bytes, or -1) and returns its first column as a new string
 * (sqlite3_malloc'd), or NULL (failure recorded). */
char *
cpar__sql_text(cpar__op *op, const char *sql, const char *text, int len)
{
    sqlite3_stmt *st = cpar__prep(op, sql);
    char *out = NULL;
    if (st == NULL)
        return NULL;
    if (text != NULL)
        sqlite3_bind_text(st, 1, text, len, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        out = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    else
        cpar__sqlfail(op);
    sqlite3_finalize(st);
    return out;
}

/* Field `path` (a constant of this file) of the request: its JSON type (NULL when
 * absent) into *type (static names) and its value as text into *value (sqlite3_malloc'd;
 * JSON for arrays and objects). Returns 0, or -1 on failure. */
int
cpar__field(cpar__op *op, const char *path, const char **type, char **value)
{
    static const char *const names[] = {"null", "true", "false", "integer",
                                        "real", "text", "array", "object"};
    sqlite3_stmt *st = cpar__prep(op, "SELECT json_type(?1, ?2), json_extract(?1, ?2)");
    int rc = -1;
    *type = NULL;
    *value = NULL;
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, op->json, op->jsonlen, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        rc = 0;
        for (size_t i = 0; t != NULL && i < sizeof(names) / sizeof(names[0]); i++)
            if (strcmp(t, names[i]) == 0)
                *type = names[i];
        if (*type != NULL && sqlite3_column_text(st, 1) != NULL)
            *value = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 1));
    } else {
        cpar__sqlfail(op);
    }
    sqlite3_finalize(st);
    return rc;
}

/* json_each over a JSON text: columns 0 key, 1 type, 2 value. */
sqlite3_stmt *
cpar__each(cpar__op *op, const char *json)
{
    sqlite3_stmt *st = cpar__prep(op, "SELECT key, type, value FROM json_each(?1)");
    if (st != NULL)
        sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    return st;
}

/* A field that must be an array of strings (or absent/null when may_omit): its JSON text
 * into *arr (NULL when omitted). */
int
cpar__str_array(cpar__op *op, const char *path, const char *what, int may_omit, char **arr)
{
    const char *type;
    sqlite3_stmt *st;
    int rc = 0;
    if (cpar__field(op, path, &type, arr) != 0)
        return -1;
    if (type == NULL || strcmp(type, "null") == 0) {
        sqlite3_free(*arr);
        *arr = NULL;
        return may_omit ? 0
                        : cpar__fail(op, "ValueError", "%s: a list of strings is required", what);
    }
    if (strcmp(type, "array") != 0)
        return cpar__fail(op, "ValueError", "%s must be a list of strings, not JSON %s", what,
                          type);
    st = cpar__each(op, *arr);
    if (st == NULL)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW)
        if (strcmp((const char *)sqlite3_column_text(st, 1), "text") != 0) {
            rc = cpar__fail(op, "ValueError", "%s must be a list of strings (found JSON %s)", what,
                            (const char *)sqlite3_column_text(st, 1));
            break;
        }
    sqlite3_finalize(st);
    return rc;
}

const char *
cpar__col_name(int i)
{
    return cpar__cols[i].name;
}

int
cpar__col(const char *name)
{
    for (int i = 0; name != NULL && i < CPAR__NCOLS; i++)
        if (strcmp(name, cpar__cols[i].name) == 0)
            return i;
    return -1;
}

/* Appends to *seqs the records id names (a part id, or a request id: all its parts, in
 * target order); returns how many (0: none). */
static int
cpar__resolve(cpar__op *op, const char *id, int64_t **seqs, size_t *n, size_t *cap)
{
    sqlite3_stmt *st =
        cpar__prep(op, "SELECT seq FROM records WHERE msg_id = ?1 UNION"
                       " SELECT seq FROM records WHERE msg_id > ?1 || ':' AND msg_id < ?1 || ';'"
                       " ORDER BY 1");
    int found = 0;
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            int64_t *ns = realloc(*seqs, nc * sizeof(*ns));
            if (ns == NULL) {
                sqlite3_finalize(st);
                return cpar__fail(op, "RuntimeError", "task database out of memory");
            }
            *seqs = ns;
            *cap = nc;
        }
        (*seqs)[(*n)++] = sqlite3_column_int64(st, 0);
        found++;
    }
    sqlite3_finalize(st);
    return found;
}

/* Resolves every id of the string array `ids` (JSON) into *seqs; an unknown one is a
 * KeyError when strict. */
int
cpar__resolve_all(cpar__op *op, const char *ids, int strict, int64_t **seqs, size_t *n)
{
    sqlite3_stmt *st = cpar__each(op, ids);
    size_t cap = 0;
    int rc = 0;
    if (st == NULL)
        return -1;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 2);
        int found = cpar__resolve(op, id, seqs, n, &cap);
        if (found < 0)
            rc = -1;
        else if (found == 0 && strict)
            rc = cpar__fail(op, "KeyError", "no record of msg_id '%.80s' in the task database", id);
    }
    sqlite3_finalize(st);
    return rc;
}

/* json_object(...) of the chosen columns (all when keys is NULL) into sql. */
int
cpar__select(cpar__op *op, cpar__sb *sql, const char *keys)
{
    int want[CPAR__NCOLS] = {0}, first = 1;
    want[0] = 1; /* msg_id, always */
    if (keys == NULL) {
        for (int i = 0; i < CPAR__NCOLS; i++)
            want[i] = 1;
    } else {
        sqlite3_stmt *st = cpar__each(op, keys);
        int rc = 0;
        if (st == NULL)
            return -1;
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            int col = cpar__col((const char *)sqlite3_column_text(st, 2));
            if (col < 0)
                rc = cpar__fail(op, "ValueError", "unknown key '%.64s' in keys",
                                (const char *)sqlite3_column_text(st, 2));
            else
                want[col] = 1;
        }
        sqlite3_finalize(st);
        if (rc != 0)
            return -1;
    }
    cpar__sb_str(sql, "json_object(");
    for (int i = 0; i < CPAR__NCOLS; i++)
        if (want[i]) {
            cpar__sb_fmt(sql, "%s'%s', ", first ? "" : ", ", cpar__cols[i].name);
            cpar__sb_str(sql, cpar__cols[i].json);
            first = 0;
        }
    cpar__sb_str(sql, ")");
    return 0;
}
