/* The cpar wire format: header encoding, signed multipart send and checked receive.
 *
 * A cpar message on a socket is: [identity frame, on a ROUTER only] + one header frame of
 * CPAR_WIRE_HEADER_SIZE bytes + `nframes` payload frames. The header carries the
 * HMAC-SHA256 tag over its first CPAR_WIRE_SIGNED_SIZE bytes and every payload frame.
 * docs/protocol.md is the normative description; this file implements it.
 *
 * Ownership and threads: a cpar_msg owns its payload frames (zmq_msg_t) until it is sent,
 * forwarded or closed. Functions taking a socket must run on the thread owning that
 * socket; the signer passed must belong to that thread too. No Python, no GIL. */
#ifndef CPAR_CORE_WIRE_H
#define CPAR_CORE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "sign.h"

#define CPAR_WIRE_MAGIC 0x52415043u /* "CPAR" little-endian */
#define CPAR_WIRE_VERSION 1
#define CPAR_WIRE_HEADER_SIZE 112   /* bytes of the header frame */
#define CPAR_WIRE_SIGNED_SIZE 80    /* header bytes covered by the tag (the tag follows) */
#define CPAR_WIRE_MAX_FRAMES 4096   /* payload frames per message, at most */
#define CPAR_WIRE_ID_SIZE 16        /* bytes of a msg id */
#define CPAR_WIRE_MAX_IDENT 256     /* longest ROUTER identity kept */
#define CPAR_WIRE_MAX_TARGETS 65536 /* engines one request may name */

/* Message types (header byte 5). Direction and payload in docs/protocol.md. */
enum cpar_msg_type {
    CPAR_MSG_REGISTER = 1,        /* engine -> controller */
    CPAR_MSG_REGISTER_REPLY = 2,  /* controller -> engine */
    CPAR_MSG_HEARTBEAT = 3,       /* engine -> controller, echoed back */
    CPAR_MSG_CONNECT = 4,         /* client -> controller: hello / list engines */
    CPAR_MSG_CONNECT_REPLY = 5,   /* controller -> client: engine ids */
    CPAR_MSG_EXECUTE = 10,        /* client -> controller -> engine(s): run code */
    CPAR_MSG_APPLY = 11,          /* client -> controller -> engine(s): call a function */
    CPAR_MSG_TASK = 12,           /* client -> controller -> one engine: load-balanced apply */
    CPAR_MSG_REPLY = 20,          /* engine -> controller -> client: result or error */
    CPAR_MSG_STREAM = 21,         /* engine -> controller -> client: stdout/stderr text */
    CPAR_MSG_ERROR = 22,          /* controller -> client: a request failed in transit */
    CPAR_MSG_INTERRUPT = 30,      /* client -> controller -> engine(s): raise KeyboardInterrupt */
    CPAR_MSG_SHUTDOWN = 31,       /* client -> controller (-> engines); controller -> engine */
    CPAR_MSG_SHUTDOWN_REPLY = 32, /* controller -> client */
    CPAR_MSG_RELEASE = 33,        /* client -> controller -> engine: unpin shared-memory frames */
    CPAR_MSG_ABORT = 34,          /* client -> controller (-> engines): drop or interrupt tasks */
    CPAR_MSG_QUERY = 35,          /* client -> controller: queue/task status */
    CPAR_MSG_QUERY_REPLY = 36,    /* controller -> client: JSON answer */
    CPAR_MSG_PROBE = 37,          /* client -> controller -> engine: shared-memory probe */
    CPAR_MSG_DB_REQUEST = 38,     /* client -> controller: a task-database op (docs/taskdb.md) */
    CPAR_MSG_DB_REPLY = 39,       /* controller -> client: its answer */
    CPAR_MSG_ENGINE_EVENT = 40,   /* controller -> clients: an engine registered or died */
    CPAR_MSG_RECLAIM = 41,        /* client -> controller: take over work (docs/recovery.md) */
    CPAR_MSG_RECLAIM_REPLY = 42,  /* controller -> client: the ids pending there */
};

/* Header flags (header bytes 6-7). */
#define CPAR_FLAG_STDOUT 0x0001   /* STREAM: text is stdout */
#define CPAR_FLAG_STDERR 0x0002   /* STREAM: text is stderr */
#define CPAR_FLAG_HUB 0x0004      /* SHUTDOWN: stop the controller too */
#define CPAR_FLAG_TARGETED 0x0008 /* payload frame 0 is a little-endian int32 target list */
#define CPAR_FLAG_SHM 0x0010      /* the last payload frame is a shared-memory descriptor table */
#define CPAR_FLAG_SHM_OK 0x0020   /* request: the sender can read a shared-memory REPLY */
#define CPAR_FLAG_DISPLAY 0x0040  /* STREAM: frame 0 is a display message (UTF-8 JSON) */
#define CPAR_FLAG_COALESCE                                                                         \
    0x0080 /* EXECUTE/APPLY: one coalesced REPLY for all targets;                                  \
            * REPLY: the coalesced form (docs/protocol.md) */

/* Engine-id sentinels for the header's target and engine fields. */
#define CPAR_NO_ENGINE (-1)

/* REPLY status values (header `status`); ERROR messages carry a CPAR_E* code instead. */
#define CPAR_STATUS_OK 0
#define CPAR_STATUS_ERROR 1
#define CPAR_STATUS_UNMET 2 /* TASK: the function's @require/@depend is not met here */

/* The decoded header. */
typedef struct cpar_header {
    uint8_t type;                      /* enum cpar_msg_type */
    uint16_t flags;                    /* CPAR_FLAG_* */
    uint32_t nframes;                  /* payload frames that follow the header */
    int32_t target;                    /* addressed engine, or CPAR_NO_ENGINE */
    int32_t engine;                    /* engine the message is from or about, or CPAR_NO_ENGINE */
    int32_t status;                    /* REPLY status, ERROR code, REGISTER_REPLY code */
    uint8_t msg_id[CPAR_WIRE_ID_SIZE]; /* chosen by the sender */
    uint8_t parent[CPAR_WIRE_ID_SIZE]; /* the request this message answers, else zeros */
    uint64_t t0;                       /* ns since the epoch: sent / submitted; REPLY: started */
    uint64_t t1;                       /* ns since the epoch: completed (REPLY) */
    uint64_t paylen;                   /* sum of payload frame sizes */
} cpar_header;

/* A message in memory: header fields and owned payload frames. */
typedef struct cpar_msg {
    cpar_header h;
    size_t nframes;    /* frames in use */
    size_t cap;        /* frames allocated */
    zmq_msg_t *frames; /* owned payload frames */
    int has_raw;       /* raw holds the received header frame, tag included */
    uint8_t raw[CPAR_WIRE_HEADER_SIZE];
} cpar_msg;

/* Wall-clock time in ns since the epoch: only for the timestamps a user sees (header t0/t1,
 * logs). It can step back or forward at any moment (NTP, an administrator). */
uint64_t cpar_now_ns(void);
/* CLOCK_MONOTONIC in ns: every interval, deadline, age and timeout (never steps). */
uint64_t cpar_mono_ns(void);

/* Header encoding (no tag: bytes 80..111 are zeroed) and decoding. Decoding checks size,
 * magic, version and type; it returns CPAR_EPROTO / CPAR_EVERSION / CPAR_ETYPE. */
void cpar_wire_header_encode(const cpar_header *h, uint8_t out[CPAR_WIRE_HEADER_SIZE]);
int cpar_wire_header_decode(const uint8_t *buf, size_t len, cpar_header *h);
int cpar_wire_type_known(int type);

/* cpar_msg lifecycle. init zeroes; close releases every frame (safe to call twice). */
void cpar_msg_init(cpar_msg *m, int type);
void cpar_msg_close(cpar_msg *m);
/* Append a frame: a copy of data; or by moving *src (src is left empty); or zero-copy over
 * caller memory that libzmq releases with ffn(data, hint) from any thread. */
int cpar_msg_add_copy(cpar_msg *m, const void *data, size_t len);
int cpar_msg_add_move(cpar_msg *m, zmq_msg_t *src);
int cpar_msg_add_zerocopy(cpar_msg *m, void *data, size_t len, zmq_free_fn *ffn, void *hint);

/* Sign and send m, prefixed by `ident` when identlen > 0 (ROUTER). Sets h.nframes and
 * h.paylen, and h.t0 to the wall clock when it is 0 and m is not a REPLY (the controller
 * refuses messages whose t0 lies outside its replay window). The frames are consumed whether or not
 * the send succeeds (m is left empty). Returns 0, CPAR_EAGAIN (ZMQ_DONTWAIT and the pipe is full)
 * or CPAR_EZMQ. */
int cpar_wire_send(void *sock, cpar_signer *s, const void *ident, size_t identlen, cpar_msg *m,
                   int zmq_flags);
/* cpar_wire_send without an identity and without waiting, except that a message the socket
 * refuses (its pipe full: libzmq refuses a multipart message only at its first part) is
 * left whole: CPAR_EAGAIN, and m keeps its frames for a later try. So a sender needs no
 * ZMQ_EVENTS query before each message. Other outcomes as cpar_wire_send. */
int cpar_wire_send_try(void *sock, cpar_signer *s, cpar_msg *m);

/* Signs m in place without sending it: sets h.nframes, h.paylen (and h.t0 as
 * cpar_wire_send does) and stores the encoded, signed header in m->raw (has_raw = 1), so
 * that m can then be sent with cpar_wire_forward or carried inside a coalesced REPLY.
 * The frames stay m's. Returns 0 or CPAR_ECRYPTO. */
int cpar_wire_seal(cpar_signer *s, cpar_msg *m);

/* Send a received message unchanged (its raw header and tag), prefixed by `ident`. With
 * keep != 0 the frames are shared (zmq_msg_copy) and m stays intact for further sends;
 * otherwise they are consumed. Requires m->has_raw. */
int cpar_wire_forward(void *sock, const void *ident, size_t identlen, cpar_msg *m, int keep);

/* Receive one multipart message. On a ROUTER (is_router) the identity frame is copied into
 * ident (CPAR_WIRE_MAX_IDENT bytes) and *identlen set. Returns 0 with m filled; CPAR_EAGAIN
 * when ZMQ_DONTWAIT finds nothing; CPAR_EZMQ on socket errors; or, for a bad message, its
 * CPAR_E* code after the whole multipart has been drained and dropped. After a bad
 * message whose header frame decoded, m->h still holds that header (m->h.type != 0) so the
 * caller can answer its msg_id; otherwise m->h.type == 0. m owns no frames either way. */
int cpar_wire_recv(void *sock, cpar_signer *s, int is_router, uint8_t *ident, size_t *identlen,
                   cpar_msg *m, int zmq_flags);

/* As cpar_wire_recv, also storing in *srcfd (when not NULL) the file descriptor of the
 * connection the message came in on (ZMQ_SRCFD), or -1. */
int cpar_wire_recv_fd(void *sock, cpar_signer *s, int is_router, uint8_t *ident, size_t *identlen,
                      int *srcfd, cpar_msg *m, int zmq_flags);

/* Check and decode a message from its parts (header frame first), taking ownership of
 * every part: on success they move into m, on failure they are closed. This is the whole
 * decoder that cpar_wire_recv uses; the fuzz target calls it directly. */
int cpar_wire_parse(cpar_signer *s, zmq_msg_t *parts, size_t nparts, cpar_msg *m);

/* The tag of a received message (m->has_raw): CPAR_WIRE_HEADER_SIZE -
 * CPAR_WIRE_SIGNED_SIZE bytes of its raw header, unique per message (replay checks). */
static inline const uint8_t *
cpar_wire_msg_tag(const cpar_msg *m)
{
    return m->raw + CPAR_WIRE_SIGNED_SIZE;
}

/* Target list of a CPAR_FLAG_TARGETED message (payload frame 0, little-endian int32s).
 * cpar_wire_targets returns the count, or CPAR_EPROTO when the frame is missing, empty,
 * longer than CPAR_WIRE_MAX_TARGETS or not a multiple of 4 bytes; cpar_wire_target_at
 * reads entry i (i < count, unaligned-safe). */
int cpar_wire_targets(const cpar_msg *m);
int32_t cpar_wire_target_at(const cpar_msg *m, size_t i);

#endif /* CPAR_CORE_WIRE_H */
