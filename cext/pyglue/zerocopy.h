/* Zero-copy sends of Python buffers, and the GIL-safe release of them afterwards.
 *
 * cpar_zc_add_frame pins a Python object's buffer and adds it to a cpar_msg as a
 * zero-copy frame. libzmq later calls the free callback from its own I/O thread, without
 * the GIL; the callback only pushes the pinned buffer onto a lock-protected release queue.
 * cpar_zc_drain, called with the GIL held (before every send and from the receive path),
 * releases what is queued. Buffers under CPAR_ZC_MIN_SIZE are copied instead.
 *
 * Shared by the extension cpar._core and the engine binary. */
#ifndef CPAR_MODULE_ZEROCOPY_H
#define CPAR_MODULE_ZEROCOPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire.h"

#define CPAR_ZC_MIN_SIZE 65536

/* Adds obj's bytes (any C-contiguous buffer) as a frame of m: copied when small,
 * zero-copy (obj's buffer held until libzmq frees it) when large. GIL held. Returns 0,
 * or -1 with an exception set. Borrows obj. */
int cpar_zc_add_frame(cpar_msg *m, PyObject *obj);

/* Releases every buffer libzmq has finished with. GIL held. */
void cpar_zc_drain(void);

/* Buffers handed to libzmq and not yet released (for leak checks in tests). */
Py_ssize_t cpar_zc_outstanding(void);

#endif /* CPAR_MODULE_ZEROCOPY_H */
