/* Message ids made by this side of a connection (docs/protocol.md: a msg_id is chosen by
 * its sender and unique per sender).
 *
 * An id is 16 bytes: 8 random bytes fixed per generator (getrandom; the clock mixed with a
 * salt when that fails), then a counter from 1, little-endian, with `mark` or'ed into its
 * first byte (e.g. 0x80 keeps the client I/O thread's ids apart from the client's own).
 *
 * Ownership and threads: a cpar_ids is owned by whoever embeds it; cpar_ids_next may be
 * called from any thread at once (the counter is atomic). No Python, no GIL. */
#ifndef CPAR_CORE_IDS_H
#define CPAR_CORE_IDS_H

#include <stdatomic.h>
#include <stdint.h>

#define CPAR_IDS_SIZE 16

typedef struct cpar_ids {
    uint8_t prefix[8];         /* the random half */
    uint8_t mark;              /* or'ed into byte 8 of every id */
    atomic_uint_fast64_t next; /* ids made so far (the counting half of the last) */
} cpar_ids;

/* A fresh generator: random prefix, counter at 0. salt: anything that differs between
 * generators of one process (e.g. the owner's address), used only without getrandom. */
void cpar_ids_init(cpar_ids *g, uint64_t salt, uint8_t mark);
/* Writes the next id into out. */
void cpar_ids_next(cpar_ids *g, uint8_t out[CPAR_IDS_SIZE]);

#endif /* CPAR_CORE_IDS_H */
