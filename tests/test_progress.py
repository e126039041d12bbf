"""Progress bars where a person waits (cpar.client.progress): tqdm's when tqdm is
installed, cpar's own text bar when it cannot be imported; for ``wait_interactive``,
``%px --progress-after`` and the engines registering in ``cpar cluster start`` on a
terminal (a real pseudo terminal; nothing is drawn when the output is not a terminal).
Real clusters: the plugin's session cluster, and clusters the CLI starts."""

import _thread
import io
import os
import pty
import re
import select
import subprocess
import sys
import threading

import pytest

import cpar
from cpar.client import progress

pytestmark = pytest.mark.timeout(120)

# tqdm's line: "apply: 100%|█████| 4/4 tasks [00:00<00:00,  9.87 tasks/s]" (elapsed<left)
TQDM_BAR = re.compile(r"(\d+)/(\d+) (\w+) \[\d\d:\d\d<(?:\d\d:\d\d|\?), ")
# cpar's: "apply: 100%|##########| 4/4 tasks [00:00, 9.9 tasks/s]"
TEXT_BAR = re.compile(r"\|[# ]+\| (\d+)/(\d+) (\w+) \[\d\d:\d\d, [\d.]+ \w+/s\]")


@cpar.interactive
def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


@pytest.fixture
def no_tqdm(monkeypatch):
    """``import tqdm`` fails in this process for the test (as when it is not installed)."""
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)


@pytest.fixture
def tqdm_blocked_env(tmp_path):
    """The environment of a child process in which ``import tqdm`` fails."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "tqdm.py").write_text("raise ImportError('tqdm is blocked for this test')\n")
    return dict(os.environ, PYTHONPATH=str(blocker))


def last_bar(text):
    """The last state of a bar redrawn with carriage returns."""
    return text.replace("\r\n", "\n").rstrip("\n").split("\n")[-1].split("\r")[-1]


# -- wait_interactive ----------------------------------------------------------------------


def test_wait_interactive_draws_tqdm_bar_when_installed(cpar_client, capsys):
    n = len(cpar_client.ids)
    ar = cpar_client[:].apply_async(nap, 0.3)
    ar.wait_interactive(interval=0.05)
    out = capsys.readouterr().out
    assert ar.ready() and out.endswith("\n") and "\r" in out
    m = TQDM_BAR.search(last_bar(out))
    assert m is not None, out
    assert m.groups() == (str(n), str(n), "tasks") and "100%" in last_bar(out)
    assert TEXT_BAR.search(out) is None


def test_wait_interactive_falls_back_to_text_bar_without_tqdm(cpar_client, capsys, no_tqdm):
    n = len(cpar_client.ids)
    ar = cpar_client[:].apply_async(nap, 0.3)
    ar.wait_interactive(interval=0.05)
    out = capsys.readouterr().out
    assert ar.ready() and out.endswith("\n")
    m = TEXT_BAR.search(last_bar(out))
    assert m is not None, out
    assert m.groups() == (str(n), str(n), "tasks")
    assert TQDM_BAR.search(out) is None
    # a wait that times out leaves its count, its line ended
    pending = cpar_client[0].apply_async(nap, 1.0)
    pending.wait_interactive(interval=0.05, timeout=0.1)
    out = capsys.readouterr().out
    assert not pending.ready() and out.endswith("\n")
    assert TEXT_BAR.search(last_bar(out)).groups() == ("0", "1", "tasks")
    assert pending.get(30) == 1.0


def test_progress_bar_counts_what_it_is_told(no_tqdm):
    stream = io.StringIO()
    bar = progress.progress_bar(3, "engines registered", unit="engines", stream=stream,
                                widget=False)
    bar.update(1)
    bar.update(3)
    bar.close(3)
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert [m.groups() for m in TEXT_BAR.finditer(text)] == [
        ("1", "3", "engines"), ("3", "3", "engines"), ("3", "3", "engines")]
    assert last_bar(text).startswith("engines registered: 100%|")


def test_tqdm_bar_starts_no_monitor_thread():
    import tqdm

    before = set(threading.enumerate())
    bar = progress.progress_bar(2, "x", stream=io.StringIO(), widget=False)
    assert isinstance(bar.bar, tqdm.tqdm)
    bar.update(2)
    bar.close(2)
    assert set(threading.enumerate()) <= before


# -- %px --progress-after ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell(cpar_cluster):
    """A real IPython shell in this process whose %px runs on the session's cluster."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from cpar import magics

    InteractiveShell.clear_instance()
    cfg = Config()
    cfg.HistoryManager.enabled = False
    sh = InteractiveShell.instance(config=cfg, colors="nocolor")
    res = sh.run_cell(f"import cpar\nrc = cpar.Client({cpar_cluster.connection_file!r})\n"
                      f"rc.wait_for_engines({cpar_cluster.n}, timeout=30)")
    assert res.success
    yield sh
    magics.unload_ipython_extension(sh)
    sh.user_ns["rc"].close()
    magics._pending.clear()
    InteractiveShell.clear_instance()


@pytest.mark.parametrize("kind", ["tqdm", "text"])
def test_px_progress_after_draws_the_bar(shell, capsys, request, kind):
    if kind == "text":
        request.getfixturevalue("no_tqdm")
    n = len(shell.user_ns["rc"].ids)
    res = shell.run_cell("%%px --progress-after 0.2\nimport time\ntime.sleep(0.8)\n"
                         "print('done')")
    out = capsys.readouterr().out
    assert res.success, out
    bars = [last_bar(chunk) for chunk in out.split("\n") if "tasks" in chunk]
    pattern = TQDM_BAR if kind == "tqdm" else TEXT_BAR
    assert bars and pattern.search(bars[-1]).groups() == (str(n), str(n), "tasks"), out
    assert (TEXT_BAR if kind == "tqdm" else TQDM_BAR).search(out) is None
    assert sorted(ln for ln in out.splitlines() if ln.startswith("[stdout:")) == [
        f"[stdout:{i}] done" for i in range(n)]


def test_px_progress_after_ctrl_c_ends_the_bar_line(shell, capsys):
    timer = threading.Timer(1.2, _thread.interrupt_main)
    timer.start()
    try:
        res = shell.run_cell("%%px --progress-after 0.2\nimport time\ntime.sleep(30)")
    finally:
        timer.cancel()
    captured = capsys.readouterr()
    assert res.success, captured
    # the bar stopped at 0 of n and its line ended before the interrupt's message
    assert captured.out.endswith("\n")
    assert TQDM_BAR.search(last_bar(captured.out)).groups()[0] == "0", captured.out
    assert "KeyboardInterrupt: interrupted the %px code" in captured.err
    rc = shell.user_ns["rc"]
    assert rc[:].apply_sync(pow, 2, 3) == [8] * len(rc.ids)  # the engines are free


# -- cpar cluster start --------------------------------------------------------------------


def _cli(*args, env=None, tty=True):
    """Runs ``cpar ARGS`` with stdout and stderr on a new pseudo terminal (or on pipes):
    (exit status, everything it wrote)."""
    argv = [sys.executable, "-m", "cpar", *args]
    if not tty:
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave)
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        status = p.wait(timeout=60)
    return status, b"".join(chunks).decode("utf-8", "replace")


def _stop(cluster_id):
    """Stops the cluster the CLI left running (none if it failed to start)."""
    from cpar import paths

    if not os.path.exists(paths.cluster_file("default", cluster_id)):
        return
    c = cpar.Cluster.from_file(profile="default", cluster_id=cluster_id)
    c.stop_cluster_sync()
    assert not c.engines.running and not c.controller.running


@pytest.mark.parametrize("kind", ["tqdm", "text"])
def test_cluster_start_on_a_terminal_shows_engines_registering(kind, request):
    env = request.getfixturevalue("tqdm_blocked_env") if kind == "text" else None
    cid = f"progress-{kind}"
    try:
        status, out = _cli("cluster", "start", "-n", "2", "--daemonize", "--cluster-id",
                           cid, env=env)
    finally:
        _stop(cid)
    assert status == 0, out
    assert f"cluster {cid} (profile default) running" in out
    bar_text = out[:out.index(f"cluster {cid}")]
    pattern = TQDM_BAR if kind == "tqdm" else TEXT_BAR
    counts = [m.groups() for m in pattern.finditer(bar_text)]
    assert counts and counts[-1] == ("2", "2", "engines"), out
    assert all(total == "2" for _, total, _ in counts)
    assert last_bar(bar_text).startswith("engines registered: 100%|")
    assert bar_text.endswith("\r\n")  # the bar's line ends before the next output


def test_cluster_start_not_on_a_terminal_draws_no_bar():
    try:
        status, out = _cli("cluster", "start", "-n", "1", "--daemonize", "--cluster-id",
                           "progress-pipe", tty=False)
    finally:
        _stop("progress-pipe")
    assert status == 0, out
    assert "engines registered" not in out and "\r" not in out
    assert out.startswith("cluster progress-pipe (profile default) running")
