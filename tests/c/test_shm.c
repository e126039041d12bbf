/* Tests of the shared-memory path's pure-C parts (cext/core/shm.c): descriptor table
 * encode/decode and its malformed shapes, offload + resolve in one process and from a
 * child process, resolve failures, pin sets. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "shm.h"
#include "test.h"

/* Bytes of a table of n data entries (after the seal). */
#define TBL(n) (((n) + 1) * CPAR_SHM_ENTRY_SIZE)

/* A table: a seal of pid 1234, then n entries at indices idx[i], each naming len[i] bytes. */
static uint8_t *
make_table(size_t n, const uint32_t *idx, const uint64_t *len)
{
    uint8_t *t = malloc(TBL(n) + 1);
    cpar_shm_entry seal = {CPAR_SHM_SEAL_INDEX, 1234, 0x8000, 77};
    cpar_shm_entry_encode(&seal, t);
    for (size_t i = 0; i < n; i++) {
        cpar_shm_entry e = {idx[i], 1234, 0x10000 + i * 0x1000, len[i]};
        cpar_shm_entry_encode(&e, t + (i + 1) * CPAR_SHM_ENTRY_SIZE);
    }
    return t;
}

TEST_IMPL(table_round_trip)
{
    uint32_t idx[] = {1, 3, 4};
    uint64_t len[] = {1, 1u << 20, CPAR_SHM_MAX_LEN};
    uint8_t *t = make_table(3, idx, len);
    cpar_shm_entry out[3], seal;
    size_t n = 99;

    /* Little-endian on the wire: index 3 of data entry 1 is its first byte. */
    ASSERT_EQ(t[2 * CPAR_SHM_ENTRY_SIZE], 3);
    ASSERT_EQ(t[2 * CPAR_SHM_ENTRY_SIZE + 1], 0);
    ASSERT_OK(cpar_shm_table_decode(t, TBL(3), 6, &seal, out, 3, &n));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(seal.index, CPAR_SHM_SEAL_INDEX);
    ASSERT_EQ(seal.addr, 0x8000);
    ASSERT_EQ(seal.len, 77);
    for (size_t i = 0; i < 3; i++) {
        ASSERT_EQ(out[i].index, idx[i]);
        ASSERT_EQ(out[i].pid, 1234);
        ASSERT_EQ(out[i].addr, 0x10000 + i * 0x1000);
        ASSERT_EQ(out[i].len, len[i]);
    }
    free(t);
    return 0;
}

TEST_IMPL(table_malformed)
{
    uint32_t dup[] = {1, 1}, desc[] = {3, 2}, ok[] = {1, 2};
    uint64_t len[] = {10, 10}, zero[] = {10, 0}, huge[] = {10, CPAR_SHM_MAX_LEN + 1};
    cpar_shm_entry out[4], seal;
    size_t n = 0;
    uint8_t *t;

    /* Overlapping (the same index twice) and unsorted indices. */
    t = make_table(2, dup, len);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 4, &n), CPAR_EPROTO);
    free(t);
    t = make_table(2, desc, len);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 5, &seal, out, 4, &n), CPAR_EPROTO);
    free(t);
    /* Index out of range: the table itself (index 2 of 3 frames) or beyond. */
    t = make_table(2, ok, len);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 3, &seal, out, 4, &n), CPAR_EPROTO);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 2, &seal, out, 4, &n), CPAR_EPROTO);
    ASSERT_OK(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 4, &n));
    /* Length not a multiple of the entry size, empty, or more entries than room. */
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2) - 1, 4, &seal, out, 4, &n), CPAR_EPROTO);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(1) + 1, 4, &seal, out, 4, &n), CPAR_EPROTO);
    ASSERT_EQ(cpar_shm_table_decode(t, 0, 4, &seal, out, 4, &n), CPAR_EPROTO);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 1, &n), CPAR_EPROTO);
    ASSERT_EQ(n, 0);
    free(t);
    /* A zero or too large length. */
    t = make_table(2, ok, zero);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 4, &n), CPAR_EPROTO);
    free(t);
    t = make_table(2, ok, huge);
    ASSERT_EQ(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 4, &n), CPAR_EPROTO);
    free(t);
    /* The seal: missing (a data entry first), zero value, unaligned, or a data entry of
     * another pid. */
    t = make_table(2, ok, len);
    ASSERT_EQ(cpar_shm_table_decode(t + CPAR_SHM_ENTRY_SIZE, TBL(1), 4, &seal, out, 4, &n),
              CPAR_EPROTO);
    {
        cpar_shm_entry bad[] = {{CPAR_SHM_SEAL_INDEX, 1234, 0x8000, 0},
                                {CPAR_SHM_SEAL_INDEX, 1234, 0x8004, 77},
                                {CPAR_SHM_SEAL_INDEX, 0, 0x8000, 77},
                                {CPAR_SHM_SEAL_INDEX, 4321, 0x8000, 77}};
        for (size_t i = 0; i < 4; i++) {
            uint8_t *u = make_table(2, ok, len);
            cpar_shm_entry_encode(&bad[i], u);
            ASSERT_EQ(cpar_shm_table_decode(u, TBL(2), 4, &seal, out, 4, &n), CPAR_EPROTO);
            free(u);
        }
    }
    ASSERT_OK(cpar_shm_table_decode(t, TBL(2), 4, &seal, out, 4, &n));
    free(t);
    return 0;
}

/* An APPLY by descriptor: frame 0 "a", frame 1 the placeholder of one described frame,
 * then the table of `seal` and `data` (as a sender's offload makes them). */
static void
described_msg(cpar_msg *m, const cpar_shm_entry *seal, const cpar_shm_entry *data)
{
    uint8_t raw[2 * CPAR_SHM_ENTRY_SIZE];
    cpar_shm_entry_encode(seal, raw);
    cpar_shm_entry_encode(data, raw + CPAR_SHM_ENTRY_SIZE);
    cpar_msg_init(m, CPAR_MSG_APPLY);
    m->h.flags = CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(m, "a", 1));
    ASSERT_OK(cpar_msg_add_copy(m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(m, raw, sizeof(raw)));
}

/* A message [small, big0, small, big1] with big frames of `size` bytes of a pattern. */
static void
make_msg(cpar_msg *m, size_t size, uint8_t **bufs)
{
    cpar_msg_init(m, CPAR_MSG_REPLY);
    for (int i = 0; i < 2; i++) {
        bufs[i] = malloc(size);
        for (size_t j = 0; j < size; j++)
            bufs[i][j] = (uint8_t)(j * 7 + (size_t)i);
    }
    ASSERT_OK(cpar_msg_add_copy(m, "small", 5));
    ASSERT_OK(cpar_msg_add_copy(m, bufs[0], size));
    ASSERT_OK(cpar_msg_add_copy(m, "x", 1));
    ASSERT_OK(cpar_msg_add_copy(m, bufs[1], size));
}

TEST_IMPL(offload_resolve_same_process)
{
    cpar_msg m;
    uint8_t *bufs[2];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0, size = 3u << 20;
    cpar_shm_seal seal;
    char err[256];

    make_msg(&m, size, bufs);
    ASSERT_EQ(cpar_shm_offload(&m, 0, 1u << 20, &pinned, &npinned, &seal), 2);
    ASSERT_EQ(npinned, 2);
    ASSERT(m.h.flags & CPAR_FLAG_SHM);
    ASSERT_EQ(m.nframes, 5);
    ASSERT_EQ(zmq_msg_size(&m.frames[1]), 0);
    ASSERT_EQ(zmq_msg_size(&m.frames[3]), 0);
    ASSERT_EQ(zmq_msg_size(&m.frames[4]), TBL(2));
    ASSERT(seal.slot != NULL && seal.value != 0);
    ASSERT_EQ(cpar_shm_resolve(&m, (uint32_t)getpid() + 1, err, sizeof(err)), CPAR_EPROTO);
    ASSERT_STR_CONTAINS(err, "not the sender");
    ASSERT_OK(cpar_shm_resolve(&m, (uint32_t)getpid(), err, sizeof(err)));
    ASSERT(!(m.h.flags & CPAR_FLAG_SHM));
    ASSERT_EQ(m.nframes, 4);
    ASSERT_EQ(zmq_msg_size(&m.frames[0]), 5);
    ASSERT_EQ(zmq_msg_size(&m.frames[1]), size);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[1]), bufs[0], size);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[3]), bufs[1], size);
    ASSERT_EQ((uintptr_t)zmq_msg_data(&m.frames[1]) % 4096, 0); /* aligned, own pages */
    cpar_shm_seal_break(&seal);
    ASSERT(seal.slot == NULL);
    cpar_shm_seal_break(&seal); /* idempotent */
    for (size_t i = 0; i < npinned; i++)
        zmq_msg_close(&pinned[i]);
    free(pinned);
    cpar_msg_close(&m);
    free(bufs[0]);
    free(bufs[1]);

    /* Nothing large: the message is left alone. */
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    ASSERT_OK(cpar_msg_add_copy(&m, "small", 5));
    ASSERT_EQ(cpar_shm_offload(&m, 0, 1u << 20, &pinned, &npinned, &seal), 0);
    ASSERT(pinned == NULL);
    ASSERT(seal.slot == NULL);
    ASSERT_EQ(m.nframes, 1);
    ASSERT(!(m.h.flags & CPAR_FLAG_SHM));
    ASSERT_OK(cpar_shm_resolve(&m, 0, err, sizeof(err))); /* no flag: nothing to do */
    cpar_msg_close(&m);
    return 0;
}

/* Frames of CPAR__SHM_SPLIT (16 MiB) or more are read by two threads, half each: every
 * byte arrives, and a failure in the second half says where the read stopped. */
TEST_IMPL(large_frames_read_in_halves)
{
    cpar_msg m;
    uint8_t *bufs[2];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0, size = (20u << 20) + 12345;
    cpar_shm_seal seal;
    char err[256];

    make_msg(&m, size, bufs);
    ASSERT_EQ(cpar_shm_offload(&m, 0, 1u << 20, &pinned, &npinned, &seal), 2);
    ASSERT_OK(cpar_shm_resolve(&m, (uint32_t)getpid(), err, sizeof(err)));
    ASSERT_EQ(zmq_msg_size(&m.frames[1]), size);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[1]), bufs[0], size);
    ASSERT_MEM_EQ(zmq_msg_data(&m.frames[3]), bufs[1], size);
    cpar_shm_seal_break(&seal);
    for (size_t i = 0; i < npinned; i++)
        zmq_msg_close(&pinned[i]);
    free(pinned);
    cpar_msg_close(&m);
    free(bufs[0]);
    free(bufs[1]);

    /* 32 MiB described, the last 8 MiB unmapped: the first half reads, the second fails. */
    {
        size_t len = 32u << 20;
        char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        unsigned long long after = 0;
        const char *at;
        ASSERT(region != MAP_FAILED);
        memset(region, 1, 24u << 20);
        ASSERT_OK(munmap(region + (24u << 20), 8u << 20));
        ASSERT_OK(cpar_shm_seal_new(&seal));
        cpar_shm_entry s = {CPAR_SHM_SEAL_INDEX, (uint32_t)getpid(), (uint64_t)(uintptr_t)seal.slot,
                            seal.value};
        cpar_shm_entry e = {1, (uint32_t)getpid(), (uint64_t)(uintptr_t)region, len};
        described_msg(&m, &s, &e);
        ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EIO);
        ASSERT_STR_CONTAINS(err, "Bad address");
        at = strstr(err, "failed after ");
        ASSERT(at != NULL);
        ASSERT_EQ(sscanf(at, "failed after %llu bytes", &after), 1);
        ASSERT_GE(after, 16u << 20); /* the first half was read */
        ASSERT_LE(after, 24u << 20); /* not past the hole */
        cpar_msg_close(&m);
        cpar_shm_seal_break(&seal);
        ASSERT_OK(munmap(region, 24u << 20));
    }
    return 0;
}

TEST_IMPL(stale_after_release)
{
    /* The sender releases (breaks the seal) and reuses the memory before the read: the
     * receiver fails with CPAR_ESTALE and takes none of the reused bytes. */
    cpar_msg m;
    uint8_t *bufs[2];
    zmq_msg_t *pinned = NULL;
    size_t npinned = 0, size = 1u << 20;
    cpar_shm_seal seal, again;
    char err[256];

    make_msg(&m, size, bufs);
    ASSERT_EQ(cpar_shm_offload(&m, 0, 1u << 20, &pinned, &npinned, &seal), 2);
    cpar_shm_seal_break(&seal);
    memset(zmq_msg_data(&pinned[0]), 'Z', size); /* the owner reuses its memory */
    /* A new seal may take the same slot, with a new value: still stale. */
    ASSERT_OK(cpar_shm_seal_new(&again));
    ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_ESTALE);
    ASSERT_STR_CONTAINS(err, "released");
    cpar_shm_seal_break(&again);
    for (size_t i = 0; i < npinned; i++)
        zmq_msg_close(&pinned[i]);
    free(pinned);
    cpar_msg_close(&m);
    free(bufs[0]);
    free(bufs[1]);
    return 0;
}

TEST_IMPL(resolve_from_child)
{
    /* The child offloads and writes the table over a pipe, then waits to be told to exit;
     * the parent resolves from the child's memory. */
    int tofrom[2], release[2];
    size_t size = 5u << 20;
    uint8_t table[TBL(2)];
    cpar_msg m;
    char err[256];
    pid_t pid;

    ASSERT_OK(pipe(tofrom));
    ASSERT_OK(pipe(release));
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        cpar_msg cm;
        uint8_t *bufs[2];
        zmq_msg_t *pinned;
        size_t npinned;
        cpar_shm_seal seal;
        char c;
        make_msg(&cm, size, bufs);
        if (cpar_shm_offload(&cm, 0, 1u << 20, &pinned, &npinned, &seal) != 2)
            _exit(3);
        if (write(tofrom[1], zmq_msg_data(&cm.frames[4]), sizeof(table)) != sizeof(table))
            _exit(4);
        if (read(release[0], &c, 1) < 0)
            _exit(5);
        _exit(0);
    }
    ASSERT_EQ(read(tofrom[0], table, sizeof(table)), (ssize_t)sizeof(table));
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    m.h.flags = CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(&m, "small", 5));
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(&m, "x", 1));
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(&m, table, sizeof(table)));
    ASSERT_OK(cpar_shm_resolve(&m, (uint32_t)pid, err, sizeof(err)));
    ASSERT_EQ(m.nframes, 4);
    for (size_t j = 0; j < size; j += 4099)
        ASSERT_EQ(((uint8_t *)zmq_msg_data(&m.frames[3]))[j], (uint8_t)(j * 7 + 1));
    cpar_msg_close(&m);
    ASSERT_EQ(write(release[1], "x", 1), 1);
    {
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    /* The child is gone now: the same table fails cleanly, naming the problem. */
    cpar_msg_init(&m, CPAR_MSG_REPLY);
    m.h.flags = CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(&m, "small", 5));
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(&m, "x", 1));
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(&m, table, sizeof(table)));
    ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_ESTALE);
    ASSERT_STR_CONTAINS(err, "process_vm_readv");
    ASSERT_STR_CONTAINS(err, "gone");
    cpar_msg_close(&m);
    return 0;
}

TEST_IMPL(resolve_malformed)
{
    uint32_t idx[] = {1};
    uint64_t len[] = {64};
    uint8_t *t = make_table(1, idx, len);
    cpar_msg m;
    char err[256];

    /* A placeholder that is not empty. */
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(&m, "a", 1));
    ASSERT_OK(cpar_msg_add_copy(&m, "not empty", 9));
    ASSERT_OK(cpar_msg_add_copy(&m, t, TBL(1)));
    ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EPROTO);
    ASSERT_STR_CONTAINS(err, "not empty");
    cpar_msg_close(&m);
    /* A flag without a table frame; a table of the wrong size. */
    cpar_msg_init(&m, CPAR_MSG_APPLY);
    m.h.flags = CPAR_FLAG_SHM;
    ASSERT_OK(cpar_msg_add_copy(&m, "a", 1));
    ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EPROTO);
    ASSERT_OK(cpar_msg_add_copy(&m, "", 0));
    ASSERT_OK(cpar_msg_add_copy(&m, t, TBL(1) - 1));
    ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EPROTO);
    ASSERT_STR_CONTAINS(err, "malformed");
    cpar_msg_close(&m);
    /* An address nobody maps in a live process (EFAULT): at the seal, then at the data
     * behind a valid seal. */
    {
        cpar_shm_seal seal;
        cpar_shm_entry s = {CPAR_SHM_SEAL_INDEX, (uint32_t)getpid(), 8, 5};
        cpar_shm_entry e = {1, (uint32_t)getpid(), 8, 64};
        described_msg(&m, &s, &e);
        ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EIO);
        ASSERT_STR_CONTAINS(err, "seal");
        cpar_msg_close(&m);
        ASSERT_OK(cpar_shm_seal_new(&seal));
        s.addr = (uint64_t)(uintptr_t)seal.slot;
        s.len = seal.value;
        described_msg(&m, &s, &e);
        ASSERT_EQ(cpar_shm_resolve(&m, 0, err, sizeof(err)), CPAR_EIO);
        ASSERT_STR_CONTAINS(err, "Bad address");
        cpar_msg_close(&m);
        cpar_shm_seal_break(&seal);
    }
    free(t);
    return 0;
}

TEST_IMPL(pins)
{
    cpar_shm_pins p;
    uint8_t id1[CPAR_WIRE_ID_SIZE] = {1}, id2[CPAR_WIRE_ID_SIZE] = {2};
    int32_t wait[] = {0, 3, 5};
    zmq_msg_t *f;
    cpar_shm_seal seal = {NULL, 0}, s1;
    long live = cpar_shm_seals_live();

    cpar_shm_pins_init(&p);
    f = malloc(2 * sizeof(zmq_msg_t));
    zmq_msg_init_size(&f[0], 100);
    zmq_msg_init_size(&f[1], 200);
    ASSERT_OK(cpar_shm_seal_new(&s1));
    ASSERT_OK(cpar_shm_pins_add(&p, id1, f, 2, &s1, wait, 3));
    ASSERT(s1.slot == NULL); /* moved into the pin */
    ASSERT_EQ(cpar_shm_seals_live(), live + 1);
    f = malloc(sizeof(zmq_msg_t));
    zmq_msg_init_size(&f[0], 100);
    ASSERT_OK(cpar_shm_pins_add(&p, id2, f, 1, &seal, NULL, 0));
    ASSERT_EQ(p.frames, 3);
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 3), 0);
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 3), 0); /* twice: no effect */
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 7), 0); /* not a target */
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 0), 0);
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 5), 2);
    ASSERT_EQ(cpar_shm_seals_live(), live); /* its seal broke with it */
    ASSERT_EQ(p.frames, 1);
    ASSERT_EQ(cpar_shm_pins_answered(&p, id1, 5), 0); /* gone */
    ASSERT_EQ(cpar_shm_pins_expire(&p, 1), 0);        /* not that old */
    ASSERT_EQ(cpar_shm_pins_expire(&p, cpar_mono_ns() + 1), 1);
    ASSERT_EQ(p.n, 0);
    f = malloc(sizeof(zmq_msg_t));
    zmq_msg_init_size(&f[0], 100);
    ASSERT_OK(cpar_shm_pins_add(&p, id2, f, 1, &seal, wait, 3));
    ASSERT_EQ(cpar_shm_pins_answered(&p, id2, -1), 1); /* every engine at once */
    f = malloc(sizeof(zmq_msg_t));
    zmq_msg_init_size(&f[0], 100);
    ASSERT_OK(cpar_shm_pins_add(&p, id2, f, 1, &seal, NULL, 0));
    cpar_shm_pins_free(&p); /* releases what is left */
    ASSERT_EQ(p.frames, 0);
    return 0;
}

TEST_IMPL(token_and_enabled)
{
    char tok[CPAR_SHM_TOKEN_SIZE];
    ASSERT_OK(cpar_shm_token(tok, sizeof(tok)));
    ASSERT(strchr(tok, ' ') == NULL);
    ASSERT(strchr(tok, '\n') == NULL);
    ASSERT_EQ(cpar_shm_token(tok, 8), CPAR_EIO);
    /* This machine allows process_vm_readv; CPAR_SHM=0 turns the path off. */
    {
        const char *env = getenv("CPAR_SHM");
        ASSERT_EQ(cpar_shm_enabled(), env != NULL && strcmp(env, "0") == 0 ? 0 : 1);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const cpar_test tests[] = {
        TEST_ENTRY(table_round_trip),
        TEST_ENTRY(table_malformed),
        TEST_ENTRY(offload_resolve_same_process),
        TEST_ENTRY(large_frames_read_in_halves),
        TEST_ENTRY(stale_after_release),
        TEST_ENTRY(resolve_from_child),
        TEST_ENTRY(resolve_malformed),
        TEST_ENTRY(pins),
        TEST_ENTRY(token_and_enabled),
    };
    return cpar_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
