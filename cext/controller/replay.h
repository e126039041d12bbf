/* Replay protection for the controller's incoming messages: a timestamp window and a
 * bounded set of recently seen signatures.
 *
 * A message is refused when its send timestamp (header t0; not checked for REPLY, whose
 * t0/t1 are a task's start and end times) lies more than `window` away from the
 * controller's wall clock (CPAR_EWINDOW), or when a message with the same HMAC tag was
 * accepted recently (CPAR_EREPLAY): an identical copy of a signed message is a replay,
 * while a sender that reuses a msg id with other content gets a different tag and
 * reaches the controller's own duplicate checks. Tags are the first 8 bytes of the
 * HMAC-SHA256 output, uniformly random to anyone without the key, so they serve as hash
 * keys directly.
 *
 * An accepted tag is remembered for 2 * window of monotonic time (a replay after that is
 * outside the window) or until `cap` newer tags push it out; tags pushed out early are
 * counted (`early`) so the log can say the set is too small for the message rate.
 *
 * Ownership and threads: a cpar_replay belongs to one thread (the controller loop); it owns
 * its arrays. No Python, no GIL. */
#ifndef CPAR_CORE_REPLAY_H
#define CPAR_CORE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define CPAR_REPLAY_DEFAULT_WINDOW_MS 300000u /* 5 minutes either side */
#define CPAR_REPLAY_DEFAULT_CAP 131072u       /* tags remembered at most (~3 MB) */
#define CPAR_REPLAY_MIN_CAP 64u

typedef struct cpar__replay_ent {
    uint64_t tag; /* first 8 bytes of the message's HMAC tag */
    uint64_t at;  /* monotonic ns when it was accepted */
} cpar__replay_ent;

typedef struct cpar_replay {
    uint64_t window_ns;     /* |timestamp - now| accepted */
    size_t cap;             /* most tags remembered (a power of two) */
    cpar__replay_ent *ring; /* accepted tags, oldest at head */
    size_t ringcap;         /* allocated ring entries (a power of two, <= cap) */
    size_t head, n;         /* ring[head .. head + n) mod ringcap */
    uint32_t *slots;        /* open addressing over ring positions (+1; 0 is empty) */
    size_t mask;            /* slots has mask + 1 = 2 * ringcap entries */
    uint64_t early;         /* tags forgotten before 2 * window had passed */
} cpar_replay;

/* Sets up r: window_ms 0 means CPAR_REPLAY_DEFAULT_WINDOW_MS, cap 0 means
 * CPAR_REPLAY_DEFAULT_CAP (rounded up to a power of two, at least CPAR_REPLAY_MIN_CAP).
 * Returns 0 or CPAR_ENOMEM. */
int cpar_replay_init(cpar_replay *r, uint64_t window_ms, size_t cap);
void cpar_replay_free(cpar_replay *r);

/* Checks one authenticated message: its tag (32 bytes), its send timestamp ts (ns since the
 * epoch; ignored unless check_ts), the wall clock now_wall and the monotonic clock
 * now_mono (ns). Returns 0 and remembers the tag, or CPAR_EWINDOW / CPAR_EREPLAY (nothing
 * remembered). Never fails otherwise: without memory to grow it forgets older tags. */
int cpar_replay_check(cpar_replay *r, const uint8_t *tag, uint64_t ts, int check_ts,
                      uint64_t now_wall, uint64_t now_mono);

#endif /* CPAR_CORE_REPLAY_H */
