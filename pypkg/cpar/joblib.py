"""A joblib parallel backend running joblib's batches as cpar tasks. For example::

    import cpar
    rc = cpar.Client()
    rc.load_balanced_view().register_joblib_backend("cpar")
    with joblib.parallel_backend("cpar"):
        Parallel(n_jobs=-1)(delayed(f)(x) for x in xs)

``view.register_joblib_backend(name)`` registers one view; ``cpar.register_joblib_backend``
registers a backend that connects a client to the default cluster (``cpar.Client()``)
when joblib first uses it. Importing this module also makes the names ``cpar`` and
``ipyparallel`` known to joblib, so ``parallel_backend('cpar')`` finds the default backend
without an explicit registration.

Each batch joblib hands over is one load-balanced task (joblib's ``BatchedCalls``
travels pickled like any argument). joblib's completion callbacks run on a small thread
of the backend, never on the client's dispatch thread, since they may send the next batch.
"""

import concurrent.futures
import threading

from joblib.parallel import (
    EXTERNAL_BACKENDS,
    AutoBatchingMixin,
    ParallelBackendBase,
    register_parallel_backend,
)

DEFAULT_NAMES = ("ipyparallel", "cpar")


def _default_client():
    """``cpar.Client()`` for the default cluster. Made in two steps so that an object
    ``Client.__new__`` hands back already connected (a patched constructor, a subclass
    reusing a client) is used as it is rather than connected a second time."""
    from .client import Client

    rc = Client.__new__(Client)
    if getattr(rc, "_dispatcher", None) is None:
        try:
            rc.__init__()
        except Exception as exc:
            raise RuntimeError(
                "the cpar joblib backend found no cluster to use: start one (`cpar "
                "cluster start`, or cpar.Cluster) or register a view with "
                f"view.register_joblib_backend(name) ({type(exc).__name__}: {exc})"
            ) from exc
    return rc


class CparBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend: batches run as tasks of a cpar view (a load-balanced view of the
    default cluster when none is given)."""

    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = True

    def __init__(self, view=None, **kwargs):
        super().__init__(**kwargs)
        self._client_owner = view is None
        if view is None:
            rc = _default_client()
            if not rc.ids:
                rc.wait_for_engines(1, timeout=30)
            view = rc.load_balanced_view()
        self._view = view
        self._callbacks = None
        self._callbacks_lock = threading.Lock()

    @property
    def view(self):
        return self._view

    def effective_n_jobs(self, n_jobs):
        """As many jobs as the view has engines (whatever ``n_jobs`` asks)."""
        n = len(self._view)
        if n < 1:
            raise RuntimeError("the cpar joblib backend's view has no engines")
        return n

    def _callback_pool(self):
        with self._callbacks_lock:
            if self._callbacks is None:
                self._callbacks = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="cpar-joblib")
            return self._callbacks

    def submit(self, func, callback=None):
        """Runs one batch as a task; ``callback(future)`` once it has finished."""
        ar = self._view.apply_async(func)
        if callback is not None:
            pool = self._callback_pool()
            ar.add_done_callback(lambda fut: pool.submit(callback, fut))
        return ar

    def apply_async(self, func, callback=None):
        return self.submit(func, callback)

    def retrieve_result_callback(self, out):
        return out.result()

    def retrieve_result(self, out, timeout=None):
        return out.get(timeout=timeout)

    def abort_everything(self, ensure_ready=True):
        try:
            self._view.abort()
        except Exception:  # noqa: BLE001 - finished meanwhile: nothing to abort
            pass

    def terminate(self):
        with self._callbacks_lock:
            pool, self._callbacks = self._callbacks, None
        if pool is not None:
            pool.shutdown(wait=False)


IPythonParallelBackend = CparBackend  # the name ipyparallel gives its backend


def register_view(view, name="ipyparallel", make_default=False):
    """Registers ``view`` as the joblib backend ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a joblib backend name must be a non-empty str, not {name!r}")
    register_parallel_backend(name, lambda **kw: CparBackend(view=view, **kw),
                              make_default=make_default)


def register(name="ipyparallel", make_default=False):
    """Registers the backend ``name`` that uses the default cluster (``cpar.Client()``,
    connected when joblib first uses the backend)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a joblib backend name must be a non-empty str, not {name!r}")
    register_parallel_backend(name, CparBackend, make_default=make_default)


def register_joblib_backend(name="ipyparallel", make_default=False):
    """``cpar.register_joblib_backend()``: see :func:`register`."""
    return register(name=name, make_default=make_default)


def _on_demand(name):
    return lambda: register(name)


for _name in DEFAULT_NAMES:
    EXTERNAL_BACKENDS.setdefault(_name, _on_demand(_name))
