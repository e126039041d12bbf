/* The controller alone: a real cpar controller (its loop on a thread of this process, as
 * tests/c/ctlfx.c starts it) fed load-balanced no-op TASKs by a C client and answered at
 * once by C engines, all driven from one thread over loopback TCP with HMAC signing, as
 * in a cluster. No Python anywhere: what it measures is the controller's own rate, to be
 * set beside the raw libzmq relay's message rate (bench/floor.c).
 *
 *   ctlfeed [--tasks N] [--window W] [--engines E] [--batches B] [--db none|memory]
 *
 * Prints JSON: {"controller_alone_per_s": {min, median, max, n}, "tasks", "window",
 * "engines", "db"}. Each batch starts a fresh controller (hwm auto, the default), sends N
 * tasks keeping at most W unanswered, and times from the first send to the last REPLY. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "ctlfx.h"

#define MAX_ENGINES 8

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One batch: returns tasks per second. */
static double
batch(long ntasks, long window, int nengines)
{
    fx f;
    void *eng[MAX_ENGINES], *cl;
    int32_t ids[MAX_ENGINES];
    zmq_pollitem_t items[MAX_ENGINES + 1];
    uint8_t spec[FX_SPEC_HEADER + 16];
    fx_spec none = {0};
    size_t speclen;
    long sent = 0, done = 0;
    double t0, t1;

    fx_start_cfg(&f, FX_HB_LONG, NULL, -1, 0);
    for (int i = 0; i < nengines; i++)
        ids[i] = fx_engine(&f, &eng[i], 100000 + i);
    cl = fx_client(&f, NULL, NULL);
    speclen = fx_spec_encode(&none, spec, sizeof(spec));
    items[0] = (zmq_pollitem_t){.socket = cl, .events = ZMQ_POLLIN};
    for (int i = 0; i < nengines; i++)
        items[i + 1] = (zmq_pollitem_t){.socket = eng[i], .events = ZMQ_POLLIN};

    t0 = now_s();
    while (done < ntasks) {
        cpar_msg m;
        while (sent < ntasks && sent - done < window) {
            th_msg(&m, CPAR_MSG_TASK);
            if (cpar_msg_add_copy(&m, spec, speclen) != 0 || cpar_msg_add_copy(&m, "0", 1) != 0)
                abort();
            th_send(cl, f.s, &m);
            sent++;
        }
        if (zmq_poll(items, nengines + 1, 10000) <= 0) {
            fprintf(stderr, "ctlfeed: nothing for 10 s (%ld of %ld answered)\n", done, ntasks);
            exit(1);
        }
        for (int i = 0; i < nengines; i++) {
            while (cpar_wire_recv(eng[i], f.s, 0, NULL, NULL, &m, ZMQ_DONTWAIT) == 0) {
                if (m.h.type == CPAR_MSG_TASK) {
                    cpar_msg r;
                    th_msg(&r, CPAR_MSG_REPLY);
                    r.h.engine = ids[i];
                    r.h.status = CPAR_STATUS_OK;
                    /* The run's start and end, as an engine reports them: the scheduler's
                     * adaptive limit (CPAR_SCHED_HWM_AUTO) is judged by them. */
                    r.h.t1 = cpar_now_ns();
                    r.h.t0 = r.h.t1 - 1000;
                    memcpy(r.h.parent, m.h.msg_id, CPAR_WIRE_ID_SIZE);
                    if (cpar_msg_add_copy(&r, "0", 1) != 0)
                        abort();
                    th_send(eng[i], f.s, &r);
                }
                cpar_msg_close(&m);
            }
        }
        while (cpar_wire_recv(cl, f.s, 0, NULL, NULL, &m, ZMQ_DONTWAIT) == 0) {
            if (m.h.type == CPAR_MSG_REPLY)
                done++;
            else if (m.h.type == CPAR_MSG_ERROR) {
                fprintf(stderr, "ctlfeed: the controller answered a task with ERROR %d\n",
                        (int)m.h.status);
                exit(1);
            }
            cpar_msg_close(&m);
        }
    }
    t1 = now_s();
    free(fx_stop(&f));
    return (double)ntasks / (t1 - t0);
}

int
main(int argc, char **argv)
{
    long ntasks = 100000, window = 1000;
    int nengines = 2, batches = 5;
    const char *db = "none";
    double rates[64];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tasks") == 0)
            ntasks = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--engines") == 0)
            nengines = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batches") == 0)
            batches = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--db") == 0)
            db = argv[i + 1];
        else {
            fprintf(stderr, "ctlfeed: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (ntasks < 1 || window < 1 || nengines < 1 || nengines > MAX_ENGINES || batches < 1 ||
        batches > 64 || (strcmp(db, "none") != 0 && strcmp(db, "memory") != 0)) {
        fprintf(stderr,
                "ctlfeed: --tasks, --window >= 1; --engines 1..%d; --batches 1..64; "
                "--db none|memory\n",
                MAX_ENGINES);
        return 2;
    }
    fx_db_mode = strcmp(db, "none") == 0 ? NULL : db;
    for (int b = 0; b < batches; b++)
        rates[b] = batch(ntasks, window, nengines);
    qsort(rates, (size_t)batches, sizeof(double), cmp_double);
    printf("{\"controller_alone_per_s\": {\"min\": %.1f, \"median\": %.1f, \"max\": %.1f, "
           "\"n\": %d}, \"tasks\": %ld, \"window\": %ld, \"engines\": %d, \"db\": \"%s\"}\n",
           rates[0],
           batches % 2 ? rates[batches / 2] : (rates[batches / 2 - 1] + rates[batches / 2]) / 2,
           rates[batches - 1], batches, ntasks, window, nengines, db);
    return 0;
}
