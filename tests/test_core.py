"""cpar._core: the Controller and Connection types, on real sockets.

A real C controller runs in a thread of the test process; "engines" here are Connections
to its engine endpoint that register and answer requests by hand, so every step of the
protocol is visible. The Client's connection errors (wrong key, nothing listening) are
checked against the same controller.
"""

import concurrent.futures
import gc
import json
import os
import socket
import struct
import threading

import numpy as np
import pytest

from cpar import _core, error

pytestmark = pytest.mark.timeout(60)

KEY = b"0123456789abcdef" * 4


def new_id(counter=iter(range(1, 1 << 62))):
    return next(counter).to_bytes(16, "little")


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    log = tmp_path_factory.mktemp("ctl") / "controller.log"
    # A long heartbeat timeout: the hand-driven engines below do not heartbeat.
    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY, log_path=str(log),
                           hb_period_ms=500, hb_timeout_ms=120000)
    t = threading.Thread(target=ctl.run, name="test-controller")
    t.start()
    yield ctl
    ctl.stop()
    t.join()
    ctl.close()


def recv_one(conn, timeout=10):
    msgs = conn.recv(timeout=timeout, max=1)
    assert msgs, "nothing received"
    return msgs[0]


def recv_type(conn, type_, timeout=10):
    """The next message of type_, skipping others (ENGINE_EVENTs, heartbeat echoes)."""
    while True:
        m = recv_one(conn, timeout)
        if m.type == type_:
            return m


class HandEngine:
    """An engine driven by the test: a Connection to the controller's engine endpoint."""

    def __init__(self, ctl):
        self.conn = _core.Connection(ctl.engine_url, KEY)
        self.conn.send(_core.MSG_REGISTER, [b"pid=%d\nhost=test\n" % os.getpid()],
                       msg_id=new_id())
        reply = recv_type(self.conn, _core.MSG_REGISTER_REPLY)
        assert reply.status == 0
        self.id = reply.engine

    def close(self):
        self.conn.close()


@pytest.fixture
def client_conn(controller):
    conn = _core.Connection(controller.client_url, KEY)
    conn.send(_core.MSG_CONNECT, msg_id=new_id())
    recv_type(conn, _core.MSG_CONNECT_REPLY)
    yield conn
    conn.close()


def targets(*ids):
    return struct.pack(f"<{len(ids)}i", *ids)


def test_constants_match_the_wire_header():
    c = _core
    assert (c.MSG_REGISTER, c.MSG_CONNECT, c.MSG_APPLY, c.MSG_REPLY) == (1, 4, 11, 20)
    assert (c.MSG_ERROR, c.MSG_SHUTDOWN, c.MSG_ENGINE_EVENT) == (22, 31, 40)
    assert (c.FLAG_STDOUT, c.FLAG_STDERR, c.FLAG_HUB, c.FLAG_TARGETED) == (1, 2, 4, 8)
    assert _core.ID_SIZE == 16 and _core.STATUS_ERROR == 1
    assert _core.now_ns() > 1_600_000_000 * 10**9


def test_error_codes_map_to_cpar_error_classes():
    assert _core.error_class(_core.E_SIG) is error.SignatureError
    assert _core.error_class(_core.E_CLOSED) is error.ConnectionClosed
    assert _core.error_class(_core.E_ENGINEDEAD) is error.EngineError
    assert _core.error_class(_core.E_NOENGINE) is error.NoSuchEngine
    assert _core.error_class(_core.E_TIMEOUT) is error.TimeoutError
    assert _core.error_class(_core.E_INVAL) is ValueError
    assert issubclass(error.TimeoutError, TimeoutError)
    assert "signature" in _core.strerror(_core.E_SIG)


def test_controller_binds_runs_and_stops(tmp_path):
    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY,
                           log_path=str(tmp_path / "c.log"))
    assert ctl.client_url.startswith("tcp://127.0.0.1:") and not ctl.client_url.endswith("*")
    assert ctl.engine_url != ctl.client_url
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(ctl.run)
        try:
            with _core.Connection(ctl.client_url, KEY) as conn:
                conn.send(_core.MSG_CONNECT, msg_id=new_id())
                reply = recv_type(conn, _core.MSG_CONNECT_REPLY)
                assert bytes(reply.frames[0]) == b""  # no engines
        finally:
            ctl.stop()
        assert fut.result(timeout=10) is None
    with pytest.raises(RuntimeError):
        ctl.run()  # runs once
    ctl.close()
    ctl.close()


def test_controller_rejects_a_bad_endpoint():
    with pytest.raises(error.CparError):
        _core.Controller("nonsense://x", "tcp://127.0.0.1:*", KEY)


def test_connect_reply_answers_the_request(client_conn):
    msg_id = new_id()
    client_conn.send(_core.MSG_CONNECT, msg_id=msg_id)
    m = recv_type(client_conn, _core.MSG_CONNECT_REPLY)
    assert m.parent == msg_id
    assert isinstance(m.msg_id, bytes) and len(m.msg_id) == 16
    assert isinstance(m.frames, list)


def test_large_buffers_round_trip_zero_copy_and_writable(controller, client_conn):
    eng = HandEngine(controller)
    try:
        n = 100_000_000 // 8
        arr = np.arange(n, dtype=np.float64)
        msg_id = new_id()
        client_conn.send(_core.MSG_APPLY, [targets(eng.id), b"small", arr], msg_id=msg_id,
                         flags=_core.FLAG_TARGETED, t0=_core.now_ns())

        req = recv_type(eng.conn, _core.MSG_APPLY)
        assert req.msg_id == msg_id and req.flags & _core.FLAG_TARGETED
        assert bytes(req.frames[1]) == b"small"
        got = np.frombuffer(req.frames[2], dtype=np.float64)
        assert got.flags.writeable and got.flags.aligned
        assert np.array_equal(got, arr)
        got[0] = -1.0  # the receiver owns the frame

        # Send the received frame back as it is (zero-copy again).
        eng.conn.send(_core.MSG_REPLY, [b"result", req.frames[2]], msg_id=new_id(),
                      parent=req.msg_id, engine=eng.id, t0=1, t1=2)
        rep = recv_type(client_conn, _core.MSG_REPLY)
        assert rep.parent == msg_id and rep.engine == eng.id and (rep.t0, rep.t1) == (1, 2)
        back = np.frombuffer(rep.frames[1], dtype=np.float64)
        assert back.flags.writeable
        assert back[0] == -1.0 and np.array_equal(back[1:], arr[1:])
        back[1] = 7.0
        memoryview(rep.frames[1])[0:1] = b"\x01"
    finally:
        eng.close()


def test_stream_and_error_messages_reach_the_client(controller, client_conn):
    eng = HandEngine(controller)
    try:
        msg_id = new_id()
        client_conn.send(_core.MSG_EXECUTE, [targets(eng.id), "print('x')"], msg_id=msg_id,
                         flags=_core.FLAG_TARGETED)
        req = recv_type(eng.conn, _core.MSG_EXECUTE)
        assert bytes(req.frames[1]) == b"print('x')"
        eng.conn.send(_core.MSG_STREAM, ["x\n"], msg_id=new_id(), parent=msg_id,
                      engine=eng.id, flags=_core.FLAG_STDOUT)
        eng.conn.send(_core.MSG_REPLY, [b""], msg_id=new_id(), parent=msg_id, engine=eng.id,
                      status=_core.STATUS_ERROR)
        s = recv_type(client_conn, _core.MSG_STREAM)
        assert bytes(s.frames[0]) == b"x\n" and s.flags == _core.FLAG_STDOUT
        r = recv_type(client_conn, _core.MSG_REPLY)
        assert r.status == _core.STATUS_ERROR and r.parent == msg_id
    finally:
        eng.close()

    # A request naming an engine that does not exist is refused with one ERROR.
    msg_id = new_id()
    client_conn.send(_core.MSG_APPLY, [targets(9999), b""], msg_id=msg_id,
                     flags=_core.FLAG_TARGETED)
    err = recv_type(client_conn, _core.MSG_ERROR)
    assert err.parent == msg_id and err.status == _core.E_NOENGINE
    assert "9999" in bytes(err.frames[0]).decode()


def test_sends_from_many_threads_all_arrive(client_conn):
    per_thread, nthreads = 300, 4
    ids = [[new_id() for _ in range(per_thread)] for _ in range(nthreads)]

    def sender(mine):
        for m in mine:
            client_conn.send(_core.MSG_CONNECT, msg_id=m)

    threads = [threading.Thread(target=sender, args=(mine,)) for mine in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = {m for mine in ids for m in mine}
    got = set()
    while got != want:
        batch = client_conn.recv(timeout=10)
        assert batch, f"only {len(got)} of {len(want)} replies arrived"
        got |= {m.parent for m in batch if m.type == _core.MSG_CONNECT_REPLY}


def test_recv_times_out_with_an_empty_list(client_conn):
    assert client_conn.recv(timeout=0.05) == []
    assert client_conn.recv(timeout=0) == []


def test_send_checks_its_arguments(client_conn):
    with pytest.raises(ValueError):
        client_conn.send(_core.MSG_CONNECT, msg_id=b"short")
    with pytest.raises(TypeError):
        client_conn.send(_core.MSG_CONNECT)
    with pytest.raises(ValueError):
        client_conn.send(99, msg_id=new_id())
    with pytest.raises(ValueError):
        client_conn.send(_core.MSG_CONNECT, msg_id=new_id(), parent=b"x")
    with pytest.raises(TypeError):
        client_conn.send(_core.MSG_APPLY, [object()], msg_id=new_id())
    with pytest.raises(ValueError):
        client_conn.recv(max=0)


def test_close_is_idempotent_and_wakes_readers(controller):
    conn = _core.Connection(controller.client_url, KEY)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        reader = ex.submit(conn.recv)  # blocks: nothing will arrive
        conn.close()
        with pytest.raises(error.ConnectionClosed):
            reader.result(timeout=10)
    conn.close()
    assert conn.closed
    with pytest.raises(error.ConnectionClosed):
        conn.send(_core.MSG_CONNECT, msg_id=new_id())
    with pytest.raises(error.ConnectionClosed):
        conn.recv(timeout=0)
    with _core.Connection(controller.client_url, KEY) as c2:
        assert not c2.closed
    assert c2.closed


def test_wrong_key_messages_are_counted(controller):
    conn = _core.Connection(controller.client_url, b"not the key")
    try:
        conn.send(_core.MSG_CONNECT, msg_id=new_id())
        # The controller's ERROR answer is signed with its key: we must drop it.
        for _ in range(200):
            assert conn.recv(timeout=0.05) == []
            if conn.bad_signature:
                break
        assert conn.bad_signature >= 1
        assert conn.received == 0
    finally:
        conn.close()


def test_malformed_input_is_counted_not_delivered():
    import zmq
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    conn = _core.Connection(f"tcp://127.0.0.1:{port}", KEY)
    try:
        conn.send(_core.MSG_CONNECT, msg_id=new_id())
        ident = router.recv_multipart()[0]
        router.send_multipart([ident, b"garbage"])
        router.send_multipart([ident, b"\0" * 112, b"payload"])
        for _ in range(200):
            assert conn.recv(timeout=0.05) == []
            if conn.malformed == 2:
                break
        assert conn.malformed == 2
    finally:
        conn.close()
        router.close()
        ctx.term()


def test_a_bad_url_fails_at_once():
    with pytest.raises(error.TransportError):
        _core.Connection("nonsense://nowhere", KEY)
    with pytest.raises(ValueError):
        _core.Connection("tcp://127.0.0.1:1", b"")


def test_objects_are_released(controller):
    gc.collect()
    before = _core._debug_counts()
    conn = _core.Connection(controller.client_url, KEY)
    conn.send(_core.MSG_CONNECT, msg_id=new_id())
    conn.send(_core.MSG_CONNECT, [np.zeros(1 << 20)], msg_id=new_id())  # zero-copy frame
    msgs = []
    while len(msgs) < 2:
        msgs += conn.recv(timeout=10)
    assert _core._debug_counts()["messages"] >= before["messages"] + 2
    del msgs
    conn.close()
    del conn
    gc.collect()
    after = _core._debug_counts()
    assert after["connections"] == before["connections"]
    assert after["messages"] == before["messages"]
    assert after["queued"] == before["queued"]
    assert after["zerocopy"] <= before["zerocopy"]  # our zero-copy frame was released


def write_connection_file(path, url, key):
    path.write_text(json.dumps({"client_url": url, "engine_url": url, "key": key,
                                "signature_scheme": "hmac-sha256"}))
    return str(path)


def test_client_with_the_wrong_key_says_so(controller, tmp_path):
    from cpar.client import Client

    cf = write_connection_file(tmp_path / "c.json", controller.client_url, "f" * 64)
    with pytest.raises(error.WrongKey, match="key"):
        Client(cf, timeout=5)


def test_client_with_nothing_listening_says_so(tmp_path):
    from cpar.client import Client

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    url = f"tcp://127.0.0.1:{port}"
    cf = write_connection_file(tmp_path / "c.json", url, KEY.decode())
    with pytest.raises(error.ControllerUnreachable, match=url):
        Client(cf, timeout=0.3)


def test_client_without_a_connection_file_says_so(tmp_path):
    from cpar.client import Client

    with pytest.raises(FileNotFoundError, match="cluster"):
        Client(str(tmp_path / "missing.json"), timeout=0)


def test_client_connects_and_sees_hand_engines(controller, tmp_path):
    from cpar.client import Client

    cf = write_connection_file(tmp_path / "c.json", controller.client_url, KEY.decode())
    eng = HandEngine(controller)
    with Client(cf, timeout=5) as rc:
        assert eng.id in rc.ids
        ar = rc[eng.id].apply_async(max, 1, 2)
        req = recv_type(eng.conn, _core.MSG_APPLY)
        from cpar.serialize import serialize_object, unpack_apply_message

        f, args, kwargs = unpack_apply_message(req.frames[1:], {})
        eng.conn.send(_core.MSG_REPLY, serialize_object(f(*args, **kwargs)), msg_id=new_id(),
                      parent=req.msg_id, engine=eng.id)
        assert ar.get(timeout=10) == 2
    eng.close()
    assert rc.closed


def test_client_fails_pending_work_when_the_controller_goes(tmp_path):
    from cpar.client import Client

    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY,
                           log_path=str(tmp_path / "c.log"), hb_timeout_ms=120000)
    t = threading.Thread(target=ctl.run)
    t.start()
    try:
        cf = write_connection_file(tmp_path / "c.json", ctl.client_url, KEY.decode())
        eng = HandEngine(ctl)
        rc = Client(cf, timeout=5)
        ar = rc[eng.id].apply_async(max, 1, 2)
        recv_type(eng.conn, _core.MSG_APPLY)  # delivered, never answered
        assert rc._dispatcher.conn.connected
    finally:
        ctl.stop()
        t.join()
        ctl.close()  # the sockets close: the client sees the connection drop
    with pytest.raises(error.ControllerUnreachable, match="lost the connection"):
        ar.get(timeout=30)
    assert rc._dispatcher.conn.disconnects >= 1
    with pytest.raises(error.ControllerUnreachable):
        rc[:].apply_async(max, 1, 2)
    rc.close()
    eng.close()
