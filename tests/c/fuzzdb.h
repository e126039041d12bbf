/* DB_REQUEST bodies for the controller fuzzer (tests/c/fuzz_controller.c): the task
 * database's ops (docs/taskdb.md) with random fields, ids the fuzzer knows or random ones,
 * part ids, SQL-looking strings, bad operators and keys, and JSON that is not an object.
 * Test code; no threads of its own. */
#ifndef CPAR_TESTS_C_FUZZDB_H
#define CPAR_TESTS_C_FUZZDB_H

#include <stddef.h>
#include <stdint.h>

/* Where the ids and engines come from (the fuzzer's own pickers) and its random state. */
typedef struct fzdb_src {
    uint64_t *rng;
    void (*pick_id)(void *arg, uint8_t out[16]);
    int32_t (*pick_engine)(void *arg);
    void *arg;
} fzdb_src;

/* Writes a body into out (cap >= 256, NUL-terminated) and returns 0; or returns 1 when
 * the caller should send random bytes instead. */
int fzdb_body(const fzdb_src *src, char *out, size_t cap);

#endif /* CPAR_TESTS_C_FUZZDB_H */
