/* Growing arrays: the one place that doubles a malloc'd array's capacity.
 *
 * Ownership and threads: the caller owns the array and calls from whichever thread owns
 * it. No Python, no GIL. */
#ifndef CPAR_CORE_VEC_H
#define CPAR_CORE_VEC_H

#include <stddef.h>

/* Returns v (elements of `size` bytes, capacity *cap) with room for at least `need`
 * elements: v itself when it has it, else v reallocated to double its capacity (`first`
 * when it is 0) or more, with *cap updated. NULL when out of memory or on overflow; then v
 * is untouched and still owned by the caller. */
void *cpar_vec_grow(void *v, size_t *cap, size_t need, size_t size, size_t first);

#endif /* CPAR_CORE_VEC_H */
