"""cpar: interactive parallel computing for Python with a C core.

The user's API is IPython parallel's: ``Client``, views, ``AsyncResult``, ``Cluster``.
Names are imported on first use, so an engine that only needs ``cpar.serialize`` does not
load the client.
"""

import importlib

__version__ = "0.1.0"

# public name -> submodule defining it
_EXPORTS = {
    "interactive": "serialize",
    "use_cloudpickle": "serialize",
    "use_pickle": "serialize",
    "use_dill": "serialize",
    "remote": "client.remotefunctions",
    "parallel": "client.remotefunctions",
    "register_joblib_backend": "joblib",
    "ViewExecutor": "client.executor",
    "LazyMapIterator": "client.executor",
    "Reference": "serialize",
    "CparError": "error",
    "RemoteError": "error",
    "CompositeError": "error",
    "EngineError": "error",
    "TimeoutError": "error",
    "TaskAborted": "error",
    "TaskTimeout": "error",
    "UnmetDependency": "error",
    "ImpossibleDependency": "error",
    "DependencyTimeout": "error",
    "InvalidDependency": "error",
    "KernelError": "error",
    "IPythonError": "error",
    "TaskRejectError": "error",
    "NoEnginesRegistered": "error",
    "Client": "client",
    "View": "client",
    "DirectView": "client",
    "BroadcastView": "client",
    "LoadBalancedView": "client.lbview",
    "AsyncResult": "client",
    "AsyncMapResult": "client",
    "AsyncHubResult": "client",
    "ExecuteReply": "client",
    "RemoteFunction": "client",
    "ParallelFunction": "client",
    "Dependency": "dependency",
    "require": "dependency",
    "depend": "dependency",
    "dependent": "dependency",
    "FIRST_COMPLETED": "concurrent.futures",
    "FIRST_EXCEPTION": "concurrent.futures",
    "ALL_COMPLETED": "concurrent.futures",
    "Cluster": "cluster",
    "ClusterError": "cluster",
    "ClusterManager": "cluster",
    "bind_kernel": "engine.kernel",
}

__all__ = sorted(_EXPORTS)


def _lazy_exports(namespace, exports, absolute=()):
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``: a
    name of ``exports`` is imported on first use from the submodule it maps to (a
    module of ``absolute``: that top-level module), then kept in the namespace."""
    package = namespace["__name__"]

    def __getattr__(name):
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = (importlib.import_module(mod) if mod in absolute
                  else importlib.import_module(f".{mod}", package))
        value = getattr(module, name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS, absolute={"concurrent.futures"})


def load_ipython_extension(ip):
    """``%load_ext cpar`` in IPython: the ``%px`` magics (see ``cpar.magics``)."""
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as unload

    unload(ip)

