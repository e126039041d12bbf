/* The controller's engine handler (cpar__ctleng_*): every checked engine message the loop
 * hands down (REGISTER, HEARTBEAT, REPLY and STREAM routing), the engine socket's monitor,
 * heartbeat checks, and engine death: cpar__ctleng_gone, the one place an engine is
 * declared gone, cpar__ctleng_reap_unreachable for engines a lower layer's send found
 * unreachable, and cpar__ctleng_not_back for engines a recovery expected that did not come
 * back. A REGISTER with recover=1 (docs/recovery.md) brings an engine back: what it holds
 * stays on it, the rest is re-queued or ended. Below it: the task and coalesce layers and
 * outbound.c (controller_int.h has the order); above it the loop and controller_clients.c.
 *
 * Ownership and threads: the controller's loop thread only; the cpar_controller is the
 * loop's. No Python, no GIL. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "controller_int.h"
#include "outbound.h"
#include "errors.h"
#include "shm.h"
#include "sock.h"

/* Declares engine id gone: fails what it owed (ERROR CPAR_EENGINEDEAD to each sender),
 * forgets it and tells every client. `why` completes "engine N died (...)". */
void
cpar__ctleng_gone(cpar_controller *c, int32_t id, const char *why)
{
    cpar_reg_engine *e = cpar_registry_engine(&c->reg, id);
    cpar_route_entry ent;
    int stopping;
    uint64_t failed = 0;

    if (e == NULL)
        return;
    stopping = e->state == CPAR_ENGINE_STOPPING;
    cpar_registry_engine_remove(&c->reg, id);
    cpar__ctlout_forget_pins(c, id);
    cpar__ctltask_engine_removed(c, id);
    while (cpar_route_pop_engine(&c->route, id, &ent)) {
        failed++;
        if (cpar__ctltask_engine_died(c, &ent, id, why))
            continue;
        cpar__ctlcoal_part_error(c, ent.client, ent.msg_id, id, CPAR_EENGINEDEAD,
                                 "engine %d %s (%s)", id, stopping ? "stopped" : "died", why);
    }
    cpar_log_write(&c->log, "engine %d (pid %d, host %s) %s: %s; %llu request(s) failed", id,
                   (int)e->pid, e->host ? e->host : "?", stopping ? "stopped" : "died", why,
                   (unsigned long long)failed);
    cpar_taskdb_engine(c->db, id, 0, 0, NULL);
    cpar__ctlout_broadcast_event(c, id, 0);
}

void
cpar__ctleng_not_back(cpar_controller *c, int32_t id)
{
    static const char why[] = "did not come back after the controller's recovery";
    cpar_route_entry ent;
    uint64_t failed = 0;
    if (id >= 0 && (size_t)id < c->nexpected_slots && c->expected[id]) {
        c->expected[id] = 0;
        c->nexpected--;
    }
    while (cpar_route_pop_engine(&c->route, id, &ent)) {
        failed++;
        if (cpar__ctltask_engine_died(c, &ent, id, why))
            continue;
        cpar__ctlcoal_part_error(c, ent.client, ent.msg_id, id, CPAR_EENGINEDEAD, "engine %d %s",
                                 (int)id, why);
    }
    cpar_log_write(&c->log, "engine %d %s: %llu request(s) on it retried or ended", (int)id, why,
                   (unsigned long long)failed);
    cpar_taskdb_engine(c->db, id, 0, 0, NULL);
    cpar__ctlout_broadcast_event(c, id, 0);
}

int
cpar__ctleng_reap_unreachable(cpar_controller *c)
{
    int n = 0;
    for (size_t i = 0; i < c->reg.nengines; i++)
        if (c->reg.engines[i].unreachable) {
            c->reg.engines[i].unreachable = 0;
            cpar__ctleng_gone(c, (int32_t)i, "unreachable");
            n++;
        }
    return n;
}

void
cpar__ctleng_read_monitor(cpar_controller *c)
{
    int fd, rc;
    while ((rc = cpar__ctlout_monitor_next(c->mon, &fd)) >= 0) {
        if (rc != 1 || cpar_registry_engine_by_fd(&c->reg, fd) < 0)
            continue;
        if (cpar__ctlout_fds_push(&c->gone_fds, &c->ngone_fds, &c->capgone_fds, fd) != 0)
            /* No room to defer: declare it gone now (a last REPLY may be lost). */
            cpar__ctleng_gone(c, cpar_registry_engine_by_fd(&c->reg, fd), "connection closed");
    }
}

void
cpar__ctleng_apply_disconnects(cpar_controller *c, int only_fd)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->ngone_fds; i++) {
        int fd = c->gone_fds[i];
        int32_t id;
        if (only_fd >= 0 && fd != only_fd) {
            c->gone_fds[kept++] = fd;
            continue;
        }
        id = cpar_registry_engine_by_fd(&c->reg, fd);
        if (id >= 0)
            cpar__ctleng_gone(c, id, "connection closed");
    }
    c->ngone_fds = kept;
}

/* Copies "key=value" line `key` of text into out (outlen > 0); returns 1 when found. */
static int
cpar__kv(const char *text, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *p = text;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, "\r\n");
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* REGISTER_REPLY: on success frame 0 holds the heartbeat settings; on a refusal (status
 * != 0) it holds "error=<why>" for the engine's log. */
static void
cpar__register_reply(cpar_controller *c, const uint8_t *ident, size_t identlen, const cpar_msg *req,
                     int32_t id, int status, const char *why)
{
    char text[256];
    cpar_msg m;
    int n = status == 0
                ? snprintf(text, sizeof(text),
                           "hb_period_ms=%d\nhb_timeout_ms=%d\nrecover_grace_ms=%lld\n",
                           c->hb_period_ms, c->hb_timeout_ms, (long long)c->recover_grace_ms)
                : snprintf(text, sizeof(text), "error=%s\n", why ? why : "");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(text))
        n = (int)sizeof(text) - 1;
    cpar__ctlout_msg_new(c, &m, CPAR_MSG_REGISTER_REPLY);
    memcpy(m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    m.h.engine = id;
    m.h.status = status;
    if (cpar_msg_add_copy(&m, text, (size_t)n) == 0)
        cpar__ctlout_send_engine_ident(c, ident, identlen, &m);
    cpar_msg_close(&m);
}

static int
cpar__cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, CPAR_WIRE_ID_SIZE);
}

/* An engine back on id after its controller died (or its link dropped and came back): each
 * request the route has on id stays when the engine holds it (REGISTER frame 1), else a
 * task is queued again and a direct part ends with CPAR_EENGINEDEAD (docs/recovery.md).
 * `counted`: the scheduler counts id's tasks already (a replaced connection). */
static void
cpar__engine_back(cpar_controller *c, int32_t id, const cpar_msg *m, int counted)
{
    uint32_t n = cpar_route_engine_count(&c->route, id);
    size_t nheld = m->nframes >= 2 ? zmq_msg_size((zmq_msg_t *)&m->frames[1]) / 16 : 0;
    size_t got = 0, kept = 0, requeued = 0, lost = 0;
    cpar_route_entry *ents;
    uint8_t *held = NULL;

    if (n == 0)
        return;
    ents = malloc(n * sizeof(*ents));
    if (nheld > 0 && (held = malloc(nheld * CPAR_WIRE_ID_SIZE)) != NULL) {
        memcpy(held, zmq_msg_data((zmq_msg_t *)&m->frames[1]), nheld * CPAR_WIRE_ID_SIZE);
        qsort(held, nheld, CPAR_WIRE_ID_SIZE, cpar__cmp_id);
    }
    if (ents == NULL || (nheld > 0 && held == NULL)) {
        cpar_log_write(&c->log, "engine %d back: out of memory; its %u request(s) stay on it",
                       (int)id, (unsigned)n);
        goto error;
    }
    while (got < n && cpar_route_pop_engine(&c->route, id, &ents[got]))
        got++;
    for (size_t i = 0; i < got; i++) {
        const cpar_route_entry *e = &ents[i];
        int is_held =
            held != NULL && bsearch(e->msg_id, held, nheld, CPAR_WIRE_ID_SIZE, cpar__cmp_id);
        if (is_held && cpar_route_insert(&c->route, e->msg_id, id, e->client) == 0) {
            cpar__ctltask_engine_back(c, e->msg_id, id, 1, counted);
            kept++;
        } else if (cpar__ctltask_engine_back(c, e->msg_id, id, 0, counted)) {
            requeued++;
        } else {
            cpar__ctlcoal_part_error(c, e->client, e->msg_id, id, CPAR_EENGINEDEAD,
                                     "engine %d lost this request when the controller died",
                                     (int)id);
            lost++;
        }
    }
    cpar_log_write(&c->log,
                   "engine %d back: %zu request(s) it holds stay on it, %zu task(s) it did not "
                   "hold queued again, %zu direct part(s) it did not hold ended",
                   (int)id, kept, requeued, lost);
error:
    free(ents);
    free(held);
}

/* Refuses a registration: logged, and REGISTER_REPLY with the reason. */
static void
cpar__refuse_register(cpar_controller *c, const uint8_t *ident, size_t identlen, const cpar_msg *m,
                      int code, const char *why)
{
    cpar_log_write(&c->log, "registration refused: %s", why);
    cpar__register_reply(c, ident, identlen, m, CPAR_NO_ENGINE, code, why);
}

static void
cpar__on_register(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd, cpar_msg *m)
{
    char text[1024] = "", pidbuf[24] = "", host[256] = "?", shm[256] = "", rec[8] = "";
    char why[200];
    int32_t id, other, target = m->h.target;
    long pid = -1;
    int recover, replaced = 0, expected;

    /* A closed connection whose fd this one reuses must be applied before fd is mapped
     * again. Its messages all came before this REGISTER, so it is safe to do now. */
    if (fd >= 0) {
        cpar__ctleng_read_monitor(c);
        cpar__ctleng_apply_disconnects(c, fd);
    }
    id = cpar_registry_engine_by_ident(&c->reg, ident, identlen);
    if (id >= 0) {
        /* A repeated REGISTER (the reply was slow): same answer. */
        int live = c->reg.engines[id].state == CPAR_ENGINE_LIVE;
        cpar__register_reply(c, ident, identlen, m, id, live ? 0 : CPAR_ESHUTDOWN,
                             "this engine is being stopped");
        return;
    }
    if (c->hub_stopping) {
        cpar__register_reply(c, ident, identlen, m, CPAR_NO_ENGINE, CPAR_ESHUTDOWN,
                             "the controller is shutting down");
        return;
    }
    if (m->nframes > 0) {
        size_t len = zmq_msg_size(&m->frames[0]);
        if (len >= sizeof(text))
            len = sizeof(text) - 1;
        memcpy(text, zmq_msg_data(&m->frames[0]), len);
        text[len] = '\0';
    }
    recover = cpar__kv(text, "recover", rec, sizeof(rec)) && strcmp(rec, "1") == 0;
    if (recover && (m->nframes > 2 || (m->nframes == 2 && zmq_msg_size(&m->frames[1]) % 16))) {
        snprintf(why, sizeof(why),
                 "REGISTER with recover=1: frame 1 must hold 16-byte request ids (%zu bytes), "
                 "and nothing may follow it",
                 m->nframes >= 2 ? zmq_msg_size(&m->frames[1]) : (size_t)0);
        cpar__refuse_register(c, ident, identlen, m, CPAR_EPROTO, why);
        return;
    }
    expected = target >= 0 && (size_t)target < c->nexpected_slots && c->expected[target];
    if (expected && !recover) {
        snprintf(why, sizeof(why),
                 "requested engine id %d is reserved for the engine expected back after the "
                 "controller's recovery",
                 (int)target);
        cpar__refuse_register(c, ident, identlen, m, CPAR_EINVAL, why);
        return;
    }
    if (recover && target >= 0 && cpar_registry_engine_live(&c->reg, target)) {
        /* The engine's link dropped and came back: the new connection replaces the old
         * one (nothing it still holds is failed). */
        cpar_log_write(&c->log,
                       "engine %d re-registered on a new connection: the old one is "
                       "replaced",
                       (int)target);
        cpar_registry_engine_remove(&c->reg, target);
        replaced = 1;
    }
    id = cpar_registry_pick_id(&c->reg, target);
    if (id < 0) {
        if (target > CPAR_REGISTRY_MAX_REQUESTED_ID)
            snprintf(why, sizeof(why),
                     "requested engine id %d is above the limit: ids are below %d", (int)target,
                     CPAR_ENGINE_ID_LIMIT);
        else if (target >= 0)
            snprintf(why, sizeof(why), "requested engine id %d is taken by a live engine",
                     (int)target);
        else
            snprintf(why, sizeof(why),
                     "no engine id left: this controller has used all %d engine ids (the "
                     "limit; ids are never reused automatically), restart it",
                     CPAR_ENGINE_ID_LIMIT);
        cpar__refuse_register(c, ident, identlen, m, CPAR_EINVAL, why);
        return;
    }
    if (cpar__kv(text, "pid", pidbuf, sizeof(pidbuf)))
        pid = strtol(pidbuf, NULL, 10);
    cpar__kv(text, "host", host, sizeof(host));
    /* Host names travel in space-separated lines: keep them one printable word. */
    for (char *p = host; *p; p++)
        if (*p <= ' ' || *p > '~')
            *p = '?';
    if (host[0] == '\0')
        strcpy(host, "?");
    /* Another engine on the same fd means that engine's connection is gone. */
    other = cpar_registry_engine_by_fd(&c->reg, fd);
    if (other >= 0)
        cpar__ctleng_gone(c, other, "connection replaced");
    if (cpar_registry_engine_add(&c->reg, id, ident, identlen, fd, (int32_t)pid, host,
                                 cpar__ctlout_mono_ms()) != 0) {
        cpar_log_write(&c->log, "registration failed: out of memory");
        cpar__register_reply(c, ident, identlen, m, CPAR_NO_ENGINE, CPAR_ENOMEM,
                             "the controller is out of memory");
        if (replaced) /* the old connection is gone, and so is the engine */
            cpar__ctleng_not_back(c, id);
        return;
    }
    /* The scheduler takes every id the registry gives (one limit), so only memory can
     * fail here; an engine the scheduler does not know would silently get no tasks. A
     * replaced connection's engine is in the scheduler already. */
    if (!replaced && cpar__ctltask_engine_added(c, id) != 0) {
        cpar_registry_engine_remove(&c->reg, id);
        cpar_log_write(&c->log, "registration of engine %d failed: the scheduler refused it",
                       (int)id);
        cpar__register_reply(c, ident, identlen, m, CPAR_NO_ENGINE, CPAR_ENOMEM,
                             "the controller could not add the engine to its scheduler");
        return;
    }
    /* The shared-memory locality token travels in space-separated lines too. */
    if (cpar__kv(text, "shm", shm, sizeof(shm)) && shm[0] != '\0') {
        for (char *p = shm; *p; p++)
            if (*p <= ' ' || *p > '~')
                *p = '?';
        c->reg.engines[id].shm = strdup(shm); /* NULL when out of memory: no shm path */
    }
    if (expected) {
        c->expected[id] = 0;
        c->nexpected--;
        c->engines_back++;
    }
    cpar__register_reply(c, ident, identlen, m, id, 0, NULL);
    cpar_taskdb_engine(c->db, id, 1, (int32_t)pid, host);
    cpar_log_write(&c->log, "engine %d registered: pid %ld host %s%s", id, pid, host,
                   expected   ? " (back after the recovery)"
                   : replaced ? " (reconnected)"
                              : "");
    if (expected || replaced)
        cpar__engine_back(c, id, m, replaced);
    if (!replaced)
        cpar__ctlout_broadcast_event(c, id, 1);
}

void
cpar__ctleng_on_message(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                        cpar_msg *m)
{
    int32_t id;
    uint32_t slot;
    cpar_reg_engine *e;
    cpar_reg_client *cl;

    if (m->h.type == CPAR_MSG_REGISTER) {
        cpar__on_register(c, ident, identlen, fd, m);
        return;
    }
    id = cpar_registry_engine_by_ident(&c->reg, ident, identlen);
    if (id < 0) {
        c->cnt.unknown_engine++;
        if (m->h.type == CPAR_MSG_HEARTBEAT && !c->grace_active) {
            /* An engine we declared dead (or never knew) still beats: tell it to go, so
             * it cannot linger as a zombie whose work nobody awaits. */
            cpar_msg s;
            cpar__ctlout_msg_new(c, &s, CPAR_MSG_SHUTDOWN);
            s.h.target = m->h.engine;
            s.h.status = CPAR_EENGINEDEAD;
            cpar__ctlout_send_engine_ident(c, ident, identlen, &s);
        }
        if (cpar_log_ratelimit(c->cnt.unknown_engine))
            cpar_log_write(&c->log, "dropped type %d message from an unknown engine (%llu so far)",
                           m->h.type, (unsigned long long)c->cnt.unknown_engine);
        return;
    }
    e = &c->reg.engines[id];
    e->last_seen_ms = cpar__ctlout_mono_ms();
    switch (m->h.type) {
    case CPAR_MSG_HEARTBEAT: {
        cpar_msg echo;
        cpar__ctlout_msg_new(c, &echo, CPAR_MSG_HEARTBEAT);
        memcpy(echo.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
        echo.h.engine = id;
        echo.h.target = id;
        if (cpar__ctlout_send_engine(c, id, &echo))
            cpar__ctleng_gone(c, id, "unreachable");
        return;
    }
    case CPAR_MSG_REPLY:
    case CPAR_MSG_STREAM: {
        int found, shm_bad;
        /* Clients act on the `engine` field (a REPLY from engine N releases what was
         * pinned for N): it must name the engine on this connection, never another. */
        if (m->h.engine != id) {
            c->cnt.forged_engine++;
            if (cpar_log_ratelimit(c->cnt.forged_engine))
                cpar_log_write(&c->log,
                               "dropped %s from engine %d claiming to be engine %d "
                               "(%llu so far)",
                               m->h.type == CPAR_MSG_REPLY ? "REPLY" : "STREAM", id,
                               (int)m->h.engine, (unsigned long long)c->cnt.forged_engine);
            return;
        }
        if (m->h.type == CPAR_MSG_REPLY) {
            if (cpar__ctltask_reply(c, id, m))
                return;
        }
        found = m->h.type == CPAR_MSG_REPLY ? cpar_route_remove(&c->route, m->h.parent, id, &slot)
                                            : cpar_route_find(&c->route, m->h.parent, id, &slot);
        if (found && m->h.type == CPAR_MSG_REPLY)
            cpar__ctltask_count_reply(c, id);
        if (!found) {
            c->cnt.unroutable++;
            if (cpar_log_ratelimit(c->cnt.unroutable))
                cpar_log_write(&c->log,
                               "dropped %s from engine %d for no known request "
                               "(%llu so far)",
                               m->h.type == CPAR_MSG_REPLY ? "REPLY" : "STREAM", id,
                               (unsigned long long)c->cnt.unroutable);
            return;
        }
        /* A reply's shared-memory descriptors may name only that engine's own process: a
         * reply naming another is not forwarded; its client gets an error instead. */
        shm_bad = (m->h.flags & CPAR_FLAG_SHM) &&
                  (e->pid <= 0 || cpar_shm_sender_pid(m) != (uint32_t)e->pid);
        if (m->h.type == CPAR_MSG_STREAM)
            cpar_taskdb_stream(c->db, m);
        else if (!shm_bad)
            cpar_taskdb_reply(c->db, m); /* recorded first: a later DB_REQUEST sees it */
        cl = cpar_registry_client_at(&c->reg, slot);
        if (cl == NULL) {
            c->cnt.client_gone++;
            if (m->h.type == CPAR_MSG_REPLY)
                cpar__ctlout_release_for_lost(c, id, m);
            return;
        }
        if (shm_bad) {
            cpar__ctlcoal_part_error(c, slot, m->h.parent, id, CPAR_EPROTO,
                                     "engine %d answered with shared-memory descriptors naming pid "
                                     "%u, not its own (pid %d); nothing was read",
                                     (int)id, (unsigned)cpar_shm_sender_pid(m), (int)e->pid);
            if (m->h.type == CPAR_MSG_REPLY)
                cpar__ctlout_release_for_lost(c, id, m);
            return;
        }
        if (m->h.type == CPAR_MSG_REPLY && cpar__ctlcoal_reply(c, slot, id, m))
            return;
        cpar__ctlout_forward_client(c, slot, m);
        return;
    }
    default:
        c->cnt.unexpected[CPAR__SIDE_ENGINE]++;
        if (cpar_log_ratelimit(c->cnt.unexpected[CPAR__SIDE_ENGINE]))
            cpar_log_write(&c->log,
                           "dropped type %d message from engine %d: not an engine "
                           "message (%llu so far)",
                           m->h.type, id, (unsigned long long)c->cnt.unexpected[CPAR__SIDE_ENGINE]);
        return;
    }
}

/* Sends SHUTDOWN to engine id and marks it stopping. */
void
cpar__ctleng_stop(cpar_controller *c, int32_t id)
{
    cpar_msg s;
    cpar__ctlout_msg_new(c, &s, CPAR_MSG_SHUTDOWN);
    s.h.target = id;
    s.h.engine = id;
    c->reg.engines[id].state = CPAR_ENGINE_STOPPING;
    cpar__ctltask_engine_removed(c, id);
    if (cpar__ctlout_send_engine(c, id, &s))
        cpar__ctleng_gone(c, id, "unreachable");
}

void
cpar__ctleng_check_heartbeats(cpar_controller *c, uint64_t now)
{
    for (size_t i = 0; i < c->reg.nengines; i++) {
        cpar_reg_engine *e = &c->reg.engines[i];
        uint64_t silent;
        char why[64];
        if (e->state != CPAR_ENGINE_LIVE && e->state != CPAR_ENGINE_STOPPING)
            continue;
        silent = now > e->last_seen_ms ? now - e->last_seen_ms : 0;
        if (silent <= (uint64_t)c->hb_timeout_ms)
            continue;
        snprintf(why, sizeof(why), "heartbeat silent for %.1f s", (double)silent / 1000.0);
        cpar__ctleng_gone(c, (int32_t)i, why);
    }
}

/* The hub is done when no engine is live or stopping, or its grace period ran out. */
int
cpar__ctleng_hub_done(cpar_controller *c, uint64_t now)
{
    if (!c->hub_stopping)
        return 0;
    if (c->reg.nlive == 0)
        return 1;
    if (now < c->hub_deadline_ms)
        return 0;
    for (size_t i = 0; i < c->reg.nengines; i++)
        cpar__ctleng_gone(c, (int32_t)i, "did not exit before the controller shut down");
    return 1;
}
