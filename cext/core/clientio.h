/* The client connection's I/O thread: one DEALER socket to the controller's client ROUTER,
 * an outbox filled by any thread and an inbox drained by any thread.
 *
 * Ownership and threads: a cpar_clientio is created and freed by its owner (the Python
 * Connection object), with or without the GIL: nothing here touches Python. The I/O thread
 * it starts owns the ZMQ socket and the signer for each of its turns; between turns (while
 * it waits in poll) a poster may take them to send directly (cpar_clientio_post). Every
 * other field shared with it is guarded by the object's mutex. cpar_clientio_post and
 * cpar_clientio_take may be called from any thread at any time before cpar_clientio_free;
 * cpar_clientio_close from any thread, any number of times. Messages (cpar_clientio_item) belong to
 * whoever holds them: the caller until post, the I/O thread until it sends them, the inbox until
 * take, then the caller. */
#ifndef CPAR_MODULE_CLIENTIO_H
#define CPAR_MODULE_CLIENTIO_H

#include <stddef.h>
#include <stdint.h>

#include "curve.h"
#include "wire.h"

typedef struct cpar_clientio cpar_clientio;

/* A queued message: the unit of the outbox and the inbox (a singly linked list). */
typedef struct cpar_clientio_item {
    struct cpar_clientio_item *next;
    cpar_msg m; /* owns its frames */
} cpar_clientio_item;

/* Counters, read without the lock (relaxed atomics). */
typedef struct cpar_clientio_stats {
    uint64_t sent;             /* messages handed to libzmq */
    uint64_t received;         /* valid messages received */
    uint64_t bad_signature;    /* received messages dropped: wrong or missing signature */
    uint64_t malformed;        /* received messages dropped: truncated, bad version/type/sizes */
    uint64_t send_failed;      /* messages that could not be sent (reported to the inbox) */
    uint64_t disconnects;      /* times the connection to the controller dropped */
    uint64_t handshake_failed; /* security handshakes that failed (wrong CURVE keys) */
    int connected;             /* 1 while connected to the controller */
    int shm;                   /* 1 when the shared-memory path is enabled for this process */
    uint64_t shm_sent;         /* request frames sent by descriptor (shm.h) */
    uint64_t shm_received;     /* reply frames read from an engine's memory */
    uint64_t shm_failed;       /* replies whose shared-memory read failed (became ERRORs) */
    uint64_t shm_denied;       /* probe directions the kernel denied (per engine, each way) */
    uint64_t shm_fallback;     /* requests sent by socket because a shared-memory read was denied */
    int shm_probing;           /* shared-memory probes in flight */
} cpar_clientio_stats;

/* A new, empty item (its cpar_msg initialised with `type`), or NULL when out of memory.
 * The caller owns it until cpar_clientio_post; free an unposted one with _item_free. */
cpar_clientio_item *cpar_clientio_item_new(int type);
/* Closes the item's frames and frees it (NULL is fine). */
void cpar_clientio_item_free(cpar_clientio_item *it);
/* Frees a whole list (as returned by cpar_clientio_take). */
void cpar_clientio_list_free(cpar_clientio_item *head);

/* Connects a DEALER to `url` with HMAC `key` (and CurveZMQ keys when curve is not NULL,
 * borrowed for the call) and starts the I/O thread. Returns 0 and *out (free with
 * cpar_clientio_free), or a CPAR_E* code with a message in err. */
int cpar_clientio_new(const char *url, const uint8_t *key, size_t keylen, const cpar_curve *curve,
                      cpar_clientio **out, char *err, size_t errlen);

/* cpar_clientio_open flags. NO_SHM: never use the shared-memory path, whatever the
 * engines' locality tokens say (a client reaching the controller through a tunnel). */
#define CPAR_CLIENTIO_NO_SHM 1u

/* cpar_clientio_new with flags (CPAR_CLIENTIO_*). */
int cpar_clientio_open(const char *url, const uint8_t *key, size_t keylen, const cpar_curve *curve,
                       unsigned flags, cpar_clientio **out, char *err, size_t errlen);

/* Sends `it`, or queues it for the I/O thread; steals it (also on failure, when it is
 * freed). When the I/O thread is waiting and nothing is queued before it, the calling
 * thread sends it itself (no wake-up of the I/O thread on the way out). Returns 0, or
 * CPAR_ECLOSED when the connection is closed. */
int cpar_clientio_post(cpar_clientio *io, cpar_clientio_item *it);

/* Besides the messages received, the inbox gets locally made ERROR messages (never sent
 * by anyone): for a message that could not be sent (parent = its msg_id, status = the
 * CPAR_E* code), when the connection to the controller drops (parent zeros, engine -1,
 * status CPAR_ECLOSED, text "lost the connection to the controller") and when it is back
 * after a drop (parent zeros, engine -1, status 0, text "reconnected"). Their header has
 * no signature; has_raw is 0. */

/* Waits up to timeout_ms (< 0: forever) for at least one received message and detaches up
 * to `max` of them, in arrival order, into *out (a list the caller owns), *n their count.
 * Returns 0 (with *n possibly 0 on timeout), or CPAR_ECLOSED when closed and nothing
 * is left, or the CPAR_E* code that stopped the I/O thread. Blocks: call without the GIL. */
int cpar_clientio_take(cpar_clientio *io, int timeout_ms, size_t max, cpar_clientio_item **out,
                       size_t *n);

/* Stops the I/O thread, closes the socket (LINGER 0) and the context, and discards every
 * queued message. Idempotent; blocks until the thread has exited: call without the GIL.
 * Wakes every cpar_clientio_take waiter. */
void cpar_clientio_close(cpar_clientio *io);
int cpar_clientio_closed(cpar_clientio *io);

/* Closes (if needed) and frees. No other thread may use io any more. */
void cpar_clientio_free(cpar_clientio *io);

void cpar_clientio_get_stats(cpar_clientio *io, cpar_clientio_stats *st);

/* Items alive now (created and not freed), for leak checks; counted in every build. */
int64_t cpar_clientio_items_alive(void);

/* Request frames pinned for engines to read (shared-memory path), over every connection.
 * A request's frames are unpinned when each of its engines has answered (REPLY or ERROR),
 * when the connection drops and when it closes. */
int64_t cpar_clientio_shm_pinned(void);
/* Totals over every connection of this process: request frames sent by descriptor,
 * replies read from an engine's memory, and replies whose read failed. */
void cpar_clientio_shm_totals(int64_t *sent, int64_t *received, int64_t *failed);
/* Engines found (by probes) unable to read us or be read by us, and requests sent by
 * socket because of that, in every connection of this process. */
void cpar_clientio_shm_denials(int64_t *denied_peers, int64_t *fallbacks);

/* The shared-memory path on the client (docs/protocol.md, "Shared memory"): the I/O
 * thread learns which engines share this host from CONNECT_REPLY frame 2 and ENGINE_EVENT
 * frame 0; it sends EXECUTE/APPLY requests whose targets all do with CPAR_FLAG_SHM_OK and
 * their large frames by descriptor, and resolves shared-memory REPLYs before they reach
 * the inbox (a failed read turns the REPLY into an ERROR about the same request), then
 * sends the engine a RELEASE. Python sees ordinary frames. */

#endif /* CPAR_MODULE_CLIENTIO_H */
