/* Signals for the engine, from INTERRUPT and ABORT (called on the I/O thread).
 *
 * SIGINT interrupts the running task: the main thread gets SIGINT, which Python turns into
 * KeyboardInterrupt, and only when the running request is one of those named (or any).
 * Any other signal goes to the engine process as `kill(getpid(), sig)` would send it
 * from outside: its disposition decides (SIGKILL and SIGTERM end the engine, which the
 * controller then reports dead; a handler the task installed runs; 0 does nothing). */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

void
cpar_engine_interrupt(cpar_engine *e, const uint8_t *ids, size_t n, int drop)
{
    int hit = 0;

    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; drop && i < n; i++) {
        const uint8_t *id = ids + i * CPAR_WIRE_ID_SIZE;
        if (e->running && memcmp(id, e->running_id, CPAR_WIRE_ID_SIZE) == 0)
            continue;
        memcpy(e->aborted[e->naborted % CPAR_ENGINE_ABORTED_MAX], id, CPAR_WIRE_ID_SIZE);
        e->naborted++;
    }
    if (e->running) {
        hit = n == 0;
        for (size_t i = 0; i < n && !hit; i++)
            hit = memcmp(ids + i * CPAR_WIRE_ID_SIZE, e->running_id, CPAR_WIRE_ID_SIZE) == 0;
        if (hit) {
            e->interrupt_sent = 1;
            e->abort_sent |= drop;
            pthread_kill(e->main_thread, SIGINT);
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (hit)
        cpar_elog_info("interrupting the running task");
}

void
cpar_engine_signal(cpar_engine *e, const uint8_t *ids, size_t n, int sig)
{
    if (sig == SIGINT) {
        cpar_engine_interrupt(e, ids, n, 0);
        return;
    }
    if (sig < 0 || sig >= NSIG) {
        cpar_elog("INTERRUPT with signal %d ignored: not a signal number", sig);
        return;
    }
    if (sig == 0)
        return;
    cpar_elog("signal %d (%s) sent to the engine by a client", sig, strsignal(sig));
    if (kill(getpid(), sig) != 0)
        cpar_elog("cannot send signal %d to the engine: %s", sig, strerror(errno));
}
