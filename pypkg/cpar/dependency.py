"""Dependencies of load-balanced tasks (ipyparallel's ``Dependency``, ``require``,
``depend``, ``dependent``).

Two kinds:

- **Graph dependencies** name other tasks: ``Dependency(msg_ids, all=True, success=True,
  failure=False)``, given to a ``LoadBalancedView`` as ``after`` (start once they ended)
  or ``follow`` (run where they ran). The controller checks them.
- **Functional dependencies** are checked on the engine, just before the function runs:
  ``@require('numpy')`` (modules that must import there, bound in the engine's namespace),
  ``@depend(predicate, *args)`` (a predicate that must be true there). When one is not
  met, the wrapper raises ``cpar.error.UnmetDependency`` before running the function; the
  engine answers "unmet" and the controller tries another engine, or ends the task with
  ``ImpossibleDependency`` when no engine can run it.

Engines unpickle ``dependent`` (the wrapper) by reference, so this module imports nothing
heavy: no client, no C extension.
"""

import sys
import types

from .error import UnmetDependency

__all__ = ["Dependency", "depend", "dependent", "require"]

# Bits of the `after`/`follow` flags in a task spec (docs/protocol.md).
FLAG_ALL = 1
FLAG_SUCCESS = 2
FLAG_FAILURE = 4


def _msg_id_hex(job):
    """The hex msg ids a job names: an AsyncResult (all of its ids), a hex str, 16 raw
    bytes, a Dependency, or an iterable of those."""
    if job is None:
        return []
    if isinstance(job, str):
        bytes.fromhex(job)  # validates
        return [job.lower()]
    if isinstance(job, (bytes, bytearray, memoryview)):
        raw = bytes(job)
        if len(raw) != 16:
            raise ValueError(f"a msg id is 16 bytes, not {len(raw)}")
        return [raw.hex()]
    ids = getattr(job, "msg_ids", None)  # AsyncResult (duck-typed: no client import)
    if ids is not None and not isinstance(job, (set, frozenset, list, tuple)):
        return [m.lower() for m in ids]
    try:
        items = iter(job)
    except TypeError:
        raise TypeError(f"a dependency must be an AsyncResult, a msg id (hex str or bytes), "
                        f"a Dependency or a list of those, not {job!r}") from None
    out = []
    for item in items:
        out.extend(_msg_id_hex(item))
    return out


class Dependency(set):
    """A set of task msg ids (hex str) that another task depends on.

    ``all``: every one must have ended (else any one); ``success``: a task that succeeded
    counts as met; ``failure``: a task that failed counts as met. The defaults (all,
    success only) mean "after these all succeeded"; ``failure=True, success=False`` means
    "after one of them failed" (a clean-up task)."""

    def __init__(self, dependencies=(), all=True, success=True, failure=False):
        if isinstance(dependencies, Dependency):
            all, success, failure = dependencies.all, dependencies.success, dependencies.failure
        super().__init__(_msg_id_hex(dependencies))
        self.all = bool(all)
        self.success = bool(success)
        self.failure = bool(failure)
        if not (self.success or self.failure):
            raise ValueError("a Dependency must accept success, failure, or both")

    @property
    def flags(self):
        """The spec's flag bits: 1 all, 2 success, 4 failure."""
        return ((FLAG_ALL if self.all else 0) | (FLAG_SUCCESS if self.success else 0)
                | (FLAG_FAILURE if self.failure else 0))

    def check(self, completed, failed=None):
        """Whether the dependency is met, given sets of completed (succeeded) and failed
        msg ids (hex)."""
        if not self:
            return True
        met = set()
        if self.success:
            met |= set(completed)
        if self.failure and failed is not None:
            met |= set(failed)
        return self.issubset(met) if self.all else not self.isdisjoint(met)

    def unreachable(self, completed, failed=None):
        """Whether the dependency can no longer be met, given the ended tasks."""
        if not self:
            return False
        against = set()
        if not self.success:
            against |= set(completed)
        if not self.failure and failed is not None:
            against |= set(failed)
        return not self.isdisjoint(against) if self.all else self.issubset(against)

    def as_dict(self):
        """A JSON-able dict of the dependency."""
        return {"dependencies": sorted(self), "all": self.all, "success": self.success,
                "failure": self.failure}

    def __repr__(self):
        return (f"Dependency({sorted(self)!r}, all={self.all}, success={self.success}, "
                f"failure={self.failure})")

    def __reduce__(self):
        return (Dependency, (list(self), self.all, self.success, self.failure))


def _user_ns():
    return sys.modules["__main__"].__dict__


def _require(*names, **mapping):
    """Engine side of ``@require``: imports the modules named (binding their top-level
    name) and binds the objects given, in the engine's namespace. False when a module
    does not import."""
    ns = _user_ns()
    for name in names:
        if isinstance(name, str):
            try:
                __import__(name)
            except ImportError:
                return False
            top = name.partition(".")[0]
            ns[top] = sys.modules[top]
        else:
            ns[_name_of(name)] = name
    ns.update(mapping)
    return True


def _name_of(obj):
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"@require needs module names (str) or named objects (functions, "
                        f"classes, modules), not {obj!r}; pass others as name=value")
    return name.rpartition(".")[2]


class dependent:
    """A function wrapped with a functional dependency: calling it runs ``df(*dargs,
    **dkwargs)`` first and raises ``UnmetDependency`` when that is false, without calling
    ``f``. Picklable (by reference to this class), so engines can rebuild it."""

    def __init__(self, _wrapped_f, _df, *dargs, **dkwargs):
        self.f = _wrapped_f
        self.df = _df
        self.dargs = dargs
        self.dkwargs = dkwargs
        self.__name__ = getattr(_wrapped_f, "__name__", type(_wrapped_f).__name__)
        self.__doc__ = getattr(_wrapped_f, "__doc__", None)

    def __call__(self, *args, **kwargs):
        # A check that raises fails the task with its error (a bug to see, not a reason
        # to try every engine).
        if not self.df(*self.dargs, **self.dkwargs):
            raise UnmetDependency(
                f"{self.__name__}: dependency {getattr(self.df, '__name__', self.df)!r}"
                f"{self._describe()} not met on this engine")
        if self.df is _require:
            self._bind_into_globals()
        return self.f(*args, **kwargs)

    def _describe(self):
        parts = [repr(a) if isinstance(a, str) else _safe_name(a) for a in self.dargs]
        parts += [f"{k}=..." for k in self.dkwargs]
        return f"({', '.join(parts)})" if parts else ""

    def _bind_into_globals(self):
        """What ``@require`` bound in the engine namespace, also in the globals of a
        function that does not run in that namespace (one defined in a module)."""
        g = getattr(self.f, "__globals__", None)
        ns = _user_ns()
        if g is None or g is ns:
            return
        for name in self.dargs:
            if isinstance(name, str):
                top = name.partition(".")[0]
                g.setdefault(top, sys.modules[top])
            else:
                g[_name_of(name)] = name
        g.update(self.dkwargs)

    def __repr__(self):
        return f"<dependent {self.__name__} on {_safe_name(self.df)}{self._describe()}>"


def _safe_name(obj):
    return getattr(obj, "__name__", None) or repr(obj)


def require(*objects, **mapping):
    """Decorator: the function runs only on engines where every module named (a str)
    imports; the modules are bound under their top-level name in the engine's namespace
    before the function runs, and so are the objects given (functions, classes: under
    their ``__name__``; ``name=value`` under ``name``). On an engine where an import
    fails the task raises ``UnmetDependency`` there and goes to another engine, or ends
    with ``ImpossibleDependency``. A module object counts as its name (imported there,
    not pickled)."""
    objects = tuple(o.__name__ if isinstance(o, types.ModuleType) else o for o in objects)
    for obj in objects:
        if not isinstance(obj, str):
            _name_of(obj)  # fail here, not on the engine

    def decorate(f):
        return dependent(f, _require, *objects, **mapping)

    return decorate


def depend(predicate, *args, **kwargs):
    """Decorator: the function runs only on engines where ``predicate(*args, **kwargs)``
    is true (checked there, just before the call)."""

    def decorate(f):
        return dependent(f, predicate, *args, **kwargs)

    return decorate
