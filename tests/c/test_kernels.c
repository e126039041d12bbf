/* Tests of the pure-C numeric kernels: Philox4x32-10 against Random123's known-answer
 * vectors, stream/offset consistency, and escape counts of hand-checked points in both
 * implementations. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "escape.h"
#include "philox.h"
#include "test.h"

TEST_IMPL(philox_known_answers)
{
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                       {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    static const uint32_t key[3][2] = {
        {0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    static const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        cpar_philox4x32(ctr[i], key[i], out);
        for (int k = 0; k < 4; k++)
            ASSERT_EQ(out[k], want[i][k]);
    }
    return 0;
}

/* Element start + k does not depend on where a run starts, and strides are honoured. */
TEST_IMPL(philox_offsets_and_streams)
{
    double all[101], part[40], strided[2 * 33], other[101];
    cpar_philox_uniform(7, 3, 0, 101, all, sizeof(double));
    cpar_philox_uniform(7, 3, 61, 40, part, sizeof(double));
    ASSERT(memcmp(all + 61, part, sizeof(part)) == 0);
    cpar_philox_uniform(7, 3, 5, 33, strided, 2 * sizeof(double));
    for (int k = 0; k < 33; k++)
        ASSERT(strided[2 * k] == all[5 + k]);
    for (int k = 0; k < 101; k++)
        ASSERT(all[k] >= 0.0 && all[k] < 1.0);
    cpar_philox_uniform(7, 4, 0, 101, other, sizeof(double));
    ASSERT(memcmp(all, other, sizeof(all)) != 0);
    cpar_philox_normal(7, 3, 0, 50, all, sizeof(double));
    cpar_philox_normal(7, 3, 20, 30, part, sizeof(double));
    ASSERT(memcmp(all + 20, part, 30 * sizeof(double)) == 0);
    ASSERT_EQ(cpar_philox_pi_hits(1, 0, 0, 1000) + 0,
              cpar_philox_pi_hits(1, 0, 0, 400) + cpar_philox_pi_hits(1, 0, 400, 600));
    return 0;
}

/* Hand-checked escape counts: 0 (outside at start), 1, never (a fixed point), and the
 * same answers from each implementation, for doubles and floats, strided. */
TEST_IMPL(escape_counts)
{
    int impls[2] = {CPAR_ESCAPE_GENERIC, CPAR_ESCAPE_AVX2};
    for (int m = 0; m < 2; m++) {
        double z[2 * 9] = {3, 0, 1.9, 0, 0, 0, -1, 0, 0, 0, 0, 0, 2, 0, 0, 2.000001, NAN, 0};
        float zf[2 * 9];
        double out[9], outf[9], mb[9];
        if (cpar_escape_force(impls[m]) != CPAR_OK)
            continue; /* this CPU has no AVX2+FMA */
        for (int i = 0; i < 18; i++)
            zf[i] = (float)z[i];
        /* c = 0: |z| > 2 escapes at once; |z| <= 2 stays or grows. */
        cpar_escape_julia_f64(z, 2 * sizeof(double), 9, 0.0, 0.0, 50, out, sizeof(double));
        ASSERT(out[0] == 0 && out[1] == 1 && out[2] == 50 && out[3] == 50 && out[6] == 1);
        ASSERT(out[7] == 0 && out[8] == 0);
        cpar_escape_julia_f32(zf, 2 * sizeof(float), 9, 0.0f, 0.0f, 50, outf, sizeof(double));
        for (int i = 0; i < 9; i++)
            ASSERT(outf[i] == out[i]);
        /* Mandelbrot: c = -1 cycles (never escapes), c = 1 escapes at t = 3 (0, 1, 2, 5). */
        z[0] = -1;
        z[2] = 1;
        cpar_escape_mandelbrot_f64(z, 2 * sizeof(double), 2, 100, mb, sizeof(double));
        ASSERT(mb[0] == 100 && mb[1] == 3);
        cpar_escape_julia_f64(z, 2 * sizeof(double), 9, 0.0, 0.0, 0, out, sizeof(double));
        for (int i = 0; i < 9; i++)
            ASSERT(out[i] == 0);
    }
    ASSERT_OK(cpar_escape_force(-1));
    ASSERT_EQ(cpar_escape_force(7), CPAR_EINVAL);
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(philox_known_answers),
        TEST_ENTRY(philox_offsets_and_streams),
        TEST_ENTRY(escape_counts),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
