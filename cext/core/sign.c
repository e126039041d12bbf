/* HMAC-SHA256 signer (see sign.h): RFC 2104 over libcrypto's SHA-256 block functions.
 *
 * The keyed inner and outer hash states are computed once, at cpar_signer_new; a message
 * then costs copying the inner state, hashing its bytes, and one more block for the outer
 * hash. libcrypto's EVP_MAC interface did the same work but re-initialised the HMAC
 * through its provider layer per message (context duplication, allocation and cleansing
 * each time): a third of the controller's signing time for small messages. The block
 * functions are the ones EVP uses underneath (SHA extensions where the CPU has them). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: deprecated, not removed */
#include "sign.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "errors.h"

#define CPAR__SHA256_BLOCK 64

struct cpar_signer {
    SHA256_CTX inner; /* after hashing key ^ ipad: each message's inner hash starts here */
    SHA256_CTX outer; /* after hashing key ^ opad */
    SHA256_CTX cur;   /* the message being signed or checked */
};

int
cpar_signer_new(const uint8_t *key, size_t keylen, cpar_signer **out)
{
    uint8_t block[CPAR__SHA256_BLOCK], pad[CPAR__SHA256_BLOCK];
    cpar_signer *s = NULL;
    int rc = CPAR_ECRYPTO;

    *out = NULL;
    if (key == NULL || keylen == 0 || keylen > CPAR_SIGN_MAX_KEY)
        return CPAR_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CPAR_ENOMEM;
    /* A key longer than a block is replaced by its hash; shorter ones are zero-padded. */
    memset(block, 0, sizeof(block));
    if (keylen > CPAR__SHA256_BLOCK) {
        if (SHA256(key, keylen, block) == NULL)
            goto error;
    } else {
        memcpy(block, key, keylen);
    }
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x36;
    if (!SHA256_Init(&s->inner) || !SHA256_Update(&s->inner, pad, sizeof(pad)))
        goto error;
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x5c;
    if (!SHA256_Init(&s->outer) || !SHA256_Update(&s->outer, pad, sizeof(pad)))
        goto error;
    s->cur = s->inner;
    *out = s;
    s = NULL;
    rc = CPAR_OK;
error:
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    cpar_signer_free(s);
    return rc;
}

void
cpar_signer_free(cpar_signer *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

int
cpar_signer_begin(cpar_signer *s)
{
    s->cur = s->inner;
    return CPAR_OK;
}

int
cpar_signer_update(cpar_signer *s, const void *data, size_t len)
{
    if (len == 0)
        return CPAR_OK;
    return SHA256_Update(&s->cur, data, len) ? CPAR_OK : CPAR_ECRYPTO;
}

int
cpar_signer_finish(cpar_signer *s, uint8_t out[CPAR_SIGN_SIZE])
{
    uint8_t inner[SHA256_DIGEST_LENGTH];
    int rc = CPAR_ECRYPTO;

    if (!SHA256_Final(inner, &s->cur))
        goto error;
    s->cur = s->outer;
    if (!SHA256_Update(&s->cur, inner, sizeof(inner)) || !SHA256_Final(out, &s->cur))
        goto error;
    rc = CPAR_OK;
error:
    OPENSSL_cleanse(inner, sizeof(inner));
    s->cur = s->inner; /* nothing of this message's state stays behind */
    return rc;
}

int
cpar_sign_equal(const uint8_t a[CPAR_SIGN_SIZE], const uint8_t b[CPAR_SIGN_SIZE])
{
    return CRYPTO_memcmp(a, b, CPAR_SIGN_SIZE) == 0;
}
