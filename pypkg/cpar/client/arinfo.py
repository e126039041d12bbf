"""What an AsyncResult tells about its request besides the values: the engines that
answered, per-engine metadata (``ar.metadata``, ``ar.started`` ... through ``__getattr__``),
progress and timings. ``AsyncResult`` takes these from ``InfoMixin``; it provides
``_slots``, ``_single``, ``_client``, ``_submitted``, ``_mono0``, ``_finished_mono``,
``_left``, ``_part_sizes`` and ``_slot_root``.
"""

import datetime
import time
import uuid

from .. import error


class Metadata(dict):
    """A dict whose keys are also attributes (``md.engine_id``), as in ipyparallel."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


_METADATA_KEYS = frozenset(("engine_id", "engine_uuid", "msg_id", "submitted", "started",
                            "completed", "received", "stdout", "stderr", "outputs", "execute_result",
                            "status", "error", "data"))


def _utc(ns):
    if not ns:
        return None
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)


class InfoMixin:
    """Metadata, progress and timing properties of an AsyncResult."""

    @property
    def engine_id(self):
        """The engine(s) that answered (None for a task no engine has taken yet)."""
        ids = [s.engine_id if s.engine_id >= 0 else None for s in self._slots]
        return ids[0] if self._single else ids

    def _uuid_of(self, eid):
        """A stable text id of engine ``eid`` (ipyparallel's engine_uuid): derived from
        its id, pid and host, so a restarted engine with the same id gets another."""
        if eid is None or eid < 0:
            return None
        info = self._client.engine_info.get(eid) or {}
        key = f"cpar-engine:{eid}:{info.get('pid', '')}:{info.get('host', '')}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    @property
    def engine_uuid(self):
        """Per engine that answered, its uuid text (see ``_uuid_of``)."""
        ids = [self._uuid_of(s.engine_id) for s in self._slots]
        return ids[0] if self._single else ids

    def _metadata_of(self, slot):
        if slot.error is not None or (slot.status is not None and slot.status != 0):
            status = "error"
        elif slot.done:
            status = "ok"
        else:
            status = None
        return Metadata(
            engine_id=slot.engine_id if slot.engine_id >= 0 else None,
            engine_uuid=self._uuid_of(slot.engine_id),
            msg_id=slot.msg_id.hex(),
            submitted=_utc(self._submitted),
            started=_utc(slot.started),
            completed=_utc(slot.completed),
            received=_utc(slot.received),
            stdout="".join(slot.stdout),
            stderr="".join(slot.stderr),
            outputs=list(slot.outputs),
            execute_result=slot.execute_result,
            status=status,
            error=slot.error,
            data=dict(slot.data) if slot.data else {},
        )

    @property
    def metadata(self):
        """Per engine: engine_id, submitted, started, completed, received, stdout, stderr,
        outputs, execute_result, status (a dict for a single-engine result, else a list
        of them)."""
        md = [self._metadata_of(s) for s in self._slots]
        return md[0] if self._single else md

    @property
    def progress(self):
        """How many answers came (engines of a direct request, tasks of a load-balanced
        map); for a direct map, how many elements (as ``len``)."""
        sizes = self._part_sizes
        if sizes is not None:
            return sum(n for n, s in zip(sizes, self._slots) if s.done)
        if self._slot_root is not None:
            return sum(1 for s in self._slots if s.done)
        return len(self._slots) - self._left

    @property
    def sent(self):
        return True

    @property
    def submitted(self):
        return _utc(self._submitted)

    @property
    def elapsed(self):
        """Seconds since submission, until the last answer once finished."""
        end = self._finished_mono or time.monotonic_ns()
        return (end - self._mono0) / 1e9

    def _check_ready(self, what):
        if not self.done():
            raise error.TimeoutError(f"{what}: the result is not ready")

    @property
    def wall_time(self):
        """Seconds from submission to the last answer (``TimeoutError`` until finished,
        as in ipyparallel)."""
        self._check_ready("wall_time")
        return (self._finished_mono - self._mono0) / 1e9

    @property
    def serial_time(self):
        """Seconds of engine time: the sum of every engine's run time (``TimeoutError``
        until finished), from ``started``/``completed`` at their resolution (µs, as the
        metadata's datetimes and the task database have them, so a result read back
        from the database gives the same figure)."""
        self._check_ready("serial_time")
        return sum((s.completed // 1000 - s.started // 1000) / 1e6 for s in self._slots
                   if s.completed and s.started)
