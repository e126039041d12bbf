/* Output capture for the engine: the pending-output buffer shared with the I/O thread
 * (stdout/stderr text and display messages, in the order they were produced), and the
 * builtin module _cpar_engine whose Stream objects become sys.stdout / sys.stderr and whose
 * display() queues a display message (runtime.py's IPython display publisher calls it).
 *
 * Threads: Stream methods and display() run on any Python thread with the GIL held; they
 * append to engine->capture under engine->lock while a task runs, and write to the engine
 * log otherwise (display() drops its message then). The I/O thread takes the buffer under
 * the same lock without the GIL, so the lock is only ever held for a copy, never while
 * waiting for the GIL. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "frame.h"
#include "vec.h"
#include "zerocopy.h"

static cpar_engine *cpar__cap_engine; /* set once before Python starts */
static int cpar__cap_forked;          /* this process is a fork() child of the engine */

/* In a child made by fork() in user code the I/O thread does not exist and engine->lock
 * may have been held by it at the fork: the child writes its output straight to fds 1/2
 * (runtime.py also points sys.stdout/err back at the real files there). */
static void
cpar__capture_after_fork_child(void)
{
    cpar__cap_forked = 1;
    if (cpar__cap_engine != NULL)
        pthread_mutex_init(&cpar__cap_engine->lock, NULL);
}

void
cpar_capture_set_engine(cpar_engine *e)
{
    cpar__cap_engine = e;
    pthread_atfork(NULL, NULL, cpar__capture_after_fork_child);
}

void
cpar_capture_init(cpar_capture *c)
{
    memset(c, 0, sizeof(*c));
}

int
cpar_capture_append(cpar_capture *c, uint16_t flag, const char *data, size_t len)
{
    cpar_capture_seg *seg = c->n ? &c->segs[c->n - 1] : NULL;

    if (len == 0)
        return 0;
    /* Text merges with the text just before it on the same stream; a display message is
     * a whole message and always gets a segment (a STREAM) of its own. */
    if (seg == NULL || seg->flag != flag || (flag & CPAR_FLAG_DISPLAY)) {
        cpar_capture_seg *ns = cpar_vec_grow(c->segs, &c->cap, c->n + 1, sizeof(*ns), 4);
        if (ns == NULL)
            return CPAR_ENOMEM;
        c->segs = ns;
        seg = &c->segs[c->n++];
        memset(seg, 0, sizeof(*seg));
        seg->flag = flag;
    }
    if (seg->len + len > seg->cap) {
        size_t ncap = seg->cap ? seg->cap : 256;
        char *nd;
        while (ncap < seg->len + len)
            ncap *= 2;
        nd = realloc(seg->data, ncap);
        if (nd == NULL)
            return CPAR_ENOMEM;
        seg->data = nd;
        seg->cap = ncap;
    }
    memcpy(seg->data + seg->len, data, len);
    seg->len += len;
    return 0;
}

void
cpar_capture_take(cpar_capture *c, cpar_capture *out)
{
    *out = *c;
    memset(c, 0, sizeof(*c));
}

void
cpar_capture_free(cpar_capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->segs[i].data);
    free(c->segs);
    memset(c, 0, sizeof(*c));
}

/* libzmq's free callback for stream text: the text is plain malloc'd memory. */
static void
cpar__capture_free_text(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int
cpar_capture_each(cpar_capture *c, int32_t engine_id, const uint8_t parent[CPAR_WIRE_ID_SIZE],
                  int (*sink)(void *arg, cpar_msg *m), void *arg)
{
    int rc = 0;

    for (size_t i = 0; i < c->n; i++) {
        cpar_capture_seg *seg = &c->segs[i];
        cpar_msg m;
        int r;

        cpar_msg_init(&m, CPAR_MSG_STREAM);
        m.h.flags = seg->flag;
        m.h.engine = engine_id;
        cpar_engine_new_id(m.h.msg_id);
        memcpy(m.h.parent, parent, CPAR_WIRE_ID_SIZE);
        m.h.t0 = cpar_now_ns();
        r = cpar_msg_add_zerocopy(&m, seg->data, seg->len, cpar__capture_free_text, NULL);
        if (r != 0) {
            cpar_msg_close(&m);
            if (rc == 0)
                rc = r;
            continue; /* seg->data is still ours: freed below */
        }
        seg->data = NULL; /* now libzmq's */
        r = sink(arg, &m);
        cpar_msg_close(&m); /* whatever the sink left */
        if (r != 0 && rc == 0)
            rc = r;
    }
    cpar_capture_free(c);
    return rc;
}

typedef struct cpar__capture_dest {
    void *sock;
    cpar_signer *signer;
} cpar__capture_dest;

static int
cpar__capture_send_one(void *arg, cpar_msg *m)
{
    cpar__capture_dest *d = arg;
    return cpar_wire_send(d->sock, d->signer, NULL, 0, m, ZMQ_DONTWAIT);
}

int
cpar_capture_send(cpar_capture *c, void *sock, cpar_signer *s, int32_t engine_id,
                  const uint8_t parent[CPAR_WIRE_ID_SIZE])
{
    cpar__capture_dest d = {.sock = sock, .signer = s};
    return cpar_capture_each(c, engine_id, parent, cpar__capture_send_one, &d);
}

/* ---- Stream: the text-mode file object behind sys.stdout / sys.stderr ---------------- */

typedef struct {
    PyObject_HEAD uint16_t flag; /* CPAR_FLAG_STDOUT or CPAR_FLAG_STDERR */
    const char *name;            /* "<stdout>" or "<stderr>" (static) */
} cpar__stream;

/* Appends UTF-8 text for the running task, or writes it to the log outside tasks. */
static void
cpar__stream_emit(cpar__stream *self, const char *text, size_t len)
{
    cpar_engine *e = cpar__cap_engine;
    int captured = 0;

    if (cpar__cap_forked) {
        while (len > 0) {
            ssize_t n = write(self->flag == CPAR_FLAG_STDOUT ? 1 : 2, text, len);
            if (n <= 0)
                break;
            text += n;
            len -= (size_t)n;
        }
        return;
    }
    if (e != NULL) {
        pthread_mutex_lock(&e->lock);
        if (e->running)
            captured = cpar_capture_append(&e->capture, self->flag, text, len) == 0;
        pthread_mutex_unlock(&e->lock);
    }
    if (!captured)
        cpar_elog_write(NULL, text, len);
}

/* Stream.write(s: str) -> int: queue s for the client (or the log); returns len(s). */
static PyObject *
cpar__stream_write(cpar__stream *self, PyObject *s)
{
    Py_ssize_t len;
    const char *utf8;
    PyObject *encoded = NULL;

    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                     Py_TYPE(s)->tp_name);
        return NULL;
    }
    utf8 = PyUnicode_AsUTF8AndSize(s, &len);
    if (utf8 == NULL) {
        /* Lone surrogates: keep them visible rather than failing the print. */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
        if (encoded == NULL)
            return NULL;
        utf8 = PyBytes_AS_STRING(encoded);
        len = PyBytes_GET_SIZE(encoded);
    }
    cpar__stream_emit(self, utf8, (size_t)len);
    Py_XDECREF(encoded);
    return PyLong_FromSsize_t(PyUnicode_GetLength(s));
}

/* Stream.writelines(lines) -> None */
static PyObject *
cpar__stream_writelines(cpar__stream *self, PyObject *lines)
{
    PyObject *it = PyObject_GetIter(lines);
    PyObject *item;

    if (it == NULL)
        return NULL;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r = cpar__stream_write(self, item);
        Py_DECREF(item);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    if (PyErr_Occurred())
        goto error;
    Py_DECREF(it);
    Py_RETURN_NONE;
error:
    Py_DECREF(it);
    return NULL;
}

static PyObject *
cpar__stream_noop(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static PyObject *
cpar__stream_false(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_FALSE;
}

static PyObject *
cpar__stream_true(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_TRUE;
}

/* Raises io.UnsupportedOperation(what). */
static PyObject *
cpar__stream_unsupported(const char *what)
{
    PyObject *io = PyImport_ImportModule("io");
    PyObject *exc;

    if (io == NULL)
        return NULL;
    exc = PyObject_GetAttrString(io, "UnsupportedOperation");
    Py_DECREF(io);
    if (exc == NULL)
        return NULL;
    PyErr_SetString(exc, what);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
cpar__stream_fileno(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return cpar__stream_unsupported("fileno: cpar engine output is not a file");
}

static PyObject *
cpar__stream_read(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return cpar__stream_unsupported("not readable");
}

static PyObject *
cpar__stream_get_name(cpar__stream *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(self->name);
}

static PyObject *
cpar__stream_get_const(PyObject *self, void *closure)
{
    (void)self;
    return PyUnicode_FromString((const char *)closure);
}

static PyObject *
cpar__stream_get_none(PyObject *self, void *closure)
{
    (void)self;
    (void)closure;
    Py_RETURN_NONE;
}

static PyObject *
cpar__stream_get_false(PyObject *self, void *closure)
{
    (void)self;
    (void)closure;
    Py_RETURN_FALSE;
}

static PyObject *
cpar__stream_repr(cpar__stream *self)
{
    return PyUnicode_FromFormat("<cpar engine stream %s>", self->name);
}

static void
cpar__stream_dealloc(cpar__stream *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef cpar__stream_methods[] = {
    {"write", (PyCFunction)cpar__stream_write, METH_O, "write(s) -> int"},
    {"writelines", (PyCFunction)cpar__stream_writelines, METH_O, "writelines(lines)"},
    {"flush", cpar__stream_noop, METH_NOARGS, "Text is sent by the engine; no-op."},
    {"close", cpar__stream_noop, METH_NOARGS, "No-op: the engine's streams stay open."},
    {"isatty", cpar__stream_false, METH_NOARGS, NULL},
    {"readable", cpar__stream_false, METH_NOARGS, NULL},
    {"seekable", cpar__stream_false, METH_NOARGS, NULL},
    {"writable", cpar__stream_true, METH_NOARGS, NULL},
    {"fileno", cpar__stream_fileno, METH_NOARGS, "Raises io.UnsupportedOperation."},
    {"read", cpar__stream_read, METH_VARARGS, "Raises io.UnsupportedOperation."},
    {"readline", cpar__stream_read, METH_VARARGS, "Raises io.UnsupportedOperation."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cpar__stream_getset[] = {
    {"name", (getter)cpar__stream_get_name, NULL, NULL, NULL},
    {"encoding", cpar__stream_get_const, NULL, NULL, "utf-8"},
    {"errors", cpar__stream_get_const, NULL, NULL, "strict"},
    {"mode", cpar__stream_get_const, NULL, NULL, "w"},
    {"newlines", cpar__stream_get_none, NULL, NULL, NULL},
    {"closed", cpar__stream_get_false, NULL, NULL, NULL},
    {"line_buffering", cpar__stream_get_false, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cpar__stream_slots[] = {
    {Py_tp_dealloc, (void *)cpar__stream_dealloc},
    {Py_tp_repr, (void *)cpar__stream_repr},
    {Py_tp_methods, cpar__stream_methods},
    {Py_tp_getset, cpar__stream_getset},
    {Py_tp_doc, (void *)"Text output of a cpar engine: sent to the client during a task."},
    {0, NULL},
};

static PyType_Spec cpar__stream_spec = {
    .name = "_cpar_engine.Stream",
    .basicsize = sizeof(cpar__stream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = cpar__stream_slots,
};

/* A new Stream of type tp (new reference). */
static PyObject *
cpar__stream_new(PyTypeObject *tp, uint16_t flag, const char *name)
{
    allocfunc alloc = (allocfunc)PyType_GetSlot(tp, Py_tp_alloc);
    cpar__stream *self = (cpar__stream *)alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->flag = flag;
    self->name = name;
    return (PyObject *)self;
}

/* ---- module _cpar_engine ---------------------------------------------------------------- */

/* _cpar_engine.outstanding() -> int: zero-copy buffers libzmq has not released yet. */
static PyObject *
cpar__mod_outstanding(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cpar_zc_drain();
    return PyLong_FromSsize_t(cpar_zc_outstanding());
}

/* _cpar_engine.shm_pinned() -> int: reply frames pinned for clients to read (shm.h). */
static PyObject *
cpar__mod_shm_pinned(PyObject *mod, PyObject *unused)
{
    size_t n = 0;
    (void)mod;
    (void)unused;
    if (cpar__cap_engine != NULL) {
        pthread_mutex_lock(&cpar__cap_engine->lock);
        n = cpar__cap_engine->pins.frames;
        pthread_mutex_unlock(&cpar__cap_engine->lock);
    }
    return PyLong_FromSize_t(n);
}

/* _cpar_engine.display(msg: bytes-like) -> bool: queues one display message (UTF-8 JSON,
 * docs/protocol.md) for the running task's client, in order with its stdout/stderr text,
 * as a STREAM with CPAR_FLAG_DISPLAY. Outside a task (or in a fork child) nobody would
 * receive it: it is dropped, noted in the log, and False is returned. */
static PyObject *
cpar__mod_display(PyObject *mod, PyObject *arg)
{
    cpar_engine *e = cpar__cap_engine;
    Py_buffer view;
    int captured = 0, rc = 0;
    (void)mod;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (e != NULL && !cpar__cap_forked && view.len > 0) {
        pthread_mutex_lock(&e->lock);
        if (e->running) {
            rc = cpar_capture_append(&e->capture, CPAR_FLAG_DISPLAY, view.buf, (size_t)view.len);
            captured = rc == 0;
        }
        pthread_mutex_unlock(&e->lock);
    }
    if (!captured && !cpar__cap_forked)
        cpar_elog("dropped a display output of %zd bytes (%s)", view.len,
                  rc != 0 ? "out of memory" : "no task running");
    PyBuffer_Release(&view);
    return PyBool_FromLong(captured);
}

/* _cpar_engine.log(text: str) -> None: one line in the engine log. */
static PyObject *
cpar__mod_log(PyObject *mod, PyObject *text)
{
    const char *s;
    (void)mod;
    s = PyUnicode_AsUTF8(text);
    if (s == NULL)
        return NULL;
    cpar_elog("%s", s);
    Py_RETURN_NONE;
}

/* _cpar_engine.engine_id() -> int: our id (-1 before registration). */
static PyObject *
cpar__mod_engine_id(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(cpar__cap_engine ? cpar__cap_engine->id : -1);
}

static int
cpar__mod_exec(PyObject *mod)
{
    PyObject *frame_type = NULL, *stream_type = NULL, *out = NULL, *err = NULL;

    frame_type = cpar_frame_type_new(mod, "_cpar_engine.Frame");
    if (frame_type == NULL)
        goto error;
    stream_type = PyType_FromModuleAndSpec(mod, &cpar__stream_spec, NULL);
    if (stream_type == NULL)
        goto error;
    out = cpar__stream_new((PyTypeObject *)stream_type, CPAR_FLAG_STDOUT, "<stdout>");
    if (out == NULL)
        goto error;
    err = cpar__stream_new((PyTypeObject *)stream_type, CPAR_FLAG_STDERR, "<stderr>");
    if (err == NULL)
        goto error;
    /* PyModule_AddObjectRef does not steal: every reference is dropped below. */
    if (PyModule_AddObjectRef(mod, "Frame", frame_type) < 0 ||
        PyModule_AddObjectRef(mod, "Stream", stream_type) < 0 ||
        PyModule_AddObjectRef(mod, "stdout", out) < 0 ||
        PyModule_AddObjectRef(mod, "stderr", err) < 0)
        goto error;
    Py_DECREF(frame_type);
    Py_DECREF(stream_type);
    Py_DECREF(out);
    Py_DECREF(err);
    return 0;
error:
    Py_XDECREF(frame_type);
    Py_XDECREF(stream_type);
    Py_XDECREF(out);
    Py_XDECREF(err);
    return -1;
}

static PyMethodDef cpar__mod_methods[] = {
    {"outstanding", cpar__mod_outstanding, METH_NOARGS,
     "Zero-copy buffers not yet released by libzmq (after draining)."},
    {"log", cpar__mod_log, METH_O, "Writes one line to the engine log."},
    {"display", cpar__mod_display, METH_O,
     "display(msg: bytes) -> bool: sends one display message (UTF-8 JSON) to the running "
     "task's client, in order with its output; False (dropped) outside a task."},
    {"shm_pinned", cpar__mod_shm_pinned, METH_NOARGS,
     "Reply frames pinned until their client reads them (shared-memory path)."},
    {"engine_id", cpar__mod_engine_id, METH_NOARGS, "This engine's id, -1 before registration."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot cpar__mod_slots[] = {
    {Py_mod_exec, (void *)cpar__mod_exec},
    {0, NULL},
};

static struct PyModuleDef cpar__mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cpar_engine",
    .m_doc = "Builtin module of cpar-engine: Frame (received buffers) and the output streams.",
    .m_size = 0,
    .m_methods = cpar__mod_methods,
    .m_slots = cpar__mod_slots,
};

PyObject *
cpar_engine_module_init(void)
{
    return PyModuleDef_Init(&cpar__mod_def);
}
