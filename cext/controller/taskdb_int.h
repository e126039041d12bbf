/* Private to the task database (taskdb.c: the queue, the thread, the writes and bounds;
 * taskdb_ops.c: the DB_REQUEST ops). Everything here except the queue (guarded by `lock`)
 * and `stats` belongs to the database thread once it runs. No Python, no GIL. */
#ifndef CPAR_CONTROLLER_TASKDB_INT_H
#define CPAR_CONTROLLER_TASKDB_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "taskdb.h"
#include "taskdb_seqs.h"

#define CPAR__DB_MAGIC "cpar-taskdb"
#define CPAR__DB_VERSION "2" /* 1: before recovery (no identity, no engines) */
/* Memory queued (items and payloads) past which new payloads are not kept: a database that
 * lags cannot make the controller grow. */
#define CPAR__DB_QUEUE_BYTES (64ll << 20)
/* Events (not requests) wait this long for the ones after them: one transaction for a few
 * round trips, not one or two per task. */
#define CPAR__DB_GATHER_NS (2 * 1000 * 1000)
/* ... unless this much is queued already. */
#define CPAR__DB_GATHER_BYTES (CPAR__DB_QUEUE_BYTES / 8)
#define CPAR__DB_SPEC_HEADER 28 /* TASK spec header bytes (docs/protocol.md) */

enum {
    CPAR__DBI_ARRIVAL = 1,
    CPAR__DBI_STREAM,
    CPAR__DBI_REPLY,
    CPAR__DBI_ERROR,
    CPAR__DBI_REQUEST,
    CPAR__DBI_DISPATCH,
    CPAR__DBI_ENGINE
};

/* One queued item: an event to write, or a request to answer. */
typedef struct cpar__dbitem {
    struct cpar__dbitem *next;
    int kind;                      /* CPAR__DBI_* */
    uint8_t type;                  /* the message type (arrival) */
    uint16_t flags;                /* header flags */
    uint8_t id[CPAR_WIRE_ID_SIZE]; /* arrival: the request/task id; else the parent */
    int32_t engine;                /* stream/reply/error: the part's engine */
    int32_t status;                /* reply status, error code */
    uint64_t t0, t1;               /* reply: started, completed (ns) */
    uint64_t at_us;                /* when the loop saw it (µs since the epoch) */
    int32_t *targets;              /* arrival: direct targets, or a task's allowed engines */
    size_t ntargets;
    zmq_msg_t *frames; /* payload frames shared with the message (kept ones), or the
                        * request's frames */
    size_t nframes;
    uint64_t bytes; /* the payload's size (all its frames) */
    int kept;       /* frames hold the payload to store */
    char *text;     /* arrival: an EXECUTE's code; error: its message (owned) */
    size_t textlen;
    uint32_t slot; /* request: the client */
    int64_t cost;  /* memory it holds, counted in queued_bytes */
    int32_t pid;   /* engine: its pid (registered) */
} cpar__dbitem;

struct cpar_taskdb {
    /* The queue: the loop appends, the thread takes everything at once. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    cpar__dbitem *head, *tail;
    int64_t queued_bytes; /* memory the queued items hold (under lock) */
    int stopping;         /* under lock: the thread ends once the queue is empty */
    int urgent;           /* under lock: a request is queued (no gathering wait) */
    pthread_t thread;
    int started;
    cpar_taskdb_stats stats;     /* the loop's counters */
    atomic_ullong thread_failed; /* the database thread's failed writes */
    atomic_ullong batches;       /* batches the database thread applied */
    /* The answers' PAIR: the thread's end and the loop's. */
    void *pair_thread, *pair_loop;
    /* The database thread's. */
    sqlite3 *sql;
    cpar_log *log;
    int64_t max_records, max_bytes, keep_bytes;
    int64_t nrecords;    /* records in the database */
    int64_t total_bytes; /* payload bytes stored (sum of records.stored) */
    sqlite3_stmt *st_insert, *st_find, *st_stream, *st_output, *st_reply, *st_error, *st_outcount;
    sqlite3_stmt *st_dispatch, *st_dispatch_seq, *st_eng_end, *st_eng_add, *st_begin, *st_commit;
    sqlite3_stmt *st_pick, *st_del; /* the bounds' oldest ended records, and their delete */
    cpar__seqs seqs;                /* the records of recent arrivals by id (taskdb_seqs.h) */
    cpar_taskdb_recovery *recovery; /* loaded by open (recover), until taken */
};

/* A growing string (SQL text or JSON the code composes from its own parts). */
typedef struct cpar__sb {
    char *p;
    size_t len, cap;
    int failed;
} cpar__sb;

/* One request being answered. */
typedef struct cpar__op {
    cpar_taskdb *db;
    const char *json; /* frame 0 (not NUL-terminated) */
    int jsonlen;
    const char *ename; /* set on failure: the exception's name */
    char evalue[512];
    cpar_msg extra; /* frames that follow the JSON (get) */
    cpar_taskdb_answer *a;
    char *out; /* the answer's JSON (sqlite3_malloc'd) */
} cpar__op;

/* taskdb_sql.c (the bottom of the database layer) */
/* Runs sql (no parameters) on the thread's connection: 0 or CPAR_EIO (logged). */
int cpar__db_exec(cpar_taskdb *db, const char *sql);
/* Steps a write statement to its end and resets it: 0 or CPAR_EIO (counted, logged). */
int cpar__db_step_done(cpar_taskdb *db, sqlite3_stmt *st, const char *what);
/* Inserts one pending record (INSERT OR IGNORE: an id already recorded is left alone) with
 * its request frames packed (frames NULL: not kept); returns its seq (> 0), or 0 when
 * nothing was inserted. */
int64_t cpar__db_insert_record(cpar_taskdb *db, const char *msg_id, const char *request_id,
                               int64_t part_engine, const char *client_uuid, const char *queue,
                               const char *msg_type, const char *targets_json, uint64_t at_us,
                               const char *execute_input, size_t inputlen, int64_t request_bytes,
                               const void *frames, size_t frameslen, const char *resubmitted,
                               const char *label);
/* The request's or reply's frames as one BLOB: u32 count, a u32 length each, then their
 * bytes (malloc'd, *len set). NULL when out of memory or a frame has 4 GiB or more. */
uint8_t *cpar__db_pack(const zmq_msg_t *frames, size_t n, size_t *len);
/* Appends copies of the frames of a cpar__db_pack BLOB to m: their count, or -1 when the
 * BLOB is malformed or memory ran out. */
int cpar__db_unpack(const void *blob, size_t len, cpar_msg *m);
/* Hex of n bytes into out (2n + 1 chars). */
void cpar__db_hex(const uint8_t *p, size_t n, char *out);
/* Counts records and stored payload bytes added (negative: removed), for the bounds. */
void cpar__db_account(cpar_taskdb *db, int64_t records, int64_t bytes);
/* Strings. */
void cpar__sb_add(cpar__sb *b, const char *s, size_t n);
void cpar__sb_str(cpar__sb *b, const char *s);
void cpar__sb_fmt(cpar__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the op's failure (the first one wins): always returns -1. */
int cpar__fail(cpar__op *op, const char *ename, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A RuntimeError naming SQLite's last error: -1. */
int cpar__sqlfail(cpar__op *op);
/* A prepared statement (finalize it), or NULL after recording the failure. */
sqlite3_stmt *cpar__prep(cpar__op *op, const char *sql);
/* The first column of sql run with ?1 = text (len bytes, -1: to its NUL; NULL: no
 * binding), as a new string (sqlite3_free), or NULL after recording the failure. */
char *cpar__sql_text(cpar__op *op, const char *sql, const char *text, int len);
/* The request's field at `path` (a constant of ours): its JSON type name (NULL when
 * absent) and value as text (sqlite3_free; JSON for arrays and objects). 0 or -1. */
int cpar__field(cpar__op *op, const char *path, const char **type, char **value);
/* json_each over a JSON text: columns 0 key, 1 type, 2 value. NULL after a failure. */
sqlite3_stmt *cpar__each(cpar__op *op, const char *json);
/* A field that must be an array of strings (absent or null allowed when may_omit: then
 * *arr is NULL). 0, or -1 after a ValueError. */
int cpar__str_array(cpar__op *op, const char *path, const char *what, int may_omit, char **arr);
/* The whitelisted column called name, or -1. */
int cpar__col(const char *name);
/* The name of whitelisted column i (a constant string). */
const char *cpar__col_name(int i);
/* Appends to *seqs (*n used) the records every id of the string array ids names (a part
 * id, or a request id: all its parts); an unknown id is a KeyError when strict. */
int cpar__resolve_all(cpar__op *op, const char *ids, int strict, int64_t **seqs, size_t *n);
/* Appends json_object(...) of the chosen columns (keys: a JSON array of names, NULL for
 * every column) to sql; an unknown name is a ValueError. */
int cpar__select(cpar__op *op, cpar__sb *sql, const char *keys);

/* Counts and logs a failed write (what failed, and SQLite's message). */
void cpar__db_fail(cpar_taskdb *db, const char *what);

/* taskdb_recover.c (open time, before the thread starts) */
/* The identity rules on an opened database (docs/recovery.md): a normal start checks the
 * cluster id, writes the identity, ends stale pending records and engines; a recovery
 * checks quick_check and the identity, then loads db->recovery. 0 or CPAR_E* with err. */
int cpar__db_identity(cpar_taskdb *db, const cpar_taskdb_config *cfg, const char *name, char *err,
                      size_t errlen);

/* taskdb_write.c */
/* Prepares the writes' statements on the opened database (and the temp trigger that
 * keeps db->seqs from naming deleted records): 0 or CPAR_EIO. */
int cpar__db_statements(cpar_taskdb *db);
/* Finalizes them (NULL ones are fine). */
void cpar__db_finalize(cpar_taskdb *db);
/* BEGIN a batch's transaction: 0 or CPAR_EIO (logged). */
int cpar__db_begin(cpar_taskdb *db);
/* Ends a batch: COMMIT when in_tx (its BEGIN succeeded); whenever the writes are not
 * committed after it, db->seqs forgets everything (those rows may yet be rolled back).
 * 0 or CPAR_EIO (logged). */
int cpar__db_commit(cpar_taskdb *db, int in_tx);
/* Applies one queued event (not a request) to the database. */
void cpar__db_apply(cpar_taskdb *db, cpar__dbitem *it);
/* Purges the oldest ended records while the bounds are passed. */
void cpar__db_bounds(cpar_taskdb *db);

/* taskdb_query.c */
int cpar__op_query(cpar__op *op);
int cpar__op_history(cpar__op *op);
int cpar__op_get(cpar__op *op);

/* taskdb_ops.c */
/* Answers one DB_REQUEST (in the thread's open transaction, in a savepoint): the answer to
 * send, or NULL when out of memory. */
cpar_taskdb_answer *cpar__db_answer(cpar_taskdb *db, cpar__dbitem *it);

#endif /* CPAR_CONTROLLER_TASKDB_INT_H */
