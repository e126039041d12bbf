/* Message id generators (ids.h). */
#include "ids.h"

#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "wire.h"

void
cpar_ids_init(cpar_ids *g, uint64_t salt, uint8_t mark)
{
    if (getrandom(g->prefix, sizeof(g->prefix), 0) != (ssize_t)sizeof(g->prefix)) {
        uint64_t t = cpar_now_ns() ^ ((uint64_t)getpid() << 32) ^ (salt << 20);
        memcpy(g->prefix, &t, sizeof(g->prefix));
    }
    g->mark = mark;
    atomic_init(&g->next, 0);
}

void
cpar_ids_next(cpar_ids *g, uint8_t out[CPAR_IDS_SIZE])
{
    uint64_t n = (uint64_t)atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed) + 1;
    memcpy(out, g->prefix, 8);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(n >> (8 * i));
    out[8] |= g->mark;
}
