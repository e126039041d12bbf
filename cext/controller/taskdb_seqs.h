/* The task database's memory of recent arrivals: which record (its seq, the row id) holds
 * part `engine` of request `id`, so the events that follow an arrival (dispatch, STREAM,
 * REPLY, ERROR) update that row by its row id instead of looking its hex msg_id up in the
 * msg_id index. Only a shortcut: a miss means "ask SQLite" (taskdb_write.c falls back to
 * the msg_id lookup), so forgetting too much is always safe; remembering a row that is gone
 * is not, hence cpar__seqs_forget on every deletion (a temp trigger on records calls it) and
 * cpar__seqs_clear when a transaction that inserted rows did not commit.
 *
 * A ring of the last `cap` arrivals in seq order (the oldest evicted first; a forgotten
 * entry stays in the ring, dead, so the ring stays sorted for cpar__seqs_forget's binary
 * search), indexed by a cpar_idtab on the (id, engine) key.
 *
 * Ownership and threads: owned by a cpar_taskdb and used by its database thread only (set
 * up and freed by open/close before the thread starts and after it ends). No Python, no
 * GIL, no SQLite. */
#ifndef CPAR_CONTROLLER_TASKDB_SEQS_H
#define CPAR_CONTROLLER_TASKDB_SEQS_H

#include <stddef.h>
#include <stdint.h>

#include "idtab.h"
#include "wire.h"

#define CPAR__SEQS_DEFAULT_CAP 32768 /* arrivals remembered (about 1.5 MiB when full) */

typedef struct cpar__seqent {
    uint8_t id[CPAR_WIRE_ID_SIZE]; /* the request's (or task's) id */
    int32_t engine;                /* the part's engine; CPAR_NO_ENGINE: a one-part request */
    int32_t live;                  /* indexed in tab (0: evicted, forgotten or replaced) */
    int64_t seq;                   /* the record's row id (increasing along the ring) */
} cpar__seqent;

typedef struct cpar__seqs {
    cpar_idtab tab;     /* items: ring index + 1 of the live entries */
    cpar__seqent *ring; /* cap entries; the oldest at head */
    size_t cap, head, n;
    uint64_t seed; /* the key hash's seed */
} cpar__seqs;

/* An empty cache of cap entries (0: CPAR__SEQS_DEFAULT_CAP): 0 or CPAR_ENOMEM. */
int cpar__seqs_init(cpar__seqs *c, size_t cap);
/* Frees the ring and the index; c is left empty (lookups miss, puts are ignored). */
void cpar__seqs_free(cpar__seqs *c);
/* Forgets everything (the ring and the index stay allocated). */
void cpar__seqs_clear(cpar__seqs *c);
/* Remembers that record seq holds (id, engine), replacing what that key held; the oldest
 * entry goes when the ring is full. seq must exceed every seq put before (else, and when
 * memory runs out, nothing is remembered). */
void cpar__seqs_put(cpar__seqs *c, const uint8_t *id, int32_t engine, int64_t seq);
/* The record remembered for (id, engine), or 0. */
int64_t cpar__seqs_get(const cpar__seqs *c, const uint8_t *id, int32_t engine);
/* Record seq was deleted: forget its entry if it has one. */
void cpar__seqs_forget(cpar__seqs *c, int64_t seq);

#endif /* CPAR_CONTROLLER_TASKDB_SEQS_H */
