/* cpar._core's module state, the specs of its types and small helpers, shared by the
 * extension's source files (module.c, message.c, connection.c, controller_py.c).
 *
 * Ownership and threads: the state holds strong references to the module's heap types and
 * lives as long as the module; functions here need the GIL. */
#ifndef CPAR_MODULE_MODULE_H
#define CPAR_MODULE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire.h"

typedef struct cpar_module_state {
    PyTypeObject *frame_type;      /* Frame (frame.h): a received frame as a buffer */
    PyTypeObject *message_type;    /* Message: a received message, read-only */
    PyTypeObject *connection_type; /* Connection: the client socket and its I/O thread */
    PyTypeObject *controller_type; /* Controller: the C controller loop */
} cpar_module_state;

/* X(field) for each type the state holds, for traverse and clear. */
#define CPAR_MODULE_STATE_TYPES(X)                                                                 \
    X(frame_type) X(message_type) X(connection_type) X(controller_type)

/* The state of the module that defined `type` (borrowed; never NULL for our types). */
static inline cpar_module_state *
cpar_module_state_of(PyTypeObject *type)
{
    return (cpar_module_state *)PyType_GetModuleState(type);
}

/* The last step of a dealloc of an instance of one of our heap types: frees its memory
 * with the type's tp_free and drops the reference the instance held to its type. */
static inline void
cpar_module_free_instance(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

/* Views `key` (a bytes-like object, or a str as its UTF-8 bytes) as a read-only buffer,
 * which the caller releases with PyBuffer_Release. 0, or -1 with an exception set. */
int cpar_module_key_view(PyObject *key, Py_buffer *view);

/* The specs of the types (message.c, connection.c, controller_py.c); module.c makes each a
 * heap type bound to the module. */
extern PyType_Spec cpar_message_spec;
extern PyType_Spec cpar_connection_spec;
extern PyType_Spec cpar_controller_spec;

/* A new Message of st->message_type holding m's header fields and its frames as Frame
 * objects; the frames are moved out of m, which the caller still closes. New reference,
 * or NULL with an exception set. */
PyObject *cpar_message_from_msg(cpar_module_state *st, cpar_msg *m);

/* Live objects, for leak checks (_debug_counts). GIL held. */
extern Py_ssize_t cpar_debug_messages_alive;
extern Py_ssize_t cpar_debug_connections_alive;

#endif /* CPAR_MODULE_MODULE_H */
