/* Shared helpers of the C tests: the test key, message building, receiving with a deadline.
 * Test code only; every helper aborts the test (ASSERT) on an unexpected failure. */
#ifndef CPAR_TESTS_C_HELPERS_H
#define CPAR_TESTS_C_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "sign.h"
#include "wire.h"

/* The fixed key of the tests and the fuzz corpus (64 hex characters, used as bytes). */
#define TH_KEY "5f3c9a1e0b7d4c2a8e6f1d3b5a7c9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c0d"
#define TH_WAIT_MS 10000 /* how long a test waits for an expected message */

cpar_signer *th_signer(void);
cpar_signer *th_signer_key(const char *key);
/* A process-unique msg id. */
void th_id(uint8_t out[CPAR_WIRE_ID_SIZE]);
/* Starts a message of `type` with a fresh msg id. */
void th_msg(cpar_msg *m, int type);
/* Appends the target list frame (sets CPAR_FLAG_TARGETED). */
void th_targets(cpar_msg *m, const int32_t *ids, size_t n);
void th_add_str(cpar_msg *m, const char *s);
/* Signs and sends m (consumed) on a DEALER/PAIR; asserts success. */
void th_send(void *sock, cpar_signer *s, cpar_msg *m);
/* Receives one message within timeout_ms: 0, CPAR_ETIMEOUT, or a wire error code. */
int th_recv(void *sock, cpar_signer *s, cpar_msg *m, int timeout_ms);
/* Receives until a message of `type` arrives (skipping HEARTBEAT and ENGINE_EVENT unless
 * asked for); asserts that it comes within TH_WAIT_MS. */
void th_expect(void *sock, cpar_signer *s, int type, cpar_msg *m);
/* Frame i of m as a NUL-terminated string in buf. */
const char *th_frame_str(const cpar_msg *m, size_t i, char *buf, size_t len);
/* A DEALER in ctx connected to url. */
void *th_dealer(void *ctx, const char *url);

#endif /* CPAR_TESTS_C_HELPERS_H */
