/* The client connection's receiving side (clientio_int.h): what its I/O thread reads from
 * the DEALER, checked, split (coalesced replies) and resolved (shared memory), into the
 * inbox.
 *
 * Threads: called by whoever holds the connection's `turn` mutex (the I/O thread). No
 * Python, no GIL. */
#include "clientio_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* Messages received per wake-up before the thread looks at its outbox again. */
#define CPAR__RECV_BATCH 4096

static uint32_t
cpar__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A coalesced REPLY (docs/protocol.md, "Coalesced replies"): frame 0 is the index (u32
 * count, then each part's payload-frame count), then each part's header frame and payload
 * frames. Each part is checked as if received alone (signature included) and appended to
 * [*head, *tail] in order; a bad part is dropped and counted. Consumes outer. */
static void
cpar__split_coalesced(cpar_clientio *io, cpar_clientio_item *outer, cpar_clientio_item **head,
                      cpar_clientio_item **tail)
{
    cpar_msg *o = &outer->m;
    const uint8_t *ix = o->nframes > 0 ? zmq_msg_data(&o->frames[0]) : NULL;
    size_t ixlen = o->nframes > 0 ? zmq_msg_size(&o->frames[0]) : 0;
    uint32_t count = ixlen >= 4 ? cpar__le32(ix) : 0;
    size_t total = 1, pos = 1;
    zmq_msg_t *parts = NULL;

    if (ixlen < 4 || count > CPAR_WIRE_MAX_FRAMES || ixlen != 4 + 4 * (size_t)count)
        goto bad;
    for (uint32_t k = 0; k < count; k++)
        total += 1 + (size_t)cpar__le32(ix + 4 + 4 * (size_t)k);
    if (total != o->nframes)
        goto bad;
    parts = malloc((o->nframes > 1 ? o->nframes - 1 : 1) * sizeof(*parts));
    if (parts == NULL)
        goto bad;
    for (uint32_t k = 0; k < count; k++) {
        size_t n = 1 + (size_t)cpar__le32(ix + 4 + 4 * (size_t)k);
        cpar_clientio_item *it = cpar_clientio_item_new(0);
        int r;
        for (size_t j = 0; j < n; j++) {
            zmq_msg_init(&parts[j]);
            zmq_msg_move(&parts[j], &o->frames[pos + j]);
        }
        pos += n;
        if (it == NULL) {
            for (size_t j = 0; j < n; j++)
                zmq_msg_close(&parts[j]);
            continue;
        }
        r = cpar_wire_parse(io->signer, parts, n, &it->m);
        if (r == CPAR_OK && ((it->m.h.type != CPAR_MSG_REPLY && it->m.h.type != CPAR_MSG_ERROR) ||
                             (it->m.h.flags & CPAR_FLAG_COALESCE) ||
                             memcmp(it->m.h.parent, o->h.parent, CPAR_WIRE_ID_SIZE) != 0))
            r = CPAR_EPROTO;
        if (r != CPAR_OK) {
            atomic_fetch_add_explicit(r == CPAR_ESIG ? &io->bad_signature : &io->malformed, 1,
                                      memory_order_relaxed);
            cpar_clientio_item_free(it);
            continue;
        }
        if ((it = cpar__clientio_shm_on_recv(io, it)) == NULL)
            continue;
        if (*tail != NULL)
            (*tail)->next = it;
        else
            *head = it;
        *tail = it;
    }
    free(parts);
    cpar_clientio_item_free(outer);
    return;
bad:
    atomic_fetch_add_explicit(&io->malformed, 1, memory_order_relaxed);
    cpar_clientio_item_free(outer);
}

/* Receives everything available (up to a batch) into the inbox. Returns 0, or CPAR_EZMQ
 * when the socket is unusable (context terminated). *empty: 1 when it stopped because
 * nothing more was there (EAGAIN), 0 when more may be waiting. */
int
cpar__clientio_drain(cpar_clientio *io, int *empty)
{
    cpar_clientio_item *head = NULL, *tail = NULL, *it = NULL;
    int rc = CPAR_OK;

    *empty = 0;
    for (int i = 0; i < CPAR__RECV_BATCH; i++) {
        int r;
        if (it == NULL && (it = cpar_clientio_item_new(0)) == NULL) {
            rc = CPAR_ENOMEM;
            break;
        }
        r = cpar_wire_recv(io->sock, io->signer, 0, NULL, NULL, &it->m, ZMQ_DONTWAIT);
        if (r == CPAR_OK) {
            atomic_fetch_add_explicit(&io->received, 1, memory_order_relaxed);
            if (it->m.h.type == CPAR_MSG_REPLY && (it->m.h.flags & CPAR_FLAG_COALESCE)) {
                cpar__split_coalesced(io, it, &head, &tail);
                it = NULL;
                continue;
            }
            if ((it = cpar__clientio_shm_on_recv(io, it)) == NULL)
                continue;
            if (tail != NULL)
                tail->next = it;
            else
                head = it;
            tail = it;
            it = NULL;
        } else if (r == CPAR_EAGAIN) {
            *empty = 1;
            break;
        } else if (r == CPAR_ESIG) {
            atomic_fetch_add_explicit(&io->bad_signature, 1, memory_order_relaxed);
        } else if (r == CPAR_EPROTO || r == CPAR_EVERSION || r == CPAR_ETYPE) {
            atomic_fetch_add_explicit(&io->malformed, 1, memory_order_relaxed);
        } else {
            if (errno == ETERM || errno == ENOTSOCK)
                rc = CPAR_EZMQ;
            break;
        }
    }
    cpar_clientio_item_free(it);
    cpar__clientio_inbox_append(io, head, tail);
    return rc == CPAR_ENOMEM ? CPAR_OK : rc; /* out of memory: retry at the next wake-up */
}
