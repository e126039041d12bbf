/* cpar-engine: the state shared by the engine's two threads and the functions each file
 * of engine/ offers the others.
 *
 * Threads: the main thread owns the embedded interpreter (it holds the GIL while Python
 * runs); the I/O thread never touches Python. The DEALER socket to the controller belongs
 * to whoever holds io_turn: the I/O thread for each turn of its loop, the main thread while
 * it sends its REPLY itself or, idle, reads the next request itself (io_direct.c). Between
 * turns one of them waits on the DEALER's ZMQ_FD (rx_main says which). Otherwise the
 * threads talk through an inproc PAIR (tasks one way, signed wire messages the other) and
 * through the fields of cpar_engine marked "under lock". */
#ifndef CPAR_ENGINE_ENGINE_H
#define CPAR_ENGINE_ENGINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first, as Python.h asks */

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "curve.h"
#include "idtab.h"
#include "shm.h"
#include "sign.h"
#include "wire.h"

#define CPAR_ENGINE_PAIR_URL "inproc://cpar-engine-tasks"
#define CPAR_ENGINE_REGISTER_TIMEOUT_MS 30000    /* default; $CPAR_REGISTER_TIMEOUT (s) */
#define CPAR_ENGINE_STREAM_PERIOD_MS 50          /* pending output is sent at least this often */
#define CPAR_ENGINE_STOP_GRACE_MS 5000           /* a task ignoring the stop interrupt: _exit */
#define CPAR_ENGINE_SOCKET_MAX (4ull << 30)      /* largest REPLY through the socket */
#define CPAR_ENGINE_EARLY_READ_MAX (64ull << 20) /* shared-memory bytes read on arrival */
#define CPAR_ENGINE_ABORTED_MAX 1024             /* aborted request ids remembered (a ring) */
#define CPAR_RECOVER_STREAM_MAX (64ull << 20) /* STREAM bytes held while the controller is lost */
/* A request the main thread read itself still running after this long: the I/O thread
 * wakes to watch the DEALER (control messages, output) until the main thread is idle. */
#define CPAR_ENGINE_WATCH_DELAY_US 1000

/* One run of output text of one stream, or one display message, waiting to be sent as a
 * STREAM message. */
typedef struct cpar_capture_seg {
    uint16_t flag; /* CPAR_FLAG_STDOUT, CPAR_FLAG_STDERR or CPAR_FLAG_DISPLAY */
    char *data;    /* UTF-8 text or JSON (malloc'd; handed to libzmq when sent) */
    size_t len;
    size_t cap;
} cpar_capture_seg;

/* Output captured while a task runs, in order; consecutive writes to one stream merge,
 * display messages never do (one segment, one STREAM each). */
typedef struct cpar_capture {
    cpar_capture_seg *segs; /* malloc'd array */
    size_t n;
    size_t cap;
} cpar_capture;

/* Control records passed over the inproc PAIR as one frame. */
enum cpar_engine_ctl_kind {
    CPAR_CTL_REGISTERED = 'R', /* io -> main: value = our engine id */
    CPAR_CTL_FAILED = 'F',     /* io -> main: registration failed; value = exit status */
    CPAR_CTL_TASK = 'T',       /* io -> main: msg = a heap cpar_msg (EXECUTE, APPLY, TASK) */
    CPAR_CTL_STOP = 'S',       /* io -> main: stop after the current task; value = status */
    CPAR_CTL_QUIT = 'Q',       /* main -> io: flush what was sent and end the thread */
    CPAR_CTL_DRAIN = 'D',      /* io -> main: shared-memory pins were dropped; drain them */
};

typedef struct cpar_engine_ctl {
    int32_t kind;  /* enum cpar_engine_ctl_kind */
    int32_t value; /* by kind */
    cpar_msg *msg; /* CPAR_CTL_TASK: ownership passes to the receiver */
} cpar_engine_ctl;

typedef struct cpar_engine {
    /* Set by main before the I/O thread starts, read-only afterwards. */
    char *engine_url;               /* the controller's engine ROUTER */
    cpar_curve curve;               /* CurveZMQ keys; curve.server[0] == 0: off */
    uint8_t key[CPAR_SIGN_MAX_KEY]; /* HMAC key (UTF-8 bytes of the "key" string) */
    size_t keylen;
    int requested_id;        /* --id, or -1 */
    int register_timeout_ms; /* give up when no REGISTER_REPLY comes by then */
    int hb_period_ms;        /* from the connection file; REGISTER_REPLY wins */
    int hb_timeout_ms;
    int recover_grace_ms;  /* $CPAR_RECOVER_GRACE, or -1: REGISTER_REPLY's recover_grace_ms */
    int shm;               /* the shared-memory path is enabled (shm.h) */
    void *zctx;            /* ZMQ context (thread-safe) */
    pthread_t main_thread; /* target of interrupts (SIGINT) */
    pthread_t io_thread;
    int io_started;

    /* Set by the I/O thread before it sends CPAR_CTL_REGISTERED, read-only afterwards. */
    int32_t id;

    /* Shared between the threads: under lock. */
    pthread_mutex_t lock;
    int running;                           /* a task runs on the main thread */
    int queued;                            /* tasks handed to main and not finished */
    uint8_t running_id[CPAR_WIRE_ID_SIZE]; /* its request's msg id */
    int interrupt_sent;                    /* SIGINT sent during this task */
    int abort_sent;                        /* ... and it came from an ABORT (not INTERRUPT) */
    cpar_capture capture;                  /* its output not yet sent */
    /* Requests aborted before they started (ABORT): the runner drops them. A ring: the
     * oldest are forgotten first (an aborted id reaching the runner that late runs). */
    uint8_t aborted[CPAR_ENGINE_ABORTED_MAX][CPAR_WIRE_ID_SIZE];
    size_t naborted;         /* ids ever added; entry i is at i % CPAR_ENGINE_ABORTED_MAX */
    cpar_shm_pins pins;      /* frames of REPLYs sent by descriptor, keyed by the request's id,
                              * until the client's RELEASE or pin_timeout_ns */
    uint64_t pin_timeout_ns; /* CPAR_SHM_PIN_TIMEOUT_NS, or $CPAR_SHM_PIN_TIMEOUT seconds */
    uint64_t socket_max;     /* largest REPLY sent through the socket ($CPAR_SOCKET_MAX) */

    atomic_int stopping; /* set by the I/O thread: drop queued tasks, then exit */
    atomic_int io_done;  /* set by the I/O thread as it ends */

    /* Held by the I/O thread for each turn of its loop (all but its wait in poll) and by
     * the main thread while it sends a reply or receives a request itself (io_direct.c):
     * whoever holds it may use the I/O thread's sockets and state (io_live). */
    pthread_mutex_t io_turn;
    void *io_live;   /* the I/O thread's state while its loop runs, else NULL (under io_turn) */
    int rx_main;     /* the idle main thread waits on the DEALER's ZMQ_FD; the I/O thread
                      * leaves it out of its poll (under io_turn) */
    int watch_armed; /* io_watchfd is armed (under io_turn) */
    int io_wakefd;   /* eventfd: the main thread asks the I/O thread to look at its sockets */
    int io_watchfd;  /* timerfd: the I/O thread takes the DEALER's ZMQ_FD back when a
                      * request the main thread read itself runs past
                      * CPAR_ENGINE_WATCH_DELAY_US; -1 (or io_wakefd -1): no direct receive */
} cpar_engine;

/* log.c: the engine log (a file opened in append mode, or stderr). Any thread. */
int cpar_elog_open(const char *path, int quiet);
void cpar_elog_close(void);
void cpar_elog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cpar_elog_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cpar_elog_write(const char *prefix, const char *text, size_t len);
void cpar_elog_set_id(int id);
int cpar_elog_fd(void); /* the log's file descriptor (2 for stderr) */

/* capture.c: output buffering (under engine->lock) and the builtin module _cpar_engine
 * (Frame and Stream types, display()). cpar_capture_* need engine->lock held. A segment
 * with CPAR_FLAG_DISPLAY is never merged with its neighbours. */
void cpar_capture_init(cpar_capture *c);
int cpar_capture_append(cpar_capture *c, uint16_t flag, const char *data, size_t len);
/* Moves every pending segment into *out (which must be empty); c is left empty. */
void cpar_capture_take(cpar_capture *c, cpar_capture *out);
void cpar_capture_free(cpar_capture *c);
/* Turns each segment of c into a STREAM message about request `parent` and sends it with
 * cpar_wire_send on sock (the text moves to libzmq, no copy); c is left empty. Returns 0
 * or the first CPAR_E* error. Needs no lock (c is private to the caller by then). */
int cpar_capture_send(cpar_capture *c, void *sock, cpar_signer *s, int32_t engine_id,
                      const uint8_t parent[CPAR_WIRE_ID_SIZE]);
/* As cpar_capture_send, but each STREAM message goes to sink(arg, m), which takes its frames
 * (what it leaves in m is closed); c is left empty. Returns 0 or the first error (the
 * sink's CPAR_E* codes included). */
int cpar_capture_each(cpar_capture *c, int32_t engine_id, const uint8_t parent[CPAR_WIRE_ID_SIZE],
                      int (*sink)(void *arg, cpar_msg *m), void *arg);
/* The engine the Stream objects write for (set once, before Python starts). */
void cpar_capture_set_engine(cpar_engine *e);
/* PyImport_AppendInittab entry of _cpar_engine (a new module definition reference). */
PyObject *cpar_engine_module_init(void);

/* io.c: a fresh, process-unique msg id (random prefix + counter). Any thread. */
void cpar_engine_new_id(uint8_t out[CPAR_WIRE_ID_SIZE]);

/* io.c: the I/O thread. Starts it with every signal blocked in it. Returns 0 or -1. */
int cpar_io_start(cpar_engine *e);
void cpar_io_join(cpar_engine *e);

/* io_direct.c: the main thread uses the controller's DEALER itself (no hand-off through
 * the PAIR). Main thread only, GIL released.
 *
 * cpar_io_direct_begin: to send a reply (and its output) when the I/O thread is waiting
 * between turns, connected, and not lost or stopping. Returns the DEALER to send on, with
 * io_turn held, after relaying what the main thread queued on the PAIR before (order is
 * kept); NULL when the reply must go through the PAIR. cpar_io_direct_end releases
 * io_turn; `answered` (or NULL) is the request whose REPLY was sent (no longer held for a
 * recovery). The caller's next call must be cpar_io_direct_wait: the send may have taken
 * the notice of a message on the DEALER, and that wait reads or hands it on. */
void *cpar_io_direct_begin(cpar_engine *e);
void cpar_io_direct_end(cpar_engine *e, const uint8_t *answered);
/* Waits up to timeout_ms for the main thread's next control record: what the I/O thread
 * queued on `pair` (main's end) first; else, when the I/O thread's loop runs and is
 * neither lost nor stopping, a request read from the DEALER here (a CPAR_CTL_TASK, as the
 * I/O thread would pass it; control messages read with it are handled here as the I/O
 * thread would). Returns 1 with *ctl filled, 0 after timeout_ms, CPAR_EAGAIN when a signal
 * interrupted the wait, or CPAR_EZMQ. */
int cpar_io_direct_wait(cpar_engine *e, void *pair, cpar_engine_ctl *ctl, int timeout_ms);
/* Reads what the DEALER holds now (requests queued behind the running one, in order). */
void cpar_io_direct_pull(cpar_engine *e);

/* recover.c: the I/O thread's state for re-registering with a recovered controller
 * (docs/recovery.md, "Engines"). All of it belongs to the I/O thread; no lock, no Python. */
typedef struct cpar_recover_held cpar_recover_held;
typedef struct cpar_recover {
    /* The ids of the requests held: received (TASK, APPLY, EXECUTE) and not yet answered,
     * or answered with the REPLY held. */
    cpar_idtab tab;                    /* hash of an id -> its index in ids, + 1 */
    uint8_t (*ids)[CPAR_WIRE_ID_SIZE]; /* malloc'd, cap entries; the first `used` ever used */
    size_t *free_slots;                /* malloc'd, cap entries: indices of ids free again */
    size_t nfree;
    size_t used;
    size_t cap;
    uint64_t seed; /* of the hashes */
    /* Messages from the main thread held while the controller is lost, in order. */
    cpar_recover_held *head; /* malloc'd list, owning its frames */
    cpar_recover_held *tail;
    size_t held_replies;
    uint64_t stream_bytes;         /* bytes of the held STREAMs (at most CPAR_RECOVER_STREAM_MAX) */
    unsigned long dropped_streams; /* STREAMs dropped over the bound since the loss */
    uint64_t dropped_bytes;
} cpar_recover;

void cpar_recover_init(cpar_recover *r);
/* Closes every held frame and frees everything; r is left zeroed. */
void cpar_recover_free(cpar_recover *r);
/* Adds the id of a request received (once: an id already held stays one entry). 0 or
 * CPAR_ENOMEM. O(1). */
int cpar_recover_track(cpar_recover *r, const uint8_t id[CPAR_WIRE_ID_SIZE]);
/* Removes it (its REPLY was sent); an id not held is ignored. O(1). */
void cpar_recover_untrack(cpar_recover *r, const uint8_t id[CPAR_WIRE_ID_SIZE]);
size_t cpar_recover_count(const cpar_recover *r);
/* Adds to m one frame with the concatenated ids held. 0 or CPAR_ENOMEM. */
int cpar_recover_add_ids(const cpar_recover *r, cpar_msg *m);
/* 1 with the parent copied out when `header` is the header frame of a REPLY, else 0. */
int cpar_recover_reply_parent(const zmq_msg_t *header, uint8_t parent[CPAR_WIRE_ID_SIZE]);
/* Holds the wire message whose first part is *first (taken) and whose other parts are read
 * from the socket `from`: a REPLY always, a STREAM while the held STREAM bytes stay within
 * CPAR_RECOVER_STREAM_MAX (else it is dropped and counted; the first drop is logged).
 * 0, or a CPAR_E* code (logged; the message is dropped). */
int cpar_recover_hold_from(cpar_recover *r, zmq_msg_t *first, void *from);
/* Signs m with s and holds it as cpar_recover_hold_from does; m's frames are taken on
 * success (on failure the caller closes m). 0 or a CPAR_E* code. */
int cpar_recover_hold_msg(cpar_recover *r, cpar_signer *s, cpar_msg *m);
/* Sends every held message to sock in order (a REPLY's parent is untracked); the queue and
 * the drop counts are emptied. Returns the number of REPLYs sent. */
size_t cpar_recover_flush(cpar_recover *r, void *sock);

/* runner.c: the main thread's loop (GIL held on entry and exit). Waits for registration,
 * runs tasks until told to stop, returns the process exit status. */
int cpar_runner_run(cpar_engine *e);

/* signals.c (on the I/O thread): SIGINT to the main thread if the running request is one
 * of `ids` (n == 0: any; `drop`: the others are dropped when they come up), or another
 * signal to the engine process (0: none). */
void cpar_engine_interrupt(cpar_engine *e, const uint8_t *ids, size_t n, int drop);
void cpar_engine_signal(cpar_engine *e, const uint8_t *ids, size_t n, int sig);

#endif /* CPAR_ENGINE_ENGINE_H */
