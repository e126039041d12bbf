/* cpar Frame: a Python object that owns one received ZMQ frame and exposes it as a
 * writable buffer without copying (frame.h).
 *
 * Ownership and threads: a Frame owns its zmq_msg_t from cpar_frame_new until it is
 * deallocated; every function here runs with the GIL held. The frame's bytes are handed
 * out writable: the receiver owns them (nobody else reads a received message). When the
 * received bytes are not 8-byte aligned (small frames that libzmq keeps inside its shared
 * receive buffer) they are copied once into aligned memory, so that arrays built on them
 * are aligned. */
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <structmember.h>

#define CPAR__FRAME_ALIGN 8 /* alignment guaranteed for the exposed bytes */

typedef struct {
    PyObject_HEAD zmq_msg_t msg; /* the received frame (owned) */
    void *copy;         /* aligned copy of msg's bytes when they were misaligned, or NULL */
    char *data;         /* exposed bytes: msg's data or copy */
    Py_ssize_t size;    /* bytes exposed */
    Py_ssize_t exports; /* live buffer exports (diagnostic) */
    PyObject *weakreflist;
} cpar__frame;

PyObject *
cpar_frame_new(PyTypeObject *type, zmq_msg_t *msg)
{
    cpar__frame *self = NULL;
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);

    if (alloc == NULL)
        alloc = PyType_GenericAlloc;
    self = (cpar__frame *)alloc(type, 0);
    if (self == NULL)
        goto error;
    zmq_msg_init(&self->msg);
    if (zmq_msg_move(&self->msg, msg) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "cpar Frame: zmq_msg_move failed");
        goto error;
    }
    self->data = zmq_msg_data(&self->msg);
    self->size = (Py_ssize_t)zmq_msg_size(&self->msg);
    if (self->size > 0 && ((uintptr_t)self->data % CPAR__FRAME_ALIGN) != 0) {
        self->copy = PyMem_RawMalloc((size_t)self->size);
        if (self->copy == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        memcpy(self->copy, self->data, (size_t)self->size);
        self->data = self->copy;
        /* The original bytes are no longer needed. */
        zmq_msg_close(&self->msg);
        zmq_msg_init(&self->msg);
    }
    return (PyObject *)self;
error:
    Py_XDECREF(self);
    return NULL;
}

static void
cpar__frame_dealloc(cpar__frame *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);

    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    zmq_msg_close(&self->msg);
    PyMem_RawFree(self->copy);
    self->copy = NULL;
    tp_free(self);
    Py_DECREF(tp);
}

/* Buffer protocol: one contiguous run of unsigned bytes, writable. */
static int
cpar__frame_getbuffer(cpar__frame *self, Py_buffer *view, int flags)
{
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->size, 0, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
cpar__frame_releasebuffer(cpar__frame *self, Py_buffer *view)
{
    (void)view;
    self->exports--;
}

static Py_ssize_t
cpar__frame_len(cpar__frame *self)
{
    return self->size;
}

/* Frame.bytes -> bytes: a copy of the frame's content. */
static PyObject *
cpar__frame_get_bytes(cpar__frame *self, void *closure)
{
    (void)closure;
    return PyBytes_FromStringAndSize(self->data, self->size);
}

/* Frame.buffer -> memoryview: a writable view of the frame, no copy. */
static PyObject *
cpar__frame_get_buffer(cpar__frame *self, void *closure)
{
    (void)closure;
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *
cpar__frame_repr(cpar__frame *self)
{
    return PyUnicode_FromFormat("<cpar Frame: %zd bytes>", self->size);
}

/* Frame.__reduce__: a frame pickles as the bytes it holds. */
static PyObject *
cpar__frame_reduce(cpar__frame *self, PyObject *unused)
{
    (void)unused;
    PyObject *b = PyBytes_FromStringAndSize(self->data, self->size);
    PyObject *res = NULL;
    if (b == NULL)
        return NULL;
    res = Py_BuildValue("(O(O))", (PyObject *)&PyBytes_Type, b);
    Py_DECREF(b);
    return res;
}

static PyGetSetDef cpar__frame_getset[] = {
    {"bytes", (getter)cpar__frame_get_bytes, NULL, "A copy of the frame's bytes.", NULL},
    {"buffer", (getter)cpar__frame_get_buffer, NULL, "A writable memoryview, no copy.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef cpar__frame_methods[] = {
    {"__reduce__", (PyCFunction)cpar__frame_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef cpar__frame_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cpar__frame, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyObject *
cpar_frame_type_new(PyObject *module, const char *qualname)
{
    PyType_Slot slots[] = {
        {Py_tp_dealloc, (void *)cpar__frame_dealloc},
        {Py_tp_repr, (void *)cpar__frame_repr},
        {Py_tp_getset, cpar__frame_getset},
        {Py_tp_methods, cpar__frame_methods},
        {Py_tp_members, cpar__frame_members},
        {Py_tp_doc, (void *)"One received message frame; a writable buffer over it (no copy)."},
        {Py_sq_length, (void *)cpar__frame_len},
        {Py_bf_getbuffer, (void *)cpar__frame_getbuffer},
        {Py_bf_releasebuffer, (void *)cpar__frame_releasebuffer},
        {0, NULL},
    };
    /* PyType_FromModuleAndSpec copies the name and the slots: the spec may be local. */
    PyType_Spec spec = {
        .name = qualname,
        .basicsize = sizeof(cpar__frame),
        .itemsize = 0,
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
        .slots = slots,
    };
    return PyType_FromModuleAndSpec(module, &spec, NULL);
}
