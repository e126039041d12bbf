"""The controller's task database on the wire (docs/taskdb.md): a real C controller with
``db="memory"`` (or a file) runs in a thread; clients and engines are raw
``cpar._core.Connection``s that send DB_REQUESTs and answer requests by hand, so every
record the controller writes and every DB_REPLY it sends is visible as it is.
"""

import json
import os
import struct
import threading
import time

import pytest

from cpar import _core

pytestmark = pytest.mark.timeout(60)

KEY = b"0123456789abcdef" * 4
_counter = iter(range(1, 1 << 62))


def new_id(prefix=b"\x11" * 8):
    return prefix + next(_counter).to_bytes(8, "little")


def hexid(b):
    return b.hex()


def start_controller(tmp_path, **kw):
    kw.setdefault("db", "memory")
    ctl = _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY,
                           log_path=str(tmp_path / "controller.log"), hb_period_ms=500,
                           hb_timeout_ms=120000, **kw)
    t = threading.Thread(target=ctl.run, name="test-controller")
    t.start()
    return ctl, t


@pytest.fixture
def controller(tmp_path):
    ctl, t = start_controller(tmp_path)
    yield ctl
    ctl.stop()
    t.join()
    ctl.close()


def recv_type(conn, type_, timeout=10, parent=None):
    """The next message of type_ (and parent), skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no message of type {type_}"
        msgs = conn.recv(timeout=left, max=1)
        if msgs and msgs[0].type == type_ and (parent is None or msgs[0].parent == parent):
            return msgs[0]


class HandEngine:
    def __init__(self, ctl):
        self.conn = _core.Connection(ctl.engine_url, KEY)
        self.conn.send(_core.MSG_REGISTER, [b"pid=%d\nhost=test\n" % os.getpid()],
                       msg_id=new_id())
        self.id = recv_type(self.conn, _core.MSG_REGISTER_REPLY).engine

    def reply(self, req, frames, status=0, t0=1_000_000_123, t1=2_000_000_456):
        self.conn.send(_core.MSG_REPLY, frames, msg_id=new_id(), parent=req.msg_id,
                       engine=self.id, status=status, t0=t0, t1=t1)

    def stream(self, req, text, flags=_core.FLAG_STDOUT):
        self.conn.send(_core.MSG_STREAM, [text], msg_id=new_id(), parent=req.msg_id,
                       engine=self.id, flags=flags)

    def close(self):
        self.conn.close()


class Client:
    def __init__(self, ctl, prefix):
        self.prefix = prefix
        self.conn = _core.Connection(ctl.client_url, KEY)
        self.conn.send(_core.MSG_CONNECT, msg_id=self.id())
        recv_type(self.conn, _core.MSG_CONNECT_REPLY)

    def id(self):
        return new_id(self.prefix)

    def db(self, body, timeout=10):
        """Sends a DB_REQUEST; returns (status, JSON, frames) of its DB_REPLY."""
        mid = self.id()
        self.conn.send(_core.MSG_DB_REQUEST,
                       [body if isinstance(body, bytes) else json.dumps(body)], msg_id=mid)
        r = recv_type(self.conn, _core.MSG_DB_REPLY, timeout, parent=mid)
        return r.status, json.loads(bytes(r.frames[0])), r.frames

    def ok(self, body):
        status, answer, frames = self.db(body)
        assert status == 0, answer
        return answer, frames

    def fails(self, body, ename):
        status, answer, _ = self.db(body)
        assert status != 0 and answer["ename"] == ename, answer
        return answer["evalue"]

    def close(self):
        self.conn.close()


def targets(*ids):
    return struct.pack(f"<{len(ids)}i", *ids)


def spec(targets=(), retries=0, timeout_ms=0):
    return struct.pack("<IIIHHIII", 1, retries, timeout_ms, 0, 0, len(targets), 0, 0) + \
        struct.pack(f"<{len(targets)}i", *targets)


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


@pytest.fixture
def peers(controller):
    eng = HandEngine(controller)
    cl = Client(controller, b"\xaa" * 8)
    yield controller, eng, cl
    cl.close()
    eng.close()


def test_constants():
    assert (_core.MSG_DB_REQUEST, _core.MSG_DB_REPLY) == (38, 39)


def test_apply_is_recorded_with_reply_output_and_frames(peers):
    ctl, eng, cl = peers
    mid = cl.id()
    cl.conn.send(_core.MSG_APPLY, [targets(eng.id), b"call", b"buf"], msg_id=mid,
                 flags=_core.FLAG_TARGETED)
    req = recv_type(eng.conn, _core.MSG_APPLY)
    pending, _ = cl.ok({"op": "get", "msg_ids": [hexid(mid)]})
    (rec,) = pending["records"]
    assert rec["status"] == "pending" and "reply" not in rec and rec["outputs"] == []
    assert rec["queue"] == "mux" and rec["msg_type"] == "apply_request"
    assert rec["targets"] == [eng.id] and rec["client_uuid"] == "aa" * 8
    assert rec["request_bytes"] == 7 and rec["request_kept"] is True
    eng.stream(req, "out\n")
    eng.stream(req, "err\n", _core.FLAG_STDERR)
    eng.reply(req, [b"result", b"more"])
    recv_type(cl.conn, _core.MSG_REPLY)
    # Read-your-writes: the REPLY came first, so the record has ended.
    got, frames = cl.ok({"op": "get", "msg_ids": [hexid(mid)]})
    (rec,) = got["records"]
    assert rec["status"] == "ok" and rec["engine_id"] == eng.id
    assert (rec["started"], rec["completed"]) == (1_000_000, 2_000_000)
    assert rec["received"] >= rec["submitted"] > 0
    assert rec["stdout"] == "out\n" and rec["stderr"] == "err\n"
    assert rec["reply"]["status"] == 0 and rec["reply_kept"] is True
    assert [bytes(frames[i]) for i in rec["reply"]["frames"]] == [b"result", b"more"]
    outs = [(o["flags"], bytes(frames[o["frame"]])) for o in rec["outputs"]]
    assert outs == [(_core.FLAG_STDOUT, b"out\n"), (_core.FLAG_STDERR, b"err\n")]
    assert rec["reply_bytes"] == 10


def test_broadcast_parts_and_execute(controller):
    e1, e2 = HandEngine(controller), HandEngine(controller)
    cl = Client(controller, b"\xbb" * 8)
    try:
        mid = cl.id()
        cl.conn.send(_core.MSG_EXECUTE, [targets(e1.id, e2.id), "a = 1"], msg_id=mid,
                     flags=_core.FLAG_TARGETED | _core.FLAG_COALESCE)
        for e in (e1, e2):
            e.reply(recv_type(e.conn, _core.MSG_EXECUTE), [b"{}"])
        recv_type(cl.conn, _core.MSG_REPLY)
        got, _ = cl.ok({"op": "get", "msg_ids": [hexid(mid)]})
        ids = [r["msg_id"] for r in got["records"]]
        assert ids == [f"{hexid(mid)}:{e1.id}", f"{hexid(mid)}:{e2.id}"]
        assert all(r["request_id"] == hexid(mid) and r["status"] == "ok"
                   and r["execute_input"] == "a = 1" and r["msg_type"] == "execute_request"
                   for r in got["records"])
        assert [r["engine_id"] for r in got["records"]] == [e1.id, e2.id]
        part, _ = cl.ok({"op": "get", "msg_ids": [ids[1]]})
        assert [r["msg_id"] for r in part["records"]] == [ids[1]]
        q, _ = cl.ok({"op": "query", "query": {"request_id": hexid(mid)}, "keys": ["engine_id"]})
        assert q["records"] == [{"msg_id": ids[0], "engine_id": e1.id},
                                {"msg_id": ids[1], "engine_id": e2.id}]
    finally:
        cl.close()
        e1.close()
        e2.close()


def test_task_query_history_label(peers):
    ctl, eng, cl = peers
    tids = [cl.id() for _ in range(3)]
    for k, tid in enumerate(tids):
        cl.conn.send(_core.MSG_TASK, [spec(), b"fn%d" % k], msg_id=tid)
    cl.ok({"op": "label", "msg_ids": [hexid(t) for t in tids[:2]], "label": "mine"})
    for k in range(3):
        req = recv_type(eng.conn, _core.MSG_TASK)
        eng.reply(req, [b"r"], status=0 if k != 1 else 1)
        recv_type(cl.conn, _core.MSG_REPLY)
    hist, _ = cl.ok({"op": "history"})
    assert hist["msg_ids"][-3:] == [hexid(t) for t in tids]
    q, _ = cl.ok({"op": "query", "query": {"label": "mine"}, "keys": ["status", "queue"]})
    assert q["records"] == [{"msg_id": hexid(tids[0]), "status": "ok", "queue": "task"},
                            {"msg_id": hexid(tids[1]), "status": "error", "queue": "task"}]
    # the operators
    def ids(query):
        return [r["msg_id"] for r in cl.ok({"op": "query", "query": query,
                                             "keys": []})[0]["records"]]
    all3 = [hexid(t) for t in tids]
    assert ids({"msg_id": {"$in": all3}}) == all3
    assert ids({"msg_id": {"$in": all3}, "label": {"$ne": "mine"}}) == all3[2:]  # null label
    assert ids({"msg_id": {"$in": all3}, "label": {"$nin": ["mine"]}}) == all3[2:]
    assert ids({"msg_id": {"$in": all3}, "label": {"$nin": ["mine", None]}}) == []
    assert ids({"msg_id": {"$in": all3}, "label": {"$in": [None]}}) == all3[2:]
    assert ids({"msg_id": {"$in": all3}, "label": {"$exists": False}}) == all3[2:]
    assert ids({"msg_id": {"$in": all3}, "label": {"$exists": True}}) == all3[:2]
    assert ids({"msg_id": {"$in": all3}, "label": None}) == all3[2:]
    seqs = [r["seq"] for r in cl.ok({"op": "query", "query": {"msg_id": {"$in": all3}},
                                     "keys": ["seq"]})[0]["records"]]
    assert ids({"seq": {"$gte": seqs[1], "$lt": seqs[2]}}) == all3[1:2]
    assert ids({"seq": {"$gt": seqs[1]}, "msg_id": {"$in": all3}}) == all3[2:]
    assert ids({"seq": {"$lte": seqs[0]}, "msg_id": {"$in": all3}}) == all3[:1]
    assert ids({"msg_id": {"$eq": all3[0]}}) == all3[:1]
    assert ids({"msg_id": {"$in": all3}, "request_kept": True}) == all3
    assert ids({"msg_id": {"$in": all3}, "completed": {"$ne": None}}) == all3
    # bad queries: a clear ValueError, nothing crashes
    assert "unknown key" in cl.fails({"op": "query", "query": {"bogus": 1}}, "ValueError")
    assert "operator" in cl.fails({"op": "query", "query": {"seq": {"$regex": "x"}}},
                                  "ValueError")
    assert "list" in cl.fails({"op": "query", "query": {"seq": {"$in": 3}}}, "ValueError")
    cl.fails({"op": "query", "query": {"seq": 1}, "keys": ["nope"]}, "ValueError")
    cl.fails({"op": "query", "query": "seq > 0; DROP TABLE records"}, "ValueError")
    cl.fails({"op": "query", "query": {"seq); DROP TABLE records; --": 1}}, "ValueError")
    cl.fails(b"not json", "ValueError")
    cl.fails(b"[1, 2]", "ValueError")
    cl.fails({"op": "frobnicate"}, "ValueError")
    cl.fails({"op": "get", "msg_ids": "x"}, "ValueError")
    assert "f" * 32 in cl.fails({"op": "get", "msg_ids": ["f" * 32]}, "KeyError")
    cl.fails({"op": "label", "msg_ids": ["f" * 32], "label": "x"}, "KeyError")
    assert len(cl.ok({"op": "history"})[0]["msg_ids"]) >= 3  # still all there


def test_purge_rules(peers):
    ctl, eng, cl = peers
    done, pending = cl.id(), cl.id()
    cl.conn.send(_core.MSG_TASK, [spec(), b"f"], msg_id=done)
    eng.reply(recv_type(eng.conn, _core.MSG_TASK), [b"r"])
    recv_type(cl.conn, _core.MSG_REPLY)
    cl.conn.send(_core.MSG_TASK, [spec(), b"f"], msg_id=pending)
    held = recv_type(eng.conn, _core.MSG_TASK)
    msg = cl.fails({"op": "purge", "msg_ids": [hexid(done), hexid(pending)]}, "IndexError")
    assert hexid(pending) in msg
    assert len(cl.ok({"op": "get", "msg_ids": [hexid(done)]})[0]["records"]) == 1  # untouched
    # another client's filter: nothing of ours
    assert cl.ok({"op": "purge", "msg_ids": "all", "client": "cc" * 8})[0] == {"purged": 0}
    assert cl.ok({"op": "purge", "msg_ids": [], "engines": [eng.id]})[0] == {"purged": 1}
    cl.fails({"op": "get", "msg_ids": [hexid(done)]}, "KeyError")
    eng.reply(held, [b"r"])
    recv_type(cl.conn, _core.MSG_REPLY)
    assert cl.ok({"op": "purge", "msg_ids": "all", "client": "aa" * 8})[0] == {"purged": 1}
    assert cl.ok({"op": "history"})[0] == {"msg_ids": []}


def test_resubmit_task_and_direct_apply(peers):
    ctl, eng, cl = peers
    tid, aid, eid = cl.id(), cl.id(), cl.id()
    cl.conn.send(_core.MSG_TASK, [spec(targets=[eng.id], retries=2), b"fn", b"buf"],
                 msg_id=tid)
    eng.reply(recv_type(eng.conn, _core.MSG_TASK), [b"r1"])
    recv_type(cl.conn, _core.MSG_REPLY)
    cl.conn.send(_core.MSG_APPLY, [targets(eng.id), b"call"], msg_id=aid,
                 flags=_core.FLAG_TARGETED)
    eng.reply(recv_type(eng.conn, _core.MSG_APPLY), [b"r2"])
    recv_type(cl.conn, _core.MSG_REPLY)
    cl.conn.send(_core.MSG_EXECUTE, [targets(eng.id), "x"], msg_id=eid,
                 flags=_core.FLAG_TARGETED)
    eng.reply(recv_type(eng.conn, _core.MSG_EXECUTE), [b"{}"])
    recv_type(cl.conn, _core.MSG_REPLY)
    cl.ok({"op": "label", "msg_ids": [hexid(tid)], "label": "L"})

    # Errors first: nothing is resubmitted.
    other = Client(ctl, b"\xdd" * 8)
    try:
        n1, n2 = other.id(), other.id()
        assert "EXECUTE" in other.fails({"op": "resubmit", "msg_ids": [hexid(eid)],
                                         "new_ids": [hexid(n1)]}, "ValueError")
        other.fails({"op": "resubmit", "msg_ids": ["e" * 32], "new_ids": [hexid(n1)]},
                    "KeyError")
        other.fails({"op": "resubmit", "msg_ids": [hexid(tid)], "new_ids": []}, "ValueError")
        other.fails({"op": "resubmit", "msg_ids": [hexid(tid)], "new_ids": [hexid(aid)]},
                    "ValueError")  # in use
        other.fails({"op": "resubmit", "msg_ids": [hexid(tid), hexid(aid)],
                     "new_ids": [hexid(n1), hexid(n1)]}, "ValueError")
        assert len(other.ok({"op": "history"})[0]["msg_ids"]) == 3

        # The other client resubmits both; the DB_REPLY comes before the new tasks' REPLYs.
        mid = other.id()
        other.conn.send(_core.MSG_DB_REQUEST, [json.dumps(
            {"op": "resubmit", "msg_ids": [hexid(tid), hexid(aid)],
             "new_ids": [hexid(n1), hexid(n2)]})], msg_id=mid)
        first = recv_type(other.conn, _core.MSG_DB_REPLY)
        assert first.parent == mid and first.status == 0
        assert json.loads(bytes(first.frames[0])) == {
            "msg_ids": {hexid(tid): hexid(n1), hexid(aid): hexid(n2)}}
        sent = {}
        for _ in range(2):
            t = recv_type(eng.conn, _core.MSG_TASK)
            sent[t.msg_id] = [bytes(f) for f in t.frames]
            eng.reply(t, [b"again"])
        assert sent[n1][1:] == [b"fn", b"buf"] and sent[n1][0] == spec(targets=[eng.id],
                                                                         retries=2)
        assert sent[n2][1:] == [b"call"] and len(sent[n2][0]) == 28  # any engine
        replies = {recv_type(other.conn, _core.MSG_REPLY).parent for _ in range(2)}
        assert replies == {n1, n2}
        got, frames = other.ok({"op": "get", "msg_ids": [hexid(n1), hexid(n2)]})
        r1, r2 = got["records"]
        assert r1["resubmitted"] == hexid(tid) and r1["label"] == "L"
        assert r1["targets"] == [eng.id] and r2["targets"] == [] and r2["queue"] == "task"
        assert r2["resubmitted"] == hexid(aid) and r2["status"] == "ok"
        assert bytes(frames[r2["reply"]["frames"][0]]) == b"again"
    finally:
        other.close()


def test_payload_bounds_keep_bytes_and_records(tmp_path):
    ctl, t = start_controller(tmp_path, db_keep_bytes=100, db_max_records=3)
    eng, cl = HandEngine(ctl), Client(ctl, b"\xee" * 8)
    try:
        ids = []
        for k in range(5):
            tid = cl.id()
            ids.append(tid)
            cl.conn.send(_core.MSG_TASK, [spec(), b"x" * (10 if k else 500)], msg_id=tid)
            eng.reply(recv_type(eng.conn, _core.MSG_TASK), [b"y" * (10 if k != 1 else 500)])
            recv_type(cl.conn, _core.MSG_REPLY)
        hist = cl.ok({"op": "history"})[0]["msg_ids"]
        assert hist == [hexid(i) for i in ids[2:]]  # the oldest ended ones went
        cl2 = Client(ctl, b"\xef" * 8)
        cl2.close()
        got, _ = cl.ok({"op": "get", "msg_ids": [hexid(ids[2])]})
        assert got["records"][0]["request_kept"] is True
        # A pending task outlives the bounds.
        pend = [cl.id() for _ in range(4)]
        for p in pend:
            cl.conn.send(_core.MSG_TASK, [spec(), b"p"], msg_id=p)
        assert wait_for(lambda: cl.ok({"op": "history"})[0]["msg_ids"][-4:]
                        == [hexid(p) for p in pend])
    finally:
        cl.close()
        eng.close()
        ctl.stop()
        t.join()
        ctl.close()
    ctl, t = start_controller(tmp_path, db_keep_bytes=100)
    eng, cl = HandEngine(ctl), Client(ctl, b"\xee" * 8)
    try:
        big = cl.id()
        cl.conn.send(_core.MSG_TASK, [spec(), b"x" * 500], msg_id=big)
        eng.reply(recv_type(eng.conn, _core.MSG_TASK), [b"y" * 500])
        recv_type(cl.conn, _core.MSG_REPLY)
        (rec,), = [cl.ok({"op": "get", "msg_ids": [hexid(big)]})[0]["records"]]
        assert rec["request_kept"] is False and rec["reply_kept"] is False
        assert rec["reply"] == {"status": 0, "frames": None} and rec["reply_bytes"] == 500
        assert "not kept" in cl.fails({"op": "resubmit", "msg_ids": [hexid(big)],
                                       "new_ids": [hexid(cl.id())]}, "ValueError")
    finally:
        cl.close()
        eng.close()
        ctl.stop()
        t.join()
        ctl.close()


def test_gone_client_tasks_run_and_are_recorded(controller):
    # No engine yet: the tasks wait at the controller when their client goes away.
    a = Client(controller, b"\x01" * 8)
    tids = [a.id() for _ in range(3)]
    for tid in tids:
        a.conn.send(_core.MSG_TASK, [spec(), b"f"], msg_id=tid)
    a.ok({"op": "history"})  # they have arrived
    a.close()
    time.sleep(0.3)
    eng = HandEngine(controller)
    b = Client(controller, b"\x02" * 8)
    try:
        for _ in range(3):
            t = recv_type(eng.conn, _core.MSG_TASK)
            eng.reply(t, [b"late " + t.msg_id])
        def ended():
            got = b.ok({"op": "get", "msg_ids": [hexid(t) for t in tids]})
            return got if all(r["status"] == "ok" for r in got[0]["records"]) else None
        got, frames = wait_for(ended)
        for r, tid in zip(got["records"], tids):
            assert bytes(frames[r["reply"]["frames"][0]]) == b"late " + tid
    finally:
        b.close()
        eng.close()


def test_errors_end_records(peers):
    ctl, eng, cl = peers
    mid = cl.id()
    cl.conn.send(_core.MSG_TASK, [spec(targets=[9999]), b"f"], msg_id=mid)
    recv_type(cl.conn, _core.MSG_ERROR)
    rec = cl.ok({"op": "get", "msg_ids": [hexid(mid)]})[0]["records"][0]
    assert rec["status"] == "error" and rec["error_code"] == _core.E_IMPOSSIBLE
    assert rec["error_message"] and "reply" not in rec
    # an engine that dies ends its direct part with an ERROR
    e2 = HandEngine(ctl)
    d = cl.id()
    cl.conn.send(_core.MSG_APPLY, [targets(e2.id), b"f"], msg_id=d, flags=_core.FLAG_TARGETED)
    recv_type(e2.conn, _core.MSG_APPLY)
    e2.close()
    recv_type(cl.conn, _core.MSG_ERROR, timeout=30)
    rec = cl.ok({"op": "get", "msg_ids": [hexid(d)]})[0]["records"][0]
    assert rec["status"] == "error" and rec["error_code"] == _core.E_ENGINEDEAD


def test_without_a_database_every_op_fails(tmp_path):
    ctl, t = start_controller(tmp_path, db="none")
    cl = Client(ctl, b"\x03" * 8)
    try:
        for op in ("query", "history", "get", "purge", "label", "resubmit"):
            msg = cl.fails({"op": op}, "RuntimeError")
            assert msg == "the controller runs without a task database"
    finally:
        cl.close()
        ctl.stop()
        t.join()
        ctl.close()


def test_a_file_database_persists_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    ctl, t = start_controller(tmp_path, db="sqlite", db_file=str(path))
    eng, cl = HandEngine(ctl), Client(ctl, b"\x04" * 8)
    tid = cl.id()
    cl.conn.send(_core.MSG_TASK, [spec(), b"f"], msg_id=tid)
    eng.reply(recv_type(eng.conn, _core.MSG_TASK), [b"kept"])
    recv_type(cl.conn, _core.MSG_REPLY)
    cl.close()
    eng.close()
    ctl.stop()
    t.join()
    ctl.close()
    ctl, t = start_controller(tmp_path, db="sqlite", db_file=str(path))
    cl = Client(ctl, b"\x05" * 8)
    try:
        got, frames = cl.ok({"op": "get", "msg_ids": [hexid(tid)]})
        assert bytes(frames[got["records"][0]["reply"]["frames"][0]]) == b"kept"
    finally:
        cl.close()
        ctl.stop()
        t.join()
        ctl.close()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ValueError, match="corrupt or not a SQLite database"):
        _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY, db="sqlite",
                         db_file=str(junk))
    import sqlite3
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t(x)")
    with pytest.raises(ValueError, match="not a cpar task database"):
        _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY, db="sqlite",
                         db_file=str(other))
    with pytest.raises(ValueError, match="db must be"):
        _core.Controller("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", KEY, db="mongo")


@pytest.mark.timeout(120)
def test_a_real_engine_runs_a_resubmitted_task_and_cluster_options_pass_on():
    """cpar.Cluster(db="memory") starts `cpar controller --db memory`; a task a real client
    ran is resubmitted over the wire by another connection, and a real engine runs the
    controller-made TASK and answers that connection."""
    import cpar
    from cpar import connfile
    from cpar.cli import build_parser

    args = build_parser().parse_args(["cluster", "start", "--db", "memory", "--db-keep-bytes",
                                      "5"])
    assert (args.db, args.db_keep_bytes) == ("memory", 5)
    c = cpar.Cluster(n=1, cluster_id="taskdb-wire", db="memory", db_max_records=1000)
    assert c.controller_args[-4:] == ["--db", "memory", "--db-max-records", "1000"]
    rc = c.start_and_connect_sync()
    conn = None
    try:
        rc.wait_for_engines(1, timeout=30)
        ar = rc.load_balanced_view().apply_async(pow, 3, 4)
        assert ar.get(timeout=30) == 81
        info = connfile.read(c.connection_file)
        conn = _core.Connection(info["client_url"], info["key"].encode())
        cl = Client.__new__(Client)
        cl.prefix, cl.conn = b"\x99" * 8, conn
        (old,) = ar.msg_ids
        new = cl.id()
        done = wait_for(lambda: cl.ok({"op": "get", "msg_ids": [old]})[0]["records"][0]
                        ["status"] == "ok")
        assert done
        answer, _ = cl.ok({"op": "resubmit", "msg_ids": [old], "new_ids": [hexid(new)]})
        assert answer == {"msg_ids": {old: hexid(new)}}
        r = recv_type(conn, _core.MSG_REPLY, timeout=30, parent=new)
        assert r.status == _core.STATUS_OK
        from cpar import serialize

        assert serialize.deserialize_object(list(r.frames)) == 81
        rec = cl.ok({"op": "get", "msg_ids": [hexid(new)]})[0]["records"][0]
        assert rec["resubmitted"] == old and rec["status"] == "ok"
    finally:
        if conn is not None:
            conn.close()
        rc.close()
        c.stop_cluster_sync()
