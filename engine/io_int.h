/* The engine I/O thread's private state, shared by io.c (the thread: registration,
 * heartbeats, control messages, relay), recover.c (the connection to the controller and
 * its recovery, docs/recovery.md "Engines") and io_direct.c (the main thread's direct
 * sends and receives on the DEALER).
 *
 * Ownership and threads: a cpar__io and everything in it belongs to whoever holds
 * engine->io_turn while the I/O thread's loop runs (engine->io_live points to it): the I/O
 * thread for each turn of its loop, the main thread for a direct send or receive
 * (io_direct.c). Before and after the loop, it is the I/O thread's alone. The functions
 * below run on the holder. No Python, no GIL. */
#ifndef CPAR_ENGINE_IO_INT_H
#define CPAR_ENGINE_IO_INT_H

#include "engine.h"

typedef struct cpar__io {
    cpar_engine *e;
    void *dealer;           /* to the controller's engine ROUTER */
    void *pair;             /* to the main thread */
    cpar_signer *signer;    /* this thread's */
    uint64_t last_heard;    /* mono ns: last valid message from the controller */
    uint64_t next_hb;       /* mono ns: next HEARTBEAT due */
    uint64_t last_flush;    /* mono ns: last time pending output was sent */
    unsigned long dropped;  /* messages dropped (bad or unhandled) */
    int stopping;           /* a stop was requested from the main thread */
    int exit_status;        /* the process's exit status once stopped */
    uint64_t stop_deadline; /* mono ns: after this, a task that will not stop gets _exit */
    int quit;               /* the main thread said CPAR_CTL_QUIT */
    uint64_t next_expire;   /* mono ns: next look for shared-memory pins nobody released */
    void *mon;              /* PAIR receiving the dealer's handshake/connection events */
    uint64_t lost_at;       /* mono ns: the connection to the controller dropped, or 0 */
    /* Recovery (docs/recovery.md, "Engines"). */
    int grace_ms;        /* the grace period; 0: none (lost_at above ends the engine) */
    cpar_recover rec;    /* ids of the requests held; messages held while lost */
    uint64_t lost_until; /* mono ns: the controller is lost until then; 0: not lost */
    uint8_t register_id[CPAR_WIRE_ID_SIZE]; /* msg id of the last REGISTER */
    unsigned sockets;                       /* DEALERs opened so far (names their monitors) */
    int handshake_ok;                       /* a handshake succeeded on this DEALER */
    int handshake_logged;                   /* a failed handshake while lost was logged */
    /* A direct receive by the main thread (io_direct.c), within its turn. */
    int take;        /* the first request read goes to `taken`, not through the PAIR */
    cpar_msg *taken; /* that request (heap, as CPAR_CTL_TASK passes one), or NULL */
    int pair_dirty;  /* this turn sent on `pair` (cpar__io_ctl) or left it unread */
} cpar__io;

/* io.c */
/* Passes a control record (and msg's ownership) to the main thread. 0 or CPAR_EZMQ. */
int cpar__io_ctl(cpar__io *io, int kind, int value, cpar_msg *msg);
/* Counts (and logs, rate-limited) a message from the controller that was dropped. */
void cpar__io_drop(cpar__io *io, const char *why);
/* Signs and sends a message this thread makes to the controller. 0 or a CPAR_E* code. */
int cpar__io_send(cpar__io *io, cpar_msg *m);
/* Takes the heartbeat settings and the grace period from a REGISTER_REPLY. */
void cpar__io_parse_reply(cpar__io *io, cpar_msg *m);
/* Interrupts the running task, drops queued ones, tells main to exit with `status`. */
void cpar__io_begin_stop(cpar__io *io, int status);
/* Reads and handles what the DEALER holds (requests are queued for the main thread, or
 * the first one goes to io->taken while io->take is set). 1 when the reads ended at
 * EAGAIN (the DEALER's ZMQ_FD may be waited on, sock.h), 0 when they stopped before. */
int cpar__io_on_dealer(cpar__io *io);
/* Relays what the main thread sent on the PAIR to the controller and handles its control
 * records. 1 when the reads ended at EAGAIN, 0 when they stopped before. */
int cpar__io_on_pair(cpar__io *io);
/* Asks the I/O thread (through engine->io_wakefd) to look at its sockets. Any thread. */
void cpar__io_wake(cpar_engine *e);

/* recover.c (each is described where it is defined) */
int cpar__io_monitor(cpar__io *io); /* starts io->mon on io->dealer */
int cpar__io_open(cpar__io *io);    /* a new io->dealer, connected */
void cpar__io_close(cpar__io *io, int drop);
int cpar__io_send_register(cpar__io *io, int32_t target, int recover);
void cpar__io_refusal(cpar_msg *m, char *why, size_t size); /* a refusal's reason */
void cpar__io_lose(cpar__io *io, uint64_t now, int silent); /* the controller is lost */
void cpar__io_on_lost_message(cpar__io *io, cpar_msg *m);   /* a message while lost */
int cpar__io_hold_stream(void *arg, cpar_msg *m);           /* cpar_capture_each sink */

#endif /* CPAR_ENGINE_IO_INT_H */
