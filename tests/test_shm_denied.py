"""Shared memory where the kernel denies reading a peer (seccomp, Yama, another uid).

Engines (and, in one test, the client) run under tests/support/noptrace.py: a seccomp
filter that makes process_vm_readv of any other process fail with EPERM, while the
self-test still passes, so each side believes it may use shared memory. Probes must find
the denial per engine and direction, and every push, pull, scatter, gather and apply of
64 KiB to 100 MB must then go by socket with equal values, counted as fallbacks."""

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid

import pytest

import cpar

HERE = os.path.dirname(os.path.abspath(__file__))
NOPTRACE = os.path.join(HERE, "support", "noptrace.py")

WORK = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[3])
    if sys.argv[2] == "filtered":
        import noptrace
        noptrace.install()
    import numpy as np
    import cpar
    from cpar import _core

    rc = cpar.Client(sys.argv[1])
    rc.wait_for_engines(2, timeout=30)
    dv = rc[:]
    dv.block = True
    dv.execute("import numpy as np")
    checks = []
    for n in (64 * 1024 // 8, (1 << 20) // 8, 100 * 1000 * 1000 // 8):
        a = np.arange(n, dtype=np.float64)
        dv.push({"a": a})
        same = dv.apply(lambda x: bool(np.array_equal(a, x)), a)
        back = dv.pull("a")
        dv.scatter("part", a)
        parts = dv.gather("part")
        doubled = dv.apply(lambda: a * 2)
        checks.append(all(same) and all(np.array_equal(b, a) for b in back)
                      and np.array_equal(parts, a)
                      and all(np.array_equal(d, a * 2) for d in doubled))
        dv.execute("a = part = None")
    conn = rc._dispatcher.conn
    print(json.dumps({"ok": checks, "sent": conn.shm_sent, "received": conn.shm_received,
                      "failed": conn.shm_failed, "denied": conn.shm_denied,
                      "fallback": conn.shm_fallback, "enabled": conn.shm}))
    rc.close()
    """
)


@pytest.fixture(scope="module")
def denied_cluster(tmp_path_factory):
    """Two engines that may not read any other process."""
    d = tmp_path_factory.mktemp("noptrace")
    real = os.path.join(os.path.dirname(cpar.__file__), "bin", "cpar-engine")
    real = os.environ.get("CPAR_ENGINE", real)
    wrapper = d / "cpar-engine-noptrace"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{NOPTRACE}" "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    old = os.environ.get("CPAR_ENGINE")
    os.environ["CPAR_ENGINE"] = str(wrapper)
    try:
        c = cpar.Cluster(n=2, cluster_id="noptrace-" + uuid.uuid4().hex[:8])
        c.start_cluster_sync()
    finally:
        if old is None:
            del os.environ["CPAR_ENGINE"]
        else:
            os.environ["CPAR_ENGINE"] = old
    try:
        yield c
    finally:
        c.stop_cluster_sync()


def _work(cluster, mode):
    env = dict(os.environ, CPAR_SHM="1")
    proc = subprocess.run([sys.executable, "-c", WORK, cluster.connection_file, mode,
                           os.path.join(HERE, "support")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_engines_cannot_read_the_client(denied_cluster):
    """Requests go by socket (the engines' probes failed); replies still come by shared
    memory (the client may read the engines)."""
    out = _work(denied_cluster, "open")
    assert out["enabled"] == 1
    assert out["ok"] == [True, True, True], out
    assert out["sent"] == 0, out  # nothing was offered to an engine that cannot read it
    assert out["received"] > 0, out  # pulls and results came through shared memory
    assert out["denied"] == 2 and out["fallback"] > 0 and out["failed"] == 0, out


def test_neither_side_can_read_the_other(denied_cluster):
    out = _work(denied_cluster, "filtered")
    assert out["enabled"] == 1
    assert out["ok"] == [True, True, True], out
    assert out["sent"] == 0 and out["received"] == 0 and out["failed"] == 0, out
    assert out["denied"] == 4 and out["fallback"] > 0, out
