/* The engine's I/O thread: registration, heartbeats, output streaming, the relay of the
 * main thread's replies to the controller, and the loop that reads the controller's
 * messages (handled in io_msg.c) while the main thread does not (io_direct.c).
 *
 * Ownership and threads: the thread makes and closes the DEALER connected to the
 * controller, the PAIR end bound at CPAR_ENGINE_PAIR_URL and its signer (all in its
 * cpar__io). While its loop runs they belong to whoever holds engine->io_turn: the thread
 * holds it for each turn (all but its wait in poll); the main thread takes it to send a
 * REPLY or, idle, to read requests itself (io_direct.c), calling the handlers here. Between
 * turns the thread waits on the DEALER's ZMQ_FD unless engine->rx_main says the idle main
 * thread does (then a timer, engine->io_watchfd, or io_wakefd gives it back). The thread
 * never touches Python and never waits for the GIL, so heartbeats and interrupts keep
 * flowing while a task holds it. It reads and writes cpar_engine's "under lock" fields
 * with engine->lock held, briefly. Every signal is blocked in this thread, so SIGINT always
 * lands on the main thread. */
#include "io_int.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "ids.h"
#include "tsan.h"
#include "pagepool.h"
#include "sock.h"

/* ---- message ids ----------------------------------------------------------------------- */

static pthread_once_t cpar__id_once = PTHREAD_ONCE_INIT;
static cpar_ids cpar__ids; /* the process's (any thread) */

static void
cpar__id_init(void)
{
    cpar_ids_init(&cpar__ids, 0, 0);
}

void
cpar_engine_new_id(uint8_t out[CPAR_WIRE_ID_SIZE])
{
    pthread_once(&cpar__id_once, cpar__id_init);
    cpar_ids_next(&cpar__ids, out);
}

/* ---- the thread ------------------------------------------------------------------------ */

/* The ZMQ_EVENT_* bits of the events waiting on the monitor (all are drained). */
static unsigned
cpar__io_events(cpar__io *io)
{
    return cpar_sock_monitor_drain(io->mon);
}

/* 1 when a handshake failed (events are drained). */
static int
cpar__io_handshake_failed(cpar__io *io)
{
    return (cpar__io_events(io) &
            (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) != 0;
}

/* Follows the connection after registration. Without a grace period, a dropped connection
 * (the controller died, or its host went away) that is not back within the heartbeat
 * timeout ends the engine in seconds, rather than after ten timeouts of silence; a
 * reconnection, or any message from the controller, clears it. With one, a dropped
 * connection is a lost controller (cpar__io_lose); while lost, only a connection that got
 * through its handshake (so may have taken the REGISTER) counts when it drops. */
static void
cpar__io_on_monitor(cpar__io *io, uint64_t now)
{
    unsigned events = cpar__io_events(io);
    if (events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        io->handshake_ok = 1;
    if (io->grace_ms > 0) {
        if (io->lost_until != 0 && !io->handshake_logged &&
            (events & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))) {
            io->handshake_logged = 1;
            cpar_elog("the security handshake with the process now at %s failed (not this "
                      "cluster's controller, or other keys); still waiting",
                      io->e->engine_url);
        }
        if ((events & ZMQ_EVENT_DISCONNECTED) && (io->lost_until == 0 || io->handshake_ok))
            cpar__io_lose(io, now, 0);
        return;
    }
    if (events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        io->lost_at = 0;
    if ((events & ZMQ_EVENT_DISCONNECTED) && io->lost_at == 0) {
        io->lost_at = now ? now : 1;
        cpar_elog("the connection to the controller dropped; exiting unless it is back "
                  "within %d ms",
                  io->e->hb_timeout_ms);
    }
}

int
cpar__io_ctl(cpar__io *io, int kind, int value, cpar_msg *msg)
{
    cpar_engine_ctl ctl = {.kind = kind, .value = value, .msg = msg};
    io->pair_dirty = 1;
    CPAR_TSAN_RELEASE(io->e); /* msg passes to the main thread (tsan.h) */
    if (zmq_send(io->pair, &ctl, sizeof(ctl), 0) != (int)sizeof(ctl))
        return CPAR_EZMQ;
    return 0;
}

void
cpar__io_drop(cpar__io *io, const char *why)
{
    io->dropped++;
    if (io->dropped <= 20 || io->dropped % 1000 == 0)
        cpar_elog("dropped a message from the controller: %s (%lu dropped so far)", why,
                  io->dropped);
}

/* Sends a message this thread makes (HEARTBEAT, REGISTER) to the controller. */
int
cpar__io_send(cpar__io *io, cpar_msg *m)
{
    return cpar_wire_send(io->dealer, io->signer, NULL, 0, m, ZMQ_DONTWAIT);
}

/* Parses "hb_period_ms=...\nhb_timeout_ms=...\nrecover_grace_ms=...\n" from
 * REGISTER_REPLY's payload ($CPAR_RECOVER_GRACE wins over the last). */
void
cpar__io_parse_reply(cpar__io *io, cpar_msg *m)
{
    char buf[256];
    size_t len;
    char *line, *save = NULL;
    int grace = 0; /* a reply without the line: no grace period */

    if (m->nframes < 1) {
        io->grace_ms = io->e->recover_grace_ms >= 0 ? io->e->recover_grace_ms : 0;
        return;
    }
    len = zmq_msg_size(&m->frames[0]);
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, zmq_msg_data(&m->frames[0]), len);
    buf[len] = '\0';
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int v;
        if (sscanf(line, "hb_period_ms=%d", &v) == 1 && v > 0)
            io->e->hb_period_ms = v;
        else if (sscanf(line, "hb_timeout_ms=%d", &v) == 1 && v > 0)
            io->e->hb_timeout_ms = v;
        else if (sscanf(line, "recover_grace_ms=%d", &v) == 1 && v >= 0)
            grace = v;
    }
    io->grace_ms = io->e->recover_grace_ms >= 0 ? io->e->recover_grace_ms : grace;
}

/* REGISTER, then wait for REGISTER_REPLY. Returns 0 (and tells main our id) or -1 (and
 * tells main to exit). */
static int
cpar__io_register(cpar__io *io)
{
    cpar_engine *e = io->e;
    cpar_msg m;
    uint64_t deadline;
    int rc;

    if (cpar__io_send_register(io, e->requested_id, 0) != 0)
        goto error;
    deadline = cpar_mono_ns() + (uint64_t)e->register_timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = cpar_mono_ns();
        zmq_pollitem_t item = {.socket = io->dealer, .events = ZMQ_POLLIN};
        if (io->mon != NULL && cpar__io_handshake_failed(io)) {
            cpar_elog("the %s handshake with the controller at %s failed: %s; exiting",
                      e->curve.server[0] ? "CURVE" : "security", e->engine_url,
                      e->curve.server[0]
                          ? "the CURVE keys in the connection file do not match the controller's"
                          : "the controller uses CURVE and the connection file has no keys");
            goto error;
        }
        if (now >= deadline) {
            cpar_elog("no REGISTER_REPLY from the controller at %s within %d ms; exiting",
                      e->engine_url, e->register_timeout_ms);
            goto error;
        }
        /* Short polls: the monitor is checked between them. */
        rc = zmq_poll(&item, 1,
                      (long)((deadline - now) / 1000000u) + 1 < 100
                          ? (long)((deadline - now) / 1000000u) + 1
                          : 100);
        if (rc <= 0)
            continue;
        rc = cpar_wire_recv(io->dealer, io->signer, 0, NULL, NULL, &m, ZMQ_DONTWAIT);
        if (rc == CPAR_EAGAIN)
            continue;
        if (rc != 0) {
            cpar__io_drop(io, cpar_strerror(rc));
            continue;
        }
        if (m.h.type != CPAR_MSG_REGISTER_REPLY) {
            cpar__io_drop(io, "not a REGISTER_REPLY while registering");
            cpar_msg_close(&m);
            continue;
        }
        if (m.h.status != 0) {
            /* The controller says why in frame 0: "error=<why>\n". */
            char why[256];
            cpar__io_refusal(&m, why, sizeof(why));
            cpar_elog("the controller refused registration: %s (%d)%s%s; exiting",
                      cpar_strerror(m.h.status), m.h.status, why[0] ? ": " : "", why);
            cpar_msg_close(&m);
            goto error;
        }
        e->id = m.h.engine;
        cpar__io_parse_reply(io, &m);
        cpar_msg_close(&m);
        break;
    }
    cpar_elog_set_id(e->id);
    cpar_elog("registered with %s as engine %d (heartbeat %d ms, timeout %d ms, recovery grace "
              "%g s)",
              e->engine_url, e->id, e->hb_period_ms, e->hb_timeout_ms, io->grace_ms / 1000.0);
    io->last_heard = cpar_mono_ns();
    cpar__io_ctl(io, CPAR_CTL_REGISTERED, e->id, NULL);
    return 0;
error:
    cpar__io_ctl(io, CPAR_CTL_FAILED, 2, NULL);
    return -1;
}

void
cpar__io_begin_stop(cpar__io *io, int status)
{
    if (io->stopping)
        return;
    io->stopping = 1;
    io->exit_status = status;
    io->stop_deadline = cpar_mono_ns() + (uint64_t)CPAR_ENGINE_STOP_GRACE_MS * 1000000u;
    atomic_store(&io->e->stopping, 1);
    cpar_engine_interrupt(io->e, NULL, 0, 0);
    cpar__io_ctl(io, CPAR_CTL_STOP, status, NULL);
    /* The I/O thread watches the DEALER and times the stop from now on. */
    io->e->rx_main = 0;
    if (pthread_equal(pthread_self(), io->e->main_thread))
        cpar__io_wake(io->e); /* a SHUTDOWN read by the main thread */
}

void
cpar__io_wake(cpar_engine *e)
{
    uint64_t one = 1;
    ssize_t r = write(e->io_wakefd, &one, sizeof(one));
    (void)r; /* a full counter still leaves the fd readable */
}

/* Drops the rest of a half-read multipart message on the pair. */
static void
cpar__io_skip_rest(cpar__io *io, int more)
{
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, io->pair, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
}

/* Relays what the main thread sent (signed wire messages, moved frame by frame without
 * copies) to the controller; handles its control records. */
int
cpar__io_on_pair(cpar__io *io)
{
    uint8_t parent[CPAR_WIRE_ID_SIZE];

    for (int i = 0; i < 1000; i++) {
        zmq_msg_t part;
        int more;

        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, io->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return zmq_errno() == EAGAIN;
        }
        CPAR_TSAN_ACQUIRE(io->e); /* the main thread's sends on the pair (tsan.h) */
        more = zmq_msg_more(&part);
        if (!more && zmq_msg_size(&part) == sizeof(cpar_engine_ctl)) {
            cpar_engine_ctl ctl;
            memcpy(&ctl, zmq_msg_data(&part), sizeof(ctl));
            zmq_msg_close(&part);
            if (ctl.kind == CPAR_CTL_QUIT)
                io->quit = 1;
            continue;
        }
        if (io->lost_until != 0) { /* sent after the REGISTER_REPLY, in order */
            cpar_recover_hold_from(&io->rec, &part, io->pair);
            continue;
        }
        if (cpar_recover_count(&io->rec) > 0 && cpar_recover_reply_parent(&part, parent))
            cpar_recover_untrack(&io->rec, parent); /* answered: no longer held */
        if (zmq_msg_send(&part, io->dealer, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
            cpar_elog("cannot send to the controller (%s); a message was dropped",
                      zmq_strerror(zmq_errno()));
            zmq_msg_close(&part);
            cpar__io_skip_rest(io, more);
            continue;
        }
        while (more) {
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, io->pair, 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            if (zmq_msg_send(&part, io->dealer, more ? ZMQ_SNDMORE : 0) < 0)
                zmq_msg_close(&part);
        }
    }
    return 0;
}

/* Sends the running task's pending output as STREAM messages (holds them while the
 * controller is lost). */
static void
cpar__io_flush_output(cpar__io *io)
{
    cpar_engine *e = io->e;
    cpar_capture pending;
    uint8_t parent[CPAR_WIRE_ID_SIZE];

    pthread_mutex_lock(&e->lock);
    if (!e->running || e->capture.n == 0) {
        pthread_mutex_unlock(&e->lock);
        return;
    }
    cpar_capture_take(&e->capture, &pending);
    memcpy(parent, e->running_id, CPAR_WIRE_ID_SIZE);
    pthread_mutex_unlock(&e->lock);
    if (io->lost_until != 0)
        cpar_capture_each(&pending, e->id, parent, cpar__io_hold_stream, io);
    else
        cpar_capture_send(&pending, io->dealer, io->signer, e->id, parent);
}

/* The safety bound of the shared-memory path: a REPLY's pinned frames are dropped
 * pin_timeout_ns after sending even if no RELEASE came (a client that died or lost its
 * connection). A client reads them as soon as the REPLY arrives; one that reads later
 * finds the seal broken and fails cleanly. */
static void
cpar__io_expire_pins(cpar__io *io, uint64_t now)
{
    size_t released = 0;
    if (now < io->e->pin_timeout_ns)
        return;
    pthread_mutex_lock(&io->e->lock);
    if (io->e->pins.n > 0)
        released = cpar_shm_pins_expire(&io->e->pins, now - io->e->pin_timeout_ns);
    pthread_mutex_unlock(&io->e->lock);
    if (released) {
        cpar_elog("released %zu shared-memory frame(s) never released by their client", released);
        cpar__io_ctl(io, CPAR_CTL_DRAIN, 0, NULL);
    }
}

static void
cpar__io_heartbeat(cpar__io *io)
{
    cpar_msg m;
    cpar_msg_init(&m, CPAR_MSG_HEARTBEAT);
    m.h.engine = io->e->id;
    cpar_engine_new_id(m.h.msg_id);
    m.h.t0 = cpar_now_ns();
    cpar__io_send(io, &m);
}

/* The loop waits with poll(2) on the sockets' ZMQ_FDs rather than zmq_poll, which asks
 * each socket for ZMQ_EVENTS (two system calls) before and after its own poll. Following
 * the rule in sock.h (the thread sends on the pair and the dealer), before it blocks the
 * loop asks ZMQ_EVENTS of the pair and the dealer (two checks instead of zmq_poll's six); the
 * monitor is only read, to EAGAIN. A new dealer or monitor (after a lost controller) is
 * read once before its fd is trusted. While the idle main thread waits on the dealer's fd
 * (e->rx_main), the loop leaves it out (one wake-up per message, not two); the main thread
 * then hands it back through io_watchfd or io_wakefd, and leaves the dealer read to EAGAIN
 * (or wakes this thread) whenever it ends a turn, as this thread does before it blocks. */
static void
cpar__io_loop(cpar__io *io)
{
    cpar_engine *e = io->e;
    uint64_t ms = 1000000u;
    void *dealer = NULL, *mon = NULL; /* the sockets the fds below belong to */
    unsigned made = io->sockets - 1;  /* io->sockets when they were taken */
    int rd_pair = 1, rd_dealer = 0, rd_mon = 0, dealer_fd = -1;
    struct pollfd pfd[5] = {{.fd = cpar_sock_fd(io->pair), .events = POLLIN},
                            {.fd = -1, .events = POLLIN},
                            {.fd = -1, .events = POLLIN},
                            {.fd = e->io_wakefd, .events = POLLIN},
                            {.fd = e->io_watchfd, .events = POLLIN}};

    io->next_hb = cpar_mono_ns();
    pthread_mutex_lock(&e->io_turn);
    e->io_live = io; /* the main thread may send its replies directly from now on */
    while (!io->quit) {
        int running, n;
        uint64_t now = cpar_mono_ns();
        long timeout = io->next_hb > now ? (long)((io->next_hb - now) / ms) + 1 : 0;

        /* The dealer and its monitor change when the controller is lost (either may be
         * NULL then). */
        if (io->dealer != dealer || io->mon != mon || io->sockets != made) {
            dealer = io->dealer;
            mon = io->mon;
            made = io->sockets;
            dealer_fd = cpar_sock_fd(dealer);
            pfd[2].fd = cpar_sock_fd(mon);
            rd_dealer = dealer != NULL;
            rd_mon = mon != NULL;
        }
        /* While tasks are queued or running, output is flushed at the stream period (a
         * task may start between this check and the poll). */
        pthread_mutex_lock(&e->lock);
        running = e->running || e->queued > 0;
        pthread_mutex_unlock(&e->lock);
        if (running && timeout > CPAR_ENGINE_STREAM_PERIOD_MS)
            timeout = CPAR_ENGINE_STREAM_PERIOD_MS;
        if ((io->stopping || io->lost_until != 0) && timeout > 100)
            timeout = 100;
        if (!rd_pair && !rd_dealer && !rd_mon && timeout != 0) {
            rd_pair = cpar_sock_has_input(io->pair);
            rd_dealer = cpar_sock_has_input(dealer);
        }
        pfd[1].fd = e->rx_main ? -1 : dealer_fd;
        /* poll(2) skips negative fds. The main thread may take the turn meanwhile. */
        pthread_mutex_unlock(&e->io_turn);
        n = poll(pfd, 5, rd_pair || rd_dealer || rd_mon ? 0 : (int)timeout);
        pthread_mutex_lock(&e->io_turn);
        if (n < 0 && errno != EINTR) {
            cpar_elog("poll failed: %s", strerror(errno));
            break;
        }
        if (pfd[3].fd >= 0 && (pfd[3].revents & POLLIN)) {
            /* The main thread sent directly and left input unread (its send may have
             * taken the notice of a message): read both sockets. */
            uint64_t count;
            ssize_t r = read(pfd[3].fd, &count, sizeof(count));
            (void)r;
            rd_pair = rd_dealer = 1;
        }
        if (pfd[4].fd >= 0 && (pfd[4].revents & POLLIN)) {
            /* A request the main thread read itself still runs: the dealer is ours to
             * watch again (e->rx_main is 0). */
            uint64_t count;
            ssize_t r = read(pfd[4].fd, &count, sizeof(count));
            (void)r;
            e->watch_armed = 0;
        }
        rd_pair |= (pfd[0].revents & (POLLIN | POLLERR)) != 0;
        rd_dealer |= pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLERR)) != 0;
        rd_mon |= pfd[2].fd >= 0 && (pfd[2].revents & (POLLIN | POLLERR)) != 0;
        if (rd_dealer && io->dealer == dealer && dealer != NULL)
            cpar__io_on_dealer(io);
        rd_dealer = 0;
        if (rd_pair)
            cpar__io_on_pair(io);
        rd_pair = 0;
        now = cpar_mono_ns();
        if (rd_mon && io->mon == mon && mon != NULL)
            cpar__io_on_monitor(io, now);
        rd_mon = 0;
        if (io->lost_until == 0 && now >= io->next_hb) { /* none while lost */
            cpar__io_heartbeat(io);
            io->next_hb = now + (uint64_t)e->hb_period_ms * ms;
            cpar_pagepool_trim(); /* received pages unused for a while go back */
        }
        if (now - io->last_flush >= (uint64_t)CPAR_ENGINE_STREAM_PERIOD_MS * ms) {
            cpar__io_flush_output(io);
            io->last_flush = now;
        }
        if (now >= io->next_expire) {
            cpar__io_expire_pins(io, now);
            io->next_expire = now + 1000u * ms;
        }
        if (!io->stopping && io->lost_until == 0 &&
            now - io->last_heard > (uint64_t)e->hb_timeout_ms * 10u * ms) {
            if (io->grace_ms > 0) {
                cpar__io_lose(io, now, 1);
            } else {
                cpar_elog("nothing heard from the controller for %d ms; exiting",
                          e->hb_timeout_ms * 10);
                cpar__io_begin_stop(io, 1);
            }
        }
        if (!io->stopping && io->lost_at != 0 &&
            now - io->lost_at > (uint64_t)e->hb_timeout_ms * ms) {
            cpar_elog("the connection to the controller did not come back within %d ms "
                      "(the controller is gone); exiting",
                      e->hb_timeout_ms);
            cpar__io_begin_stop(io, 1);
        }
        if (!io->stopping && io->lost_until != 0 && now >= io->lost_until) {
            cpar_elog("the controller did not come back within %g s; exiting",
                      io->grace_ms / 1000.0);
            cpar__io_begin_stop(io, 1);
        }
        if (io->stopping && !io->quit && now > io->stop_deadline) {
            cpar_elog("the running task did not stop within %d ms; exiting now",
                      CPAR_ENGINE_STOP_GRACE_MS);
            cpar_elog_close();
            _exit(io->exit_status);
        }
    }
    e->io_live = NULL;
    e->rx_main = 0;
    pthread_mutex_unlock(&e->io_turn);
}

/* After a failed registration: wait for main's QUIT, so that closing the pair cannot
 * discard the CPAR_CTL_FAILED record before main has read it. */
static void
cpar__io_wait_quit(cpar__io *io)
{
    while (!io->quit) {
        zmq_pollitem_t item = {.socket = io->pair, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 1000) < 0)
            return;
        if (item.revents & ZMQ_POLLIN)
            cpar__io_on_pair(io);
    }
}

static void *
cpar__io_main(void *arg)
{
    cpar__io io;
    int flush = 0;

    memset(&io, 0, sizeof(io));
    io.e = arg;
    pthread_setname_np(pthread_self(), "cpar-engine-io"); /* for ps and /proc (tests) */
    cpar_recover_init(&io.rec);
    if (cpar_signer_new(io.e->key, io.e->keylen, &io.signer) != 0) {
        cpar_elog("cannot make an HMAC signer");
        goto error;
    }
    io.pair = cpar_sock_new(io.e->zctx, ZMQ_PAIR, 0, 0);
    if (io.pair == NULL) {
        cpar_elog("cannot create sockets: %s", zmq_strerror(zmq_errno()));
        goto error;
    }
    if (zmq_bind(io.pair, CPAR_ENGINE_PAIR_URL) != 0) {
        cpar_elog("cannot bind %s: %s", CPAR_ENGINE_PAIR_URL, zmq_strerror(zmq_errno()));
        goto error;
    }
    if (cpar__io_open(&io) != 0) {
        cpar__io_ctl(&io, CPAR_CTL_FAILED, 2, NULL);
        cpar__io_wait_quit(&io);
        goto error;
    }
    if (cpar__io_register(&io) == 0) {
        cpar__io_loop(&io);
        /* SHUTDOWN: the last replies must still go out (not to a controller that is gone) */
        flush = io.exit_status == 0 && io.lost_until == 0;
    } else {
        cpar__io_wait_quit(&io);
    }
error:
    atomic_store(&io.e->io_done, 1);
    cpar__io_close(&io, !flush); /* nobody listens: do not linger at exit */
    if (io.pair)
        zmq_close(io.pair);
    cpar_signer_free(io.signer);
    cpar_recover_free(&io.rec);
    return NULL;
}

int
cpar_io_start(cpar_engine *e)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&e->io_thread, NULL, cpar__io_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        cpar_elog("cannot start the I/O thread: %s", strerror(rc));
        return -1;
    }
    e->io_started = 1;
    return 0;
}

void
cpar_io_join(cpar_engine *e)
{
    if (e->io_started)
        pthread_join(e->io_thread, NULL);
    e->io_started = 0;
}
