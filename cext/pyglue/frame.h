/* cpar Frame: a Python object owning one received ZMQ frame, exposing it through the
 * buffer protocol (writable, no copy), so pickle protocol 5 out-of-band buffers and
 * numpy arrays built on it are writable and live as long as they are referenced.
 *
 * Shared by the extension cpar._core and the engine binary (compiled into both).
 * All functions need the GIL. */
#ifndef CPAR_MODULE_FRAME_H
#define CPAR_MODULE_FRAME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <zmq.h>

/* Creates the heap type "cpar.Frame"-like type for `module` (new reference), from a
 * PyType_Spec named `qualname` (e.g. "cpar._core.Frame"). NULL with an exception. */
PyObject *cpar_frame_type_new(PyObject *module, const char *qualname);

/* A new Frame of `type` taking the content of *msg (msg is moved from and left empty).
 * New reference, or NULL with an exception set. */
PyObject *cpar_frame_new(PyTypeObject *type, zmq_msg_t *msg);

#endif /* CPAR_MODULE_FRAME_H */
