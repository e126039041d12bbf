/* Philox4x32-10 and the distributions built on it (philox.h). */
#include "philox.h"

#include <math.h>

#define CPAR__PHILOX_M0 0xD2511F53u
#define CPAR__PHILOX_M1 0xCD9E8D57u
#define CPAR__PHILOX_W0 0x9E3779B9u
#define CPAR__PHILOX_W1 0xBB67AE85u

void
cpar_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)CPAR__PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)CPAR__PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += CPAR__PHILOX_W0;
        k1 += CPAR__PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void
cpar__block(uint64_t seed, uint64_t stream, uint64_t j, double *a, double *b)
{
    uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t r[4];
    cpar_philox4x32(ctr, key, r);
    *a = (double)((((uint64_t)r[0] << 32) | r[1]) >> 11) * 0x1.0p-53;
    *b = (double)((((uint64_t)r[2] << 32) | r[3]) >> 11) * 0x1.0p-53;
}

void
cpar_philox_uniform(uint64_t seed, uint64_t stream, uint64_t start, size_t n, double *out,
                    ptrdiff_t ostride)
{
    size_t k = 0;
    while (k < n) {
        uint64_t i = start + k;
        double a, b;
        cpar__block(seed, stream, i >> 1, &a, &b);
        if ((i & 1) == 0) {
            *(double *)((char *)out + (ptrdiff_t)k * ostride) = a;
            if (++k == n)
                break;
        }
        *(double *)((char *)out + (ptrdiff_t)k * ostride) = b;
        k++;
    }
}

void
cpar_philox_normal(uint64_t seed, uint64_t stream, uint64_t start, size_t n, double *out,
                   ptrdiff_t ostride)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t k = 0; k < n; k++) {
        double a, b;
        cpar__block(seed, stream, start + k, &a, &b);
        *(double *)((char *)out + (ptrdiff_t)k * ostride) =
            sqrt(-2.0 * log(1.0 - a)) * cos(two_pi * b);
    }
}

uint64_t
cpar_philox_pi_hits(uint64_t seed, uint64_t stream, uint64_t start, uint64_t n)
{
    uint64_t hits = 0;
    /* Point k uses uniforms 2k and 2k + 1: block k's a and b. */
    for (uint64_t k = 0; k < n; k++) {
        double x, y;
        cpar__block(seed, stream, start + k, &x, &y);
        hits += x * x + y * y < 1.0;
    }
    return hits;
}
