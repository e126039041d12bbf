/* A hash map from short byte strings (ZMQ routing identities) to int32 values.
 *
 * Ownership and threads: a cpar_idmap is owned by one thread (the controller's loop); it
 * copies every key it stores and frees them in cpar_idmap_free. No Python, no GIL.
 * Open addressing with linear probing and backward-shift deletion (no tombstones), so
 * lookups stay O(1) however many identities come and go. */
#ifndef CPAR_CORE_IDMAP_H
#define CPAR_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/* One slot: key == NULL means empty. */
typedef struct cpar_idmap_slot {
    uint8_t *key;  /* owned copy of the key (malloc'd) */
    size_t keylen; /* bytes of key */
    uint64_t hash; /* full hash of key, kept to grow and delete without rehashing */
    int32_t value; /* the mapped value */
} cpar_idmap_slot;

typedef struct cpar_idmap {
    cpar_idmap_slot *slots; /* nslots entries (a power of two), or NULL before the first put */
    size_t nslots;
    size_t count;  /* keys stored */
    uint64_t seed; /* per-map hash seed */
} cpar_idmap;

/* Initialises an empty map (allocates nothing). */
void cpar_idmap_init(cpar_idmap *m);
/* Frees every key and the slot array; m is left empty and reusable. */
void cpar_idmap_free(cpar_idmap *m);
/* Looks key up: returns 1 and sets *value when present, else 0. */
int cpar_idmap_get(const cpar_idmap *m, const void *key, size_t keylen, int32_t *value);
/* Inserts or overwrites key -> value (the key is copied). Returns 0 or CPAR_ENOMEM. */
int cpar_idmap_put(cpar_idmap *m, const void *key, size_t keylen, int32_t value);
/* Removes key: returns 1 when it was present, else 0. */
int cpar_idmap_del(cpar_idmap *m, const void *key, size_t keylen);

/* 64-bit hash of a byte string with a seed (also used by route.c). */
uint64_t cpar_idmap_hash(const void *data, size_t len, uint64_t seed);

#endif /* CPAR_CORE_IDMAP_H */
