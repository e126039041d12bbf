/* The controller's load-balanced task messages from clients, handed down by
 * controller_clients.c: TASK (spec parsing and arrival), ABORT and QUERY
 * (cpar__ctltask_on_*; controller_tasks.c has the life cycle). An engine an ABORT send
 * finds unreachable is only marked: the caller reaps it.
 *
 * Ownership and threads: the controller's loop thread only. No Python, no GIL. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "controller_tasks_int.h"
#include "errors.h"

/* ---- from clients ------------------------------------------------------------------- */

static uint32_t
cpar__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parses TASK frame 0 into task. Returns 0 or CPAR_EPROTO/CPAR_ENOMEM (text in why). */
static int
cpar__parse_spec(cpar_controller *c, cpar__task *task, const cpar_msg *m, char *why, size_t whylen)
{
    const uint8_t *p;
    size_t len, need;
    uint32_t ntargets, timeout_ms;

    if (m->nframes < 2) {
        snprintf(why, whylen, "TASK needs a spec frame and the APPLY frames");
        return CPAR_EPROTO;
    }
    p = zmq_msg_data((zmq_msg_t *)&m->frames[0]);
    len = zmq_msg_size((zmq_msg_t *)&m->frames[0]);
    if (len < CPAR__SPEC_HEADER || cpar__get32(p) != CPAR__SPEC_VERSION) {
        snprintf(why, whylen, "TASK spec: too short or not version %d", CPAR__SPEC_VERSION);
        return CPAR_EPROTO;
    }
    task->retries = (int32_t)cpar__get32(p + 4);
    timeout_ms = cpar__get32(p + 8);
    task->after_flags = (uint16_t)(p[12] | p[13] << 8);
    task->follow_flags = (uint16_t)(p[14] | p[15] << 8);
    ntargets = cpar__get32(p + 16);
    task->nafter = cpar__get32(p + 20);
    task->nfollow = cpar__get32(p + 24);
    if (task->retries < 0 || ntargets > CPAR_WIRE_MAX_TARGETS || task->nafter > (1u << 24) ||
        task->nfollow > (1u << 24)) {
        snprintf(why, whylen, "TASK spec: retries < 0 or a list too long");
        return CPAR_EPROTO;
    }
    need = CPAR__SPEC_HEADER + (size_t)ntargets * 4 +
           ((size_t)task->nafter + task->nfollow) * CPAR_WIRE_ID_SIZE;
    if (len != need) {
        snprintf(why, whylen, "TASK spec: %zu bytes where its counts make %zu", len, need);
        return CPAR_EPROTO;
    }
    p += CPAR__SPEC_HEADER;
    if (ntargets > 0) {
        task->allowed = malloc(ntargets * sizeof(int32_t));
        if (task->allowed == NULL)
            return CPAR_ENOMEM;
        for (uint32_t i = 0; i < ntargets; i++)
            task->allowed[i] = (int32_t)cpar__get32(p + 4 * (size_t)i);
        task->nallowed = ntargets;
        p += 4 * (size_t)ntargets;
    }
    if (task->nafter + task->nfollow > 0) {
        size_t bytes = ((size_t)task->nafter + task->nfollow) * CPAR_WIRE_ID_SIZE;
        task->ids = malloc(bytes);
        if (task->ids == NULL)
            return CPAR_ENOMEM;
        memcpy(task->ids, p, bytes);
    }
    for (uint32_t i = 0; i < task->nafter + task->nfollow; i++)
        if (memcmp(task->ids + (size_t)i * CPAR_WIRE_ID_SIZE, m->h.msg_id, CPAR_WIRE_ID_SIZE) ==
            0) {
            snprintf(why, whylen, "a task cannot depend on itself (its own id is in %s)",
                     i < task->nafter ? "`after`" : "`follow`");
            return CPAR_EIMPOSSIBLE;
        }
    if (timeout_ms > 0)
        task->deadline_ms = task->timeout_at = cpar__ctlout_mono_ms() + timeout_ms;
    (void)c;
    return CPAR_OK;
}

/* Refuses a TASK: ERROR to its client; a task the database recorded already (a resubmit)
 * is recorded as ended by it. */
static void cpar__refuse(cpar_controller *c, int32_t slot, const cpar_msg *m, int recorded,
                         int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void
cpar__refuse(cpar_controller *c, int32_t slot, const cpar_msg *m, int recorded, int code,
             const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (recorded)
        cpar_taskdb_error(c->db, m->h.msg_id, CPAR_NO_ENGINE, code, text, strlen(text));
    cpar__ctlout_error(c, slot, m->h.msg_id, code, "%s", text);
}

/* A TASK arrives (from client slot, or made by a resubmit or a recovery when `recorded`);
 * a recovered one that was sent waits on engine `sent` (else CPAR_NO_ENGINE). */
static void
cpar__task_arrive(cpar_controller *c, int32_t slot, cpar_msg *m, int recorded, int32_t sent)
{
    cpar__tasks *t = c->tasks;
    cpar__task *task;
    char why[200] = "";
    int rc;

    if (c->hub_stopping) {
        cpar__refuse(c, slot, m, recorded, CPAR_ESHUTDOWN, "the controller is shutting down");
        return;
    }
    if (cpar__task_find(t, m->h.msg_id) != NULL) {
        cpar__refuse(c, slot, m, recorded, CPAR_EINVAL,
                     "duplicate task: this msg_id is already pending");
        return;
    }
    task = calloc(1, sizeof(*task));
    if (task == NULL)
        goto nomem;
    memcpy(task->id, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    task->client = (uint32_t)slot;
    task->engine = CPAR_NO_ENGINE;
    rc = cpar__parse_spec(c, task, m, why, sizeof(why));
    if (rc == CPAR_ENOMEM)
        goto nomem;
    if (rc != 0) {
        cpar__refuse(c, slot, m, recorded, rc, "%s", why);
        cpar__task_free(task);
        return;
    }
    rc = cpar_deps_submitted(t->deps, task->id);
    if (rc != 0) {
        cpar__refuse(c, slot, m, recorded, rc,
                     rc == CPAR_EINVAL ? "duplicate task: this msg_id is already pending"
                                       : "controller out of memory");
        cpar__task_free(task);
        return;
    }
    if (cpar__task_insert(t, task) != 0) {
        uint8_t id[CPAR_WIRE_ID_SIZE];
        memcpy(id, task->id, sizeof(id));
        cpar__task_free(task);
        cpar_deps_ended(t->deps, id, CPAR_NO_ENGINE, 0, cpar__ctltask_release, t);
        cpar__ctltask_settle(c);
        task = NULL;
        goto nomem;
    }
    if (!recorded)
        cpar_taskdb_arrival(c->db, m); /* before its frames move (they are shared) */
    /* The message moves into the task: frames and raw header (for unchanged forwards). */
    task->msg = *m;
    m->frames = NULL;
    m->nframes = m->cap = 0;
    if (sent >= 0) {
        /* Recovered, and sent before the controller died: it waits for that engine. */
        task->deadline_ms = 0;
        task->state = CPAR__T_SENT;
        task->engine = sent;
        rc = cpar_route_insert(&c->route, task->id, sent, (uint32_t)slot);
        if (rc != 0)
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, rc, "not recovered: %s",
                               rc == CPAR_EINVAL ? "already outstanding on its engine"
                                                 : "controller out of memory");
        cpar__ctltask_settle(c);
        return;
    }
    if (task->deadline_ms)
        t->ntimeouts++;
    cpar__ctltask_advance(c, task);
    cpar__ctltask_settle(c);
    return;
nomem:
    if (task != NULL)
        cpar__task_free(task);
    cpar__refuse(c, slot, m, recorded, CPAR_ENOMEM, "controller out of memory");
}

void
cpar__ctltask_on_task(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    cpar__task_arrive(c, slot, m, 0, CPAR_NO_ENGINE);
}

void
cpar__ctltask_resubmitted(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    cpar__task_arrive(c, slot, m, 1, CPAR_NO_ENGINE);
}

void
cpar__ctltask_recovered(cpar_controller *c, int32_t slot, cpar_msg *m, int32_t engine)
{
    cpar__task_arrive(c, slot, m, 1, engine);
}

/* Sends ABORT (frame 0: one id) to engine. */
static void
cpar__abort_on_engine(cpar_controller *c, int32_t engine, const uint8_t *id)
{
    cpar_msg a;
    cpar__ctlout_msg_new(c, &a, CPAR_MSG_ABORT);
    a.h.target = engine;
    if (cpar_msg_add_copy(&a, id, CPAR_WIRE_ID_SIZE) != 0) {
        cpar_msg_close(&a);
        return;
    }
    if (cpar__ctlout_send_engine(c, engine, &a))
        c->reg.engines[engine].unreachable = 1;
}

void
cpar__ctltask_on_abort(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    cpar__tasks *t = c->tasks;
    const uint8_t *ids;
    size_t n;

    if (m->nframes < 1 || zmq_msg_size(&m->frames[0]) % CPAR_WIRE_ID_SIZE != 0) {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EPROTO,
                           "ABORT needs frame 0 of 16-byte msg ids");
        return;
    }
    ids = zmq_msg_data(&m->frames[0]);
    n = zmq_msg_size(&m->frames[0]) / CPAR_WIRE_ID_SIZE;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *id = ids + i * CPAR_WIRE_ID_SIZE;
        cpar__task *task = cpar__task_find(t, id);
        if (task != NULL) {
            if (task->client != (uint32_t)slot)
                continue; /* only the client that sent a task may abort it */
            if (task->state == CPAR__T_SENT) {
                task->aborted = 1;
                task->retries = 0;
                cpar__abort_on_engine(c, task->engine, id);
            } else {
                cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EABORTED,
                                   "the task was aborted before it ran");
                cpar__ctltask_settle(c);
            }
            continue;
        }
        /* A direct request: to every engine it is outstanding on. */
        for (size_t e = 0; e < c->reg.nengines; e++) {
            uint32_t owner;
            if (c->reg.engines[e].state == CPAR_ENGINE_LIVE &&
                cpar_route_find(&c->route, id, (int32_t)e, &owner) && owner == (uint32_t)slot)
                cpar__abort_on_engine(c, (int32_t)e, id);
        }
    }
    cpar__ctltask_settle(c);
    /* Engines found unreachable are marked: the caller (controller_clients.c) reaps. */
}

/* ---- QUERY -------------------------------------------------------------------------- */

typedef struct cpar__buf {
    char *p;
    size_t len, cap;
    int failed;
} cpar__buf;

static void cpar__bprintf(cpar__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
cpar__bprintf(cpar__buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

static void
cpar__bhex(cpar__buf *b, const uint8_t *id)
{
    char hex[2 * CPAR_WIRE_ID_SIZE + 1];
    for (int i = 0; i < CPAR_WIRE_ID_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    cpar__bprintf(b, "\"%s\"", hex);
}

static void
cpar__query_queue(cpar_controller *c, cpar__buf *b, int verbose)
{
    cpar__tasks *t = c->tasks;
    int first = 1;
    cpar__bprintf(b, "{\"engines\": {");
    for (size_t e = 0; e < c->reg.nengines; e++) {
        uint32_t total, tasks;
        uint64_t done;
        if (c->reg.engines[e].state != CPAR_ENGINE_LIVE)
            continue;
        total = cpar_route_engine_count(&c->route, (int32_t)e);
        tasks = (uint32_t)(cpar_sched_load(t->sched, (int32_t)e) > 0
                               ? cpar_sched_load(t->sched, (int32_t)e)
                               : 0);
        done = e < t->ncompleted ? t->completed[e] : 0;
        cpar__bprintf(b, "%s\"%zu\": {\"completed\": %llu, ", first ? "" : ", ", e,
                      (unsigned long long)done);
        first = 0;
        if (!verbose) {
            cpar__bprintf(b, "\"queue\": %u, \"tasks\": %u}",
                          total - (tasks < total ? tasks : total), tasks);
            continue;
        }
        for (int pass = 0; pass < 2; pass++) {
            int firstid = 1;
            cpar__bprintf(b, "%s\"%s\": [", pass ? ", " : "", pass ? "tasks" : "queue");
            if ((size_t)e < c->route.nengines)
                for (uint32_t k = c->route.heads[e]; k != CPAR_ROUTE_NIL;
                     k = c->route.pool[k].next) {
                    const uint8_t *id = c->route.pool[k].msg_id;
                    cpar__task *task = cpar__task_find(t, id);
                    int is_task = task != NULL && task->state == CPAR__T_SENT;
                    if (is_task != pass)
                        continue;
                    if (!firstid)
                        cpar__bprintf(b, ", ");
                    firstid = 0;
                    cpar__bhex(b, id);
                }
            cpar__bprintf(b, "]");
        }
        cpar__bprintf(b, "}");
    }
    cpar__bprintf(b, "}, \"unassigned\": %zu, \"scheme\": \"%s\", \"hwm\": %d}",
                  t->waiting.n + t->plain.n + t->restricted.n, cpar_sched_scheme_name(c->scheme),
                  c->hwm);
}

static void
cpar__query_tasks(cpar_controller *c, cpar__buf *b, const uint8_t *ids, size_t n)
{
    cpar__tasks *t = c->tasks;
    static const char *const names[] = {"unknown", "pending", "succeeded", "failed"};
    cpar__bprintf(b, "{");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *id = ids + i * CPAR_WIRE_ID_SIZE;
        int32_t engine = -1;
        int st = cpar_deps_state(t->deps, id, &engine);
        cpar__task *task = cpar__task_find(t, id);
        if (task != NULL)
            engine = task->state == CPAR__T_SENT ? task->engine : -1;
        if (st < 0 || st > 3)
            st = 0;
        if (i)
            cpar__bprintf(b, ", ");
        cpar__bhex(b, id);
        cpar__bprintf(b, ": [\"%s\", %d]", names[st], (int)engine);
    }
    cpar__bprintf(b, "}");
}

void
cpar__ctltask_on_query(cpar_controller *c, int32_t slot, cpar_msg *m)
{
    cpar__buf b = {0};
    char what[32] = "";
    size_t len = m->nframes > 0 ? zmq_msg_size(&m->frames[0]) : 0;
    cpar_msg r;

    if (len >= sizeof(what))
        len = sizeof(what) - 1;
    if (len)
        memcpy(what, zmq_msg_data(&m->frames[0]), len);
    what[len] = '\0';
    if (strcmp(what, "queue_status") == 0 || strcmp(what, "queue_status_verbose") == 0) {
        cpar__query_queue(c, &b, what[12] != '\0');
    } else if (strcmp(what, "task_status") == 0 && m->nframes >= 2 &&
               zmq_msg_size(&m->frames[1]) % CPAR_WIRE_ID_SIZE == 0) {
        cpar__query_tasks(c, &b, zmq_msg_data(&m->frames[1]),
                          zmq_msg_size(&m->frames[1]) / CPAR_WIRE_ID_SIZE);
    } else {
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_EINVAL,
                           "unknown QUERY '%s' (queue_status, queue_status_verbose, or "
                           "task_status with a frame of ids)",
                           what);
        return;
    }
    if (b.failed) {
        free(b.p);
        cpar__ctlout_error(c, slot, m->h.msg_id, CPAR_ENOMEM, "controller out of memory");
        return;
    }
    cpar__ctlout_msg_new(c, &r, CPAR_MSG_QUERY_REPLY);
    memcpy(r.h.parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    if (cpar_msg_add_copy(&r, b.p, b.len) == 0)
        cpar__ctlout_send_client(c, (uint32_t)slot, &r);
    else
        cpar_msg_close(&r);
    free(b.p);
}
