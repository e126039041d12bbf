/* ZMQ socket set-up and monitors (sock.h). Ownership and threads: the caller's sockets,
 * on the caller's thread. No Python, no GIL. */
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "errors.h"

void *
cpar_sock_new(void *zctx, int type, int linger, int64_t max_message)
{
    int zero = 0, one = 1, saved;
    void *sock = zmq_socket(zctx, type);
    if (sock == NULL)
        return NULL;
    if (zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0)
        goto error;
    if (type == ZMQ_ROUTER && zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) != 0)
        goto error;
    if (max_message > 0 &&
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_message, sizeof(max_message)) != 0)
        goto error;
    return sock;
error:
    saved = zmq_errno();
    zmq_close(sock);
    errno = saved;
    return NULL;
}

int
cpar_sock_bind(void *sock, const char *url, char *ep, size_t eplen, char *err, size_t errlen)
{
    size_t len = eplen;
    if (zmq_bind(sock, url) != 0) {
        snprintf(err, errlen, "cannot bind %s: %s", url, zmq_strerror(zmq_errno()));
        return CPAR_EZMQ;
    }
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len) != 0) {
        snprintf(err, errlen, "cannot read the endpoint of %s: %s", url, zmq_strerror(zmq_errno()));
        return CPAR_EZMQ;
    }
    ep[eplen - 1] = '\0';
    return CPAR_OK;
}

void *
cpar_sock_monitor_open(void *zctx, void *sock, int events, const char *name, const void *owner)
{
    char url[96];
    int saved;
    void *pair;
    snprintf(url, sizeof(url), "inproc://cpar-%s-monitor-%p", name, owner);
    if (zmq_socket_monitor(sock, url, events) != 0)
        return NULL;
    pair = cpar_sock_new(zctx, ZMQ_PAIR, 0, 0);
    if (pair != NULL && zmq_connect(pair, url) == 0)
        return pair;
    saved = zmq_errno();
    zmq_socket_monitor(sock, NULL, 0); /* stopped before its PAIR closes */
    if (pair != NULL)
        zmq_close(pair);
    errno = saved;
    return NULL;
}

void
cpar_sock_monitor_close(void *sock, void *pair)
{
    if (sock != NULL && pair != NULL)
        zmq_socket_monitor(sock, NULL, 0);
    if (pair != NULL)
        zmq_close(pair);
}

int
cpar_sock_monitor_read(void *pair, uint16_t *event, uint32_t *value)
{
    zmq_msg_t part;
    int more;

    *event = 0;
    *value = 0;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return 0;
    }
    if (zmq_msg_size(&part) >= 6) { /* uint16 event, native order, then uint32 value */
        memcpy(event, zmq_msg_data(&part), sizeof(*event));
        memcpy(value, (uint8_t *)zmq_msg_data(&part) + 2, sizeof(*value));
    }
    more = zmq_msg_more(&part);
    zmq_msg_close(&part);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&part);
        more = zmq_msg_recv(&part, pair, 0) < 0 ? 0 : zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    return 1;
}

int
cpar_sock_fd(void *sock)
{
    int fd = -1;
    size_t len = sizeof(fd);
    if (sock == NULL || zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return -1;
    return fd;
}

int
cpar_sock_has_input(void *sock)
{
    int ev = 0;
    size_t len = sizeof(ev);
    return sock != NULL && zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0 && (ev & ZMQ_POLLIN);
}

unsigned
cpar_sock_monitor_drain(void *pair)
{
    unsigned events = 0;
    uint16_t event;
    uint32_t value;
    while (cpar_sock_monitor_read(pair, &event, &value))
        events |= event;
    return events;
}
