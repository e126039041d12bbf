"""Seed 000's Julia workload (1024x1024 grid, tmax 256) for the bench: the definitions of
examples/julia.py (the seed's numpy loop as ``julia_numpy`` and as ``ENGINE_CODE`` for the
engines, the grid, the constant), loaded from that file so the bench times the very code
the example shows; the engines also import cpar.kernels."""

import importlib.util
import os

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
