/* The task database's read ops (docs/taskdb.md, "Messages"): query (compiled from the
 * client's JSON into one read-only statement: keys from the whitelist, operators from a
 * fixed list, every value a bound parameter), history and get (records with their reply
 * frames and outputs). Called by taskdb_ops.c; calls taskdb_sql.c.
 *
 * Threads: the database thread only (taskdb_int.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"

#define CPAR__MAX_PARAMS 30000

/* ---- query -------------------------------------------------------------------------- */

typedef struct cpar__params {
    sqlite3_value *v[CPAR__MAX_PARAMS];
    int n;
} cpar__params;

/* Appends "?N" for a copy of value v. */
static int
cpar__param(cpar__op *op, cpar__params *ps, cpar__sb *sql, sqlite3_value *v)
{
    if (ps->n >= CPAR__MAX_PARAMS)
        return cpar__fail(op, "ValueError", "the query is too large (more than %d values)",
                          CPAR__MAX_PARAMS);
    ps->v[ps->n] = sqlite3_value_dup(v);
    if (ps->v[ps->n] == NULL)
        return cpar__fail(op, "RuntimeError", "task database out of memory");
    ps->n++;
    cpar__sb_fmt(sql, "?%d", ps->n);
    return 0;
}

/* One condition on column `col` (a whitelisted name): operator op_name (NULL: equality)
 * with the JSON value (type, v). */
static int
cpar__cond(cpar__op *op, cpar__params *ps, cpar__sb *sql, const char *col, const char *op_name,
           const char *type, sqlite3_value *v)
{
    static const struct {
        const char *name, *sql;
    } cmp[] = {{"$lt", " < "}, {"$gt", " > "}, {"$lte", " <= "}, {"$gte", " >= "}};
    int isnull = strcmp(type, "null") == 0;
    if (op_name == NULL || strcmp(op_name, "$eq") == 0) {
        if (isnull) {
            cpar__sb_fmt(sql, "(%s IS NULL)", col);
            return 0;
        }
        cpar__sb_fmt(sql, "(%s = ", col);
        if (cpar__param(op, ps, sql, v) != 0)
            return -1;
        cpar__sb_str(sql, ")");
        return 0;
    }
    if (strcmp(op_name, "$ne") == 0) {
        if (isnull) {
            cpar__sb_fmt(sql, "(%s IS NOT NULL)", col);
            return 0;
        }
        cpar__sb_fmt(sql, "(%s IS NULL OR %s != ", col, col);
        if (cpar__param(op, ps, sql, v) != 0)
            return -1;
        cpar__sb_str(sql, ")");
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmp) / sizeof(cmp[0]); i++)
        if (strcmp(op_name, cmp[i].name) == 0) {
            cpar__sb_fmt(sql, "(%s%s", col, cmp[i].sql);
            if (cpar__param(op, ps, sql, v) != 0)
                return -1;
            cpar__sb_str(sql, ")");
            return 0;
        }
    if (strcmp(op_name, "$exists") == 0) {
        int want =
            strcmp(type, "true") == 0 ||
            ((!strcmp(type, "integer") || !strcmp(type, "real")) && sqlite3_value_double(v) != 0);
        if (strcmp(type, "true") && strcmp(type, "false") && strcmp(type, "integer") &&
            strcmp(type, "real"))
            return cpar__fail(op, "ValueError", "$exists on '%s' needs true or false", col);
        cpar__sb_fmt(sql, "(%s IS %sNULL)", col, want ? "NOT " : "");
        return 0;
    }
    if (strcmp(op_name, "$in") == 0 || strcmp(op_name, "$nin") == 0) {
        int nin = op_name[1] == 'n', has_null = 0, first = 1, rc = 0;
        sqlite3_stmt *st;
        if (strcmp(type, "array") != 0)
            return cpar__fail(op, "ValueError", "%s on '%s' needs a list, not JSON %s", op_name,
                              col, type);
        st = cpar__each(op, (const char *)sqlite3_value_text(v));
        if (st == NULL)
            return -1;
        cpar__sb_fmt(sql, "(%s %sIN (", col, nin ? "NOT " : "");
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            if (strcmp((const char *)sqlite3_column_text(st, 1), "null") == 0) {
                has_null = 1;
                continue;
            }
            if (!first)
                cpar__sb_str(sql, ", ");
            first = 0;
            rc = cpar__param(op, ps, sql, sqlite3_column_value(st, 2));
        }
        sqlite3_finalize(st);
        if (rc != 0)
            return -1;
        /* NULL IN (...) is NULL, so null columns are handled apart: $in matches them when
         * the list holds null; $nin matches them unless it does (a missing value is "not
         * in", as in Mongo). */
        if (nin)
            cpar__sb_fmt(sql, ") %s %s IS %sNULL)", has_null ? "AND" : "OR", col,
                         has_null ? "NOT " : "");
        else
            cpar__sb_fmt(sql, ")%s%s%s)", has_null ? " OR " : "", has_null ? col : "",
                         has_null ? " IS NULL" : "");
        return 0;
    }
    return cpar__fail(op, "ValueError",
                      "unknown query operator '%.64s' on '%s' (use $lt $gt $lte $gte $eq $ne $in "
                      "$nin $exists)",
                      op_name, col);
}

/* Compiles the query object (JSON text q) into sql's WHERE clause. */
static int
cpar__where(cpar__op *op, cpar__params *ps, cpar__sb *sql, const char *q)
{
    sqlite3_stmt *st = cpar__each(op, q);
    int rc = 0, any = 0;
    if (st == NULL)
        return -1;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        int col = cpar__col(key);
        if (col < 0) {
            rc = cpar__fail(op, "ValueError", "unknown key '%.64s' in the query", key ? key : "");
            break;
        }
        if (any)
            cpar__sb_str(sql, " AND ");
        any = 1;
        if (strcmp(type, "object") == 0) {
            sqlite3_stmt *ops = cpar__each(op, (const char *)sqlite3_column_text(st, 2));
            int nops = 0;
            if (ops == NULL) {
                rc = -1;
                break;
            }
            cpar__sb_str(sql, "(");
            while (rc == 0 && sqlite3_step(ops) == SQLITE_ROW) {
                if (nops++)
                    cpar__sb_str(sql, " AND ");
                rc = cpar__cond(
                    op, ps, sql, cpar__col_name(col), (const char *)sqlite3_column_text(ops, 0),
                    (const char *)sqlite3_column_text(ops, 1), sqlite3_column_value(ops, 2));
            }
            sqlite3_finalize(ops);
            cpar__sb_str(sql, nops ? ")" : "1)");
        } else {
            rc = cpar__cond(op, ps, sql, cpar__col_name(col), NULL, type,
                            sqlite3_column_value(st, 2));
        }
    }
    sqlite3_finalize(st);
    if (!any)
        cpar__sb_str(sql, "1");
    return rc;
}

int
cpar__op_query(cpar__op *op)
{
    cpar__params *ps = calloc(1, sizeof(*ps));
    cpar__sb sql = {0};
    const char *qtype, *ktype;
    char *q = NULL, *keys = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (ps == NULL)
        return cpar__fail(op, "RuntimeError", "task database out of memory");
    if (cpar__field(op, "$.query", &qtype, &q) != 0 || cpar__field(op, "$.keys", &ktype, &keys))
        goto error;
    if (qtype == NULL || strcmp(qtype, "object") != 0) {
        cpar__fail(op, "ValueError", "query must be a JSON object, not %s",
                   qtype ? qtype : "missing");
        goto error;
    }
    sqlite3_free(keys); /* read again, checked: */
    keys = NULL;
    if (ktype != NULL && strcmp(ktype, "null") != 0 &&
        cpar__str_array(op, "$.keys", "keys", 1, &keys) != 0)
        goto error;
    cpar__sb_str(&sql, "SELECT json_object('records', json_group_array(json(r))) FROM (SELECT ");
    if (cpar__select(op, &sql, keys) != 0)
        goto error;
    cpar__sb_str(&sql, " AS r FROM records WHERE ");
    if (cpar__where(op, ps, &sql, q) != 0)
        goto error;
    cpar__sb_str(&sql, " ORDER BY seq)");
    if (sql.failed) {
        cpar__fail(op, "RuntimeError", "task database out of memory");
        goto error;
    }
    if ((st = cpar__prep(op, sql.p)) == NULL)
        goto error;
    if (!sqlite3_stmt_readonly(st)) {
        cpar__fail(op, "RuntimeError", "refused: the compiled query is not read-only");
        goto error;
    }
    for (int i = 0; i < ps->n; i++)
        sqlite3_bind_value(st, i + 1, ps->v[i]);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL) {
        cpar__sqlfail(op);
        goto error;
    }
    op->out = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    rc = 0;
error:
    sqlite3_finalize(st);
    for (int i = 0; i < ps->n; i++)
        sqlite3_value_free(ps->v[i]);
    free(ps);
    free(sql.p);
    sqlite3_free(q);
    sqlite3_free(keys);
    return rc;
}

/* ---- history, get ------------------------------------------------------------------- */

int
cpar__op_history(cpar__op *op)
{
    op->out = cpar__sql_text(op,
                             "SELECT json_object('msg_ids', json_group_array(msg_id)) FROM"
                             " (SELECT msg_id FROM records ORDER BY seq)",
                             NULL, 0);
    return op->out ? 0 : -1;
}

/* Makes room for n more frames in the answer: 0, or -1 after a ValueError. */
static int
cpar__room(cpar__op *op, size_t n)
{
    if (op->extra.nframes + n + 1 > CPAR_WIRE_MAX_FRAMES)
        return cpar__fail(op, "ValueError",
                          "the records asked for hold more than %d frames: ask for fewer ids",
                          CPAR_WIRE_MAX_FRAMES - 1);
    return 0;
}

/* One record of `get`, with its reply and outputs, appended to arr. */
static int
cpar__get_one(cpar__op *op, int64_t seq, cpar__sb *arr)
{
    sqlite3_stmt *rec = NULL, *out = NULL, *set = NULL;
    cpar__sb reply = {0}, outs = {0}, sel = {0};
    int rc = -1, first = 1;

    cpar__sb_str(&sel, "SELECT ");
    if (cpar__select(op, &sel, NULL) != 0 || sel.failed)
        goto error;
    cpar__sb_str(&sel, ", reply_status, reply_frames FROM records WHERE seq = ?1");
    if ((rec = cpar__prep(op, sel.p)) == NULL)
        goto error;
    sqlite3_bind_int64(rec, 1, seq);
    if (sqlite3_step(rec) != SQLITE_ROW) {
        cpar__sqlfail(op);
        goto error;
    }
    if (sqlite3_column_type(rec, 1) != SQLITE_NULL) {
        cpar__sb_fmt(&reply, "{\"status\": %d, \"frames\": ", sqlite3_column_int(rec, 1));
        if (sqlite3_column_type(rec, 2) != SQLITE_BLOB) {
            cpar__sb_str(&reply, "null}");
        } else {
            cpar_msg got;
            int n;
            cpar_msg_init(&got, CPAR_MSG_REPLY);
            n = cpar__db_unpack(sqlite3_column_blob(rec, 2), (size_t)sqlite3_column_bytes(rec, 2),
                                &got);
            if (n < 0 || cpar__room(op, got.nframes) != 0) {
                cpar_msg_close(&got);
                if (n < 0)
                    cpar__fail(op, "RuntimeError", "a stored reply is damaged");
                goto error;
            }
            cpar__sb_str(&reply, "[");
            for (size_t f = 0; f < got.nframes; f++) {
                if (cpar_msg_add_move(&op->extra, &got.frames[f]) != 0) {
                    cpar_msg_close(&got);
                    cpar__fail(op, "RuntimeError", "task database out of memory");
                    goto error;
                }
                cpar__sb_fmt(&reply, "%s%zu", f ? ", " : "", op->extra.nframes);
            }
            cpar_msg_close(&got);
            cpar__sb_str(&reply, "]}");
        }
    }
    out = cpar__prep(op, "SELECT flags, data FROM outputs WHERE rec = ?1 ORDER BY idx");
    if (out == NULL)
        goto error;
    sqlite3_bind_int64(out, 1, seq);
    cpar__sb_str(&outs, "[");
    while (sqlite3_step(out) == SQLITE_ROW) {
        int i;
        if (cpar__room(op, 1) != 0)
            goto error;
        if (cpar_msg_add_copy(&op->extra, sqlite3_column_blob(out, 1),
                              (size_t)sqlite3_column_bytes(out, 1)) != 0) {
            cpar__fail(op, "RuntimeError", "task database out of memory");
            goto error;
        }
        i = (int)op->extra.nframes; /* frame 0 is the JSON */
        cpar__sb_fmt(&outs, "%s{\"flags\": %d, \"frame\": %d}", first ? "" : ", ",
                     sqlite3_column_int(out, 0), i);
        first = 0;
    }
    cpar__sb_str(&outs, "]");
    if (reply.failed || outs.failed) {
        cpar__fail(op, "RuntimeError", "task database out of memory");
        goto error;
    }
    set = cpar__prep(op, reply.p ? "SELECT json_set(?1, '$.outputs', json(?2), '$.reply', json(?3))"
                                 : "SELECT json_set(?1, '$.outputs', json(?2))");
    if (set == NULL)
        goto error;
    sqlite3_bind_text(set, 1, (const char *)sqlite3_column_text(rec, 0), -1, SQLITE_STATIC);
    sqlite3_bind_text(set, 2, outs.p, -1, SQLITE_STATIC);
    if (reply.p)
        sqlite3_bind_text(set, 3, reply.p, -1, SQLITE_STATIC);
    if (sqlite3_step(set) != SQLITE_ROW) {
        cpar__sqlfail(op);
        goto error;
    }
    if (arr->len > 1)
        cpar__sb_str(arr, ", ");
    cpar__sb_str(arr, (const char *)sqlite3_column_text(set, 0));
    rc = 0;
error:
    sqlite3_finalize(rec);
    sqlite3_finalize(out);
    sqlite3_finalize(set);
    free(reply.p);
    free(outs.p);
    free(sel.p);
    return rc;
}

int
cpar__op_get(cpar__op *op)
{
    char *ids = NULL;
    int64_t *seqs = NULL;
    size_t n = 0;
    cpar__sb arr = {0};
    int rc = -1;

    if (cpar__str_array(op, "$.msg_ids", "msg_ids", 0, &ids) != 0 ||
        cpar__resolve_all(op, ids, 1, &seqs, &n) != 0)
        goto error;
    cpar__sb_str(&arr, "[");
    for (size_t i = 0; i < n; i++)
        if (cpar__get_one(op, seqs[i], &arr) != 0)
            goto error;
    cpar__sb_str(&arr, "]");
    if (arr.failed) {
        cpar__fail(op, "RuntimeError", "task database out of memory");
        goto error;
    }
    op->out = cpar__sql_text(op, "SELECT json_object('records', json(?1))", arr.p, -1);
    rc = op->out ? 0 : -1;
error:
    sqlite3_free(ids);
    free(seqs);
    free(arr.p);
    return rc;
}
