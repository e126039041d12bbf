/* The client connection's shared-memory path (docs/protocol.md, "Shared memory"): which
 * engines share our host, descriptors for large request frames and their pins, resolving
 * shared-memory REPLYs and the RELEASE that follows (clientio_int.h). Runs on the I/O
 * thread only. */
#include "clientio_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

static atomic_int_fast64_t cpar__shm_pinned;   /* frames pinned by every connection */
static atomic_int_fast64_t cpar__shm_total[3]; /* sent, received, failed: every connection */

static void
cpar__shm_unpin(cpar_clientio *io, size_t released)
{
    (void)io;
    if (released)
        atomic_fetch_sub_explicit(&cpar__shm_pinned, (int64_t)released, memory_order_relaxed);
}

static atomic_int_fast64_t cpar__shm_denials[2]; /* denied directions, fallbacks: all */

static cpar__shm_peer *
cpar__shm_peer_at(cpar_clientio *io, int32_t engine)
{
    return engine >= 0 && (size_t)engine < io->npeers ? &io->peers[engine] : NULL;
}

/* Sends a PROBE to engine `id` (a local one): a 64-byte pattern by descriptor, pinned
 * until the engine answers, offering SHM_OK so that it answers with its own. */
static void
cpar__shm_probe(cpar_clientio *io, int32_t id)
{
    cpar__shm_peer *peer = cpar__shm_peer_at(io, id);
    uint8_t target[4], pattern[CPAR_SHM_PROBE_SIZE];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0;
    cpar_shm_seal seal;
    cpar_msg m;

    if (peer == NULL || (peer->flags & (CPAR__PEER_PROBING | CPAR__PEER_PROBED)))
        return;
    cpar_msg_init(&m, CPAR_MSG_PROBE);
    m.h.flags = CPAR_FLAG_TARGETED | CPAR_FLAG_SHM_OK;
    m.h.t0 = cpar_now_ns();
    cpar_ids_next(&io->ids, m.h.msg_id);
    for (int i = 0; i < 4; i++)
        target[i] = (uint8_t)((uint32_t)id >> (8 * i));
    cpar_shm_probe_fill(pattern);
    if (cpar_msg_add_copy(&m, target, sizeof(target)) != 0 ||
        cpar_msg_add_copy(&m, pattern, sizeof(pattern)) != 0 ||
        cpar_shm_offload(&m, 1, CPAR_SHM_PROBE_SIZE, &pinned, &npinned, &seal) <= 0) {
        cpar_msg_close(&m);
        return; /* unprobed: that engine gets the socket path */
    }
    memcpy(peer->probe, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    if (cpar_wire_send(io->sock, io->signer, NULL, 0, &m, ZMQ_DONTWAIT) != 0) {
        cpar_shm_seal_break(&seal);
        for (size_t i = 0; i < npinned; i++)
            zmq_msg_close(&pinned[i]);
        free(pinned);
        cpar_msg_close(&m);
        return;
    }
    cpar_msg_close(&m);
    if (cpar_shm_pins_add(&io->pins, peer->probe, pinned, npinned, &seal, &id, 1) == 0)
        atomic_fetch_add_explicit(&cpar__shm_pinned, (int64_t)npinned, memory_order_relaxed);
    peer->flags |= CPAR__PEER_PROBING;
    atomic_fetch_add(&io->shm_probing, 1);
}

/* Forgets what we know about engine `id` (it left, or the engine list was re-read). */
static void
cpar__shm_peer_reset(cpar_clientio *io, cpar__shm_peer *peer)
{
    if (peer->flags & CPAR__PEER_PROBING)
        atomic_fetch_sub(&io->shm_probing, 1);
    memset(peer, 0, sizeof(*peer));
}

/* Records whether engine `id` shares our locality token (tok[0..len)); probes it if so. */
static void
cpar__shm_set_local(cpar_clientio *io, long id, const char *tok, size_t len)
{
    int local = len == strlen(io->token) && memcmp(tok, io->token, len) == 0;
    cpar__shm_peer *peer;
    if (id < 0 || id >= CPAR_WIRE_MAX_TARGETS)
        return;
    if ((size_t)id >= io->npeers) {
        size_t n = (size_t)id + 1 < 64 ? 64 : ((size_t)id + 1) * 2;
        cpar__shm_peer *np;
        if (!local)
            return;
        np = realloc(io->peers, n * sizeof(*np));
        if (np == NULL)
            return; /* the engine just gets the TCP path */
        memset(np + io->npeers, 0, (n - io->npeers) * sizeof(*np));
        io->peers = np;
        io->npeers = n;
    }
    peer = &io->peers[id];
    cpar__shm_peer_reset(io, peer);
    if (local) {
        peer->flags = CPAR__PEER_LOCAL;
        cpar__shm_probe(io, (int32_t)id);
    }
}

/* Records engine `id`'s pid as the controller states it (from its REGISTER). */
static void
cpar__shm_set_pid(cpar_clientio *io, long id, long pid)
{
    cpar__shm_peer *peer = cpar__shm_peer_at(io, (int32_t)id);
    if (peer != NULL && pid > 0 && pid <= INT32_MAX)
        peer->pid = (uint32_t)pid;
}

/* Reads "id pid host\n" lines (CONNECT_REPLY frame 1), after the tokens. */
static void
cpar__shm_parse_pids(cpar_clientio *io, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        char line[64];
        size_t n = (size_t)(eol - p) < sizeof(line) - 1 ? (size_t)(eol - p) : sizeof(line) - 1;
        long id, pid;
        memcpy(line, p, n);
        line[n] = '\0';
        if (sscanf(line, "%ld %ld", &id, &pid) == 2)
            cpar__shm_set_pid(io, id, pid);
        p = eol + 1;
    }
}

/* Reads "id token\n" lines (CONNECT_REPLY frame 2). */
static void
cpar__shm_parse_lines(cpar_clientio *io, const char *p, size_t len)
{
    const char *end = p + len;
    for (size_t i = 0; i < io->npeers; i++)
        cpar__shm_peer_reset(io, &io->peers[i]);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *sp = memchr(p, ' ', (size_t)(eol - p));
        if (sp != NULL && sp > p) {
            char num[16];
            size_t nlen = (size_t)(sp - p) < sizeof(num) - 1 ? (size_t)(sp - p) : sizeof(num) - 1;
            memcpy(num, p, nlen);
            num[nlen] = '\0';
            cpar__shm_set_local(io, strtol(num, NULL, 10), sp + 1, (size_t)(eol - sp - 1));
        }
        p = eol + 1;
    }
}

static void cpar__shm_release(cpar_clientio *io, int32_t engine,
                              const uint8_t parent[CPAR_WIRE_ID_SIZE]);

/* The answer to our PROBE of `peer` (m: its REPLY, or an ERROR about it). */
static void
cpar__shm_on_probe_answer(cpar_clientio *io, cpar__shm_peer *peer, cpar_msg *m)
{
    char err[300];
    int rc;

    atomic_fetch_sub(&io->shm_probing, 1);
    peer->flags &= (uint8_t)~CPAR__PEER_PROBING;
    if (m->h.type != CPAR_MSG_REPLY)
        return; /* the engine left or was refused: it stays unprobed (socket path) */
    peer->flags |= CPAR__PEER_PROBED;
    if (m->nframes >= 1 && zmq_msg_size(&m->frames[0]) == 2 &&
        memcmp(zmq_msg_data(&m->frames[0]), "ok", 2) == 0)
        peer->flags |= CPAR__PEER_READS_US;
    else
        atomic_fetch_add_explicit(&io->shm_denied, 1, memory_order_relaxed);
    if (m->h.flags & CPAR_FLAG_SHM) {
        /* The engine's process as the controller registered it (0: unknown, then the
         * probe's names it); its later replies must name the same. */
        uint32_t pid = peer->pid ? peer->pid : cpar_shm_sender_pid(m);
        rc = cpar_shm_resolve(m, pid, err, sizeof(err));
        if (rc == 0 && m->nframes >= 2 && cpar_shm_probe_check(&m->frames[1])) {
            peer->flags |= CPAR__PEER_WE_READ;
            peer->pid = pid;
        } else {
            atomic_fetch_add_explicit(&io->shm_denied, 1, memory_order_relaxed);
        }
        cpar__shm_release(io, m->h.engine, m->h.parent);
    }
    if ((peer->flags & (CPAR__PEER_READS_US | CPAR__PEER_WE_READ)) !=
        (CPAR__PEER_READS_US | CPAR__PEER_WE_READ))
        atomic_fetch_add_explicit(&cpar__shm_denials[0], 1, memory_order_relaxed);
}

/* Before sending a request: offers shared-memory replies (SHM_OK) when we can read every
 * target, and sends its large frames by descriptor when every target can read us (both
 * learnt by probes). Fills *out for cpar__shm_pin. */
void
cpar__clientio_shm_prepare(cpar_clientio *io, cpar_msg *m, cpar__clientio_shm_out *out)
{
    int n, reads_us = 1, we_read = 1, denied = 0;

    memset(out, 0, sizeof(*out));
    if (!io->shm || (m->h.type != CPAR_MSG_EXECUTE && m->h.type != CPAR_MSG_APPLY) ||
        (m->h.flags & (CPAR_FLAG_SHM | CPAR_FLAG_SHM_OK)))
        return;
    n = cpar_wire_targets(m);
    if (n <= 0)
        return;
    memcpy(out->id, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    for (int i = 0; i < n; i++) {
        cpar__shm_peer *peer = cpar__shm_peer_at(io, cpar_wire_target_at(m, (size_t)i));
        if (peer == NULL || !(peer->flags & CPAR__PEER_LOCAL))
            return; /* another host (or unknown): the socket */
        reads_us &= (peer->flags & CPAR__PEER_READS_US) != 0;
        we_read &= (peer->flags & CPAR__PEER_WE_READ) != 0;
        if ((peer->flags & CPAR__PEER_PROBED) &&
            (peer->flags & (CPAR__PEER_READS_US | CPAR__PEER_WE_READ)) !=
                (CPAR__PEER_READS_US | CPAR__PEER_WE_READ))
            denied = 1;
    }
    if (denied) {
        atomic_fetch_add_explicit(&io->shm_fallback, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&cpar__shm_denials[1], 1, memory_order_relaxed);
    }
    if (we_read && cpar_idmap_put(&io->offered, m->h.msg_id, CPAR_WIRE_ID_SIZE, n) == 0)
        m->h.flags |= CPAR_FLAG_SHM_OK;
    if (!reads_us)
        return;
    out->targets = malloc((size_t)n * sizeof(int32_t));
    if (out->targets == NULL)
        return;
    for (int i = 0; i < n; i++)
        out->targets[i] = cpar_wire_target_at(m, (size_t)i);
    out->ntargets = (size_t)n;
    if (cpar_shm_offload(m, 1, CPAR_SHM_MIN_SIZE, &out->frames, &out->nframes, &out->seal) <= 0) {
        out->frames = NULL;
        out->nframes = 0;
    }
}

/* After the send: pins what was offloaded until the engines answer (sent), or drops it. */
void
cpar__clientio_shm_pin(cpar_clientio *io, cpar__clientio_shm_out *out, int sent)
{
    if (!sent)
        cpar_idmap_del(&io->offered, out->id, CPAR_WIRE_ID_SIZE);
    if (out->frames != NULL) {
        if (sent) {
            if (cpar_shm_pins_add(&io->pins, out->id, out->frames, out->nframes, &out->seal,
                                  out->targets, out->ntargets) == 0) {
                atomic_fetch_add_explicit(&cpar__shm_pinned, (int64_t)out->nframes,
                                          memory_order_relaxed);
                atomic_fetch_add_explicit(&io->shm_sent, out->nframes, memory_order_relaxed);
                atomic_fetch_add_explicit(&cpar__shm_total[0], (int64_t)out->nframes,
                                          memory_order_relaxed);
            }
        } else {
            cpar_shm_seal_break(&out->seal);
            for (size_t i = 0; i < out->nframes; i++)
                zmq_msg_close(&out->frames[i]);
            free(out->frames);
        }
    }
    free(out->targets);
    memset(out, 0, sizeof(*out));
}

/* One engine (engine < 0: all) answered request `id`: 1 when the request had offered
 * shared-memory replies (before this answer). */
static int
cpar__shm_offered_answer(cpar_clientio *io, const uint8_t id[CPAR_WIRE_ID_SIZE], int32_t engine)
{
    int32_t left;
    if (!cpar_idmap_get(&io->offered, id, CPAR_WIRE_ID_SIZE, &left))
        return 0;
    if (engine < 0 || left <= 1)
        cpar_idmap_del(&io->offered, id, CPAR_WIRE_ID_SIZE);
    else
        cpar_idmap_put(&io->offered, id, CPAR_WIRE_ID_SIZE, left - 1);
    return 1;
}

/* Tells engine `engine` it may unpin the frames of its REPLY to request `parent`. */
static void
cpar__shm_release(cpar_clientio *io, int32_t engine, const uint8_t parent[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    uint8_t target[4];

    cpar_msg_init(&m, CPAR_MSG_RELEASE);
    m.h.flags = CPAR_FLAG_TARGETED;
    m.h.t0 = cpar_now_ns();
    cpar_ids_next(&io->ids, m.h.msg_id);
    for (int i = 0; i < 4; i++)
        target[i] = (uint8_t)((uint32_t)engine >> (8 * i));
    if (cpar_msg_add_copy(&m, target, sizeof(target)) != 0 ||
        cpar_msg_add_copy(&m, parent, CPAR_WIRE_ID_SIZE) != 0) {
        cpar_msg_close(&m);
        return; /* the engine unpins on its own after CPAR_SHM_PIN_TIMEOUT_NS */
    }
    cpar_wire_send(io->sock, io->signer, NULL, 0, &m, ZMQ_DONTWAIT);
    cpar_msg_close(&m);
}

/* A received message, before it reaches the inbox: learns engine locality, unpins what
 * answered requests pinned, resolves a shared-memory REPLY. Returns the item to queue
 * (it, or an ERROR item replacing it when the read failed). */
cpar_clientio_item *
cpar__clientio_shm_on_recv(cpar_clientio *io, cpar_clientio_item *it)
{
    cpar_msg *m = &it->m;
    char err[300], text[400];
    cpar__shm_peer *peer;
    cpar_clientio_item *e;
    int rc, len, offered;

    switch (m->h.type) {
    case CPAR_MSG_CONNECT_REPLY:
        if (io->shm && m->nframes >= 3) {
            cpar__shm_parse_lines(io, zmq_msg_data(&m->frames[2]), zmq_msg_size(&m->frames[2]));
            cpar__shm_parse_pids(io, zmq_msg_data(&m->frames[1]), zmq_msg_size(&m->frames[1]));
        }
        return it;
    case CPAR_MSG_ENGINE_EVENT:
        if (!io->shm)
            return it;
        if (m->h.status && m->nframes >= 1) {
            cpar__shm_set_local(io, m->h.engine, zmq_msg_data(&m->frames[0]),
                                zmq_msg_size(&m->frames[0]));
            if (m->nframes >= 2) {
                char line[64];
                size_t n = zmq_msg_size(&m->frames[1]);
                long pid;
                n = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
                memcpy(line, zmq_msg_data(&m->frames[1]), n);
                line[n] = '\0';
                if (sscanf(line, "%ld", &pid) == 1)
                    cpar__shm_set_pid(io, m->h.engine, pid);
            }
        } else if (!m->h.status && (peer = cpar__shm_peer_at(io, m->h.engine)) != NULL)
            cpar__shm_peer_reset(io, peer);
        return it;
    case CPAR_MSG_ERROR: {
        /* "Engine died" is about one engine; every other ERROR refuses the whole request
         * (nothing was forwarded), whichever engine it names. */
        int32_t who = m->h.status == CPAR_EENGINEDEAD ? m->h.engine : CPAR_NO_ENGINE;
        cpar__shm_unpin(io, cpar_shm_pins_answered(&io->pins, m->h.parent, who));
        cpar__shm_offered_answer(io, m->h.parent, who);
        peer = cpar__shm_peer_at(io, m->h.engine);
        if (peer != NULL && (peer->flags & CPAR__PEER_PROBING) &&
            memcmp(peer->probe, m->h.parent, CPAR_WIRE_ID_SIZE) == 0) {
            cpar__shm_on_probe_answer(io, peer, m);
            cpar_clientio_item_free(it);
            return NULL; /* our own probe: nothing for Python */
        }
        return it;
    }
    case CPAR_MSG_REPLY:
        break;
    default:
        return it;
    }
    cpar__shm_unpin(io, cpar_shm_pins_answered(&io->pins, m->h.parent, m->h.engine));
    peer = cpar__shm_peer_at(io, m->h.engine);
    if (peer != NULL && (peer->flags & CPAR__PEER_PROBING) &&
        memcmp(peer->probe, m->h.parent, CPAR_WIRE_ID_SIZE) == 0) {
        cpar__shm_on_probe_answer(io, peer, m);
        cpar_clientio_item_free(it);
        return NULL;
    }
    offered = cpar__shm_offered_answer(io, m->h.parent, m->h.engine);
    if (!(m->h.flags & CPAR_FLAG_SHM))
        return it;
    /* Descriptors are read only for requests that offered them, and only from the process
     * that answered our probe as that engine. */
    if (!offered) {
        snprintf(err, sizeof(err),
                 "its reply came by shared memory to a request that did not "
                 "offer it; nothing was read");
        rc = CPAR_EPROTO;
    } else {
        rc = cpar_shm_resolve(m, peer != NULL ? peer->pid : 0, err, sizeof(err));
    }
    cpar__shm_release(io, m->h.engine, m->h.parent);
    if (rc == 0) {
        atomic_fetch_add_explicit(&io->shm_received, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&cpar__shm_total[1], 1, memory_order_relaxed);
        return it;
    }
    /* The reply's data cannot be read: the request fails with the reason. */
    atomic_fetch_add_explicit(&io->shm_failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cpar__shm_total[2], 1, memory_order_relaxed);
    e = cpar_clientio_item_new(CPAR_MSG_ERROR);
    if (e == NULL) {
        cpar_clientio_item_free(it);
        return NULL;
    }
    memcpy(e->m.h.parent, m->h.parent, CPAR_WIRE_ID_SIZE);
    memcpy(e->m.h.msg_id, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    e->m.h.engine = m->h.engine;
    e->m.h.status = rc == CPAR_ENOMEM || rc == CPAR_ESTALE || rc == CPAR_EPERM || rc == CPAR_EPROTO
                        ? rc
                        : CPAR_EIO;
    len = snprintf(text, sizeof(text), "the reply of engine %d could not be read: %s",
                   (int)m->h.engine, err);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof(text))
        len = (int)sizeof(text) - 1;
    cpar_msg_add_copy(&e->m, text, (size_t)len);
    e->m.h.nframes = (uint32_t)e->m.nframes;
    e->m.h.paylen = (uint64_t)len;
    cpar_clientio_item_free(it);
    return e;
}

void
cpar__clientio_shm_unpin_all(cpar_clientio *io)
{
    cpar__shm_unpin(io, cpar_shm_pins_expire(&io->pins, 0));
    cpar_idmap_free(&io->offered); /* nothing will answer those requests any more */
    for (size_t i = 0; i < io->npeers; i++)
        if (io->peers[i].flags & CPAR__PEER_PROBING) {
            io->peers[i].flags &= (uint8_t)~CPAR__PEER_PROBING;
            atomic_fetch_sub(&io->shm_probing, 1);
        }
}

void
cpar_clientio_shm_denials(int64_t *denied_peers, int64_t *fallbacks)
{
    *denied_peers = atomic_load_explicit(&cpar__shm_denials[0], memory_order_relaxed);
    *fallbacks = atomic_load_explicit(&cpar__shm_denials[1], memory_order_relaxed);
}

int64_t
cpar_clientio_shm_pinned(void)
{
    return atomic_load_explicit(&cpar__shm_pinned, memory_order_relaxed);
}

void
cpar_clientio_shm_totals(int64_t *sent, int64_t *received, int64_t *failed)
{
    *sent = atomic_load_explicit(&cpar__shm_total[0], memory_order_relaxed);
    *received = atomic_load_explicit(&cpar__shm_total[1], memory_order_relaxed);
    *failed = atomic_load_explicit(&cpar__shm_total[2], memory_order_relaxed);
}
