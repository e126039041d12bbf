/* Replay protection: a timestamp window and a bounded set of recent tags (replay.h). */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

#define CPAR__REPLAY_FIRST_RING 1024u /* ring entries allocated at first use */

static size_t
cpar__pow2(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

int
cpar_replay_init(cpar_replay *r, uint64_t window_ms, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->window_ns = (window_ms ? window_ms : CPAR_REPLAY_DEFAULT_WINDOW_MS) * 1000000u;
    if (cap == 0)
        cap = CPAR_REPLAY_DEFAULT_CAP;
    if (cap < CPAR_REPLAY_MIN_CAP)
        cap = CPAR_REPLAY_MIN_CAP;
    if (cap > (size_t)1 << 30)
        cap = (size_t)1 << 30;
    r->cap = cpar__pow2(cap);
    return CPAR_OK;
}

void
cpar_replay_free(cpar_replay *r)
{
    free(r->ring);
    free(r->slots);
    r->ring = NULL;
    r->slots = NULL;
    r->n = r->ringcap = r->head = 0;
}

/* The slot holding ring position pos (whose tag is tag). */
static size_t
cpar__replay_slot_of(const cpar_replay *r, uint64_t tag, size_t pos)
{
    size_t i = (size_t)tag & r->mask;
    while (r->slots[i] != (uint32_t)(pos + 1))
        i = (i + 1) & r->mask;
    return i;
}

/* Forgets the oldest tag (linear probing with backward-shift deletion). */
static void
cpar__replay_pop(cpar_replay *r)
{
    size_t pos = r->head;
    size_t i = cpar__replay_slot_of(r, r->ring[pos].tag, pos);
    size_t j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & r->mask;
        if (r->slots[j] == 0)
            break;
        home = (size_t)r->ring[r->slots[j] - 1].tag & r->mask;
        /* The entry at j may move to i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            r->slots[i] = r->slots[j];
            i = j;
        }
    }
    r->slots[i] = 0;
    r->head = (r->head + 1) & (r->ringcap - 1);
    r->n--;
}

static void
cpar__replay_place(cpar_replay *r, size_t pos)
{
    size_t i = (size_t)r->ring[pos].tag & r->mask;
    while (r->slots[i] != 0)
        i = (i + 1) & r->mask;
    r->slots[i] = (uint32_t)(pos + 1);
}

/* Doubles the ring (up to cap); returns 0 or CPAR_ENOMEM (r unchanged). */
static int
cpar__replay_grow(cpar_replay *r)
{
    size_t ncap = r->ringcap ? 2 * r->ringcap : CPAR__REPLAY_FIRST_RING;
    cpar__replay_ent *ring;
    uint32_t *slots;

    if (ncap > r->cap)
        ncap = r->cap;
    ring = malloc(ncap * sizeof(*ring));
    slots = calloc(2 * ncap, sizeof(*slots));
    if (ring == NULL || slots == NULL) {
        free(ring);
        free(slots);
        return CPAR_ENOMEM;
    }
    for (size_t k = 0; k < r->n; k++)
        ring[k] = r->ring[(r->head + k) & (r->ringcap - 1)];
    free(r->ring);
    free(r->slots);
    r->ring = ring;
    r->slots = slots;
    r->ringcap = ncap;
    r->mask = 2 * ncap - 1;
    r->head = 0;
    for (size_t k = 0; k < r->n; k++)
        cpar__replay_place(r, k);
    return CPAR_OK;
}

static int
cpar__replay_seen(const cpar_replay *r, uint64_t tag)
{
    size_t i;
    if (r->n == 0)
        return 0;
    for (i = (size_t)tag & r->mask; r->slots[i] != 0; i = (i + 1) & r->mask)
        if (r->ring[r->slots[i] - 1].tag == tag)
            return 1;
    return 0;
}

int
cpar_replay_check(cpar_replay *r, const uint8_t *tag, uint64_t ts, int check_ts, uint64_t now_wall,
                  uint64_t now_mono)
{
    uint64_t t;
    size_t pos;

    if (check_ts && (ts < (now_wall > r->window_ns ? now_wall - r->window_ns : 0) ||
                     ts > now_wall + r->window_ns))
        return CPAR_EWINDOW;
    memcpy(&t, tag, sizeof(t));
    if (cpar__replay_seen(r, t))
        return CPAR_EREPLAY;
    /* Tags older than two windows can go: a copy would be outside the window by now. */
    while (r->n > 0 && now_mono - r->ring[r->head].at > 2 * r->window_ns)
        cpar__replay_pop(r);
    if (r->n == r->ringcap && (r->ringcap == r->cap || cpar__replay_grow(r) != 0)) {
        if (r->n == 0)
            return CPAR_OK; /* no memory at all: accept without remembering */
        cpar__replay_pop(r);
        r->early++;
    }
    pos = (r->head + r->n) & (r->ringcap - 1);
    r->ring[pos].tag = t;
    r->ring[pos].at = now_mono;
    r->n++;
    cpar__replay_place(r, pos);
    return CPAR_OK;
}
