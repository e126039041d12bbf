"""AsyncResult: the future of one request (or a group of requests) sent to engines.

The client's dispatch thread files replies, output streams and errors into the result as
they arrive, and completes the ``concurrent.futures.Future`` once every engine has
answered. Results are unpickled only when asked for (``get``), in the asking thread.
"""

import concurrent.futures
import json
import pickle
import threading
import time

from .. import _core, error
from . import progress as _progress
from .futurestate import LazyFuture
from .outputs import OutputsMixin
from ..serialize import deserialize_object

_PENDING = object()
# Waits without a time limit wake this often (seconds), so that Ctrl-C reaches the waiting
# thread even when the signal landed on another thread (a blocked lock acquire is woken
# only by a signal to its own thread) or came from _thread.interrupt_main().
_POLL = 0.2


from .arinfo import _METADATA_KEYS, InfoMixin, Metadata  # noqa: F401 - Metadata: re-exported


class _Slot:
    """What one engine answered to one request."""

    __slots__ = ("msg_id", "engine_id", "frames", "status", "error", "value", "stdout",
                 "stderr", "outputs", "execute_result", "events", "started", "completed",
                 "received", "done", "text_bytes", "dropped", "data")

    def __init__(self, msg_id, engine_id):
        self.msg_id = msg_id
        self.engine_id = engine_id
        self.frames = None     # REPLY payload (Frames), until deserialized
        self.status = None     # REPLY status, or None
        self.error = None      # an exception instance: remote, engine death, transport
        self.value = _PENDING  # the deserialized result
        self.stdout = ()       # a list once output arrives (most tasks print nothing)
        self.stderr = ()
        self.outputs = ()      # display_data dicts {"data", "metadata"}, in order
        self.execute_result = None  # {"data", "metadata", "execution_count"} of Out[n]
        # Everything in arrival order: ("stdout"|"stderr", text), ("display_data"|
        # "execute_result"|"clear_output", dict). Only appended to, so a renderer can
        # keep an index into it while the request runs.
        self.events = ()
        self.started = 0       # ns, from the engine
        self.completed = 0
        self.received = 0      # ns, when the client got the reply
        self.done = False
        self.text_bytes = 0    # stdout + stderr bytes kept
        self.dropped = 0       # stdout + stderr bytes dropped past the client's limit
        self.data = None       # the merged dict of cpar.datapub.publish_data, or None


def _append(slot, name, item):
    """Appends to one of a slot's lists (made on first use: most tasks show nothing)."""
    lst = getattr(slot, name)
    if lst:
        lst.append(item)
    else:
        setattr(slot, name, [item])


class AsyncResult(InfoMixin, OutputsMixin, LazyFuture):
    """The pending result of a request to one or more engines.

    A ``concurrent.futures.Future``: ``done()``, ``add_done_callback`` and
    ``concurrent.futures.wait`` work; ``result()`` is ``get()``. Results are listed per
    engine in target order, or unwrapped when the request named a single engine.
    """

    _return_exceptions = False  # get()'s default (view.map(return_exceptions=True))
    # None, or (result, slot, value) -> what get() gives for one engine's successful
    # answer (a plain function set on the instance: view.execute makes ExecuteReplies).
    _wrap_value = None
    _watchers = None    # id(slot) -> parts (split/join) told when that slot is done
    _slot_root = None   # a part's: id(slot) -> the AsyncResult that fills that slot
    _split = None       # split()'s parts, made once
    _part_sizes = None  # a direct map's elements per slot (progress counts elements)

    def __init__(self, client, requests, fname="unknown", single=False, reduce=None,
                 submitted_ns=None, tasks=False):
        """``requests``: ``[(msg_id, [engine_id, ...]), ...]``, the messages this result
        waits for and the engines each was sent to. ``reduce`` turns the list of
        per-engine results into the final result (gather, map).

        ``tasks``: the messages are load-balanced tasks, each answered once by whichever
        engine the controller picks; their engines are listed as -1 (unknown) and filled
        in from the answers."""
        self._future_init()
        self._client = client
        self._tasks = tasks
        self._fname = fname
        self._single = single
        self._reduce = reduce
        self._submitted = submitted_ns or time.time_ns()  # wall clock, for display
        self._mono0 = time.monotonic_ns()  # durations are measured on the monotonic clock
        self._slots = []
        self._index = {}
        self._left_per_msg = {}
        if tasks:
            # One slot per task, indexed by its msg id alone.
            index = self._index
            slots = self._slots
            for msg_id, _ in requests:
                slot = _Slot(msg_id, -1)
                index[msg_id] = slot
                slots.append(slot)
            self._left_per_msg = dict.fromkeys(index, 1)
        else:
            for msg_id, engines in requests:
                for eid in engines:
                    slot = _Slot(msg_id, eid)
                    self._index[(msg_id, eid)] = slot
                    self._slots.append(slot)
                self._left_per_msg[msg_id] = len(engines)
        self._msg_ids = [m for m, _ in requests]
        self._left = len(self._slots)
        self._finished_mono = 0
        self._value = _PENDING
        self._exception = None
        self._aborted = False
        self._done_order = []  # slots in the order they completed
        # Guards the slots' completion: the dispatch thread fills them, abort() (any
        # thread) may complete them too. Iterators wait for the next answer on a
        # Condition over this lock, made when first needed (a Condition costs more
        # than the rest of a small result).
        self._lock = threading.Lock()
        self._cond = None
        if self._left == 0:
            self._finish()

    @classmethod
    def _over_slots(cls, client, slots, sources, fname, single, value=_PENDING):
        """A result over ``slots`` of the AsyncResults ``sources`` (``split``, ``join``,
        ``get_result``): it sends nothing and files no message; its caller says when it
        is done (``_left`` starts at the number of slots)."""
        self = cls.__new__(cls)
        self._init_over_slots(client, slots, sources, fname, single, value)
        return self

    def _init_over_slots(self, client, slots, sources, fname, single, value=_PENDING):
        self._future_init()
        self._client = client
        self._tasks = all(ar._tasks for ar in sources)
        self._fname = fname
        self._single = single
        self._reduce = None
        self._submitted = min(ar._submitted for ar in sources)
        self._mono0 = min(ar._mono0 for ar in sources)
        self._slots = slots
        self._index = {}
        self._left_per_msg = {}
        self._msg_ids = list(dict.fromkeys(s.msg_id for s in slots))
        self._left = len(slots)
        self._finished_mono = 0
        self._value = value
        self._exception = None
        self._aborted = False
        self._done_order = []
        self._lock = threading.Lock()
        self._cond = None

    # -- filled in by the client's dispatch thread -------------------------------------

    def _slot_done(self, slot):
        """Marks one engine's answer complete (with ``_lock`` held); returns
        ``(request_done, all_done)``."""
        slot.done = True
        slot.received = time.time_ns()
        self._done_order.append(slot)
        self._left -= 1
        left = self._left_per_msg[slot.msg_id] - 1
        self._left_per_msg[slot.msg_id] = left
        if self._cond is not None:
            self._cond.notify_all()
        if self._watchers:
            # Parts made by split()/join() that wait for this slot. Their done-callbacks
            # run here, in the dispatch thread with this result's lock held.
            from .subresults import part_slot_done

            for part in self._watchers.pop(id(slot), ()):
                part_slot_done(part)
        return left == 0, self._left == 0

    def _find_slot(self, msg_id, engine_id):
        """The slot of ``msg_id`` answered by ``engine_id``: the engine's own, or the
        request's task slot (engine unknown when sent)."""
        if self._tasks:
            return self._index.get(msg_id)
        return self._index.get((msg_id, engine_id))

    def _on_reply(self, msg):
        """A REPLY; True when its request has no engine left to answer."""
        slot = self._find_slot(msg.parent, msg.engine)
        if slot is None:
            return False
        with self._lock:
            if slot.done:  # aborted already: the late reply is dropped
                return False
            if self._tasks:
                slot.engine_id = msg.engine
            slot.frames = msg.frames
            slot.status = msg.status
            slot.started = msg.t0
            slot.completed = msg.t1
            msg_done, all_done = self._slot_done(slot)
        if all_done:
            self._finish()
        return msg_done

    def _on_stream(self, msg):
        slot = self._find_slot(msg.parent, msg.engine)
        if slot is None or slot.done:
            return
        if self._tasks and msg.engine >= 0:
            slot.engine_id = msg.engine
        self._stream_into(slot, msg)

    def _stream_into(self, slot, msg):
        """Files one output message (``flags`` and ``frames`` of a STREAM, live or from
        the task database) into ``slot``."""
        if msg.flags & _core.FLAG_DISPLAY:
            self._on_display(slot, msg, getattr(self._client, "max_output", None))
            return
        name = "stderr" if msg.flags & _core.FLAG_STDERR else "stdout"
        size = len(msg.frames[0]) if msg.frames else 0
        limit = getattr(self._client, "max_output", None)
        if limit is not None and slot.text_bytes + size > limit:
            # An engine printing without end: the client keeps the first ``max_output``
            # bytes of the request's text and counts the rest, so its memory stays
            # bounded; a note says what was dropped.
            keep = max(0, limit - slot.text_bytes)
            if slot.dropped == 0:
                head = bytes(memoryview(msg.frames[0])[:keep]).decode("utf-8", "replace") if keep else ""
                note = (f"{head}\n[cpar: output past the client's max_output of {limit} "
                        f"bytes is dropped; see the result's output_dropped]\n")
                slot.text_bytes += keep
                _append(slot, name, note)
                _append(slot, "events", (name, note))
                size -= keep
            slot.dropped += size
            return
        slot.text_bytes += size
        text = bytes(msg.frames[0]).decode("utf-8", "replace") if msg.frames else ""
        _append(slot, name, text)
        _append(slot, "events", (name, text))

    @staticmethod
    def _on_display(slot, msg, limit=None):
        """A display message (docs/protocol.md, STREAM with FLAG_DISPLAY)."""
        try:
            content = json.loads(bytes(msg.frames[0])) if msg.frames else None
        except ValueError:
            content = None
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "data_pub":
            from .datapubs import on_data_pub

            on_data_pub(slot, content, limit)
            return
        data = content.get("data")
        metadata = content.get("metadata")
        data = data if isinstance(data, dict) else {}
        metadata = metadata if isinstance(metadata, dict) else {}
        if kind == "execute_result":
            out = {"data": data, "metadata": metadata,
                   "execution_count": content.get("execution_count")}
            slot.execute_result = out
        elif kind == "display_data":
            out = {"data": data, "metadata": metadata}
            for key in ("transient", "update"):
                if key in content:
                    out[key] = content[key]
            _append(slot, "outputs", out)
        elif kind == "clear_output":
            # As ipyparallel: what the engine showed so far in this request is dropped.
            out = {"wait": bool(content.get("wait"))}
            slot.stdout = ()
            slot.stderr = ()
            slot.outputs = ()
        else:
            return
        _append(slot, "events", (kind, out))

    def _on_error(self, msg_id, engine_id, exc):
        """A failure in transit for one engine, or every engine (engine_id < 0) of a
        request; True when the request has no engine left to answer."""
        msg_done = all_done = False
        if self._tasks:
            task_slot = self._index.get(msg_id)
            if task_slot is None:  # a task: one slot, whichever engine is named
                return False
            with self._lock:
                if task_slot.done:
                    return False
                if engine_id >= 0:
                    task_slot.engine_id = engine_id
                task_slot.error = exc
                msg_done, all_done = self._slot_done(task_slot)
            if all_done:
                self._finish()
            return msg_done
        with self._lock:
            for slot in self._slots:
                if slot.msg_id != msg_id or slot.done:
                    continue
                if engine_id >= 0 and slot.engine_id != engine_id:
                    continue
                slot.error = exc
                msg_done, all_done = self._slot_done(slot)
        if all_done:
            self._finish()
        return msg_done

    def _slots_of(self, msg_id):
        """The slots of one of this result's messages."""
        if self._tasks:
            slot = self._index.get(msg_id)
            return [slot] if slot is not None else []
        return [s for s in self._slots if s.msg_id == msg_id]

    def _fail_pending(self, exc):
        """Fails every engine that has not answered (the client closed)."""
        all_done = False
        with self._lock:
            for slot in self._slots:
                if not slot.done:
                    slot.error = exc
                    _, all_done = self._slot_done(slot)
        if all_done:
            self._finish()

    def abort(self, force=False, grace=3.0, timeout=30.0):
        """Gives up on the engines that have not answered: their results become
        ``TaskAborted`` errors and late replies are ignored. A request that is running
        on its engine is interrupted (``KeyboardInterrupt`` there; the engine lives on).

        ``force=True`` escalates for code an interrupt cannot reach (C code holding the
        GIL): an engine that still holds an aborted request ``grace`` seconds later is
        killed, and replaced by an engine with the same id when a ``Cluster`` of this
        process launched it (waiting up to ``timeout`` s for it to register). The
        request's ``TaskAborted`` then says what happened. Returns ``{engine_id: what
        happened}`` for the engines killed (empty without ``force``).

        One ABORT message names every unfinished request of this result: a
        load-balanced task still queued at the controller is dropped there; a task or
        direct request already on an engine is dropped unrun if it waits there, or
        interrupted if it runs. Aborted tasks are never retried.

        A part of a result (``split``, ``join``) aborts the results it is part of."""
        if self._slot_root is not None:
            out = {}
            for root in {id(r): r for r in self._slot_root.values()}.values():
                out.update(root.abort(force=force, grace=grace, timeout=timeout))
            return out
        aborted = []
        finished_msgs = []
        all_done = False
        with self._lock:
            for slot in self._slots:
                if slot.done:
                    continue
                if slot.engine_id < 0:
                    slot.error = error.TaskAborted(
                        f"{self._fname}: aborted before it finished")
                else:
                    slot.error = error.TaskAborted(
                        f"[Engine {slot.engine_id}] {self._fname}: aborted before it "
                        "finished", slot.engine_id)
                msg_done, all_done = self._slot_done(slot)
                aborted.append(slot)
                if msg_done:
                    finished_msgs.append(slot.msg_id)
            if aborted:
                self._aborted = True
        if not aborted:
            return {}
        client = self._client
        d = client._dispatcher
        for msg_id in finished_msgs:
            d.release(msg_id, self)
        msg_ids = list(dict.fromkeys(s.msg_id for s in aborted))
        try:
            client._abort_tasks(msg_ids)
        finally:
            if all_done and not force:
                self._finish()
        if not force:
            return {}
        from .escalate import force_abort

        try:
            return force_abort(self, msg_ids, grace, timeout)
        finally:
            if all_done:
                self._finish()

    def _finish(self):
        self._finished_mono = time.monotonic_ns()
        self._future_finished()

    # -- results ------------------------------------------------------------------------

    def _slot_value(self, slot):
        """Deserializes one engine's answer once: its value, or an exception instance."""
        if slot.value is not _PENDING:
            return slot.value
        if slot.error is not None:
            value = slot.error
        elif slot.status == _core.STATUS_OK:
            value = deserialize_object(slot.frames) if slot.frames else None
            if self._wrap_value is not None:
                value = self._wrap_value(self, slot, value)
        else:
            value = self._remote_error(slot)
        slot.value = value
        slot.frames = None
        return value

    def _remote_error(self, slot):
        try:
            content = pickle.loads(slot.frames[0])
            if content.get("aborted") is True:
                # Its client aborted it (the engine's answer, as the task database keeps it):
                # what that client raised.
                return error.TaskAborted(f"[Engine {slot.engine_id}] {self._fname}: "
                                         f"{content.get('evalue', 'aborted')}", slot.engine_id)
            ename = content.get("ename", "UnknownError")
            evalue = content.get("evalue", "")
            tb = content.get("traceback", "")
            if isinstance(tb, (list, tuple)):
                tb = "\n".join(tb)
        except Exception as exc:  # noqa: BLE001 - any undecodable payload
            ename, evalue, tb = "UnknownError", f"undecodable error reply: {exc!r}", ""
        return error.RemoteError(ename, evalue, tb, {"engine_id": slot.engine_id,
                                                     "method": self._fname})

    def _resolve(self):
        if self._exception is not None:
            raise self._exception
        if self._value is not _PENDING:
            return self._value
        results = []
        elist = []
        for slot in self._slots:
            value = self._slot_value(slot)
            if slot.error is not None or slot.status not in (None, _core.STATUS_OK):
                elist.append(value)
            results.append(value)
        if elist:
            if self._single or len(elist) == 1 and len(self._slots) == 1:
                exc = elist[0]
            elif all(isinstance(e, error.TaskAborted) for e in elist):
                if self._tasks:
                    exc = error.TaskAborted(f"{self._fname}: {len(elist)} of "
                                            f"{len(self._slots)} task(s) aborted")
                else:
                    exc = error.TaskAborted(
                        f"{self._fname}: aborted on engine(s) "
                        f"{', '.join(str(getattr(e, 'engine_id', '?')) for e in elist)}")
                exc.elist = elist
            elif (len(elist) == len(self._slots) and all(e is elist[0] for e in elist)
                  and type(elist[0]) is not error.RemoteError):
                exc = elist[0]  # one failure of the whole request (e.g. no such engine)
            else:
                exc = error.CompositeError(
                    f"one or more exceptions from call to method: {self._fname}", elist)
            self._exception = exc
            raise exc
        if self._reduce is not None:
            value = self._reduce(results)
        elif self._single:
            value = results[0]
        else:
            value = results
        self._value = value
        return value

    def get(self, timeout=None, return_exceptions=None):
        """The result, waiting up to ``timeout`` seconds (None or negative: no limit).

        Raises ``cpar.error.TimeoutError`` if it is not ready in time, the engine's
        ``RemoteError`` (one engine) or a ``CompositeError`` (several) if the call failed,
        ``EngineError`` if the engine died first. With ``return_exceptions=True`` the
        errors are returned in place of the results they stand for instead (the default
        is what the request was made with: ``view.map(..., return_exceptions=True)``)."""
        if not self.wait(timeout):
            raise error.TimeoutError("Result not ready.")
        if return_exceptions is None:
            return_exceptions = self._return_exceptions
        if not return_exceptions:
            return self._resolve()
        try:
            return self._resolve()
        except Exception:  # noqa: BLE001 - returned in place, as asked
            return self._with_exceptions()

    def _with_exceptions(self):
        """The results with each failed engine's (or task's) error in its place."""
        values = [self._slot_value(s) for s in self._slots]
        return values[0] if self._single else values

    def result(self, timeout=None):
        """The result, as ``get(timeout)`` gives it (``concurrent.futures.Future``'s name):
        a failed task raises its error; ``cpar.TimeoutError`` if not done in time."""
        return self.get(timeout)

    def exception(self, timeout=None):
        """The error the request ended with, or None if it succeeded (waiting up to
        ``timeout`` seconds for it to end; ``cpar.TimeoutError`` if it did not)."""
        if not self.wait(timeout):
            raise error.TimeoutError("Result not ready.")
        try:
            self._resolve()
        except Exception as exc:  # noqa: BLE001 - returned, as Future.exception does
            return exc
        return None

    def wait(self, timeout=None, return_when=None):
        """Waits until every engine has answered; True if so within ``timeout``.

        With ``return_when`` (``cpar.FIRST_COMPLETED``, ``FIRST_EXCEPTION`` or
        ``ALL_COMPLETED``) it waits for the parts of ``split()`` as
        ``concurrent.futures.wait`` does and returns its ``(done, pending)`` sets."""
        if return_when is not None:
            from .subresults import wait_parts

            if timeout is not None and timeout < 0:
                timeout = None
            return wait_parts(self, timeout, return_when)
        if self.done():
            return True
        if timeout is not None and timeout < 0:
            timeout = None
        if threading.current_thread() is self._client._dispatcher.thread and timeout != 0:
            raise RuntimeError("cannot wait for a result in the client's dispatch thread "
                               "(a done-callback); it would wait forever")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = _POLL if deadline is None else \
                min(_POLL, max(0.0, deadline - time.monotonic()))
            try:
                concurrent.futures.Future.result(self, step)
            except concurrent.futures.TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            return True

    def wait_for_output(self, timeout=-1):
        """Waits until the output of every engine has arrived (stdout, stderr, display
        outputs, published data); True if so within ``timeout`` seconds (negative or
        None: no limit). An engine sends all its output before its answer, on the same
        path, so this is the same as waiting for the answers."""
        return self.wait(timeout)

    @property
    def data(self):
        """The data the engines published while the request ran (cpar.datapub): per
        engine, the merge of every dict it published (``{}`` before the first one);
        one dict for a single-engine result, else a list. Updated as it arrives."""
        out = [dict(s.data) if s.data else {} for s in self._slots]
        return out[0] if self._single else out

    def ready(self):
        """True once every engine has answered."""
        return self.done()

    def successful(self):
        """True if it finished without an error (raises if not finished yet)."""
        if not self.done():
            raise AssertionError("the result is not ready")
        try:
            self._resolve()
        except Exception:  # noqa: BLE001
            return False
        return True

    def cancel(self):
        """Requests already sent cannot be cancelled: returns False."""
        return False

    def __await__(self):
        import asyncio

        return asyncio.wrap_future(self).__await__()

    # -- per-engine details -------------------------------------------------------------

    @property
    def msg_ids(self):
        return [m.hex() for m in self._msg_ids]

    @property
    def msg_id(self):
        return self._msg_ids[0].hex() if self._msg_ids else None

    def wait_interactive(self, interval=0.1, timeout=-1, widget=None, return_when=None):
        """Waits until done (or ``timeout`` seconds), showing a progress bar: a text bar
        on stdout in a terminal, a widget (or updating text) in a notebook. With
        ``return_when`` (``FIRST_EXCEPTION``, ``FIRST_COMPLETED``) it stops as soon as
        that holds for the parts of ``split()``."""
        if return_when is None or return_when == concurrent.futures.ALL_COMPLETED:
            _progress.wait_interactive(self, interval=interval, timeout=timeout,
                                       widget=widget)
            return
        from .records import _Group
        from .subresults import check_return_when

        check_return_when(return_when)
        group = _Group(list(self.split()), return_when)
        group._fname = self._fname
        _progress.wait_interactive(group, interval=interval, timeout=timeout, widget=widget)

    def split(self):
        """This result as a tuple of AsyncResults, one per engine answer (a map: one per
        part), each finished as soon as its answer is in; ``(self,)`` for one answer.
        For ``concurrent.futures.wait`` and the like (``wait(return_when=...)``)."""
        if self._split is None:
            from .subresults import split

            self._split = split(self)
        return self._split

    @classmethod
    def join(cls, *async_results):
        """Several AsyncResults (e.g. parts of ``split()``) as one: its ``get()`` lists
        their answers in order. The first one itself when there is only one."""
        from .subresults import join

        return join(async_results)

    def get_dict(self, timeout=None):
        """The results as ``{engine_id: result}`` (one request answered by each engine
        once, as ``apply`` on a view)."""
        results = self.get(timeout)
        eids = [s.engine_id for s in self._slots]
        if len(set(eids)) != len(eids):
            raise ValueError(f"cannot key results by engine: an engine answered more than "
                             f"once (engines {eids})")
        if self._single:
            results = [results]
        elif self._reduce is not None:
            results = [self._slot_value(s) for s in self._slots]
        return dict(zip(eids, results))

    # -- container behaviour ------------------------------------------------------------

    def _condition_locked(self):
        """The Condition over ``_lock`` that iterators wait on (``_lock`` held)."""
        if self._cond is None:
            self._cond = threading.Condition(self._lock)
        return self._cond

    def _wait_slot(self, slot):
        if self._slot_root is not None:
            return self._slot_root[id(slot)]._wait_slot(slot)
        with self._lock:
            while not slot.done:
                self._condition_locked().wait(_POLL)

    def _slot_result(self, slot):
        """One engine's result, raising its error (returning it with
        ``return_exceptions``)."""
        self._wait_slot(slot)
        value = self._slot_value(slot)
        if (slot.error is not None or slot.status not in (None, _core.STATUS_OK)) \
                and not self._return_exceptions:
            raise value
        return value

    def __len__(self):
        return 1 if self._single else len(self._slots)

    def __iter__(self):
        """The per-engine results, each as soon as it (and those before it) arrived."""
        if self._single:
            raise TypeError("AsyncResults with a single result are not iterable.")
        if self.done():
            return iter(self.get())
        return (self._slot_result(slot) for slot in self._slots)

    def __getitem__(self, key):
        if isinstance(key, str):
            md = self.metadata
            if self._single:
                return md[key]
            return [m[key] for m in md]
        return self.get()[key]

    def __getattr__(self, key):
        """The metadata as attributes, as in ipyparallel: ``ar.started``,
        ``ar.completed``, ``ar.received``, ``ar.status``, ``ar.error`` ... (one value, or
        one per engine/task)."""
        if key == "_condition":
            return self._make_condition()
        if key.startswith("_") or key not in _METADATA_KEYS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")
        return self[key]

    def __dir__(self):
        return sorted(set(super().__dir__()) | _METADATA_KEYS)

    def __repr__(self):
        if not self.done():
            state = "pending"
        else:
            state = "finished" if self._exception is None and all(
                s.error is None and s.status in (None, 0) for s in self._slots) else "failed"
        return f"<{type(self).__name__}({self._fname}): {state}>"


class AsyncMapResult(AsyncResult):
    """The result of ``view.map`` (and of ``@view.parallel`` calls): one request per
    partition (a load-balanced map: one task per chunk), joined into one list (or array)
    in order. Iterating yields the elements as their partitions arrive, in order (with
    ``ordered=False``: partition by partition as they finish); ``len`` is the number of
    elements, ``progress`` the number of partitions finished."""

    def __init__(self, client, requests, n_items=None, ordered=True, **kwargs):
        self._n_items = n_items
        self._ordered = ordered
        super().__init__(client, requests, **kwargs)

    def __len__(self):
        if self._n_items is not None:
            return self._n_items
        return len(self.get())

    def __iter__(self):
        """The elements: in order, or (``ordered=False``) as their tasks finish."""
        from .remotefunctions import join_partitions

        if not self._ordered:
            return self._iter_unordered(join_partitions)
        if self.done():
            return iter(self.get())
        return (x for slot in self._slots for x in join_partitions([self._slot_result(slot)]))

    def _iter_unordered(self, join):
        order = self._done_order
        lock = self._lock
        n = len(self._slots)
        i = 0
        while i < n:
            with lock:
                while len(order) <= i:
                    self._condition_locked().wait(_POLL)
                slot = order[i]
            i += 1
            yield from join([self._slot_result(slot)])

    def _with_exceptions(self):
        """The elements, a failed part's error once in place of its elements."""
        from .remotefunctions import join_partitions

        parts = []
        for slot in self._slots:
            value = self._slot_value(slot)
            failed = slot.error is not None or slot.status not in (None, _core.STATUS_OK)
            parts.append([value] if failed else value)
        return join_partitions(parts)

    def get_dict(self, timeout=None):
        raise _NotPerEngine("a map's results are per element, not per engine: use get()")


class _NotPerEngine(ValueError, TypeError):
    """``get_dict`` of a map: a ValueError as in ipyparallel (a TypeError too, which cpar
    raised before)."""
