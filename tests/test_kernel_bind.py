"""bind_kernel(): an engine also serves the Jupyter kernel protocol (cpar.engine.kernel).

A real 2-engine cluster of its own (so that stopping it can be checked), with its Jupyter
runtime directory in a temporary directory; a jupyter_client BlockingKernelClient attaches
to engine 0 through the connection file bind_kernel wrote.
"""

import contextlib
import os
import signal
import stat
import tempfile
import time

import pytest

import cpar

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = pytest.mark.timeout(180)

_RUNTIME_DIR = tempfile.mkdtemp(prefix="cpar-kernel-runtime-")


@contextlib.contextmanager
def _cluster(n, cluster_id, runtime_dir):
    """A started cluster of n engines whose Jupyter runtime directory is runtime_dir;
    stopped on leaving."""
    old = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = runtime_dir
    c = cpar.Cluster(n=n, cluster_id=cluster_id)
    try:
        c.start_cluster_sync()
    finally:
        if old is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR", None)
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = old
    try:
        yield c
    finally:
        c.stop_cluster_sync()


@pytest.fixture(scope="module")
def kcluster():
    with _cluster(2, "pytest-kernel", _RUNTIME_DIR) as c:
        yield c


@pytest.fixture(scope="module")
def krc(kcluster):
    client = cpar.Client(kcluster.connection_file)
    client.wait_for_engines(2, timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def info(krc):
    return krc[0].apply_sync(cpar.bind_kernel)


@pytest.fixture(scope="module")
def kc(info):
    client = jupyter_client.BlockingKernelClient()
    client.load_connection_file(info["connection_file"])
    client.start_channels()
    client.wait_for_ready(timeout=30)
    yield client
    client.stop_channels()


def _run(kc, code, timeout=30):
    """Executes code; returns (reply content, [iopub messages of this request])."""
    msgs = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=msgs.append)
    return reply["content"], msgs


def _stdout(msgs):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def test_connection_file_is_private_and_in_the_runtime_dir(krc, info):
    path = info["connection_file"]
    pid = krc[0].apply_sync(os.getpid)
    assert path == os.path.join(_RUNTIME_DIR, f"kernel-{pid}.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cf = jupyter_client.connect.find_connection_file(f"kernel-{pid}.json", path=[_RUNTIME_DIR])
    assert cf == path
    assert info["ip"] == "127.0.0.1" and info["transport"] == "tcp"
    assert info["signature_scheme"] == "hmac-sha256" and info["key"]


def test_bind_kernel_is_idempotent(krc, info):
    again = krc[0].apply_sync(cpar.bind_kernel)
    assert again == info


def test_bind_kernel_on_the_client_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="must run on a cpar engine"):
        cpar.bind_kernel()


def test_bind_kernel_rejects_unknown_options(krc):
    with pytest.raises(cpar.RemoteError, match="unknown option.*colour"):
        krc[1].apply_sync(cpar.bind_kernel, colour="red")


def test_bind_kernel_rejects_bad_values(krc):
    with pytest.raises(cpar.RemoteError, match="shell_port must be a port number"):
        krc[1].apply_sync(cpar.bind_kernel, shell_port=70000)
    with pytest.raises(cpar.RemoteError, match="signature_scheme 'md5'"):
        krc[1].apply_sync(cpar.bind_kernel, signature_scheme="md5")


def test_kernel_info(kc):
    reply = kc.kernel_info(reply=True, timeout=30)["content"]
    assert reply["status"] == "ok"
    assert reply["language_info"]["name"] == "python"
    assert reply["protocol_version"].startswith("5.")


def test_execute_shares_the_engine_namespace(krc, kc):
    krc[0].push({"pushed_by_cpar": 41}, block=True)
    content, msgs = _run(kc, "made_by_kernel = pushed_by_cpar + 1\nprint('seen', pushed_by_cpar)")
    assert content["status"] == "ok"
    assert _stdout(msgs) == "seen 41\n"
    assert krc[0].pull("made_by_kernel", block=True) == 42


def test_trailing_expression_is_an_execute_result(kc):
    content, msgs = _run(kc, "6 * 7")
    assert content["status"] == "ok"
    results = [m for m in msgs if m["msg_type"] == "execute_result"]
    assert [r["content"]["data"]["text/plain"] for r in results] == ["42"]


def test_display_goes_to_iopub(kc):
    content, msgs = _run(kc, "from IPython.display import display, HTML\n"
                             "display(HTML('<b>hi</b>'))")
    assert content["status"] == "ok"
    shown = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert shown and shown[0]["text/html"] == "<b>hi</b>"


def test_input_asks_the_jupyter_client(kc):
    asked = []

    def answer(msg):
        asked.append(msg["content"]["prompt"])
        kc.input("typed-in")

    msgs = []
    reply = kc.execute_interactive("print('got', input('name? '))", allow_stdin=True,
                                   stdin_hook=answer, output_hook=msgs.append, timeout=30)
    assert reply["content"]["status"] == "ok"
    assert asked == ["name? "]
    assert _stdout(msgs) == "got typed-in\n"


def test_input_without_stdin_is_a_clear_error(kc):
    msg_id = kc.execute("input()", allow_stdin=False)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "EOFError"
    assert "does not accept input requests" in content["evalue"]


def test_an_error_is_reported_and_the_kernel_goes_on(kc):
    content, msgs = _run(kc, "1/0")
    assert content["status"] == "error" and content["ename"] == "ZeroDivisionError"
    assert any(m["msg_type"] == "error" for m in msgs)
    content, msgs = _run(kc, "print('after')")
    assert content["status"] == "ok" and _stdout(msgs) == "after\n"


def test_complete_and_inspect(kc):
    _run(kc, "kernel_test_variable_xyz = 5")
    reply = kc.complete("kernel_test_variable_x", reply=True, timeout=30)["content"]
    assert "kernel_test_variable_xyz" in reply["matches"]
    reply = kc.inspect("kernel_test_variable_xyz", reply=True, timeout=30)["content"]
    assert reply["found"] is True


def test_is_complete(kc):
    def status(code):
        msg_id = kc.is_complete(code)
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        return reply["content"]["status"]

    assert status("for i in range(3):") == "incomplete"
    assert status("x = 1") == "complete"


def test_interrupt_ends_a_sleeping_execute(krc, kc):
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    # wait until it runs (its output arrives), then interrupt over the control channel
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream"):
            break
    t0 = time.monotonic()
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - t0 < 30
    # the engine still serves cpar tasks, and the kernel its requests
    assert krc[0].apply_sync(lambda: 3 + 4) == 7
    content, msgs = _run(kc, "print('still here')")
    assert _stdout(msgs) == "still here\n"


def test_tasks_and_kernel_executes_take_turns(krc, kc, tmp_path):
    # A kernel execute sent while a cpar task runs waits for the task, then sees its work.
    marker = tmp_path / "task-started"
    ar = krc[0].execute(f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\n"
                        "time.sleep(1)\nturn = 'task'")
    while not marker.exists():
        assert not ar.ready(), ar.get()
        time.sleep(0.01)
    content, msgs = _run(kc, "print(turn)")
    ar.get(30)
    assert content["status"] == "ok" and _stdout(msgs) == "task\n"


def test_requests_wait_while_the_main_thread_runs_python(krc, kc, tmp_path):
    # The poke signal may land while the engine's main thread runs Python code outside a
    # task (the runtime's own code, between tasks). A request must not run there: that code
    # may hold a lock the request needs (a deadlock seen once under load). This task
    # clears the runtime's task flag to stand for such code, and watches for 1 s that the
    # kernel execute sent meanwhile does not run inside it.
    marker = tmp_path / "python-running"
    ar = krc[0].execute(
        "import pathlib, time\nimport cpar.engine.runtime as _rt\n"
        "_rt.task_running = False\n"
        "try:\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "    t0, ran_inside = time.monotonic(), []\n"
        "    while time.monotonic() - t0 < 1.0:\n"
        "        ran_inside.append('set_by_kernel' in globals())\n"
        "finally:\n"
        "    _rt.task_running = True\n")
    while not marker.exists():
        assert not ar.ready(), ar.get()
        time.sleep(0.01)
    msg_id = kc.execute("set_by_kernel = 1")
    ar.get(30)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok"
    ran_inside = krc[0].pull("ran_inside", block=True)
    assert len(ran_inside) > 100 and not any(ran_inside)
    assert krc[0].pull("set_by_kernel", block=True) == 1


def test_connect_info_magic(krc, info):
    ar = krc[0].execute("%connect_info", block=True)
    out = ar.stdout if isinstance(ar.stdout, str) else ar.stdout[0]
    assert info["connection_file"] in out
    assert "jupyter console --existing" in out


def test_shutdown_request_keeps_the_engine(krc):
    info1 = krc[1].apply_sync(cpar.bind_kernel)
    c = jupyter_client.BlockingKernelClient()
    c.load_connection_file(info1["connection_file"])
    c.start_channels()
    try:
        c.wait_for_ready(timeout=30)
        c.shutdown()  # sent on the control channel
        reply = c.control_channel.get_msg(timeout=30)
        assert reply["msg_type"] == "shutdown_reply"
    finally:
        c.stop_channels()
    for _ in range(100):
        if not os.path.exists(info1["connection_file"]):
            break
        time.sleep(0.1)
    assert not os.path.exists(info1["connection_file"])
    assert krc[1].apply_sync(lambda: "alive") == "alive"
    # bound again: a working kernel once more
    info2 = krc[1].apply_sync(cpar.bind_kernel)
    assert os.path.exists(info2["connection_file"])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_ended(pid, path, timeout=30):
    """Waits until engine process pid has ended and its connection file is gone."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path) or _alive(pid):
        assert time.monotonic() < deadline, f"engine {pid} did not end on SIGTERM"
        time.sleep(0.05)


def test_connection_file_removed_when_the_engine_stops():
    rdir = tempfile.mkdtemp(prefix="cpar-kernel-stop-")
    with _cluster(2, "pytest-kernel-stop", rdir) as c:
        rc = cpar.Client(c.connection_file)
        rc.wait_for_engines(2, timeout=30)
        path = rc[0].apply_sync(cpar.bind_kernel)["connection_file"]
        assert os.path.dirname(path) == rdir and os.path.exists(path)
        # SIGTERM (the engine's default action for it was to die): file removed, then dies
        path1 = rc[1].apply_sync(cpar.bind_kernel)["connection_file"]
        pid1 = rc[1].apply_sync(os.getpid)
        os.kill(pid1, signal.SIGTERM)
        _wait_ended(pid1, path1)
        rc.close()
    assert not c.engines.running
    assert os.listdir(rdir) == []


def test_sigterm_while_kernel_output_is_sent():
    # SIGTERM's handler runs wherever the main thread is: here while it holds the lock
    # that kernel output (_post) takes. The engine still ends and removes its file.
    rdir = tempfile.mkdtemp(prefix="cpar-kernel-term-")
    with _cluster(1, "pytest-kernel-term", rdir) as c:
        rc = cpar.Client(c.connection_file)
        rc.wait_for_engines(1, timeout=30)
        path = rc[0].apply_sync(cpar.bind_kernel)["connection_file"]
        pid = rc[0].apply_sync(os.getpid)
        rc[0].execute("import os, signal, time\nfrom cpar.engine import kernel\n"
                      "with kernel._server._push_lock:\n"
                      "    os.kill(os.getpid(), signal.SIGTERM)\n"
                      "    time.sleep(30)\n")
        _wait_ended(pid, path)
        rc.close()
    assert os.listdir(rdir) == []
