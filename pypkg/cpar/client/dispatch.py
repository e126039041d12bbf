"""The client's receiving side: the connection, the pending results, the engine list, and
the daemon thread that files every incoming message (replies, output streams, errors,
engine events, control replies) where it belongs.
"""

import struct
import sys
import threading
import time

from .. import _core, error


_NO_PARENT = bytes(16)


def _targets_frame(targets):
    return struct.pack(f"<{len(targets)}i", *targets)


# The task database's messages (docs/taskdb.md): the constants of _core, or their
# numbers with a _core built before them.
MSG_DB_REQUEST = getattr(_core, "MSG_DB_REQUEST", 38)
MSG_DB_REPLY = getattr(_core, "MSG_DB_REPLY", 39)
# Recovery from a dead controller (docs/recovery.md): a client reclaims its requests.
MSG_RECLAIM = getattr(_core, "MSG_RECLAIM", 41)
MSG_RECLAIM_REPLY = getattr(_core, "MSG_RECLAIM_REPLY", 42)


def _error_from_message(msg):
    """The exception an ERROR message stands for."""
    text = bytes(msg.frames[0]).decode("utf-8", "replace") if msg.frames else ""
    return error_from_code(msg.status, text, msg.engine)


def error_from_code(code, text, engine=-1):
    """The exception of a controller error ``code`` with message ``text`` about engine
    ``engine`` (-1 or None: none): what an ERROR message, or a task database record
    ended by one, stands for."""
    if engine is None:
        engine = -1
    if not text:
        text = _core.strerror(code)
    if code == _core.E_ENGINEDEAD:
        return error.EngineError(text, engine if engine >= 0 else None)
    if code == _core.E_DEPTIMEOUT:  # ipyparallel's TaskTimeout, here a DependencyTimeout too
        return error._DependencyTaskTimeout(text)
    try:
        cls = _core.error_class(code)
        return cls(text)
    except Exception:  # noqa: BLE001 - a class that wants other arguments
        return error.CparError(text)


class _Dispatcher:
    """The client's receiving side: the connection, the table of pending results and the
    engine list, and the daemon thread that fills them. Kept apart from ``Client`` so the
    thread does not keep the client alive."""

    def __init__(self, url, key, curve=None, shm=True, recover_grace=0.0):
        self.url = url
        # Recovery (docs/recovery.md): seconds pending results wait for the controller
        # to come back after the connection dropped (0: they fail at once).
        self.recover_grace = recover_grace
        self.down_since = None     # monotonic time the connection dropped, while waiting
        self.on_reconnected = None  # set by the Client: reclaims pending requests
        self.conn = _core.Connection(url, key, **(curve or {}), shm=shm)
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
            MSG_DB_REPLY: self._on_waiter_reply,
            MSG_RECLAIM_REPLY: self._on_waiter_reply,
        }
        self.thread = threading.Thread(target=self._run, name="cpar-client-dispatch",
                                       daemon=True)
        self.thread.start()

    # -- the table of pending results and control requests (the only writers) ----------

    def submit(self, ar, msg_type, flags, messages, t0):
        """Files ``ar`` as the pending result of each ``(msg_id, frames)`` of ``messages``
        and sends them (of type ``msg_type`` with header ``flags``). When a send fails,
        unfiles them all, fails what ``ar`` still waits for and re-raises."""
        pending = self.pending
        for msg_id, _ in messages:
            pending[msg_id] = ar
        send = self.conn.send
        try:
            for msg_id, frames in messages:
                send(msg_type, frames, msg_id=msg_id, flags=flags, t0=t0)
        except BaseException as exc:
            for msg_id, _ in messages:
                pending.pop(msg_id, None)
            ar._fail_pending(exc if isinstance(exc, Exception) else error.CparError(str(exc)))
            raise

    def expect(self, ar, msg_ids):
        """Files ``ar`` as the pending result of ``msg_ids``, requests that another
        message makes (a task database ``resubmit``: filed before it is sent)."""
        pending = self.pending
        for msg_id in msg_ids:
            pending[msg_id] = ar

    def request(self, msg_type, frames, msg_id, flags=0):
        """Sends a control request (CONNECT, SHUTDOWN, QUERY, DB_REQUEST); returns the ``_Waiter``
        its reply (or error) will be handed to."""
        waiter = _Waiter()
        self.waiters[msg_id] = waiter
        try:
            self.conn.send(msg_type, frames, msg_id=msg_id, flags=flags)
        except BaseException:
            self.waiters.pop(msg_id, None)
            raise
        return waiter

    def forget_request(self, msg_id):
        """Stops waiting for the reply to the control request ``msg_id``."""
        self.waiters.pop(msg_id, None)

    def release(self, msg_id, ar):
        """Unfiles ``msg_id`` if it is ``ar``'s (it will get no more messages)."""
        if self.pending.get(msg_id) is ar:
            self.pending.pop(msg_id, None)

    def pending_result(self, msg_id):
        """The AsyncResult waiting for ``msg_id`` (bytes), or None."""
        return self.pending.get(msg_id)

    def pending_ids(self):
        """The msg ids (bytes) not fully answered yet."""
        return list(self.pending)

    def pending_results(self):
        """The AsyncResults waiting for an answer, each once, oldest first."""
        return list(dict.fromkeys(list(self.pending.values())))

    # -- the receiving thread -----------------------------------------------------------

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
            self._check_grace()
        self._fail_everything(error.ConnectionClosed(
            f"the client was closed before this result arrived (its connection to "
            f"{self.url} is closed)"))

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
            elif msg.status == 0 and msg.engine < 0:  # made by our I/O thread: it is back
                self._on_reconnected()
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
        if self.recover_grace > 0:
            # The controller may come back (it restarted, or `cpar cluster recover`):
            # pending results wait for it, up to the grace period (docs/recovery.md).
            if self.down_since is None:
                self.down_since = time.monotonic()
                if self.pending:
                    print(f"cpar client: lost the connection to the controller at "
                          f"{self.url}; {len(self.pending)} pending request(s) wait up to "
                          f"{self.recover_grace:g} s for it to come back "
                          f"(cpar cluster recover)", file=sys.stderr)
            return
        # Replies to requests sent before cannot reach us any more (the controller
        # routes by connection): fail them rather than leave them waiting forever.
        self._fail_everything(error.ControllerUnreachable(
            f"lost the connection to the controller at {self.url}"), closing=False)

    def _on_reconnected(self):
        """The link is back: the client reclaims its pending requests (on a thread of its
        own: this one must go on receiving the answers)."""
        callback = self.on_reconnected
        if callback is not None and not self.closed:
            threading.Thread(target=callback, name="cpar-client-reclaim", daemon=True).start()

    def recovered(self):
        """Reclaiming ended: pending results no longer wait for the grace period."""
        self.down_since = None

    def _check_grace(self):
        since = self.down_since
        if since is None or time.monotonic() - since <= self.recover_grace:
            return
        self.down_since = None
        self._fail_everything(error.ControllerUnreachable(
            f"lost the connection to the controller at {self.url}, and it did not come "
            f"back within {self.recover_grace:g} s (the recovery grace period)"),
            closing=False)

    def check_connected(self):
        """Raises ConnectionClosed when the client is closed, ControllerUnreachable when
        the connection dropped and is not back."""
        if self.closed:
            raise error.ConnectionClosed("the client is closed (rc.close() was called); "
                                         "make a new Client")
        conn = self.conn
        if conn.disconnects and not conn.connected:
            waiting = ""
            if self.down_since is not None:
                left = self.recover_grace - (time.monotonic() - self.down_since)
                waiting = (f"; pending results wait up to {max(0.0, left):.0f} s more for "
                           f"it to come back (cpar cluster recover)")
            raise error.ControllerUnreachable(
                f"the connection to the controller at {self.url} is down{waiting}")

    def _fail_everything(self, exc, closing=True):
        if closing:
            self.closed = True
            with self.lock:  # a closed client knows no engines any more
                self.ids = set()
                self.engine_info = {}
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
        if timeout is not None:
            return self._event.wait(timeout)
        while not self._event.wait(0.2):  # bounded steps: Ctrl-C is seen
            pass
        return True

    def result(self):
        if self._exc is not None:
            raise self._exc
        return self._msg
