/* The controller's private state, and the handlers the loop dispatches to. The files are
 * layers; each calls only the ones below it (tools/check_calls.py checks it in make lint):
 *
 *   controller.c            the loop: set-up, receiving, dispatch; owns cpar_controller
 *   controller_clients.c    client messages (cpar__ctlcli_*)
 *   controller_recover.c    recovery: loading, the grace period, RECLAIM (cpar__ctlrec_*)
 *   controller_engines.c    engine messages and engine death (cpar__ctleng_*)
 *   controller_taskmsg.c    TASK, ABORT, QUERY from clients (cpar__ctltask_on_*)
 *   controller_taskloop.c   tasks each loop turn (cpar__ctltask_run, ...)
 *   controller_tasks.c      the task life cycle (cpar__ctltask_*; controller_tasks_int.h)
 *   controller_coalesce.c   coalesced replies (cpar__ctlcoal_*)
 *   outbound.c              message building, sends, the ERROR helper (cpar__ctlout_*)
 *   taskdb*.c               the task database (cpar_taskdb_*; taskdb.h): handlers queue
 *                           its events, its own thread writes them (docs/taskdb.md)
 *
 * with the tables (registry, route, deps, scheduler, replay) and core below. An engine a
 * lower layer found unreachable is marked (cpar_reg_engine.unreachable) and declared gone
 * by the layer above that owns engine death (cpar__ctleng_reap_unreachable); a client a
 * lower layer found lost is queued (lost_slots) and its tasks and coalescing state are
 * dropped by controller_clients.c at the next safe point. Nothing
 * outside cext/controller includes this header.
 *
 * Ownership and threads: everything here runs on the controller's loop thread, except the
 * `stop` flag (any thread, signal handlers). No Python, no GIL. Every function taking a
 * cpar_msg * that it sends consumes its frames; the caller still closes the cpar_msg. */
#ifndef CPAR_CONTROLLER_CONTROLLER_INT_H
#define CPAR_CONTROLLER_CONTROLLER_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "ids.h"
#include "log.h"
#include "registry.h"
#include "replay.h"
#include "route.h"
#include "sign.h"
#include "taskdb.h"
#include "wire.h"
#include "zap.h"

#define CPAR__CTL_MAGIC 0x4354524cu /* "CTRL": checked at every public entry */
#define CPAR__POLL_MAX_MS 100       /* the stop flag is seen within this */
#define CPAR__BATCH 1024            /* messages taken per socket per wake-up */
#define CPAR__GONE_DRAIN_BATCHES 64 /* batches drained before applying disconnects */
#define CPAR__STATS_PERIOD_MS 60000 /* drop counters are logged at most this often */
#define CPAR__LINGER_MS 1000        /* bounded flush of last replies at a graceful end */
#define CPAR__TASK_TICK_MS 50       /* task timeouts are checked this often */
#define CPAR__NOTICE_IDENTS 64      /* identities remembered as already told "bad signature" */
#define CPAR__NOTICE_BURST 8        /* such notices at once; then one per second */

enum { CPAR__SIDE_CLIENT = 0, CPAR__SIDE_ENGINE = 1 };

/* Counters of what the loop dropped or refused, logged periodically and at the end. */
typedef struct cpar__counters {
    uint64_t received;        /* valid messages */
    uint64_t bad[2][6];       /* per side: malformed, bad signature, version, type, stale
                               * timestamp, replayed */
    uint64_t notices;         /* unsigned "bad signature" notices sent to clients */
    uint64_t unexpected[2];   /* valid messages of a type that side must not send */
    uint64_t unknown_engine;  /* engine messages from an unknown or gone identity */
    uint64_t unroutable;      /* REPLY/STREAM for no outstanding request */
    uint64_t forged_engine;   /* REPLY/STREAM whose `engine` is not its sender's id */
    uint64_t clients_lost;    /* clients gone (connection closed or unreachable) */
    uint64_t tasks_cancelled; /* queued tasks of lost clients, cancelled unrun */
    uint64_t client_gone;     /* messages for a client that has disconnected */
    uint64_t send_failed;     /* other send failures */
    uint64_t recv_failed;     /* libzmq receive errors */
} cpar__counters;

struct cpar_controller {
    uint32_t magic;      /* CPAR__CTL_MAGIC while valid */
    atomic_int stop;     /* set by cpar_controller_stop (any thread, signal handler) */
    void *zctx;          /* owned ZMQ context */
    void *csock;         /* ROUTER for clients */
    void *esock;         /* ROUTER for engines */
    void *mon;           /* PAIR receiving esock's disconnect events */
    cpar_signer *signer; /* owned; this thread only */
    cpar_log log;
    char client_ep[256]; /* ZMQ_LAST_ENDPOINT of csock */
    char engine_ep[256]; /* ZMQ_LAST_ENDPOINT of esock */
    int hb_period_ms;
    int hb_timeout_ms;
    cpar_registry reg; /* engines and clients */
    cpar_route route;  /* outstanding requests */
    cpar_route pinned; /* shared-memory REPLYs forwarded to a client and not yet released by
                        * it: (request id, engine) -> client; released for it when it is
                        * lost (outbound.c) */
    int *gone_fds;     /* engine connections seen closing, applied once the engine
                        * socket has been drained (their last messages come first) */
    size_t ngone_fds;
    size_t capgone_fds;
    cpar_ids ids;             /* makes the msg ids of the controller's own messages */
    int hub_stopping;         /* a SHUTDOWN with HUB was accepted */
    uint64_t hub_deadline_ms; /* ... and the loop ends by then at the latest */
    int graceful;             /* flush pending sends at close (bounded linger) */
    cpar__counters cnt;
    uint64_t stats_logged;     /* sum of drop counters when last logged */
    struct cpar__tasks *tasks; /* load-balanced tasks (controller_tasks.c), owned */
    /* Clients that vanish (controller_clients.c, "clients that vanish"). */
    void *cmon;           /* PAIR receiving csock's disconnect events */
    int *client_gone_fds; /* client connections seen closing ... */
    size_t nclient_gone_fds, capclient_gone_fds;
    size_t nclient_gone_ready; /* ... of which these were read in an earlier turn */
    uint32_t *lost_slots; /* clients found gone, whose tasks and coalescing are still to drop */
    size_t nlost, caplost;
    int scheme; /* enum cpar_sched_scheme */
    int hwm;
    cpar_replay replay; /* recent tags and the timestamp window (replay.h) */
    cpar_zap zap;       /* CURVE allow-list handler; zap.sock NULL without CURVE */
    uint64_t notice_idents[CPAR__NOTICE_IDENTS]; /* hashes of identities sent a notice */
    size_t notice_next;                          /* next slot of notice_idents to reuse */
    uint64_t notice_tokens_at;                   /* monotonic ms of the last token refill */
    int notice_tokens;                           /* notices that may go now */
    struct cpar__coalesce *coal; /* coalesced replies (controller_coalesce.c), owned */
    /* The task database (taskdb.h), owned; NULL with --db none. The handlers queue their
     * events into it; its answers come back on cpar_taskdb_pair, which the loop polls. */
    cpar_taskdb *db;
    /* Recovery (docs/recovery.md; controller_recover.c). */
    int64_t recover_grace_ms;       /* the grace period; 0: none */
    char *db_path;                  /* the database file (for the log), owned */
    cpar_taskdb_recovery *recovery; /* loaded, applied when run() starts; owned */
    uint8_t *expected;              /* per engine id: 1 when expected back */
    size_t nexpected_slots;         /* length of expected */
    size_t nexpected;               /* ids still expected back */
    int grace_active;               /* a recovery's grace period runs */
    uint64_t grace_deadline_ms;     /* ... until then (monotonic) */
    uint64_t engines_back;          /* engines that re-registered during it */
};

typedef struct cpar__tasks cpar__tasks;

/* controller_clients.c */
/* Handles a checked message from a client connection fd (m stays the caller's to close). */
void cpar__ctlcli_on_message(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                             cpar_msg *m);
/* Clients that vanish: a monitor of the client socket's disconnect events (opened by
 * cpar_controller_new, closed by cpar_controller_free). A client whose connection closed,
 * or that a send found unreachable, is lost: its queued tasks are cancelled unrun (docs/
 * protocol.md, "Clients that vanish"). */
int cpar__ctlcli_monitor_open(cpar_controller *c, char *err, size_t errlen);
void cpar__ctlcli_monitor_close(cpar_controller *c);
/* Each loop turn, after the client socket was drained (`drained`: nothing was left
 * unread): acts on the disconnects read in an earlier turn (what a client sent before
 * closing is handled first), then reads new ones. */
void cpar__ctlcli_check(cpar_controller *c, int drained, int monitor_ready);
/* Sends the task database's answers waiting on its PAIR (DB_REPLY to each client), then
 * enters the TASKs a resubmit made (after their DB_REPLY). Returns 1 when it stopped at
 * CPAR__BATCH answers (more may be waiting), else 0. */
int cpar__ctlcli_db_answers(cpar_controller *c);

/* controller_recover.c (docs/recovery.md) */
/* At the start of run(): enters what the database held (tasks, parts, dependency
 * statuses, expected engines) and starts the grace period. Nothing without a recovery. */
void cpar__ctlrec_start(cpar_controller *c);
/* Each loop turn: ends the grace period when it is over (engines not back are gone). */
void cpar__ctlrec_tick(cpar_controller *c, uint64_t now);
/* RECLAIM from client slot (m stays the caller's). */
void cpar__ctlrec_on_reclaim(cpar_controller *c, int32_t slot, cpar_msg *m);

/* controller_engines.c */
/* Declares engine id gone: each request it owed ends with ERROR CPAR_EENGINEDEAD to its
 * client, then every client gets ENGINE_EVENT 0. `why` is logged and sent. */
void cpar__ctleng_gone(cpar_controller *c, int32_t id, const char *why);
/* Declares gone every engine a lower layer marked unreachable; returns how many. */
int cpar__ctleng_reap_unreachable(cpar_controller *c);
/* Reads the engine socket's disconnect events into gone_fds. */
void cpar__ctleng_read_monitor(cpar_controller *c);
/* Declares gone the engines of the recorded closed connections (only_fd's alone when
 * only_fd >= 0). Call after draining the engine socket, so that what an engine sent just
 * before closing (its last REPLY) is routed before it is declared gone. */
void cpar__ctleng_apply_disconnects(cpar_controller *c, int only_fd);
/* Handles a checked message from an engine connection fd (m stays the caller's). */
void cpar__ctleng_on_message(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                             cpar_msg *m);
/* Sends SHUTDOWN to a LIVE engine and marks it STOPPING. */
void cpar__ctleng_stop(cpar_controller *c, int32_t id);
/* Declares gone an engine expected back after a recovery that did not come back (it is
 * not registered): its tasks are retried or end, its direct parts end (-11). */
void cpar__ctleng_not_back(cpar_controller *c, int32_t id);
/* Declares engines silent for more than hb_timeout_ms gone. */
void cpar__ctleng_check_heartbeats(cpar_controller *c, uint64_t now);
/* 1 when a hub shutdown is complete (no engines left, or the grace period is over). */
int cpar__ctleng_hub_done(cpar_controller *c, uint64_t now);

/* controller_tasks.c, controller_taskmsg.c, controller_taskloop.c: load-balanced tasks
 * (docs/protocol.md, "Load-balanced tasks"). */
int cpar__ctltask_new(cpar_controller *c, const cpar_controller_config *cfg, char *err,
                      size_t errlen);
void cpar__ctltask_free(cpar_controller *c);
/* TASK, ABORT, QUERY from client `slot` (m stays the caller's to close; TASK takes its
 * frames). ABORT may mark engines unreachable (the caller reaps them). */
void cpar__ctltask_on_task(cpar_controller *c, int32_t slot, cpar_msg *m);
/* A TASK the task database made for a resubmit (already recorded there; signed by the
 * controller): entered as if client slot had sent it; a refusal is recorded as its end. */
void cpar__ctltask_resubmitted(cpar_controller *c, int32_t slot, cpar_msg *m);
void cpar__ctltask_on_abort(cpar_controller *c, int32_t slot, cpar_msg *m);
void cpar__ctltask_on_query(cpar_controller *c, int32_t slot, cpar_msg *m);
/* A REPLY from engine: returns 1 when it answered a task (handled: forwarded, retried or
 * failed), 0 for a direct request (the caller routes it). */
int cpar__ctltask_reply(cpar_controller *c, int32_t engine, cpar_msg *m);
/* Counts a reply from engine (queue_status's `completed`). */
void cpar__ctltask_count_reply(cpar_controller *c, int32_t engine);
/* Engines that take tasks: added at registration (0, or the scheduler's CPAR_E* code: the
 * registration must then fail), removed when stopping or gone. */
int cpar__ctltask_engine_added(cpar_controller *c, int32_t engine);
void cpar__ctltask_engine_removed(cpar_controller *c, int32_t engine);
/* For each route entry of a dead engine: returns 1 when it was a task (retried or failed
 * here), 0 for a direct request (the caller fails it). */
int cpar__ctltask_engine_died(cpar_controller *c, const cpar_route_entry *ent, int32_t engine,
                              const char *why);
/* The client in slot is gone: its tasks not sent to an engine are cancelled (ended as
 * failed, CPAR_EABORTED, for dependents); sent ones run and their replies are dropped.
 * (With a task database the caller does not call it: they all run and are recorded.)
 * Returns the number cancelled; *running gets the number still on engines. */
size_t cpar__ctltask_client_lost(cpar_controller *c, uint32_t slot, size_t *running);
/* Recovery (controller_recover.c uses these; docs/recovery.md). */
/* A task the database held pending (signed by the controller, recorded already): entered
 * for client slot (a dead slot: no client), sent to `engine` (it waits there for that
 * engine, with a route entry) or, with CPAR_NO_ENGINE, queued as on arrival. */
void cpar__ctltask_recovered(cpar_controller *c, int32_t slot, cpar_msg *m, int32_t engine);
/* A task that ended before the controller died, for the dependency table. */
void cpar__ctltask_recovered_ended(cpar_controller *c, const uint8_t *id, int32_t engine,
                                   int succeeded);
/* An engine came back (re-registered) and held (`held`) or not this route entry's request:
 * returns 1 when it is a task (held: stays, counted on the engine unless `counted`
 * already; not held: queued again, no retry used), 0 for a direct part. */
int cpar__ctltask_engine_back(cpar_controller *c, const uint8_t *id, int32_t engine, int held,
                              int counted);
/* Tasks whose client is gone and whose id starts with one of the n 8-byte prefixes move to
 * client slot (RECLAIM); returns how many. */
size_t cpar__ctltask_reclaim(cpar_controller *c, const uint8_t *prefixes, size_t n, uint32_t slot);
/* 1 when task id is pending here for client slot. */
int cpar__ctltask_pending_for(cpar_controller *c, const uint8_t *id, uint32_t slot);
/* A hub shutdown began: tasks not sent to an engine end with ERROR CPAR_ESHUTDOWN (sent
 * ones end with their engines). */
void cpar__ctltask_shutdown(cpar_controller *c);
/* Each loop turn: expires timeouts when `tick`, sends what can go (engines found
 * unreachable are marked, for the loop to reap). Returns 1 when more could go at once
 * (the loop should not sleep); cpar__ctltask_more says the same again later. */
int cpar__ctltask_run(cpar_controller *c, uint64_t now, int tick);
int cpar__ctltask_more(cpar_controller *c);
/* 1 once when no task is held after at least `at_least` were held at once (then the
 * count starts again): the moment to give a burst's memory back to the system. */
int cpar__ctltask_drained(cpar_controller *c, size_t at_least);

/* controller_coalesce.c: coalesced replies (docs/protocol.md, "Coalesced replies"). */
int cpar__ctlcoal_new(cpar_controller *c);
void cpar__ctlcoal_free(cpar_controller *c);
/* An accepted EXECUTE/APPLY with COALESCE from client slot, fanned out to its n targets:
 * its replies are held until all are in (within the limits; else they flow one by one). */
void cpar__ctlcoal_open(cpar_controller *c, uint32_t slot, const cpar_msg *req, int n);
/* A REPLY from engine for client slot: 1 when taken for a coalesced answer (m's frames
 * moved), 0 when the caller forwards it as usual. */
int cpar__ctlcoal_reply(cpar_controller *c, uint32_t slot, int32_t engine, cpar_msg *m);
/* Ends engine's part of request `parent` of client slot with an ERROR (code, text): held
 * in the engine's place when that request coalesces, else sent at once. */
void cpar__ctlcoal_part_error(cpar_controller *c, uint32_t slot, const uint8_t *parent,
                              int32_t engine, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The client in slot is gone: its coalescing requests are dropped (held shared-memory
 * replies released to their engines). Called at the safe point that handles lost
 * clients (controller_clients.c). */
void cpar__ctlcoal_client_lost(cpar_controller *c, uint32_t slot);

#endif /* CPAR_CONTROLLER_CONTROLLER_INT_H */
