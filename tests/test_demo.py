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


def _run_example(name, *args):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", name), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_julia_example_four_ways_agree():
    out = _run_example("julia.py", "--size", "200", "--tmax", "64", "--engines", "2")
    assert "all results equal: True" in out
    for row in ("serial numpy", "serial cpar.kernels", "cpar, numpy on 2 engines",
                "cpar, cpar.kernels on 2 engines"):
        assert row in out


def test_mcpi_example_split_is_exact():
    out = _run_example("mcpi.py", "--samples", "400000", "--engines", "2")
    assert "counts exactly what one process counts: True" in out
    estimates = [float(line.split("pi ~ ")[1].split()[0]) for line in out.splitlines()
                 if "pi ~ " in line]
    assert len(estimates) == 4
    assert all(abs(e - 3.14159) < 0.02 for e in estimates)
