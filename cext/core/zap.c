/* The controller's ZAP handler: a CURVE public-key allow-list (zap.h). */
#include "zap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "curve.h"
#include "errors.h"

#define CPAR__ZAP_PARTS 8 /* request frames kept: version .. first credential */

int
cpar_zap_parse(cpar_zap *z, const char *allowed, char *err, size_t errlen)
{
    const char *p = allowed ? allowed : "";
    size_t cap = 0;
    int rc = CPAR_EINVAL;

    z->nkeys = 0;
    while (*p) {
        char tok[CPAR_CURVE_KEY_LEN + 1];
        size_t len = strcspn(p, ", \t\r\n");
        if (len == 0) {
            p++;
            continue;
        }
        if (len != CPAR_CURVE_KEY_LEN) {
            snprintf(err, errlen, "allowed CURVE key %zu is not 40 Z85 characters", z->nkeys + 1);
            goto error;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (z->nkeys == CPAR_ZAP_MAX_KEYS) {
            snprintf(err, errlen, "more than %d allowed CURVE keys", CPAR_ZAP_MAX_KEYS);
            goto error;
        }
        if (z->nkeys == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            void *nk = realloc(z->keys, ncap * sizeof(*z->keys));
            if (nk == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = CPAR_ENOMEM;
                goto error;
            }
            z->keys = nk;
            cap = ncap;
        }
        if (zmq_z85_decode(z->keys[z->nkeys], tok) == NULL) {
            snprintf(err, errlen, "allowed CURVE key %zu is not Z85", z->nkeys + 1);
            goto error;
        }
        z->nkeys++;
        p += len;
    }
    if (z->nkeys == 0) {
        snprintf(err, errlen, "CURVE needs at least one allowed client public key");
        goto error;
    }
    return CPAR_OK;
error:
    free(z->keys);
    z->keys = NULL;
    z->nkeys = 0;
    return rc;
}

int
cpar_zap_open(cpar_zap *z, void *zctx, const char *allowed, char *err, size_t errlen)
{
    int zero = 0, rc;

    memset(z, 0, sizeof(*z));
    rc = cpar_zap_parse(z, allowed, err, errlen);
    if (rc != 0)
        goto error;
    rc = CPAR_EZMQ;
    z->sock = zmq_socket(zctx, ZMQ_REP);
    if (z->sock == NULL || zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(z->sock, CPAR_ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind the ZAP handler %s: %s", CPAR_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
        goto error;
    }
    return CPAR_OK;
error:
    cpar_zap_close(z);
    return rc;
}

int
cpar_zap_allowed(const cpar_zap *z, const uint8_t key[32])
{
    int found = 0;
    for (size_t i = 0; i < z->nkeys; i++)
        found |= memcmp(z->keys[i], key, 32) == 0;
    return found;
}

static void
cpar__zap_log_refused(cpar_zap *z, cpar_log *log, const uint8_t *key, const char *addr)
{
    char z85[CPAR_CURVE_KEY_LEN + 1];
    for (size_t i = 0; i < z->nlogged; i++)
        if (memcmp(z->logged[i], key, 32) == 0)
            return;
    if (z->nlogged == CPAR_ZAP_LOGGED) {
        if (z->refused == CPAR_ZAP_LOGGED + 1)
            cpar_log_write(log, "CURVE: further refused keys are counted, not logged");
        return;
    }
    memcpy(z->logged[z->nlogged++], key, 32);
    if (zmq_z85_encode(z85, key, 32) == NULL)
        snprintf(z85, sizeof(z85), "?");
    cpar_log_write(log, "CURVE: refused a peer (address %s) with public key %s: not allowed", addr,
                   z85);
}

/* Sends the ZAP reply; the REP socket adds the envelope. */
static void
cpar__zap_reply(cpar_zap *z, zmq_msg_t *reqid, const char *status, const char *text)
{
    const char *parts[6] = {"1.0", NULL, status, text, "", ""};
    for (int i = 0; i < 6; i++) {
        int more = i < 5 ? ZMQ_SNDMORE : 0;
        if (i == 1)
            zmq_send(z->sock, reqid ? zmq_msg_data(reqid) : "", reqid ? zmq_msg_size(reqid) : 0,
                     more);
        else
            zmq_send(z->sock, parts[i], strlen(parts[i]), more);
    }
}

void
cpar_zap_serve(cpar_zap *z, cpar_log *log)
{
    if (z->sock == NULL)
        return;
    for (;;) {
        zmq_msg_t parts[CPAR__ZAP_PARTS];
        size_t n = 0;
        int more = 1, ok;
        char addr[64] = "?";

        while (more) {
            zmq_msg_t *slot = &parts[n < CPAR__ZAP_PARTS ? n : CPAR__ZAP_PARTS - 1];
            if (n >= CPAR__ZAP_PARTS)
                zmq_msg_close(slot);
            zmq_msg_init(slot);
            if (zmq_msg_recv(slot, z->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(slot);
                for (size_t i = 0; i < n && i < CPAR__ZAP_PARTS; i++)
                    zmq_msg_close(&parts[i]);
                return; /* nothing pending (or the context is ending) */
            }
            more = zmq_msg_more(slot);
            n++;
        }
        if (n > CPAR__ZAP_PARTS)
            n = CPAR__ZAP_PARTS;
        /* version, request id, domain, address, routing id, mechanism, credentials */
        ok = n >= 7 && zmq_msg_size(&parts[0]) == 3 &&
             memcmp(zmq_msg_data(&parts[0]), "1.0", 3) == 0;
        if (n >= 4) {
            size_t len = zmq_msg_size(&parts[3]) < sizeof(addr) - 1 ? zmq_msg_size(&parts[3])
                                                                    : sizeof(addr) - 1;
            memcpy(addr, zmq_msg_data(&parts[3]), len);
            addr[len] = '\0';
        }
        if (ok && zmq_msg_size(&parts[5]) == 5 &&
            memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 && zmq_msg_size(&parts[6]) == 32) {
            const uint8_t *key = zmq_msg_data(&parts[6]);
            if (cpar_zap_allowed(z, key)) {
                z->allowed++;
                cpar__zap_reply(z, &parts[1], "200", "OK");
            } else {
                z->refused++;
                cpar__zap_log_refused(z, log, key, addr);
                cpar__zap_reply(z, &parts[1], "400", "public key not allowed");
            }
        } else {
            /* Another mechanism (or a malformed request): only CURVE peers get in. The REP
             * socket needs an answer either way before it takes the next request. */
            z->refused++;
            cpar__zap_reply(z, n >= 2 ? &parts[1] : NULL, ok ? "400" : "500", "CURVE required");
        }
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
}

void
cpar_zap_close(cpar_zap *z)
{
    if (z->sock != NULL)
        zmq_close(z->sock);
    z->sock = NULL;
    free(z->keys);
    z->keys = NULL;
    z->nkeys = 0;
}
