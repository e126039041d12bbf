"""DirectView, item by item: data movement, code, functions, flags (real 4-engine cluster)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpar
from cpar import error
from cpar.client import AsyncResult

pytestmark = pytest.mark.timeout(120)

ia = cpar.interactive


# -- data ---------------------------------------------------------------------------------


def test_push_pull_forms(dview):
    assert dview.push({"x": 1, "y": "two"}) == [None] * 4
    assert dview.pull("x") == [1] * 4
    assert dview.pull(("x", "y")) == [[1, "two"]] * 4
    assert dview.pull(["y", "x"]) == [["two", 1]] * 4
    assert dview.pull("x", targets=2) == 1  # one int target: the bare value
    assert dview.pull("x", targets=[2]) == [1]
    assert dview.pull(("x", "y"), targets=1) == [1, "two"]
    dview.push({"x": 7}, targets=[0, 3])
    assert dview.pull("x") == [7, 1, 1, 7]
    with pytest.raises(TypeError):
        dview.push([("x", 1)])
    with pytest.raises(TypeError):
        dview.pull(42)


def test_item_access_update_and_get(dview):
    dview["k"] = {"nested": [1, 2]}
    assert dview["k"] == [{"nested": [1, 2]}] * 4
    dview.update({"u": 5, "v": 6})
    assert dview.get("u") == [5] * 4
    assert dview.get(("u", "v")) == [[5, 6]] * 4
    dview.execute("import os")
    assert dview["os.sep"] == [os.sep] * 4  # dotted names are looked up
    assert dview["len"] == [len] * 4  # builtins too
    with pytest.raises(error.CompositeError) as info:
        dview["no_such_name_here"]
    assert {e.ename for e in info.value.elist} == {"NameError"}
    with pytest.raises(TypeError):
        dview[0]


def test_update_and_push_follow_block(rc):
    v = rc[:]
    v.block = False
    ar = v.update({"q": 1})
    assert isinstance(ar, AsyncResult)
    ar.get(30)
    ar = v.pull("q")
    assert isinstance(ar, AsyncResult) and ar.get(30) == [1] * 4
    assert v.get("q") == [1] * 4  # get always blocks


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 10, 17])
def test_scatter_splits_like_array_split(dview, n):
    seq = list(range(n))
    dview.scatter("part", seq)
    parts = dview["part"]
    assert parts == [p.tolist() for p in np.array_split(np.arange(n), 4)]
    assert dview.gather("part") == seq


def test_scatter_gather_kinds(dview):
    dview.scatter("t", tuple("abcdefg"))
    assert dview["t"] == [("a", "b"), ("c", "d"), ("e", "f"), ("g",)]
    assert dview.gather("t") == list("abcdefg")

    dview.scatter("r", range(10))
    assert [list(p) for p in dview["r"]] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert dview.gather("r") == list(range(10))

    a = np.arange(30.0).reshape(10, 3)
    dview.scatter("arr", a)
    parts = dview["arr"]
    for got, want in zip(parts, np.array_split(a, 4)):
        assert np.array_equal(got, want) and got.flags.writeable
    back = dview.gather("arr")
    assert isinstance(back, np.ndarray) and np.array_equal(back, a)

    # scatter to some targets, gather from them
    dview.scatter("s", list(range(5)), targets=[1, 3])
    assert dview.pull("s", targets=[1, 3]) == [[0, 1, 2], [3, 4]]
    assert dview.gather("s", targets=[1, 3]) == [0, 1, 2, 3, 4]


def test_scatter_flatten(dview):
    dview.scatter("one", [10, 20, 30, 40], flatten=True)
    assert dview["one"] == [10, 20, 30, 40]
    assert dview.gather("one") == [10, 20, 30, 40]
    dview.scatter("one", [10, 20, 30, 40])
    assert dview["one"] == [[10], [20], [30], [40]]
    dview.scatter("mixed", [1, 2, 3, 4, 5], flatten=True)
    assert dview["mixed"] == [[1, 2], 3, 4, 5]


def test_scatter_gather_nonblocking(rc):
    v = rc[:]
    v.block = False
    ar = v.scatter("nb", np.arange(8))
    assert isinstance(ar, AsyncResult)
    assert ar.get(30) is None
    g = v.gather("nb")
    assert isinstance(g, AsyncResult)
    assert np.array_equal(g.get(30), np.arange(8))


def test_large_push_does_not_copy_in_the_client(cluster):
    """Pushing a 256 MiB array (to one engine, then to all) must not raise the client's
    peak RSS by more than a small fraction of the array: the buffer is sent in place."""
    code = textwrap.dedent(f"""
        import resource, numpy as np, cpar
        def peak_mib():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with cpar.Client({cluster.connection_file!r}) as rc:
            rc.wait_for_engines(4, timeout=30)
            a = np.ones(256 * 2**20 // 8)
            base = peak_mib()
            rc[0].push({{"big": a}}, block=True)
            rc[:].push({{"big": a}}, block=True)
            print("DELTA", peak_mib() - base)
            print("SUM", rc[3].apply_sync(cpar.interactive(lambda: float(big.sum()))))
            rc[:].execute("del big", block=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    values = dict(line.split() for line in out.stdout.splitlines())
    assert float(values["SUM"]) == 256 * 2**20 // 8
    assert float(values["DELTA"]) < 64, out.stdout


# -- code ---------------------------------------------------------------------------------


def test_execute_and_run(dview, tmp_path):
    ar = dview.execute("ex = 3 * 7")
    assert isinstance(ar, AsyncResult) and ar.ready()
    assert dview["ex"] == [21] * 4
    ar = dview.execute("ey = 1", block=False)
    assert isinstance(ar, AsyncResult)
    ar.get(30)
    dview.execute("ez = 2", targets=[0])
    assert dview.pull("ez", targets=0) == 2
    script = tmp_path / "s.py"
    script.write_text("def from_script(x):\n    return x + 100\nrun_value = from_script(1)\n")
    dview.run(script)
    assert dview["run_value"] == [101] * 4
    with pytest.raises(error.CompositeError) as info:
        dview.execute("1/0")
    assert len(info.value.elist) == 4
    assert all(e.ename == "ZeroDivisionError" for e in info.value.elist)
    with pytest.raises(error.RemoteError) as info:
        dview.execute("raise ValueError('bad')", targets=2)
    assert info.value.ename == "ValueError" and info.value.engine_id == 2


def test_sync_imports_forms(dview, capsys):
    with dview.sync_imports():
        import json  # noqa: F401
        import os.path as osp  # noqa: F401
        import xml.etree.ElementTree as ET  # noqa: F401
        from math import sqrt as root, floor  # noqa: F401
        import email.mime  # noqa: F401
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "importing json on engine(s)",
        "importing os.path on engine(s)",
        "importing xml.etree.ElementTree on engine(s)",
        "importing sqrt,floor from math on engine(s)",
        "importing email.mime on engine(s)",
    ]
    got = dview.apply_sync(ia(lambda: (json.__name__, osp.__name__, ET.__name__,  # noqa: F821
                                       root(16.0), floor(2.5), email.mime.__name__)))  # noqa: F821
    assert got == [("json", "posixpath", "xml.etree.ElementTree", 4.0, 2, "email.mime")] * 4
    assert root(9.0) == 3.0  # bound locally too

    with dview.sync_imports(quiet=True):
        import string  # noqa: F401
    assert capsys.readouterr().out == ""
    assert dview["string.digits"] == ["0123456789"] * 4


def test_sync_imports_local_false_and_errors(dview, capsys):
    assert "tabnanny" not in sys.modules
    with dview.sync_imports(local=False):
        import tabnanny  # noqa: F401
        import html.parser as hp  # noqa: F401
    assert "tabnanny" not in sys.modules  # not imported here
    assert dview["tabnanny.__name__"] == ["tabnanny"] * 4
    assert dview["hp.__name__"] == ["html.parser"] * 4
    with pytest.raises(error.CompositeError):
        with dview.sync_imports(local=False):
            import no_such_module_cpar  # noqa: F401


# -- functions ----------------------------------------------------------------------------


def test_apply_variants(rc):
    v = rc[:]
    v.block = False
    ar = v.apply(pow, 2, 5)
    assert isinstance(ar, AsyncResult) and ar.get(30) == [32] * 4
    assert v.apply_sync(pow, 2, 6) == [64] * 4
    ar = v.apply_async(divmod, 7, 2)
    assert ar.get(30) == [(3, 1)] * 4
    assert v.apply_sync(ia(lambda *a, **k: (a, k)), 1, 2, z=3) == [((1, 2), {"z": 3})] * 4
    assert rc[1].apply_sync(ia(lambda: 5)) == 5


def test_interactive_decorator(dview):
    dview["base"] = 100

    @cpar.interactive
    def add_base(x):
        return base + x  # noqa: F821

    assert dview.apply_sync(add_base, 1) == [101] * 4


@pytest.mark.parametrize("n", [0, 1, 3, 32])
def test_map_equals_builtin(dview, n):
    seq = list(range(n))
    f = ia(lambda x: x * 3 - 1)
    assert dview.map(f, seq) == list(map(f, seq))
    assert dview.map_sync(f, seq) == list(map(f, seq))
    ar = dview.map_async(f, seq)
    assert isinstance(ar, AsyncResult) and ar.get(30) == list(map(f, seq))


def test_map_several_iterables_and_arrays(dview):
    a = np.arange(11)
    b = np.linspace(0, 1, 11)
    g = ia(lambda x, y: x * y)
    assert dview.map_sync(g, a, b) == list(map(g, a, b))
    assert dview.map_sync(g, range(10), [2] * 7) == list(map(g, range(10), [2] * 7))
    assert dview.map_sync(ia(lambda x, y, z: x + y + z), "abc", "def", "ghi") == [
        "adg", "beh", "cfi"]
    rows = np.arange(12).reshape(6, 2)
    assert dview.map_sync(ia(lambda r: int(r.sum())), rows) == [int(r.sum()) for r in rows]
    gen = (i * i for i in range(9))
    assert dview.map_sync(ia(lambda x: -x), gen) == [-(i * i) for i in range(9)]
    with pytest.raises(TypeError):
        dview.map_sync(abs)


def test_map_errors(dview):
    with pytest.raises(error.RemoteError) as info:
        dview.map_sync(ia(lambda x: 1 // (x - 5)), range(8))
    assert "ZeroDivisionError" in str(info.value)


def test_imap(dview):
    it = dview.imap(ia(lambda x: x + 1), range(13))
    assert not isinstance(it, list)
    assert list(it) == list(range(1, 14))


def test_remote_decorator(rc):
    v = rc[[0, 1]]

    @v.remote(block=True)
    @ia
    def ident(x):
        return x

    assert ident(3) == [3, 3]

    @v.remote(block=False)
    @ia
    def ident2(x):
        return x

    ar = ident2(4)
    assert isinstance(ar, AsyncResult) and ar.get(30) == [4, 4]
    assert ident.__name__ == "ident"


def test_parallel_decorator(dview):
    @dview.parallel(block=True)
    @ia
    def square_all(xs):
        return [x * x for x in xs]

    assert square_all(list(range(10))) == [x * x for x in range(10)]
    A = np.arange(40.0).reshape(20, 2)

    @dview.parallel(block=True)
    @ia
    def scale(M):
        return M * 2

    assert np.array_equal(scale(A), A * 2)

    @dview.parallel(block=True)
    @ia
    def add(x, y):
        return x + y

    assert add.map(range(5), range(5)) == [0, 2, 4, 6, 8]

    @dview.parallel(block=False)
    @ia
    def neg(xs):
        return [-x for x in xs]

    ar = neg(range(6))
    assert isinstance(ar, AsyncResult) and ar.get(30) == [0, -1, -2, -3, -4, -5]


# -- flags --------------------------------------------------------------------------------


def test_targets_forms(rc):
    ids = rc.ids
    assert rc[0].apply_sync(os.getpid) == rc[[0]].apply_sync(os.getpid)[0]
    assert len(rc[1:3].apply_sync(os.getpid)) == 2
    assert rc[1:3].targets == [1, 2]
    v = rc.direct_view("all")
    v.block = True
    assert v.targets == "all" and len(v.apply(os.getpid)) == len(ids)
    v.targets = [3, 1]
    assert v.apply(ia(lambda: 1)) == [1, 1]
    assert v.apply(os.getpid) == [rc[3].apply_sync(os.getpid), rc[1].apply_sync(os.getpid)]
    v.targets = 2
    assert v.apply(ia(lambda: 1)) == 1
    v.targets = "all"
    assert v.apply(ia(lambda: 1)) == [1] * len(ids)
    v.targets = [0, 999]
    with pytest.raises(error.NoSuchEngine):
        v.apply(ia(lambda: 1))


def test_set_flags_and_temp_flags(rc):
    v = rc[:]
    v.set_flags(block=True, targets=[0, 1])
    assert v.block is True and v.apply(ia(lambda: 2)) == [2, 2]
    with v.temp_flags(block=False, targets=3):
        ar = v.apply(ia(lambda: 3))
        assert isinstance(ar, AsyncResult) and ar.get(30) == 3
    assert v.block is True and v.targets == [0, 1]
    with pytest.raises(KeyError):
        v.set_flags(colour="red")
    with pytest.raises(RuntimeError):
        with v.temp_flags(targets=2):
            raise RuntimeError("inside")
    assert v.targets == [0, 1]


def test_client_block_is_the_default_of_new_views(rc):
    rc.block = True
    try:
        assert rc[:].block is True and rc.direct_view().block is True
        assert rc[0].apply(pow, 3, 3) == 27
    finally:
        rc.block = False
    assert rc[:].block is False


def test_use_cloudpickle_and_pickle(dview):
    import cloudpickle  # noqa: F401

    from cpar import serialize

    try:
        dview.use_cloudpickle()
        assert serialize._cloudpickle is not None
        assert dview.apply(ia(lambda: __import__("cpar").serialize._cloudpickle is not None)) \
            == [True] * 4
        k = 7
        assert dview.apply(lambda x: x + k, 1) == [8] * 4
        assert dview.map_sync(lambda x: x * k, [1, 2]) == [7, 14]
    finally:
        dview.use_pickle()
    assert serialize._cloudpickle is None
    assert dview.apply(ia(lambda: __import__("cpar").serialize._cloudpickle)) == [None] * 4


def test_activate_records_the_view(rc):
    v = rc[[0, 1]]
    v.activate()
    assert rc.active_views[""] is v
    w = rc[2]
    w.activate("_two")
    assert rc.active_views["_two"] is w
    x = rc.activate(targets=[3], suffix="_three")
    assert rc.active_views["_three"] is x and x.block is True and x.targets == [3]


def test_view_len_repr_and_wait(rc):
    v = rc[:]
    assert len(v) == 4 and repr(rc[[1, 2]]) == "<DirectView [1, 2]>"
    ars = [v.apply_async(pow, 2, i) for i in range(3)]
    assert v.wait(ars, timeout=30)
    assert [ar.get() for ar in ars] == [[1] * 4, [2] * 4, [4] * 4]
