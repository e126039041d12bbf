/* The controller's engine and client tables: who is connected, by id, identity and fd.
 *
 * Ownership and threads: a cpar_registry belongs to the controller's loop thread. It owns
 * copies of every routing identity and host name it stores. No Python, no GIL.
 * Engines are indexed by id (ids are never reused for a different engine automatically;
 * a requested id may be taken again once its previous holder is gone). Clients are
 * indexed by a slot number that is never reused, so an outstanding request recorded for a
 * client that has gone can never be delivered to a different client. */
#ifndef CPAR_CORE_REGISTRY_H
#define CPAR_CORE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "idmap.h"

/* The one engine-id limit of a controller: ids are 0 .. CPAR_ENGINE_ID_LIMIT - 1, whether
 * requested or assigned, and the scheduler (scheduler.c) tables every id below it. Ids are
 * never handed out twice automatically, so after this many registrations a controller
 * refuses new engines (REGISTER_REPLY EINVAL with the reason). Tests may build with a
 * smaller value (-DCPAR_ENGINE_ID_LIMIT=8) to reach it. */
#ifndef CPAR_ENGINE_ID_LIMIT
#define CPAR_ENGINE_ID_LIMIT 65536
#endif
#define CPAR_REGISTRY_MAX_REQUESTED_ID (CPAR_ENGINE_ID_LIMIT - 1) /* highest id one may ask for */
#define CPAR_REGISTRY_MAX_ID (CPAR_ENGINE_ID_LIMIT - 1)           /* highest id ever assigned */

enum cpar_engine_state {
    CPAR_ENGINE_FREE = 0, /* id never used */
    CPAR_ENGINE_LIVE,     /* registered, heart-beating, accepts requests */
    CPAR_ENGINE_STOPPING, /* sent SHUTDOWN: answers may still arrive, no new requests */
    CPAR_ENGINE_GONE,     /* died or stopped; its requests were failed */
};

typedef struct cpar_reg_engine {
    int state;             /* enum cpar_engine_state */
    int32_t pid;           /* from REGISTER, or -1 */
    int fd;                /* connection fd (ZMQ_SRCFD) or -1 */
    int unreachable;       /* a send to it failed with EHOSTUNREACH during this round */
    uint64_t last_seen_ms; /* monotonic ms of its last valid message */
    uint8_t *ident;        /* owned ROUTER identity (NULL once gone) */
    size_t identlen;
    char *host; /* owned host name (kept after death for the log) */
    char *shm;  /* owned shared-memory locality token from REGISTER, or NULL */
} cpar_reg_engine;

typedef struct cpar_reg_client {
    int live;       /* 0 once gone (connection closed, or a send found it unreachable) */
    int fd;         /* its connection's fd (ZMQ_SRCFD), or -1 when not known yet */
    uint32_t pid;   /* its process, as its CONNECT said ("pid=N"); 0: not said */
    uint8_t *ident; /* owned ROUTER identity (NULL once gone) */
    size_t identlen;
} cpar_reg_client;

typedef struct cpar_registry {
    cpar_reg_engine *engines; /* indexed by id; nengines slots (FREE when unused) */
    size_t nengines;
    int32_t next_id;       /* lowest id not yet handed out automatically */
    size_t nlive;          /* engines LIVE or STOPPING */
    cpar_idmap engine_ids; /* identity -> id, LIVE and STOPPING engines only */
    int32_t *fd_engine;    /* fd -> id or -1, for the disconnect monitor */
    size_t nfd;
    cpar_reg_client *clients; /* indexed by client slot */
    size_t nclients;
    size_t capclients;
    cpar_idmap client_ids; /* identity -> slot, live clients only */
    int32_t *fd_client;    /* fd -> live client slot or -1, for the disconnect monitor */
    size_t nfd_client;
} cpar_registry;

void cpar_registry_init(cpar_registry *r);
void cpar_registry_free(cpar_registry *r);

/* The engine with this id when it is LIVE or STOPPING (borrowed), else NULL. */
cpar_reg_engine *cpar_registry_engine(cpar_registry *r, int32_t id);
/* 1 when id names a LIVE engine (one that takes requests). */
int cpar_registry_engine_live(const cpar_registry *r, int32_t id);
/* Id of the LIVE or STOPPING engine with this identity, or -1. */
int32_t cpar_registry_engine_by_ident(const cpar_registry *r, const void *ident, size_t len);
/* Id of the LIVE or STOPPING engine connected on fd, or -1. */
int32_t cpar_registry_engine_by_fd(const cpar_registry *r, int fd);

/* Chooses an id for a new engine: `requested` when >= 0 (CPAR_EINVAL when it is above
 * CPAR_REGISTRY_MAX_REQUESTED_ID or held by a LIVE/STOPPING engine), else the next free
 * one (CPAR_EINVAL once every id below CPAR_ENGINE_ID_LIMIT was used). Returns the id
 * (>= 0) or a CPAR_E* code. Does not register anything. */
int32_t cpar_registry_pick_id(cpar_registry *r, int32_t requested);
/* Registers engine id (from pick_id) as LIVE with copies of ident and host. Returns 0 or
 * CPAR_ENOMEM (then nothing changed). */
int cpar_registry_engine_add(cpar_registry *r, int32_t id, const void *ident, size_t identlen,
                             int fd, int32_t pid, const char *host, uint64_t now_ms);
/* Marks a LIVE or STOPPING engine GONE and forgets its identity and fd. */
void cpar_registry_engine_remove(cpar_registry *r, int32_t id);

/* Slot of the live client with this identity, adding it when new. Returns the slot, or
 * -1 when out of memory. */
int32_t cpar_registry_client(cpar_registry *r, const void *ident, size_t len);
/* The live client in slot (borrowed), else NULL. */
cpar_reg_client *cpar_registry_client_at(cpar_registry *r, uint32_t slot);
/* Forgets a client (its slot stays dead forever). */
void cpar_registry_client_remove(cpar_registry *r, uint32_t slot);
/* Records the connection fd of the live client in slot (fd < 0: nothing). Returns 0 or
 * CPAR_ENOMEM. */
int cpar_registry_client_set_fd(cpar_registry *r, uint32_t slot, int fd);
/* Slot of the live client connected on fd, or -1. */
int32_t cpar_registry_client_by_fd(const cpar_registry *r, int fd);

#endif /* CPAR_CORE_REGISTRY_H */
