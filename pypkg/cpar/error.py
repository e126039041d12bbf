"""Exceptions of cpar: errors raised on engines, engine deaths, timeouts, connection problems.

The names and attributes follow ipyparallel's ``ipyparallel.error``, so code that catches
``RemoteError`` or ``CompositeError`` keeps working. As in ipyparallel, what ends a request
without a user exception - an engine's death, a dependency that cannot be met, a task's
timeout - is raised as a ``RemoteError`` (``ename`` its class name), so
``except RemoteError`` catches it; here it is also an instance of that class
(``EngineError``, ``ImpossibleDependency``, ``TaskTimeout`` ...). The C extension maps its error codes to
these classes (``cpar._core.error_class``); every class here can be built from a single
message string for that purpose.

The base classes are ipyparallel's, so an ``except`` clause catches here what it catches
there: ``KernelError`` is the base of ``RemoteError``, ``EngineError``, ``TaskAborted``,
``TaskTimeout``, ``NoEnginesRegistered``, ``TaskRejectError`` and the dependency errors
(``UnmetDependency`` > ``ImpossibleDependency`` > ``DependencyTimeout``,
``InvalidDependency``); ``TimeoutError`` is the builtin one (a wait that ran out of time is
not a ``KernelError``); ``IPythonError`` is ipyparallel's name for ``CparError``. The
errors ipyparallel reports as a ``RemoteError`` with that ``ename`` are instances of
``RemoteError`` and of the class named (``EngineError``, ``TaskTimeout`` ...), so both
``except RemoteError`` and ``except TaskTimeout`` catch them.
"""

import builtins

__all__ = [
    "CparError",
    "IPythonError",
    "KernelError",
    "SharedMemoryError",
    "RemoteError",
    "CompositeError",
    "AlreadyDisplayedError",
    "EngineError",
    "TimeoutError",
    "TaskAborted",
    "TaskTimeout",
    "TaskRejectError",
    "UnmetDependency",
    "ImpossibleDependency",
    "DependencyTimeout",
    "InvalidDependency",
    "NoEnginesRegistered",
    "NoSuchEngine",
    "ControllerUnreachable",
    "ControllerShutdown",
    "ConnectionClosed",
    "SignatureError",
    "WrongKey",
    "ProtocolError",
    "TransportError",
    "SerializationError",
    "ResultNotKept",
]


class CparError(Exception):
    """Base class of every cpar error."""


class SerializationError(CparError, TypeError):
    """An object of a request cannot be pickled (a lock, a generator, an open file...): the
    message names which argument; nothing was sent. Also a ``TypeError``."""


class ProtocolError(CparError):
    """A malformed message: truncated, unknown wire version or message type."""


class SignatureError(CparError):
    """A message carried a missing or wrong signature."""


class WrongKey(SignatureError):
    """The controller signs with a different key than the one in our connection file."""


class TransportError(CparError, OSError):
    """The socket layer (libzmq) or the operating system failed."""


class SharedMemoryError(TransportError):
    """Bytes sent through same-host shared memory could not be read: their sender released
    them first (it closed, lost its connection, or gave up waiting), or the kernel denied
    the read. Never wrong bytes: the request fails with this instead."""


class ConnectionClosed(CparError):
    """The connection (or the client owning it) is closed."""


class ControllerUnreachable(CparError, ConnectionError):
    """No controller answered at the connection file's address."""


class ControllerShutdown(CparError):
    """The controller is shutting down."""


IPythonError = CparError  # ipyparallel's name of its base class


class KernelError(CparError):
    """Base class of the errors ipyparallel groups under ``KernelError``: remote errors,
    scheduler failures, task timeouts, aborts."""


# A wait that ran out of time (``ar.get(timeout)``, ``rc.wait``...) raises the builtin
# ``TimeoutError``, as in ipyparallel: ``cpar.error.TimeoutError`` is that class.
TimeoutError = builtins.TimeoutError


class NoEnginesRegistered(KernelError):
    """A request needs engines and none are registered."""


class NoSuchEngine(CparError, IndexError):
    """A request named an engine id that is not registered."""


class RemoteError(KernelError):
    """An exception raised by user code on an engine.

    ``ename`` is the remote exception's class name, ``evalue`` its ``str``, ``traceback``
    the formatted remote traceback, ``engine_info`` a dict with at least ``engine_id``.
    """

    def __init__(self, ename, evalue, traceback="", engine_info=None):
        super().__init__(ename, evalue, traceback, engine_info)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or ""
        self.engine_info = dict(engine_info or {})

    @property
    def engine_id(self):
        return self.engine_info.get("engine_id")

    def _prefix(self):
        eid = self.engine_id
        return "" if eid is None else f"[Engine {eid}] "

    def __str__(self):
        return f"{self._prefix()}{self.ename}: {self.evalue}"

    def __repr__(self):
        return f"<{type(self).__name__} {self}>"

    def render_traceback(self):
        """The lines IPython shows for this error: the remote traceback."""
        lines = self.traceback.rstrip("\n").splitlines() if self.traceback else []
        if not lines:
            return [str(self)]
        if self.engine_id is not None:
            lines.insert(0, f"[Engine {self.engine_id}]")
        return lines

    def _render_traceback_(self):
        """IPython shows these lines instead of the local traceback."""
        return self.render_traceback()

    def print_traceback(self):
        print("\n".join(self.render_traceback()))


class _Reported(RemoteError):
    """A failure the controller reports instead of an engine's exception: a
    ``RemoteError`` whose ``ename`` is its class name, built from a message (and the
    engine concerned, if any), so the C extension can make one from a string."""

    def __init__(self, message="", engine_id=None):
        message = str(message) if message is not None else ""
        RemoteError.__init__(self, type(self).__name__, message, "",
                             {"engine_id": engine_id})
        self.message = message
        self.args = (message, engine_id)

    def __str__(self):
        eid = self.engine_id
        if eid is None or f"{eid}" in self.message:
            return self.message
        return f"[Engine {eid}] {self.message}"

    def render_traceback(self):
        return [str(self)]


class EngineError(_Reported):
    """An engine died (or stopped) before answering a request."""

    def __init__(self, message="engine died", engine_id=None):
        super().__init__(message, engine_id)


class CompositeError(RemoteError):
    """Errors from several engines (or tasks) of one request.

    ``elist`` holds one error per failed engine or task, in order: each a ``RemoteError``
    (``ename``, ``evalue``, ``traceback``, ``engine_info``) or another ``KernelError``
    (``TaskAborted``...). ``str()`` and ``render_traceback()`` show the first
    ``tb_limit`` of them and then how many more there are.
    """

    tb_limit = 4  # how many errors str() and render_traceback() show (ipyparallel's value)

    # ipyparallel's attribute (how many tracebacks its short rendering shows); cpar's
    # render_traceback shows every engine's.
    tb_limit = 4

    def __init__(self, message, elist):
        self.message = message
        self.elist = list(elist)
        RemoteError.__init__(self, "CompositeError", message)
        self.args = (message, self.elist)

    def _more(self, template):
        """[the "N more" line] when elist is longer than tb_limit, else []."""
        extra = len(self.elist) - max(int(self.tb_limit), 0)
        return [template.format(extra)] if extra > 0 else []

    def _shown(self):
        return self.elist[:max(int(self.tb_limit), 0)]

    def __str__(self):
        lines = [self.message]
        lines += [str(e) for e in self._shown()]
        lines += self._more("... {} more exceptions ...")
        return "\n".join(lines)

    def __repr__(self):
        return f"<CompositeError: {len(self.elist)} error(s)>"

    def _error(self, excid):
        try:
            return self.elist[excid]
        except (IndexError, TypeError):
            raise IndexError(f"CompositeError has no error {excid!r}: it holds "
                             f"{len(self.elist)} (indices 0 to {len(self.elist) - 1})") from None

    @staticmethod
    def _lines_of(e, label=False):
        """e's traceback lines; with label, a first line "[Engine 1]" names the call too
        ("[Engine 1:execute]"): errors of several requests can meet here."""
        if not isinstance(e, RemoteError):
            return [f"{type(e).__name__}: {e}"]
        lines = e.render_traceback()
        method = e.engine_info.get("method")
        if label and method and lines and lines[0] == f"[Engine {e.engine_id}]":
            lines = [f"[Engine {e.engine_id}:{method}]"] + lines[1:]
        return lines

    def render_traceback(self, excid=None):
        """The lines IPython shows: each engine's traceback, the first ``tb_limit`` of
        them followed by a "... N more exceptions ..." line if there are more; or only
        ``elist[excid]``'s (``IndexError`` if there is no such error)."""
        if excid is not None:
            return self._lines_of(self._error(excid))
        lines = [f"CompositeError: {self.message}", ""]
        for e in self._shown():
            lines += self._lines_of(e, label=True)
            lines.append("")
        return lines + self._more("... {} more exceptions ...")

    def print_traceback(self, excid=None):
        """Prints ``render_traceback(excid)``."""
        print("\n".join(self.render_traceback(excid)))

    def raise_exception(self, excid=0):
        """Raises the ``excid``-th error of ``elist`` itself (``IndexError`` if there is
        no such error)."""
        raise self._error(excid)


class AlreadyDisplayedError(CompositeError):
    """A ``CompositeError`` whose tracebacks were already shown (``%%px --stream`` prints
    each engine's traceback as it ends): IPython shows only ``N errors``. The original
    error is ``original_error``; ``elist`` holds each engine's error."""

    def __init__(self, original_error):
        self.original_error = original_error
        elist = list(getattr(original_error, "elist", None) or [original_error])
        self.n = len(elist)
        CompositeError.__init__(self, f"{self.n} errors", elist)
        self.args = (original_error,)

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"<{type(self).__name__}({self.message})>"

    def render_traceback(self, excid=None):
        if excid is not None:
            return CompositeError.render_traceback(self, excid)
        return [str(self)]

    def _render_traceback_(self):
        return self.render_traceback()


class TaskAborted(KernelError):
    """The task was aborted (``AsyncResult.abort()``) before it finished (not a
    ``RemoteError``, as in ipyparallel)."""

    def __init__(self, message="task aborted", engine_id=None):
        super().__init__(message)
        self.message = message
        self.engine_info = {"engine_id": engine_id}

    @property
    def engine_id(self):
        return self.engine_info.get("engine_id")


class UnmetDependency(_Reported):
    """A task's dependencies are not met (yet) on this engine (raise it in a task to
    have the scheduler try another engine)."""


class ImpossibleDependency(UnmetDependency):
    """A task's dependencies can never be met."""


class InvalidDependency(ImpossibleDependency):
    """A task's ``after``/``follow`` names something that is not a task (not a msg id)."""


class DependencyTimeout(ImpossibleDependency):
    """A task's dependencies were not met within its timeout."""


class TaskTimeout(_Reported):
    """A load-balanced task did not start within its ``timeout``: no engine took it (with
    ``retries``: it failed on every engine and none other came in time), or its
    dependencies were not met in time. A ``RemoteError`` and a ``KernelError``, as in
    ipyparallel. The error of a dependency timeout is also a ``DependencyTimeout``
    (``_DependencyTaskTimeout``)."""


class _DependencyTaskTimeout(TaskTimeout, DependencyTimeout):
    """The ``TaskTimeout`` of a task whose dependencies were not met within its timeout:
    also a ``DependencyTimeout``, as cpar has always raised there (ename ``TaskTimeout``,
    as ipyparallel)."""

    def __init__(self, message="", engine_id=None):
        super().__init__(message, engine_id)
        self.ename = "TaskTimeout"

    def __repr__(self):
        return f"<TaskTimeout {self}>"


class TaskRejectError(KernelError):
    """ipyparallel's name for a task's refusal to run on an engine; cpar's scheduler tries
    another engine when a task raises ``UnmetDependency`` (see ``cpar.require``)."""


class ResultNotKept(CparError):
    """A result the controller's task database did not keep (docs/taskdb.md): its reply
    was bigger than ``--db-keep-bytes`` or went through shared memory, so only the
    client that sent the request got it. ``msg_id`` names the part, ``size`` the
    reply's bytes (None when unknown)."""

    def __init__(self, msg_id, size=None):
        self.msg_id = msg_id
        self.size = size
        if size is None and isinstance(msg_id, str) and " " in msg_id:  # unpickled
            super().__init__(msg_id)
            return
        sz = "of unknown size" if size is None else f"{size} bytes"
        super().__init__(
            f"the result of {msg_id} was not kept by the controller's task database: "
            f"its reply was {sz} (over the controller's --db-keep-bytes, or sent "
            "through shared memory); only the client that sent the request got it")
