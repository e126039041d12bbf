/* Zero-copy sends of Python buffers and their GIL-safe release (zerocopy.h).
 *
 * Ownership and threads: cpar_zc_add_frame (GIL held) pins a buffer in a heap node that
 * libzmq owns until it calls cpar__zc_free, from any thread and without the GIL. The free
 * callback only moves the node onto a mutex-protected release list; cpar_zc_drain (GIL
 * held) takes the whole list and releases the buffers. The list and the counter are
 * process-wide (one per copy of this file linked into a binary). */
#include "zerocopy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct cpar__zc_node {
    Py_buffer view;             /* the pinned buffer (holds a reference to its object) */
    struct cpar__zc_node *next; /* release list link */
} cpar__zc_node;

static pthread_mutex_t cpar__zc_lock = PTHREAD_MUTEX_INITIALIZER;
static cpar__zc_node *cpar__zc_released; /* nodes libzmq is done with; under cpar__zc_lock */
static atomic_long cpar__zc_count;       /* nodes handed to libzmq, not yet released */

/* libzmq's free callback: any thread, no GIL. Never touches Python objects. */
static void
cpar__zc_free(void *data, void *hint)
{
    cpar__zc_node *node = hint;
    (void)data;
    pthread_mutex_lock(&cpar__zc_lock);
    node->next = cpar__zc_released;
    cpar__zc_released = node;
    pthread_mutex_unlock(&cpar__zc_lock);
}

int
cpar_zc_add_frame(cpar_msg *m, PyObject *obj)
{
    Py_buffer view;
    cpar__zc_node *node = NULL;
    int have_view = 0;

    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0)
        goto error;
    have_view = 1;
    if (view.len < CPAR_ZC_MIN_SIZE) {
        if (cpar_msg_add_copy(m, view.buf, (size_t)view.len) != 0) {
            PyErr_NoMemory();
            goto error;
        }
        PyBuffer_Release(&view);
        return 0;
    }
    node = PyMem_RawMalloc(sizeof(*node));
    if (node == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    node->view = view; /* the node now owns the pinned buffer */
    node->next = NULL;
    have_view = 0;
    if (cpar_msg_add_zerocopy(m, node->view.buf, (size_t)node->view.len, cpar__zc_free, node) !=
        0) {
        PyErr_NoMemory();
        PyBuffer_Release(&node->view);
        goto error;
    }
    atomic_fetch_add(&cpar__zc_count, 1);
    return 0;
error:
    if (have_view)
        PyBuffer_Release(&view);
    PyMem_RawFree(node);
    return -1;
}

void
cpar_zc_drain(void)
{
    cpar__zc_node *list;

    pthread_mutex_lock(&cpar__zc_lock);
    list = cpar__zc_released;
    cpar__zc_released = NULL;
    pthread_mutex_unlock(&cpar__zc_lock);
    while (list != NULL) {
        cpar__zc_node *next = list->next;
        /* Releasing may run arbitrary Python code (a __del__), hence the GIL. */
        PyBuffer_Release(&list->view);
        PyMem_RawFree(list);
        atomic_fetch_sub(&cpar__zc_count, 1);
        list = next;
    }
}

Py_ssize_t
cpar_zc_outstanding(void)
{
    return (Py_ssize_t)atomic_load(&cpar__zc_count);
}
