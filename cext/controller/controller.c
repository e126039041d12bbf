/* The cpar controller loop (controller.h; behaviour in docs/protocol.md): set-up, the
 * zmq_poll loop, receiving and checking (cpar_wire_recv_fd, then the replay check), and
 * dispatching down: client messages to controller_clients.c, engine messages to
 * controller_engines.c, the per-turn task work to controller_taskloop.c. It owns the
 * cpar_controller every handler is passed; nothing below calls back up into this file
 * (controller_int.h has the layers; tools/check_calls.py checks them).
 *
 * Decisions where the protocol leaves room:
 * - REGISTER asking for an id that a live or stopping engine holds, or above
 *   CPAR_REGISTRY_MAX_REQUESTED_ID: REGISTER_REPLY status CPAR_EINVAL, engine -1. While a
 *   hub shutdown runs: CPAR_ESHUTDOWN. A repeated REGISTER from a registered identity gets
 *   its id again. Automatic ids never reuse an id that was ever held.
 * - A HEARTBEAT from an unknown or dead engine identity is answered with SHUTDOWN (status
 *   CPAR_EENGINEDEAD), so a zombie engine exits; its other messages are dropped. During a
 *   recovered controller's grace period it is dropped instead (docs/recovery.md).
 * - EXECUTE/APPLY without TARGETED: ERROR CPAR_EINVAL; a malformed target list: CPAR_EPROTO;
 *   the same msg_id outstanding twice on one engine (or listed twice): CPAR_EINVAL.
 * - SHUTDOWN with HUB stops every engine whatever its target list; the loop ends when no
 *   engine is left or hb_timeout_ms after the request. A client message of an engine-only
 *   type gets ERROR CPAR_ETYPE.
 * - Nothing signed answers a message that failed its checks: a signed answer would hand
 *   an unauthenticated sender a message made with the cluster key. A client whose message
 *   had a bad signature gets, once per identity and rate-limited, an UNSIGNED ERROR
 *   (status CPAR_ESIG, no parent), which a client with the wrong key reports as such.
 * - Authenticated messages pass the replay check (replay.h): a send time outside the window
 *   or a copy of a recent message is dropped and counted, with no answer.
 * - Stopped by cpar_controller_stop or a signal, the loop sends SHUTDOWN to every engine.
 *   After a graceful end the sockets linger up to CPAR__LINGER_MS so the last replies go
 *   out; otherwise linger is 0. */
#include "controller.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "controller_int.h"
#include "curve.h"
#include "errors.h"
#include "sock.h"
#include "outbound.h"

/* Tasks held at once after which, once none is left, freed memory goes back to the OS. */
#define CPAR__TRIM_AFTER_TASKS 4096

static const char *const cpar__side_name[2] = {"client", "engine"};
static const char *const cpar__side_a[2] = {"a client", "an engine"};

static cpar_controller *volatile cpar__signal_target;
static struct sigaction cpar__old_int, cpar__old_term;
static int cpar__signals_installed;

static uint64_t
cpar__drops(const cpar_controller *c)
{
    const cpar__counters *k = &c->cnt;
    uint64_t s = k->unknown_engine + k->unroutable + k->client_gone + k->send_failed +
                 k->recv_failed + k->unexpected[0] + k->unexpected[1];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 6; j++)
            s += k->bad[i][j];
    return s;
}

static void
cpar__log_stats(cpar_controller *c, const char *when)
{
    const cpar__counters *k = &c->cnt;
    cpar_log_write(&c->log,
                   "%s: %llu messages received; dropped from clients: %llu malformed, %llu bad "
                   "signature, %llu bad version, %llu bad type, %llu stale, %llu replayed, %llu "
                   "unexpected; from engines: %llu malformed, %llu bad signature, %llu bad "
                   "version, %llu bad type, %llu stale, %llu replayed, %llu unexpected, %llu "
                   "from unknown engines, %llu unroutable; %llu for gone clients, %llu failed "
                   "sends, %llu failed receives; %llu unsigned notices; %llu replay tags "
                   "forgotten early; CURVE %llu allowed, %llu refused",
                   when, (unsigned long long)k->received, (unsigned long long)k->bad[0][0],
                   (unsigned long long)k->bad[0][1], (unsigned long long)k->bad[0][2],
                   (unsigned long long)k->bad[0][3], (unsigned long long)k->bad[0][4],
                   (unsigned long long)k->bad[0][5], (unsigned long long)k->unexpected[0],
                   (unsigned long long)k->bad[1][0], (unsigned long long)k->bad[1][1],
                   (unsigned long long)k->bad[1][2], (unsigned long long)k->bad[1][3],
                   (unsigned long long)k->bad[1][4], (unsigned long long)k->bad[1][5],
                   (unsigned long long)k->unexpected[1], (unsigned long long)k->unknown_engine,
                   (unsigned long long)k->unroutable, (unsigned long long)k->client_gone,
                   (unsigned long long)k->send_failed, (unsigned long long)k->recv_failed,
                   (unsigned long long)k->notices, (unsigned long long)c->replay.early,
                   (unsigned long long)c->zap.allowed, (unsigned long long)c->zap.refused);
    c->stats_logged = cpar__drops(c);
}

/* Tells a client, without signing anything, that its message had a bad signature: an ERROR
 * with status CPAR_ESIG, no parent and an all-zero tag. At most once per identity among the
 * last CPAR__NOTICE_IDENTS told, and at most CPAR__NOTICE_BURST at once then one a second,
 * so a flood of garbage costs the controller no memory. */
static void
cpar__notice_bad_signature(cpar_controller *c, const uint8_t *ident, size_t identlen)
{
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
    cpar_header h;
    uint64_t hash = 1469598103934665603u, now = cpar__ctlout_mono_ms();

    for (size_t i = 0; i < identlen; i++)
        hash = (hash ^ ident[i]) * 1099511628211u;
    hash |= 1; /* 0 marks an empty slot */
    for (size_t i = 0; i < CPAR__NOTICE_IDENTS; i++)
        if (c->notice_idents[i] == hash)
            return;
    if (now - c->notice_tokens_at >= 1000) {
        uint64_t add = (now - c->notice_tokens_at) / 1000;
        c->notice_tokens =
            add >= CPAR__NOTICE_BURST || c->notice_tokens + (int)add > CPAR__NOTICE_BURST
                ? CPAR__NOTICE_BURST
                : c->notice_tokens + (int)add;
        c->notice_tokens_at = now;
    }
    if (c->notice_tokens <= 0)
        return;
    c->notice_tokens--;
    c->notice_idents[c->notice_next] = hash;
    c->notice_next = (c->notice_next + 1) % CPAR__NOTICE_IDENTS;
    memset(&h, 0, sizeof(h));
    h.type = CPAR_MSG_ERROR;
    h.target = CPAR_NO_ENGINE;
    h.engine = CPAR_NO_ENGINE;
    h.status = CPAR_ESIG;
    cpar_wire_header_encode(&h, hdr); /* the tag stays zero: unsigned */
    if (zmq_send(c->csock, ident, identlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)identlen &&
        zmq_send(c->csock, hdr, sizeof(hdr), ZMQ_DONTWAIT) == (int)sizeof(hdr))
        c->cnt.notices++;
}

/* Counts and logs a dropped message. Nothing signed goes back (see the top of the file). */
static void
cpar__on_bad(cpar_controller *c, int side, int rc, const uint8_t *ident, size_t identlen)
{
    int kind = rc == CPAR_ESIG       ? 1
               : rc == CPAR_EVERSION ? 2
               : rc == CPAR_ETYPE    ? 3
               : rc == CPAR_EWINDOW  ? 4
               : rc == CPAR_EREPLAY  ? 5
                                     : 0;
    uint64_t n = ++c->cnt.bad[side][kind];
    if (cpar_log_ratelimit(n)) {
        char hex[2 * 16 + 3];
        size_t k, shown = identlen < 16 ? identlen : 16;
        for (k = 0; k < shown; k++)
            snprintf(hex + 2 * k, 3, "%02x", ident[k]);
        snprintf(hex + 2 * k, 3, "%s", identlen > shown ? ".." : "");
        cpar_log_write(&c->log,
                       "dropped a message from %s (identity %s): %s (%llu of this kind so far)",
                       cpar__side_a[side], hex, cpar_strerror(rc), (unsigned long long)n);
    }
    if (side == CPAR__SIDE_CLIENT && rc == CPAR_ESIG)
        cpar__notice_bad_signature(c, ident, identlen);
}

/* Receives one message (cpar_wire_recv_fd): identity, fd, and the checked message in m,
 * which then passes the replay check. Returns 0, CPAR_EAGAIN, CPAR_EZMQ, or the code of a
 * dropped message. */
static int
cpar__recv(cpar_controller *c, void *sock, uint8_t *ident, size_t *identlen, int *fd, cpar_msg *m)
{
    int rc = cpar_wire_recv_fd(sock, c->signer, 1, ident, identlen, fd, m, ZMQ_DONTWAIT);
    if (rc != 0)
        return rc;
    /* Authentic: now the replay check. A REPLY's t0/t1 are its task's times, not its send
     * time (a long task, a suspended laptop), so only its tag is checked; a copy of one
     * would find its request answered anyway. */
    rc = cpar_replay_check(&c->replay, cpar_wire_msg_tag(m), m->h.t0, m->h.type != CPAR_MSG_REPLY,
                           cpar_now_ns(), cpar_mono_ns());
    if (rc != 0)
        cpar_msg_close(m);
    return rc;
}

/* Handles up to CPAR__BATCH messages of one socket; returns 1 when more may be waiting. */
static int
cpar__drain(cpar_controller *c, int side)
{
    void *sock = side == CPAR__SIDE_CLIENT ? c->csock : c->esock;
    uint8_t ident[CPAR_WIRE_MAX_IDENT];

    for (int i = 0; i < CPAR__BATCH; i++) {
        size_t identlen = 0;
        int fd = -1, rc;
        cpar_msg m;

        rc = cpar__recv(c, sock, ident, &identlen, &fd, &m);
        if (rc == CPAR_EAGAIN)
            return 0;
        if (rc == CPAR_EZMQ) {
            if (zmq_errno() != EINTR && cpar_log_ratelimit(++c->cnt.recv_failed))
                cpar_log_write(&c->log, "receive from %ss failed: %s", cpar__side_name[side],
                               zmq_strerror(zmq_errno()));
            return 0;
        }
        if (rc != 0) {
            cpar__on_bad(c, side, rc, ident, identlen);
            continue;
        }
        c->cnt.received++;
        if (side == CPAR__SIDE_CLIENT)
            cpar__ctlcli_on_message(c, ident, identlen, fd, &m);
        else
            cpar__ctleng_on_message(c, ident, identlen, fd, &m);
        cpar_msg_close(&m);
    }
    return 1;
}

/* The loop's sockets, in the order of cpar__wait's slots. */
enum { CPAR__W_MON, CPAR__W_ENG, CPAR__W_CLI, CPAR__W_ZAP, CPAR__W_DB, CPAR__W_CMON, CPAR__W_N };

/* The loop waits on the sockets' ZMQ_FDs with poll(2) itself rather than zmq_poll, which
 * asks every socket for ZMQ_EVENTS (a poll and a getpid each) before and after its own
 * poll: on a busy controller those checks were most of its system calls. Following the
 * rule in sock.h, it blocks only after reading each socket to EAGAIN, and after asking
 * ZMQ_EVENTS of the sockets it sends on (engines, clients). The database's PAIR and the
 * monitors are only read. */
typedef struct {
    void *sock[CPAR__W_N];
    struct pollfd pfd[CPAR__W_N];
    int slot[CPAR__W_N]; /* pfd index of each socket, or -1 */
    int npfd;
    int ready[CPAR__W_N];
} cpar__wait;

static int
cpar__wait_init(cpar_controller *c, cpar__wait *w)
{
    memset(w, 0, sizeof(*w));
    w->sock[CPAR__W_MON] = c->mon;
    w->sock[CPAR__W_ENG] = c->esock;
    w->sock[CPAR__W_CLI] = c->csock;
    w->sock[CPAR__W_ZAP] = c->zap.sock;
    w->sock[CPAR__W_DB] = c->db != NULL ? cpar_taskdb_pair(c->db) : NULL;
    w->sock[CPAR__W_CMON] = c->cmon;
    for (int k = 0; k < CPAR__W_N; k++) {
        int fd;
        w->slot[k] = -1;
        if (w->sock[k] == NULL)
            continue;
        if ((fd = cpar_sock_fd(w->sock[k])) < 0)
            return CPAR_EZMQ;
        w->slot[k] = w->npfd;
        w->pfd[w->npfd++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    return CPAR_OK;
}

/* Fills w->ready: the sockets to read this turn. `pending` marks sockets known to hold
 * more (a drain that stopped at its batch); with any pending, or timeout_ms 0, it does not
 * block. Returns 0, or -1 with errno (EINTR: try again). */
static int
cpar__wait_turn(cpar__wait *w, const int *pending, long timeout_ms)
{
    int any = 0;
    for (int k = 0; k < CPAR__W_N; k++) {
        w->ready[k] = pending[k];
        any |= pending[k];
    }
    if (!any && timeout_ms != 0) {
        /* ZAP replies are sent between receives that end in EAGAIN (cpar_zap_serve), so
         * only these two can hide a message. */
        static const int sent_on[] = {CPAR__W_ENG, CPAR__W_CLI};
        for (size_t i = 0; i < sizeof(sent_on) / sizeof(sent_on[0]); i++)
            if (cpar_sock_has_input(w->sock[sent_on[i]]))
                w->ready[sent_on[i]] = any = 1;
    }
    if (poll(w->pfd, (nfds_t)w->npfd, any ? 0 : (int)timeout_ms) < 0)
        return -1;
    for (int k = 0; k < CPAR__W_N; k++)
        if (w->slot[k] >= 0 && (w->pfd[w->slot[k]].revents & (POLLIN | POLLERR | POLLHUP)))
            w->ready[k] = 1;
    return 0;
}

int
cpar_controller_run(cpar_controller *c)
{
    uint64_t next_hb_check, next_stats, next_tick = 0;
    int busy = 0, engine_backlog = 0, rc = CPAR_OK;
    int pending[CPAR__W_N] = {0};
    int check_every =
        c->hb_period_ms / 2 < CPAR__POLL_MAX_MS ? c->hb_period_ms / 2 : CPAR__POLL_MAX_MS;
    cpar__wait w;

    if (c == NULL || c->magic != CPAR__CTL_MAGIC)
        return CPAR_EINVAL;
    if (cpar__wait_init(c, &w) != CPAR_OK) {
        cpar_log_write(&c->log, "cannot get the sockets' file descriptors: %s",
                       zmq_strerror(zmq_errno()));
        return CPAR_EZMQ;
    }
    if (check_every < 1)
        check_every = 1;
    next_hb_check = cpar__ctlout_mono_ms() + (uint64_t)check_every;
    next_stats = cpar__ctlout_mono_ms() + CPAR__STATS_PERIOD_MS;
    cpar_log_write(&c->log, "running");
    cpar__ctlrec_start(c); /* a recovery: what the database held, before serving */
    /* Everything is read once before the first wait (the fds signal only what comes). */
    for (int k = 0; k < CPAR__W_N; k++)
        pending[k] = w.sock[k] != NULL;
    while (!atomic_load(&c->stop)) {
        uint64_t now = cpar__ctlout_mono_ms();
        long timeout = 0;
        if (!busy)
            timeout = next_hb_check > now ? (long)(next_hb_check - now) : 0;
        if (cpar__wait_turn(&w, pending, timeout) < 0) {
            if (errno == EINTR)
                continue;
            cpar_log_write(&c->log, "poll failed: %s", strerror(errno));
            rc = CPAR_EZMQ;
            break;
        }
        memset(pending, 0, sizeof(pending));
        if (w.ready[CPAR__W_ZAP])
            cpar_zap_serve(&c->zap, &c->log);
        if (w.ready[CPAR__W_MON])
            cpar__ctleng_read_monitor(c);
        busy = 0;
        engine_backlog = 0;
        if (c->ngone_fds > 0) {
            /* Route what the closed connections sent before closing, then declare their
             * engines gone (bounded, so a flood cannot starve the clients). */
            int more = 1;
            for (int k = 0; k < CPAR__GONE_DRAIN_BATCHES && more; k++)
                more = cpar__drain(c, CPAR__SIDE_ENGINE);
            pending[CPAR__W_ENG] = more; /* read on next turn (its fd will not tell) */
            cpar__ctleng_apply_disconnects(c, -1);
        } else if (w.ready[CPAR__W_ENG]) {
            engine_backlog = cpar__drain(c, CPAR__SIDE_ENGINE);
            busy |= engine_backlog;
            pending[CPAR__W_ENG] = engine_backlog;
        }
        {
            int client_backlog = w.ready[CPAR__W_CLI] && cpar__drain(c, CPAR__SIDE_CLIENT);
            busy |= client_backlog;
            pending[CPAR__W_CLI] = client_backlog;
            /* Clients that vanished (controller_clients.c): their queued tasks go. */
            cpar__ctlcli_check(c, !client_backlog, w.ready[CPAR__W_CMON]);
        }
        /* The task database's answers (DB_REPLY), and the tasks a resubmit made. */
        if (c->db != NULL && w.ready[CPAR__W_DB])
            busy |= pending[CPAR__W_DB] = cpar__ctlcli_db_answers(c);
        now = cpar__ctlout_mono_ms();
        /* Heartbeats may wait unread behind a backlog: judge silence once it is read,
         * unless the backlog lasts longer than a whole timeout. */
        if (now >= next_hb_check &&
            (!engine_backlog || now >= next_hb_check + (uint64_t)c->hb_timeout_ms)) {
            cpar__ctleng_check_heartbeats(c, now);
            next_hb_check = now + (uint64_t)check_every;
        }
        {
            int more = cpar__ctltask_run(c, now, now >= next_tick);
            /* Engines the sends found unreachable: gone now (their tasks retried). */
            if (cpar__ctleng_reap_unreachable(c) > 0)
                more = cpar__ctltask_more(c);
            busy |= more;
        }
        if (now >= next_tick)
            next_tick = now + CPAR__TASK_TICK_MS;
        cpar__ctlrec_tick(c, now); /* a recovery's grace period ends */
        /* After a burst of queued tasks (a map of 100,000 items) the allocator keeps the
         * freed pages: return them, so the controller's RSS follows what it holds. */
        if (!busy && cpar__ctltask_drained(c, CPAR__TRIM_AFTER_TASKS))
            malloc_trim(0);
        if (now >= next_stats) {
            if (cpar__drops(c) != c->stats_logged)
                cpar__log_stats(c, "counters");
            next_stats = now + CPAR__STATS_PERIOD_MS;
        }
        if (cpar__ctleng_hub_done(c, now)) {
            cpar_log_write(&c->log, "shut down by a client: all engines gone");
            break;
        }
    }
    if (atomic_load(&c->stop) && !c->hub_stopping) {
        /* Stopped by a signal or the owner: the engines cannot outlive their controller
         * usefully (a new one has a new key), so tell them to go now. */
        int told = 0;
        for (size_t i = 0; i < c->reg.nengines; i++)
            if (c->reg.engines[i].state == CPAR_ENGINE_LIVE) {
                cpar__ctleng_stop(c, (int32_t)i);
                told++;
            }
        c->graceful = 1;
        cpar_log_write(&c->log, "stop requested: %d engine(s) told to shut down", told);
    }
    cpar__log_stats(c, "final counters");
    return rc;
}

static int
cpar__router(cpar_controller *c, void **sock, const char *url, char *ep, size_t eplen, char *err,
             size_t errlen, const cpar_controller_config *cfg)
{
    const char *curve_secret = cfg->curve_secret;
    *sock = cpar_sock_new(c->zctx, ZMQ_ROUTER, 0, cfg->max_message);
    if (*sock == NULL) {
        snprintf(err, errlen, "cannot create a ROUTER socket: %s", zmq_strerror(zmq_errno()));
        return CPAR_EZMQ;
    }
    if (curve_secret != NULL && cpar_curve_server(*sock, curve_secret) != 0) {
        snprintf(err, errlen, "cannot make %s a CURVE server: %s", url,
                 cpar_curve_key_valid(curve_secret) ? zmq_strerror(zmq_errno())
                                                    : "the secret key is not 40 Z85 characters");
        return CPAR_EINVAL;
    }
    return cpar_sock_bind(*sock, url, ep, eplen, err, errlen);
}

int
cpar_controller_new(const cpar_controller_config *cfg, cpar_controller **out, char *err,
                    size_t errlen)
{
    cpar_controller *c = NULL;
    int rc = CPAR_EINVAL;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (cfg == NULL || cfg->client_url == NULL || cfg->engine_url == NULL || cfg->key == NULL ||
        cfg->keylen == 0 || cfg->keylen > CPAR_SIGN_MAX_KEY || cfg->hb_period_ms < 0 ||
        cfg->hb_timeout_ms < 0 || cfg->recover_grace_ms < 0) {
        snprintf(err, errlen, "invalid controller configuration");
        return CPAR_EINVAL;
    }
    if (cfg->recover && (cfg->db == NULL || strcmp(cfg->db, "sqlite") != 0)) {
        snprintf(err, errlen,
                 "recovery needs the task database in a file (db 'sqlite'): with db '%s' there "
                 "is nothing to recover from",
                 cfg->db ? cfg->db : "none");
        return CPAR_EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    c->magic = CPAR__CTL_MAGIC;
    atomic_init(&c->stop, 0);
    c->hb_period_ms = cfg->hb_period_ms ? cfg->hb_period_ms : 500;
    c->hb_timeout_ms = cfg->hb_timeout_ms ? cfg->hb_timeout_ms : 3000;
    c->recover_grace_ms = cfg->recover_grace_ms;
    cpar_registry_init(&c->reg);
    cpar_route_init(&c->route);
    cpar_route_init(&c->pinned);
    rc = cpar__ctltask_new(c, cfg, err, errlen);
    if (rc != 0)
        goto error;
    rc = cpar__ctlcoal_new(c);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    rc = cpar_log_open(&c->log, cfg->log_path, "controller", err, errlen);
    if (rc != 0)
        goto error;
    if (cfg->replay_window_ms < 0 || cfg->replay_ids < 0 || cfg->max_message < 0) {
        snprintf(err, errlen, "invalid controller configuration: a negative limit");
        rc = CPAR_EINVAL;
        goto error;
    }
    rc = cpar_replay_init(&c->replay, (uint64_t)cfg->replay_window_ms, (size_t)cfg->replay_ids);
    if (rc != 0)
        goto error;
    rc = cpar_signer_new(cfg->key, cfg->keylen, &c->signer);
    if (rc != 0) {
        snprintf(err, errlen, "cannot make the signer: %s", cpar_strerror(rc));
        goto error;
    }
    cpar_ids_init(&c->ids, (uint64_t)(uintptr_t)c, 0);
    rc = CPAR_EZMQ;
    c->zctx = zmq_ctx_new();
    if (c->zctx == NULL) {
        snprintf(err, errlen, "cannot make a ZMQ context: %s", zmq_strerror(zmq_errno()));
        goto error;
    }
    /* The task database before anything is bound: a database refused (another cluster's,
     * corrupt, or nothing to recover) leaves no socket behind. */
    if (cfg->db != NULL && cfg->db[0] != '\0' && strcmp(cfg->db, "none") != 0) {
        cpar_taskdb_config dc = {
            .mode = cfg->db,
            .path = cfg->db_file,
            .max_records = cfg->db_max_records,
            .max_bytes = cfg->db_max_bytes,
            .keep_bytes = cfg->db_keep_bytes,
            .log = &c->log,
            .cluster_id = cfg->cluster_id,
            .key = cfg->key,
            .keylen = cfg->keylen,
            .recover = cfg->recover,
            .recover_ended = cfg->max_records > 0 ? cfg->max_records : 100000,
        };
        rc = cpar_taskdb_open(&dc, c->zctx, &c->db, err, errlen);
        if (rc != 0)
            goto error;
        c->recovery = cpar_taskdb_take_recovery(c->db);
        if (cfg->db_file != NULL && (c->db_path = strdup(cfg->db_file)) == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = CPAR_ENOMEM;
            goto error;
        }
    }
    /* The ZAP handler first: a CURVE socket bound without one accepts any client key. */
    if (cfg->curve_secret != NULL) {
        rc = cpar_zap_open(&c->zap, c->zctx, cfg->curve_allowed, err, errlen);
        if (rc != 0)
            goto error;
    }
    rc = cpar__router(c, &c->csock, cfg->client_url, c->client_ep, sizeof(c->client_ep), err,
                      errlen, cfg);
    if (rc == 0)
        rc = cpar__router(c, &c->esock, cfg->engine_url, c->engine_ep, sizeof(c->engine_ep), err,
                          errlen, cfg);
    if (rc != 0)
        goto error;
    /* Our end of the event pipe has no high-water mark, so the I/O thread never blocks
     * on it however many engines disconnect at once. */
    c->mon = cpar_sock_monitor_open(c->zctx, c->esock, ZMQ_EVENT_DISCONNECTED, "controller", c);
    if (c->mon == NULL) {
        snprintf(err, errlen, "cannot monitor the engine socket: %s", zmq_strerror(zmq_errno()));
        rc = CPAR_EZMQ;
        goto error;
    }
    rc = cpar__ctlcli_monitor_open(c, err, errlen); /* controller_clients.c */
    if (rc != 0)
        goto error;
    cpar_log_write(&c->log,
                   "listening: clients %s, engines %s (heartbeat %d ms, timeout %d ms; replay "
                   "window %llu ms, %zu tags; largest frame %s%lld; %s)",
                   c->client_ep, c->engine_ep, c->hb_period_ms, c->hb_timeout_ms,
                   (unsigned long long)(c->replay.window_ns / 1000000u), c->replay.cap,
                   cfg->max_message > 0 ? "" : "unlimited", (long long)cfg->max_message,
                   c->zap.sock ? "CURVE with a key allow-list" : "no CURVE");
    *out = c;
    return CPAR_OK;
error:
    cpar_controller_free(c);
    return rc;
}

const char *
cpar_controller_client_endpoint(const cpar_controller *c)
{
    return c && c->magic == CPAR__CTL_MAGIC ? c->client_ep : NULL;
}

const char *
cpar_controller_engine_endpoint(const cpar_controller *c)
{
    return c && c->magic == CPAR__CTL_MAGIC ? c->engine_ep : NULL;
}

void
cpar_controller_stop(cpar_controller *c)
{
    if (c != NULL)
        atomic_store(&c->stop, 1);
}

static void
cpar__on_signal(int sig)
{
    cpar_controller *c = cpar__signal_target;
    (void)sig;
    if (c != NULL)
        cpar_controller_stop(c);
}

void
cpar_controller_install_signal_stop(cpar_controller *c)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cpar__on_signal;
    sigemptyset(&sa.sa_mask);
    cpar__signal_target = c;
    if (cpar__signals_installed)
        return;
    if (sigaction(SIGINT, &sa, &cpar__old_int) == 0 &&
        sigaction(SIGTERM, &sa, &cpar__old_term) == 0)
        cpar__signals_installed = 1;
}

void
cpar_controller_free(cpar_controller *c)
{
    int linger;
    if (c == NULL || c->magic != CPAR__CTL_MAGIC)
        return;
    if (cpar__signal_target == c) {
        cpar__signal_target = NULL;
        if (cpar__signals_installed) {
            sigaction(SIGINT, &cpar__old_int, NULL);
            sigaction(SIGTERM, &cpar__old_term, NULL);
            cpar__signals_installed = 0;
        }
    }
    linger = c->graceful ? CPAR__LINGER_MS : 0;
    cpar_sock_monitor_close(c->esock, c->mon); /* the monitor stops before its PAIR closes */
    cpar__ctlcli_monitor_close(c);             /* the same for the client socket's monitor */
    if (c->esock) {
        zmq_setsockopt(c->esock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(c->esock);
    }
    if (c->csock) {
        zmq_setsockopt(c->csock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(c->csock);
    }
    cpar_zap_close(&c->zap);
    cpar_taskdb_close(c->db); /* applies what is queued; its PAIRs close before the context */
    c->db = NULL;
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    cpar__ctlcoal_free(c);
    cpar__ctltask_free(c);
    cpar_taskdb_recovery_free(c->recovery);
    free(c->expected);
    free(c->db_path);
    cpar_signer_free(c->signer);
    cpar_replay_free(&c->replay);
    free(c->gone_fds);
    cpar_route_free(&c->route);
    cpar_route_free(&c->pinned);
    cpar_registry_free(&c->reg);
    cpar_log_close(&c->log);
    c->magic = 0;
    free(c);
}
