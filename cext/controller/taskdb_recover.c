/* The task database's identity and recovery (docs/recovery.md, "Database identity" and "The
 * controller"): the cluster id and key hash in cpar_meta, what a normal start does to the
 * records a dead controller left pending, and what a recovering controller loads (pending
 * tasks rebuilt as TASKs, pending direct parts, recent ended tasks, expected engines).
 *
 * Threads: cpar__db_identity runs inside cpar_taskdb_open on the loop thread, before the
 * database thread starts (so it may use the connection); the recovery it loads is handed to
 * the loop (cpar_taskdb_take_recovery), which owns it from then on. No Python, no GIL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zmq.h>

#include "errors.h"
#include "taskdb_int.h"

#define CPAR__DB_STALE_TEXT "the controller ended before this finished (not recovered)"

/* SHA-256 of the key, as hex (65 chars). 0, or -1 when libcrypto failed. */
static int
cpar__key_hash(const uint8_t *key, size_t keylen, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(key ? key : (const uint8_t *)"", key ? keylen : 0, md, &mdlen, EVP_sha256(),
                   NULL) != 1 ||
        mdlen != 32)
        return -1;
    cpar__db_hex(md, 32, out);
    return 0;
}

static int
cpar__unhex16(const char *s, uint8_t out[CPAR_WIRE_ID_SIZE])
{
    if (s == NULL || strlen(s) < 2 * CPAR_WIRE_ID_SIZE)
        return -1;
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* The value of cpar_meta `key` into out (outlen > 0): 1 found, 0 absent, -1 failed. */
static int
cpar__meta_get(cpar_taskdb *db, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db->sql, "SELECT value FROM cpar_meta WHERE key = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        goto error;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 1;
        break;
    case SQLITE_DONE:
        out[0] = '\0';
        rc = 0;
        break;
    default:
        break;
    }
error:
    sqlite3_finalize(st);
    return rc;
}

/* Runs one statement with ?1 text and ?2 int64 bound (either may be unused): 0 or -1. */
static int
cpar__run(cpar_taskdb *db, const char *sql, const char *text, int64_t num)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        if (sqlite3_bind_parameter_count(st) >= 1)
            sqlite3_bind_text(st, 1, text ? text : "", -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 2)
            sqlite3_bind_int64(st, 2, num);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* PRAGMA quick_check: 0 when "ok", else -1 with SQLite's first complaint in why. */
static int
cpar__quick_check(cpar_taskdb *db, char *why, size_t whylen)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db->sql, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(db->sql));
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (v != NULL && strcmp(v, "ok") == 0)
            rc = 0;
        else
            snprintf(why, whylen, "%s", v ? v : "quick_check failed");
    } else {
        snprintf(why, whylen, "%s", sqlite3_errmsg(db->sql));
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- the recovery load -------------------------------------------------------------- */

void
cpar_taskdb_recovery_free(cpar_taskdb_recovery *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ntasks; i++)
        cpar_msg_close(&r->tasks[i].msg);
    free(r->tasks);
    free(r->parts);
    free(r->ended);
    free(r->engines);
    free(r);
}

cpar_taskdb_recovery *
cpar_taskdb_take_recovery(cpar_taskdb *db)
{
    cpar_taskdb_recovery *r;
    if (db == NULL)
        return NULL;
    r = db->recovery;
    db->recovery = NULL;
    return r;
}

/* Rows of sql (no parameters but ?1 = limit when it has one), each handed to fn. */
typedef int cpar__row_fn(cpar_taskdb_recovery *r, sqlite3_stmt *st, size_t i);

static int
cpar__rows(cpar_taskdb *db, const char *sql, int64_t limit, void **arr, size_t *n, size_t size,
           cpar_taskdb_recovery *r, cpar__row_fn *fn)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = CPAR_EIO, step;
    if (sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) != SQLITE_OK)
        goto error;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            void *na = realloc(*arr, ncap * size);
            if (na == NULL) {
                rc = CPAR_ENOMEM;
                goto error;
            }
            memset((char *)na + cap * size, 0, (ncap - cap) * size);
            *arr = na;
            cap = ncap;
        }
        if (fn(r, st, *n) == 0)
            (*n)++;
    }
    if (step == SQLITE_DONE)
        rc = CPAR_OK;
error:
    sqlite3_finalize(st);
    return rc;
}

static int
cpar__row_task(cpar_taskdb_recovery *r, sqlite3_stmt *st, size_t i)
{
    cpar_taskdb_rtask *t = &r->tasks[i];
    cpar_msg_init(&t->msg, CPAR_MSG_TASK);
    t->engine = sqlite3_column_type(st, 1) == SQLITE_NULL ? CPAR_NO_ENGINE
                                                          : (int32_t)sqlite3_column_int(st, 1);
    if (cpar__unhex16((const char *)sqlite3_column_text(st, 0), t->msg.h.msg_id) != 0 ||
        cpar__db_unpack(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &t->msg) <
            1) {
        cpar_msg_close(&t->msg);
        return -1; /* damaged: skipped (it stays pending until a normal start ends it) */
    }
    return 0;
}

static int
cpar__row_part(cpar_taskdb_recovery *r, sqlite3_stmt *st, size_t i)
{
    r->parts[i].engine = (int32_t)sqlite3_column_int(st, 1);
    return cpar__unhex16((const char *)sqlite3_column_text(st, 0), r->parts[i].id);
}

static int
cpar__row_ended(cpar_taskdb_recovery *r, sqlite3_stmt *st, size_t i)
{
    r->ended[i].engine = sqlite3_column_type(st, 1) == SQLITE_NULL
                             ? CPAR_NO_ENGINE
                             : (int32_t)sqlite3_column_int(st, 1);
    r->ended[i].ok = sqlite3_column_int(st, 2);
    return cpar__unhex16((const char *)sqlite3_column_text(st, 0), r->ended[i].id);
}

static int
cpar__row_engine(cpar_taskdb_recovery *r, sqlite3_stmt *st, size_t i)
{
    r->engines[i] = (int32_t)sqlite3_column_int(st, 0);
    return 0;
}

/* Loads what was pending (see cpar_taskdb_recovery). 0 or CPAR_E* with err. */
static int
cpar__load(cpar_taskdb *db, const cpar_taskdb_config *cfg, const char *name, char *err,
           size_t errlen)
{
    cpar_taskdb_recovery *r = calloc(1, sizeof(*r));
    sqlite3_stmt *st = NULL;
    int rc = CPAR_ENOMEM;
    int64_t now_us = (int64_t)(cpar_now_ns() / 1000);

    if (r == NULL)
        goto error;
    r->max_engine = -1;
    rc = CPAR_EIO;
    /* A pending task whose request was not kept cannot run again: it ends here. */
    if (cpar__run(db,
                  "UPDATE records SET status = 'error', error_code = -11, received = ?2,"
                  " error_message = 'not recovered: its request was not kept in the task"
                  " database (' || request_bytes || ' bytes)' || ?1 WHERE status = 'pending'"
                  " AND queue = 'task' AND request_frames IS NULL",
                  "", now_us) != 0)
        goto error;
    r->not_kept = sqlite3_changes(db->sql);
    rc = cpar__rows(db,
                    "SELECT msg_id, engine_id, request_frames FROM records WHERE status ="
                    " 'pending' AND queue = 'task' ORDER BY seq",
                    0, (void **)&r->tasks, &r->ntasks, sizeof(*r->tasks), r, cpar__row_task);
    if (rc == 0)
        rc = cpar__rows(db,
                        "SELECT request_id, part_engine FROM records WHERE status = 'pending'"
                        " AND queue = 'mux' AND part_engine IS NOT NULL ORDER BY seq",
                        0, (void **)&r->parts, &r->nparts, sizeof(*r->parts), r, cpar__row_part);
    if (rc == 0)
        rc = cpar__rows(db,
                        "SELECT msg_id, engine_id, status = 'ok' FROM (SELECT seq, msg_id,"
                        " engine_id, status FROM records WHERE status != 'pending' AND queue ="
                        " 'task' ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
                        cfg->recover_ended > 0 ? cfg->recover_ended : 100000, (void **)&r->ended,
                        &r->nended, sizeof(*r->ended), r, cpar__row_ended);
    if (rc == 0)
        rc = cpar__rows(db, "SELECT DISTINCT id FROM engines WHERE gone IS NULL ORDER BY id", 0,
                        (void **)&r->engines, &r->nengines, sizeof(*r->engines), r,
                        cpar__row_engine);
    if (rc != 0)
        goto error;
    rc = CPAR_EIO;
    if (sqlite3_prepare_v2(db->sql, "SELECT max(id) FROM engines", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto error;
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        r->max_engine = (int32_t)sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    db->recovery = r;
    return CPAR_OK;
error:
    snprintf(err, errlen, "cannot load the task database %s for recovery: %s", name,
             rc == CPAR_ENOMEM ? "out of memory" : sqlite3_errmsg(db->sql));
    sqlite3_finalize(st);
    cpar_taskdb_recovery_free(r);
    return rc;
}

/* ---- identity ----------------------------------------------------------------------- */

int
cpar__db_identity(cpar_taskdb *db, const cpar_taskdb_config *cfg, const char *name, char *err,
                  size_t errlen)
{
    const char *cluster = cfg->cluster_id ? cfg->cluster_id : "";
    char have_cluster[256], have_hash[72], hash[65], why[256];
    int has_cluster, has_hash;
    int64_t stale, now_us = (int64_t)(cpar_now_ns() / 1000);

    if (cpar__key_hash(cfg->key, cfg->keylen, hash) != 0) {
        snprintf(err, errlen, "cannot hash the key (libcrypto's SHA-256 failed)");
        return CPAR_EIO;
    }
    if (cfg->recover && cpar__quick_check(db, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot recover: the task database %s is corrupt (%s)", name, why);
        return CPAR_EINVAL;
    }
    has_cluster = cpar__meta_get(db, "cluster_id", have_cluster, sizeof(have_cluster));
    has_hash = cpar__meta_get(db, "key_hash", have_hash, sizeof(have_hash));
    if (has_cluster < 0 || has_hash < 0) {
        snprintf(err, errlen, "the task database %s is corrupt: %s", name, sqlite3_errmsg(db->sql));
        return CPAR_EINVAL;
    }
    if (has_cluster && strcmp(have_cluster, cluster) != 0) {
        snprintf(err, errlen, "the task database %s belongs to cluster '%s', not '%s'", name,
                 have_cluster, cluster);
        return CPAR_EINVAL;
    }
    if (cfg->recover) {
        if (!has_cluster || !has_hash) {
            snprintf(err, errlen,
                     "cannot recover: the task database %s has no cluster identity (it was "
                     "made by an older cpar, or never opened by a controller)",
                     name);
            return CPAR_EINVAL;
        }
        if (strcmp(have_hash, hash) != 0) {
            snprintf(err, errlen,
                     "cannot recover: the task database %s was made with another key than "
                     "this cluster's (its key hash differs from the connection file's key)",
                     name);
            return CPAR_EINVAL;
        }
        return cpar__load(db, cfg, name, err, errlen);
    }
    /* A normal start: this controller's identity; what a dead one left pending ends. */
    if (cpar__run(db, "BEGIN", NULL, 0) != 0 ||
        cpar__run(db, "INSERT OR REPLACE INTO cpar_meta VALUES ('cluster_id', ?1)", cluster, 0) !=
            0 ||
        cpar__run(db, "INSERT OR REPLACE INTO cpar_meta VALUES ('key_hash', ?1)", hash, 0) != 0 ||
        cpar__run(db,
                  "UPDATE records SET status = 'error', error_code = -11, error_message = ?1,"
                  " received = ?2 WHERE status = 'pending'",
                  CPAR__DB_STALE_TEXT, now_us) != 0)
        goto error;
    stale = sqlite3_changes(db->sql);
    if (cpar__run(db, "UPDATE engines SET gone = ?2 WHERE gone IS NULL AND ?1 = ''", "", now_us) !=
            0 ||
        cpar__run(db, "COMMIT", NULL, 0) != 0)
        goto error;
    if (stale > 0 && db->log != NULL)
        cpar_log_write(db->log,
                       "task database %s: %lld record(s) left pending by a controller that "
                       "died ended as errors (not recovered)",
                       name, (long long)stale);
    return CPAR_OK;
error:
    snprintf(err, errlen, "cannot write the identity of the task database %s: %s", name,
             sqlite3_errmsg(db->sql));
    cpar__run(db, "ROLLBACK", NULL, 0);
    return CPAR_EIO;
}
