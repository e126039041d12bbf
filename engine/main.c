/* cpar-engine's entry point: command line, the embedded interpreter (PyConfig, adopting the
 * environment of a given python executable), the connection file, and orderly exit.
 *
 * Threads: everything here runs on the main thread. The I/O thread is started and joined
 * by the runner (runner.c); by the time Python is finalized it has ended. */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "zerocopy.h"

#ifndef CPAR_BUILD_PYTHON
#define CPAR_BUILD_PYTHON "python3"
#endif

#define CPAR__CONN_WAIT_MS 30000 /* how long to wait for the connection file to appear */
#define CPAR__EXIT_WAIT_MS 10000 /* finalization longer than this (threads left running) */

/* $CPAR_RECOVER_GRACE (seconds) into *ms when it is set and not empty. 0, or -1 after
 * logging what is wrong with it. */
static int
cpar__recover_grace(int *ms)
{
    const char *v = getenv("CPAR_RECOVER_GRACE");
    char *end = NULL;
    double t;

    if (v == NULL || *v == '\0')
        return 0;
    errno = 0;
    t = strtod(v, &end);
    while (end != NULL && (*end == ' ' || *end == '\t' || *end == '\n'))
        end++;
    if (end == v || *end != '\0' || errno != 0 || !(t >= 0 && t <= 1e6)) {
        cpar_elog("CPAR_RECOVER_GRACE must be a number of seconds from 0 to 1000000, not '%s'", v);
        return -1;
    }
    *ms = (int)(t * 1000 + 0.5);
    return 0;
}

/* Starts the embedded interpreter as if `python` had been run. Returns 0 or -1 (logged). */
static int
cpar__start_python(const char *python, const char *argv0)
{
    PyConfig config;
    PyStatus st;
    char *pyargv[1] = {(char *)argv0};

    if (strchr(python, '/') != NULL && access(python, X_OK) != 0) {
        cpar_elog("--python %s: %s (the engine adopts that python's environment)", python,
                  strerror(errno));
        return -1;
    }
    if (PyImport_AppendInittab("_cpar_engine", cpar_engine_module_init) < 0) {
        cpar_elog("cannot register the _cpar_engine module");
        return -1;
    }
    /* Python installs its SIGINT handler only over the default disposition. An engine
     * started from a background shell job or nohup inherits SIGINT ignored, and would
     * then never turn an interrupt request into KeyboardInterrupt. */
    signal(SIGINT, SIG_DFL);
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.install_signal_handlers = 1; /* SIGINT -> KeyboardInterrupt */
    /* program_name decides the path calculation: next to it, pyvenv.cfg makes a venv's
     * sys.prefix and site-packages ours, as for `python` itself. */
    st = PyConfig_SetBytesString(&config, &config.program_name, python);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesArgv(&config, 1, pyargv);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        cpar_elog("cannot start Python for %s: %s%s%s", python, st.func ? st.func : "",
                  st.func ? ": " : "", st.err_msg ? st.err_msg : "(no message)");
        return -1;
    }
    return 0;
}

/* Waits up to CPAR__CONN_WAIT_MS for the file at path to appear (an engine may start
 * before its controller has written it). Returns 0, or -1 (logged) when it did not. */
static int
cpar__wait_for_file(const char *path)
{
    struct timespec pause = {0, 100 * 1000000L};

    for (int waited = 0;; waited += 100) {
        if (access(path, F_OK) == 0)
            return 0;
        if (errno != ENOENT || waited >= CPAR__CONN_WAIT_MS)
            break;
        if (waited == 0)
            cpar_elog_info("waiting for the connection file %s", path);
        nanosleep(&pause, NULL);
    }
    cpar_elog("cannot open the connection file %s: %s", path, strerror(errno));
    return -1;
}

/* Copies one CurveZMQ key (a str) into dest. GIL held. 0, or -1 with an exception set. */
static int
cpar__conn_curve_key(PyObject *v, const char *name, char *dest)
{
    const char *s = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
    if (s == NULL || !cpar_curve_key_valid(s)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be 40 Z85 characters", name);
        return -1;
    }
    memcpy(dest, s, CPAR_CURVE_KEY_LEN + 1);
    return 0;
}

/* Loads engine_url, key, heartbeat settings and CURVE keys from the connection file into
 * e: cpar.connfile.engine_fields (the one reader of the format, shared with the client
 * and the launchers) reads and checks it; this copies its fields. GIL held. Returns 0
 * or -1 (logged). */
static int
cpar__read_connection(cpar_engine *e, const char *path)
{
    PyObject *mod = NULL, *t = NULL;
    PyObject *url, *key, *curve;
    const char *s;
    Py_ssize_t len;

    if (cpar__wait_for_file(path) < 0)
        return -1;
    mod = PyImport_ImportModule("cpar.connfile");
    if (mod == NULL)
        goto error;
    t = PyObject_CallMethod(mod, "engine_fields", "s", path);
    if (t == NULL)
        goto error;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
        PyErr_SetString(PyExc_TypeError, "cpar.connfile.engine_fields must return 5 fields");
        goto error;
    }
    url = PyTuple_GET_ITEM(t, 0);   /* borrowed */
    key = PyTuple_GET_ITEM(t, 1);   /* borrowed */
    curve = PyTuple_GET_ITEM(t, 4); /* borrowed */
    s = PyUnicode_Check(url) ? PyUnicode_AsUTF8(url) : NULL;
    if (s == NULL || !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_ValueError, "the connection file needs engine_url and key strings");
        goto error;
    }
    if ((e->engine_url = strdup(s)) == NULL)
        goto error;
    len = PyBytes_GET_SIZE(key);
    if (len < 1 || len > CPAR_SIGN_MAX_KEY) {
        PyErr_SetString(PyExc_ValueError, "the key must be 1 to 256 bytes");
        goto error;
    }
    memcpy(e->key, PyBytes_AS_STRING(key), (size_t)len);
    e->keylen = (size_t)len;
    e->hb_period_ms = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 2));
    e->hb_timeout_ms = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 3));
    if (PyErr_Occurred())
        goto error;
    memset(&e->curve, 0, sizeof(e->curve));
    if (curve != Py_None &&
        (!PyTuple_Check(curve) || PyTuple_GET_SIZE(curve) != 3 ||
         cpar__conn_curve_key(PyTuple_GET_ITEM(curve, 0), "curve_serverkey", e->curve.server) < 0 ||
         cpar__conn_curve_key(PyTuple_GET_ITEM(curve, 1), "curve_publickey", e->curve.pub) < 0 ||
         cpar__conn_curve_key(PyTuple_GET_ITEM(curve, 2), "curve_secretkey", e->curve.sec) < 0))
        goto error;
    Py_DECREF(t);
    Py_DECREF(mod);
    return 0;
error:
    cpar_elog("bad connection file %s:", path);
    if (PyErr_Occurred())
        PyErr_Print();
    Py_XDECREF(t);
    Py_XDECREF(mod);
    return -1;
}

/* sys.stdout/stderr become the engine's streams; '' leads sys.path as for `python -c`.
 * GIL held. Returns 0 or -1 (exception set). */
static int
cpar__install_streams(void)
{
    PyObject *mod = PyImport_ImportModule("_cpar_engine");
    PyObject *out = NULL, *err = NULL, *path, *empty = NULL;
    int rc = -1;

    if (mod == NULL)
        return -1;
    out = PyObject_GetAttrString(mod, "stdout");
    err = PyObject_GetAttrString(mod, "stderr");
    if (out == NULL || err == NULL)
        goto error;
    if (PySys_SetObject("stdout", out) < 0 || PySys_SetObject("stderr", err) < 0)
        goto error;
    path = PySys_GetObject("path"); /* borrowed */
    empty = PyUnicode_FromString("");
    if (path != NULL && empty != NULL && PyList_Check(path) && PyList_Insert(path, 0, empty) < 0)
        goto error;
    rc = 0;
error:
    Py_XDECREF(mod);
    Py_XDECREF(out);
    Py_XDECREF(err);
    Py_XDECREF(empty);
    return rc;
}

/* Python's fault handler writes crash tracebacks to the log (sys.stderr has no fd here).
 * GIL held; failures are only logged. */
static void
cpar__enable_faulthandler(void)
{
    PyObject *fh = PyImport_ImportModule("faulthandler");
    PyObject *kw = NULL, *args = NULL, *enable = NULL, *res = NULL;

    if (fh != NULL && (enable = PyObject_GetAttrString(fh, "enable")) != NULL &&
        (args = PyTuple_New(0)) != NULL &&
        (kw = Py_BuildValue("{s:i,s:O}", "file", cpar_elog_fd(), "all_threads", Py_True)) != NULL)
        res = PyObject_Call(enable, args, kw);
    if (res == NULL) {
        cpar_elog("cannot enable faulthandler:");
        PyErr_Print();
    }
    Py_XDECREF(res);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    Py_XDECREF(enable);
    Py_XDECREF(fh);
}

static int cpar__exit_status; /* read by the watchdog thread */

/* Ends the process if finalization hangs: Py_FinalizeEx joins every non-daemon thread a
 * task started, and a thread that never ends must not leave a stray engine behind. */
static void *
cpar__exit_watchdog(void *arg)
{
    struct timespec t = {CPAR__EXIT_WAIT_MS / 1000, (CPAR__EXIT_WAIT_MS % 1000) * 1000000L};
    (void)arg;
    nanosleep(&t, NULL);
    cpar_elog("still finalizing after %d ms (threads started by tasks?); exiting now",
              CPAR__EXIT_WAIT_MS);
    cpar_elog_close();
    _exit(cpar__exit_status);
}

static void
cpar__start_exit_watchdog(int status)
{
    pthread_t t;
    sigset_t all, old;

    cpar__exit_status = status;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (pthread_create(&t, NULL, cpar__exit_watchdog, NULL) == 0)
        pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Logs sys.executable, sys.prefix and the libpython (what environment we adopted). */
static void
cpar__log_environment(const char *python, const char *libpython)
{
    PyObject *exe = PySys_GetObject("executable"); /* borrowed */
    PyObject *prefix = PySys_GetObject("prefix");  /* borrowed */
    const char *se = exe && PyUnicode_Check(exe) ? PyUnicode_AsUTF8(exe) : NULL;
    const char *sp = prefix && PyUnicode_Check(prefix) ? PyUnicode_AsUTF8(prefix) : NULL;
    PyErr_Clear();
    cpar_elog_info("python %s: sys.executable=%s sys.prefix=%s libpython=%s", python, se ? se : "?",
                   sp ? sp : "?", libpython ? libpython : "(linked)");
}

/* The shared-library build exports this one symbol (the launcher looks it up); the
 * rest stays hidden (-fvisibility=hidden). */
#ifdef CPAR_ENGINE_SHARED
__attribute__((visibility("default")))
#endif
int
cpar_engine_run(const char *argv0, const cpar_engine_args *args)
{
    cpar_engine e;
    const char *python = args->python;
    int status = 1;

    if (cpar_elog_open(args->log, args->quiet) < 0)
        return 1;
    memset(&e, 0, sizeof(e));
    pthread_mutex_init(&e.lock, NULL);
    pthread_mutex_init(&e.io_turn, NULL);
    e.io_wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* -1: no direct sends */
    /* -1: no direct receives (io_direct.c) */
    e.io_watchfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    cpar_capture_init(&e.capture);
    cpar_shm_pins_init(&e.pins);
    e.shm = cpar_shm_enabled();
    e.requested_id = args->id;
    e.register_timeout_ms = CPAR_ENGINE_REGISTER_TIMEOUT_MS;
    if (getenv("CPAR_REGISTER_TIMEOUT") != NULL) {
        double t = atof(getenv("CPAR_REGISTER_TIMEOUT"));
        if (t > 0 && t < 1e6)
            e.register_timeout_ms = (int)(t * 1000);
    }
    e.recover_grace_ms = -1;
    if (cpar__recover_grace(&e.recover_grace_ms) < 0) {
        status = 2;
        goto done;
    }
    e.socket_max = CPAR_ENGINE_SOCKET_MAX;
    if (getenv("CPAR_SOCKET_MAX") != NULL) {
        unsigned long long v = strtoull(getenv("CPAR_SOCKET_MAX"), NULL, 10);
        if (v > 0)
            e.socket_max = v;
    }
    e.pin_timeout_ns = CPAR_SHM_PIN_TIMEOUT_NS;
    if (getenv("CPAR_SHM_PIN_TIMEOUT") != NULL) {
        double t = atof(getenv("CPAR_SHM_PIN_TIMEOUT"));
        if (t > 0 && t < 1e6)
            e.pin_timeout_ns = (uint64_t)(t * 1e9);
    }
    e.id = -1;
    cpar_capture_set_engine(&e);
    cpar_elog_info("starting (pid %d, connection file %s)", (int)getpid(), args->connection_file);

    if (cpar__start_python(python, argv0) < 0)
        goto done;
    cpar__log_environment(python, args->libpython);
    if (cpar__install_streams() < 0) {
        PyErr_Print();
        goto finalize;
    }
    cpar__enable_faulthandler();
    if (cpar__read_connection(&e, args->connection_file) < 0)
        goto finalize;
    e.zctx = zmq_ctx_new();
    if (e.zctx == NULL) {
        cpar_elog("cannot create a ZMQ context: %s", zmq_strerror(zmq_errno()));
        goto finalize;
    }
    status = cpar_runner_run(&e);
    /* Nobody will read pinned replies any more (the I/O thread has ended). */
    pthread_mutex_lock(&e.lock);
    cpar_shm_pins_free(&e.pins);
    pthread_mutex_unlock(&e.lock);
    cpar_zc_drain();
    cpar__start_exit_watchdog(status);
    Py_BEGIN_ALLOW_THREADS
    zmq_ctx_term(e.zctx); /* lingers until the last reply has gone out */
    Py_END_ALLOW_THREADS
    cpar_zc_drain();
finalize:
    if (Py_FinalizeEx() < 0 && status == 0)
        status = 120;
done:
    cpar_elog_info("exiting with status %d", status);
    pthread_mutex_lock(&e.lock);
    cpar_capture_free(&e.capture);
    pthread_mutex_unlock(&e.lock);
    free(e.engine_url);
    if (e.io_wakefd >= 0)
        close(e.io_wakefd);
    if (e.io_watchfd >= 0)
        close(e.io_watchfd);
    cpar_elog_close();
    return status;
}

#ifndef CPAR_ENGINE_SHARED
/* The linked build (libpython a dependency of the binary: the sanitizer engines of the
 * Makefile). The installed engine is launch/launch.c over libcpar-engine.so instead. */
int
main(int argc, char **argv)
{
    cpar_engine_args args;
    int pr = cpar_engine_parse_args(argc, argv, &args);

    if (pr != 0) {
        cpar_engine_usage(pr > 0 ? stdout : stderr, CPAR_BUILD_PYTHON);
        return pr > 0 ? 0 : 2;
    }
    if (args.python == NULL)
        args.python = CPAR_BUILD_PYTHON;
    return cpar_engine_run(argv[0], &args);
}
#endif
