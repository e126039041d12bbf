/* The cpar controller: one single-threaded zmq_poll loop holding the engine table, the
 * client table, request routing, heartbeats and shutdown (docs/protocol.md, Behaviour).
 *
 * Ownership and threads: a cpar_controller is created, run and freed on one thread; only
 * cpar_controller_stop may be called from elsewhere (another thread or a signal handler).
 * The controller owns its ZMQ context and sockets. No Python, no GIL: the extension calls
 * cpar_controller_run with the GIL released. */
#ifndef CPAR_CORE_CONTROLLER_H
#define CPAR_CORE_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct cpar_controller cpar_controller;

typedef struct cpar_controller_config {
    const char *client_url; /* endpoint to bind for clients, e.g. "tcp://127.0.0.1:*" */
    const char *engine_url; /* endpoint to bind for engines */
    const uint8_t *key;     /* HMAC key (copied) */
    size_t keylen;
    const char *log_path;      /* log file (appended), or NULL for stderr */
    int hb_period_ms;          /* engines' heartbeat period; 0 means 500 */
    int hb_timeout_ms;         /* silence after which an engine is dead; 0 means 3000 */
    const char *scheme;        /* load-balancing scheme (scheduler.h names); NULL: leastload */
    int hwm;                   /* unanswered tasks per engine at most; 0: no limit; -1: adaptive */
    int max_records;           /* ended task records kept for dependencies; 0 means 100000 */
    const char *curve_secret;  /* Z85 server secret key: both sockets are CURVE servers;
                                * NULL for no encryption */
    const char *curve_allowed; /* with curve_secret: the public keys (Z85, separated by
                                * commas, spaces or newlines) allowed to connect; a peer
                                * with any other key fails the handshake. Required. */
    int64_t replay_window_ms;  /* messages whose send time is further from the controller's
                                * clock are dropped; 0 means CPAR_REPLAY_DEFAULT_WINDOW_MS */
    int64_t replay_ids;        /* recent message tags remembered; 0 means the default */
    int64_t max_message;       /* largest frame a peer may send (ZMQ_MAXMSGSIZE, bytes): a
                                * bigger one disconnects it; 0 means no limit */
    const char *db;            /* task database (docs/taskdb.md): "sqlite" (db_file), "memory",
                                * or NULL / "none" for none */
    const char *db_file;       /* the database file with "sqlite" */
    int64_t db_max_records;    /* records kept; 0: the default (100000) */
    int64_t db_max_bytes;      /* payload bytes kept; 0: the default (1 GiB) */
    int64_t db_keep_bytes;     /* largest payload kept per record; 0: the default (1 MiB) */
    const char *cluster_id;    /* the cluster's id, kept in the database (NULL: "") */
    int recover;               /* recover from db_file (docs/recovery.md): needs db "sqlite"
                                * and an existing file of this cluster and key */
    int64_t recover_grace_ms;  /* the grace period (REGISTER_REPLY's recover_grace_ms, and
                                * how long a recovery waits for engines); 0: none */
} cpar_controller_config;

/* Binds both sockets. Returns 0 and a new controller in *out (free with
 * cpar_controller_free), or a CPAR_E* code with a message in err. */
int cpar_controller_new(const cpar_controller_config *cfg, cpar_controller **out, char *err,
                        size_t errlen);

/* The endpoints actually bound (ports resolved). Borrowed; valid until free. */
const char *cpar_controller_client_endpoint(const cpar_controller *c);
const char *cpar_controller_engine_endpoint(const cpar_controller *c);

/* Runs the loop until a SHUTDOWN with HUB completes or cpar_controller_stop is called.
 * Returns 0, or a CPAR_E* code if the loop failed. */
int cpar_controller_run(cpar_controller *c);

/* Asks the loop to stop: async-signal-safe and thread-safe (sets a flag; the loop wakes
 * within one poll interval). */
void cpar_controller_stop(cpar_controller *c);

void cpar_controller_free(cpar_controller *c);

/* Makes SIGINT and SIGTERM call cpar_controller_stop(c) for the process (used by the
 * dedicated `cpar controller` process). */
void cpar_controller_install_signal_stop(cpar_controller *c);

#endif /* CPAR_CORE_CONTROLLER_H */
