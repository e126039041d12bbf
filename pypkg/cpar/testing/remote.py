"""A test function's body run on engines: packed here (:func:`pack_body`), run on each
engine (:func:`run_body`), and failed with every engine's error (:func:`failure_text`).

The function travels by value, so that the engines need not import the test module:
with cloudpickle when it is installed (the test module is pickled by value, with the
module-level helpers the body uses), else with cpar's own serializer (the function's
code and the module globals it names; module-level functions among them are then
imported by name on the engine). Either way the directories of this process's
``sys.path`` that lie under the test run's root are added to the engine's ``sys.path``
while the body runs, so that what travels by name (``conftest`` helpers, the test
package) can be imported there.
"""

import os
import pickle
import sys
import types


class EngineId:
    """Stands for "the id of the engine this runs on" in the arguments of a test body
    sent to engines: :func:`run_body` replaces it by ``cpar.engine.runtime.engine_id``.
    The ``cpar_engine_id`` fixture's value."""

    def __repr__(self):
        return "<the engine's id>"

    def __eq__(self, other):
        return isinstance(other, EngineId)

    def __hash__(self):
        return hash(EngineId)


def _by_code(func):
    """A copy of ``func`` that cpar's serializer sends by code, with the module globals
    its code names (a function of a module otherwise travels by reference)."""
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                              func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__dict__.update(func.__dict__)
    # cpar.serialize sends nested functions by code (their qualified name says so)
    copy.__qualname__ = f"{func.__qualname__}.<locals>.body"
    copy.__module__ = func.__module__
    return copy


def pack_body(func, kwargs):
    """``func`` and its keyword arguments as bytes for :func:`run_body`.

    Parameters
    ----------
    func : callable
        The test function (a bound method for a test of a class).
    kwargs : dict
        Its arguments, by name.

    Returns
    -------
    tuple
        ``(how, payload)``: ``how`` is ``"cloudpickle"`` or ``"cpar"``, ``payload`` the
        pickled ``(func, kwargs)``.

    Raises
    ------
    cpar.error.SerializationError
        Naming the argument (or else the function) that cannot be pickled.
    """
    try:
        import cloudpickle
    except ImportError:
        cloudpickle = None
    if cloudpickle is not None:
        how, dumps = "cloudpickle", _cloudpickle_dumps
    else:
        how, dumps = "cpar", _cpar_dumps
    try:
        return how, dumps(func, kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever a part's reducer raises
        raise _serialization_error(func, kwargs, dumps, exc) from exc


def _cloudpickle_dumps(func, kwargs):
    """``(func, kwargs)`` pickled by cloudpickle, the function's module by value."""
    import cloudpickle

    plain = getattr(func, "__func__", func)
    module = sys.modules.get(getattr(plain, "__module__", None) or "")
    registered = False
    if module is not None and module.__name__ != "__main__":
        try:
            cloudpickle.register_pickle_by_value(module)
            registered = True
        except ValueError:  # registered already (by the user): it stays so
            pass
    try:
        # cloudpickle names the file of code it sends "<dynamic-code>": the module's
        # file travels along, for the engines' tracebacks to show the test's lines
        origin = (module.__name__, getattr(module, "__file__", None)) if module else None
        return cloudpickle.dumps((func, kwargs, origin), protocol=5)
    finally:
        if registered:
            cloudpickle.unregister_pickle_by_value(module)


def _cpar_dumps(func, kwargs):
    """``(func, kwargs)`` pickled by cpar's serializer, the function by code."""
    from .. import serialize

    body = _by_code(getattr(func, "__func__", func))
    if getattr(func, "__self__", None) is not None:
        body = types.MethodType(body, func.__self__)
    # threshold=inf: every buffer in band, one bytes object
    return serialize.serialize_object((body, kwargs), threshold=float("inf"))[0]


def _serialization_error(func, kwargs, dumps, exc):
    """The SerializationError naming the argument that does not pickle (each is tried
    alone), else the function."""
    from ..error import SerializationError

    for name, value in kwargs.items():
        try:
            dumps(_identity, {"value": value})
        except Exception as sub:  # noqa: BLE001
            return SerializationError(
                f"argument {name!r} ({type(value).__name__}) cannot be sent to the "
                f"engines: {type(sub).__name__}: {sub}")
    plain = getattr(func, "__func__", func)
    hint = "" if dumps is _cloudpickle_dumps else " (installing cloudpickle may help)"
    return SerializationError(f"the test function {plain.__qualname__} cannot be sent to "
                              f"the engines: {type(exc).__name__}: {exc}{hint}")


def _identity(value):
    return value


def import_paths(root):
    """The directories of ``sys.path`` under ``root`` (the test run's root directory):
    where pytest found the test modules and their conftest files."""
    root = os.path.realpath(os.fspath(root))
    out = []
    for entry in sys.path:
        if not entry or not isinstance(entry, str):
            continue
        real = os.path.realpath(entry)
        if (real == root or real.startswith(root + os.sep)) and os.path.isdir(real) \
                and real not in out:
            out.append(real)
    return out


def run_body(how, payload, paths=()):
    """Engine side: unpacks :func:`pack_body`'s ``payload`` and calls the test function
    with its arguments (an :class:`EngineId` becomes this engine's id). Whatever the
    body raises is the engine's error; what it returns is dropped.

    Parameters
    ----------
    how : str
        ``"cloudpickle"`` or ``"cpar"``, as :func:`pack_body` said.
    payload : bytes
        The pickled ``(func, kwargs)``.
    paths : sequence of str
        Directories added to ``sys.path`` (at its end) while the body is unpacked and
        runs.
    """
    added = [p for p in paths if p not in sys.path]
    sys.path.extend(added)
    try:
        if how == "cloudpickle":
            func, kwargs, origin = pickle.loads(payload)
            if origin is not None and origin[1]:
                _restore_filenames(func, *origin)
        elif how == "cpar":
            from .. import serialize

            func, kwargs = serialize.deserialize_object([payload])
        else:
            raise ValueError(f"unknown packing {how!r}")
        from ..engine import runtime

        kwargs = {k: runtime.engine_id if isinstance(v, EngineId) else v
                  for k, v in kwargs.items()}
        func(**kwargs)
    finally:
        for p in added:
            try:
                sys.path.remove(p)
            except ValueError:
                pass


_DYNAMIC = "<dynamic-code>"


def _with_filename(code, filename):
    """``code`` (and the code objects nested in it) with ``co_filename`` set."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _restore_filenames(func, module_name, filename):
    """Gives the test module's functions that cloudpickle sent by value (the test
    function and the module's helpers it uses) their file back, so that tracebacks on
    the engine show the source lines."""
    plain = getattr(func, "__func__", func)
    funcs = [plain] + [v for v in getattr(plain, "__globals__", {}).values()
                       if isinstance(v, types.FunctionType)]
    for f in funcs:
        if f.__module__ == module_name and f.__code__.co_filename == _DYNAMIC:
            f.__code__ = _with_filename(f.__code__, filename)


def _without_runner(tb):
    """A remote traceback without the frame of :func:`run_body` (the plugin's, not the
    test's)."""
    out = []
    in_runner = False
    for line in tb.splitlines():
        if line.startswith("  File "):
            in_runner = 'remote.py"' in line and line.rstrip().endswith(", in run_body")
            if in_runner:
                continue
        elif in_runner and line.startswith("    "):  # its source line and markers
            continue
        else:
            in_runner = False
        out.append(line)
    return "\n".join(out)


def failure_text(name, failures, targets):
    """The message of a test whose body failed on some engines.

    Parameters
    ----------
    name : str
        The test's name.
    failures : list of (int, Exception)
        ``(engine id, error)`` for each engine where the body failed: a
        ``cpar.error.RemoteError`` (``ename``, ``evalue``, the remote ``traceback``), or
        another error (``TaskAborted``, an engine that died).
    targets : list of int
        The engines the body ran on.

    Returns
    -------
    str
        A first line saying on how many of the engines (and which) it failed, then each
        engine's remote traceback under a line naming the engine.
    """
    failures = sorted(failures, key=lambda f: (f[0] is None, f[0] if f[0] is not None else 0))
    ids = ", ".join("?" if eid is None else str(eid) for eid, _ in failures)
    lines = [f"{name} failed on {len(failures)} of {len(targets)} engines "
             f"(engine{'s' if len(failures) > 1 else ''} {ids})"]
    for eid, exc in failures:
        lines.append(f"{'_' * 24} engine {'?' if eid is None else eid} {'_' * 24}")
        tb = _without_runner((getattr(exc, "traceback", "") or "").rstrip("\n"))
        if hasattr(exc, "ename"):
            summary = f"{exc.ename}: {exc.evalue}"
        else:
            summary = f"{type(exc).__name__}: {exc}"
        if tb:
            lines.append(tb)
        if not tb or summary.splitlines()[0] not in tb:
            lines.append(summary)
    return "\n".join(lines)
