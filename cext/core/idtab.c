/* The one id table (idtab.h). */
#include "idtab.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

static uint64_t
cpar__idtab_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t
cpar_idtab_hash(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = cpar__idtab_mix64(seed ^ (len * 0x9e3779b97f4a7c15ULL));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = cpar__idtab_mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = cpar__idtab_mix64(h ^ w ^ ((uint64_t)len << 56));
    }
    return cpar__idtab_mix64(h);
}

uint64_t
cpar_idtab_seed(uint64_t salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return cpar__idtab_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (salt << 17));
}

void
cpar_idtab_init(cpar_idtab *t, size_t min_slots)
{
    size_t n = 8;
    while (n < min_slots)
        n *= 2;
    memset(t, 0, sizeof(*t));
    t->min_slots = n;
}

void
cpar_idtab_free(cpar_idtab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->nslots = 0;
    t->count = 0;
}

/* Distance of slot i from home slot `home`, cyclically. */
static size_t
cpar__idtab_dist(const cpar_idtab *t, size_t home, size_t i)
{
    return (i - home) & (t->nslots - 1);
}

static int
cpar__idtab_grow(cpar_idtab *t)
{
    /* A zeroed (never initialised) table starts at 8 slots. */
    size_t nn = t->nslots ? t->nslots * 2 : t->min_slots ? t->min_slots : 8;
    cpar_idtab_slot *ns = calloc(nn, sizeof(*ns));
    if (ns == NULL)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < t->nslots; i++) {
        size_t j;
        if (t->slots[i].item == 0)
            continue;
        for (j = (size_t)t->slots[i].hash & (nn - 1); ns[j].item != 0; j = (j + 1) & (nn - 1))
            ;
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->nslots = nn;
    return CPAR_OK;
}

int
cpar_idtab_put(cpar_idtab *t, uint64_t hash, uintptr_t item)
{
    size_t mask, i;
    /* Keep the load factor at most 1/2. */
    if ((t->count + 1) * 2 > t->nslots && cpar__idtab_grow(t) != 0)
        return CPAR_ENOMEM;
    mask = t->nslots - 1;
    for (i = (size_t)hash & mask; t->slots[i].item != 0; i = (i + 1) & mask)
        ;
    t->slots[i].hash = hash;
    t->slots[i].item = item;
    t->count++;
    return CPAR_OK;
}

/* From slot i on, the first slot holding hash, or END at the first empty slot. */
static size_t
cpar__idtab_scan(const cpar_idtab *t, size_t i, uint64_t hash)
{
    size_t mask = t->nslots - 1;
    for (; t->slots[i].item != 0; i = (i + 1) & mask)
        if (t->slots[i].hash == hash)
            return i;
    return CPAR_IDTAB_END;
}

size_t
cpar_idtab_first(const cpar_idtab *t, uint64_t hash)
{
    if (t->count == 0)
        return CPAR_IDTAB_END;
    return cpar__idtab_scan(t, (size_t)hash & (t->nslots - 1), hash);
}

size_t
cpar_idtab_next(const cpar_idtab *t, size_t slot, uint64_t hash)
{
    return cpar__idtab_scan(t, (slot + 1) & (t->nslots - 1), hash);
}

void *
cpar_idtab_find_key(const cpar_idtab *t, uint64_t hash, const void *key, size_t keylen,
                    size_t key_offset)
{
    for (size_t s = cpar_idtab_first(t, hash); s != CPAR_IDTAB_END;
         s = cpar_idtab_next(t, s, hash)) {
        uint8_t *item = (uint8_t *)t->slots[s].item;
        if (memcmp(item + key_offset, key, keylen) == 0)
            return item;
    }
    return NULL;
}

void
cpar_idtab_remove_at(cpar_idtab *t, size_t slot)
{
    size_t mask = t->nslots - 1, hole = slot, j = slot;
    t->slots[hole].item = 0;
    t->count--;
    /* Backward shift: a later member of the run moves into the hole unless its home lies
     * cyclically in (hole, j], i.e. unless it is nearer its home than the hole is. */
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (t->slots[j].item == 0)
            return;
        home = (size_t)t->slots[j].hash & mask;
        if (cpar__idtab_dist(t, home, j) >= cpar__idtab_dist(t, hole, j)) {
            t->slots[hole] = t->slots[j];
            t->slots[j].item = 0;
            hole = j;
        }
    }
}

int
cpar_idtab_remove(cpar_idtab *t, uint64_t hash, uintptr_t item)
{
    for (size_t s = cpar_idtab_first(t, hash); s != CPAR_IDTAB_END; s = cpar_idtab_next(t, s, hash))
        if (t->slots[s].item == item) {
            cpar_idtab_remove_at(t, s);
            return 1;
        }
    return 0;
}

size_t
cpar_idtab_max_probe(const cpar_idtab *t)
{
    size_t worst = 0;
    for (size_t i = 0; i < t->nslots; i++) {
        size_t d;
        if (t->slots[i].item == 0)
            continue;
        d = cpar__idtab_dist(t, (size_t)t->slots[i].hash & (t->nslots - 1), i);
        if (d > worst)
            worst = d;
    }
    return worst;
}
