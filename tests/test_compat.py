"""ipyparallel compatibility (issue 14): behaviour an ipyparallel user relies on, on the
session cluster (real controller and engines)."""

import pytest

from cpar import interactive


@interactive
def _kw(**kw):
    return kw


# -- apply: a keyword argument named like apply's own parameter -----------------------


@pytest.mark.parametrize("kind", ["direct", "balanced"])
def test_apply_kwarg_named_f(rc, kind):
    view = rc[rc.ids[0]] if kind == "direct" else rc.load_balanced_view()
    assert view.apply_sync(lambda **kw: kw, f=5) == {"f": 5}
    assert view.apply_async(_kw, f=6, self=7).get(timeout=30) == {"f": 6, "self": 7}
    view.block = True
    assert view.apply(_kw, f=8) == {"f": 8}


# -- view['a.b']: attributes of engine objects ----------------------------------------


def test_nested_setitem_getitem(dview):
    dview.execute("import types; ns_obj = types.SimpleNamespace(inner=types.SimpleNamespace())")
    dview["ns_obj.b"] = 5
    dview["ns_obj.inner.c"] = "x"
    assert dview["ns_obj.b"] == [5] * len(dview)
    assert dview.apply_sync(lambda: (ns_obj.b, ns_obj.inner.c)) == [(5, "x")] * len(dview)
    # no variable literally named "ns_obj.b" was made
    assert dview.apply_sync(lambda: "ns_obj.b" in globals()) == [False] * len(dview)
    with pytest.raises(Exception, match="missing_obj"):
        dview["missing_obj.b"] = 1


# -- negative targets, resolved when the view is made ---------------------------------


def test_negative_targets_resolved(rc):
    last = rc.ids[-1]
    assert rc.direct_view(-1).targets == last
    assert rc[-1].targets == last
    assert rc[-2:].targets == rc.ids[-2:]
    assert rc.direct_view([0, -1]).targets == [rc.ids[0], last]
    assert rc.direct_view("all").targets == "all"
    assert rc.load_balanced_view(-1).targets == [last]
    assert rc.load_balanced_view([-1, -2]).targets == [last, rc.ids[-2]]
    assert rc.load_balanced_view(None).targets is None
    lv = rc.load_balanced_view()
    lv.targets = -1
    assert lv.targets == [last]
    assert lv.apply_sync(lambda: __import__("cpar.engine").engine.__name__) == "cpar.engine"
    assert rc.activate(-1).targets == last
    v = rc.activate(-1, suffix="_last")
    assert rc.active_views["_last"] is v and v.targets == last
    assert rc[-1].apply_sync(lambda: 7) == 7


def test_client_getitem_none_is_type_error(rc):
    with pytest.raises(TypeError):
        rc[None]
    with pytest.raises(TypeError):
        rc["0"]
