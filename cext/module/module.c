/* cpar._core: the module definition, its state, constants and small functions. The types
 * live in message.c, connection.c, controller_py.c and frame.c. */
#include "module.h"

#include "clientio.h"
#include "curve.h"
#include "errors.h"
#include "exceptions.h"
#include "frame.h"
#include "pagepool.h"
#include "shm.h"
#include "zerocopy.h"

int
cpar_module_key_view(PyObject *key, Py_buffer *view)
{
    if (PyUnicode_Check(key)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(key, &len);
        if (s == NULL)
            return -1;
        /* The UTF-8 bytes live as long as the str, which the view holds a reference to. */
        return PyBuffer_FillInfo(view, key, (void *)s, len, 1, PyBUF_SIMPLE);
    }
    return PyObject_GetBuffer(key, view, PyBUF_SIMPLE);
}

/* now_ns() -> int
 * --
 * Nanoseconds since the Unix epoch (the clock of the wire's t0/t1 fields). */
static PyObject *
core_now_ns(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(cpar_now_ns());
}

/* error_class(code) -> type
 * --
 * The exception class cpar uses for a negative error code (as found in the status of
 * ERROR messages). */
static PyObject *
core_error_class(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (code < INT_MIN || code > INT_MAX)
        return PyErr_Format(PyExc_OverflowError, "error code out of range");
    return cpar_exc_class((int)code);
}

/* strerror(code) -> str
 * --
 * A short description of a negative error code. */
static PyObject *
core_strerror(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (code < INT_MIN || code > INT_MAX)
        return PyErr_Format(PyExc_OverflowError, "error code out of range");
    return PyUnicode_FromString(cpar_strerror((int)code));
}

/* _debug_counts() -> dict
 * --
 * Objects alive now, for leak checks in tests: Connection and Message objects, queued
 * C messages, zero-copy buffers not yet released by libzmq, request frames pinned for
 * engines to read (shared-memory path); and that path's totals in this process (frames
 * sent by descriptor, replies read, reads failed), whether it is enabled, and the page
 * pool's counters (reads into kept pages, reads into fresh ones, mappings kept now). */
static PyObject *
core_debug_counts(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    int64_t sent, received, failed, denied, fallback;
    cpar_pagepool_stats pool;
    cpar_zc_drain();
    cpar_clientio_shm_totals(&sent, &received, &failed);
    cpar_clientio_shm_denials(&denied, &fallback);
    cpar_pagepool_get_stats(&pool);
    return Py_BuildValue("{s:n,s:n,s:L,s:n,s:L,s:L,s:L,s:L,s:L,s:L,s:i,s:K,s:K,s:n}", "connections",
                         cpar_debug_connections_alive, "messages", cpar_debug_messages_alive,
                         "queued", (long long)cpar_clientio_items_alive(), "zerocopy",
                         cpar_zc_outstanding(), "shm_pinned", (long long)cpar_clientio_shm_pinned(),
                         "shm_sent", (long long)sent, "shm_received", (long long)received,
                         "shm_failed", (long long)failed, "shm_denied", (long long)denied,
                         "shm_fallback", (long long)fallback, "shm_enabled", cpar_shm_enabled(),
                         "pagepool_hits", (unsigned long long)pool.hits, "pagepool_misses",
                         (unsigned long long)pool.misses, "pagepool_kept", (Py_ssize_t)pool.kept);
}

/* _shm_token() -> str | None
 * --
 * This process's shared-memory locality token (what an engine on this host puts in its
 * REGISTER as `shm=`), or None when the shared-memory path is disabled. For tests. */
static PyObject *
core_shm_token(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    char tok[CPAR_SHM_TOKEN_SIZE];
    if (!cpar_shm_enabled() || cpar_shm_token(tok, sizeof(tok)) != 0)
        Py_RETURN_NONE;
    return PyUnicode_FromString(tok);
}

/* curve_keypair() -> (public, secret)
 * --
 * A new CurveZMQ key pair as two 40-character Z85 strings. */
static PyObject *
core_curve_keypair(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    char pub[CPAR_CURVE_KEY_LEN + 1], sec[CPAR_CURVE_KEY_LEN + 1];
    int rc = cpar_curve_keypair(pub, sec);
    if (rc != 0)
        return cpar_exc_set(rc, 0, "cannot make a CURVE key pair (libzmq without CURVE?)");
    return Py_BuildValue("(ss)", pub, sec);
}

static PyMethodDef core_methods[] = {
    {"curve_keypair", core_curve_keypair, METH_NOARGS,
     PyDoc_STR("curve_keypair()\n--\n\nA new CurveZMQ key pair (public, secret), Z85.")},
    {"_shm_token", core_shm_token, METH_NOARGS,
     PyDoc_STR("_shm_token()\n--\n\nThis process's shared-memory locality token, or None.")},
    {"now_ns", core_now_ns, METH_NOARGS,
     PyDoc_STR("now_ns()\n--\n\nNanoseconds since the Unix epoch.")},
    {"error_class", core_error_class, METH_O,
     PyDoc_STR("error_class(code)\n--\n\nThe exception class for an error code.")},
    {"strerror", core_strerror, METH_O,
     PyDoc_STR("strerror(code)\n--\n\nDescription of an error code.")},
    {"_debug_counts", core_debug_counts, METH_NOARGS,
     PyDoc_STR("_debug_counts()\n--\n\nLive object counts, for leak checks.")},
    {NULL},
};

/* Adds a type to the module and stores it (new reference) in *slot. */
static int
cpar__add_type(PyObject *module, PyObject *type, PyTypeObject **slot)
{
    if (type == NULL)
        return -1;
    if (PyModule_AddType(module, (PyTypeObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    *slot = (PyTypeObject *)type; /* the state keeps our reference */
    return 0;
}

static int
core_exec(PyObject *module)
{
    cpar_module_state *st = PyModule_GetState(module);
    static const struct {
        const char *name;
        long value;
    } constants[] = {
        {"MSG_REGISTER", CPAR_MSG_REGISTER},
        {"MSG_REGISTER_REPLY", CPAR_MSG_REGISTER_REPLY},
        {"MSG_HEARTBEAT", CPAR_MSG_HEARTBEAT},
        {"MSG_CONNECT", CPAR_MSG_CONNECT},
        {"MSG_CONNECT_REPLY", CPAR_MSG_CONNECT_REPLY},
        {"MSG_EXECUTE", CPAR_MSG_EXECUTE},
        {"MSG_APPLY", CPAR_MSG_APPLY},
        {"MSG_REPLY", CPAR_MSG_REPLY},
        {"MSG_STREAM", CPAR_MSG_STREAM},
        {"MSG_ERROR", CPAR_MSG_ERROR},
        {"MSG_INTERRUPT", CPAR_MSG_INTERRUPT},
        {"MSG_SHUTDOWN", CPAR_MSG_SHUTDOWN},
        {"MSG_SHUTDOWN_REPLY", CPAR_MSG_SHUTDOWN_REPLY},
        {"MSG_ENGINE_EVENT", CPAR_MSG_ENGINE_EVENT},
        {"FLAG_STDOUT", CPAR_FLAG_STDOUT},
        {"FLAG_STDERR", CPAR_FLAG_STDERR},
        {"FLAG_HUB", CPAR_FLAG_HUB},
        {"FLAG_TARGETED", CPAR_FLAG_TARGETED},
        {"FLAG_SHM", CPAR_FLAG_SHM},
        {"FLAG_SHM_OK", CPAR_FLAG_SHM_OK},
        {"FLAG_DISPLAY", CPAR_FLAG_DISPLAY},
        {"FLAG_COALESCE", CPAR_FLAG_COALESCE},
        {"MSG_RELEASE", CPAR_MSG_RELEASE},
        {"MSG_PROBE", CPAR_MSG_PROBE},
        {"MSG_TASK", CPAR_MSG_TASK},
        {"MSG_ABORT", CPAR_MSG_ABORT},
        {"MSG_QUERY", CPAR_MSG_QUERY},
        {"MSG_QUERY_REPLY", CPAR_MSG_QUERY_REPLY},
        {"MSG_DB_REQUEST", CPAR_MSG_DB_REQUEST},
        {"MSG_DB_REPLY", CPAR_MSG_DB_REPLY},
        {"MSG_RECLAIM", CPAR_MSG_RECLAIM},
        {"MSG_RECLAIM_REPLY", CPAR_MSG_RECLAIM_REPLY},
        {"STATUS_UNMET", CPAR_STATUS_UNMET},
        {"SHM_MIN_SIZE", CPAR_SHM_MIN_SIZE},
        {"STATUS_OK", CPAR_STATUS_OK},
        {"STATUS_ERROR", CPAR_STATUS_ERROR},
        {"NO_ENGINE", CPAR_NO_ENGINE},
        {"ID_SIZE", CPAR_WIRE_ID_SIZE},
        {"MAX_FRAMES", CPAR_WIRE_MAX_FRAMES},
        {"MAX_TARGETS", CPAR_WIRE_MAX_TARGETS},
        {"WIRE_VERSION", CPAR_WIRE_VERSION},
        {"ZEROCOPY_MIN_SIZE", CPAR_ZC_MIN_SIZE},
        {"E_NOMEM", CPAR_ENOMEM},
        {"E_INVAL", CPAR_EINVAL},
        {"E_PROTO", CPAR_EPROTO},
        {"E_SIG", CPAR_ESIG},
        {"E_VERSION", CPAR_EVERSION},
        {"E_TYPE", CPAR_ETYPE},
        {"E_ZMQ", CPAR_EZMQ},
        {"E_TIMEOUT", CPAR_ETIMEOUT},
        {"E_CLOSED", CPAR_ECLOSED},
        {"E_NOENGINE", CPAR_ENOENGINE},
        {"E_ENGINEDEAD", CPAR_EENGINEDEAD},
        {"E_CRYPTO", CPAR_ECRYPTO},
        {"E_IO", CPAR_EIO},
        {"E_AGAIN", CPAR_EAGAIN},
        {"E_SHUTDOWN", CPAR_ESHUTDOWN},
        {"E_IMPOSSIBLE", CPAR_EIMPOSSIBLE},
        {"E_DEPTIMEOUT", CPAR_EDEPTIMEOUT},
        {"E_ABORTED", CPAR_EABORTED},
        {"E_TASKTIMEOUT", CPAR_ETASKTIMEOUT},
    };

    const struct {
        PyType_Spec *spec;
        PyTypeObject **slot;
    } specs[] = {
        {&cpar_message_spec, &st->message_type},
        {&cpar_connection_spec, &st->connection_type},
        {&cpar_controller_spec, &st->controller_type},
    };

    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    if (cpar__add_type(module, cpar_frame_type_new(module, "cpar._core.Frame"), &st->frame_type) <
        0)
        return -1;
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        if (cpar__add_type(module, PyType_FromModuleAndSpec(module, specs[i].spec, NULL),
                           specs[i].slot) < 0)
            return -1;
    return 0;
}

static int
core_traverse(PyObject *module, visitproc visit, void *arg)
{
    cpar_module_state *st = PyModule_GetState(module);
#define CPAR__VISIT(field) Py_VISIT(st->field);
    CPAR_MODULE_STATE_TYPES(CPAR__VISIT)
#undef CPAR__VISIT
    return 0;
}

static int
core_clear(PyObject *module)
{
    cpar_module_state *st = PyModule_GetState(module);
#define CPAR__CLEAR(field) Py_CLEAR(st->field);
    CPAR_MODULE_STATE_TYPES(CPAR__CLEAR)
#undef CPAR__CLEAR
    return 0;
}

static void
core_free(void *module)
{
    core_clear((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

PyDoc_STRVAR(core_doc, "cpar's C core: the client connection, the controller entry and the "
                       "wire constants. Private: use the cpar package.");

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,       .m_name = "cpar._core",
    .m_doc = core_doc,           .m_size = sizeof(cpar_module_state),
    .m_methods = core_methods,   .m_slots = core_slots,
    .m_traverse = core_traverse, .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
