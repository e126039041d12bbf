"""The %px magics in ipyparallel's forms, Client.send_signal with any signal, and
DirectView.get_result: a real IPython shell in this process against real clusters (the
session's 4 engines; a private one where engines get killed)."""

import _thread
import signal
import threading
import time
import uuid

import pytest

IPython = pytest.importorskip("IPython")

import cpar  # noqa: E402
from cpar import error, magics  # noqa: E402
from cpar.client.signals import signal_number  # noqa: E402

pytestmark = pytest.mark.timeout(180)

HTML_CLASS = ("class Shown:\n"
              "    def __init__(self, t): self.t = t\n"
              "    def _repr_html_(self): return '<b>' + self.t + '</b>'\n"
              "    def __repr__(self): return 'Shown(' + repr(self.t) + ')'\n")


@pytest.fixture(scope="module")
def ip(cluster):
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg, colors="nocolor")
    shell.run_cell(f"import cpar\nrc = cpar.Client({cluster.connection_file!r})\n"
                   "rc.wait_for_engines(4, timeout=30)", store_history=False)
    yield shell
    magics.unload_ipython_extension(shell)
    shell.user_ns["rc"].close()
    magics._pending.clear()
    InteractiveShell.clear_instance()


@pytest.fixture
def rc(ip):
    client = ip.user_ns["rc"]
    _activate(client[:])
    yield client
    _activate(client[:])  # the next test starts from the default view and settings


def _activate(view, suffix=""):
    view.block = True
    view.activate(suffix)
    return view


def run(fn, *args):
    """Calls ``fn`` with stdout/stderr captured (display outputs printed as text)."""
    from IPython.utils.capture import capture_output

    with capture_output(display=False) as io:
        try:
            value, exc = fn(*args), None
        except Exception as e:  # noqa: BLE001 - returned for the test to check
            value, exc = None, e
    return value, exc, io.stdout, io.stderr


def interrupt_after(seconds, fn, *args):
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        return run(fn, *args)
    finally:
        timer.cancel()


# -- signal names -------------------------------------------------------------------------


def test_signal_number_accepts_names_and_numbers():
    assert signal_number("SIGKILL") == signal.SIGKILL
    assert signal_number("term") == signal.SIGTERM
    assert signal_number("9") == 9 and signal_number(0) == 0
    assert signal_number(signal.SIGINT) == signal.SIGINT
    for bad in ("SIGNOPE", "", -1, 100000, 2.5, True, None):
        with pytest.raises(ValueError):
            signal_number(bad)


# -- Client.send_signal -------------------------------------------------------------------


def test_send_signal_any_signal_on_a_private_cluster():
    c = cpar.Cluster(n=2, cluster_id=f"magsig-{uuid.uuid4().hex[:8]}")
    c.start_cluster_sync()
    try:
        client = cpar.Client(c.connection_file)
        client.wait_for_engines(2, timeout=30)
        v = client[:]
        # 0: nothing happens, the code runs to its end
        ar = v.execute("import time; time.sleep(1.5); done = 1", block=False)
        time.sleep(0.5)
        client.send_signal(0)
        ar.get(30)
        assert v.pull("done", block=True) == [1, 1]
        # SIGINT by name or number: KeyboardInterrupt in the running code, engines live
        for sig in ("SIGINT", "2"):
            ar = v.execute("import time; time.sleep(30)", block=False)
            time.sleep(0.5)
            client.send_signal(sig)
            with pytest.raises(error.CompositeError) as info:
                ar.get(20)
            assert {e.ename for e in info.value.elist} == {"KeyboardInterrupt"}
        assert v.apply_sync(pow, 2, 3) == [8, 8]
        # a bad signal: a clear error, nothing sent
        with pytest.raises(ValueError, match="SIGNOPE"):
            client.send_signal("SIGNOPE")
        # SIGKILL ends engine 1 (the controller reports it gone); engine 0 goes on
        ar = client[1].execute("import time; time.sleep(30)", block=False)
        time.sleep(0.3)
        client.send_signal(signal.SIGKILL, targets=[1])
        with pytest.raises(error.RemoteError):
            ar.get(30)
        deadline = time.monotonic() + 30
        while 1 in client.ids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.ids == [0]
        assert client[0].apply_sync(pow, 3, 2) == 9
        # SIGTERM ends engine 0 too
        client.send_signal("SIGTERM", targets=0)
        deadline = time.monotonic() + 30
        while client.ids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.ids == []
        client.close()
    finally:
        c.stop_cluster_sync()


# -- %%px --signal-on-interrupt and Ctrl-C ------------------------------------------------

SLEEPER = "print('Entering'); import time; time.sleep({}); print('Exiting')"


def test_ctrl_c_sends_sigint_by_default(ip, rc):
    t0 = time.monotonic()
    _, exc, out, err = interrupt_after(1.0, ip.run_cell_magic, "px", "", SLEEPER.format(30))
    assert exc is None
    assert time.monotonic() - t0 < 15
    assert "Received Keyboard Interrupt. Sending signal SIGINT to engines..." in err
    assert "Exiting" not in out
    assert rc[:].apply_sync(pow, 2, 2) == [4] * 4  # the engines are ready for more


@pytest.mark.parametrize("sig", ["SIGINT", "2"])
def test_signal_on_interrupt_sigint_forms(ip, rc, sig):
    _, exc, out, err = interrupt_after(1.0, ip.run_cell_magic, "px",
                                       f"--signal-on-interrupt {sig}", SLEEPER.format(30))
    assert exc is None
    assert f"Received Keyboard Interrupt. Sending signal {sig} to engines..." in err
    assert "Exiting" not in out
    assert rc[:].apply_sync(pow, 2, 2) == [4] * 4


def test_signal_on_interrupt_0_leaves_the_code_running(ip, rc):
    _, exc, out, err = interrupt_after(0.8, ip.run_cell_magic, "px",
                                       "-t 0,1 --signal-on-interrupt 0", SLEEPER.format(2))
    assert exc is None
    assert "Sending signal 0 to engines..." in err and "Exiting" not in out
    ar = magics._magics_of(ip)[""].last_result
    ar.get(30)  # it ran to its end
    assert ar.stdout == ["Entering\nExiting\n"] * 2


def test_signal_on_interrupt_bad_value(ip, rc):
    _, exc, _, _ = run(ip.run_cell_magic, "px", "--signal-on-interrupt SIGNOPE", "1")
    from IPython.core.error import UsageError

    assert isinstance(exc, UsageError) and "SIGNOPE" in str(exc)


def test_signal_on_interrupt_sigkill_on_a_private_cluster(ip, rc):
    c = cpar.Cluster(n=2, cluster_id=f"magkill-{uuid.uuid4().hex[:8]}")
    c.start_cluster_sync()
    try:
        client = cpar.Client(c.connection_file)
        client.wait_for_engines(2, timeout=30)
        _activate(client[:])
        _, exc, out, err = interrupt_after(1.0, ip.run_cell_magic, "px",
                                           "--signal-on-interrupt SIGKILL",
                                           SLEEPER.format(30))
        assert exc is None
        assert "Sending signal SIGKILL to engines..." in err and "Exiting" not in out
        deadline = time.monotonic() + 30
        while client.ids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.ids == []
        client.close()
    finally:
        c.stop_cluster_sync()


# -- errors: --stream / --no-stream -------------------------------------------------------


def test_stream_prints_each_traceback_once_and_raises_already_displayed(ip, rc):
    _, exc, out, err = run(ip.run_cell_magic, "px", "-t 0,1,2 --stream",
                           "raise RuntimeError(f'oops')")
    assert isinstance(exc, error.AlreadyDisplayedError)
    assert isinstance(exc, error.CompositeError) and isinstance(exc, error.RemoteError)
    assert "\n".join(exc.render_traceback()) == "3 errors" == str(exc)
    assert [e.engine_id for e in exc.elist] == [0, 1, 2]
    assert isinstance(exc.original_error, error.CompositeError)
    assert err.count("RuntimeError: oops") == 3
    assert err.count("Traceback (most recent call last)") == 3
    assert "AlreadyDisplayedError" in error.__all__


def test_no_stream_prints_nothing_and_raises_the_composite_error(ip, rc):
    _, exc, out, err = run(ip.run_cell_magic, "px", "-t 0,1,2,3 --no-stream",
                           "raise RuntimeError(f'oops')")
    assert type(exc) is error.CompositeError
    assert err.strip() == ""
    tb = "\n".join(exc.render_traceback())
    assert tb.count("RuntimeError: oops") == 4 >= error.CompositeError.tb_limit


def test_one_engine_error_is_raised_as_it_is(ip, rc):
    _, exc, out, err = run(ip.run_line_magic, "px", "-t 2 1/0")
    assert type(exc) is error.RemoteError and exc.ename == "ZeroDivisionError"
    assert exc.render_traceback()[0] == "[Engine 2]"
    assert "ZeroDivisionError" not in err  # IPython shows it, once


# -- output headers and grouping ----------------------------------------------------------


def _rich_cell(ip, rc, flags):
    rc[:].execute(HTML_CLASS, block=True)
    cell = ("from IPython.display import display\nprint('o1')\ndisplay(Shown('a'))\n"
            "print('o2')\ndisplay(Shown('b'))\nShown('r')")
    _, exc, out, err = run(ip.run_cell_magic, "px", f"-t 0,1 --no-stream {flags}", cell)
    assert exc is None, err
    return out.splitlines()


def test_group_outputs_engine(ip, rc):
    lines = _rich_cell(ip, rc, "--group-outputs=engine")
    block = lambda e: [f"[stdout:{e}]", "o1", "o2", f"[output:{e}]", "Shown('a')",  # noqa
                       "Shown('b')"]
    assert lines[:6] == block(0) and lines[7:13] == block(1)
    assert lines[6].startswith("Out[0:") and lines[6].endswith("]: Shown('r')")
    assert lines[13].startswith("Out[1:") and lines[13].endswith("]: Shown('r')")


def test_group_outputs_type(ip, rc):
    lines = _rich_cell(ip, rc, "--group-outputs=type")
    assert lines[:6] == ["[stdout:0]", "o1", "o2", "[stdout:1]", "o1", "o2"]
    assert lines[6:12] == ["[output:0]", "Shown('a')", "Shown('b')",
                           "[output:1]", "Shown('a')", "Shown('b')"]
    assert [ln.split(":")[0] for ln in lines[12:]] == ["Out[0", "Out[1"]


def test_group_outputs_order_collates_displays(ip, rc):
    lines = _rich_cell(ip, rc, "--group-outputs=order")
    assert lines[:6] == ["[stdout:0]", "o1", "o2", "[stdout:1]", "o1", "o2"]
    assert lines[6:14] == ["[output:0]", "Shown('a')", "[output:1]", "Shown('a')",
                           "[output:0]", "Shown('b')", "[output:1]", "Shown('b')"]
    assert [ln.split(":")[0] for ln in lines[14:]] == ["Out[0", "Out[1"]


def test_verbose_header_names_the_targets_as_given(ip, rc):
    view = rc.activate(rc.ids)
    ip.run_line_magic("pxconfig", "--verbose")
    _, exc, out, _ = run(ip.run_cell_magic, "px", "--targets all", "pass")
    assert exc is None and out.startswith("Parallel execution on engine(s): all\n")
    _, exc, out, _ = run(ip.run_cell_magic, "px", "", "pass")
    assert out.startswith("Parallel execution on engine(s): 0, 1, 2, 3\n")
    assert view.targets == rc.ids
    rc.activate(rc.ids)  # a view activated starts with the default settings again
    _, _, out, _ = run(ip.run_cell_magic, "px", "", "pass")
    assert "Parallel" not in out


# -- %px code, %pxconfig targets ----------------------------------------------------------


def test_px_line_is_not_expanded_here(ip, rc):
    v = rc[-1:]
    v.activate()
    ip.user_ns["x_exp"] = "client"
    v["x_exp"] = "engine"
    ip.run_line_magic("px", 'y_exp = f"{x_exp}"')
    assert v["y_exp"] == ["engine"]
    ip.user_ns["out_name"] = "the_ar"  # %%px's options are expanded
    ip.run_cell_magic("px", "-o {out_name}", 'z_exp = f"{x_exp}"')
    assert isinstance(ip.user_ns["the_ar"], cpar.AsyncResult)
    assert v["z_exp"] == ["engine"]


def test_pxconfig_resolves_negative_ids_and_slices(ip, rc):
    v = rc.activate(-1, "_cmp")
    assert v.targets == rc.ids[-1]
    for arg, want in ((":", rc.ids), ("::2", rc.ids[::2]), ("1::2", rc.ids[1::2]),
                      ("-1", rc.ids[-1]), ("[0,-1]", [0, rc.ids[-1]]), ("1", 1),
                      ("all", "all")):
        ip.run_line_magic("pxconfig_cmp", f"-t {arg}")
        assert v.targets == want, arg
    _, exc, _, _ = run(ip.run_line_magic, "pxconfig_cmp", "-t -9")
    from IPython.core.error import UsageError

    assert isinstance(exc, UsageError) and "-9" in str(exc)
    _, exc, out, _ = run(ip.run_line_magic, "px_cmp", "-t -2 print('second last')")
    assert exc is None and out == f"[stdout:{rc.ids[-2]}] second last\n"
    assert rc.direct_view(-1).targets == rc.ids[-1]


# -- DirectView.get_result ----------------------------------------------------------------


def test_direct_view_get_result(rc):
    v = rc[1]
    first = v.execute("gr = 1", block=False)
    second = v.execute("1/0", block=False)
    assert v.get_result(-2).get(30).execution_count is not None  # an ExecuteReply
    assert v.get_result(-1, block=True).msg_ids == second.msg_ids
    with pytest.raises(error.RemoteError):
        v.get_result(-1).get(30)
    assert v.get_result(first.msg_ids[0], owner=False).msg_ids == first.msg_ids
    both = v.get_result([-2, -1])
    assert both.msg_ids == first.msg_ids + second.msg_ids
    assert v.get_result().msg_ids == second.msg_ids  # None: the last one
    with pytest.raises(IndexError, match="history"):
        v.get_result(-10_000)
    assert rc.get_result(first.msg_ids[0], owner=True).msg_ids == first.msg_ids


# -- requests queued behind a failed execute ----------------------------------------------


def test_requests_queued_behind_a_failed_execute_are_aborted(rc):
    v = rc[3]
    v.execute("sq = 10", block=True)
    slow = v.execute("import time; time.sleep(0.5)", block=False)
    failing = v.execute("sq / 0", block=False)
    behind = v.execute("sq *= 2", block=False)
    pushed = v.apply_async(pow, 2, 5)
    slow.get(30)
    with pytest.raises(error.RemoteError) as info:
        failing.get(30)
    assert info.value.ename == "ZeroDivisionError"
    for ar in (behind, pushed):
        with pytest.raises(error.RemoteError) as info:
            ar.get(30)
        assert info.value.ename == "TaskAborted"
    assert v.pull("sq", block=True) == 10  # sq *= 2 never ran
    # what comes later runs; an interrupted execute aborts nothing behind it
    assert v.apply_sync(pow, 2, 5) == 32
    long = v.execute("import time; time.sleep(30)", block=False)
    after = v.apply_async(pow, 3, 2)
    time.sleep(0.5)
    long.abort()
    assert after.get(30) == 9
