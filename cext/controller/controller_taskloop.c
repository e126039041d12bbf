/* The controller's load-balanced tasks, each turn of its loop: timeouts, a lost client's
 * tasks, shutdown, and sending what can go (cpar__ctltask_run, called by the loop, which
 * then reaps the engines the sends found unreachable; controller_tasks.c describes the
 * life cycle). Everything here runs on the controller's loop thread; no Python, no GIL. */
#include <stdint.h>
#include <stdlib.h>

#include "controller_tasks_int.h"
#include "errors.h"

/* ---- each turn of the loop ---------------------------------------------------------- */

/* Ends the tasks of l whose deadline passed. They move to a list of their own first:
 * ending one may settle others (which then leave that list), so it is read from its head
 * each time. */
static void
cpar__expire(cpar_controller *c, cpar__tlist *l, uint64_t now)
{
    cpar__tlist due = {0};
    cpar__task *task, *next;
    for (task = l->head; task != NULL; task = next) {
        next = task->next;
        if (task->deadline_ms && now >= task->deadline_ms) {
            cpar__ctltask_tl_unlink(task);
            cpar__ctltask_tl_push(&due, task);
        }
    }
    while ((task = due.head) != NULL) {
        cpar__ctltask_fail(c, task, CPAR_NO_ENGINE,
                           task->state == CPAR__T_WAIT ? CPAR_EDEPTIMEOUT : CPAR_ETASKTIMEOUT,
                           "the task waited past its timeout %s",
                           task->parked ? "for an engine it had not failed on (it failed on "
                                          "every engine, with retries left)"
                           : task->state == CPAR__T_WAIT ? "for its dependencies"
                                                         : "for an engine to take it");
        cpar__ctltask_settle(c);
    }
}

/* Moves the tasks of client `slot` from l to due. */
static void
cpar__take_client_tasks(cpar__tlist *l, cpar__tlist *due, uint32_t slot)
{
    cpar__task *task, *next;
    for (task = l->head; task != NULL; task = next) {
        next = task->next;
        if (task->client == slot) {
            cpar__ctltask_tl_unlink(task);
            cpar__ctltask_tl_push(due, task);
        }
    }
}

size_t
cpar__ctltask_client_lost(cpar_controller *c, uint32_t slot, size_t *running)
{
    cpar__tasks *t = c->tasks;
    cpar__tlist due = {0};
    cpar__task *task;
    size_t cancelled = 0;

    *running = 0;
    for (size_t i = 0; i < t->ids.nslots; i++) {
        const cpar__task *x = cpar__task_at(t, i);
        if (x != NULL && x->client == slot && x->state == CPAR__T_SENT)
            (*running)++;
    }
    cpar__take_client_tasks(&t->waiting, &due, slot);
    cpar__take_client_tasks(&t->restricted, &due, slot);
    cpar__take_client_tasks(&t->plain, &due, slot);
    /* Ending one may settle others of the list (then they leave it): read its head. */
    while ((task = due.head) != NULL) {
        cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_EABORTED,
                           "cancelled: the client that sent the task is gone");
        cancelled++;
        cpar__ctltask_settle(c);
    }
    return cancelled;
}

void
cpar__ctltask_shutdown(cpar_controller *c)
{
    cpar__tasks *t = c->tasks;
    cpar__tlist *lists[3] = {&t->waiting, &t->restricted, &t->plain};
    for (int i = 0; i < 3; i++) {
        cpar__task *task;
        while ((task = lists[i]->head) != NULL) {
            cpar__ctltask_fail(c, task, CPAR_NO_ENGINE, CPAR_ESHUTDOWN,
                               "the controller is shutting down: the task did not start");
            cpar__ctltask_settle(c); /* released tasks move on, to be failed in turn */
        }
    }
}

int
cpar__ctltask_run(cpar_controller *c, uint64_t now, int tick)
{
    cpar__tasks *t = c->tasks;
    if (tick && t->ntimeouts > 0) {
        cpar__expire(c, &t->waiting, now);
        cpar__expire(c, &t->restricted, now);
        cpar__expire(c, &t->plain, now);
    }
    if (t->dirty && (t->plain.n > 0 || t->restricted.n > 0))
        cpar__ctltask_dispatch(c);
    else
        t->dirty = 0;
    return cpar__ctltask_more(c);
}

int
cpar__ctltask_more(cpar_controller *c)
{
    const cpar__tasks *t = c->tasks;
    return t->dirty && (t->plain.n > 0 || t->restricted.n > 0);
}

int
cpar__ctltask_drained(cpar_controller *c, size_t at_least)
{
    cpar__tasks *t = c->tasks;
    if (t->count > 0 || t->peak < at_least)
        return 0;
    t->peak = 0;
    return 1;
}
