/* The one id table: an open-addressing hash index from 64-bit hashes to caller items.
 *
 * The table stores, per slot, the full hash of a key and an opaque non-zero item (a
 * pointer, or an index + 1); the keys themselves stay with the caller, who computes the
 * hash and confirms a candidate's key. Linear probing at load factor at most 1/2 and
 * backward-shift deletion (no tombstones), so insert, lookup and remove are O(1) however
 * many keys come and go; growing moves slots by their stored hash (no rehashing) and is
 * the only allocation (amortised, never per insert).
 *
 * Lookup walks the candidates with an equal hash:
 *     for (size_t s = cpar_idtab_first(t, h); s != CPAR_IDTAB_END; s = cpar_idtab_next(t, s, h))
 *         if (key_equal(t->slots[s].item)) ...
 *
 * Ownership and threads: a cpar_idtab belongs to one thread and owns only its slot array
 * (never the items). No Python, no GIL. */
#ifndef CPAR_CORE_IDTAB_H
#define CPAR_CORE_IDTAB_H

#include <stddef.h>
#include <stdint.h>

#define CPAR_IDTAB_END SIZE_MAX /* "no slot" from first/next */

typedef struct cpar_idtab_slot {
    uint64_t hash;  /* full hash of the item's key */
    uintptr_t item; /* the caller's item; 0 means the slot is empty */
} cpar_idtab_slot;

typedef struct cpar_idtab {
    cpar_idtab_slot *slots; /* nslots entries (a power of two), or NULL before the first put */
    size_t nslots;
    size_t count;     /* items stored */
    size_t min_slots; /* slots allocated on the first put (a power of two) */
} cpar_idtab;

/* Initialises an empty table (allocates nothing); min_slots is rounded up to a power of
 * two (at least 8). */
void cpar_idtab_init(cpar_idtab *t, size_t min_slots);
/* Frees the slot array (not the items); t is left empty and reusable. */
void cpar_idtab_free(cpar_idtab *t);
/* Adds item (non-zero) under hash; the caller has checked that its key is absent. Returns
 * 0 or CPAR_ENOMEM (then nothing changed). */
int cpar_idtab_put(cpar_idtab *t, uint64_t hash, uintptr_t item);
/* First slot holding hash, or CPAR_IDTAB_END. */
size_t cpar_idtab_first(const cpar_idtab *t, uint64_t hash);
/* Next slot after `slot` holding hash, or CPAR_IDTAB_END. */
size_t cpar_idtab_next(const cpar_idtab *t, size_t slot, uint64_t hash);
/* For items that point to structs holding a fixed-size key at key_offset: the item under
 * hash whose key equals key (keylen bytes), or NULL. */
void *cpar_idtab_find_key(const cpar_idtab *t, uint64_t hash, const void *key, size_t keylen,
                          size_t key_offset);
/* Empties a slot returned by first/next (later items may move: restart any walk). */
void cpar_idtab_remove_at(cpar_idtab *t, size_t slot);
/* Removes item stored under hash: 1 when it was there, else 0. */
int cpar_idtab_remove(cpar_idtab *t, uint64_t hash, uintptr_t item);
/* Longest distance of an item from its home slot (how far the worst lookup walks). */
size_t cpar_idtab_max_probe(const cpar_idtab *t);

/* A seeded 64-bit hash of a byte string (not keyed against chosen inputs: for ids the
 * peer cannot choose freely, e.g. ZMQ routing identities). */
uint64_t cpar_idtab_hash(const void *data, size_t len, uint64_t seed);
/* A per-table seed from the clock and salt (e.g. the table's address). */
uint64_t cpar_idtab_seed(uint64_t salt);

#endif /* CPAR_CORE_IDTAB_H */
