"""Module aliases ``ipyparallel.X`` -> cpar modules, with placeholders for missing names.

Thread/GIL: import-time only (the import lock serialises the finder).
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

# ipyparallel module -> cpar modules searched in order for each name. A module not listed
# here is tried as the same dotted path under cpar, then as an empty placeholder module.
ALIASES = {
    "ipyparallel.error": ("cpar.error",),
    "ipyparallel.util": ("cpar.util", "cpar.serialize", "cpar"),
    "ipyparallel.serialize": ("cpar.serialize",),
    "ipyparallel.client": ("cpar.client", "cpar"),
    "ipyparallel.client.client": ("cpar.client.client", "cpar"),
    "ipyparallel.client.view": ("cpar.client.view", "cpar.client.lbview", "cpar"),
    "ipyparallel.client.asyncresult": ("cpar.client.asyncresult", "cpar"),
    "ipyparallel.client.remotefunction": ("cpar.client.remotefunctions", "cpar"),
    "ipyparallel.client.magics": ("cpar.magics",),
    "ipyparallel.client._joblib": ("cpar.joblib",),
    "ipyparallel.joblib": ("cpar.joblib",),
    "ipyparallel.controller.dependency": ("cpar.dependency",),
    "ipyparallel.cluster": ("cpar.cluster",),
    "ipyparallel.cluster.launcher": ("cpar.cluster.launcher", "_cpar_launchers"),
    "ipyparallel.datapub": ("cpar.datapub",),
    "ipyparallel._async": ("cpar._async",),
}


class MissingInCpar(Exception):
    """A name of ipyparallel that cpar does not have was used."""


class _MissingMeta(type):
    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(f"cpar has no equivalent of {cls.__qualname__}.{attr}")

    def __repr__(cls):
        return f"<missing in cpar: {cls.__qualname__}>"


def _missing(qualname):
    def __init__(self, *args, **kwargs):
        raise MissingInCpar(f"cpar has no equivalent of {qualname}")

    name = qualname.rsplit(".", 1)[-1]
    # an Exception subclass, so `except ipyparallel.error.X` still works
    cls = _MissingMeta(name, (Exception,), {"__init__": __init__, "__qualname__": qualname})
    return cls


_HOOK_NAMES = {"setup", "teardown", "setup_module", "teardown_module", "setUpModule",
               "tearDownModule", "load_tests"}


def _import(modname):
    try:
        return importlib.import_module(modname)
    except ImportError:
        return None


def lookup(modname, sources, name):
    """``name`` from the first cpar module of ``sources`` having it, else a placeholder."""
    if name.startswith("_") or name.startswith("pytest") or name in _HOOK_NAMES:
        # private names and what pytest or unittest probe for are simply absent
        raise AttributeError(f"module {modname!r} has no attribute {name!r}")
    for src in sources:
        mod = _import(src)
        if mod is not None and hasattr(mod, name):
            value = getattr(mod, name)
            if isinstance(value, types.ModuleType):  # a submodule: its alias, not cpar's
                return importlib.import_module(f"{modname}.{name}")
            return value
    # A cpar submodule not imported yet (``from ipyparallel import error`` before anything
    # imported cpar.error): the alias, when it stands for that submodule.
    full = f"{modname}.{name}"
    if name.isidentifier():
        for src in ALIASES.get(full, ("cpar" + full[len("ipyparallel"):],)):
            if src.rpartition(".")[0] in sources and _import(src) is not None:
                return importlib.import_module(full)
    return _missing(full)


class _Alias(types.ModuleType):
    """A module whose names come from cpar modules; assignments go to the first one, so
    a test that patches ``ipyparallel.x.y`` patches cpar."""

    def __getattr__(self, name):
        return lookup(self.__name__, self.__dict__["_cpar_sources"], name)

    def __setattr__(self, name, value):
        if not name.startswith("__") and name != "_cpar_sources":
            src = _import(self.__dict__["_cpar_sources"][0]) if self._cpar_sources else None
            if src is not None and hasattr(src, name):
                setattr(src, name, value)
                return
        super().__setattr__(name, value)


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        mod = _Alias(spec.name)
        sources = ALIASES.get(spec.name)
        if sources is None:
            sources = ("cpar" + spec.name[len("ipyparallel"):],)
        mod.__dict__["_cpar_sources"] = tuple(s for s in sources if _import(s) is not None)
        return mod

    def exec_module(self, module):
        module.__dict__["__path__"] = []  # any submodule comes through the finder too


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("ipyparallel."):
            return None
        if fullname == "ipyparallel.tests" or fullname.startswith("ipyparallel.tests."):
            return None  # the wheel's tests, found on ipyparallel.tests.__path__
        if fullname == "ipyparallel._alias":
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)


def install():
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def wheel_dir():
    """The installed ipyparallel wheel's package directory (not imported)."""
    import os

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("ipyparallel", paths)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the ipyparallel wheel is not installed (pip install '.[test]')")
    return list(spec.submodule_search_locations)[0]
