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
