/* CPAR_E* codes to Python exceptions: the only mapping in the extension (exceptions.h). */
#include "exceptions.h"

#include <stdarg.h>
#include <stdio.h>

#include <zmq.h>

#include "errors.h"

/* Name of the cpar.error class for a code, or NULL for a builtin class. */
static const char *
cpar__exc_name(int code)
{
    switch (code) {
    case CPAR_ENOMEM:
    case CPAR_EINVAL:
        return NULL;
    case CPAR_EPROTO:
    case CPAR_EVERSION:
    case CPAR_ETYPE:
        return "ProtocolError";
    case CPAR_ESIG:
    case CPAR_EWINDOW:
    case CPAR_EREPLAY:
        return "SignatureError";
    case CPAR_EZMQ:
    case CPAR_EIO:
        return "TransportError";
    case CPAR_ESTALE:
    case CPAR_EPERM:
        return "SharedMemoryError";
    case CPAR_ETIMEOUT:
        return "TimeoutError";
    case CPAR_ECLOSED:
        return "ConnectionClosed";
    case CPAR_ENOENGINE:
        return "NoSuchEngine";
    case CPAR_EENGINEDEAD:
        return "EngineError";
    case CPAR_ESHUTDOWN:
        return "ControllerShutdown";
    case CPAR_EIMPOSSIBLE:
        return "ImpossibleDependency";
    case CPAR_EDEPTIMEOUT:
        return "DependencyTimeout";
    case CPAR_ETASKTIMEOUT:
        return "TaskTimeout";
    case CPAR_EABORTED:
        return "TaskAborted";
    default:
        return "CparError";
    }
}

PyObject *
cpar_exc_class(int code)
{
    const char *name = cpar__exc_name(code);
    PyObject *mod, *cls;

    if (name == NULL) {
        cls = code == CPAR_ENOMEM ? PyExc_MemoryError : PyExc_ValueError;
        return Py_NewRef(cls);
    }
    mod = PyImport_ImportModule("cpar.error");
    if (mod == NULL)
        return NULL;
    cls = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return cls;
}

/* Raises cls(message), or cls(errno, message) for OSError subclasses given an errno. */
static PyObject *
cpar__exc_raise(int code, int sys_errno, const char *message)
{
    PyObject *cls = cpar_exc_class(code);
    PyObject *exc;

    if (cls == NULL) {
        /* cpar.error is missing or broken: say so, and still report the failure. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyErr_Format(PyExc_RuntimeError, "%s (cpar.error unavailable: %R)", message,
                     value != NULL ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return NULL;
    }
    if (sys_errno != 0 && PyType_Check(cls) &&
        PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)PyExc_OSError))
        exc = PyObject_CallFunction(cls, "is", sys_errno, message);
    else
        exc = PyObject_CallFunction(cls, "s", message);
    Py_DECREF(cls);
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *
cpar_exc_set(int code, int sys_errno, const char *fmt, ...)
{
    char head[512], message[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (sys_errno != 0)
        snprintf(message, sizeof(message), "%s: %s (%s)", head, cpar_strerror(code),
                 zmq_strerror(sys_errno));
    else
        snprintf(message, sizeof(message), "%s: %s", head, cpar_strerror(code));
    return cpar__exc_raise(code, sys_errno, message);
}

PyObject *
cpar_exc_set_message(int code, const char *message)
{
    return cpar__exc_raise(code, 0, message);
}
