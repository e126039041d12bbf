"""cpar.View: the base of DirectView, BroadcastView and LoadBalancedView (flags, history,
the apply and map variants), on the session cluster."""

import pytest

import cpar
from cpar.client.viewbase import View


def _views(rc):
    return [rc[:], rc.broadcast_view(), rc.load_balanced_view()]


def test_exported_and_every_view_is_one(rc):
    assert cpar.View is View and cpar.client.View is View
    assert "View" in cpar.__all__ and "View" in dir(cpar.client)
    for v in _views(rc):
        assert isinstance(v, cpar.View)
    assert isinstance(rc.broadcast_view(), cpar.DirectView)
    assert not isinstance(rc.load_balanced_view(), cpar.DirectView)


def test_apply_and_map_variants_and_history(rc):
    for v in _views(rc):
        n = len(rc.ids) if isinstance(v, cpar.DirectView) else 1
        v.block = False
        ar = v.apply(lambda: 3)
        assert isinstance(ar, cpar.AsyncResult)
        one = ar.get(timeout=30)
        assert (one if n == 1 else one[0]) == 3
        out = v.apply_sync(lambda x: x + 1, 1)
        assert out == (2 if n == 1 else [2] * n)
        assert v.apply_async(lambda: 5).get(timeout=30) in (5, [5] * n)
        assert v.map_sync(lambda x: x * 2, range(6)) == [0, 2, 4, 6, 8, 10]
        amr = v.map_async(lambda x: -x, range(3))
        assert amr.get(timeout=30) == [0, -1, -2]
        assert set(amr.msg_ids) <= set(v.history)
        assert v.history[-len(amr.msg_ids):] == list(amr.msg_ids)
        assert v.wait(timeout=30)


def test_flags_are_checked_before_any_is_set(rc):
    for v in _views(rc):
        before = v.block
        with pytest.raises(KeyError, match="Invalid name: 'nosuch'"):
            v.set_flags(block=not before, nosuch=1)
        assert v.block == before
        with pytest.raises(KeyError):
            with v.temp_flags(block=not before, nosuch=1):
                pass
        assert v.block == before
        with v.temp_flags(block=not before) as same:
            assert same is v and v.block == (not before)
        assert v.block == before


def test_each_view_keeps_its_own_flags(rc):
    lv = rc.load_balanced_view()
    with lv.temp_flags(retries=2, timeout=5):
        assert (lv.retries, lv.timeout) == (2, 5)
    assert (lv.retries, lv.timeout) == (0, None)
    bv = rc.broadcast_view()
    bv.set_flags(is_coalescing=1)
    assert bv.is_coalescing is True
    with pytest.raises(KeyError):
        rc[:].set_flags(is_coalescing=True)
    with pytest.raises(KeyError):
        rc[:].set_flags(retries=1)
