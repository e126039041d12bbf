"""What the engine binary runs for each task, called from C (engine/runner.c).

The C main loop hands over one task at a time: ``run_task(kind, frames)`` with the message
type (EXECUTE or APPLY) and its payload frames after the target list, as writable
``_cpar_engine.Frame`` buffers. It returns ``(status, frames)``: status 0 and the
serialized result, or status 1 and one frame holding a pickled error dict
(``ename``, ``evalue``, ``traceback``, ``engine_id``), per docs/protocol.md. Everything a
task raises, ``KeyboardInterrupt`` from an interrupt included, becomes such an error; the
engine lives on. Code runs in the persistent namespace ``sys.modules['__main__'].__dict__``.

EXECUTE cells run through IPython's ``InteractiveShell.run_cell`` when IPython is importable
on the engine (and ``$CPAR_ENGINE_IPYTHON`` is not ``0``): magics, ``!cmd``, ``%matplotlib
inline``, the ``Out[N]`` of a trailing expression. The shell's display publisher and
displayhook send what they would show to the client as display messages
(``_cpar_engine.display``, a STREAM with ``FLAG_DISPLAY``; docs/protocol.md), in order with
stdout/stderr. Without IPython a cell is plain ``exec``. APPLY/TASK never go through IPython.

This module must stay importable without the client (no ``cpar._core``, no ``cpar.client``).
"""

import base64
import collections
import contextlib
import json
import linecache
import os
import pickle
import sys
import traceback
import warnings

from cpar import serialize

ABORTED = 0  # not a wire type: the engine dropped this request (ABORT) before it ran
EXECUTE = 10  # wire message types (cext/core/wire.h)
APPLY = 11
TASK = 12  # a load-balanced APPLY

STATUS_UNMET = 2  # TASK: the function's @require/@depend does not hold on this engine

STATUS_OK = 0
STATUS_ERROR = 1

engine_id = -1  # set by the engine (C) once registered

# A task's code runs on the main thread (cpar.engine.kernel runs its requests only between
# tasks), and where display messages go instead of the task's client while a bound Jupyter
# kernel runs a request (a callable taking the message dict, or None).
task_running = False
display_hook = None

# Source of executed cells, kept for tracebacks and inspect.getsource; bounded.
_MAX_CELLS = 1000
_cells = collections.deque()
_cell_count = 0


DEFAULT_PRELOAD = "numpy"


def preload():
    """Imports the modules of ``$CPAR_ENGINE_PRELOAD`` (default: numpy), those installed:
    the engine calls it once registered, before it takes its first request, while the
    client is still busy with its own start. A first request that unpickles an array (a
    ``push``) otherwise waits for ``import numpy`` (about 40 ms: 1 MB pushed at 0.02 GB/s
    into a fresh engine). A module that fails to import is logged and skipped."""
    import importlib
    import importlib.util

    names = os.environ.get("CPAR_ENGINE_PRELOAD", DEFAULT_PRELOAD).replace(",", " ").split()
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                continue
            importlib.import_module(name)
        except BaseException as exc:  # noqa: B036 - never ends the engine
            try:
                import _cpar_engine

                _cpar_engine.log(f"CPAR_ENGINE_PRELOAD: cannot import {name}: "
                                 f"{type(exc).__name__}: {_safe_str(exc)}")
            except Exception:  # noqa: BLE001 - logging is best effort
                pass


def _after_fork_in_child():
    # A process forked by user code (multiprocessing, os.fork) is not the engine: its
    # output goes to the real files the engine was started with.
    for name in ("stdout", "stderr"):
        real = getattr(sys, f"__{name}__", None)
        if real is not None and type(getattr(sys, name)).__module__ == "_cpar_engine":
            setattr(sys, name, real)


os.register_at_fork(after_in_child=_after_fork_in_child)

# Engines have no display: matplotlib gets a non-GUI backend unless told otherwise
# (``%matplotlib inline`` still switches to the inline backend, whose figures come back as
# PNG display outputs).
if "MPLBACKEND" not in os.environ:
    os.environ["MPLBACKEND"] = "Agg"

# $CPAR_ENGINE_IPYTHON=0: EXECUTE cells are plain Python even when IPython is installed.
_USE_IPYTHON = os.environ.get("CPAR_ENGINE_IPYTHON", "1").strip().lower() not in (
    "0", "no", "false", "off")


def namespace():
    """The engine's persistent user namespace."""
    return sys.modules["__main__"].__dict__


_CELL_PREFIX = "<cpar-execute-"


def _new_cell_name():
    """``<cpar-execute-N>``, the file name of the next cell; forgets the oldest cells'
    sources beyond ``_MAX_CELLS``."""
    global _cell_count
    _cell_count += 1
    name = f"{_CELL_PREFIX}{_cell_count}>"
    _cells.append(name)
    while len(_cells) > _MAX_CELLS:
        old = _cells.popleft()
        linecache.cache.pop(old, None)
        getattr(linecache, "_ipython_cache", {}).pop(old, None)
        if _shell is not None:
            getattr(_shell.compile, "_filename_map", {}).pop(old, None)
    return name


def _remember_source(code):
    name = _new_cell_name()
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    return name


# -- display messages -----------------------------------------------------------------------


def _json_default(value):
    """JSON for what json cannot encode: bytes as base64 (as Jupyter sends image/png),
    anything else as its str."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def send_display(msg):
    """Sends one display message (a dict: ``type`` ``display_data``, ``execute_result`` or
    ``clear_output``; docs/protocol.md) to the running task's client, in order with its
    stdout/stderr. Returns False when it was dropped (no task runs)."""
    if display_hook is not None:
        return display_hook(msg)
    data = json.dumps(msg, default=_json_default).encode("utf-8")
    try:
        import _cpar_engine
    except ImportError:  # not inside cpar-engine (a test importing this module)
        return False
    return _cpar_engine.display(data)


# -- IPython ----------------------------------------------------------------------------------

_shell = None  # IPython's InteractiveShell, made on the first cell that needs it
_shell_failed = False  # IPython is not importable (or the shell could not be made)
_shell_depth = 0  # run_cell calls in progress (user code may call run_cell itself)
_shell_top = False  # an EXECUTE cell runs (its run_cell is the one at depth 1)
_shell_cell = None  # the file name of the EXECUTE cell being run


def _make_shell():
    """Our InteractiveShell over the engine namespace (IPython imported here)."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class EngineDisplayPublisher(DisplayPublisher):
        """``display(obj)``, matplotlib's inline figures: display_data to the client."""

        def publish(self, data, metadata=None, source=None, *, transient=None,
                    update=False, **kwargs):
            msg = {"type": "display_data", "data": data, "metadata": metadata or {}}
            if transient:
                msg["transient"] = transient
            if update:
                msg["update"] = True
            send_display(msg)

        def clear_output(self, wait=False):
            send_display({"type": "clear_output", "wait": bool(wait)})

    class EngineDisplayHook(DisplayHook):
        """The value of a cell's trailing expression: execute_result to the client."""

        _cpar_msg = None

        def start_displayhook(self):
            super().start_displayhook()
            self._cpar_msg = {"type": "execute_result", "data": {}, "metadata": {},
                              "execution_count": self.prompt_count}

        def write_output_prompt(self):
            pass  # the client writes Out[engine:n]

        def write_format_data(self, format_dict, md_dict=None):
            if self._cpar_msg is not None:
                self._cpar_msg["data"] = format_dict
                self._cpar_msg["metadata"] = md_dict or {}

        def log_output(self, format_dict):
            pass  # no output history on engines (it would grow without bound)

        def finish_displayhook(self):
            msg, self._cpar_msg = self._cpar_msg, None
            if msg is not None and msg["data"]:
                send_display(msg)
            self._is_active = False

    class EngineShell(InteractiveShell):
        display_pub_class = Type(EngineDisplayPublisher)
        displayhook_class = Type(EngineDisplayHook)

        def showtraceback(self, exc_tuple=None, *args, **kwargs):
            # The error that ends the top-level cell becomes the task's error reply: not
            # printed as well. Others (a magic reporting a failure it caught, a nested
            # run_cell) are shown as IPython would.
            if _shell_top and _shell_depth == 1:
                value = exc_tuple[1] if exc_tuple else sys.exc_info()[1]
                if value is not None and _raised_in_cell(value, _shell_cell):
                    return None
            return super().showtraceback(exc_tuple, *args, **kwargs)

        def showsyntaxerror(self, *args, **kwargs):
            if not (_shell_top and _shell_depth == 1):
                return super().showsyntaxerror(*args, **kwargs)
            return None

        def showindentationerror(self, *args, **kwargs):
            if not (_shell_top and _shell_depth == 1):
                return super().showindentationerror(*args, **kwargs)
            return None

        def enable_gui(self, gui=None):
            # ``%matplotlib inline`` (gui None) needs no event loop; engines have no
            # display for the others.
            if gui not in (None, "inline"):
                from IPython.core.error import UsageError

                raise UsageError(f"cpar engines have no display: GUI event loop {gui!r} is "
                                 "not available (use %matplotlib inline)")

        def run_cell(self, *args, **kwargs):
            global _shell_depth
            _shell_depth += 1
            try:
                return super().run_cell(*args, **kwargs)
            finally:
                _shell_depth -= 1

    config = Config()
    config.HistoryManager.enabled = False  # no sqlite history file per engine
    config.InteractiveShell.colors = "nocolor"  # output goes to files, not a terminal
    main = sys.modules["__main__"]
    shell = EngineShell.instance(config=config, user_module=main, user_ns=main.__dict__)

    def code_name(raw_code, transformed_code, number):
        global _shell_cell
        name = _new_cell_name()
        if _shell_top and _shell_depth == 1:
            _shell_cell = name
        return name

    shell.compile.get_code_name = code_name  # tracebacks name <cpar-execute-N>
    if hasattr(shell, "_tee"):
        # IPython >= 9 copies every write to sys.stdout/err into its output history by
        # patching the stream's write (our C streams have none to patch, and an engine
        # must not keep its output forever).
        shell._tee = lambda channel: contextlib.nullcontext()
    # run_code warns this after a SystemExit, which already is the task's error.
    warnings.filterwarnings("ignore", message="To exit: use 'exit', 'quit', or Ctrl-D.")
    return shell


def _ipython_shell():
    """IPython's shell over the engine namespace, or None when IPython is not installed
    (or turned off with ``$CPAR_ENGINE_IPYTHON=0``)."""
    global _shell, _shell_failed
    if _shell is None and not _shell_failed:
        if not _USE_IPYTHON:
            _shell_failed = True
            return None
        try:
            import IPython  # noqa: F401
        except ImportError:
            _shell_failed = True
            return None
        try:
            _shell = _make_shell()
        except Exception as exc:  # noqa: BLE001 - a broken IPython: plain exec then
            _shell_failed = True
            try:
                import _cpar_engine

                _cpar_engine.log(f"cannot make an IPython shell ({exc!r}); cells run as "
                                 "plain Python")
            except ImportError:
                pass
            return None
    return _shell


def _raised_in_cell(exc, cell):
    """Whether exc propagated out of the code of the cell named ``cell``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == cell:
            return True
        tb = tb.tb_next
    return False


def _from_first_cell_frame(tb):
    """tb from its first frame in an executed cell's code on (None if it has none)."""
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(_CELL_PREFIX):
        tb = tb.tb_next
    return tb


def _trim_history(shell):
    """Bounds what IPython keeps per cell on a long-lived engine: the input history keeps
    the last ``_MAX_CELLS`` cells (older entries become ''), the ``_iN`` variables too,
    nothing is queued for the (disabled) history database."""
    hm = shell.history_manager
    if hm is None:
        return
    for name in ("db_input_cache", "db_output_cache"):
        cache = getattr(hm, name, None)
        if cache:
            del cache[:]
    for name in ("outputs", "exceptions"):
        store = getattr(hm, name, None)
        if store:
            store.clear()
    for hist in (hm.input_hist_parsed, hm.input_hist_raw):
        old = len(hist) - _MAX_CELLS - 1
        if old > 0:
            hist[old] = ""
    old = shell.execution_count - _MAX_CELLS - 1
    if old > 0:
        shell.user_ns.pop(f"_i{old}", None)


def _run_ipython_cell(shell, code, silent=False):
    """Runs one cell with IPython; raises what the cell raised. ``silent``: as Jupyter's
    silent execution, no ``Out[n]`` (execute_result), no history, no execution count
    increment, no pre/post-execute hooks."""
    global _shell_top, _shell_cell
    _shell_top = True
    try:
        result = shell.run_cell(code, store_history=not silent, silent=silent)
    finally:
        _shell_top = False
        _shell_cell = None
    _trim_history(shell)
    err = result.error_before_exec
    if err is None:
        err = result.error_in_exec
    if err is not None:
        # Tracebacks start at the cell's own code, without IPython's frames above it.
        raise err.with_traceback(_from_first_cell_frame(err.__traceback__))


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


_plain_count = 0  # cells run without IPython (not silent): their execution count


def _execute_options(frames):
    """The options of an EXECUTE (payload frame 2, after the code: a UTF-8 JSON object;
    absent from older clients). Unknown keys are ignored."""
    if len(frames) < 2 or not len(frames[1]):
        return {}
    try:
        opts = json.loads(bytes(frames[1]))
    except ValueError as exc:
        raise ValueError(f"cpar: malformed execute options frame: {exc}") from None
    if not isinstance(opts, dict):
        raise ValueError("cpar: the execute options frame is not a JSON object")
    return opts


def _execute(frames):
    """Runs a cell; its result is ``{"execution_count": n}`` (the cell's number: the one
    of its ``Out[n]``, or the last cell's for a silent one), which the client turns into
    an ExecuteReply with the outputs it received."""
    global _plain_count
    code = str(frames[0], "utf-8") if frames else ""
    silent = bool(_execute_options(frames).get("silent", False))
    shell = _ipython_shell()
    if shell is not None:
        _run_ipython_cell(shell, code, silent=silent)
        count = shell.execution_count - 1
    else:
        if not silent:
            _plain_count += 1
        exec(_compile_cell(code), namespace())
        count = _plain_count
    return serialize.serialize_object({"execution_count": count})


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


def error_frames(exc, **fields):
    """``[pickle of the error dict]`` for the exception exc (with ``fields`` added)."""
    try:
        tb = _format_traceback(exc)
    except BaseException:
        tb = ""
    err = {
        "ename": type(exc).__name__,
        "evalue": _safe_str(exc),
        "traceback": tb,
        "engine_id": engine_id,
        **fields,
    }
    return (STATUS_ERROR, [pickle.dumps(err, protocol=serialize.PROTOCOL)])


class TaskAborted(Exception):
    """The request was aborted (ABORT) before it started on this engine, or interrupted
    by the abort while it ran."""


def aborted_by_client(started):
    """``(status, frames)`` of the REPLY of a request its client aborted (ABORT): dropped
    before it started, or interrupted while it ran (``started``; the engine calls this in
    place of the request's own error). The error says ``aborted``, so that whoever reads
    the reply (the task database's readers) raises ``TaskAborted`` as the aborting client
    did."""
    what = "aborted while it ran (interrupted)" if started else "aborted before it started"
    return error_frames(TaskAborted(f"engine {engine_id}: {what}"), aborted=True)


def run_task(kind, frames):
    """Runs one task; returns ``(status, frames)`` for its REPLY."""
    global task_running
    task_running = True
    try:
        return _run_task(kind, frames)
    finally:
        task_running = False


def _run_task(kind, frames):
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
