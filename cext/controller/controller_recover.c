/* Recovery from a dead controller, the controller's side (docs/recovery.md): entering what
 * the task database held pending when run() starts, the grace period in which the old
 * engines re-register (their REGISTER is handled in controller_engines.c), and RECLAIM,
 * by which a client takes over work whose client is gone. Called by the loop
 * (controller.c) and controller_clients.c; calls the engine and task layers below.
 *
 * Recovered work belongs to a client slot made dead at once: as a gone client's, its
 * replies are recorded in the database and not forwarded, until a RECLAIM moves it.
 *
 * Ownership and threads: the controller's loop thread only. No Python, no GIL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "controller_int.h"
#include "errors.h"
#include "outbound.h"

/* The identity of the dead client slot that owns recovered work (no peer can have it: a
 * ROUTER identity a peer sets cannot start with a zero byte). */
static const char cpar__recovered_ident[] = "\0cpar-recovered";

/* Marks the engines expected back; automatic ids start above the highest ever recorded. */
static int
cpar__expect(cpar_controller *c, const cpar_taskdb_recovery *r)
{
    size_t n = r->max_engine >= 0 ? (size_t)r->max_engine + 1 : 0;
    if (n > 0) {
        c->expected = calloc(n, 1);
        if (c->expected == NULL)
            return CPAR_ENOMEM;
        c->nexpected_slots = n;
    }
    for (size_t i = 0; i < r->nengines; i++) {
        int32_t id = r->engines[i];
        if (id >= 0 && (size_t)id < n && id < CPAR_ENGINE_ID_LIMIT && !c->expected[id]) {
            c->expected[id] = 1;
            c->nexpected++;
        }
    }
    if (r->max_engine >= 0 && c->reg.next_id <= r->max_engine)
        c->reg.next_id = r->max_engine + 1;
    return CPAR_OK;
}

void
cpar__ctlrec_start(cpar_controller *c)
{
    cpar_taskdb_recovery *r = c->recovery;
    size_t queued = 0, on_engines = 0, parts = 0;
    int32_t slot;

    if (r == NULL)
        return;
    c->recovery = NULL;
    slot = cpar_registry_client(&c->reg, cpar__recovered_ident, sizeof(cpar__recovered_ident) - 1);
    if (slot < 0 || cpar__expect(c, r) != 0) {
        cpar_log_write(&c->log, "recovery failed: out of memory");
        cpar_taskdb_recovery_free(r);
        return;
    }
    cpar_registry_client_remove(&c->reg, (uint32_t)slot); /* no client: as a gone one's */
    for (size_t i = 0; i < r->nended; i++)
        cpar__ctltask_recovered_ended(c, r->ended[i].id, r->ended[i].engine, r->ended[i].ok);
    for (size_t i = 0; i < r->ntasks; i++) {
        cpar_msg *m = &r->tasks[i].msg;
        int32_t engine = r->tasks[i].engine;
        /* Sent to an engine that is not expected back (it was gone): queued again. */
        if (engine >= 0 && ((size_t)engine >= c->nexpected_slots || !c->expected[engine]))
            engine = CPAR_NO_ENGINE;
        m->h.t0 = cpar_now_ns();
        if (cpar_wire_seal(c->signer, m) != 0)
            continue;
        cpar__ctltask_recovered(c, slot, m, engine);
        if (engine >= 0)
            on_engines++;
        else
            queued++;
    }
    for (size_t i = 0; i < r->nparts; i++) {
        const cpar_taskdb_rpart *p = &r->parts[i];
        if (p->engine >= 0 && (size_t)p->engine < c->nexpected_slots && c->expected[p->engine] &&
            cpar_route_insert(&c->route, p->id, p->engine, (uint32_t)slot) == 0) {
            parts++;
            continue;
        }
        cpar__ctlcoal_part_error(c, (uint32_t)slot, p->id, p->engine, CPAR_EENGINEDEAD,
                                 "engine %d lost this request when the controller died",
                                 (int)p->engine);
    }
    c->grace_active = 1;
    c->grace_deadline_ms = cpar__ctlout_mono_ms() + (uint64_t)c->recover_grace_ms;
    cpar_log_write(&c->log,
                   "recovered from %s: %zu tasks (%zu queued, %zu on engines), %zu direct parts, "
                   "%zu engines expected back within %.1f s (%lld task(s) not recovered: their "
                   "request was not kept)",
                   c->db_path ? c->db_path : "the task database", queued + on_engines, queued,
                   on_engines, parts, c->nexpected, (double)c->recover_grace_ms / 1000.0,
                   (long long)r->not_kept);
    cpar_taskdb_recovery_free(r);
}

void
cpar__ctlrec_tick(cpar_controller *c, uint64_t now)
{
    size_t gone = 0;
    if (!c->grace_active || now < c->grace_deadline_ms)
        return;
    c->grace_active = 0;
    for (size_t id = 0; id < c->nexpected_slots && c->nexpected > 0; id++)
        if (c->expected[id]) {
            cpar__ctleng_not_back(c, (int32_t)id);
            gone++;
        }
    cpar_log_write(&c->log,
                   "recovery grace period over: %llu engine(s) came back, %zu did not (declared "
                   "gone)",
                   (unsigned long long)c->engines_back, gone);
}

/* ---- RECLAIM ------------------------------------------------------------------------ */

typedef struct cpar__reclaim {
    cpar_controller *c;
    const uint8_t *prefixes; /* n 8-byte prefixes */
    size_t n;
    uint32_t slot;   /* the client taking over */
    size_t moved;    /* route entries moved (direct parts) */
    uint8_t *wanted; /* sorted copies of frame 1's ids, with found flags */
    uint8_t *found;
    size_t nwanted;
} cpar__reclaim;

static int
cpar__cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, CPAR_WIRE_ID_SIZE);
}

static void
cpar__reclaim_entry(void *arg, cpar_route_entry *ent)
{
    cpar__reclaim *k = arg;
    const uint8_t *hit;
    if (ent->client != k->slot && cpar_registry_client_at(&k->c->reg, ent->client) == NULL)
        for (size_t i = 0; i < k->n; i++)
            if (memcmp(ent->msg_id, k->prefixes + 8 * i, 8) == 0) {
                ent->client = k->slot;
                k->moved++;
                break;
            }
    if (ent->client != k->slot || k->nwanted == 0)
        return;
    hit = bsearch(ent->msg_id, k->wanted, k->nwanted, CPAR_WIRE_ID_SIZE, cpar__cmp_id);
    if (hit != NULL)
        k->found[(size_t)(hit - k->wanted) / CPAR_WIRE_ID_SIZE] = 1;
}

void
cpar__ctlrec_on_reclaim(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    size_t len0 = m->nframes > 0 ? zmq_msg_size(&m->frames[0]) : 0;
    size_t len1 = m->nframes > 1 ? zmq_msg_size(&m->frames[1]) : 0;
    cpar__reclaim k = {.c = c, .slot = (uint32_t)slot};
    size_t tasks = 0, listed = 0;
    const uint8_t *ids = len1 ? zmq_msg_data(&m->frames[1]) : NULL;
    uint8_t *out = NULL;
    cpar_msg r;

    if (m->nframes < 1 || m->nframes > 2 || len0 == 0 || len0 % 8 != 0 || len1 % 16 != 0) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EPROTO, "malformed RECLAIM: %s",
                           m->nframes < 1 || len0 == 0 ? "frame 0 must hold one or more 8-byte "
                                                         "client id prefixes (it is missing or "
                                                         "empty)"
                           : m->nframes > 2            ? "it has more than 2 frames"
                           : len0 % 8 != 0 ? "frame 0's size is not a multiple of 8 (8-byte "
                                             "client id prefixes)"
                                           : "frame 1's size is not a multiple of 16 (16-byte "
                                             "request ids)");
        return;
    }
    cpar__ctlout_msg_new(c, &r, CPAR_MSG_RECLAIM_REPLY);
    memcpy(r.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    if (c->db != NULL) {
        k.prefixes = zmq_msg_data(&m->frames[0]);
        k.n = len0 / 8;
        k.nwanted = len1 / CPAR_WIRE_ID_SIZE;
        if (k.nwanted > 0) {
            k.wanted = malloc(len1);
            k.found = calloc(k.nwanted, 1);
            out = malloc(len1);
            if (k.wanted == NULL || k.found == NULL || out == NULL) {
                cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ENOMEM, "controller out of memory");
                cpar_msg_close(&r);
                goto error;
            }
            memcpy(k.wanted, ids, len1);
            qsort(k.wanted, k.nwanted, CPAR_WIRE_ID_SIZE, cpar__cmp_id);
        }
        tasks = cpar__ctltask_reclaim(c, k.prefixes, k.n, (uint32_t)slot);
        cpar_route_visit(&c->route, cpar__reclaim_entry, &k);
        /* In frame 1's order: those pending here for this client now. */
        for (size_t i = 0; i < k.nwanted; i++) {
            const uint8_t *id = ids + i * CPAR_WIRE_ID_SIZE;
            const uint8_t *hit = bsearch(id, k.wanted, k.nwanted, CPAR_WIRE_ID_SIZE, cpar__cmp_id);
            int pending = (hit != NULL && k.found[(size_t)(hit - k.wanted) / CPAR_WIRE_ID_SIZE]) ||
                          cpar__ctltask_pending_for(c, id, (uint32_t)slot);
            if (pending)
                memcpy(out + CPAR_WIRE_ID_SIZE * listed++, id, CPAR_WIRE_ID_SIZE);
        }
        cpar_log_write(
            &c->log,
            "RECLAIM from client %d: %zu task(s), and %zu request(s) on engines, moved to it; "
            "%zu of the %zu id(s) it waits on are pending here",
            (int)slot, tasks, k.moved, listed, k.nwanted);
    }
    if (cpar_msg_add_copy(&r, out != NULL ? out : (const uint8_t *)"",
                          listed * CPAR_WIRE_ID_SIZE) == 0)
        cpar__ctlout_send_client(c, (uint32_t)slot, &r);
    else
        cpar_msg_close(&r);
error:
    free(k.wanted);
    free(k.found);
    free(out);
}
