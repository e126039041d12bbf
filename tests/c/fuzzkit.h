/* The driver the fuzzers share (fuzz_controller.c, fuzz_engine.c, fuzz_client.c): corpus
 * files and new random seeds, each case run in a forked child so that a crash fails that
 * case and names it. Test code; single-threaded (the driver's process forks the cases). */
#ifndef CPAR_TESTS_C_FUZZKIT_H
#define CPAR_TESTS_C_FUZZKIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fk_fuzzer {
    size_t case_size;   /* bytes of the fuzzer's case struct */
    unsigned timeout_s; /* a case that runs longer is killed (SIGALRM) and fails */
    /* Fills the case from a corpus line ("seed=N steps=N ...": any subset). */
    void (*parse)(const char *text, void *k);
    /* Fills a new random case from seed. */
    void (*random)(uint64_t seed, void *k);
    /* Runs the case (in the forked child); 0 when it passed. */
    int (*run)(const void *k);
    /* The case as a corpus line, printed with its result. */
    void (*line)(const void *k, char *out, size_t len);
} fk_fuzzer;

/* The number after `key` ("seed=") in a corpus line, or dflt when the key is missing. */
long fk_field(const char *text, const char *key, long dflt);
uint64_t fk_field_u64(const char *text, const char *key, uint64_t dflt);

/* The cases' PRNG (xorshift64*): the next number of the sequence *state (non-zero) holds;
 * one below n (0 when n is 0); 1 with a chance of `percent` in 100. */
uint64_t fk_rand(uint64_t *state);
uint32_t fk_below(uint64_t *state, uint32_t n);
int fk_chance(uint64_t *state, int percent);

/* splitmix64: spreads a seed over every bit. */
uint64_t fk_mix(uint64_t x);

/* Runs every corpus file named in argv[1..] (a directory: its files, by name, dot files
 * skipped), then new random seeds until CPAR_FUZZ_SECONDS (default 0) have passed in all.
 * Prints "ok - NAME (LINE)" or "not ok - NAME: LINE (signal|exit N)" per case, and
 * "N passed, M failed" last; returns main's exit status. */
int fk_main(const fk_fuzzer *fz, int argc, char **argv);

#endif /* CPAR_TESTS_C_FUZZKIT_H */
