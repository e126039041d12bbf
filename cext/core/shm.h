/* The same-host shared-memory path for large frames: descriptor tables, the receiver's
 * process_vm_readv resolve, locality tokens and the sender's pin sets.
 *
 * A message with CPAR_FLAG_SHM carries, as its LAST payload frame, a table of
 * CPAR_SHM_ENTRY_SIZE-byte little-endian entries {u32 frame_index, u32 pid, u64 addr,
 * u64 len}; the frames at those indices are empty placeholders on the wire and the bytes
 * stay in the sender's memory until the sender unpins them (docs/protocol.md, "Shared
 * memory"). The receiver reads them with process_vm_readv into fresh pages of its own.
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

typedef struct cpar_shm_entry {
    uint32_t index; /* payload frame the bytes belong at */
    uint32_t pid;   /* process holding them */
    uint64_t addr;  /* their address in that process */
    uint64_t len;   /* their size */
} cpar_shm_entry;

/* Encodes one entry (little-endian) into out. */
void cpar_shm_entry_encode(const cpar_shm_entry *e, uint8_t out[CPAR_SHM_ENTRY_SIZE]);

/* Decodes and checks a table of `len` bytes for a message of `nframes` payload frames (the
 * table being the last). Entries must be whole, at least one, at most nframes - 1, with
 * strictly increasing indices below nframes - 1, 0 < len <= CPAR_SHM_MAX_LEN. Stores up
 * to `max` entries in out and the count in *n. Returns 0 or CPAR_EPROTO. */
int cpar_shm_table_decode(const uint8_t *buf, size_t len, size_t nframes, cpar_shm_entry *out,
                          size_t max, size_t *n);

/* 1 when this process may use the path: $CPAR_SHM is not "0" and a process_vm_readv
 * self-test succeeded (checked once, any thread). */
int cpar_shm_enabled(void);

/* This process's locality token (boot id, pid namespace, uid, host name; one word), the
 * same for two processes exactly when each can process_vm_readv the other (same uid,
 * same kernel boot, same pid namespace). Returns 0, or CPAR_EIO when unknown. */
int cpar_shm_token(char *out, size_t outlen);

/* Sender: moves every payload frame at index >= first of at least min_size bytes out of
 * m into a new array *pinned (*npinned frames, malloc'd, the caller owns and must close
 * them after the receivers are done), leaves empty placeholders, appends the descriptor
 * table and sets CPAR_FLAG_SHM. Returns the number of frames moved (0: m untouched,
 * *pinned NULL), or CPAR_ENOMEM (m untouched). */
int cpar_shm_offload(cpar_msg *m, size_t first, size_t min_size, zmq_msg_t **pinned,
                     size_t *npinned);

/* Receiver: for a message with CPAR_FLAG_SHM, reads each described frame from the
 * sender's memory into freshly mapped pages (a zmq frame whose free function unmaps
 * them) put at its index, drops the table and clears the flag. Returns 0 (also when the
 * flag is not set), or a CPAR_E* code with a sentence in err (m's frames are then in an
 * unspecified but closable state). Blocks for the duration of the copy. */
int cpar_shm_resolve(cpar_msg *m, char *err, size_t errlen);

/* Pinned frames of sent messages, keyed by a 16-byte id, each waiting for a list of
 * engine ids to answer (the client) or for a RELEASE (the engine). */
typedef struct cpar_shm_pin {
    uint8_t id[CPAR_WIRE_ID_SIZE];
    uint64_t created_ns; /* cpar_mono_ns() when pinned */
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
/* Adds an entry owning frames[0..nframes) (the array too) and a copy of wait[0..nwait).
 * On failure (CPAR_ENOMEM) the frames are closed and freed. */
int cpar_shm_pins_add(cpar_shm_pins *p, const uint8_t id[CPAR_WIRE_ID_SIZE], zmq_msg_t *frames,
                      size_t nframes, const int32_t *wait, size_t nwait);
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
