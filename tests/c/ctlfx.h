/* The controller test fixture: a real controller running in a thread, with fake engines
 * and clients as DEALER sockets over TCP driven from the test thread. Test code only;
 * every helper aborts the test (ASSERT) on an unexpected failure. */
#ifndef CPAR_TESTS_C_CTLFX_H
#define CPAR_TESTS_C_CTLFX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "helpers.h"

#define FX_MAX_SOCKS 64

typedef struct fx {
    cpar_controller *c;
    pthread_t thread;
    int running;
    int run_rc;
    void *ctx;
    cpar_signer *s;
    char logpath[64];
    void *socks[FX_MAX_SOCKS]; /* closed by fx_stop unless already closed */
    int nsocks;
} fx;

/* Starts a controller (random loopback ports, heartbeat timeout hb_timeout_ms, a log file
 * of its own) and its thread. */
void fx_start(fx *f, int hb_timeout_ms);
/* The same with the load-balancing settings: scheme (NULL: leastload), hwm (0: no limit)
 * and max_records (0: the default). */
void fx_start_cfg(fx *f, int hb_timeout_ms, const char *scheme, int hwm, int max_records);
/* The task database of the controllers fx_start* make from now on (NULL: none; "memory")
 * and its record bound (0: the default). */
extern const char *fx_db_mode;
extern int64_t fx_db_max_records;
/* The same for recovery (docs/recovery.md): the database file (with fx_db_mode "sqlite"),
 * recover from it, and the grace period (0: none). The cluster id is "fx". */
extern const char *fx_db_file;
extern int fx_recover;
extern int64_t fx_recover_grace_ms;
/* Waits for run() to return by itself (hub shutdown); returns its status. */
int fx_join(fx *f);
/* Closes one of the fixture's sockets now. */
void fx_close(fx *f, void *sock);
/* Stops and frees everything the fixture started; returns the log text (malloc'd). */
char *fx_stop(fx *f);
/* A DEALER connected to the engine (engine_side) or client endpoint. */
void *fx_dealer(fx *f, int engine_side);
/* A fake engine registers asking for `requested`; returns REGISTER_REPLY's status and the
 * assigned id in *id. */
int fx_engine_try(fx *f, void **sock, int32_t requested, int pid, int32_t *id);
/* The same; a refusal's reason (REGISTER_REPLY frame 0 after "error=") goes to why. */
int fx_engine_try_why(fx *f, void **sock, int32_t requested, int pid, int32_t *id, char *why,
                      size_t whylen);
/* A fake engine that must register; returns its id. */
int32_t fx_engine(fx *f, void **sock, int pid);
/* A client that has said CONNECT; the number of engines listed in *nengines and the reply
 * itself in *reply (the caller closes it) when not NULL. */
void *fx_client(fx *f, size_t *nengines, cpar_msg *reply);
/* Sends a TARGETED request with one body frame, with msg id use_id (NULL: a fresh one);
 * the id used goes to mid. */
void fx_request_id(fx *f, void *client, int type, const int32_t *targets, size_t n,
                   const char *body, const uint8_t *use_id, uint8_t mid[CPAR_WIRE_ID_SIZE]);
void fx_request(fx *f, void *client, int type, const int32_t *targets, size_t n, const char *body,
                uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* The engine receives a request of `type` with this body; its msg id goes to mid. */
void fx_engine_take(fx *f, void *engine, int type, const char *body,
                    uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* The engine sends a REPLY or STREAM about parent. */
void fx_engine_reply(fx *f, void *engine, int type, int32_t id, const uint8_t *parent,
                     const char *body);
/* The client receives a forwarded message of `type` from engine id about parent. */
void fx_client_get(fx *f, void *client, int type, int32_t id, const uint8_t *parent,
                   const char *body);
/* The client receives an ERROR with this code (about parent when not NULL); returns its
 * text (a static buffer). */
const char *fx_client_error(fx *f, void *client, int code, const uint8_t *parent);
/* The engine beats once. */
void fx_heartbeat(fx *f, void *engine, int32_t id);
/* The client receives ENGINE_EVENT about engine id with status. */
void fx_client_event(fx *f, void *client, int32_t id, int status);

/* ---- load-balanced tasks (docs/protocol.md, "Load-balanced tasks") ---- */

#define FX_SPEC_HEADER 28
#define FX_DEP_ALL 1
#define FX_DEP_SUCCESS 2
#define FX_DEP_FAILURE 4

/* A TASK spec (frame 0). Arrays are borrowed; after/follow hold 16-byte ids. */
typedef struct fx_spec {
    uint32_t version; /* 0 means 1 */
    int32_t retries;
    uint32_t timeout_ms;
    uint16_t after_flags, follow_flags; /* FX_DEP_* */
    const int32_t *targets;
    size_t ntargets;
    const uint8_t *after;
    size_t nafter;
    const uint8_t *follow;
    size_t nfollow;
} fx_spec;

/* Encodes spec into buf (cap bytes); returns its length. */
size_t fx_spec_encode(const fx_spec *spec, uint8_t *buf, size_t cap);
/* Sends a TASK: frame 0 the spec bytes as given, frame 1 body; msg id use_id (NULL: a
 * fresh one), the id used goes to mid (when not NULL). */
void fx_task_raw(fx *f, void *client, const void *spec, size_t speclen, const char *body,
                 const uint8_t *use_id, uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* Sends a TASK with this spec (NULL: all zero, i.e. no retries, no dependencies). */
void fx_task(fx *f, void *client, const fx_spec *spec, const char *body,
             uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* The engine receives a TASK (spec frame + body); its msg id goes to mid. */
void fx_engine_task(fx *f, void *engine, const char *body, uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* One of n engines receives a TASK with this body; returns which (index into engines). */
int fx_engine_task_any(fx *f, void *const *engines, size_t n, const char *body,
                       uint8_t mid[CPAR_WIRE_ID_SIZE]);
/* The engine sends a REPLY with this status about parent. */
void fx_engine_reply_status(fx *f, void *engine, int32_t id, const uint8_t *parent, int status,
                            const char *body);
/* Asserts that nothing but heartbeats and engine events arrives on sock for ms. */
void fx_quiet(fx *f, void *sock, int ms);
/* The client sends ABORT naming n ids. */
void fx_abort(fx *f, void *client, const uint8_t *ids, size_t n);
/* The client sends QUERY `what` (frame 1: n ids when ids is not NULL) and returns the
 * QUERY_REPLY text (a static buffer). */
const char *fx_query(fx *f, void *client, const char *what, const uint8_t *ids, size_t n);
/* An id as 32 lowercase hex digits. */
void fx_hex(const uint8_t *id, char out[2 * CPAR_WIRE_ID_SIZE + 1]);

#define FX_HB_LONG 60000 /* a heartbeat timeout that is never the reason for anything */
#define FX_QUIET_MS 300  /* how long "nothing arrives" is watched */

/* Milliseconds of the monotonic clock. */
uint64_t fx_now_ms(void);
/* The client receives an ERROR with this code about parent within ms (a shorter wait than
 * fx_client_error's, for expectations that fail by hanging). */
void fx_client_error_within(fx *f, void *client, int code, const uint8_t *parent, int ms);
/* The engine receives ABORT whose first frame is the task id `id`. */
void fx_engine_abort(fx *f, void *engine, const uint8_t id[CPAR_WIRE_ID_SIZE]);
/* Two fake engines, ids 0 and 1 (pids 100 and 101), into e; returns a new client. */
void *fx_two_engines(fx *f, void *e[2]);

#endif /* CPAR_TESTS_C_CTLFX_H */
