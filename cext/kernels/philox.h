/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11). Element i of a
 * stream depends only on (seed, stream, i), so a run split across processes by index
 * ranges, or by streams, draws exactly the numbers one process would.
 *
 * Block j of (seed, stream) is philox(counter = (j low, j high, stream low, stream high),
 * key = (seed low, seed high)): four 32-bit words r0..r3, making two doubles in [0, 1):
 * a = ((r0 << 32 | r1) >> 11) * 2^-53 and b = ((r2 << 32 | r3) >> 11) * 2^-53.
 * Uniform element i is a of block i / 2 when i is even, b when odd. Normal element i is
 * sqrt(-2 ln(1 - a)) * cos(2 pi b) of block i (Box-Muller, one value per block).
 *
 * Ownership and threads: pure functions; any thread; no Python, no GIL. */
#ifndef CPAR_CORE_PHILOX_H
#define CPAR_CORE_PHILOX_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block. */
void cpar_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* n uniform doubles in [0, 1): elements start .. start + n - 1 of (seed, stream); element
 * start + k goes to the double at byte offset k * ostride of out. */
void cpar_philox_uniform(uint64_t seed, uint64_t stream, uint64_t start, size_t n, double *out,
                         ptrdiff_t ostride);
/* n standard normal doubles: elements start .. start + n - 1. */
void cpar_philox_normal(uint64_t seed, uint64_t stream, uint64_t start, size_t n, double *out,
                        ptrdiff_t ostride);
/* Monte Carlo pi: of the n points (x, y) = (uniform 2k, uniform 2k + 1) for
 * k = start .. start + n - 1, how many have x^2 + y^2 < 1. */
uint64_t cpar_philox_pi_hits(uint64_t seed, uint64_t stream, uint64_t start, uint64_t n);

#endif /* CPAR_CORE_PHILOX_H */
