/* Byte-string -> int32 hash map for routing identities (idmap.h), on a cpar_idtab. */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* One stored key: malloc'd once on insert, freed on delete. */
typedef struct cpar__idmap_entry {
    size_t keylen;
    int32_t value;
    uint8_t key[]; /* keylen bytes */
} cpar__idmap_entry;

void
cpar_idmap_init(cpar_idmap *m)
{
    cpar_idtab_init(&m->tab, 16);
    m->seed = cpar_idtab_seed((uint64_t)(uintptr_t)m);
}

void
cpar_idmap_free(cpar_idmap *m)
{
    for (size_t i = 0; i < m->tab.nslots; i++)
        free((void *)m->tab.slots[i].item);
    cpar_idtab_free(&m->tab);
}

/* The slot holding key, or CPAR_IDTAB_END. */
static size_t
cpar__idmap_find(const cpar_idmap *m, const void *key, size_t keylen, uint64_t h)
{
    for (size_t s = cpar_idtab_first(&m->tab, h); s != CPAR_IDTAB_END;
         s = cpar_idtab_next(&m->tab, s, h)) {
        const cpar__idmap_entry *e = (const cpar__idmap_entry *)m->tab.slots[s].item;
        if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return s;
    }
    return CPAR_IDTAB_END;
}

/* The slot holding key, or CPAR_IDTAB_END (no hashing when the map is empty). */
static size_t
cpar__idmap_lookup(const cpar_idmap *m, const void *key, size_t keylen)
{
    if (m->tab.count == 0)
        return CPAR_IDTAB_END;
    return cpar__idmap_find(m, key, keylen, cpar_idtab_hash(key, keylen, m->seed));
}

int
cpar_idmap_get(const cpar_idmap *m, const void *key, size_t keylen, int32_t *value)
{
    size_t s = cpar__idmap_lookup(m, key, keylen);
    if (s == CPAR_IDTAB_END)
        return 0;
    *value = ((const cpar__idmap_entry *)m->tab.slots[s].item)->value;
    return 1;
}

int
cpar_idmap_put(cpar_idmap *m, const void *key, size_t keylen, int32_t value)
{
    uint64_t h = cpar_idtab_hash(key, keylen, m->seed);
    size_t s = cpar__idmap_find(m, key, keylen, h);
    cpar__idmap_entry *e;

    if (s != CPAR_IDTAB_END) {
        ((cpar__idmap_entry *)m->tab.slots[s].item)->value = value;
        return CPAR_OK;
    }
    e = malloc(sizeof(*e) + keylen);
    if (e == NULL)
        return CPAR_ENOMEM;
    e->keylen = keylen;
    e->value = value;
    if (keylen)
        memcpy(e->key, key, keylen);
    if (cpar_idtab_put(&m->tab, h, (uintptr_t)e) != 0) {
        free(e);
        return CPAR_ENOMEM;
    }
    return CPAR_OK;
}

int
cpar_idmap_del(cpar_idmap *m, const void *key, size_t keylen)
{
    size_t s = cpar__idmap_lookup(m, key, keylen);
    if (s == CPAR_IDTAB_END)
        return 0;
    free((void *)m->tab.slots[s].item);
    cpar_idtab_remove_at(&m->tab, s);
    return 1;
}
