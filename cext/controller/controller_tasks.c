/* The controller's load-balanced task life cycle (cpar__ctltask_*): the task table,
 * queues, dependencies, sending, task replies and engine deaths. The messages that make
 * tasks (TASK, ABORT, QUERY) are parsed in controller_taskmsg.c, the per-turn work is in
 * controller_taskloop.c; both call down into this file, which calls only outbound.c and
 * the tables (controller_int.h has the order; behaviour in docs/protocol.md,
 * "Load-balanced tasks").
 *
 * A task lives in one of three states: WAIT (on its `after`, then its `follow` ids, in
 * cpar_deps), READY (in a queue: `plain` for tasks any engine may run, `restricted` for
 * tasks with allowed or excluded engines) or SENT (forwarded to one engine, with a route
 * entry so its STREAMs and REPLY find the client). The received message is kept, signed
 * and unchanged, until the task ends, so a retry forwards it again. Ending a task (reply
 * forwarded, or an ERROR) records the outcome in cpar_deps, which may release waiting
 * tasks; those are settled through a list rather than recursively.
 *
 * Ownership and threads: everything here belongs to the controller's loop thread. Tasks
 * are malloc'd once on arrival and freed when they end (their arrays with them). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "controller_tasks_int.h"
#include "errors.h"
#include "vec.h"

/* ---- the id table ------------------------------------------------------------------- */

/* Keyed (SipHash, a random key per controller): task ids are chosen by clients. */
static uint64_t
cpar__task_hash(const cpar__tasks *t, const uint8_t *id)
{
    return cpar_deps_hash_id(t->key, id);
}

cpar__task *
cpar__task_find(const cpar__tasks *t, const uint8_t *id)
{
    if (t->count == 0)
        return NULL;
    return cpar_idtab_find_key(&t->ids, cpar__task_hash(t, id), id, CPAR_WIRE_ID_SIZE,
                               offsetof(cpar__task, id));
}

cpar__task *
cpar__task_at(const cpar__tasks *t, size_t i)
{
    return (cpar__task *)t->ids.slots[i].item;
}

int
cpar__task_insert(cpar__tasks *t, cpar__task *task)
{
    if (cpar_idtab_put(&t->ids, cpar__task_hash(t, task->id), (uintptr_t)task) != 0)
        return CPAR_ENOMEM;
    if (++t->count > t->peak)
        t->peak = t->count;
    return CPAR_OK;
}

/* Removes task from the id table. */
static void
cpar__task_erase(cpar__tasks *t, cpar__task *task)
{
    if (cpar_idtab_remove(&t->ids, cpar__task_hash(t, task->id), (uintptr_t)task))
        t->count--;
}

/* ---- lists -------------------------------------------------------------------------- */

void
cpar__ctltask_tl_push(cpar__tlist *l, cpar__task *task)
{
    task->list = l;
    task->next = NULL;
    task->prev = l->tail;
    if (l->tail)
        l->tail->next = task;
    else
        l->head = task;
    l->tail = task;
    l->n++;
}

void
cpar__ctltask_tl_unlink(cpar__task *task)
{
    cpar__tlist *l = task->list;
    if (l == NULL)
        return;
    if (task->prev)
        task->prev->next = task->next;
    else
        l->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        l->tail = task->prev;
    l->n--;
    task->list = NULL;
    task->prev = task->next = NULL;
}

/* ---- set-up ------------------------------------------------------------------------- */

int
cpar__ctltask_new(cpar_controller *c, const cpar_controller_config *cfg, char *err, size_t errlen)
{
    cpar__tasks *t = calloc(1, sizeof(*t));
    int scheme = CPAR_SCHED_LEASTLOAD, rc;
    size_t max_records = cfg->max_records > 0 ? (size_t)cfg->max_records : 100000;

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    cpar_idtab_init(&t->ids, 64);
    if (cfg->scheme != NULL && cfg->scheme[0] != '\0' &&
        cpar_sched_scheme_parse(cfg->scheme, &scheme) != 0) {
        snprintf(err, errlen,
                 "unknown scheduling scheme '%s' (use leastload, lru, weighted, twobin or "
                 "plainrandom)",
                 cfg->scheme);
        free(t);
        return CPAR_EINVAL;
    }
    if (cfg->hwm < 0 && cfg->hwm != CPAR_SCHED_HWM_AUTO) {
        snprintf(err, errlen, "the high-water mark must be >= 0 (0: no limit) or -1 (auto), not %d",
                 cfg->hwm);
        free(t);
        return CPAR_EINVAL;
    }
    rc = cpar_sched_new(scheme, cfg->hwm, cpar_now_ns() ^ (uint64_t)(uintptr_t)t, &t->sched);
    if (rc == 0)
        rc = cpar_deps_random_key(t->key);
    if (rc == 0)
        rc = cpar_deps_new(max_records, &t->deps);
    if (rc != 0) {
        snprintf(err, errlen, "cannot make the scheduler: %s", cpar_strerror(rc));
        cpar_sched_free(t->sched);
        free(t);
        return rc;
    }
    c->tasks = t;
    c->hwm = cfg->hwm;
    c->scheme = scheme;
    return CPAR_OK;
}

void
cpar__task_free(cpar__task *task)
{
    cpar_msg_close(&task->msg);
    free(task->ids);
    free(task->allowed);
    free(task->tried);
    free(task);
}

void
cpar__ctltask_free(cpar_controller *c)
{
    cpar__tasks *t = c->tasks;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ids.nslots; i++)
        if (cpar__task_at(t, i) != NULL)
            cpar__task_free(cpar__task_at(t, i));
    cpar_idtab_free(&t->ids);
    free(t->completed);
    cpar_sched_free(t->sched);
    cpar_deps_free(t->deps);
    free(t);
    c->tasks = NULL;
}

/* ---- ending a task ------------------------------------------------------------------ */

void
cpar__ctltask_release(void *arg, void *handle, int state)
{
    cpar__tasks *t = arg;
    cpar__task *task = handle;
    task->settle_state = state;
    task->settle_next = t->settle;
    task->settling = 1;
    t->settle = task;
}

/* Forgets task (from lists, table, timeouts) and frees it. */
static void
cpar__task_drop(cpar_controller *c, cpar__task *task)
{
    cpar__tasks *t = c->tasks;
    if (task->deadline_ms)
        t->ntimeouts--;
    if (task->settling) {
        /* Released, and ended before its turn on the settle list: off the list. */
        cpar__task **pp = &t->settle;
        while (*pp != NULL && *pp != task)
            pp = &(*pp)->settle_next;
        if (*pp == task)
            *pp = task->settle_next;
    } else if (task->state == CPAR__T_WAIT) {
        cpar_deps_cancel(t->deps, task);
    }
    cpar__ctltask_tl_unlink(task);
    cpar__task_erase(t, task);
    cpar__task_free(task);
}

/* Records how task ended (its REPLY was forwarded, or an ERROR sent), frees it and
 * releases what waited on it. */
static void
cpar__task_ended(cpar_controller *c, cpar__task *task, int32_t engine, int succeeded)
{
    cpar__tasks *t = c->tasks;
    uint8_t id[CPAR_WIRE_ID_SIZE];
    memcpy(id, task->id, sizeof(id));
    cpar__task_drop(c, task);
    cpar_deps_ended(t->deps, id, engine, succeeded, cpar__ctltask_release, t);
    t->dirty = 1;
}

void
cpar__ctltask_fail(cpar_controller *c, cpar__task *task, int32_t engine, int code, const char *fmt,
                   ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cpar_taskdb_error(c->db, task->id, engine, code, text, strlen(text));
    cpar__ctlout_error_about(c, (int32_t)task->client, task->id, engine, code, "%s", text);
    cpar__task_ended(c, task, engine, 0);
}

/* ---- queueing and sending ----------------------------------------------------------- */

static int
cpar__task_tried(const cpar__task *task, int32_t engine)
{
    for (size_t i = 0; i < task->ntried; i++)
        if (task->tried[i] == engine)
            return 1;
    return 0;
}

static int
cpar__task_add_tried(cpar__task *task, int32_t engine)
{
    int32_t *nt;
    if (cpar__task_tried(task, engine))
        return CPAR_OK;
    nt = cpar_vec_grow(task->tried, &task->captried, task->ntried + 1, sizeof(*nt), 4);
    if (nt == NULL)
        return CPAR_ENOMEM;
    task->tried = nt;
    task->tried[task->ntried++] = engine;
    return CPAR_OK;
}

static void
cpar__task_ready(cpar_controller *c, cpar__task *task)
{
    cpar__tasks *t = c->tasks;
    task->state = CPAR__T_READY;
    task->engine = CPAR_NO_ENGINE;
    cpar__ctltask_tl_push(task->allowed != NULL || task->ntried > 0 ? &t->restricted : &t->plain,
                          task);
    t->dirty = 1;
}

/* Forwards task to engine; an engine that turned out unreachable is marked. */
static void
cpar__task_send(cpar_controller *c, cpar__task *task, int32_t engine)
{
    cpar__tasks *t = c->tasks;
    int rc;

    rc = cpar_route_insert(&c->route, task->id, engine, task->client);
    if (rc != 0) {
        cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, rc,
                           rc == CPAR_EINVAL ? "this msg_id is already outstanding on engine %d"
                                             : "controller out of memory (engine %d)",
                           (int)engine);
        return;
    }
    cpar__ctltask_tl_unlink(task);
    if (task->deadline_ms) { /* the timeout bounds the wait to start: it started */
        t->ntimeouts--;
        task->deadline_ms = 0;
    }
    task->state = CPAR__T_SENT;
    task->engine = engine;
    cpar_sched_assigned(t->sched, engine);
    cpar_taskdb_dispatch(c->db, task->id, engine); /* where it runs, for a recovery */
    cpar__ctlout_forward_engine(c, engine, &task->msg, 1);
}

/* Why a READY task can run nowhere; ends it. */
static void
cpar__task_nowhere(cpar_controller *c, cpar__task *task)
{
    if (task->ntried > 0 && task->allowed == NULL)
        cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EIMPOSSIBLE,
                           "no engine left to run the task: the %zu live engine(s) that could "
                           "were already tried",
                           task->ntried);
    else
        cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EIMPOSSIBLE,
                           "no live engine can run the task: the engines it may run on (its "
                           "targets or the location it follows) are gone or already tried");
}

static void
cpar__filter(const cpar__task *task, cpar_sched_filter *f)
{
    f->allowed = task->allowed;
    f->nallowed = task->allowed ? task->nallowed : 0;
    f->excluded = task->tried;
    f->nexcluded = task->ntried;
}

/* Sends what can go. Plain tasks go in order until every engine is full; restricted ones
 * are each tried (their filters differ). */
void
cpar__ctltask_dispatch(cpar_controller *c)
{
    cpar__tasks *t = c->tasks;
    cpar__task *task, *next;

    t->dirty = 0;
    /* Restricted tasks are judged even with no engine at all: their allowed engines gone
     * (or all tried) end them; only plain tasks wait for engines to come. */
    for (task = t->restricted.head; task != NULL; task = next) {
        cpar_sched_filter f;
        int32_t engine;
        int rc;
        next = task->next;
        cpar__filter(task, &f);
        rc = cpar_sched_pick(t->sched, &f, &engine);
        if (rc == 0)
            cpar__task_send(c, task, engine);
        else if (rc == CPAR_ENOENGINE && !(task->parked && task->deadline_ms))
            cpar__task_nowhere(c, task);
        /* next may have been settled by the ending above: a failed task releases only
         * tasks in WAIT, never READY ones, so next is still valid. */
    }
    while (cpar_sched_engine_count(t->sched) > 0 && (task = t->plain.head) != NULL) {
        int32_t engine;
        if (cpar_sched_pick(t->sched, NULL, &engine) != 0)
            break;
        cpar__task_send(c, task, engine);
    }
    cpar__ctltask_settle(c);
    /* Engines found unreachable stay marked: the loop declares them gone
     * (cpar__ctleng_reap_unreachable) once this turn's tasks are sent. */
}

/* ---- dependencies ------------------------------------------------------------------- */

/* The engines the followed tasks leave task to (they all ended acceptably): with `all`
 * the one engine they all ran on, else any of theirs; intersected with its targets.
 * Returns 0, CPAR_EIMPOSSIBLE (text in why) or CPAR_ENOMEM. */
static int
cpar__follow_location(cpar_controller *c, cpar__task *task, char *why, size_t whylen)
{
    cpar__tasks *t = c->tasks;
    const uint8_t *ids = task->ids + (size_t)task->nafter * CPAR_WIRE_ID_SIZE;
    int32_t *loc = malloc(task->nfollow * sizeof(*loc));
    size_t nloc = 0, kept = 0;

    if (loc == NULL)
        return CPAR_ENOMEM;
    for (uint32_t i = 0; i < task->nfollow; i++) {
        int32_t engine = -1;
        int st = cpar_deps_state(t->deps, ids + (size_t)i * CPAR_WIRE_ID_SIZE, &engine);
        int ok = (st == CPAR_TASK_SUCCEEDED && (task->follow_flags & CPAR__DEP_SUCCESS)) ||
                 (st == CPAR_TASK_FAILED && (task->follow_flags & CPAR__DEP_FAILURE));
        size_t k;
        if (!ok || engine < 0)
            continue;
        for (k = 0; k < nloc && loc[k] != engine; k++)
            ;
        if (k == nloc)
            loc[nloc++] = engine;
    }
    if (nloc == 0 || ((task->follow_flags & CPAR__DEP_ALL) && nloc > 1)) {
        snprintf(why, whylen, "%s",
                 nloc == 0 ? "the tasks it follows did not run on any engine"
                           : "the tasks it follows (all) ran on different engines");
        free(loc);
        return CPAR_EIMPOSSIBLE;
    }
    if (task->allowed != NULL) {
        for (size_t i = 0; i < nloc; i++)
            for (size_t j = 0; j < task->nallowed; j++)
                if (task->allowed[j] == loc[i]) {
                    loc[kept++] = loc[i];
                    break;
                }
        if (kept == 0) {
            snprintf(why, whylen, "the tasks it follows ran on engines outside its targets");
            free(loc);
            return CPAR_EIMPOSSIBLE;
        }
        nloc = kept;
    }
    free(task->allowed);
    task->allowed = loc;
    task->nallowed = nloc;
    return CPAR_OK;
}

/* Moves a task on from WAIT stage `task->stage` (or from arrival, stage 0): waits on the
 * next set of ids, or queues it, or fails it. */
void
cpar__ctltask_advance(cpar_controller *c, cpar__task *task)
{
    cpar__tasks *t = c->tasks;
    for (;;) {
        int stage = task->stage, state, rc;
        uint32_t n = stage == 0 ? task->nafter : task->nfollow;
        uint16_t flags = stage == 0 ? task->after_flags : task->follow_flags;
        cpar_dep_spec spec;

        if (stage > 1)
            break;
        if (n == 0) {
            task->stage++;
            continue;
        }
        spec.ids = task->ids + (stage == 0 ? 0 : (size_t)task->nafter * CPAR_WIRE_ID_SIZE);
        spec.n = n;
        spec.all = (flags & CPAR__DEP_ALL) != 0;
        spec.success = (flags & CPAR__DEP_SUCCESS) != 0;
        spec.failure = (flags & CPAR__DEP_FAILURE) != 0;
        rc = cpar_deps_wait(t->deps, task, &spec, &state);
        if (rc != 0) {
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, rc, "controller out of memory");
            return;
        }
        if (state == CPAR_DEP_WAITING) {
            task->state = CPAR__T_WAIT;
            cpar__ctltask_tl_push(&t->waiting, task);
            return;
        }
        if (state == CPAR_DEP_IMPOSSIBLE) {
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EIMPOSSIBLE,
                               "its %s dependencies can never be met (a task it depends on "
                               "ended in a way they exclude, or is unknown)",
                               stage == 0 ? "`after`" : "`follow`");
            return;
        }
        task->stage++;
    }
    if (task->nfollow > 0) {
        char why[160];
        int rc = cpar__follow_location(c, task, why, sizeof(why));
        if (rc != 0) {
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, rc,
                               "its `follow` dependency can never be met: %s",
                               rc == CPAR_EIMPOSSIBLE ? why : "controller out of memory");
            return;
        }
    }
    cpar__task_ready(c, task);
}

/* Handles the tasks cpar_deps released, until none is left (handling may release more). */
void
cpar__ctltask_settle(cpar_controller *c)
{
    cpar__tasks *t = c->tasks;
    while (t->settle != NULL) {
        cpar__task *task = t->settle;
        t->settle = task->settle_next;
        task->settle_next = NULL;
        task->settling = 0;
        cpar__ctltask_tl_unlink(task);
        task->state = 0; /* released by cpar_deps: no longer waiting there */
        if (task->settle_state == CPAR_DEP_IMPOSSIBLE) {
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EIMPOSSIBLE,
                               "its %s dependencies can never be met (a task it depends on "
                               "ended in a way they exclude)",
                               task->stage == 0 ? "`after`" : "`follow`");
            continue;
        }
        task->stage++;
        cpar__ctltask_advance(c, task);
    }
}

/* ---- from engines ------------------------------------------------------------------- */

static void
cpar__count_completed(cpar__tasks *t, int32_t engine)
{
    if (engine < 0)
        return;
    if ((size_t)engine >= t->ncompleted) {
        size_t n = (size_t)engine + 16;
        uint64_t *nc = realloc(t->completed, n * sizeof(*nc));
        if (nc == NULL)
            return;
        memset(nc + t->ncompleted, 0, (n - t->ncompleted) * sizeof(*nc));
        t->completed = nc;
        t->ncompleted = n;
    }
    t->completed[engine]++;
}

void
cpar__ctltask_count_reply(cpar_controller *c, int32_t engine)
{
    cpar__count_completed(c->tasks, engine);
}

/* Queues task again after a failure on `engine`, or returns 0 when no other engine
 * could take it (the caller then ends it). */
static int
cpar__task_retry(cpar_controller *c, cpar__task *task, int32_t engine)
{
    cpar__tasks *t = c->tasks;
    cpar_sched_filter f;
    int32_t pick;
    if (cpar__task_add_tried(task, engine) != 0)
        return 0;
    cpar__filter(task, &f);
    if (cpar_sched_pick(t->sched, &f, &pick) == CPAR_ENOENGINE)
        return 0;
    cpar__task_ready(c, task);
    return 1;
}

/* A task that failed with retries left and found no untried engine: with a timeout it
 * waits (READY, restricted) for an engine it has not run on until that timeout, counted
 * from its arrival, then ends with CPAR_EDEPTIMEOUT; as ipyparallel's scheduler does.
 * Returns 0 (the caller forwards the failure) for a task without a timeout. */
static int
cpar__task_park(cpar_controller *c, cpar__task *task)
{
    if (task->timeout_at == 0 || task->allowed != NULL)
        return 0;
    task->parked = 1;
    task->deadline_ms = task->timeout_at;
    c->tasks->ntimeouts++;
    cpar__task_ready(c, task);
    return 1;
}

int
cpar__ctltask_reply(cpar_controller *c, int32_t engine, cpar_msg *m)
{
    cpar__tasks *t = c->tasks;
    cpar__task *task;
    uint32_t slot;
    int status = m->h.status;

    if (t->count == 0)
        return 0;
    task = cpar__task_find(t, m->h.parent);
    if (task == NULL || task->state != CPAR__T_SENT || task->engine != engine)
        return 0;
    cpar_route_remove(&c->route, task->id, engine, &slot);
    cpar_sched_finished(t->sched, engine);
    if (m->h.t1 > m->h.t0)
        cpar_sched_observe(t->sched, engine, m->h.t1 - m->h.t0);
    cpar__count_completed(t, engine);
    t->dirty = 1;
    if (!task->aborted && status == CPAR_STATUS_UNMET) {
        if (cpar__task_retry(c, task, engine))
            return 1;
        cpar__ctltask_fail(c, task, engine, CPAR_EIMPOSSIBLE,
                           "no engine meets the task's requirements (@require/@depend): %zu "
                           "engine(s) tried",
                           task->ntried);
        cpar__ctltask_settle(c);
        return 1;
    }
    if (!task->aborted && status != CPAR_STATUS_OK && task->retries > 0) {
        task->retries--;
        if (cpar__task_retry(c, task, engine) || cpar__task_park(c, task))
            return 1;
    }
    cpar_taskdb_reply(c->db, m); /* the task's last REPLY: recorded before it goes */
    if (cpar_registry_client_at(&c->reg, task->client) == NULL) {
        c->cnt.client_gone++;
        cpar__ctlout_release_for_lost(c, engine, m);
    } else {
        cpar__ctlout_forward_client(c, task->client, m);
    }
    cpar__task_ended(c, task, engine, status == CPAR_STATUS_OK);
    cpar__ctltask_settle(c);
    return 1;
}

/* ---- recovery (docs/recovery.md) ---------------------------------------------------- */

void
cpar__ctltask_recovered_ended(cpar_controller *c, const uint8_t *id, int32_t engine, int succeeded)
{
    cpar__tasks *t = c->tasks;
    if (cpar_deps_submitted(t->deps, id) == 0)
        cpar_deps_ended(t->deps, id, engine, succeeded, cpar__ctltask_release, t);
    cpar__ctltask_settle(c);
}

int
cpar__ctltask_engine_back(cpar_controller *c, const uint8_t *id, int32_t engine, int held,
                          int counted)
{
    cpar__tasks *t = c->tasks;
    cpar__task *task = t->count ? cpar__task_find(t, id) : NULL;
    if (task == NULL || task->state != CPAR__T_SENT || task->engine != engine)
        return 0;
    if (held) {
        if (!counted)
            cpar_sched_assigned(t->sched, engine);
        return 1;
    }
    if (counted)
        cpar_sched_finished(t->sched, engine);
    cpar__task_ready(c, task); /* it never failed: no retry used, the engine not excluded */
    return 1;
}

size_t
cpar__ctltask_reclaim(cpar_controller *c, const uint8_t *prefixes, size_t n, uint32_t slot)
{
    cpar__tasks *t = c->tasks;
    size_t moved = 0;
    for (size_t i = 0; t->count > 0 && i < t->ids.nslots; i++) {
        cpar__task *task = cpar__task_at(t, i);
        if (task == NULL || task->client == slot ||
            cpar_registry_client_at(&c->reg, task->client) != NULL)
            continue;
        for (size_t k = 0; k < n; k++)
            if (memcmp(task->id, prefixes + 8 * k, 8) == 0) {
                task->client = slot;
                moved++;
                break;
            }
    }
    return moved;
}

int
cpar__ctltask_pending_for(cpar_controller *c, const uint8_t *id, uint32_t slot)
{
    cpar__task *task = c->tasks->count ? cpar__task_find(c->tasks, id) : NULL;
    return task != NULL && task->client == slot;
}

int
cpar__ctltask_engine_added(cpar_controller *c, int32_t engine)
{
    int rc = cpar_sched_engine_add(c->tasks->sched, engine);
    if (rc == 0)
        c->tasks->dirty = 1;
    return rc;
}

void
cpar__ctltask_engine_removed(cpar_controller *c, int32_t engine)
{
    cpar_sched_engine_remove(c->tasks->sched, engine);
    c->tasks->dirty = 1;
}

int
cpar__ctltask_engine_died(cpar_controller *c, const cpar_route_entry *ent, int32_t engine,
                          const char *why)
{
    cpar__tasks *t = c->tasks;
    cpar__task *task = t->count ? cpar__task_find(t, ent->msg_id) : NULL;
    if (task == NULL || task->state != CPAR__T_SENT || task->engine != engine)
        return 0;
    if (!task->aborted && task->retries > 0) {
        task->retries--;
        if (cpar__task_retry(c, task, engine))
            return 1;
    }
    cpar__ctltask_fail(c, task, engine, CPAR_EENGINEDEAD,
                       "engine %d died (%s) while it had the task", (int)engine, why);
    cpar__ctltask_settle(c);
    return 1;
}
