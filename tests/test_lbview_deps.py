"""LoadBalancedView dependencies against real clusters: after, follow, Dependency,
success/failure-only, @require, @depend, timeouts and retries."""

import os
import subprocess
import sys
import textwrap

import pytest

import cpar
from cpar import Dependency, depend, error, require

from lbkit import (completed, engine_id, fail, fail_first_time, sleep_then,
                   started, wait_file_then)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------
# graph dependencies


def test_after_chain(lview):
    a = lview.apply_async(sleep_then, 0.5, "A")
    with lview.temp_flags(after=a):
        b = lview.apply_async(sleep_then, 0.05, "B")
    with lview.temp_flags(after=[b.msg_id]):  # a hex msg id
        c = lview.apply_async(sleep_then, 0.0, "C")
    assert [x.get(30) for x in (a, b, c)] == ["A", "B", "C"]
    assert started(b) >= completed(a)
    assert started(c) >= completed(b)


def test_seed_002_after_two(lview):
    # seed 002: "require tasks B and C to finish before task A starts"
    arB = lview.apply_async(sleep_then, 0.4, "B")
    arC = lview.apply_async(sleep_then, 0.2, "C")
    with lview.temp_flags(after=[arB, arC]):
        arA = lview.apply_async(lambda: "A")
    assert arA.get(30) == "A"
    assert started(arA) >= completed(arB)
    assert started(arA) >= completed(arC)


def test_diamond(lview):
    a = lview.apply_async(sleep_then, 0.2, 1)
    with lview.temp_flags(after=a):
        b = lview.apply_async(sleep_then, 0.3, 2)
        c = lview.apply_async(sleep_then, 0.1, 3)
    with lview.temp_flags(after=Dependency([b, c])):
        d = lview.apply_async(lambda: 4)
    assert [x.get(30) for x in (a, b, c, d)] == [1, 2, 3, 4]
    assert started(b) >= completed(a) and started(c) >= completed(a)
    assert started(d) >= max(completed(b), completed(c))


def test_dependency_any(lview, tmp_path):
    release = str(tmp_path / "release-slow")
    slow = lview.apply_async(wait_file_then, release, "slow")  # ends when the test says
    fast = lview.apply_async(sleep_then, 0.1, "fast")
    with lview.temp_flags(after=Dependency([slow, fast], all=False)):
        either = lview.apply_async(lambda: "either")
    assert either.get(30) == "either"
    assert not slow.ready()  # `either` did not wait for it
    open(release, "w").close()
    assert slow.get(30) == "slow"
    assert started(either) >= completed(fast)
    assert started(either) < completed(slow)


def test_dependency_object():
    d = Dependency(["aa" * 16, b"\x01" * 16], all=False, success=False, failure=True)
    assert len(d) == 2 and "aa" * 16 in d and ("01" * 16) in d
    assert d.as_dict() == {"dependencies": sorted(d), "all": False, "success": False,
                           "failure": True}
    assert d.flags == 4
    assert Dependency(d).failure is True
    assert d.check(completed=[], failed=["aa" * 16])
    assert not d.check(completed=["aa" * 16], failed=[])
    with pytest.raises(ValueError):
        Dependency([], success=False, failure=False)
    with pytest.raises(TypeError):
        Dependency([3.5])


def test_success_only_after_failure_is_impossible(lview):
    bad = lview.apply_async(fail)
    with lview.temp_flags(after=bad):
        nxt = lview.apply_async(lambda: "never")
    with pytest.raises(error.ImpossibleDependency):
        nxt.get(30)


def test_failure_only(lview):
    bad = lview.apply_async(fail)
    good = lview.apply_async(lambda: "fine")
    only_failed = Dependency([bad], success=False, failure=True)
    with lview.temp_flags(after=only_failed):
        cleanup = lview.apply_async(lambda: "cleaned")
    assert cleanup.get(30) == "cleaned"
    with lview.temp_flags(after=Dependency([good], success=False, failure=True)):
        never = lview.apply_async(lambda: "never")
    with pytest.raises(error.ImpossibleDependency):
        never.get(30)
    # both flags: runs whatever happened
    with lview.temp_flags(after=Dependency([bad, good], success=True, failure=True)):
        assert lview.apply_async(lambda: "any").get(30) == "any"


def test_follow(lview):
    first = lview.apply_async(engine_id)
    where = first.get(30)
    with lview.temp_flags(follow=first):
        followers = [lview.apply_async(engine_id) for _ in range(6)]
    assert [f.get(30) for f in followers] == [where] * 6
    # follow + after: the same engine, after it ended
    with lview.temp_flags(follow=first, after=followers[-1]):
        assert lview.apply_sync(engine_id) == where


def test_timeout_on_dependency(lview, tmp_path):
    release = str(tmp_path / "release-long")
    long = lview.apply_async(wait_file_then, release, "long")  # ends when the test says
    with lview.temp_flags(after=long, timeout=0.5):
        waiting = lview.apply_async(lambda: "late")
    with pytest.raises(error.DependencyTimeout):
        waiting.get(30)
    # the timeout ended it, not its dependency: that one is still running
    assert not long.ready()
    open(release, "w").close()
    assert long.get(30) == "long"


# ---------------------------------------------------------------------------------------
# retries, functional dependencies


def test_retries(lview, tmp_path):
    with lview.temp_flags(retries=1):
        ar = lview.apply_async(fail_first_time, str(tmp_path / "a"))
        failed_on, ran_on = ar.get(30)
    assert ran_on == ar.engine_id and ran_on != failed_on
    with pytest.raises(error.RemoteError) as info:
        lview.apply_sync(fail_first_time, str(tmp_path / "b"))
    assert info.value.ename == "RuntimeError"
    # a map: each task fails on its first engine and is retried on another
    markers = [str(tmp_path / f"m{i}") for i in range(6)]
    with lview.temp_flags(retries=1):
        out = lview.map_sync(fail_first_time, markers)
    assert all(first != then for first, then in out)
    # retries are bounded: a task failing everywhere ends with its last error
    with lview.temp_flags(retries=2):
        ar = lview.apply_async(fail, "always")
        with pytest.raises(error.RemoteError):
            ar.get(30)


def test_require(lview):
    @require("no_such_module_xyz")
    def needs_missing(x):
        return x

    # Every engine refuses it (the task needs no timeout to end): the error says so.
    with pytest.raises(error.ImpossibleDependency,
                       match=rf"requirements .*: {len(lview.client.ids)} engine\(s\) tried"):
        lview.apply_async(needs_missing, 1).get(30)

    @require(__import__("math"), "json.decoder")  # a module counts as its name
    def uses_math(x):
        return math.sqrt(x), json.decoder.__name__  # noqa: F821 - bound by @require

    assert lview.apply_sync(uses_math, 16) == (4.0, "json.decoder")

    @cpar.interactive
    def helper_fn(x):
        return x + 100

    @require(helper_fn, offset=7)
    def uses_helper(x):
        return helper_fn(x) + offset  # noqa: F821 - pushed by @require

    assert lview.apply_sync(uses_helper, 1) == 108
    assert lview.map_sync(uses_math, [1, 4]) == [(1.0, "json.decoder"), (2.0, "json.decoder")]


def test_depend(rc, lview):
    @depend(lambda: True)
    def yes():
        return "yes"

    assert lview.apply_sync(yes) == "yes"

    @depend(lambda: False)
    def no():
        return "no"

    with pytest.raises(error.ImpossibleDependency):
        lview.apply_sync(no)

    def on_engine(eid):
        import cpar.engine.runtime as rt

        return rt.engine_id == eid

    target = rc.ids[-1]

    @depend(on_engine, target)
    def where():
        import cpar.engine.runtime as rt

        return rt.engine_id

    assert {lview.apply_sync(where) for _ in range(4)} == {target}

    @depend(lambda: 1 // 0)
    def broken_check():
        return 1

    with pytest.raises(error.RemoteError) as info:  # the check's own error
        lview.apply_sync(broken_check)
    assert info.value.ename == "ZeroDivisionError"


def test_require_in_main_script(cluster):
    """A @require/@depend-wrapped function of a script's __main__ travels by code."""
    code = textwrap.dedent(f"""
        import cpar
        rc = cpar.Client({cluster.connection_file!r})
        rc.wait_for_engines(1, timeout=30)
        lv = rc.load_balanced_view()
        scale = 3

        def small(x):
            return x < 10

        @cpar.require("math")
        @cpar.depend(small, 5)
        def f(x):
            return math.floor(x * 2.5)

        print(lv.apply_sync(f, 4), lv.map_sync(f, [1, 2]))
        rc.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10", "[2,", "5]"]
