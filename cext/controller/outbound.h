/* The controller's outbound layer, below every handler (controller_clients.c,
 * controller_engines.c, controller_tasks*.c, controller_taskmsg.c, controller_coalesce.c):
 * message building, sends to a client or an engine, the ERROR helper, noting a client
 * found unreachable, and reading the socket monitors. It calls nothing above it: only the
 * tables (registry.h) and core (wire.h, log.h). The loop (controller.c) owns the
 * cpar_controller passed down.
 *
 * Ownership and threads: the controller's loop thread only. No Python, no GIL. A function
 * taking a cpar_msg * that it sends consumes its frames; the caller may still close it. */
#ifndef CPAR_CONTROLLER_OUTBOUND_H
#define CPAR_CONTROLLER_OUTBOUND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "controller_int.h"

/* CLOCK_MONOTONIC in ms. */
uint64_t cpar__ctlout_mono_ms(void);
/* Starts a controller-made message of `type` with a fresh msg id and t0 = now (the caller
 * fills the rest). */
void cpar__ctlout_msg_new(cpar_controller *c, cpar_msg *m, int type);
/* Counts a failed send (errno err); returns 1 when the peer is unreachable (gone). */
int cpar__ctlout_send_failed(cpar_controller *c, int err);
/* Signs and sends m to the client in `slot`; a client found unreachable is lost
 * (cpar__ctlout_client_lost). */
void cpar__ctlout_send_client(cpar_controller *c, uint32_t slot, cpar_msg *m);
/* Forwards received m (consumed) unchanged to the client in `slot`: a client not there
 * is counted (client_gone), one found unreachable is lost as by cpar__ctlout_send_client. */
void cpar__ctlout_forward_client(cpar_controller *c, uint32_t slot, cpar_msg *m);
/* Signs and sends m to an engine-socket identity that has no engine id (not registered,
 * or no longer known); a failed send is only counted. */
void cpar__ctlout_send_engine_ident(cpar_controller *c, const uint8_t *ident, size_t identlen,
                                    cpar_msg *m);
/* Signs and sends m to engine id; returns 1 when the engine is unreachable (the caller
 * declares it gone). */
int cpar__ctlout_send_engine(cpar_controller *c, int32_t id, cpar_msg *m);
/* Forwards received m unchanged to engine e (frames shared when keep); returns 1 when the
 * engine turned out unreachable: it is then marked (e->unreachable) for the caller's layer
 * to declare gone. */
int cpar__ctlout_forward_engine(cpar_controller *c, int32_t id, cpar_msg *m, int keep);
/* ENGINE_EVENT (engine, status) to every live client. */
void cpar__ctlout_broadcast_event(cpar_controller *c, int32_t engine, int status);

/* Formats into buf (cap > 0), truncating; returns the length written. */
size_t cpar__ctlout_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
/* Makes in m an ERROR (status `code`, about `engine`, answering `parent` when not NULL)
 * carrying text. Returns 0, or -1 (out of memory; m is then closed). */
int cpar__ctlout_error_msg(cpar_controller *c, cpar_msg *m, const uint8_t *parent, int32_t engine,
                           int code, const char *text, size_t len);
/* The ERROR helper: to client `slot`, answering `parent` (NULL: none), about no engine. */
void cpar__ctlout_error(cpar_controller *c, int32_t slot, const uint8_t *parent, int code,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same about an engine. */
void cpar__ctlout_error_about(cpar_controller *c, int32_t slot, const uint8_t *parent,
                              int32_t engine, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same straight to a ROUTER identity (a client that has no slot). */
void cpar__ctlout_error_ident(cpar_controller *c, const uint8_t *ident, size_t identlen,
                              const uint8_t *parent, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Forgets the client in slot and queues it for dropping its coalescing requests and
 * cancelling its tasks (done by controller_clients.c at the next client check or client
 * message: safe anywhere, no call up). */
void cpar__ctlout_client_lost(cpar_controller *c, uint32_t slot);
/* A REPLY for a lost client was dropped: when it offered shared memory, the engine is told
 * to release its pins for that request at once (a RELEASE on the client's behalf). */
void cpar__ctlout_release_for_lost(cpar_controller *c, int32_t engine, const cpar_msg *reply);

/* Pins held for clients. A shared-memory REPLY (CPAR_FLAG_SHM) forwarded to client `slot`
 * is noted (cpar__ctlout_note_pinned, before it is sent) until a RELEASE of it passes
 * (cpar__ctlout_note_released; the engine unpins on any RELEASE of the id). A client lost
 * before releasing: cpar__ctlout_release_pins_of sends the RELEASEs on its behalf, so its
 * engines unpin at once instead of after their pin timeout. An engine gone: its notes go
 * (cpar__ctlout_forget_pins). Notes that cannot be stored (out of memory) are left to the
 * engine's pin timeout. */
void cpar__ctlout_note_pinned(cpar_controller *c, uint32_t slot, const cpar_msg *reply);
void cpar__ctlout_note_released(cpar_controller *c, const cpar_msg *release, int ntargets);
void cpar__ctlout_release_pins_of(cpar_controller *c, uint32_t slot);
void cpar__ctlout_forget_pins(cpar_controller *c, int32_t engine);

/* Socket monitors (the PAIRs the loop connects to zmq_socket_monitor). Reads the next
 * event without waiting: -1 when none is waiting, else 1 for ZMQ_EVENT_DISCONNECTED (the
 * closed connection's fd in *fd), 0 for another event. */
int cpar__ctlout_monitor_next(void *mon, int *fd);
/* Appends fd to the growable array *fds (*n used, *cap allocated): 0, or -1 when out of
 * memory (nothing changed). */
int cpar__ctlout_fds_push(int **fds, size_t *n, size_t *cap, int fd);

#endif /* CPAR_CONTROLLER_OUTBOUND_H */
