/* Engine choice for load-balanced tasks (scheduler.h). */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "registry.h"

#define CPAR__SCHED_MAX_ID CPAR_ENGINE_ID_LIMIT /* engine ids are below this (registry.h) */

typedef struct cpar__sched_engine {
    int32_t id;
    int load;             /* tasks assigned and not finished */
    uint64_t last_used;   /* value of the assignment clock at its last assignment */
    uint32_t mark;        /* filter generation this engine was admitted in */
    uint32_t banned;      /* filter generation this engine was excluded in */
    int limit;            /* adaptive high-water mark (hwm == CPAR_SCHED_HWM_AUTO) */
    double avg_ns;        /* moving average of its tasks' run times, 0 before the first */
    uint64_t progress_ns; /* monotonic: its last finished task, or its first since idle */
} cpar__sched_engine;

struct cpar_sched {
    int scheme;
    int hwm;
    uint64_t rng;                /* xorshift64* state, never 0 */
    uint64_t clock;              /* counts assignments */
    uint32_t generation;         /* filter generation, bumped per pick */
    cpar__sched_engine *engines; /* dense array of registered engines */
    size_t n, cap;
    int32_t *slot_of; /* engine id -> index in engines, or -1 */
    size_t *cand;     /* scratch for candidates, cap entries */
};

static const char *const cpar__scheme_names[] = {"leastload", "lru", "weighted", "twobin",
                                                 "plainrandom"};

int
cpar_sched_scheme_parse(const char *name, int *scheme)
{
    for (int i = 0; i < (int)(sizeof(cpar__scheme_names) / sizeof(*cpar__scheme_names)); i++)
        if (name != NULL && strcmp(name, cpar__scheme_names[i]) == 0) {
            *scheme = i;
            return CPAR_OK;
        }
    return CPAR_EINVAL;
}

const char *
cpar_sched_scheme_name(int scheme)
{
    if (scheme < 0 || scheme > CPAR_SCHED_PLAINRANDOM)
        return "unknown";
    return cpar__scheme_names[scheme];
}

int
cpar_sched_new(int scheme, int hwm, uint64_t seed, cpar_sched **out)
{
    cpar_sched *s = NULL;

    *out = NULL;
    if (scheme < CPAR_SCHED_LEASTLOAD || scheme > CPAR_SCHED_PLAINRANDOM ||
        (hwm < 0 && hwm != CPAR_SCHED_HWM_AUTO))
        return CPAR_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto error;
    s->slot_of = malloc(CPAR__SCHED_MAX_ID * sizeof(int32_t));
    if (s->slot_of == NULL)
        goto error;
    memset(s->slot_of, 0xff, CPAR__SCHED_MAX_ID * sizeof(int32_t)); /* all -1 */
    s->scheme = scheme;
    s->hwm = hwm;
    s->rng = seed ? seed : 0x9e3779b97f4a7c15u;
    *out = s;
    return CPAR_OK;
error:
    cpar_sched_free(s);
    return CPAR_ENOMEM;
}

void
cpar_sched_free(cpar_sched *s)
{
    if (s == NULL)
        return;
    free(s->engines);
    free(s->cand);
    free(s->slot_of);
    free(s);
}

static uint64_t
cpar__sched_rand(cpar_sched *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545f4914f6cdd1du;
}

/* Uniform in [0, n). n > 0. */
static size_t
cpar__sched_below(cpar_sched *s, size_t n)
{
    return (size_t)(cpar__sched_rand(s) % n);
}

static cpar__sched_engine *
cpar__sched_find(const cpar_sched *s, int32_t engine)
{
    if (engine < 0 || engine >= CPAR__SCHED_MAX_ID || s->slot_of[engine] < 0)
        return NULL;
    return &s->engines[s->slot_of[engine]];
}

int
cpar_sched_engine_add(cpar_sched *s, int32_t engine)
{
    if (engine < 0 || engine >= CPAR__SCHED_MAX_ID || s->slot_of[engine] >= 0)
        return CPAR_EINVAL;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        cpar__sched_engine *ne = realloc(s->engines, ncap * sizeof(*ne));
        size_t *nc;
        if (ne == NULL)
            return CPAR_ENOMEM;
        s->engines = ne;
        nc = realloc(s->cand, ncap * sizeof(*nc));
        if (nc == NULL)
            return CPAR_ENOMEM;
        s->cand = nc;
        s->cap = ncap;
    }
    memset(&s->engines[s->n], 0, sizeof(s->engines[s->n]));
    s->engines[s->n].id = engine;
    s->engines[s->n].limit = 1;
    s->slot_of[engine] = (int32_t)s->n;
    s->n++;
    return CPAR_OK;
}

int
cpar_sched_engine_remove(cpar_sched *s, int32_t engine)
{
    cpar__sched_engine *e = cpar__sched_find(s, engine);
    size_t slot;
    if (e == NULL)
        return CPAR_EINVAL;
    /* Move the last engine into the hole. */
    slot = (size_t)(e - s->engines);
    s->slot_of[engine] = -1;
    s->n--;
    if (slot != s->n) {
        s->engines[slot] = s->engines[s->n];
        s->slot_of[s->engines[slot].id] = (int32_t)slot;
    }
    return CPAR_OK;
}

size_t
cpar_sched_engine_count(const cpar_sched *s)
{
    return s->n;
}

static uint64_t
cpar__sched_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 1 when e may take one more task. In the adaptive mode an engine that has finished
 * nothing for longer than the budget while it holds tasks is busy with a long one: it
 * gets no more until it finishes something (its average may still say "fast"). */
static int
cpar__sched_room(const cpar_sched *s, const cpar__sched_engine *e, uint64_t now)
{
    if (s->hwm == 0)
        return 1;
    if (s->hwm > 0)
        return e->load < s->hwm;
    if (e->load > 0 && now > e->progress_ns + CPAR_SCHED_AUTO_BUDGET_NS)
        return 0;
    return e->load < e->limit;
}

/* Fills s->cand with the engines the filter admits and that are under the high-water
 * mark; *admitted counts the filter's admissions regardless of load. */
static size_t
cpar__sched_candidates(cpar_sched *s, const cpar_sched_filter *f, size_t *admitted)
{
    uint32_t gen = ++s->generation;
    uint64_t now = s->hwm < 0 ? cpar__sched_now() : 0;
    size_t n = 0;

    *admitted = 0;
    if (f != NULL && f->excluded != NULL)
        for (size_t i = 0; i < f->nexcluded; i++) {
            cpar__sched_engine *e = cpar__sched_find(s, f->excluded[i]);
            if (e != NULL)
                e->banned = gen;
        }
    if (f != NULL && f->allowed != NULL) {
        for (size_t i = 0; i < f->nallowed; i++) {
            cpar__sched_engine *e = cpar__sched_find(s, f->allowed[i]);
            if (e == NULL || e->banned == gen || e->mark == gen)
                continue; /* unknown, excluded, or listed twice */
            e->mark = gen;
            (*admitted)++;
            if (cpar__sched_room(s, e, now))
                s->cand[n++] = (size_t)(e - s->engines);
        }
        return n;
    }
    for (size_t i = 0; i < s->n; i++) {
        cpar__sched_engine *e = &s->engines[i];
        if (e->banned == gen)
            continue;
        (*admitted)++;
        if (cpar__sched_room(s, e, now))
            s->cand[n++] = i;
    }
    return n;
}

/* The less recently used of two slots. */
static size_t
cpar__sched_lru_of(const cpar_sched *s, size_t a, size_t b)
{
    return s->engines[b].last_used < s->engines[a].last_used ? b : a;
}

/* A candidate chosen with probability proportional to its spare capacity. */
static size_t
cpar__sched_weighted_one(cpar_sched *s, size_t n)
{
    double total = 0.0, r;
    for (size_t i = 0; i < n; i++)
        total += 1.0 / (1.0 + s->engines[s->cand[i]].load);
    r = (double)(cpar__sched_rand(s) >> 11) / 9007199254740992.0 * total;
    for (size_t i = 0; i < n; i++) {
        r -= 1.0 / (1.0 + s->engines[s->cand[i]].load);
        if (r <= 0.0)
            return s->cand[i];
    }
    return s->cand[n - 1];
}

int
cpar_sched_pick(cpar_sched *s, const cpar_sched_filter *f, int32_t *engine)
{
    size_t admitted = 0, best = 0, a, b;
    size_t n = cpar__sched_candidates(s, f, &admitted);

    if (admitted == 0)
        return CPAR_ENOENGINE;
    if (n == 0)
        return CPAR_EAGAIN;
    switch (s->scheme) {
    case CPAR_SCHED_LEASTLOAD:
        best = s->cand[0];
        for (size_t i = 1; i < n; i++) {
            const cpar__sched_engine *e = &s->engines[s->cand[i]], *o = &s->engines[best];
            if (e->load < o->load || (e->load == o->load && e->last_used < o->last_used))
                best = s->cand[i];
        }
        break;
    case CPAR_SCHED_LRU:
        best = s->cand[0];
        for (size_t i = 1; i < n; i++)
            best = cpar__sched_lru_of(s, best, s->cand[i]);
        break;
    case CPAR_SCHED_TWOBIN:
        a = s->cand[cpar__sched_below(s, n)];
        b = s->cand[cpar__sched_below(s, n)];
        best = cpar__sched_lru_of(s, a, b);
        break;
    case CPAR_SCHED_WEIGHTED:
        a = cpar__sched_weighted_one(s, n);
        b = cpar__sched_weighted_one(s, n);
        best = s->engines[b].load < s->engines[a].load ? b : a;
        break;
    default: /* CPAR_SCHED_PLAINRANDOM */
        best = s->cand[cpar__sched_below(s, n)];
        break;
    }
    *engine = s->engines[best].id;
    return CPAR_OK;
}

int
cpar_sched_assigned(cpar_sched *s, int32_t engine)
{
    cpar__sched_engine *e = cpar__sched_find(s, engine);
    if (e == NULL)
        return CPAR_EINVAL;
    if (e->load == 0 && s->hwm < 0)
        e->progress_ns = cpar__sched_now();
    e->load++;
    e->last_used = ++s->clock;
    return CPAR_OK;
}

int
cpar_sched_finished(cpar_sched *s, int32_t engine)
{
    cpar__sched_engine *e = cpar__sched_find(s, engine);
    if (e == NULL || e->load == 0)
        return CPAR_EINVAL;
    e->load--;
    if (s->hwm < 0)
        e->progress_ns = cpar__sched_now();
    return CPAR_OK;
}

int
cpar_sched_observe(cpar_sched *s, int32_t engine, uint64_t run_ns)
{
    cpar__sched_engine *e = cpar__sched_find(s, engine);
    double limit;
    if (e == NULL)
        return CPAR_EINVAL;
    /* An average over roughly the last 8 tasks; a task of 1 µs or less counts as 1 µs. */
    if (run_ns < 1000)
        run_ns = 1000;
    e->avg_ns = e->avg_ns == 0.0 ? (double)run_ns : e->avg_ns + ((double)run_ns - e->avg_ns) / 8;
    limit = 1.0 + (double)CPAR_SCHED_AUTO_BUDGET_NS / e->avg_ns;
    e->limit = limit >= CPAR_SCHED_AUTO_MAX ? CPAR_SCHED_AUTO_MAX : (int)limit;
    return CPAR_OK;
}

int
cpar_sched_limit(const cpar_sched *s, int32_t engine)
{
    const cpar__sched_engine *e = cpar__sched_find(s, engine);
    if (e == NULL)
        return -1;
    return s->hwm >= 0 ? s->hwm : e->limit;
}

int
cpar_sched_load(const cpar_sched *s, int32_t engine)
{
    const cpar__sched_engine *e = cpar__sched_find(s, engine);
    return e == NULL ? -1 : e->load;
}
