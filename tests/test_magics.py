"""The IPython magics (%px, %%px, %pxresult, %pxconfig, %autopx): a real IPython shell in
this process drives them against the session's 4-engine cluster."""

import _thread
import sys
import threading
import time

import pytest

IPython = pytest.importorskip("IPython")

import cpar  # noqa: E402
from cpar import error, magics  # noqa: E402
from cpar.client import AsyncResult  # noqa: E402

pytestmark = pytest.mark.timeout(120)


class Recorder:
    """Stands for sys.stdout and sys.stderr: keeps every write with its time and stream."""

    def __init__(self):
        self.writes = []  # (monotonic time, 'out' | 'err', text)

    def stream(self, name):
        rec = self

        class _S:
            encoding = "utf-8"

            def write(self, text):
                rec.writes.append((time.monotonic(), name, text))
                return len(text)

            def flush(self):
                pass

            def isatty(self):
                return False

        return _S()

    @property
    def text(self):
        return "".join(t for _, _, t in self.writes)

    @property
    def out(self):
        return "".join(t for _, n, t in self.writes if n == "out")

    @property
    def err(self):
        return "".join(t for _, n, t in self.writes if n == "err")

    def first_time(self, needle):
        """When ``needle`` was written (the write that completed it)."""
        acc = ""
        for t, _, text in self.writes:
            acc += text
            if needle in acc:
                return t
        raise AssertionError(f"{needle!r} never written: {self.text!r}")


class Run:
    """A cell run in the shell: its result and what it wrote."""

    def __init__(self, ip, code):
        rec = Recorder()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = rec.stream("out"), rec.stream("err")
        try:
            self.result = ip.run_cell(code, store_history=False)
        finally:
            sys.stdout, sys.stderr = saved
        self.rec = rec
        self.out, self.err, self.text = rec.out, rec.err, rec.text
        self.value = self.result.result
        self.error = self.result.error_in_exec or self.result.error_before_exec


@pytest.fixture(scope="module")
def ip(cluster):
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg, colors="nocolor")
    # A Client made inside the shell registers %px on all its engines (seed 002).
    assert "px" not in shell.magics_manager.magics["line"]
    r = Run(shell, f"import cpar\nrc = cpar.Client({cluster.connection_file!r})\n"
                   "rc.wait_for_engines(4, timeout=30)")
    assert r.error is None, r.text
    assert "px" in shell.magics_manager.magics["line"]
    assert "px" in shell.magics_manager.magics["cell"]
    yield shell
    magics.unload_ipython_extension(shell)
    shell.user_ns["rc"].close()
    magics._pending.clear()
    InteractiveShell.clear_instance()


def px(ip, code):
    return Run(ip, code)


def lines_with(text, prefix):
    """The lines starting with ``prefix``, sorted: streamed output comes as it arrives,
    not in engine order."""
    return sorted(ln for ln in text.splitlines() if ln.startswith(prefix))


# -- %px, %%px and their flags ------------------------------------------------------------


def test_px_line_runs_on_every_engine(ip):
    r = px(ip, "%px print('hello', 6 * 7)")
    assert r.error is None, r.text
    assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] hello 42" for i in range(4)]
    assert r.value is None


def test_px_cell_and_state_between_cells(ip):
    r = px(ip, "%%px\nimport os\nmy_pid = os.getpid()\nprint('pid', my_pid)")
    assert r.error is None, r.text
    pids = {int(ln.split()[-1]) for ln in lines_with(r.out, "[stdout:")}
    assert len(pids) == 4
    assert set(ip.user_ns["rc"][:].pull("my_pid", block=True)) == pids


def test_targets_forms(ip):
    cases = [("%px -t 1 print('x')", [1]), ("%px --targets 1,2 print('x')", [1, 2]),
             ("%%px -t [0, 3]\nprint('x')", [0, 3]), ("%%px --targets ::2\nprint('x')", [0, 2]),
             ("%%px --targets=1:3\nprint('x')", [1, 2]), ("%px -t all print('x')", [0, 1, 2, 3]),
             ("%px -t -1 print('x')", [3])]
    for code, engines in cases:
        r = px(ip, code)
        assert r.error is None, (code, r.text)
        assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] x" for i in engines], code


def test_bad_targets_are_usage_errors(ip):
    r = px(ip, "%px -t 99 print(1)")
    assert r.error is not None and "99" in r.text
    r = px(ip, "%px -t a:b:c:d print(1)")
    assert "invalid targets" in r.text


def test_parse_targets():
    pt = magics.parse_targets
    assert pt("all") == "all" and pt("3") == 3 and pt("-1") == -1
    assert pt("1,2") == [1, 2] and pt("[1, 2]") == [1, 2] and pt("[2]") == [2]
    assert pt("::2") == slice(None, None, 2) and pt("1:3") == slice(1, 3)


def test_noblock_returns_the_async_result_and_pxresult_shows_it(ip):
    r = px(ip, "%%px -a\nimport time\ntime.sleep(0.3)\nprint('later')")
    assert r.error is None, r.text
    ar = r.value
    assert isinstance(ar, AsyncResult)
    assert not ar.ready()
    assert "[stdout:" not in r.out
    r = px(ip, "%pxresult")
    assert r.error is None, r.text
    assert ar.ready()
    assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] later" for i in range(4)]
    r = px(ip, "%px --noblock print('line')")
    assert isinstance(r.value, AsyncResult)
    r.value.get(30)
    assert r.value.stdout == ["line\n"] * 4


def test_out_stores_the_async_result(ip):
    r = px(ip, "%%px -o saved --targets 0,1\nprint('stored')")
    assert r.error is None, r.text
    ar = ip.user_ns["saved"]
    assert isinstance(ar, AsyncResult) and ar.ready()
    assert ar.stdout == ["stored\n", "stored\n"]
    r = px(ip, "%px -a -o saved2 print('two')")
    assert ip.user_ns["saved2"] is r.value
    r = px(ip, "%px --noblock --out saved3 print('three')")
    assert ip.user_ns["saved3"] is r.value


def test_local_runs_here_too(ip):
    r = px(ip, "%%px --local\nboth_here_and_there = 41 + 1\nprint('ran', both_here_and_there)")
    assert r.error is None, r.text
    assert ip.user_ns["both_here_and_there"] == 42
    assert ip.user_ns["rc"][:].pull("both_here_and_there", block=True) == [42] * 4
    assert lines_with(r.out, "ran") == ["ran 42"] and len(lines_with(r.out, "[stdout:")) == 4


def test_verbose_and_block(ip):
    r = px(ip, "%px --verbose --block print('v')")
    assert "Parallel execution on engine(s): all" in r.out  # the view's targets
    assert len(lines_with(r.out, "[stdout:")) == 4


def test_group_outputs(ip):
    code = ("%%px -t 0,1 --group-outputs={}\nimport sys\nprint('o')\n"
            "print('e', file=sys.stderr)")
    r = px(ip, code.format("engine"))
    assert r.error is None, r.text
    assert [ln for ln in r.text.splitlines() if ln.startswith("[")] == [
        "[stdout:0] o", "[stderr:0] e", "[stdout:1] o", "[stderr:1] e"]
    r = px(ip, code.format("type"))
    assert [ln for ln in r.text.splitlines() if ln.startswith("[")] == [
        "[stdout:0] o", "[stdout:1] o", "[stderr:0] e", "[stderr:1] e"]
    r = px(ip, code.format("order"))  # as type (only display outputs are collated)
    assert [ln for ln in r.text.splitlines() if ln.startswith("[")] == [
        "[stdout:0] o", "[stdout:1] o", "[stderr:0] e", "[stderr:1] e"]
    r = px(ip, code.format("bogus"))
    assert r.error is not None and "invalid choice" in r.text


def test_stream_shows_lines_as_they_arrive(ip):
    # (an engine may hold its first output back up to a heartbeat period, 0.5 s)
    cell = "%%px -t 0\nimport time\nprint('first')\ntime.sleep(1.2)\nprint('second')"
    r = px(ip, cell.replace("-t 0", "-t 0 --stream"))
    assert r.error is None, r.text
    t1 = r.rec.first_time("[stdout:0] first")
    t2 = r.rec.first_time("[stdout:0] second")
    assert t2 - t1 > 0.5, r.rec.writes
    # --no-stream: everything at the end, together
    r = px(ip, cell.replace("-t 0", "-t 0 --no-stream"))
    assert r.error is None, r.text
    assert abs(r.rec.first_time("second") - r.rec.first_time("first")) < 0.2


def test_multiline_output_block(ip):
    r = px(ip, "%px -t 2 print('a\\nb')")
    assert "[stdout:2]\na\nb\n" in r.out


def test_progress_after(ip):
    r = px(ip, "%%px --progress-after 0.2\nimport time\ntime.sleep(0.8)\nprint('done')")
    assert r.error is None, r.text
    assert "4/4 tasks" in r.out and "100%" in r.out
    assert len(lines_with(r.out, "[stdout:")) == 4


def test_engines_run_ipython_syntax(ip):
    r = px(ip, "%px -t 0 %time x_timed = 1")
    assert r.error is None, r.text
    assert "Wall time" in r.text


# -- errors, Ctrl-C -----------------------------------------------------------------------


def test_errors_shown_once_per_engine_and_raised(ip):
    r = px(ip, "%%px -t 0,2\nprint('before')\n1/0")
    err = r.error
    assert isinstance(err, error.CompositeError) and isinstance(err, error.RemoteError)
    assert [e.engine_id for e in err.elist] == [0, 2]
    assert "[Engine 0] ZeroDivisionError: division by zero" in r.err
    assert "[Engine 2] ZeroDivisionError: division by zero" in r.err
    assert r.text.count("Traceback (most recent call last)") == 2
    assert r.text.count("1/0") == 2  # the remote source line, once per engine
    assert lines_with(r.out, "[stdout:") == ["[stdout:0] before", "[stdout:2] before"]
    # IPython shows one short line for the raised error, not the tracebacks again
    assert isinstance(err, error.AlreadyDisplayedError)
    assert "2 errors" in r.out


def test_error_on_some_engines_only(ip):
    ip.user_ns["rc"][1].execute("zero = 0", block=True)
    r = px(ip, "%px x = 1 / globals().get('zero', 1)")
    assert isinstance(r.error, error.CompositeError)
    assert [e.engine_id for e in r.error.elist] == [1]
    assert "[Engine 1] ZeroDivisionError" in r.err and "[Engine 0]" not in r.err
    assert "1 errors" in r.out
    ip.user_ns["rc"][1].execute("del zero", block=True)


def test_ctrl_c_interrupts_the_engines_and_returns(ip):
    timer = threading.Timer(1.0, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    try:
        r = px(ip, "%%px\nimport time\nprint('sleeping')\ntime.sleep(30)")
    finally:
        timer.cancel()
    elapsed = time.monotonic() - t0
    assert elapsed < 10, r.text
    assert r.error is None, r.text
    assert "KeyboardInterrupt" in r.err
    assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] sleeping" for i in range(4)]
    r = px(ip, "%px print('alive')")
    assert r.error is None, r.text
    assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] alive" for i in range(4)]
    assert time.monotonic() - t0 < 10
    # not streaming: what the engines printed before the interrupt is shown too
    timer = threading.Timer(0.8, _thread.interrupt_main)
    timer.start()
    try:
        r = px(ip, "%%px --no-stream -t 1,2\nprint('zzz')\ntime.sleep(30)")
    finally:
        timer.cancel()
    assert "KeyboardInterrupt" in r.err and "engine(s) 1, 2" in r.err
    assert lines_with(r.out, "[stdout:") == ["[stdout:1] zzz", "[stdout:2] zzz"]
    assert ip.user_ns["rc"][:].apply_sync(pow, 2, 3) == [8] * 4


# -- %pxconfig, %autopx, activate, %load_ext ----------------------------------------------


def test_pxconfig(ip):
    try:
        r = px(ip, "%pxconfig --targets 1 --noblock")
        assert r.error is None, r.text
        r = px(ip, "%px print('configured')")
        ar = r.value
        assert isinstance(ar, AsyncResult)
        r = px(ip, "%pxresult")
        assert lines_with(r.out, "[stdout:") == ["[stdout:1] configured"]
        r = px(ip, "%pxconfig --block --verbose --targets ::2")
        r = px(ip, "%px print('even')")
        assert "Parallel execution on engine(s): 0, 2" in r.out
        assert lines_with(r.out, "[stdout:") == ["[stdout:0] even", "[stdout:2] even"]
        r = px(ip, "%pxconfig")
        assert "block=True" in r.out and "verbose=True" in r.out
    finally:
        px(ip, "%pxconfig --targets all --block --no-verbose")
    r = px(ip, "%px print('all')")
    assert len(lines_with(r.out, "[stdout:")) == 4 and "Parallel" not in r.out


def test_autopx(ip):
    r = px(ip, "%autopx")
    try:
        assert "%autopx enabled" in r.out
        r = px(ip, "import os\nauto_value = 7\nprint('auto', auto_value)")
        assert r.error is None, r.text
        assert lines_with(r.out, "[stdout:") == [f"[stdout:{i}] auto 7" for i in range(4)]
        assert "auto_value" not in ip.user_ns
        r = px(ip, "%time y = 1")  # IPython syntax runs on the engines too
        assert r.text.count("Wall time") == 4
        r = px(ip, "%px -t 0 print('own')")  # the parallel magics run as written
        assert lines_with(r.out, "[stdout:") == ["[stdout:0] own"]
    finally:
        r = px(ip, "%autopx")
    assert "%autopx disabled" in r.out
    r = px(ip, "print('local again')")
    assert r.out == "local again\n"


def test_activate_with_suffix(ip):
    rc = ip.user_ns["rc"]
    odd = rc[[1, 3]]
    odd.block = True
    odd.activate("_odd")
    zero = rc.activate(targets=[0], suffix="_zero")
    r = px(ip, "%px_odd print('odd')")
    assert lines_with(r.out, "[stdout:") == ["[stdout:1] odd", "[stdout:3] odd"]
    r = px(ip, "%%px_zero\nprint('zero')")
    assert lines_with(r.out, "[stdout:") == ["[stdout:0] zero"]
    r = px(ip, "%px_odd -a print('x')")
    assert isinstance(r.value, AsyncResult)
    r = px(ip, "%pxresult_odd")
    assert lines_with(r.out, "[stdout:") == ["[stdout:1] x", "[stdout:3] x"]
    r = px(ip, "%pxconfig_zero --targets 2")
    assert zero.targets == 2
    r = px(ip, "%autopx_zero")
    r = px(ip, "print('on two')")
    px(ip, "%autopx_zero")
    assert lines_with(r.out, "[stdout:") == ["[stdout:2] on two"]
    r = px(ip, "%px print('default')")  # the plain %px still acts on every engine
    assert len(lines_with(r.out, "[stdout:")) == 4


def test_load_ext_and_views_activated_without_a_shell(ip, cluster):
    mm = ip.magics_manager
    magics.unload_ipython_extension(ip)
    assert "px" not in mm.magics["line"] and "px_odd" not in mm.magics["line"]
    r = px(ip, "%load_ext cpar")
    assert r.error is None, r.text
    assert "px" in mm.magics["line"] and "autopx" in mm.magics["line"]
    r = px(ip, "%px print(1)")  # no client made since the magics were loaded: no view
    assert r.error is not None and "no active view" in r.text
    rc2 = cpar.Client(cluster.connection_file)  # made in a process running IPython
    try:
        r = px(ip, "%px print('auto')")
        assert len(lines_with(r.out, "[stdout:")) == 4
        v = rc2[[0, 1]]
        v.block = True
        v.activate()
        r = px(ip, "%px print('loaded')")
        assert lines_with(r.out, "[stdout:") == ["[stdout:0] loaded", "[stdout:1] loaded"]
    finally:
        rc2.close()
    r = px(ip, "%px print(1)")
    assert "closed" in r.text
    # a new client made in the shell takes over %px
    r = px(ip, f"rc3 = cpar.Client({cluster.connection_file!r})")
    assert r.error is None, r.text
    try:
        r = px(ip, "%px print('rc3')")
        assert len(lines_with(r.out, "[stdout:")) == 4
    finally:
        ip.user_ns.pop("rc3").close()
    magics._magics_for(ip, "").set_client(ip.user_ns["rc"])


def test_register_view_without_shell_is_remembered(cluster):
    from IPython.core.interactiveshell import InteractiveShell

    saved = InteractiveShell._instance
    InteractiveShell._instance = None  # no shell runs
    try:
        with cpar.Client(cluster.connection_file) as rc:
            view = rc[[2]]
            view.activate("_later")
            assert magics._pending["_later"] is view
    finally:
        InteractiveShell._instance = saved
        magics._pending.pop("_later", None)


def test_execute_results_shown_as_out(ip):
    r = px(ip, "%px -t 0,1 6 * 7")
    assert r.error is None, r.text
    outs = lines_with(r.out, "Out[")
    assert len(outs) == 2 and outs[0].startswith("Out[0:") and outs[0].endswith("42")
    r = px(ip, "%px -t 0,1 --no-stream 6 * 7")
    assert len(lines_with(r.out, "Out[")) == 2


class _FakeResult:
    """What a finished AsyncResult with rich outputs looks like to the magics."""

    def __init__(self, engine_id, outputs, execute_result):
        self.engine_id = engine_id
        self.outputs = outputs
        self.execute_result = execute_result


def test_rich_outputs_rendering(ip):
    from IPython.utils.capture import capture_output

    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    ar = _FakeResult([0, 1],
                     [[{"data": {"text/plain": "shown"}, "metadata": {}},
                       {"data": png, "metadata": {"width": 3}}], []],
                     [{"data": {"text/plain": "42"}, "execution_count": 3},
                      {"data": {"text/plain": "[1,\n 2]"}, "execution_count": 5}])
    with capture_output() as cap:
        magics._show_rich(ar)
    assert "[output:0]\nshown\n" in cap.stdout and "[output:1]" not in cap.stdout
    assert [o.data for o in cap.outputs] == [png]
    assert cap.outputs[0].metadata == {"width": 3}
    assert "Out[0:3]: 42\n" in cap.stdout and "Out[1:5]:\n[1,\n 2]\n" in cap.stdout
    # one engine: the attributes are that engine's own (not lists per engine)
    single = _FakeResult(2, [{"data": {"text/plain": "one"}, "metadata": {}}],
                         {"data": {"text/plain": "7"}, "execution_count": 1})
    with capture_output() as cap:
        magics._show_rich(single)
    assert cap.stdout == "[output:2]\none\nOut[2:1]: 7\n"


def test_display_outputs_from_engines(ip):
    cell = ("%%px -t 0,1{}\nfrom IPython.display import display, HTML\nprint('before')\n"
            "display(HTML('<b>bold</b>'))\nprint('after')\n40 + 2")
    for flags in ("", " --no-stream"):
        from IPython.utils.capture import capture_output

        with capture_output() as cap:
            res = ip.run_cell(cell.format(flags), store_history=False)
        assert res.error_in_exec is None, cap.stdout + cap.stderr
        htmls = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]
        assert htmls == ["<b>bold</b>"] * 2, (flags, cap.outputs)
        outs = lines_with(cap.stdout, "Out[")
        assert [o.split(":")[0] for o in outs] == ["Out[0", "Out[1"], cap.stdout
        assert all(o.endswith("]: 42") for o in outs), cap.stdout
        if flags:  # grouped by type: all the text, then the displays
            assert "[stdout:1]\nbefore\nafter\n" in cap.stdout
        else:  # streamed: the display between the two prints
            assert "[stdout:1] before\n[output:1]\n[stdout:1] after\n" in cap.stdout


def test_in_a_jupyter_kernel(cluster):
    """The magics in a real ipykernel kernel (a notebook's): output as stream and
    display_data messages, an engine's error as the error output."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    cells = [f"import cpar\nrc = cpar.Client({cluster.connection_file!r})\n"
             "rc.wait_for_engines(4, timeout=30)",
             "%px -t 0,1 print('nb', 6 * 7)",
             "%%px -a -t 2\nimport time\ntime.sleep(0.3)\nprint('slow')",
             "%pxresult",
             "%%px -t 3\nfrom IPython.display import display, HTML\ndisplay(HTML('<i>i</i>'))",
             "%px -t 1 1/0",
             "rc.close()"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    c = nb.cells
    assert sorted(text(c[1]).splitlines()) == ["[stdout:0] nb 42", "[stdout:1] nb 42"]
    assert "AsyncResult" in c[2].outputs[0]["data"]["text/plain"]
    assert text(c[3]) == "[stdout:2] slow\n"
    assert [o.data["text/html"] for o in c[4].outputs if o.output_type == "display_data"] \
        == ["<i>i</i>"]
    # one engine's error (-t 1): raised as it is, its remote traceback shown once
    errors = [o for o in c[5].outputs if o.output_type == "error"]
    assert "ZeroDivisionError" not in text(c[5])
    assert len(errors) == 1 and errors[0].traceback[0] == "[Engine 1]"
    assert errors[0].traceback[-1] == "ZeroDivisionError: division by zero"
