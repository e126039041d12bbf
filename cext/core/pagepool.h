/* Page pool: private anonymous mappings kept for reuse by the shared-memory receiver.
 *
 * A frame read with process_vm_readv lands in pages of the receiver's own. Fresh pages cost
 * a fault, a zeroing and a memory-cgroup charge each (4 KiB at a time), which for a 1 MiB
 * frame takes longer than copying it; a mapping given back when its frame is closed is
 * kept here and the next frame of a similar size reuses its pages, already present.
 *
 * Bounds: at most CPAR_PAGEPOOL_SLOTS mappings and CPAR_PAGEPOOL_BYTES in all; mappings
 * larger than CPAR_PAGEPOOL_MAX_SIZE are never kept. Frames of 100 MB are kept too: their
 * first-touch faults run well under copy speed (4 KiB at a time, and huge pages may first
 * need the kernel to compact memory), so a repeated large push would pay them every time.
 * A kept mapping unused for CPAR_PAGEPOOL_AGE_NS is
 * unmapped at the next get, put or trim (the engine's and the client's I/O threads trim
 * while anything is kept). A mapping serves a request of len bytes when its size
 * is at least len and at most len + len / 2.
 *
 * Ownership and threads: the pool owns the mappings it keeps; a mapping returned by
 * cpar_pagepool_get belongs to the caller until it is given back with cpar_pagepool_put
 * (from any thread: libzmq's free callback runs on whichever thread closes the frame).
 * One process-wide pool behind a mutex. No Python, no GIL needed. */
#ifndef CPAR_CORE_PAGEPOOL_H
#define CPAR_CORE_PAGEPOOL_H

#include <stddef.h>
#include <stdint.h>

#define CPAR_PAGEPOOL_SLOTS 8
#define CPAR_PAGEPOOL_BYTES (512u << 20)
#define CPAR_PAGEPOOL_MAX_SIZE (256u << 20)
#define CPAR_PAGEPOOL_AGE_NS (2ull * 1000000000ull)

typedef struct cpar_pagepool_stats {
    uint64_t hits;   /* gets served by a kept mapping */
    uint64_t misses; /* gets that mapped new pages */
    size_t kept;     /* mappings kept now */
    size_t bytes;    /* their bytes */
} cpar_pagepool_stats;

/* A read-write private anonymous mapping of at least len bytes (len > 0); its size goes to
 * *size. Returns NULL (errno set) when none can be mapped. */
void *cpar_pagepool_get(size_t len, size_t *size);

/* Gives back a mapping of `size` bytes from cpar_pagepool_get: kept, evicting the oldest
 * kept ones to stay within the bounds, or unmapped. */
void cpar_pagepool_put(void *mem, size_t size);

/* Unmaps the mappings kept unused for longer than CPAR_PAGEPOOL_AGE_NS; returns how many
 * are still kept. */
size_t cpar_pagepool_trim(void);

/* How many mappings are kept now, without taking the lock (for an I/O loop deciding
 * whether it has anything to trim). */
size_t cpar_pagepool_kept(void);

/* Unmaps every kept mapping. */
void cpar_pagepool_drain(void);

/* The pool's counters (for tests and logs). */
void cpar_pagepool_get_stats(cpar_pagepool_stats *out);

#endif /* CPAR_CORE_PAGEPOOL_H */
