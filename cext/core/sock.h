/* ZMQ socket set-up shared by the controller, the client I/O thread and the engine's I/O
 * thread: a socket with cpar's options (no high-water marks, a given linger, and for a
 * ROUTER mandatory routing and an optional largest message), and a monitor of a socket's
 * connection events read through a PAIR.
 *
 * Ownership and threads: every function takes sockets the calling thread owns; the caller
 * owns what is returned and closes it (a monitor with cpar_sock_monitor_close). CURVE
 * options stay in curve.h and are set by the caller before it binds or connects.
 * No Python, no GIL. */
#ifndef CPAR_CORE_SOCK_H
#define CPAR_CORE_SOCK_H

#include <stddef.h>
#include <stdint.h>

/* A new socket of `type` in zctx with SNDHWM and RCVHWM 0 (unlimited: a send never blocks
 * or drops on a high-water mark) and ZMQ_LINGER `linger` ms. A ROUTER also gets
 * ZMQ_ROUTER_MANDATORY, and ZMQ_MAXMSGSIZE max_message when max_message > 0 (otherwise no
 * limit). Returns NULL on failure, zmq_errno() telling why. */
void *cpar_sock_new(void *zctx, int type, int linger, int64_t max_message);

/* Binds sock at url and writes the endpoint it got (a chosen port filled in) to ep, NUL-
 * terminated. Returns 0, or CPAR_EZMQ (zmq_errno() says why) with what failed in err. */
int cpar_sock_bind(void *sock, const char *url, char *ep, size_t eplen, char *err, size_t errlen);

/* Starts a monitor of sock's `events` (ZMQ_EVENT_* bits) and returns the PAIR, in zctx,
 * that receives them (no high-water mark, linger 0), connected to an inproc endpoint named
 * after `name` and `owner`. Returns NULL on failure (the monitor is then stopped),
 * zmq_errno() telling why. */
void *cpar_sock_monitor_open(void *zctx, void *sock, int events, const char *name,
                             const void *owner);
/* Stops the monitor of sock (when sock is not NULL) before closing its PAIR: libzmq's I/O
 * thread sends events with a blocking send under the monitor's lock, so closing the PAIR
 * first can deadlock. Either may be NULL. */
void cpar_sock_monitor_close(void *sock, void *pair);
/* Reads one waiting event from a monitor's PAIR without blocking: its ZMQ_EVENT_* kind to
 * *event and its value (a file descriptor for connection events) to *value. Returns 1, or
 * 0 when no event waits. */
int cpar_sock_monitor_read(void *pair, uint16_t *event, uint32_t *value);
/* Drains every waiting event; returns the OR of their kinds (0 when none waited). */
unsigned cpar_sock_monitor_drain(void *pair);

/* Waiting on a socket with poll(2) instead of zmq_poll (the loops of the controller and of
 * the client's and the engine's I/O threads). A socket's ZMQ_FD turns readable when
 * commands (new messages among them) reach a socket whose commands were all processed,
 * and stays quiet until they are processed again, which any operation on the socket may
 * do: a receive that ends in EAGAIN, ZMQ_EVENTS, but also a send, which may take the
 * notice of a message and leave the message waiting. So a thread may block on the fd only
 * after reading the socket to EAGAIN, or asking ZMQ_EVENTS, since it last used it.
 * Same thread rules as the socket. */
/* The socket's ZMQ_FD, or -1 (sock NULL, or an error). */
int cpar_sock_fd(void *sock);
/* 1 when sock has a message to read now (ZMQ_EVENTS: processes its commands); 0 for NULL. */
int cpar_sock_has_input(void *sock);

#endif /* CPAR_CORE_SOCK_H */
