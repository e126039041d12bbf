/* Engine choice for load-balanced tasks: the schemes of DESIGN §5 (leastload, lru,
 * weighted, twobin, plainrandom) and a high-water mark of outstanding tasks per engine.
 *
 * This is the policy only: it tracks each engine's outstanding count and last assignment,
 * and picks an engine for a task among those allowed (a view's targets, a `follow`
 * location) and not excluded (engines a retried task already ran on). Queues and
 * dependencies live in the controller.
 *
 * Ownership and threads: a cpar_sched belongs to the controller's loop thread. No Python,
 * no GIL. */
#ifndef CPAR_CORE_SCHEDULER_H
#define CPAR_CORE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

enum cpar_sched_scheme {
    CPAR_SCHED_LEASTLOAD = 0, /* fewest outstanding tasks; ties go to the least recently used */
    CPAR_SCHED_LRU,           /* the engine assigned a task longest ago */
    CPAR_SCHED_WEIGHTED,      /* two random picks weighted by spare capacity; the lighter */
    CPAR_SCHED_TWOBIN,        /* two uniform random picks; the less recently used */
    CPAR_SCHED_PLAINRANDOM,   /* uniform among the available */
};

typedef struct cpar_sched cpar_sched;

/* hwm value for an adaptive high-water mark: each engine may hold about
 * CPAR_SCHED_AUTO_BUDGET_NS of queued work, judged by the run time of its recent tasks
 * (1 + budget / average run time, between 1 and CPAR_SCHED_AUTO_MAX; 1 until a task of
 * it has finished). Many tiny tasks then stream without stalls. An engine that finished
 * nothing for longer than the budget while holding tasks gets no more until it does, so
 * a task much longer than its predecessors strands only what was sent before it began. */
#define CPAR_SCHED_HWM_AUTO (-1)
#define CPAR_SCHED_AUTO_BUDGET_NS 5000000u /* 5 ms */
#define CPAR_SCHED_AUTO_MAX 64

/* Optional limits on where one task may go. Arrays are borrowed for the call. */
typedef struct cpar_sched_filter {
    const int32_t *allowed; /* only these engines (NULL: any) */
    size_t nallowed;
    const int32_t *excluded; /* never these engines (NULL: none) */
    size_t nexcluded;
} cpar_sched_filter;

/* Parses "leastload", "lru", ... into *scheme. Returns 0 or CPAR_EINVAL. */
int cpar_sched_scheme_parse(const char *name, int *scheme);
const char *cpar_sched_scheme_name(int scheme);

/* A new scheduler (free with cpar_sched_free). hwm: the most outstanding tasks an engine
 * may hold, 0 for no limit, CPAR_SCHED_HWM_AUTO for the adaptive limit. seed: for the
 * random schemes (tests pass a fixed one). */
int cpar_sched_new(int scheme, int hwm, uint64_t seed, cpar_sched **out);
void cpar_sched_free(cpar_sched *s);

/* Engines come and go. add: CPAR_EINVAL if already present. remove: forgets its counts. */
int cpar_sched_engine_add(cpar_sched *s, int32_t engine);
int cpar_sched_engine_remove(cpar_sched *s, int32_t engine);
size_t cpar_sched_engine_count(const cpar_sched *s);

/* Picks an engine for one task, or returns CPAR_EAGAIN when every engine the filter
 * admits is at its high-water mark (the task waits), or CPAR_ENOENGINE when the filter
 * admits no registered engine at all (the task can never run as things stand). Does not
 * assign: call cpar_sched_assigned once the task is sent. */
int cpar_sched_pick(cpar_sched *s, const cpar_sched_filter *f, int32_t *engine);

/* Bookkeeping: a task was sent to / finished on an engine. CPAR_EINVAL for an unknown
 * engine (e.g. a reply racing its engine's removal), which callers may ignore. */
int cpar_sched_assigned(cpar_sched *s, int32_t engine);
int cpar_sched_finished(cpar_sched *s, int32_t engine);
/* A task ran run_ns on engine (from its REPLY): feeds the adaptive limit. CPAR_EINVAL for
 * an unknown engine. */
int cpar_sched_observe(cpar_sched *s, int32_t engine, uint64_t run_ns);
/* The engine's current limit of outstanding tasks (0: none), or -1 when unknown. */
int cpar_sched_limit(const cpar_sched *s, int32_t engine);

/* Outstanding tasks on an engine, or -1 when unknown. */
int cpar_sched_load(const cpar_sched *s, int32_t engine);

#endif /* CPAR_CORE_SCHEDULER_H */
