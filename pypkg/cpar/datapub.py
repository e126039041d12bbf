"""Data publication: engine code sends a dict to the client while its task runs.

On an engine, ``publish_data({"i": i, "loss": loss})`` sends the dict to the client that
sent the running task (EXECUTE, APPLY or load-balanced TASK). The client merges every
dict a request published on an engine into one (later keys win) and shows it, while the
task still runs, as ``ar.data``: one dict for a single-engine result, a list of dicts (one
per engine) otherwise. Use it for progress reports of long computations.

The dict travels as a display message of type ``data_pub`` (docs/protocol.md), in order
with the task's stdout/stderr, flushed at the engine's stream period. Its values are
pickled (cpar's pickler: numpy arrays, interactively defined functions and the like are
fine); the client unpickles them when they arrive. A published dict bigger than the
client's ``max_output`` is dropped there (counted in ``ar.output_dropped``, with a note on
the request's stderr).

Importable without the client (engines load it).
"""

import base64

from . import serialize

__all__ = ["publish_data"]


def publish_data(data):
    """Sends the dict ``data`` to the client of the running task (its ``ar.data``).

    Raises ``TypeError`` when ``data`` is not a dict or cannot be pickled, and
    ``RuntimeError`` when called outside a cpar engine or while no task runs there (a
    thread that outlives its task)."""
    if not isinstance(data, dict):
        raise TypeError(f"publish_data needs a dict, not {type(data).__name__}")
    try:
        import _cpar_engine  # noqa: F401 - only inside cpar-engine
    except ImportError:
        raise RuntimeError("publish_data only works in code running on a cpar engine") from None
    from .engine import runtime

    try:
        raw = serialize._dumps(data, lambda pb: True)  # every buffer in band
    except Exception as exc:  # noqa: BLE001 - say what could not be published
        raise TypeError(f"publish_data: the dict cannot be pickled: {exc!r}") from exc
    msg = {"type": "data_pub", "pickle": base64.b64encode(raw).decode("ascii")}
    if not runtime.send_display(msg):
        raise RuntimeError("publish_data: no task is running on this engine (data published "
                           "after its task ended has no client to go to)")
