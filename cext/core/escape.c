/* Escape-time kernels (escape.h). Built without implicit floating-point contraction (ISO
 * C mode): the one fused multiply-add is explicit, as in numpy's complex square. */
#include "escape.h"

#include <math.h>
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

#if CPAR__HAVE_AVX2_CODE
/* Four points at once: x, y (start), cr, ci (per lane); counts to out4. */
__attribute__((target("avx2,fma"))) static void
cpar__avx2_4(const double *x0, const double *y0, const double *cr0, const double *ci0, long maxiter,
             long *out4)
{
    __m256d x = _mm256_loadu_pd(x0), y = _mm256_loadu_pd(y0);
    __m256d cr = _mm256_loadu_pd(cr0), ci = _mm256_loadu_pd(ci0);
    __m256d lo = _mm256_set1_pd(CPAR__LO64), hi = _mm256_set1_pd(CPAR__HI64);
    int active = 0xf;
    out4[0] = out4[1] = out4[2] = out4[3] = maxiter;
    for (long t = 0; t < maxiter && active; t++) {
        __m256d xx = _mm256_mul_pd(x, x), yy = _mm256_mul_pd(y, y), xy = _mm256_mul_pd(x, y);
        __m256d s = _mm256_add_pd(xx, yy);
        int in = _mm256_movemask_pd(_mm256_cmp_pd(s, lo, _CMP_LT_OQ));
        int out = _mm256_movemask_pd(_mm256_cmp_pd(s, hi, _CMP_GT_OQ));
        int unsure = active & ~(in | out);
        if (unsure) {
            double xs[4], ys[4];
            _mm256_storeu_pd(xs, x);
            _mm256_storeu_pd(ys, y);
            for (int k = 0; k < 4; k++)
                if (unsure & (1 << k)) {
                    if (hypot(xs[k], ys[k]) <= 2.0)
                        in |= 1 << k;
                }
        }
        for (int k = 0; k < 4; k++)
            if ((active & (1 << k)) && !(in & (1 << k))) {
                out4[k] = t;
                active &= ~(1 << k);
            }
        if (!active)
            break;
        {
            /* Only active lanes move on (as numpy updates only Z[mask]). */
            __m256d keep = _mm256_castsi256_pd(
                _mm256_set_epi64x((active & 8) ? -1 : 0, (active & 4) ? -1 : 0,
                                  (active & 2) ? -1 : 0, (active & 1) ? -1 : 0));
            __m256d nx = _mm256_add_pd(_mm256_fmsub_pd(x, x, yy), cr);
            __m256d ny = _mm256_add_pd(_mm256_add_pd(xy, xy), ci);
            x = _mm256_blendv_pd(x, nx, keep);
            y = _mm256_blendv_pd(y, ny, keep);
        }
    }
}

/* Eight float points at once. */
__attribute__((target("avx2,fma"))) static void
cpar__avx2_8(const float *x0, const float *y0, const float *cr0, const float *ci0, long maxiter,
             long *out8)
{
    __m256 x = _mm256_loadu_ps(x0), y = _mm256_loadu_ps(y0);
    __m256 cr = _mm256_loadu_ps(cr0), ci = _mm256_loadu_ps(ci0);
    __m256 lo = _mm256_set1_ps(CPAR__LO32), hi = _mm256_set1_ps(CPAR__HI32);
    int active = 0xff;
    for (int k = 0; k < 8; k++)
        out8[k] = maxiter;
    for (long t = 0; t < maxiter && active; t++) {
        __m256 xx = _mm256_mul_ps(x, x), yy = _mm256_mul_ps(y, y), xy = _mm256_mul_ps(x, y);
        __m256 s = _mm256_add_ps(xx, yy);
        int in = _mm256_movemask_ps(_mm256_cmp_ps(s, lo, _CMP_LT_OQ));
        int out = _mm256_movemask_ps(_mm256_cmp_ps(s, hi, _CMP_GT_OQ));
        int unsure = active & ~(in | out);
        int32_t lanes[8];
        if (unsure) {
            float xs[8], ys[8];
            _mm256_storeu_ps(xs, x);
            _mm256_storeu_ps(ys, y);
            for (int k = 0; k < 8; k++)
                if ((unsure & (1 << k)) && (double)hypotf(xs[k], ys[k]) <= 2.0)
                    in |= 1 << k;
        }
        for (int k = 0; k < 8; k++)
            if ((active & (1 << k)) && !(in & (1 << k))) {
                out8[k] = t;
                active &= ~(1 << k);
            }
        if (!active)
            break;
        for (int k = 0; k < 8; k++)
            lanes[k] = (active & (1 << k)) ? -1 : 0;
        {
            __m256 keep = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)lanes));
            __m256 nx = _mm256_add_ps(_mm256_fmsub_ps(x, x, yy), cr);
            __m256 ny = _mm256_add_ps(_mm256_add_ps(xy, xy), ci);
            x = _mm256_blendv_ps(x, nx, keep);
            y = _mm256_blendv_ps(y, ny, keep);
        }
    }
}
#endif

/* The shared driver: mode 0 julia (z0 = point, c fixed), 1 mandelbrot (z0 = 0, c = point). */
static void
cpar__run64(const double *p, ptrdiff_t st, size_t n, int mandel, double cr, double ci, long maxiter,
            double *out, ptrdiff_t ost)
{
    size_t i = 0;
#if CPAR__HAVE_AVX2_CODE
    if (cpar_escape_impl() == CPAR_ESCAPE_AVX2)
        for (; i + 4 <= n; i += 4) {
            double x[4], y[4], a[4], b[4];
            long cnt[4];
            for (int k = 0; k < 4; k++) {
                const double *q =
                    (const double *)((const char *)p + (ptrdiff_t)(i + (size_t)k) * st);
                x[k] = mandel ? 0.0 : q[0];
                y[k] = mandel ? 0.0 : q[1];
                a[k] = mandel ? q[0] : cr;
                b[k] = mandel ? q[1] : ci;
            }
            cpar__avx2_4(x, y, a, b, maxiter, cnt);
            for (int k = 0; k < 4; k++)
                *(double *)((char *)out + (ptrdiff_t)(i + (size_t)k) * ost) = (double)cnt[k];
        }
#endif
    for (; i < n; i++) {
        const double *q = (const double *)((const char *)p + (ptrdiff_t)i * st);
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
    if (cpar_escape_impl() == CPAR_ESCAPE_AVX2)
        for (; i + 8 <= n; i += 8) {
            float x[8], y[8], a[8], b[8];
            long cnt[8];
            for (int k = 0; k < 8; k++) {
                const float *q = (const float *)((const char *)p + (ptrdiff_t)(i + (size_t)k) * st);
                x[k] = mandel ? 0.0f : q[0];
                y[k] = mandel ? 0.0f : q[1];
                a[k] = mandel ? q[0] : cr;
                b[k] = mandel ? q[1] : ci;
            }
            cpar__avx2_8(x, y, a, b, maxiter, cnt);
            for (int k = 0; k < 8; k++)
                *(double *)((char *)out + (ptrdiff_t)(i + (size_t)k) * ost) = (double)cnt[k];
        }
#endif
    for (; i < n; i++) {
        const float *q = (const float *)((const char *)p + (ptrdiff_t)i * st);
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
