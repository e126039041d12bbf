/* The outstanding-request table: which client sent request (msg_id) to engine (id).
 *
 * Ownership and threads: a cpar_route belongs to the controller's loop thread; it holds no
 * pointers into other objects (clients are plain indices). No Python, no GIL.
 * Entries live in one pool array (free list, no per-request malloc once the pool has
 * grown) and are indexed by a cpar_idtab (idtab.h) on the hash of (msg_id, engine):
 * insert, lookup and remove are O(1). Each engine's entries also form a doubly linked list, so an
 * engine's death visits only its own requests. */
#ifndef CPAR_CORE_ROUTE_H
#define CPAR_CORE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "idtab.h"

#define CPAR_ROUTE_NIL UINT32_MAX       /* "no entry" in lists */
#define CPAR_ROUTE_MAX_ENGINE (1 << 20) /* engine ids must be in [0, this) */

/* One outstanding request on one engine. */
typedef struct cpar_route_entry {
    uint8_t msg_id[16]; /* the request's id (chosen by its client) */
    int32_t engine;     /* the engine it went to */
    uint32_t client;    /* the controller's index of the client that sent it */
    uint64_t hash;      /* hash of (msg_id, engine) */
    uint32_t prev;      /* per-engine list; while free, next links the free list */
    uint32_t next;
} cpar_route_entry;

typedef struct cpar_route {
    cpar_route_entry *pool; /* entries; index = handle */
    uint32_t pool_cap;      /* entries allocated */
    uint32_t pool_used;     /* entries ever handed out (the rest never touched) */
    uint32_t free_head;     /* first released entry, or CPAR_ROUTE_NIL */
    cpar_idtab ids;         /* items: entry index + 1; ids.count: entries in use */
    uint32_t *heads;        /* per engine id: first entry of its list, or CPAR_ROUTE_NIL */
    uint32_t *counts;       /* per engine id: entries in its list */
    size_t nengines;        /* length of heads and counts */
    uint64_t seed;          /* hash seed */
} cpar_route;

/* Initialises an empty table (allocates nothing). */
void cpar_route_init(cpar_route *r);
/* Frees everything; r is left empty and reusable. */
void cpar_route_free(cpar_route *r);

/* Records (msg_id, engine) -> client. Returns 0; CPAR_EINVAL when that pair is already
 * outstanding (or engine is out of range); CPAR_ENOMEM. */
int cpar_route_insert(cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t client);
/* Looks (msg_id, engine) up: returns 1 and sets *client, else 0. */
int cpar_route_find(const cpar_route *r, const uint8_t msg_id[16], int32_t engine,
                    uint32_t *client);
/* Removes (msg_id, engine): returns 1 and sets *client (when not NULL), else 0. */
int cpar_route_remove(cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t *client);
/* Removes one entry of engine's list and copies it to *out: returns 1, or 0 when the
 * engine has none left. Used to fail everything an engine owed when it dies. */
int cpar_route_pop_engine(cpar_route *r, int32_t engine, cpar_route_entry *out);
/* Calls fn(arg, entry) for every outstanding entry, engine by engine; fn may change the
 * entry's client and nothing else (RECLAIM moves requests to another client). */
void cpar_route_visit(cpar_route *r, void (*fn)(void *arg, cpar_route_entry *ent), void *arg);
/* Requests outstanding on engine (0 for unknown ids). */
uint32_t cpar_route_engine_count(const cpar_route *r, int32_t engine);

#endif /* CPAR_CORE_ROUTE_H */
