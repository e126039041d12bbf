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
    case CPAR_MSG_DB_REQUEST:
        return "DB_REQUEST";
    case CPAR_MSG_DB_REPLY:
        return "DB_REPLY";
    case CPAR_MSG_RECLAIM:
        return "RECLAIM";
    case CPAR_MSG_RECLAIM_REPLY:
        return "RECLAIM_REPLY";
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
    PyObject_GC_UnTrack(self);
    message_clear(self);
    cpar_debug_messages_alive--;
    cpar_module_free_instance((PyObject *)self);
}

static PyObject *
message_repr(cpar_MessageObject *self)
{
    return PyUnicode_FromFormat("<cpar._core.Message %s engine=%d status=%d frames=%zd>",
                                cpar__type_name(self->type), self->engine, self->status,
                                self->frames ? PyList_GET_SIZE(self->frames) : 0);
}

/* The first fields of a read-only attribute for the field of the same name. */
#define CPAR__MEMBER(f, t) #f, t, offsetof(cpar_MessageObject, f), READONLY

static PyMemberDef message_members[] = {
    {CPAR__MEMBER(type, T_INT), "message type (MSG_*)"},
    {CPAR__MEMBER(flags, T_INT), "header flags (FLAG_*)"},
    {CPAR__MEMBER(target, T_INT), "engine the message is addressed to, or -1"},
    {CPAR__MEMBER(engine, T_INT), "engine the message comes from or is about, or -1"},
    {CPAR__MEMBER(status, T_INT),
     "REPLY status (STATUS_*) or, in ERROR messages, a negative error code"},
    {CPAR__MEMBER(t0, T_ULONGLONG), "ns since the epoch (REPLY: started)"},
    {CPAR__MEMBER(t1, T_ULONGLONG), "ns since the epoch (REPLY: completed)"},
    {CPAR__MEMBER(msg_id, T_OBJECT), "the sender's 16-byte message id"},
    {CPAR__MEMBER(parent, T_OBJECT),
     "16-byte id of the request this message answers (zeros if none)"},
    {CPAR__MEMBER(frames, T_OBJECT), "payload frames: list of writable Frame buffers"},
    {NULL},
};
#undef CPAR__MEMBER

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

PyType_Spec cpar_message_spec = {
    .name = "cpar._core.Message",
    .basicsize = sizeof(cpar_MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = message_slots,
};
