"""Hostile input to the controller: it drops what is malformed and keeps serving."""

import hashlib
import hmac
import os
import struct
import time

import pytest
import zmq

import cpar
from cpar import paths

HEADER = 112
SIGNED = 80


def header(type_, nframes=0, paylen=0, version=1, magic=0x52415043, flags=0, target=-1):
    return struct.pack(
        "<IBBHIiiI16s16sQQQ32s",
        magic, version, type_, flags, nframes, target, -1, 0,
        os.urandom(16), b"\0" * 16, 0, 0, paylen, b"\0" * 32,
    )


def sign(key, hdr, frames):
    mac = hmac.new(key, hdr[:SIGNED], hashlib.sha256)
    for f in frames:
        mac.update(f)
    return hdr[:SIGNED] + mac.digest()


@pytest.fixture
def attacker(cluster):
    info = paths.read_json(cluster.connection_file)
    ctx = zmq.Context()
    socks = []

    def connect(which="client_url"):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(info[which])
        socks.append(s)
        return s

    yield info["key"].encode(), connect
    for s in socks:
        s.close()
    ctx.term()


def garbage_messages(key):
    rnd = os.urandom
    good = sign(key, header(4), [])  # a valid CONNECT
    payload = [b"\x01\x00\x00\x00", b"print(1)"]
    execute = sign(key, header(10, nframes=2, paylen=12, flags=8), payload)
    return [
        [rnd(1)],
        [rnd(111)],
        [rnd(112)],
        [rnd(113)],
        [rnd(4096)],
        [b""],
        [good[:50]],  # truncated header
        [good + b"x"],  # header too long
        [header(4)],  # unsigned (all-zero signature)
        [sign(b"not the key", header(4), [])],  # signed with another key
        [sign(key, header(4, version=9), [])],  # unknown version
        [sign(key, header(200), [])],  # unknown type
        [sign(key, header(4, magic=0xDEADBEEF), [])],  # wrong magic
        [sign(key, header(10, nframes=2, paylen=2**62, flags=8), payload)] + payload,  # paylen lies
        [sign(key, header(10, nframes=2**31, paylen=12, flags=8), payload)] + payload,  # nframes lies
        [execute] + payload[:1],  # a frame missing
        [execute] + payload + [b"extra"],  # a frame too many
        [execute[:SIGNED] + bytes(32)] + payload,  # tag zeroed
        [sign(key, header(10, nframes=2, paylen=7, flags=8), [b"\x07\x00\x00", b"x = 1"])]
        + [b"\x07\x00\x00", b"x = 1"],  # target list not a multiple of 4
        [sign(key, header(10, nframes=1, paylen=4, flags=8), [b"\x63\x00\x00\x00"])]
        + [b"\x63\x00\x00\x00"],  # unknown engine 99, no code frame
    ] + [[rnd(n) for n in (112, 10, 1000)] for _ in range(20)]


def test_controller_survives_garbage_from_clients(cluster, rc, attacker):
    key, connect = attacker
    dview = rc[:]
    dview.block = True
    dview["canary"] = 42
    pids = dview.apply_sync(os.getpid)
    sock = connect("client_url")
    for msg in garbage_messages(key):
        sock.send_multipart(msg)
    # The controller still serves clients, old and new, and the engines are the same
    # processes with their namespaces intact.
    assert dview.apply_sync(os.getpid) == pids
    assert dview.pull("canary") == [42] * len(pids)
    with cpar.Client(cluster.connection_file) as fresh:
        assert fresh.ids == rc.ids
        assert fresh[:].apply_sync(os.getpid) == pids


def test_controller_survives_garbage_on_engine_port(cluster, rc, attacker):
    key, connect = attacker
    sock = connect("engine_url")
    for msg in garbage_messages(key):
        sock.send_multipart(msg)
    # A forged REPLY for a request nobody sent is dropped, not routed anywhere.
    fake = sign(key, header(20, nframes=1, paylen=3), [b"abc"])
    sock.send_multipart([fake, b"abc"])
    dview = rc[:]
    dview.block = True
    assert dview.apply_sync(lambda: 1 + 1) == [2] * len(rc.ids)


def test_unknown_target_is_a_clear_error(rc):
    # The client knows its engines: rc[99] fails before anything is sent.
    with pytest.raises(cpar.error.NoSuchEngine, match="No such engine: 99"):
        rc[99].apply_sync(os.getpid)


def _timed_header(type_, nframes, paylen, flags):
    """A header like header() but with t0 = now (the controller may check freshness)."""
    h = bytearray(header(type_, nframes=nframes, paylen=paylen, flags=flags))
    struct.pack_into("<Q", h, 56, time.time_ns())
    return bytes(h)


def test_controller_refuses_a_request_for_an_unknown_engine(cluster, rc, attacker):
    """A validly signed EXECUTE naming engine 99 reaches the controller itself (no client
    check in the way): it answers with a signed ERROR ENOENGINE naming the engine, and
    keeps serving."""
    key, connect = attacker
    sock = connect("client_url")
    frames = [struct.pack("<i", 99), b"x = 1"]
    hdr = _timed_header(10, nframes=2, paylen=sum(map(len, frames)), flags=8)
    sent = sign(key, hdr, frames)
    sock.send_multipart([sent] + frames)
    assert sock.poll(30000), "the controller did not answer"
    reply = sock.recv_multipart()
    rh = reply[0]
    assert len(rh) == HEADER
    (magic, _version, rtype, _flags, nframes, _target, engine, status, _msg_id,
     parent) = struct.unpack_from("<IBBHIiiI16s16s", rh)
    assert rh == sign(key, rh, reply[1:]), "the reply is not signed with the cluster key"
    assert rtype == 22 and parent == sent[24:40]  # ERROR answering our msg_id
    assert struct.unpack("<i", struct.pack("<I", status))[0] == -10  # CPAR_ENOENGINE
    assert b"no engine 99" in reply[1], reply[1]
    dview = rc[:]
    assert dview.apply_sync(lambda: 7) == [7] * len(rc.ids)
