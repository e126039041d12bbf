"""Our replacement for the ipyparallel wheel's ``ipyparallel/tests/__init__.py``.

Same names (setup, teardown, add_engines, launchers), but they start and stop a cpar
cluster (profile ``iptest``, in the harness's private $CPAR_DIR) instead of ipcontroller
and ipengine. Every other module of this package (test_*.py, clienttest.py, conftest.py)
is the wheel's, found through ``__path__``.
"""

import os
import time

from .._alias import wheel_dir

__path__.append(os.path.join(wheel_dir(), "tests"))  # noqa: F821 - package __path__

PROFILE = "iptest"
START_TIMEOUT = 30.0

# What clienttest.py reads: objects with poll() for the engines we started.
launchers = []
_cluster = None


class _EngineProcess:
    """One engine process of the cpar cluster, as the suite's launchers are used."""

    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        """None while running; -1 once it exited (we never reap: the launcher does)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return -1
        return -1 if state in ("Z", "X") else None


def _engine_pids():
    pids = []
    if _cluster is not None and _cluster.engines is not None:
        for la in _cluster.engines.launchers:
            pids.extend(getattr(la, "pids", ()))
    return pids


def setup():
    """Starts the controller and one engine (the suite's module-scoped fixture)."""
    global _cluster
    import cpar

    if _cluster is not None:
        return
    c = cpar.Cluster(n=1, profile=PROFILE, cluster_id="", start_timeout=START_TIMEOUT)
    c.start_cluster_sync()
    _cluster = c
    launchers.extend(_EngineProcess(p) for p in _engine_pids())


def add_engines(n=1, profile=PROFILE, total=False):
    """Starts ``n`` more engines (with ``total``: up to ``n`` engines in all) and waits
    until they are registered; returns their process handles."""
    import cpar

    if _cluster is None:
        setup()
    rc = cpar.Client(profile=profile)
    try:
        base = len(rc.ids)
    finally:
        rc.close()
    if total:
        n = max(n - base, 0)
    if n == 0:
        return []
    before = set(_engine_pids())
    _cluster.start_engines_sync(n)
    new = [_EngineProcess(p) for p in _engine_pids() if p not in before]
    launchers.extend(new)
    # Not Cluster.wait_for_engines: it fails on any exited engine, and the suite's crash
    # tests leave some behind on purpose.
    rc = cpar.Client(profile=profile)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(rc.ids) < base + n:
            if any(e.poll() is not None for e in new):
                raise RuntimeError("A test engine failed to start.")
            if time.monotonic() > deadline:
                raise RuntimeError("Timeout waiting for engines to connect.")
            time.sleep(0.05)
    finally:
        rc.close()
    return new


def teardown():
    """Stops the cluster (controller and every engine) and checks nothing is left."""
    global _cluster
    c, _cluster = _cluster, None
    launchers.clear()
    if c is None:
        return
    c.stop_cluster_sync()
    deadline = time.monotonic() + 10
    while (c.engines.running or c.controller.running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not c.engines.running, "engines left running after stop"
    assert not c.controller.running, "controller left running after stop"
