/* CurveZMQ keys and socket options (curve.h). */
#include "curve.h"

#include <stdint.h>
#include <string.h>

#include <zmq.h>

#include "errors.h"

int
cpar_curve_keypair(char pub[CPAR_CURVE_KEY_LEN + 1], char sec[CPAR_CURVE_KEY_LEN + 1])
{
    if (!zmq_has("curve") || zmq_curve_keypair(pub, sec) != 0)
        return CPAR_EZMQ;
    return CPAR_OK;
}

int
cpar_curve_key_valid(const char *s)
{
    uint8_t raw[32];
    return s != NULL && strlen(s) == CPAR_CURVE_KEY_LEN && zmq_z85_decode(raw, s) != NULL;
}

int
cpar_curve_server(void *sock, const char *secret)
{
    int one = 1;
    if (!cpar_curve_key_valid(secret))
        return CPAR_EINVAL;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, CPAR_CURVE_KEY_LEN) != 0)
        return CPAR_EZMQ;
    return CPAR_OK;
}

int
cpar_curve_client(void *sock, const cpar_curve *c)
{
    if (!cpar_curve_key_valid(c->server) || !cpar_curve_key_valid(c->pub) ||
        !cpar_curve_key_valid(c->sec))
        return CPAR_EINVAL;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, CPAR_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pub, CPAR_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, CPAR_CURVE_KEY_LEN) != 0)
        return CPAR_EZMQ;
    return CPAR_OK;
}
