/* cpar._core.Connection: a client's socket to the controller, driven by a C I/O thread
 * (clientio.h); Python threads send through it and wait on it with the GIL released. */
#include "module.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "clientio.h"
#include "errors.h"
#include "exceptions.h"
#include "zerocopy.h"

/* Longest wait without the GIL before checking for signals (Ctrl-C) in recv. */
#define CPAR__RECV_SLICE_MS 200

Py_ssize_t cpar_debug_connections_alive;

typedef struct {
    PyObject_HEAD cpar_clientio *io; /* owned; closed by close(), freed by dealloc */
    PyObject *url;                   /* str */
} cpar_ConnectionObject;

static double
cpar__monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
connection_dealloc(cpar_ConnectionObject *self)
{
    if (self->io != NULL) {
        Py_BEGIN_ALLOW_THREADS
        cpar_clientio_free(self->io);
        Py_END_ALLOW_THREADS
        self->io = NULL;
        cpar_zc_drain();
    }
    Py_CLEAR(self->url);
    cpar_debug_connections_alive--;
    cpar_module_free_instance((PyObject *)self);
}

/* The CURVE keys of Connection(), named names[i] in messages: *cp is NULL when none is
 * given, else curve filled. 0, or -1 with ValueError when one is missing or malformed. */
static int
connection_curve(const char *const keys[3], char *const names[3], cpar_curve *curve,
                 const cpar_curve **cp)
{
    *cp = NULL;
    if (keys[0] == NULL && keys[1] == NULL && keys[2] == NULL)
        return 0;
    for (int i = 0; i < 3; i++)
        if (!cpar_curve_key_valid(keys[i])) {
            PyErr_Format(PyExc_ValueError,
                         "CURVE needs three keys of 40 Z85 characters (server, public, secret); "
                         "%s is %s",
                         names[i], keys[i] ? "malformed" : "missing");
            return -1;
        }
    snprintf(curve->server, sizeof(curve->server), "%s", keys[0]);
    snprintf(curve->pub, sizeof(curve->pub), "%s", keys[1]);
    snprintf(curve->sec, sizeof(curve->sec), "%s", keys[2]);
    *cp = curve;
    return 0;
}

/* Connection(url, key, curve_serverkey=None, curve_publickey=None, curve_secretkey=None, *,
 *            shm=True)
 * --
 * Connects to the controller's client endpoint `url`, signing with `key` (bytes or str;
 * a str is used as its UTF-8 bytes), encrypting with CurveZMQ when the three keys are
 * given, and starts the I/O thread. shm=False: never the shared-memory path. */
static PyObject *
connection_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"url", "key", "curve_serverkey", "curve_publickey", "curve_secretkey",
                             "shm", NULL};
    const char *url, *keys[3] = {NULL, NULL, NULL};
    cpar_ConnectionObject *self;
    PyObject *key;
    const cpar_curve *cp;
    cpar_curve curve;
    Py_buffer view;
    char err[512];
    int shm = 1, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sO|zzz$p:Connection", kwlist, &url, &key,
                                     &keys[0], &keys[1], &keys[2], &shm))
        return NULL;
    if (connection_curve(keys, kwlist + 2, &curve, &cp) < 0)
        return NULL;
    self = (cpar_ConnectionObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    cpar_debug_connections_alive++;
    self->url = PyUnicode_FromString(url);
    if (self->url == NULL || cpar_module_key_view(key, &view) < 0)
        goto error;
    rc = cpar_clientio_open(url, view.buf, (size_t)view.len, cp, shm ? 0u : CPAR_CLIENTIO_NO_SHM,
                            &self->io, err, sizeof(err));
    PyBuffer_Release(&view);
    if (rc != 0) {
        cpar_exc_set_message(rc, err);
        goto error;
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

/* send(type, frames=(), *, msg_id, parent=b"", target=-1, engine=-1, status=0, flags=0,
 *      t0=0, t1=0)
 * --
 * Queues one message for the I/O thread, which signs and sends it. `frames` is a sequence
 * of buffers (str is sent as UTF-8); buffers of 64 KiB and more are sent without copying
 * and held until libzmq is done with them. Never blocks on the network. */
static PyObject *
connection_send_impl(cpar_ConnectionObject *self, int type, PyObject *frames, const char *msg_id,
                     Py_ssize_t msg_id_len, const char *parent, Py_ssize_t parent_len, int target,
                     int engine, int status, int flags, unsigned long long t0,
                     unsigned long long t1)
{
    cpar_clientio_item *it = NULL;
    PyObject *seq = NULL;
    Py_ssize_t n;
    int rc;

    if (!cpar_wire_type_known(type))
        return PyErr_Format(PyExc_ValueError, "unknown message type %d", type);
    if (msg_id == NULL)
        return PyErr_Format(PyExc_TypeError, "send() missing required argument 'msg_id'");
    if (msg_id_len != CPAR_WIRE_ID_SIZE)
        return PyErr_Format(PyExc_ValueError, "msg_id must be %d bytes, not %zd", CPAR_WIRE_ID_SIZE,
                            msg_id_len);
    if (parent_len != 0 && parent_len != CPAR_WIRE_ID_SIZE)
        return PyErr_Format(PyExc_ValueError, "parent must be empty or %d bytes, not %zd",
                            CPAR_WIRE_ID_SIZE, parent_len);
    if (flags < 0 || flags > 0xffff)
        return PyErr_Format(PyExc_ValueError, "flags out of range: %d", flags);
    seq = PySequence_Fast(frames, "frames must be a sequence of buffers");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > CPAR_WIRE_MAX_FRAMES) {
        PyErr_Format(PyExc_ValueError, "too many frames: %zd (at most %d)", n,
                     CPAR_WIRE_MAX_FRAMES);
        goto error;
    }
    it = cpar_clientio_item_new(type);
    if (it == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    it->m.h.flags = (uint16_t)flags;
    it->m.h.target = target;
    it->m.h.engine = engine;
    it->m.h.status = status;
    it->m.h.t0 = t0;
    it->m.h.t1 = t1;
    memcpy(it->m.h.msg_id, msg_id, CPAR_WIRE_ID_SIZE);
    if (parent_len)
        memcpy(it->m.h.parent, parent, CPAR_WIRE_ID_SIZE);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *obj = PySequence_Fast_GET_ITEM(seq, i); /* borrowed */
        int r;
        if (PyUnicode_Check(obj)) {
            PyObject *b = PyUnicode_AsUTF8String(obj);
            if (b == NULL)
                goto error;
            r = cpar_zc_add_frame(&it->m, b);
            Py_DECREF(b);
        } else {
            r = cpar_zc_add_frame(&it->m, obj);
        }
        if (r < 0)
            goto error;
    }
    Py_CLEAR(seq);
    rc = cpar_clientio_post(self->io, it); /* steals it */
    it = NULL;
    cpar_zc_drain();
    if (rc != 0)
        return cpar_exc_set(rc, 0, "cannot send on the connection to %s",
                            PyUnicode_AsUTF8(self->url));
    Py_RETURN_NONE;
error:
    cpar_clientio_item_free(it);
    Py_XDECREF(seq);
    return NULL;
}

static PyObject *
connection_send(cpar_ConnectionObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type",   "frames", "msg_id", "parent", "target", "engine",
                             "status", "flags",  "t0",     "t1",     NULL};
    int type, target = -1, engine = -1, status = 0, flags = 0;
    PyObject *frames = NULL;
    const char *msg_id = NULL, *parent = NULL;
    Py_ssize_t msg_id_len = 0, parent_len = 0;
    unsigned long long t0 = 0, t1 = 0;
    PyObject *empty = NULL, *ret;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|O$y#y#iiiiKK:send", kwlist, &type, &frames,
                                     &msg_id, &msg_id_len, &parent, &parent_len, &target, &engine,
                                     &status, &flags, &t0, &t1))
        return NULL;
    if (frames == NULL) {
        frames = empty = PyTuple_New(0);
        if (empty == NULL)
            return NULL;
    }
    ret = connection_send_impl(self, type, frames, msg_id, msg_id_len, parent, parent_len, target,
                               engine, status, flags, t0, t1);
    Py_XDECREF(empty);
    return ret;
}

/* recv(timeout=None, max=10000) -> list[Message]
 * --
 * Waits, with the GIL released, until at least one message has arrived or `timeout`
 * seconds have passed (None: no limit), and returns up to `max` messages in arrival order
 * ([] on timeout). Raises ConnectionClosed once the connection is closed. */
static PyObject *
connection_recv_impl(cpar_ConnectionObject *self, double timeout, Py_ssize_t max)
{
    cpar_module_state *st = cpar_module_state_of(Py_TYPE(self));
    cpar_clientio_item *head = NULL;
    size_t n = 0;
    int rc = 0;
    double deadline = timeout >= 0 ? cpar__monotonic() + timeout : 0;
    PyObject *list = NULL;
    Py_ssize_t i = 0;

    if (max <= 0)
        return PyErr_Format(PyExc_ValueError, "max must be positive, not %zd", max);
    for (;;) {
        int slice = CPAR__RECV_SLICE_MS;
        if (timeout >= 0) {
            double left = deadline - cpar__monotonic();
            if (left < 0)
                left = 0;
            if (left * 1000 < slice)
                slice = (int)ceil(left * 1000);
        }
        Py_BEGIN_ALLOW_THREADS
        rc = cpar_clientio_take(self->io, slice, (size_t)max, &head, &n);
        Py_END_ALLOW_THREADS
        if (n > 0 || rc != 0 || slice == 0)
            break;
        if (timeout >= 0 && cpar__monotonic() >= deadline)
            break;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    cpar_zc_drain();
    if (n == 0 && rc != 0) {
        if (rc == CPAR_ECLOSED)
            return cpar_exc_set(rc, 0, "the connection to %s is closed",
                                PyUnicode_AsUTF8(self->url));
        return cpar_exc_set(rc, 0, "the connection to %s failed", PyUnicode_AsUTF8(self->url));
    }
    list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        goto error;
    for (i = 0; head != NULL; i++) {
        cpar_clientio_item *it = head;
        PyObject *msg;
        head = it->next;
        msg = cpar_message_from_msg(st, &it->m);
        cpar_clientio_item_free(it);
        if (msg == NULL)
            goto error;
        PyList_SET_ITEM(list, i, msg); /* steals msg */
    }
    return list;
error:
    cpar_clientio_list_free(head);
    Py_XDECREF(list);
    return NULL;
}

static PyObject *
connection_recv(cpar_ConnectionObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "max", NULL};
    PyObject *timeout_obj = Py_None;
    Py_ssize_t max = 10000;
    double timeout = -1;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|On:recv", kwlist, &timeout_obj, &max))
        return NULL;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1 && PyErr_Occurred())
            return NULL;
        if (isnan(timeout))
            return PyErr_Format(PyExc_ValueError, "timeout must be a number, not NaN");
        if (timeout < 0)
            timeout = 0;
    }
    return connection_recv_impl(self, timeout, max);
}

/* close()
 * --
 * Stops the I/O thread and closes the socket without lingering; queued messages are
 * dropped. Idempotent; wakes threads blocked in recv (they get ConnectionClosed). */
static PyObject *
connection_close(cpar_ConnectionObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_ALLOW_THREADS
    cpar_clientio_close(self->io);
    Py_END_ALLOW_THREADS
    cpar_zc_drain();
    Py_RETURN_NONE;
}

static PyObject *
connection_enter(cpar_ConnectionObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *
connection_exit(cpar_ConnectionObject *self, PyObject *Py_UNUSED(args))
{
    return connection_close(self, NULL);
}

static PyObject *
connection_repr(cpar_ConnectionObject *self)
{
    return PyUnicode_FromFormat("<cpar._core.Connection %R%s>", self->url,
                                cpar_clientio_closed(self->io) ? " closed" : "");
}

/* A uint64_t counter of cpar_clientio_stats; `field` (the closure) is its offset. */
static PyObject *
connection_get_stat(cpar_ConnectionObject *self, void *field)
{
    cpar_clientio_stats st;
    uint64_t v;
    cpar_clientio_get_stats(self->io, &st);
    memcpy(&v, (const char *)&st + (uintptr_t)field, sizeof(v));
    return PyLong_FromUnsignedLongLong(v);
}

/* An int field of cpar_clientio_stats (offset `field`) as a count, never below 0. */
static PyObject *
connection_get_stat_int(cpar_ConnectionObject *self, void *field)
{
    cpar_clientio_stats st;
    int v;
    cpar_clientio_get_stats(self->io, &st);
    memcpy(&v, (const char *)&st + (uintptr_t)field, sizeof(v));
    return PyLong_FromUnsignedLongLong((unsigned long long)(v > 0 ? v : 0));
}

static PyObject *
connection_get_closed(cpar_ConnectionObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(cpar_clientio_closed(self->io));
}

static PyObject *
connection_get_connected(cpar_ConnectionObject *self, void *Py_UNUSED(closure))
{
    cpar_clientio_stats st;
    cpar_clientio_get_stats(self->io, &st);
    return PyBool_FromLong(st.connected);
}

static PyObject *
connection_get_url(cpar_ConnectionObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->url);
}

/* The first fields of the attribute named as the field of cpar_clientio_stats it reads
 * (uint64_t, or int for _INT); the doc string follows. */
#define CPAR__STAT(f) .name = #f, .get = (getter)connection_get_stat, .closure = CPAR__OFF(f)
#define CPAR__STAT_INT(f)                                                                          \
    .name = #f, .get = (getter)connection_get_stat_int, .closure = CPAR__OFF(f)
#define CPAR__OFF(f) ((void *)offsetof(cpar_clientio_stats, f))

static PyGetSetDef connection_getset[] = {
    {"url", (getter)connection_get_url, NULL, "the controller endpoint connected to", NULL},
    {"closed", (getter)connection_get_closed, NULL, "True once closed (or failed)", NULL},
    {"connected", (getter)connection_get_connected, NULL,
     "True while the socket is connected to the controller", NULL},
    {CPAR__STAT(disconnects),
     .doc = "times the connection dropped (each also reported as a local ERROR message)"},
    {CPAR__STAT(sent), .doc = "messages handed to the socket"},
    {CPAR__STAT(received), .doc = "valid messages received"},
    {CPAR__STAT(bad_signature),
     .doc = "received messages dropped for a wrong signature (a different key?)"},
    {CPAR__STAT(malformed),
     .doc = "received messages dropped as malformed (truncated, unknown version or type)"},
    {CPAR__STAT(send_failed),
     .doc = "messages that could not be sent (each reported as a local ERROR message)"},
    {CPAR__STAT_INT(shm),
     .doc = "1 when large frames may travel through shared memory (same host; CPAR_SHM not 0)"},
    {CPAR__STAT(shm_sent), .doc = "request frames sent by shared-memory descriptor"},
    {CPAR__STAT(shm_received), .doc = "reply frames read from an engine's memory"},
    {CPAR__STAT(handshake_failed),
     .doc = "security handshakes with the controller that failed (CURVE keys that do not match)"},
    {CPAR__STAT(shm_failed),
     .doc = "replies whose shared-memory read failed (each became an ERROR)"},
    {CPAR__STAT(shm_denied),
     .doc = "shared-memory directions (engine reads us, we read it) that probes found denied"},
    {CPAR__STAT(shm_fallback),
     .doc = "requests sent by socket because a shared-memory read was denied"},
    {CPAR__STAT_INT(shm_probing), .doc = "shared-memory probes of local engines still in flight"},
    {NULL},
};
#undef CPAR__STAT
#undef CPAR__STAT_INT
#undef CPAR__OFF

static PyMethodDef connection_methods[] = {
    {"send", (PyCFunction)(void (*)(void))connection_send, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("send(type, frames=(), *, msg_id, parent=b'', target=-1, engine=-1, "
               "status=0, flags=0, t0=0, t1=0)\n--\n\nQueue one message for sending.")},
    {"recv", (PyCFunction)(void (*)(void))connection_recv, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("recv(timeout=None, max=10000)\n--\n\n"
               "Wait for messages (GIL released); [] on timeout.")},
    {"close", (PyCFunction)connection_close, METH_NOARGS,
     PyDoc_STR("close()\n--\n\nStop the I/O thread and close the socket (idempotent).")},
    {"__enter__", (PyCFunction)connection_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)connection_exit, METH_VARARGS, NULL},
    {NULL},
};

PyDoc_STRVAR(
    connection_doc,
    "Connection(url, key, curve_serverkey=None, curve_publickey=None, curve_secretkey=None)\n--\n\n"
    "A client connection to the controller; a C I/O thread owns the socket.");

static PyType_Slot connection_slots[] = {
    {Py_tp_doc, (void *)connection_doc},
    {Py_tp_new, connection_new},
    {Py_tp_dealloc, connection_dealloc},
    {Py_tp_repr, connection_repr},
    {Py_tp_methods, connection_methods},
    {Py_tp_getset, connection_getset},
    {0, NULL},
};

PyType_Spec cpar_connection_spec = {
    .name = "cpar._core.Connection",
    .basicsize = sizeof(cpar_ConnectionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = connection_slots,
};
