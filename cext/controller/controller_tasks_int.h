/* Private to the task layer (controller_tasks.c, with controller_taskmsg.c and
 * controller_taskloop.c above it): the load-balanced task table, queues and the functions
 * controller_tasks.c offers the other two (it describes the life cycle). Everything here
 * runs on the controller's loop thread; no Python, no GIL. */
#ifndef CPAR_CONTROLLER_CONTROLLER_TASKS_INT_H
#define CPAR_CONTROLLER_CONTROLLER_TASKS_INT_H

#include "controller_int.h"
#include "deps.h"
#include "idtab.h"
#include "outbound.h"
#include "scheduler.h"

#define CPAR__SPEC_VERSION 1
#define CPAR__SPEC_HEADER 28
#define CPAR__DEP_ALL 1
#define CPAR__DEP_SUCCESS 2
#define CPAR__DEP_FAILURE 4

enum { CPAR__T_WAIT = 1, CPAR__T_READY = 2, CPAR__T_SENT = 3 };

typedef struct cpar__task cpar__task;

typedef struct cpar__tlist {
    cpar__task *head, *tail;
    size_t n;
} cpar__tlist;

struct cpar__task {
    uint8_t id[CPAR_WIRE_ID_SIZE];
    uint32_t client;       /* slot of the client that sent it */
    uint8_t state;         /* CPAR__T_* */
    uint8_t stage;         /* WAIT: 0 on `after`, 1 on `follow` */
    uint8_t aborted;       /* ABORT seen while SENT: no retry */
    int32_t engine;        /* SENT: where */
    int32_t retries;       /* resubmissions left */
    uint64_t deadline_ms;  /* monotonic; 0: none */
    uint64_t timeout_at;   /* monotonic: arrival + its timeout, kept when sent; 0: none */
    uint8_t parked;        /* failed on every engine with retries left: waits for another */
    uint16_t after_flags;  /* CPAR__DEP_* */
    uint16_t follow_flags; /* CPAR__DEP_* */
    uint32_t nafter, nfollow;
    uint8_t *ids;     /* owned: nafter then nfollow 16-byte ids */
    int32_t *allowed; /* owned: engines it may run on, or NULL for any */
    size_t nallowed;
    int32_t *tried; /* owned: engines it ran on (excluded from now on) */
    size_t ntried, captried;
    cpar_msg msg;            /* the TASK as received (has_raw), forwarded unchanged */
    cpar__tlist *list;       /* the list it is in, or NULL */
    cpar__task *prev, *next; /* in list */
    cpar__task *settle_next; /* on the settle list */
    int settle_state;        /* CPAR_DEP_MET / CPAR_DEP_IMPOSSIBLE */
    int settling;            /* on the settle list (released by cpar_deps, not handled) */
};

struct cpar__tasks {
    cpar_sched *sched;
    cpar_deps *deps;
    cpar_idtab ids;  /* items: cpar__task *, by the keyed hash of their id */
    size_t count;    /* tasks held (in ids) */
    size_t peak;     /* most tasks held at once since the last drain */
    uint64_t key[2]; /* SipHash key of the id table (random per controller) */
    cpar__tlist waiting, plain, restricted;
    cpar__task *settle;  /* tasks released by cpar_deps, to handle */
    size_t ntimeouts;    /* unsent tasks with a deadline */
    int dirty;           /* something may let a READY task go: try the queues */
    uint64_t *completed; /* per engine id: replies it sent */
    size_t ncompleted;
};

/* controller_tasks.c */
/* The pending task with this id (borrowed), or NULL. */
cpar__task *cpar__task_find(const cpar__tasks *t, const uint8_t *id);
/* Adds task to the id table: 0 or CPAR_ENOMEM. */
int cpar__task_insert(cpar__tasks *t, cpar__task *task);
/* The task in slot i of the id table (i < t->ids.nslots), or NULL: to visit them all. */
cpar__task *cpar__task_at(const cpar__tasks *t, size_t i);
/* Frees a task that is in no table or list. */
void cpar__task_free(cpar__task *task);
/* cpar_deps release callback: links the task on the settle list (arg: the cpar__tasks). */
void cpar__ctltask_release(void *arg, void *handle, int state);
/* Ends task with an ERROR (code, text) to its client; frees it. */
void cpar__ctltask_fail(cpar_controller *c, cpar__task *task, int32_t engine, int code,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Starts a task that just arrived: waits on its dependencies, queues or fails it. */
void cpar__ctltask_advance(cpar_controller *c, cpar__task *task);
/* Handles the tasks cpar_deps released, until none is left. */
void cpar__ctltask_settle(cpar_controller *c);
/* Appends task to l / takes it out of its list. */
void cpar__ctltask_tl_push(cpar__tlist *l, cpar__task *task);
void cpar__ctltask_tl_unlink(cpar__task *task);
/* Sends the READY tasks that can go. */
void cpar__ctltask_dispatch(cpar_controller *c);

#endif /* CPAR_CONTROLLER_CONTROLLER_TASKS_INT_H */
