/* The outstanding-request table (route.h). */
#include "route.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

#define CPAR__ROUTE_MIN_SLOTS 64

void
cpar_route_init(cpar_route *r)
{
    memset(r, 0, sizeof(*r));
    cpar_idtab_init(&r->ids, CPAR__ROUTE_MIN_SLOTS);
    r->free_head = CPAR_ROUTE_NIL;
    r->seed = cpar_idtab_seed((uint64_t)(uintptr_t)r);
}

void
cpar_route_free(cpar_route *r)
{
    free(r->pool);
    cpar_idtab_free(&r->ids);
    free(r->heads);
    free(r->counts);
    cpar_route_init(r);
}

static uint64_t
cpar__route_hash(const cpar_route *r, const uint8_t msg_id[16], int32_t engine)
{
    uint8_t key[20];
    memcpy(key, msg_id, 16);
    memcpy(key + 16, &engine, 4);
    return cpar_idtab_hash(key, sizeof(key), r->seed);
}

/* Slot holding (msg_id, engine), or CPAR_IDTAB_END. */
static size_t
cpar__route_slot(const cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint64_t h)
{
    for (size_t s = cpar_idtab_first(&r->ids, h); s != CPAR_IDTAB_END;
         s = cpar_idtab_next(&r->ids, s, h)) {
        const cpar_route_entry *en = &r->pool[r->ids.slots[s].item - 1];
        if (en->engine == engine && memcmp(en->msg_id, msg_id, 16) == 0)
            return s;
    }
    return CPAR_IDTAB_END;
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
    uint32_t e;
    cpar_route_entry *en;

    if (engine < 0 || engine >= CPAR_ROUTE_MAX_ENGINE)
        return CPAR_EINVAL;
    if ((size_t)engine >= r->nengines && cpar__route_grow_engines(r, (size_t)engine + 1) != 0)
        return CPAR_ENOMEM;
    h = cpar__route_hash(r, msg_id, engine);
    if (cpar__route_slot(r, msg_id, engine, h) != CPAR_IDTAB_END)
        return CPAR_EINVAL;
    e = cpar__route_alloc(r);
    if (e == CPAR_ROUTE_NIL)
        return CPAR_ENOMEM;
    if (cpar_idtab_put(&r->ids, h, (uintptr_t)e + 1) != 0) {
        r->pool[e].next = r->free_head;
        r->free_head = e;
        return CPAR_ENOMEM;
    }
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
    return CPAR_OK;
}

int
cpar_route_find(const cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t *client)
{
    size_t s = cpar__route_slot(r, msg_id, engine, cpar__route_hash(r, msg_id, engine));
    if (s == CPAR_IDTAB_END)
        return 0;
    *client = r->pool[r->ids.slots[s].item - 1].client;
    return 1;
}

/* Empties slot s, unlinks its entry and frees it. */
static void
cpar__route_remove_slot(cpar_route *r, size_t s)
{
    uint32_t e = (uint32_t)(r->ids.slots[s].item - 1);
    cpar_route_entry *en = &r->pool[e];

    cpar_idtab_remove_at(&r->ids, s);
    if (en->prev != CPAR_ROUTE_NIL)
        r->pool[en->prev].next = en->next;
    else
        r->heads[en->engine] = en->next;
    if (en->next != CPAR_ROUTE_NIL)
        r->pool[en->next].prev = en->prev;
    r->counts[en->engine]--;
    en->next = r->free_head;
    r->free_head = e;
}

int
cpar_route_remove(cpar_route *r, const uint8_t msg_id[16], int32_t engine, uint32_t *client)
{
    size_t s = cpar__route_slot(r, msg_id, engine, cpar__route_hash(r, msg_id, engine));
    if (s == CPAR_IDTAB_END)
        return 0;
    if (client)
        *client = r->pool[r->ids.slots[s].item - 1].client;
    cpar__route_remove_slot(r, s);
    return 1;
}

int
cpar_route_pop_engine(cpar_route *r, int32_t engine, cpar_route_entry *out)
{
    uint32_t e;
    if (engine < 0 || (size_t)engine >= r->nengines)
        return 0;
    e = r->heads[engine];
    if (e == CPAR_ROUTE_NIL)
        return 0;
    *out = r->pool[e];
    cpar__route_remove_slot(r, cpar__route_slot(r, out->msg_id, engine, out->hash));
    return 1;
}

void
cpar_route_visit(cpar_route *r, void (*fn)(void *arg, cpar_route_entry *ent), void *arg)
{
    for (size_t engine = 0; engine < r->nengines; engine++)
        for (uint32_t e = r->heads[engine]; e != CPAR_ROUTE_NIL; e = r->pool[e].next)
            fn(arg, &r->pool[e]);
}

uint32_t
cpar_route_engine_count(const cpar_route *r, int32_t engine)
{
    if (engine < 0 || (size_t)engine >= r->nengines)
        return 0;
    return r->counts[engine];
}
