/* Tests of the HMAC-SHA256 signer (sign.h): RFC 4231's test cases, agreement with
 * libcrypto's one-shot HMAC for keys of every length around the block size and messages
 * fed in pieces, and reuse of one signer for many messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "errors.h"
#include "sign.h"
#include "test.h"

static void
unhex(const char *hex, uint8_t *out)
{
    for (size_t i = 0; hex[2 * i] != '\0'; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static int
sign_once(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len, uint8_t out[32])
{
    cpar_signer *s = NULL;
    int rc = cpar_signer_new(key, keylen, &s);
    if (rc != 0)
        return rc;
    if ((rc = cpar_signer_begin(s)) == 0 && (rc = cpar_signer_update(s, data, len)) == 0)
        rc = cpar_signer_finish(s, out);
    cpar_signer_free(s);
    return rc;
}

TEST_IMPL(rfc4231_vectors)
{
    static const struct {
        uint8_t keybyte; /* 0: the key is `key` */
        size_t keylen;
        const char *key;
        uint8_t databyte; /* 0: the data is `data` */
        size_t datalen;
        const char *data;
        const char *mac;
    } cases[] = {
        {0x0b, 20, NULL, 0, 0, "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {0, 4, "Jefe", 0, 0, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {0xaa, 20, NULL, 0xdd, 50, NULL,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {0xaa, 131, NULL, 0, 0, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {0xaa, 131, NULL, 0, 0,
         "This is a test using a larger than block-size key and a larger than block-size "
         "data. The key needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint8_t key[256], data[256], want[32], got[32];
        size_t datalen;
        if (cases[c].key != NULL)
            memcpy(key, cases[c].key, cases[c].keylen);
        else
            memset(key, cases[c].keybyte, cases[c].keylen);
        if (cases[c].data != NULL) {
            datalen = strlen(cases[c].data);
            memcpy(data, cases[c].data, datalen);
        } else {
            datalen = cases[c].datalen;
            memset(data, cases[c].databyte, datalen);
        }
        unhex(cases[c].mac, want);
        ASSERT_OK(sign_once(key, cases[c].keylen, data, datalen, got));
        ASSERT_MEM_EQ(got, want, 32);
    }
    /* Case 4: the key 01 02 ... 19. */
    {
        uint8_t key[25], data[50], want[32], got[32];
        for (int i = 0; i < 25; i++)
            key[i] = (uint8_t)(i + 1);
        memset(data, 0xcd, sizeof(data));
        unhex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", want);
        ASSERT_OK(sign_once(key, sizeof(key), data, sizeof(data), got));
        ASSERT_MEM_EQ(got, want, 32);
    }
    return 0;
}

TEST_IMPL(agrees_with_libcrypto_in_pieces)
{
    uint8_t key[CPAR_SIGN_MAX_KEY], data[1000];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)rand_r(&seed);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)rand_r(&seed);
    /* Every key length (around the 64-byte block above all), messages of many lengths fed
     * in random pieces, all through one signer per key. */
    for (size_t keylen = 1; keylen <= CPAR_SIGN_MAX_KEY; keylen++) {
        cpar_signer *s;
        ASSERT_OK(cpar_signer_new(key, keylen, &s));
        for (int m = 0; m < 6; m++) {
            size_t len = (size_t)rand_r(&seed) % sizeof(data), at = 0;
            uint8_t want[32], got[32];
            unsigned int wantlen = 0;
            ASSERT(HMAC(EVP_sha256(), key, (int)keylen, data, len, want, &wantlen) != NULL);
            ASSERT_EQ(wantlen, 32);
            if (m == 3) { /* a message begun and dropped leaves nothing behind */
                ASSERT_OK(cpar_signer_begin(s));
                ASSERT_OK(cpar_signer_update(s, data, 17));
            }
            ASSERT_OK(cpar_signer_begin(s));
            while (at < len) {
                size_t piece = 1 + (size_t)rand_r(&seed) % 130;
                if (piece > len - at)
                    piece = len - at;
                ASSERT_OK(cpar_signer_update(s, data + at, piece));
                at += piece;
            }
            ASSERT_OK(cpar_signer_update(s, data, 0));
            ASSERT_OK(cpar_signer_finish(s, got));
            ASSERT_MEM_EQ(got, want, 32);
            ASSERT(cpar_sign_equal(got, want));
            got[31] ^= 1;
            ASSERT(!cpar_sign_equal(got, want));
        }
        cpar_signer_free(s);
    }
    return 0;
}

TEST_IMPL(bad_keys)
{
    cpar_signer *s = (cpar_signer *)1;
    uint8_t key[CPAR_SIGN_MAX_KEY + 1] = {0};
    ASSERT_EQ(cpar_signer_new(key, 0, &s), CPAR_EINVAL);
    ASSERT(s == NULL);
    ASSERT_EQ(cpar_signer_new(NULL, 4, &s), CPAR_EINVAL);
    ASSERT_EQ(cpar_signer_new(key, sizeof(key), &s), CPAR_EINVAL);
    cpar_signer_free(NULL);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(rfc4231_vectors),
    TEST_ENTRY(agrees_with_libcrypto_in_pieces),
    TEST_ENTRY(bad_keys),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
