/* Page pool: mappings kept for reuse by the shared-memory receiver (pagepool.h). */
#include "pagepool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "wire.h" /* cpar_mono_ns */

typedef struct cpar__kept {
    void *mem; /* NULL: a free slot */
    size_t size;
    uint64_t t; /* cpar_mono_ns() when given back */
} cpar__kept;

_Static_assert(CPAR_PAGEPOOL_MAX_SIZE <= CPAR_PAGEPOOL_BYTES, "a kept mapping fits the pool");

static pthread_mutex_t cpar__pool_lock = PTHREAD_MUTEX_INITIALIZER;
static cpar__kept cpar__pool[CPAR_PAGEPOOL_SLOTS];
static cpar_pagepool_stats cpar__pool_stats;
static atomic_size_t cpar__pool_nkept; /* cpar__pool_stats.kept, readable without the lock */

/* With the lock held: moves slot i's mapping to out (to be unmapped after the unlock). */
static void
cpar__pool_take(size_t i, cpar__kept *out)
{
    *out = cpar__pool[i];
    cpar__pool[i].mem = NULL;
    cpar__pool_stats.kept--;
    atomic_store_explicit(&cpar__pool_nkept, cpar__pool_stats.kept, memory_order_relaxed);
    cpar__pool_stats.bytes -= out->size;
}

/* With the lock held: moves every mapping kept longer than the age bound to gone[]; returns
 * how many. */
static size_t
cpar__pool_expire(uint64_t now, cpar__kept gone[CPAR_PAGEPOOL_SLOTS])
{
    size_t n = 0;
    for (size_t i = 0; i < CPAR_PAGEPOOL_SLOTS; i++)
        if (cpar__pool[i].mem != NULL && now - cpar__pool[i].t > CPAR_PAGEPOOL_AGE_NS)
            cpar__pool_take(i, &gone[n++]);
    return n;
}

static void
cpar__unmap_all(const cpar__kept *gone, size_t n)
{
    for (size_t i = 0; i < n; i++)
        munmap(gone[i].mem, gone[i].size);
}

void *
cpar_pagepool_get(size_t len, size_t *size)
{
    cpar__kept gone[CPAR_PAGEPOOL_SLOTS], found = {NULL, 0, 0};
    size_t ngone, best = CPAR_PAGEPOOL_SLOTS;
    void *mem;

    pthread_mutex_lock(&cpar__pool_lock);
    ngone = cpar__pool_expire(cpar_mono_ns(), gone);
    for (size_t i = 0; i < CPAR_PAGEPOOL_SLOTS; i++) {
        size_t s = cpar__pool[i].size;
        if (cpar__pool[i].mem == NULL || s < len || s - len > len / 2)
            continue;
        if (best == CPAR_PAGEPOOL_SLOTS || s < cpar__pool[best].size)
            best = i;
    }
    if (best < CPAR_PAGEPOOL_SLOTS) {
        cpar__pool_take(best, &found);
        cpar__pool_stats.hits++;
    } else {
        cpar__pool_stats.misses++;
    }
    pthread_mutex_unlock(&cpar__pool_lock);
    cpar__unmap_all(gone, ngone);
    if (found.mem != NULL) {
        *size = found.size;
        return found.mem;
    }
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    *size = len;
    return mem;
}

void
cpar_pagepool_put(void *mem, size_t size)
{
    cpar__kept gone[CPAR_PAGEPOOL_SLOTS + 1];
    size_t ngone, slot = CPAR_PAGEPOOL_SLOTS;

    if (mem == NULL)
        return;
    if (size > CPAR_PAGEPOOL_MAX_SIZE) {
        munmap(mem, size);
        return;
    }
    pthread_mutex_lock(&cpar__pool_lock);
    ngone = cpar__pool_expire(cpar_mono_ns(), gone);
    /* Evict the oldest until there is a free slot and room for size bytes; there is
     * always an oldest then (size <= CPAR_PAGEPOOL_MAX_SIZE <= CPAR_PAGEPOOL_BYTES). */
    for (;;) {
        size_t oldest = CPAR_PAGEPOOL_SLOTS;
        slot = CPAR_PAGEPOOL_SLOTS;
        for (size_t i = 0; i < CPAR_PAGEPOOL_SLOTS; i++) {
            if (cpar__pool[i].mem == NULL) {
                if (slot == CPAR_PAGEPOOL_SLOTS)
                    slot = i;
            } else if (oldest == CPAR_PAGEPOOL_SLOTS || cpar__pool[i].t < cpar__pool[oldest].t) {
                oldest = i;
            }
        }
        if (slot < CPAR_PAGEPOOL_SLOTS && cpar__pool_stats.bytes + size <= CPAR_PAGEPOOL_BYTES)
            break;
        cpar__pool_take(oldest, &gone[ngone++]);
    }
    cpar__pool[slot] = (cpar__kept){mem, size, cpar_mono_ns()};
    cpar__pool_stats.kept++;
    atomic_store_explicit(&cpar__pool_nkept, cpar__pool_stats.kept, memory_order_relaxed);
    cpar__pool_stats.bytes += size;
    pthread_mutex_unlock(&cpar__pool_lock);
    cpar__unmap_all(gone, ngone);
}

size_t
cpar_pagepool_trim(void)
{
    cpar__kept gone[CPAR_PAGEPOOL_SLOTS];
    size_t n, kept;

    pthread_mutex_lock(&cpar__pool_lock);
    n = cpar__pool_expire(cpar_mono_ns(), gone);
    kept = cpar__pool_stats.kept;
    pthread_mutex_unlock(&cpar__pool_lock);
    cpar__unmap_all(gone, n);
    return kept;
}

size_t
cpar_pagepool_kept(void)
{
    return atomic_load_explicit(&cpar__pool_nkept, memory_order_relaxed);
}

void
cpar_pagepool_drain(void)
{
    cpar__kept gone[CPAR_PAGEPOOL_SLOTS];
    size_t n = 0;

    pthread_mutex_lock(&cpar__pool_lock);
    for (size_t i = 0; i < CPAR_PAGEPOOL_SLOTS; i++)
        if (cpar__pool[i].mem != NULL)
            cpar__pool_take(i, &gone[n++]);
    pthread_mutex_unlock(&cpar__pool_lock);
    cpar__unmap_all(gone, n);
}

void
cpar_pagepool_get_stats(cpar_pagepool_stats *out)
{
    pthread_mutex_lock(&cpar__pool_lock);
    *out = cpar__pool_stats;
    pthread_mutex_unlock(&cpar__pool_lock);
}
