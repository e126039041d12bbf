/* cpar._kernels: numeric kernels for the seeds' workloads over NumPy arrays (the Python
 * face is cpar.kernels, which documents them). Escape-time counts (cext/kernels/escape.c)
 * and counter-based random numbers (cext/kernels/philox.c).
 *
 * Shape of the module: multi-phase init, no module state (the kernels keep none), public
 * C API and NumPy's C API only. Every function validates its arguments with the GIL held,
 * then runs the kernel with the GIL released. Functions return new references or NULL
 * with an exception set. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_21_API_VERSION
#include <numpy/arrayobject.h>

#include "errors.h"
#include "escape.h"
#include "philox.h"

/* An array for `out`: the caller's (checked: writable, `shape`) or a new float64 one.
 * Returns a new reference or NULL. */
static PyArrayObject *
cpar__out_array(PyObject *out, int ndim, npy_intp *shape)
{
    PyArrayObject *o;
    if (out == NULL || out == Py_None)
        return (PyArrayObject *)PyArray_SimpleNew(ndim, shape, NPY_FLOAT64);
    if (!PyArray_Check(out)) {
        PyErr_Format(PyExc_TypeError, "out must be a numpy array, not %.100s",
                     Py_TYPE(out)->tp_name);
        return NULL;
    }
    o = (PyArrayObject *)out;
    if (PyArray_NDIM(o) != ndim || !PyArray_CompareLists(PyArray_DIMS(o), shape, ndim)) {
        PyErr_SetString(PyExc_ValueError, "out must have the shape of the input");
        return NULL;
    }
    if (!PyArray_ISNUMBER(o) || PyArray_ISCOMPLEX(o)) {
        PyErr_SetString(PyExc_TypeError, "out must have a real numeric dtype (e.g. float64)");
        return NULL;
    }
    if (PyArray_FailUnlessWriteable(o, "out") < 0)
        return NULL;
    Py_INCREF(out);
    return o;
}

/* One inner loop of an iterator: n elements at data[i], strides[i] apart; ctx is the
 * caller's. Runs without the GIL. */
typedef void (*cpar__inner_fn)(char **data, const npy_intp *strides, npy_intp n, void *ctx);

/* Runs fn over every inner loop of `it`, with the GIL released unless the iteration needs
 * the Python API. 0, or -1 with an exception set. */
static int
cpar__iter_run(NpyIter *it, cpar__inner_fn fn, void *ctx)
{
    NpyIter_IterNextFunc *next = NpyIter_GetIterNext(it, NULL);
    char **data;
    npy_intp *strides, *size;
    NPY_BEGIN_THREADS_DEF;

    if (next == NULL)
        return -1;
    data = NpyIter_GetDataPtrArray(it);
    strides = NpyIter_GetInnerStrideArray(it);
    size = NpyIter_GetInnerLoopSizePtr(it);
    if (!NpyIter_IterationNeedsAPI(it))
        NPY_BEGIN_THREADS;
    do {
        fn(data, strides, *size, ctx);
    } while (next(it));
    NPY_END_THREADS;
    return 0;
}

/* What an escape inner loop needs. */
typedef struct {
    Py_complex c;
    long maxiter;
    int is64, mandel;
} cpar__escape_args;

/* Escape counts of data[0] (complex points) into data[1] (float64). */
static void
cpar__escape_inner(char **data, const npy_intp *strides, npy_intp n, void *ctx)
{
    const cpar__escape_args *a = ctx;
    if (a->is64 && a->mandel)
        cpar_escape_mandelbrot_f64((const double *)data[0], strides[0], (size_t)n, a->maxiter,
                                   (double *)data[1], strides[1]);
    else if (a->is64)
        cpar_escape_julia_f64((const double *)data[0], strides[0], (size_t)n, a->c.real, a->c.imag,
                              a->maxiter, (double *)data[1], strides[1]);
    else if (a->mandel)
        cpar_escape_mandelbrot_f32((const float *)data[0], strides[0], (size_t)n, a->maxiter,
                                   (double *)data[1], strides[1]);
    else
        cpar_escape_julia_f32((const float *)data[0], strides[0], (size_t)n, (float)a->c.real,
                              (float)a->c.imag, a->maxiter, (double *)data[1], strides[1]);
}

/* Runs an escape kernel over `points` (complex64 or complex128, any shape and strides)
 * into out. mandel selects mandelbrot (c unused) over julia. */
static PyObject *
cpar__escape(PyObject *points, Py_complex c, long maxiter, PyObject *out, int mandel,
             const char *name)
{
    PyArrayObject *z = NULL, *o = NULL, *ops[2];
    npy_uint32 op_flags[2];
    PyArray_Descr *dtypes[2] = {NULL, NULL};
    NpyIter *it = NULL;
    cpar__escape_args args = {c, maxiter, 0, mandel};

    if (maxiter < 0)
        return PyErr_Format(PyExc_ValueError, "%s: maxiter must be >= 0, not %ld", name, maxiter);
    if (PyArray_Check(points)) {
        z = (PyArrayObject *)Py_NewRef(points);
    } else {
        z = (PyArrayObject *)PyArray_FROMANY(points, NPY_COMPLEX128, 0, 0, NPY_ARRAY_ALIGNED);
        if (z == NULL)
            return NULL;
    }
    if (PyArray_TYPE(z) != NPY_COMPLEX128 && PyArray_TYPE(z) != NPY_COMPLEX64) {
        PyErr_Format(PyExc_TypeError,
                     "%s: the points must be a complex64 or complex128 array, "
                     "not %s (convert with .astype(complex))",
                     name, PyArray_DESCR(z)->typeobj->tp_name);
        goto error;
    }
    args.is64 = PyArray_TYPE(z) == NPY_COMPLEX128;
    o = cpar__out_array(out, PyArray_NDIM(z), PyArray_DIMS(z));
    if (o == NULL)
        goto error;
    if (PyArray_SIZE(z) == 0)
        goto done;
    ops[0] = z;
    ops[1] = o;
    op_flags[0] = NPY_ITER_READONLY | NPY_ITER_ALIGNED;
    op_flags[1] = NPY_ITER_WRITEONLY | NPY_ITER_ALIGNED;
    /* Native byte order for the kernel (the iterator converts others in its buffers). */
    dtypes[0] = PyArray_DescrFromType(args.is64 ? NPY_COMPLEX128 : NPY_COMPLEX64);
    dtypes[1] = PyArray_DescrFromType(NPY_FLOAT64);
    it = NpyIter_MultiNew(2, ops,
                          NPY_ITER_EXTERNAL_LOOP | NPY_ITER_BUFFERED | NPY_ITER_GROWINNER |
                              NPY_ITER_ZEROSIZE_OK,
                          NPY_KEEPORDER, NPY_UNSAFE_CASTING, op_flags, dtypes);
    Py_DECREF(dtypes[0]);
    Py_DECREF(dtypes[1]);
    if (it == NULL || cpar__iter_run(it, cpar__escape_inner, &args) < 0)
        goto error;
    if (NpyIter_Deallocate(it) != NPY_SUCCEED) {
        it = NULL;
        goto error;
    }
    it = NULL;
done:
    Py_DECREF(z);
    return (PyObject *)o;
error:
    if (it != NULL)
        NpyIter_Deallocate(it);
    Py_XDECREF(z);
    Py_XDECREF(o);
    return NULL;
}

static PyObject *
kernels_julia(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"Z", "c", "maxiter", "out", NULL};
    PyObject *z, *out = NULL;
    Py_complex c = {-0.065, 0.66};
    long maxiter = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|DlO:julia", kwlist, &z, &c, &maxiter, &out))
        return NULL;
    return cpar__escape(z, c, maxiter, out, 0, "julia");
}

static PyObject *
kernels_mandelbrot(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"C", "maxiter", "out", NULL};
    PyObject *z, *out = NULL;
    Py_complex c = {0.0, 0.0};
    long maxiter = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|lO:mandelbrot", kwlist, &z, &maxiter, &out))
        return NULL;
    return cpar__escape(z, c, maxiter, out, 1, "mandelbrot");
}

/* Reads an unsigned 64-bit argument: a non-negative int. */
static int
cpar__u64(PyObject *obj, uint64_t *v, const char *what)
{
    unsigned long long x;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_RichCompareBool(obj, Py_False, Py_LT) == 1) { /* False == 0 */
        PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
        return -1;
    }
    x = PyLong_AsUnsignedLongLong(obj);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%s must be below 2**64", what);
        return -1;
    }
    *v = (uint64_t)x;
    return 0;
}

/* What a random inner loop needs; k is the stream element of the next loop's first. */
typedef struct {
    uint64_t seed, stream, k;
    int normal;
} cpar__random_args;

/* Uniform or normal numbers into data[0] (float64). */
static void
cpar__random_inner(char **data, const npy_intp *strides, npy_intp n, void *ctx)
{
    cpar__random_args *a = ctx;
    if (a->normal)
        cpar_philox_normal(a->seed, a->stream, a->k, (size_t)n, (double *)data[0], strides[0]);
    else
        cpar_philox_uniform(a->seed, a->stream, a->k, (size_t)n, (double *)data[0], strides[0]);
    a->k += (uint64_t)n;
}

/* uniform (normal = 0) or normal (1) numbers into a new or given float64 array; element
 * order is C order, so element k of the flat array is stream element start + k. */
static PyObject *
cpar__random(PyObject *pyargs, PyObject *kwds, int normal)
{
    static char *kwlist[] = {"shape", "seed", "stream", "start", "out", NULL};
    PyObject *shape_obj = Py_None, *seed_o = NULL, *stream_o = NULL, *start_o = NULL, *out = NULL;
    uint64_t seed = 0, stream = 0, start = 0;
    PyArray_Dims shape = {NULL, 0};
    PyArrayObject *o = NULL;
    NpyIter *it = NULL;
    cpar__random_args args;

    if (!PyArg_ParseTupleAndKeywords(pyargs, kwds, normal ? "|OOOOO:normal" : "|OOOOO:random",
                                     kwlist, &shape_obj, &seed_o, &stream_o, &start_o, &out))
        return NULL;
    if ((seed_o && cpar__u64(seed_o, &seed, "seed") < 0) ||
        (stream_o && cpar__u64(stream_o, &stream, "stream") < 0) ||
        (start_o && cpar__u64(start_o, &start, "start") < 0))
        return NULL;
    if (out != NULL && out != Py_None) {
        if (!PyArray_Check(out) || PyArray_TYPE((PyArrayObject *)out) != NPY_FLOAT64) {
            PyErr_SetString(PyExc_TypeError, "out must be a float64 numpy array");
            return NULL;
        }
        if (shape_obj != Py_None) {
            PyErr_SetString(PyExc_TypeError, "give shape or out, not both");
            return NULL;
        }
        if (PyArray_FailUnlessWriteable((PyArrayObject *)out, "out") < 0)
            return NULL;
        o = (PyArrayObject *)Py_NewRef(out);
    } else {
        if (shape_obj == Py_None) {
            PyErr_SetString(PyExc_TypeError, "a shape (or out) is needed");
            return NULL;
        }
        if (!PyArray_IntpConverter(shape_obj, &shape))
            return NULL;
        for (int i = 0; i < shape.len; i++)
            if (shape.ptr[i] < 0) {
                PyErr_Format(PyExc_ValueError, "negative dimension %zd in shape",
                             (Py_ssize_t)shape.ptr[i]);
                PyDimMem_FREE(shape.ptr);
                return NULL;
            }
        o = (PyArrayObject *)PyArray_SimpleNew(shape.len, shape.ptr, NPY_FLOAT64);
        PyDimMem_FREE(shape.ptr);
        if (o == NULL)
            return NULL;
    }
    if (PyArray_SIZE(o) == 0)
        return (PyObject *)o;
    args = (cpar__random_args){seed, stream, start, normal};
    it = NpyIter_New(o, NPY_ITER_WRITEONLY | NPY_ITER_EXTERNAL_LOOP | NPY_ITER_ALIGNED, NPY_CORDER,
                     NPY_NO_CASTING, NULL);
    if (it == NULL || cpar__iter_run(it, cpar__random_inner, &args) < 0)
        goto error;
    NpyIter_Deallocate(it);
    return (PyObject *)o;
error:
    if (it != NULL)
        NpyIter_Deallocate(it);
    Py_XDECREF(o);
    return NULL;
}

static PyObject *
kernels_random(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    return cpar__random(args, kwds, 0);
}

static PyObject *
kernels_normal(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    return cpar__random(args, kwds, 1);
}

static PyObject *
kernels_pi_hits(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"n", "seed", "stream", "start", NULL};
    PyObject *n_o, *seed_o = NULL, *stream_o = NULL, *start_o = NULL;
    uint64_t n, seed = 0, stream = 0, start = 0, hits;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOO:pi_hits", kwlist, &n_o, &seed_o, &stream_o,
                                     &start_o))
        return NULL;
    if (cpar__u64(n_o, &n, "n") < 0 || (seed_o && cpar__u64(seed_o, &seed, "seed") < 0) ||
        (stream_o && cpar__u64(stream_o, &stream, "stream") < 0) ||
        (start_o && cpar__u64(start_o, &start, "start") < 0))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    hits = cpar_philox_pi_hits(seed, stream, start, n);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong((unsigned long long)hits);
}

static PyObject *
kernels_implementation(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromString(cpar_escape_impl_name(cpar_escape_impl()));
}

static PyObject *
kernels_force_implementation(PyObject *Py_UNUSED(module), PyObject *arg)
{
    const char *name = arg == Py_None ? NULL : PyUnicode_AsUTF8(arg);
    int impl;
    if (arg != Py_None && name == NULL)
        return NULL;
    impl = name == NULL                   ? -1
           : strcmp(name, "generic") == 0 ? CPAR_ESCAPE_GENERIC
           : strcmp(name, "avx2") == 0    ? CPAR_ESCAPE_AVX2
                                          : -2;
    if (impl == -2)
        return PyErr_Format(PyExc_ValueError, "unknown implementation %R (generic, avx2)", arg);
    if (cpar_escape_force(impl) != CPAR_OK)
        return PyErr_Format(PyExc_RuntimeError, "this CPU cannot run the %s kernels", name);
    Py_RETURN_NONE;
}

static PyMethodDef kernels_methods[] = {
    {"julia", (PyCFunction)(void (*)(void))kernels_julia, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("julia(Z, c=-0.065+0.66j, maxiter=256, out=None)\n--\n\nEscape counts.")},
    {"mandelbrot", (PyCFunction)(void (*)(void))kernels_mandelbrot, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("mandelbrot(C, maxiter=256, out=None)\n--\n\nEscape counts.")},
    {"random", (PyCFunction)(void (*)(void))kernels_random, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("random(shape, seed=0, stream=0, start=0, out=None)\n--\n\nUniform [0, 1).")},
    {"normal", (PyCFunction)(void (*)(void))kernels_normal, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("normal(shape, seed=0, stream=0, start=0, out=None)\n--\n\nStandard normal.")},
    {"pi_hits", (PyCFunction)(void (*)(void))kernels_pi_hits, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("pi_hits(n, seed=0, stream=0, start=0)\n--\n\nPoints inside the circle.")},
    {"implementation", kernels_implementation, METH_NOARGS,
     PyDoc_STR("implementation()\n--\n\n'avx2' or 'generic'.")},
    {"_force_implementation", kernels_force_implementation, METH_O,
     PyDoc_STR("_force_implementation(name)\n--\n\nTests: 'generic', 'avx2' or None.")},
    {NULL, NULL, 0, NULL},
};

static int
kernels_exec(PyObject *Py_UNUSED(module))
{
    return PyArray_ImportNumPyAPI();
}

static PyModuleDef_Slot kernels_slots[] = {
    {Py_mod_exec, kernels_exec},
    {0, NULL},
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cpar._kernels",
    .m_doc = "Numeric kernels in C (see cpar.kernels).",
    .m_size = 0,
    .m_methods = kernels_methods,
    .m_slots = kernels_slots,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    return PyModuleDef_Init(&kernels_module);
}
