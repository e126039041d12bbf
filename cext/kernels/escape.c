/* Escape-time kernels (escape.h). Built without implicit floating-point contraction (ISO
 * C mode): the one fused multiply-add is explicit, as in numpy's complex square. */
#include "escape.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CPAR__HAVE_AVX2_CODE 1
#else
#define CPAR__HAVE_AVX2_CODE 0
#endif

/* |z|^2 bands (relative) inside which hypot decides. */
#define CPAR__LO64 (4.0 * (1.0 - 1e-12))
#define CPAR__HI64 (4.0 * (1.0 + 1e-12))
#define CPAR__LO32 (4.0f * (1.0f - 1e-5f))
#define CPAR__HI32 (4.0f * (1.0f + 1e-5f))

static int cpar__escape_forced = -1;

static int
cpar__escape_cpu_avx2(void)
{
#if CPAR__HAVE_AVX2_CODE
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int
cpar_escape_impl(void)
{
    if (cpar__escape_forced >= 0)
        return cpar__escape_forced;
    return cpar__escape_cpu_avx2() ? CPAR_ESCAPE_AVX2 : CPAR_ESCAPE_GENERIC;
}

int
cpar_escape_force(int impl)
{
    if (impl == -1) {
        cpar__escape_forced = -1;
        return CPAR_OK;
    }
    if (impl == CPAR_ESCAPE_GENERIC || (impl == CPAR_ESCAPE_AVX2 && cpar__escape_cpu_avx2())) {
        cpar__escape_forced = impl;
        return CPAR_OK;
    }
    return CPAR_EINVAL;
}

const char *
cpar_escape_impl_name(int impl)
{
    return impl == CPAR_ESCAPE_AVX2 ? "avx2" : "generic";
}

/* The complex point i of p (stride st bytes). */
#define CPAR__PT(T, p, st, i) ((const T *)((const char *)(p) + (ptrdiff_t)(i) * (st)))

#if CPAR__HAVE_AVX2_CODE
/* CPAR__NV groups of points are iterated side by side: their dependency chains (multiply,
 * fused multiply-subtract, add: ~12 cycles) interleave, so the FMA units are not left
 * waiting. Per lane, `act` (all ones while the point is iterating) and the count are
 * vectors: no per-lane branch in the loop, and hypot decides only in the thin band around
 * |z| = 2. A group whose lanes have all ended hands its slot to the next group at once, so
 * a slow group does not hold the others back. */
#define CPAR__NV 4
#define CPAR__NONE ((size_t)-1)
#endif

/* Doubles: counts as double vectors (exact up to 2^53). */
#define CPAR__T double
#define CPAR__N(name) name##64
#define CPAR__PUB(name) name##_f64
#define CPAR__FMA fma
#define CPAR__HYPOT hypot
#define CPAR__LO CPAR__LO64
#define CPAR__HI CPAR__HI64
#define CPAR__W 4
#define CPAR__MAXITER (1L << 53)
#define CPAR__V __m256d
#define CPAR__VOP(op) _mm256_##op##_pd
#define CPAR__CNT __m256d
#define CPAR__CNT_ELEM double
#define CPAR__CNT_ZERO() _mm256_setzero_pd()
#define CPAR__CNT_MAX(maxiter) _mm256_set1_pd((double)(maxiter))
#define CPAR__CNT_BELOW(cnt, max) _mm256_cmp_pd(cnt, max, _CMP_LT_OQ)
#define CPAR__CNT_STEP(cnt, act) _mm256_add_pd(cnt, _mm256_and_pd(act, _mm256_set1_pd(1.0)))
#define CPAR__CNT_STORE(buf, cnt) _mm256_storeu_pd(buf, cnt)
#include "escape_tmpl.h"
#undef CPAR__T
#undef CPAR__N
#undef CPAR__PUB
#undef CPAR__FMA
#undef CPAR__HYPOT
#undef CPAR__LO
#undef CPAR__HI
#undef CPAR__W
#undef CPAR__MAXITER
#undef CPAR__V
#undef CPAR__VOP
#undef CPAR__CNT
#undef CPAR__CNT_ELEM
#undef CPAR__CNT_ZERO
#undef CPAR__CNT_MAX
#undef CPAR__CNT_BELOW
#undef CPAR__CNT_STEP
#undef CPAR__CNT_STORE

/* Floats: counts as int32 vectors (a float count would stop at 2^24); all-ones lanes are
 * -1, so subtracting the lane mask counts the active lanes. */
#define CPAR__T float
#define CPAR__N(name) name##32
#define CPAR__PUB(name) name##_f32
#define CPAR__FMA fmaf
#define CPAR__HYPOT hypotf
#define CPAR__LO CPAR__LO32
#define CPAR__HI CPAR__HI32
#define CPAR__W 8
#define CPAR__MAXITER INT32_MAX
#define CPAR__V __m256
#define CPAR__VOP(op) _mm256_##op##_ps
#define CPAR__CNT __m256i
#define CPAR__CNT_ELEM int32_t
#define CPAR__CNT_ZERO() _mm256_setzero_si256()
#define CPAR__CNT_MAX(maxiter) _mm256_set1_epi32((int32_t)(maxiter))
#define CPAR__CNT_BELOW(cnt, max) _mm256_castsi256_ps(_mm256_cmpgt_epi32(max, cnt))
#define CPAR__CNT_STEP(cnt, act) _mm256_sub_epi32(cnt, _mm256_castps_si256(act))
#define CPAR__CNT_STORE(buf, cnt) _mm256_storeu_si256((__m256i *)(buf), cnt)
#include "escape_tmpl.h"
