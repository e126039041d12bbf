/* The fuzzers' shared driver (fuzzkit.h). Test code. */
#include "fuzzkit.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static int fk_passed, fk_failed;

long
fk_field(const char *text, const char *key, long dflt)
{
    const char *p = strstr(text, key);
    return p ? strtol(p + strlen(key), NULL, 10) : dflt;
}

uint64_t
fk_field_u64(const char *text, const char *key, uint64_t dflt)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : dflt;
}

uint64_t
fk_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint32_t
fk_below(uint64_t *state, uint32_t n)
{
    return n ? (uint32_t)(fk_rand(state) % n) : 0;
}

int
fk_chance(uint64_t *state, int percent)
{
    return (int)fk_below(state, 100) < percent;
}

uint64_t
fk_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void
fk_fork_case(const fk_fuzzer *fz, const void *k, const char *name)
{
    char line[256];
    int status = 0;
    pid_t pid;
    fz->line(k, line, sizeof(line));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(fz->timeout_s);
        exit(fz->run(k) == 0 ? 0 : 1);
    }
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok - %s (%s)\n", name, line);
        fk_passed++;
    } else {
        printf("not ok - %s: %s (%s %d)\n", name, line, WIFSIGNALED(status) ? "signal" : "exit",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        fk_failed++;
    }
}

static void
fk_file(const fk_fuzzer *fz, void *k, const char *path, const char *name)
{
    char text[512] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL || fread(text, 1, sizeof(text) - 1, f) == 0) {
        printf("not ok - %s (cannot read)\n", path);
        fk_failed++;
    } else {
        fz->parse(text, k);
        fk_fork_case(fz, k, name);
    }
    if (f)
        fclose(f);
}

static int
fk_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int
fk_main(const fk_fuzzer *fz, int argc, char **argv)
{
    const char *secs = getenv("CPAR_FUZZ_SECONDS");
    double budget = secs ? atof(secs) : 0;
    struct timespec t0, t;
    void *k = calloc(1, fz->case_size);

    ASSERT(k != NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, fk_by_name);
        if (n < 0) {
            fk_file(fz, k, argv[i], argv[i]);
            continue;
        }
        for (int j = 0; j < n; j++) {
            char path[4096];
            if (ents[j]->d_name[0] != '.') {
                snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
                fk_file(fz, k, path, ents[j]->d_name);
            }
            free(ents[j]);
        }
        free(ents);
    }
    /* then new seeds for the rest of the budget */
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= budget)
            break;
        memset(k, 0, fz->case_size);
        fz->random(((uint64_t)t.tv_nsec << 20) ^ (uint64_t)t.tv_sec ^ ((uint64_t)getpid() << 44),
                   k);
        fk_fork_case(fz, k, "random");
    }
    free(k);
    printf("%d passed, %d failed\n", fk_passed, fk_failed);
    return fk_failed ? 1 : 0;
}
