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

/* numpy's test: np.abs(z) <= 2 (NaN: false). */
static inline int
cpar__inside64(double x, double y)
{
    double s = x * x + y * y;
    if (s < CPAR__LO64)
        return 1;
    if (s > CPAR__HI64)
        return 0;
    return hypot(x, y) <= 2.0;
}

static inline int
cpar__inside32(float x, float y)
{
    float s = x * x + y * y;
    if (s < CPAR__LO32)
        return 1;
    if (s > CPAR__HI32)
        return 0;
    return (double)hypotf(x, y) <= 2.0;
}

static long
cpar__count64(double x, double y, double cr, double ci, long maxiter)
{
    for (long t = 0; t < maxiter; t++) {
        double nx, ny;
        if (!cpar__inside64(x, y))
            return t;
        nx = fma(x, x, -(y * y)) + cr;
        ny = x * y + y * x + ci;
        x = nx;
        y = ny;
    }
    return maxiter;
}

static long
cpar__count32(float x, float y, float cr, float ci, long maxiter)
{
    for (long t = 0; t < maxiter; t++) {
        float nx, ny;
        if (!cpar__inside32(x, y))
            return t;
        nx = fmaf(x, x, -(y * y)) + cr;
        ny = x * y + y * x + ci;
        x = nx;
        y = ny;
    }
    return maxiter;
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

/* Points [0, 4 * ngroups) of p: counts (as doubles) to out. maxiter <= 2^53. */
__attribute__((target("avx2,fma"))) static void
cpar__avx2_run64(const double *p, ptrdiff_t st, size_t ngroups, int mandel, double cr0, double ci0,
                 long maxiter, double *out, ptrdiff_t ost)
{
    __m256d x[CPAR__NV], y[CPAR__NV], cr[CPAR__NV], ci[CPAR__NV], act[CPAR__NV], cnt[CPAR__NV];
    size_t grp[CPAR__NV], next = 0;
    int live = 0;
    const __m256d lo = _mm256_set1_pd(CPAR__LO64), hi = _mm256_set1_pd(CPAR__HI64);
    const __m256d one = _mm256_set1_pd(1.0), maxd = _mm256_set1_pd((double)maxiter);

#define CPAR__LOAD64(v)                                                                            \
    do {                                                                                           \
        double re_[4], im_[4];                                                                     \
        for (int k_ = 0; k_ < 4; k_++) {                                                           \
            const double *q_ = CPAR__PT(double, p, st, 4 * next + (size_t)k_);                     \
            re_[k_] = q_[0];                                                                       \
            im_[k_] = q_[1];                                                                       \
        }                                                                                          \
        x[v] = mandel ? _mm256_setzero_pd() : _mm256_loadu_pd(re_);                                \
        y[v] = mandel ? _mm256_setzero_pd() : _mm256_loadu_pd(im_);                                \
        cr[v] = mandel ? _mm256_loadu_pd(re_) : _mm256_set1_pd(cr0);                               \
        ci[v] = mandel ? _mm256_loadu_pd(im_) : _mm256_set1_pd(ci0);                               \
        act[v] = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));                                      \
        cnt[v] = _mm256_setzero_pd();                                                              \
        grp[v] = next++;                                                                           \
    } while (0)

    for (int v = 0; v < CPAR__NV; v++) {
        if (next < ngroups) {
            CPAR__LOAD64(v);
            live++;
        } else {
            x[v] = y[v] = cr[v] = ci[v] = act[v] = cnt[v] = _mm256_setzero_pd();
            grp[v] = CPAR__NONE;
        }
    }
    while (live > 0) {
        for (int v = 0; v < CPAR__NV; v++) {
            __m256d xx = _mm256_mul_pd(x[v], x[v]), yy = _mm256_mul_pd(y[v], y[v]);
            __m256d xy = _mm256_mul_pd(x[v], y[v]), s = _mm256_add_pd(xx, yy);
            __m256d in = _mm256_cmp_pd(s, lo, _CMP_LT_OQ);
            __m256d decided = _mm256_or_pd(in, _mm256_cmp_pd(s, hi, _CMP_GT_OQ));
            int unsure;
            /* a lane ends when it has made maxiter steps, or when it is outside */
            act[v] = _mm256_and_pd(act[v], _mm256_cmp_pd(cnt[v], maxd, _CMP_LT_OQ));
            unsure = _mm256_movemask_pd(_mm256_andnot_pd(decided, act[v]));
            if (unsure) {
                double xs[4], ys[4], ins[4];
                _mm256_storeu_pd(xs, x[v]);
                _mm256_storeu_pd(ys, y[v]);
                _mm256_storeu_pd(ins, in);
                for (int k = 0; k < 4; k++)
                    if ((unsure & (1 << k)) && hypot(xs[k], ys[k]) <= 2.0)
                        memset(&ins[k], 0xff, sizeof ins[k]);
                in = _mm256_loadu_pd(ins);
            }
            act[v] = _mm256_and_pd(act[v], in);
            cnt[v] = _mm256_add_pd(cnt[v], _mm256_and_pd(act[v], one));
            /* Only lanes still inside move on (numpy updates only Z[mask]). */
            x[v] = _mm256_blendv_pd(x[v], _mm256_add_pd(_mm256_fmsub_pd(x[v], x[v], yy), cr[v]),
                                    act[v]);
            y[v] = _mm256_blendv_pd(y[v], _mm256_add_pd(_mm256_add_pd(xy, xy), ci[v]), act[v]);
            if (!_mm256_movemask_pd(act[v]) && grp[v] != CPAR__NONE) {
                double c[4];
                _mm256_storeu_pd(c, cnt[v]);
                for (int k = 0; k < 4; k++)
                    *(double *)((char *)out + (ptrdiff_t)(4 * grp[v] + (size_t)k) * ost) = c[k];
                if (next < ngroups) {
                    CPAR__LOAD64(v);
                } else {
                    grp[v] = CPAR__NONE;
                    live--;
                }
            }
        }
    }
#undef CPAR__LOAD64
}

/* Points [0, 8 * ngroups) of p: counts to out. maxiter <= INT32_MAX (int32 counts: a float
 * count would stop at 2^24). */
__attribute__((target("avx2,fma"))) static void
cpar__avx2_run32(const float *p, ptrdiff_t st, size_t ngroups, int mandel, float cr0, float ci0,
                 long maxiter, double *out, ptrdiff_t ost)
{
    __m256 x[CPAR__NV], y[CPAR__NV], cr[CPAR__NV], ci[CPAR__NV], act[CPAR__NV];
    __m256i cnt[CPAR__NV];
    size_t grp[CPAR__NV], next = 0;
    int live = 0;
    const __m256 lo = _mm256_set1_ps(CPAR__LO32), hi = _mm256_set1_ps(CPAR__HI32);
    const __m256i maxi = _mm256_set1_epi32((int32_t)maxiter);

#define CPAR__LOAD32(v)                                                                            \
    do {                                                                                           \
        float re_[8], im_[8];                                                                      \
        for (int k_ = 0; k_ < 8; k_++) {                                                           \
            const float *q_ = CPAR__PT(float, p, st, 8 * next + (size_t)k_);                       \
            re_[k_] = q_[0];                                                                       \
            im_[k_] = q_[1];                                                                       \
        }                                                                                          \
        x[v] = mandel ? _mm256_setzero_ps() : _mm256_loadu_ps(re_);                                \
        y[v] = mandel ? _mm256_setzero_ps() : _mm256_loadu_ps(im_);                                \
        cr[v] = mandel ? _mm256_loadu_ps(re_) : _mm256_set1_ps(cr0);                               \
        ci[v] = mandel ? _mm256_loadu_ps(im_) : _mm256_set1_ps(ci0);                               \
        act[v] = _mm256_castsi256_ps(_mm256_set1_epi32(-1));                                       \
        cnt[v] = _mm256_setzero_si256();                                                           \
        grp[v] = next++;                                                                           \
    } while (0)

    for (int v = 0; v < CPAR__NV; v++) {
        if (next < ngroups) {
            CPAR__LOAD32(v);
            live++;
        } else {
            x[v] = y[v] = cr[v] = ci[v] = act[v] = _mm256_setzero_ps();
            cnt[v] = _mm256_setzero_si256();
            grp[v] = CPAR__NONE;
        }
    }
    while (live > 0) {
        for (int v = 0; v < CPAR__NV; v++) {
            __m256 xx = _mm256_mul_ps(x[v], x[v]), yy = _mm256_mul_ps(y[v], y[v]);
            __m256 xy = _mm256_mul_ps(x[v], y[v]), s = _mm256_add_ps(xx, yy);
            __m256 in = _mm256_cmp_ps(s, lo, _CMP_LT_OQ);
            __m256 decided = _mm256_or_ps(in, _mm256_cmp_ps(s, hi, _CMP_GT_OQ));
            int unsure;
            act[v] = _mm256_and_ps(act[v], _mm256_castsi256_ps(_mm256_cmpgt_epi32(maxi, cnt[v])));
            unsure = _mm256_movemask_ps(_mm256_andnot_ps(decided, act[v]));
            if (unsure) {
                float xs[8], ys[8], ins[8];
                _mm256_storeu_ps(xs, x[v]);
                _mm256_storeu_ps(ys, y[v]);
                _mm256_storeu_ps(ins, in);
                for (int k = 0; k < 8; k++)
                    if ((unsure & (1 << k)) && (double)hypotf(xs[k], ys[k]) <= 2.0)
                        memset(&ins[k], 0xff, sizeof ins[k]);
                in = _mm256_loadu_ps(ins);
            }
            act[v] = _mm256_and_ps(act[v], in);
            /* all-ones lanes are -1: subtracting counts them */
            cnt[v] = _mm256_sub_epi32(cnt[v], _mm256_castps_si256(act[v]));
            x[v] = _mm256_blendv_ps(x[v], _mm256_add_ps(_mm256_fmsub_ps(x[v], x[v], yy), cr[v]),
                                    act[v]);
            y[v] = _mm256_blendv_ps(y[v], _mm256_add_ps(_mm256_add_ps(xy, xy), ci[v]), act[v]);
            if (!_mm256_movemask_ps(act[v]) && grp[v] != CPAR__NONE) {
                int32_t c[8];
                _mm256_storeu_si256((__m256i *)c, cnt[v]);
                for (int k = 0; k < 8; k++)
                    *(double *)((char *)out + (ptrdiff_t)(8 * grp[v] + (size_t)k) * ost) =
                        (double)c[k];
                if (next < ngroups) {
                    CPAR__LOAD32(v);
                } else {
                    grp[v] = CPAR__NONE;
                    live--;
                }
            }
        }
    }
#undef CPAR__LOAD32
}
#endif

/* The shared driver: mode 0 julia (z0 = point, c fixed), 1 mandelbrot (z0 = 0, c = point). */
static void
cpar__run64(const double *p, ptrdiff_t st, size_t n, int mandel, double cr, double ci, long maxiter,
            double *out, ptrdiff_t ost)
{
    size_t i = 0;
#if CPAR__HAVE_AVX2_CODE
    if (cpar_escape_impl() == CPAR_ESCAPE_AVX2 && maxiter <= (1L << 53)) {
        cpar__avx2_run64(p, st, n / 4, mandel, cr, ci, maxiter, out, ost);
        i = n / 4 * 4;
    }
#endif
    for (; i < n; i++) {
        const double *q = CPAR__PT(double, p, st, i);
        long cnt = mandel ? cpar__count64(0.0, 0.0, q[0], q[1], maxiter)
                          : cpar__count64(q[0], q[1], cr, ci, maxiter);
        *(double *)((char *)out + (ptrdiff_t)i * ost) = (double)cnt;
    }
}

static void
cpar__run32(const float *p, ptrdiff_t st, size_t n, int mandel, float cr, float ci, long maxiter,
            double *out, ptrdiff_t ost)
{
    size_t i = 0;
#if CPAR__HAVE_AVX2_CODE
    if (cpar_escape_impl() == CPAR_ESCAPE_AVX2 && maxiter <= INT32_MAX) {
        cpar__avx2_run32(p, st, n / 8, mandel, cr, ci, maxiter, out, ost);
        i = n / 8 * 8;
    }
#endif
    for (; i < n; i++) {
        const float *q = CPAR__PT(float, p, st, i);
        long cnt = mandel ? cpar__count32(0.0f, 0.0f, q[0], q[1], maxiter)
                          : cpar__count32(q[0], q[1], cr, ci, maxiter);
        *(double *)((char *)out + (ptrdiff_t)i * ost) = (double)cnt;
    }
}

void
cpar_escape_julia_f64(const double *z0, ptrdiff_t zstride, size_t n, double cr, double ci,
                      long maxiter, double *out, ptrdiff_t ostride)
{
    cpar__run64(z0, zstride, n, 0, cr, ci, maxiter, out, ostride);
}

void
cpar_escape_julia_f32(const float *z0, ptrdiff_t zstride, size_t n, float cr, float ci,
                      long maxiter, double *out, ptrdiff_t ostride)
{
    cpar__run32(z0, zstride, n, 0, cr, ci, maxiter, out, ostride);
}

void
cpar_escape_mandelbrot_f64(const double *c, ptrdiff_t cstride, size_t n, long maxiter, double *out,
                           ptrdiff_t ostride)
{
    cpar__run64(c, cstride, n, 1, 0.0, 0.0, maxiter, out, ostride);
}

void
cpar_escape_mandelbrot_f32(const float *c, ptrdiff_t cstride, size_t n, long maxiter, double *out,
                           ptrdiff_t ostride)
{
    cpar__run32(c, cstride, n, 1, 0.0f, 0.0f, maxiter, out, ostride);
}
