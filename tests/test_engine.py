"""The engine binary cpar-engine: registration, tasks, errors, output, interrupts, shutdown.

Most tests put a real engine process in front of a small controller written here with
pyzmq (a ROUTER speaking docs/protocol.md, checking every signature), so that each protocol
step can be observed and hostile input sent. The tests at the end run engines under the
real C controller when ``cpar._core`` provides it.
"""

import hashlib
import hmac
import json
import os
import pickle
import secrets
import signal
import struct
import subprocess
import sys
import time

import pytest
import zmq

import cpar
from cpar import serialize

pytestmark = pytest.mark.timeout(120)

HDR = struct.Struct("<IBBHIiii16s16sQQQ")  # the signed 80 bytes of the header
MAGIC = 0x52415043

REGISTER, REGISTER_REPLY, HEARTBEAT = 1, 2, 3
CONNECT_REPLY = 5
EXECUTE, APPLY = 10, 11
REPLY, STREAM = 20, 21
INTERRUPT, SHUTDOWN = 30, 31
STDOUT, STDERR, TARGETED = 0x1, 0x2, 0x8

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cpar.__file__)))


def engine_binary():
    """$CPAR_ENGINE (e.g. the sanitizer build), else the binary installed with cpar."""
    from cpar.cluster.launcher import engine_binary as installed

    return installed()


def pack(key, type_, frames=(), flags=0, target=-1, engine=-1, status=0, msg_id=None,
         parent=b"\0" * 16):
    """A signed message: [header, *frames]."""
    frames = [bytes(f) for f in frames]
    h = HDR.pack(MAGIC, 1, type_, flags, len(frames), target, engine, status,
                 msg_id or os.urandom(16), parent, 0, 0, sum(len(f) for f in frames))
    mac = hmac.new(key, h, hashlib.sha256)
    for f in frames:
        mac.update(f)
    return [h + mac.digest()] + frames


class Msg:
    def __init__(self, key, parts):
        h = parts[0].bytes
        self.frames = parts[1:]
        assert len(h) == 112
        mac = hmac.new(key, h[:80], hashlib.sha256)
        for f in self.frames:
            mac.update(f.buffer)
        assert hmac.compare_digest(mac.digest(), h[80:]), "bad signature from the engine"
        (magic, version, self.type, self.flags, n, self.target, self.engine, self.status,
         self.msg_id, self.parent, self.t0, self.t1, paylen) = HDR.unpack(h[:80])
        assert (magic, version, n) == (MAGIC, 1, len(self.frames))
        assert paylen == sum(len(f.buffer) for f in self.frames)

    def text(self):
        return self.frames[0].bytes.decode()


class FakeController:
    """The engine side of a controller: a ROUTER that answers REGISTER and echoes
    HEARTBEATs, and lets a test send requests and read what the engine sends."""

    def __init__(self, tmp_path, hb_period_ms=100, hb_timeout_ms=1000):
        self.key = secrets.token_hex(32)
        self.kb = self.key.encode()
        self.hb_period_ms, self.hb_timeout_ms = hb_period_ms, hb_timeout_ms
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind("tcp://127.0.0.1:*")
        self.url = self.router.last_endpoint.decode()
        self.connection_file = str(tmp_path / "connection.json")
        with open(self.connection_file, "w") as f:
            json.dump({"client_url": "tcp://127.0.0.1:1", "engine_url": self.url,
                       "key": self.key, "signature_scheme": "hmac-sha256",
                       "profile": "test", "cluster_id": "", "controller_pid": os.getpid(),
                       "hb_period_ms": hb_period_ms, "hb_timeout_ms": hb_timeout_ms}, f)
        self.ident = None
        self.engine_id = None
        self.heartbeats = 0
        self.echo = True
        self.streams = []  # (parent, flag, text) in arrival order

    def close(self):
        self.router.close()
        self.ctx.term()

    def recv_raw(self, timeout=30):
        assert self.router.poll(timeout * 1000), "nothing from the engine"
        parts = self.router.recv_multipart(copy=False)
        self.ident = parts[0].bytes
        return Msg(self.kb, parts[1:])

    def next(self, *types, timeout=30):
        """The next message of one of `types`; heartbeats are echoed, streams recorded."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv_raw(max(0.1, deadline - time.monotonic()))
            if m.type == HEARTBEAT:
                self.heartbeats += 1
                assert m.engine == self.engine_id
                if self.echo:
                    self.send_raw(HEARTBEAT, engine=m.engine)
            elif m.type == STREAM:
                self.streams.append((m.parent, m.flags, m.text()))
            if m.type in types:
                return m

    def send_raw(self, type_, frames=(), **kw):
        self.router.send_multipart([self.ident] + pack(self.kb, type_, frames, **kw))

    def accept(self, engine_id=0, status=0):
        """Waits for REGISTER and answers it; returns the REGISTER message."""
        m = self.next(REGISTER)
        self.engine_id = engine_id
        payload = f"hb_period_ms={self.hb_period_ms}\nhb_timeout_ms={self.hb_timeout_ms}\n"
        self.send_raw(REGISTER_REPLY, [payload.encode()], engine=engine_id, status=status)
        return m

    def request(self, type_, frames, msg_id=None):
        """Sends a targeted request as the controller forwards it; returns its msg id."""
        msg_id = msg_id or os.urandom(16)
        self.send_raw(type_, [struct.pack("<i", self.engine_id)] + list(frames),
                      flags=TARGETED, msg_id=msg_id)
        return msg_id

    def execute(self, code):
        return self.request(EXECUTE, [code.encode()])

    def apply(self, f, *args, **kwargs):
        if getattr(f, "__module__", None) == __name__:
            f = serialize.interactive(f)  # travels by code; the engine's namespace as globals
        return self.request(APPLY, serialize.pack_apply_message(f, args, kwargs))

    def interrupt(self, *msg_ids):
        return self.request(INTERRUPT, [b"".join(msg_ids)])

    def reply(self, msg_id, timeout=60):
        m = self.next(REPLY, timeout=timeout)
        assert m.parent == msg_id
        assert m.engine == self.engine_id
        return m

    def result(self, msg_id, timeout=60):
        """The value of a successful request (asserts success)."""
        m = self.reply(msg_id, timeout)
        if m.status != 0:
            raise AssertionError(f"remote error: {pickle.loads(m.frames[0].buffer)}")
        return serialize.deserialize_object([f.buffer for f in m.frames])

    def error(self, msg_id, timeout=60):
        """The error dict of a failed request (asserts failure)."""
        m = self.reply(msg_id, timeout)
        assert m.status == 1
        assert len(m.frames) == 1
        return pickle.loads(m.frames[0].buffer)


class Engine:
    def __init__(self, connection_file, tmp_path, *extra, env=None):
        self.log = str(tmp_path / f"engine-{len(os.listdir(tmp_path))}.log")
        env = {**os.environ, "PYTHONPATH": PKG_DIR, **(env or {})}
        self.proc = subprocess.Popen(
            [engine_binary(), "--connection-file", connection_file,
             "--python", sys.executable, "--log", self.log, *extra],
            env=env, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def spawn(tmp_path):
    """spawn(connection_file, *args) -> a running Engine; every one is stopped at teardown."""
    engines = []

    def _spawn(connection_file, *extra, env=None):
        e = Engine(connection_file, tmp_path, *extra, env=env)
        engines.append(e)
        return e

    yield _spawn
    for e in engines:
        e.stop()


@pytest.fixture
def ctl(tmp_path):
    c = FakeController(tmp_path)
    yield c
    c.close()


@pytest.fixture
def engine(ctl, spawn):
    """A registered engine (id 3) in front of the fake controller."""
    e = spawn(ctl.connection_file)
    ctl.accept(engine_id=3)
    return e


# ---- registration and environment --------------------------------------------------------


def test_registration_gets_id(ctl, spawn):
    e = spawn(ctl.connection_file, "--id", "5")
    reg = ctl.accept(engine_id=5)
    assert reg.target == 5
    fields = dict(line.split("=", 1) for line in reg.text().splitlines())
    assert fields["pid"] == str(e.pid)
    assert fields["host"]
    hb = ctl.next(HEARTBEAT)
    assert hb.engine == 5
    assert ctl.result(ctl.execute("x = 1")) == {"execution_count": 1}  # the cell's number
    assert "engine 5" in e.log_text()


def test_registration_refused(ctl, spawn):
    e = spawn(ctl.connection_file)
    ctl.accept(engine_id=-1, status=-15)
    assert e.wait() != 0
    assert "refused" in e.log_text()


def test_registration_refusal_reason_is_logged(ctl, spawn):
    """A refusing REGISTER_REPLY carries "error=<why>" (e.g. the engine-id limit reached):
    the engine's log says why, not only the code's generic text."""
    e = spawn(ctl.connection_file)
    ctl.next(REGISTER)
    why = "no engine id left: this controller has used all 65536 engine ids"
    ctl.send_raw(REGISTER_REPLY, [f"error={why}\n".encode()], engine=-1, status=-2)
    assert e.wait() != 0
    assert f"the controller refused registration: invalid argument (-2): {why}; exiting" in \
        e.log_text()


def test_environment_is_the_launching_pythons(ctl, engine):
    def env():
        import sys
        return sys.prefix, sys.executable, sys.version_info[:3], "" in sys.path

    prefix, executable, version, cwd_on_path = ctl.result(ctl.apply(env))
    assert prefix == sys.prefix
    assert os.path.realpath(executable) == os.path.realpath(sys.executable)
    assert version == sys.version_info[:3]
    assert cwd_on_path


def _loaded(*names):
    import sys
    return [n in sys.modules for n in names]


@pytest.mark.parametrize("preload, expect", [
    (None, [True, False]),               # the default: numpy, imported before any request
    ("", [False, False]),                # none
    ("colorsys, no_such_module_x", [False, True]),  # listed ones; a missing one is skipped
])
def test_preload_imports_modules_before_the_first_request(ctl, spawn, preload, expect):
    """CPAR_ENGINE_PRELOAD: what a first request would otherwise wait for (a push unpickling
    an array waits for numpy) is imported once registered, before the first request."""
    env = {} if preload is None else {"CPAR_ENGINE_PRELOAD": preload}
    e = spawn(ctl.connection_file, env=env)
    ctl.accept(engine_id=3)
    assert ctl.result(ctl.apply(_loaded, "numpy", "colorsys")) == expect
    assert ctl.result(ctl.apply(lambda: 6 * 7)) == 42
    if preload and "no_such" in preload:
        assert "no_such_module_x" not in e.log_text()  # not installed: skipped quietly


def test_preload_failure_is_logged_and_the_engine_serves(ctl, spawn, tmp_path):
    bad = tmp_path / "pkg"
    bad.mkdir()
    (bad / "broken_mod_x.py").write_text("raise RuntimeError('boom at import')\n")
    e = spawn(ctl.connection_file, env={"CPAR_ENGINE_PRELOAD": "broken_mod_x",
                                        "PYTHONPATH": f"{PKG_DIR}:{bad}"})
    ctl.accept(engine_id=3)
    assert ctl.result(ctl.apply(lambda: 6 * 7)) == 42
    assert ("CPAR_ENGINE_PRELOAD: cannot import broken_mod_x: RuntimeError: boom at import"
            in e.log_text())


# ---- tasks ------------------------------------------------------------------------------------


def test_execute_and_apply_round_trip(ctl, engine):
    assert "execution_count" in ctl.result(ctl.execute("a = 5\ndef triple(x):\n    return 3 * x\n"))
    assert ctl.result(ctl.apply(lambda x: a + x, 1)) == 6  # noqa: F821 - engine's `a`
    assert ctl.result(ctl.apply(lambda: triple(4))) == 12  # noqa: F821
    mid = ctl.apply(divmod, 17, 5)
    m = ctl.reply(mid)
    assert m.status == 0 and m.engine == 3 and 0 < m.t0 <= m.t1
    assert serialize.deserialize_object([f.buffer for f in m.frames]) == (3, 2)


def test_requests_run_in_order(ctl, engine):
    ids = [ctl.apply(lambda i: globals().setdefault("seen", []).append(i) or len(seen), i)  # noqa
           for i in range(50)]
    assert [ctl.result(i) for i in ids] == list(range(1, 51))


def test_numpy_arrays_arrive_writable_and_return(ctl, engine):
    import numpy as np
    a = np.arange(200_000, dtype=np.float64)  # 1.6 MB: travels out of band

    def touch(arr):
        ok = arr.flags.writeable and arr.flags.aligned
        arr[0] = 42.0  # in place, no copy needed
        return ok, arr

    ok, back = ctl.result(ctl.apply(touch, a))
    assert ok
    assert back[0] == 42.0 and (back[1:] == a[1:]).all()
    assert back.flags.writeable
    ctl.result(ctl.apply(lambda: __import__("gc").collect()))
    # Zero-copy result buffers are all released once sent.
    assert ctl.result(ctl.apply(lambda: __import__("_cpar_engine").outstanding())) == 0


def test_fork_inside_a_task(ctl, engine):
    def work():
        import multiprocessing
        import os
        pid = os.fork()
        if pid == 0:  # the child prints (to the engine's real stdout) and leaves
            print("from the child", flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            return pool.map(abs, [-1, -2, -3])

    assert ctl.result(ctl.apply(work)) == [1, 2, 3]
    assert ctl.result(ctl.apply(lambda: "engine fine")) == "engine fine"


# ---- errors -------------------------------------------------------------------------------


def test_execute_error(ctl, engine):
    err = ctl.error(ctl.execute("x = 1\n1/0\n"))
    assert err["ename"] == "ZeroDivisionError"
    assert err["evalue"] == "division by zero"
    assert err["engine_id"] == 3
    assert "1/0" in err["traceback"] and "<cpar-execute" in err["traceback"]
    assert "runtime.py" not in err["traceback"]


def test_apply_error_and_syntax_error(ctl, engine):
    def fails(n):
        raise ValueError(f"bad {n}")

    err = ctl.error(ctl.apply(fails, 7))
    assert (err["ename"], err["evalue"]) == ("ValueError", "bad 7")
    assert "fails" in err["traceback"] and "runtime.py" not in err["traceback"]
    err = ctl.error(ctl.execute("def f(:\n"))
    assert err["ename"] == "SyntaxError"


def test_ipython_syntax_in_execute(ctl, engine):
    import IPython  # noqa: F401 - a test dependency: the engine uses it for magics
    mid = ctl.execute("x = 3\n%time y = x * 2\nfiles = !echo hi\n")
    assert "execution_count" in ctl.result(mid)
    assert ctl.result(ctl.apply(lambda: (y, list(files)))) == (6, ["hi"])  # noqa: F821
    assert "Wall time" in "".join(t for p, f, t in ctl.streams if p == mid)
    err = ctl.error(ctl.execute("%this_magic_does_not_exist"))
    assert err["ename"] == "UsageError"


def test_unpicklable_result_is_an_error(ctl, engine):
    err = ctl.error(ctl.apply(lambda: __import__("threading").Lock()))
    assert err["ename"] == "TypeError"
    assert "pickle" in err["evalue"]
    assert ctl.result(ctl.apply(lambda: "still alive")) == "still alive"


def test_system_exit_does_not_end_the_engine(ctl, engine):
    err = ctl.error(ctl.execute("import sys; sys.exit(3)"))
    assert err["ename"] == "SystemExit"
    assert ctl.result(ctl.apply(lambda: 1)) == 1


# ---- output -------------------------------------------------------------------------------


def test_output_streams_precede_the_reply(ctl, engine):
    mid = ctl.execute("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n"
                      "sys.stdout.write('no newline')\n")
    ctl.reply(mid)
    mine = [(flag, text) for parent, flag, text in ctl.streams if parent == mid]
    out = "".join(t for f, t in mine if f == STDOUT)
    err = "".join(t for f, t in mine if f == STDERR)
    assert out == "hello\nno newline"
    assert err == "oops\n"


def test_output_is_streamed_while_the_task_runs(ctl, engine):
    # The task never ends on its own: seeing its first line proves it was sent live.
    mid = ctl.execute("import time\nprint('started', flush=True)\nwhile True: time.sleep(0.05)")
    m = ctl.next(STREAM)
    assert m.parent == mid and m.flags == STDOUT and m.text() == "started\n"
    ctl.interrupt(mid)
    assert ctl.error(mid)["ename"] == "KeyboardInterrupt"


def test_stream_object_behaves_like_a_text_file(ctl, engine):
    def probe():
        import io
        import sys
        out = sys.stdout
        try:
            out.fileno()
            fileno = "no error"
        except io.UnsupportedOperation:
            fileno = "unsupported"
        return (out.isatty(), out.writable(), out.encoding, fileno, out.write("héllo\n"),
                sys.stderr.name)

    mid = ctl.apply(probe)
    assert ctl.result(mid) == (False, True, "utf-8", "unsupported", 6, "<stderr>")
    assert [t for p, f, t in ctl.streams if p == mid] == ["héllo\n"]


def test_output_outside_a_task_goes_to_the_log(ctl, engine):
    ctl.result(ctl.execute("import threading\n"
                           "threading.Timer(0.2, print, ['late line']).start()"))
    for _ in range(100):
        if "late line" in engine.log_text():
            break
        ctl.next(HEARTBEAT)
    assert "late line" in engine.log_text()


# ---- control: heartbeats while busy, interrupts, shutdown ---------------------------------


def test_busy_task_keeps_heartbeating_and_is_interruptible(ctl, engine):
    mid = ctl.execute("while True: pass")
    ctl.heartbeats = 0
    end = time.monotonic() + 10
    while time.monotonic() < end:
        ctl.next(HEARTBEAT)
    assert ctl.heartbeats >= 5  # 10 s of a busy loop at a 100 ms period
    ctl.interrupt(os.urandom(16))  # another request: ignored
    ctl.next(HEARTBEAT)
    ctl.interrupt(mid)
    err = ctl.error(mid)
    assert err["ename"] == "KeyboardInterrupt"
    assert ctl.result(ctl.apply(lambda: "next")) == "next"


def test_interrupt_sleep_with_empty_list(ctl, engine):
    mid = ctl.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(1000)")
    ctl.next(STREAM)
    ctl.interrupt()
    assert ctl.error(mid)["ename"] == "KeyboardInterrupt"
    assert ctl.result(ctl.apply(lambda: 2)) == 2


def test_interrupt_when_idle_is_ignored(ctl, engine):
    ctl.interrupt()
    os.kill(engine.pid, signal.SIGINT)  # a stray SIGINT between tasks
    ctl.next(HEARTBEAT)
    assert ctl.result(ctl.apply(lambda: "alive")) == "alive"
    assert engine.alive()


def test_late_interrupt_never_hits_the_next_task(ctl, engine):
    # An interrupt for A that arrives as A ends must not land in B (queued right behind).
    for i in range(200):
        a = ctl.apply(sum, range(i * 500))
        b = ctl.apply(lambda: "b ok")
        ctl.interrupt(a)
        ra = ctl.reply(a)
        assert ra.status == 0 or pickle.loads(ra.frames[0].buffer)["ename"] == "KeyboardInterrupt"
        assert ctl.result(b) == "b ok"
    assert engine.alive()


def test_shutdown_exits(ctl, engine):
    ctl.result(ctl.execute("x = 1"))
    ctl.send_raw(SHUTDOWN)
    assert engine.wait() == 0


def test_shutdown_interrupts_a_running_task(ctl, engine):
    mid = ctl.execute("import time\nprint('go', flush=True)\ntime.sleep(1000)")
    ctl.next(STREAM)
    ctl.send_raw(SHUTDOWN)
    assert ctl.error(mid)["ename"] == "KeyboardInterrupt"
    assert engine.wait() == 0


def test_shutdown_with_a_thread_left_running(ctl, engine):
    ctl.result(ctl.execute("import threading, time\n"
                           "threading.Thread(target=lambda: time.sleep(10**6)).start()"))
    ctl.send_raw(SHUTDOWN)
    assert engine.wait(60) == 0
    assert "still finalizing" in engine.log_text()


def test_engine_exits_when_the_controller_disappears(tmp_path, spawn):
    c = FakeController(tmp_path, hb_period_ms=50, hb_timeout_ms=200)
    e = spawn(c.connection_file)
    c.accept(engine_id=0)
    c.result(c.execute("x = 1"))
    c.close()  # the controller is gone: its connection drops and does not come back
    assert e.wait(60) != 0
    assert "did not come back within 200 ms" in e.log_text()


def test_engine_exits_when_the_controller_falls_silent(tmp_path, spawn):
    c = FakeController(tmp_path, hb_period_ms=50, hb_timeout_ms=200)
    try:
        e = spawn(c.connection_file)
        c.accept(engine_id=0)
        c.result(c.execute("x = 1"))
        # Connected but answering nothing (a stopped or hung controller): ten timeouts.
        assert e.wait(60) != 0
        assert "nothing heard from the controller for 2000 ms" in e.log_text()
    finally:
        c.close()


def test_no_controller_registration_times_out_cleanly(tmp_path, spawn):
    # A connection file naming a port nobody listens on: the engine must not hang forever.
    with open(tmp_path / "c.json", "w") as f:
        json.dump({"engine_url": "tcp://127.0.0.1:9", "key": "k" * 64}, f)
    e = spawn(str(tmp_path / "c.json"), env={"CPAR_REGISTER_TIMEOUT": "2"})
    assert e.wait(60) == 2
    assert "REGISTER_REPLY" in e.log_text()


# ---- hostile input ------------------------------------------------------------------------


def test_garbage_does_not_crash_the_engine(ctl, engine):
    key = ctl.kb
    good = pack(key, EXECUTE, [struct.pack("<i", 3), b"x = 1"], flags=TARGETED)
    hostile = [
        [b""],
        [os.urandom(1)],
        [os.urandom(112)],
        [good[0][:111]] + good[1:],                            # short header
        [good[0]] + good[1:] + [b"extra"],                     # frame count disagrees
        [good[0]] + [good[1], b"x = 2"],                       # payload changed: signature
        pack(b"wrong key", EXECUTE, [b"\3\0\0\0", b"x = 1"], flags=TARGETED),
        [good[0][:4] + b"\x09" + good[0][5:]] + good[1:],      # unknown version
        [good[0][:5] + b"\x63" + good[0][6:]] + good[1:],      # unknown type
        pack(key, CONNECT_REPLY, [b"\0\0\0\0"]),               # valid, not for engines
        pack(key, APPLY, [b"\3\0\0\0", b"not a pickle"], flags=TARGETED),
        [os.urandom(200) for _ in range(5)],
    ]
    for parts in hostile:
        ctl.router.send_multipart([ctl.ident] + parts)
    # The APPLY with a bad pickle is well-formed: it gets an error reply.
    m = ctl.next(REPLY)
    assert m.status == 1
    assert ctl.result(ctl.apply(lambda: "ok")) == "ok"
    assert engine.alive()
    assert "dropped" in engine.log_text()


# ---- under the real controller ------------------------------------------------------------




@pytest.fixture
def real(tmp_path):
    """A real C controller (its loop on a thread of this process); yields its connection
    file. Short heartbeat settings, so that an engine declared dead would show quickly."""
    import threading

    from cpar import _core, paths

    key = secrets.token_hex(32)
    ctrl = _core.Controller(client_url="tcp://127.0.0.1:*", engine_url="tcp://127.0.0.1:*",
                            key=key.encode(), log_path=str(tmp_path / "controller.log"),
                            hb_period_ms=100, hb_timeout_ms=1000)
    cf = str(tmp_path / "connection-real.json")
    paths.write_private_json(cf, {
        "client_url": ctrl.client_url, "engine_url": ctrl.engine_url, "key": key,
        "signature_scheme": "hmac-sha256", "profile": "test", "cluster_id": "real",
        "controller_pid": os.getpid(), "hb_period_ms": 100, "hb_timeout_ms": 1000})
    thread = threading.Thread(target=ctrl.run, daemon=True)
    thread.start()
    holder = {"stop": lambda: (ctrl.stop(), thread.join(30))}
    yield cf, holder
    holder["stop"]()
    ctrl.close()


def test_real_controller_round_trip_and_output(real, spawn):
    cf, _ = real
    spawn(cf)
    spawn(cf)
    with cpar.Client(cf) as rc:
        rc.wait_for_engines(2, timeout=30)
        v = rc[:]
        v.block = True
        v.execute("import os\nb = 10")
        assert v.apply(lambda x: b + x, 1) == [11, 11]  # noqa: F821
        assert len(set(v.apply(lambda: os.getpid()))) == 2  # noqa: F821
        ar = rc[0].execute("print('to the client')", block=False)
        ar.get(30)
        assert "to the client" in ar.stdout
        with pytest.raises(cpar.error.RemoteError, match="ZeroDivisionError") as info:
            rc[1].apply_sync(lambda: 1 / 0)
        assert info.value.ename == "ZeroDivisionError"
        assert info.value.engine_id == 1


def test_real_controller_busy_engine_is_not_declared_dead(real, spawn):
    cf, _ = real
    spawn(cf)
    with cpar.Client(cf) as rc:
        rc.wait_for_engines(1, timeout=30)
        eid = rc.ids[0]
        ar = rc[eid].execute("while True: pass", block=False)
        # 10 s of a busy loop: ten heartbeat timeouts of this controller.
        assert not ar.wait(10)
        assert eid in rc.ids
        rc.send_signal(targets=[eid, eid])  # named twice: still one interrupt
        with pytest.raises(cpar.error.RemoteError, match="KeyboardInterrupt") as info:
            ar.get(30)
        assert info.value.ename == "KeyboardInterrupt"
        assert rc[eid].apply_sync(lambda: "next") == "next"


def test_real_controller_shutdown_stops_the_engine(real, spawn):
    cf, _ = real
    e = spawn(cf)
    with cpar.Client(cf) as rc:
        rc.wait_for_engines(1, timeout=30)
        rc.shutdown(targets=rc.ids, block=True)
    assert e.wait(30) == 0


def test_engine_exits_when_the_real_controller_stops(real, spawn):
    cf, holder = real
    e = spawn(cf)
    with cpar.Client(cf) as rc:
        rc.wait_for_engines(1, timeout=30)
    holder["stop"]()  # it tells its engines to stop, or they stop hearing from it
    holder["stop"] = lambda: None
    assert e.wait(60) == 0  # the controller's SHUTDOWN: a clean exit, well before 60 s


def test_interrupt_works_when_started_with_sigint_ignored(tmp_path):
    """An engine launched from a background job (SIGINT ignored) is still interruptible."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os, signal, sys, threading, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # as under `cmd &` or nohup
        import cpar
        flag = os.path.join(os.environ["CPAR_DIR"], "task-started")

        def started_then_sleep(path):
            import time
            open(path, "w").close()
            time.sleep(30)

        with cpar.Cluster(n=1, cluster_id="sigign") as rc:
            ar = rc[0].apply_async(started_then_sleep, flag)
            end = time.monotonic() + 60
            while not os.path.exists(flag) and time.monotonic() < end:
                time.sleep(0.01)  # until the task runs: the signal must find it running
            print("started", os.path.exists(flag))
            rc.send_signal(signal.SIGINT, targets=[0])
            try:
                ar.get(timeout=20)
            except cpar.RemoteError as e:
                print("ename", e.ename)
            print("alive", rc[0].apply_sync(lambda: 1 + 1))
        """
    )
    env = dict(os.environ, CPAR_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "started True" in out.stdout
    assert "ename KeyboardInterrupt" in out.stdout
    assert "alive 2" in out.stdout
