/* cpar._core.Message: a received message as a read-only Python object (module.h). */
#include "module.h"

#include <structmember.h>

#include "frame.h"

Py_ssize_t cpar_debug_messages_alive;

typedef struct {
    PyObject_HEAD int type; /* CPAR_MSG_* */
    int flags;              /* CPAR_FLAG_* */
    int target;             /* addressed engine or -1 */
    int engine;             /* engine the message is from or about, or -1 */
    int status;             /* REPLY status or CPAR_E* code */
    unsigned long long t0;  /* ns since the epoch (meaning by type) */
    unsigned long long t1;
    PyObject *msg_id; /* bytes (16) */
    PyObject *parent; /* bytes (16; zeros when the message answers nothing) */
    PyObject *frames; /* list of Frame */
} cpar_MessageObject;

static const char *
cpar__type_name(int type)
{
    switch (type) {
    case CPAR_MSG_REGISTER:
        return "REGISTER";
    case CPAR_MSG_REGISTER_REPLY:
        return "REGISTER_REPLY";
    case CPAR_MSG_HEARTBEAT:
        return "HEARTBEAT";
    case CPAR_MSG_CONNECT:
        return "CONNECT";
    case CPAR_MSG_CONNECT_REPLY:
        return "CONNECT_REPLY";
    case CPAR_MSG_EXECUTE:
        return "EXECUTE";
    case CPAR_MSG_APPLY:
        return "APPLY";
    case CPAR_MSG_REPLY:
        return "REPLY";
    case CPAR_MSG_STREAM:
        return "STREAM";
    case CPAR_MSG_ERROR:
        return "ERROR";
    case CPAR_MSG_INTERRUPT:
        return "INTERRUPT";
    case CPAR_MSG_SHUTDOWN:
        return "SHUTDOWN";
    case CPAR_MSG_SHUTDOWN_REPLY:
        return "SHUTDOWN_REPLY";
    case CPAR_MSG_RELEASE:
        return "RELEASE";
    case CPAR_MSG_PROBE:
        return "PROBE";
    case CPAR_MSG_ENGINE_EVENT:
        return "ENGINE_EVENT";
    default:
        return "?";
    }
}

PyObject *
cpar_message_from_msg(cpar_module_state *st, cpar_msg *m)
{
    PyTypeObject *type = st->message_type;
    cpar_MessageObject *self = (cpar_MessageObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    cpar_debug_messages_alive++;
    self->type = m->h.type;
    self->flags = m->h.flags;
    self->target = m->h.target;
    self->engine = m->h.engine;
    self->status = m->h.status;
    self->t0 = m->h.t0;
    self->t1 = m->h.t1;
    self->msg_id = PyBytes_FromStringAndSize((const char *)m->h.msg_id, CPAR_WIRE_ID_SIZE);
    if (self->msg_id == NULL)
        goto error;
    self->parent = PyBytes_FromStringAndSize((const char *)m->h.parent, CPAR_WIRE_ID_SIZE);
    if (self->parent == NULL)
        goto error;
    self->frames = PyList_New((Py_ssize_t)m->nframes);
    if (self->frames == NULL)
        goto error;
    for (size_t i = 0; i < m->nframes; i++) {
        /* Moves the frame's content; m keeps an empty zmq_msg_t the caller closes. */
        PyObject *f = cpar_frame_new(st->frame_type, &m->frames[i]);
        if (f == NULL)
            goto error;
        PyList_SET_ITEM(self->frames, (Py_ssize_t)i, f); /* steals f */
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static int
message_traverse(cpar_MessageObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->frames);
    return 0;
}

static int
message_clear(cpar_MessageObject *self)
{
    Py_CLEAR(self->msg_id);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->frames);
    return 0;
}

static void
message_dealloc(cpar_MessageObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    message_clear(self);
    cpar_debug_messages_alive--;
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
message_repr(cpar_MessageObject *self)
{
    return PyUnicode_FromFormat("<cpar._core.Message %s engine=%d status=%d frames=%zd>",
                                cpar__type_name(self->type), self->engine, self->status,
                                self->frames ? PyList_GET_SIZE(self->frames) : 0);
}

static PyMemberDef message_members[] = {
    {"type", T_INT, offsetof(cpar_MessageObject, type), READONLY, "message type (MSG_*)"},
    {"flags", T_INT, offsetof(cpar_MessageObject, flags), READONLY, "header flags (FLAG_*)"},
    {"target", T_INT, offsetof(cpar_MessageObject, target), READONLY,
     "engine the message is addressed to, or -1"},
    {"engine", T_INT, offsetof(cpar_MessageObject, engine), READONLY,
     "engine the message comes from or is about, or -1"},
    {"status", T_INT, offsetof(cpar_MessageObject, status), READONLY,
     "REPLY status (STATUS_*) or, in ERROR messages, a negative error code"},
    {"t0", T_ULONGLONG, offsetof(cpar_MessageObject, t0), READONLY,
     "ns since the epoch (REPLY: started)"},
    {"t1", T_ULONGLONG, offsetof(cpar_MessageObject, t1), READONLY,
     "ns since the epoch (REPLY: completed)"},
    {"msg_id", T_OBJECT, offsetof(cpar_MessageObject, msg_id), READONLY,
     "the sender's 16-byte message id"},
    {"parent", T_OBJECT, offsetof(cpar_MessageObject, parent), READONLY,
     "16-byte id of the request this message answers (zeros if none)"},
    {"frames", T_OBJECT, offsetof(cpar_MessageObject, frames), READONLY,
     "payload frames: list of writable Frame buffers"},
    {NULL},
};

PyDoc_STRVAR(message_doc, "A message received on a Connection (read-only).");

static PyType_Slot message_slots[] = {
    {Py_tp_doc, (void *)message_doc},
    {Py_tp_dealloc, message_dealloc},
    {Py_tp_traverse, message_traverse},
    {Py_tp_clear, message_clear},
    {Py_tp_repr, message_repr},
    {Py_tp_members, message_members},
    {0, NULL},
};

static PyType_Spec message_spec = {
    .name = "cpar._core.Message",
    .basicsize = sizeof(cpar_MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = message_slots,
};

PyObject *
cpar_message_type_new(PyObject *module)
{
    return PyType_FromModuleAndSpec(module, &message_spec, NULL);
}
