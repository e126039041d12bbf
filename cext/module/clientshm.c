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

static int
cpar__shm_is_local(cpar_clientio *io, int32_t engine)
{
    return engine >= 0 && (size_t)engine < io->nlocal && io->local[engine];
}

/* Records whether engine `id` shares our locality token (tok[0..len)). */
static void
cpar__shm_set_local(cpar_clientio *io, long id, const char *tok, size_t len)
{
    int local = len == strlen(io->token) && memcmp(tok, io->token, len) == 0;
    if (id < 0 || id >= CPAR_WIRE_MAX_TARGETS)
        return;
    if ((size_t)id >= io->nlocal) {
        size_t n = (size_t)id + 1 < 64 ? 64 : ((size_t)id + 1) * 2;
        uint8_t *nl;
        if (!local)
            return;
        nl = realloc(io->local, n);
        if (nl == NULL)
            return; /* the engine just gets the TCP path */
        memset(nl + io->nlocal, 0, n - io->nlocal);
        io->local = nl;
        io->nlocal = n;
    }
    io->local[id] = (uint8_t)local;
}

/* Reads "id token\n" lines (CONNECT_REPLY frame 2). */
static void
cpar__shm_parse_lines(cpar_clientio *io, const char *p, size_t len)
{
    const char *end = p + len;
    if (io->nlocal > 0) /* io->local is NULL until an engine is known */
        memset(io->local, 0, io->nlocal);
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

/* Before sending a request: offers shared-memory replies and sends its large frames by
 * descriptor when every target shares our host. Fills *out for cpar__shm_pin. */
void
cpar__clientio_shm_prepare(cpar_clientio *io, cpar_msg *m, cpar__clientio_shm_out *out)
{
    int n;

    memset(out, 0, sizeof(*out));
    if (!io->shm || (m->h.type != CPAR_MSG_EXECUTE && m->h.type != CPAR_MSG_APPLY) ||
        (m->h.flags & (CPAR_FLAG_SHM | CPAR_FLAG_SHM_OK)))
        return;
    n = cpar_wire_targets(m);
    if (n <= 0)
        return;
    for (int i = 0; i < n; i++)
        if (!cpar__shm_is_local(io, cpar_wire_target_at(m, (size_t)i)))
            return;
    m->h.flags |= CPAR_FLAG_SHM_OK;
    out->targets = malloc((size_t)n * sizeof(int32_t));
    if (out->targets == NULL)
        return;
    for (int i = 0; i < n; i++)
        out->targets[i] = cpar_wire_target_at(m, (size_t)i);
    out->ntargets = (size_t)n;
    memcpy(out->id, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    if (cpar_shm_offload(m, 1, CPAR_SHM_MIN_SIZE, &out->frames, &out->nframes) <= 0) {
        out->frames = NULL;
        out->nframes = 0;
    }
}

/* After the send: pins what was offloaded until the engines answer (sent), or drops it. */
void
cpar__clientio_shm_pin(cpar_clientio *io, cpar__clientio_shm_out *out, int sent)
{
    if (out->frames != NULL) {
        if (sent) {
            if (cpar_shm_pins_add(&io->pins, out->id, out->frames, out->nframes, out->targets,
                                  out->ntargets) == 0) {
                atomic_fetch_add_explicit(&cpar__shm_pinned, (int64_t)out->nframes,
                                          memory_order_relaxed);
                atomic_fetch_add_explicit(&io->shm_sent, out->nframes, memory_order_relaxed);
                atomic_fetch_add_explicit(&cpar__shm_total[0], (int64_t)out->nframes,
                                          memory_order_relaxed);
            }
        } else {
            for (size_t i = 0; i < out->nframes; i++)
                zmq_msg_close(&out->frames[i]);
            free(out->frames);
        }
    }
    free(out->targets);
    memset(out, 0, sizeof(*out));
}

/* Tells engine `engine` it may unpin the frames of its REPLY to request `parent`. */
static void
cpar__shm_release(cpar_clientio *io, int32_t engine, const uint8_t parent[CPAR_WIRE_ID_SIZE])
{
    cpar_msg m;
    uint8_t target[4];
    uint64_t seq = ++io->release_seq;

    cpar_msg_init(&m, CPAR_MSG_RELEASE);
    m.h.flags = CPAR_FLAG_TARGETED;
    m.h.t0 = cpar_now_ns();
    memcpy(m.h.msg_id, io->release_prefix, 8);
    for (int i = 0; i < 8; i++)
        m.h.msg_id[8 + i] = (uint8_t)(seq >> (8 * i));
    m.h.msg_id[8] |= 0x80; /* keeps RELEASE ids apart from the client's own counters */
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
    cpar_clientio_item *e;
    int rc, len;

    switch (m->h.type) {
    case CPAR_MSG_CONNECT_REPLY:
        if (io->shm && m->nframes >= 3)
            cpar__shm_parse_lines(io, zmq_msg_data(&m->frames[2]), zmq_msg_size(&m->frames[2]));
        return it;
    case CPAR_MSG_ENGINE_EVENT:
        if (!io->shm)
            return it;
        if (m->h.status && m->nframes >= 1)
            cpar__shm_set_local(io, m->h.engine, zmq_msg_data(&m->frames[0]),
                                zmq_msg_size(&m->frames[0]));
        else if (!m->h.status && cpar__shm_is_local(io, m->h.engine))
            io->local[m->h.engine] = 0;
        return it;
    case CPAR_MSG_ERROR:
        /* "Engine died" is about one engine; every other ERROR refuses the whole request
         * (nothing was forwarded), whichever engine it names. */
        cpar__shm_unpin(io, cpar_shm_pins_answered(
                                &io->pins, m->h.parent,
                                m->h.status == CPAR_EENGINEDEAD ? m->h.engine : CPAR_NO_ENGINE));
        return it;
    case CPAR_MSG_REPLY:
        break;
    default:
        return it;
    }
    cpar__shm_unpin(io, cpar_shm_pins_answered(&io->pins, m->h.parent, m->h.engine));
    if (!(m->h.flags & CPAR_FLAG_SHM))
        return it;
    rc = cpar_shm_resolve(m, err, sizeof(err));
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
    e->m.h.status = rc == CPAR_ENOMEM ? CPAR_ENOMEM : CPAR_EIO;
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
