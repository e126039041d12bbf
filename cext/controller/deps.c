/* Task dependencies for load-balanced tasks (deps.h).
 *
 * Records are indexed by a cpar_idtab (idtab.h) on the keyed hash of their 16-byte task
 * id; a forgotten record goes to a spare list and is reused, so once the table has grown a
 * submission allocates nothing. Records come in blocks mapped straight from the kernel,
 * never from malloc's heap: ended records live long (up to max_ended of them), and
 * scattered among a burst's short-lived allocations they would pin the heap's pages, so
 * the controller could not return the memory of a 100,000-task map once it drained (its
 * RSS after such a map went from 46 MB to 104 MB when records were malloc'ed one by one).
 * Ended ids also enter a ring of capacity
 * max_ended; when it is full the oldest is forgotten, unless its record has ended again
 * since (a sequence number tells). A waiting task is linked from every pending record it
 * names; when one of them ends the task is evaluated again. */
#include "deps.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "errors.h"
#include "idtab.h"

typedef struct cpar__waiter cpar__waiter;

typedef struct cpar__link {
    cpar__waiter *w;
    struct cpar__link *next;
} cpar__link;

typedef struct cpar__rec {
    uint8_t id[CPAR_DEPS_ID_SIZE];
    uint8_t state;           /* enum cpar_task_state */
    int32_t engine;          /* where it ran, once ended */
    uint64_t seq;            /* ending sequence number, for the ring */
    cpar__link *links;       /* waiters linked to this pending record */
    struct cpar__rec *spare; /* next on the spare list, while forgotten */
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

/* Records per block: a block is about 384 KiB. */
#define CPAR__REC_BLOCK 8192

typedef struct cpar__recblock {
    struct cpar__recblock *next; /* the blocks of one cpar_deps */
    size_t bytes;                /* its mapping's length */
    cpar__rec recs[];            /* CPAR__REC_BLOCK records */
} cpar__recblock;

typedef struct cpar__ring_entry {
    uint8_t id[CPAR_DEPS_ID_SIZE];
    uint64_t seq;
} cpar__ring_entry;

struct cpar_deps {
    uint64_t key[2];        /* SipHash key of the table, random per table (cpar_deps_new) */
    cpar_idtab table;       /* items: cpar__rec * */
    cpar__rec *spare;       /* forgotten or never-used records, for reuse */
    cpar__recblock *blocks; /* where every record lives, owned (munmap) */
    size_t pending, ended;  /* records by state */
    cpar__ring_entry *ring; /* ended ids, oldest at head */
    size_t ring_cap, ring_head, ring_len;
    uint64_t seq;
    cpar__waiter *waiters; /* doubly linked list of waiting tasks */
    size_t nwaiting;
};

#define CPAR__ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
cpar__sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = CPAR__ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = CPAR__ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = CPAR__ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = CPAR__ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = CPAR__ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = CPAR__ROTL(v[2], 32);
}

static uint64_t
cpar__le64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

uint64_t
cpar_deps_hash_id(const uint64_t key[2], const uint8_t id[CPAR_DEPS_ID_SIZE])
{
    /* SipHash-2-4 of the 16 bytes (two message words, then the length block). */
    uint64_t v[4] = {key[0] ^ 0x736f6d6570736575u, key[1] ^ 0x646f72616e646f6du,
                     key[0] ^ 0x6c7967656e657261u, key[1] ^ 0x7465646279746573u};
    uint64_t words[3] = {cpar__le64(id), cpar__le64(id + 8), (uint64_t)CPAR_DEPS_ID_SIZE << 56};
    for (int w = 0; w < 3; w++) {
        v[3] ^= words[w];
        cpar__sip_round(v);
        cpar__sip_round(v);
        v[0] ^= words[w];
    }
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        cpar__sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Keyed: task ids are chosen by clients, so with a fixed hash a client could pick ids
 * that all land in one chain and make every lookup walk it. */
static uint64_t
cpar__deps_hash(const cpar_deps *d, const uint8_t *id)
{
    return cpar_deps_hash_id(d->key, id);
}

uint64_t
cpar_deps_hash(const cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE])
{
    return cpar__deps_hash(d, id);
}

size_t
cpar_deps_max_probe(const cpar_deps *d)
{
    return cpar_idtab_max_probe(&d->table);
}

int
cpar_deps_random_key(uint64_t key[2])
{
    uint8_t buf[16];
    size_t got = 0;
    while (got < sizeof(buf)) {
        ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return CPAR_EIO;
        got += (size_t)n;
    }
    key[0] = cpar__le64(buf);
    key[1] = cpar__le64(buf + 8);
    return CPAR_OK;
}

static cpar__rec *
cpar__deps_find(const cpar_deps *d, const uint8_t *id)
{
    return cpar_idtab_find_key(&d->table, cpar__deps_hash(d, id), id, CPAR_DEPS_ID_SIZE,
                               offsetof(cpar__rec, id));
}

/* Maps one more block of records onto the spare list: 0 or CPAR_ENOMEM. */
static int
cpar__deps_grow(cpar_deps *d)
{
    size_t bytes = sizeof(cpar__recblock) + CPAR__REC_BLOCK * sizeof(cpar__rec);
    cpar__recblock *b =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return CPAR_ENOMEM;
    b->bytes = bytes;
    b->next = d->blocks;
    d->blocks = b;
    for (size_t i = CPAR__REC_BLOCK; i-- > 0;) {
        b->recs[i].spare = d->spare;
        d->spare = &b->recs[i];
    }
    return CPAR_OK;
}

/* A new record for id (absent), from the spare list (grown by a block when empty). */
static int
cpar__deps_add(cpar_deps *d, const uint8_t *id, cpar__rec **out)
{
    cpar__rec *r;
    if (d->spare == NULL && cpar__deps_grow(d) != 0)
        return CPAR_ENOMEM;
    r = d->spare;
    d->spare = r->spare;
    memset(r, 0, sizeof(*r));
    memcpy(r->id, id, CPAR_DEPS_ID_SIZE);
    r->engine = -1;
    if (cpar_idtab_put(&d->table, cpar__deps_hash(d, id), (uintptr_t)r) != 0) {
        r->spare = d->spare;
        d->spare = r;
        return CPAR_ENOMEM;
    }
    *out = r;
    return CPAR_OK;
}

/* Forgets a record (no links may remain): it goes to the spare list. */
static void
cpar__deps_delete(cpar_deps *d, cpar__rec *r)
{
    cpar_idtab_remove(&d->table, cpar__deps_hash(d, r->id), (uintptr_t)r);
    r->spare = d->spare;
    d->spare = r;
}

int
cpar_deps_new(size_t max_ended, cpar_deps **out)
{
    uint64_t key[2];
    *out = NULL;
    if (cpar_deps_random_key(key) != 0)
        return CPAR_EIO;
    return cpar_deps_new_keyed(max_ended, key, out);
}

int
cpar_deps_new_keyed(size_t max_ended, const uint64_t key[2], cpar_deps **out)
{
    cpar_deps *d = NULL;

    *out = NULL;
    if (max_ended == 0)
        return CPAR_EINVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto error;
    d->key[0] = key[0];
    d->key[1] = key[1];
    cpar_idtab_init(&d->table, 64);
    d->ring_cap = max_ended;
    d->ring = malloc(max_ended * sizeof(*d->ring));
    if (d->ring == NULL)
        goto error;
    *out = d;
    return CPAR_OK;
error:
    cpar_deps_free(d);
    return CPAR_ENOMEM;
}

void
cpar_deps_free(cpar_deps *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->table.nslots; i++) {
        cpar__rec *r = (cpar__rec *)d->table.slots[i].item;
        if (r == NULL)
            continue;
        while (r->links != NULL) {
            cpar__link *l = r->links;
            r->links = l->next;
            free(l);
        }
    }
    while (d->blocks != NULL) {
        cpar__recblock *b = d->blocks;
        d->blocks = b->next;
        munmap(b, b->bytes);
    }
    while (d->waiters != NULL) {
        cpar__waiter *w = d->waiters;
        d->waiters = w->next;
        free(w->ids);
        free(w);
    }
    cpar_idtab_free(&d->table);
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
    if (r != NULL) {
        d->ended--; /* a resubmission: the ring entry of its last ending goes stale */
        r->seq = 0;
    } else if ((rc = cpar__deps_add(d, id, &r)) != 0) {
        return rc;
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
    /* Settle first, call back after: callbacks then see consistent tables. The links are
     * off the record, so detaching a waiter never walks them: each is freed as it is read. */
    while ((l = links) != NULL) {
        cpar__waiter *w = l->w;
        int state;
        links = l->next;
        free(l);
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
    /* r may be forgotten once callbacks run: finish with it before calling. */
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
