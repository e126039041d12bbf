/* Private to the client connection's C files (clientio.c, clientrecv.c, clientshm.c): the
 * connection object, its receiving side and the shared-memory hooks its I/O thread calls.
 *
 * Ownership and threads: as in clientio.h. The shared-memory fields and hooks belong to
 * whoever holds the connection's `turn` mutex: the I/O thread, or a poster sending
 * directly (and cpar_clientio_close once that thread has been joined). No Python, no GIL. */
#ifndef CPAR_MODULE_CLIENTIO_INT_H
#define CPAR_MODULE_CLIENTIO_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "clientio.h"
#include "ids.h"
#include "idmap.h"
#include "shm.h"

/* cpar__shm_peer.flags: what a probe (docs/protocol.md, "Shared memory") found out. */
#define CPAR__PEER_LOCAL 1    /* the engine shares our locality token */
#define CPAR__PEER_PROBING 2  /* our PROBE is in flight (its id in probe) */
#define CPAR__PEER_PROBED 4   /* its answer came */
#define CPAR__PEER_READS_US 8 /* the engine could read our probe frame */
#define CPAR__PEER_WE_READ 16 /* we could read the engine's probe frame */

typedef struct cpar__shm_peer {
    uint8_t flags;                    /* CPAR__PEER_* */
    uint32_t pid;                     /* the engine's pid, from its probe reply (0: unknown) */
    uint8_t probe[CPAR_WIRE_ID_SIZE]; /* msg id of our PROBE to it */
} cpar__shm_peer;

struct cpar_clientio {
    void *ctx;        /* ZMQ context, owned; terminated by close */
    void *sock;       /* DEALER; owned by the I/O thread once it runs */
    void *mon;        /* PAIR receiving sock's connect/disconnect events; same owner */
    int wakefd;       /* eventfd: written by posters and close, read by the I/O thread */
    pthread_t thread; /* the I/O thread */
    /* Held by the I/O thread for each turn (all but its wait in poll), and by a poster
     * that sends directly (cpar_clientio_post): whoever holds it owns sock, signer, the
     * shared-memory fields below, pend and recheck. */
    pthread_mutex_t turn;
    cpar_clientio_item *pend_head; /* taken from the outbox, waiting for the socket's room */
    cpar_clientio_item *pend_tail;
    int recheck;         /* a direct send may have taken the notice of a message: read the socket */
    int thread_started;  /* thread is joinable */
    cpar_signer *signer; /* used by the I/O thread only */

    pthread_mutex_t lock;         /* guards everything below up to the counters */
    pthread_cond_t cond;          /* inbox grew, or the connection closed or failed */
    cpar_clientio_item *out_head; /* posted, not yet taken by the I/O thread */
    cpar_clientio_item *out_tail;
    cpar_clientio_item *in_head; /* received, not yet taken by a reader */
    cpar_clientio_item *in_tail;
    int closing;       /* close requested: posts fail, the thread exits */
    int close_started; /* some thread is (or was) inside close */
    int closed;        /* thread joined, socket and context gone */
    int fatal;         /* CPAR_E* code that stopped the I/O thread, or 0 */

    atomic_uint_fast64_t sent;
    atomic_uint_fast64_t received;
    atomic_uint_fast64_t bad_signature;
    atomic_uint_fast64_t malformed;
    atomic_uint_fast64_t send_failed;
    atomic_uint_fast64_t disconnects;
    atomic_uint_fast64_t handshake_failed; /* CURVE (or mechanism) handshakes that failed */
    atomic_int connected; /* 1 while a TCP/IPC connection to the controller is up */

    /* Shared-memory path (shm.h), touched under `turn` only (the pins also by close once
     * the thread has been joined). */
    int shm;             /* this process may use it (cpar_shm_enabled + token) */
    uint64_t socket_max; /* largest request sent through the socket ($CPAR_SOCKET_MAX) */
    char token[CPAR_SHM_TOKEN_SIZE]; /* our locality token */
    cpar__shm_peer *peers; /* engine id -> what we know about reading each other; npeers */
    size_t npeers;
    cpar_idmap offered; /* msg id -> engines yet to answer, of requests sent with SHM_OK */
    cpar_shm_pins pins; /* frames of sent requests that engines may still read */
    cpar_ids ids;       /* msg ids of the thread's own PROBE and RELEASE (marked 0x80, apart from
                         * the client's own) */
    atomic_uint_fast64_t shm_sent;     /* frames sent by descriptor */
    atomic_uint_fast64_t shm_received; /* frames received by descriptor */
    atomic_uint_fast64_t shm_failed;   /* replies whose shared-memory read failed */
    atomic_uint_fast64_t shm_denied;   /* probe directions the kernel denied */
    atomic_uint_fast64_t shm_fallback; /* requests sent by socket because a read was denied */
    atomic_int shm_probing;            /* probes in flight */
};

/* What cpar__clientio_shm_prepare took out of a request, for cpar__clientio_shm_pin. */
typedef struct cpar__clientio_shm_out {
    uint8_t id[CPAR_WIRE_ID_SIZE];
    zmq_msg_t *frames; /* pinned frames (malloc'd), or NULL */
    size_t nframes;
    cpar_shm_seal seal; /* guards frames; broken before they are closed */
    int32_t *targets;   /* the request's engines (malloc'd) */
    size_t ntargets;
} cpar__clientio_shm_out;

/* clientshm.c: before a request is signed and sent, offers shared-memory replies and moves
 * its large frames out (by descriptor) when every target shares our host. */
void cpar__clientio_shm_prepare(cpar_clientio *io, cpar_msg *m, cpar__clientio_shm_out *out);
/* After the send: pins what was moved out until the engines answer (sent != 0), or drops
 * it; out is emptied either way. */
void cpar__clientio_shm_pin(cpar_clientio *io, cpar__clientio_shm_out *out, int sent);
/* A received message before it reaches the inbox (see clientio.h). Returns the item to
 * queue (it, or an ERROR replacing it), or NULL when out of memory (it is freed). */
cpar_clientio_item *cpar__clientio_shm_on_recv(cpar_clientio *io, cpar_clientio_item *it);
/* Drops every pin (the connection dropped or is closing). */
void cpar__clientio_shm_unpin_all(cpar_clientio *io);

/* clientrecv.c: receives everything available (up to a batch) into the inbox. Returns 0,
 * or CPAR_EZMQ when the socket is unusable (context terminated). *empty: 1 when it stopped
 * because nothing more was there (EAGAIN), 0 when more may be waiting. */
int cpar__clientio_drain(cpar_clientio *io, int *empty);
/* clientio.c: appends the list [head, tail] to the inbox and wakes readers (takes lock). */
void cpar__clientio_inbox_append(cpar_clientio *io, cpar_clientio_item *head,
                                 cpar_clientio_item *tail);

#endif /* CPAR_MODULE_CLIENTIO_INT_H */
