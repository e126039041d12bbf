/* The escape-time kernels of one precision, written once: escape.c includes this file
 * twice, for doubles and for floats, after defining (and undefines them after):
 *
 *   CPAR__T          the element type (double, float)
 *   CPAR__N(name)    name with the precision's suffix (name##64, name##32)
 *   CPAR__FMA        fma or fmaf;  CPAR__HYPOT  hypot or hypotf
 *   CPAR__LO/HI      the |z|^2 band inside which hypot decides
 *   CPAR__PUB(name)  the public name (name##_f64, name##_f32)
 * and, with CPAR__HAVE_AVX2_CODE, the vector side:
 *   CPAR__W          lanes per vector (4, 8);  CPAR__MAXITER  the largest maxiter it counts
 *   CPAR__V          the vector type;  CPAR__VOP(op)  _mm256_<op>_pd or _mm256_<op>_ps
 *   CPAR__CNT        the vector type of the counts, CPAR__CNT_ELEM its element type, and
 *   CPAR__CNT_ZERO(), CPAR__CNT_MAX(maxiter), CPAR__CNT_BELOW(cnt, max) (a lane mask),
 *   CPAR__CNT_STEP(cnt, act) (counts the active lanes), CPAR__CNT_STORE(buf, cnt).
 *
 * Not a header of its own: no include guard, nothing else includes it. Pure functions;
 * any thread; no Python. */

/* numpy's test: np.abs(z) <= 2 (NaN: false). */
static inline int
CPAR__N(cpar__inside)(CPAR__T x, CPAR__T y)
{
    CPAR__T s = x * x + y * y;
    if (s < CPAR__LO)
        return 1;
    if (s > CPAR__HI)
        return 0;
    return (double)CPAR__HYPOT(x, y) <= 2.0;
}

static long
CPAR__N(cpar__count)(CPAR__T x, CPAR__T y, CPAR__T cr, CPAR__T ci, long maxiter)
{
    for (long t = 0; t < maxiter; t++) {
        CPAR__T nx, ny;
        if (!CPAR__N(cpar__inside)(x, y))
            return t;
        nx = CPAR__FMA(x, x, -(y * y)) + cr;
        ny = x * y + y * x + ci;
        x = nx;
        y = ny;
    }
    return maxiter;
}

#if CPAR__HAVE_AVX2_CODE
/* Points [0, CPAR__W * ngroups) of p: counts (as doubles) to out. maxiter <= CPAR__MAXITER.
 * CPAR__NV groups of points are iterated side by side (escape.c says why). */
__attribute__((target("avx2,fma"))) static void
CPAR__N(cpar__avx2_run)(const CPAR__T *p, ptrdiff_t st, size_t ngroups, int mandel, CPAR__T cr0,
                        CPAR__T ci0, long maxiter, double *out, ptrdiff_t ost)
{
    CPAR__V x[CPAR__NV], y[CPAR__NV], cr[CPAR__NV], ci[CPAR__NV], act[CPAR__NV];
    CPAR__CNT cnt[CPAR__NV];
    size_t grp[CPAR__NV], next = 0;
    int live = 0;
    const CPAR__V lo = CPAR__VOP(set1)(CPAR__LO), hi = CPAR__VOP(set1)(CPAR__HI);
    const CPAR__CNT maxc = CPAR__CNT_MAX(maxiter);

/* Loads the next group into slot v. */
#define CPAR__LOAD(v)                                                                              \
    do {                                                                                           \
        CPAR__T re_[CPAR__W], im_[CPAR__W];                                                        \
        for (int k_ = 0; k_ < CPAR__W; k_++) {                                                     \
            const CPAR__T *q_ = CPAR__PT(CPAR__T, p, st, CPAR__W * next + (size_t)k_);             \
            re_[k_] = q_[0];                                                                       \
            im_[k_] = q_[1];                                                                       \
        }                                                                                          \
        x[v] = mandel ? CPAR__VOP(setzero)() : CPAR__VOP(loadu)(re_);                              \
        y[v] = mandel ? CPAR__VOP(setzero)() : CPAR__VOP(loadu)(im_);                              \
        cr[v] = mandel ? CPAR__VOP(loadu)(re_) : CPAR__VOP(set1)(cr0);                             \
        ci[v] = mandel ? CPAR__VOP(loadu)(im_) : CPAR__VOP(set1)(ci0);                             \
        act[v] = CPAR__VOP(castsi256)(_mm256_set1_epi32(-1));                                      \
        cnt[v] = CPAR__CNT_ZERO();                                                                 \
        grp[v] = next++;                                                                           \
    } while (0)

    for (int v = 0; v < CPAR__NV; v++) {
        if (next < ngroups) {
            CPAR__LOAD(v);
            live++;
        } else {
            x[v] = y[v] = cr[v] = ci[v] = act[v] = CPAR__VOP(setzero)();
            cnt[v] = CPAR__CNT_ZERO();
            grp[v] = CPAR__NONE;
        }
    }
    while (live > 0) {
        for (int v = 0; v < CPAR__NV; v++) {
            CPAR__V xx = CPAR__VOP(mul)(x[v], x[v]), yy = CPAR__VOP(mul)(y[v], y[v]);
            CPAR__V xy = CPAR__VOP(mul)(x[v], y[v]), s = CPAR__VOP(add)(xx, yy);
            CPAR__V in = CPAR__VOP(cmp)(s, lo, _CMP_LT_OQ);
            CPAR__V decided = CPAR__VOP(or)(in, CPAR__VOP(cmp)(s, hi, _CMP_GT_OQ));
            int unsure;
            /* a lane ends when it has made maxiter steps, or when it is outside */
            act[v] = CPAR__VOP(and)(act[v], CPAR__CNT_BELOW(cnt[v], maxc));
            unsure = CPAR__VOP(movemask)(CPAR__VOP(andnot)(decided, act[v]));
            if (unsure) {
                CPAR__T xs[CPAR__W], ys[CPAR__W], ins[CPAR__W];
                CPAR__VOP(storeu)(xs, x[v]);
                CPAR__VOP(storeu)(ys, y[v]);
                CPAR__VOP(storeu)(ins, in);
                for (int k = 0; k < CPAR__W; k++)
                    if ((unsure & (1 << k)) && (double)CPAR__HYPOT(xs[k], ys[k]) <= 2.0)
                        memset(&ins[k], 0xff, sizeof ins[k]);
                in = CPAR__VOP(loadu)(ins);
            }
            act[v] = CPAR__VOP(and)(act[v], in);
            cnt[v] = CPAR__CNT_STEP(cnt[v], act[v]);
            /* Only lanes still inside move on (numpy updates only Z[mask]). */
            x[v] = CPAR__VOP(blendv)(x[v], CPAR__VOP(add)(CPAR__VOP(fmsub)(x[v], x[v], yy), cr[v]),
                                     act[v]);
            y[v] = CPAR__VOP(blendv)(y[v], CPAR__VOP(add)(CPAR__VOP(add)(xy, xy), ci[v]), act[v]);
            if (!CPAR__VOP(movemask)(act[v]) && grp[v] != CPAR__NONE) {
                CPAR__CNT_ELEM c[CPAR__W];
                CPAR__CNT_STORE(c, cnt[v]);
                for (int k = 0; k < CPAR__W; k++)
                    *(double *)((char *)out + (ptrdiff_t)(CPAR__W * grp[v] + (size_t)k) * ost) =
                        (double)c[k];
                if (next < ngroups) {
                    CPAR__LOAD(v);
                } else {
                    grp[v] = CPAR__NONE;
                    live--;
                }
            }
        }
    }
#undef CPAR__LOAD
}
#endif

/* The shared driver: julia (z0 = point, c fixed) or mandelbrot (z0 = 0, c = point). */
static void
CPAR__N(cpar__run)(const CPAR__T *p, ptrdiff_t st, size_t n, int mandel, CPAR__T cr, CPAR__T ci,
                   long maxiter, double *out, ptrdiff_t ost)
{
    size_t i = 0;
#if CPAR__HAVE_AVX2_CODE
    if (cpar_escape_impl() == CPAR_ESCAPE_AVX2 && maxiter <= CPAR__MAXITER) {
        CPAR__N(cpar__avx2_run)(p, st, n / CPAR__W, mandel, cr, ci, maxiter, out, ost);
        i = n / CPAR__W * CPAR__W;
    }
#endif
    for (; i < n; i++) {
        const CPAR__T *q = CPAR__PT(CPAR__T, p, st, i);
        long cnt = mandel ? CPAR__N(cpar__count)(0, 0, q[0], q[1], maxiter)
                          : CPAR__N(cpar__count)(q[0], q[1], cr, ci, maxiter);
        *(double *)((char *)out + (ptrdiff_t)i * ost) = (double)cnt;
    }
}

void
CPAR__PUB(cpar_escape_julia)(const CPAR__T *z0, ptrdiff_t zstride, size_t n, CPAR__T cr, CPAR__T ci,
                             long maxiter, double *out, ptrdiff_t ostride)
{
    CPAR__N(cpar__run)(z0, zstride, n, 0, cr, ci, maxiter, out, ostride);
}

void
CPAR__PUB(cpar_escape_mandelbrot)(const CPAR__T *c, ptrdiff_t cstride, size_t n, long maxiter,
                                  double *out, ptrdiff_t ostride)
{
    CPAR__N(cpar__run)(c, cstride, n, 1, 0, 0, maxiter, out, ostride);
}
