"""The client's side of the controller's task database (docs/taskdb.md): ``db_query``,
``hub_history``, ``get_result`` of requests this client does not know (an
``AsyncHubResult``), ``resubmit``, ``purge_hub_results``, ``purge_results``,
``purge_everything`` and the ``label`` of requests, as ipyparallel's hub offers them.
``Client`` takes these methods from ``_TaskDB``.

Every operation is one DB_REQUEST (a JSON object with its ``op``) answered by one
DB_REPLY; an error reply ``{"ename", "evalue"}`` is raised as a ``RemoteError`` of that
``ename`` (``KeyError`` for an unknown id, ``ValueError`` for a bad query, ``IndexError``
for purging a pending record, ``RuntimeError`` for a controller without a database).
Times travel as µs since the epoch and come back as timezone-aware UTC datetimes.
"""

import builtins
import datetime
import json
import operator
import re

from .. import error
from .asyncresult import AsyncResult
from .dispatch import MSG_DB_REQUEST
from .records import _history_raw, _history_text, map_jobs

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_US = datetime.timedelta(microseconds=1)
DATE_KEYS = frozenset(("submitted", "started", "completed", "received"))
# keys db_query builds from columns -> the columns they need
_BUILT = {
    "header": ("msg_id", "msg_type", "submitted", "client_uuid"),
    "metadata": ("label", "targets", "engine_id", "status", "resubmitted", "started",
                 "completed"),
}
_OPS = frozenset(("$lt", "$gt", "$lte", "$gte", "$eq", "$ne", "$in", "$nin", "$exists"))
# a request or task id (32 hex digits), or a part id "<request id>:<engine id>"
_HUB_ID = re.compile(r"[0-9a-fA-F]{32}(?::[0-9]+)?\Z")
_GET_CHUNK = 512  # ids per ``get`` (a message holds at most 4096 frames)


def to_us(value):
    """µs since the Unix epoch of a datetime (a naive one is local time)."""
    if value.tzinfo is None:
        value = value.astimezone()
    return (value - _EPOCH) // _US


def from_us(us):
    """The timezone-aware UTC datetime of µs since the epoch (None stays None)."""
    if us is None:
        return None
    return _EPOCH + datetime.timedelta(microseconds=int(us))


def _query_value(value, date):
    if isinstance(value, datetime.datetime):
        if not date:
            raise ValueError(f"a datetime compares only with submitted, started, "
                             f"completed or received, not {value!r} here")
        return to_us(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_query_value(v, date) for v in value]
    return value


def encode_query(query):
    """The query as the controller takes it: datetimes as µs ints; checked for shape
    (a dict of ``key: value`` or ``key: {"$op": value, ...}``)."""
    if not isinstance(query, dict):
        raise TypeError(f"db_query needs a dict such as {{'msg_id': {{'$ne': ''}}}}, "
                        f"not {type(query).__name__}")
    out = {}
    for key, cond in query.items():
        if not isinstance(key, str):
            raise TypeError(f"db_query: keys are column names (str), not {key!r}")
        date = key in DATE_KEYS
        if isinstance(cond, dict):
            bad = [op for op in cond if op not in _OPS]
            if bad:
                raise ValueError(f"db_query: unknown operator {bad[0]!r} for {key!r} "
                                 f"(known: {', '.join(sorted(_OPS))})")
            out[key] = {op: _query_value(v, date) for op, v in cond.items()}
        else:
            out[key] = _query_value(cond, date)
    return out


def decode_record(rec, keys=None):
    """A record from the controller as db_query returns it: datetimes, JSON columns
    decoded, ``header``/``metadata`` built when asked (``keys`` None: always), and only
    the ``keys`` asked for (and ``msg_id``)."""
    for k in DATE_KEYS:
        if k in rec:
            rec[k] = from_us(rec[k])
    if isinstance(rec.get("targets"), str):
        try:
            rec["targets"] = json.loads(rec["targets"])
        except ValueError:
            pass
    want = None if keys is None else set(keys) | {"msg_id"}
    if want is None or "header" in want:
        rec["header"] = {"msg_id": rec.get("msg_id"), "msg_type": rec.get("msg_type"),
                         "date": rec.get("submitted"), "session": rec.get("client_uuid")}
    if want is None or "metadata" in want:
        from .arinfo import Metadata

        rec["metadata"] = Metadata({k: rec.get(k) for k in _BUILT["metadata"]})
    if want is not None:
        for k in list(rec):
            if k not in want:
                del rec[k]
    return rec


_BUILTIN_ERRORS = {}


def remote_error(ename, evalue, op="task database"):
    """The ``RemoteError`` of a task database error: ``ename`` as ipyparallel's hub names
    it, and, for a builtin exception name (``KeyError``, ``ValueError``, ``IndexError``,
    ``RuntimeError``), also an instance of that class, so ``except KeyError`` catches an
    unknown id as ``except RemoteError`` does."""
    cls = error.RemoteError
    base = getattr(builtins, ename, None)
    if isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
        cls = _BUILTIN_ERRORS.get(ename)
        if cls is None:
            cls = _BUILTIN_ERRORS[ename] = type(f"Remote{ename}", (error.RemoteError, base),
                                                {"__module__": __name__})
    return cls(ename, evalue, "", {"engine_id": None, "method": f"task database {op}"})


def _hub_text(job):
    """A text id as the database has it; one that cannot be there: KeyError."""
    if not _HUB_ID.match(job):
        raise remote_error("KeyError", f"{job!r} is not a msg id (32 hex digits, or "
                           "'<id>:<engine>' for one engine's part): no record has it")
    return job.lower()


class _Session:
    """``Client.session``, for code written against ipyparallel's: ``session`` (this
    client's id), ``key`` (the connection's signing key) and ``digest_history`` (empty:
    cpar checks replayed messages in its C transport, not here)."""

    def __init__(self, session, key):
        self.session = session
        self.key = key
        self.digest_history = set()

    def __repr__(self):
        return f"<cpar client session {self.session}>"


class _TaskDB:
    """The task-database half of ``Client`` (needs its ``_dispatcher``, ``_results``,
    ``_history``, ``_new_msg_id``, ``_prefix``, ``timeout`` and ``block``)."""

    # -- the one request path ------------------------------------------------------------

    def _db_request(self, op, **fields):
        """Sends one DB_REQUEST ``{"op": op, **fields}``; returns ``(content, frames)``
        of its DB_REPLY (``frames``: every frame, 0 being the JSON), or raises the
        reply's error as a ``RemoteError``."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        body = json.dumps({"op": op, **fields}, allow_nan=False).encode("utf-8")
        msg_id = self._new_msg_id()
        waiter = d.request(MSG_DB_REQUEST, [body], msg_id)
        if not waiter.wait(self.timeout):
            d.forget_request(msg_id)
            raise error.TimeoutError(f"the controller did not answer a task database "
                                     f"request ({op}) within {self.timeout} s")
        msg = waiter.result()
        raw = bytes(msg.frames[0]) if msg.frames else b"{}"
        try:
            content = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise error.ProtocolError(f"the controller's answer to a task database "
                                      f"request ({op}) is not JSON: {raw[:80]!r}") from None
        if msg.status != 0:
            if not isinstance(content, dict):
                content = {}
            raise remote_error(content.get("ename") or "RuntimeError",
                               content.get("evalue") or f"error {msg.status}", op)
        return content, list(msg.frames)

    def _db_get(self, ids):
        """``(records, frames)`` of the ``get`` op for ``ids``, asked in chunks small
        enough for one message's frames (a chunk that still holds too many is halved);
        the frame indices of the records are into the one ``frames`` list returned."""
        records, frames = [], [b""]
        chunk = _GET_CHUNK
        i = 0
        while i < len(ids):
            part = ids[i:i + chunk]
            try:
                content, got = self._db_request("get", msg_ids=part)
            except error.RemoteError as exc:
                if exc.ename == "ValueError" and "fewer ids" in exc.evalue and chunk > 1:
                    chunk = max(1, chunk // 2)
                    continue
                raise
            base = len(frames) - 1
            frames.extend(got[1:])
            for rec in content.get("records") or []:
                if base:
                    reply = rec.get("reply")
                    if reply and reply.get("frames") is not None:
                        reply["frames"] = [j + base for j in reply["frames"]]
                    for out in rec.get("outputs") or ():
                        out["frame"] += base
                records.append(rec)
            i += len(part)
        return records, frames

    # -- ids -----------------------------------------------------------------------------

    def _hub_ids(self, jobs):
        """The database ids (text) ``jobs`` names: msg ids (hex, a part id
        ``"<id>:<engine>"``, bytes), AsyncResults, indices into ``history``, or a list
        of those. An id that cannot be in the database raises ``RemoteError``
        (``KeyError``), as an unknown one does."""
        return map_jobs(jobs, lambda ar: ar.msg_ids, bytes.hex, _hub_text,
                        lambda i: _history_text(self._history_at(i)))

    # -- reading -------------------------------------------------------------------------

    def db_query(self, query, keys=None):
        """The records of the controller's task database that match ``query`` (ordered by
        arrival), as a list of dicts.

        ``query``: ``{key: value}`` (equality) or ``{key: {"$op": value, ...}}`` with
        ``$lt $gt $lte $gte $eq $ne $in $nin $exists``, every condition holding. Keys
        are the record's columns (docs/taskdb.md): ``msg_id``, ``request_id``,
        ``client_uuid``, ``engine_id``, ``label``, ``status``, ``submitted``,
        ``started``, ``completed``, ``received`` (datetimes), ``stdout``, ``stderr``...
        ``keys`` (a list, or one str): the keys to return (``msg_id`` always is); None:
        all of them. ``header`` (``msg_id``, ``msg_type``, ``date``, ``session``) and
        ``metadata`` (``label``, ``targets``, ``engine_id``, ``status``...) are built
        from the columns. Results themselves come with ``get_result``."""
        if isinstance(keys, str):
            keys = [keys]
        send = None
        if keys is not None:
            if not all(isinstance(k, str) for k in keys):
                raise TypeError(f"db_query: keys must be column names (str), not {keys!r}")
            send = []
            for k in ["msg_id", *keys]:
                send.extend(_BUILT.get(k, (k,)))
            send = list(dict.fromkeys(send))
        content, _ = self._db_request("query", query=encode_query(query), keys=send)
        return [decode_record(rec, keys) for rec in content.get("records") or []]

    def hub_history(self):
        """Every record's msg id in the controller's task database, in arrival order (all
        clients'; a request to several engines has one per engine,
        ``"<request id>:<engine>"``). Each is a valid argument of ``get_result``."""
        content, _ = self._db_request("history")
        return list(content.get("msg_ids") or [])

    def get_result(self, indices_or_msg_ids=None, block=None, owner=False):
        """The result of requests: msg ids (hex or bytes; ``"<id>:<engine>"`` for one
        engine's part of a multi-engine request), AsyncResults, indices into
        ``history`` (None: the last request), or a list of those.

        Requests this client sent and still holds give their AsyncResult (see
        ``_Bookkeeping.get_result``); others are read from the controller's task database
        as an ``AsyncHubResult`` (``KeyError`` as a ``RemoteError`` for an id it does not
        have). Waits when ``block`` (None: the client's ``block``). ``owner=False``
        lists the finished results in ``rc.results``/``rc.metadata``."""
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        listed = isinstance(indices_or_msg_ids, (list, tuple, set))
        jobs = list(indices_or_msg_ids) if listed else [indices_or_msg_ids]
        if not jobs:
            raise ValueError("get_result needs at least one msg id")
        local = [self._local_parts(job) for job in jobs]
        if all(p is not None for p in local):
            if not any(isinstance(j, str) and ":" in j for j in jobs):
                return super().get_result(indices_or_msg_ids, block=block, owner=owner)
            # one engine's part of a request this client holds: a view over its slot
            from .records import _ResultView

            parts = [p for ps in local for p in ps]
            result = _ResultView(self, parts)
            if not owner:
                self._results.published.update(s.msg_id for _, slots in parts for s in slots)
            if self.block if block is None else block:
                result.wait()
            return result
        ids = self._hub_ids(jobs)
        from .hubresult import AsyncHubResult

        records, frames = self._db_get(ids)
        ahr = AsyncHubResult._from_records(self, ids, records, frames, single=not listed)
        whole = [m for m in ids if ":" not in m]
        if len(whole) == len(ids):  # every part of these requests: known from now on
            raws = [bytes.fromhex(m) for m in ids]
            self._results.add(ahr, raws)
            if not owner:
                self._results.published.update(raws)
        if self.block if block is None else block:
            ahr.wait()
        return ahr

    def _local_parts(self, job):
        """``[(AsyncResult, [slot, ...])]`` of ``job`` when this client holds it (a
        part id ``"<id>:<engine>"``: that engine's slot), else None."""
        if isinstance(job, AsyncResult):
            return [(job, list(job._slots))]
        eng = None
        if isinstance(job, int) and not isinstance(job, bool):
            try:
                raw = _history_raw(self._history[job])
            except IndexError:
                return []  # get_result explains
        elif isinstance(job, (bytes, bytearray)):
            raw = bytes(job)
        elif isinstance(job, str) and _HUB_ID.match(job):
            head, _, tail = job.partition(":")
            raw = bytes.fromhex(head)
            eng = int(tail) if tail else None
        elif isinstance(job, str):
            return None  # no id: the database's KeyError
        else:
            return []  # get_result's TypeError
        ar = self._results.get(raw)
        slots = ar._slots_of(raw) if ar is not None else []
        if eng is not None:
            slots = [s for s in slots if s.engine_id == eng]
        return [(ar, slots)] if slots else None

    # -- writing -------------------------------------------------------------------------

    def resubmit(self, indices_or_msg_ids=None, metadata=None, block=None):
        """Sends tasks again, from their records in the task database: msg ids (a task's,
        or one engine's part of a direct APPLY), AsyncResults, indices into ``history``
        (None: the last request), or a list of those.

        Each becomes a new load-balanced task of this client with a new msg id (a task
        keeps its targets, retries, timeout, dependencies and label; an APPLY part may
        run on any engine). Returns an ``AsyncHubResult`` over the new tasks (waited for
        when ``block``). Unknown ids raise ``RemoteError`` (``KeyError``) and an EXECUTE
        or a request the database did not keep raises ``RemoteError`` (``ValueError``);
        then nothing is resubmitted."""
        if metadata is not None:
            raise ValueError("resubmit(metadata=...) is not supported: a resubmitted task "
                             "keeps the spec it was sent with")
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        listed = isinstance(indices_or_msg_ids, (list, tuple, set))
        old = self._hub_ids(indices_or_msg_ids)
        if not old:
            raise ValueError("resubmit needs at least one msg id")
        from .hubresult import AsyncHubResult

        new = [self._new_msg_id() for _ in old]
        ahr = AsyncHubResult._for_tasks(self, new, single=not listed and len(old) == 1)
        d = self._dispatcher
        d.expect(ahr, new)  # filed before the request leaves: its REPLYs find it
        try:
            content, _ = self._db_request("resubmit", msg_ids=old,
                                          new_ids=[m.hex() for m in new])
        except BaseException:
            for m in new:
                d.release(m, ahr)
            raise
        mapping = content.get("msg_ids") or {}
        wrong = [o for o, n in zip(old, new) if mapping.get(o) not in (None, n.hex())]
        if wrong:
            raise error.ProtocolError(f"the controller resubmitted {wrong[0]} under another "
                                      f"id than asked ({mapping.get(wrong[0])})")
        self._remember(ahr, new)
        if self.block if block is None else block:
            ahr.wait()
        return ahr

    def purge_hub_results(self, jobs=(), targets=(), owner=False):
        """Removes records from the controller's task database: those of ``jobs`` (msg ids
        or AsyncResults as ``get_result`` takes them, or 'all') and of every request
        answered by the ``targets`` engines (ids, or 'all'). With ``owner=True`` only this
        client's records. A pending record named by id raises ``RemoteError``
        (``IndexError``); 'all' and ``targets`` skip pending ones. Returns the number of
        records removed."""
        all_jobs = isinstance(jobs, str) and jobs == "all"
        if not all_jobs and not jobs and not (targets or targets == 0):
            raise ValueError("purge_hub_results needs jobs (msg ids, AsyncResults or "
                             "'all') and/or targets (engine ids)")
        msg_ids = "all" if all_jobs else (self._hub_ids(jobs) if jobs else [])
        engines = []
        if isinstance(targets, str) and targets == "all":
            engines = sorted(self.ids)
        elif targets or targets == 0:
            if isinstance(targets, int):
                targets = [targets]
            try:
                engines = [operator.index(t) for t in targets]
            except TypeError:
                raise TypeError(f"targets must be engine ids or 'all', not {targets!r}") \
                    from None
        content, _ = self._db_request("purge", msg_ids=msg_ids, engines=engines,
                                      client=self._prefix.hex() if owner else None)
        return content.get("purged", 0)

    def purge_results(self, jobs=(), targets=(), owner=False):
        """``purge_local_results`` and ``purge_hub_results`` with the same arguments:
        forgets results here and in the controller's task database (``'all'``:
        everything finished). ``owner=True``: only this client's records in the
        database."""
        self.purge_local_results(jobs=jobs, targets=targets)
        return self.purge_hub_results(jobs=jobs, targets=targets, owner=owner)

    def purge_everything(self):
        """``purge_results('all')``, and this client's history and bookkeeping: a clean
        slate here and in the task database (every client's finished records)."""
        self.purge_results("all")
        self._history.clear()
        self.session.digest_history.clear()

    def _label_requests(self, msg_ids, label):
        """Sets ``label`` on the requests ``msg_ids`` (raw) just sent (a view's ``label``
        flag); waits for the database to take it."""
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        self._db_request("label", msg_ids=[m.hex() for m in msg_ids], label=label)

    @property
    def session(self):
        """An ipyparallel-like session: ``session`` (this client's id), ``key`` (the
        signing key), ``digest_history`` (always empty here)."""
        s = self.__dict__.get("_session")
        if s is None:
            s = self.__dict__["_session"] = _Session(
                self._prefix.hex(), self._info["key"].encode("utf-8"))
        return s
