/* Coalesced replies (docs/protocol.md, "Coalesced replies"): an EXECUTE/APPLY sent with
 * the COALESCE flag is answered by ONE REPLY (flag COALESCE) carrying every target's own
 * REPLY (or ERROR, for an engine that died), unchanged and still signed by its maker.
 *
 * What is held is bounded: at most `max_requests` requests coalesce at once (later ones
 * are answered reply by reply, as without the flag), and at most `max_bytes` of replies
 * are held in all; a reply that would pass that bound, or make the combined message
 * longer than CPAR_WIRE_MAX_FRAMES frames, ends the request's coalescing: what was held
 * goes to the client at once, one message per engine, and so does everything after.
 * The client handles both forms alike.
 *
 * Called down into by controller_engines.c (replies, engine death) and
 * controller_clients.c (requests, and a lost client's entries at its safe point); calls
 * only outbound.c (cpar__ctlcoal_*).
 *
 * Ownership and threads: the controller's loop thread only (controller_int.h). No Python,
 * no GIL. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_int.h"
#include "outbound.h"
#include "errors.h"
#include "idmap.h"

#define CPAR__COAL_KEY 20 /* u32 client slot + 16-byte msg id */
#define CPAR__COAL_DEFAULT_BYTES (256ull << 20)
#define CPAR__COAL_DEFAULT_REQUESTS 65536

typedef struct cpar__coal_part {
    int32_t engine; /* parts are sorted by engine id */
    int held;       /* msg holds this engine's REPLY or ERROR */
    cpar_msg msg;
} cpar__coal_part;

typedef struct cpar__coal {
    int used;
    uint32_t client;
    uint8_t msg_id[CPAR_WIRE_ID_SIZE];
    uint32_t n, left; /* targets; of which not answered yet */
    cpar__coal_part *parts;
    size_t frames;  /* payload frames the combined message would have now */
    uint64_t bytes; /* bytes held */
    uint32_t next_free;
} cpar__coal;

struct cpar__coalesce {
    cpar__coal *ents;
    uint32_t cap, nused, free_head;
    cpar_idmap index; /* key -> entry index */
    uint64_t held_bytes, max_bytes;
    uint32_t max_requests;
    uint64_t flushed; /* requests whose coalescing ended early (bound reached) */
};

static uint64_t
cpar__env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    char *end = NULL;
    unsigned long long x;
    if (v == NULL || *v == '\0')
        return dflt;
    x = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || x == 0)
        return dflt;
    return (uint64_t)x;
}

int
cpar__ctlcoal_new(cpar_controller *c)
{
    struct cpar__coalesce *k = calloc(1, sizeof(*k));
    uint64_t req;
    if (k == NULL)
        return CPAR_ENOMEM;
    cpar_idmap_init(&k->index);
    k->free_head = UINT32_MAX;
    k->max_bytes = cpar__env_u64("CPAR_COALESCE_MAX_BYTES", CPAR__COAL_DEFAULT_BYTES);
    req = cpar__env_u64("CPAR_COALESCE_MAX_REQUESTS", CPAR__COAL_DEFAULT_REQUESTS);
    k->max_requests = req > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)req;
    c->coal = k;
    return CPAR_OK;
}

static void
cpar__key(uint8_t key[CPAR__COAL_KEY], uint32_t slot, const uint8_t *msg_id)
{
    for (int b = 0; b < 4; b++)
        key[b] = (uint8_t)(slot >> (8 * b));
    memcpy(key + 4, msg_id, CPAR_WIRE_ID_SIZE);
}

/* Forgets entry i: frees what it holds (held shared-memory replies are released on the
 * client's behalf when `release`). */
static void
cpar__drop(cpar_controller *c, uint32_t i, int release)
{
    struct cpar__coalesce *k = c->coal;
    cpar__coal *e = &k->ents[i];
    uint8_t key[CPAR__COAL_KEY];
    for (uint32_t p = 0; p < e->n; p++) {
        if (e->parts[p].held && release && e->parts[p].msg.h.type == CPAR_MSG_REPLY)
            cpar__ctlout_release_for_lost(c, e->parts[p].engine, &e->parts[p].msg);
        cpar_msg_close(&e->parts[p].msg);
    }
    free(e->parts);
    cpar__key(key, e->client, e->msg_id);
    cpar_idmap_del(&k->index, key, sizeof(key));
    k->held_bytes -= e->bytes;
    memset(e, 0, sizeof(*e));
    e->next_free = k->free_head;
    k->free_head = i;
    k->nused--;
}

void
cpar__ctlcoal_free(cpar_controller *c)
{
    struct cpar__coalesce *k = c->coal;
    if (k == NULL)
        return;
    for (uint32_t i = 0; i < k->cap; i++)
        if (k->ents[i].used)
            cpar__drop(c, i, 0);
    free(k->ents);
    cpar_idmap_free(&k->index);
    free(k);
    c->coal = NULL;
}

static int
cpar__cmp_part(const void *a, const void *b)
{
    int32_t x = ((const cpar__coal_part *)a)->engine, y = ((const cpar__coal_part *)b)->engine;
    return (x > y) - (x < y);
}

void
cpar__ctlcoal_open(cpar_controller *c, uint32_t slot, const cpar_msg *req, int n)
{
    struct cpar__coalesce *k = c->coal;
    uint8_t key[CPAR__COAL_KEY];
    cpar__coal *e;
    uint32_t i;

    if (k == NULL || n < 1 || k->nused >= k->max_requests)
        return; /* answered reply by reply */
    if (k->free_head == UINT32_MAX) {
        uint32_t ncap = k->cap ? k->cap * 2 : 16;
        cpar__coal *ne = realloc(k->ents, (size_t)ncap * sizeof(*ne));
        if (ne == NULL)
            return;
        memset(ne + k->cap, 0, (size_t)(ncap - k->cap) * sizeof(*ne));
        for (uint32_t j = ncap; j-- > k->cap;) {
            ne[j].next_free = k->free_head;
            k->free_head = j;
        }
        k->ents = ne;
        k->cap = ncap;
    }
    i = k->free_head;
    e = &k->ents[i];
    e->parts = calloc((size_t)n, sizeof(*e->parts));
    if (e->parts == NULL)
        return;
    for (int t = 0; t < n; t++)
        e->parts[t].engine = cpar_wire_target_at(req, (size_t)t);
    qsort(e->parts, (size_t)n, sizeof(*e->parts), cpar__cmp_part);
    cpar__key(key, slot, req->h.msg_id);
    if (cpar_idmap_put(&k->index, key, sizeof(key), (int32_t)i) != 0) {
        free(e->parts);
        e->parts = NULL;
        return;
    }
    k->free_head = e->next_free;
    e->used = 1;
    e->client = slot;
    memcpy(e->msg_id, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    e->n = e->left = (uint32_t)n;
    e->frames = 1; /* the index */
    e->bytes = 0;
    k->nused++;
}

static cpar__coal *
cpar__find(cpar_controller *c, uint32_t slot, const uint8_t *msg_id, uint32_t *idx)
{
    struct cpar__coalesce *k = c->coal;
    uint8_t key[CPAR__COAL_KEY];
    int32_t v;
    if (k == NULL || k->nused == 0)
        return NULL;
    cpar__key(key, slot, msg_id);
    if (!cpar_idmap_get(&k->index, key, sizeof(key), &v))
        return NULL;
    *idx = (uint32_t)v;
    return &k->ents[v];
}

static cpar__coal_part *
cpar__part(cpar__coal *e, int32_t engine)
{
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->parts[mid].engine == engine)
            return &e->parts[mid];
        if (e->parts[mid].engine < engine)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Sends every held part to the client one by one (unchanged) and forgets the entry: its
 * later replies are routed as without COALESCE. */
static void
cpar__flush(cpar_controller *c, uint32_t i, const char *why)
{
    cpar__coal *e = &c->coal->ents[i];
    cpar_reg_client *cl = cpar_registry_client_at(&c->reg, e->client);
    uint32_t slot = e->client;
    c->coal->flushed++;
    if (cpar_log_ratelimit(c->coal->flushed))
        cpar_log_write(&c->log,
                       "coalescing ended early for a request of client %u (%s): its replies "
                       "go one by one (%llu so far)",
                       (unsigned)slot, why, (unsigned long long)c->coal->flushed);
    for (uint32_t p = 0; cl != NULL && p < e->n; p++) {
        if (!e->parts[p].held)
            continue;
        cpar__ctlout_note_pinned(c, slot, &e->parts[p].msg);
        if (cpar_wire_forward(c->csock, cl->ident, cl->identlen, &e->parts[p].msg, 0) != 0 &&
            cpar__ctlout_send_failed(c, zmq_errno())) {
            c->cnt.client_gone++;
            cpar__drop(c, i, 1);
            cpar__ctlout_client_lost(c, slot);
            return;
        }
        e->parts[p].held = 0;
    }
    cpar__drop(c, i, 1);
}

/* All parts are in: sends the combined REPLY and forgets the entry. */
static void
cpar__complete(cpar_controller *c, uint32_t i)
{
    cpar__coal *e = &c->coal->ents[i];
    uint32_t slot = e->client;
    uint8_t *index = malloc(4 + 4 * (size_t)e->n);
    uint8_t msg_id[CPAR_WIRE_ID_SIZE];
    cpar_msg out;
    int rc = 0;

    memcpy(msg_id, e->msg_id, CPAR_WIRE_ID_SIZE);

    if (index == NULL) {
        cpar__flush(c, i, "out of memory");
        return;
    }
    for (int b = 0; b < 4; b++)
        index[b] = (uint8_t)(e->n >> (8 * b));
    for (uint32_t p = 0; p < e->n; p++) {
        uint32_t nf = (uint32_t)e->parts[p].msg.nframes;
        for (int b = 0; b < 4; b++)
            index[4 + 4 * p + (uint32_t)b] = (uint8_t)(nf >> (8 * b));
    }
    cpar__ctlout_msg_new(c, &out, CPAR_MSG_REPLY);
    out.h.flags = CPAR_FLAG_COALESCE;
    memcpy(out.h.parent, e->msg_id, CPAR_WIRE_ID_SIZE);
    rc = cpar_msg_add_copy(&out, index, 4 + 4 * (size_t)e->n);
    free(index);
    for (uint32_t p = 0; rc == 0 && p < e->n; p++) {
        cpar_msg *m = &e->parts[p].msg;
        cpar__ctlout_note_pinned(c, slot, m);
        rc = cpar_msg_add_copy(&out, m->raw, CPAR_WIRE_HEADER_SIZE);
        for (size_t f = 0; rc == 0 && f < m->nframes; f++)
            rc = cpar_msg_add_move(&out, &m->frames[f]);
    }
    if (rc != 0) {
        /* Out of memory midway: the moved frames are out's now; the parts are gone. */
        cpar_msg_close(&out);
        cpar__drop(c, i, 1);
        cpar__ctlout_error(c, (int32_t)slot, msg_id, CPAR_ENOMEM,
                           "controller out of memory combining a coalesced reply");
        return;
    }
    cpar__drop(c, i, 0);
    cpar__ctlout_send_client(c, slot, &out);
}

/* Takes *m (its frames move) into entry i's part for engine; sends the whole when it was
 * the last. Returns 1, or 0 when m is not for this entry (no such target, or answered). */
static int
cpar__take(cpar_controller *c, uint32_t i, int32_t engine, cpar_msg *m)
{
    struct cpar__coalesce *k = c->coal;
    cpar__coal *e = &k->ents[i];
    cpar__coal_part *p = cpar__part(e, engine);
    uint64_t bytes = CPAR_WIRE_HEADER_SIZE;
    if (p == NULL || p->held || !m->has_raw)
        return 0;
    for (size_t f = 0; f < m->nframes; f++)
        bytes += zmq_msg_size(&m->frames[f]);
    p->msg = *m;
    p->held = 1;
    cpar_msg_init(m, m->h.type); /* its frames are p's now */
    m->h = p->msg.h;
    e->left--;
    e->bytes += bytes;
    e->frames += 1 + p->msg.nframes;
    k->held_bytes += bytes;
    if (e->left == 0 && e->frames <= CPAR_WIRE_MAX_FRAMES) {
        cpar__complete(c, i);
        return 1;
    }
    if (e->frames > CPAR_WIRE_MAX_FRAMES)
        cpar__flush(c, i, "too many frames for one message");
    else if (k->held_bytes > k->max_bytes)
        cpar__flush(c, i, "CPAR_COALESCE_MAX_BYTES reached");
    return 1;
}

int
cpar__ctlcoal_reply(cpar_controller *c, uint32_t slot, int32_t engine, cpar_msg *m)
{
    uint32_t i;
    if (cpar__find(c, slot, m->h.parent, &i) == NULL)
        return 0;
    if (cpar_registry_client_at(&c->reg, slot) == NULL) {
        /* The client was lost since its last message (its entries go at the next safe
         * point): routed as any reply for a gone client, shared memory released. */
        cpar__drop(c, i, 1);
        return 0;
    }
    return cpar__take(c, i, engine, m);
}

void
cpar__ctlcoal_part_error(cpar_controller *c, uint32_t slot, const uint8_t *parent, int32_t engine,
                         int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    cpar_msg m;
    uint32_t i;
    size_t n;

    va_start(ap, fmt);
    n = cpar__ctlout_vformat(text, sizeof(text), fmt, ap);
    va_end(ap);
    cpar_taskdb_error(c->db, parent, engine, code, text, n);
    if (cpar__find(c, slot, parent, &i) != NULL &&
        cpar__ctlout_error_msg(c, &m, parent, engine, code, text, n) == 0) {
        if (cpar_wire_seal(c->signer, &m) == 0 && cpar__take(c, i, engine, &m)) {
            cpar_msg_close(&m);
            return;
        }
        cpar_msg_close(&m);
    }
    cpar__ctlout_error_about(c, (int32_t)slot, parent, engine, code, "%.*s", (int)n, text);
}

void
cpar__ctlcoal_client_lost(cpar_controller *c, uint32_t slot)
{
    struct cpar__coalesce *k = c->coal;
    if (k == NULL || k->nused == 0)
        return;
    for (uint32_t i = 0; i < k->cap; i++)
        if (k->ents[i].used && k->ents[i].client == slot)
            cpar__drop(c, i, 1);
}
