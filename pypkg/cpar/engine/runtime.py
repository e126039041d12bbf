"""What the engine binary runs for each task, called from C (engine/runner.c).

The C main loop hands over one task at a time: ``run_task(kind, frames)`` with the message
type (EXECUTE or APPLY) and its payload frames after the target list, as writable
``_cpar_engine.Frame`` buffers. It returns ``(status, frames)``: status 0 and the
serialized result, or status 1 and one frame holding a pickled error dict
(``ename``, ``evalue``, ``traceback``, ``engine_id``), per docs/protocol.md. Everything a
task raises, ``KeyboardInterrupt`` from an interrupt included, becomes such an error; the
engine lives on. Code runs in the persistent namespace ``sys.modules['__main__'].__dict__``.
EXECUTE cells are Python; IPython syntax (``%magic``, ``!cmd``) is translated by IPython when
it is importable on the engine, so ``%px %time f()`` works.

This module must stay importable without the client (no ``cpar._core``, no ``cpar.client``).
"""

import collections
import linecache
import os
import pickle
import sys
import traceback

from cpar import serialize

ABORTED = 0  # not a wire type: the engine dropped this request (ABORT) before it ran
EXECUTE = 10  # wire message types (cext/core/wire.h)
APPLY = 11
TASK = 12  # a load-balanced APPLY

STATUS_UNMET = 2  # TASK: the function's @require/@depend does not hold on this engine

STATUS_OK = 0
STATUS_ERROR = 1

engine_id = -1  # set by the engine (C) once registered

# Source of executed cells, kept for tracebacks and inspect.getsource; bounded.
_MAX_CELLS = 1000
_cells = collections.deque()
_cell_count = 0


def _after_fork_in_child():
    # A process forked by user code (multiprocessing, os.fork) is not the engine: its
    # output goes to the real files the engine was started with.
    for name in ("stdout", "stderr"):
        real = getattr(sys, f"__{name}__", None)
        if real is not None and type(getattr(sys, name)).__module__ == "_cpar_engine":
            setattr(sys, name, real)


os.register_at_fork(after_in_child=_after_fork_in_child)


def namespace():
    """The engine's persistent user namespace."""
    return sys.modules["__main__"].__dict__


def _remember_source(code):
    global _cell_count
    _cell_count += 1
    name = f"<cpar-execute-{_cell_count}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    _cells.append(name)
    while len(_cells) > _MAX_CELLS:
        linecache.cache.pop(_cells.popleft(), None)
    return name


_shell = None  # IPython's InteractiveShell, made on the first cell that needs it


def _ipython_shell():
    """IPython's shell over the engine namespace, or None when IPython is not installed."""
    global _shell
    if _shell is None:
        try:
            from IPython.core.interactiveshell import InteractiveShell
            from traitlets.config import Config
        except ImportError:
            return None
        config = Config()
        config.HistoryManager.enabled = False  # no sqlite history file per engine
        main = sys.modules["__main__"]
        _shell = InteractiveShell.instance(config=config, user_module=main,
                                           user_ns=main.__dict__)
    return _shell


def _compile_cell(code):
    """Compiles a cell; IPython syntax (``%magic``, ``!cmd``) goes through IPython's
    transformer when plain Python does not compile and IPython is importable."""
    filename = _remember_source(code)
    try:
        return compile(code, filename, "exec")
    except SyntaxError as exc:
        error = exc
    shell = _ipython_shell()
    if shell is None:
        raise error
    transformed = shell.transform_cell(code)
    if transformed == code:
        raise error
    try:
        compiled = compile(transformed, filename, "exec")
    except SyntaxError:
        raise error from None
    linecache.cache[filename] = (len(transformed), None, transformed.splitlines(True), filename)
    return compiled


def _execute(frames):
    code = str(frames[0], "utf-8") if frames else ""
    exec(_compile_cell(code), namespace())
    return serialize.serialize_object(None)


def _apply(frames):
    f, args, kwargs = serialize.unpack_apply_message(frames, namespace())
    result = f(*args, **kwargs)
    return serialize.serialize_object(result)


def _format_traceback(exc):
    """The traceback of exc without this module's own frames at its head."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _safe_str(exc):
    try:
        return str(exc)
    except BaseException:  # a broken __str__ must not lose the error
        return f"<unprintable {type(exc).__name__}>"


def error_frames(exc):
    """``[pickle of the error dict]`` for the exception exc."""
    try:
        tb = _format_traceback(exc)
    except BaseException:
        tb = ""
    err = {
        "ename": type(exc).__name__,
        "evalue": _safe_str(exc),
        "traceback": tb,
        "engine_id": engine_id,
    }
    return (STATUS_ERROR, [pickle.dumps(err, protocol=serialize.PROTOCOL)])


class TaskAborted(Exception):
    """The request was aborted before it started on this engine."""


def run_task(kind, frames):
    """Runs one task; returns ``(status, frames)`` for its REPLY."""
    try:
        if kind == EXECUTE:
            return (STATUS_OK, _execute(frames))
        if kind == APPLY or kind == TASK:
            return (STATUS_OK, _apply(frames))
        if kind == ABORTED:
            raise TaskAborted(f"engine {engine_id}: aborted before it started")
        raise ValueError(f"unknown task type {kind}")
    except BaseException as exc:  # noqa: B036 - every outcome must become a reply
        status, out = error_frames(exc)
        if kind == TASK and type(exc).__name__ == "UnmetDependency":
            status = STATUS_UNMET
        return (status, out)
