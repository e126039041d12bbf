"""cpar.kernels: escape counts against the seed's numpy algorithm, dtypes, strides, both
implementations, errors, and reproducible random streams split across processes."""

import math

import numpy as np
import pytest

from cpar import _kernels, kernels


def seed_julia(Z, c=-0.065 + 0.66j, tmax=256):
    """Seed 000's loop, in Python 3 (Z copied: the seed's version modifies it)."""
    Z = Z.copy()
    J = np.ones(Z.shape) * tmax
    for _ in range(tmax):
        mask = np.abs(Z) <= 2.0
        Z[mask] = Z[mask] ** 2 + c
        J[~mask] -= 1
    return J


def seed_mandelbrot(C, tmax=256):
    Z = np.zeros_like(C)
    J = np.ones(C.shape) * tmax
    for _ in range(tmax):
        mask = np.abs(Z) <= 2.0
        Z[mask] = Z[mask] ** 2 + C[mask]
        J[~mask] -= 1
    return J


def grid(n, dtype=np.complex128):
    x = np.linspace(-1.5, 1.5, n)
    X, Y = np.meshgrid(x, x)
    return (X + 1j * Y).astype(dtype)


@pytest.fixture(params=["generic", "avx2"])
def impl(request):
    try:
        _kernels._force_implementation(request.param)
    except RuntimeError:
        pytest.fail(f"this CPU cannot run the {request.param} kernels")
    assert kernels.implementation() == request.param
    yield request.param
    _kernels._force_implementation(None)


def test_seed_grid_agrees_pixel_for_pixel(impl):
    """The seed's grid (1024x1024, tmax 256): numpy's counts, exactly, in both dtypes."""
    Z = grid(1024)
    expected = seed_julia(Z)
    got = kernels.julia(Z, -0.065 + 0.66j, 256)
    assert got.dtype == np.float64 and got.shape == Z.shape
    assert np.array_equal(got, expected)
    Z32 = Z.astype(np.complex64)
    assert np.array_equal(kernels.julia(Z32), seed_julia(Z32))


def test_mandelbrot_agrees(impl):
    C = grid(300) * 1.3 - 0.5
    assert np.array_equal(kernels.mandelbrot(C, 100), seed_mandelbrot(C, 100))
    C32 = C.astype(np.complex64)
    assert np.array_equal(kernels.mandelbrot(C32, 100), seed_mandelbrot(C32, 100))


def test_shapes_strides_and_out(impl):
    Z = grid(64)
    view = Z[::3, 1::2]  # not contiguous
    assert np.array_equal(kernels.julia(view, maxiter=50), seed_julia(view, tmax=50))
    assert np.array_equal(kernels.julia(Z.T, maxiter=50), seed_julia(Z.T, tmax=50))
    flat = Z.ravel()[:37]  # a length the vector loop does not divide
    assert np.array_equal(kernels.julia(flat, maxiter=50), seed_julia(flat, tmax=50))
    swapped = Z.astype(Z.dtype.newbyteorder())  # non-native byte order
    assert np.array_equal(kernels.julia(swapped, maxiter=50), seed_julia(Z, tmax=50))
    out = np.zeros(Z.shape, dtype=np.int32)
    res = kernels.julia(Z, maxiter=50, out=out)
    assert res is out and np.array_equal(out, seed_julia(Z, tmax=50))
    before = Z.copy()
    kernels.julia(Z)
    assert np.array_equal(Z, before)  # input untouched
    assert kernels.julia(np.zeros((0, 3), complex)).shape == (0, 3)
    assert kernels.julia([[0j, 3 + 0j]], maxiter=10).tolist() == [[10.0, 0.0]]
    assert kernels.julia(np.zeros(5, complex), maxiter=0).tolist() == [0.0] * 5
    assert kernels.julia(np.complex128(0.1), maxiter=7).shape == ()


def test_every_length_and_edge_values(impl):
    """Lengths around the vector groups (4 doubles, 8 floats, several groups in flight),
    maxiter 0 and 1, and NaN/inf points, in both dtypes."""
    Z = grid(64).ravel()
    for dtype in (np.complex128, np.complex64):
        z = Z.astype(dtype)
        for n in list(range(0, 41)) + [63, 64, 65, 127, 129]:
            for maxiter in (0, 1, 30):
                part = z[1000:1000 + n]
                assert np.array_equal(kernels.julia(part, maxiter=maxiter),
                                      seed_julia(part, tmax=maxiter)), (dtype, n, maxiter)
                assert np.array_equal(kernels.mandelbrot(part, maxiter),
                                      seed_mandelbrot(part, maxiter)), (dtype, n, maxiter)
        odd = np.array([np.nan, complex(np.inf, 0), complex(0, -np.inf), 2, 2j, -2, 1.999999],
                       dtype=dtype)
        odd = np.tile(odd, 5)
        with np.errstate(invalid="ignore", over="ignore"):
            assert np.array_equal(kernels.julia(odd, maxiter=20), seed_julia(odd, tmax=20))
            assert np.array_equal(kernels.mandelbrot(odd, 20), seed_mandelbrot(odd, 20))


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="complex64 or complex128"):
        kernels.julia(np.zeros(4))
    with pytest.raises(ValueError, match="maxiter must be >= 0"):
        kernels.julia(np.zeros(4, complex), maxiter=-1)
    with pytest.raises(TypeError, match="maxiter must be an int"):
        kernels.mandelbrot(np.zeros(4, complex), maxiter=2.5)
    with pytest.raises(ValueError, match="shape of the input"):
        kernels.julia(np.zeros(4, complex), out=np.zeros(5))
    with pytest.raises(TypeError, match="real numeric dtype"):
        kernels.julia(np.zeros(4, complex), out=np.zeros(4, complex))
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        kernels.julia(np.zeros(4, complex), out=ro)
    with pytest.raises(ValueError, match="negative dimension"):
        kernels.random((3, -1))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        kernels.random(3, seed=-1)
    with pytest.raises(TypeError, match="stream must be an int"):
        kernels.normal(3, stream=1.5)
    with pytest.raises(TypeError, match="shape"):
        kernels.random()
    with pytest.raises(ValueError, match="n must be positive"):
        kernels.mc_pi(0)


def test_random_streams_are_reproducible_and_splittable():
    a = kernels.random((1000,), seed=42, stream=3)
    assert a.dtype == np.float64 and 0.0 <= a.min() and a.max() < 1.0
    assert np.array_equal(a, kernels.random(1000, seed=42, stream=3))
    # Any split by start offsets gives the same numbers.
    parts = [kernels.random(n, seed=42, stream=3, start=s)
             for s, n in [(0, 333), (333, 1), (334, 666)]]
    assert np.array_equal(np.concatenate(parts), a)
    # C order of a multi-dimensional array = stream order; out= fills in place.
    assert np.array_equal(kernels.random((10, 100), seed=42, stream=3).ravel(), a)
    out = np.empty((20, 50))
    assert kernels.random(seed=42, stream=3, out=out) is out
    assert np.array_equal(out.ravel(), a)
    # Other streams and seeds differ; the numbers look uniform.
    assert not np.array_equal(a, kernels.random(1000, seed=42, stream=4))
    assert not np.array_equal(a, kernels.random(1000, seed=43, stream=3))
    big = kernels.random(200_000, seed=1)
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002
    z = kernels.normal(200_000, seed=1)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert np.array_equal(kernels.normal(50, seed=9, start=25), kernels.normal(75, seed=9)[25:])


def test_mc_pi_split_across_engines_is_exact(rc):
    """A Monte Carlo run split over the engines by start offsets counts exactly the hits
    one process counts."""
    n = 400_000
    ids = rc.ids
    bounds = np.linspace(0, n, len(ids) + 1).astype(int)
    ars = [rc[e].apply_async(kernels.pi_hits, int(hi - lo), 11, 0, int(lo))
           for e, lo, hi in zip(ids, bounds[:-1], bounds[1:])]
    hits = sum(ar.get(60) for ar in ars)
    assert hits == kernels.pi_hits(n, 11)
    assert abs(4 * hits / n - math.pi) < 0.01
    assert kernels.mc_pi(n, 11) == 4 * hits / n
