/* The engine main thread's direct use of the controller's DEALER (docs/performance-notes.md,
 * "The no-op round trip"): it sends its REPLY itself, and while it waits idle it reads the
 * next request itself, so that neither goes through the inproc PAIR and a wake-up of the
 * I/O thread.
 *
 * Ownership and threads: these functions run on the main thread, the GIL released. The
 * DEALER, the I/O thread's PAIR end, its signer and its whole cpar__io belong to whoever
 * holds engine->io_turn (io_int.h); the main thread takes it here only while the I/O
 * thread's loop runs (engine->io_live) and the controller is neither lost nor being left.
 * Between turns one thread waits on the DEALER's ZMQ_FD: the I/O thread, or the main thread
 * while it waits idle in cpar_io_direct_wait (engine->rx_main, under io_turn). When the
 * main thread leaves to run a request, it does not wake the I/O thread: it arms
 * engine->io_watchfd, a timer that gives the I/O thread the DEALER back if the request
 * still runs CPAR_ENGINE_WATCH_DELAY_US later (control messages and output then flow as
 * before), and disarms it when it waits idle again first. A short request thus costs the
 * I/O thread no wake-up at all. The rule of sock.h holds across the two threads: whoever
 * ends a turn leaves the DEALER read to EAGAIN, or asks ZMQ_EVENTS and hands what it finds
 * to the other thread. No Python. */
#include "io_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "errors.h"
#include "sock.h"
#include "tsan.h"

/* 1 when the main thread may read and send on the I/O thread's sockets in this turn. */
static int
cpar__direct_usable(const cpar__io *io)
{
    return io != NULL && io->dealer != NULL && io->lost_until == 0 && !io->stopping && !io->quit;
}

/* Takes io_turn for a turn of the main thread: the I/O thread's state, or NULL when its
 * loop does not run (io_turn is then released). */
static cpar__io *
cpar__direct_lock(cpar_engine *e)
{
    cpar__io *io;
    pthread_mutex_lock(&e->io_turn);
    io = e->io_live;
    if (io == NULL) {
        pthread_mutex_unlock(&e->io_turn);
        return NULL;
    }
    io->pair_dirty = 0;
    return io;
}

/* Ends a turn of the main thread. A send on the I/O thread's PAIR end (a record for the
 * main thread itself) may have taken the notice of what the main thread queued there for
 * the I/O thread: it is woken when input waits. `dealer_read`: the DEALER was read to
 * EAGAIN in this turn; otherwise it is asked, and the I/O thread woken when input waits. */
static void
cpar__direct_unlock(cpar_engine *e, cpar__io *io, int dealer_read)
{
    if ((io->pair_dirty && cpar_sock_has_input(io->pair)) ||
        (!dealer_read && io->dealer != NULL && cpar_sock_has_input(io->dealer))) {
        e->rx_main = 0;
        cpar__io_wake(e);
    }
    io->pair_dirty = 0;
    pthread_mutex_unlock(&e->io_turn);
}

/* The main thread leaves to run a request: the I/O thread watches the DEALER again once the
 * timer fires (at once when it cannot be armed). Under io_turn. */
static void
cpar__direct_busy(cpar_engine *e)
{
    struct itimerspec t;
    if (!e->rx_main)
        return; /* the I/O thread watches, or was told to */
    e->rx_main = 0;
    if (e->watch_armed)
        return;
    memset(&t, 0, sizeof(t));
    t.it_value.tv_nsec = CPAR_ENGINE_WATCH_DELAY_US * 1000L;
    if (timerfd_settime(e->io_watchfd, 0, &t, NULL) == 0)
        e->watch_armed = 1;
    else
        cpar__io_wake(e);
}

/* The main thread waits idle on the DEALER's fd: the timer, if still armed, is let go (the
 * I/O thread never woke for the request). Under io_turn. */
static void
cpar__direct_idle(cpar_engine *e)
{
    struct itimerspec t;
    e->rx_main = 1;
    if (!e->watch_armed)
        return;
    memset(&t, 0, sizeof(t));
    if (timerfd_settime(e->io_watchfd, 0, &t, NULL) == 0) /* also clears a pending expiry */
        e->watch_armed = 0;
}

void *
cpar_io_direct_begin(cpar_engine *e)
{
    cpar__io *io;
    if (e->io_wakefd < 0 || pthread_mutex_trylock(&e->io_turn) != 0)
        return NULL; /* the I/O thread is in a turn: the PAIR it is */
    io = e->io_live;
    /* While lost, the I/O thread must see every reply (it holds them); while stopping, it
     * decides what still goes. A request held for a recovery is let go in
     * cpar_io_direct_end, as the I/O thread does when it relays the REPLY. */
    if (!cpar__direct_usable(io)) {
        pthread_mutex_unlock(&e->io_turn);
        return NULL;
    }
    /* What this thread queued on the PAIR before goes first. */
    io->pair_dirty = !cpar__io_on_pair(io);
    if (io->dealer == NULL || io->quit) {
        /* what on_pair relayed went out; this reply takes the PAIR after it */
        pthread_mutex_unlock(&e->io_turn);
        return NULL;
    }
    return io->dealer;
}

void
cpar_io_direct_end(cpar_engine *e, const uint8_t *answered)
{
    cpar__io *io = e->io_live;
    if (answered != NULL)
        cpar_recover_untrack(&io->rec, answered); /* answered: no longer held */
    /* The DEALER is read (or handed to the I/O thread) by the cpar_io_direct_wait that
     * comes next; on_pair above read the PAIR to EAGAIN unless it stopped early. */
    if (io->pair_dirty && cpar_sock_has_input(io->pair))
        cpar__io_wake(e);
    io->pair_dirty = 0;
    pthread_mutex_unlock(&e->io_turn);
}

void
cpar_io_direct_pull(cpar_engine *e)
{
    cpar__io *io;
    if (e->io_wakefd < 0 || e->io_watchfd < 0 || (io = cpar__direct_lock(e)) == NULL)
        return;
    if (cpar__direct_usable(io))
        cpar__direct_unlock(e, io, cpar__io_on_dealer(io));
    else
        cpar__direct_unlock(e, io, 0);
}

/* One turn of cpar_io_direct_wait: the PAIR first, then the DEALER. Returns 1 with *ctl
 * filled, 2 to look again at once (records were queued on the PAIR), 0 when the main
 * thread should wait on its PAIR's fd and pfd[1] (the DEALER's fd, or -1), CPAR_EAGAIN
 * when a signal interrupted the PAIR's read, or CPAR_EZMQ. */
static int
cpar__direct_turn(cpar_engine *e, void *pair, cpar_engine_ctl *ctl, struct pollfd *pfd)
{
    cpar__io *io = NULL;
    int n, got = 0, read_all = 0, again = 0;

    pfd[1].fd = -1;
    if (e->io_wakefd >= 0 && e->io_watchfd >= 0)
        io = cpar__direct_lock(e);
    n = zmq_recv(pair, ctl, sizeof(*ctl), ZMQ_DONTWAIT);
    if (n == (int)sizeof(*ctl)) {
        CPAR_TSAN_ACQUIRE(e); /* the I/O thread's cpar__io_ctl (tsan.h) */
        got = 1;
    } else if (n >= 0) {
        cpar_elog("ignored a control record of %d bytes", n);
        again = 1; /* the PAIR was not read to EAGAIN */
    } else if (zmq_errno() != EAGAIN) {
        n = zmq_errno() == EINTR ? CPAR_EAGAIN : CPAR_EZMQ;
        if (io != NULL)
            cpar__direct_unlock(e, io, 0);
        return n;
    }
    if (io == NULL)
        return got ? 1 : again ? 2 : 0;
    if (cpar__direct_usable(io)) {
        /* Requests behind the record just read are queued on the PAIR after it; with no
         * record, the first request read is the one to run. */
        io->take = !got;
        io->taken = NULL;
        read_all = cpar__io_on_dealer(io);
        io->take = 0;
        if (io->taken != NULL) {
            ctl->kind = CPAR_CTL_TASK;
            ctl->value = 0;
            ctl->msg = io->taken;
            io->taken = NULL;
            got = 1;
        }
        if (got) {
            if (ctl->kind == CPAR_CTL_TASK)
                cpar__direct_busy(e);
        } else if (io->pair_dirty) {
            again = 1; /* a record for this thread (DRAIN, STOP): read it first */
        } else if (read_all) {
            cpar__direct_idle(e);
            pfd[1].fd = cpar_sock_fd(io->dealer);
        } else if (e->rx_main) {
            e->rx_main = 0; /* input left unread: the I/O thread reads it */
            cpar__io_wake(e);
        }
    } else if (got && ctl->kind == CPAR_CTL_TASK) {
        cpar__direct_busy(e);
    }
    cpar__direct_unlock(e, io, read_all);
    return got ? 1 : again ? 2 : 0;
}

int
cpar_io_direct_wait(cpar_engine *e, void *pair, cpar_engine_ctl *ctl, int timeout_ms)
{
    uint64_t deadline = cpar_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    struct pollfd pfd[2] = {{.fd = cpar_sock_fd(pair), .events = POLLIN},
                            {.fd = -1, .events = POLLIN}};

    for (;;) {
        uint64_t now;
        int rc = cpar__direct_turn(e, pair, ctl, pfd);
        if (rc == 2)
            continue;
        if (rc != 0)
            return rc;
        now = cpar_mono_ns();
        if (now >= deadline)
            return 0;
        /* The PAIR and the DEALER were read to EAGAIN in this turn: their fds say when
         * input comes (sock.h). A DEALER replaced meanwhile (a lost controller) leaves a
         * stale fd here: the I/O thread then watches the new one (rx_main is 0). */
        if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, (int)((deadline - now) / 1000000u) + 1) < 0)
            return errno == EINTR ? CPAR_EAGAIN : CPAR_EZMQ;
    }
}
