"""What the controller does with input it cannot trust: nothing signed goes back to a message
that failed its checks, and a signed message is accepted once, inside a time window (a
replayed copy or a stale one is dropped). Raw DEALER sockets sign messages with the
cluster's key against the session's real controller and engines."""

import hashlib
import hmac
import os
import struct
import time

import pytest
import zmq

from cpar import _core, paths

HDR = struct.Struct("<IBBHIiii16s16sQQQ32s")
SIGNED = 80
MAGIC = 0x52415043
WAIT_MS = 30000


def header(type_, frames=(), flags=0, msg_id=None, parent=b"\0" * 16, t0=None):
    paylen = sum(len(f) for f in frames)
    t0 = time.time_ns() if t0 is None else t0
    return HDR.pack(MAGIC, 1, type_, flags, len(frames), -1, -1, 0, msg_id or os.urandom(16),
                    parent, t0, 0, paylen, b"\0" * 32)


def signed(key, type_, frames=(), **kw):
    """The multipart message: a header signed with key, then the frames."""
    h = header(type_, frames, **kw)
    mac = hmac.new(key, h[:SIGNED], hashlib.sha256)
    for f in frames:
        mac.update(f)
    return [h[:SIGNED] + mac.digest(), *frames]


def recv(sock):
    """The next message on sock as (decoded header fields, raw header, frames)."""
    assert sock.poll(WAIT_MS), "nothing arrived"
    parts = sock.recv_multipart()
    return HDR.unpack(parts[0]), parts[0], parts[1:]


def tag_ok(key, raw, frames):
    mac = hmac.new(key, raw[:SIGNED], hashlib.sha256)
    for f in frames:
        mac.update(f)
    return hmac.compare_digest(mac.digest(), raw[SIGNED:])


@pytest.fixture
def raw(cluster):
    info = paths.read_json(cluster.connection_file)
    ctx = zmq.Context()
    socks = []

    def connect():
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(info["client_url"])
        socks.append(s)
        return s

    yield info["key"].encode(), connect
    for s in socks:
        s.close()
    ctx.term()


def execute(key, engine, code, **kw):
    return signed(key, _core.MSG_EXECUTE, [struct.pack("<i", engine), code.encode()],
                  flags=_core.FLAG_TARGETED, **kw)


def run(sock, key, engine, code):
    """Executes code on engine through sock and returns the REPLY's header fields."""
    msg = execute(key, engine, code)
    sock.send_multipart(msg)
    h, _, _ = recv(sock)
    assert h[2] == _core.MSG_REPLY and h[9] == msg[0][24:40], h
    return h


def test_bad_signature_gets_nothing_signed(cluster, raw):
    key, connect = raw
    sock = connect()
    chosen = os.urandom(16)
    forged = header(_core.MSG_CONNECT, msg_id=chosen)  # the right magic, an all-zero tag
    sock.send_multipart([forged])
    # One notice, unsigned and about no request in particular: nothing a client would
    # accept as coming from the controller, nothing naming the sender's msg id.
    h, hraw, frames = recv(sock)
    assert h[2] == _core.MSG_ERROR and h[7] == -4  # CPAR_ESIG
    assert frames == [] and hraw[SIGNED:] == b"\0" * 32
    assert h[9] == b"\0" * 16 and chosen not in hraw
    assert not tag_ok(key, hraw, frames)
    # More garbage from the same connection gets no answer at all: the next thing it hears
    # is the reply to a valid CONNECT.
    other = hmac.new(b"another key", forged[:SIGNED], hashlib.sha256).digest()
    sock.send_multipart([forged[:SIGNED] + other])
    sock.send_multipart([header(_core.MSG_CONNECT, msg_id=chosen)[:SIGNED] + b"\1" * 32])
    sock.send_multipart(signed(key, 200))  # an unknown type, signed
    hello = signed(key, _core.MSG_CONNECT)
    sock.send_multipart(hello)
    h, hraw, frames = recv(sock)
    assert h[2] == _core.MSG_CONNECT_REPLY and h[9] == hello[0][24:40]
    assert tag_ok(key, hraw, frames)


def test_replayed_message_runs_once(cluster, rc, raw):
    key, connect = raw
    target = rc.ids[0]
    sock = connect()
    run(sock, key, target, "replay_count = 0")
    once = execute(key, target, "replay_count += 1")
    sock.send_multipart(once)
    h, _, _ = recv(sock)
    assert h[9] == once[0][24:40] and h[7] == 0
    # The same bytes again, from the same connection and from a new one.
    sock.send_multipart(once)
    connect().send_multipart(once)
    # The engine runs requests in order: once this later one is answered, a replay that got
    # through would have run before it.
    check = execute(key, target, "assert replay_count == 1, replay_count")
    sock.send_multipart(check)
    h, _, frames = recv(sock)
    assert h[9] == check[0][24:40], "a replayed request was answered"
    assert h[7] == 0, frames
    assert rc[target].pull("replay_count", block=True) == 1


def test_stale_or_future_message_is_dropped(cluster, rc, raw):
    key, connect = raw
    target = rc.ids[0]
    sock = connect()
    run(sock, key, target, "stale_ran = False")
    ten_minutes = 600 * 10**9
    for t0 in (time.time_ns() - ten_minutes, time.time_ns() + ten_minutes, 1):
        sock.send_multipart(execute(key, target, "stale_ran = True", t0=t0))
    check = execute(key, target, "assert not stale_ran")
    sock.send_multipart(check)
    h, _, frames = recv(sock)
    assert h[9] == check[0][24:40], "a stale request was answered"
    assert h[7] == 0, frames
    assert rc[target].pull("stale_ran", block=True) is False
    log = open(cluster._log("controller")).read()
    assert "timestamp outside the accepted window" in log


def test_window_is_configurable(tmp_path, monkeypatch):
    """A 2 s window refuses a request sent 5 s ago that the default window accepts."""
    from cpar.controller import security_limits

    monkeypatch.setenv("CPAR_REPLAY_WINDOW", "2")
    monkeypatch.setenv("CPAR_REPLAY_IDS", "1000")
    monkeypatch.setenv("CPAR_MAX_MESSAGE", "1048576")
    limits = security_limits()
    assert limits == {"replay_window_ms": 2000, "replay_ids": 1000, "max_message": 1048576}
    key = b"k" * 32
    log = tmp_path / "ctl.log"
    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", key, log_path=str(log),
                           **limits)
    import threading

    th = threading.Thread(target=ctl.run)
    th.start()
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(ctl.client_url)
        s.send_multipart(signed(key, _core.MSG_CONNECT, t0=time.time_ns() - 5 * 10**9))
        hello = signed(key, _core.MSG_CONNECT)
        s.send_multipart(hello)
        h, _, _ = recv(s)
        assert h[2] == _core.MSG_CONNECT_REPLY and h[9] == hello[0][24:40]
        s.close()
    finally:
        ctl.stop()
        th.join(30)
        ctx.term()
    text = log.read_text()
    assert "replay window 2000 ms, 1024 tags; largest frame 1048576" in text
    assert "timestamp outside the accepted window" in text
