"""Engines run cells through IPython: magics, display outputs, Out[n] (issue 5).

A real 4-engine cluster (conftest) for what a user sees through AsyncResult, and the fake
controller of test_engine.py for the wire form (STREAM with FLAG_DISPLAY) and the plain
``exec`` fallback of an engine without IPython.
"""

import base64
import json
import sys
import time

import pytest

import cpar
from cpar import _core, error
from test_engine import ctl, spawn  # noqa: F401 - fixtures of the fake controller

pytestmark = pytest.mark.timeout(120)

pytest.importorskip("IPython")

HTML_CLASS = """
class Bold:
    def __init__(self, text):
        self.text = text
    def _repr_html_(self):
        return '<b>' + self.text + '</b>'
    def __repr__(self):
        return 'Bold(' + repr(self.text) + ')'
"""


# -- through a client ---------------------------------------------------------------------


def test_display_of_a_rich_repr_arrives_as_html(rc):
    v = rc[[0, 1]]
    ar = v.execute(HTML_CLASS + "from IPython.display import display\ndisplay(Bold('hi'))\n")
    assert [type(r).__name__ for r in ar.get(30)] == ["ExecuteReply", "ExecuteReply"]
    assert len(ar.outputs) == 2
    for outs in ar.outputs:
        assert len(outs) == 1
        assert outs[0]["data"]["text/html"] == "<b>hi</b>"
        assert outs[0]["data"]["text/plain"] == "Bold('hi')"
        assert outs[0]["metadata"] == {}
    assert ar.execute_result == [None, None]
    md = ar.metadata
    assert md[0]["outputs"] == ar.outputs[0] and md[1].execute_result is None
    # a single engine: unwrapped, as ipyparallel
    one = rc[2].execute(HTML_CLASS + "from IPython.display import display\n"
                        "display(Bold('a'), Bold('b'))\n", block=True)
    assert [o["data"]["text/html"] for o in one.outputs] == ["<b>a</b>", "<b>b</b>"]
    assert one.metadata["outputs"] == one.outputs


def test_trailing_expression_is_the_execute_result(rc):
    v = rc[0]
    first = v.execute("6 * 7", silent=False, block=True)
    res = first.execute_result
    assert res["data"]["text/plain"] == "42"
    assert first.metadata["execute_result"] == res
    second = v.execute("x_disp = [1, 2]\nx_disp", silent=False, block=True)
    res2 = second.execute_result
    assert res2["data"]["text/plain"] == "[1, 2]"
    assert res2["execution_count"] == res["execution_count"] + 1
    # the value itself stays remote: get() gives ExecuteReplies naming the cells
    assert first.get().execution_count == res["execution_count"]
    assert second.get().execution_count == res2["execution_count"]
    # no trailing expression, or one silenced by ';', or a None value: no result
    assert v.execute("y_disp = 3", silent=False, block=True).execute_result is None
    assert v.execute("y_disp;", silent=False, block=True).execute_result is None
    assert v.execute("None", silent=False, block=True).execute_result is None
    # IPython's output history works on the engine
    assert v.apply_sync(cpar.interactive(lambda: Out[res2["execution_count"]])) == [1, 2]  # noqa: F821


def test_matplotlib_inline_figure_comes_back_as_png(rc):
    pytest.importorskip("matplotlib")
    v = rc[3]
    v.execute("%matplotlib inline", block=True)
    ar = v.execute("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\n"
                   "plt.show()", block=True)
    pngs = [o for o in ar.outputs if "image/png" in o["data"]]
    assert len(pngs) == 1
    png = base64.b64decode(pngs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Figure" in pngs[0]["data"]["text/plain"]
    # a figure left open at the end of a cell is shown too (the inline backend's flush)
    ar = v.execute("fig = plt.figure()\n_ = plt.plot([0, 1])\n", silent=False, block=True)
    assert [o for o in ar.outputs if "image/png" in o["data"]]
    # the backend is the inline one; before %matplotlib it was Agg (no display here)
    backend = v.apply_sync(lambda: __import__("matplotlib").get_backend())
    assert "inline" in backend


def test_engines_use_a_non_gui_matplotlib_backend(rc):
    pytest.importorskip("matplotlib")
    env, backend = rc[1].apply_sync(lambda: (
        __import__("os").environ.get("MPLBACKEND"),
        __import__("matplotlib").get_backend()))
    assert env == "Agg" and backend.lower() == "agg"


def test_timeit_and_other_magics(rc):
    v = rc[1]
    ar = v.execute("%timeit -n1 -r1 sum(range(10))", block=True)
    assert "loop" in ar.stdout and "1 loop" in ar.stdout
    ar = v.execute("%%time\nz_disp = sum(range(100))\nz_disp", silent=False, block=True)
    assert "Wall time" in ar.stdout
    assert ar.execute_result["data"]["text/plain"] == "4950"
    ar = v.execute("%who_ls int", silent=False, block=True)
    assert "z_disp" in ar.execute_result["data"]["text/plain"]


def test_print_display_print_keeps_its_order(rc, capsys):
    ar = rc[2].execute(HTML_CLASS + "from IPython.display import display\n"
                       "print('before')\ndisplay(Bold('middle'))\nprint('after')\n"
                       "import sys; print('err', file=sys.stderr)\n'end'", silent=False, block=True)
    events = ar.output_events
    kinds = [k for k, _ in events]
    assert kinds == ["stdout", "display_data", "stdout", "stderr", "execute_result"]
    assert events[0][1] == "before\n" and events[2][1] == "after\n"
    assert events[1][1]["data"]["text/html"] == "<b>middle</b>"
    assert ar.stdout == "before\nafter\n" and ar.stderr == "err\n"
    # outside IPython, display_outputs prints the text/plain of a display output; a
    # single-engine result shows its text without [stdout:N] headers (as ipyparallel)
    ar.display_outputs(groupby="order")
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[:3] == ["before", "Bold('middle')", "after"]
    assert lines[-1].startswith("Out[2:") and lines[-1].endswith("]: 'end'")
    assert out.err == "err\n"


def test_display_outputs_shows_out_lines(rc, capsys):
    ar = rc[[0, 1]].execute("a_disp = 20\nprint('p')\na_disp + 1", silent=False, block=True)
    counts = [r["execution_count"] for r in ar.execute_result]
    ar.display_outputs()
    out = capsys.readouterr().out
    assert out == ("[stdout:0] p\n[stdout:1] p\n"
                   f"Out[0:{counts[0]}]: 21\nOut[1:{counts[1]}]: 21\n")
    ar.display_outputs("engine")
    assert capsys.readouterr().out == (f"[stdout:0] p\nOut[0:{counts[0]}]: 21\n"
                                       f"[stdout:1] p\nOut[1:{counts[1]}]: 21\n")
    # a multi-line text/plain starts on its own line
    ar = rc[0].execute("list(range(100))", silent=False, block=True)
    ar.display_outputs()
    text = capsys.readouterr().out
    assert text.startswith(f"Out[0:{ar.execute_result['execution_count']}]:\n[0,")


def test_display_outputs_publishes_through_ipython(rc, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    made = not InteractiveShell.initialized()
    main = sys.modules["__main__"]
    InteractiveShell.instance()
    try:
        ar = rc[0].execute(HTML_CLASS + "from IPython.display import display\n"
                           "display(Bold('x'))\nBold('y')", silent=False, block=True)
        with capture_output() as cap:
            ar.display_outputs()
        assert [o.data.get("text/html") for o in cap.outputs] == ["<b>x</b>", "<b>y</b>"]
        assert cap.outputs[0].metadata == {"engine": 0}
        count = ar.execute_result["execution_count"]
        # a terminal shell: the prompt leads the result's text/plain, its html is kept
        assert cap.outputs[1].data["text/plain"].startswith(f"Out[0:{count}]: ")
    finally:
        if made:
            InteractiveShell.clear_instance()
        sys.modules["__main__"] = main


def test_exception_in_a_cell_is_still_a_remote_error(rc):
    with pytest.raises(error.RemoteError) as info:
        rc[0].execute("q_disp = 1\nprint('ran')\nraise ValueError('bad cell')\n", block=True)
    exc = info.value
    assert exc.ename == "ValueError" and exc.evalue == "bad cell"
    assert "raise ValueError('bad cell')" in exc.traceback
    assert "<cpar-execute-" in exc.traceback and "line 3" in exc.traceback
    assert "interactiveshell.py" not in exc.traceback and "runtime.py" not in exc.traceback
    ar = rc[0].execute("1/0", block=False)
    with pytest.raises(error.RemoteError) as info:
        ar.get(30)
    assert info.value.ename == "ZeroDivisionError"
    assert ar.stdout == "" and ar.stderr == ""  # not printed by IPython as well
    with pytest.raises(error.RemoteError) as info:
        rc[0].execute("%no_such_magic_here", block=True)
    assert info.value.ename == "UsageError"
    with pytest.raises(error.RemoteError) as info:
        rc[0].execute("def broken(:\n", block=True)
    assert info.value.ename == "SyntaxError"
    assert rc[0].apply_sync(lambda: "alive") == "alive"


def test_apply_is_unchanged(rc):
    def show_and_return():
        print("printed")
        return 7

    ar = rc[1].apply_async(cpar.interactive(show_and_return))
    assert ar.get(30) == 7
    assert ar.stdout == "printed\n" and ar.outputs == [] and ar.execute_result is None
    lb = rc.load_balanced_view()
    ar = lb.map_async(lambda x: x * 2, range(8))
    assert ar.get(30) == list(range(0, 16, 2))
    assert all(r is None for r in ar.execute_result)


def test_display_inside_apply_after_a_cell(rc):
    # Once a cell made the engine's IPython shell, display() in a function works too.
    rc[3].execute("pass", block=True)

    def shows():
        from IPython.display import HTML, display

        display(HTML("<i>from apply</i>"))
        return 1

    ar = rc[3].apply_async(cpar.interactive(shows))
    assert ar.get(30) == 1
    assert ar.outputs[0]["data"]["text/html"] == "<i>from apply</i>"


def test_clear_output(rc):
    ar = rc[0].execute("from IPython.display import clear_output\nprint('old')\n"
                       "clear_output()\nprint('new')", block=True)
    assert ar.stdout == "new\n"
    kinds = [k for k, _ in ar.output_events]
    assert kinds == ["stdout", "clear_output", "stdout"]


# -- the wire, and an engine without IPython (the fake controller of test_engine.py) -------


def _streams(fake, mid):
    return [(f, t) for p, f, t in fake.streams if p == mid]


def test_display_messages_on_the_wire(ctl, spawn):  # noqa: F811
    spawn(ctl.connection_file)
    ctl.accept(engine_id=3)
    mid = ctl.execute(HTML_CLASS + "from IPython.display import display\n"
                      "print('a')\ndisplay(Bold('b'))\ndisplay(Bold('c'))\nprint('d')\n41 + 1")
    assert ctl.result(mid) == {"execution_count": 1}
    mine = _streams(ctl, mid)
    assert [f for f, _ in mine] == [_core.FLAG_STDOUT, _core.FLAG_DISPLAY, _core.FLAG_DISPLAY,
                                    _core.FLAG_STDOUT, _core.FLAG_DISPLAY]
    msgs = [json.loads(t) for f, t in mine if f == _core.FLAG_DISPLAY]
    assert msgs[0] == {"type": "display_data", "metadata": {},
                       "data": {"text/plain": "Bold('b')", "text/html": "<b>b</b>"}}
    assert msgs[1]["data"]["text/html"] == "<b>c</b>"
    assert msgs[2] == {"type": "execute_result", "data": {"text/plain": "42"},
                       "metadata": {}, "execution_count": 1}
    # binary data (image/png given as bytes) travels base64-encoded
    mid = ctl.execute("from IPython.display import display\n"
                      "display({'image/png': b'\\x89PNG fake', 'text/plain': 'img'}, raw=True)")
    ctl.result(mid)
    (f, t), = _streams(ctl, mid)
    assert json.loads(t)["data"]["image/png"] == base64.b64encode(b"\x89PNG fake").decode()


def test_without_ipython_cells_are_plain_python(ctl, spawn):  # noqa: F811
    spawn(ctl.connection_file, env={"CPAR_ENGINE_IPYTHON": "0"})
    ctl.accept(engine_id=3)
    mid = ctl.execute("v = 5\nprint(v)\nv + 1")
    assert ctl.result(mid) == {"execution_count": 1}
    assert _streams(ctl, mid) == [(_core.FLAG_STDOUT, "5\n")]  # no Out[n] without IPython
    err = ctl.error(ctl.execute("x = 1\n1/0\n"))
    assert err["ename"] == "ZeroDivisionError"
    assert "<cpar-execute-" in err["traceback"] and "1/0" in err["traceback"]
    err = ctl.error(ctl.execute("%timeit 1"))
    assert err["ename"] == "SyntaxError"
    assert ctl.result(ctl.apply(lambda: __import__("sys").modules.get("IPython"))) is None
    # and display() there prints, as it does in any plain Python program
    mid = ctl.execute("from IPython.display import display\ndisplay('shown')")
    ctl.result(mid)
    assert _streams(ctl, mid) == [(_core.FLAG_STDOUT, "shown\n")]


def test_display_outside_a_task_is_dropped_and_logged(ctl, spawn):  # noqa: F811
    e = spawn(ctl.connection_file)
    ctl.accept(engine_id=3)
    mid = ctl.execute("import threading, time\nfrom IPython.display import display\n"
                      "def later():\n    time.sleep(0.3)\n    display('late')\n"
                      "threading.Thread(target=later).start()")
    ctl.result(mid)
    deadline = time.monotonic() + 30
    while "dropped a display output" not in e.log_text():
        assert time.monotonic() < deadline, e.log_text()
        time.sleep(0.05)
    assert ctl.result(ctl.apply(lambda: "alive")) == "alive"
    assert not [1 for p, f, t in ctl.streams if f == _core.FLAG_DISPLAY]
