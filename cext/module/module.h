/* cpar._core's module state and the constructors of its types, shared by the extension's
 * source files (module.c, message.c, connection.c, controller_py.c).
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

/* The state of the module that defined `type` (borrowed; never NULL for our types). */
static inline cpar_module_state *
cpar_module_state_of(PyTypeObject *type)
{
    return (cpar_module_state *)PyType_GetModuleState(type);
}

/* Views `key` (a bytes-like object, or a str as its UTF-8 bytes) as a read-only buffer,
 * which the caller releases with PyBuffer_Release. 0, or -1 with an exception set. */
int cpar_module_key_view(PyObject *key, Py_buffer *view);

/* Each returns a new heap type bound to `module`, or NULL with an exception set. */
PyObject *cpar_message_type_new(PyObject *module);
PyObject *cpar_connection_type_new(PyObject *module);
PyObject *cpar_controller_type_new(PyObject *module);

/* A new Message of st->message_type holding m's header fields and its frames as Frame
 * objects; the frames are moved out of m, which the caller still closes. New reference,
 * or NULL with an exception set. */
PyObject *cpar_message_from_msg(cpar_module_state *st, cpar_msg *m);

/* Live objects, for leak checks (_debug_counts). GIL held. */
extern Py_ssize_t cpar_debug_messages_alive;
extern Py_ssize_t cpar_debug_connections_alive;

#endif /* CPAR_MODULE_MODULE_H */
