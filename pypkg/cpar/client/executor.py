"""``view.executor`` / ``Client.executor()``: a ``concurrent.futures.Executor`` on a view,
and ``LazyMapIterator``, the iterator ``lbview.imap`` and ``executor.map`` return.

The executor adds no machinery of its own: ``submit`` is ``view.apply_async`` (an
AsyncResult is a ``concurrent.futures.Future``), ``map`` sends every task at once with
``view.map_async`` and hands back an iterator over the results, and ``shutdown`` waits for
the view's outstanding tasks. Engines are never stopped by it.
"""

import concurrent.futures
import threading


class LazyMapIterator:
    """The results of a map, one at a time as they are asked for.

    ``cancel()`` stops it: no further tasks are sent (for ``imap``, which reads its
    input lazily), and iteration ends. Tasks already sent still run; wait for them with
    ``client.wait()`` or abort them with ``view.abort()``.
    """

    def __init__(self, results, on_cancel=None):
        self._results = iter(results)
        self._on_cancel = on_cancel
        self._cancelled = False
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        if self._cancelled:
            raise StopIteration
        return next(self._results)

    def cancel(self):
        """Sends no more tasks and ends the iteration (idempotent)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
        if self._on_cancel is not None:
            self._on_cancel()
        close = getattr(self._results, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": another thread is in it
                pass

    close = cancel  # as a generator's close(), for code that used imap's generator

    @property
    def cancelled(self):
        return self._cancelled

    def __repr__(self):
        state = "cancelled" if self._cancelled else "active"
        return f"<LazyMapIterator {state}>"


class ViewExecutor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` whose work runs on the engines of ``view``.

    ``submit(fn, *args, **kwargs)`` returns the AsyncResult of one task (a Future);
    ``map(fn, *iterables)`` sends one task per element at once and returns a
    ``LazyMapIterator`` of the results in order; ``shutdown(wait=True)`` waits for the
    view's outstanding tasks (the engines keep running). Usable as a context manager.
    """

    def __init__(self, view):
        self.view = view
        self._shutdown = False

    @property
    def _max_workers(self):
        return len(self.view)

    def _check_open(self):
        if self._shutdown:
            raise RuntimeError("cannot schedule new work after shutdown of this executor")

    def submit(self, fn, /, *args, **kwargs):
        """``fn(*args, **kwargs)`` as one task of the view: its ``AsyncResult`` (a
        ``concurrent.futures.Future``)."""
        self._check_open()
        if not callable(fn):
            raise TypeError(f"submit needs a callable, not {fn!r}")
        return self.view.apply_async(fn, *args, **kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1, **kwargs):
        """``fn`` over the iterables (element-wise, as the builtin ``map``). ``timeout``:
        seconds from this call after which waiting for a result raises
        ``concurrent.futures.TimeoutError``."""
        self._check_open()
        if not callable(fn):
            raise TypeError(f"map needs a callable, not {fn!r}")
        if not iterables:
            raise TypeError("map needs at least one iterable")
        seqs = [it if hasattr(it, "__len__") and hasattr(it, "__getitem__") else list(it)
                for it in iterables]
        if "chunksize" in _map_params(self.view):
            kwargs["chunksize"] = chunksize
        ar = self.view.map(fn, *seqs, block=False, **kwargs)
        if timeout is None:
            return LazyMapIterator(ar)
        return LazyMapIterator(_until(ar, timeout))

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new work is accepted; ``wait``: waits for the view's outstanding tasks;
        ``cancel_futures``: aborts them instead."""
        self._shutdown = True
        if cancel_futures:
            try:
                self.view.abort()
            except Exception:  # noqa: BLE001 - nothing to abort, or already finished
                pass
        if wait:
            self.view.wait()

    def __repr__(self):
        return f"<ViewExecutor on {self.view!r}>"


def _map_params(view):
    import inspect

    try:
        return inspect.signature(view.map).parameters
    except (TypeError, ValueError):
        return {}


def _until(ar, timeout):
    import time

    deadline = time.monotonic() + timeout
    results = iter(ar)
    while True:
        if not ar.wait(max(0.0, deadline - time.monotonic())):
            if not ar.done():
                raise concurrent.futures.TimeoutError(
                    f"map results not ready within {timeout} s")
        try:
            yield next(results)
        except StopIteration:
            return


__all__ = ["LazyMapIterator", "ViewExecutor"]
