/* The same-host shared-memory path for large frames: descriptor tables, the receiver's
 * process_vm_readv resolve, locality tokens and the sender's pin sets.
 *
 * A message with CPAR_FLAG_SHM carries, as its LAST payload frame, a table of
 * CPAR_SHM_ENTRY_SIZE-byte little-endian entries {u32 frame_index, u32 pid, u64 addr,
 * u64 len}; the frames at those indices are empty placeholders on the wire and the bytes
 * stay in the sender's memory until the sender unpins them (docs/protocol.md, "Shared
 * memory"). The receiver reads them with process_vm_readv into fresh pages of its own.
 *
 * The table's first entry is the SEAL {CPAR_SHM_SEAL_INDEX, pid, addr of an 8-byte slot,
 * the value the slot holds}. The sender breaks the seal (stores 0 in the slot) before it
 * releases the pinned bytes, and never unmaps a slot; the receiver checks the seal before
 * and after it copies the bytes, so it either has exactly the bytes the sender pinned or
 * fails with CPAR_ESTALE, never something else (a seqlock across processes).
 *
 * Ownership and threads: no Python, no GIL. Every function works on caller-owned data
 * and may run on any thread; a cpar_shm_pins set belongs to one thread at a time (its
 * owner's lock or thread). Frames moved into a pin set are closed only by the pin set. */
#ifndef CPAR_CORE_SHM_H
#define CPAR_CORE_SHM_H

#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "wire.h"

#define CPAR_SHM_ENTRY_SIZE 24        /* bytes of one descriptor table entry */
#define CPAR_SHM_MIN_SIZE (64u << 10) /* frames at least this big go by descriptor */
#define CPAR_SHM_MAX_LEN (1ull << 40) /* largest frame a descriptor may name */
#define CPAR_SHM_TOKEN_SIZE 256       /* room for a locality token */
#define CPAR_SHM_PIN_TIMEOUT_NS (120ull * 1000000000ull) /* engine-side safety bound */
#define CPAR_SHM_SEAL_INDEX 0xFFFFFFFFu /* frame_index of a table's first entry, the seal */

typedef struct cpar_shm_entry {
    uint32_t index; /* payload frame the bytes belong at */
    uint32_t pid;   /* process holding them */
    uint64_t addr;  /* their address in that process */
    uint64_t len;   /* their size */
} cpar_shm_entry;

/* A seal: an 8-byte slot of this process that holds `value` while the bytes it guards are
 * pinned. Slots live in pages that are never unmapped and are reused with fresh values
 * (unique in this process, never 0), so a stale descriptor never matches. Any thread. */
typedef struct cpar_shm_seal {
    _Atomic uint64_t *slot; /* NULL: no seal (broken or never made) */
    uint64_t value;
} cpar_shm_seal;

/* Makes a seal (*s). Returns 0 or CPAR_ENOMEM (*s then has slot NULL). */
int cpar_shm_seal_new(cpar_shm_seal *s);
/* Breaks the seal: every later check by a reader fails. Call it BEFORE releasing the bytes
 * it guards. Idempotent; the slot goes back for reuse. */
void cpar_shm_seal_break(cpar_shm_seal *s);
/* Seals currently made and not broken (debug counter). */
long cpar_shm_seals_live(void);

/* Encodes one entry (little-endian) into out. */
void cpar_shm_entry_encode(const cpar_shm_entry *e, uint8_t out[CPAR_SHM_ENTRY_SIZE]);

/* Decodes and checks a table of `len` bytes for a message of `nframes` payload frames (the
 * table being the last). Entries must be whole; the first is the seal (index
 * CPAR_SHM_SEAL_INDEX, nonzero pid, nonzero 8-aligned addr, nonzero value in `len`), stored
 * in *seal; then at least one and at most nframes - 1 data entries of the seal's pid, with
 * strictly increasing indices below nframes - 1, 0 < len <= CPAR_SHM_MAX_LEN. Stores up
 * to `max` data entries in out and their count in *n. Returns 0 or CPAR_EPROTO. */
int cpar_shm_table_decode(const uint8_t *buf, size_t len, size_t nframes, cpar_shm_entry *seal,
                          cpar_shm_entry *out, size_t max, size_t *n);

/* 1 when this process may use the path: $CPAR_SHM is not "0" and a process_vm_readv
 * self-test succeeded (checked once, any thread). Where Yama's ptrace_scope is 1 (only
 * ancestors may read a process), the first call also lets any process of this user read
 * us (PR_SET_PTRACER_ANY): our peers are not our ancestors. */
int cpar_shm_enabled(void);

/* The PROBE's frame: both sides of a probe read this many bytes of this pattern from the
 * other (docs/protocol.md, "Shared memory", probes). */
#define CPAR_SHM_PROBE_SIZE 64
void cpar_shm_probe_fill(uint8_t out[CPAR_SHM_PROBE_SIZE]);
/* 1 when frame f holds exactly the probe pattern. */
int cpar_shm_probe_check(const zmq_msg_t *f);
/* The pid a CPAR_FLAG_SHM message's table names (its seal's), or 0 when it has none. */
uint32_t cpar_shm_sender_pid(const cpar_msg *m);
/* Bytes a CPAR_FLAG_SHM message's table describes in all (0: no flag or a malformed
 * table, which cpar_shm_resolve then reports). */
uint64_t cpar_shm_described_bytes(const cpar_msg *m);

/* This process's locality token (boot id, pid namespace, uid, host name; one word), the
 * same for two processes exactly when each can process_vm_readv the other (same uid,
 * same kernel boot, same pid namespace). Returns 0, or CPAR_EIO when unknown. */
int cpar_shm_token(char *out, size_t outlen);

/* Sender: moves every payload frame at index >= first of at least min_size bytes out of
 * m into a new array *pinned (*npinned frames, malloc'd), leaves empty placeholders,
 * appends the descriptor table (sealed with a new *seal) and sets CPAR_FLAG_SHM. The
 * caller owns frames and seal: it breaks the seal, then closes the frames, once the
 * receivers are done (cpar_shm_pins_add does both). Returns the number of frames moved
 * (0: m untouched, *pinned NULL, no seal), or CPAR_ENOMEM (m untouched, no seal). */
int cpar_shm_offload(cpar_msg *m, size_t first, size_t min_size, zmq_msg_t **pinned,
                     size_t *npinned, cpar_shm_seal *seal);

/* Receiver: for a message with CPAR_FLAG_SHM, reads each described frame from the
 * sender's memory into freshly mapped pages (a zmq frame whose free function unmaps
 * them) put at its index, drops the table and clears the flag. `pid` (0: any) is the
 * process the sender is known to be: a table naming another is refused (CPAR_EPROTO).
 * The seal is checked before and after the copy: CPAR_ESTALE when the sender released
 * the bytes first. Returns 0 (also when the flag is not set), or a CPAR_E* code with a
 * sentence in err (m's frames are then in an unspecified but closable state); CPAR_EPERM
 * when the kernel denies the read (ptrace rules). Blocks for the duration of the copy. */
int cpar_shm_resolve(cpar_msg *m, uint32_t pid, char *err, size_t errlen);

/* Pinned frames of sent messages, keyed by a 16-byte id, each waiting for a list of
 * engine ids to answer (the client) or for a RELEASE (the engine). */
typedef struct cpar_shm_pin {
    uint8_t id[CPAR_WIRE_ID_SIZE];
    uint64_t created_ns; /* cpar_mono_ns() when pinned */
    cpar_shm_seal seal;  /* broken before the frames are closed */
    int32_t *wait;       /* engines still to answer (malloc'd), nwait of them */
    size_t nwait;
    zmq_msg_t *frames; /* owned pinned frames (malloc'd) */
    size_t nframes;
} cpar_shm_pin;

typedef struct cpar_shm_pins {
    cpar_shm_pin *v; /* malloc'd; n in use */
    size_t n;
    size_t cap;
    size_t frames; /* pinned frames in all entries (for debug counters) */
} cpar_shm_pins;

void cpar_shm_pins_init(cpar_shm_pins *p);
/* Adds an entry owning frames[0..nframes) (the array too), the seal and a copy of
 * wait[0..nwait). On failure (CPAR_ENOMEM) the seal is broken and the frames are closed
 * and freed. Releasing an entry always breaks its seal before closing its frames. */
int cpar_shm_pins_add(cpar_shm_pins *p, const uint8_t id[CPAR_WIRE_ID_SIZE], zmq_msg_t *frames,
                      size_t nframes, cpar_shm_seal *seal, const int32_t *wait, size_t nwait);
/* Engine `engine` answered request `id` (engine < 0: every engine did): drops it from the
 * wait list and releases the entry when nobody is left. Returns frames released. */
size_t cpar_shm_pins_answered(cpar_shm_pins *p, const uint8_t id[CPAR_WIRE_ID_SIZE],
                              int32_t engine);
/* Releases entries pinned before `before_ns` (cpar_mono_ns; 0: all). Returns frames
 * released. */
size_t cpar_shm_pins_expire(cpar_shm_pins *p, uint64_t before_ns);
/* Releases everything and frees the set. */
void cpar_shm_pins_free(cpar_shm_pins *p);

#endif /* CPAR_CORE_SHM_H */
