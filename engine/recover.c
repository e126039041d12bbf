/* The engine I/O thread's connection to the controller and its recovery (docs/recovery.md,
 * "Engines"): the DEALER and its monitor, REGISTER, what happens when the controller is lost
 * (a new DEALER, a REGISTER with recover=1 and the ids held, the main thread's messages held
 * in order) and the REGISTER_REPLY that ends it; and cpar_recover, the ids and messages held.
 *
 * Ownership and threads: all of it belongs to the I/O thread's cpar__io, used by whoever
 * holds engine->io_turn (io_int.h); the connection is only lost and recovered on the I/O
 * thread, and the main thread never reads or sends directly while it is lost. A cpar_recover
 * owns the frames of the held messages until cpar_recover_flush sends them or
 * cpar_recover_free closes them. Never touches Python. */
#include "io_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "sock.h"

/* One held multipart message: header frame first, as it goes on the wire. */
struct cpar_recover_held {
    cpar_recover_held *next;
    int reply;                         /* a REPLY: its parent is untracked once it is sent */
    uint8_t parent[CPAR_WIRE_ID_SIZE]; /* of a REPLY */
    size_t nparts;
    zmq_msg_t parts[]; /* owned */
};

void
cpar_recover_init(cpar_recover *r)
{
    memset(r, 0, sizeof(*r));
    cpar_idtab_init(&r->tab, 64);
    r->seed = cpar_idtab_seed((uint64_t)(uintptr_t)r);
}

static void
cpar__recover_held_free(cpar_recover_held *h)
{
    for (size_t i = 0; i < h->nparts; i++)
        zmq_msg_close(&h->parts[i]);
    free(h);
}

void
cpar_recover_free(cpar_recover *r)
{
    cpar_recover_held *h = r->head;
    while (h != NULL) {
        cpar_recover_held *next = h->next;
        cpar__recover_held_free(h);
        h = next;
    }
    cpar_idtab_free(&r->tab);
    free(r->ids);
    free(r->free_slots);
    memset(r, 0, sizeof(*r));
}

/* ---- the ids held ---------------------------------------------------------------------- */

/* The slot of the table holding id, or CPAR_IDTAB_END. */
static size_t
cpar__recover_find(const cpar_recover *r, const uint8_t id[CPAR_WIRE_ID_SIZE], uint64_t hash)
{
    for (size_t s = cpar_idtab_first(&r->tab, hash); s != CPAR_IDTAB_END;
         s = cpar_idtab_next(&r->tab, s, hash))
        if (memcmp(r->ids[r->tab.slots[s].item - 1], id, CPAR_WIRE_ID_SIZE) == 0)
            return s;
    return CPAR_IDTAB_END;
}

int
cpar_recover_track(cpar_recover *r, const uint8_t id[CPAR_WIRE_ID_SIZE])
{
    uint64_t hash = cpar_idtab_hash(id, CPAR_WIRE_ID_SIZE, r->seed);
    size_t at;

    if (r->tab.count > 0 && cpar__recover_find(r, id, hash) != CPAR_IDTAB_END)
        return 0;
    if (r->nfree == 0 && r->used == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        uint8_t(*ids)[CPAR_WIRE_ID_SIZE] = realloc(r->ids, cap * sizeof(*ids));
        size_t *free_slots;
        if (ids == NULL)
            return CPAR_ENOMEM;
        r->ids = ids;
        free_slots = realloc(r->free_slots, cap * sizeof(*free_slots));
        if (free_slots == NULL)
            return CPAR_ENOMEM;
        r->free_slots = free_slots;
        r->cap = cap;
    }
    at = r->nfree > 0 ? r->free_slots[r->nfree - 1] : r->used;
    memcpy(r->ids[at], id, CPAR_WIRE_ID_SIZE);
    if (cpar_idtab_put(&r->tab, hash, (uintptr_t)at + 1) != 0)
        return CPAR_ENOMEM;
    if (r->nfree > 0)
        r->nfree--;
    else
        r->used++;
    return 0;
}

void
cpar_recover_untrack(cpar_recover *r, const uint8_t id[CPAR_WIRE_ID_SIZE])
{
    size_t s;
    if (r->tab.count == 0)
        return;
    s = cpar__recover_find(r, id, cpar_idtab_hash(id, CPAR_WIRE_ID_SIZE, r->seed));
    if (s == CPAR_IDTAB_END)
        return;
    r->free_slots[r->nfree++] = (size_t)r->tab.slots[s].item - 1; /* cap >= used > nfree */
    cpar_idtab_remove_at(&r->tab, s);
}

size_t
cpar_recover_count(const cpar_recover *r)
{
    return r->tab.count;
}

int
cpar_recover_add_ids(const cpar_recover *r, cpar_msg *m)
{
    size_t n = r->tab.count, k = 0;
    uint8_t *buf = malloc(n > 0 ? n * CPAR_WIRE_ID_SIZE : 1);
    int rc;

    if (buf == NULL)
        return CPAR_ENOMEM;
    for (size_t s = 0; s < r->tab.nslots && k < n; s++)
        if (r->tab.slots[s].item != 0)
            memcpy(buf + CPAR_WIRE_ID_SIZE * k++, r->ids[r->tab.slots[s].item - 1],
                   CPAR_WIRE_ID_SIZE);
    rc = cpar_msg_add_copy(m, buf, k * CPAR_WIRE_ID_SIZE);
    free(buf);
    return rc;
}

int
cpar_recover_reply_parent(const zmq_msg_t *header, uint8_t parent[CPAR_WIRE_ID_SIZE])
{
    cpar_header h;
    if (zmq_msg_size((zmq_msg_t *)header) != CPAR_WIRE_HEADER_SIZE ||
        cpar_wire_header_decode(zmq_msg_data((zmq_msg_t *)header), CPAR_WIRE_HEADER_SIZE, &h) !=
            0 ||
        h.type != CPAR_MSG_REPLY)
        return 0;
    memcpy(parent, h.parent, CPAR_WIRE_ID_SIZE);
    return 1;
}

/* ---- the held messages ----------------------------------------------------------------- */

/* Appends a message of n parts (moved from parts, which is left empty) to the queue, or
 * drops it when it is a STREAM over the bound. */
static int
cpar__recover_hold(cpar_recover *r, zmq_msg_t *parts, size_t n)
{
    cpar_recover_held *h;
    size_t bytes = 0;
    uint8_t parent[CPAR_WIRE_ID_SIZE];
    int reply = n > 0 && cpar_recover_reply_parent(&parts[0], parent);
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        bytes += zmq_msg_size(&parts[i]);
    if (!reply && r->stream_bytes + bytes > CPAR_RECOVER_STREAM_MAX) {
        r->dropped_streams++;
        r->dropped_bytes += bytes;
        if (r->dropped_streams == 1)
            cpar_elog("more than %llu MiB of output held while the controller is away: the "
                      "rest is dropped (counted)",
                      (unsigned long long)(CPAR_RECOVER_STREAM_MAX >> 20));
        goto drop;
    }
    h = malloc(sizeof(*h) + n * sizeof(zmq_msg_t));
    if (h == NULL) {
        cpar_elog("out of memory holding a %s for the controller; dropped",
                  reply ? "REPLY" : "STREAM");
        rc = CPAR_ENOMEM;
        goto drop;
    }
    h->next = NULL;
    h->reply = reply;
    if (reply)
        memcpy(h->parent, parent, CPAR_WIRE_ID_SIZE);
    h->nparts = n;
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&h->parts[i]);
        zmq_msg_move(&h->parts[i], &parts[i]);
    }
    if (r->tail != NULL)
        r->tail->next = h;
    else
        r->head = h;
    r->tail = h;
    if (reply)
        r->held_replies++;
    else
        r->stream_bytes += bytes;
    return 0;
drop:
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}

int
cpar_recover_hold_from(cpar_recover *r, zmq_msg_t *first, void *from)
{
    zmq_msg_t *parts;
    size_t n = 1, cap = 8;
    int more = zmq_msg_more(first), rc;

    parts = malloc(cap * sizeof(*parts));
    if (parts == NULL) {
        zmq_msg_close(first);
        rc = CPAR_ENOMEM;
        goto error;
    }
    zmq_msg_init(&parts[0]);
    zmq_msg_move(&parts[0], first);
    zmq_msg_close(first);
    while (more) {
        if (n == cap) {
            zmq_msg_t *grown = realloc(parts, 2 * cap * sizeof(*parts));
            if (grown == NULL) {
                rc = CPAR_ENOMEM;
                goto error;
            }
            parts = grown;
            cap *= 2;
        }
        zmq_msg_init(&parts[n]);
        if (zmq_msg_recv(&parts[n], from, 0) < 0) {
            zmq_msg_close(&parts[n]);
            rc = CPAR_EZMQ;
            goto error;
        }
        more = zmq_msg_more(&parts[n]);
        n++;
    }
    rc = cpar__recover_hold(r, parts, n);
    free(parts);
    return rc;
error:
    cpar_elog("cannot hold a message for the controller: %s; dropped", cpar_strerror(rc));
    for (size_t i = 0; parts != NULL && i < n; i++)
        zmq_msg_close(&parts[i]);
    while (more) { /* the rest of a message half read */
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, from, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    free(parts);
    return rc;
}

int
cpar_recover_hold_msg(cpar_recover *r, cpar_signer *s, cpar_msg *m)
{
    zmq_msg_t *parts;
    size_t n = m->nframes + 1;
    int rc = cpar_wire_seal(s, m);

    if (rc != 0)
        return rc;
    parts = malloc(n * sizeof(*parts));
    if (parts == NULL || zmq_msg_init_size(&parts[0], CPAR_WIRE_HEADER_SIZE) != 0) {
        free(parts);
        return CPAR_ENOMEM;
    }
    memcpy(zmq_msg_data(&parts[0]), m->raw, CPAR_WIRE_HEADER_SIZE);
    for (size_t i = 0; i < m->nframes; i++) {
        zmq_msg_init(&parts[i + 1]);
        zmq_msg_move(&parts[i + 1], &m->frames[i]);
    }
    cpar_msg_close(m);
    rc = cpar__recover_hold(r, parts, n);
    free(parts);
    return rc;
}

size_t
cpar_recover_flush(cpar_recover *r, void *sock)
{
    size_t replies = 0;
    cpar_recover_held *h = r->head;

    while (h != NULL) {
        cpar_recover_held *next = h->next;
        size_t i = 0;
        for (; i < h->nparts; i++) {
            int flags = ZMQ_DONTWAIT | (i + 1 < h->nparts ? ZMQ_SNDMORE : 0);
            if (zmq_msg_send(&h->parts[i], sock, flags) < 0) {
                cpar_elog("cannot send a held message to the controller (%s); dropped",
                          zmq_strerror(zmq_errno()));
                break;
            }
        }
        for (; i < h->nparts; i++) /* what was not sent */
            zmq_msg_close(&h->parts[i]);
        if (h->reply) {
            cpar_recover_untrack(r, h->parent);
            replies++;
        }
        free(h);
        h = next;
    }
    r->head = r->tail = NULL;
    r->held_replies = 0;
    r->stream_bytes = 0;
    r->dropped_streams = 0;
    r->dropped_bytes = 0;
    return replies;
}

/* ---- the connection ---------------------------------------------------------------------- */

/* Watches the dealer's security handshakes (a CURVE key mismatch fails them) and its
 * connection (a controller that died closes it). Returns 0, or -1 (then io->mon is NULL: a
 * mismatch only shows as a registration timeout, a dead controller as silence). */
int
cpar__io_monitor(cpar__io *io)
{
    char name[32]; /* a new inproc name per socket: the old one may still be bound */
    snprintf(name, sizeof(name), "engine%u", io->sockets);
    io->mon = cpar_sock_monitor_open(io->e->zctx, io->dealer,
                                     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED |
                                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
                                     name, io);
    return io->mon != NULL ? 0 : -1;
}

/* Sends (queues) a REGISTER asking for id `target`. With `recover`, frame 0 has the line
 * recover=1 and frame 1 the ids of the requests held. Returns 0, or -1 (logged). */
int
cpar__io_send_register(cpar__io *io, int32_t target, int recover)
{
    cpar_engine *e = io->e;
    cpar_msg m;
    char host[256] = "", token[CPAR_SHM_TOKEN_SIZE] = "";
    char payload[720];
    int n;

    gethostname(host, sizeof(host) - 1);
    /* The locality token tells clients on this host that they may use shared memory. */
    if (!e->shm || cpar_shm_token(token, sizeof(token)) != 0)
        token[0] = '\0';
    n = snprintf(payload, sizeof(payload), "pid=%d\nhost=%s\n%s%s%s%s", (int)getpid(), host,
                 token[0] ? "shm=" : "", token, token[0] ? "\n" : "", recover ? "recover=1\n" : "");
    if (n < 0 || (size_t)n >= sizeof(payload))
        n = (int)strlen(payload);
    cpar_msg_init(&m, CPAR_MSG_REGISTER);
    m.h.target = target;
    cpar_engine_new_id(m.h.msg_id);
    memcpy(io->register_id, m.h.msg_id, CPAR_WIRE_ID_SIZE);
    m.h.t0 = cpar_now_ns();
    if (cpar_msg_add_copy(&m, payload, (size_t)n) != 0 ||
        (recover && cpar_recover_add_ids(&io->rec, &m) != 0) || cpar__io_send(io, &m) != 0) {
        cpar_msg_close(&m);
        cpar_elog("cannot send REGISTER to %s: %s", e->engine_url, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* The reason a refusing REGISTER_REPLY gives in frame 0 ("error=<why>\n"), into why. */
void
cpar__io_refusal(cpar_msg *m, char *why, size_t size)
{
    why[0] = '\0';
    if (m->nframes > 0 && zmq_msg_size(&m->frames[0]) > 6 &&
        memcmp(zmq_msg_data(&m->frames[0]), "error=", 6) == 0) {
        size_t len = zmq_msg_size(&m->frames[0]) - 6;
        if (len >= size)
            len = size - 1;
        memcpy(why, (const char *)zmq_msg_data(&m->frames[0]) + 6, len);
        why[len] = '\0';
        why[strcspn(why, "\r\n")] = '\0';
    }
}

/* Opens the DEALER to the controller (CURVE keys, monitor) and connects it. 0, or -1
 * (logged; what was opened stays in io for cpar__io_close). */
int
cpar__io_open(cpar__io *io)
{
    cpar_engine *e = io->e;

    io->sockets++;
    io->handshake_ok = 0;
    /* No high-water marks: a blocked send would stop the heartbeats; the engine exits
     * when the controller goes silent, which bounds what can pile up. */
    io->dealer = cpar_sock_new(e->zctx, ZMQ_DEALER, 2000, 0);
    if (io->dealer == NULL) {
        cpar_elog("cannot create a socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (e->curve.server[0] && cpar_curve_client(io->dealer, &e->curve) != 0) {
        cpar_elog("cannot set the CURVE keys: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (cpar__io_monitor(io) != 0)
        cpar_elog("no handshake monitor (%s): a key mismatch will show as a timeout",
                  zmq_strerror(zmq_errno()));
    if (zmq_connect(io->dealer, e->engine_url) != 0) {
        cpar_elog("cannot connect to %s: %s", e->engine_url, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* Closes the DEALER and its monitor; with `drop`, what it has not sent yet is dropped. */
void
cpar__io_close(cpar__io *io, int drop)
{
    int zero = 0;
    if (io->dealer != NULL && drop)
        zmq_setsockopt(io->dealer, ZMQ_LINGER, &zero, sizeof(zero));
    cpar_sock_monitor_close(io->dealer, io->mon); /* stops before its PAIR closes */
    io->mon = NULL;
    if (io->dealer != NULL)
        zmq_close(io->dealer);
    io->dealer = NULL;
}

/* The controller is lost (its connection dropped, or `silent`: nothing heard for 10
 * timeouts): with a grace period, a new DEALER to the same URL and a REGISTER queued on it
 * with recover=1 and the ids held; the main thread's messages are held meanwhile (see
 * cpar__io_on_pair). Lost again while waiting: the same, within the same deadline. */
void
cpar__io_lose(cpar__io *io, uint64_t now, int silent)
{
    cpar_engine *e = io->e;

    if (io->stopping)
        return;
    if (io->lost_until == 0) {
        io->lost_until = now + (uint64_t)io->grace_ms * 1000000u;
        io->handshake_logged = 0;
        if (silent)
            cpar_elog("nothing heard from the controller at %s for %d ms; waiting up to %g s "
                      "for it to come back (cpar cluster recover)",
                      e->engine_url, e->hb_timeout_ms * 10, io->grace_ms / 1000.0);
        else
            cpar_elog("the connection to the controller at %s dropped; waiting up to %g s for "
                      "it to come back (cpar cluster recover)",
                      e->engine_url, io->grace_ms / 1000.0);
    } else {
        cpar_elog_info("the connection to %s dropped again before the REGISTER_REPLY; "
                       "registering again",
                       e->engine_url);
    }
    e->rx_main = 0; /* this thread watches the new DEALER; the main thread's fd is stale */
    cpar__io_close(io, 1);
    if (cpar__io_open(io) != 0 || cpar__io_send_register(io, e->id, 1) != 0) {
        cpar_elog("cannot reconnect to the controller at %s; exiting", e->engine_url);
        cpar__io_begin_stop(io, 1);
        return;
    }
    cpar_elog_info("queued a REGISTER for engine %d holding %zu request(s)", (int)e->id,
                   cpar_recover_count(&io->rec));
}

/* A message on the new DEALER while the controller is lost: only the REGISTER_REPLY to our
 * REGISTER counts. */
void
cpar__io_on_lost_message(cpar__io *io, cpar_msg *m)
{
    cpar_engine *e = io->e;
    unsigned long dropped;
    unsigned long long dropped_bytes;
    size_t replies;
    char why[256];

    if (m->h.type != CPAR_MSG_REGISTER_REPLY ||
        memcmp(m->h.parent, io->register_id, CPAR_WIRE_ID_SIZE) != 0) {
        cpar__io_drop(io, "not the REGISTER_REPLY while re-registering");
        goto done;
    }
    if (m->h.status != 0) {
        cpar__io_refusal(m, why, sizeof(why));
        cpar_elog("the controller at %s refused the re-registration of engine %d: %s (%d)%s%s; "
                  "exiting",
                  e->engine_url, (int)e->id, cpar_strerror(m->h.status), m->h.status,
                  why[0] ? ": " : "", why);
        cpar__io_begin_stop(io, 1);
        goto done;
    }
    if (m->h.engine != e->id) {
        cpar_elog("the controller at %s re-registered this engine as engine %d, not as engine "
                  "%d (its id); exiting",
                  e->engine_url, (int)m->h.engine, (int)e->id);
        cpar__io_begin_stop(io, 1);
        goto done;
    }
    cpar__io_parse_reply(io, m);
    dropped = io->rec.dropped_streams;
    dropped_bytes = (unsigned long long)io->rec.dropped_bytes;
    replies = io->rec.held_replies;
    io->lost_until = 0;
    /* Logged first: what the controller then receives is already in the log. */
    if (dropped)
        cpar_elog("re-registered with %s as engine %d (held: %zu replies; %lu output messages, "
                  "%llu bytes, over the %llu MiB held were dropped)",
                  e->engine_url, (int)e->id, replies, dropped, dropped_bytes,
                  (unsigned long long)(CPAR_RECOVER_STREAM_MAX >> 20));
    else
        cpar_elog("re-registered with %s as engine %d (held: %zu replies)", e->engine_url,
                  (int)e->id, replies);
    cpar_recover_flush(&io->rec, io->dealer);
    io->last_heard = io->next_hb = cpar_mono_ns();
    io->lost_at = 0;
done:
    cpar_msg_close(m);
}

/* cpar_capture_each's sink while the controller is lost: holds a STREAM. */
int
cpar__io_hold_stream(void *arg, cpar_msg *m)
{
    cpar__io *io = arg;
    return cpar_recover_hold_msg(&io->rec, io->signer, m);
}
