/* Shared helpers of the C tests (helpers.h). */
#include "helpers.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "test.h"

cpar_signer *
th_signer_key(const char *key)
{
    cpar_signer *s = NULL;
    ASSERT_OK(cpar_signer_new((const uint8_t *)key, strlen(key), &s));
    return s;
}

cpar_signer *
th_signer(void)
{
    return th_signer_key(TH_KEY);
}

void
th_id(uint8_t out[CPAR_WIRE_ID_SIZE])
{
    static atomic_ullong counter; /* fake engines may run in threads of their own */
    uint64_t pid = (uint64_t)getpid() ^ 0x7465737400000000ULL;
    uint64_t n = (uint64_t)atomic_fetch_add(&counter, 1) + 1;
    memcpy(out, &pid, 8);
    memcpy(out + 8, &n, 8);
}

void
th_msg(cpar_msg *m, int type)
{
    cpar_msg_init(m, type);
    th_id(m->h.msg_id);
    m->h.t0 = cpar_now_ns();
}

void
th_targets(cpar_msg *m, const int32_t *ids, size_t n)
{
    uint8_t buf[4 * 64];
    ASSERT_LE(n, 64);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            buf[4 * i + (size_t)b] = (uint8_t)((uint32_t)ids[i] >> (8 * b));
    m->h.flags |= CPAR_FLAG_TARGETED;
    ASSERT_OK(cpar_msg_add_copy(m, buf, 4 * n));
}

void
th_add_str(cpar_msg *m, const char *s)
{
    ASSERT_OK(cpar_msg_add_copy(m, s, strlen(s)));
}

void
th_send(void *sock, cpar_signer *s, cpar_msg *m)
{
    ASSERT_OK(cpar_wire_send(sock, s, NULL, 0, m, 0));
    cpar_msg_close(m);
}

int
th_recv(void *sock, cpar_signer *s, cpar_msg *m, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&item, 1, timeout_ms);
    ASSERT(rc >= 0);
    if (rc == 0) {
        cpar_msg_init(m, 0);
        return CPAR_ETIMEOUT;
    }
    return cpar_wire_recv(sock, s, 0, NULL, NULL, m, 0);
}

void
th_expect(void *sock, cpar_signer *s, int type, cpar_msg *m)
{
    for (;;) {
        int rc = th_recv(sock, s, m, TH_WAIT_MS);
        if (rc != 0)
            CPAR_TEST_FAIL("waiting for a type %d message: %s", type, cpar_strerror(rc));
        if (m->h.type == type)
            return;
        if (m->h.type == CPAR_MSG_HEARTBEAT || m->h.type == CPAR_MSG_ENGINE_EVENT) {
            cpar_msg_close(m);
            continue;
        }
        CPAR_TEST_FAIL("expected a type %d message, got type %d (status %d)", type, m->h.type,
                       m->h.status);
    }
}

const char *
th_frame_str(const cpar_msg *m, size_t i, char *buf, size_t len)
{
    size_t n;
    ASSERT_LT(i, m->nframes);
    n = zmq_msg_size((zmq_msg_t *)&m->frames[i]);
    if (n >= len)
        n = len - 1;
    memcpy(buf, zmq_msg_data((zmq_msg_t *)&m->frames[i]), n);
    buf[n] = '\0';
    return buf;
}

void *
th_dealer(void *ctx, const char *url)
{
    int zero = 0;
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    ASSERT(s != NULL);
    ASSERT_OK(zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)));
    ASSERT_OK(zmq_connect(s, url));
    return s;
}
