/* The cpar wire format: header encoding, signing on send, checking on receive (wire.h). */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

uint64_t
cpar_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
cpar_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
cpar__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
cpar__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
cpar__put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
cpar__get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
cpar__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t
cpar__get64(const uint8_t *p)
{
    return (uint64_t)cpar__get32(p) | ((uint64_t)cpar__get32(p + 4) << 32);
}

int
cpar_wire_type_known(int type)
{
    switch (type) {
    case CPAR_MSG_REGISTER:
    case CPAR_MSG_REGISTER_REPLY:
    case CPAR_MSG_HEARTBEAT:
    case CPAR_MSG_CONNECT:
    case CPAR_MSG_CONNECT_REPLY:
    case CPAR_MSG_EXECUTE:
    case CPAR_MSG_APPLY:
    case CPAR_MSG_TASK:
    case CPAR_MSG_REPLY:
    case CPAR_MSG_STREAM:
    case CPAR_MSG_ERROR:
    case CPAR_MSG_INTERRUPT:
    case CPAR_MSG_SHUTDOWN:
    case CPAR_MSG_SHUTDOWN_REPLY:
    case CPAR_MSG_RELEASE:
    case CPAR_MSG_ABORT:
    case CPAR_MSG_QUERY:
    case CPAR_MSG_QUERY_REPLY:
    case CPAR_MSG_PROBE:
    case CPAR_MSG_DB_REQUEST:
    case CPAR_MSG_DB_REPLY:
    case CPAR_MSG_ENGINE_EVENT:
    case CPAR_MSG_RECLAIM:
    case CPAR_MSG_RECLAIM_REPLY:
        return 1;
    default:
        return 0;
    }
}

void
cpar_wire_header_encode(const cpar_header *h, uint8_t out[CPAR_WIRE_HEADER_SIZE])
{
    memset(out, 0, CPAR_WIRE_HEADER_SIZE);
    cpar__put32(out + 0, CPAR_WIRE_MAGIC);
    out[4] = CPAR_WIRE_VERSION;
    out[5] = h->type;
    cpar__put16(out + 6, h->flags);
    cpar__put32(out + 8, h->nframes);
    cpar__put32(out + 12, (uint32_t)h->target);
    cpar__put32(out + 16, (uint32_t)h->engine);
    cpar__put32(out + 20, (uint32_t)h->status);
    memcpy(out + 24, h->msg_id, CPAR_WIRE_ID_SIZE);
    memcpy(out + 40, h->parent, CPAR_WIRE_ID_SIZE);
    cpar__put64(out + 56, h->t0);
    cpar__put64(out + 64, h->t1);
    cpar__put64(out + 72, h->paylen);
}

int
cpar_wire_header_decode(const uint8_t *buf, size_t len, cpar_header *h)
{
    if (len != CPAR_WIRE_HEADER_SIZE || cpar__get32(buf) != CPAR_WIRE_MAGIC)
        return CPAR_EPROTO;
    if (buf[4] != CPAR_WIRE_VERSION)
        return CPAR_EVERSION;
    if (!cpar_wire_type_known(buf[5]))
        return CPAR_ETYPE;
    h->type = buf[5];
    h->flags = cpar__get16(buf + 6);
    h->nframes = cpar__get32(buf + 8);
    h->target = (int32_t)cpar__get32(buf + 12);
    h->engine = (int32_t)cpar__get32(buf + 16);
    h->status = (int32_t)cpar__get32(buf + 20);
    memcpy(h->msg_id, buf + 24, CPAR_WIRE_ID_SIZE);
    memcpy(h->parent, buf + 40, CPAR_WIRE_ID_SIZE);
    h->t0 = cpar__get64(buf + 56);
    h->t1 = cpar__get64(buf + 64);
    h->paylen = cpar__get64(buf + 72);
    if (h->nframes > CPAR_WIRE_MAX_FRAMES)
        return CPAR_EPROTO;
    return CPAR_OK;
}

void
cpar_msg_init(cpar_msg *m, int type)
{
    memset(m, 0, sizeof(*m));
    m->h.type = (uint8_t)type;
    m->h.target = CPAR_NO_ENGINE;
    m->h.engine = CPAR_NO_ENGINE;
}

void
cpar_msg_close(cpar_msg *m)
{
    for (size_t i = 0; i < m->nframes; i++)
        zmq_msg_close(&m->frames[i]);
    free(m->frames);
    m->frames = NULL;
    m->nframes = 0;
    m->cap = 0;
    m->has_raw = 0;
}

/* Makes room for one more frame; returns the slot (uninitialised) or NULL. */
static zmq_msg_t *
cpar__msg_slot(cpar_msg *m)
{
    if (m->nframes == m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 4;
        zmq_msg_t *nf;
        if (ncap > CPAR_WIRE_MAX_FRAMES)
            ncap = CPAR_WIRE_MAX_FRAMES;
        if (m->nframes >= ncap)
            return NULL;
        nf = realloc(m->frames, ncap * sizeof(zmq_msg_t));
        if (nf == NULL)
            return NULL;
        m->frames = nf;
        m->cap = ncap;
    }
    return &m->frames[m->nframes];
}

int
cpar_msg_add_copy(cpar_msg *m, const void *data, size_t len)
{
    zmq_msg_t *f = cpar__msg_slot(m);
    if (f == NULL)
        return CPAR_ENOMEM;
    if (zmq_msg_init_size(f, len) != 0)
        return CPAR_ENOMEM;
    if (len)
        memcpy(zmq_msg_data(f), data, len);
    m->nframes++;
    return CPAR_OK;
}

int
cpar_msg_add_move(cpar_msg *m, zmq_msg_t *src)
{
    zmq_msg_t *f = cpar__msg_slot(m);
    if (f == NULL)
        return CPAR_ENOMEM;
    zmq_msg_init(f);
    if (zmq_msg_move(f, src) != 0) {
        zmq_msg_close(f);
        return CPAR_EZMQ;
    }
    m->nframes++;
    return CPAR_OK;
}

int
cpar_msg_add_zerocopy(cpar_msg *m, void *data, size_t len, zmq_free_fn *ffn, void *hint)
{
    zmq_msg_t *f = cpar__msg_slot(m);
    if (f == NULL)
        return CPAR_ENOMEM;
    if (zmq_msg_init_data(f, data, len, ffn, hint) != 0)
        return CPAR_ENOMEM;
    m->nframes++;
    return CPAR_OK;
}

/* Tag over header bytes [0, SIGNED_SIZE) and every payload frame. */
static int
cpar__wire_tag(cpar_signer *s, const uint8_t *hdr, zmq_msg_t *frames, size_t n,
               uint8_t tag[CPAR_SIGN_SIZE])
{
    int rc = cpar_signer_begin(s);
    if (rc == 0)
        rc = cpar_signer_update(s, hdr, CPAR_WIRE_SIGNED_SIZE);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cpar_signer_update(s, zmq_msg_data(&frames[i]), zmq_msg_size(&frames[i]));
    if (rc == 0)
        rc = cpar_signer_finish(s, tag);
    return rc;
}

/* Sends the identity (if any), the header frame and the frames. keep > 0: the frames are
 * copied and stay the caller's. Otherwise they are consumed: sent frames belong to libzmq,
 * the rest are closed here; but with keep < 0 (and no identity) a message refused at its
 * first part returns CPAR_EAGAIN with every frame still the caller's. */
static int
cpar__wire_send_parts(void *sock, const void *ident, size_t identlen, const uint8_t *hdr,
                      zmq_msg_t *frames, size_t n, int keep, int zmq_flags)
{
    size_t sent = 0;
    int rc = CPAR_OK;
    int more = n > 0 ? ZMQ_SNDMORE : 0;

    /* libzmq queues a multipart message atomically once its first part is accepted, so
     * only the first part honours ZMQ_DONTWAIT. */
    if (identlen > 0 && zmq_send(sock, ident, identlen, ZMQ_SNDMORE | zmq_flags) < 0)
        goto error;
    if (zmq_send(sock, hdr, CPAR_WIRE_HEADER_SIZE, more | (identlen ? 0 : zmq_flags)) < 0) {
        if (identlen == 0 && keep < 0 && errno == EAGAIN)
            return CPAR_EAGAIN; /* refused whole: the caller keeps its frames */
        goto error;
    }
    for (sent = 0; sent < n; sent++) {
        zmq_msg_t tmp;
        zmq_msg_t *f = &frames[sent];
        if (keep > 0) {
            zmq_msg_init(&tmp);
            if (zmq_msg_copy(&tmp, f) != 0) {
                zmq_msg_close(&tmp);
                goto error;
            }
            f = &tmp;
        }
        if (zmq_msg_send(f, sock, sent + 1 < n ? ZMQ_SNDMORE : 0) < 0) {
            if (keep > 0)
                zmq_msg_close(&tmp);
            goto error;
        }
    }
    return CPAR_OK;
error:
    rc = (errno == EAGAIN) ? CPAR_EAGAIN : CPAR_EZMQ;
    if (keep <= 0)
        for (size_t j = sent; j < n; j++)
            zmq_msg_close(&frames[j]);
    return rc;
}

/* Sets m's frame count and payload length from its frames and its send time t0 (the
 * controller's replay window checks it; REPLY excepted), and encodes the header to hdr. */
static void
cpar__wire_header_fill(cpar_msg *m, uint8_t hdr[CPAR_WIRE_HEADER_SIZE])
{
    uint64_t paylen = 0;
    for (size_t i = 0; i < m->nframes; i++)
        paylen += zmq_msg_size(&m->frames[i]);
    m->h.nframes = (uint32_t)m->nframes;
    m->h.paylen = paylen;
    if (m->h.t0 == 0 && m->h.type != CPAR_MSG_REPLY)
        m->h.t0 = cpar_now_ns();
    cpar_wire_header_encode(&m->h, hdr);
}

int
cpar_wire_send(void *sock, cpar_signer *s, const void *ident, size_t identlen, cpar_msg *m,
               int zmq_flags)
{
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
    int rc;

    cpar__wire_header_fill(m, hdr);
    rc = cpar__wire_tag(s, hdr, m->frames, m->nframes, hdr + CPAR_WIRE_SIGNED_SIZE);
    if (rc == 0)
        rc = cpar__wire_send_parts(sock, ident, identlen, hdr, m->frames, m->nframes, 0, zmq_flags);
    else
        for (size_t i = 0; i < m->nframes; i++)
            zmq_msg_close(&m->frames[i]);
    /* Every frame is sent or closed: forget them without closing again. */
    m->nframes = 0;
    m->has_raw = 0;
    return rc;
}

int
cpar_wire_send_try(void *sock, cpar_signer *s, cpar_msg *m)
{
    uint8_t hdr[CPAR_WIRE_HEADER_SIZE];
    int rc;

    cpar__wire_header_fill(m, hdr);
    rc = cpar__wire_tag(s, hdr, m->frames, m->nframes, hdr + CPAR_WIRE_SIGNED_SIZE);
    if (rc != 0) {
        for (size_t i = 0; i < m->nframes; i++)
            zmq_msg_close(&m->frames[i]);
    } else {
        /* keep -1: frames sent are consumed, but a refused message is left whole */
        rc = cpar__wire_send_parts(sock, NULL, 0, hdr, m->frames, m->nframes, -1, ZMQ_DONTWAIT);
        if (rc == CPAR_EAGAIN)
            return rc;
    }
    m->nframes = 0;
    m->has_raw = 0;
    return rc;
}

int
cpar_wire_seal(cpar_signer *s, cpar_msg *m)
{
    cpar__wire_header_fill(m, m->raw);
    if (cpar__wire_tag(s, m->raw, m->frames, m->nframes, m->raw + CPAR_WIRE_SIGNED_SIZE) != 0)
        return CPAR_ECRYPTO;
    m->has_raw = 1;
    return CPAR_OK;
}

int
cpar_wire_forward(void *sock, const void *ident, size_t identlen, cpar_msg *m, int keep)
{
    int rc;
    if (!m->has_raw)
        return CPAR_EINVAL;
    rc = cpar__wire_send_parts(sock, ident, identlen, m->raw, m->frames, m->nframes, keep, 0);
    if (!keep)
        m->nframes = 0;
    return rc;
}

#if defined(__SANITIZE_ADDRESS__)
static void
cpar__wire_asan_free(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* ASan builds only: libzmq hands out a received frame inside its shared receive buffer, or
 * inside the zmq_msg_t itself when small, so a read past the frame's end meets other bytes,
 * never a redzone. Each part moves into an allocation of exactly its size, so that ASan
 * sees such reads in whatever decodes it next (controller, engine, client, tests). */
static void
cpar__wire_asan_exact(zmq_msg_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = zmq_msg_size(&parts[i]);
        void *copy = malloc(len ? len : 1);
        zmq_msg_t exact;
        if (copy == NULL)
            continue;
        memcpy(copy, zmq_msg_data(&parts[i]), len);
        if (zmq_msg_init_data(&exact, copy, len, cpar__wire_asan_free, NULL) != 0) {
            free(copy);
            continue;
        }
        zmq_msg_close(&parts[i]);
        zmq_msg_init(&parts[i]);
        zmq_msg_move(&parts[i], &exact);
        zmq_msg_close(&exact);
    }
}
#else
#define cpar__wire_asan_exact(parts, n) ((void)0)
#endif

int
cpar_wire_parse(cpar_signer *s, zmq_msg_t *parts, size_t nparts, cpar_msg *m)
{
    int rc;
    uint64_t paylen = 0;
    uint8_t tag[CPAR_SIGN_SIZE];
    const uint8_t *hdr;
    size_t i = 0;

    cpar_msg_init(m, 0);
    if (nparts == 0)
        return CPAR_EPROTO;
    cpar__wire_asan_exact(parts, nparts);
    hdr = zmq_msg_data(&parts[0]);
    rc = cpar_wire_header_decode(hdr, zmq_msg_size(&parts[0]), &m->h);
    if (rc != 0)
        goto error;
    if ((size_t)m->h.nframes != nparts - 1) {
        rc = CPAR_EPROTO;
        goto error;
    }
    for (i = 1; i < nparts; i++)
        paylen += zmq_msg_size(&parts[i]);
    if (paylen != m->h.paylen) {
        rc = CPAR_EPROTO;
        goto error;
    }
    rc = cpar__wire_tag(s, hdr, parts + 1, nparts - 1, tag);
    if (rc != 0)
        goto error;
    if (!cpar_sign_equal(tag, hdr + CPAR_WIRE_SIGNED_SIZE)) {
        rc = CPAR_ESIG;
        goto error;
    }
    memcpy(m->raw, hdr, CPAR_WIRE_HEADER_SIZE);
    m->has_raw = 1;
    for (i = 1; i < nparts; i++) {
        rc = cpar_msg_add_move(m, &parts[i]);
        if (rc != 0)
            goto error;
    }
    zmq_msg_close(&parts[0]);
    return CPAR_OK;
error:
    for (size_t j = 0; j < nparts; j++)
        zmq_msg_close(&parts[j]);
    cpar_msg_close(m);
    return rc;
}

int
cpar_wire_recv(void *sock, cpar_signer *s, int is_router, uint8_t *ident, size_t *identlen,
               cpar_msg *m, int zmq_flags)
{
    return cpar_wire_recv_fd(sock, s, is_router, ident, identlen, NULL, m, zmq_flags);
}

int
cpar_wire_recv_fd(void *sock, cpar_signer *s, int is_router, uint8_t *ident, size_t *identlen,
                  int *srcfd, cpar_msg *m, int zmq_flags)
{
    zmq_msg_t stack_parts[8];
    zmq_msg_t *parts = stack_parts;
    size_t n = 0, cap = 8;
    int more = 1, rc = CPAR_OK, first = 1, overflow = 0;

    cpar_msg_init(m, 0);
    if (identlen)
        *identlen = 0;
    if (srcfd)
        *srcfd = -1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, first ? zmq_flags : 0) < 0) {
            rc = (errno == EAGAIN && first) ? CPAR_EAGAIN : CPAR_EZMQ;
            zmq_msg_close(&part);
            goto error;
        }
        more = zmq_msg_more(&part);
        /* The ROUTER makes the identity frame itself; the fd is known on wire frames. */
        if (srcfd && n == 0 && !(first && is_router))
            *srcfd = zmq_msg_get(&part, ZMQ_SRCFD);
        if (first && is_router) {
            size_t len = zmq_msg_size(&part);
            if (len > CPAR_WIRE_MAX_IDENT)
                len = CPAR_WIRE_MAX_IDENT;
            if (ident)
                memcpy(ident, zmq_msg_data(&part), len);
            if (identlen)
                *identlen = len;
            zmq_msg_close(&part);
            first = 0;
            continue;
        }
        first = 0;
        if (overflow || n >= CPAR_WIRE_MAX_FRAMES + 1) {
            /* Too many parts: keep draining so the socket stays in step, then drop. */
            overflow = 1;
            zmq_msg_close(&part);
            continue;
        }
        if (n == cap) {
            zmq_msg_t *np = malloc(cap * 2 * sizeof(zmq_msg_t));
            if (np == NULL) {
                overflow = 1;
                zmq_msg_close(&part);
                continue;
            }
            memcpy(np, parts, n * sizeof(zmq_msg_t));
            if (parts != stack_parts)
                free(parts);
            parts = np;
            cap *= 2;
        }
        zmq_msg_init(&parts[n]);
        zmq_msg_move(&parts[n], &part);
        zmq_msg_close(&part);
        n++;
    }
    if (overflow) {
        rc = CPAR_EPROTO;
        goto error;
    }
    rc = cpar_wire_parse(s, parts, n, m);
    n = 0; /* parse took ownership */
    if (parts != stack_parts)
        free(parts);
    return rc;
error:
    /* Drain what is left of a half-read multipart so the next recv starts clean. */
    while (rc != CPAR_EAGAIN && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    for (size_t j = 0; j < n; j++)
        zmq_msg_close(&parts[j]);
    if (parts != stack_parts)
        free(parts);
    return rc;
}

int
cpar_wire_targets(const cpar_msg *m)
{
    size_t len;
    if (!(m->h.flags & CPAR_FLAG_TARGETED) || m->nframes < 1)
        return CPAR_EPROTO;
    len = zmq_msg_size((zmq_msg_t *)&m->frames[0]);
    if (len == 0 || len % 4 != 0 || len / 4 > CPAR_WIRE_MAX_TARGETS)
        return CPAR_EPROTO;
    return (int)(len / 4);
}

int32_t
cpar_wire_target_at(const cpar_msg *m, size_t i)
{
    const uint8_t *p = zmq_msg_data((zmq_msg_t *)&m->frames[0]);
    return (int32_t)cpar__get32(p + 4 * i);
}
