"""Seed 000's Julia workload (1024x1024 grid, tmax 256): the seed's numpy loop, run here
and on engines (``ENGINE_CODE``), and the same with cpar.kernels."""

import numpy as np

C = -0.065 + 0.66j
TMAX = 256

ENGINE_CODE = """
import numpy as np
from cpar import kernels

def julia_numpy(Z, c, tmax):
    Z = np.copy(Z)
    J = np.ones(Z.shape) * tmax
    for t in range(tmax):
        mask = np.abs(Z) <= 2.
        Z[mask] = Z[mask] ** 2 + c
        J[~mask] -= 1
    return J
"""
_namespace = {}
exec(ENGINE_CODE, _namespace)
julia_numpy = _namespace["julia_numpy"]


def grid(n):
    xs = np.linspace(-1.3, 1.3, n)
    X, Y = np.meshgrid(xs, xs)
    return X + 1j * Y
