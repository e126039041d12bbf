"""View: what every view on a client's engines shares (ipyparallel's ``View``), the base
of ``DirectView``, ``BroadcastView`` and ``LoadBalancedView``.

A subclass names its flags (``_flags``) and implements ``_apply(f, args, kwargs,
block=None)`` and ``map(f, *sequences, block=None, ...)``; this class gives it the
request history, ``set_flags``/``temp_flags``, the ``apply``/``map`` variants, the
decorators, the executor, the joblib backend and ``wait``.
"""

import collections
import concurrent.futures
import contextlib

from . import remotefunctions as rf

_HISTORY = 10_000  # msg ids remembered in view.history


def _fname(f):
    """The name a request of ``f`` is shown under."""
    return getattr(f, "__name__", None) or type(f).__name__


def _check_label(label):
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a str or None, not {type(label).__name__}")
    return label


class View:
    """A view on a client's engines: a ``DirectView`` (chosen engines), a
    ``BroadcastView`` or a ``LoadBalancedView`` (the scheduler picks)."""

    _flags = ("block", "track", "targets", "label")

    def __init__(self, client, block=None):
        object.__setattr__(self, "client", client)
        object.__setattr__(self, "block", client.block if block is None else block)
        object.__setattr__(self, "track", False)
        # the label the controller's task database records with each request (None: no
        # label); docs/taskdb.md
        object.__setattr__(self, "label", None)
        object.__setattr__(self, "_history", collections.deque(maxlen=_HISTORY))

    @property
    def history(self):
        """msg ids (hex) of the requests sent through this view, oldest first (the last
        10,000)."""
        return [m.hex() for m in self._history]

    def _sent(self, ar, label=None):
        """Records the requests of ``ar`` (just sent through this view) in the history,
        and gives them their label in the task database: ``label``, else the view's
        ``label`` flag (sent right after the requests, on the same connection)."""
        self._history.extend(ar._msg_ids)
        if label is None:
            label = self.label
        if label is not None and ar._slots:
            self.client._label_requests(ar._msg_ids, label)
        return ar

    # -- flags --------------------------------------------------------------------------

    def _check_flags(self, names):
        for name in names:
            if name not in self._flags:
                raise KeyError(f"Invalid name: {name!r}")

    def set_flags(self, **kwargs):
        """Sets flags (``block``, ``track``, ``targets``, ``label`` and the view's own);
        KeyError for any other name. Returns the view, so that
        ``view.set_flags(label="x").apply_async(f)`` works.

        ``label``: a str the controller's task database records with every request sent
        through the view from now on (``rc.db_query({"label": "x"})`` finds them), or
        None."""
        self._check_flags(kwargs)
        if "label" in kwargs:
            _check_label(kwargs["label"])
        for name, value in kwargs.items():
            setattr(self, name, value)
        return self

    @contextlib.contextmanager
    def temp_flags(self, **kwargs):
        """``with view.temp_flags(block=True): ...`` sets flags for the block only."""
        self._check_flags(kwargs)
        saved = {name: getattr(self, name) for name in kwargs}
        self.set_flags(**kwargs)
        try:
            yield self
        finally:
            self.set_flags(**saved)

    # -- apply and map ------------------------------------------------------------------

    def apply(self, f, /, *args, **kwargs):
        """Calls ``f(*args, **kwargs)`` on the view's engine(s); waits if ``block``."""
        return self._apply(f, args, kwargs)

    def apply_sync(self, f, /, *args, **kwargs):
        """Calls ``f(*args, **kwargs)`` on the view's engine(s) and returns the
        result(s)."""
        return self._apply(f, args, kwargs, block=True)

    def apply_async(self, f, /, *args, **kwargs):
        """Calls ``f(*args, **kwargs)`` on the view's engine(s); returns an
        AsyncResult."""
        return self._apply(f, args, kwargs, block=False)

    def map_sync(self, f, *sequences, **kwargs):
        """``map(..., block=True)``: the list of results."""
        return self.map(f, *sequences, block=True, **kwargs)

    def map_async(self, f, *sequences, **kwargs):
        """``map(..., block=False)``: an AsyncMapResult."""
        return self.map(f, *sequences, block=False, **kwargs)

    # -- decorators, executor, joblib ---------------------------------------------------

    def remote(self, block=None):
        """Decorator: calling the function runs it on this view (one request)."""
        return lambda f: rf.RemoteFunction(self, f, block=block)

    @property
    def executor(self):
        """A ``concurrent.futures.Executor`` running its work on this view."""
        from .executor import ViewExecutor

        return ViewExecutor(self)

    def register_joblib_backend(self, name="ipyparallel", make_default=False):
        """Registers this view as the joblib backend ``name``:
        ``Parallel(backend=name)`` (or ``with joblib.parallel_backend(name)``) runs its
        calls here. ``make_default``: joblib's default backend from now on."""
        from ..joblib import register_view

        return register_view(self, name=name, make_default=make_default)

    # -- housekeeping -------------------------------------------------------------------

    def _own_jobs(self):
        """What ``wait()`` waits for: None (everything outstanding of the client)."""
        return None

    def wait(self, jobs=None, timeout=-1, return_when=concurrent.futures.ALL_COMPLETED):
        """Waits for ``jobs`` (AsyncResults or msg ids; None: the view's outstanding
        requests); see ``Client.wait``."""
        jobs = self._own_jobs() if jobs is None else jobs
        if return_when == concurrent.futures.ALL_COMPLETED:  # the plain call, as ipyparallel
            return self.client.wait(jobs, timeout)              # makes it (wrappers see that)
        return self.client.wait(jobs, timeout, return_when=return_when)


__all__ = ["View"]
