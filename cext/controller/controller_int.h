/* The controller's private state and the functions its three files share: controller.c
 * (the loop, receiving, set-up), controller_engines.c (the engine side) and
 * controller_clients.c (the client side). Nothing outside these files includes it.
 *
 * Ownership and threads: everything here runs on the controller's loop thread, except the
 * `stop` flag (any thread, signal handlers). No Python, no GIL. Every function taking a
 * cpar_msg * that it sends consumes its frames; the caller still closes the cpar_msg. */
#ifndef CPAR_CORE_CONTROLLER_INT_H
#define CPAR_CORE_CONTROLLER_INT_H

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
    zmq_msg_t *parts;  /* CPAR_WIRE_MAX_FRAMES + 1 receive slots, reused */
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
    uint32_t *lost_slots;      /* clients found gone, whose queued tasks are still to cancel */
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
};

typedef struct cpar__tasks cpar__tasks;

/* controller.c */
uint64_t cpar__ctl_mono_ms(void);
/* Starts a controller-made message of `type` with a fresh msg id and t0 = now. */
void cpar__ctl_msg_new(cpar_controller *c, cpar_msg *m, int type);
/* Counts a failed send (errno err); returns 1 when the peer is unreachable (gone). */
int cpar__ctl_send_failed(cpar_controller *c, int err);

/* controller_clients.c */
/* Signs and sends m to the client in `slot`; forgets a client found unreachable. */
void cpar__ctl_send_client(cpar_controller *c, uint32_t slot, cpar_msg *m);
/* Sends an ERROR (status `code`, about `engine`, answering `parent` when not NULL) with a
 * formatted text, to client `slot` when >= 0, else straight to the ROUTER identity. */
void cpar__ctl_error_to(cpar_controller *c, const uint8_t *ident, size_t identlen, int32_t slot,
                        const uint8_t *parent, int32_t engine, int code, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
/* ENGINE_EVENT (engine, status) to every live client. */
void cpar__ctl_broadcast_event(cpar_controller *c, int32_t engine, int status);
/* Handles a checked message from a client connection fd (m stays the caller's to close). */
void cpar__ctl_on_client(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                         cpar_msg *m);
/* Clients that vanish: a monitor of the client socket's disconnect events (opened by
 * cpar_controller_new, closed by cpar_controller_free). A client whose connection closed,
 * or that a send found unreachable, is lost: its queued tasks are cancelled unrun (docs/
 * protocol.md, "Clients that vanish"). */
int cpar__ctl_clients_monitor_open(cpar_controller *c, char *err, size_t errlen);
void cpar__ctl_clients_monitor_close(cpar_controller *c);
/* Each loop turn, after the client socket was drained (`drained`: nothing was left
 * unread): acts on the disconnects read in an earlier turn (what a client sent before
 * closing is handled first), then reads new ones. */
void cpar__ctl_clients_check(cpar_controller *c, int drained);
/* Forgets the client in slot and queues it for cancelling its tasks (safe anywhere: the
 * cancelling happens at the next cpar__ctl_clients_check or new client). */
void cpar__ctl_client_lost(cpar_controller *c, uint32_t slot);
/* A REPLY for a lost client was dropped: when it offered shared memory, the engine is told
 * to release its pins for that request at once (a RELEASE on the client's behalf). */
void cpar__ctl_release_for_lost(cpar_controller *c, int32_t engine, const cpar_msg *reply);

/* controller_engines.c */
/* Signs and sends m to engine id; returns 1 when the engine is unreachable. */
int cpar__ctl_send_engine(cpar_controller *c, int32_t id, cpar_msg *m);
/* Declares engine id gone: each request it owed ends with ERROR CPAR_EENGINEDEAD to its
 * client, then every client gets ENGINE_EVENT 0. `why` is logged and sent. */
void cpar__ctl_engine_gone(cpar_controller *c, int32_t id, const char *why);
/* Reads the engine socket's disconnect events into gone_fds. */
void cpar__ctl_read_monitor(cpar_controller *c);
/* Declares gone the engines of the recorded closed connections (only_fd's alone when
 * only_fd >= 0). Call after draining the engine socket, so that what an engine sent just
 * before closing (its last REPLY) is routed before it is declared gone. */
void cpar__ctl_apply_disconnects(cpar_controller *c, int only_fd);
/* Handles a checked message from an engine connection fd (m stays the caller's). */
void cpar__ctl_on_engine(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                         cpar_msg *m);
/* Sends SHUTDOWN to a LIVE engine and marks it STOPPING. */
void cpar__ctl_stop_engine(cpar_controller *c, int32_t id);
/* Declares engines silent for more than hb_timeout_ms gone. */
void cpar__ctl_check_heartbeats(cpar_controller *c, uint64_t now);
/* 1 when a hub shutdown is complete (no engines left, or the grace period is over). */
int cpar__ctl_hub_done(cpar_controller *c, uint64_t now);

/* controller_tasks.c: load-balanced tasks (docs/protocol.md, "Load-balanced tasks"). */
int cpar__ctl_tasks_new(cpar_controller *c, const cpar_controller_config *cfg, char *err,
                        size_t errlen);
void cpar__ctl_tasks_free(cpar_controller *c);
/* TASK, ABORT, QUERY from client `slot` (m stays the caller's to close; TASK takes its
 * frames). */
void cpar__ctl_on_task(cpar_controller *c, int32_t slot, cpar_msg *m);
void cpar__ctl_on_abort(cpar_controller *c, int32_t slot, cpar_msg *m);
void cpar__ctl_on_query(cpar_controller *c, int32_t slot, cpar_msg *m);
/* A REPLY from engine: returns 1 when it answered a task (handled: forwarded, retried or
 * failed), 0 for a direct request (the caller routes it). */
int cpar__ctl_task_reply(cpar_controller *c, int32_t engine, cpar_msg *m);
/* Counts a reply from engine (queue_status's `completed`). */
void cpar__ctl_count_reply(cpar_controller *c, int32_t engine);
/* Engines that take tasks: added at registration (0, or the scheduler's CPAR_E* code: the
 * registration must then fail), removed when stopping or gone. */
int cpar__ctl_tasks_engine_added(cpar_controller *c, int32_t engine);
void cpar__ctl_tasks_engine_removed(cpar_controller *c, int32_t engine);
/* For each route entry of a dead engine: returns 1 when it was a task (retried or failed
 * here), 0 for a direct request (the caller fails it). */
int cpar__ctl_task_engine_died(cpar_controller *c, const cpar_route_entry *ent, int32_t engine,
                               const char *why);
/* The client in slot is gone: its tasks not sent to an engine are cancelled (ended as
 * failed, CPAR_EABORTED, for dependents); sent ones run and their replies are dropped.
 * Returns the number cancelled; *running gets the number still on engines. */
size_t cpar__ctl_tasks_client_lost(cpar_controller *c, uint32_t slot, size_t *running);
/* A hub shutdown began: tasks not sent to an engine end with ERROR CPAR_ESHUTDOWN (sent
 * ones end with their engines). */
void cpar__ctl_tasks_shutdown(cpar_controller *c);
/* Each loop turn: expires timeouts when `tick`, sends what can go. Returns 1 when more
 * could go at once (the loop should not sleep). */
int cpar__ctl_tasks_run(cpar_controller *c, uint64_t now, int tick);
/* 1 once when no task is held after at least `at_least` were held at once (then the
 * count starts again): the moment to give a burst's memory back to the system. */
int cpar__ctl_tasks_drained(cpar_controller *c, size_t at_least);

/* controller_coalesce.c: coalesced replies (docs/protocol.md, "Coalesced replies"). */
int cpar__ctl_coalesce_new(cpar_controller *c);
void cpar__ctl_coalesce_free(cpar_controller *c);
/* An accepted EXECUTE/APPLY with COALESCE from client slot, fanned out to its n targets:
 * its replies are held until all are in (within the limits; else they flow one by one). */
void cpar__ctl_coalesce_open(cpar_controller *c, uint32_t slot, const cpar_msg *req, int n);
/* A REPLY from engine for client slot: 1 when taken for a coalesced answer (m's frames
 * moved), 0 when the caller forwards it as usual. */
int cpar__ctl_coalesce_reply(cpar_controller *c, uint32_t slot, int32_t engine, cpar_msg *m);
/* Ends engine's part of request `parent` of client slot with an ERROR (code, text): held
 * in the engine's place when that request coalesces, else sent at once. */
void cpar__ctl_part_error(cpar_controller *c, uint32_t slot, const uint8_t *parent, int32_t engine,
                          int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The client in slot is gone: its coalescing requests are dropped (held shared-memory
 * replies released to their engines). */
void cpar__ctl_coalesce_client_lost(cpar_controller *c, uint32_t slot);

#endif /* CPAR_CORE_CONTROLLER_INT_H */
