/* The client connection's I/O thread and its outbox/inbox queues (clientio.h). */
#include "clientio.h"
#include "clientio_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "pagepool.h"
#include "shm.h"
#include "sock.h"

/* How often the I/O thread trims the page pool while it keeps pages. */
#define CPAR__TRIM_PERIOD_NS 1000000000ull
#define CPAR__SOCKET_MAX (4ull << 30) /* largest request through the sockets (4 GiB) */
#define CPAR__CLOSE_LINGER_MS 1000    /* close(): how long unsent messages may wait */

/* struct cpar_clientio is in clientio_int.h (shared with clientshm.c). */

static atomic_int_fast64_t cpar__items_alive;

cpar_clientio_item *
cpar_clientio_item_new(int type)
{
    cpar_clientio_item *it = malloc(sizeof(*it));
    if (it == NULL)
        return NULL;
    it->next = NULL;
    cpar_msg_init(&it->m, type);
    atomic_fetch_add_explicit(&cpar__items_alive, 1, memory_order_relaxed);
    return it;
}

void
cpar_clientio_item_free(cpar_clientio_item *it)
{
    if (it == NULL)
        return;
    cpar_msg_close(&it->m);
    free(it);
    atomic_fetch_sub_explicit(&cpar__items_alive, 1, memory_order_relaxed);
}

void
cpar_clientio_list_free(cpar_clientio_item *head)
{
    while (head != NULL) {
        cpar_clientio_item *next = head->next;
        cpar_clientio_item_free(head);
        head = next;
    }
}

int64_t
cpar_clientio_items_alive(void)
{
    return atomic_load_explicit(&cpar__items_alive, memory_order_relaxed);
}

static void
cpar__wake(cpar_clientio *io)
{
    uint64_t one = 1;
    /* The counter saturating is impossible in practice; a failed write still leaves the
     * fd readable, which is all the I/O thread needs. */
    ssize_t r = write(io->wakefd, &one, sizeof(one));
    (void)r;
}

/* A local ERROR about request req with code and a formatted text. */
__attribute__((format(printf, 3, 4))) static cpar_clientio_item *
cpar__local_error_text(const cpar_msg *req, int code, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    cpar_clientio_item *it = cpar_clientio_item_new(CPAR_MSG_ERROR);
    int len;
    if (it == NULL)
        return NULL;
    memcpy(it->m.h.parent, req->h.msg_id, CPAR_WIRE_ID_SIZE);
    it->m.h.status = code;
    va_start(ap, fmt);
    len = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof(text))
        len = (int)sizeof(text) - 1;
    if (cpar_msg_add_copy(&it->m, text, (size_t)len) != 0) {
        cpar_clientio_item_free(it);
        return NULL;
    }
    it->m.h.nframes = 1;
    it->m.h.paylen = (uint64_t)len;
    return it;
}

/* An ERROR message made locally for a request that could not be sent, so that whoever
 * waits for its answer learns of the failure. NULL when out of memory. */
static cpar_clientio_item *
cpar__local_error(const cpar_msg *req, int code, int sys_errno)
{
    return cpar__local_error_text(req, code,
                                  "could not send the request to the controller: %s (%s)",
                                  cpar_strerror(code), zmq_strerror(sys_errno));
}

/* Bytes of m's payload frames. */
static uint64_t
cpar__wire_bytes(const cpar_msg *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->nframes; i++)
        n += zmq_msg_size((zmq_msg_t *)&m->frames[i]);
    return n;
}

/* Appends the list [head, tail] to the inbox and wakes readers. */
void
cpar__clientio_inbox_append(cpar_clientio *io, cpar_clientio_item *head, cpar_clientio_item *tail)
{
    if (head == NULL)
        return;
    pthread_mutex_lock(&io->lock);
    if (io->in_tail != NULL)
        io->in_tail->next = head;
    else
        io->in_head = head;
    io->in_tail = tail;
    pthread_cond_broadcast(&io->cond);
    pthread_mutex_unlock(&io->lock);
}

/* Appends e (if any) to the list [*head, *tail]: local errors go to the inbox after a
 * flush, in order. */
static void
cpar__errs_append(cpar_clientio_item **head, cpar_clientio_item **tail, cpar_clientio_item *e)
{
    if (e == NULL)
        return;
    if (*tail != NULL)
        (*tail)->next = e;
    else
        *head = e;
    *tail = e;
}

/* Sends what is pending, in order, as long as the socket takes it. Messages that fail
 * are turned into local ERROR messages in the inbox. */
static void
cpar__flush(cpar_clientio *io, cpar_clientio_item **phead, cpar_clientio_item **ptail)
{
    cpar_clientio_item *errs = NULL, *errs_tail = NULL;

    while (*phead != NULL) {
        cpar_clientio_item *it = *phead, *e = NULL;
        cpar__clientio_shm_out pin;
        /* A direct request may go by shared memory: preparing it changes it, so it is
         * sent only once the socket says it will take a message. Anything else is tried
         * as it is (cpar_wire_send_try leaves a refused message whole), which spares a
         * ZMQ_EVENTS query (system calls) per message. */
        int plain =
            !io->shm || (it->m.h.type != CPAR_MSG_EXECUTE && it->m.h.type != CPAR_MSG_APPLY);
        int rc;

        if (plain && cpar__wire_bytes(&it->m) <= io->socket_max) {
            rc = cpar_wire_send_try(io->sock, io->signer, &it->m);
            if (rc == CPAR_EAGAIN)
                break; /* refused whole: it stays first */
            if (rc != 0)
                e = cpar__local_error(&it->m, rc, errno);
        } else {
            if (!plain) {
                int events = 0;
                size_t optlen = sizeof(events);
                if (zmq_getsockopt(io->sock, ZMQ_EVENTS, &events, &optlen) != 0)
                    events = ZMQ_POLLOUT; /* let the send report the error */
                if (!(events & ZMQ_POLLOUT))
                    break;
            }
            cpar__clientio_shm_prepare(io, &it->m, &pin);
            if (cpar__wire_bytes(&it->m) > io->socket_max) {
                /* What stays in the message goes through the sockets: past this, the
                 * controller and engine spend longer signing and checking it than their
                 * heartbeat timeout allows, so refuse it clearly instead. */
                e = cpar__local_error_text(
                    &it->m, CPAR_EINVAL,
                    "request of %llu bytes not sent: over the %llu bytes a message may carry "
                    "through the sockets (CPAR_SOCKET_MAX; shared memory carries more, "
                    "between processes on one host)",
                    (unsigned long long)cpar__wire_bytes(&it->m),
                    (unsigned long long)io->socket_max);
                cpar__clientio_shm_pin(io, &pin, 0);
                rc = CPAR_EINVAL;
            } else {
                rc = cpar_wire_send(io->sock, io->signer, NULL, 0, &it->m, ZMQ_DONTWAIT);
                cpar__clientio_shm_pin(io, &pin, rc == 0);
                if (rc != 0)
                    e = cpar__local_error(&it->m, rc, errno);
            }
        }
        *phead = it->next;
        if (*phead == NULL)
            *ptail = NULL;
        it->next = NULL;
        if (rc == 0) {
            atomic_fetch_add_explicit(&io->sent, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&io->send_failed, 1, memory_order_relaxed);
            cpar__errs_append(&errs, &errs_tail, e);
        }
        cpar_clientio_item_free(it);
    }
    cpar__clientio_inbox_append(io, errs, errs_tail);
}

/* Queues a locally made ERROR (parent zeros, engine -1, unsigned) with `status` and
 * `text` in the inbox. Out of memory: nothing is queued. */
static void
cpar__local_notice(cpar_clientio *io, int status, const char *text, size_t len)
{
    cpar_clientio_item *it = cpar_clientio_item_new(CPAR_MSG_ERROR);
    if (it == NULL)
        return;
    it->m.h.status = status;
    if (cpar_msg_add_copy(&it->m, text, len) != 0) {
        cpar_clientio_item_free(it);
        return;
    }
    it->m.h.nframes = 1;
    it->m.h.paylen = len;
    cpar__clientio_inbox_append(io, it, it);
}

/* Reads one monitor event; on a lost connection queues a local ERROR message (parent
 * zeros, status CPAR_ECLOSED) so that readers learn of it, and on a connection back
 * after a drop one with status 0 ("reconnected"). */
static int
cpar__monitor_event(cpar_clientio *io)
{
    static const char text[] = "lost the connection to the controller";
    static const char back[] = "reconnected";
    uint16_t event;
    uint32_t value;

    if (!cpar_sock_monitor_read(io->mon, &event, &value))
        return 0;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
        event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        atomic_fetch_add_explicit(&io->handshake_failed, 1, memory_order_relaxed);
    } else if (event == ZMQ_EVENT_CONNECTED) {
        atomic_store(&io->connected, 1);
        /* After a drop: tell readers the link is back (docs/recovery.md, "Clients"), so
         * that they can reclaim what they wait for from the controller now there. */
        if (atomic_load_explicit(&io->disconnects, memory_order_relaxed) > 0)
            cpar__local_notice(io, 0, back, sizeof(back) - 1);
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        atomic_store(&io->connected, 0);
        atomic_fetch_add_explicit(&io->disconnects, 1, memory_order_relaxed);
        cpar__local_notice(io, CPAR_ECLOSED, text, sizeof(text) - 1);
        /* Nothing will answer the requests in flight any more. */
        cpar__clientio_shm_unpin_all(io);
    }
    return 1;
}

/* The thread waits with poll(2) on the sockets' ZMQ_FDs and the wake-up eventfd rather
 * than zmq_poll, which asks each socket for ZMQ_EVENTS (two system calls) before and after
 * its own poll (the rule for blocking on a ZMQ_FD: sock.h). A poster that
 * sent directly while the thread waited asks ZMQ_EVENTS itself and, when a message is
 * there, sets recheck and wakes the thread. */
static void *
cpar__clientio_main(void *arg)
{
    cpar_clientio *io = arg;
    int rc = CPAR_OK;
    uint64_t next_trim = 0; /* when the page pool is trimmed next, while it keeps pages */
    struct pollfd pfd[3] = {
        {.fd = cpar_sock_fd(io->sock), .events = POLLIN},
        {.fd = io->wakefd, .events = POLLIN},
        {.fd = cpar_sock_fd(io->mon), .events = POLLIN},
    };
    /* Read on the first turn: a notice may have come before the thread started. */
    int sock_ready = 1, mon_ready = io->mon != NULL;

    if (pfd[0].fd < 0)
        rc = CPAR_EZMQ;
    pthread_mutex_lock(&io->turn);
    while (rc == CPAR_OK) {
        int timeout = -1, events = 0, n;
        size_t optlen = sizeof(events);
        /* While received pages are kept for reuse, give back those unused for a while
         * once a second (waking up for it); otherwise sleep until something happens. */
        if (cpar_pagepool_kept() > 0) {
            uint64_t now = cpar_mono_ns();
            if (now >= next_trim) {
                cpar_pagepool_trim();
                next_trim = now + CPAR__TRIM_PERIOD_NS;
            }
            timeout = (int)((next_trim - now) / 1000000u) + 1;
        }
        /* Requests that wait for room: the socket's room comes as a notice too. */
        if (!sock_ready && io->pend_head != NULL &&
            zmq_getsockopt(io->sock, ZMQ_EVENTS, &events, &optlen) == 0 &&
            (events & (ZMQ_POLLIN | ZMQ_POLLOUT)))
            sock_ready = 1;
        pthread_mutex_unlock(&io->turn);
        n = poll(pfd, pfd[2].fd >= 0 ? 3 : 2, sock_ready || mon_ready ? 0 : timeout);
        pthread_mutex_lock(&io->turn);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = CPAR_EZMQ;
            break;
        }
        if (io->recheck) {
            io->recheck = 0;
            sock_ready = 1;
        }
        if (pfd[0].revents & (POLLIN | POLLERR))
            sock_ready = 1;
        if (pfd[2].fd >= 0 && (pfd[2].revents & (POLLIN | POLLERR)))
            mon_ready = 1;
        if (pfd[1].revents & POLLIN) {
            uint64_t count;
            int closing;
            ssize_t r = read(io->wakefd, &count, sizeof(count));
            (void)r; /* EAGAIN: another wake-up was already consumed; nothing lost */
            pthread_mutex_lock(&io->lock);
            if (io->out_head != NULL) {
                if (io->pend_tail != NULL)
                    io->pend_tail->next = io->out_head;
                else
                    io->pend_head = io->out_head;
                io->pend_tail = io->out_tail;
                io->out_head = io->out_tail = NULL;
            }
            closing = io->closing;
            pthread_mutex_unlock(&io->lock);
            if (closing) {
                /* What was posted before close() still goes out (the socket lingers
                 * briefly for it): closing right after a send must not drop it. */
                if (io->pend_head != NULL)
                    cpar__flush(io, &io->pend_head, &io->pend_tail);
                break;
            }
        }
        if (io->pend_head != NULL) {
            cpar__flush(io, &io->pend_head, &io->pend_tail);
            sock_ready = 1; /* the sends may have taken a message's notice */
        }
        if (sock_ready) {
            int empty;
            rc = cpar__clientio_drain(io, &empty);
            if (rc != CPAR_OK)
                break;
            sock_ready = !empty;
        }
        if (mon_ready) {
            while (cpar__monitor_event(io))
                ;
            mon_ready = 0;
        }
    }
    cpar_clientio_list_free(io->pend_head);
    io->pend_head = io->pend_tail = NULL;
    pthread_mutex_lock(&io->lock);
    if (rc != CPAR_OK && !io->closing)
        io->fatal = rc;
    pthread_cond_broadcast(&io->cond);
    pthread_mutex_unlock(&io->lock);
    pthread_mutex_unlock(&io->turn);
    return NULL;
}

int
cpar_clientio_new(const char *url, const uint8_t *key, size_t keylen, const cpar_curve *curve,
                  cpar_clientio **out, char *err, size_t errlen)
{
    return cpar_clientio_open(url, key, keylen, curve, 0, out, err, errlen);
}

int
cpar_clientio_open(const char *url, const uint8_t *key, size_t keylen, const cpar_curve *curve,
                   unsigned flags, cpar_clientio **out, char *err, size_t errlen)
{
    cpar_clientio *io;
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    io = calloc(1, sizeof(*io));
    if (io == NULL) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    io->wakefd = -1;
    cpar_shm_pins_init(&io->pins);
    cpar_idmap_init(&io->offered);
    io->socket_max = CPAR__SOCKET_MAX;
    if (getenv("CPAR_SOCKET_MAX") != NULL) {
        unsigned long long v = strtoull(getenv("CPAR_SOCKET_MAX"), NULL, 10);
        if (v > 0)
            io->socket_max = v;
    }
    io->shm = !(flags & CPAR_CLIENTIO_NO_SHM) && cpar_shm_enabled() &&
              cpar_shm_token(io->token, sizeof(io->token)) == 0;
    cpar_ids_init(&io->ids, (uint64_t)(uintptr_t)io, 0x80);
    pthread_mutex_init(&io->turn, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&io->cond, &ca);
    pthread_condattr_destroy(&ca);

    rc = cpar_signer_new(key, keylen, &io->signer);
    if (rc != 0) {
        snprintf(err, errlen, "bad key (%zu bytes): %s", keylen, cpar_strerror(rc));
        goto error;
    }
    io->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->wakefd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        rc = CPAR_EIO;
        goto error;
    }
    io->ctx = zmq_ctx_new();
    if (io->ctx == NULL) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        rc = CPAR_EZMQ;
        goto error;
    }
    /* Unlimited queues: a request is never dropped or blocked by a high-water mark. */
    io->sock = cpar_sock_new(io->ctx, ZMQ_DEALER, 0, 0);
    if (io->sock == NULL) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        rc = CPAR_EZMQ;
        goto error;
    }
    if (curve != NULL && (rc = cpar_curve_client(io->sock, curve)) != 0) {
        snprintf(err, errlen, "cannot set the CURVE keys: %s",
                 rc == CPAR_EINVAL ? "a key is not 40 Z85 characters" : zmq_strerror(errno));
        goto error;
    }
    /* Connection state, for failing fast when the controller goes away. */
    io->mon = cpar_sock_monitor_open(
        io->ctx, io->sock,
        ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
        "clientio", io);
    if (io->mon == NULL) {
        snprintf(err, errlen, "socket monitor: %s", zmq_strerror(errno));
        rc = CPAR_EZMQ;
        goto error;
    }
    if (zmq_connect(io->sock, url) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", url, zmq_strerror(errno));
        rc = CPAR_EZMQ;
        goto error;
    }
    /* pthread_create is a full barrier: the socket migrates safely to the new thread. */
    rc = pthread_create(&io->thread, NULL, cpar__clientio_main, io);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        rc = CPAR_EIO;
        goto error;
    }
    io->thread_started = 1;
    *out = io;
    return CPAR_OK;
error:
    cpar_clientio_free(io);
    return rc;
}

/* Sends `it` on this thread when the I/O thread is between turns and nothing is queued
 * before it (order is kept). Returns 1 when it took `it` (sent, failed into the inbox, or
 * left waiting for room in pend), 0 when the caller must queue it, -1 when closed (`it` is
 * not taken). */
static int
cpar__post_direct(cpar_clientio *io, cpar_clientio_item *it)
{
    cpar_clientio_item *head = it, *tail = it;
    int open, queued, wake = 0;

    if (pthread_mutex_trylock(&io->turn) != 0)
        return 0; /* the I/O thread is in a turn: it takes the outbox next */
    pthread_mutex_lock(&io->lock);
    open = !io->closing && !io->fatal;
    queued = io->out_head != NULL || io->pend_head != NULL;
    pthread_mutex_unlock(&io->lock);
    if (!open || queued) {
        pthread_mutex_unlock(&io->turn);
        return open ? 0 : -1;
    }
    cpar__flush(io, &head, &tail);
    if (head != NULL) { /* no room: the I/O thread sends it when room comes */
        io->pend_head = head;
        io->pend_tail = tail;
        wake = 1;
    }
    if (cpar_sock_has_input(io->sock)) {
        io->recheck = 1;
        wake = 1;
    }
    pthread_mutex_unlock(&io->turn);
    if (wake)
        cpar__wake(io);
    return 1;
}

int
cpar_clientio_post(cpar_clientio *io, cpar_clientio_item *it)
{
    int was_empty, r;

    it->next = NULL;
    r = cpar__post_direct(io, it);
    if (r != 0) {
        if (r < 0)
            cpar_clientio_item_free(it);
        return r > 0 ? CPAR_OK : CPAR_ECLOSED;
    }
    pthread_mutex_lock(&io->lock);
    if (io->closing || io->fatal) {
        pthread_mutex_unlock(&io->lock);
        cpar_clientio_item_free(it);
        return CPAR_ECLOSED;
    }
    was_empty = io->out_head == NULL;
    if (io->out_tail != NULL)
        io->out_tail->next = it;
    else
        io->out_head = it;
    io->out_tail = it;
    pthread_mutex_unlock(&io->lock);
    /* A non-empty outbox means a wake-up is already pending: the I/O thread takes the
     * whole outbox after reading the eventfd, so this item goes with that batch. */
    if (was_empty)
        cpar__wake(io);
    return CPAR_OK;
}

int
cpar_clientio_take(cpar_clientio *io, int timeout_ms, size_t max, cpar_clientio_item **out,
                   size_t *n)
{
    struct timespec deadline;
    cpar_clientio_item *head = NULL, *tail = NULL;
    size_t count = 0;
    int rc = CPAR_OK;

    *out = NULL;
    *n = 0;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&io->lock);
    while (io->in_head == NULL && !io->closing && !io->fatal && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&io->cond, &io->lock);
        } else if (pthread_cond_timedwait(&io->cond, &io->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    while (io->in_head != NULL && count < max) {
        cpar_clientio_item *it = io->in_head;
        io->in_head = it->next;
        if (io->in_head == NULL)
            io->in_tail = NULL;
        it->next = NULL;
        if (tail != NULL)
            tail->next = it;
        else
            head = it;
        tail = it;
        count++;
    }
    if (count == 0) {
        if (io->closing)
            rc = CPAR_ECLOSED;
        else if (io->fatal)
            rc = io->fatal;
    }
    pthread_mutex_unlock(&io->lock);
    *out = head;
    *n = count;
    return rc;
}

void
cpar_clientio_close(cpar_clientio *io)
{
    cpar_clientio_item *in, *outq;

    pthread_mutex_lock(&io->lock);
    io->closing = 1;
    if (io->close_started) {
        pthread_mutex_unlock(&io->lock);
        return;
    }
    io->close_started = 1;
    pthread_cond_broadcast(&io->cond);
    pthread_mutex_unlock(&io->lock);

    if (io->thread_started) {
        cpar__wake(io);
        pthread_join(io->thread, NULL);
        io->thread_started = 0;
    }
    /* The thread is gone: this thread owns the socket now (once a poster sending directly
     * is done with it; later ones see `closing`). */
    pthread_mutex_lock(&io->turn);
    pthread_mutex_unlock(&io->turn);
    if (io->sock != NULL) {
        /* Connected: up to CPAR__CLOSE_LINGER_MS for the last sends to leave. */
        int linger = atomic_load(&io->connected) ? CPAR__CLOSE_LINGER_MS : 0;
        cpar_sock_monitor_close(io->sock, io->mon); /* stops before its PAIR closes */
        io->mon = NULL;
        zmq_setsockopt(io->sock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(io->sock);
        io->sock = NULL;
    }
    cpar_sock_monitor_close(NULL, io->mon);
    io->mon = NULL;
    if (io->ctx != NULL) {
        zmq_ctx_term(io->ctx);
        io->ctx = NULL;
    }
    pthread_mutex_lock(&io->lock);
    in = io->in_head;
    outq = io->out_head;
    io->in_head = io->in_tail = NULL;
    io->out_head = io->out_tail = NULL;
    io->closed = 1;
    pthread_cond_broadcast(&io->cond);
    pthread_mutex_unlock(&io->lock);
    cpar_clientio_list_free(in);
    cpar_clientio_list_free(outq);
    cpar__clientio_shm_unpin_all(io);
}

int
cpar_clientio_closed(cpar_clientio *io)
{
    int closing;
    pthread_mutex_lock(&io->lock);
    closing = io->closing || io->fatal;
    pthread_mutex_unlock(&io->lock);
    return closing;
}

void
cpar_clientio_free(cpar_clientio *io)
{
    if (io == NULL)
        return;
    cpar_clientio_close(io);
    if (io->wakefd >= 0)
        close(io->wakefd);
    cpar_signer_free(io->signer);
    cpar_shm_pins_free(&io->pins);
    free(io->peers);
    cpar_idmap_free(&io->offered);
    pthread_cond_destroy(&io->cond);
    pthread_mutex_destroy(&io->lock);
    pthread_mutex_destroy(&io->turn);
    free(io);
}

void
cpar_clientio_get_stats(cpar_clientio *io, cpar_clientio_stats *st)
{
    st->sent = atomic_load_explicit(&io->sent, memory_order_relaxed);
    st->received = atomic_load_explicit(&io->received, memory_order_relaxed);
    st->bad_signature = atomic_load_explicit(&io->bad_signature, memory_order_relaxed);
    st->malformed = atomic_load_explicit(&io->malformed, memory_order_relaxed);
    st->send_failed = atomic_load_explicit(&io->send_failed, memory_order_relaxed);
    st->disconnects = atomic_load_explicit(&io->disconnects, memory_order_relaxed);
    st->handshake_failed = atomic_load_explicit(&io->handshake_failed, memory_order_relaxed);
    st->connected = atomic_load(&io->connected);
    st->shm = io->shm;
    st->shm_sent = atomic_load_explicit(&io->shm_sent, memory_order_relaxed);
    st->shm_received = atomic_load_explicit(&io->shm_received, memory_order_relaxed);
    st->shm_failed = atomic_load_explicit(&io->shm_failed, memory_order_relaxed);
    st->shm_denied = atomic_load_explicit(&io->shm_denied, memory_order_relaxed);
    st->shm_fallback = atomic_load_explicit(&io->shm_fallback, memory_order_relaxed);
    st->shm_probing = atomic_load(&io->shm_probing);
}
