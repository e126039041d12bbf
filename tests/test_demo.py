"""`make demo`'s script: seed 000's Julia set, serial and on a cluster, must agree."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_julia_demo_runs_and_agrees():
    env = dict(os.environ, CPAR_DEMO_GRID="256", CPAR_DEMO_ENGINES="2")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "julia_demo.py")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "results equal: True" in out.stdout
    assert "serial numpy:" in out.stdout and "cpar on 2 engines:" in out.stdout
    assert "cluster stopped" in out.stdout
