/* The controller's task database (docs/taskdb.md): a SQLite database of every request that
 * passes through the controller, one record per part, with its replies and output, and the
 * DB_REQUEST ops that clients send to read, label, purge and resubmit them. The bottom layer
 * under the handlers (they call down into it, like outbound.c); it calls only core.
 *
 * Threads and ownership: a cpar_taskdb is opened, fed and closed by the controller's loop
 * thread, which never touches SQLite. Every cpar_taskdb_* event function appends an item to
 * a queue (under a mutex held for a pointer swap) and returns: it copies the small fields
 * and shares payload frames with zmq_msg_copy (a reference, not a copy). One database
 * thread owns the SQLite connection: it takes everything queued at once, applies the
 * writes in one transaction and answers requests in queue order (a request sees every
 * write queued before it). Answers go back over an inproc PAIR (cpar_taskdb_pair) that the
 * loop polls; cpar_taskdb_answer_next hands them over, and the loop owns each answer until
 * cpar_taskdb_answer_free. No Python, no GIL. */
#ifndef CPAR_CONTROLLER_TASKDB_H
#define CPAR_CONTROLLER_TASKDB_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "wire.h"

#define CPAR_TASKDB_DEFAULT_RECORDS 100000
#define CPAR_TASKDB_DEFAULT_BYTES (1ll << 30)
#define CPAR_TASKDB_DEFAULT_KEEP (1ll << 20)

typedef struct cpar_taskdb cpar_taskdb;

typedef struct cpar_taskdb_config {
    const char *mode;    /* "sqlite" (a file) or "memory" */
    const char *path;    /* the file (mode "sqlite"); its folder must exist */
    int64_t max_records; /* records kept (oldest ended purged first); 0: the default */
    int64_t max_bytes;   /* payload bytes kept; 0: the default */
    int64_t keep_bytes;  /* largest request or reply payload kept per record; 0: default */
    cpar_log *log;       /* borrowed (any thread may write it); NULL: no log */
    /* Identity (docs/recovery.md, "Database identity"): the cluster id and the connection
     * key, whose SHA-256 (hex) the meta table keeps. cluster_id NULL: "". */
    const char *cluster_id;
    const uint8_t *key;
    size_t keylen;
    /* Recover from the file (it must exist, pass PRAGMA quick_check and match the identity):
     * what was pending is loaded for the controller (cpar_taskdb_take_recovery). Else a
     * normal start ends what a dead controller left pending. */
    int recover;
    int64_t recover_ended; /* with recover: most recent ended task records loaded (> 0) */
} cpar_taskdb_config;

/* What a recovered controller takes over (docs/recovery.md, "The controller"), loaded by
 * cpar_taskdb_open before its thread starts; owned by whoever took it. */
typedef struct cpar_taskdb_rtask {
    cpar_msg msg;   /* TASK with its original id, spec frame and frames (not signed) */
    int32_t engine; /* where it was sent (the dispatch event), or CPAR_NO_ENGINE */
} cpar_taskdb_rtask;

typedef struct cpar_taskdb_rpart {
    uint8_t id[CPAR_WIRE_ID_SIZE]; /* the request's id (its client's prefix first) */
    int32_t engine;                /* the engine it went to */
} cpar_taskdb_rpart;

typedef struct cpar_taskdb_rended {
    uint8_t id[CPAR_WIRE_ID_SIZE];
    int32_t engine; /* where it ran, or CPAR_NO_ENGINE */
    int ok;         /* it succeeded */
} cpar_taskdb_rended;

typedef struct cpar_taskdb_recovery {
    cpar_taskdb_rtask *tasks; /* pending tasks, in arrival order */
    size_t ntasks;
    cpar_taskdb_rpart *parts; /* pending direct parts, in arrival order */
    size_t nparts;
    cpar_taskdb_rended *ended; /* recent ended tasks, oldest first */
    size_t nended;
    int32_t *engines; /* ids registered and not gone: expected back */
    size_t nengines;
    int32_t max_engine; /* highest engine id ever recorded, or -1 */
    int64_t not_kept;   /* pending tasks ended now: their request was not kept */
} cpar_taskdb_recovery;

/* An answer to a DB_REQUEST, owned by the loop once taken. */
typedef struct cpar_taskdb_answer {
    uint32_t slot;   /* the client slot that asked */
    cpar_msg reply;  /* DB_REPLY: parent, status and frames set; the loop sets msg_id, t0 */
    cpar_msg *tasks; /* resubmit: new TASKs (msg_id = new id, spec + APPLY frames), to be
                      * entered AFTER the reply is sent; already recorded */
    size_t ntasks;
} cpar_taskdb_answer;

/* Opens (or creates) the database and starts its thread. zctx is the controller's ZMQ
 * context (for the answers' inproc PAIR). A file that is not SQLite, or SQLite but not a
 * cpar task database of this version, is refused: CPAR_EINVAL with why in err. Other
 * failures: CPAR_EIO / CPAR_ENOMEM / CPAR_EZMQ. */
int cpar_taskdb_open(const cpar_taskdb_config *cfg, void *zctx, cpar_taskdb **out, char *err,
                     size_t errlen);
/* With cfg->recover: what the database held pending (NULL otherwise, or once taken).
 * The caller owns it: free with cpar_taskdb_recovery_free. */
cpar_taskdb_recovery *cpar_taskdb_take_recovery(cpar_taskdb *db);
void cpar_taskdb_recovery_free(cpar_taskdb_recovery *r);
/* Stops the thread once it has applied everything queued, frees answers not taken, closes
 * the database. NULL is fine. */
void cpar_taskdb_close(cpar_taskdb *db);
/* The loop's end of the answers' PAIR: poll it for ZMQ_POLLIN (borrowed). */
void *cpar_taskdb_pair(cpar_taskdb *db);
/* The next answer: 1 with *out set (free with cpar_taskdb_answer_free), 0 when none came
 * within timeout_ms (0: do not wait, -1: forever). */
int cpar_taskdb_answer_next(cpar_taskdb *db, long timeout_ms, cpar_taskdb_answer **out);
void cpar_taskdb_answer_free(cpar_taskdb_answer *a);

/* ---- events (loop thread; none waits, none fails the caller: a failure is counted) ---- */

/* An EXECUTE or APPLY (TARGETED, frame 0 the targets) accepted for its targets, or a TASK
 * (frame 0 its spec) accepted by the scheduler. m stays the caller's. */
void cpar_taskdb_arrival(cpar_taskdb *db, const cpar_msg *m);
/* A STREAM forwarded (or meant) for a part: parent, engine, flags, frame 0. */
void cpar_taskdb_stream(cpar_taskdb *db, const cpar_msg *m);
/* A REPLY that ends a part (direct, coalesced, or a task's last). */
void cpar_taskdb_reply(cpar_taskdb *db, const cpar_msg *m);
/* An ERROR that ends part `engine` of request `parent` (a task: engine is where it ran, or
 * CPAR_NO_ENGINE). */
void cpar_taskdb_error(cpar_taskdb *db, const uint8_t *parent, int32_t engine, int code,
                       const char *text, size_t len);
/* A TASK sent to engine (the dispatch event): the pending record's engine_id is where it
 * runs. */
void cpar_taskdb_dispatch(cpar_taskdb *db, const uint8_t *id, int32_t engine);
/* Engine id registered (pid, host) or, with registered 0, gone (the engines table). */
void cpar_taskdb_engine(cpar_taskdb *db, int32_t id, int registered, int32_t pid, const char *host);
/* A DB_REQUEST from client `slot`: its frames move into the queue (m is left empty).
 * Returns 0, or CPAR_ENOMEM (nothing queued: the caller answers). */
int cpar_taskdb_request(cpar_taskdb *db, uint32_t slot, cpar_msg *m);

/* Counters, for logs and tests (loop thread; racy reads are fine). */
typedef struct cpar_taskdb_stats {
    uint64_t queued;  /* items queued */
    uint64_t failed;  /* writes that failed (logged) */
    uint64_t dropped; /* payloads not attached because the queue held too much */
    uint64_t batches; /* batches (one transaction each) the database thread applied */
} cpar_taskdb_stats;
void cpar_taskdb_get_stats(cpar_taskdb *db, cpar_taskdb_stats *out);

/* The DB_REPLY error body for "no database" (static text). */
#define CPAR_TASKDB_NONE_JSON                                                                      \
    "{\"ename\": \"RuntimeError\", \"evalue\": \"the controller runs without a task database\"}"

#endif /* CPAR_CONTROLLER_TASKDB_H */
