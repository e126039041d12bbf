/* Byte-string -> int32 hash map for routing identities (idmap.h). */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

#define CPAR__IDMAP_MIN_SLOTS 16

static uint64_t
cpar__mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t
cpar_idmap_hash(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = cpar__mix64(seed ^ (len * 0x9e3779b97f4a7c15ULL));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = cpar__mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = cpar__mix64(h ^ w ^ ((uint64_t)len << 56));
    }
    return cpar__mix64(h);
}

void
cpar_idmap_init(cpar_idmap *m)
{
    struct timespec ts;
    memset(m, 0, sizeof(*m));
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m->seed = cpar__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)m << 17));
}

void
cpar_idmap_free(cpar_idmap *m)
{
    for (size_t i = 0; i < m->nslots; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->nslots = 0;
    m->count = 0;
}

/* Index of key's slot, or of the empty slot where it would go. Needs nslots > 0. */
static size_t
cpar__idmap_find(const cpar_idmap *m, const void *key, size_t keylen, uint64_t h)
{
    size_t mask = m->nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        const cpar_idmap_slot *s = &m->slots[i];
        if (s->key == NULL)
            return i;
        if (s->hash == h && s->keylen == keylen && memcmp(s->key, key, keylen) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

int
cpar_idmap_get(const cpar_idmap *m, const void *key, size_t keylen, int32_t *value)
{
    size_t i;
    if (m->count == 0)
        return 0;
    i = cpar__idmap_find(m, key, keylen, cpar_idmap_hash(key, keylen, m->seed));
    if (m->slots[i].key == NULL)
        return 0;
    *value = m->slots[i].value;
    return 1;
}

static int
cpar__idmap_grow(cpar_idmap *m)
{
    size_t nn = m->nslots ? m->nslots * 2 : CPAR__IDMAP_MIN_SLOTS;
    cpar_idmap_slot *ns = calloc(nn, sizeof(*ns));
    if (ns == NULL)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < m->nslots; i++) {
        cpar_idmap_slot *s = &m->slots[i];
        size_t j;
        if (s->key == NULL)
            continue;
        j = (size_t)s->hash & (nn - 1);
        while (ns[j].key != NULL)
            j = (j + 1) & (nn - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->nslots = nn;
    return CPAR_OK;
}

int
cpar_idmap_put(cpar_idmap *m, const void *key, size_t keylen, int32_t value)
{
    uint64_t h = cpar_idmap_hash(key, keylen, m->seed);
    cpar_idmap_slot *s;
    uint8_t *copy;
    size_t i;

    /* Keep the load factor at most 1/2. */
    if ((m->count + 1) * 2 > m->nslots && cpar__idmap_grow(m) != 0)
        return CPAR_ENOMEM;
    i = cpar__idmap_find(m, key, keylen, h);
    s = &m->slots[i];
    if (s->key != NULL) {
        s->value = value;
        return CPAR_OK;
    }
    copy = malloc(keylen ? keylen : 1);
    if (copy == NULL)
        return CPAR_ENOMEM;
    if (keylen)
        memcpy(copy, key, keylen);
    s->key = copy;
    s->keylen = keylen;
    s->hash = h;
    s->value = value;
    m->count++;
    return CPAR_OK;
}

int
cpar_idmap_del(cpar_idmap *m, const void *key, size_t keylen)
{
    size_t mask, i, j;
    if (m->count == 0)
        return 0;
    mask = m->nslots - 1;
    i = cpar__idmap_find(m, key, keylen, cpar_idmap_hash(key, keylen, m->seed));
    if (m->slots[i].key == NULL)
        return 0;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot does not lie cyclically in (hole, j]. */
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL)
            break;
        home = (size_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    return 1;
}
