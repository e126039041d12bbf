/* The task database's memory of recent arrivals (taskdb_seqs.h): a ring in seq order
 * indexed by (id, engine).
 *
 * Threads: the database thread only (taskdb_seqs.h). */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "taskdb_seqs.h"

static uint64_t
cpar__seqs_hash(const cpar__seqs *c, const uint8_t *id, int32_t engine)
{
    uint8_t key[CPAR_WIRE_ID_SIZE + sizeof(engine)];
    memcpy(key, id, CPAR_WIRE_ID_SIZE);
    memcpy(key + CPAR_WIRE_ID_SIZE, &engine, sizeof(engine));
    return cpar_idtab_hash(key, sizeof(key), c->seed);
}

static cpar__seqent *
cpar__seqs_at(const cpar__seqs *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

/* The slot of key's live entry in tab, or CPAR_IDTAB_END. */
static size_t
cpar__seqs_slot(const cpar__seqs *c, uint64_t h, const uint8_t *id, int32_t engine)
{
    for (size_t s = cpar_idtab_first(&c->tab, h); s != CPAR_IDTAB_END;
         s = cpar_idtab_next(&c->tab, s, h)) {
        const cpar__seqent *e = &c->ring[c->tab.slots[s].item - 1];
        if (e->engine == engine && memcmp(e->id, id, CPAR_WIRE_ID_SIZE) == 0)
            return s;
    }
    return CPAR_IDTAB_END;
}

/* Takes entry e (live) out of the index. */
static void
cpar__seqs_unindex(cpar__seqs *c, cpar__seqent *e)
{
    cpar_idtab_remove(&c->tab, cpar__seqs_hash(c, e->id, e->engine), (uintptr_t)(e - c->ring) + 1);
    e->live = 0;
}

int
cpar__seqs_init(cpar__seqs *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->cap = cap ? cap : CPAR__SEQS_DEFAULT_CAP;
    c->ring = calloc(c->cap, sizeof(*c->ring));
    if (c->ring == NULL) {
        c->cap = 0;
        return CPAR_ENOMEM;
    }
    cpar_idtab_init(&c->tab, 1024); /* grows with use, up to 2 * cap slots */
    c->seed = cpar_idtab_seed((uint64_t)(uintptr_t)c);
    return CPAR_OK;
}

void
cpar__seqs_free(cpar__seqs *c)
{
    cpar_idtab_free(&c->tab);
    free(c->ring);
    memset(c, 0, sizeof(*c));
}

void
cpar__seqs_clear(cpar__seqs *c)
{
    for (size_t i = 0; i < c->n; i++) {
        cpar__seqent *e = cpar__seqs_at(c, i);
        if (e->live)
            cpar__seqs_unindex(c, e);
    }
    c->head = c->n = 0;
}

void
cpar__seqs_put(cpar__seqs *c, const uint8_t *id, int32_t engine, int64_t seq)
{
    uint64_t h;
    size_t s;
    cpar__seqent *e;
    if (c->cap == 0 || seq <= 0 || (c->n > 0 && seq <= cpar__seqs_at(c, c->n - 1)->seq))
        return;
    h = cpar__seqs_hash(c, id, engine);
    s = cpar__seqs_slot(c, h, id, engine);
    if (s != CPAR_IDTAB_END) /* the key's older record: this one replaces it */
        cpar__seqs_unindex(c, &c->ring[c->tab.slots[s].item - 1]);
    if (c->n == c->cap) { /* full: the oldest goes */
        e = cpar__seqs_at(c, 0);
        if (e->live)
            cpar__seqs_unindex(c, e);
        c->head = (c->head + 1) % c->cap;
        c->n--;
    }
    e = cpar__seqs_at(c, c->n);
    memcpy(e->id, id, CPAR_WIRE_ID_SIZE);
    e->engine = engine;
    e->seq = seq;
    e->live = cpar_idtab_put(&c->tab, h, (uintptr_t)(e - c->ring) + 1) == 0;
    c->n++;
}

int64_t
cpar__seqs_get(const cpar__seqs *c, const uint8_t *id, int32_t engine)
{
    size_t s;
    if (c->cap == 0 || c->tab.count == 0)
        return 0;
    s = cpar__seqs_slot(c, cpar__seqs_hash(c, id, engine), id, engine);
    return s == CPAR_IDTAB_END ? 0 : c->ring[c->tab.slots[s].item - 1].seq;
}

void
cpar__seqs_forget(cpar__seqs *c, int64_t seq)
{
    size_t lo = 0, hi = c->n; /* the first entry whose seq >= seq is in [lo, hi] */
    if (c->n == 0 || seq < cpar__seqs_at(c, 0)->seq || seq > cpar__seqs_at(c, c->n - 1)->seq)
        return;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cpar__seqs_at(c, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->n) {
        cpar__seqent *e = cpar__seqs_at(c, lo);
        if (e->seq == seq && e->live)
            cpar__seqs_unindex(c, e);
    }
}
