/* The outstanding-request table (route.h). */
#include "route.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "idmap.h"

#define CPAR__ROUTE_MIN_SLOTS 64

void
cpar_route_init(cpar_route *r)
{
    struct timespec ts;
    memset(r, 0, sizeof(*r));
    r->free_head = CPAR_ROUTE_NIL;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->seed = cpar_idmap_hash(&ts, sizeof(ts), (uint64_t)(uintptr_t)r);
}

void
cpar_route_free(cpar_route *r)
{
    free(r->pool);
    free(r->slots);
    free(r->heads);
    free(r->counts);
    memset(r, 0, sizeof(*r));
    r->free_head = CPAR_ROUTE_NIL;
}

static uint64_t
cpar__route_hash(const cpar_route *r, const uint8_t msg_id[16], int32_t engine)
{
    uint8_t key[20];
    memcpy(key, msg_id, 16);
    memcpy(key + 16, &engine, 4);
    return cpar_idmap_hash(key, sizeof(key), r->seed);
}

/* Slot holding (msg_id, engine), or the empty slot where it would go. Needs nslots > 0. */
static size_t
cpar__route_slot(const cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint64_t h)
{
    size_t mask = r->nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        uint32_t e = r->slots[i];
        const cpar_route_entry *en;
        if (e == CPAR_ROUTE_NIL)
            return i;
        en = &r->pool[e];
        if (en->hash == h && en->engine == engine && memcmp(en->msg_id, msg_id, 16) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static int
cpar__route_grow_slots(cpar_route *r)
{
    size_t nn = r->nslots ? r->nslots * 2 : CPAR__ROUTE_MIN_SLOTS;
    uint32_t *ns = malloc(nn * sizeof(*ns));
    if (ns == NULL)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < nn; i++)
        ns[i] = CPAR_ROUTE_NIL;
    for (size_t i = 0; i < r->nslots; i++) {
        uint32_t e = r->slots[i];
        size_t j;
        if (e == CPAR_ROUTE_NIL)
            continue;
        j = (size_t)r->pool[e].hash & (nn - 1);
        while (ns[j] != CPAR_ROUTE_NIL)
            j = (j + 1) & (nn - 1);
        ns[j] = e;
    }
    free(r->slots);
    r->slots = ns;
    r->nslots = nn;
    return CPAR_OK;
}

static int
cpar__route_grow_engines(cpar_route *r, size_t need)
{
    size_t nn = r->nengines ? r->nengines : 16;
    uint32_t *nh, *nc;
    while (nn < need)
        nn *= 2;
    nh = realloc(r->heads, nn * sizeof(*nh));
    if (nh == NULL)
        return CPAR_ENOMEM;
    r->heads = nh;
    nc = realloc(r->counts, nn * sizeof(*nc));
    if (nc == NULL)
        return CPAR_ENOMEM;
    r->counts = nc;
    for (size_t i = r->nengines; i < nn; i++) {
        nh[i] = CPAR_ROUTE_NIL;
        nc[i] = 0;
    }
    r->nengines = nn;
    return CPAR_OK;
}

/* Takes an entry from the free list or the pool's untouched tail; CPAR_ROUTE_NIL when
 * out of memory. */
static uint32_t
cpar__route_alloc(cpar_route *r)
{
    uint32_t e;
    if (r->free_head != CPAR_ROUTE_NIL) {
        e = r->free_head;
        r->free_head = r->pool[e].next;
        return e;
    }
    if (r->pool_used == r->pool_cap) {
        uint32_t ncap = r->pool_cap ? r->pool_cap * 2 : 64;
        cpar_route_entry *np;
        if (ncap >= CPAR_ROUTE_NIL / 2)
            return CPAR_ROUTE_NIL;
        np = realloc(r->pool, (size_t)ncap * sizeof(*np));
        if (np == NULL)
            return CPAR_ROUTE_NIL;
        r->pool = np;
        r->pool_cap = ncap;
    }
    return r->pool_used++;
}

int
cpar_route_insert(cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t client)
{
    uint64_t h;
    size_t i;
    uint32_t e;
    cpar_route_entry *en;

    if (engine < 0 || engine >= CPAR_ROUTE_MAX_ENGINE)
        return CPAR_EINVAL;
    if ((size_t)engine >= r->nengines && cpar__route_grow_engines(r, (size_t)engine + 1) != 0)
        return CPAR_ENOMEM;
    if ((r->count + 1) * 2 > r->nslots && cpar__route_grow_slots(r) != 0)
        return CPAR_ENOMEM;
    h = cpar__route_hash(r, msg_id, engine);
    i = cpar__route_slot(r, msg_id, engine, h);
    if (r->slots[i] != CPAR_ROUTE_NIL)
        return CPAR_EINVAL;
    e = cpar__route_alloc(r);
    if (e == CPAR_ROUTE_NIL)
        return CPAR_ENOMEM;
    en = &r->pool[e];
    memcpy(en->msg_id, msg_id, 16);
    en->engine = engine;
    en->client = client;
    en->hash = h;
    en->prev = CPAR_ROUTE_NIL;
    en->next = r->heads[engine];
    if (en->next != CPAR_ROUTE_NIL)
        r->pool[en->next].prev = e;
    r->heads[engine] = e;
    r->counts[engine]++;
    r->slots[i] = e;
    r->count++;
    return CPAR_OK;
}

int
cpar_route_find(const cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t *client)
{
    size_t i;
    if (r->count == 0)
        return 0;
    i = cpar__route_slot(r, msg_id, engine, cpar__route_hash(r, msg_id, engine));
    if (r->slots[i] == CPAR_ROUTE_NIL)
        return 0;
    *client = r->pool[r->slots[i]].client;
    return 1;
}

/* Empties slot i (backward shift), unlinks its entry and frees it. */
static void
cpar__route_remove_slot(cpar_route *r, size_t i)
{
    size_t mask = r->nslots - 1, j = i;
    uint32_t e = r->slots[i];
    cpar_route_entry *en = &r->pool[e];

    if (en->prev != CPAR_ROUTE_NIL)
        r->pool[en->prev].next = en->next;
    else
        r->heads[en->engine] = en->next;
    if (en->next != CPAR_ROUTE_NIL)
        r->pool[en->next].prev = en->prev;
    r->counts[en->engine]--;
    en->next = r->free_head;
    r->free_head = e;
    r->count--;

    r->slots[i] = CPAR_ROUTE_NIL;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (r->slots[j] == CPAR_ROUTE_NIL)
            break;
        home = (size_t)r->pool[r->slots[j]].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            r->slots[i] = r->slots[j];
            r->slots[j] = CPAR_ROUTE_NIL;
            i = j;
        }
    }
}

int
cpar_route_remove(cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t *client)
{
    size_t i;
    if (r->count == 0)
        return 0;
    i = cpar__route_slot(r, msg_id, engine, cpar__route_hash(r, msg_id, engine));
    if (r->slots[i] == CPAR_ROUTE_NIL)
        return 0;
    if (client)
        *client = r->pool[r->slots[i]].client;
    cpar__route_remove_slot(r, i);
    return 1;
}

int
cpar_route_pop_engine(cpar_route *r, int32_t engine, cpar_route_entry *out)
{
    uint32_t e;
    size_t i;
    if (engine < 0 || (size_t)engine >= r->nengines)
        return 0;
    e = r->heads[engine];
    if (e == CPAR_ROUTE_NIL)
        return 0;
    *out = r->pool[e];
    i = cpar__route_slot(r, out->msg_id, engine, out->hash);
    cpar__route_remove_slot(r, i);
    return 1;
}

uint32_t
cpar_route_engine_count(const cpar_route *r, int32_t engine)
{
    if (engine < 0 || (size_t)engine >= r->nengines)
        return 0;
    return r->counts[engine];
}
