"""The client's side of data publication (cpar.datapub): filing the ``data_pub`` display
messages of a request into its result, one merged dict per engine (``ar.data``)."""

import base64
import binascii

from ..serialize import deserialize_object


def _note(slot, text):
    """Appends a note about dropped published data to the slot's stderr (once)."""
    from .asyncresult import _append

    _append(slot, "stderr", text)
    _append(slot, "events", ("stderr", text))


def on_data_pub(slot, content, limit):
    """Merges one published dict into ``slot.data`` (made on first use). ``limit``: the
    client's ``max_output`` (None: no limit); a published dict whose pickle is bigger is
    dropped, counted in ``slot.dropped`` and noted on stderr the first time."""
    encoded = content.get("pickle")
    if not isinstance(encoded, str):
        return
    if limit is not None and len(encoded) * 3 // 4 > limit:
        size = len(encoded) * 3 // 4
        if slot.dropped == 0:
            _note(slot, f"[cpar: published data of {size} bytes is past the client's "
                        f"max_output of {limit} bytes and is dropped]\n")
        slot.dropped += size
        return
    try:
        value = deserialize_object([base64.b64decode(encoded)])
    except (binascii.Error, ValueError) as exc:
        _note(slot, f"[cpar: malformed published data dropped: {exc}]\n")
        return
    except Exception as exc:  # noqa: BLE001 - e.g. a class this client cannot import
        _note(slot, f"[cpar: published data could not be unpickled here, dropped: "
                    f"{exc!r}]\n")
        return
    if not isinstance(value, dict):
        _note(slot, f"[cpar: published data is a {type(value).__name__}, not a dict; "
                    "dropped]\n")
        return
    if slot.data is None:
        slot.data = dict(value)
    else:
        slot.data.update(value)
