"""Exceptions of cpar: errors raised on engines, engine deaths, timeouts, connection problems.

The names and attributes follow ipyparallel's ``ipyparallel.error``, so code that catches
``RemoteError`` or ``CompositeError`` keeps working. As in ipyparallel, what ends a request
without a user exception - an engine's death, a dependency that cannot be met, a task's
timeout - is raised as a ``RemoteError`` (``ename`` its class name), so
``except RemoteError`` catches it; here it is also an instance of that class
(``EngineError``, ``ImpossibleDependency``, ``TaskTimeout`` ...). The C extension maps its error codes to
these classes (``cpar._core.error_class``); every class here can be built from a single
message string for that purpose.
"""

import builtins

__all__ = [
    "CparError",
    "KernelError",
    "SharedMemoryError",
    "RemoteError",
    "CompositeError",
    "EngineError",
    "TimeoutError",
    "TaskAborted",
    "TaskTimeout",
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


class KernelError(CparError):
    """Base class of the errors ipyparallel groups under ``KernelError``: remote errors,
    scheduler failures, timeouts, aborts."""


class TimeoutError(KernelError, builtins.TimeoutError):
    """A wait ran out of time (also a builtin ``TimeoutError``)."""


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
    """Errors from several engines of one request; ``elist`` holds one per engine."""

    def __init__(self, message, elist):
        self.message = message
        self.elist = list(elist)
        RemoteError.__init__(self, "CompositeError", message)
        self.args = (message, self.elist)

    def __str__(self):
        lines = [self.message]
        lines += [str(e) for e in self.elist]
        return "\n".join(lines)

    def __repr__(self):
        return f"<CompositeError: {len(self.elist)} error(s)>"

    def render_traceback(self, excid=None):
        """The tracebacks of every engine's error (or only of ``elist[excid]``)."""
        errors = self.elist if excid is None else [self.elist[excid]]
        lines = [f"CompositeError: {self.message}", ""] if excid is None else []
        for e in errors:
            lines += e.render_traceback()
            lines.append("")
        return lines or [self.message]

    def raise_exception(self, excid=0):
        """Raises the ``excid``-th engine's error itself."""
        raise self.elist[excid]


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


class TaskTimeout(DependencyTimeout):
    """A load-balanced task did not start within its ``timeout`` (waiting for its
    dependencies or for an engine). ipyparallel's name for it; it is also a
    ``DependencyTimeout``, which cpar raised before."""
