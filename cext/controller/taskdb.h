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
} cpar_taskdb_config;

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
/* A DB_REQUEST from client `slot`: its frames move into the queue (m is left empty).
 * Returns 0, or CPAR_ENOMEM (nothing queued: the caller answers). */
int cpar_taskdb_request(cpar_taskdb *db, uint32_t slot, cpar_msg *m);

/* Counters, for logs and tests (loop thread; racy reads are fine). */
typedef struct cpar_taskdb_stats {
    uint64_t queued;  /* items queued */
    uint64_t failed;  /* writes that failed (logged) */
    uint64_t dropped; /* payloads not attached because the queue held too much */
} cpar_taskdb_stats;
void cpar_taskdb_get_stats(cpar_taskdb *db, cpar_taskdb_stats *out);

/* The DB_REPLY error body for "no database" (static text). */
#define CPAR_TASKDB_NONE_JSON                                                                      \
    "{\"ename\": \"RuntimeError\", \"evalue\": \"the controller runs without a task database\"}"

#endif /* CPAR_CONTROLLER_TASKDB_H */
