/* The controller's outbound layer (outbound.h): message building, sends to clients and
 * engines, the ERROR helper, and noting a lost client. Below every handler; calls only the
 * tables and core. The controller's loop thread only; no Python, no GIL. */
#include "outbound.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "errors.h"
#include "sock.h"
#include "vec.h"

uint64_t
cpar__ctlout_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
cpar__ctlout_msg_new(cpar_controller *c, cpar_msg *m, int type)
{
    cpar_msg_init(m, type);
    cpar_ids_next(&c->ids, m->h.msg_id);
    m->h.t0 = cpar_now_ns();
}

int
cpar__ctlout_send_failed(cpar_controller *c, int err)
{
    if (err == EHOSTUNREACH)
        return 1;
    c->cnt.send_failed++;
    if (cpar_log_ratelimit(c->cnt.send_failed))
        cpar_log_write(&c->log, "send failed: %s (%llu so far)", zmq_strerror(err),
                       (unsigned long long)c->cnt.send_failed);
    return 0;
}

void
cpar__ctlout_send_client(cpar_controller *c, uint32_t slot, cpar_msg *m)
{
    cpar_reg_client *cl = cpar_registry_client_at(&c->reg, slot);
    int rc;
    if (cl == NULL) {
        c->cnt.client_gone++;
        cpar_msg_close(m);
        return;
    }
    rc = cpar_wire_send(c->csock, c->signer, cl->ident, cl->identlen, m, ZMQ_DONTWAIT);
    if (rc != 0 && cpar__ctlout_send_failed(c, zmq_errno())) {
        c->cnt.client_gone++;
        cpar__ctlout_client_lost(c, slot);
    }
    cpar_msg_close(m);
}

void
cpar__ctlout_forward_client(cpar_controller *c, uint32_t slot, cpar_msg *m)
{
    cpar_reg_client *cl = cpar_registry_client_at(&c->reg, slot);
    if (cl == NULL) {
        c->cnt.client_gone++;
        return;
    }
    cpar__ctlout_note_pinned(c, slot, m); /* before: a failed send releases it for the client */
    if (cpar_wire_forward(c->csock, cl->ident, cl->identlen, m, 0) != 0 &&
        cpar__ctlout_send_failed(c, zmq_errno())) {
        c->cnt.client_gone++;
        cpar__ctlout_client_lost(c, slot);
    }
}

void
cpar__ctlout_send_engine_ident(cpar_controller *c, const uint8_t *ident, size_t identlen,
                               cpar_msg *m)
{
    if (cpar_wire_send(c->esock, c->signer, ident, identlen, m, ZMQ_DONTWAIT) != 0)
        cpar__ctlout_send_failed(c, zmq_errno());
    cpar_msg_close(m);
}

int
cpar__ctlout_send_engine(cpar_controller *c, int32_t id, cpar_msg *m)
{
    cpar_reg_engine *e = cpar_registry_engine(&c->reg, id);
    int rc, gone = 0;
    if (e == NULL) {
        cpar_msg_close(m);
        return 1;
    }
    rc = cpar_wire_send(c->esock, c->signer, e->ident, e->identlen, m, ZMQ_DONTWAIT);
    if (rc != 0)
        gone = cpar__ctlout_send_failed(c, zmq_errno());
    cpar_msg_close(m);
    return gone;
}

int
cpar__ctlout_forward_engine(cpar_controller *c, int32_t id, cpar_msg *m, int keep)
{
    cpar_reg_engine *e = &c->reg.engines[id];
    if (cpar_wire_forward(c->esock, e->ident, e->identlen, m, keep) != 0 &&
        cpar__ctlout_send_failed(c, zmq_errno())) {
        e->unreachable = 1;
        return 1;
    }
    return 0;
}

void
cpar__ctlout_broadcast_event(cpar_controller *c, int32_t engine, int status)
{
    for (size_t i = 0; i < c->reg.nclients; i++) {
        cpar_msg m;
        if (!c->reg.clients[i].live)
            continue;
        cpar__ctlout_msg_new(c, &m, CPAR_MSG_ENGINE_EVENT);
        m.h.engine = engine;
        m.h.status = status;
        /* A registered engine's shared-memory locality token (clients ignore it or use it
         * to decide on the shared-memory path). */
        if (status && engine >= 0 && (size_t)engine < c->reg.nengines) {
            const cpar_reg_engine *e = &c->reg.engines[engine];
            char who[300];
            int n = snprintf(who, sizeof(who), "%d %s", (int)e->pid, e->host ? e->host : "?");
            if (n < 0 || (size_t)n >= sizeof(who))
                n = 0;
            /* 0: the shm token (maybe empty); 1: "pid host", as in CONNECT_REPLY. */
            if (cpar_msg_add_copy(&m, e->shm ? e->shm : "", e->shm ? strlen(e->shm) : 0) != 0 ||
                cpar_msg_add_copy(&m, who, (size_t)n) != 0) {
                cpar_msg_close(&m);
                continue;
            }
        }
        cpar__ctlout_send_client(c, (uint32_t)i, &m);
    }
}

/* ---- errors ------------------------------------------------------------------------- */

size_t
cpar__ctlout_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);
    if (n < 0)
        return 0;
    return (size_t)n >= cap ? cap - 1 : (size_t)n;
}

int
cpar__ctlout_error_msg(cpar_controller *c, cpar_msg *m, const uint8_t *parent, int32_t engine,
                       int code, const char *text, size_t len)
{
    cpar__ctlout_msg_new(c, m, CPAR_MSG_ERROR);
    m->h.engine = engine;
    m->h.status = code;
    if (parent)
        memcpy(m->h.parent, parent, CPAR_WIRE_ID_SIZE);
    if (cpar_msg_add_copy(m, text, len) != 0) {
        cpar_msg_close(m);
        return -1;
    }
    return 0;
}

/* The one ERROR sender: to client `slot` when >= 0, else straight to the identity. */
static void
cpar__verror(cpar_controller *c, const uint8_t *ident, size_t identlen, int32_t slot,
             const uint8_t *parent, int32_t engine, int code, const char *fmt, va_list ap)
{
    char text[512];
    size_t n = cpar__ctlout_vformat(text, sizeof(text), fmt, ap);
    cpar_msg m;

    if (cpar__ctlout_error_msg(c, &m, parent, engine, code, text, n) != 0)
        return;
    if (slot >= 0) {
        cpar__ctlout_send_client(c, (uint32_t)slot, &m);
        return;
    }
    if (cpar_wire_send(c->csock, c->signer, ident, identlen, &m, ZMQ_DONTWAIT) != 0)
        cpar__ctlout_send_failed(c, zmq_errno());
    cpar_msg_close(&m);
}

void
cpar__ctlout_error(cpar_controller *c, int32_t slot, const uint8_t *parent, int code,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar__verror(c, NULL, 0, slot, parent, CPAR_NO_ENGINE, code, fmt, ap);
    va_end(ap);
}

void
cpar__ctlout_error_about(cpar_controller *c, int32_t slot, const uint8_t *parent, int32_t engine,
                         int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar__verror(c, NULL, 0, slot, parent, engine, code, fmt, ap);
    va_end(ap);
}

void
cpar__ctlout_error_ident(cpar_controller *c, const uint8_t *ident, size_t identlen,
                         const uint8_t *parent, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpar__verror(c, ident, identlen, -1, parent, CPAR_NO_ENGINE, code, fmt, ap);
    va_end(ap);
}

/* ---- lost clients ------------------------------------------------------------------- */

void
cpar__ctlout_client_lost(cpar_controller *c, uint32_t slot)
{
    uint32_t *nl;
    if (cpar_registry_client_at(&c->reg, slot) == NULL)
        return;
    cpar_registry_client_remove(&c->reg, slot);
    c->cnt.clients_lost++;
    nl = cpar_vec_grow(c->lost_slots, &c->caplost, c->nlost + 1, sizeof(*nl), 16);
    if (nl == NULL) {
        /* Its queued tasks then run and their replies are dropped (as before). */
        cpar_log_write(&c->log, "client %u lost; out of memory noting it", (unsigned)slot);
        return;
    }
    c->lost_slots = nl;
    c->lost_slots[c->nlost++] = slot;
}

/* Sends RELEASE of request `id` to engine (on a client's behalf); a failed send is only
 * counted (the engine's death, if that is what it means, is noticed by its disconnect or
 * its heartbeats). */
static void
cpar__release_on_engine(cpar_controller *c, int32_t engine, const uint8_t *id)
{
    cpar_reg_engine *e = cpar_registry_engine(&c->reg, engine);
    uint8_t target[4];
    cpar_msg m;
    if (e == NULL)
        return;
    for (int b = 0; b < 4; b++)
        target[b] = (uint8_t)((uint32_t)engine >> (8 * b));
    cpar__ctlout_msg_new(c, &m, CPAR_MSG_RELEASE);
    m.h.flags = CPAR_FLAG_TARGETED;
    m.h.target = engine;
    if (cpar_msg_add_copy(&m, target, sizeof(target)) != 0 ||
        cpar_msg_add_copy(&m, id, CPAR_WIRE_ID_SIZE) != 0) {
        cpar_msg_close(&m);
        return;
    }
    if (cpar_wire_send(c->esock, c->signer, e->ident, e->identlen, &m, ZMQ_DONTWAIT) != 0)
        cpar__ctlout_send_failed(c, zmq_errno());
    cpar_msg_close(&m);
}

void
cpar__ctlout_release_for_lost(cpar_controller *c, int32_t engine, const cpar_msg *reply)
{
    if (reply->h.flags & CPAR_FLAG_SHM)
        cpar__release_on_engine(c, engine, reply->h.parent);
}

void
cpar__ctlout_note_pinned(cpar_controller *c, uint32_t slot, const cpar_msg *reply)
{
    if (reply->h.type != CPAR_MSG_REPLY || !(reply->h.flags & CPAR_FLAG_SHM))
        return;
    /* A duplicate (EINVAL) keeps the first note; ENOMEM leaves it to the pin timeout. */
    (void)cpar_route_insert(&c->pinned, reply->h.parent, reply->h.engine, slot);
}

void
cpar__ctlout_note_released(cpar_controller *c, const cpar_msg *release, int ntargets)
{
    size_t skip = (release->h.flags & CPAR_FLAG_TARGETED) ? 1 : 0;
    const uint8_t *ids;
    size_t len;
    if (c->pinned.ids.count == 0 || release->nframes <= skip)
        return;
    ids = zmq_msg_data(&release->frames[skip]);
    len = zmq_msg_size(&release->frames[skip]);
    for (int i = 0; i < ntargets; i++) {
        int32_t engine = cpar_wire_target_at(release, (size_t)i);
        /* The engine unpins on any RELEASE of the id: the note goes with it. */
        for (size_t off = 0; off + CPAR_WIRE_ID_SIZE <= len; off += CPAR_WIRE_ID_SIZE)
            cpar_route_remove(&c->pinned, ids + off, engine, NULL);
    }
}

typedef struct cpar__pins_of {
    uint32_t slot;
    cpar_route_entry *v; /* the slot's entries, copied */
    size_t n, cap;
    int failed;
} cpar__pins_of;

static void
cpar__collect_pins(void *arg, cpar_route_entry *ent)
{
    cpar__pins_of *p = arg;
    cpar_route_entry *nv;
    if (ent->client != p->slot || p->failed)
        return;
    nv = cpar_vec_grow(p->v, &p->cap, p->n + 1, sizeof(*nv), 16);
    if (nv == NULL) {
        p->failed = 1;
        return;
    }
    p->v = nv;
    p->v[p->n++] = *ent;
}

void
cpar__ctlout_release_pins_of(cpar_controller *c, uint32_t slot)
{
    cpar__pins_of p = {.slot = slot};
    if (c->pinned.ids.count == 0)
        return;
    cpar_route_visit(&c->pinned, cpar__collect_pins, &p);
    for (size_t i = 0; i < p.n; i++) {
        cpar_route_remove(&c->pinned, p.v[i].msg_id, p.v[i].engine, NULL);
        cpar__release_on_engine(c, p.v[i].engine, p.v[i].msg_id);
    }
    if (p.n > 0)
        cpar_log_write(&c->log,
                       "client %u gone holding %zu shared-memory repl%s: released on its behalf%s",
                       (unsigned)slot, p.n, p.n == 1 ? "y" : "ies",
                       p.failed ? " (out of memory: the rest expire on the engines)" : "");
    free(p.v);
}

void
cpar__ctlout_forget_pins(cpar_controller *c, int32_t engine)
{
    cpar_route_entry ent;
    while (cpar_route_pop_engine(&c->pinned, engine, &ent))
        ;
}

/* ---- socket monitors ---------------------------------------------------------------- */

int
cpar__ctlout_monitor_next(void *mon, int *fd)
{
    uint16_t event;
    uint32_t value;
    if (!cpar_sock_monitor_read(mon, &event, &value))
        return -1;
    *fd = (int)value;
    return event == ZMQ_EVENT_DISCONNECTED;
}

int
cpar__ctlout_fds_push(int **fds, size_t *n, size_t *cap, int fd)
{
    int *nf = cpar_vec_grow(*fds, cap, *n + 1, sizeof(*nf), 16);
    if (nf == NULL)
        return -1;
    *fds = nf;
    nf[(*n)++] = fd;
    return 0;
}
