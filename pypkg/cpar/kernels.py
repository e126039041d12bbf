"""Numeric kernels in C for the seeds' workloads (the extension ``cpar._kernels``).

- ``julia(Z, c, maxiter)`` and ``mandelbrot(C, maxiter)``: escape-time counts with the
  semantics of seed 000's numpy loop — a point's count is the first iteration t in
  ``[0, maxiter)`` at which ``|z_t| > 2`` (``z_0`` the point for Julia, 0 for Mandelbrot;
  ``z_{t+1} = z_t**2 + c``), or ``maxiter`` when that never happens. The arithmetic is
  numpy's (``z**2 + c`` with numpy's fused multiply-add), so on this kind of CPU the
  counts equal the seed's pixel for pixel (tests/test_kernels.py checks the seed's grid).
  complex64 and complex128 input of any shape and strides; float64 counts like the
  seed's ``J`` (or into ``out``, any real dtype); the GIL is released while they run;
  vectorized with AVX2+FMA when the CPU has it (``implementation()`` says which).
- ``random(shape, seed, stream, start)``, ``normal(...)``: counter-based random numbers
  (Philox4x32-10). Element ``i`` of ``(seed, stream)`` depends on nothing else, so a run
  split across engines by ``start`` offsets (or by streams) draws exactly the numbers one
  process would.
- ``mc_pi(n, seed, stream, start)`` / ``pi_hits``: the Monte Carlo pi estimate of seed 003
  on those numbers; ``mc_pi_split`` shows the exact split across engines.
"""

from . import _kernels

__all__ = ["julia", "mandelbrot", "random", "normal", "pi_hits", "mc_pi", "implementation"]


def julia(Z, c=-0.065 + 0.66j, maxiter=256, out=None):
    """Escape counts of the Julia set of ``z**2 + c`` for the start points ``Z`` (a
    complex64/complex128 array, or anything numpy makes a complex128 array of). Returns a
    float64 array of ``Z``'s shape (or ``out``, filled). ``Z`` is not modified."""
    return _kernels.julia(Z, complex(c), _count(maxiter), out)


def mandelbrot(C, maxiter=256, out=None):
    """Escape counts of ``z -> z**2 + C`` from ``z = 0`` for each point of ``C``."""
    return _kernels.mandelbrot(C, _count(maxiter), out)


def random(shape=None, seed=0, stream=0, start=0, out=None):
    """Uniform doubles in [0, 1): elements ``start ...`` of the stream ``(seed, stream)``,
    in C order, as a new array of ``shape`` (or into the float64 array ``out``)."""
    return _kernels.random(shape, seed, stream, start, out)


def normal(shape=None, seed=0, stream=0, start=0, out=None):
    """Standard normal doubles (Box-Muller on the stream's blocks); like ``random``."""
    return _kernels.normal(shape, seed, stream, start, out)


def pi_hits(n, seed=0, stream=0, start=0):
    """How many of the points ``start .. start+n-1`` of the stream fall inside the unit
    quarter circle (point k is the stream's uniforms 2k and 2k+1)."""
    return _kernels.pi_hits(n, seed, stream, start)


def mc_pi(n, seed=0, stream=0, start=0):
    """The Monte Carlo estimate ``4 * hits / n`` over ``n`` points of the stream."""
    if n <= 0:
        raise ValueError(f"n must be positive, not {n!r}")
    return 4.0 * pi_hits(n, seed, stream, start) / n


def implementation():
    """``'avx2'`` (AVX2+FMA, chosen at run time) or ``'generic'``."""
    return _kernels.implementation()


def _count(maxiter):
    if isinstance(maxiter, bool) or not isinstance(maxiter, int):
        try:
            import operator

            maxiter = operator.index(maxiter)
        except TypeError:
            raise TypeError(f"maxiter must be an int, not {maxiter!r}") from None
    if maxiter < 0:
        raise ValueError(f"maxiter must be >= 0, not {maxiter}")
    return maxiter
