/* cpar._core.Controller: the C controller loop (controller.h) as a Python object; run()
 * enters the loop with the GIL released. */
#include "module.h"

#include <structmember.h>

#include "controller.h"
#include "errors.h"
#include "exceptions.h"

enum cpar__ctl_state {
    CPAR__CTL_READY,   /* bound, not run yet */
    CPAR__CTL_RUNNING, /* some thread is inside run() */
    CPAR__CTL_DONE,    /* run() returned; sockets still bound until close/dealloc */
    CPAR__CTL_CLOSED,  /* freed */
};

typedef struct {
    PyObject_HEAD cpar_controller *c; /* owned; NULL once closed */
    int state;                        /* enum cpar__ctl_state; read and written with the GIL held */
    PyObject *client_url;             /* str: endpoint bound for clients */
    PyObject *engine_url;             /* str: endpoint bound for engines */
} cpar_ControllerObject;

/* Reads Controller()'s arguments into cfg (all but its key) and *key (borrowed), checking
 * their ranges. 0, or -1 with an exception set. */
static int
controller_parse(PyObject *args, PyObject *kwds, cpar_controller_config *cfg, PyObject **key)
{
    static char *kwlist[] = {"client_url",
                             "engine_url",
                             "key",
                             "log_path",
                             "hb_period_ms",
                             "hb_timeout_ms",
                             "scheme",
                             "hwm",
                             "max_records",
                             "curve_secret",
                             "curve_allowed",
                             "replay_window_ms",
                             "replay_ids",
                             "max_message",
                             "db",
                             "db_file",
                             "db_max_records",
                             "db_max_bytes",
                             "db_keep_bytes",
                             "cluster_id",
                             "recover",
                             "recover_grace_ms",
                             NULL};
    long long window = 0, ids = 0, maxmsg = 0, dbrec = 0, dbbytes = 0, dbkeep = 0;
    long long grace = 60000;
    int recover = 0;

    cfg->hb_period_ms = 500;
    cfg->hb_timeout_ms = 3000;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "ssO|ziizii$zzLLLzzLLLzpL:Controller", kwlist, &cfg->client_url,
            &cfg->engine_url, key, &cfg->log_path, &cfg->hb_period_ms, &cfg->hb_timeout_ms,
            &cfg->scheme, &cfg->hwm, &cfg->max_records, &cfg->curve_secret, &cfg->curve_allowed,
            &window, &ids, &maxmsg, &cfg->db, &cfg->db_file, &dbrec, &dbbytes, &dbkeep,
            &cfg->cluster_id, &recover, &grace))
        return -1;
    if (grace < 0) {
        PyErr_Format(PyExc_ValueError, "recover_grace_ms must be >= 0 (0: no grace period)");
        return -1;
    }
    cfg->recover = recover;
    cfg->recover_grace_ms = grace;
    if (recover && (cfg->db == NULL || strcmp(cfg->db, "sqlite") != 0 || cfg->db_file == NULL)) {
        PyErr_Format(PyExc_ValueError,
                     "recover=True needs the task database in a file (db='sqlite' and its "
                     "db_file): with db=%s there is nothing to recover from",
                     cfg->db ? cfg->db : "None");
        return -1;
    }
    if (recover && cfg->curve_secret != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "a CURVE cluster cannot be recovered: its server secret key never left the "
                     "controller that died");
        return -1;
    }
    if (dbrec < 0 || dbbytes < 0 || dbkeep < 0) {
        PyErr_Format(PyExc_ValueError, "db_max_records, db_max_bytes and db_keep_bytes must be "
                                       ">= 0 (0: the default)");
        return -1;
    }
    if (cfg->db != NULL && strcmp(cfg->db, "sqlite") != 0 && strcmp(cfg->db, "memory") != 0 &&
        strcmp(cfg->db, "none") != 0) {
        PyErr_Format(PyExc_ValueError, "db must be 'sqlite', 'memory' or 'none', not '%s'",
                     cfg->db);
        return -1;
    }
    cfg->db_max_records = dbrec;
    cfg->db_max_bytes = dbbytes;
    cfg->db_keep_bytes = dbkeep;
    if (window < 0 || ids < 0 || maxmsg < 0) {
        PyErr_Format(PyExc_ValueError, "replay_window_ms, replay_ids and max_message must be >= 0 "
                                       "(0: the default)");
        return -1;
    }
    cfg->replay_window_ms = window;
    cfg->replay_ids = ids;
    cfg->max_message = maxmsg;
    if (cfg->hb_period_ms <= 0 || cfg->hb_timeout_ms <= 0) {
        PyErr_Format(PyExc_ValueError, "heartbeat period and timeout must be positive");
        return -1;
    }
    if (cfg->hwm < -1) {
        PyErr_Format(PyExc_ValueError, "hwm must be >= 0 (0: no limit) or -1 (adaptive), not %d",
                     cfg->hwm);
        return -1;
    }
    if (cfg->max_records < 0) {
        PyErr_Format(PyExc_ValueError, "max_records must be >= 0, not %d", cfg->max_records);
        return -1;
    }
    return 0;
}

/* Controller(client_url, engine_url, key, log_path=None, hb_period_ms=500,
 *            hb_timeout_ms=3000, scheme="leastload", hwm=0, max_records=100000,
 *            curve_secret=None, curve_allowed=None, replay_window_ms=0, replay_ids=0,
 *            max_message=0, db=None, db_file=None, db_max_records=0, db_max_bytes=0,
 *            db_keep_bytes=0, cluster_id="", recover=False, recover_grace_ms=60000)
 * --
 * With curve_secret, curve_allowed lists the client and engine public keys allowed in
 * (Z85, comma-separated); replay_window_ms and replay_ids tune the replay check (0: the
 * defaults), max_message is the largest frame a peer may send (0: no limit). db is the
 * task database ("sqlite" in db_file, "memory", or None / "none": none) and its bounds
 * (0: the defaults; docs/taskdb.md). cluster_id is kept in the database with a hash of
 * the key; recover=True starts from an existing db_file of this cluster and key
 * (docs/recovery.md), whose engines are awaited for recover_grace_ms (also told to
 * engines in REGISTER_REPLY; 0: no grace period).
 * Binds the controller's two ROUTER sockets ("tcp://127.0.0.1:*" picks a port). The
 * endpoints actually bound are the attributes client_url and engine_url. */
static PyObject *
controller_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    cpar_controller_config cfg = {0};
    cpar_ControllerObject *self;
    PyObject *key;
    Py_buffer view;
    char err[512] = "";
    int rc;

    if (controller_parse(args, kwds, &cfg, &key) < 0)
        return NULL;
    self = (cpar_ControllerObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = CPAR__CTL_CLOSED;
    if (cpar_module_key_view(key, &view) < 0)
        goto error;
    cfg.key = view.buf;
    cfg.keylen = (size_t)view.len;
    Py_BEGIN_ALLOW_THREADS
    rc = cpar_controller_new(&cfg, &self->c, err, sizeof(err));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc != 0) {
        self->c = NULL;
        cpar_exc_set(rc, 0, "cannot start the controller: %s", err[0] ? err : "failed");
        goto error;
    }
    self->state = CPAR__CTL_READY;
    self->client_url = PyUnicode_FromString(cpar_controller_client_endpoint(self->c));
    if (self->client_url == NULL)
        goto error;
    self->engine_url = PyUnicode_FromString(cpar_controller_engine_endpoint(self->c));
    if (self->engine_url == NULL)
        goto error;
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

/* Frees the loop, if not yet freed, with the GIL released; the object is closed after.
 * Not while run() runs. */
static void
controller_free_loop(cpar_ControllerObject *self)
{
    cpar_controller *c = self->c;
    self->c = NULL;
    self->state = CPAR__CTL_CLOSED;
    if (c != NULL) {
        Py_BEGIN_ALLOW_THREADS
        cpar_controller_free(c);
        Py_END_ALLOW_THREADS
    }
}

static void
controller_dealloc(cpar_ControllerObject *self)
{
    /* run() holds a reference while it runs, so the loop cannot be running here. */
    controller_free_loop(self);
    Py_CLEAR(self->client_url);
    Py_CLEAR(self->engine_url);
    cpar_module_free_instance((PyObject *)self);
}

/* run()
 * --
 * Runs the controller loop, with the GIL released, until a SHUTDOWN with the hub flag
 * completes or stop() is called. Raises if the loop fails. Runs at most once. */
static PyObject *
controller_run(cpar_ControllerObject *self, PyObject *Py_UNUSED(ignored))
{
    int rc;
    if (self->state != CPAR__CTL_READY)
        return PyErr_Format(PyExc_RuntimeError, "the controller is %s",
                            self->state == CPAR__CTL_RUNNING ? "already running"
                            : self->state == CPAR__CTL_DONE  ? "done (run() returned)"
                                                             : "closed");
    self->state = CPAR__CTL_RUNNING;
    Py_BEGIN_ALLOW_THREADS
    rc = cpar_controller_run(self->c);
    Py_END_ALLOW_THREADS
    self->state = CPAR__CTL_DONE;
    if (rc != 0)
        return cpar_exc_set(rc, 0, "the controller loop failed");
    Py_RETURN_NONE;
}

/* stop()
 * --
 * Asks a running loop to stop (from any thread); run() returns soon after. */
static PyObject *
controller_stop(cpar_ControllerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->c != NULL)
        cpar_controller_stop(self->c);
    Py_RETURN_NONE;
}

/* install_signal_stop()
 * --
 * Makes SIGINT and SIGTERM stop this controller (for the dedicated controller process;
 * replaces Python's handlers for those signals). */
static PyObject *
controller_install_signal_stop(cpar_ControllerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->c == NULL)
        return PyErr_Format(PyExc_RuntimeError, "the controller is closed");
    cpar_controller_install_signal_stop(self->c);
    Py_RETURN_NONE;
}

/* close()
 * --
 * Unbinds the sockets and frees the controller. Not while run() runs (stop it first). */
static PyObject *
controller_close(cpar_ControllerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == CPAR__CTL_RUNNING)
        return PyErr_Format(PyExc_RuntimeError, "the controller is running: stop() it first");
    controller_free_loop(self);
    Py_RETURN_NONE;
}

static PyObject *
controller_repr(cpar_ControllerObject *self)
{
    static const char *names[] = {"ready", "running", "done", "closed"};
    return PyUnicode_FromFormat("<cpar._core.Controller clients=%R engines=%R %s>",
                                self->client_url ? self->client_url : Py_None,
                                self->engine_url ? self->engine_url : Py_None, names[self->state]);
}

static PyObject *
controller_get_running(cpar_ControllerObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->state == CPAR__CTL_RUNNING);
}

static PyMemberDef controller_members[] = {
    {"client_url", T_OBJECT, offsetof(cpar_ControllerObject, client_url), READONLY,
     "endpoint bound for clients"},
    {"engine_url", T_OBJECT, offsetof(cpar_ControllerObject, engine_url), READONLY,
     "endpoint bound for engines"},
    {NULL},
};

static PyGetSetDef controller_getset[] = {
    {"running", (getter)controller_get_running, NULL, "True while run() runs", NULL},
    {NULL},
};

static PyMethodDef controller_methods[] = {
    {"run", (PyCFunction)controller_run, METH_NOARGS,
     PyDoc_STR("run()\n--\n\nRun the loop (GIL released) until shutdown or stop().")},
    {"stop", (PyCFunction)controller_stop, METH_NOARGS,
     PyDoc_STR("stop()\n--\n\nAsk the loop to stop (thread-safe).")},
    {"install_signal_stop", (PyCFunction)controller_install_signal_stop, METH_NOARGS,
     PyDoc_STR("install_signal_stop()\n--\n\nMake SIGINT/SIGTERM stop the controller.")},
    {"close", (PyCFunction)controller_close, METH_NOARGS,
     PyDoc_STR("close()\n--\n\nUnbind and free the controller (not while running).")},
    {NULL},
};

PyDoc_STRVAR(controller_doc,
             "Controller(client_url, engine_url, key, log_path=None, hb_period_ms=500, "
             "hb_timeout_ms=3000, scheme='leastload', hwm=0, max_records=100000, *, "
             "curve_secret=None, curve_allowed=None, replay_window_ms=0, replay_ids=0, "
             "max_message=0, db=None, db_file=None, db_max_records=0, db_max_bytes=0, "
             "db_keep_bytes=0)\n--\n\n"
             "The cpar controller: binds its sockets at creation; run() serves.");

static PyType_Slot controller_slots[] = {
    {Py_tp_doc, (void *)controller_doc}, {Py_tp_new, controller_new},
    {Py_tp_dealloc, controller_dealloc}, {Py_tp_repr, controller_repr},
    {Py_tp_methods, controller_methods}, {Py_tp_members, controller_members},
    {Py_tp_getset, controller_getset},   {0, NULL},
};

PyType_Spec cpar_controller_spec = {
    .name = "cpar._core.Controller",
    .basicsize = sizeof(cpar_ControllerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = controller_slots,
};
