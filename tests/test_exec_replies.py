"""execute() replies (ExecuteReply), silent execution, wait_for_output and data
publication (cpar.datapub), on the real 4-engine cluster of conftest."""

import base64
import os
import tempfile
import time

import pytest

import cpar
from cpar.client.executereply import ExecuteReply

pytestmark = pytest.mark.timeout(120)

pytest.importorskip("IPython")


def test_single_engine_execute_gives_one_execute_reply(rc):
    v = rc[1]
    er = v.execute("print('hi')\n6 * 7", silent=False, block=True).get()
    assert isinstance(er, ExecuteReply) and isinstance(er, cpar.ExecuteReply)
    assert er.stdout == "hi\n" and er.stderr == ""
    assert er.engine_id == 1 and er["engine_id"] == 1
    assert er.execute_result["data"]["text/plain"] == "42"
    assert er.execute_result["execution_count"] == er.execution_count
    assert er.data == {"text/plain": "42"}
    assert repr(er) == f"<ExecuteReply[{er.execution_count}]: 42>"
    assert er._plaintext() == f"Out[1:{er.execution_count}]: 42"
    with pytest.raises(AttributeError):
        er.no_such_thing


def test_multi_engine_execute_gives_one_reply_per_engine(rc):
    ars = rc[[0, 2]].execute("import os\nos.getpid()", silent=False, block=True)
    replies = ars.get()
    assert [type(r) for r in replies] == [ExecuteReply, ExecuteReply]
    assert [r.engine_id for r in replies] == [0, 2]
    pids = {int(r.data["text/plain"]) for r in replies}
    assert len(pids) == 2


def test_execute_reply_rich_reprs(rc):
    v = rc[3]
    v.execute("from IPython.display import Image, HTML", block=True)
    er = v.execute("Image(data=b'notapng', format='png', width=7)", silent=False,
                   block=True).get()
    data, md = er._repr_png_()
    assert base64.b64decode(data) == b"notapng" and md == {"width": 7}
    assert er._repr_html_() is None  # no such type in the result
    er = v.execute("HTML('<i>x</i>')", silent=False, block=True).get()
    assert er._repr_html_() == "<i>x</i>"
    bundle, _ = er._repr_mimebundle_()
    assert bundle["text/html"] == "<i>x</i>"
    assert bundle["text/plain"].startswith("Out[3:")


def test_execute_is_silent_by_default(rc):
    v = rc[0]
    loud = v.execute("1 + 1", silent=False, block=True)
    n = loud.get().execution_count
    quiet = v.execute("2 + 2", block=True)
    assert quiet.execute_result is None and quiet.get().data == {}
    assert quiet.get().execution_count == n  # no increment
    # a silent cell still prints and displays
    quiet = v.execute("print('p')\nfrom IPython.display import display\ndisplay(5)",
                      block=True)
    assert quiet.stdout == "p\n" and quiet.outputs[0]["data"] == {"text/plain": "5"}
    again = v.execute("3 + 3", silent=False, block=True)
    assert again.get().execution_count == n + 1
    assert again.execute_result["data"]["text/plain"] == "6"


def test_execute_needs_a_str(rc):
    with pytest.raises(TypeError, match="execute needs the code as a str"):
        rc[0].execute(b"x = 1")


def test_failed_execute_still_raises(rc):
    with pytest.raises(cpar.RemoteError) as info:
        rc[2].execute("1/0", block=True)
    assert info.value.ename == "ZeroDivisionError"


def test_wait_for_output(rc):
    ar = rc[2].apply_async(cpar.interactive(
        lambda: [__import__("IPython").display.display(i) for i in range(3)] and None))
    assert ar.wait_for_output(30) is True
    assert [o["data"] for o in ar.outputs] == [{"text/plain": str(i)} for i in range(3)]
    running = rc[1].execute("import time\nwhile True: time.sleep(0.05)")
    try:
        assert running.wait_for_output(0) is False
    finally:
        running.abort()
    assert running.wait_for_output(-1) is True


def test_published_data_is_merged_per_engine(rc):
    code = ("from cpar.datapub import publish_data\n"
            "for i in range(4):\n"
            "    publish_data({'i': i, 'sq%d' % i: i * i})\n")
    ar = rc[[0, 1]].execute(code)
    assert all(isinstance(d, dict) for d in ar.data)
    ar.get(30)
    expected = {"i": 3, "sq0": 0, "sq1": 1, "sq2": 4, "sq3": 9}
    assert ar.data == [expected, expected]
    assert ar.metadata[0]["data"] == expected
    single = rc[2].execute(code, block=True)
    assert single.data == expected
    assert single.get().data == {}  # an ExecuteReply's data is its Out[n] bundle
    assert single.get()["data"] == expected  # the published data is in its metadata


def test_published_data_from_apply_and_tasks(rc):
    def work(n):
        from cpar.datapub import publish_data

        publish_data({"n": n, "arr": list(range(n))})
        return n

    ar = rc[3].apply_async(work, 3)
    assert ar.get(30) == 3 and ar.data == {"n": 3, "arr": [0, 1, 2]}
    lar = rc.load_balanced_view().apply_async(work, 2)
    assert lar.get(30) == 2 and lar.data == {"n": 2, "arr": [0, 1]}


def test_published_data_arrives_while_the_task_runs(rc):
    flag = os.path.join(tempfile.mkdtemp(prefix="cpar-datapub-"), "go")
    ar = rc[0].execute(
        "import os, time\nfrom cpar.datapub import publish_data\n"
        "publish_data({'stage': 'started'})\n"
        f"while not os.path.exists({flag!r}): time.sleep(0.02)\n"
        "publish_data({'stage': 'finished'})\n")
    try:
        deadline = time.monotonic() + 30
        while ar.data.get("stage") != "started" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ar.data == {"stage": "started"} and not ar.done()
    finally:
        open(flag, "w").close()
    ar.get(30)
    assert ar.data == {"stage": "finished"}
    os.unlink(flag)
    os.rmdir(os.path.dirname(flag))


def test_publish_data_bad_input(rc):
    with pytest.raises(cpar.RemoteError) as info:
        rc[1].execute("from cpar.datapub import publish_data\npublish_data([1, 2])",
                      block=True)
    assert info.value.ename == "TypeError" and "needs a dict, not list" in info.value.evalue
    with pytest.raises(cpar.RemoteError) as info:
        rc[1].execute("from cpar.datapub import publish_data\n"
                      "import threading\npublish_data({'lock': threading.Lock()})",
                      block=True)
    assert info.value.ename == "TypeError" and "cannot be pickled" in info.value.evalue
    from cpar.datapub import publish_data

    with pytest.raises(RuntimeError, match="only works in code running on a cpar engine"):
        publish_data({"x": 1})


def test_published_data_past_max_output_is_dropped(rc):
    rc.max_output = 10_000
    ar = rc[2].execute("from cpar.datapub import publish_data\n"
                       "publish_data({'small': 1})\n"
                       "publish_data({'big': 'x' * 100_000})\n"
                       "publish_data({'after': 2})\n", block=True)
    assert ar.data == {"small": 1, "after": 2}
    assert ar.output_dropped > 100_000
    assert "max_output of 10000 bytes" in ar.stderr


def test_display_outputs_of_a_single_engine_has_no_headers(rc, capsys):
    ar = rc[3].execute("import sys\nprint('out')\nprint('err', file=sys.stderr)",
                       block=True)
    ar.display_outputs()
    got = capsys.readouterr()
    assert got.out == "out\n" and got.err == "err\n"
    ar = rc[3].execute("a_single = 5", block=True)
    ar.display_outputs()
    got = capsys.readouterr()
    assert got.out == "" and got.err == ""
    ar = rc[[3]].execute("print('out')", block=True)  # a list of one: per engine
    ar.display_outputs()
    assert capsys.readouterr().out == "[stdout:3] out\n"


# -- the wire form (the fake controller of test_engine.py) ---------------------------------

from test_engine import ctl, engine, spawn  # noqa: E402,F401 - its fixtures


def test_execute_options_frame_on_the_wire(ctl, engine):  # noqa: F811
    from test_engine import EXECUTE

    # no options frame (an older client): not silent, the count grows
    assert ctl.result(ctl.execute("1")) == {"execution_count": 1}
    assert ctl.result(ctl.request(EXECUTE, [b"2", b'{"silent": false}'])) == \
        {"execution_count": 2}
    # silent: the count stays, unknown keys are ignored
    assert ctl.result(ctl.request(EXECUTE, [b"3", b'{"silent": true, "x": 1}'])) == \
        {"execution_count": 2}
    assert ctl.result(ctl.request(EXECUTE, [b"4", b""])) == {"execution_count": 3}
    for bad in (b"not json", b"[1, 2]"):
        err = ctl.error(ctl.request(EXECUTE, [b"5", bad]))
        assert err["ename"] == "ValueError" and "execute options" in err["evalue"]
    # the engine lives on
    assert ctl.result(ctl.execute("6")) == {"execution_count": 4}
