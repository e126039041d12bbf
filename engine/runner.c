/* The engine's main-thread loop: waits for tasks (read from the controller's DEALER here
 * while idle, or queued by the I/O thread), runs each through cpar.engine.runtime in the
 * persistent __main__ namespace, and sends the REPLY.
 *
 * Ownership and threads: runs on the main thread only, with the GIL held except while it
 * waits for a task or sends. It owns its end of the inproc PAIR and its own signer; it uses
 * the DEALER only through io_direct.c, under engine->io_turn. A task cpar_msg received
 * (either way) is owned (and freed) here. Received frames become _cpar_engine.Frame objects
 * (no copy); result buffers go out through cpar_zc_add_frame. */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "tsan.h"
#include "frame.h"
#include "zerocopy.h"

typedef struct cpar__runner {
    cpar_engine *e;
    void *pair;             /* main's end of the PAIR to the I/O thread */
    cpar_signer *signer;    /* main thread's */
    PyObject *frame_type;   /* _cpar_engine.Frame (new reference) */
    PyObject *run_task;     /* cpar.engine.runtime.run_task (new reference) */
    PyObject *error_frames; /* cpar.engine.runtime.error_frames (new reference) */
    PyObject *abort_frames; /* cpar.engine.runtime.aborted_by_client (new reference) */
    PyObject *fallback;     /* pickled error dict (bytes) for when the runtime fails */
    int abort_next;         /* the next tasks to come were queued behind a failed EXECUTE */
} cpar__runner;

/* Runs pending Python signal handlers and discards what they raise: a KeyboardInterrupt
 * that lands between tasks must not end the engine. GIL held. */
static void
cpar__runner_clear_signals(void)
{
    if (PyErr_CheckSignals() < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            PyErr_WriteUnraisable(NULL);
        PyErr_Clear();
    }
}

/* Receives one control record from the I/O thread, with the GIL released. Returns 0, or
 * -1 when the I/O thread has gone. */
static int
cpar__runner_recv(cpar__runner *r, cpar_engine_ctl *ctl)
{
    for (;;) {
        int n, err;
        Py_BEGIN_ALLOW_THREADS
        n = zmq_recv(r->pair, ctl, sizeof(*ctl), 0);
        Py_END_ALLOW_THREADS
        err = n < 0 ? zmq_errno() : 0;
        if (n == (int)sizeof(*ctl)) {
            CPAR_TSAN_ACQUIRE(r->e); /* the I/O thread's cpar__io_ctl (tsan.h) */
            return 0;
        }
        if (err == EINTR) {
            cpar__runner_clear_signals();
            continue;
        }
        if (err == EAGAIN) { /* receive timeout: is the I/O thread still there? */
            /* A signal that came while this thread ran C code outside zmq_recv (sending a
             * reply) did not interrupt the wait: its Python handler runs now, not only at
             * the next task (cpar.engine.kernel's SIGTERM cleanup relies on this). */
            cpar__runner_clear_signals();
            if (atomic_load(&r->e->io_done))
                return -1;
            continue;
        }
        if (n < 0) {
            cpar_elog("receive from the I/O thread failed: %s", zmq_strerror(err));
            return -1;
        }
        cpar_elog("ignored a control record of %d bytes", n);
    }
}

/* Waits for the next control record with the GIL released: what the I/O thread queued,
 * or a request read from the DEALER here (cpar_io_direct_wait). Returns 0, or -1 when the
 * I/O thread has gone. Signals are handled as cpar__runner_recv does. */
static int
cpar__runner_wait(cpar__runner *r, cpar_engine_ctl *ctl)
{
    for (;;) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = cpar_io_direct_wait(r->e, r->pair, ctl, 500);
        Py_END_ALLOW_THREADS
        if (rc == 1)
            return 0;
        if (rc == CPAR_EAGAIN) { /* a signal */
            cpar__runner_clear_signals();
            continue;
        }
        if (rc < 0) {
            cpar_elog("receive from the I/O thread failed: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        cpar__runner_clear_signals(); /* as cpar__runner_recv on its timeout */
        if (atomic_load(&r->e->io_done))
            return -1;
    }
}

/* Sends m (consumed) to the I/O thread for relaying, signed here, the GIL released. */
static int
cpar__runner_send(cpar__runner *r, cpar_msg *m)
{
    int rc;
    cpar_zc_drain();
    CPAR_TSAN_RELEASE(r->e); /* m's frames pass to the I/O thread (tsan.h) */
    Py_BEGIN_ALLOW_THREADS
    rc = cpar_wire_send(r->pair, r->signer, NULL, 0, m, 0);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        cpar_elog("cannot pass a message to the I/O thread: %s", cpar_strerror(rc));
    return rc;
}

/* Sends the request's pending output and its REPLY (consumed) on the controller's socket
 * from this thread (cpar_io_direct_begin), the GIL released. Returns 0 when sent (or when
 * a send failed: logged, as the I/O thread would), -1 when they must go through the PAIR
 * (nothing consumed). */
static int
cpar__runner_send_direct(cpar__runner *r, cpar_capture *pending, const uint8_t *parent,
                         cpar_msg *rep)
{
    int rc = -1, sent;
    cpar_zc_drain();
    Py_BEGIN_ALLOW_THREADS
    void *dealer = cpar_io_direct_begin(r->e);
    if (dealer != NULL) {
        if (pending->n > 0)
            cpar_capture_send(pending, dealer, r->signer, r->e->id, parent);
        sent = cpar_wire_send(dealer, r->signer, NULL, 0, rep, ZMQ_DONTWAIT);
        cpar_io_direct_end(r->e, parent);
        if (sent != 0)
            cpar_elog("cannot send to the controller (%s); a reply was dropped",
                      cpar_strerror(sent));
        rc = 0;
    }
    Py_END_ALLOW_THREADS
    return rc;
}

/* Bytes of m's payload frames. */
static uint64_t
cpar__runner_bytes(const cpar_msg *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->nframes; i++)
        n += zmq_msg_size((zmq_msg_t *)&m->frames[i]);
    return n;
}

/* Fills m's frames from the runtime's result `(status, [buffer, ...])` (borrowed) and sets
 * the status. Returns 0, or -1 with a Python exception set (m's frames then closed). */
static int
cpar__runner_fill(cpar_msg *m, PyObject *res)
{
    PyObject *seq = NULL;
    long status;

    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
        PyErr_SetString(PyExc_TypeError, "runtime.run_task must return (status, frames)");
        goto error;
    }
    status = PyLong_AsLong(PyTuple_GET_ITEM(res, 0));
    if (status == -1 && PyErr_Occurred())
        goto error;
    seq = PySequence_Fast(PyTuple_GET_ITEM(res, 1), "runtime frames must be a sequence");
    if (seq == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
        if (cpar_zc_add_frame(m, PySequence_Fast_GET_ITEM(seq, i)) < 0)
            goto error;
    m->h.status = (int32_t)status;
    Py_DECREF(seq);
    return 0;
error:
    Py_XDECREF(seq);
    cpar_msg_close(m);
    return -1;
}

/* The last resort when the runtime failed: an error reply about the exception that is
 * set (it is cleared), made by runtime.error_frames, or a fixed one if even that fails.
 * Leaves exactly one payload frame in m, whose status becomes CPAR_STATUS_ERROR. */
static void
cpar__runner_fallback(cpar__runner *r, cpar_msg *m)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL, *res = NULL;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL)
        PyException_SetTraceback(value, tb);
    cpar_msg_close(m);
    if (r->error_frames != NULL && value != NULL)
        res = PyObject_CallOneArg(r->error_frames, value);
    if (res == NULL || cpar__runner_fill(m, res) < 0) {
        PyErr_Clear();
        cpar_msg_close(m);
        cpar_msg_add_copy(m, PyBytes_AS_STRING(r->fallback), (size_t)PyBytes_GET_SIZE(r->fallback));
    }
    m->h.status = CPAR_STATUS_ERROR;
    Py_XDECREF(res);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* For a client that can read our memory (the request had CPAR_FLAG_SHM_OK): sends the
 * REPLY's large frames by descriptor, pinned under the request's id until its RELEASE. */
static void
cpar__runner_offload(cpar__runner *r, cpar_msg *rep, const uint8_t parent[CPAR_WIRE_ID_SIZE])
{
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0;
    cpar_shm_seal seal;
    int rc;

    if (cpar_shm_offload(rep, 0, CPAR_SHM_MIN_SIZE, &pinned, &npinned, &seal) <= 0)
        return; /* nothing large (or out of memory): the bytes go over the socket */
    pthread_mutex_lock(&r->e->lock);
    rc = cpar_shm_pins_add(&r->e->pins, parent, pinned, npinned, &seal, NULL, 0);
    pthread_mutex_unlock(&r->e->lock);
    if (rc != 0)
        cpar_elog("out of memory pinning a reply; its client will fail to read it");
}

/* 1 when res (borrowed; NULL: an exception) is run_task's (STATUS_OK, frames). */
static int
cpar__runner_succeeded(PyObject *res)
{
    long status;
    if (res == NULL || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2)
        return 0;
    status = PyLong_AsLong(PyTuple_GET_ITEM(res, 0));
    if (status == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return status == CPAR_STATUS_OK;
}

/* Runs one EXECUTE or APPLY task (m is consumed) and sends its output and REPLY. */
static void
cpar__runner_task(cpar__runner *r, cpar_msg *m)
{
    cpar_engine *e = r->e;
    /* A TARGETED request's frame 0 is its target list, a TASK's its spec: skipped. */
    size_t skip = ((m->h.flags & CPAR_FLAG_TARGETED) || m->h.type == CPAR_MSG_TASK) ? 1 : 0;
    uint8_t parent[CPAR_WIRE_ID_SIZE];
    int type = m->h.type, aborted = 0, abort_hit;
    PyObject *frames = NULL, *res = NULL;
    cpar_capture pending;
    cpar_msg rep;
    int interrupted, shm_ok = (m->h.flags & CPAR_FLAG_SHM_OK) && e->shm;
    char shm_err[300];
    int shm_rc = 0;
    uint64_t started;

    memcpy(parent, m->h.msg_id, CPAR_WIRE_ID_SIZE);
    cpar_msg_init(&rep, CPAR_MSG_REPLY);
    rep.h.engine = e->id;
    memcpy(rep.h.parent, parent, CPAR_WIRE_ID_SIZE);
    cpar_engine_new_id(rep.h.msg_id);

    /* Frames sent by descriptor were read from the client's memory on arrival by the I/O
     * thread (cpar__io_resolve) up to CPAR_ENGINE_EARLY_READ_MAX bytes; larger ones are
     * read now (the GIL released: the copy may take a while). One that could not be read
     * comes with the reason in its only frame, and the task does not run. */
    if ((m->h.flags & CPAR_FLAG_SHM) && m->h.status == 0) {
        Py_BEGIN_ALLOW_THREADS
        shm_rc = cpar_shm_resolve(m, 0, shm_err, sizeof(shm_err));
        Py_END_ALLOW_THREADS
    } else if (m->h.flags & CPAR_FLAG_SHM) {
        size_t len = m->nframes > 0 ? zmq_msg_size(&m->frames[0]) : 0;
        shm_rc = m->h.status ? m->h.status : CPAR_EPROTO;
        if (len >= sizeof(shm_err))
            len = sizeof(shm_err) - 1;
        if (len > 0)
            memcpy(shm_err, zmq_msg_data(&m->frames[0]), len);
        shm_err[len] = '\0';
    }
    if (shm_rc != 0)
        PyErr_Format(PyExc_RuntimeError,
                     "cpar: engine %d could not read the request's data from the client: %s",
                     (int)e->id, shm_err);
    else
        frames = PyList_New(m->nframes > skip ? (Py_ssize_t)(m->nframes - skip) : 0);
    for (size_t i = skip; frames != NULL && i < m->nframes; i++) {
        PyObject *f = cpar_frame_new((PyTypeObject *)r->frame_type, &m->frames[i]);
        if (f == NULL)
            Py_CLEAR(frames);
        else
            PyList_SET_ITEM(frames, (Py_ssize_t)(i - skip), f); /* steals f */
    }
    cpar_msg_close(m);
    free(m);

    cpar__runner_clear_signals(); /* a stray SIGINT must not hit this task */
    pthread_mutex_lock(&e->lock);
    /* Aborted while queued here: answered without running (checked under the lock the
     * I/O thread takes to record aborts, so an abort either lands here or interrupts). */
    for (size_t i = 0; i < e->naborted && i < CPAR_ENGINE_ABORTED_MAX; i++)
        if (memcmp(e->aborted[i], parent, CPAR_WIRE_ID_SIZE) == 0) {
            memset(e->aborted[i], 0, CPAR_WIRE_ID_SIZE);
            aborted = 1;
            break;
        }
    /* Queued behind an EXECUTE that failed: direct requests are answered aborted, as an
     * IPython kernel does (load-balanced tasks run: the scheduler placed them here). */
    if (r->abort_next > 0) {
        r->abort_next--;
        if (type != CPAR_MSG_TASK && !aborted)
            aborted = 2; /* answered as the kernel does: a RemoteError named TaskAborted */
    }
    e->running = 1;
    e->interrupt_sent = 0;
    e->abort_sent = 0;
    memcpy(e->running_id, parent, CPAR_WIRE_ID_SIZE);
    pthread_mutex_unlock(&e->lock);

    /* started/completed are wall-clock stamps for the user; the duration between them is
     * measured on the monotonic clock, so a clock step during the task cannot distort it
     * (the scheduler learns task durations from t1 - t0). */
    rep.h.t0 = cpar_now_ns();
    started = cpar_mono_ns();
    if (frames != NULL && aborted == 1)
        res = PyObject_CallFunction(r->abort_frames, "O", Py_False);
    else if (frames != NULL)
        res = PyObject_CallFunction(r->run_task, "iO", aborted ? 0 : type, frames);
    rep.h.t1 = rep.h.t0 + (cpar_mono_ns() - started);
    /* Ended by an ABORT's interrupt (not by itself, not by an INTERRUPT): its reply says
     * aborted, as the client that aborted it already does, and the task database with it.
     * A task that finished with success despite it keeps its value. */
    pthread_mutex_lock(&e->lock);
    abort_hit = e->abort_sent;
    pthread_mutex_unlock(&e->lock);
    if (abort_hit && !aborted && !cpar__runner_succeeded(res)) {
        Py_XDECREF(res);
        PyErr_Clear();
        res = PyObject_CallFunction(r->abort_frames, "O", Py_True);
    }
    if (res == NULL || cpar__runner_fill(&rep, res) < 0)
        cpar__runner_fallback(r, &rep);
    Py_XDECREF(res);
    Py_XDECREF(frames);
    if (shm_ok)
        cpar__runner_offload(r, &rep, parent);
    if (cpar__runner_bytes(&rep) > e->socket_max) {
        /* Past this the controller's and the client's signature checks outlast the
         * heartbeat timeout: a clear error instead (the client's requests are bounded
         * the same way). */
        PyErr_Format(PyExc_ValueError,
                     "cpar: engine %d's result of %llu bytes is over the %llu bytes a reply may "
                     "carry through the sockets (CPAR_SOCKET_MAX; shared memory carries more, "
                     "between processes on one host)",
                     (int)e->id, (unsigned long long)cpar__runner_bytes(&rep),
                     (unsigned long long)e->socket_max);
        cpar__runner_fallback(r, &rep);
    }

    /* A failed EXECUTE aborts the direct requests queued behind it: those waiting in the
     * DEALER (the I/O thread may not have read them while this one ran) are read first. */
    if (type == CPAR_MSG_EXECUTE && !aborted && rep.h.status != 0) {
        Py_BEGIN_ALLOW_THREADS
        cpar_io_direct_pull(e);
        Py_END_ALLOW_THREADS
    }
    pthread_mutex_lock(&e->lock);
    e->running = 0;
    e->queued--;
    interrupted = e->interrupt_sent;
    /* The code failed by itself (not interrupted by a client's INTERRUPT or ABORT): the
     * tasks handed to us so far, in order, are aborted. */
    if (type == CPAR_MSG_EXECUTE && !aborted && !interrupted && rep.h.status != 0)
        r->abort_next = e->queued;
    cpar_capture_take(&e->capture, &pending);
    pthread_mutex_unlock(&e->lock);
    if (interrupted) {
        /* An interrupt sent for this task may not have reached Python yet: a system call
         * makes the kernel deliver it now, and the handler's exception is dropped. */
        sigset_t set;
        sigpending(&set);
        cpar__runner_clear_signals();
    }

    /* Every STREAM of this request goes out before its REPLY: sent here on the DEALER
     * when the I/O thread lets us (it sent its own earlier chunks in an earlier turn),
     * else through the PAIR (one FIFO to the I/O thread, which sends its own earlier
     * chunks before it reads the next message from us). */
    if (cpar__runner_send_direct(r, &pending, parent, &rep) != 0) {
        CPAR_TSAN_RELEASE(e); /* the captured text passes to the I/O thread (tsan.h) */
        if (pending.n > 0)
            cpar_capture_send(&pending, r->pair, r->signer, e->id, parent);
        cpar__runner_send(r, &rep);
    }
    cpar_zc_drain();
}

/* Imports what the loop needs; returns 0 or -1 with a Python exception set. */
static int
cpar__runner_setup(cpar__runner *r)
{
    PyObject *mod = NULL, *rt = NULL, *pickle = NULL;

    mod = PyImport_ImportModule("_cpar_engine");
    if (mod == NULL)
        goto error;
    r->frame_type = PyObject_GetAttrString(mod, "Frame");
    if (r->frame_type == NULL)
        goto error;
    rt = PyImport_ImportModule("cpar.engine.runtime");
    if (rt == NULL)
        goto error;
    r->run_task = PyObject_GetAttrString(rt, "run_task");
    r->error_frames = PyObject_GetAttrString(rt, "error_frames");
    r->abort_frames = PyObject_GetAttrString(rt, "aborted_by_client");
    if (r->run_task == NULL || r->error_frames == NULL || r->abort_frames == NULL)
        goto error;
    pickle = PyImport_ImportModule("pickle");
    if (pickle == NULL)
        goto error;
    r->fallback = PyObject_CallMethod(
        pickle, "dumps", "({s:s,s:s,s:s,s:i})", "ename", "EngineError", "evalue",
        "the engine failed to report this task's outcome", "traceback", "", "engine_id", -1);
    if (r->fallback == NULL || !PyBytes_Check(r->fallback))
        goto error;
    Py_DECREF(mod);
    Py_DECREF(rt);
    Py_DECREF(pickle);
    return 0;
error:
    Py_XDECREF(mod);
    Py_XDECREF(rt);
    Py_XDECREF(pickle);
    return -1;
}

/* Tells runtime our id once registered; GIL held. Sets the attribute without running
 * bytecode, so a stray SIGINT cannot interrupt it. Returns 0 or -1 (exception set). */
static int
cpar__runner_init_runtime(int32_t id)
{
    PyObject *rt = PyImport_ImportModule("cpar.engine.runtime");
    PyObject *v = NULL;
    int rc = -1;
    if (rt == NULL)
        return -1;
    v = PyLong_FromLong((long)id);
    if (v != NULL)
        rc = PyObject_SetAttrString(rt, "engine_id", v);
    Py_XDECREF(v);
    Py_DECREF(rt);
    return rc;
}

/* runtime.preload(): imports what the first requests would wait for ($CPAR_ENGINE_PRELOAD);
 * the I/O thread queues what arrives meanwhile. GIL held; failures are logged, never fatal. */
static void
cpar__runner_preload(void)
{
    PyObject *rt = PyImport_ImportModule("cpar.engine.runtime");
    PyObject *res = rt != NULL ? PyObject_CallMethod(rt, "preload", NULL) : NULL;
    if (res == NULL) {
        cpar_elog("cpar.engine.runtime.preload failed:");
        PyErr_Print();
    }
    Py_XDECREF(res);
    Py_XDECREF(rt);
    cpar__runner_clear_signals();
}

int
cpar_runner_run(cpar_engine *e)
{
    cpar__runner r;
    cpar_engine_ctl ctl;
    int zero = 0, timeout_ms = 500, status = 1;

    memset(&r, 0, sizeof(r));
    r.e = e;
    if (cpar__runner_setup(&r) < 0) {
        cpar_elog("cannot load cpar.engine.runtime (is cpar importable by this Python?):");
        PyErr_Print();
        goto error;
    }
    if (cpar_signer_new(e->key, e->keylen, &r.signer) != 0) {
        cpar_elog("cannot make an HMAC signer");
        goto error;
    }
    r.pair = zmq_socket(e->zctx, ZMQ_PAIR);
    if (r.pair == NULL)
        goto error;
    zmq_setsockopt(r.pair, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(r.pair, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(r.pair, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(r.pair, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    if (zmq_connect(r.pair, CPAR_ENGINE_PAIR_URL) != 0) {
        cpar_elog("cannot connect %s: %s", CPAR_ENGINE_PAIR_URL, zmq_strerror(zmq_errno()));
        goto error;
    }
    e->main_thread = pthread_self();
    if (cpar_io_start(e) < 0)
        goto error;

    /* Registration first: the I/O thread reports our id or the failure. */
    if (cpar__runner_recv(&r, &ctl) < 0)
        goto error;
    if (ctl.kind != CPAR_CTL_REGISTERED) {
        status = ctl.kind == CPAR_CTL_FAILED ? ctl.value : 2;
        goto error;
    }
    if (cpar__runner_init_runtime(e->id) < 0) {
        cpar_elog("cannot set cpar.engine.runtime.engine_id:");
        PyErr_Print();
        goto error;
    }
    cpar__runner_preload();
    for (;;) {
        if (cpar__runner_wait(&r, &ctl) < 0)
            goto error;
        if (ctl.kind == CPAR_CTL_TASK) {
            if (atomic_load(&e->stopping)) {
                pthread_mutex_lock(&e->lock);
                e->queued--;
                pthread_mutex_unlock(&e->lock);
                cpar_msg_close(ctl.msg);
                free(ctl.msg);
            } else {
                cpar__runner_task(&r, ctl.msg);
            }
        } else if (ctl.kind == CPAR_CTL_DRAIN) {
            cpar_zc_drain();
        } else if (ctl.kind == CPAR_CTL_STOP) {
            status = ctl.value;
            break;
        }
    }
error:
    if (r.pair != NULL) {
        cpar_engine_ctl quit = {.kind = CPAR_CTL_QUIT};
        if (e->io_started)
            zmq_send(r.pair, &quit, sizeof(quit), 0);
        Py_BEGIN_ALLOW_THREADS
        cpar_io_join(e);
        Py_END_ALLOW_THREADS
        zmq_close(r.pair);
    }
    cpar_signer_free(r.signer);
    Py_XDECREF(r.frame_type);
    Py_XDECREF(r.run_task);
    Py_XDECREF(r.error_frames);
    Py_XDECREF(r.abort_frames);
    Py_XDECREF(r.fallback);
    return status;
}
