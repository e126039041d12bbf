"""Functions the client sends to engines by reference (push, pull, map chunks), the
partitioning used by scatter and map, and the ``@view.remote`` / ``@view.parallel``
decorators.

The helpers run on engines and act on the engine's user namespace,
``sys.modules['__main__'].__dict__``. This module imports nothing heavy, so unpickling a
reference to one of them on an engine is cheap.
"""

import contextlib
import sys


def _user_ns():
    return sys.modules["__main__"].__dict__


def _push(ns):
    """Engine side of ``view.push``: binds every name of ``ns`` in the user namespace. A
    dotted name ``a.b.c`` sets attribute ``c`` of the object ``a.b`` (as in ipyparallel,
    where ``view['a.b'] = 0`` sets ``a.b``), it does not bind a variable named so."""
    g = _user_ns()
    for key, value in ns.items():
        if not isinstance(key, str) or "." not in key:
            g[key] = value
            continue
        *path, attr = key.split(".")
        if not all(part.isidentifier() for part in path + [attr]):
            raise ValueError(f"cannot assign to {key!r}: a name or a dotted name "
                             "(a.b.c) is needed")
        obj = _lookup(g, path[0])
        for part in path[1:]:
            obj = getattr(obj, part)
        setattr(obj, attr, value)


def _lookup(g, key):
    if not isinstance(key, str):
        raise TypeError(f"names to pull must be str, not {type(key).__name__}")
    if key.isidentifier():
        try:
            return g[key]
        except KeyError:
            builtins = g.get("__builtins__")
            if isinstance(builtins, dict) and key in builtins:
                return builtins[key]
            if builtins is not None and hasattr(builtins, key):
                return getattr(builtins, key)
            raise NameError(f"name {key!r} is not defined") from None
    return eval(key, g)  # dotted names and expressions, as ipyparallel allows


def _pull(keys):
    """Engine side of ``view.pull``: one value for a name, a list for a list of names."""
    g = _user_ns()
    if isinstance(keys, (list, tuple, set)):
        return [_lookup(g, k) for k in keys]
    return _lookup(g, keys)


def _import(name, fromlist):
    """Engine side of ``view.sync_imports``: ``import name`` or ``from name import ...``
    bound in the user namespace."""
    g = _user_ns()
    module = __import__(name, g, g, fromlist, 0)
    if not fromlist:
        g[name.partition(".")[0]] = module
        return
    for attr in fromlist:
        if attr == "*":
            public = getattr(module, "__all__", None)
            if public is None:
                public = [n for n in vars(module) if not n.startswith("_")]
            for n in public:
                g[n] = getattr(module, n)
        else:
            g[attr] = getattr(module, attr)


def _exec_import(statement):
    """Engine side of ``view.sync_imports``: one import statement (built by the client
    from the names it binds) run in the user namespace."""
    g = _user_ns()
    exec(compile(statement, "<sync_imports>", "exec"), g)


def _clear():
    """Engine side of ``Client.clear``: empties the user namespace. What the module
    needs to be ``__main__`` (its ``__dunder__`` names) and the names IPython's shell
    put there itself (``In``, ``Out``, ``get_ipython`` ...) stay; so does the engine."""
    g = _user_ns()
    runtime = sys.modules.get("cpar.engine.runtime")
    shell = getattr(runtime, "_shell", None)
    hidden = getattr(shell, "user_ns_hidden", None) or {}
    for key in list(g):
        if isinstance(key, str) and (key.startswith("__") and key.endswith("__")
                                     or key in hidden):
            continue
        del g[key]
    if shell is not None:
        try:  # the cached outputs (Out[n], _, __, ___) hold values too
            shell.displayhook.flush()
        except Exception:  # noqa: BLE001 - a shell without an output cache
            pass


def _map_chunk(f, *chunks):
    """Engine side of ``view.map``: ``f`` over one partition of each sequence."""
    return list(map(f, *chunks))


def _call_on_chunk(f, *chunks):
    """Engine side of a ``@view.parallel`` call: ``f`` on whole partitions."""
    return f(*chunks)


# ---------------------------------------------------------------------------------------
# client side

def partition_bounds(n_items, n_parts):
    """``(lo, hi)`` bounds splitting ``n_items`` into ``n_parts`` contiguous parts whose
    sizes differ by at most one, larger parts first (as ``numpy.array_split``)."""
    q, r = divmod(n_items, n_parts)
    bounds = []
    lo = 0
    for i in range(n_parts):
        hi = lo + q + (1 if i < r else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _is_array(x):
    return type(x).__module__ == "numpy" and hasattr(x, "ndim")


def _is_pandas(x):
    return type(x).__module__.partition(".")[0] == "pandas" and hasattr(x, "iloc")


def join_partitions(parts):
    """Concatenates gathered parts: numpy arrays along axis 0, pandas objects with
    ``pandas.concat``, str / bytes / bytearray / 1-d memoryviews into one of their kind,
    other sequences as one list."""
    if parts and all(_is_array(p) and p.ndim > 0 for p in parts):
        import numpy

        joined = numpy.concatenate(parts)
        dtype = parts[0].dtype
        if joined.dtype != dtype and all(p.dtype == dtype for p in parts):
            joined = joined.astype(dtype)  # concatenate makes byte order native
        return joined
    if parts and all(_is_pandas(p) for p in parts):
        import pandas

        return pandas.concat(parts)
    kinds = {type(p) for p in parts}
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind in (str, bytes, bytearray):
            return kind().join(parts)
        if kind is memoryview and len({(p.format, p.ndim) for p in parts}) == 1 \
                and parts[0].ndim == 1:
            joined = memoryview(bytearray(b"".join(p.tobytes() for p in parts)))
            return joined.cast(parts[0].format) if parts[0].format != "B" else joined
    out = []
    for p in parts:
        if isinstance(p, (list, tuple, range)) or (_is_array(p) and p.ndim > 0):
            out.extend(p)
        else:
            out.append(p)
    return out


def _describe(kind, f):
    """The docstring of a decorated function: what it became, then its own."""
    name = getattr(f, "__name__", None) or type(f).__name__
    own = getattr(f, "__doc__", None)
    head = f"{kind} of {name}: calling it runs {name} on engines of a cpar view."
    return f"{head}\n\n{own}" if own else head


class RemoteFunction:
    """A function that runs on a view's engines when called (``@view.remote()``,
    ``cpar.remote(view)``). ``flags`` are view flags (``targets``, ``retries``, ...) set
    for each call only."""

    def __init__(self, view, f, block=None, **flags):
        if not callable(f):
            raise TypeError(f"remote needs a callable to wrap, not {f!r}")
        self.view = view
        self.func = f
        self.block = block
        self.flags = flags
        if flags:
            with view.temp_flags(**flags):  # a flag the view lacks fails now, not later
                pass
        self.__name__ = getattr(f, "__name__", "remote_function")
        self.__doc__ = _describe(type(self).__name__, f)
        self.__wrapped__ = f

    def _flagged(self):
        if not self.flags:
            return contextlib.nullcontext()
        return self.view.temp_flags(**self.flags)

    def _block_flag(self):
        return self.view.block if self.block is None else self.block

    def __call__(self, *args, **kwargs):
        with self._flagged():
            return self.view._apply(self.func, args, kwargs, block=self._block_flag())

    def __repr__(self):
        return f"<RemoteFunction {self.__name__} on {self.view!r}>"


class ParallelFunction(RemoteFunction):
    """A function called on partitions of its arguments, one partition per engine, whose
    results are joined (``@view.parallel()``). ``.map(*seqs)`` maps it element-wise."""

    def __init__(self, view, f, dist="b", block=None, **flags):
        if dist != "b":
            raise ValueError(f"only block distribution ('b') is supported, not {dist!r}")
        super().__init__(view, f, block, **flags)

    def __call__(self, *seqs):
        with self._flagged():
            return self.view._map_partitions(_call_on_chunk, self.func, seqs,
                                             block=self._block_flag(), fname=self.__name__)

    def map(self, *seqs):
        with self._flagged():
            return self.view.map(self.func, *seqs, block=self._block_flag())

    def __repr__(self):
        return f"<ParallelFunction {self.__name__} on {self.view!r}>"


def _check_view(view, what):
    if not hasattr(view, "_apply") or not hasattr(view, "temp_flags"):
        raise TypeError(f"cpar.{what}() needs a view (rc[:], rc.load_balanced_view()) as "
                        f"its first argument, not {view!r}")


def remote(view, block=None, **flags):
    """Decorator: ``@cpar.remote(view)`` makes calling the function run it on the view
    (``view.remote()``); ``flags`` (``targets``, ``retries``, ...) hold for its calls."""
    _check_view(view, "remote")
    return lambda f: RemoteFunction(view, f, block=block, **flags)


def parallel(view, dist="b", block=None, ordered=True, **flags):
    """Decorator: ``@cpar.parallel(view)`` makes calling the function run it on
    partitions of its arguments and join the results (``view.parallel()``); ``.map``
    maps it element-wise. ``chunksize`` and ``ordered`` apply on a load-balanced view;
    other ``flags`` hold for its calls."""
    _check_view(view, "parallel")
    from .lbview import LoadBalancedView, _ParallelFunction

    if isinstance(view, LoadBalancedView):
        chunksize = flags.pop("chunksize", None)
        return lambda f: _ParallelFunction(view, f, dist=dist, block=block,
                                           chunksize=chunksize, ordered=ordered, **flags)
    return lambda f: ParallelFunction(view, f, dist=dist, block=block, **flags)
