/* Escape-time kernels: Julia and Mandelbrot counts with the semantics of seed 000's numpy
 * loop (a point's count is the first iteration t in [0, maxiter) at which |z_t| > 2, where
 * z_0 is the start point and z_{t+1} = z_t^2 + c; maxiter when that never happens).
 *
 * z^2 + c is computed as numpy (>= 1.25, on CPUs with FMA) computes z**2 + c: re =
 * fma(x, x, -(y*y)) + cr, im = x*y + y*x + ci, each operation rounded once. |z| <= 2 is
 * decided from x*x + y*y away from the boundary and by hypot within a relative 1e-12
 * (doubles) / 1e-5 (floats) of it; numpy's np.abs is not hypot (its SIMD loop may differ
 * by an ulp), so a point whose |z| lands within an ulp of 2 may count differently, and
 * orbits are chaotic: tests/test_kernels.py bounds the pixels that differ on the seed's
 * grid. An AVX2+FMA path is chosen at run time when the CPU has both.
 *
 * Ownership and threads: pure functions over caller memory; any thread; no Python, no GIL
 * (the extension releases it around these calls). Strides are in bytes; pointers are
 * aligned for their element type. */
#ifndef CPAR_CORE_ESCAPE_H
#define CPAR_CORE_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

enum cpar_escape_impl {
    CPAR_ESCAPE_GENERIC = 0,
    CPAR_ESCAPE_AVX2 = 1,
};

/* The implementation the next calls use: the best the CPU has, unless forced. */
int cpar_escape_impl(void);
/* Forces an implementation (tests); returns 0, or CPAR_EINVAL when the CPU lacks it. */
int cpar_escape_force(int impl);
const char *cpar_escape_impl_name(int impl);

/* Counts for n points: point i is the (re, im) pair at byte offset i * zstride of z0.
 * julia: z_0 = point, fixed c. mandelbrot: z_0 = 0, c = point. The double at byte offset
 * i * ostride of out gets point i's count. maxiter >= 0. */
void cpar_escape_julia_f64(const double *z0, ptrdiff_t zstride, size_t n, double cr, double ci,
                           long maxiter, double *out, ptrdiff_t ostride);
void cpar_escape_julia_f32(const float *z0, ptrdiff_t zstride, size_t n, float cr, float ci,
                           long maxiter, double *out, ptrdiff_t ostride);
void cpar_escape_mandelbrot_f64(const double *c, ptrdiff_t cstride, size_t n, long maxiter,
                                double *out, ptrdiff_t ostride);
void cpar_escape_mandelbrot_f32(const float *c, ptrdiff_t cstride, size_t n, long maxiter,
                                double *out, ptrdiff_t ostride);

#endif /* CPAR_CORE_ESCAPE_H */
