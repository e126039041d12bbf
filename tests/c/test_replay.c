/* Tests of the replay guard (replay.h) and the ZAP allow-list parser (zap.h). */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "replay.h"
#include "test.h"
#include "zap.h"

#include <zmq.h>

#define SEC 1000000000ull
#define NOW (1700000000ull * SEC) /* a wall-clock time */

static void
tag_of(uint64_t v, uint8_t tag[32])
{
    memset(tag, 0xa5, 32);
    memcpy(tag, &v, sizeof(v));
}

TEST_IMPL(window)
{
    cpar_replay r;
    uint8_t t[32];
    ASSERT_OK(cpar_replay_init(&r, 2000, 0));
    tag_of(1, t);
    ASSERT_EQ(cpar_replay_check(&r, t, NOW - 3 * SEC, 1, NOW, 5 * SEC), CPAR_EWINDOW);
    ASSERT_EQ(cpar_replay_check(&r, t, NOW + 3 * SEC, 1, NOW, 5 * SEC), CPAR_EWINDOW);
    ASSERT_EQ(cpar_replay_check(&r, t, 0, 1, NOW, 5 * SEC), CPAR_EWINDOW);
    ASSERT_EQ(cpar_replay_check(&r, t, UINT64_MAX, 1, NOW, 5 * SEC), CPAR_EWINDOW);
    /* A refused message is not remembered: the same tag passes once in the window. */
    ASSERT_OK(cpar_replay_check(&r, t, NOW - 2 * SEC, 1, NOW, 5 * SEC));
    ASSERT_EQ(cpar_replay_check(&r, t, NOW - 2 * SEC, 1, NOW, 5 * SEC), CPAR_EREPLAY);
    tag_of(2, t);
    ASSERT_OK(cpar_replay_check(&r, t, NOW + 2 * SEC, 1, NOW, 5 * SEC));
    /* Unchecked timestamps (REPLY): any time, but still once. */
    tag_of(3, t);
    ASSERT_OK(cpar_replay_check(&r, t, 1, 0, NOW, 5 * SEC));
    ASSERT_EQ(cpar_replay_check(&r, t, 1, 0, NOW, 5 * SEC), CPAR_EREPLAY);
    ASSERT_EQ(r.early, 0);
    cpar_replay_free(&r);
    return 0;
}

TEST_IMPL(forgets_after_two_windows)
{
    cpar_replay r;
    uint8_t t[32];
    ASSERT_OK(cpar_replay_init(&r, 1000, 0));
    tag_of(7, t);
    ASSERT_OK(cpar_replay_check(&r, t, NOW, 1, NOW, 10 * SEC));
    /* Still remembered after 2 s of monotonic time ... */
    ASSERT_EQ(cpar_replay_check(&r, t, 0, 0, NOW, 12 * SEC), CPAR_EREPLAY);
    /* ... and forgotten once another message comes later (a copy would be stale). */
    tag_of(8, t);
    ASSERT_OK(cpar_replay_check(&r, t, NOW, 1, NOW, 12 * SEC + 1));
    ASSERT_EQ(r.n, 1);
    tag_of(7, t);
    ASSERT_EQ(cpar_replay_check(&r, t, NOW, 1, NOW + 3 * SEC, 13 * SEC), CPAR_EWINDOW);
    ASSERT_EQ(r.early, 0);
    cpar_replay_free(&r);
    return 0;
}

/* Random tags against a model (the last `cap` accepted), through growth and wrap-around;
 * tags share their low bits often, so probe chains and backward shifts get exercised. */
TEST_IMPL(bounded_set_against_model)
{
    enum { CAP = 4096, N = 60000 };
    cpar_replay r;
    uint64_t *model = malloc(N * sizeof(*model));
    size_t accepted = 0;
    uint8_t t[32];
    ASSERT(model != NULL);
    ASSERT_OK(cpar_replay_init(&r, 60000, CAP));
    ASSERT_EQ(r.cap, CAP);
    srand(5);
    for (int i = 0; i < N; i++) {
        uint64_t v;
        int fresh = rand() % 3 != 0 || accepted == 0, expect;
        if (fresh)
            v = ((uint64_t)rand() << 32 | (uint64_t)rand()) & ~(uint64_t)0xfff0;
        else
            v = model[accepted - 1 - (size_t)rand() % (accepted < 2 * CAP ? accepted : 2 * CAP)];
        expect = 0;
        for (size_t k = accepted > CAP ? accepted - CAP : 0; k < accepted; k++)
            if (model[k] == v)
                expect = CPAR_EREPLAY;
        tag_of(v, t);
        ASSERT_EQ(cpar_replay_check(&r, t, NOW, 1, NOW, SEC + (uint64_t)i), expect);
        if (expect == 0)
            model[accepted++] = v;
        ASSERT_EQ(r.n, accepted < CAP ? accepted : CAP);
    }
    ASSERT_EQ(r.early, accepted - CAP);
    ASSERT_LE(r.ringcap, CAP);
    free(model);
    cpar_replay_free(&r);
    return 0;
}

TEST_IMPL(zap_allow_list_parsing)
{
    cpar_zap z;
    char err[256];
    const char *a = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    const char *b = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    char both[128];
    uint8_t raw[32];

    memset(&z, 0, sizeof(z));
    snprintf(both, sizeof(both), " %s,\n%s ", a, b);
    ASSERT_OK(cpar_zap_parse(&z, both, err, sizeof(err)));
    ASSERT_EQ(z.nkeys, 2);
    ASSERT(zmq_z85_decode(raw, b) != NULL);
    ASSERT(cpar_zap_allowed(&z, raw));
    raw[0] ^= 1;
    ASSERT(!cpar_zap_allowed(&z, raw));
    cpar_zap_close(&z);
    ASSERT_EQ(cpar_zap_parse(&z, "", err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "at least one");
    ASSERT_EQ(cpar_zap_parse(&z, NULL, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_EQ(cpar_zap_parse(&z, "short", err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "40 Z85");
    snprintf(both, sizeof(both), "%s,%.39s~", a, b);
    ASSERT_EQ(cpar_zap_parse(&z, both, err, sizeof(err)), CPAR_EINVAL);
    ASSERT_STR_CONTAINS(err, "key 2");
    ASSERT(z.keys == NULL && z.nkeys == 0);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(window),
    TEST_ENTRY(forgets_after_two_windows),
    TEST_ENTRY(bounded_set_against_model),
    TEST_ENTRY(zap_allow_list_parsing),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
