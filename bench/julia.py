"""Seed 000's Julia workload (1024x1024 grid, tmax 256) for the bench: the definitions of
examples/julia.py (the seed's numpy loop as ``julia_numpy`` and as ``ENGINE_CODE`` for the
engines, the grid, the constant), loaded from that file so the bench times the very code
the example shows; the engines also import cpar.kernels."""

import importlib.util
import os
import subprocess
import sys

_EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "julia.py")
_spec = importlib.util.spec_from_file_location("cpar_example_julia", _EXAMPLE)
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)

C = _example.C
TMAX = 256
grid = _example.grid
julia_numpy = _example.julia_numpy
ENGINE_CODE = _example.ENGINE_CODE + "from cpar import kernels\n"


# The machine's own floor for the 2-engine figure: the same kernel on the same halves in
# plain processes (no cpar), started once and told to compute over a pipe.
_HALF_WORKER = """
import sys
import numpy as np
from bench import julia
from cpar import kernels
part, parts, size = (int(a) for a in sys.argv[1:4])
Z = np.ascontiguousarray(np.array_split(julia.grid(size), parts)[part])
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    J = kernels.julia(Z, julia.C, julia.TMAX)
    out.write(b"done\\n")
    out.flush()
"""


class LocalParts:
    """``parts`` plain Python processes, each holding its rows of the grid (split as
    ``scatter`` splits them); ``run()`` has all of them compute their part at once and
    waits for every one. A context manager: leaving it stops the processes."""

    def __init__(self, size, parts):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.procs = []
        try:
            for part in range(parts):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-c", _HALF_WORKER, str(part), str(parts), str(size)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env))
            self.run()  # every worker has imported and built its part
        except BaseException:
            self.close()
            raise

    def run(self):
        for p in self.procs:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        for p in self.procs:
            if p.stdout.readline() != b"done\n":
                raise RuntimeError(f"a Julia worker process ended (exit {p.poll()})")

    def close(self):
        for p in self.procs:
            p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
