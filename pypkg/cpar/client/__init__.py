"""The cpar client: ``Client``, ``View`` and its ``DirectView``, ``AsyncResult``.

Names are imported on first use, so that an engine unpickling a reference to one of the
helpers in ``cpar.client.remotefunctions`` does not load the whole client.
"""

from .. import _lazy_exports

_EXPORTS = {
    "Client": "client",
    "View": "viewbase",
    "DirectView": "view",
    "BroadcastView": "broadcast",
    "AsyncResult": "asyncresult",
    "AsyncMapResult": "asyncresult",
    "AsyncHubResult": "hubresult",
    "Metadata": "asyncresult",
    "ExecuteReply": "executereply",
    "RemoteFunction": "remotefunctions",
    "ParallelFunction": "remotefunctions",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)
