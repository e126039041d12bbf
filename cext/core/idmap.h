/* A hash map from short byte strings (ZMQ routing identities) to int32 values.
 *
 * Ownership and threads: a cpar_idmap is owned by one thread (the controller's loop); it
 * copies every key it stores and frees them in cpar_idmap_free. No Python, no GIL.
 * Indexed by a cpar_idtab (idtab.h), so lookups stay O(1) however many identities come
 * and go. */
#ifndef CPAR_CORE_IDMAP_H
#define CPAR_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "idtab.h"

typedef struct cpar_idmap {
    cpar_idtab tab; /* items: cpar__idmap_entry * (idmap.c), one malloc per key */
    uint64_t seed;  /* per-map hash seed */
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

#endif /* CPAR_CORE_IDMAP_H */
