"""AsyncHubResult: a result read back from the controller's task database
(docs/taskdb.md), as ipyparallel's hub gives it.

``rc.get_result(msg_id)`` of a request this client does not know (another client's, a
client that is gone, or this client's before a restart) asks the database for its
records (the ``get`` op) and rebuilds from each part's record what a live AsyncResult
has: the value (deserialized as a live REPLY is), the error (the exception class a live
request gets: ``RemoteError`` from user code, ``TaskAborted``, ``EngineError`` for an
engine that died ...), stdout/stderr, display outputs and ``execute_result`` (an
execute's value is an ``ExecuteReply``), and the metadata and timings (``submitted``,
``started``, ``completed``, ``received``, ``elapsed``, ``wall_time``, ``serial_time``).
While a part is pending, a daemon thread asks again, every 10 ms at first and then less
often, up to every 0.2 s.

``rc.resubmit(msg_ids)`` also gives an AsyncHubResult: on the new task ids, filed in the
client before the request left, so their REPLYs complete it as any task's.
"""

import collections
import threading
import time

from .. import error
from .asyncresult import _PENDING, AsyncResult, _Slot
from .dispatch import error_from_code
from .executereply import make_execute_reply

_POLL_FIRST = 0.01  # seconds between polls of pending records, growing by half each time
_POLL_MAX = 0.2


class _Output:
    """One output message of a record (``flags`` and its frame), as a STREAM has them,
    for ``AsyncResult._stream_into``."""

    __slots__ = ("flags", "frames")

    def __init__(self, flags, frames):
        self.flags = flags
        self.frames = frames


def _wrap_execute(ar, slot, value):
    """``_wrap_value`` of an AsyncHubResult: an execute's answer becomes an ExecuteReply
    (a hub result may mix executes and applies)."""
    if id(slot) in ar._execute_slots:
        return make_execute_reply(ar, slot, value)
    return value


def _slot_key(rec):
    """(raw request id, engine id) of a record: the slot a live AsyncResult would have."""
    msg_id = rec["msg_id"]
    request_id = rec.get("request_id") or msg_id.split(":", 1)[0]
    raw = bytes.fromhex(request_id)
    eid = rec.get("engine_id")
    if ":" in msg_id:
        eid = int(msg_id.rsplit(":", 1)[1])
    elif eid is None and rec.get("queue") == "mux":
        targets = rec.get("targets") or []
        if len(targets) == 1:
            eid = targets[0]
    return raw, -1 if eid is None else int(eid)


class AsyncHubResult(AsyncResult):
    """The result of requests read from the controller's task database (``get_result``
    of msg ids this client does not know) or resubmitted there (``resubmit``). Behaves as
    an AsyncResult: ``get``, ``wait``, ``ready``, ``metadata``, ``stdout`` ...;
    ``msg_ids`` are the ids it was asked for (a part id ``"<request id>:<engine>"`` stays
    one)."""

    _hub_ids = None       # the ids named (text), or None: those of the slots
    _execute_slots = ()   # id(slot) of execute parts
    _records = None       # id(slot) -> its record's submitted time (ns)
    _poller = None

    # -- made from the database's records ------------------------------------------------

    @classmethod
    def _from_records(cls, client, hub_ids, records, frames, single):
        """The result over the parts of ``hub_ids`` (text ids, as ``get`` was asked) from
        ``records``/``frames`` of a ``get`` reply."""
        self = cls.__new__(cls)
        by_id = collections.defaultdict(list)
        for rec in records:
            by_id[rec["msg_id"]].append(rec)
            if rec.get("request_id") and rec["request_id"] != rec["msg_id"]:
                by_id[rec["request_id"]].append(rec)
        slots, recs, seen = [], [], set()
        for hid in hub_ids:
            found = by_id.get(hid)
            if not found:
                from .taskdb import remote_error

                raise remote_error("KeyError", f"the task database has no record of {hid!r}",
                                   "get")
            for rec in found:
                if rec["msg_id"] in seen:
                    continue
                seen.add(rec["msg_id"])
                raw, eid = _slot_key(rec)
                slots.append(_Slot(raw, eid))
                recs.append(rec)
        fnames = {r.get("msg_type") for r in recs}
        fname = "execute" if fnames == {"execute_request"} else "unknown"
        self._init_hub(client, slots, fname, single and len(slots) == 1,
                       min(r.get("submitted") or 0 for r in recs) * 1000)
        self._hub_ids = list(hub_ids)
        self._wrap_value = _wrap_execute
        self._execute_slots = {id(s) for s, r in zip(slots, recs)
                               if r.get("msg_type") == "execute_request"}
        self._records = {id(s): (r.get("submitted") or 0) * 1000 for s, r in zip(slots, recs)}
        self._part_of = {r["msg_id"]: s for s, r in zip(slots, recs)}
        self._fill(records, frames)
        if self._left and self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="cpar-hub-result",
                                            daemon=True)
            self._poller.start()
        return self

    def _init_hub(self, client, slots, fname, single, submitted_ns):
        """The state ``AsyncResult.__init__`` makes, over ``slots`` that records fill."""
        self._future_init()
        self._client = client
        self._tasks = False
        self._fname = fname
        self._single = single
        self._reduce = None
        self._submitted = submitted_ns or time.time_ns()
        # durations count from the controller's arrival time, as a live result's from
        # its sending
        self._mono0 = time.monotonic_ns() - max(0, time.time_ns() - self._submitted)
        self._slots = slots
        self._index = {}
        self._msg_ids = list(dict.fromkeys(s.msg_id for s in slots))
        self._left_per_msg = collections.Counter(s.msg_id for s in slots)
        self._left = len(slots)
        self._finished_mono = 0
        self._value = _PENDING
        self._exception = None
        self._aborted = False
        self._done_order = []
        self._lock = threading.Lock()
        self._cond = None
        self._ended = 0  # the last part's received time (ns)

    def _fill(self, records, frames):
        """Completes the slots whose records ended."""
        for rec in records:
            slot = self._part_of.get(rec["msg_id"])
            if slot is None or slot.done or rec.get("status") == "pending":
                continue
            eid = rec.get("engine_id")
            if eid is not None:
                slot.engine_id = int(eid)
            for out in rec.get("outputs") or ():
                self._stream_into(slot, _Output(out.get("flags", 0), [frames[out["frame"]]]))
            cleared = any(kind == "clear_output" for kind, _ in slot.events)
            for name in ("stdout", "stderr"):
                # the text columns are kept apart from the output messages (each up to
                # --db-keep-bytes): the longer one, unless the output cleared itself
                text = rec.get(name) or ""
                if not cleared and len(text) > sum(map(len, getattr(slot, name))):
                    setattr(slot, name, [text])
            slot.started = (rec.get("started") or 0) * 1000
            slot.completed = (rec.get("completed") or 0) * 1000
            reply = rec.get("reply")
            if rec.get("error_code") is not None:
                slot.error = error_from_code(rec["error_code"], rec.get("error_message") or "",
                                             slot.engine_id)
            elif reply is None:
                slot.error = error.CparError(f"the task database's record of "
                                             f"{rec['msg_id']} ended without a reply")
            elif reply.get("frames") is None:
                slot.error = error.ResultNotKept(rec["msg_id"], rec.get("reply_bytes"))
                slot.status = reply.get("status")
            else:
                slot.frames = [frames[i] for i in reply["frames"]]
                slot.status = reply.get("status")
            with self._lock:
                _, all_done = self._slot_done(slot)
            slot.received = (rec.get("received") or 0) * 1000
            self._ended = max(self._ended, slot.received)
            if all_done:
                self._finish()

    def _finish(self):
        super()._finish()
        if self._ended and self._hub_ids is not None:
            # wall time as the database saw it: first arrival to last reply forwarded
            self._finished_mono = self._mono0 + max(0, self._ended - self._submitted)

    def _poll(self):
        """Asks the database again for the pending parts until none is left."""
        interval = _POLL_FIRST
        client = self._client
        while self._left:
            time.sleep(interval)
            interval = min(_POLL_MAX, interval * 1.5)
            if client._dispatcher.closed:
                self._fail_pending(error.ConnectionClosed(
                    "the client was closed before this result was in the task database"))
                return
            pending = [m for m, s in self._part_of.items() if not s.done]
            if not pending:
                return
            try:
                # which have ended (a light query), then those records with their frames
                ended = []
                for i in range(0, len(pending), 512):
                    content, _ = client._db_request(
                        "query", query={"msg_id": {"$in": pending[i:i + 512]},
                                        "status": {"$ne": "pending"}}, keys=["msg_id"])
                    ended.extend(r["msg_id"] for r in content.get("records") or [])
                if not ended:
                    continue
                records, frames = client._db_get(ended)
            except Exception as exc:  # noqa: BLE001 - the parts fail with it
                self._fail_pending(exc)
                return
            self._fill(records, frames)

    # -- made by resubmit ----------------------------------------------------------------

    @classmethod
    def _for_tasks(cls, client, new_ids, single):
        """The pending result of resubmitted tasks ``new_ids`` (raw), whose REPLYs the
        dispatcher files as any task's."""
        self = cls(client, [(m, None) for m in new_ids], fname="resubmit", single=single,
                   tasks=True)
        return self

    # -- what differs from a live result ------------------------------------------------

    @property
    def msg_ids(self):
        if self._hub_ids is not None:
            return list(self._hub_ids)
        return super().msg_ids

    @property
    def msg_id(self):
        ids = self.msg_ids
        return ids[0] if ids else None

    def _metadata_of(self, slot):
        md = super()._metadata_of(slot)
        if self._records is not None:
            from .arinfo import _utc

            md["submitted"] = _utc(self._records.get(id(slot)))
        return md
