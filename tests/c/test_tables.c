/* Tests of the controller's tables: the identity map (idmap.c), the outstanding-request
 * table (route.c) and the engine/client registry (registry.c), each against a simple
 * reference model under many random operations. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "idmap.h"
#include "registry.h"
#include "route.h"
#include "scheduler.h"
#include "test.h"

/* A small deterministic generator (xorshift), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
    return cpar_test_xorshift(&rng_state);
}

/* Key i of the model: a distinct identity of 4 to 256 bytes (5, like libzmq's own, for
 * every seventh). */
static size_t
make_key(uint32_t i, uint8_t *out)
{
    size_t len = i % 7 == 0 ? 5 : 4 + (i * 31) % 253;
    for (size_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i >> (8 * (j % 4))) ^ (uint8_t)j;
    memcpy(out, &i, 4);
    return len;
}

TEST_IMPL(idmap_basic)
{
    cpar_idmap m;
    int32_t v = 0;

    cpar_idmap_init(&m);
    ASSERT_EQ(cpar_idmap_get(&m, "a", 1, &v), 0);
    ASSERT_EQ(cpar_idmap_del(&m, "a", 1), 0);
    ASSERT_OK(cpar_idmap_put(&m, "a", 1, 1));
    ASSERT_OK(cpar_idmap_put(&m, "ab", 2, 2));
    ASSERT_OK(cpar_idmap_put(&m, "", 0, 3)); /* the empty key is a key */
    ASSERT_EQ(cpar_idmap_get(&m, "a", 1, &v), 1);
    ASSERT_EQ(v, 1);
    ASSERT_EQ(cpar_idmap_get(&m, "ab", 2, &v), 1);
    ASSERT_EQ(v, 2);
    ASSERT_EQ(cpar_idmap_get(&m, "", 0, &v), 1);
    ASSERT_EQ(v, 3);
    ASSERT_EQ(cpar_idmap_get(&m, "b", 1, &v), 0);
    ASSERT_OK(cpar_idmap_put(&m, "a", 1, 10)); /* overwrite */
    ASSERT_EQ(m.tab.count, 3);
    ASSERT_EQ(cpar_idmap_get(&m, "a", 1, &v), 1);
    ASSERT_EQ(v, 10);
    ASSERT_EQ(cpar_idmap_del(&m, "a", 1), 1);
    ASSERT_EQ(cpar_idmap_get(&m, "a", 1, &v), 0);
    ASSERT_EQ(cpar_idmap_get(&m, "ab", 2, &v), 1);
    cpar_idmap_free(&m);
    ASSERT_EQ(m.tab.count, 0);
    ASSERT_EQ(cpar_idmap_get(&m, "ab", 2, &v), 0);
    return 0;
}

TEST_IMPL(idmap_random_against_model)
{
    enum { NKEYS = 3000, OPS = 200000 };
    static int32_t model[NKEYS]; /* -1: absent */
    uint8_t key[300];
    cpar_idmap m;
    size_t count = 0;

    cpar_idmap_init(&m);
    for (int i = 0; i < NKEYS; i++)
        model[i] = -1;
    for (int op = 0; op < OPS; op++) {
        uint32_t k = (uint32_t)(rng() % NKEYS);
        size_t len = make_key(k, key);
        int32_t v = -2;
        switch (rng() % 3) {
        case 0:
            ASSERT_OK(cpar_idmap_put(&m, key, len, op));
            if (model[k] < 0)
                count++;
            model[k] = op;
            break;
        case 1:
            ASSERT_EQ(cpar_idmap_del(&m, key, len), model[k] >= 0);
            if (model[k] >= 0)
                count--;
            model[k] = -1;
            break;
        default:
            ASSERT_EQ(cpar_idmap_get(&m, key, len, &v), model[k] >= 0);
            if (model[k] >= 0)
                ASSERT_EQ(v, model[k]);
            break;
        }
        ASSERT_EQ(m.tab.count, count);
    }
    /* Every key checked once more at the end (catches a broken backward shift). */
    for (uint32_t k = 0; k < NKEYS; k++) {
        int32_t v;
        size_t len = make_key(k, key);
        ASSERT_EQ(cpar_idmap_get(&m, key, len, &v), model[k] >= 0);
        if (model[k] >= 0)
            ASSERT_EQ(v, model[k]);
    }
    ASSERT_LE(m.tab.count * 2, m.tab.nslots);
    cpar_idmap_free(&m);
    return 0;
}

static void
rid(uint32_t i, uint8_t out[16])
{
    memset(out, 0, 16);
    memcpy(out + 12, &i, 4); /* ids that differ only in their last bytes */
}

TEST_IMPL(route_basic)
{
    cpar_route r;
    uint8_t a[16], b[16];
    uint32_t client = 99;
    cpar_route_entry e;

    rid(1, a);
    rid(2, b);
    cpar_route_init(&r);
    ASSERT_EQ(cpar_route_find(&r, a, 0, &client), 0);
    ASSERT_EQ(cpar_route_remove(&r, a, 0, &client), 0);
    ASSERT_EQ(cpar_route_pop_engine(&r, 0, &e), 0);
    ASSERT_OK(cpar_route_insert(&r, a, 0, 7));
    ASSERT_OK(cpar_route_insert(&r, a, 1, 8)); /* same id, another engine */
    ASSERT_OK(cpar_route_insert(&r, b, 1, 9));
    ASSERT_EQ(cpar_route_insert(&r, a, 1, 10), CPAR_EINVAL); /* duplicate */
    ASSERT_EQ(cpar_route_insert(&r, a, -1, 1), CPAR_EINVAL);
    ASSERT_EQ(cpar_route_insert(&r, a, CPAR_ROUTE_MAX_ENGINE, 1), CPAR_EINVAL);
    ASSERT_EQ(r.ids.count, 3);
    ASSERT_EQ(cpar_route_engine_count(&r, 0), 1);
    ASSERT_EQ(cpar_route_engine_count(&r, 1), 2);
    ASSERT_EQ(cpar_route_engine_count(&r, 5000), 0);
    ASSERT_EQ(cpar_route_find(&r, a, 1, &client), 1);
    ASSERT_EQ(client, 8);
    ASSERT_EQ(cpar_route_remove(&r, a, 0, &client), 1);
    ASSERT_EQ(client, 7);
    ASSERT_EQ(cpar_route_find(&r, a, 0, &client), 0);
    ASSERT_EQ(cpar_route_find(&r, a, 1, &client), 1);
    /* Popping engine 1 yields exactly its two entries. */
    ASSERT_EQ(cpar_route_pop_engine(&r, 1, &e), 1);
    ASSERT_EQ(e.engine, 1);
    ASSERT_EQ(cpar_route_pop_engine(&r, 1, &e), 1);
    ASSERT_EQ(cpar_route_pop_engine(&r, 1, &e), 0);
    ASSERT_EQ(r.ids.count, 0);
    ASSERT_EQ(cpar_route_find(&r, b, 1, &client), 0);
    cpar_route_free(&r);
    return 0;
}

TEST_IMPL(route_grow_and_random_against_model)
{
    enum { NIDS = 20000, NENG = 8, OPS = 300000 };
    static int32_t model[NIDS][NENG]; /* client + 1, 0: absent */
    static uint32_t per_engine[NENG];
    cpar_route r;
    size_t count = 0;
    uint8_t id[16];

    cpar_route_init(&r);
    /* Grow far past the first sizes, then empty it. */
    for (uint32_t i = 0; i < 100000; i++) {
        rid(i, id);
        ASSERT_OK(cpar_route_insert(&r, id, (int32_t)(i % 3), i));
    }
    ASSERT_EQ(r.ids.count, 100000);
    for (uint32_t i = 0; i < 100000; i += 2) {
        uint32_t c;
        rid(i, id);
        ASSERT_EQ(cpar_route_remove(&r, id, (int32_t)(i % 3), &c), 1);
        ASSERT_EQ(c, i);
    }
    for (int e = 0; e < 3; e++) {
        cpar_route_entry ent;
        while (cpar_route_pop_engine(&r, e, &ent))
            ASSERT_EQ(ent.engine, e);
        ASSERT_EQ(cpar_route_engine_count(&r, e), 0);
    }
    ASSERT_EQ(r.ids.count, 0);
    /* Random operations against the model; the pool is reused from the free list. */
    for (int op = 0; op < OPS; op++) {
        uint32_t i = (uint32_t)(rng() % NIDS);
        int32_t e = (int32_t)(rng() % NENG);
        uint32_t c = 0;
        rid(i, id);
        switch (rng() % 8) {
        case 0:
        case 1:
        case 2: {
            int rc = cpar_route_insert(&r, id, e, (uint32_t)op);
            if (model[i][e]) {
                ASSERT_EQ(rc, CPAR_EINVAL);
            } else {
                ASSERT_OK(rc);
                model[i][e] = op + 1;
                per_engine[e]++;
                count++;
            }
            break;
        }
        case 3:
        case 4:
            ASSERT_EQ(cpar_route_remove(&r, id, e, &c), model[i][e] != 0);
            if (model[i][e]) {
                ASSERT_EQ(c, (uint32_t)(model[i][e] - 1));
                model[i][e] = 0;
                per_engine[e]--;
                count--;
            }
            break;
        case 5:
            if (rng() % 2000 == 0) {
                /* An engine dies: everything it owed comes out, nothing else. */
                cpar_route_entry ent;
                uint32_t n = 0;
                while (cpar_route_pop_engine(&r, e, &ent)) {
                    uint32_t k;
                    ASSERT_EQ(ent.engine, e);
                    memcpy(&k, ent.msg_id + 12, 4);
                    ASSERT(model[k][e] != 0);
                    ASSERT_EQ(ent.client, (uint32_t)(model[k][e] - 1));
                    model[k][e] = 0;
                    n++;
                }
                ASSERT_EQ(n, per_engine[e]);
                count -= n;
                per_engine[e] = 0;
            }
            break;
        default:
            ASSERT_EQ(cpar_route_find(&r, id, e, &c), model[i][e] != 0);
            if (model[i][e])
                ASSERT_EQ(c, (uint32_t)(model[i][e] - 1));
            break;
        }
        ASSERT_EQ(r.ids.count, count);
        ASSERT_EQ(cpar_route_engine_count(&r, e), per_engine[e]);
    }
    for (uint32_t i = 0; i < NIDS; i++)
        for (int32_t e = 0; e < NENG; e++) {
            uint32_t c;
            rid(i, id);
            ASSERT_EQ(cpar_route_find(&r, id, e, &c), model[i][e] != 0);
        }
    cpar_route_free(&r);
    return 0;
}

TEST_IMPL(registry_engines_and_clients)
{
    cpar_registry reg;
    int32_t id;
    cpar_reg_engine *e;

    cpar_registry_init(&reg);
    /* Automatic ids count from 0; a requested id is honoured when free. */
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), 0);
    ASSERT_OK(cpar_registry_engine_add(&reg, 0, "e0", 2, 10, 100, "h0", 1));
    ASSERT_EQ(cpar_registry_pick_id(&reg, 3), 3);
    ASSERT_OK(cpar_registry_engine_add(&reg, 3, "e3", 2, 11, 103, "h3", 1));
    ASSERT_EQ(cpar_registry_pick_id(&reg, 3), CPAR_EINVAL);
    ASSERT_EQ(cpar_registry_pick_id(&reg, CPAR_REGISTRY_MAX_REQUESTED_ID + 1), CPAR_EINVAL);
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), 1);
    ASSERT_OK(cpar_registry_engine_add(&reg, 1, "e1", 2, 12, 101, "h1", 1));
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), 2);
    ASSERT_OK(cpar_registry_engine_add(&reg, 2, "e2", 2, 5000, 102, "h2", 1));
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), 4); /* 3 is taken by request */
    ASSERT_EQ(reg.nlive, 4);
    ASSERT_EQ(cpar_registry_engine_by_ident(&reg, "e3", 2), 3);
    ASSERT_EQ(cpar_registry_engine_by_fd(&reg, 5000), 2);
    ASSERT_EQ(cpar_registry_engine_by_fd(&reg, 9), -1);
    ASSERT_EQ(cpar_registry_engine_by_fd(&reg, -1), -1);
    ASSERT(cpar_registry_engine_live(&reg, 1));
    ASSERT(!cpar_registry_engine_live(&reg, 7));
    ASSERT(!cpar_registry_engine_live(&reg, -1));
    e = cpar_registry_engine(&reg, 1);
    ASSERT(e != NULL);
    ASSERT_EQ(e->pid, 101);
    ASSERT(strcmp(e->host, "h1") == 0);
    /* Removal forgets identity and fd; the id is not handed out automatically again but
     * may be requested. */
    cpar_registry_engine_remove(&reg, 1);
    ASSERT_EQ(reg.nlive, 3);
    ASSERT(cpar_registry_engine(&reg, 1) == NULL);
    ASSERT_EQ(cpar_registry_engine_by_ident(&reg, "e1", 2), -1);
    ASSERT_EQ(cpar_registry_engine_by_fd(&reg, 12), -1);
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), 4);
    ASSERT_EQ(cpar_registry_pick_id(&reg, 1), 1);
    cpar_registry_engine_remove(&reg, 1); /* twice is harmless */
    ASSERT_EQ(reg.nlive, 3);
    /* Many engines: the table grows. */
    for (int i = 0; i < 300; i++) {
        char ident[16];
        int n = snprintf(ident, sizeof(ident), "x%d", i);
        id = cpar_registry_pick_id(&reg, -1);
        ASSERT_OK(cpar_registry_engine_add(&reg, id, ident, (size_t)n, 100 + i, i, "h", 1));
    }
    ASSERT_EQ(cpar_registry_engine_by_ident(&reg, "x299", 4), 303);
    /* Clients: slots are stable and never reused. */
    ASSERT_EQ(cpar_registry_client(&reg, "c0", 2), 0);
    ASSERT_EQ(cpar_registry_client(&reg, "c1", 2), 1);
    ASSERT_EQ(cpar_registry_client(&reg, "c0", 2), 0);
    ASSERT(cpar_registry_client_at(&reg, 1) != NULL);
    cpar_registry_client_remove(&reg, 0);
    ASSERT(cpar_registry_client_at(&reg, 0) == NULL);
    ASSERT(cpar_registry_client_at(&reg, 77) == NULL);
    ASSERT_EQ(cpar_registry_client(&reg, "c0", 2), 2);
    for (int i = 0; i < 100; i++) {
        char ident[16];
        int n = snprintf(ident, sizeof(ident), "client-%d", i);
        ASSERT_EQ(cpar_registry_client(&reg, ident, (size_t)n), 3 + i);
    }
    cpar_registry_free(&reg);
    return 0;
}

TEST_IMPL(registry_and_scheduler_share_the_id_limit)
{
    cpar_registry reg;
    cpar_sched *s = NULL;
    int32_t id;

    ASSERT_EQ(CPAR_ENGINE_ID_LIMIT, 65536); /* the shipped value */
    ASSERT_EQ(CPAR_REGISTRY_MAX_ID, CPAR_ENGINE_ID_LIMIT - 1);
    ASSERT_EQ(CPAR_REGISTRY_MAX_REQUESTED_ID, CPAR_ENGINE_ID_LIMIT - 1);
    cpar_registry_init(&reg);
    ASSERT_OK(cpar_sched_new(CPAR_SCHED_LEASTLOAD, 0, 1, &s));
    for (int32_t i = 0; i < CPAR_ENGINE_ID_LIMIT; i++) {
        uint8_t ident[4] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), 1};
        id = cpar_registry_pick_id(&reg, -1);
        ASSERT_EQ(id, i);
        ASSERT_OK(cpar_registry_engine_add(&reg, id, ident, sizeof(ident), -1, i, "h", 1));
        /* Engines come and go: ids are not reused automatically. */
        if (i % 2)
            cpar_registry_engine_remove(&reg, id);
    }
    ASSERT_EQ(cpar_registry_pick_id(&reg, -1), CPAR_EINVAL); /* every id used */
    /* A requested id of a gone engine may still be taken again, below the limit only. */
    ASSERT_EQ(cpar_registry_pick_id(&reg, CPAR_REGISTRY_MAX_ID), CPAR_REGISTRY_MAX_ID);
    ASSERT_EQ(cpar_registry_pick_id(&reg, CPAR_ENGINE_ID_LIMIT), CPAR_EINVAL);
    /* The scheduler knows the highest id the registry can give, and nothing above. */
    ASSERT_OK(cpar_sched_engine_add(s, 0));
    ASSERT_OK(cpar_sched_engine_add(s, CPAR_REGISTRY_MAX_ID));
    ASSERT_EQ(cpar_sched_engine_add(s, CPAR_ENGINE_ID_LIMIT), CPAR_EINVAL);
    ASSERT_EQ(cpar_sched_load(s, CPAR_REGISTRY_MAX_ID), 0);
    cpar_sched_free(s);
    cpar_registry_free(&reg);
    return 0;
}

static const cpar_test tests[] = {
    TEST_ENTRY(idmap_basic),
    TEST_ENTRY(idmap_random_against_model),
    TEST_ENTRY(route_basic),
    TEST_ENTRY(route_grow_and_random_against_model),
    TEST_ENTRY(registry_engines_and_clients),
    TEST_ENTRY(registry_and_scheduler_share_the_id_limit),
};

int
main(int argc, char **argv)
{
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
