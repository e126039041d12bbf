/* The controller's client handler (cpar__ctlcli_*): every checked client message the loop
 * hands down. CONNECT, request fan-out (EXECUTE, APPLY, INTERRUPT, RELEASE, PROBE),
 * SHUTDOWN here; TASK, ABORT and QUERY go down to controller_taskmsg.c, COALESCE requests
 * to controller_coalesce.c. Also clients that vanish (the client socket's monitor) and
 * cancelling a lost client's tasks. Below it: controller_engines.c (engines to stop or
 * declare gone), the task and coalesce layers, outbound.c (controller_int.h has the
 * order).
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

/* ---- clients that vanish ------------------------------------------------------------- */

int
cpar__ctlcli_monitor_open(cpar_controller *c, char *err, size_t errlen)
{
    c->cmon =
        cpar_sock_monitor_open(c->zctx, c->csock, ZMQ_EVENT_DISCONNECTED, "controller-client", c);
    if (c->cmon == NULL) {
        snprintf(err, errlen, "cannot monitor the client socket: %s", zmq_strerror(zmq_errno()));
        return CPAR_EZMQ;
    }
    return CPAR_OK;
}

void
cpar__ctlcli_monitor_close(cpar_controller *c)
{
    cpar_sock_monitor_close(c->csock, c->cmon);
    c->cmon = NULL;
    free(c->client_gone_fds);
    free(c->lost_slots);
    c->client_gone_fds = NULL;
    c->lost_slots = NULL;
}

/* Drops the coalescing requests and cancels the queued tasks of the clients found lost.
 * Runs at safe points only (never inside task or coalescing bookkeeping): the loop's
 * check and the start of a client's message. */
static void
cpar__cancel_lost(cpar_controller *c)
{
    while (c->nlost > 0) {
        uint32_t slot = c->lost_slots[--c->nlost];
        size_t running = 0, cancelled;
        cpar__ctlcoal_client_lost(c, slot);
        cpar__ctlout_release_pins_of(c, slot);
        if (c->db != NULL) {
            /* With a task database the results are kept for a later client: run them. */
            cpar_log_write(&c->log,
                           "client %u gone: its tasks run, and their results are recorded in "
                           "the task database",
                           (unsigned)slot);
            continue;
        }
        cancelled = cpar__ctltask_client_lost(c, slot, &running);
        c->cnt.tasks_cancelled += cancelled;
        cpar_log_write(&c->log,
                       "client %u gone: %zu queued task(s) cancelled, %zu running task(s) "
                       "left to finish (their results are dropped)",
                       (unsigned)slot, cancelled, running);
    }
}

/* Reads the client socket's disconnect events into client_gone_fds. */
static void
cpar__read_client_monitor(cpar_controller *c)
{
    int fd, rc;
    /* With no room to note a closed connection, its client is noticed when a send to it
     * fails. */
    while ((rc = cpar__ctlout_monitor_next(c->cmon, &fd)) >= 0)
        if (rc == 1)
            (void)cpar__ctlout_fds_push(&c->client_gone_fds, &c->nclient_gone_fds,
                                        &c->capclient_gone_fds, fd);
}

/* Declares lost the clients of the first `upto` recorded closed connections, or of
 * only_fd's entries alone when only_fd >= 0. */
static void
cpar__apply_client_disconnects(cpar_controller *c, size_t upto, int only_fd)
{
    size_t kept = 0, ready = c->nclient_gone_ready;
    for (size_t i = 0; i < c->nclient_gone_fds; i++) {
        int fd = c->client_gone_fds[i];
        int32_t slot;
        if (i >= upto || (only_fd >= 0 && fd != only_fd)) {
            c->client_gone_fds[kept++] = fd;
            continue;
        }
        if (i < c->nclient_gone_ready)
            ready--;
        slot = cpar_registry_client_by_fd(&c->reg, fd);
        if (slot >= 0)
            cpar__ctlout_client_lost(c, (uint32_t)slot);
    }
    c->nclient_gone_fds = kept;
    c->nclient_gone_ready = ready;
}

void
cpar__ctlcli_check(cpar_controller *c, int drained, int monitor_ready)
{
    if (c->cmon == NULL)
        return;
    if (drained && c->nclient_gone_ready > 0)
        cpar__apply_client_disconnects(c, c->nclient_gone_ready, -1);
    cpar__cancel_lost(c);
    if (monitor_ready)
        cpar__read_client_monitor(c);
    c->nclient_gone_ready = c->nclient_gone_fds;
}

static void
cpar__on_connect(cpar_controller *c, int32_t slot, const cpar_msg *req)
{
    size_t n = 0, textlen = 0, pos = 0, shmlen = 0, shmpos = 0;
    uint8_t *ids = NULL;
    char *text = NULL, *shm = NULL;
    cpar_msg m;

    /* Frame 0 "pid=N": the process whose memory its shared-memory descriptors may name. */
    if (req->nframes >= 1 && zmq_msg_size((zmq_msg_t *)&req->frames[0]) < 32) {
        char line[32];
        size_t len = zmq_msg_size((zmq_msg_t *)&req->frames[0]);
        unsigned long pid;
        cpar_reg_client *cl = cpar_registry_client_at(&c->reg, slot);
        memcpy(line, zmq_msg_data((zmq_msg_t *)&req->frames[0]), len);
        line[len] = '\0';
        if (cl != NULL && sscanf(line, "pid=%lu", &pid) == 1 && pid > 0 && pid <= INT32_MAX)
            cl->pid = (uint32_t)pid;
    }
    cpar__ctlout_msg_new(c, &m, CPAR_MSG_CONNECT_REPLY);
    memcpy(m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    for (size_t i = 0; i < c->reg.nengines; i++)
        if (c->reg.engines[i].state == CPAR_ENGINE_LIVE) {
            n++;
            textlen += 40 + strlen(c->reg.engines[i].host);
            shmlen += 24 + (c->reg.engines[i].shm ? strlen(c->reg.engines[i].shm) : 0);
        }
    ids = malloc(n * 4 + 1);
    text = malloc(textlen + 1);
    shm = malloc(shmlen + 1);
    if (ids == NULL || text == NULL || shm == NULL)
        goto error;
    n = 0;
    for (size_t i = 0; i < c->reg.nengines; i++) {
        cpar_reg_engine *e = &c->reg.engines[i];
        uint32_t v = (uint32_t)i;
        if (e->state != CPAR_ENGINE_LIVE)
            continue;
        for (int b = 0; b < 4; b++)
            ids[n * 4 + (size_t)b] = (uint8_t)(v >> (8 * b));
        n++;
        pos +=
            (size_t)snprintf(text + pos, textlen + 1 - pos, "%zu %d %s\n", i, (int)e->pid, e->host);
        if (e->shm != NULL)
            shmpos += (size_t)snprintf(shm + shmpos, shmlen + 1 - shmpos, "%zu %s\n", i, e->shm);
    }
    if (cpar_msg_add_copy(&m, ids, n * 4) != 0 || cpar_msg_add_copy(&m, text, pos) != 0 ||
        cpar_msg_add_copy(&m, shm, shmpos) != 0)
        goto error;
    cpar__ctlout_send_client(c, (uint32_t)slot, &m);
    free(ids);
    free(text);
    free(shm);
    return;
error:
    cpar_msg_close(&m);
    free(ids);
    free(text);
    free(shm);
    cpar__ctlout_error(c, slot, req->h.msg_id, CPAR_ENOMEM, "controller out of memory");
}

/* Checks a TARGETED request's list: returns its length, or -1 after an ERROR reply. */
static int
cpar__check_targets(cpar_controller *c, int32_t slot, const cpar_msg *m)
{
    int n;
    if (c->hub_stopping) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ESHUTDOWN, "the controller is shutting down");
        return -1;
    }
    if (!(m->h.flags & CPAR_FLAG_TARGETED)) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EINVAL,
                           "request without a target list (flag TARGETED)");
        return -1;
    }
    n = cpar_wire_targets(m);
    if (n < 0) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EPROTO, "malformed target list");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t t = cpar_wire_target_at(m, (size_t)i);
        if (!cpar_registry_engine_live(&c->reg, t)) {
            cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ENOENGINE,
                               "no engine %d (not registered, or gone)", (int)t);
            return -1;
        }
    }
    return n;
}

/* Forwards m unchanged to targets [0, n) (consumed by the last send); declares engines
 * that turned out unreachable gone afterwards. */
static void
cpar__fan_out(cpar_controller *c, cpar_msg *m, int n)
{
    int any_gone = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = cpar_wire_target_at(m, (size_t)i);
        any_gone |= cpar__ctlout_forward_engine(c, t, m, i + 1 < n);
        if (i + 1 == n)
            break; /* the frames are gone: m's target list with them */
    }
    if (any_gone)
        cpar__ctleng_reap_unreachable(c);
}

/* Refuses a target list naming an engine twice (one message must not fan out more
 * copies than there are engines). The list names live engines only (checked before), so
 * every id is below CPAR_ENGINE_ID_LIMIT. Returns 0, or -1 after an ERROR reply. */
static int
cpar__check_unique(cpar_controller *c, int32_t slot, const cpar_msg *m, int n)
{
    uint8_t *seen;
    if (n < 2)
        return 0;
    seen = calloc(CPAR_ENGINE_ID_LIMIT / 8, 1);
    if (seen == NULL) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ENOMEM, "controller out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t t = cpar_wire_target_at(m, (size_t)i);
        uint8_t bit = (uint8_t)(1u << (t & 7));
        if (t < 0 || t >= CPAR_ENGINE_ID_LIMIT || (seen[t >> 3] & bit)) {
            free(seen);
            cpar__ctlout_error_about(c, slot, m->h.msg_id, t, CPAR_EINVAL,
                                     "engine %d is named twice in the target list", (int)t);
            return -1;
        }
        seen[t >> 3] |= bit;
    }
    free(seen);
    return 0;
}

static void
cpar__on_request(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    int n = cpar__check_targets(c, slot, m);
    int i, rc = 0;
    if (n < 0 || cpar__check_unique(c, slot, m, n) != 0)
        return;
    /* Shared-memory descriptors may name only the sending client's own process. */
    if (m->h.flags & CPAR_FLAG_SHM) {
        cpar_reg_client *cl = cpar_registry_client_at(&c->reg, slot);
        uint32_t named = cpar_shm_sender_pid(m), own = cl != NULL ? cl->pid : 0;
        if (named == 0 || named != own) {
            cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EPROTO,
                               "shared-memory descriptors naming pid %u refused: this client's "
                               "CONNECT %s",
                               (unsigned)named, own ? "named another process" : "named no pid");
            return;
        }
    }
    /* INTERRUPT and RELEASE expect no answer: no route entries. */
    if (m->h.type != CPAR_MSG_INTERRUPT && m->h.type != CPAR_MSG_RELEASE) {
        for (i = 0; i < n; i++) {
            rc = cpar_route_insert(&c->route, m->h.msg_id, cpar_wire_target_at(m, (size_t)i),
                                   (uint32_t)slot);
            if (rc != 0)
                break;
        }
        if (rc != 0) {
            int32_t bad = cpar_wire_target_at(m, (size_t)i);
            while (i-- > 0)
                cpar_route_remove(&c->route, m->h.msg_id, cpar_wire_target_at(m, (size_t)i), NULL);
            if (rc == CPAR_EINVAL)
                cpar__ctlout_error_about(c, slot, m->h.msg_id, bad, CPAR_EINVAL,
                                         "duplicate request: this msg_id is already outstanding on "
                                         "engine %d",
                                         (int)bad);
            else
                cpar__ctlout_error(c, slot, m->h.msg_id, rc, "controller out of memory");
            return;
        }
        if ((m->h.flags & CPAR_FLAG_COALESCE) &&
            (m->h.type == CPAR_MSG_EXECUTE || m->h.type == CPAR_MSG_APPLY))
            cpar__ctlcoal_open(c, (uint32_t)slot, m, n);
        if (m->h.type == CPAR_MSG_EXECUTE || m->h.type == CPAR_MSG_APPLY)
            cpar_taskdb_arrival(c->db, m); /* before the frames go */
    } else if (m->h.type == CPAR_MSG_RELEASE) {
        cpar__ctlout_note_released(c, m, n);
    }
    cpar__fan_out(c, m, n);
}

static void
cpar__on_shutdown(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    int hub = (m->h.flags & CPAR_FLAG_HUB) != 0;
    int n = 0, stopped = 0;
    cpar_msg r;

    /* With HUB every engine stops, whatever the list says; else the listed ones. */
    if (!hub && (m->h.flags & CPAR_FLAG_TARGETED)) {
        n = cpar__check_targets(c, slot, m);
        if (n < 0)
            return;
        for (int i = 0; i < n; i++) {
            int32_t t = cpar_wire_target_at(m, (size_t)i);
            if (cpar_registry_engine_live(&c->reg, t)) {
                cpar__ctleng_stop(c, t);
                stopped++;
            }
        }
    } else if (hub) {
        for (size_t i = 0; i < c->reg.nengines; i++)
            if (c->reg.engines[i].state == CPAR_ENGINE_LIVE) {
                cpar__ctleng_stop(c, (int32_t)i);
                stopped++;
            }
    }
    cpar_log_write(&c->log, "SHUTDOWN from client %d: %d engine(s) told to stop%s", (int)slot,
                   stopped, hub ? ", controller stopping" : "");
    cpar__ctlout_msg_new(c, &r, CPAR_MSG_SHUTDOWN_REPLY);
    memcpy(r.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    cpar__ctlout_send_client(c, (uint32_t)slot, &r);
    if (hub && !c->hub_stopping) {
        c->hub_stopping = 1;
        c->graceful = 1;
        c->hub_deadline_ms = cpar__ctlout_mono_ms() + (uint64_t)c->hb_timeout_ms;
        cpar__ctltask_shutdown(c);
    }
}

/* ---- the task database (docs/taskdb.md) ---------------------------------------------- */

/* A DB_REQUEST: queued for the database thread (its answer comes back through
 * cpar__ctlcli_db_answers), or refused at once without a database. */
static void
cpar__on_db_request(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    static const char none[] = CPAR_TASKDB_NONE_JSON;
    static const char nomem[] = "{\"ename\": \"RuntimeError\", \"evalue\": \"controller out of "
                                "memory\"}";
    const char *body = none;
    size_t len = sizeof(none) - 1;
    cpar_msg r;
    if (c->db != NULL) {
        if (cpar_taskdb_request(c->db, (uint32_t)slot, m) == 0)
            return;
        body = nomem;
        len = sizeof(nomem) - 1;
    }
    cpar__ctlout_msg_new(c, &r, CPAR_MSG_DB_REPLY);
    memcpy(r.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    r.h.status = CPAR_EIO;
    if (cpar_msg_add_copy(&r, body, len) == 0)
        cpar__ctlout_send_client(c, (uint32_t)slot, &r);
    else
        cpar_msg_close(&r);
}

int
cpar__ctlcli_db_answers(cpar_controller *c)
{
    cpar_taskdb_answer *a;
    int any_tasks = 0, i;
    for (i = 0; i < CPAR__BATCH && cpar_taskdb_answer_next(c->db, 0, &a) == 1; i++) {
        cpar_msg r;
        cpar__ctlout_msg_new(c, &r, CPAR_MSG_DB_REPLY);
        memcpy(r.h.parent, a->reply.h.parent, CPAR_WIRE_ID_SIZE);
        r.h.status = a->reply.h.status;
        r.frames = a->reply.frames;
        r.nframes = a->reply.nframes;
        r.cap = a->reply.cap;
        a->reply.frames = NULL;
        a->reply.nframes = a->reply.cap = 0;
        if (cpar_registry_client_at(&c->reg, a->slot) != NULL)
            cpar__ctlout_send_client(c, a->slot, &r);
        else
            c->cnt.client_gone++;
        cpar_msg_close(&r);
        /* Resubmitted tasks enter after their DB_REPLY went, so it precedes their REPLYs. */
        for (size_t k = 0; k < a->ntasks; k++) {
            cpar_msg *t = &a->tasks[k];
            t->h.t0 = cpar_now_ns();
            if (cpar_wire_seal(c->signer, t) == 0)
                cpar__ctltask_resubmitted(c, (int32_t)a->slot, t);
            any_tasks = 1;
        }
        cpar_taskdb_answer_free(a);
    }
    if (any_tasks)
        cpar__ctleng_reap_unreachable(c);
    return i == CPAR__BATCH; /* more may be waiting */
}

void
cpar__ctlcli_on_message(cpar_controller *c, const uint8_t *ident, size_t identlen, int fd,
                        cpar_msg *m)
{
    int32_t slot, known = -1;
    if (fd >= 0 && c->cmon != NULL &&
        (!cpar_idmap_get(&c->reg.client_ids, ident, identlen, &known) ||
         cpar_registry_client_by_fd(&c->reg, fd) != known)) {
        /* A connection first seen on fd: every disconnect recorded for fd is about an
         * earlier connection that used the same fd (a connection's close comes after its
         * messages), so it is applied now, and a client still mapped to fd is gone too;
         * else a late event would be taken for this new client's. */
        int32_t old;
        cpar__read_client_monitor(c);
        cpar__apply_client_disconnects(c, c->nclient_gone_fds, fd);
        old = cpar_registry_client_by_fd(&c->reg, fd);
        if (old >= 0)
            cpar__ctlout_client_lost(c, (uint32_t)old);
    }
    cpar__cancel_lost(c);
    slot = cpar_registry_client(&c->reg, ident, identlen);
    if (slot < 0 || cpar_registry_client_set_fd(&c->reg, (uint32_t)slot, fd) != 0) {
        cpar__ctlout_error_ident(c, ident, identlen, m->h.msg_id, CPAR_ENOMEM,
                                 "controller out of memory");
        return;
    }
    switch (m->h.type) {
    case CPAR_MSG_CONNECT:
        cpar__on_connect(c, slot, m);
        return;
    case CPAR_MSG_EXECUTE:
    case CPAR_MSG_APPLY:
    case CPAR_MSG_INTERRUPT:
    case CPAR_MSG_RELEASE:
    case CPAR_MSG_PROBE: /* answered by a REPLY, routed like EXECUTE's */
        cpar__on_request(c, slot, m);
        return;
    case CPAR_MSG_SHUTDOWN:
        cpar__on_shutdown(c, slot, m);
        return;
    case CPAR_MSG_TASK:
        cpar__ctltask_on_task(c, slot, m);
        return;
    case CPAR_MSG_ABORT:
        cpar__ctltask_on_abort(c, slot, m);
        cpar__ctleng_reap_unreachable(c);
        return;
    case CPAR_MSG_QUERY:
        cpar__ctltask_on_query(c, slot, m);
        return;
    case CPAR_MSG_DB_REQUEST:
        cpar__on_db_request(c, slot, m);
        return;
    case CPAR_MSG_RECLAIM:
        cpar__ctlrec_on_reclaim(c, slot, m); /* controller_recover.c */
        return;
    default:
        c->cnt.unexpected[CPAR__SIDE_CLIENT]++;
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ETYPE,
                           "message type %d is not a client request", m->h.type);
        return;
    }
}
