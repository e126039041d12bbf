"""Serialization of Python objects and function calls into frames for the wire.

Objects are pickled with protocol 5. Buffers of at least ``BUFFER_THRESHOLD`` bytes (numpy
arrays, bytes, memoryviews) travel out of band as frames of their own, so they are never
copied into the pickle stream and the transport can send them without copying. On the
receiving side the frames are writable, so arrays rebuilt from them are writable too.

Functions defined interactively (``__module__ == '__main__'``: notebook cells, scripts,
lambdas) cannot be pickled by reference, because the receiving process has a different
``__main__``. They travel by code instead (marshalled code object, defaults, closure, name)
and are rebuilt against a namespace the receiver chooses: on an engine, its persistent
``__main__`` namespace, so ``v['a'] = 5; v.apply(lambda x: a + x, 1)`` sees the engine's
``a``. Everything else pickles by reference. ``use_cloudpickle()`` switches the pickler for
objects that need it.
"""

import builtins
import importlib
import io
import marshal
import pickle
import sys
import threading
import types

BUFFER_THRESHOLD = 64 * 1024
PROTOCOL = 5

# The namespace interactively defined functions are rebuilt in, per thread: set while
# unpacking a call on an engine; None means this process's __main__.
_rebuild_ns = threading.local()
# The pickler module in use instead of cpar's own (cloudpickle after use_cloudpickle(),
# dill after use_dill()), or None (the default).
_cloudpickle = None


def use_cloudpickle():
    """Pickle with cloudpickle (closures over anything, classes from __main__, ...)."""
    global _cloudpickle
    import cloudpickle

    _cloudpickle = cloudpickle


def _dill_dumps(obj, protocol, buffer_callback):
    import dill

    f = io.BytesIO()
    dill.Pickler(f, protocol=protocol, buffer_callback=buffer_callback, recurse=True
                 ).dump(obj)
    return f.getvalue()


class _Dill:
    """dill behind the interface ``_dumps`` uses (cloudpickle's ``dumps``)."""

    __name__ = "dill"
    dumps = staticmethod(_dill_dumps)


def use_dill():
    """Pickle with dill (closures, classes and instances from __main__, ...)."""
    global _cloudpickle
    try:
        import dill  # noqa: F401
    except ImportError:
        raise ImportError("use_dill() needs the dill package (pip install dill)") from None
    _cloudpickle = _Dill


def use_pickle():
    """Go back to the standard pickler with cpar's by-code functions (the default)."""
    global _cloudpickle
    _cloudpickle = None


def _target_namespace():
    ns = getattr(_rebuild_ns, "ns", None)
    if ns is None:
        ns = sys.modules["__main__"].__dict__
    return ns


def _make_cell(value):
    return types.CellType(value)


def _make_empty_cell():
    return types.CellType()


class _Overlay(dict):
    """Globals of a lambda or nested function from a module: the module globals it
    captured, then the receiver's namespace (an engine's ``__main__``) for the rest."""

    __slots__ = ("fallback",)

    def __init__(self, captured, fallback):
        super().__init__(captured)
        self.setdefault("__builtins__", builtins)
        self.fallback = fallback

    def __missing__(self, name):
        return self.fallback[name]


def _rebuild_function(code_bytes, name, qualname, defaults, kwdefaults, closure, doc, fdict,
                      captured=None, module="__main__"):
    """Rebuilds a function sent by code: against the receiver's namespace when it came
    from ``__main__``, else against the globals it captured."""
    code = marshal.loads(code_bytes)
    if captured is None:
        ns = _target_namespace()
        ns.setdefault("__builtins__", builtins)
    else:
        ns = _Overlay(captured, _target_namespace())
    f = types.FunctionType(code, ns, name, defaults, closure)
    f.__qualname__ = qualname
    f.__kwdefaults__ = kwdefaults
    f.__doc__ = doc
    f.__module__ = module
    if fdict:
        f.__dict__.update(fdict)
    return f


def _is_interactive(f):
    """Functions that cannot be found by reference on another process: defined in
    ``__main__``, or lambdas and nested functions anywhere."""
    if getattr(f, "__module__", None) in ("__main__", None):
        return True
    qualname = getattr(f, "__qualname__", "")
    return "<lambda>" in qualname or "<locals>" in qualname


def _global_names(code):
    """Names a code object (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _reduce_function(f):
    closure = None
    if f.__closure__ is not None:
        cells = []
        for c in f.__closure__:
            try:
                cells.append((_make_cell, (c.cell_contents,)))
            except ValueError:  # an empty cell (a name assigned later)
                cells.append((_make_empty_cell, ()))
        closure = tuple(_CellRef(fn, args) for fn, args in cells)
    if f.__module__ in ("__main__", None):
        # Resolved in the receiver's namespace (the engine's __main__), by design.
        captured = None
    else:
        # A lambda or nested function of some module: carry the module globals it uses.
        g = f.__globals__
        captured = {n: g[n] for n in _global_names(f.__code__) if n in g}
    return (
        _rebuild_function,
        (
            marshal.dumps(f.__code__),
            f.__name__,
            f.__qualname__,
            f.__defaults__,
            f.__kwdefaults__,
            closure,
            f.__doc__,
            dict(f.__dict__) or None,
            captured,
            f.__module__,
        ),
    )


class _CellRef:
    """Pickles as a closure cell holding the same value."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args

    def __reduce__(self):
        return self.fn, self.args


def _rebuild_memoryview(buf, fmt, shape):
    """A memoryview over the received buffer (writable where the frame is), with the
    sender's format and shape."""
    view = memoryview(buf)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view.cast(fmt, shape) if (fmt, shape) != ("B", (view.nbytes,)) else view


def _reduce_memoryview(view):
    """Pickles a memoryview by its bytes (out of band when large), format and shape."""
    fmt, shape = view.format, tuple(view.shape)
    try:
        memoryview(bytes(view.itemsize)).cast(fmt)
    except (TypeError, ValueError):
        raise TypeError(f"cannot send a memoryview of format {fmt!r} (only native "
                        "single-item formats such as 'B', 'i', 'd'): send the object it "
                        "views instead (e.g. the numpy array)") from None
    if not view.contiguous:
        data = view.tobytes()  # a copy: the pickled bytes are contiguous
    else:
        data = pickle.PickleBuffer(view.cast("B") if view.ndim != 1 or fmt != "B" else view)
    return _rebuild_memoryview, (data, fmt, shape)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and _is_interactive(obj):
            return _reduce_function(obj)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, memoryview):
            return _reduce_memoryview(obj)
        return NotImplemented


def _dumps(obj, buffer_callback):
    if _cloudpickle is not None:
        return _cloudpickle.dumps(obj, PROTOCOL, buffer_callback=buffer_callback)
    f = io.BytesIO()
    _Pickler(f, protocol=PROTOCOL, buffer_callback=buffer_callback).dump(obj)
    return f.getvalue()


def serialize_object(obj, threshold=BUFFER_THRESHOLD):
    """Returns ``[pickle, buffer, ...]``: the pickle and its out-of-band buffers.

    Buffers smaller than ``threshold``, and buffers that are not contiguous, stay in band.
    """
    buffers = []

    def keep_large(pb):
        try:
            raw = pb.raw()
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        if raw.nbytes < threshold:
            return True
        buffers.append(raw)
        return False

    return [_dumps(obj, keep_large)] + buffers


def deserialize_object(frames, namespace=None):
    """Rebuilds the object of :func:`serialize_object` from its frames.

    ``namespace``: where interactively defined functions are rebuilt (default: this
    process's ``__main__``).
    """
    prev = getattr(_rebuild_ns, "ns", None)
    _rebuild_ns.ns = namespace
    try:
        return pickle.loads(frames[0], buffers=frames[1:])
    finally:
        _rebuild_ns.ns = prev


def _fails(obj):
    """The exception pickling ``obj`` raises, or None."""
    try:
        _dumps(obj, lambda pb: False)
    except Exception as exc:  # noqa: BLE001 - whatever the object's reducer raises
        return exc
    return None


def _locate(obj, label):
    """``(label, exc)`` of the innermost part of ``obj`` (dict values, list/tuple items)
    that cannot be pickled, or None when ``obj`` pickles."""
    exc = _fails(obj)
    if exc is None:
        return None
    items = ()
    if isinstance(obj, dict):
        items = ((f"{label}[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)) and len(obj) <= 10_000:
        items = ((f"{label}[{i}]", v) for i, v in enumerate(obj))
    for sub_label, value in items:
        found = _locate(value, sub_label)
        if found is not None:
            return found
    return label, exc


def _unpicklable(f, args, kwargs, exc, what, labels):
    """The SerializationError for a call that did not pickle: which part failed."""
    from .error import SerializationError

    name = getattr(f, "__name__", None) or type(f).__name__
    what = what or f"{name}()"
    labels = list(labels or ())
    labels += [f"argument {i}" for i in range(len(labels), len(args))]
    parts = [(f"the function {name}", f)]
    parts += list(zip(labels, args))
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, obj in parts:
        found = _locate(obj, label)
        if found is not None:
            label, exc = found
            break
    else:
        label = "the call"
    return SerializationError(f"{what}: {label} cannot be sent: {type(exc).__name__}: {exc} "
                              "(nothing was sent)")


def pack_apply_message(f, args, kwargs, threshold=BUFFER_THRESHOLD, what=None, labels=None):
    """Frames for a call ``f(*args, **kwargs)`` on another process. Raises
    ``SerializationError`` naming the argument that cannot be pickled; ``what`` names the
    call in that message (default ``f``'s name), ``labels`` the arguments (default
    "argument 0", ...)."""
    try:
        return serialize_object((f, tuple(args), dict(kwargs)), threshold)
    except RecursionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any pickling failure, reported with its part
        raise _unpicklable(f, tuple(args), dict(kwargs), exc, what, labels) from exc


# Argument types pickled alike by the standard pickler and cpar's (no hook applies).
_SCALARS = frozenset((int, float, complex, str, bytes, bool, type(None), range))


def _by_reference(f):
    """A callable that pickles by reference alike with any pickler: a class, a module's
    builtin, a module's (non-interactive) function."""
    if isinstance(f, type):
        return True
    if isinstance(f, types.BuiltinFunctionType):
        owner = getattr(f, "__self__", None)
        return owner is None or isinstance(owner, types.ModuleType)
    return isinstance(f, types.FunctionType) and not _is_interactive(f)


def _plain(a):
    t = type(a)
    if t in _SCALARS:
        return True
    if t is list or t is tuple:
        scalars = _SCALARS
        return all(type(x) in scalars for x in a)
    return _by_reference(a)


def pack_call(f, args, kwargs):
    """The frames of ``f(*args, **kwargs)``, as ``pack_apply_message``. The common small
    call (a module's function, a builtin or a class, called with scalars, or with lists
    of scalars) is pickled directly: the same bytes, without cpar's pickler's per-object
    hook."""
    if (_cloudpickle is None and _by_reference(f)
            and all(map(_plain, args)) and all(map(_plain, kwargs.values()))):
        return [pickle.dumps((f, args, kwargs), PROTOCOL)]
    return pack_apply_message(f, args, kwargs)


def unpack_apply_message(frames, g=None):
    """``(f, args, kwargs)`` from :func:`pack_apply_message`'s frames, with interactively
    defined functions rebuilt against the namespace ``g``."""
    f, args, kwargs = deserialize_object(frames, g)
    return f, args, kwargs


def _deref(name):
    """Unpickling a ``Reference`` (on the engine): the value ``name`` has in the namespace
    the request is unpacked into."""
    ns = _target_namespace()
    if name.isidentifier():
        if name in ns:
            return ns[name]
        builtins_ = ns.get("__builtins__", builtins)
        if isinstance(builtins_, dict):
            if name in builtins_:
                return builtins_[name]
        elif hasattr(builtins_, name):
            return getattr(builtins_, name)
        raise NameError(f"name {name!r} is not defined (a cpar.Reference on the engine)")
    return eval(name, ns)  # a dotted name or an expression, as ipyparallel allows


class Reference:
    """An argument that stands for a variable of the engine's namespace: in
    ``view.apply(f, cpar.Reference('a'))`` ``f`` gets the engine's own ``a``. ``name``
    may be a dotted name or an expression, evaluated on the engine when the request is
    unpacked there (a ``NameError`` if it is not defined)."""

    def __init__(self, name):
        if not isinstance(name, str):
            raise TypeError(f"a Reference needs a name (str), not {name!r}")
        self.name = name

    def __reduce__(self):
        return _deref, (self.name,)

    def __repr__(self):
        return f"<Reference: {self.name!r}>"


def interactive(f):
    """Decorator: run ``f`` in the engine's namespace (its globals are the engine's
    ``__main__``), even when it is defined in a module.

    A function is rebuilt with this process's ``__main__`` as its globals, so every
    pickler treats it alike: cpar's own pickler sends it by code and the engine resolves
    its globals in its namespace; cloudpickle and dill send the values its globals have
    here in ``__main__``."""
    if isinstance(f, types.FunctionType) and f.__globals__ is not _main_dict():
        g = f
        f = types.FunctionType(g.__code__, _main_dict(), g.__name__, g.__defaults__,
                               g.__closure__)
        f.__kwdefaults__ = g.__kwdefaults__
        f.__qualname__ = g.__qualname__
        f.__doc__ = g.__doc__
        f.__dict__.update(g.__dict__)
        f.__annotations__ = getattr(g, "__annotations__", {})
    f.__module__ = "__main__"
    return f


def _main_dict():
    return sys.modules["__main__"].__dict__
