"""Client: the user's handle on a running cpar cluster (ipyparallel's ``Client``).

A client holds one ``cpar._core.Connection`` to the controller. A daemon thread waits on
it (with the GIL released) and files every incoming message: replies, output streams and
errors into their ``AsyncResult``, engine events into ``ids``. Requests are sent from the
user's thread; the connection's C I/O thread batches them onto the socket.
"""

import collections
import concurrent.futures
import itertools
import operator
import os
import signal
import sys
import threading
import time
import weakref

from .._proc import pid_alive
from .. import _core, connfile, error, paths
from .asyncresult import _POLL, AsyncResult
from .dispatch import _Dispatcher, _targets_frame
from .localresults import _LocalResults
from .records import _HISTORY, _Bookkeeping, _Group, _ResultTable
from .taskdb import _TaskDB
from .view import DirectView

# The stdout/stderr text kept per engine and request (``Client.max_output``); more is
# counted and dropped. $CPAR_MAX_OUTPUT (bytes, or 0 for no limit) changes it.
_MAX_OUTPUT = 64 * 1024 * 1024


def _max_output_default():
    raw = os.environ.get("CPAR_MAX_OUTPUT")
    if not raw:
        return _MAX_OUTPUT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"CPAR_MAX_OUTPUT must be a number of bytes, not {raw!r}") from None
    return value if value > 0 else None


# ipyparallel Client arguments cpar accepts and has no use for.
_IGNORED_ARGS = {"profile_dir", "ipython_dir", "context", "debug", "username", "cluster"}
# ... and those that tunnel the connection over ssh (cpar.client.tunnel).
_SSH_ARGS = {"sshserver", "sshkey", "password", "paramiko"}


def _recover_grace(info, given):
    """Seconds pending results wait for a controller that went away (docs/recovery.md):
    ``given``, else the connection file's ``recover_grace_ms`` (absent: 0)."""
    if given is None:
        given = (info.get("recover_grace_ms") or 0) / 1000
    try:
        grace = float(given)
    except (TypeError, ValueError):
        raise ValueError(f"recover_grace must be a number of seconds, not {given!r}") from None
    if not grace >= 0:
        raise ValueError(f"recover_grace must be >= 0 seconds, not {given!r}")
    return grace


def _weak_reclaim(client):
    """A callback reclaiming ``client``'s requests that does not keep it alive."""
    ref = weakref.ref(client)

    def callback():
        c = ref()
        if c is not None:
            from .reclaim import reclaim

            reclaim(c)

    return callback


class Client(_TaskDB, _LocalResults, _Bookkeeping):
    """A connection to a cpar cluster: its engines (``ids``), views on them (``rc[:]``,
    ``rc[0]``, ``direct_view``), and the results of requests.

    ``max_output``: the stdout/stderr bytes kept per engine and request (default 64 MiB,
    ``$CPAR_MAX_OUTPUT``; None: no limit); past it, text is counted
    (``ar.output_dropped``) and dropped, with a note in the output.

    ``Client()`` connects to the default profile's running cluster through its connection
    file; ``Client(url_file)`` to the cluster of that file; ``Client(profile=P,
    cluster_id=C)`` to another one. Raises ``WrongKey`` when the controller signs with a
    different key, ``ControllerUnreachable`` when nothing answers within ``timeout``
    seconds.

    ``recover_grace``: seconds pending results wait when the connection to the
    controller drops (default: the connection file's ``recover_grace_ms``, which
    ``cpar controller --recover-grace`` sets, 60 s by default; 0: they fail at once).
    When the link comes back (``cpar cluster recover`` started a new controller from the
    task database, or the old one is reachable again) the client reclaims them and they
    complete as if nothing had happened (docs/recovery.md).

    ``sshserver='user@host[:port]'`` (or the connection file's ``ssh`` field), with
    ``sshkey=`` or ``password=``: reach the controller through an ``ssh -N -L`` tunnel via
    that login host (see ``cpar.client.tunnel``); ssh failures raise ``SSHTunnelError``
    (a ``ControllerUnreachable``) with ssh's own message.
    """

    def __new__(cls, *args, **kwargs):
        # Defined so that replacing and then restoring Client.__new__ (mock.patch does)
        # leaves Client() working: without it CPython then calls object.__new__ with
        # the constructor's arguments, a TypeError.
        return super().__new__(cls)

    def __init__(self, url_file=None, profile="default", cluster_id=None, timeout=10,
                 block=False, recover_grace=None, **kw):
        unknown = set(kw) - _IGNORED_ARGS - _SSH_ARGS
        if unknown:
            raise TypeError(f"Client() got unexpected arguments: {sorted(unknown)}")
        self.profile = profile
        self.cluster_id = cluster_id or ""
        self.timeout = timeout
        self.block = block
        # stdout/stderr bytes kept per engine and request (None: no limit): an engine
        # that prints without end cannot fill this process's memory.
        self.max_output = _max_output_default()
        if url_file is None:
            url_file = paths.connection_file(profile, self.cluster_id)
        self.url_file = os.fspath(url_file)
        self._info = connfile.read(self.url_file, timeout=timeout)
        self.url = self._info["client_url"]
        self._prefix = os.urandom(8)
        self._counter = itertools.count()
        self._results = _ResultTable()
        self._history = collections.deque(maxlen=_HISTORY)
        self._dispatcher = None
        self._tunnel = None
        connect_url = self._open_tunnel(kw, timeout)
        try:
            # a tunnelled client is on another host: no shared memory with the engines
            self._dispatcher = _Dispatcher(connect_url, self._info["key"].encode("utf-8"),
                                           connfile.curve_keys(self._info, self.url_file),
                                           shm=self._tunnel is None,
                                           recover_grace=_recover_grace(self._info,
                                                                        recover_grace))
        except BaseException:
            self._close_tunnel()
            raise
        self._dispatcher.new_msg_id = self._new_msg_id
        self._dispatcher.on_reconnected = _weak_reclaim(self)
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

    def _open_tunnel(self, kw, timeout):
        """The URL to connect to: the controller's, or the local end of an ssh tunnel to
        it (``sshserver=``, or the connection file's ``ssh`` field)."""
        server = kw.get("sshserver") or self._info.get("ssh")
        if not server:
            return self.url
        from .tunnel import open_tunnel

        self._tunnel = open_tunnel(self.url, server, kw.get("sshkey") or self._info.get("sshkey"),
                                   kw.get("password"), timeout, kw.get("paramiko"))
        return self._tunnel.url

    def _close_tunnel(self):
        if self._tunnel is not None:
            self._tunnel.close()

    def _new_msg_id(self):
        # The counter big-endian: a client's ids then sort in the order it made them, so
        # the controller's task database adds each one at the end of its msg_id index
        # (one index page written per batch) instead of at a random place (one per task).
        return self._prefix + next(self._counter).to_bytes(8, "big")

    def _connect(self, timeout):
        d = self._dispatcher
        msg_id = self._new_msg_id()
        # Our pid: the controller accepts shared-memory descriptors from us naming only it.
        waiter = d.request(_core.MSG_CONNECT, [f"pid={os.getpid()}".encode()], msg_id)
        deadline = time.monotonic() + timeout
        while True:
            if waiter.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                if d.conn.handshake_failed and waiter._exc is not None:
                    break  # the failed handshake dropped the connection: say why below
                waiter.result()
                self._settle_shm()
                return
            # A valid reply would be signed with our key: mis-signed answers mean the
            # controller uses another key, and a failed CURVE handshake means the
            # encryption keys differ: no need to wait longer in either case.
            if (d.conn.bad_signature or d.conn.handshake_failed
                    or time.monotonic() >= deadline
                    or (self._tunnel is not None and self._tunnel.failure)):
                break
        d.forget_request(msg_id)
        if self._tunnel is not None:
            self._tunnel.check(wait=1.0 if d.conn.handshake_failed else 0.0)
        if d.conn.handshake_failed:
            curve = bool(self._info.get("curve_serverkey"))
            raise error.WrongKey(
                f"the encrypted (CURVE) handshake with the controller at {self.url} failed: "
                + ("the CURVE keys in " + self.url_file + " do not match the controller's"
                   if curve else
                   "the controller encrypts with CURVE but " + self.url_file
                   + " has no CURVE keys")
                + " (a stale connection file, or another cluster on this port?)")
        if d.conn.bad_signature:
            raise error.WrongKey(
                f"the controller at {self.url} answered, but with messages signed with a "
                f"different key than the one in {self.url_file}: the key does not match the "
                "controller's (a stale connection file, or another cluster on this port?)")
        hint = ""
        pid = self._info.get("controller_pid")
        if isinstance(pid, int) and pid > 0 and not pid_alive(pid):
            hint = f"; its process {pid} is not running (a stale connection file?)"
        if self._tunnel is not None:
            hint += f"; through the ssh tunnel via {self._tunnel.server}"
        raise error.ControllerUnreachable(
            f"no cpar controller answered at {self.url} (from {self.url_file}) within "
            f"{timeout} s{hint}")

    def close(self, linger=None):
        """Closes the connection; pending results fail with ``ConnectionClosed``.

        Closing drops messages not yet on the wire: after an ``abort`` the client first
        makes one round trip to the controller (up to ``linger`` seconds, default 2), so
        ``ar.abort(); rc.close()`` does stop the engines' work."""
        if self._dispatcher is None:
            return
        if getattr(self, "_dask", None) is not None:
            from .dask import stop_dask

            stop_dask(self, "all", quiet=True)
        if getattr(self, "_abort_unflushed", False) and not self.closed:
            self._abort_unflushed = False
            saved = self.timeout
            self.timeout = 2.0 if linger is None else linger
            try:
                self._query([b"queue_status"])
            except Exception:  # noqa: BLE001 - unreachable: nothing more to do
                pass
            finally:
                self.timeout = saved
        self._finalizer()
        self._close_tunnel()

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
        limit); raises ``cpar.error.TimeoutError`` otherwise. With ``block=False`` it
        returns at once a ``concurrent.futures.Future`` of that wait (its result None, or
        its exception the ``TimeoutError``), as ipyparallel does."""
        if not block:
            future = concurrent.futures.Future()

            def waiter():
                try:
                    self.wait_for_engines(n, timeout=timeout, block=True)
                except BaseException as exc:  # noqa: BLE001 - handed to the Future
                    future.set_exception(exc)
                else:
                    future.set_result(None)

            threading.Thread(target=waiter, name="cpar-wait-for-engines",
                             daemon=True).start()
            return future
        if n is None:
            n = 1
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed: make a new Client to wait "
                                         "for engines")
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
        self._settle_shm()

    def _settle_shm(self, timeout=1.0):
        """Waits (briefly) for the shared-memory probes of same-host engines to come back,
        so that the first large push already knows which way its bytes may go. Requests
        sent earlier are not wrong, only slower: they take the socket."""
        conn = self._dispatcher.conn
        deadline = time.monotonic() + timeout
        while conn.shm_probing and time.monotonic() < deadline and not conn.closed:
            time.sleep(0.001)

    def _build_targets(self, targets):
        """``(single, [ids])`` for a view's targets: 'all'/None, an id, a slice or a list."""
        if self.closed:
            raise error.ConnectionClosed("the client is closed (rc.close() was called): "
                                         "its views cannot send; make a new Client")
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
            if not ids:
                raise error.NoEnginesRegistered("no engines are registered yet "
                                                "(rc.wait_for_engines(n) waits for them)")
            return False, ids[targets]
        try:
            tlist = [int(t) for t in targets]
        except TypeError:
            raise TypeError(f"targets must be 'all', an int, a slice or a list of ints, "
                            f"not {targets!r}") from None
        live = self._dispatcher.ids
        if any(t < 0 for t in tlist):  # counted from the end of rc.ids, as an int is
            try:
                tlist = [ids[t] if t < 0 else t for t in tlist]
            except IndexError:
                raise error.NoSuchEngine(f"No such engine: {targets}") from None
        for t in tlist:
            if t not in live:
                raise error.NoSuchEngine(f"No such engine: {t}")
        return False, tlist

    def __getitem__(self, key):
        """``rc[0]``, ``rc[:]``, ``rc[::2]``, ``rc[[0, 2]]``: a DirectView."""
        if key is None or isinstance(key, (str, bytes)):
            raise TypeError(f"rc[key] needs an engine id, a slice or a list of ids, "
                            f"not {key!r}")
        return self.direct_view(key)

    def __len__(self):
        return len(self._dispatcher.ids)

    def __iter__(self):
        for eid in self.ids:
            yield self[eid]

    def direct_view(self, targets="all"):
        """A DirectView on ``targets``; 'all' means the engines live at each call. Other
        targets are resolved now, as in ipyparallel: a negative id counts from the end of
        ``rc.ids``, a slice becomes the list of ids it selects."""
        if isinstance(targets, str) and targets == "all":
            return DirectView(self, targets)
        single, tlist = self._build_targets(targets)  # fails early on unknown ids
        return DirectView(self, tlist[0] if single else tlist)

    def broadcast_view(self, targets="all", is_coalescing=False, **kwargs):
        """A BroadcastView on ``targets`` (as ``direct_view``): one request per call for
        all its engines; with ``is_coalescing`` their replies come back as one message.
        Other keyword arguments set the view's flags (``block``, ``track``)."""
        from .broadcast import BroadcastView
        return BroadcastView.make(self, targets, is_coalescing, **kwargs)

    # -- requests -----------------------------------------------------------------------

    def _submit(self, msg_type, tlist, payload, fname, single, reduce=None,
                cls=AsyncResult, coalesce=False):
        """Sends one targeted request; returns its AsyncResult (of class ``cls``). With
        ``coalesce`` the controller answers with one message for all targets."""
        flags = _core.FLAG_TARGETED | (_core.FLAG_COALESCE if coalesce else 0)
        return self._send_requests(msg_type, flags, [(tlist, [_targets_frame(tlist),
                                                              *payload])],
                                   cls, fname=fname, single=single, reduce=reduce)

    def _submit_many(self, msg_type, parts, fname, single=False, reduce=None,
                     cls=AsyncResult, **extra):
        """Sends one request per ``(engine_id, payload)`` of ``parts``; returns one
        AsyncResult (of class ``cls``) over all of them (scatter, map)."""
        return self._send_requests(
            msg_type, _core.FLAG_TARGETED,
            [([eid], [_targets_frame([eid]), *payload]) for eid, payload in parts],
            cls, fname=fname, single=single, reduce=reduce, **extra)

    def _submit_tasks(self, spec, payloads, fname, single=False, reduce=None,
                      cls=AsyncResult, **extra):
        """Sends one load-balanced TASK per payload (the controller picks each one's
        engine); returns one AsyncResult (of class ``cls``) over all of them."""
        return self._send_requests(_core.MSG_TASK, 0, [(None, [spec, *p]) for p in payloads],
                                   cls, fname=fname, single=single, reduce=reduce,
                                   tasks=True, **extra)

    def _send_requests(self, msg_type, flags, requests, cls, **ar_args):
        """The one way requests leave: ``requests`` is a list of ``(engines, frames)``
        (engines: a list of engine ids, None for a task). Returns the AsyncResult (of
        class ``cls``, made with ``ar_args``) over all of them, filed in the dispatcher
        and remembered in the history; finished at once when there is nothing to send
        (an empty view)."""
        d = self._dispatcher
        if d.closed:
            raise error.ConnectionClosed("the client is closed")
        d.check_connected()
        now = time.time_ns()
        new_id = self._new_msg_id
        messages = [(new_id(), frames) for _, frames in requests]
        ar = cls(self, [(m, engines) for (m, _), (engines, _) in zip(messages, requests)],
                 submitted_ns=now, **ar_args)
        if not any(engines is None or engines for engines, _ in requests):
            return ar  # no engine to ask: finished, with no results
        self._remember(ar, ar._msg_ids)
        d.submit(ar, msg_type, flags, messages, now)
        return ar

    def _remember(self, ar, msg_ids):
        self._results.add(ar, msg_ids)
        if ar._tasks or len(ar._slots) == len(msg_ids):  # one engine per message
            self._history.extend(msg_ids)
            return
        # A request to several engines is remembered per engine, as the task database has
        # it ("<id>:<engine>" in rc.history, as in rc.hub_history()).
        per_msg = collections.Counter(s.msg_id for s in ar._slots)
        self._history.extend(s.msg_id if per_msg[s.msg_id] == 1 else (s.msg_id, s.engine_id)
                             for s in ar._slots)

    def _abort_tasks(self, msg_ids):
        """Asks the controller to drop these requests (load-balanced tasks or direct
        requests) where they wait, and to interrupt them where they run. One ABORT
        message; the controller passes direct requests to the engines that have them,
        which drop a queued one unrun and interrupt a running one."""
        d = self._dispatcher
        if not msg_ids or d.closed:
            return
        d.conn.send(_core.MSG_ABORT, [b"".join(msg_ids)], msg_id=self._new_msg_id())
        self._abort_unflushed = True  # close() makes sure it left

    def load_balanced_view(self, targets=None, **kwargs):
        """A LoadBalancedView (tasks go to whichever engine the scheduler picks)."""
        try:
            from .lbview import LoadBalancedView
        except ImportError:
            raise NotImplementedError("load-balanced views are not available in this "
                                      "version of cpar; use a DirectView") from None
        return LoadBalancedView(self, targets, **kwargs)

    def executor(self, targets=None):
        """A ``concurrent.futures.Executor`` on a load-balanced view of ``targets``."""
        return self.load_balanced_view(targets).executor

    def spin(self):
        """Kept for ipyparallel code: replies are filed by the client's own thread as they
        arrive, so there is nothing to flush (a no-op)."""

    def become_dask(self, targets="all", port=0, nanny=False, scheduler_args=None,
                    **worker_args):
        """Turns the engines into workers of a dask.distributed scheduler started here;
        returns a ``distributed.Client`` connected to it (see ``cpar.client.dask``)."""
        from .dask import become_dask

        return become_dask(self, targets, port, nanny, scheduler_args, worker_args)

    def stop_dask(self, targets="all"):
        """Stops the engines' dask workers and the scheduler of ``become_dask``."""
        from .dask import stop_dask

        return stop_dask(self, targets)

    become_distributed = become_dask
    stop_distributed = stop_dask

    def send_signal(self, sig=signal.SIGINT, targets=None, block=False):
        """Sends signal ``sig`` (a number, ``signal.Signals`` or name such as ``"SIGTERM"``)
        to the ``targets`` engines. SIGINT interrupts the running task (a
        ``KeyboardInterrupt`` there; the engines live on); another signal goes to each
        engine process (SIGKILL/SIGTERM end it, and the controller reports it dead)."""
        from .signals import signal_frame

        frame = signal_frame(sig)
        d = self._dispatcher
        d.check_connected()
        _, tlist = self._build_targets(targets)
        tlist = list(dict.fromkeys(tlist))  # the controller refuses an engine named twice
        d.conn.send(_core.MSG_INTERRUPT, [_targets_frame(tlist), b"", frame],
                    msg_id=self._new_msg_id(), flags=_core.FLAG_TARGETED)

    def _resolve_jobs(self, jobs):
        """The AsyncResults named by ``jobs`` (AsyncResults, msg ids as hex or bytes, or
        None for every outstanding request), each once, in order; ids no longer
        outstanding are skipped."""
        d = self._dispatcher
        if jobs is None:
            return d.pending_results()
        if isinstance(jobs, (AsyncResult, str, bytes)):
            jobs = [jobs]
        ars = {}  # insertion-ordered set
        for job in jobs:
            if not isinstance(job, AsyncResult):
                job = d.pending_result(bytes.fromhex(job) if isinstance(job, str) else job)
            if job is not None:
                ars[job] = None
        return list(ars)

    def abort(self, jobs=None, targets=None, block=None, force=False, grace=3.0):
        """Aborts ``jobs`` (AsyncResults or msg ids; None: every outstanding request):
        see ``AsyncResult.abort`` (``force=True``: kill and replace engines the interrupt
        does not reach within ``grace`` s). ``targets`` and ``block`` are accepted for
        ipyparallel compatibility. Returns ``{engine_id: what happened}`` of the engines
        killed."""
        out = {}
        for ar in self._resolve_jobs(jobs):
            out.update(ar.abort(force=force, grace=grace))
        return out

    def wait_interactive(self, jobs=None, interval=0.1, timeout=-1, widget=None,
                         return_when=concurrent.futures.ALL_COMPLETED):
        """``wait`` with a progress bar over every task of ``jobs`` (None: everything
        outstanding); see ``AsyncResult.wait_interactive``. True once ``return_when``
        (as in ``wait``) is met, False if ``timeout`` came first."""
        from .progress import wait_interactive

        if return_when not in (concurrent.futures.ALL_COMPLETED,
                               concurrent.futures.FIRST_COMPLETED,
                               concurrent.futures.FIRST_EXCEPTION):
            raise ValueError(f"return_when must be ALL_COMPLETED, FIRST_COMPLETED or "
                             f"FIRST_EXCEPTION, not {return_when!r}")
        group = _Group(self._resolve_jobs(jobs), return_when)
        wait_interactive(group, interval=interval, timeout=timeout, widget=widget)
        return group.done()

    def activate(self, targets="all", suffix=""):
        """A DirectView on ``targets`` made the target of the ``%px`` magics."""
        view = self.direct_view(targets)
        view.block = True
        view.activate(suffix)
        return view

    @property
    def outstanding(self):
        """msg ids (hex) of requests not fully answered yet."""
        return {m.hex() for m in self._dispatcher.pending_ids()}

    def wait(self, jobs=None, timeout=-1, return_when=concurrent.futures.ALL_COMPLETED):
        """Waits for ``jobs`` (AsyncResults, other ``concurrent.futures.Future``s or msg
        ids; None: everything outstanding). True if ``return_when`` was met within
        ``timeout`` seconds (negative: no limit): ``ALL_COMPLETED`` (every job finished),
        ``FIRST_COMPLETED`` (one did) or ``FIRST_EXCEPTION`` (one failed, or all
        finished)."""
        if return_when not in (concurrent.futures.ALL_COMPLETED,
                               concurrent.futures.FIRST_COMPLETED,
                               concurrent.futures.FIRST_EXCEPTION):
            raise ValueError(f"return_when must be ALL_COMPLETED, FIRST_COMPLETED or "
                             f"FIRST_EXCEPTION, not {return_when!r}")
        if isinstance(jobs, concurrent.futures.Future) and not isinstance(jobs, AsyncResult):
            futures = [jobs]
        elif jobs is None or isinstance(jobs, (AsyncResult, str, bytes)):
            futures = self._resolve_jobs(jobs)
        else:
            jobs = list(jobs)
            others = [j for j in jobs if isinstance(j, concurrent.futures.Future)
                      and not isinstance(j, AsyncResult)]
            futures = self._resolve_jobs([j for j in jobs if j not in others]) + others
        if not futures:
            return True
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout

        def failed(f):
            if isinstance(f, AsyncResult):
                return not f.successful()
            return f.cancelled() or f.exception() is not None

        pending = set(futures)
        while pending:
            # a bounded step, so that Ctrl-C is seen (asyncresult._POLL)
            left = _POLL if deadline is None else \
                min(_POLL, max(0.0, deadline - time.monotonic()))
            done, pending = concurrent.futures.wait(
                pending, left, return_when=concurrent.futures.FIRST_COMPLETED)
            if not done:
                if deadline is not None and time.monotonic() >= deadline:
                    return False  # timed out
                continue
            if return_when == concurrent.futures.FIRST_COMPLETED:
                return True
            if return_when == concurrent.futures.FIRST_EXCEPTION and any(map(failed, done)):
                return True
        return True

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
        waiter = d.request(_core.MSG_SHUTDOWN, frames, msg_id, flags=flags)
        if block:
            if not waiter.wait(self.timeout):
                d.forget_request(msg_id)
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
