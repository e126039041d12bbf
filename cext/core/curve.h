/* CurveZMQ for cpar's sockets: key pairs and the socket options of each side.
 *
 * A cluster with CURVE has one server key pair (the controller's: its secret stays in the
 * controller process, its public key goes into the connection file) and one client key
 * pair shared by the cluster's clients and engines (in the connection file, mode 0600,
 * like the HMAC key). Keys are 40-character Z85 strings. The controller's ROUTERs are
 * CURVE servers; clients' and engines' DEALERs are CURVE clients of the server key. A peer
 * with the wrong server key fails the handshake (libzmq reports
 * ZMQ_EVENT_HANDSHAKE_FAILED_*), so it never exchanges a message.
 *
 * Ownership and threads: functions take a socket the calling thread owns, before it binds
 * or connects. No Python, no GIL. */
#ifndef CPAR_CORE_CURVE_H
#define CPAR_CORE_CURVE_H

#define CPAR_CURVE_KEY_LEN 40 /* Z85 characters of a key */

/* Keys of one side (NUL-terminated Z85; an empty server key means CURVE is off). */
typedef struct cpar_curve {
    char server[CPAR_CURVE_KEY_LEN + 1]; /* the controller's public key */
    char pub[CPAR_CURVE_KEY_LEN + 1];    /* this peer's public key (clients, engines) */
    char sec[CPAR_CURVE_KEY_LEN + 1];    /* this peer's (or the server's) secret key */
} cpar_curve;

/* A new key pair. Returns 0, or CPAR_EZMQ when libzmq has no CURVE support. */
int cpar_curve_keypair(char pub[CPAR_CURVE_KEY_LEN + 1], char sec[CPAR_CURVE_KEY_LEN + 1]);
/* 1 when s is a 40-character Z85 string. */
int cpar_curve_key_valid(const char *s);
/* Makes sock a CURVE server with this secret key. Returns 0 or CPAR_EINVAL/CPAR_EZMQ. */
int cpar_curve_server(void *sock, const char *secret);
/* Makes sock a CURVE client of c->server with the key pair (c->pub, c->sec). */
int cpar_curve_client(void *sock, const cpar_curve *c);

#endif /* CPAR_CORE_CURVE_H */
