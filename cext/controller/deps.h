/* Task dependencies for load-balanced tasks: which tasks are known, how each ended and
 * where it ran, and which waiting tasks a completion releases (DESIGN §5: after, follow,
 * Dependency(all|any, success, failure)).
 *
 * Records: every task the controller has accepted is `pending` until it ends; then it is
 * `succeeded` or `failed`, with the engine it ran on. Ended records are kept up to a
 * bound (oldest forgotten first), so memory stays flat however many tasks pass. A waiting
 * task names ids; once every id it needs has ended (or, for `any`, one that satisfies it),
 * the task is released as met, or as impossible when the endings can no longer satisfy
 * it (e.g. `after` a failed task with success-only), or when an id is unknown (never
 * submitted, or forgotten).
 *
 * Ownership and threads: a cpar_deps belongs to the controller's loop thread. Waiting
 * tasks are identified by an opaque handle the caller owns. No Python, no GIL. */
#ifndef CPAR_CORE_DEPS_H
#define CPAR_CORE_DEPS_H

#include <stddef.h>
#include <stdint.h>

#define CPAR_DEPS_ID_SIZE 16

enum cpar_dep_state {
    CPAR_DEP_WAITING = 0,    /* still waiting on some pending task */
    CPAR_DEP_MET = 1,        /* may run now */
    CPAR_DEP_IMPOSSIBLE = 2, /* can never run as specified */
};

enum cpar_task_state {
    CPAR_TASK_UNKNOWN = 0,
    CPAR_TASK_PENDING = 1,
    CPAR_TASK_SUCCEEDED = 2,
    CPAR_TASK_FAILED = 3,
};

/* What a task waits for. ids: n * CPAR_DEPS_ID_SIZE bytes, borrowed for the call (the
 * waiter keeps its own copy). all: every id must end acceptably (else: any one). An ending
 * is acceptable when it succeeded and `success`, or failed and `failure`. */
typedef struct cpar_dep_spec {
    const uint8_t *ids;
    size_t n;
    int all;
    int success;
    int failure;
} cpar_dep_spec;

typedef struct cpar_deps cpar_deps;

/* Called for each waiting task a completion (or forgetting) settles: state is
 * CPAR_DEP_MET or CPAR_DEP_IMPOSSIBLE. The waiter is already removed when it runs. */
typedef void cpar_deps_release_fn(void *arg, void *handle, int state);

/* max_ended: ended records kept at most (>= 1). The table's hash is SipHash-2-4 with a
 * random key of its own (getrandom), so ids a client picks cannot be made to collide.
 * Returns 0 or CPAR_EINVAL/CPAR_ENOMEM/CPAR_EIO (no randomness). */
int cpar_deps_new(size_t max_ended, cpar_deps **out);
/* The same with a given key (tests). */
int cpar_deps_new_keyed(size_t max_ended, const uint64_t key[2], cpar_deps **out);
/* 16 random bytes from getrandom into key: 0 or CPAR_EIO. */
int cpar_deps_random_key(uint64_t key[2]);
/* SipHash-2-4 of a 16-byte id under key (also the controller's task table hash). */
uint64_t cpar_deps_hash_id(const uint64_t key[2], const uint8_t id[CPAR_DEPS_ID_SIZE]);
/* Introspection for tests: the table's hash of id, and the longest distance of a record
 * from its home slot (how long the worst lookup walks). */
uint64_t cpar_deps_hash(const cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE]);
size_t cpar_deps_max_probe(const cpar_deps *d);
void cpar_deps_free(cpar_deps *d);

/* A task was accepted: its record becomes pending. CPAR_EINVAL if the id is pending
 * already; an ended record of the same id is replaced (a resubmission). */
int cpar_deps_submitted(cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE]);

/* A pending task ended on `engine`. Waiters this settles are released through fn (which
 * may call back into cpar_deps). CPAR_EINVAL when the id is not pending. */
int cpar_deps_ended(cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE], int32_t engine,
                    int succeeded, cpar_deps_release_fn *fn, void *arg);

/* Evaluates spec now. MET or IMPOSSIBLE are answered in *state without registering;
 * WAITING registers `handle` to be released later through cpar_deps_ended's fn. */
int cpar_deps_wait(cpar_deps *d, void *handle, const cpar_dep_spec *spec, int *state);

/* Forgets a waiting task (timeout, abort). CPAR_EINVAL if it is not waiting. */
int cpar_deps_cancel(cpar_deps *d, void *handle);

/* A task's state and, once it ended, its engine (else -1). */
int cpar_deps_state(const cpar_deps *d, const uint8_t id[CPAR_DEPS_ID_SIZE], int32_t *engine);

/* Counts for bookkeeping and tests. */
size_t cpar_deps_pending_count(const cpar_deps *d);
size_t cpar_deps_ended_count(const cpar_deps *d);
size_t cpar_deps_waiting_count(const cpar_deps *d);

#endif /* CPAR_CORE_DEPS_H */
