"""Client: the user's handle on a running cpar cluster (ipyparallel's ``Client``).

A client holds one ``cpar._core.Connection`` to the controller. A daemon thread waits on
it (with the GIL released) and files every incoming message: replies, output streams and
errors into their ``AsyncResult``, engine events into ``ids``. Requests are sent from the
user's thread; the connection's C I/O thread batches them onto the socket.
"""

import collections
import concurrent.futures
import functools
import itertools
import json
import operator
import os
import signal
import struct
import sys
import threading
import time
import weakref

from .._proc import pid_alive
from .. import _core, error, paths
from .asyncresult import _PENDING as _NOT_YET
from .asyncresult import AsyncResult
from .view import DirectView

# ipyparallel Client arguments cpar accepts and has no use for.
_IGNORED_ARGS = {"profile_dir", "ipython_dir", "context", "debug", "sshserver", "sshkey",
                 "password", "paramiko", "username", "cluster"}


_NO_PARENT = bytes(16)


def _targets_frame(targets):
    return struct.pack(f"<{len(targets)}i", *targets)


def _error_from_message(msg):
    """The exception an ERROR message stands for."""
    text = bytes(msg.frames[0]).decode("utf-8", "replace") if msg.frames else ""
    code = msg.status
    if not text:
        text = _core.strerror(code)
    if code == _core.E_ENGINEDEAD:
        return error.EngineError(text, msg.engine if msg.engine >= 0 else None)
    try:
        cls = _core.error_class(code)
        return cls(text)
    except Exception:  # noqa: BLE001 - a class that wants other arguments
        return error.CparError(text)


class _Dispatcher:
    """The client's receiving side: the connection, the table of pending results and the
    engine list, and the daemon thread that fills them. Kept apart from ``Client`` so the
    thread does not keep the client alive."""

    def __init__(self, url, key):
        self.url = url
        self.conn = _core.Connection(url, key)
        self.lock = threading.Lock()
        self.engines_changed = threading.Condition(self.lock)
        self.pending = {}   # msg_id -> AsyncResult
        self.waiters = {}   # msg_id -> Future of a CONNECT / SHUTDOWN
        self.ids = set()
        self.engine_info = {}
        self.closed = False
        self.new_msg_id = None  # set by the Client
        self.handlers = {
            _core.MSG_REPLY: self._on_reply,
            _core.MSG_STREAM: self._on_stream,
            _core.MSG_ERROR: self._on_error,
            _core.MSG_ENGINE_EVENT: self._on_engine_event,
            _core.MSG_CONNECT_REPLY: self._on_connect_reply,
            _core.MSG_SHUTDOWN_REPLY: self._on_waiter_reply,
            _core.MSG_QUERY_REPLY: self._on_waiter_reply,
        }
        self.thread = threading.Thread(target=self._run, name="cpar-client-dispatch",
                                       daemon=True)
        self.thread.start()

    def _run(self):
        conn = self.conn
        handlers = self.handlers
        while True:
            try:
                batch = conn.recv(timeout=0.5)
            except error.ConnectionClosed:
                break
            except BaseException as exc:  # noqa: BLE001 - report, then stop serving
                print(f"cpar client: receiving failed: {exc!r}", file=sys.stderr)
                break
            for msg in batch:
                handler = handlers.get(msg.type)
                if handler is None:
                    continue
                try:
                    handler(msg)
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop us
                    print(f"cpar client: cannot handle {msg!r}: {exc!r}", file=sys.stderr)
            # Drop our references before waiting again: frames may be large.
            batch = msg = None
        self._fail_everything(error.ConnectionClosed(
            f"the client's connection to {self.url} is closed"))

    def _on_reply(self, msg):
        ar = self.pending.get(msg.parent)
        if ar is not None and ar._on_reply(msg):
            self.pending.pop(msg.parent, None)

    def _on_stream(self, msg):
        ar = self.pending.get(msg.parent)
        if ar is not None:
            ar._on_stream(msg)

    def _on_error(self, msg):
        if msg.parent == _NO_PARENT:
            if msg.status == _core.E_CLOSED:  # made by our I/O thread: connection lost
                self._on_connection_lost()
            return
        ar = self.pending.get(msg.parent)
        if ar is not None:
            if ar._on_error(msg.parent, msg.engine, _error_from_message(msg)):
                self.pending.pop(msg.parent, None)
            return
        waiter = self.waiters.pop(msg.parent, None)
        if waiter is not None:
            waiter.set_exception(_error_from_message(msg))

    def _on_engine_event(self, msg):
        info = None
        if msg.status and len(msg.frames) > 1:  # frame 1: "pid host"
            parts = bytes(msg.frames[1]).decode("utf-8", "replace").split(None, 1)
            if parts:
                info = {"pid": parts[0], "host": parts[1] if len(parts) > 1 else ""}
        with self.lock:
            if msg.status:
                self.ids.add(msg.engine)
                if info is not None:
                    self.engine_info[msg.engine] = info
            else:
                self.ids.discard(msg.engine)
                self.engine_info.pop(msg.engine, None)
            self.engines_changed.notify_all()

    def _on_connect_reply(self, msg):
        ids = set()
        info = {}
        if msg.frames:
            raw = bytes(msg.frames[0])
            ids = set(struct.unpack(f"<{len(raw) // 4}i", raw[: len(raw) // 4 * 4]))
        if len(msg.frames) > 1:
            for line in bytes(msg.frames[1]).decode("utf-8", "replace").splitlines():
                parts = line.split(None, 2)
                if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
                    info[int(parts[0])] = {"pid": parts[1],
                                           "host": parts[2] if len(parts) > 2 else ""}
        with self.lock:
            self.ids = ids
            self.engine_info.update(info)
            self.engines_changed.notify_all()
        self._on_waiter_reply(msg)

    def _on_waiter_reply(self, msg):
        waiter = self.waiters.pop(msg.parent, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def _on_connection_lost(self):
        # Replies to requests sent before cannot reach us any more (the controller
        # routes by connection): fail them rather than leave them waiting forever.
        self._fail_everything(error.ControllerUnreachable(
            f"lost the connection to the controller at {self.url}"), closing=False)

    def check_connected(self):
        """Raises ControllerUnreachable when the connection dropped and is not back."""
        conn = self.conn
        if conn.disconnects and not conn.connected:
            raise error.ControllerUnreachable(
                f"the connection to the controller at {self.url} is down")

    def _fail_everything(self, exc, closing=True):
        if closing:
            self.closed = True
        pending, self.pending = self.pending, {}
        for ar in set(pending.values()):
            ar._fail_pending(exc)
        waiters, self.waiters = self.waiters, {}
        for w in waiters.values():
            if not w.done():
                w.set_exception(exc)
        with self.lock:
            self.engines_changed.notify_all()

    def close(self):
        self.conn.close()
        if self.thread is not threading.current_thread():
            self.thread.join()


def _forget(table, msg_ids, ref):
    """Weakref callback: an AsyncResult nobody holds any more leaves the table."""
    for m in msg_ids:
        if table.get(m) is ref:
            table.pop(m, None)


class _ResultTable:
    """msg id -> the AsyncResult that waits for it, for the results somebody still holds.

    Weak like a ``weakref.WeakValueDictionary``, but with one weak reference per
    AsyncResult rather than one per msg id (a map of 100,000 tasks is one result), so
    recording a request costs a dict insert."""

    __slots__ = ("table",)

    def __init__(self):
        self.table = {}

    def add(self, ar, msg_ids):
        ref = weakref.ref(ar, functools.partial(_forget, self.table, msg_ids))
        if len(msg_ids) == 1:
            self.table[msg_ids[0]] = ref
        else:
            self.table.update(dict.fromkeys(msg_ids, ref))

    def get(self, msg_id):
        ref = self.table.get(msg_id)
        return ref() if ref is not None else None

    def pop(self, msg_id):
        self.table.pop(msg_id, None)

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


class Client:
    """A connection to a cpar cluster: its engines (``ids``), views on them (``rc[:]``,
    ``rc[0]``, ``direct_view``), and the results of requests.

    ``Client()`` connects to the default profile's running cluster through its connection
    file; ``Client(url_file)`` to the cluster of that file; ``Client(profile=P,
    cluster_id=C)`` to another one. Raises ``WrongKey`` when the controller signs with a
    different key, ``ControllerUnreachable`` when nothing answers within ``timeout``
    seconds.
    """

    def __init__(self, url_file=None, profile="default", cluster_id=None, timeout=10,
                 block=False, **kw):
        unknown = set(kw) - _IGNORED_ARGS
        if unknown:
            raise TypeError(f"Client() got unexpected arguments: {sorted(unknown)}")
        self.profile = profile
        self.cluster_id = cluster_id or ""
        self.timeout = timeout
        self.block = block
        if url_file is None:
            url_file = paths.connection_file(profile, self.cluster_id)
        self.url_file = os.fspath(url_file)
        self._info = self._load_connection_file(self.url_file, timeout)
        self.url = self._info["client_url"]
        self._prefix = os.urandom(8)
        self._counter = itertools.count()
        self._results = _ResultTable()
        self._history = collections.deque(maxlen=_HISTORY)
        self._dispatcher = None
        self._dispatcher = _Dispatcher(self.url, self._info["key"].encode("utf-8"))
        self._dispatcher.new_msg_id = self._new_msg_id
        self._finalizer = weakref.finalize(self, _Dispatcher.close, self._dispatcher)
        try:
            self._connect(timeout)
        except BaseException:
            self.close()
            raise
        self._register_magics()

    def _register_magics(self):
        """Inside a running IPython shell, ``%px`` & co. then act on this client's engines
        (``self[:]``, blocking), as after ``rc = ipyparallel.Client()``."""
        if "IPython" not in sys.modules:
            return
        try:
            from .. import magics

            magics.register_client(self)
        except Exception:  # noqa: BLE001 - the magics are a convenience, never a failure
            pass

    # -- connection ---------------------------------------------------------------------

    @staticmethod
    def _load_connection_file(path, timeout):
        deadline = time.monotonic() + (timeout or 0)
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                raise FileNotFoundError(
                    f"no cpar connection file at {path}: is a cluster running? "
                    "(start one with `cpar cluster start -n 4`)")
            time.sleep(0.05)
        info = paths.read_json(path)
        missing = [k for k in ("client_url", "key") if k not in info]
        if missing:
            raise ValueError(f"connection file {path} lacks {', '.join(missing)}")
        return info

    def _new_msg_id(self):
        return self._prefix + next(self._counter).to_bytes(8, "little")

    def _connect(self, timeout):
        d = self._dispatcher
        msg_id = self._new_msg_id()
        waiter = _Waiter()
        d.waiters[msg_id] = waiter
        d.conn.send(_core.MSG_CONNECT, msg_id=msg_id)
        deadline = time.monotonic() + timeout
        while True:
            if waiter.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                waiter.result()
                return
            # A valid reply would be signed with our key: mis-signed answers mean the
            # controller uses another key, no need to wait longer.
            if d.conn.bad_signature or time.monotonic() >= deadline:
                break
        d.waiters.pop(msg_id, None)
        if d.conn.bad_signature:
            raise error.WrongKey(
                f"the controller at {self.url} answered, but with messages signed with a "
                f"different key than the one in {self.url_file}: the key does not match the "
                "controller's (a stale connection file, or another cluster on this port?)")
        hint = ""
        pid = self._info.get("controller_pid")
        if isinstance(pid, int) and pid > 0 and not pid_alive(pid):
            hint = f"; its process {pid} is not running (a stale connection file?)"
        raise error.ControllerUnreachable(
            f"no cpar controller answered at {self.url} (from {self.url_file}) within "
            f"{timeout} s{hint}")

    def close(self, linger=None):
        """Closes the connection; pending results fail with ``ConnectionClosed``."""
        if self._dispatcher is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self._dispatcher is None or self._dispatcher.closed

    def __repr__(self):
        state = "closed" if self.closed else f"{len(self.ids)} engines"
        return f"<cpar.Client {self.url} profile={self.profile!r} {state}>"

    # -- engines ------------------------------------------------------------------------

    @property
    def ids(self):
        """The ids of the live engines, ascending."""
        return sorted(self._dispatcher.ids)

    @property
    def engine_info(self):
        """``{id: {'pid': ..., 'host': ...}}`` for engines the controller described."""
        return dict(self._dispatcher.engine_info)

    def wait_for_engines(self, n=None, timeout=None, block=True):
        """Waits until at least ``n`` engines are registered (None or negative timeout: no
        limit); raises ``cpar.error.TimeoutError`` otherwise."""
        if n is None:
            n = 1
        d = self._dispatcher
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with d.engines_changed:
            while len(d.ids) < n:
                if d.closed:
                    raise error.ConnectionClosed("the client is closed")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise error.TimeoutError(
                        f"{len(d.ids)} engines registered after {timeout} s, wanted {n}")
                d.engines_changed.wait(left if left is not None else 1.0)

    def _build_targets(self, targets):
        """``(single, [ids])`` for a view's targets: 'all'/None, an id, a slice or a list."""
        ids = self.ids
        if targets is None or (isinstance(targets, str) and targets == "all"):
            if not ids:
                raise error.NoEnginesRegistered("no engines are registered yet "
                                                "(rc.wait_for_engines(n) waits for them)")
            return False, ids
        if not isinstance(targets, (str, bytes, slice, list, tuple, range, bool)):
            try:
                targets = operator.index(targets)  # numpy integers too
            except TypeError:
                pass
        if isinstance(targets, int) and not isinstance(targets, bool):
            if targets < 0:
                if not ids:
                    raise error.NoEnginesRegistered("no engines are registered yet")
                try:
                    targets = ids[targets]
                except IndexError:
                    raise error.NoSuchEngine(f"No such engine: {targets}") from None
            if targets not in self._dispatcher.ids:
                raise error.NoSuchEngine(f"No such engine: {targets}")
            return True, [targets]
        if isinstance(targets, slice):
            return False, ids[targets]
        try:
            tlist = [int(t) for t in targets]
        except TypeError:
            raise TypeError(f"targets must be 'all', an int, a slice or a list of ints, "
                            f"not {targets!r}") from None
        live = self._dispatcher.ids
        for t in tlist:
            if t not in live:
                raise error.NoSuchEngine(f"No such engine: {t}")
        return False, tlist

    def __getitem__(self, key):
        """``rc[0]``, ``rc[:]``, ``rc[::2]``, ``rc[[0, 2]]``: a DirectView."""
        if isinstance(key, str):
            raise TypeError("engine ids are ints, not str")
        single, tlist = self._build_targets(key)
        return DirectView(self, tlist[0] if single else tlist)

    def __len__(self):
        return len(self._dispatcher.ids)

    def __iter__(self):
        for eid in self.ids:
            yield self[eid]

    def direct_view(self, targets="all"):
        """A DirectView on ``targets``; 'all' means the engines live at each call."""
        if targets != "all":
            self._build_targets(targets)  # fail early on unknown ids
        return DirectView(self, targets)

    # -- requests -----------------------------------------------------------------------

    def _submit(self, msg_type, tlist, payload, fname, single, reduce=None):
        """Sends one targeted request; returns its AsyncResult."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        msg_id = self._new_msg_id()
        now = time.time_ns()
        ar = AsyncResult(self, [(msg_id, tlist)], fname=fname, single=single,
                         reduce=reduce, submitted_ns=now)
        if not tlist:
            return ar  # no engine to ask (an empty view): finished, with no results
        d.pending[msg_id] = ar
        self._remember(ar, ar._msg_ids)
        try:
            d.conn.send(msg_type, [_targets_frame(tlist)] + list(payload), msg_id=msg_id,
                        flags=_core.FLAG_TARGETED, t0=now)
        except BaseException:
            d.pending.pop(msg_id, None)
            raise
        return ar

    def _submit_many(self, msg_type, parts, fname, single=False, reduce=None,
                     cls=AsyncResult, **extra):
        """Sends one request per ``(engine_id, payload)`` of ``parts``; returns one
        AsyncResult (of class ``cls``) over all of them (scatter, map)."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        now = time.time_ns()
        requests = [(self._new_msg_id(), [eid]) for eid, _ in parts]
        ar = cls(self, requests, fname=fname, single=single, reduce=reduce,
                 submitted_ns=now, **extra)
        for (msg_id, _), _ in zip(requests, parts):
            d.pending[msg_id] = ar
        self._remember(ar, ar._msg_ids)
        try:
            for (msg_id, engines), (_, payload) in zip(requests, parts):
                d.conn.send(msg_type, [_targets_frame(engines)] + list(payload),
                            msg_id=msg_id, flags=_core.FLAG_TARGETED, t0=now)
        except BaseException as exc:
            for msg_id, _ in requests:
                d.pending.pop(msg_id, None)
            ar._fail_pending(exc if isinstance(exc, Exception) else error.CparError(str(exc)))
            raise
        return ar

    def _remember(self, ar, msg_ids):
        self._results.add(ar, msg_ids)
        self._history.extend(msg_ids)

    def _submit_tasks(self, spec, payloads, fname, single=False, reduce=None,
                      cls=AsyncResult, **extra):
        """Sends one load-balanced TASK per payload (the controller picks each one's
        engine); returns one AsyncResult (of class ``cls``) over all of them."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        now = time.time_ns()
        pending = d.pending
        send = d.conn.send
        if len(payloads) == 1:  # apply: the common case, kept short
            msg_id = self._new_msg_id()
            ar = cls(self, [(msg_id, None)], fname=fname, single=single, reduce=reduce,
                     submitted_ns=now, tasks=True, **extra)
            pending[msg_id] = ar
            self._results.add(ar, ar._msg_ids)
            self._history.append(msg_id)
            try:
                send(_core.MSG_TASK, [spec, *payloads[0]], msg_id=msg_id, t0=now)
            except BaseException as exc:
                pending.pop(msg_id, None)
                ar._fail_pending(exc if isinstance(exc, Exception)
                                 else error.CparError(str(exc)))
                raise
            return ar
        new_id = self._new_msg_id
        msg_ids = [new_id() for _ in payloads]
        ar = cls(self, [(m, None) for m in msg_ids], fname=fname, single=single,
                 reduce=reduce, submitted_ns=now, tasks=True, **extra)
        if not msg_ids:
            return ar
        pending.update(dict.fromkeys(msg_ids, ar))
        self._remember(ar, msg_ids)
        task = _core.MSG_TASK
        try:
            for msg_id, payload in zip(msg_ids, payloads):
                send(task, [spec, *payload], msg_id=msg_id, t0=now)
        except BaseException as exc:
            for msg_id in msg_ids:
                pending.pop(msg_id, None)
            ar._fail_pending(exc if isinstance(exc, Exception) else error.CparError(str(exc)))
            raise
        return ar

    def _abort_tasks(self, msg_ids):
        """Asks the controller to drop these requests (load-balanced tasks or direct
        requests) where they wait, and to interrupt them where they run. One ABORT
        message; the controller passes direct requests to the engines that have them,
        which drop a queued one unrun and interrupt a running one."""
        d = self._dispatcher
        if not msg_ids or d.closed:
            return
        d.conn.send(_core.MSG_ABORT, [b"".join(msg_ids)], msg_id=self._new_msg_id())

    def load_balanced_view(self, targets=None, **kwargs):
        """A LoadBalancedView (tasks go to whichever engine the scheduler picks)."""
        try:
            from .lbview import LoadBalancedView
        except ImportError:
            raise NotImplementedError("load-balanced views are not available in this "
                                      "version of cpar; use a DirectView") from None
        return LoadBalancedView(self, targets, **kwargs)

    def send_signal(self, sig=signal.SIGINT, targets=None, block=False):
        """Interrupts what runs on the ``targets`` engines: the running task gets a
        ``KeyboardInterrupt`` (the engines live on). Only SIGINT is supported."""
        if sig not in (signal.SIGINT, "SIGINT", int(signal.SIGINT)):
            raise ValueError(f"only SIGINT can be sent to engines, not {sig!r}")
        d = self._dispatcher
        d.check_connected()
        _, tlist = self._build_targets(targets)
        d.conn.send(_core.MSG_INTERRUPT, [_targets_frame(tlist), b""],
                    msg_id=self._new_msg_id(), flags=_core.FLAG_TARGETED)

    def _resolve_jobs(self, jobs):
        """The AsyncResults named by ``jobs`` (AsyncResults, msg ids as hex or bytes, or
        None for every outstanding request), each once, in order; ids no longer
        outstanding are skipped."""
        pending = self._dispatcher.pending
        if jobs is None:
            return list(dict.fromkeys(pending.values()))
        if isinstance(jobs, (AsyncResult, str, bytes)):
            jobs = [jobs]
        ars = {}  # insertion-ordered set
        for job in jobs:
            if not isinstance(job, AsyncResult):
                job = pending.get(bytes.fromhex(job) if isinstance(job, str) else job)
            if job is not None:
                ars[job] = None
        return list(ars)

    def abort(self, jobs=None, targets=None, block=None):
        """Aborts ``jobs`` (AsyncResults or msg ids; None: every outstanding request):
        see ``AsyncResult.abort``. ``targets`` and ``block`` are accepted for
        ipyparallel compatibility."""
        for ar in self._resolve_jobs(jobs):
            ar.abort()

    def wait_interactive(self, jobs=None, interval=0.1, timeout=-1, widget=None):
        """``wait`` with a progress bar over every task of ``jobs`` (None: everything
        outstanding); see ``AsyncResult.wait_interactive``."""
        from .progress import wait_interactive

        ars = self._resolve_jobs(jobs)
        wait_interactive(_Group(ars), interval=interval, timeout=timeout, widget=widget)
        return all(ar.done() for ar in ars)

    def activate(self, targets="all", suffix=""):
        """A DirectView on ``targets`` made the target of the ``%px`` magics."""
        view = self.direct_view(targets)
        view.block = True
        view.activate(suffix)
        return view

    @property
    def outstanding(self):
        """msg ids (hex) of requests not fully answered yet."""
        return {m.hex() for m in list(self._dispatcher.pending)}

    def wait(self, jobs=None, timeout=-1):
        """Waits for ``jobs`` (AsyncResults or msg ids; None: everything outstanding).
        True if all finished within ``timeout`` seconds (negative: no limit)."""
        ars = self._resolve_jobs(jobs)
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        for ar in ars:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not ar.wait(left):
                return False
        return True

    # -- bookkeeping --------------------------------------------------------------------

    @property
    def history(self):
        """msg ids (hex) of the most recent requests this client sent, oldest first
        (the last 10,000)."""
        return [m.hex() for m in self._history]

    def _query(self, frames):
        """Sends a QUERY and returns its decoded JSON answer."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        msg_id = self._new_msg_id()
        waiter = _Waiter()
        d.waiters[msg_id] = waiter
        d.conn.send(_core.MSG_QUERY, frames, msg_id=msg_id)
        if not waiter.wait(self.timeout):
            d.waiters.pop(msg_id, None)
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
        if isinstance(jobs, (AsyncResult, str, bytes, int)):
            jobs = [jobs]
        out = []
        for job in jobs:
            if isinstance(job, AsyncResult):
                out.extend(job._msg_ids)
            elif isinstance(job, str):
                try:
                    raw = bytes.fromhex(job)
                except ValueError:
                    raise ValueError(f"not a msg id: {job!r}") from None
                out.append(raw)
            elif isinstance(job, (bytes, bytearray)):
                out.append(bytes(job))
            elif isinstance(job, int) and not isinstance(job, bool):
                try:
                    out.append(self._history[job])
                except IndexError:
                    raise IndexError(f"no request {job} in the history "
                                     f"({len(self._history)} remembered)") from None
            else:
                raise TypeError(f"not a msg id, index or AsyncResult: {job!r}")
        return list(dict.fromkeys(out))

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

    def get_result(self, indices_or_msg_ids=None, block=None):
        """The AsyncResult of requests this client sent: msg ids (hex or bytes), indices
        into ``history`` (None: the last request), or a list of those. A result is
        remembered while something holds its AsyncResult (and until
        ``purge_results``); others raise KeyError. Waits for it when ``block``."""
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
        owners = {id(ar): ar for ar, _ in parts}
        if len(owners) == 1:
            ar = parts[0][0]
            if len(ids) == len(ar._msg_ids):
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

    def shutdown(self, targets="all", hub=False, block=True, restart=False):
        """Stops the ``targets`` engines; with ``hub=True`` the controller too."""
        if restart:
            raise NotImplementedError("restarting engines is not supported")
        d = self._dispatcher
        if targets == "all" or targets is None:
            tlist = self.ids
        else:
            tlist = self._build_targets(targets)[1]
        frames = [_targets_frame(tlist)] if tlist else []
        flags = (_core.FLAG_TARGETED if tlist else 0) | (_core.FLAG_HUB if hub else 0)
        if not tlist and not hub:
            return
        d.check_connected()
        msg_id = self._new_msg_id()
        waiter = _Waiter()
        d.waiters[msg_id] = waiter
        d.conn.send(_core.MSG_SHUTDOWN, frames, msg_id=msg_id, flags=flags)
        if block:
            if not waiter.wait(self.timeout):
                d.waiters.pop(msg_id, None)
                raise error.TimeoutError(
                    f"the controller did not confirm the shutdown within {self.timeout} s")
            waiter.result()
            if tlist:
                self._wait_engines_gone(tlist, self.timeout)

    def _wait_engines_gone(self, tlist, timeout):
        d = self._dispatcher
        deadline = time.monotonic() + timeout
        with d.engines_changed:
            while any(t in d.ids for t in tlist) and not d.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                d.engines_changed.wait(left)


class _Group:
    """Several AsyncResults seen as one by the progress bar."""

    _fname = "tasks"

    def __init__(self, ars):
        self.ars = ars
        self._slots = [s for ar in ars for s in ar._slots]
        self._start = min((ar._submitted for ar in ars), default=time.time_ns())

    @property
    def progress(self):
        return sum(ar.progress for ar in self.ars)

    @property
    def elapsed(self):
        return (time.time_ns() - self._start) / 1e9

    def done(self):
        return all(ar.done() for ar in self.ars)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        for ar in self.ars:
            if not ar.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True


class _ResultView(AsyncResult):
    """Some messages of one or more AsyncResults seen as one (``get_result`` of msg ids
    that are not exactly one AsyncResult's). Finished when every AsyncResult it draws
    from has finished; ``abort`` aborts those."""

    def __init__(self, client, parts):
        concurrent.futures.Future.__init__(self)
        owners = {}
        slots = []
        for ar, ar_slots in parts:
            owners[id(ar)] = ar
            slots.extend(ar_slots)
        self._client = client
        self._owners = list(owners.values())
        self._owner_of = {id(s): ar for ar, ar_slots in parts for s in ar_slots}
        self._fname = self._owners[0]._fname if len(self._owners) == 1 else "results"
        self._tasks = all(ar._tasks for ar in self._owners)
        self._single = len(slots) == 1
        self._reduce = None
        self._submitted = min(ar._submitted for ar in self._owners)
        self._slots = slots
        self._index = {}
        self._left_per_msg = {}
        self._msg_ids = list(dict.fromkeys(s.msg_id for s in slots))
        self._left = len(self._owners)
        self._finished_ns = 0
        self._value = _NOT_YET
        self._exception = None
        self._aborted = False
        self._done_order = []
        self._lock = threading.Lock()
        self._cond = None
        for ar in self._owners:
            ar.add_done_callback(self._owner_done)

    def _owner_done(self, _ar):
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finished_ns = max(ar._finished_ns for ar in self._owners)
            try:
                concurrent.futures.Future.set_result(self, None)
            except concurrent.futures.InvalidStateError:
                pass

    def _wait_slot(self, slot):
        self._owner_of[id(slot)]._wait_slot(slot)

    @property
    def progress(self):
        return sum(1 for s in self._slots if s.done)

    def abort(self):
        for ar in self._owners:
            ar.abort()


class _Waiter:
    """A minimal future for control replies (CONNECT, SHUTDOWN)."""

    __slots__ = ("_event", "_msg", "_exc")

    def __init__(self):
        self._event = threading.Event()
        self._msg = None
        self._exc = None

    def done(self):
        return self._event.is_set()

    def set_result(self, msg):
        self._msg = msg
        self._event.set()

    def set_exception(self, exc):
        self._exc = exc
        self._event.set()

    def wait(self, timeout):
        return self._event.wait(timeout)

    def result(self):
        if self._exc is not None:
            raise self._exc
        return self._msg
