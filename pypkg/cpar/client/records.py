"""What a client remembers of its requests, and asks the controller about them:
``history``, ``queue_status``, ``result_status``, ``get_result``, ``purge_results``
(ipyparallel's names). ``Client`` takes these methods from ``_Bookkeeping``.
"""

import collections.abc
import concurrent.futures
import functools
import json
import operator
import time
import weakref

from .. import _core, error
from .asyncresult import _PENDING as _NOT_YET
from .asyncresult import AsyncResult


class _Ref(weakref.ref):
    """A weak reference to an AsyncResult that knows the msg ids it is filed under."""

    __slots__ = ("msg_ids",)


def _forget(table, published, ref):
    """Weakref callback: an AsyncResult nobody holds any more leaves the table."""
    for m in ref.msg_ids:
        if table.get(m) is ref:
            table.pop(m, None)
            published.discard(m)


class _ResultTable:
    """msg id -> the AsyncResult that waits for it, for the results somebody still holds.

    Weak like a ``weakref.WeakValueDictionary``, but with one weak reference per
    AsyncResult rather than one per msg id (a map of 100,000 tasks is one result), so
    recording a request costs a dict insert.

    ``published``: the msg ids whose finished results ``rc.results``/``rc.metadata`` show.
    As in ipyparallel, the AsyncResult a view returns owns its request: once it is
    finished the client's caches no longer list it (the owner has it). A non-owning
    ``rc.get_result(..., owner=False)`` publishes it there."""

    __slots__ = ("table", "published", "forget")

    def __init__(self):
        self.table = {}
        self.published = set()
        self.forget = functools.partial(_forget, self.table, self.published)

    def add(self, ar, msg_ids):
        ref = _Ref(ar, self.forget)
        ref.msg_ids = msg_ids
        if len(msg_ids) == 1:
            self.table[msg_ids[0]] = ref
        else:
            self.table.update(dict.fromkeys(msg_ids, ref))

    def get(self, msg_id):
        ref = self.table.get(msg_id)
        return ref() if ref is not None else None

    def pop(self, msg_id):
        self.table.pop(msg_id, None)
        self.published.discard(msg_id)

    def results(self):
        """Each live AsyncResult once."""
        seen = {}
        for ref in list(self.table.values()):
            ar = ref()
            if ar is not None:
                seen[id(ar)] = ar
        return list(seen.values())

    def __len__(self):
        return len(self.table)


_HISTORY = 10_000  # msg ids remembered in rc.history


class _PerMessage(collections.abc.Mapping):
    """``rc.results`` / ``rc.metadata``: msg id (hex) -> what the request answered (its
    result, or its error) / its metadata, for the requests whose AsyncResult somebody
    still holds (the client keeps no result nobody can ask for). A request sent to
    several engines gives a list, one per engine. ``results`` lists finished requests
    only, ``metadata`` pending ones too; a finished request is listed only once
    published (``get_result(owner=False)``): its owning AsyncResult took it."""

    def __init__(self, table, what):
        self._table = table
        self._what = what

    def _entry(self, raw):
        ar = self._table.get(raw)
        if ar is None:
            raise KeyError(raw.hex())
        slots = ar._slots_of(raw)
        if not slots:
            raise KeyError(raw.hex())
        done = all(s.done for s in slots)
        if done and raw not in self._table.published:
            raise KeyError(raw.hex())  # its owner has it
        if self._what == "results":
            if not done:
                raise KeyError(raw.hex())
            values = [ar._slot_value(s) for s in slots]
        else:
            values = [ar._metadata_of(s) for s in slots]
        return values[0] if len(values) == 1 else values

    def __getitem__(self, msg_id):
        try:
            raw = bytes.fromhex(msg_id) if isinstance(msg_id, str) else bytes(msg_id)
        except (TypeError, ValueError):
            raise KeyError(msg_id) from None
        return self._entry(raw)

    def _keys(self):
        for raw in list(self._table.table):
            try:
                self._entry(raw)
            except KeyError:
                continue
            yield raw.hex()

    def __iter__(self):
        return iter(list(self._keys()))

    def __len__(self):
        return sum(1 for _ in self._keys())

    def __repr__(self):
        return f"<{self._what} of {len(self)} request(s)>"


def map_jobs(jobs, of_result, of_bytes, of_text, of_index):
    """The ids ``jobs`` names, each once in order: ``jobs`` is an AsyncResult, a msg id
    (bytes or text), an index into the history, or a list of those, each turned into ids
    by the function of its kind (``of_result`` gives a list)."""
    if isinstance(jobs, (AsyncResult, str, bytes, bytearray, int)):
        jobs = [jobs]
    out = []
    for job in jobs:
        if isinstance(job, AsyncResult):
            out.extend(of_result(job))
        elif isinstance(job, (bytes, bytearray)):
            out.append(of_bytes(bytes(job)))
        elif isinstance(job, str):
            out.append(of_text(job))
        elif isinstance(job, int) and not isinstance(job, bool):
            out.append(of_index(job))
        else:
            raise TypeError(f"not a msg id, index or AsyncResult: {job!r}")
    return list(dict.fromkeys(out))


def _raw_of_text(job):
    """The request id (bytes) a hex msg id names (``"<id>:<engine>"``: its request)."""
    try:
        return bytes.fromhex(job.split(":", 1)[0] if ":" in job else job)
    except ValueError:
        raise ValueError(f"not a msg id: {job!r}") from None


def _history_raw(entry):
    """The request id (bytes) of a ``_history`` entry: an id, or ``(id, engine)``."""
    return entry if isinstance(entry, bytes) else entry[0]


def _history_text(entry):
    """A ``_history`` entry as ``rc.history`` lists it."""
    return entry.hex() if isinstance(entry, bytes) else f"{entry[0].hex()}:{entry[1]}"


class _Bookkeeping:
    """The bookkeeping half of ``Client`` (needs its ``_dispatcher``, ``_results``,
    ``_history``, ``_new_msg_id`` and ``timeout``)."""

    # -- bookkeeping --------------------------------------------------------------------

    @property
    def results(self):
        """msg id (hex) -> result (or error) of each finished request whose AsyncResult
        is still held (ipyparallel's ``Client.results``)."""
        return _PerMessage(self._results, "results")

    @property
    def metadata(self):
        """msg id (hex) -> ``Metadata`` (engine_id, submitted, started, completed,
        status ...) of each request whose AsyncResult is still held."""
        return _PerMessage(self._results, "metadata")

    @property
    def history(self):
        """msg ids (hex) of the most recent requests this client sent, oldest first
        (the last 10,000). A request to several engines is listed once per engine, as
        ``"<msg id>:<engine id>"`` (its records in the task database, as ipyparallel lists
        one msg id per engine); ``get_result`` and ``result_status`` take these."""
        return [_history_text(m) for m in self._history]

    def _query(self, frames):
        """Sends a QUERY and returns its decoded JSON answer."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        msg_id = self._new_msg_id()
        waiter = d.request(_core.MSG_QUERY, frames, msg_id)
        if not waiter.wait(self.timeout):
            d.forget_request(msg_id)
            raise error.TimeoutError(
                f"the controller did not answer a query within {self.timeout} s")
        msg = waiter.result()
        raw = bytes(msg.frames[0]) if msg.frames else b"{}"
        return json.loads(raw.decode("utf-8"))

    def queue_status(self, targets=None, verbose=False):
        """The controller's queues: ``{engine_id: {'queue': n, 'tasks': n, 'completed':
        n}, ..., 'unassigned': n}``. ``queue`` counts direct requests outstanding on the
        engine, ``tasks`` load-balanced tasks sent to it and not answered, ``completed``
        the replies it sent; ``unassigned`` the tasks waiting at the controller (for
        their dependencies or a free engine). With ``verbose``, ``queue`` and ``tasks``
        are lists of msg ids. ``targets`` an int: that engine's dict alone."""
        data = self._query([b"queue_status_verbose" if verbose else b"queue_status"])
        engines = {int(k): v for k, v in (data.get("engines") or {}).items()}
        unassigned = data.get("unassigned", 0)
        if targets is None or (isinstance(targets, str) and targets == "all"):
            tlist = sorted(engines)
        else:
            try:
                one = operator.index(targets)
            except TypeError:
                one = None
            if one is not None and not isinstance(targets, bool):
                if one not in engines:
                    raise error.NoSuchEngine(f"No such engine: {one}")
                return engines[one]
            if isinstance(targets, slice):
                tlist = sorted(engines)[targets]
            else:
                tlist = [int(t) for t in targets]
        content = {eid: engines[eid] for eid in tlist if eid in engines}
        content["unassigned"] = unassigned
        return content

    def _msg_ids_of(self, jobs):
        """Raw msg ids named by ``jobs``: AsyncResults, msg ids (hex or bytes), indices
        into ``history``, or a list of those."""
        return map_jobs(jobs, lambda ar: ar._msg_ids, lambda raw: raw, _raw_of_text,
                        lambda i: _history_raw(self._history_at(i)))

    def _history_at(self, index):
        """The ``_history`` entry at ``index`` (IndexError saying how many there are)."""
        try:
            return self._history[index]
        except IndexError:
            raise IndexError(f"no request {index} in the history "
                             f"({len(self._history)} remembered)") from None

    def result_status(self, msg_ids, status_only=True):
        """``{'pending': [ids], 'completed': [ids]}`` for these msg ids (hex); with
        ``status_only=False`` also ``{msg_id: result}`` for the completed ones this client
        still holds (an exception instance for a failed one). Results this client does
        not hold any more are looked up at the controller, which remembers how recent
        tasks ended; ids it does not know are listed under ``'unknown'``."""
        pending, completed, unknown = [], [], []
        content = {}
        ask = []
        for m in self._msg_ids_of(msg_ids):
            ar = self._results.get(m)
            slots = ar._slots_of(m) if ar is not None else []
            if not slots:
                ask.append(m)
                continue
            h = m.hex()
            if all(s.done for s in slots):
                completed.append(h)
                if not status_only:
                    values = [ar._slot_value(s) for s in slots]
                    content[h] = values[0] if len(values) == 1 else values
            else:
                pending.append(h)
        if ask:
            states = self._query([b"task_status", b"".join(ask)])
            for m in ask:
                h = m.hex()
                state = (states.get(h) or ["unknown"])[0]
                if state == "pending":
                    pending.append(h)
                elif state in ("succeeded", "failed"):
                    completed.append(h)
                else:
                    unknown.append(h)
        content["pending"] = pending
        content["completed"] = completed
        if unknown:
            content["unknown"] = unknown
        return content

    def get_result(self, indices_or_msg_ids=None, block=None, owner=False):
        """The AsyncResult of requests this client sent: msg ids (hex or bytes), indices
        into ``history`` (None: the last request), or a list of those. A result is
        remembered while something holds its AsyncResult (and until
        ``purge_results``); others raise KeyError here (``Client.get_result``, from
        ``_TaskDB``, reads those from the task database). Waits for it when ``block``.
        ``owner=False`` (the default) also lists the results in ``rc.results`` and
        ``rc.metadata`` once finished; ``owner=True`` leaves them to the AsyncResult."""
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        ids = self._msg_ids_of(indices_or_msg_ids)
        if not ids:
            raise ValueError("get_result needs at least one msg id")
        parts = []
        for m in ids:
            ar = self._results.get(m)
            slots = ar._slots_of(m) if ar is not None else []
            if not slots:
                raise KeyError(f"no result known for msg id {m.hex()}: it was not sent by "
                               "this client, or was purged, or nothing holds its "
                               "AsyncResult any more")
            parts.append((ar, slots))
        if not owner:
            self._results.published.update(ids)
        owners = {id(ar): ar for ar, _ in parts}
        if len(owners) == 1:
            ar = parts[0][0]
            # an AsyncHubResult is shown as a plain AsyncResult once fetched
            if len(ids) == len(ar._msg_ids) and not hasattr(ar, "_hub_ids"):
                result = ar
            else:
                result = _ResultView(self, parts)
        else:
            result = _ResultView(self, parts)
        block = self.block if block is None else block
        if block:
            result.wait()
        return result

    def purge_results(self, jobs=(), targets=()):
        """Forgets finished results here (``get_result``/``result_status`` no longer
        find them): ``jobs`` (AsyncResults, msg ids) or 'all', and/or every result of the
        ``targets`` engines. Pending ones raise ValueError. The controller's record store
        is bounded and purges itself."""
        table = self._results
        if jobs == "all" or targets == "all":
            for ar in table.results():
                if ar.done():
                    for m in ar._msg_ids:
                        table.pop(m)
            return
        if jobs:
            ids = self._msg_ids_of(jobs)
            busy = [m.hex() for m in ids if (ar := table.get(m)) is not None
                    and not all(s.done for s in ar._slots_of(m))]
            if busy:
                raise ValueError(f"cannot purge pending results: {', '.join(busy[:5])}")
            for m in ids:
                table.pop(m)
        if targets:
            if isinstance(targets, int):
                targets = [targets]
            tset = {int(t) for t in targets}
            for ar in table.results():
                if not ar.done():
                    continue
                for s in ar._slots:
                    if s.engine_id in tset:
                        table.pop(s.msg_id)


class _Group:
    """Several AsyncResults seen as one by the progress bar."""

    _fname = "tasks"

    def __init__(self, ars, return_when=concurrent.futures.ALL_COMPLETED):
        self.ars = ars
        self.return_when = return_when
        self._slots = [s for ar in ars for s in ar._slots]
        self._start = min((ar._mono0 for ar in ars), default=time.monotonic_ns())

    @property
    def progress(self):
        return sum(ar.progress for ar in self.ars)

    @property
    def elapsed(self):
        return (time.monotonic_ns() - self._start) / 1e9

    def done(self):
        """True once ``return_when`` is met: every result finished (ALL_COMPLETED), one
        did (FIRST_COMPLETED), or one failed (FIRST_EXCEPTION, else all finished)."""
        if not self.ars or all(ar.done() for ar in self.ars):
            return True
        if self.return_when == concurrent.futures.FIRST_COMPLETED:
            return any(ar.done() for ar in self.ars)
        if self.return_when == concurrent.futures.FIRST_EXCEPTION:
            return any(ar.done() and not ar.successful() for ar in self.ars)
        return False

    def wait(self, timeout):
        pending = [ar for ar in self.ars if not ar.done()]
        if pending:
            concurrent.futures.wait(pending, timeout, return_when=(
                concurrent.futures.ALL_COMPLETED
                if self.return_when == concurrent.futures.ALL_COMPLETED
                else concurrent.futures.FIRST_COMPLETED))
        return self.done()


class _ResultView(AsyncResult):
    """Some messages of one or more AsyncResults seen as one (``get_result`` of msg ids
    that are not exactly one AsyncResult's). Finished when every AsyncResult it draws
    from has finished; ``abort`` aborts those."""

    def __init__(self, client, parts):
        owners = {}
        slots = []
        for ar, ar_slots in parts:
            owners[id(ar)] = ar
            slots.extend(ar_slots)
        owners = list(owners.values())
        self._init_over_slots(client, slots, owners,
                              owners[0]._fname if len(owners) == 1 else "results",
                              single=len(slots) == 1, value=_NOT_YET)
        self._owners = owners
        self._owner_of = {id(s): ar for ar, ar_slots in parts for s in ar_slots}
        self._left = len(owners)  # done when every AsyncResult it draws from is
        for ar in self._owners:
            ar.add_done_callback(self._owner_done)

    def _owner_done(self, _ar):
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finished_mono = max(ar._finished_mono for ar in self._owners)
            self._future_finished()

    def _wait_slot(self, slot):
        self._owner_of[id(slot)]._wait_slot(slot)

    def _slot_value(self, slot):
        # as the AsyncResult it came from makes it (an execute's ExecuteReply ...)
        return self._owner_of[id(slot)]._slot_value(slot)

    def _remote_error(self, slot):
        # built by the AsyncResult it came from: its engine_info names that call's method
        return self._owner_of[id(slot)]._remote_error(slot)

    @property
    def progress(self):
        return sum(1 for s in self._slots if s.done)

    def abort(self, force=False, grace=3.0, timeout=30.0):
        out = {}
        for ar in self._owners:
            out.update(ar.abort(force=force, grace=grace, timeout=timeout))
        return out
