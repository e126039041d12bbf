"""The cpar client: ``Client``, ``View`` and its ``DirectView``, ``AsyncResult``.

Names are imported on first use, so that an engine unpickling a reference to one of the
helpers in ``cpar.client.remotefunctions`` does not load the whole client.
"""

import importlib

_EXPORTS = {
    "Client": "client",
    "View": "viewbase",
    "DirectView": "view",
    "BroadcastView": "broadcast",
    "AsyncResult": "asyncresult",
    "AsyncMapResult": "asyncresult",
    "Metadata": "asyncresult",
    "ExecuteReply": "executereply",
    "RemoteFunction": "remotefunctions",
    "ParallelFunction": "remotefunctions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'cpar.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
