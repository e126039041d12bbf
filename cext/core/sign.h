/* HMAC-SHA256 signing and constant-time checking of messages, on OpenSSL's libcrypto.
 *
 * Ownership and threads: a cpar_signer is owned by exactly one thread (it holds a
 * reusable libcrypto MAC context); each thread that signs or checks makes its own with
 * cpar_signer_new. No Python, no GIL. */
#ifndef CPAR_CORE_SIGN_H
#define CPAR_CORE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define CPAR_SIGN_SIZE 32     /* bytes of an HMAC-SHA256 tag */
#define CPAR_SIGN_MAX_KEY 256 /* longest key accepted */

typedef struct cpar_signer cpar_signer;

/* Makes a signer for `key` (copied; 1..CPAR_SIGN_MAX_KEY bytes). Returns 0 and sets *out
 * (a new object the caller frees with cpar_signer_free), or CPAR_EINVAL / CPAR_ECRYPTO. */
int cpar_signer_new(const uint8_t *key, size_t keylen, cpar_signer **out);
void cpar_signer_free(cpar_signer *s);

/* Incremental signing: begin, feed any number of byte ranges, finish into out[32]. */
int cpar_signer_begin(cpar_signer *s);
int cpar_signer_update(cpar_signer *s, const void *data, size_t len);
int cpar_signer_finish(cpar_signer *s, uint8_t out[CPAR_SIGN_SIZE]);

/* Constant-time comparison of two tags: 1 when equal, 0 otherwise. */
int cpar_sign_equal(const uint8_t a[CPAR_SIGN_SIZE], const uint8_t b[CPAR_SIGN_SIZE]);

#endif /* CPAR_CORE_SIGN_H */
