/* The one place mapping CPAR_E* codes to Python exception classes (from cpar.error).
 *
 * Threads: every function needs the GIL. cpar.error is imported on first use, so the
 * extension can be imported before (or without) the Python package being complete. */
#ifndef CPAR_MODULE_EXCEPTIONS_H
#define CPAR_MODULE_EXCEPTIONS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The exception class for a CPAR_E* code: a class of cpar.error, or a builtin one
 * (MemoryError, ValueError) where that is what Python code expects. New reference, or
 * NULL with an exception set. */
PyObject *cpar_exc_class(int code);

/* Sets the exception for `code` with a message "<formatted>: <cpar_strerror(code)>".
 * When sys_errno is nonzero its description is appended (and for OSError subclasses it
 * becomes the errno attribute). Always returns NULL. */
PyObject *cpar_exc_set(int code, int sys_errno, const char *fmt, ...);

/* As cpar_exc_set, with the message used as given (nothing appended). */
PyObject *cpar_exc_set_message(int code, const char *message);

#endif /* CPAR_MODULE_EXCEPTIONS_H */
