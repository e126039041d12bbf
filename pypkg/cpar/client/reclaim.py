"""A client's side of recovery from a dead controller (docs/recovery.md, "Clients").

When the client's connection comes back after a drop (the same controller, or a new one
that ``cpar cluster recover`` started from the task database), the client asks for its
pending requests back: CONNECT (the engines now there), then RECLAIM naming its id prefix
and the requests it still waits on. The controller moves every pending request of that
prefix to this connection and lists those it holds; their answers come as any answer
does. The others ended while nobody could be told (or never reached the controller's
database): their records are read with the database's ``get`` and complete the original
``AsyncResult`` as a live answer would (result, error, output and timings); those the
database does not know fail with a ``ControllerUnreachable`` that says so.

Runs on a thread of its own (the dispatch thread must go on receiving the answers),
within what is left of the grace period; if that runs out first the dispatcher fails
what is still pending.
"""

import os
import sys
import time

from .. import _core, error
from .dispatch import MSG_RECLAIM, error_from_code

_QUERY_CHUNK = 1000  # request ids per database query


class _Msg:
    """The fields of a REPLY or STREAM that ``AsyncResult`` reads, rebuilt from a record."""

    __slots__ = ("parent", "engine", "frames", "status", "flags", "t0", "t1")

    def __init__(self, parent, engine, frames, status=0, flags=0, t0=0, t1=0):
        self.parent = parent
        self.engine = engine
        self.frames = frames
        self.status = status
        self.flags = flags
        self.t0 = t0
        self.t1 = t1


def _wait(d, waiter, msg_id, deadline):
    """The reply to a control request, or None when the deadline passed first."""
    if not waiter.wait(max(0.0, deadline - time.monotonic())):
        d.forget_request(msg_id)
        return None
    return waiter.result()


def reclaim(client):
    """Reclaims ``client``'s pending requests after its connection came back."""
    d = client._dispatcher
    if d is None or d.closed:
        return
    grace = d.recover_grace if d.down_since is not None else client.timeout
    deadline = time.monotonic() + max(1.0, grace)
    try:
        msg_id = client._new_msg_id()
        reply = _wait(d, d.request(_core.MSG_CONNECT, [f"pid={os.getpid()}".encode()],
                                   msg_id), msg_id, deadline)
        if reply is None:
            return  # no controller answers: the grace period decides
        ids = d.pending_ids()
        msg_id = client._new_msg_id()
        reply = _wait(d, d.request(MSG_RECLAIM, [client._prefix, b"".join(ids)], msg_id),
                      msg_id, deadline)
        if reply is None:
            return
        raw = bytes(reply.frames[0]) if reply.frames else b""
        held = {raw[i:i + 16] for i in range(0, len(raw) - 15, 16)}
        lost = [i for i in ids if i not in held and d.pending_result(i) is not None]
        n = _from_database(client, lost)
        d.recovered()
        if ids:
            print(f"cpar client: reconnected to the controller at {d.url}: "
                  f"{len(held)} pending request(s) reclaimed, {n} completed from the task "
                  f"database, {len(lost) - n} lost", file=sys.stderr)
    except error.ConnectionClosed:
        return
    except Exception as exc:  # noqa: BLE001 - a thread of our own: say it, let the grace decide
        print(f"cpar client: reclaiming pending requests after the reconnection failed: "
              f"{exc!r}", file=sys.stderr)


def _from_database(client, lost):
    """Completes the pending requests ``lost`` (raw ids) from their database records;
    fails those it has no record of. Returns how many had records."""
    d = client._dispatcher
    if not lost:
        return 0
    hexes = [i.hex() for i in lost]
    parts, known = [], set()
    try:
        for k in range(0, len(hexes), _QUERY_CHUNK):
            for rec in client.db_query({"request_id": {"$in": hexes[k:k + _QUERY_CHUNK]}},
                                       keys=["request_id", "status"]):
                parts.append(rec["msg_id"])
                known.add(rec["request_id"])
        records, frames = client._db_get(parts) if parts else ([], [])
    except error.RemoteError as exc:  # no database, or it failed: nothing can be read
        records, frames, known = [], [], set()
        why = f"the task database could not be read ({exc.ename}: {exc.evalue})"
    else:
        why = "it never reached the controller's task database"
    for rec in records:
        _fill(d, rec, frames)
    for raw, text in zip(lost, hexes):
        if text in known:
            continue
        ar = d.pending.pop(raw, None)
        if ar is not None:
            ar._fail_pending(error.ControllerUnreachable(
                f"request {text} was lost when the connection to the controller at "
                f"{d.url} dropped: {why}; submit it again"))
    return len(known)


def _fill(d, rec, frames):
    """Hands one ended record to the AsyncResult waiting for its request."""
    request_id = rec.get("request_id") or rec["msg_id"].split(":", 1)[0]
    parent = bytes.fromhex(request_id)
    ar = d.pending.get(parent)
    if ar is None:
        return
    engine = rec.get("engine_id")
    if ":" in rec["msg_id"]:
        engine = int(rec["msg_id"].rsplit(":", 1)[1])
    engine = -1 if engine is None else int(engine)
    if rec.get("status") == "pending":
        done = ar._on_error(parent, engine, error.ControllerUnreachable(
            f"request {rec['msg_id']} is recorded as pending, but the controller at "
            f"{d.url} does not hold it any more: submit it again"))
    else:
        for out in rec.get("outputs") or ():
            ar._on_stream(_Msg(parent, engine, [frames[out["frame"]]],
                               flags=out.get("flags", 0)))
        reply = rec.get("reply")
        if rec.get("error_code") is not None:
            done = ar._on_error(parent, engine, error_from_code(
                rec["error_code"], rec.get("error_message") or "", engine))
        elif reply is None:
            done = ar._on_error(parent, engine, error.CparError(
                f"the task database's record of {rec['msg_id']} ended without a reply"))
        elif reply.get("frames") is None:
            done = ar._on_error(parent, engine,
                                error.ResultNotKept(rec["msg_id"], rec.get("reply_bytes")))
        else:
            done = ar._on_reply(_Msg(parent, engine, [frames[i] for i in reply["frames"]],
                                     status=reply.get("status") or 0,
                                     t0=(rec.get("started") or 0) * 1000,
                                     t1=(rec.get("completed") or 0) * 1000))
    if done:
        d.pending.pop(parent, None)
