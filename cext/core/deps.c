/* Task dependencies for load-balanced tasks (deps.h).
 *
 * Records live in an open-addressing table keyed by the 16-byte task id (linear probing,
 * backward-shift deletion, so no tombstones). Ended ids also enter a ring of capacity
 * max_ended; when it is full the oldest is forgotten, unless its record has ended again
 * since (a sequence number tells). A waiting task is linked from every pending record it
 * names; when one of them ends the task is evaluated again. */
#include "deps.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

typedef struct cpar__waiter cpar__waiter;

typedef struct cpar__link {
    cpar__waiter *w;
    struct cpar__link *next;
} cpar__link;

typedef struct cpar__rec {
    uint8_t id[CPAR_DEPS_ID_SIZE];
    uint8_t used;
    uint8_t state;     /* enum cpar_task_state */
    int32_t engine;    /* where it ran, once ended */
    uint64_t seq;      /* ending sequence number, for the ring */
    cpar__link *links; /* waiters linked to this pending record */
} cpar__rec;

struct cpar__waiter {
    void *handle;
    uint8_t *ids; /* owned copy, n ids */
    size_t n;
    int all, success, failure;
    int settled; /* released or cancelled: links to it are stale */
    int outcome; /* CPAR_DEP_MET or CPAR_DEP_IMPOSSIBLE once settled by an ending */
    cpar__waiter *prev, *next;
};

typedef struct cpar__ring_entry {
    uint8_t id[CPAR_DEPS_ID_SIZE];
    uint64_t seq;
} cpar__ring_entry;

struct cpar_deps {
    cpar__rec *table;
    size_t cap, used;       /* table slots, occupied slots */
    size_t pending, ended;  /* records by state */
    cpar__ring_entry *ring; /* ended ids, oldest at head */
    size_t ring_cap, ring_head, ring_len;
    uint64_t seq;
    cpar__waiter *waiters; /* doubly linked list of waiting tasks */
    size_t nwaiting;
};

static uint64_t
cpar__deps_hash(const uint8_t *id)
{
    uint64_t h, lo;
    /* Both halves: ids from one client share their first 8 bytes (a random prefix) and
     * differ in the last 8 (a counter). */
    memcpy(&h, id, sizeof(h));
    memcpy(&lo, id + 8, sizeof(lo));
    h ^= lo * 0x9e3779b97f4a7c15u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

static cpar__rec *
cpar__deps_find(const cpar_deps *d, const uint8_t *id)
{
    size_t mask = d->cap - 1;
    for (size_t i = cpar__deps_hash(id) & mask;; i = (i + 1) & mask) {
        cpar__rec *r = &d->table[i];
        if (!r->used)
            return NULL;
        if (memcmp(r->id, id, CPAR_DEPS_ID_SIZE) == 0)
            return r;
    }
}

/* Slot for id: the existing record, or a fresh used one. Assumes room. */
static cpar__rec *
cpar__deps_slot(cpar_deps *d, const uint8_t *id)
{
    size_t mask = d->cap - 1;
    for (size_t i = cpar__deps_hash(id) & mask;; i = (i + 1) & mask) {
        cpar__rec *r = &d->table[i];
        if (!r->used) {
            memset(r, 0, sizeof(*r));
            memcpy(r->id, id, CPAR_DEPS_ID_SIZE);
            r->used = 1;
            r->engine = -1;
            d->used++;
            return r;
        }
        if (memcmp(r->id, id, CPAR_DEPS_ID_SIZE) == 0)
            return r;
    }
}

static int
cpar__deps_grow(cpar_deps *d)
{
    cpar__rec *old = d->table;
    size_t oldcap = d->cap, ncap = d->cap * 2;
    cpar__rec *nt = calloc(ncap, sizeof(*nt));
    if (nt == NULL)
        return CPAR_ENOMEM;
    d->table = nt;
    d->cap = ncap;
    d->used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].used)
            *cpar__deps_slot(d, old[i].id) = old[i];
    free(old);
    return CPAR_OK;
}

/* Removes a record (no links may remain), shifting followers back into the gap. */
static void
cpar__deps_delete(cpar_deps *d, cpar__rec *r)
{
    size_t mask = d->cap - 1;
    size_t gap = (size_t)(r - d->table);
    size_t i = gap;
    d->table[gap].used = 0;
    d->used--;
    for (;;) {
        size_t home;
        i = (i + 1) & mask;
        if (!d->table[i].used)
            return;
        home = cpar__deps_hash(d->table[i].id) & mask;
        /* Move it back if its home is not in (gap, i] cyclically. */
        if ((gap <= i) ? (home <= gap || home > i) : (home <= gap && home > i)) {
            d->table[gap] = d->table[i];
            d->table[i].used = 0;
            gap = i;
        }
    }
}

int
cpar_deps_new(size_t max_ended, cpar_deps **out)
{
    cpar_deps *d = NULL;

    *out = NULL;
    if (max_ended == 0)
        return CPAR_EINVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto error;
    d->cap = 64;
    d->table = calloc(d->cap, sizeof(*d->table));
    d->ring_cap = max_ended;
    d->ring = malloc(max_ended * sizeof(*d->ring));
    if (d->table == NULL || d->ring == NULL)
        goto error;
    *out = d;
    return CPAR_OK;
error:
    cpar_deps_free(d);
    return CPAR_ENOMEM;
}

static void
cpar__deps_free_links(cpar__link *l)
{
    while (l != NULL) {
        cpar__link *next = l->next;
        free(l);
        l = next;
    }
}

void
cpar_deps_free(cpar_deps *d)
{
    if (d == NULL)
        return;
    if (d->table != NULL)
        for (size_t i = 0; i < d->cap; i++)
            if (d->table[i].used)
                cpar__deps_free_links(d->table[i].links);
    while (d->waiters != NULL) {
        cpar__waiter *w = d->waiters;
        d->waiters = w->next;
        free(w->ids);
        free(w);
    }
    free(d->table);
    free(d->ring);
    free(d);
}

int
cpar_deps_submitted(cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE])
{
    cpar__rec *r = cpar__deps_find(d, id);
    int rc;
    if (r != NULL && r->state == CPAR_TASK_PENDING)
        return CPAR_EINVAL;
    if (r == NULL && (d->used + 1) * 2 > d->cap && (rc = cpar__deps_grow(d)) != 0)
        return rc;
    if (r != NULL) {
        d->ended--; /* a resubmission: the ring entry of its last ending goes stale */
        r->seq = 0;
    } else {
        r = cpar__deps_slot(d, id);
    }
    r->state = CPAR_TASK_PENDING;
    r->engine = -1;
    d->pending++;
    return CPAR_OK;
}

/* Evaluates a spec against the records: CPAR_DEP_* . */
static int
cpar__deps_eval(const cpar_deps *d, const uint8_t *ids, size_t n, int all, int success, int failure)
{
    size_t unresolved = 0, good = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const cpar__rec *r = cpar__deps_find(d, ids + i * CPAR_DEPS_ID_SIZE);
        if (r == NULL)
            bad++;
        else if (r->state == CPAR_TASK_PENDING)
            unresolved++;
        else if ((r->state == CPAR_TASK_SUCCEEDED && success) ||
                 (r->state == CPAR_TASK_FAILED && failure))
            good++;
        else
            bad++;
    }
    if (n == 0)
        return CPAR_DEP_MET;
    if (all)
        return bad ? CPAR_DEP_IMPOSSIBLE : unresolved ? CPAR_DEP_WAITING : CPAR_DEP_MET;
    return good ? CPAR_DEP_MET : unresolved ? CPAR_DEP_WAITING : CPAR_DEP_IMPOSSIBLE;
}

/* Unlinks w from every pending record it names and from the waiter list. */
static void
cpar__deps_detach(cpar_deps *d, cpar__waiter *w)
{
    for (size_t i = 0; i < w->n; i++) {
        cpar__rec *r = cpar__deps_find(d, w->ids + i * CPAR_DEPS_ID_SIZE);
        cpar__link **pl;
        if (r == NULL)
            continue;
        pl = &r->links;
        while (*pl != NULL) {
            if ((*pl)->w == w) {
                cpar__link *dead = *pl;
                *pl = dead->next;
                free(dead);
            } else {
                pl = &(*pl)->next;
            }
        }
    }
    w->settled = 1;
    if (w->prev)
        w->prev->next = w->next;
    else
        d->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    d->nwaiting--;
}

/* Forgets the oldest ended record when the ring is full; then records (id, seq). */
static void
cpar__deps_ring_push(cpar_deps *d, const uint8_t *id, uint64_t seq)
{
    cpar__ring_entry *e;
    if (d->ring_len == d->ring_cap) {
        cpar__ring_entry *old = &d->ring[d->ring_head];
        cpar__rec *r = cpar__deps_find(d, old->id);
        if (r != NULL && r->state != CPAR_TASK_PENDING && r->seq == old->seq) {
            cpar__deps_delete(d, r);
            d->ended--;
        }
        d->ring_head = (d->ring_head + 1) % d->ring_cap;
        d->ring_len--;
    }
    e = &d->ring[(d->ring_head + d->ring_len) % d->ring_cap];
    memcpy(e->id, id, CPAR_DEPS_ID_SIZE);
    e->seq = seq;
    d->ring_len++;
}

int
cpar_deps_ended(cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE], int32_t engine, int succeeded,
                cpar_deps_release_fn *fn, void *arg)
{
    cpar__rec *r = cpar__deps_find(d, id);
    cpar__link *links, *l;
    cpar__waiter *released = NULL;

    if (r == NULL || r->state != CPAR_TASK_PENDING)
        return CPAR_EINVAL;
    r->state = succeeded ? CPAR_TASK_SUCCEEDED : CPAR_TASK_FAILED;
    r->engine = engine;
    r->seq = ++d->seq;
    d->pending--;
    d->ended++;
    links = r->links;
    r->links = NULL;
    /* Settle first, call back after: callbacks then see consistent tables. */
    for (l = links; l != NULL; l = l->next) {
        cpar__waiter *w = l->w;
        int state;
        if (w->settled)
            continue; /* named this id twice, settled by the first link */
        state = cpar__deps_eval(d, w->ids, w->n, w->all, w->success, w->failure);
        if (state == CPAR_DEP_WAITING)
            continue;
        cpar__deps_detach(d, w);
        w->outcome = state;
        w->next = released;
        released = w;
    }
    cpar__deps_free_links(links);
    /* r may have moved if a callback grows the table: finish with it before calling. */
    cpar__deps_ring_push(d, id, d->seq);
    while (released != NULL) {
        cpar__waiter *w = released;
        released = w->next;
        if (fn != NULL)
            fn(arg, w->handle, w->outcome);
        free(w->ids);
        free(w);
    }
    return CPAR_OK;
}

int
cpar_deps_wait(cpar_deps *d, void *handle, const cpar_dep_spec *spec, int *state)
{
    cpar__waiter *w = NULL;
    size_t bytes = spec->n * CPAR_DEPS_ID_SIZE;

    *state = cpar__deps_eval(d, spec->ids, spec->n, spec->all, spec->success, spec->failure);
    if (*state != CPAR_DEP_WAITING)
        return CPAR_OK;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        goto error;
    w->ids = malloc(bytes);
    if (w->ids == NULL)
        goto error;
    memcpy(w->ids, spec->ids, bytes);
    w->handle = handle;
    w->n = spec->n;
    w->all = spec->all;
    w->success = spec->success;
    w->failure = spec->failure;
    for (size_t i = 0; i < w->n; i++) {
        cpar__rec *r = cpar__deps_find(d, w->ids + i * CPAR_DEPS_ID_SIZE);
        cpar__link *l;
        if (r == NULL || r->state != CPAR_TASK_PENDING)
            continue;
        l = malloc(sizeof(*l));
        if (l == NULL) {
            /* Undo the links made so far. */
            w->next = d->waiters;
            w->prev = NULL;
            if (d->waiters)
                d->waiters->prev = w;
            d->waiters = w;
            d->nwaiting++;
            cpar__deps_detach(d, w);
            goto error;
        }
        l->w = w;
        l->next = r->links;
        r->links = l;
    }
    w->next = d->waiters;
    if (d->waiters)
        d->waiters->prev = w;
    d->waiters = w;
    d->nwaiting++;
    return CPAR_OK;
error:
    if (w != NULL)
        free(w->ids);
    free(w);
    return CPAR_ENOMEM;
}

int
cpar_deps_cancel(cpar_deps *d, void *handle)
{
    for (cpar__waiter *w = d->waiters; w != NULL; w = w->next)
        if (w->handle == handle) {
            cpar__deps_detach(d, w);
            free(w->ids);
            free(w);
            return CPAR_OK;
        }
    return CPAR_EINVAL;
}

int
cpar_deps_state(const cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE], int32_t *engine)
{
    const cpar__rec *r = cpar__deps_find(d, id);
    if (engine != NULL)
        *engine = r != NULL ? r->engine : -1;
    return r != NULL ? r->state : CPAR_TASK_UNKNOWN;
}

size_t
cpar_deps_pending_count(const cpar_deps *d)
{
    return d->pending;
}

size_t
cpar_deps_ended_count(const cpar_deps *d)
{
    return d->ended;
}

size_t
cpar_deps_waiting_count(const cpar_deps *d)
{
    return d->nwaiting;
}
