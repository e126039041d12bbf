"""Clock steps: the wall clock jumping back or forward under a running controller, engines
and client changes nothing but the timestamps a user sees (liveness, heartbeats and
shared-memory pin expiry run on the monotonic clock).

The wall clock is stepped with tests/support/clockshift.c, an LD_PRELOAD shim that adds an
offset (read from a shared file the test writes) to CLOCK_REALTIME in every process."""

import os
import struct
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import cpar

HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import cpar

    rc = cpar.Client(sys.argv[1])
    rc.wait_for_engines(int(sys.argv[2]), timeout=30)
    dv = rc[:]
    dv.block = True
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        a = np.arange(250_000, dtype=np.float64) * len(line)  # 2 MB: the shared-memory path
        dv.push({"a": a})
        back = dv.pull("a")
        assert all(np.array_equal(b, a) for b in back)
        sums = dv.apply_sync(lambda: float(a.sum()))
        assert sums == [float(a.sum())] * len(rc.ids), sums
        lb = rc.load_balanced_view().map_sync(lambda x: x * x, range(50))
        assert lb == [x * x for x in range(50)]
        print("ok", len(rc.ids), flush=True)
    rc.close()
    """
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    d = tmp_path_factory.mktemp("clockshift")
    so = d / "clockshift.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(so),
                    os.path.join(HERE, "support", "clockshift.c"), "-ldl"], check=True)
    return so


def _set_shift(path, seconds):
    with open(path, "r+b") as f:
        f.write(struct.pack("<q", int(seconds * 1e9)))
        f.flush()


def _ask(client, what="run"):
    client.stdin.write(what + "\n")
    client.stdin.flush()
    line = client.stdout.readline()
    assert line.startswith("ok"), f"client answered {line!r}; stderr: {client.stderr.read()}"
    return int(line.split()[1])


def test_wall_clock_steps_back_and_forward(shim, tmp_path, monkeypatch):
    shift = tmp_path / "shift"
    shift.write_bytes(struct.pack("<q", 0))
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("CLOCKSHIFT_FILE", str(shift))
    c = cpar.Cluster(n=2, cluster_id="clock-" + uuid.uuid4().hex[:8])
    c.start_cluster_sync()
    client = None
    try:
        pids = list(c.engines.pids)
        assert len(pids) == 2
        client = subprocess.Popen([sys.executable, "-c", CLIENT, c.connection_file, "2"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "ready"
        # The shim really moves the wall clock of the processes it is loaded into.
        probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                               capture_output=True, text=True, check=True)
        assert abs(float(probe.stdout) - time.time()) < 5
        assert _ask(client) == 2
        # Steps: back a little, forward past every liveness timeout (engine 30 s, pins
        # 120 s), back by an hour. After each, wait several heartbeat periods and the
        # controller's engine timeout, then everything still works with both engines.
        for step in (-5, 600, -3600):
            _set_shift(shift, step)
            probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                                   capture_output=True, text=True, check=True)
            assert abs(float(probe.stdout) - (time.time() + step)) < 5, "shim not active"
            time.sleep(4.0)  # > hb_timeout_ms (3 s): a silent engine would be dropped
            assert _ask(client) == 2, f"an engine was lost after a {step:+d} s clock step"
            for pid in pids:
                os.kill(pid, 0)  # the engine process is alive (raises if it is gone)
        assert c.controller.running
    finally:
        if client is not None:
            if client.poll() is None:
                client.stdin.close()
                try:
                    client.wait(30)
                except subprocess.TimeoutExpired:
                    client.kill()
                    client.wait()
        c.stop_cluster_sync()
    assert not c.engines.running
