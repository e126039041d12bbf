/* Messages from the controller, read by whoever holds engine->io_turn (the I/O thread, or
 * the idle main thread through io_direct.c): requests (EXECUTE, APPLY, TASK) are queued for
 * the main thread on the PAIR, or the first one handed to the main thread that read it
 * (cpar__io.take); control messages (HEARTBEAT, INTERRUPT, ABORT, RELEASE, PROBE, SHUTDOWN)
 * are handled at once, by whichever thread read them.
 *
 * Ownership and threads: the cpar__io and its sockets belong to the io_turn holder
 * (io_int.h); engine->lock is taken briefly for the "under lock" fields. No Python, no
 * GIL: a long task on the main thread never delays these. */
#include "io_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* Payload frame `i` counting after the target list of a TARGETED message. */
static zmq_msg_t *
cpar__io_payload(cpar_msg *m, size_t i)
{
    size_t skip = (m->h.flags & CPAR_FLAG_TARGETED) ? 1 : 0;
    return i + skip < m->nframes ? &m->frames[i + skip] : NULL;
}

/* Reads a task's shared-memory frames now, on arrival, while its sender certainly still
 * pins them (a client may close or drop its connection right after sending; the seal makes
 * a late read fail cleanly, reading early makes it succeed) -- up to
 * CPAR_ENGINE_EARLY_READ_MAX bytes, so that the turn (and so heartbeats and interrupts)
 * never stops for long; the runner reads larger ones before it runs the task. On
 * failure the task's frames become one frame with the reason, its status the CPAR_E* code
 * and its SHM flag stays set: the runner answers it with that error instead of running it. */
static void
cpar__io_resolve(cpar_msg *task)
{
    char err[300];
    int rc;

    task->h.status = 0; /* a request's status is ours to use from here on */
    if (!(task->h.flags & CPAR_FLAG_SHM) ||
        cpar_shm_described_bytes(task) > CPAR_ENGINE_EARLY_READ_MAX)
        return;
    rc = cpar_shm_resolve(task, 0, err, sizeof(err));
    if (rc == 0)
        return;
    for (size_t i = 0; i < task->nframes; i++)
        zmq_msg_close(&task->frames[i]);
    task->nframes = 0;
    task->h.status = rc;
    task->h.flags |= CPAR_FLAG_SHM;
    if (cpar_msg_add_copy(task, err, strlen(err)) != 0)
        task->nframes = 0;
    cpar_elog("a task's shared-memory data could not be read: %s", err);
}

/* Answers a client's PROBE (docs/protocol.md, "Shared memory", probes) at once:
 * frame 0 of the REPLY says whether we could read the client's probe frame ("ok", or
 * "denied: why"); frame 1 is our probe frame, by descriptor when shared memory is on here,
 * pinned under the probe's id until the client's RELEASE, so the client learns whether it
 * can read us. */
static void
cpar__io_probe(cpar__io *io, cpar_msg *m)
{
    cpar_engine *e = io->e;
    char err[300], text[340];
    uint8_t pattern[CPAR_SHM_PROBE_SIZE];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0, skip = (m->h.flags & CPAR_FLAG_TARGETED) ? 1 : 0;
    cpar_shm_seal seal;
    cpar_msg rep;
    int rc = CPAR_EPROTO, len;

    if (m->h.flags & CPAR_FLAG_SHM) {
        rc = cpar_shm_resolve(m, 0, err, sizeof(err));
        if (rc == 0 && (m->nframes <= skip || !cpar_shm_probe_check(&m->frames[skip]))) {
            snprintf(err, sizeof(err), "the probe frame does not hold the probe pattern");
            rc = CPAR_EPROTO;
        }
    } else {
        snprintf(err, sizeof(err), "the probe came without a descriptor");
    }
    len = rc == 0 ? snprintf(text, sizeof(text), "ok")
                  : snprintf(text, sizeof(text), "denied: %s", err);
    if (len < 0 || (size_t)len >= sizeof(text))
        len = (int)strlen(text);
    if (rc != 0)
        cpar_elog_info("cannot read a client's memory (it will send by socket): %s", err);
    cpar_msg_init(&rep, CPAR_MSG_REPLY);
    rep.h.engine = e->id;
    memcpy(rep.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    cpar_engine_new_id(rep.h.msg_id);
    rep.h.t0 = cpar_now_ns();
    rep.h.t1 = rep.h.t0;
    cpar_shm_probe_fill(pattern);
    if (cpar_msg_add_copy(&rep, text, (size_t)len) != 0 ||
        cpar_msg_add_copy(&rep, pattern, sizeof(pattern)) != 0) {
        cpar_msg_close(&rep);
        return;
    }
    if (e->shm && (m->h.flags & CPAR_FLAG_SHM_OK) &&
        cpar_shm_offload(&rep, 1, CPAR_SHM_PROBE_SIZE, &pinned, &npinned, &seal) > 0) {
        pthread_mutex_lock(&e->lock);
        rc = cpar_shm_pins_add(&e->pins, m->h.msg_id, pinned, npinned, &seal, NULL, 0);
        pthread_mutex_unlock(&e->lock);
        if (rc != 0)
            cpar_elog("out of memory pinning a probe reply");
    }
    if (cpar__io_send(io, &rep) != 0)
        cpar_elog("cannot answer a probe: %s", zmq_strerror(zmq_errno()));
    cpar_msg_close(&rep);
}

static void
cpar__io_on_message(cpar__io *io, cpar_msg *m)
{
    switch (m->h.type) {
    case CPAR_MSG_HEARTBEAT:
    case CPAR_MSG_REGISTER_REPLY:
        break;
    case CPAR_MSG_EXECUTE:
    case CPAR_MSG_APPLY:
    case CPAR_MSG_TASK: {
        cpar_msg *task;
        if (io->stopping)
            break;
        task = malloc(sizeof(*task));
        if (task == NULL) {
            cpar_elog("out of memory queueing a task; dropped");
            break;
        }
        *task = *m; /* the frames move to the heap copy */
        m->frames = NULL;
        m->nframes = m->cap = 0;
        cpar__io_resolve(task);
        /* Held from here until its REPLY passes (a re-registration lists it). A request
         * id seen again (a controller's resend) is held once. */
        if (io->grace_ms > 0 && cpar_recover_track(&io->rec, task->h.msg_id) != 0)
            cpar_elog("out of memory noting a request's id: a re-registration will not list it");
        pthread_mutex_lock(&io->e->lock);
        io->e->queued++;
        pthread_mutex_unlock(&io->e->lock);
        if (io->take && io->taken == NULL) {
            io->taken = task; /* the main thread reads it itself: runs it next */
            break;
        }
        if (cpar__io_ctl(io, CPAR_CTL_TASK, 0, task) != 0) {
            pthread_mutex_lock(&io->e->lock);
            io->e->queued--;
            pthread_mutex_unlock(&io->e->lock);
            cpar_elog("cannot queue a task: %s", zmq_strerror(zmq_errno()));
            cpar_recover_untrack(&io->rec, task->h.msg_id);
            cpar_msg_close(task);
            free(task);
        }
        break;
    }
    case CPAR_MSG_INTERRUPT: {
        zmq_msg_t *ids = cpar__io_payload(m, 0);
        size_t len = ids ? zmq_msg_size(ids) : 0;
        zmq_msg_t *sig = cpar__io_payload(m, 1); /* optional: little-endian int32 signal */
        int signum = SIGINT;
        if (sig != NULL && zmq_msg_size(sig) == 4) {
            const uint8_t *b = zmq_msg_data(sig);
            signum = (int)(int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                    (uint32_t)b[3] << 24);
        }
        cpar_engine_signal(io->e, ids ? zmq_msg_data(ids) : NULL, len / CPAR_WIRE_ID_SIZE, signum);
        break;
    }
    case CPAR_MSG_ABORT: {
        /* From the controller: frame 0 = the ids (no target list). An empty list means
         * nothing here (unlike INTERRUPT). */
        size_t len = m->nframes > 0 ? zmq_msg_size(&m->frames[0]) : 0;
        if (len >= CPAR_WIRE_ID_SIZE)
            cpar_engine_interrupt(io->e, zmq_msg_data(&m->frames[0]), len / CPAR_WIRE_ID_SIZE, 1);
        break;
    }
    case CPAR_MSG_RELEASE: {
        zmq_msg_t *ids = cpar__io_payload(m, 0);
        size_t len = ids ? zmq_msg_size(ids) : 0, released = 0;
        const uint8_t *p = ids ? zmq_msg_data(ids) : NULL;
        pthread_mutex_lock(&io->e->lock);
        for (size_t i = 0; i + CPAR_WIRE_ID_SIZE <= len; i += CPAR_WIRE_ID_SIZE)
            released += cpar_shm_pins_answered(&io->e->pins, p + i, -1);
        pthread_mutex_unlock(&io->e->lock);
        if (released) /* the buffers' Python objects are let go on the main thread */
            cpar__io_ctl(io, CPAR_CTL_DRAIN, 0, NULL);
        break;
    }
    case CPAR_MSG_PROBE:
        cpar__io_probe(io, m);
        break;
    case CPAR_MSG_SHUTDOWN:
        cpar_elog("SHUTDOWN from the controller");
        cpar__io_begin_stop(io, 0);
        break;
    default:
        cpar__io_drop(io, "a message type engines do not handle");
        break;
    }
    cpar_msg_close(m);
}

int
cpar__io_on_dealer(cpar__io *io)
{
    for (int i = 0; i < 1000; i++) {
        cpar_msg m;
        int rc = cpar_wire_recv(io->dealer, io->signer, 0, NULL, NULL, &m, ZMQ_DONTWAIT);
        if (rc == CPAR_EAGAIN)
            return 1;
        if (rc == CPAR_EZMQ) {
            if (zmq_errno() != EINTR)
                cpar_elog("receive from the controller failed: %s", zmq_strerror(zmq_errno()));
            return 0;
        }
        if (rc != 0) {
            cpar__io_drop(io, cpar_strerror(rc));
            continue;
        }
        io->last_heard = cpar_mono_ns();
        io->lost_at = 0;
        if (io->lost_until != 0) {
            cpar__io_on_lost_message(io, &m);
            if (io->stopping)
                return 0;
            continue;
        }
        cpar__io_on_message(io, &m);
    }
    return 0;
}
