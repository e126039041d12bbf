"""Recovery from a dead controller, the controller's side (docs/recovery.md): a real C
controller in its own process (a small script around ``_core.Controller``) with a task
database file is SIGKILLed, and a new one is started with ``recover=True`` on the same
key, cluster id and URLs. Clients and engines are raw ``_core.Connection``s speaking the
protocol (and a real ``cpar-engine``), so every message the recovered controller sends is
visible: queued tasks run again with their ids, engines re-register with the ids of what
they hold, RECLAIM moves work to a new connection, engines that do not come back end
their work at the grace period's end, and a database of another cluster, another key, or
a corrupt one is refused.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from cpar import _core

pytestmark = pytest.mark.timeout(120)

KEY = b"recover-test-key-0123456789abcdef"
MSG_RECLAIM, MSG_RECLAIM_REPLY = 41, 42
EENGINEDEAD = -11
_counter = iter(range(1, 1 << 62))

SCRIPT = r"""
import json, sys
from cpar import _core
kw = json.loads(sys.argv[1])
key = bytes.fromhex(kw.pop("key"))
ctl = _core.Controller(kw.pop("client_url"), kw.pop("engine_url"), key, **kw)
print(json.dumps({"client_url": ctl.client_url, "engine_url": ctl.engine_url}), flush=True)
ctl.run()
"""


def new_id(prefix):
    return prefix + next(_counter).to_bytes(8, "little")


def spec(targets=(), retries=0):
    return struct.pack("<IIIHHIII", 1, retries, 0, 0, 0, len(targets), 0, 0) + \
        struct.pack(f"<{len(targets)}i", *targets)


def targets(*ids):
    return struct.pack(f"<{len(ids)}i", *ids)


class ControllerProcess:
    """A controller in its own process; kill() is a SIGKILL."""

    def __init__(self, tmp_path, client_url, engine_url, **kw):
        kw = dict(kw, key=KEY.hex(), client_url=client_url, engine_url=engine_url,
                  log_path=str(tmp_path / "controller.log"), db="sqlite",
                  db_file=str(tmp_path / "db.sqlite"), cluster_id="rc",
                  hb_period_ms=200, hb_timeout_ms=120000)
        self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(kw)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("controller did not start: " + self.proc.stderr.read())
        urls = json.loads(line)
        self.client_url, self.engine_url = urls["client_url"], urls["engine_url"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def procs():
    """Every controller process and connection a test makes is stopped at teardown."""
    made = []
    yield made
    for p in reversed(made):
        if isinstance(p, ControllerProcess):
            p.kill()
        else:
            p.close()


def recv_type(conn, type_, timeout=15, parent=None):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no message of type {type_}"
        msgs = conn.recv(timeout=left, max=1)
        if msgs and msgs[0].type == type_ and (parent is None or msgs[0].parent == parent):
            return msgs[0]


class Peer:
    """A raw connection: a client (prefix) or an engine."""

    def __init__(self, url, prefix=b"\x77" * 8):
        self.prefix = prefix
        self.conn = _core.Connection(url, KEY)

    def id(self):
        return new_id(self.prefix)

    def send(self, type_, frames=(), **kw):
        mid = kw.pop("msg_id", None) or self.id()
        self.conn.send(type_, list(frames), msg_id=mid, **kw)
        return mid

    def close(self):
        self.conn.close()


def client(url, procs, prefix):
    c = Peer(url, prefix)
    procs.append(c)
    recv_type(c.conn, _core.MSG_CONNECT_REPLY, parent=c.send(_core.MSG_CONNECT))
    return c


def db(c, body):
    mid = c.send(_core.MSG_DB_REQUEST, [json.dumps(body)])
    r = recv_type(c.conn, _core.MSG_DB_REPLY, parent=mid)
    answer = json.loads(bytes(r.frames[0]))
    assert r.status == 0, answer
    return answer


def register(url, procs, target=-1, held=None):
    """An engine: REGISTER (with recover=1 and frame 1 when held is a list); returns
    (peer, REGISTER_REPLY)."""
    e = Peer(url, b"\xee" * 8)
    procs.append(e)
    text = b"pid=%d\nhost=test\n" % os.getpid()
    frames = [text]
    if held is not None:
        frames = [text + b"recover=1\n", b"".join(held)]
    r = recv_type(e.conn, _core.MSG_REGISTER_REPLY,
                  parent=e.send(_core.MSG_REGISTER, frames, target=target))
    e.engine = r.engine
    return e, r


def reply(e, req, payload=b"r"):
    e.send(_core.MSG_REPLY, [payload], parent=req.msg_id, engine=e.engine, t0=1, t1=2)


def reclaim(c, prefixes, ids):
    mid = c.send(MSG_RECLAIM, [b"".join(prefixes), b"".join(ids)])
    r = recv_type(c.conn, MSG_RECLAIM_REPLY, parent=mid)
    data = bytes(r.frames[0])
    return [data[i:i + 16] for i in range(0, len(data), 16)]


def records(c, ids):
    got = db(c, {"op": "query", "query": {"msg_id": {"$in": [i.hex() for i in ids]}},
                 "keys": ["status", "error_code", "error_message", "engine_id"]})
    return {r["msg_id"]: r for r in got["records"]}


def log_has(tmp_path, text, timeout=15):
    """The controller log once it holds text (written by the loop as it goes)."""
    deadline = time.monotonic() + timeout
    while True:
        log = (tmp_path / "controller.log").read_text()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.02)


def ipc_urls(tmp_path):
    return f"ipc://{tmp_path}/c.sock", f"ipc://{tmp_path}/e.sock"


def test_queued_tasks_run_again_with_their_ids_and_reclaim_moves_replies(tmp_path, procs):
    curl, eurl = ipc_urls(tmp_path)
    a = ControllerProcess(tmp_path, curl, eurl)
    procs.append(a)
    prefix = b"\x51" * 8
    c1 = client(curl, procs, prefix)
    t1 = c1.send(_core.MSG_TASK, [spec(retries=1), b"one"])
    t2 = c1.send(_core.MSG_TASK, [spec(), b"two"])
    # Recorded before the database answers this (read-your-writes).
    assert {r["status"] for r in records(c1, [t1, t2]).values()} == {"pending"}
    a.kill()

    b = ControllerProcess(tmp_path, curl, eurl, recover=True, recover_grace_ms=3000)
    procs.append(b)
    log = log_has(tmp_path, "recovered from")
    assert "2 tasks (2 queued, 0 on engines)" in log
    c2 = client(curl, procs, prefix)
    assert reclaim(c2, [prefix], [t1, t2, new_id(prefix)]) == [t1, t2]
    e, r = register(eurl, procs)
    assert r.status == 0 and b"recover_grace_ms=3000\n" in bytes(r.frames[0])
    got = {}
    for _ in range(2):
        req = recv_type(e.conn, _core.MSG_TASK)
        got[req.msg_id] = bytes(req.frames[1])
        reply(e, req, b"done-" + bytes(req.frames[1]))
    assert got == {t1: b"one", t2: b"two"}
    answers = {}
    for _ in range(2):
        m = recv_type(c2.conn, _core.MSG_REPLY)
        answers[m.parent] = bytes(m.frames[0])
    assert answers == {t1: b"done-one", t2: b"done-two"}
    recs = records(c2, [t1, t2])
    assert {r["status"] for r in recs.values()} == {"ok"}


def test_engines_back_with_held_ids_and_the_grace_period(tmp_path, procs):
    curl, eurl = ipc_urls(tmp_path)
    a = ControllerProcess(tmp_path, curl, eurl)
    procs.append(a)
    prefix = b"\x52" * 8
    e0, _ = register(eurl, procs)
    e1, _ = register(eurl, procs)
    assert (e0.engine, e1.engine) == (0, 1)
    c1 = client(curl, procs, prefix)
    held = c1.send(_core.MSG_TASK, [spec(targets=(0,)), b"held"])
    lost = c1.send(_core.MSG_TASK, [spec(targets=(0,)), b"lost"])
    on1 = c1.send(_core.MSG_TASK, [spec(targets=(1,)), b"on1"])
    d_held = c1.send(_core.MSG_APPLY, [targets(0), b"dh"], flags=_core.FLAG_TARGETED)
    d_lost = c1.send(_core.MSG_APPLY, [targets(0), b"dl"], flags=_core.FLAG_TARGETED)
    seen0 = set()
    while len(seen0) < 4:
        m = e0.conn.recv(timeout=15, max=1)[0]
        if m.type in (_core.MSG_TASK, _core.MSG_APPLY):
            seen0.add(m.msg_id)
    assert seen0 == {held, lost, d_held, d_lost}
    recv_type(e1.conn, _core.MSG_TASK)
    recs = records(c1, [held, lost, on1])
    assert [recs[i.hex()]["engine_id"] for i in (held, lost, on1)] == [0, 0, 1]  # dispatch
    a.kill()
    e0.close()
    e1.close()

    # (The grace period must outlast the RECLAIM below, so that engine 1's task, ended at
    # its end, is answered to the reclaiming client.)
    b = ControllerProcess(tmp_path, curl, eurl, recover=True, recover_grace_ms=6000)
    procs.append(b)
    log = log_has(tmp_path, "recovered from")
    assert "3 tasks (0 queued, 3 on engines), 2 direct parts, 2 engines expected back" in log
    # An engine on its way back is not told to shut down while the grace period runs: its
    # HEARTBEAT is dropped, and the REGISTER that follows on that connection is answered.
    w = Peer(eurl, b"\xed" * 8)
    procs.append(w)
    w.send(_core.MSG_HEARTBEAT, engine=0)
    # A plain REGISTER may not take an id expected back; a new engine gets an id above
    # every id recorded.
    _, r = register(eurl, procs, target=1)
    assert r.status != 0 and b"expected back" in bytes(r.frames[0])
    e_new, r = register(eurl, procs)
    assert r.status == 0 and e_new.engine == 2
    # Engine 0 comes back holding `held` and `d_held` (and an id the controller does not
    # know, which is ignored).
    text = b"pid=%d\nhost=test\nrecover=1\n" % os.getpid()
    mid = w.send(_core.MSG_REGISTER, [text, held + d_held + new_id(b"\x01" * 8)], target=0)
    r = w.conn.recv(timeout=15, max=1)[0]
    assert (r.type, r.parent, r.status, r.engine) == (_core.MSG_REGISTER_REPLY, mid, 0, 0)
    w.engine = 0
    # `lost` (a task engine 0 no longer holds) is queued again, without using a retry.
    c2 = client(curl, procs, prefix)
    got = reclaim(c2, [prefix], [held, lost, on1, d_held, d_lost])
    assert set(got) == {held, lost, on1, d_held}
    reply(w, recv_type(w.conn, _core.MSG_TASK), b"again")  # its targets: engine 0 only
    # What engine 0 held is answered on the new connection.
    w.send(_core.MSG_REPLY, [b"h"], parent=held, engine=0, t0=1, t1=2)
    w.send(_core.MSG_REPLY, [b"dh"], parent=d_held, engine=0, t0=1, t1=2)
    answers = {}
    for _ in range(3):
        m = recv_type(c2.conn, _core.MSG_REPLY)
        answers[m.parent] = bytes(m.frames[0])
    assert answers == {held: b"h", d_held: b"dh", lost: b"again"}
    # Engine 1 never comes back: at the grace period's end its task ends (-11).
    err = recv_type(c2.conn, _core.MSG_ERROR, timeout=30, parent=on1)
    assert err.status == EENGINEDEAD
    assert "did not come back" in bytes(err.frames[0]).decode()
    recs = records(c2, [held, lost, on1, d_held, d_lost])
    assert recs[d_lost.hex()]["error_code"] == EENGINEDEAD
    assert recs[d_lost.hex()]["error_message"] == \
        "engine 0 lost this request when the controller died"
    assert recs[on1.hex()]["status"] == "error"
    assert {recs[i.hex()]["status"] for i in (held, lost, d_held)} == {"ok"}
    log = log_has(tmp_path, "recovery grace period over")
    assert "recovery grace period over: 1 engine(s) came back, 1 did not" in log
    # Once the grace period is over, a HEARTBEAT from an unknown engine gets SHUTDOWN again.
    z = Peer(eurl, b"\xec" * 8)
    procs.append(z)
    z.send(_core.MSG_HEARTBEAT, engine=7)
    assert recv_type(z.conn, _core.MSG_SHUTDOWN).status == EENGINEDEAD


def test_a_real_engine_runs_a_recovered_task(tmp_path, procs):
    from cpar import serialize
    from cpar.cluster.launcher import engine_binary

    curl, eurl = ipc_urls(tmp_path)
    a = ControllerProcess(tmp_path, curl, eurl)
    procs.append(a)
    prefix = b"\x53" * 8
    c1 = client(curl, procs, prefix)
    frames = serialize.pack_apply_message(pow, (3, 4), {})
    t = c1.send(_core.MSG_TASK, [spec(), *frames])
    assert records(c1, [t])[t.hex()]["status"] == "pending"
    a.kill()
    b = ControllerProcess(tmp_path, curl, eurl, recover=True, recover_grace_ms=3000)
    procs.append(b)
    c2 = client(curl, procs, prefix)
    assert reclaim(c2, [prefix], [t]) == [t]
    cf = tmp_path / "connection.json"
    cf.write_text(json.dumps({
        "client_url": curl, "engine_url": eurl, "key": KEY.decode(),
        "signature_scheme": "hmac-sha256", "profile": "test", "cluster_id": "rc",
        "controller_pid": b.proc.pid, "hb_period_ms": 200, "hb_timeout_ms": 120000}))
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(serialize.__file__)))
    eng = subprocess.Popen([engine_binary(), "--connection-file", str(cf), "--python",
                            sys.executable, "--log", str(tmp_path / "engine.log")],
                           env=dict(os.environ, PYTHONPATH=pkg), stdin=subprocess.DEVNULL)
    try:
        r = recv_type(c2.conn, _core.MSG_REPLY, timeout=60, parent=t)
        assert r.status == _core.STATUS_OK
        assert serialize.deserialize_object(list(r.frames)) == 81
    finally:
        eng.kill()
        eng.wait(30)


def test_reclaim_is_checked_and_without_a_database_lists_nothing(tmp_path, procs):
    curl, eurl = ipc_urls(tmp_path)
    a = ControllerProcess(tmp_path, curl, eurl)
    procs.append(a)
    c = client(curl, procs, b"\x54" * 8)
    for frames, says in (([b"1234567"], "frame 0"), ([b"12345678", b"x" * 17], "frame 1"),
                         ([], "frame 0"), ([b"12345678", b"", b""], "more than 2 frames")):
        mid = c.send(MSG_RECLAIM, frames)
        err = recv_type(c.conn, _core.MSG_ERROR, parent=mid)
        assert err.status == -3 and says in bytes(err.frames[0]).decode()
    t = c.send(_core.MSG_TASK, [spec(), b"x"])
    # Its own pending task is listed; another prefix moves nothing.
    assert reclaim(c, [b"\x00" * 8], [t]) == [t]
    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY)  # no database
    try:
        import threading

        th = threading.Thread(target=ctl.run)
        th.start()
        n = client(ctl.client_url, procs, b"\x55" * 8)
        n.send(_core.MSG_TASK, [spec(), b"x"])
        assert reclaim(n, [b"\x55" * 8], [new_id(b"\x55" * 8)]) == []
        ctl.stop()
        th.join()
    finally:
        ctl.close()


def test_refused_databases(tmp_path, procs):
    curl, eurl = ipc_urls(tmp_path)
    path = str(tmp_path / "db.sqlite")
    kw = dict(db="sqlite", db_file=path, recover=True, recover_grace_ms=1000)

    def recover(**more):
        return _core.Controller(curl, eurl, KEY, **dict(kw, **more))

    with pytest.raises(ValueError, match="does not exist"):
        recover(cluster_id="rc")
    with pytest.raises(ValueError, match="nothing to recover from"):
        _core.Controller(curl, eurl, KEY, db="memory", recover=True)
    a = ControllerProcess(tmp_path, curl, eurl)
    procs.append(a)
    a.kill()
    with pytest.raises(ValueError, match=r"belongs to cluster 'rc', not 'other'") as ei:
        recover(cluster_id="other")
    assert path in str(ei.value)
    with pytest.raises(ValueError, match="another key"):
        _core.Controller(curl, eurl, b"some other key", cluster_id="rc", **kw)
    # Nothing was bound by the refusals: the right identity recovers on the same URLs.
    ok = recover(cluster_id="rc")
    ok.close()
    # A normal start of another cluster on this file is refused too.
    with pytest.raises(ValueError, match="belongs to cluster 'rc'"):
        _core.Controller(curl, eurl, KEY, db="sqlite", db_file=path, cluster_id="x")
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(b"garbage!" * 64)
    with pytest.raises(ValueError, match="corrupt") as ei:
        recover(cluster_id="rc")
    assert path in str(ei.value)
