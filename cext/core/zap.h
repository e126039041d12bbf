/* The controller's ZAP handler (ZeroMQ RFC 27): with CURVE on, libzmq asks it about every
 * peer's public key during the handshake, and only keys on the allow-list get in.
 *
 * Without a handler libzmq accepts any CURVE client key (a peer that knows only the
 * server's public key would complete the handshake), so the controller binds this REP
 * socket at inproc://zeromq.zap.01 in its own ZMQ context before it binds its ROUTERs,
 * and answers it from its loop. A refused key is logged once (the first
 * CPAR_ZAP_LOGGED distinct keys; later ones are only counted).
 *
 * Ownership and threads: a cpar_zap and its socket belong to the controller's loop thread.
 * No Python, no GIL. */
#ifndef CPAR_CORE_ZAP_H
#define CPAR_CORE_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CPAR_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define CPAR_ZAP_MAX_KEYS 4096 /* allow-list entries at most */
#define CPAR_ZAP_LOGGED 64     /* refused keys logged individually */

typedef struct cpar_zap {
    void *sock;                          /* REP at CPAR_ZAP_ENDPOINT, owned */
    uint8_t (*keys)[32];                 /* allowed public keys (binary), owned */
    size_t nkeys;                        /* entries in keys */
    uint8_t logged[CPAR_ZAP_LOGGED][32]; /* refused keys already logged */
    size_t nlogged;                      /* entries in logged */
    uint64_t allowed;                    /* handshakes allowed */
    uint64_t refused;                    /* handshakes refused (any reason) */
} cpar_zap;

/* Parses `allowed` (Z85 public keys separated by commas or white space) into z->keys.
 * Returns 0, or CPAR_EINVAL with a message in err (a malformed key, none, too many). */
int cpar_zap_parse(cpar_zap *z, const char *allowed, char *err, size_t errlen);
/* Parses `allowed` and binds the handler in zctx. Returns 0, or CPAR_EINVAL / CPAR_EZMQ /
 * CPAR_ENOMEM with a message in err; z is then closed. */
int cpar_zap_open(cpar_zap *z, void *zctx, const char *allowed, char *err, size_t errlen);
/* 1 when the binary public key is on the allow-list. */
int cpar_zap_allowed(const cpar_zap *z, const uint8_t key[32]);
/* Answers every pending request without blocking. */
void cpar_zap_serve(cpar_zap *z, cpar_log *log);
/* Closes the socket and frees the list (safe on a zeroed or closed z). */
void cpar_zap_close(cpar_zap *z);

#endif /* CPAR_CORE_ZAP_H */
