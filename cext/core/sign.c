/* HMAC-SHA256 signer over libcrypto's EVP_MAC interface (see sign.h). */
#include "sign.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "errors.h"

struct cpar_signer {
    EVP_MAC *mac;     /* the HMAC algorithm, fetched once */
    EVP_MAC_CTX *ctx; /* keyed context, re-initialised per message with the same key */
    uint8_t key[CPAR_SIGN_MAX_KEY];
    size_t keylen;
};

int
cpar_signer_new(const uint8_t *key, size_t keylen, cpar_signer **out)
{
    int rc = CPAR_ECRYPTO;
    cpar_signer *s = NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[2];

    *out = NULL;
    if (key == NULL || keylen == 0 || keylen > CPAR_SIGN_MAX_KEY)
        return CPAR_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CPAR_ENOMEM;
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (s->mac == NULL)
        goto error;
    s->ctx = EVP_MAC_CTX_new(s->mac);
    if (s->ctx == NULL)
        goto error;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(s->ctx, s->key, s->keylen, params))
        goto error;
    *out = s;
    return CPAR_OK;
error:
    cpar_signer_free(s);
    return rc;
}

void
cpar_signer_free(cpar_signer *s)
{
    if (s == NULL)
        return;
    EVP_MAC_CTX_free(s->ctx);
    EVP_MAC_free(s->mac);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    free(s);
}

int
cpar_signer_begin(cpar_signer *s)
{
    /* A NULL key re-uses the key and digest set at creation. */
    return EVP_MAC_init(s->ctx, NULL, 0, NULL) ? CPAR_OK : CPAR_ECRYPTO;
}

int
cpar_signer_update(cpar_signer *s, const void *data, size_t len)
{
    if (len == 0)
        return CPAR_OK;
    return EVP_MAC_update(s->ctx, data, len) ? CPAR_OK : CPAR_ECRYPTO;
}

int
cpar_signer_finish(cpar_signer *s, uint8_t out[CPAR_SIGN_SIZE])
{
    size_t outl = 0;
    if (!EVP_MAC_final(s->ctx, out, &outl, CPAR_SIGN_SIZE) || outl != CPAR_SIGN_SIZE)
        return CPAR_ECRYPTO;
    return CPAR_OK;
}

int
cpar_sign_equal(const uint8_t a[CPAR_SIGN_SIZE], const uint8_t b[CPAR_SIGN_SIZE])
{
    return CRYPTO_memcmp(a, b, CPAR_SIGN_SIZE) == 0;
}
